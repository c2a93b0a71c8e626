/*
 * Thread-local last error (see err.h). Messages are truncated to 1 KiB,
 * enough for a path and a reason; longer text from remote hosts is cut.
 */
#include "common/ml.h"

static _Thread_local char err_msg[ML_ERR_MAX];
static _Thread_local int err_code;

static int err_vset(int code, const char *fmt, va_list ap)
{
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	err_code = code;
	return code;
}

int ml_err_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(code, fmt, ap);
	va_end(ap);
	return code;
}

int ml_err_errno(int code, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	err_vset(code, fmt, ap);
	va_end(ap);
	len = strlen(err_msg);
	if (len < sizeof(err_msg))
		snprintf(err_msg + len, sizeof(err_msg) - len, ": %s",
			 strerror(errnum));
	return code;
}

int ml_err_hint(int code, const char *fmt, ...)
{
	va_list ap;
	size_t len = strlen(err_msg);

	/* appended in place, after the text: nothing is formatted from
	 * the buffer into itself */
	va_start(ap, fmt);
	if (len < sizeof(err_msg) - 1)
		vsnprintf(err_msg + len, sizeof(err_msg) - len, fmt, ap);
	va_end(ap);
	err_code = code;
	return code;
}

int ml_err_prefix(int code, const char *fmt, ...)
{
	char ctx[ML_ERR_MAX];
	size_t clen, mlen = strlen(err_msg);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	clen = n < 0 ? 0 : strlen(ctx);
	err_code = code;
	if (!mlen) {
		memcpy(err_msg, ctx, clen + 1);
		return code;
	}
	/* "<ctx>: <msg>", the message's tail cut when it does not fit */
	if (clen + 2 >= sizeof(err_msg))
		clen = sizeof(err_msg) - 3;
	if (clen + 2 + mlen >= sizeof(err_msg))
		mlen = sizeof(err_msg) - 1 - clen - 2;
	memmove(err_msg + clen + 2, err_msg, mlen);
	memcpy(err_msg, ctx, clen);
	err_msg[clen] = ':';
	err_msg[clen + 1] = ' ';
	err_msg[clen + 2 + mlen] = '\0';
	return code;
}

void ml_err_save(struct ml_err_saved *s)
{
	memcpy(s->msg, err_msg, sizeof(s->msg));
	s->code = err_code;
}

int ml_err_restore(const struct ml_err_saved *s)
{
	memcpy(err_msg, s->msg, sizeof(err_msg));
	err_msg[sizeof(err_msg) - 1] = '\0';
	err_code = s->code;
	return s->code;
}

const char *ml_err_msg(void)
{
	return err_msg;
}

int ml_err_code(void)
{
	return err_code;
}

void ml_err_clear(void)
{
	err_msg[0] = '\0';
	err_code = ML_OK;
}
