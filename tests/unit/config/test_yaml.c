/*
 * Unit tests of the YAML loader (orchestrator/config/yaml.c) and of the
 * diagnostics list (orchestrator/config/diag.c): the tree and positions for
 * good input, and one clear diagnostic, with its place, for every kind of
 * bad or hostile input: limits, alias bombs, duplicate keys, bad encoding,
 * tabs, deep nesting, huge files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"

#include <time.h>

#include "orchestrator/config/yaml.h"

/* ---- helpers ------------------------------------------------------- */

static int load_lim(struct ml_ynode **out, struct ml_diags *d, const char *text,
		    const struct ml_ylimits *lim)
{
	return ml_yaml_load(out, "t.yaml", text, strlen(text), lim, d);
}

static struct ml_ynode *load_ok(const char *text)
{
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	int rc = load_lim(&n, &d, text, NULL);

	if (rc || d.n)
		ml_diags_print(&d, stderr);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	ml_diags_release(&d);
	return n;
}

/* Loading text fails with exactly one diagnostic at line:col whose
 * message contains want. */
static void expect_error_lim(const char *text, size_t len,
			     const struct ml_ylimits *lim, int line, int col,
			     const char *want)
{
	struct ml_diags d = {0};
	struct ml_ynode *n = (struct ml_ynode *)&d; /* must be reset */
	int rc = ml_yaml_load(&n, "t.yaml", text, len, lim, &d);

	if (d.n != 1 || !strstr(d.v[0].msg, want))
		ml_diags_print(&d, stderr);
	assert_int_equal(rc, ML_EINVALID);
	assert_null(n);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].file, "t.yaml");
	assert_non_null(strstr(d.v[0].msg, want));
	assert_int_equal(d.v[0].line, line);
	assert_int_equal(d.v[0].col, col);
	ml_diags_release(&d);
}

static void expect_error(const char *text, int line, int col, const char *want)
{
	expect_error_lim(text, strlen(text), NULL, line, col, want);
}

/* Processor time, so that a busy machine does not fail the timing tests. */
static double now_s(void)
{
	return (double)clock() / CLOCKS_PER_SEC;
}

static void assert_scalar(const struct ml_ynode *n, const char *s, bool plain,
			  int line, int col)
{
	assert_non_null(n);
	assert_int_equal(n->type, ML_YSCALAR);
	assert_string_equal(n->scalar, s);
	assert_int_equal(n->len, strlen(s));
	assert_int_equal(n->plain, plain);
	assert_int_equal(n->line, line);
	assert_int_equal(n->col, col);
}

/* The diagnostics as printed, in a malloc'd string. */
static char *print_diags(const struct ml_diags *d)
{
	FILE *f = tmpfile();
	char *s;
	long n;

	assert_non_null(f);
	ml_diags_print(d, f);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	s = ml_xcalloc((size_t)n + 1, 1);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return s;
}

/* ---- good input ---------------------------------------------------- */

static void test_yaml__mapping_sequence_positions(void **state)
{
	struct ml_ynode *n = load_ok("app: web\n"
				     "port: 8080\n"
				     "targets:\n"
				     "  - gpu-1\n"
				     "  - 'gpu-2'\n"
				     "health: {path: /healthz, retries: 3}\n");
	const struct ml_ynode *t, *h;

	assert_non_null(n);
	assert_int_equal(n->type, ML_YMAP);
	assert_int_equal(n->line, 1);
	assert_int_equal(n->col, 1);
	assert_int_equal(n->npairs, 4);
	assert_scalar(n->pairs[0].key, "app", true, 1, 1);
	assert_scalar(n->pairs[0].value, "web", true, 1, 6);
	assert_scalar(n->pairs[1].value, "8080", true, 2, 7);
	t = ml_ymap_get(n, "targets");
	assert_non_null(t);
	assert_int_equal(t->type, ML_YSEQ);
	assert_int_equal(t->line, 4);
	assert_int_equal(t->col, 3);
	assert_int_equal(t->nitems, 2);
	assert_scalar(t->items[0], "gpu-1", true, 4, 5);
	assert_scalar(t->items[1], "gpu-2", false, 5, 5);
	h = ml_ymap_get(n, "health");
	assert_int_equal(h->type, ML_YMAP);
	assert_int_equal(h->line, 6);
	assert_int_equal(h->col, 9);
	assert_scalar(ml_ymap_get(h, "retries"), "3", true, 6, 35);
	assert_null(ml_ymap_get(n, "missing"));
	assert_null(ml_ymap_get(t, "app"));
	ml_ynode_free(n);
}

static void test_yaml__quoted_vs_plain(void **state)
{
	struct ml_ynode *n = load_ok("a: 1\n"
				     "b: \"1\"\n"
				     "c: '1'\n"
				     "d: !!str 1\n"
				     "e: |\n"
				     "  line one\n"
				     "  line two\n"
				     "f: >-\n"
				     "  folded\n"
				     "  text\n"
				     "g: \"tab\\there \\u00e9\"\n"
				     "h:\n"
				     "i: ~\n"
				     "j: !!int 3\n");

	assert_true(ml_ymap_get(n, "a")->plain);
	assert_false(ml_ymap_get(n, "b")->plain);
	assert_false(ml_ymap_get(n, "c")->plain);
	assert_false(ml_ymap_get(n, "d")->plain);
	assert_string_equal(ml_ymap_get(n, "d")->scalar, "1");
	assert_string_equal(ml_ymap_get(n, "e")->scalar,
			    "line one\nline two\n");
	assert_false(ml_ymap_get(n, "e")->plain);
	assert_string_equal(ml_ymap_get(n, "f")->scalar, "folded text");
	assert_string_equal(ml_ymap_get(n, "g")->scalar, "tab\there \xc3\xa9");
	assert_true(ml_yscalar_is_null(ml_ymap_get(n, "h")));
	assert_true(ml_yscalar_is_null(ml_ymap_get(n, "i")));
	assert_false(ml_yscalar_is_null(ml_ymap_get(n, "a")));
	assert_string_equal(ml_ymap_get(n, "j")->scalar, "3");
	assert_true(ml_ymap_get(n, "j")->plain);
	ml_ynode_free(n);
}

static void test_yaml__type_names_and_null(void **state)
{
	struct ml_ynode *n = load_ok("m: {}\ns: []\nx: text\nq: 'null'\n"
				     "z: null\n");

	assert_string_equal(ml_ynode_type_name(ml_ymap_get(n, "m")),
			    "a mapping");
	assert_string_equal(ml_ynode_type_name(ml_ymap_get(n, "s")),
			    "a sequence");
	assert_string_equal(ml_ynode_type_name(ml_ymap_get(n, "x")),
			    "a string");
	assert_string_equal(ml_ynode_type_name(ml_ymap_get(n, "z")), "null");
	assert_false(ml_yscalar_is_null(ml_ymap_get(n, "q")));
	assert_true(ml_yscalar_is_null(ml_ymap_get(n, "z")));
	assert_int_equal(ml_ymap_get(n, "m")->npairs, 0);
	assert_int_equal(ml_ymap_get(n, "s")->nitems, 0);
	ml_ynode_free(n);
}

static void test_yaml__empty_input(void **state)
{
	static const char *const empty[] = {
		"",	 "\n\n",  "# only a comment\n# and another\n",
		"   \n", "---\n", "--- # nothing\n...\n",
		"~\n",
	};
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(empty); i++) {
		struct ml_diags d = {0};
		struct ml_ynode *n = (struct ml_ynode *)&d;

		assert_int_equal(load_lim(&n, &d, empty[i], NULL), 0);
		assert_null(n);
		assert_int_equal(d.n, 0);
	}
	/* a NULL pointer with length 0 is an empty file too */
	{
		struct ml_diags d = {0};
		struct ml_ynode *n = (struct ml_ynode *)&d;

		assert_int_equal(ml_yaml_load(&n, "t", NULL, 0, NULL, &d), 0);
		assert_null(n);
	}
}

static void test_yaml__not_nul_terminated(void **state)
{
	/* the loader must stop at len, not at a NUL */
	char buf[] = {'a', ':', ' ', '1', 'x', 'y', 'z', ':', '!', '!'};
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;

	assert_int_equal(ml_yaml_load(&n, "t", buf, 4, NULL, &d), 0);
	assert_non_null(n);
	assert_string_equal(ml_ymap_get(n, "a")->scalar, "1");
	ml_ynode_free(n);
}

static void test_yaml__crlf_and_bom(void **state)
{
	struct ml_ynode *n = load_ok("\xef\xbb\xbf"
				     "a: 1\r\nb: 2\r\n");

	assert_int_equal(n->npairs, 2);
	assert_scalar(n->pairs[1].key, "b", true, 2, 1);
	assert_string_equal(ml_ymap_get(n, "a")->scalar, "1");
	ml_ynode_free(n);
}

static void test_yaml__playbook_file(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	const struct ml_ynode *prod, *env;

	assert_int_equal(ml_buf_read_file(&b, "tests/data/yaml/merge.yaml"), 0);
	assert_int_equal(
		ml_yaml_load(&n, "merge.yaml", b.data, b.len, NULL, &d), 0);
	assert_int_equal(d.n, 0);
	prod = ml_ymap_get(n, "production");
	assert_non_null(prod);
	assert_string_equal(ml_ymap_get(prod, "replicas")->scalar, "4");
	assert_string_equal(ml_ymap_get(prod, "port")->scalar, "8080");
	assert_null(ml_ymap_get(prod, "<<"));
	env = ml_ymap_get(prod, "env");
	assert_string_equal(ml_ymap_get(env, "LOG_LEVEL")->scalar, "warn");
	assert_string_equal(ml_ymap_get(env, "MODEL")->scalar, "resnet50");
	ml_ynode_free(n);
	ml_buf_release(&b);
}

/* ---- limits -------------------------------------------------------- */

static void test_yaml__size_limit_50mb(void **state)
{
	size_t len = (size_t)50 << 20;
	char *big = ml_xmalloc(len);
	struct ml_diags d = {0};
	struct ml_ynode *n = (struct ml_ynode *)&d;
	double t0;
	char *out;

	memset(big, 'a', len);
	t0 = now_s();
	assert_int_equal(ml_yaml_load(&n, "big.yaml", big, len, NULL, &d),
			 ML_EINVALID);
	assert_true(now_s() - t0 < 0.05);
	assert_null(n);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 0);
	assert_string_equal(d.v[0].msg, "file is 52428800 bytes, more than "
					"the limit of 1048576");
	out = print_diags(&d);
	assert_string_equal(out, "big.yaml: error: file is 52428800 bytes, "
				 "more than the limit of 1048576\n");
	free(out);
	ml_diags_release(&d);
	free(big);
}

static void test_yaml__size_limit_boundary(void **state)
{
	struct ml_ylimits lim = ml_ylimits_default;
	struct ml_ynode *n = NULL;
	struct ml_diags d = {0};

	lim.max_bytes = 6;
	assert_int_equal(load_lim(&n, &d, "a: 123", &lim), 0);
	assert_non_null(n);
	ml_ynode_free(n);
	expect_error_lim("a: 1234", 7, &lim, 0, 0,
			 "file is 7 bytes, more than the limit of 6");
}

static char *nested_flow(int depth)
{
	char *s = ml_xmalloc((size_t)depth * 2 + 1);

	memset(s, '[', (size_t)depth);
	memset(s + depth, ']', (size_t)depth);
	s[depth * 2] = '\0';
	return s;
}

static void test_yaml__depth_limit(void **state)
{
	char *ok = nested_flow(32), *bad = nested_flow(33);
	struct ml_ynode *n = load_ok(ok), *p;
	int depth = 0;

	for (p = n; p->type == ML_YSEQ && p->nitems; p = p->items[0])
		depth++;
	assert_int_equal(depth, 31); /* the innermost is empty */
	ml_ynode_free(n);
	expect_error(bad, 1, 33, "nesting deeper than 32 levels");
	free(ok);
	free(bad);
}

static void test_yaml__deep_flow_200(void **state)
{
	char *s = nested_flow(200);

	expect_error(s, 1, 33, "nesting deeper than 32 levels");
	free(s);
}

static void test_yaml__deep_block_200(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	int i, j;

	for (i = 0; i < 200; i++) {
		for (j = 0; j < i; j++)
			ml_buf_addch(&b, ' ');
		ml_buf_addf(&b, "k%d:\n", i);
	}
	/* the 33rd mapping starts at key k32, line 33, indented 32 */
	expect_error(b.data, 33, 33, "nesting deeper than 32 levels");

	ml_buf_reset(&b);
	for (i = 0; i < 200; i++) {
		for (j = 0; j < i * 2; j++)
			ml_buf_addch(&b, ' ');
		ml_buf_addstr(&b, "-\n");
	}
	expect_error(b.data, 33, 65, "nesting deeper than 32 levels");
	ml_buf_release(&b);
}

static void test_yaml__alias_limit(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	struct ml_ynode *n;
	int i;

	ml_buf_addstr(&b, "a: &x 1\nl:\n");
	for (i = 0; i < 100; i++)
		ml_buf_addstr(&b, "- *x\n");
	n = load_ok(b.data);
	assert_int_equal(ml_ymap_get(n, "l")->nitems, 100);
	ml_ynode_free(n);
	ml_buf_addstr(&b, "- *x\n");
	expect_error(b.data, 103, 3, "more than 100 aliases");
	ml_buf_release(&b);
}

static void test_yaml__node_limit(void **state)
{
	struct ml_ylimits lim = ml_ylimits_default;
	const char *ten = "[a, b, c, d, e, f, g, h, i]"; /* 10 nodes */
	struct ml_ynode *n = NULL;
	struct ml_diags d = {0};

	lim.max_nodes = 10;
	assert_int_equal(load_lim(&n, &d, ten, &lim), 0);
	ml_ynode_free(n);
	expect_error_lim("[a, b, c, d, e, f, g, h, i, j]", 30, &lim, 1, 29,
			 "document has more than 10 nodes");
}

static void test_yaml__node_limit_default(void **state)
{
	/* 1 MiB of "[0,0,0,...]" has far more than 100000 nodes */
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	ml_buf_addch(&b, '[');
	while (b.len < 1000000)
		ml_buf_addstr(&b, "0,");
	ml_buf_addch(&b, ']');
	expect_error(b.data, 1, 200000, "document has more than 100000 nodes");
	ml_buf_release(&b);
}

static void test_yaml__scalar_limit(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	struct ml_ynode *n;

	ml_buf_addstr(&b, "k: ");
	while (b.len < 3 + 65536)
		ml_buf_addch(&b, 'x');
	n = load_ok(b.data);
	assert_int_equal(ml_ymap_get(n, "k")->len, 65536);
	ml_ynode_free(n);
	ml_buf_addch(&b, 'x');
	expect_error(b.data, 1, 4, "scalar longer than 65536 bytes");
	ml_buf_release(&b);
}

/* ---- aliases and merge keys ---------------------------------------- */

static void test_yaml__alias_copies(void **state)
{
	struct ml_ynode *n = load_ok("base: &b {image: m:1, port: 80}\n"
				     "web: *b\n"
				     "name: &n api\n"
				     "again: *n\n");
	const struct ml_ynode *base = ml_ymap_get(n, "base");
	const struct ml_ynode *web = ml_ymap_get(n, "web");

	assert_int_equal(web->type, ML_YMAP);
	assert_ptr_not_equal(web, base);
	assert_ptr_not_equal(web->pairs[0].key, base->pairs[0].key);
	assert_string_equal(ml_ymap_get(web, "image")->scalar, "m:1");
	assert_string_equal(ml_ymap_get(web, "port")->scalar, "80");
	assert_string_equal(ml_ymap_get(n, "again")->scalar, "api");
	ml_ynode_free(n);
}

static void test_yaml__alias_bomb(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	double t0;
	int i, j;

	ml_buf_addstr(&b, "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, "
			  "lol, lol, lol]\n");
	for (i = 1; i < 10; i++) {
		ml_buf_addf(&b, "l%d: &l%d [", i, i);
		for (j = 0; j < 10; j++)
			ml_buf_addf(&b, "%s*l%d", j ? ", " : "", i - 1);
		ml_buf_addstr(&b, "]\n");
	}
	t0 = now_s();
	/* l4 starts at 12360 nodes; its 8th *l3 (11111 nodes) passes */
	expect_error(b.data, 5, 45,
		     "document expands to more than 100000 nodes "
		     "(alias bomb?)");
	assert_true(now_s() - t0 < 0.5);
	ml_buf_release(&b);
}

static void test_yaml__alias_text_bomb(void **state)
{
	/* few nodes, much text: 100 copies of a 64 KiB string */
	struct ml_buf b = ML_BUF_INIT(4 << 20);
	struct ml_ylimits lim = ml_ylimits_default;
	size_t i;

	lim.max_bytes = 200000;
	ml_buf_addstr(&b, "s: &s ");
	for (i = 0; i < 65536; i++)
		ml_buf_addch(&b, 'x');
	ml_buf_addstr(&b, "\nl: [");
	for (i = 0; i < 60; i++)
		ml_buf_addstr(&b, "*s, ");
	ml_buf_addstr(&b, "]\n");
	/* 16 * 200000 bytes hold the original and 47 copies */
	expect_error_lim(b.data, b.len, &lim, 2, 5 + 47 * 4,
			 "document expands to more than 3200000 bytes");
	ml_buf_release(&b);
}

static void test_yaml__alias_depth(void **state)
{
	struct ml_ylimits lim = ml_ylimits_default;

	lim.max_depth = 3;
	/* &a is two deep; placed two deep it would reach four */
	expect_error_lim("a: &a [[1]]\nb: [*a]\n", 20, &lim, 2, 5,
			 "nesting deeper than 3 levels");
}

static void test_yaml__undefined_alias(void **state)
{
	expect_error("app: web\nport: *nope\n", 2, 7,
		     "undefined alias '*nope'");
	/* an anchor defined after its use does not count */
	expect_error("a: *x\nb: &x 1\n", 1, 4, "undefined alias '*x'");
}

static void test_yaml__recursive_alias(void **state)
{
	expect_error("a: &x [1, *x]\n", 1, 11,
		     "alias '*x' refers to a node that contains it");
}

static void test_yaml__anchor_redefined(void **state)
{
	struct ml_ynode *n = load_ok("a: &x 1\nb: &x 2\nc: *x\n");

	assert_string_equal(ml_ymap_get(n, "c")->scalar, "2");
	ml_ynode_free(n);
}

static void test_yaml__merge_key(void **state)
{
	struct ml_ynode *n = load_ok("base: &base {port: 80, replicas: 1}\n"
				     "more: &more {replicas: 9, gpus: 1}\n"
				     "one:\n"
				     "  replicas: 2\n"
				     "  <<: *base\n"
				     "two:\n"
				     "  <<: [*more, *base]\n"
				     "  app: x\n"
				     "three: {<<: {a: 1}, b: 2}\n");
	const struct ml_ynode *one = ml_ymap_get(n, "one");
	const struct ml_ynode *two = ml_ymap_get(n, "two");
	const struct ml_ynode *three = ml_ymap_get(n, "three");

	/* explicit keys win, even when written before "<<" */
	assert_int_equal(one->npairs, 2);
	assert_string_equal(ml_ymap_get(one, "replicas")->scalar, "2");
	assert_string_equal(ml_ymap_get(one, "port")->scalar, "80");
	assert_string_equal(one->pairs[1].key->scalar, "port");
	/* in a list, the first mapping to name a key wins */
	assert_int_equal(two->npairs, 4);
	assert_string_equal(ml_ymap_get(two, "replicas")->scalar, "9");
	assert_string_equal(ml_ymap_get(two, "port")->scalar, "80");
	assert_string_equal(ml_ymap_get(two, "gpus")->scalar, "1");
	assert_string_equal(two->pairs[3].key->scalar, "app");
	/* a flow "<<" works the same */
	assert_int_equal(three->npairs, 2);
	assert_string_equal(three->pairs[0].key->scalar, "a");
	assert_string_equal(ml_ymap_get(three, "b")->scalar, "2");
	ml_ynode_free(n);
}

static void test_yaml__merge_keeps_anchors(void **state)
{
	/* anchors inside a merged value must stay valid afterwards */
	struct ml_ynode *n = load_ok("a: {<<: &m {x: &v 1}, y: 2}\n"
				     "b: *m\n"
				     "c: *v\n");

	assert_string_equal(ml_ymap_get(ml_ymap_get(n, "a"), "x")->scalar, "1");
	assert_string_equal(ml_ymap_get(ml_ymap_get(n, "b"), "x")->scalar, "1");
	assert_string_equal(ml_ymap_get(n, "c")->scalar, "1");
	ml_ynode_free(n);
}

static void test_yaml__merge_non_string_key(void **state)
{
	/* found by fuzzing: a merged mapping whose key is not a string */
	expect_error("m: &m\n  ? [a]\n  : 1\n  b: 2\nx:\n  <<: *m\n", 2, 5,
		     "mapping keys must be strings, not a sequence");
}

static void test_yaml__merge_key_bad_value(void **state)
{
	expect_error("a:\n  <<: 3\n", 2, 7,
		     "the merge key '<<' needs a mapping or a sequence of "
		     "mappings, not a string");
	expect_error("a:\n  <<: [{x: 1}, [2]]\n", 2, 16,
		     "needs a mapping or a sequence of mappings, not a "
		     "sequence");
}

/* ---- keys ---------------------------------------------------------- */

static void test_yaml__duplicate_key(void **state)
{
	expect_error("port: 80\napp: web\nport: 81\n", 3, 1,
		     "duplicate key 'port' (first defined at line 1, "
		     "column 1)");
	expect_error("a: 1\n'a': 2\n", 2, 1,
		     "duplicate key 'a' (first defined at line 1, column 1)");
	expect_error("{x: 1, y: 2, x: 3}", 1, 14,
		     "duplicate key 'x' (first defined at line 1, column 2)");
}

static void test_yaml__duplicate_key_nested(void **state)
{
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	struct ml_ynode *ok;

	/* the same key in two mappings is fine */
	ok = load_ok("a: {k: 1}\nb: {k: 2}\n");
	ml_ynode_free(ok);
	expect_error("health:\n  path: /a\n  timeout: 1s\n  path: /b\n", 4, 3,
		     "duplicate key 'path' (first defined at line 2, "
		     "column 3)");
	/* every duplicate is reported, and parsing goes on after them */
	assert_int_equal(
		load_lim(&n, &d, "a: {k: 1, k: 2, k: 3}\nb: 1\nb: 2\n", NULL),
		ML_EINVALID);
	assert_null(n);
	assert_int_equal(d.n, 3);
	ml_diags_release(&d);
}

static void test_yaml__duplicate_key_escaped(void **state)
{
	/* control characters from the file do not reach the terminal */
	expect_error("\"a\\e[31m\": 1\n\"a\\e[31m\": 2\n", 2, 1,
		     "duplicate key 'a\\x1b[31m'");
}

static void test_yaml__many_duplicates_capped(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	int i;

	/* 20000 equal keys: sorted, not compared pairwise, and capped */
	for (i = 0; i < 20000; i++)
		ml_buf_addstr(&b, "k: 1\n");
	assert_int_equal(load_lim(&n, &d, b.data, NULL), ML_EINVALID);
	assert_true(d.n <= 51);
	assert_non_null(strstr(d.v[d.n - 1].msg, "too many errors"));
	ml_diags_release(&d);
	ml_buf_release(&b);
}

static void test_yaml__non_scalar_keys(void **state)
{
	expect_error("? [a, b]\n: 1\n", 1, 3,
		     "mapping keys must be strings, not a sequence");
	expect_error("{{a: 1}: 2}\n", 1, 2,
		     "mapping keys must be strings, not a mapping");
	expect_error("m: &m {a: 1}\n*m : 2\n", 2, 1,
		     "mapping keys must be strings, not a mapping");
}

/* ---- documents, encoding, syntax ----------------------------------- */

static void test_yaml__multi_document(void **state)
{
	struct ml_ynode *n;

	expect_error("a: 1\n---\nb: 2\n", 2, 1,
		     "more than one document in the file");
	expect_error("--- 1\n--- 2\n", 2, 1,
		     "more than one document in the file");
	n = load_ok("---\na: 1\n...\n# trailing comment\n");
	assert_int_equal(n->type, ML_YMAP);
	ml_ynode_free(n);
}

static void test_yaml__invalid_utf8(void **state)
{
	static const char bad[] = "app: web\nname: caf\xe9 bar\n";

	expect_error_lim(bad, sizeof(bad) - 1, NULL, 2, 10, "invalid UTF-8");
	expect_error("a: ok\nb: \xff\n", 2, 4,
		     "invalid UTF-8 (invalid leading UTF-8 octet 0xff)");
	expect_error("a: \xc3", 1, 4,
		     "invalid UTF-8 (incomplete UTF-8 octet sequence)");
	/* the column counts characters, not bytes */
	expect_error("\xc3\xa9t\xc3\xa9: \xc0\xaf\n", 1, 6, "invalid UTF-8");
	/* UTF-16 is not UTF-8 either */
	expect_error_lim("\xff\xfe"
			 "a\0:\0",
			 6, NULL, 1, 1, "file is UTF-16, not UTF-8");
}

static void test_yaml__control_chars(void **state)
{
	static const char nul[] = "a: b\0c\n";

	expect_error("a: \x01\n", 1, 4, "control character 0x01");
	expect_error("a: x\xef\xbf\xbe\n", 1, 5, "control character U+FFFE");
	expect_error_lim(nul, sizeof(nul) - 1, NULL, 1, 5,
			 "control character 0x00");
	expect_error("a: \"x\\0y\"\n", 1, 4,
		     "strings may not contain NUL characters");
}

static void test_yaml__tab_indentation(void **state)
{
	expect_error("a:\n\tb: 1\n", 2, 1,
		     "tab character used for indentation; YAML needs spaces");
	expect_error("a:\n  x: 1\n\ty: 2\n", 3, 1,
		     "tab character used for indentation; YAML needs spaces");
}

static void test_yaml__syntax_errors(void **state)
{
	expect_error("a: {b: 1 c: 2}\n", 1, 11,
		     "did not find expected ',' or '}' (while parsing a flow "
		     "mapping)");
	expect_error("a: 1\nb\nc: 2\n", 3, 1,
		     "could not find expected ':' (while scanning a simple "
		     "key at line 2, column 1)");
	expect_error("a: b: c\n", 1, 5,
		     "mapping values are not allowed in this context");
	expect_error("a: \"open\n", 2, 1,
		     "found unexpected end of stream (while scanning a "
		     "quoted scalar at line 1, column 4)");
}

static void test_yaml__tags(void **state)
{
	struct ml_ynode *n;

	expect_error("a: !!python/object:os.system x\n", 1, 4,
		     "tags are not allowed ('!!python/object:os.system')");
	expect_error("a: !Ref x\n", 1, 4, "tags are not allowed ('!Ref')");
	expect_error("a: !!binary aGk=\n", 1, 4, "tags are not allowed");
	expect_error("a: !!set {x}\n", 1, 4, "tags are not allowed");
	n = load_ok("a: !!map {x: !!seq [!!bool true, !!null , ! y]}\n");
	assert_int_equal(ml_ymap_get(n, "a")->type, ML_YMAP);
	ml_ynode_free(n);
}

/* ---- diagnostics list ---------------------------------------------- */

static void test_yaml__diags_sorted_print(void **state)
{
	struct ml_diags d = {0};
	char *out;

	ml_diags_add(&d, "mlctl.yaml", 4, 3, "could not find %s", "':'");
	ml_diags_add(&d, "inventory.yaml", 2, 1, "unknown key 'hots'");
	ml_diags_add(&d, "mlctl.yaml", 1, 9, "second at 1:9");
	ml_diags_add(&d, "mlctl.yaml", 0, 5, "no place");
	ml_diags_add(&d, "mlctl.yaml", 1, 9, "third at 1:9");
	ml_diags_add(&d, "mlctl.yaml", 1, 2, "first");
	ml_diags_add(&d, "mlctl.yaml", 12, 1, "bell \a here");
	assert_int_equal(d.n, 7);
	/* the list itself keeps insertion order */
	assert_string_equal(d.v[0].msg, "could not find ':'");
	assert_int_equal(d.v[3].col, 0);
	out = print_diags(&d);
	assert_string_equal(out,
			    "inventory.yaml:2:1: error: unknown key 'hots'\n"
			    "mlctl.yaml: error: no place\n"
			    "mlctl.yaml:1:2: error: first\n"
			    "mlctl.yaml:1:9: error: second at 1:9\n"
			    "mlctl.yaml:1:9: error: third at 1:9\n"
			    "mlctl.yaml:4:3: error: could not find ':'\n"
			    "mlctl.yaml:12:1: error: bell \\x07 here\n");
	free(out);
	ml_diags_release(&d);
	assert_null(d.v);
	assert_int_equal(d.n, 0);
	/* a released list can be used again */
	ml_diags_add(&d, NULL, 1, 1, "x");
	assert_string_equal(d.v[0].file, "");
	ml_diags_release(&d);
	/* an empty list prints nothing */
	out = print_diags(&d);
	assert_string_equal(out, "");
	free(out);
}

static void test_yaml__diags_accumulate(void **state)
{
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	char *out;

	/* diagnostics from two files go to one list, in order of place */
	assert_int_equal(
		ml_yaml_load(&n, "b.yaml", "x: 1\nx: 2\n", 10, NULL, &d),
		ML_EINVALID);
	assert_int_equal(ml_yaml_load(&n, "a.yaml", "y: [\n", 5, NULL, &d),
			 ML_EINVALID);
	out = print_diags(&d);
	assert_string_equal(out,
			    "a.yaml:2:1: error: did not find expected node "
			    "content (while parsing a flow node)\n"
			    "b.yaml:2:1: error: duplicate key 'x' (first "
			    "defined at line 1, column 1)\n");
	free(out);
	assert_int_equal(ml_err_code(), ML_EINVALID);
	ml_diags_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml__mapping_sequence_positions),
		cmocka_unit_test(test_yaml__quoted_vs_plain),
		cmocka_unit_test(test_yaml__type_names_and_null),
		cmocka_unit_test(test_yaml__empty_input),
		cmocka_unit_test(test_yaml__not_nul_terminated),
		cmocka_unit_test(test_yaml__crlf_and_bom),
		cmocka_unit_test(test_yaml__playbook_file),
		cmocka_unit_test(test_yaml__size_limit_50mb),
		cmocka_unit_test(test_yaml__size_limit_boundary),
		cmocka_unit_test(test_yaml__depth_limit),
		cmocka_unit_test(test_yaml__deep_flow_200),
		cmocka_unit_test(test_yaml__deep_block_200),
		cmocka_unit_test(test_yaml__alias_limit),
		cmocka_unit_test(test_yaml__node_limit),
		cmocka_unit_test(test_yaml__node_limit_default),
		cmocka_unit_test(test_yaml__scalar_limit),
		cmocka_unit_test(test_yaml__alias_copies),
		cmocka_unit_test(test_yaml__alias_bomb),
		cmocka_unit_test(test_yaml__alias_text_bomb),
		cmocka_unit_test(test_yaml__alias_depth),
		cmocka_unit_test(test_yaml__undefined_alias),
		cmocka_unit_test(test_yaml__recursive_alias),
		cmocka_unit_test(test_yaml__anchor_redefined),
		cmocka_unit_test(test_yaml__merge_key),
		cmocka_unit_test(test_yaml__merge_keeps_anchors),
		cmocka_unit_test(test_yaml__merge_non_string_key),
		cmocka_unit_test(test_yaml__merge_key_bad_value),
		cmocka_unit_test(test_yaml__duplicate_key),
		cmocka_unit_test(test_yaml__duplicate_key_nested),
		cmocka_unit_test(test_yaml__duplicate_key_escaped),
		cmocka_unit_test(test_yaml__many_duplicates_capped),
		cmocka_unit_test(test_yaml__non_scalar_keys),
		cmocka_unit_test(test_yaml__multi_document),
		cmocka_unit_test(test_yaml__invalid_utf8),
		cmocka_unit_test(test_yaml__control_chars),
		cmocka_unit_test(test_yaml__tab_indentation),
		cmocka_unit_test(test_yaml__syntax_errors),
		cmocka_unit_test(test_yaml__tags),
		cmocka_unit_test(test_yaml__diags_sorted_print),
		cmocka_unit_test(test_yaml__diags_accumulate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
