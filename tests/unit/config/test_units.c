/*
 * Unit tests of orchestrator/config/units.c: the strict duration and size
 * parsers, duration printing, and the name and suggestion helpers.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

static void test_units__duration_valid(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} cases[] = {
		{"0s", 0},
		{"500ms", 500},
		{"30s", 30000},
		{"2m", 120000},
		{"1h", 3600000},
		{"1h30m", 5400000},
		{"1m30s", 90000},
		{"1h2m3s4ms", 3723004},
		{"1.5s", 1500},
		{"0.25h", 900000},
		{"1m0.5s", 60500},
		{"0.001s", 1},
		{"007s", 7000},
		{"2562047788015h", 2562047788015LL * 3600000},
	};
	size_t i;
	int64_t v;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		if (ml_parse_duration(&v, cases[i].s) != 0)
			fail_msg("'%s': %s", cases[i].s, ml_err_msg());
		assert_int_equal(v, cases[i].ms);
	}
}

static void test_units__duration_invalid(void **state)
{
	static const struct {
		const char *s;
		const char *msg;
	} cases[] = {
		{"", "empty duration"},
		{"30", "duration '30' has no unit (write e.g. '30s')"},
		{"-5s", "duration '-5s' is negative"},
		{"+5s", "invalid duration '+5s'"},
		{"5 s", "invalid duration '5 s'"},
		{" 5s", "invalid duration ' 5s'"},
		{"5s ", "invalid duration '5s '"},
		{"5x", "unknown unit 'x' in duration '5x'"},
		{"5sec", "unknown unit 'sec' in duration '5sec'"},
		{"1d", "unknown unit 'd' in duration '1d'"},
		{"5S", "unknown unit 'S' in duration '5S'"},
		{"30m1h", "units out of order in duration '30m1h'"},
		{"1s1s", "units out of order in duration '1s1s'"},
		{"1.5m30s", "only the last part of duration '1.5m30s'"},
		{"1.5ms", "duration '1.5ms' is finer than a millisecond"},
		{"1.", "invalid duration '1.'"},
		{".5s", "invalid duration '.5s'"},
		{"1.0000000001s", "duration '1.0000000001s' has too many"},
		{"2562047788016h", "duration '2562047788016h' is too long"},
		{"9223372036854775807ms1", "has no unit"},
		{"99999999999999999999ms", "is too long"},
		{"9223372036854775807ms", NULL}, /* INT64_MAX: fits */
		{"9223372036854775s808ms", "is too long"},
		{"9223372036854775s807ms", NULL}, /* INT64_MAX again */
		{"2562047788015h12m55s808ms", "is too long"},
	};
	size_t i;
	int64_t v;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		int rc = ml_parse_duration(&v, cases[i].s);

		if (!cases[i].msg) {
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc != ML_EINVALID)
			fail_msg("'%s' was accepted as %" PRId64, cases[i].s,
				 v);
		if (!strstr(ml_err_msg(), cases[i].msg))
			fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].s,
				 ml_err_msg(), cases[i].msg);
		assert_int_equal(v, 0);
	}
}

static void test_units__duration_format_roundtrip(void **state)
{
	static const int64_t values[] = {
		0,     1,	999,	 1000,	  1500,	    60000,
		90000, 3600000, 5400000, 3723004, 86400000, INT64_MAX,
	};
	char buf[64];
	size_t i;
	int64_t v;

	(void)state;
	assert_string_equal(ml_fmt_duration(buf, 5400000),
			    "1h30m");
	assert_string_equal(ml_fmt_duration(buf, 60000), "1m");
	assert_string_equal(ml_fmt_duration(buf, 1500),
			    "1s500ms");
	assert_string_equal(ml_fmt_duration(buf, 0), "0s");
	for (i = 0; i < ML_ARRAY_SIZE(values); i++) {
		ml_fmt_duration(buf, values[i]);
		assert_int_equal(ml_parse_duration(&v, buf), 0);
		assert_int_equal(v, values[i]);
	}
}

static void test_units__size_valid(void **state)
{
	static const struct {
		const char *s;
		int64_t bytes;
	} cases[] = {
		{"0", 0},
		{"1024", 1024},
		{"1024b", 1024},
		{"1024B", 1024},
		{"100k", 102400},
		{"100K", 102400},
		{"512m", 512LL << 20},
		{"512M", 512LL << 20},
		{"512MB", 512LL << 20},
		{"512mi", 512LL << 20},
		{"512Mi", 512LL << 20},
		{"512MiB", 512LL << 20},
		{"512mib", 512LL << 20},
		{"2g", 2LL << 30},
		{"1.5g", 3LL << 29},
		{"0.5k", 512},
		{"1.3k", 1331}, /* 1331.2 rounded down */
		{"1t", 1LL << 40},
		{"8388607t", 8388607LL << 40},
		{"9223372036854775807", INT64_MAX},
		{"8388607.9999t", 9223372036744824645LL},
	};
	size_t i;
	int64_t v;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		if (ml_parse_size(&v, cases[i].s) != 0)
			fail_msg("'%s': %s", cases[i].s, ml_err_msg());
		assert_int_equal(v, cases[i].bytes);
	}
}

static void test_units__size_invalid(void **state)
{
	static const struct {
		const char *s;
		const char *msg;
	} cases[] = {
		{"", "empty size"},
		{"-1g", "size '-1g' is negative"},
		{"+1g", "invalid size '+1g'"},
		{"1 g", "invalid size '1 g'"},
		{"g", "invalid size 'g'"},
		{"1q", "unknown unit in size '1q'"},
		{"1gg", "unknown unit in size '1gg'"},
		{"1ib", "unknown unit in size '1ib'"},
		{"1bb", "unknown unit in size '1bb'"},
		{"1.5", "size '1.5' is not a whole number of bytes"},
		{"1.5b", "size '1.5b' is not a whole number of bytes"},
		{"1.g", "invalid size '1.g'"},
		{"1.1234567g", "too many decimals"},
		{"8388608t", "size '8388608t' is too large"},
		{"9223372036854775808", "is too large"},
		{"99999999999999999999999k", "is too large"},
	};
	size_t i;
	int64_t v;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		if (ml_parse_size(&v, cases[i].s) != ML_EINVALID)
			fail_msg("'%s' was accepted as %" PRId64, cases[i].s,
				 v);
		if (!strstr(ml_err_msg(), cases[i].msg))
			fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].s,
				 ml_err_msg(), cases[i].msg);
	}
}

/* Text quoted back in messages never carries control bytes or megabytes. */
static void test_units__messages_are_escaped(void **state)
{
	char big[4096];
	int64_t v;

	(void)state;
	assert_int_equal(ml_parse_duration(&v, "5\x1b[31m"), ML_EINVALID);
	assert_null(strchr(ml_err_msg(), '\x1b'));
	assert_non_null(strstr(ml_err_msg(), "\\x1b"));
	memset(big, '9', sizeof(big) - 2);
	big[sizeof(big) - 2] = 'x';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ml_parse_size(&v, big), ML_EINVALID);
	assert_true(strlen(ml_err_msg()) < 300);
}

static void test_units__suggest(void **state)
{
	static const char *const keys[] = {
		"app",	    "image",   "port",		"health",
		"replicas", "env",     "secrets",	"resources",
		"targets",  "rollout", "load_balancer",
	};
	size_t n = ML_ARRAY_SIZE(keys);

	(void)state;
	assert_string_equal(ml_cfg_suggest("helth", keys, n), "health");
	assert_string_equal(ml_cfg_suggest("heatlh", keys, n), "health");
	assert_string_equal(ml_cfg_suggest("Port", keys, n), "port");
	assert_string_equal(ml_cfg_suggest("targest", keys, n), "targets");
	assert_string_equal(ml_cfg_suggest("load_balancr", keys, n),
			    "load_balancer");
	assert_string_equal(ml_cfg_suggest("loadbalancer", keys, n),
			    "load_balancer");
	assert_null(ml_cfg_suggest("frobnicate", keys, n));
	assert_null(ml_cfg_suggest("port", keys, n)); /* exact: no hint */
	assert_null(ml_cfg_suggest("x", keys, 0));
}

static void test_units__names(void **state)
{
	(void)state;
	assert_true(ml_cfg_is_ident("A"));
	assert_true(ml_cfg_is_ident("_x9"));
	assert_true(ml_cfg_is_ident("HF_TOKEN"));
	assert_false(ml_cfg_is_ident(""));
	assert_false(ml_cfg_is_ident("9A"));
	assert_false(ml_cfg_is_ident("A-B"));
	assert_false(ml_cfg_is_ident("A B"));
	assert_false(ml_cfg_is_ident("É"));

	assert_true(ml_cfg_is_name("web1"));
	assert_true(ml_cfg_is_name("1web"));
	assert_true(ml_cfg_is_name("gpu-a1.eu_west"));
	assert_true(ml_cfg_is_name("a234567890123456789012345678901234567890123"
				   "45678901234567890123"));
	assert_false(ml_cfg_is_name("a23456789012345678901234567890123456789012"
				    "3456789012345678901234"));
	assert_false(ml_cfg_is_name(""));
	assert_false(ml_cfg_is_name("-oProxyCommand=x"));
	assert_false(ml_cfg_is_name(".hidden"));
	assert_false(ml_cfg_is_name("_x"));
	assert_false(ml_cfg_is_name("web 1"));
	assert_false(ml_cfg_is_name("web\n1"));
	assert_false(ml_cfg_is_name("web/1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units__duration_valid),
		cmocka_unit_test(test_units__duration_invalid),
		cmocka_unit_test(test_units__duration_format_roundtrip),
		cmocka_unit_test(test_units__size_valid),
		cmocka_unit_test(test_units__size_invalid),
		cmocka_unit_test(test_units__messages_are_escaped),
		cmocka_unit_test(test_units__suggest),
		cmocka_unit_test(test_units__names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
