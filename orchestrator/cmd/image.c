/*
 * mlctl image: the image tools.
 *
 *   mlctl image base [--force] [PACKAGE...]
 *	build the standard Python runtime base without a registry
 *	(orchestrator/image/base.c), or say that it is there already; extra
 *	Debian packages may be named. Prints the tag on stdout.
 *   mlctl image check [REF] [--commit REV] [--json]
 *	look at an image (REF, or the playbook's image at the commit, built
 *	when needed) the way a reviewer would: layer sizes, the user it runs
 *	as, its init, exposed ports against the playbook's port, secret-
 *	looking ENV and build ARG names, and the layers that changed since
 *	the revision deployed now (a large one means a code-only commit
 *	ships more than code). Findings are warnings; the exit code is 0
 *	unless the image cannot be read.
 *
 * The checks themselves are a pure function of Docker's inspect and
 * history answers (ml_image_check_run), so the unit tests feed it JSON.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/fmt.h"
#include "common/log.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/base.h"
#include "orchestrator/image/check.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/load.h"
#include "orchestrator/source/source.h"

#include <unistd.h>

static const struct ml_option opt_force = {
	OPT_FORCE, "force", 0, NULL,
	"(base) build again even when the tag exists"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_json, &ml_opt_local_docker, &opt_force, NULL,
};

static int image_base(struct ml_ctx *ctx)
{
	struct ml_base_spec spec = { 0 };
	struct ml_docker *d = NULL;
	char *ref = NULL;
	bool built;
	int rc;

	spec.extra = (const char *const *)ctx->argv + 1;
	rc = ml_docker_new(&d, ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc == 0)
		rc = ml_base_ensure(&ref, &built, d, &spec,
				    ml_ctx_flag(ctx, OPT_FORCE));
	if (rc == 0) {
		printf("%s\n", ref);
		ml_info("base image '%s' %s", ref,
			built ? "built" : "is there already");
	}
	free(ref);
	ml_docker_free(d);
	return rc;
}

/* GET /images/<ref>/<what>, ref URL-encoded. */
static int image_get(json_t **out, struct ml_docker *d, const char *ref,
		     const char *what)
{
	struct ml_buf path = ML_BUF_INIT(2048);
	int rc;

	rc = ml_buf_addstr(&path, "/images/");
	if (rc == 0)
		rc = ml_docker_url_escape(&path, ref);
	if (rc == 0)
		rc = ml_buf_addf(&path, "/%s", what);
	if (rc == 0)
		rc = ml_docker_get(d, path.data, out);
	if (rc == ML_ENOTFOUND)
		rc = ml_err_set(ML_ENOTFOUND,
				"image '%s' is not in the local Docker", ref);
	ml_buf_release(&path);
	return rc;
}

/* The layers of the revision deployed now, from the ledger, or NULL. */
static json_t *deployed_layers(const struct ml_ctx *ctx, int64_t *number)
{
	struct ml_ledger *l = NULL;
	struct ml_revision *rev = NULL;
	json_t *layers = NULL;
	char *path = NULL;

	*number = 0;
	path = ctx->ledger_path ? ml_xstrdup(ctx->ledger_path)
				: ml_ledger_default_path();
	if (!path || access(path, R_OK) != 0)
		goto out;
	if (ml_ledger_open_mode(&l, path, ML_LEDGER_RO) < 0 ||
	    ml_ledger_last_good(l, 0, &rev) < 0 || !rev || !rev->layers_json)
		goto out;
	layers = json_loads(rev->layers_json, 0, NULL);
	if (!json_is_array(layers)) {
		json_decref(layers);
		layers = NULL;
	}
	*number = rev->number;
out:
	ml_err_clear();
	if (rev)
		ml_revision_free(rev);
	ml_ledger_free(l);
	free(path);
	return layers;
}

static void print_report(const json_t *rep)
{
	static const char *const hdr[] = { "#", "SIZE", "CHANGED",
					   "CREATED BY" };
	struct ml_table *t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	const json_t *v;
	size_t i;

	printf("image:    %s\n",
	       json_string_value(json_object_get(rep, "image")));
	printf("size:     %s\n", json_string_value(json_object_get(
					     rep, "size_human")));
	printf("user:     %s\n",
	       json_string_value(json_object_get(rep, "user")));
	printf("init:     %s\n",
	       json_string_value(json_object_get(rep, "init")));
	json_array_foreach(json_object_get(rep, "layers"), i, v)
	{
		char num[24], size[ML_FMT_MAX];
		const char *cells[4];
		const json_t *ch = json_object_get(v, "changed");

		snprintf(num, sizeof(num), "%zu", i + 1);
		cells[0] = num;
		cells[1] = ml_fmt_bytes(
			size, json_integer_value(json_object_get(v, "size")));
		cells[2] = !ch || json_is_null(ch) ? "-"
			   : json_is_true(ch)	   ? "yes"
						   : "no";
		cells[3] = json_string_value(json_object_get(v, "created_by"));
		ml_table_add(t, cells);
	}
	ml_table_print(t, stdout);
	ml_table_free(t);
	json_array_foreach(json_object_get(rep, "warnings"), i, v)
		printf("warning: %s\n", json_string_value(v));
	if (!json_array_size(json_object_get(rep, "warnings")))
		printf("no warnings\n");
}

/*
 * Which of the playbook and the inventory a build of the playbook's image
 * sends to Docker, into state[] (NULL-terminated, strings the caller's).
 * What cannot be found out is left out: the check still runs.
 */
static void state_in_context(char *state[3], const struct ml_ctx *ctx,
			     const struct ml_config *cfg)
{
	const char *paths[2] = { ctx->playbook_path, ctx->inventory_path };
	struct ml_source *src = NULL;
	size_t i, n = 0;

	state[0] = NULL;
	if (!cfg || cfg->playbook->image.kind != ML_IMAGE_BUILD ||
	    !cfg->commit || ml_source_open(&src, ".") < 0) {
		ml_err_clear();
		return;
	}
	for (i = 0; i < ML_ARRAY_SIZE(paths); i++) {
		char *rel = NULL;
		bool sends = false;

		if (paths[i] && ml_source_relpath(&rel, src, paths[i]) == 0 &&
		    ml_image_context_sends(&sends, src, cfg->commit,
					   &cfg->playbook->image, rel) == 0 &&
		    sends)
			state[n++] = rel;
		else
			free(rel);
		ml_err_clear();
	}
	state[n] = NULL;
	ml_source_free(src);
}

static int image_check(struct ml_ctx *ctx)
{
	char *state[3] = { NULL };
	struct ml_image_check_in in = { 0 };
	struct ml_config *cfg = NULL;
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	struct ml_docker *d = NULL;
	json_t *inspect = NULL, *history = NULL, *rep = NULL, *dep;
	const char *ref;
	int64_t rev = 0;
	int rc;

	if (ctx->argc > 2)
		return ml_err_set(ML_EUSAGE, "image check takes at most one "
					     "image reference");
	/* the playbook gives the port and, without REF, the image */
	rc = ml_load_config(&cfg, ctx, false);
	if (rc < 0 && ctx->argc < 2)
		goto out;
	ml_err_clear();
	rc = ml_docker_new(&d, ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0)
		goto out;
	if (ctx->argc == 2) {
		ref = ctx->argv[1];
	} else {
		rc = ml_image_prepare(&img, &cache, cfg,
				      ctx->opt[OPT_LOCAL_DOCKER]);
		if (rc < 0)
			goto out;
		ref = img->id;
	}
	rc = image_get(&inspect, d, ref, "json");
	if (rc == 0)
		rc = image_get(&history, d, ref, "history");
	if (rc < 0)
		goto out;
	in.ref = ref;
	in.inspect = inspect;
	in.history = history;
	in.port = cfg ? cfg->playbook->port : 0;
	dep = deployed_layers(ctx, &rev);
	in.deployed_layers = dep;
	in.deployed_revision = rev;
	if (ctx->argc < 2) {
		state_in_context(state, ctx, cfg);
		in.state_in_context = (const char *const *)state;
	}
	rc = ml_image_check_run(&rep, &in);
	json_decref(dep);
	if (rc < 0)
		goto out;
	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
	} else {
		print_report(rep);
	}
out:
	free(state[0]);
	free(state[1]);
	json_decref(rep);
	json_decref(inspect);
	json_decref(history);
	ml_image_free(img);
	ml_cache_free(cache);
	ml_docker_free(d);
	ml_config_free(cfg);
	return rc;
}

/*
 * main.c stops reading options at the first argument, the subcommand:
 * take the options that follow it here, so `mlctl image check --json`
 * works as it reads. Positional arguments keep their order.
 */
static int late_options(struct ml_ctx *ctx)
{
	int i, k = 1;

	if (ctx->argc < 1)
		return 0;
	for (i = 1; i < ctx->argc; i++) {
		const char *a = ctx->argv[i];

		if (!strcmp(a, "--json")) {
			ctx->opt[OPT_JSON] = "1";
		} else if (!strcmp(a, "--force")) {
			ctx->opt[OPT_FORCE] = "1";
		} else if (!strcmp(a, "--commit") || !strcmp(a, "-c") ||
			   !strcmp(a, "--docker-socket")) {
			if (i + 1 >= ctx->argc)
				return ml_err_set(ML_EUSAGE,
						  "option '%s' needs an "
						  "argument",
						  a);
			ctx->opt[a[2] == 'd' ? OPT_LOCAL_DOCKER : OPT_COMMIT] =
				ctx->argv[++i];
		} else if (a[0] == '-') {
			return ml_err_set(ML_EUSAGE,
					  "unknown option '%.64s' for 'mlctl "
					  "image'",
					  a);
		} else {
			ctx->argv[k++] = ctx->argv[i];
		}
	}
	ctx->argc = k;
	return 0;
}

static int image_run(struct ml_ctx *ctx)
{
	int rc = late_options(ctx);

	if (rc < 0)
		return rc;
	if (ctx->argc >= 1 && !strcmp(ctx->argv[0], "base"))
		return image_base(ctx);
	if (ctx->argc >= 1 && !strcmp(ctx->argv[0], "check"))
		return image_check(ctx);
	return ml_err_set(ML_EUSAGE,
			  "usage: mlctl image base [--force] [PACKAGE...] | "
			  "mlctl image check [REF] [--json]");
}

const struct ml_cmd ml_cmd_image = {
	.name = "image",
	.summary = "build the Python base image without a registry, or check "
		   "an image",
	.usage = "base [--force] [PACKAGE...] | check [REF] [--commit REV] "
		 "[--json]",
	.options = options,
	.flags = 0,
	.run = image_run,
};
