/*
 * The fleet lock: a lease kept on one host (the load balancer, else the
 * first app host) so that two operators never deploy at once and a crashed
 * deploy does not lock the fleet for ever.
 *
 *	lock_acquire {"owner": "user@host pid N", "reason", "ttl_ms",
 *		      "machine_id", "boot_id", "pid" (who holds it, for a
 *		      later take-over), "take_over": GENERATION (optional)}
 *		-> {"acquired": true, "token", "generation", "owner",
 *		    "acquired_at_ms", "expires_at_ms",
 *		    "took_over_from": OWNER or null}
 *		   or the error "locked": "the fleet is locked by OWNER since
 *		   TIME (reason: R), expires in N s"
 *	lock_renew   {"token", "ttl_ms"}
 *		-> {"renewed": true, "generation", "expires_at_ms"}
 *	lock_release {"token"} or {"force": true}
 *		-> {"released": bool, "owner": previous owner or null}
 *	lock_status  {} -> {"held", "expired", "owner", "reason",
 *		    "generation", "machine_id", "boot_id", "pid",
 *		    "acquired_at_ms", "expires_at_ms", "now_ms"}
 *
 * Take-over is a compare-and-swap: "take_over": G replaces a lease that
 * has not expired only when its generation is still G. The controller
 * decides that the holder is dead (a pid of its own machine and boot that
 * no longer runs) from lock_status, and of several controllers that
 * decided so from the same status exactly one wins; the others get
 * "locked" naming the winner.
 *
 * Generations: every acquire gets a number larger than any this host gave
 * before (<state_dir>/lock.gen keeps the last one; at least the time in
 * ms, so a lock moved to another host still counts upwards). The holder
 * sends it as a fence with every request to every host (see
 * ml_agent_fence_check), and each host refuses requests fenced with a
 * generation older than the newest it has seen, so a controller that lost
 * its lease while frozen cannot change a host a newer holder has touched.
 *
 * Invariants: the lease is <state_dir>/lock.json (0600: it holds the
 * token), replaced only by writing lock.json.tmp, fsync, rename and fsync
 * of the directory, and removed by unlink and fsync, so a crash leaves the
 * old lease or the new one, never a mix. Every read-decide-write runs
 * under flock(2) on <state_dir>/lock.flock, across agent processes, so two
 * acquirers never both win. A lease whose expires_at_ms has passed is free
 * to take; its token may still renew or release it until someone does.
 * Times are CLOCK_REALTIME in ms, all taken on this host, so the
 * controllers' clocks do not matter. Tokens are 128 random bits in hex and
 * are never shown by lock_status. Sizes: owner at most 256 bytes, reason
 * 1024, the file at most 16 KiB.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/fmt.h"
#include "common/log.h"
#include "agent/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OWNER_MAX 256
#define REASON_MAX 1024
#define TTL_MAX_MS 86400000LL /* a day */
#define FILE_MAX (16 << 10)
#define FLOCK_WAIT_MS 5000
#define TOKEN_BYTES 16

#define ID_MAX 64 /* machine and boot ids */

struct lease {
	bool present;
	char *owner, *reason, *token;
	char *machine_id, *boot_id; /* of the holder's machine, or NULL */
	int64_t acquired_at_ms, expires_at_ms;
	int64_t generation, pid;
};

struct lock_paths {
	char *dir, *file, *tmp, *flock, *gen, *fence;
	int fd; /* the flock, -1 when not held */
};

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void paths_init(struct lock_paths *p, const char *state_dir)
{
	p->dir = ml_xstrdup(state_dir);
	p->file = ml_xasprintf("%s/lock.json", state_dir);
	p->tmp = ml_xasprintf("%s/lock.json.tmp", state_dir);
	p->flock = ml_xasprintf("%s/lock.flock", state_dir);
	p->gen = ml_xasprintf("%s/lock.gen", state_dir);
	p->fence = ml_xasprintf("%s/fence.json", state_dir);
	p->fd = -1;
}

static void paths_release(struct lock_paths *p)
{
	if (p->fd >= 0)
		close(p->fd); /* drops the flock */
	free(p->dir);
	free(p->file);
	free(p->tmp);
	free(p->flock);
	free(p->gen);
	free(p->fence);
	p->fd = -1;
}

static void lease_release(struct lease *l)
{
	free(l->owner);
	free(l->reason);
	free(l->token);
	free(l->machine_id);
	free(l->boot_id);
	memset(l, 0, sizeof(*l));
}

/* mkdir -p the state dir (0755), then take the flock, waiting up to 5 s. */
static int lock_take(struct lock_paths *p)
{
	int64_t deadline = ml_mono_ms() + FLOCK_WAIT_MS;
	struct timespec pause = {0, 2000000};
	char *s = ml_xstrdup(p->dir), *c;
	bool end;
	int rc = 0;

	for (c = s + 1;; c++) {
		if (*c && *c != '/')
			continue;
		end = !*c;
		*c = '\0';
		if (mkdir(s, 0755) < 0 && errno != EEXIST) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot create directory '%s'", s);
			goto out;
		}
		if (end)
			break;
		*c = '/';
	}
	p->fd = open(p->flock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (p->fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
				  p->flock);
		goto out;
	}
	while (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'",
					  p->flock);
			goto out;
		}
		if (ml_mono_ms() >= deadline) {
			rc = ml_err_set(ML_EFAIL,
					"'%s' stayed locked for %d ms; is an "
					"agent stuck?",
					p->flock, FLOCK_WAIT_MS);
			goto out;
		}
		nanosleep(&pause, NULL);
	}
out:
	free(s);
	return rc;
}

static char *dup_member(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? ml_xstrdup(s) : NULL;
}

/* Read the lease; absent is l->present false. A file we cannot make sense
 * of is an error that says how to get rid of it. */
static int lease_read(struct lease *l, const struct lock_paths *p)
{
	struct ml_buf b = ML_BUF_INIT(FILE_MAX);
	json_error_t jerr;
	json_t *j = NULL, *acq, *exp;
	int rc;

	memset(l, 0, sizeof(*l));
	rc = ml_buf_read_file(&b, p->file);
	if (rc == ML_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
	acq = json_object_get(j, "acquired_at_ms");
	exp = json_object_get(j, "expires_at_ms");
	if (!json_is_object(j) || !json_is_integer(acq) ||
	    !json_is_integer(exp) ||
	    !json_is_string(json_object_get(j, "owner")) ||
	    !json_is_string(json_object_get(j, "token"))) {
		rc = ml_err_set(ML_EFAIL,
				"the lock file '%s' is not a lease mlctl "
				"wrote; `mlctl lock release --force` removes "
				"it",
				p->file);
		goto out;
	}
	l->present = true;
	l->owner = dup_member(j, "owner");
	l->reason = dup_member(j, "reason");
	l->token = dup_member(j, "token");
	l->machine_id = dup_member(j, "machine_id");
	l->boot_id = dup_member(j, "boot_id");
	l->acquired_at_ms = json_integer_value(acq);
	l->expires_at_ms = json_integer_value(exp);
	l->generation = json_integer_value(json_object_get(j, "generation"));
	l->pid = json_integer_value(json_object_get(j, "pid"));
out:
	json_decref(j);
	ml_buf_release(&b);
	return rc;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", dir);
	if (fsync(fd) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot sync '%s'", dir);
	close(fd);
	return rc;
}

/* Replace path by j's text atomically: tmp, fsync, rename, fsync the
 * dir. Takes j's reference. */
static int json_write(const struct lock_paths *p, const char *path, json_t *j)
{
	char *text;
	size_t len, off = 0;
	ssize_t n;
	int fd = -1, rc = 0;

	if (!j)
		BUG("lease not encodable");
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!text)
		BUG("out of memory");
	len = strlen(text);
	fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				  p->tmp);
		goto out;
	}
	while (off < len) {
		n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE
							  : ML_EFAIL,
					  errno, "cannot write '%s'", p->tmp);
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot sync '%s'", p->tmp);
		goto out;
	}
	if (rename(p->tmp, path) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'",
				  p->tmp);
		goto out;
	}
	rc = fsync_dir(p->dir);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(p->tmp);
	free(text);
	return rc;
}

static int lease_write(const struct lease *l, const struct lock_paths *p)
{
	json_t *j =
		json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "owner", l->owner,
			  "reason", l->reason ? l->reason : "", "token",
			  l->token, "acquired_at_ms",
			  (json_int_t)l->acquired_at_ms, "expires_at_ms",
			  (json_int_t)l->expires_at_ms, "generation",
			  (json_int_t)l->generation);

	if (j && l->machine_id)
		json_object_set_new(j, "machine_id",
				    json_string(l->machine_id));
	if (j && l->boot_id)
		json_object_set_new(j, "boot_id", json_string(l->boot_id));
	if (j && l->pid)
		json_object_set_new(j, "pid", json_integer(l->pid));
	return json_write(p, p->file, j);
}

/* The integer "generation" of a small JSON file; 0 when it is absent or
 * unreadable (a fence or counter we cannot read starts again from the
 * clock, which only ever moves the numbers up). */
static int64_t file_generation(const char *path, char **owner)
{
	struct ml_buf b = ML_BUF_INIT(FILE_MAX);
	json_t *j = NULL;
	int64_t g = 0;

	if (ml_buf_read_file(&b, path) == 0)
		j = json_loadb(b.data, b.len, 0, NULL);
	if (json_is_integer(json_object_get(j, "generation")))
		g = json_integer_value(json_object_get(j, "generation"));
	if (owner)
		*owner = dup_member(j, "owner");
	json_decref(j);
	ml_buf_release(&b);
	return g;
}

/* The next generation, recorded in lock.gen before it is handed out. */
static int next_generation(int64_t *out, const struct lock_paths *p,
			   int64_t now)
{
	int64_t g = file_generation(p->gen, NULL) + 1;

	if (g < now)
		g = now;
	*out = g;
	return json_write(p, p->gen,
			  json_pack("{s:I}", "generation", (json_int_t)g));
}

static int lease_remove(const struct lock_paths *p)
{
	if (unlink(p->file) < 0 && errno != ENOENT)
		return ml_err_errno(ML_EFAIL, errno, "cannot remove '%s'",
				    p->file);
	return fsync_dir(p->dir);
}

/* s escaped for a message, into a new string. */
static char *esc(const char *s)
{
	struct ml_buf b = ML_BUF_INIT(4 * REASON_MAX + 8);

	ml_escape(&b, s ? s : "", strnlen(s ? s : "", REASON_MAX));
	return ml_buf_detach(&b, NULL);
}

/* ML_ELOCKED "the fleet is locked by OWNER since TIME (reason: R), expires
 * in N s" for a held lease. */
static int locked_error(const struct lease *l, int64_t now)
{
	char t[ML_FMT_MAX];
	char *o = esc(l->owner), *r = esc(l->reason);
	int rc;

	rc = ml_err_set(ML_ELOCKED,
			"the fleet is locked by %s since %s (reason: %s), "
			"expires in %lld s; 'mlctl deploy --wait DURATION' "
			"waits for it, 'mlctl lock release' breaks it if its "
			"holder is gone",
			o, ml_fmt_time(t, l->acquired_at_ms / 1000),
			*r ? r : "none",
			(long long)((l->expires_at_ms - now + 999) / 1000));
	free(o);
	free(r);
	return rc;
}

static int get_ttl(int64_t *out, json_t *args, const char *op)
{
	json_t *v = json_object_get(args, "ttl_ms");

	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > TTL_MAX_MS)
		return ml_err_set(ML_EPROTO,
				  "%s needs 'ttl_ms', an integer from 1 to "
				  "%lld",
				  op, TTL_MAX_MS);
	*out = json_integer_value(v);
	return 0;
}

static int new_token(char **out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[TOKEN_BYTES];
	char *t = ml_xmalloc(2 * TOKEN_BYTES + 1);
	ssize_t n;
	size_t i;

	do
		n = getrandom(rnd, sizeof(rnd), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rnd)) {
		free(t);
		return ml_err_errno(ML_EFAIL, n < 0 ? errno : EIO,
				    "cannot get random bytes");
	}
	for (i = 0; i < TOKEN_BYTES; i++) {
		t[2 * i] = hex[rnd[i] >> 4];
		t[2 * i + 1] = hex[rnd[i] & 15];
	}
	t[2 * TOKEN_BYTES] = '\0';
	*out = t;
	return 0;
}

/* An optional id argument: 1..ID_MAX of [0-9a-f-]. */
static int get_id(const char **out, json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	const char *s = json_string_value(v);

	*out = NULL;
	if (!v)
		return 0;
	if (!s || !*s || strlen(s) > ID_MAX ||
	    strspn(s, "0123456789abcdef-") != strlen(s))
		return ml_err_set(ML_EPROTO,
				  "lock_acquire: '%s' must be 1 to %d "
				  "lowercase hex digits and '-'",
				  key, ID_MAX);
	*out = s;
	return 0;
}

static int op_lock_acquire(struct ml_agent *a, json_t *args, json_t **result)
{
	const char *owner = json_string_value(json_object_get(args, "owner"));
	const char *reason = json_string_value(json_object_get(args, "reason"));
	json_t *take = json_object_get(args, "take_over");
	json_t *jpid = json_object_get(args, "pid");
	const char *machine, *boot;
	struct lock_paths p;
	struct lease l = {0}, mine = {0};
	json_t *prev = NULL;
	int64_t ttl, now;
	int rc;

	paths_init(&p, a->state_dir);
	if (!owner || !*owner || strlen(owner) > OWNER_MAX) {
		rc = ml_err_set(ML_EPROTO,
				"lock_acquire needs 'owner', a string of 1 to "
				"%d bytes",
				OWNER_MAX);
		goto out;
	}
	if (json_object_get(args, "reason") &&
	    (!reason || strlen(reason) > REASON_MAX)) {
		rc = ml_err_set(ML_EPROTO,
				"lock_acquire: 'reason' must be a string of "
				"at most %d bytes",
				REASON_MAX);
		goto out;
	}
	if ((take && (!json_is_integer(take) ||
		      json_integer_value(take) < 1)) ||
	    (jpid && (!json_is_integer(jpid) ||
		      json_integer_value(jpid) < 1))) {
		rc = ml_err_set(ML_EPROTO, "lock_acquire: 'take_over' and "
					   "'pid' must be positive integers");
		goto out;
	}
	rc = get_id(&machine, args, "machine_id");
	if (rc == 0)
		rc = get_id(&boot, args, "boot_id");
	if (rc == 0)
		rc = get_ttl(&ttl, args, "lock_acquire");
	if (rc < 0)
		goto out;

	rc = lock_take(&p);
	if (rc < 0)
		goto out;
	rc = lease_read(&l, &p);
	if (rc < 0)
		goto out;
	now = realtime_ms();
	/* the compare-and-swap of a take-over: the lease the caller judged
	 * dead must still be the one in place */
	if (l.present && l.expires_at_ms > now &&
	    (!take || json_integer_value(take) != l.generation)) {
		rc = locked_error(&l, now);
		goto out;
	}
	if (l.present) {
		char *o = esc(l.owner);

		prev = ml_proto_string(l.owner);
		if (l.expires_at_ms > now)
			ml_info("taking over the fleet lock of %s, whose "
				"holder is gone",
				o);
		else
			ml_info("taking over the fleet lock of %s, expired "
				"%lld ms ago",
				o, (long long)(now - l.expires_at_ms));
		free(o);
	}
	rc = new_token(&mine.token);
	if (rc == 0)
		rc = next_generation(&mine.generation, &p, now);
	if (rc < 0)
		goto out;
	mine.present = true;
	mine.owner = ml_xstrdup(owner);
	mine.reason = ml_xstrdup(reason ? reason : "");
	mine.machine_id = machine ? ml_xstrdup(machine) : NULL;
	mine.boot_id = boot ? ml_xstrdup(boot) : NULL;
	mine.pid = jpid ? json_integer_value(jpid) : 0;
	mine.acquired_at_ms = now;
	mine.expires_at_ms = now + ttl;
	rc = lease_write(&mine, &p);
	if (rc < 0)
		goto out;
	*result = json_pack("{s:b,s:s,s:I,s:o,s:I,s:I,s:o}", "acquired", 1,
			    "token", mine.token, "generation",
			    (json_int_t)mine.generation, "owner",
			    ml_proto_string(owner), "acquired_at_ms",
			    (json_int_t)mine.acquired_at_ms, "expires_at_ms",
			    (json_int_t)mine.expires_at_ms, "took_over_from",
			    prev ? prev : json_null());
	prev = NULL;
	if (!*result)
		BUG("out of memory");
out:
	json_decref(prev);
	lease_release(&l);
	lease_release(&mine);
	paths_release(&p);
	return rc;
}

/* ML_ELOCKED "lock is not held by you", naming who holds it if anyone. */
static int not_yours(const struct lease *l, int64_t now)
{
	char *o;
	int rc;

	if (!l->present || l->expires_at_ms <= now)
		return ml_err_set(ML_ELOCKED, "lock is not held by you (it is "
					      "free)");
	o = esc(l->owner);
	rc = ml_err_set(ML_ELOCKED,
			"lock is not held by you (it is held by "
			"%s)",
			o);
	free(o);
	return rc;
}

static int op_lock_renew(struct ml_agent *a, json_t *args, json_t **result)
{
	const char *token = json_string_value(json_object_get(args, "token"));
	struct lock_paths p;
	struct lease l = {0};
	int64_t ttl, now;
	int rc;

	paths_init(&p, a->state_dir);
	if (!token) {
		rc = ml_err_set(ML_EPROTO,
				"lock_renew needs 'token', a string");
		goto out;
	}
	rc = get_ttl(&ttl, args, "lock_renew");
	if (rc < 0)
		goto out;
	rc = lock_take(&p);
	if (rc < 0)
		goto out;
	rc = lease_read(&l, &p);
	if (rc < 0)
		goto out;
	now = realtime_ms();
	/* an expired lease nobody took over is still ours to renew */
	if (!l.present || strcmp(l.token, token)) {
		rc = not_yours(&l, now);
		goto out;
	}
	l.expires_at_ms = now + ttl;
	rc = lease_write(&l, &p);
	if (rc < 0)
		goto out;
	*result = json_pack("{s:b,s:I,s:I}", "renewed", 1, "generation",
			    (json_int_t)l.generation, "expires_at_ms",
			    (json_int_t)l.expires_at_ms);
	if (!*result)
		BUG("out of memory");
out:
	lease_release(&l);
	paths_release(&p);
	return rc;
}

static int op_lock_release(struct ml_agent *a, json_t *args, json_t **result)
{
	const char *token = json_string_value(json_object_get(args, "token"));
	bool force = json_is_true(json_object_get(args, "force"));
	struct lock_paths p;
	struct lease l = {0};
	int rc;

	paths_init(&p, a->state_dir);
	if (!token && !force) {
		rc = ml_err_set(ML_EPROTO, "lock_release needs 'token' (a "
					   "string) or 'force': true");
		goto out;
	}
	rc = lock_take(&p);
	if (rc < 0)
		goto out;
	rc = lease_read(&l, &p);
	if (rc < 0 && !force)
		goto out;
	if (rc < 0) {
		/* --force also clears a file we cannot read */
		ml_warn("removing an unreadable lock file: %s", ml_err_msg());
		lease_release(&l);
		l.present = true;
	}
	if (l.present && !force && strcmp(l.token, token)) {
		rc = not_yours(&l, realtime_ms());
		goto out;
	}
	if (l.present) {
		rc = lease_remove(&p);
		if (rc < 0)
			goto out;
	}
	*result = json_pack("{s:b,s:o}", "released", l.present, "owner",
			    ml_proto_string(l.owner));
	if (!*result)
		BUG("out of memory");
	rc = 0;
out:
	lease_release(&l);
	paths_release(&p);
	return rc;
}

static int op_lock_status(struct ml_agent *a, json_t *args, json_t **result)
{
	struct lock_paths p;
	struct lease l = {0};
	int64_t now = realtime_ms();
	json_t *r;
	int rc;

	/* no flock: the file is only ever replaced whole, by rename */
	paths_init(&p, a->state_dir);
	rc = lease_read(&l, &p);
	if (rc < 0)
		goto out;
	r = json_object();
	json_object_set_new(r, "held",
			    json_boolean(l.present && l.expires_at_ms > now));
	json_object_set_new(r, "expired",
			    json_boolean(l.present && l.expires_at_ms <= now));
	ml_agent_set_str(r, "owner", l.owner);
	ml_agent_set_str(r, "reason", l.reason);
	ml_agent_set_str(r, "machine_id", l.machine_id);
	ml_agent_set_str(r, "boot_id", l.boot_id);
	json_object_set_new(r, "pid",
			    l.pid ? json_integer(l.pid) : json_null());
	json_object_set_new(r, "generation",
			    l.present ? json_integer(l.generation)
				      : json_null());
	json_object_set_new(r, "acquired_at_ms",
			    l.present ? json_integer(l.acquired_at_ms)
				      : json_null());
	json_object_set_new(r, "expires_at_ms",
			    l.present ? json_integer(l.expires_at_ms)
				      : json_null());
	json_object_set_new(r, "now_ms", json_integer(now));
	*result = r;
out:
	lease_release(&l);
	paths_release(&p);
	return rc;
}

int ml_agent_fence_check(struct ml_agent *a, json_t *fence)
{
	json_t *g = json_object_get(fence, "generation");
	const char *owner = json_string_value(json_object_get(fence, "owner"));
	struct lock_paths p;
	char *seen_owner = NULL, *o;
	int64_t seen;
	int rc;

	if (!json_is_integer(g) || json_integer_value(g) < 1 ||
	    (owner && strlen(owner) > OWNER_MAX))
		return ml_err_set(ML_EPROTO,
				  "'fence' must be {\"generation\": a positive "
				  "integer, \"owner\": a string}");
	paths_init(&p, a->state_dir);
	/* the lock's flock: a fence never moves while a lease changes */
	rc = lock_take(&p);
	if (rc < 0)
		goto out;
	seen = file_generation(p.fence, &seen_owner);
	if (json_integer_value(g) < seen) {
		o = esc(seen_owner);
		rc = ml_err_set(ML_ELOCKED,
				"this controller lost the fleet lock: %s "
				"(generation %lld) has changed this host "
				"since; refusing a request of generation %lld",
				*o ? o : "a newer holder", (long long)seen,
				(long long)json_integer_value(g));
		free(o);
		goto out;
	}
	if (json_integer_value(g) > seen)
		rc = json_write(&p, p.fence,
				json_pack("{s:I,s:s}", "generation",
					  (json_int_t)json_integer_value(g),
					  "owner", owner ? owner : ""));
out:
	free(seen_owner);
	paths_release(&p);
	return rc;
}

const struct ml_agent_op ml_agent_op_lock_acquire = {
	.name = "lock_acquire",
	.summary = "take the fleet lock lease if it is free or expired",
	.run = op_lock_acquire,
};

const struct ml_agent_op ml_agent_op_lock_renew = {
	.name = "lock_renew",
	.summary = "extend the fleet lock lease held with a token",
	.run = op_lock_renew,
};

const struct ml_agent_op ml_agent_op_lock_release = {
	.name = "lock_release",
	.summary = "give back the fleet lock (with its token, or forced)",
	.run = op_lock_release,
};

const struct ml_agent_op ml_agent_op_lock_status = {
	.name = "lock_status",
	.summary = "who holds the fleet lock, why and until when",
	.run = op_lock_status,
};
