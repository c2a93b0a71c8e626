/*
 * End-to-end tests of the core verbs on the simulated fleet: deploy,
 * rollback, automatic rollback of a failing revision, idempotence, the
 * fleet lock, and crash recovery, each under a steady, bounded stream of
 * client requests through HAProxy that must see zero failures: open loop
 * (a new connection per request, sent on schedule) and keep-alive
 * connections together, on the prediction route, at the highest rate from
 * RATE down that the fleet is first shown to hold in the same case (the
 * rate is printed with the counts). Real parts throughout: git
 * repositories, the controller's Docker Engine building the example model
 * API, sshd, dockerd and HAProxy in the fleet's namespaces.
 *
 * The app is the Python example (examples/iris: scikit-learn behind
 * FastAPI on mlctl's base image, its Dockerfile written by `mlctl init`).
 * Its answers carry the model's version ("model_version":"vN", from
 * model/meta.json), so each revision is told apart by its version; each
 * new one is a weights-only commit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/loadgen.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RATE 200       /* requests per second through the balancer, at most */
#define MAX_LOAD_S 300 /* no load loop runs longer than this */
#define APP "deploy-api"

static struct {
	struct ml_test_app app;
	const char *dir;
	char *repo;
	char *known_hosts;
	char *ledger_env;
	char *url;     /* the app through the balancer */
	char *lb_addr;
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, NULL, args);
}

/* Run mlctl with one extra environment entry (a crash point). */
static int mlctl_env(struct ml_test_out *o, const char *extra,
		     const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, (const char *const[]){ extra, NULL },
				 args);
}

/* Set the model's version to vN and commit: a new revision whose only
 * change is the weights layer. */
static char *commit_version(int v, const char *msg)
{
	char *version = ml_xasprintf("v%d", v);

	assert_int_equal(ml_test_model_version(F.repo, version), 0);
	free(version);
	return ml_test_commit(F.repo, msg);
}

/*
 * The new commit's image built and delivered, before the deploy that is
 * loaded: on this one machine the controller's build and image
 * preparation share the two cores with every simulated VM, which a real
 * controller does not; the load measures what the rollout costs users.
 */
static void deliver(void)
{
	struct ml_test_out o;

	mlctl(&o, (const char *const[]){ "deliver", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
}

/* The marker of model version vN in an answer; the caller frees it. */
static char *version_marker(int v)
{
	return ml_xasprintf("\"model_version\":\"v%d\"", v);
}

/* Every answer through the balancer, enough of them to reach every
 * server, comes from model version vN. */
static void expect_version(int v)
{
	char *marker = version_marker(v);
	const char *const markers[] = { marker, NULL };
	struct ml_loadgen *lg = ml_loadgen_start(F.url, 50, 2, 40, 30,
						 markers);
	struct ml_loadgen_stats st;

	while (1) {
		ml_loadgen_peek(lg, &st);
		if (st.sent >= 40)
			break;
		usleep(100000);
	}
	ml_loadgen_stop(lg, &st);
	if (st.by_body[0] != st.ok || st.failed)
		print_error("expected model v%d: %ld of %ld answers had it, %ld "
			    "failed (%s)\n",
			    v, st.by_body[0], st.ok, st.failed,
			    st.first_error);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.by_body[0], st.ok);
	free(marker);
}

/*
 * The rate the fleet holds as it is, measured now (open-loop runs from
 * RATE down; the machine is shared, so the rate is measured and stated,
 * never assumed), then open-loop and keep-alive load at that rate.
 */
static void load_start(struct ml_loadgen_pair *l, const char *const *markers)
{
	int rate = ml_loadgen_held_rate(F.url, RATE, 10, 3);

	if (!rate)
		print_error("the fleet holds no open-loop rate from %d down "
			    "to 10 predictions/s as it is: is the machine "
			    "overloaded?\n",
			    RATE);
	assert_true(rate > 0);
	ml_loadgen_pair_start(l, F.url, rate, MAX_LOAD_S, markers);
}

static void load_check(struct ml_loadgen_pair *l, const char *what)
{
	assert_true(ml_loadgen_pair_stop(l, what, NULL));
}

static json_t *history(void)
{
	struct ml_test_out o;
	json_t *doc;

	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	assert_non_null(doc);
	return doc;
}

static const char *newest_outcome(json_t *h)
{
	return json_string_value(
		json_object_get(json_array_get(h, 0), "outcome"));
}

/* The number of the newest revision in the ledger. */
static json_int_t newest_number(void)
{
	json_t *h = history();
	json_int_t n = json_integer_value(
		json_object_get(json_array_get(h, 0), "number"));

	json_decref(h);
	return n;
}

/* The suite's playbook, with extra lines (may be NULL) at its end. */
static char *playbook(const char *extra)
{
	return ml_xasprintf(
		"app: " APP "\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		"health: {path: /healthz, interval: 1s, timeout: 1s,"
		" start_period: 20s, unhealthy_threshold: 3,"
		" expect_status: [200]}\n"
		"replicas: 1\n"
		"targets: [web]\n"
		"rollout: {batch: 1, failure_budget: 0, auto_rollback: true,"
		" drain_timeout: 5s}\n"
		"load_balancer: {hosts: [lb], listen: 80}\n"
		"%s",
		extra ? extra : "");
}

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *pb;

	ML_UNUSED(state);
	if (ml_test_app_init_python(&F.app, "deploy", APP) < 0)
		return -1;
	F.dir = F.app.fleet_dir;
	F.repo = F.app.repo;
	F.known_hosts = F.app.known_hosts;
	F.ledger_env = F.app.ledger_env;
	F.lb_addr = F.app.lb_addr;
	F.url = ml_xasprintf("http://%s/predict?x=5.1,3.5,1.4,0.2", F.lb_addr);

	/* the example app with quick health checks */
	pb = playbook(NULL);
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(commit_version(3, "v1"));
	free(pb);

	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	/* takes the app off the shared fleet for the suites after this one */
	ml_test_app_release(&F.app);
	free(F.url);
	return 0;
}

static void test_deploy__first_deploy_serves_through_the_balancer(void **s)
{
	struct ml_test_out o;
	json_t *h;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	expect_version(3);
	h = history();
	assert_int_equal(json_array_size(h), 1);
	assert_string_equal(newest_outcome(h), "succeeded");
	json_decref(h);

	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "\"running\""));
	/* each app container is up in the balancer's view; none drifted */
	{
		json_t *d = json_loads(o.out, 0, NULL), *hst, *c;
		size_t i, k, apps = 0;

		assert_non_null(d);
		json_array_foreach(json_object_get(d, "hosts"), i, hst) {
			if (strcmp(json_string_value(json_object_get(
					   hst, "roles")),
				   "app"))
				continue;
			apps++;
			assert_true(json_is_false(
				json_object_get(hst, "drifted")));
			json_array_foreach(json_object_get(hst, "containers"),
					   k, c)
				assert_int_equal(
					strncmp(json_string_value(json_object_get(
							json_object_get(c, "lb"),
							"op_state")) ?: "",
						"UP", 2),
					0);
		}
		assert_true(apps >= 3);
		json_decref(d);
	}
	ml_test_out_release(&o);
}

static void test_deploy__same_state_again_changes_nothing(void **s)
{
	struct ml_test_out o, before, after;
	json_t *h;

	ML_UNUSED(s);
	mlctl(&before, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&before, 0);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "nothing to do"));
	ml_test_out_release(&o);
	mlctl(&after, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&after, 0);
	/* same containers (no restart): the same ids on every host */
	{
		json_t *a = json_loads(before.out, 0, NULL);
		json_t *b = json_loads(after.out, 0, NULL);
		json_t *ha, *hb, *c;
		size_t i, k, j;

		json_array_foreach(json_object_get(a, "hosts"), i, ha) {
			json_t *ca = json_object_get(ha, "containers");
			json_t *cb;

			hb = json_array_get(json_object_get(b, "hosts"), i);
			cb = json_object_get(hb, "containers");
			assert_int_equal(json_array_size(ca),
					 json_array_size(cb));
			json_array_foreach(ca, k, c) {
				bool found = false;

				for (j = 0; j < json_array_size(cb); j++)
					found |= json_equal(
						json_object_get(c, "id"),
						json_object_get(
							json_array_get(cb, j),
							"id"));
				assert_true(found);
			}
		}
		json_decref(a);
		json_decref(b);
	}
	ml_test_out_release(&before);
	ml_test_out_release(&after);
	h = history();
	assert_int_equal(json_array_size(h), 1);
	json_decref(h);
}

static void test_deploy__new_revision_with_zero_failed_requests(void **s)
{
	struct ml_test_out o;
	struct ml_loadgen_pair lg;
	json_t *h;

	ML_UNUSED(s);
	free(commit_version(5, "v2"));
	deliver();
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){ "deploy", "--json", NULL });
	usleep(500000);
	load_check(&lg, "deploy of v2");
	ml_test_must(&o, 0);
	/* --json: one document on stdout, every host updated */
	{
		json_t *d = json_loads(o.out, 0, NULL), *x;
		size_t i;

		assert_non_null(d);
		assert_string_equal(
			json_string_value(json_object_get(d, "outcome")),
			"succeeded");
		assert_int_equal(json_integer_value(
					 json_object_get(d, "revision")),
				 2);
		assert_true(json_array_size(json_object_get(d, "hosts")) >= 3);
		json_array_foreach(json_object_get(d, "hosts"), i, x)
			assert_true(json_is_true(json_object_get(x, "updated")));
		json_decref(d);
	}
	ml_test_out_release(&o);
	expect_version(5);
	h = history();
	assert_int_equal(json_array_size(h), 2);
	assert_string_equal(newest_outcome(h), "succeeded");
	json_decref(h);
}

static void test_deploy__rollback_to_the_first_with_zero_failed(void **s)
{
	struct ml_test_out o;
	struct ml_loadgen_pair lg;
	json_t *h, *r;

	ML_UNUSED(s);
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){ "rollback", "1", NULL });
	usleep(500000);
	load_check(&lg, "rollback to 1");
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	expect_version(3);
	h = history();
	r = json_array_get(h, 0);
	assert_string_equal(json_string_value(json_object_get(r, "kind")),
			    "rollback");
	assert_int_equal(json_integer_value(json_object_get(r, "rollback_of")),
			 1);
	assert_string_equal(newest_outcome(h), "succeeded");
	json_decref(h);
}

static void test_deploy__failing_health_check_rolls_back(void **s)
{
	struct ml_test_out o;
	struct ml_loadgen_pair lg;
	json_t *h;
	char *pb;

	ML_UNUSED(s);
	/* v7 runs, but its model never loads: /healthz answers 503 */
	pb = playbook("env: {LOAD_DELAY_S: \"3600\"}\n");
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(commit_version(7, "v3: a model that never loads"));
	deliver();
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	usleep(500000);
	/* the playbook back for the tests after this one */
	pb = playbook(NULL);
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(commit_version(3, "v4: loads again"));
	load_check(&lg, "failing deploy");
	ml_test_must(&o, 7);
	assert_non_null(strstr(o.err, "rolled back"));
	ml_test_out_release(&o);
	expect_version(3);
	h = history();
	assert_string_equal(newest_outcome(h), "rolled-back");
	json_decref(h);
}

/* `mlctl show N` of an automatically rolled back revision has the
 * rollback's own steps, between its two marks. */
static void show_has_rollback_steps(json_int_t number)
{
	char *num = ml_xasprintf("%lld", (long long)number);
	struct ml_test_out o;
	json_t *doc, *e;
	size_t i;
	int started = -1, ok = -1, between = 0;

	mlctl(&o, (const char *const[]){ "show", num, "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "events"), i, e) {
		const char *step = json_string_value(json_object_get(e, "step"));
		const char *st = json_string_value(json_object_get(e, "status"));

		if (!strcmp(step, "rollback") && !strcmp(st, "started"))
			started = (int)i;
		else if (!strcmp(step, "rollback") && !strcmp(st, "ok"))
			ok = (int)i;
		else if (started >= 0 && ok < 0)
			between++;
	}
	if (started < 0 || ok < started || !between)
		print_error("no rollback steps in revision %s:\n%s\n", num,
			    o.out);
	assert_true(started >= 0 && ok > started && between > 0);
	json_decref(doc);
	ml_test_out_release(&o);
	free(num);
}

/*
 * A playbook whose health check path the app does not serve: the new
 * containers never get healthy and the deploy rolls back, while the
 * servers that were serving keep the check they had, so not one request
 * of an open-loop load fails.
 */
static void test_deploy__wrong_health_path_rolls_back_with_zero_failed(
	void **s)
{
	char *path = ml_xasprintf("%s/mlctl.yaml", F.repo);
	char *good = ml_test_slurp(path), *bad, *at;
	struct ml_test_out o;
	struct ml_loadgen_pair lg;
	json_t *h;

	ML_UNUSED(s);
	at = strstr(good, "path: /healthz");
	assert_non_null(at);
	bad = ml_xasprintf("%.*spath: /no-such-page%s", (int)(at - good), good,
			   at + strlen("path: /healthz"));
	ml_test_write(F.repo, "mlctl.yaml", bad);
	free(ml_test_commit(F.repo, "health check on a page the app lacks"));
	deliver();
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	usleep(1000000);
	/* the playbook the tests after this one expect, whatever happens */
	ml_test_write(F.repo, "mlctl.yaml", good);
	free(ml_test_commit(F.repo, "the right health check again"));
	load_check(&lg, "a deploy with a wrong health path, rolled back");
	ml_test_must(&o, 7);
	assert_non_null(strstr(o.err, "rolled back"));
	ml_test_out_release(&o);
	h = history();
	assert_string_equal(newest_outcome(h), "rolled-back");
	show_has_rollback_steps(json_integer_value(
		json_object_get(json_array_get(h, 0), "number")));
	json_decref(h);
	free(good);
	free(bad);
	free(path);
}

/* Whatever the case before did or where it failed, the cases after it
 * start from the right playbook deployed. (When that is what serves
 * already, the deploy has nothing to do and records nothing: the newest
 * revision stays the one rolled back.) */
static int back_to_a_good_revision(void **s)
{
	struct ml_test_out o;
	json_t *h;

	ML_UNUSED(s);
	h = history();
	if (strcmp(newest_outcome(h), "succeeded")) {
		mlctl(&o, (const char *const[]){ "deploy", NULL });
		if (o.status != 0)
			print_error("redeploy after the case: %d\n%s%s\n",
				    o.status, o.out, o.err);
		ml_test_out_release(&o);
	}
	json_decref(h);
	return 0;
}

static void test_deploy__two_concurrent_deploys_one_proceeds(void **s)
{
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL;
	pid_t pid[2];
	int st[2], i, ok = 0, locked = 0;

	ML_UNUSED(s);
	free(commit_version(9, "v5"));
	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			putenv(F.ledger_env);
			putenv(F.app.cache_env);
			if (chdir(F.repo) < 0)
				_exit(126);
			execl(bin, bin, "--known-hosts", F.known_hosts,
			      "deploy", (char *)NULL);
			_exit(127);
		}
	}
	for (i = 0; i < 2; i++) {
		waitpid(pid[i], &st[i], 0);
		if (WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0)
			ok++;
		if (WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 8)
			locked++;
	}
	free(def);
	assert_int_equal(ok, 1);
	assert_int_equal(locked, 1);
	expect_version(9);
}

/* With --wait, a deploy that finds the fleet locked waits for the holder
 * and then goes on: two at once both succeed, one after the other. */
static void test_deploy__wait_for_the_lock(void **s)
{
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL, *errs[2];
	pid_t pid[2];
	int st, i;
	bool waited = false;
	struct ml_test_out o;

	ML_UNUSED(s);
	free(commit_version(10, "v5b"));
	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	for (i = 0; i < 2; i++) {
		errs[i] = ml_xasprintf("%s.err%d", F.repo, i);
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			int null = open("/dev/null", O_WRONLY);
			int err = open(errs[i], O_WRONLY | O_CREAT | O_TRUNC,
				       0600);

			dup2(null, 1);
			dup2(err, 2);
			putenv(F.ledger_env);
			putenv(F.app.cache_env);
			if (chdir(F.repo) < 0)
				_exit(126);
			execl(bin, bin, "--known-hosts", F.known_hosts,
			      "deploy", "--wait", "3m", (char *)NULL);
			_exit(127);
		}
		if (i == 0)
			sleep(2);
	}
	for (i = 0; i < 2; i++) {
		char *text;

		waitpid(pid[i], &st, 0);
		text = ml_test_slurp(errs[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			print_error("deploy %d: %s\n", i, text);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		waited |= strstr(text, "waiting for the fleet lock") != NULL;
		free(text);
		unlink(errs[i]);
		free(errs[i]);
	}
	assert_true(waited);
	free(def);
	expect_version(10);
	free(commit_version(9, "back to v5"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
}

/* Start `mlctl deploy` with extra environment entries in the background,
 * its stdout and stderr in files named after path. */
static pid_t deploy_bg(const char *path, const char *const *extra,
		       const char *const *args)
{
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL, *out = ml_xasprintf("%s.out", path);
	char *err = ml_xasprintf("%s.err", path);
	const char *argv[16];
	size_t k = 0;
	pid_t pid;

	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	argv[k++] = bin;
	argv[k++] = "--known-hosts";
	argv[k++] = F.known_hosts;
	for (; *args && k < ML_ARRAY_SIZE(argv) - 1; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		putenv(F.ledger_env);
		putenv(F.app.cache_env);
		for (; extra && *extra; extra++)
			putenv((char *)*extra);
		if (chdir(F.repo) < 0)
			_exit(126);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	free(def);
	free(out);
	free(err);
	return pid;
}

/* The revision entry of history with this number. */
static json_t *revision_in(json_t *h, json_int_t number)
{
	json_t *r;
	size_t i;

	json_array_foreach(h, i, r)
		if (json_integer_value(json_object_get(r, "number")) == number)
			return r;
	return NULL;
}

/*
 * Controller A deploys X and is frozen (SIGSTOP) with a new container
 * healthy on its first host; its lease runs out, B (--wait) takes the lock
 * and deploys Y everywhere. Resumed, A must notice the lost lease before
 * it changes anything: exit 8, its revision interrupted, the fleet on Y,
 * and no client request fails throughout.
 */
static void test_deploy__frozen_controller_loses_the_lock(void **s)
{
	const char *const a_env[] = { "MLCTL_TEST_STOP_AT=after-first-healthy",
				      "MLCTL_TEST_LOCK_TTL_MS=5000", NULL };
	char *a_path = ml_xasprintf("%s.frozen", F.repo), *p, *text;
	struct ml_loadgen_pair lg;
	struct ml_test_out o;
	json_t *h, *ra;
	json_int_t a_rev;
	int st;
	pid_t a;

	ML_UNUSED(s);
	free(commit_version(31, "X: deployed by a controller that freezes"));
	deliver();
	load_start(&lg, NULL);
	usleep(500000);
	a = deploy_bg(a_path, a_env, (const char *const[]){ "deploy", NULL });
	assert_int_equal(waitpid(a, &st, WUNTRACED), a);
	if (!WIFSTOPPED(st)) {
		p = ml_xasprintf("%s.err", a_path);
		text = ml_test_slurp(p);
		print_error("controller A did not stop: %s\n", text);
		free(text);
		free(p);
	}
	assert_true(WIFSTOPPED(st));

	free(commit_version(32, "Y: deployed while A is frozen"));
	mlctl(&o, (const char *const[]){ "deploy", "--wait", "2m", NULL });
	if (o.status != 0)
		kill(a, SIGKILL);
	ml_test_must(&o, 0);
	ml_test_out_release(&o);

	kill(a, SIGCONT);
	assert_int_equal(waitpid(a, &st, 0), a);
	p = ml_xasprintf("%s.err", a_path);
	text = ml_test_slurp(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 8)
		print_error("controller A: status %d\n%s\n", st, text);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 8);
	assert_non_null(strstr(text, "lost the fleet lock"));
	free(text);
	unlink(p);
	free(p);
	p = ml_xasprintf("%s.out", a_path);
	unlink(p);
	free(p);
	load_check(&lg, "a frozen controller and a newer deploy");
	expect_version(32);

	/* the ledger: Y succeeded last; X was interrupted */
	h = history();
	assert_string_equal(newest_outcome(h), "succeeded");
	a_rev = json_integer_value(
			json_object_get(json_array_get(h, 0), "number")) -
		1;
	ra = revision_in(h, a_rev);
	assert_non_null(ra);
	assert_string_equal(
		json_string_value(json_object_get(ra, "outcome")),
		"interrupted");
	json_decref(h);
	free(a_path);

	/* the state the tests after this one expect */
	free(commit_version(9, "back to v5 again"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
}

/*
 * kill -9 of the controller at four points of a rollout; after `mlctl
 * recover` the fleet serves one revision everywhere and the ledger says
 * which.
 */
static void test_deploy__crash_at_each_point_then_recover(void **s)
{
	static const char *const points[] = { "after-delivery",
					       "after-first-healthy",
					       "after-first-switch",
					       "before-final-record" };
	int score = 11, serving = 9;

	ML_UNUSED(s);
	for (size_t i = 0; i < ML_ARRAY_SIZE(points); i++, score += 2) {
		char *env = ml_xasprintf("MLCTL_TEST_CRASH_AT=%s", points[i]);
		struct ml_test_out o;
		json_t *h;
		json_int_t newest = newest_number();
		char *outcome;

		h = history();
		outcome = ml_xstrdup(newest_outcome(h) ?: "");
		json_decref(h);
		free(commit_version(score, points[i]));
		mlctl_env(&o, env,
			  (const char *const[]){ "deploy", NULL });
		if (o.status != 128 + SIGKILL)
			print_error("%s: %s%s", points[i], o.out, o.err);
		assert_int_equal(o.status, 128 + SIGKILL);
		ml_test_out_release(&o);

		/* still serving while the controller is gone */
		{
			struct ml_loadgen *lg = ml_loadgen_start(
				F.url, 50, 2, 50, 20, NULL);
			struct ml_loadgen_stats st;

			sleep(1);
			ml_loadgen_stop(lg, &st);
			assert_int_equal(st.failed, 0);
		}

		mlctl(&o, (const char *const[]){ "recover", NULL });
		ml_test_must(&o, 0);
		ml_test_out_release(&o);
		/* killed before the revision was recorded, nothing changed:
		 * the previous one still serves; else the recorded one was
		 * finished */
		if (i > 0)
			serving = score;
		expect_version(serving);
		h = history();
		if (i == 0) {
			/* nothing was recorded: the ledger is as it was */
			assert_int_equal(newest_number(), newest);
			assert_string_equal(newest_outcome(h), outcome);
		} else {
			if (strcmp(newest_outcome(h), "succeeded"))
				print_error("%s: newest outcome %s\n",
					    points[i], newest_outcome(h));
			/* the newest revision is the one serving, and
			 * succeeded */
			assert_true(newest_number() > newest);
			assert_string_equal(newest_outcome(h), "succeeded");
		}
		json_decref(h);
		free(outcome);
		free(env);
	}
}

/*
 * Ctrl-C in the middle of a rollout: the host being switched finishes, no
 * other host starts, the revision is recorded as interrupted (exit 9), and
 * every host serves either the old or the new revision, never nothing.
 * The next deploy finishes the job.
 */
static void test_deploy__ctrl_c_stops_at_a_safe_point(void **s)
{
	char *old = version_marker(17), *nw = version_marker(21);
	const char *const markers[] = { old, nw, NULL };
	struct ml_loadgen_pair lg;
	struct ml_loadgen *check;
	struct ml_loadgen_stats st;
	struct ml_test_out o;
	json_t *h;

	ML_UNUSED(s);
	free(commit_version(21, "v after ctrl-c"));
	deliver();
	load_start(&lg, NULL);
	mlctl_env(&o, "MLCTL_TEST_SIGINT_AT=after-first-switch",
		  (const char *const[]){ "deploy", NULL });
	load_check(&lg, "interrupted deploy");
	ml_test_must(&o, 9);
	assert_non_null(strstr(o.err, "safe point"));
	ml_test_out_release(&o);
	h = history();
	assert_string_equal(newest_outcome(h), "interrupted");
	json_decref(h);

	check = ml_loadgen_start(F.url, 50, 2, 60, 20, markers);
	sleep(1);
	ml_loadgen_stop(check, &st);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.by_body[0] + st.by_body[1], st.ok);
	assert_true(st.by_body[1] > 0); /* the first host switched */

	/* status flags the hosts still on the older revision */
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	{
		json_t *d = json_loads(o.out, 0, NULL), *hst;
		size_t i, drift = 0, apps = 0;

		json_array_foreach(json_object_get(d, "hosts"), i, hst) {
			if (!json_object_get(hst, "drifted"))
				continue;
			apps++;
			drift += json_is_true(json_object_get(hst, "drifted"));
		}
		assert_int_equal(drift, apps - 1);
		json_decref(d);
	}
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	expect_version(21);
	free(old);
	free(nw);
}

/* Has the file at path (on the controller) the bytes needle anywhere? */
static bool file_has(const char *path, const char *needle)
{
	struct ml_buf b = ML_BUF_INIT(0);
	bool found = false;
	size_t n = strlen(needle);

	if (ml_buf_read_file(&b, path) == 0 && b.len >= n)
		found = memmem(b.data, b.len, needle, n) != NULL;
	ml_buf_release(&b);
	return found;
}

/*
 * A secret reaches the containers, in a 0400 file on the VM, and nowhere
 * else: not in mlctl's output, not in the ledger; a secrets file others can
 * read is refused.
 */
static void test_deploy__secrets_stay_secret(void **s)
{
	static const char *const secret = "s3cr3t-v@lue-4242";
	struct ml_test_out o;
	char *pb, *ledger, *sf, *content;
	char *mlctl_yaml = ml_xasprintf("%s/mlctl.yaml", F.repo);

	ML_UNUSED(s);
	pb = ml_test_slurp(mlctl_yaml);
	content = ml_xasprintf("%ssecrets: [API_TOKEN]\n", pb);
	ml_test_write(F.repo, "mlctl.yaml", content);
	free(ml_test_commit(F.repo, "a secret"));
	sf = ml_xasprintf("%s/.mlctl/secrets", F.repo);
	ml_test_write(F.repo, ".mlctl/secrets", "");
	{
		FILE *fp = fopen(sf, "w");

		assert_non_null(fp);
		fprintf(fp, "# test\nAPI_TOKEN=%s\n", secret);
		fclose(fp);
	}
	ml_test_write(F.repo, ".gitignore", "*.ledger*\n.mlctl/\n");
	free(ml_test_commit(F.repo, "ignore secrets"));

	chmod(sf, 0644);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "chmod 600"));
	ml_test_out_release(&o);

	chmod(sf, 0600);
	mlctl(&o, (const char *const[]){ "-v", "deploy", NULL });
	ml_test_must(&o, 0);
	assert_null(strstr(o.out, secret));
	assert_null(strstr(o.err, secret));
	ml_test_out_release(&o);
	expect_version(21);

	ledger = ml_xasprintf("%s.ledger", F.repo);
	assert_false(file_has(ledger, secret));
	free(ledger);
	ledger = ml_xasprintf("%s.ledger-wal", F.repo);
	assert_false(file_has(ledger, secret));
	free(ledger);

	/* on the VM: a 0600 file holds it, and the container has it */
	{
		char *tool = ml_xasprintf("%s/tests/fleet/fleet", ml_test_src());
		const char *st[] = { tool, "exec", "--dir", F.dir, "vm1", "--",
				     "sh", "-c",
				     "stat -c %a /run/mlctl/secrets/*/*; "
				     "for c in $(docker ps -q --filter "
				     "label=mlctl.app=" APP "); do "
				     "docker inspect -f '{{json .Config.Env}}' "
				     "$c; docker exec $c cat "
				     "/run/secrets/API_TOKEN; done",
				     NULL };

		ml_test_run(&o, NULL, NULL, NULL, 60, st);
		assert_int_equal(o.status, 0);
		assert_non_null(strstr(o.out, "400"));
		assert_null(strstr(o.out, "644"));
		/* in the file, not in docker inspect's env */
		assert_non_null(strstr(o.out, secret));
		assert_null(strstr(o.out, "API_TOKEN="));
		ml_test_out_release(&o);
		free(tool);
	}

	/* back to no secrets for the tests after this one */
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(ml_test_commit(F.repo, "no secret"));
	free(pb);
	free(content);
	free(sf);
	free(mlctl_yaml);
}

/* The playbook now committed with rollout.standby on or off. */
static void set_standby(bool on)
{
	char *path = ml_xasprintf("%s/mlctl.yaml", F.repo);
	char *pb = ml_test_slurp(path), *p;
	const char *off = "drain_timeout: 5s}", *with = "drain_timeout: 5s, "
						      "standby: true}";
	struct ml_buf b = ML_BUF_INIT(4096);

	assert_non_null(pb);
	p = strstr(pb, on ? off : with);
	assert_non_null(p);
	ml_buf_add(&b, pb, (size_t)(p - pb));
	ml_buf_addstr(&b, on ? with : off);
	ml_buf_addstr(&b, p + strlen(on ? off : with));
	ml_test_write(F.repo, "mlctl.yaml", ml_buf_str(&b));
	ml_buf_release(&b);
	free(pb);
	free(path);
}

/*
 * The app hosts' containers from status --json: the ids of the running
 * ones and of the paused ones, space-separated in host order, and how many
 * hosts status calls drifted.
 */
static void containers_by_state(char **running, char **paused, int *drifted)
{
	struct ml_test_out o;
	json_t *doc, *h;
	size_t i;

	*drifted = 0;
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		*drifted += json_is_true(json_object_get(h, "drifted"));
	json_decref(doc);
	*running = ml_test_status_ids(o.out, "running");
	*paused = ml_test_status_ids(o.out, "paused");
	ml_test_out_release(&o);
	assert_non_null(*running);
	assert_non_null(*paused);
}

/*
 * rollout.standby: once a new revision serves, the one before stays on
 * every host, paused. A rollback to it resumes those very containers
 * (no container is created, the model is not loaded again), under
 * open-loop and keep-alive load with zero failed requests, and pauses
 * what served. With standby off, a deploy removes the paused ones and
 * what it takes out of service.
 */
static void test_deploy__standby_rollback_resumes_the_paused_revision(
	void **s)
{
	struct ml_test_out o;
	struct ml_loadgen_pair lg;
	char *run1, *paused1, *run2, *paused2, *run3, *paused3, rev[24];
	json_int_t first;
	int drifted;

	ML_UNUSED(s);
	set_standby(true);
	free(commit_version(7, "v7 with a standby"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	first = newest_number();
	free(commit_version(8, "v8"));
	deliver();
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "standby"));
	ml_test_out_release(&o);
	expect_version(8);
	/* v8 serves, v7 waits paused beside it on every app host */
	containers_by_state(&run1, &paused1, &drifted);
	assert_true(*run1 && *paused1);
	assert_int_equal(strlen(run1), strlen(paused1));
	assert_int_equal(drifted, 0);

	snprintf(rev, sizeof(rev), "%lld", (long long)first);
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){ "rollback", rev, NULL });
	usleep(500000);
	load_check(&lg, "rollback to the paused standby");
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "resume"));
	ml_test_out_release(&o);
	expect_version(7);
	/* the very containers that were paused serve; v8 is the standby */
	containers_by_state(&run2, &paused2, &drifted);
	assert_string_equal(run2, paused1);
	assert_string_equal(paused2, run1);
	assert_int_equal(drifted, 0);

	/*
	 * Standby off, and a deploy of the head: a playbook-only commit,
	 * whose image is v8's very image (the playbook is not in it, and
	 * nothing in it names the commit), so v8's paused containers are
	 * resumed; v7, out of service, is stopped and removed, not paused.
	 */
	set_standby(false);
	free(ml_test_commit(F.repo, "no standby"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	containers_by_state(&run3, &paused3, &drifted);
	assert_string_equal(paused3, "");
	assert_string_equal(run3, paused2);
	assert_int_equal(drifted, 0);
	expect_version(8);
	free(run1);
	free(paused1);
	free(run2);
	free(paused2);
	free(run3);
	free(paused3);
}

/*
 * The app hosts whose running containers are all among the ids in before
 * (space-separated): those that have not started the new revision yet.
 * Space-separated, the caller's.
 */
static char *hosts_not_switched(const char *before)
{
	struct ml_test_out o;
	struct ml_buf b = ML_BUF_INIT(1024);
	json_t *doc, *h, *c;
	size_t i, k;

	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h) {
		bool fresh = false;

		if (!json_object_get(h, "drifted"))
			continue; /* not an app host */
		json_array_foreach(json_object_get(h, "containers"), k, c) {
			const char *st =
				json_string_value(json_object_get(c, "state"));
			const char *id =
				json_string_value(json_object_get(c, "id"));

			if (st && id && !strcmp(st, "running") &&
			    !strstr(before, id))
				fresh = true;
		}
		if (!fresh)
			ml_buf_addf(&b, "%s ",
				    json_string_value(json_object_get(h, "host")));
	}
	json_decref(doc);
	ml_test_out_release(&o);
	return ml_buf_detach(&b, NULL);
}

/*
 * rollout.standby and an automatic rollback: host by host, the first
 * host switches to v41 and pauses v40; then v41 cannot start on the next
 * host (its image removed there while the controller was held at that
 * point), the deploy fails and rolls back, and the first host resumes
 * its paused v40: afterwards the very containers that served before the
 * deploy serve again, on every host, with zero failed requests of
 * open-loop and keep-alive load throughout.
 */
static void test_deploy__standby_auto_rollback_resumes_switched_hosts(
	void **s)
{
	const char *const env[] = { "MLCTL_TEST_STOP_AT=after-first-switch",
				    NULL };
	char *path = ml_xasprintf("%s.autorb", F.repo), *before, *after,
	     *paused, *others, *tok, *p, *text;
	struct ml_loadgen_pair lg;
	struct ml_test_out o;
	const char *image;
	json_t *h;
	int drifted, st;
	pid_t pid;

	ML_UNUSED(s);
	set_standby(true);
	free(commit_version(40, "v40 with a standby"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	containers_by_state(&before, &paused, &drifted);
	free(paused);
	free(commit_version(41, "v41, which will not start past one host"));
	deliver();

	load_start(&lg, NULL);
	usleep(500000);
	pid = deploy_bg(path, env, (const char *const[]){ "deploy", NULL });
	assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
	assert_true(WIFSTOPPED(st));
	/* v41 leaves every host that has not switched yet */
	h = history();
	image = json_string_value(
		json_object_get(json_array_get(h, 0), "image_id"));
	assert_non_null(image);
	others = hosts_not_switched(before);
	if (!*others) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	assert_true(strlen(others) > 0);
	for (tok = others; *tok;) {
		size_t n = strcspn(tok, " ");
		char *vm = ml_xstrndup(tok, n);

		ml_test_fleet(&o, F.dir,
			      (const char *const[]){ "exec", vm, "--", "docker",
						     "rmi", "-f", image,
						     NULL });
		if (o.status != 0) {
			/* the frozen controller would hold the lock */
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		ml_test_must(&o, 0);
		ml_test_out_release(&o);
		free(vm);
		tok += n;
		tok += strspn(tok, " ");
	}
	json_decref(h);
	/* the rollback passes the same point: let it go on each time */
	for (int k = 0; k < 8; k++) {
		kill(pid, SIGCONT);
		assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
		if (!WIFSTOPPED(st))
			break;
	}
	if (WIFSTOPPED(st)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	usleep(500000);
	load_check(&lg, "a failing deploy rolled back to the paused standby");
	p = ml_xasprintf("%s.out", path);
	text = ml_test_slurp(p);
	unlink(p);
	free(p);
	p = ml_xasprintf("%s.err", path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7 ||
	    !strstr(text, "resume")) {
		char *err = ml_test_slurp(p);

		print_error("deploy: status %d\n%s\n%s\n", st, text, err);
		free(err);
	}
	unlink(p);
	free(p);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);
	assert_non_null(strstr(text, "resume"));
	free(text);
	h = history();
	assert_string_equal(newest_outcome(h), "rolled-back");
	json_decref(h);
	expect_version(40);
	/* the containers of before serve: the switched host's was resumed */
	containers_by_state(&after, &paused, &drifted);
	assert_string_equal(after, before);
	free(paused);
	free(after);

	/* standby off again, and the suite's state: v8 */
	set_standby(false);
	free(commit_version(8, "v8, no standby"));
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	containers_by_state(&after, &paused, &drifted);
	assert_string_equal(paused, "");
	free(paused);
	free(after);
	free(others);
	free(before);
	free(path);
}

/*
 * The stop of the container a host replaced does not hold the next
 * batch: with an app that takes 5 s to stop, each host of the next batch
 * has started its new container before the host before it is done
 * stopping its old one (one host at a time, so when stops held batches,
 * every start came after the stop before it), and not one request of an
 * open-loop load fails meanwhile.
 */
static void test_deploy__a_slow_stop_does_not_hold_the_next_batch(void **s)
{
	const char *hosts[16];
	json_int_t started[16], stopped[16];
	struct ml_loadgen_pair lg;
	struct ml_test_out o;
	json_t *doc, *e;
	size_t i, k, n = 0;
	char *pb, *num;

	ML_UNUSED(s);
	/* first, containers that take 5 s to stop ... */
	pb = playbook("env: {STOP_DELAY_S: \"5\"}\n");
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(ml_test_commit(F.repo, "an app that takes 5 s to stop"));
	mlctl(&o, (const char *const[]){"deploy", NULL});
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	/* ... then a deploy that replaces them */
	pb = playbook("env: {STOP_DELAY_S: \"5\", GENERATION: \"2\"}\n");
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(ml_test_commit(F.repo, "replace the slow stoppers"));
	load_start(&lg, NULL);
	usleep(500000);
	mlctl(&o, (const char *const[]){"deploy", NULL});
	usleep(500000);
	load_check(&lg, "a deploy replacing containers that stop in 5 s");
	ml_test_must(&o, 0);
	ml_test_out_release(&o);

	num = ml_xasprintf("%lld", (long long)newest_number());
	mlctl(&o, (const char *const[]){"show", num, "--json", NULL});
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "events"), i, e)
	{
		const char *host =
			json_string_value(json_object_get(e, "host"));
		const char *step =
			json_string_value(json_object_get(e, "step"));
		json_int_t at = json_integer_value(json_object_get(e, "at_ms"));

		if (strcmp(json_string_value(json_object_get(e, "status")),
			   "ok"))
			continue;
		if (!strcmp(step, "start") && n < ML_ARRAY_SIZE(hosts)) {
			hosts[n] = host;
			started[n] = at;
			stopped[n++] = -1;
		}
		for (k = 0; k < n && !strcmp(step, "stop"); k++)
			if (!strcmp(hosts[k], host))
				stopped[k] = at;
	}
	assert_true(n >= 2);
	for (k = 0; k < n; k++) {
		if (stopped[k] < 0 || (k > 0 && started[k] >= stopped[k - 1]))
			print_error("%s started at +%lld ms, %s stopped its "
				    "old container at +%lld ms:\n%s\n",
				    hosts[k],
				    (long long)(started[k] - started[0]),
				    hosts[k ? k - 1 : 0],
				    (long long)(stopped[k ? k - 1 : 0] -
						started[0]),
				    o.out);
		assert_true(stopped[k] >= 0);
		if (k > 0)
			assert_true(started[k] < stopped[k - 1]);
	}
	json_decref(doc);
	ml_test_out_release(&o);
	free(num);

	/* the suite's playbook again, for the cases after this one */
	pb = playbook(NULL);
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(ml_test_commit(F.repo, "the suite's playbook again"));
}

static void test_deploy__lock_status_and_release(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "lock", "status", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "not locked"));
	ml_test_out_release(&o);
}

/* remove takes the app off every host; the balancer stops answering and
 * status shows no containers; a second remove has nothing to do. */
static void test_deploy__remove_takes_the_app_off(void **s)
{
	struct ml_test_out o;
	json_t *doc, *h;
	size_t i;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "remove", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "load balancer removed"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		assert_int_equal(
			json_array_size(json_object_get(h, "containers")), 0);
	json_decref(doc);
	ml_test_out_release(&o);
	{
		const char *argv[] = { "curl", "-s", "-o", "/dev/null",
				       "--max-time", "3", F.url, NULL };

		ml_test_run(&o, NULL, NULL, NULL, 10, argv);
		assert_int_not_equal(o.status, 0);
		ml_test_out_release(&o);
	}
	mlctl(&o, (const char *const[]){ "remove", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "0 containers removed"));
	ml_test_out_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_deploy__first_deploy_serves_through_the_balancer),
		cmocka_unit_test(test_deploy__same_state_again_changes_nothing),
		cmocka_unit_test(
			test_deploy__new_revision_with_zero_failed_requests),
		cmocka_unit_test(
			test_deploy__rollback_to_the_first_with_zero_failed),
		cmocka_unit_test(test_deploy__failing_health_check_rolls_back),
		cmocka_unit_test(
			test_deploy__two_concurrent_deploys_one_proceeds),
		cmocka_unit_test(test_deploy__wait_for_the_lock),
		cmocka_unit_test(test_deploy__frozen_controller_loses_the_lock),
		cmocka_unit_test_teardown(
			test_deploy__wrong_health_path_rolls_back_with_zero_failed,
			back_to_a_good_revision),
		cmocka_unit_test(test_deploy__crash_at_each_point_then_recover),
		cmocka_unit_test(test_deploy__ctrl_c_stops_at_a_safe_point),
		cmocka_unit_test(test_deploy__secrets_stay_secret),
		cmocka_unit_test(
			test_deploy__standby_rollback_resumes_the_paused_revision),
		cmocka_unit_test(
			test_deploy__standby_auto_rollback_resumes_switched_hosts),
		cmocka_unit_test(
			test_deploy__a_slow_stop_does_not_hold_the_next_batch),
		cmocka_unit_test(test_deploy__lock_status_and_release),
		cmocka_unit_test(test_deploy__remove_takes_the_app_off),
	};

	/* ML_TEST_CASES=GLOB runs only the matching cases (tests/README) */
	if (getenv("ML_TEST_CASES") && *getenv("ML_TEST_CASES"))
		cmocka_set_test_filter(getenv("ML_TEST_CASES"));
	return cmocka_run_group_tests_name("e2e/deploy", tests, group_setup,
					   group_teardown);
}
