/*
 * The example app in a scratch repository for the e2e suites (see app.h).
 */
#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/proc.h"

#include <stdio.h>
#include <sys/stat.h>

int ml_test_app_init(struct ml_test_app *a, const char *tag)
{
	static const char *const files[] = { "Dockerfile", "www/healthz",
					     "www/cgi-bin/predict" };
	char *inv, *p;
	const char *addr;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->fleet_dir = getenv("MLCTL_FLEET_DIR");
	if (!a->fleet_dir || !*a->fleet_dir) {
		fprintf(stderr, "MLCTL_FLEET_DIR is not set: run through "
				"'make test'\n");
		return -1;
	}
	p = ml_xasprintf("%s/inventory.yaml", a->fleet_dir);
	inv = ml_test_slurp(p);
	free(p);
	addr = strstr(inv, "lb1:");
	addr = addr ? strstr(addr, "address: ") : NULL;
	if (!addr) {
		fprintf(stderr, "no lb1 address in the fleet's inventory\n");
		free(inv);
		return -1;
	}
	addr += strlen("address: ");
	a->lb_addr = ml_xstrndup(addr, strcspn(addr, "\n \r"));
	a->repo = ml_test_tmpdir(tag);
	a->known_hosts = ml_xasprintf("%s/known_hosts", a->fleet_dir);
	a->ledger_env = ml_xasprintf("MLCTL_LEDGER=%s.ledger", a->repo);
	free(ml_test_git(a->repo, (const char *const[]){ "init", "-q", NULL }));
	for (i = 0; i < ML_ARRAY_SIZE(files); i++) {
		char *rel = ml_xasprintf("examples/sentiment/%s", files[i]);
		char *text = ml_test_read_src(rel);

		ml_test_write(a->repo, files[i], text);
		free(text);
		free(rel);
	}
	p = ml_xasprintf("%s/www/cgi-bin/predict", a->repo);
	chmod(p, 0755);
	free(p);
	ml_test_write(a->repo, "inventory.yaml", inv);
	ml_test_write(a->repo, ".gitignore", "*.ledger*\n");
	free(inv);
	return 0;
}

int ml_test_app_mlctl(struct ml_test_out *o, const struct ml_test_app *a,
		      const char *const *extra, const char *const *args)
{
	const char *env[8] = { a->ledger_env };
	size_t n = 1;

	for (; extra && *extra && n < ML_ARRAY_SIZE(env) - 1; extra++)
		env[n++] = *extra;
	env[n] = NULL;
	return ml_test_mlctl_kh(o, a->repo, a->known_hosts, env, args);
}

void ml_test_app_release(struct ml_test_app *a)
{
	struct ml_test_out o;

	if (a->repo) {
		ml_test_app_mlctl(&o, a, NULL,
				  (const char *const[]){ "remove", NULL });
		if (o.status != 0)
			fprintf(stderr, "remove failed (%d): %s%s\n", o.status,
				o.out, o.err);
		ml_test_out_release(&o);
		ml_test_rmtree(a->repo);
	}
	free(a->repo);
	free(a->known_hosts);
	free(a->ledger_env);
	free(a->lb_addr);
	memset(a, 0, sizeof(*a));
}
