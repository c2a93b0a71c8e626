/*
 * Unit tests of orchestrator/config/inventory.c: what a valid inventory
 * becomes, which addresses and names are accepted, and that every problem
 * is reported with nothing returned. Messages are covered one by one by
 * the data-driven cases in tests/data/config/.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

#include <setjmp.h>
#include <cmocka.h>

static struct ml_inventory *parse_ok(const char *text)
{
	struct ml_diags d = {0};
	struct ml_inventory *inv = NULL;
	int rc = ml_inventory_parse(&inv, "inventory.yaml", text, strlen(text),
				    &d);

	if (rc != 0) {
		ml_diags_print(&d, stderr);
		fail_msg("inventory refused");
	}
	assert_non_null(inv);
	ml_diags_release(&d);
	return inv;
}

/* The first message of an inventory that must fail, and how many. */
static char *first_error(const char *text, size_t *n)
{
	struct ml_diags d = {0};
	struct ml_inventory *inv = (struct ml_inventory *)1;
	char *msg;

	assert_int_equal(ml_inventory_parse(&inv, "inventory.yaml", text,
					    strlen(text), &d),
			 ML_EINVALID);
	assert_null(inv);
	assert_true(d.n > 0);
	*n = d.n;
	msg = ml_xstrdup(d.v[0].msg);
	ml_diags_release(&d);
	return msg;
}

static void test_inventory__parse(void **state)
{
	static const char text[] =
		"ssh: {user: deploy, port: 2200, identity_file: ~/.ssh/k,\n"
		"      jump: bastion}\n"
		"vars: {region: eu, n: 3}\n"
		"hosts:\n"
		"  bastion: {address: 192.0.2.1}\n"
		"  web1:\n"
		"    address: 10.0.0.1\n"
		"    ssh: {user: root, port: 22}\n"
		"    labels: {gpu: true, zone: a, k8s.io/role: x}\n"
		"    vars: {log: debug}\n"
		"  web2:\n"
		"groups:\n"
		"  web:\n"
		"    hosts: [web1, web2]\n"
		"    vars: {workers: 4}\n"
		"    ssh: {user: app}\n"
		"  prod:\n"
		"    children: web\n"
		"  none:\n";
	struct ml_inventory *inv = parse_ok(text);

	(void)state;
	assert_string_equal(inv->file, "inventory.yaml");
	assert_string_equal(inv->ssh.user, "deploy");
	assert_int_equal(inv->ssh.port, 2200);
	assert_string_equal(inv->ssh.identity_file, "~/.ssh/k");
	assert_string_equal(inv->ssh.jump, "bastion");
	assert_int_equal(inv->ssh.jump_pos.line, 2);
	assert_int_equal(inv->ssh.jump_pos.col, 13);
	assert_int_equal(inv->vars.n, 2);
	assert_string_equal(inv->vars.v[1].value, "3");
	assert_int_equal(inv->nhosts, 3);
	assert_string_equal(inv->hosts[0].name, "bastion");
	assert_string_equal(inv->hosts[0].address, "192.0.2.1");
	assert_string_equal(inv->hosts[1].name, "web1");
	assert_int_equal(inv->hosts[1].line, 6);
	assert_int_equal(inv->hosts[1].col, 3);
	assert_string_equal(inv->hosts[1].ssh.user, "root");
	assert_int_equal(inv->hosts[1].labels.n, 3);
	assert_string_equal(inv->hosts[1].labels.v[0].value, "true");
	assert_string_equal(inv->hosts[1].labels.v[2].key, "k8s.io/role");
	assert_string_equal(inv->hosts[1].vars.v[0].value, "debug");
	/* no address: the name is the address */
	assert_string_equal(inv->hosts[2].address, "web2");
	assert_null(inv->hosts[2].ssh.user);
	assert_int_equal(inv->hosts[2].ssh.port, 0);
	assert_int_equal(inv->ngroups, 3);
	assert_string_equal(inv->groups[0].name, "web");
	assert_int_equal(inv->groups[0].hosts.n, 2);
	assert_string_equal(inv->groups[0].ssh.user, "app");
	assert_string_equal(inv->groups[0].vars.v[0].value, "4");
	assert_int_equal(inv->groups[1].children.n, 1);
	assert_string_equal(inv->groups[1].children.v[0], "web");
	assert_int_equal(inv->groups[2].hosts.n, 0);
	ml_inventory_free(inv);
	ml_inventory_free(NULL);
}

static void test_inventory__addresses(void **state)
{
	static const struct {
		const char *addr;
		bool ok;
	} cases[] = {
		{"10.0.0.1", true},
		{"255.255.255.255", true},
		{"\"2001:db8::1\"", true},
		{"\"::1\"", true},
		{"\"fe80::1%eth0\"", true},
		{"web1", true},
		{"web-1.example.com", true},
		{"web-1.example.com.", true},
		{"under_score.internal", true},
		{"xn--bcher-kva.example", true},
		{"\"-oProxyCommand=x\"", false},
		{"\"-p\"", false},
		{"\"a b\"", false},
		{"\"a\\tb\"", false},
		{"\"a\\nb\"", false},
		{"\"a\\u0085b\"", false},
		{"256.1.1.1", false},
		{"1.2.3", false},
		{"\"1::2::3\"", false},
		{"\"fe80::1%\"", false},
		{"a..b", false},
		{"-a.b", false},
		{"a-.b", false},
		{"a.-b", false},
		{"\"user@host\"", false},
		{"\"host:22\"", false},
		{"\"[::1]\"", false},
		{"\"\"", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		struct ml_diags d = {0};
		struct ml_inventory *inv = NULL;
		char *text = ml_xasprintf("hosts:\n  h1:\n    address: %s\n",
					  cases[i].addr);
		int rc = ml_inventory_parse(&inv, "inventory.yaml", text,
					    strlen(text), &d);

		if (cases[i].ok && rc != 0) {
			ml_diags_print(&d, stderr);
			fail_msg("address %s refused", cases[i].addr);
		}
		if (!cases[i].ok && rc == 0)
			fail_msg("address %s accepted", cases[i].addr);
		if (!cases[i].ok && !strstr(d.v[0].msg, "hosts.h1.address"))
			fail_msg("address %s: %s", cases[i].addr, d.v[0].msg);
		ml_inventory_free(inv);
		ml_diags_release(&d);
		free(text);
	}
}

static void test_inventory__names(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{"hosts: {\"-oProxyCommand=x\": }",
		 "invalid host name '-oProxyCommand=x'"},
		{"hosts: {\" web\": }", "invalid host name ' web'"},
		{"hosts: {all: }", "'all' is reserved"},
		{"hosts: {a: }\ngroups: {all: }", "'all' is reserved"},
		{"hosts: {a: }\ngroups: {\"-g\": }", "invalid group name '-g'"},
		{"hosts: {a: }\ngroups: {a: }",
		 "'a' is both a host and a group"},
		{"hosts: {a: }\ngroups: {g: {hosts: [b]}}",
		 "group 'g' lists unknown host 'b'"},
		{"hosts: {a: }\ngroups: {g: {hosts: [a, a]}}",
		 "group 'g' lists host 'a' twice"},
		{"hosts: {a: }\ngroups: {g: {children: [h]}}",
		 "group 'g' lists unknown child group 'h'"},
		{"hosts: {a: {ssh: {jump: a}}}",
		 "host 'a' cannot be its own jump host"},
		{"hosts: {a: }\ngroups: {g: {ssh: {jump: b}}}",
		 "jump host 'b' is not a host of the inventory"},
		{"hosts: {a: {ssh: {user: \"x y\"}}}",
		 "'hosts.a.ssh.user' must be a user name"},
		{"hosts: {a: {labels: {gpu: }}}",
		 "'hosts.a.labels.gpu' has no value"},
		{"hosts: {a: {adress: x}}",
		 "unknown key 'adress' (did you mean 'address'?)"},
		{"groups: {}", "missing required key 'hosts'"},
		{"hosts: []", "'hosts' must be a mapping, got a sequence"},
		{"", "the inventory is empty"},
	};
	size_t i, n;

	(void)state;
	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		char *msg = first_error(cases[i].text, &n);

		if (!strstr(msg, cases[i].msg))
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].text,
				 msg, cases[i].msg);
		free(msg);
	}
}

/* A fleet-wide jump through a host of the fleet is fine: the bastion
 * inherits it and resolve drops the self-jump. */
static void test_inventory__inherited_self_jump(void **state)
{
	struct ml_inventory *inv = parse_ok("ssh: {jump: b}\n"
					    "hosts: {b: , w: }\n");

	(void)state;
	assert_null(inv->hosts[0].ssh.jump);
	ml_inventory_free(inv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inventory__parse),
		cmocka_unit_test(test_inventory__addresses),
		cmocka_unit_test(test_inventory__names),
		cmocka_unit_test(test_inventory__inherited_self_jump),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
