/*
 * mlctl status: every host of the desired state at a glance: reachable or
 * not, agent and Docker versions, and the app's containers with revision,
 * state, health, uptime and restarts, as the agents report them. Hosts are
 * asked in parallel; an unreachable host shows as such within the connect
 * timeout while the others report. Exit status 6 when any host could not
 * be reached, after the whole table is printed.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/transport/transport.h"

#include <time.h>

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_json, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, NULL,
};

struct status_job {
	struct ml_host_session *hosts;
	json_t **containers; /* per host: array, or NULL on failure */
	const char *app;
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

static json_t *host_json(const struct ml_host_session *h, json_t *cont)
{
	const struct ml_target *t = h->target;
	json_t *o = json_object();

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
	json_object_set_new(o, "containers", cont ? json_incref(cont)
						  : json_array());
	return o;
}

static void add_rows(struct ml_table *t, const struct ml_host_session *h,
		     json_t *cont, int64_t now)
{
	const struct ml_target *tg = h->target;
	const char *agent = NULL, *docker = NULL;
	const char *cells[12];
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
			cells[11] = NULL;
		ml_table_add(t, cells);
		return;
	}
	json_array_foreach(cont, k, c) {
		char up[ML_FMT_MAX], restarts[24], rev[24];
		json_t *jrev = json_object_get(c, "revision");
		int64_t started = parse_docker_time(json_string_value(
			json_object_get(c, "started_at")));
		const char *state =
			json_string_value(json_object_get(c, "state"));
		json_t *r = json_object_get(c, "restarts");

		cells[6] = json_string_value(json_object_get(c, "name"));
		snprintf(rev, sizeof(rev), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(jrev));
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
		ml_table_add(t, cells);
		/* further rows for this host leave the host columns blank */
		cells[0] = cells[1] = cells[2] = cells[3] = cells[4] =
			cells[5] = "";
	}
}

static int status_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "HOST",   "ADDRESS",  "ROLES",
					   "SSH",    "AGENT",    "DOCKER",
					   "CONTAINER", "REV",   "STATE",
					   "HEALTH", "UPTIME", "RESTARTS" };
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct status_job job = { 0 };
	struct ml_table *t = NULL;
	size_t n = 0, i, down = 0;
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "status takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, NULL);
	if (rc < 0)
		return rc;
	job.hosts = hosts;
	job.containers = ml_xcalloc(n ? n : 1, sizeof(*job.containers));
	job.app = ctx->config->playbook->app;
	ml_parallel_run(n, fo.parallel, status_one, &job);

	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "app", json_string(job.app));
		json_object_set_new(doc, "commit",
				    json_string(ctx->config->commit));
		for (i = 0; i < n; i++)
			json_array_append_new(
				arr, host_json(&hosts[i], job.containers[i]));
		json_object_set_new(doc, "hosts", arr);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else {
		t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
		for (i = 0; i < n; i++)
			add_rows(t, &hosts[i], job.containers[i], now);
		ml_table_print(t, stdout);
		ml_table_free(t);
	}
	for (i = 0; i < n; i++) {
		if (hosts[i].rc == 0)
			continue;
		down++;
		if (!ml_ctx_flag(ctx, OPT_JSON))
			fprintf(stderr, "mlctl: %s: %s\n", hosts[i].target->name,
				hosts[i].error);
	}
	for (i = 0; i < n; i++)
		json_decref(job.containers[i]);
	free(job.containers);
	ml_fleet_close(hosts, n);
	if (down)
		return ml_err_set(ML_EHOST, "%zu of %zu host%s unreachable",
				  down, n, n == 1 ? " is" : "s are");
	return 0;
}

const struct ml_cmd ml_cmd_status = {
	.name = "status",
	.summary = "show every host, its containers, revision and health",
	.usage = "[--json] [--timeout DURATION] [--trust-new-hosts]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = status_run,
};
