/*
 * Unit tests of agent/firewall.c's address logic: which address a slot is
 * bound to, and when the agent must refuse a firewalled slot (reached over
 * IPv6, where neither the binding nor iptables applies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "agent/firewall.h"

#include <stdlib.h>

static void test_firewall__fleet_address(void **state)
{
	char buf[64];

	ML_UNUSED(state);
	setenv("SSH_CONNECTION", "10.77.13.1 51000 10.77.13.11 22", 1);
	ml_agent_fleet_address(buf, sizeof(buf));
	assert_string_equal(buf, "10.77.13.11");
	assert_false(ml_agent_reached_over_ipv6());
	assert_string_equal(ml_agent_slot_host(), "10.77.13.11");

	/* loopback, or no SSH at all: unknown, every IPv4 address */
	setenv("SSH_CONNECTION", "127.0.0.1 51000 127.0.0.1 22", 1);
	ml_agent_fleet_address(buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
	assert_string_equal(ml_agent_slot_host(), "127.0.0.1");
	unsetenv("SSH_CONNECTION");
	ml_agent_fleet_address(buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
	assert_false(ml_agent_reached_over_ipv6());

	/* garbage is not an address */
	setenv("SSH_CONNECTION", "x", 1);
	ml_agent_fleet_address(buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
	assert_false(ml_agent_reached_over_ipv6());
}

static void test_firewall__ipv6_is_refused(void **state)
{
	char buf[64];

	ML_UNUSED(state);
	setenv("SSH_CONNECTION", "fd00::1 51000 fd00::11 22", 1);
	assert_true(ml_agent_reached_over_ipv6());
	/* the binding would have been every IPv4 address */
	ml_agent_fleet_address(buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
	setenv("SSH_CONNECTION", "::ffff:10.0.0.1 51000 ::ffff:10.0.0.2 22",
	       1);
	assert_true(ml_agent_reached_over_ipv6());
	unsetenv("SSH_CONNECTION");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_firewall__fleet_address),
		cmocka_unit_test(test_firewall__ipv6_is_refused),
	};

	return cmocka_run_group_tests_name("unit/agent/firewall", tests, NULL,
					   NULL);
}
