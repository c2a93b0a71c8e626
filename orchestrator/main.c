/*
 * mlctl: the controller. One table of commands (cmds[] below); each verb is
 * defined in cmd_<verb>.c. main() parses the global options and the verb's
 * own options from that table, does the set-up the verb's flags ask for
 * (desired state, ledger), runs it, and turns its result into an exit code
 * (the table is in common/ml.h and the README). Nothing else exits.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/secure.h"
#include "orchestrator/cli.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/load.h"
#include "orchestrator/options.h"
#include "orchestrator/view/explain.h"

#include <getopt.h>
#include <signal.h>
#include <unistd.h>

extern const struct ml_cmd ml_cmd_validate;
extern const struct ml_cmd ml_cmd_plan;
extern const struct ml_cmd ml_cmd_history;
extern const struct ml_cmd ml_cmd_show;
extern const struct ml_cmd ml_cmd_status;
extern const struct ml_cmd ml_cmd_bootstrap;
extern const struct ml_cmd ml_cmd_deliver;
extern const struct ml_cmd ml_cmd_deploy;
extern const struct ml_cmd ml_cmd_rollback;
extern const struct ml_cmd ml_cmd_recover;
extern const struct ml_cmd ml_cmd_lock;
extern const struct ml_cmd ml_cmd_remove;
extern const struct ml_cmd ml_cmd_render;
extern const struct ml_cmd ml_cmd_explain;
extern const struct ml_cmd ml_cmd_prune;
extern const struct ml_cmd ml_cmd_pin;
extern const struct ml_cmd ml_cmd_unpin;
extern const struct ml_cmd ml_cmd_logs;
extern const struct ml_cmd ml_cmd_metrics;
extern const struct ml_cmd ml_cmd_init;
extern const struct ml_cmd ml_cmd_image;
extern const struct ml_cmd ml_cmd_promote;
extern const struct ml_cmd ml_cmd_abort;

static const struct ml_cmd *const cmds[] = {
	&ml_cmd_validate,
	&ml_cmd_plan,
	&ml_cmd_history,
	&ml_cmd_show,
	&ml_cmd_status,
	&ml_cmd_bootstrap,
	&ml_cmd_deliver,
	&ml_cmd_deploy,
	&ml_cmd_rollback,
	&ml_cmd_recover,
	&ml_cmd_lock,
	&ml_cmd_remove,
	&ml_cmd_render,
	&ml_cmd_explain,
	&ml_cmd_prune,
	&ml_cmd_pin,
	&ml_cmd_unpin,
	&ml_cmd_logs,
	&ml_cmd_metrics,
	&ml_cmd_init,
	&ml_cmd_image,
	&ml_cmd_promote,
	&ml_cmd_abort,
};

const struct ml_option ml_opt_commit = {
	OPT_COMMIT, "commit", 'c', "REV",
	"read the desired state at this commit, tag or branch (default HEAD)"
};
const struct ml_option ml_opt_json = {
	OPT_JSON, "json", 0, NULL, "print JSON instead of a table"
};
const struct ml_option ml_opt_allow_dirty = {
	OPT_ALLOW_DIRTY, "allow-dirty", 0, NULL,
	"go on although the playbook or inventory has uncommitted changes "
	"(the committed version is used)"
};

const struct ml_option ml_opt_tofu = {
	OPT_TOFU, "trust-new-hosts", 0, NULL,
	"add the keys of hosts not yet in known_hosts (never a changed key)"
};
const struct ml_option ml_opt_timeout = {
	OPT_TIMEOUT, "timeout", 't', "DURATION",
	"give up on a host that has not answered within DURATION (default 10s)"
};
const struct ml_option ml_opt_parallel = {
	OPT_PARALLEL, "parallel", 'p', "N",
	"work on at most N hosts at once (default 16)"
};

const struct ml_option ml_opt_local_docker = {
	OPT_LOCAL_DOCKER, "docker-socket", 0, "PATH",
	"the local Docker Engine that builds and holds images (default "
	"/run/docker.sock)"
};

/* getopt values: per-verb options are VERB_OPT_BASE + enum ml_opt_id, global
 * options have their own range; both stay clear of single characters. */
#define VERB_OPT_BASE 2000

enum {
	G_DIR = 1000,
	G_FILE,
	G_INVENTORY,
	G_LEDGER,
	G_KNOWN_HOSTS,
	G_IDENTITY,
	G_SSH_CONFIG,
	G_VERBOSE,
	G_QUIET,
	G_HELP,
	G_VERSION,
};

static const struct ml_global_opt globals[] = {
	{ "dir", G_DIR, 'C', "DIR",
	  "the git repository holding the desired state (default .)" },
	{ "file", G_FILE, 'f', "FILE", "the playbook (default mlctl.yaml)" },
	{ "inventory", G_INVENTORY, 'i', "FILE",
	  "the inventory (default inventory.yaml)" },
	{ "ledger", G_LEDGER, 0, "PATH",
	  "the ledger database (default $MLCTL_LEDGER, else "
	  "~/.local/state/mlctl/ledger.db)" },
	{ "known-hosts", G_KNOWN_HOSTS, 0, "FILE",
	  "known_hosts file (default ~/.ssh/known_hosts)" },
	{ "identity", G_IDENTITY, 0, "FILE", "SSH private key to offer" },
	{ "ssh-config", G_SSH_CONFIG, 0, "FILE",
	  "SSH client config (default ~/.ssh/config)" },
	{ "verbose", G_VERBOSE, 'v', NULL, "more diagnostics (repeat for more)" },
	{ "quiet", G_QUIET, 'q', NULL, "errors only" },
	{ "help", G_HELP, 'h', NULL, "show help" },
	{ "version", G_VERSION, 0, NULL, "show the version" },
};

#ifndef ML_VERSION
#define ML_VERSION "0.1.0"
#endif

/* The table as suggestions and the generators see it. */
static const struct ml_cli cli = {
	cmds, ML_ARRAY_SIZE(cmds), globals, ML_ARRAY_SIZE(globals), ML_VERSION,
};

static void print_option(FILE *fp, char short_name, const char *name,
			 const char *arg, const char *help)
{
	char left[64];

	if (short_name)
		snprintf(left, sizeof(left), "-%c, --%s%s%s", short_name, name,
			 arg ? " " : "", arg ? arg : "");
	else
		snprintf(left, sizeof(left), "    --%s%s%s", name,
			 arg ? " " : "", arg ? arg : "");
	fprintf(fp, "  %-26s %s\n", left, help);
}

static void usage_main(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: mlctl [options] <command> [command options]\n\n"
		    "Deploy model APIs to a fleet of VMs from a git commit.\n\n"
		    "commands:\n");
	for (i = 0; i < ML_ARRAY_SIZE(cmds); i++)
		fprintf(fp, "  %-12s %s\n", cmds[i]->name, cmds[i]->summary);
	fprintf(fp, "\noptions (before or after the command):\n");
	for (i = 0; i < ML_ARRAY_SIZE(globals); i++)
		print_option(fp, globals[i].short_name, globals[i].name,
			     globals[i].arg, globals[i].help);
	fprintf(fp, "\n'mlctl <command> --help' shows a command's options.\n");
}

static void usage_cmd(FILE *fp, const struct ml_cmd *cmd)
{
	const struct ml_option *const *o;

	fprintf(fp, "usage: mlctl %s %s\n\n%s\n", cmd->name,
		cmd->usage ? cmd->usage : "", cmd->summary);
	if (cmd->options && cmd->options[0]) {
		fprintf(fp, "\noptions:\n");
		for (o = cmd->options; *o; o++)
			print_option(fp, (*o)->short_name, (*o)->name,
				     (*o)->arg, (*o)->help);
	}
	fprintf(fp, "\nglobal options: see 'mlctl --help'\n");
}

/* Whether cmd has an option of that short name: after the verb, the verb's
 * own letter wins over a global one (`logs -f` follows; `-f FILE` before
 * the verb still names the playbook). */
static bool verb_short(const struct ml_cmd *cmd, char c)
{
	const struct ml_option *const *o;

	for (o = cmd && cmd->options ? cmd->options : NULL; o && *o; o++)
		if ((*o)->short_name == c)
			return true;
	return false;
}

/* Build the getopt tables for the globals plus cmd's options (cmd may be
 * NULL: globals only). */
static void build_opts(const struct ml_cmd *cmd, struct option *lo,
		       size_t lo_cap, char *so, size_t so_cap)
{
	const struct ml_option *const *o;
	size_t nl = 0, ns = 0, i;

	/* globals stop at the first non-option, the verb; after it, options
	 * and arguments mix (mlctl render k8s --commit X) */
	if (!cmd)
		so[ns++] = '+';
	for (i = 0; i < ML_ARRAY_SIZE(globals); i++) {
		lo[nl++] = (struct option){ globals[i].name,
					    globals[i].arg ? required_argument
							   : no_argument,
					    NULL, globals[i].id };
		if (globals[i].short_name &&
		    !verb_short(cmd, globals[i].short_name)) {
			so[ns++] = globals[i].short_name;
			if (globals[i].arg)
				so[ns++] = ':';
		}
	}
	for (o = cmd && cmd->options ? cmd->options : NULL; o && *o; o++) {
		if (nl + 2 > lo_cap || ns + 3 > so_cap)
			BUG("too many options for '%s'", cmd->name);
		lo[nl++] = (struct option){ (*o)->name,
					    (*o)->arg ? required_argument
						      : no_argument,
					    NULL, VERB_OPT_BASE + (int)(*o)->id };
		if ((*o)->short_name) {
			so[ns++] = (*o)->short_name;
			if ((*o)->arg)
				so[ns++] = ':';
		}
	}
	lo[nl] = (struct option){ 0 };
	so[ns] = '\0';
}

static int short_to_id(const struct ml_cmd *cmd, int c)
{
	const struct ml_option *const *o;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(globals); i++)
		if (globals[i].short_name == c && !verb_short(cmd, (char)c))
			return globals[i].id;
	for (o = cmd && cmd->options ? cmd->options : NULL; o && *o; o++)
		if ((*o)->short_name == c)
			return (int)(*o)->id;
	return -1;
}

/*
 * `mlctl __gen completion-bash|completion-zsh|man`: what the build
 * installs, written from the table above (orchestrator/cli_gen.c). Hidden:
 * a build step, not a verb, so not in the table, --help or completion.
 */
static int gen_run(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum ml_cli_gen what;
	} kinds[] = {
		{ "completion-bash", ML_GEN_BASH },
		{ "completion-zsh", ML_GEN_ZSH },
		{ "man", ML_GEN_MAN },
	};
	const char *const *keys = NULL;
	size_t i;
	int rc;

	for (i = 0; argc == 2 && i < ML_ARRAY_SIZE(kinds); i++)
		if (!strcmp(argv[1], kinds[i].name))
			break;
	if (argc != 2 || i == ML_ARRAY_SIZE(kinds))
		return ml_err_set(ML_EUSAGE, "usage: mlctl __gen "
			       "completion-bash|completion-zsh|man");
	rc = ml_explain_keys(&keys);
	if (rc < 0)
		return rc;
	rc = ml_cli_generate(stdout, &cli, kinds[i].what, keys);
	free((void *)keys);
	return rc;
}

/*
 * Parse options until the first non-option. Returns 0, or 1 when help or
 * version was printed, or ML_EUSAGE.
 */
static int parse_opts(struct ml_ctx *ctx, const struct ml_cmd *cmd, int argc,
		      char **argv, bool *want_help)
{
	struct option lo[64];
	char so[128];
	int c, id;

	build_opts(cmd, lo, ML_ARRAY_SIZE(lo), so, sizeof(so));
	opterr = 0;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		if (c == '?' || c == ':') {
			char shortopt[3] = { '-', (char)optopt, '\0' };

			return ml_cli_unknown_option(&cli, cmd,
						     optopt > 0 && optopt < 256
							     ? shortopt
							    : argv[optind - 1]);
		}
		id = c < 256		 ? short_to_id(cmd, c)
		     : c >= VERB_OPT_BASE ? c - VERB_OPT_BASE
					  : c;
		switch (id) {
		case G_DIR:
			ctx->repo_dir = optarg;
			break;
		case G_FILE:
			ctx->playbook_path = optarg;
			break;
		case G_INVENTORY:
			ctx->inventory_path = optarg;
			break;
		case G_LEDGER:
			ctx->ledger_path = optarg;
			break;
		case G_KNOWN_HOSTS:
			ctx->known_hosts = optarg;
			break;
		case G_IDENTITY:
			ctx->identity = optarg;
			break;
		case G_SSH_CONFIG:
			ctx->ssh_config = optarg;
			break;
		case G_VERBOSE:
			ctx->verbose++;
			break;
		case G_QUIET:
			ctx->verbose = -1;
			break;
		case G_HELP:
			*want_help = true;
			break;
		case G_VERSION:
			printf("mlctl %s\n", ML_VERSION);
			return 1;
		default:
			if (id < 0 || id >= OPT__COUNT)
				BUG("option id %d", id);
			ctx->opt[id] = optarg ? optarg : "1";
			break;
		}
	}
	return 0;
}

static int run(int argc, char **argv)
{
	struct ml_ctx ctx = { 0 };
	const struct ml_cmd *cmd;
	bool help = false;
	char *ledger_default = NULL;
	int rc;

	ctx.repo_dir = ".";
	ctx.playbook_path = "mlctl.yaml";
	ctx.inventory_path = "inventory.yaml";

	optind = 1;
	rc = parse_opts(&ctx, NULL, argc, argv, &help);
	if (rc)
		return rc > 0 ? 0 : rc;
	if (optind >= argc) {
		usage_main(help ? stdout : stderr);
		return help ? 0 : ml_err_set(ML_EUSAGE, "no command given");
	}
	if (!strcmp(argv[optind], "__gen"))
		return gen_run(argc - optind, argv + optind);
	cmd = ml_cli_find(&cli, argv[optind]);
	if (!cmd)
		return ml_cli_unknown_verb(&cli, argv[optind]);

	/* the verb's own options, and globals again, after the verb */
	argc -= optind;
	argv += optind;
	optind = 0; /* 0: glibc reads the new option string afresh */
	rc = parse_opts(&ctx, cmd, argc, argv, &help);
	if (rc)
		return rc > 0 ? 0 : rc;
	if (help) {
		usage_cmd(stdout, cmd);
		return 0;
	}
	ctx.argc = argc - optind;
	ctx.argv = argv + optind;
	/* every option's value, before any work */
	rc = ml_options_check(&ctx);
	if (rc < 0)
		return rc;
	ml_log_init("mlctl", ctx.verbose < 0 ? ML_LOG_QUIET
			     : ctx.verbose == 0 ? ML_LOG_INFO
			     : ctx.verbose == 1 ? ML_LOG_DEBUG
						: ML_LOG_TRACE);

	if (strcmp(ctx.repo_dir, ".") && chdir(ctx.repo_dir) < 0)
		return ml_err_errno(ML_ESOURCE, errno, "cannot enter '%s'",
				    ctx.repo_dir);

	if (cmd->flags & ML_CMD_NEEDS_CONFIG) {
		rc = ml_load_config(&ctx.config, &ctx,
				    cmd->flags & ML_CMD_REFUSE_DIRTY);
		if (rc < 0)
			goto out;
	}
	if (cmd->flags & ML_CMD_NEEDS_LEDGER) {
		if (!ctx.ledger_path) {
			const char *env = getenv("MLCTL_LEDGER");

			if (env && *env)
				ctx.ledger_path = env;
			else
				ctx.ledger_path = ledger_default =
					ml_ledger_default_path();
		}
		rc = ml_ledger_open(&ctx.ledger, ctx.ledger_path);
		if (rc < 0)
			goto out;
	}
	rc = cmd->run(&ctx);
out:
	ml_config_free(ctx.config);
	ml_ledger_free(ctx.ledger);
	free(ledger_default);
	return rc;
}

int main(int argc, char **argv)
{
	int rc;

	/* a host that hangs up must give an error, not kill us */
	signal(SIGPIPE, SIG_IGN);
	ml_log_init("mlctl", ML_LOG_INFO);
	ml_secure_process(); /* before any secret is read */
	rc = run(argc, argv);
	if (rc < 0 && ml_err_msg()[0])
		ml_error("%s", ml_err_msg());
	fflush(stdout);
	if (rc == ML_CMD_CHANGES)
		return 2;
	return ml_exit_code(rc);
}
