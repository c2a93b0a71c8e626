/*
 * Tests of what `mlctl init` writes (orchestrator/image/scaffold.c), of
 * the checks of `mlctl image check` (orchestrator/image/check.c, fed
 * Docker-shaped JSON), of the base key's apt-cache parser
 * (orchestrator/image/base.c) and of the health probe's expectations
 * (agent/probe.c): all pure functions.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "agent/probe.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/base.h"
#include "orchestrator/image/check.h"
#include "orchestrator/image/scaffold.h"

#include <setjmp.h>
#include <cmocka.h>

static struct ml_scaffold example(void)
{
	static const char *const none[] = { NULL };
	struct ml_scaffold s = {
		.app = "iris",
		.base = "mlctl/base:py3.11-0123456789ab",
		.base_is_mlctl = true,
		.python = "3.11",
		.port = 8080,
		.requirements = "requirements.txt",
		.wheelhouse = "wheelhouse",
		.model_dir = "model/",
		.module = "app:app",
		.system_packages = none,
		.group = "web",
	};
	return s;
}

/* The index of needle in hay, failing when absent. */
static size_t at(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);

	if (!p)
		print_error("'%s' not in:\n%s\n", needle, hay);
	assert_non_null(p);
	return (size_t)(p - hay);
}

static void test_scaffold__dockerfile_layers_in_order(void **st)
{
	struct ml_scaffold s = example();
	struct ml_buf b = ML_BUF_INIT(65536);
	const char *t;

	ML_UNUSED(st);
	assert_int_equal(ml_scaffold_dockerfile(&b, &s), 0);
	t = ml_buf_str(&b);
	/* deps, then weights, then code; wheels only in the deps stage */
	assert_true(at(t, "COPY --from=deps /deps/ /") <
		    at(t, "COPY --chown=10001:10001 model/ /opt/model/"));
	assert_true(at(t, "COPY --chown=10001:10001 model/ /opt/model/") <
		    at(t, "COPY --from=code --chown=10001:10001 /src/ /\n"));
	at(t, "ln -s /opt/model /src/app/model");
	at(t, "--no-index --find-links /tmp/deps/wheels");
	/* the deps layer is never empty (moby#40591): it keeps the list */
	assert_true(at(t, "--root /deps -r /tmp/deps/requirements.txt") <
		    at(t, "cp /tmp/deps/requirements.txt "
			  "/deps/usr/local/share/mlctl/\n"));
	at(t, "RUN rm -rf /src/app/Dockerfile /src/app/model /src/app/wheelhouse");
	at(t, "USER 10001:10001\n");
	at(t, "EXPOSE 8080\n");
	at(t, "ENTRYPOINT [\"/usr/bin/tini\", \"--\"]");
	at(t, "\"--port\", \"8080\"");
	/* no chown -R layer, no ARG or ENV from the build machine */
	assert_null(strstr(t, "chown -R"));
	assert_null(strstr(t, "\nARG "));
	assert_null(strstr(t, "\nENV "));
	ml_buf_release(&b);
}

/* No requirements: the deps stage still leaves a file to copy, with fixed
 * times, so that the layer is never empty and always the same bytes. */
static void test_scaffold__no_requirements_no_empty_layer(void **st)
{
	struct ml_scaffold s = example();
	struct ml_buf b = ML_BUF_INIT(65536);
	const char *t;

	ML_UNUSED(st);
	s.requirements = NULL;
	s.wheelhouse = NULL;
	assert_int_equal(ml_scaffold_dockerfile(&b, &s), 0);
	t = ml_buf_str(&b);
	assert_null(strstr(t, "pip install"));
	assert_true(at(t, "FROM mlctl/base:py3.11-0123456789ab AS deps\n"
			  "RUN mkdir -p /deps/usr/local/share/mlctl && : > "
			  "/deps/usr/local/share/mlctl/requirements.txt \\\n"
			  "\t&& find /deps -exec touch -h -d @1700000000 {} +\n") <
		    at(t, "COPY --from=deps /deps/ /\n"));
	ml_buf_release(&b);
}

static void test_scaffold__other_base_gets_tini_and_index(void **st)
{
	static const char *const pkgs[] = { "libgomp1", NULL };
	struct ml_scaffold s = example();
	struct ml_buf b = ML_BUF_INIT(65536);
	const char *t;

	ML_UNUSED(st);
	s.base = "python:3.11-slim@sha256:abc";
	s.base_is_mlctl = false;
	s.wheelhouse = NULL;
	s.system_packages = pkgs;
	assert_int_equal(ml_scaffold_dockerfile(&b, &s), 0);
	t = ml_buf_str(&b);
	at(t, "apt-get install -y --no-install-recommends tini libgomp1");
	assert_null(strstr(t, "--no-index"));
	ml_buf_release(&b);
}

static void test_scaffold__refuses_unsafe_answers(void **st)
{
	struct ml_scaffold s = example();
	struct ml_buf b = ML_BUF_INIT(65536);

	ML_UNUSED(st);
	s.app = "Bad Name";
	assert_int_equal(ml_scaffold_dockerfile(&b, &s), ML_EINVALID);
	s = example();
	s.model_dir = "../weights";
	assert_int_equal(ml_scaffold_dockerfile(&b, &s), ML_EINVALID);
	s = example();
	s.requirements = "req\".txt";
	assert_int_equal(ml_scaffold_playbook(&b, &s), ML_EINVALID);
	s = example();
	s.port = 0;
	assert_int_equal(ml_scaffold_playbook(&b, &s), ML_EINVALID);
	ml_buf_release(&b);
}

static void test_scaffold__playbook_validates(void **st)
{
	struct ml_scaffold s = example();
	struct ml_buf b = ML_BUF_INIT(65536);
	struct ml_playbook *pb = NULL;
	struct ml_diags dg = { 0 };

	ML_UNUSED(st);
	s.gpu = true;
	assert_int_equal(ml_scaffold_playbook(&b, &s), 0);
	assert_int_equal(ml_playbook_parse(&pb, "mlctl.yaml", b.data, b.len,
					   &dg),
			 0);
	assert_int_equal(dg.n, 0);
	assert_int_equal(pb->port, 8080);
	assert_int_equal(pb->resources.gpus, -1);
	assert_int_equal(pb->health.nexpect_status, 1);
	assert_int_equal(pb->health.expect_status[0], 200);
	ml_playbook_free(pb);
	ml_diags_release(&dg);
	ml_buf_release(&b);
}

static void test_scaffold__requirements(void **st)
{
	const char text[] = "# ML\nscikit-learn==1.2.1\n\nfastapi>=0.90\n"
			    "-r other.txt\n  uvicorn[standard]==0.17.6\n"
			    "numpy\n";
	struct ml_req_issue *is;
	char **names;
	size_t n;

	ML_UNUSED(st);
	assert_int_equal(ml_scaffold_requirements(&names, &is, &n, text,
						  strlen(text)),
			 0);
	assert_string_equal(names[0], "scikit-learn");
	assert_string_equal(names[1], "fastapi");
	assert_string_equal(names[2], "uvicorn");
	assert_string_equal(names[3], "numpy");
	assert_null(names[4]);
	assert_int_equal(n, 2);
	assert_string_equal(is[0].name, "fastapi");
	assert_int_equal(is[0].line, 4);
	assert_string_equal(is[1].name, "numpy");
	assert_int_equal(is[1].line, 7);
	ml_scaffold_names_free(names);
	ml_req_issues_free(is, n);
}

static void test_base__parse_versions(void **st)
{
	const char *names[] = { "python3", "tini" };
	const char ans[] = "Package: tini\nVersion: 0.19.0-1+b3\n\n"
			   "Package: python3\nSource: python3-defaults\n"
			   "Version: 3.11.2-1+b1\n";
	struct ml_base_key k = { 0 };

	ML_UNUSED(st);
	assert_int_equal(ml_base_parse_versions(&k, ans, names, 2), 0);
	assert_string_equal(k.pkgs[0].name, "python3");
	assert_string_equal(k.pkgs[0].version, "3.11.2-1+b1");
	assert_string_equal(k.pkgs[1].version, "0.19.0-1+b3");
	ml_base_key_release(&k);

	/* a package apt does not know */
	names[1] = "python3-nosuch";
	assert_int_equal(ml_base_parse_versions(&k, ans, names, 2),
			 ML_EINVALID);
	assert_non_null(strstr(ml_err_msg(), "'python3-nosuch'"));
	ml_base_key_release(&k);

	assert_true(ml_base_valid_package("python3-sklearn"));
	assert_false(ml_base_valid_package("-oAPT::x"));
	assert_false(ml_base_valid_package("Python3"));
	assert_false(ml_base_valid_package("a b"));
}

static json_t *inspect_doc(const char *user, const char *env_name)
{
	return json_pack(
		"{s:s,s:I,s:{s:s,s:[s],s:[s],s:{s:{}},s:[s]},s:{s:[s,s,s]}}",
		"Id", "sha256:1111", "Size", (json_int_t)300 << 20, "Config",
		"User", user, "Entrypoint", "/usr/bin/tini", "Cmd", "python3",
		"ExposedPorts", "8000/tcp", "Env", env_name, "RootFS",
		"Layers", "sha256:base", "sha256:deps", "sha256:code");
}

static json_t *history_doc(void)
{
	/* newest first, as Docker sends it */
	return json_pack(
		"[{s:s,s:I},{s:s,s:I},{s:s,s:I},{s:s,s:I},{s:s,s:s,s:I}]",
		"CreatedBy", "/bin/sh -c #(nop) COPY dir:ab in /app/", "Size",
		(json_int_t)4096, "CreatedBy", "/bin/sh -c #(nop)  EXPOSE 8000",
		"Size", (json_int_t)0, "CreatedBy",
		"|1 HF_TOKEN=xyz /bin/sh -c pip install -r r.txt", "Size",
		(json_int_t)5 << 20, "CreatedBy",
		"/bin/sh -c #(nop)  ARG HF_TOKEN", "Size", (json_int_t)0,
		"CreatedBy", "", "Comment", "mlctl image base", "Size",
		(json_int_t)290 << 20);
}

static bool has_warning(const json_t *rep, const char *needle)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(rep, "warnings"), i, v)
		if (strstr(json_string_value(v), needle))
			return true;
	return false;
}

static void test_check__findings(void **st)
{
	json_t *insp = inspect_doc("", "AWS_SECRET_ACCESS_KEY=hunter2");
	json_t *hist = history_doc(), *dep = json_pack("[s,s]", "sha256:base",
						       "sha256:old");
	struct ml_image_check_in in = { .ref = "x", .inspect = insp,
					.history = hist, .port = 9000,
					.deployed_layers = dep,
					.deployed_revision = 4 };
	json_t *rep;
	char *dump;

	ML_UNUSED(st);
	assert_int_equal(ml_image_check_run(&rep, &in), 0);
	assert_true(has_warning(rep, "runs as root"));
	assert_true(has_warning(rep, "port 9000 is not exposed"));
	assert_true(has_warning(rep, "ENV 'AWS_SECRET_ACCESS_KEY'"));
	assert_true(has_warning(rep, "build arg 'HF_TOKEN'"));
	/* the deps layer (5 MiB) changed below the code layer */
	assert_true(has_warning(rep, "layer 2 (5.0MiB"));
	assert_int_equal(json_integer_value(
				 json_object_get(rep, "layers_changed")),
			 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(rep,
								   "layers"),
						   2),
				    "created_by")),
			    "COPY dir:ab in /app/");
	/* values never reach the report */
	dump = json_dumps(rep, 0);
	assert_null(strstr(dump, "hunter2"));
	assert_null(strstr(dump, "xyz"));
	free(dump);
	json_decref(rep);
	json_decref(insp);

	/* a good image: no warning */
	insp = inspect_doc("10001:10001", "LANG=C.UTF-8");
	json_decref(hist);
	hist = json_pack("[{s:s,s:I},{s:s,s:I},{s:s,s:I}]", "CreatedBy",
			 "/bin/sh -c #(nop) COPY dir:ab in /app/", "Size",
			 (json_int_t)4096, "CreatedBy",
			 "/bin/sh -c pip install", "Size", (json_int_t)5 << 20,
			 "CreatedBy", "", "Size", (json_int_t)290 << 20);
	in.inspect = insp;
	in.history = hist;
	in.port = 8000;
	json_decref(dep);
	dep = json_pack("[s,s,s]", "sha256:base", "sha256:deps", "sha256:x");
	in.deployed_layers = dep;
	assert_int_equal(ml_image_check_run(&rep, &in), 0);
	assert_int_equal(json_array_size(json_object_get(rep, "warnings")), 0);
	assert_int_equal(json_integer_value(
				 json_object_get(rep, "layers_changed")),
			 1);
	json_decref(rep);

	/* the playbook sent with the context: one warning, naming it */
	{
		static const char *const state[] = { "svc/mlctl.yaml", NULL };

		in.state_in_context = state;
		assert_int_equal(ml_image_check_run(&rep, &in), 0);
		assert_int_equal(
			json_array_size(json_object_get(rep, "warnings")), 1);
		assert_true(has_warning(rep, "'svc/mlctl.yaml' is in the build "
					     "context and .dockerignore does "
					     "not leave it out"));
		json_decref(rep);
		in.state_in_context = NULL;
	}

	/* an empty COPY made no layer: it is skipped, the rest line up */
	json_decref(hist);
	hist = json_pack("[{s:s,s:I},{s:s,s:I},{s:s,s:I},{s:s,s:I}]",
			 "CreatedBy", "/bin/sh -c #(nop) COPY dir:ab in /app/",
			 "Size", (json_int_t)4096, "CreatedBy",
			 "/bin/sh -c #(nop) COPY dir:ee in /", "Size",
			 (json_int_t)0, "CreatedBy", "/bin/sh -c pip install",
			 "Size", (json_int_t)5 << 20, "CreatedBy", "", "Size",
			 (json_int_t)290 << 20);
	in.history = hist;
	assert_int_equal(ml_image_check_run(&rep, &in), 0);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(rep, "layers"),
						2),
				 "size")),
			 4096);
	json_decref(rep);
	json_decref(insp);
	json_decref(hist);
	json_decref(dep);
}

static void test_probe__expectations(void **st)
{
	struct ml_probe_expect e = { 0 };
	const char loading[] = "{\"status\": \"loading\"}";
	const char ready[] = "{\"status\":\"ready\",\"model\":{\"n\":3,"
			     "\"ok\":true}}";

	ML_UNUSED(st);
	/* nothing expected: 2xx and 3xx pass */
	assert_int_equal(ml_probe_check(&e, 200, "", 0, "GET x"), 0);
	assert_int_equal(ml_probe_check(&e, 302, "", 0, "GET x"), 0);
	assert_int_equal(ml_probe_check(&e, 503, "", 0, "GET x"), ML_EFAIL);

	e.status[0] = 200;
	e.nstatus = 1;
	assert_int_equal(ml_probe_check(&e, 204, "", 0, "GET x"), ML_EFAIL);
	e.json_field = "status";
	e.json_value = "ready";
	/* 200 "loading" is not ready */
	assert_int_equal(ml_probe_check(&e, 200, loading, strlen(loading),
					"GET x"),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "'status' is \"loading\""));
	assert_int_equal(ml_probe_check(&e, 200, ready, strlen(ready),
					"GET x"),
			 0);
	e.json_field = "model.n";
	e.json_value = "3";
	assert_int_equal(ml_probe_check(&e, 200, ready, strlen(ready),
					"GET x"),
			 0);
	e.json_field = "model.ok";
	e.json_value = "true";
	assert_int_equal(ml_probe_check(&e, 200, ready, strlen(ready),
					"GET x"),
			 0);
	e.json_field = NULL;
	e.body = "ready";
	assert_int_equal(ml_probe_check(&e, 200, loading, strlen(loading),
					"GET x"),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "body lacks 'ready'"));
	/* not JSON at all */
	e.body = NULL;
	e.json_field = "status";
	assert_int_equal(ml_probe_check(&e, 200, "ok\n", 3, "GET x"),
			 ML_EFAIL);
}

static void test_probe__expect_from_json(void **st)
{
	struct ml_probe_expect e;
	json_t *j;

	ML_UNUSED(st);
	j = json_pack("{s:[i,i],s:s,s:{s:s,s:s}}", "status", 200, 204, "body",
		      "ok", "json", "field", "status", "value", "ready");
	assert_int_equal(ml_probe_expect_from_json(&e, j), 0);
	assert_int_equal(e.nstatus, 2);
	assert_string_equal(e.body, "ok");
	assert_string_equal(e.json_value, "ready");
	json_decref(j);
	j = json_pack("{s:[i]}", "status", 99);
	assert_int_equal(ml_probe_expect_from_json(&e, j), ML_EPROTO);
	json_decref(j);
	j = json_pack("{s:{s:s}}", "json", "field", "status");
	assert_int_equal(ml_probe_expect_from_json(&e, j), ML_EPROTO);
	json_decref(j);
	assert_int_equal(ml_probe_expect_from_json(&e, NULL), 0);
	assert_int_equal(e.nstatus, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scaffold__dockerfile_layers_in_order),
		cmocka_unit_test(test_scaffold__no_requirements_no_empty_layer),
		cmocka_unit_test(test_scaffold__other_base_gets_tini_and_index),
		cmocka_unit_test(test_scaffold__refuses_unsafe_answers),
		cmocka_unit_test(test_scaffold__playbook_validates),
		cmocka_unit_test(test_scaffold__requirements),
		cmocka_unit_test(test_base__parse_versions),
		cmocka_unit_test(test_check__findings),
		cmocka_unit_test(test_probe__expectations),
		cmocka_unit_test(test_probe__expect_from_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
