/*
 * container_wait: wait until a freshly started container serves, or say
 * why it does not.
 *
 *	args:   {"id", "host_port", "path" ("/"), "interval_ms" (1000),
 *		 "timeout_ms" (1000), "start_period_ms" (0),
 *		 "healthy_threshold" (1), "unhealthy_threshold" (3),
 *		 "deadline_ms" (300000), "expect" (none: 2xx or 3xx passes;
 *		 else {"status": [..], "body": "..", "json": {"field",
 *		 "value"}}, see agent/probe.h)}
 *	result: {"healthy": true, "after_ms": N, "probes": N}
 *
 * Rounds: inspect the container, then GET
 * http://127.0.0.1:<host_port><path> within timeout_ms (agent/probe.c;
 * 2xx and 3xx pass). The agent runs in the VM's network namespace, so the
 * loopback address reaches the published port through docker-proxy;
 * checked on the fleet's dockerd 20.10.
 *
 * The first round starts at once; until one passes, the gap between
 * rounds (start to start) is 50 ms, then doubles up to 250 ms (or
 * interval_ms when shorter), so a server is seen at most about 250 ms
 * after it starts to answer, whatever the interval: with the default 2 s
 * interval, backing off to the interval cost a rollout up to 2 s a
 * batch. A round is an inspect and one GET on loopback, so four a second
 * for a model's whole start period is still little work. After a
 * passing round the gap is interval_ms, so
 * healthy_threshold passes still span that many intervals. A failed round
 * counts towards unhealthy_threshold only when it starts at least 7/8 of
 * an interval after the last one that counted (the first always counts):
 * the quick early rounds find a server sooner without making "3 failures
 * in a row" mean 3 failures in 0.35 s.
 *
 *  - A container that is not running (exited, dead, created, paused), is
 *    restarting, or was restarted since the first round (its RestartCount
 *    grew: with restart policy unless-stopped a crash loop is mostly seen
 *    running) fails the wait at once, with its exit code when Docker still
 *    has it and the tail of its log: no point waiting out the deadline.
 *  - A round passes when the probe passes and, if the image has a Docker
 *    HEALTHCHECK (State.Health present), Docker says "healthy" too.
 *    healthy_threshold passing rounds in a row end the wait.
 *  - A failing probe, or Docker saying "unhealthy", is a failed round;
 *    Docker still saying "starting" with a passing probe is neither (its
 *    own interval may be long), it only breaks a run of passes. Failed
 *    rounds during start_period_ms do not count; after it,
 *    unhealthy_threshold in a row fail the wait: "unhealthy: <why>".
 *  - When the next round would start past deadline_ms, the wait fails
 *    at once rather than sleeping out the rest.
 *
 * Failure messages end with up to TAIL_LINES log lines, newest kept when
 * they do not all fit TAIL_BUDGET bytes (an error message is 1 KiB), each
 * escaped, joined by " | ". after_ms and the start period count from the
 * start of the wait, which mlctl begins right after container_run (the
 * container's own StartedAt would need the VM's clock to agree).
 * The op blocks the agent for at most deadline_ms plus one probe timeout.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/agent.h"
#include "agent/firewall.h"
#include "agent/probe.h"
#include "common/docker.h"

#include <poll.h>
#include <time.h>

#define OP "container_wait"
#define TAIL_LINES 20
#define TAIL_LINE_MAX 200
#define TAIL_BUDGET 560
#define WHY_MAX 384
#define DAY_MS (24L * 3600 * 1000)
#define BACKOFF_FIRST_MS 50L
#define BACKOFF_MAX_MS 250L

struct wait_spec {
	const char *id, *path;
	struct ml_probe_expect expect;
	bool has_expect;
	json_int_t host_port, interval, timeout, start_period, healthy_th,
		unhealthy_th, deadline;
};

static int parse_args(struct wait_spec *s, json_t *args)
{
	json_t *p = json_object_get(args, "path");
	int rc;

	memset(s, 0, sizeof(*s));
	s->path = "/";
	s->interval = 1000;
	s->timeout = 1000;
	s->healthy_th = 1;
	s->unhealthy_th = 3;
	s->deadline = 300000;
	rc = ml_agent_arg_name(&s->id, args, OP, "id", true);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->host_port, args, OP, "host_port", 1,
				      65535, true);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->interval, args, OP, "interval_ms", 10,
				      3600000, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->timeout, args, OP, "timeout_ms", 10,
				      3600000, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->start_period, args, OP,
				      "start_period_ms", 0, DAY_MS, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->healthy_th, args, OP,
				      "healthy_threshold", 1, 1000, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->unhealthy_th, args, OP,
				      "unhealthy_threshold", 1, 1000, false);
	if (rc == 0)
		rc = ml_agent_arg_int(&s->deadline, args, OP, "deadline_ms", 1,
				      DAY_MS, false);
	if (rc < 0)
		return rc;
	if (p && !ml_probe_valid_path(json_string_value(p)))
		return ml_err_set(ML_EPROTO,
				  "%s: 'path' must start with '/' and be "
				  "printable ASCII without spaces, at most %d "
				  "bytes",
				  OP, ML_PROBE_PATH_MAX);
	if (p)
		s->path = json_string_value(p);
	s->has_expect = json_object_get(args, "expect") != NULL;
	rc = ml_probe_expect_from_json(&s->expect,
				       json_object_get(args, "expect"));
	if (rc < 0)
		return ml_err_prefix(ML_EPROTO, "%s", OP);
	return 0;
}

/*
 * Fail with code and why (already formatted), adding the newest log lines
 * of container id that fit. Returns code.
 */
static int fail_with_logs(struct ml_docker *d, const char *id, int code,
			  const char *why)
{
	struct ml_buf msg = ML_BUF_INIT(4096);
	json_t *lines = NULL;
	size_t i, n, used = 0, first;

	ml_buf_addstr(&msg, why);
	if (ml_docker_logs_tail(&lines, d, id, TAIL_LINES, TAIL_LINE_MAX) < 0) {
		ml_buf_addstr(&msg, "; its log could not be read");
		goto out;
	}
	n = json_array_size(lines);
	first = n;
	for (i = n; i-- > 0;) {
		size_t len = json_string_length(json_array_get(lines, i)) + 3;

		if (used + len > TAIL_BUDGET)
			break;
		used += len;
		first = i;
	}
	if (!n) {
		ml_buf_addstr(&msg, "; its log is empty");
		goto out;
	}
	ml_buf_addf(&msg, "; last %zu log line%s: ", n - first,
		    n - first == 1 ? "" : "s");
	for (i = first; i < n; i++)
		ml_buf_addf(&msg, "%s%s", i > first ? " | " : "",
			    json_string_value(json_array_get(lines, i)));
out:
	ml_err_set(code, "%s", ml_buf_str(&msg));
	json_decref(lines);
	ml_buf_release(&msg);
	return code;
}

/*
 * Inspect the container: 0 while it runs, with *health set to Docker's
 * health word or NULL without a HEALTHCHECK; otherwise fail (with logs).
 * *restarts is Docker's RestartCount at the first inspect (-1 before):
 * when it grows, the container crashed and was restarted between two
 * inspects, which fails the wait too.
 */
static int check_running(struct ml_docker *d, const char *id,
			 const char **health, json_int_t *restarts)
{
	char *path = ml_xasprintf("/containers/%s/json", id);
	char why[WHY_MAX];
	json_t *c = NULL, *st, *h;
	const char *name, *state;
	json_int_t code, count;
	int rc;

	*health = NULL;
	rc = ml_docker_get(d, path, &c);
	if (rc == ML_ENOTFOUND) {
		rc = ml_err_set(ML_ENOTFOUND,
				"container '%s' is gone (removed while "
				"waiting for it)",
				id);
		goto out;
	}
	if (rc < 0)
		goto out;
	st = json_object_get(c, "State");
	name = json_string_value(json_object_get(c, "Name"));
	if (name && *name == '/')
		name++;
	if (!name || !ml_docker_valid_name(name))
		name = id;
	state = json_string_value(json_object_get(st, "Status"));
	code = json_integer_value(json_object_get(st, "ExitCode"));
	count = json_integer_value(json_object_get(c, "RestartCount"));
	if (*restarts < 0)
		*restarts = count;
	if (json_is_true(json_object_get(st, "Restarting")) ||
	    (state && !strcmp(state, "restarting"))) {
		snprintf(why, sizeof(why),
			 "container '%s' is restarting (exit code %lld, %lld "
			 "restarts%s)",
			 name, (long long)code,
			 (long long)json_integer_value(
				 json_object_get(c, "RestartCount")),
			 json_is_true(json_object_get(st, "OOMKilled"))
				 ? ", killed for lack of memory"
				 : "");
		rc = fail_with_logs(d, id, ML_EFAIL, why);
		goto out;
	}
	if (!json_is_true(json_object_get(st, "Running")) ||
	    json_is_true(json_object_get(st, "Paused"))) {
		if (state &&
		    (!strcmp(state, "exited") || !strcmp(state, "dead")))
			snprintf(why, sizeof(why),
				 "container '%s' exited with code %lld%s", name,
				 (long long)code,
				 json_is_true(json_object_get(st, "OOMKilled"))
					 ? " (killed for lack of memory)"
					 : "");
		else
			snprintf(why, sizeof(why),
				 "container '%s' is %s, not running", name,
				 state && ml_docker_valid_name(state)
					 ? state
					 : "not running");
		rc = fail_with_logs(d, id, ML_EFAIL, why);
		goto out;
	}
	if (count > *restarts) {
		snprintf(why, sizeof(why),
			 "container '%s' crashed and was restarted while "
			 "starting (%lld restarts)",
			 name, (long long)count);
		rc = fail_with_logs(d, id, ML_EFAIL, why);
		goto out;
	}
	h = json_object_get(st, "Health");
	if (json_is_object(h))
		*health = ml_agent_health(h, NULL);
	rc = 0;
out:
	json_decref(c);
	free(path);
	return rc;
}

static int op_container_wait(struct ml_agent *a, json_t *args, json_t **result)
{
	struct wait_spec s;
	struct ml_docker *d;
	char last[WHY_MAX] = "no probe yet", why[WHY_MAX + 128];
	const char *health;
	long t0 = ml_mono_ms(), round, next, now, gap, cap, counted = -1;
	json_int_t ok = 0, bad = 0, probes = 0, restarts = -1;
	bool counts;
	json_t *r;
	int rc;

	rc = parse_args(&s, args);
	if (rc < 0)
		return rc;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		return rc;
	cap = BACKOFF_MAX_MS < s.interval ? BACKOFF_MAX_MS : s.interval;
	gap = BACKOFF_FIRST_MS < cap ? BACKOFF_FIRST_MS : cap;
	for (;;) {
		round = ml_mono_ms();
		rc = check_running(d, s.id, &health, &restarts);
		if (rc < 0)
			return rc;
		probes++;
		rc = ml_probe_http_expect(NULL, ml_agent_slot_host(),
					  (int)s.host_port, s.path,
					  (long)s.timeout,
					  s.has_expect ? &s.expect : NULL);
		if (rc < 0)
			snprintf(last, sizeof(last), "%s", ml_err_msg());
		else if (health && strcmp(health, "healthy"))
			snprintf(last, sizeof(last),
				 "the probe passes but Docker's HEALTHCHECK "
				 "says '%s'",
				 health);
		if (rc == 0 && (!health || !strcmp(health, "healthy"))) {
			bad = 0;
			if (++ok >= s.healthy_th)
				break;
			gap = s.interval;
		} else {
			ok = 0;
			counts = ml_mono_ms() - t0 >= s.start_period &&
				 !(rc == 0 && !strcmp(health, "starting")) &&
				 (counted < 0 ||
				  round - counted >= s.interval * 7 / 8);
			if (counts)
				counted = round;
			if (counts && ++bad >= s.unhealthy_th) {
				snprintf(why, sizeof(why),
					 "unhealthy: %s (%lld failed probes "
					 "in a row)",
					 last, (long long)bad);
				return fail_with_logs(d, s.id, ML_EFAIL, why);
			}
		}
		next = round + gap;
		if (!ok)
			gap = gap * 2 < cap ? gap * 2 : cap;
		now = ml_mono_ms();
		if (next - t0 >= s.deadline) {
			/* no round left before the deadline: say so now */
			snprintf(why, sizeof(why),
				 "not healthy within %lld ms (%lld probes; "
				 "last: %s)",
				 (long long)s.deadline, (long long)probes,
				 last);
			return fail_with_logs(d, s.id, ML_EFAIL, why);
		}
		if (next > now)
			poll(NULL, 0, (int)(next - now));
	}
	r = json_object();
	json_object_set_new(r, "healthy", json_true());
	json_object_set_new(r, "after_ms", json_integer(ml_mono_ms() - t0));
	json_object_set_new(r, "probes", json_integer(probes));
	*result = r;
	ml_err_clear();
	return 0;
}

const struct ml_agent_op ml_agent_op_container_wait = {
	.name = "container_wait",
	.summary = "wait until a container passes its health probe",
	.run = op_container_wait,
};
