/*
 * `mlctl explain KEY`: a key of the playbook or the inventory looked up in
 * the JSON Schemas that describe them (schema/playbook.schema.json and
 * schema/inventory.schema.json, embedded at build time by scripts/embed.sh
 * into $(O)/gen/schemas.c), and printed the way `kubectl explain` prints a field: where it lives, its type, default
 * and allowed values, what it means, an example as it nests in the file,
 * and the keys a mapping holds.
 *
 * The schemas use a small part of JSON Schema and this reads only that
 * part: "properties", "additionalProperties" (a mapping of user-named
 * entries), "items", "oneOf"/"anyOf" (alternatives, whose properties count
 * as the key's), "$ref" to "#/$defs/NAME" (a key's own description,
 * default and examples win over the definition's), "type", "enum",
 * "const", "default", "examples", "minimum"/"maximum", "required". Paths
 * are at most MAX_DEPTH keys deep; the schemas nest five.
 *
 * The parsed schemas are loaded once and kept for the life of the process.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/view/explain.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>

#define MAX_DEPTH 12
#define MAX_KEYS 512
#define WRAP 76

/* $(O)/gen/schemas.c */
extern const unsigned char ml_schema_playbook[];
extern const size_t ml_schema_playbook_len;
extern const unsigned char ml_schema_inventory[];
extern const size_t ml_schema_inventory_len;

struct schema {
	const char *prefix; /* first path segment naming the file */
	const char *file;   /* the file a user writes */
	const char *what;
	json_t *root;
};

static struct schema schemas[2] = {
	{ "playbook", "mlctl.yaml", "the playbook" },
	{ "inventory", "inventory.yaml", "the inventory" },
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const char *keys[MAX_KEYS + 1];
static size_t nkeys;

/* A schema node: node with its $ref followed, outer the node that held
 * the $ref (or node itself). */
struct view {
	json_t *node;
	json_t *outer;
};

static struct view resolve(const struct schema *s, json_t *n)
{
	struct view v = { n, n };
	const char *ref = json_string_value(json_object_get(n, "$ref"));

	if (ref && !strncmp(ref, "#/$defs/", 8)) {
		json_t *d = json_object_get(json_object_get(s->root, "$defs"),
					    ref + 8);

		if (d)
			v.node = d;
	}
	return v;
}

/* An annotation of v: the referencing node's own first. */
static json_t *annot(struct view v, const char *name)
{
	json_t *a = json_object_get(v.outer, name);

	return a ? a : json_object_get(v.node, name);
}

/* The alternatives of v's node: itself, then each oneOf/anyOf branch. */
static size_t branches(const struct schema *s, struct view v,
		       struct view *out, size_t max)
{
	static const char *const kw[] = { "oneOf", "anyOf" };
	size_t n = 0, i, k;
	json_t *b;

	out[n++] = v;
	for (k = 0; k < ML_ARRAY_SIZE(kw); k++)
		json_array_foreach(json_object_get(v.node, kw[k]), i, b)
			if (n < max)
				out[n++] = resolve(s, b);
	return n;
}

/* The schema of the user-named entries of v (additionalProperties that is
 * an object with a type), or NULL. */
static json_t *entry_schema(struct view v)
{
	json_t *ap = json_object_get(v.node, "additionalProperties");

	return json_is_object(ap) ? ap : NULL;
}

/* The child key name of v (properties of v or of its alternatives).
 * *parent is the node whose "properties" held it. */
static bool find_prop(struct view *child, json_t **parent,
		      const struct schema *s, struct view v, const char *name)
{
	struct view alts[8];
	size_t n = branches(s, v, alts, ML_ARRAY_SIZE(alts)), i;

	for (i = 0; i < n; i++) {
		json_t *p = json_object_get(
			json_object_get(alts[i].node, "properties"), name);

		if (p) {
			*child = resolve(s, p);
			*parent = alts[i].node;
			return true;
		}
	}
	return false;
}

/* The names of v's keys, in schema order, once each; "NAME" for
 * user-named entries. Returns the count (at most max). */
static size_t child_names(const struct schema *s, struct view v,
			  const char **out, size_t max)
{
	struct view alts[8];
	size_t n = branches(s, v, alts, ML_ARRAY_SIZE(alts)), i, k, c = 0;
	const char *name;
	json_t *p;

	for (i = 0; i < n; i++) {
		json_object_foreach(json_object_get(alts[i].node,
						    "properties"), name, p) {
			for (k = 0; k < c; k++)
				if (!strcmp(out[k], name))
					break;
			if (k == c && c < max)
				out[c++] = name;
		}
		if (entry_schema(alts[i]) && c < max) {
			for (k = 0; k < c; k++)
				if (!strcmp(out[k], "NAME"))
					break;
			if (k == c)
				out[c++] = "NAME";
		}
	}
	return c;
}

/* The child of v for path segment seg: a key, or any name of a
 * user-named entry. */
static bool find_child(struct view *child, json_t **parent, bool *is_entry,
		       const struct schema *s, struct view v, const char *seg)
{
	struct view alts[8];
	size_t n, i;

	*is_entry = false;
	if (find_prop(child, parent, s, v, seg))
		return true;
	n = branches(s, v, alts, ML_ARRAY_SIZE(alts));
	for (i = 0; i < n; i++) {
		json_t *e = entry_schema(alts[i]);

		if (e) {
			*child = resolve(s, e);
			*parent = NULL;
			*is_entry = true;
			return true;
		}
	}
	return false;
}

static void add_keys(const struct schema *s, struct view v,
		     const char *path, int depth)
{
	const char *names[64];
	size_t n, i;

	if (depth >= MAX_DEPTH)
		return;
	n = child_names(s, v, names, ML_ARRAY_SIZE(names));
	for (i = 0; i < n && nkeys < MAX_KEYS; i++) {
		struct view c;
		json_t *parent;
		bool entry;
		char *p;

		if (!find_child(&c, &parent, &entry, s, v, names[i]))
			continue;
		p = *path ? ml_xasprintf("%s.%s", path, names[i])
			  : ml_xstrdup(names[i]);
		keys[nkeys++] = p;
		add_keys(s, c, p, depth + 1);
	}
}

static void load(void)
{
	const unsigned char *data[2] = { ml_schema_playbook,
					 ml_schema_inventory };
	size_t len[2] = { ml_schema_playbook_len, ml_schema_inventory_len };
	json_error_t e;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(schemas); i++) {
		schemas[i].root = json_loadb((const char *)data[i], len[i], 0,
					     &e);
		if (!schemas[i].root)
			BUG("embedded %s schema: %s", schemas[i].prefix,
			    e.text);
	}
	/* playbook keys bare, inventory keys under "inventory." */
	add_keys(&schemas[0], resolve(&schemas[0], schemas[0].root), "", 0);
	add_keys(&schemas[1], resolve(&schemas[1], schemas[1].root),
		 "inventory", 0);
}

int ml_explain_keys(const char *const **out)
{
	const char **v;

	pthread_once(&load_once, load);
	v = ml_xcalloc(nkeys + 1, sizeof(*v));
	memcpy(v, keys, nkeys * sizeof(*v));
	*out = v;
	return 0;
}

/* ---- describing a node ------------------------------------------------ */

static const char *type_word(const char *t)
{
	if (!strcmp(t, "object"))
		return "mapping";
	if (!strcmp(t, "array"))
		return "list";
	return t;
}

/* Append word to the " or "-joined list in b unless it is there. */
static void add_unique(struct ml_buf *b, const char *word)
{
	const char *p = ml_buf_str(b), *end;
	size_t len = strlen(word);

	while (*p) {
		end = strstr(p, " or ");
		if ((size_t)((end ? end : p + strlen(p)) - p) == len &&
		    !strncmp(p, word, len))
			return;
		if (!end)
			break;
		p = end + 4;
	}
	ml_buf_addf(b, "%s%s", b->len ? " or " : "", word);
}

static void describe_type(struct ml_buf *b, const struct schema *s,
			  struct view v, int depth)
{
	struct view alts[8];
	json_t *t = json_object_get(v.node, "type"), *x, *items;
	size_t i, n;

	if (depth > 4)
		return;
	if (json_is_array(json_object_get(v.node, "enum"))) {
		add_unique(b, "string");
		return;
	}
	if ((x = json_object_get(v.node, "const"))) {
		char *c = json_dumps(x, JSON_ENCODE_ANY);

		add_unique(b, c ? c : "?");
		free(c);
		return;
	}
	json_t *one = json_is_string(t) ? t : NULL;
	for (i = 0; i < (json_is_array(t) ? json_array_size(t) : !!one);
	     i++) {
		const char *w = json_string_value(one ? one
						      : json_array_get(t, i));

		if (!w)
			continue;
		if (!strcmp(w, "array") &&
		    (items = json_object_get(v.node, "items"))) {
			struct ml_buf it = ML_BUF_INIT(512);
			char *lw;

			describe_type(&it, s, resolve(s, items), depth + 1);
			/* "list of strings", "list of string or null" */
			lw = ml_xasprintf("list of %s%s",
					  it.len ? ml_buf_str(&it) : "values",
					  it.len && !strchr(it.data, ' ')
						  ? "s" : "");
			add_unique(b, lw);
			free(lw);
			ml_buf_release(&it);
		} else if (!strcmp(w, "object") && entry_schema(v) &&
			   !json_object_get(v.node, "properties")) {
			add_unique(b, "mapping of names to values");
		} else {
			add_unique(b, type_word(w));
		}
	}
	n = branches(s, v, alts, ML_ARRAY_SIZE(alts));
	for (i = 1; i < n; i++)
		describe_type(b, s, alts[i], depth + 1);
}

/* "one of a, b, c" for an enum, limits for numbers. */
static void describe_values(struct ml_buf *b, struct view v)
{
	json_t *e = json_object_get(v.node, "enum"), *x;
	json_t *mn = json_object_get(v.node, "minimum");
	json_t *mx = json_object_get(v.node, "maximum");
	size_t i;

	if (json_is_array(e)) {
		ml_buf_addstr(b, "one of ");
		json_array_foreach(e, i, x)
			ml_buf_addf(b, "%s%s", i ? ", " : "",
				    json_string_value(x) ?: "?");
	} else if (json_is_integer(mn) && json_is_integer(mx)) {
		ml_buf_addf(b, "%" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
			    json_integer_value(mn), json_integer_value(mx));
	} else if (json_is_number(mn)) {
		ml_buf_addf(b, "at least %g", json_number_value(mn));
	}
}

/* ---- YAML for examples ------------------------------------------------ */

static bool plain_ok(const char *s)
{
	static const char *const words[] = { "true", "false", "null", "yes",
					     "no", "on", "off", "~", "" };
	const char *p;
	size_t i;
	char *end;

	for (i = 0; i < ML_ARRAY_SIZE(words); i++)
		if (!strcasecmp(s, words[i]))
			return false;
	strtod(s, &end);
	if (end != s && !*end)
		return false;
	if (!isalnum((unsigned char)*s) && *s != '/' && *s != '.')
		return false;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._/%@+-", *p) &&
		    !(*p == ':' && p[1] && p[1] != ' '))
			return false;
	return true;
}

static void yaml_scalar(struct ml_buf *b, json_t *x)
{
	char *t;

	if (json_is_string(x) && plain_ok(json_string_value(x))) {
		ml_buf_addstr(b, json_string_value(x));
		return;
	}
	t = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
	ml_buf_addstr(b, t ? t : "?");
	free(t);
}

static bool all_scalars(json_t *a)
{
	json_t *x;
	size_t i;

	json_array_foreach(a, i, x)
		if (json_is_object(x) || json_is_array(x))
			return false;
	return true;
}

static void yaml_value(struct ml_buf *b, const char *key, json_t *x,
		       int indent)
{
	const char *k;
	json_t *c;
	size_t i;

	ml_buf_addf(b, "%*s%s:", indent, "", key);
	if (json_is_object(x) && json_object_size(x)) {
		ml_buf_addch(b, '\n');
		json_object_foreach(x, k, c)
			yaml_value(b, k, c, indent + 2);
		return;
	}
	if (json_is_array(x) && json_array_size(x) && !all_scalars(x)) {
		ml_buf_addch(b, '\n');
		json_array_foreach(x, i, c) {
			ml_buf_addf(b, "%*s- ", indent + 2, "");
			yaml_scalar(b, c);
			ml_buf_addch(b, '\n');
		}
		return;
	}
	ml_buf_addch(b, ' ');
	if (json_is_array(x)) {
		ml_buf_addch(b, '[');
		json_array_foreach(x, i, c) {
			if (i)
				ml_buf_addstr(b, ", ");
			yaml_scalar(b, c);
		}
		ml_buf_addch(b, ']');
	} else if (json_is_object(x)) {
		ml_buf_addstr(b, "{}");
	} else {
		yaml_scalar(b, x);
	}
	ml_buf_addch(b, '\n');
}

/* A value for v: its first example, else one built from its keys' or
 * entries' examples, else its default. New reference or NULL. */
static json_t *example_of(const struct schema *s, struct view v, int depth)
{
	struct view alts[8], c;
	json_t *ex = annot(v, "examples"), *d, *o = NULL, *parent;
	const char *names[64];
	size_t n, i;
	bool entry;

	if (json_array_size(ex))
		return json_incref(json_array_get(ex, 0));
	if (depth < MAX_DEPTH) {
		n = child_names(s, v, names, ML_ARRAY_SIZE(names));
		for (i = 0; i < n; i++) {
			json_t *ce;

			if (!find_child(&c, &parent, &entry, s, v, names[i]))
				continue;
			ce = example_of(s, c, depth + 1);
			if (!ce)
				continue;
			if (!o)
				o = json_object();
			json_object_set_new(o, names[i], ce);
		}
		if (o)
			return o;
	}
	d = annot(v, "default");
	if (d && !json_is_null(d))
		return json_incref(d);
	n = branches(s, v, alts, ML_ARRAY_SIZE(alts));
	for (i = 1; i < n && depth < MAX_DEPTH; i++)
		if ((o = example_of(s, alts[i], depth + 1)))
			return o;
	return NULL;
}

/* Append text wrapped at WRAP columns, each line indented by 4. */
static void wrapped(struct ml_buf *b, const char *text)
{
	const char *p = text;

	while (*p) {
		size_t len = strlen(p), cut = len;

		if (len > WRAP - 4) {
			cut = WRAP - 4;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (!cut)
				cut = strcspn(p, " ");
		}
		ml_buf_addf(b, "    %.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

/* ---- lookup ----------------------------------------------------------- */

struct found {
	const struct schema *s;
	struct view v;
	bool required;
	char *segs[MAX_DEPTH]; /* path inside the file, as typed */
	size_t nsegs;
};

static void found_release(struct found *f)
{
	size_t i;

	for (i = 0; i < f->nsegs; i++)
		free(f->segs[i]);
	f->nsegs = 0;
}

/* Look up the segments of path in s. On failure *bad is the index of the
 * first unknown segment and *at the node it was looked up in. */
static bool lookup(struct found *f, const struct schema *s, char **segs,
		   size_t n, size_t *bad, struct view *at)
{
	struct view v = resolve(s, s->root);
	json_t *parent = NULL;
	bool entry;
	size_t i;

	f->s = s;
	f->required = false;
	for (i = 0; i < n; i++) {
		struct view c;

		if (!find_child(&c, &parent, &entry, s, v, segs[i])) {
			*bad = i;
			*at = v;
			return false;
		}
		f->required = false;
		if (parent) {
			json_t *r;
			size_t k;

			json_array_foreach(json_object_get(parent, "required"),
					   k, r)
				if (!strcmp(json_string_value(r) ?: "",
					    segs[i]))
					f->required = true;
		}
		v = c;
	}
	f->v = v;
	return true;
}

static void render(struct ml_buf *b, const struct found *f)
{
	struct ml_buf t = ML_BUF_INIT(4096);
	json_t *d = annot(f->v, "default"), *ex;
	const char *desc = json_string_value(annot(f->v, "description"));
	const char *names[64];
	size_t n, i;

	ml_buf_addstr(b, "KEY:      ");
	if (f->s == &schemas[1] || !f->nsegs)
		ml_buf_addf(b, "%s%s", f->s->prefix, f->nsegs ? "." : "");
	for (i = 0; i < f->nsegs; i++)
		ml_buf_addf(b, "%s%s", i ? "." : "", f->segs[i]);
	ml_buf_addch(b, '\n');
	ml_buf_addf(b, "FILE:     %s (%s)\n", f->s->file, f->s->what);
	describe_type(&t, f->s, f->v, 0);
	ml_buf_addf(b, "TYPE:     %s\n", t.len ? ml_buf_str(&t) : "any");
	ml_buf_reset(&t);
	if (d) {
		char *ds = json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT);

		ml_buf_addf(b, "DEFAULT:  %s\n", ds ? ds : "?");
		free(ds);
	} else {
		ml_buf_addf(b, "DEFAULT:  %s\n",
			    f->required ? "none (required)" : "none");
	}
	describe_values(&t, f->v);
	if (t.len)
		ml_buf_addf(b, "VALUES:   %s\n", ml_buf_str(&t));
	ml_buf_reset(&t);
	if (!desc)
		desc = json_string_value(json_object_get(f->s->root, "title"));
	ml_buf_addstr(b, "\nDESCRIPTION:\n");
	wrapped(b, desc ? desc : "(none)");

	ex = example_of(f->s, f->v, 0);
	if (ex) {
		ml_buf_addstr(b, "\nEXAMPLE:\n");
		if (!f->nsegs && json_is_object(ex)) {
			const char *k;
			json_t *c;

			json_object_foreach(ex, k, c)
				yaml_value(b, k, c, 4);
		} else {
			for (i = 0; i + 1 < f->nsegs; i++)
				ml_buf_addf(b, "%*s%s:\n", 4 + 2 * (int)i, "",
					    f->segs[i]);
			yaml_value(b, f->nsegs ? f->segs[f->nsegs - 1] : "?",
				   ex, 4 + 2 * (int)(f->nsegs ? f->nsegs - 1
							       : 0));
		}
		json_decref(ex);
	}

	n = child_names(f->s, f->v, names, ML_ARRAY_SIZE(names));
	if (n)
		ml_buf_addstr(b, "\nKEYS:\n");
	for (i = 0; i < n; i++) {
		struct view cv;
		json_t *parent;
		bool entry;

		if (!find_child(&cv, &parent, &entry, f->s, f->v, names[i]))
			continue;
		describe_type(&t, f->s, cv, 0);
		ml_buf_addf(b, "    %-22s %s\n", names[i], ml_buf_str(&t));
		ml_buf_reset(&t);
	}
	ml_buf_release(&t);
}

/* Split key at dots into at most MAX_DEPTH owned segments. */
static int split(char **segs, size_t *n, const char *key)
{
	const char *p = key;

	*n = 0;
	while (*p) {
		size_t len = strcspn(p, ".");

		if (!len || *n == MAX_DEPTH || (p[len] == '.' && !p[len + 1])) {
			while (*n)
				free(segs[--*n]);
			return ml_err_set(ML_EUSAGE,
					  "'%.80s' is not a key: write keys "
					  "as they nest, joined by dots "
					  "(rollout.canary)",
					  key);
		}
		segs[(*n)++] = ml_xstrndup(p, len);
		p += len;
		if (*p == '.')
			p++;
	}
	return 0;
}

/* The key a near miss probably meant, as a message suffix in b. */
static void suggest(struct ml_buf *b, const struct schema *s, char **segs,
		    size_t bad, struct view at, const char *key)
{
	const char *names[64], *sg;
	size_t n = child_names(s, at, names, ML_ARRAY_SIZE(names)), i, hits;
	const char *const *all;

	sg = ml_cfg_suggest(segs[bad], names, n);
	if (sg) {
		ml_buf_addstr(b, " (did you mean '");
		if (s == &schemas[1])
			ml_buf_addstr(b, "inventory.");
		for (i = 0; i < bad; i++)
			ml_buf_addf(b, "%s.", segs[i]);
		ml_buf_addf(b, "%s'?)", sg);
		return;
	}
	ml_explain_keys(&all);
	for (n = 0; all[n]; n++)
		;
	sg = ml_cfg_suggest(key, all, n);
	if (sg) {
		ml_buf_addf(b, " (did you mean '%s'?)", sg);
		free((void *)all);
		return;
	}
	/* a key written without its parents: "canary" */
	for (i = hits = 0; all[i] && hits < 4; i++) {
		const char *dot = strrchr(all[i], '.');

		if (dot && !strcmp(dot + 1, segs[bad])) {
			ml_buf_addf(b, "%s'%s'", hits ? ", " : " (did you mean ",
				    all[i]);
			hits++;
		}
	}
	if (hits)
		ml_buf_addstr(b, "?)");
	free((void *)all);
}

int ml_explain(struct ml_buf *out, const char *key)
{
	char *segs[MAX_DEPTH];
	size_t n = 0, bad = 0, i, skip = 0;
	struct found f = { 0 };
	const struct schema *s = &schemas[0];
	struct view at = { 0 };
	struct ml_buf msg = ML_BUF_INIT(1024);
	int rc;

	pthread_once(&load_once, load);
	rc = split(segs, &n, key);
	if (rc < 0)
		return rc;
	if (n && !strcmp(segs[0], "inventory")) {
		s = &schemas[1];
		skip = 1;
	} else if (n && !strcmp(segs[0], "playbook")) {
		skip = 1;
	}
	if (!lookup(&f, s, segs + skip, n - skip, &bad, &at)) {
		size_t bad2;
		struct view at2;

		/* an inventory key written without "inventory." */
		if (!skip && lookup(&f, &schemas[1], segs, n, &bad2, &at2))
			goto found;
		suggest(&msg, s, segs + skip, bad, at, key);
		rc = ml_err_set(ML_ENOTFOUND, "no key '%.120s' in %s%s", key,
				s->file, ml_buf_str(&msg));
		goto out;
	}
found:
	for (i = skip; i < n; i++)
		f.segs[f.nsegs++] = ml_xstrdup(segs[i]);
	render(out, &f);
	rc = 0;
out:
	found_release(&f);
	for (i = 0; i < n; i++)
		free(segs[i]);
	ml_buf_release(&msg);
	return rc;
}
