#ifndef ML_CANARY_DECIDE_H
#define ML_CANARY_DECIDE_H

/*
 * `mlctl promote` and `mlctl abort`: decide the manual canary step a
 * deploy (of any controller) holds, through the agent's canary_gate on
 * the fleet lock's host.
 */

struct ml_ctx;

/* decision is "promote" or "abort". ML_ENOTFOUND when no step waits. */
int ml_canary_decide(struct ml_ctx *ctx, const char *decision);

#endif
