/*
 * lb_set: change one server's state (and weight) in a running HAProxy,
 * through the runtime API only: no reload, no new worker, no new config.
 *
 *	args:   {"app", "server", "state": ready|drain|maint,
 *		 "weight": 0..256 (optional, unchanged when absent)}
 *	result: {"server", "previous_admin_state", "admin_state",
 *		 "op_state", "weight"}
 *
 * drain stops new requests to the server while those in flight finish
 * (lb_wait_drained waits for them); maint takes it out entirely; ready
 * puts it back. The change survives reloads (the server-state file) but
 * not the next lb_apply, which sets what its args say. An app without a
 * running HAProxy, or a server it does not have, is "not-found".
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"

/* The `show servers state` row of server, borrowed from rows, or NULL. */
static json_t *find_row(json_t *rows, const char *server)
{
	const char *n;
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
	{
		n = json_string_value(json_object_get(row, "srv_name"));
		if (n && !strcmp(n, server))
			return row;
	}
	return NULL;
}

/* Run lb_* ops only on an app whose HAProxy is up. Shared wording. */
static int need_running(const struct ml_haproxy *h, const char *op)
{
	pid_t master;
	int rc;

	rc = ml_haproxy_master_pid(&master, h);
	if (rc < 0)
		return rc;
	if (!master)
		return ml_err_set(ML_ENOTFOUND,
				  "%s: haproxy for app '%s' is not running "
				  "on this host (lb_apply starts it)",
				  op, h->app);
	return 0;
}

static int op_lb_set(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = {.lock_fd = -1};
	const char *app, *server, *word, *prev;
	json_t *rows = NULL, *row, *jw;
	enum ml_lb_state state;
	int weight = -1, rc;

	rc = ml_agent_arg_name(&app, args, "lb_set", "app", false);
	if (rc < 0)
		goto out;
	rc = ml_agent_arg_name(&server, args, "lb_set", "server", false);
	if (rc < 0)
		goto out;
	if (!ml_lb_valid_name(server)) {
		rc = ml_err_set(ML_EPROTO,
				"lb_set: 'server' must be a name of letters, "
				"digits, '.', '_' and '-'");
		goto out;
	}
	rc = ml_agent_arg_name(&word, args, "lb_set", "state", false);
	if (rc < 0)
		goto out;
	if (ml_lb_state_parse(&state, word) < 0) {
		rc = ml_err_set(ML_EPROTO, "lb_set: 'state' must be one of "
					   "ready, drain, maint");
		goto out;
	}
	jw = json_object_get(args, "weight");
	if (jw && !json_is_null(jw)) {
		if (!json_is_integer(jw) || json_integer_value(jw) < 0 ||
		    json_integer_value(jw) > ML_LB_WEIGHT_MAX) {
			rc = ml_err_set(ML_EPROTO,
					"lb_set: 'weight' must be an integer "
					"from 0 to %d",
					ML_LB_WEIGHT_MAX);
			goto out;
		}
		weight = (int)json_integer_value(jw);
	}
	rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc < 0)
		goto out;

	/* apply */
	rc = need_running(&h, "lb_set");
	if (rc < 0)
		goto out;
	rc = ml_haproxy_lock(&h);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_show_servers(&rows, &h);
	if (rc < 0)
		goto out;
	row = find_row(rows, server);
	if (!row) {
		rc = ml_err_set(ML_ENOTFOUND,
				"lb_set: app '%s' has no server '%s' on this "
				"load balancer",
				app, server);
		goto out;
	}
	prev = ml_haproxy_admin_word(
		(long)ml_haproxy_field_int(row, "srv_admin_state", 0));
	rc = ml_haproxy_set_server(&h, server, state, weight);
	if (rc < 0)
		goto out;
	json_decref(rows);
	rows = NULL;
	rc = ml_haproxy_show_servers(&rows, &h);
	if (rc < 0)
		goto out;
	row = find_row(rows, server);
	*result = json_pack(
		"{s:s,s:s,s:s,s:s,s:I}", "server", server,
		"previous_admin_state", prev, "admin_state",
		ml_haproxy_admin_word(
			(long)ml_haproxy_field_int(row, "srv_admin_state", 0)),
		"op_state",
		ml_haproxy_op_word(
			(long)ml_haproxy_field_int(row, "srv_op_state", -1)),
		"weight",
		(json_int_t)ml_haproxy_field_int(row, "srv_uweight", -1));
	if (!*result)
		BUG("out of memory");
out:
	json_decref(rows);
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_set = {
	.name = "lb_set",
	.summary = "set a server's state (ready, drain, maint) and weight in "
		   "the running haproxy, without a reload",
	.run = op_lb_set,
};
