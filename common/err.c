/*
 * Thread-local last error (see err.h). Messages are truncated to 1 KiB,
 * enough for a path and a reason; longer text from remote hosts is cut.
 */
#include "common/ml.h"

#define ML_ERR_MAX 1024

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
