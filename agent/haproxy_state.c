/*
 * The server-state file across a reload: carrying each server's check
 * health to the backend that checks it next (see haproxy.h).
 */
#include "common/ml.h"
#include "agent/haproxy.h"

#include <stdlib.h>

/* The columns this needs, by their names in the dump's header. */
enum col {
	BE_NAME,
	SRV_NAME,
	OP_STATE,
	ADMIN_STATE,
	UWEIGHT,
	IWEIGHT,
	SINCE_CHANGE,
	CHECK_STATUS,
	CHECK_RESULT,
	CHECK_HEALTH,
	CHECK_STATE,
	NR_COLS
};

static const char *const col_names[NR_COLS] = {
	"be_name",	     "srv_name",	 "srv_op_state",
	"srv_admin_state",   "srv_uweight",	 "srv_iweight",
	"srv_time_since_last_change", "srv_check_status", "srv_check_result",
	"srv_check_health",  "srv_check_state",
};

/* HAProxy's CHK_ST_CONFIGURED bit in srv_check_state: the server has a
 * check of its own (a server that tracks another has none). */
#define CHECK_CONFIGURED 0x2

/* One row: its fields, each a string of its own. */
struct row {
	char **f;
	size_t n;
};

struct table {
	struct row *rows;
	size_t n, cap;
	size_t col[NR_COLS];
};

static void split(struct row *r, const char *p, size_t len)
{
	size_t i = 0, start;

	r->f = NULL;
	r->n = 0;
	for (;;) {
		start = i;
		while (i < len && p[i] != ' ')
			i++;
		r->f = ml_xrealloc(r->f, (r->n + 1) * sizeof(*r->f));
		r->f[r->n++] = ml_xstrndup(p + start, i - start);
		if (i >= len)
			break;
		i++;
	}
}

static void row_free(struct row *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->f[i]);
	free(r->f);
}

static const char *get(const struct table *t, const struct row *r,
		       enum col c)
{
	return t->col[c] < r->n ? r->f[t->col[c]] : "";
}

static void put(const struct table *t, struct row *r, enum col c,
		const char *v)
{
	if (t->col[c] < r->n) {
		free(r->f[t->col[c]]);
		r->f[t->col[c]] = ml_xstrdup(v);
	}
}

static struct row *find(struct table *t, const char *be, const char *srv)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(get(t, &t->rows[i], BE_NAME), be) &&
		    !strcmp(get(t, &t->rows[i], SRV_NAME), srv))
			return &t->rows[i];
	return NULL;
}

/* The row where srv has a check of its own, in one of app's backends. */
static struct row *own_check(struct table *t, const char *app,
			     const char *srv)
{
	char prefix[ML_LB_CHECK_NAME_MAX];

	snprintf(prefix, sizeof(prefix), "chk_%s_", app);
	for (size_t i = 0; i < t->n; i++) {
		struct row *r = &t->rows[i];
		const char *be = get(t, r, BE_NAME);

		if (strcmp(get(t, r, SRV_NAME), srv) ||
		    (strcmp(be, app) && strncmp(be, prefix, strlen(prefix))))
			continue;
		if (strtol(get(t, r, CHECK_STATE), NULL, 10) &
		    CHECK_CONFIGURED)
			return r;
	}
	return NULL;
}

static struct row *append_copy(struct table *t, const struct row *src)
{
	struct row *r;

	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->rows = ml_xrealloc(t->rows, t->cap * sizeof(*t->rows));
	}
	r = &t->rows[t->n++];
	r->n = src->n;
	r->f = ml_xcalloc(src->n ? src->n : 1, sizeof(*r->f));
	for (size_t i = 0; i < src->n; i++)
		r->f[i] = ml_xstrdup(src->f[i]);
	return r;
}

/* Parse the header "# name name ..." into t->col; false when a column
 * this needs is missing. */
static bool header(struct table *t, const char *p, size_t len)
{
	struct row h;
	bool ok = true;

	split(&h, p, len);
	for (int c = 0; c < NR_COLS; c++) {
		t->col[c] = SIZE_MAX;
		for (size_t i = 0; i < h.n; i++)
			if (!strcmp(h.f[i], col_names[c]))
				t->col[c] = i;
		ok &= t->col[c] != SIZE_MAX;
	}
	row_free(&h);
	return ok;
}

/* Move the check of server s to the backend be. */
static void carry(struct table *t, const struct ml_lb_config *next,
		  const struct ml_lb_server *s, const char *be)
{
	const struct ml_lb_check *k = s->check;
	struct row *src = own_check(t, next->app, s->name), *dst;
	size_t si;
	char health[24];
	long most, hv;

	if (!src || !strcmp(get(t, src, BE_NAME), be))
		return;
	si = (size_t)(src - t->rows);
	dst = find(t, be, s->name);
	if (!dst) {
		dst = append_copy(t, src);
		src = &t->rows[si]; /* the append may have moved it */
		put(t, dst, BE_NAME, be);
		put(t, dst, ADMIN_STATE, "0");
		put(t, dst, UWEIGHT, "1");
		put(t, dst, IWEIGHT, "1");
	}
	put(t, dst, OP_STATE, get(t, src, OP_STATE));
	put(t, dst, SINCE_CHANGE, get(t, src, SINCE_CHANGE));
	put(t, dst, CHECK_STATUS, get(t, src, CHECK_STATUS));
	put(t, dst, CHECK_RESULT, get(t, src, CHECK_RESULT));
	put(t, dst, CHECK_STATE, get(t, src, CHECK_STATE));
	/* health counts up to rise + fall - 1 (fully up) for the new check */
	most = (k ? k->rise + k->fall : next->rise + next->fall) - 1;
	hv = strtol(get(t, src, CHECK_HEALTH), NULL, 10);
	snprintf(health, sizeof(health), "%ld", hv > most ? most : hv);
	put(t, dst, CHECK_HEALTH, health);
}

int ml_haproxy_carry_checks(struct ml_buf *out, const char *state,
			    const struct ml_lb_config *next)
{
	struct table t = {0};
	const char *p = state, *nl, *head = NULL;
	size_t head_len = 0, i, j;
	bool have_cols = false;
	int rc = 0;

	if (strncmp(state, "1\n", 2))
		return ml_buf_addstr(out, state);
	for (p = state + 2; *p; p = *nl ? nl + 1 : nl) {
		size_t n;

		nl = strchrnul(p, '\n');
		n = (size_t)(nl - p);
		if (!n)
			continue;
		if (!head && n >= 2 && p[0] == '#' && p[1] == ' ') {
			head = p;
			head_len = n;
			have_cols = header(&t, p + 2, n - 2);
			continue;
		}
		if (p[0] == '#' || !head)
			continue;
		if (t.n == t.cap) {
			t.cap = t.cap ? 2 * t.cap : 16;
			t.rows = ml_xrealloc(t.rows, t.cap * sizeof(*t.rows));
		}
		split(&t.rows[t.n++], p, n);
	}
	if (!have_cols) {
		rc = ml_buf_addstr(out, state);
		goto out;
	}
	for (i = 0; i < next->nr_servers; i++) {
		const struct ml_lb_server *s = &next->servers[i];
		char be[ML_LB_CHECK_NAME_MAX];

		if (s->check)
			ml_haproxy_check_backend(be, next, s->check);
		else
			snprintf(be, sizeof(be), "%s", next->app);
		carry(&t, next, s, be);
	}
	ml_buf_addstr(out, "1\n");
	ml_buf_add(out, head, head_len);
	ml_buf_addch(out, '\n');
	for (i = 0; i < t.n; i++) {
		for (j = 0; j < t.rows[i].n; j++) {
			if (j)
				ml_buf_addch(out, ' ');
			ml_buf_addstr(out, t.rows[i].f[j]);
		}
		ml_buf_addch(out, '\n');
	}
	/* every add above is checked once here: a full buffer stays full */
	rc = ml_buf_addstr(out, "");
out:
	for (i = 0; i < t.n; i++)
		row_free(&t.rows[i]);
	free(t.rows);
	return rc;
}
