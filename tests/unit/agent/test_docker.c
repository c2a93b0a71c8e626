/*
 * Unit tests of agent/docker.c against a fake daemon on a unix socket
 * (fake_docker.h): API version negotiation, GET/POST, status codes and
 * Docker's messages (escaped), answer cap, timeout, unreachable daemon,
 * path checks; plus the URL escaping and name checks.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "tests/unit/agent/fake_docker.h"

#include <setjmp.h>
#include <cmocka.h>

#define VERSION_141                                                            \
	"{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","                   \
	"\"MinAPIVersion\":\"1.12\"}"

static const struct fake_route routes_main[] = {
	{"GET /version ", 200, VERSION_141, 0},
	{"GET /v1.41/containers/json", 200, "[{\"Id\":\"abc\"}]", 0},
	{"GET /v1.41/containers/gone/json", 404,
	 "{\"message\":\"No such container: gone\"}", 0},
	{"GET /v1.41/evil", 500, "{\"message\":\"bad \\u001b[31mred\\n\"}", 0},
	{"GET /v1.41/notjson", 200, "<html>hi</html>", 0},
	{"GET /v1.41/plain500", 500, "oops\r\n", 0},
	{"GET /v1.41/slow", 200, "{}", 1500},
	{"POST /v1.41/containers/create", 201, "{\"Id\":\"new\"}", 0},
	{"POST /v1.41/containers/abc/start", 204, NULL, 0},
	{"DELETE /v1.41/containers/abc", 204, NULL, 0},
};

static struct fake_docker fake;
static char big_body[64 << 10];

static int setup(void **state)
{
	fake_docker_start(&fake, routes_main, ML_ARRAY_SIZE(routes_main));
	return 0;
}

static int teardown(void **state)
{
	fake_docker_stop(&fake);
	return 0;
}

static struct ml_docker *client(void)
{
	struct ml_docker *d = NULL;

	assert_int_equal(ml_docker_new(&d, fake.sock), 0);
	return d;
}

static void test_docker__get(void **state)
{
	struct ml_docker *d = client();
	json_t *v = NULL, *ver = NULL;
	const char *api = NULL;

	assert_int_equal(ml_docker_get(d, "/containers/json?all=1", &v), 0);
	assert_true(json_is_array(v));
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(v, 0), "Id")),
		"abc");
	assert_string_equal(fake.last_line,
			    "GET /v1.41/containers/json?all=1 HTTP/1.1");
	json_decref(v);
	assert_int_equal(ml_docker_version(d, &ver, &api), 0);
	assert_string_equal(api, "1.41");
	assert_string_equal(json_string_value(json_object_get(ver, "Version")),
			    "20.10.24");
	/* the version is fetched once */
	assert_int_equal(ml_docker_get(d, "/containers/json", NULL), 0);
	ml_docker_free(d);
}

static void test_docker__post(void **state)
{
	struct ml_docker *d = client();
	json_t *body = json_pack("{s:s,s:{s:s}}", "Image", "x:1", "Labels",
				 "mlctl.app", "demo");
	json_t *v = NULL, *sentinel = json_object();

	assert_int_equal(
		ml_docker_post(d, "/containers/create?name=web", body, &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "Id")), "new");
	assert_string_equal(fake.last_body, "{\"Image\":\"x:1\",\"Labels\":"
					    "{\"mlctl.app\":\"demo\"}}");
	assert_non_null(strcasestr(fake.last_headers,
				   "Content-Type: application/json"));
	json_decref(v);

	/* 204 without a body gives NULL; so does POST without a body */
	v = sentinel;
	assert_int_equal(ml_docker_post(d, "/containers/abc/start", NULL, &v),
			 0);
	assert_null(v);
	json_decref(sentinel);
	assert_string_equal(fake.last_line,
			    "POST /v1.41/containers/abc/start HTTP/1.1");
	assert_int_equal(
		ml_docker_request(d, "DELETE", "/containers/abc", NULL, NULL),
		0);
	assert_string_equal(fake.last_line,
			    "DELETE /v1.41/containers/abc HTTP/1.1");
	json_decref(body);
	ml_docker_free(d);
}

static void test_docker__errors(void **state)
{
	struct ml_docker *d = client();
	json_t *v = NULL;

	assert_int_equal(ml_docker_get(d, "/containers/gone/json", &v),
			 ML_ENOTFOUND);
	assert_null(v);
	assert_string_equal(ml_err_msg(),
			    "docker: GET /containers/gone/json: No such "
			    "container: gone (HTTP 404)");
	assert_int_equal(ml_docker_get(d, "/evil", &v), ML_EFAIL);
	assert_string_equal(ml_err_msg(), "docker: GET /evil: bad "
					  "\\x1b[31mred (HTTP 500)");
	assert_int_equal(ml_docker_get(d, "/plain500", &v), ML_EFAIL);
	assert_string_equal(ml_err_msg(),
			    "docker: GET /plain500: oops (HTTP 500)");
	assert_int_equal(ml_docker_get(d, "/notjson", &v), ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "not JSON"));
	assert_int_equal(ml_docker_get(d, "/nothing", &v), ML_ENOTFOUND);

	/* malformed paths never reach the daemon */
	assert_int_equal(ml_docker_get(d, "/a b", &v), ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/a\r\nX: y", &v), ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "containers", &v), ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/caf\xc3\xa9", &v), ML_EINVALID);
	/* nor do dot segments that would turn into another endpoint */
	assert_int_equal(ml_docker_get(d, "/images/x/../../containers/json",
				       &v),
			 ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/images/%2e%2E/json", &v),
			 ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/images/./json", &v), ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/images/..", &v), ML_EINVALID);
	assert_int_equal(ml_docker_get(d, "/images/a\\..\\b", &v),
			 ML_EINVALID);
	/* dots inside a segment, or in the query, are fine */
	assert_int_equal(ml_docker_get(d, "/containers/gone/json?x=..", &v),
			 ML_ENOTFOUND);
	ml_docker_free(d);
}

static void test_docker__cap_and_timeout(void **state)
{
	struct fake_route routes[] = {
		{"GET /version ", 200, VERSION_141, 0},
		{"GET /v1.41/big", 200, big_body, 0},
		{"GET /v1.41/slow", 200, "{}", 1500},
	};
	struct ml_docker *d = client();
	json_t *v = NULL;
	size_t i;

	big_body[0] = '"';
	for (i = 1; i < sizeof(big_body) - 2; i++)
		big_body[i] = 'a';
	big_body[i] = '"';
	fake_docker_routes(&fake, routes, ML_ARRAY_SIZE(routes));
	ml_docker_set_max_response(d, 1000);
	assert_int_equal(ml_docker_get(d, "/big", &v), ML_ETOOBIG);
	assert_non_null(strstr(ml_err_msg(), "limit of 1000 bytes"));
	ml_docker_set_max_response(d, sizeof(big_body));
	assert_int_equal(ml_docker_get(d, "/big", &v), 0);
	assert_true(json_is_string(v));
	json_decref(v);

	ml_docker_set_timeout(d, 200);
	assert_int_equal(ml_docker_timeout(d), 200);
	assert_int_equal(ml_docker_get(d, "/slow", &v), ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "within 200 ms"));
	ml_docker_free(d);
	/* let the fake finish its slow answer before the next test */
	poll(NULL, 0, 1500);
	fake_docker_routes(&fake, routes_main, ML_ARRAY_SIZE(routes_main));
}

static void test_docker__negotiation(void **state)
{
	static const struct {
		const char *version;
		const char *api; /* NULL: refused */
	} cases[] = {
		{"{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\"}",
		 "1.41"},
		{"{\"ApiVersion\":\"1.47\",\"MinAPIVersion\":\"1.24\"}",
		 "1.41"},
		{"{\"ApiVersion\":\"1.51\",\"MinAPIVersion\":\"1.44\"}",
		 "1.44"},
		{"{\"ApiVersion\":\"1.40\"}", "1.40"},
		{"{\"ApiVersion\":\"1.30\",\"MinAPIVersion\":\"1.12\"}", NULL},
		{"{\"ApiVersion\":\"one\"}", NULL},
		{"{}", NULL},
		{"[]", NULL},
	};
	struct fake_route routes[1] = {{"GET /version ", 200, NULL, 0}};
	struct ml_docker *d;
	const char *api;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		routes[0].body = cases[i].version;
		fake_docker_routes(&fake, routes, 1);
		d = client();
		if (cases[i].api) {
			assert_int_equal(ml_docker_version(d, NULL, &api), 0);
			assert_string_equal(api, cases[i].api);
			/* and requests use it */
			assert_int_equal(ml_docker_get(d, "/info", NULL),
					 ML_ENOTFOUND);
			assert_non_null(strstr(fake.last_line, cases[i].api));
		} else {
			assert_int_equal(ml_docker_version(d, NULL, &api),
					 ML_EFAIL);
			assert_int_equal(ml_docker_get(d, "/info", NULL),
					 ML_EFAIL);
		}
		ml_docker_free(d);
	}
	fake_docker_routes(&fake, routes_main, ML_ARRAY_SIZE(routes_main));
}

static void test_docker__unreachable(void **state)
{
	struct ml_docker *d = NULL;
	char longpath[200];

	assert_int_equal(ml_docker_new(&d, "/nonexistent/mlctl/docker.sock"),
			 0);
	assert_string_equal(ml_docker_sock(d),
			    "/nonexistent/mlctl/docker.sock");
	assert_int_equal(ml_docker_get(d, "/info", NULL), ML_EFAIL);
	assert_string_equal(ml_err_msg(),
			    "cannot connect to the Docker daemon at "
			    "'/nonexistent/mlctl/docker.sock' (is dockerd "
			    "running?): No such file or directory; install "
			    "Docker (Debian: apt-get install docker.io) and "
			    "start it");
	ml_docker_free(d);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(ml_docker_new(&d, longpath), ML_EINVALID);

	/* NULL: the environment, then the default */
	setenv("MLCTL_DOCKER_SOCK", fake.sock, 1);
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	assert_string_equal(ml_docker_sock(d), fake.sock);
	ml_docker_free(d);
	unsetenv("MLCTL_DOCKER_SOCK");
	assert_int_equal(ml_docker_new(&d, NULL), 0);
	assert_string_equal(ml_docker_sock(d), ML_DOCKER_SOCK);
	ml_docker_free(d);
}

static void test_docker__url_escape_and_names(void **state)
{
	struct ml_buf b = ML_BUF_INIT(0);

	assert_int_equal(ml_docker_url_escape(&b, "{\"label\":[\"mlctl.app=a "
						  "b\"]}~-_.\xc3\xa9/&?#%"),
			 0);
	assert_string_equal(b.data, "%7B%22label%22%3A%5B%22mlctl.app%3Da%20b"
				    "%22%5D%7D~-_.%C3%A9%2F%26%3F%23%25");
	ml_buf_release(&b);

	assert_true(ml_docker_valid_name("web"));
	assert_true(ml_docker_valid_name("demo-r3_a.1"));
	assert_true(ml_docker_valid_name("7d9ec4e9202077e4380974102ec9cb686ed8c"
					 "ac2fd40a30066467747af4b7087"));
	assert_false(ml_docker_valid_name(""));
	assert_false(ml_docker_valid_name(NULL));
	assert_false(ml_docker_valid_name("-x"));
	assert_false(ml_docker_valid_name(".."));
	assert_false(ml_docker_valid_name("a/b"));
	assert_false(ml_docker_valid_name("a b"));
	assert_false(ml_docker_valid_name("a?b"));
	assert_false(ml_docker_valid_name("caf\xc3\xa9"));

	assert_true(ml_docker_valid_image("mlctl/sentiment-api:1.2"));
	assert_true(ml_docker_valid_image("reg.example:5000/a/b_c__d-e:v1"));
	assert_true(ml_docker_valid_image(
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef"));
	assert_true(ml_docker_valid_image(
		"x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef"));
	assert_false(ml_docker_valid_image("busybox/../../containers/json"));
	assert_false(ml_docker_valid_image("a/./b"));
	assert_false(ml_docker_valid_image("a//b"));
	assert_false(ml_docker_valid_image("/a"));
	assert_false(ml_docker_valid_image("a/"));
	assert_false(ml_docker_valid_image("-a"));
	assert_false(ml_docker_valid_image("a:"));
	assert_false(ml_docker_valid_image("a b"));
	assert_false(ml_docker_valid_image("a?b"));
	assert_true(ml_docker_valid_image("sha256:00"));
	assert_false(ml_docker_valid_image("sha256:"));
	assert_false(ml_docker_valid_image("sha256:0g"));
	assert_false(ml_docker_valid_image("x@sha256:"));
	assert_false(ml_docker_valid_image("x@sha256:zz"));
	{
		char n[ML_DOCKER_NAME_MAX + 2];

		memset(n, 'a', sizeof(n));
		n[ML_DOCKER_NAME_MAX] = '\0';
		assert_true(ml_docker_valid_name(n));
		n[ML_DOCKER_NAME_MAX] = 'a';
		n[ML_DOCKER_NAME_MAX + 1] = '\0';
		assert_false(ml_docker_valid_name(n));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docker__get),
		cmocka_unit_test(test_docker__post),
		cmocka_unit_test(test_docker__errors),
		cmocka_unit_test(test_docker__cap_and_timeout),
		cmocka_unit_test(test_docker__negotiation),
		cmocka_unit_test(test_docker__unreachable),
		cmocka_unit_test(test_docker__url_escape_and_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
