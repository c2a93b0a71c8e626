/*
 * The relay plan (orchestrator/apply/relay_plan.c) as data: each case is
 * the hosts' holdings (one string per host, '1' where it holds blob b),
 * the blob sizes, the hosts that cannot relay ('d'), seeds and fanout, and
 * the expected plan in ml_relay_plan_format's text ("c" the controller),
 * and with `chain` the pipelined first round (every hop of it at once).
 */
#include "common/ml.h"
#include "orchestrator/apply/relay_plan.h"

#include <setjmp.h>
#include <cmocka.h>

struct relay_case {
	const char *name;
	const char *hosts[10]; /* NULL-terminated */
	int64_t sizes[4];
	size_t nblobs;
	const char *direct; /* NULL or one char per host: 'd' or '.' */
	int seeds, fanout;
	const char *want;
	const char *bad; /* NULL or "to:from" of one failed pair */
	size_t chain;	 /* hosts in the pipelined first round, 0 none */
};

static const struct relay_case cases[] = {
	{"cold 4 hosts, one seed: the controller sends once, then 1>2>4",
	 {"00", "00", "00", "00", NULL},
	 {100, 5},
	 2,
	 NULL,
	 1,
	 1,
	 "1: c>0[0,1]\n2: 0>1[0,1]\n3: 0>2[0,1] 1>3[0,1]\n"},
	{"cold 8 hosts: 1 + 3 rounds",
	 {"0", "0", "0", "0", "0", "0", "0", "0", NULL},
	 {200},
	 1,
	 NULL,
	 1,
	 1,
	 "1: c>0[0]\n2: 0>1[0]\n3: 0>2[0] 1>3[0]\n"
	 "4: 0>4[0] 1>5[0] 2>6[0] 3>7[0]\n"},
	{"two seeds",
	 {"0", "0", "0", "0", "0", NULL},
	 {10},
	 1,
	 NULL,
	 2,
	 1,
	 "1: c>0[0] c>1[0]\n2: 0>2[0] 1>3[0]\n3: 0>4[0]\n"},
	{"fanout 2",
	 {"0", "0", "0", "0", "0", NULL},
	 {10},
	 1,
	 NULL,
	 1,
	 2,
	 "1: c>0[0]\n2: 0>1[0] 0>2[0]\n3: 0>3[0] 1>4[0]\n"},
	{"a warm host relays at once; the controller sends nothing",
	 {"0", "1", "0", NULL},
	 {10},
	 1,
	 NULL,
	 1,
	 1,
	 "1: 1>0[0]\n2: 0>2[0]\n"},
	{"only the layer nobody has crosses the uplink",
	 {"10", "10", "00", NULL},
	 {50, 7},
	 2,
	 NULL,
	 1,
	 1,
	 "1: c>2[1]\n2: 0>2[0] 2>0[1]\n3: 0>1[1]\n"},
	{"a host that cannot relay gets everything from the controller",
	 {"0", "0", "0", NULL},
	 {10},
	 1,
	 ".d.",
	 1,
	 1,
	 "1: c>1[0] c>0[0]\n2: 0>2[0]\n"},
	{"a warm host serves the largest lack first",
	 {"01", "00", "11", NULL},
	 {30, 3},
	 2,
	 NULL,
	 1,
	 1,
	 "1: 2>1[0,1]\n2: 1>0[0]\n"},
	{"nothing to do", {"11", "11", NULL}, {1, 2}, 2, NULL, 1, 1, ""},
	{"an empty blob still moves",
	 {"0", "0", NULL},
	 {0},
	 1,
	 NULL,
	 1,
	 1,
	 "1: c>0[0]\n2: 0>1[0]\n"},
	{"every host direct",
	 {"0", "0", NULL},
	 {9},
	 1,
	 "dd",
	 1,
	 1,
	 "1: c>0[0] c>1[0]\n"},
	{"chained: the 8 hosts pass the blob on as it arrives, in one round",
	 {"0", "0", "0", "0", "0", "0", "0", "0", NULL},
	 {200},
	 1,
	 NULL,
	 1,
	 1,
	 "1: c>0[0] 0>1[0] 1>2[0] 2>3[0] 3>4[0] 4>5[0] 5>6[0] 6>7[0]\n",
	 NULL,
	 16},
	{"a chain of at most 4: the other 4 get the blob from its hosts",
	 {"0", "0", "0", "0", "0", "0", "0", "0", NULL},
	 {200},
	 1,
	 NULL,
	 1,
	 1,
	 "1: c>0[0] 0>1[0] 1>2[0] 2>3[0]\n2: 0>4[0] 1>5[0] 2>6[0] 3>7[0]\n",
	 NULL,
	 4},
	{"two seeds: two chains",
	 {"0", "0", "0", "0", "0", NULL},
	 {10},
	 1,
	 NULL,
	 2,
	 1,
	 "1: c>0[0] c>1[0] 0>2[0] 1>3[0] 2>4[0]\n",
	 NULL,
	 16},
	{"no orphan: no chain, a warm host relays",
	 {"0", "1", "0", NULL},
	 {10},
	 1,
	 NULL,
	 1,
	 1,
	 "1: 1>0[0]\n2: 0>2[0]\n",
	 NULL,
	 16},
	{"a host that cannot relay is left out of the chain",
	 {"0", "0", "0", NULL},
	 {10},
	 1,
	 ".d.",
	 1,
	 1,
	 "1: c>0[0] 0>2[0]\n2: c>1[0]\n",
	 NULL,
	 16},
	{"the chain steps around a pair that failed",
	 {"0", "0", "0", NULL},
	 {10},
	 1,
	 NULL,
	 1,
	 1,
	 "1: c>0[0] 0>2[0] 2>1[0]\n",
	 "1:0",
	 16},
	{"the chain carries the orphans; the rest follows in rounds",
	 {"10", "00", "00", NULL},
	 {50, 7},
	 2,
	 NULL,
	 1,
	 1,
	 "1: c>1[1] 1>2[1] 2>0[1]\n2: 0>1[0]\n3: 0>2[0]\n",
	 NULL,
	 16},
	{"one host: no chain",
	 {"0", "1", NULL},
	 {10},
	 1,
	 NULL,
	 1,
	 1,
	 "1: 1>0[0]\n",
	 NULL,
	 16},
};

static void run_case(const struct relay_case *c)
{
	size_t n = 0, h, b;
	unsigned char have[10 * 4] = {0}, direct[10] = {0}, bad[10 * 10] = {0};
	struct ml_relay_in in = {0};
	struct ml_relay_plan p;
	struct ml_buf got = ML_BUF_INIT(1 << 16);

	while (c->hosts[n])
		n++;
	for (h = 0; h < n; h++) {
		assert_int_equal(strlen(c->hosts[h]), c->nblobs);
		for (b = 0; b < c->nblobs; b++)
			have[h * c->nblobs + b] = c->hosts[h][b] == '1';
		direct[h] = c->direct && c->direct[h] == 'd';
	}
	in.nhosts = n;
	in.nblobs = c->nblobs;
	in.sizes = c->sizes;
	in.have = have;
	in.direct = c->direct ? direct : NULL;
	if (c->bad)
		bad[(size_t)(c->bad[0] - '0') * n + (size_t)(c->bad[2] - '0')] =
			1;
	in.bad = c->bad ? bad : NULL;
	in.seeds = c->seeds;
	in.fanout = c->fanout;
	in.chain = c->chain;
	ml_relay_plan(&p, &in);
	ml_relay_plan_format(&got, &p);
	if (strcmp(ml_buf_str(&got), c->want))
		fail_msg("case '%s':\n got:\n%s want:\n%s", c->name,
			 ml_buf_str(&got), c->want);
	ml_relay_plan_release(&p);
	ml_buf_release(&got);
}

static void test_relay_plan__cases(void **state)
{
	size_t i;

	ML_UNUSED(state);
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++)
		run_case(&cases[i]);
}

/* 200 cold hosts: every host ends up with everything, the controller
 * sends the blob once, and the rounds are 1 + ceil(log2(200)) = 9. */
static void test_relay_plan__many(void **state)
{
	enum { N = 200 };
	unsigned char have[N] = {0};
	int64_t size = 1 << 20;
	struct ml_relay_in in = {N, 1, &size, have, NULL, NULL, 1, 1};
	struct ml_relay_plan p;
	int got[N] = {0}, from_ctl = 0;
	size_t i, j;

	ML_UNUSED(state);
	ml_relay_plan(&p, &in);
	assert_int_equal(p.nrounds, 9);
	for (i = 0; i < p.nrounds; i++)
		for (j = 0; j < p.rounds[i].n; j++) {
			got[p.rounds[i].x[j].to]++;
			from_ctl += p.rounds[i].x[j].from ==
				    ML_RELAY_FROM_CONTROLLER;
		}
	for (i = 0; i < N; i++)
		assert_int_equal(got[i], 1);
	assert_int_equal(from_ctl, 1);
	ml_relay_plan_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_plan__cases),
		cmocka_unit_test(test_relay_plan__many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
