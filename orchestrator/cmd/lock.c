/*
 * mlctl lock status | release: look at the fleet lock, a lease kept by
 * the agent of the first load-balancer host listed (the first app host
 * when there is none; the rule of ml_fleet_connect_lock_host, which
 * deploy, rollback, recover and remove follow too), or break it when its
 * holder is gone for good.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"

#include <time.h>

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_json, &ml_opt_timeout, &ml_opt_tofu, NULL,
};

static int lock_run(struct ml_ctx *ctx)
{
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	json_t *res = NULL;
	size_t n = 0;
	bool release;
	int rc;

	if (ctx->argc != 1 || (strcmp(ctx->argv[0], "status") &&
			       strcmp(ctx->argv[0], "release")))
		return ml_err_set(ML_EUSAGE, "usage: mlctl lock status|release");
	release = !strcmp(ctx->argv[0], "release");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	rc = ml_fleet_connect_lock_host(&hosts, &n, ctx->config, &fo);
	if (rc < 0)
		goto out;
	rc = ml_op_lock_status(&hosts[0], &res);
	if (rc < 0)
		goto out;
	if (ml_ctx_flag(ctx, OPT_JSON) && !release) {
		json_dumpf(res, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else if (!json_is_true(json_object_get(res, "held"))) {
		printf("the fleet is not locked (lock on %s)\n",
		       hosts[0].target->name);
	} else {
		char t1[ML_FMT_MAX];
		int64_t exp = json_integer_value(
			json_object_get(res, "expires_at_ms"));
		/* owner and reason were written by whoever took the lock */
		struct ml_buf own = ML_BUF_INIT(4096), why = ML_BUF_INIT(4096);
		const char *o = json_string_value(json_object_get(res, "owner"));
		const char *w = json_string_value(json_object_get(res, "reason"));

		ml_escape(&own, o ? o : "?", o ? strlen(o) : 1);
		ml_escape(&why, w ? w : "-", w ? strlen(w) : 1);
		printf("locked by %s since %s (%s), expires in %llds\n",
		       ml_buf_str(&own),
		       ml_fmt_time(t1, json_integer_value(json_object_get(
						res, "acquired_at_ms")) /
					       1000),
		       ml_buf_str(&why),
		       (long long)(exp / 1000 - (int64_t)time(NULL)));
		ml_buf_release(&own);
		ml_buf_release(&why);
		if (release) {
			rc = ml_op_lock_release(&hosts[0], NULL, true, NULL);
			if (rc == 0)
				printf("released\n");
		}
	}
out:
	json_decref(res);
	ml_fleet_close(hosts, n);
	return rc;
}

const struct ml_cmd ml_cmd_lock = {
	.name = "lock",
	.summary = "show or break the fleet lock",
	.usage = "status|release",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = lock_run,
};
