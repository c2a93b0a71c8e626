/*
 * inspect: the state of one container.
 *
 *	args:   {"id": "ID or NAME"}
 *	result: {"id", "name", "image", "image_id", "state", "health",
 *		 "restarts", "started_at", "finished_at", "exit_code", "app",
 *		 "revision", "slot", "commit", "labels": {mlctl.* only}}
 *
 * From GET /containers/{id}/json; the id is checked (ml_docker_valid_name)
 * before it goes into the URL. A container Docker does not know is the
 * error "not-found".
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "common/docker.h"

static int op_inspect(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf path = ML_BUF_INIT(512);
	struct ml_docker *d;
	json_t *c = NULL, *st, *cfg, *r;
	const char *id, *name;
	int rc;

	rc = ml_agent_arg_name(&id, args, "inspect", "id", true);
	if (rc < 0)
		goto out;
	rc = ml_buf_addf(&path, "/containers/%s/json", id);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	rc = ml_docker_get(d, path.data, &c);
	if (rc < 0)
		goto out;
	if (!json_is_object(c)) {
		rc = ml_err_set(ML_EFAIL,
				"docker: GET %s: the answer is not "
				"an object",
				path.data);
		goto out;
	}
	st = json_object_get(c, "State");
	cfg = json_object_get(c, "Config");
	name = json_string_value(json_object_get(c, "Name"));
	if (name && *name == '/')
		name++;

	r = json_object();
	ml_agent_set_str(r, "id", json_string_value(json_object_get(c, "Id")));
	ml_agent_set_str(r, "name", name);
	ml_agent_set_str(r, "image",
			 json_string_value(json_object_get(cfg, "Image")));
	ml_agent_set_str(r, "image_id",
			 json_string_value(json_object_get(c, "Image")));
	ml_agent_set_str(r, "state",
			 json_string_value(json_object_get(st, "Status")));
	ml_agent_set_str(r, "health",
			 ml_agent_health(json_object_get(st, "Health"), NULL));
	ml_agent_set_int(r, "restarts", json_object_get(c, "RestartCount"));
	ml_agent_set_str(r, "started_at",
			 json_string_value(json_object_get(st, "StartedAt")));
	ml_agent_set_str(r, "finished_at",
			 json_string_value(json_object_get(st, "FinishedAt")));
	ml_agent_set_int(r, "exit_code", json_object_get(st, "ExitCode"));
	ml_agent_set_labels(r, json_object_get(cfg, "Labels"));
	*result = r;
	rc = 0;
out:
	json_decref(c);
	ml_buf_release(&path);
	return rc;
}

const struct ml_agent_op ml_agent_op_inspect = {
	.name = "inspect",
	.summary = "the state, health and mlctl labels of one container",
	.run = op_inspect,
};
