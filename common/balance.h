#ifndef ML_BALANCE_H
#define ML_BALANCE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * HAProxy's balance algorithms that mlctl offers, by the words the
 * playbook and lb_apply write, for both binaries: the playbook parser
 * reads them into enum ml_balance (orchestrator/config/config.h, in this
 * order) and the agent checks lb_apply's "balance" against this list.
 */
#define ML_BALANCE_COUNT 3
extern const char *const ml_balance_words[ML_BALANCE_COUNT];

/* Whether s is one of ml_balance_words. */
bool ml_balance_known(const char *s);

#endif
