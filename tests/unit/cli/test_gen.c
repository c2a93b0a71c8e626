/*
 * Unit tests of orchestrator/cli_gen.c through the built mlctl: the bash
 * and zsh completions and the man page (`mlctl __gen ...`, what `make`
 * writes and `make install` installs) hold every verb and every option
 * that `mlctl --help` and `mlctl VERB --help` list. The bash completion is
 * run for real (bash, COMP_WORDS, _mlctl); the zsh one is parsed by zsh;
 * the man page is rendered by groff without warnings. Then `make install
 * PREFIX=DIR` into an empty directory, and with DESTDIR.
 */
#include "common/ml.h"
#include "tests/support/proc.h"

#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXV 64
#define MAXO 64

struct verb {
	char *name;
	char *opts[MAXO];
	size_t nopts;
};

static struct {
	struct verb v[MAXV];
	size_t n;
	char *globals[MAXO];
	size_t nglobals;
	char *bash, *zsh, *man;
	char *dir;
} T;

static char *mlctl_out(const char *const *args)
{
	struct ml_test_out o;
	char *s;

	assert_int_equal(ml_test_mlctl(&o, T.dir, NULL, args), 0);
	if (o.status != 0)
		fail_msg("mlctl %s: %s", args[0], o.err);
	s = ml_xstrdup(o.out);
	ml_test_out_release(&o);
	return s;
}

/* The "--name" words at the start of option lines of a --help text, after
 * the line that starts with section. */
static size_t help_options(char **out, const char *help, const char *section)
{
	const char *p = strstr(help, section);
	size_t n = 0;

	assert_non_null(p);
	while ((p = strchr(p, '\n')) && *++p) {
		const char *dd = strstr(p, "--");
		size_t eol = strcspn(p, "\n");

		if (!strncmp(p, "  ", 2) && dd && dd < p + eol &&
		    dd < p + 12 && n < MAXO)
			out[n++] = ml_xstrndup(dd, strcspn(dd, " \n"));
		if (p[0] != ' ' && p[0] != '\n' && strncmp(p, section, 8))
			break; /* the next section */
	}
	return n;
}

static int setup(void **state)
{
	char *help, *p;

	ML_UNUSED(state);
	T.dir = ml_test_tmpdir("gen");
	help = mlctl_out((const char *const[]){ "--help", NULL });
	p = strstr(help, "commands:\n");
	assert_non_null(p);
	p += strlen("commands:\n");
	while (!strncmp(p, "  ", 2) && T.n < MAXV) {
		struct verb *v = &T.v[T.n++];
		char *vh;

		p += 2;
		v->name = ml_xstrndup(p, strcspn(p, " "));
		vh = mlctl_out((const char *const[]){ v->name, "--help",
						       NULL });
		if (strstr(vh, "\noptions:\n"))
			v->nopts = help_options(v->opts, vh, "options:");
		free(vh);
		p += strcspn(p, "\n") + 1;
	}
	T.nglobals = help_options(T.globals, help, "options (before");
	free(help);
	T.bash = mlctl_out((const char *const[]){ "__gen", "completion-bash",
						   NULL });
	T.zsh = mlctl_out((const char *const[]){ "__gen", "completion-zsh",
						  NULL });
	T.man = mlctl_out((const char *const[]){ "__gen", "man", NULL });
	return 0;
}

static int teardown(void **state)
{
	size_t i, k;

	ML_UNUSED(state);
	for (i = 0; i < T.n; i++) {
		free(T.v[i].name);
		for (k = 0; k < T.v[i].nopts; k++)
			free(T.v[i].opts[k]);
	}
	for (i = 0; i < T.nglobals; i++)
		free(T.globals[i]);
	free(T.bash);
	free(T.zsh);
	free(T.man);
	ml_test_rmtree(T.dir);
	free(T.dir);
	return 0;
}

static void test_gen__help_is_read(void **state)
{
	size_t i;
	bool deploy = false;

	ML_UNUSED(state);
	/* the oracle itself: the verbs and options a user sees */
	assert_true(T.n >= 13);
	assert_true(T.nglobals >= 10);
	for (i = 0; i < T.n; i++)
		if (!strcmp(T.v[i].name, "deploy")) {
			deploy = true;
			assert_true(T.v[i].nopts >= 4);
		}
	assert_true(deploy);
}

/* What bash's completion offers after words (the last one being
 * completed), one per line. */
static char *complete_bash(const char *script, const char *const *words)
{
	static const char prog[] =
		"source \"$1\"; shift; COMP_WORDS=(\"$@\"); "
		"COMP_CWORD=$(($# - 1)); _mlctl; "
		"printf '%s\\n' \"${COMPREPLY[@]}\"";
	const char *argv[16] = { "bash", "--norc", "-c", prog, "bash",
				 script };
	struct ml_test_out o;
	size_t n = 6;
	char *s;

	while (*words && n < ML_ARRAY_SIZE(argv) - 1)
		argv[n++] = *words++;
	argv[n] = NULL;
	assert_int_equal(ml_test_run(&o, T.dir, NULL, NULL, 30, argv), 0);
	if (o.status != 0)
		fail_msg("bash: %s", o.err);
	s = ml_xasprintf("\n%s", o.out);
	ml_test_out_release(&o);
	return s;
}

static bool has_line(const char *lines, const char *word)
{
	char *w = ml_xasprintf("\n%s\n", word);
	bool ok = strstr(lines, w) != NULL;

	free(w);
	return ok;
}

static void test_gen__bash_completes_every_verb_and_option(void **state)
{
	char *script = ml_xasprintf("%s/mlctl.bash", T.dir);
	char *got;
	size_t i, k;

	ML_UNUSED(state);
	ml_test_write(T.dir, "mlctl.bash", T.bash);
	got = complete_bash(script, (const char *const[]){ "mlctl", "",
							    NULL });
	for (i = 0; i < T.n; i++)
		if (!has_line(got, T.v[i].name))
			fail_msg("bash does not complete verb %s", T.v[i].name);
	free(got);
	for (i = 0; i < T.n; i++) {
		got = complete_bash(script,
				    (const char *const[]){ "mlctl", T.v[i].name,
							   "--", NULL });
		for (k = 0; k < T.v[i].nopts; k++)
			if (!has_line(got, T.v[i].opts[k]))
				fail_msg("bash does not complete %s %s",
					 T.v[i].name, T.v[i].opts[k]);
		for (k = 0; k < T.nglobals; k++)
			if (!has_line(got, T.globals[k]))
				fail_msg("bash does not complete %s %s",
					 T.v[i].name, T.globals[k]);
		free(got);
	}
	/* a prefix, a global option before the verb, explain's keys, lock's
	 * words, file names after a FILE option */
	got = complete_bash(script, (const char *const[]){ "mlctl", "-C", ".",
							    "sta", NULL });
	assert_true(has_line(got, "status"));
	assert_false(has_line(got, "show"));
	free(got);
	got = complete_bash(script, (const char *const[]){ "mlctl", "explain",
							    "rollout.ca", NULL });
	assert_true(has_line(got, "rollout.canary"));
	free(got);
	got = complete_bash(script, (const char *const[]){ "mlctl", "lock", "",
							    NULL });
	assert_true(has_line(got, "status"));
	assert_true(has_line(got, "release"));
	free(got);
	got = complete_bash(script, (const char *const[]){ "mlctl", "-f",
							    "mlctl.ba", NULL });
	assert_true(has_line(got, "mlctl.bash"));
	free(got);
	free(script);
}

/* The text between "\t\tVERB)" and the next ";;" of the zsh script. */
static char *zsh_case(const char *verb)
{
	char *head = ml_xasprintf("\n\t\t%s)\n", verb);
	const char *p = strstr(T.zsh, head), *end;

	free(head);
	if (!p)
		return NULL;
	end = strstr(p, ";;");
	assert_non_null(end);
	return ml_xstrndup(p, (size_t)(end - p));
}

static void test_gen__zsh_lists_every_verb_and_option(void **state)
{
	char *path = ml_xasprintf("%s/_mlctl", T.dir);
	struct ml_test_out o;
	size_t i, k;

	ML_UNUSED(state);
	ml_test_write(T.dir, "_mlctl", T.zsh);
	assert_int_equal(ml_test_run(&o, T.dir, NULL, NULL, 30,
				     (const char *const[]){ "zsh", "-n", path,
							    NULL }),
			 0);
	if (o.status != 0)
		fail_msg("zsh -n: %s", o.err);
	ml_test_out_release(&o);
	assert_int_equal(strncmp(T.zsh, "#compdef mlctl\n", 15), 0);
	for (i = 0; i < T.n; i++) {
		char *item = ml_xasprintf("\t\t'%s:", T.v[i].name);
		char *block = zsh_case(T.v[i].name);

		if (!strstr(T.zsh, item) || !block)
			fail_msg("zsh lacks verb %s", T.v[i].name);
		for (k = 0; k < T.v[i].nopts; k++) {
			char *a = ml_xasprintf("'%s[", T.v[i].opts[k]);
			char *b = ml_xasprintf(",%s}", T.v[i].opts[k]);

			if (!strstr(block, a) && !strstr(block, b))
				fail_msg("zsh lacks %s %s", T.v[i].name,
					 T.v[i].opts[k]);
			free(a);
			free(b);
		}
		free(item);
		free(block);
	}
	for (k = 0; k < T.nglobals; k++) {
		char *a = ml_xasprintf("'%s[", T.globals[k]);
		char *b = ml_xasprintf(",%s}", T.globals[k]);

		if (!strstr(T.zsh, a) && !strstr(T.zsh, b))
			fail_msg("zsh lacks global %s", T.globals[k]);
		free(a);
		free(b);
	}
	free(path);
}

static void test_gen__man_page_documents_every_verb_and_option(void **state)
{
	char *path = ml_xasprintf("%s/mlctl.1", T.dir);
	struct ml_test_out o;
	size_t i, k;

	ML_UNUSED(state);
	ml_test_write(T.dir, "mlctl.1", T.man);
	assert_int_equal(ml_test_run(&o, T.dir, NULL, NULL, 30,
				     (const char *const[]){ "groff", "-man",
							    "-Tascii", "-ww",
							    "-P", "-cbou", path,
							    NULL }),
			 0);
	assert_int_equal(o.status, 0);
	if (o.err_len)
		fail_msg("groff warns: %s", o.err);
	assert_non_null(strstr(o.out, "NAME"));
	assert_non_null(strstr(o.out, "SYNOPSIS"));
	assert_non_null(strstr(o.out, "EXIT STATUS"));
	for (i = 0; i < T.n; i++) {
		char *head = ml_xasprintf("mlctl %s", T.v[i].name);
		const char *sec = strstr(o.out, head), *next;

		if (!sec)
			fail_msg("the man page lacks %s", head);
		/* the verb's options come before the next verb */
		next = i + 1 < T.n ? strstr(sec + 1, "mlctl ") : NULL;
		for (k = 0; k < T.v[i].nopts; k++) {
			const char *at = strstr(sec, T.v[i].opts[k]);

			if (!at || (next && at > strstr(o.out, "OPTIONS\n")))
				fail_msg("the man page lacks %s %s",
					 T.v[i].name, T.v[i].opts[k]);
		}
		free(head);
	}
	for (k = 0; k < T.nglobals; k++)
		if (!strstr(strstr(o.out, "OPTIONS\n"), T.globals[k]))
			fail_msg("the man page lacks global %s", T.globals[k]);
	ml_test_out_release(&o);
	free(path);
}

static bool is_file(const char *root, const char *rel, mode_t want)
{
	char *p = ml_xasprintf("%s/%s", root, rel);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
		  (st.st_mode & want) == want;

	free(p);
	return ok;
}

static void install_into(const char *prefix, const char *destdir,
			 const char *root)
{
	const char *src = ml_test_src();
	char *pfx = ml_xasprintf("PREFIX=%s", prefix);
	char *dd = ml_xasprintf("DESTDIR=%s", destdir);
	const char *o = getenv("O"), *bin = getenv("BIN");
	char *oo = ml_xasprintf("O=%s", o && *o ? o : "build");
	char *bb = ml_xasprintf("BIN=%s", bin && *bin ? bin : "bin");
	struct ml_test_out out;
	char *installed, *want;

	assert_int_equal(ml_test_run(&out, src, NULL, NULL, 300,
				     (const char *const[]){
					     "make", "--no-print-directory",
					     "-s", oo, bb, pfx, dd, "install",
					     NULL }),
			 0);
	if (out.status != 0)
		fail_msg("make install: %s%s", out.out, out.err);
	ml_test_out_release(&out);
	assert_true(is_file(root, "bin/mlctl", 0755));
	assert_true(is_file(root, "bin/mlctl-agent", 0755));
	assert_true(is_file(root, "share/bash-completion/completions/mlctl",
			    0644));
	assert_true(is_file(root, "share/zsh/site-functions/_mlctl", 0644));
	assert_true(is_file(root, "share/man/man1/mlctl.1", 0644));
	/* what is installed is what this mlctl generates */
	want = ml_xasprintf("%s/share/man/man1/mlctl.1", root);
	installed = ml_test_slurp(want);
	assert_string_equal(installed, T.man);
	free(installed);
	free(want);
	want = ml_xasprintf("%s/share/bash-completion/completions/mlctl",
			    root);
	installed = ml_test_slurp(want);
	assert_string_equal(installed, T.bash);
	free(installed);
	free(want);
	free(pfx);
	free(dd);
	free(oo);
	free(bb);
}

static void test_gen__make_install_into_an_empty_dir(void **state)
{
	char *root = ml_test_tmpdir("install");
	char *stage = ml_test_tmpdir("stage");
	char *staged = ml_xasprintf("%s/opt/mlctl", stage);
	struct ml_test_out o;
	char *bin = ml_xasprintf("%s/bin/mlctl", root);

	ML_UNUSED(state);
	install_into(root, "", root);
	/* the installed binary runs and finds its verbs */
	assert_int_equal(ml_test_run(&o, T.dir, NULL, NULL, 30,
				     (const char *const[]){ bin, "--help",
							    NULL }),
			 0);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "explain"));
	ml_test_out_release(&o);
	/* DESTDIR stages under another root, PREFIX stays the path */
	install_into("/opt/mlctl", stage, staged);
	ml_test_rmtree(root);
	ml_test_rmtree(stage);
	free(root);
	free(stage);
	free(staged);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gen__help_is_read),
		cmocka_unit_test(test_gen__bash_completes_every_verb_and_option),
		cmocka_unit_test(test_gen__zsh_lists_every_verb_and_option),
		cmocka_unit_test(
			test_gen__man_page_documents_every_verb_and_option),
		cmocka_unit_test(test_gen__make_install_into_an_empty_dir),
	};

	return cmocka_run_group_tests_name("cli/gen", tests, setup, teardown);
}
