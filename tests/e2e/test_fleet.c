/*
 * End-to-end tests of reaching the fleet: bootstrap, status, unreachable
 * hosts, host key checks and the agent's protocol hygiene, on the simulated
 * fleet that tests/run brings up (MLCTL_FLEET_DIR: real network
 * namespaces, sshd, dockerd). Every test removes what it created: its
 * containers, its scratch repository, a link it took down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "common/io.h"
#include "common/proto.h"
#include "orchestrator/config/config.h"
#include "orchestrator/transport/transport.h"
#include "tests/support/proc.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <jansson.h>

struct fleet {
	const char *dir;   /* the fleet's directory */
	char *repo;        /* scratch git repo: example playbook + inventory */
	char *known_hosts; /* the fleet's known_hosts */
	char *ledger_env;
};

static struct fleet F;

static char *fleet_path(const char *name)
{
	return ml_xasprintf("%s/%s", F.dir, name);
}

static int fleet_cmd(const char *const *args, struct ml_test_out *keep)
{
	return ml_test_fleet(keep, F.dir, args);
}

static int mlctl(struct ml_test_out *o, const char *const *args)
{
	const char *env[] = { F.ledger_env, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

static json_t *host_entry(json_t *doc, const char *name)
{
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		if (!strcmp(json_string_value(json_object_get(h, "host")), name))
			return h;
	return NULL;
}

static int group_setup(void **state)
{
	struct ml_test_out o;
	char *pb, *inv, *invp;

	ML_UNUSED(state);
	F.dir = getenv("MLCTL_FLEET_DIR");
	if (!F.dir || !*F.dir) {
		print_error("MLCTL_FLEET_DIR is not set: run through "
			    "'make test', which starts the fleet\n");
		return -1;
	}
	F.repo = ml_test_tmpdir("fleet");
	F.known_hosts = fleet_path("known_hosts");
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", F.repo);
	invp = fleet_path("inventory.yaml");
	pb = ml_test_read_src("playbooks/example.yaml");
	inv = ml_test_slurp(invp);
	free(ml_test_git(F.repo, (const char *const[]){ "init", "-q", NULL }));
	ml_test_write(F.repo, "mlctl.yaml", pb);
	ml_test_write(F.repo, "inventory.yaml", inv);
	free(ml_test_commit(F.repo, "fleet e2e"));
	free(pb);
	free(inv);
	free(invp);

	/* every host gets the agent before the tests look at it */
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	char *ledger = F.ledger_env ? F.ledger_env + strlen("MLCTL_LEDGER=")
				    : NULL;

	ML_UNUSED(state);
	if (ledger) {
		char *wal = ml_xasprintf("%s-wal", ledger);
		char *shm = ml_xasprintf("%s-shm", ledger);

		unlink(ledger);
		unlink(wal);
		unlink(shm);
		free(wal);
		free(shm);
	}
	ml_test_rmtree(F.repo);
	free(F.repo);
	free(F.known_hosts);
	free(F.ledger_env);
	return 0;
}

static void test_fleet__bootstrap_is_idempotent(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	mlctl(&o, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("%s%s", o.out, o.err);
	assert_int_equal(o.status, 0);
	/* the agent is already there: nothing is copied again */
	assert_non_null(strstr(o.out, "up to date"));
	assert_null(strstr(o.out, "installed"));
	assert_non_null(strstr(o.out, "vm1"));
	assert_non_null(strstr(o.out, "lb1"));
	/* HAProxy is found on the load balancer */
	assert_non_null(strstr(o.out, "2."));
	ml_test_out_release(&o);
}

static const char *const app_vms[] = { "vm1", "vm2", "vm3" };

static void run_container(const char *vm, const char *name, const char *rev)
{
	char *lrev = ml_xasprintf("mlctl.revision=%s", rev);
	const char *args[] = {
		"exec", vm, "--", "docker", "run", "-d", "--name", name,
		"--label", "mlctl.app=sentiment-api", "--label", lrev,
		"--label", "mlctl.slot=a", "mlctl-test/busybox:latest",
		"/bin/busybox", "httpd", "-f", "-p", "8000", NULL
	};

	assert_int_equal(fleet_cmd(args, NULL), 0);
	free(lrev);
}

static void rm_container(const char *vm, const char *name)
{
	fleet_cmd((const char *const[]){ "exec", vm, "--", "docker", "rm",
					 "-f", name, NULL },
		  NULL);
}

static void test_fleet__status_shows_labelled_containers(void **state)
{
	struct ml_test_out o;
	json_t *doc, *h, *c;
	size_t i;

	ML_UNUSED(state);
	for (i = 0; i < ML_ARRAY_SIZE(app_vms); i++)
		run_container(app_vms[i], "e2e-status", "7");
	/* a container of another app is not ours to show */
	fleet_cmd((const char *const[]){ "exec", "vm1", "--", "docker", "run",
					 "-d", "--name", "e2e-other", "--label",
					 "mlctl.app=other",
					 "mlctl-test/busybox:latest",
					 "/bin/busybox", "sleep", "600", NULL },
		  NULL);

	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	if (o.status != 0)
		print_error("%s", o.err);
	assert_int_equal(o.status, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	for (i = 0; i < ML_ARRAY_SIZE(app_vms); i++) {
		h = host_entry(doc, app_vms[i]);
		assert_non_null(h);
		assert_true(json_is_true(json_object_get(h, "reachable")));
		assert_non_null(json_string_value(json_object_get(
			json_object_get(h, "docker"), "version")));
		/* ours is there, whatever other suites left */
		{
			json_t *e;
			size_t k;

			c = NULL;
			json_array_foreach(json_object_get(h, "containers"), k,
					   e)
				if (!strcmp(json_string_value(json_object_get(
						    e, "name")) ?: "",
					    "e2e-status"))
					c = e;
		}
		assert_non_null(c);
		assert_string_equal(json_string_value(json_object_get(c, "name")),
				    "e2e-status");
		assert_int_equal(json_integer_value(json_object_get(c, "revision")),
				 7);
		assert_string_equal(
			json_string_value(json_object_get(c, "state")),
			"running");
		assert_true(json_is_integer(json_object_get(c, "restarts")));
	}
	h = host_entry(doc, "lb1");
	assert_non_null(h);
	assert_true(json_is_true(json_object_get(h, "reachable")));
	json_decref(doc);
	ml_test_out_release(&o);

	/* the table says the same to a person */
	mlctl(&o, (const char *const[]){ "status", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "e2e-status"));
	assert_non_null(strstr(o.out, "running"));
	assert_null(strstr(o.out, "e2e-other"));
	ml_test_out_release(&o);

}

static int status_teardown(void **state)
{
	size_t i;

	ML_UNUSED(state);
	for (i = 0; i < ML_ARRAY_SIZE(app_vms); i++)
		rm_container(app_vms[i], "e2e-status");
	rm_container("vm1", "e2e-other");
	return 0;
}

static int link_teardown(void **state)
{
	ML_UNUSED(state);
	fleet_cmd((const char *const[]){ "link", "vm2", "up", NULL }, NULL);
	return 0;
}

static void test_fleet__unreachable_host_is_reported(void **state)
{
	struct ml_test_out o;
	json_t *doc, *h;
	const char *err;

	ML_UNUSED(state);
	assert_int_equal(fleet_cmd((const char *const[]){ "link", "vm2",
							  "down", NULL },
				   NULL),
			 0);
	mlctl(&o, (const char *const[]){ "status", "--json", "--timeout", "2s",
					 NULL });
	link_teardown(NULL);
	assert_int_equal(o.status, 6);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	h = host_entry(doc, "vm2");
	assert_non_null(h);
	assert_true(json_is_false(json_object_get(h, "reachable")));
	err = json_string_value(json_object_get(h, "error"));
	assert_non_null(err);
	assert_non_null(strstr(err, "vm2"));
	/* the others still report */
	assert_true(json_is_true(json_object_get(host_entry(doc, "vm1"),
						 "reachable")));
	assert_true(json_is_true(json_object_get(host_entry(doc, "vm3"),
						 "reachable")));
	json_decref(doc);
	ml_test_out_release(&o);

	/* and once the link is back, so is the host */
	mlctl(&o, (const char *const[]){ "status", "--json", NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
}

static void test_fleet__unknown_host_keys_refused_tofu_on_request(void **state)
{
	char *kh = ml_xasprintf("%s.kh", F.repo);
	const char *env[] = { F.ledger_env, NULL };
	struct ml_test_out o;
	struct ml_buf b = ML_BUF_INIT(0);
	FILE *fp;

	ML_UNUSED(state);
	fp = fopen(kh, "w");
	assert_non_null(fp);
	fclose(fp);
	ml_test_mlctl(&o, F.repo, env,
		      (const char *const[]){ "--known-hosts", kh, "status",
					     NULL });
	assert_int_equal(o.status, 6);
	assert_non_null(strstr(o.err, "not known"));
	assert_non_null(strstr(o.err, "--trust-new-hosts"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, F.repo, env,
		      (const char *const[]){ "--known-hosts", kh, "status",
					     "--trust-new-hosts", NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	assert_int_equal(ml_buf_read_file(&b, kh), 0);
	assert_true(b.len > 0);
	ml_buf_release(&b);

	/* learnt once, trusted after without the flag */
	ml_test_mlctl(&o, F.repo, env,
		      (const char *const[]){ "--known-hosts", kh, "status",
					     NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	unlink(kh);
	free(kh);
}

/* Talk to vm1's agent over real SSH and send it bad frames. */
static void test_fleet__agent_rejects_malformed_frames(void **state)
{
	static const char *const serve[] = { "/var/lib/mlctl/bin/mlctl-agent",
					     "serve", NULL };
	struct ml_inventory *inv = NULL;
	struct ml_diags diags = { 0 };
	struct ml_buf ib = ML_BUF_INIT(0), payload = ML_BUF_INIT(2u << 20);
	struct ml_ssh_opts so = { 0 };
	struct ml_ssh *s = NULL;
	struct ml_ssh_chan *ch = NULL;
	struct ml_io *io;
	char *invp = fleet_path("inventory.yaml"), *key;
	const char *addr = NULL;
	uint64_t id = 1;
	json_t *res = NULL, *msg = NULL;
	uint32_t be;
	char type;
	int status = -1;
	size_t i;

	ML_UNUSED(state);
	assert_int_equal(ml_buf_read_file(&ib, invp), 0);
	assert_int_equal(ml_inventory_parse(&inv, "inventory.yaml", ib.data,
					    ib.len, &diags),
			 0);
	for (i = 0; i < inv->nhosts; i++)
		if (!strcmp(inv->hosts[i].name, "vm1"))
			addr = inv->hosts[i].address;
	assert_non_null(addr);
	key = fleet_path("id_ed25519");
	so.host = "vm1";
	so.address = addr;
	so.user = "root";
	so.identity_file = key;
	so.known_hosts = F.known_hosts;
	so.ssh_config = "none";
	so.command_timeout_ms = 20000;
	assert_int_equal(ml_ssh_connect(&s, &so), 0);
	assert_int_equal(ml_ssh_exec(&ch, s, serve), 0);
	io = ml_ssh_chan_io(ch);

	/* requests before hello are refused, the agent goes on */
	assert_int_not_equal(ml_proto_call(io, &id, "list",
					   json_pack("{s:s}", "app", "x"),
					   &res),
			     0);
	assert_non_null(strstr(ml_err_msg(), "hello"));
	assert_int_equal(ml_proto_hello(io, &id, &res), 0);
	json_decref(res);

	/* not JSON: an error reply, and the session continues */
	assert_int_equal(ml_frame_write(io, ML_FRAME_JSON, "{nope", 5), 0);
	assert_int_equal(ml_proto_recv(io, &msg), 0);
	assert_true(json_is_false(json_object_get(msg, "ok")));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(msg, "error"), "code")),
			    "bad-request");
	json_decref(msg);

	/* an unknown operation */
	assert_int_not_equal(ml_proto_call(io, &id, "format-disk", NULL, &res),
			     0);
	assert_non_null(strstr(ml_err_msg(), "format-disk"));

	/* still alive and well */
	assert_int_equal(ml_proto_call(io, &id, "list",
				       json_pack("{s:s}", "app", "x"), &res),
			 0);
	json_decref(res);

	/* an oversized frame: a bad-frame reply, then the agent stops */
	be = htonl(0x7fffffffu);
	assert_int_equal(io->write(io->ctx, &be, 4), 0);
	assert_int_equal(io->write(io->ctx, "J", 1), 0);
	assert_int_equal(ml_frame_read(io, &type, &payload), 1);
	assert_int_equal(ml_proto_decode(&msg, payload.data, payload.len), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(msg, "error"), "code")),
			    "bad-frame");
	json_decref(msg);
	assert_int_equal(ml_ssh_chan_close(ch, &status), 0);
	assert_int_equal(status, 10);
	ml_ssh_free(s);
	ml_inventory_free(inv);
	ml_diags_release(&diags);
	ml_buf_release(&ib);
	ml_buf_release(&payload);
	free(invp);
	free(key);
}

/* Last: it changes vm3's host key, then learns the new one back. */
static void test_fleet__changed_host_key_is_refused(void **state)
{
	struct ml_test_out o;
	json_t *doc;
	const char *err;

	ML_UNUSED(state);
	assert_int_equal(fleet_cmd((const char *const[]){ "rekey", "vm3",
							  NULL },
				   NULL),
			 0);
	mlctl(&o, (const char *const[]){ "status", "--json",
					 "--trust-new-hosts", NULL });
	assert_int_equal(o.status, 6);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	err = json_string_value(json_object_get(host_entry(doc, "vm3"),
						"error"));
	assert_non_null(err);
	/* refused even with --trust-new-hosts: a changed key is never
	 * accepted on its own */
	assert_non_null(strstr(err, "CHANGED"));
	assert_true(json_is_true(json_object_get(host_entry(doc, "vm1"),
						 "reachable")));
	json_decref(doc);
	ml_test_out_release(&o);
}

/*
 * Put the fleet back as it was for later suites: learn vm3's new key into a
 * fresh file, then use that as the fleet's known_hosts.
 */
static int rekey_teardown(void **state)
{
	char *kh = ml_xasprintf("%s.kh2", F.repo);
	const char *env[] = { F.ledger_env, NULL };
	struct ml_test_out o;
	int st;

	ML_UNUSED(state);
	unlink(kh);
	ml_test_mlctl(&o, F.repo, env,
		      (const char *const[]){ "--known-hosts", kh, "status",
					     "--trust-new-hosts", NULL });
	st = o.status;
	ml_test_out_release(&o);
	if (st == 0 && rename(kh, F.known_hosts) == 0) {
		free(kh);
		return 0;
	}
	print_error("could not learn vm3's new host key back (%d)\n", st);
	free(kh);
	return -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fleet__bootstrap_is_idempotent),
		cmocka_unit_test_teardown(
			test_fleet__status_shows_labelled_containers,
			status_teardown),
		cmocka_unit_test_teardown(
			test_fleet__unreachable_host_is_reported,
			link_teardown),
		cmocka_unit_test(
			test_fleet__unknown_host_keys_refused_tofu_on_request),
		cmocka_unit_test(test_fleet__agent_rejects_malformed_frames),
		cmocka_unit_test_teardown(test_fleet__changed_host_key_is_refused,
					  rekey_teardown),
	};

	return cmocka_run_group_tests_name("e2e/fleet", tests, group_setup,
					   group_teardown);
}
