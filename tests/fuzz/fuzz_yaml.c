/*
 * libFuzzer target for the YAML loader: any bytes go to ml_yaml_load()
 * under the default limits, and everything it returns is freed, so that
 * the sanitizers see every crash, overflow, leak and runaway allocation.
 * When a tree comes back, it is walked to check the invariants callers
 * rely on: scalars NUL-terminated at len, mapping keys scalar and
 * unique, positions 1-based. Seeds: tests/fuzz/seeds/yaml/.
 */
#include "common/ml.h"

#include "orchestrator/config/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t check(const struct ml_ynode *n, int depth)
{
	size_t i, j, count = 1;

	if (!n || n->line < 1 || n->col < 1 ||
	    (n->type != ML_YSCALAR && depth > 32))
		abort();
	switch (n->type) {
	case ML_YSCALAR:
		if (!n->scalar || n->scalar[n->len] != '\0' ||
		    memchr(n->scalar, '\0', n->len))
			abort();
		break;
	case ML_YSEQ:
		for (i = 0; i < n->nitems; i++)
			count += check(n->items[i], depth + 1);
		break;
	case ML_YMAP:
		for (i = 0; i < n->npairs; i++) {
			const struct ml_ynode *k = n->pairs[i].key;

			if (k->type != ML_YSCALAR)
				abort();
			/* quadratic, but maps are small in a fuzz run */
			for (j = 0; j < i && j < 64; j++)
				if (k->len == n->pairs[j].key->len &&
				    !memcmp(k->scalar, n->pairs[j].key->scalar,
					    k->len))
					abort();
			count += check(k, depth + 1);
			count += check(n->pairs[i].value, depth + 1);
		}
		break;
	default:
		abort();
	}
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_diags d = {0};
	struct ml_ynode *n = NULL;
	size_t i;
	int rc;

	rc = ml_yaml_load(&n, "fuzz.yaml", (const char *)data, size, NULL, &d);
	if (rc == 0) {
		if (d.n)
			abort();
		if (n && check(n, 1) > ml_ylimits_default.max_nodes)
			abort();
	} else {
		if (rc != ML_EINVALID || n || !d.n)
			abort();
		for (i = 0; i < d.n; i++)
			if (!d.v[i].msg[0] || d.v[i].line < 0)
				abort();
	}
	ml_ynode_free(n);
	ml_diags_release(&d);
	return 0;
}
