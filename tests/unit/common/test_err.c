/*
 * The error module (common/err.c): adding context never reads from the
 * buffer being written, a saved message survives the errors of cleanup,
 * and long text is cut, never overrun. Also the secrets file's read
 * failure (orchestrator/secrets.c), one of the sites that once formatted
 * ml_err_msg() into itself; the others are provoked end to end in
 * tests/e2e/test_cli.c and tests/e2e/test_errors.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/secrets.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_err__prefix_puts_context_first(void **state)
{
	ML_UNUSED(state);
	ml_err_set(ML_ENOTFOUND, "no such file '%s'", "a.yaml");
	assert_int_equal(ml_err_prefix(ML_EINVALID, "cannot read '%s'",
				       "a.yaml"),
			 ML_EINVALID);
	assert_string_equal(ml_err_msg(),
			    "cannot read 'a.yaml': no such file 'a.yaml'");
	assert_int_equal(ml_err_code(), ML_EINVALID);
	/* twice: each layer once, nothing repeated */
	ml_err_prefix(ML_EDEPLOY, "load balancer '%s'", "lb1");
	assert_string_equal(ml_err_msg(), "load balancer 'lb1': cannot read "
					  "'a.yaml': no such file 'a.yaml'");
	/* no message yet: the context alone */
	ml_err_clear();
	ml_err_prefix(ML_EFAIL, "context");
	assert_string_equal(ml_err_msg(), "context");
}

/* What the old idiom did: the message comes out whole, not garbled. */
static void test_err__prefix_of_a_message_that_starts_like_it(void **state)
{
	ML_UNUSED(state);
	ml_err_set(ML_EFAIL, "%s", "load balancer");
	ml_err_prefix(ML_EFAIL, "load balancer '%s'", "x");
	assert_string_equal(ml_err_msg(), "load balancer 'x': load balancer");
}

static void test_err__long_text_is_cut(void **state)
{
	char big[3 * ML_ERR_MAX];
	size_t len;

	ML_UNUSED(state);
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ml_err_set(ML_EFAIL, "%s", big);
	ml_err_prefix(ML_EFAIL, "ctx");
	len = strlen(ml_err_msg());
	assert_int_equal(len, ML_ERR_MAX - 1);
	assert_memory_equal(ml_err_msg(), "ctx: mmm", 8);
	/* a context longer than the buffer: cut, still terminated */
	big[sizeof(big) - 1] = '\0';
	ml_err_prefix(ML_EFAIL, "%s", big);
	assert_int_equal(strlen(ml_err_msg()), ML_ERR_MAX - 1);
	ml_err_clear();
}

static void test_err__save_and_restore(void **state)
{
	struct ml_err_saved s;

	ML_UNUSED(state);
	ml_err_set(ML_EHOST, "host 'vm1' cannot be reached");
	ml_err_save(&s);
	ml_err_set(ML_EFAIL, "cleanup failed too");
	assert_int_equal(ml_err_restore(&s), ML_EHOST);
	assert_string_equal(ml_err_msg(), "host 'vm1' cannot be reached");
	assert_int_equal(ml_err_code(), ML_EHOST);
	ml_err_clear();
}

/* A secrets file too large to read: its name once, the reason once. */
static void test_err__secrets_file_too_large(void **state)
{
	char *dir = ml_test_tmpdir("err");
	char *path = ml_xasprintf("%s/secrets", dir);
	char token[] = "TOKEN";
	char *names[] = { token };
	struct ml_playbook pb = { 0 };
	json_t *out = NULL;
	char chunk[4096];
	const char *m;
	char *want;
	int fd, i;

	ML_UNUSED(state);
	pb.secrets.v = names;
	pb.secrets.n = 1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(chunk, '#', sizeof(chunk));
	for (i = 0; i < 2 * 256 + 1; i++) /* just over 2 MiB */
		assert_int_equal(write(fd, chunk, sizeof(chunk)),
				 (ssize_t)sizeof(chunk));
	close(fd);
	assert_true(ml_secrets_load(&out, &pb, path) < 0);
	assert_null(out);
	m = ml_err_msg();
	want = ml_xasprintf("cannot read secrets file '%s': ", path);
	assert_memory_equal(m, want, strlen(want));
	/* the context is not repeated inside the reason */
	assert_null(strstr(m + strlen(want), "cannot read secrets file"));
	assert_true(strlen(m) > strlen(want));
	free(want);
	ml_test_rmtree(dir);
	free(path);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err__prefix_puts_context_first),
		cmocka_unit_test(
			test_err__prefix_of_a_message_that_starts_like_it),
		cmocka_unit_test(test_err__long_text_is_cut),
		cmocka_unit_test(test_err__save_and_restore),
		cmocka_unit_test(test_err__secrets_file_too_large),
	};

	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
