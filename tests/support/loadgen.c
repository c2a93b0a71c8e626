/*
 * The bounded load generators of loadgen.h. Closed loop: libcurl easy
 * handles (one per thread, reused so connections are kept alive as real
 * clients do), each thread pacing itself to rate / threads requests per
 * second. Open loop: one thread and a curl multi handle, a fresh handle
 * and connection per request, sent on schedule. Bounds: at most
 * max_requests in all and max_seconds of wall time.
 */
#include "common/ml.h"
#include "tests/support/loadgen.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define LG_MAX_THREADS 16

struct ml_loadgen {
	char *url;
	int rate, nthreads;
	long max_requests;
	int64_t deadline_ms;
	const char *markers[4];
	size_t nmarkers;
	atomic_bool stop;
	atomic_long sent, ok, failed, http_errors, by_body[4];
	atomic_long max_ms; /* the slowest answer */
	pthread_mutex_t lock;
	char first_error[256];
	pthread_t threads[LG_MAX_THREADS];
};

/* ml_loadgen_set_ca: the CA that https URLs are verified against */
static char ca_file[4096];

void ml_loadgen_set_ca(const char *path)
{
	snprintf(ca_file, sizeof(ca_file), "%s", path ? path : "");
}

/* TLS: always verified (peer and host name), against ca_file if set. */
static void set_tls(CURL *c)
{
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
}

/* ML_LOADGEN_TRACE=FILE: one line per failed or slow open-loop request
 * (wall-clock ms when it was due, its number, what happened, and libcurl's
 * connect, first-byte and total times in ms), to line failures up with
 * what a deploy did at that moment. */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

static void trace(CURL *c, long n, const char *what)
{
	const char *path = getenv("ML_LOADGEN_TRACE");
	curl_off_t conn = 0, ttfb = 0, total = 0;
	struct timespec ts;
	FILE *f;

	if (!path || !*path)
		return;
	curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &conn);
	curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &total);
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&trace_lock);
	f = fopen(path, "ae");
	if (f) {
		int64_t end = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

		fprintf(f, "%lld %ld %s connect=%lld ttfb=%lld total=%lld\n",
			(long long)(end - total / 1000), n, what,
			(long long)(conn / 1000), (long long)(ttfb / 1000),
			(long long)(total / 1000));
		fclose(f);
	}
	pthread_mutex_unlock(&trace_lock);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t body_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct ml_buf *b = arg;

	if (ml_buf_add(b, p, sz * n) < 0)
		return 0;
	return sz * n;
}

static void note_error(struct ml_loadgen *lg, const char *fmt, ...)
	ML_PRINTF(2, 3);

static void note_error(struct ml_loadgen *lg, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&lg->lock);
	if (!lg->first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(lg->first_error, sizeof(lg->first_error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&lg->lock);
}

static void *lg_thread(void *arg)
{
	struct ml_loadgen *lg = arg;
	CURL *c = curl_easy_init();
	struct ml_buf body = ML_BUF_INIT(1 << 20);
	int64_t interval = lg->nthreads * 1000 / (lg->rate ? lg->rate : 1);
	int64_t next = now_ms();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, lg->url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	set_tls(c);
	while (!atomic_load(&lg->stop)) {
		int64_t t = now_ms();
		long code = 0, n;
		CURLcode rc;
		size_t i;

		if (t >= lg->deadline_ms)
			break;
		if (t < next) {
			struct timespec ts = { 0, (long)(next - t) * 1000000L };

			nanosleep(&ts, NULL);
			continue;
		}
		next += interval;
		n = atomic_fetch_add(&lg->sent, 1);
		if (n >= lg->max_requests)
			break;
		ml_buf_reset(&body);
		rc = curl_easy_perform(c);
		if (rc != CURLE_OK) {
			atomic_fetch_add(&lg->failed, 1);
			note_error(lg, "request %ld: %s", n,
				   curl_easy_strerror(rc));
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code < 200 || code > 299) {
			atomic_fetch_add(&lg->failed, 1);
			atomic_fetch_add(&lg->http_errors, 1);
			note_error(lg, "request %ld: HTTP %ld", n, code);
			continue;
		}
		atomic_fetch_add(&lg->ok, 1);
		for (i = 0; i < lg->nmarkers; i++)
			if (strstr(ml_buf_str(&body), lg->markers[i]))
				atomic_fetch_add(&lg->by_body[i], 1);
	}
	curl_easy_cleanup(c);
	ml_buf_release(&body);
	return NULL;
}

/* A generator with its bounds, not started yet. */
static struct ml_loadgen *lg_new(const char *url, int rate, int threads,
				 long max_requests, int max_seconds,
				 const char *const *markers)
{
	struct ml_loadgen *lg = ml_xcalloc(1, sizeof(*lg));
	int i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	lg->url = ml_xstrdup(url);
	lg->rate = rate > 0 ? rate : 1;
	lg->nthreads = threads < 1 ? 1
		       : threads > LG_MAX_THREADS ? LG_MAX_THREADS
						  : threads;
	lg->max_requests = max_requests;
	lg->deadline_ms = now_ms() + (int64_t)max_seconds * 1000;
	for (i = 0; markers && markers[i] && i < 4; i++)
		lg->markers[lg->nmarkers++] = markers[i];
	pthread_mutex_init(&lg->lock, NULL);
	return lg;
}

struct ml_loadgen *ml_loadgen_start(const char *url, int rate, int threads,
				    long max_requests, int max_seconds,
				    const char *const *markers)
{
	struct ml_loadgen *lg = lg_new(url, rate, threads, max_requests,
				       max_seconds, markers);
	int i;

	for (i = 0; i < lg->nthreads; i++)
		if (pthread_create(&lg->threads[i], NULL, lg_thread, lg))
			BUG("cannot start a load thread");
	return lg;
}

/* ---- open loop ---------------------------------------------------------- */

#define OPEN_MAX_IN_FLIGHT 2000

struct open_req {
	struct ml_buf body;
	long n;
};

/* A finished transfer of the open loop: count it, free it. */
static void open_done(struct ml_loadgen *lg, CURLM *m, CURL *c, CURLcode rc)
{
	struct open_req *r = NULL;
	long code = 0;
	size_t i;

	curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&r);
	if (rc != CURLE_OK) {
		atomic_fetch_add(&lg->failed, 1);
		note_error(lg, "request %ld: %s", r->n, curl_easy_strerror(rc));
		trace(c, r->n, "failed");
	} else {
		curl_off_t us = 0;
		long ms, seen;

		curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
		ms = (long)(us / 1000);
		seen = atomic_load(&lg->max_ms);
		while (ms > seen &&
		       !atomic_compare_exchange_weak(&lg->max_ms, &seen, ms))
			;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (ms > ML_LOADGEN_HELD_MS || code < 200 || code > 299)
			trace(c, r->n, code < 200 || code > 299 ? "http-error"
								 : "slow");
		if (code < 200 || code > 299) {
			atomic_fetch_add(&lg->failed, 1);
			atomic_fetch_add(&lg->http_errors, 1);
			note_error(lg, "request %ld: HTTP %ld", r->n, code);
		} else {
			atomic_fetch_add(&lg->ok, 1);
			for (i = 0; i < lg->nmarkers; i++)
				if (strstr(ml_buf_str(&r->body),
					   lg->markers[i]))
					atomic_fetch_add(&lg->by_body[i], 1);
		}
	}
	curl_multi_remove_handle(m, c);
	curl_easy_cleanup(c);
	ml_buf_release(&r->body);
	free(r);
}

/*
 * One thread, one curl multi handle: request n starts at t0 + n / rate
 * whatever the earlier ones are doing (open loop: a stalled server
 * does not slow the clients down, as real clients do not wait for each
 * other), each on a new connection. At most OPEN_MAX_IN_FLIGHT at once;
 * beyond that a request counts as failed without being sent.
 */
static void *lg_open_thread(void *arg)
{
	struct ml_loadgen *lg = arg;
	CURLM *m = curl_multi_init();
	int64_t t0 = now_ms();
	long started = 0;
	int running = 0;

	if (!m)
		return NULL;
	for (;;) {
		int64_t t = now_ms(), due;
		bool more = !atomic_load(&lg->stop) && t < lg->deadline_ms &&
			    started < lg->max_requests;
		CURLMsg *msg;
		int left, wait;

		due = t0 + (int64_t)started * 1000 / lg->rate;
		while (more && due <= t && started < lg->max_requests) {
			struct open_req *r = ml_xcalloc(1, sizeof(*r));
			CURL *c = curl_easy_init();

			r->body = (struct ml_buf)ML_BUF_INIT(1 << 20);
			r->n = started++;
			atomic_fetch_add(&lg->sent, 1);
			if (!c || running >= OPEN_MAX_IN_FLIGHT) {
				atomic_fetch_add(&lg->failed, 1);
				note_error(lg, "request %ld: %d in flight",
					   r->n, running);
				if (c)
					curl_easy_cleanup(c);
				free(r);
			} else {
				curl_easy_setopt(c, CURLOPT_URL, lg->url);
				curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
						 body_cb);
				curl_easy_setopt(c, CURLOPT_WRITEDATA,
						 &r->body);
				curl_easy_setopt(c, CURLOPT_PRIVATE, r);
				curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
				curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
						 5000L);
				curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
				set_tls(c);
				curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
				curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
				curl_multi_add_handle(m, c);
				running++;
			}
			due = t0 + (int64_t)started * 1000 / lg->rate;
		}
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE)
				open_done(lg, m, msg->easy_handle,
					  msg->data.result);
		if (!more && running == 0)
			break;
		wait = more ? (int)(due - now_ms()) : 50;
		if (wait < 0)
			wait = 0;
		if (wait > 50)
			wait = 50;
		curl_multi_poll(m, NULL, 0, wait, NULL);
	}
	curl_multi_cleanup(m);
	return NULL;
}

struct ml_loadgen *ml_loadgen_start_open(const char *url, int rate,
					 long max_requests, int max_seconds,
					 const char *const *markers)
{
	struct ml_loadgen *lg = lg_new(url, rate, 1, max_requests,
				       max_seconds, markers);

	if (pthread_create(&lg->threads[0], NULL, lg_open_thread, lg))
		BUG("cannot start a load thread");
	return lg;
}

int ml_loadgen_held_rate(const char *url, int max_rate, int min_rate,
			 int seconds)
{
	struct ml_loadgen_stats st;
	struct timespec ts = { seconds, 200000000L };
	int rate;

	for (rate = max_rate; rate >= min_rate && rate > 0; rate /= 2) {
		struct ml_loadgen *lg = ml_loadgen_start_open(
			url, rate, (long)rate * seconds, seconds + 10, NULL);

		nanosleep(&ts, NULL);
		ml_loadgen_stop(lg, &st);
		fprintf(stderr,
			"open loop at %d/s for %d s: %ld sent, %ld failed, "
			"slowest %ld ms%s%s\n",
			rate, seconds, st.sent, st.failed, st.max_ms,
			st.failed ? ", first: " : "", st.first_error);
		/* held: nothing failed and no queue built up */
		if (st.sent > 0 && st.failed == 0 &&
		    st.max_ms <= ML_LOADGEN_HELD_MS)
			return rate;
	}
	return 0;
}

void ml_loadgen_peek(struct ml_loadgen *lg, struct ml_loadgen_stats *st)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	st->sent = atomic_load(&lg->ok) + atomic_load(&lg->failed);
	st->ok = atomic_load(&lg->ok);
	st->failed = atomic_load(&lg->failed);
	st->http_errors = atomic_load(&lg->http_errors);
	st->max_ms = atomic_load(&lg->max_ms);
	for (i = 0; i < 4; i++)
		st->by_body[i] = atomic_load(&lg->by_body[i]);
	pthread_mutex_lock(&lg->lock);
	memcpy(st->first_error, lg->first_error, sizeof(st->first_error));
	pthread_mutex_unlock(&lg->lock);
}

void ml_loadgen_stop(struct ml_loadgen *lg, struct ml_loadgen_stats *st)
{
	int i;

	atomic_store(&lg->stop, true);
	for (i = 0; i < lg->nthreads; i++)
		pthread_join(lg->threads[i], NULL);
	if (st)
		ml_loadgen_peek(lg, st);
	pthread_mutex_destroy(&lg->lock);
	free(lg->url);
	free(lg);
}

void ml_loadgen_pair_start(struct ml_loadgen_pair *p, const char *url,
			   int rate, int max_seconds,
			   const char *const *markers)
{
	int half = rate / 2 ? rate / 2 : 1;

	p->rate = rate;
	p->open = ml_loadgen_start_open(url, half, (long)half * max_seconds,
					max_seconds, markers);
	p->kept = ml_loadgen_start(url, half, 2, (long)half * max_seconds,
				   max_seconds, markers);
}

bool ml_loadgen_pair_stop(struct ml_loadgen_pair *p, const char *what,
			  long *marked)
{
	struct ml_loadgen_stats o, k;
	int half = p->rate / 2 ? p->rate / 2 : 1;

	ml_loadgen_stop(p->open, &o);
	ml_loadgen_stop(p->kept, &k);
	p->open = p->kept = NULL;
	fprintf(stderr,
		"load during %s (the fleet held %d/s): open loop at %d/s %ld "
		"sent, %ld failed; keep-alive at %d/s %ld sent, %ld failed\n",
		what, p->rate, half, o.sent, o.failed, half, k.sent, k.failed);
	if (o.failed || k.failed)
		fprintf(stderr, "%s: first errors: %s | %s\n", what,
			o.first_error, k.first_error);
	if (marked)
		*marked = o.by_body[0] + k.by_body[0];
	return o.sent > 0 && k.sent > 0 && !o.failed && !k.failed;
}
