/*
 * rollout.verify: golden requests sent to each new container directly
 * (through the agent of its host: the slots accept only the balancers and
 * the VM itself), after it is healthy and before any balancer gives it a
 * request. Each answer must be what the playbook says (a status, a body
 * substring, a JSON field's value; by default any 2xx). With compare, the
 * same requests also go to the container the new one replaces, and the
 * differences (status, body, latency) are recorded as "verify-diff"
 * events, so a model change that alters answers shows in `mlctl show N`
 * before promotion. A wrong answer stops the rollout (st->halt): every
 * host would give the same wrong answer.
 *
 * Sizes: at most ML_VERIFY_MAX requests per container; bodies seen in
 * events are cut to 80 bytes and escaped (they come from the app).
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/log.h"
#include "orchestrator/apply/rollout_int.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"

#define SHOWN 80

/* One request to a slot; *res is the agent's answer (the caller's). */
static int send_one(struct host_state *hs, const struct ml_config *cfg,
		    const struct ml_verify_req *q, int replica, char slot,
		    json_t **res)
{
	return ml_op_container_request(
		hs->h, ml_rollout_host_port(cfg, replica, slot), q,
		cfg->playbook->rollout.verify.timeout_ms, res);
}

/* The first SHOWN bytes of an answer's body, escaped, into b. */
static const char *shown(struct ml_buf *b, json_t *res)
{
	const char *s = json_string_value(json_object_get(res, "body"));
	size_t n = s ? strlen(s) : 0;

	ml_buf_reset(b);
	ml_escape(b, s ? s : "", n > SHOWN ? SHOWN : n);
	if (n > SHOWN)
		(void)ml_buf_addstr(b, "...");
	return ml_buf_str(b);
}

static void compare(struct ml_rollout *ro, struct host_state *hs,
		    const struct ml_verify_req *q, json_t *now, json_t *old)
{
	struct ml_buf a = ML_BUF_INIT(1024), b = ML_BUF_INIT(1024);
	json_int_t s_old = json_integer_value(json_object_get(old, "status"));
	json_int_t s_new = json_integer_value(json_object_get(now, "status"));
	json_int_t t_old =
		json_integer_value(json_object_get(old, "elapsed_ms"));
	json_int_t t_new =
		json_integer_value(json_object_get(now, "elapsed_ms"));
	const char *h_old =
		json_string_value(json_object_get(old, "body_sha256"));
	const char *h_new =
		json_string_value(json_object_get(now, "body_sha256"));
	bool same_body = h_old && h_new && !strcmp(h_old, h_new);

	if (s_old == s_new && same_body)
		ml_ro_event(ro, hs->h->target->name, "verify-diff", "same",
			    "%s %s: HTTP %lld both, same body, %lld ms -> "
			    "%lld ms",
			    q->method, q->path, (long long)s_new,
			    (long long)t_old, (long long)t_new);
	else
		ml_ro_event(
			ro, hs->h->target->name, "verify-diff", "differs",
			"%s %s: HTTP %lld -> %lld, %s%s%s%s%s, %lld ms -> "
			"%lld ms",
			q->method, q->path, (long long)s_old, (long long)s_new,
			same_body ? "same body" : "body '",
			same_body ? "" : shown(&a, old),
			same_body ? "" : "' -> '",
			same_body ? "" : shown(&b, now), same_body ? "" : "'",
			(long long)t_old, (long long)t_new);
	ml_buf_release(&a);
	ml_buf_release(&b);
}

int ml_verify_run(struct ml_rollout_state *st, struct host_state *hs,
		  int replica, char slot, char old_slot)
{
	struct ml_rollout *ro = st->ro;
	const struct ml_verify_spec *vs = &ro->cfg->playbook->rollout.verify;
	const char *host = hs->h->target->name;
	json_t *res, *old;
	size_t i;
	int rc = 0;

	for (i = 0; i < vs->n && rc == 0; i++) {
		const struct ml_verify_req *q = &vs->v[i];

		res = old = NULL;
		rc = send_one(hs, ro->cfg, q, replica, slot, &res);
		if (rc < 0)
			break;
		if (vs->compare && old_slot &&
		    send_one(hs, ro->cfg, q, replica, old_slot, &old) == 0)
			compare(ro, hs, q, res, old);
		if (!json_is_true(json_object_get(res, "pass"))) {
			const char *why = json_string_value(
				json_object_get(res, "error"));
			struct ml_buf e = ML_BUF_INIT(1024);

			ml_escape(&e, why ? why : "?", why ? strlen(why) : 1);
			ml_ro_event(ro, host, "verify", "failed", "%s",
				    ml_buf_str(&e));
			rc = ml_err_set(ML_EDEPLOY,
					"golden request %zu failed on '%s' "
					"before any user traffic: %s",
					i + 1, host, ml_buf_str(&e));
			ml_buf_release(&e);
			st->halt = true;
		} else {
			ml_ro_event(
				ro, host, "verify", "ok",
				"%s %s: HTTP %lld in %lld ms", q->method,
				q->path,
				(long long)json_integer_value(
					json_object_get(res, "status")),
				(long long)json_integer_value(
					json_object_get(res, "elapsed_ms")));
		}
		json_decref(res);
		json_decref(old);
	}
	return rc;
}
