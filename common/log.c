/*
 * Line-at-a-time diagnostics on stderr (see log.h) and escaping of text
 * that came from elsewhere. A line is cut at 4 KiB.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/utf8.h"

#include <time.h>
#include <unistd.h>

static const char *log_prog = "mlctl";
static enum ml_log_level log_lvl = ML_LOG_INFO;
static struct timespec log_t0; /* at ml_log_init: -vv lines show the time since */

void ml_log_init(const char *progname, enum ml_log_level level)
{
	if (progname)
		log_prog = progname;
	log_lvl = level;
	clock_gettime(CLOCK_MONOTONIC, &log_t0);
}

enum ml_log_level ml_log_level(void)
{
	return log_lvl;
}

const char *ml_log_progname(void)
{
	return log_prog;
}

static void log_line(const char *tag, const char *fmt, va_list ap)
{
	char line[4096];
	int n;
	ssize_t w;
	size_t off = 0;

	if (log_lvl >= ML_LOG_TRACE) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		n = snprintf(line, sizeof(line), "%s: [%7.3f] %s", log_prog,
			     (double)(now.tv_sec - log_t0.tv_sec) +
				     (double)(now.tv_nsec - log_t0.tv_nsec) / 1e9,
			     tag);
	} else {
		n = snprintf(line, sizeof(line), "%s: %s", log_prog, tag);
	}
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	while (off < (size_t)n) {
		w = write(STDERR_FILENO, line + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

void ml_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void ml_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

void ml_info(const char *fmt, ...)
{
	va_list ap;

	if (log_lvl < ML_LOG_INFO)
		return;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void ml_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_lvl < ML_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid
 * or a C1 control character, which can move the cursor too. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len = ml_utf8_decode(s, n, &cp);

	return len && !(cp >= 0x80 && cp < 0xa0) ? len : 0;
}

int ml_escape(struct ml_buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len;
	int rc;

	while (i < n) {
		len = utf8_len(p + i, n - i);
		if (len == 1 && (p[i] < 0x20 || p[i] == 0x7f) && p[i] != '\t') {
			rc = ml_buf_addf(out, "\\x%02x", p[i]);
			len = 1;
		} else if (len == 0) {
			rc = ml_buf_addf(out, "\\x%02x", p[i]);
			len = 1;
		} else {
			rc = ml_buf_add(out, p + i, len);
		}
		if (rc < 0)
			return rc;
		i += len;
	}
	return 0;
}
