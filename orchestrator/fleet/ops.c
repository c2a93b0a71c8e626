/*
 * The agent's ops, called from the controller (see ops.h). Each function
 * only builds its op's request: the argument names are those the agent
 * reads (each agent/op_<name>.c documents its args and result), and an
 * optional argument is left out rather than sent empty, as the agent's
 * defaults expect. No function here decides anything, retries, or
 * interprets a reply: that is the caller's.
 */
#include "common/ml.h"
#include "common/proto.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/image/image.h"
#include "orchestrator/prune/prune.h"

int ml_op_list(struct ml_host_session *h, const char *app, json_t **res)
{
	return ml_host_call(h, "list", json_pack("{s:s}", "app", app), res);
}

int ml_op_inspect(struct ml_host_session *h, const char *id, json_t **res)
{
	return ml_host_call(h, "inspect", json_pack("{s:s}", "id", id), res);
}

int ml_op_container_run(struct ml_host_session *h, json_t *spec, json_t **res)
{
	return ml_host_call(h, "container_run", spec, res);
}

int ml_op_container_wait(struct ml_host_session *h, const char *id,
			 int host_port, const struct ml_health_spec *health,
			 int64_t deadline_ms, json_t **res)
{
	return ml_host_call(
		h, "container_wait",
		json_pack("{s:s,s:i,s:s,s:I,s:I,s:I,s:i,s:i,s:I,s:o*}", "id",
			  id, "host_port", host_port, "path", health->path,
			  "interval_ms", (json_int_t)health->interval_ms,
			  "timeout_ms", (json_int_t)health->timeout_ms,
			  "start_period_ms",
			  (json_int_t)health->start_period_ms,
			  "healthy_threshold", health->healthy_threshold,
			  "unhealthy_threshold", health->unhealthy_threshold,
			  "deadline_ms", (json_int_t)deadline_ms, "expect",
			  ml_health_expect_json(health)),
		res);
}

int ml_op_container_stop(struct ml_host_session *h, const char *id,
			 int timeout_s, json_t **res)
{
	return ml_host_call(
		h, "container_stop",
		json_pack("{s:s,s:i}", "id", id, "timeout_s", timeout_s), res);
}

int ml_op_container_pause(struct ml_host_session *h, const char *id,
			  int timeout_s, json_t **res)
{
	return ml_host_call(h, "container_stop",
			    json_pack("{s:s,s:i,s:b}", "id", id, "timeout_s",
				      timeout_s, "pause", 1),
			    res);
}

int ml_op_container_logs(struct ml_host_session *h, const char *id,
			 bool timestamps, int tail, int64_t after_ns,
			 json_t **res)
{
	json_t *args = json_pack("{s:s,s:b,s:i}", "id", id, "timestamps",
				 timestamps, "tail", tail);

	if (after_ns > 0)
		json_object_set_new(args, "after_ns", json_integer(after_ns));
	return ml_host_call(h, "container_logs", args, res);
}

int ml_op_container_probe(struct ml_host_session *h, const char *id,
			  const char *path, int64_t timeout_ms,
			  const struct ml_health_spec *health, json_t **res)
{
	return ml_host_call(h, "container_probe",
			    json_pack("{s:s,s:s,s:I,s:o*}", "id", id, "path",
				      path, "timeout_ms",
				      (json_int_t)timeout_ms, "expect",
				      ml_health_expect_json(health)),
			    res);
}

/* What a golden request's answer must be, or NULL when any 2xx will do. */
static json_t *request_expect(const struct ml_verify_req *q)
{
	json_t *o;

	if (!q->expect_status && !q->expect_body && !q->expect_json_field)
		return NULL;
	o = json_object();
	if (q->expect_status)
		json_object_set_new(o, "status",
				    json_pack("[i]", q->expect_status));
	if (q->expect_body)
		json_object_set_new(o, "body", json_string(q->expect_body));
	if (q->expect_json_field)
		json_object_set_new(o, "json",
				    json_pack("{s:s,s:s}", "field",
					      q->expect_json_field, "value",
					      q->expect_json_value));
	return o;
}

int ml_op_container_request(struct ml_host_session *h, int host_port,
			    const struct ml_verify_req *q, int64_t timeout_ms,
			    json_t **res)
{
	return ml_host_call(
		h, "container_request",
		json_pack("{s:i,s:s,s:s,s:s*,s:I,s:o*}", "host_port", host_port,
			  "method", q->method, "path", q->path, "body", q->body,
			  "timeout_ms", (json_int_t)timeout_ms, "expect",
			  request_expect(q)),
		res);
}

/* The image's blobs in the order the agent stores them: config, then
 * layers. */
static json_t *image_digests(const struct ml_image *img)
{
	json_t *a = json_array();
	size_t k;

	json_array_append_new(a, json_string(img->config_digest));
	for (k = 0; k < img->nlayers; k++)
		json_array_append_new(a, json_string(img->layers[k]));
	return a;
}

int ml_op_blobs_have(struct ml_host_session *h, const struct ml_image *img,
		     json_t **res)
{
	return ml_host_call(h, "blobs_have",
			    json_pack("{s:o}", "digests", image_digests(img)),
			    res);
}

int ml_op_blob_put_begin(struct ml_host_session *h, const char *digest,
			 int64_t size, int64_t offset, uint64_t *id)
{
	return ml_proto_request(h->io, &h->next_id, "blob_put",
				json_pack("{s:s,s:I,s:I,s:s}", "digest", digest,
					  "size", (json_int_t)size, "offset",
					  (json_int_t)offset, "compression",
					  "zstd"),
				id);
}

int ml_op_blob_put_end(struct ml_host_session *h, uint64_t id, json_t **res)
{
	json_t *drop = NULL;
	int rc;

	rc = ml_proto_reply(h->io, id, "blob_put", res ? res : &drop);
	json_decref(drop);
	return rc;
}

int ml_op_image_load(struct ml_host_session *h, const struct ml_image *img,
		     const char *const *tags, json_t **res)
{
	json_t *layers = json_array(), *t = json_array();
	size_t k;

	for (k = 0; k < img->nlayers; k++)
		json_array_append_new(layers, json_string(img->layers[k]));
	for (k = 0; tags && tags[k]; k++)
		json_array_append_new(t, json_string(tags[k]));
	return ml_host_call(h, "image_load",
			    json_pack("{s:s,s:s,s:o,s:o}", "image_id", img->id,
				      "config", img->config_digest, "layers",
				      layers, "tags", t),
			    res);
}

int ml_op_lb_apply(struct ml_host_session *h, json_t *config, json_t **res)
{
	return ml_host_call(h, "lb_apply", config, res);
}

int ml_op_lb_set(struct ml_host_session *h, const char *app, const char *server,
		 const char *state, int weight, json_t **res)
{
	json_t *args = json_pack("{s:s,s:s,s:s}", "app", app, "server", server,
				 "state", state);

	if (weight >= 0)
		json_object_set_new(args, "weight", json_integer(weight));
	return ml_host_call(h, "lb_set", args, res);
}

int ml_op_lb_remove(struct ml_host_session *h, const char *app, json_t **res)
{
	return ml_host_call(h, "lb_remove", json_pack("{s:s}", "app", app),
			    res);
}

int ml_op_lb_status(struct ml_host_session *h, const char *app, json_t **res)
{
	return ml_host_call(h, "lb_status", json_pack("{s:s}", "app", app),
			    res);
}

int ml_op_lb_requests(struct ml_host_session *h, const char *app,
		      int64_t window_ms, json_t **res)
{
	return ml_host_call(h, "lb_requests",
			    json_pack("{s:s,s:I}", "app", app, "window_ms",
				      (json_int_t)window_ms),
			    res);
}

int ml_op_lb_revisions(struct ml_host_session *h, const char *app,
		       json_t *servers, json_t **res)
{
	return ml_host_call(
		h, "lb_revisions",
		json_pack("{s:s,s:O}", "app", app, "servers", servers), res);
}

int ml_op_lock_acquire(struct ml_host_session *h, const char *owner,
		       const char *reason, int64_t ttl_ms, int pid,
		       const char *machine_id, const char *boot_id,
		       int64_t take_over, json_t **res)
{
	json_t *args =
		json_pack("{s:s,s:s,s:I,s:i}", "owner", owner, "reason", reason,
			  "ttl_ms", (json_int_t)ttl_ms, "pid", pid);

	if (machine_id && machine_id[0])
		json_object_set_new(args, "machine_id",
				    json_string(machine_id));
	if (boot_id && boot_id[0])
		json_object_set_new(args, "boot_id", json_string(boot_id));
	if (take_over)
		json_object_set_new(args, "take_over", json_integer(take_over));
	return ml_host_call(h, "lock_acquire", args, res);
}

int ml_op_lock_renew(struct ml_host_session *h, const char *token,
		     int64_t ttl_ms, json_t **res)
{
	return ml_host_call(h, "lock_renew",
			    json_pack("{s:s,s:I}", "token", token, "ttl_ms",
				      (json_int_t)ttl_ms),
			    res);
}

int ml_op_lock_release(struct ml_host_session *h, const char *token, bool force,
		       json_t **res)
{
	json_t *args = json_object();

	if (token)
		json_object_set_new(args, "token", json_string(token));
	if (force)
		json_object_set_new(args, "force", json_true());
	return ml_host_call(h, "lock_release", args, res);
}

int ml_op_lock_status(struct ml_host_session *h, json_t **res)
{
	return ml_host_call(h, "lock_status", NULL, res);
}

int ml_op_canary_gate(struct ml_host_session *h, const char *app,
		      const char *action, int64_t revision, int64_t step,
		      const char *decision, const char *by, json_t **res)
{
	json_t *args = json_pack("{s:s,s:s}", "app", app, "action", action);

	if (!strcmp(action, "open")) {
		json_object_set_new(args, "revision", json_integer(revision));
		json_object_set_new(args, "step", json_integer(step));
	}
	if (decision)
		json_object_set_new(args, "decision", json_string(decision));
	if (by)
		json_object_set_new(args, "by", json_string(by));
	return ml_host_call(h, "canary_gate", args, res);
}

int ml_op_prune_scan(struct ml_host_session *h, json_t **res)
{
	return ml_host_call(h, "prune_scan", json_object(), res);
}

int ml_op_prune(struct ml_host_session *h, const char *app,
		const struct ml_prune_plan *p, bool dry_run, json_t **res)
{
	json_t *cs = json_array(), *is = json_array(), *bs = json_array();
	size_t i, j;

	for (i = 0; i < p->ncontainers && i < ML_PRUNE_MAX_ITEMS; i++)
		json_array_append_new(cs, json_string(p->containers[i]->id));
	for (i = 0; i < p->nimages && i < ML_PRUNE_MAX_ITEMS; i++) {
		json_t *tags = json_array();

		for (j = 0; j < p->images[i].ntags; j++)
			json_array_append_new(
				tags, json_string(p->images[i].tags[j]));
		json_array_append_new(is, json_pack("{s:s,s:o}", "id",
						    p->images[i].img->id,
						    "tags", tags));
	}
	for (i = 0; i < p->nblobs && i < ML_PRUNE_MAX_ITEMS; i++)
		json_array_append_new(bs, json_string(p->blobs[i]->digest));
	return ml_host_call(h, "prune",
			    json_pack("{s:s,s:o,s:o,s:o,s:b}", "app", app,
				      "containers", cs, "images", is, "blobs",
				      bs, "dry_run", dry_run),
			    res);
}
