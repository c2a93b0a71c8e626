#ifndef ML_SECRETS_H
#define ML_SECRETS_H

/*
 * Secret values for the names a playbook lists. They live outside git: in
 * a file of KEY=VALUE lines (mode 0600 or stricter, refused otherwise) or
 * in the environment, and travel to the VMs only inside the SSH channel.
 * They are never printed, logged or written to the ledger; only their
 * names are.
 */

#include <jansson.h>

struct ml_playbook;

/*
 * Collect a value for every secret pb names into *out ({"NAME": "value"},
 * the caller's). From file when given, else from ".mlctl/secrets" in the
 * current directory when it exists; a name missing there is taken from the
 * environment variable of the same name. ML_EINVALID when a name has no
 * value anywhere ("secret 'HF_TOKEN' has no value: ..."), when the file is
 * readable by group or others, or when a line is malformed (file:line,
 * never the value).
 */
int ml_secrets_load(json_t **out, const struct ml_playbook *pb,
		    const char *file);

#endif
