/*
 * The libyaml wrapper (yaml.h): turns one YAML document into a tree of
 * struct ml_ynode, enforcing our limits, and reports every problem as a
 * diagnostic with file:line:column. The only file that includes <yaml.h>.
 *
 * How: libyaml's event parser (not its document loader, which has no
 * limits and keeps aliases as shared nodes) drives a loader with an
 * explicit stack of open collections. A collection is attached to its
 * parent when it starts, so the whole partial tree always hangs off
 * L->root and one ml_ynode_free() cleans up after any error.
 *
 * Invariants:
 * - L->nstack == current nesting depth <= max_depth (clamped to
 *   ML_YDEPTH_HARD so that the recursive copy and free stay shallow).
 * - L->nodes counts every node made, original or alias copy, and never
 *   passes max_nodes; L->bytes counts scalar bytes the same way and never
 *   passes 16 * max_bytes (an alias bomb built of long strings instead of
 *   many nodes). Copies stop the moment a budget is spent, so the work
 *   done is bounded by the budgets, not by what the aliases would expand
 *   to.
 * - Anchors point at nodes that live until the end of the load: nodes
 *   dropped from the tree (the "<<" merge entries) move to L->grave, which
 *   is freed last.
 * - An anchor is registered when its node starts and marked done when it
 *   ends, so an alias to an enclosing node is caught ("&a [*a]").
 *
 * Errors come in two kinds. Hard ones (syntax, limits, aliases, a second
 * document) stop parsing. Soft ones (duplicate or non-string keys, tags,
 * NUL in a string, a bad merge) are recorded and parsing goes on, so that
 * one run shows them all, up to MAX_DIAGS.
 *
 * Sizes: input up to 1 MiB by default; at most max_nodes nodes of about
 * 80 bytes each plus their text. Duplicate keys are found by sorting each
 * mapping's keys (n log n), never by comparing all pairs.
 */
#include "common/ml.h"

#include <ctype.h>
#include <limits.h>
#include <yaml.h>

#include "orchestrator/config/yaml.h"

#define ML_YDEPTH_HARD 1000
#define MAX_DIAGS 50
#define TAG_PREFIX "tag:yaml.org,2002:"

const struct ml_ylimits ml_ylimits_default = {
	.max_bytes = (size_t)1 << 20,
	.max_depth = 32,
	.max_aliases = 100,
	.max_nodes = 100000,
	.max_scalar = (size_t)64 << 10,
};

struct yframe {
	struct ml_ynode *node;
	size_t cap;	 /* of node->items or node->pairs */
	bool want_value; /* map: last pair has a key and no value yet */
	size_t anchor;	 /* index in L->anchors + 1, 0 when none */
};

struct yanchor {
	char *name;
	struct ml_ynode *node;
	bool done;
};

struct loader {
	const char *name;
	const char *data;
	size_t len;
	struct ml_ylimits lim;
	size_t max_text;
	struct ml_diags *diags;
	size_t ndiags;
	bool stop;
	size_t nodes, bytes, aliases;
	int ndocs;
	struct ml_ynode *root;
	struct yframe *stack;
	size_t nstack, capstack;
	struct yanchor *anchors;
	size_t nanchors, capanchors;
	struct ml_ynode **grave;
	size_t ngrave, capgrave;
};

/* ---- messages ------------------------------------------------------ */

static int mark_int(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v + 1;
}

static void vdiag(struct loader *L, int line, int col, const char *fmt,
		  va_list ap) ML_PRINTF(4, 0);

static void vdiag(struct loader *L, int line, int col, const char *fmt,
		  va_list ap)
{
	struct ml_buf b = ML_BUF_INIT(4096);

	if (L->ndiags > MAX_DIAGS)
		return;
	if (L->ndiags == MAX_DIAGS) {
		ml_diags_add(L->diags, L->name, line, col,
			     "too many errors, stopping here");
		L->ndiags++;
		L->stop = true;
		return;
	}
	if (ml_buf_vaddf(&b, fmt, ap) < 0)
		ml_buf_addstr(&b, "(message too long)");
	ml_diags_add(L->diags, L->name, line, col, "%s", ml_buf_str(&b));
	ml_buf_release(&b);
	L->ndiags++;
}

/* A problem that leaves the tree usable: record it and go on. */
static void soft(struct loader *L, int line, int col, const char *fmt, ...)
	ML_PRINTF(4, 5);

static void soft(struct loader *L, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(L, line, col, fmt, ap);
	va_end(ap);
}

/* A problem after which parsing cannot go on. */
static void hard(struct loader *L, int line, int col, const char *fmt, ...)
	ML_PRINTF(4, 5);

static void hard(struct loader *L, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(L, line, col, fmt, ap);
	va_end(ap);
	L->stop = true;
}

/*
 * Text from the file, made safe and short for a message: control bytes
 * become \xNN, and more than 60 bytes are cut (on a UTF-8 boundary) with
 * "...". out must hold at least 256 bytes.
 */
static const char *quote(char *out, size_t outsz, const char *s, size_t len)
{
	size_t i, o = 0;
	const size_t cut = 60;

	for (i = 0; i < len && o + 8 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= cut && (c & 0xc0) != 0x80) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
			int n = snprintf(out + o, outsz - o, "\\x%02x", c);

			o += n > 0 ? (size_t)n : 0;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

/* line and column (1-based, in characters) of byte offset off of the
 * input, for reader errors, which libyaml gives as an offset only. */
static void offset_pos(const struct loader *L, size_t off, int *line, int *col)
{
	size_t i, ln = 0, cl = 0;

	if (off > L->len)
		off = L->len;
	for (i = 0; i < off; i++) {
		unsigned char c = (unsigned char)L->data[i];
		bool crlf =
			c == '\r' && i + 1 < L->len && L->data[i + 1] == '\n';

		if (c == '\n' || (c == '\r' && !crlf)) {
			ln++;
			cl = 0;
		} else if ((c & 0xc0) != 0x80) {
			cl++;
		}
	}
	*line = mark_int(ln);
	*col = mark_int(cl);
}

static void syntax_error(struct loader *L, const yaml_parser_t *p)
{
	char problem[256], context[256];
	int line, col;

	if (p->error == YAML_MEMORY_ERROR) {
		hard(L, 0, 0, "out of memory while parsing");
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset;

		/* libyaml points at the bad continuation byte; the user
		 * wants the character it belongs to */
		if (p->problem && strstr(p->problem, "trailing")) {
			while (off > 0 && off <= L->len &&
			       ((unsigned char)L->data[off - 1] & 0xc0) == 0x80)
				off--;
			if (off > 0)
				off--;
		}
		offset_pos(L, off, &line, &col);
		if (p->problem && strstr(p->problem, "control characters") &&
		    p->problem_value >= 0 && p->problem_value <= 0xff)
			hard(L, line, col,
			     "control character 0x%02x is not allowed",
			     p->problem_value);
		else if (p->problem && strstr(p->problem, "control characters"))
			hard(L, line, col,
			     "control character U+%04X is not allowed",
			     (unsigned)p->problem_value);
		else if (p->problem_value >= 0 && p->problem_value <= 0xff)
			hard(L, line, col,
			     "invalid UTF-8 (%s 0x%02x); save the file as "
			     "UTF-8",
			     p->problem ? p->problem : "bad byte",
			     p->problem_value);
		else
			hard(L, line, col,
			     "invalid UTF-8 (%s); save the file as UTF-8",
			     p->problem ? p->problem : "bad byte");
		return;
	}
	line = mark_int(p->problem_mark.line);
	col = mark_int(p->problem_mark.column);
	if (p->problem && p->problem_mark.index < L->len &&
	    L->data[p->problem_mark.index] == '\t' &&
	    (strstr(p->problem, "cannot start any token") ||
	     strstr(p->problem, "tab character"))) {
		hard(L, line, col,
		     "tab character used for indentation; YAML needs spaces");
		return;
	}
	snprintf(problem, sizeof(problem), "%s",
		 p->problem ? p->problem : "syntax error");
	problem[0] = (char)tolower((unsigned char)problem[0]);
	if (!p->context) {
		hard(L, line, col, "%s", problem);
		return;
	}
	snprintf(context, sizeof(context), "%s", p->context);
	context[0] = (char)tolower((unsigned char)context[0]);
	if (p->context_mark.line != p->problem_mark.line)
		hard(L, line, col, "%s (%s at line %d, column %d)", problem,
		     context, mark_int(p->context_mark.line),
		     mark_int(p->context_mark.column));
	else
		hard(L, line, col, "%s (%s)", problem, context);
}

static void nodes_exceeded(struct loader *L, int line, int col)
{
	if (L->aliases)
		hard(L, line, col,
		     "document expands to more than %zu nodes (alias bomb?)",
		     L->lim.max_nodes);
	else
		hard(L, line, col, "document has more than %zu nodes",
		     L->lim.max_nodes);
}

static void depth_exceeded(struct loader *L, int line, int col)
{
	hard(L, line, col, "nesting deeper than %d levels", L->lim.max_depth);
}

/* ---- nodes --------------------------------------------------------- */

void ml_ynode_free(struct ml_ynode *n)
{
	size_t i;

	if (!n)
		return;
	free(n->scalar);
	for (i = 0; i < n->nitems; i++)
		ml_ynode_free(n->items[i]);
	free(n->items);
	for (i = 0; i < n->npairs; i++) {
		ml_ynode_free(n->pairs[i].key);
		ml_ynode_free(n->pairs[i].value);
	}
	free(n->pairs);
	free(n);
}

/* A new node counted against max_nodes; NULL (after a diagnostic) when
 * the budget is spent. */
static struct ml_ynode *new_node(struct loader *L, enum ml_ynode_type t,
				 int line, int col)
{
	struct ml_ynode *n;

	if (L->nodes >= L->lim.max_nodes) {
		nodes_exceeded(L, line, col);
		return NULL;
	}
	L->nodes++;
	n = ml_xcalloc(1, sizeof(*n));
	n->type = t;
	n->line = line;
	n->col = col;
	return n;
}

enum copy_fail { COPY_OK, COPY_NODES, COPY_BYTES, COPY_DEPTH };

/*
 * Deep copy of src placed at nesting depth depth (src itself, if a
 * collection, is at depth; its children one deeper). Counts every node
 * and byte; on a spent budget frees what it made and returns NULL with
 * *why set. Recursion is bounded by max_depth.
 */
static struct ml_ynode *copy_node(struct loader *L, const struct ml_ynode *src,
				  int depth, enum copy_fail *why)
{
	struct ml_ynode *n;
	size_t i;

	if (src->type != ML_YSCALAR && depth > L->lim.max_depth) {
		*why = COPY_DEPTH;
		return NULL;
	}
	if (L->nodes >= L->lim.max_nodes) {
		*why = COPY_NODES;
		return NULL;
	}
	L->nodes++;
	n = ml_xcalloc(1, sizeof(*n));
	n->type = src->type;
	n->line = src->line;
	n->col = src->col;
	n->plain = src->plain;
	switch (src->type) {
	case ML_YSCALAR:
		if (src->len > L->max_text - L->bytes) {
			*why = COPY_BYTES;
			goto fail;
		}
		L->bytes += src->len;
		n->scalar = ml_xmalloc(src->len + 1);
		memcpy(n->scalar, src->scalar, src->len + 1);
		n->len = src->len;
		break;
	case ML_YSEQ:
		n->items = ml_xcalloc(src->nitems, sizeof(*n->items));
		for (i = 0; i < src->nitems; i++) {
			n->items[i] =
				copy_node(L, src->items[i], depth + 1, why);
			if (!n->items[i])
				goto fail;
			n->nitems++;
		}
		break;
	case ML_YMAP:
		n->pairs = ml_xcalloc(src->npairs, sizeof(*n->pairs));
		for (i = 0; i < src->npairs; i++) {
			struct ml_ypair *d = &n->pairs[n->npairs];

			d->key =
				copy_node(L, src->pairs[i].key, depth + 1, why);
			if (!d->key)
				goto fail;
			n->npairs++;
			d->value = copy_node(L, src->pairs[i].value, depth + 1,
					     why);
			if (!d->value)
				goto fail;
		}
		break;
	}
	return n;
fail:
	ml_ynode_free(n);
	return NULL;
}

static void bury(struct loader *L, struct ml_ynode *n)
{
	ML_GROW(L->grave, L->ngrave + 1, L->capgrave);
	L->grave[L->ngrave++] = n;
}

/* ---- mappings: duplicate keys and "<<" ----------------------------- */

struct keyref {
	const struct ml_ynode *key;
	size_t idx; /* order of appearance, breaks ties: stable */
};

static int key_cmp(const struct ml_ynode *a, const struct ml_ynode *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->scalar, b->scalar, a->len);
}

static int keyref_cmp(const void *pa, const void *pb)
{
	const struct keyref *a = pa, *b = pb;
	int c = key_cmp(a->key, b->key);

	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool is_merge_key(const struct ml_ynode *k)
{
	return k->type == ML_YSCALAR && k->plain && k->len == 2 &&
	       !memcmp(k->scalar, "<<", 2);
}

/* Sorted references to the scalar keys of m; *n receives the count. */
static struct keyref *sorted_keys(const struct ml_ypair *pairs, size_t np,
				  size_t *n)
{
	struct keyref *r = ml_xcalloc(np, sizeof(*r));
	size_t i, k = 0;

	for (i = 0; i < np; i++) {
		if (pairs[i].key->type != ML_YSCALAR)
			continue;
		r[k].key = pairs[i].key;
		r[k].idx = i;
		k++;
	}
	qsort(r, k, sizeof(*r), keyref_cmp);
	*n = k;
	return r;
}

static bool keys_have(const struct keyref *r, size_t n,
		      const struct ml_ynode *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(r[mid].key, key);

		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void check_duplicates(struct loader *L, const struct keyref *r, size_t n)
{
	char q[256];
	size_t i, first = 0;

	for (i = 1; i < n; i++) {
		if (key_cmp(r[first].key, r[i].key)) {
			first = i;
			continue;
		}
		soft(L, r[i].key->line, r[i].key->col,
		     "duplicate key '%s' (first defined at line %d, "
		     "column %d)",
		     quote(q, sizeof(q), r[i].key->scalar, r[i].key->len),
		     r[first].key->line, r[first].key->col);
	}
}

static void copy_failed(struct loader *L, enum copy_fail why, int line, int col)
{
	switch (why) {
	case COPY_DEPTH:
		depth_exceeded(L, line, col);
		break;
	case COPY_BYTES:
		hard(L, line, col,
		     "document expands to more than %zu bytes of text "
		     "(alias bomb?)",
		     L->max_text);
		break;
	default:
		nodes_exceeded(L, line, col);
		break;
	}
}

/* Whether a "<<" value can be merged: a mapping or a sequence of them;
 * otherwise a diagnostic and false. */
static bool merge_sources_ok(struct loader *L, const struct ml_ynode *v)
{
	size_t i;

	if (v->type == ML_YMAP)
		return true;
	if (v->type == ML_YSEQ) {
		for (i = 0; i < v->nitems; i++)
			if (v->items[i]->type != ML_YMAP)
				break;
		if (i == v->nitems)
			return true;
		v = v->items[i];
	}
	soft(L, v->line, v->col,
	     "the merge key '<<' needs a mapping or a sequence of mappings, "
	     "not %s",
	     ml_ynode_type_name(v));
	return false;
}

struct merge_cand {
	const struct ml_ypair *pair;
	size_t owner; /* index in m->pairs of the "<<" it comes from */
	bool keep;
};

/*
 * Replace each "<<" entry of m by copies of the pairs it merges: keys
 * written in m win, and among merged mappings the first to name a key
 * wins (YAML's merge key type). The "<<" entries go to the grave, not to
 * free(), because anchors may point into them. own: m's keys, sorted.
 */
static void apply_merges(struct loader *L, struct ml_ynode *m,
			 const struct keyref *own, size_t nown)
{
	struct merge_cand *cand = NULL;
	size_t ncand = 0, capcand = 0, nout = 0, i, j, k, c;
	struct keyref *cref;
	struct ml_ypair *out;

	for (i = 0; i < m->npairs; i++) {
		const struct ml_ynode *v = m->pairs[i].value;
		const struct ml_ynode *const *src = &v;
		size_t nsrc = 1;

		if (!is_merge_key(m->pairs[i].key) || !merge_sources_ok(L, v))
			continue;
		if (v->type == ML_YSEQ) {
			src = (const struct ml_ynode *const *)v->items;
			nsrc = v->nitems;
		}
		for (j = 0; j < nsrc; j++)
			for (k = 0; k < src[j]->npairs; k++) {
				/* a non-string key was reported already */
				if (src[j]->pairs[k].key->type != ML_YSCALAR)
					continue;
				ML_GROW(cand, ncand + 1, capcand);
				cand[ncand].pair = &src[j]->pairs[k];
				cand[ncand].owner = i;
				cand[ncand].keep = false;
				ncand++;
			}
	}

	/* Keep the first candidate for each key that m does not write. */
	cref = ml_xcalloc(ncand ? ncand : 1, sizeof(*cref));
	for (c = 0; c < ncand; c++) {
		cref[c].key = cand[c].pair->key;
		cref[c].idx = c;
	}
	qsort(cref, ncand, sizeof(*cref), keyref_cmp);
	for (c = 0; c < ncand; c++)
		if ((!c || key_cmp(cref[c - 1].key, cref[c].key)) &&
		    !keys_have(own, nown, cref[c].key))
			cand[cref[c].idx].keep = true;
	free(cref);

	/* Rebuild the pairs, the merged ones in place of their "<<". */
	out = ml_xcalloc(m->npairs + ncand, sizeof(*out));
	c = 0;
	for (i = 0; i < m->npairs; i++) {
		struct ml_ypair *p = &m->pairs[i];

		if (!is_merge_key(p->key)) {
			out[nout++] = *p;
			continue;
		}
		for (; c < ncand && cand[c].owner == i; c++) {
			enum copy_fail why = COPY_OK;
			struct ml_ypair np;

			if (!cand[c].keep || L->stop)
				continue;
			np.key = copy_node(L, cand[c].pair->key,
					   (int)L->nstack + 1, &why);
			np.value = np.key ? copy_node(L, cand[c].pair->value,
						      (int)L->nstack + 1, &why)
					  : NULL;
			if (!np.value) {
				ml_ynode_free(np.key);
				copy_failed(L, why, p->key->line, p->key->col);
				continue;
			}
			out[nout++] = np;
		}
		bury(L, p->key);
		bury(L, p->value);
	}
	free(m->pairs);
	m->pairs = out;
	m->npairs = nout;
	free(cand);
}

/* A mapping is complete: report duplicate keys, then apply "<<". */
static void finish_map(struct loader *L, struct ml_ynode *m)
{
	struct keyref *own;
	size_t nown, i;

	own = sorted_keys(m->pairs, m->npairs, &nown);
	check_duplicates(L, own, nown);
	for (i = 0; i < m->npairs; i++)
		if (is_merge_key(m->pairs[i].key))
			break;
	if (i < m->npairs)
		apply_merges(L, m, own, nown);
	free(own);
}

/* ---- building the tree from events --------------------------------- */

static void attach(struct loader *L, struct ml_ynode *n)
{
	struct yframe *f;
	struct ml_ynode *p;

	if (!L->nstack) {
		if (L->root)
			BUG("second root in one document");
		L->root = n;
		return;
	}
	f = &L->stack[L->nstack - 1];
	p = f->node;
	if (p->type == ML_YSEQ) {
		ML_GROW(p->items, p->nitems + 1, f->cap);
		p->items[p->nitems++] = n;
		return;
	}
	if (f->want_value) {
		p->pairs[p->npairs - 1].value = n;
		f->want_value = false;
		return;
	}
	if (n->type != ML_YSCALAR)
		soft(L, n->line, n->col, "mapping keys must be strings, not %s",
		     ml_ynode_type_name(n));
	ML_GROW(p->pairs, p->npairs + 1, f->cap);
	p->pairs[p->npairs].key = n;
	p->pairs[p->npairs].value = NULL;
	p->npairs++;
	f->want_value = true;
}

/* Register anchor name (borrowed from the event) for n; returns its index
 * + 1 for the frame. Later definitions of a name hide earlier ones. */
static size_t add_anchor(struct loader *L, const yaml_char_t *name,
			 struct ml_ynode *n, bool done)
{
	struct yanchor *a;

	if (!name)
		return 0;
	ML_GROW(L->anchors, L->nanchors + 1, L->capanchors);
	a = &L->anchors[L->nanchors++];
	a->name = ml_xstrdup((const char *)name);
	a->node = n;
	a->done = done;
	return L->nanchors;
}

static const struct yanchor *find_anchor(const struct loader *L,
					 const char *name)
{
	size_t i;

	for (i = L->nanchors; i-- > 0;)
		if (!strcmp(L->anchors[i].name, name))
			return &L->anchors[i];
	return NULL;
}

/* Tags of YAML 1.2's core schema are accepted; !!str makes a scalar a
 * string even when unquoted. Anything else (!!python/object, !Ref, the
 * YAML 1.1 types) would need meaning we do not give it. */
static bool check_tag(struct loader *L, const yaml_char_t *utag, int line,
		      int col, bool *is_str)
{
	/* "str" first: it is the one that changes the node */
	static const char *const ok[] = {
		"str", "int", "float", "bool", "null", "map", "seq",
	};
	const char *tag = (const char *)utag;
	const size_t plen = sizeof(TAG_PREFIX) - 1;
	char q[256];
	size_t i;

	*is_str = false;
	if (!tag || !strcmp(tag, "!"))
		return true;
	if (!strncmp(tag, TAG_PREFIX, plen)) {
		for (i = 0; i < ML_ARRAY_SIZE(ok); i++)
			if (!strcmp(tag + plen, ok[i])) {
				*is_str = i == 0;
				return true;
			}
		soft(L, line, col, "tags are not allowed ('!!%s')",
		     quote(q, sizeof(q), tag + plen, strlen(tag + plen)));
		return false;
	}
	soft(L, line, col, "tags are not allowed ('%s')",
	     quote(q, sizeof(q), tag, strlen(tag)));
	return false;
}

static void on_scalar(struct loader *L, const yaml_event_t *ev)
{
	int line = mark_int(ev->start_mark.line);
	int col = mark_int(ev->start_mark.column);
	size_t len = ev->data.scalar.length;
	struct ml_ynode *n;
	bool is_str;

	if (len > L->lim.max_scalar) {
		hard(L, line, col, "scalar longer than %zu bytes",
		     L->lim.max_scalar);
		return;
	}
	if (len > L->max_text - L->bytes) {
		copy_failed(L, COPY_BYTES, line, col);
		return;
	}
	n = new_node(L, ML_YSCALAR, line, col);
	if (!n)
		return;
	L->bytes += len;
	n->scalar = ml_xmalloc(len + 1);
	memcpy(n->scalar, ev->data.scalar.value, len);
	n->scalar[len] = '\0';
	n->len = len;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	check_tag(L, ev->data.scalar.tag, line, col, &is_str);
	if (is_str)
		n->plain = false;
	if (memchr(n->scalar, '\0', len))
		soft(L, line, col,
		     "strings may not contain NUL characters (\\0)");
	add_anchor(L, ev->data.scalar.anchor, n, true);
	attach(L, n);
}

static void on_start(struct loader *L, const yaml_event_t *ev,
		     enum ml_ynode_type t)
{
	int line = mark_int(ev->start_mark.line);
	int col = mark_int(ev->start_mark.column);
	const yaml_char_t *anchor, *tag;
	struct ml_ynode *n;
	struct yframe *f;
	bool is_str;

	if (t == ML_YSEQ) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (L->nstack >= (size_t)L->lim.max_depth) {
		depth_exceeded(L, line, col);
		return;
	}
	n = new_node(L, t, line, col);
	if (!n)
		return;
	check_tag(L, tag, line, col, &is_str);
	attach(L, n);
	ML_GROW(L->stack, L->nstack + 1, L->capstack);
	f = &L->stack[L->nstack++];
	f->node = n;
	f->cap = 0;
	f->want_value = false;
	f->anchor = add_anchor(L, anchor, n, false);
}

static void on_end(struct loader *L)
{
	struct yframe *f;

	if (!L->nstack)
		BUG("collection end without a start");
	f = &L->stack[L->nstack - 1];
	if (f->node->type == ML_YMAP)
		finish_map(L, f->node);
	if (f->anchor)
		L->anchors[f->anchor - 1].done = true;
	L->nstack--;
}

static void on_alias(struct loader *L, const yaml_event_t *ev)
{
	int line = mark_int(ev->start_mark.line);
	int col = mark_int(ev->start_mark.column);
	const char *name = (const char *)ev->data.alias.anchor;
	const struct yanchor *a;
	enum copy_fail why = COPY_OK;
	struct ml_ynode *n;
	char q[256], q2[256];

	if (++L->aliases > L->lim.max_aliases) {
		hard(L, line, col, "more than %zu aliases", L->lim.max_aliases);
		return;
	}
	a = find_anchor(L, name);
	if (!a) {
		hard(L, line, col,
		     "undefined alias '*%s' (define '&%s' before using it)",
		     quote(q, sizeof(q), name, strlen(name)),
		     quote(q2, sizeof(q2), name, strlen(name)));
		return;
	}
	if (!a->done) {
		hard(L, line, col,
		     "alias '*%s' refers to a node that "
		     "contains it",
		     quote(q, sizeof(q), name, strlen(name)));
		return;
	}
	n = copy_node(L, a->node, (int)L->nstack + 1, &why);
	if (!n) {
		copy_failed(L, why, line, col);
		return;
	}
	/* the copy is used here; its insides stay where they were written */
	n->line = line;
	n->col = col;
	attach(L, n);
}

static void on_event(struct loader *L, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++L->ndocs > 1)
			hard(L, mark_int(ev->start_mark.line),
			     mark_int(ev->start_mark.column),
			     "more than one document in the file (only one "
			     "is allowed; remove the second '---')");
		break;
	case YAML_SCALAR_EVENT:
		on_scalar(L, ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		on_start(L, ev, ML_YSEQ);
		break;
	case YAML_MAPPING_START_EVENT:
		on_start(L, ev, ML_YMAP);
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		on_end(L);
		break;
	case YAML_ALIAS_EVENT:
		on_alias(L, ev);
		break;
	default:
		break;
	}
}

static void loader_release(struct loader *L)
{
	size_t i;

	ml_ynode_free(L->root);
	for (i = 0; i < L->ngrave; i++)
		ml_ynode_free(L->grave[i]);
	free(L->grave);
	for (i = 0; i < L->nanchors; i++)
		free(L->anchors[i].name);
	free(L->anchors);
	free(L->stack);
}

int ml_yaml_load(struct ml_ynode **out, const char *name, const char *data,
		 size_t len, const struct ml_ylimits *lim,
		 struct ml_diags *diags)
{
	struct loader L = {0};
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;
	int rc = 0;

	if (!out || !diags || (!data && len))
		return ml_err_set(ML_EFAIL, "ml_yaml_load: bad arguments");
	*out = NULL;
	L.name = name ? name : "<input>";
	L.data = data;
	L.len = len;
	L.lim = lim ? *lim : ml_ylimits_default;
	if (L.lim.max_depth < 0)
		L.lim.max_depth = 0;
	if (L.lim.max_depth > ML_YDEPTH_HARD)
		L.lim.max_depth = ML_YDEPTH_HARD;
	L.max_text = L.lim.max_bytes > SIZE_MAX / 16 ? SIZE_MAX
						     : L.lim.max_bytes * 16;
	L.diags = diags;

	if (len > L.lim.max_bytes) {
		ml_diags_add(diags, L.name, 0, 0,
			     "file is %zu bytes, more than the limit of %zu",
			     len, L.lim.max_bytes);
		return ml_err_set(ML_EINVALID, "'%s' is too large", L.name);
	}
	if (len >= 2 && ((data[0] == '\xff' && data[1] == '\xfe') ||
			 (data[0] == '\xfe' && data[1] == '\xff'))) {
		ml_diags_add(diags, L.name, 1, 1,
			     "file is UTF-16, not UTF-8; save it as UTF-8");
		return ml_err_set(ML_EINVALID, "'%s' is not valid", L.name);
	}
	/* A UTF-8 byte order mark is allowed and skipped here: libyaml only
	 * skips it when it guesses the encoding, and we force UTF-8. */
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
		L.data = data += 3;
		L.len = len -= 3;
	}

	if (!yaml_parser_initialize(&parser)) {
		fprintf(stderr, "fatal: out of memory starting libyaml\n");
		abort();
	}
	yaml_parser_set_input_string(
		&parser, (const unsigned char *)(data ? data : ""), len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	while (!done && !L.stop) {
		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(&L, &parser);
			break;
		}
		on_event(&L, &ev);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);

	if (L.ndiags) {
		rc = ml_err_set(ML_EINVALID, "'%s' is not valid", L.name);
		goto out;
	}
	if (L.nstack)
		BUG("parse ended with %zu open collections", L.nstack);
	/* "---" alone, or "~": nothing to configure, like an empty file */
	if (L.root && L.root->type == ML_YSCALAR && L.root->plain &&
	    ml_yscalar_is_null(L.root))
		goto out;
	*out = L.root;
	L.root = NULL;
out:
	loader_release(&L);
	return rc;
}

/* ---- helpers for the readers of the tree --------------------------- */

const struct ml_ynode *ml_ymap_get(const struct ml_ynode *map, const char *key)
{
	size_t i, klen;

	if (!map || map->type != ML_YMAP || !key)
		return NULL;
	klen = strlen(key);
	for (i = 0; i < map->npairs; i++) {
		const struct ml_ynode *k = map->pairs[i].key;

		if (k->type == ML_YSCALAR && k->len == klen &&
		    !memcmp(k->scalar, key, klen))
			return map->pairs[i].value;
	}
	return NULL;
}

const char *ml_ynode_type_name(const struct ml_ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case ML_YSCALAR:
		return ml_yscalar_is_null(n) ? "null" : "a string";
	case ML_YSEQ:
		return "a sequence";
	case ML_YMAP:
		return "a mapping";
	}
	return "an unknown node";
}

bool ml_yscalar_is_null(const struct ml_ynode *n)
{
	if (!n || n->type != ML_YSCALAR || !n->plain)
		return false;
	return n->len == 0 || !strcmp(n->scalar, "~") ||
	       !strcmp(n->scalar, "null") || !strcmp(n->scalar, "Null") ||
	       !strcmp(n->scalar, "NULL");
}
