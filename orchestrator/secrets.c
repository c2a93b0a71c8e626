/*
 * Secret values (see secrets.h). The file format is one NAME=VALUE per
 * line; blank lines and lines starting with '#' are skipped; a value may
 * hold "\n" and "\\" escapes for multi-line values such as PEM keys. At
 * most 1 MiB of file. Messages name files, lines and secret names, never
 * values.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_FILE ".mlctl/secrets"

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
		ml_buf_release(&b);
		return ml_err_set(rc, "cannot read secrets file '%s': %s",
				  path, ml_err_msg());
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
			ml_buf_release(&b);
			return ml_err_set(ML_EINVALID,
					  "%s:%d: expected NAME=VALUE", path,
					  lineno);
		}
		*eq = '\0';
		unescape(eq + 1);
		json_object_set_new(vals, line, json_string(eq + 1));
	}
	ml_buf_release(&b);
	return 0;
}

int ml_secrets_load(json_t **out, const struct ml_playbook *pb,
		    const char *file)
{
	json_t *vals = json_object(), *res = json_object();
	struct stat st;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!file && stat(DEFAULT_FILE, &st) == 0)
		file = DEFAULT_FILE;
	if (file && pb->secrets.n) {
		rc = read_file(vals, file);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < pb->secrets.n; i++) {
		const char *name = pb->secrets.v[i];
		json_t *v = json_object_get(vals, name);
		const char *env = getenv(name);

		if (v) {
			json_object_set(res, name, v);
		} else if (env) {
			json_object_set_new(res, name, json_string(env));
		} else {
			rc = ml_err_set(ML_EINVALID,
					"secret '%s' has no value: put "
					"%s=... in %s (mode 600) or set it in "
					"the environment",
					name, name, file ? file : DEFAULT_FILE);
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
