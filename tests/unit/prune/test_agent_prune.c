/*
 * The agent's prune op refuses, item by item, what something still uses,
 * whatever the controller asked: against a fake Docker daemon (static
 * answers: a running container of the app, a stopped one of another app,
 * one of no app, a stopped one of the app; images used by them, one with
 * a foreign tag, one garbage) and a real blob store. The real daemon is
 * exercised by tests/e2e/test_prune.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "common/log.h"
#include "common/sha256.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "tests/unit/agent/fake_docker.h"
#include "tests/support/proc.h"

static char *digest_of(const char *data)
{
	char hex[ML_SHA256_HEX];

	ml_sha256_hex(data, strlen(data), hex);
	return ml_xasprintf("sha256:%s", hex);
}

static void put(struct ml_blobstore *s, const char *data)
{
	struct ml_blob_put *p;
	char *dg = digest_of(data);

	ml_blob_put_new(&p, s, dg, strlen(data), 0, false);
	assert_int_equal(ml_blob_put_begin(p), 0);
	assert_int_equal(ml_blob_put_write(p, data, strlen(data)), 0);
	assert_int_equal(ml_blob_put_finish(p), 0);
	ml_blob_put_free(p);
	free(dg);
}

static const char *reason_of(json_t *arr, const char *key, const char *id,
			     bool *removed)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		if (!strcmp(json_string_value(json_object_get(v, key)) ?: "",
			    id)) {
			*removed = json_is_true(json_object_get(v, "removed"));
			return json_string_value(json_object_get(v, "reason"))
				       ?: "";
		}
	fail_msg("no answer for %s", id);
	return NULL;
}

static void test_agent_prune__checks_each_item(void **state)
{
	char *state_dir = ml_test_tmpdir("agentprune");
	char *A = digest_of("config a"), *B = digest_of("config b");
	char *C = digest_of("config c"), *D = digest_of("config d");
	char *lold = digest_of("old layer"), *lsh = digest_of("shared layer");
	char *bodies[8];
	struct fake_route routes[16];
	struct fake_docker fake;
	struct ml_blobstore *s;
	struct ml_agent a;
	json_t *args, *res = NULL;
	bool removed;
	size_t n = 0, i;
	uint64_t size;
	int64_t part;

	ML_UNUSED(state);
	ml_log_init("test", ML_LOG_QUIET);
	ml_blobstore_open(&s, state_dir);
	put(s, "config d");
	put(s, "old layer");
	put(s, "shared layer");

	bodies[0] = ml_xasprintf(
		"[{\"Id\":\"crun\",\"Names\":[\"/demo-r3-a0\"],\"ImageID\":"
		"\"%s\",\"State\":\"running\",\"Labels\":{\"mlctl.app\":"
		"\"demo\"}},{\"Id\":\"cnone\",\"Names\":[\"/debug\"],"
		"\"ImageID\":\"%s\",\"State\":\"exited\",\"Labels\":{}},"
		"{\"Id\":\"cold\",\"Names\":[\"/demo-r1-a0\"],\"ImageID\":"
		"\"%s\",\"State\":\"exited\",\"Labels\":{\"mlctl.app\":"
		"\"demo\"}}]",
		A, B, D);
	bodies[1] = ml_xasprintf(
		"[{\"Id\":\"%s\",\"RepoTags\":[\"mlctl/demo:3\"]},"
		"{\"Id\":\"%s\",\"RepoTags\":[]},"
		"{\"Id\":\"%s\",\"RepoTags\":[\"mlctl/demo:1\",\"team:x\"]},"
		"{\"Id\":\"%s\",\"RepoTags\":[\"mlctl/demo:2\"]}]",
		A, B, C, D);
	bodies[2] = ml_xasprintf("{\"RootFS\":{\"Layers\":[\"%s\"]}}", lsh);
	bodies[3] = ml_xasprintf("{\"RootFS\":{\"Layers\":[\"%s\",\"%s\"]}}",
				 lsh, lold);
	bodies[4] = ml_xasprintf("GET /v1.41/images/%s/json", A);
	bodies[5] = ml_xasprintf("GET /v1.41/images/%s/json", D);
	routes[n++] = (struct fake_route){ "GET /version ", 200,
		"{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
		"\"MinAPIVersion\":\"1.12\"}", 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/containers/crun/json",
		200, "{\"Id\":\"crun\",\"Name\":\"/demo-r3-a0\",\"State\":"
		"{\"Status\":\"running\"},\"Config\":{\"Labels\":"
		"{\"mlctl.app\":\"demo\"}}}", 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/containers/cother/json",
		200, "{\"Id\":\"cother\",\"Name\":\"/other-r1-a0\",\"State\":"
		"{\"Status\":\"exited\"},\"Config\":{\"Labels\":"
		"{\"mlctl.app\":\"other\"}}}", 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/containers/cnone/json",
		200, "{\"Id\":\"cnone\",\"Name\":\"/debug\",\"State\":"
		"{\"Status\":\"exited\"},\"Config\":{\"Labels\":{}}}", 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/containers/cold/json",
		200, "{\"Id\":\"cold\",\"Name\":\"/demo-r1-a0\",\"State\":"
		"{\"Status\":\"exited\"},\"Config\":{\"Labels\":"
		"{\"mlctl.app\":\"demo\"}}}", 0 };
	routes[n++] = (struct fake_route){ "DELETE /v1.41/containers/cold",
		204, NULL, 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/containers/json", 200,
		bodies[0], 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/images/json", 200,
		bodies[1], 0 };
	routes[n++] = (struct fake_route){ bodies[4], 200, bodies[2], 0 };
	routes[n++] = (struct fake_route){ bodies[5], 200, bodies[3], 0 };
	routes[n++] = (struct fake_route){ "GET /v1.41/images/", 200,
		"{\"RootFS\":{\"Layers\":[]}}", 0 };
	routes[n++] = (struct fake_route){ "DELETE /v1.41/images/", 200, "[]",
		0 };
	fake_docker_start(&fake, routes, n);
	ml_agent_init(&a);
	a.docker_sock = fake.sock;
	a.state_dir = state_dir;

	args = json_pack("{s:s,s:[ssss],s:[{s:s},{s:s},{s:s,s:[s]},{s:s}],"
			 "s:[sss]}",
			 "app", "demo", "containers", "crun", "cother", "cnone",
			 "cold", "images", "id", A, "id", B, "id", C, "tags",
			 "mlctl/demo:1", "id", D, "blobs", D, lold, lsh);
	assert_int_equal(ml_agent_op_prune.run(&a, args, &res), 0);

	assert_string_equal(reason_of(json_object_get(res, "containers"), "id",
				      "crun", &removed),
			    "it is running");
	assert_false(removed);
	assert_non_null(strstr(reason_of(json_object_get(res, "containers"),
					 "id", "cother", &removed),
			       "not a container of app 'demo'"));
	assert_false(removed);
	reason_of(json_object_get(res, "containers"), "id", "cnone", &removed);
	assert_false(removed);
	reason_of(json_object_get(res, "containers"), "id", "cold", &removed);
	assert_true(removed);

	assert_string_equal(reason_of(json_object_get(res, "images"), "id", A,
				      &removed),
			    "a container uses it");
	assert_false(removed);
	assert_string_equal(reason_of(json_object_get(res, "images"), "id", B,
				      &removed),
			    "a container uses it");
	assert_false(removed);
	assert_string_equal(reason_of(json_object_get(res, "images"), "id", C,
				      &removed),
			    "it is also tagged team:x");
	assert_false(removed);
	reason_of(json_object_get(res, "images"), "id", D, &removed);
	assert_true(removed); /* its only user, cold, went first */

	reason_of(json_object_get(res, "blobs"), "digest", D, &removed);
	assert_true(removed);
	reason_of(json_object_get(res, "blobs"), "digest", lold, &removed);
	assert_true(removed);
	assert_non_null(strstr(reason_of(json_object_get(res, "blobs"),
					 "digest", lsh, &removed),
			       "an image on this host is made of it"));
	assert_false(removed);
	assert_int_equal(json_integer_value(json_object_get(res, "blob_bytes")),
			 strlen("config d") + strlen("old layer"));
	assert_int_equal(json_integer_value(json_object_get(res, "image_bytes")),
			 strlen("old layer"));
	assert_int_equal(ml_blobstore_stat(s, lold, &size, &part), 0);
	assert_int_equal(ml_blobstore_stat(s, lsh, &size, &part), 1);
	json_decref(res);
	json_decref(args);

	/* bad arguments are refused before anything is done */
	args = json_pack("{s:s,s:s}", "app", "demo", "blobs", "x");
	res = NULL;
	assert_int_equal(ml_agent_op_prune.run(&a, args, &res), ML_EPROTO);
	json_decref(args);

	ml_agent_release(&a);
	fake_docker_stop(&fake);
	ml_blobstore_free(s);
	ml_test_rmtree(state_dir);
	for (i = 0; i < 6; i++)
		free(bodies[i]);
	free(state_dir);
	free(A);
	free(B);
	free(C);
	free(D);
	free(lold);
	free(lsh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_prune__checks_each_item),
	};

	return cmocka_run_group_tests_name("prune/agent", tests, NULL, NULL);
}
