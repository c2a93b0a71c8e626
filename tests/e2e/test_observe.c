/*
 * End-to-end tests of seeing the service on the simulated fleet: `mlctl
 * logs -f` across a deploy, request rates and error rates per revision in
 * `mlctl status --json` under a known open-loop load through HAProxy,
 * `status --watch`, the log rotation cap, and `mlctl show`'s time to
 * healthy (a real Prometheus scraping the fleet is in test_model, on the
 * Python example's own /metrics). Real parts throughout: git, the
 * controller's Docker Engine, sshd, dockerd and HAProxy in the fleet's
 * namespaces.
 *
 * The app is the example's busybox httpd with two CGI scripts of its own:
 * /cgi-bin/predict numbers each request 1, 2, 3... (without a lock: see
 * the script) and, when the playbook sets FAIL_EVERY=N, answers 500 to
 * the requests numbered N, 2N, ...: a revision that fails a known share;
 * /cgi-bin/metrics serves that count as a Prometheus counter.
 *
 * Rates: the CGI forks a shell per request and holds about 50 requests/s
 * on 4 VMs here (tests/FLEET.md); the load is RATE = 10/s, measured as
 * sent by the generator in the same window the numbers cover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/loadgen.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define APP "obs-api"
#define RATE 10	      /* requests per second through the balancer */
#define WINDOW_S 30   /* the status window the rate tests read */
#define MAX_LOAD_S 150 /* no load loop runs longer than this */

static struct {
	const char *dir;
	char *repo, *state;
	char *known_hosts;
	char *ledger_env;
	char *url; /* the app through the balancer */
	char *lb_addr;
	char *ctl_addr; /* the controller on the fleet's bridge (scrapes) */
} F;

static const char predict_cgi[] =
	"#!/bin/sh\n"
	"# Each request claims the smallest free number: mkdir is atomic, and\n"
	"# the count of claims made so far is never past it, so the numbers\n"
	"# claimed are always 1..N, whatever runs at once.\n"
	"mkdir -p /tmp/seq\n"
	"n=$(( $(wc -c < /tmp/claimed 2>/dev/null || echo 0) + 1 ))\n"
	"while ! mkdir /tmp/seq/$n 2>/dev/null; do n=$((n + 1)); done\n"
	"printf x >> /tmp/claimed\n"
	"if [ -n \"$FAIL_EVERY\" ] && [ $((n % FAIL_EVERY)) -eq 0 ]; then\n"
	"\tprintf 'Status: 500 Internal Server Error\\r\\n"
	"Content-Type: text/plain\\r\\n\\r\\nfailed on purpose\\n'\n"
	"\texit 0\n"
	"fi\n"
	"printf 'Content-Type: application/json\\r\\n\\r\\n"
	"{\"revision\": \"%s\", \"n\": %d}\\n' \"$MLCTL_REVISION\" \"$n\"\n";

static const char metrics_cgi[] =
	"#!/bin/sh\n"
	"n=$(wc -c < /tmp/claimed 2>/dev/null || echo 0)\n"
	"printf 'Content-Type: text/plain; version=0.0.4\\r\\n\\r\\n'\n"
	"printf '# TYPE app_requests_total counter\\n"
	"app_requests_total %d\\n' \"$n\"\n";

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	const char *env[] = { F.ledger_env, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

static void run_ok(const char *const *args)
{
	struct ml_test_out o;

	mlctl(&o, args);
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The playbook with FAIL_EVERY (0: none) and a tag that makes a new
 * commit, committed. */
static void commit_playbook(int fail_every, const char *tag)
{
	char *env = fail_every ? ml_xasprintf("env: {FAIL_EVERY: \"%d\"}\n",
					      fail_every)
			       : ml_xstrdup("");
	char *pb = ml_xasprintf(
		"app: " APP "\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		/* lenient: on a machine this busy a static file can take
		 * a second, and a server HAProxy thinks down fails requests */
		"health: {path: /healthz, interval: 2s, timeout: 1500ms,"
		" start_period: 10s}\n"
		"%s"
		"targets: [web]\n"
		"rollout: {batch: 1, drain_timeout: 5s}\n"
		"load_balancer: {hosts: [lb], listen: 80}\n"
		"logs: {max_size: 1m, max_files: 2}\n"
		"metrics: {path: /cgi-bin/metrics, scrape_from: [%s]}\n",
		env, F.ctl_addr);

	ml_test_write(F.repo, "mlctl.yaml", pb);
	ml_test_write(F.repo, "www/tag.txt", tag);
	free(ml_test_commit(F.repo, tag));
	free(pb);
	free(env);
}

static json_t *status_json(const char *window)
{
	struct ml_test_out o;
	json_t *d;

	mlctl(&o, (const char *const[]){ "status", "--json", "--window",
					 window, NULL });
	ml_test_must(&o, 0);
	d = json_loads(o.out, 0, NULL);
	if (!d)
		print_error("status --json is not JSON:\n%s\n", o.out);
	ml_test_out_release(&o);
	assert_non_null(d);
	return d;
}

/* The metrics entry of revision rev in a status document, or NULL. */
static json_t *rev_metrics(json_t *st, json_int_t rev)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(st, "metrics"),
					   "revisions"),
			   i, r)
		if (json_integer_value(json_object_get(r, "revision")) == rev)
			return r;
	return NULL;
}

/* The newest revision running anywhere, from status. */
static json_int_t current_revision(json_t *st)
{
	json_int_t best = 0;
	json_t *h, *c;
	size_t i, k;

	json_array_foreach(json_object_get(st, "hosts"), i, h)
		json_array_foreach(json_object_get(h, "containers"), k, c)
			if (json_integer_value(json_object_get(c, "revision")) >
			    best)
				best = json_integer_value(
					json_object_get(c, "revision"));
	return best;
}

/* ---- load with a record of what was sent when ------------------------- */

#define SAMPLES 4096

struct load {
	struct ml_loadgen *lg;
	double t[SAMPLES];
	long sent[SAMPLES], failed[SAMPLES];
	size_t n;
};

static void load_start(struct load *l)
{
	l->n = 0;
	/* enough threads that a slow answer (the CGI takes about 250 ms
	 * when the machine is busy) does not hold the rate back */
	l->lg = ml_loadgen_start(F.url, RATE, 16, (long)RATE * MAX_LOAD_S,
				 MAX_LOAD_S, NULL);
	assert_non_null(l->lg);
}

/* Sample the counts every 100 ms for secs seconds. */
static void load_wait(struct load *l, double secs)
{
	double end = now_s() + secs;
	struct ml_loadgen_stats st;

	while (now_s() < end && l->n < SAMPLES) {
		ml_loadgen_peek(l->lg, &st);
		l->t[l->n] = now_s();
		l->sent[l->n] = st.sent;
		l->failed[l->n] = st.failed;
		l->n++;
		usleep(100000);
	}
}

/* Requests sent in [from, to], from the samples. */
static long load_between(const struct load *l, double from, double to,
			 long *failed)
{
	size_t a = 0, b = 0, i;

	for (i = 0; i < l->n; i++) {
		if (l->t[i] <= from)
			a = i;
		if (l->t[i] <= to)
			b = i;
	}
	if (failed)
		*failed = l->failed[b] - l->failed[a];
	return l->sent[b] - l->sent[a];
}

static void load_stop(struct load *l, struct ml_loadgen_stats *st)
{
	ml_loadgen_stop(l->lg, st);
	fprintf(stderr, "load: %ld sent at %d/s, %ld failed (%ld non-2xx)\n",
		st->sent, RATE, st->failed, st->http_errors);
}

/* ---- a background mlctl ------------------------------------------------ */

static pid_t spawn_mlctl(const char *out, const char *err,
			 const char *const *args)
{
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL;
	const char *argv[32];
	size_t i, k = 0;
	pid_t pid;

	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	argv[k++] = bin;
	argv[k++] = "--known-hosts";
	argv[k++] = F.known_hosts;
	for (i = 0; args[i] && k + 1 < ML_ARRAY_SIZE(argv); i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fo < 0 || fe < 0 || chdir(F.repo) < 0)
			_exit(127);
		dup2(fo, 1);
		dup2(fe, 2);
		putenv(F.ledger_env);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	free(def);
	return pid;
}

/* SIGINT to pid, then its exit status within secs (-1: had to kill). */
static int interrupt_and_wait(pid_t pid, int secs)
{
	int status, i;

	kill(pid, SIGINT);
	for (i = 0; i < secs * 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* The next line of *p (cut in place), or NULL at the end. */
static char *next_line(char **p)
{
	char *line = *p, *nl;

	if (!line || !*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = line + strlen(line);
	}
	return line;
}

/* ---- set-up ------------------------------------------------------------ */

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *inv, *p, *addr;

	ML_UNUSED(state);
	F.dir = getenv("MLCTL_FLEET_DIR");
	if (!F.dir || !*F.dir) {
		print_error("MLCTL_FLEET_DIR is not set: run through "
			    "'make test'\n");
		return -1;
	}
	F.repo = ml_test_tmpdir("observe");
	F.state = ml_test_tmpdir("observe-state");
	F.known_hosts = ml_xasprintf("%s/known_hosts", F.dir);
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s/ledger.db", F.state);
	p = ml_xasprintf("%s/inventory.yaml", F.dir);
	inv = ml_test_slurp(p);
	free(p);
	addr = strstr(inv, "lb1:");
	addr = addr ? strstr(addr, "address: ") : NULL;
	if (!addr) {
		print_error("no lb1 address in the fleet's inventory\n");
		return -1;
	}
	addr += strlen("address: ");
	F.lb_addr = ml_xstrndup(addr, strcspn(addr, "\n \r"));
	F.url = ml_xasprintf("http://%s/cgi-bin/predict", F.lb_addr);
	/* the harness gives the bridge, where the controller is, A.B.C.1 */
	F.ctl_addr = ml_xasprintf("%.*s.1",
				  (int)(strrchr(F.lb_addr, '.') - F.lb_addr),
				  F.lb_addr);

	free(ml_test_git(F.repo, (const char *const[]){ "init", "-q", NULL }));
	{
		const char *files[] = { "Dockerfile", "www/healthz",
					"model.txt" };

		for (size_t i = 0; i < ML_ARRAY_SIZE(files); i++) {
			char *rel = ml_xasprintf("examples/sentiment/%s",
						 files[i]);
			char *text = ml_test_read_src(rel);

			ml_test_write(F.repo, files[i], text);
			free(text);
			free(rel);
		}
	}
	ml_test_write(F.repo, "www/cgi-bin/predict", predict_cgi);
	ml_test_write(F.repo, "www/cgi-bin/metrics", metrics_cgi);
	p = ml_xasprintf("%s/www/cgi-bin/predict", F.repo);
	chmod(p, 0755);
	free(p);
	p = ml_xasprintf("%s/www/cgi-bin/metrics", F.repo);
	chmod(p, 0755);
	free(p);
	ml_test_write(F.repo, "inventory.yaml", inv);
	free(inv);
	commit_playbook(0, "v1");

	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "deploy", NULL });
	if (o.status != 0) {
		print_error("first deploy failed (%d):\n%s%s\n", o.status,
			    o.out, o.err);
		ml_test_out_release(&o);
		return -1;
	}
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	mlctl(&o, (const char *const[]){ "remove", NULL });
	if (o.status != 0)
		print_error("remove failed (%d): %s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	ml_test_rmtree(F.repo);
	ml_test_rmtree(F.state);
	free(F.repo);
	free(F.state);
	free(F.known_hosts);
	free(F.ledger_env);
	free(F.url);
	free(F.lb_addr);
	free(F.ctl_addr);
	return 0;
}

/* ---- logs -------------------------------------------------------------- */

/* "TS HOST CONTAINER | TEXT": host and the revision in the container's
 * name; false when the line is not of that form. */
static bool parse_log_line(const char *line, char ts[40], char host[32],
			   long *rev)
{
	char cont[96];
	const char *r;

	if (sscanf(line, "%39s %31s %95s |", ts, host, cont) != 3)
		return false;
	if (strncmp(cont, APP "-r", strlen(APP "-r")))
		return false;
	r = cont + strlen(APP "-r");
	*rev = strtol(r, NULL, 10);
	return strchr(line, '|') != NULL && ts[4] == '-' &&
	       ts[strlen(ts) - 1] == 'Z';
}

/* Where in the output a host's lines of the old and the new revision are:
 * index of the first and the last of each, -1 when none. */
struct host_span {
	char host[32];
	long first_old, last_old, first_new, last_new;
};

static struct host_span *span_of(struct host_span *v, size_t *n,
				 const char *host)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (!strcmp(v[i].host, host))
			return &v[i];
	assert_true(*n < 16);
	v[*n] = (struct host_span){ .first_old = -1, .last_old = -1,
				    .first_new = -1, .last_new = -1 };
	snprintf(v[*n].host, sizeof(v[*n].host), "%s", host);
	return &v[(*n)++];
}

static void test_observe__logs_follow_across_a_deploy(void **s)
{
	char *out = ml_xasprintf("%s/follow.out", F.state);
	char *err = ml_xasprintf("%s/follow.err", F.state);
	char *text, *errtext, *line, *save = NULL, ts[40], host[32];
	char last_ts[40] = "";
	struct host_span spans[16], *sp;
	long rev, old_rev, new_rev = 0, idx = 0, nold = 0, nnew = 0;
	size_t nspans = 0, i;
	int st;
	pid_t pid;

	ML_UNUSED(s);
	{
		json_t *d = status_json("10s");

		old_rev = (long)current_revision(d);
		json_decref(d);
	}
	pid = spawn_mlctl(out, err,
			  (const char *const[]){ "logs", "-f", "--timestamps",
						 "--tail", "5", NULL });
	sleep(3);
	commit_playbook(0, "logs-v2");
	run_ok((const char *const[]){ "deploy", NULL });
	sleep(3); /* the new containers' health checks write lines */
	st = interrupt_and_wait(pid, 10);
	text = ml_test_slurp(out);
	errtext = ml_test_slurp(err);
	fprintf(stderr, "logs -f stderr:\n%s", errtext);
	/* Ctrl-C ends it, cleanly */
	assert_int_equal(st, 0);

	/* every line has its prefixes and time never goes back */
	save = text;
	for (; (line = next_line(&save)); idx++) {
		if (!parse_log_line(line, ts, host, &rev)) {
			print_error("line without prefixes: '%s'\n", line);
			fail();
		}
		if (strcmp(ts, last_ts) < 0) {
			print_error("line out of time order: '%s' after %s\n",
				    line, last_ts);
			fail();
		}
		snprintf(last_ts, sizeof(last_ts), "%s", ts);
		assert_int_equal(strncmp(host, "vm", 2), 0);
		sp = span_of(spans, &nspans, host);
		if (rev == old_rev) {
			if (sp->first_old < 0)
				sp->first_old = idx;
			sp->last_old = idx;
			nold++;
		} else {
			assert_true(rev > old_rev);
			new_rev = rev;
			if (sp->first_new < 0)
				sp->first_new = idx;
			sp->last_new = idx;
			nnew++;
		}
	}
	fprintf(stderr,
		"logs -f: %ld lines of revision %ld and %ld of %ld from %zu "
		"hosts\n",
		nold, old_rev, nnew, new_rev, nspans);
	/* on every host, the old container's lines come first and the new
	 * one's last (both run for a moment while traffic moves over) */
	assert_true(nspans >= 4);
	for (i = 0; i < nspans; i++) {
		sp = &spans[i];
		if (sp->first_old < 0 || sp->first_new < 0 ||
		    sp->first_old > sp->first_new ||
		    sp->last_old > sp->last_new) {
			print_error("%s: old lines %ld..%ld, new %ld..%ld\n",
				    sp->host, sp->first_old, sp->last_old,
				    sp->first_new, sp->last_new);
			fail();
		}
	}
	/* the new containers joined and the old ones left, and it said so;
	 * no host was given up on (a container being removed is not a
	 * host's failure) */
	assert_non_null(strstr(errtext, "joined (revision"));
	assert_non_null(strstr(errtext, " left"));
	assert_null(strstr(errtext, "mlctl: "));
	free(text);
	free(errtext);
	free(out);
	free(err);
}

static void test_observe__logs_unknown_host_and_bad_since(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "logs", "nosuchvm", NULL });
	ml_test_must(&o, 11);
	assert_non_null(strstr(o.err, "'nosuchvm'"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "logs", "--since", "yesterday",
					 NULL });
	ml_test_must(&o, 2);
	ml_test_out_release(&o);
	/* one host, its last line, with the prefixes */
	mlctl(&o, (const char *const[]){ "logs", "--tail", "1", "vm2", NULL });
	ml_test_must(&o, 0);
	assert_int_equal(strncmp(o.out, "vm2 " APP "-r", 4 + strlen(APP) + 2),
			 0);
	assert_null(strstr(o.out, "\nvm1 "));
	ml_test_out_release(&o);
	/* --json: one object per line */
	mlctl(&o, (const char *const[]){ "logs", "--json", "--tail", "2", "vm1",
					 "vm3", NULL });
	ml_test_must(&o, 0);
	{
		char *p = o.out, *line;
		int lines = 0;

		while ((line = next_line(&p))) {
			json_t *j = json_loads(line, 0, NULL);

			assert_non_null(j);
			assert_non_null(json_string_value(
				json_object_get(j, "line")));
			assert_true(json_integer_value(
					    json_object_get(j, "t_ns")) > 0);
			assert_int_equal(
				strncmp(json_string_value(
						json_object_get(j, "container")),
					APP "-r", strlen(APP) + 2),
				0);
			json_decref(j);
			lines++;
		}
		assert_int_equal(lines, 4);
	}
	ml_test_out_release(&o);
}

/* ---- request numbers --------------------------------------------------- */

static void test_observe__status_rates_per_revision(void **s)
{
	struct load l;
	struct ml_loadgen_stats st;
	json_t *d, *r, *good, *bad;
	json_int_t good_rev, bad_rev;
	double t0, t1, sent_rate, got;
	long sent, failed;

	ML_UNUSED(s);
	/* a known load on a revision that fails nothing */
	load_start(&l);
	load_wait(&l, WINDOW_S + 3);
	t0 = now_s();
	d = status_json("30s");
	t1 = now_s();
	good_rev = current_revision(d);
	r = rev_metrics(d, good_rev);
	assert_non_null(r);
	/* what was answered in the window the agent counted (ended
	 * mid-call): both count a request when it ends */
	sent = load_between(&l, (t0 + t1) / 2 - WINDOW_S, (t0 + t1) / 2,
			    &failed);
	sent_rate = (double)sent / WINDOW_S;
	got = json_number_value(json_object_get(r, "req_per_s"));
	fprintf(stderr,
		"revision %lld: status says %.2f req/s, the load sent %.2f "
		"req/s; error rate %.4f; p50 %.0f ms, p99 %.0f ms\n",
		(long long)good_rev, got, sent_rate,
		json_number_value(json_object_get(r, "error_rate")),
		json_number_value(json_object_get(r, "p50_ms")),
		json_number_value(json_object_get(r, "p99_ms")));
	fprintf(stderr, "  (%ld client-side failures in the window)\n", failed);
	assert_true(fabs(got - sent_rate) <= 0.10 * sent_rate);
	assert_true(json_number_value(json_object_get(r, "error_rate")) == 0);
	assert_true(json_number_value(json_object_get(r, "p50_ms")) > 0);
	assert_true(json_number_value(json_object_get(r, "p99_ms")) >=
		    json_number_value(json_object_get(r, "p50_ms")));
	/* per container too, and they add up to the revision */
	{
		json_t *h, *c;
		size_t i, k;
		double sum = 0;

		json_array_foreach(json_object_get(d, "hosts"), i, h)
			json_array_foreach(json_object_get(h, "containers"), k,
					   c)
				sum += json_number_value(json_object_get(
					json_object_get(c, "metrics"),
					"req_per_s"));
		assert_true(fabs(sum - got) < 0.01 + 0.001 * got);
	}
	json_decref(d);

	/* the load goes on while a revision failing 1 request in 10 rolls
	 * out, and a while after */
	commit_playbook(10, "fails-10-percent");
	run_ok((const char *const[]){ "deploy", NULL });
	load_wait(&l, WINDOW_S + 3);
	d = status_json("2m");
	bad_rev = current_revision(d);
	assert_true(bad_rev > good_rev);
	good = rev_metrics(d, good_rev);
	bad = rev_metrics(d, bad_rev);
	load_stop(&l, &st);
	assert_non_null(good);
	assert_non_null(bad);
	fprintf(stderr,
		"revision %lld: %lld requests, error rate %.4f; revision "
		"%lld: %lld requests, error rate %.4f\n",
		(long long)good_rev,
		(long long)json_integer_value(json_object_get(good, "requests")),
		json_number_value(json_object_get(good, "error_rate")),
		(long long)bad_rev,
		(long long)json_integer_value(json_object_get(bad, "requests")),
		json_number_value(json_object_get(bad, "error_rate")));
	assert_true(json_integer_value(json_object_get(bad, "requests")) >=
		    RATE * WINDOW_S / 2);
	assert_true(fabs(json_number_value(json_object_get(bad, "error_rate")) -
			 0.10) <= 0.03);
	assert_true(json_number_value(json_object_get(good, "error_rate")) ==
		    0);
	/* the rollout's record: each host's time to healthy, and what the
	 * clients got from each revision while it ran */
	{
		struct ml_test_out o;
		char num[24];
		json_t *sh, *nb, *hh;
		size_t i;

		snprintf(num, sizeof(num), "%lld", (long long)bad_rev);
		mlctl(&o, (const char *const[]){ "show", num, "--json", NULL });
		ml_test_must(&o, 0);
		sh = json_loads(o.out, 0, NULL);
		ml_test_out_release(&o);
		nb = json_object_get(sh, "numbers");
		assert_int_equal(json_array_size(json_object_get(nb, "hosts")),
				 4);
		json_array_foreach(json_object_get(nb, "hosts"), i, hh)
			assert_true(json_integer_value(json_array_get(
					    json_object_get(hh,
							    "healthy_after_ms"),
					    0)) > 0);
		assert_true(json_array_size(json_object_get(nb, "requests")) >=
			    1);
		fprintf(stderr, "show %s: %s\n", num,
			json_string_value(json_array_get(
				json_object_get(nb, "requests"), 0)));
		json_decref(sh);
		mlctl(&o, (const char *const[]){ "show", num, NULL });
		ml_test_must(&o, 0);
		assert_non_null(strstr(o.out, "TIME TO HEALTHY"));
		assert_non_null(strstr(o.out, "what clients got during the "
					      "rollout"));
		ml_test_out_release(&o);
	}

	/* what the clients saw: the HTTP errors are the bad revision's 500s
	 * (on a machine this busy some requests also time out in the
	 * client; those are not HTTP answers) */
	assert_true(labs(st.http_errors -
			 (long)json_integer_value(
				 json_object_get(bad, "http_5xx"))) <=
		    st.sent / 50 + 2);
	json_decref(d);
}

static void test_observe__status_watch_redraws_until_ctrl_c(void **s)
{
	char *out = ml_xasprintf("%s/watch.out", F.state);
	char *err = ml_xasprintf("%s/watch.err", F.state);
	char *text, *p;
	int st, views = 0;
	pid_t pid;

	ML_UNUSED(s);
	pid = spawn_mlctl(out, err,
			  (const char *const[]){ "status", "--watch", NULL });
	sleep(10);
	st = interrupt_and_wait(pid, 10);
	text = ml_test_slurp(out);
	for (p = text; (p = strstr(p, "per revision")); p++)
		views++;
	fprintf(stderr, "status --watch: %d views in 10 s\n", views);
	assert_int_equal(st, 0);
	assert_true(views >= 2);
	free(text);
	free(out);
	free(err);
}

/* ---- log rotation ------------------------------------------------------ */

static void test_observe__log_files_stay_under_the_cap(void **s)
{
	static const char flood_pb[] =
		"app: obs-flood\n"
		"image:\n  build: {context: flood, dockerfile: Dockerfile}\n"
		"port: 8100\n"
		"health: {path: /healthz, interval: 500ms, timeout: 400ms,"
		" start_period: 5s}\n"
		"resources: {cpus: 0.5}\n"
		"targets: [vm4]\n"
		"logs: {max_size: 256k, max_files: 2}\n";
	/* httpd in the background, then a shell printing numbered lines as
	 * fast as it can, for ever */
	static const char flood_df[] =
		"FROM mlctl-test/busybox:latest\n"
		"COPY healthz /www/healthz\n"
		"CMD [\"/bin/sh\", \"-c\", \"/bin/busybox httpd -p 8100 -h "
		"/www; i=0; while :; do i=$((i+1)); printf 'flood %d "
		"\\\\033[2J xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\\\n' "
		"$i; done\"]\n";
	struct ml_test_out o;
	char *p, *id = NULL, *line, *save = NULL, *fl;
	long total = 0, files = 0, size, last = 0;
	json_t *d, *h, *c;
	size_t i, k;

	ML_UNUSED(s);
	ml_test_write(F.repo, "flood.yaml", flood_pb);
	ml_test_write(F.repo, "flood/Dockerfile", flood_df);
	ml_test_write(F.repo, "flood/healthz", "ok\n");
	free(ml_test_commit(F.repo, "flood"));
	/* a ledger of its own: a rollback never mixes the two apps up */
	fl = ml_xasprintf("%s/flood.db", F.state);
	run_ok((const char *const[]){ "--ledger", fl, "-f", "flood.yaml",
				      "deploy", NULL });
	sleep(20);

	mlctl(&o, (const char *const[]){ "--ledger", fl, "-f", "flood.yaml",
					 "status", "--json", NULL });
	ml_test_must(&o, 0);
	d = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	json_array_foreach(json_object_get(d, "hosts"), i, h)
		json_array_foreach(json_object_get(h, "containers"), k, c)
			id = ml_xstrdup(
				json_string_value(json_object_get(c, "id")));
	json_decref(d);
	assert_non_null(id);

	/* what it printed: its last line's number times the line's size */
	mlctl(&o, (const char *const[]){ "--ledger", fl, "-f", "flood.yaml",
					 "logs", "--tail", "1", NULL });
	ml_test_must(&o, 0);
	p = strstr(o.out, "| flood ");
	assert_non_null(p);
	last = strtol(p + strlen("| flood "), NULL, 10);
	/* the terminal control it prints reaches no terminal */
	assert_non_null(strstr(o.out, " \\x1b[2J "));
	assert_null(strchr(o.out, '\033'));
	ml_test_out_release(&o);

	/* the log files on the VM */
	p = ml_xasprintf("/var/lib/docker/containers/%s", id);
	ml_test_fleet(&o, F.dir,
		      (const char *const[]){ "exec", "vm4", "--", "find", p,
					     "-name", "*-json.log*", "-printf",
					     "%s %p\\n", NULL });
	save = o.out;
	while ((line = next_line(&save))) {
		size = strtol(line, NULL, 10);
		fprintf(stderr, "  %s\n", line);
		total += size;
		files++;
	}
	ml_test_out_release(&o);
	fprintf(stderr,
		"flood: %ld lines (about %ld KiB of output) in 20 s; log "
		"files: %ld, %ld KiB in all (cap 2 x 256 KiB)\n",
		last, last * 60 / 1024, files, total / 1024);
	/* it wrote far more than the cap, which rotation kept */
	assert_true(last * 60 > 4 * 512 * 1024);
	assert_true(files >= 1 && files <= 2);
	assert_true(total <= 2 * 256 * 1024 + 4096);

	run_ok((const char *const[]){ "--ledger", fl, "-f", "flood.yaml",
				      "remove", NULL });
	free(fl);
	free(p);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_observe__logs_follow_across_a_deploy),
		cmocka_unit_test(test_observe__logs_unknown_host_and_bad_since),
		cmocka_unit_test(test_observe__status_rates_per_revision),
		cmocka_unit_test(test_observe__status_watch_redraws_until_ctrl_c),
		cmocka_unit_test(test_observe__log_files_stay_under_the_cap),
	};

	return cmocka_run_group_tests_name("e2e/observe", tests, group_setup,
					   group_teardown);
}
