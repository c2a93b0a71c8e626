/*
 * mlctl remove: take the app off the fleet: stop and delete its containers
 * on every app host and its HAProxy instance on every load balancer, under
 * the fleet lock. Images stay on the hosts (a later deploy or rollback
 * sends nothing), and the ledger keeps its history.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/transport/transport.h"

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_timeout, &ml_opt_tofu, &ml_opt_parallel, NULL,
};

struct remove_job {
	struct ml_host_session *hosts;
	const char *app;
	int *removed;
};

static int remove_one(size_t i, void *arg)
{
	struct remove_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	json_t *res = NULL, *c;
	size_t k;
	int rc = 0;

	if (h->rc < 0)
		return h->rc;
	if (h->target->is_app) {
		rc = ml_op_list(h, job->app, &res);
		json_array_foreach(json_object_get(res, "containers"), k, c) {
			const char *id =
				json_string_value(json_object_get(c, "id"));

			if (!id || rc < 0)
				continue;
			rc = ml_op_container_stop(h, id, 10, NULL);
			if (rc == 0)
				job->removed[i]++;
		}
		json_decref(res);
		res = NULL;
	}
	if (rc == 0 && h->target->is_lb) {
		rc = ml_op_lb_remove(h, job->app, NULL);
	}
	if (rc < 0)
		ml_host_fail(h, rc);
	return rc;
}

static int remove_run(struct ml_ctx *ctx)
{
	struct ml_fleet_opts fo;
	struct ml_fleet_lock *lock = NULL;
	struct ml_host_session *hosts = NULL;
	struct remove_job job = { 0 };
	size_t n = 0, i, bad = 0;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "remove takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	rc = ml_fleet_lock_take(&lock, ctx, ctx->config, "remove");
	if (rc < 0)
		return rc;
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, NULL);
	if (rc < 0)
		goto out;
	job.hosts = hosts;
	job.app = ctx->config->playbook->app;
	job.removed = ml_xcalloc(n + 1, sizeof(*job.removed));
	ml_parallel_run(n, fo.parallel, remove_one, &job);
	for (i = 0; i < n; i++) {
		if (hosts[i].rc < 0) {
			fprintf(stderr, "mlctl: %s: %s\n",
				hosts[i].target->name, hosts[i].error);
			bad++;
		} else if (hosts[i].target->is_app) {
			printf("%s: %d container%s removed\n",
			       hosts[i].target->name, job.removed[i],
			       job.removed[i] == 1 ? "" : "s");
		} else {
			printf("%s: load balancer removed\n",
			       hosts[i].target->name);
		}
	}
	if (bad)
		rc = ml_err_set(ML_EHOST, "%zu host%s could not be cleaned",
				bad, bad == 1 ? "" : "s");
out:
	free(job.removed);
	ml_fleet_close(hosts, n);
	ml_fleet_lock_drop(lock);
	return rc;
}

const struct ml_cmd ml_cmd_remove = {
	.name = "remove",
	.summary = "take the app off the fleet (containers and load balancer)",
	.usage = "",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_DESTRUCTIVE,
	.run = remove_run,
};
