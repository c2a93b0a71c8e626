/*
 * container_logs: the last lines a container wrote to stdout and stderr.
 *
 *	args:   {"id": "ID or NAME", "tail": N (1..10000, default 100)}
 *	result: {"lines": ["...", ...], "truncated": bool}
 *
 * From GET /containers/{id}/logs?stdout=1&stderr=1&tail=N, demultiplexed
 * and cut into lines by ml_docker_log_lines (common/docker.c): every line
 * is escaped (ml_escape), so a container cannot put terminal controls in
 * front of whoever reads them, and cut after LINE_MAX bytes. So that the
 * reply always fits a frame, the oldest lines are dropped past REPLY_BUDGET
 * bytes of text, and "truncated" says so.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "common/docker.h"

#define OP "container_logs"
#define TAIL_MAX 10000
#define LINE_MAX_BYTES 4096
#define REPLY_BUDGET ((size_t)768 << 10) /* JSON overhead stays < 1 MiB */

/*
 * Drop the oldest lines until the rest, counted as their length plus
 * 8 bytes of quoting and commas, fits budget. Returns whether any went.
 */
static bool fit(json_t *lines, size_t budget)
{
	size_t i, total = 0, n = json_array_size(lines), keep_from = n;
	json_t *kept;

	for (i = n; i-- > 0;) {
		size_t len = json_string_length(json_array_get(lines, i)) + 8;

		if (total + len > budget)
			break;
		total += len;
		keep_from = i;
	}
	if (!keep_from)
		return false;
	kept = json_array();
	for (i = keep_from; i < n; i++)
		json_array_append(kept, json_array_get(lines, i));
	json_array_clear(lines);
	json_array_extend(lines, kept);
	json_decref(kept);
	return true;
}

static int op_container_logs(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_docker *d;
	json_t *lines = NULL, *r;
	const char *id;
	json_int_t tail = 100;
	bool cut;
	int rc;

	rc = ml_agent_arg_name(&id, args, OP, "id", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&tail, args, OP, "tail", 1, TAIL_MAX,
				      false);
	if (rc < 0)
		goto out;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		goto out;
	rc = ml_docker_logs_tail(&lines, d, id, (int)tail, LINE_MAX_BYTES);
	if (rc < 0)
		goto out;
	cut = fit(lines, REPLY_BUDGET);
	r = json_object();
	json_object_set_new(r, "lines", lines);
	json_object_set_new(r, "truncated", json_boolean(cut));
	lines = NULL;
	*result = r;
out:
	json_decref(lines);
	return rc;
}

const struct ml_agent_op ml_agent_op_container_logs = {
	.name = "container_logs",
	.summary = "the last lines of a container's stdout and stderr",
	.run = op_container_logs,
};
