/*
 * mlctl rollback [N]: deploy revision N's recorded desired state (its
 * playbook and image; hosts from the current inventory) through the same
 * engine as deploy, recorded as a new revision that names N. Without N:
 * the newest successful revision before the current one. The hosts keep
 * the images of the revisions prune keeps (orchestrator/prune), so no image
 * bytes move for those; a revision prune removed from some hosts is said
 * to be delivered again, and is, from the controller's cache (or Docker).
 * With --plan: what the rollback would do, asked of the hosts
 * (orchestrator/view/plan.c), and nothing changes.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/deploy.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/load.h"
#include "orchestrator/options.h"
#include "orchestrator/secrets.h"
#include "orchestrator/view/plan.h"

#include <jansson.h>

extern const struct ml_option ml_opt_secrets;

static const struct ml_option opt_wait = {
	OPT_WAIT, "wait", 'w', "DURATION",
	"when another deploy holds the fleet lock, wait up to DURATION"
};

static const struct ml_option opt_plan = {
	OPT_PLAN, "plan", 0, NULL,
	"show what the rollback would do on each host and change nothing"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit, &opt_wait, &ml_opt_secrets, &ml_opt_timeout,
	&ml_opt_tofu, &ml_opt_parallel, &ml_opt_local_docker, &ml_opt_json,
	&opt_plan, NULL,
};

/* --plan: the rollback's plan, asked of the hosts; nothing changes. */
static int plan_only(struct ml_ctx *ctx, const struct ml_config *cfg,
		     const struct ml_image *img, const struct ml_revision *rev)
{
	struct ml_plan_req req = { 0 };
	json_t *secrets = NULL;
	char *what;
	bool changes;
	int rc;

	rc = ml_secrets_load(&secrets, cfg->playbook, ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		return rc;
	what = ml_xasprintf("rollback to revision %lld",
			    (long long)rev->number);
	req.cfg = cfg;
	req.img = img;
	req.secrets = secrets;
	req.what = what;
	rc = ml_plan_show(ctx, &req, &changes);
	free(what);
	json_decref(secrets);
	return rc;
}

/* The revision to go back to when none is named: the newest successful one
 * older than the newest successful one. */
static int previous_good(struct ml_ledger *l, struct ml_revision **out)
{
	struct ml_revision *cur = NULL;
	int rc;

	rc = ml_ledger_last_good(l, 0, &cur);
	if (rc < 0)
		return ml_err_set(ML_ENOTFOUND,
				  "no successful revision is recorded: "
				  "nothing to roll back to");
	rc = ml_ledger_last_good(l, cur->number, out);
	if (rc < 0)
		rc = ml_err_set(ML_ENOTFOUND,
				"revision %lld is the only successful one: "
				"nothing to roll back to",
				(long long)cur->number);
	ml_revision_free(cur);
	return rc;
}

/* Are the config and every layer of rev in the controller's cache? */
static bool revision_cached(const struct ml_revision *rev)
{
	struct ml_cache *c = NULL;
	json_t *layers = rev->layers_json ? json_loads(rev->layers_json, 0,
						       NULL)
					  : NULL, *v;
	bool all = rev->image_id && json_is_array(layers);
	size_t i;

	if (all && ml_cache_open(&c, NULL) < 0)
		all = false;
	if (all && !ml_cache_has(c, rev->image_id))
		all = false;
	json_array_foreach(layers, i, v)
		if (all && !ml_cache_has(c, json_string_value(v)))
			all = false;
	ml_cache_free(c);
	json_decref(layers);
	return all;
}

/*
 * A revision prune took off some hosts is delivered to them again by the
 * deploy; say so before it starts, and from where, rather than let a
 * rollback that is usually instant send bytes unannounced.
 */
static void say_if_pruned(struct ml_ctx *ctx, const struct ml_revision *rev,
			  bool cached)
{
	FILE *out = ml_ctx_flag(ctx, OPT_JSON) ? stderr : stdout;
	struct ml_buf b = ML_BUF_INIT(1 << 16);
	char **hosts = NULL;
	size_t n = 0, i;

	if (!rev->image_id ||
	    ml_ledger_pruned_hosts(ctx->ledger, rev->image_id, &hosts, &n) < 0 ||
	    !n) {
		ml_err_clear();
		free(hosts);
		return;
	}
	for (i = 0; i < n; i++) {
		ml_buf_addf(&b, "%s%s", i ? ", " : "", hosts[i]);
		free(hosts[i]);
	}
	free(hosts);
	fprintf(out,
		"revision %lld was pruned from %s: its image is delivered "
		"again, from the controller's %s\n",
		(long long)rev->number, ml_buf_str(&b),
		cached ? "cache"
		       : "Docker (its blobs were pruned from the cache too)");
	ml_buf_release(&b);
}

/*
 * The revision's image is gone from the controller's Docker (removed by
 * hand, or another machine): a revision built from its commit is built
 * again from that commit. The result may not be bit-for-bit the image
 * recorded (build times are part of it), so this says which it is. For
 * an image named by reference there is nothing to rebuild from, and the
 * original error stands.
 */
static int rebuild(struct ml_config **cfg, struct ml_image **img,
		   struct ml_cache **cache, struct ml_ctx *ctx,
		   const struct ml_revision *rev)
{
	FILE *out = ml_ctx_flag(ctx, OPT_JSON) ? stderr : stdout;
	struct ml_err_saved why;
	struct ml_config *c = NULL;
	int rc;

	ml_err_save(&why);
	rc = ml_load_config_with_playbook(&c, ctx, rev->playbook,
					  strlen(rev->playbook), rev->commit);
	if (rc < 0 || c->playbook->image.kind != ML_IMAGE_BUILD) {
		ml_err_restore(&why);
		rc = ML_ENOTFOUND;
		goto out;
	}
	fprintf(out,
		"the image of revision %lld is not in the controller's Docker "
		"any more: building it again from commit %.12s\n",
		(long long)rev->number, rev->commit);
	rc = ml_image_prepare(img, cache, c, ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0)
		goto out;
	if (strcmp((*img)->id, rev->image_id))
		fprintf(out,
			"the rebuilt image is %.19s, not the recorded %.19s "
			"(builds are not bit-for-bit reproducible)\n",
			(*img)->id, rev->image_id);
	*cfg = c;
	c = NULL;
out:
	ml_config_free(c);
	return rc;
}

static int rollback_run(struct ml_ctx *ctx)
{
	struct ml_deploy_req req = { 0 };
	struct ml_revision *rev = NULL;
	struct ml_config *cfg = NULL;
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	int64_t num;
	bool cached;
	int rc;

	if (ctx->argc > 1)
		return ml_err_set(ML_EUSAGE, "usage: mlctl rollback [REVISION]");
	if (ctx->argc == 1) {
		rc = ml_parse_count(&num, ctx->argv[0], "the revision");
		if (rc < 0)
			return rc;
		rc = ml_ledger_get(ctx->ledger, num, &rev);
	} else {
		rc = previous_good(ctx->ledger, &rev);
	}
	if (rc < 0)
		return rc;
	cached = revision_cached(rev);
	rc = ml_deploy_load_revision(&cfg, &img, &cache, ctx, rev);
	if (rc == ML_ENOTFOUND && rev->image_id)
		rc = rebuild(&cfg, &img, &cache, ctx, rev);
	if (rc < 0)
		goto out;
	say_if_pruned(ctx, rev, cached);
	if (ml_ctx_flag(ctx, OPT_PLAN)) {
		rc = plan_only(ctx, cfg, img, rev);
		goto out;
	}
	fprintf(ml_ctx_flag(ctx, OPT_JSON) ? stderr : stdout,
		"rolling back to revision %lld (commit %.12s, image %.19s)\n",
	       (long long)rev->number, rev->commit ? rev->commit : "-",
	       img->id);
	req.cfg = cfg;
	req.img = img;
	req.cache = cache;
	req.kind = ML_REV_ROLLBACK;
	req.rollback_of = rev->number;
	rc = ml_deploy(ctx, &req);
out:
	ml_revision_free(rev);
	ml_config_free(cfg);
	ml_image_free(img);
	ml_cache_free(cache);
	return rc;
}

const struct ml_cmd ml_cmd_rollback = {
	.name = "rollback",
	.summary = "restore a recorded revision (default: the previous good "
		   "one)",
	.usage = "[REVISION] [--wait DURATION] [--plan]",
	.options = options,
	.flags = ML_CMD_NEEDS_LEDGER | ML_CMD_DESTRUCTIVE,
	.run = rollback_run,
};
