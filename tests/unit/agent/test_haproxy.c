/*
 * Unit tests of agent/lb/ and the lb_* ops: configuration rendering
 * (golden text, structure digest), validation of every field that reaches
 * the configuration (newline and directive injection), the `show stat` CSV
 * and `show servers state` parsers on text captured from HAProxy 2.6, and
 * the ops against a real HAProxy that the test starts on loopback, with a
 * private state dir and free ports, in front of small HTTP servers running
 * in threads on 127.0.0.1 (and the status view's words for what that
 * HAProxy says of a failing server). Every HAProxy started here is stopped
 * through the pid file it wrote. Traffic goes to 127.0.0.1 only, every load
 * loop is bounded in count and time.
 *
 * The live tests need the haproxy binary; without it they are skipped.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/agent.h"
#include "agent/lb/internal.h"
#include "orchestrator/view/status.h"
#include "tests/support/proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#define APP "demo"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- ops ---------------------------------------------------------------- */

static struct ml_agent ag;

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

/* Run op with args (stolen); *res is set on success (caller's). */
static int call(json_t **res, const char *op, json_t *args)
{
	json_t *r = NULL;
	int rc;

	assert_non_null(args);
	ml_err_clear();
	rc = op_named(op)->run(&ag, args, &r);
	json_decref(args);
	if (rc == 0)
		assert_true(json_is_object(r));
	if (res)
		*res = r;
	else
		json_decref(r);
	return rc;
}

/* ---- rendering and validation ------------------------------------------ */

static json_t *server(const char *name, const char *addr, int port,
		      const char *state, int weight)
{
	return json_pack("{s:s,s:s,s:i,s:s,s:i}", "name", name, "address", addr,
			 "port", port, "state", state, "weight", weight);
}

static json_t *golden_args(void)
{
	return json_pack("{s:s,s:i,s:s,s:{s:s,s:i,s:i,s:i,s:i},s:i,s:[o,o,o]}",
			 "app", APP, "listen_port", 8080, "balance",
			 "leastconn", "health", "path", "/healthz?full=1",
			 "interval_ms", 1500, "timeout_ms", 800,
			 "healthy_threshold", 2, "unhealthy_threshold", 3,
			 "drain_timeout_ms", 45000, "servers",
			 server("vm1-a0", "10.0.0.11", 9000, "ready", 100),
			 server("vm2_b.0", "fd00::12", 9001, "drain", 50),
			 server("vm3-a0", "vm3.example.net", 9000, "maint", 7));
}

static const char golden[] =
	"# HAProxy for app 'demo', rendered by mlctl-agent; do not edit\n"
	"# mlctl-structure sha256:@STRUCT@\n"
	"global\n"
	"\tmaster-worker\n"
	"\tpidfile /var/lib/mlctl/haproxy/demo/haproxy.pid\n"
	"\tstats socket /var/lib/mlctl/haproxy/demo/admin.sock mode 600 "
	"level admin expose-fd listeners\n"
	"\tstats timeout 30s\n"
	"\tserver-state-file /var/lib/mlctl/haproxy/demo/server-state\n"
	"\thard-stop-after 45000ms\n"
	"\n"
	"ring mlctl_requests\n"
	"\tformat raw\n"
	"\tmaxlen 256\n"
	"\tsize 2097152\n"
	"\n"
	"defaults\n"
	"\tmode http\n"
	"\ttimeout connect 1s\n"
	"\ttimeout client 60s\n"
	"\ttimeout server 300s\n"
	"\ttimeout http-request 10s\n"
	"\ttimeout http-keep-alive 10s\n"
	"\ttimeout queue 30s\n"
	"\ttimeout check 800ms\n"
	"\tload-server-state-from-file global\n"
	"\toption redispatch 1\n"
	"\tretries 3\n"
	"\tretry-on conn-failure empty-response\n"
	"\n"
	"frontend fe_demo\n"
	"\tbind 0.0.0.0:8080\n"
	"\toption forwardfor\n"
	"\tlog ring@mlctl_requests local0 info\n"
	"\tlog-format \"%Ts.%ms %s %ST %Ta %Tr %tsc\"\n"
	"\tdefault_backend demo\n"
	"\n"
	"backend demo\n"
	"\tbalance leastconn\n"
	"\toption httpchk GET /healthz?full=1\n"
	"\thttp-check expect status 200-399\n"
	"\tdefault-server inter 1500ms fall 3 rise 2 init-addr "
	"last,libc,none\n"
	"\tserver vm1-a0 10.0.0.11:9000 check weight 100\n"
	"\tserver vm2_b.0 [fd00::12]:9001 check weight 0\n"
	"\tserver vm3-a0 vm3.example.net:9000 check weight 7 disabled\n"
	"\n"
	"frontend mlctl_stats\n"
	"\tbind 127.0.0.1:8404\n"
	"\thttp-request use-service prometheus-exporter if { path /metrics "
	"}\n"
	"\thttp-request return status 404\n";

/* Shaped like PEM; only haproxy -c can tell they are not real. */
#define FAKE_CERT                                                          \
	"-----BEGIN CERTIFICATE-----\nTUlJQ2Zha2U=\n-----END CERTIFICATE-----\n"
#define FAKE_KEY                                                           \
	"-----BEGIN PRIVATE KEY-----\nTUlJRWZha2U=\n-----END PRIVATE KEY-----\n"

static char *render(json_t *args, int expect_rc)
{
	struct ml_lb_config c;
	struct ml_haproxy h;
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	int rc;

	rc = ml_lb_config_from_json(&c, args);
	json_decref(args);
	assert_int_equal(rc, expect_rc);
	if (rc < 0) {
		ml_lb_config_release(&c);
		return NULL;
	}
	assert_int_equal(ml_haproxy_init(&h, "/var/lib/mlctl", c.app), 0);
	assert_int_equal(ml_haproxy_render(&b, &c, &h), 0);
	ml_haproxy_release(&h);
	ml_lb_config_release(&c);
	return ml_buf_detach(&b, NULL);
}

static void test_haproxy__render_golden(void **state)
{
	char *text = render(golden_args(), 0), *again, *want;
	char hex[65], hex2[65];
	struct ml_buf w = ML_BUF_INIT(1 << 20);
	const char *at = strstr(golden, "@STRUCT@");
	json_t *args;

	assert_true(ml_haproxy_structure(hex, text));
	ml_buf_add(&w, golden, (size_t)(at - golden));
	ml_buf_addstr(&w, hex);
	ml_buf_addstr(&w, at + 8);
	want = ml_buf_detach(&w, NULL);
	assert_string_equal(text, want);

	/* deterministic */
	again = render(golden_args(), 0);
	assert_string_equal(text, again);
	free(again);

	/* states and weights change the text, not the structure */
	args = golden_args();
	json_object_set_new(json_array_get(json_object_get(args, "servers"), 0),
			    "state", json_string("maint"));
	json_object_set_new(json_array_get(json_object_get(args, "servers"), 1),
			    "weight", json_integer(3));
	again = render(args, 0);
	assert_string_not_equal(text, again);
	assert_true(ml_haproxy_structure(hex2, again));
	assert_string_equal(hex, hex2);
	free(again);

	/* an address does change it */
	args = golden_args();
	json_object_set_new(json_array_get(json_object_get(args, "servers"), 0),
			    "address", json_string("10.0.0.99"));
	again = render(args, 0);
	assert_true(ml_haproxy_structure(hex2, again));
	assert_string_not_equal(hex, hex2);
	free(again);

	/* TLS (the stored PEM, content-addressed), modern defaults, a
	 * redirect, and no stats frontend */
	args = golden_args();
	json_object_set_new(args, "tls_cert", json_string(FAKE_CERT));
	json_object_set_new(args, "tls_key", json_string(FAKE_KEY));
	json_object_set_new(args, "redirect_port", json_integer(8081));
	json_object_set_new(args, "stats_port", json_integer(0));
	json_object_set_new(args, "bind", json_string("::"));
	again = render(args, 0);
	assert_non_null(strstr(again, "\tbind [::]:8080 ssl crt "
				      "/var/lib/mlctl/haproxy/demo/tls/"));
	assert_non_null(strstr(again, ".pem alpn http/1.1\n"));
	assert_non_null(strstr(again, "ssl-min-ver TLSv1.2 no-tls-tickets"));
	assert_non_null(strstr(again, "\tbind [::]:8081\n\thttp-request "
				      "redirect code 301 location https://"));
	assert_null(strstr(again, "BEGIN"));
	assert_null(strstr(again, "mlctl_stats"));
	free(again);

	/* the exporter behind basic auth */
	args = golden_args();
	json_object_set_new(args, "stats_auth",
			    json_pack("{s:s,s:s}", "user", "prom", "password",
				      "s3cr3t-pw"));
	again = render(args, 0);
	assert_non_null(strstr(again, "\tuser prom insecure-password "
				      "s3cr3t-pw\n"));
	assert_non_null(strstr(again, "http-request auth realm mlctl-metrics "
				      "unless { http_auth(mlctl_stats_users) "
				      "}\n\thttp-request use-service"));
	free(again);
	ml_err_clear();
	args = golden_args();
	json_object_set_new(args, "stats_auth",
			    json_pack("{s:s,s:s}", "user", "prom", "password",
				      "has space"));
	assert_null(render(args, ML_EPROTO));
	assert_null(strstr(ml_err_msg(), "has space"));
	args = golden_args();
	json_object_set_new(args, "tls_cert", json_string(FAKE_CERT));
	assert_null(render(args, ML_EPROTO)); /* no key */
	assert_non_null(strstr(ml_err_msg(), "go together"));

	assert_false(ml_haproxy_structure(hex, "global\n"));
	assert_false(ml_haproxy_structure(hex, "# x\n# mlctl-structure "
					       "sha256:abc\n"));
	free(text);
	free(want);
}

/* Set args[key] (or servers[0][key] when server) to the JSON text v. */
static json_t *with(const char *key, const char *v, bool in_server)
{
	json_t *args = golden_args(), *val, *obj;
	json_error_t e;

	val = json_loads(v, JSON_DECODE_ANY, &e);
	if (!val)
		fail_msg("bad test value %s: %s", v, e.text);
	obj = in_server ? json_array_get(json_object_get(args, "servers"), 0)
			: args;
	if (!strncmp(key, "health.", 7)) {
		obj = json_object_get(args, "health");
		key += 7;
	}
	json_object_set_new(obj, key, val);
	return args;
}

static void expect_reject(const char *key, const char *v, bool in_server)
{
	const char *msg;

	ml_err_clear();
	if (render(with(key, v, in_server), ML_EPROTO))
		fail_msg("%s=%s was accepted", key, v);
	msg = ml_err_msg();
	if (!*msg || strchr(msg, '\n') || strchr(msg, '\r'))
		fail_msg("%s=%s: bad message '%s'", key, v, msg);
}

/* health.expect becomes http-check expect rules that haproxy -c takes */
static void test_haproxy__render_expect(void **state)
{
	json_t *args = golden_args();
	struct ml_haproxy h;
	char *text, dir[] = "/tmp/mlctl-hx-XXXXXX", *path;

	ML_UNUSED(state);
	json_object_set_new(
		json_object_get(args, "health"), "expect",
		json_pack("{s:[i,i],s:s,s:{s:s,s:s}}", "status", 200, 204,
			  "body", "it's (ready)", "json", "field",
			  "model.state", "value", "ready"));
	text = render(args, 0);
	assert_non_null(strstr(text, "\thttp-check expect rstatus '^(200|204)$'\n"));
	assert_non_null(strstr(text, "\thttp-check expect rstring "
				     "'it.s \\(ready\\)'\n"));
	assert_non_null(strstr(text, "\thttp-check expect rstring '\"state\""
				     "[[:space:]]*:[[:space:]]*\"?ready\"?"));
	assert_null(strstr(text, "status 200-399"));
	if (access("/usr/sbin/haproxy", X_OK) == 0) {
		assert_non_null(mkdtemp(dir));
		assert_int_equal(ml_haproxy_init(&h, dir, APP), 0);
		path = ml_xasprintf("%s/check.cfg", dir);
		assert_int_equal(ml_haproxy_write_file(path, text, strlen(text)),
				 0);
		if (ml_haproxy_check(&h, path) < 0)
			print_error("%s\n%s\n", ml_err_msg(), text);
		assert_int_equal(ml_haproxy_check(&h, path), 0);
		unlink(path);
		free(path);
		ml_haproxy_release(&h);
		ml_test_rmtree(dir);
	}
	free(text);

	/* bad expectations are protocol errors */
	args = golden_args();
	json_object_set_new(json_object_get(args, "health"), "expect",
			    json_pack("{s:[i]}", "status", 42));
	assert_null(render(args, ML_EPROTO));
}

static void test_haproxy__reject_invalid(void **state)
{
	static const char *const names[] = {
		"\"\"",
		"\"a b\"",
		"\"a\\nb\"",
		"\"-x\"",
		"\".x\"",
		"\"a;b\"",
		"\"a#b\"",
		"\"a/b\"",
		"\"a\\\"b\"",
		"\"\\u00e9t\\u00e9\"",
		"\"a\\rserver evil 1.2.3.4:80\"",
		"\"a\\tb\"",
		"7",
		"null",
		"\"0123456789012345678901234567890123456789012345678901234567"
		"89012345\"",
	};
	static const char *const addrs[] = {
		"\"\"",
		"\"10.0.0.1 \"",
		"\"10.0.0.1\\n\"",
		"\"10.0.0.1\\nlisten x\"",
		"\"-host\"",
		"\"host-\"",
		"\"a..b\"",
		"\".a\"",
		"\"h#x\"",
		"\"h'x\"",
		"\"[::1]\"",
		"\"10.0.0.1:80\"",
		"\"h_x\"",
		"\"${HOME}\"",
		"\"h\\\\x\"",
		"\"fe80::1%eth0\"",
		"1",
	};
	static const char *const ports[] = {"0",   "65536", "-1",  "\"80\"",
					    "1.5", "true",  "null"};
	static const char *const states[] = {"\"up\"", "\"READY\"",
					     "\"ready\\n\"", "1", "\"\""};
	static const char *const weights[] = {"-1", "257", "\"1\"", "1.0"};
	static const char *const paths[] = {
		"\"health\"", "\"/a b\"", "\"/a\\nbind :1\"", "\"/#\"",
		"\"/\\\"x\"", "\"/a'b\"", "\"/a\\\\b\"",      "\"\"",
		"\"/${X}\"",  "5",
	};
	/* a path is no longer a certificate, nor text without markers */
	static const char *const certs[] = {
		"\"/etc/haproxy/x.pem\"", "\"rel.pem\"", "5",
		"\"-----END CERTIFICATE-----\\n-----BEGIN CERTIFICATE-----\"",
		"\"-----BEGIN CERTIFICATE-----\\u0001-----END "
		"CERTIFICATE-----\""};
	static const char *const binds[] = {"\"0.0.0.0\\n\"", "\"localhost\"",
					    "\"0.0.0.0 ssl\"", "\"\""};
	static const char *const balances[] = {
		"\"source\"", "\"roundrobin\\n\"", "\"\"", "1"};
	static const char *const times[] = {"0", "-5", "\"1s\"", "99999999"};
	size_t i;
	char big[300];
	json_t *args, *list;

	for (i = 0; i < ML_ARRAY_SIZE(names); i++)
		expect_reject("name", names[i], true);
	for (i = 0; i < ML_ARRAY_SIZE(names); i++)
		expect_reject("app", names[i], false);
	for (i = 0; i < ML_ARRAY_SIZE(addrs); i++)
		expect_reject("address", addrs[i], true);
	for (i = 0; i < ML_ARRAY_SIZE(ports); i++) {
		expect_reject("port", ports[i], true);
		expect_reject("listen_port", ports[i], false);
	}
	for (i = 0; i < ML_ARRAY_SIZE(states); i++)
		expect_reject("state", states[i], true);
	for (i = 0; i < ML_ARRAY_SIZE(weights); i++)
		expect_reject("weight", weights[i], true);
	for (i = 0; i < ML_ARRAY_SIZE(paths); i++)
		expect_reject("health.path", paths[i], false);
	for (i = 0; i < ML_ARRAY_SIZE(certs); i++)
		expect_reject("tls_cert", certs[i], false);
	for (i = 0; i < ML_ARRAY_SIZE(binds); i++)
		expect_reject("bind", binds[i], false);
	for (i = 0; i < ML_ARRAY_SIZE(balances); i++)
		expect_reject("balance", balances[i], false);
	for (i = 0; i < ML_ARRAY_SIZE(times); i++) {
		expect_reject("health.interval_ms", times[i], false);
		expect_reject("drain_timeout_ms", times[i], false);
	}
	expect_reject("health.healthy_threshold", "0", false);
	expect_reject("health.unhealthy_threshold", "101", false);
	expect_reject("stats_port", "8080", false); /* = listen_port */
	expect_reject("servers", "{}", false);
	expect_reject("servers", "[\"vm1\"]", false);
	expect_reject("health", "\"/\"", false);
	/* a 254-byte DNS name */
	memset(big, 'a', sizeof(big));
	snprintf(
		big, sizeof(big), "\"%s\"",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"bb");
	expect_reject("address", big, true);
	/* a 64-byte label */
	expect_reject(
		"address",
		"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaa.net\"",
		true);

	/* duplicate names */
	args = golden_args();
	list = json_object_get(args, "servers");
	json_object_set_new(json_array_get(list, 1), "name",
			    json_string("vm1-a0"));
	assert_null(render(args, ML_EPROTO));
	assert_non_null(strstr(ml_err_msg(), "both named"));

	/* too many servers */
	args = golden_args();
	list = json_object_get(args, "servers");
	for (i = 0; i < ML_LB_MAX_SERVERS; i++)
		json_array_append(list, json_array_get(list, 0));
	assert_null(render(args, ML_ETOOBIG));

	/* what is accepted */
	assert_true(ml_lb_valid_address("10.0.0.1"));
	assert_true(ml_lb_valid_address("::1"));
	assert_true(ml_lb_valid_address("vm-1.example.com"));
	assert_true(ml_lb_valid_address("localhost"));
	assert_true(ml_lb_valid_name("a"));
	assert_true(ml_lb_valid_name("vm1-a0.b_c"));
	free(render(with("address", "\"fd00::1\"", true), 0));
	free(render(with("name", "\"9.x_y-z\"", true), 0));

	/* the error message escapes what it shows */
	assert_null(
		render(with("address", "\"a\\u001b[31m\"", true), ML_EPROTO));
	assert_non_null(strstr(ml_err_msg(), "\\x1b[31m"));
}

/* ---- parsers -------------------------------------------------------------*/

/* Captured from HAProxy 2.6.12 (`show stat`), cut to the columns' first
 * 70 and a few rows; one check_desc quoted by hand to test quoting. */
static const char stat_sample[] =
	"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,"
	"ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,"
	"lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
	"rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
	"hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,"
	"req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,"
	"comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,"
	"agent_status,agent_code,agent_duration,check_desc,agent_desc,"
	"check_rise,check_fall,check_health,\n"
	"fe_demo,FRONTEND,,,3,7,9978,120,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,"
	"0,0,0,0,,,,0,117,0,0,2,0,,5,9,120,,,0,0,0,0,,,,,,,,,,,,,,\n"
	"demo,s1,0,0,2,4,,80,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,12,0,,1,3,1,,80,,"
	"2,0,,6,L7OK,200,1,0,78,0,0,2,0,,,,80,0,0,,,,,1,\"HTTP status, "
	"\"\"OK\"\"\",,0,0,0,0,,,,Layer7 check passed,,2,3,4,\n"
	"demo,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,0,1,0,1,1,1,1,,1,3,2,,0,,2,0,"
	",0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,"
	",,,Layer4 connection problem,,1,2,0,\n"
	"demo,BACKEND,0,0,2,4,998,80,0,0,0,0,,0,0,0,0,UP,100,1,0,,1,12,1,,1,"
	"3,0,,80,,1,0,,6,,,,0,78,0,0,2,0,,,,80,0,0,0,0,0,0,1,,,0,0,0,0,,,,,,,,"
	"\n"
	"\n";

static const char servers_sample[] =
	"1\n"
	"# be_id be_name srv_id srv_name srv_addr srv_op_state "
	"srv_admin_state srv_uweight srv_iweight srv_time_since_last_change "
	"srv_check_status srv_check_result srv_check_health srv_check_state "
	"srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port "
	"srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
	"srv_agent_port\n"
	"3 demo 1 s1 127.0.0.1 2 4 100 100 0 1 0 1 6 0 0 0 - 18081 - 0 0 - - "
	"0\n"
	"3 demo 2 s2 ::1 0 0 0 0 1 8 2 0 6 0 0 0 - 18082 - 0 0 - - 0\n"
	"3 demo 3 s3 127.0.0.1 0 9 7 7 1 8 2 0 6 0 0 0 localhost 18083 - 0 0 "
	"- - 0\n"
	"\n";

static const char *field(json_t *rows, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(rows, i), key));
}

static void test_haproxy__parse_tables(void **state)
{
	json_t *rows = NULL;

	assert_int_equal(ml_haproxy_parse_table(&rows, stat_sample, ','), 0);
	assert_int_equal(json_array_size(rows), 4);
	assert_string_equal(field(rows, 0, "pxname"), "fe_demo");
	assert_string_equal(field(rows, 0, "svname"), "FRONTEND");
	assert_int_equal(
		ml_haproxy_field_int(json_array_get(rows, 0), "req_tot", -1),
		120);
	assert_int_equal(
		ml_haproxy_field_int(json_array_get(rows, 0), "hrsp_5xx", -1),
		2);
	assert_string_equal(field(rows, 1, "svname"), "s1");
	assert_string_equal(field(rows, 1, "status"), "UP");
	assert_string_equal(field(rows, 1, "check_status"), "L7OK");
	assert_string_equal(field(rows, 1, "last_chk"), "HTTP status, \"OK\"");
	/* fields after a quoted one stay in place */
	assert_string_equal(field(rows, 1, "check_desc"),
			    "Layer7 check passed");
	assert_int_equal(
		ml_haproxy_field_int(json_array_get(rows, 1), "scur", -1), 2);
	assert_string_equal(field(rows, 2, "check_desc"),
			    "Layer4 connection problem");
	assert_string_equal(field(rows, 2, "status"), "DOWN");
	/* empty field: default */
	assert_int_equal(
		ml_haproxy_field_int(json_array_get(rows, 1), "slim", -7), -7);
	assert_string_equal(field(rows, 3, "svname"), "BACKEND");
	json_decref(rows);

	assert_int_equal(ml_haproxy_parse_table(&rows, servers_sample, ' '), 0);
	assert_int_equal(json_array_size(rows), 3);
	assert_string_equal(field(rows, 0, "srv_name"), "s1");
	assert_string_equal(field(rows, 1, "srv_addr"), "::1");
	assert_string_equal(field(rows, 2, "srv_fqdn"), "localhost");
	assert_string_equal(
		ml_haproxy_admin_word(ml_haproxy_field_int(
			json_array_get(rows, 0), "srv_admin_state", -1)),
		"ready"); /* 4: CMAINT alone is not maintenance */
	assert_string_equal(
		ml_haproxy_admin_word(ml_haproxy_field_int(
			json_array_get(rows, 2), "srv_admin_state", -1)),
		"maint");
	assert_string_equal(ml_haproxy_admin_word(8), "drain");
	assert_string_equal(ml_haproxy_admin_word(0x20), "maint");
	assert_string_equal(ml_haproxy_op_word(2), "up");
	assert_string_equal(ml_haproxy_op_word(0), "down");
	assert_string_equal(ml_haproxy_op_word(9), "unknown");
	json_decref(rows);

	/* short rows, extra fields, no header */
	assert_int_equal(
		ml_haproxy_parse_table(&rows, "# a,b,c\n1\n1,2,3,4\n", ','), 0);
	assert_string_equal(field(rows, 0, "a"), "1");
	assert_null(field(rows, 0, "b"));
	assert_string_equal(field(rows, 1, "c"), "3");
	json_decref(rows);
	assert_int_equal(
		ml_haproxy_parse_table(&rows, "Unknown command\n", ','),
		ML_EPROTO);
	assert_int_equal(ml_haproxy_parse_table(&rows, "", ','), ML_EPROTO);
	/* an unterminated quote ends the field at the line's end */
	assert_int_equal(ml_haproxy_parse_table(&rows, "# a,b\n\"x,y\n", ','),
			 0);
	assert_string_equal(field(rows, 0, "a"), "x,y");
	json_decref(rows);
}

/* ---- a real HAProxy ----------------------------------------------------- */

static bool have_haproxy;
static char *tmp;

/* One HTTP server on 127.0.0.1: GET /health answers 200 (503 when not
 * healthy), /slow waits slow_ms, anything else answers the name. */
struct backend {
	char name[16];
	int fd, port;
	pthread_t th;
	atomic_int requests, checks, active, slow_active;
	atomic_bool healthy, stop;
	long slow_ms;
};

struct conn {
	struct backend *b;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct backend *b = c->b;
	struct timeval tv = {5, 0};
	char req[4096], resp[256];
	size_t len = 0;
	ssize_t n;
	int code = 200;

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < sizeof(req) - 1) {
		n = read(c->fd, req + len, sizeof(req) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[len] = '\0';
	if (!strncmp(req, "GET /nope", 9)) {
		b->checks++;
		code = 404; /* a health path the app does not serve */
	} else if (!strncmp(req, "GET /health", 11) ||
		   !strncmp(req, "OPTIONS", 7)) {
		b->checks++;
		code = b->healthy ? 200 : 503;
	} else if (len) {
		if (!strncmp(req, "GET /slow", 9)) {
			b->slow_active++;
			sleep_ms(b->slow_ms);
			b->slow_active--;
		}
		b->requests++;
	}
	if (len) {
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
			     "Connection: close\r\n\r\n%s",
			     code, strlen(b->name), b->name);
		if (write(c->fd, resp, (size_t)n) < 0)
			code = -1;
	}
	close(c->fd);
	free(c);
	b->active--;
	return NULL;
}

static void *backend_main(void *arg)
{
	struct backend *b = arg;
	struct pollfd pfd = {b->fd, POLLIN, 0};
	pthread_attr_t at;
	pthread_t t;
	struct conn *c;
	int fd;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	while (!b->stop) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		fd = accept4(b->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = ml_xcalloc(1, sizeof(*c));
		c->b = b;
		c->fd = fd;
		b->active++;
		if (pthread_create(&t, &at, conn_main, c)) {
			b->active--;
			close(fd);
			free(c);
		}
	}
	pthread_attr_destroy(&at);
	return NULL;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in sin = {0};
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 128), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A port that was free a moment ago. */
static int free_port(void)
{
	int port, fd = listen_loopback(&port);

	close(fd);
	return port;
}

static void backend_start(struct backend *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->healthy = true;
	b->slow_ms = 1000;
	b->fd = listen_loopback(&b->port);
	assert_int_equal(pthread_create(&b->th, NULL, backend_main, b), 0);
}

static void backend_stop(struct backend *b)
{
	int64_t deadline = ml_mono_ms() + 5000;

	b->stop = true;
	pthread_join(b->th, NULL);
	close(b->fd);
	while (b->active > 0 && ml_mono_ms() < deadline)
		sleep_ms(10);
}

/* GET path from 127.0.0.1:port, a new connection each time; returns the
 * status (-1 on a transport failure), the body into body. */
static int http_get(int port, const char *path, char *body, size_t cap)
{
	struct sockaddr_in sin = {0};
	struct timeval tv = {5, 0};
	char buf[8192], req[256];
	size_t len = 0;
	const char *p;
	ssize_t n;
	int fd, status = -1;

	if (body && cap)
		body[0] = '\0';
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto out;
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
		     "\r\n",
		     path);
	if (write(fd, req, (size_t)n) != n)
		goto out;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len < 12 || strncmp(buf, "HTTP/1.", 7))
		goto out;
	status = atoi(buf + 9);
	p = strstr(buf, "\r\n\r\n");
	if (p && body && cap)
		snprintf(body, cap, "%s", p + 4);
out:
	close(fd);
	return status;
}

struct load {
	int port, count, max_ms;
	pthread_t th;
	atomic_int done, ok, failed;
	int first_failure;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	int64_t end = ml_mono_ms() + l->max_ms;
	int i, st;

	for (i = 0; i < l->count && ml_mono_ms() < end; i++) {
		st = http_get(l->port, "/", NULL, 0);
		if (st == 200) {
			l->ok++;
		} else {
			if (!l->failed)
				l->first_failure = st;
			l->failed++;
		}
		l->done++;
		sleep_ms(2);
	}
	return NULL;
}

static struct backend b1, b2, b3, b4;
static int lb_port, stats_port;

static json_t *apply_args(json_t *servers)
{
	return json_pack("{s:s,s:s,s:i,s:i,s:s,s:{s:s,s:i,s:i,s:i,s:i},s:i,"
			 "s:o}",
			 "app", APP, "bind", "127.0.0.1", "listen_port",
			 lb_port, "stats_port", stats_port, "balance",
			 "roundrobin", "health", "path", "/health",
			 "interval_ms", 200, "timeout_ms", 1000,
			 "healthy_threshold", 1, "unhealthy_threshold", 2,
			 "drain_timeout_ms", 5000, "servers", servers);
}

/* Stop the app's HAProxy through the pid file it wrote, if it is ours. */
static void stop_haproxy(const char *app)
{
	struct ml_haproxy h;
	int64_t deadline = ml_mono_ms() + 5000;
	pid_t pid = 0;

	if (ml_haproxy_init(&h, ag.state_dir, app) < 0)
		return;
	if (ml_haproxy_master_pid(&pid, &h) == 0 && pid > 0) {
		kill(pid, SIGTERM);
		while (ml_mono_ms() < deadline) {
			pid_t p = 0;

			if (ml_haproxy_master_pid(&p, &h) == 0 && !p)
				break;
			sleep_ms(20);
		}
	}
	ml_haproxy_release(&h);
}

static json_t *status_server(json_t *st, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(
		json_object_get(st, "servers"), i,
		s) if (!strcmp(json_string_value(json_object_get(s, "name")),
			       name)) return s;
	return NULL;
}

static const char *server_str(const char *name, const char *key)
{
	static char out[64];
	json_t *st = NULL;

	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	snprintf(
		out, sizeof(out), "%s",
		json_string_value(json_object_get(status_server(st, name), key))
			?: "");
	json_decref(st);
	return out;
}

/* Wait until server's health word is want (or fail after 5 s). */
static void wait_health(const char *name, const char *want)
{
	int64_t deadline = ml_mono_ms() + 5000;

	while (strcmp(server_str(name, "health"), want)) {
		if (ml_mono_ms() > deadline)
			fail_msg("%s did not become %s (is %s)", name, want,
				 server_str(name, "health"));
		sleep_ms(50);
	}
}

/* srv_check_health in `show servers state` of server in the backend
 * whose name starts with be. */
static const char *check_health(const char *be, const char *server)
{
	static char out[16];
	struct ml_haproxy h;
	struct ml_buf b = ML_BUF_INIT(1 << 20);
	json_t *rows = NULL, *r;
	size_t i;

	out[0] = 0;
	assert_int_equal(ml_haproxy_init(&h, tmp, APP), 0);
	assert_int_equal(ml_haproxy_cmd(&b, h.admin_sock, "show servers state",
					2000),
			 0);
	assert_int_equal(ml_haproxy_parse_table(&rows, ml_buf_str(&b), ' '), 0);
	json_array_foreach(rows, i, r) {
		const char *bn = json_string_value(json_object_get(r, "be_name"));

		if (!strncmp(bn ?: "", be, strlen(be)) &&
		    !strcmp(json_string_value(json_object_get(r, "srv_name"))
				    ?: "",
			    server))
			snprintf(out, sizeof(out), "%s",
				 json_string_value(json_object_get(
					 r, "srv_check_health")) ?: "");
	}
	json_decref(rows);
	ml_buf_release(&b);
	ml_haproxy_release(&h);
	return out;
}

static pid_t worker_pid(void)
{
	json_t *st = NULL;
	pid_t p;

	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	p = (pid_t)json_integer_value(json_object_get(st, "worker_pid"));
	json_decref(st);
	return p;
}

static int live_setup(void **state)
{
	ml_agent_init(&ag);
	tmp = ml_test_tmpdir("haproxy");
	ag.state_dir = tmp;
	have_haproxy = access("/usr/sbin/haproxy", X_OK) == 0 ||
		       getenv("MLCTL_HAPROXY_BIN");
	backend_start(&b1, "b1");
	backend_start(&b2, "b2");
	backend_start(&b3, "b3");
	backend_start(&b4, "b4");
	lb_port = free_port();
	do
		stats_port = free_port();
	while (stats_port == lb_port);
	return 0;
}

static int live_teardown(void **state)
{
	stop_haproxy(APP);
	stop_haproxy("other");
	backend_stop(&b1);
	backend_stop(&b2);
	backend_stop(&b3);
	backend_stop(&b4);
	ml_test_rmtree(tmp);
	free(tmp);
	return 0;
}

#define SKIP_WITHOUT_HAPROXY()                                                 \
	do {                                                                   \
		if (!have_haproxy) {                                           \
			print_message("no haproxy binary: skipped\n");         \
			skip();                                                \
		}                                                              \
	} while (0)

/* A server whose check is the backend's own, expect lines included,
 * needs no check-only backend (else every deploy of an app whose health
 * expects a status reloaded HAProxy and moved every old server). */
static void test_haproxy__same_check_with_expect_is_the_backends(void **state)
{
	json_t *h = json_pack("{s:s,s:i,s:i,s:i,s:i,s:{s:[i]}}", "path",
			      "/healthz", "interval_ms", 500, "timeout_ms",
			      400, "healthy_threshold", 1,
			      "unhealthy_threshold", 3, "expect", "status",
			      200);
	char *text;

	ML_UNUSED(state);
	text = render(json_pack("{s:s,s:i,s:O,s:[{s:s,s:s,s:i,s:O}]}", "app",
				"demo", "listen_port", 8080, "health", h,
				"servers", "name", "s1", "address", "10.0.0.11",
				"port", 9000, "health", h),
		      0);
	assert_non_null(text);
	assert_null(strstr(text, "chk_"));
	assert_non_null(strstr(text, "server s1 10.0.0.11:9000 check"));
	free(text);
	json_decref(h);
}

/*
 * A server whose own check moves to a check-only backend (or back) takes
 * its check health with it: fully up stays fully up across the reload,
 * instead of starting one failed check from DOWN.
 */
static void test_haproxy__carry_checks(void **state)
{
	static const char dump[] =
		"1\n"
		"# be_id be_name srv_id srv_name srv_addr srv_op_state "
		"srv_admin_state srv_uweight srv_iweight "
		"srv_time_since_last_change srv_check_status srv_check_result "
		"srv_check_health srv_check_state srv_agent_state "
		"bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
		"srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
		"srv_agent_port\n"
		"3 demo 1 old 10.0.0.11 2 0 100 100 40 15 3 4 6 0 0 0 - 9000 - "
		"0 0 - - 0\n"
		"3 demo 2 new 10.0.0.12 2 1 100 100 40 15 3 4 6 0 0 0 - 9001 - "
		"0 0 - - 0\n";
	json_t *args = json_pack(
		"{s:s,s:i,s:{s:s,s:i,s:i,s:i,s:i},s:[{s:s,s:s,s:i,s:{s:s,s:i,"
		"s:i,s:i,s:i}},{s:s,s:s,s:i}]}",
		"app", "demo", "listen_port", 8080, "health", "path", "/nope",
		"interval_ms", 500, "timeout_ms", 400, "healthy_threshold", 1,
		"unhealthy_threshold", 3, "servers", "name", "old", "address",
		"10.0.0.11", "port", 9000, "health", "path", "/healthz",
		"interval_ms", 500, "timeout_ms", 400, "healthy_threshold", 2,
		"unhealthy_threshold", 2, "name", "new", "address", "10.0.0.12",
		"port", 9001);
	struct ml_lb_config c;
	struct ml_buf out = ML_BUF_INIT(1 << 20), back = ML_BUF_INIT(1 << 20);
	char chk[ML_LB_CHECK_NAME_MAX], *want;

	ML_UNUSED(state);
	assert_int_equal(ml_lb_config_from_json(&c, args), 0);
	json_decref(args);
	ml_haproxy_check_backend(chk, &c, c.servers[0].check);
	assert_int_equal(ml_haproxy_carry_checks(&out, dump, &c), 0);
	/* the old server's check health (4) moves to its check-only backend,
	 * at most rise + fall - 1 = 3 of its check; no admin state there */
	want = ml_xasprintf("\n3 %s 1 old 10.0.0.11 2 0 1 1 40 15 3 3 6 0 0 0 "
			    "- 9000 - 0 0 - - 0\n",
			    chk);
	if (!strstr(ml_buf_str(&out), want))
		print_error("%s\nwant: %s\n", ml_buf_str(&out), want);
	assert_non_null(strstr(ml_buf_str(&out), want));
	/* byte for byte: the dump as HAProxy wrote it, then the new row */
	{
		char *whole = ml_xasprintf("%s%s", dump, want + 1);

		assert_string_equal(ml_buf_str(&out), whole);
		free(whole);
	}
	free(want);
	/* the rows that were there stay, the new server's untouched */
	assert_non_null(strstr(ml_buf_str(&out), "\n3 demo 1 old "));
	assert_non_null(strstr(ml_buf_str(&out),
			       "\n3 demo 2 new 10.0.0.12 2 1 100 100 40 15 3 "
			       "4 6 "));
	assert_int_equal(strncmp(ml_buf_str(&out), "1\n# be_id ", 10), 0);

	/* and back: the app's row takes the health of the check-only one,
	 * keeping its own admin state and weights */
	ml_lb_config_release(&c);
	args = json_pack("{s:s,s:i,s:{s:s,s:i,s:i,s:i,s:i},s:[{s:s,s:s,s:i}]}",
			 "app", "demo", "listen_port", 8080, "health", "path",
			 "/healthz", "interval_ms", 500, "timeout_ms", 400,
			 "healthy_threshold", 2, "unhealthy_threshold", 2,
			 "servers", "name", "old", "address", "10.0.0.11",
			 "port", 9000);
	assert_int_equal(ml_lb_config_from_json(&c, args), 0);
	json_decref(args);
	{
		/* as the dump shows it: the app's server tracks, no check */
		char *tracked = ml_xasprintf(
			"1\n# be_name srv_name srv_op_state srv_admin_state "
			"srv_uweight srv_iweight srv_time_since_last_change "
			"srv_check_status srv_check_result srv_check_health "
			"srv_check_state\n"
			"demo old 0 1 100 100 5 0 0 0 0\n"
			"%s old 2 0 1 1 7 15 3 3 6\n",
			chk);

		assert_int_equal(ml_haproxy_carry_checks(&back, tracked, &c),
				 0);
		assert_non_null(strstr(ml_buf_str(&back),
				       "\ndemo old 2 1 100 100 7 15 3 3 6\n"));
		free(tracked);
	}
	ml_lb_config_release(&c);
	ml_buf_release(&back);
	ml_buf_reset(&out);

	/* a dump without the columns it needs is copied as it is */
	assert_int_equal(ml_haproxy_carry_checks(&out, "1\n# be_name x\n"
						       "demo 1\n",
						 &c),
			 0);
	assert_string_equal(ml_buf_str(&out), "1\n# be_name x\ndemo 1\n");
	ml_buf_release(&out);
}

static void test_haproxy__live_start_and_set(void **state)
{
	json_t *res = NULL, *st = NULL, *s;
	char body[64];
	pid_t worker;
	int i, n1, n2, status;

	SKIP_WITHOUT_HAPROXY();

	/* not running yet */
	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	assert_false(json_is_true(json_object_get(st, "running")));
	json_decref(st);
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "drain")),
			 ML_ENOTFOUND);

	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "ready",
				    100)))),
		0);
	assert_true(json_is_true(json_object_get(res, "started")));
	assert_false(json_is_true(json_object_get(res, "reloaded")));
	assert_int_equal(strlen(json_string_value(
				 json_object_get(res, "config_sha256"))),
			 64);
	json_decref(res);
	wait_health("s1", "up");
	wait_health("s2", "up");

	/* requests reach both servers */
	n1 = b1.requests;
	n2 = b2.requests;
	for (i = 0; i < 20; i++) {
		status = http_get(lb_port, "/", body, sizeof(body));
		assert_int_equal(status, 200);
		assert_true(!strcmp(body, "b1") || !strcmp(body, "b2"));
	}
	assert_true(b1.requests - n1 >= 5);
	assert_true(b2.requests - n2 >= 5);

	/* the same apply again: nothing to do */
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "ready",
				    100)))),
		0);
	assert_false(json_is_true(json_object_get(res, "started")));
	assert_false(json_is_true(json_object_get(res, "reloaded")));
	json_decref(res);

	/* lb_status */
	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	assert_true(json_is_true(json_object_get(st, "running")));
	assert_int_equal(json_array_size(json_object_get(st, "servers")), 2);
	s = status_server(st, "s1");
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "address")),
			    "127.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(s, "port")),
			 b1.port);
	assert_string_equal(
		json_string_value(json_object_get(s, "admin_state")), "ready");
	assert_string_equal(json_string_value(json_object_get(s, "op_state")),
			    "UP");
	assert_string_equal(
		json_string_value(json_object_get(s, "check_status")), "L7OK");
	assert_int_equal(json_integer_value(json_object_get(s, "weight")), 100);
	assert_int_equal(json_integer_value(json_object_get(s, "cur_sessions")),
			 0);
	assert_true(json_integer_value(json_object_get(s, "total_sessions")) >=
		    5);
	assert_true(json_is_integer(json_object_get(s, "http_5xx")));
	assert_true(json_integer_value(json_object_get(
			    json_object_get(st, "frontend"), "req_total")) >=
		    20);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(st, "frontend"), "http_5xx")),
			 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(st, "backend"), "status")),
			    "UP");
	json_decref(st);

	/* the Prometheus exporter */
	status = http_get(stats_port, "/metrics", NULL, 0);
	assert_int_equal(status, 200);
	assert_int_equal(http_get(stats_port, "/", NULL, 0), 404);

	/* lb_set: runtime only, the worker stays the same */
	worker = worker_pid();
	assert_true(worker > 0);
	assert_int_equal(call(&res, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "drain")),
			 0);
	assert_string_equal(
		json_string_value(json_object_get(res, "admin_state")),
		"drain");
	assert_string_equal(
		json_string_value(json_object_get(res, "previous_admin_state")),
		"ready");
	json_decref(res);
	n1 = b1.requests;
	for (i = 0; i < 10; i++)
		assert_int_equal(http_get(lb_port, "/", NULL, 0), 200);
	assert_int_equal(b1.requests, n1);
	assert_string_equal(server_str("s1", "op_state"), "DRAIN");

	assert_int_equal(call(&res, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "maint")),
			 0);
	assert_string_equal(
		json_string_value(json_object_get(res, "admin_state")),
		"maint");
	json_decref(res);
	assert_string_equal(server_str("s1", "op_state"), "MAINT");
	for (i = 0; i < 10; i++)
		assert_int_equal(http_get(lb_port, "/", NULL, 0), 200);
	assert_int_equal(b1.requests, n1);

	assert_int_equal(
		call(&res, "lb_set",
		     json_pack("{s:s,s:s,s:s,s:i}", "app", APP, "server", "s1",
			       "state", "ready", "weight", 3)),
		0);
	assert_string_equal(
		json_string_value(json_object_get(res, "admin_state")),
		"ready");
	assert_int_equal(json_integer_value(json_object_get(res, "weight")), 3);
	json_decref(res);
	assert_int_equal(
		call(&res, "lb_set",
		     json_pack("{s:s,s:s,s:s,s:i}", "app", APP, "server", "s1",
			       "state", "ready", "weight", 100)),
		0);
	assert_int_equal(json_integer_value(json_object_get(res, "weight")),
			 100);
	json_decref(res);
	wait_health("s1", "up");
	for (i = 0; i < 10; i++)
		assert_int_equal(http_get(lb_port, "/", NULL, 0), 200);
	assert_true(b1.requests > n1);
	assert_int_equal(worker_pid(), worker);

	/* bad lb_set input */
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"nope", "state", "drain")),
			 ML_ENOTFOUND);
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1;shutdown", "state", "drain")),
			 ML_EPROTO);
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "up")),
			 ML_EPROTO);
	assert_int_equal(
		call(NULL, "lb_set",
		     json_pack("{s:s,s:s,s:s,s:i}", "app", APP, "server", "s1",
			       "state", "ready", "weight", 999)),
		ML_EPROTO);
	assert_int_equal(worker_pid(), worker);
}

struct slow_req {
	pthread_t th;
	int status;
};

static void *slow_main(void *arg)
{
	struct slow_req *r = arg;

	r->status = http_get(lb_port, "/slow", NULL, 0);
	return NULL;
}

static void test_haproxy__live_wait_drained(void **state)
{
	struct slow_req r;
	json_t *res = NULL;
	int64_t t0;

	SKIP_WITHOUT_HAPROXY();

	/* only s1 takes requests; one slow request holds a session */
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s2", "state", "maint")),
			 0);
	b1.slow_ms = 1000;
	assert_int_equal(pthread_create(&r.th, NULL, slow_main, &r), 0);
	t0 = ml_mono_ms();
	while (b1.slow_active == 0) {
		assert_true(ml_mono_ms() - t0 < 3000);
		sleep_ms(10);
	}
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "drain")),
			 0);
	/* too short a wait: not drained, not an error */
	assert_int_equal(call(&res, "lb_wait_drained",
			      json_pack("{s:s,s:s,s:i}", "app", APP, "server",
					"s1", "timeout_ms", 100)),
			 0);
	assert_false(json_is_true(json_object_get(res, "drained")));
	assert_int_equal(
		json_integer_value(json_object_get(res, "cur_sessions")), 1);
	json_decref(res);
	assert_int_equal(call(&res, "lb_wait_drained",
			      json_pack("{s:s,s:s,s:i}", "app", APP, "server",
					"s1", "timeout_ms", 5000)),
			 0);
	assert_true(json_is_true(json_object_get(res, "drained")));
	assert_true(json_integer_value(json_object_get(res, "waited_ms")) <
		    5000);
	json_decref(res);
	pthread_join(r.th, NULL);
	/* the request in flight finished normally through the drain */
	assert_int_equal(r.status, 200);
	assert_int_equal(
		call(NULL, "lb_wait_drained",
		     json_pack("{s:s,s:s}", "app", APP, "server", "nope")),
		ML_ENOTFOUND);
	/* back to both */
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s1", "state", "ready")),
			 0);
	assert_int_equal(call(NULL, "lb_set",
			      json_pack("{s:s,s:s,s:s}", "app", APP, "server",
					"s2", "state", "ready")),
			 0);
}

/* lb_revisions and lb_requests: the request log ring, read per server and
 * revision, with the server -> revision map. */
static void test_haproxy__live_requests_per_revision(void **state)
{
	struct timespec now;
	json_int_t since;
	json_t *res = NULL, *s;
	int i, n5 = 0, n6 = 0, total = 0;
	size_t k;

	SKIP_WITHOUT_HAPROXY();
	clock_gettime(CLOCK_REALTIME, &now);
	/* requests of the earlier tests came before: their revision is not
	 * known */
	since = (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	assert_int_equal(
		call(&res, "lb_revisions",
		     json_pack("{s:s,s:[{s:s,s:i,s:I},{s:s,s:i,s:I}]}", "app",
			       APP, "servers", "name", "s1", "revision", 5,
			       "since_ms", since, "name", "s2", "revision", 6,
			       "since_ms", since)),
		0);
	assert_true(json_is_true(json_object_get(res, "changed")));
	json_decref(res);
	/* the same again changes nothing */
	assert_int_equal(
		call(&res, "lb_revisions",
		     json_pack("{s:s,s:[{s:s,s:i,s:I}]}", "app", APP,
			       "servers", "name", "s1", "revision", 5,
			       "since_ms", since + 5)),
		0);
	assert_true(json_is_false(json_object_get(res, "changed")));
	json_decref(res);
	sleep_ms(5);
	for (i = 0; i < 20; i++)
		assert_int_equal(http_get(lb_port, "/", NULL, 0), 200);

	assert_int_equal(call(&res, "lb_requests",
			      json_pack("{s:s,s:i}", "app", APP, "window_ms",
					60000)),
			 0);
	assert_true(json_is_true(json_object_get(res, "running")));
	json_array_foreach(json_object_get(res, "servers"), k, s) {
		json_t *rev = json_object_get(s, "revision");
		int n = (int)json_integer_value(json_object_get(s, "requests"));

		total += n;
		if (json_integer_value(rev) == 5) {
			assert_string_equal(
				json_string_value(json_object_get(s, "name")),
				"s1");
			n5 += n;
		} else if (json_integer_value(rev) == 6) {
			n6 += n;
		} else {
			assert_true(json_is_null(rev));
		}
		assert_int_equal(json_integer_value(json_object_get(s,
								    "errors")),
				 0);
		assert_true(json_number_value(json_object_get(s, "p99_ms")) >=
			    json_number_value(json_object_get(s, "p50_ms")));
		assert_true(json_array_size(json_object_get(s, "hist")) > 0);
	}
	/* roundrobin over the two: the 20 requests, by revision */
	assert_int_equal(n5 + n6, 20);
	assert_true(n5 >= 8 && n6 >= 8);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(res, "frontend"), "requests")),
			 total);
	assert_true(json_is_integer(json_object_get(res, "oldest_ms")));
	json_decref(res);

	/* a window that ends before them sees none of the new ones */
	assert_int_equal(call(&res, "lb_requests",
			      json_pack("{s:s,s:i}", "app", APP, "window_ms",
					1000)),
			 0);
	json_decref(res);
	assert_int_equal(call(NULL, "lb_requests",
			      json_pack("{s:s,s:i}", "app", APP, "window_ms",
					10)),
			 ML_EPROTO);
	assert_int_equal(
		call(NULL, "lb_revisions",
		     json_pack("{s:s,s:[]}", "app", "nosuchapp", "servers")),
		ML_ENOTFOUND);
	assert_int_equal(call(NULL, "lb_revisions",
			      json_pack("{s:s,s:[{s:s,s:i,s:i}]}", "app", APP,
					"servers", "name", "bad name",
					"revision", 1, "since_ms", 0)),
			 ML_EPROTO);
}

static void test_haproxy__live_reload(void **state)
{
	struct load l = {0};
	json_t *res = NULL, *st = NULL;
	pid_t master, worker;
	int64_t t0, ms;
	int n2, i;

	SKIP_WITHOUT_HAPROXY();

	/* s2 out of service, s3's health check fails */
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "maint", 100),
			     server("s3", "127.0.0.1", b3.port, "ready",
				    100)))),
		0);
	/* the structure changed (s3): reloaded */
	assert_true(json_is_true(json_object_get(res, "reloaded")));
	json_decref(res);
	b3.healthy = false;
	wait_health("s3", "down");
	assert_string_equal(server_str("s2", "admin_state"), "maint");

	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	master = (pid_t)json_integer_value(json_object_get(st, "master_pid"));
	worker = (pid_t)json_integer_value(json_object_get(st, "worker_pid"));
	json_decref(st);

	/* reload under load: add s4 */
	n2 = b2.requests;
	l.port = lb_port;
	l.count = 500;
	l.max_ms = 10000;
	assert_int_equal(pthread_create(&l.th, NULL, load_main, &l), 0);
	t0 = ml_mono_ms();
	while (l.done < 100 && ml_mono_ms() - t0 < 10000)
		sleep_ms(5);
	t0 = ml_mono_ms();
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o,o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "maint", 100),
			     server("s3", "127.0.0.1", b3.port, "ready", 100),
			     server("s4", "127.0.0.1", b4.port, "ready",
				    100)))),
		0);
	ms = ml_mono_ms() - t0;
	assert_true(json_is_true(json_object_get(res, "reloaded")));
	assert_false(json_is_true(json_object_get(res, "started")));
	assert_int_equal(json_integer_value(json_object_get(res, "master_pid")),
			 master);
	assert_int_not_equal(
		json_integer_value(json_object_get(res, "worker_pid")), worker);
	print_message("lb_apply with a reload took %lld ms (reload %lld ms)\n",
		      (long long)ms,
		      (long long)json_integer_value(
			      json_object_get(res, "reload_ms")));
	json_decref(res);

	/* state that survives the reload: s3 is still known down at once,
	 * s2 still in maintenance and never got a request */
	assert_string_equal(server_str("s3", "health"), "down");
	assert_string_equal(server_str("s2", "admin_state"), "maint");
	pthread_join(l.th, NULL);
	print_message("%d requests during the reload, %d failed (first "
		      "status %d)\n",
		      (int)l.done, (int)l.failed, l.first_failure);
	assert_true(l.done >= 200);
	assert_int_equal(l.failed, 0);
	assert_int_equal(b2.requests, n2);
	assert_true(b4.requests > 0);
	b3.healthy = true;

	/* back-to-back reloads (s4 out, in, out, in), each sent as soon as
	 * the previous apply returned: each gives a new worker under the
	 * same master */
	for (i = 0; i < 4; i++) {
		json_t *servers = json_pack(
			"[o,o,o]",
			server("s1", "127.0.0.1", b1.port, "ready", 100),
			server("s2", "127.0.0.1", b2.port, "maint", 100),
			server("s3", "127.0.0.1", b3.port, "ready", 100));

		if (i % 2)
			json_array_append_new(servers,
					      server("s4", "127.0.0.1",
						     b4.port, "ready", 100));
		assert_int_equal(call(&st, "lb_status",
				      json_pack("{s:s}", "app", APP)),
				 0);
		worker = (pid_t)json_integer_value(
			json_object_get(st, "worker_pid"));
		json_decref(st);
		assert_int_equal(call(&res, "lb_apply", apply_args(servers)),
				 0);
		assert_true(json_is_true(json_object_get(res, "reloaded")));
		assert_int_equal(
			json_integer_value(json_object_get(res, "master_pid")),
			master);
		assert_int_not_equal(
			json_integer_value(json_object_get(res, "worker_pid")),
			worker);
		print_message("back-to-back reload %d took %lld ms\n", i + 1,
			      (long long)json_integer_value(
				      json_object_get(res, "reload_ms")));
		json_decref(res);
	}
}

/*
 * A new health check (here a path the backends answer 404 to) applies to
 * new servers only: s1 and s2 keep the check they took traffic with, so
 * they stay up and no request fails, while s3 on the new check goes down.
 */
static void test_haproxy__live_server_keeps_its_check(void **state)
{
	struct load l = {0};
	struct ml_buf cfg = ML_BUF_INIT(1 << 20);
	json_t *res = NULL, *args, *old;
	char *path;
	int64_t t0;

	SKIP_WITHOUT_HAPROXY();
	b1.healthy = b2.healthy = b3.healthy = true;
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "ready",
				    100)))),
		0);
	json_decref(res);
	wait_health("s1", "up");
	wait_health("s2", "up");

	l.port = lb_port;
	l.count = 400;
	l.max_ms = 10000;
	assert_int_equal(pthread_create(&l.th, NULL, load_main, &l), 0);
	t0 = ml_mono_ms();
	while (l.done < 50 && ml_mono_ms() - t0 < 10000)
		sleep_ms(5);
	old = json_pack("{s:s,s:i,s:i,s:i,s:i}", "path", "/health",
			"interval_ms", 200, "timeout_ms", 1000,
			"healthy_threshold", 1, "unhealthy_threshold", 2);
	args = apply_args(json_pack(
		"[o,o,o]", server("s1", "127.0.0.1", b1.port, "ready", 100),
		server("s2", "127.0.0.1", b2.port, "ready", 100),
		server("s3", "127.0.0.1", b3.port, "ready", 100)));
	json_object_set_new(json_object_get(args, "health"), "path",
			    json_string("/nope"));
	json_object_set(json_array_get(json_object_get(args, "servers"), 0),
			"health", old);
	json_object_set(json_array_get(json_object_get(args, "servers"), 1),
			"health", old);
	json_decref(old);
	assert_int_equal(call(&res, "lb_apply", args), 0);
	assert_true(json_is_true(json_object_get(res, "reloaded")));
	json_decref(res);
	/* moved into their check-only backend fully up (health rise + fall
	 * - 1 = 2), not one failed check away from DOWN */
	assert_string_equal(check_health("chk_", "s1"), "2");
	assert_string_equal(check_health("chk_", "s2"), "2");
	wait_health("s3", "down");
	sleep_ms(1000); /* five intervals of the old check */
	assert_string_equal(server_str("s1", "health"), "up");
	assert_string_equal(server_str("s2", "health"), "up");
	pthread_join(l.th, NULL);
	print_message("%d requests across the check change, %d failed\n",
		      (int)l.done, (int)l.failed);
	assert_true(l.done >= 200);
	assert_int_equal(l.failed, 0);

	path = ml_xasprintf("%s/haproxy/%s/haproxy.cfg", tmp, APP);
	assert_int_equal(ml_buf_read_file(&cfg, path), 0);
	assert_non_null(strstr(ml_buf_str(&cfg), " track chk_"));
	assert_non_null(strstr(ml_buf_str(&cfg), "option httpchk GET /nope"));
	ml_buf_release(&cfg);
	free(path);

	/* the next apply without own checks folds them back: one check */
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o,o,o]",
			     server("s1", "127.0.0.1", b1.port, "ready", 100),
			     server("s2", "127.0.0.1", b2.port, "ready", 100),
			     server("s3", "127.0.0.1", b3.port, "ready",
				    100)))),
		0);
	json_decref(res);
	wait_health("s3", "up");
}

/*
 * The status view's words for a server whose checks start failing, read
 * from this HAProxy's own lb_status rows: with 3 failed checks to take a
 * server down, HAProxy says "UP 2/3" after the first and "UP 1/3" after
 * the second (the checks left, not the ones seen), then "DOWN".
 */
static void test_haproxy__live_check_words(void **state)
{
	json_t *res = NULL, *args, *st = NULL, *c, *lb;
	bool first = false, second = false;
	int64_t deadline;
	const char *op;

	SKIP_WITHOUT_HAPROXY();
	b1.healthy = b2.healthy = true;
	args = apply_args(json_pack(
		"[o,o]", server("s1", "127.0.0.1", b1.port, "ready", 100),
		server("s2", "127.0.0.1", b2.port, "ready", 100)));
	json_object_set_new(json_object_get(args, "health"),
			    "unhealthy_threshold", json_integer(3));
	assert_int_equal(call(&res, "lb_apply", args), 0);
	json_decref(res);
	deadline = ml_mono_ms() + 5000;
	while (strcmp(server_str("s1", "op_state"), "UP")) {
		assert_true(ml_mono_ms() < deadline);
		sleep_ms(20);
	}

	b1.healthy = false;
	deadline = ml_mono_ms() + 5000;
	for (;;) {
		assert_int_equal(
			call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			0);
		c = json_pack("{s:s}", "state", "running");
		ml_status_annotate(c, status_server(st, "s1"), time(NULL));
		lb = json_object_get(c, "lb");
		op = json_string_value(json_object_get(lb, "op_state"));
		assert_non_null(op);
		if (!strcmp(op, "UP 2/3") || !strcmp(op, "UP 1/3")) {
			int seen = op[3] == '2' ? 1 : 2;

			assert_string_equal(
				json_string_value(json_object_get(lb, "state")),
				"failing");
			assert_int_equal(json_integer_value(json_object_get(
						 lb, "checks_seen")),
					 seen);
			assert_int_equal(json_integer_value(json_object_get(
						 lb, "checks_needed")),
					 3);
			*(seen == 1 ? &first : &second) = true;
		} else if (!strncmp(op, "DOWN", 4)) {
			assert_string_equal(
				json_string_value(json_object_get(lb, "state")),
				"down");
			json_decref(c);
			json_decref(st);
			break;
		} else {
			assert_string_equal(op, "UP");
			assert_string_equal(
				json_string_value(json_object_get(lb, "state")),
				"serving");
		}
		json_decref(c);
		json_decref(st);
		assert_true(ml_mono_ms() < deadline);
		sleep_ms(20);
	}
	assert_true(first);
	assert_true(second);
	b1.healthy = true;
	wait_health("s1", "up");
}

static void test_haproxy__live_bad_config_kept(void **state)
{
	struct ml_haproxy h;
	struct ml_buf before = ML_BUF_INIT(1 << 20),
		      after = ML_BUF_INIT(1 << 20);
	json_t *args, *res = NULL, *st = NULL;
	pid_t master, worker;

	SKIP_WITHOUT_HAPROXY();

	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, APP), 0);
	assert_int_equal(ml_buf_read_file(&before, h.cfg), 0);
	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	master = (pid_t)json_integer_value(json_object_get(st, "master_pid"));
	worker = (pid_t)json_integer_value(json_object_get(st, "worker_pid"));
	json_decref(st);

	/* valid for us, rejected by haproxy -c: no such certificate */
	args = apply_args(json_pack(
		"[o]", server("s1", "127.0.0.1", b1.port, "ready", 100)));
	json_object_set_new(args, "tls_cert", json_string(FAKE_CERT));
	json_object_set_new(args, "tls_key", json_string(FAKE_KEY));
	assert_int_equal(call(&res, "lb_apply", args), ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "haproxy rejects"));
	assert_non_null(strstr(ml_err_msg(), ".pem"));
	assert_null(strstr(ml_err_msg(), "TUlJ")); /* no byte of the key */
	{
		/* the candidate's certificate is not left behind */
		char *tls = ml_xasprintf("%s/tls", h.dir);
		DIR *d = opendir(tls);
		struct dirent *e;

		while (d && (e = readdir(d)))
			assert_true(e->d_name[0] == '.');
		if (d)
			closedir(d);
		free(tls);
	}
	assert_null(strchr(ml_err_msg(), '\n'));
	assert_string_equal(ml_proto_code_from_ml(ML_EINVALID), "invalid");

	/* the old config still runs, unchanged on disk */
	assert_int_equal(ml_buf_read_file(&after, h.cfg), 0);
	assert_string_equal(before.data, after.data);
	assert_int_equal(access(h.cfg_new, F_OK), -1);
	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	assert_int_equal(json_integer_value(json_object_get(st, "master_pid")),
			 master);
	assert_int_equal(json_integer_value(json_object_get(st, "worker_pid")),
			 worker);
	assert_int_equal(json_array_size(json_object_get(st, "servers")), 4);
	json_decref(st);
	assert_int_equal(http_get(lb_port, "/", NULL, 0), 200);

	/* the checker itself */
	assert_int_equal(ml_haproxy_write_file(h.cfg_new,
					       "frontend x\n\tbind :abc\n", 23),
			 0);
	assert_int_equal(ml_haproxy_check(&h, h.cfg_new), ML_EINVALID);
	unlink(h.cfg_new);

	ml_buf_release(&before);
	ml_buf_release(&after);
	ml_haproxy_release(&h);
}

static void test_haproxy__live_start_failure(void **state)
{
	json_t *args;
	int port, fd;
	pid_t pid;
	struct ml_haproxy h;

	SKIP_WITHOUT_HAPROXY();

	/* the listen port is taken: haproxy cannot bind it */
	fd = listen_loopback(&port);
	args = apply_args(json_pack(
		"[o]", server("s1", "127.0.0.1", b1.port, "ready", 100)));
	json_object_set_new(args, "app", json_string("other"));
	json_object_set_new(args, "listen_port", json_integer(port));
	json_object_set_new(args, "stats_port", json_integer(0));
	assert_int_equal(call(NULL, "lb_apply", args), ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "did not start"));
	assert_non_null(strstr(ml_err_msg(), "bind"));
	close(fd);
	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, "other"), 0);
	assert_int_equal(ml_haproxy_master_pid(&pid, &h), 0);
	assert_int_equal(pid, 0);
	ml_haproxy_release(&h);

	/* a pid file naming a live process that is not our haproxy */
	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, "other"), 0);
	{
		char text[32];
		int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

		assert_int_equal(
			ml_haproxy_write_file(h.pidfile, text, (size_t)n), 0);
	}
	assert_int_equal(ml_haproxy_master_pid(&pid, &h), 0);
	assert_int_equal(pid, 0);
	ml_haproxy_release(&h);
}

/* The state letter and parent pid of pid from /proc/PID/stat ("pid (comm)
 * S ppid ...", the state after the last ')'); false when pid is gone. */
static bool proc_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], line[512], *p;
	long pp = -1;
	char st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')))
		if (sscanf(p + 1, " %c %ld", &st, &pp) != 2)
			st = 0;
	fclose(f);
	*state = st;
	*ppid = (pid_t)pp;
	return true;
}

/* Is pid gone or a zombie (the master is not our child: init reaps it)? */
static bool ended(pid_t pid)
{
	char st;
	pid_t ppid;

	return !proc_stat(pid, &st, &ppid) || st == 'Z';
}

/* The parent pid of pid, or -1. */
static pid_t getppid_of(pid_t pid)
{
	char st;
	pid_t ppid;

	return proc_stat(pid, &st, &ppid) ? ppid : -1;
}

/*
 * lb_remove stops the app's haproxy (master and worker) and deletes its
 * instance; a second one finds nothing; a pid file that names a process
 * which is not our haproxy (here this test) gets no signal.
 */
static void test_haproxy__live_remove(void **state)
{
	json_t *res = NULL, *st = NULL;
	struct ml_haproxy h;
	pid_t master, worker;
	int64_t t0;

	SKIP_WITHOUT_HAPROXY();
	assert_int_equal(
		call(&res, "lb_apply",
		     apply_args(json_pack(
			     "[o]", server("s1", "127.0.0.1", b1.port, "ready",
					   100)))),
		0);
	json_decref(res);
	assert_int_equal(call(&st, "lb_status", json_pack("{s:s}", "app", APP)),
			 0);
	master = (pid_t)json_integer_value(json_object_get(st, "master_pid"));
	worker = (pid_t)json_integer_value(json_object_get(st, "worker_pid"));
	json_decref(st);
	assert_true(master > 1 && worker > 1);

	t0 = ml_mono_ms();
	assert_int_equal(call(&res, "lb_remove", json_pack("{s:s}", "app", APP)),
			 0);
	assert_true(json_is_true(json_object_get(res, "stopped")));
	assert_true(json_is_true(json_object_get(res, "removed")));
	/* the soft stop was taken: the master answered its CLI before
	 * lb_apply returned, so it was not mid re-exec (a SIGUSR1 then is
	 * lost and only the SIGTERM after the soft stop's time ends it) */
	assert_string_equal(json_string_value(json_object_get(res, "stop")),
			    "soft");
	json_decref(res);
	print_message("lb_remove took %lld ms\n",
		      (long long)(ml_mono_ms() - t0));
	/* a worker that the soft stop did not end gets the hard stop */
	while ((!ended(master) || !ended(worker)) &&
	       ml_mono_ms() - t0 < ML_HAPROXY_START_MS + 5000)
		sleep_ms(10);
	assert_true(ended(master));
	assert_true(ended(worker));
	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, APP), 0);
	assert_int_equal(access(h.dir, F_OK), -1);
	ml_haproxy_release(&h);

	/* nothing left to stop */
	assert_int_equal(call(&res, "lb_remove", json_pack("{s:s}", "app", APP)),
			 0);
	assert_false(json_is_true(json_object_get(res, "stopped")));
	assert_false(json_is_true(json_object_get(res, "removed")));
	json_decref(res);

	/* a pid file naming this process: removed, and we are still here */
	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, APP), 0);
	assert_int_equal(ml_haproxy_mkdir(&h), 0);
	{
		char text[32];
		int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

		assert_int_equal(
			ml_haproxy_write_file(h.pidfile, text, (size_t)n), 0);
	}
	ml_haproxy_release(&h);
	assert_int_equal(call(&res, "lb_remove", json_pack("{s:s}", "app", APP)),
			 0);
	assert_false(json_is_true(json_object_get(res, "stopped")));
	assert_true(json_is_true(json_object_get(res, "removed")));
	json_decref(res);
}

/*
 * The kill(2) path of lb_remove, for kernels without pidfds (before 5.3):
 * in a child where seccomp makes pidfd_open and pidfd_send_signal fail
 * with ENOSYS, and which is the subreaper of the haproxy it starts and
 * does not reap it meanwhile, so the stopped master stays a zombie
 * (kill(pid, 0) succeeds on one: the path must still see it ended, as it
 * would not under an init that never reaps). The child reports on a pipe
 * and uses no cmocka assert (a failing one would run on in the child).
 */
static int child_no_pidfd_remove(int out)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_send_signal, 1,
			 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
	struct sock_fprog prog = {.len = ML_ARRAY_SIZE(insns), .filter = insns};
	json_t *args, *r = NULL, *st = NULL;
	pid_t master, worker;
	char line[128];
	const char *how;
	int n;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return 10;
	args = apply_args(json_pack(
		"[o]", server("s1", "127.0.0.1", b1.port, "ready", 100)));
	if (op_named("lb_apply")->run(&ag, args, &r) < 0)
		return 11;
	json_decref(args);
	json_decref(r);
	args = json_pack("{s:s}", "app", APP);
	if (op_named("lb_status")->run(&ag, args, &st) < 0)
		return 12;
	json_decref(args);
	master = (pid_t)json_integer_value(json_object_get(st, "master_pid"));
	worker = (pid_t)json_integer_value(json_object_get(st, "worker_pid"));
	json_decref(st);
	if (getppid_of(master) != getpid())
		return 13; /* the daemon must be ours to reap */

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return 14;
	if (syscall(__NR_pidfd_open, master, 0) != -1 || errno != ENOSYS)
		return 15;

	args = json_pack("{s:s}", "app", APP);
	r = NULL;
	if (op_named("lb_remove")->run(&ag, args, &r) < 0)
		return 16;
	json_decref(args);
	how = json_string_value(json_object_get(r, "stop"));
	n = snprintf(line, sizeof(line), "%s %d %d %d %d\n", how ? how : "-",
		     json_is_true(json_object_get(r, "stopped")),
		     json_is_true(json_object_get(r, "removed")), ended(master),
		     (int)worker);
	json_decref(r);
	if (write(out, line, (size_t)n) != n)
		return 17;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return 0;
}

static void test_haproxy__live_remove_without_pidfd(void **state)
{
	char line[128] = "", how[16] = "";
	int fds[2], status, stopped = 0, removed = 0, master_ended = 0;
	int worker = 0;
	struct ml_haproxy h;
	int64_t t0;
	ssize_t n;
	pid_t pid;

	SKIP_WITHOUT_HAPROXY();
	assert_int_equal(pipe(fds), 0);
	t0 = ml_mono_ms();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(child_no_pidfd_remove(fds[1]));
	}
	close(fds[1]);
	n = read(fds[0], line, sizeof(line) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(n > 0);
	assert_int_equal(sscanf(line, "%15s %d %d %d %d", how, &stopped,
				&removed, &master_ended, &worker),
			 5);
	print_message("lb_remove through kill(2) took %lld ms: %s",
		      (long long)(ml_mono_ms() - t0), line);
	/* the soft stop ended it, and the zombie was seen as ended */
	assert_string_equal(how, "soft");
	assert_int_equal(stopped, 1);
	assert_int_equal(removed, 1);
	assert_int_equal(master_ended, 1);
	while (!ended(worker) && ml_mono_ms() - t0 < ML_HAPROXY_START_MS + 5000)
		sleep_ms(10);
	assert_true(ended(worker));
	assert_int_equal(ml_haproxy_init(&h, ag.state_dir, APP), 0);
	assert_int_equal(access(h.dir, F_OK), -1);
	ml_haproxy_release(&h);
}

static void test_haproxy__init_paths(void **state)
{
	struct ml_haproxy h;
	char longdir[200];

	assert_int_equal(ml_haproxy_init(&h, "/var/lib/mlctl", "demo"), 0);
	assert_string_equal(h.cfg, "/var/lib/mlctl/haproxy/demo/haproxy.cfg");
	assert_string_equal(h.admin_sock,
			    "/var/lib/mlctl/haproxy/demo/admin.sock");
	ml_haproxy_release(&h);
	assert_int_equal(ml_haproxy_init(&h, "/x", "../etc"), ML_EPROTO);
	ml_haproxy_release(&h);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_int_equal(ml_haproxy_init(&h, longdir, "demo"), ML_ETOOBIG);
	ml_haproxy_release(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_haproxy__render_golden),
		cmocka_unit_test(test_haproxy__render_expect),
		cmocka_unit_test(test_haproxy__reject_invalid),
		cmocka_unit_test(test_haproxy__parse_tables),
		cmocka_unit_test(test_haproxy__init_paths),
		cmocka_unit_test(test_haproxy__carry_checks),
		cmocka_unit_test(
			test_haproxy__same_check_with_expect_is_the_backends),
		cmocka_unit_test(test_haproxy__live_start_and_set),
		cmocka_unit_test(test_haproxy__live_wait_drained),
		cmocka_unit_test(test_haproxy__live_requests_per_revision),
		cmocka_unit_test(test_haproxy__live_reload),
		cmocka_unit_test(test_haproxy__live_bad_config_kept),
		cmocka_unit_test(test_haproxy__live_start_failure),
		cmocka_unit_test(test_haproxy__live_server_keeps_its_check),
		cmocka_unit_test(test_haproxy__live_remove),
		cmocka_unit_test(test_haproxy__live_remove_without_pidfd),
		cmocka_unit_test(test_haproxy__live_check_words),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, live_setup, live_teardown);
}
