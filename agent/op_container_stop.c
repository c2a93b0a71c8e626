/*
 * container_stop: stop and remove one of mlctl's containers, and its
 * secrets file.
 *
 *	args:   {"id": "ID or NAME", "timeout_s": N (default 10)}
 *	result: {"id", "name", "removed": true|false, "was_running": bool}
 *
 * POST /containers/{id}/stop?t=N (SIGTERM, then SIGKILL after N s; 304
 * when it had already stopped), then DELETE /containers/{id}?v=1 (with its
 * anonymous volumes). A container Docker does not know is a success with
 * "removed": false, so a retried stop does no harm. Containers without an
 * mlctl.app label are refused: the agent only removes what mlctl made.
 * The Docker client's timeout is raised for the stop request to N s plus
 * STOP_SLACK_MS, since Docker answers only once the container is down.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/firewall.h"
#include "common/log.h"
#include "common/docker.h"

#define OP "container_stop"
#define TIMEOUT_S_MAX 3600
#define STOP_SLACK_MS 30000L

/*
 * Remove the filter rule of container c's slot port (an inspect answer).
 * Best effort: a Docker without iptables (open_slots) has none, and a
 * rule left behind only filters a port nothing listens on.
 */
static void close_slot(json_t *c)
{
	json_t *pb = json_object_get(json_object_get(c, "HostConfig"),
				     "PortBindings");
	const char *app = json_string_value(json_object_get(
		json_object_get(json_object_get(c, "Config"), "Labels"),
		"mlctl.app"));
	const char *k, *hp;
	json_t *v;

	if (!app || !ml_docker_valid_name(app))
		return;
	json_object_foreach(pb, k, v)
	{
		hp = json_string_value(
			json_object_get(json_array_get(v, 0), "HostPort"));
		if (hp && atoi(hp) > 0 && atoi(hp) < 65536 &&
		    ml_agent_firewall_close(app, atoi(hp)) < 0) {
			ml_debug("%s", ml_err_msg());
			ml_err_clear();
		}
	}
}

static int op_container_stop(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_docker *d;
	json_t *c = NULL, *labels, *r;
	const char *id, *name, *cid;
	char *path = NULL, *nm = NULL, *cidc = NULL;
	json_int_t timeout_s = 10;
	long saved_timeout = 0, status = 0;
	bool removed = false, was_running = false;
	int rc;

	rc = ml_agent_arg_name(&id, args, OP, "id", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&timeout_s, args, OP, "timeout_s", 0,
				      TIMEOUT_S_MAX, false);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;

	path = ml_xasprintf("/containers/%s/json", id);
	rc = ml_docker_get(d, path, &c);
	if (rc == ML_ENOTFOUND) {
		/* gone already; id may be the name its secrets went under */
		rc = ml_agent_secrets_remove(a, id);
		if (rc < 0)
			goto out;
		nm = ml_xstrdup(id);
		goto done;
	}
	if (rc < 0)
		goto out;
	labels = json_object_get(json_object_get(c, "Config"), "Labels");
	name = json_string_value(json_object_get(c, "Name"));
	cid = json_string_value(json_object_get(c, "Id"));
	if (name && *name == '/')
		name++;
	if (!name || !ml_docker_valid_name(name) || !cid ||
	    !ml_docker_valid_name(cid)) {
		rc = ml_err_set(ML_EFAIL,
				"docker: GET %s: no valid Name and Id", path);
		goto out;
	}
	nm = ml_xstrdup(name);
	cidc = ml_xstrdup(cid);
	if (!json_string_value(json_object_get(labels, "mlctl.app"))) {
		rc = ml_err_set(ML_EFAIL,
				"container '%s' has no mlctl.app label: mlctl "
				"does not stop containers it did not start",
				nm);
		goto out;
	}

	free(path);
	path = ml_xasprintf("/containers/%s/stop?t=%lld", cidc,
			    (long long)timeout_s);
	saved_timeout = ml_docker_timeout(d);
	ml_docker_set_timeout(d, (long)timeout_s * 1000 + STOP_SLACK_MS);
	rc = ml_docker_request_raw(d, &status, "POST", path, NULL, NULL);
	ml_docker_set_timeout(d, saved_timeout);
	if (rc < 0 && rc != ML_ENOTFOUND)
		goto out;
	was_running = rc == 0 && status != 304;

	free(path);
	path = ml_xasprintf("/containers/%s?v=1", cidc);
	rc = ml_docker_request(d, "DELETE", path, NULL, NULL);
	if (rc < 0 && rc != ML_ENOTFOUND)
		goto out;
	removed = rc == 0;
	close_slot(c);
	rc = ml_agent_secrets_remove(a, nm);
	if (rc < 0)
		goto out;
done:
	r = json_object();
	ml_agent_set_str(r, "id", cidc);
	ml_agent_set_str(r, "name", nm);
	json_object_set_new(r, "removed", json_boolean(removed));
	json_object_set_new(r, "was_running", json_boolean(was_running));
	*result = r;
	ml_err_clear();
	rc = 0;
out:
	json_decref(c);
	free(path);
	free(nm);
	free(cidc);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_stop = {
	.name = "container_stop",
	.summary = "stop and remove a container of mlctl, and its secrets",
	.run = op_container_stop,
};
