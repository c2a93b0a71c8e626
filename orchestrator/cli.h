#ifndef ML_CLI_H
#define ML_CLI_H

/*
 * What is derived from the command table rather than written by hand: the
 * "did you mean" for a mistyped verb or option, and the shell completions
 * and the manual page that the build generates (`mlctl __gen ...`). The
 * table itself stays in orchestrator/main.c; it is handed in here as a
 * struct ml_cli so that tests can also pass a table of their own.
 */

#include "orchestrator/cmd/cmd.h"

/* An option accepted before or after any verb (main.c's globals[]). */
struct ml_global_opt {
	const char *name;
	int id;
	char short_name;
	const char *arg;
	const char *help;
};

struct ml_cli {
	const struct ml_cmd *const *cmds;
	size_t ncmds;
	const struct ml_global_opt *globals;
	size_t nglobals;
	const char *version;
};

/*
 * The verb for word: an exact name, or a unique prefix of a verb that is
 * not ML_CMD_DESTRUCTIVE (a destructive verb is run only when written out
 * in full). NULL when none or ambiguous.
 */
const struct ml_cmd *ml_cli_find(const struct ml_cli *cli, const char *word);

/*
 * The verb word most likely meant (edit distance, as validate suggests
 * keys), or NULL. A suggestion is only ever printed, never run, so
 * destructive verbs may be suggested.
 */
const char *ml_cli_suggest_verb(const struct ml_cli *cli, const char *word);

/*
 * For an unknown option arg ("--jsn", "--jsn=x", "-Z"), the long option
 * most likely meant among cmd's options (cmd may be NULL) and the globals,
 * without dashes, or NULL.
 */
const char *ml_cli_suggest_option(const struct ml_cli *cli,
				  const struct ml_cmd *cmd, const char *arg);

/*
 * Set the message for a word that names no verb (with what was probably
 * meant: a close verb, the verbs an ambiguous prefix could be, or that a
 * destructive verb must be typed in full) and return ML_EUSAGE.
 */
int ml_cli_unknown_verb(const struct ml_cli *cli, const char *word);

/*
 * Set the message for an option getopt refused (arg as the user typed it:
 * "--jsn", "--commit" without its argument, "--limit" given to a verb
 * that does not take it, "-Z") and return ML_EUSAGE. cmd is NULL before
 * the verb.
 */
int ml_cli_unknown_option(const struct ml_cli *cli, const struct ml_cmd *cmd,
			  const char *arg);

/* What `mlctl __gen WHAT` can write. */
enum ml_cli_gen {
	ML_GEN_BASH,
	ML_GEN_ZSH,
	ML_GEN_MAN,
};

/*
 * Write the bash or zsh completion script or the man page (mdoc-free
 * classic man macros, section 1) for cli to fp. explain_keys (NULL
 * terminated, may be NULL) are completed after `mlctl explain`. Returns 0,
 * or ML_EFAIL when fp reports a write error.
 */
int ml_cli_generate(FILE *fp, const struct ml_cli *cli, enum ml_cli_gen what,
		    const char *const *explain_keys);

#endif
