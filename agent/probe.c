/*
 * HTTP health probe (see probe.h): one libcurl easy handle per probe,
 * so every probe opens its own connection and nothing carries over.
 *
 * Invariants: the URL is built only from a checked address literal, a
 * port and a checked path, so it cannot name another scheme or host;
 * CURLOPT_PROTOCOLS_STR limits libcurl to http anyway. The answer body is
 * counted and dropped; past ML_PROBE_BODY_MAX (64 KiB) the transfer is cut
 * short, which is fine since the status line has been read by then. Text
 * in error messages comes from libcurl or is the checked path, never from
 * the probed server.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/probe.h"
#include "common/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

struct probe_sink {
	size_t bytes;
	bool cut;	 /* body passed ML_PROBE_BODY_MAX */
	struct ml_buf *keep; /* the body, when an expectation reads it */
};

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static CURLcode probe_init_rc;

/* curl_global_init counts its callers, so docker.c calling it too is fine. */
static void probe_init(void)
{
	probe_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t sink_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct probe_sink *s = data;
	size_t n = size * nmemb;

	if (s->bytes + n > ML_PROBE_BODY_MAX) {
		if (s->keep)
			(void)ml_buf_add(s->keep, p,
					 ML_PROBE_BODY_MAX - s->bytes);
		s->bytes = ML_PROBE_BODY_MAX;
		s->cut = true;
		return 0;
	}
	s->bytes += n;
	if (s->keep)
		(void)ml_buf_add(s->keep, p, n);
	return n;
}

bool ml_probe_valid_path(const char *path)
{
	size_t i;

	if (!path || path[0] != '/')
		return false;
	for (i = 0; path[i]; i++)
		if (i >= ML_PROBE_PATH_MAX || path[i] <= ' ' || path[i] > '~')
			return false;
	return true;
}

/* An IPv4 or IPv6 literal: only hex digits, '.' and ':'. */
static bool valid_host(const char *host)
{
	size_t i;

	for (i = 0; host[i]; i++)
		if (i >= 64 || !strchr("0123456789abcdefABCDEF.:", host[i]))
			return false;
	return i > 0;
}

int ml_probe_http(struct ml_probe_result *out, const char *host, int port,
		  const char *path, long timeout_ms)
{
	return ml_probe_http_expect(out, host, port, path, timeout_ms, NULL);
}

/*
 * A libcurl handle for one plain-HTTP request to host:port path, the URL
 * in url: no proxy, no redirects, no reuse, timeout_ms for all of it.
 * NULL with the error set.
 */
static CURL *http_handle(struct ml_buf *url, const char *host, int port,
			 const char *path, long timeout_ms, const char *agent,
			 char errbuf[CURL_ERROR_SIZE])
{
	bool v6 = strchr(host, ':') != NULL;
	CURL *c;

	if (ml_buf_addf(url, "http://%s%s%s:%d%s", v6 ? "[" : "", host,
			v6 ? "]" : "", port, path) < 0)
		return NULL;
	pthread_once(&probe_once, probe_init);
	if (probe_init_rc != CURLE_OK) {
		ml_err_set(ML_EFAIL, "cannot initialize libcurl: %s",
			   curl_easy_strerror(probe_init_rc));
		return NULL;
	}
	c = curl_easy_init();
	if (!c) {
		ml_err_set(ML_EFAIL, "cannot initialize libcurl");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url->data);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, agent);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	return c;
}

int ml_probe_http_expect(struct ml_probe_result *out, const char *host,
			 int port, const char *path, long timeout_ms,
			 const struct ml_probe_expect *expect)
{
	struct ml_buf url = ML_BUF_INIT(ML_PROBE_PATH_MAX + 128),
		      body = ML_BUF_INIT(ML_PROBE_BODY_MAX + 1);
	struct probe_sink sink = {0};
	char errbuf[CURL_ERROR_SIZE] = "";
	long t0 = ml_mono_ms(), status = 0, oserr = 0;
	CURL *c = NULL;
	CURLcode cc;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!host || !valid_host(host) || port < 1 || port > 65535 ||
	    !ml_probe_valid_path(path) || timeout_ms <= 0)
		return ml_err_set(ML_EINVALID,
				  "health probe: bad address, port or path");
	c = http_handle(&url, host, port, path, timeout_ms,
			"mlctl-agent-probe", errbuf);
	if (!c) {
		rc = ml_err_code() ? ml_err_code() : ML_EFAIL;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	if (expect && (expect->body || expect->json_field))
		sink.keep = &body;

	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && sink.cut)
		cc = CURLE_OK; /* answered; the rest of the body is not wanted
				*/
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = ml_err_set(ML_EFAIL, "GET %s: no answer within %ld ms",
				url.data, timeout_ms);
	} else if (cc == CURLE_COULDNT_CONNECT) {
		if (curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr) !=
			    CURLE_OK ||
		    !oserr)
			oserr = ECONNREFUSED;
		rc = ml_err_errno(ML_EFAIL, (int)oserr, "GET %s", url.data);
	} else if (cc == CURLE_GOT_NOTHING) {
		rc = ml_err_set(ML_EFAIL,
				"GET %s: connection closed without an answer",
				url.data);
	} else if (cc != CURLE_OK) {
		rc = ml_err_set(ML_EFAIL, "GET %s: %s", url.data,
				errbuf[0] ? errbuf : curl_easy_strerror(cc));
	} else if (expect) {
		char prefix[ML_PROBE_PATH_MAX + 160];

		snprintf(prefix, sizeof(prefix), "GET %s", url.data);
		rc = ml_probe_check(expect, status, body.data ? body.data : "",
				    body.len, prefix);
	} else if (status < 200 || status > 399) {
		rc = ml_err_set(ML_EFAIL, "GET %s: HTTP %ld", url.data, status);
	} else {
		rc = 0;
	}
	if (out) {
		out->status = status;
		out->elapsed_ms = ml_mono_ms() - t0;
	}
out:
	curl_easy_cleanup(c);
	ml_buf_release(&url);
	ml_buf_release(&body);
	return rc;
}

int ml_probe_request(struct ml_probe_result *out, struct ml_buf *body,
		     const char *host, int port, const char *method,
		     const char *path, const char *req_body, long timeout_ms)
{
	struct ml_buf url = ML_BUF_INIT(ML_PROBE_PATH_MAX + 128);
	struct probe_sink sink = { 0 };
	struct curl_slist *hdr = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	long t0 = ml_mono_ms(), status = 0;
	CURL *c = NULL;
	CURLcode cc;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; method && method[i]; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			break;
	if (!host || !valid_host(host) || port < 1 || port > 65535 ||
	    !ml_probe_valid_path(path) || timeout_ms <= 0 || !method ||
	    !method[0] || method[i] || i > 16)
		return ml_err_set(ML_EINVALID,
				  "request: bad address, port, method or path");
	c = http_handle(&url, host, port, path, timeout_ms,
			"mlctl-agent-verify", errbuf);
	if (!c) {
		rc = ml_err_code() ? ml_err_code() : ML_EFAIL;
		goto out;
	}
	sink.keep = body;
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (req_body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(req_body));
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && sink.cut)
		cc = CURLE_OK;
	if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = ml_err_set(ML_EFAIL, "%s %s: no answer within %ld ms",
				method, url.data, timeout_ms);
	else if (cc != CURLE_OK)
		rc = ml_err_set(ML_EFAIL, "%s %s: %s", method, url.data,
				errbuf[0] ? errbuf : curl_easy_strerror(cc));
	else
		rc = 0;
	out->status = status;
	out->elapsed_ms = ml_mono_ms() - t0;
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	ml_buf_release(&url);
	return rc;
}

/* s (n bytes, from the server) escaped and cut, for a message. */
static const char *quoted(struct ml_buf *b, const char *s, size_t n)
{
	ml_buf_reset(b);
	(void)ml_escape(b, s, n > 80 ? 80 : n);
	if (n > 80)
		(void)ml_buf_addstr(b, "...");
	return ml_buf_str(b);
}

/* The member at a dotted path of o, or NULL. */
static json_t *json_at(json_t *o, const char *path)
{
	char key[ML_PROBE_PATH_MAX];
	size_t n;

	while (o && *path) {
		n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = json_is_object(o) ? json_object_get(o, key) : NULL;
		path += n;
		if (*path == '.')
			path++;
	}
	return o;
}

/* A scalar as the text a playbook would write: "ready", "3", "true". */
static bool json_text_equals(const json_t *v, const char *want)
{
	char num[64];

	if (json_is_string(v))
		return !strcmp(json_string_value(v), want);
	if (json_is_true(v))
		return !strcmp(want, "true");
	if (json_is_false(v))
		return !strcmp(want, "false");
	if (json_is_null(v))
		return !strcmp(want, "null");
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%lld",
			 (long long)json_integer_value(v));
		return !strcmp(num, want);
	}
	if (json_is_real(v))
		return json_real_value(v) == strtod(want, NULL) && *want;
	return false;
}

int ml_probe_check(const struct ml_probe_expect *e, long status,
		   const char *body, size_t len, const char *prefix)
{
	struct ml_buf q = ML_BUF_INIT(1024);
	json_t *doc = NULL, *v;
	size_t i;
	bool ok;
	int rc = 0;

	if (e->nstatus) {
		ok = false;
		for (i = 0; i < e->nstatus; i++)
			ok = ok || e->status[i] == status;
	} else {
		ok = status >= 200 && status <= 399;
	}
	if (!ok) {
		rc = ml_err_set(ML_EFAIL, "%s: HTTP %ld", prefix, status);
		goto out;
	}
	if (e->body && !memmem(body, len, e->body, strlen(e->body))) {
		rc = ml_err_set(ML_EFAIL, "%s: HTTP %ld, body lacks '%s'",
				prefix, status, quoted(&q, e->body,
						       strlen(e->body)));
		goto out;
	}
	if (e->json_field) {
		doc = json_loadb(body, len, 0, NULL);
		if (!json_is_object(doc)) {
			rc = ml_err_set(ML_EFAIL,
					"%s: HTTP %ld, body is not a JSON "
					"object: '%s'",
					prefix, status, quoted(&q, body, len));
			goto out;
		}
		v = json_at(doc, e->json_field);
		if (!v || json_is_object(v) || json_is_array(v) ||
		    !json_text_equals(v, e->json_value ? e->json_value : "")) {
			char *dump = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

			rc = ml_err_set(ML_EFAIL, "%s: HTTP %ld, '%s' is %s, "
						  "not '%s'",
					prefix, status, e->json_field,
					dump ? quoted(&q, dump, strlen(dump))
					     : "missing",
					e->json_value);
			free(dump);
			goto out;
		}
	}
out:
	json_decref(doc);
	ml_buf_release(&q);
	return rc;
}

int ml_probe_expect_from_json(struct ml_probe_expect *e, const json_t *j)
{
	const json_t *st, *v, *js;
	size_t i;

	memset(e, 0, sizeof(*e));
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_object(j))
		return ml_err_set(ML_EPROTO, "'expect' must be an object");
	st = json_object_get(j, "status");
	if (st) {
		if (!json_is_array(st) || !json_array_size(st) ||
		    json_array_size(st) > ML_PROBE_MAX_STATUS)
			return ml_err_set(ML_EPROTO,
					  "'expect.status' must list 1 to %d "
					  "codes",
					  ML_PROBE_MAX_STATUS);
		json_array_foreach(st, i, v)
		{
			if (!json_is_integer(v) || json_integer_value(v) < 100 ||
			    json_integer_value(v) > 599)
				return ml_err_set(ML_EPROTO,
						  "'expect.status' holds "
						  "HTTP codes (100..599)");
			e->status[e->nstatus++] = (int)json_integer_value(v);
		}
	}
	v = json_object_get(j, "body");
	if (v && (!json_is_string(v) || !json_string_length(v)))
		return ml_err_set(ML_EPROTO, "'expect.body' must be a string");
	e->body = json_string_value(v);
	js = json_object_get(j, "json");
	if (js) {
		e->json_field = json_string_value(json_object_get(js, "field"));
		e->json_value = json_string_value(json_object_get(js, "value"));
		if (!e->json_field || !*e->json_field || !e->json_value)
			return ml_err_set(ML_EPROTO,
					  "'expect.json' needs string 'field' "
					  "and 'value'");
	}
	return 0;
}
