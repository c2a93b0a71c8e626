#ifndef ML_OPS_H
#define ML_OPS_H

/*
 * The agent's protocol operations as the controller calls them
 * (orchestrator/fleet/ops.c), one typed function per op: the mirror of
 * the agent's dispatch table (agent/dispatch.c, one agent/op_<name>.c per
 * op). Each function builds the op's request from its parameters, with
 * the argument names the agent reads, and sends it on h through
 * ml_host_call (so a fenced session carries the lease's fence and sends
 * nothing once it is lost). An op's name is written here and nowhere else
 * on the controller.
 *
 * Every function returns 0 or the ML_E* code of the failure, with the
 * message set (the agent's error, or the session's). *res, when res is
 * not NULL, is the agent's reply, the caller's to json_decref (NULL on
 * failure, or the error's details when the agent sent some); with res
 * NULL the reply is dropped.
 *
 * Not here: hello, exchanged when a session opens (ml_proto_hello in
 * common/proto.c); blob_put's data frames, streamed by apply/deliver.c
 * between ml_op_blob_put_begin and ml_op_blob_put_end; lb_wait_drained,
 * which the controller does not use (it polls lb_status).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct ml_host_session;
struct ml_image;
struct ml_health_spec;
struct ml_verify_req;
struct ml_prune_plan;

/* ---- containers (app hosts) ---- */

/* list: app's containers on the host ({"containers": [...]}). */
int ml_op_list(struct ml_host_session *h, const char *app, json_t **res);

/* inspect: one container by id (restarts, started_at, ...). */
int ml_op_inspect(struct ml_host_session *h, const char *id, json_t **res);

/* container_run: start a container from spec, the object of run
 * arguments apply/rollout.c makes from the playbook (ml_rollout_run_args);
 * spec is stolen. The reply names it ("id", "name"). */
int ml_op_container_run(struct ml_host_session *h, json_t *spec,
			json_t **res);

/*
 * container_wait: wait on the host until the container answers health
 * (path, interval, timeout, start period, thresholds and what a healthy
 * answer is, from health) on host_port, at most deadline_ms. The caller
 * sets the channel's timeout beyond deadline_ms.
 */
int ml_op_container_wait(struct ml_host_session *h, const char *id,
			 int host_port, const struct ml_health_spec *health,
			 int64_t deadline_ms, json_t **res);

/* container_stop: stop (SIGTERM, then SIGKILL after timeout_s) and
 * remove. */
int ml_op_container_stop(struct ml_host_session *h, const char *id,
			 int timeout_s, json_t **res);

/* container_stop with "pause": the container stays, paused (a standby
 * that container_run's "resume" brings back); one that is not running is
 * stopped and removed as by ml_op_container_stop ("paused" false). */
int ml_op_container_pause(struct ml_host_session *h, const char *id,
			  int timeout_s, json_t **res);

/* container_logs: at most tail lines of its output after after_ns (unix
 * nanoseconds; 0: from the start), with their times when timestamps. */
int ml_op_container_logs(struct ml_host_session *h, const char *id,
			 bool timestamps, int tail, int64_t after_ns,
			 json_t **res);

/* container_probe: one health request to a running container, on path,
 * judged by what health expects of an answer. */
int ml_op_container_probe(struct ml_host_session *h, const char *id,
			  const char *path, int64_t timeout_ms,
			  const struct ml_health_spec *health, json_t **res);

/* container_request: the golden request q (rollout.verify) to the
 * container on host_port, its answer judged by q's expectations. */
int ml_op_container_request(struct ml_host_session *h, int host_port,
			    const struct ml_verify_req *q, int64_t timeout_ms,
			    json_t **res);

/* ---- images and blobs (app hosts) ---- */

/* blobs_have: which of img's blobs (config, then layers) the host lacks
 * ("missing") or holds in part ("partial": bytes already there). */
int ml_op_blobs_have(struct ml_host_session *h, const struct ml_image *img,
		     json_t **res);

/*
 * blob_put, opened: announce a blob of size bytes sent from offset, zstd
 * compressed; *id is the request's id for ml_op_blob_put_end. The caller
 * then writes the data frames on h->io. Like every stream, it goes
 * unfenced: blobs are content-addressed and change nothing that runs.
 */
int ml_op_blob_put_begin(struct ml_host_session *h, const char *digest,
			 int64_t size, int64_t offset, uint64_t *id);

/* blob_put, closed: the agent's reply to the request id, once its data
 * frames are written. */
int ml_op_blob_put_end(struct ml_host_session *h, uint64_t id,
		       json_t **res);

/* image_load: load img into the host's Docker from its blobs, tagged
 * with tags (NULL-terminated, may be empty). */
int ml_op_image_load(struct ml_host_session *h, const struct ml_image *img,
		     const char *const *tags, json_t **res);

/* ---- the load balancer ---- */

/* lb_apply: the balancer's whole desired configuration for one app (app,
 * listen port, balance, health, servers with their states, TLS, ...), as
 * apply/rollout.c builds it; config is stolen. The reply says whether
 * HAProxy "started" or "reloaded". */
int ml_op_lb_apply(struct ml_host_session *h, json_t *config, json_t **res);

/* lb_set: one server's state ("ready", "drain", "maint") and, when
 * weight >= 0, its weight, through the runtime API. */
int ml_op_lb_set(struct ml_host_session *h, const char *app,
		 const char *server, const char *state, int weight,
		 json_t **res);

/* lb_remove: the app's configuration and its HAProxy, gone. */
int ml_op_lb_remove(struct ml_host_session *h, const char *app,
		    json_t **res);

/* lb_status: the app's servers as HAProxy sees them. */
int ml_op_lb_status(struct ml_host_session *h, const char *app,
		    json_t **res);

/* lb_requests: requests, errors and latency per server over the last
 * window_ms, from the request log. */
int ml_op_lb_requests(struct ml_host_session *h, const char *app,
		      int64_t window_ms, json_t **res);

/* lb_revisions: which revision each server runs, for the exporter;
 * servers is [{"name", "revision", "since_ms"}], borrowed. */
int ml_op_lb_revisions(struct ml_host_session *h, const char *app,
		       json_t *servers, json_t **res);

/* ---- the fleet lock (on the lock's host) ---- */

/*
 * lock_acquire: the lease for ttl_ms, by owner for reason; pid,
 * machine_id and boot_id ("" when unknown) let another controller of the
 * same machine see that the holder died; take_over (0: none) is the
 * generation of a dead holder's lease to replace. The reply has "token"
 * and "generation".
 */
int ml_op_lock_acquire(struct ml_host_session *h, const char *owner,
		       const char *reason, int64_t ttl_ms, int pid,
		       const char *machine_id, const char *boot_id,
		       int64_t take_over, json_t **res);

/* lock_renew: the lease of token, for ttl_ms more. */
int ml_op_lock_renew(struct ml_host_session *h, const char *token,
		     int64_t ttl_ms, json_t **res);

/* lock_release: the lease of token (NULL: none), or whoever holds it when
 * force. */
int ml_op_lock_release(struct ml_host_session *h, const char *token,
		       bool force, json_t **res);

/* lock_status: who holds the lease, since when, until when, why. */
int ml_op_lock_status(struct ml_host_session *h, json_t **res);

/* ---- canary and prune ---- */

/*
 * canary_gate: the manual canary step of app. action "open" opens step
 * (1-based) of revision; "decide" records decision ("promote", "abort")
 * by whom; "get" reads the gate. revision and step are sent with "open"
 * only, decision and by when not NULL.
 */
int ml_op_canary_gate(struct ml_host_session *h, const char *app,
		      const char *action, int64_t revision, int64_t step,
		      const char *decision, const char *by, json_t **res);

/* prune_scan: what the host keeps (containers, images, blobs). */
int ml_op_prune_scan(struct ml_host_session *h, json_t **res);

/* prune: remove what p says of app's (at most ML_PRUNE_MAX_ITEMS of each
 * kind: a longer backlog is left to the next prune), or with dry_run
 * only say what would go. */
int ml_op_prune(struct ml_host_session *h, const char *app,
		const struct ml_prune_plan *p, bool dry_run, json_t **res);

#endif
