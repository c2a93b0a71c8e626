#ifndef ML_TEST_PROM_H
#define ML_TEST_PROM_H

/*
 * A real Prometheus for end-to-end tests: /usr/bin/prometheus (Debian's
 * package, installed by scripts/setup.sh) on 127.0.0.1:port, scraping the
 * file_sd targets file mlctl writes, with its data and log in a scratch
 * directory; queried over its HTTP API with curl.
 */
#include <jansson.h>
#include <sys/types.h>

struct ml_test_prom {
	pid_t pid;
	int port;
	char *dir; /* config, data and prometheus.log */
};

/* Start it scraping every interval_s (and at most that long per scrape)
 * the targets in targets_file. 0, or -1 with a message on stderr. */
int ml_test_prom_start(struct ml_test_prom *p, int port,
		       const char *targets_file, int interval_s);

/* An instant query at unix time at (0: now): the parsed answer or NULL. */
json_t *ml_test_prom_query(const struct ml_test_prom *p, const char *expr,
			   double at);

/* The value of the first sample of an instant vector answer, NAN if none. */
double ml_test_prom_value(json_t *answer);

/* Its log, the caller's (for a failure message). */
char *ml_test_prom_log(const struct ml_test_prom *p);

/* Stop it, remove its directory. */
void ml_test_prom_stop(struct ml_test_prom *p);

#endif
