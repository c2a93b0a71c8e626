/*
 * Unit tests of orchestrator/config/playbook.c: what a valid playbook
 * becomes (defaults, shorthands, text of env values), and that problems
 * are all reported, each at its place, with nothing returned. The
 * data-driven cases in tests/data/config/ cover the messages one by one.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

static struct ml_playbook *parse_ok(const char *text)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;
	int rc = ml_playbook_parse(&pb, "mlctl.yaml", text, strlen(text), &d);

	if (rc != 0) {
		ml_diags_print(&d, stderr);
		fail_msg("playbook refused");
	}
	assert_int_equal(d.n, 0);
	assert_non_null(pb);
	ml_diags_release(&d);
	return pb;
}

/* Parse text that must fail; returns the printed diagnostics (freed by
 * the caller) and their number. */
static char *parse_bad(const char *text, size_t *n)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = (struct ml_playbook *)1;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(
		ml_playbook_parse(&pb, "mlctl.yaml", text, strlen(text), &d),
		ML_EINVALID);
	assert_null(pb);
	f = open_memstream(&out, &len);
	ml_diags_print(&d, f);
	fclose(f);
	*n = d.n;
	ml_diags_release(&d);
	return out;
}

static const char minimal[] = "app: api\n"
			      "image: api:1\n"
			      "port: 8000\n"
			      "targets: web\n";

static void test_playbook__defaults(void **state)
{
	struct ml_playbook *pb = parse_ok(minimal);

	(void)state;
	assert_string_equal(pb->file, "mlctl.yaml");
	assert_string_equal(pb->app, "api");
	assert_int_equal(pb->image.kind, ML_IMAGE_REF);
	assert_string_equal(pb->image.ref, "api:1");
	assert_null(pb->image.context);
	assert_int_equal(pb->port, 8000);
	assert_string_equal(pb->health.path, "/healthz");
	assert_int_equal(pb->health.interval_ms, 2000);
	assert_int_equal(pb->health.timeout_ms, 1000);
	assert_int_equal(pb->health.start_period_ms, 60000);
	assert_int_equal(pb->health.healthy_threshold, 1);
	assert_int_equal(pb->health.unhealthy_threshold, 3);
	assert_int_equal(pb->replicas, 1);
	assert_int_equal(pb->env.n, 0);
	assert_int_equal(pb->secrets.n, 0);
	assert_true(pb->resources.cpus == 0);
	assert_int_equal(pb->resources.memory_bytes, 0);
	assert_int_equal(pb->resources.gpus, 0);
	assert_int_equal(pb->targets.n, 1);
	assert_string_equal(pb->targets.v[0], "web");
	assert_int_equal(pb->targets.pos[0].line, 4);
	assert_int_equal(pb->targets.pos[0].col, 10);
	assert_int_equal(pb->rollout.batch_count, 1);
	assert_int_equal(pb->rollout.batch_percent, 0);
	assert_int_equal(pb->rollout.failure_budget, 0);
	assert_true(pb->rollout.auto_rollback);
	assert_int_equal(pb->rollout.drain_timeout_ms, 30000);
	assert_int_equal(pb->rollout.canary_n, 0);
	assert_int_equal(pb->lb.hosts.n, 0);
	assert_int_equal(pb->lb.listen_port, 80);
	assert_int_equal(pb->lb.balance, ML_BALANCE_ROUNDROBIN);
	assert_null(pb->lb.tls_cert);
	ml_playbook_free(pb);
}

static void test_playbook__everything(void **state)
{
	static const char text[] =
		"app: llm-serve\n"
		"image:\n"
		"  build:\n"
		"    context: svc\n"
		"    args: {CUDA: \"12.4\", N: 3}\n"
		"port: 8080\n"
		"health: {path: /v1/health, interval: 5s, timeout: 5s,\n"
		"         start_period: 10m, healthy_threshold: 2,\n"
		"         unhealthy_threshold: 4}\n"
		"replicas: 2\n"
		"env:\n"
		"  MODEL: llama\n"
		"  BATCH: 32\n"
		"  DEBUG: false\n"
		"  RATIO: 0.50\n"
		"  QUOTED: '007'\n"
		"  EMPTY: \"\"\n"
		"secrets: [HF_TOKEN, API_KEY]\n"
		"resources: {cpus: 1.5, memory: 2g, gpus: all}\n"
		"targets: [gpu, lb1]\n"
		"rollout: {batch: 25%, failure_budget: 2, auto_rollback: "
		"false,\n"
		"          drain_timeout: 1m30s, canary: [\"5%\", \"50%\"]}\n"
		"load_balancer:\n"
		"  hosts: [lb]\n"
		"  listen: 443\n"
		"  balance: leastconn\n"
		"  tls: {cert: APP_CERT, key: APP_KEY, redirect_http: 8080}\n";
	struct ml_playbook *pb = parse_ok(text);

	(void)state;
	assert_int_equal(pb->image.kind, ML_IMAGE_BUILD);
	assert_null(pb->image.ref);
	assert_string_equal(pb->image.context, "svc");
	assert_string_equal(pb->image.dockerfile, "Dockerfile");
	assert_int_equal(pb->image.build_args.n, 2);
	assert_string_equal(pb->image.build_args.v[0].key, "CUDA");
	assert_string_equal(pb->image.build_args.v[0].value, "12.4");
	assert_string_equal(pb->image.build_args.v[1].value, "3");
	assert_string_equal(pb->health.path, "/v1/health");
	assert_int_equal(pb->health.interval_ms, 5000);
	assert_int_equal(pb->health.timeout_ms, 5000); /* equal is fine */
	assert_int_equal(pb->health.start_period_ms, 600000);
	assert_int_equal(pb->health.healthy_threshold, 2);
	assert_int_equal(pb->health.unhealthy_threshold, 4);
	assert_int_equal(pb->replicas, 2);
	/* env values are text, as written, in file order */
	assert_int_equal(pb->env.n, 6);
	assert_string_equal(pb->env.v[0].key, "MODEL");
	assert_string_equal(pb->env.v[1].value, "32");
	assert_string_equal(pb->env.v[2].value, "false");
	assert_string_equal(pb->env.v[3].value, "0.50");
	assert_string_equal(pb->env.v[4].value, "007");
	assert_string_equal(pb->env.v[5].value, "");
	assert_int_equal(pb->secrets.n, 2);
	assert_string_equal(pb->secrets.v[1], "API_KEY");
	assert_true(pb->resources.cpus == 1.5);
	assert_int_equal(pb->resources.memory_bytes, 2LL << 30);
	assert_int_equal(pb->resources.gpus, -1);
	assert_int_equal(pb->targets.n, 2);
	assert_string_equal(pb->targets.v[1], "lb1");
	assert_int_equal(pb->rollout.batch_percent, 25);
	assert_int_equal(pb->rollout.batch_count, 0);
	assert_int_equal(pb->rollout.failure_budget, 2);
	assert_false(pb->rollout.auto_rollback);
	assert_int_equal(pb->rollout.drain_timeout_ms, 90000);
	assert_int_equal(pb->rollout.canary_n, 2);
	assert_int_equal(pb->rollout.canary_percent[0], 5);
	assert_int_equal(pb->rollout.canary_percent[1], 50);
	assert_int_equal(pb->lb.hosts.n, 1);
	assert_int_equal(pb->lb.listen_port, 443);
	assert_int_equal(pb->lb.balance, ML_BALANCE_LEASTCONN);
	assert_string_equal(pb->lb.tls_cert, "APP_CERT");
	assert_string_equal(pb->lb.tls_key, "APP_KEY");
	assert_int_equal(pb->lb.tls_redirect_port, 8080);
	ml_playbook_free(pb);
}

static void test_playbook__image_forms(void **state)
{
	struct ml_playbook *pb;

	(void)state;
	pb = parse_ok("app: a\nport: 1\ntargets: [w]\n"
		      "image: {ref: \"sha256:0123abcd\"}\n");
	assert_int_equal(pb->image.kind, ML_IMAGE_REF);
	assert_string_equal(pb->image.ref, "sha256:0123abcd");
	ml_playbook_free(pb);

	/* build with nothing to say: all defaults */
	pb = parse_ok("app: a\nport: 1\ntargets: [w]\nimage: {build: }\n");
	assert_int_equal(pb->image.kind, ML_IMAGE_BUILD);
	assert_string_equal(pb->image.context, ".");
	assert_string_equal(pb->image.dockerfile, "Dockerfile");
	ml_playbook_free(pb);

	pb = parse_ok("app: a\nport: 1\ntargets: [w]\n"
		      "image: {build: {dockerfile: gpu/Dockerfile}}\n");
	assert_string_equal(pb->image.context, ".");
	assert_string_equal(pb->image.dockerfile, "gpu/Dockerfile");
	ml_playbook_free(pb);
}

/* Sections written but left empty mean "the defaults". */
static void test_playbook__null_sections(void **state)
{
	struct ml_playbook *pb;

	(void)state;
	pb = parse_ok("app: a\nimage: a:1\nport: 1\ntargets: w\n"
		      "health:\nenv:\nsecrets:\nresources:\nrollout:\n");
	assert_int_equal(pb->health.interval_ms, 2000);
	assert_int_equal(pb->env.n, 0);
	assert_int_equal(pb->rollout.batch_count, 1);
	ml_playbook_free(pb);
}

/* Every problem is reported, not only the first, and each once. */
static void test_playbook__all_errors_reported(void **state)
{
	static const char text[] = "app: Bad_Name\n"
				   "image: {ref: a, build: {}}\n"
				   "port: 0\n"
				   "replicas: 100\n"
				   "helth: {}\n"
				   "env: {9X: 1}\n"
				   "secrets: [9Y]\n"
				   "resources: {memory: 1x}\n"
				   "rollout: {batch: 0, canary: [\"100%\"]}\n"
				   "load_balancer: {listen: 99999}\n";
	size_t n;
	char *out = parse_bad(text, &n);

	(void)state;
	assert_int_equal(n, 13);
	assert_non_null(strstr(out, "mlctl.yaml:1:1: error: missing required "
				    "key 'targets'\n"));
	assert_non_null(strstr(out, "mlctl.yaml:1:6: error: 'app' must be"));
	assert_non_null(strstr(out, "mlctl.yaml:2:8: error: 'image' must "
				    "have exactly one"));
	assert_non_null(strstr(out, "mlctl.yaml:3:7: error: 'port' must be "
				    "between 1 and 65535, got 0\n"));
	assert_non_null(strstr(out, "(did you mean 'health'?)"));
	assert_non_null(strstr(out, "'rollout.batch' must be between 1 and "));
	assert_non_null(strstr(out, "missing required key 'hosts' in "
				    "'load_balancer'"));
	assert_non_null(strstr(out, "'load_balancer.listen' must be between"));
	free(out);
}

static void test_playbook__yaml_problems_are_diagnostics(void **state)
{
	size_t n;
	char *out;

	(void)state;
	out = parse_bad("app: [unclosed\n", &n);
	assert_true(n >= 1);
	assert_non_null(strstr(out, "mlctl.yaml:"));
	free(out);
	out = parse_bad("", &n);
	assert_string_equal(out, "mlctl.yaml:1:1: error: the playbook is "
				 "empty (it needs at least 'app', 'image', "
				 "'port' and 'targets')\n");
	free(out);
	out = parse_bad("just a string\n", &n);
	assert_string_equal(out, "mlctl.yaml:1:1: error: the playbook must be "
				 "a mapping, got a string\n");
	free(out);
}

static void test_playbook__types(void **state)
{
	static const struct {
		const char *line;
		const char *msg;
	} cases[] = {
		{"port: 8000.0", "'port' must be a whole number, got '8000.0'"},
		{"port: +80", "'port' must be a decimal integer without sign"},
		{"port: null", "'port' must be an integer, got null"},
		{"port: 99999999999999999999999",
		 "'port' must be between 1 and 65535"},
		{"replicas: -1", "'replicas' must be between 1 and 64, got -1"},
		{"app: ~", "'app' must be a string, got null"},
		{"app: true", "'app' must be a string, got a boolean"},
		{"app: a-", NULL},
		{"app: -a", "'app' must be 1 to 63 lowercase"},
		{"app: 1234", NULL},
		{"rollout: {auto_rollback: True}",
		 "must be true or false, got 'True'"},
		{"rollout: {auto_rollback: \"true\"}",
		 "must be true or false, got a string"},
		{"rollout: {batch: \"3\"}",
		 "'rollout.batch' must be a number of hosts or a percentage"},
		{"rollout: {batch: 0%}", "between 1% and 100%, got '0%'"},
		{"rollout: {batch: 100%}", NULL},
		{"rollout: {canary: \"10%\"}",
		 "'rollout.canary' must be a sequence, got a string"},
		{"rollout: {canary: [\"10%\", \"10%\"]}",
		 "must be more than the step before it (10%)"},
		{"resources: {cpus: .inf}",
		 "'resources.cpus' must be a decimal"},
		{"resources: {cpus: 1e3}",
		 "'resources.cpus' must be a decimal"},
		{"resources: {cpus: 0.25}", NULL},
		{"resources: {gpus: -1}", "'resources.gpus' must be between 0"},
		{"resources: {gpus: 2}", NULL},
		{"resources: {memory: 6m}", NULL},
		{"resources: {memory: 5m}", "must be at least 6m"},
		{"health: {interval: 0s}",
		 "'health.interval' must be longer than 0"},
		{"health: {timeout: 0ms}", "'health.timeout' must be longer"},
		{"health: {path: \"/a b\"}",
		 "'health.path' must be a URL path"},
		{"health: {path: /ok?x=1}", NULL},
		{"env: {A: [1]}", "'env.A' must be a scalar, got a sequence"},
		{"secrets: [A, A]", "secret 'A' is listed twice"},
		{"targets: [w, w]", "'targets' lists 'w' twice"},
		{"image: \"a b\"", "'image' is not a valid image reference"},
		{"image: {build: {context: a/../..}}",
		 "'image.build.context' must be a relative path"},
		{"load_balancer: {hosts: []}",
		 "'load_balancer.hosts' must name at least one host"},
		{"load_balancer: {hosts: lb, tls: {cert: \"/a.pem\", key: K}}",
		 "'load_balancer.tls.cert' must be the name of a secret"},
		{"metrics: {user: u, password: \"pw 1\"}",
		 "'metrics.password' must be the name of a secret"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		struct ml_buf b = ML_BUF_INIT(0);
		struct ml_diags d = {0};
		struct ml_playbook *pb = NULL;
		const char *key = cases[i].line;
		size_t klen = strcspn(key, ":");
		const char *p = minimal;
		int rc;

		/* the minimal playbook with one key replaced or added */
		while (*p) {
			size_t l = strcspn(p, "\n");

			if (strncmp(p, key, klen) || p[klen] != ':')
				ml_buf_add(&b, p, l + 1);
			p += l + 1;
		}
		ml_buf_addf(&b, "%s\n", cases[i].line);
		rc = ml_playbook_parse(&pb, "mlctl.yaml", b.data, b.len, &d);
		if (!cases[i].msg) {
			if (rc != 0) {
				ml_diags_print(&d, stderr);
				fail_msg("'%s' refused", cases[i].line);
			}
		} else if (rc == 0 || d.n != 1 ||
			   !strstr(d.v[0].msg, cases[i].msg)) {
			ml_diags_print(&d, stderr);
			fail_msg("'%s': want one error \"%s\"", cases[i].line,
				 cases[i].msg);
		}
		ml_playbook_free(pb);
		ml_diags_release(&d);
		ml_buf_release(&b);
	}
}

/* Diagnostics already in the list stay, and a parse that adds none
 * succeeds although the list is not empty. */
static void test_playbook__diags_appended(void **state)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;

	(void)state;
	ml_diags_add(&d, "other.yaml", 1, 1, "earlier");
	assert_int_equal(ml_playbook_parse(&pb, "mlctl.yaml", minimal,
					   strlen(minimal), &d),
			 0);
	assert_non_null(pb);
	assert_int_equal(d.n, 1);
	ml_playbook_free(pb);
	ml_playbook_free(NULL);
	ml_diags_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_playbook__defaults),
		cmocka_unit_test(test_playbook__everything),
		cmocka_unit_test(test_playbook__image_forms),
		cmocka_unit_test(test_playbook__null_sections),
		cmocka_unit_test(test_playbook__all_errors_reported),
		cmocka_unit_test(test_playbook__yaml_problems_are_diagnostics),
		cmocka_unit_test(test_playbook__types),
		cmocka_unit_test(test_playbook__diags_appended),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
