/*
 * `--watch` and `--window` for verbs that show the service's numbers:
 * redraw a view every WATCH_MS until Ctrl-C, in place on a terminal (like
 * top: home the cursor, clear, draw), one view after another otherwise.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/metrics/metrics.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MS 2000
#define WINDOW_MIN_MS 1000
#define WINDOW_MAX_MS 3600000

const struct ml_option ml_opt_watch = {
	OPT_WATCH, "watch", 'w', NULL,
	"redraw every 2 s, in place on a terminal, until Ctrl-C"
};
const struct ml_option ml_opt_window = {
	OPT_WINDOW, "window", 0, "DURATION",
	"count requests over this last stretch of time (default 1m)"
};

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

int ml_metrics_window(int64_t *out_ms, const char *s)
{
	int64_t ms;

	if (!s) {
		*out_ms = 60000;
		return 0;
	}
	if (ml_parse_duration(&ms, s) < 0 || ms < WINDOW_MIN_MS ||
	    ms > WINDOW_MAX_MS)
		return ml_err_set(ML_EUSAGE,
				  "--window '%s' must be a duration from 1s "
				  "to 1h",
				  s);
	*out_ms = ms;
	return 0;
}

int ml_metrics_watch(int (*show)(void *arg), void *arg)
{
	struct sigaction sa = { 0 }, old;
	bool tty = isatty(STDOUT_FILENO);
	int rc = 0;

	stop = 0;
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART; /* a request in flight finishes */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	while (!stop) {
		struct timespec t0, t;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (tty)
			fputs("\033[H\033[2J", stdout);
		rc = show(arg);
		if (!tty)
			fputs("\n", stdout);
		fflush(stdout);
		do {
			struct timespec step = { 0, 50 * 1000000 };

			nanosleep(&step, NULL);
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (!stop && (t.tv_sec - t0.tv_sec) * 1000 +
						  (t.tv_nsec - t0.tv_nsec) / 1000000 <
					  WATCH_MS);
	}
	sigaction(SIGINT, &old, NULL);
	/* Ctrl-C is how a watch ends: the last view's outcome stands */
	return rc;
}
