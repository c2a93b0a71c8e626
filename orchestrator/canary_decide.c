/*
 * The shared body of `mlctl promote` and `mlctl abort` (canary_decide.h):
 * connect to the fleet lock's host by the rule every verb follows, set
 * the decision of the open canary gate of the playbook's app, say which
 * revision and step it was. The deploy that waits reads it within its
 * analysis interval; the first decision wins.
 */
#include "common/ml.h"
#include "common/log.h"
#include "orchestrator/canary_decide.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/fleet/ops.h"

#include <unistd.h>

int ml_canary_decide(struct ml_ctx *ctx, const char *decision)
{
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	char *op, *who;
	json_t *res = NULL;
	size_t n = 0;
	int rc;

	if (ctx->argc != 0)
		return ml_err_set(ML_EUSAGE, "usage: mlctl %s", decision);
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	/* named like the lock's holder: user@host from the password
	 * database, not from $USER, which any environment can set */
	op = ml_operator_name();
	who = ml_xasprintf("%s pid %ld", op, (long)getpid());
	free(op);
	rc = ml_fleet_connect_lock_host(&hosts, &n, ctx->config, &fo);
	if (rc < 0)
		goto out;
	rc = ml_op_canary_gate(&hosts[0], ctx->config->playbook->app, "decide",
			       0, 0, decision, who, &res);
	if (rc < 0)
		goto out;
	printf("%s: revision %lld, canary step %lld (on %s)\n",
	       !strcmp(decision, "promote") ? "promoted" : "aborted",
	       (long long)json_integer_value(json_object_get(res, "revision")),
	       (long long)json_integer_value(json_object_get(res, "step")),
	       hosts[0].target->name);
out:
	json_decref(res);
	ml_fleet_close(hosts, n);
	free(who);
	return rc;
}
