/*
 * The keep-set and the garbage of one host (see prune.h): a pure function
 * of the ledger's revisions, the pins and what the host reported, plus the
 * parsers that build its input and the renderer its data tests compare.
 *
 * Sets of digests and ids are jansson objects used as hash sets (keys
 * only). Sizes: a ledger of thousands of revisions of about ten layers, a
 * host of at most a few hundred images and a few thousand blobs; every
 * step is linear in those, so a plan takes milliseconds.
 *
 * Why the blob rule is conservative: a blob is removed only when the
 * ledger names it as part of a garbage image of this app, and nothing that
 * stays references it (a kept revision of any app, an image that stays in
 * Docker). A blob the ledger does not know (another ledger's app, an
 * interrupted delivery) is never a candidate.
 */
#include "common/ml.h"
#include "orchestrator/prune/prune.h"

#include <inttypes.h>

static void set_add(json_t *set, const char *key)
{
	if (key && json_object_set_new(set, key, json_true()) < 0)
		BUG("out of memory");
}

static bool set_has(json_t *set, const char *key)
{
	return key && json_object_get(set, key) != NULL;
}

static int cmp_rev_desc(const void *a, const void *b)
{
	const struct ml_prune_rev *x = *(const struct ml_prune_rev *const *)a;
	const struct ml_prune_rev *y = *(const struct ml_prune_rev *const *)b;

	return x->number < y->number ? 1 : x->number > y->number ? -1 : 0;
}

/* The app's revisions with an image, newest first (borrowed pointers). */
static const struct ml_prune_rev **app_revs(const struct ml_prune_input *in,
					    size_t *n)
{
	const struct ml_prune_rev **v =
		ml_xcalloc(in->nrevs + 1, sizeof(*v));
	size_t i, k = 0;

	for (i = 0; i < in->nrevs; i++)
		if (in->revs[i].app && !strcmp(in->revs[i].app, in->app) &&
		    in->revs[i].image_id)
			v[k++] = &in->revs[i];
	qsort(v, k, sizeof(*v), cmp_rev_desc);
	*n = k;
	return v;
}

static void add_image_blobs(json_t *set, const struct ml_prune_rev *r)
{
	size_t i;

	set_add(set, r->image_id);
	for (i = 0; i < r->nlayers; i++)
		set_add(set, r->layers[i]);
}

static const struct ml_prune_image *host_image(const struct ml_prune_host *h,
					       const char *id)
{
	size_t i;

	for (i = 0; i < h->nimages; i++)
		if (!strcmp(h->images[i].id, id))
			return &h->images[i];
	return NULL;
}

static uint64_t blob_size(const struct ml_prune_host *h, const char *digest)
{
	size_t i;

	for (i = 0; i < h->nblobs; i++)
		if (!h->blobs[i].partial && !strcmp(h->blobs[i].digest, digest))
			return h->blobs[i].size;
	return 0;
}

/* Bytes of the host's blobs that the kept revisions reference. */
static uint64_t kept_bytes(const struct ml_prune_host *h,
			   const struct ml_prune_rev **revs,
			   const unsigned *why, size_t n)
{
	json_t *set = json_object();
	const char *key;
	json_t *v;
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (why[i])
			add_image_blobs(set, revs[i]);
	json_object_foreach(set, key, v)
		sum += blob_size(h, key);
	json_decref(set);
	return sum;
}

/* Is tag one the app gives its images? */
static bool tag_is_apps(const char *tag, const char *app,
			const struct ml_prune_rev **revs, size_t n)
{
	size_t i, alen = strlen(app);

	if (!strncmp(tag, "mlctl/", 6) && !strncmp(tag + 6, app, alen) &&
	    tag[6 + alen] == ':')
		return true;
	for (i = 0; i < n; i++)
		if (revs[i]->ref && !strcmp(revs[i]->ref, tag))
			return true;
	return false;
}

static size_t apps_tags(const struct ml_prune_image *img, const char *app,
			const struct ml_prune_rev **revs, size_t n)
{
	size_t j, k = 0;

	for (j = 0; j < img->ntags; j++)
		k += tag_is_apps(img->tags[j], app, revs, n);
	return k;
}

void ml_prune_host(struct ml_prune_plan *out, const struct ml_prune_input *in)
{
	const struct ml_prune_host *h = in->host;
	const struct ml_prune_rev **revs;
	unsigned *why;
	json_t *keep_img = json_object(), *running_img = json_object();
	json_t *staying_img = json_object(), *rm_img = json_object();
	json_t *protect = json_object(), *cand = json_object();
	json_t *rm_ctr = json_object();
	size_t n, i, j, good = 0;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	revs = app_revs(in, &n);
	why = ml_xcalloc(n + 1, sizeof(*why));

	/* running containers (of any app) keep their images */
	for (i = 0; i < h->ncontainers; i++)
		if (h->containers[i].running)
			set_add(running_img, h->containers[i].image_id);

	for (i = 0; i < n; i++) {
		const struct ml_prune_rev *r = revs[i];

		if (r->outcome == ML_OUTCOME_SUCCEEDED) {
			if (good == 0) {
				why[i] |= ML_KEEP_CURRENT;
			} else if (good == 1) {
				why[i] |= ML_KEEP_PREVIOUS;
			}
			if (good < (size_t)in->retain)
				why[i] |= ML_KEEP_RETAINED;
			good++;
		}
		/* newest first: good == 0 means newer than current */
		if (r->outcome == ML_OUTCOME_RUNNING ||
		    (r->outcome == ML_OUTCOME_INTERRUPTED && good == 0))
			why[i] |= ML_KEEP_UNFINISHED;
		for (j = 0; j < in->npins; j++)
			if (in->pins[j] == r->number)
				why[i] |= ML_KEEP_PINNED;
		if (set_has(running_img, r->image_id))
			why[i] |= ML_KEEP_RUNNING;
	}

	/* over budget: drop retained-only revisions, oldest first */
	out->kept_bytes = kept_bytes(h, revs, why, n);
	for (i = n; in->budget > 0 && i-- > 0 &&
		    out->kept_bytes > (uint64_t)in->budget;) {
		if (why[i] != ML_KEEP_RETAINED)
			continue;
		why[i] = 0;
		out->dropped++;
		out->kept_bytes = kept_bytes(h, revs, why, n);
	}
	out->over_budget = in->budget > 0 &&
			   out->kept_bytes > (uint64_t)in->budget;

	for (i = 0; i < n; i++)
		if (why[i])
			set_add(keep_img, revs[i]->image_id);

	/* the app's stopped containers of images not kept go; the others
	 * stay and keep their images */
	for (i = 0; i < h->ncontainers; i++) {
		const struct ml_prune_container *c = &h->containers[i];

		if (!c->running && c->app && !strcmp(c->app, in->app) &&
		    !set_has(keep_img, c->image_id)) {
			ML_GROW(out->containers, out->ncontainers + 1, cap);
			out->containers[out->ncontainers++] = c;
			set_add(rm_ctr, c->id);
		} else {
			set_add(staying_img, c->image_id);
		}
	}
	/* a kept image used by a container that stays: say so */
	for (i = 0; i < n; i++)
		if (!why[i] && set_has(staying_img, revs[i]->image_id))
			why[i] = ML_KEEP_IN_USE;
	for (i = 0; i < n; i++)
		if (why[i])
			set_add(keep_img, revs[i]->image_id);

	/* images of the app's garbage revisions, newest revision first */
	cap = 0;
	for (i = 0; i < n; i++) {
		const struct ml_prune_image *img;
		struct ml_prune_rm_image *rm;

		if (why[i] || set_has(rm_img, revs[i]->image_id) ||
		    set_has(keep_img, revs[i]->image_id))
			continue;
		img = host_image(h, revs[i]->image_id);
		if (!img || (img->ntags && !apps_tags(img, in->app, revs, n)))
			continue; /* absent, or tagged by others only */
		ML_GROW(out->images, out->nimages + 1, cap);
		rm = &out->images[out->nimages++];
		memset(rm, 0, sizeof(*rm));
		rm->img = img;
		rm->revision = revs[i]->number;
		rm->tags = ml_xcalloc(img->ntags + 1, sizeof(*rm->tags));
		for (j = 0; j < img->ntags; j++)
			if (tag_is_apps(img->tags[j], in->app, revs, n))
				rm->tags[rm->ntags++] = img->tags[j];
		/* a tag of someone else's: only ours go, the image stays */
		rm->untag_only = rm->ntags < img->ntags;
		if (!rm->untag_only)
			set_add(rm_img, img->id);
	}

	/* blobs: candidates are the garbage revisions' blobs; anything that
	 * stays protects its own */
	for (i = 0; i < n; i++)
		if (!why[i] && !set_has(keep_img, revs[i]->image_id))
			add_image_blobs(cand, revs[i]);
	for (i = 0; i < in->nrevs; i++) {
		const struct ml_prune_rev *r = &in->revs[i];
		bool other = !r->app || strcmp(r->app, in->app);

		if (r->image_id && (other || set_has(keep_img, r->image_id)))
			add_image_blobs(protect, r);
	}
	for (i = 0; i < h->nimages; i++) {
		if (set_has(rm_img, h->images[i].id))
			continue;
		set_add(protect, h->images[i].id);
		for (j = 0; j < h->images[i].nlayers; j++)
			set_add(protect, h->images[i].layers[j]);
	}
	cap = 0;
	for (i = 0; i < h->nblobs; i++) {
		const struct ml_prune_blob *b = &h->blobs[i];

		if (b->partial || !set_has(cand, b->digest) ||
		    set_has(protect, b->digest))
			continue;
		ML_GROW(out->blobs, out->nblobs + 1, cap);
		out->blobs[out->nblobs++] = b;
		out->blob_bytes += b->size;
	}

	cap = 0;
	for (i = 0; i < n; i++) {
		if (!why[i])
			continue;
		ML_GROW(out->keep, out->nkeep + 1, cap);
		out->keep[out->nkeep].revision = revs[i]->number;
		out->keep[out->nkeep].image_id = revs[i]->image_id;
		out->keep[out->nkeep++].why = why[i];
	}
	json_decref(keep_img);
	json_decref(running_img);
	json_decref(staying_img);
	json_decref(rm_img);
	json_decref(protect);
	json_decref(cand);
	json_decref(rm_ctr);
	free(why);
	free(revs);
}

void ml_prune_plan_release(struct ml_prune_plan *p)
{
	size_t i;

	for (i = 0; i < p->nimages; i++)
		free(p->images[i].tags);
	free(p->images);
	free(p->keep);
	free(p->containers);
	free(p->blobs);
	memset(p, 0, sizeof(*p));
}

const char *ml_prune_why(char *buf, size_t n, unsigned why)
{
	static const char *const names[] = {
		"current",  "previous", "retained", "pinned",
		"unfinished", "running", "in use",
	};
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < ML_ARRAY_SIZE(names); i++)
		if (why & (1u << i) && len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s",
						len ? ", " : "", names[i]);
	return buf;
}

int ml_prune_render(struct ml_buf *out, const struct ml_prune_plan *p)
{
	char why[128];
	size_t i, j;
	int rc = 0;

	for (i = 0; i < p->nkeep && !rc; i++)
		rc = ml_buf_addf(out, "keep r%" PRId64 " %s (%s)\n",
				 p->keep[i].revision, p->keep[i].image_id,
				 ml_prune_why(why, sizeof(why), p->keep[i].why));
	for (i = 0; i < p->ncontainers && !rc; i++)
		rc = ml_buf_addf(out, "remove container %s (r%" PRId64 ")\n",
				 p->containers[i]->name ? p->containers[i]->name
							: p->containers[i]->id,
				 p->containers[i]->revision);
	for (i = 0; i < p->nimages && !rc; i++) {
		rc = ml_buf_addf(out, "%s image %s (r%" PRId64,
				 p->images[i].untag_only ? "untag" : "remove",
				 p->images[i].img->id, p->images[i].revision);
		if (!rc && p->images[i].ntags)
			rc = ml_buf_addstr(out, "; tags");
		for (j = 0; j < p->images[i].ntags && !rc; j++)
			rc = ml_buf_addf(out, " %s", p->images[i].tags[j]);
		if (!rc)
			rc = ml_buf_addstr(out, ")\n");
	}
	for (i = 0; i < p->nblobs && !rc; i++)
		rc = ml_buf_addf(out, "remove blob %s (%" PRIu64 " bytes)\n",
				 p->blobs[i]->digest, p->blobs[i]->size);
	if (!rc)
		rc = ml_buf_addf(out,
				 "frees %" PRIu64 " bytes of blobs; keeps %" PRIu64
				 "%s\n",
				 p->blob_bytes, p->kept_bytes,
				 p->over_budget ? "; over budget" : "");
	if (!rc && p->dropped)
		rc = ml_buf_addf(out, "budget dropped %d retained revision%s\n",
				 p->dropped, p->dropped == 1 ? "" : "s");
	return rc;
}

/* ---- input ------------------------------------------------------------- */

static char *dup_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? ml_xstrdup(s) : NULL;
}

/* A JSON array of strings as a new vector; ML_EPROTO for anything else
 * (absent is empty). */
static int str_array(char ***out, size_t *n, json_t *arr, const char *what)
{
	json_t *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return ml_err_set(ML_EPROTO, "prune: '%s' is not a list", what);
	*out = ml_xcalloc(json_array_size(arr) + 1, sizeof(**out));
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			return ml_err_set(ML_EPROTO,
					  "prune: '%s' holds a non-string",
					  what);
		(*out)[(*n)++] = ml_xstrdup(json_string_value(v));
	}
	return 0;
}

static void str_array_free(char **v, size_t n)
{
	while (n)
		free(v[--n]);
	free(v);
}

int ml_prune_host_from_json(struct ml_prune_host *out, json_t *scan)
{
	json_t *cs = json_object_get(scan, "containers");
	json_t *is = json_object_get(scan, "images");
	json_t *bs = json_object_get(scan, "blobs");
	json_t *v;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if ((cs && !json_is_array(cs)) || (is && !json_is_array(is)) ||
	    (bs && !json_is_array(bs)))
		return ml_err_set(ML_EPROTO, "prune_scan: 'containers', "
					     "'images' and 'blobs' must be "
					     "lists");
	out->containers = ml_xcalloc(json_array_size(cs) + 1,
				     sizeof(*out->containers));
	json_array_foreach(cs, i, v)
	{
		struct ml_prune_container *c =
			&out->containers[out->ncontainers];

		c->id = dup_str(v, "id");
		c->name = dup_str(v, "name");
		c->app = dup_str(v, "app");
		c->image_id = dup_str(v, "image_id");
		c->revision = json_integer_value(json_object_get(v, "revision"));
		c->running = json_is_true(json_object_get(v, "running"));
		out->ncontainers++;
		if (!c->id || !c->image_id)
			rc = ml_err_set(ML_EPROTO, "prune_scan: a container "
						   "without 'id' or "
						   "'image_id'");
	}
	out->images = ml_xcalloc(json_array_size(is) + 1, sizeof(*out->images));
	json_array_foreach(is, i, v)
	{
		struct ml_prune_image *im = &out->images[out->nimages++];

		im->id = dup_str(v, "id");
		if (!im->id && rc == 0)
			rc = ml_err_set(ML_EPROTO,
					"prune_scan: an image without 'id'");
		if (rc == 0)
			rc = str_array(&im->tags, &im->ntags,
				       json_object_get(v, "tags"), "tags");
		if (rc == 0)
			rc = str_array(&im->layers, &im->nlayers,
				       json_object_get(v, "layers"), "layers");
	}
	out->blobs = ml_xcalloc(json_array_size(bs) + 1, sizeof(*out->blobs));
	json_array_foreach(bs, i, v)
	{
		struct ml_prune_blob *b = &out->blobs[out->nblobs++];
		json_t *sz = json_object_get(v, "size");

		b->digest = dup_str(v, "digest");
		b->partial = json_is_true(json_object_get(v, "partial"));
		if ((!b->digest || !json_is_integer(sz) ||
		     json_integer_value(sz) < 0) && rc == 0)
			rc = ml_err_set(ML_EPROTO, "prune_scan: a blob without "
						   "'digest' or 'size'");
		b->size = (uint64_t)json_integer_value(sz);
	}
	if (rc < 0)
		ml_prune_host_release(out);
	return rc;
}

void ml_prune_host_release(struct ml_prune_host *h)
{
	size_t i;

	for (i = 0; i < h->ncontainers; i++) {
		free(h->containers[i].id);
		free(h->containers[i].name);
		free(h->containers[i].app);
		free(h->containers[i].image_id);
	}
	for (i = 0; i < h->nimages; i++) {
		free(h->images[i].id);
		str_array_free(h->images[i].tags, h->images[i].ntags);
		str_array_free(h->images[i].layers, h->images[i].nlayers);
	}
	for (i = 0; i < h->nblobs; i++)
		free(h->blobs[i].digest);
	free(h->containers);
	free(h->images);
	free(h->blobs);
	memset(h, 0, sizeof(*h));
}

static enum ml_outcome outcome_from(const char *s)
{
	static const enum ml_outcome all[] = {
		ML_OUTCOME_RUNNING, ML_OUTCOME_SUCCEEDED, ML_OUTCOME_FAILED,
		ML_OUTCOME_ROLLED_BACK, ML_OUTCOME_INTERRUPTED,
	};
	size_t i;

	for (i = 0; s && i < ML_ARRAY_SIZE(all); i++)
		if (!strcmp(ml_outcome_name(all[i]), s))
			return all[i];
	return ML_OUTCOME_FAILED; /* unknown: not good, not running */
}

int ml_prune_revs_from_json(struct ml_prune_rev **out, size_t *n, json_t *arr)
{
	struct ml_prune_rev *v;
	json_t *o;
	size_t i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr))
		return ml_err_set(ML_EPROTO, "prune: revisions must be a list");
	v = ml_xcalloc(json_array_size(arr) + 1, sizeof(*v));
	json_array_foreach(arr, i, o)
	{
		struct ml_prune_rev *r = &v[i];

		r->number = json_integer_value(json_object_get(o, "n"));
		r->app = dup_str(o, "app");
		r->image_id = dup_str(o, "image");
		r->ref = dup_str(o, "ref");
		r->outcome = outcome_from(
			json_string_value(json_object_get(o, "outcome")));
		if (rc == 0)
			rc = str_array(&r->layers, &r->nlayers,
				       json_object_get(o, "layers"), "layers");
	}
	if (rc < 0) {
		ml_prune_revs_free(v, json_array_size(arr));
		return rc;
	}
	*out = v;
	*n = json_array_size(arr);
	return 0;
}

void ml_prune_revs_from_ledger(struct ml_prune_rev **out, size_t *n,
			       const struct ml_revision *revs, size_t nrevs)
{
	struct ml_prune_rev *v = ml_xcalloc(nrevs + 1, sizeof(*v));
	size_t i;

	for (i = 0; i < nrevs; i++) {
		const struct ml_revision *r = &revs[i];
		json_t *d = r->desired_json ? json_loads(r->desired_json, 0,
							 NULL)
					    : NULL;
		json_t *im = json_object_get(d, "image");
		json_t *ly = r->layers_json ? json_loads(r->layers_json, 0,
							 NULL)
					    : NULL;
		const char *app = json_string_value(json_object_get(d, "app"));
		const char *kind = json_string_value(json_object_get(im, "kind"));

		v[i].number = r->number;
		v[i].app = app ? ml_xstrdup(app) : NULL;
		v[i].image_id = r->image_id ? ml_xstrdup(r->image_id) : NULL;
		v[i].outcome = r->outcome;
		if (kind && !strcmp(kind, "ref"))
			v[i].ref = dup_str(im, "ref");
		else if (app && r->commit)
			v[i].ref = ml_xasprintf("mlctl/%s:%s", app, r->commit);
		/* a record we cannot read keeps its blobs out of reach:
		 * without layers they are never candidates */
		if (str_array(&v[i].layers, &v[i].nlayers, ly, "layers") < 0) {
			str_array_free(v[i].layers, v[i].nlayers);
			v[i].layers = NULL;
			v[i].nlayers = 0;
		}
		json_decref(ly);
		json_decref(d);
	}
	*out = v;
	*n = nrevs;
}

void ml_prune_revs_free(struct ml_prune_rev *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].app);
		free(v[i].image_id);
		free(v[i].ref);
		str_array_free(v[i].layers, v[i].nlayers);
	}
	free(v);
}
