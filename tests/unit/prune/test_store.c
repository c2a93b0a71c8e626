/*
 * The removal side of the stores prune empties: the agent's blob store
 * (ml_blobstore_remove: a complete blob goes, a .part being received
 * stays, absence is not an error) and the controller's cache
 * (ml_cache_each, ml_cache_remove), on real directories.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "common/sha256.h"
#include "agent/blobstore.h"
#include "orchestrator/image/image.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

static char *digest_of(const char *data)
{
	char hex[ML_SHA256_HEX];

	ml_sha256_hex(data, strlen(data), hex);
	return ml_xasprintf("sha256:%s", hex);
}

static char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *d = ml_xasprintf("%s/mlctl-prune-XXXXXX", t && *t ? t : "/tmp");

	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *dir)
{
	char *cmd[] = { (char *)"rm", (char *)"-rf", (char *)dir, NULL };
	pid_t pid = fork();

	if (pid == 0) {
		execvp(cmd[0], cmd);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0)
		;
}

static void put(struct ml_blobstore *s, const char *data, size_t upto,
		bool finish)
{
	struct ml_blob_put *p;
	char *dg = digest_of(data);

	ml_blob_put_new(&p, s, dg, strlen(data), 0, false);
	assert_int_equal(ml_blob_put_begin(p), 0);
	assert_int_equal(ml_blob_put_write(p, data, upto), 0);
	if (finish)
		assert_int_equal(ml_blob_put_finish(p), 0);
	ml_blob_put_free(p);
	free(dg);
}

static void test_store__blobstore_remove(void **state)
{
	char *dir = tmpdir(), *a = digest_of("layer a"), *b = digest_of("part b");
	struct ml_blobstore *s;
	uint64_t size;
	int64_t part;

	ML_UNUSED(state);
	ml_blobstore_open(&s, dir);
	put(s, "layer a", 7, true);
	put(s, "part b", 3, false);
	assert_int_equal(ml_blobstore_stat(s, a, &size, &part), 1);

	assert_int_equal(ml_blobstore_remove(s, a, &size), 1);
	assert_int_equal(size, 7);
	assert_int_equal(ml_blobstore_stat(s, a, &size, &part), 0);
	assert_int_equal(ml_blobstore_remove(s, a, &size), 0);
	assert_int_equal(size, 0);
	/* a .part is a put in progress: never removed */
	assert_int_equal(ml_blobstore_remove(s, b, &size), 0);
	assert_int_equal(ml_blobstore_stat(s, b, &size, &part), 0);
	assert_int_equal(part, 3);
	assert_int_equal(ml_blobstore_remove(s, "sha256:../../x", &size),
			 ML_EINVALID);
	ml_blobstore_free(s);
	rm_rf(dir);
	free(dir);
	free(a);
	free(b);
}

static int count(void *arg, const char *digest, int64_t size)
{
	int *n = arg;

	ML_UNUSED(digest);
	(*n) += (int)size;
	return 0;
}

static void test_store__cache_each_and_remove(void **state)
{
	char *dir = tmpdir(), *dg = digest_of("x"), *path = NULL;
	struct ml_cache *c;
	int64_t size;
	int total = 0, fd;

	ML_UNUSED(state);
	assert_int_equal(ml_cache_open(&c, dir), 0);
	assert_int_equal(ml_cache_each(c, count, &total), 0);
	assert_int_equal(total, 0);
	assert_int_equal(ml_cache_path(&path, c, dg), 0);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0) { /* the blobs directory appears on the first fill */
		char *d = ml_xasprintf("%s/blobs/sha256", dir);

		mkdir(d, 0700);
		free(d);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
	}
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(ml_cache_each(c, count, &total), 0);
	assert_int_equal(total, 1);
	assert_int_equal(ml_cache_remove(c, dg, &size), 1);
	assert_int_equal(size, 1);
	assert_false(ml_cache_has(c, dg));
	assert_int_equal(ml_cache_remove(c, dg, &size), 0);
	assert_int_equal(ml_cache_remove(c, "nope", &size), ML_EINVALID);
	ml_cache_free(c);
	rm_rf(dir);
	free(dir);
	free(dg);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store__blobstore_remove),
		cmocka_unit_test(test_store__cache_each_and_remove),
	};

	return cmocka_run_group_tests_name("prune/store", tests, NULL, NULL);
}
