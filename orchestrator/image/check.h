#ifndef ML_IMAGE_CHECK_H
#define ML_IMAGE_CHECK_H

/*
 * `mlctl image check`: what a reviewer looks for in a model API's image,
 * as a pure function of Docker's answers (no I/O), so it is tested with
 * JSON documents.
 */

#include <jansson.h>
#include <stdint.h>

#define ML_CHECK_BIG_LAYER ((int64_t)1 << 20) /* a changed layer worth a word */

struct ml_image_check_in {
	const char *ref;	 /* what was asked for, for the report */
	const json_t *inspect;	 /* GET /images/<ref>/json */
	const json_t *history;	 /* GET /images/<ref>/history, newest first */
	int port;		 /* the playbook's port, 0: unknown */
	const json_t *deployed_layers; /* diffIDs deployed now, or NULL */
	int64_t deployed_revision;     /* their revision, 0: none */
	/* the desired state's files a build sends to Docker (the context
	 * holds them and .dockerignore does not leave them out), or NULL:
	 * NULL-terminated repository paths */
	const char *const *state_in_context;
};

/*
 * The report, a new JSON object (caller's): "image", "size" and
 * "size_human", "user", "init", "exposed" (ports), "layers" (oldest
 * first: "digest", "size", "created_by", "changed" true/false, or null
 * when nothing is deployed) and "warnings" (strings; names only, never
 * the value of an ENV or ARG). Text from the image is escaped.
 * ML_EINVALID when inspect is not an image (no RootFS.Layers).
 */
int ml_image_check_run(json_t **out, const struct ml_image_check_in *in);

/* True when an ENV or ARG name looks like it holds a secret. */
bool ml_image_secret_name(const char *name, size_t len);

#endif
