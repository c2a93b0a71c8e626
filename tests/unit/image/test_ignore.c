/*
 * Tests of a build context's .dockerignore (orchestrator/image/ignore.c):
 * which paths each file leaves out, by the rules docker build applies
 * (the rows follow Docker's documented examples and its pattern
 * matcher's), what always stays, when a walk may skip a directory, and
 * the refusals, each with the file's name and line. Pure functions.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "orchestrator/image/ignore.h"

#include <setjmp.h>
#include <cmocka.h>

#include "tests/support/assert.h"

static struct ml_ignore *parse(const char *text)
{
	static const char *const keep[] = {"Dockerfile", ".dockerignore", NULL};
	struct ml_ignore *ig = NULL;

	if (ml_ignore_parse(&ig, text, strlen(text), ".dockerignore", keep) < 0)
		fail_msg("%s", ml_err_msg());
	return ig;
}

struct row {
	const char *file; /* the .dockerignore */
	const char *path;
	bool out; /* left out of the context */
};

static void test_ignore__patterns(void **s)
{
	static const struct row rows[] = {
		/* a name is anchored at the context's root */
		{"mlctl.yaml\n", "mlctl.yaml", true},
		{"mlctl.yaml\n", "sub/mlctl.yaml", false},
		{"mlctl.yaml\n", "mlctl.yml", false},
		/* a directory takes everything below it */
		{"model\n", "model", true},
		{"model\n", "model/weights.bin", true},
		{"model\n", "model/a/b/c", true},
		{"model\n", "models/x", false},
		/* cleaned like a path */
		{"model/\n", "model/x", true},
		{"./docs//\n", "docs/a.md", true},
		{"/abs\n", "abs", true},
		{"a/./b/../c\n", "a/c", true},
		{"a/./b/../c\n", "a/b", false},
		{"../x\n", "x", false},
		/* '*' stays within a component and takes leading dots */
		{"*.env\n", ".env", true},
		{"*.env\n", "prod.env", true},
		{"*.env\n", "conf/prod.env", false},
		{"*/temp*\n", "somedir/temporary.txt", true},
		{"*/temp*\n", "temp", false},
		{"*/*/temp*\n", "a/b/temp.x", true},
		{"*/*/temp*\n", "a/temp.x", false},
		/* '?' is one character, never '/' */
		{"temp?\n", "temp1", true},
		{"temp?\n", "temp", false},
		{"a?c\n", "a/c", false},
		/* "**" is any number of components, none included */
		{"**/*.pyc\n", "x.pyc", true},
		{"**/*.pyc\n", "a/b/x.pyc", true},
		{"**/*.pyc\n", "a/b/x.py", false},
		{"**/__pycache__\n", "__pycache__/m.pyc", true},
		{"**/__pycache__\n", "pkg/sub/__pycache__/m.pyc", true},
		{"docs/**\n", "docs/a/b.md", true},
		{"**\n", "anything/at/all", true},
		{"**/go\n", "a/go", true},
		/* classes */
		{"[a-c].txt\n", "b.txt", true},
		{"[a-c].txt\n", "d.txt", false},
		{"[!a].txt\n", "a.txt", false},
		{"[!a].txt\n", "b.txt", true},
		{"[^a].txt\n", "a.txt", false},
		{"[]x].txt\n", "].txt", true},
		/* regular expression characters are themselves */
		{"a.b\n", "axb", false},
		{"a.b\n", "a.b", true},
		{"a+b(c)|{d}$^\n", "a+b(c)|{d}$^", true},
		{"\\*.txt\n", "*.txt", true},
		{"\\*.txt\n", "a.txt", false},
		{"\\[x\n", "[x", true},
		/* comments, blank lines, surrounding space, CRLF, a BOM */
		{"# mlctl.yaml\n\n   \n", "mlctl.yaml", false},
		{"# x\n  spaced.txt  \n", "spaced.txt", true},
		{"a.txt\r\nb.txt\r\n", "b.txt", true},
		{"\xef\xbb\xbfsecret\n", "secret", true},
		{"no-newline-at-end", "no-newline-at-end", true},
		/* exceptions: the last line that matches decides */
		{"notes\n!notes/keep.txt\n", "notes/a.txt", true},
		{"notes\n!notes/keep.txt\n", "notes/keep.txt", false},
		{"*.md\n!README.md\n", "README.md", false},
		{"*.md\n!README.md\n", "CHANGES.md", true},
		{"*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md",
		 true},
		{"*.md\n!README*.md\nREADME-secret.md\n", "README-x.md", false},
		{"!x\nx\n", "x", true},
		{"*\n! app.py\n", "app.py", false},
		{"*\n!app.py\n", "model", true},
		{"!\n", "x", false},
		{"/\n", "x", false},
		/* what docker build always sends */
		{"*\n", "Dockerfile", false},
		{"Dockerfile\n.dockerignore\n", ".dockerignore", false},
		{"*\n", "sub/Dockerfile", true},
		/* no file, nothing out */
		{"", "x", false},
	};
	size_t i;

	ML_UNUSED(s);
	for (i = 0; i < ML_ARRAY_SIZE(rows); i++) {
		struct ml_ignore *ig = parse(rows[i].file);
		bool got = ml_ignore_excludes(ig, rows[i].path);

		if (got != rows[i].out)
			fail_msg("row %zu: '%s' with %s: %s, wanted %s", i,
				 rows[i].path, rows[i].file,
				 got ? "left out" : "kept",
				 rows[i].out ? "left out" : "kept");
		ml_ignore_free(ig);
	}
	assert_false(ml_ignore_excludes(NULL, "x"));
}

static void test_ignore__count_and_prunes(void **s)
{
	static const char *const keep[] = {"docker/Dockerfile", NULL};
	struct ml_ignore *ig;
	const char *text = "# the desired state\nmlctl.yaml\n\nnotes\n";

	ML_UNUSED(s);
	ig = parse(text);
	assert_int_equal(ml_ignore_count(ig), 2);
	assert_true(ml_ignore_prunes(ig, "notes"));
	ml_ignore_free(ig);

	/* an exception could bring back something below: walk in */
	ig = parse("notes\n!notes/keep.txt\n");
	assert_false(ml_ignore_prunes(ig, "notes"));
	assert_false(ml_ignore_excludes(ig, "notes/keep.txt"));
	ml_ignore_free(ig);

	/* so could the Dockerfile, always sent */
	assert_int_equal(ml_ignore_parse(&ig, "docker\n", 7, "x", keep), 0);
	assert_true(ml_ignore_excludes(ig, "docker"));
	assert_true(ml_ignore_excludes(ig, "docker/other"));
	assert_false(ml_ignore_excludes(ig, "docker/Dockerfile"));
	assert_false(ml_ignore_prunes(ig, "docker"));
	assert_true(ml_ignore_prunes(ig, "dock"));
	ml_ignore_free(ig);

	/* no keep list at all */
	assert_int_equal(ml_ignore_parse(&ig, "a\n", 2, "x", NULL), 0);
	assert_true(ml_ignore_excludes(ig, "a"));
	ml_ignore_free(ig);
}

static void test_ignore__refusals(void **s)
{
	struct ml_ignore *ig = (struct ml_ignore *)1;
	struct ml_buf b = ML_BUF_INIT(0);
	const char nul[] = "a\0b\n";
	const char *name = "'app/.dockerignore' in commit 0123abc";
	size_t i;

	ML_UNUSED(s);
	/* an unclosed class, on its line */
	assert_int_equal(
		ml_ignore_parse(&ig, "ok\n\n# c\n[abc\n", 13, name, NULL),
		ML_EINVALID);
	assert_null(ig);
	assert_msg_has("'app/.dockerignore' in commit 0123abc:4: bad "
		       "pattern '[abc'");
	assert_int_equal(ml_ignore_parse(&ig, "a[/]b", 5, name, NULL),
			 ML_EINVALID);
	assert_msg_has(":1: bad pattern 'a[/]b'");
	assert_int_equal(ml_ignore_parse(&ig, "[[:alpha:]]", 11, name, NULL),
			 ML_EINVALID);
	/* what a terminal would act on is escaped in the message */
	assert_int_equal(ml_ignore_parse(&ig, "[\x1b[2J", 5, name, NULL),
			 ML_EINVALID);
	assert_null(strchr(ml_err_msg(), '\x1b'));
	assert_msg_has("\\x1b");
	/* a NUL byte */
	assert_int_equal(ml_ignore_parse(&ig, nul, sizeof(nul) - 1, name, NULL),
			 ML_EINVALID);
	assert_msg_has("holds a NUL byte");
	/* too many patterns, a pattern too long, a file too big */
	for (i = 0; i <= ML_IGNORE_MAX_PATTERNS; i++)
		ml_buf_addf(&b, "p%zu\n", i);
	assert_int_equal(ml_ignore_parse(&ig, b.data, b.len, name, NULL),
			 ML_EINVALID);
	assert_msg_has(":1001: more than 1000 patterns");
	ml_buf_reset(&b);
	for (i = 0; i < 5000; i++)
		ml_buf_addch(&b, 'x');
	assert_int_equal(ml_ignore_parse(&ig, b.data, b.len, name, NULL),
			 ML_EINVALID);
	assert_msg_has(":1: a pattern of 5000 bytes");
	ml_buf_reset(&b);
	ml_buf_grow(&b, ML_IGNORE_MAX_BYTES + 1);
	while (b.len <= ML_IGNORE_MAX_BYTES)
		ml_buf_addstr(&b, "# a long comment line\n");
	assert_int_equal(ml_ignore_parse(&ig, b.data, b.len, name, NULL),
			 ML_EINVALID);
	assert_msg_has("more than the 1048576 mlctl reads");
	assert_null(ig);
	ml_buf_release(&b);
}

/* Deep paths and many "**": linear work, an answer. */
static void test_ignore__hostile_paths(void **s)
{
	struct ml_ignore *ig;
	struct ml_buf p = ML_BUF_INIT(0);
	size_t i;

	ML_UNUSED(s);
	ig = parse("**/a/**/a/**/a/**/a/**/b\n");
	for (i = 0; i < 400; i++)
		ml_buf_addstr(&p, "a/");
	ml_buf_addstr(&p, "c");
	assert_false(ml_ignore_excludes(ig, p.data));
	p.data[p.len - 1] = 'b';
	assert_true(ml_ignore_excludes(ig, p.data));
	ml_ignore_free(ig);
	ml_buf_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ignore__patterns),
		cmocka_unit_test(test_ignore__count_and_prunes),
		cmocka_unit_test(test_ignore__refusals),
		cmocka_unit_test(test_ignore__hostile_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
