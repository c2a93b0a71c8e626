/*
 * Data-driven tests of the HAProxy configuration rendering: every
 * directory under tests/data/lb/render/ is one case, run as its own cmocka
 * test. A case holds args.json (lb_apply's args) and either haproxy.cfg,
 * the exact bytes ml_haproxy_render() writes for them under the state dir
 * /var/lib/mlctl, or error, the exact message ml_lb_config_from_json()
 * refuses them with (one line, a newline after it).
 *
 * The expected files were first written by the code before agent/lb/
 * existed, so the rendering stays byte-identical through the move: a
 * changed byte changes the structure digest, and every LB would reload.
 * MLCTL_UPDATE_EXPECTED=1 rewrites them from the actual output (review
 * the diff before committing). Files are found under $MLCTL_SRC (default
 * ".").
 */
#include "common/ml.h"
#include "agent/haproxy.h"

#include <dirent.h>
#include <setjmp.h>
#include <cmocka.h>

#define CASES_DIR "tests/data/lb/render"
#define STATE_DIR "/var/lib/mlctl"

static const char *src_dir(void)
{
	const char *s = getenv("MLCTL_SRC");

	return s && *s ? s : ".";
}

static bool read_file(struct ml_buf *b, const char *path)
{
	int rc = ml_buf_read_file(b, path);

	if (rc == ML_ENOTFOUND)
		return false;
	if (rc < 0)
		fail_msg("cannot read '%s': %s", path, ml_err_msg());
	return true;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* The rendered text, or the error message and a newline; *is_cfg says
 * which. The caller frees it. */
static char *run_case(const char *args_path, bool *is_cfg)
{
	struct ml_lb_config c;
	struct ml_haproxy h;
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	json_error_t e;
	json_t *args = json_load_file(args_path, JSON_REJECT_DUPLICATES, &e);
	int rc;

	if (!args)
		fail_msg("%s:%d: %s", args_path, e.line, e.text);
	ml_err_clear();
	rc = ml_lb_config_from_json(&c, args);
	json_decref(args);
	*is_cfg = rc == 0;
	if (rc < 0) {
		assert_true(*ml_err_msg());
		ml_buf_addf(&b, "%s\n", ml_err_msg());
	} else {
		assert_int_equal(ml_haproxy_init(&h, STATE_DIR, c.app), 0);
		assert_int_equal(ml_haproxy_render(&b, &c, &h), 0);
		ml_haproxy_release(&h);
	}
	ml_lb_config_release(&c);
	return ml_buf_detach(&b, NULL);
}

static void test_one_case(void **state)
{
	const char *dir = *state;
	struct ml_buf want = ML_BUF_INIT(0);
	char args[4096], cfg[4096], err[4096];
	const char *path;
	bool is_cfg, have_cfg, have_err;
	char *got;

	snprintf(args, sizeof(args), "%s/%s/args.json", src_dir(), dir);
	snprintf(cfg, sizeof(cfg), "%s/%s/haproxy.cfg", src_dir(), dir);
	snprintf(err, sizeof(err), "%s/%s/error", src_dir(), dir);
	got = run_case(args, &is_cfg);
	path = is_cfg ? cfg : err;
	if (getenv("MLCTL_UPDATE_EXPECTED"))
		write_file(path, got);
	have_cfg = read_file(&want, cfg);
	ml_buf_reset(&want);
	have_err = read_file(&want, err);
	if (have_cfg == have_err)
		fail_msg("case '%s' needs exactly one of haproxy.cfg and error",
			 dir);
	if (is_cfg != have_cfg)
		fail_msg("case '%s': expected %s, got:\n%s", dir,
			 have_cfg ? "a configuration" : "an error", got);
	ml_buf_reset(&want);
	assert_true(read_file(&want, path));
	if (strcmp(ml_buf_str(&want), got)) {
		print_error("case %s\n--- expected\n%s--- actual\n%s", dir,
			    ml_buf_str(&want), got);
		free(got);
		ml_buf_release(&want);
		fail();
	}
	if (is_cfg) {
		char hex[65];

		/* the digest line is there for lb_apply to read back */
		assert_true(ml_haproxy_structure(hex, got));
	}
	free(got);
	ml_buf_release(&want);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	struct CMUnitTest *tests = NULL;
	char **names = NULL, path[4096];
	size_t n = 0, i;
	struct dirent *d;
	DIR *dp;
	int rc;

	snprintf(path, sizeof(path), "%s/" CASES_DIR, src_dir());
	dp = opendir(path);
	if (!dp) {
		fprintf(stderr, "cannot open '%s': %s\n", path,
			strerror(errno));
		return 1;
	}
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		names = ml_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = ml_xasprintf(CASES_DIR "/%s", d->d_name);
	}
	closedir(dp);
	if (!n) {
		fprintf(stderr, "no cases in '%s'\n", path);
		return 1;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	tests = ml_xcalloc(n, sizeof(*tests));
	for (i = 0; i < n; i++) {
		tests[i].name = ml_xasprintf("test_render__%s",
					     strrchr(names[i], '/') + 1);
		tests[i].test_func = test_one_case;
		tests[i].initial_state = names[i];
	}
	rc = _cmocka_run_group_tests("lb_render", tests, n, NULL, NULL);
	for (i = 0; i < n; i++) {
		free((char *)tests[i].name);
		free(names[i]);
	}
	free(tests);
	free(names);
	return rc;
}
