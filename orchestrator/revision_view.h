#ifndef ML_REVISION_VIEW_H
#define ML_REVISION_VIEW_H

/*
 * Printing revisions from the ledger, shared by the verbs that show them.
 */

#include <jansson.h>

struct ml_revision;

/* Parse a non-negative decimal count or revision number given on the
 * command line; ML_EUSAGE naming what (e.g. "--limit") otherwise. */
int ml_parse_count(int64_t *out, const char *s, const char *what);

/* A revision as a JSON object (new reference); full adds the desired state
 * and the playbook text. */
json_t *ml_revision_json(const struct ml_revision *r, bool full);

/* Print doc indented on stdout and release it. */
int ml_print_json(json_t *doc);

/* "deploy" or "rollback to N", written into buf. */
const char *ml_revision_kind_text(const struct ml_revision *r, char *buf,
				  size_t n);

#endif
