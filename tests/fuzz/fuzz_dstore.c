/*
 * libFuzzer target for the tar-split reader of orchestrator/image/dstore.c
 * and its base64 decoder. A data root laid out as Docker's is made once in
 * a scratch directory: one layer whose diff directory holds "a.txt"
 * ("hello") and "d/b.bin" (4 KiB). Each input becomes that layer's record
 * (tar-split.json.gz; uncompressed input is read as it is, so JSON lines
 * reach the parser directly; seeds in tests/fuzz/seeds/dstore/), and the
 * layer is rebuilt into a counter. The same bytes are decoded as base64.
 *
 * Invariants checked: no crash, leak or sanitizer report; base64 output
 * never longer than 3/4 of the input; a rebuild that succeeds wrote no
 * more than the record's segments and the two files can give.
 */
#include "common/ml.h"
#include "common/log.h"
#include "orchestrator/image/dstore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[] = "/tmp/mlctl-fuzz-dstore-XXXXXX";
static char *record;
static struct ml_dstore *store;
static char layer[] = "sha256:"
		      "0000000000000000000000000000000000000000000000000000000"
		      "000000000";
static char *layers[] = {layer};
static struct ml_image img;

static void put_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void setup(void)
{
	char chain[ML_DIGEST_LEN + 1], big[4096];
	char *p;

	if (!mkdtemp(root))
		abort();
	ml_image_chain_id(chain, layers, 0);
	p = ml_xasprintf("%s/image", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/image/overlay2", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/image/overlay2/layerdb", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/image/overlay2/layerdb/sha256", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/image/overlay2/layerdb/sha256/%s", root,
			 chain + 7);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/image/overlay2/layerdb/sha256/%s/diff", root,
			 chain + 7);
	put_file(p, layer, strlen(layer));
	free(p);
	p = ml_xasprintf("%s/image/overlay2/layerdb/sha256/%s/cache-id", root,
			 chain + 7);
	put_file(p, "c1", 2);
	free(p);
	p = ml_xasprintf("%s/overlay2", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/overlay2/c1", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/overlay2/c1/diff", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/overlay2/c1/diff/d", root);
	mkdir(p, 0700);
	free(p);
	p = ml_xasprintf("%s/overlay2/c1/diff/a.txt", root);
	put_file(p, "hello", 5);
	free(p);
	memset(big, 'b', sizeof(big));
	p = ml_xasprintf("%s/overlay2/c1/diff/d/b.bin", root);
	put_file(p, big, sizeof(big));
	free(p);
	record = ml_xasprintf("%s/image/overlay2/layerdb/sha256/%s/"
			      "tar-split.json.gz",
			      root, chain + 7);
	if (ml_dstore_open_root(&store, root) < 0)
		abort();
	img.layers = layers;
	img.nlayers = 1;
	img.config_digest = layer;
	ml_log_init("fuzz", ML_LOG_QUIET);
}

static int count(void *ctx, const void *p, size_t n)
{
	(void)p;
	*(size_t *)ctx += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *out;
	size_t n = 0;
	ssize_t r;

	if (!store)
		setup();
	out = ml_xmalloc(size / 4 * 3 + 1);
	r = ml_base64_decode(out, (const char *)data, size);
	if (r > (ssize_t)(size / 4 * 3))
		abort();
	free(out);

	put_file(record, data, size);
	if (ml_dstore_blob(store, &img, 1, count, &n) == 0 &&
	    n > size + (size / 16 + 1) * (5 + 4096))
		abort(); /* more than segments (<= size) and files can give */
	ml_err_clear();
	return 0;
}
