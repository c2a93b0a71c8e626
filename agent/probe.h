#ifndef ML_AGENT_PROBE_H
#define ML_AGENT_PROBE_H

/*
 * HTTP health probes of the app's containers, from the agent, which runs in
 * the VM's network namespace. One GET per call on a fresh connection (a
 * probe must not pass because an old kept-alive connection still works),
 * no proxy (the environment's http_proxy would send 127.0.0.1 elsewhere),
 * no redirects followed (a 3xx is an answer, and counts as up), plain
 * http only. With common/docker.c, the only code that includes libcurl.
 */

#include <jansson.h>

struct ml_buf;

#define ML_PROBE_PATH_MAX 1024
#define ML_PROBE_BODY_MAX ((size_t)64 << 10) /* kept for the checks */

struct ml_probe_result {
	long status;	 /* HTTP status, 0 when there was no answer */
	long elapsed_ms; /* time the probe took */
};

/*
 * GET http://host:port/path once, connect included within timeout_ms (>
 * 0). host is an IPv4 or IPv6 literal; path starts with '/' and is
 * printable ASCII without spaces (ml_probe_valid_path). Returns 0 for a
 * 2xx or 3xx answer; ML_EFAIL for anything else, with the reason as the
 * error message ("GET http://127.0.0.1:8000/health: HTTP 503", "...:
 * connection refused", "...: no answer within 1000 ms"); ML_EINVALID for a
 * bad host, port or path. *out (may be NULL) is filled in either way.
 */
int ml_probe_http(struct ml_probe_result *out, const char *host, int port,
		  const char *path, long timeout_ms);

/*
 * What a passing answer must also hold. status: the accepted codes
 * (nstatus of them; none: 200-399); body: a substring of the body; json:
 * the body is a JSON object whose member json_field (a dotted path,
 * "model.state") equals json_value (a string, or a number, true, false or
 * null written as text). Only the first ML_PROBE_BODY_MAX bytes of the
 * body are looked at. Strings are borrowed.
 */
#define ML_PROBE_MAX_STATUS 16

struct ml_probe_expect {
	int status[ML_PROBE_MAX_STATUS];
	size_t nstatus;
	const char *body;
	const char *json_field, *json_value;
};

/*
 * ml_probe_http with an expectation (NULL: as ml_probe_http). A failed
 * expectation is ML_EFAIL "GET ...: HTTP 200, body lacks 'ready'" or
 * "...: 'status' is \"loading\", not 'ready'" (text from the server
 * escaped and cut short).
 */
int ml_probe_http_expect(struct ml_probe_result *out, const char *host,
			 int port, const char *path, long timeout_ms,
			 const struct ml_probe_expect *expect);

/*
 * Check an answer against expect: a pure function for tests and for
 * ml_probe_http_expect. 0 when it passes; ML_EFAIL with why otherwise
 * (prefix, then ": " and the reason).
 */
int ml_probe_check(const struct ml_probe_expect *expect, long status,
		   const char *body, size_t len, const char *prefix);

/*
 * Fill e from a JSON "expect" object ({"status": [..], "body": "..",
 * "json": {"field", "value"}}); NULL or null leaves e empty. Strings are
 * borrowed from j. ML_EPROTO for wrong types or values out of range.
 */
int ml_probe_expect_from_json(struct ml_probe_expect *e, const json_t *j);

/*
 * One request of any method, for the golden requests of a rollout
 * (op_container_request.c): METHOD http://host:port/path with body (NULL:
 * none; else sent as application/json), on a fresh connection within
 * timeout_ms. 0 when an answer came (any status), with out->status,
 * out->elapsed_ms and the first ML_PROBE_BODY_MAX bytes of the body in
 * *body (appended; the caller's); ML_EFAIL when none came (the reason as
 * the message), ML_EINVALID for a bad host, port, method or path.
 */
int ml_probe_request(struct ml_probe_result *out, struct ml_buf *body,
		     const char *host, int port, const char *method,
		     const char *path, const char *req_body, long timeout_ms);

/* True when path can be probed: '/' then printable ASCII, no spaces. */
bool ml_probe_valid_path(const char *path);

#endif
