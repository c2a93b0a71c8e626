#ifndef ML_SOURCE_H
#define ML_SOURCE_H

/*
 * Git as the source of the desired state, over libgit2: read files as they
 * are at any commit without a checkout, and tell whether the working tree
 * has uncommitted changes to them. The only place that includes git2.h.
 */

struct ml_source;

#define ML_SHA_HEX 41 /* 40 hex digits and a NUL */

/*
 * Open the repository containing dir (searching upwards like git does).
 * ML_ESOURCE with "'DIR' is not in a git repository" when there is none.
 */
int ml_source_open(struct ml_source **out, const char *dir);
void ml_source_free(struct ml_source *src);

/* The working directory of the repository (absolute, ends with '/'), or
 * NULL for a bare repository. Borrowed. */
const char *ml_source_workdir(const struct ml_source *src);

/*
 * Resolve rev (full or short sha, tag, branch, any git revision expression;
 * NULL means HEAD) to the full sha of a commit. ML_ESOURCE when it names
 * nothing, is ambiguous, or is not a commit; the message says which.
 */
int ml_source_resolve(const struct ml_source *src, const char *rev,
		      char sha[ML_SHA_HEX]);

/*
 * Turn path (absolute, or relative to the current directory) into a path
 * relative to the repository's root, as git names it ("dir/mlctl.yaml").
 * ML_ESOURCE when it lies outside the repository. Result freed by caller.
 */
int ml_source_relpath(char **out, const struct ml_source *src,
		      const char *path);

/*
 * Read the file at repository-relative path as it is in commit sha,
 * appending its bytes to out (whose max bounds the size: ML_ETOOBIG).
 * ML_ENOTFOUND when the commit has no such file ("'x' does not exist in
 * commit abc1234").
 */
int ml_source_read(const struct ml_source *src, const char *sha,
		   const char *relpath, struct ml_buf *out);

/*
 * *dirty = true when the file at relpath differs between HEAD and the
 * index or the working tree (modified, staged, deleted or untracked).
 */
int ml_source_dirty(const struct ml_source *src, const char *relpath,
		    bool *dirty);

/* The commit's one-line subject and author time, for the ledger; subject
 * freed by caller. */
int ml_source_describe(const struct ml_source *src, const char *sha,
		       char **subject, int64_t *time);

#endif
