/*
 * blob_put: receive one blob into the store (agent/blobstore.h).
 *
 *	args:   {"digest": "sha256:<64 hex>", "size": total bytes,
 *		 "offset": where the data starts (default 0),
 *		 "compression": "zstd" or "none" (default)}
 *	then:   'D' frames with the (compressed) bytes from offset to size,
 *		and one empty 'D' frame that ends the data
 *	result: {"digest", "size", "stored": true, "existed": bool}
 *
 * The only op that reads frames itself: the reply is sent after the end
 * marker, never before, so the controller can stream without waiting.
 * Whatever fails (bad args, no space, a bad offset, a full disk, bad
 * data), the remaining data frames are read and dropped up to the end
 * marker and then the one error reply goes out, so the stream stays at a
 * request boundary. A JSON frame before the end marker is a protocol error
 * answered at once (the JSON frame itself is dropped); the end of the
 * stream, a broken frame (bad length) or a peer silent past the stall
 * timeout stop the put, leave its .part for a resume and end the session
 * (a->out_of_sync), releasing the blob's lock.
 *
 * Memory: one payload buffer of at most ML_PROTO_MAX_PAYLOAD (1 MiB) plus
 * the put's constant buffers, whatever the blob's size.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "agent/blobstore.h"

struct put_args {
	const char *digest;
	uint64_t size, offset;
	bool zstd;
};

static int get_u64(uint64_t *out, json_t *args, const char *key, bool need)
{
	json_t *v = json_object_get(args, key);

	if (!v && !need) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > ML_BLOB_MAX_SIZE)
		return ml_err_set(ML_EPROTO,
				  "blob_put needs '%s', a byte count from 0 "
				  "to 2^53",
				  key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_args(struct put_args *pa, json_t *args)
{
	const char *c;
	json_t *v;
	int rc;

	pa->digest = json_string_value(json_object_get(args, "digest"));
	if (!ml_blob_digest_valid(pa->digest))
		return ml_err_set(ML_EPROTO,
				  "blob_put needs 'digest', \"sha256:\" and "
				  "64 lowercase hex digits");
	rc = get_u64(&pa->size, args, "size", true);
	if (rc < 0)
		return rc;
	rc = get_u64(&pa->offset, args, "offset", false);
	if (rc < 0)
		return rc;
	if (pa->offset > pa->size)
		return ml_err_set(ML_EPROTO,
				  "blob_put: offset %" PRIu64 " is past the "
				  "size %" PRIu64,
				  pa->offset, pa->size);
	v = json_object_get(args, "compression");
	c = v ? json_string_value(v) : "none";
	if (!c || (strcmp(c, "none") && strcmp(c, "zstd")))
		return ml_err_set(ML_EPROTO, "blob_put: 'compression' must be "
					     "\"zstd\" or \"none\"");
	pa->zstd = !strcmp(c, "zstd");
	return 0;
}

static int op_blob_put(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf payload = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	struct put_args pa = {0};
	struct ml_blobstore *s = NULL;
	struct ml_blob_put *p = NULL;
	const char *word = NULL;
	struct ml_err_saved why = { 0 };
	char type;
	json_t *r;
	bool in_sync;
	int rc, failed = 0;

	if (!a->io)
		return ml_err_set(ML_EFAIL, "blob_put needs the data stream of "
					    "a session (ml_agent_serve)");
	rc = parse_args(&pa, args);
	if (rc == 0) {
		ml_blobstore_open(&s, a->state_dir);
		ml_blob_put_new(&p, s, pa.digest, pa.size, pa.offset, pa.zstd);
		rc = ml_blob_put_begin(p);
		word = ml_blob_put_word(p);
	}
	if (rc < 0) {
		failed = rc;
		ml_err_save(&why);
	}

	for (;;) {
		rc = ml_frame_read_ex(a->io, &type, &payload, &in_sync);
		if (rc == 0) {
			rc = ml_err_set(ML_EPROTO,
					"blob_put: the stream ended before the "
					"end of the data");
			goto out;
		}
		if (rc < 0 && !in_sync) {
			/* a bad length or a cut stream: what follows cannot
			 * be read as requests, so the session ends here */
			a->out_of_sync = rc;
			goto out;
		}
		if (rc < 0 || type != ML_FRAME_DATA) {
			rc = ml_err_set(ML_EPROTO,
					"blob_put: got a %s frame before the "
					"end of the data (an empty data frame)",
					rc < 0 ? "bad" : "JSON");
			goto out;
		}
		if (payload.len == 0)
			break;
		if (failed || ml_blob_put_exists(p))
			continue; /* drop the data, keep the stream in sync */
		rc = ml_blob_put_write(p, payload.data, payload.len);
		if (rc < 0) {
			failed = rc;
			word = ml_blob_put_word(p);
			ml_err_save(&why);
		}
	}
	if (failed) {
		ml_err_restore(&why);
		rc = failed;
		a->err_word = word;
		goto out;
	}
	rc = ml_blob_put_finish(p);
	if (rc < 0) {
		a->err_word = ml_blob_put_word(p);
		goto out;
	}
	ml_debug("blob %s: %s (%" PRIu64 " bytes)", pa.digest,
		 ml_blob_put_exists(p) ? "already stored" : "stored", pa.size);
	r = json_object();
	ml_agent_set_str(r, "digest", pa.digest);
	json_object_set_new(r, "size", json_integer((json_int_t)pa.size));
	json_object_set_new(r, "stored", json_true());
	json_object_set_new(r, "existed", json_boolean(ml_blob_put_exists(p)));
	*result = r;
	rc = 0;
out:
	ml_blob_put_free(p);
	ml_blobstore_free(s);
	ml_buf_release(&payload);
	return rc;
}

const struct ml_agent_op ml_agent_op_blob_put = {
	.name = "blob_put",
	.summary = "receive one blob (data frames follow the request)",
	.run = op_blob_put,
};
