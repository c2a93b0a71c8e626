/*
 * The rollout engine (see rollout.h). Threads: hosts of a batch converge
 * in parallel (ml_parallel_run), each thread talking to its own host's
 * agent; load-balancer agents are shared, so every call to one goes
 * through that balancer's mutex, and long waits (HAProxy seeing a server
 * up, a server draining) poll with the mutex released between calls.
 *
 * Order inside one replica, the heart of zero downtime:
 *   start new -> healthy -> LB ready(new) -> LB sees it UP ->
 *   LB drain(old) -> no sessions (or drain timeout) -> LB maint(old) ->
 *   stop old.
 * The last "stop old" of a host (Docker's stop, 0.7 s for the example
 * app, up to the stop timeout for one that ignores SIGTERM) is no longer
 * the rollout's business once the old container takes no traffic: a
 * batch's stops run in a thread of their own while the batches after it
 * converge on other hosts, and are waited for before the rollout ends
 * and on every way out of it. A host counts as updated once its stop is
 * done; a stop that fails counts against the failure budget when the
 * rollout ends.
 * Before the first batch every balancer gets the full server list (two
 * slots per replica per host), each slot ready when a container runs in it
 * and in maintenance otherwise; HAProxy reloads only when that list
 * changed (hosts or replicas added), never for a state change.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sha256.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/apply/rollout_int.h"
#include "orchestrator/secrets.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/plan/fleet.h"
#include "orchestrator/plan/plan.h"
#include "orchestrator/transport/transport.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define LB_UP_TIMEOUT_MS 60000
/* balancer polls: the first at once, then 20 ms doubling up to 200 ms
 * (HAProxy sees a server up, or a drained one idle, within a few tens of
 * ms; a fixed 200 ms cost each host of a batch that much twice) */
#define POLL_FIRST_MS 20
#define POLL_MS 200
/* batches whose replaced containers may be stopping at once */
#define RETIRE_BATCHES 16

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void ml_test_crash_point(const char *name)
{
	const char *at = getenv("MLCTL_TEST_CRASH_AT");
	const char *intr = getenv("MLCTL_TEST_SIGINT_AT");
	const char *stop = getenv("MLCTL_TEST_STOP_AT");

	if (stop && !strcmp(stop, name)) {
		/* frozen like a suspended laptop until SIGCONT */
		fprintf(stderr, "mlctl: test point '%s': stopping\n", name);
		fflush(NULL);
		raise(SIGSTOP);
	}
	if (intr && !strcmp(intr, name)) {
		fprintf(stderr, "mlctl: test point '%s': sending SIGINT\n",
			name);
		raise(SIGINT);
	}
	if (at && !strcmp(at, name)) {
		fprintf(stderr, "mlctl: test crash point '%s' reached\n",
			name);
		fflush(NULL);
		raise(SIGKILL);
	}
}

/* ---- the container's shape ---------------------------------------------- */

static void run_env(json_t *args, const struct ml_rollout *ro)
{
	const struct ml_playbook *pb = ro->cfg->playbook;
	json_t *env = json_object();
	size_t i;

	for (i = 0; i < pb->env.n; i++)
		json_object_set_new(env, pb->env.v[i].key,
				    json_string(pb->env.v[i].value));
	json_object_set_new(args, "env", env);
}

static void hash_env(json_t *o, const struct ml_config *cfg,
		     const char *image_id)
{
	const struct ml_playbook *pb = cfg->playbook;
	json_t *env = json_object();
	size_t i;

	ML_UNUSED(image_id);
	for (i = 0; i < pb->env.n; i++)
		json_object_set_new(env, pb->env.v[i].key,
				    json_string(pb->env.v[i].value));
	json_object_set_new(o, "env", env);
}

static void run_image(json_t *args, const struct ml_rollout *ro)
{
	json_object_set_new(args, "image", json_string(ro->image_id));
}

static void hash_image(json_t *o, const struct ml_config *cfg,
		       const char *image_id)
{
	ML_UNUSED(cfg);
	json_object_set_new(o, "image", json_string(image_id));
}

static void run_port(json_t *args, const struct ml_rollout *ro)
{
	json_object_set_new(args, "port",
			    json_integer(ro->cfg->playbook->port));
}

static void hash_port(json_t *o, const struct ml_config *cfg,
		      const char *image_id)
{
	ML_UNUSED(image_id);
	json_object_set_new(o, "port", json_integer(cfg->playbook->port));
}

static void run_secrets(json_t *args, const struct ml_rollout *ro)
{
	json_object_set_new(args, "secrets",
			    ro->secrets ? json_incref(ro->secrets)
					: json_object());
}

/* the names here; the values by a keyed digest in ml_secrets_spec */
static void hash_secrets(json_t *o, const struct ml_config *cfg,
			 const char *image_id)
{
	const struct ml_playbook *pb = cfg->playbook;
	json_t *sec = json_array();
	size_t i;

	ML_UNUSED(image_id);
	for (i = 0; i < pb->secrets.n; i++)
		json_array_append_new(sec, json_string(pb->secrets.v[i]));
	json_object_set_new(o, "secrets", sec);
}

static void run_resources(json_t *args, const struct ml_rollout *ro)
{
	const struct ml_resources_spec *r = &ro->cfg->playbook->resources;

	json_object_set_new(args, "resources",
			    json_pack("{s:f,s:I,s:i}", "cpus", r->cpus,
				      "memory_bytes",
				      (json_int_t)r->memory_bytes, "gpus",
				      r->gpus));
}

static void hash_resources(json_t *o, const struct ml_config *cfg,
			   const char *image_id)
{
	const struct ml_resources_spec *r = &cfg->playbook->resources;

	ML_UNUSED(image_id);
	json_object_set_new(o, "cpus", json_real(r->cpus));
	json_object_set_new(o, "memory", json_integer(r->memory_bytes));
	json_object_set_new(o, "gpus", json_integer(r->gpus));
}

static void run_security(json_t *args, const struct ml_rollout *ro)
{
	json_object_set_new(args, "security",
			    ml_security_json(&ro->cfg->playbook->security,
					     ro->cfg));
}

static json_t *health_json(const struct ml_config *cfg);

/* the check the container takes traffic with, kept in its mlctl.health
 * label: not its shape (a changed path alone is in the spec, below) */
static void run_health(json_t *args, const struct ml_rollout *ro)
{
	json_object_set_new(args, "health", health_json(ro->cfg));
}

static void run_logs(json_t *args, const struct ml_rollout *ro)
{
	const struct ml_logs_spec *l = &ro->cfg->playbook->logs;

	json_object_set_new(args, "logs",
			    json_pack("{s:I,s:i}", "max_size_bytes",
				      (json_int_t)l->max_size_bytes,
				      "max_files", l->max_files));
}

/* log rotation is fixed at create: other values roll the containers (the
 * default leaves the digest of existing deployments as it was) */
static void hash_logs(json_t *o, const struct ml_config *cfg,
		      const char *image_id)
{
	const struct ml_logs_spec *l = &cfg->playbook->logs;

	ML_UNUSED(image_id);
	if (l->max_size_bytes != (int64_t)10 << 20 || l->max_files != 3)
		json_object_set_new(o, "logs",
				    json_pack("[I,i]",
					      (json_int_t)l->max_size_bytes,
					      l->max_files));
}

/*
 * Every argument of container_run that comes from the desired state,
 * listed once: what the container gets (run) and, for a key that shapes
 * it, what the spec hash takes (hash). A key that shapes the container
 * without a hash function here is folded into the spec by
 * ml_secrets_spec (orchestrator/secrets.c). Adding a container-shaping
 * playbook key means one row here; tests/unit/apply/test_spec.c fails when
 * a container_run argument is missing from this table or a shaping key
 * leaves the hash unchanged. The arguments that say which container this
 * is (app, revision, slot, replica, commit, host_port, spec) are added by
 * ml_rollout_run_args and listed as ML_RUN_NAMES.
 */
static const struct run_key {
	const char *arg;
	enum ml_run_key_kind kind;
	void (*run)(json_t *args, const struct ml_rollout *ro);
	void (*hash)(json_t *o, const struct ml_config *cfg,
		     const char *image_id);
} run_keys[] = {
	{ "image", ML_RUN_SHAPES, run_image, hash_image },
	{ "port", ML_RUN_SHAPES, run_port, hash_port },
	{ "env", ML_RUN_SHAPES, run_env, hash_env },
	{ "secrets", ML_RUN_SHAPES, run_secrets, hash_secrets },
	{ "resources", ML_RUN_SHAPES, run_resources, hash_resources },
	{ "security", ML_RUN_SHAPES_FOLDED, run_security, NULL },
	{ "logs", ML_RUN_SHAPES, run_logs, hash_logs },
	{ "app", ML_RUN_NAMES, NULL, NULL },
	{ "revision", ML_RUN_NAMES, NULL, NULL },
	{ "slot", ML_RUN_NAMES, NULL, NULL },
	{ "replica", ML_RUN_NAMES, NULL, NULL },
	{ "commit", ML_RUN_NAMES, NULL, NULL },
	{ "host_port", ML_RUN_NAMES, NULL, NULL }, /* follows port, replica */
	{ "spec", ML_RUN_NAMES, NULL, NULL },
	{ "health", ML_RUN_NAMES, run_health, NULL },
};

int ml_rollout_run_key(enum ml_run_key_kind *kind, const char *arg)
{
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(run_keys); i++) {
		if (!strcmp(run_keys[i].arg, arg)) {
			*kind = run_keys[i].kind;
			return 0;
		}
	}
	return ML_ENOTFOUND;
}

const char *ml_rollout_run_key_at(size_t i, enum ml_run_key_kind *kind)
{
	if (i >= ML_ARRAY_SIZE(run_keys))
		return NULL;
	*kind = run_keys[i].kind;
	return run_keys[i].arg;
}

json_t *ml_rollout_run_args(const struct ml_rollout *ro, int replica,
			    char slot)
{
	const struct ml_playbook *pb = ro->cfg->playbook;
	char slot_s[2] = { slot, 0 };
	json_t *args;
	size_t i;

	args = json_pack("{s:s,s:I,s:s,s:i,s:s,s:i,s:s}", "app", pb->app,
			 "revision", (json_int_t)ro->revision, "slot", slot_s,
			 "replica", replica, "commit",
			 ro->cfg->commit ? ro->cfg->commit : "none",
			 "host_port",
			 ml_rollout_host_port(ro->cfg, replica, slot), "spec",
			 ro->spec ? ro->spec : "");
	if (!args)
		BUG("out of memory");
	for (i = 0; i < ML_ARRAY_SIZE(run_keys); i++)
		if (run_keys[i].run)
			run_keys[i].run(args, ro);
	return args;
}

void ml_rollout_spec(char buf[65], const struct ml_config *cfg,
		     const char *image_id)
{
	json_t *o = json_object();
	char *text;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(run_keys); i++)
		if (run_keys[i].hash)
			run_keys[i].hash(o, cfg, image_id);
	/* not an argument of the container, but a changed check is tried on
	 * new containers, never on the serving ones */
	json_object_set_new(o, "health",
			    json_string(cfg->playbook->health.path));
	text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	ml_sha256_hex(text, strlen(text), buf);
	free(text);
	json_decref(o);
}

int ml_rollout_host_port(const struct ml_config *cfg, int replica, char slot)
{
	return ml_plan_host_port(cfg->playbook->port, replica, slot);
}

static void event(struct ml_rollout *ro, const char *host, const char *step,
		  const char *status, const char *fmt, ...) ML_PRINTF(5, 6);

static void event(struct ml_rollout *ro, const char *host, const char *step,
		  const char *status, const char *fmt, ...)
{
	char detail[512] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	if (!ro->quiet)
		fprintf(ro->out ? ro->out : stdout, "  %-10s %-12s %-8s %s\n",
			host, step, status, detail);
	fflush(ro->out ? ro->out : stdout);
	/* revision 0: a deploy with nothing to do records nothing */
	if (ro->ledger && ro->revision > 0 &&
	    ml_ledger_event(ro->ledger,
			    ro->record_as ? ro->record_as : ro->revision,
			    host, step, status, fmt ? detail : NULL) < 0)
		ml_warn("cannot record %s %s for '%s': %s", step, status, host,
			ml_err_msg());
}

/* ---- load balancers ----------------------------------------------------- */

static void server_name(char *buf, size_t n, const char *host, int replica,
			char slot)
{
	ml_plan_server_name(buf, n, host, replica, slot);
}

/*
 * Balancer i's session for one request (fleet/ops.h), under its mutex:
 * the canary's and the batches' requests share the session. lb_done
 * releases it with the request's result, and a failure's message then
 * names the balancer, once for every op.
 */
static struct ml_host_session *lb_take(struct ml_rollout_state *st, size_t i)
{
	pthread_mutex_lock(&st->lb_lock[i]);
	return st->lb[i];
}

static int lb_done(struct ml_rollout_state *st, size_t i, int rc)
{
	pthread_mutex_unlock(&st->lb_lock[i]);
	if (rc < 0)
		ml_err_prefix(rc, "load balancer '%s'", st->lb[i]->target->name);
	return rc;
}

/* Set one server's state on every balancer. */
static int lb_set_all(struct ml_rollout_state *st, const char *server,
		      const char *state)
{
	const char *app = st->ro->cfg->playbook->app;
	struct ml_host_session *h;
	size_t i;
	int rc;

	for (i = 0; i < st->nlb; i++) {
		h = lb_take(st, i);
		rc = lb_done(st, i, ml_op_lb_set(h, app, server, state, -1,
						 NULL));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The server's entry in an lb_status reply, or NULL. */
static json_t *find_server(json_t *status, const char *server)
{
	json_t *s;
	size_t k;

	json_array_foreach(json_object_get(status, "servers"), k, s) {
		const char *n = json_string_value(json_object_get(s, "name"));

		if (n && !strcmp(n, server))
			return s;
	}
	return NULL;
}

/*
 * Poll every balancer until pred(server entry) holds or timeout_ms passes.
 * Returns 1 when it held everywhere, 0 on timeout.
 */
static int lb_wait(struct ml_rollout_state *st, const char *server,
		   bool (*pred)(json_t *), int64_t timeout_ms)
{
	const char *app = st->ro->cfg->playbook->app;
	int64_t deadline = ml_mono_ms() + timeout_ms;
	int pause = POLL_FIRST_MS;
	size_t i;
	int rc;

	for (i = 0; i < st->nlb; i++) {
		for (;;) {
			struct ml_host_session *h = lb_take(st, i);
			json_t *res = NULL;
			bool ok;

			rc = lb_done(st, i, ml_op_lb_status(h, app, &res));
			if (rc < 0)
				return rc;
			ok = pred(find_server(res, server));
			json_decref(res);
			if (ok)
				break;
			if (ml_mono_ms() >= deadline)
				return 0;
			sleep_ms(pause);
			pause = pause * 2 < POLL_MS ? pause * 2 : POLL_MS;
		}
	}
	return 1;
}

static bool server_up(json_t *s)
{
	const char *op = json_string_value(json_object_get(s, "op_state"));

	return op && !strncmp(op, "UP", 2);
}

static bool server_idle(json_t *s)
{
	json_t *cur = json_object_get(s, "cur_sessions");

	return !s || (json_is_integer(cur) && json_integer_value(cur) == 0);
}

/* Take a slot out of service on every balancer: drain, wait, maintenance. */
static int lb_retire(struct ml_rollout_state *st, const char *host,
		     int replica, char slot)
{
	char name[160];
	int rc;

	if (!st->nlb)
		return 0;
	server_name(name, sizeof(name), host, replica, slot);
	rc = lb_set_all(st, name, "drain");
	if (rc < 0)
		return rc;
	rc = lb_wait(st, name, server_idle,
		     st->ro->cfg->playbook->rollout.drain_timeout_ms);
	if (rc < 0)
		return rc;
	if (rc == 0)
		ml_warn("'%s' still had sessions after the drain timeout",
			name);
	return lb_set_all(st, name, "maint");
}

static json_t *health_json(const struct ml_config *cfg)
{
	const struct ml_health_spec *h = &cfg->playbook->health;

	return json_pack("{s:s,s:I,s:I,s:i,s:i,s:o*}", "path", h->path,
			 "interval_ms", (json_int_t)h->interval_ms,
			 "timeout_ms", (json_int_t)h->timeout_ms,
			 "healthy_threshold", h->healthy_threshold,
			 "unhealthy_threshold", h->unhealthy_threshold,
			 "expect", ml_health_expect_json(h));
}

/*
 * The health check container run takes traffic with, in lb_apply's form:
 * the one its label says it was started with, else the one its revision
 * was deployed with, from the revision's recorded desired state; NULL
 * when neither is known (a container of an older mlctl, whose revision
 * only another controller's ledger recorded).
 */
static json_t *revision_health(struct ml_rollout *ro,
			       const struct ml_obs_container *run)
{
	struct ml_revision *rev = NULL;
	json_t *d = NULL, *h, *out = NULL;
	int64_t number = run->revision;

	if (run->health) {
		out = json_loads(run->health, 0, NULL);
		if (json_is_object(out) &&
		    json_is_string(json_object_get(out, "path")))
			return out;
		json_decref(out);
		out = NULL;
	}
	if (!ro->ledger || number <= 0 ||
	    ml_ledger_get(ro->ledger, number, &rev) < 0 || !rev->desired_json)
		goto out;
	d = json_loads(rev->desired_json, 0, NULL);
	h = json_object_get(d, "health");
	if (json_is_string(json_object_get(h, "path")))
		out = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O*}", "path",
				json_object_get(h, "path"), "interval_ms",
				json_object_get(h, "interval_ms"), "timeout_ms",
				json_object_get(h, "timeout_ms"),
				"healthy_threshold",
				json_object_get(h, "healthy_threshold"),
				"unhealthy_threshold",
				json_object_get(h, "unhealthy_threshold"),
				"expect", json_object_get(h, "expect"));
out:
	json_decref(d);
	ml_revision_free(rev);
	return out;
}

/*
 * The balancer's secrets (certificate and key, the exporter's password)
 * and the redirect port into lb_apply's args: only the LB hosts' agents
 * see them.
 */
static void lb_tls_args(json_t *args, const struct ml_rollout *ro)
{
	const struct ml_lb_spec *lb = &ro->cfg->playbook->lb;

	if (ro->lb_secrets)
		json_object_update(args, ro->lb_secrets);
	if (lb->tls_cert && lb->tls_redirect_port)
		json_object_set_new(args, "redirect_port",
				    json_integer(lb->tls_redirect_port));
}

/*
 * Give every balancer the full server list with states from what runs.
 * A slot running another revision keeps the health check that revision
 * took traffic with (the balancer checks it apart, agent/lb/render.c): a
 * changed check applies to the new revision's servers only, so a wrong
 * new health path never takes the serving ones down.
 */
static int lb_apply_all(struct ml_rollout_state *st)
{
	struct ml_rollout *ro = st->ro;
	const struct ml_config *cfg = ro->cfg;
	json_t *servers = json_array();
	size_t i, k;
	int r, rc = 0;

	for (i = 0; i < st->napp; i++) {
		struct host_state *hs = &st->app[i];

		for (r = 0; r < cfg->playbook->replicas; r++) {
			const struct ml_obs_container *runs[2] = { NULL, NULL };

			for (k = 0; k < hs->nobs; k++)
				if (hs->obs[k].replica == r &&
				    (hs->obs[k].slot == 'a' ||
				     hs->obs[k].slot == 'b') &&
				    hs->obs[k].running)
					runs[hs->obs[k].slot - 'a'] =
						&hs->obs[k];
			for (char slot = 'a'; slot <= 'b'; slot++) {
				char name[160];
				const struct ml_obs_container *run =
					runs[slot - 'a'];
				const struct ml_obs_container *other =
					runs[slot == 'a' ? 1 : 0];
				json_t *srv, *health = NULL;

				/*
				 * Both slots run (a deploy stopped between
				 * starting the new one and stopping the old):
				 * the old revision's container serves, the
				 * new one waits until the rollout has seen it
				 * healthy, since it may still be loading.
				 */
				bool ready = run != NULL;

				if (run && other && run->spec && other->spec &&
				    !strcmp(run->spec, ro->spec) &&
				    strcmp(other->spec, ro->spec))
					ready = false;
				server_name(name, sizeof(name),
					    hs->h->target->name, r, slot);
				srv = json_pack("{s:s,s:s,s:i,s:s,s:i}",
						"name", name, "address",
						hs->h->target->address, "port",
						ml_rollout_host_port(cfg, r,
								     slot),
						"state", ready ? "ready" : "maint",
						"weight", 100);
				if (run && run->spec &&
				    strcmp(run->spec, ro->spec))
					health = revision_health(ro, run);
				if (health)
					json_object_set_new(srv, "health",
							    health);
				json_array_append_new(servers, srv);
			}
		}
	}
	for (i = 0; i < st->nlb; i++) {
		struct ml_host_session *h;
		json_t *res = NULL, *args;

		args = json_pack("{s:s,s:i,s:s,s:o,s:I,s:O,s:i,s:s}", "app",
				  cfg->playbook->app, "listen_port",
				  cfg->playbook->lb.listen_port, "balance",
				  ml_balance_name(cfg->playbook->lb.balance),
				  "health", health_json(cfg),
				  "drain_timeout_ms",
				  (json_int_t)cfg->playbook->rollout
					  .drain_timeout_ms,
				  "servers", servers, "stats_port",
				  cfg->playbook->metrics.port, "metrics_bind",
				  cfg->playbook->metrics.bind
					  ?: st->lb[i]->target->address);
		lb_tls_args(args, ro);
		h = lb_take(st, i);
		rc = lb_done(st, i, ml_op_lb_apply(h, args, &res));
		if (rc < 0) {
			json_decref(res);
			break;
		}
		if (json_is_true(json_object_get(res, "reloaded")) ||
		    json_is_true(json_object_get(res, "started")))
			ro->lb_changed = true;
		event(ro, st->lb[i]->target->name, "lb-config", "ok", "%s",
		      json_is_true(json_object_get(res, "started"))
			      ? "haproxy started"
		      : json_is_true(json_object_get(res, "reloaded"))
			      ? "haproxy reloaded"
			      : "unchanged");
		json_decref(res);
	}
	json_decref(servers);
	return rc;
}

/* ---- one host ----------------------------------------------------------- */

static int stop_container(struct ml_rollout *ro, struct host_state *hs,
			  const char *id)
{
	int rc;

	rc = ml_op_container_stop(hs->h, id, 10, NULL);
	if (rc == 0)
		event(ro, hs->h->target->name, "stop", "ok", "%.12s", id);
	return rc;
}

/*
 * The container that served before goes out of service: paused as the
 * standby with rollout.standby (a rollback to its revision resumes it),
 * else stopped and removed.
 */
static int retire_container(struct ml_rollout *ro, struct host_state *hs,
			    const char *id)
{
	json_t *res = NULL;
	int rc;

	if (!ro->cfg->playbook->rollout.standby)
		return stop_container(ro, hs, id);
	rc = ml_op_container_pause(hs->h, id, 10, &res);
	if (rc == 0)
		event(ro, hs->h->target->name,
		      json_is_true(json_object_get(res, "paused")) ? "standby"
								   : "stop",
		      "ok", "%.12s", id);
	json_decref(res);
	return rc;
}

/*
 * Start the container of a replica in slot, or resume resume_id there
 * (a paused standby with the wanted spec). A standby that cannot be
 * resumed (gone, or changed since the plan) is removed and a new
 * container started in its place.
 */
static int start_container(struct ml_rollout *ro, struct host_state *hs,
			   int replica, char slot, const char *resume_id,
			   char **id_out)
{
	json_t *res = NULL, *args = ml_rollout_run_args(ro, replica, slot);
	bool resumed;
	int rc;

	if (resume_id) {
		json_object_set_new(args, "resume", json_string(resume_id));
		rc = ml_op_container_run(hs->h, json_incref(args), &res);
		json_object_del(args, "resume");
		if (rc == ML_ENOTFOUND) {
			ml_warn("%s: %s; starting a new container instead",
				hs->h->target->name, ml_err_msg());
			ml_err_clear();
			rc = stop_container(ro, hs, resume_id);
			if (rc == 0) {
				rc = ml_op_container_run(hs->h, args, &res);
				args = NULL;
			}
		}
	} else {
		rc = ml_op_container_run(hs->h, args, &res);
		args = NULL;
	}
	json_decref(args);
	if (rc < 0)
		goto out;
	*id_out = ml_xstrdup(json_string_value(json_object_get(res, "id"))
				     ?: "");
	resumed = json_is_true(json_object_get(res, "resumed"));
	event(ro, hs->h->target->name, resumed ? "resume" : "start", "ok",
	      "%s slot %c",
	      json_string_value(json_object_get(res, "name")) ?: "?", slot);
	ml_security_warn(hs->h->target->name, res);
out:
	json_decref(res);
	return rc;
}

static int wait_healthy(struct ml_rollout *ro, struct host_state *hs,
			const char *id, int replica, char slot)
{
	const struct ml_health_spec *h = &ro->cfg->playbook->health;
	int64_t deadline = h->start_period_ms +
			   (int64_t)(h->unhealthy_threshold + 2) *
				   h->interval_ms +
			   30000;
	json_t *res = NULL;
	int rc;

	ml_ssh_chan_set_timeout(hs->h->chan, (int)deadline + 30000);
	rc = ml_op_container_wait(hs->h, id,
				  ml_rollout_host_port(ro->cfg, replica, slot),
				  h, deadline, &res);
	ml_ssh_chan_set_timeout(hs->h->chan, 60000);
	if (rc == 0)
		event(ro, hs->h->target->name, "healthy", "ok", "after %lld ms",
		      (long long)json_integer_value(
			      json_object_get(res, "after_ms")));
	json_decref(res);
	return rc;
}

static int converge_replica(struct ml_rollout_state *st, struct host_state *hs,
			    struct ml_replica_plan *rp, bool last)
{
	struct ml_rollout *ro = st->ro;
	const char *host = hs->h->target->name;
	char name[160], *new_id = NULL;
	int rc = 0;

	if (rp->start && rp->clear_id) {
		rc = lb_retire(st, host, rp->replica, rp->slot);
		if (rc == 0)
			rc = stop_container(ro, hs, rp->clear_id);
		if (rc < 0)
			goto out;
	}
	if (rp->start) {
		rc = start_container(ro, hs, rp->replica, rp->slot,
				     rp->resume_id, &new_id);
		if (rc < 0)
			goto fail_new;
		rc = wait_healthy(ro, hs, new_id, rp->replica, rp->slot);
		if (rc < 0)
			goto fail_new;
		ml_test_crash_point("after-first-healthy");
		rc = ml_verify_run(st, hs, rp->replica, rp->slot,
				   rp->old_id ? rp->old_slot : 0);
		if (rc < 0)
			goto fail_new;
	} else if (rp->keep_id && rp->old_id) {
		/*
		 * The wanted container is already in its slot beside the one
		 * serving: a deploy killed after starting it left it, maybe
		 * still loading its model. It is proven healthy before the
		 * balancer sends it a request (setting it ready at once gave
		 * 21 of 4287 answers "503 loading" at 200/s in a recover).
		 */
		rc = wait_healthy(ro, hs, rp->keep_id, rp->replica, rp->slot);
		if (rc < 0) {
			new_id = ml_xstrdup(rp->keep_id);
			goto fail_new;
		}
	}
	server_name(name, sizeof(name), host, rp->replica, rp->slot);
	if (st->nlb) {
		rc = lb_set_all(st, name, "ready");
		if (rc < 0)
			goto fail_new;
		rc = lb_wait(st, name, server_up, LB_UP_TIMEOUT_MS);
		if (rc <= 0) {
			if (rc == 0)
				rc = ml_err_set(ML_EDEPLOY,
						"the load balancer did not see "
						"'%s' up within %d s",
						name, LB_UP_TIMEOUT_MS / 1000);
			lb_set_all(st, name, "maint");
			goto fail_new;
		}
		if (rp->start || rp->old_id)
			event(ro, host, "lb-enable", "ok", "%s", name);
	}
	if (rp->old_id) {
		rc = lb_retire(st, host, rp->replica, rp->old_slot);
		if (rc < 0)
			goto out;
		ml_test_crash_point("after-first-switch");
		/* the host's last one stops while the next batch runs; one
		 * before it stops now, so that a host never holds more than
		 * one container beside those it runs (GPU memory) */
		if (last)
			hs->retire_id = ml_xstrdup(rp->old_id);
		else
			rc = retire_container(ro, hs, rp->old_id);
	}
	goto out;
fail_new:
	/* the old container keeps serving; the new one goes */
	event(ro, host, "start", "failed", "%s", ml_err_msg());
	/* but not when the fleet lock is lost: the host is someone else's */
	if (new_id && rc != ML_ELOCKED) {
		char *msg = ml_xstrdup(ml_err_msg());

		stop_container(ro, hs, new_id);
		ml_err_set(rc, "%s", msg);
		free(msg);
	}
out:
	free(new_id);
	return rc;
}

static int converge_host(size_t i, void *arg)
{
	struct ml_rollout_state *st = arg;
	struct host_state *hs = &st->app[st->batch_first + i];
	int r, rc = 0;
	size_t k;

	if (hs->h->rc < 0 || !hs->plan.changes)
		return 0;
	for (r = 0; r < hs->plan.nrep && rc == 0; r++)
		rc = converge_replica(st, hs, &hs->plan.rep[r],
				      r == hs->plan.nrep - 1);
	for (k = 0; k < hs->plan.nstray && rc == 0; k++)
		rc = stop_container(st->ro, hs, hs->plan.stray[k]);
	if (rc < 0) {
		hs->rc = rc;
		hs->error = ml_xstrdup(ml_err_msg());
		return rc;
	}
	hs->done = true;
	return 0;
}

/* Stop the container host i of a job's batch replaced, if any. */
static int retire_host(size_t i, void *arg)
{
	struct ml_retire_job *job = arg;
	struct host_state *hs = &job->st->app[job->first + i];
	int rc;

	if (!hs->retire_id)
		return 0;
	rc = retire_container(job->st->ro, hs, hs->retire_id);
	free(hs->retire_id);
	hs->retire_id = NULL;
	if (rc < 0) {
		hs->retire_rc = rc;
		hs->retire_error = ml_xstrdup(ml_err_msg());
	}
	return rc;
}

/* A joined job's failed stops become their hosts' failures (the main
 * thread's own fields: tally reads them while later stops run). */
static void retire_fold(struct ml_retire_job *job)
{
	size_t i;

	for (i = job->first; i < job->first + job->n; i++) {
		struct host_state *hs = &job->st->app[i];

		if (hs->retire_rc < 0 && hs->rc >= 0) {
			hs->rc = hs->retire_rc;
			hs->done = false;
			free(hs->error);
			hs->error = hs->retire_error;
			hs->retire_error = NULL;
		}
		free(hs->retire_error);
		hs->retire_error = NULL;
		hs->retire_rc = 0;
	}
}

/* Wait for job's stops, if they run in the background, and fold them. */
static void retire_join(struct ml_retire_job *job)
{
	if (job->running)
		pthread_join(job->thread, NULL);
	job->running = false;
	retire_fold(job);
}

static void *retire_main(void *arg)
{
	struct ml_retire_job *job = arg;

	ml_parallel_run(job->n, job->st->ro->parallel, retire_host, job);
	return NULL;
}

/* Wait for every batch's stops started in the background. */
static void retire_join_all(struct ml_rollout_state *st)
{
	for (; st->retire_joined < st->nretire; st->retire_joined++)
		retire_join(&st->retire[st->retire_joined]);
}

/*
 * Stop what app hosts [first, first + n) replaced: in the background
 * (the batches after it converge meanwhile, on other hosts), or now, also
 * when no thread can be started. At most RETIRE_BATCHES batches stop at
 * once; the oldest is waited for first.
 */
static void retire_batch(struct ml_rollout_state *st, size_t first, size_t n,
			 bool background)
{
	struct ml_retire_job *job;

	if (st->nretire == st->retire_cap) {
		retire_join_all(st);
		st->nretire = st->retire_joined = 0;
		if (!st->retire_cap) {
			st->retire_cap = st->napp + 1;
			st->retire =
				ml_xcalloc(st->retire_cap, sizeof(*st->retire));
		}
	}
	while (st->nretire - st->retire_joined >= RETIRE_BATCHES)
		retire_join(&st->retire[st->retire_joined++]);
	job = &st->retire[st->nretire++];
	job->st = st;
	job->first = first;
	job->n = n;
	job->running = background &&
		       !pthread_create(&job->thread, NULL, retire_main, job);
	if (!job->running)
		retire_main(job); /* folded when joined, as the others */
}

/* ---- observe, then run -------------------------------------------------- */

/* List the app's containers on app host i (the plan comes after). */
static int observe_host(size_t i, void *arg)
{
	struct ml_rollout_state *st = arg;
	struct host_state *hs = &st->app[i];
	int rc;

	json_decref(hs->containers);
	hs->containers = NULL;
	if (hs->h->rc < 0) {
		hs->rc = hs->h->rc;
		hs->error = ml_xstrdup(hs->h->error);
		return hs->rc;
	}
	rc = ml_op_list(hs->h, st->ro->cfg->playbook->app, &hs->containers);
	if (rc < 0) {
		hs->rc = rc;
		hs->error = ml_xasprintf("%s: %s", hs->h->target->name,
					 ml_err_msg());
	}
	return rc;
}

/*
 * Plan app hosts [first, first + n) that were observed through the fleet
 * plan (orchestrator/plan/fleet.c), the one place deploy and `mlctl plan`
 * decide; each host keeps its part. Blobs are not asked: delivery is done.
 */
static void plan_hosts(struct ml_rollout_state *st, size_t first, size_t n)
{
	const struct ml_config *cfg = st->ro->cfg;
	struct ml_fleet_seen *seen = ml_xcalloc(n + 1, sizeof(*seen));
	struct ml_fleet_want w = { 0 };
	struct ml_fleet_plan fp;
	size_t i;

	w.app = cfg->playbook->app;
	w.spec = st->ro->spec;
	w.image_id = st->ro->image_id;
	w.replicas = cfg->playbook->replicas;
	w.port = cfg->playbook->port;
	w.rollout = &cfg->playbook->rollout;
	for (i = 0; i < n; i++) {
		struct host_state *hs = &st->app[first + i];

		seen[i].name = hs->h->target->name;
		seen[i].address = hs->h->target->address;
		seen[i].is_app = true;
		seen[i].error = hs->rc < 0 ? "not observed" : NULL;
		seen[i].containers = json_object_get(hs->containers,
						     "containers");
	}
	ml_plan_fleet(&fp, &w, seen, n);
	for (i = 0; i < n; i++) {
		struct host_state *hs = &st->app[first + i];
		struct ml_fleet_host *fh = &fp.hosts[i];

		if (hs->rc < 0)
			continue;
		if (fh->error) {
			hs->rc = ML_EPROTO;
			hs->error = ml_xasprintf("%s: %s", fh->name,
						 fh->error);
			continue;
		}
		/* the host's plan and observation move to the rollout */
		hs->plan = fh->plan;
		memset(&fh->plan, 0, sizeof(fh->plan));
		hs->obs = fh->obs;
		hs->nobs = fh->nobs;
		fh->obs = NULL;
		fh->nobs = 0;
		hs->planned = true;
	}
	ml_fleet_plan_release(&fp);
	free(seen);
}

int ml_rollout_observe(struct ml_rollout *ro, bool *nothing)
{
	struct ml_rollout_state *st = ml_xcalloc(1, sizeof(*st));
	size_t i;

	st->ro = ro;
	ro->st = st;
	st->app = ml_xcalloc(ro->nhosts + 1, sizeof(*st->app));
	st->lb = ml_xcalloc(ro->nhosts + 1, sizeof(*st->lb));
	st->lb_lock = ml_xcalloc(ro->nhosts + 1, sizeof(*st->lb_lock));
	for (i = 0; i < ro->nhosts; i++) {
		if (ro->hosts[i].target->is_app)
			st->app[st->napp++].h = &ro->hosts[i];
		if (ro->hosts[i].target->is_lb) {
			pthread_mutex_init(&st->lb_lock[st->nlb], NULL);
			st->lb[st->nlb++] = &ro->hosts[i];
		}
	}
	for (i = 0; i < st->nlb; i++)
		if (st->lb[i]->rc < 0)
			return ml_err_set(ML_EHOST,
					  "load balancer '%s' is unreachable: "
					  "%s",
					  st->lb[i]->target->name,
					  st->lb[i]->error);
	ml_parallel_run(st->napp, ro->parallel, observe_host, st);
	plan_hosts(st, 0, st->napp);
	ro->changed = 0;
	for (i = 0; i < st->napp; i++) {
		if (st->app[i].rc < 0)
			return ml_err_set(ML_EHOST, "%s", st->app[i].error);
		if (st->app[i].plan.changes)
			ro->changed++;
	}
	*nothing = ro->changed == 0;
	return 0;
}

/*
 * Count app hosts [0, done): updated, failed. A lost fleet lock stops
 * everything, whatever the budget (ML_ELOCKED); more failed hosts than
 * the failure budget, or a failed golden request, stop the rollout
 * (ML_EDEPLOY naming the first failed host).
 */
static int tally(struct ml_rollout_state *st, size_t done)
{
	struct ml_rollout *ro = st->ro;
	const struct ml_rollout_spec *rs = &ro->cfg->playbook->rollout;
	size_t i;

	ro->updated = ro->failed = 0;
	for (i = 0; i < done; i++) {
		if (st->app[i].done)
			ro->updated++;
		if (st->app[i].rc < 0)
			ro->failed++;
	}
	for (i = 0; i < done; i++)
		if (st->app[i].rc == ML_ELOCKED) {
			ro->stopped = true;
			return ml_err_set(ML_ELOCKED, "%s", st->app[i].error);
		}
	if ((int)ro->failed > rs->failure_budget || st->halt) {
		for (i = 0; i < done; i++)
			if (st->app[i].rc < 0)
				break;
		if (i == done)
			return ml_err_set(ML_EDEPLOY, "stopped: a golden "
						      "request failed");
		return ml_err_set(ML_EDEPLOY,
				  "%zu host%s failed (failure budget %d): "
				  "%s: %s",
				  ro->failed, ro->failed == 1 ? "" : "s",
				  rs->failure_budget,
				  st->app[i].h->target->name, st->app[i].error);
	}
	return 0;
}

int ml_rollout_run(struct ml_rollout *ro)
{
	struct ml_rollout_state *st = ro->st;
	const struct ml_rollout_spec *rs = &ro->cfg->playbook->rollout;
	size_t done = 0, step = 0;
	int rc;

	if (!st)
		BUG("ml_rollout_run before ml_rollout_observe");
	rc = lb_apply_all(st);
	if (rc < 0)
		return rc;
	ro->updated = ro->failed = 0;
	/* an automatic rollback goes back to what served: no canary */
	if (rs->nsteps && !ro->record_as) {
		rc = ml_canary_run(st);
		if (rc < 0)
			return rc;
	}
	while (done < st->napp) {
		/* the fleet plan's batches (orchestrator/plan/fleet.c) */
		size_t n = ml_plan_batch_size(rs, done, st->napp, step++);

		if (ro->interrupted && *ro->interrupted) {
			retire_join_all(st);
			rc = tally(st, done);
			if (rc < 0)
				return rc;
			ro->stopped = true;
			return ml_err_set(ML_EINTR,
					  "interrupted: stopped at a safe point "
					  "after %zu of %zu hosts",
					  done, st->napp);
		}
		if (n > st->napp - done)
			n = st->napp - done;
		st->batch_first = done;
		st->batch_len = n;
		if (!ro->quiet)
			fprintf(ro->out ? ro->out : stdout,
				"batch %zu: %zu host%s\n", step, n,
			       n == 1 ? "" : "s");
		/* batches before stop what they replaced meanwhile */
		ml_parallel_run(n, ro->parallel, converge_host, st);
		done += n;
		rc = tally(st, done);
		if (rc < 0 || done == st->napp) {
			/* a lost fleet lock: the hosts are another
			 * controller's now, nothing more is stopped */
			if (rc != ML_ELOCKED)
				retire_batch(st, done - n, n, false);
			retire_join_all(st);
			return tally(st, done);
		}
		retire_batch(st, done - n, n, true);
	}
	return 0;
}

const struct ml_rollout_host *ml_rollout_hosts(struct ml_rollout *ro,
					       size_t *n)
{
	struct ml_rollout_state *st = ro->st;
	size_t i;

	*n = 0;
	if (!st)
		return NULL;
	free(st->view);
	st->view = ml_xcalloc(st->napp + 1, sizeof(*st->view));
	for (i = 0; i < st->napp; i++) {
		st->view[i].host = st->app[i].h->target->name;
		st->view[i].changed = st->app[i].planned &&
				      st->app[i].plan.changes;
		st->view[i].done = st->app[i].done;
		st->view[i].error = st->app[i].error;
	}
	*n = st->napp;
	return st->view;
}

void ml_rollout_release(struct ml_rollout *ro)
{
	struct ml_rollout_state *st = ro->st;
	size_t i;

	json_decref(ro->lb_secrets);
	ro->lb_secrets = NULL;
	if (!st)
		return;
	retire_join_all(st);
	free(st->retire);
	for (i = 0; i < st->napp; i++) {
		free(st->app[i].retire_id);
		free(st->app[i].retire_error);
		ml_obs_free(st->app[i].obs, st->app[i].nobs);
		json_decref(st->app[i].containers);
		if (st->app[i].planned)
			ml_host_plan_release(&st->app[i].plan);
		free(st->app[i].error);
	}
	for (i = 0; i < st->nlb; i++)
		pthread_mutex_destroy(&st->lb_lock[i]);
	free(st->view);
	free(st->app);
	free(st->lb);
	free(st->lb_lock);
	free(st);
	ro->st = NULL;
}

/* ---- for canary.c and verify.c (rollout_int.h) ------------------------- */

void ml_ro_event(struct ml_rollout *ro, const char *host, const char *step,
		 const char *status, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	event(ro, host, step, status, "%s", detail);
}

struct ml_host_session *ml_ro_lb_take(struct ml_rollout_state *st, size_t i)
{
	return lb_take(st, i);
}

int ml_ro_lb_done(struct ml_rollout_state *st, size_t i, int rc)
{
	return lb_done(st, i, rc);
}

void ml_ro_server_name(char *buf, size_t n, const char *host, int replica,
		       char slot)
{
	server_name(buf, n, host, replica, slot);
}

int ml_ro_lb_set_weight(struct ml_rollout_state *st, const char *server,
			const char *state, int weight)
{
	const char *app = st->ro->cfg->playbook->app;
	struct ml_host_session *h;
	size_t i;
	int rc;

	for (i = 0; i < st->nlb; i++) {
		h = lb_take(st, i);
		rc = lb_done(st, i, ml_op_lb_set(h, app, server, state, weight,
						 NULL));
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ml_ro_lb_wait_up(struct ml_rollout_state *st, const char *server,
		     int64_t timeout_ms)
{
	return lb_wait(st, server, server_up, timeout_ms);
}

int ml_ro_lb_retire(struct ml_rollout_state *st, const char *host,
		    int replica, char slot)
{
	return lb_retire(st, host, replica, slot);
}

int ml_ro_start(struct ml_rollout *ro, struct host_state *hs, int replica,
		char slot, const char *resume_id, char **id_out)
{
	return start_container(ro, hs, replica, slot, resume_id, id_out);
}

int ml_ro_wait_healthy(struct ml_rollout *ro, struct host_state *hs,
		       const char *id, int replica, char slot)
{
	return wait_healthy(ro, hs, id, replica, slot);
}

int ml_ro_stop(struct ml_rollout *ro, struct host_state *hs, const char *id)
{
	return stop_container(ro, hs, id);
}

int ml_ro_observe_again(struct ml_rollout_state *st, size_t i)
{
	struct host_state *hs = &st->app[i];

	ml_obs_free(hs->obs, hs->nobs);
	hs->obs = NULL;
	hs->nobs = 0;
	if (hs->planned)
		ml_host_plan_release(&hs->plan);
	hs->planned = false;
	if (observe_host(i, st) == 0)
		plan_hosts(st, i, 1);
	return hs->rc;
}
