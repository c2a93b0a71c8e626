/*
 * Child processes with argv vectors (see run.h). The exec failure of the
 * child is sent to the parent over a close-on-exec pipe: an empty read
 * means the exec worked. The child only calls async-signal-safe functions
 * between fork and exec.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "orchestrator/image/run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


/* environ plus extra, in one new array (strings borrowed). */
static char **merged_env(const char *const *extra)
{
	size_t n = 0, k = 0, i;
	char **e;

	while (environ[n])
		n++;
	while (extra && extra[k])
		k++;
	e = ml_xcalloc(n + k + 1, sizeof(*e));
	for (i = 0; i < n; i++)
		e[i] = environ[i];
	for (i = 0; i < k; i++)
		e[n + i] = (char *)extra[i];
	return e;
}

int ml_child_start(struct ml_child *c, const char *const *argv,
		   const char *const *env, const char *err_path)
{
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, errfd = -1, child_errno;
	char **envp = merged_env(env);
	ssize_t r;
	int rc = 0;

	c->pid = -1;
	c->out_fd = -1;
	if (err_path) {
		errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0600);
		if (errfd < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
					  err_path);
			goto out;
		}
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot make a pipe");
		goto out;
	}
	c->pid = fork();
	if (c->pid < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot fork");
		goto out;
	}
	if (c->pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		signal(SIGPIPE, SIG_DFL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(out[1], 1);
		if (errfd >= 0)
			dup2(errfd, 2);
		/*
		 * Close what we inherited past stderr: mmdebstrap hands its
		 * own pipes to apt by number and runs "cat >&N" with dash,
		 * which takes single-digit fds only; the error pipe stays
		 * (close-on-exec).
		 */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != errp[1])
				close(fd);
		execvpe(argv[0], (char *const *)argv, envp);
		child_errno = errno;
		r = write(errp[1], &child_errno, sizeof(child_errno));
		(void)r;
		_exit(127);
	}
	close(out[1]);
	out[1] = -1;
	close(errp[1]);
	errp[1] = -1;
	do
		r = read(errp[0], &child_errno, sizeof(child_errno));
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(child_errno)) {
		waitpid(c->pid, NULL, 0);
		c->pid = -1;
		rc = ml_err_errno(ML_EFAIL, child_errno, "cannot run '%s'",
				  argv[0]);
		goto out;
	}
	c->out_fd = out[0];
	out[0] = -1;
out:
	if (out[0] >= 0)
		close(out[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	if (errfd >= 0)
		close(errfd);
	free(envp);
	return rc;
}

int ml_child_finish(struct ml_child *c, const char *name)
{
	int status;
	pid_t r;

	if (c->out_fd >= 0) {
		close(c->out_fd);
		c->out_fd = -1;
	}
	if (c->pid <= 0)
		return 0;
	do
		r = waitpid(c->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	c->pid = -1;
	if (r < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot wait for '%s'",
				    name);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return ml_err_set(ML_EFAIL, "'%s' was killed by signal %d",
				  name, WTERMSIG(status));
	return ml_err_set(ML_EFAIL, "'%s' exited with status %d", name,
			  WEXITSTATUS(status));
}

int ml_child_run(struct ml_buf *out, const char *const *argv,
		 const char *const *env, const char *err_path)
{
	struct ml_child c;
	int rc, rc2;

	rc = ml_child_start(&c, argv, env, err_path);
	if (rc < 0)
		return rc;
	rc = ml_buf_read_fd(out, c.out_fd);
	if (rc < 0)
		kill(c.pid, SIGTERM);
	rc2 = ml_child_finish(&c, argv[0]);
	return rc < 0 ? rc : rc2;
}
