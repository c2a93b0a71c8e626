#ifndef ML_LOG_H
#define ML_LOG_H

/*
 * Diagnostics on stderr, prefixed with the program name ("mlctl: ...").
 * Human output goes to stdout and never through here. Each call writes one
 * whole line with a single write so that lines from threads never mix.
 */

enum ml_log_level {
	ML_LOG_QUIET = 0, /* errors only */
	ML_LOG_INFO = 1,  /* default */
	ML_LOG_DEBUG = 2, /* -v */
	ML_LOG_TRACE = 3, /* -vv */
};

void ml_log_init(const char *progname, enum ml_log_level level);
enum ml_log_level ml_log_level(void);
const char *ml_log_progname(void);

void ml_error(const char *fmt, ...) ML_PRINTF(1, 2);
void ml_warn(const char *fmt, ...) ML_PRINTF(1, 2);
void ml_info(const char *fmt, ...) ML_PRINTF(1, 2);
void ml_debug(const char *fmt, ...) ML_PRINTF(1, 2);

/*
 * Escape text that came from a remote host or a file before printing it:
 * control characters and invalid UTF-8 become \xNN, so a hostile peer cannot
 * move the cursor or rewrite the terminal (tmux's stravis). Appends to out.
 */
int ml_escape(struct ml_buf *out, const char *s, size_t n);

#endif
