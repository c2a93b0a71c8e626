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
 * nothing can smuggle a space or CRLF into the request line.
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

static bool valid_path(const char *path)
{
	size_t i;

	if (path[0] != '/')
		return false;
	for (i = 0; path[i]; i++)
		if (i >= PATH_MAX_LEN || path[i] <= ' ' || path[i] > '~')
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

int ml_docker_request(struct ml_docker *d, const char *method, const char *path,
		      json_t *body, json_t **out)
{
	struct ml_buf url = ML_BUF_INIT(PATH_MAX_LEN + 32);
	char *text = NULL;
	long status = 0;
	int rc;

	if (out)
		*out = NULL;
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
			 text ? strlen(text) : 0, &status);
	if (rc < 0)
		goto out;
	if (status / 100 != 2) {
		rc = status_error(d, method, path, status);
		goto out;
	}
	rc = decode_answer(d, method, path, out);
out:
	free(text);
	ml_buf_release(&url);
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
