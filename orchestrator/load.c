/*
 * Reads the two input files for a command (see load.h): from git through
 * orchestrator/source at a commit, or from the working tree when
 * --worktree is given (for editors and pre-commit hooks). Both files are
 * parsed even when the first is broken so that one run reports every error.
 * Each file is at most ML_CONFIG_MAX_BYTES.
 */
#include "common/ml.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/load.h"
#include "orchestrator/config/config.h"
#include "orchestrator/source/source.h"

struct input {
	const char *path; /* as the user gave it, used in diagnostics */
	char *relpath;    /* repository-relative */
	struct ml_buf data;
	bool dirty;
};

static int read_worktree(struct input *in)
{
	return ml_buf_read_file(&in->data, in->path);
}

static int read_commit(struct ml_source *src, const char *sha,
		       struct input *in)
{
	int rc;

	rc = ml_source_relpath(&in->relpath, src, in->path);
	if (rc < 0)
		return rc;
	rc = ml_source_read(src, sha, in->relpath, &in->data);
	if (rc < 0)
		return rc;
	return ml_source_dirty(src, in->relpath, &in->dirty);
}

static int check_dirty(const struct input *in, size_t n, const char *sha,
		       const struct ml_ctx *ctx, bool refuse_dirty)
{
	size_t i;
	bool refuse = refuse_dirty && !ml_ctx_flag(ctx, OPT_ALLOW_DIRTY);

	for (i = 0; i < n; i++) {
		if (!in[i].dirty)
			continue;
		if (refuse)
			return ml_err_set(ML_EDIRTY,
					  "'%s' has uncommitted changes, which "
					  "would not be deployed: commit them, "
					  "or pass --allow-dirty to deploy "
					  "commit %.7s as it is",
					  in[i].path, sha);
		ml_warn("'%s' has uncommitted changes; using it as it is in "
			"commit %.7s",
			in[i].path, sha);
	}
	return 0;
}

/*
 * Parse both files (both, so every error is reported at once), check them
 * together and resolve; diagnostics go to stderr. The playbook's bytes are
 * taken from pbdata into the config. commit may be NULL.
 */
static int parse_resolve(struct ml_config **out, const char *pbname,
			 struct ml_buf *pbdata, const char *invname,
			 const char *invdata, size_t invlen,
			 const char *commit)
{
	struct ml_diags diags = { 0 };
	struct ml_playbook *pb = NULL;
	struct ml_inventory *inv = NULL;
	struct ml_config *cfg = NULL;
	int rc;

	ml_playbook_parse(&pb, pbname, pbdata->data ? pbdata->data : "",
			  pbdata->len, &diags);
	ml_inventory_parse(&inv, invname, invdata, invlen, &diags);
	if (pb && inv) {
		rc = ml_config_resolve(&cfg, pb, inv, &diags);
		pb = NULL;
		inv = NULL;
		if (rc < 0)
			cfg = NULL;
	}
	if (diags.n || !cfg) {
		ml_diags_print(&diags, stderr);
		rc = ml_err_set(ML_EINVALID,
				"%zu error%s in the desired state%s%.7s",
				diags.n, diags.n == 1 ? "" : "s",
				commit ? " at commit " : " in the working tree",
				commit ? commit : "");
		goto out;
	}
	if (commit)
		cfg->commit = ml_xstrdup(commit);
	cfg->playbook_text = ml_buf_detach(pbdata, &cfg->playbook_len);
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	ml_playbook_free(pb);
	ml_inventory_free(inv);
	ml_config_free(cfg);
	ml_diags_release(&diags);
	return rc;
}

/* The usual fix when a file is not in the commit. */
#define PLAYBOOK_HINT                                                      \
	"; write and commit it (playbooks/ in mlctl's sources has "        \
	"commented examples; 'mlctl explain' describes each key), or "     \
	"name another file with -f FILE"
#define INVENTORY_HINT                                                     \
	"; write and commit it (see inventory/ in mlctl's sources; "       \
	"'mlctl explain inventory' describes it), or name another file "   \
	"with -i FILE"

int ml_load_config(struct ml_config **out, const struct ml_ctx *ctx,
		   bool refuse_dirty)
{
	struct input in[2] = {
		{ ctx->playbook_path, NULL, ML_BUF_INIT(ML_CONFIG_MAX_BYTES),
		  false },
		{ ctx->inventory_path, NULL, ML_BUF_INIT(ML_CONFIG_MAX_BYTES),
		  false },
	};
	struct ml_source *src = NULL;
	char sha[ML_SHA_HEX] = "";
	bool worktree = ml_ctx_flag(ctx, OPT_WORKTREE);
	size_t i;
	int rc;

	*out = NULL;
	if (worktree && ctx->opt[OPT_COMMIT]) {
		rc = ml_err_set(ML_EUSAGE,
				"--worktree and --commit cannot be used "
				"together");
		goto out;
	}
	if (!worktree) {
		rc = ml_source_open(&src, ".");
		if (rc < 0)
			goto out;
		rc = ml_source_resolve(src, ctx->opt[OPT_COMMIT], sha);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < ML_ARRAY_SIZE(in); i++) {
		rc = worktree ? read_worktree(&in[i])
			      : read_commit(src, sha, &in[i]);
		if (rc == ML_ENOTFOUND)
			ml_err_hint(rc, i == 0 ? PLAYBOOK_HINT : INVENTORY_HINT);
		if (rc < 0)
			goto out;
	}
	if (!worktree) {
		rc = check_dirty(in, ML_ARRAY_SIZE(in), sha, ctx,
				 refuse_dirty);
		if (rc < 0)
			goto out;
	}

	rc = parse_resolve(out, in[0].path, &in[0].data, in[1].path,
			   in[1].data.data ? in[1].data.data : "",
			   in[1].data.len, worktree ? NULL : sha);
out:
	for (i = 0; i < ML_ARRAY_SIZE(in); i++) {
		free(in[i].relpath);
		ml_buf_release(&in[i].data);
	}
	ml_source_free(src);
	return rc;
}

int ml_load_config_with_playbook(struct ml_config **out,
				 const struct ml_ctx *ctx, const char *text,
				 size_t len, const char *commit)
{
	struct input inv = { ctx->inventory_path, NULL,
			     ML_BUF_INIT(ML_CONFIG_MAX_BYTES), false };
	struct ml_buf pb = ML_BUF_INIT(ML_CONFIG_MAX_BYTES);
	struct ml_source *src = NULL;
	char sha[ML_SHA_HEX] = "";
	int rc;

	*out = NULL;
	rc = ml_buf_add(&pb, text, len);
	if (rc < 0)
		goto out;
	rc = ml_source_open(&src, ".");
	if (rc < 0)
		goto out;
	rc = ml_source_resolve(src, ctx->opt[OPT_COMMIT], sha);
	if (rc < 0)
		goto out;
	rc = read_commit(src, sha, &inv);
	if (rc < 0)
		goto out;
	rc = parse_resolve(out, "recorded playbook", &pb, inv.path,
			   inv.data.data ? inv.data.data : "", inv.data.len,
			   commit);
out:
	free(inv.relpath);
	ml_buf_release(&inv.data);
	ml_buf_release(&pb);
	ml_source_free(src);
	return rc;
}
