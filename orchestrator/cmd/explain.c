/*
 * mlctl explain [KEY]: what a playbook or inventory key means, its type,
 * default and an example, from the schemas `validate` is written against
 * (orchestrator/view/explain.c). Reads no file, contacts no host: it works
 * before there is a playbook, which is when it is needed.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/view/explain.h"

static int explain_run(struct ml_ctx *ctx)
{
	struct ml_buf out = ML_BUF_INIT(1 << 20);
	const char *key = ctx->argc ? ctx->argv[0] : "";
	int rc;

	if (ctx->argc > 1)
		return ml_err_set(ML_EUSAGE, "explain takes one key, e.g. "
			       "'mlctl explain rollout.canary'");
	rc = ml_explain(&out, key);
	if (rc == 0 && !*key) {
		ml_buf_addstr(&out, "\n");
		rc = ml_explain(&out, "inventory");
	}
	if (rc == 0)
		fputs(ml_buf_str(&out), stdout);
	ml_buf_release(&out);
	return rc;
}

static const struct ml_option *const options[] = { NULL };

const struct ml_cmd ml_cmd_explain = {
	.name = "explain",
	.summary = "say what a playbook or inventory key means, with its "
		   "type, default and an example",
	.usage = "[KEY]   (rollout.canary, inventory.hosts, ...)",
	.options = options,
	.flags = 0,
	.run = explain_run,
};
