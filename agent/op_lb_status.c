/*
 * lb_status and lb_wait_drained: what the running HAProxy of one app says
 * about its servers, read through the runtime API (`show stat`, a CSV
 * parsed by its header names, and `show servers state`).
 *
 * lb_status
 *	args:   {"app"}
 *	result: {"running", "master_pid", "worker_pid",
 *		 "servers": [{"name", "address", "port", "admin_state"
 *			(ready|drain|maint), "op_state" (HAProxy's status:
 *			"UP", "DOWN", "MAINT", "DRAIN", "UP 1/3", "no check"),
 *			"health" (up|down|starting|stopping), "check_status"
 *			("L7OK", "L4CON", ...), "check_desc", "weight",
 *			"effective_weight", "cur_sessions", "total_sessions",
 *			"queue", "http_2xx", "http_5xx", "last_change_s"}],
 *		 "frontend": {"cur_sessions", "req_total", "req_rate",
 *			"http_2xx", "http_5xx"},
 *		 "backend": {"status", "cur_sessions", "http_5xx", "retries",
 *			"redispatches", "conn_errors", "resp_errors"}}
 *	An app without a running HAProxy is {"running": false, "servers": []}.
 *	Servers are in configuration order.
 *
 * lb_wait_drained
 *	args:   {"app", "server", "timeout_ms" (30000, at most 1 h)}
 *	result: {"drained", "waited_ms", "cur_sessions"}
 *	Polls the server's current and queued sessions every 100 ms until
 *	both are 0 (drained) or the timeout passes (not drained, not an
 *	error). A server HAProxy does not have is "not-found".
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"

#include <limits.h>
#include <time.h>

#define WAIT_STEP_MS 100
#define WAIT_MAX_MS 3600000

/* The `show stat` row of proxy px, service sv (borrowed), or NULL. */
static json_t *stat_row(json_t *rows, const char *px, const char *sv)
{
	const char *p, *s;
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
	{
		p = json_string_value(json_object_get(row, "pxname"));
		s = json_string_value(json_object_get(row, "svname"));
		if (p && s && !strcmp(p, px) && !strcmp(s, sv))
			return row;
	}
	return NULL;
}

static void set_num(json_t *o, const char *key, json_t *row, const char *field)
{
	long long v = ml_haproxy_field_int(row, field, LLONG_MIN);

	json_object_set_new(o, key,
			    v == LLONG_MIN ? json_null() : json_integer(v));
}

static void set_text(json_t *o, const char *key, json_t *row, const char *field)
{
	json_t *v = json_object_get(row, field);
	const char *s = json_string_value(v);

	json_object_set_new(o, key,
			    s && *s && strcmp(s, "-") ? json_incref(v)
						      : json_null());
}

static json_t *server_json(json_t *st, json_t *stat, const char *app)
{
	const char *name = json_string_value(json_object_get(st, "srv_name"));
	const char *fqdn = json_string_value(json_object_get(st, "srv_fqdn"));
	json_t *o = json_object(), *row = stat_row(stat, app, name);

	ml_agent_set_str(o, "name", name);
	if (fqdn && *fqdn && strcmp(fqdn, "-"))
		ml_agent_set_str(o, "address", fqdn);
	else
		set_text(o, "address", st, "srv_addr");
	set_num(o, "port", st, "srv_port");
	ml_agent_set_str(o, "admin_state",
			 ml_haproxy_admin_word((long)ml_haproxy_field_int(
				 st, "srv_admin_state", 0)));
	set_text(o, "op_state", row, "status");
	ml_agent_set_str(o, "health",
			 ml_haproxy_op_word((long)ml_haproxy_field_int(
				 st, "srv_op_state", -1)));
	set_text(o, "check_status", row, "check_status");
	set_text(o, "check_desc", row, "check_desc");
	set_num(o, "weight", st, "srv_uweight");
	set_num(o, "effective_weight", row, "weight");
	set_num(o, "cur_sessions", row, "scur");
	set_num(o, "total_sessions", row, "stot");
	set_num(o, "queue", row, "qcur");
	set_num(o, "http_2xx", row, "hrsp_2xx");
	set_num(o, "http_5xx", row, "hrsp_5xx");
	set_num(o, "last_change_s", row, "lastchg");
	return o;
}

static int op_lb_status(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = {.lock_fd = -1};
	json_t *stat = NULL, *servers = NULL, *r = NULL, *list, *row, *o;
	char fe[ML_LB_NAME_MAX + 8];
	const char *app;
	pid_t master, worker = 0;
	size_t i;
	int rc;

	rc = ml_agent_arg_name(&app, args, "lb_status", "app", false);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_master_pid(&master, &h);
	if (rc < 0)
		goto out;
	r = json_object();
	list = json_array();
	json_object_set_new(r, "running", json_boolean(master != 0));
	json_object_set_new(r, "servers", list);
	if (!master) {
		json_object_set_new(r, "master_pid", json_null());
		json_object_set_new(r, "worker_pid", json_null());
		json_object_set_new(r, "frontend", json_null());
		json_object_set_new(r, "backend", json_null());
		goto done;
	}
	rc = ml_haproxy_worker_pid(&worker, &h);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_show_servers(&servers, &h);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_show_stat(&stat, &h);
	if (rc < 0)
		goto out;
	json_object_set_new(r, "master_pid", json_integer(master));
	json_object_set_new(r, "worker_pid", json_integer(worker));
	json_array_foreach(servers, i, row)
		json_array_append_new(list, server_json(row, stat, app));

	snprintf(fe, sizeof(fe), "fe_%s", app);
	row = stat_row(stat, fe, "FRONTEND");
	o = json_object();
	set_num(o, "cur_sessions", row, "scur");
	set_num(o, "req_total", row, "req_tot");
	set_num(o, "req_rate", row, "req_rate");
	set_num(o, "http_2xx", row, "hrsp_2xx");
	set_num(o, "http_5xx", row, "hrsp_5xx");
	json_object_set_new(r, "frontend", o);

	row = stat_row(stat, app, "BACKEND");
	o = json_object();
	set_text(o, "status", row, "status");
	set_num(o, "cur_sessions", row, "scur");
	set_num(o, "http_5xx", row, "hrsp_5xx");
	set_num(o, "retries", row, "wretr");
	set_num(o, "redispatches", row, "wredis");
	set_num(o, "conn_errors", row, "econ");
	set_num(o, "resp_errors", row, "eresp");
	json_object_set_new(r, "backend", o);
done:
	*result = r;
	r = NULL;
	rc = 0;
out:
	json_decref(r);
	json_decref(stat);
	json_decref(servers);
	ml_haproxy_release(&h);
	return rc;
}

static int op_lb_wait_drained(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = {.lock_fd = -1};
	const char *app, *server;
	int64_t t0 = ml_mono_ms(), timeout = 30000;
	long long cur = -1, queued;
	struct timespec step = {0, WAIT_STEP_MS * 1000000L};
	json_t *stat = NULL, *row, *jt;
	bool drained = false;
	pid_t master;
	int rc;

	rc = ml_agent_arg_name(&app, args, "lb_wait_drained", "app", false);
	if (rc < 0)
		goto out;
	rc = ml_agent_arg_name(&server, args, "lb_wait_drained", "server",
			       false);
	if (rc < 0)
		goto out;
	jt = json_object_get(args, "timeout_ms");
	if (jt && !json_is_null(jt)) {
		if (!json_is_integer(jt) || json_integer_value(jt) < 0 ||
		    json_integer_value(jt) > WAIT_MAX_MS) {
			rc = ml_err_set(ML_EPROTO,
					"lb_wait_drained: 'timeout_ms' must be "
					"an integer from 0 to %d",
					WAIT_MAX_MS);
			goto out;
		}
		timeout = json_integer_value(jt);
	}
	rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_master_pid(&master, &h);
	if (rc < 0)
		goto out;
	if (!master) {
		rc = ml_err_set(ML_ENOTFOUND,
				"lb_wait_drained: haproxy for app '%s' is not "
				"running on this host",
				app);
		goto out;
	}
	for (;;) {
		json_decref(stat);
		stat = NULL;
		rc = ml_haproxy_show_stat(&stat, &h);
		if (rc < 0)
			goto out;
		row = stat_row(stat, app, server);
		if (!row) {
			rc = ml_err_set(ML_ENOTFOUND,
					"lb_wait_drained: app '%s' has no "
					"server '%s' on this load balancer",
					app, server);
			goto out;
		}
		cur = ml_haproxy_field_int(row, "scur", 0);
		queued = ml_haproxy_field_int(row, "qcur", 0);
		if (cur == 0 && queued == 0) {
			drained = true;
			break;
		}
		if (ml_mono_ms() - t0 >= timeout)
			break;
		nanosleep(&step, NULL);
	}
	*result = json_pack("{s:b,s:I,s:I}", "drained", drained, "waited_ms",
			    (json_int_t)(ml_mono_ms() - t0), "cur_sessions",
			    (json_int_t)cur);
	if (!*result)
		BUG("out of memory");
	rc = 0;
out:
	json_decref(stat);
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_status = {
	.name = "lb_status",
	.summary = "the servers, states, health and counters of an app's "
		   "haproxy",
	.run = op_lb_status,
};

const struct ml_agent_op ml_agent_op_lb_wait_drained = {
	.name = "lb_wait_drained",
	.summary = "wait until a server in haproxy has no sessions left",
	.run = op_lb_wait_drained,
};
