#ifndef ML_IO_H
#define ML_IO_H

/*
 * struct ml_io: a byte stream with a read and a write side, so the protocol
 * code works the same over pipes (the agent's stdin/stdout, tests) and over
 * an SSH channel (orchestrator/transport).
 *
 * read returns the number of bytes read (> 0), 0 at end of stream, or a
 * negative ML_E* code with the message set; it may return fewer bytes than
 * asked. write returns 0 once all n bytes are written, or a negative code.
 */

struct ml_io {
	ssize_t (*read)(void *ctx, void *buf, size_t n);
	int (*write)(void *ctx, const void *buf, size_t n);
	void *ctx;
};

struct ml_io_fd {
	int rfd, wfd;
	int timeout_ms; /* per read/write wait, -1: none */
};

/* Set up io over two file descriptors (may be the same); fdctx must live as
 * long as io. */
void ml_io_fd_init(struct ml_io *io, struct ml_io_fd *fdctx, int rfd,
		   int wfd, int timeout_ms);

/* Read exactly n bytes. ML_EPROTO ("stream ended after X of N bytes") on a
 * short stream; returns 0 without reading when n == 0. *eof_at_start is set
 * when the stream ended before the first byte (may be NULL). */
int ml_io_read_full(struct ml_io *io, void *buf, size_t n, bool *eof_at_start);

#endif
