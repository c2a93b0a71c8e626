#ifndef ML_DOCKER_H
#define ML_DOCKER_H

/*
 * A small Docker Engine API client over the daemon's unix socket, the only
 * code that includes libcurl. One handle keeps its connection open between
 * requests. Requests and answers are JSON (jansson); answers are capped in
 * size and every request has a connect timeout (2 s) and a total timeout.
 *
 * The API version is negotiated on first use from GET /version: we ask for
 * ML_DOCKER_API (the version this code was written against), or the
 * daemon's minimum when it no longer speaks that, or the daemon's maximum
 * when it is older (down to ML_DOCKER_API_MIN).
 *
 *	struct ml_docker *d;
 *	json_t *v;
 *	if (ml_docker_new(&d, NULL) < 0 || ml_docker_get(d, "/info", &v) < 0)
 *		...
 */

#include <jansson.h>

#define ML_DOCKER_SOCK "/run/docker.sock"
#define ML_DOCKER_API "1.41"	 /* Docker 20.10 */
#define ML_DOCKER_API_MIN "1.40" /* Docker 19.03 */
#define ML_DOCKER_CONNECT_TIMEOUT_MS 2000L
#define ML_DOCKER_TIMEOUT_MS 30000L
#define ML_DOCKER_MAX_RESPONSE ((size_t)16 << 20)
#define ML_DOCKER_NAME_MAX 128 /* container ids are 64, names shorter */

struct ml_docker;

/*
 * A client for the socket at sock_path; NULL means $MLCTL_DOCKER_SOCK, else
 * ML_DOCKER_SOCK. Nothing is connected yet, so this only fails on a bad
 * path (ML_EINVALID). Free with ml_docker_free.
 */
int ml_docker_new(struct ml_docker **out, const char *sock_path);
void ml_docker_free(struct ml_docker *d);

/* The socket path in use. Borrowed. */
const char *ml_docker_sock(const struct ml_docker *d);

/* Total time allowed for each later request, in ms (> 0). */
void ml_docker_set_timeout(struct ml_docker *d, long timeout_ms);
long ml_docker_timeout(const struct ml_docker *d);

/* Largest answer body accepted, in bytes (default ML_DOCKER_MAX_RESPONSE). */
void ml_docker_set_max_response(struct ml_docker *d, size_t max);

/*
 * One request. method is "GET", "POST", "DELETE", ...; path is the API
 * path with its query string, starting with '/', already URL-encoded
 * (printable ASCII only), without the version prefix, which is added. body
 * (borrowed, may be NULL) is sent as application/json. On success *out (may
 * be NULL when not wanted) is the decoded answer, or NULL when Docker sent
 * no body (204); it is the caller's reference.
 *
 * Failures: ML_ENOTFOUND for HTTP 404, ML_EFAIL for any other non-2xx status
 * (message: Docker's "message", escaped), for a daemon that cannot be
 * reached, times out or answers with something other than JSON; ML_ETOOBIG
 * for an answer over the cap; ML_EINVALID for a malformed path.
 */
int ml_docker_request(struct ml_docker *d, const char *method, const char *path,
		      json_t *body, json_t **out);

/* ml_docker_request with "GET" and "POST". */
int ml_docker_get(struct ml_docker *d, const char *path, json_t **out);
int ml_docker_post(struct ml_docker *d, const char *path, json_t *body,
		   json_t **out);

/*
 * The daemon's GET /version answer (cached after the first success;
 * borrowed, valid until ml_docker_free) and the API version negotiated
 * from it ("1.41"). Fails like ml_docker_request.
 */
int ml_docker_version(struct ml_docker *d, json_t **version,
		      const char **api_version);

/*
 * Append s to out percent-encoded for a URL query value or path segment
 * (everything but A-Z a-z 0-9 - . _ ~ is encoded).
 */
int ml_docker_url_escape(struct ml_buf *out, const char *s);

/*
 * True when s is usable as a container id or name, an app name or a label
 * value in a URL: [A-Za-z0-9][A-Za-z0-9_.-]*, at most ML_DOCKER_NAME_MAX.
 */
bool ml_docker_valid_name(const char *s);

#endif
