/*
 * mlctl show N: one revision in full: what it deployed, where, with which
 * outcome, and its per-host steps in order. Read-only.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/options.h"
#include "orchestrator/view/revision.h"

#include <jansson.h>

static const struct ml_option *const show_options[] = {
	&ml_opt_json,
	NULL,
};

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
	rc = ml_parse_count(&num, ctx->argv[0], "the revision");
	if (rc < 0)
		return rc;
	rc = ml_ledger_get(ctx->ledger, num, &r);
	if (rc < 0)
		return rc;
	rc = ml_ledger_events(ctx->ledger, num, &ev, &n);
	if (rc < 0)
		goto out;
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *o = ml_revision_json(r, true);
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
		json_object_set_new(o, "numbers", ml_metrics_show_json(ev, n));
		rc = ml_print_json(o);
		goto out;
	}
	printf("revision %" PRId64 ": %s of commit %s\n", r->number,
	       ml_revision_kind_text(r, kind, sizeof(kind)), r->commit ? r->commit : "-");
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
		ml_metrics_show_print(stdout, ev, n);
	}
	rc = 0;
out:
	ml_events_free(ev, n);
	ml_revision_free(r);
	return rc;
}

const struct ml_cmd ml_cmd_show = {
	.name = "show",
	.summary = "show what one revision deployed, where, with which outcome",
	.usage = "REVISION [--json]",
	.options = show_options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = show_run,
};
