/*
 * The bash and zsh completion scripts and the man page, written from the
 * command table (struct ml_cli) by `mlctl __gen`, which the Makefile runs
 * at build time: a verb or option added to the table is completed and
 * documented without anyone editing a script. tests/unit/cli/test_gen.c
 * checks that every verb and option of the real table is in all three.
 *
 * What is completed: verbs; each verb's options and the global options;
 * after an option that takes FILE or PATH, file names, after DIR,
 * directories; the words of a usage like "status|release"; the playbook
 * and inventory keys after `explain`. Help texts are written into shell
 * strings and roff, so each output has its own quoting below; texts come
 * from our own table, but are quoted anyway so that no character in them
 * can end a string early.
 */
#include "common/ml.h"
#include "orchestrator/cli.h"

#include <ctype.h>

/* ---- helpers over the table ------------------------------------------- */

static bool arg_is_file(const char *arg)
{
	return arg && (!strcmp(arg, "FILE") || !strcmp(arg, "PATH"));
}

static bool arg_is_dir(const char *arg)
{
	return arg && !strcmp(arg, "DIR");
}

/*
 * The fixed words of a usage string: each token made of lowercase words
 * joined by '|' ("status|release") is a choice of sub-words. Written into
 * fp separated by spaces.
 */
static void usage_words(FILE *fp, const char *usage)
{
	const char *p = usage ? usage : "";

	while (*p) {
		size_t len = strcspn(p, " "), i;
		bool choice = len > 0 && memchr(p, '|', len);

		for (i = 0; choice && i < len; i++)
			if (!islower((unsigned char)p[i]) && p[i] != '|' &&
			    p[i] != '-')
				choice = false;
		for (i = 0; choice && i < len; i++)
			fputc(p[i] == '|' ? ' ' : p[i], fp);
		if (choice)
			fputc(' ', fp);
		p += len;
		while (*p == ' ')
			p++;
	}
}

/* Every option name of the globals and of every verb that matches pred,
 * once each, "--name" and "-c" forms, joined by sep. */
static void option_names(FILE *fp, const struct ml_cli *cli,
			 bool (*pred)(const char *arg), const char *sep)
{
	const struct ml_option *const *o;
	const char *seen[256];
	size_t nseen = 0, i, k;
	bool first = true;

	for (i = 0; i < cli->nglobals; i++) {
		if (!pred(cli->globals[i].arg))
			continue;
		fprintf(fp, "%s--%s", first ? "" : sep, cli->globals[i].name);
		if (cli->globals[i].short_name)
			fprintf(fp, "%s-%c", sep, cli->globals[i].short_name);
		first = false;
	}
	for (i = 0; i < cli->ncmds; i++) {
		for (o = cli->cmds[i]->options; o && *o; o++) {
			if (!pred((*o)->arg))
				continue;
			for (k = 0; k < nseen; k++)
				if (!strcmp(seen[k], (*o)->name))
					break;
			if (k < nseen || nseen == ML_ARRAY_SIZE(seen))
				continue;
			seen[nseen++] = (*o)->name;
			fprintf(fp, "%s--%s", first ? "" : sep, (*o)->name);
			if ((*o)->short_name)
				fprintf(fp, "%s-%c", sep, (*o)->short_name);
			first = false;
		}
	}
	if (first)
		fprintf(fp, "--mlctl-none");
}

static bool pred_file(const char *arg)
{
	return arg_is_file(arg);
}

static bool pred_dir(const char *arg)
{
	return arg_is_dir(arg);
}

static bool pred_other_arg(const char *arg)
{
	return arg && !arg_is_file(arg) && !arg_is_dir(arg);
}

static bool pred_any_arg(const char *arg)
{
	return arg != NULL;
}

/* ---- bash ------------------------------------------------------------- */

static void gen_bash(FILE *fp, const struct ml_cli *cli,
		     const char *const *keys)
{
	const struct ml_option *const *o;
	size_t i;

	fprintf(fp, "# bash completion for mlctl %s\n"
		    "# generated from the command table by "
		    "'mlctl __gen completion-bash'; do not edit\n\n"
		    "_mlctl()\n{\n"
		    "\tlocal cur prev verb i words\n"
		    "\tcur=${COMP_WORDS[COMP_CWORD]}\n"
		    "\tprev=${COMP_WORDS[COMP_CWORD-1]}\n"
		    "\tverb=\n"
		    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
		    "\t\tcase ${COMP_WORDS[i]} in\n\t\t",
		cli->version);
	option_names(fp, cli, pred_any_arg, "|");
	fprintf(fp, ")\n\t\t\t((i++)) ;;\n"
		    "\t\t-*) ;;\n"
		    "\t\t*)\n\t\t\tverb=${COMP_WORDS[i]}\n\t\t\tbreak ;;\n"
		    "\t\tesac\n\tdone\n"
		    "\tcase $prev in\n\t");
	option_names(fp, cli, pred_file, "|");
	fprintf(fp, ")\n\t\tmapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
		    "\t\treturn ;;\n\t");
	option_names(fp, cli, pred_dir, "|");
	fprintf(fp, ")\n\t\tmapfile -t COMPREPLY < <(compgen -d -- \"$cur\")\n"
		    "\t\treturn ;;\n\t");
	option_names(fp, cli, pred_other_arg, "|");
	fprintf(fp, ")\n\t\tCOMPREPLY=()\n\t\treturn ;;\n\tesac\n"
		    "\twords=\"");
	for (i = 0; i < cli->nglobals; i++)
		fprintf(fp, "%s--%s", i ? " " : "", cli->globals[i].name);
	fprintf(fp, "\"\n\tcase $verb in\n\t'')\n\t\twords+=\"");
	for (i = 0; i < cli->ncmds; i++)
		fprintf(fp, " %s", cli->cmds[i]->name);
	fprintf(fp, "\" ;;\n");
	for (i = 0; i < cli->ncmds; i++) {
		const struct ml_cmd *c = cli->cmds[i];

		fprintf(fp, "\t%s)\n\t\twords+=\"", c->name);
		for (o = c->options; o && *o; o++)
			fprintf(fp, " --%s", (*o)->name);
		if (c->usage && strchr(c->usage, '|')) {
			fputc(' ', fp);
			usage_words(fp, c->usage);
		}
		if (!strcmp(c->name, "explain"))
			for (; keys && *keys; keys++)
				fprintf(fp, " %s", *keys);
		fprintf(fp, "\" ;;\n");
	}
	fprintf(fp, "\tesac\n"
		    "\tmapfile -t COMPREPLY < <(compgen -W \"$words\" -- "
		    "\"$cur\")\n"
		    "}\n\ncomplete -F _mlctl mlctl\n");
}

/* ---- zsh -------------------------------------------------------------- */

/* Write s for the inside of a single-quoted zsh word that _arguments reads
 * as an option description: quotes closed and reopened, brackets and
 * colons escaped. */
static void zsh_desc(FILE *fp, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", fp);
		else if (*s == '[' || *s == ']' || *s == ':' || *s == '\\')
			fprintf(fp, "\\%c", *s);
		else if ((unsigned char)*s >= ' ')
			fputc(*s, fp);
	}
}

static void zsh_action(FILE *fp, const char *arg)
{
	if (!arg)
		return;
	fprintf(fp, ":%s:", arg);
	if (arg_is_file(arg))
		fputs("_files", fp);
	else if (arg_is_dir(arg))
		fputs("_files -/", fp);
}

static void zsh_option(FILE *fp, char short_name, const char *name,
		       const char *arg, const char *help, const char *end)
{
	if (short_name) {
		fprintf(fp, "\t\t'(-%c --%s)'{-%c,--%s}'[", short_name, name,
			short_name, name);
	} else {
		fprintf(fp, "\t\t'--%s[", name);
	}
	zsh_desc(fp, help);
	fputc(']', fp);
	zsh_action(fp, arg);
	fprintf(fp, "'%s\n", end);
}

static void gen_zsh(FILE *fp, const struct ml_cli *cli,
		    const char *const *keys)
{
	const struct ml_option *const *o;
	size_t i;

	fprintf(fp, "#compdef mlctl\n"
		    "# zsh completion for mlctl %s\n"
		    "# generated from the command table by "
		    "'mlctl __gen completion-zsh'; do not edit\n\n"
		    "_mlctl() {\n"
		    "\tlocal curcontext=$curcontext state line ret=1\n"
		    "\tlocal -a globals verbs\n"
		    "\tglobals=(\n",
		cli->version);
	for (i = 0; i < cli->nglobals; i++)
		zsh_option(fp, cli->globals[i].short_name,
			   cli->globals[i].name, cli->globals[i].arg,
			   cli->globals[i].help, "");
	fprintf(fp, "\t)\n\tverbs=(\n");
	for (i = 0; i < cli->ncmds; i++) {
		fprintf(fp, "\t\t'%s:", cli->cmds[i]->name);
		zsh_desc(fp, cli->cmds[i]->summary);
		fputs("'\n", fp);
	}
	fprintf(fp, "\t)\n"
		    "\t_arguments -C -s $globals '1: :->verb' "
		    "'*:: :->args' && ret=0\n"
		    "\tcase $state in\n"
		    "\tverb)\n"
		    "\t\t_describe -t commands 'mlctl command' verbs && "
		    "ret=0 ;;\n"
		    "\targs)\n"
		    "\t\tcase $words[1] in\n");
	for (i = 0; i < cli->ncmds; i++) {
		const struct ml_cmd *c = cli->cmds[i];

		fprintf(fp, "\t\t%s)\n\t\t\t_arguments -s $globals \\\n",
			c->name);
		for (o = c->options; o && *o; o++) {
			fputc('\t', fp);
			zsh_option(fp, (*o)->short_name, (*o)->name,
				   (*o)->arg, (*o)->help, " \\");
		}
		if (c->usage && strchr(c->usage, '|')) {
			fputs("\t\t\t\t'1:what:(", fp);
			usage_words(fp, c->usage);
			fputs(")' \\\n", fp);
		} else if (!strcmp(c->name, "explain")) {
			fputs("\t\t\t\t'1:key:(", fp);
			for (; keys && *keys; keys++)
				fprintf(fp, "%s ", *keys);
			fputs(")' \\\n", fp);
		}
		fprintf(fp, "\t\t\t\t&& ret=0 ;;\n");
	}
	fprintf(fp, "\t\tesac ;;\n\tesac\n\treturn ret\n}\n\n"
		    "_mlctl \"$@\"\n");
}

/* ---- man -------------------------------------------------------------- */

/* Text for roff: backslashes and dashes escaped, a leading '.' or '\''
 * made harmless. */
static void roff(FILE *fp, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", fp);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", fp);
		else if (*s == '-')
			fputs("\\-", fp);
		else if (*s == '\n')
			fputc(' ', fp);
		else
			fputc(*s, fp);
	}
}

static void man_option(FILE *fp, char short_name, const char *name,
		       const char *arg, const char *help)
{
	fputs(".TP\n", fp);
	if (short_name)
		fprintf(fp, "\\fB\\-%c\\fR, ", short_name);
	fputs("\\fB\\-\\-", fp);
	roff(fp, name);
	fputs("\\fR", fp);
	if (arg) {
		fputs(" \\fI", fp);
		roff(fp, arg);
		fputs("\\fR", fp);
	}
	fputc('\n', fp);
	roff(fp, help);
	fputc('\n', fp);
}

static const struct {
	int code;
	const char *meaning;
} exit_codes[] = {
	{ 0, "success" },
	{ 1, "internal or I/O error" },
	{ 2, "bad command line" },
	{ 3, "the playbook or inventory is invalid" },
	{ 4, "git repository, commit or file problem" },
	{ 5, "the ledger cannot be used (locked, read-only, newer schema)" },
	{ 6, "a host is unreachable or refused us" },
	{ 7, "a rollout failed (and was rolled back)" },
	{ 8, "the fleet lock is held by someone else" },
	{ 9, "interrupted; stopped at a safe point" },
	{ 10, "malformed or unexpected protocol message" },
	{ 11, "a named thing (revision, host, image) does not exist" },
	{ 12, "an input is larger than the limits allow" },
	{ 13, "a disk is full" },
	{ 14, "uncommitted changes would be ignored" },
};

static void gen_man(FILE *fp, const struct ml_cli *cli)
{
	const struct ml_option *const *o;
	size_t i;

	fprintf(fp, ".\\\" generated from the command table by "
		    "'mlctl __gen man'; do not edit\n"
		    ".TH MLCTL 1 \"\" \"mlctl %s\" \"User Commands\"\n"
		    /* a reference: no justification, no hyphens inserted
		     * into option names */
		    ".nh\n.ad l\n"
		    ".SH NAME\n"
		    "mlctl \\- deploy model APIs to a fleet of VMs from a git "
		    "commit\n"
		    ".SH SYNOPSIS\n"
		    ".B mlctl\n"
		    "[\\fIoptions\\fR] \\fIcommand\\fR [\\fIcommand "
		    "options\\fR] [\\fIarguments\\fR]\n"
		    ".SH DESCRIPTION\n"
		    "mlctl reads a playbook (\\fBmlctl.yaml\\fR) and an "
		    "inventory (\\fBinventory.yaml\\fR) from a git commit, "
		    "delivers the playbook's container image to every host "
		    "over SSH without a registry, runs it behind HAProxy with "
		    "health checks, and records every rollout in a SQLite "
		    "ledger so that any revision can be restored.\n"
		    ".PP\n"
		    "A unique prefix of a command is accepted, except for "
		    "commands that change the fleet, which must be typed in "
		    "full. \\fBmlctl explain\\fR \\fIKEY\\fR describes a "
		    "playbook or inventory key.\n"
		    ".SH COMMANDS\n",
		cli->version);
	for (i = 0; i < cli->ncmds; i++) {
		const struct ml_cmd *c = cli->cmds[i];

		fputs(".TP\n\\fBmlctl ", fp);
		roff(fp, c->name);
		fputs("\\fR", fp);
		if (c->usage && *c->usage) {
			fputc(' ', fp);
			roff(fp, c->usage);
		}
		fputc('\n', fp);
		roff(fp, c->summary);
		fputc('\n', fp);
		if (!c->options || !c->options[0])
			continue;
		fputs(".RS\n", fp);
		for (o = c->options; *o; o++)
			man_option(fp, (*o)->short_name, (*o)->name,
				   (*o)->arg, (*o)->help);
		fputs(".RE\n", fp);
	}
	fputs(".SH OPTIONS\n"
	      "These are accepted before or after any command.\n", fp);
	for (i = 0; i < cli->nglobals; i++)
		man_option(fp, cli->globals[i].short_name,
			   cli->globals[i].name, cli->globals[i].arg,
			   cli->globals[i].help);
	fputs(".SH EXIT STATUS\n"
	      "These never change meaning.\n", fp);
	for (i = 0; i < ML_ARRAY_SIZE(exit_codes); i++) {
		fprintf(fp, ".TP\n.B %d\n", exit_codes[i].code);
		roff(fp, exit_codes[i].meaning);
		fputc('\n', fp);
	}
	fputs(".SH ENVIRONMENT\n"
	      ".TP\n.B MLCTL_LEDGER\n"
	      "the ledger database, when \\fB\\-\\-ledger\\fR is not given\n"
	      ".SH FILES\n"
	      ".TP\n.I ~/.local/state/mlctl/ledger.db\n"
	      "the default ledger\n"
	      ".TP\n.I ~/.cache/mlctl\n"
	      "the content\\-addressed cache of image blobs\n"
	      ".TP\n.I ~/.ssh/known_hosts\n"
	      "host keys, checked on every connection\n"
	      ".SH SEE ALSO\n"
	      ".BR ssh (1),\n.BR haproxy (1),\n.BR docker (1)\n", fp);
}

int ml_cli_generate(FILE *fp, const struct ml_cli *cli, enum ml_cli_gen what,
		    const char *const *explain_keys)
{
	switch (what) {
	case ML_GEN_BASH:
		gen_bash(fp, cli, explain_keys);
		break;
	case ML_GEN_ZSH:
		gen_zsh(fp, cli, explain_keys);
		break;
	case ML_GEN_MAN:
		gen_man(fp, cli);
		break;
	default:
		BUG("generate %d", (int)what);
	}
	if (fflush(fp) != 0 || ferror(fp))
		return ml_err_errno(ML_EFAIL, errno, "cannot write the output");
	return 0;
}
