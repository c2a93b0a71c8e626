/*
 * container_run: create and start one container of an app's revision, next
 * to whatever else runs (two slots per replica let a new revision start
 * beside the old one).
 *
 *	args:   {"app", "revision": N >= 0, "slot": "a"|"b", "replica": N,
 *		 "commit", "image": "sha256:..." or a reference, "port",
 *		 "host_port", "env": {K: V}, "secrets": {K: V},
 *		 "resources": {"cpus", "memory_bytes", "gpus"}, "cmd": [argv],
 *		 "logs": {"max_size_bytes", "max_files"},
 *		 "health": {...} (optional, at most HEALTH_LABEL_MAX bytes),
 *		 "resume": "ID" (optional)}
 *	result: {"id", "name", "created": true|false, "resumed": true|false}
 *
 * The container is named "<app>-r<revision>-<slot><replica>" and labelled
 * mlctl.app, mlctl.revision (decimal), mlctl.slot, mlctl.commit,
 * mlctl.replica (decimal) and mlctl.spec (the optional "spec" argument:
 * the controller's hash of what shapes the container, which its planner
 * compares to decide whether a host is up to date), and mlctl.health when
 * "health" is given: the health check the container's revision takes
 * traffic with, as compact JSON, so a later rollout with another check
 * keeps checking this container the way it was checked even when its own
 * ledger never saw the revision. The agent stores it, never reads it. If
 * that
 * name already runs the same image with the same labels and port, it is
 * returned as is ("created": false), so a retried request does no harm;
 * any other container of that name and app (stopped, crashed, older
 * attempt) is removed first. A container of that name that is not the
 * app's is never touched: that is an error.
 *
 * With "resume", nothing is created: container ID, a standby that
 * container_stop {"pause": true} froze, is brought back if it is the
 * app's, has the mlctl.spec, mlctl.slot and mlctl.replica labels and the
 * host port these arguments would give a new container, and is paused
 * (POST /containers/{id}/unpause) or running (left as is). Its slot is
 * opened like a new one's, and the answer names the container itself
 * ({"id", "name": its own, "created": false, "resumed": true}), whose
 * revision may not be the one asked for: the spec hash leaves the
 * revision out. Anything else (absent, another app or spec, exited) is
 * ML_ENOTFOUND "container 'ID' cannot be resumed: ...", and the
 * controller starts a new container instead. Its secrets are left alone:
 * it was created with them and its spec hash covers their values.
 *
 * Secrets: values are never logged, never put in an error message or a
 * reply, and never on a command line. They reach Docker in the JSON body
 * of POST /containers/create over the unix socket, and are kept on the VM
 * in <state>/secrets/<name>.env (dir 0700, file 0600, written to a
 * temporary file opened O_EXCL then renamed), as one JSON object
 * {"KEY": "VALUE"} with sorted keys: JSON because a value may hold
 * newlines (a PEM key), which the KEY=VALUE env-file format cannot carry.
 *
 * Sizes: at most ENV_MAX env and secret entries, keys of ENV_KEY_MAX
 * bytes; cmd at most CMD_MAX arguments; the whole request is bounded by
 * the 1 MiB frame anyway.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/firewall.h"
#include "agent/harden.h"
#include "common/docker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define OP "container_run"
#define ENV_MAX 1000
#define ENV_KEY_MAX 256
#define CMD_MAX 256
#define CMD_ARG_MAX (64 << 10)
#define CPUS_MAX 4096.0
#define GPUS_MAX 1024
#define REPLICA_MAX 999
#define HEALTH_LABEL_MAX 4096
#define MEMORY_MAX ((json_int_t)1 << 50)
#define NAME_SIZE (ML_DOCKER_NAME_MAX + 1)
#define SECRETS_DIR "secrets"
/* json-file rotation: a container's logs never take more than
 * max_size * max_files of the VM's disk (defaults 10 MiB x 3) */
#define LOG_SIZE_DEFAULT ((json_int_t)10 << 20)
#define LOG_SIZE_MIN ((json_int_t)64 << 10)
#define LOG_SIZE_MAX ((json_int_t)1 << 40)
#define LOG_FILES_DEFAULT 3
#define LOG_FILES_MAX 100

struct run_spec {
	const char *app, *slot, *commit, *image;
	json_int_t revision, replica, port, host_port;
	json_t *env, *secrets, *cmd; /* borrowed from args, may be NULL */
	struct ml_agent_harden harden; /* "security", defaults when absent */
	char bind[64];		       /* HostIp of the slot */
	double cpus;		     /* 0: no limit */
	json_int_t memory;	     /* bytes, 0: no limit */
	json_int_t gpus;	     /* -1: all, 0: none */
	char name[NAME_SIZE];
	char rev[24];	     /* revision as a label */
	char replica_s[24];  /* replica as a label */
	const char *spec;    /* mlctl.spec label: the controller's hash of
			      * everything that shapes the container, or "" */
	const char *resume;  /* container to bring back, or NULL */
	char *health;	     /* mlctl.health label (compact JSON), or NULL */
	char port_key[16];   /* "8000/tcp" */
	char host_port_s[8]; /* "18000" */
	json_int_t log_size, log_files; /* json-file max-size, max-file */
	char log_size_s[24], log_files_s[8];
};

int ml_agent_arg_int(json_int_t *out, json_t *args, const char *op,
		     const char *key, json_int_t min, json_int_t max,
		     bool required)
{
	json_t *v = json_object_get(args, key);

	if (!v && !required)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return ml_err_set(ML_EPROTO,
				  "%s: '%s' must be an integer from %lld to "
				  "%lld",
				  op, key, (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static bool env_key_ok(const char *k)
{
	size_t i;

	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
	      *k == '_'))
		return false;
	for (i = 1; k[i]; i++)
		if (i >= ENV_KEY_MAX ||
		    !((k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/*
 * Check an env or secrets map. Messages name keys, never values: a key
 * is a variable name and safe to show, a value may be a secret.
 */
static int check_env(json_t *m, const char *what, json_t *other)
{
	const char *k;
	json_t *v;

	if (!json_is_object(m))
		return ml_err_set(ML_EPROTO, "%s: '%s' must be an object", OP,
				  what);
	if (json_object_size(m) > ENV_MAX)
		return ml_err_set(ML_EPROTO,
				  "%s: '%s' has more than %d "
				  "entries",
				  OP, what, ENV_MAX);
	json_object_foreach(m, k, v)
	{
		if (!env_key_ok(k))
			return ml_err_set(ML_EPROTO,
					  "%s: %s: names must be letters, "
					  "digits and '_', not starting with "
					  "a digit, at most %d bytes",
					  OP, what, ENV_KEY_MAX);
		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return ml_err_set(ML_EPROTO,
					  "%s: %s '%s' must be a string "
					  "without NUL bytes",
					  OP, what, k);
		if (!strcmp(k, "MLCTL_REVISION") || !strcmp(k, "MLCTL_SLOT"))
			return ml_err_set(ML_EPROTO,
					  "%s: %s '%s' is set by mlctl", OP,
					  what, k);
		if (other && json_object_get(other, k))
			return ml_err_set(ML_EPROTO,
					  "%s: '%s' is both in env and in "
					  "secrets",
					  OP, k);
	}
	return 0;
}

/* A digest "sha256:<64 hex>" or a reference such as "repo/name:tag",
 * never with a "." or ".." component (it goes into an API path). */
static bool image_ok(const char *s)
{
	if (!strncmp(s, "sha256:", 7) && strlen(s) != 7 + 64)
		return false; /* the controller sends whole ids */
	return ml_docker_valid_image(s);
}

static int check_cmd(json_t *cmd)
{
	json_t *v;
	size_t i;

	if (!json_is_array(cmd) || !json_array_size(cmd) ||
	    json_array_size(cmd) > CMD_MAX)
		return ml_err_set(ML_EPROTO,
				  "%s: 'cmd' must be a list of 1 to %d strings",
				  OP, CMD_MAX);
	json_array_foreach(cmd, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) > CMD_ARG_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return ml_err_set(ML_EPROTO,
					  "%s: 'cmd' argument %zu must be a "
					  "string without NUL bytes, at most "
					  "%d bytes",
					  OP, i, CMD_ARG_MAX);
	}
	return 0;
}

static int parse_resources(struct run_spec *s, json_t *r)
{
	json_t *cpus = json_object_get(r, "cpus");
	int rc;

	if (!json_is_object(r))
		return ml_err_set(ML_EPROTO,
				  "%s: 'resources' must be an object", OP);
	if (cpus) {
		if (!json_is_number(cpus) || !(json_number_value(cpus) >= 0) ||
		    json_number_value(cpus) > CPUS_MAX)
			return ml_err_set(ML_EPROTO,
					  "%s: 'resources.cpus' must be a "
					  "number from 0 (no limit) to %g",
					  OP, CPUS_MAX);
		s->cpus = json_number_value(cpus);
	}
	rc = ml_agent_arg_int(&s->memory, r, OP, "memory_bytes", 0, MEMORY_MAX,
			      false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->gpus, r, OP, "gpus", -1, GPUS_MAX,
				      false);
	return rc;
}

static int parse_args(struct run_spec *s, json_t *args)
{
	json_t *r;
	int rc, n;

	memset(s, 0, sizeof(*s));
	rc = ml_agent_arg_name(&s->app, args, OP, "app", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->revision, args, OP, "revision", 0,
				      (json_int_t)ML_PROTO_MAX_ID, true);
	if (rc == 0)
		rc = ml_agent_arg_name(&s->slot, args, OP, "slot", false);
	if (rc == 0 && strcmp(s->slot, "a") && strcmp(s->slot, "b"))
		rc = ml_err_set(ML_EPROTO, "%s: 'slot' must be \"a\" or \"b\"",
				OP);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->replica, args, OP, "replica", 0,
				      REPLICA_MAX, true);
	if (rc == 0)
		rc = ml_agent_arg_name(&s->commit, args, OP, "commit", true);
	s->spec = "";
	if (rc == 0 && json_object_get(args, "spec"))
		rc = ml_agent_arg_name(&s->spec, args, OP, "spec", true);
	if (rc == 0 && json_object_get(args, "resume"))
		rc = ml_agent_arg_name(&s->resume, args, OP, "resume", true);
	if (rc == 0 && json_object_get(args, "health")) {
		if (!json_is_object(json_object_get(args, "health")))
			rc = ml_err_set(ML_EPROTO,
					"%s: 'health' must be an object", OP);
		else
			s->health = json_dumps(json_object_get(args, "health"),
					       JSON_COMPACT | JSON_SORT_KEYS);
		if (rc == 0 && (!s->health ||
				strlen(s->health) > HEALTH_LABEL_MAX))
			rc = ml_err_set(ML_EPROTO,
					"%s: 'health' must be at most %d bytes "
					"of JSON",
					OP, HEALTH_LABEL_MAX);
	}
	if (rc == 0)
		rc = ml_agent_arg_name(&s->image, args, OP, "image", false);
	if (rc == 0 && !image_ok(s->image))
		rc = ml_err_set(ML_EPROTO,
				"%s: 'image' must be \"sha256:\" and 64 hex "
				"digits, or a reference of letters, digits "
				"and ._/:@- without empty or dot components "
				"(at most %d bytes)",
				OP, ML_DOCKER_IMAGE_MAX);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->port, args, OP, "port", 1, 65535,
				      true);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->host_port, args, OP, "host_port", 1,
				      65535, true);
	if (rc < 0)
		return rc;

	s->secrets = json_object_get(args, "secrets");
	s->env = json_object_get(args, "env");
	if (s->env && (rc = check_env(s->env, "env", s->secrets)) < 0)
		return rc;
	if (s->secrets && (rc = check_env(s->secrets, "secrets", NULL)) < 0)
		return rc;
	s->cmd = json_object_get(args, "cmd");
	if (s->cmd && (rc = check_cmd(s->cmd)) < 0)
		return rc;
	r = json_object_get(args, "resources");
	if (r && (rc = parse_resources(s, r)) < 0)
		return rc;
	rc = ml_agent_harden_parse(&s->harden,
				   json_object_get(args, "security"), OP);
	if (rc < 0)
		return rc;
	if (!s->harden.open_slots && ml_agent_reached_over_ipv6())
		return ml_err_set(ML_EINVALID,
				  "%s: this host was reached over IPv6, and "
				  "slots are bound and firewalled on an IPv4 "
				  "fleet address only: reach it by its IPv4 "
				  "address, or set security.open_slots: true "
				  "and filter the slots yourself",
				  OP);
	if (s->harden.open_slots)
		snprintf(s->bind, sizeof(s->bind), "0.0.0.0");
	else
		ml_agent_fleet_address(s->bind, sizeof(s->bind));
	s->log_size = LOG_SIZE_DEFAULT;
	s->log_files = LOG_FILES_DEFAULT;
	r = json_object_get(args, "logs");
	if (r && !json_is_object(r))
		return ml_err_set(ML_EPROTO, "%s: 'logs' must be an object",
				  OP);
	rc = ml_agent_arg_int(&s->log_size, r, OP, "max_size_bytes",
			      LOG_SIZE_MIN, LOG_SIZE_MAX, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->log_files, r, OP, "max_files", 1,
				      LOG_FILES_MAX, false);
	if (rc < 0)
		return rc;
	snprintf(s->log_size_s, sizeof(s->log_size_s), "%lld",
		 (long long)s->log_size);
	snprintf(s->log_files_s, sizeof(s->log_files_s), "%lld",
		 (long long)s->log_files);

	n = snprintf(s->name, sizeof(s->name), "%s-r%lld-%s%lld", s->app,
		     (long long)s->revision, s->slot, (long long)s->replica);
	if (n < 0 || (size_t)n >= sizeof(s->name) ||
	    !ml_docker_valid_name(s->name))
		return ml_err_set(ML_EPROTO,
				  "%s: container name for app '%s' would be "
				  "longer than %d bytes",
				  OP, s->app, ML_DOCKER_NAME_MAX);
	snprintf(s->rev, sizeof(s->rev), "%lld", (long long)s->revision);
	snprintf(s->replica_s, sizeof(s->replica_s), "%lld",
		 (long long)s->replica);
	snprintf(s->port_key, sizeof(s->port_key), "%lld/tcp",
		 (long long)s->port);
	snprintf(s->host_port_s, sizeof(s->host_port_s), "%lld",
		 (long long)s->host_port);
	return 0;
}

/* ---- the secrets file ---------------------------------------------- */

/* mkdir -p with mode for the missing parts; existing dirs are kept. */
static int mkdir_p(const char *path, mode_t mode)
{
	char *p = ml_xstrdup(path), *q;
	int rc = 0;

	for (q = p + 1;; q++) {
		if (*q && *q != '/')
			continue;
		if (q[-1] != '/') {
			char c = *q;

			*q = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = ml_err_errno(ML_EFAIL, errno,
						  "cannot create '%s'", p);
				break;
			}
			*q = c;
		}
		if (!*q)
			break;
	}
	free(p);
	return rc;
}

/*
 * Open <state>/secrets, creating it 0700, and make sure it is a real
 * directory of ours that nobody else can read. *dfd is the caller's.
 */
static int secrets_dir(int *dfd, struct ml_agent *a, bool create)
{
	char *dir = ml_xasprintf("%s/%s", a->state_dir, SECRETS_DIR);
	struct stat st;
	int fd = -1, rc;

	if (create) {
		rc = mkdir_p(dir, 0700);
		if (rc < 0)
			goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = ml_err_errno(errno == ENOENT ? ML_ENOTFOUND : ML_EFAIL,
				  errno, "cannot open '%s'", dir);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'", dir);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		rc = ml_err_set(ML_EFAIL,
				"'%s' belongs to uid %u, not to the agent's "
				"uid %u: fix its owner",
				dir, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((st.st_mode & 077) && fchmod(fd, 0700) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot chmod 0700 '%s'",
				  dir);
		goto out;
	}
	*dfd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
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

/* Write secrets (an object of strings) as <name>.env, atomically. */
static int secrets_write(struct ml_agent *a, const char *name, json_t *secrets)
{
	char file[NAME_SIZE + 8], tmp[NAME_SIZE + 16];
	char *text = NULL;
	int dfd = -1, fd = -1, rc, err, tries;

	snprintf(file, sizeof(file), "%s.env", name);
	snprintf(tmp, sizeof(tmp), "%s.env.tmp", name);
	rc = secrets_dir(&dfd, a, true);
	if (rc < 0)
		goto out;
	text = json_dumps(secrets, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	for (tries = 0; tries < 2; tries++) {
		fd = openat(dfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0600);
		if (fd >= 0 || errno != EEXIST)
			break;
		/* left by an agent that died mid-write: only we write here */
		unlinkat(dfd, tmp, 0);
	}
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s/%s/%s'",
				  a->state_dir, SECRETS_DIR, tmp);
		goto out;
	}
	err = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (!err)
		err = write_all(fd, text, strlen(text));
	if (!err)
		err = write_all(fd, "\n", 1);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	fd = -1;
	if (!err && renameat(dfd, tmp, dfd, file) < 0)
		err = -errno;
	if (err) {
		unlinkat(dfd, tmp, 0);
		rc = ml_err_errno(err == -ENOSPC ? ML_ENOSPACE : ML_EFAIL, -err,
				  "cannot write '%s/%s/%s'", a->state_dir,
				  SECRETS_DIR, file);
		goto out;
	}
	fsync(dfd);
	rc = 0;
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* Remove <state>/secrets/<name>.env (secrets_as: env). */
static int secrets_env_remove(struct ml_agent *a, const char *name)
{
	char file[NAME_SIZE + 8];
	int dfd = -1, rc;

	if (!ml_docker_valid_name(name))
		BUG("secrets file for a bad name");
	snprintf(file, sizeof(file), "%s.env", name);
	rc = secrets_dir(&dfd, a, false);
	if (rc == ML_ENOTFOUND) {
		ml_err_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	if (unlinkat(dfd, file, 0) < 0 && errno != ENOENT)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot remove '%s/%s/%s'",
				  a->state_dir, SECRETS_DIR, file);
	else
		fsync(dfd);
	close(dfd);
	return rc;
}

int ml_agent_secrets_remove(struct ml_agent *a, const char *name)
{
	int rc = secrets_env_remove(a, name);

	if (rc == 0)
		rc = ml_agent_secret_files_remove(name);
	return rc;
}

/*
 * Give the secrets to container id as files, owned by the user it runs
 * as (the image's USER: container_run never overrides it).
 */
static int secret_files(struct ml_docker *d, const struct run_spec *s,
			json_t *img_config, const char *id)
{
	const char *user = json_string_value(
		json_object_get(img_config, "User"));
	uid_t uid;
	gid_t gid;
	int rc;

	rc = ml_agent_container_user(&uid, &gid, d, user ? user : "", id);
	if (rc == 0)
		rc = ml_agent_secret_files_write(s->name, s->secrets, uid, gid);
	return rc;
}

/* ---- Docker ------------------------------------------------------- */

/*
 * The image's id and its Config (*config, the caller's reference);
 * ML_ENOTFOUND, with the message for the user, if absent.
 */
static int image_id(char **out, json_t **config, struct ml_docker *d,
		    const char *image)
{
	char *path = ml_xasprintf("/images/%s/json", image);
	json_t *img = NULL;
	const char *id;
	int rc;

	rc = ml_docker_get(d, path, &img);
	if (rc == ML_ENOTFOUND) {
		rc = ml_err_set(ML_ENOTFOUND,
				"image %s is not on this host: deliver it "
				"first",
				image);
		goto out;
	}
	if (rc < 0)
		goto out;
	id = json_string_value(json_object_get(img, "Id"));
	if (!id) {
		rc = ml_err_set(ML_EFAIL, "docker: GET %s: no image Id", path);
		goto out;
	}
	*out = ml_xstrdup(id);
	*config = json_incref(json_object_get(img, "Config"));
out:
	json_decref(img);
	free(path);
	return rc;
}

static bool label_is(json_t *labels, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(labels, key));

	return v && !strcmp(v, want);
}

/*
 * Whether container c (an inspect answer) is what s asks for, already
 * running. Sets *ours when it carries the app's label.
 */
static bool is_wanted(const struct run_spec *s, json_t *c, const char *img,
		      bool *ours)
{
	json_t *labels =
		json_object_get(json_object_get(c, "Config"), "Labels");
	json_t *st = json_object_get(c, "State");
	json_t *pb = json_object_get(
		json_object_get(json_object_get(c, "HostConfig"),
				"PortBindings"),
		s->port_key);
	const char *cimg = json_string_value(json_object_get(c, "Image"));
	const char *hp = json_string_value(
		json_object_get(json_array_get(pb, 0), "HostPort"));

	*ours = label_is(labels, "mlctl.app", s->app);
	return *ours && json_is_true(json_object_get(st, "Running")) &&
	       !json_is_true(json_object_get(st, "Restarting")) &&
	       !json_is_true(json_object_get(st, "Paused")) && cimg &&
	       !strcmp(cimg, img) &&
	       label_is(labels, "mlctl.revision", s->rev) &&
	       label_is(labels, "mlctl.slot", s->slot) &&
	       label_is(labels, "mlctl.commit", s->commit) &&
	       label_is(labels, "mlctl.replica", s->replica_s) &&
	       label_is(labels, "mlctl.spec", s->spec) && hp &&
	       !strcmp(hp, s->host_port_s);
}

static void env_add(json_t *env, json_t *m)
{
	const char *k;
	json_t *v;
	char *kv;

	json_object_foreach(m, k, v)
	{
		kv = ml_xasprintf("%s=%s", k, json_string_value(v));
		json_array_append_new(env, json_string(kv));
		explicit_bzero(kv, strlen(kv));
		free(kv);
	}
}

/*
 * The body of POST /containers/create. Secrets go in Env only when the
 * playbook asks; by default the container gets secret_dir (on a tmpfs)
 * bind-mounted read-only at /run/secrets and Docker never sees a value.
 */
static json_t *create_body(const struct run_spec *s, json_t *img_config,
			   const char *secret_dir, json_t *warnings)
{
	json_t *env = json_array(), *hc, *body, *req;
	char *v;

	v = ml_xasprintf("MLCTL_REVISION=%s", s->rev);
	json_array_append_new(env, json_string(v));
	free(v);
	v = ml_xasprintf("MLCTL_SLOT=%s", s->slot);
	json_array_append_new(env, json_string(v));
	free(v);
	env_add(env, s->env);
	if (s->harden.secrets_env)
		env_add(env, s->secrets);

	hc = json_pack("{s:{s:[{s:s,s:s}]},s:{s:s},s:{s:s,s:{s:s,s:s}},s:b}",
		       "PortBindings", s->port_key, "HostIp", "0.0.0.0",
		       "HostPort", s->host_port_s, "RestartPolicy", "Name",
		       "unless-stopped", "LogConfig", "Type", "json-file",
		       "Config", "max-size", s->log_size_s, "max-file",
		       s->log_files_s, "Init", 1);
	if (!hc)
		BUG("out of memory");
	/* replaces RestartPolicy and Init with the playbook's */
	ml_agent_harden_apply(hc, &s->harden, img_config, warnings);
	/* the slot listens on the fleet address only (agent/firewall.h) */
	json_object_set_new(json_array_get(json_object_get(json_object_get(
						   hc, "PortBindings"),
					   s->port_key),
			    0),
			    "HostIp", json_string(s->bind));
	if (secret_dir)
		json_object_set_new(
			hc, "Mounts",
			json_pack("[{s:s,s:s,s:s,s:b}]", "Type", "bind",
				  "Source", secret_dir, "Target",
				  ML_AGENT_SECRETS_TARGET, "ReadOnly", 1));
	if (s->cpus > 0)
		json_object_set_new(
			hc, "NanoCpus",
			json_integer((json_int_t)(s->cpus * 1e9 + 0.5)));
	if (s->memory > 0)
		json_object_set_new(hc, "Memory", json_integer(s->memory));
	if (s->gpus != 0) {
		req = json_pack("[{s:s,s:I,s:[[s]]}]", "Driver", "nvidia",
				"Count", (json_int_t)s->gpus, "Capabilities",
				"gpu");
		if (!req)
			BUG("out of memory");
		json_object_set_new(hc, "DeviceRequests", req);
	}
	body = json_pack("{s:s,s:o,s:{s:s,s:s,s:s,s:s,s:s,s:s},s:{s:{}},s:o}",
			 "Image", s->image, "Env", env, "Labels", "mlctl.app",
			 s->app, "mlctl.revision", s->rev, "mlctl.slot",
			 s->slot, "mlctl.commit", s->commit, "mlctl.replica",
			 s->replica_s, "mlctl.spec", s->spec, "ExposedPorts",
			 s->port_key, "HostConfig", hc);
	if (!body)
		BUG("out of memory");
	if (s->health)
		json_object_set_new(json_object_get(body, "Labels"),
				    "mlctl.health", json_string(s->health));
	if (s->cmd)
		json_object_set(body, "Cmd", s->cmd);
	return body;
}

/* Remove container ref (force, with anonymous volumes); absent is fine. */
static int remove_container(struct ml_docker *d, const char *ref)
{
	char *path = ml_xasprintf("/containers/%s?force=1&v=1", ref);
	int rc = ml_docker_request(d, "DELETE", path, NULL, NULL);

	if (rc == ML_ENOTFOUND) {
		ml_err_clear();
		rc = 0;
	}
	free(path);
	return rc;
}

/*
 * Why container c (an inspect answer) cannot stand in for what s asks
 * for, or NULL when it can: the labels that say which container of the
 * app it is, compared as is_wanted does, and its host port, which
 * resume() opens. The revision and commit are not compared (a rollback
 * resumes the old revision's container under a new revision number), nor
 * the image, which the spec covers.
 */
static const char *not_resumable(const struct run_spec *s, json_t *c)
{
	json_t *labels =
		json_object_get(json_object_get(c, "Config"), "Labels");
	json_t *st = json_object_get(c, "State");
	json_t *pb = json_object_get(
		json_object_get(json_object_get(c, "HostConfig"),
				"PortBindings"),
		s->port_key);
	const char *hp = json_string_value(
		json_object_get(json_array_get(pb, 0), "HostPort"));

	if (!label_is(labels, "mlctl.app", s->app))
		return "it is not a container of this app";
	if (!label_is(labels, "mlctl.spec", s->spec))
		return "its mlctl.spec label is not this run's";
	if (!label_is(labels, "mlctl.slot", s->slot) ||
	    !label_is(labels, "mlctl.replica", s->replica_s))
		return "its slot or replica is not this run's";
	if (!hp || strcmp(hp, s->host_port_s))
		return "it does not publish this run's port on its host port";
	if (!json_is_true(json_object_get(st, "Running")) ||
	    json_is_true(json_object_get(st, "Restarting")))
		return "it is neither paused nor running";
	return NULL;
}

/*
 * Bring back container s->resume instead of creating one (see the top of
 * the file): *result as op_container_run's. The slot is opened before the
 * unpause so that a failure leaves the standby as it was.
 */
/* The slot's host port opened to the balancer (agent/firewall.h), unless
 * the host's hardening leaves slots open. */
static int open_slot(const struct run_spec *s)
{
	if (s->harden.open_slots)
		return 0;
	return ml_agent_firewall_open(s->app, (int)s->host_port,
				      s->harden.allow_from, s->bind);
}

static int resume(json_t **result, struct ml_docker *d,
		  const struct run_spec *s)
{
	char *path = ml_xasprintf("/containers/%s/json", s->resume);
	json_t *c = NULL, *st, *r;
	const char *name, *cid, *why;
	int rc;

	rc = ml_docker_get(d, path, &c);
	if (rc == ML_ENOTFOUND) {
		rc = ml_err_set(ML_ENOTFOUND,
				"container '%s' cannot be resumed: docker "
				"does not know it",
				s->resume);
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = ml_agent_name_id(c, path, &name, &cid);
	if (rc < 0)
		goto out;
	why = not_resumable(s, c);
	if (why) {
		rc = ml_err_set(ML_ENOTFOUND,
				"container '%s' cannot be resumed: %s",
				s->resume, why);
		goto out;
	}
	rc = open_slot(s);
	if (rc < 0)
		goto out;
	st = json_object_get(c, "State");
	if (json_is_true(json_object_get(st, "Paused"))) {
		free(path);
		path = ml_xasprintf("/containers/%s/unpause", cid);
		rc = ml_docker_request_raw(d, NULL, "POST", path, NULL, NULL);
		if (rc == ML_ENOTFOUND)
			rc = ml_err_set(ML_ENOTFOUND,
					"container '%s' cannot be resumed: "
					"it went away",
					s->resume);
		if (rc < 0)
			goto out;
	}
	r = json_object();
	ml_agent_set_str(r, "id", cid);
	ml_agent_set_str(r, "name", name);
	json_object_set_new(r, "created", json_false());
	json_object_set_new(r, "resumed", json_true());
	*result = r;
	rc = 0;
out:
	json_decref(c);
	free(path);
	return rc;
}

static int op_container_run(struct ml_agent *a, json_t *args, json_t **result)
{
	struct run_spec s;
	struct ml_docker *d;
	json_t *c = NULL, *body = NULL, *created = NULL, *r, *icfg = NULL;
	json_t *warnings = json_array();
	char *img = NULL, *path = NULL, *id = NULL, *msg, *sdir = NULL;
	bool ours = false, made = false, wrote = false, files;
	int rc, code;

	rc = parse_args(&s, args);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	if (s.resume) {
		rc = resume(result, d, &s);
		goto out;
	}
	rc = image_id(&img, &icfg, d, s.image);
	if (rc < 0)
		goto out;

	path = ml_xasprintf("/containers/%s/json", s.name);
	rc = ml_docker_get(d, path, &c);
	if (rc < 0 && rc != ML_ENOTFOUND)
		goto out;
	if (rc == 0 && is_wanted(&s, c, img, &ours)) {
		id = ml_xstrdup(json_string_value(json_object_get(c, "Id")));
	} else if (rc == 0 && !ours) {
		rc = ml_err_set(ML_EFAIL,
				"a container named '%s' exists without the "
				"label mlctl.app=%s: mlctl leaves it alone; "
				"remove or rename it",
				s.name, s.app);
		goto out;
	} else if (rc == 0) {
		rc = remove_container(d, s.name);
		if (rc < 0)
			goto out;
	}
	ml_err_clear();

	files = s.secrets && json_object_size(s.secrets) &&
		!s.harden.secrets_env;
	if (s.secrets && json_object_size(s.secrets) && s.harden.secrets_env) {
		rc = secrets_write(a, s.name, s.secrets);
		wrote = true;
	} else {
		rc = secrets_env_remove(a, s.name);
	}
	if (rc == 0 && !files)
		rc = ml_agent_secret_files_remove(s.name);
	if (rc == 0 && files && id)
		rc = secret_files(d, &s, icfg, id);
	if (rc == 0 && files && !id) {
		rc = ml_agent_secret_dir(&sdir, s.name);
		wrote = true;
	}
	if (rc == 0)
		rc = open_slot(&s);
	if (rc < 0)
		goto out;
	if (id)
		goto done; /* already running as asked */

	free(path);
	path = ml_xasprintf("/containers/create?name=%s", s.name);
	body = create_body(&s, icfg, sdir, warnings);
	rc = ml_docker_post(d, path, body, &created);
	if (rc == ML_ENOTFOUND)
		rc = ml_err_set(ML_ENOTFOUND,
				"image %s is not on this host: deliver it "
				"first",
				s.image);
	if (rc < 0)
		goto out;
	if (!json_string_value(json_object_get(created, "Id")) ||
	    !ml_docker_valid_name(
		    json_string_value(json_object_get(created, "Id")))) {
		rc = ml_err_set(ML_EFAIL, "docker: POST /containers/create: "
					  "no valid container Id");
		goto out;
	}
	id = ml_xstrdup(json_string_value(json_object_get(created, "Id")));
	made = true;
	if (files && (rc = secret_files(d, &s, icfg, id)) < 0)
		goto out;
	free(path);
	path = ml_xasprintf("/containers/%s/start", id);
	rc = ml_docker_request_raw(d, NULL, "POST", path, NULL, NULL);
	if (rc < 0)
		goto out;
	made = false;
done:
	r = json_object();
	ml_agent_set_str(r, "id", id);
	ml_agent_set_str(r, "name", s.name);
	json_object_set_new(r, "created", json_boolean(created != NULL));
	json_object_set_new(r, "resumed", json_false());
	if (json_array_size(warnings))
		json_object_set(r, "warnings", warnings);
	*result = r;
	rc = 0;
out:
	if (rc < 0 && (made || wrote)) {
		/* leave nothing half-made behind; keep the first error */
		code = ml_err_code();
		msg = ml_xstrdup(ml_err_msg());
		if (made)
			remove_container(d, id);
		if (wrote)
			ml_agent_secrets_remove(a, s.name);
		ml_err_set(code, "%s", msg);
		free(msg);
	}
	json_decref(c);
	json_decref(body);
	json_decref(created);
	json_decref(icfg);
	json_decref(warnings);
	free(s.health);
	free(sdir);
	free(img);
	free(path);
	free(id);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_run = {
	.name = "container_run",
	.summary = "create and start a container of an app revision",
	.run = op_container_run,
};
