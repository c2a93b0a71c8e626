/*
 * Strict parsers for the scalar values both input files use (durations,
 * sizes, integers, booleans, names) and the small checking helpers the
 * playbook and inventory parsers share (config.h, last section).
 *
 * Durations: one or more <number><unit> parts, unit one of h, m, s, ms, in
 * that order, each at most once ("1h30m", "2m", "30s", "500ms", "1m30s").
 * Only the last part may have a fraction ("1.5s", "0.25h"), and the result
 * must be a whole number of milliseconds ("1.5ms" is refused). Bare
 * numbers, signs, spaces and overflow of int64 milliseconds are refused.
 *
 * Sizes: <number>[k|m|g|t][b|i|ib], case-insensitive, powers of 1024; no
 * unit means bytes ("1024", "1024b"). A fraction is allowed with a unit
 * ("1.5g", at most 6 decimals) and the result is rounded down to whole
 * bytes; a fraction of bare bytes is refused. Overflow of int64 is refused.
 *
 * Integers in the files are plain (unquoted) decimal scalars; "0x10",
 * "010", "+5", "1_000" and quoted numbers are refused. Booleans are exactly
 * true or false; YAML 1.1's yes/no/on/off get a hint.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/config/yaml.h"

#include <ctype.h>
#include <limits.h>

/* ---- quoting user text in messages ------------------------------------- */

/* Copy s into buf with control bytes as \xNN and at most ~80 bytes of
 * text, so that a message never carries terminal escapes or a megabyte. */
static const char *quote_into(char *buf, size_t size, const char *s)
{
	size_t o = 0, i;

	for (i = 0; s[i] && o + 8 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= 80) {
			/* do not cut a UTF-8 sequence in half */
			if ((ch & 0xc0) == 0x80)
				continue;
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (ch < 0x20 || ch == 0x7f) {
			snprintf(buf + o, size - o, "\\x%02x", ch);
			o += 4;
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o] = '\0';
	return buf;
}

const char *ml_cfg_q(struct ml_cfgctx *c, const char *s)
{
	char *buf = c->qbuf[c->qi++ % ML_ARRAY_SIZE(c->qbuf)];

	return quote_into(buf, sizeof(c->qbuf[0]), s ? s : "");
}

/* ---- durations --------------------------------------------------------- */

static const char *duration_hint = "write e.g. '500ms', '30s', '2m' or "
				   "'1h30m'";

int ml_parse_duration(int64_t *out_ms, const char *s)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {
		{"h", 3600000},
		{"m", 60000},
		{"s", 1000},
		{"ms", 1},
	};
	char q[128];
	const char *p = s;
	int64_t total = 0;
	size_t next_unit = 0; /* units must come in the order of units[] */
	bool had_fraction = false;

	*out_ms = 0;
	if (!s || !*s)
		return ml_err_set(ML_EINVALID, "empty duration (%s)",
				  duration_hint);
	quote_into(q, sizeof(q), s);
	if (*s == '-')
		return ml_err_set(ML_EINVALID, "duration '%s' is negative", q);
	while (*p) {
		int64_t ip = 0, frac = 0, scale = 1, part;
		size_t u, ulen;
		bool overflow = false;

		if (!isdigit((unsigned char)*p))
			return ml_err_set(ML_EINVALID,
					  "invalid duration '%s' (%s)", q,
					  duration_hint);
		if (had_fraction)
			return ml_err_set(ML_EINVALID,
					  "only the last part of duration '%s' "
					  "may have a fraction",
					  q);
		for (; isdigit((unsigned char)*p); p++) {
			if (ip > (INT64_MAX - (*p - '0')) / 10)
				overflow = true;
			else
				ip = ip * 10 + (*p - '0');
		}
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return ml_err_set(ML_EINVALID,
						  "invalid duration '%s' (%s)",
						  q, duration_hint);
			for (; isdigit((unsigned char)*p); p++) {
				if (scale >= 1000000000)
					return ml_err_set(ML_EINVALID,
							  "duration '%s' has "
							  "too many decimals",
							  q);
				frac = frac * 10 + (*p - '0');
				scale *= 10;
			}
			had_fraction = true;
		}
		if (!*p)
			return ml_err_set(ML_EINVALID,
					  "duration '%s' has no unit (write "
					  "e.g. '%ss')",
					  q, q);
		/* "ms" before "m": match the longest unit name */
		ulen = 0;
		for (u = 0; u < ML_ARRAY_SIZE(units); u++) {
			ulen = strlen(units[u].name);
			if (!strncmp(p, units[u].name, ulen) &&
			    !isalpha((unsigned char)p[ulen]))
				break;
		}
		if (u == ML_ARRAY_SIZE(units)) {
			char unit[16];
			size_t n = 0;

			while (isalpha((unsigned char)p[n]) &&
			       n + 1 < sizeof(unit)) {
				unit[n] = p[n];
				n++;
			}
			unit[n] = '\0';
			if (!n)
				return ml_err_set(ML_EINVALID,
						  "invalid duration '%s' (%s)",
						  q, duration_hint);
			return ml_err_set(ML_EINVALID,
					  "unknown unit '%s' in duration '%s' "
					  "(use ms, s, m or h)",
					  unit, q);
		}
		if (u < next_unit)
			return ml_err_set(ML_EINVALID,
					  "units out of order in duration '%s' "
					  "(write hours, minutes, seconds, "
					  "then milliseconds, each once)",
					  q);
		next_unit = u + 1;
		p += ulen;
		if (overflow || ip > INT64_MAX / units[u].ms)
			goto too_long;
		part = ip * units[u].ms;
		if (had_fraction) {
			/* frac < 1e9, unit <= 3.6e6: the product fits */
			int64_t f = frac * units[u].ms;

			if (f % scale)
				return ml_err_set(ML_EINVALID,
						  "duration '%s' is finer than "
						  "a millisecond",
						  q);
			if (part > INT64_MAX - f / scale)
				goto too_long;
			part += f / scale;
		}
		if (total > INT64_MAX - part)
			goto too_long;
		total += part;
	}
	*out_ms = total;
	return 0;
too_long:
	return ml_err_set(ML_EINVALID, "duration '%s' is too long", q);
}

/* ---- sizes ------------------------------------------------------------- */

int ml_parse_size(int64_t *out_bytes, const char *s)
{
	char q[128];
	const char *p = s;
	int64_t ip = 0, frac = 0, scale = 1, mult = 1, r;
	bool overflow = false, has_frac = false;
	int shift = 0;

	*out_bytes = 0;
	if (!s || !*s)
		return ml_err_set(ML_EINVALID,
				  "empty size (write e.g. '512m' or '2g')");
	quote_into(q, sizeof(q), s);
	if (*s == '-')
		return ml_err_set(ML_EINVALID, "size '%s' is negative", q);
	if (!isdigit((unsigned char)*p))
		goto invalid;
	for (; isdigit((unsigned char)*p); p++) {
		if (ip > (INT64_MAX - (*p - '0')) / 10)
			overflow = true;
		else
			ip = ip * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto invalid;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale >= 1000000)
				return ml_err_set(ML_EINVALID,
						  "size '%s' has too many "
						  "decimals",
						  q);
			frac = frac * 10 + (*p - '0');
			scale *= 10;
		}
		has_frac = true;
	}
	switch (tolower((unsigned char)*p)) {
	case 'k':
		shift = 10;
		p++;
		break;
	case 'm':
		shift = 20;
		p++;
		break;
	case 'g':
		shift = 30;
		p++;
		break;
	case 't':
		shift = 40;
		p++;
		break;
	default:
		break;
	}
	if (shift && tolower((unsigned char)*p) == 'i')
		p++;
	if (tolower((unsigned char)*p) == 'b')
		p++;
	if (*p) {
		if (isalpha((unsigned char)*p))
			return ml_err_set(ML_EINVALID,
					  "unknown unit in size '%s' (use k, "
					  "m, g or t, powers of 1024)",
					  q);
		goto invalid;
	}
	if (has_frac && !shift)
		return ml_err_set(ML_EINVALID,
				  "size '%s' is not a whole number of bytes",
				  q);
	mult = (int64_t)1 << shift;
	if (overflow || ip > INT64_MAX / mult)
		goto too_large;
	r = ip * mult;
	/* frac < 1e6 and mult <= 2^40: the product fits in 2^60 */
	if (r > INT64_MAX - frac * mult / scale)
		goto too_large;
	r += frac * mult / scale;
	*out_bytes = r;
	return 0;
invalid:
	return ml_err_set(ML_EINVALID,
			  "invalid size '%s' (write e.g. '512m', '2g', '1.5g' "
			  "or a number of bytes)",
			  q);
too_large:
	return ml_err_set(ML_EINVALID, "size '%s' is too large", q);
}

/* ---- diagnostics and suggestions --------------------------------------- */

void ml_cfg_err(struct ml_cfgctx *c, const struct ml_ynode *at, const char *fmt,
		...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ml_diags_add(c->diags, c->file, at ? at->line : 0, at ? at->col : 0,
		     "%s", msg);
}

void ml_cfg_err_pos(struct ml_cfgctx *c, struct ml_pos at, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ml_diags_add(c->diags, c->file, at.line, at.col, "%s", msg);
}

/* Optimal string alignment distance (Levenshtein plus transpositions),
 * on strings cut to 64 bytes: keys are short and this runs per key. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t d[65][65];
	size_t la = strnlen(a, 64), lb = strnlen(b, 64), i, j;

	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

const char *ml_cfg_suggest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	size_t bestd = SIZE_MAX, i, len = strlen(word);

	for (i = 0; i < n; i++) {
		size_t d = edit_distance(word, cands[i]);

		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	if (best && bestd > 0 && (bestd <= 2 || bestd * 3 <= len))
		return best;
	return NULL;
}

int ml_cfg_check_keys(struct ml_cfgctx *c, const struct ml_ynode *map,
		      const char *const *keys)
{
	size_t i, nkeys = 0;
	int bad = 0;

	while (keys[nkeys])
		nkeys++;
	for (i = 0; i < map->npairs; i++) {
		const struct ml_ynode *k = map->pairs[i].key;
		const char *sugg;
		size_t j;

		for (j = 0; j < nkeys; j++)
			if (!strcmp(k->scalar, keys[j]))
				break;
		if (j < nkeys)
			continue;
		bad++;
		sugg = ml_cfg_suggest(k->scalar, keys, nkeys);
		if (sugg)
			ml_cfg_err(c, k,
				   "unknown key '%s' (did you mean '%s'?)",
				   ml_cfg_q(c, k->scalar), sugg);
		else
			ml_cfg_err(c, k, "unknown key '%s'",
				   ml_cfg_q(c, k->scalar));
	}
	return bad;
}

/* ---- how YAML 1.2's core schema reads a plain scalar ------------------- */

static bool is_decimal(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static bool is_core_int(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
		for (s += 2; *s; s++)
			if (!isxdigit((unsigned char)*s))
				return false;
		return true;
	}
	return is_decimal(s);
}

static bool is_core_float(const char *s)
{
	bool digits = false;

	if (!strcmp(s, ".inf") || !strcmp(s, "-.inf") || !strcmp(s, "+.inf") ||
	    !strcmp(s, ".nan") || !strcmp(s, ".Inf") || !strcmp(s, ".NaN") ||
	    !strcmp(s, ".INF") || !strcmp(s, ".NAN"))
		return true;
	if (*s == '-' || *s == '+')
		s++;
	for (; isdigit((unsigned char)*s); s++)
		digits = true;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			digits = true;
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return !*s;
}

static bool is_core_bool(const char *s)
{
	return !strcmp(s, "true") || !strcmp(s, "false") ||
	       !strcmp(s, "True") || !strcmp(s, "False") ||
	       !strcmp(s, "TRUE") || !strcmp(s, "FALSE");
}

const char *ml_cfg_kind(const struct ml_ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case ML_YMAP:
		return "a mapping";
	case ML_YSEQ:
		return "a sequence";
	case ML_YSCALAR:
		break;
	}
	if (!n->plain)
		return "a string";
	if (ml_yscalar_is_null(n))
		return "null";
	if (is_core_bool(n->scalar))
		return "a boolean";
	if (is_core_int(n->scalar))
		return "an integer";
	if (is_core_float(n->scalar))
		return "a number";
	return "a string";
}

/* ---- typed values ------------------------------------------------------ */

int ml_cfg_want_map(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path)
{
	if (n->type == ML_YMAP)
		return 0;
	ml_cfg_err(c, n, "'%s' must be a mapping, got %s", path,
		   ml_cfg_kind(n));
	return ML_EINVALID;
}

int ml_cfg_want_seq(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path)
{
	if (n->type == ML_YSEQ)
		return 0;
	ml_cfg_err(c, n, "'%s' must be a sequence, got %s", path,
		   ml_cfg_kind(n));
	return ML_EINVALID;
}

int ml_cfg_int(struct ml_cfgctx *c, const struct ml_ynode *n, const char *path,
	       int64_t min, int64_t max, int64_t *out)
{
	const char *s, *p;
	int64_t v = 0;
	bool neg, big = false;

	if (n->type != ML_YSCALAR || !n->plain || !is_core_int(n->scalar)) {
		if (n->type == ML_YSCALAR && n->plain &&
		    is_core_float(n->scalar))
			ml_cfg_err(c, n,
				   "'%s' must be a whole number, got '%s'",
				   path, ml_cfg_q(c, n->scalar));
		else
			ml_cfg_err(c, n, "'%s' must be an integer, got %s",
				   path, ml_cfg_kind(n));
		return ML_EINVALID;
	}
	s = n->scalar;
	neg = *s == '-';
	p = neg || *s == '+' ? s + 1 : s;
	if (*s == '+' || !is_decimal(p) || (p[0] == '0' && p[1])) {
		ml_cfg_err(c, n,
			   "'%s' must be a decimal integer without sign "
			   "or leading zeros, got '%s'",
			   path, ml_cfg_q(c, s));
		return ML_EINVALID;
	}
	for (; *p; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			big = true;
		else
			v = v * 10 + (*p - '0');
	}
	if (neg)
		v = -v;
	if (big || v < min || v > max) {
		ml_cfg_err(c, n,
			   "'%s' must be between %" PRId64 " and %" PRId64
			   ", got %s",
			   path, min, max, ml_cfg_q(c, s));
		return ML_EINVALID;
	}
	*out = v;
	return 0;
}

int ml_cfg_bool(struct ml_cfgctx *c, const struct ml_ynode *n, const char *path,
		bool *out)
{
	static const char *const yaml11[] = {
		"yes", "no", "on",   "off",   "y",    "n",     "Yes",
		"No",  "On", "Off",  "YES",   "NO",   "ON",    "OFF",
		"Y",   "N",  "True", "False", "TRUE", "FALSE",
	};
	size_t i;

	if (n->type == ML_YSCALAR && n->plain) {
		if (!strcmp(n->scalar, "true")) {
			*out = true;
			return 0;
		}
		if (!strcmp(n->scalar, "false")) {
			*out = false;
			return 0;
		}
		for (i = 0; i < ML_ARRAY_SIZE(yaml11); i++) {
			if (strcmp(n->scalar, yaml11[i]))
				continue;
			ml_cfg_err(c, n,
				   "'%s' must be true or false, got '%s' "
				   "(write true or false in lowercase)",
				   path, n->scalar);
			return ML_EINVALID;
		}
	}
	ml_cfg_err(c, n, "'%s' must be true or false, got %s", path,
		   ml_cfg_kind(n));
	return ML_EINVALID;
}

int ml_cfg_str(struct ml_cfgctx *c, const struct ml_ynode *n, const char *path,
	       char **out)
{
	const char *kind = ml_cfg_kind(n);

	*out = NULL;
	if (n->type != ML_YSCALAR || !strcmp(kind, "null") ||
	    !strcmp(kind, "a boolean")) {
		ml_cfg_err(c, n, "'%s' must be a string, got %s", path, kind);
		return ML_EINVALID;
	}
	if (strlen(n->scalar) != n->len) {
		ml_cfg_err(c, n, "'%s' must not contain a NUL byte", path);
		return ML_EINVALID;
	}
	*out = ml_xstrdup(n->scalar);
	return 0;
}

int ml_cfg_duration(struct ml_cfgctx *c, const struct ml_ynode *n,
		    const char *path, int64_t *out_ms)
{
	const char *kind = ml_cfg_kind(n);

	if (n->type != ML_YSCALAR || !strcmp(kind, "null") ||
	    !strcmp(kind, "a boolean")) {
		ml_cfg_err(c, n,
			   "'%s' must be a duration such as '30s', got "
			   "%s",
			   path, kind);
		return ML_EINVALID;
	}
	if (ml_parse_duration(out_ms, n->scalar) < 0) {
		ml_cfg_err(c, n, "'%s': %s", path, ml_err_msg());
		return ML_EINVALID;
	}
	return 0;
}

int ml_cfg_size(struct ml_cfgctx *c, const struct ml_ynode *n, const char *path,
		int64_t *out_bytes)
{
	const char *kind = ml_cfg_kind(n);

	if (n->type != ML_YSCALAR || !strcmp(kind, "null") ||
	    !strcmp(kind, "a boolean")) {
		ml_cfg_err(c, n, "'%s' must be a size such as '512m', got %s",
			   path, kind);
		return ML_EINVALID;
	}
	if (ml_parse_size(out_bytes, n->scalar) < 0) {
		ml_cfg_err(c, n, "'%s': %s", path, ml_err_msg());
		return ML_EINVALID;
	}
	return 0;
}

static void strlist_push(struct ml_strlist *l, size_t *cap, char *s,
			 struct ml_pos pos)
{
	size_t pcap = *cap;

	ML_GROW(l->v, l->n + 1, *cap);
	ML_GROW(l->pos, l->n + 1, pcap);
	l->v[l->n] = s;
	l->pos[l->n] = pos;
	l->n++;
}

int ml_cfg_strlist(struct ml_cfgctx *c, const struct ml_ynode *n,
		   const char *path, bool one_ok, struct ml_strlist *out)
{
	size_t i, cap = 0;
	int rc = 0;
	char *s;

	if (one_ok && n->type == ML_YSCALAR) {
		if (ml_cfg_str(c, n, path, &s) < 0)
			return ML_EINVALID;
		strlist_push(out, &cap, s, (struct ml_pos){n->line, n->col});
		return 0;
	}
	if (n->type != ML_YSEQ) {
		ml_cfg_err(c, n, "'%s' must be a %s, got %s", path,
			   one_ok ? "string or a sequence of strings"
				  : "sequence of strings",
			   ml_cfg_kind(n));
		return ML_EINVALID;
	}
	for (i = 0; i < n->nitems; i++) {
		const struct ml_ynode *it = n->items[i];
		char sub[256];

		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		if (ml_cfg_str(c, it, sub, &s) < 0) {
			rc = ML_EINVALID;
			continue;
		}
		strlist_push(out, &cap, s, (struct ml_pos){it->line, it->col});
	}
	return rc;
}

/* Values of env, labels and vars: one line of text, as written. */
static bool is_one_line(const char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			return false;
	return true;
}

int ml_cfg_kvmap(struct ml_cfgctx *c, const struct ml_ynode *n,
		 const char *path, bool (*is_key)(const char *),
		 const char *key_rule, struct ml_kvlist *out)
{
	size_t i, cap = 0;
	int rc = 0;

	if (ml_cfg_want_map(c, n, path) < 0)
		return ML_EINVALID;
	for (i = 0; i < n->npairs; i++) {
		const struct ml_ynode *k = n->pairs[i].key;
		const struct ml_ynode *v = n->pairs[i].value;
		char sub[256];
		char *val;

		snprintf(sub, sizeof(sub), "%s.%s", path,
			 ml_cfg_q(c, k->scalar));
		if (!is_key(k->scalar)) {
			ml_cfg_err(c, k, "invalid name '%s' in '%s' (%s)",
				   ml_cfg_q(c, k->scalar), path, key_rule);
			rc = ML_EINVALID;
		}
		if (v->type != ML_YSCALAR) {
			ml_cfg_err(c, v, "'%s' must be a scalar, got %s", sub,
				   ml_cfg_kind(v));
			rc = ML_EINVALID;
			continue;
		}
		if (v->plain && ml_yscalar_is_null(v)) {
			ml_cfg_err(c, v,
				   "'%s' has no value (write \"\" for an "
				   "empty string)",
				   sub);
			rc = ML_EINVALID;
			continue;
		}
		if (strlen(v->scalar) != v->len || !is_one_line(v->scalar)) {
			ml_cfg_err(c, v, "'%s' must be a single line of text",
				   sub);
			rc = ML_EINVALID;
			continue;
		}
		val = ml_xstrdup(v->scalar);
		ML_GROW(out->v, out->n + 1, cap);
		out->v[out->n].key = ml_xstrdup(k->scalar);
		out->v[out->n].value = val;
		out->n++;
	}
	return rc;
}

bool ml_cfg_is_ident(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

bool ml_cfg_is_name(const char *s)
{
	size_t n;

	if (!isalnum((unsigned char)*s))
		return false;
	for (n = 1; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '.' &&
		    s[n] != '_' && s[n] != '-')
			return false;
	return n <= 63;
}

/* ---- releasing the shared containers ----------------------------------- */

void ml_strlist_release(struct ml_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->pos);
	l->v = NULL;
	l->pos = NULL;
	l->n = 0;
}

void ml_kvlist_release(struct ml_kvlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void ml_ssh_spec_release(struct ml_ssh_spec *s)
{
	free(s->user);
	free(s->identity_file);
	free(s->jump);
	memset(s, 0, sizeof(*s));
}
