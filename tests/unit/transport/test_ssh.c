/*
 * orchestrator/transport/ssh.c against a real OpenSSH sshd on 127.0.0.1
 * (tests/support/sshd.c): commands and exit codes, argv quoting checked on
 * the remote side, several channels per connection, a channel as a stream,
 * SFTP upload, host key checks (unknown, trust on first use, hashed,
 * changed), login failures, timeouts against a listener of our own that
 * never speaks, a jump host (a second sshd), ssh config files, and
 * connections from parallel workers. Traffic goes to loopback only.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/sha256.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/transport/transport.h"
#include "tests/support/sshd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

static struct ml_test_sshd sshd;  /* the target */
static struct ml_test_sshd jumpd; /* a second one, as a jump host */
static char *tmpdir;
static const char *skip_why;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Like assert_int_equal(expr, 0), printing our error message first. */
#define assert_ok(expr)                                                    \
	do {                                                               \
		int rc_ = (int)(expr);                                     \
		if (rc_ != 0)                                              \
			print_message("%s: %d: %s\n", #expr, rc_,        \
				      ml_err_msg());                       \
		assert_int_equal(rc_, 0);                                  \
	} while (0)

static void opts_for(struct ml_ssh_opts *o, const struct ml_test_sshd *d)
{
	memset(o, 0, sizeof(*o));
	o->host = "vm1";
	o->address = "127.0.0.1";
	o->port = d->port;
	o->user = d->user;
	o->identity_file = d->client_key;
	o->known_hosts = d->known_hosts;
	o->connect_timeout_ms = 5000;
	o->command_timeout_ms = 30000;
	o->ssh_config = "none";
}

static struct ml_ssh *connect_ok(const struct ml_ssh_opts *o)
{
	struct ml_ssh *s = NULL;
	int rc = ml_ssh_connect(&s, o);

	if (rc < 0)
		fprintf(stderr, "connect: %s\n", ml_err_msg());
	assert_int_equal(rc, 0);
	assert_non_null(s);
	return s;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static int group_setup(void **state)
{
	char tmpl[] = "/tmp/mlctl-test-ssh-XXXXXX";

	unsetenv("SSH_AUTH_SOCK");
	if (!ml_test_sshd_usable(&skip_why))
		return 0;
	if (ml_test_sshd_start(&sshd, NULL) < 0)
		return -1;
	if (ml_test_sshd_start(&jumpd, &sshd) < 0)
		return -1;
	if (!mkdtemp(tmpl))
		return -1;
	tmpdir = ml_xstrdup(tmpl);
	return 0;
}

static int group_teardown(void **state)
{
	const char *rm[] = { "/bin/rm", "-rf", tmpdir, NULL };

	ml_test_sshd_stop(&sshd);
	ml_test_sshd_stop(&jumpd);
	if (tmpdir && !strncmp(tmpdir, "/tmp/mlctl-test-ssh-", 20))
		ml_test_sshd_run(rm, NULL);
	free(tmpdir);
	return 0;
}

#define NEED_SSHD()                                                        \
	do {                                                               \
		if (skip_why) {                                            \
			print_message("skipped: %s\n", skip_why);          \
			skip();                                            \
		}                                                          \
	} while (0)

static void test_ssh__quote_argv(void **state)
{
	struct ml_buf b = ML_BUF_INIT(1024);
	const char *argv[] = { "printf", "it's", "", "a b", NULL };
	const char *none[] = { NULL };

	assert_int_equal(ml_shell_quote_argv(&b, argv), 0);
	assert_string_equal(ml_buf_str(&b),
			    "'printf' 'it'\\''s' '' 'a b'");
	ml_buf_reset(&b);
	assert_int_equal(ml_shell_quote_argv(&b, none), ML_EINVALID);
	ml_buf_release(&b);
}

static void test_ssh__refuses_dash_names(void **state)
{
	struct ml_ssh_opts o = { .host = "vm1", .address = "-oProxyCommand=x",
				 .ssh_config = "none" };
	struct ml_ssh *s = NULL;

	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "starts with '-'"));
	assert_null(s);
	o.address = "127.0.0.1";
	o.user = "-lroot";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	o.user = NULL;
	o.jump_address = "-J";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	o.jump_address = NULL;
	o.address = "root@127.0.0.1";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "contains '@'"));
	o.address = "127.0.0.1";
	o.host = "vm 1";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
}

static void test_ssh__run_exit_codes(void **state)
{
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	struct ml_buf out = ML_BUF_INIT(1 << 20), err = ML_BUF_INIT(1 << 20);
	const char *echo[] = { "echo", "hello", NULL };
	const char *fail[] = { "sh", "-c", "echo oops >&2; exit 3", NULL };
	const char *missing[] = { "no-such-command-mlctl", NULL };
	const char *sig[] = { "sh", "-c", "echo 'first'; echo 'going\033]0;x\a' >&2; kill -9 $$", NULL };
	int st = -1;

	NEED_SSHD();
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	assert_non_null(strstr(ml_ssh_name(s), "'vm1' (127.0.0.1:"));
	assert_ok(ml_ssh_run(s, echo, NULL, 0, &out, &err, &st));
	assert_int_equal(st, 0);
	assert_string_equal(ml_buf_str(&out), "hello\n");
	assert_int_equal(err.len, 0);

	ml_buf_reset(&out);
	assert_ok(ml_ssh_run(s, fail, NULL, 0, &out, &err, &st));
	assert_int_equal(st, 3);
	assert_string_equal(ml_buf_str(&err), "oops\n");

	assert_ok(ml_ssh_run(s, missing, NULL, 0, NULL, NULL, &st));
	assert_int_equal(st, 127);

	assert_int_equal(ml_ssh_run(s, sig, NULL, 0, NULL, NULL, &st),
			 ML_EFAIL);
	/* the signal by name */
	assert_non_null(strstr(ml_err_msg(), "was killed by SIGKILL"));
	/* a channel (the agent's kind) also keeps the last line the
	 * command wrote to stderr, escaped */
	{
		struct ml_ssh_chan *c = NULL;

		assert_ok(ml_ssh_exec(&c, s, sig));
		assert_int_equal(ml_ssh_chan_close(c, &st), ML_EFAIL);
		assert_non_null(strstr(ml_err_msg(),
				       "was killed by SIGKILL; its last words: "
				       "going\\x1b]0;x\\x07"));
	}
	/* the last words come after 100 KB of stderr (more than is kept
	 * from its start) */
	{
		const char *chatty[] = {
			"sh", "-c",
			"head -c 100000 /dev/zero | tr '\\0' x >&2; "
			"echo >&2; echo 'the end' >&2; kill -9 $$", NULL
		};
		struct ml_ssh_chan *c = NULL;

		assert_ok(ml_ssh_exec(&c, s, chatty));
		assert_int_equal(ml_ssh_chan_close(c, &st), ML_EFAIL);
		assert_non_null(strstr(ml_err_msg(),
				       "was killed by SIGKILL; its last words: "
				       "the end"));
	}

	ml_buf_release(&out);
	ml_buf_release(&err);
	ml_ssh_free(s);
}

/*
 * Closing a host session is cleanup: an agent that dies as it is closed
 * does not replace the error the caller is about to report (a deploy that
 * failed must say why it failed, not that an agent died afterwards).
 */
static void test_ssh__closing_a_session_keeps_the_callers_error(void **state)
{
	const char *dies[] = { "sh", "-c", "kill -9 $$", NULL };
	struct ml_target t = { .name = (char *)"vm1" };
	struct ml_host_session h = { .target = &t };
	struct ml_ssh_opts o;

	NEED_SSHD();
	opts_for(&o, &sshd);
	h.ssh = connect_ok(&o);
	assert_ok(ml_ssh_exec(&h.chan, h.ssh, dies));
	h.io = ml_ssh_chan_io(h.chan);
	ml_err_set(ML_EINVALID, "load balancer 'lb1': the real cause");
	ml_host_close(&h);
	assert_int_equal(ml_err_code(), ML_EINVALID);
	assert_string_equal(ml_err_msg(),
			    "load balancer 'lb1': the real cause");
	assert_null(h.ssh);
}

/*
 * A direct connection gives up on a host that vanishes (no RST, no FIN)
 * after ML_SSH_DEAD_PEER_S: keepalive probes after a third of it, and as
 * long for data the peer does not acknowledge. Without this the kernel's
 * defaults (two hours of idle, about 15 minutes of retransmits) hold a
 * deploy on a dead host.
 */
/* An int socket option of fd, asserted readable. */
static int sockopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t n = sizeof(v);

	assert_int_equal(getsockopt(fd, level, name, &v, &n), 0);
	return v;
}

static void test_ssh__vanished_host_is_given_up(void **state)
{
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	int fd, idle, intvl, cnt;

	(void)state;
	NEED_SSHD();
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	fd = ml_ssh_socket(s);
	assert_int_equal(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	idle = sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	intvl = sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL);
	cnt = sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT);
	assert_int_equal(idle, ML_SSH_DEAD_PEER_S / 3);
	/* the last probe goes unanswered by the deadline, not long after */
	assert_true(idle + intvl * cnt <= ML_SSH_DEAD_PEER_S);
	assert_true(idle + intvl * (cnt + 1) > ML_SSH_DEAD_PEER_S);
	/* TCP_USER_TIMEOUT is an unsigned int of milliseconds */
	assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT),
			 ML_SSH_DEAD_PEER_S * 1000);
	ml_ssh_free(s);
}

static void test_ssh__argv_reaches_remote_exactly(void **state)
{
	const char *args[] = {
		"a b", "it's", "\"dq\"", "$HOME", "${PATH}", "; echo pwned",
		"`id`", "$(id)", "new\nline", "", "*", "\\", "-n", "!x",
		"tab\there", "'", "''", "a'b'c", "#comment", "~", "&&", "|",
		"\xc3\xa9t\xc3\xa9", NULL,
	};
	const char *argv[ML_ARRAY_SIZE(args) + 2];
	struct ml_buf out = ML_BUF_INIT(1 << 20), want = ML_BUF_INIT(1 << 20);
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	size_t i;
	int st = -1;

	NEED_SSHD();
	argv[0] = "printf";
	argv[1] = "%s\\n";
	for (i = 0; args[i]; i++) {
		argv[i + 2] = args[i];
		ml_buf_addf(&want, "%s\n", args[i]);
	}
	argv[i + 2] = NULL;
	/* argv[1] itself must arrive as the 4 characters %s\n */
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	assert_ok(ml_ssh_run(s, argv, NULL, 0, &out, NULL, &st));
	assert_int_equal(st, 0);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.data, want.data, want.len);
	ml_buf_release(&out);
	ml_buf_release(&want);
	ml_ssh_free(s);
}

static void test_ssh__stdin_and_many_channels(void **state)
{
	struct ml_buf out = ML_BUF_INIT(8 << 20);
	const char *cat[] = { "cat", NULL };
	const char *wc[] = { "wc", "-c", NULL };
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	struct ml_ssh_chan *a = NULL, *b = NULL;
	size_t n = 3 << 20, i;
	char *data = ml_xmalloc(n), buf[64];
	int st = -1;

	NEED_SSHD();
	for (i = 0; i < n; i++)
		data[i] = (char)(i * 7 + (i >> 10));
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	/* More than a window of stdin, echoed back while we still write. */
	assert_ok(ml_ssh_run(s, cat, data, n, &out, NULL, &st));
	assert_int_equal(st, 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, data, n);

	/* Commands one after the other on the same connection. */
	for (i = 0; i < 4; i++) {
		ml_buf_reset(&out);
		assert_ok(ml_ssh_run(s, wc, data, i * 1000, &out, NULL,
					    &st));
		snprintf(buf, sizeof(buf), "%zu\n", i * 1000);
		assert_string_equal(ml_buf_str(&out), buf);
	}

	/* Two channels open at the same time. */
	assert_ok(ml_ssh_exec(&a, s, cat));
	assert_ok(ml_ssh_exec(&b, s, cat));
	assert_int_equal(ml_ssh_chan_io(a)->write(ml_ssh_chan_io(a)->ctx,
						  "A", 1), 0);
	assert_int_equal(ml_ssh_chan_io(b)->write(ml_ssh_chan_io(b)->ctx,
						  "B", 1), 0);
	assert_int_equal(ml_io_read_full(ml_ssh_chan_io(b), buf, 1, NULL), 0);
	assert_int_equal(buf[0], 'B');
	assert_int_equal(ml_io_read_full(ml_ssh_chan_io(a), buf, 1, NULL), 0);
	assert_int_equal(buf[0], 'A');
	assert_ok(ml_ssh_chan_close(a, &st));
	assert_int_equal(st, 0);
	assert_ok(ml_ssh_chan_close(b, &st));

	free(data);
	ml_buf_release(&out);
	ml_ssh_free(s);
}

/* The channel as the agent's stream: length-prefixed frames through cat. */
static void test_ssh__channel_as_stream(void **state)
{
	const char *cat[] = { "cat", NULL };
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	struct ml_ssh_chan *c;
	struct ml_io *io;
	char *frame = ml_xmalloc(300000), *back = ml_xmalloc(300000);
	uint32_t len, got;
	size_t k, i;
	bool eof = false;
	int st = -1;

	NEED_SSHD();
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	assert_ok(ml_ssh_exec(&c, s, cat));
	io = ml_ssh_chan_io(c);
	for (k = 0; k < 40; k++) {
		len = (uint32_t)((k * 7919) % 300000);
		for (i = 0; i < len; i++)
			frame[i] = (char)(k + i);
		assert_int_equal(io->write(io->ctx, &len, 4), 0);
		assert_int_equal(io->write(io->ctx, frame, len), 0);
		assert_int_equal(ml_io_read_full(io, &got, 4, NULL), 0);
		assert_int_equal(got, len);
		assert_int_equal(ml_io_read_full(io, back, got, NULL), 0);
		assert_memory_equal(back, frame, len);
	}
	/* After our EOF, cat ends: the stream ends too. */
	assert_ok(ml_ssh_chan_wait(c, &st));
	assert_int_equal(st, 0);
	assert_int_equal(ml_io_read_full(io, &got, 4, &eof), ML_EPROTO);
	assert_true(eof);
	ml_ssh_chan_free(c);
	free(frame);
	free(back);
	ml_ssh_free(s);
}

static void test_ssh__silent_command_times_out(void **state)
{
	const char *slp[] = { "sleep", "3", NULL };
	const char *noisy[] = { "sh", "-c", "echo started >&2; echo out",
				NULL };
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	struct ml_ssh_chan *c;
	struct ml_io *io;
	char buf[16];
	int64_t t0;
	ssize_t r;
	size_t elen;

	NEED_SSHD();
	opts_for(&o, &sshd);
	o.command_timeout_ms = 400;
	s = connect_ok(&o);
	assert_ok(ml_ssh_exec(&c, s, slp));
	io = ml_ssh_chan_io(c);
	t0 = now_ms();
	r = io->read(io->ctx, buf, sizeof(buf));
	assert_int_equal(r, ML_EHOST);
	assert_true(now_ms() - t0 >= 390 && now_ms() - t0 < 1500);
	assert_non_null(strstr(ml_err_msg(), "did not answer within 400 ms"));
	ml_ssh_chan_free(c);

	/* stderr is kept while stdout is read. */
	assert_ok(ml_ssh_exec(&c, s, noisy));
	ml_ssh_chan_set_timeout(c, 10000);
	io = ml_ssh_chan_io(c);
	assert_int_equal(ml_io_read_full(io, buf, 4, NULL), 0);
	assert_memory_equal(buf, "out\n", 4);
	assert_ok(ml_ssh_chan_wait(c, NULL));
	assert_string_equal(ml_ssh_chan_stderr(c, &elen), "started\n");
	assert_int_equal(elen, 8);
	ml_ssh_chan_free(c);
	ml_ssh_free(s);
}

static void test_ssh__upload(void **state)
{
	char *local = ml_xasprintf("%s/agent", tmpdir);
	char *remote = ml_xasprintf("%s/remote/a/b/mlctl-agent", tmpdir);
	char *rdir = ml_xasprintf("%s/remote/a/b", tmpdir);
	char want[ML_SHA256_HEX], got[ML_SHA256_HEX];
	const char *ls[] = { "ls", "-A", rdir, NULL };
	struct ml_buf out = ML_BUF_INIT(1 << 20);
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	struct stat st;
	size_t n = (5 << 20) + 123, i;
	char *data = ml_xmalloc(n);
	int fd, round, status;

	NEED_SSHD();
	opts_for(&o, &sshd);
	s = connect_ok(&o);
	for (round = 0; round < 2; round++) {
		/* round 1 replaces the file (atomic rename over it) */
		for (i = 0; i < n; i++)
			data[i] = (char)(i * 31 + round + (i >> 12));
		fd = open(local, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, data, n), (ssize_t)n);
		close(fd);
		assert_ok(ml_ssh_upload(s, local, remote, 0755));
		assert_int_equal(ml_sha256_file(local, want), 0);
		assert_int_equal(ml_sha256_file(remote, got), 0);
		assert_string_equal(want, got);
		assert_int_equal(stat(remote, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0755);
	}
	/* no temporary file left beside it */
	assert_ok(ml_ssh_run(s, ls, NULL, 0, &out, NULL, &status));
	assert_string_equal(ml_buf_str(&out), "mlctl-agent\n");
	assert_int_equal(ml_ssh_upload(s, "/nonexistent/x", remote, 0755),
			 ML_ENOTFOUND);
	free(data);
	free(local);
	free(remote);
	free(rdir);
	ml_buf_release(&out);
	ml_ssh_free(s);
}

static void test_ssh__unknown_host_refused_then_tofu(void **state)
{
	char *kh = ml_xasprintf("%s/kh-tofu/known_hosts", tmpdir);
	char *khdir = ml_xasprintf("%s/kh-tofu", tmpdir);
	struct ml_buf b = ML_BUF_INIT(1 << 16);
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;
	char port[32];

	NEED_SSHD();
	mkdir(khdir, 0700);
	opts_for(&o, &sshd);
	o.known_hosts = kh;
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_null(s);
	assert_non_null(strstr(ml_err_msg(), "host key of 'vm1' (127.0.0.1:"));
	assert_non_null(strstr(ml_err_msg(), "is not known; verify its "
					     "fingerprint (SHA256:"));
	assert_non_null(strstr(ml_err_msg(), "--trust-new-hosts"));

	o.trust_on_first_use = true;
	s = connect_ok(&o);
	ml_ssh_free(s);
	assert_int_equal(ml_buf_read_file(&b, kh), 0);
	snprintf(port, sizeof(port), "[127.0.0.1]:%d ", sshd.port);
	assert_non_null(strstr(ml_buf_str(&b), port));

	/* now known: no trust needed, and the file is not appended to */
	o.trust_on_first_use = false;
	s = connect_ok(&o);
	ml_ssh_free(s);
	ml_buf_reset(&b);
	assert_int_equal(ml_buf_read_file(&b, kh), 0);
	assert_ptr_equal(strstr(ml_buf_str(&b), port),
			 strrchr(ml_buf_str(&b), '['));
	ml_buf_release(&b);
	free(kh);
	free(khdir);
}

static void test_ssh__hashed_known_hosts(void **state)
{
	char *kh = ml_xasprintf("%s/kh-hashed", tmpdir);
	struct ml_buf b = ML_BUF_INIT(1 << 16);
	struct ml_ssh_opts o;

	NEED_SSHD();
	assert_int_equal(ml_test_sshd_write_known_hosts(&sshd, kh, false,
							true), 0);
	assert_int_equal(ml_buf_read_file(&b, kh), 0);
	assert_true(!strncmp(ml_buf_str(&b), "|1|", 3));
	opts_for(&o, &sshd);
	o.known_hosts = kh;
	ml_ssh_free(connect_ok(&o));
	ml_buf_release(&b);
	free(kh);
}

static void test_ssh__changed_host_key_refused(void **state)
{
	struct ml_test_sshd d;
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;

	NEED_SSHD();
	assert_int_equal(ml_test_sshd_start(&d, NULL), 0);
	opts_for(&o, &d);
	ml_ssh_free(connect_ok(&o));
	assert_int_equal(ml_test_sshd_restart(&d, true), 0);
	/* d.known_hosts still holds the old key */
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "has CHANGED (now SHA256:"));
	assert_non_null(strstr(ml_err_msg(), "man-in-the-middle"));
	assert_non_null(strstr(ml_err_msg(), d.known_hosts));
	/* trusting new hosts never accepts a changed key */
	o.trust_on_first_use = true;
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "has CHANGED"));
	assert_null(s);
	ml_test_sshd_stop(&d);
}

static void test_ssh__login_refused(void **state)
{
	char *key = ml_xasprintf("%s/other_key", tmpdir);
	const char *kg[] = { "/usr/bin/ssh-keygen", "-q", "-t", "ed25519",
			     "-N", "", "-f", key, NULL };
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;

	NEED_SSHD();
	opts_for(&o, &sshd);
	o.user = "nosuchuser";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "cannot log in to 'vm1'"));
	assert_non_null(strstr(ml_err_msg(), "as 'nosuchuser'"));
	assert_non_null(strstr(ml_err_msg(), sshd.client_key));

	assert_int_equal(ml_test_sshd_run(kg, NULL), 0);
	opts_for(&o, &sshd);
	o.identity_file = key;
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "(refused)"));

	o.identity_file = "/nonexistent/key";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "unreadable"));
	assert_null(s);
	free(key);
}

static void test_ssh__timeouts(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;
	int64_t t0, dt;
	int fd, port;

	NEED_SSHD();
	/* A listener of our own that never accepts: TCP connects (the
	 * kernel completes the handshake) and then nothing is said. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);

	opts_for(&o, &sshd);
	o.host = "vm2";
	o.port = port;
	o.connect_timeout_ms = 700;
	t0 = now_ms();
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	dt = now_ms() - t0;
	print_message("silent listener reported after %lld ms\n",
		      (long long)dt);
	assert_true(dt >= 650 && dt < 2000);
	assert_non_null(strstr(ml_err_msg(), "'vm2' (127.0.0.1:"));
	assert_non_null(strstr(ml_err_msg(), "did not answer within 700 ms"));
	close(fd);

	/* Nobody listening at all: refused at once. */
	t0 = now_ms();
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_true(now_ms() - t0 < 500);
	assert_non_null(strstr(ml_err_msg(), "cannot connect to 'vm2'"));
	assert_non_null(strstr(ml_err_msg(), "refused"));
	assert_null(s);
}

static void test_ssh__jump_host(void **state)
{
	char *kh = ml_xasprintf("%s/kh-jump", tmpdir);
	const char *echo[] = { "echo", "via jump", NULL };
	struct ml_buf out = ML_BUF_INIT(1 << 16);
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;
	char *local = ml_xasprintf("%s/jump-file", tmpdir);
	char *remote = ml_xasprintf("%s/jump-remote/file", tmpdir);
	char h1[ML_SHA256_HEX], h2[ML_SHA256_HEX];
	int st = -1, fds, i, fd;
	size_t n = 2 << 20;
	char *data = ml_xmalloc(n);

	NEED_SSHD();
	/* the target is `sshd`, reached through `jumpd` */
	assert_int_equal(ml_test_sshd_write_known_hosts(&sshd, kh, false,
							false), 0);
	opts_for(&o, &sshd);
	o.known_hosts = kh;
	o.jump_address = "127.0.0.1";
	o.jump_port = jumpd.port;
	o.jump_user = jumpd.user;

	/* the jump host's key is checked too */
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "host key of '127.0.0.1' "));
	assert_int_equal(ml_test_sshd_write_known_hosts(&jumpd, kh, true,
							false), 0);

	fds = count_fds();
	for (i = 0; i < 3; i++) {
		s = connect_ok(&o);
		ml_buf_reset(&out);
		assert_ok(ml_ssh_run(s, echo, NULL, 0, &out, NULL,
					    &st));
		assert_int_equal(st, 0);
		assert_string_equal(ml_buf_str(&out), "via jump\n");
		if (i == 0) {
			for (size_t k = 0; k < n; k++)
				data[k] = (char)(k ^ (k >> 8));
			fd = open(local, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, data, n), (ssize_t)n);
			close(fd);
			assert_int_equal(ml_ssh_upload(s, local, remote, 0700),
					 0);
			assert_int_equal(ml_sha256_file(local, h1), 0);
			assert_int_equal(ml_sha256_file(remote, h2), 0);
			assert_string_equal(h1, h2);
		}
		ml_ssh_free(s);
	}
	/* no descriptor left behind by the socketpair and its pump */
	assert_int_equal(count_fds(), fds);

	/* a target the jump host cannot reach */
	s = NULL;
	o.port = 1;
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "through jump host"));
	assert_null(s);

	ml_buf_release(&out);
	free(data);
	free(local);
	free(remote);
	free(kh);
}

static void test_ssh__ssh_config(void **state)
{
	char *cfg = ml_xasprintf("%s/ssh_config", tmpdir);
	char *kh = ml_xasprintf("%s/kh-config", tmpdir);
	char *text = ml_xasprintf(
		"Host myalias\n"
		"  HostName 127.0.0.1\n"
		"  Port %d\n"
		"  User %s\n"
		"  IdentityFile %s\n"
		"Host behind\n"
		"  HostName 127.0.0.1\n"
		"  Port %d\n"
		"  User %s\n"
		"  IdentityFile %s\n"
		"  ProxyJump %s@127.0.0.1:%d\n"
		"Host 127.0.0.1\n"
		"  IdentityFile %s\n"
		"Host strictoff\n"
		"  HostName 127.0.0.1\n"
		"  Port %d\n"
		"  StrictHostKeyChecking no\n"
		"Host badproxy\n"
		"  HostName 127.0.0.1\n"
		"  ProxyCommand nc %%h %%p\n",
		sshd.port, sshd.user, sshd.client_key, sshd.port, sshd.user,
		sshd.client_key, jumpd.user, jumpd.port, jumpd.client_key,
		jumpd.port);
	const char *echo[] = { "echo", "ok", NULL };
	struct ml_buf out = ML_BUF_INIT(1 << 16);
	struct ml_ssh_opts o = { 0 };
	struct ml_ssh *s = NULL;
	int fd, st;

	NEED_SSHD();
	fd = open(cfg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(ml_test_sshd_write_known_hosts(&sshd, kh, false,
							false), 0);
	assert_int_equal(ml_test_sshd_write_known_hosts(&jumpd, kh, true,
							false), 0);
	o.host = "myalias";
	o.known_hosts = kh;
	o.ssh_config = cfg;
	o.connect_timeout_ms = 5000;
	s = connect_ok(&o);
	assert_non_null(strstr(ml_ssh_name(s), "'myalias' (127.0.0.1:"));
	assert_ok(ml_ssh_run(s, echo, NULL, 0, &out, NULL, &st));
	assert_string_equal(ml_buf_str(&out), "ok\n");
	ml_ssh_free(s);

	o.host = "behind";
	s = connect_ok(&o);
	ml_ssh_free(s);

	/* a config turning host key checks off does not turn ours off */
	o.host = "strictoff";
	o.identity_file = jumpd.client_key;
	o.known_hosts = sshd.known_hosts; /* has sshd's key, not jumpd's */
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "is not known"));
	o.known_hosts = kh;
	o.identity_file = NULL;

	o.host = "badproxy";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "does not run"));

	o.host = "myalias";
	o.ssh_config = "/nonexistent/ssh_config";
	assert_int_equal(ml_ssh_connect(&s, &o), ML_EINVALID);
	ml_buf_release(&out);
	free(cfg);
	free(kh);
	free(text);
}

struct par {
	int rc[16];
	char msg[16][256];
	char out[16][32];
};

static int par_one(size_t i, void *arg)
{
	struct par *p = arg;
	struct ml_ssh_opts o;
	struct ml_ssh *s = NULL;
	struct ml_buf out = ML_BUF_INIT(1024);
	char n[16];
	const char *argv[] = { "echo", n, NULL };
	int st, rc;

	snprintf(n, sizeof(n), "%zu", i);
	opts_for(&o, &sshd);
	o.command_timeout_ms = 60000;
	if (i % 5 == 4)
		o.user = "nosuchuser"; /* some fail, with their own message */
	rc = ml_ssh_connect(&s, &o);
	if (rc == 0)
		rc = ml_ssh_run(s, argv, NULL, 0, &out, NULL, &st);
	p->rc[i] = rc;
	snprintf(p->msg[i], sizeof(p->msg[i]), "%s", rc ? ml_err_msg() : "");
	snprintf(p->out[i], sizeof(p->out[i]), "%s", ml_buf_str(&out));
	ml_buf_release(&out);
	ml_ssh_free(s);
	return rc;
}

static void test_ssh__parallel_connections(void **state)
{
	struct par p;
	char want[32];
	size_t i;
	int64_t t0;

	NEED_SSHD();
	memset(&p, 0, sizeof(p));
	t0 = now_ms();
	assert_int_equal(ml_parallel_run(7, 3, par_one, &p), 0);
	print_message("7 connections, 3 at a time: %lld ms\n",
		      (long long)(now_ms() - t0));
	for (i = 0; i < 7; i++) {
		if (p.rc[i] && i % 5 != 4)
			print_message("host %zu: %s\n", i, p.msg[i]);
		if (i % 5 == 4) {
			assert_int_equal(p.rc[i], ML_EHOST);
			assert_non_null(strstr(p.msg[i], "nosuchuser"));
			continue;
		}
		assert_int_equal(p.rc[i], 0);
		snprintf(want, sizeof(want), "%zu\n", i);
		assert_string_equal(p.out[i], want);
	}
}

/* Upload and stream rates, printed: 32 MiB each way. */
static void measure_throughput(const struct ml_ssh_opts *o)
{
	const char *cat[] = { "cat", NULL };
	char *local = ml_xasprintf("%s/big", tmpdir);
	char *remote = ml_xasprintf("%s/big-remote", tmpdir);
	size_t n = 32 << 20, chunk = 256 << 10, done;
	char *data = ml_xcalloc(1, n), *back = ml_xmalloc(chunk);
	struct ml_ssh *s = connect_ok(o);
	struct ml_ssh_chan *c;
	struct ml_io *io;
	int64_t t0;
	int fd;

	for (done = 0; done < n; done++)
		data[done] = (char)(done * 131 + (done >> 16));
	fd = open(local, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	t0 = now_ms();
	assert_ok(ml_ssh_upload(s, local, remote, 0644));
	print_message("SFTP upload of 32 MiB: %lld ms\n",
		      (long long)(now_ms() - t0));

	assert_ok(ml_ssh_exec(&c, s, cat));
	io = ml_ssh_chan_io(c);
	t0 = now_ms();
	for (done = 0; done < n; done += chunk) {
		assert_ok(io->write(io->ctx, data + done, chunk));
		assert_int_equal(ml_io_read_full(io, back, chunk, NULL), 0);
		assert_memory_equal(back, data + done, chunk);
	}
	print_message("32 MiB through `cat` in 256 KiB frames: %lld ms\n",
		      (long long)(now_ms() - t0));
	assert_ok(ml_ssh_chan_close(c, NULL));
	ml_ssh_free(s);
	unlink(local);
	unlink(remote);
	free(local);
	free(remote);
	free(data);
	free(back);
}

/* Not a pass/fail check: how long a connection and a command take. */
static void test_ssh__measure(void **state)
{
	const char *t[] = { "true", NULL };
	struct ml_ssh_opts o;
	struct ml_ssh *s;
	int64_t t0, conn = 0, run = 0;
	int i, st, fds;

	NEED_SSHD();
	opts_for(&o, &sshd);
	fds = count_fds();
	for (i = 0; i < 5; i++) {
		t0 = now_ms();
		s = connect_ok(&o);
		conn += now_ms() - t0;
		t0 = now_ms();
		assert_ok(ml_ssh_run(s, t, NULL, 0, NULL, NULL, &st));
		run += now_ms() - t0;
		ml_ssh_free(s);
	}
	assert_int_equal(count_fds(), fds);
	print_message("loopback sshd: connect+login %lld ms, exec `true` "
		      "%lld ms (mean of 5; the remote login shell's startup "
		      "files are most of the exec time)\n",
		      (long long)conn / 5, (long long)run / 5);
	measure_throughput(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ssh__quote_argv),
		cmocka_unit_test(test_ssh__refuses_dash_names),
		cmocka_unit_test(test_ssh__run_exit_codes),
		cmocka_unit_test(test_ssh__closing_a_session_keeps_the_callers_error),
		cmocka_unit_test(test_ssh__vanished_host_is_given_up),
		cmocka_unit_test(test_ssh__argv_reaches_remote_exactly),
		cmocka_unit_test(test_ssh__stdin_and_many_channels),
		cmocka_unit_test(test_ssh__channel_as_stream),
		cmocka_unit_test(test_ssh__silent_command_times_out),
		cmocka_unit_test(test_ssh__upload),
		cmocka_unit_test(test_ssh__unknown_host_refused_then_tofu),
		cmocka_unit_test(test_ssh__hashed_known_hosts),
		cmocka_unit_test(test_ssh__changed_host_key_refused),
		cmocka_unit_test(test_ssh__login_refused),
		cmocka_unit_test(test_ssh__timeouts),
		cmocka_unit_test(test_ssh__jump_host),
		cmocka_unit_test(test_ssh__ssh_config),
		cmocka_unit_test(test_ssh__parallel_connections),
		cmocka_unit_test(test_ssh__measure),
	};

	if (getenv("ML_TEST_CASE"))
		cmocka_set_test_filter(getenv("ML_TEST_CASE"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
