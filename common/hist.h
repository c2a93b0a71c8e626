#ifndef ML_HIST_H
#define ML_HIST_H

/*
 * A latency histogram in milliseconds with bounded relative error, small
 * enough to send over the protocol and to merge: the agent fills one per
 * HAProxy server from the per-request log, the controller adds those of
 * one revision together and reads percentiles from the sum. Exact below
 * 16 ms; above, eight buckets per doubling, so a percentile read as its
 * bucket's middle is within 1/16 (6.25%) of the true value.
 */

#include <jansson.h>
#include <stdint.h>

#define ML_HIST_BUCKETS 240 /* covers 0 .. 2^31 ms */

struct ml_hist {
	uint64_t n[ML_HIST_BUCKETS];
	uint64_t total;
};

/* Count one value (negative counts as 0). */
void ml_hist_add(struct ml_hist *h, int64_t ms);

/* Add every count of src to dst. */
void ml_hist_merge(struct ml_hist *dst, const struct ml_hist *src);

/*
 * The q-quantile (0 < q <= 1) in ms: the middle of the bucket holding the
 * value of rank ceil(q * total). -1 when the histogram is empty.
 */
double ml_hist_quantile(const struct ml_hist *h, double q);

/* The non-empty buckets as [[index, count], ...] (new reference). */
json_t *ml_hist_to_json(const struct ml_hist *h);

/*
 * Add to h the counts of an array made by ml_hist_to_json (borrowed).
 * Entries that are not [index in range, count >= 0] are ML_EPROTO and
 * leave h as far as it got.
 */
int ml_hist_add_json(struct ml_hist *h, const json_t *arr);

#endif
