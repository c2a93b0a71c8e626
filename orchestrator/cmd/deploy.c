/*
 * mlctl deploy: roll the fleet to the desired state of a commit (default
 * HEAD) with zero downtime, recorded as a new revision. Deploying what is
 * already deployed changes nothing and records nothing.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/deploy.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/secrets.h"

#include <jansson.h>

static const struct ml_option opt_wait = {
	OPT_WAIT, "wait", 'w', "DURATION",
	"when another deploy holds the fleet lock, wait up to DURATION for "
	"it (default: fail at once)"
};
const struct ml_option ml_opt_secrets = {
	OPT_SECRETS, "secrets", 0, "FILE",
	"NAME=VALUE lines for the playbook's secrets, mode 600 (default "
	".mlctl/secrets, then MLCTL_SECRET_<NAME>)"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_allow_dirty, &opt_wait, &ml_opt_secrets,
	&ml_opt_timeout, &ml_opt_tofu, &ml_opt_parallel,
	&ml_opt_local_docker, &ml_opt_json, NULL,
};

static int deploy_run(struct ml_ctx *ctx)
{
	struct ml_deploy_req req = { 0 };
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	json_t *secrets = NULL;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "deploy takes no arguments");
	/* the inputs first: a bad secrets file fails before the build */
	rc = ml_secrets_load(&secrets, ctx->config->playbook,
			     ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		return rc;
	rc = ml_image_prepare(&img, &cache, ctx->config,
			      ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0) {
		json_decref(secrets);
		return rc;
	}
	fprintf(ml_ctx_flag(ctx, OPT_JSON) ? stderr : stdout,
		"deploying %s at %.12s: image %.19s (%s)%s\n",
	       ctx->config->playbook->app, ctx->config->commit, img->id,
	       img->ref, img->built ? ", built" : "");
	req.cfg = ctx->config;
	req.img = img;
	req.cache = cache;
	req.kind = ML_REV_DEPLOY;
	req.secrets = secrets;
	rc = ml_deploy(ctx, &req);
	json_decref(secrets);
	ml_image_free(img);
	ml_cache_free(cache);
	return rc;
}

const struct ml_cmd ml_cmd_deploy = {
	.name = "deploy",
	.summary = "roll the fleet to the desired state of a commit",
	.usage = "[--commit REV] [--wait DURATION] [--secrets FILE]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_NEEDS_LEDGER |
		 ML_CMD_REFUSE_DIRTY | ML_CMD_DESTRUCTIVE,
	.run = deploy_run,
};
