/*
 * Faults and a soak on the simulated fleet, each under open-loop load
 * through HAProxy (a new connection per request, at the highest rate from
 * RATE per second down that the fleet is first shown to hold in the same
 * run, stated in the table's title), one table row per fault or step on
 * stdout:
 *
 *	| # | step | mlctl | sent | failed | fleet = ledger |
 *
 * "fleet = ledger" means every answer came from one revision and it is the
 * one the ledger says serves. Rows must show 0 failed and "yes".
 *
 *  - soak: MLCTL_SOAK_ROUNDS steps (default 4) cycling through a deploy
 *    of a new model, a rollback to the revision before, a deploy whose
 *    health check path the app lacks (rolled back automatically), and
 *    a deploy of the right path again;
 *  - kill -9: MLCTL_FAULT_KILLS deploys (default 1) killed at a random
 *    moment (0.5 to 9 s in), each followed by `mlctl recover`, whose
 *    take-over of the dead controller's lease is the agent's
 *    compare-and-swap.
 *
 * bench/soak.sh and bench/faults.sh run this with more rounds; the e2e
 * suite keeps the short defaults. Real parts throughout: git, the
 * controller's Docker Engine building the example app, sshd, dockerd and
 * HAProxy in the fleet's namespaces.
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
#include <time.h>
#include <unistd.h>

#define RATE 200      /* open-loop requests per second */
#define MAX_LOAD_S 300 /* no load runs longer than this */

static struct {
	struct ml_test_app app;
	char *repo, *known_hosts, *ledger_env; /* borrowed from app */
	char *static_url, *score_url;
	int row;
	int rate;  /* open-loop requests per second the fleet holds */
	int score; /* the model score the ledger's serving revision has */
	bool failed_any;
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	const char *env[] = { F.ledger_env, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 10) : def;
}

static char *commit_score(int score, const char *msg)
{
	char *model = ml_xasprintf("great %d\ngood 2\nbad -2\n", score);

	ml_test_write(F.repo, "model.txt", model);
	free(model);
	return ml_test_commit(F.repo, msg);
}

/* The health path of the playbook, and commit. */
static void commit_health_path(const char *path, const char *msg)
{
	char *pb = ml_xasprintf(
		"app: faults-api\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		"health: {path: %s, interval: 1s, timeout: 1s,"
		" start_period: 4s, unhealthy_threshold: 3}\n"
		"targets: [web]\n"
		"rollout: {batch: 1, failure_budget: 0, auto_rollback: true,"
		" drain_timeout: 5s}\n"
		"load_balancer: {hosts: [lb], listen: 80}\n",
		path);

	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(pb);
	free(ml_test_commit(F.repo, msg));
}

static json_t *history(void)
{
	struct ml_test_out o;
	json_t *doc;

	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	doc = o.status == 0 ? json_loads(o.out, 0, NULL) : NULL;
	ml_test_out_release(&o);
	return doc;
}

/* Does every answer carry F.score, and does the ledger agree (its newest
 * revision finished, none left running)? */
static bool fleet_agrees(void)
{
	char *marker = ml_xasprintf("\"score\": %d", F.score);
	const char *const markers[] = { marker, NULL };
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	json_t *h = history(), *r;
	bool ok = h != NULL;
	size_t i;

	lg = ml_loadgen_start(F.score_url, 40, 2, 40, 20, markers);
	do {
		usleep(100000);
		ml_loadgen_peek(lg, &st);
	} while (st.sent < 40);
	ml_loadgen_stop(lg, &st);
	ok = ok && st.failed == 0 && st.by_body[0] == st.ok && st.ok > 0;
	json_array_foreach(h, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "outcome")) ?:
				    "",
			    "running"))
			ok = false;
	json_decref(h);
	free(marker);
	return ok;
}

static void table_head(const char *title)
{
	char load[64] = "?";
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (!fgets(load, sizeof(load), f))
			load[0] = '\0';
		fclose(f);
		load[strcspn(load, " ")] = '\0';
	}
	printf("\n%s, open-loop load of %d requests/s on a static page, a "
	       "new connection each (load average %s at the start)\n\n",
	       title, F.rate, load);
	printf("| # | step | mlctl | sent | failed | fleet = ledger |\n");
	printf("|---|---|---|---|---|---|\n");
	fflush(stdout);
}

static void row(const char *step, const char *exits,
		const struct ml_loadgen_stats *st, bool agrees)
{
	printf("| %d | %s | %s | %ld | %ld | %s |\n", ++F.row, step, exits,
	       st->sent, st->failed, agrees ? "yes" : "NO");
	if (st->failed)
		fprintf(stderr, "  first failure: %s\n", st->first_error);
	fflush(stdout);
	if (st->failed || !agrees)
		F.failed_any = true;
}

static struct ml_loadgen *load_start(void)
{
	return ml_loadgen_start_open(F.static_url, F.rate,
				     (long)F.rate * MAX_LOAD_S, MAX_LOAD_S, NULL);
}

/* mlctl ARGS under load, then a row. */
static int step(const char *label, const char *const *args, int want)
{
	struct ml_loadgen *lg = load_start();
	struct ml_loadgen_stats st;
	struct ml_test_out o;
	char exits[32];
	int status;

	usleep(300000);
	mlctl(&o, args);
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	status = o.status;
	if (status != want)
		fprintf(stderr, "%s: exit %d, wanted %d\n%s%s\n", label,
			status, want, o.out, o.err);
	ml_test_out_release(&o);
	snprintf(exits, sizeof(exits), "%d", status);
	row(label, exits, &st, status == want && fleet_agrees());
	return status;
}

static int64_t newest_number(void)
{
	json_t *h = history();
	int64_t n = json_integer_value(
		json_object_get(json_array_get(h, 0), "number"));

	json_decref(h);
	return n;
}

static int group_setup(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	if (ml_test_app_init(&F.app, "faults") < 0)
		return -1;
	F.repo = F.app.repo;
	F.known_hosts = F.app.known_hosts;
	F.ledger_env = F.app.ledger_env;
	F.static_url = ml_xasprintf("http://%s/healthz", F.app.lb_addr);
	F.score_url = ml_xasprintf("http://%s/cgi-bin/predict?text=great",
				   F.app.lb_addr);
	F.score = 3;
	free(commit_score(F.score, "v1"));
	commit_health_path("/healthz", "playbook");

	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	if (o.status != 0) {
		print_error("first deploy failed (%d):\n%s%s\n", o.status,
			    o.out, o.err);
		ml_test_out_release(&o);
		return -1;
	}
	ml_test_out_release(&o);

	/* the rate the fleet holds as it is, measured first: from RATE
	 * down, since the machine may be shared */
	F.rate = ml_loadgen_held_rate(F.static_url, RATE, 25, 4);
	if (!F.rate) {
		print_error("the fleet holds no open-loop rate from %d down "
			    "to 25 requests/s: is the machine overloaded?\n",
			    RATE);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	ml_test_app_release(&F.app);
	free(F.static_url);
	free(F.score_url);
	return 0;
}

/*
 * Deploys and rollbacks in a row: a new model, back to the one before, a
 * health check the app fails (rolled back), the right check again.
 */
static void test_faults__soak(void **s)
{
	long rounds = env_long("MLCTL_SOAK_ROUNDS", 4), i;
	int next = 40;

	ML_UNUSED(s);
	ML_TEST_OPEN_ISSUE("issues 8 and 18: zero failed requests at 200/s not shown yet");
	F.failed_any = false;
	F.row = 0;
	table_head("soak");
	for (i = 0; i < rounds; i++) {
		switch (i % 4) {
		case 0: {
			free(commit_score(next, "soak: a new model"));
			F.score = next++;
			step("deploy of a new model",
			     (const char *const[]){ "deploy", NULL }, 0);
			break;
		}
		case 1: {
			char *num = ml_xasprintf("%lld",
						 (long long)newest_number() - 1);

			/* the revision before serves the model before */
			F.score = next - 2 >= 40 ? next - 2 : 3;
			step("rollback to the revision before",
			     (const char *const[]){ "rollback", num, NULL }, 0);
			free(num);
			break;
		}
		case 2:
			commit_health_path("/no-such-page",
					   "soak: a health check that fails");
			/* rolled back: what served before still serves */
			step("deploy of a failing health check (rolled back)",
			     (const char *const[]){ "deploy", NULL }, 7);
			commit_health_path("/healthz", "soak: the check again");
			break;
		default:
			/* the right check again, with the model in HEAD */
			F.score = next - 1;
			step("deploy of the right health check",
			     (const char *const[]){ "deploy", NULL }, 0);
			break;
		}
	}
	assert_false(F.failed_any);
}

/*
 * kill -9 of the controller at a random moment of a deploy, then `mlctl
 * recover`: the row counts the load across both.
 */
static void test_faults__kill_during_deploy_then_recover(void **s)
{
	long kills = env_long("MLCTL_FAULT_KILLS", 1), i;
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL;

	ML_UNUSED(s);
	ML_TEST_OPEN_ISSUE("issues 8 and 18: kill -9 and recover under load, not shown yet");
	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	srand((unsigned)time(NULL));
	F.failed_any = false;
	F.row = 0;
	table_head("kill -9 of the controller, then recover");
	for (i = 0; i < kills; i++) {
		struct ml_loadgen *lg;
		struct ml_loadgen_stats st;
		struct ml_test_out o;
		int at_ms = 500 + rand() % 8500, status, rc;
		char label[96], exits[48];
		pid_t pid;

		free(commit_score(100 + (int)i, "a deploy to kill"));
		lg = load_start();
		usleep(300000);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 1);
			dup2(null, 2);
			putenv(F.ledger_env);
			if (chdir(F.repo) < 0)
				_exit(126);
			execl(bin, bin, "--known-hosts", F.known_hosts,
			      "deploy", (char *)NULL);
			_exit(127);
		}
		usleep((useconds_t)at_ms * 1000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		mlctl(&o, (const char *const[]){ "recover", NULL });
		rc = o.status;
		if (rc != 0)
			fprintf(stderr, "recover: %d\n%s%s\n", rc, o.out,
				o.err);
		ml_test_out_release(&o);
		usleep(700000);
		ml_loadgen_stop(lg, &st);
		/* killed before its revision was recorded: the old model
		 * serves; else recover finished the new one */
		{
			int old = F.score;

			F.score = 100 + (int)i;
			if (!fleet_agrees())
				F.score = old;
		}
		snprintf(label, sizeof(label), "kill -9 at %.1f s, recover",
			 at_ms / 1000.0);
		snprintf(exits, sizeof(exits), "%s, %d",
			 WIFSIGNALED(status) ? "killed" : "ended first", rc);
		row(label, exits, &st, rc == 0 && fleet_agrees());
	}
	free(def);
	assert_false(F.failed_any);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faults__soak),
		cmocka_unit_test(test_faults__kill_during_deploy_then_recover),
	};

	/* ML_TEST_CASES=GLOB runs only the matching cases (tests/README) */
	if (getenv("ML_TEST_CASES") && *getenv("ML_TEST_CASES"))
		cmocka_set_test_filter(getenv("ML_TEST_CASES"));
	/* every case waits on an open issue: no fleet set-up for nothing */
	if (!getenv("ML_TEST_OPEN_ISSUES"))
		return cmocka_run_group_tests(tests, NULL, NULL);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
