/*
 * The HAProxy processes of one instance (see lb.h): `haproxy -c` on a
 * candidate file, finding the running master and worker, starting the
 * master-worker daemon and reloading it seamlessly.
 *
 * Invariants: HAProxy is always run with an argv vector (fork/execv),
 * never a shell; the daemon gets /dev/null and haproxy.log as stdio and
 * none of our descriptors, so it never writes into the protocol stream
 * and never keeps the SSH session open. A pid is taken for ours only when
 * its executable is haproxy and its command line names our file. A start
 * or reload is done once the master CLI lists the new worker, not when
 * the worker answers: a signal sent to the master before then is lost.
 * Every wait is bounded by h->start_ms.
 *
 * Sizes: `haproxy -c` output read up to 64 KiB; messages quote at most
 * 4 KiB of it.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "agent/lb/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK_OUT_MAX ((size_t)64 << 10)

void ml_lb_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * fork and exec argv with stdin on /dev/null and stdout and stderr on
 * out_fd; with detach, in a new session (the daemon must outlive us). The
 * child only makes async-signal-safe calls: tests run this with threads.
 */
static int spawn(pid_t *out, const char *bin, char *const argv[], int out_fd,
		 bool detach)
{
	int devnull, fd;
	sigset_t none;
	pid_t pid;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open /dev/null");
	pid = fork();
	if (pid < 0) {
		close(devnull);
		return ml_err_errno(ML_EFAIL, errno, "cannot fork");
	}
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (detach)
			setsid();
		if (dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 ||
		    dup2(out_fd, 2) < 0)
			_exit(127);
		if (close_range(3, ~0U, 0) < 0)
			for (fd = 3; fd < 4096; fd++)
				close(fd);
		execvp(bin, argv);
		_exit(127);
	}
	close(devnull);
	*out = pid;
	return 0;
}

/* waitpid with a deadline; on timeout the child is killed and reaped. */
static int wait_child(int *status, pid_t pid, long timeout_ms, const char *what)
{
	int64_t deadline = ml_mono_ms() + timeout_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return ml_err_errno(ML_EFAIL, errno,
					    "cannot wait for %s", what);
		if (ml_mono_ms() >= deadline)
			break;
		ml_lb_sleep_ms(5);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return ml_err_set(ML_EFAIL, "%s did not finish within %ld ms", what,
			  timeout_ms);
}

/* HAProxy's [ALERT] lines of out (all of it when it has none), escaped,
 * joined with "; " into a new string. */
static char *alerts(const char *out)
{
	struct ml_buf b = ML_BUF_INIT(4 * ML_LB_SHOWN_MAX + 64);
	const char *p = out, *nl, *msg;
	size_t n;

	while (*p && b.len < ML_LB_SHOWN_MAX) {
		nl = strchrnul(p, '\n');
		n = (size_t)(nl - p);
		if (memmem(p, n, "[ALERT]", 7)) {
			/* "[ALERT]    (123) : text": keep the text */
			msg = memmem(p, n, ") : ", 4);
			if (msg) {
				n -= (size_t)(msg + 4 - p);
				p = msg + 4;
			}
			if (b.len)
				ml_buf_addstr(&b, "; ");
			ml_escape(&b, p, n);
		}
		p = *nl ? nl + 1 : nl;
	}
	if (!b.len) {
		n = strnlen(out, ML_LB_SHOWN_MAX);
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			n--;
		ml_escape(&b, out, n);
	}
	return ml_buf_detach(&b, NULL);
}

int ml_haproxy_check(const struct ml_haproxy *h, const char *path)
{
	struct ml_buf out = ML_BUF_INIT(CHECK_OUT_MAX);
	char *argv[] = {h->bin, (char *)"-c", (char *)"-f", (char *)path, NULL};
	int64_t deadline = ml_mono_ms() + h->start_ms;
	int p[2], status = 0, rc;
	struct pollfd pfd;
	char chunk[4096], *why;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create a pipe");
	rc = spawn(&pid, h->bin, argv, p[1], false);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		long left = (long)(deadline - ml_mono_ms());

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		/* keep the beginning: the alerts come first */
		if (out.len + (size_t)n < out.max)
			ml_buf_add(&out, chunk, (size_t)n);
	}
	close(p[0]);
	rc = wait_child(&status, pid,
			deadline - ml_mono_ms() > 0
				? (long)(deadline - ml_mono_ms())
				: 1,
			"haproxy -c");
	if (rc < 0)
		goto out;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127 &&
	    !strstr(ml_buf_str(&out), "HAProxy")) {
		rc = ml_err_set(ML_EFAIL,
				"cannot run '%s': is HAProxy installed? "
				"(apt-get install haproxy, or set "
				"MLCTL_HAPROXY_BIN)",
				h->bin);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		why = alerts(ml_buf_str(&out));
		rc = ml_err_set(ML_EINVALID,
				"haproxy rejects the configuration: "
				"%s",
				why);
		free(why);
		goto out;
	}
	rc = 0;
out:
	ml_buf_release(&out);
	return rc;
}

/* Is /proc/pid an haproxy whose command line has "-f cfg"? */
static bool is_our_haproxy(pid_t pid, const char *cfg)
{
	struct ml_buf cmd = ML_BUF_INIT(64 << 10);
	char path[64], exe[512];
	const char *p, *end, *base;
	bool haproxy = false, ours = false;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if (ml_buf_read_file(&cmd, path) < 0 || !cmd.len)
		goto out;
	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		base = strrchr(exe, '/');
		base = base ? base + 1 : exe;
		/* "haproxy (deleted)" after a package upgrade */
		haproxy = !strncmp(base, "haproxy", 7);
	} else {
		/* no ptrace access to exe: trust argv[0] */
		base = strrchr(cmd.data, '/');
		base = base ? base + 1 : cmd.data;
		haproxy = !strcmp(base, "haproxy");
	}
	end = cmd.data + cmd.len;
	for (p = cmd.data; p < end; p += strlen(p) + 1)
		if (!strcmp(p, "-f") && p + 3 < end && !strcmp(p + 3, cfg))
			ours = true;
out:
	ml_buf_release(&cmd);
	return haproxy && ours;
}

int ml_haproxy_master_pid(pid_t *out, const struct ml_haproxy *h)
{
	struct ml_buf b = ML_BUF_INIT(64);
	long pid;
	char *end;
	int rc;

	*out = 0;
	rc = ml_buf_read_file(&b, h->pidfile);
	if (rc == ML_ENOTFOUND || rc == ML_ETOOBIG) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	errno = 0;
	pid = strtol(b.data, &end, 10);
	if (errno || end == b.data || (*end && *end != '\n') || pid <= 1 ||
	    pid > INT32_MAX)
		goto out;
	if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
		goto out;
	if (is_our_haproxy((pid_t)pid, h->cfg))
		*out = (pid_t)pid;
out:
	ml_buf_release(&b);
	return rc;
}

int ml_haproxy_worker_pid(pid_t *out, const struct ml_haproxy *h)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	const char *p;
	long pid;
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, "show info", h->timeout_ms);
	if (rc < 0)
		goto out;
	p = strstr(b.data, "\nPid: ");
	if (!p) {
		rc = ml_err_set(ML_EFAIL,
				"haproxy's 'show info' on '%s' has "
				"no Pid line",
				h->admin_sock);
		goto out;
	}
	pid = strtol(p + 6, NULL, 10);
	if (pid <= 0) {
		rc = ml_err_set(ML_EFAIL, "haproxy's 'show info' has a bad "
					  "Pid line");
		goto out;
	}
	*out = (pid_t)pid;
out:
	ml_buf_release(&b);
	return rc;
}

/*
 * Does the master CLI answer `show proc` with worker among its current
 * workers? Only then has the master finished starting (or re-executing
 * itself on a reload) and unblocked its signals: the worker answers on
 * the admin socket first, and a SIGUSR1 or SIGUSR2 sent to the master in
 * between is lost (seen on 2.6: the next reload or the soft stop of
 * lb_remove never happened). The answer is
 *
 *	#<PID>  <type>  <reloads>  <uptime>  <version>
 *	1234    master  1 [failed: 0]  ...
 *	# workers
 *	1240    worker  0  ...
 *	# old workers
 *	1235    worker  1  ...
 */
static bool master_has_worker(const struct ml_haproxy *h, pid_t worker)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	const char *p, *nl;
	bool workers = false, found = false;
	char *end;
	long pid;

	if (ml_haproxy_cmd(&b, h->master_sock, "show proc", h->timeout_ms) <
	    0) {
		ml_err_clear();
		goto out;
	}
	for (p = ml_buf_str(&b); *p && !found; p = *nl ? nl + 1 : nl) {
		nl = strchrnul(p, '\n');
		if (*p == '#') {
			workers = !strncmp(p, "# workers", 9);
			continue;
		}
		if (!workers)
			continue;
		errno = 0;
		pid = strtol(p, &end, 10);
		found = !errno && end != p && (*end == ' ' || *end == '\t') &&
			pid == (long)worker;
	}
out:
	ml_buf_release(&b);
	return found;
}

int ml_haproxy_start(pid_t *master, const struct ml_haproxy *h)
{
	struct ml_buf log = ML_BUF_INIT(CHECK_OUT_MAX);
	char *sock = ml_xasprintf("%s,mode,600", h->master_sock);
	char *argv[] = {h->bin, (char *)"-W", (char *)"-D", (char *)"-f",
			h->cfg, (char *)"-S", sock,	    NULL};
	int64_t deadline = ml_mono_ms() + h->start_ms;
	int fd, status = 0, rc;
	pid_t pid, worker;
	char *why;

	*master = 0;
	fd = open(h->log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
				  h->log_file);
		goto out;
	}
	rc = spawn(&pid, h->bin, argv, fd, true);
	close(fd);
	if (rc < 0)
		goto out;
	/* with -D the process we ran exits once the master is in the
	 * background, after binding every listener */
	rc = wait_child(&status, pid, h->start_ms, "haproxy");
	if (rc < 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ml_buf_read_file(&log, h->log_file);
		why = alerts(ml_buf_str(&log));
		rc = ml_err_set(ML_EFAIL,
				"haproxy for app '%s' did not start "
				"(exit status %d): %s",
				h->app,
				WIFEXITED(status) ? WEXITSTATUS(status) : -1,
				why);
		free(why);
		goto out;
	}
	for (;;) {
		rc = ml_haproxy_master_pid(master, h);
		if (rc < 0)
			goto out;
		if (*master && ml_haproxy_worker_pid(&worker, h) == 0 &&
		    master_has_worker(h, worker))
			break;
		if (ml_mono_ms() >= deadline) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy for app '%s' started but its "
					"worker and master did not answer on "
					"'%s' and '%s' within %ld ms; see %s",
					h->app, h->admin_sock, h->master_sock,
					h->start_ms, h->log_file);
			goto out;
		}
		ml_lb_sleep_ms(ML_LB_POLL_STEP_MS);
	}
	ml_err_clear();
	rc = 0;
out:
	ml_buf_release(&log);
	free(sock);
	return rc;
}

int ml_haproxy_reload(const struct ml_haproxy *h, pid_t master,
		      pid_t old_worker)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	int64_t deadline = ml_mono_ms() + h->start_ms;
	pid_t worker = 0;
	int rc;

	/* the master re-executes itself, hands the listening sockets to the
	 * new worker (expose-fd listeners) and soft-stops the old one */
	if (ml_haproxy_cmd(&b, h->master_sock, "reload", h->timeout_ms) < 0 &&
	    kill(master, SIGUSR2) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno,
				  "cannot reload haproxy (master %ld)",
				  (long)master);
		goto out;
	}
	for (;;) {
		if (ml_haproxy_worker_pid(&worker, h) == 0 &&
		    worker != old_worker && master_has_worker(h, worker))
			break;
		if (kill(master, 0) < 0 && errno == ESRCH) {
			rc = ml_err_set(ML_EFAIL,
					"the haproxy master (%ld) of "
					"app '%s' exited while "
					"reloading",
					(long)master, h->app);
			goto out;
		}
		if (ml_mono_ms() >= deadline) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy for app '%s' did not start a "
					"new worker within %ld ms of the "
					"reload; the old one still serves the "
					"previous configuration (is a port in "
					"use?)",
					h->app, h->start_ms);
			goto out;
		}
		ml_lb_sleep_ms(ML_LB_POLL_STEP_MS);
	}
	ml_err_clear();
	rc = 0;
out:
	ml_buf_release(&b);
	return rc;
}
