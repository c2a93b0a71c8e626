#ifndef ML_CONFIG_H
#define ML_CONFIG_H

/*
 * The two input files as plain structs, and the desired state resolved from
 * them. Parsing goes through our libyaml wrapper (config/yaml.h), which
 * enforces our limits; validation reports every problem it finds, each with
 * file:line:column, into a struct ml_diags, and only then fails.
 *
 * Ownership: every struct here owns its strings and arrays; free a whole
 * tree with the matching _free(). Strings are NUL-terminated UTF-8.
 */

#include <jansson.h>

/* ---- diagnostics ------------------------------------------------------- */

struct ml_diag {
	char *file; /* as given to the parser, e.g. "mlctl.yaml" */
	int line;   /* 1-based; 0 when the problem has no place */
	int col;    /* 1-based */
	char *msg;  /* lowercase, no period; may end with "(did you mean 'x'?)" */
};

struct ml_diags {
	struct ml_diag *v;
	size_t n, cap;
};

void ml_diags_add(struct ml_diags *d, const char *file, int line, int col,
		  const char *fmt, ...) ML_PRINTF(5, 6);
void ml_diags_release(struct ml_diags *d);
/* Print each as "file:line:col: error: msg" on stream, in order of place. */
void ml_diags_print(const struct ml_diags *d, FILE *stream);

/* ---- strict unit parsers (common to both files) ------------------------ */

/* "30s", "2m", "1h30m", "500ms" -> milliseconds. No bare numbers, no
 * negatives, no overflow; ML_EINVALID with a message otherwise. */
int ml_parse_duration(int64_t *out_ms, const char *s);
/* "512m", "2g", "100k", "1024" (bytes), "1.5g" -> bytes. Suffixes k, m, g,
 * t (powers of 1024), case-insensitive, optional trailing "b"/"i". */
int ml_parse_size(int64_t *out_bytes, const char *s);

/* ---- the playbook: mlctl.yaml ------------------------------------------ */

struct ml_kv {
	char *key;
	char *value;
};

struct ml_kvlist {
	struct ml_kv *v;
	size_t n;
};

/* A place in an input file, 1-based; {0, 0} when unknown. */
struct ml_pos {
	int line, col;
};

struct ml_strlist {
	char **v;
	size_t n;
	struct ml_pos *pos; /* where each v[i] was written, or NULL */
};

enum ml_image_kind {
	ML_IMAGE_REF = 1, /* a local image, resolved through Docker */
	ML_IMAGE_BUILD,   /* built from the deployed commit's tree */
};

struct ml_image_spec {
	enum ml_image_kind kind;
	char *ref;        /* ML_IMAGE_REF: "name:tag" or "sha256:..." */
	char *context;    /* ML_IMAGE_BUILD: dir in the repo, default "." */
	char *dockerfile; /* ML_IMAGE_BUILD: path in context, "Dockerfile" */
	struct ml_kvlist build_args;
};

#define ML_HEALTH_MAX_STATUS 16
#define ML_HEALTH_TEXT_MAX 256

struct ml_health_spec {
	char *path;            /* HTTP path, default "/healthz" */
	int64_t interval_ms;   /* default 2s */
	int64_t timeout_ms;    /* default 1s */
	int64_t start_period_ms; /* default 60s: model loading time */
	int healthy_threshold;   /* default 1 */
	int unhealthy_threshold; /* default 3 */
	/* what "ready" means beyond answering: expected statuses (none
	 * given: 200-399), a body substring, a JSON field's value; strings
	 * are printable ASCII, at most ML_HEALTH_TEXT_MAX bytes */
	int expect_status[ML_HEALTH_MAX_STATUS];
	size_t nexpect_status;
	char *expect_body;	 /* NULL: none */
	char *expect_json_field; /* "status" or "model.state"; NULL: none */
	char *expect_json_value; /* the value as text: "ready", "true", "3" */
};

struct ml_resources_spec {
	double cpus;          /* 0: no limit */
	int64_t memory_bytes; /* 0: no limit */
	int gpus;             /* 0: none; -1: all */
};

/* One weighted canary step: the new revision gets weight_pct of the
 * requests for for_ms, or until `mlctl promote` / `mlctl abort` when
 * manual (then timeout_ms, default 1h, aborts it). */
struct ml_canary_step {
	int weight_pct;     /* 1..99 */
	int64_t for_ms;     /* 0 when manual */
	bool manual;
	int64_t timeout_ms; /* manual only */
};

/* rollout.analysis: what a weighted step must show to pass. */
struct ml_analysis_spec {
	double max_error_rate;  /* share of 5xx/no answer, default 0.01 */
	double max_error_ratio; /* to the old revision's rate; 0: unset */
	int64_t max_p99_ms;     /* absolute; 0: unset */
	double max_p99_ratio;   /* to the old revision's p99, default 2 */
	int64_t p99_margin_ms;  /* the ratio counts only past old + this,
				 * default 50ms (timer noise) */
	int min_requests;       /* to judge at all, default 50 */
	bool pass_on_too_few;   /* default false: too few fails closed */
	int64_t interval_ms;    /* between checks, default 5s, <= 10s */
};

/* One golden request of rollout.verify and what its answer must be. */
#define ML_VERIFY_MAX 32
#define ML_VERIFY_BODY_MAX 4096
struct ml_verify_req {
	char *method;		 /* GET (default), POST, PUT, ... */
	char *path;		 /* starts with '/' */
	char *body;		 /* NULL: none; sent as application/json */
	int expect_status;	 /* 0: any 2xx */
	char *expect_body;	 /* substring, or NULL */
	char *expect_json_field; /* dotted path, or NULL */
	char *expect_json_value;
};

struct ml_verify_spec {
	struct ml_verify_req *v;
	size_t n;
	bool compare;	    /* send them to the old revision too */
	int64_t timeout_ms; /* per request, default 5s */
};

struct ml_rollout_spec {
	int batch_count;      /* hosts per batch, when batch_percent == 0 */
	int batch_percent;    /* 1..100, or 0 */
	int failure_budget;   /* failed hosts tolerated, default 0 */
	bool auto_rollback;   /* default true */
	int64_t drain_timeout_ms; /* default 30s */
	bool standby;         /* the previous revision stays, paused, beside
			       * the one serving: default false */
	int *canary_percent;  /* canary steps, e.g. {10, 50}; may be empty */
	size_t canary_n;
	/* weighted canary steps, analysis and golden requests
	 * (orchestrator/config/canary.c); canary_n and nsteps are never both
	 * nonzero */
	struct ml_canary_step *steps;
	size_t nsteps;
	struct ml_analysis_spec analysis;
	struct ml_verify_spec verify;
};

enum ml_balance {
	ML_BALANCE_ROUNDROBIN = 1, /* default */
	ML_BALANCE_LEASTCONN,
	ML_BALANCE_RANDOM,
};

/* The name of b, one of common/balance.h's ml_balance_words (the enum is
 * in their order, from ML_BALANCE_ROUNDROBIN); "roundrobin" for 0 (unset)
 * or a value out of range. */
const char *ml_balance_name(enum ml_balance b);

struct ml_lb_spec {
	struct ml_strlist hosts; /* host or group names; empty: no LB */
	int listen_port;         /* default 80 */
	enum ml_balance balance;
	char *tls_cert;          /* secret holding the PEM certificate (and
				  * chain), NULL: plain HTTP */
	char *tls_key;           /* secret holding its PEM private key */
	int tls_redirect_port;   /* plain HTTP here answers 301 to https,
				  * 0: none */
};

/* security: the container's hardening, each default relaxable by name */
struct ml_security_spec {
	bool secrets_env;	  /* secrets_as: env (default files) */
	bool no_new_privileges;	  /* default true */
	struct ml_strlist cap_add; /* capabilities kept; default none */
	int pids_limit;		  /* default 4096; 0: no limit */
	bool read_only_root;	  /* default false; true adds a tmpfs /tmp */
	int init;		  /* -1 auto (default), 0 no, 1 yes */
	char *restart;		  /* default "unless-stopped" */
	bool open_slots;	  /* slots reachable from anywhere, not only
				   * from the balancer (default false) */
};

/* prune: what old revisions each host keeps (see orchestrator/prune). */
struct ml_prune_spec {
	int retain;          /* newest good revisions kept, default 3 */
	bool after_deploy;   /* prune after each successful deploy (true) */
	int64_t disk_budget; /* bytes of kept images per host, 0: none */
};

/* Rotation of each container's json-file log (Docker's max-size and
 * max-file): the most a container's logs take on a VM is their product. */
struct ml_logs_spec {
	int64_t max_size_bytes; /* default 10m, at least 64k */
	int max_files;          /* default 3, 1..100 */
};

/* What a monitoring system scrapes. */
struct ml_metrics_spec {
	char *path;  /* the app's own Prometheus endpoint, NULL: none */
	int port;    /* HAProxy's exporter on every LB host, default 8404 */
	char *bind;  /* its address, NULL: each LB host's own address */
	struct ml_strlist scrape_from; /* addresses let through to the app's
					* slots besides the LBs (Prometheus) */
	char *user;     /* basic auth on the exporter, NULL: none */
	char *password; /* the secret holding user's password */
};

struct ml_playbook {
	char *file;     /* name used in diagnostics */
	char *app;      /* [a-z0-9][a-z0-9-]{0,62} */
	struct ml_image_spec image;
	int port;       /* container port, 1..65535 */
	struct ml_health_spec health;
	int replicas;   /* per host, default 1 */
	struct ml_kvlist env;
	struct ml_strlist secrets; /* names only; values never in git */
	struct ml_resources_spec resources;
	struct ml_strlist targets; /* host or group names */
	struct ml_rollout_spec rollout;
	struct ml_lb_spec lb;
	struct ml_security_spec security;
	struct ml_prune_spec prune;
	struct ml_logs_spec logs;
	struct ml_metrics_spec metrics;
};

/* ---- the inventory: inventory.yaml ------------------------------------- */

struct ml_ssh_spec {
	char *user;          /* NULL: inherit */
	int port;            /* 0: inherit */
	char *identity_file; /* NULL: inherit */
	char *jump;          /* host name of a bastion, NULL: none */
	struct ml_pos jump_pos; /* where jump was written */
};

struct ml_host {
	char *name;
	char *address; /* default: name */
	struct ml_ssh_spec ssh;
	struct ml_kvlist labels;
	struct ml_kvlist vars;
	int line, col; /* where the host is defined */
};

struct ml_group {
	char *name;
	struct ml_strlist hosts;
	struct ml_strlist children;
	struct ml_ssh_spec ssh; /* applies to every host of the group */
	struct ml_kvlist vars;
	int line, col;
};

struct ml_inventory {
	char *file;
	struct ml_ssh_spec ssh; /* fleet-wide defaults */
	struct ml_kvlist vars;  /* fleet-wide vars */
	struct ml_host *hosts;
	size_t nhosts;
	struct ml_group *groups;
	size_t ngroups;
};

/* ---- the resolved desired state ---------------------------------------- */

/* One target host with every setting merged: inventory defaults < group
 * (parents before children, in file order) < host. */
struct ml_target {
	char *name;
	char *address;
	char *user;          /* default "root" */
	int port;            /* default 22 */
	char *identity_file; /* NULL: agent and default keys */
	char *jump;          /* NULL: direct */
	struct ml_strlist groups; /* every group the host belongs to */
	struct ml_kvlist labels;
	struct ml_kvlist vars;
	bool is_lb;          /* listed by load_balancer.hosts */
	bool is_app;         /* listed by targets */
};

struct ml_config {
	struct ml_playbook *playbook;
	struct ml_inventory *inventory;
	char *commit;        /* full sha the files were read at, or NULL */
	char *playbook_text; /* the playbook bytes as read */
	size_t playbook_len;
	struct ml_target *targets; /* app hosts first, then LB-only hosts */
	size_t ntargets;
	/* Every host some target reaches through ssh.jump (transitively),
	 * with its settings merged like a target's; roles both false. */
	struct ml_target *jumps;
	size_t njumps;
};

/*
 * Parse one file's bytes. name is used in diagnostics. On any problem the
 * diagnostics are added to diags and ML_EINVALID is returned (with *out
 * NULL); problems of the YAML itself (syntax, limits, duplicate keys) are
 * diagnostics too.
 */
int ml_playbook_parse(struct ml_playbook **out, const char *name,
		      const char *data, size_t len, struct ml_diags *diags);
void ml_playbook_free(struct ml_playbook *pb);

int ml_inventory_parse(struct ml_inventory **out, const char *name,
		       const char *data, size_t len, struct ml_diags *diags);
void ml_inventory_free(struct ml_inventory *inv);

/*
 * Check the two together (targets and LB hosts name existing hosts or
 * groups; groups are acyclic) and resolve the target list. Takes ownership
 * of pb and inv (freed on failure too). ML_EINVALID with diags on failure.
 */
int ml_config_resolve(struct ml_config **out, struct ml_playbook *pb,
		      struct ml_inventory *inv, struct ml_diags *diags);
void ml_config_free(struct ml_config *cfg);

/* The desired state as JSON, for `plan --json` and the ledger. Stable key
 * order. New reference. */
json_t *ml_config_to_json(const struct ml_config *cfg);

/*
 * The candidate closest to word (optimal string alignment distance) when
 * close enough to suggest, else NULL; borrowed from cands. Public: the
 * command line suggests verbs, options and `explain` keys with it, so a
 * typo is judged the same way everywhere.
 */
const char *ml_cfg_suggest(const char *word, const char *const *cands,
			   size_t n);

/*
 * What the health check expects, as the agent's container_wait and
 * lb_apply take it: {"status": [200], "body": "...", "json": {"field",
 * "value"}}, each member only when set; NULL when nothing is expected
 * beyond a 2xx or 3xx answer. The caller owns the reference.
 */
json_t *ml_health_expect_json(const struct ml_health_spec *h);

/* ---- shared by the parsers in orchestrator/config/ only ---------------- */

/*
 * Helpers the playbook and inventory parsers share (implemented in
 * units.c). Code outside orchestrator/config/ must not call them; they work
 * on the node tree of config/yaml.h. Every check that fails adds one
 * diagnostic at the node and returns ML_EINVALID; "path" is the dotted name
 * of the value in messages ("health.interval", "hosts.web1.ssh.port").
 */
struct ml_ynode;

struct ml_cfgctx {
	const char *file;
	struct ml_diags *diags;
	char qbuf[4][128]; /* ring of buffers for ml_cfg_q() */
	unsigned qi;
};

void ml_cfg_err(struct ml_cfgctx *c, const struct ml_ynode *at,
		const char *fmt, ...) ML_PRINTF(3, 4);
void ml_cfg_err_pos(struct ml_cfgctx *c, struct ml_pos at, const char *fmt,
		    ...) ML_PRINTF(3, 4);
/* s made safe to quote in a message: control bytes escaped, long text cut.
 * Valid until four more calls on the same context. */
const char *ml_cfg_q(struct ml_cfgctx *c, const char *s);
/* "a string", "an integer", "a number", "a boolean", "null", "a mapping",
 * "a sequence": how YAML 1.2's core schema reads the node. */
const char *ml_cfg_kind(const struct ml_ynode *n);
/* Report every key of map not in keys (NULL-terminated), with a "did you
 * mean". Returns the number of unknown keys. */
int ml_cfg_check_keys(struct ml_cfgctx *c, const struct ml_ynode *map,
		      const char *const *keys);
int ml_cfg_want_map(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path);
int ml_cfg_want_seq(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path);
int ml_cfg_int(struct ml_cfgctx *c, const struct ml_ynode *n,
	       const char *path, int64_t min, int64_t max, int64_t *out);
int ml_cfg_bool(struct ml_cfgctx *c, const struct ml_ynode *n,
		const char *path, bool *out);
/* Any scalar but null and booleans (numbers are kept as written); no NUL
 * bytes. *out is a new string. */
int ml_cfg_str(struct ml_cfgctx *c, const struct ml_ynode *n,
	       const char *path, char **out);
int ml_cfg_duration(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path, int64_t *out_ms);
int ml_cfg_size(struct ml_cfgctx *c, const struct ml_ynode *n,
		const char *path, int64_t *out_bytes);
/* A sequence of strings, or (when one_ok) a single string as a one-element
 * list; positions are recorded. Items failing ml_cfg_str are skipped. */
int ml_cfg_strlist(struct ml_cfgctx *c, const struct ml_ynode *n,
		   const char *path, bool one_ok, struct ml_strlist *out);
/* A mapping of names to scalars (text kept as written). Keys must pass
 * is_key; values must be a single line. */
int ml_cfg_kvmap(struct ml_cfgctx *c, const struct ml_ynode *n,
		 const char *path, bool (*is_key)(const char *),
		 const char *key_rule, struct ml_kvlist *out);
/* [A-Za-z_][A-Za-z0-9_]*: env, secret, build-arg and var names. */
bool ml_cfg_is_ident(const char *s);
/* [A-Za-z0-9][A-Za-z0-9._-]{0,62}: host and group names. */
bool ml_cfg_is_name(const char *s);
/* The playbook's "security" mapping (orchestrator/config/security.c):
 * defaults, parsing with located errors, release, and the agent's form. */
/* rollout.canary, rollout.analysis, rollout.verify
 * (orchestrator/config/canary.c). */
void ml_canary_defaults(struct ml_rollout_spec *r);
void ml_canary_parse_steps(struct ml_cfgctx *c, struct ml_rollout_spec *r,
			   const struct ml_ynode *n);
void ml_analysis_parse(struct ml_cfgctx *c, struct ml_analysis_spec *a,
		       const struct ml_ynode *n);
void ml_verify_parse(struct ml_cfgctx *c, struct ml_verify_spec *v,
		     const struct ml_ynode *n);
void ml_canary_release(struct ml_rollout_spec *r);
/* The weighted steps, analysis and verify of r in the resolved state's
 * form, added to o (the "rollout" object). */
void ml_canary_to_json(json_t *o, const struct ml_rollout_spec *r);
void ml_security_defaults(struct ml_security_spec *s);
void ml_security_parse(struct ml_cfgctx *c, struct ml_security_spec *s,
		       const struct ml_ynode *n);
void ml_security_release(struct ml_security_spec *s);
/* The agent's "security" argument; with cfg (may be NULL), allow_from
 * lists the load balancers' addresses, who alone may reach the slots. */
json_t *ml_security_json(const struct ml_security_spec *s,
			 const struct ml_config *cfg);
void ml_strlist_release(struct ml_strlist *l);
void ml_kvlist_release(struct ml_kvlist *l);
void ml_ssh_spec_release(struct ml_ssh_spec *s);

#endif
