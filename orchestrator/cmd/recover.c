/*
 * mlctl recover: finish a rollout that a crashed or killed controller left
 * "running" in the ledger: converge the fleet to that revision's recorded
 * state through the same engine (what is already done is kept, what is
 * missing is done, leftovers are stopped) and record its outcome. Nothing
 * to recover is not an error.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/deploy.h"
#include "orchestrator/image/image.h"
#include "orchestrator/ledger/ledger.h"

extern const struct ml_option ml_opt_secrets;

static const struct ml_option *const options[] = {
	&ml_opt_secrets, &ml_opt_timeout, &ml_opt_tofu, &ml_opt_parallel,
	&ml_opt_local_docker, NULL,
};

static int recover_run(struct ml_ctx *ctx)
{
	struct ml_deploy_req req = { 0 };
	struct ml_revision *revs = NULL, *rev = NULL;
	struct ml_config *cfg = NULL;
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	size_t n = 0, i;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "recover takes no arguments");
	rc = ml_ledger_list(ctx->ledger, 20, &revs, &n);
	if (rc < 0)
		return rc;
	for (i = 0; i < n && !rev; i++)
		if (revs[i].outcome == ML_OUTCOME_RUNNING)
			rev = &revs[i];
	if (!rev) {
		printf("nothing to recover: no rollout was left unfinished\n");
		goto out;
	}
	printf("recovering revision %lld (%s of commit %.12s), left "
	       "unfinished by %s\n",
	       (long long)rev->number, ml_rev_kind_name(rev->kind),
	       rev->commit ? rev->commit : "-", rev->who ? rev->who : "?");
	rc = ml_deploy_load_revision(&cfg, &img, &cache, ctx, rev);
	if (rc < 0)
		goto out;
	req.cfg = cfg;
	req.img = img;
	req.cache = cache;
	req.kind = rev->kind;
	req.rollback_of = rev->rollback_of;
	req.resume = rev->number;
	rc = ml_deploy(ctx, &req);
out:
	ml_revisions_free(revs, n);
	ml_config_free(cfg);
	ml_image_free(img);
	ml_cache_free(cache);
	return rc;
}

const struct ml_cmd ml_cmd_recover = {
	.name = "recover",
	.summary = "finish a rollout that a killed controller left unfinished",
	.usage = "",
	.options = options,
	.flags = ML_CMD_NEEDS_LEDGER | ML_CMD_DESTRUCTIVE,
	.run = recover_run,
};
