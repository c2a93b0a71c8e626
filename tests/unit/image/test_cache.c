/*
 * Tests of orchestrator/image/cache.c: the tar entry check (a pure
 * function, table-driven), the cache's directories, and the docker-save
 * reader fed with archives made here with libarchive: Docker 20.10's
 * layout, the OCI layout, a layer whose bytes do not match its digest,
 * hostile entries, truncated and non-tar input.
 *
 * With MLCTL_TEST_DOCKER set, ml_cache_fill also runs against the real
 * controller Docker (its socket: $MLCTL_DOCKER_SOCK, else /run/docker.sock)
 * with the image mlctl-test/busybox:latest, which must be loaded there.
 * Without it those tests are skipped, saying so.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/io.h"
#include "common/sha256.h"
#include "orchestrator/image/image.h"
#include "tests/support/proc.h"
#include "tests/unit/common/mem_io.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <sys/stat.h>
#include <utime.h>

#include <setjmp.h>
#include <cmocka.h>

#include "tests/support/assert.h"

/* ---- the entry check --------------------------------------------------- */

static void test_cache__entry_check(void **state)
{
	static const struct {
		const char *name;
		enum ml_tar_type type;
		const char *link;
		int rc;
		const char *msg;
	} cases[] = {
		{"manifest.json", ML_TAR_FILE, NULL, 0, NULL},
		{"./manifest.json", ML_TAR_FILE, NULL, 0, NULL},
		{"./", ML_TAR_DIR, NULL, 0, NULL},
		{"abc/", ML_TAR_DIR, NULL, 0, NULL},
		{"a/b/c/d/e/f/g/layer.tar", ML_TAR_FILE, NULL, 0, NULL},
		{"a..b/..c/d..", ML_TAR_FILE, NULL, 0, NULL},
		{"/etc/passwd", ML_TAR_FILE, NULL, ML_EINVALID,
		 "image archive entry '/etc/passwd' escapes the archive "
		 "root"},
		{"../evil", ML_TAR_FILE, NULL, ML_EINVALID,
		 "image archive entry '../evil' escapes the archive root"},
		{"a/../b", ML_TAR_FILE, NULL, ML_EINVALID, "'a/../b' escapes"},
		{"a/..", ML_TAR_DIR, NULL, ML_EINVALID, "'a/..' escapes"},
		{"a/b/../../..", ML_TAR_DIR, NULL, ML_EINVALID, "escapes"},
		{"", ML_TAR_FILE, NULL, ML_EINVALID,
		 "image archive entry with an empty name"},
		{"dev", ML_TAR_OTHER, NULL, ML_EINVALID,
		 "'dev' is a device, fifo or socket"},
		{"bad\033[2Jname/../x", ML_TAR_FILE, NULL, ML_EINVALID,
		 "'bad\\x1b[2Jname/../x' escapes"},
		/* docker save links a repeated layer to its first copy */
		{"b/layer.tar", ML_TAR_SYMLINK, "../a/layer.tar", 0, NULL},
		{"a/b/c/l", ML_TAR_SYMLINK, "../../x", 0, NULL},
		{"a/b/c/l", ML_TAR_SYMLINK, "../../../x", 0, NULL},
		{"a/l", ML_TAR_SYMLINK, "./b/./c", 0, NULL},
		{"a/l", ML_TAR_SYMLINK, "b/../../x", 0, NULL},
		{"l", ML_TAR_SYMLINK, "../x", ML_EINVALID,
		 "image archive entry 'l' escapes the archive root: it is "
		 "a symbolic link to '../x'"},
		{"a/b/c/l", ML_TAR_SYMLINK, "../../../../etc/passwd",
		 ML_EINVALID, "escapes the archive root"},
		{"a/l", ML_TAR_SYMLINK, "../../etc", ML_EINVALID, "escapes"},
		{"a/l", ML_TAR_SYMLINK, "x/../../../y", ML_EINVALID, "escapes"},
		{"l", ML_TAR_SYMLINK, "/etc/passwd", ML_EINVALID,
		 "to '/etc/passwd'"},
		{"l", ML_TAR_SYMLINK, "", ML_EINVALID,
		 "'l' is a symbolic link without a target"},
		{"l", ML_TAR_SYMLINK, NULL, ML_EINVALID, "without a target"},
		{"a/h", ML_TAR_HARDLINK, "b/c", 0, NULL},
		{"a/h", ML_TAR_HARDLINK, "b/../c", 0, NULL},
		{"a/b/h", ML_TAR_HARDLINK, "../c", ML_EINVALID,
		 "escapes the archive root: it is a hard link to '../c'"},
		{"h", ML_TAR_HARDLINK, "/etc/shadow", ML_EINVALID, "escapes"},
		{"h", ML_TAR_HARDLINK, "a/../../x", ML_EINVALID, "escapes"},
	};
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		ml_err_clear();
		rc = ml_tar_entry_check(cases[i].name, cases[i].type,
					cases[i].link);
		if (rc != cases[i].rc)
			fail_msg("case %zu '%s': rc %d, want %d (%s)", i,
				 cases[i].name, rc, cases[i].rc, ml_err_msg());
		if (cases[i].msg)
			assert_msg_has(cases[i].msg);
	}
}

static void test_cache__entry_check_long(void **state)
{
	char *name = ml_xmalloc(ML_TAR_NAME_MAX + 2);

	(void)state;
	memset(name, 'a', ML_TAR_NAME_MAX + 1);
	name[ML_TAR_NAME_MAX] = '\0';
	assert_int_equal(ml_tar_entry_check(name, ML_TAR_FILE, NULL), 0);
	name[ML_TAR_NAME_MAX] = 'a';
	name[ML_TAR_NAME_MAX + 1] = '\0';
	assert_int_equal(ml_tar_entry_check(name, ML_TAR_FILE, NULL),
			 ML_ETOOBIG);
	assert_msg_has("longer than 4096 bytes");
	assert_int_equal(ml_tar_entry_check("l", ML_TAR_SYMLINK, name),
			 ML_ETOOBIG);
	free(name);
}

static void test_cache__digest_valid(void **state)
{
	char d[80];

	(void)state;
	snprintf(d, sizeof(d), "sha256:%064d", 0);
	assert_true(ml_digest_valid(d));
	d[10] = 'f';
	assert_true(ml_digest_valid(d));
	d[10] = 'F';
	assert_false(ml_digest_valid(d));
	d[10] = '/';
	assert_false(ml_digest_valid(d));
	d[10] = '0';
	d[70] = '\0';
	assert_false(ml_digest_valid(d));
	assert_false(ml_digest_valid("sha256:"));
	assert_false(ml_digest_valid("sha512:00"));
	assert_false(ml_digest_valid(NULL));
	snprintf(d, sizeof(d), "sha256:%064d0", 0);
	assert_false(ml_digest_valid(d));
}

/* ---- fixtures ---------------------------------------------------------- */

enum { T_FILE, T_DIR, T_SYMLINK, T_HARDLINK, T_FIFO };

struct tent {
	const char *name;
	int type;
	const char *data; /* NULL: "" */
	size_t len;	  /* 0: strlen(data) */
	const char *link;
};

static la_ssize_t buf_write_cb(struct archive *a, void *ctx, const void *p,
			       size_t n)
{
	(void)a;
	if (ml_buf_add(ctx, p, n) < 0)
		return -1;
	return (la_ssize_t)n;
}

/* A tar stream of the entries, in order, into out (reset first). */
static void make_tar(struct ml_buf *out, const struct tent *e, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	size_t i, len;

	ml_buf_reset(out);
	assert_int_equal(archive_write_set_format_pax_restricted(a),
			 ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, out, NULL, buf_write_cb, NULL),
			 ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		const char *data = e[i].data ? e[i].data : "";

		len = e[i].len ? e[i].len : strlen(data);
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_mtime(ae, 0, 0);
		switch (e[i].type) {
		case T_FILE:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_size(ae, (la_int64_t)len);
			break;
		case T_DIR:
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
			break;
		case T_SYMLINK:
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_perm(ae, 0777);
			archive_entry_set_symlink(ae, e[i].link);
			break;
		case T_HARDLINK:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_hardlink(ae, e[i].link);
			break;
		case T_FIFO:
			archive_entry_set_filetype(ae, AE_IFIFO);
			archive_entry_set_perm(ae, 0644);
			break;
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (e[i].type == T_FILE && len)
			assert_int_equal(archive_write_data(a, data, len),
					 (la_ssize_t)len);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(ae);
}

/* A fake image: a config and three layers (the third repeats the first). */
struct fake {
	char *config;
	char *layer[2];
	size_t layer_len[2];
	char cfg_hex[ML_SHA256_HEX];
	char hex[2][ML_SHA256_HEX];
	char cfg_json[80]; /* "<hex>.json" */
	char dir[2][80];   /* layer dirs: any name */
	char ltar[3][96];  /* "<dir>/layer.tar" */
	char link3[128];   /* "../<dir 0>/layer.tar" */
	char oci_cfg[96];  /* "blobs/sha256/<hex>" */
	char oci_layer[2][96];
	struct ml_image img; /* layers: 0, 1, 0 */
	char *digests[4];
};

struct fx {
	char *tmp;
	struct ml_cache *c;
	struct fake f;
	struct ml_buf tar;
};

/*
 * snprintf, out of line: gcc -O1 inlines fake_init into setup and then
 * warns (-Wrestrict) of an overlap between distinct members of *f.
 */
ML_PRINTF(3, 4)
static void __attribute__((noinline))
fmt_to(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

static void fake_init(struct fake *f)
{
	size_t i, j;

	f->config = ml_xstrdup("{\"architecture\":\"amd64\",\"os\":\"linux\","
			       "\"rootfs\":{\"type\":\"layers\"}}");
	ml_sha256_hex(f->config, strlen(f->config), f->cfg_hex);
	for (i = 0; i < 2; i++) {
		/* layer data: bigger than one 64 KiB read, and binary */
		f->layer_len[i] = 200000 + i * 777;
		f->layer[i] = ml_xmalloc(f->layer_len[i]);
		for (j = 0; j < f->layer_len[i]; j++)
			f->layer[i][j] = (char)((j * 31 + i * 7) & 0xff);
		ml_sha256_hex(f->layer[i], f->layer_len[i], f->hex[i]);
		fmt_to(f->dir[i], sizeof(f->dir[i]), "%.20s%zu", f->hex[i], i);
		fmt_to(f->ltar[i], sizeof(f->ltar[i]), "%s/layer.tar",
		       f->dir[i]);
		fmt_to(f->oci_layer[i], sizeof(f->oci_layer[i]),
		       "blobs/sha256/%s", f->hex[i]);
	}
	fmt_to(f->ltar[2], sizeof(f->ltar[2]), "third/layer.tar");
	fmt_to(f->link3, sizeof(f->link3), "../%s", f->ltar[0]);
	fmt_to(f->cfg_json, sizeof(f->cfg_json), "%s.json", f->cfg_hex);
	fmt_to(f->oci_cfg, sizeof(f->oci_cfg), "blobs/sha256/%s", f->cfg_hex);
	f->digests[0] = ml_xasprintf("sha256:%s", f->cfg_hex);
	f->digests[1] = ml_xasprintf("sha256:%s", f->hex[0]);
	f->digests[2] = ml_xasprintf("sha256:%s", f->hex[1]);
	f->digests[3] = NULL;
	memset(&f->img, 0, sizeof(f->img));
	f->img.id = f->digests[0];
	f->img.config_digest = f->digests[0];
	f->img.layers = ml_xcalloc(3, sizeof(char *));
	f->img.layers[0] = f->digests[1];
	f->img.layers[1] = f->digests[2];
	f->img.layers[2] = f->digests[1];
	f->img.nlayers = 3;
	f->img.layer_sizes = ml_xcalloc(3, sizeof(int64_t));
	f->img.ref = (char *)"fake:1";
}

static void fake_release(struct fake *f)
{
	size_t i;

	free(f->config);
	for (i = 0; i < 2; i++)
		free(f->layer[i]);
	for (i = 0; i < 3; i++)
		free(f->digests[i]);
	free(f->img.layers);
	free(f->img.layer_sizes);
}

static int setup(void **state)
{
	struct fx *x = ml_xcalloc(1, sizeof(*x));

	x->tmp = ml_test_tmpdir("cache");
	if (ml_cache_open(&x->c, x->tmp) < 0)
		fail_msg("%s", ml_err_msg());
	fake_init(&x->f);
	ml_buf_init(&x->tar, 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	ml_cache_free(x->c);
	ml_test_rmtree(x->tmp);
	free(x->tmp);
	fake_release(&x->f);
	ml_buf_release(&x->tar);
	free(x);
	return 0;
}

/* Feed x->tar to the reader in reads of at most chunk bytes. */
static int extract(struct fx *x, size_t chunk)
{
	struct mem_io m;
	struct ml_io io;
	int rc;

	mem_io_init(&io, &m, x->tar.data, x->tar.len);
	m.chunk = chunk;
	rc = ml_cache_extract(x->c, &x->f.img, &io);
	mem_io_release(&m);
	return rc;
}

/* Number of files in dir (not . and ..). */
static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static size_t count_blobs(struct fx *x)
{
	char *p = ml_xasprintf("%s/blobs/sha256", x->tmp);
	size_t n = count_files(p);

	free(p);
	return n;
}

static size_t count_tmp(struct fx *x)
{
	char *p = ml_xasprintf("%s/blobs/tmp", x->tmp);
	size_t n = count_files(p);

	free(p);
	return n;
}

/* The cached blob's bytes equal p[0..n), its mode is 0600. */
static void assert_blob(struct fx *x, const char *digest, const void *p,
			size_t n)
{
	struct ml_buf b = ML_BUF_INIT(0);
	struct stat st;
	char *path;

	assert_true(ml_cache_has(x->c, digest));
	assert_int_equal(ml_cache_path(&path, x->c, digest), 0);
	assert_int_equal(ml_buf_read_file(&b, path), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, p, n);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(path);
	ml_buf_release(&b);
}

/* The entries of a Docker 20.10 save of the fake image. */
static size_t save_entries(struct fake *f, struct tent *e)
{
	size_t n = 0;

	e[n++] = (struct tent){f->dir[1], T_DIR, NULL, 0, NULL};
	e[n++] = (struct tent){f->ltar[1], T_FILE, f->layer[1], f->layer_len[1],
			       NULL};
	e[n++] = (struct tent){"x/VERSION", T_FILE, "1.0", 0, NULL};
	e[n++] = (struct tent){"x/json", T_FILE, "{}", 0, NULL};
	e[n++] = (struct tent){"manifest.json", T_FILE, "[{}]", 0, NULL};
	e[n++] = (struct tent){f->ltar[0], T_FILE, f->layer[0], f->layer_len[0],
			       NULL};
	e[n++] = (struct tent){"third", T_DIR, NULL, 0, NULL};
	e[n++] = (struct tent){f->ltar[2], T_SYMLINK, NULL, 0, f->link3};
	e[n++] = (struct tent){f->cfg_json, T_FILE, f->config, 0, NULL};
	e[n++] = (struct tent){"repositories", T_FILE, "{}", 0, NULL};
	return n;
}

/* ---- the cache's directories ------------------------------------------- */

static void test_cache__open_dirs(void **state)
{
	struct fx *x = *state;
	struct ml_cache *c;
	struct stat st;
	char *dir, *p, *old;
	struct utimbuf ut = {1000, 1000};

	dir = ml_xasprintf("%s/new/nested", x->tmp);
	assert_int_equal(ml_cache_open(&c, dir), 0);
	assert_string_equal(ml_cache_dir(c), dir);
	p = ml_xasprintf("%s/blobs/sha256", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	free(p);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	ml_cache_free(c);

	/* litter in tmp/: old files go, fresh ones (another run's) stay */
	old = ml_xasprintf("%s/blobs/tmp/blob-old", dir);
	p = ml_xasprintf("%s/blobs/tmp/blob-new", dir);
	ml_test_write(dir, "blobs/tmp/blob-old", "x");
	ml_test_write(dir, "blobs/tmp/blob-new", "x");
	assert_int_equal(utime(old, &ut), 0);
	assert_int_equal(ml_cache_open(&c, dir), 0);
	assert_int_not_equal(access(old, F_OK), 0);
	assert_int_equal(access(p, F_OK), 0);
	ml_cache_free(c);
	free(old);
	free(p);

	/* a file where the cache should be */
	ml_test_write(x->tmp, "file", "x");
	free(dir);
	dir = ml_xasprintf("%s/file", x->tmp);
	assert_int_equal(ml_cache_open(&c, dir), ML_EFAIL);
	assert_null(c);
	free(dir);
}

static void test_cache__open_env(void **state)
{
	struct fx *x = *state;
	struct ml_cache *c;
	char *want, *home = getenv("HOME") ? ml_xstrdup(getenv("HOME")) : NULL;

	setenv("MLCTL_CACHE_DIR", x->tmp, 1);
	assert_int_equal(ml_cache_open(&c, NULL), 0);
	assert_string_equal(ml_cache_dir(c), x->tmp);
	ml_cache_free(c);
	unsetenv("MLCTL_CACHE_DIR");

	setenv("XDG_CACHE_HOME", x->tmp, 1);
	want = ml_xasprintf("%s/mlctl", x->tmp);
	assert_int_equal(ml_cache_open(&c, NULL), 0);
	assert_string_equal(ml_cache_dir(c), want);
	ml_cache_free(c);
	free(want);

	setenv("XDG_CACHE_HOME", "relative/ignored", 1);
	setenv("HOME", x->tmp, 1);
	want = ml_xasprintf("%s/.cache/mlctl", x->tmp);
	assert_int_equal(ml_cache_open(&c, NULL), 0);
	assert_string_equal(ml_cache_dir(c), want);
	ml_cache_free(c);
	free(want);
	unsetenv("XDG_CACHE_HOME");

	unsetenv("HOME");
	assert_int_equal(ml_cache_open(&c, NULL), ML_EFAIL);
	assert_msg_has("set MLCTL_CACHE_DIR");
	if (home)
		setenv("HOME", home, 1);
	free(home);
}

static void test_cache__path(void **state)
{
	struct fx *x = *state;
	char *p, *want;

	assert_int_equal(ml_cache_path(&p, x->c, x->f.digests[1]), 0);
	want = ml_xasprintf("%s/blobs/sha256/%s", x->tmp, x->f.hex[0]);
	assert_string_equal(p, want);
	free(p);
	free(want);
	assert_int_equal(ml_cache_path(&p, x->c, "sha256:../../etc/passwd"),
			 ML_EINVALID);
	assert_null(p);
	assert_false(ml_cache_has(x->c, "sha256:../x"));
	assert_false(ml_cache_has(x->c, x->f.digests[1]));
}

/* ---- reading archives -------------------------------------------------- */

static void test_cache__extract_save(void **state)
{
	struct fx *x = *state;
	struct tent e[16];
	size_t n = save_entries(&x->f, e);

	make_tar(&x->tar, e, n);
	if (extract(x, 1000) < 0)
		fail_msg("%s", ml_err_msg());
	assert_blob(x, x->f.digests[0], x->f.config, strlen(x->f.config));
	assert_blob(x, x->f.digests[1], x->f.layer[0], x->f.layer_len[0]);
	assert_blob(x, x->f.digests[2], x->f.layer[1], x->f.layer_len[1]);
	assert_int_equal(count_blobs(x), 3);
	assert_int_equal(count_tmp(x), 0);
	assert_int_equal(x->f.img.config_size, strlen(x->f.config));
	assert_int_equal(x->f.img.layer_sizes[0], x->f.layer_len[0]);
	assert_int_equal(x->f.img.layer_sizes[1], x->f.layer_len[1]);
	assert_int_equal(x->f.img.layer_sizes[2], x->f.layer_len[0]);

	/* again: everything is cached, the archive is only read through */
	memset(x->f.img.layer_sizes, 0, 3 * sizeof(int64_t));
	if (extract(x, 0) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(count_blobs(x), 3);
	assert_int_equal(count_tmp(x), 0);
	assert_int_equal(x->f.img.layer_sizes[1], x->f.layer_len[1]);
}

static void test_cache__extract_partly_cached(void **state)
{
	struct fx *x = *state;
	struct tent e[16];
	size_t n = save_entries(&x->f, e);
	char *p;

	/* layer 0 is there already, byte for byte */
	assert_int_equal(ml_cache_path(&p, x->c, x->f.digests[1]), 0);
	{
		FILE *fp = fopen(p, "w");

		assert_non_null(fp);
		fwrite(x->f.layer[0], 1, x->f.layer_len[0], fp);
		fclose(fp);
	}
	free(p);
	make_tar(&x->tar, e, n);
	if (extract(x, 0) < 0)
		fail_msg("%s", ml_err_msg());
	assert_blob(x, x->f.digests[2], x->f.layer[1], x->f.layer_len[1]);
	assert_int_equal(count_blobs(x), 3);
	assert_int_equal(count_tmp(x), 0);
}

static void test_cache__extract_oci(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->f;
	struct tent e[] = {
		{"oci-layout", T_FILE, "{\"imageLayoutVersion\":\"1.0.0\"}", 0,
		 NULL},
		{"index.json", T_FILE, "{}", 0, NULL},
		{"blobs", T_DIR, NULL, 0, NULL},
		{"blobs/sha256", T_DIR, NULL, 0, NULL},
		{f->oci_layer[1], T_FILE, f->layer[1], f->layer_len[1], NULL},
		/* the manifest: a blob the image does not want */
		{"blobs/sha256/"
		 "0000000000000000000000000000000000000000000000000000000000"
		 "000000",
		 T_FILE, "{}", 0, NULL},
		{f->oci_cfg, T_FILE, f->config, 0, NULL},
		{f->oci_layer[0], T_FILE, f->layer[0], f->layer_len[0], NULL},
		{"manifest.json", T_FILE, "[{}]", 0, NULL},
	};

	make_tar(&x->tar, e, ML_ARRAY_SIZE(e));
	if (extract(x, 4096) < 0)
		fail_msg("%s", ml_err_msg());
	assert_blob(x, f->digests[0], f->config, strlen(f->config));
	assert_blob(x, f->digests[1], f->layer[0], f->layer_len[0]);
	assert_blob(x, f->digests[2], f->layer[1], f->layer_len[1]);
	assert_int_equal(count_blobs(x), 3);
	assert_int_equal(count_tmp(x), 0);
}

static void test_cache__extract_corrupt_layer(void **state)
{
	struct fx *x = *state;
	struct tent e[16];
	size_t n = save_entries(&x->f, e);
	char *bad = ml_xmalloc(x->f.layer_len[1]);

	/* layer 1 with one byte changed: its digest is not the diffID */
	memcpy(bad, x->f.layer[1], x->f.layer_len[1]);
	bad[12345] ^= 1;
	e[1].data = bad;
	make_tar(&x->tar, e, n);
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_msg_has("the image archive of 'fake:1' lacks layer 2, ");
	assert_msg_has(x->f.digests[2]);
	assert_false(ml_cache_has(x->c, x->f.digests[2]));
	/* nothing at all was stored, not even the good blobs */
	assert_int_equal(count_blobs(x), 0);
	assert_int_equal(count_tmp(x), 0);

	/* the config in an entry named for another digest is not taken */
	e[1].data = x->f.layer[1];
	e[8].name = "1111111111111111111111111111111111111111111111111111111"
		    "111111111.json";
	make_tar(&x->tar, e, n);
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_msg_has("lacks its config");
	assert_int_equal(count_blobs(x), 0);
	free(bad);
}

static void test_cache__extract_hostile(void **state)
{
	struct fx *x = *state;
	struct tent e[16];
	size_t n = save_entries(&x->f, e), i;
	static const struct {
		struct tent t;
		int rc;
		const char *msg;
	} bad[] = {
		{{"../evil", T_FILE, "x", 0, NULL},
		 ML_EINVALID,
		 "image archive entry '../evil' escapes the archive root"},
		{{"a/../../evil", T_FILE, "x", 0, NULL},
		 ML_EINVALID,
		 "'a/../../evil' escapes the archive root"},
		{{"/etc/cron.d/x", T_FILE, "x", 0, NULL},
		 ML_EINVALID,
		 "escapes the archive root"},
		{{"x/layer.tar", T_SYMLINK, NULL, 0, "../../etc/passwd"},
		 ML_EINVALID,
		 "'x/layer.tar' escapes the archive root: it is a symbolic "
		 "link to '../../etc/passwd'"},
		{{"l", T_SYMLINK, NULL, 0, "/etc/passwd"},
		 ML_EINVALID,
		 "escapes"},
		{{"h", T_HARDLINK, NULL, 0, "../outside"},
		 ML_EINVALID,
		 "it is a hard link to '../outside'"},
		{{"h", T_HARDLINK, NULL, 0, "/etc/shadow"},
		 ML_EINVALID,
		 "escapes"},
		{{"fifo", T_FIFO, NULL, 0, NULL},
		 ML_EINVALID,
		 "'fifo' is a device, fifo or socket"},
		{{"esc\033]0;pwned\007/../x", T_FILE, "x", 0, NULL},
		 ML_EINVALID,
		 "'esc\\x1b]0;pwned\\x07/../x' escapes"},
	};

	for (i = 0; i < ML_ARRAY_SIZE(bad); i++) {
		/* after every good entry, so that all blobs were seen */
		e[n] = bad[i].t;
		make_tar(&x->tar, e, n + 1);
		ml_err_clear();
		if (extract(x, 0) != bad[i].rc)
			fail_msg("case %zu: %s", i, ml_err_msg());
		assert_msg_has(bad[i].msg);
		assert_int_equal(count_blobs(x), 0);
		assert_int_equal(count_tmp(x), 0);
	}
}

static void test_cache__extract_too_many(void **state)
{
	struct fx *x = *state;
	size_t n = ML_TAR_MAX_ENTRIES + 1, i;
	struct tent *e = ml_xcalloc(n, sizeof(*e));
	char(*names)[16] = ml_xcalloc(n, sizeof(*names));

	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "d%zu/", i);
		e[i] = (struct tent){names[i], T_DIR, NULL, 0, NULL};
	}
	make_tar(&x->tar, e, n);
	assert_int_equal(extract(x, 0), ML_ETOOBIG);
	assert_msg_has("more than 10000 entries");
	/* exactly the limit is fine (and then blobs are missing) */
	make_tar(&x->tar, e, n - 1);
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_msg_has("lacks its config");
	free(e);
	free(names);
}

static void test_cache__extract_truncated(void **state)
{
	struct fx *x = *state;
	struct tent e[16];
	size_t n = save_entries(&x->f, e);

	make_tar(&x->tar, e, n);
	/* cut in the middle of layer 0's data (entry 6 of 10) */
	x->tar.len = x->tar.len / 2 + 1000;
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_msg_has("cannot read the image archive of 'fake:1'");
	assert_int_equal(count_blobs(x), 0);
	assert_int_equal(count_tmp(x), 0);

	/* not a tar at all */
	ml_buf_reset(&x->tar);
	for (n = 0; n < 3000; n++)
		ml_buf_addstr(&x->tar, "not a tar ");
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_msg_has("cannot read the image archive");

	/* nothing */
	ml_buf_reset(&x->tar);
	assert_int_equal(extract(x, 0), ML_EFAIL);
	assert_int_equal(count_blobs(x), 0);
}

static ssize_t failing_read(void *ctx, void *buf, size_t n)
{
	size_t *left = ctx;

	(void)buf;
	if (*left == 0)
		return ml_err_set(ML_EHOST, "the stream broke (test)");
	n = n < *left ? n : *left;
	memset(buf, 0, n);
	*left -= n;
	return (ssize_t)n;
}

static void test_cache__extract_read_fails(void **state)
{
	struct fx *x = *state;
	size_t left = 0;
	struct ml_io io = {failing_read, NULL, &left};

	assert_int_equal(ml_cache_extract(x->c, &x->f.img, &io), ML_EHOST);
	assert_string_equal(ml_err_msg(), "the stream broke (test)");
	left = 512; /* a zero block, then the failure */
	assert_int_equal(ml_cache_extract(x->c, &x->f.img, &io), ML_EHOST);
	assert_string_equal(ml_err_msg(), "the stream broke (test)");
	assert_int_equal(count_tmp(x), 0);
}

static void test_cache__extract_bad_image(void **state)
{
	struct fx *x = *state;
	struct ml_io io = {failing_read, NULL, NULL};

	x->f.img.layers[1] = (char *)"sha256:../../../etc";
	assert_int_equal(ml_cache_extract(x->c, &x->f.img, &io), ML_EINVALID);
	assert_msg_has("layer 2 of image 'fake:1' has no valid digest");
	x->f.img.layers[1] = x->f.digests[2];
}

/* Everything cached: fill asks nothing of Docker (whose socket is bogus). */
static void test_cache__fill_cached(void **state)
{
	struct fx *x = *state;
	struct ml_docker *d;
	struct tent e[16];
	size_t n = save_entries(&x->f, e);
	char *sock = ml_xasprintf("%s/no-docker.sock", x->tmp);

	assert_int_equal(ml_docker_new(&d, sock), 0);
	assert_int_equal(ml_cache_fill(x->c, d, &x->f.img), ML_EFAIL);
	assert_msg_has("cannot connect to the Docker daemon");
	assert_int_equal(count_tmp(x), 0);

	make_tar(&x->tar, e, n);
	assert_int_equal(extract(x, 0), 0);
	memset(x->f.img.layer_sizes, 0, 3 * sizeof(int64_t));
	x->f.img.config_size = 0;
	if (ml_cache_fill(x->c, d, &x->f.img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(x->f.img.config_size, strlen(x->f.config));
	assert_int_equal(x->f.img.layer_sizes[2], x->f.layer_len[0]);
	ml_docker_free(d);
	free(sock);
}

/* ---- the real Docker ----------------------------------------------------- */

static bool have_docker(void)
{
	if (getenv("MLCTL_TEST_DOCKER"))
		return true;
	print_message("[ SKIPPED  ] needs the controller Docker: set "
		      "MLCTL_TEST_DOCKER=1 (socket $MLCTL_DOCKER_SOCK or "
		      "/run/docker.sock, with mlctl-test/busybox:latest "
		      "loaded)\n");
	return false;
}

/* Each cached blob hashes to its name. */
static void assert_cached_ok(struct ml_cache *c, const struct ml_image *img)
{
	char hex[ML_SHA256_HEX];
	char *p;
	size_t i;

	for (i = 0; i <= img->nlayers; i++) {
		const char *dg = i ? img->layers[i - 1] : img->config_digest;

		assert_true(ml_cache_has(c, dg));
		assert_int_equal(ml_cache_path(&p, c, dg), 0);
		assert_int_equal(ml_sha256_file(p, hex), 0);
		assert_string_equal(hex, dg + 7);
		free(p);
		if (i)
			assert_true(img->layer_sizes[i - 1] > 0);
	}
	assert_true(img->config_size > 0);
}

static void test_cache__docker_fill(void **state)
{
	struct fx *x = *state;
	struct ml_docker *d, *nod;
	struct ml_image *img = NULL;
	char *sock;

	if (!have_docker())
		skip();
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	if (ml_image_inspect(&img, d, "mlctl-test/busybox:latest") < 0)
		fail_msg("%s", ml_err_msg());
	if (ml_cache_fill(x->c, d, img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_cached_ok(x->c, img);
	assert_int_equal(count_blobs(x), img->nlayers + 1);
	assert_int_equal(count_tmp(x), 0);

	/* again, with no Docker at all: nothing is asked of it */
	sock = ml_xasprintf("%s/no-docker.sock", x->tmp);
	assert_int_equal(ml_docker_new(&nod, sock), 0);
	img->config_size = 0;
	if (ml_cache_fill(x->c, nod, img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(img->config_size > 0);
	ml_docker_free(nod);
	free(sock);
	ml_image_free(img);
	ml_docker_free(d);
}

/*
 * The same through the export alone ($MLCTL_DOCKER_STORE=off): where
 * the controller reads Docker's store, test_cache__docker_fill goes
 * through it (dstore.c), and this keeps `docker save`'s reader tested.
 */
static void test_cache__docker_fill_export(void **state)
{
	struct fx *x = *state;
	struct ml_docker *d;
	struct ml_image *img = NULL;

	if (!have_docker())
		skip();
	assert_int_equal(setenv("MLCTL_DOCKER_STORE", "off", 1), 0);
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	if (ml_image_inspect(&img, d, "mlctl-test/busybox:latest") < 0)
		fail_msg("%s", ml_err_msg());
	if (ml_cache_fill(x->c, d, img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_cached_ok(x->c, img);
	assert_int_equal(count_tmp(x), 0);
	assert_int_equal(unsetenv("MLCTL_DOCKER_STORE"), 0);
	ml_image_free(img);
	ml_docker_free(d);
}

static void test_cache__docker_fill_unknown(void **state)
{
	struct fx *x = *state;
	struct ml_docker *d;

	if (!have_docker())
		skip();
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	/* an image Docker does not have: its answer, not a tar error */
	assert_true(ml_cache_fill(x->c, d, &x->f.img) < 0);
	/* 20.10 answers 500 "failed to get digest", later ones 404 */
	assert_msg_has("docker: GET /images/");
	assert_msg_has("/get: ");
	assert_msg_has("(HTTP ");
	assert_int_equal(count_blobs(x), 0);
	assert_int_equal(count_tmp(x), 0);
	ml_docker_free(d);
}

/* A save that is not what the image says: the reader's error wins. */
static void test_cache__docker_fill_mismatch(void **state)
{
	struct fx *x = *state;
	struct ml_docker *d;
	struct ml_image *img = NULL;

	if (!have_docker())
		skip();
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	if (ml_image_inspect(&img, d, "mlctl-test/busybox:latest") < 0)
		fail_msg("%s", ml_err_msg());
	free(img->layers[0]);
	img->layers[0] = ml_xstrdup(x->f.digests[1]);
	assert_int_equal(ml_cache_fill(x->c, d, img), ML_EFAIL);
	assert_msg_has("lacks layer 1, ");
	assert_msg_has(x->f.digests[1]);
	/* the config, right by its digest, may have come from Docker's
	 * store (dstore.c) before the export failed; nothing else did */
	assert_false(ml_cache_has(x->c, img->layers[0]));
	assert_int_equal(count_blobs(x),
			 ml_cache_has(x->c, img->config_digest) ? 1 : 0);
	ml_image_free(img);
	ml_docker_free(d);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache__entry_check),
		cmocka_unit_test(test_cache__entry_check_long),
		cmocka_unit_test(test_cache__digest_valid),
		T(test_cache__open_dirs),
		T(test_cache__open_env),
		T(test_cache__path),
		T(test_cache__extract_save),
		T(test_cache__extract_partly_cached),
		T(test_cache__extract_oci),
		T(test_cache__extract_corrupt_layer),
		T(test_cache__extract_hostile),
		T(test_cache__extract_too_many),
		T(test_cache__extract_truncated),
		T(test_cache__extract_read_fails),
		T(test_cache__extract_bad_image),
		T(test_cache__fill_cached),
		T(test_cache__docker_fill),
		T(test_cache__docker_fill_export),
		T(test_cache__docker_fill_unknown),
		T(test_cache__docker_fill_mismatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
