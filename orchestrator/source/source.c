/*
 * Git as the source of the desired state (see source.h), over libgit2.
 *
 * Everything is read from the object database: a file "at a commit" is the
 * blob its tree names, so no checkout is needed and bare repositories work.
 * The working tree is only looked at to turn a path the user typed into a
 * repository-relative one and to tell whether that file has uncommitted
 * changes.
 *
 * Invariants:
 * - this is the only file that includes git2.h; libgit2 is initialised once
 *   per process through pthread_once and never shut down, so any thread may
 *   open a source at any time;
 * - src->workdir is the realpath of the working tree ending with '/', or
 *   NULL for a bare repository; relpath compares canonical paths with it;
 * - a struct ml_source is used by one thread at a time (libgit2 objects
 *   are not safe for concurrent use); open one per thread when needed;
 * - every libgit2 error is reported once, as "<what we tried>: <libgit2's
 *   message>", lowercase, with the subject quoted.
 *
 * Sizes: the files read here are playbooks and inventories (kilobytes);
 * the caller's buffer max bounds them and the blob size is checked from
 * the object header before the blob is inflated, so a huge file in
 * history costs nothing. Error messages fit the 1 KiB of common/err.c;
 * commit subjects quoted in them are cut to SUBJECT_MAX bytes.
 */
#include "common/ml.h"
#include "orchestrator/source/source.h"

#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHORT_SHA 7    /* hex digits of a sha in messages */
#define SUBJECT_MAX 60 /* bytes of a commit subject in messages */
#define GITMSG_MAX 512 /* bytes of a libgit2 message we keep */

struct ml_source {
	git_repository *repo;
	char *workdir; /* realpath + '/', NULL when bare */
	char *gitdir;  /* as libgit2 names it, without a trailing '/' */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libgit2(void)
{
	init_rc = git_libgit2_init();
}

static int ensure_init(void)
{
	if (pthread_once(&init_once, init_libgit2) != 0)
		return ml_err_set(ML_EFAIL, "cannot initialise libgit2");
	if (init_rc < 0)
		return ml_err_set(ML_EFAIL, "cannot initialise libgit2: %s",
				  git_error_last() ? git_error_last()->message
						   : "unknown error");
	return 0;
}

/*
 * libgit2's last message, made to read like ours: first letter lowercase
 * unless the word is an acronym ("SHA1"), no trailing period or newline.
 */
static const char *git_msg(char *out, size_t n)
{
	const git_error *e = git_error_last();
	size_t len;

	snprintf(out, n, "%s", e && e->message ? e->message : "unknown error");
	if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z'))
		out[0] = (char)(out[0] - 'A' + 'a');
	len = strlen(out);
	while (len && (out[len - 1] == '.' || out[len - 1] == '\n'))
		out[--len] = '\0';
	return out;
}

/* ml_err_set with ": <libgit2 message>" appended. */
ML_PRINTF(2, 3)
static int git_fail(int code, const char *fmt, ...)
{
	char what[512], msg[GITMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return ml_err_set(code, "%s: %s", what, git_msg(msg, sizeof(msg)));
}

/* "abc1234 (subject)" for messages about a commit. */
static void commit_label(char *out, size_t n, git_commit *commit)
{
	char sha[SHORT_SHA + 1];
	const char *subj = git_commit_summary(commit);
	size_t len;

	git_oid_tostr(sha, sizeof(sha), git_commit_id(commit));
	if (!subj || !*subj) {
		snprintf(out, n, "%s", sha);
		return;
	}
	len = strlen(subj);
	if (len <= SUBJECT_MAX) {
		snprintf(out, n, "%s (%s)", sha, subj);
		return;
	}
	/* cut on a UTF-8 character boundary */
	len = SUBJECT_MAX;
	while (len && ((unsigned char)subj[len] & 0xc0) == 0x80)
		len--;
	snprintf(out, n, "%s (%.*s...)", sha, (int)len, subj);
}

int ml_source_open(struct ml_source **out, const char *dir)
{
	struct ml_source *src = NULL;
	git_repository *repo = NULL;
	const char *wd;
	struct stat st;
	char *real = NULL;
	size_t len;
	int rc, err;

	*out = NULL;
	if (!dir || !*dir)
		return ml_err_set(ML_EUSAGE, "no directory given to look for "
					     "a git repository in");
	rc = ensure_init();
	if (rc < 0)
		return rc;
	if (stat(dir, &st) < 0)
		return ml_err_errno(ML_ESOURCE, errno, "cannot open '%s'", dir);
	if (!S_ISDIR(st.st_mode))
		return ml_err_set(ML_ESOURCE, "'%s' is not a directory", dir);

	err = git_repository_open_ext(&repo, dir, 0, NULL);
	if (err == GIT_ENOTFOUND) {
		rc = ml_err_set(ML_ESOURCE, "'%s' is not in a git repository: "
				"run mlctl in the repository that holds "
				"mlctl.yaml, or name it with -C DIR",
				dir);
		goto out;
	}
	if (err == GIT_EOWNER) {
		rc = git_fail(ML_ESOURCE,
			      "cannot open the git repository at '%s' (if you "
			      "trust it, run 'git config --global --add "
			      "safe.directory <path>')",
			      dir);
		goto out;
	}
	if (err < 0) {
		rc = git_fail(ML_ESOURCE,
			      "cannot open the git repository at '%s'", dir);
		goto out;
	}

	src = ml_xcalloc(1, sizeof(*src));
	src->gitdir = ml_xstrdup(git_repository_path(repo));
	len = strlen(src->gitdir);
	if (len > 1 && src->gitdir[len - 1] == '/')
		src->gitdir[len - 1] = '\0';
	wd = git_repository_workdir(repo);
	if (wd && !git_repository_is_bare(repo)) {
		real = realpath(wd, NULL);
		if (!real) {
			rc = ml_err_errno(ML_ESOURCE, errno,
					  "cannot resolve the working tree "
					  "'%s'",
					  wd);
			goto out;
		}
		src->workdir = ml_xasprintf("%s%s", real,
					    strcmp(real, "/") ? "/" : "");
	}
	src->repo = repo;
	repo = NULL;
	*out = src;
	src = NULL;
	rc = 0;
out:
	free(real);
	git_repository_free(repo);
	ml_source_free(src);
	return rc;
}

void ml_source_free(struct ml_source *src)
{
	if (!src)
		return;
	git_repository_free(src->repo);
	free(src->workdir);
	free(src->gitdir);
	free(src);
}

const char *ml_source_workdir(const struct ml_source *src)
{
	return src->workdir;
}

/*
 * No reference at all: libgit2's git_repository_is_empty also wants HEAD
 * to name the default branch as libgit2 sees init.defaultBranch, which
 * misses repositories made with "git -c init.defaultBranch=x init".
 */
static bool repo_has_no_refs(const struct ml_source *src)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	bool none;

	if (git_reference_iterator_new(&it, src->repo) < 0)
		return false;
	none = git_reference_next(&ref, it) == GIT_ITEROVER;
	git_reference_free(ref);
	git_reference_iterator_free(it);
	return none;
}

/* What a first-time user in a fresh repository has to do. */
#define NO_COMMIT_HINT                                                     \
	"commit mlctl.yaml and inventory.yaml first (mlctl reads them "    \
	"from a commit)"

/* Why rev, which revparse could not find, names nothing. */
static int resolve_notfound(const struct ml_source *src, const char *rev)
{
	git_reference *head = NULL;
	const char *branch;
	int rc;

	/*
	 * "HEAD", "@", "HEAD~1" in a repository whose current branch has
	 * no commit yet deserve a better word than "no commit".
	 */
	if ((strncmp(rev, "HEAD", 4) && strcmp(rev, "@")) ||
	    git_repository_head_unborn(src->repo) != 1)
		return ml_err_set(ML_ESOURCE,
				  "no commit '%s' in this repository", rev);
	if (repo_has_no_refs(src))
		return ml_err_set(ML_ESOURCE,
				  "'%s' names no commit yet (empty "
				  "repository): " NO_COMMIT_HINT,
				  rev);
	if (git_reference_lookup(&head, src->repo, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
		branch = git_reference_symbolic_target(head);
		if (!strncmp(branch, "refs/heads/", 11))
			branch += 11;
		rc = ml_err_set(ML_ESOURCE,
				"'%s' names no commit yet (branch '%s' has no "
				"commits)",
				rev, branch);
	} else {
		rc = ml_err_set(ML_ESOURCE, "'%s' names no commit yet", rev);
	}
	ml_err_hint(rc, ": " NO_COMMIT_HINT);
	git_reference_free(head);
	return rc;
}

/* rev named obj, which does not peel to a commit: say what it is. */
static int resolve_notcommit(const char *rev, git_object *obj)
{
	git_object *target = NULL;
	git_object_t type = git_object_type(obj);
	int rc;

	if (type == GIT_OBJECT_TAG &&
	    git_tag_peel(&target, (git_tag *)obj) == 0) {
		rc = ml_err_set(
			ML_ESOURCE, "'%s' is a tag of a %s, not of a commit",
			rev, git_object_type2string(git_object_type(target)));
		git_object_free(target);
		return rc;
	}
	return ml_err_set(ML_ESOURCE, "'%s' is a %s, not a commit", rev,
			  git_object_type2string(type));
}

int ml_source_resolve(const struct ml_source *src, const char *rev,
		      char sha[ML_SHA_HEX])
{
	git_object *obj = NULL, *commit = NULL;
	int rc, err;

	sha[0] = '\0';
	if (!rev)
		rev = "HEAD";
	if (!*rev)
		return ml_err_set(ML_ESOURCE, "empty revision given");
	/* never let a revision be taken for an option, here or by git */
	if (rev[0] == '-')
		return ml_err_set(ML_ESOURCE,
				  "'%s' is not a revision: it starts with '-'",
				  rev);

	err = git_revparse_single(&obj, src->repo, rev);
	switch (err) {
	case 0:
		break;
	case GIT_ENOTFOUND:
	case GIT_EUNBORNBRANCH:
		rc = resolve_notfound(src, rev);
		goto out;
	case GIT_EAMBIGUOUS:
		rc = git_fail(ML_ESOURCE, "'%s' is ambiguous", rev);
		goto out;
	case GIT_EINVALIDSPEC:
		rc = git_fail(ML_ESOURCE, "'%s' is not a valid revision", rev);
		goto out;
	default:
		rc = git_fail(ML_ESOURCE, "cannot resolve '%s'", rev);
		goto out;
	}

	err = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
	if (err == GIT_EPEEL || err == GIT_EINVALIDSPEC ||
	    err == GIT_ENOTFOUND) {
		rc = resolve_notcommit(rev, obj);
		goto out;
	}
	if (err < 0) {
		rc = git_fail(ML_ESOURCE, "cannot find the commit of '%s'",
			      rev);
		goto out;
	}
	git_oid_tostr(sha, ML_SHA_HEX, git_object_id(commit));
	rc = 0;
out:
	git_object_free(commit);
	git_object_free(obj);
	return rc;
}

/* Drop the last component of the absolute path in b ("" is the root). */
static void path_pop(struct ml_buf *b)
{
	char *slash = memrchr(b->data, '/', b->len);

	b->len = slash ? (size_t)(slash - b->data) : 0;
	b->data[b->len] = '\0';
}

/*
 * Canonicalise the absolute path abs into b, as "/a/b" ("" for the root):
 * every directory on the way is resolved with realpath, so ".." and
 * symbolic links mean what they mean to the kernel, until a directory does
 * not exist (a deleted one still names a file in history); from there on
 * the path is taken as written. The last component is never resolved: the
 * file itself may be missing, or be a symbolic link git tracks as such.
 */
static int path_canon(struct ml_buf *b, const char *abs)
{
	size_t real_len = 0; /* b->data[0..real_len) is canonical */
	const char *p = abs, *comp;
	char *real;
	size_t n;
	bool last;
	int rc;

	ml_buf_reset(b);
	rc = ml_buf_addstr(b, "");
	if (rc < 0)
		return rc;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		comp = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - comp);
		last = !*p;
		if (n == 1 && comp[0] == '.')
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			path_pop(b);
			if (b->len < real_len)
				real_len = b->len;
			continue;
		}
		rc = ml_buf_addch(b, '/');
		if (!rc)
			rc = ml_buf_add(b, comp, n);
		if (rc < 0)
			return rc;
		if (last || b->len - n - 1 != real_len)
			continue;
		real = realpath(b->data, NULL);
		if (!real) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			return ml_err_errno(ML_ESOURCE, errno,
					    "cannot resolve '%s'", b->data);
		}
		ml_buf_reset(b);
		rc = ml_buf_addstr(b, strcmp(real, "/") ? real : "");
		free(real);
		if (rc < 0)
			return rc;
		real_len = b->len;
	}
	return 0;
}

/*
 * A bare repository has no working tree: a relative path is taken as
 * relative to the repository's root and only tidied ("./a//b" is "a/b",
 * "a/../b" is "b"); a ".." that leads out of it is refused.
 */
static int relpath_bare(char **out, const struct ml_source *src,
			const char *path)
{
	struct ml_buf b = ML_BUF_INIT(PATH_MAX);
	const char *p = path, *comp;
	size_t n;
	int rc = 0;

	if (path[0] == '/') {
		rc = ml_err_set(ML_ESOURCE,
				"'%s' cannot be found in the bare repository "
				"at '%s': give a path relative to its root",
				path, src->gitdir);
		goto out;
	}
	rc = ml_buf_addstr(&b, "");
	while (!rc && *p) {
		while (*p == '/')
			p++;
		comp = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - comp);
		if (!n || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			if (!b.len) {
				rc = ml_err_set(
					ML_ESOURCE,
					"'%s' is outside the repository "
					"at '%s'",
					path, src->gitdir);
				goto out;
			}
			path_pop(&b);
			continue;
		}
		if (b.len)
			rc = ml_buf_addch(&b, '/');
		if (!rc)
			rc = ml_buf_add(&b, comp, n);
	}
	if (rc < 0)
		goto out;
	*out = ml_buf_detach(&b, NULL);
out:
	ml_buf_release(&b);
	return rc;
}

int ml_source_relpath(char **out, const struct ml_source *src, const char *path)
{
	struct ml_buf abs = ML_BUF_INIT(PATH_MAX),
		      canon = ML_BUF_INIT(PATH_MAX);
	size_t wdlen;
	char *cwd = NULL;
	const char *rel;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return ml_err_set(ML_EUSAGE, "empty path given");
	if (!src->workdir)
		return relpath_bare(out, src, path);

	if (path[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (!cwd) {
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot get the current directory");
			goto out;
		}
		rc = ml_buf_addf(&abs, "%s/", cwd);
		if (rc < 0)
			goto out;
	}
	rc = ml_buf_addstr(&abs, path);
	if (rc < 0)
		goto out;
	rc = path_canon(&canon, abs.data);
	if (rc < 0)
		goto out;
	rc = ml_buf_addch(&canon, '/'); /* so the root compares equal */
	if (rc < 0)
		goto out;

	wdlen = strlen(src->workdir);
	if (canon.len < wdlen || memcmp(canon.data, src->workdir, wdlen)) {
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is outside the repository at '%.*s'",
				path, (int)(wdlen > 1 ? wdlen - 1 : wdlen),
				src->workdir);
		goto out;
	}
	canon.data[--canon.len] = '\0';
	rel = canon.len > wdlen ? canon.data + wdlen : "";
	if (!strcmp(rel, ".git") || !strncmp(rel, ".git/", 5)) {
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is inside the repository's .git "
				"directory, not its working tree",
				path);
		goto out;
	}
	*out = ml_xstrdup(rel);
	rc = 0;
out:
	free(cwd);
	ml_buf_release(&abs);
	ml_buf_release(&canon);
	return rc;
}

/* Look up the commit named by a full (or unique short) hex sha. */
static int lookup_commit(git_commit **out, const struct ml_source *src,
			 const char *sha)
{
	size_t len = sha ? strlen(sha) : 0;
	git_oid oid;
	int err;

	*out = NULL;
	if (len < GIT_OID_MINPREFIXLEN || len > GIT_OID_HEXSZ ||
	    strspn(sha, "0123456789abcdefABCDEF") != len)
		return ml_err_set(ML_ESOURCE, "'%s' is not a commit sha",
				  sha ? sha : "");
	if (git_oid_fromstrn(&oid, sha, len) < 0)
		return git_fail(ML_ESOURCE, "'%s' is not a commit sha", sha);
	err = git_commit_lookup_prefix(out, src->repo, &oid, len);
	if (err == GIT_ENOTFOUND)
		return ml_err_set(ML_ENOTFOUND,
				  "no commit '%s' in this repository", sha);
	if (err == GIT_EAMBIGUOUS)
		return git_fail(ML_ESOURCE, "'%s' is ambiguous", sha);
	if (err < 0)
		return git_fail(ML_ESOURCE, "cannot read commit '%s'", sha);
	return 0;
}

int ml_source_read(const struct ml_source *src, const char *sha,
		   const char *relpath, struct ml_buf *out)
{
	char label[SHORT_SHA + SUBJECT_MAX + 16];
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_tree_entry *entry = NULL;
	git_blob *blob = NULL;
	git_odb *odb = NULL;
	git_object_t type;
	size_t size, max;
	int rc, err;

	if (!relpath || !*relpath || relpath[0] == '/')
		return ml_err_set(ML_EUSAGE,
				  "'%s' is not a path relative to the "
				  "repository's root",
				  relpath ? relpath : "");
	rc = lookup_commit(&commit, src, sha);
	if (rc < 0)
		return rc;
	commit_label(label, sizeof(label), commit);

	if (git_commit_tree(&tree, commit) < 0) {
		rc = git_fail(ML_ESOURCE, "cannot read the tree of commit %s",
			      label);
		goto out;
	}
	err = git_tree_entry_bypath(&entry, tree, relpath);
	if (err == GIT_ENOTFOUND) {
		rc = ml_err_set(ML_ENOTFOUND,
				"'%s' does not exist in commit %s", relpath,
				label);
		goto out;
	}
	if (err < 0) {
		rc = git_fail(ML_ESOURCE, "cannot find '%s' in commit %s",
			      relpath, label);
		goto out;
	}
	switch (git_tree_entry_filemode(entry)) {
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
		break;
	case GIT_FILEMODE_TREE:
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is a directory in commit %s, not a file",
				relpath, label);
		goto out;
	case GIT_FILEMODE_COMMIT:
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is a submodule in commit %s, not a file",
				relpath, label);
		goto out;
	case GIT_FILEMODE_LINK:
		/*
		 * Not followed: the dirty check looks at the link, not at
		 * its target, so reading the target would hide changes.
		 */
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is a symbolic link in commit %s: name "
				"the file it points to instead",
				relpath, label);
		goto out;
	default:
		rc = ml_err_set(ML_ESOURCE,
				"'%s' is not a regular file in commit %s",
				relpath, label);
		goto out;
	}

	/* the size from the object header, before inflating the blob */
	if (git_repository_odb(&odb, src->repo) < 0 ||
	    git_odb_read_header(&size, &type, odb, git_tree_entry_id(entry)) <
		    0) {
		rc = git_fail(ML_ESOURCE, "cannot read '%s' in commit %s",
			      relpath, label);
		goto out;
	}
	max = out->max ? out->max : ML_BUF_DEFAULT_MAX;
	if (size > max || out->len > max - size) {
		rc = ml_err_set(ML_ETOOBIG,
				"'%s' in commit %s is %zu bytes, more than "
				"the limit of %zu bytes",
				relpath, label, size, max - out->len);
		goto out;
	}
	if (git_blob_lookup(&blob, src->repo, git_tree_entry_id(entry)) < 0) {
		rc = git_fail(ML_ESOURCE, "cannot read '%s' in commit %s",
			      relpath, label);
		goto out;
	}
	if ((git_object_size_t)size != git_blob_rawsize(blob)) {
		rc = ml_err_set(ML_ESOURCE,
				"'%s' in commit %s is corrupt: its size "
				"changed while reading",
				relpath, label);
		goto out;
	}
	rc = ml_buf_add(out, git_blob_rawcontent(blob), size);
out:
	git_blob_free(blob);
	git_odb_free(odb);
	git_tree_entry_free(entry);
	git_tree_free(tree);
	git_commit_free(commit);
	return rc;
}

int ml_source_dirty(const struct ml_source *src, const char *relpath,
		    bool *dirty)
{
	unsigned int flags = 0;
	int err;

	*dirty = false;
	if (!relpath || !*relpath || relpath[0] == '/')
		return ml_err_set(ML_EUSAGE,
				  "'%s' is not a path relative to the "
				  "repository's root",
				  relpath ? relpath : "");
	if (!src->workdir)
		return 0; /* bare: nothing can be uncommitted */

	err = git_status_file(&flags, src->repo, relpath);
	if (err == GIT_ENOTFOUND)
		return 0; /* absent from HEAD, index and working tree */
	if (err < 0)
		return git_fail(ML_ESOURCE, "cannot get the status of '%s'",
				relpath);
	/*
	 * Any difference counts, including a file that is only untracked
	 * (the user edits something that was never committed) or that
	 * cannot be read. Ignored files do not: git hides them on purpose,
	 * and they cannot be in HEAD either.
	 */
	*dirty = (flags & ~(unsigned int)GIT_STATUS_IGNORED) != 0;
	return 0;
}

int ml_source_describe(const struct ml_source *src, const char *sha,
		       char **subject, int64_t *time)
{
	git_commit *commit = NULL;
	const git_signature *author;
	const char *summary;
	int rc;

	if (subject)
		*subject = NULL;
	if (time)
		*time = 0;
	rc = lookup_commit(&commit, src, sha);
	if (rc < 0)
		return rc;
	summary = git_commit_summary(commit);
	if (!summary) {
		rc = git_fail(ML_ESOURCE,
			      "cannot read the message of commit "
			      "'%s'",
			      sha);
		goto out;
	}
	author = git_commit_author(commit);
	if (subject)
		*subject = ml_xstrdup(summary);
	if (time)
		*time = author ? (int64_t)author->when.time
			       : (int64_t)git_commit_time(commit);
	rc = 0;
out:
	git_commit_free(commit);
	return rc;
}

/*
 * Export of a subtree as a tar stream (ml_source_export_tar). Two walks
 * over the tree: the first only checks (submodules, links leaving the
 * context) so that a refusal comes before any byte is written; the second
 * writes through libarchive, one entry at a time, with the blob of a file
 * released as soon as it is written.
 */
#include <archive.h>
#include <archive_entry.h>

#define EXPORT_CHUNK ((size_t)64 << 10)

struct export_ctx {
	const struct ml_source *src;
	const char *subdir; /* normalised, "" for the root */
	char label[SHORT_SHA + SUBJECT_MAX + 16];
	int64_t mtime;
	bool writing; /* second walk */
	struct archive *ar;
	struct archive_entry *ae;
	struct ml_buf path; /* scratch: the entry's name in the tar */
	const struct ml_export_filter *filter; /* NULL: every entry */
	int (*write)(void *ctx, const void *p, size_t n);
	void *wctx;
	int rc; /* first failure, message set */
};

static la_ssize_t export_write_cb(struct archive *a, void *data,
				  const void *p, size_t n)
{
	struct export_ctx *e = data;
	int rc;

	ML_UNUSED(a);
	/*
	 * After a failure, drop what libarchive still flushes (its
	 * end-of-archive blocks): a truncated stream must not end like a
	 * complete one.
	 */
	if (e->rc < 0)
		return (la_ssize_t)n;
	rc = e->write(e->wctx, p, n);
	if (rc < 0) {
		e->rc = rc;
		return -1;
	}
	return (la_ssize_t)n;
}

static int export_archive_fail(struct export_ctx *e, const char *what)
{
	if (e->rc < 0)
		return e->rc; /* our write callback failed: its message */
	e->rc = ml_err_set(ML_EFAIL, "cannot write the tar stream (%s): %s",
			   what, archive_error_string(e->ar)
					 ? archive_error_string(e->ar)
					 : "unknown error");
	return e->rc;
}

/*
 * True when a link at rel (relative to the context root) with target
 * stays inside the context, judging by the names only: the target is
 * read from the link's directory, and may not be absolute nor climb
 * above the root at any point.
 */
static bool link_stays_inside(const char *rel, const char *target, size_t tlen)
{
	const char *p = target, *end = target + tlen, *comp;
	long depth = 0;
	size_t n;

	if (!tlen || target[0] == '/')
		return false;
	for (comp = rel; *comp; comp++)
		if (*comp == '/')
			depth++;
	while (p < end) {
		comp = p;
		while (p < end && *p != '/')
			p++;
		n = (size_t)(p - comp);
		if (p < end)
			p++;
		if (!n || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			if (--depth < 0)
				return false;
			continue;
		}
		depth++;
	}
	return true;
}

/* The repository-relative name of rel, for messages. */
static const char *export_repo_path(struct export_ctx *e, struct ml_buf *b,
				    const char *rel)
{
	ml_buf_reset(b);
	if (*e->subdir)
		(void)ml_buf_addf(b, "%s/", e->subdir);
	(void)ml_buf_addstr(b, rel);
	return ml_buf_str(b);
}

static int export_blob(struct export_ctx *e, const git_tree_entry *te,
		       const char *rel, git_filemode_t mode)
{
	struct ml_buf shown = ML_BUF_INIT(PATH_MAX);
	git_blob *blob = NULL;
	const char *data;
	size_t size, off, n;
	char *target = NULL;
	int rc = 0;

	if (git_blob_lookup(&blob, e->src->repo, git_tree_entry_id(te)) < 0) {
		rc = git_fail(ML_ESOURCE, "cannot read '%s' in commit %s",
			      export_repo_path(e, &shown, rel), e->label);
		goto out;
	}
	data = git_blob_rawcontent(blob);
	size = (size_t)git_blob_rawsize(blob);
	if (mode == GIT_FILEMODE_LINK) {
		if (!link_stays_inside(rel, data, size) ||
		    memchr(data, '\0', size)) {
			rc = ml_err_set(ML_ESOURCE,
					"'%s' in commit %s is a symbolic link "
					"pointing outside the build context",
					export_repo_path(e, &shown, rel),
					e->label);
			goto out;
		}
		if (!e->writing)
			goto out;
		target = ml_xstrndup(data, size);
		archive_entry_set_filetype(e->ae, AE_IFLNK);
		archive_entry_set_perm(e->ae, 0777);
		archive_entry_set_symlink(e->ae, target);
		if (archive_write_header(e->ar, e->ae) != ARCHIVE_OK)
			rc = export_archive_fail(e, rel);
		goto out;
	}
	archive_entry_set_filetype(e->ae, AE_IFREG);
	archive_entry_set_perm(e->ae, mode == GIT_FILEMODE_BLOB_EXECUTABLE
					      ? 0755
					      : 0644);
	archive_entry_set_size(e->ae, (la_int64_t)size);
	if (archive_write_header(e->ar, e->ae) != ARCHIVE_OK) {
		rc = export_archive_fail(e, rel);
		goto out;
	}
	for (off = 0; off < size; off += n) {
		n = size - off < EXPORT_CHUNK ? size - off : EXPORT_CHUNK;
		if (archive_write_data(e->ar, data + off, n) != (la_ssize_t)n) {
			rc = export_archive_fail(e, rel);
			goto out;
		}
	}
out:
	free(target);
	git_blob_free(blob);
	ml_buf_release(&shown);
	return rc;
}

static int export_entry(const char *root, const git_tree_entry *te,
			void *payload)
{
	struct export_ctx *e = payload;
	struct ml_buf shown = ML_BUF_INIT(PATH_MAX);
	git_filemode_t mode = git_tree_entry_filemode(te);
	int rc;

	ml_buf_reset(&e->path);
	rc = ml_buf_addf(&e->path, "%s%s", root, git_tree_entry_name(te));
	if (rc < 0)
		goto out;
	if (e->filter) {
		switch (e->filter->judge(e->filter->ctx, e->path.data,
					 mode == GIT_FILEMODE_TREE)) {
		case ML_EXPORT_KEEP:
			break;
		case ML_EXPORT_OMIT:
			goto out; /* a tree's entries are walked still */
		case ML_EXPORT_PRUNE:
			ml_buf_release(&shown);
			return 1; /* libgit2 skips what is below it */
		}
	}
	if (e->writing) {
		archive_entry_clear(e->ae);
		archive_entry_set_pathname(e->ae, e->path.data);
		archive_entry_set_mtime(e->ae, (time_t)e->mtime, 0);
		archive_entry_set_uid(e->ae, 0);
		archive_entry_set_gid(e->ae, 0);
	}
	switch (mode) {
	case GIT_FILEMODE_TREE:
		if (!e->writing)
			break;
		archive_entry_set_filetype(e->ae, AE_IFDIR);
		archive_entry_set_perm(e->ae, 0755);
		if (archive_write_header(e->ar, e->ae) != ARCHIVE_OK)
			rc = export_archive_fail(e, e->path.data);
		break;
	case GIT_FILEMODE_COMMIT:
		rc = ml_err_set(ML_ESOURCE,
				"'%s' in commit %s is a submodule: a build "
				"context cannot hold one",
				export_repo_path(e, &shown, e->path.data),
				e->label);
		break;
	case GIT_FILEMODE_LINK:
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
		if (mode == GIT_FILEMODE_LINK || e->writing)
			rc = export_blob(e, te, e->path.data, mode);
		break;
	default:
		rc = ml_err_set(ML_ESOURCE,
				"'%s' in commit %s has an unknown file mode "
				"%06o",
				export_repo_path(e, &shown, e->path.data),
				e->label, (unsigned)mode);
		break;
	}
out:
	ml_buf_release(&shown);
	if (rc < 0) {
		e->rc = rc;
		return -1; /* stops the walk */
	}
	return 0;
}

/* subdir without "./", "//" or a trailing '/'; refuses ".." and "/x". */
static int export_subdir(struct ml_buf *out, const char *subdir)
{
	const char *p = subdir ? subdir : "", *comp;
	size_t n;
	int rc = ml_buf_addstr(out, "");

	if (p[0] == '/')
		return ml_err_set(ML_ESOURCE,
				  "build context '%s' is not a path relative "
				  "to the repository's root",
				  subdir);
	while (!rc && *p) {
		comp = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - comp);
		while (*p == '/')
			p++;
		if (!n || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.')
			return ml_err_set(ML_ESOURCE,
					  "build context '%s' climbs out with "
					  "'..': name a directory inside the "
					  "repository",
					  subdir);
		if (out->len)
			rc = ml_buf_addch(out, '/');
		if (!rc)
			rc = ml_buf_add(out, comp, n);
	}
	return rc;
}

int ml_source_export_tar(const struct ml_source *src, const char *sha,
			 const char *subdir,
			 const struct ml_export_filter *filter,
			 int (*write)(void *ctx, const void *p, size_t n),
			 void *ctx)
{
	struct ml_buf sub = ML_BUF_INIT(PATH_MAX);
	struct export_ctx e;
	git_commit *commit = NULL;
	git_tree *root = NULL, *tree = NULL;
	git_tree_entry *te = NULL;
	int rc, err;

	memset(&e, 0, sizeof(e));
	ml_buf_init(&e.path, PATH_MAX);
	rc = export_subdir(&sub, subdir);
	if (rc < 0)
		goto out;
	rc = lookup_commit(&commit, src, sha);
	if (rc < 0)
		goto out;
	commit_label(e.label, sizeof(e.label), commit);
	if (git_commit_tree(&root, commit) < 0) {
		rc = git_fail(ML_ESOURCE, "cannot read the tree of commit %s",
			      e.label);
		goto out;
	}
	if (sub.len) {
		err = git_tree_entry_bypath(&te, root, sub.data);
		if (err == GIT_ENOTFOUND) {
			rc = ml_err_set(ML_ENOTFOUND,
					"build context '%s' does not exist in "
					"commit %s",
					sub.data, e.label);
			goto out;
		}
		if (err < 0) {
			rc = git_fail(ML_ESOURCE,
				      "cannot find '%s' in commit %s",
				      sub.data, e.label);
			goto out;
		}
		if (git_tree_entry_type(te) != GIT_OBJECT_TREE) {
			rc = ml_err_set(ML_ESOURCE,
					"build context '%s' is not a "
					"directory in commit %s",
					sub.data, e.label);
			goto out;
		}
		if (git_tree_lookup(&tree, src->repo, git_tree_entry_id(te)) <
		    0) {
			rc = git_fail(ML_ESOURCE,
				      "cannot read '%s' in commit %s",
				      sub.data, e.label);
			goto out;
		}
	}

	e.src = src;
	e.subdir = sub.data;
	e.mtime = (int64_t)git_commit_time(commit);
	e.filter = filter;
	e.write = write;
	e.wctx = ctx;
	err = git_tree_walk(tree ? tree : root, GIT_TREEWALK_PRE,
			    export_entry, &e);
	if (e.rc < 0 || err < 0) {
		rc = e.rc < 0 ? e.rc
			      : git_fail(ML_ESOURCE,
					 "cannot walk the tree of commit %s",
					 e.label);
		goto out;
	}

	e.writing = true;
	e.ar = archive_write_new();
	e.ae = archive_entry_new();
	if (!e.ar || !e.ae) {
		rc = ml_err_set(ML_EFAIL, "out of memory");
		goto out;
	}
	if (archive_write_set_format_pax_restricted(e.ar) != ARCHIVE_OK ||
	    archive_write_add_filter_none(e.ar) != ARCHIVE_OK ||
	    archive_write_open(e.ar, &e, NULL, export_write_cb, NULL) !=
		    ARCHIVE_OK) {
		rc = export_archive_fail(&e, "start");
		goto out;
	}
	err = git_tree_walk(tree ? tree : root, GIT_TREEWALK_PRE,
			    export_entry, &e);
	if (e.rc < 0 || err < 0) {
		rc = e.rc < 0 ? e.rc
			      : git_fail(ML_ESOURCE,
					 "cannot walk the tree of commit %s",
					 e.label);
		goto out;
	}
	if (archive_write_close(e.ar) != ARCHIVE_OK) {
		rc = export_archive_fail(&e, "end");
		goto out;
	}
	rc = 0;
out:
	if (e.ar)
		archive_write_free(e.ar); /* closes it if still open */
	archive_entry_free(e.ae);
	git_tree_entry_free(te);
	git_tree_free(tree);
	git_tree_free(root);
	git_commit_free(commit);
	ml_buf_release(&e.path);
	ml_buf_release(&sub);
	return rc;
}
