/*
 * Weighted canary steps (rollout.canary: [{weight: 10%, for: 2m}, ...]),
 * run by the rollout engine before its batches (rollout_int.h).
 *
 * The canary host is the first app host that needs a change. Its new
 * containers start in their free slots, become healthy, pass the golden
 * requests (verify.c) while the balancers keep them in maintenance; then
 * each step sets HAProxy server weights through the runtime API (lb_set,
 * no reload) so that the new revision's servers, however many, receive
 * the step's share of the requests beside every server of the old
 * revision, and judges the step by rollout.analysis every interval (at
 * most 10 s):
 *
 *   measure  the balancers' per-request logs (the agent's lb_requests,
 *            the source `mlctl status` reads) over the step so far: the
 *            new servers' requests, errors (5xx or no answer) and p99
 *            against the old servers' in the same window; never a
 *            running average
 *   abort    at once when, with at least min_requests, the error rate or
 *            p99 is over its limit (absolute, or as a ratio to the old
 *            revision's, p99 only past p99_margin); at the step's end
 *            with too few requests (unless too_few: pass); on `mlctl
 *            abort`, on a manual step's timeout
 *   extend   otherwise, until the step's time is out (or `mlctl
 *            promote` for a manual step)
 *   promote  the step passed: the next step, or after the last, equal
 *            weights and the batches
 *
 * Before each check the weights follow the servers the balancer sees up
 * (an old server down under load would hand its share to the canary too).
 * Every check and decision is printed and recorded as a "canary" event of
 * the revision with its numbers. On abort the new servers go to
 * maintenance at once (then back to weight 100, still out), the old ones
 * get back weight 100, the new containers stop: the fleet is as it was,
 * and the rollout fails with ML_EDEPLOY (exit 7).
 *
 * Manual steps meet `mlctl promote` / `mlctl abort` through the agent's
 * canary_gate on the first balancer (the fleet lock's host); the lease is
 * renewed by deploy's thread meanwhile.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/hist.h"
#include "common/log.h"
#include "orchestrator/apply/rollout_int.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"

#include <time.h>

#define NAME_LEN 160
#define LB_UP_MS 60000

struct canary {
	struct ml_rollout_state *st;
	struct ml_rollout *ro;
	size_t host;		   /* the canary host in st->app */
	char (*srv_new)[NAME_LEN]; /* the new revision's servers */
	size_t nnew;
	char **started; /* ids of the containers started here */
	size_t nstarted;
	char (*srv_old)[NAME_LEN]; /* every server of the old revision */
	size_t nold;
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000),
			      (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

void ml_canary_weights(int pct, int n_new, int n_old, int *w_new, int *w_old)
{
	double best = 2, want = pct / 100.0;
	int wo;

	*w_new = *w_old = 1;
	if (n_new <= 0 || n_old <= 0 || pct <= 0 || pct >= 100)
		return;
	/* from the largest old weight down: ties keep the finer weights */
	for (wo = 256; wo >= 1; wo--) {
		double x = want * n_old * wo / ((1 - want) * n_new), share, err;
		int wn = (int)(x + 0.5);

		if (wn < 1)
			wn = 1;
		if (wn > 256)
			wn = 256;
		share = (double)n_new * wn /
			((double)n_new * wn + (double)n_old * wo);
		err = share > want ? share - want : want - share;
		if (err < best - 1e-12) {
			best = err;
			*w_new = wn;
			*w_old = wo;
		}
	}
}

static bool is_new(const struct canary *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nnew; i++)
		if (!strcmp(c->srv_new[i], name))
			return true;
	return false;
}

/* Every running container of another spec, on every app host. */
static void find_old(struct canary *c)
{
	struct ml_rollout_state *st = c->st;
	size_t i, k, cap = 0;

	for (i = 0; i < st->napp; i++)
		cap += st->app[i].nobs;
	c->srv_old = ml_xcalloc(cap + 1, sizeof(*c->srv_old));
	for (i = 0; i < st->napp; i++) {
		struct host_state *hs = &st->app[i];

		for (k = 0; k < hs->nobs; k++) {
			const struct ml_obs_container *o = &hs->obs[k];
			char name[NAME_LEN];

			if (!o->running || o->replica < 0 || !o->slot ||
			    (o->spec && !strcmp(o->spec, c->ro->spec)))
				continue;
			ml_ro_server_name(name, sizeof(name),
					  hs->h->target->name, o->replica,
					  o->slot);
			if (!is_new(c, name))
				snprintf(c->srv_old[c->nold++], NAME_LEN, "%s",
					 name);
		}
	}
}

/* Give the new servers w_new and the old w_old, all ready. */
static int set_weights(struct canary *c, int w_new, int w_old)
{
	size_t i;
	int rc;

	/* old first: the new servers never take more than their share */
	for (i = 0; i < c->nold; i++) {
		rc = ml_ro_lb_set_weight(c->st, c->srv_old[i], "ready", w_old);
		if (rc < 0)
			return rc;
	}
	for (i = 0; i < c->nnew; i++) {
		rc = ml_ro_lb_set_weight(c->st, c->srv_new[i], "ready", w_new);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static bool is_old(const struct canary *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nold; i++)
		if (!strcmp(c->srv_old[i], name))
			return true;
	return false;
}

/*
 * Keep the step's share when servers come and go: count the new and old
 * servers the first balancer sees up (a server whose checks fail under
 * load is down, and its share went to the others, the canary included),
 * and when the counts changed since *up_new / *up_old, set the weights
 * for the servers up. Weights are the same on every balancer.
 */
static int reweight(struct canary *c, size_t k, int pct, int *up_new,
		    int *up_old)
{
	struct ml_host_session *h;
	json_t *res = NULL, *e;
	int n_new = 0, n_old = 0, w_new, w_old, rc;
	size_t i;

	h = ml_ro_lb_take(c->st, 0);
	rc = ml_ro_lb_done(c->st, 0,
			   ml_op_lb_status(h, c->ro->cfg->playbook->app, &res));
	if (rc < 0)
		return rc;
	json_array_foreach(json_object_get(res, "servers"), i, e)
	{
		const char *name =
			json_string_value(json_object_get(e, "name"));
		const char *op =
			json_string_value(json_object_get(e, "op_state"));

		if (!name || !op || strncmp(op, "UP", 2))
			continue;
		if (is_new(c, name))
			n_new++;
		else if (is_old(c, name))
			n_old++;
	}
	json_decref(res);
	if ((n_new == *up_new && n_old == *up_old) || !n_new || !n_old)
		return 0;
	ml_canary_weights(pct, n_new, n_old, &w_new, &w_old);
	rc = set_weights(c, w_new, w_old);
	if (rc < 0)
		return rc;
	ml_ro_event(c->ro, "canary", "reweight", "ok",
		    "step %zu: %d of %zu new and %d of %zu old servers up: "
		    "weight %d on new, %d on old",
		    k + 1, n_new, c->nnew, n_old, c->nold, w_new, w_old);
	*up_new = n_new;
	*up_old = n_old;
	return 0;
}

/*
 * Put the fleet back: the new servers out at once, the old ones at their
 * full weight, the new containers stopped. Keeps the error message.
 */
static void undo(struct canary *c)
{
	struct host_state *hs = &c->st->app[c->host];
	char *keep = ml_xstrdup(ml_err_msg());
	size_t i;

	for (i = 0; i < c->nnew; i++) {
		if (ml_ro_lb_set_weight(c->st, c->srv_new[i], "maint", -1) <
			    0 ||
		    ml_ro_lb_set_weight(c->st, c->srv_new[i], "maint", 100) < 0)
			ml_warn("cannot take '%s' out: %s", c->srv_new[i],
				ml_err_msg());
	}
	for (i = 0; i < c->nold; i++)
		if (ml_ro_lb_set_weight(c->st, c->srv_old[i], "ready", 100) < 0)
			ml_warn("cannot give '%s' its weight back: %s",
				c->srv_old[i], ml_err_msg());
	for (i = 0; i < c->nstarted; i++)
		if (ml_ro_stop(c->ro, hs, c->started[i]) < 0)
			ml_warn("cannot stop the canary container %.12s: %s",
				c->started[i], ml_err_msg());
	ml_err_set(ML_EDEPLOY, "%s", keep);
	free(keep);
}

/* Start, check and verify the new containers of the canary host, out of
 * the balancers' rotation. */
static int start_new(struct canary *c)
{
	struct host_state *hs = &c->st->app[c->host];
	const char *host = hs->h->target->name;
	int r, rc;

	c->srv_new = ml_xcalloc((size_t)hs->plan.nrep + 1, sizeof(*c->srv_new));
	c->started = ml_xcalloc((size_t)hs->plan.nrep + 1, sizeof(char *));
	for (r = 0; r < hs->plan.nrep; r++) {
		struct ml_replica_plan *rp = &hs->plan.rep[r];
		char *id = NULL;

		ml_ro_server_name(c->srv_new[c->nnew++], NAME_LEN, host,
				  rp->replica, rp->slot);
		if (!rp->start)
			continue;
		if (rp->clear_id) {
			rc = ml_ro_lb_retire(c->st, host, rp->replica,
					     rp->slot);
			if (rc == 0)
				rc = ml_ro_stop(c->ro, hs, rp->clear_id);
			if (rc < 0)
				return rc;
		}
		rc = ml_ro_start(c->ro, hs, rp->replica, rp->slot,
				 rp->resume_id, &id);
		if (rc < 0)
			return rc;
		c->started[c->nstarted++] = id;
		rc = ml_ro_wait_healthy(c->ro, hs, id, rp->replica, rp->slot);
		if (rc == 0)
			rc = ml_verify_run(c->st, hs, rp->replica, rp->slot,
					   rp->old_id ? rp->old_slot : 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The new and old servers' requests over the last window_ms, from every
 * balancer's request log. */
static int measure(struct canary *c, int64_t window_ms,
		   struct ml_canary_side *nw, struct ml_canary_side *old)
{
	struct ml_rollout_state *st = c->st;
	struct ml_host_session *h;
	size_t i, k;
	json_t *res, *e;
	int rc;

	memset(nw, 0, sizeof(*nw));
	memset(old, 0, sizeof(*old));
	if (window_ms < 1000)
		window_ms = 1000;
	for (i = 0; i < st->nlb; i++) {
		res = NULL;
		h = ml_ro_lb_take(st, i);
		rc = ml_ro_lb_done(st, i,
				   ml_op_lb_requests(h,
						     c->ro->cfg->playbook->app,
						     window_ms, &res));
		if (rc < 0) {
			json_decref(res);
			return rc;
		}
		json_array_foreach(json_object_get(res, "servers"), k, e)
		{
			const char *name =
				json_string_value(json_object_get(e, "name"));
			struct ml_canary_side *s;
			size_t j;

			if (!name)
				continue;
			if (is_new(c, name)) {
				s = nw;
			} else {
				for (j = 0; j < c->nold; j++)
					if (!strcmp(c->srv_old[j], name))
						break;
				if (j == c->nold)
					continue;
				s = old;
			}
			s->req += (uint64_t)json_integer_value(
				json_object_get(e, "requests"));
			s->err += (uint64_t)json_integer_value(
				json_object_get(e, "errors"));
			ml_hist_add_json(&s->hist, json_object_get(e, "hist"));
		}
		json_decref(res);
	}
	return 0;
}

static const char *verdict_word(enum ml_canary_verdict v)
{
	return v == ML_CANARY_PROMOTE ? "promote"
	       : v == ML_CANARY_ABORT ? "abort"
				      : "extend";
}

enum ml_canary_verdict ml_canary_judge(const struct ml_analysis_spec *a,
				       const struct ml_canary_side *nw,
				       const struct ml_canary_side *old,
				       bool time_out, char *why, size_t n)
{
	double rate = nw->req ? (double)nw->err / (double)nw->req : 0;
	double orate = old->req ? (double)old->err / (double)old->req : 0;
	double p99 = ml_hist_quantile(&nw->hist, 0.99);
	double op99 = ml_hist_quantile(&old->hist, 0.99);

	if (nw->req < (uint64_t)a->min_requests) {
		if (!time_out) {
			snprintf(why, n, "%llu of %d requests needed so far",
				 (unsigned long long)nw->req, a->min_requests);
			return ML_CANARY_EXTEND;
		}
		snprintf(why, n, "too few requests to judge: %llu of %d%s",
			 (unsigned long long)nw->req, a->min_requests,
			 a->pass_on_too_few ? " (too_few: pass)" : "");
		return a->pass_on_too_few ? ML_CANARY_PROMOTE : ML_CANARY_ABORT;
	}
	if (rate > a->max_error_rate) {
		snprintf(why, n, "error rate %.2f%% is over %.2f%%", rate * 100,
			 a->max_error_rate * 100);
		return ML_CANARY_ABORT;
	}
	if (a->max_error_ratio > 0 && nw->err > 0 && old->req &&
	    rate > a->max_error_ratio * orate) {
		snprintf(why, n,
			 "error rate %.2f%% is over %g x the old "
			 "revision's %.2f%%",
			 rate * 100, a->max_error_ratio, orate * 100);
		return ML_CANARY_ABORT;
	}
	if (a->max_p99_ms > 0 && p99 > (double)a->max_p99_ms) {
		snprintf(why, n, "p99 %.0f ms is over %lld ms", p99,
			 (long long)a->max_p99_ms);
		return ML_CANARY_ABORT;
	}
	if (a->max_p99_ratio > 0 && old->req && op99 >= 0 &&
	    p99 > a->max_p99_ratio * op99 &&
	    p99 > op99 + (double)a->p99_margin_ms) {
		snprintf(why, n,
			 "p99 %.0f ms is over %g x the old revision's "
			 "%.0f ms (and %lld ms more)",
			 p99, a->max_p99_ratio, op99,
			 (long long)a->p99_margin_ms);
		return ML_CANARY_ABORT;
	}
	snprintf(why, n, "within limits");
	return time_out ? ML_CANARY_PROMOTE : ML_CANARY_EXTEND;
}

/* The manual gate on the lock's host (the first balancer). */
static int gate(struct canary *c, const char *action, size_t step, json_t **res)
{
	struct ml_host_session *h = ml_ro_lb_take(c->st, 0);

	return ml_ro_lb_done(c->st, 0,
			     ml_op_canary_gate(h, c->ro->cfg->playbook->app,
					       action, c->ro->revision,
					       (int64_t)step, NULL, NULL, res));
}

/* One step: set weights, check every interval until a verdict. */
static int run_step(struct canary *c, size_t k)
{
	const struct ml_rollout_spec *rs = &c->ro->cfg->playbook->rollout;
	const struct ml_canary_step *s = &rs->steps[k];
	const struct ml_analysis_spec *a = &rs->analysis;
	int64_t t0, now, end;
	int w_new, w_old, rc;
	struct ml_canary_side nw, old;
	enum ml_canary_verdict v = ML_CANARY_EXTEND;
	char why[256], limit[64];
	int up_new, up_old;
	size_t i;

	ml_canary_weights(s->weight_pct, (int)c->nnew, (int)c->nold, &w_new,
			  &w_old);
	rc = set_weights(c, w_new, w_old);
	if (rc < 0)
		return rc;
	up_new = (int)c->nnew;
	up_old = (int)c->nold;
	if (k == 0)
		for (i = 0; i < c->nnew; i++) {
			rc = ml_ro_lb_wait_up(c->st, c->srv_new[i], LB_UP_MS);
			if (rc <= 0)
				return rc < 0 ? rc
					      : ml_err_set(ML_EDEPLOY,
							   "the load balancer "
							   "did not see '%s' "
							   "up within %d s",
							   c->srv_new[i],
							   LB_UP_MS / 1000);
		}
	rc = reweight(c, k, s->weight_pct, &up_new, &up_old);
	if (rc < 0)
		return rc;
	if (s->manual) {
		json_t *res = NULL;

		rc = gate(c, "open", k + 1, &res);
		json_decref(res);
		if (rc < 0)
			return rc;
		snprintf(limit, sizeof(limit),
			 "until mlctl promote or abort, at most %llds",
			 (long long)(s->timeout_ms / 1000));
	} else {
		snprintf(limit, sizeof(limit), "for %llds",
			 (long long)(s->for_ms / 1000));
	}
	t0 = ml_mono_ms();
	end = t0 + (s->manual ? s->timeout_ms : s->for_ms);
	ml_ro_event(c->ro, "canary", "step", "started",
		    "step %zu: %d%% of requests to revision %lld (weight %d "
		    "on %zu new server%s, %d on %zu old) %s",
		    k + 1, s->weight_pct, (long long)c->ro->revision, w_new,
		    c->nnew, c->nnew == 1 ? "" : "s", w_old, c->nold, limit);
	for (;;) {
		bool time_out = false, asked = false;
		const char *by = NULL;
		json_t *res = NULL;
		int64_t next;

		now = ml_mono_ms();
		next = now + a->interval_ms;
		if (next > end)
			next = end;
		while ((now = ml_mono_ms()) < next) {
			if (c->ro->interrupted && *c->ro->interrupted) {
				c->ro->stopped = true;
				return ml_err_set(ML_EINTR,
						  "interrupted at canary step "
						  "%zu: the canary was taken "
						  "out",
						  k + 1);
			}
			sleep_ms(next - now < 200 ? next - now : 200);
		}
		time_out = now >= end;
		if (s->manual) {
			rc = gate(c, "get", k + 1, &res);
			if (rc < 0)
				return rc;
			by = json_string_value(
				json_object_get(res, "decision"));
			asked = by != NULL;
		}
		rc = reweight(c, k, s->weight_pct, &up_new, &up_old);
		if (rc == 0)
			rc = measure(c, now - t0, &nw, &old);
		if (rc < 0) {
			json_decref(res);
			return rc;
		}
		if (s->manual) {
			/* the numbers can still abort; the timeout always
			 * does; the operator decides otherwise */
			v = ml_canary_judge(a, &nw, &old, false, why,
					    sizeof(why));
			if (v != ML_CANARY_ABORT && asked &&
			    !strcmp(by, "abort")) {
				v = ML_CANARY_ABORT;
				snprintf(why, sizeof(why),
					 "mlctl abort by %.200s",
					 json_string_value(
						 json_object_get(res, "by"))
						 ?: "?");
			} else if (v != ML_CANARY_ABORT && asked) {
				v = ML_CANARY_PROMOTE;
				snprintf(why, sizeof(why),
					 "mlctl promote by %.200s",
					 json_string_value(
						 json_object_get(res, "by"))
						 ?: "?");
			} else if (v != ML_CANARY_ABORT && time_out) {
				v = ML_CANARY_ABORT;
				snprintf(why, sizeof(why),
					 "no decision within the step's "
					 "timeout (%llds)",
					 (long long)(s->timeout_ms / 1000));
			}
		} else {
			v = ml_canary_judge(a, &nw, &old, time_out, why,
					    sizeof(why));
		}
		json_decref(res);
		ml_ro_event(
			c->ro, "canary",
			v == ML_CANARY_EXTEND ? "check" : "decision",
			verdict_word(v),
			"step %zu %d%%, %llds: new %llu req, %llu err "
			"(%.2f%%), p99 %.0f ms; old %llu req, %llu err "
			"(%.2f%%), p99 %.0f ms; %s",
			k + 1, s->weight_pct, (long long)((now - t0) / 1000),
			(unsigned long long)nw.req, (unsigned long long)nw.err,
			nw.req ? 100.0 * (double)nw.err / (double)nw.req : 0,
			ml_hist_quantile(&nw.hist, 0.99),
			(unsigned long long)old.req,
			(unsigned long long)old.err,
			old.req ? 100.0 * (double)old.err / (double)old.req : 0,
			ml_hist_quantile(&old.hist, 0.99), why);
		if (v == ML_CANARY_PROMOTE)
			break;
		if (v == ML_CANARY_ABORT)
			return ml_err_set(ML_EDEPLOY,
					  "canary aborted at step %zu (%d%%): "
					  "%s",
					  k + 1, s->weight_pct, why);
	}
	return 0;
}

int ml_canary_run(struct ml_rollout_state *st)
{
	struct canary c = {.st = st, .ro = st->ro};
	const struct ml_rollout_spec *rs = &st->ro->cfg->playbook->rollout;
	bool manual = false;
	json_t *res = NULL;
	size_t i, k;
	int rc = 0;

	for (c.host = 0; c.host < st->napp; c.host++)
		if (st->app[c.host].h->rc == 0 && st->app[c.host].planned &&
		    st->app[c.host].plan.changes)
			break;
	if (c.host == st->napp)
		return 0;
	if (!st->nlb)
		return ml_err_set(ML_EINVALID,
				  "weighted canary steps need a load balancer "
				  "(load_balancer.hosts)");
	/* the servers that would be new, to know the old ones first */
	{
		struct host_state *hs = &st->app[c.host];
		int r;

		c.srv_new = ml_xcalloc((size_t)hs->plan.nrep + 1,
				       sizeof(*c.srv_new));
		for (r = 0; r < hs->plan.nrep; r++)
			ml_ro_server_name(c.srv_new[c.nnew++], NAME_LEN,
					  hs->h->target->name,
					  hs->plan.rep[r].replica,
					  hs->plan.rep[r].slot);
		find_old(&c);
		free(c.srv_new);
		c.srv_new = NULL;
		c.nnew = 0;
	}
	if (!c.nold) {
		ml_ro_event(st->ro, "canary", "step", "skipped",
			    "no other revision serves: nothing to compare "
			    "with");
		free(c.srv_old);
		return 0;
	}
	rc = start_new(&c);
	if (rc < 0)
		goto out;
	for (k = 0; k < rs->nsteps && rc == 0; k++) {
		manual |= rs->steps[k].manual;
		rc = run_step(&c, k);
	}
	if (rc == 0) {
		/* equal weights, then the batches finish the canary host */
		rc = set_weights(&c, 100, 100);
		if (rc == 0)
			rc = ml_ro_observe_again(st, c.host);
		if (rc == 0)
			ml_ro_event(st->ro, "canary", "promoted", "ok",
				    "revision %lld passed %zu step%s; the "
				    "batches follow",
				    (long long)st->ro->revision, rs->nsteps,
				    rs->nsteps == 1 ? "" : "s");
	}
out:
	if (manual) {
		char *keep = ml_xstrdup(ml_err_msg());

		if (gate(&c, "close", 0, &res) < 0)
			ml_warn("cannot close the canary gate: %s",
				ml_err_msg());
		json_decref(res);
		ml_err_set(rc, "%s", keep);
		free(keep);
	}
	if (rc < 0) {
		int code = rc == ML_EINTR || rc == ML_ELOCKED ? rc : ML_EDEPLOY;
		char *keep = ml_xstrdup(ml_err_msg());

		/* a lost lease: the fleet is someone else's, touch nothing */
		if (rc != ML_ELOCKED) {
			ml_ro_event(st->ro, "canary", "undo", "started", "%s",
				    keep);
			undo(&c);
			ml_ro_event(st->ro, "canary", "undo", "ok",
				    "the new revision is out, the old one "
				    "serves as before");
		}
		rc = ml_err_set(code, "%s", keep);
		free(keep);
		if (code == ML_EDEPLOY)
			st->halt = true;
	}
	for (i = 0; i < c.nstarted; i++)
		free(c.started[i]);
	free(c.started);
	free(c.srv_new);
	free(c.srv_old);
	return rc;
}
