/*
 * relay_allow: let another host's relay key in, to store blobs only.
 *
 *	args:   {"deploy": ID, "public_key": "ssh-ed25519 AAAA...",
 *		 "from": address of the sending host, "ttl_s": 3600}
 *	result: {"deploy", "path": the authorized_keys file, "added": bool}
 *
 * Appends one line to the SSH user's authorized_keys (relay.h:
 * ml_relay_authkeys_line): restrict, from= the sender's addresses,
 * expiry-time ttl_s from now by this host's clock (so clock skew with
 * the controller does not matter), command= `mlctl-agent receive`. The
 * key must be exactly an ed25519 public key (no options, no comment, no
 * newline) and the same key for the same deploy is added once. Lines of
 * ours that have expired (a controller that died before relay_end) are
 * removed first ("expired_removed": how many). ~/.ssh is
 * created 0700 and the file 0600 when absent. relay_end removes the
 * deploy's lines.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/relay.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether the file at path already has line (a whole line). */
static bool has_line(const char *path, const char *line)
{
	struct ml_buf b = ML_BUF_INIT((size_t)4 << 20);
	const char *p, *e;
	size_t n = strlen(line);
	bool found = false;

	if (ml_buf_read_file(&b, path) < 0)
		goto out;
	for (p = ml_buf_str(&b); *p; p = e + 1) {
		e = strchr(p, '\n');
		if (!e)
			e = p + strlen(p);
		if ((size_t)(e - p) == n && !memcmp(p, line, n)) {
			found = true;
			break;
		}
		if (!*e)
			break;
	}
out:
	ml_buf_release(&b);
	return found;
}

/* The same key and deploy already allowed: the line without its options. */
static bool key_present(const char *path, const char *key_and_mark)
{
	struct ml_buf b = ML_BUF_INIT((size_t)4 << 20);
	bool found = false;
	const char *p;

	if (ml_buf_read_file(&b, path) == 0) {
		for (p = strstr(ml_buf_str(&b), key_and_mark); p && !found;
		     p = strstr(p + 1, key_and_mark))
			found = p[strlen(key_and_mark)] == '\n' ||
				!p[strlen(key_and_mark)];
	}
	ml_buf_release(&b);
	return found;
}

static int op_relay_allow(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf path = ML_BUF_INIT(4096), line = ML_BUF_INIT(4096);
	const char *deploy, *key, *from;
	json_t *jttl = json_object_get(args, "ttl_s");
	int64_t ttl = 3600;
	char *dir = NULL, *slash, *tail = NULL;
	bool added = false;
	int fd = -1, lock = -1, swept = 0, rc;

	deploy = json_string_value(json_object_get(args, "deploy"));
	key = json_string_value(json_object_get(args, "public_key"));
	from = json_string_value(json_object_get(args, "from"));
	if (!ml_relay_deploy_valid(deploy))
		return ml_err_set(ML_EPROTO,
				  "relay_allow needs 'deploy', an id of "
				  "letters, digits, '_', '.' and '-' (at most "
				  "%d)",
				  ML_RELAY_DEPLOY_MAX);
	if (!ml_relay_pubkey_valid(key))
		return ml_err_set(ML_EPROTO,
				  "relay_allow needs 'public_key', exactly "
				  "\"ssh-ed25519 \" and the key's base64 (no "
				  "options, comment or newline)");
	if (!ml_relay_address_valid(from))
		return ml_err_set(ML_EPROTO, "relay_allow needs 'from', an IP "
					     "address or a host name");
	if (jttl) {
		if (!json_is_integer(jttl) || json_integer_value(jttl) < 1 ||
		    json_integer_value(jttl) > ML_RELAY_TTL_MAX)
			return ml_err_set(ML_EPROTO,
					  "relay_allow: 'ttl_s' must be a "
					  "number of seconds from 1 to %d",
					  ML_RELAY_TTL_MAX);
		ttl = json_integer_value(jttl);
	}
	rc = ml_relay_authkeys_path(&path);
	if (rc < 0)
		goto out;
	rc = ml_relay_authkeys_line(&line, a, deploy, key, from, ttl);
	if (rc < 0)
		goto out;
	rc = ml_relay_lock(&lock, a);
	if (rc < 0)
		goto out;
	rc = ml_relay_authkeys_sweep(ml_buf_str(&path), &swept);
	if (rc < 0)
		goto out;
	tail = ml_xasprintf("\" %s %s%s", key, ML_RELAY_MARK, deploy);
	if (has_line(ml_buf_str(&path), ml_buf_str(&line)) ||
	    key_present(ml_buf_str(&path), tail))
		goto done;
	dir = ml_xstrdup(ml_buf_str(&path));
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
					  dir);
			goto out;
		}
	}
	ml_buf_addch(&line, '\n');
	fd = open(ml_buf_str(&path),
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, line.data, line.len) != (ssize_t)line.len ||
	    fsync(fd) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot append to '%s'",
				  ml_buf_str(&path));
		goto out;
	}
	added = true;
done:
	*result = json_pack("{s:s,s:s,s:b,s:i}", "deploy", deploy, "path",
			    ml_buf_str(&path), "added", added,
			    "expired_removed", swept);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (lock >= 0)
		close(lock);
	free(dir);
	free(tail);
	ml_buf_release(&path);
	ml_buf_release(&line);
	return rc;
}

const struct ml_agent_op ml_agent_op_relay_allow = {
	.name = "relay_allow",
	.summary = "let a host's relay key store blobs here (authorized_keys)",
	.run = op_relay_allow,
};
