/*
 * image_load: make an image out of blobs in the store (agent/blobstore.h)
 * and load it into Docker, or just tag it when Docker already has it.
 *
 *	args:   {"image_id": "sha256:...", "config": "sha256:..." (the same),
 *		 "layers": ["sha256:<diffID>", ... bottom first],
 *		 "tags": ["repo:tag", ...]}
 *	result: {"loaded": bool, "id": image_id}
 *
 * When GET /images/<id>/json finds the image, only the tags are applied
 * (POST /images/<id>/tag) and "loaded" is false. Otherwise every blob must
 * be stored (else "not-found", naming the first missing one), and the
 * agent streams a docker-archive tar, built on the fly, to POST
 * /images/load:
 *
 *	manifest.json	[{"Config":"<hex>.json","RepoTags":[tags],
 *			  "Layers":["<hex>/layer.tar",...]}]
 *	<hex>.json	the config blob
 *	<hex>/layer.tar	each distinct layer blob (a layer used twice is
 *			stored once and named twice in the manifest)
 *
 * Docker recomputes every layer's diffID against the config and the image
 * id from the config, so a blob damaged on disk cannot load as the wrong
 * image; the agent then checks that Docker has image_id.
 *
 * Memory: the tar is produced step by step as curl asks for body bytes:
 * each step writes one header or one READ_CHUNK (64 KiB) of a blob into
 * libarchive, whose output (whole 10 KiB blocks) waits in a buffer of at
 * most PENDING_MAX until curl takes it. Docker's answer is read line by
 * line, each line at most LINE_MAX. Tags: at most MAX_TAGS, each checked
 * against [a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_.-]{1,128} (repository part at
 * most REPO_MAX) before use; layers: at most MAX_LAYERS.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "common/docker.h"
#include "common/io.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LAYERS 256
#define MAX_TAGS 64
#define REPO_MAX 255
#define TAG_MAX 128
#define READ_CHUNK ((size_t)64 << 10)
#define PENDING_MAX ((size_t)1 << 20)
#define LINE_MAX ((size_t)1 << 20)
#define SAID_MAX 2048 /* of Docker's "stream" text kept for errors */
#define HEX_OFF 7     /* strlen("sha256:") */
#define SCAN_MAX 512  /* images read to find layers Docker has */

/* One member of the archive: a directory, text in memory or a blob. */
struct member {
	char *name;
	bool dir;
	char *text; /* owned, or NULL */
	char *path; /* blob file, or NULL */
};

struct tar_src {
	struct archive *ar;
	struct member *m;
	size_t n, next;
	struct ml_buf out; /* libarchive's output not yet taken by curl */
	size_t out_off;
	int fd;	       /* the blob being copied, or -1 */
	uint64_t left; /* its bytes still to copy */
	const char *fd_path;
	unsigned char *chunk;
	bool closed, done;
};

/* Docker's answer to /images/load, a stream of JSON lines. */
struct load_answer {
	struct ml_buf line;
	struct ml_buf said;
	char *error; /* the first error message, escaped */
};

/* Both sides of the load request (one ml_io context). */
struct load_job {
	struct tar_src t;
	struct load_answer la;
};

static bool valid_tag(const char *s)
{
	const char *colon = strchr(s, ':');
	size_t i, rlen, tlen;

	if (!colon)
		return false;
	rlen = (size_t)(colon - s);
	tlen = strlen(colon + 1);
	if (!rlen || rlen > REPO_MAX || !tlen || tlen > TAG_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (i = 1; i < rlen; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("._/-", s[i])))
			return false;
	for (i = 0; i < tlen; i++) {
		char c = colon[1 + i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int check_args(json_t *args, const char **image_id, json_t **layers,
		      json_t **tags)
{
	const char *cfg;
	json_t *v;
	size_t i;

	*image_id = json_string_value(json_object_get(args, "image_id"));
	if (!ml_blob_digest_valid(*image_id))
		return ml_err_set(ML_EPROTO,
				  "image_load needs 'image_id', \"sha256:\" "
				  "and 64 lowercase hex digits");
	cfg = json_string_value(json_object_get(args, "config"));
	if (!cfg || strcmp(cfg, *image_id))
		return ml_err_set(ML_EPROTO,
				  "image_load: 'config' must be the config "
				  "blob's digest, which is the image id");
	*layers = json_object_get(args, "layers");
	if (!json_is_array(*layers) || json_array_size(*layers) > MAX_LAYERS)
		return ml_err_set(ML_EPROTO,
				  "image_load needs 'layers', a list of at "
				  "most %d layer digests",
				  MAX_LAYERS);
	json_array_foreach(*layers, i, v)
	{
		if (!ml_blob_digest_valid(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "image_load: layer %zu is not a "
					  "blob digest",
					  i + 1);
	}
	*tags = json_object_get(args, "tags");
	if (!*tags)
		return 0;
	if (!json_is_array(*tags) || json_array_size(*tags) > MAX_TAGS)
		return ml_err_set(ML_EPROTO,
				  "image_load: 'tags' must be a list of at "
				  "most %d tags",
				  MAX_TAGS);
	json_array_foreach(*tags, i, v)
	{
		if (!json_is_string(v) || !valid_tag(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "image_load: tag %zu is not "
					  "REPOSITORY:TAG (lowercase "
					  "repository of a-z 0-9 . _ / -, tag "
					  "of letters, digits . _ -, at most "
					  "%d)",
					  i + 1, TAG_MAX);
	}
	return 0;
}

/* POST /images/<id>/tag?repo=R&tag=T for each tag. */
static int apply_tags(struct ml_docker *d, const char *image_id, json_t *tags)
{
	struct ml_buf path = ML_BUF_INIT(4096);
	const char *t, *colon;
	char *repo = NULL;
	json_t *v;
	size_t i;
	int rc = 0;

	json_array_foreach(tags, i, v)
	{
		t = json_string_value(v);
		colon = strchr(t, ':');
		free(repo);
		repo = ml_xstrndup(t, (size_t)(colon - t));
		ml_buf_reset(&path);
		rc = ml_buf_addf(&path, "/images/%s/tag?repo=", image_id);
		if (!rc)
			rc = ml_docker_url_escape(&path, repo);
		if (!rc)
			rc = ml_buf_addstr(&path, "&tag=");
		if (!rc)
			rc = ml_docker_url_escape(&path, colon + 1);
		if (!rc)
			rc = ml_docker_post(d, path.data, NULL, NULL);
		if (rc < 0)
			break;
	}
	free(repo);
	ml_buf_release(&path);
	return rc;
}

/* Whether Docker has image id: 1 yes, 0 no, or a failure. */
static int docker_has(struct ml_docker *d, const char *image_id)
{
	struct ml_buf path = ML_BUF_INIT(256);
	json_t *img = NULL;
	const char *got;
	int rc;

	ml_buf_addf(&path, "/images/%s/json", image_id);
	rc = ml_docker_get(d, path.data, &img);
	if (rc == ML_ENOTFOUND) {
		ml_err_clear();
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	got = json_string_value(json_object_get(img, "Id"));
	if (!got || strcmp(got, image_id)) {
		rc = ml_err_set(ML_EFAIL,
				"docker: GET %s answered another image id",
				path.data);
		goto out;
	}
	rc = 1;
out:
	json_decref(img);
	ml_buf_release(&path);
	return rc;
}

static void add_member(struct tar_src *t, size_t *cap, char *name, bool dir,
		       char *text, char *path)
{
	ML_GROW(t->m, t->n + 1, *cap);
	t->m[t->n].name = name;
	t->m[t->n].dir = dir;
	t->m[t->n].text = text;
	t->m[t->n].path = path;
	t->n++;
}

/*
 * How many of layers, from the bottom, one image of Docker already holds as
 * the start of its own (the length of the longest common prefix of diffIDs
 * with any image; at most the number of layers). Docker keeps a layer per
 * chain (the diffIDs from the bottom up to it), so those layers exist and
 * a load need not carry them: Docker's load looks each chain up before it
 * opens the layer's file, and a file it does not open may be absent. The
 * images are read one by one (at most SCAN_MAX of them); a failure of the
 * listing counts as "none", since the full load then still works.
 */
static size_t docker_prefix(struct ml_docker *d, json_t *layers)
{
	struct ml_buf path = ML_BUF_INIT(256);
	json_t *list = NULL, *img, *have, *v;
	size_t best = 0, n = json_array_size(layers), i, k;

	if (!n || ml_docker_get(d, "/images/json", &list) < 0 ||
	    !json_is_array(list)) {
		ml_err_clear();
		goto out;
	}
	json_array_foreach(list, i, v)
	{
		const char *id = json_string_value(json_object_get(v, "Id"));

		if (i >= SCAN_MAX || best == n)
			break;
		if (!id || !ml_blob_digest_valid(id))
			continue;
		ml_buf_reset(&path);
		ml_buf_addf(&path, "/images/%s/json", id);
		img = NULL;
		if (ml_docker_get(d, path.data, &img) < 0) {
			ml_err_clear(); /* removed meanwhile: skip it */
			continue;
		}
		have = json_object_get(json_object_get(img, "RootFS"),
				       "Layers");
		k = ml_layers_common_prefix(have, layers);
		if (k > best)
			best = k;
		json_decref(img);
	}
out:
	json_decref(list);
	ml_buf_release(&path);
	return best;
}

size_t ml_layers_common_prefix(json_t *have, json_t *want)
{
	size_t i, n = json_array_size(want);
	const char *a, *b;

	if (!json_is_array(have) || !json_is_array(want))
		return 0;
	for (i = 0; i < n && i < json_array_size(have); i++) {
		a = json_string_value(json_array_get(have, i));
		b = json_string_value(json_array_get(want, i));
		if (!a || !b || strcmp(a, b))
			break;
	}
	return i;
}

/* ML_ENOTFOUND unless digest is stored. */
static int need_blob(struct ml_blobstore *s, const char *digest)
{
	int64_t part;
	uint64_t size;
	int rc;

	rc = ml_blobstore_stat(s, digest, &size, &part);
	if (rc == 0)
		return ml_err_set(ML_ENOTFOUND,
				  "missing blob %s; send it with blob_put "
				  "first",
				  digest);
	return rc < 0 ? rc : 0;
}

/*
 * The members of the archive, in order; every blob it holds checked
 * present. The first skip layers are named in the manifest but not
 * carried (Docker has them: see docker_prefix), unless a layer above them
 * is the same blob.
 */
static int plan_members(struct tar_src *t, struct ml_blobstore *s,
			const char *image_id, json_t *layers, json_t *tags,
			size_t skip)
{
	struct ml_buf path = ML_BUF_INIT(8192);
	json_t *man = json_object(), *mlayers = json_array(), *all, *v;
	const char *dg;
	size_t cap = 0, i, j;
	char *text;
	int rc;

	if (!man || !mlayers)
		BUG("out of memory");
	/* every blob first, so a missing one fails before Docker is asked */
	rc = need_blob(s, image_id);
	json_array_foreach(layers, i, v)
	{
		if (rc == 0 && i >= skip)
			rc = need_blob(s, json_string_value(v));
	}
	if (rc < 0)
		goto out;

	text = ml_xasprintf("%s.json", image_id + HEX_OFF);
	json_object_set_new(man, "Config", json_string(text));
	free(text);
	json_object_set(man, "RepoTags", tags ? tags : json_null());
	json_array_foreach(layers, i, v)
	{
		dg = json_string_value(v);
		text = ml_xasprintf("%s/layer.tar", dg + HEX_OFF);
		json_array_append_new(mlayers, json_string(text));
		free(text);
	}
	json_object_set_new(man, "Layers", mlayers);
	mlayers = NULL;
	all = json_array();
	json_array_append_new(all, man);
	man = NULL;
	text = json_dumps(all, JSON_COMPACT);
	json_decref(all);
	if (!text)
		BUG("out of memory");
	add_member(t, &cap, ml_xstrdup("manifest.json"), false, text, NULL);

	ml_buf_reset(&path);
	ml_blobstore_path(&path, s, image_id);
	add_member(t, &cap, ml_xasprintf("%s.json", image_id + HEX_OFF), false,
		   NULL, ml_xstrdup(path.data));
	json_array_foreach(layers, i, v)
	{
		dg = json_string_value(v);
		if (i < skip)
			continue; /* Docker has it */
		for (j = skip; j < i; j++)
			if (!strcmp(dg, json_string_value(
						json_array_get(layers, j))))
				break;
		if (j < i)
			continue; /* the same layer twice: one copy */
		ml_buf_reset(&path);
		ml_blobstore_path(&path, s, dg);
		add_member(t, &cap, ml_xasprintf("%s/", dg + HEX_OFF), true,
			   NULL, NULL);
		add_member(t, &cap, ml_xasprintf("%s/layer.tar", dg + HEX_OFF),
			   false, NULL, ml_xstrdup(path.data));
	}
	rc = 0;
out:
	json_decref(man);
	json_decref(mlayers);
	ml_buf_release(&path);
	return rc;
}

static la_ssize_t tar_out(struct archive *ar, void *ctx, const void *p,
			  size_t n)
{
	struct tar_src *t = ctx;

	if (ml_buf_add(&t->out, p, n) < 0) {
		archive_set_error(ar, ENOMEM, "tar output buffer full");
		return -1;
	}
	return (la_ssize_t)n;
}

static int tar_error(struct tar_src *t, const char *what)
{
	const char *e = archive_error_string(t->ar);

	return ml_err_set(ML_EFAIL,
			  "image_load: cannot write the archive "
			  "(%s): %s",
			  what, e ? e : "unknown error");
}

/* Start member i: its header, and its text or the blob's open file. */
static int tar_member(struct tar_src *t, const struct member *m)
{
	struct archive_entry *e = archive_entry_new();
	struct stat st;
	size_t len = m->text ? strlen(m->text) : 0;
	int rc = 0;

	if (!e)
		BUG("out of memory");
	archive_entry_set_pathname(e, m->name);
	archive_entry_set_mtime(e, 0, 0);
	if (m->dir) {
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
	} else {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
	}
	if (m->path) {
		t->fd = open(m->path, O_RDONLY | O_CLOEXEC);
		if (t->fd < 0 || fstat(t->fd, &st) < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot open '%s'",
					  m->path);
			goto out;
		}
		t->left = (uint64_t)st.st_size;
		t->fd_path = m->path;
		archive_entry_set_size(e, st.st_size);
	} else if (!m->dir) {
		archive_entry_set_size(e, (la_int64_t)len);
	}
	if (archive_write_header(t->ar, e) != ARCHIVE_OK) {
		rc = tar_error(t, m->name);
		goto out;
	}
	if (len && archive_write_data(t->ar, m->text, len) != (la_ssize_t)len)
		rc = tar_error(t, m->name);
out:
	archive_entry_free(e);
	return rc;
}

/* Copy the next chunk of the open blob into the archive. */
static int tar_copy(struct tar_src *t)
{
	size_t want = t->left < READ_CHUNK ? (size_t)t->left : READ_CHUNK;
	ssize_t r;

	do
		r = read(t->fd, t->chunk, want);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return ml_err_errno(ML_EFAIL, r < 0 ? errno : EIO,
				    "cannot read '%s'%s", t->fd_path,
				    r ? "" : " (it shrank)");
	if (archive_write_data(t->ar, t->chunk, (size_t)r) != r)
		return tar_error(t, t->fd_path);
	t->left -= (uint64_t)r;
	if (!t->left) {
		close(t->fd);
		t->fd = -1;
	}
	return 0;
}

/* One step of the archive: some output, or none yet, or the end. */
static int tar_step(struct tar_src *t)
{
	if (t->fd >= 0)
		return tar_copy(t);
	if (t->next < t->n)
		return tar_member(t, &t->m[t->next++]);
	if (!t->closed) {
		t->closed = true;
		if (archive_write_close(t->ar) != ARCHIVE_OK)
			return tar_error(t, "end");
		return 0;
	}
	t->done = true;
	return 0;
}

/* ml_io read side for curl: hand out the archive as it is made. */
static ssize_t tar_read(void *ctx, void *buf, size_t n)
{
	struct tar_src *t = &((struct load_job *)ctx)->t;
	size_t have;
	int rc;

	while (t->out_off == t->out.len) {
		if (t->done)
			return 0;
		ml_buf_reset(&t->out);
		t->out_off = 0;
		rc = tar_step(t);
		if (rc < 0)
			return rc;
	}
	have = t->out.len - t->out_off;
	if (n > have)
		n = have;
	memcpy(buf, t->out.data + t->out_off, n);
	t->out_off += n;
	return (ssize_t)n;
}

static void tar_release(struct tar_src *t)
{
	size_t i;

	if (t->ar)
		archive_write_free(t->ar);
	for (i = 0; i < t->n; i++) {
		free(t->m[i].name);
		free(t->m[i].text);
		free(t->m[i].path);
	}
	free(t->m);
	if (t->fd >= 0)
		close(t->fd);
	free(t->chunk);
	ml_buf_release(&t->out);
}

static int tar_open(struct tar_src *t)
{
	t->ar = archive_write_new();
	if (!t->ar)
		BUG("out of memory");
	if (archive_write_set_format_pax_restricted(t->ar) != ARCHIVE_OK ||
	    archive_write_add_filter_none(t->ar) != ARCHIVE_OK ||
	    archive_write_open(t->ar, t, NULL, tar_out, NULL) != ARCHIVE_OK)
		return tar_error(t, "start");
	return 0;
}

static void answer_line(struct load_answer *la, const char *p, size_t n)
{
	struct ml_buf esc = ML_BUF_INIT(4 * SAID_MAX + 16);
	json_t *j = json_loadb(p, n, 0, NULL);
	const char *e, *s;

	e = json_string_value(json_object_get(j, "error"));
	if (!e)
		e = json_string_value(json_object_get(
			json_object_get(j, "errorDetail"), "message"));
	s = json_string_value(json_object_get(j, "stream"));
	if (e && !la->error) {
		ml_escape(&esc, e, strnlen(e, SAID_MAX));
		la->error = ml_xstrdup(ml_buf_str(&esc));
	} else if (s && la->said.len < SAID_MAX) {
		while (*s == ' ' || *s == '\n')
			s++;
		n = strnlen(s, SAID_MAX);
		while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
			n--;
		if (n) {
			ml_escape(&esc, s, n);
			if (la->said.len)
				ml_buf_addstr(&la->said, "; ");
			ml_buf_add(&la->said, esc.data,
				   esc.len < SAID_MAX ? esc.len : SAID_MAX);
		}
	}
	json_decref(j);
	ml_buf_release(&esc);
}

/* ml_io write side: Docker's answer, split into lines. */
static int answer_write(void *ctx, const void *p, size_t n)
{
	struct load_answer *la = &((struct load_job *)ctx)->la;
	const char *q = p, *nl;
	size_t used;

	while (n) {
		nl = memchr(q, '\n', n);
		used = nl ? (size_t)(nl - q) + 1 : n;
		if (ml_buf_add(&la->line, q, used) < 0)
			return ml_err_set(
				ML_ETOOBIG,
				"docker: POST /images/load: an answer "
				"line is longer than %zu bytes",
				LINE_MAX);
		if (nl) {
			answer_line(la, la->line.data, la->line.len);
			ml_buf_reset(&la->line);
		}
		q += used;
		n -= used;
	}
	return 0;
}

static int load(struct ml_docker *d, struct ml_blobstore *s,
		const char *image_id, json_t *layers, json_t *tags, size_t skip)
{
	struct load_job j = {
		{0}, {ML_BUF_INIT(LINE_MAX), ML_BUF_INIT(SAID_MAX * 2), NULL}};
	struct ml_io io = {tar_read, answer_write, &j};
	struct tar_src *t = &j.t;
	struct load_answer *la = &j.la;
	int rc;

	t->fd = -1;
	ml_buf_init(&t->out, PENDING_MAX);
	t->chunk = ml_xmalloc(READ_CHUNK);
	rc = plan_members(t, s, image_id, layers, tags, skip);
	if (rc < 0)
		goto out;
	rc = tar_open(t);
	if (rc < 0)
		goto out;
	rc = ml_docker_stream(d, "POST", "/images/load?quiet=1",
			      "application/x-tar", &io, 0);
	if (rc < 0)
		goto out;
	if (la->line.len)
		answer_line(la, la->line.data, la->line.len);
	if (la->error) {
		rc = ml_err_set(ML_EFAIL, "docker: POST /images/load: %s",
				la->error);
		goto out;
	}
	rc = docker_has(d, image_id);
	if (rc == 0)
		rc = ml_err_set(ML_EFAIL,
				"docker loaded the archive but has no image "
				"%s; it said: %s",
				image_id,
				la->said.len ? ml_buf_str(&la->said)
					     : "nothing");
	if (rc < 0)
		goto out;
	rc = 0;
out:
	tar_release(t);
	ml_buf_release(&la->line);
	ml_buf_release(&la->said);
	free(la->error);
	return rc;
}

static int op_image_load(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_blobstore *s = NULL;
	struct ml_docker *d;
	json_t *layers = NULL, *tags = NULL, *r;
	const char *image_id;
	bool loaded = false;
	size_t skip;
	int rc;

	rc = check_args(args, &image_id, &layers, &tags);
	if (rc < 0)
		return rc;
	rc = ml_agent_docker(a, &d);
	if (rc < 0)
		return rc;
	rc = docker_has(d, image_id);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		ml_blobstore_open(&s, a->state_dir);
		skip = docker_prefix(d, layers);
		rc = load(d, s, image_id, layers, tags, skip);
		if (rc < 0 && skip) {
			/* an image went away meanwhile: carry every layer */
			ml_debug("image_load of %s without %zu layer(s) "
				 "Docker had failed (%s): loading all",
				 image_id, skip, ml_err_msg());
			ml_err_clear();
			rc = load(d, s, image_id, layers, tags, 0);
		}
		if (rc < 0)
			goto out;
		loaded = true;
	}
	/* load tags through the manifest; tag again so both paths agree */
	if (tags) {
		rc = apply_tags(d, image_id, tags);
		if (rc < 0)
			goto out;
	}
	r = json_object();
	json_object_set_new(r, "loaded", json_boolean(loaded));
	ml_agent_set_str(r, "id", image_id);
	*result = r;
	rc = 0;
out:
	ml_blobstore_free(s);
	return rc;
}

const struct ml_agent_op ml_agent_op_image_load = {
	.name = "image_load",
	.summary = "load an image into Docker from stored blobs, or tag it",
	.run = op_image_load,
};
