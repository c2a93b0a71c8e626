#ifndef ML_AGENT_BLOBSTORE_H
#define ML_AGENT_BLOBSTORE_H

/*
 * The agent's content-addressed blob store: image layers (uncompressed
 * layer tars, named by Docker's diffID) and image configs (named by the
 * image id), each named by "sha256:<64 hex>" of its uncompressed bytes.
 *
 *	<state>/blobs/sha256/<hex>	a complete, verified blob (0600)
 *	<state>/blobs/tmp/<hex>.part	a blob being received (0600)
 *
 * Directories are created 0700 on the first put. A blob appears under
 * sha256/ only by rename(2) after its size and digest were checked and it
 * was fsync'ed, so a file there is always complete; a .part holds a prefix
 * of the blob's bytes and is what a later put resumes from. One put at a
 * time per blob: the .part is locked (flock) while a put writes it.
 *
 * Writing goes through struct ml_blob_put:
 *
 *	ml_blob_put_new(&p, store, digest, size, offset, zstd);
 *	rc = ml_blob_put_begin(p);		checks, opens, locks
 *	rc = ml_blob_put_write(p, bytes, n);	as the bytes arrive
 *	rc = ml_blob_put_finish(p);		verify, fsync, rename
 *	ml_blob_put_free(p);			keeps a .part that may resume
 *
 * Memory per put is constant: a zstd output buffer (ZSTD_DStreamOutSize(),
 * 128 KiB), a 64 KiB read buffer when resuming, and the zstd window, at
 * most 2^ML_BLOB_ZSTD_WINDOW_LOG_MAX bytes (what the sender's settings
 * need: 2 MiB at level 3, 8 MiB at level 19).
 */

#include "common/ml.h"

#include <time.h>

#define ML_BLOB_DIGEST_PREFIX "sha256:"
#define ML_BLOB_DIGEST_LEN 71  /* "sha256:" and 64 hex digits */
#define ML_BLOB_DIGEST_SIZE 72 /* with the NUL */
#define ML_BLOB_SPACE_MARGIN ((uint64_t)64 << 20)
#define ML_BLOB_ZSTD_WINDOW_LOG_MAX 27	     /* zstd's own default limit */
#define ML_BLOB_MAX_SIZE ((uint64_t)1 << 53) /* exact in a JSON number */

/* Error words for failures the controller handles specially. */
#define ML_BLOB_ERR_CORRUPT "corrupt"	    /* digest mismatch (ML_EFAIL) */
#define ML_BLOB_ERR_BAD_OFFSET "bad-offset" /* offset != .part (ML_EPROTO) */

struct ml_blobstore;
struct ml_blob_put;

struct ml_blob_info {
	char digest[ML_BLOB_DIGEST_SIZE];
	uint64_t size;
	time_t mtime;
	bool partial; /* a .part in tmp/, size = bytes received */
};

/* True when s is "sha256:" and 64 lowercase hex digits. */
bool ml_blob_digest_valid(const char *s);

/*
 * A store under state_dir (copied). Nothing is touched on disk. The free
 * space kept beyond each put is $MLCTL_BLOB_SPACE_MARGIN bytes when set
 * to a number, else ML_BLOB_SPACE_MARGIN. Never fails; free with
 * ml_blobstore_free.
 */
void ml_blobstore_open(struct ml_blobstore **out, const char *state_dir);
void ml_blobstore_free(struct ml_blobstore *s);

/* The directory of complete blobs, "<state>/blobs/sha256". Borrowed. */
const char *ml_blobstore_dir(const struct ml_blobstore *s);

/*
 * Whether digest (valid, see ml_blob_digest_valid) is stored. Returns 1
 * when its final file exists (*size its size), 0 when it does not; then
 * *partial is the size of its .part, or -1 when there is none. ML_EFAIL
 * when stat fails for another reason than absence.
 */
int ml_blobstore_stat(struct ml_blobstore *s, const char *digest,
		      uint64_t *size, int64_t *partial);

/*
 * Open digest for reading (O_RDONLY | O_CLOEXEC): its final file when it
 * is stored (*complete true), else its .part (*complete false), which a
 * put may still be appending to; the open fd stays valid when the put
 * renames the .part into place, and st_nlink of a .part a failed put
 * deleted drops to 0. Returns 1 with *fd set, 0 when neither exists,
 * ML_EFAIL for another error.
 */
int ml_blobstore_open_read(struct ml_blobstore *s, const char *digest,
			   int *fd, bool *complete);

/* Append the path of digest's final file to out. */
int ml_blobstore_path(struct ml_buf *out, const struct ml_blobstore *s,
		      const char *digest);

/*
 * Every blob in the store, complete ones and .part files, in no order;
 * *out (free() it) has *n entries, NULL when none. Names that are not
 * blobs are skipped. An absent store is empty, not an error.
 */
int ml_blobstore_list(struct ml_blob_info **out, size_t *n,
		      struct ml_blobstore *s);

/*
 * Remove digest's complete blob (prune). Returns 1 when it was there (*size
 * its size), 0 when it was not; a .part of it is never touched, so a put in
 * progress goes on. The directory is fsync'ed after the unlink. ML_EINVALID
 * for a bad digest, ML_EFAIL when the file cannot be removed. Whether the
 * blob is still needed is the caller's question (op_prune.c).
 */
int ml_blobstore_remove(struct ml_blobstore *s, const char *digest,
			uint64_t *size);

/*
 * A put of digest, size bytes in all, the data starting at offset, the
 * bytes given to ml_blob_put_write being zstd-compressed (one or more
 * frames) or not. Arguments are checked by ml_blob_put_begin. Never fails.
 */
void ml_blob_put_new(struct ml_blob_put **out, struct ml_blobstore *s,
		     const char *digest, uint64_t size, uint64_t offset,
		     bool zstd);

/*
 * Check and prepare: creates the store's directories, returns at once when
 * the blob is already stored (ml_blob_put_exists() says so; writes are
 * then refused), checks free space for size - offset plus the margin
 * (ML_ENOSPACE "need X, have Y on PATH"), creates or opens the .part and
 * locks it (ML_ELOCKED while another put holds it), and checks that the
 * .part has exactly offset bytes (ML_EPROTO, word "bad-offset", telling
 * the actual size). When resuming, the existing bytes are hashed first.
 * ML_EINVALID for a bad digest or offset > size.
 */
int ml_blob_put_begin(struct ml_blob_put *p);

/*
 * Append n bytes as received (decompressed first with zstd). Bytes beyond
 * the declared size (ML_EINVALID), bad zstd data (ML_EINVALID), a full
 * disk (ML_ENOSPACE) or another write error (ML_EFAIL) delete the .part;
 * after any failure the put is dead and later calls fail.
 */
int ml_blob_put_write(struct ml_blob_put *p, const void *data, size_t n);

/*
 * End of data: checks that exactly size bytes came (else ML_EINVALID and
 * the .part is kept, as a prefix to resume from) and a zstd stream ended
 * on a frame boundary, fsyncs, checks the digest (a mismatch is ML_EFAIL
 * with word "corrupt" and deletes the .part), renames the .part into
 * sha256/ and fsyncs the directory.
 */
int ml_blob_put_finish(struct ml_blob_put *p);

/* True when begin found the blob already stored. */
bool ml_blob_put_exists(const struct ml_blob_put *p);

/* Bytes stored so far (offset plus what was written). */
uint64_t ml_blob_put_received(const struct ml_blob_put *p);

/* The error word for the last failure (ML_BLOB_ERR_*), or NULL. */
const char *ml_blob_put_word(const struct ml_blob_put *p);

/* Close and free; an unfinished .part stays for a later resume. */
void ml_blob_put_free(struct ml_blob_put *p);

#endif
