#ifndef ML_PLAN_VIEW_H
#define ML_PLAN_VIEW_H

/*
 * `mlctl plan` and `mlctl rollback N --plan` (orchestrator/view/plan.c):
 * ask every target host what it runs, which of the image's blobs it
 * lacks and what its balancer serves, through read-only agent ops only
 * (list, blobs_have, lb_status; no lock, nothing written on any host),
 * plan the fleet (orchestrator/plan/fleet.h) and print it.
 */

#include <jansson.h>

struct ml_ctx;
struct ml_config;
struct ml_image;

struct ml_plan_req {
	const struct ml_config *cfg; /* the desired state */
	const struct ml_image *img;  /* its image, sizes known (cache filled) */
	json_t *secrets;             /* their values, borrowed (spec hash) */
	const char *what;            /* "deploy of abc123", for the header */
};

/*
 * Observe, plan and print (text, or with --json in ctx the plan's
 * document). *changes tells whether a deploy would change anything.
 * Returns 0, or ML_EHOST when a host did not answer (the plan of the
 * others is printed first, each unreachable host named).
 */
int ml_plan_show(struct ml_ctx *ctx, const struct ml_plan_req *req,
		 bool *changes);

#endif
