/*
 * End-to-end tests of what mlctl keeps secret and closed, on the simulated
 * fleet with real sshd, dockerd and HAProxy:
 *   - a secret comes from the secrets file or MLCTL_SECRET_<NAME>, never
 *     from an operator's variable of the same name; it reaches the
 *     container as a 0400 file on a tmpfs owned by the image's user, and
 *     `docker inspect` shows no value; a changed value rolls the
 *     containers, and the value is in no label and no ledger;
 *   - containers are hardened by default (docker inspect shows each
 *     setting) and a root process in one cannot use a dropped capability;
 *     a crashed one comes back and `status` counts the restart;
 *   - a slot answers the balancer only (bound to the VM's fleet address,
 *     filter rules in DOCKER-USER), and remove takes the rules away;
 *   - the playbook relaxes a default by name;
 *   - an inventory giving an app host or a balancer an IPv6 address is
 *     refused (slots are bound and filtered on IPv4 addresses only);
 *   - TLS at the edge: a certificate and key made here by openssl (a CA of
 *     the test's own), given as secrets, stored 0600 on the LB, verified
 *     by curl against that CA; TLS 1.1 and non-forward-secret ciphers
 *     refused; plain HTTP redirected; a new certificate put in place by a
 *     deploy while open-loop HTTPS load runs, with no failed request;
 *   - the metrics listener asks for credentials from a secret (401/200),
 *     and the LB's open TCP ports, scanned from another VM, are exactly
 *     those the playbook and the inventory name.
 *
 * The app answers /cgi-bin/predict?text=great with {"score": 3, ...}.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/loadgen.h"
#include "tests/support/proc.h"

#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "t0p-s3cret-0042"
#define SECRET2 "n3w-v4lue-0043"
#define OPERATOR_KEY "operator-cloud-key-9999"

static struct {
	const char *dir;
	char *repo, *known_hosts, *ledger_env, *url, *base_pb;
	char *lb_addr, *pki; /* lb1's address; the test's CA and certs */
} F;

static int mlctl_env(struct ml_test_out *o, const char *extra,
		     const char *const *args)
{
	const char *env[] = { F.ledger_env, extra, NULL };

	return ml_test_mlctl_kh(o, F.repo, F.known_hosts, env, args);
}

/* Run a shell script on a VM (test harness only: fixed scripts). */
static void on_vm(struct ml_test_out *o, const char *vm, const char *script)
{
	char *tool = ml_xasprintf("%s/tests/fleet/fleet", ml_test_src());
	const char *argv[] = { tool, "exec", "--dir", F.dir, vm, "--",
			       "sh", "-c", script, NULL };

	ml_test_run(o, NULL, NULL, NULL, 60, argv);
	free(tool);
}

static void write_pb(const char *extra)
{
	char *pb = ml_xasprintf("%s%s", F.base_pb, extra);

	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(ml_test_commit(F.repo, extra[0] ? extra : "base"));
	free(pb);
}

static void write_secrets(const char *text)
{
	char *p = ml_xasprintf("%s/.mlctl/secrets", F.repo);

	ml_test_write(F.repo, ".mlctl/secrets", text);
	chmod(p, 0600);
	free(p);
}

static bool file_has(const char *path, const char *needle)
{
	struct ml_buf b = ML_BUF_INIT(0);
	bool found = false;

	if (ml_buf_read_file(&b, path) == 0 && b.len >= strlen(needle))
		found = memmem(b.data, b.len, needle, strlen(needle)) != NULL;
	ml_buf_release(&b);
	return found;
}

/* The app's container ids on vm1, one per line. */
static char *app_containers(void)
{
	struct ml_test_out o;
	char *ids;

	on_vm(&o, "vm1",
	      "docker ps -q --no-trunc --filter label=mlctl.app=sec-api");
	assert_int_equal(o.status, 0);
	ids = ml_xstrdup(o.out);
	ml_test_out_release(&o);
	return ids;
}

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
	F.repo = ml_test_tmpdir("security");
	F.known_hosts = ml_xasprintf("%s/known_hosts", F.dir);
	F.ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", F.repo);
	p = ml_xasprintf("%s/inventory.yaml", F.dir);
	inv = ml_test_slurp(p);
	free(p);
	addr = ml_test_fleet_address(inv, "lb1");
	if (!addr)
		return -1;
	F.url = ml_xasprintf("http://%s/cgi-bin/predict?text=great", addr);
	F.lb_addr = addr;

	free(ml_test_git(F.repo, (const char *const[]){ "init", "-q", NULL }));
	ml_test_example_app(F.repo, "great 3\nbad -2\n");
	F.base_pb = ml_xstrdup(
		"app: sec-api\n"
		"image:\n  build: {context: ., dockerfile: Dockerfile}\n"
		"port: 8000\n"
		"health: {path: /healthz, interval: 500ms, timeout: 400ms,"
		" start_period: 5s, unhealthy_threshold: 3}\n"
		"replicas: 1\n"
		"targets: [vm1, vm2]\n"
		"rollout: {batch: 2, drain_timeout: 2s}\n"
		"load_balancer: {hosts: [lb], listen: 80}\n"
		"secrets: [API_TOKEN, AWS_SECRET_ACCESS_KEY]\n");
	ml_test_write(F.repo, "inventory.yaml", inv);
	ml_test_write(F.repo, ".gitignore", "*.ledger*\n.mlctl/\n");
	write_pb("");
	free(inv);

	mlctl_env(&o, NULL, (const char *const[]){ "bootstrap", NULL });
	if (o.status != 0)
		print_error("bootstrap failed (%d):\n%s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	return 0;
}

static int group_teardown(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	write_pb(""); /* a test that failed may have left a bad playbook */
	mlctl_env(&o, NULL, (const char *const[]){ "remove", NULL });
	if (o.status != 0)
		print_error("remove failed (%d): %s%s\n", o.status, o.out,
			    o.err);
	ml_test_out_release(&o);
	ml_test_ledger_remove(F.repo);
	ml_test_rmtree(F.repo);
	if (F.pki)
		ml_test_rmtree(F.pki);
	free(F.pki);
	free(F.lb_addr);
	free(F.repo);
	free(F.known_hosts);
	free(F.ledger_env);
	free(F.url);
	free(F.base_pb);
	return 0;
}

/*
 * A playbook naming an operator's variable does not get its value: the
 * name must come from the secrets file or MLCTL_SECRET_<NAME>.
 */
static void test_security__operator_env_is_not_a_secret_source(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	write_secrets("API_TOKEN=" SECRET "\n");
	mlctl_env(&o, "AWS_SECRET_ACCESS_KEY=" OPERATOR_KEY,
		  (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY"));
	assert_null(strstr(o.err, OPERATOR_KEY));
	ml_test_out_release(&o);
}

/*
 * Secrets as files: 0400, the image's user (65534), on a tmpfs, at
 * /run/secrets; `docker inspect` and the labels have no value; nor has
 * the ledger.
 */
static void test_security__secrets_are_files_docker_cannot_show(void **s)
{
	struct ml_test_out o;
	char *ids, *p;

	ML_UNUSED(s);
	mlctl_env(&o, "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns",
		  (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_null(strstr(o.out, SECRET));
	assert_null(strstr(o.err, SECRET));
	ml_test_out_release(&o);

	ids = app_containers();
	assert_true(strlen(ids) > 10);
	free(ids);
	on_vm(&o, "vm1",
	      "for c in $(docker ps -q --filter label=mlctl.app=sec-api); do "
	      "docker inspect $c; "
	      "docker exec $c cat /run/secrets/API_TOKEN; echo; "
	      "docker exec $c cat /run/secrets/AWS_SECRET_ACCESS_KEY; echo; "
	      "docker exec $c stat -c 'mode=%a uid=%u' "
	      "/run/secrets/API_TOKEN; "
	      "docker exec $c sh -c 'env' | grep -c API_TOKEN; "
	      "src=$(docker inspect -f '{{range .Mounts}}{{.Source}}{{end}}' "
	      "$c); stat -f -c 'fs=%T' $src; done");
	assert_int_equal(o.status, 0);
	/* the value is in the file, and only there */
	p = strstr(o.out, SECRET);
	assert_non_null(p);
	assert_non_null(strstr(o.out, "\n" SECRET "\n"));
	assert_null(strstr(o.out, "\"" SECRET));
	assert_null(strstr(o.out, "=" SECRET));
	assert_non_null(strstr(o.out, "aws-from-mlctl-ns"));
	assert_non_null(strstr(o.out, "mode=400 uid=65534"));
	assert_non_null(strstr(o.out, "fs=tmpfs"));
	assert_non_null(strstr(o.out, "\n0\n")); /* not in the env */
	ml_test_out_release(&o);

	p = ml_xasprintf("%s.ledger", F.repo);
	assert_false(file_has(p, SECRET));
	free(p);
	p = ml_xasprintf("%s.ledger-wal", F.repo);
	assert_false(file_has(p, SECRET));
	free(p);
	/* the digest's key: next to the ledger, 0600 */
	{
		struct stat st;

		p = ml_xasprintf("%s.ledger.key", F.repo);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		free(p);
	}
}

/* The same value again changes nothing; a new value rolls the
 * containers, and the new one reads it. */
static void test_security__changed_secret_rolls_the_containers(void **s)
{
	struct ml_test_out o;
	char *before, *after;
	const char *aws = "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns";

	ML_UNUSED(s);
	before = app_containers();
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	after = app_containers();
	assert_string_equal(before, after);
	free(after);

	write_secrets("API_TOKEN=" SECRET2 "\n");
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_null(strstr(o.out, SECRET2));
	ml_test_out_release(&o);
	after = app_containers();
	assert_string_not_equal(before, after);
	on_vm(&o, "vm1",
	      "for c in $(docker ps -q --filter label=mlctl.app=sec-api); do "
	      "docker exec $c cat /run/secrets/API_TOKEN; echo; "
	      "docker inspect $c; done");
	assert_non_null(strstr(o.out, SECRET2 "\n"));
	assert_null(strstr(o.out, SECRET "\n"));
	ml_test_out_release(&o);
	free(before);
	free(after);
}

/*
 * docker inspect shows each hardening default, and a root process in the
 * container cannot use a dropped capability (CAP_CHOWN).
 */
static void test_security__containers_are_hardened(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	on_vm(&o, "vm1",
	      "c=$(docker ps -q --filter label=mlctl.app=sec-api | head -1); "
	      "docker inspect -f 'capdrop={{json .HostConfig.CapDrop}} "
	      "secopt={{json .HostConfig.SecurityOpt}} "
	      "pids={{.HostConfig.PidsLimit}} init={{.HostConfig.Init}} "
	      "restart={{.HostConfig.RestartPolicy.Name}}' $c; "
	      "docker exec $c grep CapEff /proc/1/status; "
	      "docker exec -u 0 $c sh -c 'touch /tmp/x && chown 1 /tmp/x' "
	      "&& echo chown=allowed || echo chown=refused");
	assert_int_equal(o.status, 0);
	if (!strstr(o.out, "capdrop=[\"ALL\"]"))
		print_error("%s%s", o.out, o.err);
	assert_non_null(strstr(o.out, "capdrop=[\"ALL\"]"));
	assert_non_null(strstr(o.out, "secopt=[\"no-new-privileges\"]"));
	assert_non_null(strstr(o.out, "pids=4096"));
	assert_non_null(strstr(o.out, "init=true"));
	assert_non_null(strstr(o.out, "restart=unless-stopped"));
	assert_non_null(strstr(o.out, "CapEff:\t0000000000000000"));
	assert_non_null(strstr(o.out, "chown=refused"));
	ml_test_out_release(&o);
}

/* curl's exit status for url, run on vm (NULL: the controller). */
static int curl_from(const char *vm, const char *url)
{
	struct ml_test_out o;
	int st;

	if (vm) {
		char *script = ml_xasprintf("curl -fsS -o /dev/null "
					    "--max-time 3 %s; echo rc=$?",
					    url);
		char *p;

		on_vm(&o, vm, script);
		free(script);
		p = strstr(o.out, "rc=");
		st = p ? atoi(p + 3) : -1;
	} else {
		const char *argv[] = { "curl", "-fs", "-o", "/dev/null",
				       "--max-time", "3", url, NULL };

		ml_test_run(&o, NULL, NULL, NULL, 10, argv);
		st = o.status;
	}
	ml_test_out_release(&o);
	return st;
}

/*
 * A crashed container comes back by its restart policy (its process
 * killed from the host: not a stop Docker was asked for), and `mlctl
 * status` counts the restart.
 */
static void test_security__crashed_container_comes_back_counted(void **s)
{
	const char *aws = "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns";
	struct ml_test_out o;
	json_t *doc, *h, *c;
	size_t i, k;
	long long restarts = -1;

	ML_UNUSED(s);
	write_secrets("API_TOKEN=" SECRET2 "\n");
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	on_vm(&o, "vm1",
	      "c=$(docker ps -q --filter label=mlctl.app=sec-api | head -1); "
	      "kill -9 $(docker inspect -f '{{.State.Pid}}' $c); "
	      "for i in $(seq 1 100); do "
	      "  st=$(docker inspect -f '{{.State.Running}} "
	      "{{.RestartCount}}' $c); "
	      "  case $st in 'true '[1-9]*) break;; esac; sleep 0.2; "
	      "done; echo state=$st");
	assert_int_equal(o.status, 0);
	if (!strstr(o.out, "state=true 1"))
		print_error("%s%s", o.out, o.err);
	assert_non_null(strstr(o.out, "state=true 1"));
	ml_test_out_release(&o);

	mlctl_env(&o, NULL, (const char *const[]){ "status", "--json", NULL });
	ml_test_must(&o, 0);
	doc = json_loads(o.out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	{
		if (strcmp(json_string_value(json_object_get(h, "host")) ?: "",
			   "vm1"))
			continue;
		json_array_foreach(json_object_get(h, "containers"), k, c)
			if (json_integer_value(json_object_get(c, "restarts")) >
			    restarts)
				restarts = json_integer_value(
					json_object_get(c, "restarts"));
	}
	if (restarts != 1)
		print_error("%s", o.out);
	assert_int_equal(restarts, 1);
	json_decref(doc);
	ml_test_out_release(&o);
	/* and the balancer serves again */
	for (i = 0; i < 40 && curl_from(NULL, F.url) != 0; i++)
		usleep(250 * 1000);
	assert_int_equal(curl_from(NULL, F.url), 0);
}

/* vm1's slot URL, from what Docker publishes ("10.77.17.11:18000->"). */
static char *slot_url(void)
{
	struct ml_test_out o;
	char *url, *arrow;

	on_vm(&o, "vm1",
	      "docker ps --filter label=mlctl.app=sec-api "
	      "--format '{{.Ports}}' | head -1");
	assert_int_equal(o.status, 0);
	arrow = strstr(o.out, "->");
	assert_non_null(arrow);
	*arrow = '\0';
	/* bound to the VM's fleet address, not 0.0.0.0, and not on any
	 * IPv6 address (iptables filters IPv4 only) */
	assert_null(strstr(o.out, "0.0.0.0"));
	assert_null(strstr(o.out, "::"));
	url = ml_xasprintf("http://%s/healthz", o.out);
	ml_test_out_release(&o);
	return url;
}

/*
 * Only the balancer reaches the app: a direct request to a slot from
 * the controller or from another app VM is refused; from the LB host and
 * through HAProxy it works.
 */
static void test_security__only_the_balancer_reaches_slots(void **s)
{
	char *url = slot_url();

	ML_UNUSED(s);
	if (curl_from(NULL, F.url) != 0 || curl_from("lb1", url) != 0) {
		struct ml_test_out o;

		on_vm(&o, "vm1", "iptables -S; docker ps");
		print_error("%s\n%s", url, o.out);
		ml_test_out_release(&o);
	}
	assert_int_equal(curl_from(NULL, F.url), 0);
	assert_int_equal(curl_from("lb1", url), 0);
	assert_int_not_equal(curl_from(NULL, url), 0);
	assert_int_not_equal(curl_from("vm2", url), 0);
	free(url);
}

/*
 * The load balancer's ports: the listen port, and HAProxy's metrics
 * exporter on the LB host's own address (the playbook's metrics.bind
 * default), never on every address; its admin socket is a unix socket,
 * so HAProxy listens on no other TCP port.
 */
static void test_security__lb_exposes_only_the_listen_port(void **s)
{
	struct ml_test_out o;
	const char *host = F.url + 7; /* "http://" */
	char *addr = ml_xstrndup(host, strcspn(host, ":/"));
	char *metrics = ml_xasprintf("http://%s:8404/metrics", addr);
	char *own = ml_xasprintf("%s:8404", addr);
	const char *line;
	size_t tcp = 0;

	ML_UNUSED(s);
	assert_int_equal(curl_from("vm2", F.url), 0);
	assert_int_equal(curl_from("lb1", metrics), 0);
	on_vm(&o, "lb1", "ss -Htlnp | grep haproxy");
	assert_non_null(strstr(o.out, own));
	assert_null(strstr(o.out, "0.0.0.0:8404"));
	assert_null(strstr(o.out, "*:8404"));
	for (line = o.out; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (*line)
			tcp++;
	}
	/* the frontend and the exporter, nothing else */
	assert_true(tcp >= 1 && tcp <= 2);
	ml_test_out_release(&o);
	free(own);
	free(metrics);
	free(addr);
}

/* Each default relaxed by name; the playbook is checked first. */
static void test_security__relaxed_by_name(void **s)
{
	struct ml_test_out o;
	const char *aws = "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns";

	ML_UNUSED(s);
	write_pb("security: {cap_add: [FLY]}\n");
	mlctl_env(&o, aws, (const char *const[]){ "validate", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "mlctl.yaml:11:22"));
	assert_non_null(strstr(o.err, "unknown capability 'FLY'"));
	ml_test_out_release(&o);

	write_pb("security:\n  cap_add: [CHOWN]\n  pids_limit: 64\n"
		 "  read_only_root: true\n  no_new_privileges: false\n"
		 "  restart: on-failure\n  secrets_as: env\n");
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	on_vm(&o, "vm1",
	      "c=$(docker ps -q --filter label=mlctl.app=sec-api | head -1); "
	      "docker inspect -f 'capadd={{json .HostConfig.CapAdd}} "
	      "secopt={{json .HostConfig.SecurityOpt}} "
	      "pids={{.HostConfig.PidsLimit}} "
	      "ro={{.HostConfig.ReadonlyRootfs}} "
	      "restart={{.HostConfig.RestartPolicy.Name}}' $c; "
	      "docker exec $c sh -c 'echo env=$API_TOKEN'; "
	      "docker exec $c sh -c 'touch /x' 2>&1 || echo root=readonly; "
	      "docker exec $c sh -c 'touch /tmp/y' && echo tmp=writable; "
	      "docker exec -u 0 $c sh -c 'touch /tmp/x && chown 1 /tmp/x' "
	      "&& echo chown=allowed || echo chown=refused");
	assert_int_equal(o.status, 0);
	if (!strstr(o.out, "capadd=[\"CHOWN\"]"))
		print_error("%s%s", o.out, o.err);
	assert_non_null(strstr(o.out, "capadd=[\"CHOWN\"]"));
	assert_non_null(strstr(o.out, "secopt=null"));
	assert_non_null(strstr(o.out, "pids=64"));
	assert_non_null(strstr(o.out, "ro=true"));
	assert_non_null(strstr(o.out, "restart=on-failure"));
	assert_non_null(strstr(o.out, "env=" SECRET2));
	assert_non_null(strstr(o.out, "root=readonly"));
	assert_non_null(strstr(o.out, "tmp=writable"));
	assert_non_null(strstr(o.out, "chown=allowed"));
	ml_test_out_release(&o);
	write_pb("");
}

/*
 * Text another host wrote (the lock's owner and reason, here forged in
 * the lease file on the LB) reaches the terminal with control bytes
 * escaped.
 */
static void test_security__remote_text_is_escaped(void **s)
{
	struct ml_test_out o;

	ML_UNUSED(s);
	on_vm(&o, "lb1",
	      "now=$(($(date +%s) * 1000)); "
	      "printf '{\"owner\":\"evil\\\\u001b]0;pwned\\\\u0007 pid 1\",'"
	      "'\"reason\":\"clear\\\\u001b[2J\",\"token\":\"00\",'"
	      "'\"acquired_at_ms\":%s,\"expires_at_ms\":%s}' "
	      "$now $((now + 600000)) > /var/lib/mlctl/lock.json; "
	      "chmod 600 /var/lib/mlctl/lock.json");
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	mlctl_env(&o, NULL, (const char *const[]){ "lock", "status", NULL });
	{
		struct ml_test_out rm;

		on_vm(&rm, "lb1", "rm -f /var/lib/mlctl/lock.json");
		ml_test_out_release(&rm);
	}
	ml_test_must(&o, 0);
	assert_null(strchr(o.out, '\x1b'));
	assert_null(strchr(o.out, '\a'));
	assert_non_null(strstr(o.out, "evil\\x1b]0;pwned\\x07"));
	assert_non_null(strstr(o.out, "clear\\x1b[2J"));
	ml_test_out_release(&o);
}

/* An image name with ".." never reaches a Docker API path. */
static void test_security__image_names_cannot_walk_the_api(void **s)
{
	struct ml_test_out o;
	char *pb = ml_xasprintf("%s", F.base_pb), *p;

	ML_UNUSED(s);
	p = strstr(pb, "image:\n  build: {context: ., dockerfile: Dockerfile}");
	assert_non_null(p);
	*p = '\0';
	p = ml_xasprintf("%simage: {ref: \"busybox/../../containers/json\"}%s",
			 pb, strstr(F.base_pb, "\nport:"));
	ml_test_write(F.repo, "mlctl.yaml", p);
	free(ml_test_commit(F.repo, "dot-dot image"));
	mlctl_env(&o, NULL, (const char *const[]){ "validate", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "mlctl.yaml:2:"));
	assert_non_null(strstr(o.err, "not a valid image reference"));
	ml_test_out_release(&o);
	free(p);
	free(pb);
	write_pb("");
}

/* An identity file that others can read is refused, as ssh does. */
static void test_security__readable_identity_file_is_refused(void **s)
{
	struct ml_test_out o;
	char *src = ml_xasprintf("%s/id_ed25519", F.dir);
	char *key = ml_test_slurp(src);
	char *dst = ml_xasprintf("%s/open_key", F.repo);

	ML_UNUSED(s);
	ml_test_write(F.repo, "open_key", key);
	chmod(dst, 0644);
	mlctl_env(&o, NULL,
		  (const char *const[]){ "--identity", dst, "lock", "status",
					 NULL });
	assert_int_not_equal(o.status, 0);
	assert_non_null(strstr(o.err, "has mode 0644"));
	assert_non_null(strstr(o.err, "chmod 600"));
	ml_test_out_release(&o);
	chmod(dst, 0600);
	mlctl_env(&o, NULL,
		  (const char *const[]){ "--identity", dst, "lock", "status",
					 NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	unlink(dst);
	free(src);
	free(key);
	free(dst);
}

/* open_slots: true publishes without rules; remove takes every rule of
 * the app away. */
static void test_security__open_slots_and_remove(void **s)
{
	struct ml_test_out o;
	const char *aws = "MLCTL_SECRET_AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns";
	char *url;

	ML_UNUSED(s);
	write_pb("security: {open_slots: true}\n");
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	on_vm(&o, "vm1",
	      "docker ps --filter label=mlctl.app=sec-api "
	      "--format '{{.Ports}}' | head -1");
	assert_non_null(strstr(o.out, "0.0.0.0:"));
	ml_test_out_release(&o);
	{
		char *p = ml_xasprintf("%s/inventory.yaml", F.dir);
		char *inv = ml_test_slurp(p);
		char *vm1 = ml_test_fleet_address(inv, "vm1");
		char *u0, *u1;

		assert_non_null(vm1);
		u0 = ml_xasprintf("http://%s:18000/healthz", vm1);
		u1 = ml_xasprintf("http://%s:18001/healthz", vm1);
		/* one of the two slots serves, reachable from another VM */
		assert_int_equal(curl_from("vm2", u0) && curl_from("vm2", u1),
				 0);
		free(u0);
		free(u1);
		free(vm1);
		free(inv);
		free(p);
	}

	write_pb("");
	mlctl_env(&o, aws, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	url = slot_url();
	assert_int_not_equal(curl_from("vm2", url), 0);
	free(url);
	on_vm(&o, "vm1", "iptables -S DOCKER-USER | grep -c mlctl:sec-api");
	assert_non_null(strstr(o.out, "1"));
	ml_test_out_release(&o);

	mlctl_env(&o, NULL, (const char *const[]){ "remove", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	on_vm(&o, "vm1",
	      "iptables -S DOCKER-USER; iptables -S | grep -c MLCTL-");
	assert_null(strstr(o.out, "mlctl:sec-api"));
	assert_non_null(strstr(o.out, "\n0\n"));
	ml_test_out_release(&o);
}

/*
 * IPv6: a slot is bound to the VM's IPv4 fleet address and filtered by
 * iptables, so an inventory giving an app host or a balancer an IPv6
 * address is refused before any host is touched (the slot would be
 * unreachable by its balancer, or bound where no filter applies), unless
 * open_slots says the operator filters the slots.
 */
static void test_security__ipv6_hosts_are_refused(void **s)
{
	struct ml_test_out o;
	char *p = ml_xasprintf("%s/inventory.yaml", F.dir);
	char *inv = ml_test_slurp(p);
	char *vm1 = ml_test_fleet_address(inv, "vm1");
	char *at = strstr(inv, vm1), *v6;

	ML_UNUSED(s);
	assert_non_null(at);
	v6 = ml_xasprintf("%.*s\"fd00:77::11\"%s", (int)(at - inv), inv,
			  at + strlen(vm1));
	ml_test_write(F.repo, "inventory.yaml", v6);
	free(ml_test_commit(F.repo, "ipv6 host"));
	mlctl_env(&o, NULL, (const char *const[]){ "validate", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "host 'vm1' has the IPv6 address "
				      "'fd00:77::11'"));
	assert_non_null(strstr(o.err, "security.open_slots"));
	ml_test_out_release(&o);

	write_pb("security: {open_slots: true}\n");
	mlctl_env(&o, NULL, (const char *const[]){ "validate", NULL });
	ml_test_must(&o, 0);
	ml_test_out_release(&o);

	ml_test_write(F.repo, "inventory.yaml", inv);
	write_pb("");
	free(v6);
	free(vm1);
	free(inv);
	free(p);
}

/* ---- TLS at the edge, the metrics listener, the LB's ports ----------- */

#define METRICS_PW "m3trics-pw-0044"

/* Run argv on the controller (a fixed tool: openssl, curl); its output. */
static void run(struct ml_test_out *o, const char *dir, const char *const *argv)
{
	ml_test_run(o, dir, NULL, "", 60, argv);
}

/* In F.pki: server key NAME.key and certificate NAME.pem, for lb1's
 * address, signed by the test's CA (made on first use). */
static void make_cert(const char *name)
{
	struct ml_test_out o;
	char *ext = ml_xasprintf("subjectAltName=IP:%s\n", F.lb_addr);
	char *key = ml_xasprintf("%s.key", name);
	char *csr = ml_xasprintf("%s.csr", name);
	char *crt = ml_xasprintf("%s.pem", name);
	char *subj = ml_xasprintf("/CN=%s", name);

	if (!F.pki) {
		F.pki = ml_test_tmpdir("pki");
		run(&o, F.pki,
		    (const char *const[]){ "openssl", "req", "-x509",
					   "-newkey", "rsa:2048", "-nodes",
					   "-keyout", "ca.key", "-out", "ca.pem",
					   "-days", "2", "-subj",
					   "/CN=mlctl-test-ca", NULL });
		if (o.status != 0)
			print_error("%s%s", o.out, o.err);
		assert_int_equal(o.status, 0);
		ml_test_out_release(&o);
	}
	ml_test_write(F.pki, "ext.cnf", ext);
	run(&o, F.pki,
	    (const char *const[]){ "openssl", "req", "-newkey", "rsa:2048",
				   "-nodes", "-keyout", key, "-out", csr,
				   "-subj", subj, NULL });
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	run(&o, F.pki,
	    (const char *const[]){ "openssl", "x509", "-req", "-in", csr,
				   "-CA", "ca.pem", "-CAkey", "ca.key",
				   "-CAcreateserial", "-days", "2", "-out",
				   crt, "-extfile", "ext.cnf", NULL });
	if (o.status != 0)
		print_error("%s%s", o.out, o.err);
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	free(ext);
	free(key);
	free(csr);
	free(crt);
	free(subj);
}

/* NAME=VALUE with the value's line ends written "\n" (secrets file). */
static void add_secret(struct ml_buf *b, const char *name, const char *file)
{
	char *p = ml_xasprintf("%s/%s", F.pki, file);
	char *v = ml_test_slurp(p);
	const char *c;

	ml_buf_addf(b, "%s=", name);
	for (c = v; *c; c++)
		if (*c == '\n')
			ml_buf_addstr(b, "\\n");
		else if (*c == '\\')
			ml_buf_addstr(b, "\\\\");
		else
			ml_buf_addch(b, *c);
	ml_buf_addch(b, '\n');
	free(v);
	free(p);
}

/* The secrets file with the certificate NAME.pem and its key. */
static void write_tls_secrets(const char *name)
{
	struct ml_buf b = ML_BUF_INIT(0);
	char *crt = ml_xasprintf("%s.pem", name);
	char *key = ml_xasprintf("%s.key", name);

	ml_buf_addstr(&b, "API_TOKEN=" SECRET2 "\n"
			  "AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns\n"
			  "METRICS_PW=" METRICS_PW "\n");
	add_secret(&b, "TLS_CERT", crt);
	add_secret(&b, "TLS_KEY", key);
	write_secrets(b.data);
	ml_buf_release(&b);
	free(crt);
	free(key);
}

/* The base playbook with TLS on 443, a redirect from 80, and the
 * exporter behind basic auth. */
static void write_tls_pb(void)
{
	const char *lb = "load_balancer: {hosts: [lb], listen: 80}\n";
	char *p = strstr(F.base_pb, lb), *pb;

	assert_non_null(p);
	pb = ml_xasprintf("%.*sload_balancer:\n"
			  "  hosts: [lb]\n"
			  "  listen: 443\n"
			  "  tls: {cert: TLS_CERT, key: TLS_KEY, "
			  "redirect_http: 80}\n"
			  "metrics: {user: prom, password: METRICS_PW}\n%s",
			  (int)(p - F.base_pb), F.base_pb, p + strlen(lb));
	ml_test_write(F.repo, "mlctl.yaml", pb);
	free(ml_test_commit(F.repo, "tls"));
	free(pb);
}

/* curl on the controller: its exit status, and the output in *o. */
static int curl_out(struct ml_test_out *o, const char *const *args)
{
	const char *argv[24] = { "curl", "-sS", "--max-time", "5" };
	size_t n = 4;

	while (*args && n < ML_ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	ml_test_run(o, F.pki, NULL, NULL, 20, argv);
	return o->status;
}

/* openssl s_client to lb1:443 with extra arguments: its exit status. */
static int s_client(struct ml_test_out *o, const char *const *args)
{
	char *to = ml_xasprintf("%s:443", F.lb_addr);
	const char *argv[16] = { "openssl", "s_client", "-connect", to,
				 "-CAfile", "ca.pem" };
	size_t n = 6;

	while (*args && n < ML_ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	ml_test_run(o, F.pki, NULL, "", 20, argv);
	free(to);
	return o->status;
}

/*
 * TLS at the edge: the certificate and key are secrets (the secrets
 * file), stored 0600 root in the agent's state dir on the LB; curl
 * verifies the chain against the test's CA; TLS 1.1 and a cipher
 * without forward secrecy are refused; plain HTTP on 80 answers 301 to
 * https; no byte of the key is in mlctl's output or the ledger.
 */
static void test_security__tls_at_the_edge(void **s)
{
	struct ml_test_out o;
	char *https = ml_xasprintf("https://%s/cgi-bin/predict?text=great",
				   F.lb_addr);
	char *http = ml_xasprintf("http://%s/cgi-bin/predict?text=great",
				  F.lb_addr);
	char *p;

	ML_UNUSED(s);
	make_cert("edge-1");
	write_tls_pb();
	/* a path where the PEM goes is named, before any host changes */
	write_secrets("API_TOKEN=" SECRET2 "\n"
		      "AWS_SECRET_ACCESS_KEY=aws-from-mlctl-ns\n"
		      "METRICS_PW=" METRICS_PW "\n"
		      "TLS_CERT=/etc/ssl/edge-1.pem\nTLS_KEY=/etc/ssl/k.pem\n");
	mlctl_env(&o, NULL, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 3);
	assert_non_null(strstr(o.err, "secret 'TLS_CERT' is not a PEM "
				      "certificate"));
	assert_null(strstr(o.err, "/etc/ssl"));
	ml_test_out_release(&o);

	write_tls_secrets("edge-1");
	mlctl_env(&o, NULL, (const char *const[]){ "deploy", NULL });
	ml_test_must(&o, 0);
	assert_null(strstr(o.out, "PRIVATE KEY"));
	assert_null(strstr(o.err, "PRIVATE KEY"));
	ml_test_out_release(&o);

	/* verified against our CA, the app answers */
	assert_int_equal(curl_out(&o, (const char *const[]){ "--cacert",
							      "ca.pem", https,
							      NULL }),
			 0);
	assert_non_null(strstr(o.out, "\"score\": 3"));
	ml_test_out_release(&o);
	/* and not against the system's CAs (curl: 60, unknown issuer) */
	assert_int_equal(curl_out(&o, (const char *const[]){ https, NULL }),
			 60);
	ml_test_out_release(&o);
	/* plain HTTP: a redirect to the same URL over https */
	assert_int_equal(curl_out(&o, (const char *const[]){
					      "-o", "/dev/null", "-w",
					      "%{http_code} %{redirect_url}",
					      http, NULL }),
			 0);
	p = ml_xasprintf("301 %s", https);
	if (strcmp(o.out, p))
		print_error("redirect: '%s'\n", o.out);
	assert_string_equal(o.out, p);
	free(p);
	ml_test_out_release(&o);

	/* modern defaults: TLS 1.2 without compression works; TLS 1.1, and
	 * a TLS 1.2 cipher without forward secrecy, are refused even by a
	 * client that would take them */
	assert_int_equal(s_client(&o, (const char *const[]){ "-tls1_2",
							      NULL }),
			 0);
	assert_non_null(strstr(o.out, "Verify return code: 0 (ok)"));
	assert_non_null(strstr(o.out, "Compression: NONE"));
	assert_non_null(strstr(o.out, "ECDHE"));
	ml_test_out_release(&o);
	assert_int_not_equal(s_client(&o, (const char *const[]){
					      "-tls1_1", "-cipher",
					      "DEFAULT@SECLEVEL=0", NULL }),
			     0);
	ml_test_out_release(&o);
	assert_int_not_equal(s_client(&o, (const char *const[]){
					      "-tls1_2", "-cipher",
					      "AES128-SHA@SECLEVEL=0", NULL }),
			     0);
	ml_test_out_release(&o);

	/* on the LB: one PEM, 0600 root, in a 0700 directory of the
	 * agent's state dir; nowhere in the ledger */
	on_vm(&o, "lb1",
	      "d=/var/lib/mlctl/haproxy/sec-api/tls; stat -c 'dir=%a:%u' $d; "
	      "for f in $d/*.pem; do stat -c 'pem=%a:%u' $f; done; "
	      "ls $d | wc -l");
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "dir=700:0\n"));
	assert_non_null(strstr(o.out, "pem=600:0\n"));
	assert_non_null(strstr(o.out, "\n1\n"));
	ml_test_out_release(&o);
	p = ml_xasprintf("%s.ledger", F.repo);
	assert_false(file_has(p, "PRIVATE KEY"));
	free(p);
	p = ml_xasprintf("%s.ledger-wal", F.repo);
	assert_false(file_has(p, "PRIVATE KEY"));
	free(p);
	free(https);
	free(http);
}

/*
 * A new certificate is put in place by a deploy while two HTTPS loads
 * run: open loop (a new verified connection per request) and closed loop
 * on keep-alive connections (which the reload's old worker closes). No
 * request fails, and new connections see the new certificate.
 */
static void test_security__tls_cert_rotates_under_load(void **s)
{
	struct ml_test_out o;
	struct ml_loadgen_stats st, kst;
	struct ml_loadgen *lg, *ka;
	char *url = ml_xasprintf("https://%s/healthz", F.lb_addr);
	char *ca = ml_xasprintf("%s/ca.pem", F.pki);
	const int rate = 40;

	ML_UNUSED(s);
	make_cert("edge-2");
	write_tls_secrets("edge-2");
	ml_loadgen_set_ca(ca);
	lg = ml_loadgen_start_open(url, rate, (long)rate * 20, 20, NULL);
	ka = ml_loadgen_start(url, rate, 2, (long)rate * 20, 20, NULL);
	sleep(3);
	mlctl_env(&o, NULL, (const char *const[]){ "deploy", NULL });
	sleep(3);
	ml_loadgen_stop(lg, &st);
	ml_loadgen_stop(ka, &kst);
	ml_loadgen_set_ca(NULL);
	ml_test_must(&o, 0);
	ml_test_out_release(&o);
	print_message("certificate rotation under HTTPS load, open loop at "
		      "%d/s: %ld sent, %ld ok, %ld failed%s%s\n",
		      rate, st.sent, st.ok, st.failed,
		      st.failed ? ", first: " : "", st.first_error);
	print_message("certificate rotation under HTTPS load, keep-alive at "
		      "%d/s: %ld sent, %ld ok, %ld failed%s%s\n",
		      rate, kst.sent, kst.ok, kst.failed,
		      kst.failed ? ", first: " : "", kst.first_error);
	assert_true(st.sent > rate * 4);
	assert_true(kst.sent > rate); /* closed loop: slower on a busy machine */
	assert_int_equal(st.failed, 0);
	assert_int_equal(kst.failed, 0);

	assert_int_equal(s_client(&o, (const char *const[]){ NULL }), 0);
	assert_non_null(strstr(o.out, "CN = edge-2"));
	assert_null(strstr(o.out, "CN = edge-1"));
	ml_test_out_release(&o);
	/* the old certificate's file is gone */
	on_vm(&o, "lb1", "ls /var/lib/mlctl/haproxy/sec-api/tls | wc -l");
	assert_non_null(strstr(o.out, "1\n"));
	ml_test_out_release(&o);
	free(url);
	free(ca);
}

/*
 * The metrics listener asks for the credentials the playbook names (the
 * password from a secret): 401 without them or with a wrong password,
 * 200 with them, from another VM.
 */
static void test_security__metrics_need_credentials(void **s)
{
	struct ml_test_out o;
	char *script = ml_xasprintf(
		"u=http://%s:8404/metrics; "
		"curl -s -o /dev/null -w 'none=%%{http_code}\\n' $u; "
		"curl -s -o /dev/null -w 'wrong=%%{http_code}\\n' "
		"-u prom:not-it $u; "
		"curl -s -o /dev/null -w 'right=%%{http_code}\\n' "
		"-u prom:" METRICS_PW " $u",
		F.lb_addr);

	ML_UNUSED(s);
	on_vm(&o, "vm2", script);
	assert_int_equal(o.status, 0);
	if (!strstr(o.out, "right=200"))
		print_error("%s%s", o.out, o.err);
	assert_non_null(strstr(o.out, "none=401\n"));
	assert_non_null(strstr(o.out, "wrong=401\n"));
	assert_non_null(strstr(o.out, "right=200\n"));
	ml_test_out_release(&o);
	free(script);
}

/*
 * Every TCP port of the LB, scanned from another VM: open are exactly
 * the listen port (443), the redirect (80), the exporter (8404) and
 * sshd (22, the inventory's); the admin socket is a unix socket and the
 * agent never listens.
 */
static void test_security__lb_ports_seen_from_another_vm(void **s)
{
	struct ml_test_out o;
	char *script = ml_xasprintf(
		"python3 -c '\n"
		"import socket\n"
		"found = []\n"
		"for p in range(1, 65536):\n"
		"    s = socket.socket()\n"
		"    s.settimeout(0.5)\n"
		"    if s.connect_ex((\"%s\", p)) == 0:\n"
		"        found.append(str(p))\n"
		"    s.close()\n"
		"print(\"open=\" + \",\".join(found))\n'",
		F.lb_addr);

	ML_UNUSED(s);
	on_vm(&o, "vm2", script);
	if (!strstr(o.out, "open=22,80,443,8404\n"))
		print_error("%s%s", o.out, o.err);
	assert_non_null(strstr(o.out, "open=22,80,443,8404\n"));
	ml_test_out_release(&o);
	free(script);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_security__operator_env_is_not_a_secret_source),
		cmocka_unit_test(
			test_security__secrets_are_files_docker_cannot_show),
		cmocka_unit_test(
			test_security__changed_secret_rolls_the_containers),
		cmocka_unit_test(test_security__containers_are_hardened),
		cmocka_unit_test(
			test_security__crashed_container_comes_back_counted),
		cmocka_unit_test(
			test_security__only_the_balancer_reaches_slots),
		cmocka_unit_test(
			test_security__lb_exposes_only_the_listen_port),
		cmocka_unit_test(test_security__relaxed_by_name),
		cmocka_unit_test(test_security__open_slots_and_remove),
		cmocka_unit_test(test_security__remote_text_is_escaped),
		cmocka_unit_test(
			test_security__image_names_cannot_walk_the_api),
		cmocka_unit_test(
			test_security__readable_identity_file_is_refused),
		cmocka_unit_test(test_security__ipv6_hosts_are_refused),
		cmocka_unit_test(test_security__tls_at_the_edge),
		cmocka_unit_test(test_security__tls_cert_rotates_under_load),
		cmocka_unit_test(test_security__metrics_need_credentials),
		cmocka_unit_test(
			test_security__lb_ports_seen_from_another_vm),
	};

	/* ML_TEST_CASES=GLOB runs only the matching cases (tests/README) */
	if (getenv("ML_TEST_CASES") && *getenv("ML_TEST_CASES"))
		cmocka_set_test_filter(getenv("ML_TEST_CASES"));
	return cmocka_run_group_tests_name("e2e/security", tests, group_setup,
					   group_teardown);
}
