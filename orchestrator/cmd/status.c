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
 *
 * Health is what mlctl's own probe sees (the agent's container_probe: the
 * playbook's health path, once, now), with Docker's word beside it only
 * when the image has a HEALTHCHECK. The load balancer's view is said in
 * words (serving, draining, down since 3m: why). Everything is first put
 * into each container's JSON object (so --json and the table say the same
 * thing); the table is then made by orchestrator/view/status.c, one cell
 * function per column: a new column is one function and one line there.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/log.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/transport/transport.h"
#include "orchestrator/view/status.h"

#include <time.h>
#include <unistd.h>

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_json, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, &ml_opt_watch, &ml_opt_window, NULL,
};

struct status_job {
	struct ml_host_session *hosts;
	json_t **containers; /* per host: array, or NULL on failure */
	json_t **lb;         /* per LB host: its lb_status, or NULL */
	char **list_err;     /* per host: why its agent could not list the
			      * containers (Docker down), or NULL */
	const char *app;
	const char *health_path; /* the playbook's health check */
	int64_t probe_timeout_ms;
	const struct ml_health_spec *health;
	json_t *metrics;     /* orchestrator/metrics: requests per revision */
};

/*
 * mlctl's own health check of running container c, now, through the
 * agent; the answer goes into c as "probe": {"healthy", "http_status",
 * "error", "elapsed_ms"}. An agent too old to probe leaves "probe" with
 * only the error.
 */
static void probe_one(struct status_job *job, struct ml_host_session *h,
		      json_t *c, const char *id)
{
	const char *state = json_string_value(json_object_get(c, "state"));
	json_t *res = NULL;
	int rc;

	if (!state || strcmp(state, "running"))
		return;
	rc = ml_op_container_probe(h, id, job->health_path,
				   job->probe_timeout_ms, job->health, &res);
	if (rc < 0) {
		json_object_set_new(c, "probe",
				    json_pack("{s:n,s:s}", "healthy", "error",
					      ml_err_msg()));
		return;
	}
	json_object_set_new(c, "probe",
			    json_pack("{s:O?,s:O?,s:O?,s:O?}", "healthy",
				      json_object_get(res, "healthy"),
				      "http_status",
				      json_object_get(res, "http_status"),
				      "error", json_object_get(res, "error"),
				      "elapsed_ms",
				      json_object_get(res, "elapsed_ms")));
	json_decref(res);
}

/* list the app's containers, then inspect each for restarts and start
 * time and probe it; the result array is stored per host. */
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
		if (ml_op_lb_status(h, job->app, &res) == 0)
			job->lb[i] = res;
		res = NULL;
	}
	if (!h->target->is_app)
		return 0; /* a load balancer runs no app containers */
	rc = ml_op_list(h, job->app, &res);
	if (rc < 0 && rc != ML_EHOST) {
		/* the host answers, its Docker does not: not unreachable */
		job->list_err[i] = ml_xstrdup(ml_err_msg());
		return rc;
	}
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
		rc = ml_op_inspect(h, id, &ins);
		if (rc < 0)
			continue; /* gone between list and inspect */
		json_object_set(c, "restarts",
				json_object_get(ins, "restarts"));
		json_object_set(c, "started_at",
				json_object_get(ins, "started_at"));
		json_decref(ins);
		probe_one(job, h, c, id);
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

/*
 * The newest revision running anywhere (0 when none) and the spec
 * (mlctl.spec) of a running container of it (NULL when none says).
 */
static int64_t newest_revision(const struct status_job *job, size_t n,
			       const char **spec)
{
	int64_t best = 0;
	json_t *c;
	size_t i, k;

	*spec = NULL;
	for (i = 0; i < n; i++)
		json_array_foreach(job->containers[i], k, c) {
			const char *st =
				json_string_value(json_object_get(c, "state"));
			json_int_t r = json_integer_value(
				json_object_get(c, "revision"));

			if (!st || strcmp(st, "running") || r < best ||
			    (r == best && *spec))
				continue;
			best = r;
			*spec = json_string_value(json_object_get(
				json_object_get(c, "labels"), "mlctl.spec"));
		}
	return best;
}

/* Put what the table and --json both say into each container object
 * (orchestrator/view/status.c). */
static void annotate(const struct status_job *job, size_t n, int64_t now)
{
	json_t *c;
	size_t i, k;

	for (i = 0; i < n; i++)
		json_array_foreach(job->containers[i], k, c) {
			json_object_set(c, "metrics",
					ml_metrics_container(
						job->metrics,
						job->hosts[i].target->name, c)
						?: json_null());
			ml_status_annotate(c, lb_view(job, n,
						      job->hosts[i].target->name,
						      c),
					   now);
		}
}

static json_t *host_json(const struct ml_host_session *h, json_t *cont,
			 json_t *lb, const char *list_err, int64_t newest,
			 const char *newest_spec)
{
	const struct ml_target *t = h->target;
	json_t *o = json_object();

	json_object_set_new(o, "host", json_string(t->name));
	json_object_set_new(o, "address", json_string(t->address));
	json_object_set_new(o, "roles", json_string(ml_status_roles(t)));
	json_object_set_new(o, "reachable", json_boolean(h->rc == 0));
	json_object_set_new(o, "connect_ms", json_integer(h->connect_ms));
	if (h->rc < 0)
		json_object_set_new(o, "error", json_string(h->error));
	else if (list_err)
		json_object_set_new(o, "error", json_string(list_err));
	if (h->hello) {
		json_object_set_new(
			o, "agent_version",
			json_string(ml_status_hello_str(h->hello, "agent_version", NULL)));
		json_object_set(o, "docker",
				json_object_get(h->hello, "docker"));
		json_object_set(o, "gpus", json_object_get(h->hello, "gpus"));
	}
	json_object_set_new(o, "containers", cont ? json_incref(cont)
						  : json_array());
	if (t->is_app)
		json_object_set_new(o, "drifted",
				    json_boolean(ml_status_drifted(
					    cont, newest, newest_spec)));
	if (lb)
		json_object_set(o, "lb", lb);
	return o;
}

/*
 * Below the table, on stderr, what a person should do about a reachable
 * host: its Docker is not answering (the agent's error says what to
 * install or start), or its agent could not probe (usually too old: the
 * error says to run bootstrap). Once per host; text from hosts escaped.
 */
static void print_notes(const struct status_job *job, size_t n)
{
	struct ml_buf esc = ML_BUF_INIT(2048);
	const char *err;
	json_t *c;
	size_t i, k;

	for (i = 0; i < n; i++) {
		const struct ml_host_session *h = &job->hosts[i];

		if (h->rc < 0 || !h->target->is_app)
			continue;
		err = ml_status_hello_str(h->hello, "docker", "error");
		if (err && !ml_status_hello_str(h->hello, "docker", "version")) {
			ml_buf_reset(&esc);
			ml_escape(&esc, err, strlen(err));
			fprintf(stderr, "mlctl: %s: docker is not reachable: "
				"%s\n", h->target->name, ml_buf_str(&esc));
		} else if (job->list_err[i]) {
			fprintf(stderr, "mlctl: %s: %s\n", h->target->name,
				job->list_err[i]);
		}
		json_array_foreach(job->containers[i], k, c) {
			json_t *p = json_object_get(c, "probe");

			err = json_string_value(json_object_get(p, "error"));
			if (!p || !json_is_null(json_object_get(p, "healthy")) ||
			    !err)
				continue;
			ml_buf_reset(&esc);
			ml_escape(&esc, err, strlen(err));
			fprintf(stderr, "mlctl: %s: cannot check health: %s\n",
				h->target->name, ml_buf_str(&esc));
			break;
		}
	}
	ml_buf_release(&esc);
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
	struct status_job job = { 0 };
	const struct ml_playbook *pb = ctx->config->playbook;
	size_t n = ss->n, i, down = 0, nodocker = 0;
	int64_t now = (int64_t)time(NULL), newest;
	const char *newest_spec;

	job.hosts = hosts;
	job.containers = ml_xcalloc(n ? n : 1, sizeof(*job.containers));
	job.lb = ml_xcalloc(n ? n : 1, sizeof(*job.lb));
	job.list_err = ml_xcalloc(n ? n : 1, sizeof(*job.list_err));
	job.app = pb->app;
	job.health_path = pb->health.path ? pb->health.path : "/";
	job.health = &pb->health;
	job.probe_timeout_ms = pb->health.timeout_ms > 0 ?
				       pb->health.timeout_ms : 1000;
	ml_parallel_run(n, ss->fo->parallel, status_one, &job);
	newest = newest_revision(&job, n, &newest_spec);
	ml_metrics_collect(&job.metrics, hosts, n, job.containers, job.app,
			   ss->window_ms);
	annotate(&job, n, now);

	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "app", json_string(job.app));
		json_object_set_new(doc, "commit",
				    json_string(ctx->config->commit));
		for (i = 0; i < n; i++)
			json_array_append_new(
				arr, host_json(&hosts[i], job.containers[i],
					       job.lb[i], job.list_err[i],
					       newest, newest_spec));
		json_object_set_new(doc, "hosts", arr);
		json_object_set(doc, "metrics", job.metrics);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else {
		ml_status_print_table(stdout, hosts, job.containers, n, newest,
				      newest_spec,
				      ml_colour_wanted(STDOUT_FILENO));
		ml_metrics_print(stdout, job.metrics);
		fflush(stdout);
		print_notes(&job, n);
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
		nodocker += job.list_err[i] != NULL;
		free(job.list_err[i]);
	}
	free(job.containers);
	free(job.lb);
	free(job.list_err);
	json_decref(job.metrics);
	if (down)
		return ml_err_set(ML_EHOST, "%zu of %zu host%s unreachable",
				  down, n, n == 1 ? " is" : "s are");
	if (nodocker)
		return ml_err_set(ML_EHOST, "%zu of %zu host%s could not list "
				  "the app's containers", nodocker, n,
				  n == 1 ? "" : "s");
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
