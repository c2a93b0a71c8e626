/*
 * Running the offline Kubernetes validator from tests (see k8s.h). The npm
 * packages live in tests/k8s/node_modules, installed by scripts/setup.sh;
 * node finds them next to the script, whatever the current directory.
 */
#include "common/ml.h"
#include "tests/support/k8s.h"
#include "tests/support/proc.h"

#include <unistd.h>

#define MAX_FILES 64

int ml_test_k8s_validate(struct ml_test_out *o, const char *const *files)
{
	const char *argv[MAX_FILES + 3];
	char *script = ml_xasprintf("%s/tests/k8s/validate.mjs", ml_test_src());
	char *mods = ml_xasprintf("%s/tests/k8s/node_modules/kubernetes-models",
				  ml_test_src());
	size_t i;

	if (access(mods, R_OK) < 0) {
		fprintf(stderr,
			"the validator's npm packages are missing "
			"('%s'): run scripts/setup.sh\n",
			mods);
		abort();
	}
	argv[0] = "node";
	argv[1] = script;
	for (i = 0; files[i]; i++) {
		if (i == MAX_FILES)
			BUG("too many files to validate");
		argv[i + 2] = files[i];
	}
	argv[i + 2] = NULL;
	if (ml_test_run(o, NULL, NULL, NULL, 120, argv) < 0) {
		fprintf(stderr, "cannot run node\n");
		abort();
	}
	if (o->status == 127) {
		fprintf(stderr,
			"node is not installed: run scripts/setup.sh\n");
		abort();
	}
	free(script);
	free(mods);
	return o->status;
}
