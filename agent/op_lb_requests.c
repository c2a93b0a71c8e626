/*
 * lb_requests: what the clients of one app got over a recent window, per
 * HAProxy server, from HAProxy's per-request log.
 *
 *	args:   {"app", "window_ms" (60000, 1000..3600000)}
 *	result: {"running", "now_ms", "window_ms", "oldest_ms",
 *		 "servers": [{"name", "revision", "requests", "http_2xx",
 *			"http_3xx",
 *			"http_4xx", "http_5xx", "errors", "p50_ms", "p99_ms",
 *			"hist"}],
 *		 "frontend": {the same over every request, <NOSRV> too}}
 *
 * The frontend logs one line per request into the ring ML_HAPROXY_RING
 * (agent/lb/render.c renders it); `show events` on the admin socket returns
 * the ring's content, at most ML_HAPROXY_RING_SIZE bytes, oldest first.
 * Requests that ended in [now - window, now) count: HAProxy logs a request
 * when it ends, so counting by end time (accept time + Ta) sees every
 * request of the window, where counting by accept time would miss those
 * still in flight. "oldest_ms" is the end time of the oldest line in the
 * ring (null when empty), so a reader can
 * tell a quiet window from a ring that holds less than the window (a
 * recent reload starts a new, empty ring). An error is a 5xx or a request
 * that got no response at all (status -1). Latency is Ta, the total active
 * time of the request in ms; "hist" is the common/hist.h histogram of it,
 * which the controller adds up per revision; p50/p99 are read from it.
 * Servers are those seen in the window, in order of first appearance, once
 * per revision that served them: a slot serves one revision, then the
 * next (the map lb_revisions keeps says which, when; "revision" is null
 * where it does not know).
 * Memory: the ring's text once (4 MiB) plus one histogram per server.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"
#include "common/buf.h"
#include "common/hist.h"

#include <time.h>

#define OP "lb_requests"
#define NOSRV "<NOSRV>"

struct tally {
	char name[ML_LB_NAME_MAX + 1];
	int64_t revision; /* -1: unknown */
	uint64_t req, by_class[6], errors; /* by_class[k]: kxx, [0] other */
	struct ml_hist hist;
};

struct tallies {
	struct tally *v;
	size_t n, cap;
	struct tally all;
	int64_t oldest_ms;
	json_t *map; /* server -> revision over time, from lb_revisions */
};

static struct tally *tally_of(struct tallies *t, const char *name,
			      int64_t revision)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name) && t->v[i].revision == revision)
			return &t->v[i];
	if (t->n >= 4 * ML_LB_MAX_SERVERS)
		return NULL;
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->v = ml_xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
	snprintf(t->v[t->n].name, sizeof(t->v[t->n].name), "%s", name);
	t->v[t->n].revision = revision;
	return &t->v[t->n++];
}

static void count(struct tally *t, long status, long ta)
{
	t->req++;
	t->by_class[status >= 100 && status < 600 ? status / 100 : 0]++;
	if (status >= 500 || status <= 0)
		t->errors++;
	ml_hist_add(&t->hist, ta);
}

/*
 * One ring line "SECONDS.MSEC SERVER STATUS TA TR TERM". Lines that do
 * not parse (a line cut at maxlen, another format after an upgrade) are
 * skipped: the log is a measurement, not a protocol.
 */
static void add_line(struct tallies *t, char *line, int64_t from_ms,
		     int64_t to_ms)
{
	char *sp, *end, *name;
	long long sec, ms;
	long status, ta;
	int64_t at, acc; /* end and accept time, unix ms */
	struct tally *s;

	sec = strtoll(line, &end, 10);
	if (end == line || *end != '.')
		return;
	ms = strtoll(end + 1, &end, 10);
	if (*end != ' ' || ms < 0 || ms > 999)
		return;
	at = (int64_t)sec * 1000 + ms;
	name = end + 1;
	sp = strchr(name, ' ');
	if (!sp || sp == name || (size_t)(sp - name) > ML_LB_NAME_MAX)
		return;
	*sp = '\0';
	status = strtol(sp + 1, &end, 10);
	if (*end != ' ')
		return;
	ta = strtol(end + 1, &end, 10);
	if (*end != ' ' && *end != '\0')
		return;
	acc = at;
	if (ta > 0)
		at += ta; /* when it ended */
	if (!t->oldest_ms || at < t->oldest_ms)
		t->oldest_ms = at;
	if (at < from_ms || at >= to_ms)
		return;
	count(&t->all, status, ta);
	if (strcmp(name, NOSRV) &&
	    (s = tally_of(t, name, ml_agent_lb_revision(t->map, name, acc))))
		count(s, status, ta);
}

static json_t *tally_json(const struct tally *t, bool named)
{
	json_t *o = json_object();
	double p50 = ml_hist_quantile(&t->hist, 0.5);
	double p99 = ml_hist_quantile(&t->hist, 0.99);

	if (named) {
		json_object_set_new(o, "name", json_string(t->name));
		json_object_set_new(o, "revision",
				    t->revision < 0 ? json_null()
						    : json_integer(t->revision));
	}
	json_object_set_new(o, "requests", json_integer((json_int_t)t->req));
	json_object_set_new(o, "http_2xx",
			    json_integer((json_int_t)t->by_class[2]));
	json_object_set_new(o, "http_3xx",
			    json_integer((json_int_t)t->by_class[3]));
	json_object_set_new(o, "http_4xx",
			    json_integer((json_int_t)t->by_class[4]));
	json_object_set_new(o, "http_5xx",
			    json_integer((json_int_t)t->by_class[5]));
	json_object_set_new(o, "errors", json_integer((json_int_t)t->errors));
	json_object_set_new(o, "p50_ms", p50 < 0 ? json_null() : json_real(p50));
	json_object_set_new(o, "p99_ms", p99 < 0 ? json_null() : json_real(p99));
	json_object_set_new(o, "hist", ml_hist_to_json(&t->hist));
	return o;
}

static int op_lb_requests(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = { .lock_fd = -1 };
	struct ml_buf text = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	struct tallies t = { 0 };
	struct timespec now;
	json_int_t window = 60000;
	json_t *r = NULL, *list;
	const char *app;
	int64_t now_ms;
	char *line, *nl;
	pid_t master;
	size_t i;
	int rc;

	rc = ml_agent_arg_name(&app, args, OP, "app", false);
	if (rc == 0)
		rc = ml_agent_arg_int(&window, args, OP, "window_ms", 1000,
				      3600000, false);
	if (rc == 0)
		rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc == 0)
		rc = ml_haproxy_master_pid(&master, &h);
	if (rc < 0)
		goto out;
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	r = json_object();
	json_object_set_new(r, "running", json_boolean(master != 0));
	json_object_set_new(r, "now_ms", json_integer(now_ms));
	json_object_set_new(r, "window_ms", json_integer(window));
	ml_agent_lb_map_load(&t.map, &h);
	if (master) {
		rc = ml_haproxy_cmd(&text, h.admin_sock,
				    "show events " ML_HAPROXY_RING,
				    h.timeout_ms);
		if (rc < 0)
			goto out;
	}
	for (line = text.data; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		add_line(&t, line, now_ms - window, now_ms + 1);
	}
	json_object_set_new(r, "oldest_ms", t.oldest_ms
						    ? json_integer(t.oldest_ms)
						    : json_null());
	list = json_array();
	for (i = 0; i < t.n; i++)
		json_array_append_new(list, tally_json(&t.v[i], true));
	json_object_set_new(r, "servers", list);
	json_object_set_new(r, "frontend", tally_json(&t.all, false));
	*result = r;
	r = NULL;
out:
	json_decref(r);
	json_decref(t.map);
	free(t.v);
	ml_buf_release(&text);
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_requests = {
	.name = OP,
	.summary = "requests, errors and latency per server over a window, "
		   "from HAProxy's request log",
	.run = op_lb_requests,
};
