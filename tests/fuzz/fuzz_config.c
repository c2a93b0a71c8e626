/*
 * libFuzzer target for the playbook and inventory parsers and the resolver:
 * the input is a playbook, a NUL byte, then an inventory (no NUL: the same
 * bytes are tried as both; tests/fuzz/config_input.h). Whatever the bytes,
 * parsing must end in a config or in diagnostics, never a crash, a leak or
 * a hang.
 */
#include "common/ml.h"
#include "orchestrator/config/config.h"
#include "tests/fuzz/config_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_config *cfg = fuzz_config_input(data, size);

	if (cfg) {
		json_t *j = ml_config_to_json(cfg);

		if (!j)
			abort();
		json_decref(j);
	}
	ml_config_free(cfg);
	return 0;
}
