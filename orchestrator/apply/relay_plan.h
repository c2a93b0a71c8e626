#ifndef ML_RELAY_PLAN_H
#define ML_RELAY_PLAN_H

/*
 * The relay plan: which host sends which blobs to which, round by round,
 * so that each blob crosses the controller's uplink once (or `seeds`
 * times) and the hosts pass it on over the fleet's network. Pure: no I/O,
 * the result is a value (apply/relay.c carries it out a round at a time,
 * planning each round from what the hosts hold then).
 *
 * Inputs: n hosts, m blobs with their sizes, have[h * m + b] (host h holds
 * blob b complete), and per host whether it can relay at all (a host whose
 * relay failed, or that never lacks nor holds anything of use, gets its
 * blobs from the controller directly: "direct").
 *
 * One round:
 *   - a blob no relaying host holds is an orphan; the controller sends
 *     every orphan a seed lacks to at most `seeds` seeds (the hosts that
 *     lack the most bytes, then the lowest index), and everything a
 *     direct host lacks to it;
 *   - every other host that lacks something gets, from one source, all
 *     of what it lacks that the source held at the start of the round;
 *     the source is the host covering the most of those bytes (then the
 *     least loaded, then the lowest index), at most `fanout` receivers per
 *     source and round, never over a pair that failed before; a host the
 *     controller sends to in this round does not send in it. A host that
 *     lacks blobs no allowed source holds waits (the delivery after the
 *     relay sends it what it still lacks).
 * Rounds repeat until no host lacks anything; each makes progress, so
 * there are at most n * m + 1 of them.
 *
 * The pipelined first round (ml_relay_plan_chain): the blobs no relaying
 * host holds (the orphans; every relaying host lacks all of them) go down
 * `seeds` chains at once, c>a a>b b>c ..., each host passing a blob on
 * while it is still receiving it (agent relay_send "follow"), so the whole
 * chain takes about the time of the controller's one send. The chains
 * take the relaying hosts most lacking first (then the lowest index),
 * round-robin, never over a pair that failed, at most `chain` hosts in
 * all (every hop must run at the same time: the controller's threads);
 * the hosts left out, and what the chain hosts lack besides the orphans,
 * are for the rounds after it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_RELAY_FROM_CONTROLLER (-1)

struct ml_relay_xfer {
	int from; /* a host index, or ML_RELAY_FROM_CONTROLLER */
	int to;	  /* a host index */
	size_t nblobs;
	size_t *blobs; /* blob indexes, ascending */
	int64_t bytes;
};

struct ml_relay_round {
	size_t n;
	struct ml_relay_xfer *x;
};

struct ml_relay_in {
	size_t nhosts, nblobs;
	const int64_t *sizes;	     /* nblobs */
	const unsigned char *have;   /* nhosts * nblobs, 1: held */
	const unsigned char *direct; /* nhosts or NULL, 1: no relay */
	const unsigned char *bad;    /* nhosts * nhosts or NULL: bad[to *
				      * nhosts + from] 1 when a relay from
				      * `from` to `to` failed: not again */
	int seeds;		     /* >= 1 */
	int fanout;		     /* >= 1 */
	size_t chain;		     /* hosts in the pipelined first round
				      * (ml_relay_plan), 0: none */
};

struct ml_relay_plan {
	size_t nrounds;
	struct ml_relay_round *rounds;
};

/* One round from the state in `in`; *out is empty when nobody lacks
 * anything that can be sent. Release with ml_relay_round_release. */
void ml_relay_plan_round(struct ml_relay_round *out,
			 const struct ml_relay_in *in);
void ml_relay_round_release(struct ml_relay_round *r);

/* The pipelined round (above) of at most in->chain hosts; *out is empty
 * when there are no orphans or fewer than two hosts to chain. */
void ml_relay_plan_chain(struct ml_relay_round *out,
			 const struct ml_relay_in *in);

/* Every round, assuming each transfer succeeds; with in->chain the first
 * is the pipelined one. */
void ml_relay_plan(struct ml_relay_plan *out, const struct ml_relay_in *in);
void ml_relay_plan_release(struct ml_relay_plan *p);

/*
 * The plan as text, one line per round: "1: c>0[0,1] 2>3[1]" (c is the
 * controller; blob indexes in brackets); for the data-driven tests.
 * Appended to out.
 */
struct ml_buf;
void ml_relay_plan_format(struct ml_buf *out, const struct ml_relay_plan *p);

#endif
