/*
 * canary_gate: the meeting point of a deploy held at a manual canary step
 * and the `mlctl promote` / `mlctl abort` of any controller. It lives on
 * the fleet lock's host, beside the lease, so every controller finds it
 * by the same rule.
 *
 *	args:   {"app", "action": open|get|decide|close,
 *		 "revision" (open), "step" (open, 1-based),
 *		 "decision": promote|abort (decide), "by" (decide: who)}
 *	result: {"open": bool, "revision", "step", "opened_at_ms",
 *		 "decision": "promote"|"abort"|null, "by", "decided_at_ms"}
 *
 * open (by the deploying controller, fenced) starts a gate with no
 * decision, replacing any earlier one, so a stale promote never passes a
 * new step; get reads it; decide sets the decision of an open gate that
 * has none yet (ML_ENOTFOUND "no canary step ... is waiting" when there
 * is no open gate; the first decision wins and later ones are refused
 * with ML_EINVALID); close removes it. The gate is
 * <state_dir>/canary-<app>.json (0600), replaced by tmp + rename, under
 * flock(2) on <state_dir>/canary-<app>.flock, at most 4 KiB. Times are
 * this host's CLOCK_REALTIME in ms.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OP "canary_gate"
#define GATE_MAX 4096

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *gate_load(const char *path)
{
	struct ml_buf b = ML_BUF_INIT(GATE_MAX);
	json_t *g = NULL;

	if (ml_buf_read_file(&b, path) == 0 && b.len)
		g = json_loadb(b.data, b.len, 0, NULL);
	ml_buf_release(&b);
	if (!json_is_object(g)) {
		json_decref(g);
		return NULL;
	}
	return g;
}

static int gate_save(const char *path, json_t *g)
{
	char *tmp = ml_xasprintf("%s.tmp", path);
	char *text = json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	rc = ml_haproxy_write_file(tmp, text, strlen(text));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'", tmp);
	if (rc < 0)
		unlink(tmp);
	free(text);
	free(tmp);
	return rc;
}

static json_t *gate_view(json_t *g)
{
	json_t *r = json_object();

	json_object_set_new(r, "open", json_boolean(g != NULL));
	ml_agent_set_int(r, "revision", json_object_get(g, "revision"));
	ml_agent_set_int(r, "step", json_object_get(g, "step"));
	ml_agent_set_int(r, "opened_at_ms", json_object_get(g, "opened_at_ms"));
	ml_agent_set_str(r, "decision",
			 json_string_value(json_object_get(g, "decision")));
	ml_agent_set_str(r, "by", json_string_value(json_object_get(g, "by")));
	ml_agent_set_int(r, "decided_at_ms",
			 json_object_get(g, "decided_at_ms"));
	return r;
}

static int op_canary_gate(struct ml_agent *a, json_t *args, json_t **result)
{
	const char *app, *action, *decision, *by = "?";
	char *path = NULL, *lpath = NULL;
	json_int_t rev = 0, step = 0;
	json_t *g = NULL;
	int rc, fd = -1;

	rc = ml_agent_arg_name(&app, args, OP, "app", false);
	if (rc == 0 && !ml_lb_valid_name(app))
		rc = ml_err_set(ML_EPROTO, OP ": bad app name");
	if (rc == 0)
		rc = ml_agent_arg_name(&action, args, OP, "action", false);
	if (rc < 0)
		goto out;
	path = ml_xasprintf("%s/canary-%s.json", a->state_dir, app);
	lpath = ml_xasprintf("%s/canary-%s.flock", a->state_dir, app);
	/* the lock ops make it; a gate may be read before any lock */
	(void)mkdir(a->state_dir, 0755);
	fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'", lpath);
		goto out;
	}
	g = gate_load(path);
	if (!strcmp(action, "open")) {
		rc = ml_agent_arg_int(&rev, args, OP, "revision", 1, INT64_MAX,
				      true);
		if (rc == 0)
			rc = ml_agent_arg_int(&step, args, OP, "step", 1, 1000,
					      true);
		if (rc < 0)
			goto out;
		json_decref(g);
		g = json_pack("{s:I,s:I,s:I,s:n}", "revision", rev, "step",
			      step, "opened_at_ms", (json_int_t)realtime_ms(),
			      "decision");
		rc = gate_save(path, g);
	} else if (!strcmp(action, "decide")) {
		rc = ml_agent_arg_name(&decision, args, OP, "decision", false);
		if (rc < 0)
			goto out;
		if (strcmp(decision, "promote") && strcmp(decision, "abort")) {
			rc = ml_err_set(ML_EPROTO, OP ": 'decision' must be "
						      "promote or abort");
			goto out;
		}
		if (json_is_string(json_object_get(args, "by")))
			by = json_string_value(json_object_get(args, "by"));
		if (!g) {
			rc = ml_err_set(ML_ENOTFOUND,
					"no canary step of app '%s' is waiting "
					"for a decision",
					app);
			goto out;
		}
		if (json_is_string(json_object_get(g, "decision"))) {
			rc = ml_err_set(ML_EINVALID,
					"the canary step of revision %lld was "
					"already decided: %s",
					(long long)json_integer_value(
						json_object_get(g, "revision")),
					json_string_value(json_object_get(
						g, "decision")));
			goto out;
		}
		json_object_set_new(g, "decision", json_string(decision));
		ml_agent_set_str(g, "by", strlen(by) > 256 ? "?" : by);
		json_object_set_new(g, "decided_at_ms",
				    json_integer(realtime_ms()));
		rc = gate_save(path, g);
	} else if (!strcmp(action, "close")) {
		if (unlink(path) < 0 && errno != ENOENT)
			rc = ml_err_errno(ML_EFAIL, errno, "cannot remove '%s'",
					  path);
		json_decref(g);
		g = NULL;
	} else if (strcmp(action, "get")) {
		rc = ml_err_set(ML_EPROTO, OP ": 'action' must be open, get, "
					      "decide or close");
	}
	if (rc == 0)
		*result = gate_view(g);
out:
	if (fd >= 0)
		close(fd);
	json_decref(g);
	free(path);
	free(lpath);
	return rc;
}

const struct ml_agent_op ml_agent_op_canary_gate = {
	.name = OP,
	.summary = "open, read, decide or close the manual canary gate of an "
		   "app (mlctl promote / abort)",
	.run = op_canary_gate,
};
