#ifndef ML_AGENT_LB_INTERNAL_H
#define ML_AGENT_LB_INTERNAL_H

/*
 * What the rooms of agent/lb/ share with each other and with their unit
 * tests, and nothing else includes: the ops use agent/lb/lb.h only.
 * Which room defines what is said at each group; see agent/lb/README.md.
 */

#include "agent/lb/lb.h"

#define ML_LB_SHOWN_MAX 4096 /* bytes of HAProxy's text put in a message */
#define ML_LB_POLL_STEP_MS 20 /* between looks at a lock, pid or socket */

#define ML_LB_NAME_WHAT                                                    \
	"a name of letters, digits, '.', '_' and '-' (at most 64, starting "   \
	"with a letter or digit)"

/* ---- config.c ---- */

/* s (any bytes) escaped and cut at ML_LB_SHOWN_MAX into a new string for
 * a message; the caller frees it. */
char *ml_lb_shown(const char *s);

/* Whether two checks are the same check (path, timers, thresholds and
 * expect lines): the same check-only backend. */
bool ml_lb_check_same(const struct ml_lb_check *a,
		      const struct ml_lb_check *b);

/* An IPv4 or IPv6 literal, or a DNS name (labels of [A-Za-z0-9-], not
 * starting or ending with '-'), at most ML_LB_HOST_MAX. */
bool ml_lb_valid_address(const char *s);

/* The word of a state: "ready", "drain" or "maint". */
const char *ml_lb_state_name(enum ml_lb_state s);

/* ---- render.c ---- */

/* "addr:port", IPv6 literals in brackets, appended to b. */
int ml_lb_add_hostport(struct ml_buf *b, const char *addr, int port);

/* The check-only backend of check k: "chk_<app>_" and 16 hex digits of
 * the check's hash, the same for the same check, so a reload finds its
 * servers' state again. */
#define ML_LB_CHECK_NAME_MAX (ML_LB_NAME_MAX + 24)
void ml_haproxy_check_backend(char out[ML_LB_CHECK_NAME_MAX],
			      const struct ml_lb_config *c,
			      const struct ml_lb_check *k);

/* ---- process.c ---- */

/* Sleep ms milliseconds, resumed after a signal. */
void ml_lb_sleep_ms(long ms);

/* ---- state.c ---- */

/*
 * Rewrite a `show servers state` dump (format 1) for the configuration
 * next. A server whose own check moves to another backend (into a
 * check-only backend when a new revision brings another health check,
 * back into the app's backend once its revision serves alone) would start
 * there with no state, and HAProxy starts a server one failed check away
 * from DOWN: on a busy host one slow check would take a serving server
 * out. So the row where the server had its own check gives its
 * operational state, last check and check health to the row of the
 * backend that checks it next (made when missing: no admin state, weight
 * 1, as a check-only server has); that row keeps its own admin state and
 * weights. A dump without the columns this needs is copied unchanged.
 */
int ml_haproxy_carry_checks(struct ml_buf *out, const char *state,
			    const struct ml_lb_config *next);

/* ---- runtime.c ---- */

/*
 * A command on the admin socket whose success is an empty answer (the
 * `set ...` family): ML_ENOTFOUND when HAProxy says there is no such
 * backend or server, ML_EFAIL with its text (escaped) for other answers.
 */
int ml_haproxy_admin(const struct ml_haproxy *h, const char *fmt, ...)
	ML_PRINTF(2, 3);

/*
 * The one parser of HAProxy's tables: a header line "# name<sep>name..."
 * (`show stat` CSV with sep ',', `show servers state` with sep ' ') into
 * *names (an array of strings), and every later line that is neither
 * empty nor a '#' comment into *rows (an array of arrays of strings, the
 * fields in order, as many as the line has). Lines before the header (the
 * state's version line) are skipped, a '\r' before a newline is dropped,
 * fields may be "quoted" (CSV). ML_EPROTO without a header. Both arrays
 * are the caller's.
 */
int ml_haproxy_parse_rows(json_t **names, json_t **rows, const char *text,
			  char sep);

/*
 * The same table as an array of objects, each row mapping the header's
 * names to its values (names "" and "-" skipped): missing trailing fields
 * are absent, extra ones dropped. *out is the caller's.
 */
int ml_haproxy_parse_table(json_t **out, const char *text, char sep);

#endif
