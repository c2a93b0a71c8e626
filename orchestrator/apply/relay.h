#ifndef ML_RELAY_H
#define ML_RELAY_H

/*
 * Relaying blobs between hosts during a delivery (apply/deliver.c), so
 * that each blob crosses the controller's uplink once: the controller
 * sends what no host holds to a seed or two, and hosts that hold blobs
 * pass them on to those that lack them, over SSH between the hosts'
 * agents (agent/op_relay_*.c), round by round as apply/relay_plan.h
 * plans; what no host holds goes down a chain of hosts first, each one
 * passing it on while still receiving it. A relay that fails (a host that
 *cannot reach another, a key refused) makes its receiver a "direct" host, which
 *the controller sends to itself, saying so on stderr in one line.
 *
 * Settings, from the environment:
 *	MLCTL_RELAY=on|off		default on
 *	MLCTL_RELAY_SEEDS=N		hosts the controller sends to (1)
 *	MLCTL_RELAY_FANOUT=N		receivers per source and round (1)
 *	MLCTL_RELAY_MIN_BYTES=N		relay only when a host lacks at least
 *					this many bytes (8 MiB)
 *	MLCTL_RELAY_PIPELINE=on|off	the pipelined first round (on): blobs
 *					no host holds go down a chain of up
 *					to --parallel hosts at once
 */

#include <stddef.h>
#include <stdint.h>

struct ml_host_session;
struct ml_image;
struct ml_deliver_result;

/*
 * Relay img's blobs among the connected app hosts of the n sessions.
 * send_direct(h, i, arg) must send host i everything it lacks from the
 * controller (no image load), over h, a second session to host i, or
 * over its own session when h is NULL; it may be called from several
 * threads at once, for different hosts. Results go to res[i] (relayed_from,
 * relayed_bytes). Best effort: returns 0 whatever failed, since the
 * delivery that follows sends each host what it still lacks; the keys
 * and authorized_keys lines it made are removed before it returns.
 */
int ml_relay_run(struct ml_host_session *hosts, size_t n,
		 const struct ml_image *img, int parallel,
		 struct ml_deliver_result *res,
		 int (*send_direct)(struct ml_host_session *h, size_t i,
				    void *arg),
		 void *arg);

#endif
