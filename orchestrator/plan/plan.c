/*
 * The planner (see plan.h). For each wanted replica r, among the
 * containers labelled with r:
 *   - a running container with the wanted spec is the target; if it is in
 *     slot s, it is kept and whatever is in the other slot is drained and
 *     stopped after the load balancer serves s (with standby, a paused
 *     container there stays: it is the standby);
 *   - else a paused container with the wanted spec (a standby) is resumed
 *     in its slot, and the other slot drained and stopped, as for a start;
 *   - "stopped" is paused instead by the rollout when standby is on;
 *   - otherwise a new container starts in a slot chosen so that the
 *     container serving now keeps serving until the new one is healthy:
 *     an empty slot first, else the slot whose container is not running,
 *     else the slot holding the older revision (it is cleared first).
 * Containers with a missing or bad slot/replica label, of replicas beyond
 * the wanted count, or duplicates in one slot, are stray and stopped at
 * the end. Sizes: at most ML_MAX_REPLICAS replicas, any number of
 * containers.
 */
#include "common/ml.h"
#include "orchestrator/plan/plan.h"

static char other(char slot)
{
	return slot == 'a' ? 'b' : 'a';
}

static void add_stray(struct ml_host_plan *p, const char *id)
{
	p->stray = ml_xreallocarray(p->stray, p->nstray + 1,
				    sizeof(*p->stray));
	p->stray[p->nstray++] = ml_xstrdup(id);
}

static char *dup_or_null(const struct ml_obs_container *c)
{
	return c ? ml_xstrdup(c->id) : NULL;
}

static bool is_target(const struct ml_obs_container *c, const char *spec)
{
	return c && c->running && c->spec && !strcmp(c->spec, spec);
}

static bool is_standby(const struct ml_obs_container *c, const char *spec)
{
	return c && c->paused && c->spec && !strcmp(c->spec, spec);
}

/* The slot to start in when no target runs: keep the serving one. */
static char pick_slot(const struct ml_obs_container *a,
		      const struct ml_obs_container *b)
{
	if (!a)
		return 'a';
	if (!b)
		return 'b';
	if (!a->running)
		return 'a';
	if (!b->running)
		return 'b';
	return a->revision <= b->revision ? 'a' : 'b';
}

void ml_plan_host(struct ml_host_plan *out, const char *want_spec,
		  int replicas, bool standby,
		  const struct ml_obs_container *obs, size_t nobs)
{
	const struct ml_obs_container *slots[ML_MAX_REPLICAS][2];
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	memset(slots, 0, sizeof(slots));
	if (replicas > ML_MAX_REPLICAS)
		BUG("%d replicas", replicas);
	for (i = 0; i < nobs; i++) {
		const struct ml_obs_container *c = &obs[i];
		int s = c->slot == 'a' ? 0 : c->slot == 'b' ? 1 : -1;

		if (s < 0 || c->replica < 0 || c->replica >= replicas) {
			add_stray(out, c->id);
			continue;
		}
		if (slots[c->replica][s]) {
			/* two in one slot: keep a target if one is */
			const struct ml_obs_container *prev =
				slots[c->replica][s];

			if (is_target(c, want_spec) &&
			    !is_target(prev, want_spec)) {
				add_stray(out, prev->id);
				slots[c->replica][s] = c;
			} else {
				add_stray(out, c->id);
			}
			continue;
		}
		slots[c->replica][s] = c;
	}
	out->changes = out->nstray > 0;
	out->nrep = replicas;
	for (r = 0; r < replicas; r++) {
		struct ml_replica_plan *rp = &out->rep[r];
		const struct ml_obs_container *a = slots[r][0], *b = slots[r][1];
		const struct ml_obs_container *in, *oth;

		rp->replica = r;
		if (is_target(a, want_spec) || is_target(b, want_spec)) {
			/* prefer a when both are targets; b then goes */
			rp->slot = is_target(a, want_spec) ? 'a' : 'b';
			in = rp->slot == 'a' ? a : b;
			oth = rp->slot == 'a' ? b : a;
			rp->keep_id = dup_or_null(in);
		} else if (is_standby(a, want_spec) ||
			   is_standby(b, want_spec)) {
			rp->slot = is_standby(a, want_spec) ? 'a' : 'b';
			in = rp->slot == 'a' ? a : b;
			oth = rp->slot == 'a' ? b : a;
			rp->start = true;
			rp->resume_id = dup_or_null(in);
		} else {
			rp->slot = pick_slot(a, b);
			in = rp->slot == 'a' ? a : b;
			oth = rp->slot == 'a' ? b : a;
			rp->start = true;
			rp->clear_id = dup_or_null(in);
		}
		if (oth && standby && oth->paused && !rp->start) {
			rp->standby_id = dup_or_null(oth);
		} else if (oth) {
			rp->old_id = dup_or_null(oth);
			rp->old_slot = other(rp->slot);
		}
		if (rp->start || rp->old_id)
			out->changes = true;
	}
}

void ml_host_plan_release(struct ml_host_plan *p)
{
	size_t i;
	int r;

	for (r = 0; r < p->nrep; r++) {
		free(p->rep[r].keep_id);
		free(p->rep[r].resume_id);
		free(p->rep[r].standby_id);
		free(p->rep[r].clear_id);
		free(p->rep[r].old_id);
	}
	for (i = 0; i < p->nstray; i++)
		free(p->stray[i]);
	free(p->stray);
	memset(p, 0, sizeof(*p));
}

int ml_plan_render(struct ml_buf *out, const struct ml_host_plan *p)
{
	size_t i;
	int r, rc = 0;

	for (r = 0; r < p->nrep && rc == 0; r++) {
		const struct ml_replica_plan *rp = &p->rep[r];

		rc = ml_buf_addf(out, "r%d: ", rp->replica);
		if (rc == 0 && rp->start && rp->clear_id)
			rc = ml_buf_addf(out, "clear %c (%s); ", rp->slot,
					 rp->clear_id);
		if (rc == 0 && rp->resume_id)
			rc = ml_buf_addf(out, "resume %c (%s)", rp->slot,
					 rp->resume_id);
		else if (rc == 0)
			rc = rp->start ? ml_buf_addf(out, "start %c", rp->slot)
				       : ml_buf_addf(out, "keep %c (%s)",
						     rp->slot, rp->keep_id);
		if (rc == 0 && rp->old_id)
			rc = ml_buf_addf(out, "; switch from %c (%s)",
					 rp->old_slot, rp->old_id);
		if (rc == 0 && rp->standby_id)
			rc = ml_buf_addf(out, "; standby %c (%s)",
					 rp->slot == 'a' ? 'b' : 'a',
					 rp->standby_id);
		if (rc == 0)
			rc = ml_buf_addch(out, '\n');
	}
	for (i = 0; i < p->nstray && rc == 0; i++)
		rc = ml_buf_addf(out, "stray: stop %s\n", p->stray[i]);
	if (rc == 0 && !p->changes)
		rc = ml_buf_addstr(out, "no changes\n");
	return rc;
}

int ml_obs_from_json(struct ml_obs_container **out, size_t *n,
		     json_t *containers)
{
	struct ml_obs_container *v;
	json_t *c;
	size_t i, k = 0;

	if (!json_is_array(containers))
		return ml_err_set(ML_EPROTO, "containers is not a list");
	v = ml_xcalloc(json_array_size(containers) + 1, sizeof(*v));
	json_array_foreach(containers, i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *slot =
			json_string_value(json_object_get(c, "slot"));
		json_t *labels = json_object_get(c, "labels");
		const char *spec = json_string_value(
			json_object_get(labels, "mlctl.spec"));
		const char *health = json_string_value(
			json_object_get(labels, "mlctl.health"));
		const char *rep = json_string_value(
			json_object_get(labels, "mlctl.replica"));
		const char *state =
			json_string_value(json_object_get(c, "state"));
		json_t *jr = json_object_get(c, "revision");
		char *end;
		long r;

		if (!id)
			continue;
		v[k].id = ml_xstrdup(id);
		v[k].name = ml_xstrdup(json_string_value(
			json_object_get(c, "name")) ?: id);
		if (json_is_string(json_object_get(c, "image_id")))
			v[k].image_id = ml_xstrdup(json_string_value(
				json_object_get(c, "image_id")));
		v[k].revision = json_is_integer(jr) ? json_integer_value(jr)
						    : 0;
		v[k].spec = spec ? ml_xstrdup(spec) : NULL;
		v[k].health = health ? ml_xstrdup(health) : NULL;
		v[k].slot = slot && (!strcmp(slot, "a") || !strcmp(slot, "b"))
				    ? slot[0]
				    : 0;
		v[k].replica = -1;
		if (rep) {
			errno = 0;
			r = strtol(rep, &end, 10);
			if (!errno && *rep && !*end && r >= 0 &&
			    r < ML_MAX_REPLICAS)
				v[k].replica = (int)r;
		}
		v[k].running = state && !strcmp(state, "running");
		v[k].paused = state && !strcmp(state, "paused");
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

void ml_obs_free(struct ml_obs_container *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++) {
		free(v[i].id);
		free(v[i].name);
		free(v[i].image_id);
		free(v[i].spec);
		free(v[i].health);
	}
	free(v);
}
