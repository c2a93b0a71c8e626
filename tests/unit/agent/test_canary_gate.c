/*
 * Unit tests of the manual canary gate (agent/op_canary_gate.c) on a
 * private state dir: a deploy opens it, a second controller decides once,
 * the deploy reads the decision and closes it; a decision with no gate is
 * "not found", a second decision is refused, a new open forgets an old
 * decision; bad arguments are errors.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "tests/support/proc.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <cmocka.h>

static struct ml_agent ag;
static char *tmp;

static const struct ml_agent_op *op_named(const char *name)
{
	const struct ml_agent_op *const *ops;
	size_t n, i;

	ops = ml_agent_ops(&n);
	for (i = 0; i < n; i++)
		if (!strcmp(ops[i]->name, name))
			return ops[i];
	fail_msg("op %s is not in the dispatch table", name);
	return NULL;
}

static int gate(json_t **res, json_t *args)
{
	json_t *r = NULL;
	int rc;

	ml_err_clear();
	rc = op_named("canary_gate")->run(&ag, args, &r);
	json_decref(args);
	if (res)
		*res = r;
	else
		json_decref(r);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	ml_agent_init(&ag);
	tmp = ml_test_tmpdir("gate");
	ag.state_dir = ml_xasprintf("%s/state", tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free((char *)ag.state_dir);
	ml_test_rmtree(tmp);
	free(tmp);
	return 0;
}

static void test_canary_gate__open_decide_close(void **state)
{
	json_t *res = NULL;
	struct stat st;
	char *path;

	(void)state;
	/* nothing waits: promote is "not found" */
	assert_int_equal(
		gate(NULL, json_pack("{s:s,s:s,s:s}", "app", "demo", "action",
				     "decide", "decision", "promote")),
		ML_ENOTFOUND);
	assert_non_null(strstr(ml_err_msg(), "is waiting"));

	assert_int_equal(gate(&res, json_pack("{s:s,s:s,s:i,s:i}", "app",
					      "demo", "action", "open",
					      "revision", 7, "step", 2)),
			 0);
	assert_true(json_is_true(json_object_get(res, "open")));
	assert_true(json_is_null(json_object_get(res, "decision")));
	json_decref(res);
	path = ml_xasprintf("%s/canary-demo.json", ag.state_dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);

	assert_int_equal(
		gate(&res, json_pack("{s:s,s:s,s:s,s:s}", "app", "demo",
				     "action", "decide", "decision", "promote",
				     "by", "bob@ci pid 4")),
		0);
	assert_int_equal(json_integer_value(json_object_get(res, "revision")),
			 7);
	assert_int_equal(json_integer_value(json_object_get(res, "step")), 2);
	json_decref(res);
	/* the first decision wins */
	assert_int_equal(
		gate(NULL, json_pack("{s:s,s:s,s:s}", "app", "demo", "action",
				     "decide", "decision", "abort")),
		ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "already decided: promote"));

	assert_int_equal(gate(&res, json_pack("{s:s,s:s}", "app", "demo",
					      "action", "get")),
			 0);
	assert_string_equal(json_string_value(json_object_get(res, "decision")),
			    "promote");
	assert_string_equal(json_string_value(json_object_get(res, "by")),
			    "bob@ci pid 4");
	json_decref(res);

	/* a new step forgets the old decision */
	assert_int_equal(gate(NULL, json_pack("{s:s,s:s,s:i,s:i}", "app",
					      "demo", "action", "open",
					      "revision", 7, "step", 3)),
			 0);
	assert_int_equal(gate(&res, json_pack("{s:s,s:s}", "app", "demo",
					      "action", "get")),
			 0);
	assert_true(json_is_null(json_object_get(res, "decision")));
	json_decref(res);

	assert_int_equal(gate(&res, json_pack("{s:s,s:s}", "app", "demo",
					      "action", "close")),
			 0);
	assert_false(json_is_true(json_object_get(res, "open")));
	json_decref(res);
	assert_int_equal(
		gate(NULL, json_pack("{s:s,s:s,s:s}", "app", "demo", "action",
				     "decide", "decision", "abort")),
		ML_ENOTFOUND);
}

static void test_canary_gate__bad_args(void **state)
{
	(void)state;
	assert_int_equal(gate(NULL, json_pack("{s:s,s:s}", "app", "../x",
					      "action", "get")),
			 ML_EPROTO);
	assert_int_equal(gate(NULL, json_pack("{s:s,s:s}", "app", "demo",
					      "action", "maybe")),
			 ML_EPROTO);
	assert_int_equal(gate(NULL, json_pack("{s:s,s:s}", "app", "demo",
					      "action", "open")),
			 ML_EPROTO);
	assert_int_equal(gate(NULL, json_pack("{s:s,s:s,s:i,s:i}", "app",
					      "demo", "action", "open",
					      "revision", 1, "step", 1)),
			 0);
	assert_int_equal(
		gate(NULL, json_pack("{s:s,s:s,s:s}", "app", "demo", "action",
				     "decide", "decision", "later")),
		ML_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_canary_gate__open_decide_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_canary_gate__bad_args,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("agent/canary_gate", tests, NULL,
					   NULL);
}
