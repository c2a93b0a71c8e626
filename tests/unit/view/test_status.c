/*
 * Unit tests of orchestrator/view/status.c: the status table's words for
 * every state HAProxy reports (including the "UP 1/3" and "DOWN 1/2" a
 * fleet shows only for a moment), mlctl's probe against Docker's
 * HEALTHCHECK, ages, colour on and off; and common/fmt.c's ages. The
 * rows are agent replies as the fleet sends them (the e2e test
 * test_firsthour checks the same table on a real fleet).
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/view/status.h"

#include <jansson.h>
#include <time.h>
#include <setjmp.h>
#include <cmocka.h>

#define NOW 1800000000

/* One running container with probe result and Docker health, and the
 * balancer's entry for it (server may be NULL: no balancer). */
static json_t *container(const char *name, bool probe_ok, const char *err,
			 const char *docker_health, json_t *server,
			 int64_t up_s)
{
	char started[64];
	time_t t = NOW - up_s;
	struct tm tm;
	json_t *c;

	gmtime_r(&t, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%S.123Z", &tm);
	c = json_pack("{s:s,s:s,s:I,s:s,s:i,s:s,s:{s:s}}", "name", name,
		      "state", "running", "revision", (json_int_t)4, "health",
		      docker_health, "restarts", 0, "started_at", started,
		      "labels", "mlctl.replica", "0");
	json_object_set_new(c, "probe",
			    err && !probe_ok && !strcmp(err, "old agent")
				    ? json_pack("{s:n,s:s}", "healthy", "error",
						"unknown operation")
				    : json_pack("{s:b,s:s?}", "healthy",
						probe_ok, "error", err));
	ml_status_annotate(c, server, NOW);
	json_decref(server);
	return c;
}

/* An lb_status entry as HAProxy 2.6 gives it, its last check's result
 * code check ("L7STS", "* L4CON", "INI", ...). */
static json_t *server_checked(const char *op, const char *admin, int sessions,
			      int since, const char *check, const char *why)
{
	return json_pack("{s:s,s:s,s:i,s:i,s:s,s:s?}", "op_state", op,
			 "admin_state", admin, "cur_sessions", sessions,
			 "last_change_s", since, "check_status", check,
			 "check_desc", why);
}

static json_t *server(const char *op, const char *admin, int sessions,
		      int since, const char *why)
{
	return server_checked(op, admin, sessions, since, "L7STS", why);
}

/* Print the table for one host holding cont; returns the text. */
static char *table(json_t *cont, bool colour)
{
	static char name[] = "vm1", addr[] = "10.0.0.1";
	struct ml_target tg = { .name = name, .address = addr,
				.is_app = true };
	struct ml_host_session h = { .target = &tg, .rc = 0 };
	json_t *cs[1] = { cont };
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	h.hello = json_pack("{s:s,s:{s:s}}", "agent_version", "0.1.0",
			    "docker", "version", "24.0");
	ml_status_print_table(fp, &h, cs, 1, 4, NULL, colour);
	fclose(fp);
	json_decref(h.hello);
	return buf;
}

/* The cell under header of the row naming container. */
static char *cell(const char *text, const char *container, const char *hdr)
{
	const char *h = strstr(text, hdr), *row, *next;
	size_t col, end;

	assert_non_null(h);
	col = (size_t)(h - text);
	next = h + strlen(hdr);
	while (*next == ' ')
		next++;
	end = *next && *next != '\n' ? (size_t)(next - text) : (size_t)-1;
	row = strstr(text, container);
	assert_non_null(row);
	while (row > text && row[-1] != '\n')
		row--;
	{
		size_t rl = strcspn(row, "\n"), e = end == (size_t)-1 ? rl : end;

		if (e > rl)
			e = rl;
		while (e > col && row[e - 1] == ' ')
			e--;
		return ml_xstrndup(row + col, e > col ? e - col : 0);
	}
}

static void expect(json_t *c, const char *name, const char *hdr,
		   const char *want)
{
	json_t *cont = json_array();
	char *t, *got;

	json_array_append(cont, c);
	t = table(cont, false);
	got = cell(t, name, hdr);
	if (strcmp(got, want))
		fail_msg("%s %s: got '%s', want '%s'\n%s", name, hdr, got,
			 want, t);
	free(got);
	free(t);
	json_decref(cont);
}

static void test_status__lb_words(void **state)
{
	json_t *c;

	ML_UNUSED(state);
	c = container("a", true, NULL, "none",
		      server("UP", "ready", 2, 10, "Layer7 check passed"), 60);
	expect(c, "a", "LB", "serving, 2 sessions");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(c, "lb"), "state")),
			    "serving");
	json_decref(c);

	c = container("b", false, "GET http://127.0.0.1:18080/healthz: HTTP "
			      "503",
		      "none", server("UP 1/3", "ready", 0, 10,
				     "Layer7 wrong status"),
		      60);
	/* HAProxy's "UP 1/3": one more failed check takes it down, so 2 of
	 * the 3 have been seen */
	expect(c, "b", "LB",
	       "serving, checks failing (2 of 3 before down): "
	       "Layer7 wrong status");
	expect(c, "b", "HEALTH", "failing: HTTP 503");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(c, "lb"), "checks_seen")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(c, "lb"), "checks_needed")),
			 3);
	json_decref(c);

	/* "UP 2/3" while a check runs ("* L4CON"): the first failure */
	c = container("b", false, NULL, "none",
		      server_checked("UP 2/3", "ready", 1, 10, "* L4CON",
				     "Connection refused"),
		      60);
	expect(c, "b", "LB",
	       "serving, checks failing (1 of 3 before down): "
	       "Connection refused");
	json_decref(c);

	/* a server HAProxy has just added sits at the bottom of its up
	 * range until its first check: that is not a failure */
	c = container(
		"p", true, NULL, "none",
		server_checked("UP 1/3", "ready", 0, 0, "INI", "Initializing"),
		1);
	expect(c, "p", "LB", "serving, first check pending");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(c, "lb"), "state")),
			    "pending");
	assert_null(json_object_get(json_object_get(c, "lb"), "checks_seen"));
	json_decref(c);
	c = container("p", true, NULL, "none",
		      server_checked("UP 1/3", "ready", 0, 0, "* INI",
				     "Initializing"),
		      1);
	expect(c, "p", "LB", "serving, first check pending");
	json_decref(c);

	/* below the top of its up range, but its last check passed */
	c = container("q", true, NULL, "none",
		      server_checked("UP 1/3", "ready", 4, 0, "L7OK",
				     "Layer7 check passed"),
		      1);
	expect(c, "q", "LB", "serving, 4 sessions");
	json_decref(c);

	c = container("c", true, NULL, "none",
		      server("DOWN 1/2", "ready", 0, 5, NULL), 60);
	expect(c, "c", "LB", "down, checks passing (1 of 2 before up)");
	json_decref(c);

	c = container("d", false, "GET http://127.0.0.1:18080/healthz: "
			      "connection refused",
		      "none", server("DOWN", "ready", 0, 180,
				     "Connection refused"),
		      600);
	expect(c, "d", "LB", "down since 3m, checks failing: Connection "
			     "refused");
	expect(c, "d", "HEALTH", "failing: connection refused");
	json_decref(c);

	c = container("e", true, NULL, "none",
		      server("DRAIN", "drain", 1, 3, NULL), 60);
	expect(c, "e", "LB", "draining, 1 session");
	json_decref(c);

	c = container("f", true, NULL, "none",
		      server("MAINT", "maint", 0, 3, NULL), 60);
	expect(c, "f", "LB", "maintenance");
	json_decref(c);

	/* no balancer: nothing said */
	c = container("g", true, NULL, "none", NULL, 60);
	expect(c, "g", "LB", "-");
	assert_null(json_object_get(c, "lb"));
	json_decref(c);
}

static void test_status__health_words(void **state)
{
	json_t *c;

	ML_UNUSED(state);
	/* no HEALTHCHECK: only mlctl's probe */
	c = container("a", true, NULL, "none", NULL, 60);
	expect(c, "a", "HEALTH", "healthy");
	json_decref(c);
	/* a HEALTHCHECK: Docker's word beside it */
	c = container("b", true, NULL, "unhealthy", NULL, 60);
	expect(c, "b", "HEALTH", "healthy (docker: unhealthy)");
	json_decref(c);
	c = container("c", true, NULL, "healthy", NULL, 60);
	expect(c, "c", "HEALTH", "healthy (docker: healthy)");
	json_decref(c);
	/* an agent that cannot probe: Docker's word, else unknown */
	c = container("d", false, "old agent", "none", NULL, 60);
	expect(c, "d", "HEALTH", "unknown");
	json_decref(c);
	c = container("e", false, "old agent", "starting", NULL, 60);
	expect(c, "e", "HEALTH", "starting");
	json_decref(c);
	/* a stopped container is not probed */
	c = json_pack("{s:s,s:s,s:I,s:s}", "name", "f", "state", "exited",
		      "revision", (json_int_t)3, "health", "none");
	ml_status_annotate(c, NULL, NOW);
	expect(c, "f", "HEALTH", "-");
	expect(c, "f", "STATE", "exited");
	expect(c, "f", "UPTIME", "-");
	/* revision 3 where 4 runs elsewhere */
	expect(c, "f", "REV", "3 (drifted)");
	json_decref(c);
	/* rollout.standby's paused previous revision */
	c = json_pack("{s:s,s:s,s:I,s:s}", "name", "g", "state", "paused",
		      "revision", (json_int_t)2, "health", "none");
	ml_status_annotate(c, NULL, NOW);
	expect(c, "g", "STATE", "paused (standby)");
	json_decref(c);
}

/* A standby resumed by a rollback keeps the revision that made it: it is
 * not drifted when it has the spec of the newest revision. */
static void test_status__drift_by_spec(void **state)
{
	json_t *cont = json_pack(
		"[{s:s,s:I,s:{s:s}},{s:s,s:I,s:{s:s}}]", "state", "running",
		"revision", (json_int_t)1, "labels", "mlctl.spec", "S1",
		"state", "paused", "revision", (json_int_t)2, "labels",
		"mlctl.spec", "S2");

	(void)state;
	assert_non_null(cont);
	assert_true(ml_status_drifted(cont, 3, NULL));
	assert_false(ml_status_drifted(cont, 3, "S1"));
	assert_false(ml_status_drifted(cont, 1, NULL));
	/* a paused container is not what serves */
	assert_true(ml_status_drifted(cont, 2, NULL));
	assert_true(ml_status_drifted(cont, 3, "S2"));
	assert_false(ml_status_drifted(NULL, 3, "S1"));
	json_decref(cont);
}

static void test_status__ages(void **state)
{
	char b[ML_FMT_MAX];
	json_t *c;

	ML_UNUSED(state);
	assert_string_equal(ml_fmt_age(b, 0), "0s");
	assert_string_equal(ml_fmt_age(b, 59), "59s");
	assert_string_equal(ml_fmt_age(b, 119), "119s");
	assert_string_equal(ml_fmt_age(b, 180), "3m");
	assert_string_equal(ml_fmt_age(b, 7199), "119m");
	assert_string_equal(ml_fmt_age(b, 7200), "2h");
	assert_string_equal(ml_fmt_age(b, 3 * 86400), "3d");
	assert_string_equal(ml_fmt_age(b, -5), "0s");
	c = container("a", true, NULL, "none", NULL, 7300);
	expect(c, "a", "UPTIME", "2h");
	assert_int_equal(json_integer_value(json_object_get(c, "uptime_s")),
			 7300);
	json_decref(c);
}

static void test_status__colour_only_when_asked(void **state)
{
	json_t *cont = json_array();
	char *t, *plain, *p, *q;

	ML_UNUSED(state);
	json_array_append_new(cont, container("a", true, NULL, "none",
					      server("UP", "ready", 0, 1, NULL),
					      60));
	json_array_append_new(
		cont, container("b", false,
				"GET http://127.0.0.1:1/healthz: HTTP 500",
				"none", server("DOWN", "ready", 0, 1, NULL),
				60));
	t = table(cont, true);
	assert_non_null(strstr(t, "\033[32mhealthy\033[0m"));
	assert_non_null(strstr(t, "\033[31mfailing: HTTP 500\033[0m"));
	assert_non_null(strstr(t, "\033[32mserving, 0 sessions\033[0m"));
	plain = table(cont, false);
	assert_null(strchr(plain, '\033'));
	/* without its colour sequences, the coloured table is the plain
	 * one: colour never shifts a column */
	for (p = q = t; *p;) {
		if (*p == '\033')
			p += strcspn(p, "m") + 1;
		else
			*q++ = *p++;
	}
	*q = '\0';
	assert_string_equal(t, plain);
	free(plain);
	free(t);
	json_decref(cont);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status__lb_words),
		cmocka_unit_test(test_status__health_words),
		cmocka_unit_test(test_status__drift_by_spec),
		cmocka_unit_test(test_status__ages),
		cmocka_unit_test(test_status__colour_only_when_asked),
	};

	return cmocka_run_group_tests_name("view/status", tests, NULL,
					   NULL);
}
