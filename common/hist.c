/*
 * Log-linear latency histogram (see hist.h). Bucket i < 16 holds exactly
 * i ms; above, a value v with highest bit e (e >= 4) goes to bucket
 * 16 + 8 * (e - 4) + the three bits after the highest, so bucket widths
 * grow with the value and 240 buckets reach 2^31 ms. The layout is part
 * of the protocol (lb_requests sends bucket indexes): never change it
 * without a new protocol version.
 */
#include "common/ml.h"
#include "common/hist.h"

static int top_bit(uint64_t v)
{
	int e = 0;

	while (v >>= 1)
		e++;
	return e;
}

static size_t bucket_of(int64_t ms)
{
	uint64_t v = ms < 0 ? 0 : (uint64_t)ms;
	int e;
	size_t i;

	if (v < 16)
		return (size_t)v;
	e = top_bit(v);
	i = 16 + 8 * (size_t)(e - 4) + (size_t)((v >> (e - 3)) & 7);
	return i < ML_HIST_BUCKETS ? i : ML_HIST_BUCKETS - 1;
}

/* The lowest and highest value of bucket i. */
static void bucket_range(size_t i, double *lo, double *hi)
{
	size_t e, sub;

	if (i < 16) {
		*lo = *hi = (double)i;
		return;
	}
	e = (i - 16) / 8 + 4;
	sub = (i - 16) % 8;
	*lo = (double)((8 + sub) << (e - 3));
	*hi = (double)((9 + sub) << (e - 3)) - 1;
}

void ml_hist_add(struct ml_hist *h, int64_t ms)
{
	h->n[bucket_of(ms)]++;
	h->total++;
}

void ml_hist_merge(struct ml_hist *dst, const struct ml_hist *src)
{
	size_t i;

	for (i = 0; i < ML_HIST_BUCKETS; i++)
		dst->n[i] += src->n[i];
	dst->total += src->total;
}

double ml_hist_quantile(const struct ml_hist *h, double q)
{
	uint64_t rank, seen = 0;
	double lo, hi;
	size_t i;

	if (!h->total)
		return -1;
	if (q <= 0)
		q = 1e-9;
	if (q > 1)
		q = 1;
	rank = (uint64_t)(q * (double)h->total);
	if ((double)rank < q * (double)h->total)
		rank++;
	for (i = 0; i < ML_HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= rank)
			break;
	}
	if (i == ML_HIST_BUCKETS)
		i--;
	bucket_range(i, &lo, &hi);
	return (lo + hi) / 2;
}

json_t *ml_hist_to_json(const struct ml_hist *h)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < ML_HIST_BUCKETS; i++)
		if (h->n[i])
			json_array_append_new(
				a, json_pack("[I,I]", (json_int_t)i,
					     (json_int_t)h->n[i]));
	return a;
}

int ml_hist_add_json(struct ml_hist *h, const json_t *arr)
{
	json_t *e;
	size_t k;

	if (!json_is_array(arr))
		return ml_err_set(ML_EPROTO, "a histogram must be an array");
	json_array_foreach(arr, k, e) {
		json_int_t i = json_integer_value(json_array_get(e, 0));
		json_int_t c = json_integer_value(json_array_get(e, 1));

		if (!json_is_integer(json_array_get(e, 0)) ||
		    !json_is_integer(json_array_get(e, 1)) || i < 0 ||
		    i >= ML_HIST_BUCKETS || c < 0)
			return ml_err_set(ML_EPROTO,
					  "histogram entry %zu is not "
					  "[bucket, count]",
					  k);
		h->n[i] += (uint64_t)c;
		h->total += (uint64_t)c;
	}
	return 0;
}
