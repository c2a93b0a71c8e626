/*
 * The content-addressed blob store of the agent (see blobstore.h for the
 * layout and the put sequence).
 *
 * Invariants: a file in sha256/ is complete and verified: it only ever
 * arrives there by rename(2) of a .part whose size and SHA-256 were checked
 * after fsync, followed by an fsync of the directory. A .part is only
 * written while its put holds flock(LOCK_EX) on it, and only by appending
 * (O_APPEND), so it is always a prefix of what the sender sent; the running
 * hash covers exactly the bytes in the file (when resuming, the existing
 * bytes are hashed first). A failure that leaves the .part's content in
 * doubt (bytes past the size, bad zstd data, a failed write, a digest
 * mismatch) deletes it; a put that just stops (end of stream) keeps it.
 *
 * Sizes: a put holds one zstd decoding context (its window at most
 * 2^ML_BLOB_ZSTD_WINDOW_LOG_MAX), one output buffer of ZSTD_DStreamOutSize()
 * and, while hashing a partial file, one 64 KiB read buffer. Blobs are up to
 * ML_BLOB_MAX_SIZE bytes; digests are 71 characters, file names 64 or 69.
 */
#include "common/ml.h"
#include "common/sha256.h"
#include "agent/blobstore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zstd.h>

#define HEX_LEN 64
#define PART_SUFFIX ".part"
#define READ_CHUNK ((size_t)64 << 10)
#define BEGIN_AGAIN 1 /* begin_once lost a race: try again */
#define BEGIN_TRIES 3

struct ml_blobstore {
	char *state_dir;
	char *root; /* <state>/blobs */
	char *dir;  /* <state>/blobs/sha256 */
	char *tmp;  /* <state>/blobs/tmp */
	uint64_t margin;
};

struct ml_blob_put {
	struct ml_blobstore *s;
	char digest[ML_BLOB_DIGEST_SIZE];
	uint64_t size, offset, received;
	bool zstd, begun, exists, dead, frame_open;
	const char *word;
	char *part, *final;
	int fd;
	struct ml_sha256 *h;
	ZSTD_DStream *zd;
	void *zout;
	size_t zout_size;
};

bool ml_blob_digest_valid(const char *s)
{
	size_t i, n = strlen(ML_BLOB_DIGEST_PREFIX);

	if (!s || strncmp(s, ML_BLOB_DIGEST_PREFIX, n))
		return false;
	for (i = 0; i < HEX_LEN; i++) {
		char c = s[n + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return s[n + i] == '\0';
}

static const char *hex_of(const char *digest)
{
	return digest + strlen(ML_BLOB_DIGEST_PREFIX);
}

void ml_blobstore_open(struct ml_blobstore **out, const char *state_dir)
{
	struct ml_blobstore *s = ml_xcalloc(1, sizeof(*s));
	const char *m = getenv("MLCTL_BLOB_SPACE_MARGIN");
	unsigned long long v;
	char *end;

	s->state_dir = ml_xstrdup(state_dir);
	s->root = ml_xasprintf("%s/blobs", state_dir);
	s->dir = ml_xasprintf("%s/sha256", s->root);
	s->tmp = ml_xasprintf("%s/tmp", s->root);
	s->margin = ML_BLOB_SPACE_MARGIN;
	if (m && *m >= '0' && *m <= '9') {
		errno = 0;
		v = strtoull(m, &end, 10);
		if (!errno && !*end)
			s->margin = v;
	}
	*out = s;
}

void ml_blobstore_free(struct ml_blobstore *s)
{
	if (!s)
		return;
	free(s->state_dir);
	free(s->root);
	free(s->dir);
	free(s->tmp);
	free(s);
}

const char *ml_blobstore_dir(const struct ml_blobstore *s)
{
	return s->dir;
}

int ml_blobstore_path(struct ml_buf *out, const struct ml_blobstore *s,
		      const char *digest)
{
	if (!ml_blob_digest_valid(digest))
		BUG("blob path of an invalid digest");
	return ml_buf_addf(out, "%s/%s", s->dir, hex_of(digest));
}

static char *final_path(const struct ml_blobstore *s, const char *digest)
{
	return ml_xasprintf("%s/%s", s->dir, hex_of(digest));
}

static char *part_path(const struct ml_blobstore *s, const char *digest)
{
	return ml_xasprintf("%s/%s" PART_SUFFIX, s->tmp, hex_of(digest));
}

int ml_blobstore_stat(struct ml_blobstore *s, const char *digest,
		      uint64_t *size, int64_t *partial)
{
	char *fin = final_path(s, digest), *part = part_path(s, digest);
	struct stat st;
	int rc;

	*size = 0;
	*partial = -1;
	if (!stat(fin, &st)) {
		*size = (uint64_t)st.st_size;
		rc = 1;
		goto out;
	}
	if (errno != ENOENT && errno != ENOTDIR) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'", fin);
		goto out;
	}
	if (!stat(part, &st)) {
		*partial = (int64_t)st.st_size;
	} else if (errno != ENOENT && errno != ENOTDIR) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'", part);
		goto out;
	}
	rc = 0;
out:
	free(fin);
	free(part);
	return rc;
}

int ml_blobstore_open_read(struct ml_blobstore *s, const char *digest, int *fd,
			   bool *complete)
{
	char *path[2] = {final_path(s, digest), part_path(s, digest)};
	int i, rc = 0;

	*fd = -1;
	*complete = false;
	/* final first: a put that finishes between the two opens renames
	 * the .part away, and the next call finds the final file */
	for (i = 0; i < 2; i++) {
		*fd = open(path[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (*fd >= 0) {
			*complete = i == 0;
			rc = 1;
			break;
		}
		if (errno != ENOENT && errno != ENOTDIR) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
					  path[i]);
			break;
		}
	}
	free(path[0]);
	free(path[1]);
	return rc;
}

/* Add the blobs in dir whose names are HEX (or HEX.part) to the list. */
static int list_dir(struct ml_blob_info **v, size_t *n, size_t *cap,
		    const char *dir, bool partial)
{
	struct ml_buf path = ML_BUF_INIT(4096);
	struct ml_blob_info *bi;
	struct dirent *de;
	struct stat st;
	size_t len;
	DIR *d;
	int rc = 0;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return ml_err_errno(ML_EFAIL, errno, "cannot read '%s'", dir);
	}
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (len != HEX_LEN + (partial ? strlen(PART_SUFFIX) : 0))
			continue;
		if (partial && strcmp(de->d_name + HEX_LEN, PART_SUFFIX))
			continue;
		ml_buf_reset(&path);
		ml_buf_addf(&path, ML_BLOB_DIGEST_PREFIX "%.*s", HEX_LEN,
			    de->d_name);
		if (!ml_blob_digest_valid(path.data))
			continue;
		ML_GROW(*v, *n + 1, *cap);
		bi = &(*v)[*n];
		memset(bi, 0, sizeof(*bi));
		memcpy(bi->digest, path.data, ML_BLOB_DIGEST_LEN);
		ml_buf_reset(&path);
		ml_buf_addf(&path, "%s/%s", dir, de->d_name);
		if (stat(path.data, &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* vanished meanwhile, or not a file */
		bi->size = (uint64_t)st.st_size;
		bi->mtime = st.st_mtime;
		bi->partial = partial;
		(*n)++;
	}
	closedir(d);
	ml_buf_release(&path);
	return rc;
}

int ml_blobstore_list(struct ml_blob_info **out, size_t *n,
		      struct ml_blobstore *s)
{
	struct ml_blob_info *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	rc = list_dir(&v, &cnt, &cap, s->dir, false);
	if (rc < 0)
		goto out;
	rc = list_dir(&v, &cnt, &cap, s->tmp, true);
	if (rc < 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;
out:
	free(v);
	return rc;
}

static int make_dir(const char *path)
{
	if (!mkdir(path, 0700) || errno == EEXIST)
		return 0;
	return ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL, errno,
			    "cannot create the directory '%s'", path);
}

static int make_dirs(struct ml_blobstore *s)
{
	int rc;

	rc = make_dir(s->state_dir);
	if (!rc)
		rc = make_dir(s->root);
	if (!rc)
		rc = make_dir(s->dir);
	if (!rc)
		rc = make_dir(s->tmp);
	return rc;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", path);
	if (fsync(fd) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot sync '%s'", path);
	close(fd);
	return rc;
}

void ml_blob_put_new(struct ml_blob_put **out, struct ml_blobstore *s,
		     const char *digest, uint64_t size, uint64_t offset,
		     bool zstd)
{
	struct ml_blob_put *p = ml_xcalloc(1, sizeof(*p));

	p->s = s;
	snprintf(p->digest, sizeof(p->digest), "%s", digest ? digest : "");
	p->size = size;
	p->offset = offset;
	p->zstd = zstd;
	p->fd = -1;
	*out = p;
}

/* Mark the put dead; with drop, close and delete its .part. */
static int put_fail(struct ml_blob_put *p, bool drop, const char *word, int rc)
{
	p->dead = true;
	p->word = word;
	if (drop && p->fd >= 0) {
		/* unlink while still holding the lock, then let it go */
		unlink(p->part);
		close(p->fd);
		p->fd = -1;
	}
	return rc;
}

static int check_space(struct ml_blob_put *p)
{
	struct statvfs sv;
	uint64_t have, need;

	if (statvfs(p->s->tmp, &sv) < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot measure free "
				    "space on '%s'",
				    p->s->tmp);
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	need = p->size - p->offset + p->s->margin;
	if (have < need)
		return ml_err_set(ML_ENOSPACE,
				  "not enough disk space for %s: need "
				  "%" PRIu64 " bytes (%" PRIu64 " to receive "
				  "and %" PRIu64 " to keep free), have "
				  "%" PRIu64 " on '%s'",
				  p->digest, need, p->size - p->offset,
				  p->s->margin, have, p->s->tmp);
	return 0;
}

/* Feed the bytes already in the .part to the hash. */
static int hash_existing(struct ml_blob_put *p)
{
	unsigned char *buf = ml_xmalloc(READ_CHUNK);
	uint64_t off = 0;
	ssize_t r;
	int rc = 0;

	while (off < p->offset) {
		size_t want = p->offset - off < READ_CHUNK
				      ? (size_t)(p->offset - off)
				      : READ_CHUNK;

		r = pread(p->fd, buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = ml_err_errno(ML_EFAIL, r < 0 ? errno : EIO,
					  "cannot read '%s'", p->part);
			break;
		}
		ml_sha256_update(p->h, buf, (size_t)r);
		off += (uint64_t)r;
	}
	free(buf);
	return rc;
}

/* ml_blob_put_begin once: 0, a failure, or BEGIN_AGAIN after a race. */
static int begin_once(struct ml_blob_put *p)
{
	struct stat st, pst;
	bool gone;
	size_t zr;
	int rc;

	if (!ml_blob_digest_valid(p->digest))
		return put_fail(p, false, NULL,
				ml_err_set(ML_EINVALID,
					   "'%s' is not a blob digest "
					   "(sha256: and 64 lowercase hex "
					   "digits)",
					   p->digest));
	if (p->size > ML_BLOB_MAX_SIZE || p->offset > p->size)
		return put_fail(p, false, NULL,
				ml_err_set(ML_EINVALID,
					   "%s: offset %" PRIu64 " is past "
					   "the size %" PRIu64,
					   p->digest, p->offset, p->size));
	if (!p->final)
		p->final = final_path(p->s, p->digest);
	if (!p->part)
		p->part = part_path(p->s, p->digest);
	rc = make_dirs(p->s);
	if (rc < 0)
		return put_fail(p, false, NULL, rc);
	if (!stat(p->final, &st)) {
		if ((uint64_t)st.st_size != p->size)
			return put_fail(p, false, NULL,
					ml_err_set(ML_EINVALID,
						   "%s is stored with %" PRIu64
						   " bytes, not %" PRIu64,
						   p->digest,
						   (uint64_t)st.st_size,
						   p->size));
		p->exists = true;
		p->received = p->size;
		return 0;
	}
	rc = check_space(p);
	if (rc < 0)
		return put_fail(p, false, NULL, rc);

	p->fd = open(p->part, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (p->fd < 0 && errno == ENOENT && p->offset == 0)
		p->fd = open(p->part,
			     O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
			     0600);
	if (p->fd < 0 && errno == ENOENT)
		return put_fail(p, false, ML_BLOB_ERR_BAD_OFFSET,
				ml_err_set(ML_EPROTO,
					   "%s: offset %" PRIu64 " does not "
					   "match the 0 bytes received so far",
					   p->digest, p->offset));
	if (p->fd < 0)
		return put_fail(p, false, NULL,
				ml_err_errno(errno == EEXIST   ? ML_ELOCKED
					     : errno == ENOSPC ? ML_ENOSPACE
							       : ML_EFAIL,
					     errno, "cannot open '%s'",
					     p->part));
	if (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK
			     ? ml_err_set(ML_ELOCKED,
					  "another transfer of %s is in "
					  "progress",
					  p->digest)
			     : ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'",
					    p->part);
		close(p->fd);
		p->fd = -1;
		return put_fail(p, false, NULL, rc);
	}
	if (fstat(p->fd, &st) < 0)
		return put_fail(p, false, NULL,
				ml_err_errno(ML_EFAIL, errno,
					     "cannot stat '%s'", p->part));
	gone = stat(p->part, &pst) < 0;
	if (gone && errno != ENOENT)
		return put_fail(p, false, NULL,
				ml_err_errno(ML_EFAIL, errno,
					     "cannot stat '%s'", p->part));
	if (gone || pst.st_ino != st.st_ino || pst.st_dev != st.st_dev) {
		/*
		 * Between our open and our lock, the put before us renamed
		 * the file into sha256/ or deleted it: what we hold is no
		 * longer the .part. Start over, which finds the blob stored
		 * or makes a new .part.
		 */
		close(p->fd);
		p->fd = -1;
		return BEGIN_AGAIN;
	}
	if ((uint64_t)st.st_size != p->offset) {
		rc = ml_err_set(ML_EPROTO,
				"%s: offset %" PRIu64 " does not match the "
				"%" PRIu64 " bytes received so far",
				p->digest, p->offset, (uint64_t)st.st_size);
		close(p->fd);
		p->fd = -1;
		return put_fail(p, false, ML_BLOB_ERR_BAD_OFFSET, rc);
	}
	p->h = ml_sha256_new();
	rc = hash_existing(p);
	if (rc < 0)
		return put_fail(p, false, NULL, rc);
	p->received = p->offset;
	if (p->zstd) {
		p->zd = ZSTD_createDStream();
		if (!p->zd)
			BUG("out of memory for a zstd context");
		zr = ZSTD_DCtx_setParameter(p->zd, ZSTD_d_windowLogMax,
					    ML_BLOB_ZSTD_WINDOW_LOG_MAX);
		if (ZSTD_isError(zr))
			BUG("zstd: %s", ZSTD_getErrorName(zr));
		p->zout_size = ZSTD_DStreamOutSize();
		p->zout = ml_xmalloc(p->zout_size);
	}
	return 0;
}

int ml_blob_put_begin(struct ml_blob_put *p)
{
	int rc, tries;

	if (p->begun)
		BUG("blob put begun twice");
	p->begun = true;
	for (tries = 0; tries < BEGIN_TRIES; tries++) {
		rc = begin_once(p);
		if (rc != BEGIN_AGAIN)
			return rc;
	}
	return put_fail(p, false, NULL,
			ml_err_set(ML_ELOCKED,
				   "%s: other transfers keep replacing its "
				   "partial file",
				   p->digest));
}

/* Append plain bytes to the .part, hashing them. */
static int append(struct ml_blob_put *p, const void *data, size_t n)
{
	const char *q = data;
	ssize_t w;

	if (n > p->size - p->received)
		return put_fail(p, true, NULL,
				ml_err_set(ML_EINVALID,
					   "%s: more bytes than the declared "
					   "size of %" PRIu64,
					   p->digest, p->size));
	ml_sha256_update(p->h, data, n);
	while (n) {
		w = write(p->fd, q, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
			return put_fail(p, true, NULL,
					ml_err_errno(ML_ENOSPACE, errno,
						     "cannot write '%s' "
						     "(%" PRIu64 " of "
						     "%" PRIu64 " bytes "
						     "received)",
						     p->part, p->received,
						     p->size));
		if (w <= 0)
			return put_fail(
				p, true, NULL,
				ml_err_errno(ML_EFAIL, w < 0 ? errno : EIO,
					     "cannot write '%s'", p->part));
		q += w;
		n -= (size_t)w;
		p->received += (uint64_t)w;
	}
	return 0;
}

int ml_blob_put_write(struct ml_blob_put *p, const void *data, size_t n)
{
	ZSTD_inBuffer in = {data, n, 0};
	ZSTD_outBuffer o;
	size_t zr;
	int rc;

	if (!p->begun || p->dead || p->exists)
		return ml_err_set(ML_EFAIL, "%s: the put is not open",
				  p->digest);
	if (!p->zstd)
		return append(p, data, n);
	for (;;) {
		o.dst = p->zout;
		o.size = p->zout_size;
		o.pos = 0;
		zr = ZSTD_decompressStream(p->zd, &o, &in);
		if (ZSTD_isError(zr))
			return put_fail(p, true, ML_BLOB_ERR_CORRUPT,
					ml_err_set(ML_EFAIL,
						   "%s: bad zstd data after "
						   "%" PRIu64 " bytes: %s",
						   p->digest, p->received,
						   ZSTD_getErrorName(zr)));
		p->frame_open = zr != 0;
		if (o.pos) {
			rc = append(p, o.dst, o.pos);
			if (rc < 0)
				return rc;
		}
		/*
		 * All input taken and either the output not full (nothing
		 * pending) or a frame just ended (calling again would only
		 * open the next frame, which is not there yet).
		 */
		if (in.pos == in.size && (o.pos < o.size || zr == 0))
			break;
	}
	return 0;
}

int ml_blob_put_finish(struct ml_blob_put *p)
{
	char hex[ML_SHA256_HEX];
	int rc;

	if (!p->begun || p->dead)
		return ml_err_set(ML_EFAIL, "%s: the put is not open",
				  p->digest);
	if (p->exists)
		return 0;
	if (p->frame_open) {
		p->dead = true;
		return ml_err_set(ML_EINVALID,
				  "%s: the zstd stream ends inside a frame "
				  "after %" PRIu64 " bytes",
				  p->digest, p->received);
	}
	if (p->received != p->size) {
		p->dead = true;
		return ml_err_set(ML_EINVALID,
				  "%s: the data ended after %" PRIu64
				  " of %" PRIu64 " bytes (kept for resuming)",
				  p->digest, p->received, p->size);
	}
	if (fsync(p->fd) < 0)
		return put_fail(
			p, true, NULL,
			ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				     errno, "cannot sync '%s'", p->part));
	ml_sha256_final_hex(p->h, hex);
	ml_sha256_free(p->h);
	p->h = NULL;
	if (strcmp(hex, hex_of(p->digest)))
		return put_fail(p, true, ML_BLOB_ERR_CORRUPT,
				ml_err_set(ML_EFAIL,
					   "%s: the data received has digest "
					   "sha256:%s; it was dropped",
					   p->digest, hex));
	if (rename(p->part, p->final) < 0)
		return put_fail(p, true, NULL,
				ml_err_errno(ML_EFAIL, errno,
					     "cannot rename '%s'", p->part));
	rc = fsync_dir(p->s->dir);
	if (rc < 0)
		return put_fail(p, false, NULL, rc);
	close(p->fd);
	p->fd = -1;
	p->dead = true; /* done: nothing more to write */
	return 0;
}

bool ml_blob_put_exists(const struct ml_blob_put *p)
{
	return p->exists;
}

uint64_t ml_blob_put_received(const struct ml_blob_put *p)
{
	return p->received;
}

const char *ml_blob_put_word(const struct ml_blob_put *p)
{
	return p->word;
}

void ml_blob_put_free(struct ml_blob_put *p)
{
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	ml_sha256_free(p->h);
	ZSTD_freeDStream(p->zd);
	free(p->zout);
	free(p->part);
	free(p->final);
	free(p);
}

int ml_blobstore_remove(struct ml_blobstore *s, const char *digest,
			uint64_t *size)
{
	char *fin;
	struct stat st;
	int rc = 0;

	*size = 0;
	if (!ml_blob_digest_valid(digest))
		return ml_err_set(ML_EINVALID, "not a blob digest");
	fin = final_path(s, digest);
	if (stat(fin, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'",
					  fin);
		goto out;
	}
	if (unlink(fin) < 0) {
		rc = errno == ENOENT ? 0
				     : ml_err_errno(ML_EFAIL, errno,
						    "cannot remove '%s'", fin);
		goto out;
	}
	*size = (uint64_t)st.st_size;
	rc = fsync_dir(s->dir);
	if (rc == 0)
		rc = 1;
out:
	free(fin);
	return rc;
}
