#ifndef ML_PRUNE_RUN_H
#define ML_PRUNE_RUN_H

/*
 * Prune on a fleet: the app hosts' garbage (ml_prune_host per host, then
 * the agent's prune op, which checks each item again) and the
 * controller's blob cache, recorded in the ledger and reported.
 */

#include <stdio.h>

struct ml_config;
struct ml_ctx;
struct ml_host_session;
struct ml_ledger;

struct ml_prune_opts {
	bool dry_run; /* judge and report, remove nothing */
	bool json;    /* the report as one JSON document on stdout */
	bool quiet;   /* one line per host that freed something (deploy) */
	FILE *out;    /* human report */
	int parallel; /* hosts at once */
};

/*
 * Prune cfg's app on the app hosts among hosts (connected sessions with
 * the agent started; unreachable ones are reported) and in the controller's
 * cache, from the revisions and pins in l. The caller holds the fleet lock
 * unless o->dry_run. Returns 0, or ML_EHOST when a host could not be
 * pruned (the others were), or a ledger error before anything was done.
 */
int ml_prune_fleet(struct ml_ledger *l, const struct ml_config *cfg,
		   struct ml_host_session *hosts, size_t n,
		   const struct ml_prune_opts *o);

/*
 * The prune a successful deploy runs (unless the playbook's
 * prune.after_deploy is false) while it still holds the fleet lock and its
 * sessions: quiet, and never failing the deploy (problems are warnings).
 */
void ml_prune_after_deploy(struct ml_ctx *ctx, const struct ml_config *cfg,
			   struct ml_host_session *hosts, size_t n, FILE *out);

#endif
