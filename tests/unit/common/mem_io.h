#ifndef ML_TEST_MEM_IO_H
#define ML_TEST_MEM_IO_H

/*
 * An in-memory struct ml_io for protocol tests and fuzzing: reads come from
 * a fixed input (in pieces of at most `chunk` bytes when set, to exercise
 * short reads), writes are collected in `out` (or only counted when
 * `discard` is set). Header-only, everything static inline.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/proto.h"

struct mem_io {
	const unsigned char *in;
	size_t in_len, in_off;
	size_t chunk; /* largest read, 0: no limit */
	struct ml_buf out;
	size_t written;
	bool discard;
	bool fail_write; /* every write fails with ML_EFAIL */
};

static inline ssize_t mem_io_read(void *ctx, void *buf, size_t n)
{
	struct mem_io *m = ctx;
	size_t left = m->in_len - m->in_off;

	if (n > left)
		n = left;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	if (n)
		memcpy(buf, m->in + m->in_off, n);
	m->in_off += n;
	return (ssize_t)n;
}

static inline int mem_io_write(void *ctx, const void *buf, size_t n)
{
	struct mem_io *m = ctx;

	if (m->fail_write)
		return ml_err_set(ML_EFAIL, "write failed (test)");
	m->written += n;
	if (m->discard)
		return 0;
	return ml_buf_add(&m->out, buf, n);
}

static inline void mem_io_init(struct ml_io *io, struct mem_io *m,
			       const void *in, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->in = in;
	m->in_len = len;
	ml_buf_init(&m->out, (size_t)256 << 20);
	io->read = mem_io_read;
	io->write = mem_io_write;
	io->ctx = m;
}

static inline void mem_io_release(struct mem_io *m)
{
	ml_buf_release(&m->out);
}

/* Append one raw frame (any type byte) to b. */
static inline void frame_add(struct ml_buf *b, char type, const void *p,
			     size_t n)
{
	unsigned char h[5];
	uint32_t l = (uint32_t)n + 1;

	h[0] = (unsigned char)(l >> 24);
	h[1] = (unsigned char)(l >> 16);
	h[2] = (unsigned char)(l >> 8);
	h[3] = (unsigned char)l;
	h[4] = (unsigned char)type;
	if (ml_buf_add(b, h, 5) < 0 || ml_buf_add(b, p, n) < 0)
		abort();
}

/* Append a JSON frame holding text. */
static inline void frame_add_json(struct ml_buf *b, const char *text)
{
	frame_add(b, ML_FRAME_JSON, text, strlen(text));
}

/* Append a 4-byte big-endian length only. */
static inline void frame_add_len(struct ml_buf *b, uint32_t l)
{
	unsigned char h[4];

	h[0] = (unsigned char)(l >> 24);
	h[1] = (unsigned char)(l >> 16);
	h[2] = (unsigned char)(l >> 8);
	h[3] = (unsigned char)l;
	if (ml_buf_add(b, h, 4) < 0)
		abort();
}

/*
 * Decode every JSON frame in p into a new array (NULL if a frame is not a
 * valid JSON message).
 */
static inline json_t *frames_decode(const void *p, size_t n)
{
	struct ml_buf payload = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	struct mem_io m;
	struct ml_io io;
	json_t *all = json_array(), *msg;
	char type;
	int rc;

	mem_io_init(&io, &m, p, n);
	while ((rc = ml_frame_read(&io, &type, &payload)) == 1) {
		if (type != ML_FRAME_JSON ||
		    ml_proto_decode(&msg, payload.data, payload.len) < 0) {
			json_decref(all);
			all = NULL;
			break;
		}
		json_array_append_new(all, msg);
	}
	if (rc < 0) {
		json_decref(all);
		all = NULL;
	}
	ml_buf_release(&payload);
	mem_io_release(&m);
	return all;
}

#endif
