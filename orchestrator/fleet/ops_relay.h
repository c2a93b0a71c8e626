#ifndef ML_OPS_RELAY_H
#define ML_OPS_RELAY_H

/*
 * The agent's relay ops as the controller calls them (agent/op_relay_*.c,
 * documented in agent/README.md), one typed function each, like ops.h:
 * 0 or the ML_E* code with the message set; *res (when res is not NULL)
 * the agent's reply, the caller's to json_decref.
 */

#include <jansson.h>
#include <stdint.h>

struct ml_host_session;

/* relay_key: this host's key for deploy ({"public_key"}). */
int ml_op_relay_key(struct ml_host_session *h, const char *deploy,
		    json_t **res);

/* relay_allow: let public_key in from the address from, ttl_s seconds. */
int ml_op_relay_allow(struct ml_host_session *h, const char *deploy,
		      const char *public_key, const char *from, int64_t ttl_s,
		      json_t **res);

/* relay_send: stream digests (an array, stolen) to host:port as user,
 * trusting only host_key; follow (an object of digests and sizes, stolen,
 * or NULL) names the blobs this host is still receiving, to pass on as
 * they arrive; digests NULL only tries the connection ("probe"). The
 * caller sets the channel's timeout. */
int ml_op_relay_send(struct ml_host_session *h, const char *deploy,
		     const char *host, int port, const char *user,
		     const char *host_key, json_t *digests, json_t *follow,
		     int connect_timeout_s, json_t **res);

/* relay_end: remove the deploy's keys and authorized_keys lines. */
int ml_op_relay_end(struct ml_host_session *h, const char *deploy,
		    json_t **res);

#endif
