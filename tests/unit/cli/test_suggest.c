/*
 * Unit tests of orchestrator/cli.c: finding a verb (exact, unique prefix,
 * never a prefix of a destructive verb) and the "did you mean" for verbs
 * and options, on a table of our own; then the same through the built
 * mlctl ($MLCTL_BIN) with its real table, checking that a mistyped
 * destructive verb is only suggested, never run.
 */
#include "common/ml.h"
#include "orchestrator/cli.h"
#include "tests/support/proc.h"

#include <setjmp.h>
#include <cmocka.h>

static int run_nothing(struct ml_ctx *ctx)
{
	ML_UNUSED(ctx);
	return 0;
}

static const struct ml_option opt_json = { OPT_JSON, "json", 0, NULL, "" };
static const struct ml_option opt_commit = { OPT_COMMIT, "commit", 'c', "REV",
					     "" };
static const struct ml_option opt_limit = { OPT_LIMIT, "limit", 'n', "N",
					    "" };
static const struct ml_option *const status_opts[] = { &opt_json, NULL };
static const struct ml_option *const plan_opts[] = { &opt_commit, &opt_json,
						     NULL };
static const struct ml_option *const history_opts[] = { &opt_limit, NULL };

static const struct ml_cmd c_status = { "status", "", "", status_opts, 0,
					run_nothing };
static const struct ml_cmd c_show = { "show", "", "", NULL, 0, run_nothing };
static const struct ml_cmd c_plan = { "plan", "", "", plan_opts, 0,
				      run_nothing };
static const struct ml_cmd c_history = { "history", "", "", history_opts, 0,
					 run_nothing };
static const struct ml_cmd c_deploy = { "deploy", "", "", NULL,
					ML_CMD_DESTRUCTIVE, run_nothing };
static const struct ml_cmd c_deliver = { "deliver", "", "", NULL, 0,
					 run_nothing };
static const struct ml_cmd c_rollback = { "rollback", "", "", NULL,
					  ML_CMD_DESTRUCTIVE, run_nothing };
static const struct ml_cmd *const cmds[] = { &c_status, &c_show, &c_plan,
					     &c_history, &c_deploy,
					     &c_deliver, &c_rollback };
static const struct ml_global_opt globals[] = {
	{ "dir", 1000, 'C', "DIR", "" },
	{ "verbose", 1001, 'v', NULL, "" },
};
static const struct ml_cli cli = { cmds, ML_ARRAY_SIZE(cmds), globals,
				   ML_ARRAY_SIZE(globals), "test" };

static void test_suggest__find_exact_and_prefix(void **state)
{
	ML_UNUSED(state);
	assert_ptr_equal(ml_cli_find(&cli, "status"), &c_status);
	assert_ptr_equal(ml_cli_find(&cli, "deploy"), &c_deploy);
	assert_ptr_equal(ml_cli_find(&cli, "hist"), &c_history);
	assert_ptr_equal(ml_cli_find(&cli, "stat"), &c_status);
	/* "s" could be show or status */
	assert_null(ml_cli_find(&cli, "s"));
	assert_null(ml_cli_find(&cli, ""));
	assert_null(ml_cli_find(&cli, "frobnicate"));
}

static void test_suggest__destructive_never_abbreviated(void **state)
{
	ML_UNUSED(state);
	/* rollback changes the fleet: its prefixes find nothing */
	assert_null(ml_cli_find(&cli, "rollb"));
	assert_null(ml_cli_find(&cli, "r"));
	/* "de" is deliver alone, as deploy does not count */
	assert_ptr_equal(ml_cli_find(&cli, "de"), &c_deliver);
	assert_null(ml_cli_find(&cli, "depl"));

	assert_int_equal(ml_cli_unknown_verb(&cli, "rollb"), ML_EUSAGE);
	assert_non_null(strstr(ml_err_msg(), "'rollback'"));
	assert_non_null(strstr(ml_err_msg(), "type it in full"));
}

static void test_suggest__verbs(void **state)
{
	ML_UNUSED(state);
	assert_string_equal(ml_cli_suggest_verb(&cli, "delpoy"), "deploy");
	assert_string_equal(ml_cli_suggest_verb(&cli, "stauts"), "status");
	assert_string_equal(ml_cli_suggest_verb(&cli, "histroy"), "history");
	assert_string_equal(ml_cli_suggest_verb(&cli, "palm"), "plan");
	assert_null(ml_cli_suggest_verb(&cli, "kubernetes"));

	assert_int_equal(ml_cli_unknown_verb(&cli, "delpoy"), ML_EUSAGE);
	assert_string_equal(ml_err_msg(), "'delpoy' is not a command; did "
					  "you mean 'deploy'? (see 'mlctl "
					  "--help')");
	assert_int_equal(ml_cli_unknown_verb(&cli, "s"), ML_EUSAGE);
	assert_string_equal(ml_err_msg(),
			    "'s' is ambiguous: it could be 'status', 'show'");
	assert_int_equal(ml_cli_unknown_verb(&cli, "kubernetes"), ML_EUSAGE);
	assert_string_equal(ml_err_msg(), "'kubernetes' is not a command; "
					  "see 'mlctl --help'");
}

static void test_suggest__options(void **state)
{
	ML_UNUSED(state);
	assert_string_equal(ml_cli_suggest_option(&cli, &c_status, "--jsn"),
			    "json");
	assert_string_equal(ml_cli_suggest_option(&cli, &c_plan,
						  "--comit=HEAD"),
			    "commit");
	/* globals count too */
	assert_string_equal(ml_cli_suggest_option(&cli, &c_status,
						  "--verbos"),
			    "verbose");
	assert_null(ml_cli_suggest_option(&cli, &c_status, "--zzzzzz"));

	assert_int_equal(ml_cli_unknown_option(&cli, &c_status, "--jsno"),
			 ML_EUSAGE);
	assert_string_equal(ml_err_msg(), "unknown option '--jsno' for "
					  "status; did you mean '--json'?");
	/* an option of another verb says which */
	ml_cli_unknown_option(&cli, &c_status, "--limit");
	assert_string_equal(ml_err_msg(), "'--limit' is not an option of "
					  "status (history takes it); see "
					  "'mlctl status --help'");
	ml_cli_unknown_option(&cli, NULL, "--json");
	assert_non_null(strstr(ml_err_msg(), "put it after the command"));
	/* known options used wrongly */
	ml_cli_unknown_option(&cli, &c_plan, "--commit");
	assert_string_equal(ml_err_msg(),
			    "option '--commit' needs an argument (REV)");
	ml_cli_unknown_option(&cli, &c_plan, "--json=1");
	assert_string_equal(ml_err_msg(), "option '--json' takes no argument");
	ml_cli_unknown_option(&cli, &c_plan, "-c");
	assert_string_equal(ml_err_msg(), "option '-c' needs an argument (REV)");
	ml_cli_unknown_option(&cli, &c_plan, "-Z");
	assert_string_equal(ml_err_msg(), "unknown option '-Z' for plan; see "
					  "'mlctl plan --help'");
}

/* The built binary, with the real table. */
static void test_suggest__mlctl_binary(void **state)
{
	struct ml_test_out o;
	char *dir = ml_test_tmpdir("suggest");

	ML_UNUSED(state);
	ml_test_mlctl(&o, dir, NULL, (const char *const[]){ "delpoy", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "did you mean 'deploy'?"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "status", "--jsn", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "did you mean '--json'?"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "plan", "--comit", "HEAD", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "did you mean '--commit'?"));
	ml_test_out_release(&o);

	/* destructive verbs: a prefix is refused before anything is read
	 * (the scratch dir has no playbook: running would fail with 3 or 4,
	 * not 2) */
	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "rollb", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "type it in full"));
	ml_test_out_release(&o);
	ml_test_mlctl(&o, dir, NULL, (const char *const[]){ "remov", NULL });
	assert_int_equal(o.status, 2);
	ml_test_out_release(&o);
	/* ...and a close typo of one is suggested, not run */
	ml_test_mlctl(&o, dir, NULL, (const char *const[]){ "rmeove", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "did you mean 'remove'?"));
	ml_test_out_release(&o);

	/* a unique prefix of a harmless verb runs it */
	ml_test_mlctl(&o, dir, NULL,
		      (const char *const[]){ "expl", "app", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "KEY:      app"));
	ml_test_out_release(&o);

	ml_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suggest__find_exact_and_prefix),
		cmocka_unit_test(test_suggest__destructive_never_abbreviated),
		cmocka_unit_test(test_suggest__verbs),
		cmocka_unit_test(test_suggest__options),
		cmocka_unit_test(test_suggest__mlctl_binary),
	};

	return cmocka_run_group_tests_name("cli/suggest", tests, NULL, NULL);
}
