/*
 * .dockerignore (see ignore.h). Each pattern becomes a POSIX extended
 * regular expression the way Docker's pattern matcher turns it into Go's
 * (so a path matches here exactly when docker build would leave it out),
 * compiled once; a path is tried against every pattern in order, whole
 * and then each of its parent directories.
 *
 * The translation, character by character: "**" and a '/' after it is
 * any run of whole components or none, "**" at the end anything at all;
 * '*' is any run of characters but '/'; '?' one of them; "[...]"
 * is copied as a class up to its ']' ("[!" as "[^"); "\c" is c, quoted;
 * every other character is itself, quoted when it means something to a
 * regular expression. The whole is anchored at both ends.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/log.h"
#include "orchestrator/image/ignore.h"

#include <limits.h>
#include <regex.h>

#define LINE_MAX_BYTES 4096 /* one pattern, before cleaning */

struct pattern {
	regex_t re;
	bool exception; /* "!pattern" */
};

struct ml_ignore {
	struct pattern *v;
	size_t n, cap;
	size_t nexceptions;
	char **keep; /* NULL-terminated */
};

/* ERE metacharacters, quoted when they stand for themselves. */
static bool special(char c)
{
	return c && strchr(".[]()*+?{}|^$\\", c) != NULL;
}

static void add_quoted(struct ml_buf *re, char c)
{
	if (special(c))
		ml_buf_addch(re, '\\');
	ml_buf_addch(re, c);
}

/*
 * A class from p (just after its '['): copied up to and with its ']'.
 * Returns the character after it, or NULL when it does not close.
 */
static const char *add_class(struct ml_buf *re, const char *p)
{
	ml_buf_addch(re, '[');
	if (*p == '!' || *p == '^') {
		ml_buf_addch(re, '^');
		p++;
	}
	if (*p == ']')
		ml_buf_addch(re, *p++); /* a ']' first is a member */
	for (; *p && *p != ']'; p++) {
		if (*p == '/')
			return NULL; /* a class never spans components */
		if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '='))
			return NULL; /* POSIX classes: not in Go's syntax */
		ml_buf_addch(re, *p);
	}
	if (*p != ']')
		return NULL;
	ml_buf_addch(re, ']');
	return p + 1;
}

/* pattern (cleaned) as an anchored ERE; -1 when a class is not closed. */
static int translate(struct ml_buf *re, const char *p)
{
	ml_buf_addch(re, '^');
	while (*p) {
		char c = *p++;

		if (c == '*' && *p == '*') {
			p++;
			if (*p == '/')
				p++;
			ml_buf_addstr(re, *p ? "(.*/)?" : ".*");
		} else if (c == '*') {
			ml_buf_addstr(re, "[^/]*");
		} else if (c == '?') {
			ml_buf_addstr(re, "[^/]");
		} else if (c == '[') {
			p = add_class(re, p);
			if (!p)
				return -1;
		} else if (c == '\\') {
			add_quoted(re, *p ? *p++ : '\\');
		} else {
			add_quoted(re, c);
		}
	}
	ml_buf_addch(re, '$');
	return 0;
}

/* Go's filepath.Clean of a relative or absolute path, the leading '/'
 * then dropped as docker's reader does. */
static void clean(struct ml_buf *out, const char *s, size_t n)
{
	size_t i = 0, start, len;
	bool rooted = n && s[0] == '/';

	ml_buf_reset(out);
	while (i < n) {
		while (i < n && s[i] == '/')
			i++;
		start = i;
		while (i < n && s[i] != '/')
			i++;
		len = i - start;
		if (!len || (len == 1 && s[start] == '.'))
			continue;
		if (len == 2 && s[start] == '.' && s[start + 1] == '.') {
			char *slash;

			if (out->len && strcmp(ml_buf_str(out), "..") &&
			    !(out->len >= 3 &&
			      !strcmp(out->data + out->len - 3, "/.."))) {
				slash = strrchr(out->data, '/');
				out->len =
					slash ? (size_t)(slash - out->data) : 0;
				out->data[out->len] = '\0';
				continue;
			}
			if (rooted)
				continue; /* "/.." is "/" */
		}
		if (out->len)
			ml_buf_addch(out, '/');
		ml_buf_add(out, s + start, len);
	}
	if (!out->len)
		ml_buf_addstr(out, rooted ? "" : ".");
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int add_pattern(struct ml_ignore *ig, const char *name, unsigned line,
		       const char *s, size_t n)
{
	struct ml_buf pat = ML_BUF_INIT(LINE_MAX_BYTES),
		      re = ML_BUF_INIT(6 * LINE_MAX_BYTES + 8),
		      q = ML_BUF_INIT(256);
	bool exception = false;
	struct pattern *p;
	int rc = 0, err;

	if (*s == '!') {
		exception = true;
		s++;
		n--;
		while (n && is_space(*s)) {
			s++;
			n--;
		}
	}
	if (!n)
		goto out; /* a lone '!' matches nothing, as in docker */
	clean(&pat, s, n);
	if (!pat.len)
		goto out; /* "/": the context itself, never a file in it */
	if (ig->n >= ML_IGNORE_MAX_PATTERNS) {
		rc = ml_err_set(ML_EINVALID,
				"%s:%u: more than %d patterns: a .dockerignore "
				"this long is not one mlctl reads",
				name, line, ML_IGNORE_MAX_PATTERNS);
		goto out;
	}
	if (translate(&re, ml_buf_str(&pat)) < 0) {
		(void)ml_escape(&q, s, n > 200 ? 200 : n);
		rc = ml_err_set(ML_EINVALID,
				"%s:%u: bad pattern '%s': a '[' class is not "
				"closed within one path component",
				name, line, ml_buf_str(&q));
		goto out;
	}
	ML_GROW(ig->v, ig->n + 1, ig->cap);
	p = &ig->v[ig->n];
	err = regcomp(&p->re, ml_buf_str(&re), REG_EXTENDED | REG_NOSUB);
	if (err) {
		char why[128];

		regerror(err, &p->re, why, sizeof(why));
		(void)ml_escape(&q, s, n > 200 ? 200 : n);
		rc = ml_err_set(ML_EINVALID, "%s:%u: bad pattern '%s': %s",
				name, line, ml_buf_str(&q), why);
		goto out;
	}
	p->exception = exception;
	ig->n++;
	ig->nexceptions += exception;
out:
	ml_buf_release(&pat);
	ml_buf_release(&re);
	ml_buf_release(&q);
	return rc;
}

int ml_ignore_parse(struct ml_ignore **out, const char *text, size_t len,
		    const char *name, const char *const *keep)
{
	struct ml_ignore *ig = ml_xcalloc(1, sizeof(*ig));
	const char *p = text, *end = text + len, *eol;
	unsigned line = 0;
	size_t i, nkeep = 0;
	int rc = 0;

	*out = NULL;
	if (len > ML_IGNORE_MAX_BYTES) {
		rc = ml_err_set(ML_EINVALID,
				"%s is %zu bytes, more than the %zu mlctl "
				"reads",
				name, len, ML_IGNORE_MAX_BYTES);
		goto out;
	}
	if (len && memchr(text, '\0', len)) {
		rc = ml_err_set(ML_EINVALID,
				"%s holds a NUL byte: it is not a text file",
				name);
		goto out;
	}
	/* a UTF-8 byte order mark is dropped, as docker does */
	if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3;
	for (; p < end && rc == 0; p = eol + (eol < end)) {
		const char *s = p, *e;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		line++;
		e = eol;
		while (s < e && is_space(*s))
			s++;
		while (e > s && is_space(e[-1]))
			e--;
		if (s == e || *s == '#')
			continue;
		if ((size_t)(e - s) > LINE_MAX_BYTES) {
			rc = ml_err_set(ML_EINVALID,
					"%s:%u: a pattern of %zu bytes, more "
					"than %d",
					name, line, (size_t)(e - s),
					LINE_MAX_BYTES);
			break;
		}
		rc = add_pattern(ig, name, line, s, (size_t)(e - s));
	}
	if (rc < 0)
		goto out;
	while (keep && keep[nkeep])
		nkeep++;
	ig->keep = ml_xcalloc(nkeep + 1, sizeof(*ig->keep));
	for (i = 0; i < nkeep; i++)
		ig->keep[i] = ml_xstrdup(keep[i]);
	*out = ig;
	return 0;
out:
	ml_ignore_free(ig);
	return rc;
}

void ml_ignore_free(struct ml_ignore *ig)
{
	size_t i;

	if (!ig)
		return;
	for (i = 0; i < ig->n; i++)
		regfree(&ig->v[i].re);
	free(ig->v);
	for (i = 0; ig->keep && ig->keep[i]; i++)
		free(ig->keep[i]);
	free(ig->keep);
	free(ig);
}

/* Does p match path, or one of path's parent directories? */
static bool matches(const struct pattern *p, const char *path,
		    struct ml_buf *scratch)
{
	const char *slash;

	if (regexec(&p->re, path, 0, NULL, 0) == 0)
		return true;
	for (slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		ml_buf_reset(scratch);
		ml_buf_add(scratch, path, (size_t)(slash - path));
		if (regexec(&p->re, ml_buf_str(scratch), 0, NULL, 0) == 0)
			return true;
	}
	return false;
}

bool ml_ignore_excludes(const struct ml_ignore *ig, const char *path)
{
	struct ml_buf scratch = ML_BUF_INIT(PATH_MAX);
	bool out = false;
	size_t i;

	if (!ig)
		return false;
	for (i = 0; ig->keep[i]; i++)
		if (!strcmp(ig->keep[i], path))
			return false;
	for (i = 0; i < ig->n; i++) {
		/* only a pattern that could change the answer is tried */
		if (ig->v[i].exception != out)
			continue;
		if (matches(&ig->v[i], path, &scratch))
			out = !ig->v[i].exception;
	}
	ml_buf_release(&scratch);
	return out;
}

bool ml_ignore_prunes(const struct ml_ignore *ig, const char *dir)
{
	size_t i, n = strlen(dir);

	if (!ig || ig->nexceptions)
		return false;
	for (i = 0; ig->keep[i]; i++)
		if (!strncmp(ig->keep[i], dir, n) && ig->keep[i][n] == '/')
			return false;
	return true;
}

enum ml_export_verdict ml_ignore_judge(void *ctx, const char *name, bool is_dir)
{
	const struct ml_ignore *ig = ctx;

	if (!ml_ignore_excludes(ig, name))
		return ML_EXPORT_KEEP;
	return is_dir && ml_ignore_prunes(ig, name) ? ML_EXPORT_PRUNE
						    : ML_EXPORT_OMIT;
}

size_t ml_ignore_count(const struct ml_ignore *ig)
{
	return ig ? ig->n : 0;
}
