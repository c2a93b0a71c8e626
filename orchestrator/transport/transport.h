#ifndef ML_TRANSPORT_H
#define ML_TRANSPORT_H

/*
 * The SSH transport: one connection per host, reused for every command a
 * run sends there, over libssh (the only place that includes it is ssh.c).
 *
 *	struct ml_ssh_opts o = { .host = "vm1", .address = "10.77.0.11" };
 *	struct ml_ssh *s;
 *	struct ml_ssh_chan *c;
 *	const char *argv[] = { "mlctl-agent", "serve", NULL };
 *
 *	if (ml_ssh_connect(&s, &o) < 0) ...
 *	if (ml_ssh_exec(&c, s, argv) < 0) ...
 *	proto_talk(ml_ssh_chan_io(c));
 *	ml_ssh_chan_close(c, &status);
 *	ml_ssh_free(s);
 *
 * Threads: one struct ml_ssh (and its channels) is used by one thread at a
 * time; different connections may be used from different threads at once
 * (see ml_parallel_run). Errors are the thread's own (common/err.h).
 *
 * Remote commands are always given as an argv vector; each argument is
 * single-quoted for the remote POSIX login shell, which sshd always runs
 * (`$SHELL -c`). Nothing ever goes through a shell on the controller.
 */

#include "common/io.h"

/* Defaults used when the matching option is 0. */
#define ML_SSH_CONNECT_TIMEOUT_MS 10000
#define ML_SSH_COMMAND_TIMEOUT_MS 60000
#define ML_SSH_KEEPALIVE_S 15
/* A host that vanishes (its link or power gone: no RST, no FIN) is given
 * up after ML_SSH_DEAD_PEER_S seconds: TCP keepalive probes on an idle
 * connection (first after a third of it), and as long for data the peer
 * does not acknowledge (TCP_USER_TIMEOUT). A live host, however slow its
 * command, answers probes from its kernel. */
#define ML_SSH_DEAD_PEER_S 30

struct ml_ssh;

/* The descriptor libssh reads and writes for s: the TCP socket of a
 * direct connection, one end of a socket pair for one through a jump
 * host. For tests and diagnostics (getsockopt), never for I/O. */
int ml_ssh_socket(const struct ml_ssh *s);

struct ml_ssh_opts {
	/* Name used in messages ("'vm1' (10.77.0.11)"); required. */
	const char *host;
	/* What to connect to (name or IP); NULL: host. The host key is
	 * looked up under this name (after ssh config HostName), with
	 * "[addr]:port" when the port is not 22, like OpenSSH. */
	const char *address;
	int port;                  /* 0: ssh config, else 22 */
	const char *user;          /* NULL: ssh config, else login name */
	const char *identity_file; /* NULL: ssh-agent and default keys */

	/* Jump host (bastion): the target is reached through a direct-tcpip
	 * channel of a session to it, never by running ssh locally. The jump
	 * host's key is checked like the target's. NULL jump_address: no
	 * jump unless the ssh config has a simple ProxyJump for the host. */
	const char *jump_address;
	int jump_port;
	const char *jump_user;

	const char *known_hosts; /* NULL: ~/.ssh/known_hosts */
	/* Add an unknown host key to known_hosts (never a changed one). */
	bool trust_on_first_use;

	/* TCP connect, key exchange and login, all together. */
	int connect_timeout_ms;
	/* Longest silence accepted while reading a command's output or
	 * writing its input; < 0 disables it. */
	int command_timeout_ms;
	/* Seconds of silence before an SSH_MSG_IGNORE is sent while we wait
	 * for a reply, to keep NAT and firewall state alive; < 0: never. */
	int keepalive_s;
	/* ssh_config file: NULL reads ~/.ssh/config and /etc/ssh/ssh_config,
	 * "none" reads nothing (as `ssh -F none`). */
	const char *ssh_config;
};

struct ml_ssh;
struct ml_ssh_chan;

/*
 * Connect to a host, check its key against known_hosts and log in (the
 * identity file, then ssh-agent and the default keys). On success *out
 * belongs to the caller (ml_ssh_free). Fails with ML_EINVALID for bad
 * options (a host or user starting with '-', an unreadable ssh config, a
 * ProxyCommand), ML_EHOST when the host
 * cannot be reached, does not answer within the connect timeout, has an
 * unknown or changed key, or refuses every key; the message names the
 * host and says what to do.
 */
int ml_ssh_connect(struct ml_ssh **out, const struct ml_ssh_opts *o);

/*
 * The host key this connection checked against known_hosts, as "TYPE
 * BASE64" (ssh-ed25519 AAAA...), in *out (free()). What a host relaying
 * blobs to this one is told to trust (apply/relay.c). ML_EHOST when the
 * session has none.
 */
int ml_ssh_host_key(char **out, const struct ml_ssh *s);

/* Disconnect and free; NULL is fine. Channels must be freed first. */
void ml_ssh_free(struct ml_ssh *s);

/* "'vm1' (10.77.0.11)": how messages name this connection. Borrowed. */
const char *ml_ssh_name(const struct ml_ssh *s);

/*
 * Start argv (NULL-terminated, at least argv[0]) on the host. The channel
 * belongs to the caller: ml_ssh_chan_close or ml_ssh_chan_free. Several
 * channels may be used one after the other (or at once, from one thread)
 * on one connection. ML_ETOOBIG when the quoted command passes 128 KiB,
 * ML_EHOST when the channel cannot be opened.
 */
int ml_ssh_exec(struct ml_ssh_chan **out, struct ml_ssh *s,
		const char *const argv[]);

/*
 * The channel's stdin/stdout as a stream. read fails with ML_EHOST ("'vm1'
 * (10.77.0.11) did not answer within 5s") when nothing arrives within the
 * command timeout, and returns 0 at the command's end of output. Borrowed:
 * valid until the channel is freed.
 */
struct ml_io *ml_ssh_chan_io(struct ml_ssh_chan *c);

/* Per-channel silence limit in ms (< 0: none), for long operations. */
void ml_ssh_chan_set_timeout(struct ml_ssh_chan *c, int timeout_ms);

/*
 * What the command wrote on stderr so far (the first 64 KiB; remote text,
 * escape it before printing). Borrowed, NUL-terminated.
 */
const char *ml_ssh_chan_stderr(const struct ml_ssh_chan *c, size_t *len);

/*
 * Send EOF on the command's stdin, discard the rest of its stdout (keeping
 * stderr, see above), and wait up to the command timeout for its exit
 * status. ML_EHOST when it does not exit in time, ML_EFAIL when it ended
 * without a status (killed by a signal). The channel stays allocated.
 */
int ml_ssh_chan_wait(struct ml_ssh_chan *c, int *exit_status);

/* Close and free without waiting; NULL is fine. */
void ml_ssh_chan_free(struct ml_ssh_chan *c);

/* ml_ssh_chan_wait then ml_ssh_chan_free (always freed). */
int ml_ssh_chan_close(struct ml_ssh_chan *c, int *exit_status);

/*
 * Run a short command: send stdin_data (may be NULL), collect stdout into
 * out and stderr into err (either may be NULL to discard; bounded by their
 * max, ML_ETOOBIG past it), and return its exit status in *exit_status. A
 * non-zero exit status is not an error of this function.
 */
int ml_ssh_run(struct ml_ssh *s, const char *const argv[],
	       const void *stdin_data, size_t stdin_len, struct ml_buf *out,
	       struct ml_buf *err, int *exit_status);

/*
 * Copy a local file to remote_path over SFTP: write remote_path.tmp-XXXX
 * (missing directories are created 0755), fsync it when the server can,
 * chmod it to mode, then rename it over remote_path atomically (`mv -f`,
 * i.e. rename(2) in the same directory: libssh 0.10 has no posix-rename),
 * so a reader sees the old file or the new one, never a part. A relative
 * remote_path is relative to the login directory.
 * ML_ENOTFOUND when local_path is missing, ML_EHOST on remote failures.
 */
int ml_ssh_upload(struct ml_ssh *s, const char *local_path,
		  const char *remote_path, int mode);

/*
 * Quote argv for a POSIX shell into out: each argument in single quotes,
 * with ' written as '\'' and arguments separated by one space. Exposed for
 * tests and for logging the command that will run.
 */
int ml_shell_quote_argv(struct ml_buf *out, const char *const argv[]);

/*
 * Run fn(i, arg) for every i in [0, n) on at most max_parallel threads
 * (<= 0 or 1: one at a time in the calling thread). Workers take the next
 * index until none is left, so a slow host does not hold up the others.
 * fn's result is ignored here: it records success or failure per index in
 * arg, copying ml_err_msg() there since errors are per thread. Returns 0
 * once every index ran (when no thread can be started, the calling thread
 * runs them all). max_parallel is capped at 256.
 */
int ml_parallel_run(size_t n, int max_parallel,
		    int (*fn)(size_t i, void *arg), void *arg);

#endif
