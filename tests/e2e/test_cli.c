/*
 * End-to-end tests of the mlctl binary on real git repositories: validate,
 * plan and history as a user runs them. Each test makes its own scratch
 * repository and ledger and removes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/proc.h"

#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>

struct repo {
	char *dir;
	char *ledger_env;
};

static int repo_setup(void **state)
{
	struct repo *r = ml_xcalloc(1, sizeof(*r));
	char *pb = ml_test_read_src("playbooks/example.yaml");
	char *inv = ml_test_read_src("inventory/example.yaml");

	r->dir = ml_test_tmpdir("cli");
	r->ledger_env = ml_xasprintf("MLCTL_LEDGER=%s/.ledger/ledger.db",
				     r->dir);
	free(ml_test_git(r->dir, (const char *const[]){ "init", "-q", NULL }));
	ml_test_write(r->dir, "mlctl.yaml", pb);
	ml_test_write(r->dir, "inventory.yaml", inv);
	ml_test_write(r->dir, ".gitignore", ".ledger/\n");
	free(ml_test_commit(r->dir, "first"));
	free(pb);
	free(inv);
	*state = r;
	return 0;
}

static int repo_teardown(void **state)
{
	struct repo *r = *state;

	ml_test_rmtree(r->dir);
	free(r->dir);
	free(r->ledger_env);
	free(r);
	return 0;
}

static int mlctl(struct ml_test_out *o, struct repo *r,
		 const char *const *args)
{
	const char *env[] = { r->ledger_env, NULL };

	return ml_test_mlctl(o, r->dir, env, args);
}

static void test_cli__help_lists_every_command(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	assert_int_equal(ml_test_mlctl(&o, NULL, NULL,
				       (const char *const[]){ "--help", NULL }),
			 0);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "validate"));
	assert_non_null(strstr(o.out, "plan"));
	assert_non_null(strstr(o.out, "history"));
	ml_test_out_release(&o);

	assert_int_equal(ml_test_mlctl(&o, NULL, NULL,
				       (const char *const[]){ "plan", "--help",
							      NULL }),
			 0);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "--commit"));
	assert_non_null(strstr(o.out, "--json"));
	assert_non_null(strstr(o.out, "--offline"));
	assert_non_null(strstr(o.out, "--detailed-exitcode"));
	ml_test_out_release(&o);
}

static void test_cli__usage_errors_exit_2(void **state)
{
	struct ml_test_out o;

	ML_UNUSED(state);
	ml_test_mlctl(&o, NULL, NULL, (const char *const[]){ "frobnicate",
							     NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "'frobnicate' is not a command"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, NULL, NULL,
		      (const char *const[]){ "validate", "--bogus", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "--bogus"));
	ml_test_out_release(&o);

	ml_test_mlctl(&o, NULL, NULL, (const char *const[]){ NULL });
	assert_int_equal(o.status, 2);
	ml_test_out_release(&o);
}

/* The .yaml files of a folder of the source tree, as "folder/name.yaml". */
static size_t list_yaml(const char *folder, char **out, size_t max)
{
	char *dir = ml_xasprintf("%s/%s", ml_test_src(), folder);
	struct dirent **names = NULL;
	int n, i;
	size_t k = 0;

	n = scandir(dir, &names, NULL, alphasort);
	for (i = 0; i < n; i++) {
		size_t len = strlen(names[i]->d_name);

		if (len > 5 && !strcmp(names[i]->d_name + len - 5, ".yaml") &&
		    k < max)
			out[k++] = ml_xasprintf("%s/%s", folder,
						names[i]->d_name);
		free(names[i]);
	}
	free(names);
	free(dir);
	return k;
}

/* Every example playbook is valid with at least one example inventory, and
 * every example inventory with at least one playbook. */
static void test_cli__validate_passes_on_examples(void **state)
{
	struct repo *r = *state;
	char *pbs[16], *invs[16];
	bool inv_ok[16] = { false };
	size_t npb = list_yaml("playbooks", pbs, 16);
	size_t ninv = list_yaml("inventory", invs, 16);
	size_t i, j;

	assert_true(npb >= 2);
	assert_true(ninv >= 2);
	for (i = 0; i < npb; i++) {
		char *pb = ml_test_read_src(pbs[i]);
		bool ok = false;

		ml_test_write(r->dir, "mlctl.yaml", pb);
		for (j = 0; j < ninv; j++) {
			char *inv = ml_test_read_src(invs[j]);
			struct ml_test_out o;

			ml_test_write(r->dir, "inventory.yaml", inv);
			free(ml_test_commit(r->dir, pbs[i]));
			mlctl(&o, r, (const char *const[]){ "validate", NULL });
			if (o.status == 0) {
				assert_non_null(
					strstr(o.out, "are valid at commit"));
				ok = true;
				inv_ok[j] = true;
			}
			ml_test_out_release(&o);
			free(inv);
		}
		if (!ok)
			print_error("%s is valid with no example inventory\n",
				    pbs[i]);
		assert_true(ok);
		free(pb);
	}
	for (j = 0; j < ninv; j++) {
		if (!inv_ok[j])
			print_error("%s is valid with no example playbook\n",
				    invs[j]);
		assert_true(inv_ok[j]);
	}
	for (i = 0; i < npb; i++)
		free(pbs[i]);
	for (j = 0; j < ninv; j++)
		free(invs[j]);
}

static void test_cli__validate_older_commit(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *good, *pb, *bad;
	char short_sha[8];

	good = ml_test_git(r->dir, (const char *const[]){ "rev-parse", "HEAD",
							  NULL });
	free(ml_test_git(r->dir,
			 (const char *const[]){ "tag", "v1", NULL }));
	pb = ml_test_read_src("playbooks/example.yaml");
	bad = ml_xasprintf("%s\nhelth: {}\n", pb);
	ml_test_write(r->dir, "mlctl.yaml", bad);
	free(ml_test_commit(r->dir, "break it"));

	/* HEAD is broken: precise error, exit 3 */
	mlctl(&o, r, (const char *const[]){ "validate", NULL });
	assert_int_equal(o.status, 3);
	assert_non_null(strstr(o.err, "mlctl.yaml:"));
	assert_non_null(strstr(o.err, "unknown key 'helth'"));
	assert_non_null(strstr(o.err, "did you mean 'health'"));
	ml_test_out_release(&o);

	/* the older commit, by full sha, short sha and tag */
	snprintf(short_sha, sizeof(short_sha), "%.7s", good);
	const char *revs[] = { good, short_sha, "v1" };
	for (size_t i = 0; i < ML_ARRAY_SIZE(revs); i++) {
		mlctl(&o, r,
		      (const char *const[]){ "validate", "--commit", revs[i],
					     NULL });
		assert_int_equal(o.status, 0);
		assert_non_null(strstr(o.out, short_sha));
		ml_test_out_release(&o);
	}

	/* a commit that does not exist */
	mlctl(&o, r, (const char *const[]){ "validate", "--commit", "nope",
					    NULL });
	assert_int_equal(o.status, 4);
	assert_non_null(strstr(o.err, "nope"));
	ml_test_out_release(&o);
	free(good);
	free(pb);
	free(bad);
}

static void test_cli__uncommitted_changes_are_reported(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;

	/* broken in the working tree only: validate reads the commit */
	ml_test_write(r->dir, "mlctl.yaml", "app: [\n");
	mlctl(&o, r, (const char *const[]){ "validate", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.err, "uncommitted changes"));
	ml_test_out_release(&o);

	/* --worktree checks what is on disk */
	mlctl(&o, r, (const char *const[]){ "validate", "--worktree", NULL });
	assert_int_equal(o.status, 3);
	assert_non_null(strstr(o.err, "mlctl.yaml:"));
	ml_test_out_release(&o);
}

static void test_cli__not_a_repository(void **state)
{
	char *dir = ml_test_tmpdir("norepo");
	struct ml_test_out o;

	ML_UNUSED(state);
	ml_test_mlctl(&o, dir, NULL, (const char *const[]){ "validate", NULL });
	assert_int_equal(o.status, 4);
	assert_non_null(strstr(o.err, "not in a git repository"));
	ml_test_out_release(&o);
	ml_test_rmtree(dir);
	free(dir);
}

static void test_cli__huge_file_is_refused(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *path = ml_xasprintf("%s/mlctl.yaml", r->dir);
	FILE *fp = fopen(path, "w");
	char line[1024];
	size_t i;

	assert_non_null(fp);
	memset(line, 'x', sizeof(line) - 2);
	line[0] = '#';
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	for (i = 0; i < 50 * 1024; i++)
		fputs(line, fp);
	fclose(fp);
	free(ml_test_commit(r->dir, "50 MB playbook"));
	mlctl(&o, r, (const char *const[]){ "validate", NULL });
	assert_int_not_equal(o.status, 0);
	assert_true(o.status < 128);
	assert_non_null(strstr(o.err, "mlctl.yaml"));
	assert_non_null(strstr(o.err, "limit"));
	ml_test_out_release(&o);
	free(path);
}

/*
 * Every broken input in tests/data/config, committed to a real repository
 * and checked through the binary: the exact diagnostics and exit code 3.
 */
static void test_cli__broken_inputs_give_precise_errors(void **state)
{
	struct repo *r = *state;
	char *dir = ml_xasprintf("%s/tests/data/config", ml_test_src());
	char *pb0 = ml_test_read_src("playbooks/example.yaml");
	char *inv0 = ml_test_read_src("inventory/example.yaml");
	struct dirent **names = NULL;
	int n, i, broken = 0;

	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		char *base, *pbp, *invp, *expp, *expected;
		struct ml_buf b = ML_BUF_INIT(0);
		struct ml_test_out o;
		struct stat st;

		if (names[i]->d_name[0] == '.') {
			free(names[i]);
			continue;
		}
		base = ml_xasprintf("%s/%s", dir, names[i]->d_name);
		pbp = ml_xasprintf("%s/mlctl.yaml", base);
		invp = ml_xasprintf("%s/inventory.yaml", base);
		expp = ml_xasprintf("%s/expected", base);
		if (ml_buf_read_file(&b, expp) < 0) {
			/* cases generated at run time have no expected file */
			goto next;
		}
		expected = ml_buf_detach(&b, NULL);
		if (stat(pbp, &st) == 0) {
			ml_buf_read_file(&b, pbp);
			ml_test_write(r->dir, "mlctl.yaml", ml_buf_str(&b));
			ml_buf_reset(&b);
		} else {
			ml_test_write(r->dir, "mlctl.yaml", pb0);
		}
		if (stat(invp, &st) == 0) {
			ml_buf_read_file(&b, invp);
			ml_test_write(r->dir, "inventory.yaml", ml_buf_str(&b));
			ml_buf_reset(&b);
		} else {
			ml_test_write(r->dir, "inventory.yaml", inv0);
		}
		free(ml_test_commit(r->dir, names[i]->d_name));
		mlctl(&o, r, (const char *const[]){ "validate", NULL });
		if (!strncmp(expected, "valid", 5)) {
			assert_int_equal(o.status, 0);
		} else {
			char *line = ml_xstrdup(expected), *copy = line;
			char *nl;

			if (o.status != 3)
				print_error("%s: status %d: %s\n",
					    names[i]->d_name, o.status, o.err);
			assert_int_equal(o.status, 3);
			/* every expected diagnostic line appears verbatim */
			for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
				nl = strchr(line, '\n');
				if (nl)
					*nl = '\0';
				if (!*line)
					continue;
				if (!strstr(o.err, line))
					print_error("%s: missing '%s' in:\n%s",
						    names[i]->d_name, line,
						    o.err);
				assert_non_null(strstr(o.err, line));
			}
			free(copy);
			broken++;
		}
		ml_test_out_release(&o);
		free(expected);
next:
		ml_buf_release(&b);
		free(base);
		free(pbp);
		free(invp);
		free(expp);
		free(names[i]);
	}
	free(names);
	free(dir);
	free(pb0);
	free(inv0);
	assert_true(broken >= 25);
}

static void test_cli__plan_json_resolves_hosts(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	json_error_t jerr;
	json_t *doc, *hosts;

	/* --offline: the desired state alone, no host asked */
	mlctl(&o, r, (const char *const[]){ "plan", "--offline", "--json",
					    NULL });
	assert_int_equal(o.status, 0);
	doc = json_loads(o.out, 0, &jerr);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "app")),
			    "sentiment-api");
	hosts = json_object_get(doc, "hosts");
	assert_true(json_is_array(hosts));
	assert_true(json_array_size(hosts) >= 2);
	json_decref(doc);
	ml_test_out_release(&o);

	mlctl(&o, r, (const char *const[]){ "plan", "--offline", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "HOST"));
	assert_non_null(strstr(o.out, "nothing was changed"));
	ml_test_out_release(&o);

	/* the changes are known only by asking the hosts */
	mlctl(&o, r, (const char *const[]){ "plan", "--offline",
					    "--detailed-exitcode", NULL });
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "--detailed-exitcode needs the hosts"));
	ml_test_out_release(&o);
}

/* The agent to install cannot be read: the context once, the reason once,
 * then what to do (once the site that formatted the message into itself). */
static void test_cli__bootstrap_without_the_agent_says_so_once(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;

	mlctl(&o, r, (const char *const[]){ "bootstrap", "--agent-binary",
					    "/nonexistent/mlctl-agent", NULL });
	assert_int_not_equal(o.status, 0);
	assert_non_null(strstr(o.err,
			       "mlctl: cannot read the agent to install: "
			       "cannot open '/nonexistent/mlctl-agent': No "
			       "such file or directory (build it with 'make', "
			       "or give --agent-binary)\n"));
	ml_test_out_release(&o);
}

/*
 * A bad option value is refused before any work: the example playbook
 * builds from a Dockerfile this repository lacks, so an option checked
 * only after the build would fail on that instead.
 */
static void test_cli__bad_options_are_refused_before_any_work(void **state)
{
	static const struct {
		const char *args[4];
		const char *message;
	} cases[] = {
		{ { "deploy", "--parallel", "0" },
		  "mlctl: --parallel must be a number from 1 to 256, not '0'\n" },
		{ { "deploy", "--wait", "soon" },
		  "mlctl: --wait must be a duration like 30s or 5m, not "
		  "'soon'\n" },
		{ { "deploy", "--timeout", "0" },
		  "mlctl: --timeout must be a duration between 1ms and 1h, "
		  "like 5s, not '0'\n" },
		{ { "rollback", "--parallel", "many", "1" },
		  "mlctl: --parallel must be a number from 1 to 256, not "
		  "'many'\n" },
		{ { "history", "--limit", "x" },
		  "mlctl: --limit must be a number, not 'x'\n" },
		{ { "status", "--timeout", "2h" },
		  "mlctl: --timeout must be a duration between 1ms and 1h, "
		  "like 5s, not '2h'\n" },
	};
	struct repo *r = *state;
	struct ml_test_out o;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(cases); i++) {
		const char *args[5] = { 0 };

		memcpy(args, cases[i].args, sizeof(cases[i].args));
		mlctl(&o, r, args);
		if (o.status != 2 || strcmp(o.err, cases[i].message))
			print_error("mlctl %s %s: exit %d\n%s", args[0],
				    args[1], o.status, o.err);
		assert_int_equal(o.status, 2);
		assert_string_equal(o.err, cases[i].message);
		assert_string_equal(o.out, "");
		ml_test_out_release(&o);
	}
}

/* A secrets file others can read is refused before the image is built
 * (the repository has no Dockerfile to build from). */
static void test_cli__bad_secrets_file_is_refused_before_the_build(
	void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *pb = ml_test_read_src("playbooks/example.yaml");
	char *with = ml_xasprintf("%ssecrets: [HF_TOKEN]\n", pb);
	char *path = ml_xasprintf("%s/open-secrets", r->dir);
	char *want = ml_xasprintf("mlctl: secrets file '%s' has mode 0644",
				  path);

	ml_test_write(r->dir, "mlctl.yaml", with);
	free(ml_test_commit(r->dir, "a secret"));
	ml_test_write(r->dir, "open-secrets", "HF_TOKEN=x\n");
	assert_int_equal(chmod(path, 0644), 0);
	mlctl(&o, r, (const char *const[]){ "deploy", "--secrets", path,
					    NULL });
	if (!strstr(o.err, want))
		print_error("exit %d\n%s", o.status, o.err);
	assert_int_not_equal(o.status, 0);
	assert_non_null(strstr(o.err, want));
	assert_null(strstr(o.err, "Dockerfile"));
	assert_null(strstr(o.out, "building"));
	ml_test_out_release(&o);
	free(want);
	free(path);
	free(with);
	free(pb);
}

static void test_cli__history_empty_ledger(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	struct stat st;
	char *ledger = ml_xasprintf("%s/.ledger/ledger.db", r->dir);

	mlctl(&o, r, (const char *const[]){ "history", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "no revisions"));
	ml_test_out_release(&o);
	assert_int_equal(stat(ledger, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	mlctl(&o, r, (const char *const[]){ "history", "--json", NULL });
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "[]"));
	ml_test_out_release(&o);

	mlctl(&o, r, (const char *const[]){ "show", "7", NULL });
	assert_int_equal(o.status, 11);
	ml_test_out_release(&o);
	free(ledger);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli__help_lists_every_command),
		cmocka_unit_test(test_cli__usage_errors_exit_2),
		cmocka_unit_test(test_cli__not_a_repository),
		cmocka_unit_test_setup_teardown(
			test_cli__validate_passes_on_examples, repo_setup,
			repo_teardown),
		cmocka_unit_test_setup_teardown(test_cli__validate_older_commit,
						repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__uncommitted_changes_are_reported, repo_setup,
			repo_teardown),
		cmocka_unit_test_setup_teardown(test_cli__huge_file_is_refused,
						repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__broken_inputs_give_precise_errors,
			repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__plan_json_resolves_hosts, repo_setup,
			repo_teardown),
		cmocka_unit_test_setup_teardown(test_cli__history_empty_ledger,
						repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__bootstrap_without_the_agent_says_so_once,
			repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__bad_options_are_refused_before_any_work,
			repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(
			test_cli__bad_secrets_file_is_refused_before_the_build,
			repo_setup, repo_teardown),
	};

	return cmocka_run_group_tests_name("e2e/cli", tests, NULL, NULL);
}
