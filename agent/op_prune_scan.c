/*
 * prune_scan: what this host holds that prune decides about: every
 * container (any app, mlctl's or not: all of them keep their images), every
 * Docker image with its tags and layers, and every blob of the store.
 *
 *	args:   {} (none)
 *	result: {"containers": [{"id","name","app","image_id","revision",
 *				 "running"}],
 *		 "images": [{"id","tags":[..],"layers":[diffIDs],"size"}],
 *		 "blobs": [{"digest","size","partial"}]}
 *
 * Only reads. "running" is true for the states Docker will not let go of
 * a container's image for: running, restarting, paused. Images are
 * GET /images/json and one GET /images/<id>/json each (for RootFS.Layers),
 * at most MAX_IMAGES; the blobs list is the store's directory listing.
 * ml_agent_host_state is shared with op_prune.c, which asks again right
 * before it removes anything.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "common/docker.h"

#define MAX_IMAGES 2000
#define MAX_CONTAINERS 5000

static bool state_holds(const char *state)
{
	return state && (!strcmp(state, "running") ||
			 !strcmp(state, "restarting") ||
			 !strcmp(state, "paused"));
}

static json_t *container_entry(json_t *c)
{
	json_t *e = json_object(), *names = json_object_get(c, "Names");
	const char *name = json_string_value(json_array_get(names, 0));

	if (name && *name == '/')
		name++;
	ml_agent_set_str(e, "id", json_string_value(json_object_get(c, "Id")));
	ml_agent_set_str(e, "name", name);
	ml_agent_set_str(e, "image_id",
			 json_string_value(json_object_get(c, "ImageID")));
	ml_agent_set_labels(e, json_object_get(c, "Labels"));
	json_object_del(e, "labels");
	json_object_del(e, "slot");
	json_object_del(e, "commit");
	json_object_set_new(e, "running",
			    json_boolean(state_holds(json_string_value(
				    json_object_get(c, "State")))));
	return e;
}

static json_t *tag_list(json_t *repo_tags)
{
	json_t *tags = json_array(), *t;
	size_t i;

	json_array_foreach(repo_tags, i, t)
	{
		const char *s = json_string_value(t);

		if (s && strcmp(s, "<none>:<none>"))
			json_array_append_new(tags, json_string(s));
	}
	return tags;
}

int ml_agent_host_state(struct ml_agent *a, json_t **containers,
			json_t **images)
{
	struct ml_docker *d;
	json_t *cs = NULL, *is = NULL, *info = NULL, *v;
	char *path = NULL;
	size_t i;
	int rc;

	*containers = NULL;
	*images = NULL;
	rc = ml_agent_docker(a, &d);
	if (rc == 0)
		rc = ml_docker_get(d, "/containers/json?all=1", &cs);
	if (rc == 0)
		rc = ml_docker_get(d, "/images/json", &is);
	if (rc < 0)
		goto out;
	if (!json_is_array(cs) || !json_is_array(is) ||
	    json_array_size(cs) > MAX_CONTAINERS ||
	    json_array_size(is) > MAX_IMAGES) {
		rc = ml_err_set(ML_EFAIL, "docker: the container or image list "
					  "is not a list, or longer than "
					  "prune handles (%d images, %d "
					  "containers)",
				MAX_IMAGES, MAX_CONTAINERS);
		goto out;
	}
	*containers = json_array();
	json_array_foreach(cs, i, v)
		if (json_is_object(v))
			json_array_append_new(*containers, container_entry(v));
	*images = json_array();
	json_array_foreach(is, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "Id"));
		json_t *e, *layers;

		if (!ml_blob_digest_valid(id))
			continue; /* not a content-addressed image: ignore */
		free(path);
		path = ml_xasprintf("/images/%s/json", id);
		json_decref(info);
		info = NULL;
		rc = ml_docker_get(d, path, &info);
		if (rc == ML_ENOTFOUND)
			continue; /* removed meanwhile */
		if (rc < 0)
			goto out;
		layers = json_object_get(json_object_get(info, "RootFS"),
					 "Layers");
		e = json_object();
		ml_agent_set_str(e, "id", id);
		json_object_set_new(e, "tags",
				    tag_list(json_object_get(v, "RepoTags")));
		json_object_set(e, "layers",
				json_is_array(layers) ? layers : json_array());
		ml_agent_set_int(e, "size", json_object_get(v, "Size"));
		json_array_append_new(*images, e);
	}
	rc = 0;
out:
	if (rc < 0) {
		json_decref(*containers);
		json_decref(*images);
		*containers = *images = NULL;
	}
	json_decref(cs);
	json_decref(is);
	json_decref(info);
	free(path);
	return rc;
}

static int op_prune_scan(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_blobstore *s = NULL;
	struct ml_blob_info *bi = NULL;
	json_t *cs = NULL, *is = NULL, *bs, *r;
	size_t n = 0, i;
	int rc;

	ML_UNUSED(args);
	rc = ml_agent_host_state(a, &cs, &is);
	if (rc < 0)
		return rc;
	ml_blobstore_open(&s, a->state_dir);
	rc = ml_blobstore_list(&bi, &n, s);
	ml_blobstore_free(s);
	if (rc < 0) {
		json_decref(cs);
		json_decref(is);
		return rc;
	}
	bs = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(
			bs, json_pack("{s:s,s:I,s:b}", "digest", bi[i].digest,
				      "size", (json_int_t)bi[i].size,
				      "partial", bi[i].partial));
	free(bi);
	r = json_object();
	json_object_set_new(r, "containers", cs);
	json_object_set_new(r, "images", is);
	json_object_set_new(r, "blobs", bs);
	*result = r;
	return 0;
}

const struct ml_agent_op ml_agent_op_prune_scan = {
	.name = "prune_scan",
	.summary = "every container, image and stored blob, for prune",
	.run = op_prune_scan,
};
