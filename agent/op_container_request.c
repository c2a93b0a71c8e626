/*
 * container_request: one golden request to a container's slot port, from
 * the VM itself (the slots accept only the balancers and the VM), before
 * the container takes any user traffic, and the check of its answer.
 *
 *	args:   {"host_port", "method" ("GET"), "path", "body" (optional,
 *		 sent as application/json, at most 64 KiB),
 *		 "timeout_ms" (5000, 10..60000),
 *		 "expect": as container_wait's (optional; none: 2xx)}
 *	result: {"status": N or null (no answer), "elapsed_ms",
 *		 "body": the first 4 KiB of the answer (escaped when not
 *		 UTF-8), "body_sha256": of the first 64 KiB,
 *		 "pass": bool, "error": why it did not pass, or null}
 *
 * A request that got no answer or an answer that fails the expectation is
 * a result (pass false, with the reason), not an error: the controller
 * decides, and compares answers across revisions with the body and its
 * digest. Errors are bad arguments only.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/sha256.h"
#include "agent/agent.h"
#include "agent/firewall.h"
#include "agent/probe.h"

#define OP "container_request"
#define BODY_SHOWN 4096
#define REQ_BODY_MAX ((size_t)64 << 10)

static int op_container_request(struct ml_agent *a, json_t *args,
				json_t **result)
{
	struct ml_buf body = ML_BUF_INIT(ML_PROBE_BODY_MAX + 1);
	struct ml_probe_result pr = {0};
	struct ml_probe_expect expect;
	const char *method = "GET", *path, *req_body = NULL;
	json_int_t port = 0, timeout = 5000;
	char hex[65], prefix[ML_PROBE_PATH_MAX + 64];
	json_t *r, *jb;
	int rc, got;

	ML_UNUSED(a);
	rc = ml_agent_arg_int(&port, args, OP, "host_port", 1, 65535, true);
	if (rc == 0)
		rc = ml_agent_arg_name(&path, args, OP, "path", false);
	if (rc == 0 && !ml_probe_valid_path(path))
		rc = ml_err_set(ML_EPROTO, OP ": 'path' must start with '/' "
					      "and be printable ASCII");
	if (rc == 0 && json_object_get(args, "method"))
		rc = ml_agent_arg_name(&method, args, OP, "method", false);
	if (rc == 0)
		rc = ml_agent_arg_int(&timeout, args, OP, "timeout_ms", 10,
				      60000, false);
	if (rc < 0)
		goto out;
	jb = json_object_get(args, "body");
	if (jb && !json_is_null(jb)) {
		if (!json_is_string(jb) ||
		    json_string_length(jb) > REQ_BODY_MAX ||
		    strlen(json_string_value(jb)) != json_string_length(jb)) {
			rc = ml_err_set(ML_EPROTO, OP
					": 'body' must be a "
					"string of at most 64 KiB without NUL");
			goto out;
		}
		req_body = json_string_value(jb);
	}
	rc = ml_probe_expect_from_json(&expect,
				       json_object_get(args, "expect"));
	if (rc < 0)
		goto out;
	got = ml_probe_request(&pr, &body, ml_agent_slot_host(), (int)port,
			       method, path, req_body, (long)timeout);
	if (got == ML_EINVALID) {
		rc = ml_err_prefix(ML_EPROTO, OP);
		goto out;
	}
	r = json_object();
	if (got == 0) {
		snprintf(prefix, sizeof(prefix), "%s %s", method, path);
		if (!expect.nstatus && (pr.status < 200 || pr.status > 299))
			got = ml_err_set(ML_EFAIL, "%s: HTTP %ld, expected 2xx",
					 prefix, pr.status);
		else
			got = ml_probe_check(&expect, pr.status,
					     body.data ? body.data : "",
					     body.len, prefix);
	}
	json_object_set_new(r, "status",
			    pr.status ? json_integer(pr.status) : json_null());
	json_object_set_new(r, "elapsed_ms", json_integer(pr.elapsed_ms));
	{
		struct ml_buf shown = ML_BUF_INIT(BODY_SHOWN + 1);

		if (body.len)
			(void)ml_buf_add(&shown, body.data,
					 body.len < BODY_SHOWN ? body.len
							       : BODY_SHOWN);
		ml_agent_set_str(r, "body", shown.data ? shown.data : "");
		ml_buf_release(&shown);
	}
	ml_sha256_hex(body.data ? body.data : "", body.len, hex);
	json_object_set_new(r, "body_sha256", json_string(hex));
	json_object_set_new(r, "pass", json_boolean(got == 0));
	ml_agent_set_str(r, "error", got == 0 ? NULL : ml_err_msg());
	*result = r;
	rc = 0;
out:
	ml_buf_release(&body);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_request = {
	.name = OP,
	.summary = "send one golden request to a container's slot port and "
		   "check its answer",
	.run = op_container_request,
};
