#ifndef ML_PLAN_FLEET_H
#define ML_PLAN_FLEET_H

/*
 * The fleet plan: a pure function from the desired state of one app (its
 * spec hash, image and blobs, replicas, rollout policy) and what every
 * target host's agent reported (the app's containers, which of the
 * image's blobs it lacks, the balancer's servers) to what a deploy does:
 * per host and replica keep / start / stop / replace, in which slot, with
 * which image and why; the blobs and bytes each host lacks; per load
 * balancer the servers added, removed or moved and whether HAProxy
 * reloads; the batches in order; the lock host. No I/O: `mlctl plan`
 * prints it, `mlctl deploy` (orchestrator/apply/rollout.c) takes each
 * host's plan from it, and tests/data/fleet/ holds its cases.
 *
 * Each host's steps come from ml_plan_host (plan.h); this file adds the
 * fleet around them.
 */

#include "orchestrator/plan/plan.h"

#include <jansson.h>

struct ml_buf;
struct ml_rollout_spec;

/* One blob of the image: its digest and size in bytes. */
struct ml_plan_blob {
	const char *digest;
	int64_t size;
};

/* The desired state, all borrowed. */
struct ml_fleet_want {
	const char *app;
	const char *spec;      /* spec hash of the target containers */
	const char *image_id;  /* "sha256:..." */
	int replicas;
	int port;              /* the app's port: host ports follow it */
	const struct ml_rollout_spec *rollout; /* batches; NULL: one host */
	const struct ml_plan_blob *blobs; /* config and layers */
	size_t nblobs;
	json_t *shape;      /* ml_plan_shape() of the desired state, or NULL */
	json_t *rev_shapes; /* {"N": ml_plan_shape() of revision N}, or NULL */
	int64_t serving;    /* the last good revision (0: never deployed):
			     * a host without containers then drifted */
	json_t *lb_shape;   /* ml_plan_lb_shape() of the desired state, and */
	json_t *serving_lb_shape; /* of the serving revision; NULL: unknown */
};

/* One target host as its agent answered, all borrowed. */
struct ml_fleet_seen {
	const char *name;
	const char *address;
	bool is_app, is_lb;
	const char *error;  /* the host did not answer: why; else NULL */
	json_t *containers; /* app host: the list reply's "containers" */
	json_t *blobs;      /* app host: the blobs_have reply for the
			     * image's blobs; NULL: not asked (has them) */
	json_t *lb;         /* lb host: the lb_status reply */
};

enum ml_rep_action {
	ML_REP_KEEP = 1, /* the target runs: nothing to do */
	ML_REP_START,    /* nothing serves: start the target */
	ML_REP_REPLACE,  /* start the target beside the serving one, then
			  * drain and stop that */
	ML_REP_STOP,     /* the target runs; stop a leftover beside it */
	ML_REP_RESUME,   /* resume the target, paused as a standby, then
			  * drain and stop what serves (rollout.standby) */
};

struct ml_fleet_replica {
	int replica;
	enum ml_rep_action action;
	char slot;        /* the slot that serves at the end */
	char *image_id;   /* the image it runs then */
	char *old_id;     /* the container stopped (replace, stop), or NULL */
	char *old_image;  /* its image, or NULL */
	bool pause_old;   /* old_id is paused as the standby, not removed */
	char *standby_id; /* a paused standby beside the target that stays */
	char *why;        /* in words, for start/replace/stop; else NULL */
};

struct ml_fleet_host {
	const char *name; /* borrowed from the input */
	bool is_app, is_lb;
	char *error;      /* unreachable or bad answer: no plan */
	/* app hosts that answered: */
	struct ml_host_plan plan;      /* ml_plan_host's steps */
	struct ml_obs_container *obs;  /* what it runs (ml_obs_from_json) */
	size_t nobs;
	struct ml_fleet_replica rep[ML_MAX_REPLICAS];
	int nrep;
	char **lack;      /* digests of the blobs it lacks, in image order */
	size_t nlack;
	int64_t lack_bytes; /* bytes to send: sizes less what it holds in
			     * part */
	bool changes;     /* containers change */
	size_t batch;     /* app hosts: 1-based batch number */
};

/* A load balancer: its server list against the desired one. */
struct ml_fleet_lb {
	const char *name; /* borrowed */
	char *error;      /* unreachable */
	bool running;     /* HAProxy runs for the app */
	char **added;     /* server names the config gains */
	size_t nadded;
	char **removed;   /* server names it loses */
	size_t nremoved;
	char **moved;     /* same name, another address or port */
	size_t nmoved;
	char *config;     /* keys of its configuration that change
			   * ("health, load_balancer"), or NULL */
	bool reload;      /* the server list or the configuration changes:
			   * HAProxy reloads (or starts when not running) */
};

struct ml_fleet_plan {
	struct ml_fleet_host *hosts; /* every target, in input order */
	size_t nhosts;
	struct ml_fleet_lb *lbs;     /* the lb hosts, in input order */
	size_t nlbs;
	size_t *batch_len;           /* app hosts per batch, in order */
	size_t nbatches;
	const char *lock_host;       /* first lb, else first app host */
	size_t changed;              /* app hosts whose containers change */
	size_t unreachable;          /* hosts that did not answer */
	int64_t bytes;               /* to send, all hosts */
	bool changes;                /* anything changes on any host */
};

/*
 * Plan the fleet: n hosts seen (in the inventory's target order). *out is
 * filled, release with ml_fleet_plan_release. A host that did not answer,
 * or whose answer does not parse, gets error set and no plan; the rest
 * are planned. Pure.
 */
void ml_plan_fleet(struct ml_fleet_plan *out, const struct ml_fleet_want *w,
		   const struct ml_fleet_seen *seen, size_t n);
void ml_fleet_plan_release(struct ml_fleet_plan *p);

/*
 * The plan in lines for people and the data tests (exact numbers):
 *   "lock: lb1" / "batch 1: vm1 vm2" / "vm1: r0 replace b ..." /
 *   "vm1: lacks 2 blobs, 1234 bytes" / "lb1: reload (+vm3-0a ...)" /
 *   "no changes".
 * Text from the hosts is escaped.
 */
int ml_fleet_plan_render(struct ml_buf *out, const struct ml_fleet_plan *p);

/* The plan as a JSON document (the caller's). */
json_t *ml_fleet_plan_json(const struct ml_fleet_plan *p);

/*
 * What of a desired-state document (ml_config_to_json, or a revision's
 * recorded one) shapes the containers, for saying which key changed: a
 * new object, the caller's; NULL when d is not an object.
 */
json_t *ml_plan_shape(json_t *d);

/* What of a desired-state document shapes the balancers' configuration
 * (lb_apply's arguments beside the servers): a new object, the caller's;
 * NULL when d is not an object. */
json_t *ml_plan_lb_shape(json_t *d);

/* Hosts in batch step (0-based) with done of total hosts already
 * batched: canary percentages first, then the playbook's batch size. */
size_t ml_plan_batch_size(const struct ml_rollout_spec *rs, size_t done,
			  size_t total, size_t step);

/* The host port of a replica's slot: 10000 + port + 2 * replica + slot. */
int ml_plan_host_port(int port, int replica, char slot);

/* "vm1-0a" into buf: the balancer's name of a replica's slot. */
void ml_plan_server_name(char *buf, size_t n, const char *host, int replica,
			 char slot);

#endif
