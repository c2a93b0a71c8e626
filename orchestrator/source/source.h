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
 * Open the repository containing dir (searching upwards like git does, not
 * across file systems; GIT_DIR and friends are not consulted). Bare
 * repositories are fine. ML_ESOURCE with "'DIR' is not in a git
 * repository" when there is none, or when dir is missing or not a
 * directory. Freed with ml_source_free(). A source is used by one thread at
 * a time; threads may each open their own.
 */
int ml_source_open(struct ml_source **out, const char *dir);
void ml_source_free(struct ml_source *src);

/* The working directory of the repository (absolute, ends with '/'), or
 * NULL for a bare repository. Borrowed. */
const char *ml_source_workdir(const struct ml_source *src);

/*
 * Resolve rev (full or short sha, tag, branch, any git revision expression;
 * NULL means HEAD) to the full sha of a commit; annotated tags are peeled.
 * ML_ESOURCE when it names nothing, is ambiguous, is not a commit, starts
 * with '-' or HEAD has no commit yet; the message says which. sha is ""
 * on failure.
 */
int ml_source_resolve(const struct ml_source *src, const char *rev,
		      char sha[ML_SHA_HEX]);

/*
 * Turn path (absolute, or relative to the current directory) into a path
 * relative to the repository's root, as git names it ("dir/mlctl.yaml";
 * "" for the root itself). Directories on the way are resolved like the
 * kernel does (symbolic links, ".."), as far as they exist; the last
 * component is never followed, and the file need not exist. In a bare
 * repository, path is taken as relative to the repository's root and
 * only tidied. ML_ESOURCE when it lies outside the repository or inside
 * its .git directory. Result freed by caller.
 */
int ml_source_relpath(char **out, const struct ml_source *src,
		      const char *path);

/*
 * Read the file at repository-relative path as it is in commit sha (a full
 * sha, or a unique prefix), appending its bytes to out, whose max bounds
 * out->len after the read: ML_ETOOBIG, checked before the blob is loaded,
 * with out unchanged. No checkout; works in bare repositories.
 * ML_ENOTFOUND when the commit has no such file ("'x' does not exist in
 * commit abc1234 (subject)") or there is no such commit; ML_ESOURCE when
 * the path is a directory, a submodule or a symbolic link (not followed:
 * name its target), or sha is not hex.
 */
int ml_source_read(const struct ml_source *src, const char *sha,
		   const char *relpath, struct ml_buf *out);

/*
 * *dirty = true when the file at relpath differs between HEAD and the
 * index or the working tree (modified, staged, deleted or untracked).
 * false when it is the same everywhere, absent everywhere, or ignored by
 * .gitignore and not tracked; always false in a bare repository.
 */
int ml_source_dirty(const struct ml_source *src, const char *relpath,
		    bool *dirty);

/* The commit's one-line subject (its first paragraph, as git log's %s) and
 * author time in seconds since the epoch, for the ledger; subject freed by
 * caller. Either out-param may be NULL. */
int ml_source_describe(const struct ml_source *src, const char *sha,
		       char **subject, int64_t *time);

/*
 * Write the tree at subdir (repository-relative; "" or "." is the root) of
 * commit sha as a tar stream, as a Docker build context: names relative to
 * subdir, regular files with mode 0644 or 0755 as git records them,
 * directories 0755, symbolic links as links, owner 0, every time the
 * commit's. Each piece of the stream goes to write(ctx, p, n), which
 * returns 0 or a negative ML_E* code (message set) that stops the export
 * and is returned. The whole tree is checked before the first byte is
 * written, so the refusals below never leave a partial stream:
 * ML_ESOURCE for a submodule ("'a/b' in commit X is a submodule: a build
 * context cannot hold one"), for a symbolic link whose target is absolute
 * or leaves subdir ("'a/l' in commit X is a symbolic link pointing outside
 * the build context"), and for a subdir that is a file or climbs with
 * ".."; ML_ENOTFOUND when subdir or the commit does not exist.
 *
 * filter (may be NULL: every entry) is asked about each entry, by its
 * name in the stream, before either walk looks at it: an entry it omits
 * is neither checked nor written, and below a directory it prunes
 * nothing is looked at (a .dockerignore, orchestrator/image/ignore.h).
 *
 * Memory: libgit2 inflates one file at a time, whole, so the largest file
 * in the context bounds it (keep model weights out of git, or in LFS).
 */
enum ml_export_verdict {
	ML_EXPORT_KEEP,
	ML_EXPORT_OMIT,	 /* not in the stream; a directory's entries are
			  * still asked about */
	ML_EXPORT_PRUNE, /* not in the stream, nor anything below it */
};

struct ml_export_filter {
	enum ml_export_verdict (*judge)(void *ctx, const char *name,
					bool is_dir);
	void *ctx;
};

int ml_source_export_tar(const struct ml_source *src, const char *sha,
			 const char *subdir,
			 const struct ml_export_filter *filter,
			 int (*write)(void *ctx, const void *p, size_t n),
			 void *ctx);

#endif
