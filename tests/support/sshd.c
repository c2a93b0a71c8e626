/*
 * Test fixture: a real OpenSSH sshd on 127.0.0.1 (see sshd.h). Keys are
 * made with ssh-keygen, sshd is started with fork/execv (never through a
 * shell) and asked to die with us (PR_SET_PDEATHSIG) so an aborted test
 * leaves no daemon behind. Linked into every test binary: everything here
 * is prefixed ml_test_ and depends only on common/.
 *
 * Sizes: key files and configs are a few hundred bytes; sshd gets 10 s to
 * start listening.
 */
#include "common/ml.h"
#include "tests/support/sshd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SSHD_PATH "/usr/sbin/sshd"
#define KEYGEN_PATH "/usr/bin/ssh-keygen"

bool ml_test_sshd_usable(const char **why)
{
	if (access(SSHD_PATH, X_OK) < 0) {
		*why = SSHD_PATH " is not installed";
		return false;
	}
	if (access(KEYGEN_PATH, X_OK) < 0) {
		*why = KEYGEN_PATH " is not installed";
		return false;
	}
	if (geteuid() != 0) {
		*why = "sshd tests need root";
		return false;
	}
	return true;
}

int ml_test_sshd_run(const char *const argv[], const char *out_path)
{
	pid_t pid;
	int st, fd;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		fd = open(out_path ? out_path : "/dev/null",
			  O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	size_t n = strlen(text);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, text, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	int rc = -1;

	if (ml_buf_read_file(&b, from) == 0)
		rc = write_file(to, ml_buf_str(&b), mode);
	ml_buf_release(&b);
	return rc;
}

static int keygen(const char *path)
{
	const char *argv[] = { KEYGEN_PATH, "-q", "-t", "ed25519", "-N", "",
			       "-C", "mlctl-test", "-f", path, NULL };

	unlink(path);
	return ml_test_sshd_run(argv, NULL) == 0 ? 0 : -1;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd, port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, ok;

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int write_config(struct ml_test_sshd *d)
{
	char *path = ml_xasprintf("%s/sshd_config", d->dir);
	char *text = ml_xasprintf(
		"ListenAddress 127.0.0.1:%d\n"
		"HostKey %s\n"
		"AuthorizedKeysFile %s/authorized_keys\n"
		"PidFile %s/sshd.pid\n"
		"StrictModes no\n"
		"UsePAM no\n"
		"PasswordAuthentication no\n"
		"KbdInteractiveAuthentication no\n"
		"PubkeyAuthentication yes\n"
		"PermitRootLogin prohibit-password\n"
		"AllowTcpForwarding yes\n"
		"MaxStartups 64:30:128\n"
		"MaxSessions 32\n"
		"Subsystem sftp internal-sftp\n"
		"LogLevel VERBOSE\n",
		d->port, d->host_key, d->dir, d->dir);
	int rc = write_file(path, text, 0644);

	free(path);
	free(text);
	return rc;
}

static int spawn(struct ml_test_sshd *d)
{
	char *cfg = ml_xasprintf("%s/sshd_config", d->dir);
	const char *argv[] = { SSHD_PATH, "-D", "-e", "-f", cfg, NULL };
	pid_t parent = getpid(), pid;
	int i, st, fd;

	/* sshd's privilege separation directory; no init system made it. */
	mkdir("/run/sshd", 0755);
	pid = fork();
	if (pid < 0) {
		free(cfg);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	free(cfg);
	d->pid = pid;
	for (i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->pid = 0;
			return -1;
		}
		if (port_open(d->port))
			return 0;
		sleep_ms(10);
	}
	return -1;
}

static void kill_sshd(struct ml_test_sshd *d)
{
	int i, st;

	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	for (i = 0; i < 200; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid)
			goto out;
		sleep_ms(10);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &st, 0);
out:
	d->pid = 0;
}

static void print_log(const struct ml_test_sshd *d, const char *what)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);

	ml_buf_read_file(&b, d->log);
	fprintf(stderr, "ml_test_sshd: %s; sshd log:\n%s\n", what,
		ml_buf_str(&b));
	ml_buf_release(&b);
}

int ml_test_sshd_start(struct ml_test_sshd *d,
		       const struct ml_test_sshd *share_from)
{
	char tmpl[] = "/tmp/mlctl-test-sshd-XXXXXX";
	struct passwd *pw = getpwuid(geteuid());
	char *pub = NULL, *auth = NULL;
	int tries, rc = -1;

	memset(d, 0, sizeof(*d));
	if (!mkdtemp(tmpl)) {
		perror("ml_test_sshd: mkdtemp");
		return -1;
	}
	d->dir = ml_xstrdup(tmpl);
	d->user = ml_xstrdup(pw ? pw->pw_name : "root");
	d->host_key = ml_xasprintf("%s/host_key", d->dir);
	d->client_key = ml_xasprintf("%s/client_key", d->dir);
	d->known_hosts = ml_xasprintf("%s/known_hosts", d->dir);
	d->log = ml_xasprintf("%s/sshd.log", d->dir);
	pub = ml_xasprintf("%s.pub", d->client_key);
	auth = ml_xasprintf("%s/authorized_keys", d->dir);
	if (keygen(d->host_key) < 0) {
		fprintf(stderr, "ml_test_sshd: ssh-keygen failed\n");
		goto out;
	}
	if (share_from) {
		char *opub = ml_xasprintf("%s.pub", share_from->client_key);

		rc = copy_file(share_from->client_key, d->client_key, 0600);
		if (rc == 0)
			rc = copy_file(opub, pub, 0644);
		free(opub);
		if (rc < 0)
			goto out;
		rc = -1;
	} else if (keygen(d->client_key) < 0) {
		fprintf(stderr, "ml_test_sshd: ssh-keygen failed\n");
		goto out;
	}
	if (copy_file(pub, auth, 0600) < 0)
		goto out;
	/* The port may be taken between our probe and sshd's bind: retry. */
	for (tries = 0; tries < 5; tries++) {
		d->port = free_port();
		if (d->port <= 0 || write_config(d) < 0)
			continue;
		if (spawn(d) == 0)
			break;
		kill_sshd(d);
	}
	if (d->pid <= 0) {
		print_log(d, "sshd did not start");
		goto out;
	}
	if (ml_test_sshd_write_known_hosts(d, d->known_hosts, false,
					   false) < 0)
		goto out;
	rc = 0;
out:
	free(pub);
	free(auth);
	if (rc < 0)
		ml_test_sshd_stop(d);
	return rc;
}

int ml_test_sshd_restart(struct ml_test_sshd *d, bool new_host_key)
{
	int i;

	kill_sshd(d);
	if (new_host_key && keygen(d->host_key) < 0)
		return -1;
	for (i = 0; i < 5; i++) {
		if (spawn(d) == 0)
			return 0;
		kill_sshd(d);
		sleep_ms(100);
	}
	print_log(d, "sshd did not restart");
	return -1;
}

int ml_test_sshd_write_known_hosts(const struct ml_test_sshd *d,
				   const char *path, bool append, bool hashed)
{
	struct ml_buf key = ML_BUF_INIT(1 << 16), line = ML_BUF_INIT(1 << 16);
	char *pub = ml_xasprintf("%s.pub", d->host_key), *sp;
	int fd = -1, rc = -1;

	if (ml_buf_read_file(&key, pub) < 0)
		goto out;
	/* "type base64 comment\n": keep type and base64. */
	sp = strchr(key.data, ' ');
	if (sp)
		sp = strchr(sp + 1, ' ');
	if (sp)
		*sp = '\0';
	if (ml_buf_addf(&line, "[127.0.0.1]:%d %s\n", d->port,
			ml_buf_str(&key)) < 0)
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
		  0600);
	if (fd < 0 || write(fd, line.data, line.len) != (ssize_t)line.len)
		goto out;
	close(fd);
	fd = -1;
	if (hashed) {
		const char *argv[] = { KEYGEN_PATH, "-q", "-H", "-f", path,
				       NULL };
		char *old = ml_xasprintf("%s.old", path);

		rc = ml_test_sshd_run(argv, NULL) == 0 ? 0 : -1;
		unlink(old);
		free(old);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(pub);
	ml_buf_release(&key);
	ml_buf_release(&line);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	remove(path);
	return 0;
}

void ml_test_sshd_stop(struct ml_test_sshd *d)
{
	kill_sshd(d);
	if (d->dir && !strncmp(d->dir, "/tmp/mlctl-test-sshd-", 21))
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d->dir);
	free(d->user);
	free(d->host_key);
	free(d->client_key);
	free(d->known_hosts);
	free(d->log);
	memset(d, 0, sizeof(*d));
}
