/*
 * Unit tests of the relay ops (agent/op_relay_*.c, agent/relay.c): the
 * strict checks of keys, host keys, addresses, deploy ids and digests
 * (nothing can inject an option or a line into authorized_keys or an
 * option into ssh's argv); relay_key, relay_allow and relay_end on a
 * private state dir and authorized_keys file; receive mode refusing every
 * op but hello, blobs_have and blob_put; and relay_send for real into
 * `mlctl-agent receive` ($MLCTL_AGENT_BIN), with a stand-in for the ssh
 * client that runs the receiver locally, resuming a blob from the .part
 * the receiver holds, and passing on a blob while it is still arriving
 * ("follow").
 */
#include "common/ml.h"
#include "common/sha256.h"
#include "agent/agent.h"
#include "agent/relay.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

static struct ml_agent ag;
static char *tmp, *authkeys;

#define KEY                                                                    \
	"ssh-ed25519 "                                                         \
	"AAAAC3NzaC1lZDI1NTE5AAAAIKjUUyVXb2SpaGSPgpX+gkB8C+QyBs8hYFFa/QamNdOi"
#define HKEY                                                                   \
	"ssh-ed25519 "                                                         \
	"AAAAC3NzaC1lZDI1NTE5AAAAIBOG4fNqMFROMeIyjQrq9gMDLUD6xzxRAwIG+JwjO2V/"
#define DG                                                                     \
	"sha256:"                                                              \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct ml_agent_op *op_named(const char *name)
{
	const struct ml_agent_op *const *ops;
	size_t n, i;

	ops = ml_agent_ops(&n);
	for (i = 0; i < n; i++)
		if (!strcmp(ops[i]->name, name))
			return ops[i];
	fail_msg("op %s is not in the dispatch table", name);
	return NULL;
}

/* Run op with args (stolen); *res set on success. */
static int call(json_t **res, const char *op, json_t *args)
{
	json_t *r = NULL;
	int rc;

	ml_err_clear();
	rc = op_named(op)->run(&ag, args, &r);
	json_decref(args);
	if (res)
		*res = r;
	else
		json_decref(r);
	return rc;
}

static int setup(void **state)
{
	ML_UNUSED(state);
	/* relay_send writes to a child that may be gone, as the agent does */
	signal(SIGPIPE, SIG_IGN);
	ml_agent_init(&ag);
	tmp = ml_test_tmpdir("relay");
	ag.state_dir = ml_xasprintf("%s/state", tmp);
	authkeys = ml_xasprintf("%s/home/.ssh/authorized_keys", tmp);
	setenv("MLCTL_AUTHORIZED_KEYS", authkeys, 1);
	setenv("MLCTL_AGENT_SELF", "/var/lib/mlctl/bin/mlctl-agent", 1);
	return 0;
}

static int teardown(void **state)
{
	ML_UNUSED(state);
	unsetenv("MLCTL_AUTHORIZED_KEYS");
	unsetenv("MLCTL_AGENT_SELF");
	free((char *)ag.state_dir);
	ml_test_rmtree(tmp);
	free(tmp);
	free(authkeys);
	return 0;
}

static void test_relay__checks(void **state)
{
	ML_UNUSED(state);
	assert_true(ml_relay_pubkey_valid(KEY));
	assert_false(ml_relay_pubkey_valid(NULL));
	assert_false(ml_relay_pubkey_valid(KEY " comment"));
	assert_false(ml_relay_pubkey_valid(KEY "\n"));
	assert_false(ml_relay_pubkey_valid("command=\"sh\" " KEY));
	assert_false(ml_relay_pubkey_valid("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB"));
	assert_false(ml_relay_pubkey_valid(
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKjUUyVXb2SpaGSPgpX+gkB8C+"
		"QyBs8hYF\na/QamNdOi"));
	assert_false(ml_relay_pubkey_valid(
		"ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAAIKjUUyVXb2SpaGSPgpX+gkB8C"
		"+QyBs8hYFFa/QamNdO"));
	assert_false(ml_relay_pubkey_valid(
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKjUUyVXb2SpaGSPgpX+gkB8C+"
		"QyBs8hYFF\"/QamNdOi"));

	assert_true(ml_relay_hostkey_valid(HKEY));
	assert_false(ml_relay_hostkey_valid(HKEY " root@vm1"));
	assert_false(ml_relay_hostkey_valid(HKEY "\nevil ssh-ed25519 AAAA"));
	assert_false(ml_relay_hostkey_valid("ssh-dss AAAAB3NzaC1kc3MAAACBAP"));
	assert_false(ml_relay_hostkey_valid("@cert-authority * " HKEY));

	assert_true(ml_relay_address_valid("10.77.30.11"));
	assert_true(ml_relay_address_valid("fd00::1"));
	assert_true(ml_relay_address_valid("vm1.fleet.internal"));
	assert_false(ml_relay_address_valid("-oProxyCommand=sh"));
	assert_false(ml_relay_address_valid(".x"));
	assert_false(ml_relay_address_valid("a\"b"));
	assert_false(ml_relay_address_valid("a,b"));
	assert_false(ml_relay_address_valid("user@host"));
	assert_false(ml_relay_address_valid(""));

	assert_true(ml_relay_deploy_valid("d-123.ab_c"));
	assert_false(ml_relay_deploy_valid("-d"));
	assert_false(ml_relay_deploy_valid("../x"));
	assert_false(ml_relay_deploy_valid("a b"));
	assert_true(ml_relay_user_valid("root"));
	assert_false(ml_relay_user_valid("-lroot"));
	assert_false(ml_relay_user_valid("Root"));
}

static void test_relay__bad_args(void **state)
{
	static const char *const bad_hosts[] = {"-oProxyCommand=touch /x",
						"a b", "h;rm", "h\n", ""};
	size_t i;

	ML_UNUSED(state);
	assert_int_equal(call(NULL, "relay_key",
			      json_pack("{s:s}", "deploy", "../../etc")),
			 ML_EPROTO);
	assert_int_equal(
		call(NULL, "relay_allow",
		     json_pack("{s:s,s:s,s:s}", "deploy", "d1", "public_key",
			       KEY "\nssh-ed25519 AAAA", "from", "10.0.0.1")),
		ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "public_key"));
	assert_int_equal(
		call(NULL, "relay_allow",
		     json_pack("{s:s,s:s,s:s}", "deploy", "d1", "public_key",
			       "no-pty,command=\"/bin/sh\" " KEY, "from",
			       "10.0.0.1")),
		ML_EPROTO);
	assert_int_equal(
		call(NULL, "relay_allow",
		     json_pack("{s:s,s:s,s:s}", "deploy", "d1", "public_key",
			       KEY, "from", "10.0.0.1\",command=\"sh")),
		ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "'from'"));
	assert_int_equal(call(NULL, "relay_allow",
			      json_pack("{s:s,s:s,s:s,s:i}", "deploy", "d1",
					"public_key", KEY, "from", "10.0.0.1",
					"ttl_s", 0)),
			 ML_EPROTO);
	for (i = 0; i < ML_ARRAY_SIZE(bad_hosts); i++) {
		assert_int_equal(
			call(NULL, "relay_send",
			     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d1",
				       "host", bad_hosts[i], "host_key", HKEY,
				       "digests", DG)),
			ML_EPROTO);
		assert_non_null(strstr(ml_err_msg(), "'host'"));
	}
	assert_int_equal(
		call(NULL, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d1", "host",
			       "10.0.0.2", "host_key", HKEY "\n* ssh-rsa AAAA",
			       "digests", DG)),
		ML_EPROTO);
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d1",
					"host", "10.0.0.2", "host_key", HKEY,
					"digests", "sha256:XYZ")),
			 ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "digest 1"));
	assert_int_equal(
		call(NULL, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[]}", "deploy", "d1", "host",
			       "10.0.0.2", "host_key", HKEY, "digests")),
		ML_EPROTO);
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:i,s:s,s:[s]}", "deploy",
					"d1", "host", "10.0.0.2", "port", 0,
					"host_key", HKEY, "digests", DG)),
			 ML_EPROTO);
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:s,s:[s]}", "deploy",
					"d1", "host", "10.0.0.2", "user", "-oX",
					"host_key", HKEY, "digests", DG)),
			 ML_EPROTO);
	/* valid, but no key was made for the deploy */
	assert_int_equal(
		call(NULL, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d1", "host",
			       "10.0.0.2", "host_key", HKEY, "digests", DG)),
		ML_ENOTFOUND);
	assert_int_equal(
		call(NULL, "relay_end", json_pack("{s:s}", "deploy", "a/b")),
		ML_EPROTO);
}

/* A file under tmp made days days ago. */
static void age_file(const char *rel, int days)
{
	char *p = ml_xasprintf("%s/%s", tmp, rel);
	struct timeval tv[2];

	ml_test_write(tmp, rel, "x\n");
	tv[0].tv_sec = time(NULL) - (time_t)days * 86400;
	tv[0].tv_usec = 0;
	tv[1] = tv[0];
	assert_int_equal(utimes(p, tv), 0);
	free(p);
}

static bool have_file(const char *rel)
{
	char *p = ml_xasprintf("%s/%s", tmp, rel);
	struct stat st;
	bool yes = lstat(p, &st) == 0;

	free(p);
	return yes;
}

static void test_relay__key_allow_end(void **state)
{
	json_t *res = NULL;
	char *pub, *key, *text, *kpath;
	struct stat st;

	ML_UNUSED(state);
	/* a line of the user's own, which relay_end must keep */
	ml_test_write(
		tmp, "home/.ssh/authorized_keys",
		KEY " admin@laptop\n"
		    "restrict,from=\"10.0.0.9\",expiry-time=\"20000101000000\","
		    "command=\"/x receive\" " KEY " mlctl-relay:old-1\n"
		    "restrict,from=\"10.0.0.9\",expiry-time=\"29990101000000\","
		    "command=\"/x receive\" " KEY " mlctl-relay:live-2\n");
	/* the keys of a controller that died 8 days ago, and of one that
	 * may still run (3 days: within the longest TTL) */
	age_file("state/relay/old-9.key", 8);
	age_file("state/relay/old-9.key.pub", 8);
	age_file("state/relay/old-9.known_hosts", 8);
	age_file("state/relay/recent-3.key", 3);
	assert_int_equal(
		call(&res, "relay_key", json_pack("{s:s}", "deploy", "d1")), 0);
	assert_int_equal(
		json_integer_value(json_object_get(res, "stale_removed")), 1);
	assert_false(have_file("state/relay/old-9.key"));
	assert_false(have_file("state/relay/old-9.key.pub"));
	assert_false(have_file("state/relay/old-9.known_hosts"));
	assert_true(have_file("state/relay/recent-3.key"));
	pub = ml_xstrdup(json_string_value(json_object_get(res, "public_key")));
	assert_true(ml_relay_pubkey_valid(pub));
	assert_true(json_is_true(json_object_get(res, "created")));
	json_decref(res);
	kpath = ml_xasprintf("%s/relay/d1.key", ag.state_dir);
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	key = ml_test_slurp(kpath);
	assert_null(strstr(key, pub + 12)); /* the private file, not the pub */
	free(key);
	/* same key again */
	assert_int_equal(
		call(&res, "relay_key", json_pack("{s:s}", "deploy", "d1")), 0);
	assert_string_equal(
		json_string_value(json_object_get(res, "public_key")), pub);
	assert_false(json_is_true(json_object_get(res, "created")));
	json_decref(res);

	assert_int_equal(call(&res, "relay_allow",
			      json_pack("{s:s,s:s,s:s,s:i}", "deploy", "d1",
					"public_key", pub, "from",
					"10.77.30.11", "ttl_s", 600)),
			 0);
	assert_true(json_is_true(json_object_get(res, "added")));
	/* the expired line of a dead controller's deploy went, not the
	 * live one */
	assert_int_equal(
		json_integer_value(json_object_get(res, "expired_removed")), 1);
	json_decref(res);
	assert_int_equal(call(&res, "relay_allow",
			      json_pack("{s:s,s:s,s:s,s:i}", "deploy", "d1",
					"public_key", pub, "from",
					"10.77.30.11", "ttl_s", 600)),
			 0);
	assert_false(json_is_true(json_object_get(res, "added")));
	json_decref(res);
	text = ml_test_slurp(authkeys);
	assert_non_null(strstr(text, "live-2\nrestrict,from=\"10.77.30.11\","
				     "expiry-time=\""));
	assert_non_null(strstr(text, "command=\"env MLCTL_STATE_DIR="));
	assert_non_null(
		strstr(text, " /var/lib/mlctl/bin/mlctl-agent receive\" "));
	assert_non_null(strstr(text, pub));
	assert_non_null(strstr(text, " mlctl-relay:d1\n"));
	free(text);
	assert_int_equal(stat(authkeys, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644); /* the user's mode kept */

	assert_int_equal(
		call(&res, "relay_end", json_pack("{s:s}", "deploy", "d1")), 0);
	assert_int_equal(
		json_integer_value(json_object_get(res, "removed_lines")), 1);
	assert_true(json_is_true(json_object_get(res, "removed_key")));
	json_decref(res);
	text = ml_test_slurp(authkeys);
	assert_string_equal(text,
			    KEY " admin@laptop\n"
				"restrict,from=\"10.0.0.9\",expiry-time=\""
				"29990101000000\",command=\"/x receive\" " KEY
				" mlctl-relay:live-2\n");
	free(text);
	assert_int_equal(stat(kpath, &st), -1);
	/* again: nothing left to do, not an error */
	assert_int_equal(
		call(&res, "relay_end", json_pack("{s:s}", "deploy", "d1")), 0);
	assert_int_equal(
		json_integer_value(json_object_get(res, "removed_lines")), 0);
	json_decref(res);
	free(kpath);
	free(pub);
}

static void test_relay__receive_refuses(void **state)
{
	static const char *const refused[] = {"list",	     "container_run",
					      "relay_allow", "lock_acquire",
					      "image_load",  "prune"};
	json_t *req, *rep;
	size_t i;

	ML_UNUSED(state);
	ag.receive_only = true;
	req = json_pack("{s:i,s:i,s:s,s:{s:[i]}}", "v", 1, "id", 1, "op",
			"hello", "args", "versions", 1);
	rep = ml_agent_dispatch(&ag, req);
	assert_true(json_is_true(json_object_get(rep, "ok")));
	json_decref(req);
	json_decref(rep);
	for (i = 0; i < ML_ARRAY_SIZE(refused); i++) {
		req = json_pack("{s:i,s:i,s:s,s:{}}", "v", 1, "id", 2, "op",
				refused[i], "args");
		rep = ml_agent_dispatch(&ag, req);
		assert_false(json_is_true(json_object_get(rep, "ok")));
		assert_non_null(strstr(
			json_string_value(json_object_get(
				json_object_get(rep, "error"), "message")),
			"only receives blobs"));
		json_decref(req);
		json_decref(rep);
	}
	req = json_pack("{s:i,s:i,s:s,s:{s:[s]}}", "v", 1, "id", 3, "op",
			"blobs_have", "args", "digests", DG);
	rep = ml_agent_dispatch(&ag, req);
	assert_true(json_is_true(json_object_get(rep, "ok")));
	json_decref(req);
	json_decref(rep);
	ag.receive_only = false;
	ml_agent_release(&ag);
}

/* Write bytes as a file (creating directories). */
static void put_file(const char *path, const void *p, size_t n)
{
	char *dir = ml_xstrdup(path), *s;
	int fd;

	for (s = strchr(dir + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(dir, 0700);
		*s = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
	free(dir);
}

static void test_relay__send_resumes(void **state)
{
	const char *agent = getenv("MLCTL_AGENT_BIN");
	size_t size = (3 << 20) + 12345, part = (1 << 20) + 7, i;
	char hex[ML_SHA256_HEX], *dg, *p, *recv, *script, *body;
	unsigned char *data;
	json_t *res = NULL, *b;
	char hex2[ML_SHA256_HEX];

	ML_UNUSED(state);
	if (!agent || access(agent, X_OK) < 0)
		skip();
	data = ml_xmalloc(size);
	for (i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	ml_sha256_hex(data, size, hex);
	dg = ml_xasprintf("sha256:%s", hex);
	p = ml_xasprintf("%s/blobs/sha256/%s", ag.state_dir, hex);
	put_file(p, data, size);
	free(p);
	recv = ml_xasprintf("%s/recv", tmp);
	p = ml_xasprintf("%s/blobs/tmp/%s.part", recv, hex);
	put_file(p, data, part);
	free(p);
	/* the stand-in for ssh: the receiver's forced command, run here */
	script = ml_xasprintf("%s/fake-ssh", tmp);
	body = ml_xasprintf("#!/bin/sh\nMLCTL_STATE_DIR='%s' exec '%s' -q "
			    "receive\n",
			    recv, agent);
	ml_test_write(tmp, "fake-ssh", body);
	chmod(script, 0755);
	setenv("MLCTL_RELAY_SSH_BIN", script, 1);

	assert_int_equal(
		call(NULL, "relay_key", json_pack("{s:s}", "deploy", "d2")), 0);
	assert_int_equal(
		call(&res, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d2", "host",
			       "10.0.0.2", "host_key", HKEY, "digests", dg)),
		0);
	b = json_array_get(json_object_get(res, "blobs"), 0);
	assert_int_equal(json_integer_value(json_object_get(b, "offset")),
			 part);
	assert_int_equal(json_integer_value(json_object_get(b, "sent")),
			 size - part);
	assert_int_equal(json_integer_value(json_object_get(res, "bytes_sent")),
			 size - part);
	json_decref(res);
	p = ml_xasprintf("%s/blobs/sha256/%s", recv, hex);
	assert_int_equal(ml_sha256_file(p, hex2), 0);
	assert_string_equal(hex, hex2);
	free(p);
	/* a second send finds it stored and sends nothing */
	assert_int_equal(
		call(&res, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d2", "host",
			       "10.0.0.2", "host_key", HKEY, "digests", dg)),
		0);
	b = json_array_get(json_object_get(res, "blobs"), 0);
	assert_true(json_is_true(json_object_get(b, "existed")));
	assert_int_equal(json_integer_value(json_object_get(res, "bytes_sent")),
			 0);
	json_decref(res);
	/* a probe connects and says hello, and sends nothing */
	assert_int_equal(call(&res, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:b}", "deploy", "d2",
					"host", "10.0.0.2", "host_key", HKEY,
					"probe", 1)),
			 0);
	assert_int_equal(json_integer_value(json_object_get(res, "bytes_sent")),
			 0);
	json_decref(res);
	/* a receiver that cannot be started: a clear error, no hang */
	ml_test_write(tmp, "fake-ssh",
		      "#!/bin/sh\necho 'ssh: connect to host 10.0.0.2 port 22: "
		      "Connection timed out' >&2\nexit 255\n");
	assert_int_equal(
		call(NULL, "relay_send",
		     json_pack("{s:s,s:s,s:s,s:[s]}", "deploy", "d2", "host",
			       "10.0.0.2", "host_key", HKEY, "digests", dg)),
		ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "relay to 10.0.0.2 failed: ssh: "
					     "connect to host"));
	assert_non_null(strstr(ml_err_msg(), "(ssh exit 255)"));
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:b}", "deploy", "d2",
					"host", "10.0.0.2", "host_key", HKEY,
					"probe", 1)),
			 ML_EHOST);
	assert_non_null(strstr(ml_err_msg(), "connect to host"));
	assert_int_equal(
		call(NULL, "relay_end", json_pack("{s:s}", "deploy", "d2")), 0);
	unsetenv("MLCTL_RELAY_SSH_BIN");
	free(body);
	free(script);
	free(recv);
	free(dg);
	free(data);
}

/* The bytes of a follow test: the sender's .part grows while it sends. */
struct grower {
	const char *part, *final, *recv_part;
	const unsigned char *data;
	size_t have, size;
	bool give_up;	   /* delete the .part instead of completing it */
	bool passed_early; /* the receiver had bytes before the sender had all
			    */
};

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static void *grow(void *arg)
{
	struct grower *g = arg;
	int i, fd;

	/* wait (10 s at most) until the receiver holds what the sender has:
	 * bytes passed on before the sender's copy is complete */
	for (i = 0; i < 1000 && file_size(g->recv_part) < g->have; i++)
		usleep(10000);
	g->passed_early = file_size(g->recv_part) >= g->have;
	if (g->give_up) {
		unlink(g->part);
		return NULL;
	}
	fd = open(g->part, O_WRONLY | O_APPEND);
	if (fd >= 0) {
		if (write(fd, g->data + g->have, g->size - g->have) !=
		    (ssize_t)(g->size - g->have))
			g->passed_early = false;
		close(fd);
	}
	rename(g->part, g->final);
	return NULL;
}

static json_t *follow_args(const char *dg, size_t size, int stall_s)
{
	return json_pack("{s:s,s:s,s:s,s:[s],s:{s:I},s:i}", "deploy", "d3",
			 "host", "10.0.0.2", "host_key", HKEY, "digests", dg,
			 "follow", dg, (json_int_t)size, "stall_s", stall_s);
}

/*
 * relay_send "follow": a blob this host is still receiving is passed on
 * as it grows (the receiver holds its first MiB before the sender has the
 * rest), and it ends with a clear "following blob" error when the copy
 * here is given up, stops growing, or never begins.
 */
static void test_relay__send_follows(void **state)
{
	const char *agent = getenv("MLCTL_AGENT_BIN");
	size_t size = (3 << 20) + 999, have = 1 << 20, i;
	char hex[ML_SHA256_HEX], hex2[ML_SHA256_HEX], *dg, *recv, *script,
		*body;
	unsigned char *data;
	json_t *res = NULL;
	struct grower g = {0};
	pthread_t th;
	int rc;

	ML_UNUSED(state);
	if (!agent || access(agent, X_OK) < 0)
		skip();
	data = ml_xmalloc(size);
	for (i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 40503u >> 7);
	ml_sha256_hex(data, size, hex);
	dg = ml_xasprintf("sha256:%s", hex);
	recv = ml_xasprintf("%s/recv3", tmp);
	script = ml_xasprintf("%s/fake-ssh3", tmp);
	body = ml_xasprintf("#!/bin/sh\nMLCTL_STATE_DIR='%s' exec '%s' -q "
			    "receive\n",
			    recv, agent);
	ml_test_write(tmp, "fake-ssh3", body);
	chmod(script, 0755);
	setenv("MLCTL_RELAY_SSH_BIN", script, 1);
	assert_int_equal(
		call(NULL, "relay_key", json_pack("{s:s}", "deploy", "d3")), 0);
	g.part = ml_xasprintf("%s/blobs/tmp/%s.part", ag.state_dir, hex);
	g.final = ml_xasprintf("%s/blobs/sha256/%s", ag.state_dir, hex);
	g.recv_part = ml_xasprintf("%s/blobs/tmp/%s.part", recv, hex);
	g.data = data;
	g.have = have;
	g.size = size;

	/* arguments */
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:[s],s:[i]}", "deploy",
					"d3", "host", "10.0.0.2", "host_key",
					HKEY, "digests", dg, "follow", 1)),
			 ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "'follow'"));
	assert_int_equal(call(NULL, "relay_send",
			      json_pack("{s:s,s:s,s:s,s:[s],s:{s:i}}", "deploy",
					"d3", "host", "10.0.0.2", "host_key",
					HKEY, "digests", dg, "follow", dg, -1)),
			 ML_EPROTO);
	assert_int_equal(call(NULL, "relay_send", follow_args(dg, size, 0)),
			 ML_EPROTO);
	assert_non_null(strstr(ml_err_msg(), "'stall_s'"));

	/* never begins: no .part here at all */
	rc = call(NULL, "relay_send", follow_args(dg, size, 1));
	assert_int_equal(rc, ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "following blob sha256:"));
	assert_non_null(strstr(ml_err_msg(), "none of it arrived here in 1 s"));

	/* stops growing: a first MiB, then nothing */
	put_file(g.part, data, have);
	assert_int_equal(call(NULL, "relay_send", follow_args(dg, size, 1)),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "no byte for 1 s at 1048576 of"));

	/* given up: its put deletes the .part (the receiver starts over,
	 * so that what it holds came through this send) */
	unlink(g.recv_part);
	g.give_up = true;
	assert_int_equal(pthread_create(&th, NULL, grow, &g), 0);
	assert_int_equal(call(NULL, "relay_send", follow_args(dg, size, 5)),
			 ML_EFAIL);
	pthread_join(th, NULL);
	assert_true(g.passed_early);
	assert_non_null(strstr(ml_err_msg(), "its copy here was given up at "
					     "1048576 of"));

	/* grows to the end and is stored: the receiver stores it whole, and
	 * held the first MiB before the sender had the rest */
	put_file(g.part, data, have);
	unlink(g.recv_part);
	g.give_up = false;
	g.passed_early = false;
	assert_int_equal(pthread_create(&th, NULL, grow, &g), 0);
	assert_int_equal(call(&res, "relay_send", follow_args(dg, size, 5)), 0);
	pthread_join(th, NULL);
	assert_true(g.passed_early);
	assert_int_equal(json_integer_value(json_object_get(res, "bytes_sent")),
			 size);
	json_decref(res);
	free((char *)g.recv_part);
	g.recv_part = ml_xasprintf("%s/blobs/sha256/%s", recv, hex);
	assert_int_equal(ml_sha256_file(g.recv_part, hex2), 0);
	assert_string_equal(hex, hex2);

	assert_int_equal(
		call(NULL, "relay_end", json_pack("{s:s}", "deploy", "d3")), 0);
	unsetenv("MLCTL_RELAY_SSH_BIN");
	free((char *)g.part);
	free((char *)g.final);
	free((char *)g.recv_part);
	free(body);
	free(script);
	free(recv);
	free(dg);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay__checks),
		cmocka_unit_test(test_relay__bad_args),
		cmocka_unit_test(test_relay__key_allow_end),
		cmocka_unit_test(test_relay__receive_refuses),
		cmocka_unit_test(test_relay__send_resumes),
		cmocka_unit_test(test_relay__send_follows),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
