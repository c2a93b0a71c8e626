/*
 * Unit tests of the blob store (agent/blobstore.c) through the real
 * request loop: blob_put and blobs_have frames go through ml_agent_serve()
 * over an in-memory stream, or over a socketpair with the loop in a thread
 * when the test must act between frames (a full disk, a second put of the
 * same blob). Every test gets a fresh state dir under /tmp; the
 * small-filesystem test mounts a 2 MiB tmpfs in a private mount namespace
 * (root only; skipped otherwise).
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/sha256.h"
#include "agent/agent.h"
#include "agent/blobstore.h"
#include "tests/unit/common/mem_io.h"
#include "tests/support/proc.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>
#include <cmocka.h>

#define NO_DOCKER "/nonexistent/mlctl-test/docker.sock"
#define HELLO "{\"v\":1,\"id\":1,\"op\":\"hello\",\"args\":{\"versions\":[1]}}"
#define BIG ((size_t)3 << 20)

struct fixture {
	char dir[64];	     /* the state dir */
	unsigned char *data; /* BIG bytes of test data */
	char digest[ML_BLOB_DIGEST_SIZE];
};

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	/* half noise, half text: compressible, but not to nothing */
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (i / 4096) % 2 ? (unsigned char)x
				      : (unsigned char)("layer"[i % 5]);
	}
}

static void digest_of(char out[ML_BLOB_DIGEST_SIZE], const void *p, size_t n)
{
	char hex[ML_SHA256_HEX];

	ml_sha256_hex(p, n, hex);
	snprintf(out, ML_BLOB_DIGEST_SIZE, "sha256:%s", hex);
}

static int setup(void **state)
{
	struct fixture *f = ml_xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/mlctl-test-blobs-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->data = ml_xmalloc(BIG);
	fill(f->data, BIG, 1);
	digest_of(f->digest, f->data, BIG);
	unsetenv("MLCTL_BLOB_SPACE_MARGIN");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ml_test_rmtree(f->dir);
	free(f->data);
	free(f);
	return 0;
}

static void agent_setup(struct ml_agent *a, const char *state_dir)
{
	ml_agent_init(a);
	a->docker_sock = NO_DOCKER;
	a->state_dir = state_dir;
}

/* Run serve over a memory stream; *replies gets the decoded replies. */
static int serve_mem(const char *state_dir, const struct ml_buf *in,
		     json_t **replies)
{
	struct ml_agent a;
	struct mem_io m;
	struct ml_io io;
	int rc;

	agent_setup(&a, state_dir);
	mem_io_init(&io, &m, in->data, in->len);
	m.chunk = 100000; /* short reads, across frame boundaries */
	rc = ml_agent_serve(&a, &io);
	*replies = frames_decode(m.out.data, m.out.len);
	assert_non_null(*replies);
	mem_io_release(&m);
	ml_agent_release(&a);
	return rc;
}

static void add_put_req(struct ml_buf *in, int id, const char *digest,
			uint64_t size, uint64_t offset, const char *comp)
{
	struct ml_buf j = ML_BUF_INIT(0);

	ml_buf_addf(&j,
		    "{\"v\":1,\"id\":%d,\"op\":\"blob_put\",\"args\":"
		    "{\"digest\":\"%s\",\"size\":%" PRIu64 ",\"offset\":"
		    "%" PRIu64 ",\"compression\":\"%s\"}}",
		    id, digest, size, offset, comp);
	frame_add_json(in, j.data);
	ml_buf_release(&j);
}

/* Data frames of at most chunk bytes each; end adds the end marker. */
static void add_data(struct ml_buf *in, const void *p, size_t n, size_t chunk,
		     bool end)
{
	const unsigned char *q = p;
	size_t k;

	for (; n; n -= k, q += k) {
		k = n < chunk ? n : chunk;
		frame_add(in, ML_FRAME_DATA, q, k);
	}
	if (end)
		frame_add(in, ML_FRAME_DATA, "", 0);
}

/* zstd of p[0..n), the caller frees; *zn its size. */
static void *zstd_of(const void *p, size_t n, size_t *zn)
{
	size_t cap = ZSTD_compressBound(n);
	void *z = ml_xmalloc(cap ? cap : 1);

	*zn = ZSTD_compress(z, cap, p, n, 3);
	assert_false(ZSTD_isError(*zn));
	return z;
}

/* A whole put: request, data (compressed when comp is "zstd"), marker. */
static void add_put(struct ml_buf *in, int id, const char *digest,
		    const unsigned char *all, uint64_t size, uint64_t offset,
		    const char *comp, size_t chunk)
{
	size_t zn;
	void *z;

	add_put_req(in, id, digest, size, offset, comp);
	if (!strcmp(comp, "zstd")) {
		z = zstd_of(all + offset, size - offset, &zn);
		add_data(in, z, zn, chunk, true);
		free(z);
	} else {
		add_data(in, all + offset, size - offset, chunk, true);
	}
}

static void add_have(struct ml_buf *in, int id, const char *digests_json)
{
	struct ml_buf j = ML_BUF_INIT(0);

	ml_buf_addf(&j,
		    "{\"v\":1,\"id\":%d,\"op\":\"blobs_have\",\"args\":"
		    "{\"digests\":%s}}",
		    id, digests_json);
	frame_add_json(in, j.data);
	ml_buf_release(&j);
}

static json_t *reply_at(json_t *replies, size_t i)
{
	json_t *r = json_array_get(replies, i);

	assert_non_null(r);
	return r;
}

static json_int_t rid(json_t *r)
{
	return json_integer_value(json_object_get(r, "id"));
}

static json_t *result(json_t *r)
{
	if (!json_is_true(json_object_get(r, "ok")))
		fail_msg("not ok: %s", json_dumps(r, 0));
	return json_object_get(r, "result");
}

static const char *err_code(json_t *r)
{
	assert_true(json_is_false(json_object_get(r, "ok")));
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "code"));
}

static const char *err_msg(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "message"));
}

static char *path_in(const char *dir, const char *sub, const char *digest,
		     const char *suffix)
{
	return ml_xasprintf("%s/blobs/%s/%s%s", dir, sub, digest + 7, suffix);
}

/* -1 when absent, else the file's size. */
static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

static long long final_size(const struct fixture *f, const char *digest)
{
	char *p = path_in(f->dir, "sha256", digest, "");
	long long n = file_size(p);

	free(p);
	return n;
}

static long long part_size(const struct fixture *f, const char *digest)
{
	char *p = path_in(f->dir, "tmp", digest, ".part");
	long long n = file_size(p);

	free(p);
	return n;
}

static void drop_part(const struct fixture *f, const char *digest)
{
	char *p = path_in(f->dir, "tmp", digest, ".part");

	unlink(p);
	free(p);
}

/* The stored blob digest holds exactly p[0..n). */
static void assert_stored(const struct fixture *f, const char *digest,
			  const void *p, size_t n)
{
	char *path = path_in(f->dir, "sha256", digest, "");
	struct ml_buf b = ML_BUF_INIT((size_t)64 << 20);
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ml_buf_read_file(&b, path), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, p, n);
	ml_buf_release(&b);
	free(path);
	assert_int_equal(part_size(f, digest), -1);
}

/* Put the first n bytes of data as a .part: a put cut off by EOF. */
static void make_partial(const struct fixture *f, const char *digest,
			 const unsigned char *data, uint64_t size, size_t n)
{
	struct ml_buf in = ML_BUF_INIT(0);
	json_t *rs;

	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, digest, size, 0, "none");
	add_data(&in, data, n, 300000, false);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	/* the reply to a put cut short says so (nobody reads it) */
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-request");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "stream ended"));
	assert_int_equal(part_size(f, digest), (long long)n);
	json_decref(rs);
	ml_buf_release(&in);
}

static void test_blobstore__put_whole(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0), have = ML_BUF_INIT(0);
	unsigned char small[1000];
	char dsmall[ML_BLOB_DIGEST_SIZE], *p;
	json_t *rs, *r;
	struct stat st;

	fill(small, sizeof(small), 2);
	digest_of(dsmall, small, sizeof(small));
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 0, "none", 256 << 10);
	add_put(&in, 3, dsmall, small, sizeof(small), 0, "zstd", 7);
	ml_buf_addf(&have, "[\"%s\",\"sha256:%064d\",\"%s\"]", f->digest, 0,
		    dsmall);
	add_have(&in, 4, have.data);
	/* the same blob again: the data is read and dropped */
	add_put(&in, 5, dsmall, small, sizeof(small), 0, "none", 100);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 5);

	r = result(reply_at(rs, 1));
	assert_int_equal(rid(reply_at(rs, 1)), 2);
	assert_string_equal(json_string_value(json_object_get(r, "digest")),
			    f->digest);
	assert_int_equal(json_integer_value(json_object_get(r, "size")), BIG);
	assert_true(json_is_true(json_object_get(r, "stored")));
	assert_true(json_is_false(json_object_get(r, "existed")));
	assert_stored(f, f->digest, f->data, BIG);
	result(reply_at(rs, 2));
	assert_stored(f, dsmall, small, sizeof(small));

	r = result(reply_at(rs, 3));
	assert_int_equal(json_array_size(json_object_get(r, "missing")), 1);
	assert_int_equal(json_object_size(json_object_get(r, "partial")), 0);

	r = result(reply_at(rs, 4));
	assert_int_equal(rid(reply_at(rs, 4)), 5);
	assert_true(json_is_true(json_object_get(r, "existed")));

	/* directories 0700, nothing left in tmp */
	p = ml_xasprintf("%s/blobs", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	free(p);
	p = ml_xasprintf("%s/blobs/tmp", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_nlink, 2);
	free(p);

	json_decref(rs);
	ml_buf_release(&in);
	ml_buf_release(&have);
}

static void test_blobstore__resume(void **state)
{
	struct fixture *f = *state;
	const size_t offs[] = {1, 65536, ((size_t)1 << 20) + 3, BIG - 1, BIG};
	struct ml_buf in = ML_BUF_INIT(0), have = ML_BUF_INIT(0);
	char *p;
	json_t *rs, *r;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(offs); i++) {
		make_partial(f, f->digest, f->data, BIG, offs[i]);

		ml_buf_reset(&in);
		ml_buf_reset(&have);
		frame_add_json(&in, HELLO);
		ml_buf_addf(&have, "[\"%s\"]", f->digest);
		add_have(&in, 2, have.data);
		add_put(&in, 3, f->digest, f->data, BIG, offs[i],
			i % 2 ? "zstd" : "none", 70000);
		add_have(&in, 4, have.data);
		assert_int_equal(serve_mem(f->dir, &in, &rs), 0);

		r = result(reply_at(rs, 1));
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(r, "missing"), 0)),
				    f->digest);
		assert_int_equal(
			json_integer_value(json_object_get(
				json_object_get(r, "partial"), f->digest)),
			offs[i]);
		result(reply_at(rs, 2));
		assert_stored(f, f->digest, f->data, BIG);
		r = result(reply_at(rs, 3));
		assert_int_equal(json_array_size(json_object_get(r, "missing")),
				 0);
		json_decref(rs);

		p = path_in(f->dir, "sha256", f->digest, "");
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	ml_buf_release(&in);
	ml_buf_release(&have);
}

static void test_blobstore__corrupt(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0);
	unsigned char junk[5000];
	char other[ML_BLOB_DIGEST_SIZE];
	json_t *rs;

	digest_of(other, "other", 5);
	/* the data does not match the digest */
	frame_add_json(&in, HELLO);
	add_put(&in, 2, other, f->data, 200000, 0, "zstd", 4096);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), ML_BLOB_ERR_CORRUPT);
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "has digest"));
	assert_int_equal(part_size(f, other), -1);
	assert_int_equal(final_size(f, other), -1);
	json_decref(rs);

	/* resumed from a partial, the partial bytes count too */
	make_partial(f, f->digest, f->data + 1, BIG, 1000);
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 1000, "none", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), ML_BLOB_ERR_CORRUPT);
	assert_int_equal(part_size(f, f->digest), -1);
	json_decref(rs);

	/* data that is not zstd */
	memset(junk, 0x5a, sizeof(junk));
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 0, "zstd");
	add_data(&in, junk, sizeof(junk), 1000, true);
	add_have(&in, 3, "[]");
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 3);
	assert_string_equal(err_code(reply_at(rs, 1)), ML_BLOB_ERR_CORRUPT);
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "bad zstd data"));
	assert_int_equal(part_size(f, f->digest), -1);
	result(reply_at(rs, 2));
	json_decref(rs);
	ml_buf_release(&in);
}

static void test_blobstore__size_mismatch(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0);
	size_t zn;
	void *z;
	json_t *rs;

	/* more bytes than the size: dropped, the rest of the data too */
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, 1000, 0, "none");
	add_data(&in, f->data, 5000, 600, true);
	add_have(&in, 3, "[]");
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 3);
	assert_string_equal(err_code(reply_at(rs, 1)), "invalid");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "more bytes"));
	assert_int_equal(part_size(f, f->digest), -1);
	result(reply_at(rs, 2));
	json_decref(rs);

	/* the same through zstd, which decompresses to more */
	z = zstd_of(f->data, 100000, &zn);
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, 99999, 0, "zstd");
	add_data(&in, z, zn, 1 << 20, true);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "invalid");
	assert_int_equal(part_size(f, f->digest), -1);
	json_decref(rs);

	/* a zstd stream cut inside a frame */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, 100000, 0, "zstd");
	add_data(&in, z, zn - 10, 1 << 20, true);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "invalid");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "inside a frame"));
	json_decref(rs);
	free(z);
	drop_part(f, f->digest);

	/* fewer bytes than the size: kept as a partial to resume from */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 0, "none");
	add_data(&in, f->data, 4000, 1000, true);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "invalid");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "kept for resuming"));
	assert_int_equal(part_size(f, f->digest), 4000);
	json_decref(rs);

	/* a stored blob put again with another size */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 4000, "none", 1 << 20);
	add_put(&in, 3, f->digest, f->data, BIG - 1, 0, "none", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	result(reply_at(rs, 1));
	assert_string_equal(err_code(reply_at(rs, 2)), "invalid");
	assert_non_null(strstr(err_msg(reply_at(rs, 2)), "is stored with"));
	assert_stored(f, f->digest, f->data, BIG);
	json_decref(rs);
	ml_buf_release(&in);
}

static void test_blobstore__bad_offset(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0), have = ML_BUF_INIT(0);
	char other[ML_BLOB_DIGEST_SIZE];
	json_t *rs, *r;

	digest_of(other, "other", 5);
	make_partial(f, f->digest, f->data, BIG, 100);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 50, "none", 1 << 20);
	add_put(&in, 3, f->digest, f->data, BIG, 0, "zstd", 1 << 20);
	add_put(&in, 4, other, f->data, 300, 10, "none", 1 << 20);
	ml_buf_addf(&have, "[\"%s\",\"%s\"]", other, f->digest);
	add_have(&in, 5, have.data);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 5);
	assert_string_equal(err_code(reply_at(rs, 1)), ML_BLOB_ERR_BAD_OFFSET);
	assert_non_null(strstr(err_msg(reply_at(rs, 1)),
			       "offset 50 does not match the 100 bytes"));
	assert_string_equal(err_code(reply_at(rs, 2)), ML_BLOB_ERR_BAD_OFFSET);
	assert_non_null(strstr(err_msg(reply_at(rs, 2)), "the 100 bytes"));
	assert_string_equal(err_code(reply_at(rs, 3)), ML_BLOB_ERR_BAD_OFFSET);
	assert_non_null(strstr(err_msg(reply_at(rs, 3)), "the 0 bytes"));
	/* nothing was touched, the stream stayed in sync */
	r = result(reply_at(rs, 4));
	assert_int_equal(rid(reply_at(rs, 4)), 5);
	assert_int_equal(json_array_size(json_object_get(r, "missing")), 2);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(r, "missing"), 0)),
			    other);
	assert_int_equal(json_object_size(json_object_get(r, "partial")), 1);
	assert_int_equal(part_size(f, f->digest), 100);
	assert_int_equal(part_size(f, other), -1);
	json_decref(rs);

	/* the controller's mistake is mended by resuming where told */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 100, "zstd", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	result(reply_at(rs, 1));
	assert_stored(f, f->digest, f->data, BIG);
	json_decref(rs);
	ml_buf_release(&in);
	ml_buf_release(&have);
}

static void test_blobstore__eof_and_frames(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0), have = ML_BUF_INIT(0);
	size_t zn;
	void *z;
	json_t *rs, *r;

	/* zstd cut off by the end of the stream: the prefix stays */
	z = zstd_of(f->data, BIG, &zn);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 0, "zstd");
	add_data(&in, z, zn / 2, 65536, false);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-request");
	assert_true(part_size(f, f->digest) > 0);
	json_decref(rs);
	free(z);

	/* a stream that breaks inside a frame stops the put and ends the
	 * session with the protocol error */
	drop_part(f, f->digest);
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 0, "none");
	add_data(&in, f->data, 3000, 1000, false);
	frame_add_len(&in, 5000);
	ml_buf_add(&in, "D12345", 6);
	assert_int_equal(serve_mem(f->dir, &in, &rs), ML_EPROTO);
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-request");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "truncated"));
	assert_int_equal(part_size(f, f->digest), 3000);
	json_decref(rs);

	/*
	 * A JSON frame during a put: the put fails at once (the frame is
	 * dropped), the data frames after it are strays, the .part stays.
	 */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 3000, "none");
	add_data(&in, f->data + 3000, 2000, 1000, false);
	add_have(&in, 3, "[]");
	add_data(&in, f->data + 5000, 1000, 1000, true);
	ml_buf_addf(&have, "[\"%s\"]", f->digest);
	add_have(&in, 4, have.data);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 5);
	assert_int_equal(rid(reply_at(rs, 1)), 2);
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-request");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "JSON frame"));
	assert_int_equal(rid(reply_at(rs, 2)), 0);
	assert_non_null(strstr(err_msg(reply_at(rs, 2)), "data frame"));
	assert_int_equal(rid(reply_at(rs, 3)), 0);
	r = result(reply_at(rs, 4));
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(r, "partial"), f->digest)),
			 5000);
	json_decref(rs);

	/* an unknown frame type during a put: the same */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put_req(&in, 2, f->digest, BIG, 5000, "none");
	frame_add(&in, 'X', "xx", 2);
	add_have(&in, 3, "[]");
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), 3);
	assert_string_equal(err_code(reply_at(rs, 1)), "bad-request");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "bad frame"));
	result(reply_at(rs, 2));
	json_decref(rs);

	/* and the partial still resumes */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 5000, "zstd", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	result(reply_at(rs, 1));
	assert_stored(f, f->digest, f->data, BIG);
	json_decref(rs);
	ml_buf_release(&in);
	ml_buf_release(&have);
}

static void test_blobstore__bad_args(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"{\"digest\":\"sha256:abc\",\"size\":10}",
		"{\"digest\":\"sha256:HEX\",\"size\":-1}",
		"{\"digest\":\"sha256:HEX\"}",
		"{\"digest\":\"sha256:HEX\",\"size\":10,\"offset\":11}",
		"{\"digest\":\"sha256:HEX\",\"size\":10,\"compression\":"
		"\"gz\"}",
		"{\"digest\":\"SHA256:HEX\",\"size\":10}",
		"{\"digest\":\"sha256:HEX\",\"size\":9007199254740993}",
	};
	struct ml_buf in = ML_BUF_INIT(0), a = ML_BUF_INIT(0);
	struct ml_agent ag;
	json_t *rs, *req, *r;
	const char *hole;
	size_t i;

	frame_add_json(&in, HELLO);
	for (i = 0; i < ML_ARRAY_SIZE(bad); i++) {
		ml_buf_reset(&a);
		ml_buf_addf(&a,
			    "{\"v\":1,\"id\":%zu,\"op\":\"blob_put\","
			    "\"args\":",
			    i + 2);
		hole = strstr(bad[i], "HEX");
		if (hole) {
			ml_buf_add(&a, bad[i], (size_t)(hole - bad[i]));
			ml_buf_addstr(&a, f->digest + 7);
			ml_buf_addstr(&a, hole + 3);
		} else {
			ml_buf_addstr(&a, bad[i]);
		}
		ml_buf_addstr(&a, "}");
		frame_add_json(&in, a.data);
		add_data(&in, f->data, 3000, 1000, true);
	}
	add_have(&in, 99, "[]");
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_int_equal(json_array_size(rs), ML_ARRAY_SIZE(bad) + 2);
	for (i = 0; i < ML_ARRAY_SIZE(bad); i++) {
		assert_int_equal(rid(reply_at(rs, i + 1)), i + 2);
		assert_string_equal(err_code(reply_at(rs, i + 1)),
				    "bad-request");
	}
	result(reply_at(rs, ML_ARRAY_SIZE(bad) + 1));
	assert_int_equal(part_size(f, f->digest), -1);
	json_decref(rs);

	/* outside a session (no data stream) blob_put cannot work */
	agent_setup(&ag, f->dir);
	ag.protocol = 1;
	req = json_pack("{s:i,s:i,s:s,s:{s:s,s:i}}", "v", 1, "id", 7, "op",
			"blob_put", "args", "digest", f->digest, "size", 1);
	r = ml_agent_dispatch(&ag, req);
	assert_string_equal(err_code(r), "failed");
	json_decref(r);
	json_decref(req);
	ml_agent_release(&ag);
	ml_buf_release(&in);
	ml_buf_release(&a);
}

static void test_blobstore__have(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0), j = ML_BUF_INIT(0);
	char d2[ML_BLOB_DIGEST_SIZE], d3[ML_BLOB_DIGEST_SIZE];
	json_t *rs, *r, *m;
	int i;

	digest_of(d2, "two", 3);
	digest_of(d3, "three", 5);
	make_partial(f, d3, (const unsigned char *)"thr", 5, 3);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, d2, (const unsigned char *)"two", 3, 0, "none", 10);
	ml_buf_addf(&j, "[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]", d3, f->digest,
		    d2, d3, f->digest);
	add_have(&in, 3, j.data);
	add_have(&in, 4, "[]");
	add_have(&in, 5, "[\"sha256:0\"]");
	add_have(&in, 6, "\"x\"");
	ml_buf_reset(&j);
	ml_buf_addch(&j, '[');
	for (i = 0; i < 1001; i++)
		ml_buf_addf(&j, "%s\"%s\"", i ? "," : "", d2);
	ml_buf_addch(&j, ']');
	add_have(&in, 7, j.data);
	ml_buf_reset(&j);
	ml_buf_addf(&j, "[\"%s\",\"sha256:%s\"]", d2, f->digest + 7);
	j.data[j.len - 3] = 'A'; /* uppercase hex */
	add_have(&in, 8, j.data);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);

	/* missing in request order, once each; the partial one counted */
	r = result(reply_at(rs, 2));
	m = json_object_get(r, "missing");
	assert_int_equal(json_array_size(m), 2);
	assert_string_equal(json_string_value(json_array_get(m, 0)), d3);
	assert_string_equal(json_string_value(json_array_get(m, 1)), f->digest);
	assert_int_equal(json_object_size(json_object_get(r, "partial")), 1);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(r, "partial"), d3)),
			 3);
	r = result(reply_at(rs, 3));
	assert_int_equal(json_array_size(json_object_get(r, "missing")), 0);
	for (i = 4; i <= 7; i++) {
		assert_int_equal(rid(reply_at(rs, (size_t)i)), i + 1);
		assert_string_equal(err_code(reply_at(rs, (size_t)i)),
				    "bad-request");
	}
	assert_non_null(strstr(err_msg(reply_at(rs, 6)), "at most 1000"));
	json_decref(rs);
	ml_buf_release(&in);
	ml_buf_release(&j);
}

static int cmp_info(const void *x, const void *y)
{
	const struct ml_blob_info *a = x, *b = y;

	return strcmp(a->digest, b->digest);
}

static void test_blobstore__list(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0);
	struct ml_blobstore *s;
	struct ml_blob_info *v = NULL;
	char d2[ML_BLOB_DIGEST_SIZE], *p;
	size_t n = 99;
	json_t *rs;
	FILE *junk;

	ml_blobstore_open(&s, f->dir);
	assert_int_equal(ml_blobstore_list(&v, &n, s), 0);
	assert_int_equal(n, 0);
	assert_null(v);

	digest_of(d2, "two", 3);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, 12345, 0, "none", 1000);
	add_put(&in, 3, d2, (const unsigned char *)"two", 3, 0, "none", 10);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	json_decref(rs);
	/* the first was not f->digest's data: it failed; make it partial */
	make_partial(f, f->digest, f->data, BIG, 777);
	p = ml_xasprintf("%s/blobs/sha256/not-a-blob", f->dir);
	junk = fopen(p, "w");
	assert_non_null(junk);
	fclose(junk);
	free(p);

	assert_int_equal(ml_blobstore_list(&v, &n, s), 0);
	assert_int_equal(n, 2);
	qsort(v, n, sizeof(*v), cmp_info);
	if (strcmp(d2, f->digest) > 0) {
		struct ml_blob_info t = v[0];

		v[0] = v[1];
		v[1] = t;
	}
	assert_string_equal(v[0].digest, d2);
	assert_int_equal(v[0].size, 3);
	assert_false(v[0].partial);
	assert_string_equal(v[1].digest, f->digest);
	assert_int_equal(v[1].size, 777);
	assert_true(v[1].partial);
	assert_true(v[1].mtime > 0);
	free(v);
	ml_blobstore_free(s);
	ml_buf_release(&in);
}

/* The loop in a thread over a socketpair, for tests acting mid-stream. */
struct serve_arg {
	const char *state_dir;
	int fd;
	int rc;
};

static void *serve_thread(void *p)
{
	struct serve_arg *s = p;
	struct ml_io_fd fdctx;
	struct ml_agent a;
	struct ml_io io;

	agent_setup(&a, s->state_dir);
	ml_io_fd_init(&io, &fdctx, s->fd, s->fd, 20000);
	s->rc = ml_agent_serve(&a, &io);
	ml_agent_release(&a);
	return NULL;
}

struct session {
	struct serve_arg arg;
	pthread_t th;
	int sv[2];
	struct ml_io_fd fdctx;
	struct ml_io io;
};

static void session_start(struct session *s, const char *state_dir)
{
	json_t *r;
	uint64_t id = 1;

	memset(s, 0, sizeof(*s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s->sv), 0);
	s->arg.state_dir = state_dir;
	s->arg.fd = s->sv[1];
	assert_int_equal(pthread_create(&s->th, NULL, serve_thread, &s->arg),
			 0);
	ml_io_fd_init(&s->io, &s->fdctx, s->sv[0], s->sv[0], 20000);
	assert_int_equal(ml_proto_hello(&s->io, &id, &r), 0);
	json_decref(r);
}

static void session_send(struct session *s, const struct ml_buf *b)
{
	assert_int_equal(s->io.write(s->io.ctx, b->data, b->len), 0);
}

static json_t *session_recv(struct session *s)
{
	json_t *r = NULL;

	assert_int_equal(ml_proto_recv(&s->io, &r), 0);
	return r;
}

static void session_end(struct session *s)
{
	shutdown(s->sv[0], SHUT_WR);
	pthread_join(s->th, NULL);
	assert_int_equal(s->arg.rc, 0);
	close(s->sv[0]);
	close(s->sv[1]);
}

static void wait_part(const struct fixture *f, const char *digest,
		      long long size)
{
	int i;

	for (i = 0; i < 1000 && part_size(f, digest) != size; i++)
		usleep(10000);
	assert_int_equal(part_size(f, digest), size);
}

/* Two puts of one blob at once: the second is refused, not mixed in. */
static void test_blobstore__locked(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0);
	struct session s;
	json_t *rs, *r;

	session_start(&s, f->dir);
	add_put_req(&in, 2, f->digest, BIG, 0, "none");
	add_data(&in, f->data, 5000, 5000, false);
	session_send(&s, &in);
	wait_part(f, f->digest, 5000);

	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, f->digest, f->data, BIG, 5000, "none", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "locked");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "in progress"));
	json_decref(rs);

	ml_buf_reset(&in);
	add_data(&in, f->data + 5000, BIG - 5000, 1 << 20, true);
	session_send(&s, &in);
	r = session_recv(&s);
	assert_int_equal(rid(r), 2);
	result(r);
	json_decref(r);
	session_end(&s);
	assert_stored(f, f->digest, f->data, BIG);
	ml_buf_release(&in);
}

/*
 * A 2 MiB filesystem: puts that cannot fit are refused before a byte is
 * written (statvfs), a disk that fills up during a put (ENOSPC) costs only
 * that put's .part, and blobs already stored stay intact.
 */
static void test_blobstore__small_fs(void **state)
{
	struct fixture *f = *state;
	struct ml_buf in = ML_BUF_INIT(0);
	unsigned char small[256 << 10], *chunk;
	char dsmall[ML_BLOB_DIGEST_SIZE], dmid[ML_BLOB_DIGEST_SIZE];
	char *filler;
	const size_t mid = (size_t)1 << 20;
	struct session s;
	json_t *rs, *r;
	ssize_t w;
	int fd;

	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", f->dir, "tmpfs", 0, "size=2m,mode=0700") < 0) {
		print_message("skipped: needs root to mount a tmpfs (%s)\n",
			      strerror(errno));
		skip();
	}
	fill(small, sizeof(small), 3);
	digest_of(dsmall, small, sizeof(small));
	digest_of(dmid, f->data, mid);

	/* the default margin (64 MiB) refuses even a small blob */
	frame_add_json(&in, HELLO);
	add_put(&in, 2, dsmall, small, sizeof(small), 0, "zstd", 1 << 20);
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	assert_string_equal(err_code(reply_at(rs, 1)), "no-space");
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "need 67371008"));
	assert_non_null(strstr(err_msg(reply_at(rs, 1)), "/blobs/tmp'"));
	assert_int_equal(part_size(f, dsmall), -1);
	json_decref(rs);

	setenv("MLCTL_BLOB_SPACE_MARGIN", "0", 1);
	/* a blob that fits; then one that does not, refused up front */
	ml_buf_reset(&in);
	frame_add_json(&in, HELLO);
	add_put(&in, 2, dsmall, small, sizeof(small), 0, "none", 1 << 20);
	add_put(&in, 3, f->digest, f->data, BIG, 0, "zstd", 1 << 20);
	add_have(&in, 4, "[]");
	assert_int_equal(serve_mem(f->dir, &in, &rs), 0);
	result(reply_at(rs, 1));
	assert_string_equal(err_code(reply_at(rs, 2)), "no-space");
	assert_non_null(strstr(err_msg(reply_at(rs, 2)), "need 3145728"));
	assert_int_equal(part_size(f, f->digest), -1);
	result(reply_at(rs, 3));
	json_decref(rs);

	/* the disk fills up during a put: ENOSPC */
	session_start(&s, f->dir);
	ml_buf_reset(&in);
	add_put_req(&in, 2, dmid, mid, 0, "none");
	add_data(&in, f->data, 65536, 65536, false);
	session_send(&s, &in);
	wait_part(f, dmid, 65536);
	filler = ml_xasprintf("%s/filler", f->dir);
	fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	chunk = ml_xcalloc(1, 4096);
	do
		w = write(fd, chunk, 4096);
	while (w > 0);
	assert_int_equal(errno, ENOSPC);
	close(fd);
	ml_buf_reset(&in);
	add_data(&in, f->data + 65536, mid - 65536, 100000, true);
	session_send(&s, &in);
	r = session_recv(&s);
	assert_int_equal(rid(r), 2);
	assert_string_equal(err_code(r), "no-space");
	assert_non_null(strstr(err_msg(r), "No space left on device"));
	json_decref(r);
	assert_int_equal(part_size(f, dmid), -1);
	assert_int_equal(final_size(f, dmid), -1);
	assert_stored(f, dsmall, small, sizeof(small));

	/* space freed: the same session goes on and the put succeeds */
	assert_int_equal(unlink(filler), 0);
	ml_buf_reset(&in);
	add_put(&in, 3, dmid, f->data, mid, 0, "zstd", 100000);
	session_send(&s, &in);
	r = session_recv(&s);
	result(r);
	json_decref(r);
	session_end(&s);
	assert_stored(f, dmid, f->data, mid);
	assert_stored(f, dsmall, small, sizeof(small));

	free(chunk);
	free(filler);
	unsetenv("MLCTL_BLOB_SPACE_MARGIN");
	assert_int_equal(umount2(f->dir, MNT_DETACH), 0);
	ml_buf_release(&in);
}

static void test_blobstore__digest_valid(void **state)
{
	char d[80];

	assert_true(ml_blob_digest_valid("sha256:"
					 "e3b0c44298fc1c149afbf4c8996fb924"
					 "27ae41e4649b934ca495991b7852b855"));
	assert_false(ml_blob_digest_valid(NULL));
	assert_false(ml_blob_digest_valid(""));
	assert_false(ml_blob_digest_valid("sha256:"));
	snprintf(d, sizeof(d), "sha256:%064d", 0);
	assert_true(ml_blob_digest_valid(d));
	d[10] = 'g';
	assert_false(ml_blob_digest_valid(d));
	snprintf(d, sizeof(d), "sha256:%064d0", 0);
	assert_false(ml_blob_digest_valid(d));
	snprintf(d, sizeof(d), "sha512:%064d", 0);
	assert_false(ml_blob_digest_valid(d));
	snprintf(d, sizeof(d), "sha256:%063d/", 0);
	assert_false(ml_blob_digest_valid(d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blobstore__digest_valid,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__put_whole,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__resume, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__corrupt, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__size_mismatch,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__bad_offset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__eof_and_frames,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__bad_args, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__have, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__list, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__locked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_blobstore__small_fs, setup,
						teardown),
	};

	ml_log_init("test", ML_LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
