/*
 * What a deploy would do, asked of the hosts (see plan.h). Every
 * host is asked in parallel, each on its own session: an app host for
 * its containers (list) and which of the image's blobs it lacks
 * (blobs_have, which only reads the store), a balancer for its servers
 * (lb_status). The revisions those containers run are looked up in the
 * ledger to say which key of the desired state changed. Nothing is
 * locked or written on a host; the controller may build the image and
 * fill its cache before this (local work).
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/image/image.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/plan/fleet.h"
#include "orchestrator/secrets.h"
#include "orchestrator/transport/transport.h"
#include "orchestrator/view/plan.h"

struct ask {
	struct ml_host_session *hosts;
	const struct ml_config *cfg;
	const struct ml_image *img;
	struct ml_fleet_seen *seen;
	json_t **list, **blobs, **lb; /* the replies, per host */
	char **error;                 /* per host */
};

/* Ask host i what it runs, lacks and serves. */
static int ask_host(size_t i, void *arg)
{
	struct ask *q = arg;
	struct ml_host_session *h = &q->hosts[i];
	const char *app = q->cfg->playbook->app;
	int rc = 0;

	if (h->rc < 0) {
		q->error[i] = ml_xstrdup(h->error ? h->error : "unreachable");
		return h->rc;
	}
	if (h->target->is_app) {
		rc = ml_op_list(h, app, &q->list[i]);
		if (rc == 0)
			rc = ml_op_blobs_have(h, q->img, &q->blobs[i]);
	}
	if (rc == 0 && h->target->is_lb)
		rc = ml_op_lb_status(h, app, &q->lb[i]);
	if (rc < 0)
		q->error[i] = ml_xstrdup(ml_err_msg());
	return rc;
}

/* {"N": shape} for every revision a container runs, from the ledger. */
static json_t *revision_shapes(struct ml_ledger *l, json_t **list, size_t n)
{
	json_t *out = json_object(), *c;
	size_t i, k;

	for (i = 0; l && i < n; i++) {
		json_array_foreach(json_object_get(list[i], "containers"), k,
				   c) {
			json_t *jr = json_object_get(c, "revision"), *d;
			struct ml_revision *rev = NULL;
			char num[24];

			if (!json_is_integer(jr))
				continue;
			snprintf(num, sizeof(num), "%lld",
				 (long long)json_integer_value(jr));
			if (json_object_get(out, num))
				continue;
			if (ml_ledger_get(l, json_integer_value(jr), &rev) < 0) {
				ml_err_clear();
				continue;
			}
			d = rev->desired_json
				    ? json_loads(rev->desired_json, 0, NULL)
				    : NULL;
			if (d)
				json_object_set_new(out, num, ml_plan_shape(d));
			json_decref(d);
			ml_revision_free(rev);
		}
	}
	return out;
}

static void print_text(const struct ml_plan_req *req,
		       const struct ml_fleet_plan *fp, const char *spec,
		       int64_t serving)
{
	struct ml_buf b = ML_BUF_INIT(1 << 24);
	char sz[ML_FMT_MAX];
	size_t i, reloads = 0, napp = 0;

	printf("plan: %s: %s, image %.19s\n", req->what,
	       req->cfg->playbook->app, req->img->id);
	if (serving)
		printf("serving now: revision %lld\n", (long long)serving);
	ML_UNUSED(spec);
	if (ml_fleet_plan_render(&b, fp) == 0)
		fputs(ml_buf_str(&b), stdout);
	ml_buf_release(&b);
	for (i = 0; i < fp->nlbs; i++)
		reloads += fp->lbs[i].reload;
	for (i = 0; i < fp->nhosts; i++)
		napp += fp->hosts[i].is_app;
	if (!fp->changes && !fp->unreachable)
		return;
	printf("%zu of %zu app host%s change, %s (%lld bytes) to send, "
	       "haproxy %s\n",
	       fp->changed, napp, napp == 1 ? "" : "s",
	       ml_fmt_bytes(sz, fp->bytes), (long long)fp->bytes,
	       reloads ? "reloads" : "does not reload");
	printf("nothing was changed: this is a plan\n");
}

int ml_plan_show(struct ml_ctx *ctx, const struct ml_plan_req *req,
		 bool *changes)
{
	const struct ml_config *cfg = req->cfg;
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct ml_plan_blob *blobs = NULL;
	struct ml_fleet_want w = { 0 };
	struct ml_fleet_plan fp = { 0 };
	struct ml_revision *good = NULL;
	struct ask q = { 0 };
	json_t *desired = NULL, *served = NULL;
	char spec[65];
	size_t n = 0, i;
	bool planned = false;
	int rc;

	*changes = false;
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		goto out;
	/* the same spec hash the deploy gives its containers */
	ml_rollout_spec(spec, cfg, req->img->id);
	rc = ml_secrets_spec(spec, cfg, req->secrets, ctx->ledger_path);
	if (rc < 0)
		goto out;
	rc = ml_fleet_connect(&hosts, &n, cfg, &fo, NULL);
	if (rc < 0)
		goto out;
	q.hosts = hosts;
	q.cfg = cfg;
	q.img = req->img;
	q.list = ml_xcalloc(n + 1, sizeof(*q.list));
	q.blobs = ml_xcalloc(n + 1, sizeof(*q.blobs));
	q.lb = ml_xcalloc(n + 1, sizeof(*q.lb));
	q.error = ml_xcalloc(n + 1, sizeof(*q.error));
	q.seen = ml_xcalloc(n + 1, sizeof(*q.seen));
	ml_parallel_run(n, fo.parallel, ask_host, &q);
	for (i = 0; i < n; i++) {
		q.seen[i].name = hosts[i].target->name;
		q.seen[i].address = hosts[i].target->address;
		q.seen[i].is_app = hosts[i].target->is_app;
		q.seen[i].is_lb = hosts[i].target->is_lb;
		q.seen[i].error = q.error[i];
		q.seen[i].containers = json_object_get(q.list[i],
						       "containers");
		q.seen[i].blobs = q.blobs[i];
		q.seen[i].lb = q.lb[i];
	}
	blobs = ml_xcalloc(req->img->nlayers + 1, sizeof(*blobs));
	blobs[0].digest = req->img->config_digest;
	blobs[0].size = req->img->config_size;
	for (i = 0; i < req->img->nlayers; i++) {
		blobs[i + 1].digest = req->img->layers[i];
		blobs[i + 1].size = req->img->layer_sizes[i];
	}
	desired = ml_config_to_json(cfg);
	if (ctx->ledger && ml_ledger_last_good(ctx->ledger, 0, &good) < 0)
		ml_err_clear();
	w.app = cfg->playbook->app;
	w.spec = spec;
	w.image_id = req->img->id;
	w.replicas = cfg->playbook->replicas;
	w.port = cfg->playbook->port;
	w.rollout = &cfg->playbook->rollout;
	w.blobs = blobs;
	w.nblobs = req->img->nlayers + 1;
	w.shape = ml_plan_shape(desired);
	w.rev_shapes = revision_shapes(ctx->ledger, q.list, n);
	w.serving = good ? good->number : 0;
	/* what the balancers were last given, to see a reload coming */
	if (good && good->desired_json)
		served = json_loads(good->desired_json, 0, NULL);
	w.lb_shape = ml_plan_lb_shape(desired);
	w.serving_lb_shape = ml_plan_lb_shape(served);
	ml_plan_fleet(&fp, &w, q.seen, n);
	planned = true;
	*changes = fp.changes;
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *doc = ml_fleet_plan_json(&fp);

		json_object_set_new(doc, "app", json_string(w.app));
		json_object_set_new(doc, "what", json_string(req->what));
		json_object_set_new(doc, "commit", cfg->commit
							   ? json_string(cfg->commit)
							   : json_null());
		json_object_set_new(doc, "image", json_string(w.image_id));
		json_object_set_new(doc, "serving",
				    json_integer(w.serving));
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else {
		print_text(req, &fp, spec, w.serving);
	}
	if (fp.unreachable)
		rc = ml_err_set(ML_EHOST,
				"%zu host%s did not answer: the plan is "
				"incomplete (see above)",
				fp.unreachable, fp.unreachable == 1 ? "" : "s");
out:
	if (planned)
		ml_fleet_plan_release(&fp);
	for (i = 0; q.list && i < n; i++) {
		json_decref(q.list[i]);
		json_decref(q.blobs[i]);
		json_decref(q.lb[i]);
		free(q.error[i]);
	}
	free(q.list);
	free(q.blobs);
	free(q.lb);
	free(q.error);
	free(q.seen);
	free(blobs);
	json_decref(w.shape);
	json_decref(w.rev_shapes);
	json_decref(w.lb_shape);
	json_decref(w.serving_lb_shape);
	json_decref(served);
	json_decref(desired);
	ml_revision_free(good);
	ml_fleet_close(hosts, n);
	return rc;
}
