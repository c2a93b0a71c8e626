/*
 * End-to-end tests of the relay of blobs between hosts (apply/relay.c,
 * agent/op_relay_*.c) on the simulated fleet, with the controller's
 * egress capped at 100 Mbit/s (`fleet egress`): a cold delivery of an
 * image with a weights layer of random bytes crosses the controller's
 * link once, every other host gets it from another host, every host has
 * the image (Docker checked each layer's digest on load), and no relay
 * key or authorized_keys line is left behind. Then one VM cannot reach the
 * others (`fleet isolate`): the delivery still succeeds, the controller
 * sends to that VM itself, and says so. The caps and the isolation are
 * undone at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/proc.h"

#include <jansson.h>
#include <unistd.h>

#define WEIGHTS_BYTES (24 << 20)

static struct {
	const char *dir;
	char *repo, *known_hosts, *ledger_env, *cache_env, *cache;
	int gen;
} F;

static json_t *deliver_json(char **err)
{
	const char *env[] = {F.ledger_env, F.cache_env, "MLCTL_RELAY=on", NULL};
	struct ml_test_out o;
	json_t *doc;

	ml_test_mlctl_kh(&o, F.repo, F.known_hosts, env,
			 (const char *const[]){"deliver", "--json", NULL});
	if (o.status != 0)
		print_error("deliver exited %d:\n%s%s\n", o.status, o.out,
			    o.err);
	assert_int_equal(o.status, 0);
	doc = json_loads(o.out, 0, NULL);
	*err = ml_xstrdup(o.err);
	ml_test_out_release(&o);
	assert_non_null(doc);
	return doc;
}

static void new_image(void)
{
	char *code = ml_xasprintf("generation %d\n", ++F.gen);

	ml_test_write_random(F.repo, "weights.bin", WEIGHTS_BYTES);
	ml_test_write(F.repo, "www/version", code);
	free(code);
	free(ml_test_commit(F.repo, "new weights"));
}

static int fleet(const char *const *args)
{
	return ml_test_fleet(NULL, F.dir, args);
}

/* Exit status of cmd in VM vm. */
static int vm_exec(const char *vm, const char *const *cmd)
{
	const char *args[16] = {"exec", vm, "--"};
	size_t n = 3, i;

	for (i = 0; cmd[i] && n + 1 < ML_ARRAY_SIZE(args); i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	return fleet(args);
}

/* Every host has the image and no relay key or line is left. */
static void check_hosts(json_t *doc)
{
	const char *id = json_string_value(json_object_get(doc, "image"));
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	{
		const char *vm = json_string_value(json_object_get(h, "host"));

		assert_true(json_is_true(json_object_get(h, "ok")));
		assert_int_equal(
			vm_exec(vm, (const char *const[]){"docker", "image",
							  "inspect", "--format",
							  "{{.Id}}", id, NULL}),
			0);
		/* grep exits 1: no line of ours in authorized_keys */
		assert_int_equal(
			vm_exec(vm,
				(const char *const[]){
					"grep", "-qs", "mlctl-relay:",
					"/root/.ssh/authorized_keys", NULL}),
			vm_exec(vm,
				(const char *const[]){
					"test", "-e",
					"/root/.ssh/authorized_keys", NULL}) ==
					0
				? 1
				: 2);
		assert_int_equal(vm_exec(vm,
					 (const char *const[]){
						 "sh", "-c",
						 "ls /var/lib/mlctl/relay/ "
						 "| grep -q [.]key",
						 NULL}),
				 1);
	}
}

static int group_setup(void **state)
{
	struct ml_test_out o;
	const char *env[] = {NULL, NULL, NULL};
	char *p, *inv;

	ML_UNUSED(state);
	F.dir = getenv("MLCTL_FLEET_DIR");
	if (!F.dir || !*F.dir) {
		print_error("MLCTL_FLEET_DIR is not set: run through "
			    "'make test'\n");
		return -1;
	}
	F.repo = ml_test_tmpdir("relay");
	F.cache = ml_xasprintf("%s.cache", F.repo);
	F.known_hosts = ml_xasprintf("%s/known_hosts", F.dir);
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", F.repo);
	F.cache_env = ml_xasprintf("MLCTL_CACHE_DIR=%s", F.cache);
	p = ml_xasprintf("%s/inventory.yaml", F.dir);
	inv = ml_test_slurp(p);
	free(p);
	free(ml_test_git(F.repo, (const char *const[]){"init", "-q", NULL}));
	ml_test_write(F.repo, "Dockerfile",
		      "FROM mlctl-test/busybox:latest\n"
		      "COPY weights.bin /model/weights.bin\n"
		      "COPY www/ /www/\n"
		      "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", "
		      "\"8000\", \"-h\", \"/www\"]\n");
	ml_test_write(F.repo, "mlctl.yaml",
		      "app: relay-test\n"
		      "image: {build: {context: .}}\n"
		      "port: 8000\n"
		      "targets: [web]\n");
	ml_test_write(F.repo, "inventory.yaml", inv);
	ml_test_write(F.repo, ".gitignore", "*.ledger*\n");
	free(inv);
	new_image();
	env[0] = F.ledger_env;
	env[1] = F.cache_env;
	ml_test_mlctl_kh(&o, F.repo, F.known_hosts, env,
			 (const char *const[]){"bootstrap", NULL});
	ml_test_out_release(&o);
	assert_int_equal(
		fleet((const char *const[]){"egress", "set", "100mbit", NULL}),
		0);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
	fleet((const char *const[]){"egress", "off", NULL});
	fleet((const char *const[]){"isolate", "vm3", "off", NULL});
	ml_test_ledger_remove(F.repo);
	ml_test_rmtree(F.repo);
	ml_test_rmtree(F.cache);
	free(F.repo);
	free(F.cache);
	free(F.known_hosts);
	free(F.ledger_env);
	free(F.cache_env);
	return 0;
}

static int64_t hint(json_t *h, const char *key)
{
	return json_integer_value(json_object_get(h, key));
}

static void test_relay__cold_crosses_the_link_once(void **s)
{
	json_t *doc, *h;
	int64_t sent = 0, relayed = 0, image;
	size_t i, n, nrelayed = 0;
	char *err = NULL;

	ML_UNUSED(s);
	doc = deliver_json(&err);
	image = json_integer_value(json_object_get(doc, "bytes"));
	n = json_array_size(json_object_get(doc, "hosts"));
	assert_true(n >= 3);
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	{
		sent += hint(h, "controller_bytes");
		assert_true(hint(h, "raw_bytes") >= WEIGHTS_BYTES);
		relayed += hint(h, "relayed_bytes");
		if (json_is_true(json_object_get(h, "relayed"))) {
			nrelayed++;
			assert_true(json_is_string(
				json_object_get(h, "relayed_from")));
		}
	}
	print_message("image %lld bytes; controller sent %lld, hosts "
		      "relayed %lld to %zu of %zu hosts\n",
		      (long long)image, (long long)sent, (long long)relayed,
		      nrelayed, n);
	/* the weights crossed the controller's link once */
	assert_true(sent >= WEIGHTS_BYTES);
	assert_true(sent < image + image / 10);
	assert_int_equal(nrelayed, n - 1);
	assert_true(relayed >= (int64_t)(n - 1) * WEIGHTS_BYTES);
	assert_non_null(strstr(err, "relay: "));
	/* cold: one pipelined round, every host passing the weights on as
	 * they arrive (MLCTL_RELAY_PIPELINE=off takes 1 + log2(n) rounds) */
	assert_non_null(strstr(err, " in 1 round, the first pipelined ("));
	check_hosts(doc);
	json_decref(doc);
	free(err);
}

static void test_relay__isolated_host_falls_back(void **s)
{
	json_t *doc, *h;
	size_t i;
	char *err = NULL;
	bool seen = false;

	ML_UNUSED(s);
	new_image();
	assert_int_equal(
		fleet((const char *const[]){"isolate", "vm3", "on", NULL}), 0);
	doc = deliver_json(&err);
	assert_int_equal(
		fleet((const char *const[]){"isolate", "vm3", "off", NULL}), 0);
	print_message("stderr: %s\n", err);
	assert_non_null(strstr(err, "to vm3 failed ("));
	assert_non_null(strstr(err, "the controller sends to vm3 directly"));
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	{
		const char *vm = json_string_value(json_object_get(h, "host"));

		if (strcmp(vm, "vm3"))
			continue;
		seen = true;
		assert_false(json_is_true(json_object_get(h, "relayed")));
		assert_true(hint(h, "controller_bytes") >= WEIGHTS_BYTES);
	}
	assert_true(seen);
	check_hosts(doc);
	json_decref(doc);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay__cold_crosses_the_link_once),
		cmocka_unit_test(test_relay__isolated_host_falls_back),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
