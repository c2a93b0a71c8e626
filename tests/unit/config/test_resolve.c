/*
 * Unit tests of orchestrator/config/resolve.c: expansion of targets and
 * load-balancer hosts, merge order of settings, jump hosts, ownership on
 * failure, and the JSON form of the desired state.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

/* Parse and resolve; NULL (with *diags filled) when anything fails. */
static struct ml_config *resolve(const char *pbtext, const char *invtext,
				 struct ml_diags *d)
{
	struct ml_playbook *pb = NULL;
	struct ml_inventory *inv = NULL;
	struct ml_config *cfg = NULL;

	if (ml_playbook_parse(&pb, "mlctl.yaml", pbtext, strlen(pbtext), d) ||
	    ml_inventory_parse(&inv, "inventory.yaml", invtext, strlen(invtext),
			       d)) {
		ml_playbook_free(pb);
		return NULL;
	}
	if (ml_config_resolve(&cfg, pb, inv, d) < 0)
		assert_null(cfg);
	return cfg;
}

static struct ml_config *resolve_ok(const char *pbtext, const char *invtext)
{
	struct ml_diags d = {0};
	struct ml_config *cfg = resolve(pbtext, invtext, &d);

	if (!cfg) {
		ml_diags_print(&d, stderr);
		fail_msg("not resolved");
	}
	assert_int_equal(d.n, 0);
	ml_diags_release(&d);
	return cfg;
}

static const char *var(const struct ml_kvlist *l, const char *key)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].key, key))
			return l->v[i].value;
	return NULL;
}

static const char fleet[] =
	"ssh: {user: deploy, identity_file: /k}\n"
	"vars: {a: inv, b: inv, c: inv, d: inv}\n"
	"hosts:\n"
	"  h1: {vars: {d: host}}\n"
	"  h2: {address: 10.0.0.2, ssh: {port: 2222}}\n"
	"  h3:\n"
	"  h4:\n"
	"  lb1:\n"
	"groups:\n"
	"  inner: {hosts: [h2, h1], vars: {c: inner, b: inner},\n"
	"          ssh: {user: app}}\n"
	"  middle: {hosts: [h3], children: [inner], vars: {b: middle}}\n"
	"  outer: {children: [middle], vars: {a: outer, b: outer, c: outer}}\n"
	"  side: {hosts: [h1], vars: {c: side}}\n"
	"  lbs: {hosts: [lb1, h3]}\n";

/* Targets expand in order, duplicates keep their first place, app hosts
 * come first and hosts that only balance after them. */
static void test_resolve__expansion_order(void **state)
{
	static const char pb[] = "app: a\nimage: a:1\nport: 80\n"
				 "targets: [h4, outer, h2]\n"
				 "load_balancer: {hosts: [lbs, h4]}\n";
	struct ml_config *cfg = resolve_ok(pb, fleet);
	static const char *const want[] = {"h4", "h3", "h2", "h1", "lb1"};
	size_t i;

	(void)state;
	assert_int_equal(cfg->ntargets, ML_ARRAY_SIZE(want));
	for (i = 0; i < cfg->ntargets; i++)
		assert_string_equal(cfg->targets[i].name, want[i]);
	/* h4 and h3 are both app and lb hosts */
	assert_true(cfg->targets[0].is_app && cfg->targets[0].is_lb);
	assert_true(cfg->targets[1].is_app && cfg->targets[1].is_lb);
	assert_true(cfg->targets[2].is_app && !cfg->targets[2].is_lb);
	assert_true(!cfg->targets[4].is_app && cfg->targets[4].is_lb);
	assert_int_equal(cfg->njumps, 0);
	ml_config_free(cfg);
}

/* inventory < groups, outermost first then file order < host */
static void test_resolve__merge_order(void **state)
{
	static const char pb[] = "app: a\nimage: a:1\nport: 80\n"
				 "targets: all\n";
	struct ml_config *cfg = resolve_ok(pb, fleet);
	const struct ml_target *h1 = NULL, *h2 = NULL, *h4 = NULL;
	size_t i;

	(void)state;
	assert_int_equal(cfg->ntargets, 5);
	for (i = 0; i < cfg->ntargets; i++) {
		if (!strcmp(cfg->targets[i].name, "h1"))
			h1 = &cfg->targets[i];
		if (!strcmp(cfg->targets[i].name, "h2"))
			h2 = &cfg->targets[i];
		if (!strcmp(cfg->targets[i].name, "h4"))
			h4 = &cfg->targets[i];
		assert_true(cfg->targets[i].is_app);
		assert_false(cfg->targets[i].is_lb);
	}
	assert_string_equal(cfg->targets[0].name, "h1"); /* file order */
	assert_non_null(h1);
	/* depths: outer 0, side 0, middle 1, inner 2 */
	assert_int_equal(h1->groups.n, 4);
	assert_string_equal(h1->groups.v[0], "outer");
	assert_string_equal(h1->groups.v[1], "side");
	assert_string_equal(h1->groups.v[2], "middle");
	assert_string_equal(h1->groups.v[3], "inner");
	assert_string_equal(var(&h1->vars, "a"), "outer");
	assert_string_equal(var(&h1->vars, "b"), "inner");
	/* side is as outer as outer, but inner is deeper than side */
	assert_string_equal(var(&h1->vars, "c"), "inner");
	assert_string_equal(var(&h1->vars, "d"), "host");
	/* vars keep the place of their first definition */
	assert_string_equal(h1->vars.v[0].key, "a");
	assert_string_equal(h1->vars.v[3].key, "d");
	assert_string_equal(h1->user, "app");
	assert_string_equal(h1->address, "h1");
	assert_int_equal(h1->port, 22);
	assert_string_equal(h1->identity_file, "/k");
	assert_string_equal(h2->address, "10.0.0.2");
	assert_int_equal(h2->port, 2222);
	assert_string_equal(h4->user, "deploy");
	assert_int_equal(h4->groups.n, 0);
	assert_string_equal(var(&h4->vars, "c"), "inv");
	ml_config_free(cfg);
}

static void test_resolve__defaults(void **state)
{
	struct ml_config *cfg = resolve_ok("app: a\nimage: a:1\nport: 80\n"
					   "targets: x\n",
					   "hosts: {x: }\n");

	(void)state;
	assert_int_equal(cfg->ntargets, 1);
	assert_string_equal(cfg->targets[0].user, "root");
	assert_int_equal(cfg->targets[0].port, 22);
	assert_string_equal(cfg->targets[0].address, "x");
	assert_null(cfg->targets[0].identity_file);
	assert_null(cfg->targets[0].jump);
	assert_null(cfg->commit);
	assert_non_null(cfg->playbook);
	assert_non_null(cfg->inventory);
	ml_config_free(cfg);
}

/* A fleet-wide jump applies to every host but the bastion itself, which
 * inherits it and connects directly; jump hosts are resolved too. */
static void test_resolve__jumps(void **state)
{
	static const char inv[] = "ssh: {jump: bastion, user: ops}\n"
				  "hosts:\n"
				  "  bastion: {address: 192.0.2.1,\n"
				  "            ssh: {port: 2200}}\n"
				  "  w1:\n"
				  "  w2: {ssh: {jump: edge}}\n"
				  "  edge: {ssh: {jump: bastion}}\n";
	struct ml_config *cfg = resolve_ok("app: a\nimage: a:1\nport: 80\n"
					   "targets: [w1, w2, bastion]\n",
					   inv);

	(void)state;
	assert_int_equal(cfg->ntargets, 3);
	assert_string_equal(cfg->targets[0].jump, "bastion");
	assert_string_equal(cfg->targets[1].jump, "edge");
	assert_string_equal(cfg->targets[2].name, "bastion");
	assert_null(cfg->targets[2].jump);
	assert_int_equal(cfg->njumps, 2);
	assert_string_equal(cfg->jumps[0].name, "bastion");
	assert_string_equal(cfg->jumps[0].address, "192.0.2.1");
	assert_string_equal(cfg->jumps[0].user, "ops");
	assert_int_equal(cfg->jumps[0].port, 2200);
	assert_null(cfg->jumps[0].jump);
	assert_false(cfg->jumps[0].is_app || cfg->jumps[0].is_lb);
	assert_string_equal(cfg->jumps[1].name, "edge");
	assert_string_equal(cfg->jumps[1].jump, "bastion");
	ml_config_free(cfg);
}

static void test_resolve__jump_cycle(void **state)
{
	static const char inv[] = "ssh: {jump: bastion}\n"
				  "hosts:\n"
				  "  bastion: {ssh: {jump: outer}}\n"
				  "  outer:\n"
				  "  w1:\n";
	struct ml_diags d = {0};

	(void)state;
	/* outer inherits the fleet-wide jump through bastion, and bastion
	 * goes through outer */
	assert_null(resolve("app: a\nimage: a:1\nport: 80\ntargets: w1\n", inv,
			    &d));
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].msg, "jump cycle: bastion -> outer -> "
					"bastion");
	assert_int_equal(d.v[0].line, 1);
	assert_int_equal(d.v[0].col, 13);
	ml_diags_release(&d);
}

static void test_resolve__failure_frees_inputs(void **state)
{
	struct ml_diags d = {0};
	struct ml_playbook *pb = NULL;
	struct ml_inventory *inv = NULL;
	struct ml_config *cfg = (struct ml_config *)1;
	static const char p[] = "app: a\nimage: a:1\nport: 80\n"
				"targets: [nope]\n";
	static const char i[] = "hosts: {x: }\ngroups: {g: }\n";

	(void)state;
	assert_int_equal(ml_playbook_parse(&pb, "p.yaml", p, strlen(p), &d), 0);
	assert_int_equal(ml_inventory_parse(&inv, "i.yaml", i, strlen(i), &d),
			 0);
	/* pb and inv are freed by resolve: ASan reports a leak otherwise */
	assert_int_equal(ml_config_resolve(&cfg, pb, inv, &d), ML_EINVALID);
	assert_null(cfg);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].file, "p.yaml");
	assert_string_equal(d.v[0].msg, "target 'nope' is not a host or "
					"group of 'i.yaml'");
	ml_diags_release(&d);

	/* an empty group selects nothing */
	assert_null(
		resolve("app: a\nimage: a:1\nport: 80\ntargets: g\n", i, &d));
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].msg, "'targets' selects no hosts (its "
					"groups are empty)");
	ml_diags_release(&d);

	/* one input missing: the other is freed */
	assert_int_equal(ml_inventory_parse(&inv, "i.yaml", i, strlen(i), &d),
			 0);
	assert_int_equal(ml_config_resolve(&cfg, NULL, inv, &d), ML_EFAIL);
	assert_null(cfg);
	ml_config_free(NULL);
}

static void test_resolve__json(void **state)
{
	static const char pb[] =
		"app: api\n"
		"image: api:1\n"
		"port: 8000\n"
		"health: {start_period: 90s}\n"
		"env: {B: 2, A: x}\n"
		"secrets: [TOKEN]\n"
		"resources: {cpus: 0.5, memory: 1g}\n"
		"targets: web\n"
		"rollout: {batch: 50%, canary: [\"10%\"]}\n"
		"load_balancer: {hosts: lb1, tls: {cert: C_PEM, key: K_PEM}}\n";
	static const char inv[] =
		"hosts:\n"
		"  w1: {address: 10.0.0.1, labels: {gpu: true}}\n"
		"  lb1: {ssh: {user: ha}}\n"
		"groups:\n"
		"  web: {hosts: [w1], vars: {k: v}}\n";
	static const char want[] =
		"{\"app\":\"api\",\"commit\":\"abc\","
		"\"image\":{\"kind\":\"ref\",\"ref\":\"api:1\"},"
		"\"port\":8000,"
		"\"health\":{\"path\":\"/healthz\",\"interval\":\"2s\","
		"\"interval_ms\":2000,\"timeout\":\"1s\",\"timeout_ms\":1000,"
		"\"start_period\":\"1m30s\",\"start_period_ms\":90000,"
		"\"healthy_threshold\":1,\"unhealthy_threshold\":3},"
		"\"replicas\":1,"
		"\"env\":{\"B\":\"2\",\"A\":\"x\"},"
		"\"secrets\":[\"TOKEN\"],"
		"\"resources\":{\"cpus\":0.5,\"memory_bytes\":1073741824,"
		"\"gpus\":0},"
		"\"targets\":[\"web\"],"
		"\"rollout\":{\"batch\":\"50%\",\"failure_budget\":0,"
		"\"auto_rollback\":true,\"drain_timeout\":\"30s\","
		"\"drain_timeout_ms\":30000,\"standby\":false,"
		"\"canary\":[10]},"
		"\"load_balancer\":{\"hosts\":[\"lb1\"],\"listen\":80,"
		"\"balance\":\"roundrobin\",\"tls\":{\"cert\":\"C_PEM\","
		"\"key\":\"K_PEM\",\"redirect_http\":null}},"
		"\"prune\":{\"retain\":3,\"after_deploy\":true,"
		"\"disk_budget\":0},"
		"\"hosts\":["
		"{\"name\":\"w1\",\"address\":\"10.0.0.1\",\"user\":\"root\","
		"\"port\":22,\"identity_file\":null,\"jump\":null,"
		"\"groups\":[\"web\"],\"labels\":{\"gpu\":\"true\"},"
		"\"vars\":{\"k\":\"v\"},\"roles\":[\"app\"]},"
		"{\"name\":\"lb1\",\"address\":\"lb1\",\"user\":\"ha\","
		"\"port\":22,\"identity_file\":null,\"jump\":null,"
		"\"groups\":[],\"labels\":{},\"vars\":{},\"roles\":[\"lb\"]}"
		"],\"jump_hosts\":[]}";
	struct ml_config *cfg = resolve_ok(pb, inv);
	json_t *j;
	char *s;

	(void)state;
	cfg->commit = ml_xstrdup("abc");
	j = ml_config_to_json(cfg);
	s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, want);
	free(s);
	json_decref(j);
	ml_config_free(cfg);
}

/* Big inventories resolve in reasonable time: 3000 hosts in 300 groups
 * nested 300 deep. */
static void test_resolve__large(void **state)
{
	struct ml_buf inv = ML_BUF_INIT(0);
	struct ml_config *cfg;
	size_t i;

	(void)state;
	ml_buf_addstr(&inv, "hosts:\n");
	for (i = 0; i < 3000; i++)
		ml_buf_addf(&inv, "  h%zu:\n", i);
	ml_buf_addstr(&inv, "groups:\n");
	for (i = 0; i < 300; i++) {
		size_t k;

		ml_buf_addf(&inv, "  g%zu:\n    hosts: [", i);
		for (k = 0; k < 10; k++)
			ml_buf_addf(&inv, "%sh%zu", k ? ", " : "", i * 10 + k);
		ml_buf_addstr(&inv, "]\n");
		if (i + 1 < 300)
			ml_buf_addf(&inv, "    children: [g%zu]\n", i + 1);
	}
	cfg = resolve_ok("app: a\nimage: a:1\nport: 80\ntargets: g0\n",
			 inv.data);
	assert_int_equal(cfg->ntargets, 3000);
	assert_string_equal(cfg->targets[2999].name, "h2999");
	assert_int_equal(cfg->targets[2999].groups.n, 300);
	assert_string_equal(cfg->targets[2999].groups.v[0], "g0");
	assert_string_equal(cfg->targets[2999].groups.v[299], "g299");
	ml_config_free(cfg);
	ml_buf_release(&inv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve__expansion_order),
		cmocka_unit_test(test_resolve__merge_order),
		cmocka_unit_test(test_resolve__defaults),
		cmocka_unit_test(test_resolve__jumps),
		cmocka_unit_test(test_resolve__jump_cycle),
		cmocka_unit_test(test_resolve__failure_frees_inputs),
		cmocka_unit_test(test_resolve__json),
		cmocka_unit_test(test_resolve__large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
