/*
 * libFuzzer target for a build context's .dockerignore
 * (orchestrator/image/ignore.c): the input is the file, and the last of
 * its lines also a path to judge. Whatever the bytes, parsing ends in a
 * matcher or a message, and judging ends in an answer: never a crash, a
 * leak or a hang.
 */
#include "common/ml.h"
#include "orchestrator/image/ignore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keep[] = {"Dockerfile", NULL};
	struct ml_ignore *ig = NULL;
	const char *text = (const char *)data, *nl;
	char *path;

	if (ml_ignore_parse(&ig, text, size, ".dockerignore", keep) < 0)
		return 0;
	nl = size ? memrchr(text, '\n', size) : NULL;
	path = nl ? ml_xstrndup(nl + 1, size - (size_t)(nl + 1 - text))
		  : ml_xstrndup(text, size);
	if (ml_ignore_excludes(ig, path))
		(void)ml_ignore_prunes(ig, path);
	free(path);
	ml_ignore_free(ig);
	return 0;
}
