/*
 * Docker Engine API client (see docker.h): libcurl talking HTTP/1.1 over
 * the daemon's unix socket, JSON in and out through jansson.
 *
 * Invariants: the easy handle is reused so the connection stays open, and
 * curl_easy_reset() clears every option before each request so nothing
 * leaks from one request to the next. An answer is collected in a buffer
 * capped at max_response (16 MiB by default) by the write callback, which
 * aborts the transfer past the cap, and released after each request, so an
 * idle client holds no answer memory. Text from Docker is escaped before it
 * enters an error message. Paths are checked to be printable ASCII, so
 * nothing can smuggle a space or CRLF into the request line, and to hold
 * no "." or ".." segment (plain or percent-encoded): curl and Docker's
 * router both resolve those, so an image named "x/../../containers/..."
 * would otherwise turn GET /images/<name>/json into another endpoint.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/docker.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/un.h>

#define PATH_MAX_LEN 4096
#define ERR_TEXT_MAX 512 /* of Docker's message in our error */

struct ml_docker {
	CURL *curl;
	char *sock;
	long timeout_ms;
	size_t max_response;
	struct ml_buf resp;
	bool too_big;
	json_t *version; /* GET /version, once fetched */
	char api[16];	 /* negotiated, "" before */
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ml_docker_new(struct ml_docker **out, const char *sock_path)
{
	struct ml_docker *d;
	struct sockaddr_un sun;

	if (!sock_path || !*sock_path)
		sock_path = getenv("MLCTL_DOCKER_SOCK");
	if (!sock_path || !*sock_path)
		sock_path = ML_DOCKER_SOCK;
	if (strlen(sock_path) >= sizeof(sun.sun_path))
		return ml_err_set(ML_EINVALID,
				  "Docker socket path is longer than %zu bytes",
				  sizeof(sun.sun_path) - 1);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return ml_err_set(ML_EFAIL, "cannot initialize libcurl: %s",
				  curl_easy_strerror(curl_init_rc));
	d = ml_xcalloc(1, sizeof(*d));
	d->curl = curl_easy_init();
	if (!d->curl) {
		free(d);
		return ml_err_set(ML_EFAIL, "cannot initialize libcurl");
	}
	d->sock = ml_xstrdup(sock_path);
	d->timeout_ms = ML_DOCKER_TIMEOUT_MS;
	d->max_response = ML_DOCKER_MAX_RESPONSE;
	ml_buf_init(&d->resp, d->max_response);
	*out = d;
	return 0;
}

void ml_docker_free(struct ml_docker *d)
{
	if (!d)
		return;
	curl_easy_cleanup(d->curl);
	ml_buf_release(&d->resp);
	json_decref(d->version);
	free(d->sock);
	free(d);
}

const char *ml_docker_sock(const struct ml_docker *d)
{
	return d->sock;
}

void ml_docker_set_timeout(struct ml_docker *d, long timeout_ms)
{
	if (timeout_ms <= 0)
		BUG("docker timeout %ld", timeout_ms);
	d->timeout_ms = timeout_ms;
}

long ml_docker_timeout(const struct ml_docker *d)
{
	return d->timeout_ms;
}

void ml_docker_set_max_response(struct ml_docker *d, size_t max)
{
	d->max_response = max;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct ml_docker *d = data;
	size_t n = size * nmemb;

	if (ml_buf_add(&d->resp, p, n) < 0) {
		d->too_big = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

/* Whether the segment at s (up to '/', '?' or the end) is "." or "..",
 * written plainly or with %2e. */
static bool dot_segment(const char *s)
{
	int dots = 0;

	for (;;) {
		if (*s == '.') {
			s++;
		} else if (s[0] == '%' && s[1] == '2' &&
			   (s[2] == 'e' || s[2] == 'E')) {
			s += 3;
		} else {
			break;
		}
		dots++;
	}
	return dots && dots <= 2 && (!*s || *s == '/' || *s == '?');
}

static bool valid_path(const char *path)
{
	size_t i;

	if (path[0] != '/')
		return false;
	for (i = 0; path[i] && path[i] != '?'; i++)
		if (i >= PATH_MAX_LEN || path[i] <= ' ' || path[i] > '~' ||
		    (path[i] == '/' && dot_segment(path + i + 1)) ||
		    (path[i] == '\\'))
			return false;
	for (; path[i]; i++)
		if (i >= PATH_MAX_LEN || path[i] <= ' ' || path[i] > '~')
			return false;
	return true;
}

bool ml_docker_valid_image(const char *s)
{
	size_t i, n = strlen(s);
	const char *at;

	if (!strncmp(s, "sha256:", 7))
		return n > 7 && n <= 7 + 64 && strspn(s + 7, "0123456789abcdef") ==
						      n - 7;
	if (!n || n > ML_DOCKER_IMAGE_MAX)
		return false;
	/* name components: alphanumerics with single '.', '_', '__' or '-'
	 * runs between them; '/' separates components, ':' a tag or a
	 * registry port, '@' a digest; never an empty component */
	at = strchr(s, '@');
	for (i = 0; i < n && (!at || s + i < at); i++) {
		char c = s[i], prev = i ? s[i - 1] : '/';

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (!strchr("._-/:", c))
			return false;
		if (strchr("/:", prev) || i + 1 == n ||
		    (at && s + i + 1 == at))
			return false; /* a component starts or ends with it */
		if (c == '.' && prev == '.')
			return false;
	}
	if (at && (strncmp(at + 1, "sha256:", 7) || !at[8] ||
		   strspn(at + 8, "0123456789abcdef") != strlen(at + 8) ||
		   strlen(at + 8) > 64))
		return false;
	return true;
}

/* Escaped, shortened text from Docker for an error message. */
static const char *docker_text(struct ml_buf *esc, const char *s, size_t n)
{
	if (n > ERR_TEXT_MAX)
		n = ERR_TEXT_MAX;
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	ml_buf_reset(esc);
	if (ml_escape(esc, s, n) < 0)
		ml_buf_reset(esc);
	return ml_buf_str(esc);
}

/* The error for a non-2xx answer, from Docker's {"message": "..."}. */
static int status_error(struct ml_docker *d, const char *method,
			const char *path, long status)
{
	struct ml_buf esc = ML_BUF_INIT(4 * ERR_TEXT_MAX + 16);
	json_t *j = json_loadb(d->resp.data ? d->resp.data : "", d->resp.len, 0,
			       NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	int code = status == 404 ? ML_ENOTFOUND : ML_EFAIL;

	if (msg)
		docker_text(&esc, msg, strlen(msg));
	else
		docker_text(&esc, ml_buf_str(&d->resp), d->resp.len);
	ml_err_set(code, "docker: %s %s: %s (HTTP %ld)", method, path,
		   esc.len ? ml_buf_str(&esc) : "no message", status);
	json_decref(j);
	ml_buf_release(&esc);
	return code;
}

/*
 * One HTTP exchange: url is the full path after http://localhost. The
 * answer body is left in d->resp, the status in *status.
 */
static int docker_http(struct ml_docker *d, const char *method, const char *url,
		       const char *shown_path, const char *body,
		       size_t body_len, long *status)
{
	struct curl_slist *hdrs = NULL;
	struct ml_buf full = ML_BUF_INIT(PATH_MAX_LEN + 64);
	long oserr = 0;
	CURLcode cc;
	int rc;

	ml_buf_release(&d->resp);
	ml_buf_init(&d->resp, d->max_response);
	d->too_big = false;
	d->errbuf[0] = '\0';
	rc = ml_buf_addf(&full, "http://localhost%s", url);
	if (rc < 0)
		goto out;

	curl_easy_reset(d->curl);
	curl_easy_setopt(d->curl, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(d->curl, CURLOPT_URL, full.data);
	curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 ML_DOCKER_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(d->curl, CURLOPT_TIMEOUT_MS, d->timeout_ms);
	curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->curl, CURLOPT_USERAGENT, "mlctl-agent");
	curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body)
		hdrs = curl_slist_append(hdrs,
					 "Content-Type: application/json");
	if (!hdrs) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, hdrs);
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(d->curl, CURLOPT_HTTPGET, 1L);
	} else {
		if (body || !strcmp(method, "POST")) {
			curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS,
					 body ? body : "");
			curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)body_len);
		}
		if (strcmp(method, "POST"))
			curl_easy_setopt(d->curl, CURLOPT_CUSTOMREQUEST,
					 method);
	}

	cc = curl_easy_perform(d->curl);
	if (cc == CURLE_WRITE_ERROR && d->too_big) {
		rc = ml_err_set(ML_ETOOBIG,
				"docker: %s %s: the answer is larger than the "
				"limit of %zu bytes",
				method, shown_path, d->max_response);
		goto out;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = ml_err_set(ML_EFAIL,
				"docker: %s %s: no answer from the daemon at "
				"'%s' within %ld ms",
				method, shown_path, d->sock, d->timeout_ms);
		goto out;
	}
	if (cc == CURLE_COULDNT_CONNECT) {
		/* curl's text names localhost port 80; errno says more */
		if (curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &oserr) !=
			    CURLE_OK ||
		    !oserr)
			oserr = ECONNREFUSED;
		rc = ml_err_errno(ML_EFAIL, (int)oserr,
				  "cannot connect to the Docker daemon at '%s' "
				  "(is dockerd running?)",
				  d->sock);
		if (oserr == ENOENT)
			ml_err_hint(rc, "; install Docker (Debian: apt-get "
				    "install docker.io) and start it");
		else if (oserr == ECONNREFUSED)
			ml_err_hint(rc, "; start it (systemctl start docker)");
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = ml_err_set(
			ML_EFAIL, "docker: %s %s: %s", method, shown_path,
			d->errbuf[0] ? d->errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	ml_buf_release(&full);
	return rc;
}

/* Decode d->resp after a 2xx answer; empty body gives NULL. */
static int decode_answer(struct ml_docker *d, const char *method,
			 const char *path, json_t **out)
{
	struct ml_buf esc = ML_BUF_INIT(4 * ERR_TEXT_MAX + 16);
	json_error_t jerr;
	json_t *j;
	size_t i;

	for (i = 0; i < d->resp.len; i++) {
		char c = d->resp.data[i];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			break;
	}
	if (i == d->resp.len) {
		if (out)
			*out = NULL;
		return 0;
	}
	j = json_loadb(d->resp.data, d->resp.len, JSON_DECODE_ANY, &jerr);
	if (!j) {
		docker_text(&esc, jerr.text, strlen(jerr.text));
		ml_err_set(ML_EFAIL,
			   "docker: %s %s: the answer is not JSON: %s", method,
			   path, ml_buf_str(&esc));
		ml_buf_release(&esc);
		return ML_EFAIL;
	}
	if (out)
		*out = j;
	else
		json_decref(j);
	return 0;
}

static int api_parse(const char *s, int *ver)
{
	unsigned maj, min;
	int n = 0;

	if (!s || sscanf(s, "%3u.%3u%n", &maj, &min, &n) != 2 || s[n])
		return -1;
	*ver = (int)(maj * 1000 + min);
	return 0;
}

/* Choose the API version from d->version (see docker.h). */
static int negotiate(struct ml_docker *d)
{
	const char *smax =
		json_string_value(json_object_get(d->version, "ApiVersion"));
	const char *smin =
		json_string_value(json_object_get(d->version, "MinAPIVersion"));
	int want, floor, hi, lo, use;
	struct ml_buf esc = ML_BUF_INIT(64);

	if (api_parse(ML_DOCKER_API, &want) < 0 ||
	    api_parse(ML_DOCKER_API_MIN, &floor) < 0)
		BUG("bad API version constants");
	if (api_parse(smax, &hi) < 0) {
		docker_text(&esc, smax ? smax : "", smax ? strlen(smax) : 0);
		ml_err_set(ML_EFAIL,
			   "docker: GET /version: cannot read ApiVersion '%s'",
			   ml_buf_str(&esc));
		ml_buf_release(&esc);
		return ML_EFAIL;
	}
	if (api_parse(smin, &lo) < 0)
		lo = 0;
	use = want;
	if (hi < use)
		use = hi;
	if (lo > use)
		use = lo;
	if (use < floor)
		return ml_err_set(ML_EFAIL,
				  "the Docker daemon speaks API %d.%d, older "
				  "than the oldest supported, %s",
				  hi / 1000, hi % 1000, ML_DOCKER_API_MIN);
	snprintf(d->api, sizeof(d->api), "%d.%d", use / 1000, use % 1000);
	return 0;
}

int ml_docker_version(struct ml_docker *d, json_t **version,
		      const char **api_version)
{
	json_t *v = NULL;
	long status = 0;
	int rc;

	if (!d->version) {
		rc = docker_http(d, "GET", "/version", "/version", NULL, 0,
				 &status);
		if (rc < 0)
			goto out;
		if (status / 100 != 2) {
			rc = status_error(d, "GET", "/version", status);
			goto out;
		}
		rc = decode_answer(d, "GET", "/version", &v);
		if (rc < 0)
			goto out;
		if (!json_is_object(v)) {
			rc = ml_err_set(ML_EFAIL,
					"docker: GET /version: the answer is "
					"not an object");
			goto out;
		}
		d->version = v;
		v = NULL;
		rc = negotiate(d);
		if (rc < 0) {
			json_decref(d->version);
			d->version = NULL;
			goto out;
		}
	}
	if (version)
		*version = d->version;
	if (api_version)
		*api_version = d->api;
	rc = 0;
out:
	json_decref(v);
	ml_buf_release(&d->resp);
	return rc;
}

/*
 * Send one request (path checked, API version negotiated, body encoded) and
 * leave the answer in d->resp with the HTTP status in *status. The caller
 * releases d->resp.
 */
static int docker_exchange(struct ml_docker *d, const char *method,
			   const char *path, json_t *body, long *status)
{
	struct ml_buf url = ML_BUF_INIT(PATH_MAX_LEN + 32);
	char *text = NULL;
	int rc;

	*status = 0;
	if (!valid_path(path))
		return ml_err_set(ML_EINVALID,
				  "docker: malformed API path (must start "
				  "with '/', printable ASCII, at most %d "
				  "bytes)",
				  PATH_MAX_LEN);
	rc = ml_docker_version(d, NULL, NULL);
	if (rc < 0)
		goto out;
	rc = ml_buf_addf(&url, "/v%s%s", d->api, path);
	if (rc < 0)
		goto out;
	if (body) {
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!text) {
			rc = ml_err_set(ML_EFAIL,
					"docker: %s %s: cannot encode the body",
					method, path);
			goto out;
		}
	}
	rc = docker_http(d, method, url.data, path, text,
			 text ? strlen(text) : 0, status);
out:
	free(text);
	ml_buf_release(&url);
	return rc;
}

int ml_docker_request(struct ml_docker *d, const char *method, const char *path,
		      json_t *body, json_t **out)
{
	long status = 0;
	int rc;

	if (out)
		*out = NULL;
	rc = docker_exchange(d, method, path, body, &status);
	if (rc == 0 && status / 100 != 2)
		rc = status_error(d, method, path, status);
	if (rc == 0)
		rc = decode_answer(d, method, path, out);
	ml_buf_release(&d->resp);
	return rc;
}

int ml_docker_get(struct ml_docker *d, const char *path, json_t **out)
{
	return ml_docker_request(d, "GET", path, NULL, out);
}

int ml_docker_post(struct ml_docker *d, const char *path, json_t *body,
		   json_t **out)
{
	return ml_docker_request(d, "POST", path, body, out);
}

int ml_docker_url_escape(struct ml_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	char enc[3];
	int rc = 0;

	for (; *p && rc == 0; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			rc = ml_buf_addch(out, (char)*p);
		} else {
			enc[0] = '%';
			enc[1] = hex[*p >> 4];
			enc[2] = hex[*p & 15];
			rc = ml_buf_add(out, enc, 3);
		}
	}
	return rc;
}

bool ml_docker_valid_name(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; s[i]; i++) {
		if (i >= ML_DOCKER_NAME_MAX)
			return false;
		if ((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9'))
			continue;
		if (i > 0 && (s[i] == '_' || s[i] == '.' || s[i] == '-'))
			continue;
		return false;
	}
	return i > 0;
}

/*
 * Streaming requests (see ml_docker_stream): the same handle and error
 * reporting as above, but the body comes from a read callback and the
 * answer goes to a write callback, so nothing is held in memory but curl's
 * own buffers. Only a non-2xx answer is collected, in d->resp (capped), for
 * its message.
 */
#include "common/io.h"

struct stream_ctx {
	struct ml_docker *d;
	struct ml_io *io;
	long status; /* 0 until the first piece of the answer */
	int rc;	     /* a callback's failure, already in ml_err */
};

static size_t stream_write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct stream_ctx *s = data;
	size_t n = size * nmemb;
	int rc;

	if (!s->status)
		curl_easy_getinfo(s->d->curl, CURLINFO_RESPONSE_CODE,
				  &s->status);
	if (s->status / 100 != 2) {
		/* an error message: keep what fits under the cap */
		(void)ml_buf_add(&s->d->resp, p, n);
		return n;
	}
	if (!s->io->write)
		return n;
	rc = s->io->write(s->io->ctx, p, n);
	if (rc < 0) {
		s->rc = rc;
		return 0; /* CURLE_WRITE_ERROR */
	}
	return n;
}

static size_t stream_read_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct stream_ctx *s = data;
	ssize_t r = s->io->read(s->io->ctx, p, size * nmemb);

	if (r < 0) {
		s->rc = (int)r;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)r;
}

int ml_docker_stream(struct ml_docker *d, const char *method, const char *path,
		     const char *content_type, struct ml_io *io, long stall_ms)
{
	struct ml_buf url = ML_BUF_INIT(PATH_MAX_LEN + 64),
		      shown = ML_BUF_INIT(PATH_MAX_LEN),
		      ctype = ML_BUF_INIT(256);
	struct stream_ctx s = { d, io, 0, 0 };
	struct curl_slist *hdrs = NULL;
	long oserr = 0;
	CURLcode cc;
	int rc;

	if (!valid_path(path))
		return ml_err_set(ML_EINVALID,
				  "docker: malformed API path (must start "
				  "with '/', printable ASCII, at most %d "
				  "bytes)",
				  PATH_MAX_LEN);
	if (stall_ms <= 0)
		stall_ms = ML_DOCKER_STALL_MS;
	rc = ml_docker_version(d, NULL, NULL);
	if (rc < 0)
		goto out;
	rc = ml_buf_add(&shown, path, strcspn(path, "?"));
	if (!rc)
		rc = ml_buf_addf(&url, "http://localhost/v%s%s", d->api, path);
	if (!rc)
		rc = ml_buf_addf(&ctype, "Content-Type: %s",
				 content_type ? content_type
					      : "application/octet-stream");
	if (rc < 0)
		goto out;
	ml_buf_release(&d->resp);
	ml_buf_init(&d->resp, ERR_TEXT_MAX * 4);
	d->errbuf[0] = '\0';

	curl_easy_reset(d->curl);
	curl_easy_setopt(d->curl, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(d->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 ML_DOCKER_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(d->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(d->curl, CURLOPT_LOW_SPEED_TIME,
			 stall_ms < 1000 ? 1L : stall_ms / 1000);
	curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, stream_write_cb);
	curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->curl, CURLOPT_USERAGENT, "mlctl");
	curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (hdrs && io->read) {
		hdrs = curl_slist_append(hdrs, ctype.data);
		if (hdrs)
			hdrs = curl_slist_append(hdrs,
						 "Transfer-Encoding: chunked");
	}
	if (!hdrs) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, hdrs);
	if (io->read) {
		/*
		 * A body read once cannot be replayed if a kept-alive
		 * connection turns out to be closed: always connect anew.
		 */
		curl_easy_setopt(d->curl, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(d->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(d->curl, CURLOPT_READFUNCTION,
				 stream_read_cb);
		curl_easy_setopt(d->curl, CURLOPT_READDATA, &s);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)0);
	} else {
		curl_easy_setopt(d->curl, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(d->curl, CURLOPT_CUSTOMREQUEST, method);

	cc = curl_easy_perform(d->curl);
	if (s.rc < 0) {
		rc = s.rc; /* the callback's own message */
		goto out;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = ml_err_set(ML_EFAIL,
				"docker: %s %s: the daemon at '%s' sent and "
				"took nothing for %ld s",
				method, shown.data, d->sock, stall_ms / 1000);
		goto out;
	}
	if (cc == CURLE_COULDNT_CONNECT) {
		if (curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &oserr) !=
			    CURLE_OK ||
		    !oserr)
			oserr = ECONNREFUSED;
		rc = ml_err_errno(ML_EFAIL, (int)oserr,
				  "cannot connect to the Docker daemon at '%s' "
				  "(is dockerd running?)",
				  d->sock);
		goto out;
	}
	if (!s.status)
		curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &s.status);
	if (s.status && s.status / 100 != 2) {
		rc = status_error(d, method, shown.data, s.status);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = ml_err_set(
			ML_EFAIL, "docker: %s %s: %s", method, shown.data,
			d->errbuf[0] ? d->errbuf : curl_easy_strerror(cc));
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	ml_buf_release(&url);
	ml_buf_release(&shown);
	ml_buf_release(&ctype);
	ml_buf_release(&d->resp);
	return rc;
}

struct get_stream_ctx {
	int (*write)(void *ctx, const void *p, size_t n);
	void *ctx;
};

static int get_stream_write(void *ctx, const void *p, size_t n)
{
	struct get_stream_ctx *g = ctx;

	return g->write(g->ctx, p, n);
}

int ml_docker_get_stream(struct ml_docker *d, const char *path,
			 int (*write)(void *ctx, const void *p, size_t n),
			 void *ctx)
{
	struct get_stream_ctx g = { write, ctx };
	struct ml_io io = { NULL, get_stream_write, &g };

	return ml_docker_stream(d, "GET", path, NULL, &io, 0);
}

/*
 * Answers that are not JSON (ml_docker_request_raw), and container logs.
 * The raw body is collected in d->resp like any answer, under the client's
 * cap, then copied into the caller's buffer under its own cap. Log lines
 * are built in one line buffer per stream, each at most line_max bytes, so
 * a line without a newline costs no more than that.
 */
#include "common/log.h"

int ml_docker_request_raw(struct ml_docker *d, long *status, const char *method,
			  const char *path, json_t *body, struct ml_buf *out)
{
	long st = 0;
	int rc;

	if (status)
		*status = 0;
	rc = docker_exchange(d, method, path, body, &st);
	if (rc < 0)
		goto out;
	if (status)
		*status = st;
	if (st / 100 != 2 && st != 304) {
		rc = status_error(d, method, path, st);
		goto out;
	}
	if (out && d->resp.len &&
	    ml_buf_add(out, d->resp.data, d->resp.len) < 0) {
		rc = ml_err_set(ML_ETOOBIG,
				"docker: %s %s: the answer is larger than the "
				"limit of %zu bytes",
				method, path, out->max);
		goto out;
	}
	rc = 0;
out:
	ml_buf_release(&d->resp);
	return rc;
}

struct log_line {
	struct ml_buf text; /* at most line_max bytes */
	bool cut;	    /* bytes were dropped past line_max */
};

static int log_line_emit(json_t *lines, struct log_line *l)
{
	struct ml_buf esc = ML_BUF_INIT(0);
	size_t n = l->text.len;
	json_t *s;
	int rc;

	if (n && l->text.data[n - 1] == '\r')
		n--;
	rc = ml_escape(&esc, l->text.data ? l->text.data : "", n);
	if (!rc && l->cut)
		rc = ml_buf_addstr(&esc, "...");
	if (rc < 0)
		goto out;
	s = json_stringn(esc.data ? esc.data : "", esc.len);
	if (!s || json_array_append_new(lines, s) < 0) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	ml_buf_reset(&l->text);
	l->cut = false;
out:
	ml_buf_release(&esc);
	return rc;
}

/* Add n bytes of one stream to its current line, emitting whole lines. */
static int log_line_add(json_t *lines, struct log_line *l, const char *p,
			size_t n, size_t line_max)
{
	const char *nl;
	size_t k, take;
	int rc;

	while (n) {
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) : n;
		take = l->text.len < line_max ? line_max - l->text.len : 0;
		if (take > k)
			take = k;
		if (take < k)
			l->cut = true;
		rc = ml_buf_add(&l->text, p, take);
		if (rc < 0)
			return rc;
		if (!nl)
			break;
		rc = log_line_emit(lines, l);
		if (rc < 0)
			return rc;
		p += k + 1;
		n -= k + 1;
	}
	return 0;
}

static bool log_header(const unsigned char *p, size_t n)
{
	return n >= 8 && p[0] <= 2 && !p[1] && !p[2] && !p[3];
}

int ml_docker_log_lines(json_t *lines, const char *p, size_t n, size_t line_max)
{
	const unsigned char *u = (const unsigned char *)p;
	struct log_line l[2]; /* stdout (and raw output), stderr */
	size_t off = 0, size;
	int i, rc = 0;

	if (!line_max)
		BUG("log line_max 0");
	for (i = 0; i < 2; i++) {
		ml_buf_init(&l[i].text, line_max);
		l[i].cut = false;
	}
	if (!log_header(u, n)) {
		rc = log_line_add(lines, &l[0], p, n, line_max);
		off = n;
	}
	while (rc == 0 && off < n) {
		if (!log_header(u + off, n - off)) {
			/* not a header after all: keep the rest as text */
			rc = log_line_add(lines, &l[0], p + off, n - off,
					  line_max);
			break;
		}
		size = (size_t)u[off + 4] << 24 | (size_t)u[off + 5] << 16 |
		       (size_t)u[off + 6] << 8 | (size_t)u[off + 7];
		i = u[off] == 2 ? 1 : 0;
		off += 8;
		if (size > n - off)
			size = n - off;
		rc = log_line_add(lines, &l[i], p + off, size, line_max);
		off += size;
	}
	for (i = 0; rc == 0 && i < 2; i++)
		if (l[i].text.len || l[i].cut)
			rc = log_line_emit(lines, &l[i]);
	for (i = 0; i < 2; i++)
		ml_buf_release(&l[i].text);
	return rc;
}

int ml_docker_logs_tail(json_t **out, struct ml_docker *d, const char *id,
			int tail, size_t line_max)
{
	struct ml_buf path = ML_BUF_INIT(512);
	struct ml_buf raw = ML_BUF_INIT(ML_DOCKER_LOGS_MAX);
	json_t *lines = NULL;
	int rc;

	if (!ml_docker_valid_name(id))
		return ml_err_set(ML_EINVALID,
				  "docker: logs: not a container id or name");
	if (tail < 1)
		BUG("log tail %d", tail);
	rc = ml_buf_addf(&path, "/containers/%s/logs?stdout=1&stderr=1&tail=%d",
			 id, tail);
	if (rc < 0)
		goto out;
	rc = ml_docker_request_raw(d, NULL, "GET", path.data, NULL, &raw);
	if (rc < 0)
		goto out;
	lines = json_array();
	if (!lines) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	rc = ml_docker_log_lines(lines, raw.data ? raw.data : "", raw.len,
				 line_max);
	if (rc < 0)
		goto out;
	*out = lines;
	lines = NULL;
out:
	json_decref(lines);
	ml_buf_release(&raw);
	ml_buf_release(&path);
	return rc;
}
