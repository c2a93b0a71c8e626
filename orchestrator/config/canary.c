/*
 * The playbook's canary keys: weighted steps of rollout.canary, the
 * verification gate rollout.analysis and the golden requests of
 * rollout.verify, parsed with located diagnostics like the rest of the
 * playbook (playbook.c calls in here), their defaults, and their form in
 * the resolved desired state.
 *
 *	rollout:
 *	  canary: [{weight: 10%, for: 2m}, {weight: 50%, for: manual,
 *		   timeout: 30m}]
 *	  analysis: {max_error_rate: 1%, max_p99: 500ms, max_p99_ratio: 2,
 *		     min_requests: 50, too_few: fail}
 *	  verify: {compare: true, requests: [{method: POST, path: /predict,
 *		   body: '...', expect: {status: 200, body: setosa}}]}
 *
 * Invariants after a parse without diagnostics: weights strictly
 * increase within 1..99; a step has `for` (a duration of at least 1 s, or
 * "manual"); ratios are positive; at most ML_VERIFY_MAX requests, each
 * path '/' and printable ASCII without spaces, bodies at most
 * ML_VERIFY_BODY_MAX bytes.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/config/yaml.h"

#include <ctype.h>

static const char *const step_keys[] = {"weight", "for", "timeout", NULL};
static const char *const analysis_keys[] = {
	"max_error_rate", "max_error_ratio", "max_p99",
	"max_p99_ratio",  "p99_margin",	     "min_requests",
	"too_few",	  "interval",	     NULL,
};
static const char *const verify_keys[] = {"requests", "compare", "timeout",
					  NULL};
static const char *const request_keys[] = {"method", "path", "body", "expect",
					   NULL};
static const char *const expect_keys[] = {"status", "body", "json", NULL};
static const char *const json_keys[] = {"field", "value", NULL};

#define MANUAL_TIMEOUT_DEFAULT_MS (60 * 60 * 1000)

void ml_canary_defaults(struct ml_rollout_spec *r)
{
	struct ml_analysis_spec *a = &r->analysis;

	a->max_error_rate = 0.01;
	a->max_error_ratio = 0;
	a->max_p99_ms = 0;
	a->max_p99_ratio = 2.0;
	a->p99_margin_ms = 50;
	a->min_requests = 50;
	a->pass_on_too_few = false;
	a->interval_ms = 5000;
	r->verify.timeout_ms = 5000;
}

/* "10%" or "0.5%" as a share of 1 into *out; false if not that. */
static bool parse_share(const char *s, double *out)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)s[0]))
		return false;
	v = strtod(s, &end);
	if (end == s || strcmp(end, "%") || !(v >= 0 && v <= 1e9))
		return false;
	*out = v / 100;
	return true;
}

/* A positive number (ratios): YAML's 2 or 1.5. */
static int get_ratio(struct ml_cfgctx *c, const struct ml_ynode *n,
		     const char *path, double *out)
{
	char *end;
	double v;

	if (n->type != ML_YSCALAR || !n->plain || !n->scalar[0]) {
		ml_cfg_err(c, n,
			   "'%s' must be a positive number such as 1.5, "
			   "got %s",
			   path, ml_cfg_kind(n));
		return ML_EINVALID;
	}
	v = strtod(n->scalar, &end);
	if (*end || !(v > 0 && v <= 1000)) {
		ml_cfg_err(c, n,
			   "'%s' must be a number above 0 and at most "
			   "1000, got '%s'",
			   path, ml_cfg_q(c, n->scalar));
		return ML_EINVALID;
	}
	*out = v;
	return 0;
}

static void parse_step(struct ml_cfgctx *c, struct ml_rollout_spec *r,
		       const struct ml_ynode *it, size_t i)
{
	struct ml_canary_step st = {0};
	const struct ml_ynode *w, *f, *t;
	char path[64];
	double share;

	snprintf(path, sizeof(path), "rollout.canary[%zu]", i);
	if (ml_cfg_want_map(c, it, path) < 0)
		return;
	ml_cfg_check_keys(c, it, step_keys);
	w = ml_ymap_get(it, "weight");
	f = ml_ymap_get(it, "for");
	t = ml_ymap_get(it, "timeout");
	if (!w || !f) {
		ml_cfg_err(c, it,
			   "'%s' needs 'weight' and 'for', such as "
			   "{weight: 10%%, for: 2m}",
			   path);
		return;
	}
	if (w->type != ML_YSCALAR || !parse_share(w->scalar, &share) ||
	    strchr(w->scalar, '.') || share < 0.01 || share > 0.99) {
		ml_cfg_err(c, w,
			   "'%s.weight' must be a whole percentage "
			   "from 1%% to 99%% such as '10%%', got '%s'",
			   path,
			   w->type == ML_YSCALAR ? ml_cfg_q(c, w->scalar)
						 : ml_cfg_kind(w));
		return;
	}
	st.weight_pct = (int)(share * 100 + 0.5);
	if (f->type == ML_YSCALAR && !strcmp(f->scalar, "manual")) {
		st.manual = true;
		st.timeout_ms = MANUAL_TIMEOUT_DEFAULT_MS;
		if (t && ml_cfg_duration(c, t, "rollout.canary[].timeout",
					 &st.timeout_ms) < 0)
			return;
		if (st.timeout_ms < 1000) {
			ml_cfg_err(c, t, "'%s.timeout' must be at least 1s",
				   path);
			return;
		}
	} else {
		if (ml_cfg_duration(c, f, "rollout.canary[].for", &st.for_ms) <
		    0)
			return;
		if (st.for_ms < 1000) {
			ml_cfg_err(c, f,
				   "'%s.for' must be at least 1s, or "
				   "'manual'",
				   path);
			return;
		}
		if (t) {
			ml_cfg_err(c, t,
				   "'%s.timeout' applies to 'for: "
				   "manual' steps only",
				   path);
			return;
		}
	}
	if (r->nsteps && st.weight_pct <= r->steps[r->nsteps - 1].weight_pct) {
		ml_cfg_err(c, w,
			   "'%s.weight' must be more than the step "
			   "before it (%d%%), got '%s'",
			   path, r->steps[r->nsteps - 1].weight_pct, w->scalar);
		return;
	}
	r->steps[r->nsteps++] = st;
}

void ml_canary_parse_steps(struct ml_cfgctx *c, struct ml_rollout_spec *r,
			   const struct ml_ynode *n)
{
	size_t i;

	if (ml_cfg_want_seq(c, n, "rollout.canary") < 0)
		return;
	free(r->steps);
	r->steps = ml_xcalloc(n->nitems + 1, sizeof(*r->steps));
	r->nsteps = 0;
	for (i = 0; i < n->nitems; i++) {
		if (n->items[i]->type == ML_YSCALAR) {
			ml_cfg_err(c, n->items[i],
				   "'rollout.canary[%zu]' is a host share "
				   "but the steps before it are weighted: "
				   "use one kind, such as {weight: %s, for: "
				   "2m}",
				   i, ml_cfg_q(c, n->items[i]->scalar));
			continue;
		}
		parse_step(c, r, n->items[i], i);
	}
}

void ml_analysis_parse(struct ml_cfgctx *c, struct ml_analysis_spec *a,
		       const struct ml_ynode *n)
{
	const struct ml_ynode *v;
	int64_t i64;

	if (ml_cfg_want_map(c, n, "rollout.analysis") < 0)
		return;
	ml_cfg_check_keys(c, n, analysis_keys);
	if ((v = ml_ymap_get(n, "max_error_rate"))) {
		double s;

		if (v->type != ML_YSCALAR || !parse_share(v->scalar, &s) ||
		    s > 1)
			ml_cfg_err(c, v,
				   "'rollout.analysis.max_error_rate' "
				   "must be a percentage from 0%% to 100%% "
				   "such as '1%%' or '0.5%%', got '%s'",
				   v->type == ML_YSCALAR
					   ? ml_cfg_q(c, v->scalar)
					   : ml_cfg_kind(v));
		else
			a->max_error_rate = s;
	}
	if ((v = ml_ymap_get(n, "max_error_ratio")))
		get_ratio(c, v, "rollout.analysis.max_error_ratio",
			  &a->max_error_ratio);
	if ((v = ml_ymap_get(n, "max_p99")))
		ml_cfg_duration(c, v, "rollout.analysis.max_p99",
				&a->max_p99_ms);
	if ((v = ml_ymap_get(n, "max_p99_ratio")))
		get_ratio(c, v, "rollout.analysis.max_p99_ratio",
			  &a->max_p99_ratio);
	if ((v = ml_ymap_get(n, "p99_margin")))
		ml_cfg_duration(c, v, "rollout.analysis.p99_margin",
				&a->p99_margin_ms);
	if ((v = ml_ymap_get(n, "min_requests")) &&
	    ml_cfg_int(c, v, "rollout.analysis.min_requests", 1, 1000000,
		       &i64) == 0)
		a->min_requests = (int)i64;
	if ((v = ml_ymap_get(n, "too_few"))) {
		if (v->type == ML_YSCALAR && !strcmp(v->scalar, "fail"))
			a->pass_on_too_few = false;
		else if (v->type == ML_YSCALAR && !strcmp(v->scalar, "pass"))
			a->pass_on_too_few = true;
		else
			ml_cfg_err(c, v,
				   "'rollout.analysis.too_few' must be "
				   "'fail' or 'pass', got '%s'",
				   v->type == ML_YSCALAR
					   ? ml_cfg_q(c, v->scalar)
					   : ml_cfg_kind(v));
	}
	if ((v = ml_ymap_get(n, "interval")) &&
	    ml_cfg_duration(c, v, "rollout.analysis.interval", &i64) == 0) {
		if (i64 < 1000 || i64 > 10000)
			ml_cfg_err(c, v,
				   "'rollout.analysis.interval' must be "
				   "from 1s to 10s, got '%s'",
				   ml_cfg_q(c, v->scalar));
		else
			a->interval_ms = i64;
	}
}

/* A printable ASCII string of 1..max bytes (no control bytes); NULL after
 * a diagnostic. */
static char *text(struct ml_cfgctx *c, const struct ml_ynode *v,
		  const char *path, size_t max, bool space_ok)
{
	char *s;
	size_t i;

	if (ml_cfg_str(c, v, path, &s) < 0)
		return NULL;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ||
		    (!space_ok && s[i] == ' '))
			break;
	if (!s[0] || s[i] || i > max) {
		ml_cfg_err(c, v,
			   "'%s' must be 1 to %zu printable ASCII "
			   "characters%s, got '%s'",
			   path, max, space_ok ? "" : " without spaces",
			   ml_cfg_q(c, s));
		free(s);
		return NULL;
	}
	return s;
}

static void parse_expect(struct ml_cfgctx *c, struct ml_verify_req *rq,
			 const struct ml_ynode *n)
{
	const struct ml_ynode *v, *f, *val;
	int64_t code;

	if (ml_cfg_want_map(c, n, "rollout.verify.requests[].expect") < 0)
		return;
	ml_cfg_check_keys(c, n, expect_keys);
	if ((v = ml_ymap_get(n, "status")) &&
	    ml_cfg_int(c, v, "rollout.verify.requests[].expect.status", 100,
		       599, &code) == 0)
		rq->expect_status = (int)code;
	if ((v = ml_ymap_get(n, "body")))
		rq->expect_body =
			text(c, v, "rollout.verify.requests[].expect.body",
			     ML_HEALTH_TEXT_MAX, true);
	if ((v = ml_ymap_get(n, "json"))) {
		if (ml_cfg_want_map(
			    c, v, "rollout.verify.requests[].expect.json") < 0)
			return;
		ml_cfg_check_keys(c, v, json_keys);
		f = ml_ymap_get(v, "field");
		val = ml_ymap_get(v, "value");
		if (!f || !val) {
			ml_cfg_err(c, v,
				   "'rollout.verify.requests[].expect."
				   "json' needs both 'field' and 'value'");
			return;
		}
		rq->expect_json_field = text(
			c, f, "rollout.verify.requests[].expect.json.field",
			ML_HEALTH_TEXT_MAX, false);
		rq->expect_json_value = text(
			c, val, "rollout.verify.requests[].expect.json.value",
			ML_HEALTH_TEXT_MAX, true);
	}
}

static void parse_request(struct ml_cfgctx *c, struct ml_verify_spec *vs,
			  const struct ml_ynode *it)
{
	struct ml_verify_req *rq = &vs->v[vs->n];
	const struct ml_ynode *v;
	size_t i;

	if (ml_cfg_want_map(c, it, "rollout.verify.requests[]") < 0)
		return;
	ml_cfg_check_keys(c, it, request_keys);
	v = ml_ymap_get(it, "path");
	if (!v) {
		ml_cfg_err(c, it,
			   "missing required key 'path' in "
			   "'rollout.verify.requests[]'");
		return;
	}
	rq->path = text(c, v, "rollout.verify.requests[].path", 1024, false);
	if (rq->path && rq->path[0] != '/') {
		ml_cfg_err(c, v,
			   "'rollout.verify.requests[].path' must start "
			   "with '/', got '%s'",
			   ml_cfg_q(c, rq->path));
		free(rq->path);
		rq->path = NULL;
	}
	if ((v = ml_ymap_get(it, "method"))) {
		rq->method = text(c, v, "rollout.verify.requests[].method", 16,
				  false);
		for (i = 0; rq->method && rq->method[i]; i++)
			if (!isupper((unsigned char)rq->method[i])) {
				ml_cfg_err(c, v,
					   "'rollout.verify.requests[]."
					   "method' must be upper-case letters "
					   "such as POST, got '%s'",
					   ml_cfg_q(c, rq->method));
				free(rq->method);
				rq->method = NULL;
				break;
			}
	}
	if (!rq->method)
		rq->method = ml_xstrdup("GET");
	if ((v = ml_ymap_get(it, "body"))) {
		if (ml_cfg_str(c, v, "rollout.verify.requests[].body",
			       &rq->body) == 0 &&
		    strlen(rq->body) > ML_VERIFY_BODY_MAX) {
			ml_cfg_err(c, v,
				   "'rollout.verify.requests[].body' is "
				   "longer than %d bytes",
				   ML_VERIFY_BODY_MAX);
			free(rq->body);
			rq->body = NULL;
		}
	}
	if ((v = ml_ymap_get(it, "expect")))
		parse_expect(c, rq, v);
	if (rq->path)
		vs->n++;
	else {
		free(rq->method);
		free(rq->body);
		free(rq->expect_body);
		free(rq->expect_json_field);
		free(rq->expect_json_value);
		memset(rq, 0, sizeof(*rq));
	}
}

void ml_verify_parse(struct ml_cfgctx *c, struct ml_verify_spec *vs,
		     const struct ml_ynode *n)
{
	const struct ml_ynode *v, *reqs;
	size_t i;

	if (ml_cfg_want_map(c, n, "rollout.verify") < 0)
		return;
	ml_cfg_check_keys(c, n, verify_keys);
	if ((v = ml_ymap_get(n, "compare")))
		ml_cfg_bool(c, v, "rollout.verify.compare", &vs->compare);
	if ((v = ml_ymap_get(n, "timeout")) &&
	    ml_cfg_duration(c, v, "rollout.verify.timeout", &vs->timeout_ms) ==
		    0 &&
	    (vs->timeout_ms < 10 || vs->timeout_ms > 60000)) {
		ml_cfg_err(c, v,
			   "'rollout.verify.timeout' must be from 10ms "
			   "to 1m");
		vs->timeout_ms = 5000;
	}
	reqs = ml_ymap_get(n, "requests");
	if (!reqs) {
		ml_cfg_err(c, n,
			   "missing required key 'requests' in "
			   "'rollout.verify'");
		return;
	}
	if (ml_cfg_want_seq(c, reqs, "rollout.verify.requests") < 0)
		return;
	if (reqs->nitems > ML_VERIFY_MAX) {
		ml_cfg_err(c, reqs,
			   "'rollout.verify.requests' lists %zu "
			   "requests, at most %d",
			   reqs->nitems, ML_VERIFY_MAX);
		return;
	}
	vs->v = ml_xcalloc(reqs->nitems + 1, sizeof(*vs->v));
	for (i = 0; i < reqs->nitems; i++)
		parse_request(c, vs, reqs->items[i]);
}

void ml_canary_release(struct ml_rollout_spec *r)
{
	size_t i;

	free(r->steps);
	r->steps = NULL;
	r->nsteps = 0;
	for (i = 0; i < r->verify.n; i++) {
		struct ml_verify_req *q = &r->verify.v[i];

		free(q->method);
		free(q->path);
		free(q->body);
		free(q->expect_body);
		free(q->expect_json_field);
		free(q->expect_json_value);
	}
	free(r->verify.v);
	r->verify.v = NULL;
	r->verify.n = 0;
}

void ml_canary_to_json(json_t *o, const struct ml_rollout_spec *r)
{
	const struct ml_analysis_spec *a = &r->analysis;
	json_t *steps, *reqs;
	size_t i;

	if (r->nsteps) {
		steps = json_array();
		for (i = 0; i < r->nsteps; i++) {
			const struct ml_canary_step *s = &r->steps[i];

			json_array_append_new(
				steps,
				s->manual ? json_pack("{s:i,s:s,s:I}",
						      "weight_pct",
						      s->weight_pct, "for",
						      "manual", "timeout_ms",
						      (json_int_t)s->timeout_ms)
					  : json_pack("{s:i,s:I}", "weight_pct",
						      s->weight_pct, "for_ms",
						      (json_int_t)s->for_ms));
		}
		json_object_set_new(o, "canary_steps", steps);
		json_object_set_new(
			o, "analysis",
			json_pack("{s:f,s:f,s:I,s:f,s:I,s:i,s:s,s:I}",
				  "max_error_rate", a->max_error_rate,
				  "max_error_ratio", a->max_error_ratio,
				  "max_p99_ms", (json_int_t)a->max_p99_ms,
				  "max_p99_ratio", a->max_p99_ratio,
				  "p99_margin_ms", (json_int_t)a->p99_margin_ms,
				  "min_requests", a->min_requests, "too_few",
				  a->pass_on_too_few ? "pass" : "fail",
				  "interval_ms", (json_int_t)a->interval_ms));
	}
	if (!r->verify.n)
		return;
	reqs = json_array();
	for (i = 0; i < r->verify.n; i++) {
		const struct ml_verify_req *q = &r->verify.v[i];

		json_array_append_new(
			reqs,
			json_pack("{s:s,s:s,s:s*,s:i,s:s*,s:s*,s:s*}", "method",
				  q->method, "path", q->path, "body", q->body,
				  "expect_status", q->expect_status,
				  "expect_body", q->expect_body,
				  "expect_json_field", q->expect_json_field,
				  "expect_json_value", q->expect_json_value));
	}
	json_object_set_new(o, "verify",
			    json_pack("{s:o,s:b,s:I}", "requests", reqs,
				      "compare", r->verify.compare,
				      "timeout_ms",
				      (json_int_t)r->verify.timeout_ms));
}
