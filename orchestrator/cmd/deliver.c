/*
 * mlctl deliver: make the image of the desired state (resolve a local
 * image, or build the commit's Dockerfile through the local Docker Engine),
 * extract its blobs into the controller's cache, and deliver it to every
 * app host, sending each only the blobs it lacks. Deploy runs the same
 * steps before rolling; this verb stops there (like `kamal build push`).
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/fmt.h"
#include "common/table.h"
#include "orchestrator/apply/deliver.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/source/source.h"

#include <unistd.h>

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_allow_dirty, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, &ml_opt_local_docker, &ml_opt_json, NULL,
};

static bool is_app(const struct ml_target *t)
{
	return t->is_app;
}

static int deliver_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "HOST",  "BLOBS SENT", "RAW",
					   "WIRE",  "LOADED",     "TOOK",
					   "ERROR" };
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct ml_deliver_result *res = NULL;
	struct ml_deliver_opts dopt = { 0 };
	struct ml_image *img = NULL;
	struct ml_cache *cache = NULL;
	const char *tags[2] = { NULL, NULL };
	char b1[ML_FMT_MAX];
	size_t n = 0, i;
	int64_t total = 0;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "deliver takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	rc = ml_image_prepare(&img, &cache, ctx->config,
			      ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0)
		goto out;
	total = img->config_size;
	for (i = 0; i < img->nlayers; i++)
		total += img->layer_sizes[i];
	if (!ml_ctx_flag(ctx, OPT_JSON))
		printf("image %.19s (%s, %zu layer%s, %s)%s\n", img->id,
		       img->ref, img->nlayers, img->nlayers == 1 ? "" : "s",
		       ml_fmt_bytes(b1, total), img->built ? ", built" : "");
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, is_app);
	if (rc < 0)
		goto out;
	res = ml_xcalloc(n ? n : 1, sizeof(*res));
	tags[0] = img->ref;
	dopt.parallel = fo.parallel;
	dopt.progress = isatty(STDERR_FILENO) && !ml_ctx_flag(ctx, OPT_JSON);
	dopt.tags = tags;
	rc = ml_deliver(hosts, n, img, cache, &dopt, res);

	if (ml_ctx_flag(ctx, OPT_JSON)) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "image", json_string(img->id));
		json_object_set_new(doc, "ref", json_string(img->ref));
		json_object_set_new(doc, "bytes", json_integer(total));
		for (i = 0; i < n; i++) {
			json_t *h = json_object();

			json_object_set_new(h, "host", json_string(
						   hosts[i].target->name));
			json_object_set_new(h, "ok",
					    json_boolean(hosts[i].rc == 0));
			json_object_set_new(h, "blobs_sent",
					    json_integer(res[i].blobs_sent));
			json_object_set_new(h, "raw_bytes",
					    json_integer(res[i].raw_bytes));
			json_object_set_new(h, "wire_bytes",
					    json_integer(res[i].wire_bytes));
			json_object_set_new(h, "loaded",
					    json_boolean(res[i].loaded));
			json_object_set_new(h, "ms", json_integer(res[i].ms));
			json_object_set_new(h, "relayed",
					    json_boolean(res[i].relayed_from));
			json_object_set_new(
				h, "relayed_from",
				res[i].relayed_from
					? json_string(res[i].relayed_from)
					: json_null());
			json_object_set_new(h, "relayed_bytes",
					    json_integer(res[i].relayed_bytes));
			json_object_set_new(
				h, "controller_bytes",
				json_integer(res[i].raw_bytes -
					     res[i].relayed_bytes));
			if (hosts[i].rc < 0)
				json_object_set_new(
					h, "error", json_string(hosts[i].error));
			json_array_append_new(arr, h);
		}
		json_object_set_new(doc, "hosts", arr);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
	} else {
		struct ml_table *t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);

		for (i = 0; i < n; i++) {
			char sent[24], raw[ML_FMT_MAX], wire[ML_FMT_MAX],
				took[ML_FMT_MAX];
			const char *cells[7];

			snprintf(sent, sizeof(sent), "%d", res[i].blobs_sent);
			cells[0] = hosts[i].target->name;
			cells[1] = sent;
			cells[2] = ml_fmt_bytes(raw, res[i].raw_bytes);
			cells[3] = ml_fmt_bytes(wire, res[i].wire_bytes);
			cells[4] = hosts[i].rc < 0   ? "no"
				   : res[i].loaded ? "yes"
						   : "already there";
			cells[5] = ml_fmt_duration(took, res[i].ms);
			cells[6] = hosts[i].rc < 0 ? hosts[i].error : NULL;
			ml_table_add(t, cells);
		}
		ml_table_print(t, stdout);
		ml_table_free(t);
	}
out:
	for (i = 0; res && i < n; i++)
		free(res[i].error);
	free(res);
	ml_fleet_close(hosts, n);
	ml_image_free(img);
	ml_cache_free(cache);
	return rc;
}

const struct ml_cmd ml_cmd_deliver = {
	.name = "deliver",
	.summary = "build or find the image and send it to every app host",
	.usage = "[--commit REV] [--json] [--docker-socket PATH]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG | ML_CMD_REFUSE_DIRTY,
	.run = deliver_run,
};
