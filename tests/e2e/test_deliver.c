/*
 * End-to-end tests of image delivery on the simulated fleet: cold,
 * incremental (a code-only change) and no-op delivery, an interrupted
 * transfer that resumes, a corrupted blob that is never loaded, a full disk
 * on one VM that leaves its previous images intact, and a build context
 * with an entry escaping its root. The image is built by the controller's
 * Docker Engine from a real git repository: a "weights" layer of random
 * bytes and a small code layer on the fleet's busybox base.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEIGHTS_BYTES (8 << 20)

static struct {
	const char *dir;
	char *repo, *known_hosts, *ledger_env, *cache_env, *cache;
	int gen; /* bumps the weights or code so every test has new blobs */
} F;

static int mlctl_env(struct ml_test_out *o, const char *extra,
		     const char *const *args)
{
	const char *env[] = { F.ledger_env, F.cache_env, extra, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

static json_t *deliver_json(int want_status, const char *extra)
{
	struct ml_test_out o;
	json_t *doc;

	mlctl_env(&o, extra,
		  (const char *const[]){ "deliver", "--json", NULL });
	if (o.status != want_status)
		print_error("deliver exited %d (wanted %d):\n%s%s\n", o.status,
			    want_status, o.out, o.err);
	assert_int_equal(o.status, want_status);
	doc = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	assert_non_null(doc);
	return doc;
}

static void write_weights(void)
{
	ml_test_write_random(F.repo, "weights.bin", WEIGHTS_BYTES);
}

static void write_code(void)
{
	char *code = ml_xasprintf("generation %d\n", ++F.gen);

	ml_test_write(F.repo, "www/healthz", "ok\n");
	ml_test_write(F.repo, "www/version", code);
	free(code);
}

static int64_t host_int(json_t *doc, size_t i, const char *key)
{
	return json_integer_value(json_object_get(
		json_array_get(json_object_get(doc, "hosts"), i), key));
}

/* Run cmd (argv) inside a VM of the fleet; its exit status. */
static int fleet_exec(const char *vm, const char *const *cmd)
{
	const char *args[32] = { "exec", vm, "--" };
	size_t n = 3, i;

	for (i = 0; cmd[i] && n + 1 < ML_ARRAY_SIZE(args); i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	return ml_test_fleet(NULL, F.dir, args);
}

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *p, *inv;

	ML_UNUSED(state);
	F.dir = getenv("MLCTL_FLEET_DIR");
	if (!F.dir || !*F.dir) {
		print_error("MLCTL_FLEET_DIR is not set: run through "
			    "'make test'\n");
		return -1;
	}
	/* this suite is about the controller's own sending (byte counts per
	 * host, a kill after N bytes sent): no relay between hosts, which
	 * e2e/test_relay covers */
	setenv("MLCTL_RELAY", "off", 1);
	F.repo = ml_test_tmpdir("deliver");
	F.cache = ml_xasprintf("%s.cache", F.repo);
	F.known_hosts = ml_xasprintf("%s/known_hosts", F.dir);
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", F.repo);
	F.cache_env = ml_xasprintf("MLCTL_CACHE_DIR=%s", F.cache);
	p = ml_xasprintf("%s/inventory.yaml", F.dir);
	inv = ml_test_slurp(p);
	free(p);
	free(ml_test_git(F.repo, (const char *const[]){ "init", "-q", NULL }));
	ml_test_write(F.repo, "Dockerfile",
		      "FROM mlctl-test/busybox:latest\n"
		      "COPY weights.bin /model/weights.bin\n"
		      "COPY www/ /www/\n"
		      "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", "
		      "\"8000\", \"-h\", \"/www\"]\n");
	ml_test_write(F.repo, "mlctl.yaml",
		      "app: deliver-test\n"
		      "image: {build: {context: .}}\n"
		      "port: 8000\n"
		      "targets: [web]\n");
	ml_test_write(F.repo, "inventory.yaml", inv);
	ml_test_write(F.repo, ".gitignore", "*.ledger*\n");
	write_weights();
	write_code();
	free(ml_test_commit(F.repo, "weights and code"));
	free(inv);
	mlctl_env(&o, NULL, (const char *const[]){ "bootstrap", NULL });
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	ML_UNUSED(state);
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

static void test_deliver__cold_incremental_noop(void **s)
{
	json_t *cold, *inc, *noop;
	size_t i, n;

	ML_UNUSED(s);
	cold = deliver_json(0, NULL);
	n = json_array_size(json_object_get(cold, "hosts"));
	assert_true(n >= 3);
	for (i = 0; i < n; i++) {
		/* config, base, weights, code */
		assert_true(host_int(cold, i, "blobs_sent") >= 3);
		assert_true(host_int(cold, i, "raw_bytes") >= WEIGHTS_BYTES);
		/* random weights do not compress: the wire carries about
		 * the same, never much more */
		assert_true(host_int(cold, i, "wire_bytes") <
			    host_int(cold, i, "raw_bytes") * 102 / 100 + 4096);
	}

	/* a code-only change: the code layer and the config, nothing else */
	write_code();
	free(ml_test_commit(F.repo, "code only"));
	inc = deliver_json(0, NULL);
	for (i = 0; i < n; i++) {
		assert_int_equal(host_int(inc, i, "blobs_sent"), 2);
		assert_true(host_int(inc, i, "raw_bytes") < 64 * 1024);
		assert_true(json_is_true(json_object_get(
			json_array_get(json_object_get(inc, "hosts"), i),
			"loaded")));
	}

	/* the same again: nothing moves */
	noop = deliver_json(0, NULL);
	for (i = 0; i < n; i++) {
		assert_int_equal(host_int(noop, i, "blobs_sent"), 0);
		assert_int_equal(host_int(noop, i, "raw_bytes"), 0);
		assert_true(json_is_false(json_object_get(
			json_array_get(json_object_get(noop, "hosts"), i),
			"loaded")));
	}
	json_decref(cold);
	json_decref(inc);
	json_decref(noop);
}

static void test_deliver__interrupted_transfer_resumes(void **s)
{
	struct ml_test_out o;
	json_t *doc;
	size_t i, n;

	ML_UNUSED(s);
	write_weights();
	free(ml_test_commit(F.repo, "new weights"));
	/* kill -9 of the controller in the middle of the weights */
	mlctl_env(&o, "MLCTL_TEST_KILL_AFTER_BYTES=12000000",
		  (const char *const[]){ "deliver", NULL });
	assert_int_equal(o.status, 128 + SIGKILL);
	ml_test_out_release(&o);

	mlctl_env(&o, NULL,
		  (const char *const[]){ "-v", "deliver", "--json", NULL });
	if (o.status)
		print_error("%s", o.err);
	assert_int_equal(o.status, 0);
	/* at least one host had part of the blob and went on from there */
	assert_non_null(strstr(o.err, "resuming"));
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	n = json_array_size(json_object_get(doc, "hosts"));
	for (i = 0; i < n; i++) {
		assert_true(json_is_true(json_object_get(
			json_array_get(json_object_get(doc, "hosts"), i),
			"ok")));
		/* a resumed weights layer sends less than all of it */
		assert_true(host_int(doc, i, "raw_bytes") <
			    WEIGHTS_BYTES + 64 * 1024);
	}
	json_decref(doc);
	ml_test_out_release(&o);
}

/* Flip a byte in the middle of the biggest blob of the controller's cache
 * that is newer than any other (the weights just extracted). */
static void corrupt_newest_big_blob(void)
{
	char *dir = ml_xasprintf("%s/blobs/sha256", F.cache);
	struct ml_test_out o;
	int fd;
	char c;
	char path[4096];

	{
		const char *fargs[] = { "find", dir, "-type", "f", "-size",
					"+4M", "-newer", F.known_hosts,
					"-printf", "%T@ %p\n", NULL };

		ml_test_run(&o, NULL, NULL, NULL, 30, fargs);
	}
	assert_int_equal(o.status, 0);
	/* take the newest */
	{
		char *best = NULL, *line = o.out, *nl;
		double bt = -1;

		for (; line && *line; line = nl ? nl + 1 : NULL) {
			double t = strtod(line, NULL);
			char *sp = strchr(line, ' ');

			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (sp && t > bt) {
				bt = t;
				best = sp + 1;
			}
		}
		assert_non_null(best);
		snprintf(path, sizeof(path), "%s", best);
	}
	ml_test_out_release(&o);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, WEIGHTS_BYTES / 2), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, WEIGHTS_BYTES / 2), 1);
	close(fd);
	free(dir);
}

static void test_deliver__corrupted_blob_is_never_loaded(void **s)
{
	struct ml_test_out o;
	json_t *doc;
	size_t i, n;

	ML_UNUSED(s);
	write_weights();
	free(ml_test_commit(F.repo, "weights to corrupt"));
	/* fill the cache, then stop before the weights reach anyone */
	mlctl_env(&o, "MLCTL_TEST_KILL_AFTER_BYTES=1",
		  (const char *const[]){ "deliver", NULL });
	assert_int_equal(o.status, 128 + SIGKILL);
	ml_test_out_release(&o);
	corrupt_newest_big_blob();

	doc = deliver_json(1, NULL);
	n = json_array_size(json_object_get(doc, "hosts"));
	for (i = 0; i < n; i++) {
		json_t *h = json_array_get(json_object_get(doc, "hosts"), i);
		const char *err = json_string_value(json_object_get(h, "error"));

		assert_true(json_is_false(json_object_get(h, "ok")));
		assert_non_null(err);
		assert_non_null(strstr(err, "digest"));
		assert_true(json_is_false(json_object_get(h, "loaded")));
	}
	json_decref(doc);

	/* with a good cache again, it goes through */
	ml_test_rmtree(F.cache);
	doc = deliver_json(0, NULL);
	json_decref(doc);
}

static void test_deliver__full_disk_on_one_vm(void **s)
{
	static const char *const mnt[] = { "mount", "-t", "tmpfs", "-o",
					    "size=2m", "tmpfs",
					    "/var/lib/mlctl/blobs", NULL };
	static const char *const umnt[] = { "umount", "/var/lib/mlctl/blobs",
					     NULL };
	json_t *doc, *h;
	size_t i, n;
	const char *err;

	ML_UNUSED(s);
	assert_int_equal(fleet_exec("vm2", mnt), 0);
	write_weights();
	free(ml_test_commit(F.repo, "weights for a full disk"));
	doc = deliver_json(13, NULL);
	fleet_exec("vm2", umnt);
	n = json_array_size(json_object_get(doc, "hosts"));
	for (i = 0; i < n; i++) {
		h = json_array_get(json_object_get(doc, "hosts"), i);
		if (strcmp(json_string_value(json_object_get(h, "host")),
			   "vm2")) {
			assert_true(json_is_true(json_object_get(h, "ok")));
			continue;
		}
		assert_true(json_is_false(json_object_get(h, "ok")));
		err = json_string_value(json_object_get(h, "error"));
		assert_non_null(err);
		assert_non_null(strstr(err, "space"));
	}
	json_decref(doc);
	/* vm2's previous images are intact: the base is still there and a
	 * container still starts from it */
	{
		static const char *const run[] = {
			"docker", "run", "--rm", "mlctl-test/busybox:latest",
			"/bin/busybox", "true", NULL
		};

		assert_int_equal(fleet_exec("vm2", run), 0);
	}
	/* and with space again, vm2 catches up */
	doc = deliver_json(0, NULL);
	json_decref(doc);
}

/* A host that cannot be reached fails the delivery (exit 6) and says so,
 * while the others still get the image. */
static void test_deliver__unreachable_host_fails_the_delivery(void **s)
{
	static const char *const down[] = { "ip", "link", "set", "eth0", "down",
					     NULL };
	static const char *const up[] = { "ip", "link", "set", "eth0", "up",
					   NULL };
	json_t *doc, *h;
	size_t i;

	ML_UNUSED(s);
	write_code();
	free(ml_test_commit(F.repo, "code for an unreachable host"));
	assert_int_equal(fleet_exec("vm3", down), 0);
	{
		struct ml_test_out o;

		mlctl_env(&o, NULL,
			  (const char *const[]){ "deliver", "--json",
						 "--timeout", "2s", NULL });
		fleet_exec("vm3", up);
		if (o.status != 6)
			print_error("%s%s", o.out, o.err);
		assert_int_equal(o.status, 6);
		doc = json_loads(o.out, 0, NULL);
		ml_test_out_release(&o);
	}
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h) {
		bool is3 = !strcmp(json_string_value(json_object_get(h, "host")),
				   "vm3");

		assert_true(json_is_boolean(json_object_get(h, "ok")));
		assert_int_equal(json_is_true(json_object_get(h, "ok")), !is3);
		if (is3)
			assert_non_null(json_object_get(h, "error"));
	}
	json_decref(doc);
	doc = deliver_json(0, NULL);
	json_decref(doc);
}

static void test_deliver__hostile_build_context_is_refused(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	char *link = ml_xasprintf("%s/www/escape", F.repo);

	assert_int_equal(symlink("../../../../etc/shadow", link), 0);
	free(link);
	free(ml_test_commit(F.repo, "a link out of the context"));
	mlctl_env(&o, NULL, (const char *const[]){ "deliver", NULL });
	assert_int_not_equal(o.status, 0);
	assert_true(o.status < 128);
	assert_non_null(strstr(o.err, "escape"));
	ml_test_out_release(&o);
	{
		char *p = ml_xasprintf("%s/www/escape", F.repo);

		unlink(p);
		free(p);
	}
	free(ml_test_commit(F.repo, "link removed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver__cold_incremental_noop),
		cmocka_unit_test(test_deliver__interrupted_transfer_resumes),
		cmocka_unit_test(test_deliver__corrupted_blob_is_never_loaded),
		cmocka_unit_test(test_deliver__full_disk_on_one_vm),
		cmocka_unit_test(
			test_deliver__unreachable_host_fails_the_delivery),
		cmocka_unit_test(
			test_deliver__hostile_build_context_is_refused),
	};

	return cmocka_run_group_tests_name("e2e/deliver", tests, group_setup,
					   group_teardown);
}
