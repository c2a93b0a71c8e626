#ifndef ML_IMAGE_PREPARE_H
#define ML_IMAGE_PREPARE_H

/*
 * An image made ready to deliver (orchestrator/image/prepare.c): found or
 * built through the controller's Docker Engine, its blobs filled into the
 * controller's cache. What deploy, deliver, plan, rollback and recover do
 * before they contact a host.
 */

#include <stdint.h>

struct ml_config;
struct ml_image;
struct ml_cache;

/*
 * The image of cfg's playbook: resolved (or built from cfg->commit)
 * through the local Docker Engine at docker_sock (NULL: the default
 * socket), with its blobs in the controller's cache (*cache_out, opened
 * here). Both are the caller's.
 */
int ml_image_prepare(struct ml_image **out, struct ml_cache **cache_out,
		     const struct ml_config *cfg, const char *docker_sock);

/*
 * The image a revision recorded (image_id, the config digest): looked up
 * in the local Docker Engine by id, never rebuilt, tagged on the hosts as
 * the original was (cfg's image reference, or for a built image
 * mlctl/<app>:<cfg->commit>), its blobs filled into the cache. cfg is the
 * revision's desired state. ML_ENOTFOUND-like failures name the revision
 * and say the image is not in the local Docker any more. Both outputs are
 * the caller's.
 */
int ml_image_prepare_recorded(struct ml_image **out,
			      struct ml_cache **cache_out,
			      const struct ml_config *cfg, int64_t revision,
			      const char *image_id, const char *docker_sock);

#endif
