/*
 * container_probe: mlctl's own health check of one running container,
 * once, now, as `mlctl status` shows it.
 *
 *	args:   {"id", "path": "/" , "timeout_ms": 1000 (10..60000)}
 *	result: {"healthy": bool, "http_status": N or null, "elapsed_ms",
 *		 "host_port", "error": text or null}
 *
 * The port is the host port Docker publishes for the container
 * (HostConfig.PortBindings, the one mlctl set in container_run), so the
 * probe reaches the container that runs, whatever the playbook at the
 * controller says now. The probe is the one container_wait uses (probe.c:
 * GET on a fresh connection, 2xx/3xx pass). A failing probe is a result
 * (healthy false, with the reason), not an error; a container Docker does
 * not know is "not-found", one that publishes no port is "invalid".
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/probe.h"
#include "common/docker.h"

#define OP "container_probe"

/* The first HostPort of the container's port bindings, or 0. */
static int host_port_of(json_t *c)
{
	json_t *pb = json_object_get(json_object_get(c, "HostConfig"),
				     "PortBindings"), *list;
	const char *key, *hp;
	long v;
	char *end;

	json_object_foreach(pb, key, list) {
		hp = json_string_value(
			json_object_get(json_array_get(list, 0), "HostPort"));
		if (!hp)
			continue;
		v = strtol(hp, &end, 10);
		if (!*end && v > 0 && v < 65536)
			return (int)v;
	}
	return 0;
}

static int op_container_probe(struct ml_agent *a, json_t *args,
			      json_t **result)
{
	struct ml_probe_result pr = { 0 };
	struct ml_docker *d;
	json_t *c = NULL, *r;
	const char *id, *path = "/";
	json_int_t timeout = 1000;
	char *url = NULL;
	int rc, port;

	rc = ml_agent_arg_name(&id, args, OP, "id", true);
	if (rc < 0)
		goto out;
	if (json_object_get(args, "path")) {
		rc = ml_agent_arg_name(&path, args, OP, "path", false);
		if (rc < 0)
			goto out;
		if (!ml_probe_valid_path(path)) {
			rc = ml_err_set(ML_EPROTO, OP ": 'path' must start "
				       "with '/' and be printable ASCII");
			goto out;
		}
	}
	rc = ml_agent_arg_int(&timeout, args, OP, "timeout_ms", 10, 60000,
			      false);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	url = ml_xasprintf("/containers/%s/json", id);
	rc = ml_docker_get(d, url, &c);
	if (rc < 0)
		goto out;
	port = host_port_of(c);
	if (!port) {
		rc = ml_err_set(ML_EINVALID, "container '%s' publishes no "
			       "port to probe", id);
		goto out;
	}
	rc = ml_probe_http(&pr, "127.0.0.1", port, path, (long)timeout);
	r = json_object();
	json_object_set_new(r, "healthy", json_boolean(rc == 0));
	json_object_set_new(r, "http_status",
			    pr.status ? json_integer(pr.status) : json_null());
	json_object_set_new(r, "elapsed_ms", json_integer(pr.elapsed_ms));
	json_object_set_new(r, "host_port", json_integer(port));
	ml_agent_set_str(r, "error", rc == 0 ? NULL : ml_err_msg());
	*result = r;
	rc = 0;
out:
	json_decref(c);
	free(url);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_probe = {
	.name = "container_probe",
	.summary = "probe a running container's health path once, now",
	.run = op_container_probe,
};
