#ifndef ML_ROLLOUT_INT_H
#define ML_ROLLOUT_INT_H

/*
 * The rollout engine's state and the few steps of rollout.c that the
 * canary (canary.c) and the golden requests (verify.c) reuse. Private to
 * orchestrator/apply/.
 */

#include "orchestrator/apply/rollout.h"
#include "orchestrator/plan/plan.h"
#include "orchestrator/config/config.h"
#include "common/hist.h"

#include <pthread.h>

struct host_state {
	struct ml_host_session *h;
	json_t *containers; /* the list reply, for the fleet plan */
	struct ml_obs_container *obs;
	size_t nobs;
	struct ml_host_plan plan;
	bool planned;
	int rc;
	char *error;
	bool done; /* converged by this run */
	char *retire_id; /* the container it replaced, still to stop */
	/* how that stop failed: written by the stop's own thread, read
	 * once it is joined (retire_fold) */
	int retire_rc;
	char *retire_error;
};

struct ml_retire_job {
	struct ml_rollout_state *st;
	size_t first, n; /* app hosts [first, first + n) */
	pthread_t thread;
	bool running;
};

struct ml_rollout_state {
	struct host_state *app; /* app hosts, in target order */
	size_t napp;
	struct ml_host_session **lb; /* load-balancer hosts */
	pthread_mutex_t *lb_lock;
	size_t nlb;
	size_t batch_first, batch_len; /* the batch being run */
	/* batches whose replaced containers stop while later ones run
	 * (rollout.c: retire_batch); [retire_joined, nretire) may run */
	struct ml_retire_job *retire;
	size_t nretire, retire_joined, retire_cap;
	struct ml_rollout *ro;
	struct ml_rollout_host *view; /* for ml_rollout_hosts */
	bool halt; /* a golden request failed: no more batches */
};

/* Record and print one step (rollout.c's event()). */
void ml_ro_event(struct ml_rollout *ro, const char *host, const char *step,
		 const char *status, const char *fmt, ...) ML_PRINTF(5, 6);

/* Balancer i's session for one request (fleet/ops.h), under its mutex;
 * ml_ro_lb_done releases it with the request's result, which it returns,
 * naming the balancer in a failure's message. */
struct ml_host_session *ml_ro_lb_take(struct ml_rollout_state *st, size_t i);
int ml_ro_lb_done(struct ml_rollout_state *st, size_t i, int rc);

/* "vm1-0a" into buf. */
void ml_ro_server_name(char *buf, size_t n, const char *host, int replica,
		       char slot);

/* Set a server's state and weight (-1: unchanged) on every balancer. */
int ml_ro_lb_set_weight(struct ml_rollout_state *st, const char *server,
			const char *state, int weight);

/* Wait until every balancer sees server up (1), or timeout (0). */
int ml_ro_lb_wait_up(struct ml_rollout_state *st, const char *server,
		     int64_t timeout_ms);

/* Drain, wait, maintenance of a slot on every balancer. */
int ml_ro_lb_retire(struct ml_rollout_state *st, const char *host, int replica,
		    char slot);

/* Start the new revision's container in a slot, wait until it is healthy,
 * stop one. */
/* Start replica's container in slot, or resume resume_id (a standby). */
int ml_ro_start(struct ml_rollout *ro, struct host_state *hs, int replica,
		char slot, const char *resume_id, char **id_out);
int ml_ro_wait_healthy(struct ml_rollout *ro, struct host_state *hs,
		       const char *id, int replica, char slot);
int ml_ro_stop(struct ml_rollout *ro, struct host_state *hs, const char *id);

/* List and plan host i again (after the canary changed it). */
int ml_ro_observe_again(struct ml_rollout_state *st, size_t i);

/*
 * rollout.verify (verify.c): send the golden requests to the new
 * container in (replica, slot) of hs, and with compare to the old one in
 * old_slot (0: none), before any user traffic reaches it. Each answer and
 * difference is recorded. 0 when every answer is as expected; ML_EDEPLOY
 * naming the first request that is not (st->halt is then set); 0 with no
 * requests configured.
 */
int ml_verify_run(struct ml_rollout_state *st, struct host_state *hs,
		  int replica, char slot, char old_slot);

/*
 * The weighted canary steps (canary.c), before the batches: start the new
 * revision beside the old on the first host to change, verify it, give it
 * each step's share of the requests by weight, judge each step by
 * rollout.analysis (and `mlctl promote`/`abort` for manual steps). 0 when
 * every step passed: the weights are back to equal and the canary host is
 * planned again so the batches finish it. ML_EDEPLOY on abort, the new
 * containers stopped and the old weights back, nothing else changed.
 */
int ml_canary_run(struct ml_rollout_state *st);

/*
 * The weights that give n_new servers share pct% of the requests beside
 * n_old servers: *w_new and *w_old in 1..256, the pair whose share is
 * closest to pct. Pure.
 */
void ml_canary_weights(int pct, int n_new, int n_old, int *w_new, int *w_old);

/* What a canary step's servers got over the step so far. */
struct ml_canary_side {
	uint64_t req, err;   /* requests; 5xx or no answer */
	struct ml_hist hist; /* their latency (HAProxy's Ta) */
};

enum ml_canary_verdict {
	ML_CANARY_EXTEND,  /* go on measuring */
	ML_CANARY_PROMOTE, /* the step passed */
	ML_CANARY_ABORT,   /* take the new revision out */
};

/*
 * Judge a step by rollout.analysis a: the new revision's numbers nw
 * against the old revision's in the same window. time_out: the step's
 * time is over. A limit passed with at least min_requests aborts at
 * once; with fewer, the step extends until its time is out, then
 * too_few decides; otherwise it extends until then and promotes. The
 * reason in words goes to why (n bytes). Pure.
 */
enum ml_canary_verdict ml_canary_judge(const struct ml_analysis_spec *a,
				       const struct ml_canary_side *nw,
				       const struct ml_canary_side *old,
				       bool time_out, char *why, size_t n);

#endif
