#ifndef ML_IMAGE_RUN_H
#define ML_IMAGE_RUN_H

/*
 * Child processes for the image tools (apt-cache, mmdebstrap): argv
 * vectors run with execvp, never a shell. Shared by base.c only for now;
 * it lives beside it because nothing else in the controller runs local
 * programs.
 */

#include <sys/types.h>

struct ml_buf;

struct ml_child {
	pid_t pid;
	int out_fd; /* the child's stdout, ours to read; -1 when closed */
};

/*
 * Start argv[0] (looked up in PATH) with argv, the environment plus env
 * (NULL-terminated "NAME=VALUE" strings, may be NULL), stdin from
 * /dev/null, stdout a pipe (c->out_fd) and stderr to the file err_path
 * (created 0600, truncated; NULL: our own stderr). ML_EFAIL when the pipe
 * or the fork fails, or when argv[0] cannot be executed ("cannot run
 * 'x': No such file or directory", found out through a close-on-exec
 * pipe, so the caller knows before reading).
 */
int ml_child_start(struct ml_child *c, const char *const *argv,
		   const char *const *env, const char *err_path);

/*
 * Close c->out_fd if still open and wait for the child. 0 when it exited
 * 0; ML_EFAIL "'name' exited with status N" (or "was killed by signal
 * N") otherwise.
 */
int ml_child_finish(struct ml_child *c, const char *name);

/*
 * Run argv to the end with its stdout appended to out (bounded by
 * out->max: ML_ETOOBIG past it) and stderr to err_path as above.
 */
int ml_child_run(struct ml_buf *out, const char *const *argv,
		 const char *const *env, const char *err_path);

#endif
