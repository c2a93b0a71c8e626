/*
 * The runtime API client of one instance (see lb.h): one command per
 * connection on the admin socket or the master CLI, the `set` commands
 * whose success is an empty answer, and the tables HAProxy answers with
 * (`show stat` CSV, `show servers state`), parsed by one parser
 * (ml_haproxy_parse_rows) that state.c uses too.
 *
 * Invariants: a command is one line of validated names; the write side is
 * shut after it (the master CLI waits for that); every wait is bounded by
 * the command's timeout. Text from HAProxy is escaped before it is put in
 * a message.
 *
 * Sizes: answers at most ML_HAPROXY_REPLY_MAX (4 MiB; `show stat` is
 * about 600 bytes per server).
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/proto.h"
#include "agent/lb/internal.h"

#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd pfd = {fd, ev, 0};
	long left;
	int r;

	for (;;) {
		left = (long)(deadline - ml_mono_ms());
		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

int ml_haproxy_cmd(struct ml_buf *out, const char *path, const char *cmd,
		   long timeout_ms)
{
	int64_t deadline = ml_mono_ms() + timeout_ms;
	struct sockaddr_un sun;
	size_t off = 0, len, start = out->len;
	char *line = NULL, chunk[16384];
	ssize_t n;
	int fd = -1, r, rc;

	if (strchr(cmd, '\n'))
		BUG("runtime API command with a newline");
	if (strlen(path) >= sizeof(sun.sun_path))
		return ml_err_set(ML_ETOOBIG, "socket path '%s' is too long",
				  path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot create a socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EAGAIN && errno != EINPROGRESS) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot connect to haproxy at '%s'",
					  path);
			goto out;
		}
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			rc = ml_err_set(ML_EFAIL,
					"haproxy at '%s' did not "
					"accept a connection in %ld "
					"ms",
					path, timeout_ms);
			goto out;
		}
	}
	line = ml_xasprintf("%s\n", cmd);
	len = strlen(line);
	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLOUT, deadline) > 0)
				continue;
			errno = ETIMEDOUT;
		}
		if (n < 0) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot send to haproxy at '%s'",
					  path);
			goto out;
		}
		off += (size_t)n;
	}
	/* the master CLI answers only once it sees the end of input */
	shutdown(fd, SHUT_WR);
	for (;;) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			r = wait_fd(fd, POLLIN, deadline);
			if (r > 0)
				continue;
			rc = ml_err_set(ML_EFAIL,
					"haproxy at '%s' did not answer '%s' "
					"within %ld ms",
					path, cmd, timeout_ms);
			goto out;
		}
		if (n < 0) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot read from haproxy at '%s'",
					  path);
			goto out;
		}
		if (n == 0)
			break;
		if (out->len - start + (size_t)n > ML_HAPROXY_REPLY_MAX) {
			rc = ml_err_set(ML_ETOOBIG,
					"haproxy's answer to '%s' "
					"is larger than %zu bytes",
					cmd, ML_HAPROXY_REPLY_MAX);
			goto out;
		}
		rc = ml_buf_add(out, chunk, (size_t)n);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0 && out->len > start) {
		out->len = start;
		out->data[start] = '\0';
	}
	free(line);
	close(fd);
	return rc;
}

int ml_haproxy_admin(const struct ml_haproxy *h, const char *fmt, ...)
{
	struct ml_buf cmd = ML_BUF_INIT(1024), ans = ML_BUF_INIT(64 << 10);
	const char *a;
	char *why, *line;
	va_list ap;
	size_t n;
	int rc;

	va_start(ap, fmt);
	rc = ml_buf_vaddf(&cmd, fmt, ap);
	va_end(ap);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_cmd(&ans, h->admin_sock, cmd.data, h->timeout_ms);
	if (rc < 0)
		goto out;
	a = ml_buf_str(&ans);
	while (*a == '\n' || *a == ' ')
		a++;
	n = strlen(a);
	while (n && (a[n - 1] == '\n' || a[n - 1] == ' '))
		n--;
	if (!n)
		goto out;
	line = ml_xstrndup(a, n);
	why = ml_lb_shown(line);
	free(line);
	if (!strncmp(a, "No such server", 14) ||
	    !strncmp(a, "No such backend", 15))
		rc = ml_err_set(ML_ENOTFOUND, "haproxy: %s: %s", cmd.data, why);
	else
		rc = ml_err_set(ML_EFAIL, "haproxy: %s: %s", cmd.data, why);
	free(why);
out:
	ml_buf_release(&cmd);
	ml_buf_release(&ans);
	return rc;
}

int ml_haproxy_set_server(const struct ml_haproxy *h, const char *server,
			  enum ml_lb_state state, int weight)
{
	int rc;

	if (!ml_lb_valid_name(server))
		BUG("unchecked server name");
	if (weight >= 0) {
		rc = ml_haproxy_admin(h, "set weight %s/%s %d", h->app, server,
				      weight);
		if (rc < 0)
			return rc;
	}
	return ml_haproxy_admin(h, "set server %s/%s state %s", h->app, server,
				ml_lb_state_name(state));
}

/* ---- tables ------------------------------------------------------------- */

/*
 * Split one line at sep into fields (new JSON strings appended to arr).
 * With sep ',', a field may be "quoted" with "" for a quote (HAProxy's
 * csv_enc); with ' ', fields are separated by single spaces.
 */
static void split_line(json_t *arr, const char *p, size_t n, char sep)
{
	struct ml_buf f = ML_BUF_INIT(n + 1);
	size_t i = 0;

	for (;;) {
		ml_buf_reset(&f);
		if (sep == ',' && i < n && p[i] == '"') {
			for (i++; i < n; i++) {
				if (p[i] == '"' && i + 1 < n && p[i + 1] == '"')
					ml_buf_addch(&f, p[i++]);
				else if (p[i] == '"')
					break;
				else
					ml_buf_addch(&f, p[i]);
			}
			i++; /* the closing quote */
			while (i < n && p[i] != sep)
				i++;
		} else {
			while (i < n && p[i] != sep)
				ml_buf_addch(&f, p[i++]);
		}
		json_array_append_new(arr, ml_proto_string(ml_buf_str(&f)));
		if (i >= n)
			break;
		i++; /* the separator */
	}
	ml_buf_release(&f);
}

int ml_haproxy_parse_rows(json_t **names_out, json_t **rows_out,
			  const char *text, char sep)
{
	json_t *names = json_array(), *rows = json_array(), *vals;
	const char *p = text, *nl;
	bool have_header = false;
	size_t n;

	while (*p) {
		nl = strchrnul(p, '\n');
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (!have_header) {
			if (n >= 2 && p[0] == '#' && p[1] == ' ') {
				split_line(names, p + 2, n - 2, sep);
				have_header = true;
			}
		} else if (n && p[0] != '#') {
			vals = json_array();
			split_line(vals, p, n, sep);
			json_array_append_new(rows, vals);
		}
		p = *nl ? nl + 1 : nl;
	}
	if (!have_header) {
		json_decref(names);
		json_decref(rows);
		return ml_err_set(ML_EPROTO,
				  "haproxy's answer has no '# ' header line");
	}
	*names_out = names;
	*rows_out = rows;
	return 0;
}

int ml_haproxy_parse_table(json_t **out, const char *text, char sep)
{
	json_t *names, *rows, *vals, *row, *objs;
	size_t r, i;
	int rc;

	rc = ml_haproxy_parse_rows(&names, &rows, text, sep);
	if (rc < 0)
		return rc;
	objs = json_array();
	json_array_foreach(rows, r, vals) {
		row = json_object();
		for (i = 0; i < json_array_size(vals) &&
			    i < json_array_size(names);
		     i++) {
			const char *k =
				json_string_value(json_array_get(names, i));

			if (*k && strcmp(k, "-"))
				json_object_set(row, k,
						json_array_get(vals, i));
		}
		json_array_append_new(objs, row);
	}
	json_decref(names);
	json_decref(rows);
	*out = objs;
	return 0;
}

static int show_table(json_t **out, const struct ml_haproxy *h, const char *cmd,
		      char sep)
{
	struct ml_buf b = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, cmd, h->timeout_ms);
	if (rc == 0)
		rc = ml_haproxy_parse_table(out, ml_buf_str(&b), sep);
	ml_buf_release(&b);
	return rc;
}

int ml_haproxy_show_stat(json_t **out, const struct ml_haproxy *h)
{
	return show_table(out, h, "show stat", ',');
}

int ml_haproxy_show_servers(json_t **out, const struct ml_haproxy *h)
{
	char *cmd = ml_xasprintf("show servers state %s", h->app);
	int rc;

	rc = show_table(out, h, cmd, ' ');
	free(cmd);
	return rc;
}

/* srv_admin_state bits (HAProxy's enum srv_admin) */
#define ADMF_FMAINT 0x01
#define ADMF_IMAINT 0x02
#define ADMF_FDRAIN 0x08
#define ADMF_IDRAIN 0x10
#define ADMF_RMAINT 0x20

const char *ml_haproxy_admin_word(long bits)
{
	/* CMAINT alone (0x04) only records that the config said disabled */
	if (bits & (ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT))
		return "maint";
	if (bits & (ADMF_FDRAIN | ADMF_IDRAIN))
		return "drain";
	return "ready";
}

const char *ml_haproxy_op_word(long op)
{
	static const char *const words[] = {"down", "starting", "up",
					    "stopping"};

	return op >= 0 && (size_t)op < ML_ARRAY_SIZE(words) ? words[op]
							    : "unknown";
}

long long ml_haproxy_field_int(json_t *row, const char *key, long long def)
{
	const char *s = json_string_value(json_object_get(row, key));
	long long v;
	char *end;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end ? def : v;
}

