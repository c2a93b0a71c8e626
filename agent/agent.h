#ifndef ML_AGENT_H
#define ML_AGENT_H

/*
 * mlctl-agent: the program mlctl starts on every VM over SSH. It reads
 * requests from stdin and writes replies to stdout in the protocol of
 * common/proto.h, and drives Docker through agent/docker.h.
 *
 * One table of operations (agent/dispatch.c); each lives in op_<name>.c
 * and exports only its entry, `const struct ml_agent_op ml_agent_op_<name>`.
 * Before an op runs, dispatch has checked the envelope and the hello-first
 * rule and hands it args, always an object. An op returns 0 with *result set
 * to a new object (its reference passes to dispatch), or a negative ML_E*
 * code after ml_err_set; the code becomes the reply's error word through
 * ml_proto_code_from_ml(), unless the op names one in a->err_word.
 */

#include "common/proto.h"

#ifndef ML_VERSION
#define ML_VERSION "0.1.0"
#endif

#define ML_AGENT_STATE_DIR "/var/lib/mlctl"
#define ML_AGENT_IDLE_TIMEOUT_MS 3600000L /* between requests */
#define ML_AGENT_STALL_TIMEOUT_MS 60000L  /* inside one */
#define ML_AGENT_GPU_DIR "/proc/driver/nvidia/gpus"

struct ml_docker;

struct ml_agent {
	/* settings, filled by ml_agent_init from the environment */
	const char *state_dir;	 /* $MLCTL_STATE_DIR or ML_AGENT_STATE_DIR */
	const char *docker_sock; /* NULL: $MLCTL_DOCKER_SOCK or default */
	const char *gpu_dir;	 /* ML_AGENT_GPU_DIR; tests point elsewhere */
	long docker_timeout_ms;	 /* $MLCTL_DOCKER_TIMEOUT_MS or 30 s */
	long idle_timeout_ms;	 /* $MLCTL_AGENT_IDLE_TIMEOUT_MS or 1 h: a
				  * peer silent this long between requests
				  * is cut */
	long stall_timeout_ms;	 /* $MLCTL_AGENT_STALL_TIMEOUT_MS or 60 s:
				  * the same inside a request (blob_put's
				  * data, a reply the peer does not read) */

	/* session state */
	struct ml_io *io;	  /* the peer, while ml_agent_serve runs */
	struct ml_io_fd *io_fd;	  /* io's descriptors, whose wait serve sets
				   * to the idle or stall timeout; NULL: io
				   * is not an fd stream */
	int out_of_sync;	  /* set (to the ML_E* code) by an op that
				   * reads frames itself and lost the frame
				   * boundary: the session ends after its
				   * reply, with that code */
	int protocol;		  /* negotiated version, 0 before hello */
	struct ml_docker *docker; /* opened on first use */
	const char *err_word;	  /* set by a failing op, else NULL */
	bool receive_only;	  /* `mlctl-agent receive`: hello, blobs_have
				   * and blob_put only (a relay key's forced
				   * command, agent/relay.h) */
};

/* Flags of struct ml_agent_op. */
enum {
	ML_AGENT_OP_BEFORE_HELLO = 1 << 0, /* allowed before hello (hello) */
};

struct ml_agent_op {
	const char *name;
	const char *summary; /* one line, lowercase, for --help */
	unsigned flags;
	int (*run)(struct ml_agent *a, json_t *args, json_t **result);
};

/* The table of operations, for --help. */
const struct ml_agent_op *const *ml_agent_ops(size_t *n);

/*
 * The number of diffIDs at the start of want that the diffID list have
 * (an image's RootFS.Layers) starts with too; 0 when either is not an
 * array of strings. Pure; image_load omits those layers from the archive
 * it streams to Docker, which already has them.
 */
size_t ml_layers_common_prefix(json_t *have, json_t *want);

/* Settings from the environment, no session yet. Nothing is opened. */
void ml_agent_init(struct ml_agent *a);
/* Close what the session opened (the Docker client). */
void ml_agent_release(struct ml_agent *a);

/*
 * The Docker client, created on first use (*out borrowed, owned by a).
 * Fails like ml_docker_new.
 */
int ml_agent_docker(struct ml_agent *a, struct ml_docker **out);

/*
 * Answer one decoded request (borrowed). Always returns a reply, the
 * caller's reference: a result or an error, never a failure.
 */
json_t *ml_agent_dispatch(struct ml_agent *a, json_t *req);

/*
 * Answer one frame read from the peer: decode it and dispatch it. Always
 * returns a reply (an error reply with id 0 for what cannot be decoded).
 */
json_t *ml_agent_handle_frame(struct ml_agent *a, char type, const void *p,
			      size_t n);

/*
 * Serve requests from io until the end of the stream. Returns 0 at a clean
 * end; after a frame that leaves the stream out of sync (bad length,
 * truncation), also inside an op's data (blob_put), it writes a
 * "bad-frame" reply (id 0, or the op's error reply) and returns
 * ML_EPROTO; returns io's error when reading or writing fails, also when
 * the peer stays silent past the idle or stall timeout (ML_EHOST, so a
 * stalled transfer releases what it holds). An unknown
 * frame type, bad JSON, a bad envelope or an unknown op only get an error
 * reply and serving goes on.
 */
int ml_agent_serve(struct ml_agent *a, struct ml_io *io);

/* Helpers for ops. */

/*
 * The string member key of args in *out (borrowed). ML_EPROTO "OP needs
 * 'KEY'" when missing or not a string; with check_name, also when it is
 * not a valid Docker name (ml_docker_valid_name).
 */
int ml_agent_arg_name(const char **out, json_t *args, const char *op,
		      const char *key, bool check_name);

/* obj[key] = a JSON string of s (escaped if not UTF-8), null when NULL. */
void ml_agent_set_str(json_t *obj, const char *key, const char *s);

/* The Name (without its leading '/') and Id of a container's inspect
 * answer c, both checked with ml_docker_valid_name; borrowed from c. Else
 * ML_EFAIL naming path, the request that gave c. */
int ml_agent_name_id(json_t *c, const char *path, const char **name,
		     const char **id);

/* obj[key] = v as an integer when it is one, else null. */
void ml_agent_set_int(json_t *obj, const char *key, json_t *v);

/*
 * From Docker's label map (borrowed, may be NULL): set "app", "revision"
 * (an integer, null when absent or not a number), "slot" and "commit"
 * (strings or null) and "labels" (only the mlctl.* labels) in obj.
 */
void ml_agent_set_labels(json_t *obj, json_t *labels);

/*
 * The health word for a container: from a Health object's Status
 * ("healthy", "unhealthy", "starting"), else from a status text such as
 * "Up 3 minutes (healthy)", else "none".
 */
const char *ml_agent_health(json_t *health_obj, const char *status_text);

extern const struct ml_agent_op ml_agent_op_hello;
extern const struct ml_agent_op ml_agent_op_list;
extern const struct ml_agent_op ml_agent_op_inspect;
extern const struct ml_agent_op ml_agent_op_blobs_have;
extern const struct ml_agent_op ml_agent_op_blob_put;
extern const struct ml_agent_op ml_agent_op_image_load;

/* container_run, container_wait, container_stop, container_logs */
extern const struct ml_agent_op ml_agent_op_container_run;
extern const struct ml_agent_op ml_agent_op_container_wait;
extern const struct ml_agent_op ml_agent_op_container_stop;
extern const struct ml_agent_op ml_agent_op_container_logs;
extern const struct ml_agent_op ml_agent_op_container_probe;
extern const struct ml_agent_op ml_agent_op_lb_apply;
extern const struct ml_agent_op ml_agent_op_lb_set;
extern const struct ml_agent_op ml_agent_op_lb_remove;
extern const struct ml_agent_op ml_agent_op_lb_status;
extern const struct ml_agent_op ml_agent_op_lb_wait_drained;
extern const struct ml_agent_op ml_agent_op_lb_requests;
extern const struct ml_agent_op ml_agent_op_lb_revisions;

struct ml_haproxy;
/*
 * The server -> revision map lb_revisions keeps for h's app: *out is a new
 * object, empty when there is none or it is damaged. (op_lb_revisions.c)
 */
int ml_agent_lb_map_load(json_t **out, const struct ml_haproxy *h);
/* The revision that served server at unix time at_ms, -1 when unknown. */
int64_t ml_agent_lb_revision(json_t *map, const char *server, int64_t at_ms);
extern const struct ml_agent_op ml_agent_op_lock_acquire;
extern const struct ml_agent_op ml_agent_op_lock_renew;
extern const struct ml_agent_op ml_agent_op_lock_release;
extern const struct ml_agent_op ml_agent_op_lock_status;
extern const struct ml_agent_op ml_agent_op_prune_scan;
extern const struct ml_agent_op ml_agent_op_prune;
/* rollout.verify's golden requests, the manual canary gate */
extern const struct ml_agent_op ml_agent_op_container_request;
extern const struct ml_agent_op ml_agent_op_canary_gate;
extern const struct ml_agent_op ml_agent_op_relay_key;
extern const struct ml_agent_op ml_agent_op_relay_allow;
extern const struct ml_agent_op ml_agent_op_relay_send;
extern const struct ml_agent_op ml_agent_op_relay_end;

/*
 * Every container ([{"id","name","app","revision","image_id","running"}])
 * and every content-addressed image ([{"id","tags","layers","size"}]) of
 * the host's Docker, new references for the caller. Fails like the Docker
 * client. (op_prune_scan.c)
 */
int ml_agent_host_state(struct ml_agent *a, json_t **containers,
			json_t **images);

/*
 * The integer member key of args in *out, from min to max. Absent: left
 * as it was (the caller's default) unless required. ML_EPROTO "OP: 'KEY'
 * must be an integer from MIN to MAX" otherwise. (op_container_run.c)
 */
int ml_agent_arg_int(json_int_t *out, json_t *args, const char *op,
		     const char *key, json_int_t min, json_int_t max,
		     bool required);

/*
 * The fence of a request ({"generation": G, "owner": S}, sent by the
 * holder of the fleet lock with every request): ML_ELOCKED when this host
 * has seen a request fenced with a newer generation (its holder lost the
 * lock), else 0, after recording G when it is the newest. Serialized with
 * the lock ops by their flock. (op_lock.c)
 */
int ml_agent_fence_check(struct ml_agent *a, json_t *fence);

/*
 * Remove <state>/secrets/<name>.env, the secrets file container_run wrote
 * for container name (a valid Docker name); absent is fine.
 * (op_container_run.c)
 */
int ml_agent_secrets_remove(struct ml_agent *a, const char *name);

#endif
