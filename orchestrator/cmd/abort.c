/*
 * mlctl abort: stop the manual canary step that a deploy holds; that
 * deploy takes the new revision out and exits 7 (canary_decide.c).
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

static int abort_run(struct ml_ctx *ctx)
{
	return ml_canary_decide(ctx, "abort");
}

const struct ml_cmd ml_cmd_abort = {
	.name = "abort",
	.summary = "abort the canary step a deploy holds for a decision (the "
		   "deploy rolls back and exits 7)",
	.usage = "",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_DESTRUCTIVE,
	.run = abort_run,
};
