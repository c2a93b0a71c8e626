#ifndef ML_LEASE_H
#define ML_LEASE_H

/*
 * The fleet lock, held as a lease (orchestrator/fleet/lease.c): taken
 * through the agent on the fleet lock's host (ml_fleet_connect_lock_host)
 * over a session of its own, renewed by a thread on the monotonic clock,
 * and given up by ml_fleet_lock_drop. Every verb that changes the fleet
 * (deploy, rollback, recover, remove, prune) takes it; the sessions that
 * change hosts carry its fence (fleet.h), so a holder that lost the lease
 * sends nothing more.
 */

#include <stdbool.h>

struct ml_ctx;
struct ml_config;
struct ml_fence;
struct ml_fleet_lock;

/*
 * Take the lease for cfg's fleet with ctx's options (--wait: how long to
 * wait for another holder, default not at all; the SSH options), its
 * owner the operator (ml_operator_name) and this process, and reason
 * ("deploy of abc123", "remove") shown to whoever waits for it. A lease
 * whose holder is a dead process of this machine is taken over at once.
 * *out is the caller's, for ml_fleet_lock_drop. ML_ELOCKED when another
 * holder kept it past --wait, ML_EHOST when the lock's host cannot be
 * reached.
 */
int ml_fleet_lock_take(struct ml_fleet_lock **out, struct ml_ctx *ctx,
		       const struct ml_config *cfg, const char *reason);

/* The fence for the sessions that change the fleet; borrowed, valid until
 * ml_fleet_lock_drop. */
const struct ml_fence *ml_fleet_lock_fence(struct ml_fleet_lock *fl);

/*
 * Is the lease lost: refused at a renewal, or not renewed in time by our
 * monotonic clock (a controller stopped past its lease)? When so, the
 * error message says why. False for NULL.
 */
bool ml_fleet_lock_lost(struct ml_fleet_lock *fl);

/* Whether the lease is already known lost, without looking at the clock
 * and without touching the error message. */
bool ml_fleet_lock_known_lost(struct ml_fleet_lock *fl);

/*
 * Stop renewing, release the lease unless it was lost (it is then someone
 * else's), close its session and free fl (NULL is a no-op). The error
 * message set before the call is kept: a failure here is a warning.
 */
void ml_fleet_lock_drop(struct ml_fleet_lock *fl);

/* "user@host" of the operator, as the lease's owner and the ledger name
 * them. Caller frees. */
char *ml_operator_name(void);

#endif
