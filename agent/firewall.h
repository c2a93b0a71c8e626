#ifndef ML_AGENT_FIREWALL_H
#define ML_AGENT_FIREWALL_H

/*
 * Only the balancer reaches the app: filter rules for the published slot
 * ports of an app's containers, in Docker's DOCKER-USER chain (which
 * Docker evaluates before its own rules for traffic to containers and
 * never rewrites), through iptables run with argv vectors.
 *
 *	DOCKER-USER:  -p tcp -m conntrack --ctorigdstport <host port>
 *		      --ctdir ORIGINAL
 *		      -m comment --comment mlctl:<app> -j MLCTL-<hash of app>
 *	MLCTL-<hash>: -s <LB address> -j RETURN   (one per LB)
 *		      -s <this VM's address> -j RETURN
 *		      -p tcp -j REJECT --reject-with tcp-reset
 *
 * conntrack's original destination port is the published port before
 * Docker's DNAT, so the rule names the slot, not the container's port.
 * Traffic the VM sends to its own containers does not cross FORWARD and
 * is never filtered. The iptables program is $MLCTL_IPTABLES, else
 * "iptables"; its output is read, never passed to a shell.
 */

#include <jansson.h>

/*
 * The VM's address on the fleet network as the controller reached it (the
 * server side of $SSH_CONNECTION), into buf; "0.0.0.0" when unknown.
 */
void ml_agent_fleet_address(char *buf, size_t size);

/*
 * True when the controller reached this VM over IPv6 ($SSH_CONNECTION):
 * a slot can then be neither bound to the fleet address nor filtered
 * (iptables is IPv4), so container_run refuses a firewalled slot rather
 * than publish it on every IPv4 address.
 */
bool ml_agent_reached_over_ipv6(void);

/* Where this VM reaches its own slots: the fleet address when known
 * (slots are bound to it), else 127.0.0.1. Borrowed, static. */
const char *ml_agent_slot_host(void);

/*
 * Let only allow_from (an array of address strings, borrowed) and self
 * reach host_port of app's containers: the app's chain is rewritten when
 * it differs, and the port's DOCKER-USER rule added when missing.
 * ML_EFAIL naming the iptables command and its output when one fails
 * (for example on a Docker without iptables: the playbook can set
 * security.open_slots: true).
 */
int ml_agent_firewall_open(const char *app, int host_port, json_t *allow_from,
			   const char *self);

/*
 * Remove host_port's rule for app, and the app's chain once no rule uses
 * it. Absent rules are not an error.
 */
int ml_agent_firewall_close(const char *app, int host_port);

#endif
