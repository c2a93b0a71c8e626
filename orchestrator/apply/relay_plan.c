/*
 * The relay plan (see relay_plan.h): a greedy, round-based spanning of
 * the hosts. With one seed and every host cold, a round doubles the
 * hosts that hold the image: 1 + ceil(log2 n) rounds for n hosts, the
 * controller sending each blob once. Sizes: O(n * m) per round for the
 * state and O(n^2 * m) to choose the sources, fine for hundreds of hosts
 * and the tens of blobs of an image.
 */
#include "common/ml.h"
#include "orchestrator/apply/relay_plan.h"

static bool has(const struct ml_relay_in *in, const unsigned char *have,
		size_t h, size_t b)
{
	return have[h * in->nblobs + b] != 0;
}

static bool is_direct(const struct ml_relay_in *in, size_t h)
{
	return in->direct && in->direct[h];
}

static int64_t lacking(const struct ml_relay_in *in, size_t h)
{
	int64_t sum = 0;
	size_t b;

	for (b = 0; b < in->nblobs; b++)
		if (!has(in, in->have, h, b))
			sum += in->sizes[b] + 1; /* an empty blob counts */
	return sum;
}

/* The hosts that lack anything into order, most lacking first, then the
 * lowest index; need[h] what h lacks. Returns how many. */
static size_t order_by_need(size_t *order, int64_t *need,
			    const struct ml_relay_in *in)
{
	size_t h, i, j, norder = 0;

	for (h = 0; h < in->nhosts; h++) {
		need[h] = lacking(in, h);
		if (need[h])
			order[norder++] = h;
	}
	/* insertion sort: stable */
	for (i = 1; i < norder; i++)
		for (j = i; j > 0 && need[order[j]] > need[order[j - 1]]; j--) {
			size_t t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	return norder;
}

/* orphan[b]: no relaying host holds blob b. */
static void orphans(bool *orphan, const struct ml_relay_in *in)
{
	size_t b, h;

	for (b = 0; b < in->nblobs; b++) {
		orphan[b] = true;
		for (h = 0; h < in->nhosts && orphan[b]; h++)
			if (!is_direct(in, h) && has(in, in->have, h, b))
				orphan[b] = false;
	}
}

static void add_xfer(struct ml_relay_round *r, int from, int to,
		     const struct ml_relay_in *in, const bool *pick)
{
	struct ml_relay_xfer *x;
	size_t b;

	r->x = ml_xrealloc(r->x, (r->n + 1) * sizeof(*r->x));
	x = &r->x[r->n++];
	memset(x, 0, sizeof(*x));
	x->from = from;
	x->to = to;
	x->blobs = ml_xcalloc(in->nblobs ? in->nblobs : 1, sizeof(size_t));
	for (b = 0; b < in->nblobs; b++)
		if (pick[b]) {
			x->blobs[x->nblobs++] = b;
			x->bytes += in->sizes[b];
		}
}

void ml_relay_plan_round(struct ml_relay_round *out,
			 const struct ml_relay_in *in)
{
	size_t n = in->nhosts, m = in->nblobs, i, j, h, b;
	size_t *order = ml_xcalloc(n ? n : 1, sizeof(*order));
	int64_t *need = ml_xcalloc(n ? n : 1, sizeof(*need));
	bool *orphan = ml_xcalloc(m ? m : 1, sizeof(*orphan));
	bool *pick = ml_xcalloc(m ? m : 1, sizeof(*pick));
	bool *busy = ml_xcalloc(n ? n : 1, sizeof(*busy)); /* receiving */
	bool *from_ctl = ml_xcalloc(n ? n : 1, sizeof(*from_ctl));
	int *load = ml_xcalloc(n ? n : 1, sizeof(*load));
	size_t norder = 0;
	int seeds = 0;

	memset(out, 0, sizeof(*out));
	norder = order_by_need(order, need, in);
	orphans(orphan, in);

	/* the controller: direct hosts, then the seeds */
	for (i = 0; i < norder; i++) {
		h = order[i];
		if (!is_direct(in, h))
			continue;
		for (b = 0; b < m; b++)
			pick[b] = !has(in, in->have, h, b);
		add_xfer(out, ML_RELAY_FROM_CONTROLLER, (int)h, in, pick);
		busy[h] = from_ctl[h] = true;
	}
	for (i = 0; i < norder && seeds < in->seeds; i++) {
		bool any = false;

		h = order[i];
		if (is_direct(in, h))
			continue;
		for (b = 0; b < m; b++) {
			pick[b] = orphan[b] && !has(in, in->have, h, b);
			any = any || pick[b];
		}
		if (!any)
			continue;
		add_xfer(out, ML_RELAY_FROM_CONTROLLER, (int)h, in, pick);
		busy[h] = from_ctl[h] = true;
		seeds++;
	}

	/* the hosts among themselves */
	for (i = 0; i < norder; i++) {
		int64_t best_bytes = 0;
		size_t best = n;

		h = order[i];
		if (busy[h] || is_direct(in, h))
			continue;
		for (j = 0; j < n; j++) {
			int64_t bytes = 0;

			if (j == h || is_direct(in, j) || from_ctl[j] ||
			    load[j] >= in->fanout ||
			    (in->bad && in->bad[h * n + j]))
				continue;
			for (b = 0; b < m; b++)
				if (!has(in, in->have, h, b) &&
				    has(in, in->have, j, b))
					bytes += in->sizes[b] + 1;
			if (bytes > best_bytes ||
			    (bytes == best_bytes && bytes && best < n &&
			     load[j] < load[best])) {
				best_bytes = bytes;
				best = j;
			}
		}
		if (best == n)
			continue;
		for (b = 0; b < m; b++)
			pick[b] = !has(in, in->have, h, b) &&
				  has(in, in->have, best, b);
		add_xfer(out, (int)best, (int)h, in, pick);
		busy[h] = true;
		load[best]++;
	}
	free(order);
	free(need);
	free(orphan);
	free(pick);
	free(busy);
	free(from_ctl);
	free(load);
}

void ml_relay_plan_chain(struct ml_relay_round *out,
			 const struct ml_relay_in *in)
{
	size_t n = in->nhosts, m = in->nblobs, i, k, b, norder, placed = 0;
	size_t nchains = in->seeds > 0 ? (size_t)in->seeds : 1;
	size_t *order = ml_xcalloc(n ? n : 1, sizeof(*order));
	int64_t *need = ml_xcalloc(n ? n : 1, sizeof(*need));
	bool *orphan = ml_xcalloc(m ? m : 1, sizeof(*orphan));
	bool *used = ml_xcalloc(n ? n : 1, sizeof(*used));
	size_t *tail = ml_xcalloc(nchains, sizeof(*tail));
	size_t ntails = 0, cand = 0;
	bool any = false, grew;

	memset(out, 0, sizeof(*out));
	norder = order_by_need(order, need, in);
	orphans(orphan, in);
	for (b = 0; b < m; b++)
		any = any || orphan[b];
	/* relaying hosts only: every one of them lacks every orphan */
	for (i = 0; i < norder; i++)
		if (!is_direct(in, order[i]))
			order[cand++] = order[i];
	if (!any || cand < 2 || in->chain < 2)
		goto out;
	/* the heads, from the controller */
	for (i = 0; i < cand && ntails < nchains && placed < in->chain; i++) {
		tail[ntails++] = order[i];
		used[order[i]] = true;
		add_xfer(out, ML_RELAY_FROM_CONTROLLER, (int)order[i], in,
			 orphan);
		placed++;
	}
	/* then each chain in turn takes the first host left that its tail
	 * may send to */
	do {
		grew = false;
		for (k = 0; k < ntails && placed < in->chain; k++) {
			for (i = 0; i < cand; i++) {
				size_t h = order[i];

				if (used[h] ||
				    (in->bad && in->bad[h * n + tail[k]]))
					continue;
				add_xfer(out, (int)tail[k], (int)h, in, orphan);
				used[h] = true;
				tail[k] = h;
				placed++;
				grew = true;
				break;
			}
		}
	} while (grew && placed < in->chain);
	if (placed == ntails) /* nobody to pass on to: not a chain */
		ml_relay_round_release(out);
out:
	free(order);
	free(need);
	free(orphan);
	free(used);
	free(tail);
}

void ml_relay_round_release(struct ml_relay_round *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->x[i].blobs);
	free(r->x);
	memset(r, 0, sizeof(*r));
}

void ml_relay_plan(struct ml_relay_plan *out, const struct ml_relay_in *in)
{
	size_t cells = in->nhosts * in->nblobs, limit = cells + 2, i, k;
	unsigned char *have = ml_xmalloc(cells ? cells : 1);
	struct ml_relay_in cur = *in;
	struct ml_relay_round r;

	memset(out, 0, sizeof(*out));
	memcpy(have, in->have, cells);
	cur.have = have;
	for (;;) {
		if (in->chain && !out->nrounds)
			ml_relay_plan_chain(&r, &cur);
		else
			r.n = 0;
		if (!r.n)
			ml_relay_plan_round(&r, &cur);
		if (!r.n)
			break;
		if (out->nrounds >= limit)
			BUG("relay plan makes no progress");
		for (i = 0; i < r.n; i++)
			for (k = 0; k < r.x[i].nblobs; k++)
				have[(size_t)r.x[i].to * in->nblobs +
				     r.x[i].blobs[k]] = 1;
		out->rounds = ml_xrealloc(out->rounds,
					  (out->nrounds + 1) * sizeof(r));
		out->rounds[out->nrounds++] = r;
	}
	free(have);
}

void ml_relay_plan_release(struct ml_relay_plan *p)
{
	size_t i;

	for (i = 0; i < p->nrounds; i++)
		ml_relay_round_release(&p->rounds[i]);
	free(p->rounds);
	memset(p, 0, sizeof(*p));
}

void ml_relay_plan_format(struct ml_buf *out, const struct ml_relay_plan *p)
{
	size_t i, j, k;

	for (i = 0; i < p->nrounds; i++) {
		ml_buf_addf(out, "%zu:", i + 1);
		for (j = 0; j < p->rounds[i].n; j++) {
			const struct ml_relay_xfer *x = &p->rounds[i].x[j];

			if (x->from == ML_RELAY_FROM_CONTROLLER)
				ml_buf_addstr(out, " c");
			else
				ml_buf_addf(out, " %d", x->from);
			ml_buf_addf(out, ">%d[", x->to);
			for (k = 0; k < x->nblobs; k++)
				ml_buf_addf(out, "%s%zu", k ? "," : "",
					    x->blobs[k]);
			ml_buf_addch(out, ']');
		}
		ml_buf_addch(out, '\n');
	}
}
