/*
 * mlctl history: the ledger's record of revisions, newest first.
 * Read-only.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/options.h"
#include "orchestrator/view/revision.h"

#include <jansson.h>

static const struct ml_option opt_limit = {
	OPT_LIMIT, "limit", 'n', "N", "show at most N revisions (default 20)"
};

static const struct ml_option *const history_options[] = {
	&ml_opt_json,
	&opt_limit,
	NULL,
};

static const char *took_text(const struct ml_revision *r,
			     char buf[ML_FMT_MAX])
{
	if (!r->finished_at || r->finished_at < r->started_at)
		return NULL;
	return ml_fmt_duration(buf, (r->finished_at - r->started_at) * 1000);
}

static bool pinned(const int64_t *pins, size_t n, int64_t number)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (pins[i] == number)
			return true;
	return false;
}

static int history_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "REV", "KIND", "COMMIT", "OUTCOME",
					   "STARTED", "TOOK", "WHO", "PIN" };
	struct ml_revision *revs = NULL;
	struct ml_table *t;
	int64_t limit = 20, *pins = NULL;
	size_t n = 0, npins = 0, i;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "history takes no arguments");
	if (ctx->opt[OPT_LIMIT]) {
		rc = ml_parse_count(&limit, ctx->opt[OPT_LIMIT], "--limit");
		if (rc < 0)
			return rc;
	}
	rc = ml_ledger_list(ctx->ledger, (size_t)limit, &revs, &n);
	if (rc == 0)
		rc = ml_ledger_pins(ctx->ledger, &pins, &npins);
	if (rc < 0) {
		ml_revisions_free(revs, n);
		return rc;
	}
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *arr = json_array(), *r;

		for (i = 0; i < n; i++) {
			r = ml_revision_json(&revs[i], false);
			json_object_set_new(r, "pinned",
					    json_boolean(pinned(pins, npins,
								revs[i].number)));
			json_array_append_new(arr, r);
		}
		ml_revisions_free(revs, n);
		free(pins);
		return ml_print_json(arr);
	}
	if (!n) {
		printf("no revisions recorded yet in '%s'\n",
		       ctx->ledger_path);
		ml_revisions_free(revs, n);
		free(pins);
		return 0;
	}
	t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	for (i = 0; i < n; i++) {
		char num[24], kind[48], sha[13], started[ML_FMT_MAX],
			took[ML_FMT_MAX];
		const char *cells[8];

		snprintf(num, sizeof(num), "%" PRId64, revs[i].number);
		snprintf(sha, sizeof(sha), "%.12s",
			 revs[i].commit ? revs[i].commit : "");
		cells[0] = num;
		cells[1] = ml_revision_kind_text(&revs[i], kind, sizeof(kind));
		cells[2] = sha;
		cells[3] = ml_outcome_name(revs[i].outcome);
		cells[4] = ml_fmt_time(started, revs[i].started_at);
		cells[5] = took_text(&revs[i], took);
		cells[6] = revs[i].who;
		cells[7] = pinned(pins, npins, revs[i].number) ? "pinned" : NULL;
		ml_table_add(t, cells);
	}
	ml_table_print(t, stdout);
	ml_table_free(t);
	ml_revisions_free(revs, n);
	free(pins);
	return 0;
}

const struct ml_cmd ml_cmd_history = {
	.name = "history",
	.summary = "list the recorded revisions, newest first",
	.usage = "[--limit N] [--json]",
	.options = history_options,
	.flags = ML_CMD_NEEDS_LEDGER,
	.run = history_run,
};
