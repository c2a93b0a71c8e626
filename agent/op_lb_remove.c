/*
 * lb_remove: stop an app's HAProxy on this host and delete its instance
 * directory (configuration, sockets, server state). Used by `mlctl remove`.
 *
 *	args:   {"app"}
 *	result: {"stopped": bool (a master was running), "removed": bool,
 *		 "stop": "soft" | "hard" | "killed" (what ended the master;
 *		 with "stopped")}
 *
 * The master is found through its pidfile and checked to be our haproxy
 * with our configuration (ml_haproxy_master_pid), and signalled through a
 * pidfd checked again after it is opened, so a recycled pid is never
 * signalled. SIGUSR1 asks for a soft stop (requests in flight end);
 * after ML_HAPROXY_START_MS SIGTERM stops it and its workers at once, and
 * 2 s later SIGKILL ends the master. An app without an instance is
 * not an error: {"stopped": false, "removed": false}.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Remove the regular files and sockets of dir and of its directories
 * (tls/, agent/lb/tls.h), then dir. */
static bool remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		char *p;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = ml_xasprintf("%s/%s", dir, e->d_name);
		if (unlink(p) < 0 && errno == EISDIR)
			remove_dir(p);
		free(p);
	}
	closedir(d);
	return rmdir(dir) == 0;
}

/*
 * For the kill(2) path: is master still our running haproxy master? Its
 * pid file and /proc/PID/cmdline (ml_haproxy_master_pid). A zombie has an
 * empty cmdline, so one counts as ended although kill(pid, 0) succeeds on
 * it (an init in a container may never reap it); a pid reused by another
 * process is not ours either. An error counts as ended: what cannot be
 * checked gets no signal.
 */
static bool still_master(const struct ml_haproxy *h, pid_t master)
{
	pid_t again = 0;

	if (ml_haproxy_master_pid(&again, h) < 0) {
		ml_err_clear();
		return false;
	}
	return again == master;
}

/* Wait up to ms for the process of pidfd fd to end. */
static bool ends_within(int fd, long ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t deadline = ml_mono_ms() + ms;
	int r;

	for (;;) {
		long left = (long)(deadline - ml_mono_ms());

		r = poll(&p, 1, left > 0 ? (int)left : 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 0 || left <= 0)
			return r > 0;
	}
}

/*
 * Stop the master found as master: SIGUSR1 (a soft stop: the worker
 * finishes what is in flight, at most hard-stop-after), after h->start_ms
 * SIGTERM (a hard stop, which the master passes on to its workers), after
 * 2 s more SIGKILL. Signals go through a pidfd taken after the check and
 * checked again, so a pid reused once the master is gone (pid_max can be
 * 32768) is never signalled, and the end of a master that is not our
 * child is seen (kill(pid, 0) also succeeds on a zombie). Kernels without
 * pidfds get kill(2) and the same steps, the pid checked to be our
 * master again before each signal and while it is waited for (a zombie
 * is not). *how names
 * the step that ended it; false when the master was gone before a signal.
 */
static bool stop_master(const struct ml_haproxy *h, pid_t master,
			const char **how)
{
	static const int sigs[] = {SIGUSR1, SIGTERM, SIGKILL};
	static const char *const names[] = {"soft", "hard", "killed"};
	pid_t again = 0;
	long waited;
	size_t i;
	int fd;

	fd = pidfd_open(master, 0);
	if (fd < 0 && errno != ENOSYS)
		return false; /* gone already */
	if (fd >= 0 &&
	    (ml_haproxy_master_pid(&again, h) < 0 || again != master)) {
		close(fd);
		return false;
	}
	for (i = 0; i < ML_ARRAY_SIZE(sigs); i++) {
		long ms = i == 0 ? h->start_ms : 2000;

		if (fd >= 0) {
			*how = names[i];
			pidfd_send_signal(fd, sigs[i], NULL, 0);
			if (ends_within(fd, ms))
				break;
			continue;
		}
		/* no pidfd: checked again before each signal, which narrows
		 * the window in which a recycled pid could get it to the
		 * time of one kill(2) */
		if (!still_master(h, master)) {
			if (i == 0)
				return false; /* gone before a signal */
			break; /* ended as the last one was waited for */
		}
		*how = names[i];
		kill(master, sigs[i]);
		for (waited = 0; still_master(h, master) && waited < ms;
		     waited += 20)
			sleep_ms(20);
		if (!still_master(h, master))
			break;
	}
	if (fd >= 0)
		close(fd);
	return true;
}

static int op_lb_remove(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = {.lock_fd = -1};
	const char *app;
	const char *how = NULL;
	pid_t master = 0;
	bool stopped = false, removed;
	int rc;

	rc = ml_agent_arg_name(&app, args, "lb_remove", "app", true);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc < 0)
		goto out;
	if (access(h.dir, F_OK) < 0) {
		*result = json_pack("{s:b,s:b}", "stopped", 0, "removed", 0);
		goto out;
	}
	rc = ml_haproxy_lock(&h);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_master_pid(&master, &h);
	if (rc < 0)
		goto out;
	if (master)
		stopped = stop_master(&h, master, &how);
	removed = remove_dir(h.dir);
	*result =
		json_pack("{s:b,s:b}", "stopped", stopped, "removed", removed);
	if (stopped)
		json_object_set_new(*result, "stop", json_string(how));
out:
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_remove = {
	.name = "lb_remove",
	.summary = "stop an app's haproxy and delete its instance",
	.run = op_lb_remove,
};
