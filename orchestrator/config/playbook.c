/*
 * The playbook (mlctl.yaml): YAML node tree -> struct ml_playbook, with
 * every value checked. The walk never stops at the first problem: each
 * section is checked on its own and every problem becomes one diagnostic
 * at the place it was written; only at the end does a playbook with any
 * diagnostic fail (ML_EINVALID, nothing returned).
 *
 * Invariants of a returned playbook: every field is within the ranges
 * documented in config.h and schema/playbook.schema.json; defaults are
 * filled in; targets is non-empty; health.timeout <= health.interval;
 * secrets are unique and not in env; canary steps strictly increase.
 * Whether targets and load-balancer hosts exist is the resolver's business
 * (resolve.c), as it needs the inventory.
 *
 * Sizes: a playbook is small (the YAML loader caps it at 1 MiB); lists are
 * checked for duplicates by pairwise comparison.
 */
#include "common/ml.h"
#include "common/balance.h"
#include "common/fmt.h"
#include "orchestrator/config/config.h"
#include "orchestrator/config/yaml.h"
#include "common/docker.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>

#define ML_MAX_REPLICAS 64
#define ML_MIN_MEMORY ((int64_t)6 << 20) /* Docker refuses less than 6 MiB */

static const char *const top_keys[] = {
	"app",	   "image",	"port",	   "health",  "replicas",      "env",
	"secrets", "resources", "targets", "rollout", "load_balancer",
	"security", "prune", "logs", "metrics", NULL};
static const char *const prune_keys[] = {"retain", "after_deploy",
					 "disk_budget", NULL};
static const char *const image_keys[] = {"ref", "build", NULL};
static const char *const build_keys[] = {"context", "dockerfile", "args", NULL};
static const char *const health_keys[] = {"path",
					  "interval",
					  "timeout",
					  "start_period",
					  "healthy_threshold",
					  "unhealthy_threshold",
					  "expect_status",
					  "expect_body",
					  "expect_json",
					  NULL};
static const char *const expect_json_keys[] = {"field", "value", NULL};
static const char *const resources_keys[] = {"cpus", "memory", "gpus", NULL};
static const char *const rollout_keys[] = {"batch",	    "failure_budget",
					   "auto_rollback", "drain_timeout",
					   "canary",	    "analysis",
					   "verify",	    "standby",
					   NULL};
static const char *const lb_keys[] = {"hosts", "listen", "balance", "tls",
				      NULL};
static const char *const tls_keys[] = {"cert", "key", "redirect_http", NULL};
static const char *const logs_keys[] = {"max_size", "max_files", NULL};
static const char *const metrics_keys[] = {"path",	 "port",
					   "bind",	 "scrape_from",
					   "user",	 "password",
					   NULL};

static const char ident_rule[] = "use letters, digits and '_', not starting "
				 "with a digit";

/* The value of an optional section; a null value counts as absent. */
static const struct ml_ynode *opt(const struct ml_ynode *map, const char *key)
{
	const struct ml_ynode *n = ml_ymap_get(map, key);

	if (n && n->type == ML_YSCALAR && n->plain && ml_yscalar_is_null(n))
		return NULL;
	return n;
}

static int get_int(struct ml_cfgctx *c, const struct ml_ynode *n,
		   const char *path, int64_t min, int64_t max, int *out)
{
	int64_t v;

	if (ml_cfg_int(c, n, path, min, max, &v) < 0)
		return ML_EINVALID;
	*out = (int)v;
	return 0;
}

/* "N%" with N a decimal number without leading zeros; -1 if not that. */
static int parse_percent(const char *s)
{
	int v = 0;
	size_t i;

	if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1] != '%'))
		return -1;
	for (i = 0; isdigit((unsigned char)s[i]); i++) {
		if (v > 100000)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (s[i] != '%' || s[i + 1])
		return -1;
	return v;
}

static bool has_bad_char(const char *s, bool space_ok)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || (!space_ok && ch == ' '))
			return true;
	}
	return false;
}

/* ---- app and image ----------------------------------------------------- */

static bool is_app_name(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!islower((unsigned char)s[n]) &&
		    !isdigit((unsigned char)s[n]) && (s[n] != '-' || !n))
			return false;
	return n >= 1 && n <= 63;
}

static void parse_app(struct ml_cfgctx *c, struct ml_playbook *pb,
		      const struct ml_ynode *n)
{
	char *s;

	if (ml_cfg_str(c, n, "app", &s) < 0)
		return;
	if (!is_app_name(s)) {
		ml_cfg_err(c, n,
			   "'app' must be 1 to 63 lowercase letters, "
			   "digits or '-', starting with a letter or digit, "
			   "got '%s'",
			   ml_cfg_q(c, s));
		free(s);
		return;
	}
	pb->app = s;
}

/* A Docker image reference, loosely: "name[:tag]", "registry/name:tag",
 * "name@sha256:...", "sha256:...". The daemon checks the grammar; we keep
 * out what could be read as an option or break a line. */
static bool is_image_ref(const char *s)
{
	size_t n;

	if (!isalnum((unsigned char)s[0]))
		return false;
	for (n = 0; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("._-/:@", s[n]))
			return false;
	/* and never "..": the name goes into Docker API paths */
	return n <= 255 && s[n - 1] != ':' && s[n - 1] != '/' &&
	       ml_docker_valid_image(s);
}

static void parse_ref(struct ml_cfgctx *c, struct ml_playbook *pb,
		      const struct ml_ynode *n, const char *path)
{
	char *s;

	if (ml_cfg_str(c, n, path, &s) < 0)
		return;
	if (!is_image_ref(s)) {
		ml_cfg_err(c, n,
			   "'%s' is not a valid image reference: '%s' "
			   "(write e.g. 'my-model:1.2')",
			   path, ml_cfg_q(c, s));
		free(s);
		return;
	}
	pb->image.kind = ML_IMAGE_REF;
	pb->image.ref = s;
}

/* A relative path inside the repository: not absolute, no "..", no
 * leading '-', no control characters. */
static bool is_repo_path(const char *s)
{
	const char *p = s;

	if (!*s || *s == '/' || *s == '-' || has_bad_char(s, true))
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

static void parse_repo_path(struct ml_cfgctx *c, const struct ml_ynode *n,
			    const char *path, char **out)
{
	char *s;

	if (ml_cfg_str(c, n, path, &s) < 0)
		return;
	if (!is_repo_path(s)) {
		ml_cfg_err(c, n,
			   "'%s' must be a relative path inside the "
			   "repository, got '%s'",
			   path, ml_cfg_q(c, s));
		free(s);
		return;
	}
	free(*out);
	*out = s;
}

static void parse_build(struct ml_cfgctx *c, struct ml_playbook *pb,
			const struct ml_ynode *n)
{
	const struct ml_ynode *v;

	pb->image.kind = ML_IMAGE_BUILD;
	pb->image.context = ml_xstrdup(".");
	pb->image.dockerfile = ml_xstrdup("Dockerfile");
	if (n && n->type == ML_YSCALAR && n->plain && ml_yscalar_is_null(n))
		return;
	if (ml_cfg_want_map(c, n, "image.build") < 0)
		return;
	ml_cfg_check_keys(c, n, build_keys);
	if ((v = ml_ymap_get(n, "context")))
		parse_repo_path(c, v, "image.build.context",
				&pb->image.context);
	if ((v = ml_ymap_get(n, "dockerfile")))
		parse_repo_path(c, v, "image.build.dockerfile",
				&pb->image.dockerfile);
	if ((v = opt(n, "args")))
		ml_cfg_kvmap(c, v, "image.build.args", ml_cfg_is_ident,
			     ident_rule, &pb->image.build_args);
}

static void parse_image(struct ml_cfgctx *c, struct ml_playbook *pb,
			const struct ml_ynode *n)
{
	const struct ml_ynode *ref, *build;

	if (n->type == ML_YSCALAR) {
		parse_ref(c, pb, n, "image");
		return;
	}
	if (n->type != ML_YMAP) {
		ml_cfg_err(c, n,
			   "'image' must be an image reference or a "
			   "mapping with 'ref' or 'build', got %s",
			   ml_cfg_kind(n));
		return;
	}
	ml_cfg_check_keys(c, n, image_keys);
	ref = ml_ymap_get(n, "ref");
	build = ml_ymap_get(n, "build");
	if (!ref == !build) {
		ml_cfg_err(c, n,
			   "'image' must have exactly one of 'ref' or "
			   "'build'");
		return;
	}
	if (ref)
		parse_ref(c, pb, ref, "image.ref");
	else
		parse_build(c, pb, build);
}

/* ---- health, resources ------------------------------------------------- */

/*
 * A string the health check compares with: printable ASCII (it is written
 * into HAProxy's configuration, escaped, and compared byte for byte),
 * 1..ML_HEALTH_TEXT_MAX bytes. NULL after a diagnostic.
 */
static char *health_text(struct ml_cfgctx *c, const struct ml_ynode *v,
			 const char *path)
{
	char *s;
	size_t i;

	if (v->type != ML_YSCALAR || ml_yscalar_is_null(v)) {
		ml_cfg_err(c, v, "'%s' must be a string, got %s", path,
			   ml_cfg_kind(v));
		return NULL;
	}
	s = ml_xstrdup(v->scalar);
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			break;
	if (!s[0] || s[i] || i > ML_HEALTH_TEXT_MAX) {
		ml_cfg_err(c, v,
			   "'%s' must be 1 to %d printable ASCII "
			   "characters, got '%s'",
			   path, ML_HEALTH_TEXT_MAX, ml_cfg_q(c, s));
		free(s);
		return NULL;
	}
	return s;
}

/* expect_status: 200, or [200, 204]. */
static void parse_expect_status(struct ml_cfgctx *c, struct ml_health_spec *h,
				const struct ml_ynode *v)
{
	const struct ml_ynode *one = v;
	size_t i, n = 1;
	int code;

	if (v->type == ML_YSEQ) {
		n = v->nitems;
		if (!n || n > ML_HEALTH_MAX_STATUS) {
			ml_cfg_err(c, v,
				   "'health.expect_status' lists 1 to %d "
				   "status codes",
				   ML_HEALTH_MAX_STATUS);
			return;
		}
	}
	for (i = 0; i < n; i++) {
		if (v->type == ML_YSEQ)
			one = v->items[i];
		if (get_int(c, one, "health.expect_status", 100, 599, &code) <
		    0)
			continue;
		h->expect_status[h->nexpect_status++] = code;
	}
}

/* expect_json: {field: status, value: ready}. */
static void parse_expect_json(struct ml_cfgctx *c, struct ml_health_spec *h,
			      const struct ml_ynode *n)
{
	const struct ml_ynode *f, *v;
	size_t i;

	if (ml_cfg_want_map(c, n, "health.expect_json") < 0)
		return;
	ml_cfg_check_keys(c, n, expect_json_keys);
	f = ml_ymap_get(n, "field");
	v = ml_ymap_get(n, "value");
	if (!f || !v) {
		ml_cfg_err(c, n,
			   "'health.expect_json' needs both 'field' and "
			   "'value'");
		return;
	}
	h->expect_json_field = health_text(c, f, "health.expect_json.field");
	h->expect_json_value = health_text(c, v, "health.expect_json.value");
	for (i = 0; h->expect_json_field && h->expect_json_field[i]; i++) {
		char ch = h->expect_json_field[i];

		if (!isalnum((unsigned char)ch) && ch != '_' && ch != '-' &&
		    ch != '.') {
			ml_cfg_err(c, f,
				   "'health.expect_json.field' is a key or a "
				   "dotted path of keys ([A-Za-z0-9_-.]), "
				   "got '%s'",
				   ml_cfg_q(c, h->expect_json_field));
			free(h->expect_json_field);
			h->expect_json_field = NULL;
			break;
		}
	}
}

static void parse_health(struct ml_cfgctx *c, struct ml_playbook *pb,
			 const struct ml_ynode *n)
{
	struct ml_health_spec *h = &pb->health;
	const struct ml_ynode *v, *vi, *vt;
	bool times_ok = true;
	char *s;

	if (ml_cfg_want_map(c, n, "health") < 0)
		return;
	ml_cfg_check_keys(c, n, health_keys);
	if ((v = ml_ymap_get(n, "path")) &&
	    ml_cfg_str(c, v, "health.path", &s) == 0) {
		if (s[0] != '/' || has_bad_char(s, false) || strlen(s) > 1024) {
			ml_cfg_err(c, v,
				   "'health.path' must be a URL path "
				   "starting with '/', without spaces, got "
				   "'%s'",
				   ml_cfg_q(c, s));
			free(s);
		} else {
			free(h->path);
			h->path = s;
		}
	}
	vi = ml_ymap_get(n, "interval");
	if (vi &&
	    ml_cfg_duration(c, vi, "health.interval", &h->interval_ms) < 0)
		times_ok = false;
	else if (vi && h->interval_ms <= 0) {
		ml_cfg_err(c, vi, "'health.interval' must be longer than 0");
		times_ok = false;
	}
	vt = ml_ymap_get(n, "timeout");
	if (vt && ml_cfg_duration(c, vt, "health.timeout", &h->timeout_ms) < 0)
		times_ok = false;
	else if (vt && h->timeout_ms <= 0) {
		ml_cfg_err(c, vt, "'health.timeout' must be longer than 0");
		times_ok = false;
	}
	if (times_ok && h->timeout_ms > h->interval_ms) {
		char a[ML_FMT_MAX], b[ML_FMT_MAX];

		ml_cfg_err(c, vt ? vt : vi,
			   "'health.timeout' (%s) must not be "
			   "longer than 'health.interval' (%s)",
			   ml_fmt_duration(a, h->timeout_ms),
			   ml_fmt_duration(b, h->interval_ms));
	}
	if ((v = ml_ymap_get(n, "start_period")))
		ml_cfg_duration(c, v, "health.start_period",
				&h->start_period_ms);
	if ((v = ml_ymap_get(n, "healthy_threshold")))
		get_int(c, v, "health.healthy_threshold", 1, 100,
			&h->healthy_threshold);
	if ((v = ml_ymap_get(n, "unhealthy_threshold")))
		get_int(c, v, "health.unhealthy_threshold", 1, 100,
			&h->unhealthy_threshold);
	if ((v = ml_ymap_get(n, "expect_status")))
		parse_expect_status(c, h, v);
	if ((v = ml_ymap_get(n, "expect_body")))
		h->expect_body = health_text(c, v, "health.expect_body");
	if ((v = ml_ymap_get(n, "expect_json")))
		parse_expect_json(c, h, v);
}

static void parse_cpus(struct ml_cfgctx *c, struct ml_playbook *pb,
		       const struct ml_ynode *n)
{
	const char *kind = ml_cfg_kind(n), *s = n->scalar;
	double v;

	if (strcmp(kind, "an integer") && strcmp(kind, "a number")) {
		ml_cfg_err(c, n, "'resources.cpus' must be a number, got %s",
			   kind);
		return;
	}
	/* decimal notation only: no hex, exponent, inf or nan */
	if (strspn(s, "0123456789.") != strlen(s)) {
		ml_cfg_err(c, n,
			   "'resources.cpus' must be a decimal number "
			   "such as 2 or 0.5, got '%s'",
			   ml_cfg_q(c, s));
		return;
	}
	v = strtod(s, NULL);
	if (!(v > 0) || v > 4096) {
		ml_cfg_err(c, n,
			   "'resources.cpus' must be more than 0 and at "
			   "most 4096, got %s",
			   ml_cfg_q(c, s));
		return;
	}
	pb->resources.cpus = v;
}

static void parse_resources(struct ml_cfgctx *c, struct ml_playbook *pb,
			    const struct ml_ynode *n)
{
	const struct ml_ynode *v;

	if (ml_cfg_want_map(c, n, "resources") < 0)
		return;
	ml_cfg_check_keys(c, n, resources_keys);
	if ((v = ml_ymap_get(n, "cpus")))
		parse_cpus(c, pb, v);
	if ((v = ml_ymap_get(n, "memory"))) {
		int64_t b;

		if (ml_cfg_size(c, v, "resources.memory", &b) < 0)
			;
		else if (b < ML_MIN_MEMORY)
			ml_cfg_err(c, v,
				   "'resources.memory' must be at least "
				   "6m (Docker's minimum), got '%s'",
				   ml_cfg_q(c, v->scalar));
		else
			pb->resources.memory_bytes = b;
	}
	if ((v = ml_ymap_get(n, "gpus"))) {
		if (v->type == ML_YSCALAR && !strcmp(v->scalar, "all"))
			pb->resources.gpus = -1;
		else if (!strcmp(ml_cfg_kind(v), "an integer"))
			get_int(c, v, "resources.gpus", 0, 64,
				&pb->resources.gpus);
		else
			ml_cfg_err(c, v,
				   "'resources.gpus' must be a number of "
				   "GPUs or 'all', got %s",
				   ml_cfg_kind(v));
	}
}

/* ---- env, secrets, names ----------------------------------------------- */

static void parse_secrets(struct ml_cfgctx *c, struct ml_playbook *pb,
			  const struct ml_ynode *n)
{
	size_t i, j;

	ml_cfg_strlist(c, n, "secrets", false, &pb->secrets);
	for (i = 0; i < pb->secrets.n; i++) {
		const char *s = pb->secrets.v[i];

		if (!ml_cfg_is_ident(s)) {
			ml_cfg_err_pos(c, pb->secrets.pos[i],
				       "invalid secret name '%s' (%s)",
				       ml_cfg_q(c, s), ident_rule);
			continue;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(pb->secrets.v[j], s))
				break;
		if (j < i) {
			ml_cfg_err_pos(c, pb->secrets.pos[i],
				       "secret '%s' is listed twice", s);
			continue;
		}
		for (j = 0; j < pb->env.n; j++)
			if (!strcmp(pb->env.v[j].key, s))
				break;
		if (j < pb->env.n)
			ml_cfg_err_pos(c, pb->secrets.pos[i],
				       "'%s' is both in 'env' and in 'secrets' "
				       "(a secret's value must not be in git)",
				       s);
	}
}

/* Target and load-balancer host lists: non-empty, valid names, no name
 * twice. Existence is checked by the resolver. */
static void check_names(struct ml_cfgctx *c, const struct ml_ynode *n,
			const char *path, const struct ml_strlist *l)
{
	size_t i, j;

	if (!n->nitems && n->type == ML_YSEQ)
		ml_cfg_err(c, n, "'%s' must name at least one host or group",
			   path);
	for (i = 0; i < l->n; i++) {
		if (!ml_cfg_is_name(l->v[i])) {
			ml_cfg_err_pos(c, l->pos[i],
				       "'%s' names an invalid "
				       "host or group '%s'",
				       path, ml_cfg_q(c, l->v[i]));
			continue;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(l->v[i], l->v[j]))
				break;
		if (j < i)
			ml_cfg_err_pos(c, l->pos[i], "'%s' lists '%s' twice",
				       path, l->v[i]);
	}
}

/* ---- rollout ----------------------------------------------------------- */

static void parse_batch(struct ml_cfgctx *c, struct ml_rollout_spec *r,
			const struct ml_ynode *n)
{
	const char *kind = ml_cfg_kind(n);
	int pct;

	if (!strcmp(kind, "an integer")) {
		if (get_int(c, n, "rollout.batch", 1, 100000,
			    &r->batch_count) == 0)
			r->batch_percent = 0;
		return;
	}
	if (n->type != ML_YSCALAR || !strchr(n->scalar, '%')) {
		ml_cfg_err(c, n,
			   "'rollout.batch' must be a number of hosts or "
			   "a percentage such as '25%%', got %s",
			   kind);
		return;
	}
	pct = parse_percent(n->scalar);
	if (pct < 1 || pct > 100) {
		ml_cfg_err(c, n,
			   "'rollout.batch' must be between 1%% and "
			   "100%%, got '%s'",
			   ml_cfg_q(c, n->scalar));
		return;
	}
	r->batch_percent = pct;
	r->batch_count = 0;
}

static void parse_canary(struct ml_cfgctx *c, struct ml_rollout_spec *r,
			 const struct ml_ynode *n)
{
	size_t i;

	if (ml_cfg_want_seq(c, n, "rollout.canary") < 0)
		return;
	r->canary_percent = ml_xcalloc(n->nitems, sizeof(int));
	for (i = 0; i < n->nitems; i++) {
		const struct ml_ynode *it = n->items[i];
		int pct;

		if (it->type != ML_YSCALAR) {
			ml_cfg_err(c, it,
				   "'rollout.canary[%zu]' must be a "
				   "percentage such as '10%%', got %s",
				   i, ml_cfg_kind(it));
			continue;
		}
		pct = parse_percent(it->scalar);
		if (pct < 0) {
			ml_cfg_err(c, it,
				   "'rollout.canary[%zu]' must be a "
				   "percentage such as '10%%', got '%s'",
				   i, ml_cfg_q(c, it->scalar));
			continue;
		}
		if (pct < 1 || pct > 99) {
			ml_cfg_err(c, it,
				   "'rollout.canary[%zu]' must be "
				   "between 1%% and 99%%, got '%s'",
				   i, it->scalar);
			continue;
		}
		if (r->canary_n && pct <= r->canary_percent[r->canary_n - 1]) {
			ml_cfg_err(c, it,
				   "'rollout.canary[%zu]' must be more "
				   "than the step before it (%d%%), got '%s'",
				   i, r->canary_percent[r->canary_n - 1],
				   it->scalar);
			continue;
		}
		r->canary_percent[r->canary_n++] = pct;
	}
}

static void parse_rollout(struct ml_cfgctx *c, struct ml_playbook *pb,
			  const struct ml_ynode *n)
{
	struct ml_rollout_spec *r = &pb->rollout;
	const struct ml_ynode *v;

	if (ml_cfg_want_map(c, n, "rollout") < 0)
		return;
	ml_cfg_check_keys(c, n, rollout_keys);
	if ((v = ml_ymap_get(n, "batch")))
		parse_batch(c, r, v);
	if ((v = ml_ymap_get(n, "failure_budget")))
		get_int(c, v, "rollout.failure_budget", 0, 100000,
			&r->failure_budget);
	if ((v = ml_ymap_get(n, "auto_rollback")))
		ml_cfg_bool(c, v, "rollout.auto_rollback", &r->auto_rollback);
	if ((v = ml_ymap_get(n, "drain_timeout")))
		ml_cfg_duration(c, v, "rollout.drain_timeout",
				&r->drain_timeout_ms);
	if ((v = ml_ymap_get(n, "standby")))
		ml_cfg_bool(c, v, "rollout.standby", &r->standby);
	if ((v = opt(n, "canary"))) {
		/* maps are weighted steps (canary.c), strings host shares */
		if (v->type == ML_YSEQ && v->nitems &&
		    v->items[0]->type == ML_YMAP)
			ml_canary_parse_steps(c, r, v);
		else
			parse_canary(c, r, v);
	}
	if ((v = opt(n, "analysis")))
		ml_analysis_parse(c, &r->analysis, v);
	if ((v = opt(n, "verify")))
		ml_verify_parse(c, &r->verify, v);
}

/* ---- prune ----------------------------------------------------------- */

static void parse_prune(struct ml_cfgctx *c, struct ml_playbook *pb,
			const struct ml_ynode *n)
{
	struct ml_prune_spec *p = &pb->prune;
	const struct ml_ynode *v;

	if (ml_cfg_want_map(c, n, "prune") < 0)
		return;
	ml_cfg_check_keys(c, n, prune_keys);
	if ((v = ml_ymap_get(n, "retain")))
		get_int(c, v, "prune.retain", 1, 1000, &p->retain);
	if ((v = ml_ymap_get(n, "after_deploy")))
		ml_cfg_bool(c, v, "prune.after_deploy", &p->after_deploy);
	if ((v = opt(n, "disk_budget")))
		ml_cfg_size(c, v, "prune.disk_budget", &p->disk_budget);
}

/* ---- load balancer ----------------------------------------------------- */

/*
 * A key naming a secret (load_balancer.tls.cert, metrics.password): the
 * value never comes from git, only the name of the secret that holds it.
 */
static char *secret_name(struct ml_cfgctx *c, const struct ml_ynode *v,
			 const char *path)
{
	char *s;

	if (ml_cfg_str(c, v, path, &s) < 0)
		return NULL;
	if (!ml_cfg_is_ident(s)) {
		/* not quoted: it may be the secret itself, by mistake */
		ml_cfg_err(c, v,
			   "'%s' must be the name of a secret (%s), not a "
			   "value or a path: the value goes in the secrets "
			   "file or MLCTL_SECRET_<NAME>, never in git",
			   path, ident_rule);
		free(s);
		return NULL;
	}
	return s;
}

static void parse_tls(struct ml_cfgctx *c, struct ml_playbook *pb,
		      const struct ml_ynode *n)
{
	const struct ml_ynode *v;

	if (ml_cfg_want_map(c, n, "load_balancer.tls") < 0)
		return;
	ml_cfg_check_keys(c, n, tls_keys);
	if (!(v = ml_ymap_get(n, "cert")))
		ml_cfg_err(c, n,
			   "missing required key 'cert' in "
			   "'load_balancer.tls' (the secret holding the "
			   "PEM certificate)");
	else
		pb->lb.tls_cert = secret_name(c, v, "load_balancer.tls.cert");
	if (!(v = ml_ymap_get(n, "key")))
		ml_cfg_err(c, n,
			   "missing required key 'key' in "
			   "'load_balancer.tls' (the secret holding the "
			   "PEM private key)");
	else
		pb->lb.tls_key = secret_name(c, v, "load_balancer.tls.key");
	if (pb->lb.tls_cert && pb->lb.tls_key &&
	    !strcmp(pb->lb.tls_cert, pb->lb.tls_key))
		ml_cfg_err(c, v,
			   "'load_balancer.tls.cert' and "
			   "'load_balancer.tls.key' are both '%s': keep the "
			   "certificate and the key in two secrets",
			   pb->lb.tls_key);
	if ((v = opt(n, "redirect_http")))
		get_int(c, v, "load_balancer.tls.redirect_http", 1, 65535,
			&pb->lb.tls_redirect_port);
}

/* enum ml_balance counts the words of common/balance.h, in their order */
_Static_assert(ML_BALANCE_RANDOM - ML_BALANCE_ROUNDROBIN + 1 ==
		       ML_BALANCE_COUNT,
	       "enum ml_balance and ml_balance_words differ");

const char *ml_balance_name(enum ml_balance b)
{
	if (b < ML_BALANCE_ROUNDROBIN || (size_t)b > ML_BALANCE_COUNT)
		return ml_balance_words[0];
	return ml_balance_words[b - ML_BALANCE_ROUNDROBIN];
}

static void parse_lb(struct ml_cfgctx *c, struct ml_playbook *pb,
		     const struct ml_ynode *n)
{
	const char *const *balances = ml_balance_words;
	const size_t nbalances = ML_BALANCE_COUNT;
	const struct ml_ynode *v;

	if (ml_cfg_want_map(c, n, "load_balancer") < 0)
		return;
	ml_cfg_check_keys(c, n, lb_keys);
	v = ml_ymap_get(n, "hosts");
	if (!v) {
		ml_cfg_err(c, n,
			   "missing required key 'hosts' in "
			   "'load_balancer'");
	} else {
		ml_cfg_strlist(c, v, "load_balancer.hosts", true,
			       &pb->lb.hosts);
		check_names(c, v, "load_balancer.hosts", &pb->lb.hosts);
	}
	if ((v = ml_ymap_get(n, "listen")))
		get_int(c, v, "load_balancer.listen", 1, 65535,
			&pb->lb.listen_port);
	if ((v = ml_ymap_get(n, "balance"))) {
		char *s;
		size_t i;

		if (ml_cfg_str(c, v, "load_balancer.balance", &s) == 0) {
			for (i = 0; i < nbalances; i++)
				if (!strcmp(s, balances[i]))
					break;
			if (i < nbalances) {
				pb->lb.balance = (enum ml_balance)(i + 1);
			} else {
				const char *sg = ml_cfg_suggest(
					s, balances, nbalances);

				ml_cfg_err(c, v,
					   "'load_balancer.balance' must "
					   "be roundrobin, leastconn or "
					   "random, got '%s'%s%s%s",
					   ml_cfg_q(c, s),
					   sg ? " (did you mean '" : "",
					   sg ? sg : "", sg ? "'?)" : "");
			}
			free(s);
		}
	}
	if ((v = ml_ymap_get(n, "tls")))
		parse_tls(c, pb, v);
	if (pb->lb.tls_redirect_port &&
	    pb->lb.tls_redirect_port == pb->lb.listen_port)
		ml_cfg_err(c, ml_ymap_get(n, "tls"),
			   "'load_balancer.tls.redirect_http' is the listen "
			   "port %d: redirect from another port (often 80 "
			   "with listen 443)",
			   pb->lb.listen_port);
}

/* ---- logs, metrics ------------------------------------------------------ */

static void parse_logs(struct ml_cfgctx *c, struct ml_playbook *pb,
		       const struct ml_ynode *n)
{
	const struct ml_ynode *v;
	int64_t b;

	if (ml_cfg_want_map(c, n, "logs") < 0)
		return;
	ml_cfg_check_keys(c, n, logs_keys);
	if ((v = ml_ymap_get(n, "max_size")) &&
	    ml_cfg_size(c, v, "logs.max_size", &b) == 0) {
		/* below this Docker rotates on nearly every line */
		if (b < ((int64_t)64 << 10))
			ml_cfg_err(c, v,
				   "'logs.max_size' must be at least 64k, "
				   "got '%s'",
				   ml_cfg_q(c, v->scalar));
		else
			pb->logs.max_size_bytes = b;
	}
	if ((v = ml_ymap_get(n, "max_files")))
		get_int(c, v, "logs.max_files", 1, 100, &pb->logs.max_files);
}

/* An IP literal: the exporter binds one address, never a name. */
static bool is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

static void parse_metrics(struct ml_cfgctx *c, struct ml_playbook *pb,
			  const struct ml_ynode *n)
{
	const struct ml_ynode *v;
	char *s;

	if (ml_cfg_want_map(c, n, "metrics") < 0)
		return;
	ml_cfg_check_keys(c, n, metrics_keys);
	if ((v = opt(n, "path")) && ml_cfg_str(c, v, "metrics.path", &s) == 0) {
		if (s[0] != '/' || strpbrk(s, " \t\r\n#\"'\\"))
			ml_cfg_err(c, v,
				   "'metrics.path' must be a URL path starting "
				   "with '/', got '%s'",
				   ml_cfg_q(c, s));
		free(pb->metrics.path);
		pb->metrics.path = s;
	}
	if ((v = ml_ymap_get(n, "port")))
		get_int(c, v, "metrics.port", 1, 65535, &pb->metrics.port);
	if ((v = opt(n, "bind")) && ml_cfg_str(c, v, "metrics.bind", &s) == 0) {
		if (!is_ip(s))
			ml_cfg_err(c, v,
				   "'metrics.bind' must be an IP address, got "
				   "'%s'",
				   ml_cfg_q(c, s));
		else if (!strcmp(s, "0.0.0.0") || !strcmp(s, "::"))
			ml_cfg_err(c, v,
				   "'metrics.bind' must be one address, not "
				   "'%s': the exporter has no password",
				   s);
		free(pb->metrics.bind);
		pb->metrics.bind = s;
	}
	if ((v = opt(n, "user")) && ml_cfg_str(c, v, "metrics.user", &s) == 0) {
		if (!ml_cfg_is_ident(s))
			ml_cfg_err(c, v, "'metrics.user' must be a user name "
					 "(%s), got '%s'",
				   ident_rule, ml_cfg_q(c, s));
		free(pb->metrics.user);
		pb->metrics.user = s;
	}
	if ((v = opt(n, "password"))) {
		free(pb->metrics.password);
		pb->metrics.password = secret_name(c, v, "metrics.password");
	}
	if (!opt(n, "user") != !opt(n, "password"))
		ml_cfg_err(c, n,
			   "'metrics.user' and 'metrics.password' go "
			   "together: the exporter asks for both");
	if ((v = opt(n, "scrape_from"))) {
		size_t i;

		ml_cfg_strlist(c, v, "metrics.scrape_from", false,
			       &pb->metrics.scrape_from);
		for (i = 0; i < pb->metrics.scrape_from.n; i++)
			if (!is_ip(pb->metrics.scrape_from.v[i]))
				ml_cfg_err_pos(c, pb->metrics.scrape_from.pos[i],
					       "'metrics.scrape_from' must list "
					       "IP addresses, got '%s'",
					       ml_cfg_q(c, pb->metrics
								   .scrape_from
								   .v[i]));
	}
}

/* ---- the whole file ---------------------------------------------------- */

static void set_defaults(struct ml_playbook *pb)
{
	pb->port = 0;
	pb->health.path = ml_xstrdup("/healthz");
	pb->health.interval_ms = 2000;
	pb->health.timeout_ms = 1000;
	pb->health.start_period_ms = 60000;
	pb->health.healthy_threshold = 1;
	pb->health.unhealthy_threshold = 3;
	pb->replicas = 1;
	pb->rollout.batch_count = 1;
	pb->rollout.batch_percent = 0;
	pb->rollout.failure_budget = 0;
	pb->rollout.auto_rollback = true;
	pb->rollout.drain_timeout_ms = 30000;
	ml_canary_defaults(&pb->rollout);
	pb->lb.listen_port = 80;
	pb->lb.balance = ML_BALANCE_ROUNDROBIN;
	ml_security_defaults(&pb->security);
	pb->prune.retain = 3;
	pb->prune.after_deploy = true;
	pb->logs.max_size_bytes = (int64_t)10 << 20;
	pb->logs.max_files = 3;
	pb->metrics.port = 8404;
}

static void parse_root(struct ml_cfgctx *c, struct ml_playbook *pb,
		       const struct ml_ynode *root)
{
	static const char *const required[] = {
		"app",
		"image",
		"port",
		"targets",
	};
	const struct ml_ynode *v;
	size_t i;

	ml_cfg_check_keys(c, root, top_keys);
	for (i = 0; i < ML_ARRAY_SIZE(required); i++)
		if (!ml_ymap_get(root, required[i]))
			ml_cfg_err(c, root, "missing required key '%s'",
				   required[i]);
	if ((v = ml_ymap_get(root, "app")))
		parse_app(c, pb, v);
	if ((v = ml_ymap_get(root, "image")))
		parse_image(c, pb, v);
	if ((v = ml_ymap_get(root, "port")))
		get_int(c, v, "port", 1, 65535, &pb->port);
	if ((v = opt(root, "health")))
		parse_health(c, pb, v);
	if ((v = ml_ymap_get(root, "replicas")))
		get_int(c, v, "replicas", 1, ML_MAX_REPLICAS, &pb->replicas);
	if ((v = opt(root, "env")))
		ml_cfg_kvmap(c, v, "env", ml_cfg_is_ident, ident_rule,
			     &pb->env);
	if ((v = opt(root, "secrets")))
		parse_secrets(c, pb, v);
	if ((v = opt(root, "resources")))
		parse_resources(c, pb, v);
	if ((v = opt(root, "logs")))
		parse_logs(c, pb, v);
	if ((v = opt(root, "metrics")))
		parse_metrics(c, pb, v);
	if ((v = ml_ymap_get(root, "targets"))) {
		/* names that did parse are checked even if some did not */
		ml_cfg_strlist(c, v, "targets", true, &pb->targets);
		check_names(c, v, "targets", &pb->targets);
	}
	if ((v = opt(root, "rollout")))
		parse_rollout(c, pb, v);
	if ((v = ml_ymap_get(root, "load_balancer")))
		parse_lb(c, pb, v);
	if ((v = opt(root, "security")))
		ml_security_parse(c, &pb->security, v);
	if ((v = opt(root, "prune")))
		parse_prune(c, pb, v);
}

int ml_playbook_parse(struct ml_playbook **out, const char *name,
		      const char *data, size_t len, struct ml_diags *diags)
{
	struct ml_cfgctx c = {.file = name, .diags = diags};
	struct ml_ynode *root = NULL;
	struct ml_playbook *pb;
	size_t before = diags->n;
	int rc;

	*out = NULL;
	rc = ml_yaml_load(&root, name, data, len, NULL, diags);
	if (rc < 0)
		return rc;
	pb = ml_xcalloc(1, sizeof(*pb));
	pb->file = ml_xstrdup(name);
	set_defaults(pb);
	if (!root)
		ml_diags_add(diags, name, 1, 1,
			     "the playbook is empty (it "
			     "needs at least 'app', 'image', 'port' and "
			     "'targets')");
	else if (root->type != ML_YMAP)
		ml_cfg_err(&c, root, "the playbook must be a mapping, got %s",
			   ml_cfg_kind(root));
	else
		parse_root(&c, pb, root);
	ml_ynode_free(root);
	if (diags->n > before) {
		ml_playbook_free(pb);
		return ml_err_set(ML_EINVALID, "'%s' is not valid", name);
	}
	*out = pb;
	return 0;
}

void ml_playbook_free(struct ml_playbook *pb)
{
	if (!pb)
		return;
	free(pb->file);
	free(pb->app);
	free(pb->image.ref);
	free(pb->image.context);
	free(pb->image.dockerfile);
	ml_kvlist_release(&pb->image.build_args);
	free(pb->health.path);
	free(pb->health.expect_body);
	free(pb->health.expect_json_field);
	free(pb->health.expect_json_value);
	ml_kvlist_release(&pb->env);
	ml_strlist_release(&pb->secrets);
	ml_strlist_release(&pb->targets);
	free(pb->rollout.canary_percent);
	ml_canary_release(&pb->rollout);
	ml_strlist_release(&pb->lb.hosts);
	free(pb->lb.tls_cert);
	ml_security_release(&pb->security);
	free(pb->metrics.path);
	free(pb->metrics.bind);
	free(pb->metrics.user);
	free(pb->metrics.password);
	free(pb->lb.tls_key);
	ml_strlist_release(&pb->metrics.scrape_from);
	free(pb);
}
