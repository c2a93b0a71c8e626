#ifndef ML_CMD_H
#define ML_CMD_H

/*
 * The command table. orchestrator/main.c holds one table of struct ml_cmd;
 * each verb lives in orchestrator/cmd/<verb>.c and exports only its entry
 * (`const struct ml_cmd ml_cmd_<verb>`). Work shared by several verbs
 * (loading the desired state, opening the ledger) is asked for with flags
 * and done once in main.c before run() is called. --help is generated from
 * the same table.
 */

/* Every option any verb takes; a verb lists the ones it accepts. */
enum ml_opt_id {
	OPT_COMMIT,
	OPT_JSON,
	OPT_WAIT,
	OPT_REASON,
	OPT_TOFU,
	OPT_TIMEOUT,
	OPT_PARALLEL,
	OPT_HOSTS,
	OPT_AGENT_BINARY,
	OPT_ALLOW_DIRTY,
	OPT_LIMIT,
	OPT_WORKTREE,
	OPT_LOCAL_DOCKER,
	OPT_SECRETS,
	OPT_FORCE,
	/* render k8s */
	OPT_NAMESPACE,
	OPT_IMAGE_REGISTRY,
	OPT_IMAGE_DIGEST,
	OPT_OUTPUT,
	OPT_SECRETS_FILE,
	OPT_ROLLOUTS,
	OPT_READ_ONLY_ROOT,
	OPT_DRY_RUN,
	/* plan, rollback --plan */
	OPT_OFFLINE,
	OPT_DETAILED_EXITCODE,
	OPT_PLAN,
	/* logs, status, metrics */
	OPT_FOLLOW,
	OPT_SINCE,
	OPT_TAIL,
	OPT_TIMESTAMPS,
	OPT_REVISION,
	OPT_WATCH,
	OPT_WINDOW,
	/* mlctl init */
	OPT_NAME,
	OPT_PORT,
	OPT_PYTHON,
	OPT_REQUIREMENTS,
	OPT_WHEELHOUSE,
	OPT_MODEL_DIR,
	OPT_GPU,
	OPT_BASE,
	OPT_APP_MODULE,
	OPT_PACKAGES,
	OPT__COUNT
};

struct ml_option {
	enum ml_opt_id id;
	const char *name;    /* long name without dashes */
	char short_name;     /* 0 if none */
	const char *arg;     /* argument placeholder, NULL for a flag */
	const char *help;
};

/* Flags for struct ml_cmd.flags. */
enum {
	ML_CMD_NEEDS_CONFIG = 1 << 0, /* read + validate playbook/inventory */
	ML_CMD_NEEDS_LEDGER = 1 << 1, /* open (and migrate) the ledger */
	ML_CMD_DESTRUCTIVE = 1 << 2,  /* never matched by abbreviation */
	ML_CMD_REFUSE_DIRTY = 1 << 3, /* uncommitted changes are an error */
};

struct ml_config;
struct ml_ledger;

struct ml_ctx {
	/* global options */
	const char *repo_dir;       /* -C, default "." */
	const char *playbook_path;  /* -f, default "mlctl.yaml" */
	const char *inventory_path; /* -i, default "inventory.yaml" */
	const char *ledger_path;    /* --ledger or MLCTL_LEDGER or default */
	const char *known_hosts;    /* --known-hosts, NULL: ~/.ssh/known_hosts */
	const char *identity;       /* --identity, extra private key */
	const char *ssh_config;     /* --ssh-config, NULL: ~/.ssh/config */
	int verbose;

	/* per-verb options, by id: the argument, or "1" for a flag; NULL
	 * when not given */
	const char *opt[OPT__COUNT];

	/* positional arguments after the verb and its options */
	int argc;
	char **argv;

	/* filled by main.c when the verb's flags ask for them */
	struct ml_config *config;
	struct ml_ledger *ledger;
};

/*
 * What run() returns, beside 0 and the ML_E* codes, for "done, and there
 * are changes to make": `mlctl plan --detailed-exitcode` exits 2 then, as
 * Terraform's plan does. main() alone turns it into the exit status.
 */
#define ML_CMD_CHANGES 1000

struct ml_cmd {
	const char *name;
	const char *summary; /* one line, lowercase, no period */
	const char *usage;   /* after "mlctl <name> " */
	const struct ml_option *const *options; /* NULL-terminated */
	unsigned flags;
	int (*run)(struct ml_ctx *ctx);
};

/* The options verbs share; use these in option lists. */
extern const struct ml_option ml_opt_commit;
extern const struct ml_option ml_opt_json;
extern const struct ml_option ml_opt_allow_dirty;
extern const struct ml_option ml_opt_tofu;
extern const struct ml_option ml_opt_timeout;
extern const struct ml_option ml_opt_parallel;
extern const struct ml_option ml_opt_local_docker;

/* True when the flag option id was given. */
static inline bool ml_ctx_flag(const struct ml_ctx *ctx, enum ml_opt_id id)
{
	return ctx->opt[id] != NULL;
}

#endif
