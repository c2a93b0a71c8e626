/*
 * The balance algorithms' names (see balance.h), once for both binaries.
 */
#include "common/ml.h"
#include "common/balance.h"

const char *const ml_balance_words[ML_BALANCE_COUNT] = {
	"roundrobin",
	"leastconn",
	"random",
};

bool ml_balance_known(const char *s)
{
	for (size_t i = 0; s && i < ML_BALANCE_COUNT; i++)
		if (!strcmp(s, ml_balance_words[i]))
			return true;
	return false;
}
