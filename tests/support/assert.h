/*
 * Assertions the suites share, for use after <cmocka.h>.
 *
 * assert_msg_has(needle): the current error message (ml_err_msg) contains
 * needle; on failure both are printed.
 */
#ifndef ML_TEST_ASSERT_H
#define ML_TEST_ASSERT_H

#include "common/err.h"

#include <string.h>

#define assert_msg_has(needle)                                                 \
	do {                                                                   \
		if (!strstr(ml_err_msg(), (needle)))                           \
			fail_msg("message '%s' lacks '%s'", ml_err_msg(),      \
				 (needle));                                    \
	} while (0)

#endif
