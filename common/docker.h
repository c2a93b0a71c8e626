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

#define ML_DOCKER_IMAGE_MAX 512

/*
 * True when s is an image reference safe to put in an API path:
 * "sha256:" and 1 to 64 hex digits (Docker takes a prefix of an id), or
 * [registry[:port]/]name[:tag][@sha256:hex]
 * whose components are letters and digits joined by single '.', '_' or
 * '-' (so never "." or ".." segments), at most ML_DOCKER_IMAGE_MAX bytes.
 * Every request path is also refused when it holds a dot segment.
 */
bool ml_docker_valid_image(const char *s);

/* ---- streaming requests ------------------------------------------------ */

struct ml_io;

/* Default for stall_ms below: 30 minutes without a byte moving. */
#define ML_DOCKER_STALL_MS (30L * 60 * 1000)

/*
 * One request whose body and answer are streamed, for what is too large
 * to hold in memory (POST /build with a tar body, GET /images/<id>/get,
 * POST /images/load). path is as for ml_docker_request. When io->read is
 * not NULL it supplies the request body, sent chunked with content_type
 * (NULL: "application/octet-stream"); it returns the byte count, 0 at the
 * end, or a negative ML_E* code with the message set, which aborts the
 * request with that code. io->write receives each piece of a 2xx
 * answer's body in order (it may be NULL to drop it); a negative return
 * aborts the request with that code and message. io->ctx is passed to
 * both.
 *
 * There is no total timeout, since saving or building a multi-GB image
 * takes as long as it takes; instead the request fails when no byte has
 * moved either way for stall_ms (0: ML_DOCKER_STALL_MS). A non-2xx answer
 * is never passed to io->write: it fails like ml_docker_request, and
 * messages show the path without its query string.
 */
int ml_docker_stream(struct ml_docker *d, const char *method, const char *path,
		     const char *content_type, struct ml_io *io, long stall_ms);

/* GET path, each piece of the answer given to write(ctx, p, n). */
int ml_docker_get_stream(struct ml_docker *d, const char *path,
			 int (*write)(void *ctx, const void *p, size_t n),
			 void *ctx);

/* ---- answers that are not JSON; container logs -------------------------- */

#define ML_DOCKER_LOGS_MAX ((size_t)8 << 20) /* raw log answer we accept */

/*
 * Like ml_docker_request, for answers that are not JSON: the body of a 2xx
 * answer is appended to out as is (out may be NULL: dropped), bounded by
 * out->max and the client's answer cap (ML_ETOOBIG past either). *status
 * (may be NULL) gets the HTTP status. 304 Not Modified is a success too:
 * it is Docker's answer to stopping a stopped container or starting a
 * started one, so callers that care look at *status.
 */
int ml_docker_request_raw(struct ml_docker *d, long *status, const char *method,
			  const char *path, json_t *body, struct ml_buf *out);

/*
 * Append to lines (a JSON array) the lines of n bytes of a container's log
 * stream as GET /containers/{id}/logs sends it. Without a TTY, Docker puts
 * an 8-byte header before each chunk ({stream, 0, 0, 0, size as 4 bytes
 * big-endian}, stream 1 stdout, 2 stderr): chunks are demultiplexed and
 * each stream is cut into lines on its own, so a line split over chunks
 * stays whole. A stream that does not start with such a header is raw TTY
 * output. Each line loses its '\n' and a trailing '\r', is cut after
 * line_max (> 0) bytes with "..." added, and is escaped with ml_escape; an
 * unfinished last line counts as a line. A chunk cut short at the end is
 * kept as far as it goes.
 */
int ml_docker_log_lines(json_t *lines, const char *p, size_t n,
			size_t line_max);

/*
 * The last tail (>= 1) lines of container id's stdout and stderr, through
 * ml_docker_log_lines: *out is a new array, the caller's. ML_ENOTFOUND for
 * an unknown container, ML_EINVALID for an id that is not a valid name,
 * ML_ETOOBIG when the answer passes ML_DOCKER_LOGS_MAX.
 */
int ml_docker_logs_tail(json_t **out, struct ml_docker *d, const char *id,
			int tail, size_t line_max);

#endif
