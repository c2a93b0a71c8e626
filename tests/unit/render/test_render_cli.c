/*
 * `mlctl render k8s` as a user runs it, on a scratch git repository
 * holding the GPU playbook: what reaches stdout, -o DIR and the
 * --secrets-file, and above all where secret values may appear (only in
 * the 0600 file asked for). Runs bin/mlctl ($MLCTL_BIN) and the offline
 * validator; needs no fleet. Where the image's digest comes from Docker,
 * a fake Docker answers (tests/unit/agent/fake_docker.h): RepoDigests
 * exist only after a push to a registry, which this machine has not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ml.h"
#include "tests/support/k8s.h"
#include "tests/support/proc.h"
#include "tests/unit/agent/fake_docker.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* Values no rendering may show; "\n" in the file is a newline in the
 * value, and the quote and backslash test the Secret's escaping. */
#define SECRETS_TEXT                                                           \
	"HF_TOKEN=hf_Zq7-token-VALUE-one\n"                                    \
	"API_KEYS=k3y\"VALUE\\\\two\\nline2\n"
static const char *const values[] = {"hf_Zq7-token-VALUE-one", "VALUE-one",
				     "k3y", "VALUE\\", "line2"};

struct repo {
	char *dir;
};

static int repo_setup(void **state)
{
	struct repo *r = ml_xcalloc(1, sizeof(*r));
	char *pb = ml_test_read_src("playbooks/gpu.yaml");
	char *inv = ml_test_read_src("inventory/gpu-fleet.yaml");
	char *sf;

	r->dir = ml_test_tmpdir("render-cli");
	free(ml_test_git(r->dir, (const char *const[]){"init", "-q", NULL}));
	ml_test_write(r->dir, "mlctl.yaml", pb);
	ml_test_write(r->dir, "inventory.yaml", inv);
	ml_test_write(r->dir, ".gitignore", ".mlctl/\nout/\n*.secret.yaml\n");
	free(ml_test_commit(r->dir, "gpu app"));
	ml_test_write(r->dir, ".mlctl/secrets", SECRETS_TEXT);
	sf = ml_xasprintf("%s/.mlctl/secrets", r->dir);
	assert_int_equal(chmod(sf, 0600), 0);
	free(sf);
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
	free(r);
	return 0;
}

static void no_value_in(const char *what, const char *text)
{
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(values); i++)
		if (strstr(text, values[i]))
			fail_msg("a secret value is in %s", what);
}

/* Every file of dir, checked for values; returns how many there are. */
static int no_value_in_dir(const char *dir)
{
	struct dirent **names = NULL;
	int n, k, files = 0;

	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (k = 0; k < n; k++) {
		if (names[k]->d_name[0] != '.') {
			char *p = ml_xasprintf("%s/%s", dir, names[k]->d_name);
			char *text = ml_test_slurp(p);

			no_value_in(p, text);
			files++;
			free(text);
			free(p);
		}
		free(names[k]);
	}
	free(names);
	return files;
}

static struct ml_test_out run(struct repo *r, const char *const *args)
{
	struct ml_test_out o;

	assert_int_equal(ml_test_mlctl(&o, r->dir, NULL, args), 0);
	return o;
}

static void validate(const char *path)
{
	const char *files[] = {path, NULL};
	struct ml_test_out o;

	if (ml_test_k8s_validate(&o, files) != 0)
		fail_msg("the validator refused '%s':\n%s", path, o.err);
	ml_test_out_release(&o);
}

static void test_render_cli__stdout_names_secrets_only(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *path;

	o = run(r, (const char *const[]){"render", "k8s", "--image-registry",
					 "registry.example.com/ml", NULL});
	assert_int_equal(o.status, 0);
	assert_true(!strncmp(o.out,
			     "# mlctl render k8s: manifests of "
			     "'llm-serve' at commit ",
			     50));
	assert_non_null(strstr(o.out, "secretName: \"llm-serve-secrets\""));
	assert_null(strstr(o.out, "kind: \"Secret\""));
	no_value_in("stdout", o.out);
	no_value_in("stderr", o.err);
	/* warnings name their keys */
	assert_non_null(strstr(o.err, "warning: 'rollout.canary'"));
	assert_non_null(strstr(o.err, "warning: 'resources.gpus'"));
	path = ml_xasprintf("%s/stdout.yaml", r->dir);
	ml_test_write(r->dir, "stdout.yaml", o.out);
	validate(path);
	free(path);
	ml_test_out_release(&o);
}

static void test_render_cli__secrets_file_alone_holds_values(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *out = ml_xasprintf("%s/out", r->dir);
	char *sf = ml_xasprintf("%s/llm.secret.yaml", r->dir);
	char *text;
	struct stat st;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		/* the second time replaces the file the first one wrote */
		o = run(r, (const char *const[]){"render", "k8s", "-o", "out",
						 "--secrets-file",
						 "llm.secret.yaml", NULL});
		assert_int_equal(o.status, 0);
		no_value_in("stdout", o.out);
		no_value_in("stderr", o.err);
		ml_test_out_release(&o);
		assert_int_equal(stat(sf, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	text = ml_test_slurp(sf);
	assert_non_null(strstr(text, "kind: \"Secret\""));
	assert_non_null(strstr(text, "HF_TOKEN: \"hf_Zq7-token-VALUE-one\""));
	assert_non_null(
		strstr(text, "API_KEYS: \"k3y\\\"VALUE\\\\two\\nline2\""));
	free(text);
	validate(sf);
	assert_int_equal(no_value_in_dir(out), 4);
	free(out);
	free(sf);
}

/* A --secrets-file naming a file we did not write (here the secrets
 * themselves, a likely slip) is refused and left untouched. */
static void test_render_cli__never_overwrites_a_foreign_file(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *sf = ml_xasprintf("%s/.mlctl/secrets", r->dir);
	char *text;

	o = run(r, (const char *const[]){"render", "k8s", "--secrets-file",
					 ".mlctl/secrets", NULL});
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "is not a Secret manifest written by"));
	no_value_in("stdout", o.out);
	no_value_in("stderr", o.err);
	ml_test_out_release(&o);
	text = ml_test_slurp(sf);
	assert_string_equal(text, SECRETS_TEXT);
	free(text);
	free(sf);
}

static void test_render_cli__dir_drops_stale_objects(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;
	char *dir = ml_xasprintf("%s/out2", r->dir);
	char *ro = ml_xasprintf("%s/rollout.yaml", dir);
	char *dep = ml_xasprintf("%s/deployment.yaml", dir);
	char *notes = ml_xasprintf("%s/notes.yaml", dir);

	o = run(r, (const char *const[]){"render", "k8s", "--rollouts", "-o",
					 "out2", NULL});
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	assert_int_equal(access(ro, R_OK), 0);
	assert_int_equal(access(dep, R_OK), -1);
	validate(ro);
	ml_test_write(dir, "notes.yaml", "# someone else's file\n");

	o = run(r, (const char *const[]){"render", "k8s", "-o", "out2", NULL});
	assert_int_equal(o.status, 0);
	ml_test_out_release(&o);
	assert_int_equal(access(dep, R_OK), 0);
	/* kubectl apply -f out2 must not apply both */
	assert_int_equal(access(ro, R_OK), -1);
	assert_int_equal(access(notes, R_OK), 0);
	validate(dep);
	free(dir);
	free(ro);
	free(dep);
	free(notes);
}

#define DIGEST                                                                 \
	"sha256:"                                                              \
	"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define OTHER                                                                  \
	"sha256:"                                                              \
	"1111111111111111111111111111111111111111111111111111111111111111"

/* After `docker push`, Docker knows the image's digest in the registry:
 * render pins the image to it, and only to the one of that registry. */
static void test_render_cli__digest_from_docker(void **state)
{
	static const struct fake_route routes[] = {
		{"GET /version ", 200,
		 "{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
		 "\"MinAPIVersion\":\"1.12\"}",
		 0},
		{"GET /v1.41/images/llm-serve%3A2024.06.1/json", 200,
		 "{\"Id\":\"sha256:aa\",\"RepoDigests\":["
		 "\"other.example.com/ml/llm-serve@" OTHER "\","
		 "\"registry.example.com/ml/llm-serve@" DIGEST "\"]}",
		 0},
	};
	struct repo *r = *state;
	struct fake_docker fd;
	struct ml_test_out o;

	fake_docker_start(&fd, routes, ML_ARRAY_SIZE(routes));
	o = run(r, (const char *const[]){"render", "k8s", "--image-registry",
					 "registry.example.com/ml",
					 "--docker-socket", fd.sock, NULL});
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "image: \"registry.example.com/ml/"
				      "llm-serve:2024.06.1@" DIGEST "\""));
	assert_null(strstr(o.out, OTHER));
	assert_null(strstr(o.err, "named by its tag"));
	ml_test_out_release(&o);

	/* a registry Docker has no digest for: by tag, and said so */
	o = run(r, (const char *const[]){"render", "k8s", "--image-registry",
					 "third.example.com/x",
					 "--docker-socket", fd.sock, NULL});
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.out, "image: \"third.example.com/x/"
				      "llm-serve:2024.06.1\""));
	assert_non_null(strstr(o.err, "named by its tag"));
	ml_test_out_release(&o);
	assert_true(fake_docker_requests(&fd) >= 2);
	fake_docker_stop(&fd);

	/* no Docker at all: the same, no error */
	o = run(r, (const char *const[]){"render", "k8s", "--docker-socket",
					 "/nonexistent/docker.sock", NULL});
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.err, "named by its tag"));
	ml_test_out_release(&o);
}

static void test_render_cli__bad_use(void **state)
{
	struct repo *r = *state;
	struct ml_test_out o;

	o = run(r, (const char *const[]){"render", "helm", NULL});
	assert_int_equal(o.status, 2);
	assert_non_null(strstr(o.err, "'k8s'"));
	ml_test_out_release(&o);
	o = run(r, (const char *const[]){"render", "k8s", "--namespace", "Prod",
					 NULL});
	assert_int_equal(o.status, 3);
	assert_non_null(strstr(o.err, "namespace 'Prod'"));
	assert_string_equal(o.out, "");
	ml_test_out_release(&o);
	/* values are read only for the Secret file */
	o = run(r, (const char *const[]){"render", "k8s", "--secrets",
					 ".mlctl/secrets", NULL});
	assert_int_equal(o.status, 2);
	assert_string_equal(o.out, "");
	ml_test_out_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_cli__stdout_names_secrets_only),
		cmocka_unit_test(
			test_render_cli__secrets_file_alone_holds_values),
		cmocka_unit_test(
			test_render_cli__never_overwrites_a_foreign_file),
		cmocka_unit_test(test_render_cli__dir_drops_stale_objects),
		cmocka_unit_test(test_render_cli__digest_from_docker),
		cmocka_unit_test(test_render_cli__bad_use),
	};

	return cmocka_run_group_tests_name("render_cli", tests, repo_setup,
					   repo_teardown);
}
