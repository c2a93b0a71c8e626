/*
 * The controller's content-addressed blob cache and the reader of `docker
 * save` archives that fills it (see image.h).
 *
 * Layout: <dir>/blobs/sha256/<hex> holds the blob whose SHA-256 is <hex>,
 * mode 0600, in directories of mode 0700; <dir>/blobs/tmp/ holds files
 * being written. A file appears under sha256/ only by rename(2) from tmp/
 * after its digest was computed from the bytes written and found to be
 * one the image expects, and after fsync, so a reader never sees a
 * partial or wrong blob, and several processes can fill one cache at once
 * (they at worst write the same blob twice; the rename is atomic).
 *
 * The archive is read as a stream: libarchive pulls 64 KiB at a time from
 * a struct ml_io and hands over each entry's data in 64 KiB pieces that go
 * straight to a temporary file, so memory stays at a few hundred KiB
 * whatever the size of the layers. With Docker, the stream comes from GET
 * /images/<id>/get through a socket pair: curl's write callback pushes on
 * this thread, the reader pulls on its own (struct ml_pump).
 *
 * Nothing in an archive is trusted: every entry passes ml_tar_entry_check
 * before anything else is done with it, even though nothing is ever
 * extracted to a path taken from the archive (names only select which
 * entries are hashed); an archive has at most ML_TAR_MAX_ENTRIES entries.
 * The blobs kept are only renamed into the cache once the whole archive
 * was read and every blob of the image was found, so a failure leaves the
 * cache as it was.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/image/dstore.h"
#include "orchestrator/image/image.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK ((size_t)64 << 10)
#define STALE_TMP_S (24 * 3600) /* tmp files older than this are litter */
#define HEX_LEN 64
#define MSG_NAME_MAX 200 /* bytes of an entry name quoted in messages */

struct ml_cache {
	char *dir;
	char *blobs; /* <dir>/blobs/sha256 */
	char *tmp;   /* <dir>/blobs/tmp */
};

/* ---- tar entry check --------------------------------------------------- */

/* name, escaped and cut, for a message. Borrowed from b. */
static const char *qname(struct ml_buf *b, const char *s)
{
	size_t n = strlen(s);

	ml_buf_reset(b);
	if (ml_escape(b, s, n > MSG_NAME_MAX ? MSG_NAME_MAX : n) < 0)
		ml_buf_reset(b);
	if (n > MSG_NAME_MAX)
		(void)ml_buf_addstr(b, "...");
	return ml_buf_str(b);
}

/*
 * Walk the '/'-separated components of s from depth: "." and empty ones
 * stay, ".." goes up, others go down. Returns the final depth, or -1 as
 * soon as the walk climbs above 0. With no_dotdot, any ".." gives -1.
 * Names only: links inside the archive are not followed, since nothing
 * from it is ever written to a path it names.
 */
static long walk_depth(const char *s, long depth, bool no_dotdot)
{
	const char *p = s, *comp;
	size_t n;

	while (*p) {
		comp = p;
		p += strcspn(p, "/");
		n = (size_t)(p - comp);
		while (*p == '/')
			p++;
		if (!n || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			if (no_dotdot || --depth < 0)
				return -1;
			continue;
		}
		depth++;
	}
	return depth;
}

int ml_tar_entry_check(const char *name, enum ml_tar_type type,
		       const char *link_target)
{
	struct ml_buf q = ML_BUF_INIT(4 * MSG_NAME_MAX + 16),
		      q2 = ML_BUF_INIT(4 * MSG_NAME_MAX + 16);
	const char *kind = "a link";
	long depth;
	int rc = 0;

	if (!name || !*name)
		return ml_err_set(ML_EINVALID,
				  "image archive entry with an empty name");
	if (strlen(name) > ML_TAR_NAME_MAX) {
		rc = ml_err_set(ML_ETOOBIG,
				"image archive entry '%s' has a name longer "
				"than %d bytes",
				qname(&q, name), ML_TAR_NAME_MAX);
		goto out;
	}
	if (name[0] == '/' || walk_depth(name, 0, true) < 0) {
		rc = ml_err_set(ML_EINVALID,
				"image archive entry '%s' escapes the archive "
				"root",
				qname(&q, name));
		goto out;
	}
	switch (type) {
	case ML_TAR_FILE:
	case ML_TAR_DIR:
		goto out;
	case ML_TAR_SYMLINK:
		kind = "a symbolic link";
		/* read from the link's directory: one level up from name */
		depth = walk_depth(name, 0, false) - 1;
		break;
	case ML_TAR_HARDLINK:
		kind = "a hard link";
		depth = 0; /* hard link targets are archive paths */
		break;
	case ML_TAR_OTHER:
		rc = ml_err_set(ML_EINVALID,
				"image archive entry '%s' is a device, fifo or "
				"socket, which an image archive never holds",
				qname(&q, name));
		goto out;
	default:
		rc = ml_err_set(ML_EINVALID,
				"image archive entry '%s' has an unknown type",
				qname(&q, name));
		goto out;
	}
	if (!link_target || !*link_target) {
		rc = ml_err_set(ML_EINVALID,
				"image archive entry '%s' is %s without a "
				"target",
				qname(&q, name), kind);
		goto out;
	}
	if (strlen(link_target) > ML_TAR_NAME_MAX) {
		rc = ml_err_set(ML_ETOOBIG,
				"image archive entry '%s' is %s to a name "
				"longer than %d bytes",
				qname(&q, name), kind, ML_TAR_NAME_MAX);
		goto out;
	}
	if (depth < 0)
		depth = 0;
	if (link_target[0] == '/' || walk_depth(link_target, depth, false) < 0)
		rc = ml_err_set(ML_EINVALID,
				"image archive entry '%s' escapes the archive "
				"root: it is %s to '%s'",
				qname(&q, name), kind, qname(&q2, link_target));
out:
	ml_buf_release(&q);
	ml_buf_release(&q2);
	return rc;
}

/* ---- the cache --------------------------------------------------------- */

/* mkdir -p, with mode for the directories made. */
static int mkdirs(const char *path, mode_t mode)
{
	char *p = ml_xstrdup(path), *s;
	struct stat st;
	int rc = 0;

	for (s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		if (s[-1] != '/') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = ml_err_errno(ML_EFAIL, errno,
						  "cannot make the directory "
						  "'%s'",
						  p);
				goto out;
			}
			*s = c;
		}
		if (!*s)
			break;
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		rc = ml_err_set(ML_EFAIL, "'%s' is not a directory", path);
out:
	free(p);
	return rc;
}

/* Remove files in tmp/ that a crashed run left behind. */
static void clean_stale(const struct ml_cache *c)
{
	DIR *dir = opendir(c->tmp);
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			    0 &&
		    S_ISREG(st.st_mode) && st.st_mtime < now - STALE_TMP_S)
			unlinkat(dirfd(dir), de->d_name, 0);
	}
	closedir(dir);
}

int ml_cache_open(struct ml_cache **out, const char *dir)
{
	struct ml_cache *c = NULL;
	const char *env;
	char *root = NULL, *blobs = NULL;
	int rc;

	*out = NULL;
	if (dir && *dir) {
		root = ml_xstrdup(dir);
	} else if ((env = getenv("MLCTL_CACHE_DIR")) && *env) {
		root = ml_xstrdup(env);
	} else if ((env = getenv("XDG_CACHE_HOME")) && env[0] == '/') {
		root = ml_xasprintf("%s/mlctl", env);
	} else if ((env = getenv("HOME")) && env[0] == '/') {
		root = ml_xasprintf("%s/.cache/mlctl", env);
	} else {
		return ml_err_set(ML_EFAIL, "no place for the image cache: set "
					    "MLCTL_CACHE_DIR or HOME");
	}
	blobs = ml_xasprintf("%s/blobs", root);
	c = ml_xcalloc(1, sizeof(*c));
	c->dir = root;
	root = NULL;
	c->blobs = ml_xasprintf("%s/sha256", blobs);
	c->tmp = ml_xasprintf("%s/tmp", blobs);
	rc = mkdirs(c->blobs, 0700);
	if (!rc)
		rc = mkdirs(c->tmp, 0700);
	if (rc < 0)
		goto out;
	clean_stale(c);
	*out = c;
	c = NULL;
out:
	free(blobs);
	ml_cache_free(c);
	return rc;
}

void ml_cache_free(struct ml_cache *c)
{
	if (!c)
		return;
	free(c->dir);
	free(c->blobs);
	free(c->tmp);
	free(c);
}

const char *ml_cache_dir(const struct ml_cache *c)
{
	return c->dir;
}

int ml_cache_path(char **out, const struct ml_cache *c, const char *digest)
{
	*out = NULL;
	if (!ml_digest_valid(digest))
		return ml_err_set(ML_EINVALID, "'%.80s' is not a sha256 digest",
				  digest ? digest : "");
	*out = ml_xasprintf("%s/%s", c->blobs, digest + 7);
	return 0;
}

bool ml_cache_has(const struct ml_cache *c, const char *digest)
{
	struct stat st;
	bool has;
	char *path;

	if (!ml_digest_valid(digest))
		return false;
	path = ml_xasprintf("%s/%s", c->blobs, digest + 7);
	has = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return has;
}

int ml_cache_each(const struct ml_cache *c,
		  int (*fn)(void *arg, const char *digest, int64_t size),
		  void *arg)
{
	char digest[ML_DIGEST_LEN + 1], *path;
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(c->blobs);
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0
				       : ml_err_errno(ML_EFAIL, errno,
						      "cannot read '%s'",
						      c->blobs);
	while (rc == 0 && (de = readdir(d))) {
		if (strlen(de->d_name) != HEX_LEN)
			continue;
		/* d_name is HEX_LEN bytes here: the digest fits exactly */
		memcpy(digest, "sha256:", 7);
		memcpy(digest + 7, de->d_name, HEX_LEN + 1);
		if (!ml_digest_valid(digest))
			continue;
		path = ml_xasprintf("%s/%s", c->blobs, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc = fn(arg, digest, (int64_t)st.st_size);
		free(path);
	}
	closedir(d);
	return rc;
}

int ml_cache_remove(struct ml_cache *c, const char *digest, int64_t *size)
{
	struct stat st;
	char *path = NULL;
	int rc;

	*size = 0;
	rc = ml_cache_path(&path, c, digest);
	if (rc < 0)
		return rc;
	if (stat(path, &st) < 0 || unlink(path) < 0) {
		rc = errno == ENOENT ? 0
				     : ml_err_errno(ML_EFAIL, errno,
						    "cannot remove '%s'", path);
	} else {
		*size = (int64_t)st.st_size;
		rc = 1;
	}
	free(path);
	return rc;
}

/* ---- reading an archive ------------------------------------------------ */

struct staged {
	char *tmp;	       /* the written file in tmp/ */
	char hex[HEX_LEN + 1]; /* its digest */
};

struct extract {
	struct ml_cache *c;
	struct ml_image *img;
	struct ml_io *in;
	struct archive *ar;
	unsigned char *inbuf;	/* libarchive reads through it */
	unsigned char *databuf; /* an entry's data goes through it */
	bool *have;		/* [0]: config, [1 + i]: layer i */
	size_t nwant;
	struct staged *staged;
	size_t nstaged, staged_cap;
	int rc; /* in->read's failure */
};

static const char *want_digest(const struct extract *x, size_t i)
{
	return i == 0 ? x->img->config_digest : x->img->layers[i - 1];
}

/* Is a blob with this hex digest wanted and not had yet? */
static bool wanted(const struct extract *x, const char *hex)
{
	size_t i;

	for (i = 0; i < x->nwant; i++)
		if (!x->have[i] && !strcmp(want_digest(x, i) + 7, hex))
			return true;
	return false;
}

static bool all_had(const struct extract *x)
{
	size_t i;

	for (i = 0; i < x->nwant; i++)
		if (!x->have[i])
			return false;
	return true;
}

static void mark_had(struct extract *x, const char *hex)
{
	size_t i;

	/* an image may hold one layer twice (empty layers often are) */
	for (i = 0; i < x->nwant; i++)
		if (!strcmp(want_digest(x, i) + 7, hex))
			x->have[i] = true;
}

static la_ssize_t ar_read(struct archive *a, void *data, const void **buf)
{
	struct extract *x = data;
	ssize_t r = x->in->read(x->in->ctx, x->inbuf, IO_CHUNK);

	if (r < 0) {
		x->rc = (int)r;
		archive_set_error(a, EIO, "the stream failed");
		return -1;
	}
	*buf = x->inbuf;
	return (la_ssize_t)r;
}

/* The failure of the last libarchive call. */
static int ar_fail(struct extract *x, const char *what)
{
	struct ml_buf q = ML_BUF_INIT(1024);
	const char *msg = archive_error_string(x->ar);

	if (x->rc < 0)
		return x->rc; /* in->read's own message */
	ml_err_set(ML_EFAIL, "cannot read the image archive of '%s'%s%s: %s",
		   x->img->ref ? x->img->ref : x->img->id, what ? " at " : "",
		   what ? what : "", qname(&q, msg ? msg : "unknown error"));
	ml_buf_release(&q);
	return ML_EFAIL;
}

static bool is_hex64(const char *s, size_t n)
{
	size_t i;

	if (n != HEX_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * Which entries may hold a blob: "<hex>.json" (the config, 20.10 layout),
 * "blobs/sha256/<hex>" (OCI layout) name their digest, copied to hex;
 * "<dir>/layer.tar" (20.10) may be any layer, hex is "". false: none.
 */
static bool candidate(const char *name, char hex[HEX_LEN + 1])
{
	size_t n;

	while (name[0] == '.' && name[1] == '/')
		name += 2;
	n = strlen(name);
	hex[0] = '\0';
	if (n == HEX_LEN + 5 && !strcmp(name + HEX_LEN, ".json") &&
	    is_hex64(name, HEX_LEN)) {
		memcpy(hex, name, HEX_LEN);
		hex[HEX_LEN] = '\0';
		return true;
	}
	if (n == 13 + HEX_LEN && !strncmp(name, "blobs/sha256/", 13) &&
	    is_hex64(name + 13, HEX_LEN)) {
		memcpy(hex, name + 13, HEX_LEN);
		hex[HEX_LEN] = '\0';
		return true;
	}
	if (n > 10 && !strcmp(name + n - 10, "/layer.tar") &&
	    !memchr(name, '/', n - 10))
		return true;
	return false;
}

static int write_all(int fd, const void *buf, size_t n, const char *path)
{
	const char *p = buf;
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
			return ml_err_errno(ML_ENOSPACE, errno,
					    "cannot write '%s' in the image "
					    "cache",
					    path);
		if (w < 0)
			return ml_err_errno(ML_EFAIL, errno,
					    "cannot write '%s'", path);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Stream the current entry's data to a new file in tmp/ while hashing it;
 * keep the file (staged) when its digest is wanted and matches the one its
 * name gives (expect, "" for any), else remove it.
 */
static int store_entry(struct extract *x, const char *name, const char *expect)
{
	struct ml_buf q = ML_BUF_INIT(4 * MSG_NAME_MAX + 16);
	struct ml_sha256 *h = ml_sha256_new();
	char hex[ML_SHA256_HEX];
	char *tmp = ml_xasprintf("%s/blob-XXXXXX", x->c->tmp);
	la_ssize_t r;
	int fd, rc;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot make a file in '%s'",
				  x->c->tmp);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	for (;;) {
		r = archive_read_data(x->ar, x->databuf, IO_CHUNK);
		if (r == 0)
			break;
		if (r < 0) {
			rc = ar_fail(x, qname(&q, name));
			goto out;
		}
		ml_sha256_update(h, x->databuf, (size_t)r);
		rc = write_all(fd, x->databuf, (size_t)r, tmp);
		if (rc < 0)
			goto out;
	}
	if (fsync(fd) < 0) {
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot write '%s'", tmp);
		goto out;
	}
	ml_sha256_final_hex(h, hex);
	if ((*expect && strcmp(hex, expect)) || !wanted(x, hex)) {
		if (*expect && strcmp(hex, expect))
			ml_debug("image archive entry '%s' is sha256:%s, not "
				 "what its name says: dropped",
				 qname(&q, name), hex);
		rc = 0;
		goto out;
	}
	ML_GROW(x->staged, x->nstaged + 1, x->staged_cap);
	x->staged[x->nstaged].tmp = tmp;
	memcpy(x->staged[x->nstaged].hex, hex, sizeof(x->staged[0].hex));
	x->nstaged++;
	mark_had(x, hex);
	tmp = NULL; /* kept */
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	ml_sha256_free(h);
	ml_buf_release(&q);
	return rc;
}

static enum ml_tar_type entry_type(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return ML_TAR_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		return ML_TAR_FILE;
	case AE_IFDIR:
		return ML_TAR_DIR;
	case AE_IFLNK:
		return ML_TAR_SYMLINK;
	default:
		return ML_TAR_OTHER;
	}
}

static int read_entries(struct extract *x)
{
	struct archive_entry *ae;
	enum ml_tar_type type;
	char hex[HEX_LEN + 1];
	const char *name, *target;
	size_t count = 0;
	int r, rc;

	for (;;) {
		r = archive_read_next_header(x->ar, &ae);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return ar_fail(x, NULL);
		if (++count > ML_TAR_MAX_ENTRIES)
			return ml_err_set(ML_ETOOBIG,
					  "the image archive of '%s' has more "
					  "than %d entries",
					  x->img->ref ? x->img->ref
						      : x->img->id,
					  ML_TAR_MAX_ENTRIES);
		name = archive_entry_pathname(ae);
		if (!name)
			return ml_err_set(ML_EINVALID,
					  "image archive entry %zu has a name "
					  "that cannot be read",
					  count);
		type = entry_type(ae);
		target = type == ML_TAR_HARDLINK  ? archive_entry_hardlink(ae)
			 : type == ML_TAR_SYMLINK ? archive_entry_symlink(ae)
						  : NULL;
		rc = ml_tar_entry_check(name, type, target);
		if (rc < 0)
			return rc;
		if (type == ML_TAR_FILE && candidate(name, hex) &&
		    !all_had(x) && (!*hex || wanted(x, hex))) {
			rc = store_entry(x, name, hex);
			if (rc < 0)
				return rc;
		}
		/* libarchive skips what was not read at the next header */
	}
}

/* Make the renames into dir durable (best effort). */
static void dir_sync(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

/* Move the staged blobs into the cache, and make that durable. */
static int commit_staged(struct extract *x)
{
	char *path;
	size_t i;

	for (i = 0; i < x->nstaged; i++) {
		path = ml_xasprintf("%s/%s", x->c->blobs, x->staged[i].hex);
		if (rename(x->staged[i].tmp, path) < 0) {
			int err = errno;

			ml_err_errno(ML_EFAIL, err,
				     "cannot move a blob to '%s'", path);
			free(path);
			return ML_EFAIL;
		}
		free(path);
		free(x->staged[i].tmp);
		x->staged[i].tmp = NULL;
	}
	dir_sync(x->c->blobs);
	return 0;
}

/* Fill in the sizes of img's blobs from the cache. */
static int record_sizes(struct ml_cache *c, struct ml_image *img)
{
	struct stat st;
	char *path;
	size_t i;

	for (i = 0; i <= img->nlayers; i++) {
		const char *dg = i ? img->layers[i - 1] : img->config_digest;

		path = ml_xasprintf("%s/%s", c->blobs, dg + 7);
		if (stat(path, &st) < 0) {
			ml_err_errno(ML_EFAIL, errno, "cannot read '%s'", path);
			free(path);
			return ML_EFAIL;
		}
		free(path);
		if (i)
			img->layer_sizes[i - 1] = (int64_t)st.st_size;
		else
			img->config_size = (int64_t)st.st_size;
	}
	return 0;
}

static int check_image(const struct ml_image *img)
{
	size_t i;

	if (!ml_digest_valid(img->config_digest))
		return ml_err_set(ML_EINVALID,
				  "image '%s' has no valid config "
				  "digest",
				  img->ref ? img->ref : "");
	for (i = 0; i < img->nlayers; i++)
		if (!ml_digest_valid(img->layers[i]))
			return ml_err_set(ML_EINVALID,
					  "layer %zu of image '%s' has no "
					  "valid digest",
					  i + 1, img->ref ? img->ref : "");
	return 0;
}

int ml_cache_extract(struct ml_cache *c, struct ml_image *img, struct ml_io *in)
{
	struct extract x;
	size_t i;
	ssize_t r;
	int rc;

	rc = check_image(img);
	if (rc < 0)
		return rc;
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.img = img;
	x.in = in;
	x.nwant = img->nlayers + 1;
	x.have = ml_xcalloc(x.nwant, sizeof(*x.have));
	for (i = 0; i < x.nwant; i++)
		x.have[i] = ml_cache_has(c, want_digest(&x, i));
	x.inbuf = ml_xmalloc(IO_CHUNK);
	x.databuf = ml_xmalloc(IO_CHUNK);
	x.ar = archive_read_new();
	if (!x.ar) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	if (archive_read_support_format_tar(x.ar) != ARCHIVE_OK ||
	    archive_read_support_filter_none(x.ar) != ARCHIVE_OK ||
	    archive_read_open(x.ar, &x, NULL, ar_read, NULL) != ARCHIVE_OK) {
		rc = ar_fail(&x, NULL);
		goto out;
	}
	rc = read_entries(&x);
	if (rc < 0)
		goto out;
	/*
	 * Read to the end of the stream: what follows the tar's end blocks
	 * is padding, and a writer cut off early would take it for an error.
	 */
	do
		r = in->read(in->ctx, x.inbuf, IO_CHUNK);
	while (r > 0);
	if (r < 0) {
		rc = (int)r;
		goto out;
	}
	for (i = 0; i < x.nwant; i++) {
		if (x.have[i])
			continue;
		if (i == 0)
			rc = ml_err_set(ML_EFAIL,
					"the image archive of '%s' lacks its "
					"config %s (or holds it with other "
					"contents)",
					img->ref ? img->ref : img->id,
					want_digest(&x, i));
		else
			rc = ml_err_set(ML_EFAIL,
					"the image archive of '%s' lacks layer "
					"%zu, %s (or holds it with other "
					"contents)",
					img->ref ? img->ref : img->id, i,
					want_digest(&x, i));
		goto out;
	}
	rc = commit_staged(&x);
	if (rc < 0)
		goto out;
	rc = record_sizes(c, img);
out:
	for (i = 0; i < x.nstaged; i++) {
		if (x.staged[i].tmp)
			unlink(x.staged[i].tmp);
		free(x.staged[i].tmp);
	}
	free(x.staged);
	if (x.ar)
		archive_read_free(x.ar);
	free(x.have);
	free(x.inbuf);
	free(x.databuf);
	return rc;
}

/* ---- filling from Docker's own store ----------------------------------- */

struct direct_put {
	int fd;
	const char *path;
	struct ml_sha256 *h;
};

static int direct_put_cb(void *ctx, const void *p, size_t n)
{
	struct direct_put *w = ctx;

	ml_sha256_update(w->h, p, n);
	return write_all(w->fd, p, n, w->path);
}

/*
 * Blob i of img (0: the config, else layer i - 1) from Docker's store
 * into the cache: written to tmp/ while hashed, renamed into place when
 * its digest is the one wanted. Each blob is checked on its own, so each
 * is moved in as soon as it is whole. 0 when it is in the cache now, or a
 * failure (the caller then exports it).
 */
static int direct_blob(struct ml_cache *c, struct ml_dstore *ds,
		       const struct ml_image *img, size_t i)
{
	const char *want = i ? img->layers[i - 1] : img->config_digest;
	char *tmp = ml_xasprintf("%s/blob-XXXXXX", c->tmp), *path = NULL;
	struct direct_put w = {-1, tmp, ml_sha256_new()};
	char hex[ML_SHA256_HEX];
	int rc;

	w.fd = mkostemp(tmp, O_CLOEXEC);
	if (w.fd < 0) {
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot make a file in '%s'", c->tmp);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	rc = ml_dstore_blob(ds, img, i, direct_put_cb, &w);
	if (rc < 0)
		goto out;
	ml_sha256_final_hex(w.h, hex);
	if (strcmp(hex, want + 7)) {
		rc = ml_err_set(ML_EFAIL,
				"Docker's store gave sha256:%s for %s", hex,
				want);
		goto out;
	}
	if (fsync(w.fd) < 0) {
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot write '%s'", tmp);
		goto out;
	}
	path = ml_xasprintf("%s/%s", c->blobs, hex);
	if (rename(tmp, path) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot move a blob to '%s'",
				  path);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (w.fd >= 0)
		close(w.fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(path);
	ml_sha256_free(w.h);
	return rc;
}

/*
 * Every blob of img the cache lacks, from Docker's store when this
 * machine can read it (dstore.h); what cannot be had that way is left
 * for the export, with the reason at debug level. $MLCTL_DOCKER_STORE=off
 * turns this off (to measure the export, or when the store misleads).
 */
static void fill_direct(struct ml_cache *c, struct ml_docker *d,
			const struct ml_image *img)
{
	const char *env = getenv("MLCTL_DOCKER_STORE");
	struct ml_dstore *ds = NULL;
	size_t i;

	if (env && !strcmp(env, "off"))
		return;
	if (ml_dstore_open(&ds, d) < 0) {
		ml_debug("not reading Docker's store: %s", ml_err_msg());
		ml_err_clear();
		return;
	}
	for (i = 0; i <= img->nlayers; i++) {
		const char *dg = i ? img->layers[i - 1] : img->config_digest;

		if (ml_cache_has(c, dg))
			continue;
		if (direct_blob(c, ds, img, i) < 0) {
			ml_debug("blob %s not read from Docker's store: %s", dg,
				 ml_err_msg());
			ml_err_clear();
		}
	}
	dir_sync(c->blobs);
	ml_dstore_free(ds);
}

/* ---- filling from Docker's export -------------------------------------- */

struct fill_job {
	struct ml_cache *c;
	struct ml_image *img;
};

static int fill_main(void *arg, int fd)
{
	struct fill_job *j = arg;
	struct ml_io_fd fdctx;
	struct ml_io io;

	ml_io_fd_init(&io, &fdctx, fd, fd, -1);
	return ml_cache_extract(j->c, j->img, &io);
}

struct fill_write {
	int fd;
	bool failed;
};

static int fill_write_cb(void *ctx, const void *p, size_t n)
{
	struct fill_write *w = ctx;
	int rc = ml_pump_write(w->fd, p, n);

	if (rc < 0)
		w->failed = true; /* the reader stopped: its error counts */
	return rc;
}

/* Layer i repeats an earlier one (counted once). */
static bool seen_before(const struct ml_image *img, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (!strcmp(img->layers[j], img->layers[i]))
			return true;
	return false;
}

/* The distinct blobs of img not in the cache. */
static size_t count_missing(const struct ml_cache *c,
			    const struct ml_image *img)
{
	size_t i, missing = !ml_cache_has(c, img->config_digest);

	for (i = 0; i < img->nlayers; i++)
		if (!ml_cache_has(c, img->layers[i]) && !seen_before(img, i))
			missing++;
	return missing;
}

int ml_cache_fill(struct ml_cache *c, struct ml_docker *d, struct ml_image *img)
{
	struct ml_buf path = ML_BUF_INIT(256);
	struct fill_write w = {-1, false};
	struct fill_job job = {c, img};
	struct ml_pump pump;
	struct ml_err_saved saved;
	size_t missing = 0;
	int rc, rc2;

	rc = check_image(img);
	if (rc < 0)
		return rc;
	missing = count_missing(c, img);
	if (!missing)
		return record_sizes(c, img);
	fill_direct(c, d, img);
	missing = count_missing(c, img);
	if (!missing)
		return record_sizes(c, img);

	ml_info("copying %zu blob%s of image '%s' from Docker to the cache",
		missing, missing == 1 ? "" : "s",
		img->ref ? img->ref : img->id);
	rc = ml_buf_addstr(&path, "/images/");
	if (!rc)
		rc = ml_docker_url_escape(&path, img->id);
	if (!rc)
		rc = ml_buf_addstr(&path, "/get");
	if (rc < 0)
		goto out;
	rc = ml_pump_start(&pump, &w.fd, fill_main, &job);
	if (rc < 0)
		goto out;
	rc = ml_docker_get_stream(d, path.data, fill_write_cb, &w);
	ml_err_save(&saved);
	rc2 = ml_pump_finish(&pump, &w.fd); /* EOF for the reader */
	if (rc2 < 0 && (rc == 0 || w.failed)) {
		rc = rc2; /* the reader's message, set again */
	} else if (rc < 0) {
		/* Docker's failure explains the reader's truncated stream */
		ml_err_restore(&saved);
	}
out:
	ml_buf_release(&path);
	return rc;
}
