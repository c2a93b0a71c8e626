/*
 * End-to-end tests of `mlctl plan` on the simulated fleet (three app VMs
 * and lb1): the plan is asked of the real agents (sshd, dockerd, HAProxy)
 * and checked against what the next deploy then does, from the deploy's
 * own record in the ledger (`mlctl show N --json`): for each host the
 * containers started and stopped, and the bytes delivered. Then: a
 * converged fleet plans "no changes" (exit 0 with --detailed-exitcode, 2
 * after a commit); `rollback N --plan` changes neither the ledger nor a
 * container; a host that does not answer is named and the exit is not 0.
 *
 * The busybox example app (tests/support/app.h); its model.txt is a layer
 * of its own, so a commit that changes it changes the image.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/proc.h"

#include <jansson.h>

#define APP "plan-api"

static const char *const vms[] = { "vm1", "vm2", "vm3" };

static struct {
	struct ml_test_app app;
	bool deployed; /* the first case deployed v1 */
} F;

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	return ml_test_app_mlctl(o, &F.app, NULL, args);
}

static void playbook(void)
{
	ml_test_write(F.app.repo, "mlctl.yaml",
		      "app: " APP "\n"
		      "image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		      "port: 8000\n"
		      "health: {path: /healthz, interval: 500ms, timeout: 400ms,"
		      " start_period: 3s}\n"
		      "replicas: 1\n"
		      "targets: [web]\n"
		      "rollout: {batch: 2, drain_timeout: 1s}\n"
		      "load_balancer: {hosts: [lb], listen: 8094}\n");
}

static char *commit_model(int score, const char *msg)
{
	char *model = ml_xasprintf("great %d\ngood 2\nbad -2\n", score);

	ml_test_write(F.app.repo, "model.txt", model);
	free(model);
	return ml_test_commit(F.app.repo, msg);
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
	if (ml_test_fleet(&o, F.app.fleet_dir, args) == 0 && o.status == 0)
		out = ml_xstrdup(o.out);
	ml_test_out_release(&o);
	return out;
}

/* Every container of the app on a VM with its state, from Docker. */
static char *vm_containers(const char *vm)
{
	char *t = vm_out(vm, (const char *const[]){
		"docker", "ps", "-a", "--no-trunc", "--format",
		"{{.ID}} {{.State}} {{.Image}}", "--filter",
		"label=mlctl.app=" APP, NULL });

	assert_non_null(t);
	return t;
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *doc = json_loads(text, 0, &e);

	if (!doc)
		print_error("not JSON (%s):\n%s\n", e.text, text);
	assert_non_null(doc);
	return doc;
}

static json_t *plan_host(json_t *plan, const char *host)
{
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(plan, "hosts"), i, h)
		if (!strcmp(json_string_value(json_object_get(h, "host")),
			    host))
			return h;
	fail_msg("no host %s in the plan", host);
	return NULL;
}

static const char *rep_field(json_t *h, const char *key)
{
	return json_string_value(json_object_get(
		json_array_get(json_object_get(h, "replicas"), 0), key));
}

/* The newest revision's number, from mlctl history --json. */
static int64_t newest_revision(void)
{
	struct ml_test_out o;
	json_t *doc;
	int64_t n;

	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	ml_test_must(&o, 0);
	doc = parse(o.out);
	n = json_integer_value(
		json_object_get(json_array_get(doc, 0), "revision"));
	if (!n)
		n = json_integer_value(
			json_object_get(json_array_get(doc, 0), "number"));
	json_decref(doc);
	ml_test_out_release(&o);
	return n;
}

/* Count the events of host with step and status "ok" in a show doc; the
 * detail of the last one into *detail (borrowed from doc). */
static int events(json_t *show, const char *host, const char *step,
		  const char **detail)
{
	json_t *e;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(show, "events"), i, e) {
		const char *h = json_string_value(json_object_get(e, "host"));
		const char *s = json_string_value(json_object_get(e, "step"));
		const char *st =
			json_string_value(json_object_get(e, "status"));

		if (h && s && st && !strcmp(h, host) && !strcmp(s, step) &&
		    !strcmp(st, "ok")) {
			n++;
			if (detail)
				*detail = json_string_value(
					json_object_get(e, "detail"));
		}
	}
	return n;
}

static int group_setup(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	if (ml_test_app_init(&F.app, "plan") < 0)
		return -1;
	playbook();
	free(commit_model(3, "v1"));
	/* what an interrupted run of this suite left on the fleet goes */
	mlctl(&o, (const char *const[]){ "remove", NULL });
	ml_test_out_release(&o);
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
	ml_test_app_release(&F.app);
	return 0;
}

/*
 * Before the first deploy every host is new and HAProxy starts; the plan
 * writes nothing (no container, no revision); after the deploy the plan
 * is "no changes" and --detailed-exitcode exits 0. --offline is the
 * desired state alone.
 */
static void test_plan__first_deploy_then_no_changes(void **s)
{
	struct ml_test_out o;
	size_t i;

	ML_UNUSED(s);
	mlctl(&o, (const char *const[]){ "plan", "--detailed-exitcode",
					  NULL });
	ml_test_must(&o, 2);
	for (i = 0; i < ML_ARRAY_SIZE(vms); i++) {
		char *line = ml_xasprintf("%s: r0 start a ", vms[i]);
		char *c;

		assert_non_null(strstr(o.out, line));
		free(line);
		c = vm_containers(vms[i]);
		assert_string_equal(c, ""); /* the plan started nothing */
		free(c);
	}
	assert_non_null(strstr(o.out, "new: not deployed here yet"));
	assert_non_null(strstr(o.out, "lb1: haproxy starts +vm1-0a"));
	assert_non_null(strstr(o.out, "nothing was changed"));
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "plan", "--offline", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "plan shows the desired state only"));
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	F.deployed = true;

	mlctl(&o, (const char *const[]){ "plan", "--detailed-exitcode",
					  NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "\nno changes\n"));
	assert_non_null(strstr(o.out, "lb1: haproxy unchanged"));
	ml_test_out_release(&o);
}

/*
 * vm2's container is removed by hand, and a commit changes the image.
 * The plan: vm1 and vm3 replace (the image changed), vm2 starts (it
 * drifted), each lacking the new layer's bytes, HAProxy unchanged. The
 * deploy then does exactly that, by its own record: a start and a stop
 * on vm1 and vm3, a start and no stop on vm2, the bytes delivered to each
 * host equal to the plan's, the balancer's configuration unchanged.
 */
static void test_plan__names_what_the_deploy_does(void **s)
{
	struct ml_test_out o;
	json_t *plan, *show;
	char *ids, *num;
	int64_t rev;
	size_t i;

	ML_UNUSED(s);
	assert_true(F.deployed);
	ids = vm_out("vm2", (const char *const[]){
		"docker", "ps", "-aq", "--filter", "label=mlctl.app=" APP,
		NULL });
	assert_non_null(ids);
	ids[strcspn(ids, "\n")] = 0;
	assert_true(*ids);
	free(vm_out("vm2", (const char *const[]){ "docker", "rm", "-f", ids,
						  NULL }));
	free(ids);
	free(commit_model(5, "v2: retrained"));

	mlctl(&o, (const char *const[]){ "plan", "--detailed-exitcode",
					  NULL });
	ml_test_must(&o, 2);
	fprintf(stderr, "--- the plan\n%s", o.out);
	assert_non_null(strstr(o.out, "vm2: r0 start a "));
	assert_non_null(strstr(o.out, "(drifted: its container is missing)"));
	assert_non_null(strstr(o.out, "vm1: r0 replace b "));
	assert_non_null(strstr(o.out, "(image sha256:"));
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "plan", "--json", NULL });
	ml_test_must(&o, 0);
	plan = parse(o.out);
	ml_test_out_release(&o);
	assert_true(json_is_true(json_object_get(plan, "changes")));
	assert_string_equal(
		json_string_value(json_object_get(plan, "lock_host")), "lb1");
	assert_string_equal(rep_field(plan_host(plan, "vm1"), "action"),
			    "replace");
	assert_string_equal(rep_field(plan_host(plan, "vm2"), "action"),
			    "start");
	assert_string_equal(rep_field(plan_host(plan, "vm3"), "action"),
			    "replace");
	assert_non_null(strstr(rep_field(plan_host(plan, "vm2"), "why"),
			       "drifted"));
	assert_false(json_is_true(json_object_get(
		json_array_get(json_object_get(plan, "load_balancers"), 0),
		"reload")));
	assert_true(json_integer_value(json_object_get(plan, "bytes")) > 0);

	mlctl(&o, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "lb-config    ok       unchanged"));
	ml_test_out_release(&o);
	rev = newest_revision();
	num = ml_xasprintf("%lld", (long long)rev);
	mlctl(&o, (const char *const[]){ "show", num, "--json", NULL });
	ml_test_must(&o, 0);
	show = parse(o.out);
	ml_test_out_release(&o);
	for (i = 0; i < ML_ARRAY_SIZE(vms); i++) {
		json_t *h = plan_host(plan, vms[i]);
		const char *act = rep_field(h, "action"), *detail = NULL;
		int64_t bytes = json_integer_value(json_object_get(h, "bytes"));
		long long sent = 0;
		char *want;

		assert_int_equal(events(show, vms[i], "start", NULL), 1);
		assert_int_equal(events(show, vms[i], "stop", NULL),
				 !strcmp(act, "replace") ? 1 : 0);
		if (bytes) {
			assert_int_equal(events(show, vms[i], "deliver",
						&detail),
					 1);
			assert_non_null(detail);
			want = ml_xasprintf(" blobs, %lld bytes ",
					    (long long)bytes);
			if (!strstr(detail, want))
				print_error("%s: plan %lld bytes, deploy "
					    "recorded '%s'\n",
					    vms[i], (long long)bytes, detail);
			assert_non_null(strstr(detail, want));
			free(want);
			sscanf(strstr(detail, "blobs, ") + 7, "%lld", &sent);
			fprintf(stderr, "%s: planned %lld bytes, sent %lld\n",
				vms[i], (long long)bytes, sent);
		} else {
			assert_int_equal(events(show, vms[i], "deliver", NULL),
					 0);
		}
	}
	json_decref(show);
	json_decref(plan);
	free(num);

	mlctl(&o, (const char *const[]){ "plan", "--detailed-exitcode",
					  NULL });
	ml_test_must(&o, 0);
	assert_non_null(strstr(o.out, "\nno changes\n"));
	ml_test_out_release(&o);
}

/* rollback --plan: what going back to revision 1 does, no bytes (the
 * hosts kept its image), and nothing changes: the same revisions in the
 * ledger, the same containers in the same states on every VM. */
static void test_plan__rollback_plan_changes_nothing(void **s)
{
	struct ml_test_out o;
	char *before[ML_ARRAY_SIZE(vms)], *hist;
	json_t *plan;
	size_t i;

	ML_UNUSED(s);
	assert_true(F.deployed);
	for (i = 0; i < ML_ARRAY_SIZE(vms); i++)
		before[i] = vm_containers(vms[i]);
	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	ml_test_must(&o, 0);
	hist = ml_xstrdup(o.out);
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "rollback", "1", "--plan", NULL });
	ml_test_must(&o, 0);
	fprintf(stderr, "--- the rollback's plan\n%s", o.out);
	assert_non_null(strstr(o.out, "plan: rollback to revision 1"));
	assert_non_null(strstr(o.out, "vm1: r0 replace a "));
	assert_non_null(strstr(o.out, " (0 bytes) to send"));
	ml_test_out_release(&o);

	mlctl(&o, (const char *const[]){ "rollback", "1", "--plan", "--json",
					  NULL });
	ml_test_must(&o, 0);
	plan = parse(o.out);
	assert_int_equal(json_integer_value(json_object_get(plan, "bytes")),
			 0);
	assert_string_equal(rep_field(plan_host(plan, "vm2"), "action"),
			    "replace");
	json_decref(plan);
	ml_test_out_release(&o);

	for (i = 0; i < ML_ARRAY_SIZE(vms); i++) {
		char *after = vm_containers(vms[i]);

		assert_string_equal(after, before[i]);
		free(after);
		free(before[i]);
	}
	mlctl(&o, (const char *const[]){ "history", "--json", NULL });
	ml_test_must(&o, 0);
	assert_string_equal(o.out, hist);
	ml_test_out_release(&o);
	free(hist);
}

/* A target that does not answer is named; the exit is not 0 and not 2
 * (ML_EHOST), and the hosts that answered are still planned. */
static void test_plan__unreachable_host_is_named(void **s)
{
	struct ml_test_out o;
	char *inv = ml_xasprintf("%s/inventory.yaml", F.app.repo);
	char *text = ml_test_slurp(inv), *more, *swapped, *p;

	ML_UNUSED(s);
	/* ghost: an address on the fleet's subnet that nothing holds */
	p = strstr(text, "  vm1:\n");
	assert_non_null(p);
	more = ml_xasprintf("%.*s  ghost:\n    address: 127.0.0.1\n    "
			    "ssh: {port: 1}\n%s",
			    (int)(p - text), text, p);
	/* the web group, whatever the fleet's size: [vm1, vm2, vm3, ...] */
	p = strstr(more, "hosts: [vm1, vm2, vm3");
	assert_non_null(p);
	swapped = ml_xasprintf("%.*shosts: [vm1, vm2, ghost%s",
			       (int)(p - more), more,
			       p + strlen("hosts: [vm1, vm2, vm3"));
	ml_test_write(F.app.repo, "inventory.yaml", swapped);
	free(ml_test_commit(F.app.repo, "a host that does not answer"));

	mlctl(&o, (const char *const[]){ "plan", "--detailed-exitcode",
					  NULL });
	fprintf(stderr, "--- the plan (exit %d)\n%s%s", o.status, o.out,
		o.err);
	/* the inventory as it was before any assertion: vm3 stays a target
	 * for the suite's teardown */
	ml_test_write(F.app.repo, "inventory.yaml", text);
	free(ml_test_commit(F.app.repo, "the inventory as it was"));
	assert_int_not_equal(o.status, 0);
	assert_int_not_equal(o.status, 2);
	assert_non_null(strstr(o.out, "ghost: unreachable: "));
	/* (a commit is a new image: its config names the commit) */
	assert_non_null(strstr(o.out, "vm1: r0 "));
	assert_non_null(strstr(o.out, "lb1: haproxy reloads +ghost-0a"));
	assert_non_null(strstr(o.err, "1 host did not answer"));
	ml_test_out_release(&o);

	free(text);
	free(more);
	free(swapped);
	free(inv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan__first_deploy_then_no_changes),
		cmocka_unit_test(test_plan__names_what_the_deploy_does),
		cmocka_unit_test(test_plan__rollback_plan_changes_nothing),
		cmocka_unit_test(test_plan__unreachable_host_is_named),
	};

	return cmocka_run_group_tests_name("e2e/plan", tests, group_setup,
					   group_teardown);
}
