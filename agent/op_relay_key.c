/*
 * relay_key: the per-deploy key this host relays blobs with (relay.h).
 *
 *	args:   {"deploy": ID}
 *	result: {"deploy", "public_key": "ssh-ed25519 AAAA...",
 *		 "created": bool, "stale_removed": N}
 *
 * The key is made by ssh-keygen (argv, no shell) as
 * <state>/relay/<deploy>.key, mode 0600, and its private half never leaves
 * the host; only the public half is returned, without its comment. A
 * second call for the same deploy returns the same key (created false).
 * relay_end removes it. A key pair older than ML_RELAY_TTL_MAX (no
 * authorized_keys line can still accept it: a controller died before its
 * relay_end) is removed here, with its known_hosts file; "stale_removed"
 * in the result counts them.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/relay.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Run ssh-keygen to make path; its output (bounded) in msg for errors. */
static int keygen(const char *path, const char *comment, struct ml_buf *msg)
{
	const char *bin = getenv("MLCTL_SSH_KEYGEN_BIN");
	const char *argv[] = {bin && *bin ? bin : "ssh-keygen",
			      "-q",
			      "-t",
			      "ed25519",
			      "-N",
			      "",
			      "-C",
			      comment,
			      "-f",
			      path,
			      NULL};
	posix_spawn_file_actions_t fa;
	int pfd[2], st = 0, rc;
	char chunk[1024];
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot make a pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
			  environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return ml_err_errno(ML_EFAIL, rc, "cannot run '%s'", argv[0]);
	}
	while ((r = read(pfd[0], chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (msg->len < 1024)
			ml_buf_add(msg, chunk, (size_t)r);
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return ml_err_set(ML_EFAIL, "ssh-keygen failed for '%s': %s",
				  path, ml_buf_str(msg));
	return 0;
}

/* The public key in pubpath, "ssh-ed25519 BASE64" without the comment. */
static int read_pub(char **out, const char *pubpath)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	char *sp;
	int rc;

	rc = ml_buf_read_file(&b, pubpath);
	if (rc < 0)
		goto out;
	sp = strchr(ml_buf_str(&b), ' ');
	sp = sp ? strchr(sp + 1, ' ') : NULL;
	if (sp)
		*sp = '\0';
	else if (b.len && b.data[b.len - 1] == '\n')
		b.data[b.len - 1] = '\0';
	if (!ml_relay_pubkey_valid(ml_buf_str(&b))) {
		rc = ml_err_set(ML_EFAIL, "'%s' is not an ed25519 public key",
				pubpath);
		goto out;
	}
	*out = ml_xstrdup(ml_buf_str(&b));
out:
	ml_buf_release(&b);
	return rc;
}

/* Remove the key files of other deploys made before now - the longest
 * TTL; returns how many deploys' keys went. */
static int sweep_stale(const char *dir, const char *keep)
{
	time_t cutoff = time(NULL) - ML_RELAY_TTL_MAX;
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat st;
	int removed = 0;
	size_t n;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char stem[ML_RELAY_DEPLOY_MAX + 1];

		n = strlen(e->d_name);
		if (n <= 4 || n - 4 > ML_RELAY_DEPLOY_MAX ||
		    strcmp(e->d_name + n - 4, ".key"))
			continue;
		memcpy(stem, e->d_name, n - 4);
		stem[n - 4] = '\0';
		if (!ml_relay_deploy_valid(stem) || !strcmp(stem, keep))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (st.st_mtime >= cutoff)
			continue;
		(void)ml_relay_keys_remove(dir, stem);
		removed++;
	}
	closedir(d);
	return removed;
}

static int op_relay_key(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf dir = ML_BUF_INIT(4096), msg = ML_BUF_INIT(4096);
	const char *deploy;
	char *key = NULL, *pub = NULL, *comment = NULL, *pubkey = NULL;
	bool created = false;
	struct stat st;
	int rc, stale;

	deploy = json_string_value(json_object_get(args, "deploy"));
	if (!ml_relay_deploy_valid(deploy))
		return ml_err_set(ML_EPROTO,
				  "relay_key needs 'deploy', an id of letters, "
				  "digits, '_', '.' and '-' (at most %d)",
				  ML_RELAY_DEPLOY_MAX);
	rc = ml_relay_dir(&dir, a, true);
	if (rc < 0)
		goto out;
	stale = sweep_stale(ml_buf_str(&dir), deploy);
	key = ml_xasprintf("%s/%s.key", ml_buf_str(&dir), deploy);
	pub = ml_xasprintf("%s.pub", key);
	if (lstat(key, &st) < 0 || lstat(pub, &st) < 0) {
		unlink(key);
		unlink(pub);
		comment = ml_xasprintf("%s%s", ML_RELAY_MARK, deploy);
		rc = keygen(key, comment, &msg);
		if (rc < 0)
			goto out;
		if (chmod(key, 0600) < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot chmod '%s'",
					  key);
			goto out;
		}
		created = true;
	}
	rc = read_pub(&pubkey, pub);
	if (rc < 0)
		goto out;
	*result = json_pack("{s:s,s:s,s:b,s:i}", "deploy", deploy, "public_key",
			    pubkey, "created", created, "stale_removed", stale);
out:
	free(key);
	free(pub);
	free(comment);
	free(pubkey);
	ml_buf_release(&dir);
	ml_buf_release(&msg);
	return rc;
}

const struct ml_agent_op ml_agent_op_relay_key = {
	.name = "relay_key",
	.summary = "make (or return) this host's key to relay blobs with",
	.run = op_relay_key,
};
