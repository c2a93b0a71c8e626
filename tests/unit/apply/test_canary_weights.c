/*
 * Unit tests of ml_canary_weights (orchestrator/apply/canary.c): the
 * HAProxy weights that give the new revision's servers a step's share of
 * the requests, whatever the numbers of new and old servers.
 */
#include "common/ml.h"
#include "orchestrator/apply/rollout_int.h"

#include <setjmp.h>
#include <cmocka.h>

static double share(int n_new, int w_new, int n_old, int w_old)
{
	return 100.0 * n_new * w_new / (n_new * w_new + n_old * w_old);
}

static void test_canary_weights__shares(void **state)
{
	static const int pcts[] = { 1, 5, 10, 25, 50, 75, 90, 99 };
	static const int news[] = { 1, 2, 3, 8 };
	static const int olds[] = { 1, 3, 4, 16, 100 };
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary_weights__shares),
		cmocka_unit_test(test_canary_weights__one_canary_beside_three),
	};

	return cmocka_run_group_tests_name("apply/canary_weights", tests, NULL,
					   NULL);
}
