#ifndef ML_ERR_H
#define ML_ERR_H

/*
 * The last error of the current thread: one message, set once by the
 * function that failed, read once by the caller that reports it. Callers
 * pass the code up without rewording the message.
 */

/* Set the thread's error message; returns code so that callers can write
 * `return ml_err_set(ML_EINVALID, "...")`. */
int ml_err_set(int code, const char *fmt, ...) ML_PRINTF(2, 3);

/* Like ml_err_set, appending ": strerror(errnum)". */
int ml_err_errno(int code, int errnum, const char *fmt, ...) ML_PRINTF(3, 4);

/* Append text (usually "; what to do about it") to the current message and
 * set its code; returns code. For a caller that knows the usual fix of an
 * error a lower layer reported. */
int ml_err_hint(int code, const char *fmt, ...) ML_PRINTF(2, 3);

/*
 * Put context before the current message: "<fmt...>: <message>" (just
 * "<fmt...>" when none is set), and set its code; returns code. The
 * context is formatted apart and the message moved, so that unlike
 * ml_err_set(code, "...: %s", ml_err_msg()) nothing is read from the buffer
 * being written. Use it wherever a caller adds where or what to a lower
 * layer's message.
 */
int ml_err_prefix(int code, const char *fmt, ...) ML_PRINTF(2, 3);

/* Maximum length of a message, its terminating NUL included; longer text
 * is cut. */
#define ML_ERR_MAX 1024

/*
 * A saved message and code, for a caller that must run cleanup that may
 * set errors of its own (closing sessions, recording an outcome) and then
 * report the first failure. On the caller's stack: no allocation, so it
 * works when memory is short.
 */
struct ml_err_saved {
	int code;
	char msg[ML_ERR_MAX];
};

/* Copy the current message and code into s. */
void ml_err_save(struct ml_err_saved *s);

/* Make s the current message and code again; returns its code. */
int ml_err_restore(const struct ml_err_saved *s);

/* The current message, "" when none is set. Borrowed until the next set. */
const char *ml_err_msg(void);

/* The code of the last ml_err_set, ML_OK when none. */
int ml_err_code(void);

void ml_err_clear(void);

#endif
