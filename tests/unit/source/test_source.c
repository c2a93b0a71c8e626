/*
 * Tests of orchestrator/source over real repositories made with the git
 * binary in temporary directories (fork/execvp, never a shell). One shared
 * repository with two commits, tags and a branch serves the read-only
 * tests; tests that change a working tree make their own.
 *
 * Shared repository ("main" branch):
 *   commit 1 "first config"   mlctl.yaml "version: 1\n", dir/inventory.yaml
 *            tags v1 (annotated), v1-light; branch "old"
 *   commit 2 "second config"  mlctl.yaml "version: 2\n", big.yaml (1000
 *            bytes), link -> mlctl.yaml; tags treetag, treetag-a (trees)
 *   loose blobs "blob 2728\n" and "blob 3375\n", whose ids both start with
 *   d1124, to make an ambiguous short sha.
 */
#include "common/ml.h"
#include "orchestrator/source/source.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/assert.h"

#define TIME1 1700000000
#define TIME2 1700000100

struct shared {
	char *tmp;  /* mkdtemp directory, removed at the end */
	char *repo; /* tmp/repo */
	char sha1[ML_SHA_HEX];
	char sha2[ML_SHA_HEX];
};

static struct shared g;

/*
 * Run git in dir with args (NULL-terminated), with a fixed identity and no
 * user or system configuration. Returns the exit status; when out is not
 * NULL, stdout is captured into it with its final newline removed.
 */
static int run_git(struct ml_buf *out, const char *dir, const char **args)
{
	static const char *pre[] = {
		"git",
		"-C",
		NULL,
		"-c",
		"user.name=mlctl test",
		"-c",
		"user.email=test@example.com",
		"-c",
		"commit.gpgsign=false",
		"-c",
		"tag.gpgsign=false",
		"-c",
		"init.defaultBranch=main",
		"-c",
		"core.autocrlf=false",
		"-c",
		"advice.detachedHead=false",
	};
	const char *argv[64];
	size_t n = 0, i;
	int pfd[2] = {-1, -1}, status;
	pid_t pid;

	for (i = 0; i < ML_ARRAY_SIZE(pre); i++)
		argv[n++] = pre[i] ? pre[i] : dir;
	for (i = 0; args[i]; i++) {
		assert_true(n < ML_ARRAY_SIZE(argv) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if (out)
		assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (out) {
			dup2(pfd[1], 1);
			close(pfd[0]);
			close(pfd[1]);
		} else {
			dup2(2, 1);
		}
		execvp("git", (char *const *)argv);
		_exit(127);
	}
	if (out) {
		close(pfd[1]);
		assert_int_equal(ml_buf_read_fd(out, pfd[0]), 0);
		close(pfd[0]);
		while (out->len && out->data[out->len - 1] == '\n')
			out->data[--out->len] = '\0';
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define GIT(dir, ...)                                                          \
	do {                                                                   \
		const char *args_[] = {__VA_ARGS__, NULL};                     \
		assert_int_equal(run_git(NULL, (dir), args_), 0);              \
	} while (0)

/* git's stdout, e.g. a sha from rev-parse, into out (NUL-terminated). */
#define GIT_OUT(out, dir, ...)                                                 \
	do {                                                                   \
		const char *args_[] = {__VA_ARGS__, NULL};                     \
		assert_int_equal(run_git((out), (dir), args_), 0);             \
	} while (0)

static char *path_join(const char *a, const char *b)
{
	return ml_xasprintf("%s/%s", a, b);
}

/* Write content to dir/rel, creating rel's directories. */
static void write_file(const char *dir, const char *rel, const char *content)
{
	char *path = path_join(dir, rel), *slash;
	FILE *f;

	for (slash = strchr(path + strlen(dir) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(path, 0755) < 0)
			assert_int_equal(errno, EEXIST);
		*slash = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(path);
}

static char *make_tmp(void)
{
	char tmpl[] = "/tmp/mlctl-test-source-XXXXXX";
	char *real;

	assert_non_null(mkdtemp(tmpl));
	real = realpath(tmpl, NULL);
	assert_non_null(real);
	return real;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void set_dates(long author, long committer)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "@%ld +0000", author);
	setenv("GIT_AUTHOR_DATE", buf, 1);
	snprintf(buf, sizeof(buf), "@%ld +0000", committer);
	setenv("GIT_COMMITTER_DATE", buf, 1);
}

static void rev_parse(char sha[ML_SHA_HEX], const char *dir, const char *rev)
{
	struct ml_buf b = ML_BUF_INIT(4096);

	GIT_OUT(&b, dir, "rev-parse", "--verify", rev);
	assert_int_equal(b.len, ML_SHA_HEX - 1);
	memcpy(sha, b.data, ML_SHA_HEX);
	ml_buf_release(&b);
}

static int group_setup(void **state)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	char big[1001];

	g.tmp = make_tmp();
	g.repo = path_join(g.tmp, "repo");
	GIT(g.tmp, "init", "-q", "repo");

	write_file(g.repo, "mlctl.yaml", "version: 1\n");
	write_file(g.repo, "dir/inventory.yaml", "hosts: []\n");
	GIT(g.repo, "add", "-A");
	set_dates(TIME1, TIME1 + 5000);
	GIT(g.repo, "commit", "-q", "-m", "first config");
	GIT(g.repo, "tag", "-a", "-m", "release 1", "v1");
	GIT(g.repo, "tag", "v1-light");
	GIT(g.repo, "branch", "old");
	rev_parse(g.sha1, g.repo, "HEAD");

	write_file(g.repo, "mlctl.yaml", "version: 2\n");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file(g.repo, "big.yaml", big);
	{
		char *link = path_join(g.repo, "link");

		assert_int_equal(symlink("mlctl.yaml", link), 0);
		free(link);
	}
	GIT(g.repo, "add", "-A");
	set_dates(TIME2, TIME2 + 5000);
	GIT(g.repo, "commit", "-q", "-m", "second config\n\nwith a body\n");
	rev_parse(g.sha2, g.repo, "HEAD");
	GIT(g.repo, "tag", "treetag", "HEAD^{tree}");
	GIT(g.repo, "tag", "-a", "-m", "a tree", "treetag-a", "HEAD^{tree}");

	write_file(g.tmp, "b1", "blob 2728\n");
	write_file(g.tmp, "b2", "blob 3375\n");
	GIT_OUT(&b, g.repo, "hash-object", "-w", "../b1", "../b2");
	assert_string_equal(b.data, "d1124b7aee973bf68efc8851fe3a60b50417b5c2\n"
				    "d11246cbc7eb1129f856d350b6f36f6e53a54829");
	ml_buf_release(&b);
	return 0;
}

static int group_teardown(void **state)
{
	rm_rf(g.tmp);
	free(g.tmp);
	free(g.repo);
	return 0;
}

static struct ml_source *open_ok(const char *dir)
{
	struct ml_source *src = NULL;

	if (ml_source_open(&src, dir) < 0)
		fail_msg("open '%s': %s", dir, ml_err_msg());
	assert_non_null(src);
	return src;
}

static char *read_ok(struct ml_source *src, const char *sha, const char *rel)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	if (ml_source_read(src, sha, rel, &b) < 0)
		fail_msg("read '%s' at %s: %s", rel, sha, ml_err_msg());
	return ml_buf_detach(&b, NULL);
}

static void assert_resolves(struct ml_source *src, const char *rev,
			    const char *want)
{
	char sha[ML_SHA_HEX];

	if (ml_source_resolve(src, rev, sha) < 0)
		fail_msg("resolve '%s': %s", rev ? rev : "(null)",
			 ml_err_msg());
	assert_string_equal(sha, want);
}

static void assert_resolve_fails(struct ml_source *src, const char *rev,
				 const char *msg)
{
	char sha[ML_SHA_HEX];

	ml_err_clear();
	assert_int_equal(ml_source_resolve(src, rev, sha), ML_ESOURCE);
	assert_msg_has(msg);
	assert_string_equal(sha, "");
}

/* A fresh repository with mlctl.yaml committed, for tests that change it. */
struct fresh {
	char *tmp;
	char *repo;
	struct ml_source *src;
};

static int fresh_setup(void **state)
{
	struct fresh *f = ml_xcalloc(1, sizeof(*f));

	f->tmp = make_tmp();
	f->repo = path_join(f->tmp, "repo");
	GIT(f->tmp, "init", "-q", "repo");
	write_file(f->repo, "mlctl.yaml", "version: 1\n");
	write_file(f->repo, ".gitignore", "*.log\n");
	write_file(f->repo, "dir/inventory.yaml", "hosts: []\n");
	GIT(f->repo, "add", "-A");
	GIT(f->repo, "commit", "-q", "-m", "initial");
	f->src = open_ok(f->repo);
	*state = f;
	return 0;
}

static int fresh_teardown(void **state)
{
	struct fresh *f = *state;

	ml_source_free(f->src);
	rm_rf(f->tmp);
	free(f->tmp);
	free(f->repo);
	free(f);
	return 0;
}

static bool is_dirty(struct ml_source *src, const char *rel)
{
	bool dirty = true;

	if (ml_source_dirty(src, rel, &dirty) < 0)
		fail_msg("dirty '%s': %s", rel, ml_err_msg());
	return dirty;
}

/* ---- opening ---- */

struct thread_arg {
	const char *dir;
	char sha[ML_SHA_HEX];
	int rc;
};

static void *open_thread(void *p)
{
	struct thread_arg *a = p;
	struct ml_source *src = NULL;

	a->rc = ml_source_open(&src, a->dir);
	if (a->rc == 0)
		a->rc = ml_source_resolve(src, NULL, a->sha);
	ml_source_free(src);
	return NULL;
}

/* First test: libgit2 is initialised by whichever thread comes first. */
static void test_source__open_threads(void **state)
{
	struct thread_arg args[8];
	pthread_t th[8];
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(th); i++) {
		args[i].dir = g.repo;
		args[i].rc = 1;
		assert_int_equal(
			pthread_create(&th[i], NULL, open_thread, &args[i]), 0);
	}
	for (i = 0; i < ML_ARRAY_SIZE(th); i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].rc, 0);
		assert_string_equal(args[i].sha, g.sha2);
	}
}

static void test_source__open_not_repo(void **state)
{
	struct ml_source *src = (struct ml_source *)1;
	char *dir = make_tmp(), *want;

	assert_int_equal(ml_source_open(&src, dir), ML_ESOURCE);
	assert_null(src);
	want = ml_xasprintf("'%s' is not in a git repository: run mlctl in "
			    "the repository that holds mlctl.yaml, or name it "
			    "with -C DIR", dir);
	assert_string_equal(ml_err_msg(), want);
	free(want);
	rm_rf(dir);
	free(dir);
}

static void test_source__open_missing_dir(void **state)
{
	struct ml_source *src = NULL;
	char *dir = path_join(g.tmp, "no/such/dir");
	char *file = path_join(g.repo, "mlctl.yaml");

	assert_int_equal(ml_source_open(&src, dir), ML_ESOURCE);
	assert_msg_has("cannot open '");
	assert_msg_has("No such file or directory");
	assert_int_equal(ml_source_open(&src, file), ML_ESOURCE);
	assert_msg_has("is not a directory");
	assert_null(src);
	free(dir);
	free(file);
}

static void test_source__open_subdir(void **state)
{
	char *sub = path_join(g.repo, "dir"), *want;
	struct ml_source *src = open_ok(sub);

	want = ml_xasprintf("%s/", g.repo);
	assert_string_equal(ml_source_workdir(src), want);
	assert_resolves(src, NULL, g.sha2);
	free(want);
	free(sub);
	ml_source_free(src);
}

/* ---- resolving and reading ---- */

static void test_source__read_head(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char sha[ML_SHA_HEX];
	char *s;

	assert_int_equal(ml_source_resolve(src, NULL, sha), 0);
	assert_string_equal(sha, g.sha2);
	assert_resolves(src, "HEAD", g.sha2);
	s = read_ok(src, sha, "mlctl.yaml");
	assert_string_equal(s, "version: 2\n");
	free(s);
	s = read_ok(src, sha, "dir/inventory.yaml");
	assert_string_equal(s, "hosts: []\n");
	free(s);
	ml_source_free(src);
}

static void test_source__read_older_sha(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	char *s;

	assert_resolves(src, g.sha1, g.sha1);
	s = read_ok(src, g.sha1, "mlctl.yaml");
	assert_string_equal(s, "version: 1\n");
	free(s);
	/* added by the second commit only */
	assert_int_equal(ml_source_read(src, g.sha1, "big.yaml", &b),
			 ML_ENOTFOUND);
	assert_int_equal(b.len, 0);
	ml_source_free(src);
}

static void test_source__read_short_sha(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char shrt[8];
	char *s;

	memcpy(shrt, g.sha1, 7);
	shrt[7] = '\0';
	assert_resolves(src, shrt, g.sha1);
	/* read takes a unique prefix too */
	s = read_ok(src, shrt, "mlctl.yaml");
	assert_string_equal(s, "version: 1\n");
	free(s);
	ml_source_free(src);
}

static void test_source__read_tag(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char sha[ML_SHA_HEX];
	char *s;

	assert_resolves(src, "v1", g.sha1);
	assert_resolves(src, "v1-light", g.sha1);
	assert_resolves(src, "refs/tags/v1", g.sha1);
	assert_int_equal(ml_source_resolve(src, "v1", sha), 0);
	s = read_ok(src, sha, "mlctl.yaml");
	assert_string_equal(s, "version: 1\n");
	free(s);
	ml_source_free(src);
}

static void test_source__read_branch(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char sha[ML_SHA_HEX];
	char *s;

	assert_resolves(src, "old", g.sha1);
	assert_resolves(src, "main", g.sha2);
	assert_resolves(src, "HEAD~1", g.sha1);
	assert_resolves(src, "main^", g.sha1);
	assert_int_equal(ml_source_resolve(src, "old", sha), 0);
	s = read_ok(src, sha, "mlctl.yaml");
	assert_string_equal(s, "version: 1\n");
	free(s);
	ml_source_free(src);
}

static void test_source__resolve_missing(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char sha[ML_SHA_HEX];

	assert_int_equal(ml_source_resolve(src, "v9", sha), ML_ESOURCE);
	assert_string_equal(ml_err_msg(), "no commit 'v9' in this repository");
	assert_resolve_fails(src, "0123456789012345678901234567890123456789",
			     "no commit '0123456789012345678901234567890123456"
			     "789' in this repository");
	assert_resolve_fails(src, "HEAD~5", "no commit 'HEAD~5'");
	assert_resolve_fails(src, "", "empty revision");
	assert_resolve_fails(src, "a..b", "'a..b' is not a valid revision: ");
	ml_source_free(src);
}

static void test_source__resolve_dash(void **state)
{
	struct ml_source *src = open_ok(g.repo);

	assert_resolve_fails(src, "--all",
			     "'--all' is not a revision: it starts with '-'");
	assert_resolve_fails(src, "-n", "starts with '-'");
	ml_source_free(src);
}

static void test_source__resolve_not_commit(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char sha[ML_SHA_HEX];

	assert_int_equal(ml_source_resolve(src, "HEAD^{tree}", sha),
			 ML_ESOURCE);
	assert_string_equal(ml_err_msg(),
			    "'HEAD^{tree}' is a tree, not a commit");
	assert_resolve_fails(src, "HEAD:mlctl.yaml",
			     "'HEAD:mlctl.yaml' is a blob, not a commit");
	assert_resolve_fails(src, "treetag",
			     "'treetag' is a tree, not a "
			     "commit");
	assert_resolve_fails(src, "treetag-a",
			     "'treetag-a' is a tag of a tree, not of a commit");
	ml_source_free(src);
}

static void test_source__resolve_ambiguous(void **state)
{
	struct ml_source *src = open_ok(g.repo);

	assert_resolve_fails(src, "d1124", "'d1124' is ambiguous: ");
	/* one more digit tells them apart (and names a blob) */
	assert_resolve_fails(src, "d1124b", "is a blob, not a commit");
	ml_source_free(src);
}

static void test_source__read_missing_file(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	char *want;

	assert_int_equal(ml_source_read(src, g.sha2, "nope.yaml", &b),
			 ML_ENOTFOUND);
	/* the subject is the first paragraph only */
	want = ml_xasprintf("'nope.yaml' does not exist in commit %.7s "
			    "(second config)",
			    g.sha2);
	assert_string_equal(ml_err_msg(), want);
	free(want);
	assert_int_equal(ml_source_read(src, g.sha2, "dir/nope.yaml", &b),
			 ML_ENOTFOUND);
	assert_msg_has("'dir/nope.yaml' does not exist in commit");
	assert_int_equal(ml_source_read(src, g.sha2, "mlctl.yaml/inside", &b),
			 ML_ENOTFOUND);
	assert_int_equal(b.len, 0);
	ml_source_free(src);
}

static void test_source__read_not_a_file(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	assert_int_equal(ml_source_read(src, g.sha2, "dir", &b), ML_ESOURCE);
	assert_msg_has("'dir' is a directory in commit ");
	assert_msg_has(", not a file");
	assert_int_equal(ml_source_read(src, g.sha2, "link", &b), ML_ESOURCE);
	assert_msg_has("'link' is a symbolic link in commit ");
	assert_int_equal(ml_source_read(src, g.sha2, "/mlctl.yaml", &b),
			 ML_EUSAGE);
	assert_int_equal(b.len, 0);
	ml_source_free(src);
}

static void test_source__read_bad_sha(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	assert_int_equal(ml_source_read(src, "HEAD", "mlctl.yaml", &b),
			 ML_ESOURCE);
	assert_string_equal(ml_err_msg(), "'HEAD' is not a commit sha");
	assert_int_equal(ml_source_read(src,
					"0000000000000000000000000000000000000"
					"000",
					"mlctl.yaml", &b),
			 ML_ENOTFOUND);
	assert_msg_has("no commit '0000000000");
	assert_int_equal(b.len, 0);
	ml_source_free(src);
}

static void test_source__read_too_big(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(100);
	char *want;

	assert_int_equal(ml_source_read(src, g.sha2, "big.yaml", &b),
			 ML_ETOOBIG);
	want = ml_xasprintf("'big.yaml' in commit %.7s (second config) is "
			    "1000 bytes, more than the limit of 100 bytes",
			    g.sha2);
	assert_string_equal(ml_err_msg(), want);
	free(want);
	assert_int_equal(b.len, 0);
	assert_null(b.data);

	/* exactly the limit fits; one byte already there does not */
	b.max = 1000;
	assert_int_equal(ml_source_read(src, g.sha2, "big.yaml", &b), 0);
	assert_int_equal(b.len, 1000);
	ml_buf_reset(&b);
	assert_int_equal(ml_buf_addch(&b, '#'), 0);
	assert_int_equal(ml_source_read(src, g.sha2, "big.yaml", &b),
			 ML_ETOOBIG);
	assert_msg_has("limit of 999 bytes");
	assert_string_equal(b.data, "#");
	ml_buf_release(&b);
	ml_source_free(src);
}

static void test_source__read_appends(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	assert_int_equal(ml_buf_addstr(&b, "# before\n"), 0);
	assert_int_equal(ml_source_read(src, g.sha1, "mlctl.yaml", &b), 0);
	assert_int_equal(ml_source_read(src, g.sha2, "mlctl.yaml", &b), 0);
	assert_string_equal(ml_buf_str(&b),
			    "# before\nversion: 1\nversion: 2\n");
	ml_buf_release(&b);
	ml_source_free(src);
}

static void test_source__describe(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char *subject = NULL;
	int64_t when = 0;

	assert_int_equal(ml_source_describe(src, g.sha2, &subject, &when), 0);
	assert_string_equal(subject, "second config");
	assert_int_equal(when, TIME2); /* author time, not committer time */
	free(subject);
	assert_int_equal(ml_source_describe(src, g.sha1, &subject, &when), 0);
	assert_string_equal(subject, "first config");
	assert_int_equal(when, TIME1);
	free(subject);
	assert_int_equal(ml_source_describe(src, "zz", &subject, &when),
			 ML_ESOURCE);
	assert_null(subject);
	ml_source_free(src);
}

/* ---- paths ---- */

static void assert_relpath(struct ml_source *src, const char *path,
			   const char *want)
{
	char *rel = NULL;

	if (ml_source_relpath(&rel, src, path) < 0)
		fail_msg("relpath '%s': %s", path, ml_err_msg());
	assert_string_equal(rel, want);
	free(rel);
}

static void assert_relpath_fails(struct ml_source *src, const char *path,
				 const char *msg)
{
	char *rel = (char *)1;

	assert_int_equal(ml_source_relpath(&rel, src, path), ML_ESOURCE);
	assert_null(rel);
	assert_msg_has(msg);
}

static void test_source__relpath_inside(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char *p;

	p = path_join(g.repo, "dir/inventory.yaml");
	assert_relpath(src, p, "dir/inventory.yaml");
	free(p);
	p = path_join(g.repo, "mlctl.yaml");
	assert_relpath(src, p, "mlctl.yaml");
	free(p);
	p = path_join(g.repo, ".//dir///inventory.yaml");
	assert_relpath(src, p, "dir/inventory.yaml");
	free(p);
	/* the root itself, with or without a slash */
	assert_relpath(src, g.repo, "");
	p = path_join(g.repo, "");
	assert_relpath(src, p, "");
	free(p);
	/* the last component is not followed: git tracks the link */
	p = path_join(g.repo, "link");
	assert_relpath(src, p, "link");
	free(p);
	p = path_join(g.repo, ".git/config");
	assert_relpath_fails(src, p, "inside the repository's .git directory");
	free(p);
	ml_source_free(src);
}

static void test_source__relpath_cwd(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char *old = getcwd(NULL, 0), *sub = path_join(g.repo, "dir");

	assert_non_null(old);
	assert_int_equal(chdir(sub), 0);
	assert_relpath(src, "inventory.yaml", "dir/inventory.yaml");
	assert_relpath(src, "./new.yaml", "dir/new.yaml");
	assert_relpath(src, "../mlctl.yaml", "mlctl.yaml");
	assert_relpath(src, "..", "");
	assert_relpath_fails(src, "../../x.yaml",
			     "'../../x.yaml' is outside "
			     "the repository at '");
	assert_int_equal(chdir(old), 0);
	free(old);
	free(sub);
	ml_source_free(src);
}

static void test_source__relpath_dotdot(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char *p, *want;

	p = path_join(g.repo, "dir/../mlctl.yaml");
	assert_relpath(src, p, "mlctl.yaml");
	free(p);
	p = path_join(g.repo, "dir/../dir/./inventory.yaml");
	assert_relpath(src, p, "dir/inventory.yaml");
	free(p);
	p = path_join(g.repo, "../x.yaml");
	want = ml_xasprintf("'%s' is outside the repository at '%s'", p,
			    g.repo);
	assert_relpath_fails(src, p, want);
	assert_string_equal(ml_err_msg(), want);
	free(want);
	free(p);
	/* a sibling whose name starts with the repository's */
	p = ml_xasprintf("%s2/mlctl.yaml", g.repo);
	assert_relpath_fails(src, p, "is outside the repository");
	free(p);
	assert_relpath_fails(src, "/etc/passwd",
			     "'/etc/passwd' is outside the repository at '");
	ml_source_free(src);
}

static void test_source__relpath_deleted_dir(void **state)
{
	struct ml_source *src = open_ok(g.repo);
	char *p;

	/* the file is in history but its directory is gone from disk */
	p = path_join(g.repo, "gone/deeper/x.yaml");
	assert_relpath(src, p, "gone/deeper/x.yaml");
	free(p);
	p = path_join(g.repo, "gone/../dir/inventory.yaml");
	assert_relpath(src, p, "dir/inventory.yaml");
	free(p);
	p = path_join(g.repo, "gone/../../x.yaml");
	assert_relpath_fails(src, p, "is outside the repository");
	free(p);
	ml_source_free(src);
}

static void test_source__relpath_symlink_dir(void **state)
{
	struct fresh *f = *state;
	char *out = path_join(f->tmp, "outside");
	char *p, *l;

	/* a link from outside into the repository */
	l = path_join(f->tmp, "into");
	p = path_join(f->repo, "dir");
	assert_int_equal(symlink(p, l), 0);
	free(p);
	p = path_join(l, "inventory.yaml");
	assert_relpath(f->src, p, "dir/inventory.yaml");
	free(p);
	p = path_join(l, "../mlctl.yaml"); /* .. of the link's target */
	assert_relpath(f->src, p, "mlctl.yaml");
	free(p);
	free(l);

	/* a link from inside the repository to outside it */
	assert_int_equal(mkdir(out, 0755), 0);
	l = path_join(f->repo, "out");
	assert_int_equal(symlink(out, l), 0);
	p = path_join(l, "x.yaml");
	assert_relpath_fails(f->src, p, "is outside the repository");
	free(p);
	free(l);

	/* a relative link inside the repository */
	l = path_join(f->repo, "alias");
	assert_int_equal(symlink("dir", l), 0);
	p = path_join(l, "inventory.yaml");
	assert_relpath(f->src, p, "dir/inventory.yaml");
	free(p);
	free(l);
	free(out);
}

/* ---- dirty ---- */

static void test_source__dirty_clean(void **state)
{
	struct fresh *f = *state;

	assert_false(is_dirty(f->src, "mlctl.yaml"));
	assert_false(is_dirty(f->src, "dir/inventory.yaml"));
	/* neither in HEAD, the index nor the working tree */
	assert_false(is_dirty(f->src, "nope.yaml"));
	/* ignored files are not ours to read */
	write_file(f->repo, "debug.log", "x\n");
	assert_false(is_dirty(f->src, "debug.log"));
	/* another file's change does not make this one dirty */
	write_file(f->repo, "dir/inventory.yaml", "hosts: [a]\n");
	assert_false(is_dirty(f->src, "mlctl.yaml"));
	assert_true(is_dirty(f->src, "dir/inventory.yaml"));
}

static void test_source__dirty_modified(void **state)
{
	struct fresh *f = *state;

	write_file(f->repo, "mlctl.yaml", "version: 22\n");
	assert_true(is_dirty(f->src, "mlctl.yaml"));
	/* same length, new content */
	write_file(f->repo, "mlctl.yaml", "version: 9\n");
	assert_true(is_dirty(f->src, "mlctl.yaml"));
	write_file(f->repo, "mlctl.yaml", "version: 1\n");
	assert_false(is_dirty(f->src, "mlctl.yaml"));
}

static void test_source__dirty_staged(void **state)
{
	struct fresh *f = *state;

	write_file(f->repo, "mlctl.yaml", "version: 2\n");
	GIT(f->repo, "add", "mlctl.yaml");
	/* the working tree matches the index, but not HEAD */
	assert_true(is_dirty(f->src, "mlctl.yaml"));
	GIT(f->repo, "commit", "-q", "-m", "second");
	assert_false(is_dirty(f->src, "mlctl.yaml"));
	/* a new file added but not committed */
	write_file(f->repo, "new.yaml", "a: 1\n");
	GIT(f->repo, "add", "new.yaml");
	assert_true(is_dirty(f->src, "new.yaml"));
}

static void test_source__dirty_deleted(void **state)
{
	struct fresh *f = *state;
	char *p = path_join(f->repo, "mlctl.yaml");

	assert_int_equal(unlink(p), 0);
	assert_true(is_dirty(f->src, "mlctl.yaml"));
	GIT(f->repo, "rm", "-q", "--cached", "dir/inventory.yaml");
	assert_true(is_dirty(f->src, "dir/inventory.yaml"));
	free(p);
}

static void test_source__dirty_untracked(void **state)
{
	struct fresh *f = *state;

	write_file(f->repo, "prod.yaml", "hosts: []\n");
	assert_true(is_dirty(f->src, "prod.yaml"));
	write_file(f->repo, "newdir/x.yaml", "a: 1\n");
	assert_true(is_dirty(f->src, "newdir/x.yaml"));
}

/* ---- special repositories ---- */

static void test_source__empty_repository(void **state)
{
	char *tmp = make_tmp(), *repo = path_join(tmp, "repo");
	struct ml_source *src;

	GIT(tmp, "init", "-q", "repo");
	src = open_ok(repo);
	assert_resolve_fails(src, NULL,
			     "'HEAD' names no commit yet (empty "
			     "repository)");
	assert_string_equal(ml_err_msg(),
			    "'HEAD' names no commit yet (empty repository): "
			    "commit mlctl.yaml and inventory.yaml first (mlctl "
			    "reads them from a commit)");
	assert_resolve_fails(src, "HEAD~1", "names no commit yet");
	assert_resolve_fails(src, "main",
			     "no commit 'main' in this "
			     "repository");
	write_file(repo, "mlctl.yaml", "version: 1\n");
	assert_true(is_dirty(src, "mlctl.yaml"));
	GIT(repo, "add", "mlctl.yaml");
	assert_true(is_dirty(src, "mlctl.yaml"));
	assert_false(is_dirty(src, "other.yaml"));
	ml_source_free(src);
	rm_rf(tmp);
	free(tmp);
	free(repo);
}

static void test_source__orphan_branch(void **state)
{
	struct fresh *f = *state;

	GIT(f->repo, "checkout", "-q", "--orphan", "fresh-start");
	assert_resolve_fails(f->src, NULL,
			     "'HEAD' names no commit yet (branch "
			     "'fresh-start' has no commits)");
}

static void test_source__bare_repository(void **state)
{
	char *bare = path_join(g.tmp, "bare.git"), *refs;
	struct ml_source *src;
	char *rel = NULL, *s;
	bool dirty = true;

	GIT(g.tmp, "clone", "-q", "--bare", "repo", "bare.git");
	src = open_ok(bare);
	assert_null(ml_source_workdir(src));
	assert_resolves(src, NULL, g.sha2);
	assert_resolves(src, "v1", g.sha1);
	s = read_ok(src, g.sha2, "mlctl.yaml");
	assert_string_equal(s, "version: 2\n");
	free(s);
	s = read_ok(src, g.sha1, "dir/inventory.yaml");
	assert_string_equal(s, "hosts: []\n");
	free(s);
	assert_int_equal(ml_source_dirty(src, "mlctl.yaml", &dirty), 0);
	assert_false(dirty);
	/* paths are taken relative to the root */
	assert_int_equal(ml_source_relpath(&rel, src, "./dir//inventory.yaml"),
			 0);
	assert_string_equal(rel, "dir/inventory.yaml");
	free(rel);
	assert_relpath(src, "dir/../mlctl.yaml", "mlctl.yaml");
	assert_relpath(src, ".", "");
	assert_relpath_fails(src, "/abs/mlctl.yaml", "bare repository at '");
	assert_relpath_fails(src, "dir/../../x", "is outside the repository");
	ml_source_free(src);

	/* found from inside the git directory too */
	refs = path_join(bare, "refs");
	src = open_ok(refs);
	assert_null(ml_source_workdir(src));
	assert_resolves(src, "old", g.sha1);
	ml_source_free(src);
	free(refs);
	free(bare);
}

#define FRESH(t) cmocka_unit_test_setup_teardown(t, fresh_setup, fresh_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source__open_threads),
		cmocka_unit_test(test_source__open_not_repo),
		cmocka_unit_test(test_source__open_missing_dir),
		cmocka_unit_test(test_source__open_subdir),
		cmocka_unit_test(test_source__read_head),
		cmocka_unit_test(test_source__read_older_sha),
		cmocka_unit_test(test_source__read_short_sha),
		cmocka_unit_test(test_source__read_tag),
		cmocka_unit_test(test_source__read_branch),
		cmocka_unit_test(test_source__resolve_missing),
		cmocka_unit_test(test_source__resolve_dash),
		cmocka_unit_test(test_source__resolve_not_commit),
		cmocka_unit_test(test_source__resolve_ambiguous),
		cmocka_unit_test(test_source__read_missing_file),
		cmocka_unit_test(test_source__read_not_a_file),
		cmocka_unit_test(test_source__read_bad_sha),
		cmocka_unit_test(test_source__read_too_big),
		cmocka_unit_test(test_source__read_appends),
		cmocka_unit_test(test_source__describe),
		cmocka_unit_test(test_source__relpath_inside),
		cmocka_unit_test(test_source__relpath_cwd),
		cmocka_unit_test(test_source__relpath_dotdot),
		cmocka_unit_test(test_source__relpath_deleted_dir),
		FRESH(test_source__relpath_symlink_dir),
		FRESH(test_source__dirty_clean),
		FRESH(test_source__dirty_modified),
		FRESH(test_source__dirty_staged),
		FRESH(test_source__dirty_deleted),
		FRESH(test_source__dirty_untracked),
		cmocka_unit_test(test_source__empty_repository),
		FRESH(test_source__orphan_branch),
		cmocka_unit_test(test_source__bare_repository),
	};

	/* no user or system configuration may change what git does */
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
	unsetenv("GIT_INDEX_FILE");
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
