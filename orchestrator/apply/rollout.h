#ifndef ML_ROLLOUT_H
#define ML_ROLLOUT_H

/*
 * The rollout engine: converge the app hosts of a fleet to one desired
 * state, batch by batch, behind the load balancers, with zero downtime.
 * For each host and replica (orchestrator/plan): start the new container
 * in the free slot, wait until it is healthy, enable it on every load
 * balancer and wait until HAProxy sees it up, drain the old slot (until it
 * has no sessions or the drain timeout passes), put it in maintenance and
 * stop the old container. A host whose new container fails is put back:
 * the new container is stopped and the old one keeps serving. Every step
 * is recorded in the ledger as it happens.
 *
 * The same engine deploys, rolls back and recovers: it works from what the
 * hosts report, not from what the ledger believes.
 */

#include <signal.h>
#include <jansson.h>

struct ml_config;
struct ml_ledger;
struct ml_host_session;
struct ml_rollout_state;

struct ml_rollout {
	/* inputs */
	const struct ml_config *cfg; /* the desired state */
	const char *image_id;        /* "sha256:..." on every app host */
	const char *spec;            /* ml_rollout_spec() of cfg + image */
	json_t *secrets;             /* {"NAME": "value"}, borrowed */
	json_t *lb_secrets;          /* ml_secrets_load_lb(), owned (freed by
				      * ml_rollout_release), may be NULL */
	int64_t revision;            /* labels of new containers, ledger */
	int64_t record_as;           /* nonzero: record events under this
				      * revision instead (an automatic
				      * rollback's steps belong to the
				      * revision that failed) */
	struct ml_ledger *ledger;    /* may be NULL: no events recorded */
	struct ml_host_session *hosts; /* every target, connected */
	size_t nhosts;
	int parallel;
	volatile sig_atomic_t *interrupted; /* set by SIGINT/SIGTERM */
	bool quiet;                  /* no progress lines */
	FILE *out;                   /* progress lines, NULL: stdout */

	/* results */
	size_t changed;   /* hosts that needed changes */
	size_t updated;   /* hosts converged by this run */
	size_t failed;    /* hosts whose new containers failed */
	bool stopped;     /* interrupted at a safe point */
	bool lb_changed;  /* a load balancer's configuration changed */

	struct ml_rollout_state *st; /* private to rollout.c */
};

/* The spec hash of the containers cfg wants with image_id: what makes two
 * deploys the same (image, port, env, secret names, resources, health).
 * Written into buf (65 bytes). */
void ml_rollout_spec(char buf[65], const struct ml_config *cfg,
		     const char *image_id);

/*
 * The arguments of container_run for one replica's slot (agent/
 * op_container_run.c), from ro's cfg, image_id, secrets, spec and
 * revision; the caller's. Pure.
 */
json_t *ml_rollout_run_args(const struct ml_rollout *ro, int replica,
			    char slot);

/* What an argument of container_run is to the spec hash. */
enum ml_run_key_kind {
	ML_RUN_SHAPES = 1,    /* shapes the container: in ml_rollout_spec */
	ML_RUN_SHAPES_FOLDED, /* shapes it: folded in by ml_secrets_spec */
	ML_RUN_NAMES,         /* says which container it is, not its shape */
};

/* The kind of container_run argument arg; ML_ENOTFOUND when it is not
 * listed (a bug: tests/unit/apply/test_spec.c catches it). */
int ml_rollout_run_key(enum ml_run_key_kind *kind, const char *arg);

/* The i-th listed argument and its kind, NULL past the end. */
const char *ml_rollout_run_key_at(size_t i, enum ml_run_key_kind *kind);

/* The host port of a replica's slot: 10000 + port + 2 * replica + slot. */
int ml_rollout_host_port(const struct ml_config *cfg, int replica, char slot);

/*
 * Look at every app host and plan; sets ro->changed. *nothing is true when
 * no host needs a change (the deploy is a no-op). Does not change anything.
 */
int ml_rollout_observe(struct ml_rollout *ro, bool *nothing);

/*
 * Run the rollout. Returns 0 when every host converged; ML_EDEPLOY when more
 * hosts failed than the failure budget allows (the rollout stops there);
 * ML_EINTR when interrupted (stopped after the hosts in flight finished);
 * ML_ELOCKED when a host's request failed because the fleet lock was lost
 * (stopped at once, whatever the budget, the failed host left as it is);
 * other codes when a load balancer cannot be configured.
 */
int ml_rollout_run(struct ml_rollout *ro);

/* What happened on one app host, for the final table. */
struct ml_rollout_host {
	const char *host;  /* borrowed from the config */
	bool changed;      /* needed a change */
	bool done;         /* converged by this run */
	const char *error; /* why it failed, or NULL; borrowed */
};

/* The app hosts in rollout order; *n entries valid until release. */
const struct ml_rollout_host *ml_rollout_hosts(struct ml_rollout *ro,
					       size_t *n);

/* Free what ml_rollout_observe kept. */
void ml_rollout_release(struct ml_rollout *ro);

/* Test hooks: kill -9 ourselves at a named point when MLCTL_TEST_CRASH_AT
 * names it ("after-delivery", "after-first-healthy", "after-first-switch",
 * "before-final-record"), send ourselves SIGINT (Ctrl-C) there when
 * MLCTL_TEST_SIGINT_AT does, or SIGSTOP (frozen until SIGCONT) when
 * MLCTL_TEST_STOP_AT does. */
void ml_test_crash_point(const char *name);

#endif
