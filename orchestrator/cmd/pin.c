/*
 * mlctl pin N / mlctl unpin N: a pinned revision's image and blobs stay on
 * every host and in the controller's cache, however old, so `mlctl
 * rollback N` to it never sends image bytes; unpin hands it back to the
 * retain rule at the next prune. Only the ledger changes. The two verbs
 * are one operation with a sign, so they share this file and each exports
 * its table entry.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/options.h"

static const struct ml_option *const options[] = { NULL };

static int pin_or_unpin(struct ml_ctx *ctx, bool pin)
{
	char *who;
	int64_t num;
	bool changed;
	int rc;

	if (ctx->argc != 1)
		return ml_err_set(ML_EUSAGE, "usage: mlctl %s REVISION",
				  pin ? "pin" : "unpin");
	rc = ml_parse_count(&num, ctx->argv[0], "the revision");
	if (rc < 0)
		return rc;
	who = ml_operator_name();
	rc = ml_ledger_pin(ctx->ledger, num, who, pin, &changed);
	free(who);
	if (rc < 0)
		return rc;
	printf("revision %lld %s\n", (long long)num,
	       pin ? (changed ? "pinned: prune keeps its image on every host"
			      : "was already pinned")
		   : (changed ? "unpinned" : "was not pinned"));
	return 0;
}

static int pin_run(struct ml_ctx *ctx)
{
	return pin_or_unpin(ctx, true);
}

static int unpin_run(struct ml_ctx *ctx)
{
	return pin_or_unpin(ctx, false);
}

const struct ml_cmd ml_cmd_pin = {
	.name = "pin",
	.summary = "keep a revision's image on every host until unpinned",
	.usage = "REVISION",
	.options = options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = pin_run,
};

const struct ml_cmd ml_cmd_unpin = {
	.name = "unpin",
	.summary = "let prune remove a pinned revision's image again",
	.usage = "REVISION",
	.options = options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = unpin_run,
};
