/*
 * A build context's .dockerignore, as the docker CLI reads it: the
 * files it names never reach the image, so a change to them (the
 * playbook, the inventory, a local .env) changes no layer.
 *
 * The daemon's classic builder does not apply the file; the client that
 * sends the context does, and mlctl is that client. The rules are
 * Docker's (moby/patternmatcher, docker/cli's build): one pattern a line,
 * surrounding white space trimmed; '#' starts a comment line; '!' makes
 * an exception that brings back what an earlier line excluded; the last
 * line that matches decides. A pattern is cleaned like a path ("./a//b/"
 * is "a/b", a leading '/' dropped) and matches the whole path relative to
 * the context, or any of its parent directories (so "model" leaves out
 * everything below model/). '*' matches within one path component, '?'
 * one character but '/', "[...]" a class, '\\' quotes the next character,
 * and "**" any number of components, none included (so "**" then "/x"
 * matches x at the root too). The Dockerfile and .dockerignore itself are
 * always sent (the daemon needs the one and drops the other when it is
 * listed), as docker build does.
 *
 * Limits: ML_IGNORE_MAX_BYTES of file and ML_IGNORE_MAX_PATTERNS
 * patterns; a file beyond them, a NUL byte or a pattern that does not
 * compile is refused with its name and line (ML_EINVALID), never half
 * applied.
 */
#ifndef ML_IMAGE_IGNORE_H
#define ML_IMAGE_IGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "orchestrator/source/source.h"

#define ML_IGNORE_MAX_BYTES ((size_t)1 << 20)
#define ML_IGNORE_MAX_PATTERNS 1000

struct ml_ignore;

/*
 * Parse text (len bytes, a file's content) into *out. name is how
 * messages call the file ("app/.dockerignore in commit abc1234").
 * keep lists paths (relative to the context, NULL-terminated, may be
 * NULL) that are never left out whatever the patterns say.
 */
int ml_ignore_parse(struct ml_ignore **out, const char *text, size_t len,
		    const char *name, const char *const *keep);
void ml_ignore_free(struct ml_ignore *ig);

/* Is path ("a/b/c", relative to the context, no trailing '/') left out? */
bool ml_ignore_excludes(const struct ml_ignore *ig, const char *path);

/*
 * May the walk skip everything below the directory dir, which
 * ml_ignore_excludes left out? Only when no exception could bring back
 * a path below it.
 */
bool ml_ignore_prunes(const struct ml_ignore *ig, const char *dir);

/*
 * The verdict on an entry of an exported context, for struct
 * ml_export_filter's judge with ctx the struct ml_ignore: kept, left out,
 * or left out with all below it.
 */
enum ml_export_verdict ml_ignore_judge(void *ctx, const char *name,
				       bool is_dir);

/* How many patterns the file had (comments and blank lines not counted). */
size_t ml_ignore_count(const struct ml_ignore *ig);

#endif
