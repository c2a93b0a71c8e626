#ifndef ML_METRICS_H
#define ML_METRICS_H

/*
 * Numbers about the service: requests, errors and latency per container
 * and per revision over a recent window, from the load balancers' request
 * logs (the agent's lb_requests), for `mlctl status`; and the Prometheus
 * file_sd targets file, with the map of which revision runs behind each
 * HAProxy server (lb_revisions), kept current after every rollout.
 */

#include <jansson.h>
#include <stdio.h>

struct ml_config;
struct ml_event;
struct ml_host_session;
struct ml_ledger;

/*
 * Ask every connected LB host among hosts for the last window_ms of
 * requests and attribute them: to the revision the LB's map names for
 * each server, else to the container now in that slot. containers[i] is
 * host i's `list` array (may be NULL). *out (the caller's) is
 *	{"window_ms", "lbs": [{"host", "running", "oldest_ms", "error"}],
 *	 "frontend": {"requests", "req_per_s", "errors", "error_rate",
 *		"p50_ms", "p99_ms", "http_2xx".."http_5xx"},
 *	 "revisions": [{"revision", the same numbers}],  newest first
 *	 "containers": {"HOST/NAME": {the same numbers}}}
 * An LB that fails is listed with its error; the others still count.
 */
int ml_metrics_collect(json_t **out, struct ml_host_session *hosts, size_t n,
		       json_t *const *containers, const char *app,
		       int64_t window_ms);

/* The numbers of container c (a `list` entry) of host in m, borrowed, or
 * NULL when no request reached it. */
json_t *ml_metrics_container(json_t *m, const char *host, json_t *c);

/* The per-revision table ("REVISION REQ/S ERRORS P50 P99") on fp. */
void ml_metrics_print(FILE *fp, json_t *m);

/*
 * After a rollout (deploy, rollback, recover) or on request: list the
 * app's running containers on every connected app host, tell every LB
 * which revision runs behind which server since when (lb_revisions), and
 * write the Prometheus file_sd file at path (NULL: none). With a ledger and
 * a revision > 0, also record in it, as "requests" events, what clients
 * got from each revision over the last window_ms (the rollout's time).
 * Failures are warnings: the rollout's outcome does not depend on them.
 * Returns 0, or the first failure's code.
 */
int ml_metrics_refresh(const struct ml_config *cfg,
		       struct ml_host_session *hosts, size_t n,
		       const char *path, struct ml_ledger *ledger,
		       int64_t revision, int64_t window_ms);

/*
 * For `mlctl show`: per host, how long each new container took to become
 * healthy, and the requests events, from a revision's events. As text on
 * fp, or as JSON {"hosts": [{"host", "healthy_after_ms": [..]}],
 * "requests": ["..."]} (new reference).
 */
void ml_metrics_show_print(FILE *fp, const struct ml_event *ev, size_t n);
json_t *ml_metrics_show_json(const struct ml_event *ev, size_t n);

/*
 * The default targets file of app: "prometheus/APP.json" beside the ledger
 * at ledger_path. New string.
 */
char *ml_metrics_targets_path(const char *ledger_path, const char *app);

/* --watch and --window (orchestrator/metrics/watch.c). */
struct ml_option;
extern const struct ml_option ml_opt_watch;
extern const struct ml_option ml_opt_window;

/* --window's value (NULL: 1 minute) in ms, 1 s to 1 h; ML_EUSAGE else. */
int ml_metrics_window(int64_t *out_ms, const char *s);

/*
 * Call show(arg) every 2 s until Ctrl-C, redrawing in place when stdout is
 * a terminal. Returns the last show's result (Ctrl-C is the normal end).
 */
int ml_metrics_watch(int (*show)(void *arg), void *arg);

#endif
