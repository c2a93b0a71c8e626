/*
 * Tests of image_load (agent/op_image_load.c) through the real request
 * loop. Blobs reach the store through blob_put frames, as from the
 * controller.
 *
 * Against a fake daemon (a unix-socket HTTP server in this file that
 * understands chunked bodies and keeps the last /images/load body in a
 * file): the archive the agent streams is read back with libarchive and
 * checked member by member; argument checks, missing blobs, Docker's error
 * lines and the tag-only path are checked from the requests it sees.
 *
 * Against a real dockerd, when $MLCTL_TEST_IMAGE_DIR is set (see
 * check_image_load.sh, which sets it): an image saved by `docker save` and
 * unpacked there is put blob by blob into a fresh store, removed from
 * Docker, loaded back with image_load, and checked by id and tags.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/docker.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "tests/unit/common/mem_io.h"
#include "tests/support/proc.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#define HELLO "{\"v\":1,\"id\":1,\"op\":\"hello\",\"args\":{\"versions\":[1]}}"

/* ---- a fake daemon that takes streamed bodies -------------------------- */

enum load_mode { LOAD_OK, LOAD_ERROR_LINE, LOAD_NO_IMAGE };

struct fake {
	char dir[64], sock[96], body_path[96];
	int lfd;
	pthread_t th;
	pthread_mutex_t mu;
	bool stop;
	/* under mu */
	char image_id[ML_BLOB_DIGEST_SIZE];
	bool have_image;
	enum load_mode mode;
	int loads;
	struct ml_buf tags; /* query strings of tag requests, one a line */
	/* another image Docker lists, with these RootFS.Layers (JSON) */
	char other_id[ML_BLOB_DIGEST_SIZE];
	char *other_layers;
};

struct rd {
	int fd;
	unsigned char buf[65536];
	size_t len, off;
};

static int rd_byte(struct rd *r)
{
	ssize_t n;

	if (r->off == r->len) {
		n = read(r->fd, r->buf, sizeof(r->buf));
		if (n <= 0)
			return -1;
		r->len = (size_t)n;
		r->off = 0;
	}
	return r->buf[r->off++];
}

/* One line without its CRLF; false at the end of the stream. */
static bool rd_line(struct rd *r, struct ml_buf *line)
{
	int c;

	ml_buf_reset(line);
	while ((c = rd_byte(r)) >= 0) {
		if (c == '\n') {
			if (line->len && line->data[line->len - 1] == '\r')
				line->data[--line->len] = '\0';
			return true;
		}
		if (ml_buf_addch(line, (char)c) < 0)
			return false;
	}
	return false;
}

static bool rd_copy(struct rd *r, FILE *out, size_t n)
{
	int c;

	while (n--) {
		c = rd_byte(r);
		if (c < 0)
			return false;
		if (out)
			fputc(c, out);
	}
	return true;
}

static void fake_answer(int fd, int status, const char *body)
{
	struct ml_buf b = ML_BUF_INIT(0);
	size_t off = 0;
	ssize_t w;

	ml_buf_addf(&b,
		    "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		    status, strlen(body), body);
	while (off < b.len && (w = write(fd, b.data + off, b.len - off)) > 0)
		off += (size_t)w;
	ml_buf_release(&b);
}

static void fake_serve_one(struct fake *f, int fd)
{
	struct ml_buf line = ML_BUF_INIT(1 << 20), req = ML_BUF_INIT(0),
		      path = ML_BUF_INIT(0), body = ML_BUF_INIT(0);
	struct rd *r = ml_xcalloc(1, sizeof(*r));
	bool chunked = false;
	size_t clen = 0, n;
	FILE *out = NULL;

	r->fd = fd;
	if (!rd_line(r, &req))
		goto out;
	while (rd_line(r, &line) && line.len) {
		if (!strcasecmp(line.data, "Transfer-Encoding: chunked"))
			chunked = true;
		if (!strncasecmp(line.data, "Content-Length:", 15))
			clen = strtoul(line.data + 15, NULL, 10);
	}
	if (strstr(req.data, "/images/load"))
		out = fopen(f->body_path, "w");
	if (chunked) {
		for (;;) {
			if (!rd_line(r, &line))
				goto out;
			n = strtoul(line.data, NULL, 16);
			if (!n)
				break;
			if (!rd_copy(r, out, n) || !rd_line(r, &line))
				goto out;
		}
		rd_line(r, &line); /* the CRLF after the last chunk */
	} else if (!rd_copy(r, out, clen)) {
		goto out;
	}
	if (out) {
		fclose(out);
		out = NULL;
	}

	pthread_mutex_lock(&f->mu);
	ml_buf_addf(&path, "GET /v1.41/images/%s/json ", f->image_id);
	if (!strncmp(req.data, "GET /version ", 13)) {
		fake_answer(fd, 200,
			    "{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
			    "\"MinAPIVersion\":\"1.12\"}");
	} else if (!strncmp(req.data, path.data, path.len)) {
		ml_buf_addf(&body, "{\"Id\":\"%s\"}", f->image_id);
		if (f->have_image)
			fake_answer(fd, 200, body.data);
		else
			fake_answer(fd, 404, "{\"message\":\"No such image\"}");
	} else if (f->other_layers &&
		   !strncmp(req.data, "GET /v1.41/images/json ", 23)) {
		ml_buf_addf(&body, "[{\"Id\":\"%s\"}]", f->other_id);
		fake_answer(fd, 200, body.data);
	} else if (f->other_layers && !strncmp(req.data, "GET /v1.41/images/", 18) &&
		   !strncmp(req.data + 18, f->other_id, strlen(f->other_id))) {
		ml_buf_addf(&body, "{\"Id\":\"%s\",\"RootFS\":{\"Layers\":%s}}",
			    f->other_id, f->other_layers);
		fake_answer(fd, 200, body.data);
	} else if (!strncmp(req.data, "POST /v1.41/images/load?quiet=1 ", 32)) {
		f->loads++;
		if (f->mode == LOAD_ERROR_LINE) {
			fake_answer(fd, 200,
				    "{\"stream\":\"Loading\\n\"}\r\n"
				    "{\"errorDetail\":{\"message\":\"boom\"},"
				    "\"error\":\"boom\"}\r\n");
		} else {
			f->have_image = f->mode == LOAD_OK;
			ml_buf_addf(&body,
				    "{\"stream\":\"Loaded image ID: %s\\n\"}"
				    "\r\n",
				    f->image_id);
			fake_answer(fd, 200, body.data);
		}
	} else if (!strncmp(req.data, "POST /v1.41/images/", 19) &&
		   strstr(req.data, "/tag?")) {
		ml_buf_add(&f->tags, strstr(req.data, "/tag?") + 5,
			   strcspn(strstr(req.data, "/tag?") + 5, " "));
		ml_buf_addch(&f->tags, '\n');
		fake_answer(fd, 201, "");
	} else {
		fake_answer(fd, 404, "{\"message\":\"page not found\"}");
	}
	pthread_mutex_unlock(&f->mu);
out:
	if (out)
		fclose(out);
	free(r);
	ml_buf_release(&line);
	ml_buf_release(&req);
	ml_buf_release(&path);
	ml_buf_release(&body);
}

static void *fake_main(void *p)
{
	struct fake *f = p;
	int fd;

	for (;;) {
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&f->mu);
		if (f->stop) {
			pthread_mutex_unlock(&f->mu);
			close(fd);
			return NULL;
		}
		pthread_mutex_unlock(&f->mu);
		fake_serve_one(f, fd);
		close(fd);
	}
}

static void fake_start(struct fake *f)
{
	struct sockaddr_un sun = {0};

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mlctl-test-fakeload-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/d.sock", f->dir);
	snprintf(f->body_path, sizeof(f->body_path), "%s/load.tar", f->dir);
	ml_buf_init(&f->tags, 0);
	pthread_mutex_init(&f->mu, NULL);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	struct sockaddr_un sun = {0};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_mutex_unlock(&f->mu);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
	connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	pthread_join(f->th, NULL);
	close(fd);
	close(f->lfd);
	ml_buf_release(&f->tags);
	pthread_mutex_destroy(&f->mu);
	ml_test_rmtree(f->dir);
}

/* ---- helpers ------------------------------------------------------------ */

struct blob {
	unsigned char *data;
	size_t n;
	char digest[ML_BLOB_DIGEST_SIZE];
};

static void blob_set(struct blob *b, const void *p, size_t n)
{
	char hex[ML_SHA256_HEX];

	b->data = ml_xmalloc(n ? n : 1);
	memcpy(b->data, p, n);
	b->n = n;
	ml_sha256_hex(p, n, hex);
	snprintf(b->digest, sizeof(b->digest), "sha256:%s", hex);
}

/* Run serve over a memory stream; *replies gets the decoded replies. */
static void serve_mem(const char *state_dir, const char *sock,
		      const struct ml_buf *in, json_t **replies)
{
	struct ml_agent a;
	struct mem_io m;
	struct ml_io io;

	ml_agent_init(&a);
	a.state_dir = state_dir;
	a.docker_sock = sock;
	mem_io_init(&io, &m, in->data, in->len);
	assert_int_equal(ml_agent_serve(&a, &io), 0);
	*replies = frames_decode(m.out.data, m.out.len);
	assert_non_null(*replies);
	mem_io_release(&m);
	ml_agent_release(&a);
}

/* Request frame for op with args (stolen). */
static void add_req(struct ml_buf *in, int id, const char *op, json_t *args)
{
	json_t *req = json_pack("{s:i,s:i,s:s,s:o}", "v", 1, "id", id, "op", op,
				"args", args);
	char *text = json_dumps(req, JSON_COMPACT);

	frame_add_json(in, text);
	free(text);
	json_decref(req);
}

/* A blob_put of b (zstd or not), the data in frames of at most 256 KiB,
 * starting at offset; end false leaves the put open (then EOF). */
static void add_put(struct ml_buf *in, int id, const struct blob *b,
		    size_t offset, bool end)
{
	size_t k, n = b->n - offset;
	const unsigned char *q = b->data + offset;

	add_req(in, id, "blob_put",
		json_pack("{s:s,s:I,s:I,s:s}", "digest", b->digest, "size",
			  (json_int_t)b->n, "offset", (json_int_t)offset,
			  "compression", "none"));
	if (!end)
		n /= 2;
	for (; n; n -= k, q += k) {
		k = n < (256 << 10) ? n : (256 << 10);
		frame_add(in, ML_FRAME_DATA, q, k);
	}
	if (end)
		frame_add(in, ML_FRAME_DATA, "", 0);
}

static json_t *reply_at(json_t *replies, size_t i)
{
	json_t *r = json_array_get(replies, i);

	assert_non_null(r);
	return r;
}

static json_t *result(json_t *r)
{
	if (!json_is_true(json_object_get(r, "ok")))
		fail_msg("not ok: %s", json_dumps(r, 0));
	return json_object_get(r, "result");
}

static const char *err_code(json_t *r)
{
	if (!json_is_false(json_object_get(r, "ok")))
		fail_msg("not an error: %s", json_dumps(r, 0));
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "code"));
}

static const char *err_msg(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "message"));
}

static json_t *load_args(const char *image_id, const struct blob *const *l,
			 size_t nl, const char *const *tags, size_t nt)
{
	json_t *a = json_object(), *ls = json_array(), *ts = json_array();
	size_t i;

	for (i = 0; i < nl; i++)
		json_array_append_new(ls, json_string(l[i]->digest));
	for (i = 0; i < nt; i++)
		json_array_append_new(ts, json_string(tags[i]));
	json_object_set_new(a, "image_id", json_string(image_id));
	json_object_set_new(a, "config", json_string(image_id));
	json_object_set_new(a, "layers", ls);
	json_object_set_new(a, "tags", ts);
	return a;
}

/* The members of the tar at path, in order: names and contents (text
 * only: JSON strings). */
static json_t *read_tar(const char *path)
{
	struct archive *ar = archive_read_new();
	struct archive_entry *e;
	struct ml_buf b = ML_BUF_INIT((size_t)64 << 20);
	json_t *all = json_array();
	char chunk[65536];
	la_ssize_t n;

	archive_read_support_format_tar(ar);
	assert_int_equal(archive_read_open_filename(ar, path, 10240),
			 ARCHIVE_OK);
	while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
		ml_buf_reset(&b);
		while ((n = archive_read_data(ar, chunk, sizeof(chunk))) > 0)
			ml_buf_add(&b, chunk, (size_t)n);
		assert_true(n == 0);
		json_array_append_new(
			all, json_pack("{s:s,s:s%,s:b}", "name",
				       archive_entry_pathname(e), "data",
				       b.data ? b.data : "", b.len, "dir",
				       archive_entry_filetype(e) == AE_IFDIR));
	}
	archive_read_free(ar);
	ml_buf_release(&b);
	return all;
}

static void assert_member(json_t *m, const char *name, const struct blob *b)
{
	json_t *d = json_object_get(m, "data");

	assert_string_equal(json_string_value(json_object_get(m, "name")),
			    name);
	if (!b) {
		assert_true(json_is_true(json_object_get(m, "dir")));
		return;
	}
	assert_int_equal(json_string_length(d), b->n);
	assert_memory_equal(json_string_value(d), b->data, b->n);
}

/* ---- against the fake daemon ------------------------------------------- */

static void test_blob_ops__image_load_fake(void **state)
{
	struct fake f;
	struct blob cfg, l1, l2;
	const struct blob *layers[] = {&l1, &l2, &l1};
	const char *tags[] = {"mlctl-test/app:2", "localhost/x.y_z-w:v1.0_A"};
	struct ml_buf in = ML_BUF_INIT(0), big = ML_BUF_INIT(0), name;
	char *state_dir = ml_test_tmpdir("blobops");
	json_t *rs, *r, *tar, *man;
	size_t i;

	fake_start(&f);
	for (i = 0; i < 300000; i++)
		ml_buf_addch(&big, (char)('a' + (i * 7 + i / 1000) % 26));
	blob_set(&l1, big.data, big.len);
	blob_set(&l2, "layer two", 9);
	ml_buf_reset(&big);
	ml_buf_addf(&big, "{\"rootfs\":{\"diff_ids\":[\"%s\",\"%s\",\"%s\"]}}",
		    l1.digest, l2.digest, l1.digest);
	blob_set(&cfg, big.data, big.len);
	snprintf(f.image_id, sizeof(f.image_id), "%s", cfg.digest);

	/* blobs arrive; the config last, so the first load misses it */
	frame_add_json(&in, HELLO);
	add_put(&in, 2, &l1, 0, true);
	add_put(&in, 3, &l2, 0, true);
	add_req(&in, 4, "image_load",
		load_args(cfg.digest, layers, 3, tags, 2));
	add_put(&in, 5, &cfg, 0, true);
	add_req(&in, 6, "image_load",
		load_args(cfg.digest, layers, 3, tags, 2));
	/* Docker has it now: tags only */
	add_req(&in, 7, "image_load",
		load_args(cfg.digest, layers, 3, tags, 1));
	serve_mem(state_dir, f.sock, &in, &rs);
	assert_int_equal(json_array_size(rs), 7);
	assert_string_equal(err_code(reply_at(rs, 3)), "not-found");
	assert_non_null(strstr(err_msg(reply_at(rs, 3)), cfg.digest));
	r = result(reply_at(rs, 5));
	assert_true(json_is_true(json_object_get(r, "loaded")));
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    cfg.digest);
	r = result(reply_at(rs, 6));
	assert_true(json_is_false(json_object_get(r, "loaded")));
	assert_int_equal(f.loads, 1);
	assert_string_equal(ml_buf_str(&f.tags),
			    "repo=mlctl-test%2Fapp&tag=2\n"
			    "repo=localhost%2Fx.y_z-w&tag=v1.0_A\n"
			    "repo=mlctl-test%2Fapp&tag=2\n");
	json_decref(rs);

	/* the archive: manifest, config, each distinct layer once */
	tar = read_tar(f.body_path);
	assert_int_equal(json_array_size(tar), 6);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(tar, 0), "name")),
			    "manifest.json");
	man = json_loads(json_string_value(json_object_get(
				 json_array_get(tar, 0), "data")),
			 0, NULL);
	assert_non_null(man);
	name = (struct ml_buf)ML_BUF_INIT(0);
	ml_buf_addf(&name, "%s.json", cfg.digest + 7);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(man, 0), "Config")),
			    name.data);
	assert_member(json_array_get(tar, 1), name.data, &cfg);
	assert_int_equal(json_array_size(json_object_get(json_array_get(man, 0),
							 "RepoTags")),
			 2);
	r = json_object_get(json_array_get(man, 0), "Layers");
	assert_int_equal(json_array_size(r), 3);
	for (i = 0; i < 3; i++) {
		ml_buf_reset(&name);
		ml_buf_addf(&name, "%s/layer.tar", layers[i]->digest + 7);
		assert_string_equal(json_string_value(json_array_get(r, i)),
				    name.data);
	}
	ml_buf_reset(&name);
	ml_buf_addf(&name, "%s/", l1.digest + 7);
	assert_member(json_array_get(tar, 2), name.data, NULL);
	ml_buf_addstr(&name, "layer.tar");
	assert_member(json_array_get(tar, 3), name.data, &l1);
	ml_buf_reset(&name);
	ml_buf_addf(&name, "%s/layer.tar", l2.digest + 7);
	assert_member(json_array_get(tar, 5), name.data, &l2);
	json_decref(man);
	json_decref(tar);

	/* Docker says no, or says yes and has nothing */
	f.have_image = false;
	f.mode = LOAD_ERROR_LINE;
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_req(&in, 2, "image_load",
		load_args(cfg.digest, layers, 2, tags, 0));
	serve_mem(state_dir, f.sock, &in, &rs);
	assert_string_equal(err_code(reply_at(rs, 1)), "failed");
	assert_string_equal(err_msg(reply_at(rs, 1)),
			    "docker: POST /images/load: boom");
	json_decref(rs);
	f.mode = LOAD_NO_IMAGE;
	serve_mem(state_dir, f.sock, &in, &rs);
	assert_string_equal(err_code(reply_at(rs, 1)), "failed");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)),
			       "it said: Loaded image ID: sha256:"));
	json_decref(rs);

	ml_buf_release(&name);
	ml_buf_release(&in);
	ml_buf_release(&big);
	free(cfg.data);
	free(l1.data);
	free(l2.data);
	fake_stop(&f);
	ml_test_rmtree(state_dir);
	free(state_dir);
}

/*
 * Docker lists an image whose layers start like the one to load: the
 * archive names every layer in its manifest but carries only those above
 * the shared start, which need not even be in the store.
 */
static void test_blob_ops__image_load_partial(void **state)
{
	struct fake f;
	struct blob cfg, l1, l2;
	const struct blob *layers[] = {&l1, &l2};
	const char *tags[] = {"mlctl-test/app:3"};
	struct ml_buf in = ML_BUF_INIT(0), big = ML_BUF_INIT(0),
		      name = ML_BUF_INIT(0);
	char *state_dir = ml_test_tmpdir("blobops-partial");
	json_t *rs, *r, *tar, *man;

	(void)state;
	fake_start(&f);
	blob_set(&l1, "layer one, which Docker has", 27);
	blob_set(&l2, "layer two", 9);
	ml_buf_addf(&big, "{\"rootfs\":{\"diff_ids\":[\"%s\",\"%s\"]}}",
		    l1.digest, l2.digest);
	blob_set(&cfg, big.data, big.len);
	snprintf(f.image_id, sizeof(f.image_id), "%s", cfg.digest);
	snprintf(f.other_id, sizeof(f.other_id), "sha256:%064d", 7);
	ml_buf_reset(&big);
	ml_buf_addf(&big, "[\"%s\",\"sha256:%064d\"]", l1.digest, 9);
	f.other_layers = big.data;

	/* l1 is never put: Docker has it, under the other image */
	frame_add_json(&in, HELLO);
	add_put(&in, 2, &l2, 0, true);
	add_put(&in, 3, &cfg, 0, true);
	add_req(&in, 4, "image_load",
		load_args(cfg.digest, layers, 2, tags, 1));
	serve_mem(state_dir, f.sock, &in, &rs);
	assert_int_equal(json_array_size(rs), 4);
	r = result(reply_at(rs, 3));
	assert_true(json_is_true(json_object_get(r, "loaded")));
	assert_int_equal(f.loads, 1);
	json_decref(rs);

	/* manifest, config, l2's directory and file; l1 named, not carried */
	tar = read_tar(f.body_path);
	assert_int_equal(json_array_size(tar), 4);
	man = json_loads(json_string_value(json_object_get(
				 json_array_get(tar, 0), "data")),
			 0, NULL);
	assert_non_null(man);
	r = json_object_get(json_array_get(man, 0), "Layers");
	assert_int_equal(json_array_size(r), 2);
	ml_buf_addf(&name, "%s/layer.tar", l1.digest + 7);
	assert_string_equal(json_string_value(json_array_get(r, 0)), name.data);
	ml_buf_reset(&name);
	ml_buf_addf(&name, "%s/layer.tar", l2.digest + 7);
	assert_member(json_array_get(tar, 3), name.data, &l2);
	json_decref(man);
	json_decref(tar);

	ml_buf_release(&name);
	ml_buf_release(&in);
	ml_buf_release(&big);
	free(cfg.data);
	free(l1.data);
	free(l2.data);
	f.other_layers = NULL;
	fake_stop(&f);
	ml_test_rmtree(state_dir);
	free(state_dir);
}

static void test_blob_ops__common_prefix(void **state)
{
	json_t *a = json_pack("[sss]", "sha256:1", "sha256:2", "sha256:3");
	json_t *b = json_pack("[ss]", "sha256:1", "sha256:2");
	json_t *c = json_pack("[ss]", "sha256:1", "sha256:9");
	json_t *d = json_pack("[is]", 1, "sha256:2");

	(void)state;
	assert_int_equal(ml_layers_common_prefix(a, b), 2);
	assert_int_equal(ml_layers_common_prefix(b, a), 2);
	assert_int_equal(ml_layers_common_prefix(a, a), 3);
	assert_int_equal(ml_layers_common_prefix(c, a), 1);
	assert_int_equal(ml_layers_common_prefix(d, a), 0);
	assert_int_equal(ml_layers_common_prefix(NULL, a), 0);
	assert_int_equal(ml_layers_common_prefix(json_object_get(a, "x"), a),
			 0);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
}

static void test_blob_ops__image_load_args(void **state)
{
	static const char *const bad_tags[] = {
		"noTag", "Upper:1", ":1",
		"a:",	 "-a:1",    "a b:1",
		"a:b:c", "a:t/x",   "a:" /* + 129 chars below */,
	};
	struct blob l1;
	const struct blob *layers[] = {&l1};
	struct ml_buf in = ML_BUF_INIT(0), longtag = ML_BUF_INIT(0);
	const char *tag;
	json_t *rs, *a;
	size_t i, n = 0;
	int id = 2;

	blob_set(&l1, "one", 3);
	frame_add_json(&in, HELLO);
	for (i = 0; i < ML_ARRAY_SIZE(bad_tags); i++) {
		tag = bad_tags[i];
		if (i == ML_ARRAY_SIZE(bad_tags) - 1) {
			ml_buf_addstr(&longtag, "a:");
			while (longtag.len < 131)
				ml_buf_addch(&longtag, 'x');
			tag = longtag.data;
		}
		add_req(&in, id++, "image_load",
			load_args(l1.digest, layers, 1, &tag, 1));
		n++;
	}
	a = load_args(l1.digest, layers, 1, NULL, 0);
	json_object_set_new(a, "config", json_string("sha256:00"));
	add_req(&in, id++, "image_load", a);
	a = load_args("sha256:abc", layers, 1, NULL, 0);
	add_req(&in, id++, "image_load", a);
	a = load_args(l1.digest, layers, 1, NULL, 0);
	json_array_append_new(json_object_get(a, "layers"), json_integer(1));
	add_req(&in, id++, "image_load", a);
	a = load_args(l1.digest, layers, 1, NULL, 0);
	for (i = 0; i < 256; i++)
		json_array_append_new(json_object_get(a, "layers"),
				      json_string(l1.digest));
	add_req(&in, id++, "image_load", a);
	n += 4;
	/* the checks come before Docker is asked: no daemon here */
	serve_mem("/nonexistent/state", "/nonexistent/d.sock", &in, &rs);
	assert_int_equal(json_array_size(rs), n + 1);
	for (i = 1; i <= n; i++)
		assert_string_equal(err_code(reply_at(rs, i)), "bad-request");
	json_decref(rs);
	ml_buf_release(&in);
	ml_buf_release(&longtag);
	free(l1.data);
}

/* ---- against a real dockerd (check_image_load.sh) ---------------------- */

static void read_blob(struct blob *b, const char *dir, const char *name)
{
	struct ml_buf d = ML_BUF_INIT((size_t)512 << 20);
	char *p = ml_xasprintf("%s/%s", dir, name);

	assert_int_equal(ml_buf_read_file(&d, p), 0);
	blob_set(b, d.data ? d.data : "", d.len);
	ml_buf_release(&d);
	free(p);
}

static void test_blob_ops__real_docker(void **state)
{
	const char *dir = getenv("MLCTL_TEST_IMAGE_DIR");
	const char *sock = getenv("MLCTL_TEST_DOCKER_SOCK");
	const char *rm = getenv("MLCTL_TEST_IMAGE_REMOVE");
	struct ml_buf in = ML_BUF_INIT(0), path = ML_BUF_INIT(0);
	struct ml_docker *d = NULL;
	struct blob cfg, *layers = NULL;
	const struct blob **lp = NULL;
	const char **tags = NULL;
	char *state_dir, *rmlist, *ref, *next;
	json_t *man, *m, *diff, *rs, *r, *img = NULL, *v;
	size_t nl, nt, i, j, dups = 0;
	int id = 2;

	if (!dir || !sock) {
		print_message("skipped: set MLCTL_TEST_IMAGE_DIR and "
			      "MLCTL_TEST_DOCKER_SOCK (run "
			      "tests/unit/agent/check_image_load.sh)\n");
		skip();
	}
	state_dir = ml_test_tmpdir("blobops-real");
	ml_buf_addf(&path, "%s/manifest.json", dir);
	man = json_load_file(path.data, 0, NULL);
	assert_non_null(man);
	m = json_array_get(man, 0);
	read_blob(&cfg, dir, json_string_value(json_object_get(m, "Config")));
	/* Docker names the config by its digest */
	assert_memory_equal(json_string_value(json_object_get(m, "Config")),
			    cfg.digest + 7, 64);
	nl = json_array_size(json_object_get(m, "Layers"));
	nt = json_array_size(json_object_get(m, "RepoTags"));
	assert_true(nl >= 2 && nt >= 1);
	layers = ml_xcalloc(nl, sizeof(*layers));
	lp = ml_xcalloc(nl, sizeof(*lp));
	tags = ml_xcalloc(nt + 1, sizeof(*tags));
	v = json_loadb((const char *)cfg.data, cfg.n, 0, NULL);
	diff = json_object_get(json_object_get(v, "rootfs"), "diff_ids");
	assert_int_equal(json_array_size(diff), nl);
	for (i = 0; i < nl; i++) {
		read_blob(&layers[i], dir,
			  json_string_value(json_array_get(
				  json_object_get(m, "Layers"), i)));
		/* a saved layer.tar is the uncompressed layer: its digest is
		 * the diffID */
		assert_string_equal(layers[i].digest,
				    json_string_value(json_array_get(diff, i)));
		lp[i] = &layers[i];
	}
	json_decref(v);
	for (i = 0; i < nt; i++)
		tags[i] = json_string_value(
			json_array_get(json_object_get(m, "RepoTags"), i));
	tags[nt] = "mlctl-test/loaded:by-agent";

	/* every blob into a fresh store; the first layer in two sittings */
	frame_add_json(&in, HELLO);
	add_put(&in, id++, &layers[0], 0, false);
	serve_mem(state_dir, sock, &in, &rs);
	json_decref(rs);
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, id++, &layers[0], layers[0].n / 2, true);
	for (i = 1; i < nl; i++) {
		for (j = 0; j < i && strcmp(layers[j].digest, layers[i].digest);
		     j++)
			;
		if (j == i)
			add_put(&in, id++, &layers[i], 0, true);
		else
			dups++;
	}
	add_put(&in, id++, &cfg, 0, true);
	serve_mem(state_dir, sock, &in, &rs);
	for (i = 1; i < json_array_size(rs); i++)
		result(reply_at(rs, i));
	json_decref(rs);

	/* the image leaves Docker */
	assert_int_equal(ml_docker_new(&d, sock), 0);
	rmlist = ml_xstrdup(rm ? rm : "");
	for (ref = rmlist; *ref; ref = next) {
		next = ref + strcspn(ref, " ");
		if (*next)
			*next++ = '\0';
		if (!*ref)
			continue;
		ml_buf_reset(&path);
		ml_buf_addf(&path, "/images/%s?force=1", ref);
		if (ml_docker_request(d, "DELETE", path.data, NULL, &v) < 0)
			fail_msg("%s", ml_err_msg());
		json_decref(v);
	}
	free(rmlist);
	ml_buf_reset(&path);
	ml_buf_addf(&path, "/images/%s/json", cfg.digest);
	assert_int_equal(ml_docker_get(d, path.data, &img), ML_ENOTFOUND);

	/* back from the store; a second time only tags */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_req(&in, 2, "image_load",
		load_args(cfg.digest, lp, nl, tags, nt + 1));
	add_req(&in, 3, "image_load",
		load_args(cfg.digest, lp, nl, tags, nt + 1));
	serve_mem(state_dir, sock, &in, &rs);
	r = result(reply_at(rs, 1));
	assert_true(json_is_true(json_object_get(r, "loaded")));
	assert_string_equal(json_string_value(json_object_get(r, "id")),
			    cfg.digest);
	r = result(reply_at(rs, 2));
	assert_true(json_is_false(json_object_get(r, "loaded")));
	json_decref(rs);

	assert_int_equal(ml_docker_get(d, path.data, &img), 0);
	assert_string_equal(json_string_value(json_object_get(img, "Id")),
			    cfg.digest);
	for (i = 0; i <= nt; i++) {
		json_array_foreach(json_object_get(img, "RepoTags"), j, v)
		{
			if (!strcmp(json_string_value(v), tags[i]))
				break;
		}
		if (j == json_array_size(json_object_get(img, "RepoTags")))
			fail_msg("tag %s missing after the load", tags[i]);
	}
	print_message("loaded %s (%zu layers, %zu named twice) with %zu "
		      "tags\n",
		      cfg.digest, nl, dups, nt + 1);

	json_decref(img);
	ml_docker_free(d);
	for (i = 0; i < nl; i++)
		free(layers[i].data);
	free(layers);
	free(lp);
	free(tags);
	free(cfg.data);
	json_decref(man);
	ml_buf_release(&in);
	ml_buf_release(&path);
	ml_test_rmtree(state_dir);
	free(state_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_ops__image_load_args),
		cmocka_unit_test(test_blob_ops__image_load_fake),
		cmocka_unit_test(test_blob_ops__image_load_partial),
		cmocka_unit_test(test_blob_ops__common_prefix),
		cmocka_unit_test(test_blob_ops__real_docker),
	};

	ml_log_init("test", ML_LOG_QUIET);
	unsetenv("MLCTL_BLOB_SPACE_MARGIN");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
