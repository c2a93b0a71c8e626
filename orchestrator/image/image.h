#ifndef ML_IMAGE_H
#define ML_IMAGE_H

/*
 * The controller's side of image delivery: turn the playbook's image into
 * an image in the controller's Docker (looked up by reference, or built
 * from the deployed commit), and copy its blobs (config and layer tars)
 * into a content-addressed cache on disk from which they are streamed to
 * the hosts. Docker is reached through common/docker.h, git through
 * orchestrator/source; tar streams are read with libarchive, here only.
 *
 * Digests are written "sha256:" followed by 64 lowercase hex digits. An
 * image's id is the digest of its config blob; its layers are named by
 * their diffIDs, the digests of the uncompressed layer tars, which is what
 * `docker save` writes and `docker load` checks.
 */

#include <pthread.h>

#include "common/buf.h"

struct ml_docker;
struct ml_source;
struct ml_image_spec;
struct ml_io;

#define ML_DIGEST_LEN 71 /* "sha256:" and 64 hex digits */
#define ML_IMAGE_MAX_LAYERS 1000
#define ML_IMAGE_BUILD_REPO "mlctl" /* built images are mlctl/<app>:<sha> */

struct ml_image {
	char *id;	     /* "sha256:<hex>", the config's digest */
	char *config_digest; /* the same as id */
	char **layers;	     /* diffIDs, base layer first */
	size_t nlayers;
	int64_t config_size;  /* bytes; 0 until ml_cache_fill */
	int64_t *layer_sizes; /* nlayers entries; 0 until ml_cache_fill */
	char *ref;	      /* the reference resolved */
	bool built;	      /* this call built it (not reused) */
};

void ml_image_free(struct ml_image *img);

/* True for "sha256:" followed by exactly 64 lowercase hex digits. */
bool ml_digest_valid(const char *digest);

/*
 * Look up ref ("name:tag", "name", "sha256:<hex>" or an id prefix) in
 * Docker: GET /images/<ref>/json. *out is the image with its id and
 * layers (caller frees with ml_image_free). ML_ENOTFOUND "image 'x' is
 * not in the local Docker (build or pull it first)" when Docker does not
 * know it; ML_EINVALID for an empty ref or one with control characters;
 * ML_EFAIL when Docker cannot be reached or answers with something that
 * is not an image with valid digests.
 */
int ml_image_inspect(struct ml_image **out, struct ml_docker *d,
		     const char *ref);

/*
 * The playbook's image as a local image. ML_IMAGE_REF: ml_image_inspect
 * of spec->ref. ML_IMAGE_BUILD: the image tagged "mlctl/<app>:<commit>"
 * (commit: the full sha of the deployed commit in src); when that tag
 * exists and was built from the same context, Dockerfile and build args
 * (a label records their hash) it is reused and nothing is built;
 * otherwise the context directory of the commit (repository-relative) is
 * sent to Docker as a tar stream and built with the Dockerfile (a path
 * inside the context) and the build args, and the new image is tagged.
 * src and commit are only used for a build.
 *
 * Failures: ML_ENOTFOUND when the Dockerfile or the context is not in the
 * commit; ML_ESOURCE for a context Docker must not see (a submodule, a
 * symbolic link leading out of it); ML_EFAIL when the build fails, with
 * Docker's message and the last lines of the build output, escaped;
 * ML_EINVALID for an app name or commit that cannot make a tag.
 */
int ml_image_resolve(struct ml_image **out, struct ml_docker *d,
		     const struct ml_image_spec *spec, struct ml_source *src,
		     const char *commit, const char *app);

/*
 * Does a build of spec (ML_IMAGE_BUILD) from commit send the file at
 * repo_path (repository-relative) to Docker: it lies inside the context
 * and the context's .dockerignore does not leave it out? (A `COPY .` then
 * puts it in the image, so each change to it is a new image.) A
 * .dockerignore that cannot be read is the build's error.
 */
int ml_image_context_sends(bool *sends, struct ml_source *src,
			   const char *commit,
			   const struct ml_image_spec *spec,
			   const char *repo_path);

/* ---- the blob cache ---------------------------------------------------- */

struct ml_cache;

/*
 * Open (creating it, mode 0700) the cache in dir; NULL means
 * $MLCTL_CACHE_DIR, else $XDG_CACHE_HOME/mlctl, else ~/.cache/mlctl.
 * Blobs live in <dir>/blobs/sha256/<hex> (mode 0600) and are only ever
 * renamed there after their digest was checked; half-written files are in
 * <dir>/blobs/tmp and those older than a day are removed here. Several
 * processes may use one cache at once. ML_EFAIL when it cannot be made.
 */
int ml_cache_open(struct ml_cache **out, const char *dir);
void ml_cache_free(struct ml_cache *c);

/* The cache's directory. Borrowed. */
const char *ml_cache_dir(const struct ml_cache *c);

/* The file of blob digest (which need not be cached). Caller frees.
 * ML_EINVALID when digest is not a valid digest. */
int ml_cache_path(char **out, const struct ml_cache *c, const char *digest);

/* True when the blob is in the cache (a valid digest, a regular file). */
bool ml_cache_has(const struct ml_cache *c, const char *digest);

/*
 * Call fn(arg, digest, size) for every complete blob in the cache, in no
 * order, until fn returns non-zero (which is returned). An absent
 * directory is empty.
 */
int ml_cache_each(const struct ml_cache *c,
		  int (*fn)(void *arg, const char *digest, int64_t size),
		  void *arg);

/*
 * Remove a blob from the cache (prune): 1 when it was there (*size its
 * size), 0 when it was not. A delivery that has it open reads on; a later
 * one fills it again from Docker (ml_cache_fill).
 */
int ml_cache_remove(struct ml_cache *c, const char *digest, int64_t *size);

/*
 * Make sure img's config and every layer are in the cache, and fill in
 * img->config_size and img->layer_sizes. When all are there already
 * nothing is asked of Docker; otherwise the image is streamed from Docker
 * (GET /images/<id>/get, the `docker save` format) through
 * ml_cache_extract, with memory bounded whatever the image's size.
 * Fails like ml_cache_extract, or like ml_docker_stream when Docker does.
 */
int ml_cache_fill(struct ml_cache *c, struct ml_docker *d,
		  struct ml_image *img);

/*
 * Read a `docker save` archive of img from in (only in->read is used) and
 * store img's config and layers that are not cached yet. Both layouts are
 * read: Docker 20.10's (manifest.json, <hex>.json, <dir>/layer.tar) and
 * the OCI layout of Docker 25 and later (blobs/sha256/<hex>, uncompressed
 * layers). Each candidate entry is streamed to a temporary file while its
 * digest is computed, and kept only when the digest is one img expects;
 * the kept files are renamed into the cache only after the whole archive
 * was read and found complete, so a failure stores nothing.
 *
 * Every entry is checked with ml_tar_entry_check, and there may be at most
 * ML_TAR_MAX_ENTRIES. Failures: ML_EINVALID "image archive entry 'x'
 * escapes the archive root" (and the other refusals of the check);
 * ML_ETOOBIG past the limits; ML_EFAIL for a malformed tar stream or an
 * archive that lacks a blob of img, or holds it with other contents
 * ("... lacks layer sha256:..."); ML_ENOSPACE when the disk is full; a
 * failure of in->read is returned as it is.
 */
int ml_cache_extract(struct ml_cache *c, struct ml_image *img,
		     struct ml_io *in);

/* ---- tar entries ------------------------------------------------------- */

#define ML_TAR_NAME_MAX 4096	 /* bytes in an entry's name or link target */
#define ML_TAR_MAX_ENTRIES 10000 /* entries in one image archive */

enum ml_tar_type {
	ML_TAR_FILE = 1,
	ML_TAR_DIR,
	ML_TAR_SYMLINK,
	ML_TAR_HARDLINK,
	ML_TAR_OTHER, /* devices, fifos, sockets: never in an image archive */
};

/*
 * Check one entry of an image archive before anything is done with it: a
 * pure function. name must be relative, without a ".." component, at most
 * ML_TAR_NAME_MAX bytes; a symbolic link's target (read from the link's
 * directory) and a hard link's target (read from the archive root) may
 * use ".." but must stay inside the archive, and may not be absolute.
 * ML_EINVALID "image archive entry 'x' escapes the archive root" for those,
 * with other wording for an empty name, a missing link target or an
 * ML_TAR_OTHER type; ML_ETOOBIG for a name or target that is too long.
 * Names in messages are escaped.
 */
int ml_tar_entry_check(const char *name, enum ml_tar_type type,
		       const char *link_target);

/* ---- shared by image.c and cache.c only -------------------------------- */

/*
 * Run fn(arg, fd) on a thread of its own with one end of a socket pair,
 * while the caller works on the other end (*fd_out): the bridge between a
 * producer that pushes (libgit2's export, curl's write callback) and a
 * consumer that pulls (curl's read callback, libarchive). The pair is
 * bounded by the kernel's socket buffer, so memory stays small.
 * ml_pump_finish closes the caller's end (so a thread still writing gets
 * EPIPE and one reading gets EOF), waits for the thread and returns its
 * result, with its message set again in the calling thread.
 */
struct ml_pump {
	int (*fn)(void *arg, int fd);
	void *arg;
	int fd;		/* the thread's end; closed by the thread */
	int rc;		/* fn's result, valid after ml_pump_finish */
	char msg[1024]; /* fn's message when rc < 0 */
	bool started, joined;
	pthread_t thread;
};

int ml_pump_start(struct ml_pump *p, int *fd_out, int (*fn)(void *arg, int fd),
		  void *arg);
int ml_pump_finish(struct ml_pump *p, int *fd);

/*
 * Docker's streamed answers (build, import) are JSON objects, one a line.
 * ml_lines_feed cuts what arrives into lines and calls on_line for each
 * complete one; a line longer than line's maximum is dropped whole (it is
 * not JSON we need). ml_lines_flush passes on an unfinished last line.
 */
struct ml_lines {
	struct ml_buf line;
	bool skipping;
	void (*on_line)(void *ctx, const char *s, size_t n);
	void *ctx;
};

void ml_lines_feed(struct ml_lines *l, const void *buf, size_t n);
void ml_lines_flush(struct ml_lines *l);

/* Write all n bytes to the socket fd, without SIGPIPE. */
int ml_pump_write(int fd, const void *p, size_t n);

#endif
