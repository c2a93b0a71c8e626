/*
 * File-descriptor streams for struct ml_io (see io.h). Waits use poll so a
 * silent peer cannot hang us past timeout_ms.
 */
#include "common/ml.h"
#include "common/io.h"

#include <poll.h>
#include <unistd.h>

static int fd_wait(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	for (;;) {
		n = poll(&p, 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ml_err_errno(ML_EFAIL, errno, "poll failed");
		if (n == 0)
			return ml_err_set(ML_EHOST,
					  "no data within %d ms, giving up",
					  timeout_ms);
		return 0;
	}
}

static ssize_t fd_read(void *ctx, void *buf, size_t n)
{
	struct ml_io_fd *f = ctx;
	ssize_t r;
	int rc;

	for (;;) {
		if (f->timeout_ms >= 0) {
			rc = fd_wait(f->rfd, POLLIN, f->timeout_ms);
			if (rc < 0)
				return rc;
		}
		r = read(f->rfd, buf, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return ml_err_errno(ML_EFAIL, errno, "read failed");
		return r;
	}
}

static int fd_write(void *ctx, const void *buf, size_t n)
{
	struct ml_io_fd *f = ctx;
	const char *p = buf;
	ssize_t w;
	int rc;

	while (n) {
		if (f->timeout_ms >= 0) {
			rc = fd_wait(f->wfd, POLLOUT, f->timeout_ms);
			if (rc < 0)
				return rc;
		}
		w = write(f->wfd, p, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return ml_err_errno(ML_EFAIL, errno, "write failed");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void ml_io_fd_init(struct ml_io *io, struct ml_io_fd *fdctx, int rfd,
		   int wfd, int timeout_ms)
{
	fdctx->rfd = rfd;
	fdctx->wfd = wfd;
	fdctx->timeout_ms = timeout_ms;
	io->read = fd_read;
	io->write = fd_write;
	io->ctx = fdctx;
}

int ml_io_read_full(struct ml_io *io, void *buf, size_t n, bool *eof_at_start)
{
	char *p = buf;
	size_t got = 0;
	ssize_t r;

	if (eof_at_start)
		*eof_at_start = false;
	while (got < n) {
		r = io->read(io->ctx, p + got, n - got);
		if (r < 0)
			return (int)r;
		if (r == 0) {
			if (got == 0 && eof_at_start)
				*eof_at_start = true;
			return ml_err_set(ML_EPROTO,
					  "stream ended after %zu of %zu bytes",
					  got, n);
		}
		got += (size_t)r;
	}
	return 0;
}
