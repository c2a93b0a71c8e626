/*
 * Finding the verb a user typed, and saying what they probably meant when
 * there is none. Candidates come from the command table only (struct
 * ml_cli), and closeness is judged by the same edit distance and threshold
 * as validate's "did you mean" for keys (ml_cfg_suggest). Nothing here ever
 * runs a suggestion: it is printed for the user to type, as git does with
 * help.autocorrect off. A unique prefix of a verb is accepted except for a
 * verb flagged ML_CMD_DESTRUCTIVE, which must be written out.
 *
 * Sizes: tens of verbs and options; candidate arrays live on the stack.
 */
#include "common/ml.h"
#include "orchestrator/cli.h"
#include "orchestrator/config/config.h"

#define MAX_CANDS 128

const struct ml_cmd *ml_cli_find(const struct ml_cli *cli, const char *word)
{
	const struct ml_cmd *found = NULL;
	size_t i, len = strlen(word), matches = 0;

	if (!len)
		return NULL;
	for (i = 0; i < cli->ncmds; i++) {
		if (!strcmp(cli->cmds[i]->name, word))
			return cli->cmds[i];
		if (!(cli->cmds[i]->flags & ML_CMD_DESTRUCTIVE) &&
		    !strncmp(cli->cmds[i]->name, word, len)) {
			found = cli->cmds[i];
			matches++;
		}
	}
	return matches == 1 ? found : NULL;
}

const char *ml_cli_suggest_verb(const struct ml_cli *cli, const char *word)
{
	const char *cands[MAX_CANDS];
	size_t i, n = 0;

	for (i = 0; i < cli->ncmds && n < MAX_CANDS; i++)
		cands[n++] = cli->cmds[i]->name;
	return ml_cfg_suggest(word, cands, n);
}

const char *ml_cli_suggest_option(const struct ml_cli *cli,
				  const struct ml_cmd *cmd, const char *arg)
{
	const struct ml_option *const *o;
	const char *cands[MAX_CANDS];
	char word[64];
	size_t i, n = 0, len;

	while (*arg == '-')
		arg++;
	len = strcspn(arg, "=");
	if (!len || len >= sizeof(word))
		return NULL;
	memcpy(word, arg, len);
	word[len] = '\0';
	for (o = cmd && cmd->options ? cmd->options : NULL; o && *o; o++)
		if (n < MAX_CANDS)
			cands[n++] = (*o)->name;
	for (i = 0; i < cli->nglobals && n < MAX_CANDS; i++)
		cands[n++] = cli->globals[i].name;
	return ml_cfg_suggest(word, cands, n);
}

/* The verbs word is a prefix of, comma-separated into b; their count. */
static size_t prefixed(struct ml_buf *b, const struct ml_cli *cli,
		       const char *word, bool destructive)
{
	size_t i, n = 0, len = strlen(word);

	for (i = 0; i < cli->ncmds; i++) {
		const struct ml_cmd *c = cli->cmds[i];

		if (!!(c->flags & ML_CMD_DESTRUCTIVE) != destructive ||
		    strncmp(c->name, word, len))
			continue;
		ml_buf_addf(b, "%s'%s'", n ? ", " : "", c->name);
		n++;
	}
	return n;
}

int ml_cli_unknown_verb(const struct ml_cli *cli, const char *word)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	const char *sg;
	int rc;

	if (*word && prefixed(&b, cli, word, false) > 1) {
		rc = ml_err_set(ML_EUSAGE, "'%.64s' is ambiguous: it could be "
			       "%s", word, ml_buf_str(&b));
	} else if (*word && (ml_buf_reset(&b),
			     prefixed(&b, cli, word, true) == 1)) {
		rc = ml_err_set(ML_EUSAGE, "'%.64s' is not a command; %s "
			       "changes the fleet, so it is never "
			       "abbreviated: type it in full", word,
			       ml_buf_str(&b));
	} else if ((sg = ml_cli_suggest_verb(cli, word))) {
		rc = ml_err_set(ML_EUSAGE, "'%.64s' is not a command; did you "
			       "mean '%s'? (see 'mlctl --help')", word, sg);
	} else {
		rc = ml_err_set(ML_EUSAGE, "'%.64s' is not a command; see "
			       "'mlctl --help'", word);
	}
	ml_buf_release(&b);
	return rc;
}

/* The option of cmd or of the globals named name (no dashes), or NULL;
 * *arg_out its placeholder. */
static bool has_option(const struct ml_cli *cli, const struct ml_cmd *cmd,
		       const char *name, size_t len, const char **arg_out)
{
	const struct ml_option *const *o;
	size_t i;

	for (o = cmd && cmd->options ? cmd->options : NULL; o && *o; o++)
		if (strlen((*o)->name) == len &&
		    !strncmp((*o)->name, name, len)) {
			*arg_out = (*o)->arg;
			return true;
		}
	for (i = 0; i < cli->nglobals; i++)
		if (strlen(cli->globals[i].name) == len &&
		    !strncmp(cli->globals[i].name, name, len)) {
			*arg_out = cli->globals[i].arg;
			return true;
		}
	return false;
}

/* The first verb other than cmd that takes --name, or NULL. */
static const struct ml_cmd *option_owner(const struct ml_cli *cli,
					 const struct ml_cmd *cmd,
					 const char *name, size_t len)
{
	const struct ml_option *const *o;
	size_t i;

	for (i = 0; i < cli->ncmds; i++) {
		if (cli->cmds[i] == cmd)
			continue;
		for (o = cli->cmds[i]->options; o && *o; o++)
			if (strlen((*o)->name) == len &&
			    !strncmp((*o)->name, name, len))
				return cli->cmds[i];
	}
	return NULL;
}

/* An unknown short option, or a known one without its argument. */
static int unknown_short(const struct ml_cli *cli, const struct ml_cmd *cmd,
			 char c, const char *where)
{
	const struct ml_option *const *o;
	size_t i;

	for (o = cmd && cmd->options ? cmd->options : NULL; c && o && *o; o++)
		if ((*o)->short_name == c && (*o)->arg)
			return ml_err_set(ML_EUSAGE, "option '-%c' needs an "
				       "argument (%s)", c, (*o)->arg);
	for (i = 0; c && i < cli->nglobals; i++)
		if (cli->globals[i].short_name == c && cli->globals[i].arg)
			return ml_err_set(ML_EUSAGE, "option '-%c' needs an "
				       "argument (%s)", c,
				       cli->globals[i].arg);
	if (c > ' ' && c < 127)
		return ml_err_set(ML_EUSAGE, "unknown option '-%c'%s; see "
			       "'mlctl %s%s--help'", c, where,
			       cmd ? cmd->name : "", cmd ? " " : "");
	return ml_err_set(ML_EUSAGE, "unknown option%s; see 'mlctl %s%s--help'",
		       where, cmd ? cmd->name : "", cmd ? " " : "");
}

int ml_cli_unknown_option(const struct ml_cli *cli, const struct ml_cmd *cmd,
			  const char *arg)
{
	const char *name = arg, *placeholder = NULL, *sg;
	const struct ml_cmd *owner;
	char where[96] = "";
	size_t len;

	if (cmd)
		snprintf(where, sizeof(where), " for %s", cmd->name);
	if (arg[0] != '-' || arg[1] != '-')
		return unknown_short(cli, cmd, arg[0] == '-' ? arg[1] : 0,
				     where);
	name = arg + 2;
	len = strcspn(name, "=");
	if (has_option(cli, cmd, name, len, &placeholder) && placeholder &&
	    !name[len])
		return ml_err_set(ML_EUSAGE, "option '--%.*s' needs an "
			       "argument (%s)", (int)len, name, placeholder);
	if (has_option(cli, cmd, name, len, &placeholder) && !placeholder)
		return ml_err_set(ML_EUSAGE, "option '--%.*s' takes no "
			       "argument", (int)len, name);
	owner = option_owner(cli, cmd, name, len);
	if (owner && cmd)
		return ml_err_set(ML_EUSAGE, "'--%.*s' is not an option of %s "
			       "(%s takes it); see 'mlctl %s --help'",
			       (int)(len > 64 ? 64 : len), name, cmd->name,
			       owner->name, cmd->name);
	if (owner)
		return ml_err_set(ML_EUSAGE, "'--%.*s' is an option of %s: "
			       "put it after the command",
			       (int)(len > 64 ? 64 : len), name, owner->name);
	sg = ml_cli_suggest_option(cli, cmd, arg);
	if (sg)
		return ml_err_set(ML_EUSAGE, "unknown option '--%.*s'%s; did "
			       "you mean '--%s'?",
			       (int)(len > 64 ? 64 : len), name, where, sg);
	return ml_err_set(ML_EUSAGE, "unknown option '--%.*s'%s; see 'mlctl "
		       "%s%s--help'", (int)(len > 64 ? 64 : len), name, where,
		       cmd ? cmd->name : "", cmd ? " " : "");
}
