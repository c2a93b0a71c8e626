/*
 * A bounded pool of threads running one function over indexes 0..n-1 (see
 * ml_parallel_run in transport.h). Workers take the next index from one
 * atomic counter, so at most max_parallel calls run at once and a slow host
 * delays only the worker that has it. Nothing is shared between calls but
 * that counter: fn writes its result into the caller's slot for index i.
 *
 * Sizes: one thread per concurrent call, each with a 1 MiB stack (libssh
 * and our frames need far less); max_parallel is capped at 256.
 */
#include "common/ml.h"
#include "orchestrator/transport/transport.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAX_WORKERS 256
#define WORKER_STACK ((size_t)1 << 20)

struct pool {
	atomic_size_t next;
	size_t n;
	int (*fn)(size_t i, void *arg);
	void *arg;
};

static void *worker(void *p)
{
	struct pool *pool = p;
	size_t i;

	for (;;) {
		i = atomic_fetch_add(&pool->next, 1);
		if (i >= pool->n)
			break;
		pool->fn(i, pool->arg);
	}
	return NULL;
}

int ml_parallel_run(size_t n, int max_parallel,
		    int (*fn)(size_t i, void *arg), void *arg)
{
	struct pool pool = { .n = n, .fn = fn, .arg = arg };
	pthread_t *th = NULL;
	pthread_attr_t attr;
	size_t want, started = 0, i;

	atomic_init(&pool.next, 0);
	if (max_parallel > MAX_WORKERS)
		max_parallel = MAX_WORKERS;
	want = max_parallel > 1 ? (size_t)max_parallel : 1;
	if (want > n)
		want = n;
	if (want <= 1) {
		worker(&pool);
		return 0;
	}
	th = ml_xcalloc(want, sizeof(*th));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	for (i = 0; i < want; i++) {
		if (pthread_create(&th[started], &attr, worker, &pool))
			break; /* fewer workers; the others take the load */
		started++;
	}
	pthread_attr_destroy(&attr);
	/* With no thread at all, the calling thread does the work. */
	if (!started)
		worker(&pool);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	return 0;
}
