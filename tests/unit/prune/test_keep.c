/*
 * Prune's keep-set data tests: every tests/data/prune/NNNN-name/ holds
 * input.json ({"app","retain","budget","revisions","pins","host"}, the
 * host as the agent's prune_scan reports it) and expected
 * (ml_prune_render's output). Plus the parsers' refusals. With
 * MLCTL_TEST_UPDATE_EXPECTED set, expected is rewritten from the output
 * (review the diff).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/prune/prune.h"

#include <dirent.h>

static char *read_file(const char *path)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	if (ml_buf_read_file(&b, path) < 0)
		return NULL;
	return ml_buf_detach(&b, NULL);
}

static int run_case(const char *dir)
{
	char *ip = ml_xasprintf("%s/input.json", dir);
	char *ep = ml_xasprintf("%s/expected", dir);
	char *expected = read_file(ep);
	json_t *in = json_load_file(ip, 0, NULL), *pins, *v;
	struct ml_prune_rev *revs = NULL;
	struct ml_prune_host host;
	struct ml_prune_input pi = { 0 };
	struct ml_prune_plan plan;
	struct ml_buf got = ML_BUF_INIT(1 << 16);
	int64_t pinv[64];
	size_t n = 0, i;
	int ok;

	assert_non_null(expected);
	assert_non_null(in);
	assert_int_equal(ml_prune_revs_from_json(
				 &revs, &n, json_object_get(in, "revisions")),
			 0);
	assert_int_equal(ml_prune_host_from_json(&host,
						 json_object_get(in, "host")),
			 0);
	pins = json_object_get(in, "pins");
	json_array_foreach(pins, i, v)
	{
		assert_true(i < ML_ARRAY_SIZE(pinv));
		pinv[i] = json_integer_value(v);
	}
	pi.app = json_string_value(json_object_get(in, "app"));
	pi.retain = (int)json_integer_value(json_object_get(in, "retain"));
	pi.budget = json_integer_value(json_object_get(in, "budget"));
	pi.revs = revs;
	pi.nrevs = n;
	pi.pins = pinv;
	pi.npins = json_array_size(pins);
	pi.host = &host;
	ml_prune_host(&plan, &pi);
	assert_int_equal(ml_prune_render(&got, &plan), 0);
	if (getenv("MLCTL_TEST_UPDATE_EXPECTED")) { /* after a reviewed change */
		FILE *f = fopen(ep, "w");

		assert_non_null(f);
		fputs(ml_buf_str(&got), f);
		fclose(f);
	}
	ok = !strcmp(ml_buf_str(&got), expected);
	if (!ok)
		print_error("%s: expected:\n%s---\ngot:\n%s---\n", dir,
			    expected, ml_buf_str(&got));
	ml_prune_plan_release(&plan);
	ml_prune_host_release(&host);
	ml_prune_revs_free(revs, n);
	ml_buf_release(&got);
	json_decref(in);
	free(expected);
	free(ip);
	free(ep);
	return ok;
}

static void test_keep__data_cases(void **state)
{
	const char *src = getenv("MLCTL_SRC");
	char *dir = ml_xasprintf("%s/tests/data/prune",
				 src && *src ? src : ".");
	struct dirent **names = NULL;
	int n, i, ran = 0, bad = 0;

	ML_UNUSED(state);
	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char *c = ml_xasprintf("%s/%s", dir, names[i]->d_name);

			bad += !run_case(c);
			ran++;
			free(c);
		}
		free(names[i]);
	}
	free(names);
	free(dir);
	assert_int_equal(bad, 0);
	assert_true(ran >= 8);
}

static void test_keep__bad_scan(void **state)
{
	static const char *const bad[] = {
		"{\"images\":{}}",
		"{\"containers\":[{\"id\":\"x\"}]}",
		"{\"images\":[{\"tags\":[]}]}",
		"{\"images\":[{\"id\":\"i\",\"layers\":[1]}]}",
		"{\"blobs\":[{\"digest\":\"d\",\"size\":-1}]}",
		"{\"blobs\":[{\"digest\":\"d\"}]}",
	};
	struct ml_prune_host h;
	size_t i;

	ML_UNUSED(state);
	for (i = 0; i < ML_ARRAY_SIZE(bad); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);

		assert_non_null(j);
		assert_int_equal(ml_prune_host_from_json(&h, j), ML_EPROTO);
		json_decref(j);
	}
}

/* The ledger's records: app and tag from the desired state, layers from
 * layers_json; an unreadable layers record gives no layers (so none of
 * them can become a candidate). */
static void test_keep__from_ledger(void **state)
{
	struct ml_revision r[2] = { 0 };
	struct ml_prune_rev *v = NULL;
	size_t n = 0;

	ML_UNUSED(state);
	r[0].number = 1;
	r[0].commit = (char *)"abc";
	r[0].desired_json = (char *)"{\"app\":\"demo\",\"image\":"
				    "{\"kind\":\"build\"}}";
	r[0].image_id = (char *)"sha256:i1";
	r[0].layers_json = (char *)"[\"sha256:l1\",\"sha256:l2\"]";
	r[0].outcome = ML_OUTCOME_SUCCEEDED;
	r[1].number = 2;
	r[1].desired_json = (char *)"{\"app\":\"demo\",\"image\":"
				    "{\"kind\":\"ref\",\"ref\":\"m:v2\"}}";
	r[1].image_id = (char *)"sha256:i2";
	r[1].layers_json = (char *)"{\"not\":\"a list\"}";
	r[1].outcome = ML_OUTCOME_FAILED;
	ml_prune_revs_from_ledger(&v, &n, r, 2);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].app, "demo");
	assert_string_equal(v[0].ref, "mlctl/demo:abc");
	assert_int_equal(v[0].nlayers, 2);
	assert_string_equal(v[0].layers[1], "sha256:l2");
	assert_string_equal(v[1].ref, "m:v2");
	assert_int_equal(v[1].nlayers, 0);
	assert_int_equal(v[1].outcome, ML_OUTCOME_FAILED);
	ml_prune_revs_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep__data_cases),
		cmocka_unit_test(test_keep__bad_scan),
		cmocka_unit_test(test_keep__from_ledger),
	};

	return cmocka_run_group_tests_name("prune", tests, NULL, NULL);
}
