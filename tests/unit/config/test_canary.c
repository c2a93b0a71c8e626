/*
 * Unit tests of orchestrator/config/canary.c: weighted canary steps,
 * rollout.analysis and rollout.verify, their defaults and their located
 * errors.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

#define HEAD "app: api\nimage: api:1\nport: 8000\ntargets: web\n"

static struct ml_playbook *parse(const char *text, char **diag)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	ml_playbook_parse(&pb, "mlctl.yaml", text, strlen(text), &d);
	f = open_memstream(&out, &len);
	ml_diags_print(&d, f);
	fclose(f);
	ml_diags_release(&d);
	*diag = out;
	return pb;
}

static void test_canary__weighted_steps(void **state)
{
	char *diag;
	struct ml_playbook *pb =
		parse(HEAD "rollout:\n  canary: [{weight: 10%, for: 2m}, "
			   "{weight: 50%, for: manual, timeout: 30m}]\n",
		      &diag);

	(void)state;
	if (!pb)
		fail_msg("%s", diag);
	assert_int_equal(pb->rollout.canary_n, 0);
	assert_int_equal(pb->rollout.nsteps, 2);
	assert_int_equal(pb->rollout.steps[0].weight_pct, 10);
	assert_int_equal(pb->rollout.steps[0].for_ms, 120000);
	assert_false(pb->rollout.steps[0].manual);
	assert_int_equal(pb->rollout.steps[1].weight_pct, 50);
	assert_true(pb->rollout.steps[1].manual);
	assert_int_equal(pb->rollout.steps[1].timeout_ms, 1800000);
	/* the defaults a careful operator would choose */
	assert_true(pb->rollout.analysis.max_error_rate == 0.01);
	assert_true(pb->rollout.analysis.max_p99_ratio == 2.0);
	assert_int_equal(pb->rollout.analysis.p99_margin_ms, 50);
	assert_int_equal(pb->rollout.analysis.min_requests, 50);
	assert_false(pb->rollout.analysis.pass_on_too_few);
	assert_int_equal(pb->rollout.analysis.interval_ms, 5000);
	ml_playbook_free(pb);
	free(diag);
}

static void test_canary__host_shares_keep_working(void **state)
{
	char *diag;
	struct ml_playbook *pb =
		parse(HEAD "rollout: {canary: [\"10%\", \"50%\"]}\n", &diag);

	(void)state;
	assert_non_null(pb);
	assert_int_equal(pb->rollout.canary_n, 2);
	assert_int_equal(pb->rollout.nsteps, 0);
	ml_playbook_free(pb);
	free(diag);
}

static void test_canary__analysis_and_verify(void **state)
{
	char *diag;
	struct ml_playbook *pb = parse(
		HEAD "rollout:\n"
		     "  analysis: {max_error_rate: 0.5%, max_error_ratio: 3, "
		     "max_p99: 400ms, max_p99_ratio: 1.5, p99_margin: 20ms, "
		     "min_requests: 200, too_few: pass, interval: 2s}\n"
		     "  verify:\n"
		     "    compare: true\n"
		     "    timeout: 2s\n"
		     "    requests:\n"
		     "      - {path: /healthz}\n"
		     "      - method: POST\n"
		     "        path: /predict\n"
		     "        body: '{\"features\": [[1, 2, 3, 4]]}'\n"
		     "        expect: {status: 200, body: setosa, json: "
		     "{field: model_version, value: v2}}\n",
		&diag);
	const struct ml_analysis_spec *a;
	const struct ml_verify_spec *v;

	(void)state;
	if (!pb)
		fail_msg("%s", diag);
	a = &pb->rollout.analysis;
	v = &pb->rollout.verify;
	assert_true(a->max_error_rate == 0.005);
	assert_true(a->max_error_ratio == 3);
	assert_int_equal(a->max_p99_ms, 400);
	assert_true(a->max_p99_ratio == 1.5);
	assert_int_equal(a->p99_margin_ms, 20);
	assert_int_equal(a->min_requests, 200);
	assert_true(a->pass_on_too_few);
	assert_int_equal(a->interval_ms, 2000);
	assert_true(v->compare);
	assert_int_equal(v->timeout_ms, 2000);
	assert_int_equal(v->n, 2);
	assert_string_equal(v->v[0].method, "GET");
	assert_string_equal(v->v[1].method, "POST");
	assert_string_equal(v->v[1].body, "{\"features\": [[1, 2, 3, 4]]}");
	assert_int_equal(v->v[1].expect_status, 200);
	assert_string_equal(v->v[1].expect_body, "setosa");
	assert_string_equal(v->v[1].expect_json_field, "model_version");
	assert_string_equal(v->v[1].expect_json_value, "v2");
	ml_playbook_free(pb);
	free(diag);
}

static void test_canary__errors(void **state)
{
	static const struct {
		const char *rollout, *want;
	} cases[] = {
		{"canary: [{weight: 10%}]", "needs 'weight' and 'for'"},
		{"canary: [{weight: 100%, for: 1m}]", "from 1% to 99%"},
		{"canary: [{weight: 5.5%, for: 1m}]", "whole percentage"},
		{"canary: [{weight: 10%, for: 1m}, {weight: 10%, for: 1m}]",
		 "more than the step before it (10%)"},
		{"canary: [{weight: 10%, for: 1m}, \"50%\"]", "use one kind"},
		{"canary: [{weight: 10%, for: 10ms}]", "at least 1s"},
		{"canary: [{weight: 10%, for: 1m, timeout: 1m}]",
		 "applies to 'for: manual' steps only"},
		{"canary: [{weight: 10%, for: 1m, wieght: 1}]",
		 "did you mean 'weight'"},
		{"analysis: {max_error_rate: 1}", "must be a percentage"},
		{"analysis: {max_p99_ratio: 0}", "above 0"},
		{"analysis: {too_few: maybe}", "'fail' or 'pass'"},
		{"analysis: {interval: 30s}", "from 1s to 10s"},
		{"verify: {compare: true}", "missing required key 'requests'"},
		{"verify: {requests: [{path: predict}]}", "start with '/'"},
		{"verify: {requests: [{path: /p, method: post}]}",
		 "upper-case"},
		{"verify: {requests: [{path: /p, expect: {json: "
		 "{field: a}}}]}",
		 "needs both 'field' and 'value'"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		char *text =
			ml_xasprintf(HEAD "rollout: {%s}\n", cases[i].rollout);
		char *diag;
		struct ml_playbook *pb = parse(text, &diag);

		if (pb || !strstr(diag, cases[i].want))
			fail_msg("rollout: {%s}: wanted '%s', got:\n%s",
				 cases[i].rollout, cases[i].want, diag);
		free(diag);
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary__weighted_steps),
		cmocka_unit_test(test_canary__host_shares_keep_working),
		cmocka_unit_test(test_canary__analysis_and_verify),
		cmocka_unit_test(test_canary__errors),
	};

	return cmocka_run_group_tests_name("config/canary", tests, NULL, NULL);
}
