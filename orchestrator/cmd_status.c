/*
 * mlctl status: every host of the desired state at a glance: reachable or
 * not, agent and Docker versions, and the app's containers with revision,
 * state, health, uptime and restarts, as the agents report them. Hosts are
 * asked in parallel; an unreachable host shows as such within the connect
 * timeout while the others report. Each container also shows how the
 * load balancer sees its slot (HAProxy's state and current sessions), and
 * hosts running an older revision than the newest one found are flagged as
 * drifted. Exit status 6 when any host could not be reached, after the
 * whole table is printed.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/transport/transport.h"

#include <time.h>

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_json, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, &ml_opt_watch, &ml_opt_window, NULL,
};

struct status_job {
	struct ml_host_session *hosts;
	json_t **containers; /* per host: array, or NULL on failure */
	json_t **lb;         /* per LB host: its lb_status, or NULL */
	const char *app;
	json_t *metrics;     /* orchestrator/metrics: requests per revision */
};

/* Docker's "2026-11-26T06:22:38.123456789Z" -> unix seconds, 0 if none. */
static int64_t parse_docker_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s || !*s || !strncmp(s, "0001-", 5))
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

/* list the app's containers, then inspect each for restarts and start
 * time; the result array is stored per host. */
static int status_one(size_t i, void *arg)
{
	struct status_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	json_t *res = NULL, *list, *c, *ins;
	size_t k;
	int rc;

	if (h->rc < 0)
		return h->rc;
	if (h->target->is_lb) {
		/* the balancer's view; absent until the app is deployed */
		if (ml_host_call(h, "lb_status",
				 json_pack("{s:s}", "app", job->app), &res) == 0)
			job->lb[i] = res;
		res = NULL;
	}
	if (!h->target->is_app)
		return 0; /* a load balancer runs no app containers */
	rc = ml_host_call(h, "list", json_pack("{s:s}", "app", job->app),
			  &res);
	if (rc < 0) {
		ml_host_fail(h, rc);
		return rc;
	}
	list = json_object_get(res, "containers");
	if (!json_is_array(list)) {
		json_decref(res);
		rc = ml_err_set(ML_EPROTO, "list: no containers in the reply");
		ml_host_fail(h, rc);
		return rc;
	}
	json_array_foreach(list, k, c) {
		const char *id = json_string_value(json_object_get(c, "id"));

		if (!id)
			continue;
		ins = NULL;
		rc = ml_host_call(h, "inspect", json_pack("{s:s}", "id", id),
				  &ins);
		if (rc < 0)
			continue; /* gone between list and inspect */
		json_object_set(c, "restarts",
				json_object_get(ins, "restarts"));
		json_object_set(c, "started_at",
				json_object_get(ins, "started_at"));
		json_decref(ins);
	}
	job->containers[i] = json_incref(list);
	json_decref(res);
	return 0;
}

/* The balancer's entry for container c of host, from the first balancer
 * that knows its slot ("<host>-<replica><slot>"), or NULL. */
static json_t *lb_view(const struct status_job *job, size_t n,
		       const char *host, json_t *c)
{
	const char *slot = json_string_value(json_object_get(c, "slot"));
	const char *rep = json_string_value(json_object_get(
		json_object_get(c, "labels"), "mlctl.replica"));
	char name[256];
	json_t *srv;
	size_t i, k;

	if (!slot || !rep)
		return NULL;
	snprintf(name, sizeof(name), "%s-%s%s", host, rep, slot);
	for (i = 0; i < n; i++)
		json_array_foreach(json_object_get(job->lb[i], "servers"), k,
				   srv)
			if (!strcmp(json_string_value(json_object_get(
					    srv, "name")) ?: "",
				    name))
				return srv;
	return NULL;
}

/* The newest revision running anywhere, 0 when none. */
static int64_t newest_revision(const struct status_job *job, size_t n)
{
	int64_t best = 0;
	json_t *c;
	size_t i, k;

	for (i = 0; i < n; i++)
		json_array_foreach(job->containers[i], k, c) {
			const char *st =
				json_string_value(json_object_get(c, "state"));
			json_int_t r = json_integer_value(
				json_object_get(c, "revision"));

			if (st && !strcmp(st, "running") && r > best)
				best = r;
		}
	return best;
}

/* A host drifted when none of its running containers is of revision. */
static bool drifted(json_t *cont, int64_t revision)
{
	json_t *c;
	size_t k;

	if (!revision || !json_array_size(cont))
		return false;
	json_array_foreach(cont, k, c) {
		const char *st = json_string_value(json_object_get(c, "state"));

		if (st && !strcmp(st, "running") &&
		    json_integer_value(json_object_get(c, "revision")) ==
			    revision)
			return false;
	}
	return true;
}

static const char *roles_of(const struct ml_target *t)
{
	return t->is_app && t->is_lb ? "app,lb" : t->is_lb ? "lb" : "app";
}

static const char *hello_str(const json_t *hello, const char *a,
			     const char *b)
{
	json_t *v = json_object_get(hello, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static json_t *host_json(const struct status_job *job, size_t nh,
			 const struct ml_host_session *h, json_t *cont,
			 json_t *lb, int64_t newest)
{
	const struct ml_target *t = h->target;
	json_t *o = json_object(), *c;
	size_t k;

	json_object_set_new(o, "host", json_string(t->name));
	json_object_set_new(o, "address", json_string(t->address));
	json_object_set_new(o, "roles", json_string(roles_of(t)));
	json_object_set_new(o, "reachable", json_boolean(h->rc == 0));
	json_object_set_new(o, "connect_ms", json_integer(h->connect_ms));
	if (h->rc < 0)
		json_object_set_new(o, "error", json_string(h->error));
	if (h->hello) {
		json_object_set_new(
			o, "agent_version",
			json_string(hello_str(h->hello, "agent_version", NULL)));
		json_object_set(o, "docker",
				json_object_get(h->hello, "docker"));
		json_object_set(o, "gpus", json_object_get(h->hello, "gpus"));
	}
	json_array_foreach(cont, k, c) {
		json_t *v = lb_view(job, nh, t->name, c);

		json_object_set(c, "metrics",
				ml_metrics_container(job->metrics, t->name, c)
					?: json_null());
		if (v)
			json_object_set_new(
				c, "lb",
				json_pack("{s:O?,s:O?,s:O?}", "op_state",
					  json_object_get(v, "op_state"),
					  "admin_state",
					  json_object_get(v, "admin_state"),
					  "cur_sessions",
					  json_object_get(v, "cur_sessions")));
	}
	json_object_set_new(o, "containers", cont ? json_incref(cont)
						  : json_array());
	if (t->is_app)
		json_object_set_new(o, "drifted",
				    json_boolean(drifted(cont, newest)));
	if (lb)
		json_object_set(o, "lb", lb);
	return o;
}

static void add_rows(struct ml_table *t, const struct status_job *job,
		     size_t nh, const struct ml_host_session *h, json_t *cont,
		     int64_t now, int64_t newest)
{
	const struct ml_target *tg = h->target;
	const char *agent = NULL, *docker = NULL;
	const char *cells[13];
	json_t *c;
	size_t k;

	if (h->hello) {
		agent = hello_str(h->hello, "agent_version", NULL);
		docker = hello_str(h->hello, "docker", "version");
		if (!docker && tg->is_app && json_object_get(h->hello, "docker"))
			docker = "down";
	}
	cells[0] = tg->name;
	cells[1] = tg->address;
	cells[2] = roles_of(tg);
	cells[3] = h->rc == 0 ? "up" : "unreachable";
	cells[4] = agent;
	cells[5] = docker;
	if (!cont || !json_array_size(cont)) {
		cells[6] = cells[7] = cells[8] = cells[9] = cells[10] =
			cells[11] = cells[12] = NULL;
		ml_table_add(t, cells);
		return;
	}
	json_array_foreach(cont, k, c) {
		char up[ML_FMT_MAX], restarts[24], rev[40], lbtxt[64];
		json_t *v = lb_view(job, nh, tg->name, c);
		json_t *jrev = json_object_get(c, "revision");
		int64_t started = parse_docker_time(json_string_value(
			json_object_get(c, "started_at")));
		const char *state =
			json_string_value(json_object_get(c, "state"));
		json_t *r = json_object_get(c, "restarts");

		cells[6] = json_string_value(json_object_get(c, "name"));
		snprintf(rev, sizeof(rev), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(jrev));
		if (json_is_integer(jrev) && drifted(cont, newest))
			snprintf(rev, sizeof(rev), "%" JSON_INTEGER_FORMAT
				 " (drifted)", json_integer_value(jrev));
		cells[7] = json_is_integer(jrev) ? rev : NULL;
		cells[8] = state;
		cells[9] = json_string_value(json_object_get(c, "health"));
		if (started && state && !strcmp(state, "running") &&
		    now >= started)
			ml_fmt_duration(up, (now - started) * 1000);
		else
			snprintf(up, sizeof(up), "-");
		snprintf(restarts, sizeof(restarts), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(r));
		cells[10] = up;
		cells[11] = r ? restarts : NULL;
		snprintf(lbtxt, sizeof(lbtxt), "%s, %" JSON_INTEGER_FORMAT
			 " sessions",
			 json_string_value(json_object_get(v, "op_state")) ?: "?",
			 json_integer_value(json_object_get(v, "cur_sessions")));
		cells[12] = v ? lbtxt : NULL;
		ml_table_add(t, cells);
		/* further rows for this host leave the host columns blank */
		cells[0] = cells[1] = cells[2] = cells[3] = cells[4] =
			cells[5] = "";
	}
}

struct status_show {
	struct ml_ctx *ctx;
	struct ml_host_session *hosts;
	size_t n;
	const struct ml_fleet_opts *fo;
	int64_t window_ms;
};

/* One look at the connected hosts: collect, print. */
static int status_show(void *arg)
{
	struct status_show *ss = arg;
	struct ml_ctx *ctx = ss->ctx;
	struct ml_host_session *hosts = ss->hosts;
	size_t n = ss->n, i, down = 0;
	static const char *const hdr[] = { "HOST",   "ADDRESS",  "ROLES",
					   "SSH",    "AGENT",    "DOCKER",
					   "CONTAINER", "REV",   "STATE",
					   "HEALTH", "UPTIME", "RESTARTS",
					   "LB" };
	struct status_job job = { 0 };
	struct ml_table *t = NULL;
	int64_t now = (int64_t)time(NULL), newest;

	job.hosts = hosts;
	job.containers = ml_xcalloc(n ? n : 1, sizeof(*job.containers));
	job.lb = ml_xcalloc(n ? n : 1, sizeof(*job.lb));
	job.app = ctx->config->playbook->app;
	ml_parallel_run(n, ss->fo->parallel, status_one, &job);
	newest = newest_revision(&job, n);
	ml_metrics_collect(&job.metrics, hosts, n, job.containers, job.app,
			   ss->window_ms);

	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "app", json_string(job.app));
		json_object_set_new(doc, "commit",
				    json_string(ctx->config->commit));
		for (i = 0; i < n; i++)
			json_array_append_new(
				arr, host_json(&job, n, &hosts[i],
					       job.containers[i], job.lb[i],
					       newest));
		json_object_set_new(doc, "hosts", arr);
		json_object_set(doc, "metrics", job.metrics);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else {
		t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
		for (i = 0; i < n; i++)
			add_rows(t, &job, n, &hosts[i], job.containers[i], now,
				 newest);
		ml_table_print(t, stdout);
		ml_table_free(t);
		ml_metrics_print(stdout, job.metrics);
	}
	for (i = 0; i < n; i++) {
		if (hosts[i].rc == 0)
			continue;
		down++;
		if (!ml_ctx_flag(ctx, OPT_JSON))
			fprintf(stderr, "mlctl: %s: %s\n", hosts[i].target->name,
				hosts[i].error);
	}
	for (i = 0; i < n; i++) {
		json_decref(job.containers[i]);
		json_decref(job.lb[i]);
	}
	free(job.containers);
	free(job.lb);
	json_decref(job.metrics);
	if (down)
		return ml_err_set(ML_EHOST, "%zu of %zu host%s unreachable",
				  down, n, n == 1 ? " is" : "s are");
	return 0;
}

static int status_run(struct ml_ctx *ctx)
{
	struct ml_fleet_opts fo;
	struct status_show ss = { ctx, NULL, 0, &fo, 60000 };
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "status takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc == 0)
		rc = ml_metrics_window(&ss.window_ms, ctx->opt[OPT_WINDOW]);
	if (rc < 0)
		return rc;
	rc = ml_fleet_connect(&ss.hosts, &ss.n, ctx->config, &fo, NULL);
	if (rc < 0)
		return rc;
	if (ml_ctx_flag(ctx, OPT_WATCH))
		rc = ml_metrics_watch(status_show, &ss);
	else
		rc = status_show(&ss);
	ml_fleet_close(ss.hosts, ss.n);
	return rc;
}

const struct ml_cmd ml_cmd_status = {
	.name = "status",
	.summary = "show every host, its containers, revision and health",
	.usage = "[--json] [--watch] [--window DURATION] [--timeout DURATION] "
		 "[--trust-new-hosts]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = status_run,
};
