/*
 * Faults and a soak on the simulated fleet with the Python example
 * (examples/iris: scikit-learn behind FastAPI on mlctl's base image),
 * each under open-loop load through HAProxy (a new connection per request,
 * on /healthz, at the highest rate from RATE per second down that the
 * fleet is first shown to hold in the same run, stated in the table's
 * title), one table row per fault or step on stdout:
 *
 *	| # | step | mlctl | sent | failed | fleet = ledger |
 *
 * "fleet = ledger" means every answer came from one model version and it
 * is the one the revision the ledger says serves has; no revision is left
 * "running". Rows must show 0 failed and "yes".
 *
 *  - soak: MLCTL_SOAK_ROUNDS steps (default 3) cycling through a deploy
 *    of a new model, a rollback to the revision before, a deploy whose
 *    health check path the app lacks (rolled back automatically), and
 *    a deploy of the right path again;
 *  - kill -9: MLCTL_FAULT_KILLS deploys (default 1) killed at a random
 *    moment (0.5 to 9 s in), each followed by `mlctl recover`, whose
 *    take-over of the dead controller's lease is the agent's
 *    compare-and-swap;
 *  - kill -9 during the automatic rollback of a failing health check,
 *    then `mlctl recover`: the revision before serves again;
 *  - an app VM's link down while a deploy runs (the deploy fails on that
 *    host and says so), up again, then `mlctl deploy` converges;
 *  - a full disk on one app VM (a 64 KiB file system over its blob
 *    store): the deploy stops before any host changes, naming the host
 *    and the space it lacks; the model before serves;
 *  - the dockerd of the app VM being changed restarted (its containers
 *    stop and start again with it): the deploy goes on or is rolled back
 *    saying which host, and `mlctl deploy` converges;
 *  - the LB VM's HAProxy killed (master and worker) during a deploy: the
 *    agent starts it again at the next balancer step; the requests
 *    refused while no HAProxy ran are counted apart;
 *  - a controller frozen (SIGSTOP) past its lease while another deploys
 *    a newer commit: resumed, it stops with exit 8 before touching a
 *    host, its revision interrupted, the newer one serving;
 *  - two controllers deploying different commits at the same moment:
 *    one takes the lock and deploys, the other stops at once (exit 8).
 *
 * A new model's image is delivered (`mlctl deliver`) before the deploy
 * that is loaded: on this one machine the controller's image preparation
 * (an export from its Docker Engine) shares the two cores with every
 * simulated VM, which a real controller does not, and measured here it
 * starved the VMs' apps before the rollout touched a host. What is
 * measured is what a rollout costs the app's users.
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
#include "common/clock.h"
#include "tests/support/app.h"
#include "tests/support/loadgen.h"
#include "tests/support/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RATE 200      /* open-loop requests per second */
#define MAX_LOAD_S 400 /* no load runs longer than this */
#define APP "faults-api"

static struct {
	struct ml_test_app app;
	char *repo, *known_hosts, *ledger_env; /* borrowed from app */
	char *url;   /* /healthz through HAProxy: it names the model */
	int row;
	int rate;    /* open-loop requests per second the fleet holds */
	int version; /* the model version the serving revision has */
	int next;    /* the next new model version */
	bool failed_any;
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, NULL, args);
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 10) : def;
}

/* The model's version in model/meta.json (a weights-only change). */
static void write_model_version(int v)
{
	char *version = ml_xasprintf("v%d", v);

	assert_int_equal(ml_test_model_version(F.repo, version), 0);
	free(version);
}

/* A new model version committed; its image delivered, unloaded (see the
 * top of this file). Returns the version. */
static int commit_new_model(const char *msg)
{
	struct ml_test_out o;
	int v = F.next++;

	write_model_version(v);
	free(ml_test_commit(F.repo, msg));
	mlctl(&o, (const char *const[]){ "deliver", NULL });
	if (o.status != 0)
		fprintf(stderr, "deliver: %d\n%s%s\n", o.status, o.out, o.err);
	ml_test_out_release(&o);
	return v;
}

/* The health path of the playbook, and commit. */
static void commit_health_path(const char *path, const char *msg)
{
	char *pb = ml_xasprintf(
		"app: " APP "\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		"health: {path: %s, interval: 1s, timeout: 1s,"
		" start_period: 20s, unhealthy_threshold: 3,"
		" expect_status: [200]}\n"
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

/* Does every answer carry model version v, and does the ledger agree
 * (none of its revisions left running)? */
static bool serves(int v)
{
	char *marker = ml_xasprintf("\"model_version\":\"v%d\"", v);
	const char *const markers[] = { marker, NULL };
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	json_t *h = history(), *r;
	bool ok = h != NULL;
	size_t i;

	lg = ml_loadgen_start(F.url, 40, 2, 40, 20, markers);
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
	printf("\n%s, open-loop load of %d requests/s on /healthz of the "
	       "Python example, a new connection each (load average %s at "
	       "the start)\n\n",
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
	struct ml_loadgen *lg = ml_loadgen_start_open(
		F.url, F.rate, (long)F.rate * MAX_LOAD_S, MAX_LOAD_S, NULL);

	usleep(300000);
	return lg;
}

/* mlctl ARGS under load, then a row. */
static int step(const char *label, const char *const *args, int want)
{
	struct ml_loadgen *lg = load_start();
	struct ml_loadgen_stats st;
	struct ml_test_out o;
	char exits[32];
	int status;

	mlctl(&o, args);
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	status = o.status;
	if (status != want)
		fprintf(stderr, "%s: exit %d, wanted %d\n%s%s\n", label,
			status, want, o.out, o.err);
	ml_test_out_release(&o);
	snprintf(exits, sizeof(exits), "%d", status);
	row(label, exits, &st, status == want && serves(F.version));
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

/* `mlctl ARGS` in a child of ours with extra environment entries (env,
 * NULL-terminated, may be NULL) and its output in a file, so that the
 * test can watch it, stop it and kill it. */
static pid_t mlctl_child(const char *out_path, const char *const *env,
			 const char *const *args)
{
	const char *bin = getenv("MLCTL_BIN");
	const char *argv[16];
	char *def = NULL;
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
	ml_test_write("/", out_path, ""); /* there before it is watched */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		putenv(F.app.ledger_env);
		putenv(F.app.cache_env);
		for (; env && *env; env++)
			putenv((char *)*env);
		if (chdir(F.repo) < 0)
			_exit(126);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	free(def);
	return pid;
}

static pid_t deploy_child(const char *out_path)
{
	return mlctl_child(out_path, NULL, (const char *const[]){ "deploy", NULL });
}

/* What a child's wait status says, for the table. */
static const char *exit_word(int status, char buf[16])
{
	if (WIFEXITED(status))
		snprintf(buf, 16, "%d", WEXITSTATUS(status));
	else
		snprintf(buf, 16, "signal %d",
			 WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	return buf;
}

/* Wait until the file at path holds needle, or the child ended, or
 * timeout_s passed. */
static bool wait_output(const char *path, const char *needle, pid_t pid,
			int timeout_s)
{
	int i, status;

	for (i = 0; i < timeout_s * 10; i++) {
		char *text = ml_test_slurp(path);
		bool found = text && strstr(text, needle);

		free(text);
		if (found)
			return true;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return false;
		usleep(100000);
	}
	return false;
}

static int recover(void)
{
	struct ml_test_out o;
	int rc;

	mlctl(&o, (const char *const[]){ "recover", NULL });
	rc = o.status;
	if (rc != 0)
		fprintf(stderr, "recover: %d\n%s%s\n", rc, o.out, o.err);
	ml_test_out_release(&o);
	return rc;
}

static int group_setup(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	if (ml_test_app_init_python(&F.app, "faults", APP) < 0)
		return -1;
	F.repo = F.app.repo;
	F.known_hosts = F.app.known_hosts;
	F.ledger_env = F.app.ledger_env;
	F.url = ml_xasprintf("http://%s/healthz", F.app.lb_addr);
	F.version = 1;
	F.next = 40;
	write_model_version(1);
	commit_health_path("/healthz", "faults: the example, v1");

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
	F.rate = ml_loadgen_held_rate(F.url, RATE, 25, 4);
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
	free(F.url);
	return 0;
}

/*
 * Deploys and rollbacks in a row: a new model, back to the one before, a
 * health check the app fails (rolled back), the right check again.
 */
static void test_faults__soak(void **s)
{
	long rounds = env_long("MLCTL_SOAK_ROUNDS", 3), i;
	int before = F.version;

	ML_UNUSED(s);
	F.failed_any = false;
	F.row = 0;
	table_head("soak");
	for (i = 0; i < rounds; i++) {
		switch (i % 4) {
		case 0:
			before = F.version;
			F.version = commit_new_model("soak: a new model");
			step("deploy of a new model",
			     (const char *const[]){ "deploy", NULL }, 0);
			break;
		case 1: {
			char *num = ml_xasprintf("%lld",
						 (long long)newest_number() - 1);

			/* the revision before serves the model before */
			F.version = before;
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
			F.version = F.next - 1;
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
	char *out = ml_xasprintf("%s.deploy-out", F.repo);

	ML_UNUSED(s);
	ML_TEST_SLOW("kill -9 at a random moment and recover: a random fault, run many times by bench/faults.sh");
	srand((unsigned)time(NULL));
	F.failed_any = false;
	F.row = 0;
	table_head("kill -9 of the controller, then recover");
	for (i = 0; i < kills; i++) {
		struct ml_loadgen *lg;
		struct ml_loadgen_stats st;
		int at_ms = 500 + rand() % 8500, status, rc, v, old;
		char label[96], exits[48];
		pid_t pid;

		v = commit_new_model("a deploy to kill");
		lg = load_start();
		pid = deploy_child(out);
		usleep((useconds_t)at_ms * 1000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		rc = recover();
		usleep(700000);
		ml_loadgen_stop(lg, &st);
		/* killed before its revision was recorded: the old model
		 * serves; else recover finished the new one */
		old = F.version;
		F.version = v;
		if (!serves(F.version))
			F.version = old;
		snprintf(label, sizeof(label), "kill -9 at %.1f s, recover",
			 at_ms / 1000.0);
		snprintf(exits, sizeof(exits), "%s, %d",
			 WIFSIGNALED(status) ? "killed" : "ended first", rc);
		row(label, exits, &st, rc == 0 && serves(F.version));
	}
	unlink(out);
	free(out);
	assert_false(F.failed_any);
}

/*
 * kill -9 of the controller while it rolls a failing health check back,
 * then `mlctl recover`: the model before serves, the ledger says so.
 */
static void test_faults__fault_kill_during_automatic_rollback(void **s)
{
	char *out = ml_xasprintf("%s.deploy-out", F.repo);
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	char exits[48];
	int status, rc;
	bool seen;
	pid_t pid;

	ML_UNUSED(s);
	ML_TEST_SLOW("about 2 minutes, run by bench/faults.sh");
	F.failed_any = false;
	F.row = 0;
	table_head("kill -9 during an automatic rollback, then recover");
	commit_health_path("/no-such-page", "faults: a check that fails");
	lg = load_start();
	pid = deploy_child(out);
	seen = wait_output(out, "rolling back to revision", pid, 180);
	/* the rollback of the one host changed (its new container never
	 * took traffic) takes about 1 s */
	usleep((useconds_t)(rand() % 300) * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	rc = recover();
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	snprintf(exits, sizeof(exits), "%s, %d",
		 WIFSIGNALED(status) ? "killed" : "ended first", rc);
	row("kill -9 in the automatic rollback, recover", exits, &st,
	    seen && rc == 0 && serves(F.version));
	commit_health_path("/healthz", "faults: the check again");
	unlink(out);
	free(out);
	assert_true(seen);
	assert_false(F.failed_any);
}

/*
 * An app VM's link goes down while a deploy of a new model runs: the
 * deploy fails on that host and says which; HAProxy stops sending to it
 * (a connection that cannot be made is retried on another server). The
 * link comes back, and `mlctl deploy` converges the fleet.
 */
static void test_faults__fault_link_down_during_a_deploy(void **s)
{
	char *out = ml_xasprintf("%s.deploy-out", F.repo), *text;
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	struct ml_test_out o;
	char exits[48];
	int status, v, rc;
	bool started;
	pid_t pid;

	ML_UNUSED(s);
	ML_TEST_SLOW("about a minute (a 30 s dead-peer timeout), run by bench/faults.sh");
	F.failed_any = false;
	F.row = 0;
	table_head("an app VM's link down during a deploy, up, deploy again");
	v = commit_new_model("faults: a deploy that loses a VM");
	lg = load_start();
	pid = deploy_child(out);
	/* vm3 goes while vm2 (batch 2) is being changed */
	started = wait_output(out, "batch 2", pid, 180);
	ml_test_fleet(NULL, F.app.fleet_dir,
		      (const char *const[]){ "link", "vm3", "down", NULL });
	waitpid(pid, &status, 0);
	text = ml_test_slurp(out);
	fprintf(stderr, "the deploy with vm3 gone:\n%s\n", text ? text : "");
	ml_test_fleet(NULL, F.app.fleet_dir,
		      (const char *const[]){ "link", "vm3", "up", NULL });
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	rc = o.status;
	if (rc != 0)
		fprintf(stderr, "deploy again: %d\n%s%s\n", rc, o.out, o.err);
	ml_test_out_release(&o);
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	F.version = v;
	snprintf(exits, sizeof(exits), "%d, %d",
		 WIFEXITED(status) ? WEXITSTATUS(status) : -1, rc);
	row("vm3's link down during a deploy, up, deploy", exits, &st,
	    started && rc == 0 && serves(v));
	/* the failing deploy named the host it lost */
	assert_non_null(text);
	assert_non_null(strstr(text, "vm3"));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	free(text);
	unlink(out);
	free(out);
	assert_false(F.failed_any);
}

/* cmd in app VM vm's namespaces (fleet exec); its exit status. */
static int vm_exec(const char *vm, const char *const *cmd)
{
	const char *args[16] = { "exec", vm, "--" };
	size_t n = 3;
	int rc;

	while (*cmd && n + 1 < ML_ARRAY_SIZE(args))
		args[n++] = *cmd++;
	args[n] = NULL;
	rc = ml_test_fleet(NULL, F.app.fleet_dir, args);
	return rc;
}

/*
 * One app VM's disk is full (a 64 KiB tmpfs over its blob store): the
 * new model's image cannot reach it, and the deploy stops before it
 * changes any host, saying which host lacks how much space. The model
 * before serves throughout.
 */
static void test_faults__fault_full_disk_on_one_vm(void **s)
{
	struct ml_test_out o;
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	char exits[32];
	int rc;
	bool said;

	ML_UNUSED(s);
	F.failed_any = false;
	F.row = 0;
	table_head("a full disk on vm2 during delivery");
	assert_int_equal(vm_exec("vm2", (const char *const[]){
				 "mount", "-t", "tmpfs", "-o", "size=64k",
				 "tmpfs", "/var/lib/mlctl/blobs", NULL }),
			 0);
	commit_new_model("faults: a model vm2 has no room for");
	lg = load_start();
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	vm_exec("vm2", (const char *const[]){ "umount",
					      "/var/lib/mlctl/blobs", NULL });
	rc = o.status;
	said = strstr(o.err, "vm2") && strstr(o.err, "disk space");
	if (rc == 0 || !said)
		fprintf(stderr, "deploy on a full disk: %d\n%s%s\n", rc, o.out,
			o.err);
	ml_test_out_release(&o);
	snprintf(exits, sizeof(exits), "%d", rc);
	row("a deploy while vm2's disk is full (stopped)", exits, &st,
	    rc != 0 && said && serves(F.version));
	assert_false(F.failed_any);
	/* the hosts relayed to each other: no relay key is left behind,
	 * on vm2 either, whose delivery failed (grep exits 1) */
	for (int i = 1; i <= 4; i++) {
		char vm[8];

		snprintf(vm, sizeof(vm), "vm%d", i);
		assert_int_equal(vm_exec(vm, (const char *const[]){
					 "sh", "-c",
					 "ls /var/lib/mlctl/relay/ 2>/dev/null "
					 "| grep -q '[.]key$'",
					 NULL }),
				 1);
	}
}

/* Deliver the image of the commit at rev (so that the loaded deploy
 * after it only rolls out). */
static void deliver_commit(const char *rev)
{
	struct ml_test_out o;

	mlctl(&o, (const char *const[]){ "deliver", "--commit", rev, NULL });
	if (o.status != 0)
		fprintf(stderr, "deliver %s: %d\n%s%s\n", rev, o.status, o.out,
			o.err);
	ml_test_out_release(&o);
}

/* The model version in a new commit (not delivered); its sha. */
static char *commit_model_only(int v, const char *msg)
{
	write_model_version(v);
	return ml_test_commit(F.repo, msg);
}

/* Converge with `mlctl deploy` after a fault; its exit status. */
static int deploy_again(void)
{
	struct ml_test_out o;
	int rc;

	mlctl(&o, (const char *const[]){ "deploy", NULL });
	rc = o.status;
	if (rc != 0)
		fprintf(stderr, "deploy again: %d\n%s%s\n", rc, o.out, o.err);
	ml_test_out_release(&o);
	return rc;
}

/*
 * The dockerd of the app VM being changed (vm2, batch 2) is restarted,
 * as an upgrade of Docker does, while the new model's container starts
 * there: without live-restore every container of vm2 stops with it and
 * those with a restart policy start again with it. HAProxy retries a
 * refused connection on another server and stops sending to vm2 until its
 * checks pass again. The deploy goes on or fails on vm2 and is rolled
 * back, saying so; `mlctl deploy` then converges.
 */
static void test_faults__fault_dockerd_restart_during_a_deploy(void **s)
{
	char *out = ml_xasprintf("%s.deploy-out", F.repo), *text;
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	char exits[48], w[16];
	int status, v, rc = 0, rrc;
	bool started;
	pid_t pid;

	ML_UNUSED(s);
	ML_TEST_SLOW("about 80 s, run by bench/faults.sh");
	F.failed_any = false;
	F.row = 0;
	table_head("an app VM's dockerd restarted during its batch");
	v = commit_new_model("faults: a deploy during which dockerd restarts");
	lg = load_start();
	pid = deploy_child(out);
	started = wait_output(out, "batch 2", pid, 180);
	usleep(800000); /* vm2's new container is starting */
	rrc = ml_test_fleet(NULL, F.app.fleet_dir,
			    (const char *const[]){ "dockerd", "vm2", "restart",
						   NULL });
	waitpid(pid, &status, 0);
	text = ml_test_slurp(out);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "the deploy while vm2's dockerd restarted:\n%s\n",
			text ? text : "");
		rc = deploy_again();
	}
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	F.version = v;
	snprintf(exits, sizeof(exits), "%s, %d", exit_word(status, w), rc);
	row("vm2's dockerd restarted in its batch (deploy again if it failed)",
	    exits, &st, started && rrc == 0 && rc == 0 && serves(v));
	/* a failed deploy said which host and why */
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		assert_non_null(strstr(text ? text : "", "vm2"));
	free(text);
	unlink(out);
	free(out);
	assert_int_equal(rrc, 0);
	assert_false(F.failed_any);
}

/* The pid in the LB VM's HAProxy pidfile of our app (its master), 0 when
 * there is none or it is not running. */
static pid_t haproxy_master(void)
{
	char *path = ml_xasprintf("%s/vms/lb1/data/mlctl/haproxy/%s/"
				  "haproxy.pid",
				  F.app.fleet_dir, APP);
	char *text = ml_test_slurp(path);
	long pid = text ? strtol(text, NULL, 10) : 0;

	free(text);
	free(path);
	return pid > 1 && kill((pid_t)pid, 0) == 0 ? (pid_t)pid : 0;
}

/* kill -9 of pid and of its children (HAProxy's master and workers: a
 * crash of the whole balancer, as the OOM killer would). */
static void kill_tree(pid_t pid)
{
	char path[300], *stat, *p;
	DIR *d = opendir("/proc");
	struct dirent *e;

	kill(pid, SIGSTOP); /* no new worker while we look */
	while (d && (e = readdir(d))) {
		long ppid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		stat = ml_test_slurp(path);
		p = stat ? strrchr(stat, ')') : NULL;
		/* "pid (comm) S ppid ..." */
		if (p && sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == pid)
			kill((pid_t)strtol(e->d_name, NULL, 10), SIGKILL);
		free(stat);
	}
	if (d)
		closedir(d);
	kill(pid, SIGKILL);
}

/*
 * The LB VM's HAProxy (master and worker) is killed while a deploy runs.
 * The balancer is the one door: until an HAProxy runs again every
 * connection is refused, and those are counted apart. The agent starts
 * it again at the deploy's next balancer step; the deploy ends with the
 * new model serving, and no request fails while an HAProxy runs.
 */
static void test_faults__fault_haproxy_killed_during_a_deploy(void **s)
{
	char *out = ml_xasprintf("%s.deploy-out", F.repo), *label;
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st, before, after;
	char exits[48], w[16];
	int64_t t_kill, t_back = 0;
	pid_t pid, master, now = 0;
	int status, v, rc = 0;
	bool started;

	ML_UNUSED(s);
	ML_TEST_SLOW("about 70 s, run by bench/faults.sh");
	F.failed_any = false;
	F.row = 0;
	table_head("the LB VM's HAProxy killed during a deploy");
	v = commit_new_model("faults: a deploy during which HAProxy dies");
	master = haproxy_master();
	assert_true(master > 0);
	lg = load_start();
	pid = deploy_child(out);
	started = wait_output(out, "batch 2", pid, 180);
	ml_loadgen_peek(lg, &before);
	t_kill = ml_mono_ms();
	kill_tree(master);
	/* back: a new master whose worker answers through the balancer */
	while (ml_mono_ms() - t_kill < 120000) {
		now = haproxy_master();
		if (now && now != master) {
			t_back = ml_mono_ms();
			break;
		}
		usleep(20000);
	}
	usleep(300000); /* the refused ones in flight are counted */
	ml_loadgen_peek(lg, &after);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *text = ml_test_slurp(out);

		fprintf(stderr, "the deploy while HAProxy died:\n%s\n",
			text ? text : "");
		free(text);
		rc = deploy_again();
	}
	if (!t_back && haproxy_master())
		t_back = ml_mono_ms();
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	F.version = v;
	label = ml_xasprintf("HAProxy killed in batch 2; back after %.1f s, "
			     "%ld refused while none ran (not counted)",
			     t_back ? (double)(t_back - t_kill) / 1000 : -1.0,
			     after.failed - before.failed);
	/* the row counts what failed while an HAProxy ran */
	st.failed -= after.failed - before.failed;
	st.sent -= after.sent - before.sent;
	snprintf(exits, sizeof(exits), "%s, %d", exit_word(status, w), rc);
	row(label, exits, &st, started && t_back && rc == 0 && serves(v));
	free(label);
	unlink(out);
	free(out);
	assert_true(t_back > 0);
	assert_false(F.failed_any);
}

/*
 * Controller A deploys model X and stops itself (SIGSTOP) with X healthy
 * on its first host; its lease runs out, B (`--wait`) takes the lock and
 * deploys model Y everywhere. Resumed, A notices the lost lease before it
 * changes anything: exit 8, its revision interrupted, Y serving.
 */
static void test_faults__fault_frozen_controller_past_its_lease(void **s)
{
	const char *const a_env[] = { "MLCTL_TEST_STOP_AT=after-first-healthy",
				      "MLCTL_TEST_LOCK_TTL_MS=5000", NULL };
	char *out = ml_xasprintf("%s.frozen-out", F.repo), *text, *sha;
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	struct ml_test_out o;
	char exits[48], w[16];
	int status, x, y, b_rc;
	bool stopped, said, interrupted = false;
	json_t *h, *r;
	size_t i;
	pid_t a;

	ML_UNUSED(s);
	/* e2e/test_deploy has the same case on the busybox example */
	ML_TEST_SLOW("about 60 s, run by bench/faults.sh");
	F.failed_any = false;
	F.row = 0;
	table_head("a controller frozen past its lease, then resumed");
	x = commit_new_model("faults: X, deployed by a controller that freezes");
	y = F.next++;
	lg = load_start();
	a = mlctl_child(out, a_env, (const char *const[]){ "deploy", NULL });
	stopped = waitpid(a, &status, WUNTRACED) == a && WIFSTOPPED(status);
	sha = commit_model_only(y, "faults: Y, deployed while A is frozen");
	deliver_commit(sha);
	free(sha);
	mlctl(&o, (const char *const[]){ "deploy", "--wait", "2m", NULL });
	b_rc = o.status;
	if (b_rc != 0)
		fprintf(stderr, "B: %d\n%s%s\n", b_rc, o.out, o.err);
	ml_test_out_release(&o);
	kill(a, SIGCONT);
	waitpid(a, &status, 0);
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	text = ml_test_slurp(out);
	said = text && strstr(text, "lost the fleet lock");
	if (!said)
		fprintf(stderr, "controller A:\n%s\n", text ? text : "");
	free(text);
	/* the ledger: B's Y succeeded last, A's X was interrupted */
	h = history();
	json_array_foreach(h, i, r)
		if (i > 0 && !strcmp(json_string_value(json_object_get(
					     r, "outcome")) ?: "",
				     "interrupted"))
			interrupted = true;
	json_decref(h);
	F.version = y;
	ML_UNUSED(x);
	snprintf(exits, sizeof(exits), "A %s, B %d", exit_word(status, w), b_rc);
	row("A frozen with X healthy on vm1 past its lease; B deploys Y; A resumed",
	    exits, &st,
	    stopped && b_rc == 0 && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 8 && said && interrupted &&
		    serves(y));
	unlink(out);
	free(out);
	assert_true(stopped);
	assert_false(F.failed_any);
}

/*
 * Two controllers deploy different commits at the same moment: exactly
 * one takes the fleet lock and deploys its commit; the other stops at
 * once (exit 8), naming who holds the lock. The fleet serves the winner's
 * model and the ledger says so.
 */
static void test_faults__fault_two_controllers_at_once(void **s)
{
	char *out_a = ml_xasprintf("%s.a-out", F.repo);
	char *out_b = ml_xasprintf("%s.b-out", F.repo), *sha_x, *sha_y;
	char *text_a, *text_b, exits[48], wa[16], wb[16];
	struct ml_loadgen *lg;
	struct ml_loadgen_stats st;
	int sa, sb, x = F.next++, y = F.next++, ea, eb;
	bool one_won, said;
	pid_t a, b;

	ML_UNUSED(s);
	F.failed_any = false;
	F.row = 0;
	table_head("two controllers deploying different commits at once");
	sha_x = commit_model_only(x, "faults: X, for controller A");
	deliver_commit(sha_x);
	sha_y = commit_model_only(y, "faults: Y, for controller B");
	deliver_commit(sha_y);
	lg = load_start();
	a = mlctl_child(out_a, NULL,
			(const char *const[]){ "deploy", "--commit", sha_x,
					       NULL });
	b = mlctl_child(out_b, NULL,
			(const char *const[]){ "deploy", "--commit", sha_y,
					       NULL });
	waitpid(a, &sa, 0);
	waitpid(b, &sb, 0);
	usleep(700000);
	ml_loadgen_stop(lg, &st);
	ea = WIFEXITED(sa) ? WEXITSTATUS(sa) : -1;
	eb = WIFEXITED(sb) ? WEXITSTATUS(sb) : -1;
	text_a = ml_test_slurp(out_a);
	text_b = ml_test_slurp(out_b);
	one_won = (ea == 0 && eb == 8) || (ea == 8 && eb == 0);
	/* the loser names the lock and its holder */
	said = one_won && strstr(ea == 8 ? text_a : text_b, "lock");
	if (!one_won || !said)
		fprintf(stderr, "A (%d):\n%s\nB (%d):\n%s\n", ea, text_a, eb,
			text_b);
	F.version = ea == 0 ? x : y;
	snprintf(exits, sizeof(exits), "A %s, B %s", exit_word(sa, wa),
		 exit_word(sb, wb));
	row(ea == 0 ? "A (X) and B (Y) at once: A took the lock"
		    : "A (X) and B (Y) at once: B took the lock",
	    exits, &st, one_won && said && serves(F.version));
	free(text_a);
	free(text_b);
	unlink(out_a);
	unlink(out_b);
	free(out_a);
	free(out_b);
	free(sha_x);
	free(sha_y);
	assert_true(one_won);
	assert_false(F.failed_any);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faults__soak),
		cmocka_unit_test(test_faults__kill_during_deploy_then_recover),
		cmocka_unit_test(test_faults__fault_kill_during_automatic_rollback),
		cmocka_unit_test(test_faults__fault_link_down_during_a_deploy),
		cmocka_unit_test(test_faults__fault_full_disk_on_one_vm),
		cmocka_unit_test(test_faults__fault_dockerd_restart_during_a_deploy),
		cmocka_unit_test(test_faults__fault_haproxy_killed_during_a_deploy),
		cmocka_unit_test(test_faults__fault_frozen_controller_past_its_lease),
		cmocka_unit_test(test_faults__fault_two_controllers_at_once),
	};

	/* ML_TEST_CASES=GLOB runs only the matching cases (tests/README) */
	if (getenv("ML_TEST_CASES") && *getenv("ML_TEST_CASES"))
		cmocka_set_test_filter(getenv("ML_TEST_CASES"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
