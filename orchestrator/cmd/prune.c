/*
 * mlctl prune [--dry-run] [--json]: remove from every app host what no
 * rollback of the app may need (see orchestrator/prune/prune.h for the
 * keep-set), and the same blobs from the controller's cache; list per
 * host what goes and the bytes freed. Under the fleet lock, so no deploy
 * sends or starts anything meanwhile; --dry-run takes no lock and changes
 * nothing (the agents still run their checks, so what it lists is what a
 * prune would remove at that moment).
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/prune/run.h"

static const struct ml_option opt_dry_run = {
	OPT_DRY_RUN, "dry-run", 'n', NULL,
	"say what would be removed, remove nothing"
};

static const struct ml_option opt_wait = {
	OPT_WAIT, "wait", 'w', "DURATION",
	"when a deploy holds the fleet lock, wait up to DURATION"
};

static const struct ml_option *const options[] = {
	&opt_dry_run, &ml_opt_json, &opt_wait, &ml_opt_commit,
	&ml_opt_timeout, &ml_opt_tofu, &ml_opt_parallel, NULL,
};

static bool is_app(const struct ml_target *t)
{
	return t->is_app;
}

static int prune_run(struct ml_ctx *ctx)
{
	struct ml_prune_opts o = { 0 };
	struct ml_fleet_opts fo;
	struct ml_fleet_lock *lock = NULL;
	struct ml_host_session *hosts = NULL;
	size_t n = 0;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "prune takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	o.dry_run = ml_ctx_flag(ctx, OPT_DRY_RUN);
	o.json = ml_ctx_flag(ctx, OPT_JSON);
	o.out = stdout;
	o.parallel = fo.parallel;
	if (!o.dry_run) {
		rc = ml_fleet_lock_take(&lock, ctx, ctx->config, "prune");
		if (rc < 0)
			return rc;
	}
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, is_app);
	if (rc == 0)
		rc = ml_prune_fleet(ctx->ledger, ctx->config, hosts, n, &o);
	ml_fleet_close(hosts, n);
	ml_fleet_lock_drop(lock);
	return rc;
}

const struct ml_cmd ml_cmd_prune = {
	.name = "prune",
	.summary = "remove old images, stopped containers and blobs that no "
		   "rollback needs",
	.usage = "[--dry-run] [--json]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_NEEDS_LEDGER |
		 ML_CMD_DESTRUCTIVE,
	.run = prune_run,
};
