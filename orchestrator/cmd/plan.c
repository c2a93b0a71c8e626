/*
 * mlctl plan: what a deploy of a commit would do, host by host, asked of
 * the hosts (orchestrator/view/plan.c: read-only agent ops, no lock,
 * nothing written on any host; the image is built or found locally to
 * know its blobs). With --offline: the resolved desired state only (what
 * would run, where, and how it would be rolled out), contacting no host;
 * with --json that is ml_config_to_json's document.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/secrets.h"
#include "orchestrator/view/plan.h"

extern const struct ml_option ml_opt_secrets;

static const struct ml_option opt_offline = {
	OPT_OFFLINE, "offline", 0, NULL,
	"show the desired state only, contacting no host"
};
static const struct ml_option opt_detailed_exitcode = {
	OPT_DETAILED_EXITCODE, "detailed-exitcode", 0, NULL,
	"exit 2 when a deploy would change something, 0 when not"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit,
	&ml_opt_json,
	&opt_offline,
	&opt_detailed_exitcode,
	&ml_opt_secrets,
	&ml_opt_timeout,
	&ml_opt_tofu,
	&ml_opt_parallel,
	&ml_opt_local_docker,
	NULL,
};

static void join(struct ml_buf *b, const struct ml_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (i)
			ml_buf_addstr(b, ",");
		ml_buf_addstr(b, l->v[i]);
	}
}


static void print_summary(const struct ml_config *cfg)
{
	const struct ml_playbook *pb = cfg->playbook;
	char d1[ML_FMT_MAX], d2[ML_FMT_MAX], d3[ML_FMT_MAX];
	size_t i;

	printf("app:          %s", pb->app);
	if (cfg->commit)
		printf(" at commit %.12s", cfg->commit);
	printf("\n");
	if (pb->image.kind == ML_IMAGE_BUILD)
		printf("image:        build %s/%s from the commit's tree\n",
		       pb->image.context, pb->image.dockerfile);
	else
		printf("image:        %s (local image)\n", pb->image.ref);
	printf("port:         %d, %d replica%s per host\n", pb->port,
	       pb->replicas, pb->replicas == 1 ? "" : "s");
	printf("health:       GET %s every %s, timeout %s, start period %s\n",
	       pb->health.path, ml_fmt_duration(d1, pb->health.interval_ms),
	       ml_fmt_duration(d2, pb->health.timeout_ms),
	       ml_fmt_duration(d3, pb->health.start_period_ms));
	printf("rollout:      ");
	if (pb->rollout.batch_percent)
		printf("batches of %d%% of hosts", pb->rollout.batch_percent);
	else
		printf("batches of %d host%s", pb->rollout.batch_count,
		       pb->rollout.batch_count == 1 ? "" : "s");
	for (i = 0; i < pb->rollout.canary_n; i++)
		printf("%s%d%%", i ? ", " : ", canary steps ",
		       pb->rollout.canary_percent[i]);
	printf(", failure budget %d, automatic rollback %s, drain %s\n",
	       pb->rollout.failure_budget,
	       pb->rollout.auto_rollback ? "on" : "off",
	       ml_fmt_duration(d1, pb->rollout.drain_timeout_ms));
	for (i = 0; i < pb->rollout.nsteps; i++)
		printf("%s%d%% of requests %s %s%s", i ? ", " : "canary:       ",
		       pb->rollout.steps[i].weight_pct,
		       pb->rollout.steps[i].manual ? "until promoted, at most"
						   : "for",
		       ml_fmt_duration(d1, pb->rollout.steps[i].manual
						   ? pb->rollout.steps[i]
							     .timeout_ms
						   : pb->rollout.steps[i]
							     .for_ms),
		       i + 1 == pb->rollout.nsteps ? "\n" : "");
	if (pb->rollout.verify.n)
		printf("verify:       %zu golden request%s per new container%s\n",
		       pb->rollout.verify.n,
		       pb->rollout.verify.n == 1 ? "" : "s",
		       pb->rollout.verify.compare
			       ? ", answers compared with the old revision"
			       : "");
	if (pb->lb.hosts.n)
		printf("balancer:     port %d, %s%s\n", pb->lb.listen_port,
		       ml_balance_name(pb->lb.balance),
		       pb->lb.tls_cert ? ", TLS" : "");
	else
		printf("balancer:     none\n");
	if (pb->env.n || pb->secrets.n)
		printf("environment:  %zu variable%s, %zu secret%s\n",
		       pb->env.n, pb->env.n == 1 ? "" : "s", pb->secrets.n,
		       pb->secrets.n == 1 ? "" : "s");
}

static void print_hosts(const struct ml_config *cfg)
{
	static const char *const hdr[] = { "HOST",   "ADDRESS", "SSH", "ROLES",
					   "GROUPS", "LABELS",  "VARS" };
	struct ml_table *t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	struct ml_buf ssh = ML_BUF_INIT(1024), groups = ML_BUF_INIT(4096),
		      labels = ML_BUF_INIT(4096), vars = ML_BUF_INIT(8192);
	size_t i, j;

	for (i = 0; i < cfg->ntargets; i++) {
		const struct ml_target *h = &cfg->targets[i];
		const char *roles = h->is_app && h->is_lb ? "app,lb"
				    : h->is_lb		  ? "lb"
							  : "app";
		const char *cells[7];

		ml_buf_reset(&ssh);
		ml_buf_reset(&groups);
		ml_buf_reset(&labels);
		ml_buf_reset(&vars);
		ml_buf_addf(&ssh, "%s, port %d%s%s", h->user, h->port,
			    h->jump ? " via " : "", h->jump ? h->jump : "");
		join(&groups, &h->groups);
		for (j = 0; j < h->labels.n; j++)
			ml_buf_addf(&labels, "%s%s=%s", j ? "," : "",
				    h->labels.v[j].key, h->labels.v[j].value);
		for (j = 0; j < h->vars.n; j++)
			ml_buf_addf(&vars, "%s%s=%s", j ? "," : "",
				    h->vars.v[j].key, h->vars.v[j].value);
		cells[0] = h->name;
		cells[1] = h->address;
		cells[2] = ml_buf_str(&ssh);
		cells[3] = roles;
		cells[4] = groups.len ? ml_buf_str(&groups) : NULL;
		cells[5] = labels.len ? ml_buf_str(&labels) : NULL;
		cells[6] = vars.len ? ml_buf_str(&vars) : NULL;
		ml_table_add(t, cells);
	}
	printf("\n");
	ml_table_print(t, stdout);
	ml_table_free(t);
	ml_buf_release(&ssh);
	ml_buf_release(&groups);
	ml_buf_release(&labels);
	ml_buf_release(&vars);
}

static int plan_offline(struct ml_ctx *ctx)
{
	json_t *doc;
	int rc = 0;

	if (ml_ctx_flag(ctx, OPT_JSON)) {
		doc = ml_config_to_json(ctx->config);
		if (json_dumpf(doc, stdout, JSON_INDENT(2) |
						    JSON_PRESERVE_ORDER) < 0)
			rc = ml_err_set(ML_EFAIL, "cannot write JSON");
		printf("\n");
		json_decref(doc);
		return rc;
	}
	print_summary(ctx->config);
	print_hosts(ctx->config);
	printf("\nnothing was changed: plan shows the desired state only\n");
	return 0;
}

static int plan_run(struct ml_ctx *ctx)
{
	struct ml_plan_req req = { 0 };
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	json_t *secrets = NULL;
	char *what = NULL;
	bool changes = false;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "plan takes no arguments");
	if (ml_ctx_flag(ctx, OPT_OFFLINE)) {
		if (ml_ctx_flag(ctx, OPT_DETAILED_EXITCODE))
			return ml_err_set(ML_EUSAGE,
					  "--detailed-exitcode needs the "
					  "hosts: drop --offline");
		return plan_offline(ctx);
	}
	/* the secrets' values are in the spec hash, as deploy's */
	rc = ml_secrets_load(&secrets, ctx->config->playbook,
			     ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		return rc;
	rc = ml_image_prepare(&img, &cache, ctx->config,
			      ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0)
		goto out;
	what = ml_xasprintf("deploy of %.12s",
			    ctx->config->commit ? ctx->config->commit : "?");
	req.cfg = ctx->config;
	req.img = img;
	req.secrets = secrets;
	req.what = what;
	rc = ml_plan_show(ctx, &req, &changes);
	if (rc == 0 && changes && ml_ctx_flag(ctx, OPT_DETAILED_EXITCODE))
		rc = ML_CMD_CHANGES;
out:
	free(what);
	json_decref(secrets);
	ml_image_free(img);
	ml_cache_free(cache);
	return rc;
}

const struct ml_cmd ml_cmd_plan = {
	.name = "plan",
	.summary = "show what a deploy of a commit would do on each host",
	.usage = "[--commit REV] [--json] [--offline] [--detailed-exitcode]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_NEEDS_LEDGER,
	.run = plan_run,
};
