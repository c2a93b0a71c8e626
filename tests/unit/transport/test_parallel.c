/*
 * ml_parallel_run (orchestrator/transport/parallel.c): every index runs
 * exactly once, never more than max_parallel at a time, the pool really
 * runs calls at once, and per-thread error messages stay per index.
 */
#include "common/ml.h"
#include "orchestrator/transport/transport.h"

#include <stdatomic.h>
#include <time.h>

#include <setjmp.h>
#include <cmocka.h>

#define N 200

struct counts {
	atomic_int calls[N];
	atomic_int running;
	atomic_int peak;
	int sleep_us;
	int rc[N];
	char msg[N][64];
};

static void sleep_us(int us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static int count_one(size_t i, void *arg)
{
	struct counts *c = arg;
	int now = atomic_fetch_add(&c->running, 1) + 1;
	int peak = atomic_load(&c->peak);

	while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak,
							   now))
		;
	atomic_fetch_add(&c->calls[i], 1);
	if (c->sleep_us)
		sleep_us(c->sleep_us);
	/* odd indexes fail, each with its own message */
	c->rc[i] = i % 2 ? ml_err_set(ML_EHOST, "host %zu failed", i) : 0;
	if (c->rc[i])
		snprintf(c->msg[i], sizeof(c->msg[i]), "%s", ml_err_msg());
	atomic_fetch_sub(&c->running, 1);
	return c->rc[i];
}

static struct counts *run(size_t n, int par, int sleep)
{
	struct counts *c = ml_xcalloc(1, sizeof(*c));

	c->sleep_us = sleep;
	assert_int_equal(ml_parallel_run(n, par, count_one, c), 0);
	return c;
}

static void check_once(struct counts *c, size_t n)
{
	char want[64];
	size_t i;

	for (i = 0; i < N; i++)
		assert_int_equal(atomic_load(&c->calls[i]), i < n ? 1 : 0);
	for (i = 1; i < n; i += 2) {
		snprintf(want, sizeof(want), "host %zu failed", i);
		assert_string_equal(c->msg[i], want);
	}
}

static void test_parallel__each_index_once(void **state)
{
	int par[] = { -1, 0, 1, 2, 7, 64, 1000 };
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(par); i++) {
		struct counts *c = run(N, par[i], 0);

		check_once(c, N);
		free(c);
	}
}

static void test_parallel__bounded_and_concurrent(void **state)
{
	struct counts *c;
	struct timespec a, b;
	double ms;

	/* 40 calls of 20 ms, 8 at a time: about 100 ms, never above 8 */
	clock_gettime(CLOCK_MONOTONIC, &a);
	c = run(40, 8, 20000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	check_once(c, 40);
	assert_true(atomic_load(&c->peak) <= 8);
	assert_true(atomic_load(&c->peak) >= 2);
	assert_true(ms < 600);
	free(c);

	/* one at a time means one at a time */
	c = run(10, 1, 2000);
	assert_int_equal(atomic_load(&c->peak), 1);
	check_once(c, 10);
	free(c);

	/* fewer items than workers */
	c = run(3, 16, 10000);
	assert_true(atomic_load(&c->peak) <= 3);
	check_once(c, 3);
	free(c);
}

static void test_parallel__nothing_to_do(void **state)
{
	struct counts *c = run(0, 4, 0);

	check_once(c, 0);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parallel__each_index_once),
		cmocka_unit_test(test_parallel__bounded_and_concurrent),
		cmocka_unit_test(test_parallel__nothing_to_do),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
