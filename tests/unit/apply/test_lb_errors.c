/*
 * The message of a balancer request that fails during a rollout names the
 * balancer once, then the agent's reason whole. ml_ro_lb_set_weight (the
 * canary's live weights) once added "load balancer 'NAME': " a second
 * time over the prefix that ml_ro_lb_done had already put there, reading
 * the message from the buffer it was writing. The balancer's session here
 * is an in-memory stream holding the agent's error reply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/apply/rollout_int.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "tests/unit/common/mem_io.h"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

/* The frame an agent sends for a failed request number id. */
static void error_reply(struct mem_io *m, uint64_t id, const char *msg)
{
	struct ml_io io;
	json_t *r = ml_proto_error_reply(id, "failed", msg);

	mem_io_init(&io, m, NULL, 0);
	assert_int_equal(ml_proto_send(&io, r), 0);
	json_decref(r);
}

static void test_lb_errors__set_weight_names_the_balancer_once(void **state)
{
	struct mem_io reply, wire;
	struct ml_io io;
	char lb_name[] = "lb1", app[] = "demo";
	struct ml_target lb = {.name = lb_name, .is_lb = true};
	struct ml_host_session h = {.target = &lb, .next_id = 1};
	struct ml_host_session *lbs[] = {&h};
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct ml_playbook pb = {.app = app};
	struct ml_config cfg = {.playbook = &pb};
	struct ml_rollout ro = {.cfg = &cfg};
	struct ml_rollout_state st = {
		.lb = lbs, .lb_lock = &lock, .nlb = 1, .ro = &ro};
	const char *want = "load balancer 'lb1': lb_set failed: no server "
			   "'vm1-0b' in backend 'demo'";

	(void)state;
	error_reply(&reply, 1, "no server 'vm1-0b' in backend 'demo'");
	mem_io_init(&io, &wire, reply.out.data, reply.out.len);
	h.io = &io;
	ml_err_clear();
	assert_true(ml_ro_lb_set_weight(&st, "vm1-0b", "ready", 10) < 0);
	if (strcmp(ml_err_msg(), want))
		fail_msg("message '%s', want '%s'", ml_err_msg(), want);
	assert_int_equal(count(ml_err_msg(), "load balancer"), 1);
	mem_io_release(&wire);
	mem_io_release(&reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_lb_errors__set_weight_names_the_balancer_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
