/*
 * Secret values (see secrets.h). The file format is one NAME=VALUE per
 * line; blank lines and lines starting with '#' are skipped; a value may
 * hold "\n" and "\\" escapes for multi-line values such as PEM keys. At
 * most 1 MiB of file. Messages name files, lines and secret names, never
 * values; the buffers that held the file are wiped before they are freed
 * (JSON strings are wiped by the allocator ml_secure_process sets).
 *
 * The environment is read only under MLCTL_SECRET_<NAME>: a committed
 * playbook is not trusted to pick variables out of the operator's
 * environment (a playbook listing AWS_SECRET_ACCESS_KEY must not ship
 * the operator's cloud key to a container).
 *
 * The keyed digest: a changed value must roll the containers, so the
 * values take part in the spec the planner compares; but the spec is a
 * label on the VMs and is recorded, and a plain hash of a short secret
 * can be brute-forced. HMAC-SHA-256 under a random key kept next to the
 * ledger (<ledger>.key, 32 bytes, mode 0600) gives the same property
 * with nothing to test guesses against.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/config/config.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/secrets.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_FILE ".mlctl/secrets"
#define ENV_PREFIX "MLCTL_SECRET_"
#define KEY_LEN 32

static bool valid_name(const char *s, size_t n)
{
	size_t i;

	if (!n || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
		    s[0] == '_'))
		return false;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* Unescape "\n" and "\\" in place; other backslashes stay as they are. */
static void unescape(char *v)
{
	char *r = v, *w = v;

	while (*r) {
		if (r[0] == '\\' && r[1] == 'n') {
			*w++ = '\n';
			r += 2;
		} else if (r[0] == '\\' && r[1] == '\\') {
			*w++ = '\\';
			r += 2;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static int read_file(json_t *vals, const char *path)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	struct stat st;
	char *line, *next;
	int fd, rc, lineno = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ml_err_errno(ML_EINVALID, errno,
				    "cannot open secrets file '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ml_err_set(ML_EINVALID,
				  "secrets file '%s' is not a regular file",
				  path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return ml_err_set(ML_EINVALID,
				  "secrets file '%s' has mode %04o: it must "
				  "not be readable by group or others (chmod "
				  "600 '%s')",
				  path, (unsigned)(st.st_mode & 07777), path);
	}
	rc = ml_buf_read_fd(&b, fd);
	close(fd);
	if (rc < 0) {
		explicit_bzero(b.data, b.len);
		ml_buf_release(&b);
		return ml_err_prefix(rc, "cannot read secrets file '%s'",
				     path);
	}
	for (line = b.data; line && *line; line = next) {
		char *eq, *end;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		end = line + strlen(line);
		if (end > line && end[-1] == '\r')
			*--end = '\0';
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq || !valid_name(line, (size_t)(eq - line))) {
			explicit_bzero(b.data, b.len);
			ml_buf_release(&b);
			return ml_err_set(ML_EINVALID,
					  "%s:%d: expected NAME=VALUE", path,
					  lineno);
		}
		*eq = '\0';
		unescape(eq + 1);
		json_object_set_new(vals, line, json_string(eq + 1));
	}
	explicit_bzero(b.data, b.len);
	ml_buf_release(&b);
	return 0;
}

/* A value for each of names[0..n) into *out (see ml_secrets_load). */
static int load_names(json_t **out, const char *const *names, size_t n,
		      const char *file)
{
	json_t *vals = json_object(), *res = json_object();
	struct stat st;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!file && stat(DEFAULT_FILE, &st) == 0)
		file = DEFAULT_FILE;
	if (file && n) {
		rc = read_file(vals, file);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i];
		json_t *v = json_object_get(vals, name);
		char *var = ml_xasprintf(ENV_PREFIX "%s", name);
		const char *env = getenv(var);

		free(var);
		if (v) {
			json_object_set(res, name, v);
		} else if (env) {
			json_object_set_new(res, name, json_string(env));
		} else {
			rc = ml_err_set(ML_EINVALID,
					"secret '%s' has no value: put "
					"%s=... in %s (mode 600) or set "
					ENV_PREFIX "%s in the environment",
					name, name, file ? file : DEFAULT_FILE,
					name);
			goto out;
		}
		if (!json_object_get(res, name)) {
			rc = ml_err_set(ML_EINVALID,
					"secret '%s' is not valid UTF-8", name);
			goto out;
		}
	}
	*out = res;
	res = NULL;
out:
	json_decref(vals);
	json_decref(res);
	return rc;
}

int ml_secrets_load(json_t **out, const struct ml_playbook *pb,
		    const char *file)
{
	return load_names(out, (const char *const *)pb->secrets.v,
			  pb->secrets.n, file);
}

/*
 * The checks the LB's agent makes too (agent/tls.c), here so that a wrong
 * value is named before any host is touched; never quoting the value.
 */
static int check_lb_value(const char *name, const char *v, const char *what)
{
	const char *c;

	if (!strcmp(what, "password")) {
		for (c = v; *c; c++)
			if (*c <= 0x20 || *c >= 0x7f || strchr("\"'\\#$", *c))
				break;
		if (!*v || *c || strlen(v) > 128)
			return ml_err_set(ML_EINVALID,
					  "secret '%s' (metrics.password) must "
					  "be 1 to 128 printable ASCII "
					  "characters without a space, quote, "
					  "backslash, '#' or '$'",
					  name);
		return 0;
	}
	if (!strstr(v, what))
		return ml_err_set(ML_EINVALID,
				  "secret '%s' is not a PEM %s (no '%s' line): "
				  "in a secrets file, write its line ends as "
				  "\\n",
				  name,
				  strstr(what, "CERT") ? "certificate"
						       : "private key",
				  what);
	return 0;
}

int ml_secrets_load_lb(json_t **out, const struct ml_playbook *pb,
		       const char *file)
{
	const char *names[3];
	json_t *vals = NULL, *res;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (pb->lb.tls_cert && pb->lb.tls_key) {
		names[n++] = pb->lb.tls_cert;
		names[n++] = pb->lb.tls_key;
	}
	if (pb->metrics.password)
		names[n++] = pb->metrics.password;
	if (!n)
		return 0;
	rc = load_names(&vals, names, n, file);
	if (rc < 0)
		return rc;
	if (pb->lb.tls_cert && pb->lb.tls_key) {
		rc = check_lb_value(pb->lb.tls_cert,
				    json_string_value(json_object_get(
					    vals, pb->lb.tls_cert)),
				    "-----BEGIN CERTIFICATE-----");
		if (rc == 0)
			rc = check_lb_value(pb->lb.tls_key,
					    json_string_value(json_object_get(
						    vals, pb->lb.tls_key)),
					    "PRIVATE KEY-----");
	}
	if (rc == 0 && pb->metrics.password)
		rc = check_lb_value(pb->metrics.password,
				    json_string_value(json_object_get(
					    vals, pb->metrics.password)),
				    "password");
	if (rc < 0) {
		json_decref(vals);
		return rc;
	}
	res = json_object();
	if (pb->lb.tls_cert && pb->lb.tls_key) {
		json_object_set(res, "tls_cert",
				json_object_get(vals, pb->lb.tls_cert));
		json_object_set(res, "tls_key",
				json_object_get(vals, pb->lb.tls_key));
	}
	if (pb->metrics.password)
		json_object_set_new(
			res, "stats_auth",
			json_pack("{s:s,s:O}", "user", pb->metrics.user,
				  "password",
				  json_object_get(vals, pb->metrics.password)));
	json_decref(vals);
	*out = res;
	return 0;
}

/*
 * The key at path, made (32 random bytes, mode 0600, O_EXCL so two
 * controllers racing keep one) when it does not exist yet.
 */
static int load_key(unsigned char key[KEY_LEN], const char *path)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path,
			  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd >= 0) {
			if (getrandom(key, KEY_LEN, 0) != KEY_LEN ||
			    write(fd, key, KEY_LEN) != KEY_LEN ||
			    fsync(fd) < 0)
				rc = ml_err_errno(ML_EFAIL, errno,
						  "cannot write the secrets "
						  "key '%s'",
						  path);
			close(fd);
			if (rc < 0)
				unlink(path);
			return rc;
		}
		if (errno == EEXIST)
			fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot open the secrets key '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077))
		rc = ml_err_set(ML_EFAIL,
				"the secrets key '%s' must be a file of mode "
				"600 (chmod 600 '%s')",
				path, path);
	else if ((n = read(fd, key, KEY_LEN)) != KEY_LEN)
		rc = ml_err_set(ML_EFAIL,
				"the secrets key '%s' is not %d bytes: remove "
				"it (the next deploy then rolls every "
				"container that has secrets)",
				path, KEY_LEN);
	close(fd);
	return rc;
}

int ml_secrets_spec(char spec[65], const struct ml_config *cfg,
		    json_t *secrets, const char *ledger_path)
{
	const struct ml_playbook *pb = cfg->playbook;
	unsigned char key[KEY_LEN];
	char mac[ML_SHA256_HEX] = "", *text, *kp = NULL, *def = NULL;
	json_t *sec = ml_security_json(&pb->security, cfg);
	int rc = 0;

	if (secrets && json_object_size(secrets)) {
		if (!ledger_path)
			ledger_path = def = ml_ledger_default_path();
		if (!ledger_path) {
			rc = ml_err_code() < 0 ? ml_err_code() : ML_EFAIL;
			goto out;
		}
		kp = ml_xasprintf("%s.key", ledger_path);
		rc = load_key(key, kp);
		if (rc < 0)
			goto out;
		text = json_dumps(secrets, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text)
			BUG("out of memory");
		ml_hmac_sha256_hex(key, KEY_LEN, text, strlen(text), mac);
		explicit_bzero(key, sizeof(key));
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_object_set_new(sec, "spec", json_string(spec));
	json_object_set_new(sec, "secrets_mac", json_string(mac));
	text = json_dumps(sec, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		BUG("out of memory");
	ml_sha256_hex(text, strlen(text), spec);
	free(text);
out:
	json_decref(sec);
	free(kp);
	free(def);
	return rc;
}

void ml_security_warn(const char *host, json_t *res)
{
	struct ml_buf b = ML_BUF_INIT(1024);
	json_t *w;
	size_t i;

	json_array_foreach(json_object_get(res, "warnings"), i, w)
	{
		const char *s = json_string_value(w);

		if (!s)
			continue;
		ml_buf_reset(&b);
		ml_escape(&b, s, strlen(s));
		ml_warn("%s: %s", host, b.data ? b.data : "");
	}
	ml_buf_release(&b);
}
