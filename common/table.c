/*
 * Aligned text tables (see table.h). Rows are kept until printing so column
 * widths can be computed; tables here hold at most a few thousand rows.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/table.h"

#include <unistd.h>

struct ml_table {
	size_t ncols;
	char **cells; /* nrows * ncols, row-major; row 0 is the header */
	size_t nrows, cap;
	unsigned char *styles; /* like cells, enum ml_style; NULL: plain */
	size_t scap;
};

static size_t utf8_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void add_row(struct ml_table *t, const char *const *cells)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	size_t i;

	ML_GROW(t->cells, (t->nrows + 1) * t->ncols, t->cap);
	for (i = 0; i < t->ncols; i++) {
		const char *c = cells[i] ? cells[i] : "-";

		ml_buf_reset(&b);
		if (ml_escape(&b, c, strlen(c)) < 0)
			ml_buf_reset(&b); /* cell over 4 KiB: leave it out */
		t->cells[t->nrows * t->ncols + i] =
			ml_xstrdup(ml_buf_str(&b));
	}
	t->nrows++;
	ml_buf_release(&b);
}

struct ml_table *ml_table_new(size_t ncols, const char *const *headers)
{
	struct ml_table *t = ml_xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	add_row(t, headers);
	return t;
}

void ml_table_free(struct ml_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->styles);
	free(t);
}

void ml_table_add(struct ml_table *t, const char *const *cells)
{
	add_row(t, cells);
}

void ml_table_add_styled(struct ml_table *t, const char *const *cells,
			 const enum ml_style *styles)
{
	size_t i, row = t->nrows;

	add_row(t, cells);
	if (!styles)
		return;
	if (t->scap < t->nrows * t->ncols) {
		size_t old = t->scap;

		ML_GROW(t->styles, t->nrows * t->ncols, t->scap);
		memset(t->styles + old, 0, t->scap - old);
	}
	for (i = 0; i < t->ncols; i++)
		t->styles[row * t->ncols + i] = (unsigned char)styles[i];
}

bool ml_colour_wanted(int fd)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	return isatty(fd) && (!nc || !*nc) && term && *term &&
	       strcmp(term, "dumb") != 0;
}

void ml_table_print(const struct ml_table *t, FILE *fp)
{
	ml_table_print_styled(t, fp, false);
}

void ml_table_print_styled(const struct ml_table *t, FILE *fp, bool colour)
{
	static const char *const sgr[] = { "", "\033[32m", "\033[33m",
					   "\033[31m", "\033[2m" };
	size_t *w = ml_xcalloc(t->ncols, sizeof(*w));
	size_t r, c, cw;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			cw = utf8_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t at = r * t->ncols + c;
			unsigned st = colour && t->styles && at < t->scap
					      ? t->styles[at]
					      : 0;

			if (st && st < ML_ARRAY_SIZE(sgr))
				fprintf(fp, "%s%s\033[0m", sgr[st], cell);
			else
				fputs(cell, fp);
			if (c + 1 < t->ncols) {
				cw = utf8_width(cell);
				for (; cw < w[c] + 2; cw++)
					fputc(' ', fp);
			}
		}
		fputc('\n', fp);
	}
	free(w);
}
