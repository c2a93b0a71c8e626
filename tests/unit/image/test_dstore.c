/*
 * Tests of orchestrator/image/dstore.c: chain IDs (against values Docker
 * 20.10 wrote in its layer database), base64, and a layer rebuilt from a
 * data root laid out here as Docker lays out its own: a tar made with
 * libarchive, cut into the tar-split record Docker keeps (raw segments and
 * file entries, one name in name_raw), gzip'd, and the files' contents in
 * the overlay2 diff directory. The rebuilt bytes must be the tar, byte
 * for byte; damaged records and missing files must fail, never write a
 * wrong blob (the cache would then refuse it by digest anyway).
 */
#include "common/ml.h"
#include "common/sha256.h"
#include "orchestrator/image/dstore.h"
#include "tests/support/proc.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <cmocka.h>

static void test_dstore__chain_id(void **state)
{
	/* a busybox layer, 190 MiB of weights, a code layer (Docker 20.10) */
	static char l0[] = "sha256:e0de254be74e18ecbee46b776c306a5d4999200229a1a106e0c8e963d0fbaa82",
		    l1[] = "sha256:0de94a6aae21e9937f2a780d713e39c3bd3f5d6b9a7ca9905ebfbdee28db7cb2",
		    l2[] = "sha256:31e92567d14574210258d700793ffd711c8ca9a8103381959babc0e08b95b3be";
	char *layers[] = {l0, l1, l2};
	char out[ML_DIGEST_LEN + 1];

	(void)state;
	ml_image_chain_id(out, layers, 0);
	assert_string_equal(out, layers[0]);
	ml_image_chain_id(out, layers, 1);
	assert_string_equal(out, "sha256:dfab37ea98c7f8d59e8ec5a4ed7b506335c38f8c9613800c6afeadf99e8f0834");
	ml_image_chain_id(out, layers, 2);
	assert_string_equal(out, "sha256:b5f6a392d0b6fb6c1f91339dd887964c73d2b47f81d9fbbe5baf780897f838b8");
}

static void test_dstore__base64(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: malformed */
	} cases[] = {
		{"", ""},
		{"Zg==", "f"},
		{"Zm8=", "fo"},
		{"Zm9v", "foo"},
		{"Zm9vYmFy", "foobar"},
		{"d3d3Lw==", "www/"},
		{"Zm9", NULL},
		{"Zm9v!A==", NULL},
		{"Zg==Zm9v", NULL},
		{"Z===", NULL},
		{"=Zm9", NULL},
	};
	unsigned char buf[64];
	ssize_t n;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = ml_base64_decode(buf, cases[i].in, strlen(cases[i].in));
		if (!cases[i].out) {
			if (n != -1)
				fail_msg("'%s' decoded", cases[i].in);
			continue;
		}
		assert_int_equal(n, strlen(cases[i].out));
		assert_memory_equal(buf, cases[i].out, (size_t)n);
	}
}

/* ---- a data root made here --------------------------------------------- */

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_add(struct ml_buf *b, const unsigned char *p, size_t n)
{
	size_t i;
	unsigned v;

	for (i = 0; i < n; i += 3) {
		v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		ml_buf_addch(b, b64[v >> 18 & 63]);
		ml_buf_addch(b, b64[v >> 12 & 63]);
		ml_buf_addch(b, i + 1 < n ? b64[v >> 6 & 63] : '=');
		ml_buf_addch(b, i + 2 < n ? b64[v & 63] : '=');
	}
}

static void segment(struct ml_buf *rec, const unsigned char *p, size_t n)
{
	ml_buf_addstr(rec, "{\"type\":2,\"payload\":\"");
	b64_add(rec, p, n);
	ml_buf_addstr(rec, "\",\"position\":0}\n");
}

struct root {
	char *dir;
	char *layer_dir; /* layerdb/sha256/<chain> */
	char *diff;	 /* overlay2/<cache-id>/diff */
	struct ml_buf tar;
	char digest[ML_DIGEST_LEN + 1];
	char *layers[1];
	struct ml_image img;
};

static void mkdir_p(const char *path)
{
	const char *argv[] = {"mkdir", "-p", path, NULL};
	struct ml_test_out o;

	assert_int_equal(ml_test_run(&o, NULL, NULL, NULL, 30, argv), 0);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
}

static void add_entry(struct archive *a, const char *name, const char *data,
		      size_t n, bool dir)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(e, dir ? 0755 : 0644);
	archive_entry_set_size(e, dir ? 0 : (la_int64_t)n);
	archive_entry_set_mtime(e, 1700000000, 0);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (n)
		assert_int_equal(archive_write_data(a, data, n), (la_ssize_t)n);
	archive_entry_free(e);
}

/*
 * A layer of "a.txt" (5 bytes), "d/" and "d/b.bin" (70000 bytes: more
 * than one read), in Docker's layout under a new root; record holds the
 * tar-split lines as Docker writes them, or replacement text.
 */
static void make_root(struct root *r, const char *record_override)
{
	static char big[70000], tarbuf[1 << 18];
	struct ml_buf rec = ML_BUF_INIT(0), path = ML_BUF_INIT(0),
		      name = ML_BUF_INIT(0);
	struct ml_test_out o;
	struct archive *a = archive_write_new();
	const unsigned char *t;
	char hex[ML_SHA256_HEX];
	size_t used = 0, i, off;
	const char *gz[] = {"gzip", "-n", "-f", NULL, NULL};

	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 31 + i / 977);
	assert_int_equal(archive_write_set_format_ustar(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, tarbuf, sizeof(tarbuf),
						   &used),
			 ARCHIVE_OK);
	add_entry(a, "a.txt", "hello", 5, false);
	add_entry(a, "d/", NULL, 0, true);
	add_entry(a, "d/b.bin", big, sizeof(big), false);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	ml_buf_init(&r->tar, 0);
	ml_buf_add(&r->tar, tarbuf, used);
	ml_sha256_hex(tarbuf, used, hex);
	snprintf(r->digest, sizeof(r->digest), "sha256:%s", hex);
	r->layers[0] = r->digest;
	memset(&r->img, 0, sizeof(r->img));
	r->img.layers = r->layers;
	r->img.nlayers = 1;
	r->img.config_digest = r->digest; /* unused: no config here */

	/* ustar: header 512, data padded to 512 */
	t = (const unsigned char *)tarbuf;
	segment(&rec, t, 512);
	ml_buf_addstr(&rec, "{\"type\":1,\"name\":\"a.txt\",\"size\":5,"
			    "\"payload\":\"AAAAAAAAAAA=\",\"position\":1}\n");
	off = 512 + 5;
	segment(&rec, t + off, 507 + 512 + 512);
	off += 507 + 512 + 512;
	ml_buf_addstr(&rec, "{\"type\":1,\"name_raw\":\"");
	b64_add(&rec, (const unsigned char *)"d/b.bin", 7);
	ml_buf_addf(&rec, "\",\"size\":%zu,\"payload\":null,\"position\":3}\n",
		    sizeof(big));
	off += sizeof(big);
	segment(&rec, t + off, used - off);

	r->dir = ml_test_tmpdir("dstore");
	r->layer_dir = ml_xasprintf("%s/image/overlay2/layerdb/sha256/%s",
				    r->dir, hex);
	r->diff = ml_xasprintf("%s/overlay2/cid1/diff", r->dir);
	ml_buf_addf(&path, "%s/d", r->diff);
	mkdir_p(path.data);
	mkdir_p(r->layer_dir);
	ml_test_write(r->diff, "a.txt", "hello");
	ml_buf_reset(&path);
	ml_buf_addf(&path, "%s/d/b.bin", r->diff);
	{
		FILE *f = fopen(path.data, "w");

		assert_non_null(f);
		assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
		fclose(f);
	}
	ml_buf_addf(&name, "%s\n", r->digest);
	ml_test_write(r->layer_dir, "diff", name.data);
	ml_test_write(r->layer_dir, "cache-id", "cid1");
	ml_test_write(r->layer_dir, "tar-split.json",
		      record_override ? record_override : rec.data);
	ml_buf_reset(&path);
	ml_buf_addf(&path, "%s/tar-split.json", r->layer_dir);
	gz[3] = path.data;
	assert_int_equal(ml_test_run(&o, NULL, NULL, NULL, 30, gz), 0);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	ml_buf_release(&rec);
	ml_buf_release(&path);
	ml_buf_release(&name);
}

static void free_root(struct root *r)
{
	ml_test_rmtree(r->dir);
	free(r->dir);
	free(r->layer_dir);
	free(r->diff);
	ml_buf_release(&r->tar);
}

static int put_buf(void *ctx, const void *p, size_t n)
{
	return ml_buf_add(ctx, p, n);
}

static void test_dstore__rebuild(void **state)
{
	struct ml_buf out = ML_BUF_INIT(0);
	struct ml_dstore *s;
	struct root r;

	(void)state;
	make_root(&r, NULL);
	assert_int_equal(ml_dstore_open_root(&s, r.dir), 0);
	if (ml_dstore_blob(s, &r.img, 1, put_buf, &out) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(out.len, r.tar.len);
	assert_memory_equal(out.data, r.tar.data, out.len);

	/* a directory of the layer replaced by a symbolic link to one
	 * outside it, holding the same file: not followed */
	{
		char *d = ml_xasprintf("%s/d", r.diff),
		     *out_dir = ml_xasprintf("%s/elsewhere", r.dir);

		assert_int_equal(rename(d, out_dir), 0);
		assert_int_equal(symlink(out_dir, d), 0);
		ml_buf_reset(&out);
		assert_int_equal(ml_dstore_blob(s, &r.img, 1, put_buf, &out),
				 ML_EFAIL);
		assert_non_null(strstr(ml_err_msg(), "d/b.bin"));
		assert_int_equal(unlink(d), 0);
		assert_int_equal(rename(out_dir, d), 0);
		free(d);
		free(out_dir);
	}

	/* a file gone from the diff directory */
	ml_buf_reset(&out);
	{
		char *p = ml_xasprintf("%s/d/b.bin", r.diff);

		assert_int_equal(unlink(p), 0);
		free(p);
	}
	assert_int_equal(ml_dstore_blob(s, &r.img, 1, put_buf, &out),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "d/b.bin"));
	ml_dstore_free(s);
	free_root(&r);
	ml_buf_release(&out);
}

static void test_dstore__bad_records(void **state)
{
	static const struct {
		const char *record;
		const char *msg;
	} cases[] = {
		{"{\"type\":3}\n", "line 1: an entry of unknown type"},
		{"not json\n", "line 1: not a JSON object"},
		{"{\"type\":2,\"payload\":\"Zm9v\"}\n{\"type\":2,\"payload\":"
		 "\"!!!!\"}\n",
		 "line 2: a payload that is not base64"},
		{"{\"type\":1,\"name\":\"../etc/passwd\",\"size\":4}\n",
		 "escapes the archive root"},
		{"{\"type\":1,\"size\":4}\n", "line 1: a file without a name"},
		{"{\"type\":1,\"name\":\"a.txt\",\"size\":9}\n",
		 "is shorter than Docker's record"},
	};
	struct ml_buf out = ML_BUF_INIT(0);
	struct ml_dstore *s;
	struct root r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_root(&r, cases[i].record);
		assert_int_equal(ml_dstore_open_root(&s, r.dir), 0);
		ml_buf_reset(&out);
		assert_true(ml_dstore_blob(s, &r.img, 1, put_buf, &out) < 0);
		if (!strstr(ml_err_msg(), cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, ml_err_msg(),
				 cases[i].msg);
		ml_dstore_free(s);
		free_root(&r);
	}
	ml_buf_release(&out);
}

static void test_dstore__not_there(void **state)
{
	struct ml_buf out = ML_BUF_INIT(0);
	struct ml_dstore *s;
	struct root r;
	char *other;

	(void)state;
	make_root(&r, NULL);
	assert_int_equal(ml_dstore_open_root(&s, r.dir), 0);
	/* a layer the store does not hold: not found, nothing written */
	other = ml_xstrdup("sha256:00000000000000000000000000000000000000000"
			   "00000000000000000000000");
	r.layers[0] = other;
	assert_int_equal(ml_dstore_blob(s, &r.img, 1, put_buf, &out),
			 ML_ENOTFOUND);
	assert_int_equal(out.len, 0);
	/* no config in the image database */
	r.img.config_digest = other;
	assert_int_equal(ml_dstore_blob(s, &r.img, 0, put_buf, &out),
			 ML_ENOTFOUND);
	ml_dstore_free(s);
	free(other);
	free_root(&r);
	ml_buf_release(&out);
	/* a root without Docker's image database */
	other = ml_test_tmpdir("dstore-empty");
	assert_int_equal(ml_dstore_open_root(&s, other), ML_ENOTFOUND);
	assert_non_null(strstr(ml_err_msg(), "cannot read Docker's store"));
	ml_test_rmtree(other);
	free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dstore__chain_id),
		cmocka_unit_test(test_dstore__base64),
		cmocka_unit_test(test_dstore__rebuild),
		cmocka_unit_test(test_dstore__bad_records),
		cmocka_unit_test(test_dstore__not_there),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
