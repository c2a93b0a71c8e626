/*
 * container_stop: stop and remove one of mlctl's containers, and its
 * secrets file; or, asked to, pause it as a standby.
 *
 *	args:   {"id": "ID or NAME", "timeout_s": N (default 10),
 *		 "pause": bool (default false)}
 *	result: {"id", "name", "removed": true|false, "was_running": bool,
 *		 "paused": bool}
 *
 * POST /containers/{id}/stop?t=N (SIGTERM, then SIGKILL after N s; 304
 * when it had already stopped), then DELETE /containers/{id}?v=1 (with its
 * anonymous volumes). A container Docker does not know is a success with
 * "removed": false, so a retried stop does no harm. Containers without an
 * mlctl.app label are refused: the agent only removes what mlctl made.
 * The Docker client's timeout is raised for the stop request to N s plus
 * STOP_SLACK_MS, since Docker answers only once the container is down.
 *
 * A paused container is unpaused before it is stopped: Docker queues the
 * SIGTERM to a frozen process, so it would only die of the SIGKILL after
 * the whole N s instead of exiting gracefully at once.
 *
 * With "pause": true a running container is kept as a standby that a
 * later container_run {"resume": id} brings back: POST
 * /containers/{id}/pause (the cgroup freezer: it keeps its memory and
 * uses no CPU), nothing when it is paused already, and it keeps its
 * container, its firewall slot and its secrets ("removed": false,
 * "paused": true, "was_running": true). A container that is not running
 * (exited, created, restarting) cannot be a standby: it is stopped and
 * removed as without "pause" ("paused": false).
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

/* POST /containers/{cid}/{verb} ("pause", "unpause"), no answer body. */
static int container_post(struct ml_docker *d, const char *cid,
			  const char *verb)
{
	char *path = ml_xasprintf("/containers/%s/%s", cid, verb);
	int rc = ml_docker_request_raw(d, NULL, "POST", path, NULL, NULL);

	free(path);
	return rc;
}

static int op_container_stop(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_docker *d;
	json_t *c = NULL, *labels, *st, *r, *v;
	const char *id, *name, *cid;
	char *path = NULL, *nm = NULL, *cidc = NULL;
	json_int_t timeout_s = 10;
	long saved_timeout = 0, status = 0;
	bool removed = false, was_running = false, pause, paused = false;
	int rc;

	rc = ml_agent_arg_name(&id, args, OP, "id", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&timeout_s, args, OP, "timeout_s", 0,
				      TIMEOUT_S_MAX, false);
	v = json_object_get(args, "pause");
	if (rc == 0 && v && !json_is_boolean(v))
		rc = ml_err_set(ML_EPROTO, "%s: 'pause' must be true or false",
				OP);
	if (rc < 0)
		goto out;
	pause = json_is_true(v);
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
	rc = ml_agent_name_id(c, path, &name, &cid);
	if (rc < 0)
		goto out;
	nm = ml_xstrdup(name);
	cidc = ml_xstrdup(cid);
	if (!json_string_value(json_object_get(labels, "mlctl.app"))) {
		rc = ml_err_set(ML_EFAIL,
				"container '%s' has no mlctl.app label: mlctl "
				"does not stop containers it did not start",
				nm);
		goto out;
	}

	st = json_object_get(c, "State");
	if (pause && json_is_true(json_object_get(st, "Running")) &&
	    !json_is_true(json_object_get(st, "Restarting"))) {
		rc = json_is_true(json_object_get(st, "Paused"))
			     ? 0
			     : container_post(d, cidc, "pause");
		if (rc == 0) {
			was_running = paused = true;
			goto done;
		}
		if (rc != ML_ENOTFOUND)
			goto out;
		/* gone meanwhile: the stop below finds it gone and removes
		 * what it left (its slot's rule, its secrets) */
		ml_err_clear();
	} else if (json_is_true(json_object_get(st, "Paused"))) {
		/* best effort: a failed unpause only makes the stop slow */
		rc = container_post(d, cidc, "unpause");
		if (rc < 0 && rc != ML_ENOTFOUND)
			ml_debug("%s", ml_err_msg());
		ml_err_clear();
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
	json_object_set_new(r, "paused", json_boolean(paused));
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
	.summary = "stop and remove a container of mlctl, and its secrets, or "
		   "pause it",
	.run = op_container_stop,
};
