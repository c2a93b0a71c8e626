#ifndef ML_TEST_SSHD_H
#define ML_TEST_SSHD_H

/*
 * A real OpenSSH sshd for tests, listening on 127.0.0.1 on a free port,
 * with everything in its own temporary directory: an ed25519 host key, a
 * client key pair (client_key, client_key.pub) allowed in authorized_keys,
 * sshd_config, the pid file and sshd.log. It runs in the foreground (-D) as
 * a child of the test, as root (sshd needs it to switch users).
 *
 *	struct ml_test_sshd d;
 *	if (!ml_test_sshd_usable(&why)) skip(why);
 *	ml_test_sshd_start(&d, NULL);
 *	... connect to 127.0.0.1:d.port as d.user with d.client_key ...
 *	ml_test_sshd_stop(&d);
 */

struct ml_test_sshd {
	char *dir;         /* the temporary directory, removed by stop */
	int port;
	pid_t pid;         /* 0 when not running */
	char *user;        /* the user tests log in as (the current one) */
	char *host_key;    /* private host key path */
	char *client_key;  /* private client key path (no passphrase) */
	char *known_hosts; /* a known_hosts with this sshd's key, see below */
	char *log;         /* sshd's stderr */
};

/* Whether sshd and ssh-keygen exist and we are root; else *why says. */
bool ml_test_sshd_usable(const char **why);

/*
 * Make a fresh directory and keys and start sshd. share_from, when not
 * NULL, is another running fixture whose client key is reused (so one key
 * logs in to both, as with a jump host). Returns 0, or -1 after printing
 * why to stderr.
 */
int ml_test_sshd_start(struct ml_test_sshd *d,
		       const struct ml_test_sshd *share_from);

/* Stop sshd and start it again on the same port; new_host_key replaces
 * the host key first (a "reinstalled" host). */
int ml_test_sshd_restart(struct ml_test_sshd *d, bool new_host_key);

/*
 * Write a known_hosts file at path holding this sshd's host key in the
 * "[127.0.0.1]:port type base64" form OpenSSH writes (appending when
 * append is set), optionally hashed (ssh-keygen -H).
 */
int ml_test_sshd_write_known_hosts(const struct ml_test_sshd *d,
				   const char *path, bool append, bool hashed);

/* Stop sshd (SIGTERM, then SIGKILL after 2 s), remove the directory and
 * free the strings. Safe to call twice. */
void ml_test_sshd_stop(struct ml_test_sshd *d);

/* Run argv (argv[0] a full path) and wait; returns the exit status, or -1.
 * stdout and stderr go to out_path when not NULL, else to /dev/null. */
int ml_test_sshd_run(const char *const argv[], const char *out_path);

#endif
