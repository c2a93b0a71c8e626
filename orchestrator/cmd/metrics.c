/*
 * mlctl metrics targets [--output FILE]: write the Prometheus file_sd file
 * for the app (every LB exporter, every app container's metrics endpoint,
 * labelled app, host, role, revision, commit) and refresh each balancer's
 * map of which revision runs behind which server. Every deploy, rollback
 * and recover does the same at its end, into the default file
 * (prometheus/APP.json beside the ledger), so a Prometheus pointed at it
 * stays current; --output writes another file once.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/metrics/metrics.h"

static const struct ml_option opt_output = {
	OPT_OUTPUT, "output", 'o', "FILE",
	"write the targets here (default prometheus/APP.json beside the "
	"ledger, the file deploys keep current)"
};

static const struct ml_option *const options[] = {
	&opt_output, &ml_opt_commit, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, NULL,
};

static int metrics_run(struct ml_ctx *ctx)
{
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	char *def = NULL;
	const char *path;
	size_t n = 0, i, down = 0;
	int rc;

	if (ctx->argc != 1 || strcmp(ctx->argv[0], "targets"))
		return ml_err_set(ML_EUSAGE,
				  "usage: mlctl metrics targets [--output "
				  "FILE]");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	path = ctx->opt[OPT_OUTPUT];
	if (!path)
		path = def = ml_metrics_targets_path(
			ctx->ledger_path, ctx->config->playbook->app);
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, NULL);
	if (rc < 0)
		goto out;
	for (i = 0; i < n; i++)
		if (hosts[i].rc < 0) {
			fprintf(stderr, "mlctl: %s: %s\n",
				hosts[i].target->name, hosts[i].error);
			down++;
		}
	rc = ml_metrics_refresh(ctx->config, hosts, n, path, NULL, 0, 0);
	if (rc == 0)
		printf("%s\n", path);
	if (rc == 0 && down)
		rc = ml_err_set(ML_EHOST,
				"%zu of %zu hosts unreachable: their "
				"containers are not in '%s'",
				down, n, path);
out:
	ml_fleet_close(hosts, n);
	free(def);
	return rc;
}

const struct ml_cmd ml_cmd_metrics = {
	.name = "metrics",
	.summary = "write the Prometheus targets file of the app's exporters "
		   "and containers",
	.usage = "targets [--output FILE]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_NEEDS_LEDGER,
	.run = metrics_run,
};
