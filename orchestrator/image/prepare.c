/*
 * Preparing the image of a deploy (see prepare.h): the Docker Engine of
 * the controller says what the image is, the cache gets its blobs. Memory
 * stays bounded whatever the image's size: ml_cache_fill streams.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/source/source.h"

/* The playbook's image, resolved or built. */
static int resolve(struct ml_image **img, struct ml_docker *d,
		   const struct ml_config *cfg)
{
	struct ml_source *src = NULL;
	int rc = 0;

	if (cfg->playbook->image.kind == ML_IMAGE_BUILD)
		rc = ml_source_open(&src, ".");
	if (rc == 0)
		rc = ml_image_resolve(img, d, &cfg->playbook->image, src,
				      cfg->commit, cfg->playbook->app);
	ml_source_free(src);
	return rc;
}

/* A revision's recorded image, found by id and tagged as the original. */
static int recorded(struct ml_image **img, struct ml_docker *d,
		    const struct ml_config *cfg, int64_t revision,
		    const char *image_id)
{
	int rc;

	rc = ml_image_inspect(img, d, image_id);
	if (rc < 0)
		return ml_err_prefix(rc,
				     "the image of revision %lld (%.19s) "
				     "is not in the local Docker any more",
				     (long long)revision, image_id);
	/* tag it on the hosts as the original was, not by its digest */
	free((*img)->ref);
	(*img)->ref =
		cfg->playbook->image.kind == ML_IMAGE_BUILD
			? ml_xasprintf("%s/%s:%s", ML_IMAGE_BUILD_REPO,
				       cfg->playbook->app,
				       cfg->commit ? cfg->commit : "unknown")
			: ml_xstrdup(cfg->playbook->image.ref);
	return 0;
}

/* Either image (image_id NULL: the playbook's), then its blobs into the
 * cache; both outputs set only on success. */
static int prepare(struct ml_image **out, struct ml_cache **cache_out,
		   const struct ml_config *cfg, const char *docker_sock,
		   int64_t revision, const char *image_id)
{
	struct ml_docker *d = NULL;
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	int rc;

	rc = ml_docker_new(&d, docker_sock ? docker_sock : ML_DOCKER_SOCK);
	if (rc < 0)
		goto out;
	rc = image_id ? recorded(&img, d, cfg, revision, image_id)
		      : resolve(&img, d, cfg);
	if (rc < 0)
		goto out;
	rc = ml_cache_open(&cache, NULL);
	if (rc == 0)
		rc = ml_cache_fill(cache, d, img);
	if (rc < 0)
		goto out;
	*out = img;
	*cache_out = cache;
	img = NULL;
	cache = NULL;
out:
	ml_image_free(img);
	ml_cache_free(cache);
	ml_docker_free(d);
	return rc;
}

int ml_image_prepare(struct ml_image **out, struct ml_cache **cache_out,
		     const struct ml_config *cfg, const char *docker_sock)
{
	return prepare(out, cache_out, cfg, docker_sock, 0, NULL);
}

int ml_image_prepare_recorded(struct ml_image **out,
			      struct ml_cache **cache_out,
			      const struct ml_config *cfg, int64_t revision,
			      const char *image_id, const char *docker_sock)
{
	return prepare(out, cache_out, cfg, docker_sock, revision, image_id);
}
