/*
 * Unit tests of common/hist.c: exact buckets below 16 ms, the relative
 * error of percentiles above (at most 1/16 against the exact value, over
 * uniform, skewed and bimodal data), merging, and the JSON form with its
 * refusals (it comes from a remote agent).
 */
#include "common/ml.h"
#include "common/hist.h"

#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact q-quantile of sorted v (rank ceil(q * n)). */
static double exact(const int64_t *v, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	return (double)v[(rank ? rank : 1) - 1];
}

static void check(int64_t *v, size_t n)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 1.0 };
	struct ml_hist h = { 0 };
	size_t i;

	for (i = 0; i < n; i++)
		ml_hist_add(&h, v[i]);
	qsort(v, n, sizeof(*v), cmp_i64);
	assert_int_equal(h.total, n);
	for (i = 0; i < ML_ARRAY_SIZE(qs); i++) {
		double want = exact(v, n, qs[i]);
		double got = ml_hist_quantile(&h, qs[i]);

		if (want < 16)
			assert_true(got == want);
		else
			assert_true(fabs(got - want) <= want / 16 + 0.5);
	}
}

static void test_hist__small_values_are_exact(void **s)
{
	struct ml_hist h = { 0 };
	int i;

	ML_UNUSED(s);
	assert_true(ml_hist_quantile(&h, 0.5) < 0);
	for (i = 0; i < 16; i++)
		ml_hist_add(&h, i);
	ml_hist_add(&h, -5); /* no response: counts as 0 */
	assert_true(ml_hist_quantile(&h, 1.0) == 15);
	assert_true(ml_hist_quantile(&h, 0.5) == 7);
	assert_true(ml_hist_quantile(&h, 0.01) == 0);
}

static void test_hist__percentiles_within_a_sixteenth(void **s)
{
	static int64_t v[20000];
	size_t i;

	ML_UNUSED(s);
	srand(42);
	for (i = 0; i < ML_ARRAY_SIZE(v); i++)
		v[i] = rand() % 2000;
	check(v, ML_ARRAY_SIZE(v));
	for (i = 0; i < ML_ARRAY_SIZE(v); i++) /* long tail */
		v[i] = 20 + ((int64_t)1 << (rand() % 20)) + rand() % 7;
	check(v, ML_ARRAY_SIZE(v));
	for (i = 0; i < ML_ARRAY_SIZE(v); i++) /* two modes */
		v[i] = i % 10 ? 40 + rand() % 10 : 3000 + rand() % 500;
	check(v, ML_ARRAY_SIZE(v));
	{
		/* the last bucket takes what is past 2^31 ms */
		struct ml_hist h = { 0 };

		ml_hist_add(&h, INT64_MAX);
		assert_true(ml_hist_quantile(&h, 0.5) > 2e9);
	}
}

static void test_hist__merge_and_json(void **s)
{
	struct ml_hist a = { 0 }, b = { 0 }, c = { 0 };
	json_t *j;
	int i;

	ML_UNUSED(s);
	for (i = 0; i < 100; i++)
		ml_hist_add(&a, 10);
	for (i = 0; i < 100; i++)
		ml_hist_add(&b, 1000);
	j = ml_hist_to_json(&b);
	assert_int_equal(json_array_size(j), 1);
	assert_int_equal(ml_hist_add_json(&c, j), 0);
	json_decref(j);
	ml_hist_merge(&c, &a);
	assert_int_equal(c.total, 200);
	assert_true(ml_hist_quantile(&c, 0.5) == 10);
	assert_true(fabs(ml_hist_quantile(&c, 0.99) - 1000) <= 1000 / 16.0);

	/* what a broken or hostile agent might send */
	j = json_loads("[[240, 1]]", 0, NULL);
	assert_int_equal(ml_hist_add_json(&c, j), ML_EPROTO);
	json_decref(j);
	j = json_loads("[[3, -1]]", 0, NULL);
	assert_int_equal(ml_hist_add_json(&c, j), ML_EPROTO);
	json_decref(j);
	j = json_loads("[\"x\"]", 0, NULL);
	assert_int_equal(ml_hist_add_json(&c, j), ML_EPROTO);
	json_decref(j);
	j = json_loads("{}", 0, NULL);
	assert_int_equal(ml_hist_add_json(&c, j), ML_EPROTO);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist__small_values_are_exact),
		cmocka_unit_test(test_hist__percentiles_within_a_sixteenth),
		cmocka_unit_test(test_hist__merge_and_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
