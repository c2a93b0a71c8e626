/*
 * lb_remove: stop an app's HAProxy on this host and delete its instance
 * directory (configuration, sockets, server state). Used by `mlctl remove`.
 *
 *	args:   {"app"}
 *	result: {"stopped": bool (a master was running), "removed": bool}
 *
 * The master is found through its pidfile and checked to be our haproxy
 * with our configuration (ml_haproxy_master_pid), so a recycled pid is
 * never signalled. SIGUSR1 asks for a soft stop (requests in flight end);
 * after ML_HAPROXY_START_MS it gets SIGKILL. An app without an instance is
 * not an error: {"stopped": false, "removed": false}.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

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

static int op_lb_remove(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = { .lock_fd = -1 };
	const char *app;
	pid_t master = 0;
	bool stopped = false, removed;
	long waited = 0;
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
	if (master) {
		kill(master, SIGUSR1);
		while (kill(master, 0) == 0 && waited < h.start_ms) {
			sleep_ms(50);
			waited += 50;
		}
		if (kill(master, 0) == 0)
			kill(master, SIGKILL);
		stopped = true;
	}
	removed = remove_dir(h.dir);
	*result = json_pack("{s:b,s:b}", "stopped", stopped, "removed",
			    removed);
out:
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_remove = {
	.name = "lb_remove",
	.summary = "stop an app's haproxy and delete its instance",
	.run = op_lb_remove,
};
