/*
 * libFuzzer target for the reader of `docker save` archives
 * (orchestrator/image/cache.c). The input is the byte stream Docker would
 * send for GET /images/<id>/get. It is read, in pieces of varying size,
 * into a cache in a scratch directory for a fixed image whose config is
 * "{}" and whose layers are "layer-one\n", "layer-two\n" and the first
 * again (tests/fuzz/seeds/save/ holds archives of it in both layouts, and
 * hostile ones). The same bytes are also split at the first two NULs into
 * a name and a link target for ml_tar_entry_check, with the first byte
 * choosing the type.
 *
 * Invariants checked: no crash, leak or sanitizer report; a success means
 * every blob of the image is in the cache with the right digest; whatever
 * happens, no temporary file is left behind, and a failure stores nothing.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/image/image.h"

#include <dirent.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ml_cache *cache;
static char cache_dir[] = "/tmp/mlctl-fuzz-save-XXXXXX";
static char *blobs_dir, *tmp_dir;
static char digests[3][ML_DIGEST_LEN + 1];

struct feed {
	const uint8_t *p;
	size_t len, off;
	size_t step; /* read sizes cycle through 1..step */
	size_t n;
};

static ssize_t feed_read(void *ctx, void *buf, size_t want)
{
	struct feed *f = ctx;
	size_t n = f->len - f->off;

	f->n++;
	if (f->step > 1 && want > f->n % f->step + 1)
		want = f->n % f->step + 1;
	if (n > want)
		n = want;
	memcpy(buf, f->p + f->off, n);
	f->off += n;
	return (ssize_t)n;
}

/* Remove every file in dir; returns how many there were. */
static size_t empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		abort();
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		unlinkat(dirfd(d), de->d_name, 0);
		n++;
	}
	closedir(d);
	return n;
}

static void cleanup(void)
{
	char *p;

	empty_dir(blobs_dir);
	empty_dir(tmp_dir);
	rmdir(blobs_dir);
	rmdir(tmp_dir);
	p = ml_xasprintf("%s/blobs", cache_dir);
	rmdir(p);
	free(p);
	rmdir(cache_dir);
}

static void init(void)
{
	static const char *const blobs[] = {"{}", "layer-one\n", "layer-two\n"};
	char hex[ML_SHA256_HEX];
	size_t i;

	ml_log_init("fuzz", ML_LOG_QUIET);
	if (!mkdtemp(cache_dir) || ml_cache_open(&cache, cache_dir) < 0)
		abort();
	blobs_dir = ml_xasprintf("%s/blobs/sha256", cache_dir);
	tmp_dir = ml_xasprintf("%s/blobs/tmp", cache_dir);
	for (i = 0; i < 3; i++) {
		ml_sha256_hex(blobs[i], strlen(blobs[i]), hex);
		snprintf(digests[i], sizeof(digests[i]), "sha256:%s", hex);
	}
	atexit(cleanup);
}

static void check_entry(const uint8_t *data, size_t size)
{
	const char *name, *link = NULL;
	char *copy;
	size_t n;

	if (!size)
		return;
	copy = ml_xstrndup((const char *)data + 1, size - 1);
	name = copy;
	n = strlen(name) + 1;
	if (n < size - 1)
		link = (const char *)data + 1 + n; /* up to the next NUL */
	if (link && !memchr(link, '\0', size - 1 - n))
		link = NULL;
	(void)ml_tar_entry_check(name, (enum ml_tar_type)(data[0] % 6), link);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_image img;
	char *layers[3] = {digests[1], digests[2], digests[1]};
	int64_t sizes[3] = {0, 0, 0};
	struct feed f = {data, size, 0, size ? data[0] % 7 : 0, 0};
	struct ml_io io = {feed_read, NULL, &f};
	char hex[ML_SHA256_HEX], *path;
	size_t i;
	int rc;

	if (!cache)
		init();
	check_entry(data, size);

	memset(&img, 0, sizeof(img));
	img.id = digests[0];
	img.config_digest = digests[0];
	img.layers = layers;
	img.nlayers = 3;
	img.layer_sizes = sizes;
	img.ref = (char *)"fuzz:1";
	rc = ml_cache_extract(cache, &img, &io);
	if (rc == 0) {
		for (i = 0; i < 3; i++) {
			if (ml_cache_path(&path, cache, digests[i]) < 0 ||
			    ml_sha256_file(path, hex) < 0 ||
			    strcmp(hex, digests[i] + 7))
				abort();
			free(path);
		}
	} else if (rc > 0 || !*ml_err_msg()) {
		abort(); /* a failure always says why */
	}
	if (empty_dir(tmp_dir) != 0)
		abort(); /* a temporary file was left behind */
	i = empty_dir(blobs_dir);
	if ((rc == 0) != (i == 3))
		abort(); /* stored on failure, or not all on success */
	return 0;
}
