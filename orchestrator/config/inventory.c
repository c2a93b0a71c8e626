/*
 * The inventory (inventory.yaml): YAML node tree -> struct ml_inventory,
 * with every value checked and every problem reported (file:line:col), not
 * just the first. A returned inventory satisfies:
 *
 *   - host and group names match [A-Za-z0-9][A-Za-z0-9._-]{0,62}, are
 *     unique (the YAML loader refuses duplicate keys), no name is both a
 *     host and a group, and neither is "all" (the implicit group of every
 *     host);
 *   - addresses are host names or IP literals that cannot be mistaken for
 *     ssh options (no leading '-', no whitespace or control characters);
 *   - a group's hosts name existing hosts and its children existing
 *     groups, each at most once per list;
 *   - every ssh.jump names an existing host, and a host's own jump is not
 *     itself.
 *
 * Group cycles and jump cycles are graph properties checked by the
 * resolver (resolve.c), which walks the graph anyway.
 *
 * Sizes: inventories of up to a few thousand hosts; names are looked up by
 * linear search, which stays far below the time the YAML parse takes.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/config/yaml.h"

#include <arpa/inet.h>
#include <ctype.h>

static const char *const top_keys[] = {"ssh", "vars", "hosts", "groups", NULL};
static const char *const ssh_keys[] = {"user", "port", "identity_file", "jump",
				       NULL};
static const char *const host_keys[] = {"address", "ssh", "labels", "vars",
					NULL};
static const char *const group_keys[] = {"hosts", "children", "vars", "ssh",
					 NULL};

static const char name_rule[] = "use letters, digits, '.', '_' and '-', "
				"starting with a letter or digit, at most 63 "
				"characters";
static const char var_rule[] = "use letters, digits and '_', not starting "
			       "with a digit";
static const char label_rule[] = "use letters, digits, '.', '_', '/' and "
				 "'-', starting with a letter or digit";

static bool is_null(const struct ml_ynode *n)
{
	return n->type == ML_YSCALAR && n->plain && ml_yscalar_is_null(n);
}

static bool has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_label_key(const char *s)
{
	size_t n;

	if (!isalnum((unsigned char)*s))
		return false;
	for (n = 1; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("._/-", s[n]))
			return false;
	return n <= 253;
}

/* A login name: what useradd accepts, and nothing ssh reads as an option. */
static bool is_user(const char *s)
{
	size_t n;

	if (!isalnum((unsigned char)*s) && *s != '_')
		return false;
	for (n = 1; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("._-", s[n]))
			return false;
	return n <= 32;
}

static bool is_dns_name(const char *s)
{
	size_t total = strlen(s), lab = 0, i;

	if (total > 253 || (total == 253 && s[total - 1] != '.'))
		return false;
	for (i = 0; i < total; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			/* empty label, or one ending with '-' */
			if (!lab || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum(ch) && ch != '-' && ch != '_')
			return false;
		if (!lab && ch == '-')
			return false;
		if (++lab > 63)
			return false;
	}
	return !lab || s[total - 1] != '-';
}

static bool is_ip_or_name(const char *s)
{
	unsigned char buf[16];
	char tmp[64];
	const char *pct;

	if (strchr(s, ':')) {
		/* IPv6, optionally with a zone: fe80::1%eth0 */
		size_t n = strlen(s);

		pct = strchr(s, '%');
		if (pct) {
			if (!ml_cfg_is_name(pct + 1))
				return false;
			n = (size_t)(pct - s);
		}
		if (n >= sizeof(tmp))
			return false;
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		return inet_pton(AF_INET6, tmp, buf) == 1;
	}
	if (strspn(s, "0123456789.") == strlen(s))
		return inet_pton(AF_INET, s, buf) == 1;
	return is_dns_name(s);
}

/* ---- lookups ----------------------------------------------------------- */

static struct ml_host *find_host(const struct ml_inventory *inv,
				 const char *name)
{
	size_t i;

	for (i = 0; i < inv->nhosts; i++)
		if (!strcmp(inv->hosts[i].name, name))
			return &inv->hosts[i];
	return NULL;
}

static struct ml_group *find_group(const struct ml_inventory *inv,
				   const char *name)
{
	size_t i;

	for (i = 0; i < inv->ngroups; i++)
		if (!strcmp(inv->groups[i].name, name))
			return &inv->groups[i];
	return NULL;
}

/* The closest host (want_group false) or group name to a misspelt one. */
static const char *suggest_name(const struct ml_inventory *inv,
				const char *word, bool want_group)
{
	size_t n = want_group ? inv->ngroups : inv->nhosts, i;
	const char **names = ml_xcalloc(n, sizeof(*names));
	const char *r;

	for (i = 0; i < n; i++)
		names[i] =
			want_group ? inv->groups[i].name : inv->hosts[i].name;
	r = ml_cfg_suggest(word, names, n);
	free(names);
	return r;
}

/* ---- sections ---------------------------------------------------------- */

static void parse_ssh(struct ml_cfgctx *c, const struct ml_ynode *n,
		      const char *path, struct ml_ssh_spec *ssh)
{
	const struct ml_ynode *v;
	char sub[256];
	char *s;

	if (is_null(n) || ml_cfg_want_map(c, n, path) < 0)
		return;
	ml_cfg_check_keys(c, n, ssh_keys);
	snprintf(sub, sizeof(sub), "%s.user", path);
	if ((v = ml_ymap_get(n, "user")) && ml_cfg_str(c, v, sub, &s) == 0) {
		if (!is_user(s)) {
			ml_cfg_err(c, v,
				   "'%s' must be a user name (letters, "
				   "digits, '.', '_' and '-', not starting "
				   "with '.' or '-'), got '%s'",
				   sub, ml_cfg_q(c, s));
			free(s);
		} else {
			ssh->user = s;
		}
	}
	snprintf(sub, sizeof(sub), "%s.port", path);
	if ((v = ml_ymap_get(n, "port"))) {
		int64_t port;

		if (ml_cfg_int(c, v, sub, 1, 65535, &port) == 0)
			ssh->port = (int)port;
	}
	snprintf(sub, sizeof(sub), "%s.identity_file", path);
	if ((v = ml_ymap_get(n, "identity_file")) &&
	    ml_cfg_str(c, v, sub, &s) == 0) {
		if (!*s || *s == '-' || has_space_or_ctl(s)) {
			ml_cfg_err(c, v,
				   "'%s' must be a path without spaces "
				   "or control characters, not starting with "
				   "'-', got '%s'",
				   sub, ml_cfg_q(c, s));
			free(s);
		} else {
			ssh->identity_file = s;
		}
	}
	snprintf(sub, sizeof(sub), "%s.jump", path);
	if ((v = ml_ymap_get(n, "jump")) && ml_cfg_str(c, v, sub, &s) == 0) {
		if (!ml_cfg_is_name(s)) {
			ml_cfg_err(c, v,
				   "'%s' must name a host of the "
				   "inventory, got '%s'",
				   sub, ml_cfg_q(c, s));
			free(s);
		} else {
			ssh->jump = s;
			ssh->jump_pos = (struct ml_pos){v->line, v->col};
		}
	}
}

/* A host or group name as a mapping key; reports and returns false when
 * it cannot be used. */
static bool check_name(struct ml_cfgctx *c, const struct ml_ynode *k,
		       const char *what)
{
	if (!ml_cfg_is_name(k->scalar)) {
		ml_cfg_err(c, k, "invalid %s name '%s' (%s%s)", what,
			   ml_cfg_q(c, k->scalar), name_rule,
			   k->scalar[0] == '-' ? "; a leading '-' would be "
						 "read as an ssh option"
					       : "");
		return false;
	}
	if (!strcmp(k->scalar, "all")) {
		ml_cfg_err(c, k,
			   "'all' is reserved: it is the group of every "
			   "host");
		return false;
	}
	return true;
}

static void parse_host(struct ml_cfgctx *c, struct ml_host *h,
		       const struct ml_ynode *n)
{
	const struct ml_ynode *v;
	char path[256], sub[300];
	char *s;

	snprintf(path, sizeof(path), "hosts.%s", ml_cfg_q(c, h->name));
	if (is_null(n))
		goto out;
	if (ml_cfg_want_map(c, n, path) < 0)
		goto out;
	ml_cfg_check_keys(c, n, host_keys);
	snprintf(sub, sizeof(sub), "%s.address", path);
	if ((v = ml_ymap_get(n, "address")) && ml_cfg_str(c, v, sub, &s) == 0) {
		if (s[0] == '-')
			ml_cfg_err(c, v,
				   "'%s' must not start with '-' (ssh "
				   "would read it as an option), got '%s'",
				   sub, ml_cfg_q(c, s));
		else if (has_space_or_ctl(s))
			ml_cfg_err(c, v,
				   "'%s' must not contain spaces or "
				   "control characters, got '%s'",
				   sub, ml_cfg_q(c, s));
		else if (!is_ip_or_name(s))
			ml_cfg_err(c, v,
				   "'%s' is not a valid host name or IP "
				   "address, got '%s'",
				   sub, ml_cfg_q(c, s));
		else
			h->address = s;
		if (h->address != s)
			free(s);
	}
	snprintf(sub, sizeof(sub), "%s.ssh", path);
	if ((v = ml_ymap_get(n, "ssh")))
		parse_ssh(c, v, sub, &h->ssh);
	snprintf(sub, sizeof(sub), "%s.labels", path);
	if ((v = ml_ymap_get(n, "labels")) && !is_null(v))
		ml_cfg_kvmap(c, v, sub, is_label_key, label_rule, &h->labels);
	snprintf(sub, sizeof(sub), "%s.vars", path);
	if ((v = ml_ymap_get(n, "vars")) && !is_null(v))
		ml_cfg_kvmap(c, v, sub, ml_cfg_is_ident, var_rule, &h->vars);
out:
	if (!h->address)
		h->address = ml_xstrdup(h->name);
}

static void parse_hosts(struct ml_cfgctx *c, struct ml_inventory *inv,
			const struct ml_ynode *n)
{
	size_t i;

	if (ml_cfg_want_map(c, n, "hosts") < 0)
		return;
	if (!n->npairs) {
		ml_cfg_err(c, n, "'hosts' must name at least one host");
		return;
	}
	inv->hosts = ml_xcalloc(n->npairs, sizeof(*inv->hosts));
	for (i = 0; i < n->npairs; i++) {
		const struct ml_ynode *k = n->pairs[i].key;
		struct ml_host *h;

		if (!check_name(c, k, "host"))
			continue;
		h = &inv->hosts[inv->nhosts++];
		h->name = ml_xstrdup(k->scalar);
		h->line = k->line;
		h->col = k->col;
		parse_host(c, h, n->pairs[i].value);
	}
}

static void parse_group(struct ml_cfgctx *c, struct ml_group *g,
			const struct ml_ynode *n)
{
	const struct ml_ynode *v;
	char path[256], sub[300];

	snprintf(path, sizeof(path), "groups.%s", ml_cfg_q(c, g->name));
	if (is_null(n) || ml_cfg_want_map(c, n, path) < 0)
		return;
	ml_cfg_check_keys(c, n, group_keys);
	snprintf(sub, sizeof(sub), "%s.hosts", path);
	if ((v = ml_ymap_get(n, "hosts")) && !is_null(v))
		ml_cfg_strlist(c, v, sub, true, &g->hosts);
	snprintf(sub, sizeof(sub), "%s.children", path);
	if ((v = ml_ymap_get(n, "children")) && !is_null(v))
		ml_cfg_strlist(c, v, sub, true, &g->children);
	snprintf(sub, sizeof(sub), "%s.vars", path);
	if ((v = ml_ymap_get(n, "vars")) && !is_null(v))
		ml_cfg_kvmap(c, v, sub, ml_cfg_is_ident, var_rule, &g->vars);
	snprintf(sub, sizeof(sub), "%s.ssh", path);
	if ((v = ml_ymap_get(n, "ssh")))
		parse_ssh(c, v, sub, &g->ssh);
}

static void parse_groups(struct ml_cfgctx *c, struct ml_inventory *inv,
			 const struct ml_ynode *n)
{
	size_t i;

	if (is_null(n) || ml_cfg_want_map(c, n, "groups") < 0)
		return;
	inv->groups = ml_xcalloc(n->npairs, sizeof(*inv->groups));
	for (i = 0; i < n->npairs; i++) {
		const struct ml_ynode *k = n->pairs[i].key;
		struct ml_group *g;

		if (!check_name(c, k, "group"))
			continue;
		if (find_host(inv, k->scalar)) {
			ml_cfg_err(c, k,
				   "'%s' is both a host and a group "
				   "(give them different names)",
				   k->scalar);
			continue;
		}
		g = &inv->groups[inv->ngroups++];
		g->name = ml_xstrdup(k->scalar);
		g->line = k->line;
		g->col = k->col;
		parse_group(c, g, n->pairs[i].value);
	}
}

/* ---- cross-references -------------------------------------------------- */

static void check_member_hosts(struct ml_cfgctx *c,
			       const struct ml_inventory *inv,
			       const struct ml_group *g)
{
	size_t i, j;

	for (i = 0; i < g->hosts.n; i++) {
		const char *h = g->hosts.v[i];
		const char *sg;

		for (j = 0; j < i; j++)
			if (!strcmp(g->hosts.v[j], h))
				break;
		if (j < i) {
			ml_cfg_err_pos(c, g->hosts.pos[i],
				       "group '%s' lists "
				       "host '%s' twice",
				       g->name, ml_cfg_q(c, h));
			continue;
		}
		if (find_host(inv, h))
			continue;
		if (find_group(inv, h) || !strcmp(h, "all")) {
			ml_cfg_err_pos(
				c, g->hosts.pos[i],
				"group '%s' lists "
				"'%s' as a host, but it is a group (list "
				"it under 'children')",
				g->name, h);
			continue;
		}
		sg = suggest_name(inv, h, false);
		ml_cfg_err_pos(c, g->hosts.pos[i],
			       "group '%s' lists unknown "
			       "host '%s'%s%s%s",
			       g->name, ml_cfg_q(c, h),
			       sg ? " (did you mean '" : "", sg ? sg : "",
			       sg ? "'?)" : "");
	}
}

static void check_children(struct ml_cfgctx *c, const struct ml_inventory *inv,
			   const struct ml_group *g)
{
	size_t i, j;

	for (i = 0; i < g->children.n; i++) {
		const char *ch = g->children.v[i];
		const char *sg;

		for (j = 0; j < i; j++)
			if (!strcmp(g->children.v[j], ch))
				break;
		if (j < i) {
			ml_cfg_err_pos(c, g->children.pos[i],
				       "group '%s' "
				       "lists child group '%s' twice",
				       g->name, ml_cfg_q(c, ch));
			continue;
		}
		if (find_group(inv, ch))
			continue;
		if (!strcmp(ch, "all")) {
			ml_cfg_err_pos(c, g->children.pos[i],
				       "group '%s' "
				       "cannot have 'all' as a child",
				       g->name);
			continue;
		}
		if (find_host(inv, ch)) {
			ml_cfg_err_pos(c, g->children.pos[i],
				       "group '%s' "
				       "lists '%s' as a child group, but it is "
				       "a host (list it under 'hosts')",
				       g->name, ch);
			continue;
		}
		sg = suggest_name(inv, ch, true);
		ml_cfg_err_pos(c, g->children.pos[i],
			       "group '%s' lists "
			       "unknown child group '%s'%s%s%s",
			       g->name, ml_cfg_q(c, ch),
			       sg ? " (did you mean '" : "", sg ? sg : "",
			       sg ? "'?)" : "");
	}
}

static void check_jump(struct ml_cfgctx *c, const struct ml_inventory *inv,
		       const struct ml_ssh_spec *ssh, const char *self)
{
	const char *sg;

	if (!ssh->jump)
		return;
	if (!find_host(inv, ssh->jump)) {
		sg = suggest_name(inv, ssh->jump, false);
		ml_cfg_err_pos(c, ssh->jump_pos,
			       "jump host '%s' is not a host "
			       "of the inventory%s%s%s",
			       ml_cfg_q(c, ssh->jump),
			       sg ? " (did you mean '" : "", sg ? sg : "",
			       sg ? "'?)" : "");
	} else if (self && !strcmp(ssh->jump, self)) {
		ml_cfg_err_pos(c, ssh->jump_pos,
			       "host '%s' cannot be its own "
			       "jump host",
			       self);
	}
}

static void check_refs(struct ml_cfgctx *c, const struct ml_inventory *inv)
{
	size_t i;

	check_jump(c, inv, &inv->ssh, NULL);
	for (i = 0; i < inv->ngroups; i++) {
		check_member_hosts(c, inv, &inv->groups[i]);
		check_children(c, inv, &inv->groups[i]);
		check_jump(c, inv, &inv->groups[i].ssh, NULL);
	}
	for (i = 0; i < inv->nhosts; i++)
		check_jump(c, inv, &inv->hosts[i].ssh, inv->hosts[i].name);
}

/* ---- the whole file ---------------------------------------------------- */

int ml_inventory_parse(struct ml_inventory **out, const char *name,
		       const char *data, size_t len, struct ml_diags *diags)
{
	struct ml_cfgctx c = {.file = name, .diags = diags};
	struct ml_ynode *root = NULL;
	struct ml_inventory *inv;
	const struct ml_ynode *v;
	size_t before = diags->n;
	int rc;

	*out = NULL;
	rc = ml_yaml_load(&root, name, data, len, NULL, diags);
	if (rc < 0)
		return rc;
	inv = ml_xcalloc(1, sizeof(*inv));
	inv->file = ml_xstrdup(name);
	if (!root) {
		ml_diags_add(diags, name, 1, 1,
			     "the inventory is empty (it "
			     "needs at least 'hosts')");
	} else if (root->type != ML_YMAP) {
		ml_cfg_err(&c, root, "the inventory must be a mapping, got %s",
			   ml_cfg_kind(root));
	} else {
		ml_cfg_check_keys(&c, root, top_keys);
		if ((v = ml_ymap_get(root, "ssh")))
			parse_ssh(&c, v, "ssh", &inv->ssh);
		if ((v = ml_ymap_get(root, "vars")) && !is_null(v))
			ml_cfg_kvmap(&c, v, "vars", ml_cfg_is_ident, var_rule,
				     &inv->vars);
		if ((v = ml_ymap_get(root, "hosts")))
			parse_hosts(&c, inv, v);
		else
			ml_cfg_err(&c, root, "missing required key 'hosts'");
		if ((v = ml_ymap_get(root, "groups")))
			parse_groups(&c, inv, v);
		/* without hosts, every reference would be reported again */
		if (inv->nhosts)
			check_refs(&c, inv);
	}
	ml_ynode_free(root);
	if (diags->n > before) {
		ml_inventory_free(inv);
		return ml_err_set(ML_EINVALID, "'%s' is not valid", name);
	}
	*out = inv;
	return 0;
}

void ml_inventory_free(struct ml_inventory *inv)
{
	size_t i;

	if (!inv)
		return;
	free(inv->file);
	ml_ssh_spec_release(&inv->ssh);
	ml_kvlist_release(&inv->vars);
	for (i = 0; i < inv->nhosts; i++) {
		struct ml_host *h = &inv->hosts[i];

		free(h->name);
		free(h->address);
		ml_ssh_spec_release(&h->ssh);
		ml_kvlist_release(&h->labels);
		ml_kvlist_release(&h->vars);
	}
	free(inv->hosts);
	for (i = 0; i < inv->ngroups; i++) {
		struct ml_group *g = &inv->groups[i];

		free(g->name);
		ml_strlist_release(&g->hosts);
		ml_strlist_release(&g->children);
		ml_ssh_spec_release(&g->ssh);
		ml_kvlist_release(&g->vars);
	}
	free(inv->groups);
	free(inv);
}
