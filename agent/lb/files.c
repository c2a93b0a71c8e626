/*
 * The files of one HAProxy instance, <state_dir>/haproxy/<app>/ (see
 * lb.h): their paths, the directory, the flock that serializes the ops
 * that change the instance, and writing a file durably.
 *
 * Invariants: ml_haproxy_init() touches no disk and refuses an app name
 * that is not a name, or paths too long for a unix socket address; files
 * are created 0600 in 0700 directories.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "agent/lb/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int ml_haproxy_init(struct ml_haproxy *h, const char *state_dir,
		    const char *app)
{
	const char *bin = getenv("MLCTL_HAPROXY_BIN");
	struct sockaddr_un sun;
	char *esc;
	int rc;

	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
	h->timeout_ms = ML_HAPROXY_TIMEOUT_MS;
	h->start_ms = ML_HAPROXY_START_MS;
	if (!ml_lb_valid_name(app)) {
		esc = ml_lb_shown(app ? app : "");
		rc = ml_err_set(ML_EPROTO, "app '%s' is not %s", esc,
				ML_LB_NAME_WHAT);
		free(esc);
		return rc;
	}
	h->app = ml_xstrdup(app);
	h->dir = ml_xasprintf("%s/haproxy/%s", state_dir, app);
	h->cfg = ml_xasprintf("%s/haproxy.cfg", h->dir);
	h->cfg_new = ml_xasprintf("%s/haproxy.cfg.new", h->dir);
	h->cfg_old = ml_xasprintf("%s/haproxy.cfg.old", h->dir);
	h->pidfile = ml_xasprintf("%s/haproxy.pid", h->dir);
	h->admin_sock = ml_xasprintf("%s/admin.sock", h->dir);
	h->master_sock = ml_xasprintf("%s/master.sock", h->dir);
	h->state_file = ml_xasprintf("%s/server-state", h->dir);
	h->state_tmp = ml_xasprintf("%s/server-state.tmp", h->dir);
	h->lock_file = ml_xasprintf("%s/apply.flock", h->dir);
	h->log_file = ml_xasprintf("%s/haproxy.log", h->dir);
	if (bin && *bin)
		h->bin = ml_xstrdup(bin);
	else if (access("/usr/sbin/haproxy", X_OK) == 0)
		h->bin = ml_xstrdup("/usr/sbin/haproxy");
	else
		h->bin = ml_xstrdup("haproxy");
	/* HAProxy binds "<path>.<pid>.tmp" first, so leave it room */
	if (strlen(h->master_sock) + 16 >= sizeof(sun.sun_path))
		return ml_err_set(ML_ETOOBIG,
				  "the HAProxy socket path '%s' is too long "
				  "for a unix socket; use a shorter state "
				  "directory or app name",
				  h->master_sock);
	return 0;
}

void ml_haproxy_release(struct ml_haproxy *h)
{
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	free(h->app);
	free(h->dir);
	free(h->cfg);
	free(h->cfg_new);
	free(h->cfg_old);
	free(h->pidfile);
	free(h->admin_sock);
	free(h->master_sock);
	free(h->state_file);
	free(h->state_tmp);
	free(h->lock_file);
	free(h->log_file);
	free(h->bin);
	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
}

/* mkdir -p path with mode for the last component, 0755 above it. */
static int mkdir_p(const char *path, mode_t mode)
{
	char *p = ml_xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot create directory '%s'", p);
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		rc = ml_err_errno(ML_EFAIL, errno,
				  "cannot create directory '%s'", p);
out:
	free(p);
	return rc;
}

int ml_haproxy_mkdir(struct ml_haproxy *h)
{
	return mkdir_p(h->dir, 0700);
}

int ml_haproxy_lock(struct ml_haproxy *h)
{
	int64_t deadline = ml_mono_ms() + h->start_ms;
	int fd;

	if (h->lock_fd >= 0)
		return 0;
	fd = open(h->lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
				    h->lock_file);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			close(fd);
			return ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'",
					    h->lock_file);
		}
		if (ml_mono_ms() >= deadline) {
			close(fd);
			return ml_err_set(ML_EFAIL,
					  "another agent is changing HAProxy "
					  "for app '%s' (%s is locked); "
					  "try again",
					  h->app, h->lock_file);
		}
		ml_lb_sleep_ms(ML_LB_POLL_STEP_MS);
	}
	h->lock_fd = fd;
	return 0;
}

int ml_haproxy_write_file(const char *path, const void *p, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				    path);
	while (off < len) {
		n = write(fd, (const char *)p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE
							  : ML_EFAIL,
					  errno, "cannot write '%s'", path);
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		rc = ml_err_errno(errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				  errno, "cannot write '%s'", path);
out:
	close(fd);
	return rc;
}

