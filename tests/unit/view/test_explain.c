/*
 * Unit tests of orchestrator/view/explain.c and `mlctl explain`: every key of
 * both schemas, found by walking the schema files of the source tree here
 * (independently of the code under test), is explained with a type, a
 * description taken from the schema, and an example; the embedded
 * schemas are the files of the tree; unknown keys get a "did you mean";
 * and every example, dropped into a minimal valid file, is still valid
 * for mlctl's own parser.
 */
#include "common/ml.h"
#include "orchestrator/view/explain.h"
#include "orchestrator/config/config.h"
#include "tests/support/proc.h"

#include <jansson.h>
#include <setjmp.h>
#include <cmocka.h>

struct walk {
	json_t *root;
	char *keys[512];
	json_t *nodes[512];
	size_t n;
};

static json_t *deref(json_t *root, json_t *n)
{
	const char *ref = json_string_value(json_object_get(n, "$ref"));

	if (ref && !strncmp(ref, "#/$defs/", 8))
		return json_object_get(json_object_get(root, "$defs"), ref + 8);
	return n;
}

static void walk(struct walk *w, json_t *n, const char *path, int depth);

static void walk_props(struct walk *w, json_t *n, const char *path,
		       int depth)
{
	const char *k;
	json_t *v, *b;
	size_t i;

	json_object_foreach(json_object_get(n, "properties"), k, v) {
		char *p = *path ? ml_xasprintf("%s.%s", path, k)
				: ml_xstrdup(k);
		size_t j;

		for (j = 0; j < w->n; j++)
			if (!strcmp(w->keys[j], p))
				break;
		if (j < w->n) {
			free(p);
			continue;
		}
		w->keys[w->n] = p;
		w->nodes[w->n++] = v;
		walk(w, deref(w->root, v), p, depth + 1);
	}
	v = json_object_get(n, "additionalProperties");
	if (json_is_object(v)) {
		char *p = ml_xasprintf("%s.NAME", path);

		w->keys[w->n] = p;
		w->nodes[w->n++] = v;
		walk(w, deref(w->root, v), p, depth + 1);
	}
	json_array_foreach(json_object_get(n, "oneOf"), i, b)
		walk_props(w, deref(w->root, b), path, depth);
}

static void walk(struct walk *w, json_t *n, const char *path, int depth)
{
	if (depth < 10 && w->n < 500)
		walk_props(w, n, path, depth);
}

static void load(struct walk *w, const char *file, const char *prefix)
{
	char *text = ml_test_read_src(file);

	memset(w, 0, sizeof(*w));
	w->root = json_loads(text, 0, NULL);
	assert_non_null(w->root);
	walk(w, w->root, prefix, 0);
	free(text);
}

static void release(struct walk *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		free(w->keys[i]);
	json_decref(w->root);
}

/* The first two words of the schema's description of node (its own
 * first, else its definition's), which the explanation must quote. */
static char *desc_start(struct walk *w, json_t *node)
{
	const char *d = json_string_value(json_object_get(node, "description"));
	size_t one;

	if (!d)
		d = json_string_value(json_object_get(deref(w->root, node),
						      "description"));
	assert_non_null(d);
	one = strcspn(d, " ");
	if (!d[one])
		return ml_xstrdup(d);
	return ml_xstrndup(d, one + 1 + strcspn(d + one + 1, " "));
}

static void check_all(const char *file, const char *prefix)
{
	struct walk w;
	size_t i;

	load(&w, file, prefix);
	assert_true(w.n > 10);
	for (i = 0; i < w.n; i++) {
		struct ml_buf out = ML_BUF_INIT(1 << 20);
		char *start = desc_start(&w, w.nodes[i]);
		int rc = ml_explain(&out, w.keys[i]);

		if (rc < 0)
			fail_msg("explain %s: %s", w.keys[i], ml_err_msg());
		if (!strstr(out.data, "TYPE:     ") ||
		    strstr(out.data, "TYPE:     any") ||
		    !strstr(out.data, "\nEXAMPLE:\n") ||
		    !strstr(out.data, start))
			fail_msg("explain %s is missing a part:\n%s",
				 w.keys[i], out.data);
		free(start);
		ml_buf_release(&out);
	}
	release(&w);
}

static void test_explain__every_playbook_key(void **state)
{
	ML_UNUSED(state);
	check_all("schema/playbook.schema.json", "");
}

static void test_explain__every_inventory_key(void **state)
{
	ML_UNUSED(state);
	check_all("schema/inventory.schema.json", "inventory");
}

/* ml_explain_keys lists exactly the keys the schemas have. */
static void test_explain__key_list_is_complete(void **state)
{
	const char *const *keys;
	struct walk a, b;
	size_t n = 0, i, k;

	ML_UNUSED(state);
	load(&a, "schema/playbook.schema.json", "");
	load(&b, "schema/inventory.schema.json", "inventory");
	assert_int_equal(ml_explain_keys(&keys), 0);
	while (keys[n])
		n++;
	assert_int_equal(n, a.n + b.n);
	for (i = 0; i < a.n + b.n; i++) {
		const char *want = i < a.n ? a.keys[i] : b.keys[i - a.n];

		for (k = 0; k < n; k++)
			if (!strcmp(keys[k], want))
				break;
		if (k == n)
			fail_msg("key %s is not listed", want);
	}
	free((void *)keys);
	release(&a);
	release(&b);
}

static void test_explain__known_output(void **state)
{
	struct ml_buf out = ML_BUF_INIT(1 << 20);

	ML_UNUSED(state);
	assert_int_equal(ml_explain(&out, "rollout.canary"), 0);
	assert_non_null(strstr(out.data, "KEY:      rollout.canary\n"
					 "FILE:     mlctl.yaml (the playbook)\n"
					 "TYPE:     list of string or mapping or "
					 "null\n"
					 "DEFAULT:  []\n"));
	assert_non_null(strstr(out.data, "EXAMPLE:\n"
					 "    rollout:\n"
					 "      canary:\n"
					 "        - {\"weight\":\"10%\",\"for\":\"2m\"}\n"));
	ml_buf_reset(&out);

	/* a user-named entry, by any name */
	assert_int_equal(ml_explain(&out, "inventory.hosts.gpu7.ssh.port"), 0);
	assert_non_null(strstr(out.data, "TYPE:     integer\n"
					 "DEFAULT:  22\n"
					 "VALUES:   1 to 65535\n"));
	assert_non_null(strstr(out.data, "    hosts:\n      gpu7:\n"
					 "        ssh:\n          port: 22\n"));
	ml_buf_reset(&out);

	/* a mapping lists its keys; required ones say so */
	assert_int_equal(ml_explain(&out, "load_balancer"), 0);
	assert_non_null(strstr(out.data, "KEYS:\n    hosts "));
	assert_non_null(strstr(out.data, "    balance "));
	ml_buf_reset(&out);
	assert_int_equal(ml_explain(&out, "app"), 0);
	assert_non_null(strstr(out.data, "DEFAULT:  none (required)\n"));
	ml_buf_reset(&out);
	assert_int_equal(ml_explain(&out, "load_balancer.balance"), 0);
	assert_non_null(strstr(out.data, "VALUES:   one of roundrobin, "
					 "leastconn, random\n"));
	ml_buf_reset(&out);

	/* an inventory key without its prefix is still found */
	assert_int_equal(ml_explain(&out, "groups"), 0);
	assert_non_null(strstr(out.data, "KEY:      inventory.groups\n"));
	ml_buf_release(&out);
}

static void test_explain__unknown_keys(void **state)
{
	struct ml_buf out = ML_BUF_INIT(1 << 20);

	ML_UNUSED(state);
	assert_int_equal(ml_explain(&out, "rollout.canery"), ML_ENOTFOUND);
	assert_string_equal(ml_err_msg(), "no key 'rollout.canery' in "
					  "mlctl.yaml (did you mean "
					  "'rollout.canary'?)");
	assert_int_equal(ml_explain(&out, "rolout"), ML_ENOTFOUND);
	assert_non_null(strstr(ml_err_msg(), "(did you mean 'rollout'?)"));
	/* a key without its parents */
	assert_int_equal(ml_explain(&out, "canary"), ML_ENOTFOUND);
	assert_non_null(strstr(ml_err_msg(), "'rollout.canary'"));
	assert_int_equal(ml_explain(&out, "inventory.hsots"), ML_ENOTFOUND);
	assert_string_equal(ml_err_msg(), "no key 'inventory.hsots' in "
					  "inventory.yaml (did you mean "
					  "'inventory.hosts'?)");
	assert_int_equal(ml_explain(&out, "zzzz"), ML_ENOTFOUND);
	assert_string_equal(ml_err_msg(), "no key 'zzzz' in mlctl.yaml");
	assert_int_equal(ml_explain(&out, "rollout..batch"), ML_EUSAGE);
	assert_int_equal(ml_explain(&out, "rollout."), ML_EUSAGE);
	assert_int_equal(out.len, 0);
	ml_buf_release(&out);
}

/* What is embedded is what the tree holds (a stale build would explain
 * keys the parser no longer has). */
static void test_explain__embedded_schemas_are_current(void **state)
{
	extern const unsigned char ml_schema_playbook[];
	extern const unsigned char ml_schema_inventory[];
	char *pb = ml_test_read_src("schema/playbook.schema.json");
	char *inv = ml_test_read_src("schema/inventory.schema.json");

	ML_UNUSED(state);
	assert_string_equal((const char *)ml_schema_playbook, pb);
	assert_string_equal((const char *)ml_schema_inventory, inv);
	free(pb);
	free(inv);
}

/* The examples of the playbook, as explain prints them, merged into a
 * minimal playbook, are accepted by the parser validate uses. */
static void test_explain__examples_validate(void **state)
{
	static const char *const keys[] = {
		"image", "health", "env", "secrets", "resources", "rollout",
		"load_balancer", "replicas", "targets", "port", "app",
		"prune", "logs", "metrics",
	};
	static const char base_app[] = "app: demo\n";
	static const char base_image[] = "image: demo:1\n";
	static const char base_port[] = "port: 8000\n";
	static const char base_targets[] = "targets: all\n";
	size_t i;

	ML_UNUSED(state);
	for (i = 0; i < ML_ARRAY_SIZE(keys); i++) {
		struct ml_buf out = ML_BUF_INIT(1 << 20), doc = ML_BUF_INIT(1 << 20);
		struct ml_diags diags = { 0 };
		struct ml_playbook *pb = NULL;
		const char *ex, *line;

		assert_int_equal(ml_explain(&out, keys[i]), 0);
		ex = strstr(out.data, "\nEXAMPLE:\n");
		assert_non_null(ex);
		ex += strlen("\nEXAMPLE:\n");
		/* unindent the example's lines (4 spaces) */
		for (line = ex; *line && !strncmp(line, "    ", 4);) {
			size_t len = strcspn(line, "\n");

			ml_buf_add(&doc, line + 4, len - 4);
			ml_buf_addch(&doc, '\n');
			line += len + (line[len] == '\n');
		}
		if (strcmp(keys[i], "app"))
			ml_buf_addstr(&doc, base_app);
		if (strcmp(keys[i], "image"))
			ml_buf_addstr(&doc, base_image);
		if (strcmp(keys[i], "port"))
			ml_buf_addstr(&doc, base_port);
		if (strcmp(keys[i], "targets"))
			ml_buf_addstr(&doc, base_targets);
		if (ml_playbook_parse(&pb, "mlctl.yaml", doc.data, doc.len,
				      &diags) < 0) {
			ml_diags_print(&diags, stderr);
			fail_msg("the example of %s does not parse:\n%s",
				 keys[i], doc.data);
		}
		ml_playbook_free(pb);
		ml_diags_release(&diags);
		ml_buf_release(&out);
		ml_buf_release(&doc);
	}
}

/* `mlctl explain` itself: output, exit codes. */
static void test_explain__mlctl_binary(void **state)
{
	struct ml_test_out o;
	char *dir = ml_test_tmpdir("explain");

	ML_UNUSED(state);
	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "explain", "rollout.canary",
					     NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "KEY:      rollout.canary"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "explain", "inventory.hosts",
					     NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "FILE:     inventory.yaml"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "explain", "rollout.canery",
					     NULL });
	assert_int_equal(o.status, 11);
	assert_non_null(strstr(o.err, "did you mean 'rollout.canary'?"));
	ml_test_out_release(&o);

	/* no key: both files, top level */
	ml_test_mlctl(&o, dir, NULL, (const char *const[]){ "explain", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "KEY:      playbook"));
	assert_non_null(strstr(o.out, "KEY:      inventory"));
	ml_test_out_release(&o);
	ml_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_explain__every_playbook_key),
		cmocka_unit_test(test_explain__every_inventory_key),
		cmocka_unit_test(test_explain__key_list_is_complete),
		cmocka_unit_test(test_explain__known_output),
		cmocka_unit_test(test_explain__unknown_keys),
		cmocka_unit_test(test_explain__embedded_schemas_are_current),
		cmocka_unit_test(test_explain__examples_validate),
		cmocka_unit_test(test_explain__mlctl_binary),
	};

	return cmocka_run_group_tests_name("view/explain", tests, NULL, NULL);
}
