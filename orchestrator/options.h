#ifndef ML_OPTIONS_H
#define ML_OPTIONS_H

/*
 * The values of per-verb options, each rule written once: main.c checks
 * every option given before the verb does any work (reading the desired
 * state, building an image, connecting), and the verbs parse the same
 * values again with the same functions, which then cannot fail.
 */

#include <stdint.h>

struct ml_ctx;

/* Parse a non-negative decimal count or revision number given on the
 * command line; ML_EUSAGE naming what (e.g. "--limit") otherwise. */
int ml_parse_count(int64_t *out, const char *s, const char *what);

/* --timeout: a duration from 1ms to 1h. ML_EUSAGE otherwise. */
int ml_optval_timeout(int64_t *out, const char *s);

/* --parallel: a number from 1 to 256. ML_EUSAGE otherwise. */
int ml_optval_parallel(int *out, const char *s);

/* --wait: a duration, 0 or more. ML_EUSAGE otherwise. */
int ml_optval_wait(int64_t *out, const char *s);

/*
 * Check the value of every option ctx holds that has a rule here
 * (--timeout, --parallel, --wait, --limit, --tail). Returns 0, or
 * ML_EUSAGE with the message naming the option and the value. Pure: no
 * I/O.
 */
int ml_options_check(const struct ml_ctx *ctx);

#endif
