/*
 * Error messages of a failing deploy on the simulated fleet: each layer's
 * context appears once, in order, and the lower layer's reason comes
 * through whole. These are the sites that once formatted ml_err_msg() into
 * the buffer it was read from (the message came out garbled or with its
 * context repeated): the automatic rollback that fails too
 * (orchestrator/deploy.c), the image of a recorded revision missing from
 * the controller's Docker (orchestrator/image/prepare.c), and a balancer
 * refusing a request (orchestrator/apply/rollout.c, lb_call). The bootstrap and secrets sites
 * are in tests/e2e/test_cli.c and tests/unit/common/test_err.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/proc.h"

#include <jansson.h>
#include <unistd.h>

static struct {
	struct ml_test_app app;
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, NULL, args);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

static void playbook(const char *health_path, int listen)
{
	char *pb = ml_xasprintf(
		"app: errors-api\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		"health: {path: %s, interval: 500ms, timeout: 400ms,"
		" start_period: 3s, unhealthy_threshold: 2}\n"
		"replicas: 1\n"
		"targets: [web]\n"
		"rollout: {batch: 2, failure_budget: 0, auto_rollback: true,"
		" drain_timeout: 1s}\n"
		"load_balancer: {hosts: [lb], listen: %d}\n",
		health_path, listen);

	ml_test_write(F.app.repo, "mlctl.yaml", pb);
	free(pb);
}

static char *commit_model(int score, const char *msg)
{
	char *model = ml_xasprintf("great %d\ngood 2\nbad -2\n", score);

	ml_test_write(F.app.repo, "model.txt", model);
	free(model);
	return ml_test_commit(F.app.repo, msg);
}

static int group_setup(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	if (ml_test_app_init(&F.app, "errors") < 0)
		return -1;
	playbook("/healthz", 8090);
	free(commit_model(3, "v1"));
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	ml_test_app_release(&F.app);
	return 0;
}

/*
 * v1 deploys; its image then leaves the controller's Docker; v2 fails its
 * health check, and the automatic rollback to v1 fails too, for want of
 * v1's image. The message: v2's failure, then the rollback's, then why,
 * each once.
 */
static void test_errors__rollback_that_fails_too(void **s)
{
	struct ml_test_out o;
	json_t *h;
	const char *image;
	char *rm, *want;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	ml_test_must(&o, 0);
	h = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	assert_non_null(h);
	image = json_string_value(
		json_object_get(json_array_get(h, 0), "image_id"));
	assert_non_null(image);
	/* the test made this image: it may remove it */
	ml_test_run(&o, NULL, NULL, NULL, 60,
		    (const char *const[]){ "docker", "rmi", "-f", image,
					   NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);

	playbook("/no-such-page", 8090);
	free(commit_model(5, "v2: a health path the app lacks"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 7);
	want = ml_xasprintf("; the automatic rollback to revision 1 failed "
			    "too: the image of revision 1 (%.19s) is not in "
			    "the local Docker any more: ",
			    image);
	fprintf(stderr, "--- stderr of the deploy\n%s", o.err);
	assert_int_equal(count(o.err, want), 1);
	assert_int_equal(count(o.err, "failed too"), 1);
	assert_int_equal(count(o.err, "is not in the local Docker any more"),
			 1);
	/* the reason after the last context is Docker's, not ours again */
	rm = strstr(o.err, want);
	assert_non_null(rm);
	assert_null(strstr(rm + strlen(want), "the image of revision"));
	assert_true(strlen(rm + strlen(want)) > 2);
	ml_test_out_release(&o);
	free(want);
	json_decref(h);

	/* v1's spec again: the hosts still run v1 (v2 failed on both), so
	 * nothing changes and revision 1 stays the last good one */
	playbook("/healthz", 8090);
	free(commit_model(3, "v3: v1 again"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
}

/*
 * The balancer cannot listen where the playbook says (sshd holds port 22
 * on its VM): its refusal, named by the balancer once.
 */
static void test_errors__balancer_refuses(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	playbook("/healthz", 22);
	free(commit_model(4, "v4: the balancer on sshd's port"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	assert_int_not_equal(o.status, 0);
	fprintf(stderr, "--- stderr of the deploy\n%s", o.err);
	assert_int_equal(count(o.err, "load balancer 'lb1': "), 1);
	assert_null(strstr(o.err, "load balancer 'lb1': load balancer"));
	assert_non_null(strstr(o.err, "load balancer 'lb1': lb_apply failed: "
				      "haproxy for app 'errors-api' did not "
				      "start"));
	ml_test_out_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors__rollback_that_fails_too),
		cmocka_unit_test(test_errors__balancer_refuses),
	};

	return cmocka_run_group_tests_name("e2e/errors", tests, group_setup,
					   group_teardown);
}
