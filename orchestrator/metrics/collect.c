/*
 * Requests per container and per revision over a window, for `mlctl
 * status`: every load balancer's agent reads HAProxy's per-request log
 * (lb_requests) and answers per server and revision, with a latency
 * histogram (common/hist.h); here they are added up across balancers,
 * attributed to containers, and turned into rates, error rates and
 * percentiles. Percentiles are read from the merged histogram (within
 * 6.25% of the exact value), never from HAProxy's running averages.
 *
 * A server is a slot, "<host>-<replica><slot>" (orchestrator/apply); the
 * balancer's map tells which revision it served when. Where the map does
 * not know (an app deployed before mlctl kept one), the revision of the
 * container now in the slot is taken.
 */
#include "common/ml.h"
#include "common/hist.h"
#include "common/log.h"
#include "common/table.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"

struct sum {
	char *key; /* "HOST/NAME", or a revision number as text */
	int64_t revision;
	uint64_t req, errors, cls[4]; /* 2xx, 3xx, 4xx, 5xx */
	struct ml_hist hist;
};

struct sums {
	struct sum *v;
	size_t n;
};

static struct sum *sum_of(struct sums *s, const char *key, int64_t revision)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].key, key))
			return &s->v[i];
	s->v = ml_xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	s->v[s->n].key = ml_xstrdup(key);
	s->v[s->n].revision = revision;
	return &s->v[s->n++];
}

static void sum_add(struct sum *s, json_t *e)
{
	static const char *const cls[] = { "http_2xx", "http_3xx", "http_4xx",
					   "http_5xx" };
	size_t k;

	s->req += (uint64_t)json_integer_value(json_object_get(e, "requests"));
	s->errors += (uint64_t)json_integer_value(json_object_get(e, "errors"));
	for (k = 0; k < 4; k++)
		s->cls[k] += (uint64_t)json_integer_value(
			json_object_get(e, cls[k]));
	if (ml_hist_add_json(&s->hist, json_object_get(e, "hist")) < 0)
		ml_debug("ignoring a bad histogram: %s", ml_err_msg());
}

static json_t *sum_json(const struct sum *s, double window_s)
{
	double p50 = ml_hist_quantile(&s->hist, 0.5);
	double p99 = ml_hist_quantile(&s->hist, 0.99);

	return json_pack("{s:I,s:f,s:I,s:f,s:o,s:o,s:I,s:I,s:I,s:I}",
			 "requests", (json_int_t)s->req, "req_per_s",
			 (double)s->req / window_s, "errors",
			 (json_int_t)s->errors, "error_rate",
			 s->req ? (double)s->errors / (double)s->req : 0.0,
			 "p50_ms", p50 < 0 ? json_null() : json_real(p50),
			 "p99_ms", p99 < 0 ? json_null() : json_real(p99),
			 "http_2xx", (json_int_t)s->cls[0], "http_3xx",
			 (json_int_t)s->cls[1], "http_4xx",
			 (json_int_t)s->cls[2], "http_5xx",
			 (json_int_t)s->cls[3]);
}

/*
 * Split a server name "<host>-<replica><slot>" into the index of its host
 * among hosts and the "<replica>", "<slot>" parts. False when it is not
 * one of ours.
 */
static bool split_server(size_t *host, char rep[16], char *slot,
			 const char *name, struct ml_host_session *hosts,
			 size_t n)
{
	size_t len = strlen(name), i, d;

	if (len < 4 || (name[len - 1] != 'a' && name[len - 1] != 'b'))
		return false;
	for (d = len - 1; d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9';
	     d--)
		;
	if (d == len - 1 || len - 1 - d >= 16 || d < 2 || name[d - 1] != '-')
		return false;
	*slot = name[len - 1];
	memcpy(rep, name + d, len - 1 - d);
	rep[len - 1 - d] = '\0';
	for (i = 0; i < n; i++)
		if (strlen(hosts[i].target->name) == d - 1 &&
		    !strncmp(hosts[i].target->name, name, d - 1)) {
			*host = i;
			return true;
		}
	return false;
}

/* The container of host's list in slot (rep, slot), of revision rev when
 * rev >= 0, else the running one; borrowed or NULL. */
static json_t *slot_container(json_t *list, const char *rep, char slot,
			      int64_t rev)
{
	json_t *c, *best = NULL;
	size_t k;

	json_array_foreach(list, k, c) {
		const char *s = json_string_value(json_object_get(c, "slot"));
		const char *r = json_string_value(json_object_get(
			json_object_get(c, "labels"), "mlctl.replica"));
		const char *st = json_string_value(json_object_get(c, "state"));

		if (!s || !r || s[0] != slot || s[1] || strcmp(r, rep))
			continue;
		if (rev >= 0 &&
		    json_integer_value(json_object_get(c, "revision")) == rev)
			return c;
		if (rev < 0 && st && !strcmp(st, "running"))
			best = c;
	}
	return best;
}

static int by_revision_desc(const void *pa, const void *pb)
{
	const struct sum *a = pa, *b = pb;

	return a->revision < b->revision ? 1 : a->revision > b->revision ? -1
									 : 0;
}

int ml_metrics_collect(json_t **out, struct ml_host_session *hosts, size_t n,
		       json_t *const *containers, const char *app,
		       int64_t window_ms)
{
	struct sums revs = { 0 }, conts = { 0 };
	struct sum front = { 0 };
	json_t *doc = json_object(), *lbs = json_array(), *o, *e;
	double window_s = (double)window_ms / 1000;
	size_t i, k, hi;
	char rep[16], slot, key[512];

	for (i = 0; i < n; i++) {
		struct ml_host_session *h = &hosts[i];
		json_t *res = NULL;
		int rc;

		if (!h->target->is_lb || h->rc < 0)
			continue;
		rc = ml_op_lb_requests(h, app, window_ms, &res);
		o = json_pack("{s:s}", "host", h->target->name);
		if (rc < 0) {
			json_object_set_new(o, "error",
					    json_string(ml_err_msg()));
			json_array_append_new(lbs, o);
			continue;
		}
		json_object_set(o, "running", json_object_get(res, "running"));
		json_object_set(o, "oldest_ms",
				json_object_get(res, "oldest_ms"));
		json_array_append_new(lbs, o);
		sum_add(&front, json_object_get(res, "frontend"));
		json_array_foreach(json_object_get(res, "servers"), k, e) {
			const char *name =
				json_string_value(json_object_get(e, "name"));
			json_t *rv = json_object_get(e, "revision"), *c = NULL;
			int64_t rev = json_is_integer(rv)
					      ? json_integer_value(rv)
					      : -1;

			if (!name ||
			    !split_server(&hi, rep, &slot, name, hosts, n))
				continue;
			c = slot_container(containers[hi], rep, slot, rev);
			if (rev < 0 && c)
				rev = json_integer_value(
					json_object_get(c, "revision"));
			if (c) {
				snprintf(key, sizeof(key), "%s/%s",
					 hosts[hi].target->name,
					 json_string_value(json_object_get(
						 c, "name")) ?: "?");
				sum_add(sum_of(&conts, key, rev), e);
			}
			if (rev < 0)
				continue;
			snprintf(key, sizeof(key), "%lld", (long long)rev);
			sum_add(sum_of(&revs, key, rev), e);
		}
		json_decref(res);
	}
	qsort(revs.v, revs.n, sizeof(*revs.v), by_revision_desc);
	json_object_set_new(doc, "window_ms", json_integer(window_ms));
	json_object_set_new(doc, "lbs", lbs);
	json_object_set_new(doc, "frontend", sum_json(&front, window_s));
	o = json_array();
	for (i = 0; i < revs.n; i++) {
		e = sum_json(&revs.v[i], window_s);
		json_object_set_new(e, "revision",
				    json_integer(revs.v[i].revision));
		json_array_append_new(o, e);
		free(revs.v[i].key);
	}
	json_object_set_new(doc, "revisions", o);
	o = json_object();
	for (i = 0; i < conts.n; i++) {
		json_object_set_new(o, conts.v[i].key,
				    sum_json(&conts.v[i], window_s));
		free(conts.v[i].key);
	}
	json_object_set_new(doc, "containers", o);
	free(revs.v);
	free(conts.v);
	*out = doc;
	return 0;
}

json_t *ml_metrics_container(json_t *m, const char *host, json_t *c)
{
	char key[512];

	snprintf(key, sizeof(key), "%s/%s", host,
		 json_string_value(json_object_get(c, "name")) ?: "?");
	return json_object_get(json_object_get(m, "containers"), key);
}

static const char *fmt_ms(char *buf, size_t n, json_t *v)
{
	if (!json_is_number(v))
		return NULL;
	snprintf(buf, n, "%.0fms", json_number_value(v));
	return buf;
}

/* One row per container that served requests in the window. */
static void print_containers(FILE *fp, json_t *conts)
{
	static const char *const hdr[] = { "CONTAINER", "REQUESTS", "REQ/S",
					   "ERRORS",	"P50",	    "P99" };
	struct ml_table *t;
	const char *key;
	json_t *r;
	char c[5][48];

	if (!json_object_size(conts))
		return;
	t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	json_object_foreach(conts, key, r) {
		const char *cells[6];

		snprintf(c[0], 48, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(r, "requests")));
		snprintf(c[1], 48, "%.1f",
			 json_number_value(json_object_get(r, "req_per_s")));
		snprintf(c[2], 48, "%.1f%%",
			 100 * json_number_value(
				       json_object_get(r, "error_rate")));
		cells[0] = key;
		cells[1] = c[0];
		cells[2] = c[1];
		cells[3] = c[2];
		cells[4] = fmt_ms(c[3], 48, json_object_get(r, "p50_ms"));
		cells[5] = fmt_ms(c[4], 48, json_object_get(r, "p99_ms"));
		ml_table_add(t, cells);
	}
	fprintf(fp, "\nper container:\n");
	ml_table_print(t, fp);
	ml_table_free(t);
}

void ml_metrics_print(FILE *fp, json_t *m)
{
	static const char *const hdr[] = { "REVISION", "REQUESTS", "REQ/S",
					   "ERRORS",   "P50",	   "P99" };
	struct ml_table *t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	json_t *r, *lb;
	size_t i;
	char c[6][48];

	json_array_foreach(json_object_get(m, "revisions"), i, r) {
		const char *cells[6];

		snprintf(c[0], 48, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(r, "revision")));
		snprintf(c[1], 48, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(r, "requests")));
		snprintf(c[2], 48, "%.1f",
			 json_number_value(json_object_get(r, "req_per_s")));
		snprintf(c[3], 48, "%.1f%%",
			 100 * json_number_value(
				       json_object_get(r, "error_rate")));
		cells[0] = c[0];
		cells[1] = c[1];
		cells[2] = c[2];
		cells[3] = c[3];
		cells[4] = fmt_ms(c[4], 48, json_object_get(r, "p50_ms"));
		cells[5] = fmt_ms(c[5], 48, json_object_get(r, "p99_ms"));
		ml_table_add(t, cells);
	}
	fprintf(fp, "\nrequests over the last %" JSON_INTEGER_FORMAT
		    " s, per revision (HAProxy's request log):\n",
		json_integer_value(json_object_get(m, "window_ms")) / 1000);
	if (json_array_size(json_object_get(m, "revisions")))
		ml_table_print(t, fp);
	else
		fprintf(fp, "  no requests\n");
	print_containers(fp, json_object_get(m, "containers"));
	json_array_foreach(json_object_get(m, "lbs"), i, lb)
		if (json_object_get(lb, "error"))
			fprintf(fp, "  %s: %s\n",
				json_string_value(json_object_get(lb, "host")),
				json_string_value(json_object_get(lb, "error")));
	ml_table_free(t);
}
