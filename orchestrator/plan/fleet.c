/*
 * The fleet plan (see fleet.h). For every app host that answered: its
 * containers go through ml_plan_host, each replica's steps are named
 * (keep, start, replace, stop) with the reason read from what serves now
 * (missing or stopped: the host drifted; another image; else the keys of
 * the desired state that differ from the serving revision's); the blobs
 * it lacks come from its blobs_have answer. For every balancer: the
 * server list the rollout would give it (two slots per replica per app
 * host, rollout.c's lb_apply) against the one its lb_status reports; a
 * changed list is the one thing that makes the agent reload HAProxy for
 * the rollout. Batches follow the rollout policy over all app hosts in
 * target order, as the engine runs them. Sizes: any number of hosts, at
 * most ML_MAX_REPLICAS replicas each; the answers were already bounded by
 * the protocol.
 */
#include "common/ml.h"
#include "common/log.h"
#include "orchestrator/config/config.h"
#include "orchestrator/plan/fleet.h"

int ml_plan_host_port(int port, int replica, char slot)
{
	return 10000 + port + 2 * replica + (slot == 'b');
}

void ml_plan_server_name(char *buf, size_t n, const char *host, int replica,
			 char slot)
{
	snprintf(buf, n, "%s-%d%c", host, replica, slot);
}

size_t ml_plan_batch_size(const struct ml_rollout_spec *rs, size_t done,
			  size_t total, size_t step)
{
	size_t n;

	if (!rs)
		return 1;
	if (step < rs->canary_n) {
		size_t upto = (total * (size_t)rs->canary_percent[step] + 99) /
			      100;

		n = upto > done ? upto - done : 1;
	} else if (rs->batch_percent) {
		n = (total * (size_t)rs->batch_percent + 99) / 100;
	} else {
		n = (size_t)rs->batch_count;
	}
	return n ? n : 1;
}

/* The keys of a desired state that shape its containers (the spec hash's
 * inputs, rollout.c's run_keys, as ml_config_to_json names them). */
static const char *const shape_keys[] = {
	"port", "health", "env", "secrets", "resources", "security", "logs",
};

json_t *ml_plan_shape(json_t *d)
{
	json_t *o, *v;
	size_t i;

	if (!json_is_object(d))
		return NULL;
	o = json_object();
	for (i = 0; i < ML_ARRAY_SIZE(shape_keys); i++)
		if ((v = json_object_get(d, shape_keys[i])))
			json_object_set(o, shape_keys[i], v);
	return o;
}

/* lb_apply's arguments from the desired state, beside the servers
 * (rollout.c's lb_apply_all): listen port, balance, TLS, the check, the
 * drain timeout, the exporter. */
static const char *const lb_keys[] = { "load_balancer", "health", "metrics" };

json_t *ml_plan_lb_shape(json_t *d)
{
	json_t *o, *v;
	size_t i;

	if (!json_is_object(d))
		return NULL;
	o = json_object();
	for (i = 0; i < ML_ARRAY_SIZE(lb_keys); i++)
		if ((v = json_object_get(d, lb_keys[i])))
			json_object_set(o, lb_keys[i], v);
	v = json_object_get(json_object_get(d, "rollout"), "drain_timeout");
	if (v)
		json_object_set(o, "drain_timeout", v);
	return o;
}

/* The keys whose values differ between two shapes, or NULL. */
static char *diff_keys(json_t *a, json_t *b)
{
	struct ml_buf out = ML_BUF_INIT(1024);
	const char *k;
	json_t *v;

	json_object_foreach(a, k, v)
		if (!json_equal(v, json_object_get(b, k)))
			ml_buf_addf(&out, "%s%s", out.len ? ", " : "", k);
	json_object_foreach(b, k, v)
		if (!json_object_get(a, k))
			ml_buf_addf(&out, "%s%s", out.len ? ", " : "", k);
	if (!out.len) {
		ml_buf_release(&out);
		return NULL;
	}
	return ml_buf_detach(&out, NULL);
}

static void strv_add(char ***v, size_t *n, const char *s)
{
	*v = ml_xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = ml_xstrdup(s);
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const struct ml_obs_container *find_obs(const struct ml_fleet_host *fh,
					       const char *id)
{
	size_t i;

	for (i = 0; id && i < fh->nobs; i++)
		if (!strcmp(fh->obs[i].id, id))
			return &fh->obs[i];
	return NULL;
}

/* "sha256:0123456789ab" (the first 12 hex digits) or "?" */
static const char *short_image(char buf[24], const char *id)
{
	snprintf(buf, 24, "%.19s", id ? id : "?");
	return buf;
}

/* Which shaping keys differ between the serving revision and the wanted
 * state: "env, resources", or NULL when unknown or none. */
static char *changed_keys(const struct ml_fleet_want *w, int64_t revision)
{
	struct ml_buf b = ML_BUF_INIT(1024);
	json_t *old;
	char num[24];
	size_t i;

	snprintf(num, sizeof(num), "%lld", (long long)revision);
	old = w->rev_shapes ? json_object_get(w->rev_shapes, num) : NULL;
	if (!json_is_object(old) || !json_is_object(w->shape))
		return NULL;
	for (i = 0; i < ML_ARRAY_SIZE(shape_keys); i++) {
		json_t *a = json_object_get(old, shape_keys[i]);
		json_t *c = json_object_get(w->shape, shape_keys[i]);

		if (!json_equal(a, c) && (a || c))
			ml_buf_addf(&b, "%s%s", b.len ? ", " : "",
				    shape_keys[i]);
	}
	if (!b.len) {
		ml_buf_release(&b);
		return NULL;
	}
	return ml_buf_detach(&b, NULL);
}

/* Why a replica must start: from what serves it now (cur, may be NULL).
 * known: the host is part of the deployed fleet (a balancer lists it, or
 * there is no balancer). */
static char *why_start(const struct ml_fleet_want *w,
		       const struct ml_obs_container *cur, bool known)
{
	char a[24], b[24], *keys, *s;

	if (!cur)
		return w->serving && known
			       ? ml_xstrdup("drifted: its container is "
					    "missing")
			       : ml_xstrdup("new: not deployed here yet");
	if (!cur->running)
		return ml_xasprintf("drifted: container %.12s is stopped",
				    cur->id); /* escaped when rendered */
	if (cur->image_id && strcmp(cur->image_id, w->image_id))
		return ml_xasprintf("image %s -> %s",
				    short_image(a, cur->image_id),
				    short_image(b, w->image_id));
	keys = changed_keys(w, cur->revision);
	if (keys) {
		s = ml_xasprintf("changed: %s, since revision %lld", keys,
				 (long long)cur->revision);
		free(keys);
		return s;
	}
	return ml_xasprintf("changed: the container spec, since revision "
			    "%lld (a secret's value or a key its record "
			    "lacks)",
			    (long long)cur->revision);
}

/* The serving container of a replica before the change: running first. */
static const struct ml_obs_container *
serving_now(const struct ml_fleet_host *fh, const struct ml_replica_plan *rp)
{
	const struct ml_obs_container *a = find_obs(fh, rp->old_id);
	const struct ml_obs_container *c = find_obs(fh, rp->clear_id);

	if (a && a->running)
		return a;
	if (c && c->running)
		return c;
	return a ? a : c;
}

static void name_replicas(struct ml_fleet_host *fh,
			  const struct ml_fleet_want *w, bool known)
{
	int r;

	fh->nrep = fh->plan.nrep;
	for (r = 0; r < fh->plan.nrep; r++) {
		const struct ml_replica_plan *rp = &fh->plan.rep[r];
		struct ml_fleet_replica *fr = &fh->rep[r];
		const struct ml_obs_container *cur = serving_now(fh, rp), *old;

		fr->replica = rp->replica;
		fr->slot = rp->slot;
		if (rp->resume_id) {
			const struct ml_obs_container *k =
				find_obs(fh, rp->resume_id);

			fr->action = ML_REP_RESUME;
			fr->image_id = ml_xstrdup(w->image_id);
			fr->why = ml_xasprintf(
				"the standby of revision %lld, paused in "
				"slot %c",
				(long long)(k ? k->revision : 0), rp->slot);
		} else if (rp->start) {
			fr->action = cur && cur->running ? ML_REP_REPLACE
							 : ML_REP_START;
			fr->image_id = ml_xstrdup(w->image_id);
			fr->why = why_start(w, cur, known);
		} else {
			const struct ml_obs_container *k =
				find_obs(fh, rp->keep_id);

			fr->action = rp->old_id ? ML_REP_STOP : ML_REP_KEEP;
			fr->image_id = ml_xstrdup(k && k->image_id ? k->image_id
								 : w->image_id);
			if (rp->old_id)
				fr->why = ml_xasprintf(
					"a leftover in slot %c beside the "
					"target",
					rp->old_slot);
		}
		/* what goes: the other slot's, else the one cleared from the
		 * slot itself */
		old = find_obs(fh, rp->old_id);
		if (!old && rp->start)
			old = find_obs(fh, rp->clear_id);
		if (old) {
			fr->old_id = ml_xstrdup(old->id);
			if (old->image_id)
				fr->old_image = ml_xstrdup(old->image_id);
			/* what served goes to standby; a cleared one goes */
			fr->pause_old = w->rollout && w->rollout->standby &&
					old == find_obs(fh, rp->old_id) &&
					(old->running || old->paused);
		}
		if (rp->standby_id)
			fr->standby_id = ml_xstrdup(rp->standby_id);
	}
}

static int64_t blob_size(const struct ml_fleet_want *w, const char *digest)
{
	size_t i;

	for (i = 0; i < w->nblobs; i++)
		if (!strcmp(w->blobs[i].digest, digest))
			return w->blobs[i].size;
	return -1;
}

/* The blobs the host lacks, in the image's order, and their bytes (less
 * what a .part already holds: delivery resumes there). */
static int lacks(struct ml_fleet_host *fh, const struct ml_fleet_want *w,
		 json_t *reply)
{
	json_t *missing = json_object_get(reply, "missing");
	json_t *partial = json_object_get(reply, "partial");
	size_t i, k;
	json_t *d;

	if (!reply)
		return 0;
	if (!json_is_array(missing))
		return ml_err_set(ML_EPROTO, "blobs_have: no 'missing' list");
	for (i = 0; i < w->nblobs; i++) {
		json_array_foreach(missing, k, d) {
			const char *dg = json_string_value(d);
			json_t *p;
			int64_t off;

			if (!dg || strcmp(dg, w->blobs[i].digest))
				continue;
			p = json_object_get(partial, dg);
			off = json_is_integer(p) ? json_integer_value(p) : 0;
			if (off < 0 || off > w->blobs[i].size)
				off = 0;
			strv_add(&fh->lack, &fh->nlack, dg);
			fh->lack_bytes += w->blobs[i].size - off;
			break;
		}
	}
	json_array_foreach(missing, k, d)
		if (!json_is_string(d) ||
		    blob_size(w, json_string_value(d)) < 0)
			return ml_err_set(ML_EPROTO,
					  "blobs_have named a blob that is "
					  "not part of the image");
	return 0;
}

static void plan_app_host(struct ml_fleet_host *fh,
			  const struct ml_fleet_want *w,
			  const struct ml_fleet_seen *s, bool known)
{
	struct ml_buf esc = ML_BUF_INIT(4096);

	if (ml_obs_from_json(&fh->obs, &fh->nobs, s->containers) < 0 ||
	    lacks(fh, w, s->blobs) < 0) {
		ml_escape(&esc, ml_err_msg(), strlen(ml_err_msg()));
		fh->error = ml_xasprintf("bad answer: %s", ml_buf_str(&esc));
		ml_buf_release(&esc);
		ml_err_clear();
		return;
	}
	ml_plan_host(&fh->plan, w->spec, w->replicas,
		     w->rollout && w->rollout->standby, fh->obs, fh->nobs);
	name_replicas(fh, w, known);
	fh->changes = fh->plan.changes;
}

/* Does the lb_status reply list server name at address:port? 1 same,
 * 2 another address or port, 0 absent. */
static int lb_has(json_t *status, const char *name, const char *address,
		  int port)
{
	json_t *s;
	size_t k;

	json_array_foreach(json_object_get(status, "servers"), k, s) {
		const char *n = json_string_value(json_object_get(s, "name"));
		const char *a =
			json_string_value(json_object_get(s, "address"));
		json_t *p = json_object_get(s, "port");

		if (!n || strcmp(n, name))
			continue;
		return a && !strcmp(a, address) && json_is_integer(p) &&
				       json_integer_value(p) == port
			       ? 1
			       : 2;
	}
	return 0;
}

/* "12a": a replica number and a slot, all of it. */
static bool is_slot_suffix(const char *s)
{
	size_t d = strspn(s, "0123456789");

	return d > 0 && (s[d] == 'a' || s[d] == 'b') && !s[d + 1];
}

/* Does a balancer that answered list a server of host, or is there no
 * balancer that answered? */
static bool lb_knows(const struct ml_fleet_seen *seen, size_t n,
		     const char *host)
{
	size_t i, k, len = strlen(host);
	bool any = false;
	json_t *v;

	for (i = 0; i < n; i++) {
		if (!seen[i].is_lb || seen[i].error)
			continue;
		any = true;
		json_array_foreach(json_object_get(seen[i].lb, "servers"), k,
				   v) {
			const char *sn =
				json_string_value(json_object_get(v, "name"));

			if (sn && !strncmp(sn, host, len) && sn[len] == '-' &&
			    is_slot_suffix(sn + len + 1))
				return true;
		}
	}
	return !any;
}

static bool wanted_server(const struct ml_fleet_want *w,
			  const struct ml_fleet_seen *seen, size_t n,
			  const char *name)
{
	char buf[160];
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		if (!seen[i].is_app)
			continue;
		for (r = 0; r < w->replicas; r++)
			for (char slot = 'a'; slot <= 'b'; slot++) {
				ml_plan_server_name(buf, sizeof(buf),
						    seen[i].name, r, slot);
				if (!strcmp(buf, name))
					return true;
			}
	}
	return false;
}

static void plan_lb(struct ml_fleet_lb *lb, const struct ml_fleet_want *w,
		    const struct ml_fleet_seen *s,
		    const struct ml_fleet_seen *seen, size_t n)
{
	json_t *st = s->lb, *v;
	char name[160];
	size_t i, k;
	int r;

	lb->name = s->name;
	if (s->error) {
		lb->error = ml_xstrdup(s->error);
		return;
	}
	lb->running = json_is_true(json_object_get(st, "running"));
	for (i = 0; i < n; i++) {
		if (!seen[i].is_app)
			continue;
		for (r = 0; r < w->replicas; r++)
			for (char slot = 'a'; slot <= 'b'; slot++) {
				int port = ml_plan_host_port(w->port, r, slot);

				ml_plan_server_name(name, sizeof(name),
						    seen[i].name, r, slot);
				switch (lb_has(st, name, seen[i].address,
					       port)) {
				case 0:
					strv_add(&lb->added, &lb->nadded, name);
					break;
				case 2:
					strv_add(&lb->moved, &lb->nmoved, name);
					break;
				}
			}
	}
	json_array_foreach(json_object_get(st, "servers"), k, v) {
		const char *sn = json_string_value(json_object_get(v, "name"));

		if (sn && !wanted_server(w, seen, n, sn))
			strv_add(&lb->removed, &lb->nremoved, sn);
	}
	if (json_is_object(w->lb_shape) && json_is_object(w->serving_lb_shape))
		lb->config = diff_keys(w->serving_lb_shape, w->lb_shape);
	lb->reload = !lb->running || lb->nadded || lb->nremoved ||
		     lb->nmoved || lb->config;
}

void ml_plan_fleet(struct ml_fleet_plan *out, const struct ml_fleet_want *w,
		   const struct ml_fleet_seen *seen, size_t n)
{
	size_t i, napp = 0, done = 0, step = 0, b;

	memset(out, 0, sizeof(*out));
	if (w->replicas < 0 || w->replicas > ML_MAX_REPLICAS)
		BUG("%d replicas", w->replicas);
	if (!w->spec || !w->image_id)
		BUG("a fleet plan without a spec or an image");
	out->hosts = ml_xcalloc(n + 1, sizeof(*out->hosts));
	out->lbs = ml_xcalloc(n + 1, sizeof(*out->lbs));
	out->nhosts = n;
	for (i = 0; i < n; i++) {
		struct ml_fleet_host *fh = &out->hosts[i];

		fh->name = seen[i].name;
		fh->is_app = seen[i].is_app;
		fh->is_lb = seen[i].is_lb;
		if (seen[i].error) {
			fh->error = ml_xstrdup(seen[i].error);
			out->unreachable++;
		} else if (fh->is_app) {
			plan_app_host(fh, w, &seen[i],
				      lb_knows(seen, n, seen[i].name));
			if (fh->error)
				out->unreachable++;
		}
		if (fh->is_app) {
			napp++;
			out->changed += fh->changes;
			out->bytes += fh->lack_bytes;
		}
		if (seen[i].is_lb) {
			struct ml_fleet_lb *lb = &out->lbs[out->nlbs++];

			plan_lb(lb, w, &seen[i], seen, n);
			out->changes |= lb->reload;
		}
	}
	for (i = 0; i < n && !out->lock_host; i++)
		if (seen[i].is_lb)
			out->lock_host = seen[i].name;
	for (i = 0; i < n && !out->lock_host; i++)
		if (seen[i].is_app)
			out->lock_host = seen[i].name;
	out->batch_len = ml_xcalloc(napp + 1, sizeof(*out->batch_len));
	while (done < napp) {
		size_t k = ml_plan_batch_size(w->rollout, done, napp, step++);

		if (k > napp - done)
			k = napp - done;
		out->batch_len[out->nbatches++] = k;
		done += k;
	}
	for (i = 0, b = 0, done = 0; i < n; i++) {
		if (!out->hosts[i].is_app)
			continue;
		while (b < out->nbatches && done >= out->batch_len[b]) {
			done = 0;
			b++;
		}
		out->hosts[i].batch = b + 1;
		done++;
	}
	out->changes |= out->changed > 0 || out->bytes > 0;
}

void ml_fleet_plan_release(struct ml_fleet_plan *p)
{
	size_t i;
	int r;

	for (i = 0; i < p->nhosts; i++) {
		struct ml_fleet_host *fh = &p->hosts[i];

		for (r = 0; r < fh->nrep; r++) {
			free(fh->rep[r].image_id);
			free(fh->rep[r].old_id);
			free(fh->rep[r].old_image);
			free(fh->rep[r].standby_id);
			free(fh->rep[r].why);
		}
		ml_host_plan_release(&fh->plan);
		ml_obs_free(fh->obs, fh->nobs);
		strv_free(fh->lack, fh->nlack);
		free(fh->error);
	}
	for (i = 0; i < p->nlbs; i++) {
		strv_free(p->lbs[i].added, p->lbs[i].nadded);
		strv_free(p->lbs[i].removed, p->lbs[i].nremoved);
		strv_free(p->lbs[i].moved, p->lbs[i].nmoved);
		free(p->lbs[i].error);
		free(p->lbs[i].config);
	}
	free(p->hosts);
	free(p->lbs);
	free(p->batch_len);
	memset(p, 0, sizeof(*p));
}

static const char *const action_names[] = {
	[ML_REP_KEEP] = "keep",
	[ML_REP_START] = "start",
	[ML_REP_REPLACE] = "replace",
	[ML_REP_STOP] = "stop",
	[ML_REP_RESUME] = "resume",
};

/* Add s escaped (it came from a host). */
static int add_esc(struct ml_buf *out, const char *s)
{
	return ml_escape(out, s, strlen(s));
}

static int render_list(struct ml_buf *out, const char *sign, char **v,
		       size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		rc = ml_buf_addf(out, " %s", sign);
		if (rc == 0)
			rc = add_esc(out, v[i]);
	}
	return rc;
}

static int render_host(struct ml_buf *out, const struct ml_fleet_host *fh)
{
	char a[24];
	size_t k;
	int r, rc = 0;

	if (fh->error) {
		rc = ml_buf_addf(out, "%s: unreachable: ", fh->name);
		if (rc == 0)
			rc = add_esc(out, fh->error);
		return rc ? rc : ml_buf_addch(out, '\n');
	}
	for (r = 0; r < fh->nrep && rc == 0; r++) {
		const struct ml_fleet_replica *fr = &fh->rep[r];

		/* "stop" keeps the target and stops the other slot */
		rc = ml_buf_addf(out, "%s: r%d %s %c %s", fh->name,
				 fr->replica,
				 fr->action == ML_REP_STOP
					 ? "keep"
					 : action_names[fr->action],
				 fr->slot, short_image(a, fr->image_id));
		if (rc == 0 && fr->old_id) {
			rc = ml_buf_addstr(out, fr->pause_old ? "; pause "
							      : "; stop ");
			if (rc == 0)
				rc = ml_escape(out, fr->old_id,
					       strnlen(fr->old_id, 12));
		}
		if (rc == 0 && fr->standby_id) {
			rc = ml_buf_addstr(out, "; standby ");
			if (rc == 0)
				rc = ml_escape(out, fr->standby_id,
					       strnlen(fr->standby_id, 12));
		}
		if (rc == 0 && fr->why) {
			rc = ml_buf_addstr(out, " (");
			if (rc == 0)
				rc = add_esc(out, fr->why);
			if (rc == 0)
				rc = ml_buf_addch(out, ')');
		}
		if (rc == 0)
			rc = ml_buf_addch(out, '\n');
	}
	for (k = 0; k < fh->plan.nstray && rc == 0; k++) {
		rc = ml_buf_addf(out, "%s: stop stray ", fh->name);
		if (rc == 0)
			rc = ml_escape(out, fh->plan.stray[k],
				       strnlen(fh->plan.stray[k], 12));
		if (rc == 0)
			rc = ml_buf_addch(out, '\n');
	}
	if (rc == 0 && fh->nlack)
		rc = ml_buf_addf(out, "%s: lacks %zu blob%s, %lld bytes\n",
				 fh->name, fh->nlack,
				 fh->nlack == 1 ? "" : "s",
				 (long long)fh->lack_bytes);
	if (rc == 0 && !fh->changes && !fh->nlack)
		rc = ml_buf_addf(out, "%s: no changes\n", fh->name);
	return rc;
}

int ml_fleet_plan_render(struct ml_buf *out, const struct ml_fleet_plan *p)
{
	size_t i, k, h = 0;
	int rc;

	rc = ml_buf_addf(out, "lock: %s\n", p->lock_host ? p->lock_host : "-");
	for (i = 0; i < p->nbatches && rc == 0; i++) {
		rc = ml_buf_addf(out, "batch %zu:", i + 1);
		for (k = 0; k < p->batch_len[i] && rc == 0; h++) {
			if (h >= p->nhosts)
				BUG("batches past the hosts");
			if (!p->hosts[h].is_app)
				continue;
			rc = ml_buf_addf(out, " %s", p->hosts[h].name);
			k++;
		}
		if (rc == 0)
			rc = ml_buf_addch(out, '\n');
	}
	for (i = 0; i < p->nhosts && rc == 0; i++)
		if (p->hosts[i].is_app || p->hosts[i].error)
			rc = render_host(out, &p->hosts[i]);
	for (i = 0; i < p->nlbs && rc == 0; i++) {
		const struct ml_fleet_lb *lb = &p->lbs[i];

		if (lb->error)
			continue; /* said with the hosts */
		rc = ml_buf_addf(out, "%s: haproxy %s", lb->name,
				 !lb->running ? "starts"
				 : lb->reload ? "reloads"
					      : "unchanged");
		if (rc == 0 && lb->running && lb->config)
			rc = ml_buf_addf(out, " (%s changed)", lb->config);
		if (rc == 0)
			rc = render_list(out, "+", lb->added, lb->nadded);
		if (rc == 0)
			rc = render_list(out, "-", lb->removed, lb->nremoved);
		if (rc == 0)
			rc = render_list(out, "~", lb->moved, lb->nmoved);
		if (rc == 0)
			rc = ml_buf_addch(out, '\n');
	}
	if (rc == 0 && !p->changes && !p->unreachable)
		rc = ml_buf_addstr(out, "no changes\n");
	return rc;
}

static json_t *strv_json(char **v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *host_json(const struct ml_fleet_host *fh)
{
	json_t *o = json_pack("{s:s,s:b,s:b}", "host", fh->name, "app",
			      fh->is_app, "lb", fh->is_lb);
	json_t *reps, *strays;
	size_t k;
	int r;

	json_object_set_new(o, "reachable", json_boolean(!fh->error));
	json_object_set_new(o, "error",
			    fh->error ? json_string(fh->error) : json_null());
	if (!fh->is_app || fh->error)
		return o;
	reps = json_array();
	strays = json_array();
	json_object_set_new(o, "batch", json_integer((json_int_t)fh->batch));
	json_object_set_new(o, "changes", json_boolean(fh->changes));
	for (r = 0; r < fh->nrep; r++) {
		const struct ml_fleet_replica *fr = &fh->rep[r];
		char slot[2] = { fr->slot, 0 };

		json_array_append_new(
			reps,
			json_pack("{s:i,s:s,s:s,s:s,s:o,s:o,s:o}", "replica",
				  fr->replica, "action",
				  action_names[fr->action], "slot", slot,
				  "image", fr->image_id, "stop",
				  fr->old_id ? json_string(fr->old_id)
					     : json_null(),
				  "stop_image",
				  fr->old_image ? json_string(fr->old_image)
						: json_null(),
				  "why",
				  fr->why ? json_string(fr->why) : json_null()));
		json_object_set_new(json_array_get(reps, (size_t)r), "pause",
				    json_boolean(fr->pause_old));
		json_object_set_new(json_array_get(reps, (size_t)r),
				    "standby",
				    fr->standby_id ? json_string(fr->standby_id)
						   : json_null());
	}
	json_object_set_new(o, "replicas", reps);
	for (k = 0; k < fh->plan.nstray; k++)
		json_array_append_new(strays, json_string(fh->plan.stray[k]));
	json_object_set_new(o, "strays", strays);
	json_object_set_new(o, "lacks", strv_json(fh->lack, fh->nlack));
	json_object_set_new(o, "bytes", json_integer(fh->lack_bytes));
	return o;
}

json_t *ml_fleet_plan_json(const struct ml_fleet_plan *p)
{
	json_t *doc = json_object(), *hosts = json_array(), *lbs = json_array();
	json_t *batches = json_array();
	size_t i, k, h = 0;

	json_object_set_new(doc, "changes", json_boolean(p->changes));
	json_object_set_new(doc, "lock_host", p->lock_host
						      ? json_string(p->lock_host)
						      : json_null());
	json_object_set_new(doc, "hosts_changed",
			    json_integer((json_int_t)p->changed));
	json_object_set_new(doc, "unreachable",
			    json_integer((json_int_t)p->unreachable));
	json_object_set_new(doc, "bytes", json_integer(p->bytes));
	for (i = 0; i < p->nbatches; i++) {
		json_t *b = json_array();

		for (k = 0; k < p->batch_len[i] && h < p->nhosts; h++) {
			if (!p->hosts[h].is_app)
				continue;
			json_array_append_new(b,
					      json_string(p->hosts[h].name));
			k++;
		}
		json_array_append_new(batches, b);
	}
	json_object_set_new(doc, "batches", batches);
	for (i = 0; i < p->nhosts; i++)
		json_array_append_new(hosts, host_json(&p->hosts[i]));
	json_object_set_new(doc, "hosts", hosts);
	for (i = 0; i < p->nlbs; i++) {
		const struct ml_fleet_lb *lb = &p->lbs[i];

		json_array_append_new(
			lbs,
			json_pack("{s:s,s:o,s:o,s:b,s:b,s:o,s:o,s:o}", "host",
				  lb->name, "config",
				  lb->config ? json_string(lb->config)
					     : json_null(),
				  "error",
				  lb->error ? json_string(lb->error)
					    : json_null(),
				  "running", lb->running, "reload", lb->reload,
				  "added", strv_json(lb->added, lb->nadded),
				  "removed",
				  strv_json(lb->removed, lb->nremoved), "moved",
				  strv_json(lb->moved, lb->nmoved)));
	}
	json_object_set_new(doc, "load_balancers", lbs);
	return doc;
}
