/*
 * Unit tests of common/proto.c: framing (round trip over a pipe, length
 * limits, truncation, unknown types, end of stream, short reads), JSON
 * decoding limits, and the client call (ids, error replies, escaping).
 */
#include "common/ml.h"
#include "common/proto.h"
#include "tests/unit/common/mem_io.h"

#include <pthread.h>
#include <setjmp.h>
#include <unistd.h>
#include <cmocka.h>

/* Read every frame of an in-memory stream; return the last result. */
static int read_one(const struct ml_buf *in, char *type, struct ml_buf *pl,
		    bool *in_sync)
{
	struct mem_io m;
	struct ml_io io;
	int rc;

	mem_io_init(&io, &m, in->data, in->len);
	rc = ml_frame_read_ex(&io, type, pl, in_sync);
	mem_io_release(&m);
	return rc;
}

struct writer_arg {
	int fd;
	size_t sizes[8];
	size_t n;
};

static void *writer_main(void *p)
{
	struct writer_arg *w = p;
	struct ml_io_fd fdctx;
	struct ml_io io;
	char *data;
	size_t i, j;

	ml_io_fd_init(&io, &fdctx, -1, w->fd, 5000);
	for (i = 0; i < w->n; i++) {
		data = ml_xmalloc(w->sizes[i] + 1);
		for (j = 0; j < w->sizes[i]; j++)
			data[j] = (char)(i * 7 + j);
		if (ml_frame_write(&io, i % 2 ? ML_FRAME_DATA : ML_FRAME_JSON,
				   data, w->sizes[i]) < 0)
			abort();
		free(data);
	}
	close(w->fd);
	return NULL;
}

static void test_proto__frame_roundtrip_pipe(void **state)
{
	struct writer_arg w = {
		.sizes = {0, 1, 4091, 4092, 70000, ML_PROTO_MAX_PAYLOAD, 5},
		.n = 7,
	};
	struct ml_buf pl = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	struct ml_io_fd fdctx;
	struct ml_io io;
	pthread_t th;
	int fds[2];
	size_t i, j;
	char type;

	assert_int_equal(pipe(fds), 0);
	w.fd = fds[1];
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	ml_io_fd_init(&io, &fdctx, fds[0], -1, 5000);
	for (i = 0; i < w.n; i++) {
		assert_int_equal(ml_frame_read(&io, &type, &pl), 1);
		assert_int_equal(type, i % 2 ? ML_FRAME_DATA : ML_FRAME_JSON);
		assert_int_equal(pl.len, w.sizes[i]);
		for (j = 0; j < pl.len; j++)
			if (pl.data[j] != (char)(i * 7 + j))
				fail_msg("frame %zu differs at byte %zu", i, j);
	}
	/* then a clean end of stream */
	assert_int_equal(ml_frame_read(&io, &type, &pl), 0);
	pthread_join(th, NULL);
	close(fds[0]);
	ml_buf_release(&pl);
}

static void test_proto__frame_zero_length(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0), pl = ML_BUF_INIT(0);
	bool sync = true;
	char type;

	frame_add_len(&in, 0);
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);
	assert_false(sync);
	assert_non_null(strstr(ml_err_msg(), "0 bytes"));
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

static void test_proto__frame_max_and_over(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0),
		      pl = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	char *big = ml_xcalloc(1, ML_PROTO_MAX_PAYLOAD);
	bool sync = true;
	char type;

	frame_add(&in, ML_FRAME_DATA, big, ML_PROTO_MAX_PAYLOAD);
	assert_int_equal(read_one(&in, &type, &pl, &sync), 1);
	assert_int_equal(type, ML_FRAME_DATA);
	assert_int_equal(pl.len, ML_PROTO_MAX_PAYLOAD);

	ml_buf_reset(&in);
	frame_add_len(&in, (uint32_t)ML_PROTO_MAX_FRAME + 1);
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);
	assert_false(sync);
	assert_string_equal(ml_err_msg(),
			    "frame of 1048578 bytes exceeds the limit of "
			    "1048577");

	ml_buf_reset(&in);
	frame_add_len(&in, 0xffffffffu);
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);
	assert_false(sync);
	free(big);
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

static void test_proto__frame_write_too_big(void **state)
{
	char *big = ml_xcalloc(1, ML_PROTO_MAX_PAYLOAD + 1);
	struct mem_io m;
	struct ml_io io;

	mem_io_init(&io, &m, NULL, 0);
	assert_int_equal(ml_frame_write(&io, ML_FRAME_DATA, big,
					ML_PROTO_MAX_PAYLOAD + 1),
			 ML_ETOOBIG);
	assert_int_equal(m.written, 0);
	assert_int_equal(
		ml_frame_write(&io, ML_FRAME_DATA, big, ML_PROTO_MAX_PAYLOAD),
		0);
	assert_int_equal(m.written, ML_PROTO_MAX_PAYLOAD + 5);
	free(big);
	mem_io_release(&m);
}

static void test_proto__frame_truncated(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0), pl = ML_BUF_INIT(0);
	bool sync = true;
	char type;

	/* nothing at all: a clean end */
	assert_int_equal(read_one(&in, &type, &pl, &sync), 0);

	/* half a header */
	ml_buf_add(&in, "\0\0", 2);
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);
	assert_false(sync);
	assert_non_null(strstr(ml_err_msg(), "truncated frame"));

	/* header without the type byte */
	ml_buf_reset(&in);
	frame_add_len(&in, 10);
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);

	/* payload cut short */
	ml_buf_reset(&in);
	frame_add(&in, ML_FRAME_JSON, "{\"a\":1}", 7);
	in.len -= 3;
	assert_int_equal(read_one(&in, &type, &pl, &sync), ML_EPROTO);
	assert_false(sync);
	assert_non_null(strstr(ml_err_msg(), "stream ended after"));
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

/* A length that lies costs no memory beyond what arrives. */
static void test_proto__frame_lying_length(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0),
		      pl = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	char type;

	frame_add_len(&in, (uint32_t)ML_PROTO_MAX_FRAME);
	ml_buf_add(&in, "J0123456789", 11);
	assert_int_equal(read_one(&in, &type, &pl, NULL), ML_EPROTO);
	assert_true(pl.cap <= ((size_t)256 << 10));
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

static void test_proto__frame_unknown_type(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0), pl = ML_BUF_INIT(0);
	struct mem_io m;
	struct ml_io io;
	bool sync = false;
	char type;

	frame_add(&in, 'X', "junk", 4);
	frame_add(&in, '\0', "", 0);
	frame_add_json(&in, "{}");
	mem_io_init(&io, &m, in.data, in.len);
	assert_int_equal(ml_frame_read_ex(&io, &type, &pl, &sync), ML_EPROTO);
	assert_true(sync);
	assert_string_equal(ml_err_msg(), "unknown frame type 0x58");
	assert_int_equal(ml_frame_read_ex(&io, &type, &pl, &sync), ML_EPROTO);
	assert_true(sync);
	/* the stream is still in step */
	assert_int_equal(ml_frame_read_ex(&io, &type, &pl, &sync), 1);
	assert_int_equal(type, ML_FRAME_JSON);
	assert_string_equal(pl.data, "{}");
	assert_int_equal(ml_frame_read(&io, &type, &pl), 0);
	mem_io_release(&m);
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

static void test_proto__frame_short_reads(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0), pl = ML_BUF_INIT(0);
	struct mem_io m;
	struct ml_io io;
	char type;

	frame_add_json(&in, "{\"op\":\"hello\"}");
	frame_add(&in, ML_FRAME_DATA, "abc", 3);
	mem_io_init(&io, &m, in.data, in.len);
	m.chunk = 1;
	assert_int_equal(ml_frame_read(&io, &type, &pl), 1);
	assert_string_equal(pl.data, "{\"op\":\"hello\"}");
	assert_int_equal(ml_frame_read(&io, &type, &pl), 1);
	assert_int_equal(type, ML_FRAME_DATA);
	assert_int_equal(pl.len, 3);
	assert_int_equal(ml_frame_read(&io, &type, &pl), 0);
	mem_io_release(&m);
	ml_buf_release(&in);
	ml_buf_release(&pl);
}

static int decode(const char *text, size_t n)
{
	json_t *v = NULL;
	int rc = ml_proto_decode(&v, text, n);

	if (rc == 0)
		assert_true(json_is_object(v));
	json_decref(v);
	return rc;
}

#define DECODE(s) decode((s), sizeof(s) - 1)

static void test_proto__json_limits(void **state)
{
	char deep[2 * 40 + 16];
	size_t i, n;

	assert_int_equal(DECODE("{\"a\":[1,{\"b\":null}]}"), 0);
	assert_int_equal(DECODE("  {}\n"), 0);
	/* not objects */
	assert_int_equal(DECODE("[1]"), ML_EPROTO);
	assert_string_equal(ml_err_msg(), "JSON message is not an object");
	assert_int_equal(DECODE("1"), ML_EPROTO);
	assert_int_equal(DECODE("\"s\""), ML_EPROTO);
	assert_int_equal(DECODE(""), ML_EPROTO);
	assert_int_equal(DECODE("{} {}"), ML_EPROTO);
	/* bad UTF-8, NUL, duplicates */
	assert_int_equal(DECODE("{\"a\":\"\xff\"}"), ML_EPROTO);
	assert_int_equal(DECODE("{\"a\":\"\xc0\x80\"}"), ML_EPROTO);
	assert_int_equal(DECODE("{\"a\":\"\\u0000\"}"), ML_EPROTO);
	assert_int_equal(DECODE("{\"a\":\"x\0\"}"), ML_EPROTO);
	assert_int_equal(DECODE("{\"a\":1,\"a\":2}"), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "duplicate"));
	/* the parser's text about our input is escaped */
	assert_int_equal(DECODE("{\x1b[2J}"), ML_EPROTO);
	assert_null(strchr(ml_err_msg(), '\x1b'));

	/* depth 32 is fine, 33 is not; brackets in strings do not count */
	for (n = 32; n <= 33; n++) {
		memset(deep, 0, sizeof(deep));
		deep[0] = '{';
		memcpy(deep + 1, "\"a\":", 4);
		for (i = 1; i < n; i++)
			deep[4 + i] = '[';
		for (i = 1; i < n; i++)
			deep[4 + n - 1 + i] = ']';
		deep[4 + 2 * (n - 1) + 1] = '}';
		assert_int_equal(decode(deep, strlen(deep)),
				 n == 32 ? 0 : ML_EPROTO);
	}
	assert_non_null(strstr(ml_err_msg(), "deeper than 32"));
	assert_int_equal(DECODE("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
				"[[[[[[\\\"[[[\"}"),
			 0);
}

static void test_proto__json_too_many_nodes(void **state)
{
	struct ml_buf b = ML_BUF_INIT(0);
	size_t i;

	ml_buf_addstr(&b, "{\"a\":[");
	for (i = 0; i < ML_PROTO_MAX_NODES + 1; i++)
		ml_buf_addstr(&b, i ? ",0" : "0");
	ml_buf_addstr(&b, "]}");
	assert_int_equal(decode(b.data, b.len), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "too many elements"));
	ml_buf_reset(&b);
	ml_buf_addstr(&b, "{\"a\":[");
	for (i = 0; i < ML_PROTO_MAX_NODES / 8; i++)
		ml_buf_addstr(&b, i ? ",{}" : "{}");
	ml_buf_addstr(&b, "]}");
	assert_int_equal(decode(b.data, b.len), ML_EPROTO);
	ml_buf_release(&b);
}

static void test_proto__send_recv(void **state)
{
	json_t *msg = json_pack("{s:i,s:s}", "id", 3, "s", "h\xc3\xa9");
	json_t *got = NULL, *arr = json_array();
	struct ml_buf big = ML_BUF_INIT(0), in = ML_BUF_INIT(0);
	struct mem_io m, r;
	struct ml_io io, rio;

	mem_io_init(&io, &m, NULL, 0);
	assert_int_equal(ml_proto_send(&io, msg), 0);
	mem_io_init(&rio, &r, m.out.data, m.out.len);
	assert_int_equal(ml_proto_recv(&rio, &got), 0);
	assert_true(json_equal(msg, got));
	json_decref(got);
	/* end of stream is an error for a reader that expects a message */
	assert_int_equal(ml_proto_recv(&rio, &got), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "closed"));
	mem_io_release(&r);

	/* non-objects are refused */
	assert_int_equal(ml_proto_send(&io, arr), ML_EFAIL);

	/* too big: nothing written */
	m.written = 0;
	while (big.len <= ML_PROTO_MAX_PAYLOAD)
		ml_buf_addstr(&big, "0123456789abcdef");
	json_object_set_new(msg, "big", json_string(big.data));
	assert_int_equal(ml_proto_send(&io, msg), ML_ETOOBIG);
	assert_int_equal(m.written, 0);

	/* a data frame is not a message */
	frame_add(&in, ML_FRAME_DATA, "{}", 2);
	mem_io_init(&rio, &r, in.data, in.len);
	assert_int_equal(ml_proto_recv(&rio, &got), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "data frame"));
	mem_io_release(&r);
	mem_io_release(&m);
	json_decref(msg);
	json_decref(arr);
	ml_buf_release(&big);
	ml_buf_release(&in);
}

static char call_msg[1024];

/* Run one ml_proto_call against canned reply text. */
static int call(const char *reply, uint64_t *next_id, json_t **result,
		json_t **sent)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct mem_io m;
	struct ml_io io;
	json_t *frames;
	int rc;

	if (reply)
		frame_add_json(&in, reply);
	mem_io_init(&io, &m, in.data, in.len);
	rc = ml_proto_call(&io, next_id, "inspect",
			   json_pack("{s:s}", "id", "web"), result);
	snprintf(call_msg, sizeof(call_msg), "%s", ml_err_msg());
	frames = frames_decode(m.out.data, m.out.len);
	assert_non_null(frames);
	assert_int_equal(json_array_size(frames), 1);
	if (sent)
		*sent = json_incref(json_array_get(frames, 0));
	json_decref(frames);
	mem_io_release(&m);
	ml_buf_release(&in);
	ml_err_set(rc, "%s", call_msg);
	return rc;
}

static void test_proto__call_ok(void **state)
{
	json_t *res = NULL, *sent = NULL, *expect;
	uint64_t id = 0;

	assert_int_equal(call("{\"v\":1,\"id\":1,\"ok\":true,"
			      "\"result\":{\"state\":\"running\"}}",
			      &id, &res, &sent),
			 0);
	assert_int_equal(id, 2);
	assert_string_equal(json_string_value(json_object_get(res, "state")),
			    "running");
	expect = json_pack("{s:i,s:i,s:s,s:{s:s}}", "v", 1, "id", 1, "op",
			   "inspect", "args", "id", "web");
	assert_true(json_equal(sent, expect));
	json_decref(res);
	json_decref(sent);
	json_decref(expect);

	/* args NULL sends {} */
	{
		struct mem_io m;
		struct ml_io io;
		json_t *frames;

		mem_io_init(&io, &m, NULL, 0);
		assert_int_equal(ml_proto_call(&io, &id, "list", NULL, &res),
				 ML_EPROTO);
		frames = frames_decode(m.out.data, m.out.len);
		assert_true(json_is_object(
			json_object_get(json_array_get(frames, 0), "args")));
		assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(frames, 0), "id")),
				 2);
		json_decref(frames);
		mem_io_release(&m);
	}
}

static void test_proto__call_id_mismatch(void **state)
{
	json_t *res = NULL;
	uint64_t id = 5;

	assert_int_equal(call("{\"v\":1,\"id\":4,\"ok\":true,\"result\":{}}",
			      &id, &res, NULL),
			 ML_EPROTO);
	assert_string_equal(ml_err_msg(),
			    "reply to inspect has id 4, expected 5");
	assert_int_equal(
		call("{\"v\":1,\"ok\":true,\"result\":{}}", &id, &res, NULL),
		ML_EPROTO);
	assert_int_equal(call("{\"v\":1,\"id\":\"7\",\"ok\":true,"
			      "\"result\":{}}",
			      &id, &res, NULL),
			 ML_EPROTO);
	/* wrong version, malformed envelopes */
	assert_int_equal(call("{\"v\":2,\"id\":8,\"ok\":true,\"result\":{}}",
			      &id, &res, NULL),
			 ML_EPROTO);
	assert_int_equal(
		call("{\"v\":1,\"id\":9,\"ok\":true}", &id, &res, NULL),
		ML_EPROTO);
	assert_int_equal(call("{\"v\":1,\"id\":10,\"ok\":1,\"result\":{}}", &id,
			      &res, NULL),
			 ML_EPROTO);
	assert_int_equal(call("{\"v\":1,\"id\":11,\"ok\":true,"
			      "\"result\":[]}",
			      &id, &res, NULL),
			 ML_EPROTO);
	/* no reply at all */
	assert_int_equal(call(NULL, &id, &res, NULL), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "closed"));
}

static void test_proto__call_error_reply(void **state)
{
	json_t *res = NULL;
	uint64_t id = 1;

	assert_int_equal(call("{\"v\":1,\"id\":1,\"ok\":false,\"error\":"
			      "{\"code\":\"not-found\",\"message\":"
			      "\"no such container\"}}",
			      &id, &res, NULL),
			 ML_ENOTFOUND);
	assert_string_equal(ml_err_msg(), "inspect failed: no such container");

	/* remote text is escaped */
	assert_int_equal(call("{\"v\":1,\"id\":2,\"ok\":false,\"error\":"
			      "{\"code\":\"failed\",\"message\":"
			      "\"bad\\u001b[2J\\r\\nthing\"}}",
			      &id, &res, NULL),
			 ML_EFAIL);
	assert_string_equal(ml_err_msg(),
			    "inspect failed: bad\\x1b[2J\\x0d\\x0athing");

	/* unknown words are protocol errors; a missing message is survived */
	assert_int_equal(call("{\"v\":1,\"id\":3,\"ok\":false,\"error\":"
			      "{\"code\":\"martian\"}}",
			      &id, &res, NULL),
			 ML_EPROTO);
	assert_string_equal(ml_err_msg(), "inspect failed: martian");
	assert_int_equal(
		call("{\"v\":1,\"id\":4,\"ok\":false}", &id, &res, NULL),
		ML_EPROTO);

	/* id 0: the agent could not read the request */
	assert_int_equal(call("{\"v\":1,\"id\":0,\"ok\":false,\"error\":"
			      "{\"code\":\"bad-frame\",\"message\":"
			      "\"frame of 9 bytes exceeds the limit\"}}",
			      &id, &res, NULL),
			 ML_EPROTO);
	assert_string_equal(ml_err_msg(),
			    "the agent could not read the inspect request: "
			    "frame of 9 bytes exceeds the limit");
	assert_int_equal(call("{\"v\":1,\"id\":6,\"ok\":false,\"error\":"
			      "{\"code\":\"too-big\",\"message\":\"x\"}}",
			      &id, &res, NULL),
			 ML_ETOOBIG);
}

static void test_proto__hello(void **state)
{
	struct ml_buf in = ML_BUF_INIT(0);
	struct mem_io m;
	struct ml_io io;
	json_t *res = NULL, *frames;
	uint64_t id = 1;

	frame_add_json(&in, "{\"v\":1,\"id\":1,\"ok\":true,\"result\":"
			    "{\"protocol\":1,\"hostname\":\"vm1\"}}");
	frame_add_json(&in, "{\"v\":1,\"id\":2,\"ok\":true,\"result\":"
			    "{\"protocol\":7}}");
	mem_io_init(&io, &m, in.data, in.len);
	assert_int_equal(ml_proto_hello(&io, &id, &res), 0);
	assert_string_equal(json_string_value(json_object_get(res, "hostname")),
			    "vm1");
	json_decref(res);
	assert_int_equal(ml_proto_hello(&io, &id, NULL), ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "not offered"));
	frames = frames_decode(m.out.data, m.out.len);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(frames, 0), "op")),
			    "hello");
	assert_int_equal(
		json_integer_value(json_array_get(
			json_object_get(
				json_object_get(json_array_get(frames, 0),
						"args"),
				"versions"),
			0)),
		1);
	json_decref(frames);
	mem_io_release(&m);
	ml_buf_release(&in);
}

static void test_proto__codes_and_strings(void **state)
{
	static const int codes[] = {ML_EFAIL,	  ML_EINVALID, ML_EHOST,
				    ML_ELOCKED,	  ML_EINTR,    ML_EPROTO,
				    ML_ENOTFOUND, ML_ETOOBIG,  ML_ENOSPACE};
	json_t *s;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(codes); i++)
		assert_int_equal(
			ml_proto_code_to_ml(ml_proto_code_from_ml(codes[i])),
			codes[i]);
	assert_string_equal(ml_proto_code_from_ml(ML_EDEPLOY), "failed");
	assert_int_equal(ml_proto_code_to_ml(NULL), ML_EPROTO);
	assert_int_equal(ml_proto_code_to_ml("unknown-op"), ML_EPROTO);

	s = ml_proto_string("caf\xe9");
	assert_string_equal(json_string_value(s), "caf\\xe9");
	json_decref(s);
	s = ml_proto_string(NULL);
	assert_true(json_is_null(s));
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proto__frame_roundtrip_pipe),
		cmocka_unit_test(test_proto__frame_zero_length),
		cmocka_unit_test(test_proto__frame_max_and_over),
		cmocka_unit_test(test_proto__frame_write_too_big),
		cmocka_unit_test(test_proto__frame_truncated),
		cmocka_unit_test(test_proto__frame_lying_length),
		cmocka_unit_test(test_proto__frame_unknown_type),
		cmocka_unit_test(test_proto__frame_short_reads),
		cmocka_unit_test(test_proto__json_limits),
		cmocka_unit_test(test_proto__json_too_many_nodes),
		cmocka_unit_test(test_proto__send_recv),
		cmocka_unit_test(test_proto__call_ok),
		cmocka_unit_test(test_proto__call_id_mismatch),
		cmocka_unit_test(test_proto__call_error_reply),
		cmocka_unit_test(test_proto__hello),
		cmocka_unit_test(test_proto__codes_and_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
