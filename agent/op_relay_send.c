/*
 * relay_send: stream blobs from this host's store to another host's, over
 * SSH, through that host's `mlctl-agent receive` (relay.h).
 *
 *	args:   {"deploy": ID, "host": address, "port": 22, "user": "root",
 *		 "host_key": "ssh-ed25519 AAAA..." (the receiver's host key,
 *		 as the controller knows it), "digests": ["sha256:..", ...],
 *		 "connect_timeout_s": 10, "follow": {"sha256:..": size, ...},
 *		 "stall_s": 30, "probe": false}
 *	result: {"host", "blobs": [{"digest", "size", "offset" (resumed
 *		 from), "sent" (bytes streamed), "existed"}], "bytes_sent",
 *		 "ms"}
 *
 * The OpenSSH client runs by argv, never through a shell: no config file
 * (-F none), the deploy's key only (relay_key), BatchMode, and
 * StrictHostKeyChecking against a known_hosts file that holds just the
 * host key given here (under a fixed alias), so the client trusts exactly
 * the host the controller trusts. The host cannot start with '-' and
 * comes after "--". The receiver's forced command (relay_allow) is the
 * receive mode of the agent, which speaks the usual protocol: hello,
 * blobs_have (what is missing, and how much of it a .part already holds),
 * then one blob_put per missing blob, resumed from that offset, with the
 * raw bytes (the fleet's own network is fast; zstd would cost the CPU that
 * the relay saves). The receiver checks every blob's digest before it
 * keeps it. A blob this host lacks is `not-found` before anything is sent.
 *
 * "follow" names blobs this host is itself still receiving (the pipelined
 * relay, apply/relay_plan.h), with their sizes: such a blob is read from
 * its .part as it grows and passed on at once, so a chain of hosts takes
 * about the time of one transfer. The receiver checks the digest as
 * always; a blob whose copy here stops growing for "stall_s" seconds, or
 * is given up (its .part deleted), fails the op with a message starting
 * "following blob": the fault is upstream, not this pair's.
 *
 * "probe": true only connects and says hello (no digests): the pipelined
 * relay tries each hop of its chain first, so that a host that cannot
 * reach the next is known before anyone waits on it.
 *
 * Memory: one 1 MiB read buffer, whatever the blobs' sizes. The op blocks
 * the session while it streams: the controller sets its channel timeout
 * from the bytes to send.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/log.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "agent/relay.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DIGESTS 1000
#define CHUNK ((size_t)1 << 20)
#define STDERR_SHOWN 400
#define FOLLOW_NAP_MAX_MS 20
#define FOLLOW_PREFIX "following blob "

struct send {
	const char *deploy, *host, *user, *host_key;
	int port, connect_timeout_s, stall_ms;
	bool probe; /* only connect and say hello */
	json_t *digests, *follow;
	char *dir, *key, *known_hosts, *errfile;
	pid_t pid;
	int to_fd, from_fd;
};

static int parse(struct send *s, json_t *args)
{
	json_t *v;
	size_t i;

	s->deploy = json_string_value(json_object_get(args, "deploy"));
	if (!ml_relay_deploy_valid(s->deploy))
		return ml_err_set(ML_EPROTO,
				  "relay_send needs 'deploy', an id of "
				  "letters, digits, '_', '.' and '-' (at most "
				  "%d)",
				  ML_RELAY_DEPLOY_MAX);
	s->host = json_string_value(json_object_get(args, "host"));
	if (!ml_relay_address_valid(s->host))
		return ml_err_set(ML_EPROTO,
				  "relay_send needs 'host', an IP address or a "
				  "host name (not starting with '-')");
	v = json_object_get(args, "port");
	s->port = v ? (int)json_integer_value(v) : 22;
	if ((v && !json_is_integer(v)) || s->port < 1 || s->port > 65535)
		return ml_err_set(ML_EPROTO,
				  "relay_send: 'port' must be from 1 to 65535");
	v = json_object_get(args, "user");
	s->user = v ? json_string_value(v) : "root";
	if (!ml_relay_user_valid(s->user))
		return ml_err_set(ML_EPROTO, "relay_send: 'user' must be a "
					     "login name ([a-z_][a-z0-9_.-]*)");
	s->host_key = json_string_value(json_object_get(args, "host_key"));
	if (!ml_relay_hostkey_valid(s->host_key))
		return ml_err_set(ML_EPROTO,
				  "relay_send needs 'host_key', the receiver's "
				  "host key as \"TYPE BASE64\" (no comment, "
				  "no newline)");
	v = json_object_get(args, "connect_timeout_s");
	s->connect_timeout_s = v ? (int)json_integer_value(v) : 10;
	if ((v && !json_is_integer(v)) || s->connect_timeout_s < 1 ||
	    s->connect_timeout_s > 300)
		return ml_err_set(ML_EPROTO, "relay_send: 'connect_timeout_s' "
					     "must be from 1 to 300");
	v = json_object_get(args, "probe");
	if (v && !json_is_boolean(v))
		return ml_err_set(ML_EPROTO,
				  "relay_send: 'probe' must be true or false");
	s->probe = json_is_true(v);
	if (s->probe)
		return 0; /* connect and hello only: no blobs */
	s->digests = json_object_get(args, "digests");
	if (!json_is_array(s->digests) || !json_array_size(s->digests) ||
	    json_array_size(s->digests) > MAX_DIGESTS)
		return ml_err_set(ML_EPROTO,
				  "relay_send needs 'digests', a list of 1 to "
				  "%d blob digests",
				  MAX_DIGESTS);
	json_array_foreach(s->digests, i, v)
	{
		if (!ml_blob_digest_valid(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "relay_send: digest %zu is not "
					  "\"sha256:\" and 64 lowercase hex "
					  "digits",
					  i + 1);
	}
	s->follow = json_object_get(args, "follow");
	if (s->follow) {
		const char *dg;

		if (!json_is_object(s->follow) ||
		    json_object_size(s->follow) > MAX_DIGESTS)
			return ml_err_set(ML_EPROTO,
					  "relay_send: 'follow' must be an "
					  "object of at most %d digests and "
					  "their sizes",
					  MAX_DIGESTS);
		json_object_foreach(s->follow, dg, v)
		{
			if (!ml_blob_digest_valid(dg) || !json_is_integer(v) ||
			    json_integer_value(v) < 0 ||
			    (uint64_t)json_integer_value(v) > ML_BLOB_MAX_SIZE)
				return ml_err_set(
					ML_EPROTO,
					"relay_send: 'follow' maps blob "
					"digests to sizes (0 to 2^53 bytes)");
		}
	}
	v = json_object_get(args, "stall_s");
	s->stall_ms = v ? (int)json_integer_value(v) * 1000 : 30000;
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
		  json_integer_value(v) > 600))
		return ml_err_set(
			ML_EPROTO,
			"relay_send: 'stall_s' must be from 1 to 600");
	return 0;
}

/* The size of a blob to follow, or -1 when it is not one. */
static int64_t follow_size(const struct send *s, const char *digest)
{
	json_t *v = s->follow ? json_object_get(s->follow, digest) : NULL;

	return v ? (int64_t)json_integer_value(v) : -1;
}

static int write_known_hosts(struct send *s)
{
	char *line = ml_xasprintf("%s %s\n", ML_RELAY_HOST_ALIAS, s->host_key);
	int fd, rc = 0;

	unlink(s->known_hosts);
	fd = open(s->known_hosts,
		  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'",
				  s->known_hosts);
	if (fd >= 0)
		close(fd);
	free(line);
	return rc;
}

/* Start the OpenSSH client; s->to_fd is its stdin, s->from_fd its stdout,
 * its stderr goes to s->errfile. */
static int start_ssh(struct send *s)
{
	const char *bin = getenv("MLCTL_RELAY_SSH_BIN");
	char port[16], cto[32], kh[4200], alias[64];
	const char *argv[48];
	posix_spawn_file_actions_t fa;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, rc;
	size_t n = 0;

	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(cto, sizeof(cto), "ConnectTimeout=%d", s->connect_timeout_s);
	snprintf(kh, sizeof(kh), "UserKnownHostsFile=%s", s->known_hosts);
	snprintf(alias, sizeof(alias), "HostKeyAlias=%s", ML_RELAY_HOST_ALIAS);
	argv[n++] = bin && *bin ? bin : "ssh";
	argv[n++] = "-F";
	argv[n++] = "none";
	argv[n++] = "-T";
	argv[n++] = "-x";
	argv[n++] = "-a";
	argv[n++] = "-i";
	argv[n++] = s->key;
	/* AES-GCM first: with AES-NI it costs a fraction of the CPU of
	 * chacha20-poly1305 (OpenSSH's first choice), and CPU, not the
	 * fleet's network, is what bounds a relay */
	argv[n++] = "-c";
	argv[n++] = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
		    "chacha20-poly1305@openssh.com";
	argv[n++] = "-o";
	argv[n++] = "Compression=no";
	argv[n++] = "-o";
	argv[n++] = "IdentitiesOnly=yes";
	argv[n++] = "-o";
	argv[n++] = "IdentityAgent=none";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = "-o";
	argv[n++] = "StrictHostKeyChecking=yes";
	argv[n++] = "-o";
	argv[n++] = kh;
	argv[n++] = "-o";
	argv[n++] = "GlobalKnownHostsFile=/dev/null";
	argv[n++] = "-o";
	argv[n++] = alias;
	argv[n++] = "-o";
	argv[n++] = "CheckHostIP=no";
	argv[n++] = "-o";
	argv[n++] = "UpdateHostKeys=no";
	argv[n++] = "-o";
	argv[n++] = cto;
	argv[n++] = "-o";
	argv[n++] = "ServerAliveInterval=15";
	argv[n++] = "-o";
	argv[n++] = "ServerAliveCountMax=3";
	argv[n++] = "-o";
	argv[n++] = "LogLevel=ERROR";
	argv[n++] = "-p";
	argv[n++] = port;
	argv[n++] = "-l";
	argv[n++] = s->user;
	argv[n++] = "--";
	argv[n++] = s->host;
	argv[n] = NULL;
	if (s->host[0] == '-')
		BUG("relay_send: unchecked host");
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot make a pipe");
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, s->errfile,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawnp(&s->pid, argv[0], &fa, NULL, (char *const *)argv,
			  environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		rc = ml_err_errno(ML_EFAIL, rc, "cannot run '%s'", argv[0]);
		s->pid = 0;
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	s->to_fd = in[1];
	s->from_fd = out[0];
	return 0;
fail:
	if (in[0] >= 0)
		close(in[0]), close(in[1]);
	if (out[0] >= 0)
		close(out[0]), close(out[1]);
	return rc;
}

/* Close our ends and reap ssh, killing it after a few seconds. */
static void stop_ssh(struct send *s, int *status)
{
	int st = 0, i;

	if (s->to_fd >= 0)
		close(s->to_fd);
	if (s->from_fd >= 0)
		close(s->from_fd);
	s->to_fd = s->from_fd = -1;
	*status = -1;
	if (s->pid <= 0)
		return;
	for (i = 0; i < 100; i++) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid)
			break;
		if (r < 0 && errno != EINTR)
			break;
		if (i == 99) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
		}
		usleep(50000);
	}
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	s->pid = 0;
}

/* What ssh said on stderr, one line, escaped, for a message. */
static void ssh_said(struct ml_buf *out, const char *errfile)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	size_t i, n;

	if (ml_buf_read_file(&b, errfile) < 0)
		goto out;
	n = b.len < STDERR_SHOWN ? b.len : STDERR_SHOWN;
	for (i = 0; i < n; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = i + 1 < n ? ' ' : '\0';
	while (n && (b.data[n - 1] == ' ' || !b.data[n - 1]))
		n--;
	ml_escape(out, b.data, n);
out:
	ml_buf_release(&b);
}

/* Wait for digest's final file or .part to appear here; *fd is open. */
static int follow_open(struct ml_blobstore *store, const char *dg, int *fd,
		       bool *complete, int stall_ms)
{
	int64_t t0 = ml_mono_ms();
	int nap = 1, rc;

	for (;;) {
		rc = ml_blobstore_open_read(store, dg, fd, complete);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if (ml_mono_ms() - t0 > stall_ms)
			return ml_err_set(ML_EFAIL,
					  FOLLOW_PREFIX "%.19s: none of it "
							"arrived here in %d s",
					  dg, stall_ms / 1000);
		usleep((useconds_t)nap * 1000);
		nap = nap * 2 > FOLLOW_NAP_MAX_MS ? FOLLOW_NAP_MAX_MS : nap * 2;
	}
}

/*
 * At the end of what a followed .part holds: 0 to wait and read again, or
 * the failure (its put gave it up, it was stored shorter, it stalled).
 */
static int follow_check(struct ml_blobstore *store, const char *dg, int fd,
			uint64_t pos, uint64_t size, int64_t idle_ms,
			int stall_ms)
{
	uint64_t have;
	int64_t part;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot stat blob %.19s",
				    dg);
	if ((uint64_t)st.st_size > pos)
		return 0; /* it grew since the read */
	if (st.st_nlink == 0)
		return ml_err_set(
			ML_EFAIL,
			FOLLOW_PREFIX "%.19s: its copy here was "
				      "given up at %llu of %llu bytes",
			dg, (unsigned long long)pos, (unsigned long long)size);
	if (ml_blobstore_stat(store, dg, &have, &part) == 1 && have != size)
		return ml_err_set(ML_EFAIL,
				  FOLLOW_PREFIX "%.19s: stored here with %llu "
						"bytes, not %llu",
				  dg, (unsigned long long)have,
				  (unsigned long long)size);
	if (idle_ms > stall_ms)
		return ml_err_set(ML_EFAIL,
				  FOLLOW_PREFIX "%.19s: no byte for %d s at "
						"%llu of %llu bytes",
				  dg, stall_ms / 1000, (unsigned long long)pos,
				  (unsigned long long)size);
	return 0;
}

/*
 * Stream [offset, size) of a blob, then the end marker: from its final
 * file, or, when follow is set, from its .part as a put appends to it.
 */
static int stream(struct ml_io *io, struct ml_blobstore *store, const char *dg,
		  uint64_t offset, uint64_t size, bool follow, int stall_ms,
		  int64_t *sent, char *buf)
{
	struct ml_buf path = ML_BUF_INIT(4096);
	uint64_t pos = offset;
	int64_t last = ml_mono_ms();
	bool complete = true;
	int fd = -1, rc = 0, nap = 1;
	ssize_t r;

	if (follow) {
		rc = follow_open(store, dg, &fd, &complete, stall_ms);
		if (rc < 0)
			goto out;
	} else {
		ml_blobstore_path(&path, store, dg);
		fd = open(ml_buf_str(&path), O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
					  ml_buf_str(&path));
			goto out;
		}
	}
	while (pos < size) {
		uint64_t left = size - pos;

		r = pread(fd, buf, left < CHUNK ? (size_t)left : CHUNK,
			  (off_t)pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			rc = ml_frame_write(io, ML_FRAME_DATA, buf, (size_t)r);
			if (rc < 0)
				goto out;
			pos += (uint64_t)r;
			*sent += r;
			last = ml_mono_ms();
			nap = 1;
			continue;
		}
		if (r < 0 || complete) {
			rc = ml_err_errno(ML_EFAIL, r < 0 ? errno : EIO,
					  "cannot read blob %.19s", dg);
			goto out;
		}
		rc = follow_check(store, dg, fd, pos, size, ml_mono_ms() - last,
				  stall_ms);
		if (rc < 0)
			goto out;
		usleep((useconds_t)nap * 1000);
		nap = nap * 2 > FOLLOW_NAP_MAX_MS ? FOLLOW_NAP_MAX_MS : nap * 2;
	}
	rc = ml_frame_write(io, ML_FRAME_DATA, "", 0);
out:
	if (fd >= 0)
		close(fd);
	ml_buf_release(&path);
	return rc;
}

/* The whole exchange with the receiver; blobs gets one entry per blob. */
static int talk(struct send *s, struct ml_blobstore *store, json_t *blobs,
		int64_t *sent, int timeout_ms)
{
	struct ml_io io;
	struct ml_io_fd fdctx;
	uint64_t next_id = 1, id;
	json_t *have = NULL, *missing, *partial, *v, *put = NULL;
	char *buf = ml_xmalloc(CHUNK);
	size_t i;
	int rc;

	ml_io_fd_init(&io, &fdctx, s->from_fd, s->to_fd, timeout_ms);
	rc = ml_proto_hello(&io, &next_id, NULL);
	if (rc < 0 || s->probe)
		goto out;
	rc = ml_proto_call(&io, &next_id, "blobs_have",
			   json_pack("{s:O}", "digests", s->digests), &have);
	if (rc < 0)
		goto out;
	missing = json_object_get(have, "missing");
	partial = json_object_get(have, "partial");
	json_array_foreach(s->digests, i, v)
	{
		const char *dg = json_string_value(v);
		json_t *p = json_object_get(partial, dg);
		bool need = false, following;
		uint64_t size = 0, off;
		int64_t part, before = *sent;
		size_t k;
		json_t *m;

		json_array_foreach(missing, k, m) need =
			need || !strcmp(json_string_value(m) ?: "", dg);
		following = ml_blobstore_stat(store, dg, &size, &part) != 1 &&
			    follow_size(s, dg) >= 0;
		if (following)
			size = (uint64_t)follow_size(s, dg);
		off = json_is_integer(p) && json_integer_value(p) >= 0 &&
				      (uint64_t)json_integer_value(p) <= size
			      ? (uint64_t)json_integer_value(p)
			      : 0;
		if (need) {
			rc = ml_proto_request(
				&io, &next_id, "blob_put",
				json_pack("{s:s,s:I,s:I,s:s}", "digest", dg,
					  "size", (json_int_t)size, "offset",
					  (json_int_t)off, "compression",
					  "none"),
				&id);
			if (rc == 0)
				rc = stream(&io, store, dg, off, size,
					    following, s->stall_ms, sent, buf);
			if (rc == 0)
				rc = ml_proto_reply(&io, id, "blob_put", &put);
			if (rc < 0)
				goto out;
		}
		json_array_append_new(
			blobs,
			json_pack("{s:s,s:I,s:I,s:I,s:b}", "digest", dg, "size",
				  (json_int_t)size, "offset",
				  (json_int_t)(need ? off : size), "sent",
				  (json_int_t)(*sent - before), "existed",
				  !need || json_is_true(json_object_get(
						   put, "existed"))));
		json_decref(put);
		put = NULL;
	}
out:
	json_decref(have);
	json_decref(put);
	free(buf);
	return rc;
}

static int op_relay_send(struct ml_agent *a, json_t *args, json_t **result)
{
	struct send s = {.to_fd = -1, .from_fd = -1};
	struct ml_buf dir = ML_BUF_INIT(4096), said = ML_BUF_INIT(4096);
	struct ml_blobstore *store = NULL;
	struct timespec t0, t1;
	json_t *blobs = NULL, *v;
	int64_t sent = 0;
	uint64_t size;
	int64_t part;
	struct stat st;
	int rc, status = -1;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = parse(&s, args);
	if (rc < 0)
		return rc;
	rc = ml_relay_dir(&dir, a, true);
	if (rc < 0)
		goto out;
	s.key = ml_xasprintf("%s/%s.key", ml_buf_str(&dir), s.deploy);
	s.known_hosts =
		ml_xasprintf("%s/%s.known_hosts", ml_buf_str(&dir), s.deploy);
	s.errfile = ml_xasprintf("%s/%s.ssh-%ld.err", ml_buf_str(&dir),
				 s.deploy, (long)getpid());
	if (stat(s.key, &st) < 0) {
		rc = ml_err_set(ML_ENOTFOUND,
				"relay_send: no relay key for deploy '%s'; "
				"call relay_key first",
				s.deploy);
		goto out;
	}
	ml_blobstore_open(&store, a->state_dir);
	json_array_foreach(s.digests, i, v)
	{
		rc = ml_blobstore_stat(store, json_string_value(v), &size,
				       &part);
		if (rc < 0)
			goto out;
		if (rc == 0 && follow_size(&s, json_string_value(v)) < 0) {
			rc = ml_err_set(ML_ENOTFOUND,
					"relay_send: this host does not have "
					"blob %s",
					json_string_value(v));
			goto out;
		}
	}
	rc = write_known_hosts(&s);
	if (rc < 0)
		goto out;
	rc = start_ssh(&s);
	if (rc < 0)
		goto out;
	blobs = json_array();
	rc = talk(&s, store, blobs, &sent,
		  (int)(a->stall_timeout_ms * 2 > 120000
				? a->stall_timeout_ms * 2
				: 120000));
	stop_ssh(&s, &status);
	if (rc < 0) {
		struct ml_err_saved why = {0};

		ml_err_save(&why);
		ssh_said(&said, s.errfile);
		if (!strncmp(why.msg, FOLLOW_PREFIX, strlen(FOLLOW_PREFIX)))
			/* ours, not the link's: what ssh or the receiver
			 * said after we hung up is beside the point */
			rc = ml_err_set(why.code, "relay to %s failed: %s",
					s.host, why.msg);
		else if (said.len)
			rc = ml_err_set(ML_EHOST,
					"relay to %s failed: %s (ssh exit %d)",
					s.host, ml_buf_str(&said), status);
		else
			rc = ml_err_set(status == 255 ? ML_EHOST : why.code,
					"relay to %s failed: %s", s.host,
					why.msg);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*result = json_pack("{s:s,s:o,s:I,s:I}", "host", s.host, "blobs", blobs,
			    "bytes_sent", (json_int_t)sent, "ms",
			    (json_int_t)((t1.tv_sec - t0.tv_sec) * 1000 +
					 (t1.tv_nsec - t0.tv_nsec) / 1000000));
	blobs = NULL;
	ml_debug("relayed %lld bytes to %s", (long long)sent, s.host);
out:
	if (s.pid > 0)
		stop_ssh(&s, &status);
	if (s.errfile)
		unlink(s.errfile);
	if (s.known_hosts)
		unlink(s.known_hosts);
	json_decref(blobs);
	ml_blobstore_free(store);
	free(s.key);
	free(s.known_hosts);
	free(s.errfile);
	ml_buf_release(&dir);
	ml_buf_release(&said);
	return rc;
}

const struct ml_agent_op ml_agent_op_relay_send = {
	.name = "relay_send",
	.summary = "stream blobs to another host over ssh (its receive mode)",
	.run = op_relay_send,
};
