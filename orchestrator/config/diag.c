/*
 * Diagnostics: a list of "file:line:col: error: msg" records collected while
 * parsing and validating, printed together in order of place.
 *
 * Invariants: d->v holds d->n records, each owning its file and msg
 * strings; d->cap >= d->n. A zeroed struct ml_diags is a valid empty list,
 * and ml_diags_release() returns a list to that state.
 *
 * Sizes: a few to a few hundred records per run; printing sorts an index
 * array of n entries (n log n), leaving the list itself in insertion order.
 * Messages may quote text from the user's files, so printing escapes ASCII
 * and C1 control characters to keep a hostile file from driving the
 * terminal.
 */
#include "common/ml.h"

#include "orchestrator/config/config.h"

static char *vformat(const char *fmt, va_list ap) ML_PRINTF(1, 0);

static char *vformat(const char *fmt, va_list ap)
{
	va_list cp;
	char *s;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return ml_xstrdup("(unprintable message)");
	s = ml_xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

void ml_diags_add(struct ml_diags *d, const char *file, int line, int col,
		  const char *fmt, ...)
{
	struct ml_diag *g;
	va_list ap;

	ML_GROW(d->v, d->n + 1, d->cap);
	g = &d->v[d->n];
	g->file = ml_xstrdup(file ? file : "");
	g->line = line > 0 ? line : 0;
	g->col = g->line && col > 0 ? col : 0;
	va_start(ap, fmt);
	g->msg = vformat(fmt, ap);
	va_end(ap);
	d->n++;
}

void ml_diags_release(struct ml_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = 0;
	d->cap = 0;
}

/* Sort key: place first, then insertion order so that equal places keep
 * the order in which they were found (qsort is not stable by itself). */
struct diag_ref {
	const struct ml_diag *g;
	size_t idx;
};

static int diag_cmp(const void *a, const void *b)
{
	const struct diag_ref *x = a, *y = b;
	int c = strcmp(x->g->file, y->g->file);

	if (c)
		return c;
	if (x->g->line != y->g->line)
		return x->g->line < y->g->line ? -1 : 1;
	if (x->g->col != y->g->col)
		return x->g->col < y->g->col ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Write s, escaping bytes a terminal would act upon. */
static void put_escaped(const char *s, FILE *stream)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(stream, "\\x%02x", *p);
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			/* U+0080..U+009F, the C1 controls */
			fprintf(stream, "\\u%04x", p[1]);
			p++;
		} else {
			fputc(*p, stream);
		}
	}
}

void ml_diags_print(const struct ml_diags *d, FILE *stream)
{
	struct diag_ref *r;
	size_t i;

	if (!d->n)
		return;
	r = ml_xcalloc(d->n, sizeof(*r));
	for (i = 0; i < d->n; i++) {
		r[i].g = &d->v[i];
		r[i].idx = i;
	}
	qsort(r, d->n, sizeof(*r), diag_cmp);
	for (i = 0; i < d->n; i++) {
		const struct ml_diag *g = r[i].g;

		put_escaped(g->file, stream);
		if (g->line)
			fprintf(stream, ":%d:%d", g->line, g->col);
		fputs(": error: ", stream);
		put_escaped(g->msg, stream);
		fputc('\n', stream);
	}
	free(r);
}
