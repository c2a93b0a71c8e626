#ifndef ML_EXPLAIN_H
#define ML_EXPLAIN_H

/*
 * What a key of the playbook or the inventory means, from the JSON Schemas
 * in schema/, which the build embeds into mlctl (so `mlctl explain` needs
 * no file next to the binary and always matches the parser it ships with).
 *
 * Keys are dotted paths. Playbook keys are written as they nest in
 * mlctl.yaml ("rollout.canary"), optionally after "playbook."; inventory
 * keys start with "inventory." ("inventory.hosts.NAME.ssh.user"). Where a
 * mapping holds entries named by the user (hosts, groups, env, vars,
 * labels, build args) any name, or NAME, stands for an entry.
 */

#include "common/buf.h"

/*
 * Every key of both schemas, in schema order, as its canonical path
 * ("app", ..., "inventory.hosts.NAME.address"): a NULL-terminated array of
 * strings that live as long as the process. The caller frees the array
 * only (free()). Fails only if an embedded schema does not parse (a BUG in
 * the build).
 */
int ml_explain_keys(const char *const **out);

/*
 * Append the explanation of key to out: the file it belongs to, its type,
 * default, allowed values, description, an example in YAML as it nests in
 * the file, and for a mapping the keys it holds. "" or "playbook" or
 * "inventory" explain a whole file. An unknown key is ML_ENOTFOUND with a
 * message that says which part is unknown and what it probably meant.
 */
int ml_explain(struct ml_buf *out, const char *key);

#endif
