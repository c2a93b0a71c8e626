/*
 * Running real programs from tests (see proc.h): fork/exec with pipes for
 * stdin, stdout and stderr, a poll loop that drains both outputs, and a
 * deadline after which the child is killed. Outputs are capped at 64 MiB.
 */
#include "common/ml.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ml_test_run(struct ml_test_out *o, const char *dir,
		const char *const *env, const char *stdin_data, int timeout_s,
		const char *const *argv)
{
	int in[2], out[2], err[2], st;
	struct ml_buf ob = ML_BUF_INIT(0), eb = ML_BUF_INIT(0);
	size_t in_off = 0, in_len = stdin_data ? strlen(stdin_data) : 0;
	int64_t t0 = now_ms(), deadline = t0 + (int64_t)timeout_s * 1000;
	bool timed_out = false;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
	    pipe2(err, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		size_t i;

		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (dir && chdir(dir) < 0)
			_exit(126);
		for (i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (!in_len) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	signal(SIGPIPE, SIG_IGN);
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd p[3] = {
			{ out[0], POLLIN, 0 },
			{ err[0], POLLIN, 0 },
			{ in[1], POLLOUT, 0 },
		};
		int64_t left = deadline - now_ms();
		char chunk[65536];
		ssize_t n;
		int i;

		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(p, 3, (int)left) < 0 && errno != EINTR)
			break;
		for (i = 0; i < 2; i++) {
			int *fd = i == 0 ? &out[0] : &err[0];
			struct ml_buf *b = i == 0 ? &ob : &eb;

			if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(*fd, chunk, sizeof(chunk));
			if (n > 0) {
				ml_buf_add(b, chunk, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
		if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR))) {
			n = write(in[1], stdin_data + in_off, in_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == in_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	if (out[0] >= 0)
		close(out[0]);
	if (err[0] >= 0)
		close(err[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		o->status = -1;
	else if (WIFEXITED(st))
		o->status = WEXITSTATUS(st);
	else
		o->status = 128 + WTERMSIG(st);
	o->out = ml_buf_detach(&ob, &o->out_len);
	o->err = ml_buf_detach(&eb, &o->err_len);
	/* ML_TEST_TRACE=1: each command a case runs, with its time, to
	 * see where a slow case spends it */
	if (getenv("ML_TEST_TRACE") && *getenv("ML_TEST_TRACE")) {
		size_t i;

		fprintf(stderr,
			"+ %.1f s, status %d:", (double)(now_ms() - t0) / 1000,
			o->status);
		for (i = 0; argv[i] && i < 6; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "%s\n", argv[i] ? " ..." : "");
	}
	return 0;
}

void ml_test_out_release(struct ml_test_out *o)
{
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

const char *ml_test_src(void)
{
	const char *s = getenv("MLCTL_SRC");

	return s && *s ? s : ".";
}

int ml_test_mlctl(struct ml_test_out *o, const char *dir,
		  const char *const *env, const char *const *args)
{
	const char *argv[64];
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL;
	size_t i;
	int rc;

	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	argv[0] = bin;
	for (i = 0; args[i] && i + 2 < ML_ARRAY_SIZE(argv); i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	rc = ml_test_run(o, dir, env, NULL, 120, argv);
	free(def);
	return rc;
}

int ml_test_mlctl_kh(struct ml_test_out *o, const char *dir,
		     const char *known_hosts, const char *const *env,
		     const char *const *args)
{
	const char *argv[64];
	size_t n = 0, i;

	argv[n++] = "--known-hosts";
	argv[n++] = known_hosts;
	for (i = 0; args[i] && n + 1 < ML_ARRAY_SIZE(argv); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return ml_test_mlctl(o, dir, env, argv);
}

int ml_test_fleet(struct ml_test_out *keep, const char *dir,
		  const char *const *args)
{
	const char *argv[64];
	char *tool = ml_xasprintf("%s/tests/fleet/fleet", ml_test_src());
	struct ml_test_out o;
	size_t n = 0, i;
	int st;

	argv[n++] = tool;
	argv[n++] = args[0];
	argv[n++] = "--dir";
	argv[n++] = dir;
	for (i = 1; args[i] && n + 1 < ML_ARRAY_SIZE(argv); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (ml_test_run(&o, NULL, NULL, NULL, 180, argv) < 0)
		BUG("cannot run %s", tool);
	st = o.status;
	if (st != 0)
		fprintf(stderr, "fleet %s failed (%d): %s\n", args[0], st,
			o.err);
	if (keep)
		*keep = o;
	else
		ml_test_out_release(&o);
	free(tool);
	return st;
}

char *ml_test_slurp(const char *path)
{
	struct ml_buf b = ML_BUF_INIT(0);

	if (ml_buf_read_file(&b, path) < 0)
		BUG("%s", ml_err_msg());
	return ml_buf_detach(&b, NULL);
}

char *ml_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p = ml_xasprintf("%s/mlctl-%s-XXXXXX",
			       base && *base ? base : "/tmp", tag);

	if (!mkdtemp(p))
		BUG("mkdtemp: %s", strerror(errno));
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	ML_UNUSED(st);
	ML_UNUSED(ftw);
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void ml_test_rmtree(const char *path)
{
	if (path && *path && strcmp(path, "/"))
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void mkdirs_for(const char *file)
{
	char *p = ml_xstrdup(file), *s;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	free(p);
}

void ml_test_write(const char *dir, const char *name, const char *text)
{
	char *path = ml_xasprintf("%s/%s", dir, name);
	FILE *fp;

	mkdirs_for(path);
	fp = fopen(path, "w");
	if (!fp)
		BUG("cannot write %s: %s", path, strerror(errno));
	fputs(text, fp);
	fclose(fp);
	free(path);
}

void ml_test_write_random(const char *dir, const char *name, size_t bytes)
{
	char *path = ml_xasprintf("%s/%s", dir, name);
	char *buf = ml_xmalloc(bytes ? bytes : 1);
	int fd = open("/dev/urandom", O_RDONLY), out;

	mkdirs_for(path);
	if (fd < 0 || read(fd, buf, bytes) != (ssize_t)bytes)
		BUG("cannot read %zu random bytes", bytes);
	close(fd);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0 || write(out, buf, bytes) != (ssize_t)bytes)
		BUG("cannot write %s: %s", path, strerror(errno));
	close(out);
	free(buf);
	free(path);
}

char *ml_test_git(const char *dir, const char *const *args)
{
	static const char *const env[] = {
		"GIT_AUTHOR_NAME=mlctl test",
		"GIT_AUTHOR_EMAIL=test@mlctl.invalid",
		"GIT_COMMITTER_NAME=mlctl test",
		"GIT_COMMITTER_EMAIL=test@mlctl.invalid",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		NULL,
	};
	const char *argv[32] = { "git", "-c", "init.defaultBranch=main",
				 "-c", "commit.gpgsign=false" };
	struct ml_test_out o;
	size_t i, n = 5;
	char *res;

	for (i = 0; args[i] && n + 1 < ML_ARRAY_SIZE(argv); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (ml_test_run(&o, dir, env, NULL, 60, argv) < 0 || o.status != 0)
		BUG("git %s failed (%d): %s", args[0], o.status,
		    o.err ? o.err : "");
	while (o.out_len && (o.out[o.out_len - 1] == '\n'))
		o.out[--o.out_len] = '\0';
	res = o.out;
	o.out = NULL;
	ml_test_out_release(&o);
	return res;
}

char *ml_test_commit(const char *dir, const char *message)
{
	free(ml_test_git(dir, (const char *const[]){ "add", "-A", NULL }));
	free(ml_test_git(dir, (const char *const[]){ "commit", "-q",
						     "--allow-empty", "-m",
						     message, NULL }));
	return ml_test_git(dir, (const char *const[]){ "rev-parse", "HEAD",
						       NULL });
}

char *ml_test_read_src(const char *relpath)
{
	char *path = ml_xasprintf("%s/%s", ml_test_src(), relpath);
	char *text = ml_test_slurp(path);

	free(path);
	return text;
}

char *ml_test_fleet_address(const char *inventory, const char *host)
{
	char *key = ml_xasprintf("\n  %s:", host);
	const char *p = strstr(inventory, key);

	free(key);
	p = p ? strstr(p, "address: ") : NULL;
	if (!p)
		return NULL;
	p += strlen("address: ");
	return ml_xstrndup(p, strcspn(p, "\n \r"));
}

void ml_test_example_app(const char *repo, const char *model)
{
	static const char *const files[] = { "Dockerfile", "www/healthz",
					     "www/cgi-bin/predict" };
	char *p;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(files); i++) {
		char *rel = ml_xasprintf("examples/sentiment/%s", files[i]);
		char *text = ml_test_read_src(rel);

		ml_test_write(repo, files[i], text);
		free(text);
		free(rel);
	}
	ml_test_write(repo, "model.txt", model);
	p = ml_xasprintf("%s/www/cgi-bin/predict", repo);
	chmod(p, 0755);
	free(p);
}

void ml_test_ledger_remove(const char *repo)
{
	static const char *const sfx[] = { ".ledger", ".ledger-wal",
					   ".ledger-shm", ".ledger.key" };
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(sfx); i++) {
		char *p = ml_xasprintf("%s%s", repo, sfx[i]);

		unlink(p);
		free(p);
	}
}
