/*
 * mlctl promote: let the manual canary step that a deploy holds pass
 * (canary_decide.c).
 */
#include "common/ml.h"
#include "orchestrator/canary_decide.h"
#include "orchestrator/cmd/cmd.h"

static const struct ml_option *const options[] = {
	&ml_opt_commit,
	&ml_opt_timeout,
	&ml_opt_tofu,
	NULL,
};

static int promote_run(struct ml_ctx *ctx)
{
	return ml_canary_decide(ctx, "promote");
}

const struct ml_cmd ml_cmd_promote = {
	.name = "promote",
	.summary = "let the canary step a deploy holds for a decision pass",
	.usage = "",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_DESTRUCTIVE,
	.run = promote_run,
};
