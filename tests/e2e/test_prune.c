/*
 * End-to-end tests of prune on the simulated fleet: twelve deploys of an
 * image whose weights layer (WEIGHTS_BYTES of random bytes) changes every
 * time, with `prune: {retain: 3}` and revision 2 pinned, on two app VMs,
 * vm3 and vm4 of the test fleet of four (enough to show that every host
 * is pruned, and cheap: the suite runs in about three minutes). Checked on each VM, from Docker's own image list
 * and the agent's blob store directory, not from mlctl's output: the
 * hosts hold exactly the images of the current, previous, last 3 and
 * pinned revisions; the blob store stops growing; an image and a stopped
 * container that are no mlctl app's stay. Then `mlctl rollback 2` sends
 * no image bytes (the VMs' interface counters), a rollback to a pruned
 * revision says so and sends the image again (from the cache, or built
 * again when the controller's Docker lost it too), and a prune while
 * another controller deploys is refused by the fleet lock.
 *
 * Real parts only: git, the controller's Docker building the image,
 * sshd, dockerd and the agent in the fleet's namespaces.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WEIGHTS_BYTES (2 << 20)
#define DEPLOYS 12
#define APP "prune-test"
#define NVMS 2

static const char *const vms[NVMS] = { "vm3", "vm4" };

static struct {
	const char *dir;
	char *repo, *known_hosts, *ledger_env, *cache_env, *cache;
	char *prefix;                /* the fleet's interface prefix */
	char *commit[DEPLOYS + 1];   /* commit of revision i */
	char *image[DEPLOYS + 1];    /* image id of revision i */
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	const char *env[] = { F.ledger_env, F.cache_env, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

/* Run argv in a VM; its stdout (caller frees), NULL when it failed. */
static char *vm_out(const char *vm, const char *const *cmd)
{
	const char *args[32] = { "exec", vm, "--" };
	struct ml_test_out o;
	size_t n = 3, i;
	char *out = NULL;

	for (i = 0; cmd[i] && n + 1 < ML_ARRAY_SIZE(args); i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	if (ml_test_fleet(&o, F.dir, args) == 0)
		out = ml_xstrdup(o.out);
	ml_test_out_release(&o);
	return out;
}

/* Is line (a whole line) in text? */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') &&
		    (p[n] == '\n' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The app's image tags on a VM, one per line, from Docker itself. */
static char *vm_app_tags(const char *vm)
{
	char *t = vm_out(vm, (const char *const[]){
		"docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
		"mlctl/" APP, NULL });

	assert_non_null(t);
	return t;
}

/* The blob store of a VM: one "sha256:<hex>" per line. */
static char *vm_blobs(const char *vm)
{
	char *t = vm_out(vm, (const char *const[]){
		"ls", "-1", "/var/lib/mlctl/blobs/sha256", NULL });
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	const char *p, *nl;

	assert_non_null(t);
	for (p = t; *p; p = *nl ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		if (nl > p)
			ml_buf_addf(&b, "sha256:%.*s\n", (int)(nl - p), p);
	}
	free(t);
	return ml_buf_detach(&b, NULL);
}

static int64_t vm_blob_bytes(const char *vm)
{
	char *t = vm_out(vm, (const char *const[]){
		"du", "-sb", "/var/lib/mlctl/blobs/sha256", NULL });
	int64_t n;

	assert_non_null(t);
	n = strtoll(t, NULL, 10);
	free(t);
	return n;
}

/* Bytes a VM has received: what the host side of its veth sent. */
static int64_t vm_rx(const char *vm)
{
	char *p = ml_xasprintf("/sys/class/net/%s-%s/statistics/tx_bytes",
			       F.prefix, vm);
	char *t = ml_test_slurp(p);
	int64_t n = strtoll(t, NULL, 10);

	free(t);
	free(p);
	return n;
}

/* The layers of an image, from the controller's Docker. */
static json_t *image_layers(const char *id)
{
	struct ml_test_out o;
	json_t *j;

	ml_test_run(&o, NULL, NULL, NULL, 60,
		    (const char *const[]){ "docker", "image", "inspect",
					   "--format",
					   "{{json .RootFS.Layers}}", id, NULL });
	assert_int_equal(o.status, 0);
	j = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	assert_true(json_is_array(j));
	return j;
}

static char *tag_of(int rev)
{
	return ml_xasprintf("mlctl/" APP ":%s", F.commit[rev]);
}

static void write_weights(void)
{
	ml_test_write_random(F.repo, "weights.bin", WEIGHTS_BYTES);
}

static json_t *history(void)
{
	struct ml_test_out o;
	json_t *doc;

	mlctl(&o, (const char *const[]){ "history", "--json", "--limit",
					 "100", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	ml_test_out_release(&o);
	assert_non_null(doc);
	return doc;
}

static json_t *revision_of(json_t *h, int rev)
{
	json_t *v;
	size_t i;

	json_array_foreach(h, i, v)
		if (json_integer_value(json_object_get(v, "number")) == rev)
			return v;
	return NULL;
}

/* Remove the app's images an earlier run left on the VMs: they belong to
 * another ledger, so prune rightly leaves them alone. */
static void vm_forget_app(void)
{
	size_t v;

	for (v = 0; v < NVMS; v++) {
		char *ids = vm_out(vms[v], (const char *const[]){
			"docker", "images", "-q", "mlctl/" APP, NULL });
		const char *p, *nl;

		for (p = ids ? ids : ""; *p; p = *nl ? nl + 1 : nl) {
			char *id;

			nl = p + strcspn(p, "\n");
			if (nl == p)
				continue;
			id = ml_xstrndup(p, (size_t)(nl - p));
			free(vm_out(vms[v], (const char *const[]){
				"docker", "rmi", "-f", id, NULL }));
			free(id);
		}
		free(ids);
	}
}

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *p, *env;

	ML_UNUSED(state);
	F.dir = getenv("MLCTL_FLEET_DIR");
	if (!F.dir || !*F.dir) {
		print_error("MLCTL_FLEET_DIR is not set: run through "
			    "'make test'\n");
		return -1;
	}
	p = ml_xasprintf("%s/env", F.dir);
	env = ml_test_slurp(p);
	free(p);
	p = strstr(env, "FLEET_PREFIX=");
	if (!p) {
		print_error("no FLEET_PREFIX in the fleet's env file\n");
		return -1;
	}
	p += strlen("FLEET_PREFIX=");
	F.prefix = ml_xstrndup(p, strcspn(p, "\n"));
	free(env);
	F.repo = ml_test_tmpdir("prune");
	F.cache = ml_xasprintf("%s.cache", F.repo);
	F.known_hosts = ml_xasprintf("%s/known_hosts", F.dir);
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", F.repo);
	F.cache_env = ml_xasprintf("MLCTL_CACHE_DIR=%s", F.cache);
	p = ml_xasprintf("%s/inventory.yaml", F.dir);
	env = ml_test_slurp(p);
	free(p);
	free(ml_test_git(F.repo, (const char *const[]){ "init", "-q", NULL }));
	ml_test_write(F.repo, "Dockerfile",
		      "FROM mlctl-test/busybox:latest\n"
		      "COPY weights.bin /model/weights.bin\n"
		      "COPY www/ /www/\n"
		      "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", "
		      "\"8000\", \"-h\", \"/www\"]\n");
	ml_test_write(F.repo, "www/healthz", "ok\n");
	ml_test_write(F.repo, "mlctl.yaml",
		      "app: " APP "\n"
		      "image: {build: {context: .}}\n"
		      "port: 8000\n"
		      "health: {path: /healthz, interval: 300ms, timeout: 300ms, "
		      "start_period: 5s}\n"
		      "targets: [vm3, vm4]\n"
		      "rollout: {batch: 2, drain_timeout: 1s}\n"
		      "prune: {retain: 3}\n");
	ml_test_write(F.repo, "inventory.yaml", env);
	ml_test_write(F.repo, ".gitignore", "*.ledger*\n");
	free(env);
	write_weights();
	free(ml_test_commit(F.repo, "the app, before its first deploy"));
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	vm_forget_app();
	if (o.status != 0) {
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
		ml_test_out_release(&o);
		return -1;
	}
	ml_test_out_release(&o);
	/* a bystander on vm3 that belongs to no mlctl app */
	free(vm_out("vm3", (const char *const[]){
		"docker", "tag", "mlctl-test/busybox:latest",
		"bystander/keep:1", NULL }));
	free(vm_out("vm3", (const char *const[]){
		"docker", "create", "--name", "prune-bystander",
		"bystander/keep:1", "true", NULL }));
	return 0;
}

static int group_teardown(void **state)
{
	struct ml_test_out o;
	int i;

	ML_UNUSED(state);
	mlctl(&o, (const char *const[]){ "remove", NULL });
	ml_test_out_release(&o);
	vm_forget_app();
	free(vm_out("vm3", (const char *const[]){
		"docker", "rm", "prune-bystander", NULL }));
	free(vm_out("vm3", (const char *const[]){
		"docker", "rmi", "bystander/keep:1", NULL }));
	/* the images this suite built in the controller's Docker: every
	 * tag of mlctl/prune-test (the race test's commit too) */
	ml_test_run(&o, NULL, NULL, NULL, 60,
		    (const char *const[]){ "docker", "images", "--format",
					   "{{.Repository}}:{{.Tag}}",
					   "mlctl/" APP, NULL });
	{
		const char *p, *nl;

		for (p = o.out ? o.out : ""; *p; p = *nl ? nl + 1 : nl) {
			struct ml_test_out r;
			char *t;

			nl = p + strcspn(p, "\n");
			if (nl == p)
				continue;
			t = ml_xstrndup(p, (size_t)(nl - p));
			ml_test_run(&r, NULL, NULL, NULL, 60,
				    (const char *const[]){ "docker", "rmi", t,
							   NULL });
			ml_test_out_release(&r);
			free(t);
		}
	}
	ml_test_out_release(&o);
	for (i = 1; i <= DEPLOYS; i++) {
		free(F.commit[i]);
		free(F.image[i]);
	}
	ml_test_ledger_remove(F.repo);
	ml_test_rmtree(F.repo);
	ml_test_rmtree(F.cache);
	free(F.repo);
	free(F.cache);
	free(F.prefix);
	free(F.known_hosts);
	free(F.ledger_env);
	free(F.cache_env);
	return 0;
}

/* What each VM holds is exactly the kept revisions' images and blobs. */
static void expect_kept(const int *keep, size_t nkeep)
{
	size_t v, k;
	int r;

	for (v = 0; v < NVMS; v++) {
		char *tags = vm_app_tags(vms[v]);
		char *blobs = vm_blobs(vms[v]);

		if (count_lines(tags) != nkeep)
			print_error("%s holds:\n%s", vms[v], tags);
		assert_int_equal(count_lines(tags), nkeep);
		for (r = 1; r <= DEPLOYS && F.commit[r]; r++) {
			char *t = tag_of(r);
			json_t *layers = image_layers(F.image[r]);
			bool want = false;

			for (k = 0; k < nkeep; k++)
				want |= keep[k] == r;
			if (has_line(tags, t) != want)
				print_error("%s: revision %d's image is %s\n",
					    vms[v], r,
					    want ? "missing" : "still there");
			assert_int_equal(has_line(tags, t), want);
			/* the config blob, and the weights layer (the one
			 * layer only this revision has) */
			assert_int_equal(has_line(blobs, F.image[r]), want);
			assert_int_equal(
				has_line(blobs,
					 json_string_value(json_array_get(
						 layers,
						 json_array_size(layers) - 2))),
				want);
			json_decref(layers);
			free(t);
		}
		free(tags);
		free(blobs);
	}
}

static void test_prune__twelve_deploys_keep_what_rollback_needs(void **s)
{
	struct ml_test_out o;
	int64_t bytes_at_6 = 0, bytes;
	time_t t0;
	json_t *h;
	int i;

	ML_UNUSED(s);
	for (i = 1; i <= DEPLOYS; i++) {
		char *msg = ml_xasprintf("weights %d", i);

		write_weights();
		F.commit[i] = ml_test_commit(F.repo, msg);
		free(msg);
		t0 = time(NULL);
		mlctl(&o, (const char *const[]){ "deploy", NULL });
		ml_test_must(&o, 0);
		ml_test_out_release(&o);
		fprintf(stderr, "deploy %d: %llds\n", i,
			(long long)(time(NULL) - t0));
		if (i == 2) {
			mlctl(&o, (const char *const[]){ "pin", "2", NULL });
			ml_test_must(&o, 0);
			assert_non_null(strstr(o.out, "revision 2 pinned"));
			ml_test_out_release(&o);
		}
		if (i == 6)
			bytes_at_6 = vm_blob_bytes("vm3");
	}
	h = history();
	for (i = 1; i <= DEPLOYS; i++) {
		json_t *r = revision_of(h, i);

		assert_non_null(r);
		assert_string_equal(json_string_value(json_object_get(
					    r, "outcome")),
				    "succeeded");
		F.image[i] = ml_xstrdup(json_string_value(
			json_object_get(r, "image_id")));
		assert_int_equal(json_is_true(json_object_get(r, "pinned")),
				 i == 2);
	}
	json_decref(h);

	/* current 12, previous 11, retained 12 11 10, pinned 2 */
	expect_kept((const int[]){ 12, 11, 10, 2 }, 4);
	/* the disk stops growing: the same four images as after deploy 6
	 * (6 5 4 2), give or take a small layer */
	bytes = vm_blob_bytes("vm3");
	fprintf(stderr, "vm3 blob store: %lld bytes after 6 deploys, %lld "
		"after %d\n", (long long)bytes_at_6, (long long)bytes,
		DEPLOYS);
	assert_true(bytes <= bytes_at_6 + WEIGHTS_BYTES / 4);
	assert_true(bytes >= bytes_at_6 - WEIGHTS_BYTES / 4);

	/* what belongs to no mlctl app stays */
	{
		char *t = vm_out("vm3", (const char *const[]){
			"docker", "ps", "-a", "--format", "{{.Names}}",
			NULL });

		assert_non_null(t);
		assert_true(has_line(t, "prune-bystander"));
		free(t);
		t = vm_out("vm3", (const char *const[]){
			"docker", "images", "--format",
			"{{.Repository}}:{{.Tag}}", NULL });
		assert_true(has_line(t, "bystander/keep:1"));
		free(t);
	}

	/* nothing left to do: a dry run finds nothing, and says so */
	mlctl(&o, (const char *const[]){ "prune", "--dry-run", "--json", NULL });
	ml_test_must(&o, 0);
	h = json_loads(o.out, 0, NULL);
	assert_non_null(h);
	assert_int_equal(json_integer_value(json_object_get(h, "bytes_freed")),
			 0);
	assert_int_equal(json_array_size(json_object_get(h, "hosts")), NVMS);
	json_decref(h);
	ml_test_out_release(&o);

	/* the history says which are pinned; unpin and pin again */
	mlctl(&o, (const char *const[]){ "history", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "pinned"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "unpin", "2", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "revision 2 unpinned"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "prune", "--dry-run", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "vm3: would prune 0 containers, 1 image"));
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "pin", "2", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "pin", "99", NULL });
	ml_test_must(&o, 11);
	ml_test_out_release(&o);
}

static void test_prune__rollback_to_pinned_sends_no_image_bytes(void **s)
{
	struct ml_test_out o;
	int64_t before[NVMS], after;
	size_t v;

	ML_UNUSED(s);
	for (v = 0; v < NVMS; v++)
		before[v] = vm_rx(vms[v]);
	mlctl(&o, (const char *const[]){ "rollback", "2", NULL });
	ml_test_must(&o, 0);
	assert_null(strstr(o.out, "was pruned"));
	ml_test_out_release(&o);
	for (v = 0; v < NVMS; v++) {
		after = vm_rx(vms[v]);
		fprintf(stderr, "%s received %lld bytes during rollback 2\n",
			vms[v], (long long)(after - before[v]));
		/* the protocol, never the image */
		assert_true(after - before[v] < WEIGHTS_BYTES / 4);
	}
}

static void test_prune__rollback_to_pruned_redelivers_and_says_so(void **s)
{
	struct ml_test_out o;
	int64_t before[NVMS], after;
	char *t;
	size_t v;

	ML_UNUSED(s);
	for (v = 0; v < NVMS; v++)
		before[v] = vm_rx(vms[v]);
	mlctl(&o, (const char *const[]){ "rollback", "5", NULL });
	ml_test_must(&o, 0);
	if (!strstr(o.out, "revision 5 was pruned from vm3, vm4: its image "
			   "is delivered again"))
		print_error("rollback said:\n%s%s\n", o.out, o.err);
	assert_non_null(strstr(o.out, "revision 5 was pruned from vm3, vm4: "
				      "its image is delivered again"));
	ml_test_out_release(&o);
	for (v = 0; v < NVMS; v++) {
		after = vm_rx(vms[v]);
		fprintf(stderr, "%s received %lld bytes during rollback 5\n",
			vms[v], (long long)(after - before[v]));
		assert_true(after - before[v] >= WEIGHTS_BYTES);
	}
	/* and it runs: revision 5's image is there again on every VM */
	for (v = 0; v < NVMS; v++) {
		char *tag = tag_of(5);

		t = vm_app_tags(vms[v]);
		assert_true(has_line(t, tag));
		free(t);
		free(tag);
	}

	/* gone from the controller's Docker as well: built again from its
	 * commit, and delivered */
	t = tag_of(6);
	ml_test_run(&o, NULL, NULL, NULL, 60,
		    (const char *const[]){ "docker", "rmi", t, NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	mlctl(&o, (const char *const[]){ "rollback", "6", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "the image of revision 6 is not in the "
				      "controller's Docker any more: building "
				      "it again from commit"));
	ml_test_out_release(&o);
	for (v = 0; v < NVMS; v++) {
		char *tags = vm_app_tags(vms[v]);

		assert_true(has_line(tags, t));
		free(tags);
	}
	free(t);
}

/* A prune while another controller deploys waits for, or is refused by,
 * the fleet lock; nothing the deploy sends or starts is removed. */
static void test_prune__refused_while_another_deploy_runs(void **s)
{
	const char *bin = getenv("MLCTL_BIN");
	char *def = NULL, *tag, *head;
	struct ml_test_out o;
	pid_t pid;
	int st, tries;
	bool held = false;

	ML_UNUSED(s);
	write_weights();
	free(ml_test_commit(F.repo, "weights during a prune"));
	if (!bin || !*bin)
		bin = def = ml_xasprintf("%s/bin/mlctl", ml_test_src());
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		putenv(F.ledger_env);
		putenv(F.cache_env);
		if (chdir(F.repo) < 0)
			_exit(126);
		execl(bin, bin, "--known-hosts", F.known_hosts, "deploy",
		      (char *)NULL);
		_exit(127);
	}
	for (tries = 0; tries < 100 && !held; tries++) {
		mlctl(&o, (const char *const[]){ "lock", "status", NULL });
		held = strstr(o.out, "deploy of") != NULL;
		ml_test_out_release(&o);
		if (!held)
			usleep(100000);
	}
	assert_true(held);
	mlctl(&o, (const char *const[]){ "prune", NULL });
	ml_test_must(&o, 8);
	assert_non_null(strstr(o.err, "locked"));
	ml_test_out_release(&o);
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(def);
	/* the deploy's image is on every VM, and runs */
	head = ml_test_git(F.repo,
			   (const char *const[]){ "rev-parse", "HEAD", NULL });
	tag = ml_xasprintf("mlctl/" APP ":%s", head);
	free(head);
	for (size_t v = 0; v < NVMS; v++) {
		char *t = vm_app_tags(vms[v]);

		assert_true(has_line(t, tag));
		free(t);
	}
	free(tag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_prune__twelve_deploys_keep_what_rollback_needs),
		cmocka_unit_test(
			test_prune__rollback_to_pinned_sends_no_image_bytes),
		cmocka_unit_test(
			test_prune__rollback_to_pruned_redelivers_and_says_so),
		cmocka_unit_test(test_prune__refused_while_another_deploy_runs),
	};

	return cmocka_run_group_tests_name("e2e/prune", tests, group_setup,
					   group_teardown);
}
