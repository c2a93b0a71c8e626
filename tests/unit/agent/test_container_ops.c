/*
 * Unit tests of container_run, container_wait, container_stop and
 * container_logs (agent/op_container_*.c), the health probe (agent/probe.c)
 * and the log demultiplexer (common/docker.c), run in process through
 * ml_agent_dispatch.
 *
 * Docker is a fake daemon on a unix socket, like fake_docker.h's but
 * keeping every request (line and body) in order and able to answer with
 * binary bodies (multiplexed logs). The app's HTTP side is a tiny server
 * on 127.0.0.1 in a thread, answering a script of statuses; iptables is
 * "true", or a script that logs its arguments where a test looks at the
 * firewall slots. The real daemon is exercised by check_container_ops.sh
 * on a fleet VM.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "agent/probe.h"
#include "common/docker.h"
#include "tests/unit/agent/fake_docker.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <cmocka.h>

#define SECRET "s3cr3t-VALUE-line1\nline2"
#define VERSION "{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\"}"
#define IMG_ID                                                                 \
	"sha256:"                                                              \
	"1111111111111111111111111111111111111111111111111111111111111111"
#define MAXREQ 64

/* ---- a fake Docker that keeps every request ------------------------- */

struct xroute {
	const char *prefix; /* "GET /v1.41/containers/x/json" */
	int status;
	const char *body;
	size_t len; /* 0: strlen(body) */
	int times;  /* matches only that often when > 0, then the next */
};

struct xreq {
	char line[512];
	char *body;
};

static struct {
	char dir[64], sock[96];
	int lfd, stop[2];
	pthread_t th;
	pthread_mutex_t mu;
	const struct xroute *routes;
	size_t nroutes;
	int used[32]; /* matches per route */
	struct xreq reqs[MAXREQ];
	int nreqs;
} xf;

static void xf_answer(int fd, const struct xroute *rt)
{
	struct ml_buf out = ML_BUF_INIT(0);
	int status = rt ? rt->status : 404;
	const char *body = rt ? rt->body : "{\"message\":\"page not found\"}";
	size_t n = body ? (rt && rt->len ? rt->len : strlen(body)) : 0;
	size_t off = 0;
	ssize_t w;

	ml_buf_addf(&out,
		    "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		    status, n);
	if (n)
		ml_buf_add(&out, body, n);
	while (off < out.len) {
		w = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	ml_buf_release(&out);
}

static void *xf_main(void *unused)
{
	struct ml_buf req = ML_BUF_INIT(0);
	const struct xroute *rt;
	struct pollfd pf[2];
	size_t body_off, i, ll;
	struct xreq *x;
	char *eol;
	int fd;

	for (;;) {
		pf[0].fd = xf.lfd;
		pf[0].events = POLLIN;
		pf[1].fd = xf.stop[0];
		pf[1].events = POLLIN;
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents)
			break;
		fd = accept(xf.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ml_buf_reset(&req);
		fake_read_request(NULL, fd, &req, &body_off);
		if (!req.len) {
			close(fd);
			continue;
		}
		eol = strstr(req.data, "\r\n");
		ll = eol ? (size_t)(eol - req.data) : req.len;
		pthread_mutex_lock(&xf.mu);
		rt = NULL;
		if (xf.nreqs < MAXREQ) {
			x = &xf.reqs[xf.nreqs++];
			snprintf(x->line, sizeof(x->line), "%.*s", (int)ll,
				 req.data);
			x->body =
				ml_xstrdup(body_off ? req.data + body_off : "");
			for (i = 0; i < xf.nroutes; i++) {
				if (strncmp(x->line, xf.routes[i].prefix,
					    strlen(xf.routes[i].prefix)))
					continue;
				if (xf.routes[i].times &&
				    xf.used[i] >= xf.routes[i].times)
					continue;
				xf.used[i]++;
				rt = &xf.routes[i];
				break;
			}
		}
		pthread_mutex_unlock(&xf.mu);
		xf_answer(fd, rt);
		close(fd);
	}
	ml_buf_release(&req);
	return NULL;
}

/* Serve routes (a NULL prefix ends them) and forget earlier requests. */
static void xf_routes(const struct xroute *routes)
{
	int i;

	pthread_mutex_lock(&xf.mu);
	for (i = 0; i < xf.nreqs; i++)
		free(xf.reqs[i].body);
	xf.nreqs = 0;
	xf.routes = routes;
	for (xf.nroutes = 0; routes[xf.nroutes].prefix; xf.nroutes++)
		;
	if (xf.nroutes > ML_ARRAY_SIZE(xf.used))
		abort();
	memset(xf.used, 0, sizeof(xf.used));
	pthread_mutex_unlock(&xf.mu);
}

/* The first request whose line starts with prefix, or NULL. */
static const struct xreq *xf_find(const char *prefix)
{
	const struct xreq *r = NULL;
	int i;

	pthread_mutex_lock(&xf.mu);
	for (i = 0; i < xf.nreqs && !r; i++)
		if (!strncmp(xf.reqs[i].line, prefix, strlen(prefix)))
			r = &xf.reqs[i];
	pthread_mutex_unlock(&xf.mu);
	return r;
}

/* Requests other than GET /version. */
static int xf_count(void)
{
	int i, n = 0;

	pthread_mutex_lock(&xf.mu);
	for (i = 0; i < xf.nreqs; i++)
		n += strncmp(xf.reqs[i].line, "GET /version ", 13) != 0;
	pthread_mutex_unlock(&xf.mu);
	return n;
}

static void xf_start(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	snprintf(xf.dir, sizeof(xf.dir), "/tmp/mlctl-ctr-fake-XXXXXX");
	if (!mkdtemp(xf.dir))
		abort();
	snprintf(xf.sock, sizeof(xf.sock), "%s/docker.sock", xf.dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", xf.sock);
	pthread_mutex_init(&xf.mu, NULL);
	xf.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (xf.lfd < 0 ||
	    bind(xf.lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(xf.lfd, 16) < 0 || pipe(xf.stop) < 0 ||
	    pthread_create(&xf.th, NULL, xf_main, NULL))
		abort();
}

static void xf_stop(void)
{
	static const struct xroute none[] = {{NULL, 0, NULL, 0}};

	if (write(xf.stop[1], "x", 1) != 1)
		abort();
	pthread_join(xf.th, NULL);
	xf_routes(none);
	close(xf.lfd);
	close(xf.stop[0]);
	close(xf.stop[1]);
	unlink(xf.sock);
	rmdir(xf.dir);
}

/* ---- a tiny HTTP server: the app ---------------------------------- */

static struct {
	int lfd, port, stop[2];
	pthread_t th;
	pthread_mutex_t mu;
	int script[16]; /* statuses in order; the last one repeats */
	int nscript;
	int delay_ms;
	int hits;
	char last_line[256];
} app;

static void *app_main(void *unused)
{
	struct ml_buf req = ML_BUF_INIT(0), out = ML_BUF_INIT(0);
	struct pollfd pf[2];
	size_t body_off;
	int fd, status, delay;

	for (;;) {
		pf[0].fd = app.lfd;
		pf[0].events = POLLIN;
		pf[1].fd = app.stop[0];
		pf[1].events = POLLIN;
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents)
			break;
		fd = accept(app.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ml_buf_reset(&req);
		fake_read_request(NULL, fd, &req, &body_off);
		pthread_mutex_lock(&app.mu);
		status = app.script[app.hits < app.nscript ? app.hits
							   : app.nscript - 1];
		app.hits++;
		delay = app.delay_ms;
		snprintf(app.last_line, sizeof(app.last_line), "%.*s",
			 (int)strcspn(ml_buf_str(&req), "\r"),
			 ml_buf_str(&req));
		pthread_mutex_unlock(&app.mu);
		if (delay)
			poll(NULL, 0, delay);
		ml_buf_reset(&out);
		ml_buf_addf(&out,
			    "HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
			    "Connection: close\r\n\r\nok",
			    status);
		if (send(fd, out.data, out.len, MSG_NOSIGNAL) < 0)
			ml_debug("app: send failed");
		close(fd);
	}
	ml_buf_release(&req);
	ml_buf_release(&out);
	return NULL;
}

/* Answer with statuses (terminated by 0), each request after delay_ms. */
static void app_script(int delay_ms, ...)
{
	va_list ap;
	int s;

	pthread_mutex_lock(&app.mu);
	app.nscript = 0;
	va_start(ap, delay_ms);
	while ((s = va_arg(ap, int)) != 0 && app.nscript < 16)
		app.script[app.nscript++] = s;
	va_end(ap);
	app.delay_ms = delay_ms;
	app.hits = 0;
	pthread_mutex_unlock(&app.mu);
}

static int app_hits(void)
{
	int n;

	pthread_mutex_lock(&app.mu);
	n = app.hits;
	pthread_mutex_unlock(&app.mu);
	return n;
}

static void app_start(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&app.mu, NULL);
	app.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (app.lfd < 0 ||
	    bind(app.lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(app.lfd, 16) < 0 ||
	    getsockname(app.lfd, (struct sockaddr *)&sin, &len) < 0 ||
	    pipe(app.stop) < 0)
		abort();
	app.port = ntohs(sin.sin_port);
	app_script(0, 200, 0);
	if (pthread_create(&app.th, NULL, app_main, NULL))
		abort();
}

static void app_stop(void)
{
	if (write(app.stop[1], "x", 1) != 1)
		abort();
	pthread_join(app.th, NULL);
	close(app.lfd);
	close(app.stop[0]);
	close(app.stop[1]);
}

/* A port on 127.0.0.1 that nobody listens on (bound, never listening). */
static int closed_port(int *fd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(*fd, (struct sockaddr *)&sin, &len) < 0)
		abort();
	return ntohs(sin.sin_port);
}

/* ---- the agent ------------------------------------------------------ */

static struct ml_agent agent;
static char state_dir[64];
static char run_dir[64]; /* on /dev/shm: secret files need a tmpfs */

static json_t *call(const char *op, json_t *args)
{
	json_t *req = json_pack("{s:i,s:i,s:s,s:o}", "v", 1, "id", 7, "op", op,
				"args", args);
	json_t *reply;
	char *text;

	assert_non_null(req);
	reply = ml_agent_dispatch(&agent, req);
	json_decref(req);
	/* whatever happened, a secret never comes back */
	text = json_dumps(reply, JSON_COMPACT);
	assert_non_null(text);
	assert_null(strstr(text, "s3cr3t"));
	free(text);
	assert_null(strstr(ml_err_msg(), "s3cr3t"));
	return reply;
}

static json_t *ok(json_t *reply)
{
	if (!json_is_true(json_object_get(reply, "ok"))) {
		char *t = json_dumps(reply, 0);

		fail_msg("op failed: %s", t);
	}
	return json_object_get(reply, "result");
}

static const char *err_code(json_t *reply)
{
	assert_true(json_is_false(json_object_get(reply, "ok")));
	return json_string_value(
		json_object_get(json_object_get(reply, "error"), "code"));
}

static const char *err_msg(json_t *reply)
{
	return json_string_value(
		json_object_get(json_object_get(reply, "error"), "message"));
}

static char *secrets_path(const char *name)
{
	return ml_xasprintf("%s/secrets/%s.env", state_dir, name);
}

/* Write text as container name's secrets file, as container_run would. */
static void secrets_put(const char *name, const char *text)
{
	char *dir = ml_xasprintf("%s/secrets", state_dir);
	char *path = secrets_path(name);
	FILE *f;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		abort();
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
	free(dir);
}

/* ---- an iptables that logs its arguments ---------------------------- */

static char ipt_dir[64];

/* Until ipt_log_stop, iptables is a script that logs each run's
 * arguments as a line, exits 0 and prints nothing. */
static void ipt_log_start(void)
{
	char *script, *text;
	FILE *f;

	snprintf(ipt_dir, sizeof(ipt_dir), "/tmp/mlctl-ctr-ipt-XXXXXX");
	if (!mkdtemp(ipt_dir))
		abort();
	script = ml_xasprintf("%s/iptables", ipt_dir);
	text = ml_xasprintf("#!/bin/sh\necho \"$*\" >>%s/log\n", ipt_dir);
	f = fopen(script, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(script, 0700), 0);
	setenv("MLCTL_IPTABLES", script, 1);
	free(text);
	free(script);
}

/* What iptables was run with since the last call (the caller's). */
static char *ipt_log_take(void)
{
	struct ml_buf b = ML_BUF_INIT(0);
	char *log = ml_xasprintf("%s/log", ipt_dir);
	char *text;

	if (ml_buf_read_file(&b, log) < 0)
		ml_err_clear(); /* not run at all */
	text = ml_xstrdup(ml_buf_str(&b));
	unlink(log);
	ml_buf_release(&b);
	free(log);
	return text;
}

static void ipt_log_stop(void)
{
	char *script = ml_xasprintf("%s/iptables", ipt_dir);

	free(ipt_log_take());
	unlink(script);
	rmdir(ipt_dir);
	free(script);
	setenv("MLCTL_IPTABLES", "true", 1);
}

static int setup(void **state)
{
	ml_log_init("test", ML_LOG_QUIET);
	xf_start();
	app_start();
	snprintf(state_dir, sizeof(state_dir), "/tmp/mlctl-ctr-state-XXXXXX");
	if (!mkdtemp(state_dir))
		abort();
	snprintf(run_dir, sizeof(run_dir), "/dev/shm/mlctl-ctr-run-XXXXXX");
	if (!mkdtemp(run_dir))
		abort();
	setenv("MLCTL_RUN_DIR", run_dir, 1);
	/* never touch this machine's filter rules */
	setenv("MLCTL_IPTABLES", "true", 1);
	unsetenv("SSH_CONNECTION");
	ml_agent_init(&agent);
	agent.docker_sock = xf.sock;
	agent.state_dir = state_dir;
	agent.protocol = 1; /* hello is test_dispatch's business */
	return 0;
}

static int teardown(void **state)
{
	char *p = ml_xasprintf("%s/secrets", state_dir);
	struct dirent *e;
	DIR *dir = opendir(p);
	char *f;

	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		f = ml_xasprintf("%s/%s", p, e->d_name);
		unlink(f);
		free(f);
	}
	if (dir)
		closedir(dir);
	rmdir(p);
	rmdir(state_dir);
	free(p);
	p = ml_xasprintf("%s/secrets", run_dir);
	rmdir(p);
	rmdir(run_dir);
	free(p);
	ml_agent_release(&agent);
	app_stop();
	xf_stop();
	return 0;
}

/* ---- container_run -------------------------------------------------- */

static json_t *run_args(void)
{
	json_t *a = json_pack(
		"{s:s,s:i,s:s,s:i,s:s,s:s,s:i,s:i,s:{s:s,s:s},s:{s:s},"
		"s:{s:f,s:I,s:i},s:{s:s}}",
		"app", "demo", "revision", 3, "slot", "a", "replica", 0,
		"commit", "0123abc", "image", "demo:3", "port", 8000,
		"host_port", 18000, "env", "MODEL", "resnet", "LOG_LEVEL",
		"info", "secrets", "API_KEY", SECRET, "resources", "cpus", 1.5,
		"memory_bytes", (json_int_t)1 << 30, "gpus", 0, "security",
		"secrets_as", "env");

	assert_non_null(a);
	return a;
}

static const struct xroute routes_new[] = {
	{"GET /version ", 200, VERSION, 0},
	{"GET /v1.41/images/demo:3/json", 200, "{\"Id\":\"" IMG_ID "\"}", 0},
	{"POST /v1.41/containers/create", 201, "{\"Id\":\"c0ffee\"}", 0},
	{"POST /v1.41/containers/c0ffee/start", 204, NULL, 0},
	{NULL, 0, NULL, 0},
};

static bool env_has(json_t *env, const char *kv)
{
	json_t *v;
	size_t i;

	json_array_foreach(env, i, v)
	{
		if (!strcmp(json_string_value(v), kv))
			return true;
	}
	return false;
}

static void test_container_ops__run_creates(void **state)
{
	const struct xreq *create;
	json_t *reply, *r, *body, *hc, *labels, *env, *pb, *file;
	char *path = secrets_path("demo-r3-a0");
	struct stat st;

	xf_routes(routes_new);
	reply = call("container_run", run_args());
	r = ok(reply);
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    "c0ffee");
	assert_string_equal(json_string_value(json_object_get(r, "name")),
			    "demo-r3-a0");
	assert_true(json_is_true(json_object_get(r, "created")));
	assert_true(json_is_false(json_object_get(r, "resumed")));

	/* inspect of the name, create, start: in that order */
	assert_non_null(xf_find("GET /v1.41/containers/demo-r3-a0/json "));
	create = xf_find("POST /v1.41/containers/create?name=demo-r3-a0 ");
	assert_non_null(create);
	assert_true(create < xf_find("POST /v1.41/containers/c0ffee/start "));
	body = json_loads(create->body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "Image")),
			    "demo:3");
	assert_null(json_object_get(body, "Cmd"));
	labels = json_object_get(body, "Labels");
	assert_int_equal(json_object_size(labels), 6);
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.replica")),
		"0");
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.spec")), "");
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.app")),
		"demo");
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.revision")),
		"3");
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.slot")), "a");
	assert_string_equal(
		json_string_value(json_object_get(labels, "mlctl.commit")),
		"0123abc");
	env = json_object_get(body, "Env");
	assert_int_equal(json_array_size(env), 5);
	assert_true(env_has(env, "MLCTL_REVISION=3"));
	assert_true(env_has(env, "MLCTL_SLOT=a"));
	assert_true(env_has(env, "MODEL=resnet"));
	assert_true(env_has(env, "LOG_LEVEL=info"));
	assert_true(env_has(env, "API_KEY=" SECRET));
	assert_non_null(json_object_get(json_object_get(body, "ExposedPorts"),
					"8000/tcp"));
	hc = json_object_get(body, "HostConfig");
	pb = json_array_get(json_object_get(json_object_get(hc, "PortBindings"),
					    "8000/tcp"),
			    0);
	assert_string_equal(json_string_value(json_object_get(pb, "HostIp")),
			    "0.0.0.0");
	assert_string_equal(json_string_value(json_object_get(pb, "HostPort")),
			    "18000");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(hc, "RestartPolicy"), "Name")),
		"unless-stopped");
	assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")),
			 1500000000);
	assert_int_equal(json_integer_value(json_object_get(hc, "Memory")),
			 1 << 30);
	assert_null(json_object_get(hc, "DeviceRequests"));
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(hc, "LogConfig"),
					"Config"),
			"max-size")),
		"10485760");
	assert_true(json_is_true(json_object_get(hc, "Init")));
	json_decref(body);

	/* the secrets file: 0600 in a 0700 dir, JSON, newline kept */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	path = ml_xasprintf("%s/secrets", state_dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	free(path);
	path = secrets_path("demo-r3-a0");
	file = json_load_file(path, 0, NULL);
	assert_non_null(file);
	assert_int_equal(json_object_size(file), 1);
	assert_string_equal(json_string_value(json_object_get(file, "API_KEY")),
			    SECRET);
	json_decref(file);
	free(path);
	json_decref(reply);
}

/*
 * The defaults: secrets as files on a tmpfs owned by the image's user
 * (Docker gets only the directory), every capability dropped,
 * no-new-privileges, a pids limit, an init; relaxed by name.
 */
static void test_container_ops__run_hardened_by_default(void **state)
{
	static const struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/demo:3/json", 200,
		 "{\"Id\":\"" IMG_ID "\",\"Config\":{\"User\":\"65534\"}}", 0},
		{"POST /v1.41/containers/create", 201, "{\"Id\":\"c0ffee\"}", 0},
		{"POST /v1.41/containers/c0ffee/start", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	const struct xreq *create;
	json_t *args, *reply, *body, *hc, *m, *r;
	char *dir = ml_xasprintf("%s/secrets/demo-r3-a0", run_dir), *file;
	struct stat st;
	struct ml_buf b = ML_BUF_INIT(0);

	xf_routes(routes);
	args = run_args();
	json_object_del(args, "security");
	reply = call("container_run", args);
	r = ok(reply);
	/* not root: no warning */
	assert_null(json_object_get(r, "warnings"));
	create = xf_find("POST /v1.41/containers/create?name=demo-r3-a0 ");
	assert_non_null(create);
	assert_null(strstr(create->body, SECRET));
	body = json_loads(create->body, 0, NULL);
	hc = json_object_get(body, "HostConfig");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(hc, "CapDrop"), 0)),
			    "ALL");
	assert_null(json_object_get(hc, "CapAdd"));
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(hc, "SecurityOpt"), 0)),
			    "no-new-privileges");
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")),
			 4096);
	assert_true(json_is_true(json_object_get(hc, "Init")));
	assert_null(json_object_get(hc, "ReadonlyRootfs"));
	m = json_array_get(json_object_get(hc, "Mounts"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "Source")),
			    dir);
	assert_string_equal(json_string_value(json_object_get(m, "Target")),
			    "/run/secrets");
	assert_true(json_is_true(json_object_get(m, "ReadOnly")));
	json_decref(body);
	json_decref(reply);

	/* the file: 0400, the image's uid, in a 0500 dir of that uid */
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0500);
	assert_int_equal(st.st_uid, 65534);
	file = ml_xasprintf("%s/API_KEY", dir);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0400);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(ml_buf_read_file(&b, file), 0);
	assert_int_equal(b.len, strlen(SECRET));
	assert_memory_equal(b.data, SECRET, b.len);
	ml_buf_release(&b);
	/* and no copy on the state disk */
	{
		char *env_file = secrets_path("demo-r3-a0");

		assert_int_equal(access(env_file, F_OK), -1);
		free(env_file);
	}

	/* relaxed by name; a root image is warned about */
	xf_routes(routes_new);
	args = run_args();
	json_object_set_new(
		args, "security",
		json_pack("{s:b,s:[s],s:i,s:b,s:s,s:s,s:s}",
			  "no_new_privileges", 0, "cap_add", "NET_BIND_SERVICE",
			  "pids_limit", 0, "read_only_root", 1, "init", "no",
			  "restart", "on-failure", "secrets_as", "env"));
	reply = call("container_run", args);
	r = ok(reply);
	assert_non_null(strstr(json_string_value(json_array_get(
				       json_object_get(r, "warnings"), 0)),
			       "runs as root"));
	create = xf_find("POST /v1.41/containers/create?name=demo-r3-a0 ");
	body = json_loads(create->body, 0, NULL);
	hc = json_object_get(body, "HostConfig");
	assert_null(json_object_get(hc, "SecurityOpt"));
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(hc, "CapAdd"), 0)),
			    "NET_BIND_SERVICE");
	assert_null(json_object_get(hc, "PidsLimit"));
	assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
	assert_non_null(json_object_get(json_object_get(hc, "Tmpfs"), "/tmp"));
	assert_true(json_is_false(json_object_get(hc, "Init")));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(hc, "RestartPolicy"),
				    "Name")),
			    "on-failure");
	json_decref(body);
	json_decref(reply);
	/* secrets as env now: the tmpfs dir went away */
	assert_int_equal(access(dir, F_OK), -1);
	free(file);
	free(dir);
}

static void test_container_ops__run_gpus_and_cmd(void **state)
{
	static const struct {
		int gpus;
		int count; /* 0: no DeviceRequests */
	} cases[] = {{0, 0}, {-1, -1}, {2, 2}};
	const struct xreq *create;
	json_t *args, *reply, *body, *dr;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		xf_routes(routes_new);
		args = run_args();
		json_object_set_new(json_object_get(args, "resources"), "gpus",
				    json_integer(cases[i].gpus));
		json_object_del(args, "secrets");
		json_object_set_new(
			args, "cmd",
			json_pack("[s,s,s]", "/bin/busybox", "httpd", "-f"));
		reply = call("container_run", args);
		ok(reply);
		create = xf_find("POST /v1.41/containers/create");
		body = json_loads(create->body, 0, NULL);
		assert_non_null(body);
		dr = json_object_get(json_object_get(body, "HostConfig"),
				     "DeviceRequests");
		if (!cases[i].count) {
			assert_null(dr);
		} else {
			dr = json_array_get(dr, 0);
			assert_string_equal(json_string_value(json_object_get(
						    dr, "Driver")),
					    "nvidia");
			assert_int_equal(json_integer_value(
						 json_object_get(dr, "Count")),
					 cases[i].count);
			assert_string_equal(
				json_string_value(json_array_get(
					json_array_get(
						json_object_get(dr,
								"Capabilities"),
						0),
					0)),
				"gpu");
		}
		assert_int_equal(json_array_size(json_object_get(body, "Cmd")),
				 3);
		/* no secrets: env is ours and env's, no file is left */
		assert_int_equal(json_array_size(json_object_get(body, "Env")),
				 4);
		json_decref(body);
		json_decref(reply);
	}
}

#define RUNNING_OK                                                             \
	"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"Image\":\"" IMG_ID      \
	"\",\"State\":{\"Status\":\"running\",\"Running\":true},"              \
	"\"Config\":{\"Labels\":{\"mlctl.app\":\"demo\",\"mlctl.revision\":"   \
	"\"3\",\"mlctl.slot\":\"a\",\"mlctl.commit\":\"0123abc\","              \
	"\"mlctl.replica\":\"0\",\"mlctl.spec\":\"\"}},"                         \
	"\"HostConfig\":{\"PortBindings\":{\"8000/tcp\":[{\"HostIp\":"         \
	"\"0.0.0.0\",\"HostPort\":\"18000\"}]}}}"

static void test_container_ops__run_idempotent(void **state)
{
	static const struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/demo:3/json", 200,
		 "{\"Id\":\"" IMG_ID "\"}", 0},
		{"GET /v1.41/containers/demo-r3-a0/json", 200, RUNNING_OK, 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply, *r;

	xf_routes(routes);
	reply = call("container_run", run_args());
	r = ok(reply);
	assert_true(json_is_false(json_object_get(r, "created")));
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    "c0ffee");
	assert_int_equal(xf_count(), 2); /* image and container, no more */
	json_decref(reply);
}

static void test_container_ops__run_replaces(void **state)
{
	/* same name, but another commit (a retried, changed request) */
	static const char stale[] =
		"{\"Id\":\"old1\",\"Name\":\"/demo-r3-a0\",\"Image\":\"" IMG_ID
		"\",\"State\":{\"Status\":\"running\",\"Running\":true},"
		"\"Config\":{\"Labels\":{\"mlctl.app\":\"demo\","
		"\"mlctl.revision\":\"3\",\"mlctl.slot\":\"a\","
		"\"mlctl.commit\":\"fedcba9\"}}}";
	static const char exited[] =
		"{\"Id\":\"old1\",\"Name\":\"/demo-r3-a0\",\"Image\":\"" IMG_ID
		"\",\"State\":{\"Status\":\"exited\",\"Running\":false},"
		"\"Config\":{\"Labels\":{\"mlctl.app\":\"demo\"}}}";
	const char *bodies[] = {stale, exited};
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/demo:3/json", 200,
		 "{\"Id\":\"" IMG_ID "\"}", 0},
		{"GET /v1.41/containers/demo-r3-a0/json", 200, NULL, 0},
		{"DELETE /v1.41/containers/demo-r3-a0?force=1&v=1", 204, NULL,
		 0},
		{"POST /v1.41/containers/create", 201, "{\"Id\":\"c0ffee\"}",
		 0},
		{"POST /v1.41/containers/c0ffee/start", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(bodies); i++) {
		routes[2].body = bodies[i];
		xf_routes(routes);
		reply = call("container_run", run_args());
		assert_true(
			json_is_true(json_object_get(ok(reply), "created")));
		assert_non_null(xf_find("DELETE /v1.41/containers/demo-r3-a0"
					"?force=1&v=1 "));
		assert_true(xf_find("DELETE ") <
			    xf_find("POST /v1.41/containers/create"));
		json_decref(reply);
	}
}

static void test_container_ops__run_refusals(void **state)
{
	static const struct xroute foreign[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/demo:3/json", 200,
		 "{\"Id\":\"" IMG_ID "\"}", 0},
		{"GET /v1.41/containers/demo-r3-a0/json", 200,
		 "{\"Id\":\"x\",\"State\":{\"Running\":true},"
		 "\"Config\":{\"Labels\":{\"maintainer\":\"someone\"}}}",
		 0},
		{NULL, 0, NULL, 0},
	};
	static const struct xroute no_image[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/", 404,
		 "{\"message\":\"No such image: demo:3\"}", 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply;

	xf_routes(foreign);
	reply = call("container_run", run_args());
	assert_string_equal(err_code(reply), "failed");
	assert_non_null(strstr(err_msg(reply), "a container named "
					       "'demo-r3-a0' exists without "
					       "the label mlctl.app=demo"));
	assert_null(xf_find("DELETE "));
	assert_null(xf_find("POST "));
	json_decref(reply);

	xf_routes(no_image);
	reply = call("container_run", run_args());
	assert_string_equal(err_code(reply), "not-found");
	assert_string_equal(err_msg(reply), "image demo:3 is not on this "
					    "host: deliver it first");
	assert_int_equal(xf_count(), 1);
	json_decref(reply);
}

/* The health check the container takes traffic with rides along as a
 * label of compact JSON; anything but an object is refused. */
static void test_container_ops__run_labels_its_health(void **state)
{
	const struct xreq *create;
	json_t *args, *reply, *body;

	ML_UNUSED(state);
	xf_routes(routes_new);
	args = run_args();
	json_object_set_new(args, "health",
			    json_pack("{s:s,s:i}", "path", "/healthz",
				      "interval_ms", 500));
	reply = call("container_run", args);
	ok(reply);
	json_decref(reply);
	create = xf_find("POST /v1.41/containers/create?name=demo-r3-a0 ");
	assert_non_null(create);
	body = json_loads(create->body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(body, "Labels"), "mlctl.health")),
		"{\"interval_ms\":500,\"path\":\"/healthz\"}");
	json_decref(body);

	args = run_args();
	json_object_set_new(args, "health", json_string("/healthz"));
	reply = call("container_run", args);
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
}

static void test_container_ops__run_start_fails(void **state)
{
	static const struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/images/demo:3/json", 200,
		 "{\"Id\":\"" IMG_ID "\"}", 0},
		{"POST /v1.41/containers/create", 201, "{\"Id\":\"c0ffee\"}",
		 0},
		{"POST /v1.41/containers/c0ffee/start", 500,
		 "{\"message\":\"driver failed programming external "
		 "connectivity on endpoint demo-r3-a0: Bind for "
		 "0.0.0.0:18000 failed: port is already allocated\\u001b[0m\"}",
		 0},
		{"DELETE /v1.41/containers/c0ffee?force=1&v=1", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	char *path = secrets_path("demo-r3-a0");
	json_t *reply;

	xf_routes(routes);
	reply = call("container_run", run_args());
	assert_string_equal(err_code(reply), "failed");
	/* Docker's own message, escaped, survives the cleanup */
	assert_non_null(strstr(err_msg(reply), "port is already "
					       "allocated\\x1b[0m (HTTP 500)"));
	assert_non_null(xf_find("DELETE /v1.41/containers/c0ffee?force=1"));
	assert_int_equal(access(path, F_OK), -1);
	free(path);
	json_decref(reply);
}

static void test_container_ops__run_bad_args(void **state)
{
	static const struct {
		const char *key;
		const char *json; /* NULL: delete the key */
		const char *msg;
	} cases[] = {
		{"app", NULL, "container_run needs 'app'"},
		{"app", "\"../etc\"", "'app' must be a name"},
		{"revision", "-1", "'revision' must be an integer"},
		{"revision", "\"3\"", "'revision' must be an integer"},
		{"slot", "\"c\"", "'slot' must be \"a\" or \"b\""},
		{"replica", "1000", "'replica' must be an integer"},
		{"commit", "\"a b\"", "'commit' must be a name"},
		{"image", "\"sha256:abc\"", "'image' must be"},
		{"image", "\"-rm\"", "'image' must be"},
		{"image", "\"x y\"", "'image' must be"},
		{"port", "0", "'port' must be an integer from 1 to 65535"},
		{"host_port", "65536", "'host_port' must be an integer"},
		{"env", "[]", "'env' must be an object"},
		{"env", "{\"1X\":\"a\"}", "env: names must be"},
		{"env", "{\"A-B\":\"a\"}", "env: names must be"},
		{"env", "{\"X\":1}", "env 'X' must be a string"},
		{"env", "{\"MLCTL_SLOT\":\"z\"}",
		 "'MLCTL_SLOT' is set by mlctl"},
		{"env", "{\"API_KEY\":\"x\"}", "'API_KEY' is both in env and"},
		{"secrets", "{\"K\":[\"s3cr3t\"]}",
		 "secrets 'K' must be a str"},
		{"secrets", "{\"bad key\":\"s3cr3t\"}", "secrets: names must"},
		{"security", "{\"cap_add\":[\"FLY\"]}", "not a capability"},
		{"security", "{\"bogus\":1}", "unknown key 'security.bogus'"},
		{"security", "{\"restart\":\"sometimes\"}", "'security.restart'"},
		{"resources", "{\"cpus\":-1}", "'resources.cpus' must be"},
		{"resources", "{\"memory_bytes\":-5}", "'memory_bytes' must"},
		{"resources", "{\"gpus\":-2}", "'gpus' must be an integer"},
		{"cmd", "[]", "'cmd' must be a list of 1 to"},
		{"cmd", "[\"a\",2]", "'cmd' argument 1 must be a string"},
		{"resume", "\"../x\"", "'resume' must be a name"},
		{"resume", "\"\"", "'resume' must be a name"},
		{"resume", "7", "container_run needs 'resume', a string"},
	};
	json_t *args, *reply, *v;
	size_t i;

	xf_routes(routes_new);
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		args = run_args();
		if (cases[i].json) {
			v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
			assert_non_null(v);
			json_object_set_new(args, cases[i].key, v);
		} else {
			json_object_del(args, cases[i].key);
		}
		reply = call("container_run", args);
		if (!strstr(err_msg(reply), cases[i].msg))
			fail_msg("case %zu: got '%s'", i, err_msg(reply));
		assert_string_equal(err_code(reply), "bad-request");
		json_decref(reply);
	}
	/* a name that would be too long */
	args = run_args();
	json_object_set_new(
		args, "app",
		json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaa"));
	reply = call("container_run", args);
	assert_non_null(strstr(err_msg(reply), "would be longer than 128"));
	json_decref(reply);
	assert_int_equal(xf_count(), 0);
}

/* ---- container_run: resuming a standby ------------------------------ */

#define ST_RUNNING "\"Status\":\"running\",\"Running\":true,\"Paused\":false"
#define ST_PAUSED "\"Status\":\"paused\",\"Running\":true,\"Paused\":true"
#define ST_EXITED "\"Status\":\"exited\",\"Running\":false,\"Paused\":false"

/* A container of revision 2 that container_stop {"pause": true} kept. */
#define STANDBY(app, spec, slot, state)                                        \
	"{\"Id\":\"0ld5tandby\",\"Name\":\"/demo-r2-" slot                     \
	"0\",\"Image\":\"" IMG_ID "\",\"State\":{" state                       \
	"},\"Config\":{\"Labels\":{"                                           \
	"\"mlctl.app\":\"" app "\",\"mlctl.revision\":\"2\",\"mlctl.slot\":"   \
	"\"" slot "\",\"mlctl.commit\":\"0123abc\",\"mlctl.replica\":\"0\","   \
	"\"mlctl.spec\":\"" spec "\"}},\"HostConfig\":{\"PortBindings\":{"     \
	"\"8000/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"18000\"}]}}}"

static json_t *resume_args(void)
{
	json_t *a = run_args();

	json_object_set_new(a, "spec", json_string("5pec"));
	json_object_set_new(a, "resume", json_string("0ld5tandby"));
	return a;
}

/*
 * A paused standby of the same app and spec is unpaused, its slot opened,
 * and nothing is created; it answers with its own name and keeps the
 * secrets it was made with. A running one is only answered for.
 */
static void test_container_ops__run_resume(void **state)
{
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/containers/0ld5tandby/json", 200,
		 STANDBY("demo", "5pec", "a", ST_PAUSED), 0},
		{"POST /v1.41/containers/0ld5tandby/unpause ", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	char *old = secrets_path("demo-r2-a0"),
	     *new = secrets_path("demo-r3-a0");
	struct ml_buf b = ML_BUF_INIT(0);
	json_t *reply, *r;
	char *ipt;

	ML_UNUSED(state);
	secrets_put("demo-r2-a0", "{\"API_KEY\":\"old\"}\n");
	unlink(new);
	ipt_log_start();
	xf_routes(routes);
	reply = call("container_run", resume_args());
	r = ok(reply);
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    "0ld5tandby");
	assert_string_equal(json_string_value(json_object_get(r, "name")),
			    "demo-r2-a0");
	assert_true(json_is_false(json_object_get(r, "created")));
	assert_true(json_is_true(json_object_get(r, "resumed")));
	json_decref(reply);
	assert_non_null(xf_find("POST /v1.41/containers/0ld5tandby/unpause "));
	assert_null(xf_find("POST /v1.41/containers/create"));
	assert_null(xf_find("POST /v1.41/containers/0ld5tandby/start"));
	assert_null(xf_find("DELETE "));
	/* its slot is opened as a new container's would be */
	ipt = ipt_log_take();
	assert_non_null(strstr(ipt, "-C DOCKER-USER -p tcp -m conntrack "
				    "--ctorigdstport 18000 "));
	free(ipt);
	/* its secrets stay as they were; none are written for the name the
	 * arguments would have made */
	assert_int_equal(ml_buf_read_file(&b, old), 0);
	assert_string_equal(ml_buf_str(&b), "{\"API_KEY\":\"old\"}\n");
	assert_int_equal(access(new, F_OK), -1);

	/* running already: nothing to unpause */
	routes[1].body = STANDBY("demo", "5pec", "a", ST_RUNNING);
	xf_routes(routes);
	reply = call("container_run", resume_args());
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "resumed")));
	assert_string_equal(json_string_value(json_object_get(r, "name")),
			    "demo-r2-a0");
	json_decref(reply);
	assert_null(xf_find("POST "));
	assert_null(xf_find("DELETE "));
	ipt_log_stop();

	unlink(old);
	ml_buf_release(&b);
	free(old);
	free(new);
}

/* Anything but a live standby of this app, spec, slot and replica is
 * "not-found", with nothing created, unpaused, removed or opened. */
static void test_container_ops__run_resume_refused(void **state)
{
	static const struct {
		const char *inspect; /* NULL: Docker does not know it */
		const char *why;
	} cases[] = {
		{STANDBY("other", "5pec", "a", ST_PAUSED),
		 "it is not a container of this app"},
		{STANDBY("demo", "0ther", "a", ST_PAUSED),
		 "its mlctl.spec label is not this run's"},
		{STANDBY("demo", "5pec", "b", ST_PAUSED),
		 "its slot or replica is not this run's"},
		{STANDBY("demo", "5pec", "a", ST_EXITED),
		 "it is neither paused nor running"},
		{NULL, "docker does not know it"},
	};
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/containers/0ld5tandby/json", 200, NULL, 0},
		{"POST /v1.41/containers/", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply;
	char *want, *ipt;
	size_t i;

	ML_UNUSED(state);
	ipt_log_start();
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		routes[1].prefix = cases[i].inspect
					   ? "GET /v1.41/containers/0ld5tandby/"
					   : "GET /nowhere";
		routes[1].body = cases[i].inspect;
		xf_routes(routes);
		reply = call("container_run", resume_args());
		assert_string_equal(err_code(reply), "not-found");
		want = ml_xasprintf("container '0ld5tandby' cannot be "
				    "resumed: %s",
				    cases[i].why);
		if (strcmp(err_msg(reply), want))
			fail_msg("case %zu: got '%s'", i, err_msg(reply));
		free(want);
		json_decref(reply);
		assert_non_null(
			xf_find("GET /v1.41/containers/0ld5tandby/json "));
		assert_null(xf_find("POST "));
		assert_null(xf_find("DELETE "));
		ipt = ipt_log_take();
		assert_string_equal(ipt, "");
		free(ipt);
	}
	ipt_log_stop();
}

/* ---- container_stop ------------------------------------------------- */

#define INSPECT_STOP                                                           \
	"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{\"Running\":"  \
	"true},\"Config\":{\"Labels\":{\"mlctl.app\":\"demo\"}}}"

static void test_container_ops__stop(void **state)
{
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/containers/demo-r3-a0/json", 200, INSPECT_STOP, 0},
		{"POST /v1.41/containers/c0ffee/stop?t=", 204, NULL, 0},
		{"DELETE /v1.41/containers/c0ffee?v=1 ", 204, NULL, 0},
		{NULL, 0, NULL, 0},
	};
	char *path = secrets_path("demo-r3-a0");
	json_t *reply, *r;
	FILE *f;

	/* a secrets file from container_run */
	xf_routes(routes_new);
	reply = call("container_run", run_args());
	ok(reply);
	json_decref(reply);
	assert_int_equal(access(path, F_OK), 0);

	xf_routes(routes);
	reply = call("container_stop", json_pack("{s:s,s:i}", "id",
						 "demo-r3-a0", "timeout_s", 5));
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "removed")));
	assert_true(json_is_true(json_object_get(r, "was_running")));
	assert_true(json_is_false(json_object_get(r, "paused")));
	assert_string_equal(json_string_value(json_object_get(r, "name")),
			    "demo-r3-a0");
	assert_null(xf_find("POST /v1.41/containers/c0ffee/unpause"));
	assert_true(xf_find("POST /v1.41/containers/c0ffee/stop?t=5 ") <
		    xf_find("DELETE /v1.41/containers/c0ffee?v=1 "));
	assert_int_equal(access(path, F_OK), -1);
	json_decref(reply);

	/* already stopped: Docker answers 304 */
	routes[2].status = 304;
	xf_routes(routes);
	f = fopen(path, "w"); /* secrets left by someone: removed too */
	assert_non_null(f);
	fclose(f);
	reply = call("container_stop", json_pack("{s:s}", "id", "demo-r3-a0"));
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "removed")));
	assert_true(json_is_false(json_object_get(r, "was_running")));
	assert_int_equal(access(path, F_OK), -1);
	json_decref(reply);
	free(path);
}

static void test_container_ops__stop_absent_and_foreign(void **state)
{
	static const struct xroute absent[] = {
		{"GET /version ", 200, VERSION, 0},
		{NULL, 0, NULL, 0}, /* everything else: 404 */
	};
	static const struct xroute foreign[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/containers/db/json", 200,
		 "{\"Id\":\"d1\",\"Name\":\"/db\",\"Config\":{\"Labels\":{}}}",
		 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply, *r;

	xf_routes(absent);
	reply = call("container_stop", json_pack("{s:s}", "id", "gone-r1-a0"));
	r = ok(reply);
	assert_true(json_is_false(json_object_get(r, "removed")));
	assert_true(json_is_false(json_object_get(r, "paused")));
	assert_int_equal(xf_count(), 1); /* only the inspect */
	json_decref(reply);

	xf_routes(foreign);
	reply = call("container_stop", json_pack("{s:s}", "id", "db"));
	assert_string_equal(err_code(reply), "failed");
	assert_non_null(strstr(err_msg(reply), "has no mlctl.app label"));
	assert_null(xf_find("POST "));
	assert_null(xf_find("DELETE "));
	json_decref(reply);

	reply = call("container_stop",
		     json_pack("{s:s,s:i}", "id", "x", "timeout_s", -1));
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
}

/* A stop's inspect answer for a container with a firewalled slot. */
#define INSPECT_SLOT(state)                                                    \
	"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{" state "},"   \
	"\"Config\":{\"Labels\":{\"mlctl.app\":\"demo\"}},\"HostConfig\":{"    \
	"\"PortBindings\":{\"8000/tcp\":[{\"HostIp\":\"0.0.0.0\","             \
	"\"HostPort\":\"18000\"}]}}}"

static struct xroute stop_routes[] = {
	{"GET /version ", 200, VERSION, 0},
	{"GET /v1.41/containers/demo-r3-a0/json", 200, NULL, 0},
	{"POST /v1.41/containers/c0ffee/pause ", 204, NULL, 0},
	{"POST /v1.41/containers/c0ffee/unpause ", 204, NULL, 0},
	{"POST /v1.41/containers/c0ffee/stop?t=", 204, NULL, 0},
	{"DELETE /v1.41/containers/c0ffee?v=1 ", 204, NULL, 0},
	{NULL, 0, NULL, 0},
};

static json_t *stop_pause(const char *inspect)
{
	stop_routes[1].body = inspect;
	xf_routes(stop_routes);
	return call("container_stop",
		    json_pack("{s:s,s:b}", "id", "demo-r3-a0", "pause", 1));
}

/*
 * "pause": true freezes a running container and keeps it whole: no stop,
 * no DELETE, its slot's rule and its secrets stay. A paused one is left
 * as is; one that is not running is stopped and removed as usual.
 */
static void test_container_ops__stop_pause(void **state)
{
	char *path = secrets_path("demo-r3-a0"), *ipt;
	json_t *reply, *r;

	ML_UNUSED(state);
	secrets_put("demo-r3-a0", "{\"API_KEY\":\"x\"}\n");
	ipt_log_start();
	reply = stop_pause(INSPECT_SLOT(ST_RUNNING));
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "paused")));
	assert_true(json_is_false(json_object_get(r, "removed")));
	assert_true(json_is_true(json_object_get(r, "was_running")));
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    "c0ffee");
	json_decref(reply);
	assert_non_null(xf_find("POST /v1.41/containers/c0ffee/pause "));
	assert_null(xf_find("POST /v1.41/containers/c0ffee/stop"));
	assert_null(xf_find("POST /v1.41/containers/c0ffee/unpause"));
	assert_null(xf_find("DELETE "));
	assert_int_equal(access(path, F_OK), 0);
	ipt = ipt_log_take();
	assert_string_equal(ipt, "");
	free(ipt);

	/* paused already: nothing to do */
	reply = stop_pause(INSPECT_SLOT(ST_PAUSED));
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "paused")));
	assert_true(json_is_false(json_object_get(r, "removed")));
	json_decref(reply);
	assert_null(xf_find("POST "));
	assert_null(xf_find("DELETE "));
	assert_int_equal(access(path, F_OK), 0);

	/* exited: no standby, stopped and removed with its rule and secrets */
	reply = stop_pause(INSPECT_SLOT(ST_EXITED));
	r = ok(reply);
	assert_true(json_is_false(json_object_get(r, "paused")));
	assert_true(json_is_true(json_object_get(r, "removed")));
	json_decref(reply);
	assert_null(xf_find("POST /v1.41/containers/c0ffee/pause"));
	assert_true(xf_find("POST /v1.41/containers/c0ffee/stop?t=10 ") <
		    xf_find("DELETE /v1.41/containers/c0ffee?v=1 "));
	assert_int_equal(access(path, F_OK), -1);
	ipt = ipt_log_take();
	assert_non_null(strstr(ipt, "-D DOCKER-USER -p tcp -m conntrack "
				    "--ctorigdstport 18000 "));
	free(ipt);
	ipt_log_stop();

	xf_routes(stop_routes);
	reply = call("container_stop", json_pack("{s:s,s:s}", "id",
						 "demo-r3-a0", "pause", "yes"));
	assert_string_equal(err_code(reply), "bad-request");
	assert_non_null(strstr(err_msg(reply), "'pause' must be true or "
					       "false"));
	json_decref(reply);
	assert_int_equal(xf_count(), 0);
	free(path);
}

/*
 * A paused container is unpaused before it is stopped, so its SIGTERM is
 * delivered at once rather than its SIGKILL after the timeout; an unpause
 * that fails does not keep it from being stopped.
 */
static void test_container_ops__stop_unpauses_first(void **state)
{
	const struct xreq *unpause, *stop;
	json_t *reply, *r;

	ML_UNUSED(state);
	stop_routes[1].body = INSPECT_SLOT(ST_PAUSED);
	xf_routes(stop_routes);
	reply = call("container_stop", json_pack("{s:s,s:i}", "id",
						 "demo-r3-a0", "timeout_s", 5));
	r = ok(reply);
	assert_true(json_is_false(json_object_get(r, "paused")));
	assert_true(json_is_true(json_object_get(r, "removed")));
	json_decref(reply);
	unpause = xf_find("POST /v1.41/containers/c0ffee/unpause ");
	stop = xf_find("POST /v1.41/containers/c0ffee/stop?t=5 ");
	assert_non_null(unpause);
	assert_non_null(stop);
	assert_true(unpause < stop);
	assert_true(stop < xf_find("DELETE /v1.41/containers/c0ffee?v=1 "));
	assert_null(xf_find("POST /v1.41/containers/c0ffee/pause"));

	stop_routes[3].status = 500;
	xf_routes(stop_routes);
	reply = call("container_stop", json_pack("{s:s}", "id", "demo-r3-a0"));
	assert_true(json_is_true(json_object_get(ok(reply), "removed")));
	json_decref(reply);
	assert_true(xf_find("POST /v1.41/containers/c0ffee/unpause ") <
		    xf_find("POST /v1.41/containers/c0ffee/stop?t=10 "));
	stop_routes[3].status = 204;
}

/* ---- logs --------------------------------------------------------- */

/* stdout "hello\n", stderr "warn: a", stdout "part1 ", stderr "b\n",
 * stdout "part2\r\n", stdout "esc \x1b[2J\n", stdout "last" */
static const char mux[] = "\x01\0\0\0\0\0\0\x06hello\n"
			  "\x02\0\0\0\0\0\0\x07warn: a"
			  "\x01\0\0\0\0\0\0\x06part1 "
			  "\x02\0\0\0\0\0\0\x02"
			  "b\n"
			  "\x01\0\0\0\0\0\0\x07part2\r\n"
			  "\x01\0\0\0\0\0\0\x09"
			  "esc \x1b[2J\n"
			  "\x01\0\0\0\0\0\0\x04last";

static void check_lines(json_t *lines, const char *const *want, size_t n)
{
	size_t i;

	if (json_array_size(lines) != n) {
		char *t = json_dumps(lines, 0);

		fail_msg("%zu lines, wanted %zu: %s", json_array_size(lines), n,
			 t);
	}
	for (i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(lines, i)),
				    want[i]);
}

static void test_container_ops__log_lines(void **state)
{
	static const char *const demuxed[] = {
		"hello", "warn: ab", "part1 part2", "esc \\x1b[2J", "last"};
	static const char *const raw[] = {"tty line", "second\\x07"};
	static const char *const cut[] = {"abcd...", "xy"};
	static const char *const short_frame[] = {"hello", "par"};
	json_t *lines = json_array();

	assert_int_equal(ml_docker_log_lines(lines, mux, sizeof(mux) - 1, 100),
			 0);
	check_lines(lines, demuxed, 5);
	json_array_clear(lines);

	/* a TTY container: no headers */
	assert_int_equal(
		ml_docker_log_lines(lines, "tty line\nsecond\a\n", 17, 100), 0);
	check_lines(lines, raw, 2);
	json_array_clear(lines);

	assert_int_equal(ml_docker_log_lines(lines, "abcdefgh\nxy", 11, 4), 0);
	check_lines(lines, cut, 2);
	json_array_clear(lines);

	/* a frame cut short at the end keeps what arrived */
	assert_int_equal(ml_docker_log_lines(lines,
					     "\x01\0\0\0\0\0\0\x06hello\n"
					     "\x01\0\0\0\0\0\0\x09par",
					     14 + 11, 100),
			 0);
	check_lines(lines, short_frame, 2);
	json_array_clear(lines);

	assert_int_equal(ml_docker_log_lines(lines, "", 0, 100), 0);
	assert_int_equal(json_array_size(lines), 0);
	json_decref(lines);
}

static void test_container_ops__logs(void **state)
{
	static const char *const want[] = {"hello", "warn: ab", "part1 part2",
					   "esc \\x1b[2J", "last"};
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		{"GET /v1.41/containers/demo-r3-a0/logs?stdout=1&stderr=1&"
		 "tail=5 ",
		 200, mux, sizeof(mux) - 1},
		{"GET /v1.41/containers/demo-r3-a0/logs?stdout=1&stderr=1&"
		 "tail=100 ",
		 200, "", 0},
		{NULL, 0, NULL, 0},
	};
	json_t *reply, *r;

	xf_routes(routes);
	reply = call("container_logs",
		     json_pack("{s:s,s:i}", "id", "demo-r3-a0", "tail", 5));
	r = ok(reply);
	check_lines(json_object_get(r, "lines"), want, 5);
	assert_true(json_is_false(json_object_get(r, "truncated")));
	json_decref(reply);

	reply = call("container_logs", json_pack("{s:s}", "id", "demo-r3-a0"));
	assert_int_equal(json_array_size(json_object_get(ok(reply), "lines")),
			 0);
	json_decref(reply);

	reply = call("container_logs", json_pack("{s:s}", "id", "nope"));
	assert_string_equal(err_code(reply), "not-found");
	json_decref(reply);
	reply = call("container_logs",
		     json_pack("{s:s,s:i}", "id", "x", "tail", 10001));
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
}

/* Docker's timestamps=1 answer: RFC 3339 with trailing zeros dropped */
static const char stamped[] =
	"\x01\0\0\0\0\0\0\x28"
	"2026-12-01T20:00:00.5Z old line same ns\n"
	"\x01\0\0\0\0\0\0\x23"
	"2026-12-01T20:00:01.000000001Z new\n"
	"\x02\0\0\0\0\0\0\x25"
	"2026-12-01T20:00:02.25Z esc \x1b[2J err\n";

static void test_container_ops__logs_after(void **state)
{
	const int64_t base = (int64_t)1796155200 * 1000000000; /* 20:00:00Z */
	struct xroute routes[] = {
		{"GET /version ", 200, VERSION, 0},
		/* since is inclusive: the line at exactly after_ns comes
		 * back and is dropped by the agent */
		{"GET /v1.41/containers/demo-r3-a0/logs?stdout=1&stderr=1&"
		 "timestamps=1&tail=3&since=1796155200.500000000 ",
		 200, stamped, sizeof(stamped) - 1},
		{"GET /v1.41/containers/demo-r3-a0/logs?stdout=1&stderr=1&"
		 "timestamps=1&tail=2 ",
		 200, stamped + 0x28 + 8, sizeof(stamped) - 1 - 0x28 - 8},
		{NULL, 0, NULL, 0},
	};
	json_t *reply, *r, *e;

	xf_routes(routes);
	reply = call("container_logs",
		     json_pack("{s:s,s:i,s:I}", "id", "demo-r3-a0", "tail", 3,
			       "after_ns", (json_int_t)(base + 500000000)));
	r = ok(reply);
	e = json_object_get(r, "entries");
	assert_int_equal(json_array_size(e), 2);
	assert_int_equal(
		json_integer_value(json_object_get(json_array_get(e, 0), "t")),
		base + 1000000001);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(e, 0), "line")),
			    "new");
	assert_int_equal(
		json_integer_value(json_object_get(json_array_get(e, 1), "t")),
		base + 2250000000);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(e, 1), "line")),
			    "esc \\x1b[2J err");
	/* one line was not newer: nothing can have been skipped */
	assert_true(json_is_false(json_object_get(r, "skipped")));
	json_decref(reply);

	/* without after_ns, with timestamps: all, and a full tail is not a
	 * gap (there is nothing to follow from) */
	reply = call("container_logs",
		     json_pack("{s:s,s:i,s:b}", "id", "demo-r3-a0", "tail", 2,
			       "timestamps", 1));
	r = ok(reply);
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 2);
	assert_true(json_is_false(json_object_get(r, "skipped")));
	json_decref(reply);

	reply = call("container_logs",
		     json_pack("{s:s,s:s}", "id", "demo-r3-a0", "timestamps",
			       "yes"));
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
	reply = call("container_logs",
		     json_pack("{s:s,s:i}", "id", "demo-r3-a0", "after_ns", -1));
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
}

/* ---- the probe ---------------------------------------------------- */

static void test_container_ops__probe(void **state)
{
	struct ml_probe_result res;
	char *want;
	int fd, port;

	app_script(0, 200, 302, 503, 0);
	assert_int_equal(
		ml_probe_http(&res, "127.0.0.1", app.port, "/health", 1000), 0);
	assert_int_equal(res.status, 200);
	assert_string_equal(app.last_line, "GET /health HTTP/1.1");
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", app.port, "/", 1000),
			 0);
	assert_int_equal(res.status, 302);
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", app.port, "/", 1000),
			 ML_EFAIL);
	assert_int_equal(res.status, 503);
	want = ml_xasprintf("GET http://127.0.0.1:%d/: HTTP 503", app.port);
	assert_string_equal(ml_err_msg(), want);
	free(want);

	port = closed_port(&fd);
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", port, "/", 1000),
			 ML_EFAIL);
	assert_int_equal(res.status, 0);
	assert_non_null(strstr(ml_err_msg(), "Connection refused"));
	close(fd);

	app_script(400, 200, 0);
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", app.port, "/", 100),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "no answer within 100 ms"));
	assert_true(res.elapsed_ms < 400);
	poll(NULL, 0, 400); /* let the server finish with that one */

	assert_int_equal(ml_probe_http(&res, "127.0.0.1", 80, "x", 100),
			 ML_EINVALID);
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", 80, "/a b", 100),
			 ML_EINVALID);
	assert_int_equal(ml_probe_http(&res, "evil.example", 80, "/", 100),
			 ML_EINVALID);
	assert_int_equal(ml_probe_http(&res, "127.0.0.1", 0, "/", 100),
			 ML_EINVALID);
}

/*
 * container_request with a method the probe refuses: the op's name once,
 * then the probe's reason whole (this site once formatted ml_err_msg()
 * into the buffer it read from).
 */
static void test_container_ops__request_bad_method(void **state)
{
	json_t *reply;

	ML_UNUSED(state);
	reply = call("container_request",
		     json_pack("{s:i,s:s,s:s}", "host_port", app.port, "path",
			       "/health", "method", "get"));
	assert_string_equal(err_code(reply), "bad-request");
	assert_string_equal(err_msg(reply),
			    "container_request: request: bad address, port, "
			    "method or path");
	json_decref(reply);
}

/* ---- container_wait ------------------------------------------------- */

#define INSPECT_RUNNING                                                        \
	"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"RestartCount\":0,"      \
	"\"State\":{\"Status\":\"running\",\"Running\":true,"                  \
	"\"ExitCode\":0}}"

static const char crash_log[] =
	"\x02\0\0\0\0\0\0\x0fTraceback: ...\n"
	"\x02\0\0\0\0\0\0\x19ValueError: no model.bin\n";

static struct xroute wait_routes[] = {
	{"GET /version ", 200, VERSION, 0},
	{"GET /v1.41/containers/demo-r3-a0/json", 200, INSPECT_RUNNING, 0},
	{"GET /v1.41/containers/demo-r3-a0/logs", 200, crash_log,
	 sizeof(crash_log) - 1},
	{NULL, 0, NULL, 0},
};

static json_t *wait_args(int interval, int healthy, int unhealthy,
			 int start_period, int deadline)
{
	json_t *a = json_pack(
		"{s:s,s:i,s:s,s:i,s:i,s:i,s:i,s:i,s:i}", "id", "demo-r3-a0",
		"host_port", app.port, "path", "/ready", "interval_ms",
		interval, "timeout_ms", 200, "start_period_ms", start_period,
		"healthy_threshold", healthy, "unhealthy_threshold", unhealthy,
		"deadline_ms", deadline);

	assert_non_null(a);
	return a;
}

static void wait_with(const char *inspect)
{
	wait_routes[1].body = inspect;
	xf_routes(wait_routes);
}

static void test_container_ops__wait_healthy(void **state)
{
	json_t *reply, *r;

	wait_with(INSPECT_RUNNING);
	app_script(0, 200, 0);
	reply = call("container_wait", wait_args(20, 1, 3, 0, 5000));
	r = ok(reply);
	assert_true(json_is_true(json_object_get(r, "healthy")));
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 1);
	assert_string_equal(app.last_line, "GET /ready HTTP/1.1");
	json_decref(reply);

	/* healthy_threshold 3 needs three passes in a row */
	app_script(0, 200, 0);
	reply = call("container_wait", wait_args(20, 3, 3, 0, 5000));
	r = ok(reply);
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 3);
	assert_true(json_integer_value(json_object_get(r, "after_ms")) >= 40);
	json_decref(reply);
}

static void test_container_ops__wait_flapping(void **state)
{
	json_t *reply, *r;

	/* pass, fail, pass, fail, pass, pass: the fails break the runs */
	wait_with(INSPECT_RUNNING);
	app_script(0, 200, 503, 200, 503, 200, 200, 0);
	reply = call("container_wait", wait_args(10, 2, 3, 0, 5000));
	r = ok(reply);
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 6);
	assert_int_equal(app_hits(), 6);
	json_decref(reply);

	/* fails that never come 3 in a row are not "unhealthy" */
	app_script(0, 503, 503, 200, 503, 503, 200, 200, 0);
	reply = call("container_wait", wait_args(10, 2, 3, 0, 5000));
	assert_int_equal(
		json_integer_value(json_object_get(ok(reply), "probes")), 7);
	json_decref(reply);
}

static void test_container_ops__wait_start_period(void **state)
{
	json_t *reply, *r;

	/* 5 failures inside a 400 ms start period do not count */
	wait_with(INSPECT_RUNNING);
	app_script(0, 503, 503, 503, 503, 503, 200, 0);
	reply = call("container_wait", wait_args(50, 1, 2, 400, 5000));
	r = ok(reply);
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 6);
	json_decref(reply);

	/* without it, the second failure ends the wait */
	app_script(0, 503, 503, 503, 503, 503, 200, 0);
	reply = call("container_wait", wait_args(50, 1, 2, 0, 5000));
	assert_string_equal(err_code(reply), "failed");
	assert_int_equal(app_hits(), 2);
	json_decref(reply);
}

static void test_container_ops__wait_unhealthy(void **state)
{
	char *want;
	json_t *reply;

	wait_with(INSPECT_RUNNING);
	app_script(0, 503, 0);
	reply = call("container_wait", wait_args(10, 1, 3, 0, 5000));
	assert_string_equal(err_code(reply), "failed");
	want = ml_xasprintf("unhealthy: GET http://127.0.0.1:%d/ready: HTTP "
			    "503 (3 failed probes in a row); last 2 log "
			    "lines: Traceback: ... | ValueError: no "
			    "model.bin",
			    app.port);
	assert_string_equal(err_msg(reply), want);
	free(want);
	assert_int_equal(app_hits(), 3);
	json_decref(reply);

	/* a probe that times out is a failure like any other */
	app_script(300, 200, 0);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 5000));
	assert_non_null(strstr(err_msg(reply), "no answer within 200 ms (2 "
					       "failed probes in a row)"));
	json_decref(reply);
	poll(NULL, 0, 300);
}

static void test_container_ops__wait_deadline(void **state)
{
	json_t *reply;

	/* never 3 failures in a row, never 2 passes: the deadline ends it */
	wait_with(INSPECT_RUNNING);
	app_script(0, 503, 200, 503, 200, 503, 200, 503, 200, 503, 200, 503,
		   200, 503, 200, 503, 200, 0);
	reply = call("container_wait", wait_args(20, 2, 3, 0, 300));
	assert_string_equal(err_code(reply), "failed");
	assert_non_null(strstr(err_msg(reply), "not healthy within 300 ms"));
	assert_true(app_hits() >= 2 && app_hits() <= 16);
	json_decref(reply);
}

static void test_container_ops__wait_probes_early(void **state)
{
	json_t *reply, *r;

	/* interval 1 s: rounds at 0, 50, 150, 350 ms find the server that
	 * answers on the fourth, and the three early failures do not count
	 * towards unhealthy_threshold 2 */
	wait_with(INSPECT_RUNNING);
	app_script(0, 503, 503, 503, 200, 0);
	reply = call("container_wait", wait_args(1000, 1, 2, 0, 10000));
	r = ok(reply);
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 4);
	assert_true(json_integer_value(json_object_get(r, "after_ms")) < 1000);
	json_decref(reply);

	/* interval 2 s (the playbook's default): after 50, 100 and 200 ms
	 * the gap stays at 250 ms rather than doubling on to the interval,
	 * so the ninth round, the first to pass, comes at about 1.6 s
	 * (when the gap backed off to the interval, the rounds at 0, 3.55
	 * and 5.55 s were three counted failures and failed the wait) */
	app_script(0, 503, 503, 503, 503, 503, 503, 503, 503, 200, 0);
	reply = call("container_wait", wait_args(2000, 1, 3, 0, 20000));
	r = ok(reply);
	assert_int_equal(json_integer_value(json_object_get(r, "probes")), 9);
	assert_true(json_integer_value(json_object_get(r, "after_ms")) >= 1500);
	assert_true(json_integer_value(json_object_get(r, "after_ms")) < 3000);
	json_decref(reply);

	/* interval 200 ms: failures count at 0 ms and at 350 ms (the first
	 * round at least 175 ms after it), so the fourth round fails the wait */
	app_script(0, 503, 0);
	reply = call("container_wait", wait_args(200, 1, 2, 0, 10000));
	assert_string_equal(err_code(reply), "failed");
	assert_non_null(strstr(err_msg(reply), "(2 failed probes in a row)"));
	assert_int_equal(app_hits(), 4);
	json_decref(reply);
}

static void test_container_ops__wait_docker_health(void **state)
{
	static const char starting[] =
		"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{"
		"\"Status\":\"running\",\"Running\":true,\"Health\":{"
		"\"Status\":\"starting\"}}}";
	static const char healthy[] =
		"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{"
		"\"Status\":\"running\",\"Running\":true,\"Health\":{"
		"\"Status\":\"healthy\"}}}";
	static const char unhealthy[] =
		"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{"
		"\"Status\":\"running\",\"Running\":true,\"Health\":{"
		"\"Status\":\"unhealthy\"}}}";
	json_t *reply;

	app_script(0, 200, 0);
	/* Docker says starting: not a failure, not a pass */
	wait_with(starting);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 200));
	assert_non_null(strstr(err_msg(reply), "not healthy within 200 ms"));
	assert_non_null(strstr(err_msg(reply), "HEALTHCHECK says "
					       "'starting'"));
	json_decref(reply);

	wait_with(healthy);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 2000));
	ok(reply);
	json_decref(reply);

	wait_with(unhealthy);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 2000));
	assert_non_null(strstr(err_msg(reply), "unhealthy: the probe passes "
					       "but Docker's HEALTHCHECK says "
					       "'unhealthy'"));
	json_decref(reply);
}

static void test_container_ops__wait_exited(void **state)
{
	static const char exited[] =
		"{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\",\"State\":{"
		"\"Status\":\"exited\",\"Running\":false,\"ExitCode\":3}}";
	static const char restarting[] =
		"{\"Id\":\"c0ffee\",\"Name\":\"/"
		"demo-r3-a0\",\"RestartCount\":4,"
		"\"State\":{\"Status\":\"restarting\",\"Running\":true,"
		"\"Restarting\":true,\"ExitCode\":137,\"OOMKilled\":true}}";
	json_t *reply;

	app_script(0, 200, 0);
	wait_with(exited);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 5000));
	assert_string_equal(err_msg(reply),
			    "container 'demo-r3-a0' exited with code 3; last 2 "
			    "log lines: Traceback: ... | ValueError: no "
			    "model.bin");
	assert_int_equal(app_hits(), 0);
	json_decref(reply);

	wait_with(restarting);
	reply = call("container_wait", wait_args(10, 1, 2, 0, 5000));
	assert_non_null(strstr(err_msg(reply),
			       "container 'demo-r3-a0' is restarting (exit "
			       "code 137, 4 restarts, killed for lack of "
			       "memory); last 2 log lines"));
	json_decref(reply);

	/* running at the first look, restarted at the third */
	{
		static const struct xroute crashing[] = {
			{"GET /version ", 200, VERSION, 0, 0},
			{"GET /v1.41/containers/demo-r3-a0/json", 200,
			 INSPECT_RUNNING, 0, 2},
			{"GET /v1.41/containers/demo-r3-a0/json", 200,
			 "{\"Id\":\"c0ffee\",\"Name\":\"/demo-r3-a0\","
			 "\"RestartCount\":1,\"State\":{\"Status\":"
			 "\"running\",\"Running\":true,\"ExitCode\":0}}",
			 0, 0},
			{"GET /v1.41/containers/demo-r3-a0/logs", 200,
			 crash_log, sizeof(crash_log) - 1, 0},
			{NULL, 0, NULL, 0, 0},
		};

		xf_routes(crashing);
		app_script(0, 503, 0);
		reply = call("container_wait", wait_args(10, 1, 5, 0, 5000));
		assert_string_equal(err_msg(reply),
				    "container 'demo-r3-a0' crashed and was "
				    "restarted while starting (1 restarts); "
				    "last 2 log lines: Traceback: ... | "
				    "ValueError: no model.bin");
		assert_int_equal(app_hits(), 2);
		json_decref(reply);
	}

	xf_routes(wait_routes + 2); /* no inspect: the container is gone */
	reply = call("container_wait", wait_args(10, 1, 2, 0, 5000));
	assert_string_equal(err_code(reply), "not-found");
	json_decref(reply);

	reply = call("container_wait",
		     json_pack("{s:s,s:i,s:s}", "id", "x", "host_port", 80,
			       "path", "no-slash"));
	assert_string_equal(err_code(reply), "bad-request");
	json_decref(reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_container_ops__run_creates),
		cmocka_unit_test(test_container_ops__run_labels_its_health),
		cmocka_unit_test(test_container_ops__run_hardened_by_default),
		cmocka_unit_test(test_container_ops__run_gpus_and_cmd),
		cmocka_unit_test(test_container_ops__run_idempotent),
		cmocka_unit_test(test_container_ops__run_replaces),
		cmocka_unit_test(test_container_ops__run_refusals),
		cmocka_unit_test(test_container_ops__run_start_fails),
		cmocka_unit_test(test_container_ops__run_bad_args),
		cmocka_unit_test(test_container_ops__run_resume),
		cmocka_unit_test(test_container_ops__run_resume_refused),
		cmocka_unit_test(test_container_ops__stop),
		cmocka_unit_test(test_container_ops__stop_absent_and_foreign),
		cmocka_unit_test(test_container_ops__stop_pause),
		cmocka_unit_test(test_container_ops__stop_unpauses_first),
		cmocka_unit_test(test_container_ops__log_lines),
		cmocka_unit_test(test_container_ops__logs),
		cmocka_unit_test(test_container_ops__logs_after),
		cmocka_unit_test(test_container_ops__probe),
		cmocka_unit_test(test_container_ops__request_bad_method),
		cmocka_unit_test(test_container_ops__wait_healthy),
		cmocka_unit_test(test_container_ops__wait_flapping),
		cmocka_unit_test(test_container_ops__wait_start_period),
		cmocka_unit_test(test_container_ops__wait_unhealthy),
		cmocka_unit_test(test_container_ops__wait_deadline),
		cmocka_unit_test(test_container_ops__wait_probes_early),
		cmocka_unit_test(test_container_ops__wait_docker_health),
		cmocka_unit_test(test_container_ops__wait_exited),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
