/*
 * TLS at the edge and the metrics listener's credentials (see tls.h).
 *
 * Invariants: a PEM accepted here is printable ASCII lines with the
 * BEGIN/END markers of a certificate (first) and of a private key, at
 * most ML_LB_PEM_MAX each; a password is 1..ML_LB_PASSWORD_MAX bytes of
 * printable ASCII without a space, quote, backslash, '#' or '$', so it
 * is one word to HAProxy's configuration parser. Every buffer that held
 * one of them is wiped before it is freed. Messages name the field and
 * the rule, never the value: the controller prints them.
 *
 * The TLS defaults follow current practice for servers whose clients are
 * programs and recent browsers: TLS 1.2 and 1.3 only, forward-secret
 * AEAD ciphers only, no session tickets (their key would never rotate),
 * no TLS compression (HAProxy never enables it; OpenSSL 3 has none).
 */
#include "common/ml.h"
#include "common/sha256.h"
#include "agent/lb/internal.h"
#include "agent/lb/tls.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_CIPHERS                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"       \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"       \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_SUITES                                                         \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                   \
	"TLS_CHACHA20_POLY1305_SHA256"
#define STATS_USERLIST "mlctl_stats_users"

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* PEM text: printable ASCII, tabs and line ends only. */
static bool pem_chars(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 0x20 && *s < 0x7f) || *s == '\n' || *s == '\r' ||
		      *s == '\t'))
			return false;
	return true;
}

/* A string member of args that must look like PEM with marker inside. */
static int get_pem(const char **out, json_t *args, const char *key,
		   const char *begin, const char *end, const char *what)
{
	json_t *v = json_object_get(args, key);
	const char *s;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	s = json_string_value(v);
	if (!s)
		return ml_err_set(ML_EPROTO, "lb_apply: '%s' must be a string",
				  key);
	if (strlen(s) > ML_LB_PEM_MAX)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: '%s' is larger than %zu bytes", key,
				  ML_LB_PEM_MAX);
	if (!pem_chars(s) || !strstr(s, begin) || !strstr(s, end) ||
	    strstr(s, end) < strstr(s, begin))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: '%s' is not %s in PEM form (%s "
				  "... %s)",
				  key, what, begin, end);
	*out = s;
	return 0;
}

/* Where the PEM text s ends, past its last line end. */
static void add_pem(struct ml_buf *b, const char *s)
{
	size_t n = strlen(s);

	ml_buf_add(b, s, n);
	if (n && s[n - 1] != '\n')
		ml_buf_addch(b, '\n');
}

static bool valid_password(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > ML_LB_PASSWORD_MAX)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || strchr("\"'\\#$", *s))
			return false;
	return true;
}

static int stats_auth_from_json(struct ml_lb_config *c, json_t *args)
{
	json_t *a = json_object_get(args, "stats_auth");
	const char *user, *pw;

	if (!a || json_is_null(a))
		return 0;
	user = json_string_value(json_object_get(a, "user"));
	pw = json_string_value(json_object_get(a, "password"));
	if (!json_is_object(a) || !user || !pw)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'stats_auth' must be an object "
				  "with strings 'user' and 'password'");
	if (!ml_lb_valid_name(user))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'stats_auth.user' must be 1 to "
				  "%d letters, digits, '.', '_' or '-'",
				  ML_LB_NAME_MAX);
	if (!valid_password(pw))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: the metrics password must be 1 to "
				  "%d printable ASCII characters without a "
				  "space, quote, backslash, '#' or '$'",
				  ML_LB_PASSWORD_MAX);
	if (!c->stats_port)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'stats_auth' without a metrics "
				  "listener ('stats_port' is 0)");
	c->stats_user = ml_xstrdup(user);
	c->stats_password = ml_xstrdup(pw);
	return 0;
}

int ml_lb_tls_from_json(struct ml_lb_config *c, json_t *args)
{
	struct ml_buf b = ML_BUF_INIT(2 * ML_LB_PEM_MAX + 4);
	const char *cert, *key;
	char hex[ML_SHA256_HEX];
	json_t *v;
	int rc;

	rc = get_pem(&cert, args, "tls_cert", "-----BEGIN CERTIFICATE-----",
		     "-----END CERTIFICATE-----", "a certificate");
	if (rc < 0)
		return rc;
	rc = get_pem(&key, args, "tls_key", "-----BEGIN ", "PRIVATE KEY-----",
		     "a private key");
	if (rc < 0)
		return rc;
	if (!cert != !key)
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'tls_cert' and 'tls_key' go "
				  "together");
	if (key && strstr(key, "-----BEGIN CERTIFICATE-----"))
		return ml_err_set(ML_EPROTO,
				  "lb_apply: 'tls_key' holds a certificate: "
				  "give the chain in 'tls_cert' and only the "
				  "key in 'tls_key'");
	if (cert) {
		add_pem(&b, cert);
		add_pem(&b, key);
		rc = ml_buf_addstr(&b, "");
		if (rc < 0) {
			explicit_bzero(b.data, b.len);
			ml_buf_release(&b);
			return rc;
		}
		ml_sha256_hex(b.data, b.len, hex);
		memcpy(c->tls_id, hex, sizeof(c->tls_id) - 1);
		c->tls_id[sizeof(c->tls_id) - 1] = '\0';
		c->tls_pem = ml_buf_detach(&b, NULL);
	}
	ml_buf_release(&b);

	v = json_object_get(args, "redirect_port");
	if (v && !json_is_null(v)) {
		json_int_t n = json_integer_value(v);

		if (!json_is_integer(v) || n < 1 || n > 65535)
			return ml_err_set(ML_EPROTO,
					  "lb_apply: 'redirect_port' must be "
					  "an integer from 1 to 65535");
		if (!cert)
			return ml_err_set(ML_EPROTO,
					  "lb_apply: 'redirect_port' needs TLS "
					  "('tls_cert' and 'tls_key')");
		if (n == c->listen_port || n == c->stats_port)
			return ml_err_set(ML_EPROTO,
					  "lb_apply: 'redirect_port' %d is "
					  "also the %s port",
					  (int)n,
					  n == c->listen_port ? "listen"
							      : "metrics");
		c->redirect_port = (int)n;
	}
	return stats_auth_from_json(c, args);
}

void ml_lb_tls_release(struct ml_lb_config *c)
{
	wipe_free(c->tls_pem);
	wipe_free(c->stats_password);
	free(c->stats_user);
	c->tls_pem = c->stats_password = c->stats_user = NULL;
}

/* ---- the stored file ---------------------------------------------------- */

static char *tls_dir(const struct ml_haproxy *h)
{
	return ml_xasprintf("%s/tls", h->dir);
}

char *ml_lb_tls_path(const struct ml_lb_config *c, const struct ml_haproxy *h)
{
	if (!c->tls_pem)
		return NULL;
	return ml_xasprintf("%s/tls/%s.pem", h->dir, c->tls_id);
}

int ml_lb_tls_store(const struct ml_lb_config *c, const struct ml_haproxy *h,
		    bool *created)
{
	char *dir, *path, *tmp = NULL;
	struct stat st;
	int rc = 0;

	*created = false;
	if (!c->tls_pem)
		return 0;
	dir = tls_dir(h);
	path = ml_lb_tls_path(c, h);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'", dir);
		goto out;
	}
	/* the directory may predate us: it must be ours alone */
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || chmod(dir, 0700) < 0) {
		rc = ml_err_set(ML_EFAIL,
				"'%s' is not a directory of the agent's user",
				dir);
		goto out;
	}
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 0777) == 0600 && st.st_uid == geteuid() &&
	    (size_t)st.st_size == strlen(c->tls_pem))
		goto out; /* content-addressed: the same bytes */
	tmp = ml_xasprintf("%s/.%s.tmp", dir, c->tls_id);
	unlink(tmp);
	/* ml_haproxy_write_file creates 0600 and fsyncs */
	rc = ml_haproxy_write_file(tmp, c->tls_pem, strlen(c->tls_pem));
	if (rc == 0 && chmod(tmp, 0600) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot chmod '%s'", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'", tmp);
	if (rc < 0)
		unlink(tmp);
	else
		*created = true;
out:
	free(tmp);
	free(path);
	free(dir);
	return rc;
}

void ml_lb_tls_unstore(const struct ml_lb_config *c,
		       const struct ml_haproxy *h, bool created)
{
	char *path = ml_lb_tls_path(c, h);

	if (path && created)
		unlink(path);
	free(path);
}

void ml_lb_tls_prune(const struct ml_lb_config *c, const struct ml_haproxy *h)
{
	char *dir = tls_dir(h), keep[40] = "";
	struct dirent *e;
	DIR *d;

	if (c->tls_pem)
		snprintf(keep, sizeof(keep), "%s.pem", c->tls_id);
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' && (!e->d_name[1] ||
						    !strcmp(e->d_name, "..")))
				continue;
			if (strcmp(e->d_name, keep))
				unlinkat(dirfd(d), e->d_name, 0);
		}
		closedir(d);
	}
	if (!c->tls_pem)
		rmdir(dir);
	free(dir);
}

/* ---- rendering ---------------------------------------------------------- */

void ml_lb_tls_render_global(struct ml_buf *b, const struct ml_lb_config *c)
{
	if (!c->tls_pem)
		return;
	ml_buf_addstr(b, "\tssl-default-bind-ciphers " TLS_CIPHERS "\n"
			 "\tssl-default-bind-ciphersuites " TLS_SUITES "\n"
			 "\tssl-default-bind-options ssl-min-ver TLSv1.2 "
			 "no-tls-tickets\n");
}

void ml_lb_tls_render_bind(struct ml_buf *b, const struct ml_lb_config *c,
			   const struct ml_haproxy *h)
{
	char *path = ml_lb_tls_path(c, h);

	/* HTTP/1.1 only: a worker that stops at a reload answers a new h2
	 * connection with GOAWAY, which clients such as libcurl report as
	 * a failed request; over HTTP/1.1 the reload drops nothing */
	if (path)
		ml_buf_addf(b, " ssl crt %s alpn http/1.1", path);
	free(path);
}

void ml_lb_tls_render_frontend(struct ml_buf *b, const struct ml_lb_config *c)
{
	if (!c->tls_pem)
		return;
	/* the app knows the client came over TLS; clients that were sent
	 * here by the redirect keep coming here */
	ml_buf_addstr(b, "\thttp-request set-header X-Forwarded-Proto https\n");
	if (c->redirect_port)
		ml_buf_addstr(b, "\thttp-response set-header "
				 "Strict-Transport-Security max-age=31536000\n");
}

void ml_lb_tls_render_redirect(struct ml_buf *b, const struct ml_lb_config *c)
{
	if (!c->redirect_port)
		return;
	ml_buf_addf(b, "\nfrontend fe_%s_http\n\tbind ", c->app);
	ml_lb_add_hostport(b, c->bind, c->redirect_port);
	ml_buf_addch(b, '\n');
	if (c->listen_port == 443)
		ml_buf_addstr(b, "\thttp-request redirect scheme https code "
				 "301\n");
	else
		/* the client's host without its port, then ours */
		ml_buf_addf(b,
			    "\thttp-request redirect code 301 location "
			    "https://%%[req.hdr(host),regsub(:[0-9]+$,)]:%d"
			    "%%[capture.req.uri]\n",
			    c->listen_port);
}

void ml_lb_tls_render_userlist(struct ml_buf *b, const struct ml_lb_config *c)
{
	if (!c->stats_user)
		return;
	/*
	 * In clear, in a file that is 0600 in a 0700 directory as the TLS
	 * key is: a crypt(3) hash would cost HAProxy milliseconds of CPU on
	 * every request to the listener, which anyone on the fleet network
	 * could then use to load the balancer.
	 */
	ml_buf_addf(b, "\nuserlist " STATS_USERLIST "\n"
		       "\tuser %s insecure-password %s\n",
		    c->stats_user, c->stats_password);
}

void ml_lb_tls_render_stats_auth(struct ml_buf *b,
				 const struct ml_lb_config *c)
{
	if (!c->stats_user)
		return;
	ml_buf_addstr(b, "\thttp-request auth realm mlctl-metrics unless "
			 "{ http_auth(" STATS_USERLIST ") }\n");
}
