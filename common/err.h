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

/* The current message, "" when none is set. Borrowed until the next set. */
const char *ml_err_msg(void);

/* The code of the last ml_err_set, ML_OK when none. */
int ml_err_code(void);

void ml_err_clear(void);

#endif
