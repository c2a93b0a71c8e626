/*
 * container_logs: the lines a container wrote to stdout and stderr.
 *
 *	args:   {"id": "ID or NAME", "tail": N (1..10000, default 100),
 *		 "timestamps": bool, "after_ns": unix ns (optional)}
 *	result: {"lines": ["...", ...], "truncated": bool}
 *		or, with timestamps or after_ns:
 *		{"entries": [{"t": unix ns, "line": "..."}, ...],
 *		 "truncated": bool, "skipped": bool}
 *
 * From GET /containers/{id}/logs?stdout=1&stderr=1&tail=N, demultiplexed
 * and cut into lines by ml_docker_log_lines (common/docker.c): every line
 * is escaped (ml_escape), so a container cannot put terminal controls in
 * front of whoever reads them, and cut after LINE_MAX bytes. So that the
 * reply always fits a frame, the oldest lines are dropped past REPLY_BUDGET
 * bytes of text, and "truncated" says so.
 *
 * after_ns is how `mlctl logs -f` follows by polling: it asks for the lines
 * newer than the last one it printed. Docker applies tail first (the newest
 * N lines) and its since filter after, and since is inclusive, so the agent
 * asks for since=after_ns and drops the lines not newer than it itself.
 * When all N lines came back newer than after_ns, older ones may have been
 * passed over: "skipped" says so, and the follower reports a gap rather than
 * pretending the stream is whole. Memory per call stays bounded by tail,
 * the line cut and Docker's 8 MiB answer cap whatever the container prints.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "common/buf.h"
#include "common/docker.h"

#include <time.h>

#define OP "container_logs"
#define TAIL_MAX 10000
#define LINE_MAX_BYTES 4096
#define REPLY_BUDGET ((size_t)768 << 10) /* JSON overhead stays < 1 MiB */
#define ENTRY_OVERHEAD 40		 /* {"t":<19 digits>,"line":""}, */

/*
 * Drop the oldest items until the rest, counted as their text length plus
 * overhead bytes of quoting and keys, fits budget. Returns whether any went.
 */
static bool fit(json_t *items, size_t budget, size_t overhead)
{
	size_t i, total = 0, n = json_array_size(items), keep_from = n;
	json_t *kept, *v;
	size_t len;

	for (i = n; i-- > 0;) {
		v = json_array_get(items, i);
		if (json_is_object(v))
			v = json_object_get(v, "line");
		len = json_string_length(v) + overhead;

		if (total + len > budget)
			break;
		total += len;
		keep_from = i;
	}
	if (!keep_from)
		return false;
	kept = json_array();
	for (i = keep_from; i < n; i++)
		json_array_append(kept, json_array_get(items, i));
	json_array_clear(items);
	json_array_extend(items, kept);
	json_decref(kept);
	return true;
}

/*
 * Docker's timestamp prefix "2026-12-01T20:15:03.1234Z " (RFC 3339 with
 * nanoseconds, trailing zeros dropped, always UTC) -> unix ns in *ns and
 * the length of the prefix with its space in *len. False when s does not
 * start with one.
 */
static bool parse_ts(int64_t *ns, size_t *len, const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	int64_t frac = 0;
	int digits = 0;

	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return false;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (digits < 9) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
	}
	for (; digits < 9; digits++)
		frac *= 10;
	if (*p != 'Z' || p[1] != ' ')
		return false;
	*ns = (int64_t)timegm(&tm) * 1000000000 + frac;
	*len = (size_t)(p + 2 - s);
	return true;
}

/* Turn Docker's "TS text" lines into entries newer than after_ns. */
static json_t *to_entries(json_t *lines, int64_t after_ns, bool *skipped,
			  size_t asked)
{
	json_t *entries = json_array(), *v;
	size_t i, older = 0;

	json_array_foreach(lines, i, v) {
		const char *s = json_string_value(v);
		int64_t t;
		size_t len;

		if (!parse_ts(&t, &len, s)) {
			/* a cut continuation of a long line: no time of its
			 * own, so it goes with the one before */
			t = 0;
			len = 0;
		}
		if (after_ns && t && t <= after_ns) {
			older++;
			continue;
		}
		json_array_append_new(entries,
				      json_pack("{s:I,s:s}", "t", (json_int_t)t,
						"line", s + len));
	}
	*skipped = after_ns && !older && json_array_size(lines) >= asked;
	return entries;
}

static int op_container_logs(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf path = ML_BUF_INIT(512);
	struct ml_buf raw = ML_BUF_INIT(ML_DOCKER_LOGS_MAX);
	struct ml_docker *d;
	json_t *lines = NULL, *items, *r, *v;
	const char *id;
	json_int_t tail = 100, after = 0;
	bool cut, ts = false, skipped = false;
	int rc;

	rc = ml_agent_arg_name(&id, args, OP, "id", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&tail, args, OP, "tail", 1, TAIL_MAX,
				      false);
	if (rc == 0)
		rc = ml_agent_arg_int(&after, args, OP, "after_ns", 0,
				      INT64_MAX, false);
	if (rc < 0)
		goto out;
	v = json_object_get(args, "timestamps");
	if (v && !json_is_boolean(v)) {
		rc = ml_err_set(ML_EPROTO, "%s: 'timestamps' must be a boolean",
				OP);
		goto out;
	}
	ts = json_is_true(v) || after;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	if (!ts) {
		rc = ml_docker_logs_tail(&lines, d, id, (int)tail,
					 LINE_MAX_BYTES);
		if (rc < 0)
			goto out;
	} else {
		rc = ml_buf_addf(&path,
				 "/containers/%s/logs?stdout=1&stderr=1"
				 "&timestamps=1&tail=%lld",
				 id, (long long)tail);
		if (rc == 0 && after)
			rc = ml_buf_addf(&path, "&since=%lld.%09lld",
					 (long long)(after / 1000000000),
					 (long long)(after % 1000000000));
		if (rc == 0)
			rc = ml_docker_request_raw(d, NULL, "GET", path.data,
						   NULL, &raw);
		if (rc < 0)
			goto out;
		lines = json_array();
		rc = ml_docker_log_lines(lines, raw.data ? raw.data : "",
					 raw.len, LINE_MAX_BYTES);
		if (rc < 0)
			goto out;
		items = to_entries(lines, after, &skipped, (size_t)tail);
		json_decref(lines);
		lines = items;
	}
	cut = fit(lines, REPLY_BUDGET, ts ? ENTRY_OVERHEAD : 8);
	r = json_object();
	json_object_set_new(r, ts ? "entries" : "lines", lines);
	json_object_set_new(r, "truncated", json_boolean(cut));
	if (ts)
		json_object_set_new(r, "skipped", json_boolean(skipped));
	lines = NULL;
	*result = r;
out:
	json_decref(lines);
	ml_buf_release(&raw);
	ml_buf_release(&path);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_logs = {
	.name = "container_logs",
	.summary = "the last or newest lines of a container's stdout and stderr",
	.run = op_container_logs,
};
