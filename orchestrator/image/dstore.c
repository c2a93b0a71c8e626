/*
 * Blobs read from the Docker daemon's own store (see dstore.h).
 *
 * Why: `docker save` (GET /images/<id>/get) exports every layer of an
 * image; Docker 20.10 even writes the whole export to a temporary
 * directory before the first byte is sent. For a code-only change of an
 * image with 200 MB of weights that is about 2 s of the daemon's time on
 * a small machine, whatever the controller does with the stream. The
 * daemon's store already holds what a layer's tar is made of, in files
 * this machine can often read (a root controller, rootless Docker), and
 * reading only the missing layer from there costs what that layer weighs.
 *
 * What is read, under the data root <root> that GET /info names, overlay2
 * only (the default driver):
 *
 *	<root>/image/overlay2/imagedb/content/sha256/<id hex>
 *		the config, byte for byte
 *	<root>/image/overlay2/layerdb/sha256/<chain id hex>/
 *		diff		the layer's diffID (checked against the image's)
 *		cache-id	the overlay2 directory of the layer
 *		tar-split.json.gz
 *			the layer's tar as Docker received or made it: JSON
 *			lines, {"type":2,"payload":<base64>} for raw bytes
 *			(headers, padding) and {"type":1,"name":...,"size":N}
 *			for the contents of a file, N bytes
 *	<root>/overlay2/<cache-id>/diff/<name>
 *		those contents
 *
 * The tar is rebuilt by writing the segments and the files' bytes in
 * order, which is what Docker does for its own export. Nothing read here
 * is trusted: the caller hashes every blob and keeps it only when its
 * digest is the one the image names, so a store that changed, a format
 * this code does not know, or a file that moved make the caller fall back
 * to the export, never a wrong blob. Names from the record pass
 * ml_tar_entry_check (no absolute names, no "..") and are opened below
 * the diff directory with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS),
 * so no symbolic link in a layer can make this read a file of the
 * controller (kernels before 5.6: O_NOFOLLOW on the last component, and
 * the digest check keeps whatever was read out of the cache).
 *
 * Memory: one record line (at most LINE_MAX, Docker's are a few KiB: a
 * header and its padding), and 64 KiB buffers.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/image/dstore.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK ((size_t)64 << 10)
#define LINE_MAX ((size_t)1 << 20)
#define SMALL_MAX 4096 /* of diff and cache-id files */
#define HEX 7	       /* strlen("sha256:") */

struct ml_dstore {
	char *root;  /* <root>/image/overlay2 */
	char *graph; /* <root>/overlay2 */
};

/* ---- pure helpers ------------------------------------------------------ */

void ml_image_chain_id(char out[ML_DIGEST_LEN + 1], char *const *layers,
		       size_t i)
{
	char hex[ML_SHA256_HEX];
	struct ml_sha256 *h;
	size_t j;

	memcpy(out, layers[0], ML_DIGEST_LEN + 1);
	for (j = 1; j <= i; j++) {
		h = ml_sha256_new();
		ml_sha256_update(h, out, ML_DIGEST_LEN);
		ml_sha256_update(h, " ", 1);
		ml_sha256_update(h, layers[j], strlen(layers[j]));
		ml_sha256_final_hex(h, hex);
		ml_sha256_free(h);
		memcpy(out + HEX, hex, ML_SHA256_HEX);
	}
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t ml_base64_decode(unsigned char *out, const char *s, size_t n)
{
	size_t i, o = 0, pad = 0;
	int v[4], k;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)s[i + (size_t)k];

			if (c == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after '=' */
				return -1;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -1;
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] =
				(unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (ssize_t)o;
}

/* ---- opening the store ------------------------------------------------- */

int ml_dstore_open(struct ml_dstore **out, struct ml_docker *d)
{
	const char *root, *driver;
	json_t *info = NULL;
	int rc;

	*out = NULL;
	rc = ml_docker_get(d, "/info", &info);
	if (rc < 0)
		goto out;
	root = json_string_value(json_object_get(info, "DockerRootDir"));
	driver = json_string_value(json_object_get(info, "Driver"));
	if (!root || root[0] != '/' || !driver || strcmp(driver, "overlay2")) {
		rc = ml_err_set(ML_ENOTFOUND,
				"Docker's store is not an overlay2 one this "
				"code can read (driver '%.40s')",
				driver ? driver : "");
		goto out;
	}
	rc = ml_dstore_open_root(out, root);
out:
	json_decref(info);
	return rc;
}

int ml_dstore_open_root(struct ml_dstore **out, const char *root)
{
	struct ml_dstore *s;
	char *db = ml_xasprintf("%s/image/overlay2/layerdb/sha256", root);
	int rc = 0;

	*out = NULL;
	if (access(db, R_OK | X_OK) < 0) {
		rc = ml_err_errno(ML_ENOTFOUND, errno,
				  "cannot read Docker's store '%s' from here",
				  db);
		goto out;
	}
	s = ml_xcalloc(1, sizeof(*s));
	s->root = ml_xasprintf("%s/image/overlay2", root);
	s->graph = ml_xasprintf("%s/overlay2", root);
	*out = s;
out:
	free(db);
	return rc;
}

void ml_dstore_free(struct ml_dstore *s)
{
	if (!s)
		return;
	free(s->root);
	free(s->graph);
	free(s);
}

/* ---- reading ----------------------------------------------------------- */

/* Copy n bytes (all of the file when n < 0) of fd to put. */
static int copy_fd(int fd, int64_t n, const char *path, unsigned char *buf,
		   ml_dstore_put_fn put, void *ctx)
{
	ssize_t r;
	size_t want;
	int rc;

	while (n != 0) {
		want = n < 0 || (uint64_t)n > CHUNK ? CHUNK : (size_t)n;
		r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ml_err_errno(ML_EFAIL, errno, "cannot read '%s'",
					    path);
		if (r == 0) {
			if (n < 0)
				return 0;
			return ml_err_set(ML_EFAIL,
					  "'%s' is shorter than Docker's "
					  "record of it",
					  path);
		}
		rc = put(ctx, buf, (size_t)r);
		if (rc < 0)
			return rc;
		if (n > 0)
			n -= r;
	}
	return 0;
}

/* The first line of a small file, trimmed, in *out (caller frees). */
static int read_small(char **out, const char *path)
{
	char buf[SMALL_MAX + 1];
	ssize_t r;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				    errno, "cannot read '%s'", path);
	r = read(fd, buf, SMALL_MAX);
	close(fd);
	if (r < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot read '%s'", path);
	buf[r] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = ml_xstrdup(buf);
	return 0;
}

static bool safe_id(const char *s)
{
	size_t i, n = strlen(s);

	if (!n || n > 128)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

struct rebuild {
	const char *diff; /* the overlay2 diff directory */
	int diff_fd;	  /* it, opened O_PATH */
	const char *record;
	ml_dstore_put_fn put;
	void *ctx;
	unsigned char *buf; /* CHUNK */
	unsigned char *bin; /* a decoded payload, LINE_MAX */
	size_t lineno;
};

static int bad_record(struct rebuild *rb, const char *why)
{
	return ml_err_set(ML_EFAIL, "Docker's record '%s' line %zu: %s",
			  rb->record, rb->lineno, why);
}

/* name under the directory dfd (path: the same, for the fallback). */
static int open_beneath(int dfd, const char *name, const char *path)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
	how.resolve =
		RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, dfd, name, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return (int)fd;
}

/* One line of tar-split: raw bytes, or the contents of one file. */
static int rebuild_line(struct rebuild *rb, const char *line, size_t n)
{
	json_t *e = json_loadb(line, n, 0, NULL), *v;
	const char *name, *raw;
	char *path = NULL, *decoded = NULL;
	json_int_t type, size;
	ssize_t len;
	int fd = -1, rc;

	if (!json_is_object(e)) {
		rc = bad_record(rb, "not a JSON object");
		goto out;
	}
	type = json_integer_value(json_object_get(e, "type"));
	if (type == 2) {
		v = json_object_get(e, "payload");
		if (json_is_null(v) || !v) {
			rc = 0;
			goto out;
		}
		raw = json_string_value(v);
		if (!raw || json_string_length(v) / 4 * 3 > LINE_MAX) {
			rc = bad_record(rb, "a segment without a payload");
			goto out;
		}
		len = ml_base64_decode(rb->bin, raw, json_string_length(v));
		if (len < 0) {
			rc = bad_record(rb, "a payload that is not base64");
			goto out;
		}
		rc = len ? rb->put(rb->ctx, rb->bin, (size_t)len) : 0;
		goto out;
	}
	if (type != 1) {
		rc = bad_record(rb, "an entry of unknown type");
		goto out;
	}
	size = json_integer_value(json_object_get(e, "size"));
	if (size <= 0) {
		rc = 0; /* directories, links, empty files: all in headers */
		goto out;
	}
	name = json_string_value(json_object_get(e, "name"));
	if (!name) {
		/* names that are not UTF-8 come as base64 */
		v = json_object_get(e, "name_raw");
		raw = json_string_value(v);
		if (!raw || json_string_length(v) > LINE_MAX) {
			rc = bad_record(rb, "a file without a name");
			goto out;
		}
		decoded = ml_xmalloc(json_string_length(v) / 4 * 3 + 1);
		len = ml_base64_decode((unsigned char *)decoded, raw,
				       json_string_length(v));
		if (len <= 0 || memchr(decoded, '\0', (size_t)len)) {
			rc = bad_record(rb, "a file name that cannot be read");
			goto out;
		}
		decoded[len] = '\0';
		name = decoded;
	}
	rc = ml_tar_entry_check(name, ML_TAR_FILE, NULL);
	if (rc < 0)
		goto out;
	path = ml_xasprintf("%s/%s", rb->diff, name);
	fd = open_beneath(rb->diff_fd, name, path);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot read '%s'", path);
		goto out;
	}
	rc = copy_fd(fd, (int64_t)size, path, rb->buf, rb->put, rb->ctx);
out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(decoded);
	json_decref(e);
	return rc;
}

/* Rebuild a layer's tar from its gzip'd tar-split record. */
static int rebuild(struct rebuild *rb)
{
	struct ml_buf line = ML_BUF_INIT(LINE_MAX);
	struct archive *ar = archive_read_new();
	struct archive_entry *ae;
	unsigned char *gz = ml_xmalloc(CHUNK); /* rb->buf copies files */
	la_ssize_t r;
	const char *p, *nl, *end;
	int rc;

	if (!ar)
		BUG("out of memory");
	if (archive_read_support_filter_gzip(ar) != ARCHIVE_OK ||
	    archive_read_support_format_raw(ar) != ARCHIVE_OK ||
	    archive_read_open_filename(ar, rb->record, CHUNK) != ARCHIVE_OK ||
	    archive_read_next_header(ar, &ae) != ARCHIVE_OK) {
		rc = ml_err_set(ML_EFAIL, "cannot read '%s': %s", rb->record,
				archive_error_string(ar)
					? archive_error_string(ar)
					: "unknown error");
		goto out;
	}
	for (;;) {
		r = archive_read_data(ar, gz, CHUNK);
		if (r < 0) {
			rc = ml_err_set(ML_EFAIL, "cannot read '%s': %s",
					rb->record,
					archive_error_string(ar)
						? archive_error_string(ar)
						: "unknown error");
			goto out;
		}
		if (r == 0)
			break;
		p = (const char *)gz;
		end = p + r;
		while (p < end) {
			nl = memchr(p, '\n', (size_t)(end - p));
			rc = ml_buf_add(&line, p,
					(size_t)((nl ? nl : end) - p));
			if (rc < 0) {
				rc = bad_record(rb, "a line over 1 MiB");
				goto out;
			}
			if (!nl)
				break;
			p = nl + 1;
			rb->lineno++;
			if (line.len) {
				rc = rebuild_line(rb, line.data, line.len);
				if (rc < 0)
					goto out;
			}
			ml_buf_reset(&line);
		}
	}
	rc = 0;
	if (line.len) {
		rb->lineno++;
		rc = rebuild_line(rb, line.data, line.len);
	}
out:
	archive_read_free(ar);
	ml_buf_release(&line);
	free(gz);
	return rc;
}

static int layer_blob(struct ml_dstore *s, const struct ml_image *img, size_t i,
		      ml_dstore_put_fn put, void *ctx)
{
	char chain[ML_DIGEST_LEN + 1];
	char *dir, *path = NULL, *diff = NULL, *cache_id = NULL, *ddir = NULL,
		   *record = NULL;
	struct rebuild rb;
	int rc;

	ml_image_chain_id(chain, img->layers, i);
	dir = ml_xasprintf("%s/layerdb/sha256/%s", s->root, chain + HEX);
	path = ml_xasprintf("%s/diff", dir);
	rc = read_small(&diff, path);
	if (rc < 0)
		goto out;
	if (strcmp(diff, img->layers[i])) {
		rc = ml_err_set(ML_EFAIL,
				"Docker's layer '%s' holds %.80s, not %s", dir,
				diff, img->layers[i]);
		goto out;
	}
	free(path);
	path = ml_xasprintf("%s/cache-id", dir);
	rc = read_small(&cache_id, path);
	if (rc < 0)
		goto out;
	if (!safe_id(cache_id)) {
		rc = ml_err_set(ML_EFAIL, "'%s' does not hold a layer id",
				path);
		goto out;
	}
	ddir = ml_xasprintf("%s/%s/diff", s->graph, cache_id);
	record = ml_xasprintf("%s/tar-split.json.gz", dir);
	memset(&rb, 0, sizeof(rb));
	rb.diff = ddir;
	rb.diff_fd = open(ddir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rb.diff_fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", ddir);
		goto out;
	}
	rb.record = record;
	rb.put = put;
	rb.ctx = ctx;
	rb.buf = ml_xmalloc(CHUNK);
	rb.bin = ml_xmalloc(LINE_MAX);
	rc = rebuild(&rb);
	close(rb.diff_fd);
	free(rb.buf);
	free(rb.bin);
out:
	free(dir);
	free(path);
	free(diff);
	free(cache_id);
	free(ddir);
	free(record);
	return rc;
}

int ml_dstore_blob(struct ml_dstore *s, const struct ml_image *img, size_t i,
		   ml_dstore_put_fn put, void *ctx)
{
	unsigned char *buf;
	char *path;
	int fd, rc;

	if (i > img->nlayers)
		BUG("blob %zu of an image of %zu layers", i, img->nlayers);
	if (i)
		return layer_blob(s, img, i - 1, put, ctx);
	path = ml_xasprintf("%s/imagedb/content/sha256/%s", s->root,
			    img->config_digest + HEX);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				  errno, "cannot read '%s'", path);
		free(path);
		return rc;
	}
	buf = ml_xmalloc(CHUNK);
	rc = copy_fd(fd, -1, path, buf, put, ctx);
	free(buf);
	close(fd);
	free(path);
	return rc;
}
