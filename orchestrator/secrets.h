#ifndef ML_SECRETS_H
#define ML_SECRETS_H

/*
 * Secret values for the names a playbook lists. They live outside git: in
 * a file of KEY=VALUE lines (mode 0600 or stricter, refused otherwise) or
 * in MLCTL_SECRET_<NAME> variables, and travel to the VMs only inside the
 * SSH channel.
 * They are never printed, logged or written to the ledger; only their
 * names are.
 */

#include <jansson.h>

struct ml_playbook;
struct ml_config;

/*
 * Collect a value for every secret pb names into *out ({"NAME": "value"},
 * the caller's). From file when given, else from ".mlctl/secrets" in the
 * current directory when it exists; a name missing there is taken from the
 * environment variable MLCTL_SECRET_<NAME>, never from <NAME> itself.
 * ML_EINVALID when a name has no
 * value anywhere ("secret 'HF_TOKEN' has no value: ..."), when the file is
 * readable by group or others, or when a line is malformed (file:line,
 * never the value).
 */
int ml_secrets_load(json_t **out, const struct ml_playbook *pb,
		    const char *file);

/*
 * The load balancers' own secrets into *out (the caller's, NULL when the
 * playbook names none): {"tls_cert": PEM, "tls_key": PEM} for
 * load_balancer.tls and {"stats_auth": {"user", "password"}} for
 * metrics.user/password, each value found as ml_secrets_load finds one.
 * They go to the LB hosts' agents only, never to a container, and take no
 * part in the containers' spec. Failures as ml_secrets_load.
 */
int ml_secrets_load_lb(json_t **out, const struct ml_playbook *pb,
		       const char *file);

/*
 * Fold what the rollout spec (ml_rollout_spec) leaves out into spec, in
 * place: the playbook's security settings and the load balancers'
 * addresses (the slots' filter rules follow them), and a keyed digest of
 * the secret values, so that a changed value rolls the containers while
 * neither the spec label nor the ledger can be used to test a guessed
 * value. The key is <ledger_path>.key (ledger_path NULL: the default
 * ledger's), made on first use. Fails (ML_EFAIL) when the key file cannot
 * be made or read, or is readable by others.
 */
int ml_secrets_spec(char spec[65], const struct ml_config *cfg,
		    json_t *secrets, const char *ledger_path);

/* Print, as warnings on stderr, the "warnings" a container_run reply
 * (res, borrowed) carries, escaped, prefixed with host. */
void ml_security_warn(const char *host, json_t *res);

#endif
