/*
 * libFuzzer target for the Kubernetes render and our YAML emitter: the
 * input is a playbook, a NUL byte, then an inventory (as fuzz_config).
 * Whatever resolves must render, in both forms (Deployment and Argo
 * Rollout), and every document must read back through libyaml as exactly
 * the tree that was emitted (ml_render_yaml_verify); mlctl's checks may
 * refuse the objects (an app name Kubernetes does not allow) but never
 * crash. Any other outcome aborts.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/render/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render(const struct ml_config *cfg, bool rollouts)
{
	struct ml_render_opts o = { .rollouts = rollouts,
				    .read_only_root = rollouts };
	struct ml_render_warns w = { 0 };
	struct ml_buf b = ML_BUF_INIT(0);
	json_t *docs = NULL, *problems = json_array(), *d;
	size_t i, mark;

	if (ml_render_k8s(&docs, &w, cfg, &o) < 0)
		abort();
	ml_render_check(problems, docs);
	json_array_foreach(docs, i, d) {
		mark = b.len;
		if (ml_render_yaml(&b, d) < 0 ||
		    ml_render_yaml_verify(b.data + mark, b.len - mark, d) < 0)
			abort();
	}
	ml_buf_release(&b);
	json_decref(problems);
	json_decref(docs);
	ml_render_warns_release(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *nul = memchr(p, '\0', size);
	size_t pblen = nul ? (size_t)(nul - p) : size;
	const char *inv = nul ? nul + 1 : p;
	size_t invlen = nul ? size - pblen - 1 : size;
	struct ml_diags diags = { 0 };
	struct ml_playbook *pb = NULL;
	struct ml_inventory *iv = NULL;
	struct ml_config *cfg = NULL;

	ml_playbook_parse(&pb, "mlctl.yaml", p, pblen, &diags);
	ml_inventory_parse(&iv, "inventory.yaml", inv, invlen, &diags);
	if (pb && iv) {
		if (ml_config_resolve(&cfg, pb, iv, &diags) == 0) {
			render(cfg, false);
			render(cfg, true);
		}
		pb = NULL;
		iv = NULL;
	}
	ml_playbook_free(pb);
	ml_inventory_free(iv);
	ml_config_free(cfg);
	ml_diags_release(&diags);
	return 0;
}
