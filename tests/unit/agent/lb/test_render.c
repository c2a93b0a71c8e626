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
 * the diff before committing). Files are found under ml_test_src().
 */
#include "common/ml.h"
#include "agent/lb/lb.h"
#include "tests/support/proc.h"

#include <dirent.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#define CASES_DIR "tests/data/lb/render"
#define STATE_DIR "/var/lib/mlctl"

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
	const char *dir = *state, *want_name;
	char *args, *want, *got, *path;
	bool is_cfg, have_cfg, have_err;

	args = ml_xasprintf("%s/%s/args.json", ml_test_src(), dir);
	got = run_case(args, &is_cfg);
	free(args);
	want_name = is_cfg ? "haproxy.cfg" : "error";
	if (getenv("MLCTL_UPDATE_EXPECTED")) {
		path = ml_xasprintf("%s/%s", ml_test_src(), dir);
		ml_test_write(path, want_name, got);
		free(path);
	}
	path = ml_xasprintf("%s/%s/haproxy.cfg", ml_test_src(), dir);
	have_cfg = access(path, F_OK) == 0;
	free(path);
	path = ml_xasprintf("%s/%s/error", ml_test_src(), dir);
	have_err = access(path, F_OK) == 0;
	free(path);
	if (have_cfg == have_err)
		fail_msg("case '%s' needs exactly one of haproxy.cfg and error",
			 dir);
	if (is_cfg != have_cfg)
		fail_msg("case '%s': expected %s, got:\n%s", dir,
			 have_cfg ? "a configuration" : "an error", got);
	path = ml_xasprintf("%s/%s", dir, want_name);
	want = ml_test_read_src(path);
	free(path);
	if (strcmp(want, got)) {
		print_error("case %s\n--- expected\n%s--- actual\n%s", dir,
			    want, got);
		free(got);
		free(want);
		fail();
	}
	if (is_cfg) {
		char hex[65];

		/* the digest line is there for lb_apply to read back */
		assert_true(ml_haproxy_structure(hex, got));
	}
	free(got);
	free(want);
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

	snprintf(path, sizeof(path), "%s/" CASES_DIR, ml_test_src());
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
