/*
 * libFuzzer target for the playbook and inventory parsers and the resolver:
 * the input is a playbook, a NUL byte, then an inventory (no NUL: the same
 * bytes are tried as both). Whatever the bytes, parsing must end in a
 * config or in diagnostics, never a crash, a leak or a hang.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
			json_t *j = ml_config_to_json(cfg);

			if (!j)
				abort();
			json_decref(j);
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
