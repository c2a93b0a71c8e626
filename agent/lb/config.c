/*
 * lb_apply's args, read and validated into a struct ml_lb_config (see
 * lb.h): names, addresses, paths, numbers and health expectations, with
 * their defaults, and the helpers for the messages that quote input.
 *
 * Invariants: nothing leaves here that was not validated as a name
 * ([A-Za-z0-9._-]), an address (IP literal or DNS name), a path of
 * [A-Za-z0-9._/~?&=%:+,;@-] or a number in range, so no input that
 * reaches the rendered configuration can hold a space, a newline, a '#',
 * a quote or a backslash. Every error is ML_EPROTO (ML_ETOOBIG for too
 * many servers) naming the field, the value escaped and cut at 4 KiB.
 *
 * Sizes: at most ML_LB_MAX_SERVERS servers; expect lines at most 4 KiB.
 */
#include "common/ml.h"
#include "common/balance.h"
#include "common/log.h"
#include "agent/lb/internal.h"
#include "agent/lb/tls.h"
#include "agent/probe.h"

#include <arpa/inet.h>
#include <limits.h>

static bool is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* s (any bytes) escaped and shortened into a new string for a message. */
char *ml_lb_shown(const char *s)
{
	struct ml_buf b = ML_BUF_INIT(4 * ML_LB_SHOWN_MAX + 8);
	size_t n = strnlen(s, ML_LB_SHOWN_MAX);

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
		esc = ml_lb_shown(s);
		rc = ml_err_set(ML_EPROTO, "lb_apply: %s'%s' is '%s', not %s",
				where, key, esc, what);
		free(esc);
		return rc;
	}
	*out = ml_xstrdup(s);
	return 0;
}

static bool valid_state(const char *s)
{
	enum ml_lb_state st;

	return ml_lb_state_parse(&st, s) == 0;
}

#define ML_LB_NAME_WHAT                                                              \
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
		     ML_LB_NAME_WHAT);
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

bool ml_lb_check_same(const struct ml_lb_check *a,
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
		     ML_LB_NAME_WHAT);
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
		     ml_balance_known, "one of roundrobin, leastconn, random");
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
			if (ml_lb_check_same(k, &def)) {
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

