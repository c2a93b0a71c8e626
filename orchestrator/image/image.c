/*
 * The playbook's image as an image in the controller's Docker (see
 * image.h): looked up by reference, or built from the deployed commit.
 *
 * A build sends the context directory of the commit, read from git's
 * object database (never the working tree), as a tar stream: a thread runs
 * ml_source_export_tar into one end of a socket pair while curl's read
 * callback feeds the other end to POST /build, so the context is never
 * held in memory or written to disk. Docker's answer is a stream of JSON
 * objects, one a line; we keep the first error, the image id and the last
 * BUILD_TAIL lines of output for the error message, and drop the rest.
 *
 * Invariants: a built image is tagged mlctl/<app>:<full sha> and labelled
 * with a hash of what it was built from (context, Dockerfile, build args),
 * so a second resolve of the same commit and spec reuses it and anything
 * else rebuilds. Nothing in the image names the commit (the container's
 * mlctl.commit label and the ledger do): a commit that leaves the files
 * the Dockerfile copies as they were builds from Docker's cache into the
 * very same image id, so the spec stays and no container restarts for a
 * playbook, docs or test change. Every digest taken from Docker is checked with
 * ml_digest_valid before it is used, since digests become file names in
 * the cache. Text from Docker is escaped before it enters a message.
 *
 * Sizes: an inspect answer is capped by the Docker client (16 MiB); a build
 * output line by BUILD_LINE_MAX (longer lines are dropped); an image has at
 * most ML_IMAGE_MAX_LAYERS layers.
 */
#include "common/ml.h"
#include "common/docker.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/ignore.h"
#include "orchestrator/image/image.h"
#include "orchestrator/source/source.h"

#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#define REF_MAX 512			 /* bytes of an image reference */
#define BUILD_LINE_MAX ((size_t)1 << 20) /* one line of build output */
#define BUILD_TAIL 4			 /* output lines quoted on failure */
#define BUILD_TAIL_LEN 160		 /* bytes of each */
#define BUILD_ERR_LEN 400		 /* bytes of Docker's error quoted */
#define DOCKERFILE_PEEK 8192		 /* a larger Dockerfile exists too */
#define LABEL_BUILD "mlctl.build"

void ml_image_free(struct ml_image *img)
{
	size_t i;

	if (!img)
		return;
	free(img->id);
	free(img->config_digest);
	for (i = 0; i < img->nlayers; i++)
		free(img->layers[i]);
	free(img->layers);
	free(img->layer_sizes);
	free(img->ref);
	free(img);
}

bool ml_digest_valid(const char *digest)
{
	size_t i;

	if (!digest || strncmp(digest, "sha256:", 7))
		return false;
	for (i = 7; i < ML_DIGEST_LEN; i++)
		if (!((digest[i] >= '0' && digest[i] <= '9') ||
		      (digest[i] >= 'a' && digest[i] <= 'f')))
			return false;
	return digest[ML_DIGEST_LEN] == '\0';
}

/* s, escaped and cut to max bytes, for a message. Borrowed from b. */
static const char *quote(struct ml_buf *b, const char *s, size_t max)
{
	size_t n = strlen(s);

	ml_buf_reset(b);
	if (ml_escape(b, s, n > max ? max : n) < 0)
		ml_buf_reset(b);
	if (n > max)
		(void)ml_buf_addstr(b, "...");
	return ml_buf_str(b);
}

/* GET /images/<ref>/json; *out is the answer, an object. */
static int inspect_json(json_t **out, struct ml_docker *d, const char *ref)
{
	struct ml_buf path = ML_BUF_INIT(4 * REF_MAX),
		      q = ML_BUF_INIT(4 * REF_MAX);
	const unsigned char *p;
	int rc;

	*out = NULL;
	if (!ref || !*ref)
		return ml_err_set(ML_EINVALID, "empty image reference");
	for (p = (const unsigned char *)ref; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			break;
	if (*p || p - (const unsigned char *)ref > REF_MAX) {
		rc = ml_err_set(ML_EINVALID,
				"'%s' is not a valid image reference",
				quote(&q, ref, 64));
		goto out;
	}
	rc = ml_buf_addstr(&path, "/images/");
	if (!rc)
		rc = ml_docker_url_escape(&path, ref);
	if (!rc)
		rc = ml_buf_addstr(&path, "/json");
	if (rc < 0)
		goto out;
	rc = ml_docker_get(d, path.data, out);
	if (rc == ML_ENOTFOUND) {
		rc = ml_err_set(ML_ENOTFOUND,
				"image '%s' is not in the local Docker (build "
				"or pull it first)",
				ref);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		rc = ml_err_set(ML_EFAIL,
				"docker: GET /images/%s/json: the answer is "
				"not an object",
				ref);
	}
out:
	ml_buf_release(&path);
	ml_buf_release(&q);
	return rc;
}

/* The image described by an inspect answer j, looked up as ref. */
static int image_from_json(struct ml_image **out, const json_t *j,
			   const char *ref)
{
	struct ml_buf q = ML_BUF_INIT(256);
	const char *id = json_string_value(json_object_get(j, "Id"));
	const json_t *rootfs = json_object_get(j, "RootFS");
	const json_t *layers = json_object_get(rootfs, "Layers");
	const char *type = json_string_value(json_object_get(rootfs, "Type"));
	struct ml_image *img = NULL;
	size_t i, n;
	int rc;

	*out = NULL;
	if (!ml_digest_valid(id)) {
		rc = ml_err_set(ML_EFAIL,
				"docker: image '%s' has no valid Id ('%s')",
				ref, quote(&q, id ? id : "", 80));
		goto out;
	}
	if ((type && strcmp(type, "layers")) ||
	    (layers && !json_is_array(layers))) {
		rc = ml_err_set(ML_EFAIL,
				"docker: image '%s' has a root file system "
				"of type '%s', not a list of layers",
				ref, quote(&q, type ? type : "", 40));
		goto out;
	}
	n = json_array_size(layers);
	if (n > ML_IMAGE_MAX_LAYERS) {
		rc = ml_err_set(ML_ETOOBIG,
				"image '%s' has %zu layers, more than the "
				"limit of %d",
				ref, n, ML_IMAGE_MAX_LAYERS);
		goto out;
	}
	img = ml_xcalloc(1, sizeof(*img));
	img->id = ml_xstrdup(id);
	img->config_digest = ml_xstrdup(id);
	img->ref = ml_xstrdup(ref);
	img->layers = ml_xcalloc(n ? n : 1, sizeof(*img->layers));
	img->layer_sizes = ml_xcalloc(n ? n : 1, sizeof(*img->layer_sizes));
	for (i = 0; i < n; i++) {
		const char *l = json_string_value(json_array_get(layers, i));

		if (!ml_digest_valid(l)) {
			rc = ml_err_set(ML_EFAIL,
					"docker: layer %zu of image '%s' has "
					"no valid digest ('%s')",
					i + 1, ref, quote(&q, l ? l : "", 80));
			goto out;
		}
		img->layers[i] = ml_xstrdup(l);
		img->nlayers++;
	}
	*out = img;
	img = NULL;
	rc = 0;
out:
	ml_image_free(img);
	ml_buf_release(&q);
	return rc;
}

int ml_image_inspect(struct ml_image **out, struct ml_docker *d,
		     const char *ref)
{
	json_t *j = NULL;
	int rc;

	*out = NULL;
	rc = inspect_json(&j, d, ref);
	if (rc < 0)
		return rc;
	rc = image_from_json(out, j, ref);
	json_decref(j);
	return rc;
}

/* ---- pump: a thread on one end of a socket pair ------------------------ */

static void *pump_main(void *arg)
{
	struct ml_pump *p = arg;

	p->rc = p->fn(p->arg, p->fd);
	if (p->rc < 0)
		snprintf(p->msg, sizeof(p->msg), "%s", ml_err_msg());
	close(p->fd);
	p->fd = -1;
	return NULL;
}

int ml_pump_start(struct ml_pump *p, int *fd_out, int (*fn)(void *arg, int fd),
		  void *arg)
{
	int sv[2], err;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	*fd_out = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot make a socket pair");
	p->fn = fn;
	p->arg = arg;
	p->fd = sv[1];
	err = pthread_create(&p->thread, NULL, pump_main, p);
	if (err) {
		close(sv[0]);
		close(sv[1]);
		p->fd = -1;
		return ml_err_errno(ML_EFAIL, err, "cannot start a thread");
	}
	p->started = true;
	*fd_out = sv[0];
	return 0;
}

int ml_pump_finish(struct ml_pump *p, int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	if (!p->started)
		return 0;
	if (!p->joined) {
		pthread_join(p->thread, NULL);
		p->joined = true;
	}
	if (p->rc < 0)
		return ml_err_set(p->rc, "%s", p->msg);
	return 0;
}

int ml_pump_write(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ml_err_errno(ML_EFAIL, errno,
					    "cannot pass on the stream");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- build ------------------------------------------------------------- */

struct export_job {
	struct ml_source *src;
	const char *commit;
	const char *context;
	const struct ml_export_filter *filter; /* NULL: no .dockerignore */
};

static int export_write(void *ctx, const void *p, size_t n)
{
	int fd = *(int *)ctx;

	return ml_pump_write(fd, p, n);
}

static int export_main(void *arg, int fd)
{
	struct export_job *j = arg;

	return ml_source_export_tar(j->src, j->commit, j->context, j->filter,
				    export_write, &fd);
}

struct build_ctx {
	struct ml_pump pump;
	int fd;		    /* our end: the context tar */
	struct ml_lines lines; /* the build output, cut into lines */
	char *tail[BUILD_TAIL];
	size_t ntail; /* lines ever added; tail is a ring */
	char *error;  /* Docker's first error */
};

static ssize_t build_read(void *ctx, void *buf, size_t n)
{
	struct build_ctx *b = ctx;
	ssize_t r;
	int rc;

	do
		r = read(b->fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot read the build context stream");
	if (r == 0) {
		/*
		 * The exporter closed its end: it is done. Wait for it, so
		 * that a failed export aborts the request instead of ending
		 * the body as if the context were complete.
		 */
		rc = ml_pump_finish(&b->pump, &b->fd);
		if (rc < 0)
			return rc;
	}
	return r;
}

static void tail_add(struct build_ctx *b, const char *s, size_t n)
{
	char **slot = &b->tail[b->ntail % BUILD_TAIL];

	free(*slot);
	*slot = ml_xstrndup(s, n > BUILD_TAIL_LEN ? BUILD_TAIL_LEN : n);
	b->ntail++;
}

/* One "stream" text: keep its non-blank lines, log them at debug level. */
static void build_stream_text(struct build_ctx *b, const char *s)
{
	struct ml_buf esc = ML_BUF_INIT(4 * BUILD_TAIL_LEN + 16);
	const char *end;
	size_t n;

	while (*s) {
		end = strchr(s, '\n');
		n = end ? (size_t)(end - s) : strlen(s);
		while (n && (s[n - 1] == '\r' || s[n - 1] == ' '))
			n--;
		if (n) {
			tail_add(b, s, n);
			if (ml_log_level() >= ML_LOG_DEBUG)
				ml_debug("build: %s",
					 quote(&esc,
					       b->tail[(b->ntail - 1) %
						       BUILD_TAIL],
					       BUILD_TAIL_LEN));
		}
		s += n;
		while (*s == '\r' || *s == ' ' || *s == '\n')
			s++;
	}
	ml_buf_release(&esc);
}

static void build_line(struct build_ctx *b, const char *s, size_t n)
{
	json_t *j = json_loadb(s, n, 0, NULL);
	const char *text;

	if (!json_is_object(j))
		goto out;
	text = json_string_value(json_object_get(j, "stream"));
	if (text)
		build_stream_text(b, text);
	text = json_string_value(json_object_get(j, "error"));
	if (!text)
		text = json_string_value(json_object_get(
			json_object_get(j, "errorDetail"), "message"));
	if (text && !b->error)
		b->error = ml_xstrdup(*text ? text : "unknown error");
out:
	json_decref(j);
}

void ml_lines_feed(struct ml_lines *l, const void *buf, size_t n)
{
	const char *p = buf, *nl;
	size_t k;

	while (n) {
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) : n;
		if (!l->skipping && ml_buf_add(&l->line, p, k) < 0) {
			l->skipping = true;
			ml_buf_reset(&l->line);
		}
		if (nl) {
			if (!l->skipping && l->line.len)
				l->on_line(l->ctx, l->line.data, l->line.len);
			ml_buf_reset(&l->line);
			l->skipping = false;
			k++;
		}
		p += k;
		n -= k;
	}
}

void ml_lines_flush(struct ml_lines *l)
{
	if (l->line.len && !l->skipping)
		l->on_line(l->ctx, l->line.data, l->line.len);
	ml_buf_reset(&l->line);
	l->skipping = false;
}

static void build_line_cb(void *ctx, const char *s, size_t n)
{
	build_line(ctx, s, n);
}

static int build_write(void *ctx, const void *buf, size_t n)
{
	struct build_ctx *b = ctx;

	ml_lines_feed(&b->lines, buf, n);
	return 0;
}

/* The failure message: Docker's error and the last lines of output. */
static int build_failed(struct build_ctx *b, const char *tag)
{
	struct ml_buf msg = ML_BUF_INIT(8192), q = ML_BUF_INIT(4096);
	size_t i, first;

	(void)ml_buf_addf(&msg, "docker could not build '%s': %s", tag,
			  quote(&q, b->error, BUILD_ERR_LEN));
	if (b->ntail) {
		(void)ml_buf_addstr(&msg, "\nlast build output:");
		first = b->ntail > BUILD_TAIL ? b->ntail - BUILD_TAIL : 0;
		for (i = first; i < b->ntail; i++)
			(void)ml_buf_addf(&msg, "\n  %s",
					  quote(&q, b->tail[i % BUILD_TAIL],
						BUILD_TAIL_LEN));
	}
	ml_err_set(ML_EFAIL, "%s", ml_buf_str(&msg));
	ml_buf_release(&msg);
	ml_buf_release(&q);
	return ML_EFAIL;
}

/* Hex digest of what a build depends on besides the commit. */
static void build_hash(const struct ml_image_spec *spec,
		       char hex[ML_SHA256_HEX])
{
	struct ml_sha256 *h = ml_sha256_new();
	size_t i;

	/* 2: the context without what its .dockerignore names */
	ml_sha256_update(h, "mlctl-build-2", 14);
	ml_sha256_update(h, spec->context, strlen(spec->context) + 1);
	ml_sha256_update(h, spec->dockerfile, strlen(spec->dockerfile) + 1);
	for (i = 0; i < spec->build_args.n; i++) {
		const struct ml_kv *kv = &spec->build_args.v[i];

		ml_sha256_update(h, kv->key, strlen(kv->key) + 1);
		ml_sha256_update(h, kv->value, strlen(kv->value) + 1);
	}
	ml_sha256_final_hex(h, hex);
	ml_sha256_free(h);
}

/* [a-z0-9][a-z0-9-]*: the app rule of the playbook, and a valid repo name */
static bool valid_app(const char *s)
{
	size_t i;

	if (!s || !*s || *s == '-')
		return false;
	for (i = 0; s[i]; i++)
		if (i >= 63 || !((s[i] >= 'a' && s[i] <= 'z') ||
				 (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool valid_commit(const char *s)
{
	return s && strlen(s) == ML_SHA_HEX - 1 &&
	       strspn(s, "0123456789abcdef") == ML_SHA_HEX - 1;
}

/* "context/dockerfile" as a repository path, "." parts dropped. */
static int dockerfile_path(struct ml_buf *out, const char *context,
			   const char *dockerfile)
{
	const char *parts[2] = {context, dockerfile}, *p, *comp;
	size_t i, n;
	int rc = ml_buf_addstr(out, "");

	for (i = 0; i < 2 && !rc; i++) {
		for (p = parts[i]; *p && !rc;) {
			comp = p;
			p += strcspn(p, "/");
			n = (size_t)(p - comp);
			while (*p == '/')
				p++;
			if (!n || (n == 1 && comp[0] == '.'))
				continue;
			if (out->len)
				rc = ml_buf_addch(out, '/');
			if (!rc)
				rc = ml_buf_add(out, comp, n);
		}
	}
	return rc;
}

/* spec with the defaults of a build: context ".", Dockerfile "Dockerfile". */
static struct ml_image_spec spec_defaults(const struct ml_image_spec *spec)
{
	static char dot[] = ".", dockerfile[] = "Dockerfile";
	struct ml_image_spec def = *spec;

	if (!def.context || !*def.context)
		def.context = dot;
	if (!def.dockerfile || !*def.dockerfile)
		def.dockerfile = dockerfile;
	return def;
}

/*
 * The context's .dockerignore in the commit, if it has one (*out NULL
 * otherwise): what docker build would leave out of the context, mlctl
 * leaves out too, the Dockerfile and the file itself always sent.
 */
static int read_ignore(struct ml_ignore **out, struct ml_source *src,
		       const char *commit, const struct ml_image_spec *spec)
{
	struct ml_buf path = ML_BUF_INIT(PATH_MAX), df = ML_BUF_INIT(PATH_MAX),
		      text = ML_BUF_INIT(ML_IGNORE_MAX_BYTES), name =
							   ML_BUF_INIT(1024);
	const char *keep[3] = { NULL, ".dockerignore", NULL };
	int rc;

	*out = NULL;
	rc = dockerfile_path(&path, spec->context, ".dockerignore");
	if (!rc)
		rc = dockerfile_path(&df, ".", spec->dockerfile);
	if (rc < 0)
		goto out;
	(void)ml_buf_addf(&name, "'%s' in commit %.7s", path.data, commit);
	rc = ml_source_read(src, commit, path.data, &text);
	if (rc == ML_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc == ML_ETOOBIG)
		rc = ml_err_set(ML_EINVALID,
				"%s is more than the %zu bytes mlctl reads",
				name.data, ML_IGNORE_MAX_BYTES);
	if (rc < 0)
		goto out;
	keep[0] = df.data;
	rc = ml_ignore_parse(out, text.data ? text.data : "", text.len,
			     name.data, keep);
	if (rc == 0)
		ml_debug("%s: %zu patterns leave files out of the build "
			 "context",
			 name.data, ml_ignore_count(*out));
out:
	ml_buf_release(&path);
	ml_buf_release(&df);
	ml_buf_release(&text);
	ml_buf_release(&name);
	return rc;
}

int ml_image_context_sends(bool *sends, struct ml_source *src,
			   const char *commit,
			   const struct ml_image_spec *spec,
			   const char *repo_path)
{
	struct ml_image_spec def = spec_defaults(spec);
	struct ml_buf ctx = ML_BUF_INIT(PATH_MAX);
	struct ml_ignore *ig = NULL;
	const char *rel = NULL;
	int rc;

	*sends = false;
	rc = dockerfile_path(&ctx, def.context, ".");
	if (rc < 0)
		goto out;
	if (!ctx.len)
		rel = repo_path;
	else if (!strncmp(repo_path, ctx.data, ctx.len) &&
		 repo_path[ctx.len] == '/')
		rel = repo_path + ctx.len + 1;
	if (!rel || !*rel)
		goto out; /* outside the context */
	rc = read_ignore(&ig, src, commit, &def);
	if (rc == 0)
		*sends = !ml_ignore_excludes(ig, rel);
out:
	ml_ignore_free(ig);
	ml_buf_release(&ctx);
	return rc;
}

/* The /build path with its query string. */
static int build_path(struct ml_buf *path, const struct ml_image_spec *spec,
		      const char *tag, const char *hash)
{
	json_t *args = json_object(), *labels = json_object();
	char *args_s = NULL, *labels_s = NULL;
	size_t i;
	int rc;

	for (i = 0; i < spec->build_args.n; i++)
		json_object_set_new(args, spec->build_args.v[i].key,
				    json_string(spec->build_args.v[i].value));
	json_object_set_new(labels, LABEL_BUILD, json_string(hash));
	args_s = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	labels_s = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	if (!args_s || !labels_s) {
		rc = ml_err_set(ML_EFAIL, "cannot encode the build arguments "
					  "(not valid UTF-8?)");
		goto out;
	}
	rc = ml_buf_addstr(path, "/build?t=");
	if (!rc)
		rc = ml_docker_url_escape(path, tag);
	if (!rc)
		rc = ml_buf_addstr(path, "&dockerfile=");
	if (!rc)
		rc = ml_docker_url_escape(path, spec->dockerfile);
	if (!rc)
		rc = ml_buf_addstr(path, "&buildargs=");
	if (!rc)
		rc = ml_docker_url_escape(path, args_s);
	if (!rc)
		rc = ml_buf_addstr(path, "&labels=");
	if (!rc)
		rc = ml_docker_url_escape(path, labels_s);
	if (!rc)
		rc = ml_buf_addstr(path, "&rm=1&forcerm=1");
out:
	free(args_s);
	free(labels_s);
	json_decref(args);
	json_decref(labels);
	return rc;
}

static int image_build(struct ml_image **out, struct ml_docker *d,
		       const struct ml_image_spec *spec, struct ml_source *src,
		       const char *commit, const char *app)
{
	struct ml_image_spec def;
	struct ml_buf tag = ML_BUF_INIT(256), df = ML_BUF_INIT(DOCKERFILE_PEEK),
		      path = ML_BUF_INIT(8192), q = ML_BUF_INIT(256);
	struct build_ctx b;
	struct export_job job;
	struct ml_export_filter filter;
	struct ml_ignore *ignore = NULL;
	struct ml_io io;
	char hash[ML_SHA256_HEX];
	const char *label;
	json_t *j = NULL;
	struct ml_err_saved saved;
	size_t i;
	int rc, rc2;

	memset(&b, 0, sizeof(b));
	b.fd = -1;
	ml_buf_init(&b.lines.line, BUILD_LINE_MAX);
	b.lines.on_line = build_line_cb;
	b.lines.ctx = &b;
	*out = NULL;
	if (!valid_app(app)) {
		rc = ml_err_set(ML_EINVALID,
				"'%s' cannot name a built image: app names "
				"are [a-z0-9][a-z0-9-]*",
				quote(&q, app ? app : "", 80));
		goto out;
	}
	if (!valid_commit(commit)) {
		rc = ml_err_set(ML_EINVALID,
				"'%s' is not a full commit sha to build",
				quote(&q, commit ? commit : "", 80));
		goto out;
	}
	if (!src) {
		rc = ml_err_set(ML_EUSAGE, "building an image needs the git "
					   "repository");
		goto out;
	}
	def = spec_defaults(spec);
	spec = &def;
	build_hash(spec, hash);
	rc = ml_buf_addf(&tag, "%s/%s:%s", ML_IMAGE_BUILD_REPO, app, commit);
	if (rc < 0)
		goto out;

	/* built before from the same commit and spec: reuse it */
	rc = inspect_json(&j, d, tag.data);
	if (rc == 0) {
		label = json_string_value(json_object_get(
			json_object_get(json_object_get(j, "Config"), "Labels"),
			LABEL_BUILD));
		if (label && !strcmp(label, hash)) {
			rc = image_from_json(out, j, tag.data);
			goto out;
		}
		ml_debug("image '%s' was built from another context, "
			 "Dockerfile or build args: building it again",
			 tag.data);
	} else if (rc != ML_ENOTFOUND) {
		goto out;
	}
	json_decref(j);
	j = NULL;

	/* the Dockerfile must be in the commit: say so before building */
	rc = dockerfile_path(&path, spec->context, spec->dockerfile);
	if (rc < 0)
		goto out;
	rc = ml_source_read(src, commit, path.data, &df);
	if (rc < 0 && rc != ML_ETOOBIG)
		goto out;
	ml_buf_reset(&path);
	rc = build_path(&path, spec, tag.data, hash);
	if (rc < 0)
		goto out;
	rc = read_ignore(&ignore, src, commit, spec);
	if (rc < 0)
		goto out;
	filter.judge = ml_ignore_judge;
	filter.ctx = ignore;

	ml_info("building image '%s' from '%s' in commit %.7s", tag.data,
		spec->context, commit);
	job.src = src;
	job.commit = commit;
	job.context = spec->context;
	job.filter = ignore ? &filter : NULL;
	rc = ml_pump_start(&b.pump, &b.fd, export_main, &job);
	if (rc < 0)
		goto out;
	io.read = build_read;
	io.write = build_write;
	io.ctx = &b;
	rc = ml_docker_stream(d, "POST", path.data, "application/x-tar", &io,
			      0);
	/*
	 * When Docker answered before taking the whole context, the
	 * exporter fails to write; Docker's answer is the news then (and
	 * when the export failed first, its message is already set).
	 */
	ml_err_save(&saved);
	rc2 = ml_pump_finish(&b.pump, &b.fd);
	if (rc < 0) {
		ml_err_restore(&saved);
		goto out;
	}
	ml_lines_flush(&b.lines);
	if (b.error) {
		rc = build_failed(&b, tag.data);
		goto out;
	}
	if (rc2 < 0) {
		rc = rc2;
		goto out;
	}
	rc = ml_image_inspect(out, d, tag.data);
	if (rc == ML_ENOTFOUND)
		rc = ml_err_set(ML_EFAIL,
				"docker built '%s' but the image is not there "
				"(removed meanwhile?)",
				tag.data);
	if (rc < 0)
		goto out;
	(*out)->built = true;
out:
	if (b.fd >= 0 || (b.pump.started && !b.pump.joined))
		(void)ml_pump_finish(&b.pump, &b.fd);
	for (i = 0; i < BUILD_TAIL; i++)
		free(b.tail[i]);
	free(b.error);
	ml_ignore_free(ignore);
	ml_buf_release(&b.lines.line);
	json_decref(j);
	ml_buf_release(&tag);
	ml_buf_release(&df);
	ml_buf_release(&path);
	ml_buf_release(&q);
	return rc;
}

int ml_image_resolve(struct ml_image **out, struct ml_docker *d,
		     const struct ml_image_spec *spec, struct ml_source *src,
		     const char *commit, const char *app)
{
	*out = NULL;
	switch (spec->kind) {
	case ML_IMAGE_REF:
		return ml_image_inspect(out, d, spec->ref);
	case ML_IMAGE_BUILD:
		return image_build(out, d, spec, src, commit, app);
	}
	return ml_err_set(ML_EINVALID, "the playbook names no image");
}
