/*
 * Tests of orchestrator/image/image.c and of ml_source_export_tar (which
 * it sends to Docker as the build context), over real git repositories
 * made with the git binary in temporary directories.
 *
 * With MLCTL_TEST_DOCKER set, resolve and build also run against the real
 * controller Docker (socket $MLCTL_DOCKER_SOCK, else /run/docker.sock),
 * which must hold mlctl-test/busybox:latest (tests/fleet/lib/image.sh);
 * they build examples/sentiment (from $MLCTL_SRC, else ".") as a context
 * in a repository made here, under a tag of an app name unique to the run
 * (mlctl/t<pid>-<n>:<sha>), and remove what they tagged at the end.
 * Without MLCTL_TEST_DOCKER those tests are skipped, saying so.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/sha256.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/ignore.h"
#include "orchestrator/image/image.h"
#include "orchestrator/source/source.h"
#include "tests/support/proc.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "tests/support/assert.h"

/* ---- reading a tar stream back ------------------------------------------ */

struct ent {
	char *name;
	int type; /* AE_IFREG, AE_IFDIR, AE_IFLNK */
	int perm;
	char *data;
	size_t len;
	char *link;
	int64_t uid, mtime;
};

struct ents {
	struct ent v[64];
	size_t n;
};

static void ents_release(struct ents *e)
{
	size_t i;

	for (i = 0; i < e->n; i++) {
		free(e->v[i].name);
		free(e->v[i].data);
		free(e->v[i].link);
	}
	e->n = 0;
}

/* Every entry of the tar in p[0..n), data included. */
static void read_tar(struct ents *out, const void *p, size_t n)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	struct ml_buf b = ML_BUF_INIT(0);
	char chunk[4096];
	la_ssize_t r;

	out->n = 0;
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, p, n), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		struct ent *e = &out->v[out->n++];

		assert_true(out->n < ML_ARRAY_SIZE(out->v));
		e->name = ml_xstrdup(archive_entry_pathname(ae));
		e->type = (int)archive_entry_filetype(ae);
		e->perm = (int)archive_entry_perm(ae);
		e->link = archive_entry_symlink(ae)
				  ? ml_xstrdup(archive_entry_symlink(ae))
				  : NULL;
		e->uid = archive_entry_uid(ae);
		e->mtime = archive_entry_mtime(ae);
		ml_buf_reset(&b);
		while ((r = archive_read_data(a, chunk, sizeof(chunk))) > 0)
			ml_buf_add(&b, chunk, (size_t)r);
		assert_true(r == 0);
		e->len = b.len;
		e->data = ml_buf_detach(&b, NULL);
	}
	archive_read_free(a);
	ml_buf_release(&b);
}

static const struct ent *ent_find(const struct ents *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (!strcmp(e->v[i].name, name))
			return &e->v[i];
	return NULL;
}

static const struct ent *must_find(const struct ents *e, const char *name)
{
	const struct ent *x = ent_find(e, name);

	if (!x)
		fail_msg("no entry '%s' in the tar", name);
	return x;
}

/* ---- fixtures ---------------------------------------------------------- */

struct fx {
	char *tmp;
	char *repo;
	struct ml_source *src;
	char *sha;
	struct ml_buf out;
	size_t writes;
	const struct ml_export_filter *filter; /* export's, NULL: none */
	/* Docker tests */
	struct ml_docker *d;
	char app[40];
	char *tags[16]; /* tags and ids of built images, removed at the end */
	size_t ntags;
};

static int write_buf(void *ctx, const void *p, size_t n)
{
	struct fx *x = ctx;

	x->writes++;
	return ml_buf_add(&x->out, p, n);
}

static void git(struct fx *x, const char *const *args)
{
	free(ml_test_git(x->repo, args));
}

static void make_link(struct fx *x, const char *target, const char *name)
{
	char *p = ml_xasprintf("%s/%s", x->repo, name);

	unlink(p);
	if (symlink(target, p) < 0)
		fail_msg("symlink %s: %s", p, strerror(errno));
	free(p);
}

static void set_exec(struct fx *x, const char *name)
{
	char *p = ml_xasprintf("%s/%s", x->repo, name);

	assert_int_equal(chmod(p, 0755), 0);
	free(p);
}

static void commit(struct fx *x, const char *msg)
{
	free(x->sha);
	x->sha = ml_test_commit(x->repo, msg);
}

static int setup(void **state)
{
	struct fx *x = ml_xcalloc(1, sizeof(*x));

	x->tmp = ml_test_tmpdir("image");
	x->repo = ml_xasprintf("%s/repo", x->tmp);
	assert_int_equal(mkdir(x->repo, 0755), 0);
	free(ml_test_git(x->repo, (const char *const[]){"init", "-q", NULL}));
	ml_test_write(x->repo, "top.txt", "top\n");
	ml_test_write(x->repo, "app/Dockerfile", "FROM scratch\n");
	ml_test_write(x->repo, "app/run.sh", "#!/bin/sh\necho hi\n");
	set_exec(x, "app/run.sh");
	ml_test_write(x->repo, "app/sub/data.txt", "data\n");
	make_link(x, "sub/data.txt", "app/link");
	make_link(x, "../Dockerfile", "app/sub/up");
	commit(x, "first");
	if (ml_source_open(&x->src, x->repo) < 0)
		fail_msg("%s", ml_err_msg());
	ml_buf_init(&x->out, 0);
	snprintf(x->app, sizeof(x->app), "t%ld-%ld", (long)getpid(),
		 (long)(time(NULL) % 100000));
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	struct ml_buf path = ML_BUF_INIT(0);
	size_t i;

	for (i = 0; i < x->ntags; i++) {
		ml_buf_reset(&path);
		ml_buf_addstr(&path, "/images/");
		ml_docker_url_escape(&path, x->tags[i]);
		ml_buf_addstr(&path, "?force=1");
		(void)ml_docker_request(x->d, "DELETE", path.data, NULL, NULL);
		free(x->tags[i]);
	}
	ml_buf_release(&path);
	ml_docker_free(x->d);
	ml_source_free(x->src);
	ml_test_rmtree(x->tmp);
	free(x->tmp);
	free(x->repo);
	free(x->sha);
	ml_buf_release(&x->out);
	free(x);
	return 0;
}

static int export(struct fx *x, const char *subdir, struct ents *e)
{
	int rc;

	ml_buf_reset(&x->out);
	x->writes = 0;
	rc = ml_source_export_tar(x->src, x->sha, subdir, x->filter, write_buf,
				  x);
	if (rc == 0 && e)
		read_tar(e, x->out.data, x->out.len);
	return rc;
}

/* ---- export ------------------------------------------------------------ */

static void test_image__export_subdir(void **state)
{
	struct fx *x = *state;
	struct ents e = {.n = 0};
	const struct ent *t;
	int64_t when;

	if (export(x, "app", &e) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(e.n, 6);
	assert_null(ent_find(&e, "top.txt"));
	assert_int_equal(ml_source_describe(x->src, x->sha, NULL, &when), 0);

	t = must_find(&e, "Dockerfile");
	assert_int_equal(t->type, AE_IFREG);
	assert_int_equal(t->perm, 0644);
	assert_string_equal(t->data, "FROM scratch\n");
	assert_int_equal(t->uid, 0);
	assert_int_equal(t->mtime, when);
	t = must_find(&e, "run.sh");
	assert_int_equal(t->type, AE_IFREG);
	assert_int_equal(t->perm, 0755);
	assert_string_equal(t->data, "#!/bin/sh\necho hi\n");
	t = must_find(&e, "sub/");
	assert_int_equal(t->type, AE_IFDIR);
	assert_int_equal(t->perm, 0755);
	t = must_find(&e, "sub/data.txt");
	assert_string_equal(t->data, "data\n");
	t = must_find(&e, "link");
	assert_int_equal(t->type, AE_IFLNK);
	assert_string_equal(t->link, "sub/data.txt");
	t = must_find(&e, "sub/up");
	assert_int_equal(t->type, AE_IFLNK);
	assert_string_equal(t->link, "../Dockerfile");
	ents_release(&e);

	/* the same subdir written otherwise */
	assert_int_equal(export(x, "./app//", &e), 0);
	assert_int_equal(e.n, 6);
	assert_non_null(ent_find(&e, "sub/up"));
	ents_release(&e);
}

static void test_image__export_root(void **state)
{
	struct fx *x = *state;
	struct ents e = {.n = 0};
	const char *roots[] = {"", ".", "./", NULL};
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(roots); i++) {
		if (export(x, roots[i], &e) < 0)
			fail_msg("%s", ml_err_msg());
		assert_int_equal(e.n, 8);
		assert_string_equal(must_find(&e, "top.txt")->data, "top\n");
		assert_int_equal(must_find(&e, "app/")->type, AE_IFDIR);
		assert_int_equal(must_find(&e, "app/run.sh")->perm, 0755);
		assert_string_equal(must_find(&e, "app/link")->link,
				    "sub/data.txt");
		ents_release(&e);
	}
}

static void test_image__export_link_outside(void **state)
{
	struct fx *x = *state;
	char want[256];

	/* inside the repository, but outside the context */
	make_link(x, "../top.txt", "app/evil");
	commit(x, "evil link");
	assert_int_equal(export(x, "app", NULL), ML_ESOURCE);
	snprintf(want, sizeof(want),
		 "'app/evil' in commit %.7s (evil link) is a symbolic link "
		 "pointing outside the build context",
		 x->sha);
	assert_string_equal(ml_err_msg(), want);
	assert_int_equal(x->writes, 0); /* refused before the first byte */
	/* from the root, the same link stays inside */
	assert_int_equal(export(x, "", NULL), 0);

	make_link(x, "sub/../../top.txt", "app/evil");
	commit(x, "evil link 2");
	assert_int_equal(export(x, "app", NULL), ML_ESOURCE);
	assert_msg_has("'app/evil' in commit");

	make_link(x, "../../../../etc/passwd", "app/sub/evil");
	commit(x, "evil link 3");
	assert_int_equal(export(x, "app/sub", NULL), ML_ESOURCE);
	assert_int_equal(export(x, "", NULL), ML_ESOURCE);

	make_link(x, "/etc/passwd", "abs");
	commit(x, "absolute link");
	assert_int_equal(export(x, "", NULL), ML_ESOURCE);
	assert_msg_has("'abs' in commit");
	assert_msg_has("pointing outside the build context");
	assert_int_equal(x->writes, 0);
}

static void test_image__export_refusals(void **state)
{
	struct fx *x = *state;
	char gitlink[128];

	assert_int_equal(export(x, "nope", NULL), ML_ENOTFOUND);
	assert_msg_has("build context 'nope' does not exist in commit");
	assert_int_equal(export(x, "top.txt", NULL), ML_ESOURCE);
	assert_msg_has("build context 'top.txt' is not a directory");
	assert_int_equal(export(x, "../x", NULL), ML_ESOURCE);
	assert_msg_has("climbs out with '..'");
	assert_int_equal(export(x, "app/../..", NULL), ML_ESOURCE);
	assert_int_equal(export(x, "/abs", NULL), ML_ESOURCE);
	free(x->sha);
	x->sha = ml_xstrdup("0123456789012345678901234567890123456789");
	assert_int_equal(export(x, "", NULL), ML_ENOTFOUND);
	assert_msg_has("no commit");

	/* a submodule (a gitlink in the index is enough) */
	free(x->sha);
	x->sha = ml_test_git(x->repo,
			     (const char *const[]){"rev-parse", "HEAD", NULL});
	snprintf(gitlink, sizeof(gitlink), "160000,%s,app/mod", x->sha);
	git(x, (const char *const[]){"update-index", "--add", "--cacheinfo",
				     gitlink, NULL});
	free(x->sha);
	x->sha =
		ml_test_git(x->repo, (const char *const[]){"commit", "-q", "-m",
							   "submodule", NULL});
	free(x->sha);
	x->sha = ml_test_git(x->repo,
			     (const char *const[]){"rev-parse", "HEAD", NULL});
	assert_int_equal(export(x, "app", NULL), ML_ESOURCE);
	assert_msg_has("'app/mod' in commit");
	assert_msg_has("is a submodule: a build context cannot hold one");
	assert_int_equal(x->writes, 0);
	/* a link that climbs out of a deeper context */
	assert_int_equal(export(x, "app/sub", NULL), ML_ESOURCE);
	assert_msg_has("'app/sub/up' in commit");
}

/* Export app/ leaving out what text (a .dockerignore) names. */
static int export_ignoring(struct fx *x, const char *text, struct ents *e)
{
	struct ml_ignore *ig;
	struct ml_export_filter f;
	int rc;

	assert_int_equal(ml_ignore_parse(&ig, text, strlen(text), "t", NULL),
			 0);
	f.judge = ml_ignore_judge;
	f.ctx = ig;
	x->filter = &f;
	rc = export(x, "app", e);
	x->filter = NULL;
	ml_ignore_free(ig);
	return rc;
}

static void test_image__export_filter(void **state)
{
	struct fx *x = *state;
	struct ents e = {.n = 0};

	/* a pruned directory and a file: neither is in the stream */
	if (export_ignoring(x, "sub\nrun.sh\n", &e) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(e.n, 2);
	assert_non_null(ent_find(&e, "Dockerfile"));
	assert_non_null(ent_find(&e, "link"));
	assert_null(ent_find(&e, "sub/"));
	assert_null(ent_find(&e, "sub/data.txt"));
	ents_release(&e);

	/* an exception below a left-out directory: only it comes back */
	if (export_ignoring(x, "sub\n!sub/data.txt\n", &e) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(e.n, 4);
	assert_null(ent_find(&e, "sub/"));
	assert_string_equal(must_find(&e, "sub/data.txt")->data, "data\n");
	assert_null(ent_find(&e, "sub/up"));
	ents_release(&e);

	/* what is left out is not checked either: docker never sees it */
	make_link(x, "../../../top.txt", "app/sub/evil");
	commit(x, "a link out, in a left-out directory");
	assert_int_equal(export(x, "app", NULL), ML_ESOURCE);
	assert_int_equal(export_ignoring(x, "sub\n", &e), 0);
	assert_int_equal(e.n, 3);
	ents_release(&e);
	assert_int_equal(export_ignoring(x, "sub/evil\n", &e), 0);
	assert_non_null(ent_find(&e, "sub/up"));
	assert_null(ent_find(&e, "sub/evil"));
	ents_release(&e);
}

/* Does a build of context send path (repository-relative)? */
static bool sends(struct fx *x, const char *context, const char *path)
{
	struct ml_image_spec spec = {0};
	bool out = true;

	spec.kind = ML_IMAGE_BUILD;
	spec.context = (char *)context;
	if (ml_image_context_sends(&out, x->src, x->sha, &spec, path) < 0)
		fail_msg("%s", ml_err_msg());
	return out;
}

static void test_image__context_sends(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec = {0};
	bool out;

	/* no .dockerignore: whatever the context holds */
	assert_true(sends(x, ".", "mlctl.yaml"));
	assert_true(sends(x, "", "app/sub/data.txt"));
	assert_true(sends(x, "app", "app/mlctl.yaml"));
	assert_true(sends(x, "./app/", "app/mlctl.yaml"));
	/* outside the context */
	assert_false(sends(x, "app", "mlctl.yaml"));
	assert_false(sends(x, "app", "apple/mlctl.yaml"));
	assert_false(sends(x, "app", "app"));
	/* left out by the context's own .dockerignore */
	ml_test_write(x->repo, "app/.dockerignore", "mlctl.yaml\n");
	ml_test_write(x->repo, ".dockerignore", "*\n");
	commit(x, "dockerignores");
	assert_false(sends(x, "app", "app/mlctl.yaml"));
	assert_true(sends(x, "app", "app/inventory.yaml"));
	assert_false(sends(x, ".", "mlctl.yaml"));
	/* a .dockerignore that does not parse is the build's error */
	ml_test_write(x->repo, "app/.dockerignore", "[x\n");
	commit(x, "a bad one");
	spec.kind = ML_IMAGE_BUILD;
	spec.context = (char *)"app";
	assert_int_equal(ml_image_context_sends(&out, x->src, x->sha, &spec,
						"app/mlctl.yaml"),
			 ML_EINVALID);
	assert_msg_has("'app/.dockerignore' in commit");
	assert_msg_has(":1: bad pattern '[x'");
}

static int failing_write(void *ctx, const void *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return ml_err_set(ML_EHOST, "the reader went away (test)");
}

static void test_image__export_write_fails(void **state)
{
	struct fx *x = *state;

	assert_int_equal(ml_source_export_tar(x->src, x->sha, "app", NULL,
					      failing_write, NULL),
			 ML_EHOST);
	assert_string_equal(ml_err_msg(), "the reader went away (test)");
}

/* ---- resolve without Docker -------------------------------------------- */

static void test_image__resolve_refusals(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec = {0};
	struct ml_image *img = (struct ml_image *)1;
	struct ml_docker *d;
	char *sock = ml_xasprintf("%s/no-docker.sock", x->tmp);

	assert_int_equal(ml_docker_new(&d, sock), 0);
	spec.kind = ML_IMAGE_BUILD;
	spec.context = (char *)"app";
	spec.dockerfile = (char *)"Dockerfile";
	assert_int_equal(
		ml_image_resolve(&img, d, &spec, x->src, x->sha, "Bad_App"),
		ML_EINVALID);
	assert_null(img);
	assert_msg_has("'Bad_App' cannot name a built image");
	assert_int_equal(
		ml_image_resolve(&img, d, &spec, x->src, "HEAD", "app"),
		ML_EINVALID);
	assert_msg_has("'HEAD' is not a full commit sha");
	assert_int_equal(
		ml_image_resolve(&img, d, &spec, x->src, x->sha, "app"),
		ML_EFAIL);
	assert_msg_has("cannot connect to the Docker daemon");

	spec.kind = ML_IMAGE_REF;
	spec.ref = (char *)"bad\nref";
	assert_int_equal(ml_image_resolve(&img, d, &spec, NULL, NULL, NULL),
			 ML_EINVALID);
	assert_msg_has("is not a valid image reference");
	spec.ref = (char *)"";
	assert_int_equal(ml_image_resolve(&img, d, &spec, NULL, NULL, NULL),
			 ML_EINVALID);
	spec.ref = (char *)"busybox:1";
	assert_int_equal(ml_image_resolve(&img, d, &spec, NULL, NULL, NULL),
			 ML_EFAIL);
	assert_msg_has("cannot connect to the Docker daemon");
	ml_docker_free(d);
	free(sock);
}

/* ---- the real Docker ----------------------------------------------------- */

static bool have_docker(struct fx *x)
{
	if (!getenv("MLCTL_TEST_DOCKER")) {
		print_message("[ SKIPPED  ] needs the controller Docker: set "
			      "MLCTL_TEST_DOCKER=1 (socket $MLCTL_DOCKER_SOCK "
			      "or /run/docker.sock, with "
			      "mlctl-test/busybox:latest loaded)\n");
		return false;
	}
	if (!x->d && ml_docker_new(&x->d, NULL) < 0)
		fail_msg("%s", ml_err_msg());
	return true;
}

/* examples/sentiment as svc/ in the test repository, committed. */
static void add_sentiment(struct fx *x)
{
	struct ml_test_out o;
	char *from = ml_xasprintf("%s/examples/sentiment", ml_test_src());
	char *to = ml_xasprintf("%s/svc", x->repo);
	const char *const argv[] = {"cp", "-R", from, to, NULL};

	assert_int_equal(ml_test_run(&o, NULL, NULL, NULL, 60, argv), 0);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	commit(x, "add the sentiment service");
	free(from);
	free(to);
}

static void build_spec(struct ml_image_spec *spec, const char *dockerfile)
{
	memset(spec, 0, sizeof(*spec));
	spec->kind = ML_IMAGE_BUILD;
	spec->context = (char *)"svc";
	spec->dockerfile = (char *)dockerfile;
}

/* Resolve, remembering the tag for removal at the end. */
static int resolve(struct fx *x, struct ml_image **img,
		   const struct ml_image_spec *spec)
{
	int rc = ml_image_resolve(img, x->d, spec, x->src, x->sha, x->app);

	/* removing by id at the end also drops its untagged parents */
	if (rc == 0 && x->ntags + 1 < ML_ARRAY_SIZE(x->tags) && (*img)->built) {
		x->tags[x->ntags++] = ml_xstrdup((*img)->ref);
		x->tags[x->ntags++] = ml_xstrdup((*img)->id);
	}
	return rc;
}

static void test_image__docker_ref(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec = {0};
	struct ml_image *img = NULL, *img2 = NULL;

	if (!have_docker(x))
		skip();
	spec.kind = ML_IMAGE_REF;
	spec.ref = (char *)"mlctl-test/busybox:latest";
	if (ml_image_resolve(&img, x->d, &spec, NULL, NULL, NULL) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(ml_digest_valid(img->id));
	assert_string_equal(img->id, img->config_digest);
	assert_string_equal(img->ref, "mlctl-test/busybox:latest");
	assert_int_equal(img->nlayers, 1);
	assert_true(ml_digest_valid(img->layers[0]));
	assert_false(img->built);

	/* by id too */
	assert_int_equal(ml_image_inspect(&img2, x->d, img->id), 0);
	assert_string_equal(img2->id, img->id);
	ml_image_free(img2);
	ml_image_free(img);

	spec.ref = (char *)"mlctl-test/no-such-image:1";
	assert_int_equal(ml_image_resolve(&img, x->d, &spec, NULL, NULL, NULL),
			 ML_ENOTFOUND);
	assert_null(img);
	assert_string_equal(ml_err_msg(),
			    "image 'mlctl-test/no-such-image:1' is not in the "
			    "local Docker (build or pull it first)");
}

/* The mode of name in the layer tar at path. */
static int layer_perm(const char *path, const char *name)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int perm = -1;

	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536),
			 ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK)
		if (!strcmp(archive_entry_pathname(ae), name))
			perm = (int)archive_entry_perm(ae);
	archive_read_free(a);
	return perm;
}

#define BIG_FILE ((size_t)5 << 20)

static void test_image__docker_build(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec;
	struct ml_image *img = NULL, *again = NULL, *base = NULL;
	struct ml_kv arg = {(char *)"MODEL", (char *)"v2"};
	struct ml_cache *c;
	struct ml_docker *nod;
	char *cdir, *sock, *want, *p, *big, hex[ML_SHA256_HEX];
	size_t i;
	int perm = -1;

	if (!have_docker(x))
		skip();
	add_sentiment(x);
	/* a context larger than the socket buffers between the threads */
	big = ml_xmalloc(BIG_FILE + 1);
	for (i = 0; i < BIG_FILE; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[BIG_FILE] = '\0';
	ml_test_write(x->repo, "svc/weights.bin", big);
	free(big);
	commit(x, "weights");
	build_spec(&spec, "Dockerfile");
	if (resolve(x, &img, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	want = ml_xasprintf("mlctl/%s:%s", x->app, x->sha);
	assert_string_equal(img->ref, want);
	assert_true(img->built);
	assert_true(ml_digest_valid(img->id));
	/* the base layer, then what COPY added */
	assert_int_equal(
		ml_image_inspect(&base, x->d, "mlctl-test/busybox:latest"), 0);
	assert_true(img->nlayers >= 2);
	assert_string_equal(img->layers[0], base->layers[0]);

	/* the same commit again: reused, not built */
	if (resolve(x, &again, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	assert_false(again->built);
	assert_string_equal(again->id, img->id);
	assert_string_equal(again->ref, want);
	ml_image_free(again);

	/* the blobs into a cache, with their digests checked */
	cdir = ml_xasprintf("%s/cache", x->tmp);
	assert_int_equal(ml_cache_open(&c, cdir), 0);
	if (ml_cache_fill(c, x->d, img) < 0)
		fail_msg("%s", ml_err_msg());
	for (i = 0; i <= img->nlayers; i++) {
		const char *dg = i ? img->layers[i - 1] : img->id;

		assert_int_equal(ml_cache_path(&p, c, dg), 0);
		assert_int_equal(ml_sha256_file(p, hex), 0);
		assert_string_equal(hex, dg + 7);
		if (i && perm < 0)
			perm = layer_perm(p, "www/cgi-bin/predict");
		free(p);
		assert_true(i ? img->layer_sizes[i - 1] > 0
			      : img->config_size > 0);
	}
	/* the exec bit came through git, the context tar and the build */
	assert_int_equal(perm, 0755);

	/* filled again: Docker is not asked (there is none to ask) */
	sock = ml_xasprintf("%s/no-docker.sock", x->tmp);
	assert_int_equal(ml_docker_new(&nod, sock), 0);
	img->config_size = 0;
	if (ml_cache_fill(c, nod, img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(img->config_size > 0);
	ml_docker_free(nod);
	ml_cache_free(c);

	/* other build args, same commit: built again, under the same tag */
	spec.build_args.v = &arg;
	spec.build_args.n = 1;
	if (resolve(x, &again, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(again->built);
	assert_string_equal(again->ref, want);
	assert_string_not_equal(again->id, img->id);
	ml_image_free(again);

	free(sock);
	free(cdir);
	free(want);
	ml_image_free(base);
	ml_image_free(img);
}

/* The names in the layer tar at path, one a line. */
static char *layer_names(const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	struct ml_buf b = ML_BUF_INIT(0);

	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536),
			 ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK)
		ml_buf_addf(&b, "%s\n", archive_entry_pathname(ae));
	archive_read_free(a);
	return ml_buf_detach(&b, NULL);
}

/*
 * The context's .dockerignore is applied as docker build applies it: what
 * it names is not in the image, and a commit that changes only such a
 * file builds the very same image id (Docker's cache, nothing in the
 * image naming the commit), so a deploy of it restarts nothing.
 */
static void test_image__docker_build_dockerignore(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec;
	struct ml_image *img = NULL, *again = NULL;
	struct ml_cache *c;
	char *cdir, *p, *names;

	if (!have_docker(x))
		skip();
	ml_test_write(x->repo, "svc/Dockerfile",
		      "FROM mlctl-test/busybox:latest\nCOPY . /ctx/\n");
	ml_test_write(x->repo, "svc/.dockerignore",
		      "# the desired state and secrets stay out\n"
		      "mlctl.yaml\n*.env\nnotes\n!notes/keep.txt\n"
		      "Dockerfile\n");
	ml_test_write(x->repo, "svc/app.txt", "code v1\n");
	ml_test_write(x->repo, "svc/mlctl.yaml", "app: x\n");
	ml_test_write(x->repo, "svc/prod.env", "TOKEN=s3cret\n");
	ml_test_write(x->repo, "svc/notes/a.txt", "a\n");
	ml_test_write(x->repo, "svc/notes/keep.txt", "keep\n");
	commit(x, "a context with a .dockerignore");
	build_spec(&spec, "Dockerfile");
	if (resolve(x, &img, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(img->built);

	cdir = ml_xasprintf("%s/cache", x->tmp);
	assert_int_equal(ml_cache_open(&c, cdir), 0);
	if (ml_cache_fill(c, x->d, img) < 0)
		fail_msg("%s", ml_err_msg());
	assert_int_equal(ml_cache_path(&p, c, img->layers[img->nlayers - 1]),
			 0);
	names = layer_names(p);
	if (!strstr(names, "ctx/app.txt\n") ||
	    !strstr(names, "ctx/notes/keep.txt\n") ||
	    !strstr(names, "ctx/.dockerignore\n") ||
	    strstr(names, "mlctl.yaml") || strstr(names, "prod.env") ||
	    strstr(names, "notes/a.txt") || strstr(names, "ctx/Dockerfile"))
		fail_msg("the COPY layer holds:\n%s", names);
	free(names);
	free(p);
	ml_cache_free(c);

	/* only left-out files changed: a new tag on the same image */
	ml_test_write(x->repo, "svc/mlctl.yaml", "app: y\n");
	ml_test_write(x->repo, "svc/prod.env", "TOKEN=other\n");
	ml_test_write(x->repo, "svc/notes/a.txt", "b\n");
	commit(x, "playbook, secrets and notes only");
	if (resolve(x, &again, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	assert_true(again->built);
	assert_string_equal(again->id, img->id);
	ml_image_free(again);

	/* a file the image holds changed: another image */
	ml_test_write(x->repo, "svc/notes/keep.txt", "kept, changed\n");
	commit(x, "a kept note");
	if (resolve(x, &again, &spec) < 0)
		fail_msg("%s", ml_err_msg());
	assert_string_not_equal(again->id, img->id);
	ml_image_free(again);

	/* a pattern that does not compile: the build is refused, by line */
	ml_test_write(x->repo, "svc/.dockerignore", "ok\n[oops\n");
	commit(x, "a bad .dockerignore");
	assert_int_equal(resolve(x, &again, &spec), ML_EINVALID);
	assert_msg_has("'svc/.dockerignore' in commit ");
	assert_msg_has(":2: bad pattern '[oops'");
	free(cdir);
	ml_image_free(img);
}

static void test_image__docker_build_errors(void **state)
{
	struct fx *x = *state;
	struct ml_image_spec spec;
	struct ml_image *img = NULL;
	struct ml_buf path = ML_BUF_INIT(0);
	char *tag;

	if (!have_docker(x))
		skip();
	add_sentiment(x);

	/* no such Dockerfile in the commit */
	build_spec(&spec, "Dockerfile.gpu");
	assert_int_equal(resolve(x, &img, &spec), ML_ENOTFOUND);
	assert_msg_has("'svc/Dockerfile.gpu' does not exist in commit");

	/* Docker refuses the Dockerfile */
	ml_test_write(x->repo, "svc/Dockerfile",
		      "FROMM mlctl-test/busybox:latest\n");
	commit(x, "typo");
	build_spec(&spec, "Dockerfile");
	assert_int_equal(resolve(x, &img, &spec), ML_EFAIL);
	assert_null(img);
	assert_msg_has("unknown instruction: FROMM");

	/* a step fails: Docker's message and the last output lines */
	/* (no step succeeds first: its result would stay as build cache) */
	ml_test_write(x->repo, "svc/Dockerfile",
		      "FROM mlctl-test/busybox:latest\n"
		      "COPY no-such-file /x\n"
		      "COPY model.txt /model/\n");
	commit(x, "missing file");
	assert_int_equal(resolve(x, &img, &spec), ML_EFAIL);
	assert_msg_has("docker could not build 'mlctl/");
	assert_msg_has("no-such-file");
	assert_msg_has("\nlast build output:\n");
	assert_msg_has("Step 1/");
	assert_msg_has("Step 2/");
	assert_msg_has(": COPY no-such-file /x");

	/* the context holds a link out of it: refused, nothing tagged */
	ml_test_write(x->repo, "svc/Dockerfile",
		      "FROM mlctl-test/busybox:latest\n");
	make_link(x, "../top.txt", "svc/top");
	commit(x, "link out");
	assert_int_equal(resolve(x, &img, &spec), ML_ESOURCE);
	assert_msg_has("'svc/top' in commit");
	assert_msg_has("is a symbolic link pointing outside the build "
		       "context");
	tag = ml_xasprintf("mlctl/%s:%s", x->app, x->sha);
	assert_int_equal(ml_image_inspect(&img, x->d, tag), ML_ENOTFOUND);
	free(tag);
	ml_buf_release(&path);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_image__export_subdir),
		T(test_image__export_root),
		T(test_image__export_link_outside),
		T(test_image__export_refusals),
		T(test_image__export_filter),
		T(test_image__context_sends),
		T(test_image__export_write_fails),
		T(test_image__resolve_refusals),
		T(test_image__docker_ref),
		T(test_image__docker_build),
		T(test_image__docker_build_dockerignore),
		T(test_image__docker_build_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
