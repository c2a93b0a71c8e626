/*
 * The relay ops' typed client functions (see ops_relay.h). Each only
 * builds its request; apply/relay.c decides and interprets.
 */
#include "common/ml.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops_relay.h"

int ml_op_relay_key(struct ml_host_session *h, const char *deploy, json_t **res)
{
	return ml_host_call(h, "relay_key",
			    json_pack("{s:s}", "deploy", deploy), res);
}

int ml_op_relay_allow(struct ml_host_session *h, const char *deploy,
		      const char *public_key, const char *from, int64_t ttl_s,
		      json_t **res)
{
	return ml_host_call(h, "relay_allow",
			    json_pack("{s:s,s:s,s:s,s:I}", "deploy", deploy,
				      "public_key", public_key, "from", from,
				      "ttl_s", (json_int_t)ttl_s),
			    res);
}

int ml_op_relay_send(struct ml_host_session *h, const char *deploy,
		     const char *host, int port, const char *user,
		     const char *host_key, json_t *digests, json_t *follow,
		     int connect_timeout_s, json_t **res)
{
	json_t *args =
		json_pack("{s:s,s:s,s:i,s:s,s:s,s:i}", "deploy", deploy, "host",
			  host, "port", port, "user", user, "host_key",
			  host_key, "connect_timeout_s", connect_timeout_s);

	if (digests)
		json_object_set_new(args, "digests", digests);
	else
		json_object_set_new(args, "probe", json_true());

	if (follow)
		json_object_set_new(args, "follow", follow);
	return ml_host_call(h, "relay_send", args, res);
}

int ml_op_relay_end(struct ml_host_session *h, const char *deploy, json_t **res)
{
	return ml_host_call(h, "relay_end",
			    json_pack("{s:s}", "deploy", deploy), res);
}
