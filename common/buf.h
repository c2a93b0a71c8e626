#ifndef ML_BUF_H
#define ML_BUF_H

/*
 * struct ml_buf: a growable byte buffer with a hard maximum size (git's
 * strbuf plus curl's dynbuf cap). Much of what we read comes from files or
 * remote hosts, so every buffer says how large it may grow; an append that
 * would pass the maximum fails with ML_ETOOBIG and leaves the buffer as it
 * was. data is always NUL-terminated (the NUL is not counted in len) so
 * text can be used as a C string.
 *
 *	struct ml_buf b = ML_BUF_INIT(1 << 20);
 *	if (ml_buf_addf(&b, "%s:%d", host, port) < 0) ...
 *	ml_buf_release(&b);
 */

struct ml_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* maximum len; 0 means ML_BUF_DEFAULT_MAX */
};

#define ML_BUF_DEFAULT_MAX ((size_t)64 << 20)
#define ML_BUF_INIT(max_) { NULL, 0, 0, (max_) }

void ml_buf_init(struct ml_buf *b, size_t max);

/* Free the storage; the buffer can be used again (empty, same max). */
void ml_buf_release(struct ml_buf *b);

/* Empty the buffer, keeping its storage. */
void ml_buf_reset(struct ml_buf *b);

/* Make room for n more bytes. ML_ETOOBIG when len + n > max. */
int ml_buf_grow(struct ml_buf *b, size_t n);

int ml_buf_add(struct ml_buf *b, const void *p, size_t n);
int ml_buf_addstr(struct ml_buf *b, const char *s);
int ml_buf_addch(struct ml_buf *b, char c);
int ml_buf_addf(struct ml_buf *b, const char *fmt, ...) ML_PRINTF(2, 3);
int ml_buf_vaddf(struct ml_buf *b, const char *fmt, va_list ap);

/* Take ownership of the storage (never NULL); the buffer is left empty. The
 * caller frees the result with free(). */
char *ml_buf_detach(struct ml_buf *b, size_t *len);

/* The contents as a C string, "" when empty. Borrowed. */
const char *ml_buf_str(const struct ml_buf *b);

/*
 * Read a whole file into b (appending). Fails with ML_ETOOBIG, naming the
 * file and the limit, when it is larger than b->max; ML_ENOTFOUND when it
 * does not exist; ML_EFAIL on other errors.
 */
int ml_buf_read_file(struct ml_buf *b, const char *path);

/* Read fd until EOF into b, bounded by b->max. */
int ml_buf_read_fd(struct ml_buf *b, int fd);

#endif
