/*
 * The agent's request loop and its one table of operations (see agent.h),
 * plus the small helpers the op_<name>.c files share.
 *
 * Invariants: every frame read gets exactly one reply, in order; nothing
 * the peer sends makes the loop stop except the end of the stream, a
 * frame that leaves it out of sync (bad length, truncation; also inside
 * blob_put's data), and then the peer is told why first, or silence past
 * the idle timeout (between requests) or the stall timeout (inside one). Memory: one
 * payload buffer, at most ML_PROTO_MAX_PAYLOAD (1 MiB) of data, shrunk
 * back after large frames; replies are encoded into a buffer of the same
 * cap; Docker answers are capped in agent/docker.c.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "common/docker.h"

#define OP_NAME_SHOWN 64	 /* bytes of an unknown op name echoed back */
#define PAYLOAD_KEEP (256 << 10) /* buffer capacity kept between frames */

static const struct ml_agent_op *const ops[] = {
	&ml_agent_op_hello,
	&ml_agent_op_list,
	&ml_agent_op_inspect,
	&ml_agent_op_blobs_have,
	&ml_agent_op_blob_put,
	&ml_agent_op_image_load,
	&ml_agent_op_container_run,
	&ml_agent_op_container_wait,
	&ml_agent_op_container_stop,
	&ml_agent_op_container_logs,
	&ml_agent_op_container_probe,
	&ml_agent_op_lb_apply,
	&ml_agent_op_lb_set,
	&ml_agent_op_lb_remove,
	&ml_agent_op_lb_status,
	&ml_agent_op_lb_wait_drained,
	&ml_agent_op_lb_requests,
	&ml_agent_op_lb_revisions,
	&ml_agent_op_lock_acquire,
	&ml_agent_op_lock_renew,
	&ml_agent_op_lock_release,
	&ml_agent_op_lock_status,
	&ml_agent_op_prune_scan,
	&ml_agent_op_prune,
	&ml_agent_op_container_request,
	&ml_agent_op_canary_gate,
	&ml_agent_op_relay_key,
	&ml_agent_op_relay_allow,
	&ml_agent_op_relay_send,
	&ml_agent_op_relay_end,
};

/* What a relay key may do (`mlctl-agent receive`): store blobs, no more. */
static const char *const receive_ops[] = {"hello", "blobs_have", "blob_put"};

const struct ml_agent_op *const *ml_agent_ops(size_t *n)
{
	*n = ML_ARRAY_SIZE(ops);
	return ops;
}

/* A positive number of milliseconds from the environment, else def. */
static long env_ms(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long ms;

	if (!s || !*s)
		return def;
	errno = 0;
	ms = strtol(s, &end, 10);
	if (!errno && !*end && ms > 0 && ms <= 86400000L)
		return ms;
	ml_warn("ignoring %s='%s': not a positive number of milliseconds",
		name, s);
	return def;
}

void ml_agent_init(struct ml_agent *a)
{
	const char *s = getenv("MLCTL_STATE_DIR");

	memset(a, 0, sizeof(*a));
	a->state_dir = s && *s ? s : ML_AGENT_STATE_DIR;
	a->gpu_dir = ML_AGENT_GPU_DIR;
	a->docker_timeout_ms =
		env_ms("MLCTL_DOCKER_TIMEOUT_MS", ML_DOCKER_TIMEOUT_MS);
	a->idle_timeout_ms =
		env_ms("MLCTL_AGENT_IDLE_TIMEOUT_MS", ML_AGENT_IDLE_TIMEOUT_MS);
	a->stall_timeout_ms = env_ms("MLCTL_AGENT_STALL_TIMEOUT_MS",
				     ML_AGENT_STALL_TIMEOUT_MS);
}

void ml_agent_release(struct ml_agent *a)
{
	ml_docker_free(a->docker);
	a->docker = NULL;
	a->protocol = 0;
}

int ml_agent_docker(struct ml_agent *a, struct ml_docker **out)
{
	int rc;

	if (!a->docker) {
		rc = ml_docker_new(&a->docker, a->docker_sock);
		if (rc < 0)
			return rc;
		ml_docker_set_timeout(a->docker, a->docker_timeout_ms);
	}
	*out = a->docker;
	return 0;
}

static const struct ml_agent_op *find_op(const struct ml_agent *a,
					 const char *name)
{
	size_t i;

	for (i = 0; a->receive_only && i < ML_ARRAY_SIZE(receive_ops); i++)
		if (!strcmp(receive_ops[i], name))
			break;
	if (a->receive_only && i == ML_ARRAY_SIZE(receive_ops))
		return NULL;

	for (i = 0; i < ML_ARRAY_SIZE(ops); i++)
		if (!strcmp(ops[i]->name, name))
			return ops[i];
	return NULL;
}

static json_t *bad_request(uint64_t id, const char *msg)
{
	ml_debug("bad request: %s", msg);
	return ml_proto_error_reply(id, ML_PROTO_ERR_BAD_REQUEST, msg);
}

json_t *ml_agent_dispatch(struct ml_agent *a, json_t *req)
{
	struct ml_buf esc = ML_BUF_INIT(4 * OP_NAME_SHOWN + 16);
	const struct ml_agent_op *op;
	json_t *jid = json_object_get(req, "id");
	json_t *jv = json_object_get(req, "v");
	json_t *jop = json_object_get(req, "op");
	json_t *args = json_object_get(req, "args"), *result = NULL, *reply;
	const char *name, *word;
	json_int_t id;
	int rc;

	if (!json_is_integer(jid) || json_integer_value(jid) < 1 ||
	    (uint64_t)json_integer_value(jid) > ML_PROTO_MAX_ID) {
		reply = bad_request(0, "request has no valid id (an integer "
				       "from 1 to 2^53)");
		goto out;
	}
	id = json_integer_value(jid);
	if (!json_is_integer(jv)) {
		reply = bad_request(id, "request has no protocol version 'v'");
		goto out;
	}
	name = json_string_value(jop);
	if (!name) {
		reply = bad_request(id, "request has no op name");
		goto out;
	}
	op = find_op(a, name);
	if (!op) {
		ml_escape(&esc, name, strnlen(name, OP_NAME_SHOWN));
		ml_buf_addstr(&esc, strlen(name) > OP_NAME_SHOWN ? "..." : "");
		ml_err_set(ML_EPROTO,
			   a->receive_only
				   ? "operation '%s' is refused: this session "
				     "only receives blobs (mlctl-agent "
				     "receive, agent %s)"
				   : "unknown operation '%s'; this agent "
				     "(%s) does not know it",
			   ml_buf_str(&esc), ML_VERSION);
		ml_debug("%s", ml_err_msg());
		reply = ml_proto_error_reply(id, ML_PROTO_ERR_UNKNOWN_OP,
					     ml_err_msg());
		goto out;
	}
	if (!a->protocol && !(op->flags & ML_AGENT_OP_BEFORE_HELLO)) {
		reply = ml_proto_error_reply(id, ML_PROTO_ERR_HELLO_FIRST,
					     "hello first");
		goto out;
	}
	/* hello's envelope is read whatever its version; see proto.h */
	if (!(op->flags & ML_AGENT_OP_BEFORE_HELLO) &&
	    json_integer_value(jv) != a->protocol) {
		ml_err_set(ML_EPROTO,
			   "request uses protocol version %lld, the session "
			   "agreed on %d",
			   (long long)json_integer_value(jv), a->protocol);
		reply = bad_request(id, ml_err_msg());
		goto out;
	}
	if (args && !json_is_object(args)) {
		ml_err_set(ML_EPROTO, "%s: args must be an object", op->name);
		reply = bad_request(id, ml_err_msg());
		goto out;
	}
	if (!args)
		args = json_object();
	else
		json_incref(args);
	if (!args)
		BUG("out of memory");

	a->err_word = NULL;
	ml_err_clear();
	/* a request of a controller that lost the fleet lock changes nothing */
	rc = json_object_get(args, "fence")
		     ? ml_agent_fence_check(a, json_object_get(args, "fence"))
		     : 0;
	if (rc == 0)
		rc = op->run(a, args, &result);
	json_decref(args);
	if (rc < 0) {
		word = a->err_word ? a->err_word : ml_proto_code_from_ml(rc);
		ml_debug("%s failed (%s): %s", op->name, word, ml_err_msg());
		reply = ml_proto_error_reply(id, word, ml_err_msg());
		goto out;
	}
	if (!json_is_object(result))
		BUG("op %s returned no result object", op->name);
	reply = ml_proto_ok_reply(id, result);
out:
	ml_buf_release(&esc);
	return reply;
}

json_t *ml_agent_handle_frame(struct ml_agent *a, char type, const void *p,
			      size_t n)
{
	json_t *req = NULL, *reply;

	if (type != ML_FRAME_JSON)
		return bad_request(0, "expected a JSON request, got a data "
				      "frame outside a transfer");
	if (ml_proto_decode(&req, p, n) < 0)
		return bad_request(0, ml_err_msg());
	reply = ml_agent_dispatch(a, req);
	json_decref(req);
	return reply;
}

/* Send a reply; one too large for a frame is replaced by an error. */
static int send_reply(struct ml_io *io, json_t *reply)
{
	json_int_t id = json_integer_value(json_object_get(reply, "id"));
	json_t *small;
	int rc;

	rc = ml_proto_send(io, reply);
	if (rc != ML_ETOOBIG)
		return rc;
	small = ml_proto_error_reply((uint64_t)id, ML_PROTO_ERR_TOO_BIG,
				     ml_err_msg());
	rc = ml_proto_send(io, small);
	json_decref(small);
	return rc;
}

int ml_agent_serve(struct ml_agent *a, struct ml_io *io)
{
	struct ml_buf payload = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	struct ml_err_saved why = { 0 };
	json_t *reply;
	char type;
	bool in_sync;
	int rc;

	a->io = io;
	for (;;) {
		/* silence between requests is idleness; within one, a stall */
		if (a->io_fd)
			a->io_fd->timeout_ms = (int)a->idle_timeout_ms;
		rc = ml_frame_read_ex(io, &type, &payload, &in_sync);
		if (a->io_fd)
			a->io_fd->timeout_ms = (int)a->stall_timeout_ms;
		if (rc == 0)
			break;
		if (rc < 0 && rc != ML_EPROTO)
			break; /* the stream itself failed: nobody to tell */
		if (rc < 0) {
			ml_err_save(&why);
			reply = ml_proto_error_reply(0, ML_PROTO_ERR_BAD_FRAME,
						     why.msg);
			rc = send_reply(io, reply);
			json_decref(reply);
			if (!in_sync) {
				ml_err_restore(&why);
				rc = ML_EPROTO;
				break;
			}
			ml_debug("skipped a frame: %s", why.msg);
			if (rc < 0)
				break;
			continue;
		}
		a->out_of_sync = 0;
		reply = ml_agent_handle_frame(a, type, payload.data,
					      payload.len);
		if (a->out_of_sync)
			ml_err_save(&why);
		rc = send_reply(io, reply);
		json_decref(reply);
		if (rc == 0 && a->out_of_sync) {
			/* what follows is not a frame boundary any more */
			ml_err_restore(&why);
			rc = a->out_of_sync;
			break;
		}
		if (rc < 0)
			break;
		if (payload.cap > PAYLOAD_KEEP)
			ml_buf_release(&payload);
	}
	ml_buf_release(&payload);
	a->io = NULL;
	return rc;
}

int ml_agent_arg_name(const char **out, json_t *args, const char *op,
		      const char *key, bool check_name)
{
	const char *s = json_string_value(json_object_get(args, key));

	if (!s)
		return ml_err_set(ML_EPROTO, "%s needs '%s', a string", op,
				  key);
	if (check_name && !ml_docker_valid_name(s))
		return ml_err_set(ML_EPROTO,
				  "%s: '%s' must be a name of letters, digits, "
				  "'_', '.' and '-' (at most %d, starting with "
				  "a letter or digit)",
				  op, key, ML_DOCKER_NAME_MAX);
	*out = s;
	return 0;
}

int ml_agent_name_id(json_t *c, const char *path, const char **name,
		     const char **id)
{
	*name = json_string_value(json_object_get(c, "Name"));
	*id = json_string_value(json_object_get(c, "Id"));
	if (*name && **name == '/')
		(*name)++;
	if (!*name || !ml_docker_valid_name(*name) || !*id ||
	    !ml_docker_valid_name(*id))
		return ml_err_set(ML_EFAIL,
				  "docker: GET %s: no valid Name and Id", path);
	return 0;
}

void ml_agent_set_str(json_t *obj, const char *key, const char *s)
{
	json_object_set_new(obj, key, ml_proto_string(s));
}

void ml_agent_set_int(json_t *obj, const char *key, json_t *v)
{
	json_object_set_new(obj, key,
			    json_is_integer(v)
				    ? json_integer(json_integer_value(v))
				    : json_null());
}

void ml_agent_set_labels(json_t *obj, json_t *labels)
{
	json_t *mine = json_object(), *v;
	const char *key, *rev;
	long long n;
	char *end;

	if (!mine)
		BUG("out of memory");
	json_object_foreach(labels, key, v)
	{
		if (!strncmp(key, "mlctl.", 6) && json_is_string(v))
			json_object_set(mine, key, v);
	}
	ml_agent_set_str(obj, "app",
			 json_string_value(json_object_get(mine, "mlctl.app")));
	rev = json_string_value(json_object_get(mine, "mlctl.revision"));
	errno = 0;
	n = rev && *rev >= '0' && *rev <= '9' ? strtoll(rev, &end, 10) : -1;
	if (n >= 0 && !errno && !*end)
		json_object_set_new(obj, "revision", json_integer(n));
	else
		json_object_set_new(obj, "revision", json_null());
	ml_agent_set_str(
		obj, "slot",
		json_string_value(json_object_get(mine, "mlctl.slot")));
	ml_agent_set_str(
		obj, "commit",
		json_string_value(json_object_get(mine, "mlctl.commit")));
	json_object_set_new(obj, "labels", mine);
}

const char *ml_agent_health(json_t *health_obj, const char *status_text)
{
	static const char *const words[] = {"healthy", "unhealthy", "starting"};
	const char *s =
		json_string_value(json_object_get(health_obj, "Status"));
	size_t i;

	for (i = 0; s && i < ML_ARRAY_SIZE(words); i++)
		if (!strcmp(s, words[i]))
			return words[i];
	if (!status_text)
		return "none";
	if (strstr(status_text, "(unhealthy)"))
		return "unhealthy";
	if (strstr(status_text, "(healthy)"))
		return "healthy";
	if (strstr(status_text, "(health: starting)"))
		return "starting";
	return "none";
}
