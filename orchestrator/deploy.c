/*
 * One deploy from start to end (see deploy.h). The fleet lock is a lease
 * held on the first load-balancer host (the first app host when there is
 * none) through a connection of its own, renewed by a thread every third
 * of its time to live; a controller that dies stops renewing and the lease
 * expires, and a lease whose owner is a dead process of this machine is
 * taken over at once.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/docker.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/apply/deliver.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/deploy.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/options.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/image/image.h"
#include "orchestrator/load.h"
#include "orchestrator/prune/run.h"
#include "orchestrator/secrets.h"
#include "orchestrator/source/source.h"
#include "orchestrator/transport/transport.h"

#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TTL_MS 60000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	ML_UNUSED(sig);
	interrupted = 1;
}

/* "user@host" of the operator. Caller frees. */
static char *who_am_i(void)
{
	char host[256] = "localhost";
	struct passwd *pw = getpwuid(getuid());

	gethostname(host, sizeof(host) - 1);
	return ml_xasprintf("%s@%s", pw ? pw->pw_name : "unknown", host);
}

/* ---- the fleet lock ----------------------------------------------------- */

struct lock {
	struct ml_host_session *hosts; /* the lock host's own session */
	size_t n;
	struct ml_host_session *h;
	char *token, *owner;
	int64_t ttl_ms;
	pthread_t renewer;
	bool renewing;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	/* under mu: the lease is ours until valid_until (our monotonic
	 * clock, counted from before the request that renewed it) unless
	 * lost says we know it is not */
	int64_t valid_until, renewed_at;
	bool lost;
	char *lost_msg;
	struct ml_fence fence; /* for the sessions that change the fleet */
};

/* The lease's time to live; tests shorten it (MLCTL_TEST_LOCK_TTL_MS). */
static int64_t lock_ttl_ms(void)
{
	const char *s = getenv("MLCTL_TEST_LOCK_TTL_MS");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v >= 1000 && v <= LOCK_TTL_MS ? v : LOCK_TTL_MS;
}

/* A one-line id file (/etc/machine-id, boot_id) in buf, lowercase hex and
 * '-' only; "" when unreadable. */
static void read_id(char *buf, size_t n, const char *path)
{
	FILE *f = fopen(path, "re");
	size_t len;

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)n, f))
		buf[0] = '\0';
	fclose(f);
	len = strspn(buf, "0123456789abcdef-");
	buf[len] = '\0';
}

static void machine_ids(char machine[65], char boot[65])
{
	read_id(machine, 65, "/etc/machine-id");
	if (!machine[0])
		read_id(machine, 65, "/var/lib/dbus/machine-id");
	read_id(boot, 65, "/proc/sys/kernel/random/boot_id");
}

/*
 * Is the holder described by a lock_status reply a dead process of this
 * machine? Only the same machine id can say: a hostname is not unique,
 * and a pid means nothing elsewhere. Another boot of this machine means
 * the process is gone; in this boot, kill(pid, 0) says.
 */
static bool holder_is_dead_here(json_t *st)
{
	const char *m = json_string_value(json_object_get(st, "machine_id"));
	const char *b = json_string_value(json_object_get(st, "boot_id"));
	json_int_t pid = json_integer_value(json_object_get(st, "pid"));
	char machine[65], boot[65];

	machine_ids(machine, boot);
	if (!m || !machine[0] || strcmp(m, machine) || pid < 2)
		return false;
	if (b && boot[0] && strcmp(b, boot))
		return true;
	return pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void lock_mark_lost(struct lock *lk, const char *why)
{
	if (!lk->lost) {
		lk->lost = true;
		lk->lost_msg = ml_xstrdup(why);
	}
}

/*
 * The fence's check: is the lease still ours? By our monotonic clock,
 * with a margin of a sixth of its time to live for the step about to
 * run, so a controller that was frozen (SIGSTOP, a suspended laptop)
 * past its lease knows it before it sends anything.
 */
static int lock_check(void *arg)
{
	struct lock *lk = arg;
	int64_t now = ml_mono_ms();
	char why[512];
	int rc = 0;

	pthread_mutex_lock(&lk->mu);
	if (!lk->lost && now >= lk->valid_until - lk->ttl_ms / 6) {
		snprintf(why, sizeof(why),
			 "the fleet lock's lease ran out: last renewed %.1f s "
			 "ago, its time to live is %.1f s (was this "
			 "controller stopped?)",
			 (double)(now - lk->renewed_at) / 1000,
			 (double)lk->ttl_ms / 1000);
		lock_mark_lost(lk, why);
	}
	if (lk->lost)
		rc = ml_err_set(ML_ELOCKED,
				"lost the fleet lock, stopped before changing "
				"anything else: %s",
				lk->lost_msg);
	pthread_mutex_unlock(&lk->mu);
	return rc;
}

/* Did we lose the lease? (Sets the error message when so.) */
static bool lock_is_lost(struct lock *lk)
{
	return lk->token && lock_check(lk) < 0;
}

/* Renew every third of the time to live; waits on the monotonic clock. A
 * renewal the lock host refuses (another holder, or none) loses the lease
 * for good; one that fails on the way is retried while time is left. */
static void *renew_thread(void *arg)
{
	struct lock *lk = arg;
	struct timespec ts;
	json_t *res;
	int64_t sent;
	int rc;

	pthread_mutex_lock(&lk->mu);
	while (!lk->stop && !lk->lost) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += lk->ttl_ms / 3000;
		ts.tv_nsec += (lk->ttl_ms / 3 % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&lk->cv, &lk->mu, &ts);
		if (lk->stop)
			break;
		pthread_mutex_unlock(&lk->mu);
		res = NULL;
		sent = ml_mono_ms();
		rc = ml_host_call(lk->h, "lock_renew",
				  json_pack("{s:s,s:I}", "token", lk->token,
					    "ttl_ms", (json_int_t)lk->ttl_ms),
				  &res);
		json_decref(res);
		pthread_mutex_lock(&lk->mu);
		if (rc == 0) {
			lk->valid_until = sent + lk->ttl_ms;
			lk->renewed_at = sent;
		} else if (rc == ML_ELOCKED) {
			lock_mark_lost(lk, ml_err_msg());
			ml_warn("%s", ml_err_msg());
		} else {
			ml_warn("cannot renew the fleet lock: %s",
				ml_err_msg());
		}
	}
	pthread_mutex_unlock(&lk->mu);
	return NULL;
}

static int lock_take(struct lock *lk, const struct ml_config *cfg,
		     const struct ml_fleet_opts *fo, const char *who,
		     const char *reason, int64_t wait_ms)
{
	int64_t deadline = ml_mono_ms() + wait_ms, sent;
	char machine[65], boot[65];
	json_t *res = NULL, *args;
	json_int_t take_over = 0;
	bool said_waiting = false;
	pthread_condattr_t ca;
	int rc;

	lk->owner = ml_xasprintf("%s pid %ld", who, (long)getpid());
	lk->ttl_ms = lock_ttl_ms();
	machine_ids(machine, boot);
	rc = ml_fleet_connect_lock_host(&lk->hosts, &lk->n, cfg, fo);
	if (rc < 0)
		goto out;
	lk->h = &lk->hosts[0];
	for (;;) {
		json_t *st = NULL;

		args = json_pack("{s:s,s:s,s:I,s:i}", "owner", lk->owner,
				 "reason", reason, "ttl_ms",
				 (json_int_t)lk->ttl_ms, "pid", (int)getpid());
		if (machine[0])
			json_object_set_new(args, "machine_id",
					    json_string(machine));
		if (boot[0])
			json_object_set_new(args, "boot_id",
					    json_string(boot));
		if (take_over)
			json_object_set_new(args, "take_over",
					    json_integer(take_over));
		sent = ml_mono_ms();
		rc = ml_host_call(lk->h, "lock_acquire", args, &res);
		if (rc != ML_ELOCKED)
			break;
		/*
		 * A lease left by a dead mlctl of this machine is ours, in one
		 * compare-and-swap on its generation: of several controllers
		 * that see the same dead holder, one gets it.
		 */
		if (!take_over &&
		    ml_host_call(lk->h, "lock_status", NULL, &st) == 0 &&
		    json_is_true(json_object_get(st, "held")) &&
		    holder_is_dead_here(st)) {
			take_over = json_integer_value(
				json_object_get(st, "generation"));
			ml_warn("taking over the fleet lock left by %s, which "
				"is no longer running",
				json_string_value(json_object_get(st, "owner")));
			json_decref(st);
			if (take_over)
				continue;
		}
		json_decref(st);
		take_over = 0;
		if (ml_mono_ms() >= deadline)
			break;
		if (!said_waiting) {
			ml_info("waiting for the fleet lock: %s", ml_err_msg());
			said_waiting = true;
		}
		sleep(1);
	}
	if (rc < 0)
		goto out;
	lk->token = ml_xstrdup(
		json_string_value(json_object_get(res, "token")) ?: "");
	lk->valid_until = sent + lk->ttl_ms;
	lk->renewed_at = sent;
	lk->fence.generation =
		json_integer_value(json_object_get(res, "generation"));
	lk->fence.owner = lk->owner;
	lk->fence.check = lock_check;
	lk->fence.arg = lk;
	pthread_mutex_init(&lk->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lk->cv, &ca);
	pthread_condattr_destroy(&ca);
	lk->renewing = pthread_create(&lk->renewer, NULL, renew_thread, lk) ==
		       0;
out:
	json_decref(res);
	return rc;
}

static void lock_drop(struct lock *lk)
{
	json_t *res = NULL;

	if (lk->renewing) {
		pthread_mutex_lock(&lk->mu);
		lk->stop = true;
		pthread_cond_signal(&lk->cv);
		pthread_mutex_unlock(&lk->mu);
		pthread_join(lk->renewer, NULL);
	}
	/* a lost lease is someone else's now: leave it alone */
	if (lk->token && !lk->lost &&
	    ml_host_call(lk->h, "lock_release",
			 json_pack("{s:s}", "token", lk->token), &res) < 0)
		ml_warn("cannot release the fleet lock: %s", ml_err_msg());
	if (lk->renewing) {
		pthread_mutex_destroy(&lk->mu);
		pthread_cond_destroy(&lk->cv);
	}
	json_decref(res);
	free(lk->token);
	free(lk->owner);
	free(lk->lost_msg);
	ml_fleet_close(lk->hosts, lk->n);
	memset(lk, 0, sizeof(*lk));
}

static int parse_wait(int64_t *ms, const struct ml_ctx *ctx)
{
	*ms = 0;
	if (!ctx->opt[OPT_WAIT])
		return 0;
	return ml_optval_wait(ms, ctx->opt[OPT_WAIT]);
}

struct ml_fleet_lock {
	struct lock lk;
};

int ml_fleet_lock_take(struct ml_fleet_lock **out, struct ml_ctx *ctx,
		       const struct ml_config *cfg, const char *reason)
{
	struct ml_fleet_lock *fl = ml_xcalloc(1, sizeof(*fl));
	struct ml_fleet_opts fo;
	int64_t wait_ms;
	char *who = who_am_i();
	int rc;

	rc = parse_wait(&wait_ms, ctx);
	if (rc == 0)
		rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc == 0)
		rc = lock_take(&fl->lk, cfg, &fo, who, reason, wait_ms);
	free(who);
	if (rc < 0) {
		ml_fleet_lock_drop(fl);
		return rc;
	}
	*out = fl;
	return 0;
}

void ml_fleet_lock_drop(struct ml_fleet_lock *fl)
{
	struct ml_err_saved keep;

	if (!fl)
		return;
	ml_err_save(&keep);
	if (fl->lk.h)
		lock_drop(&fl->lk);
	else
		ml_fleet_close(fl->lk.hosts, fl->lk.n);
	ml_err_restore(&keep);
	free(fl);
}

/* ---- the deploy --------------------------------------------------------- */

static char *layers_json(const struct ml_image *img)
{
	json_t *a = json_array();
	char *s;
	size_t i;

	for (i = 0; i < img->nlayers; i++)
		json_array_append_new(a, json_string(img->layers[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/*
 * A revision a crashed run left "running" with the same playbook and image
 * as this deploy: this deploy finishes it instead of recording another.
 */
static int64_t find_resumable(struct ml_ledger *l, const char *hash,
			      const char *image_id)
{
	struct ml_revision *revs = NULL;
	size_t n = 0, i;
	int64_t found = 0;

	if (ml_ledger_list(l, 20, &revs, &n) < 0)
		return 0;
	for (i = 0; i < n && !found; i++)
		if (revs[i].outcome == ML_OUTCOME_RUNNING &&
		    revs[i].playbook_hash && revs[i].image_id &&
		    !strcmp(revs[i].playbook_hash, hash) &&
		    !strcmp(revs[i].image_id, image_id))
			found = revs[i].number;
	ml_revisions_free(revs, n);
	return found;
}

/* Mark revisions a crashed run left "running" as interrupted. */
static void close_stale(struct ml_ledger *l, int64_t keep)
{
	struct ml_revision *revs = NULL;
	size_t n = 0, i;

	if (ml_ledger_list(l, 20, &revs, &n) < 0)
		return;
	for (i = 0; i < n; i++)
		if (revs[i].outcome == ML_OUTCOME_RUNNING &&
		    revs[i].number != keep)
			ml_ledger_finish(l, revs[i].number,
					 ML_OUTCOME_INTERRUPTED,
					 "the controller stopped before the "
					 "end; a later run converged the "
					 "fleet");
	ml_revisions_free(revs, n);
}

/* The event that opens or closes an automatic rollback's steps in the
 * failed revision's record. */
static void rollback_mark(struct ml_ledger *l, int64_t failed,
			  const char *status, int64_t to)
{
	char detail[64];

	snprintf(detail, sizeof(detail), "to revision %lld", (long long)to);
	if (ml_ledger_event(l, failed, "-", "rollback", status, detail) < 0)
		ml_warn("cannot record the rollback of revision %lld: %s",
			(long long)failed, ml_err_msg());
}

/*
 * Deliver img and roll the fleet to cfg; fills *ro (released by caller).
 * With sent, *sent becomes {"host": {"blobs", "bytes", "wire"}} for each
 * app host that was sent blobs (bytes uncompressed, as `mlctl plan`
 * counts them), the caller's; each is printed as it is known.
 */
static int roll(struct ml_rollout *ro, struct ml_ctx *ctx,
		const struct ml_config *cfg, struct ml_image *img,
		struct ml_cache *cache, struct ml_host_session *hosts,
		size_t n, json_t *secrets, char spec[65], bool *nothing,
		json_t **sent)
{
	struct ml_deliver_result *res = ml_xcalloc(n + 1, sizeof(*res));
	struct ml_deliver_opts dopt = { 0 };
	const char *tags[2] = { img->ref, NULL };
	size_t i;
	int rc;

	/* the balancers' certificate and password, before anything moves */
	json_decref(ro->lb_secrets);
	rc = ml_secrets_load_lb(&ro->lb_secrets, cfg->playbook,
				ctx->opt[OPT_SECRETS]);
	if (rc < 0) {
		free(res);
		return rc;
	}
	dopt.parallel = ro->parallel;
	dopt.progress = isatty(STDERR_FILENO);
	dopt.tags = tags;
	rc = ml_deliver(hosts, n, img, cache, &dopt, res);
	for (i = 0; i < n; i++) {
		if (sent && res[i].rc == 0 && res[i].blobs_sent > 0) {
			if (!*sent)
				*sent = json_object();
			json_object_set_new(
				*sent, hosts[i].target->name,
				json_pack("{s:i,s:I,s:I}", "blobs",
					  res[i].blobs_sent, "bytes",
					  (json_int_t)res[i].raw_bytes, "wire",
					  (json_int_t)res[i].wire_bytes));
			fprintf(ro->out ? ro->out : stdout,
				"  %-10s %-12s %-8s %d blob%s, %lld bytes "
				"(%lld on the wire)\n",
				hosts[i].target->name, "deliver", "ok",
				res[i].blobs_sent,
				res[i].blobs_sent == 1 ? "" : "s",
				(long long)res[i].raw_bytes,
				(long long)res[i].wire_bytes);
		}
		free(res[i].error);
	}
	free(res);
	if (rc < 0)
		return rc;
	ml_test_crash_point("after-delivery");
	ml_rollout_spec(spec, cfg, img->id);
	rc = ml_secrets_spec(spec, cfg, secrets, ctx->ledger_path);
	if (rc < 0)
		return rc;
	ro->cfg = cfg;
	ro->image_id = img->id;
	ro->spec = spec;
	ro->secrets = secrets;
	ro->hosts = hosts;
	ro->nhosts = n;
	ro->interrupted = &interrupted;
	return ml_rollout_observe(ro, nothing);
}

/* The blobs delivered before the revision existed, into its record. */
static void record_sent(struct ml_ledger *l, int64_t revision, json_t *sent)
{
	const char *host;
	json_t *v;

	json_object_foreach(sent, host, v) {
		char detail[128];

		snprintf(detail, sizeof(detail),
			 "%lld blobs, %lld bytes (%lld on the wire)",
			 (long long)json_integer_value(json_object_get(v,
								       "blobs")),
			 (long long)json_integer_value(json_object_get(v,
								       "bytes")),
			 (long long)json_integer_value(json_object_get(v,
								       "wire")));
		if (ml_ledger_event(l, revision, host, "deliver", "ok",
				    detail) < 0)
			ml_warn("cannot record the delivery to '%s': %s", host,
				ml_err_msg());
	}
}

/* The final table (or, with --json, the document) of a deploy. */
static void report(bool json, struct ml_rollout *ro, int64_t revision,
		   const char *outcome, const char *message,
		   const struct ml_deploy_req *req, int64_t ms)
{
	const struct ml_rollout_host *v;
	size_t n = 0, i;

	v = ml_rollout_hosts(ro, &n);
	if (json) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "revision", revision
						       ? json_integer(revision)
						       : json_null());
		json_object_set_new(doc, "outcome", json_string(outcome));
		json_object_set_new(doc, "message", message
						      ? json_string(message)
						      : json_null());
		json_object_set_new(doc, "commit",
				    json_string(req->cfg->commit));
		json_object_set_new(doc, "image", json_string(req->img->id));
		json_object_set_new(doc, "ms", json_integer(ms));
		for (i = 0; i < n; i++)
			json_array_append_new(
				arr,
				json_pack("{s:s,s:b,s:b,s:o}", "host",
					  v[i].host, "changed", v[i].changed,
					  "updated", v[i].done, "error",
					  v[i].error ? json_string(v[i].error)
						     : json_null()));
		json_object_set_new(doc, "hosts", arr);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
		return;
	}
	if (!n)
		return;
	printf("\n%-12s %s\n", "HOST", "RESULT");
	for (i = 0; i < n; i++)
		printf("%-12s %s\n", v[i].host,
		       v[i].error     ? "failed, still on the previous state"
		       : v[i].done    ? "updated"
		       : v[i].changed ? "not reached"
				      : "unchanged");
}

int ml_deploy(struct ml_ctx *ctx, const struct ml_deploy_req *req)
{
	const struct ml_config *cfg = req->cfg;
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct ml_rollout ro = { 0 }, back = { 0 };
	struct lock lk = { 0 };
	struct ml_revision rev = { 0 }, *prev = NULL;
	struct ml_config *pcfg = NULL;
	struct ml_image *pimg = NULL;
	struct ml_cache *pcache = NULL;
	struct sigaction sa = { 0 }, old_int, old_term;
	json_t *secrets = NULL, *sent = NULL;
	char spec[65], pspec[65], hash[ML_SHA256_HEX], *who = who_am_i();
	char *layers = NULL, *desired = NULL, *reason = NULL;
	int64_t wait_ms, t0 = ml_mono_ms(), resume = 0;
	size_t n = 0, i;
	bool nothing = false, began = false;
	int rc, outcome = ML_OUTCOME_SUCCEEDED;
	bool json = ml_ctx_flag(ctx, OPT_JSON);
	FILE *hum = json ? stderr : stdout;
	const char *message = NULL;
	char msgbuf[1024];

	rc = parse_wait(&wait_ms, ctx);
	if (rc < 0)
		goto out;
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		goto out;
	if (req->secrets)
		secrets = json_incref(req->secrets);
	else
		rc = ml_secrets_load(&secrets, cfg->playbook,
				     ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		goto out;

	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	interrupted = 0;

	reason = req->kind == ML_REV_ROLLBACK
			 ? ml_xasprintf("rollback to revision %lld",
					(long long)req->rollback_of)
			 : ml_xasprintf("deploy of %.12s",
					cfg->commit ? cfg->commit : "?");
	rc = lock_take(&lk, cfg, &fo, who, reason, wait_ms);
	if (rc < 0)
		goto out;

	rc = ml_fleet_connect(&hosts, &n, cfg, &fo, NULL);
	if (rc < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (hosts[i].rc < 0) {
			rc = ml_err_set(ML_EHOST, "%s is unreachable, nothing "
						  "was changed: %s",
					hosts[i].target->name, hosts[i].error);
			goto out;
		}
		/* from here every request carries the lease's fence */
		hosts[i].fence = &lk.fence;
	}
	ml_sha256_hex(cfg->playbook_text, cfg->playbook_len, hash);
	resume = req->resume ? req->resume
			     : find_resumable(ctx->ledger, hash, req->img->id);
	if (resume && !req->resume)
		fprintf(hum, "finishing revision %lld, which a stopped run left "
		       "unfinished\n",
		       (long long)resume);
	close_stale(ctx->ledger, resume);

	ro.parallel = fo.parallel;
	ro.ledger = ctx->ledger;
	ro.out = hum;
	rc = roll(&ro, ctx, cfg, req->img, req->cache, hosts, n, secrets, spec,
		  &nothing, &sent);
	if (rc < 0)
		goto out;
	if (nothing && !resume) {
		fprintf(hum, "nothing to do: every host already runs this state "
		       "(image %.19s)\n", req->img->id);
		/* still make sure the balancers have their configuration */
		ro.quiet = true;
		rc = ml_rollout_run(&ro);
		if (rc == 0 && json)
			report(json, &ro, 0, "unchanged", NULL, req,
			       ml_mono_ms() - t0);
		goto out;
	}

	/* record the revision before anything changes */
	if (resume) {
		rev.number = resume;
	} else {
		layers = layers_json(req->img);
		{
			json_t *d = ml_config_to_json(cfg);

			desired = json_dumps(d, JSON_COMPACT |
							JSON_PRESERVE_ORDER);
			json_decref(d);
		}
		rev.commit = cfg->commit;
		rev.playbook = cfg->playbook_text;
		rev.playbook_hash = hash;
		rev.desired_json = desired;
		rev.image_id = req->img->id;
		rev.layers_json = layers;
		rev.who = who;
		rev.kind = req->kind;
		rev.rollback_of = req->rollback_of;
		rc = ml_ledger_begin(ctx->ledger, &rev);
		if (rc < 0)
			goto out;
	}
	began = true;
	ro.revision = rev.number;
	record_sent(ctx->ledger, rev.number, sent);
	fprintf(hum, "revision %lld: %s, %zu app host%s to change\n",
	       (long long)rev.number, reason, ro.changed,
	       ro.changed == 1 ? "" : "s");
	rc = ml_rollout_run(&ro);
	if (rc < 0 && lock_is_lost(&lk)) {
		/* someone else holds the fleet now: no rollback, no cleanup,
		 * nothing more sent to any host */
		rc = ML_ELOCKED;
		outcome = ML_OUTCOME_INTERRUPTED;
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
	} else if (rc == ML_EINTR) {
		outcome = ML_OUTCOME_INTERRUPTED;
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
	} else if (rc < 0) {
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
		outcome = ML_OUTCOME_FAILED;
		if (cfg->playbook->rollout.auto_rollback &&
		    ml_ledger_last_good(ctx->ledger, rev.number, &prev) == 0) {
			int rc2;
			bool none;

			fprintf(hum, "rolling back to revision %lld\n",
			       (long long)prev->number);
			rc2 = ml_deploy_load_revision(&pcfg, &pimg, &pcache,
						      ctx, prev);
			if (rc2 == 0 && lock_is_lost(&lk))
				rc2 = ML_ELOCKED;
			if (rc2 == 0) {
				back.parallel = fo.parallel;
				back.ledger = ctx->ledger;
				back.out = hum;
				rc2 = roll(&back, ctx, pcfg, pimg, pcache,
					   hosts, n, secrets, pspec, &none,
					   NULL);
			}
			if (rc2 == 0) {
				back.revision = prev->number;
				/* the rollback's steps are part of this
				 * revision's record, between two marks */
				back.record_as = rev.number;
				rollback_mark(ctx->ledger, rev.number,
					      "started", prev->number);
				rc2 = ml_rollout_run(&back);
				if (rc2 < 0 && lock_is_lost(&lk))
					rc2 = ML_ELOCKED;
				rollback_mark(ctx->ledger, rev.number,
					      rc2 == 0 ? "ok" : "failed",
					      prev->number);
			}
			if (rc2 == 0) {
				outcome = ML_OUTCOME_ROLLED_BACK;
				ml_err_set(ML_EDEPLOY,
					   "%.700s; rolled back to revision "
					   "%lld",
					   message, (long long)prev->number);
				snprintf(msgbuf, sizeof(msgbuf), "%s",
					 ml_err_msg());
			} else {
				ml_err_prefix(ML_EDEPLOY,
					      "%.600s; the automatic rollback "
					      "to revision %lld failed too",
					      message, (long long)prev->number);
				snprintf(msgbuf, sizeof(msgbuf), "%s",
					 ml_err_msg());
			}
			rc = ML_EDEPLOY;
		} else {
			rc = ml_err_set(rc == ML_EDEPLOY ? rc : ML_EDEPLOY,
					"%s", msgbuf);
		}
	}
out:
	if (began) {
		struct ml_err_saved keep;

		ml_err_save(&keep);
		ml_test_crash_point("before-final-record");
		/* a lost lease: the new holder may have closed it already */
		if (ml_ledger_finish(ctx->ledger, rev.number, outcome,
				     message) < 0 &&
		    !lk.lost)
			ml_warn("cannot record the outcome of revision %lld: "
				"%s",
				(long long)rev.number, ml_err_msg());
		ml_err_restore(&keep);
		report(json, &ro, rev.number, ml_outcome_name(outcome),
		       message, req, ml_mono_ms() - t0);
		if (rc == 0)
			fprintf(hum, "revision %lld deployed to %zu host%s in %.1fs\n",
			       (long long)rev.number, ro.updated,
			       ro.updated == 1 ? "" : "s",
			       (double)(ml_mono_ms() - t0) / 1000);
		if (rc == 0) /* still under the lock, with the sessions */
			ml_prune_after_deploy(ctx, cfg, hosts, n, hum);
	}
	if (hosts && (began || nothing)) {
		/* Prometheus's targets and the balancers' revision map,
		 * still under the lock (the requests carry its fence) */
		char *tp = ml_metrics_targets_path(ctx->ledger_path,
						   cfg->playbook->app);
		struct ml_err_saved keep;

		ml_err_save(&keep);
		ml_metrics_refresh(cfg, hosts, n, tp, ctx->ledger,
				   began ? rev.number : 0, ml_mono_ms() - t0);
		ml_err_restore(&keep);
		free(tp);
	}
	if (lk.h) {
		struct ml_err_saved keep;

		ml_err_save(&keep);
		lock_drop(&lk);
		ml_err_restore(&keep);
	} else {
		ml_fleet_close(lk.hosts, lk.n);
	}
	ml_rollout_release(&ro);
	ml_rollout_release(&back);
	ml_fleet_close(hosts, n);
	if (reason) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	ml_revision_free(prev);
	ml_config_free(pcfg);
	ml_image_free(pimg);
	ml_cache_free(pcache);
	json_decref(secrets);
	json_decref(sent);
	free(layers);
	free(desired);
	free(reason);
	free(who);
	return rc;
}

int ml_deploy_load_revision(struct ml_config **cfg, struct ml_image **img,
			    struct ml_cache **cache, struct ml_ctx *ctx,
			    const struct ml_revision *rev)
{
	struct ml_config *c = NULL;
	struct ml_docker *d = NULL;
	struct ml_image *im = NULL;
	struct ml_cache *ca = NULL;
	int rc;

	*cfg = NULL;
	*img = NULL;
	*cache = NULL;
	if (!rev->image_id || !rev->playbook)
		return ml_err_set(ML_ENOTFOUND,
				  "revision %lld has no recorded image",
				  (long long)rev->number);
	rc = ml_load_config_with_playbook(&c, ctx, rev->playbook,
					  strlen(rev->playbook), rev->commit);
	if (rc < 0)
		goto out;
	rc = ml_docker_new(&d, ctx->opt[OPT_LOCAL_DOCKER]
				       ? ctx->opt[OPT_LOCAL_DOCKER]
				       : ML_DOCKER_SOCK);
	if (rc < 0)
		goto out;
	rc = ml_image_inspect(&im, d, rev->image_id);
	if (rc < 0) {
		rc = ml_err_prefix(rc, "the image of revision %lld (%.19s) "
				       "is not in the local Docker any more",
				   (long long)rev->number, rev->image_id);
		goto out;
	}
	/* tag it on the hosts as the original was, not by its digest */
	free(im->ref);
	im->ref = c->playbook->image.kind == ML_IMAGE_BUILD
			  ? ml_xasprintf("%s/%s:%s", ML_IMAGE_BUILD_REPO,
					 c->playbook->app,
					 rev->commit ? rev->commit : "unknown")
			  : ml_xstrdup(c->playbook->image.ref);
	rc = ml_cache_open(&ca, NULL);
	if (rc == 0)
		rc = ml_cache_fill(ca, d, im);
	if (rc < 0)
		goto out;
	*cfg = c;
	*img = im;
	*cache = ca;
	c = NULL;
	im = NULL;
	ca = NULL;
out:
	ml_config_free(c);
	ml_image_free(im);
	ml_cache_free(ca);
	ml_docker_free(d);
	return rc;
}
