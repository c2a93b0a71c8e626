#ifndef ML_H
#define ML_H

/*
 * The one header every .c file of mlctl includes first. It pulls in the
 * system headers most files need, defines the error codes shared by both
 * binaries, the allocation helpers that never return NULL, BUG(), and ends
 * with banned.h so that unsafe libc string functions cannot be used.
 *
 * Error codes: functions that can fail return int, 0 on success and one of
 * the negative ML_E* codes below on failure, after setting a message with
 * ml_err_set() (common/err.h). Only main() turns a code into an exit status:
 * the exit status is the code negated (see ml_exit_code()), so the table
 * below is also the table of exit codes, documented in the README.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

enum ml_code {
	ML_OK = 0,
	ML_EFAIL = -1,     /* anything else: internal error, I/O error */
	ML_EUSAGE = -2,    /* bad command line */
	ML_EINVALID = -3,  /* playbook or inventory invalid */
	ML_ESOURCE = -4,   /* git repository, commit or file problem */
	ML_ELEDGER = -5,   /* ledger cannot be opened, is locked or too new */
	ML_EHOST = -6,     /* a host is unreachable or refused us */
	ML_EDEPLOY = -7,   /* a rollout failed (and was rolled back) */
	ML_ELOCKED = -8,   /* the fleet lock is held by someone else */
	ML_EINTR = -9,     /* interrupted by a signal, stopped at a safe point */
	ML_EPROTO = -10,   /* malformed or unexpected protocol message */
	ML_ENOTFOUND = -11, /* a named thing (revision, host, image) is absent */
	ML_ETOOBIG = -12,  /* an input is larger than our limits allow */
	ML_ENOSPACE = -13, /* a disk is full */
	ML_EDIRTY = -14,   /* uncommitted changes would be ignored */
};

/* Exit status for a code returned by a command; ML_OK gives 0. */
static inline int ml_exit_code(int code)
{
	return code >= 0 ? 0 : -code;
}

#define ML_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ML_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define ML_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ML_NORETURN __attribute__((noreturn))
#define ML_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define ML_PRINTF(f, a)
#define ML_NORETURN
#define ML_WARN_UNUSED
#endif

/* Report an impossible state and abort. Never for bad input. */
ML_NORETURN void ml_bug(const char *file, int line, const char *fmt, ...)
	ML_PRINTF(3, 4);
#define BUG(...) ml_bug(__FILE__, __LINE__, __VA_ARGS__)

/*
 * Allocation that never fails: on out-of-memory these print a message and
 * abort, which is what git's xmalloc does. Every size computation that
 * could overflow goes through ml_xcalloc or ml_st_mult.
 */
void *ml_xmalloc(size_t n);
void *ml_xcalloc(size_t nmemb, size_t size);
void *ml_xrealloc(void *p, size_t n);
void *ml_xreallocarray(void *p, size_t nmemb, size_t size);
char *ml_xstrdup(const char *s);
char *ml_xstrndup(const char *s, size_t n);
char *ml_xasprintf(const char *fmt, ...) ML_PRINTF(1, 2);

/* Grow *p so that it holds at least need elements of size sz. */
#define ML_GROW(p, need, cap)                                              \
	do {                                                               \
		if ((size_t)(need) > (cap)) {                              \
			size_t ml_nc_ = (cap) ? (cap) * 2 : 8;             \
			while (ml_nc_ < (size_t)(need))                    \
				ml_nc_ *= 2;                               \
			(p) = ml_xreallocarray((p), ml_nc_, sizeof(*(p))); \
			(cap) = ml_nc_;                                    \
		}                                                          \
	} while (0)

#include "common/err.h"
#include "common/buf.h"
#include "common/banned.h"

#endif
