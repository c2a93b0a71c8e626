/*
 * The bounded load generator of loadgen.h, on libcurl easy handles (one per
 * thread, reused so connections are kept alive as real clients do). Each
 * thread paces itself to rate / threads requests per second. Bounds: at
 * most max_requests in all and max_seconds of wall time.
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
	pthread_mutex_t lock;
	char first_error[256];
	pthread_t threads[LG_MAX_THREADS];
};

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

struct ml_loadgen *ml_loadgen_start(const char *url, int rate, int threads,
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
	for (i = 0; i < lg->nthreads; i++)
		if (pthread_create(&lg->threads[i], NULL, lg_thread, lg))
			BUG("cannot start a load thread");
	return lg;
}

void ml_loadgen_peek(struct ml_loadgen *lg, struct ml_loadgen_stats *st)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	st->sent = atomic_load(&lg->ok) + atomic_load(&lg->failed);
	st->ok = atomic_load(&lg->ok);
	st->failed = atomic_load(&lg->failed);
	st->http_errors = atomic_load(&lg->http_errors);
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
