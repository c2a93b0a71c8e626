/*
 * loadgen URL RATE SECONDS: the end-to-end suites' open-loop generator
 * (tests/support/loadgen.h) as a command, for benchmarks and for finding
 * where requests are lost: a new connection per request at RATE per second
 * for SECONDS (or until SIGINT or SIGTERM), then one line of counts.
 * ML_LOADGEN_TRACE=FILE lists each failed or slow request with its times.
 */
#include "common/ml.h"
#include "tests/support/loadgen.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct ml_loadgen_stats st;
	struct ml_loadgen *lg;
	long rate, secs;
	struct timespec ts;
	sigset_t stop;

	if (argc != 4 || (rate = strtol(argv[2], NULL, 10)) <= 0 ||
	    rate > 5000 || (secs = strtol(argv[3], NULL, 10)) <= 0 ||
	    secs > 3600) {
		fprintf(stderr, "usage: loadgen URL RATE(1-5000) "
				"SECONDS(1-3600)\n");
		return 2;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the load thread too */
	lg = ml_loadgen_start_open(argv[1], (int)rate, rate * secs,
				   (int)secs + 10, NULL);
	ts.tv_sec = secs;
	ts.tv_nsec = 100000000L;
	sigtimedwait(&stop, NULL, &ts);
	ml_loadgen_stop(lg, &st);
	printf("sent %ld ok %ld failed %ld http_errors %ld slowest_ms %ld%s%s\n",
	       st.sent, st.ok, st.failed, st.http_errors, st.max_ms,
	       st.failed ? " first: " : "", st.first_error);
	return st.failed ? 1 : 0;
}
