/*
 * The numbers of one rollout for `mlctl show`, from the events the ledger
 * holds: per host, how long each new container took to become healthy
 * (the "healthy" events: "after N ms", counted from container start by
 * the agent's container_wait), and what clients got from each revision
 * while it ran (the "requests" events ml_metrics_refresh recorded from the
 * balancers' request logs, where there were any).
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/metrics/metrics.h"

/* "after 1234 ms" -> 1234, -1 when the detail is not that. */
static int64_t healthy_ms(const struct ml_event *e)
{
	long long v;

	if (strcmp(e->step, "healthy") || strcmp(e->status, "ok") ||
	    !e->detail || sscanf(e->detail, "after %lld ms", &v) != 1)
		return -1;
	return (int64_t)v;
}

json_t *ml_metrics_show_json(const struct ml_event *ev, size_t n)
{
	json_t *hosts = json_array(), *req = json_array(), *h, *v;
	size_t i, k;

	for (i = 0; i < n; i++) {
		int64_t ms = healthy_ms(&ev[i]);

		if (!strcmp(ev[i].step, "requests") && ev[i].detail)
			json_array_append_new(req, json_string(ev[i].detail));
		if (ms < 0)
			continue;
		h = NULL;
		json_array_foreach(hosts, k, v)
			if (!strcmp(json_string_value(json_object_get(v, "host")),
				    ev[i].host))
				h = v;
		if (!h) {
			h = json_pack("{s:s,s:[]}", "host", ev[i].host,
				      "healthy_after_ms");
			json_array_append_new(hosts, h);
		}
		json_array_append_new(json_object_get(h, "healthy_after_ms"),
				      json_integer(ms));
	}
	return json_pack("{s:o,s:o}", "hosts", hosts, "requests", req);
}

void ml_metrics_show_print(FILE *fp, const struct ml_event *ev, size_t n)
{
	static const char *const hdr[] = { "HOST", "TIME TO HEALTHY" };
	json_t *s = ml_metrics_show_json(ev, n), *h, *v;
	struct ml_table *t;
	size_t i, k;

	if (json_array_size(json_object_get(s, "hosts"))) {
		t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
		json_array_foreach(json_object_get(s, "hosts"), i, h) {
			char text[256] = "", d[ML_FMT_MAX];
			const char *cells[2];

			json_array_foreach(json_object_get(h,
							   "healthy_after_ms"),
					   k, v) {
				size_t len = strlen(text);

				snprintf(text + len, sizeof(text) - len,
					 "%s%s", len ? ", " : "",
					 ml_fmt_duration(
						 d, json_integer_value(v)));
			}
			cells[0] = json_string_value(json_object_get(h, "host"));
			cells[1] = text;
			ml_table_add(t, cells);
		}
		fprintf(fp, "\n");
		ml_table_print(t, fp);
		ml_table_free(t);
	}
	if (json_array_size(json_object_get(s, "requests")))
		fprintf(fp, "\nwhat clients got during the rollout:\n");
	json_array_foreach(json_object_get(s, "requests"), i, v)
		fprintf(fp, "  %s\n", json_string_value(v));
	json_decref(s);
}
