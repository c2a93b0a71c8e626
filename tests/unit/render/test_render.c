/*
 * Tests of orchestrator/render: the Kubernetes manifests of the desired
 * state, as data and against a real validator.
 *
 *   - every example playbook in playbooks/ (paired with the inventory its
 *     row in playbooks/README.md names) renders, passes mlctl's checks and
 *     the offline validator (tests/k8s/validate.mjs, run with node);
 *   - every case in tests/data/render/NAME/ (a "case" file of key=value
 *     lines: playbook, inventory, commit and options) renders to exactly
 *     expected.yaml with exactly the warnings in "warnings"; the golden
 *     files validate too (MLCTL_UPDATE_EXPECTED=1 rewrites them: review
 *     the diff);
 *   - each manifest in tests/data/render/broken/ is rejected by the
 *     validator with the message its "# expect:" line names, so the
 *     validator is shown to reject what it must;
 *   - the GPU playbook asks for GPUs in limits only, selects GPU nodes and
 *     gives its startupProbe at least the start period;
 *   - mlctl's own checks catch what the schemas cannot see;
 *   - the emitter quotes every string a YAML reader could misread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/render/render.h"
#include "tests/support/k8s.h"
#include "tests/support/proc.h"

#include <dirent.h>
#include <unistd.h>

#define CASES "tests/data/render"

static char *src_path(const char *rel)
{
	return ml_xasprintf("%s/%s", ml_test_src(), rel);
}

/* Parse and resolve a playbook and an inventory of the source tree. */
static struct ml_config *load(const char *pb_rel, const char *inv_rel,
			      const char *commit)
{
	char *pb = ml_test_read_src(pb_rel), *inv = ml_test_read_src(inv_rel);
	struct ml_diags d = {0};
	struct ml_playbook *p = NULL;
	struct ml_inventory *i = NULL;
	struct ml_config *cfg = NULL;

	if (ml_playbook_parse(&p, pb_rel, pb, strlen(pb), &d) < 0 ||
	    ml_inventory_parse(&i, inv_rel, inv, strlen(inv), &d) < 0 ||
	    ml_config_resolve(&cfg, p, i, &d) < 0) {
		ml_diags_print(&d, stderr);
		fail_msg("'%s' with '%s' is not valid", pb_rel, inv_rel);
	}
	if (commit)
		cfg->commit = ml_xstrdup(commit);
	ml_diags_release(&d);
	free(pb);
	free(inv);
	return cfg;
}

/* Render, check and emit; the YAML stream in *yaml, the warnings as
 * "key: msg" lines in *warns (may be NULL). Returns the documents. */
static json_t *render(const struct ml_config *cfg,
		      const struct ml_render_opts *o, char **yaml, char **warns)
{
	struct ml_render_warns w = {0};
	struct ml_buf b = ML_BUF_INIT(0), wb = ML_BUF_INIT(0);
	json_t *docs = NULL, *problems = json_array(), *d;
	size_t i;

	assert_int_equal(ml_render_k8s(&docs, &w, cfg, o), 0);
	if (ml_render_check(problems, docs)) {
		json_array_foreach(problems, i, d) {
			print_error("%s\n", json_string_value(d));
		}
		fail_msg("mlctl's checks refuse the manifests of '%s'",
			 cfg->playbook->app);
	}
	json_array_foreach(docs, i, d) {
		size_t mark = b.len;

		assert_int_equal(ml_render_yaml(&b, d), 0);
		if (ml_render_yaml_verify(b.data + mark, b.len - mark, d) < 0)
			fail_msg("%s", ml_err_msg());
	}
	for (i = 0; i < w.n; i++)
		ml_buf_addf(&wb, "%s: %s\n", w.v[i].key, w.v[i].msg);
	*yaml = ml_buf_detach(&b, NULL);
	if (warns)
		*warns = ml_buf_detach(&wb, NULL);
	ml_buf_release(&wb);
	ml_render_warns_release(&w);
	json_decref(problems);
	return docs;
}

static void validate_ok(const char *const *files)
{
	struct ml_test_out o;

	if (ml_test_k8s_validate(&o, files) != 0)
		fail_msg("the validator refused:\n%s%s", o.out, o.err);
	ml_test_out_release(&o);
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
	ml_test_write(dir, name, text);
	return ml_xasprintf("%s/%s", dir, name);
}

/* ---- every example playbook ------------------------------------------- */

/*
 * The inventory playbooks/README.md pairs with playbook file (its table
 * row "| `file` | ... | `inventory/x.yaml` |"), or NULL.
 */
static char *paired_inventory(const char *readme, const char *file)
{
	char *row = ml_xasprintf("| `%s` |", file);
	const char *p = strstr(readme, row), *end, *inv;
	char *out = NULL;

	free(row);
	if (!p)
		return NULL;
	end = strchr(p, '\n');
	inv = strstr(p, "`inventory/");
	if (inv && (!end || inv < end)) {
		const char *close = strchr(inv + 1, '`');

		if (close && (!end || close < end))
			out = ml_xstrndup(inv + 1, (size_t)(close - inv - 1));
	}
	return out;
}

static void test_render__every_example_playbook_validates(void **state)
{
	char *dir = src_path("playbooks"),
	     *readme = ml_test_read_src("playbooks/README.md");
	char *tmp = ml_test_tmpdir("render");
	struct dirent **names = NULL;
	const char *files[64];
	char *paths[64];
	size_t nfiles = 0, i;
	int n, k;

	ML_UNUSED(state);
	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (k = 0; k < n; k++) {
		const char *name = names[k]->d_name;
		size_t len = strlen(name);

		if (len > 5 && !strcmp(name + len - 5, ".yaml")) {
			struct ml_render_opts o = {0};
			char *pb = ml_xasprintf("playbooks/%s", name);
			char *inv = paired_inventory(readme, name);
			struct ml_config *cfg;
			char *yaml, *out;
			json_t *docs;

			if (!inv)
				fail_msg("playbooks/README.md names no "
					 "inventory for '%s'",
					 name);
			cfg = load(pb, inv,
				   "fedcba9876543210fedcba9876543210"
				   "fedcba98");
			docs = render(cfg, &o, &yaml, NULL);
			out = ml_xasprintf("%.*s.k8s.yaml", (int)(len - 5),
					   name);
			assert_true(nfiles < ML_ARRAY_SIZE(files));
			paths[nfiles] = write_tmp(tmp, out, yaml);
			files[nfiles] = paths[nfiles];
			nfiles++;
			/* and the Argo form of the same */
			o.rollouts = true;
			json_decref(docs);
			free(yaml);
			docs = render(cfg, &o, &yaml, NULL);
			free(out);
			out = ml_xasprintf("%.*s.rollouts.yaml", (int)(len - 5),
					   name);
			assert_true(nfiles < ML_ARRAY_SIZE(files));
			paths[nfiles] = write_tmp(tmp, out, yaml);
			files[nfiles] = paths[nfiles];
			nfiles++;
			json_decref(docs);
			free(yaml);
			free(out);
			ml_config_free(cfg);
			free(pb);
			free(inv);
		}
		free(names[k]);
	}
	free(names);
	assert_true(nfiles >= 4); /* example.yaml and gpu.yaml at least */
	files[nfiles] = NULL;
	validate_ok(files);
	for (i = 0; i < nfiles; i++)
		free(paths[i]);
	ml_test_rmtree(tmp);
	free(tmp);
	free(dir);
	free(readme);
}

/* ---- golden cases ------------------------------------------------------ */

struct kase {
	char *playbook, *inventory, *commit;
	char *namespace, *registry, *digest;
	bool rollouts, read_only_root;
};

static void kase_release(struct kase *k)
{
	free(k->playbook);
	free(k->inventory);
	free(k->commit);
	free(k->namespace);
	free(k->registry);
	free(k->digest);
}

static void kase_read(struct kase *k, const char *file)
{
	char *text = ml_test_slurp(file), *line, *next, *eq;

	memset(k, 0, sizeof(*k));
	for (line = text; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			fail_msg("%s: '%s' is not key=value", file, line);
		*eq++ = '\0';
		if (!strcmp(line, "playbook"))
			k->playbook = ml_xstrdup(eq);
		else if (!strcmp(line, "inventory"))
			k->inventory = ml_xstrdup(eq);
		else if (!strcmp(line, "commit"))
			k->commit = ml_xstrdup(eq);
		else if (!strcmp(line, "namespace"))
			k->namespace = ml_xstrdup(eq);
		else if (!strcmp(line, "image_registry"))
			k->registry = ml_xstrdup(eq);
		else if (!strcmp(line, "image_digest"))
			k->digest = ml_xstrdup(eq);
		else if (!strcmp(line, "rollouts"))
			k->rollouts = !strcmp(eq, "1");
		else if (!strcmp(line, "read_only_root"))
			k->read_only_root = !strcmp(eq, "1");
		else
			fail_msg("%s: unknown key '%s'", file, line);
	}
	if (!k->playbook || !k->inventory)
		fail_msg("%s: playbook and inventory are required", file);
	free(text);
}

static bool same_or_update(const char *path, const char *got)
{
	const char *upd = getenv("MLCTL_UPDATE_EXPECTED");
	struct ml_buf b = ML_BUF_INIT(0);
	bool same;

	if (upd && !strcmp(upd, "1")) {
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs(got, f);
		fclose(f);
		return true;
	}
	if (ml_buf_read_file(&b, path) < 0)
		fail_msg("cannot read '%s' (MLCTL_UPDATE_EXPECTED=1 makes it)",
			 path);
	same = !strcmp(ml_buf_str(&b), got);
	if (!same)
		print_error("%s differs; got:\n%s---\n", path, got);
	ml_buf_release(&b);
	return same;
}

static void test_render__golden_cases(void **state)
{
	char *dir = src_path(CASES);
	struct dirent **names = NULL;
	const char *files[64];
	char *paths[64];
	size_t nfiles = 0, i;
	int n, k, bad = 0;

	ML_UNUSED(state);
	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (k = 0; k < n; k++) {
		char *cdir = ml_xasprintf("%s/%s", dir, names[k]->d_name);
		char *cfile = ml_xasprintf("%s/case", cdir);
		char *exp, *wexp, *yaml, *warns;
		struct ml_render_opts o = {0};
		struct ml_config *cfg;
		struct kase c;
		json_t *docs;

		free(names[k]);
		if (access(cfile, R_OK) < 0) {
			free(cdir);
			free(cfile);
			continue;
		}
		kase_read(&c, cfile);
		o.namespace = c.namespace;
		o.image_registry = c.registry;
		o.image_digest = c.digest;
		o.rollouts = c.rollouts;
		o.read_only_root = c.read_only_root;
		cfg = load(c.playbook, c.inventory, c.commit);
		docs = render(cfg, &o, &yaml, &warns);
		exp = ml_xasprintf("%s/expected.yaml", cdir);
		wexp = ml_xasprintf("%s/warnings", cdir);
		bad += !same_or_update(exp, yaml);
		bad += !same_or_update(wexp, warns);
		assert_true(nfiles < ML_ARRAY_SIZE(files));
		paths[nfiles] = exp;
		files[nfiles++] = exp;
		json_decref(docs);
		ml_config_free(cfg);
		kase_release(&c);
		free(yaml);
		free(warns);
		free(wexp);
		free(cdir);
		free(cfile);
	}
	free(names);
	assert_int_equal(bad, 0);
	assert_true(nfiles >= 3);
	files[nfiles] = NULL;
	validate_ok(files);
	for (i = 0; i < nfiles; i++)
		free(paths[i]);
	free(dir);
}

/* The same input gives the same bytes, and a changed commit changes only
 * the lines that name it. */
static void test_render__deterministic(void **state)
{
	struct ml_config *a =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml",
		     "1111111111111111111111111111111111111111");
	struct ml_config *b =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml",
		     "1111111111111111111111111111111111111111");
	struct ml_render_opts o = {0};
	char *ya, *yb;
	json_t *da, *db;

	ML_UNUSED(state);
	da = render(a, &o, &ya, NULL);
	db = render(b, &o, &yb, NULL);
	assert_string_equal(ya, yb);
	json_decref(da);
	json_decref(db);
	free(ya);
	free(yb);
	ml_config_free(a);
	ml_config_free(b);
}

/* ---- the validator rejects what it must -------------------------------- */

static void test_render__validator_rejects_broken_manifests(void **state)
{
	char *dir = src_path(CASES "/broken");
	struct dirent **names = NULL;
	int n, k, ran = 0;

	ML_UNUSED(state);
	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (k = 0; k < n; k++) {
		char *path = ml_xasprintf("%s/%s", dir, names[k]->d_name);
		const char *files[] = {path, NULL};
		struct ml_test_out o;
		char *text, *expect, *nl;

		if (names[k]->d_name[0] == '.') {
			free(path);
			free(names[k]);
			continue;
		}
		text = ml_test_slurp(path);
		if (strncmp(text, "# expect: ", 10))
			fail_msg("%s: the first line must be '# expect: ...'",
				 path);
		nl = strchr(text, '\n');
		expect = ml_xstrndup(text + 10, (size_t)(nl - text - 10));
		assert_int_equal(ml_test_k8s_validate(&o, files), 1);
		if (!strstr(o.err, expect))
			fail_msg("%s: expected '%s' in:\n%s", path, expect,
				 o.err);
		assert_null(strstr(o.out, "valid"));
		ml_test_out_release(&o);
		free(expect);
		free(text);
		free(path);
		free(names[k]);
		ran++;
	}
	free(names);
	free(dir);
	assert_true(ran >= 5);
}

/* ---- the GPU playbook -------------------------------------------------- */

static const json_t *find_kind(const json_t *docs, const char *kind)
{
	const json_t *d;
	size_t i;

	json_array_foreach(docs, i, d) {
		if (!strcmp(json_string_value(json_object_get(d, "kind")),
			    kind))
			return d;
	}
	return NULL;
}

static const json_t *at(const json_t *v, const char *path)
{
	const char *p = path, *dot;
	char *tok;

	while (v && *p) {
		/* "nvidia.com/gpu" is one key: a dot before a slash is not a
		 * separator */
		dot = strchr(p, '.');
		if (dot && strchr(p, '/') && strchr(p, '/') > dot &&
		    !strchr(dot + 1, '.'))
			dot = NULL;
		tok = dot ? ml_xstrndup(p, (size_t)(dot - p)) : ml_xstrdup(p);
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok))
				     : json_object_get(v, tok);
		free(tok);
		p = dot ? dot + 1 : p + strlen(p);
	}
	return v;
}

static void test_render__gpu_playbook(void **state)
{
	struct ml_config *cfg =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml", NULL);
	struct ml_render_opts o = {0};
	const json_t *dep, *ct, *sp;
	int64_t budget, start_s;
	char *yaml, *warns;
	json_t *docs;

	ML_UNUSED(state);
	docs = render(cfg, &o, &yaml, &warns);
	dep = find_kind(docs, "Deployment");
	assert_non_null(dep);
	ct = at(dep, "spec.template.spec.containers.0");
	assert_non_null(ct);
	/* GPUs in limits, never in requests */
	assert_string_equal(
		json_string_value(at(ct, "resources.limits.nvidia.com/gpu")),
		"1");
	assert_null(json_object_get(at(ct, "resources.requests"),
				    "nvidia.com/gpu"));
	assert_non_null(strstr(warns, "resources.gpus: 'all'"));
	/* placed on the nodes labelled like the GPU hosts */
	assert_string_equal(
		json_string_value(
			at(dep, "spec.template.spec.nodeSelector.gpu")),
		"true");
	assert_null(at(dep, "spec.template.spec.nodeSelector.gpu_model"));
	/* the startup budget covers the 10-minute model load */
	sp = json_object_get(ct, "startupProbe");
	budget = json_integer_value(json_object_get(sp, "periodSeconds")) *
		 json_integer_value(json_object_get(sp, "failureThreshold"));
	start_s = cfg->playbook->health.start_period_ms / 1000;
	assert_int_equal(start_s, 600);
	assert_true(budget >= start_s);
	assert_true(json_integer_value(
			    at(dep, "spec.progressDeadlineSeconds")) > budget);
	/* 3 GPU hosts, 1 replica each; a quarter at a time, none missing */
	assert_int_equal(json_integer_value(at(dep, "spec.replicas")), 3);
	assert_string_equal(
		json_string_value(
			at(dep, "spec.strategy.rollingUpdate.maxSurge")),
		"25%");
	assert_int_equal(
		json_integer_value(
			at(dep, "spec.strategy.rollingUpdate.maxUnavailable")),
		0);
	/* the secrets by name, never a value: files in /run/secrets, as
	 * the agent gives them (security.secrets_as: files) */
	assert_string_equal(
		json_string_value(at(dep, "spec.template.spec.volumes.0.secret."
					  "secretName")),
		"llm-serve-secrets");
	assert_string_equal(
		json_string_value(at(ct, "volumeMounts.0.mountPath")),
		"/run/secrets");
	assert_null(json_object_get(ct, "env"));
	assert_null(find_kind(docs, "Secret"));
	/* the canary is said, not dropped */
	assert_non_null(strstr(warns, "rollout.canary:"));
	json_decref(docs);
	free(yaml);
	free(warns);
	ml_config_free(cfg);
}

static void test_render__rollouts_keep_the_canary_steps(void **state)
{
	struct ml_config *cfg =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml", NULL);
	struct ml_render_opts o = {.rollouts = true};
	const json_t *ro, *steps;
	char *yaml;
	json_t *docs;

	ML_UNUSED(state);
	docs = render(cfg, &o, &yaml, NULL);
	assert_null(find_kind(docs, "Deployment"));
	ro = find_kind(docs, "Rollout");
	assert_non_null(ro);
	steps = at(ro, "spec.strategy.canary.steps");
	assert_int_equal(json_array_size(steps), 4);
	assert_int_equal(json_integer_value(at(steps, "0.setWeight")), 10);
	assert_non_null(at(steps, "1.pause"));
	assert_int_equal(json_integer_value(at(steps, "2.setWeight")), 50);
	json_decref(docs);
	free(yaml);
	ml_config_free(cfg);
}

/* The playbook's security and metrics keys, each where Kubernetes says
 * it. */
static void test_render__security_and_metrics(void **state)
{
	struct ml_config *cfg =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml", NULL);
	struct ml_security_spec *sec = &cfg->playbook->security;
	struct ml_render_opts o = {0};
	const json_t *dep, *ct, *sc;
	char *yaml, *warns;
	json_t *docs;

	ML_UNUSED(state);
	sec->secrets_env = true;
	sec->no_new_privileges = false;
	sec->read_only_root = true;
	sec->init = 1;
	free(sec->restart);
	sec->restart = ml_xstrdup("on-failure");
	sec->cap_add.v = ml_xcalloc(1, sizeof(char *));
	sec->cap_add.v[0] = ml_xstrdup("NET_BIND_SERVICE");
	sec->cap_add.n = 1;
	cfg->playbook->metrics.path = ml_xstrdup("/metrics");
	docs = render(cfg, &o, &yaml, &warns);
	dep = find_kind(docs, "Deployment");
	ct = at(dep, "spec.template.spec.containers.0");
	sc = json_object_get(ct, "securityContext");
	assert_string_equal(
		json_string_value(at(ct, "env.1.valueFrom.secretKeyRef.key")),
		"API_KEYS");
	assert_true(
		json_is_true(json_object_get(sc, "allowPrivilegeEscalation")));
	assert_true(
		json_is_true(json_object_get(sc, "readOnlyRootFilesystem")));
	assert_string_equal(json_string_value(at(sc, "capabilities.add.0")),
			    "NET_BIND_SERVICE");
	assert_string_equal(json_string_value(at(sc, "capabilities.drop.0")),
			    "ALL");
	assert_string_equal(
		json_string_value(at(ct, "volumeMounts.0.mountPath")), "/tmp");
	assert_true(json_is_true(
		at(dep, "spec.template.spec.shareProcessNamespace")));
	assert_string_equal(
		json_string_value(json_object_get(
			at(dep, "spec.template.metadata.annotations"),
			"prometheus.io/path")),
		"/metrics");
	assert_non_null(strstr(warns, "security.restart: 'on-failure'"));
	json_decref(docs);
	free(yaml);
	free(warns);
	ml_config_free(cfg);
}

/* ---- mlctl's own checks ------------------------------------------------ */

/* One mutation of a good tree and the message it must produce. */
static void expect_problem(const char *what, void (*mutate)(json_t *docs),
			   const char *msg)
{
	struct ml_config *cfg =
		load("playbooks/gpu.yaml", "inventory/gpu-fleet.yaml", NULL);
	struct ml_render_warns w = {0};
	json_t *docs = NULL, *problems = json_array(), *p;
	bool found = false;
	size_t i;

	assert_int_equal(
		ml_render_k8s(&docs, &w, cfg, &(struct ml_render_opts){0}), 0);
	assert_int_equal(ml_render_check(problems, docs), 0);
	mutate(docs);
	assert_true(ml_render_check(problems, docs) > 0);
	json_array_foreach(problems, i, p) {
		found = found || strstr(json_string_value(p), msg);
	}
	if (!found) {
		char *s = json_dumps(problems, 0);

		fail_msg("%s: no problem says '%s': %s", what, msg, s);
	}
	json_decref(problems);
	json_decref(docs);
	ml_render_warns_release(&w);
	ml_config_free(cfg);
}

static json_t *mut_obj(json_t *docs, const char *kind, const char *path)
{
	return (json_t *)at(find_kind(docs, kind), path);
}

static void sel_value(json_t *docs)
{
	json_object_set_new(
		mut_obj(docs, "Deployment", "spec.selector.matchLabels"),
		"app.kubernetes.io/name", json_string("other"));
}

static void sel_extra(json_t *docs)
{
	json_object_set_new(
		mut_obj(docs, "Deployment", "spec.selector.matchLabels"),
		"tier", json_string("web"));
}

static void sel_empty(json_t *docs)
{
	json_object_clear(
		mut_obj(docs, "Deployment", "spec.selector.matchLabels"));
}

static void svc_selector(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Service", "spec.selector"),
			    "app.kubernetes.io/name", json_string("llm"));
}

static void pdb_selector(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "PodDisruptionBudget",
				    "spec.selector.matchLabels"),
			    "x", json_string("y"));
}

static void no_image(json_t *docs)
{
	json_object_del(
		mut_obj(docs, "Deployment", "spec.template.spec.containers.0"),
		"image");
}

static void id_image(json_t *docs)
{
	json_object_set_new(
		mut_obj(docs, "Deployment", "spec.template.spec.containers.0"),
		"image", json_string("sha256:abc"));
}

static void bad_name(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "ConfigMap", "metadata"), "name",
			    json_string("Env_Of_App"));
}

static void svc_digit_name(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Service", "metadata"), "name",
			    json_string("1llm"));
}

static void gpu_request(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Deployment",
				    "spec.template.spec.containers.0."
				    "resources.requests"),
			    "nvidia.com/gpu", json_string("1"));
}

static void bad_label(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Service", "metadata.labels"), "-bad",
			    json_string("x"));
}

static void bad_target_port(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Service", "spec.ports.0"),
			    "targetPort", json_string("web"));
}

static void bad_namespace(json_t *docs)
{
	json_object_set_new(mut_obj(docs, "Deployment", "metadata"),
			    "namespace", json_string("ML"));
}

static void test_render__checks_catch_what_schemas_miss(void **state)
{
	ML_UNUSED(state);
	expect_problem("selector value", sel_value,
		       "spec.selector.matchLabels 'app.kubernetes.io/name' is "
		       "not a label of the pod template");
	expect_problem("selector extra", sel_extra,
		       "spec.selector.matchLabels 'tier' is not a label");
	expect_problem("selector empty", sel_empty,
		       "spec.selector.matchLabels is empty");
	expect_problem("service selector", svc_selector,
		       "Service 'llm-serve': spec.selector "
		       "'app.kubernetes.io/name' is not a label");
	expect_problem("pdb selector", pdb_selector,
		       "PodDisruptionBudget 'llm-serve': spec.selector."
		       "matchLabels 'x'");
	expect_problem("no image", no_image, "container 0: no image");
	expect_problem("image id", id_image, "container 0: no image");
	expect_problem(
		"name", bad_name,
		"ConfigMap 'Env_Of_App': metadata.name is not a DNS-1123 "
		"subdomain");
	expect_problem("service name", svc_digit_name,
		       "metadata.name is not a DNS-1035 label");
	expect_problem("gpu request", gpu_request,
		       "nvidia.com/gpu is in resources.requests");
	expect_problem("label key", bad_label,
		       "'-bad' is not a valid label key");
	expect_problem("target port", bad_target_port,
		       "targetPort 'web' is no container's port");
	expect_problem("namespace", bad_namespace,
		       "metadata.namespace is not a DNS-1123 label");
}

static void test_render__names(void **state)
{
	ML_UNUSED(state);
	assert_true(ml_k8s_is_dns_label("a"));
	assert_true(ml_k8s_is_dns_label("llm-serve-2"));
	assert_false(ml_k8s_is_dns_label("api-"));
	assert_false(ml_k8s_is_dns_label("-api"));
	assert_false(ml_k8s_is_dns_label("Api"));
	assert_false(ml_k8s_is_dns_label(""));
	assert_false(ml_k8s_is_dns_label("a234567890123456789012345678901234"
					 "567890123456789012345678901234"));
	assert_true(ml_k8s_is_dns_subdomain("a.b-c.d"));
	assert_false(ml_k8s_is_dns_subdomain("a..b"));
	assert_false(ml_k8s_is_dns1035_label("1abc"));
	assert_true(ml_k8s_is_label_key("app.kubernetes.io/name"));
	assert_true(ml_k8s_is_label_key("gpu_model"));
	assert_false(ml_k8s_is_label_key("a/b/c"));
	assert_false(ml_k8s_is_label_key("/name"));
	assert_false(ml_k8s_is_label_key("Bad_Prefix/name"));
	assert_true(ml_k8s_is_label_value(""));
	assert_true(ml_k8s_is_label_value("2024.06.1"));
	assert_false(ml_k8s_is_label_value("has space"));
	assert_false(ml_k8s_is_label_value("_lead"));
}

/* A playbook whose app name Kubernetes refuses is stopped by the checks,
 * and bad options are refused before anything is rendered. */
static void test_render__refuses(void **state)
{
	struct ml_config *cfg =
		load("playbooks/example.yaml", "inventory/example.yaml", NULL);
	struct ml_render_warns w = {0};
	struct ml_render_opts o = {0};
	json_t *docs = NULL, *problems = json_array();

	ML_UNUSED(state);
	o.namespace = "Prod";
	assert_int_equal(ml_render_k8s(&docs, &w, cfg, &o), ML_EINVALID);
	assert_null(docs);
	assert_non_null(strstr(ml_err_msg(), "namespace 'Prod'"));
	o.namespace = NULL;
	o.image_digest = "sha256:1234";
	assert_int_equal(ml_render_k8s(&docs, &w, cfg, &o), ML_EINVALID);
	o.image_digest = NULL;
	o.image_registry = "reg.example.com/a b";
	assert_int_equal(ml_render_k8s(&docs, &w, cfg, &o), ML_EINVALID);
	o.image_registry = NULL;

	/* "api-" passes the playbook's rule, not Kubernetes' */
	free(cfg->playbook->app);
	cfg->playbook->app = ml_xstrdup("api-");
	assert_int_equal(ml_render_k8s(&docs, &w, cfg, &o), 0);
	assert_true(ml_render_check(problems, docs) >= 3);
	json_decref(docs);
	json_decref(problems);
	ml_render_warns_release(&w);
	ml_config_free(cfg);
}

/* ---- the emitter -------------------------------------------------------- */

static void test_render__yaml_quotes_everything(void **state)
{
	struct ml_buf b = ML_BUF_INIT(0);
	json_t *doc = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:b,s:{},s:[],"
		"s:[s,{s:s,s:[i]}],s:s,s:s}",
		"on", "on", "Yes", "0755", "null", "~", "empty", "", "quote",
		"a\"b\\c", "lines", "one\ntwo\tthree\r", "ctl",
		"\x01\x7f\xc2\x85", "seps",
		"\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf", "text",
		"caf\xc3\xa9 \xe2\x9c\x93", "int", 42, "bool", 1, "map", "seq",
		"list", "x", "k", "v", "n", 1, "8080", "port", "has space",
		"v");
	const char *want = "---\n"
			   "\"on\": \"on\"\n"
			   "\"Yes\": \"0755\"\n"
			   "\"null\": \"~\"\n"
			   "empty: \"\"\n"
			   "quote: \"a\\\"b\\\\c\"\n"
			   "lines: \"one\\ntwo\\tthree\\x0d\"\n"
			   "ctl: \"\\x01\\x7f\\u0085\"\n"
			   "seps: \"\\u2028\\u2029\\ufeff\"\n"
			   "text: \"caf\xc3\xa9 \xe2\x9c\x93\"\n"
			   "int: 42\n"
			   "bool: true\n"
			   "map: {}\n"
			   "seq: []\n"
			   "list:\n"
			   "  - \"x\"\n"
			   "  - k: \"v\"\n"
			   "    \"n\":\n"
			   "      - 1\n"
			   "\"8080\": \"port\"\n"
			   "\"has space\": \"v\"\n";
	json_t *bad;

	ML_UNUSED(state);
	assert_non_null(doc);
	assert_int_equal(ml_render_yaml(&b, doc), 0);
	assert_string_equal(ml_buf_str(&b), want);
	json_decref(doc);

	/* text that is not UTF-8 has no YAML form: refused, nothing kept */
	ml_buf_reset(&b);
	bad = json_object();
	json_object_set_new(bad, "k", json_stringn_nocheck("a\xff", 2));
	assert_int_equal(ml_render_yaml(&b, bad), ML_EINVALID);
	assert_int_equal(b.len, 0);
	json_decref(bad);

	ml_buf_reset(&b);
	assert_int_equal(ml_render_yaml_comment(&b, "a\nb\xe2\x80\xa8"), 0);
	assert_string_equal(ml_buf_str(&b), "# a?b???\n");
	ml_buf_release(&b);
}

/* Every ASCII byte, the Unicode line and format characters, YAML's
 * indicators and words, in values and in keys: each document reads back
 * through libyaml (a YAML 1.1 reader) as exactly what was emitted. */
static void test_render__yaml_reads_back(void **state)
{
	static const char *const hostile[] = {
		"",
		" ",
		"  lead",
		"trail ",
		"- item",
		"? key",
		": x",
		"a: b",
		"#c",
		"a #c",
		"&anchor",
		"*alias",
		"!tag",
		"|",
		">",
		"%YAML",
		"@",
		"`",
		"'",
		"\"",
		"\\",
		"{a: 1}",
		"[1, 2]",
		",",
		"---",
		"...",
		"~",
		"null",
		"Null",
		"NULL",
		"true",
		"True",
		"on",
		"Off",
		"y",
		"N",
		"yes",
		"NO",
		"0",
		"-1",
		"0x1f",
		"0o17",
		"0755",
		"1e3",
		".5",
		".inf",
		"-.Inf",
		".nan",
		"1_000",
		"12:30:00",
		"2024-06-01",
		"=",
		"<<",
		"a\nb",
		"a\r\nb",
		"\n",
		"\t",
		"tab\tin",
		"\xc2\x85"
		"nel",
		"\xe2\x80\xa8ls",
		"\xe2\x80\xa9ps",
		"\xef\xbb\xbf"
		"bom",
		"\xef\xbf\xbe",
		"caf\xc3\xa9!",
		"\xf0\x9f\x98\x80",
	};
	struct ml_buf b = ML_BUF_INIT(0);
	char one[2] = {0, 0};
	json_t *doc;
	size_t i;
	int c;

	ML_UNUSED(state);
	for (c = 1; c < 0x80; c++) {
		one[0] = (char)c;
		doc = json_pack("{s:s,s:[s,{s:s}]}", one, one, "seq", one, "k",
				one);
		ml_buf_reset(&b);
		assert_int_equal(ml_render_yaml(&b, doc), 0);
		if (ml_render_yaml_verify(b.data, b.len, doc) < 0)
			fail_msg("byte 0x%02x: %s\n%s", c, ml_err_msg(),
				 ml_buf_str(&b));
		json_decref(doc);
	}
	for (i = 0; i < ML_ARRAY_SIZE(hostile); i++) {
		doc = json_pack("{s:s,s:{s:s},s:i,s:b}", hostile[i], hostile[i],
				"nested", hostile[i], hostile[i], "n", -7, "b",
				0);
		ml_buf_reset(&b);
		assert_int_equal(ml_render_yaml(&b, doc), 0);
		if (ml_render_yaml_verify(b.data, b.len, doc) < 0)
			fail_msg("'%s': %s\n%s", hostile[i], ml_err_msg(),
				 ml_buf_str(&b));
		json_decref(doc);
	}
	ml_buf_release(&b);
}

/* The check itself refuses what does not read back: a plain string, a
 * plain key YAML 1.1 reads as a boolean, a changed value. */
static int verify_text(const char *text, const json_t *doc)
{
	return ml_render_yaml_verify(text, strlen(text), doc);
}

static void test_render__yaml_verify_refuses(void **state)
{
	json_t *doc = json_pack("{s:s}", "k", "on");

	ML_UNUSED(state);
	assert_int_equal(verify_text("k: \"on\"\n", doc), 0);
	assert_int_equal(verify_text("k: on\n", doc), ML_EFAIL);
	assert_int_equal(verify_text("k: \"of\"\n", doc), ML_EFAIL);
	json_decref(doc);
	doc = json_pack("{s:s}", "on", "x");
	assert_int_equal(verify_text("on: \"x\"\n", doc), ML_EFAIL);
	assert_int_equal(verify_text("\"on\": \"x\"\n", doc), 0);
	assert_int_equal(verify_text("on: [\n", doc), ML_EFAIL);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render__every_example_playbook_validates),
		cmocka_unit_test(test_render__golden_cases),
		cmocka_unit_test(test_render__deterministic),
		cmocka_unit_test(
			test_render__validator_rejects_broken_manifests),
		cmocka_unit_test(test_render__gpu_playbook),
		cmocka_unit_test(test_render__rollouts_keep_the_canary_steps),
		cmocka_unit_test(test_render__security_and_metrics),
		cmocka_unit_test(test_render__checks_catch_what_schemas_miss),
		cmocka_unit_test(test_render__names),
		cmocka_unit_test(test_render__refuses),
		cmocka_unit_test(test_render__yaml_quotes_everything),
		cmocka_unit_test(test_render__yaml_reads_back),
		cmocka_unit_test(test_render__yaml_verify_refuses),
	};

	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
