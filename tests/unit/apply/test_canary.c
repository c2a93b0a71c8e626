/*
 * Unit tests of the canary's pure decisions (orchestrator/apply/canary.c):
 * ml_canary_weights, the HAProxy weights that give the new revision's
 * servers a step's share of the requests whatever the numbers of new and
 * old servers, and ml_canary_judge, a step's verdict from its numbers,
 * as a table of cases.
 */
#include "common/ml.h"
#include "orchestrator/apply/rollout_int.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

static double share(int n_new, int w_new, int n_old, int w_old)
{
	return 100.0 * n_new * w_new / (n_new * w_new + n_old * w_old);
}

static void test_canary_weights__shares(void **state)
{
	static const int pcts[] = {1, 5, 10, 25, 50, 75, 90, 99};
	static const int news[] = {1, 2, 3, 8};
	static const int olds[] = {1, 3, 4, 16, 100};
	size_t a, b, c;

	(void)state;
	for (a = 0; a < ML_ARRAY_SIZE(pcts); a++)
		for (b = 0; b < ML_ARRAY_SIZE(news); b++)
			for (c = 0; c < ML_ARRAY_SIZE(olds); c++) {
				int wn, wo;
				double s, err, lo, hi;

				ml_canary_weights(pcts[a], news[b], olds[c],
						  &wn, &wo);
				assert_in_range(wn, 1, 256);
				assert_in_range(wo, 1, 256);
				s = share(news[b], wn, olds[c], wo);
				err = s > pcts[a] ? s - pcts[a] : pcts[a] - s;
				/* within half a point where weights of 1 to
				 * 256 can reach the share at all */
				lo = share(news[b], 1, olds[c], 256);
				hi = share(news[b], 256, olds[c], 1);
				if (pcts[a] < lo || pcts[a] > hi)
					err = 0;
				if (err > 0.5)
					fail_msg("%d%% with %d new, %d old: "
						 "%d/%d gives %.2f%%",
						 pcts[a], news[b], olds[c], wn,
						 wo, s);
			}
}

static void test_canary_weights__one_canary_beside_three(void **state)
{
	int wn, wo;

	(void)state;
	ml_canary_weights(10, 1, 3, &wn, &wo);
	assert_true(share(1, wn, 3, wo) > 9.9 && share(1, wn, 3, wo) < 10.1);
	ml_canary_weights(50, 1, 3, &wn, &wo);
	assert_int_equal(wn, 3 * wo);
}

/* n requests, e of them errors, every latency ms (then slow of them at
 * slow_ms). */
static struct ml_canary_side side(uint64_t n, uint64_t e, int ms, uint64_t slow,
				  int slow_ms)
{
	struct ml_canary_side s = {0};
	uint64_t i;

	s.req = n;
	s.err = e;
	for (i = 0; i < n; i++)
		ml_hist_add(&s.hist, i < slow ? slow_ms : ms);
	return s;
}

static void test_canary_judge__cases(void **state)
{
	struct ml_analysis_spec dflt = {0}, a;
	struct ml_rollout_spec r = {0};
	static const struct {
		uint64_t n, e;
		int ms;
		uint64_t slow;
		int slow_ms;
		uint64_t on, oe;
		int oms;
		bool time_out;
		int tweak; /* 0 defaults, 1 too_few pass, 2 max_p99 200ms,
			    * 3 error ratio 2 with 0.5% allowed */
		enum ml_canary_verdict want;
		const char *why;
	} cases[] = {
		/* too few: extend, then fail closed, or pass if asked */
		{10, 0, 5, 0, 0, 100, 0, 5, false, 0, ML_CANARY_EXTEND,
		 "10 of 50"},
		{10, 0, 5, 0, 0, 100, 0, 5, true, 0, ML_CANARY_ABORT,
		 "too few requests"},
		{10, 0, 5, 0, 0, 100, 0, 5, true, 1, ML_CANARY_PROMOTE,
		 "too_few: pass"},
		/* healthy: extend, then promote */
		{100, 0, 5, 0, 0, 900, 0, 5, false, 0, ML_CANARY_EXTEND,
		 "within limits"},
		{100, 1, 5, 0, 0, 900, 0, 5, true, 0, ML_CANARY_PROMOTE,
		 "within limits"},
		/* 5% errors: abort at once */
		{100, 5, 5, 0, 0, 900, 0, 5, false, 0, ML_CANARY_ABORT,
		 "error rate 5.00% is over 1.00%"},
		/* 300 ms more: over 2 x and 50 ms more */
		{100, 0, 305, 0, 0, 900, 0, 5, false, 0, ML_CANARY_ABORT,
		 "over 2 x the old"},
		/* 2 x but within the margin: noise */
		{100, 0, 12, 0, 0, 900, 0, 5, true, 0, ML_CANARY_PROMOTE,
		 "within limits"},
		/* the absolute limit */
		{100, 0, 5, 5, 250, 900, 0, 200, false, 2, ML_CANARY_ABORT,
		 "p99 "},
		/* ratio to the old revision's error rate */
		{1000, 4, 5, 0, 0, 1000, 1, 5, false, 3, ML_CANARY_ABORT,
		 "x the old revision's 0.10%"},
		{1000, 2, 5, 0, 0, 1000, 1, 5, false, 3, ML_CANARY_EXTEND,
		 "within limits"},
	};
	size_t i;

	(void)state;
	ml_canary_defaults(&r);
	dflt = r.analysis;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		struct ml_canary_side nw =
			side(cases[i].n, cases[i].e, cases[i].ms, cases[i].slow,
			     cases[i].slow_ms);
		struct ml_canary_side old =
			side(cases[i].on, cases[i].oe, cases[i].oms, 0, 0);
		char why[256];
		enum ml_canary_verdict v;

		a = dflt;
		if (cases[i].tweak == 1)
			a.pass_on_too_few = true;
		if (cases[i].tweak == 2)
			a.max_p99_ms = 200;
		if (cases[i].tweak == 3) {
			a.max_error_ratio = 2;
			a.max_error_rate = 0.005;
		}
		v = ml_canary_judge(&a, &nw, &old, cases[i].time_out, why,
				    sizeof(why));
		if (v != cases[i].want || !strstr(why, cases[i].why))
			fail_msg("case %zu: verdict %d (%s), wanted %d (%s)", i,
				 v, why, cases[i].want, cases[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary_weights__shares),
		cmocka_unit_test(test_canary_weights__one_canary_beside_three),
		cmocka_unit_test(test_canary_judge__cases),
	};

	return cmocka_run_group_tests_name("apply/canary", tests, NULL, NULL);
}
