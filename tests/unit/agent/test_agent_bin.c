/*
 * The built agent binary, driven through pipes: $MLCTL_AGENT_BIN (set by
 * tests/run; skipped with a message when unset) is run as `mlctl-agent
 * serve` and spoken to with the client helpers of common/proto.h. Checks
 * the session rules, the exit status after an unreadable frame, that
 * stdout carries frames only, and the other commands.
 *
 * With $MLCTL_TEST_DOCKER_SOCK pointing at a real dockerd that runs a
 * container $MLCTL_TEST_DOCKER_CONTAINER labelled mlctl.app=$..._APP and
 * mlctl.revision=$..._REVISION (tests/unit/agent/check_real_docker.sh sets
 * all this up), also checks hello, list and inspect against it.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/proto.h"
#include "common/sha256.h"
#include "tests/support/proc.h"
#include "agent/agent.h"
#include "tests/unit/common/mem_io.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

struct child {
	pid_t pid;
	int in;	 /* its stdin */
	int out; /* its stdout */
	int err; /* its stderr */
	struct ml_io io;
	struct ml_io_fd fdctx;
};

static const char *agent_bin(void)
{
	const char *bin = getenv("MLCTL_AGENT_BIN");

	if (!bin || !*bin) {
		fprintf(stderr,
			"skipping: MLCTL_AGENT_BIN is not set (run "
			"through tests/run or set it to bin/mlctl-agent)\n");
		return NULL;
	}
	return bin;
}

/* Start bin with args (NULL-terminated, after argv[0]); env entries
 * "NAME=VALUE" are added to the child's environment. */
static void spawn(struct child *c, const char *const *args,
		  const char *const *env)
{
	const char *argv[8];
	int pin[2], pout[2], perr[2];
	size_t i, n = 0;

	argv[n++] = agent_bin();
	for (i = 0; args[i] && n < ML_ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe(pin), 0);
	assert_int_equal(pipe(pout), 0);
	assert_int_equal(pipe(perr), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		for (i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		close(pin[0]);
		close(pin[1]);
		close(pout[0]);
		close(pout[1]);
		close(perr[0]);
		close(perr[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	c->in = pin[1];
	c->out = pout[0];
	c->err = perr[0];
	ml_io_fd_init(&c->io, &c->fdctx, c->out, c->in, 20000);
}

/* Close its stdin, read the rest of stdout and stderr, wait; returns the
 * exit status (-1 if killed). */
static int finish(struct child *c, struct ml_buf *out, struct ml_buf *err)
{
	int st = 0;

	if (c->in >= 0)
		close(c->in);
	c->in = -1;
	if (out)
		ml_buf_read_fd(out, c->out);
	if (err)
		ml_buf_read_fd(err, c->err);
	close(c->out);
	close(c->err);
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_agent_bin__session(void **state)
{
	static const char *const args[] = {"-v", "serve", NULL};
	static const char *const env[] = {
		"MLCTL_DOCKER_SOCK=/nonexistent/mlctl-test/docker.sock",
		"MLCTL_STATE_DIR=/tmp", NULL};
	struct ml_buf out = ML_BUF_INIT(0), err = ML_BUF_INIT(0);
	struct child c;
	json_t *res = NULL;
	uint64_t id = 1;

	if (!agent_bin())
		skip();
	spawn(&c, args, env);
	assert_int_equal(ml_proto_call(&c.io, &id, "list",
				       json_pack("{s:s}", "app", "demo"), &res),
			 ML_EPROTO);
	assert_string_equal(ml_err_msg(), "list failed: hello first");
	assert_int_equal(ml_proto_hello(&c.io, &id, &res), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "protocol")),
			 1);
	assert_string_equal(
		json_string_value(json_object_get(res, "state_dir")), "/tmp");
	assert_non_null(
		strstr(json_string_value(json_object_get(
			       json_object_get(res, "docker"), "error")),
		       "cannot connect"));
	json_decref(res);
	assert_int_equal(ml_proto_call(&c.io, &id, "list",
				       json_pack("{s:s}", "app", "demo"), &res),
			 ML_EFAIL);
	assert_int_equal(ml_proto_call(&c.io, &id, "teleport", NULL, &res),
			 ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "unknown operation 'teleport'"));

	/* clean end: exit 0, nothing else on stdout, logs on stderr */
	assert_int_equal(finish(&c, &out, &err), 0);
	assert_int_equal(out.len, 0);
	assert_non_null(strstr(ml_buf_str(&err), "mlctl-agent: debug: "));
	ml_buf_release(&out);
	ml_buf_release(&err);
}

static void test_agent_bin__bad_length(void **state)
{
	static const char *const args[] = {"serve", NULL};
	static const char *const env[] = {
		"MLCTL_DOCKER_SOCK=/nonexistent/mlctl-test/docker.sock", NULL};
	struct ml_buf b = ML_BUF_INIT(0), err = ML_BUF_INIT(0);
	struct child c;
	json_t *msg = NULL;

	if (!agent_bin())
		skip();
	spawn(&c, args, env);
	frame_add(&b, 'Q', "?", 1);
	frame_add_len(&b, 0x7fffffff);
	assert_int_equal(write(c.in, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(ml_proto_recv(&c.io, &msg), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(msg, "error"), "code")),
			    "bad-frame");
	json_decref(msg);
	assert_int_equal(ml_proto_recv(&c.io, &msg), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(msg, "error"), "message")),
			    "frame of 2147483647 bytes exceeds the limit of "
			    "1048577");
	assert_int_equal(json_integer_value(json_object_get(msg, "id")), 0);
	json_decref(msg);
	/* it stops by itself, with ML_EPROTO's status, without more input */
	assert_int_equal(ml_proto_recv(&c.io, &msg), ML_EPROTO);
	assert_int_equal(finish(&c, NULL, &err), ml_exit_code(ML_EPROTO));
	assert_non_null(strstr(ml_buf_str(&err),
			       "mlctl-agent: frame of 2147483647 bytes"));
	ml_buf_release(&b);
	ml_buf_release(&err);
}

/* Wait until the child closes its stdout (it ended the session), at most
 * ms; true when it did. */
static bool closes_within(struct child *c, int ms)
{
	struct pollfd p = {.fd = c->out, .events = POLLIN};
	char buf[4096];

	while (poll(&p, 1, ms) == 1) {
		ssize_t n = read(c->out, buf, sizeof(buf));

		if (n <= 0)
			return true;
	}
	return false;
}

static void test_agent_bin__idle_peer_is_cut(void **state)
{
	static const char *const args[] = {"serve", NULL};
	static const char *const env[] = {
		"MLCTL_DOCKER_SOCK=/nonexistent/mlctl-test/docker.sock",
		"MLCTL_AGENT_IDLE_TIMEOUT_MS=400", NULL};
	struct ml_buf err = ML_BUF_INIT(0);
	struct child c;
	json_t *res = NULL;
	uint64_t id = 1;

	if (!agent_bin())
		skip();
	spawn(&c, args, env);
	assert_int_equal(ml_proto_hello(&c.io, &id, &res), 0);
	json_decref(res);
	/* busy is not idle: requests 200 ms apart keep it alive */
	for (int i = 0; i < 4; i++) {
		poll(NULL, 0, 200);
		assert_int_equal(ml_proto_call(&c.io, &id, "lock_status",
					       NULL, &res),
				 0);
		json_decref(res);
	}
	assert_true(closes_within(&c, 5000));
	assert_int_equal(finish(&c, NULL, &err), ml_exit_code(ML_EHOST));
	assert_non_null(strstr(ml_buf_str(&err), "no data within 400 ms"));
	ml_buf_release(&err);
}

/* "sha256:" and the hex digest of n bytes. */
static void blob_digest(char out[80], const void *p, size_t n)
{
	char hex[ML_SHA256_HEX];

	ml_sha256_hex(p, n, hex);
	snprintf(out, 80, "sha256:%s", hex);
}

/* Start blob_put of digest/size on c; returns the request id. */
static uint64_t put_begin(struct child *c, uint64_t *id, const char *digest,
			  size_t size)
{
	uint64_t rid = 0;

	assert_int_equal(ml_proto_request(&c->io, id, "blob_put",
					  json_pack("{s:s,s:I}", "digest",
						    digest, "size",
						    (json_int_t)size),
					  &rid),
			 0);
	return rid;
}

/*
 * A put that stalls halfway holds the blob's lock (another put of it is
 * refused) only until the stall timeout: then the agent cuts the session
 * and the next put of the blob goes through.
 */
static void test_agent_bin__stalled_put_is_cut(void **state)
{
	static const char *const args[] = {"serve", NULL};
	char *dir = ml_test_tmpdir("agent-stall");
	char *sd = ml_xasprintf("MLCTL_STATE_DIR=%s", dir);
	const char *const env[] = {
		"MLCTL_DOCKER_SOCK=/nonexistent/mlctl-test/docker.sock",
		"MLCTL_AGENT_STALL_TIMEOUT_MS=1000", sd, NULL};
	static const char data[] = "0123456789abcdef";
	char digest[80];
	struct ml_buf err = ML_BUF_INIT(0);
	struct child a, b;
	json_t *res = NULL;
	uint64_t ida = 1, idb = 1, rid;

	if (!agent_bin())
		skip();
	blob_digest(digest, data, 16);
	spawn(&a, args, env);
	spawn(&b, args, env);
	assert_int_equal(ml_proto_hello(&a.io, &ida, &res), 0);
	json_decref(res);
	assert_int_equal(ml_proto_hello(&b.io, &idb, &res), 0);
	json_decref(res);

	put_begin(&a, &ida, digest, 16);
	assert_int_equal(ml_frame_write(&a.io, ML_FRAME_DATA, data, 6), 0);
	poll(NULL, 0, 200);
	/* while a stalls, its put holds the blob */
	rid = put_begin(&b, &idb, digest, 16);
	assert_int_equal(ml_frame_write(&b.io, ML_FRAME_DATA, data, 16), 0);
	assert_int_equal(ml_frame_write(&b.io, ML_FRAME_DATA, "", 0), 0);
	assert_int_equal(ml_proto_reply(&b.io, rid, "blob_put", &res),
			 ML_ELOCKED);

	assert_true(closes_within(&a, 5000));
	assert_int_equal(finish(&a, NULL, &err), ml_exit_code(ML_EHOST));
	assert_non_null(strstr(ml_buf_str(&err), "no data within 1000 ms"));

	/* the lock is free again; the put resumes where a stopped */
	assert_int_equal(ml_proto_request(&b.io, &idb, "blob_put",
					  json_pack("{s:s,s:i,s:i}", "digest",
						    digest, "size", 16,
						    "offset", 6),
					  &rid),
			 0);
	assert_int_equal(ml_frame_write(&b.io, ML_FRAME_DATA, data + 6, 10),
			 0);
	assert_int_equal(ml_frame_write(&b.io, ML_FRAME_DATA, "", 0), 0);
	if (ml_proto_reply(&b.io, rid, "blob_put", &res) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(json_is_true(json_object_get(res, "stored")));
	json_decref(res);
	assert_int_equal(finish(&b, NULL, NULL), 0);
	ml_buf_release(&err);
	ml_test_rmtree(dir);
	free(dir);
	free(sd);
}

/*
 * A bad frame length inside blob_put's data ends the session after the
 * put's error reply: the bytes after it are never read as requests.
 */
static void test_agent_bin__bad_frame_inside_put_ends_session(void **state)
{
	static const char *const args[] = {"serve", NULL};
	char *dir = ml_test_tmpdir("agent-badput");
	char *sd = ml_xasprintf("MLCTL_STATE_DIR=%s", dir);
	const char *const env[] = {
		"MLCTL_DOCKER_SOCK=/nonexistent/mlctl-test/docker.sock", sd,
		NULL};
	struct ml_buf b = ML_BUF_INIT(0), err = ML_BUF_INIT(0);
	char digest[80];
	struct child c;
	json_t *res = NULL, *msg = NULL;
	uint64_t id = 1, rid;

	if (!agent_bin())
		skip();
	blob_digest(digest, "x", 1);
	spawn(&c, args, env);
	assert_int_equal(ml_proto_hello(&c.io, &id, &res), 0);
	json_decref(res);
	rid = put_begin(&c, &id, digest, 1);
	/* a length of 0, then what would be a valid request */
	frame_add_len(&b, 0);
	frame_add_json(&b, "{\"v\":1,\"id\":99,\"op\":\"lock_status\"}");
	assert_int_equal(write(c.in, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(ml_proto_reply(&c.io, rid, "blob_put", &res),
			 ML_EPROTO);
	/* and nothing more: no answer to request 99 */
	assert_int_equal(ml_proto_recv(&c.io, &msg), ML_EPROTO);
	assert_null(msg);
	assert_int_equal(finish(&c, NULL, &err), ml_exit_code(ML_EPROTO));
	ml_buf_release(&b);
	ml_buf_release(&err);
	ml_test_rmtree(dir);
	free(dir);
	free(sd);
}

static int run_cmd(const char *const *args, struct ml_buf *out)
{
	struct child c;

	spawn(&c, args, NULL);
	return finish(&c, out, NULL);
}

static void test_agent_bin__commands(void **state)
{
	static const char *const version[] = {"version", NULL};
	static const char *const help[] = {"--help", NULL};
	static const char *const none[] = {NULL};
	static const char *const bogus[] = {"bogus", NULL};
	static const char *const extra[] = {"serve", "now", NULL};
	struct ml_buf out = ML_BUF_INIT(0);

	if (!agent_bin())
		skip();
	assert_int_equal(run_cmd(version, &out), 0);
	assert_string_equal(ml_buf_str(&out),
			    "mlctl-agent " ML_VERSION " (protocol 1)\n");
	ml_buf_reset(&out);
	assert_int_equal(run_cmd(help, &out), 0);
	assert_non_null(strstr(ml_buf_str(&out), "  serve "));
	assert_non_null(strstr(ml_buf_str(&out), "  inspect "));
	assert_int_equal(run_cmd(none, NULL), ml_exit_code(ML_EUSAGE));
	assert_int_equal(run_cmd(bogus, NULL), ml_exit_code(ML_EUSAGE));
	assert_int_equal(run_cmd(extra, NULL), ml_exit_code(ML_EUSAGE));
	ml_buf_release(&out);
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

static void test_agent_bin__real_docker(void **state)
{
	static const char *const args[] = {"serve", NULL};
	const char *sock = getenv("MLCTL_TEST_DOCKER_SOCK");
	const char *app = env_or("MLCTL_TEST_DOCKER_APP", "demo");
	const char *name = env_or("MLCTL_TEST_DOCKER_CONTAINER", "demo-r3-a");
	const char *rev = env_or("MLCTL_TEST_DOCKER_REVISION", "3");
	const char *want_version = getenv("MLCTL_TEST_DOCKER_VERSION");
	const char *env[2] = {NULL, NULL};
	struct ml_buf e = ML_BUF_INIT(0);
	json_t *res = NULL, *list, *c = NULL, *v;
	const char *dv, *id = NULL;
	struct child ch;
	uint64_t seq = 1;
	size_t i;

	if (!agent_bin())
		skip();
	if (!sock || !*sock) {
		fprintf(stderr,
			"skipping: MLCTL_TEST_DOCKER_SOCK is not set "
			"(see tests/unit/agent/check_real_docker.sh)\n");
		skip();
	}
	ml_buf_addf(&e, "MLCTL_DOCKER_SOCK=%s", sock);
	env[0] = e.data;
	spawn(&ch, args, env);

	assert_int_equal(ml_proto_hello(&ch.io, &seq, &res), 0);
	v = json_object_get(res, "docker");
	dv = json_string_value(json_object_get(v, "version"));
	if (!dv)
		fail_msg("hello has no Docker version: %s",
			 json_string_value(json_object_get(v, "error")));
	if (want_version)
		assert_string_equal(dv, want_version);
	assert_non_null(json_string_value(json_object_get(v, "api_version")));
	json_decref(res);

	assert_int_equal(ml_proto_call(&ch.io, &seq, "list",
				       json_pack("{s:s}", "app", app), &res),
			 0);
	list = json_object_get(res, "containers");
	json_array_foreach(list, i, v)
	{
		assert_string_equal(
			json_string_value(json_object_get(v, "app")), app);
		if (!strcmp(json_string_value(json_object_get(v, "name")),
			    name))
			c = v;
	}
	if (!c)
		fail_msg("list of '%s' has no container '%s'", app, name);
	assert_int_equal(json_integer_value(json_object_get(c, "revision")),
			 atoi(rev));
	id = json_string_value(json_object_get(c, "id"));
	assert_int_equal(strlen(id), 64);
	assert_string_equal(json_string_value(json_object_get(c, "state")),
			    "running");

	assert_int_equal(ml_proto_call(&ch.io, &seq, "inspect",
				       json_pack("{s:s}", "id", name), &v),
			 0);
	assert_string_equal(json_string_value(json_object_get(v, "id")), id);
	assert_string_equal(json_string_value(json_object_get(v, "state")),
			    "running");
	assert_int_equal(json_integer_value(json_object_get(v, "revision")),
			 atoi(rev));
	assert_true(json_is_string(json_object_get(v, "started_at")));
	assert_string_equal(json_string_value(json_object_get(v, "image_id")),
			    json_string_value(json_object_get(c, "image_id")));
	json_decref(v);
	json_decref(res);

	assert_int_equal(ml_proto_call(&ch.io, &seq, "inspect",
				       json_pack("{s:s}", "id",
						 "mlctl-no-such-container"),
				       &v),
			 ML_ENOTFOUND);
	assert_int_equal(finish(&ch, NULL, NULL), 0);
	ml_buf_release(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_bin__session),
		cmocka_unit_test(test_agent_bin__bad_length),
		cmocka_unit_test(test_agent_bin__idle_peer_is_cut),
		cmocka_unit_test(test_agent_bin__stalled_put_is_cut),
		cmocka_unit_test(test_agent_bin__bad_frame_inside_put_ends_session),
		cmocka_unit_test(test_agent_bin__commands),
		cmocka_unit_test(test_agent_bin__real_docker),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
