/*
 * The planner's data tests: every tests/data/plan/NNNN-name/ holds
 * input.json (the wanted spec and replicas, and the containers an agent
 * reported) and expected (ml_plan_render's output).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/plan/plan.h"

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
	json_t *in = json_load_file(ip, 0, NULL);
	struct ml_obs_container *obs = NULL;
	struct ml_host_plan plan;
	struct ml_buf got = ML_BUF_INIT(1 << 16);
	size_t n = 0;
	int ok;

	assert_non_null(expected);
	assert_non_null(in);
	assert_int_equal(ml_obs_from_json(&obs, &n,
					  json_object_get(in, "containers")),
			 0);
	ml_plan_host(&plan,
		     json_string_value(json_object_get(in, "spec")),
		     (int)json_integer_value(json_object_get(in, "replicas")),
		     json_is_true(json_object_get(in, "standby")),
		     obs, n);
	assert_int_equal(ml_plan_render(&got, &plan), 0);
	ok = !strcmp(ml_buf_str(&got), expected);
	if (!ok)
		print_error("%s: expected:\n%s---\ngot:\n%s---\n", dir,
			    expected, ml_buf_str(&got));
	ml_host_plan_release(&plan);
	ml_obs_free(obs, n);
	ml_buf_release(&got);
	json_decref(in);
	free(expected);
	free(ip);
	free(ep);
	return ok;
}

static void test_plan__data_cases(void **state)
{
	const char *src = getenv("MLCTL_SRC");
	char *dir = ml_xasprintf("%s/tests/data/plan", src && *src ? src : ".");
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
	assert_true(ran >= 10);
}

static void test_plan__bad_labels_are_stray(void **state)
{
	json_t *c = json_loads(
		"[{\"id\":\"x\",\"slot\":\"z\",\"state\":\"running\","
		"\"labels\":{\"mlctl.replica\":\"-1\"}},"
		"{\"id\":\"y\",\"slot\":\"a\",\"state\":\"running\","
		"\"labels\":{\"mlctl.replica\":\"99999999999\"}}]",
		0, NULL);
	struct ml_obs_container *obs = NULL;
	struct ml_host_plan plan;
	size_t n = 0;

	ML_UNUSED(state);
	assert_int_equal(ml_obs_from_json(&obs, &n, c), 0);
	assert_int_equal(n, 2);
	ml_plan_host(&plan, "S", 1, false, obs, n);
	assert_int_equal(plan.nstray, 2);
	assert_true(plan.rep[0].start);
	assert_true(plan.changes);
	ml_host_plan_release(&plan);
	ml_obs_free(obs, n);
	json_decref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan__data_cases),
		cmocka_unit_test(test_plan__bad_labels_are_stray),
	};

	return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
