/*
 * SSH client over libssh 0.10, the only file of mlctl that includes libssh.
 *
 * One struct ml_ssh is one authenticated session. We open the TCP
 * connection ourselves (non-blocking connect bounded by the connect
 * timeout) and give the socket to libssh with SSH_OPTIONS_FD, so libssh
 * never resolves, connects or spawns anything: in particular a ProxyJump
 * is never run as `ssh -W` (which is what libssh 0.10 does with one).
 * Through a jump host the socket is one end of a socketpair whose other
 * end a pump thread copies to and from a direct-tcpip channel of the jump
 * session; that thread is then the only user of the jump session.
 *
 * Invariants: a session is used by one thread at a time (libssh sessions
 * are not thread-safe); the session timeout (SSH_OPTIONS_TIMEOUT) is the
 * connect timeout until login and the command timeout after it, since
 * libssh's blocking calls (channel open, write when the window is full,
 * exit status) wait that long. StrictHostKeyChecking must stay on (see
 * connect_impl). Reads wait in slices of at most
 * READ_SLICE_MS so that stderr is drained (it shares the flow-control
 * window with stdout) and keepalives go out while we wait.
 *
 * Sizes: quoted commands up to 128 KiB; the first 64 KiB of each command's
 * stderr are kept; SFTP writes go in 64 KiB requests; the jump pump holds
 * two 64 KiB buffers.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "orchestrator/transport/transport.h"

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/sftp.h>

#define CMD_MAX ((size_t)128 << 10)
#define STDERR_KEEP ((size_t)64 << 10)
#define STDERR_TAIL ((size_t)4096) /* the last bytes, for the last words */
#define READ_SLICE_MS 100
#define PUMP_BUF (64 << 10)
#define SFTP_CHUNK (64 << 10)
#define NO_TIMEOUT_MS (24 * 3600 * 1000)

struct ml_ssh {
	ssh_session s;
	int fd;             /* the socket given to libssh, which never
			     * closes a descriptor set with SSH_OPTIONS_FD */
	char *name;         /* "'vm1' (10.77.0.11)" */
	char *known_hosts;  /* file used, for messages */
	int command_timeout_ms;
	int keepalive_s;
	int64_t last_sent_ms; /* for keepalives */

	/* through a jump host */
	struct ml_ssh *jump;
	ssh_channel jump_chan;
	int pump_fd; /* our end of the socketpair; the pump closes it */
	pthread_t pump;
	bool pump_started;
	atomic_int pump_stop;
};

struct ml_ssh_chan {
	struct ml_ssh *ssh;
	ssh_channel ch;
	struct ml_io io;
	char *what;  /* argv[0], for messages */
	int timeout_ms;
	struct ml_buf err;   /* the first STDERR_KEEP bytes of stderr */
	size_t err_dropped;
	char err_tail[STDERR_TAIL]; /* a ring of its last bytes */
	size_t err_total;    /* bytes of stderr read */
	bool eof_sent;
	/* the peer's exit-signal, when the command died of one */
	struct ssh_channel_callbacks_struct cb;
	char exit_signal[16];
	bool exit_core;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
/* Serializes appends to known_hosts when several hosts are trusted at
 * once by parallel workers. */
static pthread_mutex_t known_hosts_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_cb(int priority, const char *function, const char *buffer,
		   void *userdata)
{
	ml_debug("libssh: %s", buffer);
}

static void do_init(void)
{
	init_rc = ssh_init();
}

/* libssh keeps its log callback per thread: set it in every thread that
 * uses a session, so that -vv output goes through our log, whole lines. */
static int lib_init(void)
{
	pthread_once(&init_once, do_init);
	if (init_rc < 0)
		return ml_err_set(ML_EFAIL, "cannot initialize libssh");
	ssh_set_log_callback(log_cb);
	return 0;
}

/* "5s", "1.5s" or "200 ms", for messages. */
static const char *fmt_ms(char buf[32], int ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, 32, "%ds", ms / 1000);
	else if (ms < 1000)
		snprintf(buf, 32, "%d ms", ms);
	else
		snprintf(buf, 32, "%.1fs", ms / 1000.0);
	return buf;
}

static int norm_timeout(int ms, int def)
{
	if (ms == 0)
		return def;
	if (ms < 0)
		return NO_TIMEOUT_MS;
	return ms;
}

/* A name or user that ssh tools could take for an option, or that holds
 * control characters, is refused before anything is sent anywhere. */
static int check_word(const char *what, const char *v)
{
	const unsigned char *p;

	if (!v)
		return 0;
	if (!*v)
		return ml_err_set(ML_EINVALID, "empty %s", what);
	if (*v == '-')
		return ml_err_set(ML_EINVALID,
				  "%s '%s' starts with '-': refused, it could "
				  "be taken for an option", what, v);
	for (p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return ml_err_set(ML_EINVALID,
					  "%s '%s' contains a space or a "
					  "control character", what, v);
	return 0;
}

static int set_timeout(ssh_session s, int ms)
{
	long sec = ms / 1000, usec = (long)(ms % 1000) * 1000;

	if (ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &sec) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usec) < 0)
		return ml_err_set(ML_EFAIL, "cannot set ssh timeout: %s",
				  ssh_get_error(s));
	return 0;
}

/*
 * A peer that vanishes without a FIN or RST (its link down, its power
 * off) errors the socket after about s seconds instead of after the
 * command timeout: keepalive probes once the connection has been idle
 * for s / 3 seconds, then every s / 9 as many as fit in s, and the
 * connection closed once nothing came back for s seconds, data (our
 * SSH_MSG_IGNORE keepalives included) unacknowledged or probes unanswered
 * (TCP_USER_TIMEOUT rules both). Best effort: a kernel without one of
 * them keeps its default.
 */
static void dead_peer_after(int fd, int s)
{
	int one = 1, idle = s / 3, intvl = s / 9 > 0 ? s / 9 : 1;
	int cnt = (s - idle) / intvl;
	unsigned int user_ms = (unsigned int)s * 1000;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms,
		   sizeof(user_ms));
}

int ml_ssh_socket(const struct ml_ssh *s)
{
	return s->fd;
}

/*
 * TCP connect with a deadline: every address getaddrinfo gives, in order.
 * Returns the connected non-blocking socket, or a negative code.
 */
static int tcp_connect(int *out, const char *name, const char *addr,
		       unsigned port, int timeout_ms)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	char portstr[16], d[32];
	int64_t deadline = ml_mono_ms() + timeout_ms;
	int fd = -1, rc, err = 0, one = 1;
	bool timed_out = false;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(addr, portstr, &hints, &res);
	if (rc) {
		rc = ml_err_set(ML_EHOST, "cannot resolve %s: %s", name,
				gai_strerror(rc));
		goto out;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(err);
		int64_t left;

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			err = errno;
			goto next;
		}
		p.fd = fd;
		p.events = POLLOUT;
		for (;;) {
			left = deadline - ml_mono_ms();
			if (left <= 0) {
				rc = 0;
				break;
			}
			rc = poll(&p, 1, (int)left);
			if (rc >= 0 || errno != EINTR)
				break;
		}
		if (rc == 0) {
			timed_out = true;
			goto next;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					 &len) < 0) {
			err = errno;
			goto next;
		}
		if (err == 0)
			break;
next:
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		if (timed_out)
			rc = ml_err_set(ML_EHOST,
					"%s did not answer within %s", name,
					fmt_ms(d, timeout_ms));
		else
			rc = ml_err_errno(ML_EHOST, err, "cannot connect to %s",
					  name);
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	dead_peer_after(fd, ML_SSH_DEAD_PEER_S);
	*out = fd;
	rc = 0;
out:
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* SHA256:base64 of the server's host key, or NULL. free() the result. */
static char *host_fingerprint(ssh_session s)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL, *res = NULL;

	if (ssh_get_server_publickey(s, &key) < 0)
		goto out;
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
				   &hlen) < 0)
		goto out;
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	if (fp)
		res = ml_xstrdup(fp);
out:
	if (fp)
		ssh_string_free_char(fp);
	if (hash)
		ssh_clean_pubkey_hash(&hash);
	if (key)
		ssh_key_free(key);
	return res;
}

/*
 * The command that forgets the known key of c's host, for the message
 * about a changed key: "ssh-keygen -f 'FILE' -R '[ADDR]:PORT'" (the form
 * known_hosts uses for a port other than 22), quoted for a POSIX shell.
 * Caller frees.
 */
static char *forget_key_command(struct ml_ssh *c)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	const char *parts[2];
	char *addr = NULL, *entry;
	unsigned port = 22;
	size_t i;

	if (ssh_options_get(c->s, SSH_OPTIONS_HOST, &addr) < 0)
		addr = NULL;
	if (ssh_options_get_port(c->s, &port) < 0)
		port = 22;
	entry = port == 22 ? ml_xstrdup(addr ? addr : "?")
			   : ml_xasprintf("[%s]:%u", addr ? addr : "?", port);
	parts[0] = c->known_hosts ? c->known_hosts : "~/.ssh/known_hosts";
	parts[1] = entry;
	ml_buf_addstr(&b, "ssh-keygen -f ");
	for (i = 0; i < 2; i++) {
		const char *p;

		ml_buf_addch(&b, '\'');
		for (p = parts[i]; *p; p++)
			if (*p == '\'')
				ml_buf_addstr(&b, "'\\''");
			else if ((unsigned char)*p >= ' ' && *p != 0x7f)
				ml_buf_addch(&b, *p);
		ml_buf_addch(&b, '\'');
		if (!i)
			ml_buf_addstr(&b, " -R ");
	}
	if (addr)
		ssh_string_free_char(addr);
	free(entry);
	return ml_buf_detach(&b, NULL);
}

static int check_host_key(struct ml_ssh *c, bool tofu)
{
	enum ssh_known_hosts_e st;
	char *fp = host_fingerprint(c->s), *forget;
	const char *fps = fp ? fp : "SHA256:?";
	int rc = 0;

	st = ssh_session_is_known_server(c->s);
	ml_debug("host key of %s: %s, known_hosts state %d", c->name, fps,
		 (int)st);
	switch (st) {
	case SSH_KNOWN_HOSTS_OK:
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		/* OTHER: only keys of another type are known, and libssh
		 * already asked for those types first: the server no longer
		 * has the key we know. Treated like a changed key. */
		forget = forget_key_command(c);
		rc = ml_err_set(ML_EHOST,
				"host key of %s has CHANGED (now %s): possible "
				"man-in-the-middle; if the host was "
				"reinstalled, forget the old key with: %s",
				c->name, fps, forget);
		free(forget);
		break;
	case SSH_KNOWN_HOSTS_NOT_FOUND:
	case SSH_KNOWN_HOSTS_UNKNOWN:
		if (!tofu) {
			rc = ml_err_set(ML_EHOST,
					"host key of %s is not known; verify "
					"its fingerprint (%s) and add it to "
					"%s, or run with --trust-new-hosts "
					"to accept it once",
					c->name, fps, c->known_hosts);
			break;
		}
		pthread_mutex_lock(&known_hosts_lock);
		if (ssh_session_update_known_hosts(c->s) < 0)
			rc = ml_err_set(ML_EFAIL,
					"cannot add the host key of %s to %s: "
					"%s", c->name, c->known_hosts,
					ssh_get_error(c->s));
		pthread_mutex_unlock(&known_hosts_lock);
		if (rc == 0)
			ml_warn("trusting the new host key of %s (%s), added "
				"to %s", c->name, fps, c->known_hosts);
		break;
	case SSH_KNOWN_HOSTS_ERROR:
	default:
		rc = ml_err_set(ML_EHOST,
				"cannot check the host key of %s against %s: "
				"%s", c->name, c->known_hosts,
				ssh_get_error(c->s));
		break;
	}
	free(fp);
	return rc;
}

/*
 * Refuse a private key that others can read, as OpenSSH does ("UNPROTECTED
 * PRIVATE KEY FILE"): whoever could read it can log in to the fleet, so
 * using it quietly would hide the leak. ML_EINVALID with the chmod to run.
 */
static int key_file_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0; /* the import below reports what is wrong */
	if (S_ISREG(st.st_mode) && (st.st_mode & 077))
		return ml_err_set(ML_EINVALID,
				  "identity file '%s' has mode %04o: a "
				  "private key must not be readable by group "
				  "or others, and ssh refuses it too (chmod "
				  "600 '%s')",
				  path, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

/*
 * Log in: the identity file, then ssh_userauth_publickey_auto (ssh-agent
 * when SSH_AUTH_SOCK is set, then IdentityFile from ssh config and the
 * default ~/.ssh/id_* keys). Encrypted keys are skipped, never prompted
 * for: a fan-out over many hosts has no terminal to ask on.
 */
static int authenticate(struct ml_ssh *c, const char *identity_file)
{
	struct ml_buf tried = ML_BUF_INIT(4096);
	ssh_key key = NULL;
	char *user = NULL;
	int r, rc;

	if (ssh_options_get(c->s, SSH_OPTIONS_USER, &user) < 0)
		user = NULL;
	if (identity_file && (rc = key_file_private(identity_file)) < 0)
		goto out;
	if (identity_file) {
		if (ssh_pki_import_privkey_file(identity_file, NULL, NULL,
						NULL, &key) != SSH_OK) {
			ml_buf_addf(&tried,
				    "key '%s' (unreadable, or protected by a "
				    "passphrase: load it into ssh-agent)",
				    identity_file);
		} else {
			r = ssh_userauth_publickey(c->s, NULL, key);
			if (r == SSH_AUTH_SUCCESS) {
				rc = 0;
				goto out;
			}
			if (r == SSH_AUTH_ERROR)
				goto fail;
			ml_buf_addf(&tried, "key '%s' (refused)",
				    identity_file);
		}
	}
	r = ssh_userauth_publickey_auto(c->s, NULL, NULL);
	if (r == SSH_AUTH_SUCCESS) {
		rc = 0;
		goto out;
	}
	if (r == SSH_AUTH_ERROR)
		goto fail;
	if (tried.len)
		ml_buf_addstr(&tried, ", ");
	if (getenv("SSH_AUTH_SOCK"))
		ml_buf_addstr(&tried, "ssh-agent keys, ");
	else
		ml_buf_addstr(&tried, "no ssh-agent (SSH_AUTH_SOCK unset), ");
	ml_buf_addstr(&tried, "default keys (ssh config IdentityFile, "
			      "~/.ssh/id_ed25519, id_ecdsa, id_rsa)");
	rc = ml_err_set(ML_EHOST,
			"cannot log in to %s as '%s': no key was accepted; "
			"tried %s; give the key with --identity or in the "
			"inventory, and check the user",
			c->name, user ? user : "?", ml_buf_str(&tried));
	goto out;
fail:
	rc = ml_err_set(ML_EHOST, "cannot log in to %s: %s", c->name,
			ssh_get_error(c->s));
out:
	if (key)
		ssh_key_free(key);
	if (user)
		ssh_string_free_char(user);
	ml_buf_release(&tried);
	return rc;
}

/*
 * libssh 0.10 turns "ProxyJump [user@]host[:port]" into the ProxyCommand
 * "ssh [-l user] [-p port] [-J more] -W '[%h]:%p' host". We never run it:
 * we read the jump host back out of it and connect there ourselves. Any
 * other ProxyCommand is refused. Returns 1 when a jump was found.
 */
static int parse_proxy(const char *name, const char *cmd, char **host,
		       char **user, int *port)
{
	char *copy = ml_xstrdup(cmd), *p = copy, *tok[16];
	size_t n = 0, i;
	int rc = 1;

	while (*p && n < ML_ARRAY_SIZE(tok)) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		tok[n++] = p;
		while (*p && *p != ' ')
			p++;
	}
	if (*p || n < 2 || strcmp(tok[0], "ssh"))
		goto unsupported;
	for (i = 1; i < n; i++) {
		bool last = i + 1 == n;

		if (!strcmp(tok[i], "-l") && !last) {
			free(*user);
			*user = ml_xstrdup(tok[++i]);
		} else if (!strcmp(tok[i], "-p") && !last) {
			*port = atoi(tok[++i]);
		} else if (!strcmp(tok[i], "-W") && !last) {
			i++;
		} else if (!strcmp(tok[i], "-J")) {
			rc = ml_err_set(ML_EINVALID,
					"ssh config gives %s a chain of jump "
					"hosts, which mlctl does not support",
					name);
			goto out;
		} else if (last && tok[i][0] != '-') {
			free(*host);
			*host = ml_xstrdup(tok[i]);
		} else {
			goto unsupported;
		}
	}
	if (!*host)
		goto unsupported;
	goto out;
unsupported:
	rc = ml_err_set(ML_EINVALID,
			"ssh config gives %s the ProxyCommand '%s', which "
			"mlctl does not run; use ProxyJump, or the jump host "
			"setting of the inventory", name, cmd);
out:
	free(copy);
	return rc;
}

static void *pump_main(void *arg);
static int connect_impl(struct ml_ssh **out, const struct ml_ssh_opts *o,
			int depth);

/* Open the direct-tcpip channel to (addr, port) through the jump host and
 * the socketpair the target session will run over. */
static int start_jump(struct ml_ssh *c, const struct ml_ssh_opts *jo,
		      const char *addr, unsigned port, int *fd_out)
{
	int sp[2] = { -1, -1 };
	int rc;

	rc = connect_impl(&c->jump, jo, 1);
	if (rc < 0)
		goto out;
	c->jump_chan = ssh_channel_new(c->jump->s);
	if (!c->jump_chan ||
	    ssh_channel_open_forward(c->jump_chan, addr, (int)port,
				     "127.0.0.1", 0) != SSH_OK) {
		rc = ml_err_set(ML_EHOST,
				"cannot reach %s through jump host %s: %s",
				c->name, c->jump->name,
				ssh_get_error(c->jump->s));
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "socketpair failed");
		goto out;
	}
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(sp[1], F_SETFL, O_NONBLOCK) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "fcntl failed");
		goto out;
	}
	c->pump_fd = sp[1];
	rc = pthread_create(&c->pump, NULL, pump_main, c);
	if (rc) {
		c->pump_fd = -1;
		rc = ml_err_errno(ML_EFAIL, rc, "cannot start a thread");
		goto out;
	}
	c->pump_started = true;
	*fd_out = sp[0];
	sp[0] = sp[1] = -1;
	rc = 0;
out:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return rc;
}

static char *make_name(const char *host, const char *addr, unsigned port)
{
	if (!strcmp(host, addr) && port == 22)
		return ml_xasprintf("'%s'", host);
	if (port == 22)
		return ml_xasprintf("'%s' (%s)", host, addr);
	if (strchr(addr, ':'))
		return ml_xasprintf("'%s' ([%s]:%u)", host, addr, port);
	return ml_xasprintf("'%s' (%s:%u)", host, addr, port);
}

static int connect_impl(struct ml_ssh **out, const struct ml_ssh_opts *o,
			int depth)
{
	struct ml_ssh *c = ml_xcalloc(1, sizeof(*c));
	struct ml_ssh_opts jo;
	char *addr = NULL, *proxy = NULL, *jhost = NULL, *juser = NULL;
	char *kh = NULL;
	unsigned port = 22;
	int jport = 0, fd = -1, connect_ms, verbosity = SSH_LOG_NOLOG;
	int rc, one = 1;
	bool yes = true, no = false;
	int64_t t0;
	char d[32];

	c->fd = -1;
	c->pump_fd = -1;
	atomic_init(&c->pump_stop, 0);
	if (!o || !o->host)
		BUG("ml_ssh_connect without a host");
	if ((rc = check_word("host name", o->host)) < 0 ||
	    (rc = check_word("host address", o->address)) < 0 ||
	    (rc = check_word("ssh user", o->user)) < 0 ||
	    (rc = check_word("jump host", o->jump_address)) < 0 ||
	    (rc = check_word("jump user", o->jump_user)) < 0)
		goto out;
	if (strchr(o->address ? o->address : o->host, '@')) {
		/* libssh would take "user@host" apart behind our back */
		rc = ml_err_set(ML_EINVALID,
				"host address '%s' contains '@': give the user "
				"in its own setting",
				o->address ? o->address : o->host);
		goto out;
	}
	rc = lib_init();
	if (rc < 0)
		goto out;
	connect_ms = norm_timeout(o->connect_timeout_ms,
				  ML_SSH_CONNECT_TIMEOUT_MS);
	c->command_timeout_ms = norm_timeout(o->command_timeout_ms,
					     ML_SSH_COMMAND_TIMEOUT_MS);
	c->keepalive_s = o->keepalive_s ? o->keepalive_s : ML_SSH_KEEPALIVE_S;

	c->s = ssh_new();
	if (!c->s) {
		rc = ml_err_set(ML_EFAIL, "cannot create an ssh session");
		goto out;
	}
	if (ml_log_level() >= ML_LOG_TRACE)
		verbosity = SSH_LOG_PROTOCOL;
	ssh_options_set(c->s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
	ssh_options_set(c->s, SSH_OPTIONS_PROCESS_CONFIG, &no);
	if (ssh_options_set(c->s, SSH_OPTIONS_HOST,
			    o->address ? o->address : o->host) < 0) {
		rc = ml_err_set(ML_EINVALID, "bad host address for '%s': %s",
				o->host, ssh_get_error(c->s));
		goto out;
	}

	/* The ssh config first, then our explicit options over it: libssh
	 * lets the config overwrite what was set before. */
	if (!o->ssh_config) {
		if (ssh_options_parse_config(c->s, NULL) < 0) {
			rc = ml_err_set(ML_EINVALID, "cannot read ssh config: %s",
					ssh_get_error(c->s));
			goto out;
		}
	} else if (strcmp(o->ssh_config, "none")) {
		if (access(o->ssh_config, R_OK) < 0) {
			rc = ml_err_errno(ML_EINVALID, errno,
					  "cannot read ssh config '%s'",
					  o->ssh_config);
			goto out;
		}
		if (ssh_options_parse_config(c->s, o->ssh_config) < 0) {
			rc = ml_err_set(ML_EINVALID,
					"cannot read ssh config '%s': %s",
					o->ssh_config, ssh_get_error(c->s));
			goto out;
		}
	}
	if (o->user && ssh_options_set(c->s, SSH_OPTIONS_USER, o->user) < 0)
		goto bad_opt;
	if (o->port > 0) {
		port = (unsigned)o->port;
		if (ssh_options_set(c->s, SSH_OPTIONS_PORT, &port) < 0)
			goto bad_opt;
	}
	if (o->known_hosts &&
	    ssh_options_set(c->s, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts) < 0)
		goto bad_opt;
	/* StrictHostKeyChecking stays on whatever the ssh config says: with
	 * it off, libssh 0.10's ssh_session_is_known_server reports every
	 * host as known, and our check below would pass anything. */
	ssh_options_set(c->s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &one);
	ssh_options_set(c->s, SSH_OPTIONS_PASSWORD_AUTH, &no);
	ssh_options_set(c->s, SSH_OPTIONS_KBDINT_AUTH, &no);
	ssh_options_set(c->s, SSH_OPTIONS_GSSAPI_AUTH, &no);
	ssh_options_set(c->s, SSH_OPTIONS_PUBKEY_AUTH, &yes);
	rc = set_timeout(c->s, connect_ms);
	if (rc < 0)
		goto out;

	/* What the config made of host and port. */
	if (ssh_options_get(c->s, SSH_OPTIONS_HOST, &addr) < 0 || !addr) {
		rc = ml_err_set(ML_EINVALID, "no address for '%s'", o->host);
		goto out;
	}
	if (ssh_options_get_port(c->s, &port) < 0)
		port = 22;
	if ((rc = check_word("host address", addr)) < 0)
		goto out;
	c->name = make_name(o->host, addr, port);

	jo = *o;
	jo.jump_address = NULL;
	jo.jump_user = NULL;
	jo.jump_port = 0;
	jo.user = NULL;
	jo.port = 0;
	if (o->jump_address) {
		jo.host = jo.address = o->jump_address;
		jo.user = o->jump_user;
		jo.port = o->jump_port;
	} else if (ssh_options_get(c->s, SSH_OPTIONS_PROXYCOMMAND,
				   &proxy) == SSH_OK && proxy && *proxy &&
		   strcmp(proxy, "none")) {
		rc = parse_proxy(c->name, proxy, &jhost, &juser, &jport);
		if (rc < 0)
			goto out;
		jo.host = jo.address = jhost;
		jo.user = juser;
		jo.port = jport;
		if ((rc = check_word("jump host", jhost)) < 0 ||
		    (rc = check_word("jump user", juser)) < 0)
			goto out;
	} else {
		jo.host = NULL;
	}

	if (jo.host && depth > 0) {
		rc = ml_err_set(ML_EINVALID,
				"jump host %s needs a jump host itself, which "
				"mlctl does not support", c->name);
		goto out;
	} else if (jo.host) {
		rc = start_jump(c, &jo, addr, port, &fd);
	} else {
		rc = tcp_connect(&fd, c->name, addr, port, connect_ms);
	}
	if (rc < 0)
		goto out;
	c->fd = fd;
	fd = -1;
	if (ssh_options_set(c->s, SSH_OPTIONS_FD, &c->fd) < 0)
		goto bad_opt;

	t0 = ml_mono_ms();
	if (ssh_connect(c->s) != SSH_OK) {
		if (ml_mono_ms() - t0 >= connect_ms - 50)
			rc = ml_err_set(ML_EHOST, "%s did not answer within %s",
					c->name, fmt_ms(d, connect_ms));
		else
			rc = ml_err_set(ML_EHOST, "cannot connect to %s: %s",
					c->name, ssh_get_error(c->s));
		goto out;
	}
	if (ssh_options_get(c->s, SSH_OPTIONS_KNOWNHOSTS, &kh) == SSH_OK &&
	    kh) {
		c->known_hosts = ml_xstrdup(kh);
		ssh_string_free_char(kh);
	}
	if (!c->known_hosts)
		c->known_hosts = ml_xstrdup(o->known_hosts ?
					    o->known_hosts :
					    "~/.ssh/known_hosts");
	rc = check_host_key(c, o->trust_on_first_use);
	if (rc < 0)
		goto out;
	rc = authenticate(c, o->identity_file);
	if (rc < 0)
		goto out;
	rc = set_timeout(c->s, c->command_timeout_ms);
	if (rc < 0)
		goto out;
	c->last_sent_ms = ml_mono_ms();
	ml_debug("connected to %s in %lld ms", c->name,
		 (long long)(ml_mono_ms() - t0));
	*out = c;
	c = NULL;
	rc = 0;
	goto out;
bad_opt:
	rc = ml_err_set(ML_EINVALID, "bad ssh option for %s: %s",
			c->name ? c->name : o->host, ssh_get_error(c->s));
out:
	if (fd >= 0)
		close(fd);
	if (addr)
		ssh_string_free_char(addr);
	if (proxy)
		ssh_string_free_char(proxy);
	free(jhost);
	free(juser);
	ml_ssh_free(c);
	return rc;
}

int ml_ssh_connect(struct ml_ssh **out, const struct ml_ssh_opts *o)
{
	return connect_impl(out, o, 0);
}

const char *ml_ssh_name(const struct ml_ssh *s)
{
	return s->name;
}

void ml_ssh_free(struct ml_ssh *c)
{
	if (!c)
		return;
	if (c->s) {
		if (ssh_is_connected(c->s))
			ssh_disconnect(c->s);
		ssh_free(c->s);
	}
	/* Closing our end ends the pump's copy too (it reads EOF). */
	if (c->fd >= 0)
		close(c->fd);
	if (c->pump_started) {
		atomic_store(&c->pump_stop, 1);
		pthread_join(c->pump, NULL);
	}
	if (c->jump_chan) {
		ssh_channel_close(c->jump_chan);
		ssh_channel_free(c->jump_chan);
	}
	ml_ssh_free(c->jump);
	free(c->name);
	free(c->known_hosts);
	free(c);
}

/*
 * The pump: copies bytes between the socketpair end pump_fd and the
 * direct-tcpip channel of the jump session until both directions reached
 * EOF, an error happens, or ml_ssh_free asks it to stop. It is the only
 * user of the jump session while it runs. It closes pump_fd on the way out
 * so that the target session sees the connection end.
 */
static void *pump_main(void *arg)
{
	struct ml_ssh *c = arg;
	ssh_session js = c->jump->s;
	ssh_channel ch = c->jump_chan;
	int fd = c->pump_fd;
	char *up = ml_xmalloc(PUMP_BUF), *down = ml_xmalloc(PUMP_BUF);
	size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
	bool fd_eof = false, ch_eof = false;
	int64_t last = ml_mono_ms();

	ssh_set_log_callback(log_cb);
	for (;;) {
		bool progress = false;
		int r;
		ssize_t w;

		if (down_off == down_len && !ch_eof) {
			r = ssh_channel_read_nonblocking(ch, down, PUMP_BUF, 0);
			if (r == SSH_ERROR)
				break;
			if (r > 0) {
				down_len = (size_t)r;
				down_off = 0;
				progress = true;
			} else if (ssh_channel_is_eof(ch) ||
				   ssh_channel_is_closed(ch)) {
				ch_eof = true;
				shutdown(fd, SHUT_WR);
				progress = true;
			}
		}
		if (down_off < down_len) {
			/* send, not write: no SIGPIPE when the target
			 * session has gone */
			w = send(fd, down + down_off, down_len - down_off,
				 MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (w > 0) {
				down_off += (size_t)w;
				progress = true;
			}
		}
		if (up_off == up_len && !fd_eof) {
			w = recv(fd, up, PUMP_BUF, 0);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (w > 0) {
				up_len = (size_t)w;
				up_off = 0;
				progress = true;
			} else if (w == 0) {
				fd_eof = true;
				ssh_channel_send_eof(ch);
				progress = true;
			}
		}
		if (up_off < up_len) {
			uint32_t win = ssh_channel_window_size(ch);
			size_t k = up_len - up_off;

			if (win > 0) {
				if (k > win)
					k = win;
				r = ssh_channel_write(ch, up + up_off,
						      (uint32_t)k);
				if (r < 0)
					break;
				up_off += (size_t)r;
				if (r > 0)
					progress = true;
			}
		}
		if (fd_eof && ch_eof)
			break;
		if (atomic_load(&c->pump_stop) && up_off == up_len)
			break;
		if (progress) {
			last = ml_mono_ms();
		} else {
			struct pollfd p[2] = {
				{ .fd = ssh_get_fd(js), .events = POLLIN },
				{ .fd = fd, .events = 0 },
			};

			if (up_off == up_len && !fd_eof)
				p[1].events |= POLLIN;
			if (down_off < down_len)
				p[1].events |= POLLOUT;
			poll(p, 2, 50);
			if (c->keepalive_s > 0 &&
			    ml_mono_ms() - last >= (int64_t)c->keepalive_s * 1000) {
				ssh_send_ignore(js, "");
				last = ml_mono_ms();
			}
		}
	}
	close(fd);
	free(up);
	free(down);
	return NULL;
}

int ml_shell_quote_argv(struct ml_buf *out, const char *const argv[])
{
	size_t i;
	const char *p;
	int rc = 0;

	if (!argv || !argv[0])
		return ml_err_set(ML_EINVALID, "no command to run");
	for (i = 0; argv[i] && rc == 0; i++) {
		if (i)
			rc = ml_buf_addch(out, ' ');
		if (rc == 0)
			rc = ml_buf_addch(out, '\'');
		for (p = argv[i]; *p && rc == 0; p++) {
			if (*p == '\'')
				rc = ml_buf_addstr(out, "'\\''");
			else
				rc = ml_buf_addch(out, *p);
		}
		if (rc == 0)
			rc = ml_buf_addch(out, '\'');
	}
	if (rc < 0)
		return ml_err_set(rc, "command '%s' is too long (more than %zu "
				  "bytes once quoted)", argv[0], out->max);
	return 0;
}

static void keepalive(struct ml_ssh *s)
{
	int64_t t = ml_mono_ms();

	if (s->keepalive_s > 0 &&
	    t - s->last_sent_ms >= (int64_t)s->keepalive_s * 1000) {
		ssh_send_ignore(s->s, "");
		s->last_sent_ms = t;
	}
}

/* Put the n bytes at p in c's ring of the last STDERR_TAIL bytes. */
static void keep_tail(struct ml_ssh_chan *c, const char *p, size_t n)
{
	size_t at, k;

	if (n > STDERR_TAIL) {
		c->err_total += n - STDERR_TAIL;
		p += n - STDERR_TAIL;
		n = STDERR_TAIL;
	}
	while (n) {
		at = c->err_total % STDERR_TAIL;
		k = STDERR_TAIL - at < n ? STDERR_TAIL - at : n;
		memcpy(c->err_tail + at, p, k);
		c->err_total += k;
		p += k;
		n -= k;
	}
}

/* Read what stderr has without waiting, keeping the first STDERR_KEEP
 * bytes and the last STDERR_TAIL. Reading it also returns window space to
 * the peer. */
static int drain_stderr(struct ml_ssh_chan *c)
{
	char buf[4096];
	int r;

	for (;;) {
		r = ssh_channel_read_nonblocking(c->ch, buf, sizeof(buf), 1);
		if (r == SSH_ERROR)
			return ml_err_set(ML_EHOST, "connection to %s lost: %s",
					  c->ssh->name,
					  ssh_get_error(c->ssh->s));
		if (r <= 0)
			return 0;
		keep_tail(c, buf, (size_t)r);
		if (c->err.len + (size_t)r <= STDERR_KEEP) {
			ml_buf_add(&c->err, buf, (size_t)r);
		} else {
			size_t room = STDERR_KEEP - c->err.len;

			ml_buf_add(&c->err, buf, room);
			c->err_dropped += (size_t)r - room;
		}
	}
}

/*
 * Wait up to the channel's timeout for stdout (is_stderr 0) data and read
 * it into buf. 0 at end of output.
 */
static ssize_t chan_read_stream(struct ml_ssh_chan *c, void *buf, size_t n,
				int is_stderr)
{
	int64_t start = ml_mono_ms(), left;
	uint32_t k = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	int r, rc, slice;
	char d[32];

	for (;;) {
		if (!is_stderr) {
			rc = drain_stderr(c);
			if (rc < 0)
				return rc;
		}
		left = c->timeout_ms - (ml_mono_ms() - start);
		if (left <= 0)
			return ml_err_set(ML_EHOST,
					  "%s did not answer within %s "
					  "(running '%s')", c->ssh->name,
					  fmt_ms(d, c->timeout_ms), c->what);
		slice = left < READ_SLICE_MS ? (int)left : READ_SLICE_MS;
		r = ssh_channel_read_timeout(c->ch, buf, k, is_stderr, slice);
		if (r > 0) {
			c->ssh->last_sent_ms = ml_mono_ms();
			return r;
		}
		if (r == SSH_ERROR)
			return ml_err_set(ML_EHOST, "connection to %s lost: %s",
					  c->ssh->name,
					  ssh_get_error(c->ssh->s));
		if (ssh_channel_is_eof(c->ch) || ssh_channel_is_closed(c->ch)) {
			if (!is_stderr)
				drain_stderr(c);
			return 0;
		}
		keepalive(c->ssh);
	}
}

static ssize_t chan_read(void *ctx, void *buf, size_t n)
{
	return chan_read_stream(ctx, buf, n, 0);
}

static int chan_write(void *ctx, const void *buf, size_t n)
{
	struct ml_ssh_chan *c = ctx;
	const char *p = buf;
	char d[32];
	int w, rc;

	if (c->eof_sent)
		BUG("write after EOF on a channel");
	while (n) {
		uint32_t k = n > (1u << 20) ? (1u << 20) : (uint32_t)n;

		/* Blocks while the peer's window is full, at most the
		 * session timeout (the command timeout). */
		w = ssh_channel_write(c->ch, p, k);
		if (w == SSH_ERROR || ssh_channel_is_closed(c->ch))
			return ml_err_set(ML_EHOST,
					  "cannot send to '%s' on %s: %s",
					  c->what, c->ssh->name,
					  ssh_get_error(c->ssh->s));
		if (w == 0)
			return ml_err_set(ML_EHOST,
					  "%s did not accept data within %s "
					  "(running '%s')", c->ssh->name,
					  fmt_ms(d, c->ssh->command_timeout_ms),
					  c->what);
		p += w;
		n -= (size_t)w;
		c->ssh->last_sent_ms = ml_mono_ms();
		rc = drain_stderr(c);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Keep the name of the signal the remote command died of (letters and
 * digits only: it is shown). */
static void on_exit_signal(ssh_session session, ssh_channel channel,
			   const char *signal, int core, const char *errmsg,
			   const char *lang, void *userdata)
{
	struct ml_ssh_chan *c = userdata;
	size_t i, k = 0;

	ML_UNUSED(session);
	ML_UNUSED(channel);
	ML_UNUSED(errmsg);
	ML_UNUSED(lang);
	for (i = 0; signal && signal[i] && k < sizeof(c->exit_signal) - 1; i++)
		if (isalnum((unsigned char)signal[i]))
			c->exit_signal[k++] = signal[i];
	c->exit_signal[k] = '\0';
	if (!k)
		snprintf(c->exit_signal, sizeof(c->exit_signal), "?");
	c->exit_core = core != 0;
}

int ml_ssh_exec(struct ml_ssh_chan **out, struct ml_ssh *s,
		const char *const argv[])
{
	struct ml_buf cmd = ML_BUF_INIT(CMD_MAX);
	struct ml_ssh_chan *c = NULL;
	int rc;

	rc = ml_shell_quote_argv(&cmd, argv);
	if (rc < 0)
		goto out;
	c = ml_xcalloc(1, sizeof(*c));
	c->ssh = s;
	c->what = ml_xstrdup(argv[0]);
	c->timeout_ms = s->command_timeout_ms;
	ml_buf_init(&c->err, STDERR_KEEP);
	c->io.read = chan_read;
	c->io.write = chan_write;
	c->io.ctx = c;
	c->ch = ssh_channel_new(s->s);
	if (c->ch) {
		ssh_callbacks_init(&c->cb);
		c->cb.userdata = c;
		c->cb.channel_exit_signal_function = on_exit_signal;
		ssh_set_channel_callbacks(c->ch, &c->cb);
	}
	if (!c->ch || ssh_channel_open_session(c->ch) != SSH_OK ||
	    ssh_channel_request_exec(c->ch, ml_buf_str(&cmd)) != SSH_OK) {
		rc = ml_err_set(ML_EHOST, "cannot run '%s' on %s: %s", c->what,
				s->name, ssh_get_error(s->s));
		goto out;
	}
	ml_debug("%s: running %s", s->name, ml_buf_str(&cmd));
	*out = c;
	c = NULL;
	rc = 0;
out:
	ml_ssh_chan_free(c);
	ml_buf_release(&cmd);
	return rc;
}

struct ml_io *ml_ssh_chan_io(struct ml_ssh_chan *c)
{
	return &c->io;
}

void ml_ssh_chan_set_timeout(struct ml_ssh_chan *c, int timeout_ms)
{
	c->timeout_ms = norm_timeout(timeout_ms, c->ssh->command_timeout_ms);
}

const char *ml_ssh_chan_stderr(const struct ml_ssh_chan *c, size_t *len)
{
	if (len)
		*len = c->err.len;
	return ml_buf_str(&c->err);
}

static int send_eof(struct ml_ssh_chan *c)
{
	if (c->eof_sent)
		return 0;
	c->eof_sent = true;
	if (ssh_channel_is_closed(c->ch) || ssh_channel_is_eof(c->ch))
		return 0; /* the command already ended */
	if (ssh_channel_send_eof(c->ch) != SSH_OK)
		return ml_err_set(ML_EHOST, "cannot send EOF to '%s' on %s: %s",
				  c->what, c->ssh->name,
				  ssh_get_error(c->ssh->s));
	return 0;
}

/* The last non-empty line of what the command wrote to stderr, escaped,
 * at most 200 bytes of it: what a process says as it aborts, however much
 * it wrote before. */
static void last_stderr_line(struct ml_buf *out, const struct ml_ssh_chan *c)
{
	char tail[STDERR_TAIL];
	const char *p = tail, *end, *start;
	size_t n, at;

	if (!c->err_total)
		return;
	/* the ring in order, oldest byte first */
	n = c->err_total < STDERR_TAIL ? c->err_total : STDERR_TAIL;
	at = c->err_total < STDERR_TAIL ? 0 : c->err_total % STDERR_TAIL;
	memcpy(tail, c->err_tail + at, n - at);
	memcpy(tail + (n - at), c->err_tail, at);
	end = p + n;
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	start = end;
	while (start > p && start[-1] != '\n')
		start--;
	if (end - start > 200)
		start = end - 200;
	ml_escape(out, start, (size_t)(end - start));
}

int ml_ssh_chan_wait(struct ml_ssh_chan *c, int *exit_status)
{
	char buf[16384], d[32];
	ssize_t r;
	int rc, st;

	rc = send_eof(c);
	if (rc < 0)
		return rc;
	do {
		r = chan_read_stream(c, buf, sizeof(buf), 0);
	} while (r > 0);
	if (r < 0)
		return (int)r;
	/* Exit status comes before the channel close; libssh waits for it
	 * up to the session timeout (the command timeout). */
	st = ssh_channel_get_exit_status(c->ch);
	if (st < 0) {
		struct ml_buf last = ML_BUF_INIT(1024);

		last_stderr_line(&last, c);
		if (c->exit_signal[0])
			rc = ml_err_set(ML_EFAIL,
					"'%s' on %s was killed by SIG%s%s%s%s",
					c->what, c->ssh->name, c->exit_signal,
					c->exit_core ? " (core dumped)" : "",
					last.len ? "; its last words: " : "",
					ml_buf_str(&last));
		else if (ssh_channel_is_closed(c->ch))
			rc = ml_err_set(ML_EFAIL,
					"'%s' on %s ended without an exit "
					"status (killed by a signal?)%s%s",
					c->what, c->ssh->name,
					last.len ? "; its last words: " : "",
					ml_buf_str(&last));
		else
			rc = ml_err_set(ML_EHOST,
					"'%s' on %s closed its output but "
					"gave no exit status within %s",
					c->what, c->ssh->name,
					fmt_ms(d, c->timeout_ms));
		ml_buf_release(&last);
		return rc;
	}
	if (exit_status)
		*exit_status = st;
	return 0;
}

void ml_ssh_chan_free(struct ml_ssh_chan *c)
{
	if (!c)
		return;
	if (c->ch) {
		/* libssh may keep the channel until the peer's close arrives,
		 * and c goes now */
		ssh_remove_channel_callbacks(c->ch, &c->cb);
		if (ssh_channel_is_open(c->ch))
			ssh_channel_close(c->ch);
		ssh_channel_free(c->ch);
	}
	ml_buf_release(&c->err);
	free(c->what);
	free(c);
}

int ml_ssh_chan_close(struct ml_ssh_chan *c, int *exit_status)
{
	int rc = ml_ssh_chan_wait(c, exit_status);

	ml_ssh_chan_free(c);
	return rc;
}

static int append_out(struct ml_buf *b, const char *p, size_t n,
		      const char *what, const char *stream)
{
	int rc;

	if (!b)
		return 0;
	rc = ml_buf_add(b, p, n);
	if (rc < 0)
		return ml_err_set(rc, "%s of '%s' is larger than %zu bytes",
				  stream, what, b->max ? b->max
						       : ML_BUF_DEFAULT_MAX);
	return 0;
}

int ml_ssh_run(struct ml_ssh *s, const char *const argv[],
	       const void *stdin_data, size_t stdin_len, struct ml_buf *out,
	       struct ml_buf *err, int *exit_status)
{
	struct ml_ssh_chan *c = NULL;
	const char *in = stdin_data;
	char buf[16384];
	int64_t last = ml_mono_ms();
	bool out_eof = false, err_eof = false;
	char d[32];
	int rc, r;

	rc = ml_ssh_exec(&c, s, argv);
	if (rc < 0)
		goto out;
	/* Feed stdin only as far as the window allows and read both streams
	 * in between, so a command that answers before reading all of its
	 * input cannot deadlock with us. */
	while (!out_eof || !err_eof) {
		bool progress = false;

		if (stdin_len && !c->eof_sent) {
			uint32_t win = ssh_channel_window_size(c->ch);
			size_t k = stdin_len < win ? stdin_len : win;

			if (k > (1u << 20))
				k = 1u << 20;
			if (k) {
				r = ssh_channel_write(c->ch, in, (uint32_t)k);
				if (r < 0) {
					rc = ml_err_set(ML_EHOST,
							"cannot send to '%s' "
							"on %s: %s", argv[0],
							s->name,
							ssh_get_error(s->s));
					goto out;
				}
				in += r;
				stdin_len -= (size_t)r;
				progress = r > 0;
			}
		}
		if (!stdin_len && !c->eof_sent) {
			rc = send_eof(c);
			if (rc < 0)
				goto out;
		}
		for (int st = 0; st < 2; st++) {
			bool *eof = st ? &err_eof : &out_eof;

			if (*eof)
				continue;
			r = ssh_channel_read_nonblocking(c->ch, buf,
							 sizeof(buf), st);
			if (r == SSH_ERROR) {
				rc = ml_err_set(ML_EHOST,
						"connection to %s lost: %s",
						s->name, ssh_get_error(s->s));
				goto out;
			}
			if (r > 0) {
				rc = append_out(st ? err : out, buf, (size_t)r,
						argv[0], st ? "stderr"
							    : "output");
				if (rc < 0)
					goto out;
				progress = true;
			} else if (ssh_channel_is_eof(c->ch) ||
				   ssh_channel_is_closed(c->ch)) {
				*eof = true;
			}
		}
		if (progress) {
			last = ml_mono_ms();
			continue;
		}
		if (out_eof && err_eof)
			break;
		if (ml_mono_ms() - last >= c->timeout_ms) {
			rc = ml_err_set(ML_EHOST,
					"%s did not answer within %s "
					"(running '%s')", s->name,
					fmt_ms(d, c->timeout_ms), argv[0]);
			goto out;
		}
		/* Wait for anything: data on either stream or a window
		 * adjustment. */
		r = ssh_channel_poll_timeout(c->ch, READ_SLICE_MS, out_eof);
		if (r == SSH_ERROR) {
			rc = ml_err_set(ML_EHOST, "connection to %s lost: %s",
					s->name, ssh_get_error(s->s));
			goto out;
		}
		keepalive(s);
	}
	rc = ml_ssh_chan_wait(c, exit_status);
out:
	ml_ssh_chan_free(c);
	return rc;
}

/* mkdir -p over SFTP for the parent directories of path. */
static int sftp_mkdirs(struct ml_ssh *s, sftp_session sf, const char *path)
{
	char *dir = ml_xstrdup(path), *p;
	sftp_attributes a;
	int rc = 0;

	p = strrchr(dir, '/');
	if (!p || p == dir)
		goto out;
	*p = '\0';
	a = sftp_stat(sf, dir);
	if (a) {
		if (a->type != SSH_FILEXFER_TYPE_DIRECTORY)
			rc = ml_err_set(ML_EHOST, "'%s' on %s is not a "
					"directory", dir, s->name);
		sftp_attributes_free(a);
		goto out;
	}
	rc = sftp_mkdirs(s, sf, dir);
	if (rc < 0)
		goto out;
	if (sftp_mkdir(sf, dir, 0755) < 0) {
		/* Lost a race with another creator? */
		a = sftp_stat(sf, dir);
		if (a && a->type == SSH_FILEXFER_TYPE_DIRECTORY) {
			sftp_attributes_free(a);
			goto out;
		}
		if (a)
			sftp_attributes_free(a);
		rc = ml_err_set(ML_EHOST, "cannot create '%s' on %s: %s", dir,
				s->name, ssh_get_error(s->s));
	}
out:
	free(dir);
	return rc;
}

int ml_ssh_upload(struct ml_ssh *s, const char *local_path,
		  const char *remote_path, int mode)
{
	sftp_session sf = NULL;
	sftp_file f = NULL;
	char *tmp = NULL, *buf = NULL;
	const char *mv[] = { "mv", "-f", "--", NULL, remote_path, NULL };
	struct ml_buf err = ML_BUF_INIT(4096);
	uint32_t rnd = 0;
	int fd = -1, rc, st = -1;
	ssize_t n;
	bool tmp_made = false;

	fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				  errno, "cannot read '%s'", local_path);
		goto out;
	}
	if (!*remote_path || remote_path[strlen(remote_path) - 1] == '/') {
		rc = ml_err_set(ML_EINVALID, "bad remote path '%s'",
				remote_path);
		goto out;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)ml_mono_ms() ^ (uint32_t)getpid();
	tmp = ml_xasprintf("%s.tmp-%08x", remote_path, rnd);
	mv[3] = tmp;

	sf = sftp_new(s->s);
	if (!sf || sftp_init(sf) < 0) {
		rc = ml_err_set(ML_EHOST, "cannot start SFTP on %s: %s",
				s->name, ssh_get_error(s->s));
		goto out;
	}
	rc = sftp_mkdirs(s, sf, remote_path);
	if (rc < 0)
		goto out;
	f = sftp_open(sf, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (!f) {
		rc = ml_err_set(ML_EHOST, "cannot create '%s' on %s: %s", tmp,
				s->name, ssh_get_error(s->s));
		goto out;
	}
	tmp_made = true;
	buf = ml_xmalloc(SFTP_CHUNK);
	for (;;) {
		n = read(fd, buf, SFTP_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot read '%s'",
					  local_path);
			goto out;
		}
		if (n == 0)
			break;
		if (sftp_write(f, buf, (size_t)n) != n) {
			rc = ml_err_set(ML_EHOST, "cannot write '%s' on %s: %s",
					tmp, s->name, ssh_get_error(s->s));
			goto out;
		}
	}
	if (sftp_extension_supported(sf, "fsync@openssh.com", "1") &&
	    sftp_fsync(f) < 0) {
		rc = ml_err_set(ML_EHOST, "cannot sync '%s' on %s: %s", tmp,
				s->name, ssh_get_error(s->s));
		goto out;
	}
	if (sftp_close(f) < 0) {
		f = NULL;
		rc = ml_err_set(ML_EHOST, "cannot write '%s' on %s: %s", tmp,
				s->name, ssh_get_error(s->s));
		goto out;
	}
	f = NULL;
	if (sftp_chmod(sf, tmp, (mode_t)mode) < 0) {
		rc = ml_err_set(ML_EHOST, "cannot chmod '%s' on %s: %s", tmp,
				s->name, ssh_get_error(s->s));
		goto out;
	}
	/* SFTP v3 rename refuses an existing target and libssh 0.10 has no
	 * call for OpenSSH's posix-rename: mv does rename(2), atomic within
	 * the directory. Paths reach it as quoted argv, like every command. */
	rc = ml_ssh_run(s, mv, NULL, 0, NULL, &err, &st);
	if (rc < 0)
		goto out;
	if (st != 0) {
		rc = ml_err_set(ML_EHOST, "cannot rename '%s' to '%s' on %s: "
				"mv exited with %d: %.200s", tmp, remote_path,
				s->name, st, ml_buf_str(&err));
		goto out;
	}
	tmp_made = false;
	rc = 0;
out:
	if (f)
		sftp_close(f);
	if (tmp_made)
		sftp_unlink(sf, tmp);
	if (sf)
		sftp_free(sf);
	if (fd >= 0)
		close(fd);
	free(buf);
	free(tmp);
	ml_buf_release(&err);
	return rc;
}

int ml_ssh_host_key(char **out, const struct ml_ssh *s)
{
	ssh_key key = NULL;
	char *b64 = NULL;
	const char *type;
	int rc = 0;

	if (ssh_get_server_publickey(s->s, &key) < 0)
		return ml_err_set(ML_EHOST, "%s: no host key in the session",
				  s->name);
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (!type || ssh_pki_export_pubkey_base64(key, &b64) < 0) {
		rc = ml_err_set(ML_EHOST, "%s: cannot export the host key",
				s->name);
		goto out;
	}
	*out = ml_xasprintf("%s %s", type, b64);
out:
	ssh_string_free_char(b64);
	ssh_key_free(key);
	return rc;
}
