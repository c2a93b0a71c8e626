/*
 * HAProxy on load-balancer hosts (see haproxy.h): validating lb_apply's
 * input, rendering the configuration, checking it with `haproxy -c`,
 * starting and reloading the master-worker process, and the runtime API
 * client over its unix sockets.
 *
 * Invariants: nothing reaches a configuration line that was not validated
 * as a name ([A-Za-z0-9._-]), an address (IP literal or DNS name), a path
 * of [A-Za-z0-9._/~?&=%:+,;@-] or a number in range, so no input can hold
 * a space, a newline, a '#', a quote or a backslash. HAProxy is always run
 * with an argv vector; the daemon gets /dev/null and a log file as stdio
 * and none of our descriptors, so it never writes into the protocol stream
 * and never keeps the SSH session open. Runtime commands are one line of
 * validated names.
 *
 * Sizes: a configuration is about 100 bytes per server (at most 1000
 * servers, capped at 1 MiB); runtime API answers at most 4 MiB (`show
 * stat` is about 600 bytes per server); `haproxy -c` output at most 64 KiB.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sha256.h"
#include "agent/haproxy.h"
#include "agent/probe.h"
#include "agent/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_MAX ((size_t)1 << 20)
#define CHECK_OUT_MAX ((size_t)64 << 10)
#define SHOWN_MAX 4096 /* bytes of HAProxy's text put in a message */
#define POLL_STEP_MS 20
#define STRUCTURE_TAG "# mlctl-structure sha256:"

/* ---- small helpers ------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* s (any bytes) escaped and shortened into a new string for a message. */
static char *shown(const char *s)
{
	struct ml_buf b = ML_BUF_INIT(4 * SHOWN_MAX + 8);
	size_t n = strnlen(s, SHOWN_MAX);

	ml_escape(&b, s, n);
	if (s[n])
		ml_buf_addstr(&b, "...");
	return ml_buf_detach(&b, NULL);
}

/* ---- validation --------------------------------------------------------- */

bool ml_lb_valid_name(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (!n || n > ML_LB_NAME_MAX || !is_alnum((unsigned char)s[0]))
		return false;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

bool ml_lb_valid_address(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = s ? strlen(s) : 0, label = 0, i;

	if (!n || n > ML_LB_HOST_MAX)
		return false;
	if (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)
		return true;
	/* a DNS name: dot-separated labels of [A-Za-z0-9-], 1..63 each */
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!label || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
		if (!label && s[i] == '-')
			return false;
		label++;
	}
	return true;
}

/* An IP literal (what a frontend may bind). */
static bool valid_ip(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return s && (inet_pton(AF_INET, s, &a4) == 1 ||
		     inet_pton(AF_INET6, s, &a6) == 1);
}

/*
 * Append s to b as a regular expression matching it literally, for a
 * single-quoted HAProxy argument (nothing is interpreted inside single
 * quotes, so a quote itself becomes '.', which matches it too).
 */
static void add_regex_literal(struct ml_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			ml_buf_addch(b, '.');
		else if (strchr("\\^$.|?*+()[]{}/", *s))
			ml_buf_addf(b, "\\%c", *s);
		else
			ml_buf_addch(b, *s);
	}
}

/*
 * The http-check expect lines for health.expect (agent/probe.h has the
 * format): every rule must pass. HAProxy reads a JSON field with a
 * regular expression on the body, "key" : "value" with the last key of
 * the path, which is looser than the agent's own check (a parsed
 * document); the agent's check gates traffic first, HAProxy's keeps a
 * server that stops being ready out. *out is NULL when nothing is
 * expected.
 */
static int render_expect(char **out, const json_t *j)
{
	struct ml_probe_expect e;
	struct ml_buf b = ML_BUF_INIT(4096);
	const char *key;
	size_t i;
	int rc;

	*out = NULL;
	rc = ml_probe_expect_from_json(&e, j);
	if (rc < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", ml_err_msg());
		return ml_err_set(ML_EPROTO, "lb_apply: health.%s", why);
	}
	if (!j || json_is_null(j))
		return 0;
	if (e.nstatus) {
		ml_buf_addstr(&b, "\thttp-check expect rstatus '^(");
		for (i = 0; i < e.nstatus; i++)
			ml_buf_addf(&b, "%s%d", i ? "|" : "", e.status[i]);
		ml_buf_addstr(&b, ")$'\n");
	} else {
		ml_buf_addstr(&b, "\thttp-check expect status 200-399\n");
	}
	if (e.body) {
		ml_buf_addstr(&b, "\thttp-check expect rstring '");
		add_regex_literal(&b, e.body);
		ml_buf_addstr(&b, "'\n");
	}
	if (e.json_field) {
		key = strrchr(e.json_field, '.');
		key = key ? key + 1 : e.json_field;
		ml_buf_addstr(&b, "\thttp-check expect rstring '\"");
		add_regex_literal(&b, key);
		ml_buf_addstr(&b, "\"[[:space:]]*:[[:space:]]*\"?");
		add_regex_literal(&b, e.json_value);
		ml_buf_addstr(&b, "\"?[[:space:]]*[,}]'\n");
	}
	for (i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 && b.data[i] != '\t' &&
		    b.data[i] != '\n')
			BUG("control byte in a rendered check");
	*out = ml_buf_detach(&b, NULL);
	return 0;
}

/* A health check path: "/" then URL characters that mean nothing to
 * HAProxy's configuration parser. */
static bool valid_http_path(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (!n || n > ML_LB_PATH_MAX || s[0] != '/')
		return false;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) &&
		    !strchr("-._~/?&=%:+,;@", s[i]))
			return false;
	return true;
}

static const char *const state_names[] = {"ready", "drain", "maint"};

int ml_lb_state_parse(enum ml_lb_state *out, const char *s)
{
	size_t i;

	for (i = 0; s && i < ML_ARRAY_SIZE(state_names); i++) {
		if (!strcmp(s, state_names[i])) {
			*out = (enum ml_lb_state)i;
			return 0;
		}
	}
	return ML_EPROTO;
}

const char *ml_lb_state_name(enum ml_lb_state s)
{
	if ((size_t)s >= ML_ARRAY_SIZE(state_names))
		BUG("bad server state %d", (int)s);
	return state_names[s];
}

/* ---- lb_apply's args ---------------------------------------------------- */

#define REQUIRED LLONG_MIN

/*
 * obj[key] as an integer in [min, max] into *out; def when absent (or an
 * error when def is REQUIRED). where names the object for messages.
 */
static int get_int(long long *out, json_t *obj, const char *where,
		   const char *key, long long def, long long min, long long max)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (def == REQUIRED)
			return ml_err_set(ML_EPROTO,
					  "lb_apply: %s'%s' is "
					  "missing (an integer)",
					  where, key);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: %s'%s' must be an integer from "
				  "%lld to %lld",
				  where, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

/*
 * obj[key] as a string that passes ok() into *out (a copy); def (may be
 * NULL) when absent, an error when absent and required.
 */
static int get_str(char **out, json_t *obj, const char *where, const char *key,
		   const char *def, bool required, bool (*ok)(const char *),
		   const char *what)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	char *esc;
	int rc;

	if (!v || json_is_null(v)) {
		if (required)
			return ml_err_set(ML_EPROTO,
					  "lb_apply: %s'%s' is missing (%s)",
					  where, key, what);
		*out = def ? ml_xstrdup(def) : NULL;
		return 0;
	}
	s = json_string_value(v);
	if (!s)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: %s'%s' must be a string (%s)",
				  where, key, what);
	if (!ok(s)) {
		esc = shown(s);
		rc = ml_err_set(ML_EPROTO, "lb_apply: %s'%s' is '%s', not %s",
				where, key, esc, what);
		free(esc);
		return rc;
	}
	*out = ml_xstrdup(s);
	return 0;
}

static bool valid_balance(const char *s)
{
	return !strcmp(s, "roundrobin") || !strcmp(s, "leastconn") ||
	       !strcmp(s, "random");
}

static bool valid_state(const char *s)
{
	enum ml_lb_state st;

	return ml_lb_state_parse(&st, s) == 0;
}

#define NAME_WHAT                                                              \
	"a name of letters, digits, '.', '_' and '-' (at most 64, starting "   \
	"with a letter or digit)"

static int server_from_json(struct ml_lb_server *s, json_t *v, size_t i)
{
	char where[48];
	char *state = NULL;
	long long n;
	int rc;

	snprintf(where, sizeof(where), "servers[%zu].", i);
	if (!json_is_object(v))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: servers[%zu] must be an object",
				  i);
	rc = get_str(&s->name, v, where, "name", NULL, true, ml_lb_valid_name,
		     NAME_WHAT);
	if (rc < 0)
		goto out;
	rc = get_str(&s->address, v, where, "address", NULL, true,
		     ml_lb_valid_address, "an IP address or a DNS name");
	if (rc < 0)
		goto out;
	rc = get_int(&n, v, where, "port", REQUIRED, 1, 65535);
	if (rc < 0)
		goto out;
	s->port = (int)n;
	rc = get_int(&n, v, where, "weight", 100, 0, ML_LB_WEIGHT_MAX);
	if (rc < 0)
		goto out;
	s->weight = (int)n;
	rc = get_str(&state, v, where, "state", "ready", false, valid_state,
		     "one of ready, drain, maint");
	if (rc < 0)
		goto out;
	ml_lb_state_parse(&s->state, state);
out:
	free(state);
	return rc;
}

/* A health object (absent members from def) into *k. */
static int check_from_json(struct ml_lb_check *k, json_t *health,
			   const char *where, const struct ml_lb_check *def)
{
	long long n;
	int rc;

	if (health && !json_is_null(health) && !json_is_object(health))
		return ml_err_set(ML_EPROTO, "lb_apply: '%shealth' must be an "
					     "object", where);
	rc = get_str(&k->path, health, where, "path", def->path, false,
		     valid_http_path,
		     "a path starting with '/' of URL characters");
	if (rc < 0)
		return rc;
	/* expect is never inherited: absent means any 2xx or 3xx answer */
	rc = render_expect(&k->expect, json_object_get(health, "expect"));
	if (rc < 0)
		return rc;
	rc = get_int(&n, health, where, "interval_ms", def->interval_ms, 100,
		     3600000);
	if (rc < 0)
		return rc;
	k->interval_ms = (long)n;
	rc = get_int(&n, health, where, "timeout_ms", def->timeout_ms, 10,
		     3600000);
	if (rc < 0)
		return rc;
	k->timeout_ms = (long)n;
	rc = get_int(&n, health, where, "healthy_threshold", def->rise, 1, 100);
	if (rc < 0)
		return rc;
	k->rise = (int)n;
	rc = get_int(&n, health, where, "unhealthy_threshold", def->fall, 1,
		     100);
	if (rc < 0)
		return rc;
	k->fall = (int)n;
	return 0;
}

static bool check_same(const struct ml_lb_check *a,
		       const struct ml_lb_check *b)
{
	return !strcmp(a->path, b->path) &&
	       !strcmp(a->expect ? a->expect : "", b->expect ? b->expect : "") &&
	       a->interval_ms == b->interval_ms &&
	       a->timeout_ms == b->timeout_ms && a->rise == b->rise &&
	       a->fall == b->fall;
}

static void check_free(struct ml_lb_check *k)
{
	if (k) {
		free(k->path);
		free(k->expect);
		free(k);
	}
}

int ml_lb_config_from_json(struct ml_lb_config *c, json_t *args)
{
	json_t *health, *servers, *v;
	long long n;
	size_t i, j;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = get_str(&c->app, args, "", "app", NULL, true, ml_lb_valid_name,
		     NAME_WHAT);
	if (rc < 0)
		return rc;
	rc = get_str(&c->bind, args, "", "bind", "0.0.0.0", false, valid_ip,
		     "an IP address");
	if (rc < 0)
		return rc;
	rc = get_int(&n, args, "", "listen_port", REQUIRED, 1, 65535);
	if (rc < 0)
		return rc;
	c->listen_port = (int)n;
	rc = get_int(&n, args, "", "stats_port", 8404, 0, 65535);
	if (rc < 0)
		return rc;
	c->stats_port = (int)n;
	/* the exporter is an unauthenticated page: an address of its own,
	 * loopback unless the caller names one, and never every address */
	rc = get_str(&c->metrics_bind, args, "", "metrics_bind", "127.0.0.1",
		     false, ml_lb_valid_address, "an IP address or host name");
	if (rc < 0)
		return rc;
	if (!strcmp(c->metrics_bind, "0.0.0.0") ||
	    !strcmp(c->metrics_bind, "::"))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'metrics_bind' must be one "
				  "address of the host, not '%s'",
				  c->metrics_bind);
	if (c->stats_port == c->listen_port)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'stats_port' and "
				  "'listen_port' are both %d",
				  c->listen_port);
	rc = get_str(&c->balance, args, "", "balance", "roundrobin", false,
		     valid_balance, "one of roundrobin, leastconn, random");
	if (rc < 0)
		return rc;
	rc = get_int(&n, args, "", "drain_timeout_ms", 60000, 1000, 86400000);
	if (rc < 0)
		return rc;
	c->drain_timeout_ms = (long)n;
	rc = ml_lb_tls_from_json(c, args);
	if (rc < 0)
		return rc;

	{
		char slash[] = "/";
		struct ml_lb_check k = {0}, def = {slash, 2000, 2000, 2, 3,
						   NULL};

		health = json_object_get(args, "health");
		rc = check_from_json(&k, health, "health.", &def);
		c->health_path = k.path;
		c->health_expect = k.expect;
		c->interval_ms = k.interval_ms;
		c->timeout_ms = k.timeout_ms;
		c->rise = k.rise;
		c->fall = k.fall;
		if (rc < 0)
			return rc;
	}

	servers = json_object_get(args, "servers");
	if (!json_is_array(servers))
		return ml_err_set(ML_EPROTO, "lb_apply: 'servers' is missing "
					     "(an array, may be empty)");
	if (json_array_size(servers) > ML_LB_MAX_SERVERS)
		return ml_err_set(ML_ETOOBIG,
				  "lb_apply: %zu servers, at most %d",
				  json_array_size(servers), ML_LB_MAX_SERVERS);
	c->servers =
		ml_xcalloc(json_array_size(servers) + 1, sizeof(*c->servers));
	json_array_foreach(servers, i, v)
	{
		c->nr_servers = i + 1;
		rc = server_from_json(&c->servers[i], v, i);
		if (rc < 0)
			return rc;
		if (json_object_get(v, "health")) {
			struct ml_lb_check def = {c->health_path,
						  c->interval_ms,
						  c->timeout_ms, c->rise,
						  c->fall, NULL};
			struct ml_lb_check *k = ml_xcalloc(1, sizeof(*k));
			char where[48];

			snprintf(where, sizeof(where), "servers[%zu].health.",
				 i);
			c->servers[i].check = k;
			rc = check_from_json(k, json_object_get(v, "health"),
					     where, &def);
			if (rc < 0)
				return rc;
			/* the backend's own check (its expect lines too):
			 * nothing to track */
			def.expect = c->health_expect;
			if (check_same(k, &def)) {
				check_free(k);
				c->servers[i].check = NULL;
			}
		}
		for (j = 0; j < i; j++)
			if (!strcmp(c->servers[j].name, c->servers[i].name))
				return ml_err_set(ML_EPROTO,
						  "lb_apply: servers[%zu] and "
						  "servers[%zu] are both "
						  "named '%s'",
						  j, i, c->servers[i].name);
	}
	return 0;
}

void ml_lb_config_release(struct ml_lb_config *c)
{
	size_t i;

	for (i = 0; c->servers && i < c->nr_servers; i++) {
		free(c->servers[i].name);
		free(c->servers[i].address);
		check_free(c->servers[i].check);
	}
	free(c->servers);
	free(c->app);
	free(c->bind);
	free(c->metrics_bind);
	free(c->balance);
	free(c->health_path);
	free(c->health_expect);
	ml_lb_tls_release(c);
	memset(c, 0, sizeof(*c));
}

/* ---- the instance's files ----------------------------------------------- */

int ml_haproxy_init(struct ml_haproxy *h, const char *state_dir,
		    const char *app)
{
	const char *bin = getenv("MLCTL_HAPROXY_BIN");
	struct sockaddr_un sun;
	char *esc;
	int rc;

	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
	h->timeout_ms = ML_HAPROXY_TIMEOUT_MS;
	h->start_ms = ML_HAPROXY_START_MS;
	if (!ml_lb_valid_name(app)) {
		esc = shown(app ? app : "");
		rc = ml_err_set(ML_EPROTO, "app '%s' is not %s", esc,
				NAME_WHAT);
		free(esc);
		return rc;
	}
	h->app = ml_xstrdup(app);
	h->dir = ml_xasprintf("%s/haproxy/%s", state_dir, app);
	h->cfg = ml_xasprintf("%s/haproxy.cfg", h->dir);
	h->cfg_new = ml_xasprintf("%s/haproxy.cfg.new", h->dir);
	h->cfg_old = ml_xasprintf("%s/haproxy.cfg.old", h->dir);
	h->pidfile = ml_xasprintf("%s/haproxy.pid", h->dir);
	h->admin_sock = ml_xasprintf("%s/admin.sock", h->dir);
	h->master_sock = ml_xasprintf("%s/master.sock", h->dir);
	h->state_file = ml_xasprintf("%s/server-state", h->dir);
	h->state_tmp = ml_xasprintf("%s/server-state.tmp", h->dir);
	h->lock_file = ml_xasprintf("%s/apply.flock", h->dir);
	h->log_file = ml_xasprintf("%s/haproxy.log", h->dir);
	if (bin && *bin)
		h->bin = ml_xstrdup(bin);
	else if (access("/usr/sbin/haproxy", X_OK) == 0)
		h->bin = ml_xstrdup("/usr/sbin/haproxy");
	else
		h->bin = ml_xstrdup("haproxy");
	/* HAProxy binds "<path>.<pid>.tmp" first, so leave it room */
	if (strlen(h->master_sock) + 16 >= sizeof(sun.sun_path))
		return ml_err_set(ML_ETOOBIG,
				  "the HAProxy socket path '%s' is too long "
				  "for a unix socket; use a shorter state "
				  "directory or app name",
				  h->master_sock);
	return 0;
}

void ml_haproxy_release(struct ml_haproxy *h)
{
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	free(h->app);
	free(h->dir);
	free(h->cfg);
	free(h->cfg_new);
	free(h->cfg_old);
	free(h->pidfile);
	free(h->admin_sock);
	free(h->master_sock);
	free(h->state_file);
	free(h->state_tmp);
	free(h->lock_file);
	free(h->log_file);
	free(h->bin);
	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
}

/* mkdir -p path with mode for the last component, 0755 above it. */
static int mkdir_p(const char *path, mode_t mode)
{
	char *p = ml_xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot create directory '%s'", p);
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		rc = ml_err_errno(ML_EFAIL, errno,
				  "cannot create directory '%s'", p);
out:
	free(p);
	return rc;
}

int ml_haproxy_mkdir(struct ml_haproxy *h)
{
	return mkdir_p(h->dir, 0700);
}

int ml_haproxy_lock(struct ml_haproxy *h)
{
	int64_t deadline = mono_ms() + h->start_ms;
	int fd;

	if (h->lock_fd >= 0)
		return 0;
	fd = open(h->lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
				    h->lock_file);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			close(fd);
			return ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'",
					    h->lock_file);
		}
		if (mono_ms() >= deadline) {
			close(fd);
			return ml_err_set(ML_EFAIL,
					  "another agent is changing HAProxy "
					  "for app '%s' (%s is locked); "
					  "try again",
					  h->app, h->lock_file);
		}
		sleep_ms(POLL_STEP_MS);
	}
	h->lock_fd = fd;
	return 0;
}

int ml_haproxy_write_file(const char *path, const void *p, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				    path);
	while (off < len) {
		n = write(fd, (const char *)p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE
							  : ML_EFAIL,
					  errno, "cannot write '%s'", path);
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot write '%s'", path);
out:
	close(fd);
	return rc;
}

/* ---- rendering ---------------------------------------------------------- */

static int add_hostport(struct ml_buf *b, const char *addr, int port)
{
	if (strchr(addr, ':'))
		return ml_buf_addf(b, "[%s]:%d", addr, port);
	return ml_buf_addf(b, "%s:%d", addr, port);
}

/* The name of the check-only backend for check k: "chk_<app>_" and 16
 * hex digits of the check's hash, the same for the same check, so a
 * reload carries its servers' health over (server-state file). */
#define CHECK_NAME_MAX ML_LB_CHECK_NAME_MAX

void ml_haproxy_check_backend(char out[ML_LB_CHECK_NAME_MAX],
			      const struct ml_lb_config *c,
			      const struct ml_lb_check *k)
{
	struct ml_buf text = ML_BUF_INIT(ML_LB_PATH_MAX + 8192);
	char hex[ML_SHA256_HEX];

	ml_buf_addf(&text, "%s %ld %ld %d %d\n%s", k->path, k->interval_ms,
		    k->timeout_ms, k->rise, k->fall,
		    k->expect ? k->expect : "");
	ml_sha256_hex(text.data, text.len, hex);
	ml_buf_release(&text);
	snprintf(out, CHECK_NAME_MAX, "chk_%.*s_%.16s", ML_LB_NAME_MAX, c->app,
		 hex);
}

/*
 * One backend per distinct server check, holding only the servers that
 * use it: HAProxy checks them there, and the servers of the app's backend
 * that track them follow. No frontend uses these backends, so they carry
 * no traffic.
 */
static void render_checks(struct ml_buf *b, const struct ml_lb_config *c)
{
	const struct ml_lb_server *s;
	char name[CHECK_NAME_MAX];
	size_t i, j;

	for (i = 0; i < c->nr_servers; i++) {
		const struct ml_lb_check *k = c->servers[i].check;
		bool seen = false;

		if (!k)
			continue;
		for (j = 0; j < i && !seen; j++)
			seen = c->servers[j].check &&
			       check_same(c->servers[j].check, k);
		if (seen)
			continue;
		ml_haproxy_check_backend(name, c, k);
		ml_buf_addf(b, "\nbackend %s\n", name);
		ml_buf_addf(b, "\ttimeout check %ldms\n", k->timeout_ms);
		ml_buf_addf(b, "\toption httpchk GET %s\n", k->path);
		ml_buf_addstr(b, k->expect ? k->expect
				   : "\thttp-check expect status 200-399\n");
		ml_buf_addf(b,
			    "\tdefault-server inter %ldms fall %d rise %d "
			    "init-addr last,libc,none\n",
			    k->interval_ms, k->fall, k->rise);
		for (j = i; j < c->nr_servers; j++) {
			s = &c->servers[j];
			if (!s->check || !check_same(s->check, k))
				continue;
			ml_buf_addf(b, "\tserver %s ", s->name);
			add_hostport(b, s->address, s->port);
			ml_buf_addstr(b, " check\n");
		}
	}
}

/*
 * The configuration proper. With states false, server lines carry neither
 * weight nor state: that text is the "structure", whose change needs a
 * reload, while states and weights are applied at runtime.
 */
static int render_body(struct ml_buf *b, const struct ml_lb_config *c,
		       const struct ml_haproxy *h, bool states)
{
	const struct ml_lb_server *s;
	size_t i;

	ml_buf_addstr(b, "global\n"
			 "\tmaster-worker\n");
	ml_buf_addf(b, "\tpidfile %s\n", h->pidfile);
	ml_buf_addf(b,
		    "\tstats socket %s mode 600 level admin expose-fd "
		    "listeners\n",
		    h->admin_sock);
	ml_buf_addstr(b, "\tstats timeout 30s\n");
	ml_buf_addf(b, "\tserver-state-file %s\n", h->state_file);
	/* requests in flight in an old worker get this long after a reload */
	ml_buf_addf(b, "\thard-stop-after %ldms\n", c->drain_timeout_ms);
	ml_lb_tls_render_global(b, c);
	/*
	 * One line per request into a ring in the worker's memory, read back
	 * with `show events` (lb_requests): the per-server timers that give
	 * real latency percentiles, with no log file on the LB's disk.
	 */
	ml_buf_addf(b, "\nring " ML_HAPROXY_RING "\n"
		       "\tformat raw\n"
		       "\tmaxlen %d\n"
		       "\tsize %zu\n",
		    ML_HAPROXY_RING_LINE, ML_HAPROXY_RING_SIZE);
	/*
	 * Servers are on the fleet's own network: a connection that takes a
	 * second is a SYN lost (a slot going away, a host too busy to
	 * answer), and the retry below goes to another server at once
	 * instead of after three, which a client with a 5 s timeout would
	 * not wait for.
	 */
	ml_buf_addstr(b, "\n"
			 "defaults\n"
			 "\tmode http\n"
			 "\ttimeout connect 1s\n"
			 "\ttimeout client 60s\n"
			 "\ttimeout server 300s\n"
			 "\ttimeout http-request 10s\n"
			 "\ttimeout http-keep-alive 10s\n"
			 "\ttimeout queue 30s\n");
	ml_buf_addf(b, "\ttimeout check %ldms\n", c->timeout_ms);
	/*
	 * A request whose connection fails (a server that just stopped, an
	 * idle keep-alive connection the server closed) is retried on
	 * another server, so neither a drain nor a stop fails a request.
	 */
	ml_buf_addstr(b, "\tload-server-state-from-file global\n"
			 "\toption redispatch 1\n"
			 "\tretries 3\n"
			 "\tretry-on conn-failure empty-response\n"
			 "\n");
	ml_buf_addf(b, "frontend fe_%s\n", c->app);
	ml_buf_addstr(b, "\tbind ");
	add_hostport(b, c->bind, c->listen_port);
	ml_lb_tls_render_bind(b, c, h);
	ml_buf_addstr(b, "\n\toption forwardfor\n");
	ml_lb_tls_render_frontend(b, c);
	ml_buf_addstr(b, "\tlog ring@" ML_HAPROXY_RING " local0 info\n"
			 "\tlog-format \"" ML_HAPROXY_LOG_FORMAT "\"\n");
	ml_buf_addf(b, "\tdefault_backend %s\n\n", c->app);

	ml_buf_addf(b, "backend %s\n", c->app);
	ml_buf_addf(b, "\tbalance %s\n", c->balance);
	ml_buf_addf(b, "\toption httpchk GET %s\n", c->health_path);
	if (c->health_expect)
		ml_buf_addstr(b, c->health_expect);
	else
		ml_buf_addstr(b, "\thttp-check expect status 200-399\n");
	ml_buf_addf(b,
		    "\tdefault-server inter %ldms fall %d rise %d "
		    "init-addr last,libc,none\n",
		    c->interval_ms, c->fall, c->rise);
	for (i = 0; i < c->nr_servers; i++) {
		s = &c->servers[i];
		ml_buf_addf(b, "\tserver %s ", s->name);
		add_hostport(b, s->address, s->port);
		if (s->check) {
			char chk[CHECK_NAME_MAX];

			ml_haproxy_check_backend(chk, c, s->check);
			ml_buf_addf(b, " track %s/%s", chk, s->name);
		} else {
			ml_buf_addstr(b, " check");
		}
		if (states) {
			/* drain has no keyword; weight 0 until runtime sets it
			 */
			ml_buf_addf(b, " weight %d",
				    s->state == ML_LB_DRAIN ? 0 : s->weight);
			if (s->state == ML_LB_MAINT)
				ml_buf_addstr(b, " disabled");
		}
		ml_buf_addch(b, '\n');
	}
	render_checks(b, c);
	ml_lb_tls_render_redirect(b, c);
	ml_lb_tls_render_userlist(b, c);
	if (c->stats_port) {
		ml_buf_addstr(b, "\nfrontend mlctl_stats\n\tbind ");
		add_hostport(b, c->metrics_bind, c->stats_port);
		ml_buf_addch(b, '\n');
		ml_lb_tls_render_stats_auth(b, c);
		ml_buf_addstr(b, "\thttp-request use-service "
				 "prometheus-exporter if { path /metrics }\n"
				 "\thttp-request return status 404\n");
	}
	/* every add above is checked once here: a full buffer stays full */
	return ml_buf_addstr(b, "");
}

int ml_haproxy_render(struct ml_buf *out, const struct ml_lb_config *c,
		      const struct ml_haproxy *h)
{
	struct ml_buf body = ML_BUF_INIT(CONFIG_MAX);
	char hex[ML_SHA256_HEX];
	int rc;

	rc = render_body(&body, c, h, false);
	if (rc < 0 || body.len + 1 >= body.max)
		goto too_big;
	ml_sha256_hex(body.data, body.len, hex);
	ml_buf_reset(&body);
	rc = render_body(&body, c, h, true);
	if (rc < 0 || body.len + 1 >= body.max)
		goto too_big;
	ml_buf_addf(out,
		    "# HAProxy for app '%s', rendered by mlctl-agent; do not "
		    "edit\n",
		    c->app);
	ml_buf_addf(out, STRUCTURE_TAG "%s\n", hex);
	rc = ml_buf_add(out, body.data, body.len);
	goto out;
too_big:
	rc = ml_err_set(ML_ETOOBIG,
			"the HAProxy configuration for app '%s' "
			"is larger than %zu bytes",
			c->app, CONFIG_MAX);
out:
	if (body.data) /* it may hold the metrics password */
		explicit_bzero(body.data, body.len);
	ml_buf_release(&body);
	return rc;
}

bool ml_haproxy_structure(char hex[65], const char *text)
{
	const char *nl = strchr(text, '\n'), *p;
	size_t i;

	if (!nl)
		return false;
	p = nl + 1;
	if (strncmp(p, STRUCTURE_TAG, strlen(STRUCTURE_TAG)))
		return false;
	p += strlen(STRUCTURE_TAG);
	for (i = 0; i < 64; i++)
		if (!p[i] || !strchr("0123456789abcdef", p[i]))
			return false;
	if (p[64] != '\n')
		return false;
	memcpy(hex, p, 64);
	hex[64] = '\0';
	return true;
}

/* ---- processes ---------------------------------------------------------- */

/*
 * fork and exec argv with stdin on /dev/null and stdout and stderr on
 * out_fd; with detach, in a new session (the daemon must outlive us). The
 * child only makes async-signal-safe calls: tests run this with threads.
 */
static int spawn(pid_t *out, const char *bin, char *const argv[], int out_fd,
		 bool detach)
{
	int devnull, fd;
	sigset_t none;
	pid_t pid;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open /dev/null");
	pid = fork();
	if (pid < 0) {
		close(devnull);
		return ml_err_errno(ML_EFAIL, errno, "cannot fork");
	}
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (detach)
			setsid();
		if (dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 ||
		    dup2(out_fd, 2) < 0)
			_exit(127);
		if (close_range(3, ~0U, 0) < 0)
			for (fd = 3; fd < 4096; fd++)
				close(fd);
		execvp(bin, argv);
		_exit(127);
	}
	close(devnull);
	*out = pid;
	return 0;
}

/* waitpid with a deadline; on timeout the child is killed and reaped. */
static int wait_child(int *status, pid_t pid, long timeout_ms, const char *what)
{
	int64_t deadline = mono_ms() + timeout_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return ml_err_errno(ML_EFAIL, errno,
					    "cannot wait for %s", what);
		if (mono_ms() >= deadline)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return ml_err_set(ML_EFAIL, "%s did not finish within %ld ms", what,
			  timeout_ms);
}

/* HAProxy's [ALERT] lines of out (all of it when it has none), escaped,
 * joined with "; " into a new string. */
static char *alerts(const char *out)
{
	struct ml_buf b = ML_BUF_INIT(4 * SHOWN_MAX + 64);
	const char *p = out, *nl, *msg;
	size_t n;

	while (*p && b.len < SHOWN_MAX) {
		nl = strchrnul(p, '\n');
		n = (size_t)(nl - p);
		if (memmem(p, n, "[ALERT]", 7)) {
			/* "[ALERT]    (123) : text": keep the text */
			msg = memmem(p, n, ") : ", 4);
			if (msg) {
				n -= (size_t)(msg + 4 - p);
				p = msg + 4;
			}
			if (b.len)
				ml_buf_addstr(&b, "; ");
			ml_escape(&b, p, n);
		}
		p = *nl ? nl + 1 : nl;
	}
	if (!b.len) {
		n = strnlen(out, SHOWN_MAX);
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			n--;
		ml_escape(&b, out, n);
	}
	return ml_buf_detach(&b, NULL);
}

int ml_haproxy_check(const struct ml_haproxy *h, const char *path)
{
	struct ml_buf out = ML_BUF_INIT(CHECK_OUT_MAX);
	char *argv[] = {h->bin, (char *)"-c", (char *)"-f", (char *)path, NULL};
	int64_t deadline = mono_ms() + h->start_ms;
	int p[2], status = 0, rc;
	struct pollfd pfd;
	char chunk[4096], *why;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create a pipe");
	rc = spawn(&pid, h->bin, argv, p[1], false);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		long left = (long)(deadline - mono_ms());

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		/* keep the beginning: the alerts come first */
		if (out.len + (size_t)n < out.max)
			ml_buf_add(&out, chunk, (size_t)n);
	}
	close(p[0]);
	rc = wait_child(&status, pid,
			deadline - mono_ms() > 0 ? (long)(deadline - mono_ms())
						 : 1,
			"haproxy -c");
	if (rc < 0)
		goto out;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127 &&
	    !strstr(ml_buf_str(&out), "HAProxy")) {
		rc = ml_err_set(ML_EFAIL,
				"cannot run '%s': is HAProxy installed? "
				"(apt-get install haproxy, or set "
				"MLCTL_HAPROXY_BIN)",
				h->bin);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		why = alerts(ml_buf_str(&out));
		rc = ml_err_set(ML_EINVALID,
				"haproxy rejects the configuration: "
				"%s",
				why);
		free(why);
		goto out;
	}
	rc = 0;
out:
	ml_buf_release(&out);
	return rc;
}

/* Is /proc/pid an haproxy whose command line has "-f cfg"? */
static bool is_our_haproxy(pid_t pid, const char *cfg)
{
	struct ml_buf cmd = ML_BUF_INIT(64 << 10);
	char path[64], exe[512];
	const char *p, *end, *base;
	bool haproxy = false, ours = false;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if (ml_buf_read_file(&cmd, path) < 0 || !cmd.len)
		goto out;
	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		base = strrchr(exe, '/');
		base = base ? base + 1 : exe;
		/* "haproxy (deleted)" after a package upgrade */
		haproxy = !strncmp(base, "haproxy", 7);
	} else {
		/* no ptrace access to exe: trust argv[0] */
		base = strrchr(cmd.data, '/');
		base = base ? base + 1 : cmd.data;
		haproxy = !strcmp(base, "haproxy");
	}
	end = cmd.data + cmd.len;
	for (p = cmd.data; p < end; p += strlen(p) + 1)
		if (!strcmp(p, "-f") && p + 3 < end && !strcmp(p + 3, cfg))
			ours = true;
out:
	ml_buf_release(&cmd);
	return haproxy && ours;
}

int ml_haproxy_master_pid(pid_t *out, const struct ml_haproxy *h)
{
	struct ml_buf b = ML_BUF_INIT(64);
	long pid;
	char *end;
	int rc;

	*out = 0;
	rc = ml_buf_read_file(&b, h->pidfile);
	if (rc == ML_ENOTFOUND || rc == ML_ETOOBIG) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	errno = 0;
	pid = strtol(b.data, &end, 10);
	if (errno || end == b.data || (*end && *end != '\n') || pid <= 1 ||
	    pid > INT32_MAX)
		goto out;
	if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
		goto out;
	if (is_our_haproxy((pid_t)pid, h->cfg))
		*out = (pid_t)pid;
out:
	ml_buf_release(&b);
	return rc;
}

int ml_haproxy_worker_pid(pid_t *out, const struct ml_haproxy *h)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	const char *p;
	long pid;
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, "show info", h->timeout_ms);
	if (rc < 0)
		goto out;
	p = strstr(b.data, "\nPid: ");
	if (!p) {
		rc = ml_err_set(ML_EFAIL,
				"haproxy's 'show info' on '%s' has "
				"no Pid line",
				h->admin_sock);
		goto out;
	}
	pid = strtol(p + 6, NULL, 10);
	if (pid <= 0) {
		rc = ml_err_set(ML_EFAIL, "haproxy's 'show info' has a bad "
					  "Pid line");
		goto out;
	}
	*out = (pid_t)pid;
out:
	ml_buf_release(&b);
	return rc;
}

int ml_haproxy_start(pid_t *master, const struct ml_haproxy *h)
{
	struct ml_buf log = ML_BUF_INIT(CHECK_OUT_MAX);
	char *sock = ml_xasprintf("%s,mode,600", h->master_sock);
	char *argv[] = {h->bin, (char *)"-W", (char *)"-D", (char *)"-f",
			h->cfg, (char *)"-S", sock,	    NULL};
	int64_t deadline = mono_ms() + h->start_ms;
	int fd, status = 0, rc;
	pid_t pid, worker;
	char *why;

	*master = 0;
	fd = open(h->log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
				  h->log_file);
		goto out;
	}
	rc = spawn(&pid, h->bin, argv, fd, true);
	close(fd);
	if (rc < 0)
		goto out;
	/* with -D the process we ran exits once the master is in the
	 * background, after binding every listener */
	rc = wait_child(&status, pid, h->start_ms, "haproxy");
	if (rc < 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ml_buf_read_file(&log, h->log_file);
		why = alerts(ml_buf_str(&log));
		rc = ml_err_set(ML_EFAIL,
				"haproxy for app '%s' did not start "
				"(exit status %d): %s",
				h->app,
				WIFEXITED(status) ? WEXITSTATUS(status) : -1,
				why);
		free(why);
		goto out;
	}
	for (;;) {
		rc = ml_haproxy_master_pid(master, h);
		if (rc < 0)
			goto out;
		if (*master && ml_haproxy_worker_pid(&worker, h) == 0)
			break;
		if (mono_ms() >= deadline) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy for app '%s' started but its "
					"worker did not answer on '%s' within "
					"%ld ms; see %s",
					h->app, h->admin_sock, h->start_ms,
					h->log_file);
			goto out;
		}
		sleep_ms(POLL_STEP_MS);
	}
	ml_err_clear();
	rc = 0;
out:
	ml_buf_release(&log);
	free(sock);
	return rc;
}

int ml_haproxy_reload(const struct ml_haproxy *h, pid_t master,
		      pid_t old_worker)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	int64_t deadline = mono_ms() + h->start_ms;
	pid_t worker = 0;
	int rc;

	/* the master re-executes itself, hands the listening sockets to the
	 * new worker (expose-fd listeners) and soft-stops the old one */
	if (ml_haproxy_cmd(&b, h->master_sock, "reload", h->timeout_ms) < 0 &&
	    kill(master, SIGUSR2) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno,
				  "cannot reload haproxy (master %ld)",
				  (long)master);
		goto out;
	}
	for (;;) {
		if (ml_haproxy_worker_pid(&worker, h) == 0 &&
		    worker != old_worker)
			break;
		if (kill(master, 0) < 0 && errno == ESRCH) {
			rc = ml_err_set(ML_EFAIL,
					"the haproxy master (%ld) of "
					"app '%s' exited while "
					"reloading",
					(long)master, h->app);
			goto out;
		}
		if (mono_ms() >= deadline) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy for app '%s' did not start a "
					"new worker within %ld ms of the "
					"reload; the old one still serves the "
					"previous configuration (is a port in "
					"use?)",
					h->app, h->start_ms);
			goto out;
		}
		sleep_ms(POLL_STEP_MS);
	}
	ml_err_clear();
	rc = 0;
out:
	ml_buf_release(&b);
	return rc;
}

/* ---- runtime API -------------------------------------------------------- */

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd pfd = {fd, ev, 0};
	long left;
	int r;

	for (;;) {
		left = (long)(deadline - mono_ms());
		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

int ml_haproxy_cmd(struct ml_buf *out, const char *path, const char *cmd,
		   long timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct sockaddr_un sun;
	size_t off = 0, len, start = out->len;
	char *line = NULL, chunk[16384];
	ssize_t n;
	int fd = -1, r, rc;

	if (strchr(cmd, '\n'))
		BUG("runtime API command with a newline");
	if (strlen(path) >= sizeof(sun.sun_path))
		return ml_err_set(ML_ETOOBIG, "socket path '%s' is too long",
				  path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EAGAIN && errno != EINPROGRESS) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot connect to haproxy at '%s'",
					  path);
			goto out;
		}
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy at '%s' did not "
					"accept a connection in %ld "
					"ms",
					path, timeout_ms);
			goto out;
		}
	}
	line = ml_xasprintf("%s\n", cmd);
	len = strlen(line);
	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLOUT, deadline) > 0)
				continue;
			errno = ETIMEDOUT;
		}
		if (n < 0) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot send to haproxy at '%s'",
					  path);
			goto out;
		}
		off += (size_t)n;
	}
	/* the master CLI answers only once it sees the end of input */
	shutdown(fd, SHUT_WR);
	for (;;) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			r = wait_fd(fd, POLLIN, deadline);
			if (r > 0)
				continue;
			rc = ml_err_set(ML_EFAIL,
					"haproxy at '%s' did not answer '%s' "
					"within %ld ms",
					path, cmd, timeout_ms);
			goto out;
		}
		if (n < 0) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot read from haproxy at '%s'",
					  path);
			goto out;
		}
		if (n == 0)
			break;
		if (out->len - start + (size_t)n > ML_HAPROXY_REPLY_MAX) {
			rc = ml_err_set(ML_ETOOBIG,
					"haproxy's answer to '%s' "
					"is larger than %zu bytes",
					cmd, ML_HAPROXY_REPLY_MAX);
			goto out;
		}
		rc = ml_buf_add(out, chunk, (size_t)n);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0 && out->len > start) {
		out->len = start;
		out->data[start] = '\0';
	}
	free(line);
	close(fd);
	return rc;
}

int ml_haproxy_admin(const struct ml_haproxy *h, const char *fmt, ...)
{
	struct ml_buf cmd = ML_BUF_INIT(1024), ans = ML_BUF_INIT(64 << 10);
	const char *a;
	char *why, *line;
	va_list ap;
	size_t n;
	int rc;

	va_start(ap, fmt);
	rc = ml_buf_vaddf(&cmd, fmt, ap);
	va_end(ap);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_cmd(&ans, h->admin_sock, cmd.data, h->timeout_ms);
	if (rc < 0)
		goto out;
	a = ml_buf_str(&ans);
	while (*a == '\n' || *a == ' ')
		a++;
	n = strlen(a);
	while (n && (a[n - 1] == '\n' || a[n - 1] == ' '))
		n--;
	if (!n)
		goto out;
	line = ml_xstrndup(a, n);
	why = shown(line);
	free(line);
	if (!strncmp(a, "No such server", 14) ||
	    !strncmp(a, "No such backend", 15))
		rc = ml_err_set(ML_ENOTFOUND, "haproxy: %s: %s", cmd.data, why);
	else
		rc = ml_err_set(ML_EFAIL, "haproxy: %s: %s", cmd.data, why);
	free(why);
out:
	ml_buf_release(&cmd);
	ml_buf_release(&ans);
	return rc;
}

int ml_haproxy_set_server(const struct ml_haproxy *h, const char *server,
			  enum ml_lb_state state, int weight)
{
	int rc;

	if (!ml_lb_valid_name(server))
		BUG("unchecked server name");
	if (weight >= 0) {
		rc = ml_haproxy_admin(h, "set weight %s/%s %d", h->app, server,
				      weight);
		if (rc < 0)
			return rc;
	}
	return ml_haproxy_admin(h, "set server %s/%s state %s", h->app, server,
				ml_lb_state_name(state));
}

int ml_haproxy_save_state(const struct ml_haproxy *h,
			  const struct ml_lb_config *next)
{
	struct ml_buf carried = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	struct ml_buf b = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	/* every backend: the check-only ones carry their servers' health */
	char *cmd = ml_xstrdup("show servers state");
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, cmd, h->timeout_ms);
	if (rc < 0)
		goto out;
	if (strncmp(ml_buf_str(&b), "1\n", 2)) {
		rc = ml_err_set(ML_EFAIL,
				"haproxy's server state for app '%s' "
				"is not in format 1",
				h->app);
		goto out;
	}
	rc = ml_haproxy_carry_checks(&carried, ml_buf_str(&b), next);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_write_file(h->state_tmp, carried.data, carried.len);
	if (rc < 0)
		goto out;
	if (rename(h->state_tmp, h->state_file) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'",
				  h->state_tmp);
		goto out;
	}
	rc = 0;
out:
	free(cmd);
	ml_buf_release(&carried);
	ml_buf_release(&b);
	return rc;
}

/* ---- tables ------------------------------------------------------------- */

/*
 * Split one line at sep into fields (new JSON strings appended to arr).
 * With sep ',', a field may be "quoted" with "" for a quote (HAProxy's
 * csv_enc); with ' ', fields are separated by single spaces.
 */
static void split_line(json_t *arr, const char *p, size_t n, char sep)
{
	struct ml_buf f = ML_BUF_INIT(n + 1);
	size_t i = 0;

	for (;;) {
		ml_buf_reset(&f);
		if (sep == ',' && i < n && p[i] == '"') {
			for (i++; i < n; i++) {
				if (p[i] == '"' && i + 1 < n && p[i + 1] == '"')
					ml_buf_addch(&f, p[i++]);
				else if (p[i] == '"')
					break;
				else
					ml_buf_addch(&f, p[i]);
			}
			i++; /* the closing quote */
			while (i < n && p[i] != sep)
				i++;
		} else {
			while (i < n && p[i] != sep)
				ml_buf_addch(&f, p[i++]);
		}
		json_array_append_new(arr, ml_proto_string(ml_buf_str(&f)));
		if (i >= n)
			break;
		i++; /* the separator */
	}
	ml_buf_release(&f);
}

int ml_haproxy_parse_table(json_t **out, const char *text, char sep)
{
	json_t *names = json_array(), *rows = json_array(), *vals, *row;
	const char *p = text, *nl;
	bool have_header = false;
	size_t n, i;
	int rc;

	while (*p) {
		nl = strchrnul(p, '\n');
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (!have_header) {
			if (n >= 2 && p[0] == '#' && p[1] == ' ') {
				split_line(names, p + 2, n - 2, sep);
				have_header = true;
			}
		} else if (n && p[0] != '#') {
			vals = json_array();
			row = json_object();
			split_line(vals, p, n, sep);
			for (i = 0; i < json_array_size(vals) &&
				    i < json_array_size(names);
			     i++) {
				const char *k = json_string_value(
					json_array_get(names, i));

				if (*k && strcmp(k, "-"))
					json_object_set(
						row, k,
						json_array_get(vals, i));
			}
			json_array_append_new(rows, row);
			json_decref(vals);
		}
		p = *nl ? nl + 1 : nl;
	}
	if (!have_header) {
		rc = ml_err_set(ML_EPROTO,
				"haproxy's answer has no '# ' header line");
		json_decref(rows);
		goto out;
	}
	*out = rows;
	rc = 0;
out:
	json_decref(names);
	return rc;
}

static int show_table(json_t **out, const struct ml_haproxy *h, const char *cmd,
		      char sep)
{
	struct ml_buf b = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, cmd, h->timeout_ms);
	if (rc == 0)
		rc = ml_haproxy_parse_table(out, ml_buf_str(&b), sep);
	ml_buf_release(&b);
	return rc;
}

int ml_haproxy_show_stat(json_t **out, const struct ml_haproxy *h)
{
	return show_table(out, h, "show stat", ',');
}

int ml_haproxy_show_servers(json_t **out, const struct ml_haproxy *h)
{
	char *cmd = ml_xasprintf("show servers state %s", h->app);
	int rc;

	rc = show_table(out, h, cmd, ' ');
	free(cmd);
	return rc;
}

/* srv_admin_state bits (HAProxy's enum srv_admin) */
#define ADMF_FMAINT 0x01
#define ADMF_IMAINT 0x02
#define ADMF_FDRAIN 0x08
#define ADMF_IDRAIN 0x10
#define ADMF_RMAINT 0x20

const char *ml_haproxy_admin_word(long bits)
{
	/* CMAINT alone (0x04) only records that the config said disabled */
	if (bits & (ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT))
		return "maint";
	if (bits & (ADMF_FDRAIN | ADMF_IDRAIN))
		return "drain";
	return "ready";
}

const char *ml_haproxy_op_word(long op)
{
	static const char *const words[] = {"down", "starting", "up",
					    "stopping"};

	return op >= 0 && (size_t)op < ML_ARRAY_SIZE(words) ? words[op]
							    : "unknown";
}

long long ml_haproxy_field_int(json_t *row, const char *key, long long def)
{
	const char *s = json_string_value(json_object_get(row, key));
	long long v;
	char *end;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end ? def : v;
}
