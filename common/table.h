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

#endif
