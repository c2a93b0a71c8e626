#ifndef ML_PLAN_H
#define ML_PLAN_H

/*
 * The planner: a pure function from the desired state of one app on one
 * host (revision, the spec hash of its containers, replicas) and what the
 * host's agent reported (the app's containers with their labels) to the
 * steps that converge the host. No I/O. It handles any starting point,
 * including the leftovers of a crashed rollout (both slots of a replica in
 * use, a stopped container in a slot, containers of replicas no longer
 * wanted), so that deploy and recover are the same operation.
 *
 * Each replica has two slots, 'a' and 'b', each with its own host port, so
 * a new container starts beside the old one; the load balancer then moves
 * from the old slot to the new one. With rollout.standby the container
 * that served before stays in its slot, paused, once the new one serves: a
 * later rollout to its revision resumes it instead of starting another.
 */

#include <jansson.h>

#define ML_MAX_REPLICAS 64

/* What the agent said about one container (from its mlctl.* labels). */
struct ml_obs_container {
	char *id;
	char *name;
	char *image_id; /* the image it runs, or NULL */
	int64_t revision;
	char *spec;   /* mlctl.spec: hash of everything that shapes it */
	char *health; /* mlctl.health: the check it takes traffic with, as
		       * lb_apply's JSON, or NULL */
	char slot;    /* 'a' or 'b'; 0 when the label is missing or bad */
	int replica;  /* -1 when the label is missing or bad */
	bool running; /* state "running" */
	bool paused;  /* state "paused": a standby (rollout.standby) */
};

struct ml_replica_plan {
	int replica;
	char slot;          /* the slot that serves at the end */
	bool start;         /* start a new container in slot */
	char *resume_id;    /* start: resume this paused target in slot
			     * instead (no clear_id then) */
	char *keep_id;      /* the target container already in slot, if any */
	char *clear_id;     /* a container in slot to stop before starting */
	char *old_id;       /* the container in the other slot, to drain and
			     * stop once slot serves */
	char old_slot;
	char *standby_id;   /* a paused container in the other slot that
			     * stays there (standby): nothing to do */
};

struct ml_host_plan {
	struct ml_replica_plan rep[ML_MAX_REPLICAS];
	int nrep;
	char **stray;       /* containers to stop: unknown slot or replica */
	size_t nstray;
	bool changes;       /* false: the host is already as desired */
};

/*
 * Plan one host. want_spec is the spec hash of the target containers,
 * replicas how many the host runs; standby: rollout.standby (a paused
 * container beside the target stays). obs lists the app's containers on
 * the host (any order). *out is filled (release with
 * ml_host_plan_release). A paused target is resumed whatever standby says.
 */
void ml_plan_host(struct ml_host_plan *out, const char *want_spec,
		  int replicas, bool standby,
		  const struct ml_obs_container *obs, size_t nobs);
void ml_host_plan_release(struct ml_host_plan *p);

/* One line per step, for people and the planner's data tests:
 *   "r0: keep a (ID)" | "r0: start b; switch from a (ID)" ... */
int ml_plan_render(struct ml_buf *out, const struct ml_host_plan *p);

/* Containers from an agent's list reply (its "containers" array). */
int ml_obs_from_json(struct ml_obs_container **out, size_t *n,
		     json_t *containers);
void ml_obs_free(struct ml_obs_container *v, size_t n);

#endif
