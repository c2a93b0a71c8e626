/*
 * The fleet lock's lease (see lease.h). It is held on the fleet lock's
 * host (the first load balancer listed, the first app host when there is
 * none) through a connection of its own, renewed by a thread every third
 * of its time to live; a controller that dies stops renewing and the lease
 * expires, and a lease whose owner is a dead process of this machine is
 * taken over at once. Whether the lease is still ours is judged by our own
 * monotonic clock from before the request that last renewed it, never by
 * the host's wall clock.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/options.h"

#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TTL_MS 60000

char *ml_operator_name(void)
{
	char host[256] = "localhost";
	struct passwd *pw = getpwuid(getuid());

	gethostname(host, sizeof(host) - 1);
	return ml_xasprintf("%s@%s", pw ? pw->pw_name : "unknown", host);
}

struct ml_fleet_lock {
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

static void lock_mark_lost(struct ml_fleet_lock *lk, const char *why)
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
	struct ml_fleet_lock *lk = arg;
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

/* Renew every third of the time to live; waits on the monotonic clock. A
 * renewal the lock host refuses (another holder, or none) loses the lease
 * for good; one that fails on the way is retried while time is left. */
static void *renew_thread(void *arg)
{
	struct ml_fleet_lock *lk = arg;
	struct timespec ts;
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
		sent = ml_mono_ms();
		rc = ml_op_lock_renew(lk->h, lk->token, lk->ttl_ms, NULL);
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

static int lock_take(struct ml_fleet_lock *lk, const struct ml_config *cfg,
		     const struct ml_fleet_opts *fo, const char *who,
		     const char *reason, int64_t wait_ms)
{
	int64_t deadline = ml_mono_ms() + wait_ms, sent;
	char machine[65], boot[65];
	json_t *res = NULL;
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

		sent = ml_mono_ms();
		rc = ml_op_lock_acquire(lk->h, lk->owner, reason, lk->ttl_ms,
					(int)getpid(), machine, boot, take_over,
					&res);
		if (rc != ML_ELOCKED)
			break;
		/*
		 * A lease left by a dead mlctl of this machine is ours, in one
		 * compare-and-swap on its generation: of several controllers
		 * that see the same dead holder, one gets it.
		 */
		if (!take_over &&
		    ml_op_lock_status(lk->h, &st) == 0 &&
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

static void lock_drop(struct ml_fleet_lock *lk)
{
	if (lk->renewing) {
		pthread_mutex_lock(&lk->mu);
		lk->stop = true;
		pthread_cond_signal(&lk->cv);
		pthread_mutex_unlock(&lk->mu);
		pthread_join(lk->renewer, NULL);
	}
	/* a lost lease is someone else's now: leave it alone */
	if (lk->token && !lk->lost &&
	    ml_op_lock_release(lk->h, lk->token, false, NULL) < 0)
		ml_warn("cannot release the fleet lock: %s", ml_err_msg());
	if (lk->renewing) {
		pthread_mutex_destroy(&lk->mu);
		pthread_cond_destroy(&lk->cv);
	}
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

int ml_fleet_lock_take(struct ml_fleet_lock **out, struct ml_ctx *ctx,
		       const struct ml_config *cfg, const char *reason)
{
	struct ml_fleet_lock *fl = ml_xcalloc(1, sizeof(*fl));
	struct ml_fleet_opts fo;
	int64_t wait_ms;
	char *who = ml_operator_name();
	int rc;

	rc = parse_wait(&wait_ms, ctx);
	if (rc == 0)
		rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc == 0)
		rc = lock_take(fl, cfg, &fo, who, reason, wait_ms);
	free(who);
	if (rc < 0) {
		ml_fleet_lock_drop(fl);
		return rc;
	}
	*out = fl;
	return 0;
}

const struct ml_fence *ml_fleet_lock_fence(struct ml_fleet_lock *fl)
{
	return &fl->fence;
}

bool ml_fleet_lock_lost(struct ml_fleet_lock *fl)
{
	return fl && fl->token && lock_check(fl) < 0;
}

bool ml_fleet_lock_known_lost(struct ml_fleet_lock *fl)
{
	bool lost;

	if (!fl || !fl->token)
		return false;
	pthread_mutex_lock(&fl->mu);
	lost = fl->lost;
	pthread_mutex_unlock(&fl->mu);
	return lost;
}

void ml_fleet_lock_drop(struct ml_fleet_lock *fl)
{
	struct ml_err_saved keep;

	if (!fl)
		return;
	ml_err_save(&keep);
	if (fl->h)
		lock_drop(fl);
	else
		ml_fleet_close(fl->hosts, fl->n);
	ml_err_restore(&keep);
	free(fl);
}
