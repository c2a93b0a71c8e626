#ifndef ML_FLEET_H
#define ML_FLEET_H

/*
 * Sessions with the hosts of a fleet: for each target, one SSH connection
 * (orchestrator/transport) and, on it, one `mlctl-agent serve` speaking the
 * protocol of common/proto.h. Connecting is done for every host in
 * parallel, bounded; a host that cannot be reached is recorded in its
 * session (rc, error) while the others go on, so one dead VM never hangs
 * or fails a whole status.
 */

#include <jansson.h>

struct ml_config;
struct ml_ctx;
struct ml_target;
struct ml_ssh;
struct ml_ssh_chan;
struct ml_io;

/* Where the agent lives on every host, under its private state dir. */
#define ML_AGENT_STATE_DIR "/var/lib/mlctl"
#define ML_AGENT_REMOTE_PATH "/var/lib/mlctl/bin/mlctl-agent"

struct ml_fleet_opts {
	const char *known_hosts; /* NULL: ~/.ssh/known_hosts */
	const char *identity;	 /* extra key; NULL: inventory's or agent */
	const char *ssh_config;	 /* NULL: ~/.ssh/config */
	bool trust_on_first_use;
	int connect_timeout_ms; /* default 10 s */
	int command_timeout_ms; /* default 60 s */
	int parallel;		/* hosts at once, default 16 */
	bool start_agent;	/* run `mlctl-agent serve` and hello */
};

/*
 * The fence of the fleet lock's holder, given to the sessions that change
 * the fleet: before each request check(arg) must return 0 (the lease is
 * still ours, by our monotonic clock) and the request then carries
 * {"generation", "owner"}, which the agent refuses once it has seen a
 * newer generation (agent/op_lock.c). check is called from the hosts'
 * threads and must be thread-safe.
 */
struct ml_fence {
	int64_t generation;
	const char *owner;
	int (*check)(void *arg); /* 0, or ML_ELOCKED with the message set */
	void *arg;
};

struct ml_host_session {
	const struct ml_target *target; /* borrowed from the config */
	const struct ml_fence *fence;	/* NULL: requests go unfenced */
	struct ml_ssh *ssh;
	struct ml_ssh_chan *chan; /* the agent's channel, when started */
	struct ml_io *io;	  /* borrowed from chan */
	uint64_t next_id;
	json_t *hello;	    /* the agent's hello result, or NULL */
	int rc;		    /* 0, or the ML_E* code of the failure */
	char *error;	    /* its message when rc < 0 */
	int64_t connect_ms; /* time to connect (and hello) */
	/* what it was connected with, borrowed (for ml_host_connect_twin) */
	const struct ml_config *cfg;
	const struct ml_fleet_opts *opts;
};

/*
 * Fill o from ctx's global and per-verb options (--known-hosts,
 * --identity, --ssh-config, --trust-new-hosts, --timeout, --parallel).
 * ML_EUSAGE for a bad --timeout or --parallel.
 */
int ml_fleet_opts_from_ctx(struct ml_fleet_opts *o, const struct ml_ctx *ctx);

/*
 * Connect to every target of cfg for which want(target) is true (NULL:
 * all), at most o->parallel at once, and when o->start_agent is set start
 * the agent and exchange hello. *out is an array of *n sessions in the
 * order of cfg->targets, each with rc and error set per host; free with
 * ml_fleet_close. Returns 0 even when hosts failed: check each rc.
 */
int ml_fleet_connect(struct ml_host_session **out, size_t *n,
		     const struct ml_config *cfg, const struct ml_fleet_opts *o,
		     bool (*want)(const struct ml_target *));

/*
 * A second session to h's host, connected as h was (same options, fence
 * and agent start), for work that must run beside a request that blocks
 * h (the pipelined relay sends to a host that is passing the same blobs
 * on). rc and error are set in *twin as by ml_fleet_connect; close it
 * with ml_host_close.
 */
int ml_host_connect_twin(struct ml_host_session *twin,
			 const struct ml_host_session *h);

/* Close one session's channel and connection, and clear it. */
void ml_host_close(struct ml_host_session *h);

/* One request to a connected host's agent (see ml_proto_call): args is
 * stolen, *result is the caller's (result NULL: the reply is dropped). With a
 * fence, nothing is sent once the fence's check fails (its ML_ELOCKED is
 * returned). */
int ml_host_call(struct ml_host_session *h, const char *op, json_t *args,
		 json_t **result);

/*
 * The host that keeps the fleet lock, by the one rule every verb uses: the
 * first load balancer listed, else the first app host. Connects to it
 * alone; *out is an array of *n (0 or 1) sessions for ml_fleet_close.
 * ML_EHOST when it cannot be reached, saying so: the lock is never taken
 * elsewhere behind the user's back.
 */
int ml_fleet_connect_lock_host(struct ml_host_session **out, size_t *n,
			       const struct ml_config *cfg,
			       const struct ml_fleet_opts *o);

/* Stop the agents, disconnect, free. */
void ml_fleet_close(struct ml_host_session *v, size_t n);

/* Record a failure on a session (copying ml_err_msg()). */
void ml_host_fail(struct ml_host_session *h, int rc);

#endif
