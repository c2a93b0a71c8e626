/*
 * Carrying out prune on a fleet (see prune.h and run.h): per app host, in
 * parallel, ask the agent what it holds (prune_scan), plan with
 * ml_prune_host, and have the agent remove the garbage (prune), which
 * checks each item again; then the controller's blob cache by the same
 * rule; then record in the ledger which images left which hosts, and
 * report.
 *
 * Races: the caller holds the fleet lock (mlctl prune takes it; a deploy
 * prunes before it lets go), so no deploy of this fleet sends or starts
 * anything meanwhile; and the agent refuses to remove an image a container
 * uses, a blob an image in Docker is made of, or a .part being received,
 * whoever else is at work on the host (another app behind another lock).
 *
 * Output from hosts (ids, tags, reasons) is escaped before it is printed.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/image/image.h"
#include "orchestrator/prune/prune.h"
#include "orchestrator/prune/run.h"
#include "orchestrator/transport/transport.h"

#include <inttypes.h>

struct host_job {
	struct ml_prune_host host;
	struct ml_prune_plan plan;
	bool planned;
	json_t *result; /* the agent's prune reply */
	char *error;
};

struct fleet_job {
	struct ml_host_session *hosts;
	struct host_job *jobs;
	struct ml_prune_input in; /* host set per job */
	bool dry_run;
};

/* ---- per host ---- */

static int prune_one(size_t i, void *arg)
{
	struct fleet_job *fj = arg;
	struct ml_host_session *h = &fj->hosts[i];
	struct host_job *job = &fj->jobs[i];
	struct ml_prune_input in = fj->in;
	json_t *scan = NULL;
	int rc;

	if (h->rc < 0 || !h->target->is_app)
		return 0;
	rc = ml_op_prune_scan(h, &scan);
	if (rc == 0)
		rc = ml_prune_host_from_json(&job->host, scan);
	json_decref(scan);
	if (rc < 0)
		goto out;
	in.host = &job->host;
	ml_prune_host(&job->plan, &in);
	job->planned = true;
	rc = ml_op_prune(h, in.app, &job->plan, fj->dry_run, &job->result);
out:
	if (rc < 0)
		job->error = ml_xstrdup(ml_err_msg());
	return rc;
}

/* ---- the controller's cache ---- */

struct cache_list {
	struct ml_prune_blob *v;
	size_t n, cap;
};

static int cache_add(void *arg, const char *digest, int64_t size)
{
	struct cache_list *l = arg;

	ML_GROW(l->v, l->n + 1, l->cap);
	l->v[l->n].digest = ml_xstrdup(digest);
	l->v[l->n].size = (uint64_t)size;
	l->v[l->n++].partial = false;
	return 0;
}

/* Plan and (unless dry) remove the cache's garbage; *doc describes it. */
static int prune_cache(json_t **doc, const struct ml_prune_input *base,
		       bool dry_run)
{
	struct ml_cache *c = NULL;
	struct cache_list l = { 0 };
	struct ml_prune_host h = { 0 };
	struct ml_prune_input in = *base;
	struct ml_prune_plan p;
	json_t *blobs = json_array();
	uint64_t freed = 0;
	int64_t size;
	size_t i;
	int rc;

	*doc = NULL;
	rc = ml_cache_open(&c, NULL);
	if (rc == 0)
		rc = ml_cache_each(c, cache_add, &l);
	if (rc < 0)
		goto out;
	h.blobs = l.v;
	h.nblobs = l.n;
	in.host = &h;
	in.budget = 0; /* the budget is a host's, not the controller's */
	ml_prune_host(&p, &in);
	for (i = 0; i < p.nblobs; i++) {
		const char *dg = p.blobs[i]->digest;
		int got = 1;

		size = (int64_t)p.blobs[i]->size;
		if (!dry_run)
			got = ml_cache_remove(c, dg, &size);
		if (got < 0) {
			ml_warn("prune: %s", ml_err_msg());
			continue;
		}
		if (got == 1) {
			freed += (uint64_t)size;
			json_array_append_new(
				blobs, json_pack("{s:s,s:I}", "digest", dg,
						 "size", (json_int_t)size));
		}
	}
	ml_prune_plan_release(&p);
	*doc = json_pack("{s:s,s:o,s:I}", "dir", ml_cache_dir(c), "blobs",
			 blobs, "bytes_freed", (json_int_t)freed);
	blobs = NULL;
out:
	for (i = 0; i < l.n; i++)
		free(l.v[i].digest);
	free(l.v);
	json_decref(blobs);
	ml_cache_free(c);
	return rc;
}

/* ---- report ---- */

static const char *esc(struct ml_buf *b, const char *s)
{
	ml_buf_reset(b);
	if (!s || ml_escape(b, s, strlen(s)) < 0)
		return "?";
	return ml_buf_str(b);
}

static size_t count_removed(json_t *arr)
{
	json_t *v;
	size_t i, k = 0;

	json_array_foreach(arr, i, v)
		k += json_is_true(json_object_get(v, "removed"));
	return k;
}

static json_t *keep_json(const struct ml_prune_plan *p)
{
	json_t *a = json_array();
	char why[128];
	size_t i;

	for (i = 0; i < p->nkeep; i++)
		json_array_append_new(
			a, json_pack("{s:I,s:s,s:s}", "revision",
				     (json_int_t)p->keep[i].revision, "image",
				     p->keep[i].image_id, "why",
				     ml_prune_why(why, sizeof(why),
						  p->keep[i].why)));
	return a;
}

static char *keep_text(const struct ml_prune_plan *p)
{
	struct ml_buf b = ML_BUF_INIT(1 << 16);
	size_t i;

	for (i = 0; i < p->nkeep; i++)
		ml_buf_addf(&b, "%sr%" PRId64, i ? " " : "",
			    p->keep[i].revision);
	return ml_buf_detach(&b, NULL);
}

/* The items the agent removed (or would), one line each. */
static void print_items(FILE *out, const char *host, json_t *res, bool dry)
{
	struct ml_buf b1 = ML_BUF_INIT(4096), b2 = ML_BUF_INIT(4096);
	const char *verb = dry ? "would remove" : "removed";
	static const char *const kinds[] = { "containers", "images", "blobs" };
	char sz[ML_FMT_MAX];
	json_t *v;
	size_t k, i;

	for (k = 0; k < ML_ARRAY_SIZE(kinds); k++) {
		json_array_foreach(json_object_get(res, kinds[k]), i, v)
		{
			const char *id = json_string_value(json_object_get(
				v, k == 2 ? "digest" : "id"));
			const char *reason = json_string_value(
				json_object_get(v, "reason"));

			if (json_is_true(json_object_get(v, "removed")) &&
			    k == 2)
				fprintf(out, "%s: %s blob %s (%s)\n", host, verb,
					esc(&b1, id),
					ml_fmt_bytes(sz, json_integer_value(
						json_object_get(v, "size"))));
			else if (json_is_true(json_object_get(v, "removed")))
				fprintf(out, "%s: %s %.*s %s\n", host, verb,
					(int)strlen(kinds[k]) - 1, kinds[k],
					esc(&b1, id));
			else if (reason && strcmp(reason, "absent"))
				fprintf(out, "%s: kept %.*s %s: %s\n", host,
					(int)strlen(kinds[k]) - 1, kinds[k],
					esc(&b1, id), esc(&b2, reason));
		}
	}
	ml_buf_release(&b1);
	ml_buf_release(&b2);
}

/* ---- the ledger's prune records ---- */

static bool removed_here(json_t *result, const char *id)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(result, "images"), i, v)
		if (json_is_true(json_object_get(v, "removed")) &&
		    !strcmp(json_string_value(json_object_get(v, "id")) ?: "",
			    id))
			return true;
	return false;
}

static void record(struct ml_ledger *l, const char *host,
		   const struct host_job *job,
		   const struct ml_prune_input *in)
{
	json_t *v;
	size_t i, j, k, n;
	char **hosts;

	json_array_foreach(json_object_get(job->result, "images"), i, v)
		if (json_is_true(json_object_get(v, "removed")) &&
		    ml_ledger_set_pruned(l, json_string_value(json_object_get(
						    v, "id")),
					 host, true) < 0)
			ml_warn("prune: %s", ml_err_msg());
	/* an image of the app that is (again) on the host, and stays */
	for (i = 0; i < job->host.nimages; i++) {
		const char *id = job->host.images[i].id;

		if (removed_here(job->result, id))
			continue;
		for (j = 0; j < in->nrevs; j++)
			if (in->revs[j].image_id &&
			    !strcmp(in->revs[j].image_id, id))
				break;
		if (j == in->nrevs ||
		    ml_ledger_pruned_hosts(l, id, &hosts, &n) < 0)
			continue;
		for (k = 0; k < n; k++) {
			if (!strcmp(hosts[k], host))
				ml_ledger_set_pruned(l, id, host, false);
			free(hosts[k]);
		}
		free(hosts);
	}
}

int ml_prune_fleet(struct ml_ledger *l, const struct ml_config *cfg,
		   struct ml_host_session *hosts, size_t n,
		   const struct ml_prune_opts *o)
{
	const struct ml_playbook *pb = cfg->playbook;
	struct ml_revision *revs = NULL;
	struct ml_prune_rev *prevs = NULL;
	struct fleet_job fj = { 0 };
	struct ml_buf b = ML_BUF_INIT(4096);
	int64_t *pins = NULL;
	size_t nrevs = 0, npins = 0, nprevs = 0, i, bad = 0;
	json_t *doc = json_object(), *arr = json_array(), *cache = NULL;
	uint64_t total = 0;
	char sz[ML_FMT_MAX], sz2[ML_FMT_MAX];
	int rc;

	rc = ml_ledger_list(l, 0, &revs, &nrevs);
	if (rc == 0)
		rc = ml_ledger_pins(l, &pins, &npins);
	if (rc < 0)
		goto out;
	ml_prune_revs_from_ledger(&prevs, &nprevs, revs, nrevs);
	fj.hosts = hosts;
	fj.jobs = ml_xcalloc(n + 1, sizeof(*fj.jobs));
	fj.dry_run = o->dry_run;
	fj.in.app = pb->app;
	fj.in.retain = pb->prune.retain > 0 ? pb->prune.retain
					    : ML_PRUNE_RETAIN_DEFAULT;
	fj.in.budget = pb->prune.disk_budget;
	fj.in.revs = prevs;
	fj.in.nrevs = nprevs;
	fj.in.pins = pins;
	fj.in.npins = npins;
	ml_parallel_run(n, o->parallel, prune_one, &fj);

	for (i = 0; i < n; i++) {
		struct host_job *job = &fj.jobs[i];
		const char *name = hosts[i].target->name;
		json_t *res = job->result, *h;
		uint64_t freed;
		char *kept;

		if (!hosts[i].target->is_app)
			continue;
		h = json_pack("{s:s}", "host", name);
		json_array_append_new(arr, h);
		if (hosts[i].rc < 0 || job->error) {
			const char *e = hosts[i].rc < 0 ? hosts[i].error
						       : job->error;

			json_object_set_new(h, "error", json_string(e));
			fprintf(stderr, "mlctl: prune: %s: %s\n", name,
				esc(&b, e));
			bad++;
			continue;
		}
		freed = (uint64_t)json_integer_value(
				json_object_get(res, "blob_bytes")) +
			(uint64_t)json_integer_value(
				json_object_get(res, "image_bytes"));
		total += freed;
		json_object_set_new(h, "keep", keep_json(&job->plan));
		json_object_set(h, "containers",
				json_object_get(res, "containers"));
		json_object_set(h, "images", json_object_get(res, "images"));
		json_object_set(h, "blobs", json_object_get(res, "blobs"));
		json_object_set(h, "blob_bytes",
				json_object_get(res, "blob_bytes"));
		json_object_set(h, "image_bytes",
				json_object_get(res, "image_bytes"));
		json_object_set_new(h, "bytes_freed",
				    json_integer((json_int_t)freed));
		json_object_set_new(h, "kept_bytes",
				    json_integer((json_int_t)job->plan.kept_bytes));
		json_object_set_new(h, "over_budget",
				    json_boolean(job->plan.over_budget));
		if (!o->dry_run)
			record(l, name, job, &fj.in);
		if (o->json)
			continue;
		if (!o->quiet)
			print_items(o->out, name, res, o->dry_run);
		kept = keep_text(&job->plan);
		if (!o->quiet || freed)
			fprintf(o->out,
				"%s: %s %zu container%s, %zu image%s, %zu "
				"blob%s, %s; keeps %s\n",
				name, o->dry_run ? "would prune" : "pruned",
				count_removed(json_object_get(res, "containers")),
				count_removed(json_object_get(res, "containers")) == 1 ? "" : "s",
				count_removed(json_object_get(res, "images")),
				count_removed(json_object_get(res, "images")) == 1 ? "" : "s",
				count_removed(json_object_get(res, "blobs")),
				count_removed(json_object_get(res, "blobs")) == 1 ? "" : "s",
				ml_fmt_bytes(sz, (int64_t)freed), kept);
		if (job->plan.over_budget)
			fprintf(o->out,
				"%s: the kept revisions take %s, more than the "
				"disk budget of %s\n",
				name,
				ml_fmt_bytes(sz, (int64_t)job->plan.kept_bytes),
				ml_fmt_bytes(sz2, pb->prune.disk_budget));
		free(kept);
	}

	if (prune_cache(&cache, &fj.in, o->dry_run) < 0) {
		ml_warn("prune: the controller's cache: %s", ml_err_msg());
	} else {
		uint64_t freed = (uint64_t)json_integer_value(
			json_object_get(cache, "bytes_freed"));

		total += freed;
		if (!o->json && (!o->quiet || freed))
			fprintf(o->out,
				"controller cache: %s %zu blob%s, %s\n",
				o->dry_run ? "would prune" : "pruned",
				json_array_size(json_object_get(cache, "blobs")),
				json_array_size(json_object_get(cache, "blobs")) == 1 ? "" : "s",
				ml_fmt_bytes(sz, (int64_t)freed));
	}
	json_object_set_new(doc, "dry_run", json_boolean(o->dry_run));
	json_object_set_new(doc, "hosts", arr);
	json_object_set_new(doc, "cache", cache ? cache : json_null());
	json_object_set_new(doc, "bytes_freed", json_integer((json_int_t)total));
	arr = NULL;
	if (o->json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	}
	if (bad)
		rc = ml_err_set(ML_EHOST, "prune: %zu host%s could not be pruned",
				bad, bad == 1 ? "" : "s");
out:
	for (i = 0; fj.jobs && i < n; i++) {
		ml_prune_plan_release(&fj.jobs[i].plan);
		ml_prune_host_release(&fj.jobs[i].host);
		json_decref(fj.jobs[i].result);
		free(fj.jobs[i].error);
	}
	free(fj.jobs);
	json_decref(doc);
	json_decref(arr);
	ml_prune_revs_free(prevs, nprevs);
	ml_revisions_free(revs, nrevs);
	free(pins);
	ml_buf_release(&b);
	return rc;
}

void ml_prune_after_deploy(struct ml_ctx *ctx, const struct ml_config *cfg,
			   struct ml_host_session *hosts, size_t n, FILE *out)
{
	struct ml_prune_opts o = { 0 };
	struct ml_fleet_opts fo;

	if (!cfg->playbook->prune.after_deploy)
		return;
	o.quiet = true;
	o.out = out;
	o.parallel = ml_fleet_opts_from_ctx(&fo, ctx) == 0 ? fo.parallel : 16;
	if (ml_prune_fleet(ctx->ledger, cfg, hosts, n, &o) < 0)
		ml_warn("prune after the deploy: %s", ml_err_msg());
	ml_err_clear();
}
