#ifndef ML_FUZZ_CONFIG_INPUT_H
#define ML_FUZZ_CONFIG_INPUT_H

/*
 * The input of the fuzz targets that start from the two files a user
 * writes: a playbook, a NUL byte, then an inventory (no NUL: the same
 * bytes are tried as both). Header-only, for tests/fuzz/ targets.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

/* Parse both files and resolve them: the config, or NULL when they do not
 * resolve (the diagnostics are discarded). Caller frees. */
static inline struct ml_config *fuzz_config_input(const uint8_t *data,
						  size_t size)
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
		if (ml_config_resolve(&cfg, pb, iv, &diags) < 0)
			cfg = NULL;
		pb = NULL;
		iv = NULL;
	}
	ml_playbook_free(pb);
	ml_inventory_free(iv);
	ml_diags_release(&diags);
	return cfg;
}

#endif
