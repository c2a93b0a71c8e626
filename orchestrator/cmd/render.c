/*
 * mlctl render k8s: the desired state at a commit as Kubernetes manifests
 * (orchestrator/render does the work; this file reads options and writes
 * files). Contacts no host and no cluster.
 *
 * Output: one YAML stream on stdout (or -o -), or with -o DIR one file per
 * object, DIR/<kind>.yaml, each written to a temporary file and renamed,
 * so a reader never sees half a manifest; files of our kinds that an
 * earlier render wrote there and this one does not (deployment.yaml after
 * --rollouts) are removed, since `kubectl apply -f DIR` would apply them.
 * Every file starts with a "# mlctl render k8s" comment that says so.
 *
 * The image: when --image-digest is not given, the local Docker is asked
 * (GET /images/<name>/json, nothing else) for the digest it recorded when
 * the image was pushed to the repository the manifests name; found, the
 * image is pinned to it. Docker being absent only means "by tag".
 *
 * Secrets: the manifests name the Secret only. Its values are read (from
 * --secrets, .mlctl/secrets or the environment, as deploy reads them) only
 * with --secrets-file FILE, and written only to FILE, mode 0600, never to
 * stdout or DIR. An existing FILE is replaced only when it is a Secret
 * manifest this command wrote, so a secrets file given by mistake is never
 * overwritten.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/image.h"
#include "orchestrator/render/render.h"
#include "orchestrator/secrets.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "mlctl render k8s"
#define SECRET_HEADER HEADER ": Secret, mode 600, never commit it"
#define OUT_MAX ((size_t)16 << 20)

extern const struct ml_option ml_opt_secrets;

static const struct ml_option opt_namespace = {
	OPT_NAMESPACE, "namespace", 'n', "NS",
	"put every object in namespace NS (default: kubectl's current one)"};
static const struct ml_option opt_registry = {
	OPT_IMAGE_REGISTRY, "image-registry", 0, "REG",
	"name the image under registry REG (e.g. registry.example.com/team), "
	"where you pushed it"};
static const struct ml_option opt_digest = {
	OPT_IMAGE_DIGEST, "image-digest", 0, "DIGEST",
	"pin the image to the manifest digest the registry gave on push "
	"(sha256:...)"};
static const struct ml_option opt_output = {
	OPT_OUTPUT, "output", 'o', "DIR|-",
	"write one file per object into DIR (default -: one stream on stdout)"};
static const struct ml_option opt_secrets_file = {
	OPT_SECRETS_FILE, "secrets-file", 0, "FILE",
	"also write the Secret, with the values, to FILE (mode 600)"};
static const struct ml_option opt_rollouts = {
	OPT_ROLLOUTS, "rollouts", 0, NULL,
	"render a canary playbook as an Argo Rollouts Rollout"};
static const struct ml_option opt_read_only = {
	OPT_READ_ONLY_ROOT, "read-only-root", 0, NULL,
	"make the container's root filesystem read-only (/tmp stays writable)"};

static const struct ml_option *const options[] = {
	&ml_opt_commit,
	&opt_namespace,
	&opt_registry,
	&opt_digest,
	&opt_output,
	&opt_rollouts,
	&opt_read_only,
	&opt_secrets_file,
	&ml_opt_secrets,
	&ml_opt_local_docker,
	NULL,
};

/* The kinds we write, as file names in DIR. */
static const char *const kinds[] = {"ConfigMap", "Deployment", "Rollout",
				    "Service", "PodDisruptionBudget"};

static char *file_for(const char *dir, const char *kind)
{
	char *p = ml_xasprintf("%s/%s.yaml", dir, kind), *c;

	for (c = p + strlen(dir); *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return p;
}

/* Write data to path through a temporary file in the same directory,
 * created with mode, then renamed over path. */
static int write_atomic(const char *path, const struct ml_buf *data,
			mode_t mode)
{
	char *tmp = ml_xasprintf("%s.tmp.%ld", path, (long)getpid());
	size_t off = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'", tmp);
		goto out;
	}
	/* the umask must not widen or narrow what we asked for */
	if (fchmod(fd, mode) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot chmod '%s'", tmp);
	while (rc == 0 && off < data->len) {
		n = write(fd, data->data + off, data->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'",
					  tmp);
		else
			off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'", tmp);
	if (close(fd) < 0 && rc == 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'", tmp);
	if (rc < 0)
		unlink(tmp);
out:
	free(tmp);
	return rc;
}

/* True when path is a regular file starting with "# " header. */
static bool written_by_us(const char *path, const char *header)
{
	char buf[128];
	size_t want = strlen(header) + 2;
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && want < sizeof(buf)
		    ? read(fd, buf, want)
		    : -1;
	close(fd);
	return n == (ssize_t)want && buf[0] == '#' && buf[1] == ' ' &&
	       !memcmp(buf + 2, header, want - 2);
}

/* Append doc to b as YAML, and check that it reads back as doc. */
static int emit(struct ml_buf *b, const json_t *doc)
{
	size_t mark = b->len;
	int rc = ml_render_yaml(b, doc);

	if (rc == 0)
		rc = ml_render_yaml_verify(b->data + mark, b->len - mark, doc);
	return rc;
}

static int header(struct ml_buf *b, const struct ml_config *cfg,
		  const char *what)
{
	char *text = ml_xasprintf("%s: %s of '%s' at %s%.12s; render again "
				  "rather than edit",
				  HEADER, what, cfg->playbook->app,
				  cfg->commit ? "commit " : "the working tree",
				  cfg->commit ? cfg->commit : "");
	int rc = ml_render_yaml_comment(b, text);

	free(text);
	return rc;
}

static int write_stream(const json_t *docs, const struct ml_config *cfg)
{
	struct ml_buf b = ML_BUF_INIT(OUT_MAX);
	const json_t *d;
	size_t i;
	int rc;

	rc = header(&b, cfg, "manifests");
	json_array_foreach(docs, i, d) {
		if (rc == 0)
			rc = emit(&b, d);
	}
	if (rc == 0 &&
	    (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0))
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write the output");
	ml_buf_release(&b);
	return rc;
}

static bool rendered(const json_t *docs, const char *kind)
{
	const json_t *d;
	size_t i;

	json_array_foreach(docs, i, d) {
		if (!strcmp(json_string_value(json_object_get(d, "kind")),
			    kind))
			return true;
	}
	return false;
}

static int write_dir(const char *dir, const json_t *docs,
		     const struct ml_config *cfg)
{
	struct ml_buf b = ML_BUF_INIT(OUT_MAX);
	const json_t *d;
	char *path;
	size_t i;
	int rc = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return ml_err_errno(ML_EFAIL, errno, "cannot make '%s'", dir);
	json_array_foreach(docs, i, d) {
		const char *kind =
			json_string_value(json_object_get(d, "kind"));
		char what[64];

		ml_buf_reset(&b);
		snprintf(what, sizeof(what), "%s", kind);
		rc = header(&b, cfg, what);
		if (rc == 0)
			rc = emit(&b, d);
		path = file_for(dir, kind);
		if (rc == 0)
			rc = write_atomic(path, &b, 0644);
		free(path);
		if (rc < 0)
			goto out;
	}
	/* a stale object of ours would be applied with the new ones */
	for (i = 0; i < ML_ARRAY_SIZE(kinds); i++) {
		if (rendered(docs, kinds[i]))
			continue;
		path = file_for(dir, kinds[i]);
		if (written_by_us(path, HEADER) && unlink(path) < 0)
			rc = ml_err_errno(ML_EFAIL, errno,
					  "cannot remove the stale '%s'", path);
		free(path);
		if (rc < 0)
			goto out;
	}
out:
	ml_buf_release(&b);
	return rc;
}

static int write_secret(const char *file, const struct ml_ctx *ctx,
			const struct ml_render_opts *o)
{
	const struct ml_config *cfg = ctx->config;
	struct ml_buf b = ML_BUF_INIT(OUT_MAX);
	json_t *values = NULL, *secret = NULL;
	struct stat st;
	int rc;

	if (lstat(file, &st) == 0 && !written_by_us(file, SECRET_HEADER))
		return ml_err_set(ML_EUSAGE,
				  "'%s' exists and is not a Secret manifest "
				  "written by mlctl render k8s: remove it or "
				  "name another file (secret values are read "
				  "with --secrets)",
				  file);
	rc = ml_secrets_load(&values, cfg->playbook, ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		goto out;
	secret = ml_render_k8s_secret(cfg, o, values);
	rc = ml_render_yaml_comment(&b, SECRET_HEADER);
	if (rc == 0)
		rc = header(&b, cfg, "Secret");
	if (rc == 0)
		rc = emit(&b, secret);
	if (rc == 0)
		rc = write_atomic(file, &b, 0600);
	if (rc == 0)
		ml_info("wrote the Secret '%s%s' to '%s' (mode 600)",
			cfg->playbook->app, ML_RENDER_SECRET_SUFFIX, file);
out:
	/* the buffer held values: wipe it before it is freed */
	if (b.data)
		memset(b.data, 0, b.cap);
	ml_buf_release(&b);
	json_decref(secret);
	json_decref(values);
	return rc;
}

/*
 * The digest Docker recorded when the image was pushed to (or pulled from)
 * the repository the manifests name: its RepoDigests entry
 * "<repo>@sha256:...". NULL when Docker cannot be asked, does not know the
 * image or has no such entry; the manifests then name the image by tag,
 * with a warning. Asks for nothing else and changes nothing.
 */
static char *pushed_digest(const struct ml_ctx *ctx,
			   const struct ml_render_opts *o)
{
	struct ml_buf path = ML_BUF_INIT(4096);
	struct ml_docker *d = NULL;
	char *local = NULL, *repo = NULL, *found = NULL;
	json_t *img = NULL, *v;
	size_t i, n;

	if (ml_render_k8s_image(&local, &repo, ctx->config, o) < 0 ||
	    ml_docker_new(&d, ctx->opt[OPT_LOCAL_DOCKER]) < 0)
		goto out;
	ml_docker_set_timeout(d, 5000);
	if (ml_buf_addstr(&path, "/images/") < 0 ||
	    ml_docker_url_escape(&path, local) < 0 ||
	    ml_buf_addstr(&path, "/json") < 0)
		goto out;
	if (ml_docker_get(d, ml_buf_str(&path), &img) < 0) {
		ml_debug("no digest from docker for '%s': %s", local,
			 ml_err_msg());
		goto out;
	}
	n = strlen(repo);
	json_array_foreach(json_object_get(img, "RepoDigests"), i, v) {
		const char *s = json_string_value(v);

		if (s && !strncmp(s, repo, n) && s[n] == '@' &&
		    ml_digest_valid(s + n + 1)) {
			found = ml_xstrdup(s + n + 1);
			break;
		}
	}
out:
	ml_err_clear();
	json_decref(img);
	ml_docker_free(d);
	ml_buf_release(&path);
	free(local);
	free(repo);
	return found;
}

static int render_run(struct ml_ctx *ctx)
{
	struct ml_render_opts o = {
		.namespace = ctx->opt[OPT_NAMESPACE],
		.image_registry = ctx->opt[OPT_IMAGE_REGISTRY],
		.image_digest = ctx->opt[OPT_IMAGE_DIGEST],
		.rollouts = ml_ctx_flag(ctx, OPT_ROLLOUTS),
		.read_only_root = ml_ctx_flag(ctx, OPT_READ_ONLY_ROOT),
	};
	const char *dir = ctx->opt[OPT_OUTPUT];
	struct ml_render_warns w = {0};
	json_t *docs = NULL, *problems = json_array(), *p;
	char *digest = NULL;
	size_t i;
	int rc;

	if (ctx->argc != 1 || strcmp(ctx->argv[0], "k8s")) {
		rc = ml_err_set(ML_EUSAGE, "render takes one target: 'k8s' "
					   "(mlctl render k8s)");
		goto out;
	}
	if (ctx->opt[OPT_SECRETS] && !ctx->opt[OPT_SECRETS_FILE]) {
		rc = ml_err_set(ML_EUSAGE, "--secrets is read only to write "
					   "--secrets-file FILE; the manifests "
					   "name the Secret, never its values");
		goto out;
	}
	if (!o.image_digest)
		o.image_digest = digest = pushed_digest(ctx, &o);
	rc = ml_render_k8s(&docs, &w, ctx->config, &o);
	if (rc < 0)
		goto out;
	if (ml_render_check(problems, docs)) {
		json_array_foreach(problems, i, p) {
			ml_error("%s", json_string_value(p));
		}
		rc = ml_err_set(ML_EINVALID,
				"the manifests for '%s' would be refused by "
				"Kubernetes; nothing was written",
				ctx->config->playbook->app);
		goto out;
	}
	ml_render_warns_print(&w, stderr);
	if (!dir || !strcmp(dir, "-"))
		rc = write_stream(docs, ctx->config);
	else
		rc = write_dir(dir, docs, ctx->config);
	if (rc == 0 && ctx->opt[OPT_SECRETS_FILE])
		rc = write_secret(ctx->opt[OPT_SECRETS_FILE], ctx, &o);
out:
	ml_render_warns_release(&w);
	free(digest);
	json_decref(docs);
	json_decref(problems);
	return rc;
}

const struct ml_cmd ml_cmd_render = {
	.name = "render",
	.summary = "write Kubernetes manifests for the desired state at a "
		   "commit",
	.usage = "k8s [--commit REV] [--namespace NS] [--image-registry REG] "
		 "[--image-digest DIGEST] [-o DIR|-] [--rollouts] "
		 "[--read-only-root] [--secrets-file FILE [--secrets FILE]]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = render_run,
};
