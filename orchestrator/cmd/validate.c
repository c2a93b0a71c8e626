/*
 * mlctl validate: read the playbook and inventory at a commit (or in the
 * working tree), check them, and say so. Every problem is printed as
 * file:line:col by the loader in main.c; nothing else happens here.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"

static const struct ml_option opt_worktree = {
	OPT_WORKTREE, "worktree", 0, NULL,
	"check the files in the working tree instead of a commit "
	"(for editors and pre-commit hooks)"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit,
	&opt_worktree,
	NULL,
};

static int validate_run(struct ml_ctx *ctx)
{
	const struct ml_config *cfg = ctx->config;
	size_t i, napp = 0, nlb = 0;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "validate takes no arguments");
	for (i = 0; i < cfg->ntargets; i++) {
		napp += cfg->targets[i].is_app;
		nlb += cfg->targets[i].is_lb;
	}
	printf("%s and %s are valid", ctx->playbook_path,
	       ctx->inventory_path);
	if (cfg->commit)
		printf(" at commit %.7s", cfg->commit);
	else
		printf(" in the working tree");
	printf(": app '%s', %zu host%s, %zu load balancer%s\n",
	       cfg->playbook->app, napp, napp == 1 ? "" : "s", nlb,
	       nlb == 1 ? "" : "s");
	return 0;
}

const struct ml_cmd ml_cmd_validate = {
	.name = "validate",
	.summary = "check the playbook and inventory at a commit",
	.usage = "[--commit REV] [--worktree]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = validate_run,
};
