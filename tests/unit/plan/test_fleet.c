/*
 * The fleet planner's data tests: every tests/data/fleet/NNNN-name/ holds
 * input.json ("want": the desired state; "hosts": each target as its
 * agent answered: its list, blobs_have and lb_status replies, or the
 * error it gave) and expected (ml_fleet_plan_render's output).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/config/config.h"
#include "orchestrator/plan/fleet.h"

#include <dirent.h>

static char *read_file(const char *path)
{
	struct ml_buf b = ML_BUF_INIT(1 << 20);

	if (ml_buf_read_file(&b, path) < 0)
		return NULL;
	return ml_buf_detach(&b, NULL);
}

static bool has_role(json_t *h, const char *role)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(h, "roles"), i, v)
		if (!strcmp(json_string_value(v) ?: "", role))
			return true;
	return false;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int num(json_t *o, const char *k)
{
	return (int)json_integer_value(json_object_get(o, k));
}

/* Plan the case in `in`; the rendering into got. */
static void plan_case(json_t *in, struct ml_buf *got, json_t **doc)
{
	json_t *jw = json_object_get(in, "want");
	json_t *jh = json_object_get(in, "hosts"), *v;
	struct ml_rollout_spec rs = { 0 };
	struct ml_fleet_want w = { 0 };
	struct ml_fleet_seen *seen;
	struct ml_plan_blob *blobs;
	struct ml_fleet_plan fp;
	int canary[8];
	size_t i, nb = json_array_size(json_object_get(jw, "blobs"));

	rs.batch_count = num(jw, "batch") ? num(jw, "batch") : 1;
	rs.batch_percent = num(jw, "batch_percent");
	rs.standby = json_is_true(json_object_get(jw, "standby"));
	json_array_foreach(json_object_get(jw, "canary"), i, v)
		if (i < ML_ARRAY_SIZE(canary))
			canary[rs.canary_n++] = (int)json_integer_value(v);
	rs.canary_percent = canary;
	blobs = ml_xcalloc(nb + 1, sizeof(*blobs));
	json_array_foreach(json_object_get(jw, "blobs"), i, v) {
		blobs[i].digest = json_string_value(json_array_get(v, 0));
		blobs[i].size = json_integer_value(json_array_get(v, 1));
	}
	w.app = str(jw, "app");
	w.spec = str(jw, "spec");
	w.image_id = str(jw, "image");
	w.replicas = num(jw, "replicas");
	w.port = num(jw, "port");
	w.rollout = &rs;
	w.blobs = blobs;
	w.nblobs = nb;
	w.shape = json_object_get(jw, "shape");
	w.rev_shapes = json_object_get(jw, "rev_shapes");
	w.serving = num(jw, "serving");
	w.lb_shape = json_object_get(jw, "lb_shape");
	w.serving_lb_shape = json_object_get(jw, "serving_lb_shape");
	seen = ml_xcalloc(json_array_size(jh) + 1, sizeof(*seen));
	json_array_foreach(jh, i, v) {
		seen[i].name = str(v, "name");
		seen[i].address = str(v, "address");
		seen[i].is_app = has_role(v, "app");
		seen[i].is_lb = has_role(v, "lb");
		seen[i].error = str(v, "error");
		seen[i].containers = json_object_get(v, "containers");
		seen[i].blobs = json_object_get(v, "blobs");
		seen[i].lb = json_object_get(v, "lb");
	}
	ml_plan_fleet(&fp, &w, seen, json_array_size(jh));
	assert_int_equal(ml_fleet_plan_render(got, &fp), 0);
	if (doc)
		*doc = ml_fleet_plan_json(&fp);
	ml_fleet_plan_release(&fp);
	free(seen);
	free(blobs);
}

static int run_case(const char *dir)
{
	char *ip = ml_xasprintf("%s/input.json", dir);
	char *ep = ml_xasprintf("%s/expected", dir);
	char *expected = read_file(ep);
	json_error_t jerr;
	json_t *in = json_load_file(ip, 0, &jerr);
	struct ml_buf got = ML_BUF_INIT(1 << 16);
	int ok;

	if (!in)
		print_error("%s: %s line %d\n", ip, jerr.text, jerr.line);
	assert_non_null(expected);
	assert_non_null(in);
	plan_case(in, &got, NULL);
	ok = !strcmp(ml_buf_str(&got), expected);
	if (!ok)
		print_error("%s: expected:\n%s---\ngot:\n%s---\n", dir,
			    expected, ml_buf_str(&got));
	ml_buf_release(&got);
	json_decref(in);
	free(expected);
	free(ip);
	free(ep);
	return ok;
}

static char *data_dir(void)
{
	const char *src = getenv("MLCTL_SRC");

	return ml_xasprintf("%s/tests/data/fleet", src && *src ? src : ".");
}

static void test_fleet__data_cases(void **state)
{
	char *dir = data_dir();
	struct dirent **names = NULL;
	int n, i, ran = 0, bad = 0;

	ML_UNUSED(state);
	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char *c = ml_xasprintf("%s/%s", dir, names[i]->d_name);

			bad += !run_case(c);
			ran++;
			free(c);
		}
		free(names[i]);
	}
	free(names);
	free(dir);
	assert_int_equal(bad, 0);
	assert_true(ran >= 10);
}

/* The JSON document carries what the text says, per host. */
static void test_fleet__json_has_the_host_fields(void **state)
{
	char *dir = data_dir();
	char *ip = ml_xasprintf("%s/0002-image-change/input.json", dir);
	json_t *in = json_load_file(ip, 0, NULL), *doc = NULL, *h, *r;
	struct ml_buf got = ML_BUF_INIT(1 << 16);

	ML_UNUSED(state);
	assert_non_null(in);
	plan_case(in, &got, &doc);
	assert_true(json_is_true(json_object_get(doc, "changes")));
	assert_string_equal(str(doc, "lock_host"), "lb1");
	h = json_array_get(json_object_get(doc, "hosts"), 0);
	assert_string_equal(str(h, "host"), "vm1");
	assert_int_equal(json_integer_value(json_object_get(h, "bytes")),
			 4000);
	assert_int_equal(json_integer_value(json_object_get(h, "batch")), 1);
	r = json_array_get(json_object_get(h, "replicas"), 0);
	assert_string_equal(str(r, "action"), "replace");
	assert_string_equal(str(r, "slot"), "b");
	assert_non_null(strstr(str(r, "why"), "image"));
	assert_false(json_is_true(json_object_get(
		json_array_get(json_object_get(doc, "load_balancers"), 0),
		"reload")));
	json_decref(doc);
	json_decref(in);
	ml_buf_release(&got);
	free(ip);
	free(dir);
}

/* The batches are the rollout engine's: ml_plan_batch_size is what it
 * calls (orchestrator/apply/rollout.c). */
static void test_fleet__batch_sizes(void **state)
{
	struct ml_rollout_spec rs = { 0 };
	int canary[] = { 10, 50 };

	ML_UNUSED(state);
	rs.batch_count = 3;
	assert_int_equal(ml_plan_batch_size(&rs, 0, 10, 0), 3);
	rs.canary_percent = canary;
	rs.canary_n = 2;
	assert_int_equal(ml_plan_batch_size(&rs, 0, 10, 0), 1);
	assert_int_equal(ml_plan_batch_size(&rs, 1, 10, 1), 4);
	assert_int_equal(ml_plan_batch_size(&rs, 5, 10, 2), 3);
	rs.canary_n = 0;
	rs.batch_percent = 25;
	assert_int_equal(ml_plan_batch_size(&rs, 0, 10, 0), 3);
	assert_int_equal(ml_plan_batch_size(NULL, 0, 10, 0), 1);
	assert_int_equal(ml_plan_host_port(8000, 1, 'b'), 18003);
}

/* Every key that shapes a container (the spec hash's rows in
 * orchestrator/apply/rollout.c) is one the plan can name as changed; the
 * image is named from the containers' image ids. */
static void test_fleet__shape_names_every_shaping_key(void **state)
{
	enum ml_run_key_kind kind;
	const char *arg;
	size_t i, n = 0;

	ML_UNUSED(state);
	for (i = 0; (arg = ml_rollout_run_key_at(i, &kind)); i++) {
		json_t *d, *shape;

		if (kind == ML_RUN_NAMES || !strcmp(arg, "image"))
			continue;
		d = json_pack("{s:i,s:i}", arg, 1, "unrelated", 2);
		shape = ml_plan_shape(d);
		if (!json_object_get(shape, arg))
			print_error("'%s' shapes containers but the plan "
				    "cannot name it (fleet.c shape_keys)\n",
				    arg);
		assert_non_null(json_object_get(shape, arg));
		assert_null(json_object_get(shape, "unrelated"));
		json_decref(shape);
		json_decref(d);
		n++;
	}
	assert_true(n >= 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fleet__data_cases),
		cmocka_unit_test(test_fleet__json_has_the_host_fields),
		cmocka_unit_test(test_fleet__batch_sizes),
		cmocka_unit_test(test_fleet__shape_names_every_shaping_key),
	};

	return cmocka_run_group_tests_name("plan/fleet", tests, NULL, NULL);
}
