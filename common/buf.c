/*
 * Growable, capped byte buffers (see buf.h). Growth doubles the capacity,
 * clamped to max + 1 so a buffer never allocates far past its cap.
 */
#include "common/ml.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char empty_str[1];

static size_t buf_max(const struct ml_buf *b)
{
	return b->max ? b->max : ML_BUF_DEFAULT_MAX;
}

void ml_buf_init(struct ml_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void ml_buf_release(struct ml_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void ml_buf_reset(struct ml_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int ml_buf_grow(struct ml_buf *b, size_t n)
{
	size_t max = buf_max(b), need, ncap;

	if (n > max || b->len > max - n)
		return ml_err_set(ML_ETOOBIG,
				  "data is larger than the limit of %zu bytes",
				  max);
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > max + 1)
		ncap = max + 1;
	if (ncap < need)
		ncap = need;
	b->data = ml_xrealloc(b->data, ncap);
	b->cap = ncap;
	return 0;
}

int ml_buf_add(struct ml_buf *b, const void *p, size_t n)
{
	int rc = ml_buf_grow(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ml_buf_addstr(struct ml_buf *b, const char *s)
{
	return ml_buf_add(b, s, strlen(s));
}

int ml_buf_addch(struct ml_buf *b, char c)
{
	return ml_buf_add(b, &c, 1);
}

int ml_buf_vaddf(struct ml_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;
	int rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return ml_err_set(ML_EFAIL, "cannot format '%s'", fmt);
	rc = ml_buf_grow(b, (size_t)n);
	if (rc < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ml_buf_addf(struct ml_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ml_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *ml_buf_detach(struct ml_buf *b, size_t *len)
{
	char *p = b->data;

	if (!p)
		p = ml_xcalloc(1, 1);
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

const char *ml_buf_str(const struct ml_buf *b)
{
	return b->data ? b->data : empty_str;
}

int ml_buf_read_fd(struct ml_buf *b, int fd)
{
	char chunk[16384];
	ssize_t n;
	int rc;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ml_err_errno(ML_EFAIL, errno, "read failed");
		if (n == 0)
			return 0;
		rc = ml_buf_add(b, chunk, (size_t)n);
		if (rc < 0)
			return rc;
	}
}

int ml_buf_read_file(struct ml_buf *b, const char *path)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				    errno, "cannot open '%s'", path);
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > buf_max(b)) {
		close(fd);
		return ml_err_set(ML_ETOOBIG,
				  "'%s' is %lld bytes, more than the limit of "
				  "%zu bytes",
				  path, (long long)st.st_size, buf_max(b));
	}
	rc = ml_buf_read_fd(b, fd);
	close(fd);
	if (rc == ML_ETOOBIG)
		return ml_err_set(ML_ETOOBIG,
				  "'%s' is larger than the limit of %zu bytes",
				  path, buf_max(b));
	if (rc < 0)
		return ml_err_errno(rc, errno, "cannot read '%s'", path);
	return 0;
}
