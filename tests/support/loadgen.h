#ifndef ML_TEST_LOADGEN_H
#define ML_TEST_LOADGEN_H

/*
 * A bounded load generator for end-to-end tests: a thread sending GET
 * requests to one URL at a steady rate, counting what fails (connection
 * errors, timeouts, non-2xx answers). It stops by itself after max_requests
 * or max_seconds, whichever comes first, or when stopped. Traffic goes only
 * where the test points it: loopback or the fleet's own addresses.
 */

struct ml_loadgen;

struct ml_loadgen_stats {
	long sent;
	long ok;
	long failed;      /* connection errors, timeouts and non-2xx */
	long http_errors; /* of which non-2xx answers */
	char first_error[256];
	long by_body[4];  /* answers whose body contains marker[i] */
	long max_ms;      /* the slowest answer (open loop) */
};

/*
 * Start sending to url at rate requests per second on `threads` threads
 * (keep-alive connections). markers (up to 4, NULL-terminated, may be NULL)
 * are substrings counted in answer bodies, to see which revision answered.
 */
struct ml_loadgen *ml_loadgen_start(const char *url, int rate, int threads,
				    long max_requests, int max_seconds,
				    const char *const *markers);

/*
 * Open loop: request n is sent at start + n / rate seconds whether or not
 * the earlier ones were answered, each on a new connection (no
 * keep-alive), from one thread multiplexing them; what the server cannot
 * take piles up as timeouts (5 s) instead of slowing the load down.
 * Bounded like ml_loadgen_start; stopping waits for those in flight.
 */
struct ml_loadgen *ml_loadgen_start_open(const char *url, int rate,
					 long max_requests, int max_seconds,
					 const char *const *markers);

/*
 * The rate url holds as it is: open-loop runs of `seconds` at max_rate,
 * then half of it, ... down to min_rate; the first with no failed request
 * and no answer slower than ML_LOADGEN_HELD_MS, so no queue is building
 * up that a longer run would turn into timeouts (each run's counts go to
 * stderr). 0 when none holds.
 */
#define ML_LOADGEN_HELD_MS 1000
int ml_loadgen_held_rate(const char *url, int max_rate, int min_rate,
			 int seconds);

/*
 * https URLs: every generator started after this verifies the server's
 * certificate against the CA certificates in path (PEM; NULL: the
 * system's), host name included.
 */
void ml_loadgen_set_ca(const char *path);

/*
 * The zero-downtime load of the suites: open loop (a new connection per
 * request) at half of rate and keep-alive connections (2 threads) at the
 * other half, both on url, bounded by max_seconds. rate is what the
 * fleet was first shown to hold (ml_loadgen_held_rate).
 */
struct ml_loadgen_pair {
	struct ml_loadgen *open, *kept;
	int rate;
};
void ml_loadgen_pair_start(struct ml_loadgen_pair *p, const char *url,
			   int rate, int max_seconds,
			   const char *const *markers);

/*
 * Stop both and print, on stderr, what each sent and what failed during
 * `what` (with the rates), and the first errors. True when both sent and
 * nothing failed. *marked (may be NULL): the answers of both that
 * carried markers[0].
 */
bool ml_loadgen_pair_stop(struct ml_loadgen_pair *p, const char *what,
			  long *marked);

/* Stop, wait for the threads, copy the counts, free. */
void ml_loadgen_stop(struct ml_loadgen *lg, struct ml_loadgen_stats *st);

/* The counts so far, without stopping. */
void ml_loadgen_peek(struct ml_loadgen *lg, struct ml_loadgen_stats *st);

#endif
