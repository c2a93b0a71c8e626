/*
 * relay_end: undo what relay_key and relay_allow did for a deploy.
 *
 *	args:   {"deploy": ID}
 *	result: {"deploy", "removed_lines": N, "removed_key": bool}
 *
 * Removes every authorized_keys line of the deploy (ours only: they start
 * with "restrict," and end with " mlctl-relay:<deploy>"), the deploy's key
 * pair and its known_hosts file. Safe to call on any host, any number of
 * times; the controller calls it on every host it asked to relay, also
 * after a failure.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/relay.h"

#include <unistd.h>

static int op_relay_end(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf path = ML_BUF_INIT(4096), dir = ML_BUF_INIT(4096);
	const char *deploy;
	bool removed_key = false;
	int lock = -1, removed = 0, rc;

	deploy = json_string_value(json_object_get(args, "deploy"));
	if (!ml_relay_deploy_valid(deploy))
		return ml_err_set(ML_EPROTO,
				  "relay_end needs 'deploy', an id of letters, "
				  "digits, '_', '.' and '-' (at most %d)",
				  ML_RELAY_DEPLOY_MAX);
	rc = ml_relay_authkeys_path(&path);
	if (rc < 0)
		goto out;
	rc = ml_relay_lock(&lock, a);
	if (rc < 0)
		goto out;
	rc = ml_relay_authkeys_remove(ml_buf_str(&path), deploy, &removed);
	if (rc < 0)
		goto out;
	ml_relay_dir(&dir, a, false);
	removed_key = ml_relay_keys_remove(ml_buf_str(&dir), deploy);
	*result = json_pack("{s:s,s:i,s:b}", "deploy", deploy, "removed_lines",
			    removed, "removed_key", removed_key);
out:
	if (lock >= 0)
		close(lock);
	ml_buf_release(&path);
	ml_buf_release(&dir);
	return rc;
}

const struct ml_agent_op ml_agent_op_relay_end = {
	.name = "relay_end",
	.summary = "remove a deploy's relay keys and authorized_keys lines",
	.run = op_relay_end,
};
