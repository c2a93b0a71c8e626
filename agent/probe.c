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
#include "agent/probe.h"

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

struct probe_sink {
	size_t bytes;
	bool cut; /* body passed ML_PROBE_BODY_MAX */
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

	s->bytes += n;
	if (s->bytes > ML_PROBE_BODY_MAX) {
		s->cut = true;
		return 0;
	}
	return n;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	struct ml_buf url = ML_BUF_INIT(ML_PROBE_PATH_MAX + 128);
	struct probe_sink sink = {0};
	char errbuf[CURL_ERROR_SIZE] = "";
	long t0 = now_ms(), status = 0, oserr = 0;
	bool v6 = host && strchr(host, ':');
	CURL *c = NULL;
	CURLcode cc;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!host || !valid_host(host) || port < 1 || port > 65535 ||
	    !ml_probe_valid_path(path) || timeout_ms <= 0)
		return ml_err_set(ML_EINVALID,
				  "health probe: bad address, port or path");
	rc = ml_buf_addf(&url, "http://%s%s%s:%d%s", v6 ? "[" : "", host,
			 v6 ? "]" : "", port, path);
	if (rc < 0)
		goto out;
	pthread_once(&probe_once, probe_init);
	if (probe_init_rc != CURLE_OK) {
		rc = ml_err_set(ML_EFAIL, "cannot initialize libcurl: %s",
				curl_easy_strerror(probe_init_rc));
		goto out;
	}
	c = curl_easy_init();
	if (!c) {
		rc = ml_err_set(ML_EFAIL, "cannot initialize libcurl");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mlctl-agent-probe");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

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
	} else if (status < 200 || status > 399) {
		rc = ml_err_set(ML_EFAIL, "GET %s: HTTP %ld", url.data, status);
	} else {
		rc = 0;
	}
	if (out) {
		out->status = status;
		out->elapsed_ms = now_ms() - t0;
	}
out:
	curl_easy_cleanup(c);
	ml_buf_release(&url);
	return rc;
}
