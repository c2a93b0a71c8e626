/*
 * Container hardening and secret files (see harden.h).
 *
 * Why each default: no-new-privileges stops a setuid binary in the image
 * from raising the process's privileges; dropping every capability means
 * a compromised model server cannot change the network, mount, trace
 * other processes or chown files, and most HTTP servers need none of them
 * (a port above 1024 needs no NET_BIND_SERVICE); a pids limit keeps a
 * fork or thread leak from taking the VM down; an init process reaps
 * zombies and passes SIGTERM on so a drain finishes requests in flight.
 *
 * Secret files live on a tmpfs so that a value never reaches a disk or
 * `docker inspect`: Docker only knows the directory's path (a bind mount,
 * read only, at /run/secrets). The directory is the container's alone
 * (owner its uid, mode 0500; files 0400). Sizes: a secrets map is bounded
 * by container_run's checks (1000 keys, 1 MiB frame); /etc/passwd read
 * through the archive API is capped at 1 MiB.
 */
#include "common/ml.h"
#include "agent/harden.h"
#include "common/secure.h"
#include "common/docker.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define RUN_DIR_DEFAULT "/run/mlctl"
#define TMPFS_SIZE "size=64m"
#define PASSWD_MAX ((size_t)1 << 20)

static const char *const harden_keys[] = {
	"secrets_as", "no_new_privileges", "cap_add", "pids_limit",
	"read_only_root", "init", "restart", "open_slots", "allow_from", NULL};
static const char *const restarts[] = {"no", "on-failure", "always",
				       "unless-stopped", NULL};

static bool in_list(const char *s, const char *const *l)
{
	for (; *l; l++)
		if (!strcmp(s, *l))
			return true;
	return false;
}

static int want_bool(bool *out, json_t *sec, const char *op, const char *k)
{
	json_t *v = json_object_get(sec, k);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ml_err_set(ML_EPROTO,
				  "%s: 'security.%s' must be true or false", op,
				  k);
	*out = json_is_true(v);
	return 0;
}

static int want_word(const char **out, json_t *sec, const char *op,
		     const char *k, const char *const *allowed)
{
	json_t *v = json_object_get(sec, k);

	if (!v)
		return 0;
	if (!json_is_string(v) || !in_list(json_string_value(v), allowed))
		return ml_err_set(ML_EPROTO,
				  "%s: 'security.%s' has an unknown value", op,
				  k);
	*out = json_string_value(v);
	return 0;
}

int ml_agent_harden_parse(struct ml_agent_harden *out, json_t *sec,
			  const char *op)
{
	static const char *const as[] = {"files", "env", NULL};
	static const char *const inits[] = {"auto", "yes", "no", NULL};
	const char *k, *secrets_as = "files", *init = "auto";
	json_t *v;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	out->no_new_privileges = true;
	out->pids_limit = ML_AGENT_PIDS_DEFAULT;
	out->init = -1;
	out->restart = "unless-stopped";
	if (!sec)
		return 0;
	if (!json_is_object(sec))
		return ml_err_set(ML_EPROTO, "%s: 'security' must be an object",
				  op);
	json_object_foreach(sec, k, v)
	{
		if (!in_list(k, harden_keys))
			return ml_err_set(ML_EPROTO,
					  "%s: unknown key 'security.%s'", op,
					  k);
	}
	rc = want_word(&secrets_as, sec, op, "secrets_as", as);
	if (rc == 0)
		rc = want_word(&init, sec, op, "init", inits);
	if (rc == 0)
		rc = want_word(&out->restart, sec, op, "restart", restarts);
	if (rc == 0)
		rc = want_bool(&out->no_new_privileges, sec, op,
			       "no_new_privileges");
	if (rc == 0)
		rc = want_bool(&out->read_only_root, sec, op, "read_only_root");
	if (rc == 0)
		rc = want_bool(&out->open_slots, sec, op, "open_slots");
	out->allow_from = json_object_get(sec, "allow_from");
	if (rc == 0 && out->allow_from && !json_is_array(out->allow_from))
		rc = ml_err_set(ML_EPROTO,
				"%s: 'security.allow_from' must be a list", op);
	if (rc < 0)
		return rc;
	v = json_object_get(sec, "pids_limit");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
		  json_integer_value(v) > (1 << 22)))
		return ml_err_set(ML_EPROTO,
				  "%s: 'security.pids_limit' must be an "
				  "integer from 0 (no limit) to %d",
				  op, 1 << 22);
	if (v)
		out->pids_limit = json_integer_value(v);
	out->cap_add = json_object_get(sec, "cap_add");
	if (out->cap_add && !json_is_array(out->cap_add))
		return ml_err_set(ML_EPROTO,
				  "%s: 'security.cap_add' must be a list", op);
	json_array_foreach(out->cap_add, i, v)
	{
		if (!json_is_string(v) || !ml_cap_valid(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "%s: 'security.cap_add' item %zu is "
					  "not a capability name",
					  op, i);
	}
	out->secrets_env = !strcmp(secrets_as, "env");
	out->init = !strcmp(init, "auto") ? -1 : !strcmp(init, "yes");
	return 0;
}

/* Whether the image's entrypoint already is an init (reaps, forwards). */
static bool has_init(json_t *img_config)
{
	static const char *const inits[] = {"tini", "tini-static", "dumb-init",
					    "docker-init", "catatonit",
					    "s6-svscan", "init", NULL};
	json_t *ep = json_object_get(img_config, "Entrypoint");
	const char *s = json_string_value(json_array_get(ep, 0)), *base;

	if (!s)
		return false;
	base = strrchr(s, '/');
	return in_list(base ? base + 1 : s, inits);
}

static bool runs_as_root(json_t *img_config)
{
	const char *u = json_string_value(json_object_get(img_config, "User"));
	size_t n;

	if (!u || !*u)
		return true;
	n = strcspn(u, ":");
	return (n == 4 && !strncmp(u, "root", 4)) ||
	       (n == 1 && u[0] == '0');
}

void ml_agent_harden_apply(json_t *hc, const struct ml_agent_harden *h,
			   json_t *img_config, json_t *warnings)
{
	bool init = h->init == 1 || (h->init < 0 && !has_init(img_config));

	if (h->no_new_privileges)
		json_object_set_new(hc, "SecurityOpt",
				    json_pack("[s]", "no-new-privileges"));
	json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
	if (h->cap_add && json_array_size(h->cap_add))
		json_object_set(hc, "CapAdd", h->cap_add);
	if (h->pids_limit > 0)
		json_object_set_new(hc, "PidsLimit",
				    json_integer(h->pids_limit));
	json_object_set_new(hc, "RestartPolicy",
			    json_pack("{s:s}", "Name", h->restart));
	if (h->read_only_root) {
		json_object_set_new(hc, "ReadonlyRootfs", json_true());
		json_object_set_new(hc, "Tmpfs",
				    json_pack("{s:s}", "/tmp",
					      "rw,nosuid,nodev," TMPFS_SIZE));
	}
	json_object_set_new(hc, "Init", json_boolean(init));
	if (runs_as_root(img_config))
		json_array_append_new(
			warnings,
			json_string("the image runs as root (no USER, or "
				    "USER root, in its Dockerfile): a flaw "
				    "in the app is then a root process in "
				    "the container; add a USER line"));
}

/* ---- secret files --------------------------------------------------- */

static const char *run_dir(void)
{
	const char *e = getenv("MLCTL_RUN_DIR");

	return e && *e == '/' ? e : RUN_DIR_DEFAULT;
}

/* mkdir path (one level) with mode; an existing directory is fine. */
static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				    path);
	return 0;
}

/*
 * <run>/secrets, on a tmpfs (mounted here when it is not), mode 0700.
 * *out is the caller's.
 */
static int secrets_base(char **out)
{
	char *base = ml_xasprintf("%s/secrets", run_dir());
	struct statfs sf;
	int rc;

	rc = mkdir_one(run_dir(), 0755);
	if (rc == 0)
		rc = mkdir_one(base, 0700);
	if (rc < 0)
		goto out;
	if (statfs(base, &sf) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'", base);
		goto out;
	}
	if (sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC &&
	    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0700," TMPFS_SIZE) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno,
				  "'%s' is not on a tmpfs and mounting one "
				  "there failed (secrets must not reach a "
				  "disk): run the agent as root or mount a "
				  "tmpfs there",
				  base);
		goto out;
	}
	if (chmod(base, 0700) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot chmod 0700 '%s'",
				  base);
		goto out;
	}
	*out = base;
	base = NULL;
out:
	free(base);
	return rc;
}

int ml_agent_secret_dir(char **out, const char *name)
{
	char *base = NULL, *dir = NULL;
	int rc;

	if (!ml_docker_valid_name(name))
		BUG("secret dir for a bad name");
	rc = secrets_base(&base);
	if (rc < 0)
		goto out;
	dir = ml_xasprintf("%s/%s", base, name);
	rc = mkdir_one(dir, 0700);
	if (rc < 0)
		goto out;
	*out = dir;
	dir = NULL;
out:
	free(base);
	free(dir);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One file, written to a temporary name and renamed, so that the
 * container never reads half a value. */
static int write_one(int dfd, const char *dir, const char *key,
		     const char *val, size_t len, uid_t uid, gid_t gid)
{
	char tmp[300];
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), ".%s.tmp", key);
	unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s/%s'",
				    dir, tmp);
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0400) < 0)
		err = -errno;
	if (!err)
		err = write_all(fd, val, len);
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && renameat(dfd, tmp, dfd, key) < 0)
		err = -errno;
	if (err) {
		unlinkat(dfd, tmp, 0);
		return ml_err_errno(err == -ENOSPC ? ML_ENOSPACE : ML_EFAIL,
				    -err,
				    "cannot write secret '%s' to '%s' for "
				    "uid %u",
				    key, dir, (unsigned)uid);
	}
	return 0;
}

int ml_agent_secret_files_write(const char *name, json_t *secrets, uid_t uid,
				gid_t gid)
{
	char *dir = NULL;
	const char *k;
	json_t *v;
	DIR *dp = NULL;
	struct dirent *e;
	int dfd = -1, rc;

	rc = ml_agent_secret_dir(&dir, name);
	if (rc < 0)
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", dir);
		goto out;
	}
	json_object_foreach(secrets, k, v)
	{
		rc = write_one(dfd, dir, k, json_string_value(v),
			       json_string_length(v), uid, gid);
		if (rc < 0)
			goto out;
	}
	/* a secret the playbook no longer names goes away */
	dp = fdopendir(dup(dfd));
	while (dp && (e = readdir(dp)))
		if (e->d_name[0] != '.' && !json_object_get(secrets, e->d_name))
			unlinkat(dfd, e->d_name, 0);
	if (fchown(dfd, uid, gid) < 0 || fchmod(dfd, 0500) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno,
				  "cannot give '%s' to uid %u", dir,
				  (unsigned)uid);
		goto out;
	}
	rc = 0;
out:
	if (dp)
		closedir(dp);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

int ml_agent_secret_files_remove(const char *name)
{
	char *dir = ml_xasprintf("%s/secrets/%s", run_dir(), name);
	struct dirent *e;
	DIR *dp;
	int rc = 0;

	if (!ml_docker_valid_name(name))
		BUG("secret dir for a bad name");
	dp = opendir(dir);
	if (!dp && errno != ENOENT)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", dir);
	while (dp && (e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(dp), e->d_name, 0);
	if (dp) {
		closedir(dp);
		if (rmdir(dir) < 0 && errno != ENOENT)
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot remove '%s'", dir);
	}
	free(dir);
	return rc;
}

/* ---- the container's user ------------------------------------------- */

static bool parse_id(const char *s, size_t n, unsigned long *out)
{
	char buf[16], *end;

	if (!n || n >= sizeof(buf) || strspn(s, "0123456789") < n)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtoul(buf, &end, 10);
	return *out < 0x7fffffffUL;
}

/* The first file of a tar stream (the archive API's answer): its bytes,
 * or NULL when it is not a regular file. */
static const char *tar_first_file(const struct ml_buf *b, size_t *len)
{
	const char *h = b->data;
	unsigned long size;
	char oct[13];

	if (b->len < 512 || (h[156] != '0' && h[156] != '\0'))
		return NULL;
	memcpy(oct, h + 124, 12);
	oct[12] = '\0';
	size = strtoul(oct, NULL, 8);
	if (size > b->len - 512)
		return NULL;
	*len = size;
	return h + 512;
}

/* Look name up in a passwd file's text. */
static bool passwd_find(const char *p, size_t len, const char *name,
			size_t nlen, unsigned long *uid, unsigned long *gid)
{
	const char *end = p + len, *eol, *f[4];
	int i;

	for (; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) <= nlen || memcmp(p, name, nlen) ||
		    p[nlen] != ':')
			continue;
		f[0] = p;
		for (i = 1; i < 4; i++) {
			f[i] = memchr(f[i - 1], ':', (size_t)(eol - f[i - 1]));
			if (!f[i])
				return false;
			f[i]++;
		}
		return parse_id(f[2], strcspn(f[2], ":"), uid) &&
		       parse_id(f[3], strcspn(f[3], ":\n"), gid);
	}
	return false;
}

int ml_agent_container_user(uid_t *uid, gid_t *gid, struct ml_docker *d,
			    const char *u, const char *id)
{
	struct ml_buf b = ML_BUF_INIT(PASSWD_MAX);
	unsigned long pu = 0, pg = 0;
	const char *text;
	size_t n, tlen;
	char *path = NULL;
	int rc = 0;

	if (!u || !*u) {
		*uid = 0;
		*gid = 0;
		return 0;
	}
	n = strcspn(u, ":");
	if (parse_id(u, n, &pu)) {
		pg = pu;
		if (u[n] == ':' && !parse_id(u + n + 1, strlen(u + n + 1), &pg))
			pg = pu; /* a group name: 0400 files need no group */
		goto done;
	}
	if (!id || !ml_docker_valid_name(id))
		return ml_err_set(ML_EFAIL, "container without a valid Id");
	path = ml_xasprintf("/containers/%s/archive?path=%%2Fetc%%2Fpasswd",
			    id);
	rc = ml_docker_request_raw(d, NULL, "GET", path, NULL, &b);
	if (rc < 0)
		goto out;
	text = tar_first_file(&b, &tlen);
	if (!text || !passwd_find(text, tlen, u, n, &pu, &pg)) {
		rc = ml_err_set(ML_EFAIL,
				"the image's user '%.*s' is not in its "
				"/etc/passwd, so its secret files cannot be "
				"given to it: use a numeric USER",
				(int)(n > 64 ? 64 : n), u);
		goto out;
	}
done:
	*uid = (uid_t)pu;
	*gid = (gid_t)pg;
out:
	ml_buf_release(&b);
	free(path);
	return rc;
}
