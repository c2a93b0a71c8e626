#ifndef ML_STATUS_VIEW_H
#define ML_STATUS_VIEW_H

/*
 * What `mlctl status` prints, from what the agents replied
 * (orchestrator/view/status.c; orchestrator/cmd/status.c gathers the replies).
 */

#include <jansson.h>

struct ml_host_session;
struct ml_target;

/*
 * Complete container c (an entry of the agent's list, with "restarts",
 * "started_at" and "probe" added) with "uptime_s" and, when the balancer
 * knows its slot (server: the lb_status entry, may be NULL), "lb":
 * HAProxy's "op_state", "admin_state", "cur_sessions", "check_status",
 * "check_desc", "since_s", and "state" in words: serving, pending (up,
 * its first check not run yet), failing (up, checks failing), starting
 * (down, checks passing), down, draining, maintenance; with failing and
 * starting, "checks_seen" of the "checks_needed" failed (passed) checks
 * that take the server down (up). now is unix seconds.
 */
void ml_status_annotate(json_t *c, json_t *server, int64_t now);

/* True when a host's containers (array, may be NULL) run none of revision
 * (the newest seen anywhere; 0: none) nor one of spec (its mlctl.spec, or
 * NULL): a standby resumed by a rollback keeps the revision it was made
 * by, and the same spec. */
bool ml_status_drifted(json_t *containers, int64_t revision,
		       const char *spec);

/* "app", "lb" or "app,lb". */
const char *ml_status_roles(const struct ml_target *t);

/* hello[a][b] (b may be NULL) as a string, or NULL. Borrowed. */
const char *ml_status_hello_str(const json_t *hello, const char *a,
				const char *b);

/*
 * The table: one row per container (annotated as above), one for a host
 * without any; containers[i] belongs to hosts[i] (NULL when the host
 * could not list). colour: ANSI colours (ml_colour_wanted decides).
 */
void ml_status_print_table(FILE *fp, const struct ml_host_session *hosts,
			   json_t *const *containers, size_t n, int64_t newest,
			   const char *newest_spec, bool colour);

#endif
