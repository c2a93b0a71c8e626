#ifndef ML_TABLE_H
#define ML_TABLE_H

/*
 * Aligned text tables for human output (plan, history, status). Cells are
 * copied and escaped (text from remote hosts may hold control characters);
 * columns are as wide as their widest cell, counted in UTF-8 characters.
 */

struct ml_table;

struct ml_table *ml_table_new(size_t ncols, const char *const *headers);
void ml_table_free(struct ml_table *t);

/* Add a row of ncols cells; NULL cells print as "-". */
void ml_table_add(struct ml_table *t, const char *const *cells);

/* Add a row from printf-style cells separated by '\t' is not offered on
 * purpose: cells are data. Use ml_table_add with formatted strings. */

void ml_table_print(const struct ml_table *t, FILE *fp);

/* What a cell says at a glance; shown as a colour on a terminal only. */
enum ml_style {
	ML_STYLE_PLAIN = 0,
	ML_STYLE_GOOD,  /* green: healthy, serving, running */
	ML_STYLE_WARN,  /* yellow: starting, draining, drifted */
	ML_STYLE_BAD,   /* red: failing, down, unreachable */
	ML_STYLE_DIM,   /* grey: out of service on purpose */
};

/* ml_table_add with a style per cell (styles may be NULL: all plain). */
void ml_table_add_styled(struct ml_table *t, const char *const *cells,
			 const enum ml_style *styles);

/* Print; with colour, styled cells are wrapped in ANSI colour sequences
 * (column widths still count only the text). */
void ml_table_print_styled(const struct ml_table *t, FILE *fp, bool colour);

/*
 * Whether output to fd should be coloured: fd is a terminal, NO_COLOR
 * (no-color.org) is unset or empty, and TERM is set and not "dumb".
 * Piped output and files never are.
 */
bool ml_colour_wanted(int fd);

#endif
