/*
 * libFuzzer target for the Kubernetes render and our YAML emitter: the
 * input is a playbook, a NUL byte, then an inventory
 * (tests/fuzz/config_input.h).
 * Whatever resolves must render, in both forms (Deployment and Argo
 * Rollout), and every document must read back through libyaml as exactly
 * the tree that was emitted (ml_render_yaml_verify); mlctl's checks may
 * refuse the objects (an app name Kubernetes does not allow) but never
 * crash. Any other outcome aborts.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "orchestrator/render/render.h"
#include "tests/fuzz/config_input.h"

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
	struct ml_config *cfg = fuzz_config_input(data, size);

	if (cfg) {
		render(cfg, false);
		render(cfg, true);
	}
	ml_config_free(cfg);
	return 0;
}
