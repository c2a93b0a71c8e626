/*
 * Unit tests of the agent's request loop and its ops, in process: frames
 * go through the real ml_agent_serve() and dispatch table, over an
 * in-memory stream or a socketpair with the loop in a thread; Docker is a
 * fake daemon (fake_docker.h) or a socket path that does not exist.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "common/docker.h"
#include "tests/unit/common/mem_io.h"
#include "tests/unit/agent/fake_docker.h"

#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#define NO_DOCKER "/nonexistent/mlctl-test/docker.sock"
#define HELLO "{\"v\":1,\"id\":1,\"op\":\"hello\",\"args\":{\"versions\":[1]}}"

static const struct fake_route routes[] = {
	{"GET /version ", 200,
	 "{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
	 "\"MinAPIVersion\":\"1.12\"}",
	 0},
	{"GET /v1.41/containers/json", 200,
	 "[{\"Id\":\"c1\",\"Names\":[\"/demo-3-a\"],\"Image\":\"demo:3\","
	 "\"ImageID\":\"sha256:aa\",\"State\":\"running\","
	 "\"Status\":\"Up 5 minutes (healthy)\",\"Created\":1700000000,"
	 "\"Labels\":{\"mlctl.app\":\"demo\",\"mlctl.revision\":\"3\","
	 "\"mlctl.slot\":\"a\",\"mlctl.commit\":\"0123abc\","
	 "\"com.example\":\"hidden\"}},"
	 "{\"Id\":\"c2\",\"Names\":[\"/demo-2-b\"],\"State\":\"exited\","
	 "\"Status\":\"Exited (0) 1 hour ago\","
	 "\"Labels\":{\"mlctl.app\":\"demo\",\"mlctl.revision\":\"x2\"}},"
	 "{\"Id\":\"c3\"}, 17]",
	 0},
	{"GET /v1.41/containers/demo-3-a/json", 200,
	 "{\"Id\":\"c1\",\"Name\":\"/demo-3-a\",\"Image\":\"sha256:aa\","
	 "\"RestartCount\":2,\"State\":{\"Status\":\"running\","
	 "\"StartedAt\":\"2024-01-01T00:00:00Z\",\"FinishedAt\":\"0001\","
	 "\"ExitCode\":0,\"Health\":{\"Status\":\"starting\"}},"
	 "\"Config\":{\"Image\":\"demo:3\",\"Labels\":{\"mlctl.app\":"
	 "\"demo\",\"mlctl.revision\":\"3\"}}}",
	 0},
};

static struct fake_docker fake;
static char gpu_dir[64];
static char big_list[2 << 20];

/* Run serve over a memory stream with the given input; *replies gets the
 * decoded reply frames. Returns what serve returned. */
static int serve_mem(struct ml_agent *a, const struct ml_buf *in,
		     json_t **replies)
{
	struct mem_io m;
	struct ml_io io;
	char msg[1024];
	int rc;

	mem_io_init(&io, &m, in->data, in->len);
	rc = ml_agent_serve(a, &io);
	snprintf(msg, sizeof(msg), "%s", ml_err_msg());
	*replies = frames_decode(m.out.data, m.out.len);
	assert_non_null(*replies);
	mem_io_release(&m);
	ml_err_set(rc, "%s", msg);
	return rc;
}

static void agent_setup(struct ml_agent *a, const char *sock)
{
	ml_agent_init(a);
	a->docker_sock = sock;
	a->state_dir = "/tmp/mlctl-test-no-such-dir/state";
	a->gpu_dir = gpu_dir;
}

static json_t *reply_at(json_t *replies, size_t i)
{
	json_t *r = json_array_get(replies, i);

	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "v")), 1);
	return r;
}

static const char *err_code(json_t *r)
{
	assert_true(json_is_false(json_object_get(r, "ok")));
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "code"));
}

static const char *err_msg(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "message"));
}

static json_int_t rid(json_t *r)
{
	return json_integer_value(json_object_get(r, "id"));
}

static json_t *result(json_t *r)
{
	assert_true(json_is_true(json_object_get(r, "ok")));
	return json_object_get(r, "result");
}

static int setup(void **state)
{
	char path[256];
	FILE *f;

	ml_log_init("test", ML_LOG_QUIET);
	fake_docker_start(&fake, routes, ML_ARRAY_SIZE(routes));
	snprintf(gpu_dir, sizeof(gpu_dir), "/tmp/mlctl-test-gpus-XXXXXX");
	assert_non_null(mkdtemp(gpu_dir));
	snprintf(path, sizeof(path), "%s/0000:02:00.0", gpu_dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/0000:01:00.0", gpu_dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/0000:01:00.0/information", gpu_dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("Model: \t\t NVIDIA A100-SXM4-40GB  \nIRQ:\t\t 42\n"
	      "GPU UUID: \t GPU-1234\n",
	      f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	char path[256];

	fake_docker_stop(&fake);
	snprintf(path, sizeof(path), "%s/0000:01:00.0/information", gpu_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/0000:01:00.0", gpu_dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/0000:02:00.0", gpu_dir);
	rmdir(path);
	rmdir(gpu_dir);
	return 0;
}

static void test_dispatch__hello(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs, *r, *g;

	agent_setup(&a, NO_DOCKER);
	frame_add_json(&in, HELLO);
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	r = result(reply_at(rs, 0));
	assert_int_equal(rid(reply_at(rs, 0)), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "protocol")), 1);
	assert_string_equal(
		json_string_value(json_object_get(r, "agent_version")),
		ML_VERSION);
	assert_true(json_is_string(json_object_get(r, "hostname")));
	assert_true(json_integer_value(json_object_get(r, "cpus")) >= 1);
	assert_true(json_integer_value(json_object_get(r, "memory_bytes")) >
		    1 << 20);
	/* the state dir does not exist: its nearest ancestor is measured */
	assert_true(json_is_integer(json_object_get(r, "disk_free_bytes")));
	assert_string_equal(json_string_value(json_object_get(r, "state_dir")),
			    a.state_dir);
	/* Docker down: hello still works and says why */
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(r, "docker"), "error")),
			       "cannot connect"));
	/* GPUs sorted by bus id, fields from the driver's file */
	g = json_object_get(r, "gpus");
	assert_int_equal(json_array_size(g), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(g, 0), "bus_id")),
			    "0000:01:00.0");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(g, 0), "model")),
			    "NVIDIA A100-SXM4-40GB");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(g, 0), "uuid")),
			    "GPU-1234");
	assert_true(
		json_is_null(json_object_get(json_array_get(g, 1), "model")));
	json_decref(rs);
	ml_agent_release(&a);

	/* no GPU driver: [] */
	agent_setup(&a, fake.sock);
	a.gpu_dir = "/nonexistent/gpus";
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	r = result(reply_at(rs, 0));
	assert_int_equal(json_array_size(json_object_get(r, "gpus")), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(r, "docker"), "version")),
			    "20.10.24");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "docker"),
						  "api_version")),
		"1.41");
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

static void test_dispatch__hello_negotiation(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs;

	agent_setup(&a, NO_DOCKER);
	frame_add_json(&in, "{\"v\":1,\"id\":1,\"op\":\"hello\","
			    "\"args\":{\"versions\":[2]}}");
	frame_add_json(&in, "{\"v\":1,\"id\":2,\"op\":\"hello\","
			    "\"args\":{\"versions\":[2,3]}}");
	frame_add_json(&in, "{\"v\":1,\"id\":3,\"op\":\"hello\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":4,\"op\":\"hello\","
			    "\"args\":{\"versions\":[\"1\"]}}");
	frame_add_json(&in, "{\"v\":1,\"id\":5,\"op\":\"hello\","
			    "\"args\":{\"versions\":[]}}");
	frame_add_json(&in, "{\"v\":1,\"id\":6,\"op\":\"list\","
			    "\"args\":{\"app\":\"demo\"}}");
	/* a later controller: envelope v:1 for hello, several versions */
	frame_add_json(&in, "{\"v\":1,\"id\":7,\"op\":\"hello\","
			    "\"args\":{\"versions\":[3,1,2]}}");
	frame_add_json(&in, "{\"v\":2,\"id\":8,\"op\":\"list\","
			    "\"args\":{\"app\":\"demo\"}}");
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 8);
	assert_string_equal(err_code(reply_at(rs, 0)), "version-mismatch");
	assert_string_equal(err_msg(reply_at(rs, 0)),
			    "no common protocol version (agent speaks 1, "
			    "controller speaks 2)");
	assert_string_equal(err_msg(reply_at(rs, 1)),
			    "no common protocol version (agent speaks 1, "
			    "controller speaks 2, 3)");
	assert_string_equal(err_code(reply_at(rs, 2)), "bad-request");
	assert_string_equal(err_msg(reply_at(rs, 2)),
			    "hello needs 'versions', a list of protocol "
			    "versions");
	assert_string_equal(err_code(reply_at(rs, 3)), "bad-request");
	assert_string_equal(err_code(reply_at(rs, 4)), "bad-request");
	/* failed hellos do not open the session */
	assert_string_equal(err_code(reply_at(rs, 5)), "hello-first");
	assert_int_equal(rid(reply_at(rs, 5)), 6);
	assert_int_equal(json_integer_value(json_object_get(
				 result(reply_at(rs, 6)), "protocol")),
			 1);
	/* requests after hello must use the agreed version */
	assert_string_equal(err_code(reply_at(rs, 7)), "bad-request");
	assert_non_null(strstr(err_msg(reply_at(rs, 7)), "version 2"));
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

static void test_dispatch__bad_requests(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs;
	size_t i;

	agent_setup(&a, NO_DOCKER);
	frame_add_json(&in, "{\"v\":1,\"id\":1,\"op\":\"list\"}");
	frame_add_json(&in, HELLO);
	frame_add_json(&in, "{\"v\":1,\"id\":3,\"op\":\"reboot\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":4,\"op\":\"\\u001b[2Jx\"}");
	frame_add_json(&in, "{\"v\":1,\"op\":\"list\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":-5,\"op\":\"list\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":\"7\",\"op\":\"list\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":8}");
	frame_add_json(&in, "{\"v\":1,\"id\":9,\"op\":7}");
	frame_add_json(&in, "{\"id\":10,\"op\":\"list\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":11,\"op\":\"list\",\"args\":[]}");
	frame_add_json(&in, "{\"v\":1,\"id\":12,\"op\":\"list\"}");
	frame_add_json(&in, "{\"v\":1,\"id\":13,\"op\":\"list\","
			    "\"args\":{\"app\":\"../x\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":14,\"op\":\"inspect\","
			    "\"args\":{\"id\":\"a?b\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":15,\"op\":\"inspect\","
			    "\"args\":{\"id\":5}}");
	frame_add_json(&in, "not json");
	frame_add_json(&in, "[1,2]");
	frame_add_json(&in, "{\"a\":1,\"a\":2}");
	frame_add(&in, ML_FRAME_DATA, "bytes", 5);
	frame_add(&in, 'Z', "zzz", 3);
	frame_add_json(&in, "{\"v\":1,\"id\":21,\"op\":\"list\","
			    "\"args\":{\"app\":\"demo\"}}");
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 21);

	assert_string_equal(err_code(reply_at(rs, 0)), "hello-first");
	assert_string_equal(err_msg(reply_at(rs, 0)), "hello first");
	assert_string_equal(err_code(reply_at(rs, 2)), "unknown-op");
	assert_string_equal(
		err_msg(reply_at(rs, 2)),
		"unknown operation 'reboot'; this agent (" ML_VERSION
		") does not know it");
	assert_int_equal(rid(reply_at(rs, 2)), 3);
	/* the op name is escaped in the message */
	assert_null(strchr(err_msg(reply_at(rs, 3)), '\x1b'));
	for (i = 4; i <= 6; i++) {
		assert_string_equal(err_code(reply_at(rs, i)), "bad-request");
		assert_int_equal(rid(reply_at(rs, i)), 0);
	}
	assert_string_equal(err_msg(reply_at(rs, 7)), "request has no op name");
	assert_int_equal(rid(reply_at(rs, 7)), 8);
	assert_string_equal(err_code(reply_at(rs, 8)), "bad-request");
	assert_string_equal(err_msg(reply_at(rs, 9)),
			    "request has no protocol version 'v'");
	assert_string_equal(err_msg(reply_at(rs, 10)),
			    "list: args must be an object");
	assert_string_equal(err_msg(reply_at(rs, 11)),
			    "list needs 'app', a string");
	assert_string_equal(err_code(reply_at(rs, 12)), "bad-request");
	assert_string_equal(err_code(reply_at(rs, 13)), "bad-request");
	assert_string_equal(err_msg(reply_at(rs, 14)),
			    "inspect needs 'id', a string");
	/* undecodable frames: id 0, and serving goes on */
	for (i = 15; i <= 18; i++) {
		assert_string_equal(err_code(reply_at(rs, i)), "bad-request");
		assert_int_equal(rid(reply_at(rs, i)), 0);
	}
	assert_non_null(strstr(err_msg(reply_at(rs, 17)), "duplicate"));
	assert_non_null(strstr(err_msg(reply_at(rs, 18)), "data frame"));
	assert_string_equal(err_code(reply_at(rs, 19)), "bad-frame");
	assert_string_equal(err_msg(reply_at(rs, 19)),
			    "unknown frame type 0x5a");
	/* the last request still runs: Docker is not there */
	assert_string_equal(err_code(reply_at(rs, 20)), "failed");
	assert_int_equal(rid(reply_at(rs, 20)), 21);
	assert_non_null(strstr(err_msg(reply_at(rs, 20)), "cannot connect"));
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

static void test_dispatch__bad_frames_stop(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs;

	/* oversized: one bad-frame reply, then serving stops */
	agent_setup(&a, NO_DOCKER);
	frame_add_json(&in, HELLO);
	frame_add_len(&in, (uint32_t)ML_PROTO_MAX_FRAME + 1);
	frame_add_json(&in, HELLO);
	assert_int_equal(serve_mem(&a, &in, &rs), ML_EPROTO);
	assert_string_equal(ml_err_msg(), "frame of 1048578 bytes exceeds the "
					  "limit of 1048577");
	assert_int_equal(json_array_size(rs), 2);
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-frame");
	assert_int_equal(rid(reply_at(rs, 1)), 0);
	assert_string_equal(err_msg(reply_at(rs, 1)), ml_err_msg());
	json_decref(rs);
	ml_agent_release(&a);

	/* zero length */
	ml_buf_reset(&in);
	frame_add_len(&in, 0);
	agent_setup(&a, NO_DOCKER);
	assert_int_equal(serve_mem(&a, &in, &rs), ML_EPROTO);
	assert_string_equal(err_code(reply_at(rs, 0)), "bad-frame");
	json_decref(rs);
	ml_agent_release(&a);

	/* cut inside a frame */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	in.len -= 5;
	agent_setup(&a, NO_DOCKER);
	assert_int_equal(serve_mem(&a, &in, &rs), ML_EPROTO);
	assert_int_equal(json_array_size(rs), 1);
	assert_string_equal(err_code(reply_at(rs, 0)), "bad-frame");
	assert_non_null(strstr(err_msg(reply_at(rs, 0)), "truncated"));
	json_decref(rs);
	ml_agent_release(&a);

	/* empty input: nothing to do */
	ml_buf_reset(&in);
	agent_setup(&a, NO_DOCKER);
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 0);
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

static void test_dispatch__write_failure(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	struct mem_io m;
	struct ml_io io;

	agent_setup(&a, NO_DOCKER);
	frame_add_json(&in, "{\"v\":1,\"id\":1,\"op\":\"list\"}");
	frame_add_json(&in, HELLO);
	mem_io_init(&io, &m, in.data, in.len);
	m.fail_write = true;
	assert_int_equal(ml_agent_serve(&a, &io), ML_EFAIL);
	/* stopped at the first reply */
	assert_true(m.in_off < m.in_len);
	mem_io_release(&m);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

static void test_dispatch__list_inspect(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs, *r, *c, *expect;

	agent_setup(&a, fake.sock);
	frame_add_json(&in, HELLO);
	frame_add_json(&in, "{\"v\":1,\"id\":2,\"op\":\"list\","
			    "\"args\":{\"app\":\"demo\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":3,\"op\":\"inspect\","
			    "\"args\":{\"id\":\"demo-3-a\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":4,\"op\":\"inspect\","
			    "\"args\":{\"id\":\"gone\"}}");
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 4);

	r = result(reply_at(rs, 1));
	c = json_object_get(r, "containers");
	assert_int_equal(json_array_size(c), 3);
	expect = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:s,s:s,"
			   "s:{s:s,s:s,s:s,s:s}}",
			   "id", "c1", "name", "demo-3-a", "image", "demo:3",
			   "image_id", "sha256:aa", "state", "running",
			   "status", "Up 5 minutes (healthy)", "health",
			   "healthy", "created", 1700000000, "app", "demo",
			   "revision", 3, "slot", "a", "commit", "0123abc",
			   "labels", "mlctl.app", "demo", "mlctl.revision", "3",
			   "mlctl.slot", "a", "mlctl.commit", "0123abc");
	assert_true(json_equal(json_array_get(c, 0), expect));
	json_decref(expect);
	/* a revision label that is not a number is null; missing is null */
	assert_true(json_is_null(
		json_object_get(json_array_get(c, 1), "revision")));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(c, 1), "health")),
			    "none");
	assert_true(
		json_is_null(json_object_get(json_array_get(c, 2), "name")));
	assert_int_equal(json_object_size(json_object_get(json_array_get(c, 2),
							  "labels")),
			 0);

	r = result(reply_at(rs, 2));
	expect = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:i,s:s,s:i,"
			   "s:n,s:n,s:{s:s,s:s}}",
			   "id", "c1", "name", "demo-3-a", "image", "demo:3",
			   "image_id", "sha256:aa", "state", "running",
			   "health", "starting", "restarts", 2, "started_at",
			   "2024-01-01T00:00:00Z", "finished_at", "0001",
			   "exit_code", 0, "app", "demo", "revision", 3, "slot",
			   "commit", "labels", "mlctl.app", "demo",
			   "mlctl.revision", "3");
	assert_true(json_equal(r, expect));
	json_decref(expect);

	assert_string_equal(err_code(reply_at(rs, 3)), "not-found");
	assert_string_equal(fake.last_line,
			    "GET /v1.41/containers/gone/json HTTP/1.1");
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

/* The label filter reaches Docker URL-encoded. */
static void test_dispatch__list_filter(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_agent a;
	json_t *rs;

	agent_setup(&a, fake.sock);
	frame_add_json(&in, HELLO);
	frame_add_json(&in, "{\"v\":1,\"id\":2,\"op\":\"list\","
			    "\"args\":{\"app\":\"my.app-1\"}}");
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	result(reply_at(rs, 1));
	assert_string_equal(fake.last_line,
			    "GET /v1.41/containers/json?all=1&filters="
			    "%7B%22label%22%3A%5B%22mlctl.app%3Dmy.app-1%22%5D"
			    "%7D HTTP/1.1");
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
}

/* A reply too large for a frame becomes a too-big error, same id. */
static void test_dispatch__reply_too_big(void **state)
{
	struct fake_route big[] = {
		routes[0],
		{"GET /v1.41/containers/json", 200, big_list, 0},
	};
	struct ml_buf in = ML_BUF_INIT(0), b = ML_BUF_INIT(sizeof(big_list));
	struct ml_agent a;
	json_t *rs;
	size_t i;

	ml_buf_addch(&b, '[');
	for (i = 0; i < 1500; i++)
		ml_buf_addf(&b,
			    "%s{\"Id\":\"c%zu\",\"Labels\":{\"mlctl.commit\":"
			    "\"%0900d\"}}",
			    i ? "," : "", i, 0);
	ml_buf_addch(&b, ']');
	memcpy(big_list, b.data, b.len + 1);
	fake_docker_routes(&fake, big, ML_ARRAY_SIZE(big));

	agent_setup(&a, fake.sock);
	frame_add_json(&in, HELLO);
	frame_add_json(&in, "{\"v\":1,\"id\":2,\"op\":\"list\","
			    "\"args\":{\"app\":\"demo\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":3,\"op\":\"nope\"}");
	assert_int_equal(serve_mem(&a, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "too-big");
	assert_int_equal(rid(reply_at(rs, 1)), 2);
	assert_string_equal(err_code(reply_at(rs, 2)), "unknown-op");
	json_decref(rs);
	ml_agent_release(&a);
	ml_buf_release(&in);
	ml_buf_release(&b);
	fake_docker_routes(&fake, routes, ML_ARRAY_SIZE(routes));
}

struct serve_arg {
	int fd;
	int rc;
};

static void *serve_thread(void *p)
{
	struct serve_arg *s = p;
	struct ml_io_fd fdctx;
	struct ml_io io;
	struct ml_agent a;

	ml_io_fd_init(&io, &fdctx, s->fd, s->fd, 10000);
	agent_setup(&a, fake.sock);
	s->rc = ml_agent_serve(&a, &io);
	ml_agent_release(&a);
	return NULL;
}

/* The client helpers against the real loop over a socketpair. */
static void test_dispatch__client_over_socketpair(void **state)
{
	struct serve_arg s = {0};
	struct ml_io_fd fdctx;
	struct ml_io io;
	json_t *res = NULL;
	uint64_t id = 1;
	pthread_t th;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, serve_thread, &s), 0);
	ml_io_fd_init(&io, &fdctx, sv[0], sv[0], 10000);

	assert_int_equal(ml_proto_call(&io, &id, "list",
				       json_pack("{s:s}", "app", "demo"), &res),
			 ML_EPROTO);
	assert_string_equal(ml_err_msg(), "list failed: hello first");
	assert_int_equal(ml_proto_hello(&io, &id, &res), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(res, "docker"), "version")),
			    "20.10.24");
	json_decref(res);
	assert_int_equal(ml_proto_call(&io, &id, "list",
				       json_pack("{s:s}", "app", "demo"), &res),
			 0);
	assert_int_equal(json_array_size(json_object_get(res, "containers")),
			 3);
	json_decref(res);
	assert_int_equal(ml_proto_call(&io, &id, "inspect",
				       json_pack("{s:s}", "id", "gone"), &res),
			 ML_ENOTFOUND);
	assert_string_equal(
		ml_err_msg(),
		"inspect failed: docker: GET /containers/gone/json: "
		"page not found (HTTP 404)");
	assert_int_equal(ml_proto_call(&io, &id, "fly", NULL, &res), ML_EPROTO);
	assert_int_equal(id, 6);

	shutdown(sv[0], SHUT_WR);
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_dispatch__table(void **state)
{
	const struct ml_agent_op *const *ops;
	size_t n, i, j;

	ops = ml_agent_ops(&n);
	assert_true(n >= 3);
	for (i = 0; i < n; i++) {
		assert_non_null(ops[i]->run);
		assert_non_null(ops[i]->summary);
		for (j = 0; j < i; j++)
			assert_string_not_equal(ops[i]->name, ops[j]->name);
		/* only hello may run before hello */
		assert_int_equal(!!(ops[i]->flags & ML_AGENT_OP_BEFORE_HELLO),
				 !strcmp(ops[i]->name, "hello"));
	}
	assert_string_equal(ml_agent_health(NULL, "Up 1 s (unhealthy)"),
			    "unhealthy");
	assert_string_equal(ml_agent_health(NULL, "Up (health: starting)"),
			    "starting");
	assert_string_equal(ml_agent_health(NULL, NULL), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch__hello),
		cmocka_unit_test(test_dispatch__hello_negotiation),
		cmocka_unit_test(test_dispatch__bad_requests),
		cmocka_unit_test(test_dispatch__bad_frames_stop),
		cmocka_unit_test(test_dispatch__write_failure),
		cmocka_unit_test(test_dispatch__list_inspect),
		cmocka_unit_test(test_dispatch__list_filter),
		cmocka_unit_test(test_dispatch__reply_too_big),
		cmocka_unit_test(test_dispatch__client_over_socketpair),
		cmocka_unit_test(test_dispatch__table),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
