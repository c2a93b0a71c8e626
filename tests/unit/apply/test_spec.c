/*
 * The spec hash (orchestrator/apply/rollout.c: ml_rollout_spec, folded by
 * orchestrator/secrets.c: ml_secrets_spec) against what containers are
 * created with (ml_rollout_run_args): every argument of container_run is
 * listed once, as shaping the container or as naming it; every shaping
 * key changes the hash when its playbook value changes; and the hash of a
 * fixed playbook stays what it was, so that upgrading mlctl never rolls
 * containers that did not change.
 */
#include "common/ml.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/config/config.h"
#include "orchestrator/secrets.h"

#include <setjmp.h>
#include <cmocka.h>

#define IMAGE "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static const char inventory[] = "hosts:\n  h1:\n  lb1: {address: 10.0.0.9}\n";

static const char base[] =
	"app: a\nimage: a:1\nport: 8000\n"
	"health: {path: /healthz}\n"
	"env: {MODE: fast}\n"
	"secrets: [TOKEN]\n"
	"resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
	"targets: [h1]\n"
	"load_balancer: {hosts: [lb1]}\n";

static const char logs[] =
	"app: a\nimage: a:1\nport: 8000\n"
	"targets: [h1]\n"
	"logs: {max_size: 20Mi, max_files: 5}\n"
	"security: {cap_add: [NET_BIND_SERVICE]}\n";

static struct ml_config *resolve(const char *pbtext)
{
	struct ml_diags d = { 0 };
	struct ml_playbook *pb = NULL;
	struct ml_inventory *inv = NULL;
	struct ml_config *cfg = NULL;

	if (ml_playbook_parse(&pb, "mlctl.yaml", pbtext, strlen(pbtext), &d) ||
	    ml_inventory_parse(&inv, "inventory.yaml", inventory,
			       strlen(inventory), &d) ||
	    ml_config_resolve(&cfg, pb, inv, &d) < 0) {
		ml_diags_print(&d, stderr);
		fail_msg("playbook not resolved:\n%s", pbtext);
	}
	ml_diags_release(&d);
	return cfg;
}

/* The whole spec as deploy computes it (no secret values: no key file). */
static void spec_of(char out[65], const char *pbtext, const char *image)
{
	struct ml_config *cfg = resolve(pbtext);

	ml_rollout_spec(out, cfg, image);
	assert_int_equal(ml_secrets_spec(out, cfg, NULL, "/nonexistent"), 0);
	ml_config_free(cfg);
}

/* ml_rollout_run_args of a playbook, as the rollout sends it. */
static json_t *run_args(const char *pbtext, const char *image,
			struct ml_config **cfg_out)
{
	struct ml_rollout ro = { 0 };
	json_t *secrets = json_object();
	json_t *args;
	size_t i;

	ro.cfg = resolve(pbtext);
	/* a value for every name, as ml_secrets_load gives them */
	for (i = 0; i < ro.cfg->playbook->secrets.n; i++)
		json_object_set_new(secrets, ro.cfg->playbook->secrets.v[i],
				    json_string("value"));
	ro.image_id = image;
	ro.spec = "0123";
	ro.revision = 7;
	ro.secrets = secrets;
	args = ml_rollout_run_args(&ro, 0, 'a');
	json_decref(secrets);
	*cfg_out = (struct ml_config *)ro.cfg;
	return args;
}

/* Every argument container_run gets is listed, and every listed one is
 * sent: a new argument cannot bypass the spec hash unnoticed. */
static void test_spec__every_run_argument_is_listed(void **state)
{
	struct ml_config *cfg;
	json_t *args = run_args(base, IMAGE, &cfg), *v;
	enum ml_run_key_kind kind;
	const char *key;
	size_t i;

	ML_UNUSED(state);
	json_object_foreach(args, key, v) {
		if (ml_rollout_run_key(&kind, key) < 0)
			fail_msg("container_run argument '%s' is not listed in "
				 "orchestrator/apply/rollout.c:run_keys: say "
				 "whether it shapes the container",
				 key);
	}
	for (i = 0; (key = ml_rollout_run_key_at(i, &kind)); i++)
		if (!json_object_get(args, key))
			fail_msg("listed argument '%s' is not sent", key);
	assert_true(i >= 10);
	json_decref(args);
	ml_config_free(cfg);
}

/*
 * One change of the playbook per container-shaping key: each changes the
 * container's argument and the spec hash. A shaping key listed without a
 * case here fails the test, so a new one comes with its proof.
 */
static const struct {
	const char *arg;
	const char *playbook; /* NULL: base with another image */
} changes[] = {
	{ "image", NULL },
	{ "port", "app: a\nimage: a:1\nport: 8001\nhealth: {path: /healthz}\n"
		  "env: {MODE: fast}\nsecrets: [TOKEN]\n"
		  "resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
		  "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
	{ "env", "app: a\nimage: a:1\nport: 8000\nhealth: {path: /healthz}\n"
		 "env: {MODE: slow}\nsecrets: [TOKEN]\n"
		 "resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
		 "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
	{ "secrets", "app: a\nimage: a:1\nport: 8000\nhealth: {path: /healthz}\n"
		     "env: {MODE: fast}\nsecrets: [TOKEN, OTHER]\n"
		     "resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
		     "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
	{ "resources", "app: a\nimage: a:1\nport: 8000\n"
		       "health: {path: /healthz}\n"
		       "env: {MODE: fast}\nsecrets: [TOKEN]\n"
		       "resources: {cpus: 1.5, memory: 1Gi, gpus: 0}\n"
		       "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
	{ "security", "app: a\nimage: a:1\nport: 8000\n"
		      "health: {path: /healthz}\n"
		      "env: {MODE: fast}\nsecrets: [TOKEN]\n"
		      "resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
		      "security: {cap_add: [NET_BIND_SERVICE]}\n"
		      "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
	{ "logs", "app: a\nimage: a:1\nport: 8000\nhealth: {path: /healthz}\n"
		  "env: {MODE: fast}\nsecrets: [TOKEN]\n"
		  "resources: {cpus: 1.5, memory: 512Mi, gpus: 0}\n"
		  "logs: {max_files: 4}\n"
		  "targets: [h1]\nload_balancer: {hosts: [lb1]}\n" },
};

#define OTHER_IMAGE "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void test_spec__every_shaping_key_changes_the_hash(void **state)
{
	enum ml_run_key_kind kind;
	const char *key;
	size_t i, k;
	char before[65], after[65];

	ML_UNUSED(state);
	spec_of(before, base, IMAGE);
	for (i = 0; (key = ml_rollout_run_key_at(i, &kind)); i++) {
		struct ml_config *c1, *c2;
		const char *pb;
		json_t *a1, *a2;

		if (kind == ML_RUN_NAMES)
			continue;
		for (k = 0; k < ML_ARRAY_SIZE(changes); k++)
			if (!strcmp(changes[k].arg, key))
				break;
		if (k == ML_ARRAY_SIZE(changes))
			fail_msg("container-shaping key '%s' has no case in "
				 "changes[]: add a playbook that changes it",
				 key);
		pb = changes[k].playbook ? changes[k].playbook : base;
		a1 = run_args(base, IMAGE, &c1);
		a2 = run_args(pb, changes[k].playbook ? IMAGE : OTHER_IMAGE,
			      &c2);
		/* the case does change what the container gets */
		if (json_equal(json_object_get(a1, key),
			       json_object_get(a2, key)))
			fail_msg("the case for '%s' does not change it", key);
		spec_of(after, pb, changes[k].playbook ? IMAGE : OTHER_IMAGE);
		if (!strcmp(before, after))
			fail_msg("a change of '%s' leaves the spec hash as it "
				 "was: containers would never restart for it "
				 "(add it to the spec in "
				 "orchestrator/apply/rollout.c:run_keys)",
				 key);
		json_decref(a1);
		json_decref(a2);
		ml_config_free(c1);
		ml_config_free(c2);
	}
}

/* What names a container is no part of its shape. */
static void test_spec__names_do_not_change_the_hash(void **state)
{
	struct ml_config *cfg = resolve(base);
	char a[65], b[65];

	ML_UNUSED(state);
	ml_rollout_spec(a, cfg, IMAGE);
	free(cfg->commit);
	cfg->commit = ml_xstrdup("0123456789abcdef0123456789abcdef01234567");
	ml_rollout_spec(b, cfg, IMAGE);
	assert_string_equal(a, b);
	ml_config_free(cfg);
}

/* The hashes of deployments made before this table existed: a change here
 * rolls every container of every fleet on upgrade. */
static void test_spec__same_hash_as_before(void **state)
{
	struct ml_config *cfg = resolve(base);
	char spec[65];

	ML_UNUSED(state);
	ml_rollout_spec(spec, cfg, IMAGE);
	assert_string_equal(spec, "791eaff1ba147c90bad9a24320ec5124d0696acc"
				  "cbcc51fc1cddd20ff653a83b");
	ml_config_free(cfg);
	spec_of(spec, base, IMAGE);
	assert_string_equal(spec, "deed4ba27c370c0dfc009fae3c8a354f263e25ac"
				  "5df467e109b3971cfab0528f");
	spec_of(spec, logs, IMAGE);
	assert_string_equal(spec, "04193ce0eca286fe8b2594ebf9d8cdfc2f9c3c31"
				  "3deab8ad6873f005caf6350a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec__every_run_argument_is_listed),
		cmocka_unit_test(test_spec__every_shaping_key_changes_the_hash),
		cmocka_unit_test(test_spec__names_do_not_change_the_hash),
		cmocka_unit_test(test_spec__same_hash_as_before),
	};

	return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
