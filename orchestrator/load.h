#ifndef ML_LOAD_H
#define ML_LOAD_H

/*
 * Loading the desired state for a command: read the playbook and inventory
 * at the requested commit (or from the working tree with --worktree),
 * parse, validate and resolve them. Used by main.c for verbs flagged
 * ML_CMD_NEEDS_CONFIG.
 */

struct ml_ctx;
struct ml_config;

/* Largest playbook or inventory we read. */
#define ML_CONFIG_MAX_BYTES ((size_t)1 << 20)

/*
 * Fill *out from ctx's -f/-i paths and --commit (default HEAD) in the
 * repository at the current directory. Diagnostics are printed on stderr
 * as file:line:col; the return is then ML_EINVALID with a one-line summary.
 * Uncommitted changes to either file are reported as a warning, or are an
 * error (ML_EDIRTY) when refuse_dirty is set and --allow-dirty is not.
 */
int ml_load_config(struct ml_config **out, const struct ml_ctx *ctx,
		   bool refuse_dirty);

/*
 * Like ml_load_config, with the playbook given as text (a revision's
 * recorded playbook) and only the inventory read from git at --commit.
 * commit is recorded as the config's commit (may be NULL).
 */
int ml_load_config_with_playbook(struct ml_config **out,
				 const struct ml_ctx *ctx, const char *text,
				 size_t len, const char *commit);

#endif
