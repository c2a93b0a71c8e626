/*
 * mlctl history and mlctl show: the ledger's record of revisions, newest
 * first, and one revision in full with its per-host steps. Read-only.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd.h"
#include "orchestrator/ledger/ledger.h"

#include <jansson.h>

static const struct ml_option opt_limit = {
	OPT_LIMIT, "limit", 'n', "N", "show at most N revisions (default 20)"
};

static const struct ml_option *const history_options[] = {
	&ml_opt_json,
	&opt_limit,
	NULL,
};

static const struct ml_option *const show_options[] = {
	&ml_opt_json,
	NULL,
};

static int parse_count(int64_t *out, const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return ml_err_set(ML_EUSAGE, "%s must be a number, not '%s'",
				  what, s);
	*out = v;
	return 0;
}

static json_t *revision_json(const struct ml_revision *r, bool full)
{
	json_t *o = json_object();

	json_object_set_new(o, "number", json_integer(r->number));
	json_object_set_new(o, "kind", json_string(ml_rev_kind_name(r->kind)));
	if (r->kind == ML_REV_ROLLBACK)
		json_object_set_new(o, "rollback_of",
				    json_integer(r->rollback_of));
	json_object_set_new(o, "commit", json_string(r->commit));
	json_object_set_new(o, "outcome",
			    json_string(ml_outcome_name(r->outcome)));
	json_object_set_new(o, "message",
			    r->message ? json_string(r->message) : json_null());
	json_object_set_new(o, "who", r->who ? json_string(r->who)
					     : json_null());
	json_object_set_new(o, "started_at", json_integer(r->started_at));
	json_object_set_new(o, "finished_at",
			    r->finished_at ? json_integer(r->finished_at)
					   : json_null());
	json_object_set_new(o, "image_id", r->image_id
						   ? json_string(r->image_id)
						   : json_null());
	json_object_set_new(o, "playbook_hash",
			    r->playbook_hash ? json_string(r->playbook_hash)
					     : json_null());
	if (full) {
		json_t *desired = r->desired_json
					  ? json_loads(r->desired_json, 0, NULL)
					  : NULL;

		json_object_set_new(o, "desired",
				    desired ? desired : json_null());
		json_object_set_new(o, "playbook",
				    r->playbook ? json_string(r->playbook)
						: json_null());
	}
	return o;
}

static int dump_json(json_t *doc)
{
	int rc = 0;

	if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		rc = ml_err_set(ML_EFAIL, "cannot write JSON");
	printf("\n");
	json_decref(doc);
	return rc;
}

static const char *kind_text(const struct ml_revision *r, char *buf,
			     size_t n)
{
	if (r->kind == ML_REV_ROLLBACK)
		snprintf(buf, n, "rollback to %" PRId64, r->rollback_of);
	else
		snprintf(buf, n, "deploy");
	return buf;
}

static const char *took_text(const struct ml_revision *r,
			     char buf[ML_FMT_MAX])
{
	if (!r->finished_at || r->finished_at < r->started_at)
		return NULL;
	return ml_fmt_duration(buf, (r->finished_at - r->started_at) * 1000);
}

static int history_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "REV", "KIND", "COMMIT", "OUTCOME",
					   "STARTED", "TOOK", "WHO" };
	struct ml_revision *revs = NULL;
	struct ml_table *t;
	int64_t limit = 20;
	size_t n = 0, i;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "history takes no arguments");
	if (ctx->opt[OPT_LIMIT]) {
		rc = parse_count(&limit, ctx->opt[OPT_LIMIT], "--limit");
		if (rc < 0)
			return rc;
	}
	rc = ml_ledger_list(ctx->ledger, (size_t)limit, &revs, &n);
	if (rc < 0)
		return rc;
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr,
					      revision_json(&revs[i], false));
		ml_revisions_free(revs, n);
		return dump_json(arr);
	}
	if (!n) {
		printf("no revisions recorded yet in '%s'\n",
		       ctx->ledger_path);
		ml_revisions_free(revs, n);
		return 0;
	}
	t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	for (i = 0; i < n; i++) {
		char num[24], kind[48], sha[13], started[ML_FMT_MAX],
			took[ML_FMT_MAX];
		const char *cells[7];

		snprintf(num, sizeof(num), "%" PRId64, revs[i].number);
		snprintf(sha, sizeof(sha), "%.12s",
			 revs[i].commit ? revs[i].commit : "");
		cells[0] = num;
		cells[1] = kind_text(&revs[i], kind, sizeof(kind));
		cells[2] = sha;
		cells[3] = ml_outcome_name(revs[i].outcome);
		cells[4] = ml_fmt_time(started, revs[i].started_at);
		cells[5] = took_text(&revs[i], took);
		cells[6] = revs[i].who;
		ml_table_add(t, cells);
	}
	ml_table_print(t, stdout);
	ml_table_free(t);
	ml_revisions_free(revs, n);
	return 0;
}

static int show_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "TIME", "HOST", "STEP", "STATUS",
					   "DETAIL" };
	struct ml_revision *r = NULL;
	struct ml_event *ev = NULL;
	struct ml_table *t;
	int64_t num;
	size_t n = 0, i;
	char buf[ML_FMT_MAX], kind[48];
	int rc;

	if (ctx->argc != 1)
		return ml_err_set(ML_EUSAGE, "usage: mlctl show REVISION");
	rc = parse_count(&num, ctx->argv[0], "the revision");
	if (rc < 0)
		return rc;
	rc = ml_ledger_get(ctx->ledger, num, &r);
	if (rc < 0)
		return rc;
	rc = ml_ledger_events(ctx->ledger, num, &ev, &n);
	if (rc < 0)
		goto out;
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *o = revision_json(r, true);
		json_t *arr = json_array();

		for (i = 0; i < n; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "at_ms",
					    json_integer(ev[i].at_ms));
			json_object_set_new(e, "host", json_string(ev[i].host));
			json_object_set_new(e, "step", json_string(ev[i].step));
			json_object_set_new(e, "status",
					    json_string(ev[i].status));
			json_object_set_new(e, "detail",
					    ev[i].detail
						    ? json_string(ev[i].detail)
						    : json_null());
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "events", arr);
		rc = dump_json(o);
		goto out;
	}
	printf("revision %" PRId64 ": %s of commit %s\n", r->number,
	       kind_text(r, kind, sizeof(kind)), r->commit ? r->commit : "-");
	printf("outcome:  %s%s%s\n", ml_outcome_name(r->outcome),
	       r->message ? ": " : "", r->message ? r->message : "");
	printf("started:  %s by %s\n", ml_fmt_time(buf, r->started_at),
	       r->who ? r->who : "-");
	if (r->finished_at)
		printf("finished: %s\n", ml_fmt_time(buf, r->finished_at));
	printf("image:    %s\n", r->image_id ? r->image_id : "-");
	printf("playbook: sha256 %s\n",
	       r->playbook_hash ? r->playbook_hash : "-");
	if (n) {
		printf("\n");
		t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
		for (i = 0; i < n; i++) {
			const char *cells[5];

			cells[0] = ml_fmt_time(buf, ev[i].at_ms / 1000);
			cells[1] = ev[i].host;
			cells[2] = ev[i].step;
			cells[3] = ev[i].status;
			cells[4] = ev[i].detail;
			ml_table_add(t, cells);
		}
		ml_table_print(t, stdout);
		ml_table_free(t);
	}
	rc = 0;
out:
	ml_events_free(ev, n);
	ml_revision_free(r);
	return rc;
}

const struct ml_cmd ml_cmd_history = {
	.name = "history",
	.summary = "list the recorded revisions, newest first",
	.usage = "[--limit N] [--json]",
	.options = history_options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = history_run,
};

const struct ml_cmd ml_cmd_show = {
	.name = "show",
	.summary = "show what one revision deployed, where, with which outcome",
	.usage = "REVISION [--json]",
	.options = show_options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = show_run,
};
