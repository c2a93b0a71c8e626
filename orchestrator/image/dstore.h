/*
 * Reading image blobs straight from the Docker daemon's own store (its
 * data root, overlay2 driver), when this machine can read it: the way
 * around `docker save`, which always exports every layer of an image, so
 * that a change to a small layer costs that layer. Used by ml_cache_fill
 * (cache.c) before it falls back to the export; see dstore.c.
 */
#ifndef ML_IMAGE_DSTORE_H
#define ML_IMAGE_DSTORE_H

#include "orchestrator/image/image.h"

struct ml_docker;
struct ml_dstore;

/* Where the bytes of a blob go: 0 ok, negative to stop (its code). */
typedef int (*ml_dstore_put_fn)(void *ctx, const void *p, size_t n);

/*
 * Open the store of the daemon d talks to: GET /info's DockerRootDir and
 * Driver. ML_ENOTFOUND (with the reason as the message) when the driver is
 * not overlay2 or the root's image database cannot be read from here (a
 * remote daemon, a user without the permission); callers then use the
 * export. *out is freed with ml_dstore_free.
 */
int ml_dstore_open(struct ml_dstore **out, struct ml_docker *d);
/* The same with the data root given (overlay2 assumed); for tests. */
int ml_dstore_open_root(struct ml_dstore **out, const char *root);
void ml_dstore_free(struct ml_dstore *s);

/*
 * Write the bytes of the blob whose digest is img's config (i == 0) or
 * layer i - 1 to put, 64 KiB at a time: the config file of the image
 * database, or the layer's tar rebuilt from the layer database's tar-split
 * record and the files of its overlay2 diff directory, as Docker itself
 * rebuilds it for `docker save`. The bytes are not checked here: the
 * caller hashes them and keeps them only when the digest is the one
 * wanted. ML_ENOTFOUND when the store does not hold the blob, ML_EFAIL
 * when it cannot be read or its record is malformed, or put's code.
 */
int ml_dstore_blob(struct ml_dstore *s, const struct ml_image *img, size_t i,
		   ml_dstore_put_fn put, void *ctx);

/*
 * The chain ID of layers[0..i] (Docker's name for a stack of layers in
 * its layer database): layers[0] for i == 0, else the sha256 of
 * "<chain of 0..i-1> <layers[i]>". out holds "sha256:" and 64 hex
 * digits. Pure; the layers must be valid digests.
 */
void ml_image_chain_id(char out[ML_DIGEST_LEN + 1], char *const *layers,
		       size_t i);

/*
 * Decode the standard base64 (with padding) of s[0..n) into out (at
 * least n / 4 * 3 bytes). Returns the decoded length, or -1 for a
 * malformed input. Pure.
 */
ssize_t ml_base64_decode(unsigned char *out, const char *s, size_t n);

#endif
