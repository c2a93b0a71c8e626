/*
 * End-to-end tests of canary by traffic weight (issue 13) on the simulated
 * fleet, with the Python example (examples/iris: its answers carry the
 * revision that gave them, and FAIL_RATE / LATENCY_MS make a revision
 * misbehave) behind the fleet's HAProxy, under open-loop load at a rate
 * the fleet was measured to hold first:
 *
 *   - a manual 10% step gives the new revision 10% +- 3% of the requests,
 *     counted by the load generator from the answers, and waits until
 *     `mlctl promote` from a second controller process; the revision is
 *     then promoted to 100% and the ledger holds the step's numbers;
 *   - a revision failing 5% of its requests, and one adding 300 ms, are
 *     each aborted at the first step and rolled back (exit 7), with the
 *     clients' failures at most the canary's share of the step;
 *   - a golden request whose answer the new revision does not give stops
 *     the rollout before any user request reaches it;
 *   - a manual step nobody decides aborts at its timeout.
 *
 * The cases share the suite's setup and run in order (each deploys over
 * the state the one before left). Real parts throughout: mlctl's base
 * image, the controller's Docker, sshd, dockerd and HAProxy in the
 * fleet's namespaces, git.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/loadgen.h"
#include "tests/support/proc.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define APP "canary-e2e"
#define PREDICT "/predict?x=5.1,3.5,1.4,0.2"

static struct {
	struct ml_test_app app;
	char *repo, *lb_addr; /* borrowed from app */
	char *url;
	int rate; /* open-loop rate of the load, measured in setup */
	int rev;  /* the revision the last commit's deploy records */
	int good; /* the revision that serves */
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, NULL, args);
}

/* Write the playbook with this rollout block and env, commit it; the next
 * deploy records revision ++F.rev. */
static void commit_playbook(const char *rollout, const char *env)
{
	char *pb = ml_xasprintf(
		"app: " APP "\n"
		"image: {build: {context: ., dockerfile: Dockerfile}}\n"
		"port: 8000\n"
		"health: {path: /healthz, interval: 1s, timeout: 1s, "
		"start_period: 60s, expect_status: [200]}\n"
		"targets: [web]\n"
		"rollout:\n"
		"  batch: 3\n"
		"  drain_timeout: 5s\n"
		"%s"
		"load_balancer: {hosts: lb, listen: 80}\n"
		"env:\n"
		"  CANARY_CASE: \"%d\"\n"
		"%s",
		rollout, F.rev + 1, env);

	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(ml_test_commit(F.repo, "playbook"));
	F.rev++;
}

static const char *marker(int rev, char *buf, size_t n)
{
	snprintf(buf, n, "\"revision\":\"%d\"", rev);
	return buf;
}

/* A deploy run on a thread, so the test can load and decide meanwhile. */
struct bg {
	pthread_t t;
	struct ml_test_out o;
};

static void *bg_run(void *arg)
{
	struct bg *b = arg;

	mlctl(&b->o, (const char *const[]){ "deploy", NULL });
	return NULL;
}

static void show_has(int rev, const char *const *needles)
{
	char n[32];
	struct ml_test_out o;
	size_t i;

	snprintf(n, sizeof(n), "%d", rev);
	mlctl(&o, (const char *const[]){ "show", n, NULL });
	ml_test_must(&o, 0);
	for (i = 0; needles[i]; i++) {
		if (!strstr(o.out, needles[i]))
			print_error("'mlctl show %d' lacks '%s':\n%s\n", rev,
				    needles[i], o.out);
		assert_non_null(strstr(o.out, needles[i]));
	}
	ml_test_out_release(&o);
}

/* Every answer now comes from revision rev. */
static void all_answers_from(int rev)
{
	char m[64];
	const char *marks[] = { marker(rev, m, sizeof(m)), NULL };
	struct ml_loadgen_stats st;
	struct ml_loadgen *lg;

	lg = ml_loadgen_start_open(F.url, 20, 40, 10, marks);
	sleep(3); /* 2 s of requests, and time for the last answers */
	ml_loadgen_stop(lg, &st);
	fprintf(stderr, "after: %ld sent, %ld failed, %ld from revision %d\n",
		st.sent, st.failed, st.by_body[0], rev);
	assert_true(st.sent >= 20);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.by_body[0], st.sent);
}

static int group_setup(void **state)
{
	ML_UNUSED(state);
	if (ml_test_app_init_python(&F.app, "canary", APP) < 0)
		return -1;
	F.repo = F.app.repo;
	F.lb_addr = F.app.lb_addr;
	F.url = ml_xasprintf("http://%s" PREDICT, F.lb_addr);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	ml_test_app_release(&F.app);
	free(F.url);
	return 0;
}

/* The first revision, and the rate the fleet holds with it. */
static void test_canary__first_deploy_and_rate(void **s)
{
	struct ml_test_out o;
	int held;

	ML_UNUSED(s);
	commit_playbook("", "");
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	/* no other revision to compare with: nothing to judge */
	ml_test_out_release(&o);
	held = ml_loadgen_held_rate(F.url, 120, 15, 4);
	fprintf(stderr, "the fleet holds %d requests/s of %s\n", held,
		PREDICT);
	assert_true(held >= 15);
	/* half of what held, at most 30/s: room for a deploy's own work
	 * (image builds, container starts) on a machine shared with others */
	F.rate = held / 2 > 30 ? 30 : held / 2 < 15 ? 15 : held / 2;
	fprintf(stderr, "load during the canary cases: %d requests/s\n",
		F.rate);
	F.good = 1;
	all_answers_from(1);
}

/*
 * A manual 10% step: the share by the answers, held until `mlctl promote`
 * from another process, then promoted to 100%, numbers in the ledger.
 */
static void test_canary__manual_step_share_and_promote(void **s)
{
	char m1[64], m2[64];
	const char *marks[3];
	struct ml_loadgen_stats a, b;
	struct ml_loadgen *lg;
	struct ml_test_out o;
	struct bg bg = { 0 };
	long d1, d2;
	double share;
	int i;

	ML_UNUSED(s);
	commit_playbook("  canary: [{weight: 10%, for: manual, timeout: 3m}]\n"
			"  analysis: {min_requests: 20}\n",
			"");
	marks[0] = marker(F.rev - 1, m1, sizeof(m1));
	marks[1] = marker(F.rev, m2, sizeof(m2));
	marks[2] = NULL;
	lg = ml_loadgen_start_open(F.url, F.rate, 1000000, 240, marks);
	pthread_create(&bg.t, NULL, bg_run, &bg);
	/* the canary takes requests once its step started */
	for (i = 0; i < 240; i++) {
		ml_loadgen_peek(lg, &a);
		if (a.by_body[1] > 0)
			break;
		sleep(1);
	}
	assert_true(a.by_body[1] > 0);
	sleep(2);
	ml_loadgen_peek(lg, &a);
	sleep(20);
	ml_loadgen_peek(lg, &b);
	d1 = b.by_body[0] - a.by_body[0];
	d2 = b.by_body[1] - a.by_body[1];
	share = d1 + d2 ? 100.0 * (double)d2 / (double)(d1 + d2) : 0;
	fprintf(stderr, "10%% step over 20 s at %d/s: %ld from revision %d, "
		"%ld from revision %d: %.1f%%\n",
		F.rate, d1, F.rev - 1, d2, F.rev, share);

	/* a second controller process decides (before any assertion: a
	 * failed one would leave the deploy holding the fleet) */
	mlctl(&o, (const char *const[]){ "promote", NULL });
	pthread_join(bg.t, NULL);
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "promoted"));
	ml_test_out_release(&o);
	assert_true(d1 + d2 >= 100);
	assert_true(share >= 7.0 && share <= 13.0);
	ml_loadgen_stop(lg, &b);
	fprintf(stderr, "deploy with a manual step: %ld sent, %ld failed "
		"(%s)\n", b.sent, b.failed, b.first_error);
	ml_test_must(&bg.o, 0);
	assert_non_null(strstr(bg.o.out, "canary"));
	ml_test_out_release(&bg.o);
	/* nothing waits any more */
	mlctl(&o, (const char *const[]){ "promote", NULL });
	ml_test_must(&o, 11);
	ml_test_out_release(&o);
	show_has(F.rev, (const char *const[]){ "decision", "promote",
					       "new ", "p99", NULL });
	F.good = F.rev;
	all_answers_from(F.rev);
}

/* A bad revision under load: aborted at the first step, rolled back. */
static void bad_revision(const char *env, const char *reason)
{
	char m1[64], m2[64];
	const char *marks[3];
	struct ml_loadgen_stats st;
	struct ml_loadgen *lg;
	struct ml_test_out o;
	int good = F.good;

	commit_playbook("  canary: [{weight: 10%, for: 40s}, "
			"{weight: 50%, for: 40s}]\n"
			/* the ratio to the old p99 alone is at the mercy
			 * of the machine's load: 280 ms is a limit the
			 * 300 ms revision always passes */
			"  analysis: {min_requests: 20, interval: 2s, "
			"max_p99: 280ms}\n",
			env);
	marks[0] = marker(good, m1, sizeof(m1));
	marks[1] = marker(F.rev, m2, sizeof(m2));
	marks[2] = NULL;
	lg = ml_loadgen_start_open(F.url, F.rate, 1000000, 300, marks);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_loadgen_stop(lg, &st);
	fprintf(stderr, "bad revision (%s): %ld sent, %ld failed, %ld from "
		"the canary (%s)\n", env, st.sent, st.failed, st.by_body[1],
		st.first_error);
	ml_test_must(&o, 7);
	assert_non_null(strstr(o.out, "abort"));
	assert_non_null(strstr(o.err, reason));
	assert_non_null(strstr(o.err, "step 1"));
	ml_test_out_release(&o);
	/* the clients' failed answers: at most the canary's share of the
	 * step. Requests that got no answer within 5 s are counted apart:
	 * neither revision takes that long, they are the machine's load
	 * (a container starting on 2 shared cores), said so, not hidden */
	fprintf(stderr, "  %ld error answers, %ld without an answer\n",
		st.http_errors, st.failed - st.http_errors);
	assert_true(st.http_errors * 10 <= st.sent);
	show_has(F.rev, (const char *const[]){ "abort", reason, NULL });
	all_answers_from(good);
}

static void test_canary__failing_revision_aborted(void **s)
{
	ML_UNUSED(s);
	bad_revision("  FAIL_RATE: \"0.05\"\n", "error rate");
}

static void test_canary__slow_revision_aborted(void **s)
{
	ML_UNUSED(s);
	bad_revision("  LATENCY_MS: \"300\"\n", "p99");
}

/* A golden request the new revision gets wrong: no user request reaches
 * it, and the differences to the old revision are recorded. */
static void test_canary__golden_request_stops_rollout(void **s)
{
	char m1[64], m2[64];
	const char *marks[3];
	struct ml_loadgen_stats st;
	struct ml_loadgen *lg;
	struct ml_test_out o;
	int good = F.good;

	ML_UNUSED(s);
	commit_playbook(
		"  canary: [{weight: 10%, for: 20s}]\n"
		"  analysis: {min_requests: 20}\n"
		"  verify:\n"
		"    compare: true\n"
		"    requests:\n"
		"      - {path: /healthz, expect: {json: {field: status, "
		"value: ready}}}\n"
		"      - method: POST\n"
		"        path: /predict\n"
		"        body: '{\"features\": [[5.1, 3.5, 1.4, 0.2]]}'\n"
		"        expect: {status: 200, body: virginica}\n",
		"  MODEL_NOTE: golden\n");
	marks[0] = marker(good, m1, sizeof(m1));
	marks[1] = marker(F.rev, m2, sizeof(m2));
	marks[2] = NULL;
	lg = ml_loadgen_start_open(F.url, F.rate, 1000000, 300, marks);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_loadgen_stop(lg, &st);
	fprintf(stderr, "golden request: %ld sent, %ld failed (%ld HTTP "
		"errors; %s), %ld from the new revision\n", st.sent, st.failed,
		st.http_errors, st.first_error, st.by_body[1]);
	ml_test_must(&o, 7);
	assert_non_null(strstr(o.err, "golden request 2"));
	ml_test_out_release(&o);
	/* no user request reached it; nothing answered an error (timeouts
	 * of a loaded machine are the old revision's, and counted above) */
	assert_int_equal(st.by_body[1], 0);
	assert_int_equal(st.http_errors, 0);
	show_has(F.rev, (const char *const[]){ "verify", "virginica",
					       "verify-diff", NULL });
	all_answers_from(good);
}

/* A manual step nobody decides: aborted at its timeout. */
static void test_canary__manual_step_times_out(void **s)
{
	struct ml_test_out o;
	int good = F.good;
	time_t t0 = time(NULL);

	ML_UNUSED(s);
	commit_playbook("  canary: [{weight: 20%, for: manual, timeout: 8s}]\n"
			"  analysis: {min_requests: 1000000}\n",
			"");
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 7);
	assert_non_null(strstr(o.err, "no decision within"));
	ml_test_out_release(&o);
	assert_true(time(NULL) - t0 >= 8);
	show_has(F.rev, (const char *const[]){ "abort", NULL });
	all_answers_from(good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary__first_deploy_and_rate),
		cmocka_unit_test(test_canary__manual_step_share_and_promote),
		cmocka_unit_test(test_canary__failing_revision_aborted),
		cmocka_unit_test(test_canary__slow_revision_aborted),
		cmocka_unit_test(test_canary__golden_request_stops_rollout),
		cmocka_unit_test(test_canary__manual_step_times_out),
	};

	if (getenv("ML_TEST_CASES") && *getenv("ML_TEST_CASES"))
		cmocka_set_test_filter(getenv("ML_TEST_CASES"));
	return cmocka_run_group_tests_name("e2e/canary", tests, group_setup,
					   group_teardown);
}
