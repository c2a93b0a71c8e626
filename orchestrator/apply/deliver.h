#ifndef ML_DELIVER_H
#define ML_DELIVER_H

/*
 * Image delivery without a registry: every host says which of the image's
 * blobs (config and layers, addressed by digest) it lacks, and only those
 * are streamed to it from the controller's blob cache, zstd-compressed on
 * the wire, to all hosts at once; then the host's agent loads the image
 * into Docker and confirms its id. A host that already has the image gets
 * nothing but the check. Memory is bounded: blobs are streamed in
 * ML_DELIVER_CHUNK pieces, never held whole.
 */

struct ml_config;
struct ml_host_session;
struct ml_image;
struct ml_cache;

#define ML_DELIVER_CHUNK ((size_t)256 << 10)

struct ml_deliver_result {
	int rc;             /* 0, or the failure's code */
	char *error;        /* its message */
	int blobs_sent;     /* blobs streamed (missing on the host), by the
			     * controller or relayed by another host */
	int64_t raw_bytes;  /* uncompressed bytes of those blobs; minus
			     * relayed_bytes: what the controller sent */
	int64_t wire_bytes; /* bytes written on the channel (compressed) */
	bool loaded;        /* the image was loaded into Docker (not there) */
	int64_t ms;
	const char *relayed_from; /* host that relayed blobs here, or NULL
				   * (apply/relay.h; borrowed, a target's) */
	int64_t relayed_bytes;    /* bytes it relayed (not via the controller) */
};

struct ml_deliver_opts {
	int parallel;      /* hosts at once */
	int zstd_level;    /* default 3 */
	bool progress;     /* draw progress on stderr (a terminal) */
	const char *const *tags; /* NULL-terminated tags to apply, or NULL */
};

/*
 * Deliver img (its blobs already in cache, see ml_cache_fill) to each of
 * the n sessions that is connected (rc == 0) and is an app host. Results per host in res (n
 * entries, zeroed by the caller; free each error). Returns 0 when every
 * connected host has the image, else the first host's failure code with a
 * summary message; each host's own message is in res[i].error.
 */
int ml_deliver(struct ml_host_session *hosts, size_t n,
	       const struct ml_image *img, const struct ml_cache *cache,
	       const struct ml_deliver_opts *o,
	       struct ml_deliver_result *res);

#endif
