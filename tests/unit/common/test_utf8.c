/*
 * The strict UTF-8 decoder (common/utf8.c) and the escaping built on it
 * (common/log.c: ml_escape), which print what remote hosts send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "common/log.h"
#include "common/utf8.h"

static size_t dec(const char *s, size_t n, uint32_t *cp)
{
	return ml_utf8_decode((const unsigned char *)s, n, cp);
}

static void test_utf8__decode(void **state)
{
	uint32_t cp = 0;

	ML_UNUSED(state);
	assert_int_equal(dec("A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(dec("\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(dec("\xe2\x80\xa8", 3, &cp), 3);
	assert_int_equal(cp, 0x2028);
	assert_int_equal(dec("\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	/* refused: truncated, bad continuation, overlong, surrogate, too big,
	 * a lone continuation byte */
	assert_int_equal(dec("\xc3", 1, &cp), 0);
	assert_int_equal(dec("\xc3\x41", 2, &cp), 0);
	assert_int_equal(dec("\xc0\xaf", 2, &cp), 0);
	assert_int_equal(dec("\xe0\x80\xaf", 3, &cp), 0);
	assert_int_equal(dec("\xed\xa0\x80", 3, &cp), 0);
	assert_int_equal(dec("\xf4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(dec("\x80", 1, &cp), 0);
}

static void test_utf8__escape(void **state)
{
	struct ml_buf b = ML_BUF_INIT(0);
	static const char in[] = "ok\t\x1b[2J\xc2\x85\xff\xc3\xa9";

	ML_UNUSED(state);
	assert_int_equal(ml_escape(&b, in, sizeof(in) - 1), 0);
	/* tab kept; ESC, the C1 NEL and the invalid byte escaped */
	assert_string_equal(ml_buf_str(&b),
			    "ok\t\\x1b[2J\\xc2\\x85\\xff\xc3\xa9");
	ml_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8__decode),
		cmocka_unit_test(test_utf8__escape),
	};

	return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
