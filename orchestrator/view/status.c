/*
 * How `mlctl status` says what it found: each container's JSON object
 * completed with what a person needs (the balancer's view in words, the
 * uptime), and the table made from those objects by columns[], one cell
 * function per column, so that a column is added with one function and
 * one line. The words are documented in the README ("Reading status").
 * No I/O but the FILE given; everything comes from the agents' replies,
 * and the table escapes what it prints.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/view/status.h"

#include <time.h>

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


/* A host drifted when none of its running containers is of revision or
 * spec. */
bool ml_status_drifted(json_t *cont, int64_t revision, const char *spec)
{
	json_t *c;
	size_t k;

	if (!revision || !json_array_size(cont))
		return false;
	json_array_foreach(cont, k, c) {
		const char *st = json_string_value(json_object_get(c, "state"));

		const char *sp = json_string_value(json_object_get(
			json_object_get(c, "labels"), "mlctl.spec"));

		if (st && !strcmp(st, "running") &&
		    (json_integer_value(json_object_get(c, "revision")) ==
			     revision ||
		     (spec && sp && !strcmp(sp, spec))))
			return false;
	}
	return true;
}

const char *ml_status_roles(const struct ml_target *t)
{
	return t->is_app && t->is_lb ? "app,lb" : t->is_lb ? "lb" : "app";
}

const char *ml_status_hello_str(const json_t *hello, const char *a,
				const char *b)
{
	json_t *v = json_object_get(hello, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

/* HAProxy's last check result code ("L7OK", "L4CON", "INI", ...) without
 * the "* " it puts before it while the next check runs; NULL if none. */
static const char *check_code(json_t *v)
{
	const char *s = json_string_value(json_object_get(v, "check_status"));

	if (s && !strncmp(s, "* ", 2))
		s += 2;
	return s && *s ? s : NULL;
}

/*
 * The balancer's view of one server, in words. HAProxy's status says "UP",
 * "DOWN", "MAINT", "DRAIN", "NOLB", "no check", and while a server is
 * between states "UP 1/3" (up, and 1 more failed check of the 3 that take
 * it down would do it: 2 seen) or "DOWN 1/2" (down, 1 of the 2 passed
 * checks that bring it up seen). A server HAProxy has just added starts at
 * the bottom of its up range ("UP 1/3") before its first check ("INI").
 * state is one of serving, pending (up, first check not run yet), failing
 * (up, *done of the *need failed checks that take it down seen), starting
 * (down, *done of the *need passed checks that bring it up seen), down,
 * draining, maintenance.
 */
static const char *lb_state(json_t *v, int *done, int *need)
{
	const char *op = json_string_value(json_object_get(v, "op_state"));
	const char *admin =
		json_string_value(json_object_get(v, "admin_state"));
	const char *code = check_code(v);
	int left;

	*done = *need = 0;
	if (admin && !strcmp(admin, "maint"))
		return "maintenance";
	if (admin && !strcmp(admin, "drain"))
		return "draining";
	if (!op)
		return "unknown";
	if (!strncmp(op, "MAINT", 5))
		return "maintenance";
	if (!strncmp(op, "DRAIN", 5) || !strncmp(op, "NOLB", 4))
		return "draining";
	if (!strncmp(op, "UP ", 3) &&
	    sscanf(op + 3, "%d/%d", &left, need) == 2) {
		if (code && !strcmp(code, "INI")) {
			*need = 0;
			return "pending";
		}
		if (code && code[0] == 'L' && strstr(code, "OK")) {
			*need = 0; /* passed: fully up again */
			return "serving";
		}
		*done = *need - left;
		if (*done < 1)
			*done = 1;
		return "failing";
	}
	if (!strncmp(op, "DOWN ", 5) &&
	    sscanf(op + 5, "%d/%d", done, need) == 2)
		return "starting";
	if (!strncmp(op, "DOWN", 4))
		return "down";
	return "serving"; /* "UP", "no check", "OPEN" */
}


void ml_status_annotate(json_t *c, json_t *v, int64_t now)
{
	const char *state = json_string_value(json_object_get(c, "state"));
	int64_t started = parse_docker_time(json_string_value(
		json_object_get(c, "started_at")));
	int done, need;
	json_t *lb;

	if (started && state && !strcmp(state, "running") && now >= started)
		json_object_set_new(c, "uptime_s", json_integer(now - started));
	if (!v)
		return;
	lb = json_pack("{s:O?,s:O?,s:O?,s:s,s:O?,s:O?,s:O?}", "op_state",
		       json_object_get(v, "op_state"), "admin_state",
		       json_object_get(v, "admin_state"), "cur_sessions",
		       json_object_get(v, "cur_sessions"), "state",
		       lb_state(v, &done, &need), "since_s",
		       json_object_get(v, "last_change_s"), "check_status",
		       json_object_get(v, "check_status"), "check_desc",
		       json_object_get(v, "check_desc"));
	if (need > 0) {
		json_object_set_new(lb, "checks_seen", json_integer(done));
		json_object_set_new(lb, "checks_needed", json_integer(need));
	}
	json_object_set_new(c, "lb", lb);
}

/* ---- the table -------------------------------------------------------- */

/* One row: a container of a host, or a host without containers (c NULL). */
struct row {
	const struct ml_host_session *h;
	json_t *cont; /* the host's containers */
	json_t *c;
	int64_t newest;
	const char *newest_spec;
};

#define CELL_MAX 160

/* Writes the text of one cell into buf (CELL_MAX bytes) and returns how
 * it reads; leaving buf "" prints "-". */
typedef enum ml_style (*cell_fn)(char *buf, const struct row *r);

static const char *cstr(const struct row *r, const char *key)
{
	return json_string_value(json_object_get(r->c, key));
}

static enum ml_style cell_host(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s", r->h->target->name);
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_address(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s", r->h->target->address);
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_roles(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s", ml_status_roles(r->h->target));
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_ssh(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s", r->h->rc == 0 ? "up" : "unreachable");
	return r->h->rc == 0 ? ML_STYLE_PLAIN : ML_STYLE_BAD;
}

static enum ml_style cell_agent(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s",
		 ml_status_hello_str(r->h->hello, "agent_version", NULL) ?: "");
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_docker(char *buf, const struct row *r)
{
	const char *v = ml_status_hello_str(r->h->hello, "docker", "version");

	if (!v && r->h->target->is_app && r->h->hello &&
	    json_object_get(r->h->hello, "docker")) {
		snprintf(buf, CELL_MAX, "down");
		return ML_STYLE_BAD;
	}
	snprintf(buf, CELL_MAX, "%s", v ?: "");
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_container(char *buf, const struct row *r)
{
	snprintf(buf, CELL_MAX, "%s", cstr(r, "name") ?: "");
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_rev(char *buf, const struct row *r)
{
	json_t *jrev = json_object_get(r->c, "revision");
	bool drift = ml_status_drifted(r->cont, r->newest, r->newest_spec);

	if (!json_is_integer(jrev))
		return ML_STYLE_PLAIN;
	snprintf(buf, CELL_MAX, "%" JSON_INTEGER_FORMAT "%s",
		 json_integer_value(jrev), drift ? " (drifted)" : "");
	return drift ? ML_STYLE_WARN : ML_STYLE_PLAIN;
}

static enum ml_style cell_state(char *buf, const struct row *r)
{
	const char *st = cstr(r, "state");

	snprintf(buf, CELL_MAX, "%s", st ?: "");
	if (!st)
		return ML_STYLE_PLAIN;
	if (!strcmp(st, "running"))
		return ML_STYLE_GOOD;
	if (!strcmp(st, "paused")) {
		/* rollout.standby: the previous revision, ready to resume */
		snprintf(buf, CELL_MAX, "paused (standby)");
		return ML_STYLE_PLAIN;
	}
	return !strcmp(st, "exited") || !strcmp(st, "dead") ? ML_STYLE_BAD
							     : ML_STYLE_WARN;
}

/* "GET http://127.0.0.1:18080/healthz: HTTP 503" -> "HTTP 503" */
static const char *probe_reason(const char *err)
{
	const char *p = err ? strstr(err, ": ") : NULL;

	if (err && !strncmp(err, "GET ", 4) && p)
		return p + 2;
	return err ? err : "no answer";
}

static enum ml_style cell_health(char *buf, const struct row *r)
{
	json_t *p = json_object_get(r->c, "probe");
	json_t *ok = json_object_get(p, "healthy");
	const char *docker = cstr(r, "health");
	char side[48] = "";
	enum ml_style st;

	if (!p)
		return ML_STYLE_PLAIN; /* not running: nothing to probe */
	/* Docker's word only when the image has a HEALTHCHECK */
	if (docker && strcmp(docker, "none"))
		snprintf(side, sizeof(side), " (docker: %s)", docker);
	if (json_is_true(ok)) {
		snprintf(buf, CELL_MAX, "healthy%s", side);
		st = !*side || !strcmp(docker, "healthy") ? ML_STYLE_GOOD
							  : ML_STYLE_WARN;
	} else if (json_is_false(ok)) {
		snprintf(buf, CELL_MAX, "failing: %s%s",
			 probe_reason(json_string_value(
				 json_object_get(p, "error"))),
			 side);
		st = ML_STYLE_BAD;
	} else {
		/* the agent could not probe (too old): Docker's word, if any */
		snprintf(buf, CELL_MAX, "%s", *side ? docker : "unknown");
		st = ML_STYLE_WARN;
	}
	return st;
}

static enum ml_style cell_uptime(char *buf, const struct row *r)
{
	json_t *u = json_object_get(r->c, "uptime_s");
	char age[ML_FMT_MAX];

	if (json_is_integer(u))
		snprintf(buf, CELL_MAX, "%s",
			 ml_fmt_age(age, json_integer_value(u)));
	return ML_STYLE_PLAIN;
}

static enum ml_style cell_restarts(char *buf, const struct row *r)
{
	json_t *n = json_object_get(r->c, "restarts");

	if (!json_is_integer(n))
		return ML_STYLE_PLAIN;
	snprintf(buf, CELL_MAX, "%" JSON_INTEGER_FORMAT,
		 json_integer_value(n));
	return json_integer_value(n) > 0 ? ML_STYLE_WARN : ML_STYLE_PLAIN;
}

static enum ml_style cell_lb(char *buf, const struct row *r)
{
	json_t *v = json_object_get(r->c, "lb");
	const char *state = json_string_value(json_object_get(v, "state"));
	const char *why = json_string_value(json_object_get(v, "check_desc"));
	json_int_t sess = json_integer_value(json_object_get(v, "cur_sessions"));
	json_t *since = json_object_get(v, "since_s");
	char age[ML_FMT_MAX];
	json_int_t done = json_integer_value(json_object_get(v, "checks_seen"));
	json_int_t need =
		json_integer_value(json_object_get(v, "checks_needed"));

	if (!state)
		return ML_STYLE_PLAIN;
	if (!why || !*why)
		why = json_string_value(json_object_get(v, "check_status"));
	if (!strcmp(state, "serving")) {
		snprintf(buf, CELL_MAX, "serving, %" JSON_INTEGER_FORMAT
			 " session%s", sess, sess == 1 ? "" : "s");
		return ML_STYLE_GOOD;
	}
	if (!strcmp(state, "pending")) {
		snprintf(buf, CELL_MAX, "serving, first check pending");
		return ML_STYLE_PLAIN;
	}
	if (!strcmp(state, "failing")) {
		snprintf(buf, CELL_MAX,
			 "serving, checks failing (%" JSON_INTEGER_FORMAT
			 " of %" JSON_INTEGER_FORMAT " before down)%s%s",
			 done, need, why ? ": " : "", why ? why : "");
		return ML_STYLE_WARN;
	}
	if (!strcmp(state, "starting")) {
		snprintf(buf, CELL_MAX,
			 "down, checks passing (%" JSON_INTEGER_FORMAT
			 " of %" JSON_INTEGER_FORMAT " before up)",
			 done, need);
		return ML_STYLE_WARN;
	}
	if (!strcmp(state, "down")) {
		snprintf(buf, CELL_MAX, "down%s%s, checks failing%s%s",
			 json_is_integer(since) ? " since " : "",
			 json_is_integer(since)
				 ? ml_fmt_age(age, json_integer_value(since))
				 : "",
			 why ? ": " : "", why ? why : "");
		return ML_STYLE_BAD;
	}
	if (!strcmp(state, "draining")) {
		snprintf(buf, CELL_MAX, "draining, %" JSON_INTEGER_FORMAT
			 " session%s", sess, sess == 1 ? "" : "s");
		return ML_STYLE_WARN;
	}
	snprintf(buf, CELL_MAX, "%s", state);
	return ML_STYLE_DIM;
}

/*
 * The columns of the table, in order. per_host columns describe the host
 * and are blank on its second and later rows; the others describe one
 * container and are "-" on a host without containers.
 */
static const struct column {
	const char *header;
	bool per_host;
	cell_fn cell;
} columns[] = {
	{ "HOST", true, cell_host },
	{ "ADDRESS", true, cell_address },
	{ "ROLES", true, cell_roles },
	{ "SSH", true, cell_ssh },
	{ "AGENT", true, cell_agent },
	{ "DOCKER", true, cell_docker },
	{ "CONTAINER", false, cell_container },
	{ "REV", false, cell_rev },
	{ "STATE", false, cell_state },
	{ "HEALTH", false, cell_health },
	{ "UPTIME", false, cell_uptime },
	{ "RESTARTS", false, cell_restarts },
	{ "LB", false, cell_lb },
};

#define NCOLS ML_ARRAY_SIZE(columns)

static void add_row(struct ml_table *t, const struct row *r, bool first)
{
	char text[NCOLS][CELL_MAX];
	const char *cells[NCOLS];
	enum ml_style styles[NCOLS];
	size_t i;

	for (i = 0; i < NCOLS; i++) {
		text[i][0] = '\0';
		styles[i] = ML_STYLE_PLAIN;
		if (columns[i].per_host && !first) {
			cells[i] = "";
			continue;
		}
		if (!columns[i].per_host && !r->c) {
			cells[i] = NULL;
			continue;
		}
		styles[i] = columns[i].cell(text[i], r);
		cells[i] = text[i][0] ? text[i] : NULL;
	}
	ml_table_add_styled(t, cells, styles);
}

static void add_rows(struct ml_table *t, const struct ml_host_session *h,
		     json_t *cont, int64_t newest, const char *newest_spec)
{
	struct row r = { h, cont, NULL, newest, newest_spec };
	size_t k;

	if (!json_array_size(cont)) {
		add_row(t, &r, true);
		return;
	}
	json_array_foreach(cont, k, r.c)
		add_row(t, &r, k == 0);
}

void ml_status_print_table(FILE *fp, const struct ml_host_session *hosts,
			   json_t *const *containers, size_t n, int64_t newest,
			   const char *newest_spec, bool colour)
{
	const char *hdr[NCOLS];
	struct ml_table *t;
	size_t i;

	for (i = 0; i < NCOLS; i++)
		hdr[i] = columns[i].header;
	t = ml_table_new(NCOLS, hdr);
	for (i = 0; i < n; i++)
		add_rows(t, &hosts[i], containers[i], newest, newest_spec);
	ml_table_print_styled(t, fp, colour);
	ml_table_free(t);
}
