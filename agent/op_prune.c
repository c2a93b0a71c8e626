/*
 * prune: remove what the controller's keep-set calls garbage, checking
 * again here, right before each removal, that nothing still uses it.
 *
 *	args:   {"app": "demo",
 *		 "containers": ["ID", ...],
 *		 "images": [{"id": "sha256:..", "tags": ["mlctl/demo:sha"]}],
 *		 "blobs": ["sha256:..", ...],
 *		 "dry_run": false}
 *	result: {"containers": [{"id","name","removed","reason"}],
 *		 "images": [{"id","removed","untagged":[..],"reason"}],
 *		 "blobs": [{"digest","removed","size","reason"}],
 *		 "blob_bytes": N, "image_bytes": N}
 *
 * The checks, whatever the controller asked:
 * - a container is removed only when its mlctl.app label is app and it is
 *   not running, restarting or paused;
 * - an image only when no container left on the host uses it; only its
 *   tags that are the app's ("mlctl/<app>:" or one the request names) are
 *   removed, and the image itself only when it has no other tag;
 * - a blob only when no image left in Docker is built from it (its config
 *   or one of its layers) and it is complete (a .part being received is
 *   never touched).
 * Something that fails a check is kept and the reason given; prune is
 * best effort, so one refusal does not stop the rest. With dry_run the
 * same checks run and nothing changes. image_bytes estimates what Docker
 * frees: the sizes of the removed images' layers that no remaining image
 * uses, as held in the blob store.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "common/docker.h"

#define OP "prune"
#define MAX_ITEMS 1000 /* ML_PRUNE_MAX_ITEMS on the controller */

static bool is_ours(const char *tag, const char *app, json_t *asked)
{
	size_t i, alen = strlen(app);
	json_t *v;

	if (!strncmp(tag, "mlctl/", 6) && !strncmp(tag + 6, app, alen) &&
	    tag[6 + alen] == ':')
		return true;
	json_array_foreach(asked, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), tag))
			return true;
	return false;
}

static int check_list(json_t *args, const char *key, json_t **out)
{
	json_t *v = json_object_get(args, key);

	*out = v;
	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) > MAX_ITEMS)
		return ml_err_set(ML_EPROTO,
				  OP ": '%s' must be a list of at most %d",
				  key, MAX_ITEMS);
	return 0;
}

static json_t *item(const char *key, const char *id, bool removed,
		    const char *reason)
{
	json_t *o = json_object();

	ml_agent_set_str(o, key, id);
	json_object_set_new(o, "removed", json_boolean(removed));
	ml_agent_set_str(o, "reason", reason);
	return o;
}

/* Remove (or, dry, judge) one container of the app. */
static json_t *prune_container(struct ml_docker *d, struct ml_agent *a,
			       const char *app, const char *id, bool dry,
			       json_t *gone)
{
	json_t *c = NULL, *o;
	char *path = NULL, *reason = NULL;
	const char *cid, *name = NULL, *lab, *state;
	bool removed = false;
	int rc;

	if (!ml_docker_valid_name(id))
		return item("id", id, false, "not a container id");
	path = ml_xasprintf("/containers/%s/json", id);
	rc = ml_docker_get(d, path, &c);
	if (rc < 0) {
		reason = ml_xstrdup(rc == ML_ENOTFOUND ? "absent"
						       : ml_err_msg());
		goto done;
	}
	cid = json_string_value(json_object_get(c, "Id"));
	name = json_string_value(json_object_get(c, "Name"));
	if (name && *name == '/')
		name++;
	lab = json_string_value(json_object_get(
		json_object_get(json_object_get(c, "Config"), "Labels"),
		"mlctl.app"));
	state = json_string_value(
		json_object_get(json_object_get(c, "State"), "Status"));
	if (!cid || !ml_docker_valid_name(cid) || !lab || strcmp(lab, app)) {
		reason = ml_xasprintf("not a container of app '%s'", app);
		goto done;
	}
	if (!state || !strcmp(state, "running") ||
	    !strcmp(state, "restarting") || !strcmp(state, "paused")) {
		reason = ml_xasprintf("it is %s", state ? state : "in use");
		goto done;
	}
	if (!dry) {
		free(path);
		path = ml_xasprintf("/containers/%s?v=1", cid);
		rc = ml_docker_request(d, "DELETE", path, NULL, NULL);
		if (rc < 0 && rc != ML_ENOTFOUND) {
			reason = ml_xstrdup(ml_err_msg());
			goto done;
		}
		if (name && ml_docker_valid_name(name) &&
		    ml_agent_secrets_remove(a, name) < 0)
			ml_err_clear(); /* the container is gone all the same */
	}
	removed = true;
	json_object_set_new(gone, cid, json_true());
done:
	o = item("id", id, removed, reason);
	if (c && name)
		ml_agent_set_str(o, "name", name);
	json_decref(c);
	free(path);
	free(reason);
	return o;
}

/* The image ids that containers left on the host use. */
static void images_in_use(json_t *in_use, json_t *containers, json_t *gone)
{
	json_t *c;
	size_t i;

	json_array_foreach(containers, i, c)
	{
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *img =
			json_string_value(json_object_get(c, "image_id"));

		if (img && !(id && json_object_get(gone, id)))
			json_object_set_new(in_use, img, json_true());
	}
}

static json_t *find_image(json_t *images, const char *id)
{
	json_t *v;
	size_t i;

	json_array_foreach(images, i, v)
	{
		const char *s = json_string_value(json_object_get(v, "id"));

		if (s && !strcmp(s, id))
			return v;
	}
	return NULL;
}

/* Delete one tag or image reference; absent counts as done. */
static int delete_image_ref(struct ml_docker *d, const char *ref)
{
	struct ml_buf path = ML_BUF_INIT(1024);
	int rc;

	rc = ml_buf_addstr(&path, "/images/");
	if (rc == 0)
		rc = ml_docker_url_escape(&path, ref);
	if (rc == 0)
		rc = ml_buf_addstr(&path, "?noprune=1");
	if (rc == 0)
		rc = ml_docker_request(d, "DELETE", path.data, NULL, NULL);
	ml_buf_release(&path);
	return rc == ML_ENOTFOUND ? 0 : rc;
}

static json_t *prune_image(struct ml_docker *d, const char *app, json_t *req,
			   json_t *images, json_t *in_use, bool dry,
			   json_t *gone_images)
{
	const char *id = json_string_value(json_object_get(req, "id"));
	json_t *asked = json_object_get(req, "tags");
	json_t *img, *tags, *t, *untagged = json_array(), *o;
	struct ml_buf others = ML_BUF_INIT(4096);
	char *reason = NULL;
	bool removed = false;
	size_t i;
	int rc;

	if (!ml_blob_digest_valid(id)) {
		reason = ml_xstrdup("not an image id");
		goto done;
	}
	img = find_image(images, id);
	if (!img) {
		reason = ml_xstrdup("absent");
		goto done;
	}
	if (json_object_get(in_use, id)) {
		reason = ml_xstrdup("a container uses it");
		goto done;
	}
	tags = json_object_get(img, "tags");
	json_array_foreach(tags, i, t)
	{
		const char *tag = json_string_value(t);

		if (!tag)
			continue;
		if (!is_ours(tag, app, asked)) {
			ml_buf_addf(&others, "%s%s", others.len ? ", " : "",
				    tag);
			continue;
		}
		if (!dry && (rc = delete_image_ref(d, tag)) < 0) {
			reason = ml_xasprintf("cannot remove tag '%s': %s", tag,
					      ml_err_msg());
			goto done;
		}
		json_array_append_new(untagged, json_string(tag));
	}
	if (others.len) {
		reason = ml_xasprintf("it is also tagged %s", others.data);
		goto done;
	}
	if (!dry && (rc = delete_image_ref(d, id)) < 0) {
		reason = ml_xstrdup(ml_err_msg());
		goto done;
	}
	removed = true;
	json_object_set_new(gone_images, id, json_true());
done:
	o = item("id", id, removed, reason);
	json_object_set_new(o, "untagged", untagged);
	ml_buf_release(&others);
	free(reason);
	return o;
}

/* Blobs that images left in Docker are made of. */
static void referenced_blobs(json_t *refs, json_t *images, json_t *gone)
{
	json_t *img, *l;
	size_t i, j;

	json_array_foreach(images, i, img)
	{
		const char *id = json_string_value(json_object_get(img, "id"));

		if (!id || json_object_get(gone, id))
			continue;
		json_object_set_new(refs, id, json_true());
		json_array_foreach(json_object_get(img, "layers"), j, l)
			if (json_is_string(l))
				json_object_set_new(refs, json_string_value(l),
						    json_true());
	}
}

static int op_prune(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_blobstore *s = NULL;
	struct ml_docker *d;
	json_t *want_c, *want_i, *want_b, *v, *r;
	json_t *containers = NULL, *images = NULL;
	json_t *gone_c = json_object(), *gone_i = json_object();
	json_t *in_use = json_object(), *refs = json_object();
	json_t *out_c = json_array(), *out_i = json_array(),
	       *out_b = json_array();
	const char *app;
	uint64_t blob_bytes = 0, image_bytes = 0, size;
	int64_t part;
	bool dry;
	size_t i, j;
	int rc;

	rc = ml_agent_arg_name(&app, args, OP, "app", true);
	if (rc == 0)
		rc = check_list(args, "containers", &want_c);
	if (rc == 0)
		rc = check_list(args, "images", &want_i);
	if (rc == 0)
		rc = check_list(args, "blobs", &want_b);
	if (rc < 0)
		goto out;
	dry = json_is_true(json_object_get(args, "dry_run"));
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	ml_blobstore_open(&s, a->state_dir);

	json_array_foreach(want_c, i, v)
		json_array_append_new(out_c,
				      prune_container(d, a, app,
						      json_string_value(v) ?: "",
						      dry, gone_c));

	/* what is left, asked again now that the containers went */
	rc = ml_agent_host_state(a, &containers, &images);
	if (rc < 0)
		goto out;
	images_in_use(in_use, containers, gone_c);
	json_array_foreach(want_i, i, v)
		json_array_append_new(out_i, prune_image(d, app, v, images,
							 in_use, dry, gone_i));
	referenced_blobs(refs, images, gone_i);

	/* what Docker frees: layers of removed images nothing else uses */
	json_array_foreach(images, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "id"));
		json_t *l;

		if (!id || !json_object_get(gone_i, id))
			continue;
		json_array_foreach(json_object_get(v, "layers"), j, l)
		{
			const char *dg = json_string_value(l);

			if (ml_blob_digest_valid(dg) &&
			    !json_object_get(refs, dg) &&
			    ml_blobstore_stat(s, dg, &size, &part) == 1) {
				image_bytes += size;
				json_object_set_new(refs, dg, json_false());
			}
		}
	}

	json_array_foreach(want_b, i, v)
	{
		const char *dg = json_string_value(v);
		json_t *o;
		int got;

		if (!ml_blob_digest_valid(dg)) {
			json_array_append_new(out_b, item("digest", dg, false,
							  "not a blob digest"));
			continue;
		}
		if (json_is_true(json_object_get(refs, dg))) {
			json_array_append_new(out_b,
					      item("digest", dg, false,
						   "an image on this host is "
						   "made of it"));
			continue;
		}
		got = dry ? ml_blobstore_stat(s, dg, &size, &part)
			  : ml_blobstore_remove(s, dg, &size);
		o = item("digest", dg, got == 1,
			 got < 0 ? ml_err_msg() : got == 0 ? "absent" : NULL);
		json_object_set_new(o, "size", json_integer((json_int_t)size));
		json_array_append_new(out_b, o);
		if (got == 1)
			blob_bytes += size;
	}

	r = json_object();
	json_object_set_new(r, "containers", out_c);
	json_object_set_new(r, "images", out_i);
	json_object_set_new(r, "blobs", out_b);
	json_object_set_new(r, "blob_bytes", json_integer((json_int_t)blob_bytes));
	json_object_set_new(r, "image_bytes",
			    json_integer((json_int_t)image_bytes));
	json_object_set_new(r, "dry_run", json_boolean(dry));
	out_c = out_i = out_b = NULL;
	*result = r;
	ml_err_clear();
	rc = 0;
out:
	ml_blobstore_free(s);
	json_decref(containers);
	json_decref(images);
	json_decref(gone_c);
	json_decref(gone_i);
	json_decref(in_use);
	json_decref(refs);
	json_decref(out_c);
	json_decref(out_i);
	json_decref(out_b);
	return rc;
}

const struct ml_agent_op ml_agent_op_prune = {
	.name = "prune",
	.summary = "remove an app's unused containers, images and blobs, "
		   "checking each is unused",
	.run = op_prune,
};
