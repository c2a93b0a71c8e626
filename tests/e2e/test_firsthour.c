/*
 * End-to-end tests of a newcomer's first hour on the simulated fleet
 * (MLCTL_FLEET_DIR): the example app is deployed for real (build, deliver,
 * HAProxy), then
 *  - the status table of the healthy fleet says healthy and serving for
 *    every container, in words, with ages like "3m" (read by column, as a
 *    person reads it), and --json carries the same in new fields while the
 *    old ones stay;
 *  - a container whose health path fails is named failing, with why, and
 *    the balancer's view says down and since when;
 *  - colour only on a terminal (a pty here), never piped, in --json or
 *    with NO_COLOR;
 *  - the errors with a usual fix say it, and the fix works: a missing
 *    agent (run bootstrap), Docker missing on a host (what to install), a
 *    changed host key (the ssh-keygen -R line, run as printed).
 * Every test puts the fleet back as it found it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* borrowed from A below */
static struct {
	const char *dir;
	const char *repo;
	const char *known_hosts;
	const char *ledger_env;
} F;

static const char *const app_vms[] = { "vm1", "vm2", "vm3", "vm4" };

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	const char *env[] = { F.ledger_env, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

static int fleet(const char *const *args)
{
	return ml_test_fleet(NULL, F.dir, args);
}

static struct ml_test_app A;

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *model;

	ML_UNUSED(state);
	if (ml_test_app_init(&A, "firsthour") < 0)
		return -1;
	F.dir = A.fleet_dir;
	F.repo = A.repo;
	F.known_hosts = A.known_hosts;
	F.ledger_env = A.ledger_env;
	model = ml_test_read_src("examples/sentiment/model.txt");
	ml_test_write(F.repo, "model.txt", model);
	free(model);
	ml_test_write(F.repo, "mlctl.yaml",
		      "app: firsthour\n"
		      "image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		      "port: 8000\n"
		      "health: {path: /healthz, interval: 500ms, timeout: 400ms,"
		      " start_period: 5s, unhealthy_threshold: 2}\n"
		      "targets: [web]\n"
		      "rollout: {batch: 50%, drain_timeout: 2s}\n"
		      "load_balancer: {hosts: [lb], listen: 8081}\n");
	free(ml_test_commit(F.repo, "first hour"));

	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	if (o.status != 0) {
		print_error("deploy failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
		ml_test_out_release(&o);
		return -1;
	}
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	ml_test_app_release(&A); /* mlctl remove, then the repository */
	return 0;
}

/* ---- reading the table as a person does: by column ------------------- */

struct table {
	char *lines[64];
	size_t n;
	size_t col[32]; /* start of each header */
	char *hdr[32];
	size_t ncols;
};

static void table_parse(struct table *t, const char *text)
{
	const char *p = text, *h;
	size_t i;

	memset(t, 0, sizeof(*t));
	while (*p && t->n < ML_ARRAY_SIZE(t->lines)) {
		size_t len = strcspn(p, "\n");

		t->lines[t->n++] = ml_xstrndup(p, len);
		p += len + (p[len] == '\n');
	}
	assert_true(t->n >= 2);
	h = t->lines[0];
	for (i = 0; h[i] && t->ncols < ML_ARRAY_SIZE(t->col);) {
		size_t len = strcspn(h + i, " ");

		t->col[t->ncols] = i;
		t->hdr[t->ncols++] = ml_xstrndup(h + i, len);
		i += len;
		while (h[i] == ' ')
			i++;
	}
}

/* Row r's cell under header name, trailing blanks cut. Caller frees. */
static char *cell(const struct table *t, size_t r, const char *name)
{
	const char *line = t->lines[r];
	size_t c, start, end, len = strlen(line);

	for (c = 0; c < t->ncols; c++)
		if (!strcmp(t->hdr[c], name))
			break;
	assert_true(c < t->ncols);
	start = t->col[c];
	end = c + 1 < t->ncols ? t->col[c + 1] : len;
	if (start > len)
		return ml_xstrdup("");
	if (end > len)
		end = len;
	while (end > start && line[end - 1] == ' ')
		end--;
	return ml_xstrndup(line + start, end - start);
}

static void table_release(struct table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->lines[i]);
	for (i = 0; i < t->ncols; i++)
		free(t->hdr[i]);
}

/* An age as status prints it: digits then one of s, m, h, d. */
static bool is_age(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && strchr("smhd", s[n]) && s[n] && !s[n + 1];
}

static void test_firsthour__healthy_fleet_says_healthy(void **state)
{
	struct ml_test_out o;
	struct table t;
	size_t r, rows = 0, i, k;
	json_t *doc, *h, *c;
	int64_t t0 = time(NULL);

	ML_UNUSED(state);
	/* HAProxy may still be counting its first checks just after the
	 * deploy: wait (bounded) until it has */
	for (;;) {
		mlctl(&o, (const char *const[]){ "status", NULL });
		assert_int_equal(o.status, 0);
		if ((!strstr(o.out, "checks passing") &&
		     !strstr(o.out, "first check pending")) ||
		    time(NULL) - t0 > 30)
			break;
		ml_test_out_release(&o);
		sleep(1);
	}
	/* piped: no colour */
	assert_null(strchr(o.out, '\033'));
	table_parse(&t, o.out);
	for (r = 1; r < t.n; r++) {
		char *host = cell(&t, r, "HOST"), *cont = cell(&t, r, "CONTAINER");
		char *health = cell(&t, r, "HEALTH"), *lb = cell(&t, r, "LB");
		char *state_ = cell(&t, r, "STATE"), *up = cell(&t, r, "UPTIME");

		if (!strncmp(cont, "firsthour-", 10)) {
			rows++;
			if (strcmp(health, "healthy") ||
			    strncmp(lb, "serving, ", 9) ||
			    strcmp(state_, "running") || !is_age(up))
				fail_msg("row %zu (%s) is not healthy and "
					 "serving:\n%s", r, host, o.out);
		}
		/* Docker's own word is never shown for an image without a
		 * HEALTHCHECK, nor HAProxy's fractions */
		assert_null(strstr(health, "none"));
		assert_null(strstr(lb, "UP"));
		free(host);
		free(cont);
		free(health);
		free(lb);
		free(state_);
		free(up);
	}
	assert_int_equal(rows, ML_ARRAY_SIZE(app_vms));
	table_release(&t);
	ml_test_out_release(&o);

	/* --json: the same, in new fields, beside the old ones */
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	assert_int_equal(o.status, 0);
	assert_null(strchr(o.out, '\033'));
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	rows = 0;
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		json_array_foreach(json_object_get(h, "containers"), k, c) {
			json_t *lb = json_object_get(c, "lb");

			rows++;
			assert_true(json_is_true(json_object_get(
				json_object_get(c, "probe"), "healthy")));
			assert_int_equal(json_integer_value(json_object_get(
						 json_object_get(c, "probe"),
						 "http_status")),
					 200);
			assert_string_equal(json_string_value(json_object_get(
						    lb, "state")),
					    "serving");
			assert_true(json_is_integer(
				json_object_get(c, "uptime_s")));
			/* the fields that existed stay */
			assert_string_equal(json_string_value(json_object_get(
						    lb, "op_state")),
					    "UP");
			assert_non_null(json_object_get(lb, "admin_state"));
			assert_non_null(json_object_get(lb, "cur_sessions"));
			assert_string_equal(json_string_value(json_object_get(
						    c, "health")),
					    "none");
			assert_non_null(json_object_get(c, "restarts"));
		}
	assert_int_equal(rows, ML_ARRAY_SIZE(app_vms));
	json_decref(doc);
	ml_test_out_release(&o);
}

/* The name of the app's running container on vm. Caller frees. */
static char *container_on(const char *vm)
{
	struct ml_test_out o;
	json_t *doc, *h, *c;
	char *name = NULL;
	size_t i, k;

	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h) {
		if (strcmp(json_string_value(json_object_get(h, "host")), vm))
			continue;
		json_array_foreach(json_object_get(h, "containers"), k, c)
			if (!strcmp(json_string_value(json_object_get(
					    c, "state")) ?: "",
				    "running"))
				name = ml_xstrdup(json_string_value(
					json_object_get(c, "name")));
	}
	json_decref(doc);
	ml_test_out_release(&o);
	assert_non_null(name);
	return name;
}

static char *broken; /* the container whose health path is moved away */

static void healthz(const char *vm, bool on)
{
	char *name = container_on(vm);
	const char *args[] = { "exec", vm, "--", "docker", "exec", "-u", "0",
			       name, "mv", on ? "/www/healthz.off" : "/www/healthz",
			       on ? "/www/healthz" : "/www/healthz.off", NULL };

	assert_int_equal(fleet(args), 0);
	free(name);
}

/* The status row of vm, once its LB cell starts with want (at most
 * 30 s). Caller frees the table. */
static size_t wait_row(struct table *t, const char *vm, const char *want)
{
	int64_t t0 = time(NULL);
	struct ml_test_out o;
	size_t r;

	for (;;) {
		mlctl(&o, (const char *const[]){ "status", NULL });
		table_parse(t, o.out);
		for (r = 1; r < t->n; r++) {
			char *host = cell(t, r, "HOST"), *lb = cell(t, r, "LB");
			bool hit = !strcmp(host, vm) && !strncmp(lb, want,
								 strlen(want));

			free(host);
			free(lb);
			if (hit) {
				ml_test_out_release(&o);
				return r;
			}
		}
		if (time(NULL) - t0 > 30)
			fail_msg("%s never showed '%s':\n%s", vm, want, o.out);
		ml_test_out_release(&o);
		table_release(t);
		sleep(1);
	}
}

static void test_firsthour__failing_container_says_why(void **state)
{
	struct table t;
	char *health, *lb;
	size_t r;

	ML_UNUSED(state);
	broken = container_on("vm1");
	healthz("vm1", false);
	r = wait_row(&t, "vm1", "down since ");
	health = cell(&t, r, "HEALTH");
	lb = cell(&t, r, "LB");
	assert_string_equal(health, "failing: HTTP 404");
	assert_non_null(strstr(lb, "checks failing"));
	free(health);
	free(lb);
	table_release(&t);

	healthz("vm1", true);
	r = wait_row(&t, "vm1", "serving");
	health = cell(&t, r, "HEALTH");
	assert_string_equal(health, "healthy");
	free(health);
	table_release(&t);
}

static int failing_teardown(void **state)
{
	ML_UNUSED(state);
	/* put the health path back if the test stopped half-way */
	if (broken)
		fleet((const char *const[]){ "exec", "vm1", "--", "docker",
					     "exec", "-u", "0", broken, "sh",
					     "-c",
					     "test -e /www/healthz || mv "
					     "/www/healthz.off /www/healthz",
					     NULL });
	free(broken);
	broken = NULL;
	return 0;
}

/* mlctl with argv on a new pseudo-terminal, TERM set, extra env entries;
 * what it wrote there. */
static char *run_on_pty(const char *const *args, const char *extra_env)
{
	const char *bin = getenv("MLCTL_BIN");
	struct ml_buf out = ML_BUF_INIT(1 << 20);
	const char *argv[16];
	int master, status;
	size_t n = 0;
	pid_t pid;
	int64_t t0 = time(NULL);

	assert_non_null(bin);
	argv[n++] = bin;
	argv[n++] = "--known-hosts";
	argv[n++] = F.known_hosts;
	while (*args && n + 1 < ML_ARRAY_SIZE(argv))
		argv[n++] = *args++;
	argv[n] = NULL;
	master = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int slave;

		setsid();
		slave = open(ptsname(master), O_RDWR);
		if (slave < 0)
			_exit(127);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		close(master);
		if (chdir(F.repo) < 0)
			_exit(127);
		setenv("TERM", "xterm", 1);
		unsetenv("NO_COLOR");
		putenv((char *)F.ledger_env);
		if (extra_env)
			putenv((char *)extra_env);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		struct pollfd pfd = { master, POLLIN, 0 };
		char buf[4096];
		ssize_t r;

		if (time(NULL) - t0 > 120) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		r = read(master, buf, sizeof(buf));
		if (r <= 0)
			break; /* EIO once the child has closed the terminal */
		ml_buf_add(&out, buf, (size_t)r);
	}
	waitpid(pid, &status, 0);
	close(master);
	return ml_buf_detach(&out, NULL);
}

static void test_firsthour__colour_on_a_terminal_only(void **state)
{
	char *s;

	ML_UNUSED(state);
	s = run_on_pty((const char *const[]){ "status", NULL }, NULL);
	/* green for healthy and serving, and the reset after it */
	assert_non_null(strstr(s, "\033[32mhealthy\033[0m"));
	assert_non_null(strstr(s, "\033[32mserving, "));
	free(s);
	s = run_on_pty((const char *const[]){ "status", "--json", NULL }, NULL);
	assert_null(strchr(s, '\033'));
	assert_non_null(strstr(s, "\"healthy\": true"));
	free(s);
	s = run_on_pty((const char *const[]){ "status", NULL }, "NO_COLOR=1");
	assert_null(strchr(s, '\033'));
	assert_non_null(strstr(s, "healthy"));
	free(s);
}

/* The agent taken away on vm4: status says to bootstrap; bootstrapping,
 * as told, mends it. */
static void test_firsthour__missing_agent_says_bootstrap(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	assert_int_equal(fleet((const char *const[]){
				 "exec", "vm4", "--", "mv",
				 "/var/lib/mlctl/bin/mlctl-agent",
				 "/var/lib/mlctl/bin/mlctl-agent.away", NULL }),
			 0);
	mlctl(&o, (const char *const[]){ "status", NULL });
	assert_int_equal(o.status, 6);
	assert_non_null(strstr(o.err, "run 'mlctl bootstrap' first"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "status", NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
}

static int agent_teardown(void **state)
{
	ML_UNUSED(state);
	fleet((const char *const[]){ "exec", "vm4", "--", "rm", "-f",
				     "/var/lib/mlctl/bin/mlctl-agent.away",
				     NULL });
	return 0;
}

/* Docker's socket taken away on vm4 (as on a host without Docker):
 * status and bootstrap say what to install. */
static void test_firsthour__missing_docker_says_what_to_install(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	assert_int_equal(fleet((const char *const[]){
				 "exec", "vm4", "--", "mv", "/run/docker.sock",
				 "/run/docker.sock.away", NULL }),
			 0);
	mlctl(&o, (const char *const[]){ "status", NULL });
	/* vm4 answers over SSH: its Docker is what is missing */
	assert_int_equal(o.status, 6);
	assert_non_null(strstr(o.err, "vm4: docker is not reachable"));
	assert_non_null(strstr(o.err, "apt-get install docker.io"));
	assert_null(strstr(o.out, "unreachable"));
	assert_null(strstr(o.err, "unreachable"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	assert_int_not_equal(o.status, 0);
	assert_non_null(strstr(o.out, "install docker.io"));
	ml_test_out_release(&o);
}

static int docker_teardown(void **state)
{
	ML_UNUSED(state);
	fleet((const char *const[]){ "exec", "vm4", "--", "sh", "-c",
				     "test -e /run/docker.sock || mv "
				     "/run/docker.sock.away /run/docker.sock",
				     NULL });
	return 0;
}

/* vm's address in the fleet's inventory (static buffer). */
static const char *vm_address(const char *vm)
{
	static char addr[64];
	char *path = ml_xasprintf("%s/inventory.yaml", F.dir);
	char *inv = ml_test_slurp(path), *key = ml_xasprintf("  %s:\n", vm);
	const char *p = strstr(inv, key);

	p = p ? strstr(p, "address: ") : NULL;
	assert_non_null(p);
	p += strlen("address: ");
	snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(p, "\n "), p);
	free(inv);
	free(key);
	free(path);
	return addr;
}

/* Split a printed shell command of single-quoted words into argv. */
static size_t shell_words(char **argv, size_t max, const char *s)
{
	struct ml_buf w = ML_BUF_INIT(4096);
	size_t n = 0;

	while (*s && n + 1 < max) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		ml_buf_reset(&w);
		while (*s && *s != ' ') {
			if (*s == '\'') {
				s++;
				while (*s && *s != '\'')
					ml_buf_addch(&w, *s++);
				if (*s)
					s++;
			} else if (*s == '\\' && s[1]) {
				ml_buf_addch(&w, s[1]);
				s += 2;
			} else {
				ml_buf_addch(&w, *s++);
			}
		}
		argv[n++] = ml_xstrdup(ml_buf_str(&w));
	}
	argv[n] = NULL;
	ml_buf_release(&w);
	return n;
}

/* vm3 reinstalled (new host key): the error prints the ssh-keygen line;
 * running exactly that line, then trusting the new key, connects again. */
static void test_firsthour__changed_key_prints_the_fix(void **state)
{
	struct ml_test_out o;
	const char *err, *cmd;
	char *argv[16], *line, *want;
	json_t *doc, *h;
	size_t i, n;

	ML_UNUSED(state);
	assert_int_equal(fleet((const char *const[]){ "rekey", "vm3", NULL }),
			 0);
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	assert_int_equal(o.status, 6);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	err = NULL;
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		if (!strcmp(json_string_value(json_object_get(h, "host")),
			    "vm3"))
			err = json_string_value(json_object_get(h, "error"));
	assert_non_null(err);
	cmd = strstr(err, "forget the old key with: ");
	assert_non_null(cmd);
	cmd += strlen("forget the old key with: ");
	want = ml_xasprintf("ssh-keygen -f '%s' -R '%s'", F.known_hosts,
			    vm_address("vm3"));
	line = ml_xstrdup(cmd);
	json_decref(doc);
	ml_test_out_release(&o);
	/* the fleet's known_hosts, and vm3's entry in it (port 22) */
	assert_string_equal(line, want);
	n = shell_words(argv, ML_ARRAY_SIZE(argv), line);
	assert_int_equal(n, 5);
	assert_int_equal(ml_test_run(&o, NULL, NULL, NULL, 60,
				     (const char *const *)argv),
			 0);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	for (i = 0; i < n; i++)
		free(argv[i]);
	free(line);
	free(want);

	mlctl(&o, (const char *const[]){ "status", "--trust-new-hosts",
					 NULL });
	if (o.status != 0)
		print_error("%s", o.err);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "status", NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_firsthour__healthy_fleet_says_healthy),
		cmocka_unit_test_teardown(
			test_firsthour__failing_container_says_why,
			failing_teardown),
		cmocka_unit_test(test_firsthour__colour_on_a_terminal_only),
		cmocka_unit_test_teardown(
			test_firsthour__missing_agent_says_bootstrap,
			agent_teardown),
		cmocka_unit_test_teardown(
			test_firsthour__missing_docker_says_what_to_install,
			docker_teardown),
		cmocka_unit_test(test_firsthour__changed_key_prints_the_fix),
	};

	return cmocka_run_group_tests_name("e2e/firsthour", tests, group_setup,
					   group_teardown);
}
