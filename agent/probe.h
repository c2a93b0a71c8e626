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

#define ML_PROBE_PATH_MAX 1024
#define ML_PROBE_BODY_MAX ((size_t)64 << 10) /* read, then dropped */

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

/* True when path can be probed: '/' then printable ASCII, no spaces. */
bool ml_probe_valid_path(const char *path);

#endif
