/*
 * The example app in a scratch repository for the e2e suites (see app.h).
 */
#include "common/ml.h"
#include "tests/support/app.h"
#include "tests/support/proc.h"

#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* The repository, the fleet's files and lb1's address, nothing else. */
static int init_common(struct ml_test_app *a, const char *tag, char **inv_out)
{
	char *inv, *p;
	const char *addr;

	memset(a, 0, sizeof(*a));
	a->timeout_s = 120;
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
	ml_test_write(a->repo, ".gitignore", "*.ledger*\n");
	*inv_out = inv;
	return 0;
}

int ml_test_app_init(struct ml_test_app *a, const char *tag)
{
	static const char *const files[] = { "Dockerfile", "www/healthz",
					     "www/cgi-bin/predict" };
	char *inv, *p;
	size_t i;

	if (init_common(a, tag, &inv) < 0)
		return -1;
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
	free(inv);
	return 0;
}

static char *mlctl_bin(void)
{
	const char *b = getenv("MLCTL_BIN");

	return b && *b ? ml_xstrdup(b)
		       : ml_xasprintf("%s/bin/mlctl", ml_test_src());
}

int ml_test_app_init_python(struct ml_test_app *a, const char *tag,
			    const char *app)
{
	static const char *const files[] = { "app.py", "requirements.txt" };
	struct ml_test_out o;
	char *inv, *p, *bin;
	size_t i;
	int rc = -1;

	if (init_common(a, tag, &inv) < 0)
		return -1;
	ml_test_write(a->repo, "inventory.yaml", inv);
	free(inv);
	a->timeout_s = 600;
	a->cache = ml_xasprintf("%s.cache", a->repo);
	a->cache_env = ml_xasprintf("MLCTL_CACHE_DIR=%s", a->cache);

	/* the base, once per run: building it takes minutes */
	bin = mlctl_bin();
	ml_test_run(&o, NULL, (const char *const[]){ a->cache_env, NULL }, NULL,
		    1800, (const char *const[]){ bin, "image", "base", NULL });
	free(bin);
	if (o.status != 0) {
		fprintf(stderr, "mlctl image base failed:\n%s%s\n", o.out,
			o.err);
		goto out;
	}
	ml_test_out_release(&o);
	for (i = 0; i < ML_ARRAY_SIZE(files); i++) {
		char *rel = ml_xasprintf("examples/iris/%s", files[i]);
		char *text = ml_test_read_src(rel);

		ml_test_write(a->repo, files[i], text);
		free(text);
		free(rel);
	}
	/* the model is binary (a joblib pickle): copied as files */
	p = ml_xasprintf("%s/examples/iris/model", ml_test_src());
	ml_test_run(&o, NULL, NULL, NULL, 30,
		    (const char *const[]){ "cp", "-r", p, a->repo, NULL });
	free(p);
	if (o.status != 0) {
		fprintf(stderr, "cannot copy the model:\n%s\n", o.err);
		goto out;
	}
	ml_test_out_release(&o);
	ml_test_app_mlctl(&o, a, NULL,
			  (const char *const[]){ "init", "--name", app, NULL });
	if (o.status != 0) {
		fprintf(stderr, "mlctl init failed:\n%s%s\n", o.out, o.err);
		goto out;
	}
	rc = 0;
out:
	ml_test_out_release(&o);
	return rc;
}

int ml_test_model_version(const char *repo, const char *version)
{
	static const char key[] = "\"version\": \"";
	char *path = ml_xasprintf("%s/model/meta.json", repo);
	char *meta = ml_test_slurp(path), *at, *end = NULL, *next;

	at = meta ? strstr(meta, key) : NULL;
	if (at)
		end = strchr(at + strlen(key), '"');
	if (!end) {
		fprintf(stderr, "%s has no \"version\"\n", path);
		free(meta);
		free(path);
		return -1;
	}
	at += strlen(key);
	next = ml_xasprintf("%.*s%s%s", (int)(at - meta), meta, version, end);
	ml_test_write(repo, "model/meta.json", next);
	free(next);
	free(meta);
	free(path);
	return 0;
}

int ml_test_app_mlctl(struct ml_test_out *o, const struct ml_test_app *a,
		      const char *const *extra, const char *const *args)
{
	const char *env[8] = { a->ledger_env }, *argv[40];
	char *bin;
	size_t n = 1, i;
	int rc;

	if (a->cache_env)
		env[n++] = a->cache_env;
	for (; extra && *extra && n < ML_ARRAY_SIZE(env) - 1; extra++)
		env[n++] = *extra;
	env[n] = NULL;
	bin = mlctl_bin();
	n = 0;
	argv[n++] = bin;
	argv[n++] = "--known-hosts";
	argv[n++] = a->known_hosts;
	for (i = 0; args[i] && n + 1 < ML_ARRAY_SIZE(argv); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = ml_test_run(o, a->repo, env, NULL, a->timeout_s, argv);
	free(bin);
	return rc;
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
		ml_test_ledger_remove(a->repo);
	}
	if (a->cache)
		ml_test_rmtree(a->cache);
	free(a->cache);
	free(a->cache_env);
	free(a->repo);
	free(a->known_hosts);
	free(a->ledger_env);
	free(a->lb_addr);
	memset(a, 0, sizeof(*a));
}

char *ml_test_status_ids(const char *status_json, const char *state)
{
	json_t *doc = json_loads(status_json, 0, NULL), *h, *c;
	struct ml_buf b = ML_BUF_INIT(0);
	size_t i, k;

	if (!json_is_object(doc)) {
		json_decref(doc);
		return NULL;
	}
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
		json_array_foreach(json_object_get(h, "containers"), k, c) {
			const char *st =
				json_string_value(json_object_get(c, "state"));
			const char *id =
				json_string_value(json_object_get(c, "id"));

			if (st && id && !strcmp(st, state))
				ml_buf_addf(&b, "%s ", id);
		}
	json_decref(doc);
	return ml_buf_detach(&b, NULL);
}
