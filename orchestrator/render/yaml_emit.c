/*
 * A YAML emitter for the manifests we render (render.h: ml_render_yaml).
 * Our own rather than libyaml's so that the bytes are ours to pin: block
 * style, two spaces per level, keys in the tree's insertion order.
 *
 * Quoting is what makes it safe. Every string value is written in double
 * quotes, so "true", "on", "0755", "1e3", "~" or "" stay strings for YAML
 * 1.1 readers (Go's yaml.v2 behind kubectl) and 1.2 readers alike. Inside
 * the quotes '"' and '\' are escaped, and so is every character YAML does
 * not allow in a scalar or would read as a line break: C0 and C1 controls,
 * DEL, U+2028, U+2029, U+FEFF, U+FFFE and U+FFFF, all as \xNN or \uNNNN
 * (escapes both YAML versions know). A key is written plain only when it is
 * made of letters, digits, '_', '.', '/' and '-', starts with a letter or
 * '_', and is not a word YAML 1.1 reads as a boolean or null ("on", "y",
 * "null"...); otherwise it is quoted like a value. Text that is not valid
 * UTF-8 cannot be written in YAML and is refused.
 *
 * ml_render_yaml_verify reads a document back through our libyaml
 * wrapper (a YAML 1.1 reader) and compares it with the tree, strings
 * quoted and keys plain only where allowed: mlctl checks its own output
 * before writing it, and the tests and the fuzz target check it too.
 *
 * Depth is bounded by the tree we build (under 20 levels); recursion is
 * fine.
 */
#include "common/ml.h"
#include "common/utf8.h"
#include "orchestrator/config/yaml.h"
#include "orchestrator/render/render.h"

#include <strings.h>

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool plain_key(const char *s)
{
	/* YAML 1.1's booleans and null, any case */
	static const char *const words[] = {"y",   "n",	   "yes",   "no",  "on",
					    "off", "true", "false", "null"};
	size_t i;

	if (!is_alpha((unsigned char)s[0]) && s[0] != '_')
		return false;
	for (i = 1; s[i]; i++)
		if (!is_alpha((unsigned char)s[i]) &&
		    !is_digit((unsigned char)s[i]) && !strchr("_./-", s[i]))
			return false;
	for (i = 0; i < ML_ARRAY_SIZE(words); i++)
		if (!strcasecmp(s, words[i]))
			return false;
	return true;
}

/* True for the characters written as an escape inside double quotes. */
static bool needs_escape(uint32_t c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) ||
	       c == 0x2028 || c == 0x2029 || c == 0xfeff || c == 0xfffe ||
	       c == 0xffff;
}

static int quoted(struct ml_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;
	uint32_t c;
	int rc;

	rc = ml_buf_addch(b, '"');
	while (rc == 0 && i < n) {
		len = ml_utf8_decode(s + i, n - i, &c);
		if (!len)
			return ml_err_set(ML_EINVALID,
					  "a value to render is not valid "
					  "UTF-8 (byte %zu)",
					  i);
		if (c == '"' || c == '\\')
			rc = ml_buf_addf(b, "\\%c", (char)c);
		else if (c == '\n')
			rc = ml_buf_addstr(b, "\\n");
		else if (c == '\t')
			rc = ml_buf_addstr(b, "\\t");
		else if (needs_escape(c) && c < 0x80)
			rc = ml_buf_addf(b, "\\x%02x", (unsigned)c);
		else if (needs_escape(c))
			rc = ml_buf_addf(b, "\\u%04x", (unsigned)c);
		else
			rc = ml_buf_add(b, s + i, len);
		i += len;
	}
	return rc < 0 ? rc : ml_buf_addch(b, '"');
}

static int key(struct ml_buf *b, const char *k)
{
	if (plain_key(k))
		return ml_buf_addstr(b, k);
	return quoted(b, k, strlen(k));
}

static int indent(struct ml_buf *b, int n)
{
	int rc = 0;

	while (rc == 0 && n-- > 0)
		rc = ml_buf_addch(b, ' ');
	return rc;
}

/* A scalar, or an empty container, after "key:" or "-": " value\n". Returns
 * 1 when v is a non-empty container (nothing written). */
static int inline_value(struct ml_buf *b, const json_t *v)
{
	int rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		rc = ml_buf_addch(b, ' ');
		if (rc == 0)
			rc = quoted(b, json_string_value(v),
				    json_string_length(v));
		return rc < 0 ? rc : ml_buf_addch(b, '\n');
	case JSON_INTEGER:
		return ml_buf_addf(b, " %" JSON_INTEGER_FORMAT "\n",
				   json_integer_value(v));
	case JSON_TRUE:
		return ml_buf_addstr(b, " true\n");
	case JSON_FALSE:
		return ml_buf_addstr(b, " false\n");
	case JSON_NULL:
		return ml_buf_addstr(b, " null\n");
	case JSON_OBJECT:
		return json_object_size(v) ? 1 : ml_buf_addstr(b, " {}\n");
	case JSON_ARRAY:
		return json_array_size(v) ? 1 : ml_buf_addstr(b, " []\n");
	default:
		return ml_err_set(ML_EINVALID,
				  "a number to render is not an integer");
	}
}

static int emit_seq(struct ml_buf *b, const json_t *a, int ind);

/*
 * The pairs of object o at indent ind; the first line's indent is already
 * written when first_inline (an object as a sequence item, after "- ").
 */
static int emit_map(struct ml_buf *b, const json_t *o, int ind,
		    bool first_inline)
{
	const char *k;
	json_t *v;
	bool first = true;
	int rc;

	json_object_foreach((json_t *)o, k, v) {
		if (!(first && first_inline) && (rc = indent(b, ind)) < 0)
			return rc;
		first = false;
		if ((rc = key(b, k)) < 0 || (rc = ml_buf_addch(b, ':')) < 0)
			return rc;
		rc = inline_value(b, v);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if ((rc = ml_buf_addch(b, '\n')) < 0)
			return rc;
		rc = json_is_object(v) ? emit_map(b, v, ind + 2, false)
				       : emit_seq(b, v, ind + 2);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int emit_seq(struct ml_buf *b, const json_t *a, int ind)
{
	size_t i;
	json_t *v;
	int rc;

	json_array_foreach(a, i, v) {
		if ((rc = indent(b, ind)) < 0 ||
		    (rc = ml_buf_addch(b, '-')) < 0)
			return rc;
		rc = inline_value(b, v);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if (json_is_object(v)) {
			if ((rc = ml_buf_addch(b, ' ')) < 0)
				return rc;
			rc = emit_map(b, v, ind + 2, true);
		} else {
			if ((rc = ml_buf_addch(b, '\n')) < 0)
				return rc;
			rc = emit_seq(b, v, ind + 2);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ml_render_yaml(struct ml_buf *out, const json_t *doc)
{
	size_t mark = out->len;
	int rc;

	if (!json_is_object(doc))
		BUG("a YAML document must be an object");
	rc = ml_buf_addstr(out, "---\n");
	if (rc == 0)
		rc = emit_map(out, doc, 0, false);
	if (rc < 0) {
		/* leave out as it was: never half a document */
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	return rc;
}

int ml_render_yaml_comment(struct ml_buf *out, const char *text)
{
	size_t i;
	int rc = ml_buf_addstr(out, "# ");

	for (i = 0; rc == 0 && text[i]; i++) {
		unsigned char c = (unsigned char)text[i];

		rc = ml_buf_addch(out, c < 0x20 || c >= 0x7f ? '?' : (char)c);
	}
	return rc < 0 ? rc : ml_buf_addch(out, '\n');
}

/* ---- reading it back --------------------------------------------------- */

/* True when node n, as libyaml read it, is exactly v. */
static bool same(const struct ml_ynode *n, const json_t *v)
{
	char num[32];
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (n->type != ML_YMAP || n->npairs != json_object_size(v))
			return false;
		i = 0;
		json_object_foreach((json_t *)v, k, x) {
			const struct ml_ynode *key = n->pairs[i].key;

			/* in order, and plain only where plain_key allows */
			if (strcmp(key->scalar, k) ||
			    (key->plain && !plain_key(k)) ||
			    !same(n->pairs[i].value, x))
				return false;
			i++;
		}
		return true;
	case JSON_ARRAY:
		if (n->type != ML_YSEQ || n->nitems != json_array_size(v))
			return false;
		json_array_foreach(v, i, x) {
			if (!same(n->items[i], x))
				return false;
		}
		return true;
	case JSON_STRING:
		/* quoted, so no reader can take it for anything else */
		return n->type == ML_YSCALAR && !n->plain &&
		       n->len == json_string_length(v) &&
		       !memcmp(n->scalar, json_string_value(v), n->len);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return n->type == ML_YSCALAR && n->plain &&
		       !strcmp(n->scalar, num);
	case JSON_TRUE:
	case JSON_FALSE:
		return n->type == ML_YSCALAR && n->plain &&
		       !strcmp(n->scalar, json_is_true(v) ? "true" : "false");
	default:
		return false;
	}
}

int ml_render_yaml_verify(const char *yaml, size_t len, const json_t *doc)
{
	struct ml_ylimits lim = ml_ylimits_default;
	struct ml_diags d = { 0 };
	struct ml_ynode *n = NULL;
	int rc;

	/* our own output: as large as it is, no alias anywhere */
	lim.max_bytes = len + 1;
	lim.max_scalar = len + 1;
	lim.max_aliases = 0;
	lim.max_nodes = len + 1;
	rc = ml_yaml_load(&n, "rendered", yaml, len, &lim, &d);
	if (rc < 0 || !n)
		/* the place only: the text may be a secret's */
		rc = ml_err_set(ML_EFAIL,
				"BUG: the rendered YAML does not parse (line "
				"%d, column %d)",
				d.n ? d.v[0].line : 0, d.n ? d.v[0].col : 0);
	else if (!same(n, doc))
		rc = ml_err_set(ML_EFAIL, "BUG: the rendered YAML does not "
					  "read back as what was rendered");
	ml_ynode_free(n);
	ml_diags_release(&d);
	return rc;
}
