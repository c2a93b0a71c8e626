/*
 * Unit tests of orchestrator/fleet/ops.c: the request each typed op
 * function writes, byte for byte the wire format the agent reads. Each
 * call goes to a session whose stream is in memory (nothing to read back,
 * so the call fails after writing); the one frame it wrote is decoded and
 * its op and args compared with the expected ones. Every op of the
 * agent's table that the controller calls has a case here, so an op
 * added to agent/dispatch.c without its controller function fails
 * test_ops__every_agent_op_has_a_case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "agent/agent.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/fleet/ops_relay.h"
#include "orchestrator/image/image.h"
#include "orchestrator/prune/prune.h"
#include "tests/unit/common/mem_io.h"

/* A session on an in-memory stream, and what was written on it. */
struct rig {
	struct ml_host_session h;
	struct ml_io io;
	struct mem_io m;
};

static void rig_init(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	mem_io_init(&r->io, &r->m, NULL, 0);
	r->h.io = &r->io;
	r->h.next_id = 1;
}

/* The request written on r's stream: {"op", "args"} or NULL. */
static json_t *rig_request(struct rig *r)
{
	const unsigned char *p = (const unsigned char *)r->m.out.data;
	size_t n = r->m.out.len;
	uint32_t len;
	json_t *msg = NULL;

	if (n < 5)
		return NULL;
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	      (uint32_t)p[2] << 8 | p[3];
	assert_int_equal(p[4], ML_FRAME_JSON);
	assert_int_equal(len + 4, n); /* one frame, nothing more */
	assert_int_equal(ml_proto_decode(&msg, p + 5, len - 1), 0);
	return msg;
}

/* Assert that r's request is op with args equal to the JSON text want. */
static void expect(struct rig *r, const char *op, const char *want)
{
	json_t *msg = rig_request(r), *args, *w;
	json_error_t err;

	assert_non_null(msg);
	assert_string_equal(json_string_value(json_object_get(msg, "op")), op);
	args = json_object_get(msg, "args");
	w = json_loads(want, 0, &err);
	assert_non_null(w);
	if (!json_equal(args, w)) {
		char *got = json_dumps(args, JSON_SORT_KEYS);

		print_error("%s: args %s, want %s\n", op, got, want);
		free(got);
		fail();
	}
	json_decref(w);
	json_decref(msg);
	mem_io_release(&r->m);
}

/* Call (which fails once it has written: nothing comes back), then
 * expect its request. */
#define CASE(call, op, want)                                                   \
	do {                                                                   \
		rig_init(&r);                                                  \
		assert_true((call) < 0);                                       \
		expect(&r, op, want);                                          \
	} while (0)

#define D1                                                                     \
	"sha256:"                                                              \
	"1111111111111111111111111111111111111111111111111111111111111111"
#define D2                                                                     \
	"sha256:"                                                              \
	"2222222222222222222222222222222222222222222222222222222222222222"
#define D3                                                                     \
	"sha256:"                                                              \
	"3333333333333333333333333333333333333333333333333333333333333333"

static struct ml_image *test_image(void)
{
	static char *layers[] = {(char *)D2, (char *)D3};
	static int64_t sizes[] = {10, 20};
	static struct ml_image img;

	img.id = (char *)D1;
	img.config_digest = (char *)D1;
	img.layers = layers;
	img.nlayers = 2;
	img.layer_sizes = sizes;
	return &img;
}

/* The ops the cases below cover, to compare with the agent's table. */
static const char *const covered[] = {
	"list", "inspect", "container_run", "container_wait", "container_stop",
	"container_logs", "container_probe", "container_request", "blobs_have",
	"blob_put", "image_load", "lb_apply", "lb_set", "lb_remove",
	"lb_status", "lb_requests", "lb_revisions", "lock_acquire",
	"lock_renew", "lock_release", "lock_status", "canary_gate",
	"prune_scan", "prune",
	/* in orchestrator/fleet/ops_relay.c */
	"relay_key", "relay_allow", "relay_send", "relay_end",
	/* not called by ml_op_*: */
	"hello",	   /* ml_proto_hello, when a session opens */
	"lb_wait_drained", /* the controller polls lb_status */
};

static void test_ops__every_agent_op_has_a_case(void **state)
{
	const struct ml_agent_op *const *ops;
	size_t n, i, k;

	ML_UNUSED(state);
	ops = ml_agent_ops(&n);
	for (i = 0; i < n; i++) {
		for (k = 0; k < ML_ARRAY_SIZE(covered); k++)
			if (!strcmp(ops[i]->name, covered[k]))
				break;
		if (k == ML_ARRAY_SIZE(covered))
			print_error("agent op '%s' has no typed function in "
				    "orchestrator/fleet/ops.c\n",
				    ops[i]->name);
		assert_true(k < ML_ARRAY_SIZE(covered));
	}
	/* and nothing covered that the agent does not know */
	for (k = 0; k < ML_ARRAY_SIZE(covered); k++) {
		for (i = 0; i < n; i++)
			if (!strcmp(ops[i]->name, covered[k]))
				break;
		assert_true(i < n);
	}
}

static void test_ops__containers(void **state)
{
	struct ml_health_spec hs = {0};
	struct ml_verify_req q = {0};
	struct rig r;

	ML_UNUSED(state);
	hs.path = (char *)"/healthz";
	hs.interval_ms = 2000;
	hs.timeout_ms = 1000;
	hs.start_period_ms = 60000;
	hs.healthy_threshold = 1;
	hs.unhealthy_threshold = 3;

	CASE(ml_op_list(&r.h, "demo", NULL), "list", "{\"app\":\"demo\"}");

	CASE(ml_op_inspect(&r.h, "c1", NULL), "inspect", "{\"id\":\"c1\"}");

	CASE(ml_op_container_run(
		     &r.h, json_pack("{s:s,s:i}", "app", "demo", "replica", 0),
		     NULL),
	     "container_run", "{\"app\":\"demo\",\"replica\":0}");

	CASE(ml_op_container_wait(&r.h, "c1", 20001, &hs, 99000, NULL),
	     "container_wait",
	     "{\"id\":\"c1\",\"host_port\":20001,\"path\":\"/healthz\","
	     "\"interval_ms\":2000,\"timeout_ms\":1000,"
	     "\"start_period_ms\":60000,\"healthy_threshold\":1,"
	     "\"unhealthy_threshold\":3,\"deadline_ms\":99000}");

	CASE(ml_op_container_stop(&r.h, "c1", 10, NULL), "container_stop",
	     "{\"id\":\"c1\",\"timeout_s\":10}");

	CASE(ml_op_container_logs(&r.h, "c1", true, 100, 0, NULL),
	     "container_logs",
	     "{\"id\":\"c1\",\"timestamps\":true,\"tail\":100}");
	CASE(ml_op_container_logs(&r.h, "c1", true, 500, 42, NULL),
	     "container_logs",
	     "{\"id\":\"c1\",\"timestamps\":true,\"tail\":500,"
	     "\"after_ns\":42}");

	hs.expect_body = (char *)"ready";
	CASE(ml_op_container_probe(&r.h, "c1", "/", 3000, &hs, NULL),
	     "container_probe",
	     "{\"id\":\"c1\",\"path\":\"/\",\"timeout_ms\":3000,"
	     "\"expect\":{\"body\":\"ready\"}}");

	q.method = (char *)"POST";
	q.path = (char *)"/predict";
	q.body = (char *)"{\"x\":1}";
	q.expect_status = 200;
	q.expect_json_field = (char *)"label";
	q.expect_json_value = (char *)"cat";
	CASE(ml_op_container_request(&r.h, 20002, &q, 5000, NULL),
	     "container_request",
	     "{\"host_port\":20002,\"method\":\"POST\",\"path\":"
	     "\"/predict\",\"body\":\"{\\\"x\\\":1}\",\"timeout_ms\":5000,"
	     "\"expect\":{\"status\":[200],\"json\":{\"field\":\"label\","
	     "\"value\":\"cat\"}}}");
	q.body = NULL;
	q.expect_status = 0;
	q.expect_json_field = NULL;
	CASE(ml_op_container_request(&r.h, 20002, &q, 5000, NULL),
	     "container_request",
	     "{\"host_port\":20002,\"method\":\"POST\",\"path\":"
	     "\"/predict\",\"timeout_ms\":5000}");
}

static void test_ops__images(void **state)
{
	static const char *const tags[] = {"mlctl/demo:abc", NULL};
	struct ml_image *img = test_image();
	uint64_t id = 0;
	struct rig r;

	ML_UNUSED(state);
	CASE(ml_op_blobs_have(&r.h, img, NULL), "blobs_have",
	     "{\"digests\":[\"" D1 "\",\"" D2 "\",\"" D3 "\"]}");

	rig_init(&r);
	assert_int_equal(ml_op_blob_put_begin(&r.h, D2, 10, 4, &id), 0);
	assert_int_equal(id, 1);
	expect(&r, "blob_put",
	       "{\"digest\":\"" D2 "\",\"size\":10,\"offset\":4,"
	       "\"compression\":\"zstd\"}");

	CASE(ml_op_image_load(&r.h, img, tags, NULL), "image_load",
	     "{\"image_id\":\"" D1 "\",\"config\":\"" D1 "\",\"layers\":[\"" D2
	     "\",\"" D3 "\"],\"tags\":[\"mlctl/demo:abc\"]}");
}

static void test_ops__load_balancer(void **state)
{
	json_t *servers = json_pack("[{s:s,s:i,s:i}]", "name", "vm1-0a",
				    "revision", 3, "since_ms", 1000);
	struct rig r;

	ML_UNUSED(state);
	CASE(ml_op_lb_apply(
		     &r.h,
		     json_pack("{s:s,s:i}", "app", "demo", "listen_port", 80),
		     NULL),
	     "lb_apply", "{\"app\":\"demo\",\"listen_port\":80}");

	CASE(ml_op_lb_set(&r.h, "demo", "vm1-0a", "drain", -1, NULL), "lb_set",
	     "{\"app\":\"demo\",\"server\":\"vm1-0a\",\"state\":\"drain\"}");
	CASE(ml_op_lb_set(&r.h, "demo", "vm1-0a", "ready", 0, NULL), "lb_set",
	     "{\"app\":\"demo\",\"server\":\"vm1-0a\",\"state\":\"ready\","
	     "\"weight\":0}");

	CASE(ml_op_lb_remove(&r.h, "demo", NULL), "lb_remove",
	     "{\"app\":\"demo\"}");

	CASE(ml_op_lb_status(&r.h, "demo", NULL), "lb_status",
	     "{\"app\":\"demo\"}");

	CASE(ml_op_lb_requests(&r.h, "demo", 30000, NULL), "lb_requests",
	     "{\"app\":\"demo\",\"window_ms\":30000}");

	CASE(ml_op_lb_revisions(&r.h, "demo", servers, NULL), "lb_revisions",
	     "{\"app\":\"demo\",\"servers\":[{\"name\":\"vm1-0a\","
	     "\"revision\":3,\"since_ms\":1000}]}");
	/* borrowed: still the caller's */
	assert_int_equal(servers->refcount, 1);
	json_decref(servers);
}

static void test_ops__relay(void **state)
{
	struct rig r;

	ML_UNUSED(state);
	CASE(ml_op_relay_key(&r.h, "d1", NULL), "relay_key",
	     "{\"deploy\":\"d1\"}");
	CASE(ml_op_relay_allow(&r.h, "d1", "ssh-ed25519 AAAA", "10.0.0.1",
			       600, NULL),
	     "relay_allow",
	     "{\"deploy\":\"d1\",\"public_key\":\"ssh-ed25519 AAAA\","
	     "\"from\":\"10.0.0.1\",\"ttl_s\":600}");
	CASE(ml_op_relay_send(&r.h, "d1", "10.0.0.2", 22, "root",
			      "ssh-ed25519 BBBB", json_pack("[s]", D1), NULL,
			      5, NULL),
	     "relay_send",
	     "{\"deploy\":\"d1\",\"host\":\"10.0.0.2\",\"port\":22,"
	     "\"user\":\"root\",\"host_key\":\"ssh-ed25519 BBBB\","
	     "\"digests\":[\"" D1 "\"],\"connect_timeout_s\":5}");
	/* the pipelined round: what the sender is still receiving */
	CASE(ml_op_relay_send(&r.h, "d1", "10.0.0.2", 22, "root",
			      "ssh-ed25519 BBBB", json_pack("[s]", D1),
			      json_pack("{s:i}", D1, 42), 5, NULL),
	     "relay_send",
	     "{\"deploy\":\"d1\",\"host\":\"10.0.0.2\",\"port\":22,"
	     "\"user\":\"root\",\"host_key\":\"ssh-ed25519 BBBB\","
	     "\"digests\":[\"" D1 "\"],\"connect_timeout_s\":5,"
	     "\"follow\":{\"" D1 "\":42}}");
	/* no digests: only try the connection */
	CASE(ml_op_relay_send(&r.h, "d1", "10.0.0.2", 22, "root",
			      "ssh-ed25519 BBBB", NULL, NULL, 5, NULL),
	     "relay_send",
	     "{\"deploy\":\"d1\",\"host\":\"10.0.0.2\",\"port\":22,"
	     "\"user\":\"root\",\"host_key\":\"ssh-ed25519 BBBB\","
	     "\"connect_timeout_s\":5,\"probe\":true}");
	CASE(ml_op_relay_end(&r.h, "d1", NULL), "relay_end",
	     "{\"deploy\":\"d1\"}");
}

static void test_ops__lock(void **state)
{
	struct rig r;

	ML_UNUSED(state);
	CASE(ml_op_lock_acquire(&r.h, "me@box pid 7", "deploy of abc", 60000, 7,
				"m1", "", 0, NULL),
	     "lock_acquire",
	     "{\"owner\":\"me@box pid 7\",\"reason\":\"deploy of abc\","
	     "\"ttl_ms\":60000,\"pid\":7,\"machine_id\":\"m1\"}");
	CASE(ml_op_lock_acquire(&r.h, "o", "r", 1000, 7, "m1", "b1", 5, NULL),
	     "lock_acquire",
	     "{\"owner\":\"o\",\"reason\":\"r\",\"ttl_ms\":1000,\"pid\":7,"
	     "\"machine_id\":\"m1\",\"boot_id\":\"b1\",\"take_over\":5}");

	CASE(ml_op_lock_renew(&r.h, "t1", 60000, NULL), "lock_renew",
	     "{\"token\":\"t1\",\"ttl_ms\":60000}");

	CASE(ml_op_lock_release(&r.h, "t1", false, NULL), "lock_release",
	     "{\"token\":\"t1\"}");
	CASE(ml_op_lock_release(&r.h, NULL, true, NULL), "lock_release",
	     "{\"force\":true}");

	CASE(ml_op_lock_status(&r.h, NULL), "lock_status", "{}");
}

static void test_ops__canary_and_prune(void **state)
{
	struct ml_prune_container c = {.id = (char *)"c9"};
	const struct ml_prune_container *cs[] = {&c};
	struct ml_prune_image pi = {.id = (char *)D1};
	const char *tags[] = {"mlctl/demo:old"};
	struct ml_prune_rm_image ri = {.img = &pi, .tags = tags, .ntags = 1};
	struct ml_prune_blob b = {.digest = (char *)D2};
	const struct ml_prune_blob *bs[] = {&b};
	struct ml_prune_plan p = {0};
	struct rig r;

	ML_UNUSED(state);
	CASE(ml_op_canary_gate(&r.h, "demo", "open", 4, 1, NULL, NULL, NULL),
	     "canary_gate",
	     "{\"app\":\"demo\",\"action\":\"open\",\"revision\":4,"
	     "\"step\":1}");
	CASE(ml_op_canary_gate(&r.h, "demo", "get", 4, 1, NULL, NULL, NULL),
	     "canary_gate", "{\"app\":\"demo\",\"action\":\"get\"}");
	CASE(ml_op_canary_gate(&r.h, "demo", "decide", 0, 0, "promote",
			       "me@box", NULL),
	     "canary_gate",
	     "{\"app\":\"demo\",\"action\":\"decide\",\"decision\":"
	     "\"promote\",\"by\":\"me@box\"}");

	CASE(ml_op_prune_scan(&r.h, NULL), "prune_scan", "{}");

	p.containers = cs;
	p.ncontainers = 1;
	p.images = &ri;
	p.nimages = 1;
	p.blobs = bs;
	p.nblobs = 1;
	CASE(ml_op_prune(&r.h, "demo", &p, true, NULL), "prune",
	     "{\"app\":\"demo\",\"containers\":[\"c9\"],\"images\":[{\"id\":"
	     "\"" D1 "\",\"tags\":[\"mlctl/demo:old\"]}],\"blobs\":[\"" D2
	     "\"],\"dry_run\":true}");
}

static int lost(void *arg)
{
	ML_UNUSED(arg);
	return ml_err_set(ML_ELOCKED, "lost the fleet lock (test)");
}

static int held(void *arg)
{
	ML_UNUSED(arg);
	return 0;
}

/* A fenced session: the request carries the fence; once the fence's
 * check fails, nothing is written. */
static void test_ops__fence(void **state)
{
	struct ml_fence f = {.generation = 12, .owner = "me", .check = held};
	struct rig r;

	ML_UNUSED(state);
	rig_init(&r);
	r.h.fence = &f;
	assert_true(ml_op_container_stop(&r.h, "c1", 10, NULL) < 0);
	expect(&r, "container_stop",
	       "{\"id\":\"c1\",\"timeout_s\":10,\"fence\":{\"generation\":12,"
	       "\"owner\":\"me\"}}");

	f.check = lost;
	rig_init(&r);
	r.h.fence = &f;
	assert_int_equal(ml_op_container_stop(&r.h, "c1", 10, NULL),
			 ML_ELOCKED);
	assert_int_equal(r.m.out.len, 0);
	mem_io_release(&r.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops__every_agent_op_has_a_case),
		cmocka_unit_test(test_ops__containers),
		cmocka_unit_test(test_ops__images),
		cmocka_unit_test(test_ops__load_balancer),
		cmocka_unit_test(test_ops__lock),
		cmocka_unit_test(test_ops__relay),
		cmocka_unit_test(test_ops__canary_and_prune),
		cmocka_unit_test(test_ops__fence),
	};

	return cmocka_run_group_tests_name("fleet/ops", tests, NULL, NULL);
}
