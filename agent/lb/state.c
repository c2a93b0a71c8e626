/*
 * The server-state file across a reload: saving the running state before
 * a reload, and carrying each server's check health to the backend that
 * checks it next (see internal.h).
 *
 * Invariants: the dump is parsed by the runtime API's one table parser
 * (ml_haproxy_parse_rows); rows keep their fields in order, so what this
 * does not change is written back as HAProxy wrote it. A dump that is not
 * format 1 or lacks a column this needs is copied unchanged.
 *
 * Sizes: the dump is at most ML_HAPROXY_REPLY_MAX (about 300 bytes per
 * server); a row is copied for each server whose check moves.
 */
#include "common/ml.h"
#include "common/proto.h"
#include "agent/lb/internal.h"

#include <stdio.h>
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

/* The dump's rows (arrays of strings, ml_haproxy_parse_rows) and where
 * each column this needs stands in them. */
struct table {
	json_t *rows;
	size_t col[NR_COLS];
};

static const char *get(const struct table *t, json_t *r, enum col c)
{
	const char *v = json_string_value(json_array_get(r, t->col[c]));

	return v ? v : "";
}

static void put(const struct table *t, json_t *r, enum col c, const char *v)
{
	if (t->col[c] < json_array_size(r))
		json_array_set_new(r, t->col[c], ml_proto_string(v));
}

static json_t *find(const struct table *t, const char *be, const char *srv)
{
	size_t i;
	json_t *r;

	json_array_foreach(t->rows, i, r)
		if (!strcmp(get(t, r, BE_NAME), be) &&
		    !strcmp(get(t, r, SRV_NAME), srv))
			return r;
	return NULL;
}

/* The row where srv has a check of its own, in one of app's backends. */
static json_t *own_check(const struct table *t, const char *app,
			 const char *srv)
{
	char prefix[ML_LB_CHECK_NAME_MAX];
	size_t i;
	json_t *r;

	snprintf(prefix, sizeof(prefix), "chk_%s_", app);
	json_array_foreach(t->rows, i, r) {
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

/* Find the columns this needs in the header names; false when one is
 * missing. */
static bool header(struct table *t, json_t *names)
{
	bool ok = true;
	size_t i;
	json_t *v;

	for (int c = 0; c < NR_COLS; c++) {
		t->col[c] = SIZE_MAX;
		json_array_foreach(names, i, v)
			if (!strcmp(json_string_value(v), col_names[c]))
				t->col[c] = i;
		ok &= t->col[c] != SIZE_MAX;
	}
	return ok;
}

/* Move the check of server s to the backend be. */
static void carry(struct table *t, const struct ml_lb_config *next,
		  const struct ml_lb_server *s, const char *be)
{
	const struct ml_lb_check *k = s->check;
	json_t *src = own_check(t, next->app, s->name), *dst;
	char health[24];
	long most, hv;

	if (!src || !strcmp(get(t, src, BE_NAME), be))
		return;
	dst = find(t, be, s->name);
	if (!dst) {
		dst = json_deep_copy(src);
		json_array_append_new(t->rows, dst);
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

/* Fields of one row (or the header's names), separated by single
 * spaces. */
static void add_fields(struct ml_buf *out, json_t *fields)
{
	size_t i;
	json_t *v;

	json_array_foreach(fields, i, v) {
		if (i)
			ml_buf_addch(out, ' ');
		ml_buf_addstr(out, json_string_value(v));
	}
	ml_buf_addch(out, '\n');
}

int ml_haproxy_carry_checks(struct ml_buf *out, const char *state,
			    const struct ml_lb_config *next)
{
	struct table t = {0};
	json_t *names = NULL, *r;
	size_t i;
	int rc;

	if (strncmp(state, "1\n", 2))
		return ml_buf_addstr(out, state);
	if (ml_haproxy_parse_rows(&names, &t.rows, state, ' ') < 0) {
		ml_err_clear(); /* no header: nothing to carry */
		return ml_buf_addstr(out, state);
	}
	if (!header(&t, names)) {
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
	ml_buf_addstr(out, "1\n# ");
	add_fields(out, names);
	json_array_foreach(t.rows, i, r)
		add_fields(out, r);
	/* every add above is checked once here: a full buffer stays full */
	rc = ml_buf_addstr(out, "");
out:
	json_decref(names);
	json_decref(t.rows);
	return rc;
}

int ml_haproxy_save_state(const struct ml_haproxy *h,
			  const struct ml_lb_config *next)
{
	struct ml_buf carried = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	struct ml_buf b = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	/* every backend: the check-only ones carry their servers' health */
	char *cmd = ml_xstrdup("show servers state");
	int rc;

	rc = ml_haproxy_cmd(&b, h->admin_sock, cmd, h->timeout_ms);
	if (rc < 0)
		goto out;
	if (strncmp(ml_buf_str(&b), "1\n", 2)) {
		rc = ml_err_set(ML_EFAIL,
				"haproxy's server state for app '%s' "
				"is not in format 1",
				h->app);
		goto out;
	}
	rc = ml_haproxy_carry_checks(&carried, ml_buf_str(&b), next);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_write_file(h->state_tmp, carried.data, carried.len);
	if (rc < 0)
		goto out;
	if (rename(h->state_tmp, h->state_file) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'",
				  h->state_tmp);
		goto out;
	}
	rc = 0;
out:
	free(cmd);
	ml_buf_release(&carried);
	ml_buf_release(&b);
	return rc;
}

