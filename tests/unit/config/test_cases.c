/*
 * Data-driven tests of the config stage: every directory under
 * tests/data/config/ is one case, run as its own cmocka test named
 * test_cases__<directory>. A case holds mlctl.yaml and/or inventory.yaml
 * (a missing one is replaced by the valid example, playbooks/example.yaml
 * or inventory/example.yaml) and "expected": the exact diagnostics that
 * parse + resolve print (ml_diags_print), or the single word "valid".
 *
 * Files are found relative to $MLCTL_SRC (default "."), which the test
 * runner sets to the repository root. MLCTL_UPDATE_EXPECTED=1 rewrites the
 * expected files from the actual output (review the diff before
 * committing).
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <cmocka.h>

#define CASES_DIR "tests/data/config"

static const char *src_dir(void)
{
	const char *s = getenv("MLCTL_SRC");

	return s && *s ? s : ".";
}

/* Read file into b; false when it does not exist. Fails the test on any
 * other error. */
static bool read_file(struct ml_buf *b, const char *path)
{
	int rc = ml_buf_read_file(b, path);

	if (rc == ML_ENOTFOUND)
		return false;
	if (rc < 0)
		fail_msg("cannot read '%s': %s", path, ml_err_msg());
	return true;
}

/*
 * Parse both files and resolve them; the diagnostics printed, or "valid\n"
 * when there are none (and then the JSON must be produced). The caller
 * frees the result.
 */
static char *run_case(const char *pb_data, size_t pb_len, const char *inv_data,
		      size_t inv_len)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;
	struct ml_inventory *inv = NULL;
	struct ml_config *cfg = NULL;
	char *out = NULL;
	size_t outlen = 0;
	int rp, ri, rr = -1;
	FILE *f;

	rp = ml_playbook_parse(&pb, "mlctl.yaml", pb_data, pb_len, &d);
	ri = ml_inventory_parse(&inv, "inventory.yaml", inv_data, inv_len, &d);
	assert_true(rp == 0 || rp == ML_EINVALID);
	assert_true(ri == 0 || ri == ML_EINVALID);
	assert_true((rp == 0) == (pb != NULL));
	assert_true((ri == 0) == (inv != NULL));
	if (rp == 0 && ri == 0) {
		rr = ml_config_resolve(&cfg, pb, inv, &d);
		assert_true(rr == 0 || rr == ML_EINVALID);
		assert_true((rr == 0) == (cfg != NULL));
	} else {
		ml_playbook_free(pb);
		ml_inventory_free(inv);
	}
	/* failure and diagnostics go together */
	assert_true((rr == 0) == (d.n == 0));
	if (cfg) {
		json_t *j = ml_config_to_json(cfg);
		char *s;

		assert_non_null(j);
		s = json_dumps(j, JSON_COMPACT);
		assert_non_null(s);
		free(s);
		json_decref(j);
		ml_config_free(cfg);
		ml_diags_release(&d);
		return ml_xstrdup("valid\n");
	}
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	ml_diags_print(&d, f);
	fclose(f);
	ml_diags_release(&d);
	return out;
}

static void test_one_case(void **state)
{
	const char *dir = *state;
	struct ml_buf pb = ML_BUF_INIT(0), inv = ML_BUF_INIT(0);
	struct ml_buf exp = ML_BUF_INIT(0);
	char path[4096];
	char *actual;
	bool have_pb, have_inv;

	snprintf(path, sizeof(path), "%s/%s/mlctl.yaml", src_dir(), dir);
	have_pb = read_file(&pb, path);
	if (!have_pb) {
		snprintf(path, sizeof(path), "%s/playbooks/example.yaml",
			 src_dir());
		assert_true(read_file(&pb, path));
	}
	snprintf(path, sizeof(path), "%s/%s/inventory.yaml", src_dir(), dir);
	have_inv = read_file(&inv, path);
	if (!have_inv) {
		snprintf(path, sizeof(path), "%s/inventory/example.yaml",
			 src_dir());
		assert_true(read_file(&inv, path));
	}
	if (!have_pb && !have_inv)
		fail_msg("case '%s' has neither mlctl.yaml nor inventory.yaml",
			 dir);
	actual = run_case(pb.data, pb.len, inv.data, inv.len);
	snprintf(path, sizeof(path), "%s/%s/expected", src_dir(), dir);
	if (getenv("MLCTL_UPDATE_EXPECTED")) {
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs(actual, f);
		fclose(f);
	}
	if (!read_file(&exp, path))
		fail_msg("case '%s' has no 'expected' file", dir);
	if (strcmp(ml_buf_str(&exp), actual)) {
		print_error("case %s\n--- expected\n%s--- actual\n%s", dir,
			    ml_buf_str(&exp), actual);
		free(actual);
		ml_buf_release(&pb);
		ml_buf_release(&inv);
		ml_buf_release(&exp);
		fail();
	}
	free(actual);
	ml_buf_release(&pb);
	ml_buf_release(&inv);
	ml_buf_release(&exp);
}

/* The examples shipped in playbooks/ and inventory/ are the manual: they
 * must stay valid, in the pairs their comments name. */
static void test_cases__examples_are_valid(void **state)
{
	static const char *const pairs[][2] = {
		{"playbooks/example.yaml", "inventory/example.yaml"},
		{"playbooks/gpu.yaml", "inventory/gpu-fleet.yaml"},
		{"playbooks/model-api.yaml", "inventory/example.yaml"},
		{"playbooks/canary.yaml", "inventory/example.yaml"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(pairs); i++) {
		struct ml_buf pb = ML_BUF_INIT(0), inv = ML_BUF_INIT(0);
		char path[4096];
		char *actual;

		snprintf(path, sizeof(path), "%s/%s", src_dir(), pairs[i][0]);
		assert_true(read_file(&pb, path));
		snprintf(path, sizeof(path), "%s/%s", src_dir(), pairs[i][1]);
		assert_true(read_file(&inv, path));
		actual = run_case(pb.data, pb.len, inv.data, inv.len);
		if (strcmp(actual, "valid\n"))
			fail_msg("%s with %s:\n%s", pairs[i][0], pairs[i][1],
				 actual);
		free(actual);
		ml_buf_release(&pb);
		ml_buf_release(&inv);
	}
}

/* A 50 MB playbook is refused up front, before any parsing; the file is
 * made here rather than committed. */
static void test_cases__huge_file(void **state)
{
	static const char head[] = "app: api\nimage: api:1\nport: 8000\n"
				   "targets: web\n";
	size_t size = (size_t)50 << 20, o;
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;
	char *data = ml_xmalloc(size);
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	memcpy(data, head, sizeof(head) - 1);
	for (o = sizeof(head) - 1; o + 10 <= size; o += 10)
		memcpy(data + o, "# padding\n", 10);
	memset(data + o, '\n', size - o);
	assert_int_equal(ml_playbook_parse(&pb, "mlctl.yaml", data, size, &d),
			 ML_EINVALID);
	assert_null(pb);
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	ml_diags_print(&d, f);
	fclose(f);
	assert_string_equal(out, "mlctl.yaml: error: file is 52428800 bytes, "
				 "more than the limit of 1048576\n");
	free(out);
	free(data);
	ml_diags_release(&d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	struct CMUnitTest *tests = NULL;
	char **dirs = NULL, **names = NULL;
	size_t n = 0, cap = 0, i;
	char path[4096];
	struct dirent *e;
	DIR *dp;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", src_dir(), CASES_DIR);
	dp = opendir(path);
	if (!dp) {
		fprintf(stderr,
			"cannot open '%s': %s (set MLCTL_SRC to the "
			"repository root)\n",
			path, strerror(errno));
		return 1;
	}
	while ((e = readdir(dp))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		ML_GROW(dirs, n + 1, cap);
		dirs[n++] = ml_xasprintf("%s/%s", CASES_DIR, e->d_name);
	}
	closedir(dp);
	qsort(dirs, n, sizeof(*dirs), cmp_str);

	tests = ml_xcalloc(n + 2, sizeof(*tests));
	names = ml_xcalloc(n, sizeof(*names));
	for (i = 0; i < n; i++) {
		names[i] = ml_xasprintf("test_cases__%s",
					dirs[i] + sizeof(CASES_DIR));
		tests[i].name = names[i];
		tests[i].test_func = test_one_case;
		tests[i].initial_state = dirs[i];
	}
	tests[n].name = "test_cases__examples_are_valid";
	tests[n].test_func = test_cases__examples_are_valid;
	tests[n + 1].name = "test_cases__huge_file";
	tests[n + 1].test_func = test_cases__huge_file;
	rc = _cmocka_run_group_tests("config cases", tests, n + 2, NULL, NULL);
	for (i = 0; i < n; i++) {
		free(dirs[i]);
		free(names[i]);
	}
	free(dirs);
	free(names);
	free(tests);
	return rc;
}
