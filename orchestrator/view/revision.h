#ifndef ML_REVISION_VIEW_H
#define ML_REVISION_VIEW_H

/*
 * Printing revisions from the ledger, shared by the verbs that show them
 * (history, show, pin, logs, rollback).
 */

#include <jansson.h>

struct ml_revision;

/* A revision as a JSON object (new reference); full adds the desired state
 * and the playbook text. */
json_t *ml_revision_json(const struct ml_revision *r, bool full);

/* Print doc indented on stdout and release it. */
int ml_print_json(json_t *doc);

/* "deploy" or "rollback to N", written into buf. */
const char *ml_revision_kind_text(const struct ml_revision *r, char *buf,
				  size_t n);

#endif
