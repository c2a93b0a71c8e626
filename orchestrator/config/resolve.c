/*
 * Playbook + inventory -> the desired state (struct ml_config), and the
 * desired state as JSON.
 *
 * Checks made here, because they need both files or the whole group graph:
 * every target and load-balancer name is a host, a group or "all"; the
 * group graph (children) has no cycle; the jump graph (ssh.jump, after
 * merging) has no cycle; targets and load-balancer hosts select at least
 * one host. Every problem is reported, then ML_EINVALID.
 *
 * Resolution, all orders deterministic:
 *   - a group expands to its own hosts in the order listed, then each child
 *     group in the order listed, depth first; "all" to every host in file
 *     order; duplicates keep their first place;
 *   - a host's groups are every group containing it directly or through
 *     children, ordered outermost first (depth = longest chain of parents
 *     above the group), then in file order; settings merge as inventory
 *     defaults < those groups in that order < the host itself, a later
 *     value replacing an earlier one (vars keep the place of their first
 *     definition);
 *   - a jump a host inherits that names the host itself is dropped (the
 *     bastion of a fleet-wide "jump: bastion" connects directly);
 *   - targets: app hosts in expansion order, then hosts that are only load
 *     balancers; jumps: every host reached through ssh.jump from a target.
 *
 * Sizes: names are found by binary search over sorted indexes; each host's
 * groups by walking parent links upwards, O(ancestors) per host.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "orchestrator/config/config.h"

#include <jansson.h>

struct names {
	const char **name; /* sorted */
	size_t *idx;	   /* idx[i]: index of name[i] in the inventory */
	size_t n;
};

struct rctx {
	const struct ml_inventory *inv;
	const struct ml_playbook *pb;
	struct ml_cfgctx ci; /* diagnostics in the inventory */
	struct ml_cfgctx cp; /* diagnostics in the playbook */
	struct names hosts, groups;
	size_t **parents; /* per group: indexes of groups listing it */
	size_t *nparents;
	size_t **direct; /* per host: groups listing it in hosts */
	size_t *ndirect;
	int *depth;		  /* per group */
	struct ml_target *merged; /* per host */
	struct ml_pos *jump_pos;  /* per host: where its merged jump is from */
};

/* ---- name indexes ------------------------------------------------------ */

static int cmp_idx(const void *a, const void *b, void *arg)
{
	const char **names = arg;

	return strcmp(names[*(const size_t *)a], names[*(const size_t *)b]);
}

static void names_build(struct names *nm, const char **names, size_t n)
{
	size_t i;

	nm->n = n;
	nm->idx = ml_xcalloc(n, sizeof(*nm->idx));
	nm->name = ml_xcalloc(n, sizeof(*nm->name));
	for (i = 0; i < n; i++)
		nm->idx[i] = i;
	qsort_r(nm->idx, n, sizeof(*nm->idx), cmp_idx, names);
	for (i = 0; i < n; i++)
		nm->name[i] = names[nm->idx[i]];
}

static void names_release(struct names *nm)
{
	free(nm->idx);
	free(nm->name);
}

/* Index of name in the inventory's array, or -1. */
static ssize_t names_find(const struct names *nm, const char *name)
{
	size_t lo = 0, hi = nm->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, nm->name[mid]);

		if (!c)
			return (ssize_t)nm->idx[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* ---- group graph ------------------------------------------------------- */

static void push_idx(size_t **v, size_t *n, size_t x)
{
	/* arrays here are small and grow by one; ml_xreallocarray keeps the
	 * arithmetic checked */
	*v = ml_xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = x;
}

static void build_links(struct rctx *r)
{
	const struct ml_inventory *inv = r->inv;
	size_t g, i;

	r->parents = ml_xcalloc(inv->ngroups, sizeof(*r->parents));
	r->nparents = ml_xcalloc(inv->ngroups, sizeof(*r->nparents));
	r->direct = ml_xcalloc(inv->nhosts, sizeof(*r->direct));
	r->ndirect = ml_xcalloc(inv->nhosts, sizeof(*r->ndirect));
	for (g = 0; g < inv->ngroups; g++) {
		const struct ml_group *gr = &inv->groups[g];

		for (i = 0; i < gr->children.n; i++) {
			ssize_t ch = names_find(&r->groups, gr->children.v[i]);

			if (ch >= 0)
				push_idx(&r->parents[ch], &r->nparents[ch], g);
		}
		for (i = 0; i < gr->hosts.n; i++) {
			ssize_t h = names_find(&r->hosts, gr->hosts.v[i]);

			if (h >= 0)
				push_idx(&r->direct[h], &r->ndirect[h], g);
		}
	}
}

/*
 * Depth-first over the children links, iteratively (a long chain of groups
 * must not exhaust the C stack). Reports each cycle once, at the child
 * entry that closes it, and computes depth[] (longest chain of parents) in
 * topological order when there is no cycle. Returns the number of cycles.
 */
static int check_group_cycles(struct rctx *r)
{
	const struct ml_inventory *inv = r->inv;
	size_t ng = inv->ngroups, top, i, start, norder = 0;
	size_t *stack = ml_xcalloc(ng, sizeof(*stack));
	size_t *next = ml_xcalloc(ng, sizeof(*next));
	size_t *order = ml_xcalloc(ng, sizeof(*order));
	char *state = ml_xcalloc(ng ? ng : 1, 1); /* 0 new, 1 open, 2 done */
	int cycles = 0;

	for (start = 0; start < ng; start++) {
		if (state[start])
			continue;
		top = 0;
		stack[top++] = start;
		state[start] = 1;
		next[start] = 0;
		while (top) {
			size_t g = stack[top - 1];
			const struct ml_group *gr = &inv->groups[g];
			ssize_t ch;

			if (next[g] == gr->children.n) {
				state[g] = 2;
				order[norder++] = g;
				top--;
				continue;
			}
			i = next[g]++;
			ch = names_find(&r->groups, gr->children.v[i]);
			if (ch < 0 || state[ch] == 2)
				continue;
			if (state[ch] == 0) {
				state[ch] = 1;
				next[ch] = 0;
				stack[top++] = (size_t)ch;
				continue;
			}
			/* an open group: the stack from it to g is a cycle */
			{
				struct ml_buf b = ML_BUF_INIT(0);
				size_t k = top;

				while (k > 0 && stack[k - 1] != (size_t)ch)
					k--;
				for (k = k - 1; k < top; k++)
					ml_buf_addf(&b, "%s -> ",
						    inv->groups[stack[k]].name);
				ml_buf_addstr(&b, inv->groups[ch].name);
				ml_cfg_err_pos(
					&r->ci,
					gr->children.pos
						? gr->children.pos[i]
						: (struct ml_pos){gr->line,
								  gr->col},
					"group cycle: %s", ml_buf_str(&b));
				ml_buf_release(&b);
				cycles++;
			}
		}
	}
	r->depth = ml_xcalloc(ng ? ng : 1, sizeof(*r->depth));
	if (!cycles) {
		/* reverse post-order puts every parent before its children */
		for (i = norder; i-- > 0;) {
			const struct ml_group *gr = &inv->groups[order[i]];
			size_t k;

			for (k = 0; k < gr->children.n; k++) {
				ssize_t ch = names_find(&r->groups,
							gr->children.v[k]);

				if (ch >= 0 &&
				    r->depth[ch] < r->depth[order[i]] + 1)
					r->depth[ch] = r->depth[order[i]] + 1;
			}
		}
	}
	free(stack);
	free(next);
	free(order);
	free(state);
	return cycles;
}

/* ---- merging one host's settings --------------------------------------- */

static void kv_set(struct ml_kvlist *l, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].key, key)) {
			free(l->v[i].value);
			l->v[i].value = ml_xstrdup(value);
			return;
		}
	}
	l->v = ml_xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].key = ml_xstrdup(key);
	l->v[l->n].value = ml_xstrdup(value);
	l->n++;
}

static void kv_merge(struct ml_kvlist *dst, const struct ml_kvlist *src)
{
	size_t i;

	for (i = 0; i < src->n; i++)
		kv_set(dst, src->v[i].key, src->v[i].value);
}

static void set_str(char **dst, const char *src)
{
	if (!src)
		return;
	free(*dst);
	*dst = ml_xstrdup(src);
}

static void ssh_merge(struct ml_target *t, struct ml_pos *jpos,
		      const struct ml_ssh_spec *s)
{
	set_str(&t->user, s->user);
	if (s->port)
		t->port = s->port;
	set_str(&t->identity_file, s->identity_file);
	if (s->jump) {
		set_str(&t->jump, s->jump);
		*jpos = s->jump_pos;
	}
}

static int cmp_group_order(const void *a, const void *b, void *arg)
{
	const int *depth = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int dx = depth[x], dy = depth[y];

	if (dx != dy)
		return dx < dy ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Every group containing host h, outermost first, then in file order. */
static size_t host_groups(struct rctx *r, size_t h, size_t **out)
{
	size_t ng = r->inv->ngroups, n = 0, head = 0, i;
	size_t *q = ml_xcalloc(ng ? ng : 1, sizeof(*q));
	char *seen = ml_xcalloc(ng ? ng : 1, 1);

	for (i = 0; i < r->ndirect[h]; i++) {
		size_t g = r->direct[h][i];

		if (!seen[g]) {
			seen[g] = 1;
			q[n++] = g;
		}
	}
	while (head < n) {
		size_t g = q[head++];

		for (i = 0; i < r->nparents[g]; i++) {
			size_t p = r->parents[g][i];

			if (!seen[p]) {
				seen[p] = 1;
				q[n++] = p;
			}
		}
	}
	free(seen);
	qsort_r(q, n, sizeof(*q), cmp_group_order, r->depth);
	*out = q;
	return n;
}

static void merge_host(struct rctx *r, size_t h)
{
	const struct ml_inventory *inv = r->inv;
	const struct ml_host *host = &inv->hosts[h];
	struct ml_target *t = &r->merged[h];
	struct ml_pos *jpos = &r->jump_pos[h];
	size_t *gs, ngs, i;

	t->name = ml_xstrdup(host->name);
	t->address = ml_xstrdup(host->address ? host->address : host->name);
	t->port = 22;
	ssh_merge(t, jpos, &inv->ssh);
	kv_merge(&t->vars, &inv->vars);
	ngs = host_groups(r, h, &gs);
	t->groups.v = ml_xcalloc(ngs, sizeof(char *));
	for (i = 0; i < ngs; i++) {
		const struct ml_group *g = &inv->groups[gs[i]];

		t->groups.v[t->groups.n++] = ml_xstrdup(g->name);
		ssh_merge(t, jpos, &g->ssh);
		kv_merge(&t->vars, &g->vars);
	}
	free(gs);
	ssh_merge(t, jpos, &host->ssh);
	kv_merge(&t->vars, &host->vars);
	kv_merge(&t->labels, &host->labels);
	if (!t->user)
		t->user = ml_xstrdup("root");
	/* an inherited jump through the host itself: connect directly */
	if (t->jump && !strcmp(t->jump, t->name)) {
		free(t->jump);
		t->jump = NULL;
	}
}

static void target_release(struct ml_target *t)
{
	free(t->name);
	free(t->address);
	free(t->user);
	free(t->identity_file);
	free(t->jump);
	ml_strlist_release(&t->groups);
	ml_kvlist_release(&t->labels);
	ml_kvlist_release(&t->vars);
}

static void target_copy(struct ml_target *dst, const struct ml_target *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->name = ml_xstrdup(src->name);
	dst->address = ml_xstrdup(src->address);
	dst->user = ml_xstrdup(src->user);
	dst->port = src->port;
	dst->identity_file =
		src->identity_file ? ml_xstrdup(src->identity_file) : NULL;
	dst->jump = src->jump ? ml_xstrdup(src->jump) : NULL;
	dst->groups.v = ml_xcalloc(src->groups.n, sizeof(char *));
	for (i = 0; i < src->groups.n; i++)
		dst->groups.v[i] = ml_xstrdup(src->groups.v[i]);
	dst->groups.n = src->groups.n;
	kv_merge(&dst->labels, &src->labels);
	kv_merge(&dst->vars, &src->vars);
	dst->is_app = src->is_app;
	dst->is_lb = src->is_lb;
}

/* Jumps form a functional graph (one jump per host): walk from each host,
 * marking the walk, and report each cycle once. */
static int check_jump_cycles(struct rctx *r)
{
	size_t nh = r->inv->nhosts, h;
	char *state = ml_xcalloc(nh ? nh : 1, 1); /* 0 new, 1 walking, 2 done */
	size_t *path = ml_xcalloc(nh ? nh : 1, sizeof(*path));
	int cycles = 0;

	for (h = 0; h < nh; h++) {
		size_t len = 0, k;
		ssize_t cur = (ssize_t)h;

		while (cur >= 0 && !state[cur]) {
			state[cur] = 1;
			path[len++] = (size_t)cur;
			cur = r->merged[cur].jump
				      ? names_find(&r->hosts,
						   r->merged[cur].jump)
				      : -1;
		}
		if (cur >= 0 && state[cur] == 1) {
			struct ml_buf b = ML_BUF_INIT(0);
			size_t last = path[len - 1];

			for (k = 0; path[k] != (size_t)cur; k++)
				;
			for (; k < len; k++)
				ml_buf_addf(&b, "%s -> ",
					    r->merged[path[k]].name);
			ml_buf_addstr(&b, r->merged[cur].name);
			ml_cfg_err_pos(&r->ci, r->jump_pos[last],
				       "jump cycle: %s", ml_buf_str(&b));
			ml_buf_release(&b);
			cycles++;
		}
		for (k = 0; k < len; k++)
			state[path[k]] = 2;
	}
	free(state);
	free(path);
	return cycles;
}

/* ---- expanding names --------------------------------------------------- */

struct sel {
	size_t *v; /* host indexes in selection order */
	size_t n;
	char *in; /* per host: already selected */
};

static void sel_add(struct sel *s, size_t h)
{
	if (s->in[h])
		return;
	s->in[h] = 1;
	s->v[s->n++] = h;
}

static void expand_group(struct rctx *r, size_t g0, struct sel *s)
{
	const struct ml_inventory *inv = r->inv;
	size_t ng = inv->ngroups, top = 0, i;
	size_t *stack = ml_xcalloc(ng, sizeof(*stack));
	size_t *next = ml_xcalloc(ng, sizeof(*next));
	char *open = ml_xcalloc(ng, 1);

	stack[top++] = g0;
	open[g0] = 1;
	for (i = 0; i < inv->groups[g0].hosts.n; i++) {
		ssize_t h = names_find(&r->hosts, inv->groups[g0].hosts.v[i]);

		if (h >= 0)
			sel_add(s, (size_t)h);
	}
	while (top) {
		size_t g = stack[top - 1];
		const struct ml_group *gr = &inv->groups[g];
		ssize_t ch;

		if (next[g] == gr->children.n) {
			top--;
			continue;
		}
		ch = names_find(&r->groups, gr->children.v[next[g]++]);
		/* open[] also keeps a cycle (already reported) finite */
		if (ch < 0 || open[ch])
			continue;
		open[ch] = 1;
		stack[top++] = (size_t)ch;
		for (i = 0; i < inv->groups[ch].hosts.n; i++) {
			ssize_t h = names_find(&r->hosts,
					       inv->groups[ch].hosts.v[i]);

			if (h >= 0)
				sel_add(s, (size_t)h);
		}
	}
	free(stack);
	free(next);
	free(open);
}

/* Expand a list of names into s; report names that are unknown. */
static void expand_list(struct rctx *r, const struct ml_strlist *l,
			const char *what, struct sel *s)
{
	const struct ml_inventory *inv = r->inv;
	size_t i, k;

	for (i = 0; i < l->n; i++) {
		const char *name = l->v[i];
		struct ml_pos pos = l->pos ? l->pos[i] : (struct ml_pos){0, 0};
		ssize_t x;

		if (!strcmp(name, "all")) {
			for (k = 0; k < inv->nhosts; k++)
				sel_add(s, k);
		} else if ((x = names_find(&r->hosts, name)) >= 0) {
			sel_add(s, (size_t)x);
		} else if ((x = names_find(&r->groups, name)) >= 0) {
			expand_group(r, (size_t)x, s);
		} else {
			size_t n = inv->nhosts + inv->ngroups + 1;
			const char **c = ml_xcalloc(n, sizeof(*c));
			const char *sg;

			for (k = 0; k < inv->nhosts; k++)
				c[k] = inv->hosts[k].name;
			for (k = 0; k < inv->ngroups; k++)
				c[inv->nhosts + k] = inv->groups[k].name;
			c[n - 1] = "all";
			sg = ml_cfg_suggest(name, c, n);
			ml_cfg_err_pos(&r->cp, pos,
				       "%s '%s' is not a host or "
				       "group of '%s'%s%s%s",
				       what, ml_cfg_q(&r->cp, name), inv->file,
				       sg ? " (did you mean '" : "",
				       sg ? sg : "", sg ? "'?)" : "");
			free(c);
		}
	}
}

/* ---- the whole resolution ---------------------------------------------- */

static void rctx_release(struct rctx *r)
{
	size_t i;

	names_release(&r->hosts);
	names_release(&r->groups);
	for (i = 0; r->parents && i < r->inv->ngroups; i++)
		free(r->parents[i]);
	for (i = 0; r->direct && i < r->inv->nhosts; i++)
		free(r->direct[i]);
	free(r->parents);
	free(r->nparents);
	free(r->direct);
	free(r->ndirect);
	free(r->depth);
	for (i = 0; r->merged && i < r->inv->nhosts; i++)
		target_release(&r->merged[i]);
	free(r->merged);
	free(r->jump_pos);
}

static void build_indexes(struct rctx *r)
{
	const struct ml_inventory *inv = r->inv;
	const char **names;
	size_t i;

	names = ml_xcalloc(inv->nhosts, sizeof(*names));
	for (i = 0; i < inv->nhosts; i++)
		names[i] = inv->hosts[i].name;
	names_build(&r->hosts, names, inv->nhosts);
	free(names);
	names = ml_xcalloc(inv->ngroups, sizeof(*names));
	for (i = 0; i < inv->ngroups; i++)
		names[i] = inv->groups[i].name;
	names_build(&r->groups, names, inv->ngroups);
	free(names);
}

/* The jump hosts reached from the selected targets, transitively. */
static void collect_jumps(struct rctx *r, struct ml_config *cfg,
			  const struct sel *app)
{
	size_t nh = r->inv->nhosts, i;
	char *in = ml_xcalloc(nh ? nh : 1, 1);

	cfg->jumps = ml_xcalloc(nh ? nh : 1, sizeof(*cfg->jumps));
	for (i = 0; i < app->n; i++) {
		const char *j = r->merged[app->v[i]].jump;
		ssize_t x;

		/* no cycles here: check_jump_cycles passed; the bound on
		 * njumps keeps the loop finite anyway */
		while (j && (x = names_find(&r->hosts, j)) >= 0 && !in[x] &&
		       cfg->njumps < nh) {
			in[x] = 1;
			target_copy(&cfg->jumps[cfg->njumps++], &r->merged[x]);
			j = r->merged[x].jump;
		}
	}
	free(in);
}

int ml_config_resolve(struct ml_config **out, struct ml_playbook *pb,
		      struct ml_inventory *inv, struct ml_diags *diags)
{
	struct rctx r;
	struct ml_config *cfg = NULL;
	struct sel app = {0}, lb = {0}, all = {0};
	size_t before = diags->n, nh, i;
	int rc = 0;

	*out = NULL;
	if (!pb || !inv) {
		ml_playbook_free(pb);
		ml_inventory_free(inv);
		return ml_err_set(ML_EFAIL, "nothing to resolve");
	}
	memset(&r, 0, sizeof(r));
	r.inv = inv;
	r.pb = pb;
	r.ci.file = inv->file;
	r.ci.diags = diags;
	r.cp.file = pb->file;
	r.cp.diags = diags;
	nh = inv->nhosts;
	build_indexes(&r);
	build_links(&r);
	check_group_cycles(&r);

	r.merged = ml_xcalloc(nh ? nh : 1, sizeof(*r.merged));
	r.jump_pos = ml_xcalloc(nh ? nh : 1, sizeof(*r.jump_pos));
	if (diags->n == before)
		for (i = 0; i < nh; i++)
			merge_host(&r, i);
	if (diags->n == before)
		check_jump_cycles(&r);

	app.v = ml_xcalloc(nh ? nh : 1, sizeof(size_t));
	app.in = ml_xcalloc(nh ? nh : 1, 1);
	lb.v = ml_xcalloc(nh ? nh : 1, sizeof(size_t));
	lb.in = ml_xcalloc(nh ? nh : 1, 1);
	all.v = ml_xcalloc(nh ? nh : 1, sizeof(size_t));
	all.in = ml_xcalloc(nh ? nh : 1, 1);
	expand_list(&r, &pb->targets, "target", &app);
	expand_list(&r, &pb->lb.hosts, "load balancer host", &lb);
	if (diags->n > before)
		goto out;
	if (!app.n && pb->targets.n)
		ml_cfg_err_pos(&r.cp,
			       pb->targets.pos ? pb->targets.pos[0]
					       : (struct ml_pos){0, 0},
			       "'targets' selects no hosts (its groups are "
			       "empty)");
	if (!lb.n && pb->lb.hosts.n)
		ml_cfg_err_pos(&r.cp,
			       pb->lb.hosts.pos ? pb->lb.hosts.pos[0]
						: (struct ml_pos){0, 0},
			       "'load_balancer.hosts' selects no hosts (its "
			       "groups are empty)");
	if (diags->n > before)
		goto out;

	/*
	 * Slots are bound to the app host's IPv4 fleet address and let
	 * through iptables (IPv4) to the balancers' addresses only: an IPv6
	 * address on either side would leave a slot unreachable by its
	 * balancer, or bound where no filter applies. Refused here, before
	 * any host is touched, rather than half-working.
	 */
	if (!pb->security.open_slots && pb->lb.hosts.n) {
		struct sel *both[2] = { &app, &lb };
		size_t k;

		for (k = 0; k < 2; k++)
			for (i = 0; i < both[k]->n; i++) {
				const struct ml_target *t =
					&r.merged[both[k]->v[i]];

				if (!t->address || !strchr(t->address, ':'))
					continue;
				ml_cfg_err_pos(
					&r.cp,
					k ? (pb->lb.hosts.pos
						     ? pb->lb.hosts.pos[0]
						     : (struct ml_pos){0, 0})
					  : (pb->targets.pos
						     ? pb->targets.pos[0]
						     : (struct ml_pos){0, 0}),
					"host '%s' has the IPv6 address '%s': "
					"mlctl binds and firewalls the slots "
					"on IPv4 fleet addresses only (give "
					"it its IPv4 address in the inventory, "
					"or set 'security.open_slots: true' "
					"and filter the slots yourself)",
					t->name, t->address);
			}
		if (diags->n > before)
			goto out;
	}

	/* app hosts first, then hosts that only balance */
	for (i = 0; i < app.n; i++)
		sel_add(&all, app.v[i]);
	for (i = 0; i < lb.n; i++)
		sel_add(&all, lb.v[i]);
	cfg = ml_xcalloc(1, sizeof(*cfg));
	cfg->targets = ml_xcalloc(all.n, sizeof(*cfg->targets));
	for (i = 0; i < all.n; i++) {
		struct ml_target *t = &cfg->targets[cfg->ntargets++];

		target_copy(t, &r.merged[all.v[i]]);
		t->is_app = app.in[all.v[i]];
		t->is_lb = lb.in[all.v[i]];
	}
	collect_jumps(&r, cfg, &all);
	cfg->playbook = pb;
	cfg->inventory = inv;
	pb = NULL;
	inv = NULL;
out:
	if (diags->n > before)
		rc = ml_err_set(ML_EINVALID, "'%s' and '%s' do not agree",
				r.cp.file, r.ci.file);
	rctx_release(&r);
	free(app.v);
	free(app.in);
	free(lb.v);
	free(lb.in);
	free(all.v);
	free(all.in);
	ml_playbook_free(pb);
	ml_inventory_free(inv);
	if (rc == 0)
		*out = cfg;
	return rc;
}

void ml_config_free(struct ml_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	ml_playbook_free(cfg->playbook);
	ml_inventory_free(cfg->inventory);
	free(cfg->commit);
	free(cfg->playbook_text);
	for (i = 0; i < cfg->ntargets; i++)
		target_release(&cfg->targets[i]);
	free(cfg->targets);
	for (i = 0; i < cfg->njumps; i++)
		target_release(&cfg->jumps[i]);
	free(cfg->jumps);
	free(cfg);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *kv_json(const struct ml_kvlist *l)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_object_set_new(o, l->v[i].key, json_string(l->v[i].value));
	return o;
}

static json_t *strlist_json(const struct ml_strlist *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

static void set_duration(json_t *o, const char *key, int64_t ms)
{
	char buf[64], k[64];

	json_object_set_new(
		o, key, json_string(ml_fmt_duration(buf, ms)));
	snprintf(k, sizeof(k), "%s_ms", key);
	json_object_set_new(o, k, json_integer(ms));
}

static json_t *image_json(const struct ml_image_spec *im)
{
	json_t *o = json_object();

	if (im->kind == ML_IMAGE_BUILD) {
		json_object_set_new(o, "kind", json_string("build"));
		json_object_set_new(o, "context", json_string(im->context));
		json_object_set_new(o, "dockerfile",
				    json_string(im->dockerfile));
		json_object_set_new(o, "args", kv_json(&im->build_args));
	} else {
		json_object_set_new(o, "kind", json_string("ref"));
		json_object_set_new(o, "ref", json_string(im->ref));
	}
	return o;
}

static json_t *health_json(const struct ml_health_spec *h)
{
	json_t *o = json_object(), *e;

	json_object_set_new(o, "path", json_string(h->path));
	set_duration(o, "interval", h->interval_ms);
	set_duration(o, "timeout", h->timeout_ms);
	set_duration(o, "start_period", h->start_period_ms);
	json_object_set_new(o, "healthy_threshold",
			    json_integer(h->healthy_threshold));
	json_object_set_new(o, "unhealthy_threshold",
			    json_integer(h->unhealthy_threshold));
	if ((e = ml_health_expect_json(h)))
		json_object_set_new(o, "expect", e);
	return o;
}

json_t *ml_health_expect_json(const struct ml_health_spec *h)
{
	json_t *o, *st;
	size_t i;

	if (!h->nexpect_status && !h->expect_body && !h->expect_json_field)
		return NULL;
	o = json_object();
	if (h->nexpect_status) {
		st = json_array();
		for (i = 0; i < h->nexpect_status; i++)
			json_array_append_new(st,
					      json_integer(h->expect_status[i]));
		json_object_set_new(o, "status", st);
	}
	if (h->expect_body)
		json_object_set_new(o, "body", json_string(h->expect_body));
	if (h->expect_json_field && h->expect_json_value)
		json_object_set_new(o, "json",
				    json_pack("{s:s,s:s}", "field",
					      h->expect_json_field, "value",
					      h->expect_json_value));
	return o;
}

static json_t *resources_json(const struct ml_resources_spec *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "cpus",
			    res->cpus > 0 ? json_real(res->cpus) : json_null());
	json_object_set_new(o, "memory_bytes",
			    res->memory_bytes ? json_integer(res->memory_bytes)
					      : json_null());
	json_object_set_new(o, "gpus",
			    res->gpus < 0 ? json_string("all")
					  : json_integer(res->gpus));
	return o;
}

static json_t *rollout_json(const struct ml_rollout_spec *ro)
{
	json_t *o = json_object(), *c = json_array();
	char buf[16];
	size_t i;

	if (ro->batch_percent) {
		snprintf(buf, sizeof(buf), "%d%%", ro->batch_percent);
		json_object_set_new(o, "batch", json_string(buf));
	} else {
		json_object_set_new(o, "batch", json_integer(ro->batch_count));
	}
	json_object_set_new(o, "failure_budget",
			    json_integer(ro->failure_budget));
	json_object_set_new(o, "auto_rollback",
			    json_boolean(ro->auto_rollback));
	set_duration(o, "drain_timeout", ro->drain_timeout_ms);
	json_object_set_new(o, "standby", json_boolean(ro->standby));
	for (i = 0; i < ro->canary_n; i++)
		json_array_append_new(c, json_integer(ro->canary_percent[i]));
	json_object_set_new(o, "canary", c);
	ml_canary_to_json(o, ro);
	return o;
}

static json_t *lb_json(const struct ml_lb_spec *lb)
{
	json_t *o;

	if (!lb->hosts.n)
		return json_null();
	o = json_object();
	json_object_set_new(o, "hosts", strlist_json(&lb->hosts));
	json_object_set_new(o, "listen", json_integer(lb->listen_port));
	json_object_set_new(
		o, "balance",
		json_string(ml_balance_name(lb->balance)));
	if (lb->tls_cert) {
		json_t *t = json_object();

		json_object_set_new(t, "cert", json_string(lb->tls_cert));
		json_object_set_new(t, "key", json_string(lb->tls_key));
		json_object_set_new(t, "redirect_http",
				    lb->tls_redirect_port
					    ? json_integer(lb->tls_redirect_port)
					    : json_null());
		json_object_set_new(o, "tls", t);
	} else {
		json_object_set_new(o, "tls", json_null());
	}
	return o;
}

static json_t *target_json(const struct ml_target *t)
{
	json_t *o = json_object(), *roles = json_array();

	json_object_set_new(o, "name", json_string(t->name));
	json_object_set_new(o, "address", json_string(t->address));
	json_object_set_new(o, "user", json_string(t->user));
	json_object_set_new(o, "port", json_integer(t->port));
	json_object_set_new(o, "identity_file",
			    t->identity_file ? json_string(t->identity_file)
					     : json_null());
	json_object_set_new(o, "jump",
			    t->jump ? json_string(t->jump) : json_null());
	json_object_set_new(o, "groups", strlist_json(&t->groups));
	json_object_set_new(o, "labels", kv_json(&t->labels));
	json_object_set_new(o, "vars", kv_json(&t->vars));
	if (t->is_app)
		json_array_append_new(roles, json_string("app"));
	if (t->is_lb)
		json_array_append_new(roles, json_string("lb"));
	json_object_set_new(o, "roles", roles);
	return o;
}

json_t *ml_config_to_json(const struct ml_config *cfg)
{
	const struct ml_playbook *pb = cfg->playbook;
	json_t *o = json_object(), *a;
	size_t i;

	/* jansson keeps insertion order: the order below is the order of
	 * the output, and maps keep the order of the files */
	json_object_set_new(o, "app", json_string(pb->app));
	json_object_set_new(o, "commit",
			    cfg->commit ? json_string(cfg->commit)
					: json_null());
	json_object_set_new(o, "image", image_json(&pb->image));
	json_object_set_new(o, "port", json_integer(pb->port));
	json_object_set_new(o, "health", health_json(&pb->health));
	json_object_set_new(o, "replicas", json_integer(pb->replicas));
	json_object_set_new(o, "env", kv_json(&pb->env));
	json_object_set_new(o, "secrets", strlist_json(&pb->secrets));
	json_object_set_new(o, "resources", resources_json(&pb->resources));
	json_object_set_new(o, "targets", strlist_json(&pb->targets));
	json_object_set_new(o, "rollout", rollout_json(&pb->rollout));
	json_object_set_new(o, "load_balancer", lb_json(&pb->lb));
	json_object_set_new(o, "prune",
			    json_pack("{s:i,s:b,s:I}", "retain",
				      pb->prune.retain, "after_deploy",
				      pb->prune.after_deploy, "disk_budget",
				      (json_int_t)pb->prune.disk_budget));
	a = json_array();
	for (i = 0; i < cfg->ntargets; i++)
		json_array_append_new(a, target_json(&cfg->targets[i]));
	json_object_set_new(o, "hosts", a);
	a = json_array();
	for (i = 0; i < cfg->njumps; i++)
		json_array_append_new(a, target_json(&cfg->jumps[i]));
	json_object_set_new(o, "jump_hosts", a);
	return o;
}
