/*
 * The wire protocol (see proto.h for the format): frames over a struct
 * ml_io, JSON messages inside them, and the client's request/reply call.
 *
 * Invariants: a frame length is checked against ML_PROTO_MAX_FRAME before
 * anything is allocated, and payloads are read in chunks of at most
 * FRAME_CHUNK bytes, so memory follows the bytes actually received (at most
 * twice the payload, from buffer doubling). Encoding goes through a buffer
 * capped at ML_PROTO_MAX_PAYLOAD, so a huge message fails without being
 * built in full. JSON text is pre-scanned for depth and size before jansson
 * parses it. Text from the peer is escaped (ml_escape) before it becomes
 * part of an error message.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/proto.h"

#define FRAME_CHUNK ((size_t)64 << 10)
#define FRAME_SMALL 4096 /* frames up to this size go out in one write */

/* What an array or object costs against ML_PROTO_MAX_NODES: jansson's
 * containers are several times larger than its scalars. */
#define NODE_COST_CONTAINER 8

static json_t *jcheck(json_t *v)
{
	if (!v) {
		/* jansson only fails on valid input when out of memory */
		fputs("fatal: out of memory building a JSON message\n", stderr);
		abort();
	}
	return v;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int ml_frame_write(struct ml_io *io, char type, const void *p, size_t n)
{
	unsigned char small[FRAME_SMALL];
	int rc;

	if (type != ML_FRAME_JSON && type != ML_FRAME_DATA)
		BUG("frame type 0x%02x", (unsigned char)type);
	if (n > ML_PROTO_MAX_PAYLOAD)
		return ml_err_set(ML_ETOOBIG,
				  "message of %zu bytes exceeds the frame "
				  "limit of %zu",
				  n, ML_PROTO_MAX_PAYLOAD);
	put_be32(small, (uint32_t)(n + 1));
	small[4] = (unsigned char)type;
	if (n <= sizeof(small) - 5) {
		if (n)
			memcpy(small + 5, p, n);
		return io->write(io->ctx, small, n + 5);
	}
	rc = io->write(io->ctx, small, 5);
	if (rc < 0)
		return rc;
	return io->write(io->ctx, p, n);
}

int ml_frame_read_ex(struct ml_io *io, char *type, struct ml_buf *payload,
		     bool *in_sync)
{
	unsigned char hdr[5];
	uint32_t len;
	size_t left, chunk;
	bool eof = false;
	int rc;

	*type = 0;
	if (in_sync)
		*in_sync = false;
	ml_buf_reset(payload);
	rc = ml_io_read_full(io, hdr, 4, &eof);
	if (rc < 0 && eof)
		return 0;
	if (rc < 0)
		goto truncated;
	len = get_be32(hdr);
	if (len == 0)
		return ml_err_set(ML_EPROTO,
				  "frame of 0 bytes has no type byte");
	if (len > ML_PROTO_MAX_FRAME)
		return ml_err_set(ML_EPROTO,
				  "frame of %lu bytes exceeds the limit of %zu",
				  (unsigned long)len, ML_PROTO_MAX_FRAME);
	rc = ml_io_read_full(io, hdr + 4, 1, NULL);
	if (rc < 0)
		goto truncated;
	for (left = len - 1; left; left -= chunk) {
		chunk = left < FRAME_CHUNK ? left : FRAME_CHUNK;
		rc = ml_buf_grow(payload, chunk);
		if (rc < 0)
			return rc;
		rc = ml_io_read_full(io, payload->data + payload->len, chunk,
				     NULL);
		if (rc < 0)
			goto truncated;
		payload->len += chunk;
		payload->data[payload->len] = '\0';
	}
	if (hdr[4] != ML_FRAME_JSON && hdr[4] != ML_FRAME_DATA) {
		ml_buf_reset(payload);
		if (in_sync)
			*in_sync = true;
		return ml_err_set(ML_EPROTO, "unknown frame type 0x%02x",
				  hdr[4]);
	}
	*type = (char)hdr[4];
	return 1;

truncated:
	/* keep io's own error (timeout, read failure); reword a short read */
	if (rc == ML_EPROTO) {
		char why[256];

		snprintf(why, sizeof(why), "%s", ml_err_msg());
		ml_err_set(ML_EPROTO, "truncated frame: %s", why);
	}
	return rc;
}

int ml_frame_read(struct ml_io *io, char *type, struct ml_buf *payload)
{
	return ml_frame_read_ex(io, type, payload, NULL);
}

struct dump_ctx {
	struct ml_buf b;
	bool too_big;
};

static int dump_cb(const char *p, size_t n, void *data)
{
	struct dump_ctx *d = data;

	if (ml_buf_add(&d->b, p, n) < 0) {
		d->too_big = true;
		return -1;
	}
	return 0;
}

int ml_proto_send(struct ml_io *io, json_t *msg)
{
	struct dump_ctx d = {ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD), false};
	int rc;

	if (!json_is_object(msg))
		return ml_err_set(ML_EFAIL, "message is not a JSON object");
	if (json_dump_callback(msg, dump_cb, &d, JSON_COMPACT) < 0) {
		if (d.too_big)
			rc = ml_err_set(ML_ETOOBIG,
					"message exceeds the frame limit of "
					"%zu bytes",
					ML_PROTO_MAX_PAYLOAD);
		else
			rc = ml_err_set(ML_EFAIL, "cannot encode a message");
		goto out;
	}
	rc = ml_frame_write(io, ML_FRAME_JSON, d.b.data, d.b.len);
out:
	ml_buf_release(&d.b);
	return rc;
}

/*
 * Reject text nested deeper than ML_PROTO_MAX_DEPTH or with more nodes
 * than the budget, before jansson builds anything. For valid JSON the
 * count is exact; invalid JSON that slips through is rejected by jansson.
 */
static int json_prescan(const unsigned char *p, size_t n)
{
	size_t i, depth = 0, cost = 0;
	bool in_str = false;

	for (i = 0; i < n; i++) {
		if (in_str) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_str = false;
			continue;
		}
		switch (p[i]) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > ML_PROTO_MAX_DEPTH)
				return ml_err_set(ML_EPROTO,
						  "JSON nested deeper than %d "
						  "levels",
						  ML_PROTO_MAX_DEPTH);
			cost += NODE_COST_CONTAINER;
			break;
		case ']':
		case '}':
			if (depth)
				depth--;
			break;
		case ',':
			cost++;
			break;
		}
		if (cost > ML_PROTO_MAX_NODES)
			return ml_err_set(ML_EPROTO,
					  "JSON message has too many elements "
					  "(limit %d)",
					  ML_PROTO_MAX_NODES);
	}
	return 0;
}

int ml_proto_decode(json_t **out, const void *p, size_t n)
{
	struct ml_buf esc = ML_BUF_INIT(512);
	json_error_t jerr;
	json_t *v = NULL;
	int rc;

	rc = json_prescan(p, n);
	if (rc < 0)
		goto out;
	v = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		ml_escape(&esc, jerr.text,
			  strnlen(jerr.text, sizeof(jerr.text)));
		rc = ml_err_set(ML_EPROTO, "invalid JSON at byte %d: %s",
				jerr.position, ml_buf_str(&esc));
		goto out;
	}
	if (!json_is_object(v)) {
		rc = ml_err_set(ML_EPROTO, "JSON message is not an object");
		goto out;
	}
	*out = v;
	v = NULL;
	rc = 0;
out:
	json_decref(v);
	ml_buf_release(&esc);
	return rc;
}

int ml_proto_recv(struct ml_io *io, json_t **msg)
{
	struct ml_buf payload = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	char type;
	int rc;

	rc = ml_frame_read(io, &type, &payload);
	if (rc == 0)
		rc = ml_err_set(ML_EPROTO, "connection closed by the peer");
	if (rc < 0)
		goto out;
	if (type != ML_FRAME_JSON) {
		rc = ml_err_set(ML_EPROTO,
				"expected a JSON message, got a data frame");
		goto out;
	}
	rc = ml_proto_decode(msg, payload.data, payload.len);
out:
	ml_buf_release(&payload);
	return rc;
}

static const struct {
	const char *word;
	int code;
} proto_codes[] = {
	/* first entry for a code is the one sent for it */
	{"failed", ML_EFAIL},
	{"invalid", ML_EINVALID},
	{"unreachable", ML_EHOST},
	{"locked", ML_ELOCKED},
	{"interrupted", ML_EINTR},
	{ML_PROTO_ERR_BAD_REQUEST, ML_EPROTO},
	{"not-found", ML_ENOTFOUND},
	{ML_PROTO_ERR_TOO_BIG, ML_ETOOBIG},
	{"no-space", ML_ENOSPACE},
	{ML_PROTO_ERR_BAD_FRAME, ML_EPROTO},
	{ML_PROTO_ERR_UNKNOWN_OP, ML_EPROTO},
	{ML_PROTO_ERR_HELLO_FIRST, ML_EPROTO},
	{ML_PROTO_ERR_VERSION, ML_EPROTO},
	{"corrupt", ML_EFAIL},	  /* blob_put: digest mismatch, bad zstd */
	{"bad-offset", ML_EPROTO}, /* blob_put: offset != bytes received */
};

const char *ml_proto_code_from_ml(int code)
{
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(proto_codes); i++)
		if (proto_codes[i].code == code)
			return proto_codes[i].word;
	return "failed";
}

int ml_proto_code_to_ml(const char *word)
{
	size_t i;

	for (i = 0; word && i < ML_ARRAY_SIZE(proto_codes); i++)
		if (!strcmp(proto_codes[i].word, word))
			return proto_codes[i].code;
	return ML_EPROTO;
}

json_t *ml_proto_string(const char *s)
{
	struct ml_buf b = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	json_t *v;

	if (!s)
		return jcheck(json_null());
	v = json_string(s);
	if (v)
		return v;
	/* not UTF-8: escaping leaves only valid sequences and \xNN */
	if (ml_escape(&b, s, strlen(s)) < 0)
		ml_buf_reset(&b);
	v = jcheck(json_string(ml_buf_str(&b)));
	ml_buf_release(&b);
	return v;
}

static json_t *envelope(uint64_t id)
{
	json_t *m = jcheck(json_object());

	json_object_set_new(m, "v", jcheck(json_integer(ML_PROTO_VERSION)));
	json_object_set_new(m, "id", jcheck(json_integer((json_int_t)id)));
	return m;
}

json_t *ml_proto_ok_reply(uint64_t id, json_t *result)
{
	json_t *m = envelope(id);

	json_object_set_new(m, "ok", json_true());
	json_object_set_new(m, "result",
			    result ? result : jcheck(json_object()));
	return m;
}

json_t *ml_proto_error_reply(uint64_t id, const char *code, const char *message)
{
	json_t *m = envelope(id), *e = jcheck(json_object());

	json_object_set_new(e, "code", ml_proto_string(code));
	json_object_set_new(e, "message", ml_proto_string(message));
	json_object_set_new(m, "ok", json_false());
	json_object_set_new(m, "error", e);
	return m;
}

/* The remote error of a reply as our error, escaped. */
static int remote_error(const char *op, json_t *reply)
{
	struct ml_buf esc = ML_BUF_INIT(1024);
	json_t *e = json_object_get(reply, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	int rc;

	if (!msg || !*msg)
		msg = code ? code : "no reason given";
	ml_escape(&esc, msg, strlen(msg));
	rc = ml_proto_code_to_ml(code);
	if (code && !strcmp(code, ML_PROTO_ERR_UNKNOWN_OP))
		/* the usual cause: mlctl was upgraded, the hosts were not */
		ml_err_set(rc, "%s failed: %s; upgrade the agent with 'mlctl "
			   "bootstrap'", op, ml_buf_str(&esc));
	else if (code && !strcmp(code, ML_PROTO_ERR_BAD_FRAME))
		ml_err_set(rc, "the agent could not read the %s request: %s",
			   op, ml_buf_str(&esc));
	else
		ml_err_set(rc, "%s failed: %s", op, ml_buf_str(&esc));
	ml_buf_release(&esc);
	return rc;
}

int ml_proto_request(struct ml_io *io, uint64_t *next_id, const char *op,
		     json_t *args, uint64_t *id)
{
	json_t *req;
	int rc;

	if (*next_id == 0 || *next_id > ML_PROTO_MAX_ID)
		*next_id = 1;
	*id = (*next_id)++;
	if (!args)
		args = jcheck(json_object());
	req = envelope(*id);
	json_object_set_new(req, "op", jcheck(json_string(op)));
	json_object_set_new(req, "args", args);
	rc = ml_proto_send(io, req);
	json_decref(req);
	return rc;
}

int ml_proto_reply(struct ml_io *io, uint64_t id, const char *op,
		   json_t **result)
{
	json_t *reply = NULL, *v, *res;
	json_int_t rid;
	int rc;

	rc = ml_proto_recv(io, &reply);
	if (rc < 0)
		goto out;

	v = json_object_get(reply, "id");
	rid = json_is_integer(v) ? json_integer_value(v) : -1;
	if (rid == 0 && json_is_false(json_object_get(reply, "ok"))) {
		rc = remote_error(op, reply);
		goto out;
	}
	if (rid < 0 || (uint64_t)rid != id) {
		rc = ml_err_set(ML_EPROTO,
				"reply to %s has id %lld, expected %llu", op,
				(long long)rid, (unsigned long long)id);
		goto out;
	}
	v = json_object_get(reply, "v");
	if (!json_is_integer(v) || json_integer_value(v) != ML_PROTO_VERSION) {
		rc = ml_err_set(ML_EPROTO,
				"reply to %s has no or another protocol "
				"version",
				op);
		goto out;
	}
	v = json_object_get(reply, "ok");
	if (json_is_false(v)) {
		rc = remote_error(op, reply);
		goto out;
	}
	res = json_object_get(reply, "result");
	if (!json_is_true(v) || !json_is_object(res)) {
		rc = ml_err_set(ML_EPROTO, "malformed reply to %s", op);
		goto out;
	}
	*result = json_incref(res);
	rc = 0;
out:
	json_decref(reply);
	return rc;
}

int ml_proto_call(struct ml_io *io, uint64_t *next_id, const char *op,
		  json_t *args, json_t **result)
{
	uint64_t id;
	int rc;

	rc = ml_proto_request(io, next_id, op, args, &id);
	if (rc < 0)
		return rc;
	return ml_proto_reply(io, id, op, result);
}

int ml_proto_hello(struct ml_io *io, uint64_t *next_id, json_t **result)
{
	json_t *args = jcheck(json_object()), *vers = jcheck(json_array());
	json_t *res = NULL, *p;
	json_int_t v;
	int rc, i;

	for (i = 1; i <= ML_PROTO_VERSION; i++)
		json_array_append_new(vers, jcheck(json_integer(i)));
	json_object_set_new(args, "versions", vers);
	rc = ml_proto_call(io, next_id, "hello", args, &res);
	if (rc < 0)
		goto out;
	p = json_object_get(res, "protocol");
	v = json_is_integer(p) ? json_integer_value(p) : 0;
	if (v < 1 || v > ML_PROTO_VERSION) {
		rc = ml_err_set(ML_EPROTO,
				"the agent chose protocol version %lld, which "
				"was not offered",
				(long long)v);
		goto out;
	}
	if (result) {
		*result = res;
		res = NULL;
	}
	rc = 0;
out:
	json_decref(res);
	return rc;
}
