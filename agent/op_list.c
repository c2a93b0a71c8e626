/*
 * list: the containers of one app on this host, running or not.
 *
 *	args:   {"app": "NAME"}
 *	result: {"containers": [{"id", "name", "image", "image_id", "state",
 *		 "status", "health", "app", "revision", "slot", "commit",
 *		 "created", "labels": {mlctl.* labels only}}]}
 *
 * Asks Docker for GET /containers/json?all=1 filtered on the label
 * mlctl.app=NAME, so containers of other apps are never read. NAME is
 * checked (ml_docker_valid_name) before it goes into the filter. The
 * answer is bounded by Docker's answer cap; a reply too large for a frame
 * becomes a "too-big" error in dispatch.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "common/docker.h"

static json_t *container_entry(json_t *c)
{
	json_t *e = json_object(), *names = json_object_get(c, "Names");
	const char *name = json_string_value(json_array_get(names, 0));
	const char *status = json_string_value(json_object_get(c, "Status"));

	if (name && *name == '/')
		name++;
	ml_agent_set_str(e, "id", json_string_value(json_object_get(c, "Id")));
	ml_agent_set_str(e, "name", name);
	ml_agent_set_str(e, "image",
			 json_string_value(json_object_get(c, "Image")));
	ml_agent_set_str(e, "image_id",
			 json_string_value(json_object_get(c, "ImageID")));
	ml_agent_set_str(e, "state",
			 json_string_value(json_object_get(c, "State")));
	ml_agent_set_str(e, "status", status);
	ml_agent_set_str(e, "health",
			 ml_agent_health(json_object_get(c, "Health"), status));
	ml_agent_set_int(e, "created", json_object_get(c, "Created"));
	ml_agent_set_labels(e, json_object_get(c, "Labels"));
	return e;
}

static int op_list(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf path = ML_BUF_INIT(1024);
	struct ml_docker *d;
	json_t *filter = NULL, *answer = NULL, *list, *c, *r;
	const char *app;
	char *text = NULL;
	size_t i;
	int rc;

	rc = ml_agent_arg_name(&app, args, "list", "app", true);
	if (rc < 0)
		goto out;
	filter = json_pack("{s:[s+]}", "label", "mlctl.app=", app);
	text = filter ? json_dumps(filter, JSON_COMPACT) : NULL;
	if (!text) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	rc = ml_buf_addstr(&path, "/containers/json?all=1&filters=");
	if (rc == 0)
		rc = ml_docker_url_escape(&path, text);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	rc = ml_docker_get(d, path.data, &answer);
	if (rc < 0)
		goto out;
	if (!json_is_array(answer)) {
		rc = ml_err_set(ML_EFAIL, "docker: GET /containers/json: the "
					  "answer is not a list");
		goto out;
	}
	list = json_array();
	json_array_foreach(answer, i, c)
	{
		if (json_is_object(c))
			json_array_append_new(list, container_entry(c));
	}
	r = json_object();
	json_object_set_new(r, "containers", list);
	*result = r;
	rc = 0;
out:
	json_decref(filter);
	json_decref(answer);
	free(text);
	ml_buf_release(&path);
	return rc;
}

const struct ml_agent_op ml_agent_op_list = {
	.name = "list",
	.summary = "the containers of an app, with their mlctl labels",
	.run = op_list,
};
