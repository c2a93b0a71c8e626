/*
 * Image delivery (see deliver.h). Per host, in parallel threads: one
 * blobs_have request, then for each missing blob one blob_put request
 * followed by 'D' frames of zstd-compressed bytes and an empty 'D' frame,
 * then its reply; finally image_load. A whole blob is compressed once,
 * into <cache>/blobs/zstd/<hex>, and that file is sent to every host that
 * lacks the blob: CPU and memory do not grow with the number of hosts. A
 * blob the host holds partly (an interrupted transfer) is resumed from the
 * offset the host reports, compressed on the fly from there. Memory per
 * host thread: one ML_DELIVER_CHUNK buffer (plus a zstd context, about
 * 2-3 MiB at level 3, only while resuming or compressing).
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/fmt.h"
#include "common/log.h"
#include "common/proto.h"
#include "orchestrator/apply/deliver.h"
#include "orchestrator/apply/relay.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/image/image.h"
#include "orchestrator/transport/transport.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

struct deliver_job {
	struct ml_host_session *hosts;
	const struct ml_image *img;
	const struct ml_cache *cache;
	const struct ml_deliver_opts *o;
	struct ml_deliver_result *res;
	/* progress, updated by the host threads */
	_Atomic int64_t *host_raw; /* per host, raw bytes sent so far */
	atomic_int done;
	size_t n;
	int64_t total_raw; /* all hosts' missing bytes, once known */
	pthread_mutex_t lock;
	bool stop;
	/* test hook: MLCTL_TEST_KILL_AFTER_BYTES, to interrupt a transfer
	 * for real (kill -9 of the controller) after that many bytes */
	int64_t kill_after;
	_Atomic int64_t sent_total;
	/* compress each blob once for every host: one thread at a time
	 * writes <cache>/blobs/zstd/<hex>, the others wait for it */
	pthread_mutex_t zlock;
	pthread_cond_t cond;
};

/* Count bytes sent for the kill test hook; never returns past the limit. */
static void count_sent(struct deliver_job *job, int64_t n)
{
	if (job->kill_after >= 0 &&
	    atomic_fetch_add(&job->sent_total, n) + n >= job->kill_after) {
		fprintf(stderr, "mlctl: test hook: killed after %lld bytes\n",
			(long long)job->kill_after);
		raise(SIGKILL);
	}
}

/*
 * Read fd until EOF (or `left` bytes when left >= 0), compress with zstd at
 * level, and hand every compressed piece to sink. Memory: one input chunk,
 * one output buffer and the zstd context.
 */
static int zstd_pump(int fd, int64_t left, int level, const char *what,
		     int (*sink)(void *ctx, const void *p, size_t n,
				 size_t raw),
		     void *ctx)
{
	size_t cap = ZSTD_compressBound(ML_DELIVER_CHUNK);
	char *in = ml_xmalloc(ML_DELIVER_CHUNK), *out = ml_xmalloc(cap);
	ZSTD_CCtx *cz = ZSTD_createCCtx();
	bool last = false;
	int rc = 0;

	if (!cz)
		BUG("cannot allocate a zstd context");
	ZSTD_CCtx_setParameter(cz, ZSTD_c_compressionLevel, level);
	while (!last) {
		size_t want = left >= 0 && left < (int64_t)ML_DELIVER_CHUNK
				      ? (size_t)left
				      : ML_DELIVER_CHUNK;
		ssize_t got = want ? read(fd, in, want) : 0;
		ZSTD_inBuffer zi;
		ZSTD_outBuffer zo;
		size_t zr;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot read '%s'",
					  what);
			break;
		}
		if (left >= 0) {
			if (got == 0 && left > 0) {
				rc = ml_err_set(ML_EFAIL,
						"'%s' is shorter than expected",
						what);
				break;
			}
			left -= got;
			last = left == 0;
		} else {
			last = got == 0;
		}
		zi = (ZSTD_inBuffer){in, (size_t)got, 0};
		do {
			zo = (ZSTD_outBuffer){out, cap, 0};
			zr = ZSTD_compressStream2(cz, &zo, &zi,
						  last ? ZSTD_e_end
						       : ZSTD_e_continue);
			if (ZSTD_isError(zr)) {
				rc = ml_err_set(ML_EFAIL, "zstd: %s",
						ZSTD_getErrorName(zr));
				goto out;
			}
			/* the raw bytes are reported with the last piece of
			 * their chunk */
			if (zo.pos || (zi.pos == zi.size && got))
				rc = sink(ctx, out, zo.pos,
					  zi.pos == zi.size ? (size_t)got : 0);
			if (rc < 0)
				goto out;
			if (zi.pos == zi.size)
				got = 0;
		} while (last ? zr != 0 : zi.pos < zi.size);
	}
out:
	ZSTD_freeCCtx(cz);
	free(in);
	free(out);
	return rc;
}

struct frame_sink {
	struct deliver_job *job;
	size_t i;
	struct ml_io *io;
};

/* zstd_pump's sink for a host: 'D' frames of at most a payload each. */
static int frames_sink(void *ctx, const void *p, size_t n, size_t raw)
{
	struct frame_sink *fs = ctx;
	struct ml_deliver_result *r = &fs->job->res[fs->i];
	const char *b = p;
	size_t off, len;
	int rc;

	for (off = 0; off < n; off += len) {
		len = n - off > ML_PROTO_MAX_PAYLOAD ? ML_PROTO_MAX_PAYLOAD
						     : n - off;
		rc = ml_frame_write(fs->io, ML_FRAME_DATA, b + off, len);
		if (rc < 0)
			return rc;
		r->wire_bytes += (int64_t)len + 5;
	}
	if (raw) {
		r->raw_bytes += (int64_t)raw;
		atomic_fetch_add(&fs->job->host_raw[fs->i], (int64_t)raw);
		count_sent(fs->job, (int64_t)raw);
	}
	return 0;
}

/* Stream [offset, size) of the file at path as compressed 'D' frames, then
 * the end marker: a resumed transfer. */
static int stream_blob(struct deliver_job *job, size_t i, struct ml_io *io,
		       const char *path, int64_t offset, int64_t size)
{
	struct frame_sink fs = {job, i, io};
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", path);
	if (lseek(fd, offset, SEEK_SET) != offset) {
		close(fd);
		return ml_err_errno(ML_EFAIL, errno, "cannot seek in '%s'",
				    path);
	}
	rc = zstd_pump(fd, size - offset,
		       job->o->zstd_level ? job->o->zstd_level : 3, path,
		       frames_sink, &fs);
	close(fd);
	if (rc < 0)
		return rc;
	return ml_frame_write(io, ML_FRAME_DATA, "", 0);
}

/* zstd_pump's sink for a file. */
static int fd_sink(void *ctx, const void *p, size_t n, size_t raw)
{
	int fd = *(int *)ctx;
	const char *b = p;
	ssize_t w;

	ML_UNUSED(raw);
	while (n) {
		w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ml_err_errno(
				errno == ENOSPC ? ML_ENOSPACE : ML_EFAIL, errno,
				"cannot write a compressed "
				"blob");
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write the zstd compression of the file at src into dst (via a temporary
 * file and a rename, so dst is whole or absent). */
static int compress_file(const char *src, const char *dst, int level)
{
	char *tmp = ml_xasprintf("%s.tmp-%ld", dst, (long)getpid());
	int ifd = -1, ofd = -1, rc;

	ifd = open(src, O_RDONLY | O_CLOEXEC);
	ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ifd < 0 || ofd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot compress '%s'", src);
		goto out;
	}
	rc = zstd_pump(ifd, -1, level, src, fd_sink, &ofd);
	if (rc == 0 && (fsync(ofd) < 0 || rename(tmp, dst) < 0))
		rc = ml_err_errno(ML_EFAIL, errno, "cannot store '%s'", dst);
out:
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0)
		close(ofd);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* The compressed copy of a cached blob, made on first need. Caller frees. */
static int compressed_path(char **out, struct deliver_job *job,
			   const char *digest, const char *raw)
{
	char *dir = ml_xasprintf("%s/blobs/zstd", ml_cache_dir(job->cache));
	char *path = ml_xasprintf("%s/%s", dir, digest + 7);
	struct stat st;
	int rc = 0;

	pthread_mutex_lock(&job->zlock);
	if (stat(path, &st) < 0) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
					  dir);
		else
			rc = compress_file(
				raw, path,
				job->o->zstd_level ? job->o->zstd_level : 3);
	}
	pthread_mutex_unlock(&job->zlock);
	free(dir);
	if (rc < 0) {
		free(path);
		return rc;
	}
	*out = path;
	return 0;
}

/* Send a compressed file as it is, in 'D' frames, then the end marker. */
static int stream_file(struct deliver_job *job, size_t i, struct ml_io *io,
		       const char *path, int64_t raw_size)
{
	struct ml_deliver_result *r = &job->res[i];
	char *buf = ml_xmalloc(ML_DELIVER_CHUNK);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	int64_t total = 0;
	ssize_t got;

	if (fd < 0) {
		free(buf);
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", path);
	}
	for (;;) {
		got = read(fd, buf, ML_DELIVER_CHUNK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot read '%s'",
					  path);
			break;
		}
		if (got == 0)
			break;
		rc = ml_frame_write(io, ML_FRAME_DATA, buf, (size_t)got);
		if (rc < 0)
			break;
		r->wire_bytes += got + 5;
		total += got;
		count_sent(job, got);
	}
	close(fd);
	free(buf);
	if (rc < 0)
		return rc;
	/* progress counts the blob's own bytes, as the hosts store them */
	r->raw_bytes += raw_size;
	atomic_fetch_add(&job->host_raw[i], raw_size);
	ML_UNUSED(total);
	return ml_frame_write(io, ML_FRAME_DATA, "", 0);
}

static int put_blob(struct deliver_job *job, struct ml_host_session *h,
		    size_t i, const char *digest, int64_t size, int64_t offset)
{
	char *path = NULL;
	json_t *res = NULL;
	uint64_t id;
	int rc, rc2;

	rc = ml_cache_path(&path, job->cache, digest);
	if (rc < 0)
		return rc;
	rc = ml_op_blob_put_begin(h, digest, size, offset, &id);
	if (rc < 0)
		goto out;
	if (offset == 0) {
		char *zpath = NULL;

		/* a whole blob: its compressed copy, made once for all */
		rc = compressed_path(&zpath, job, digest, path);
		if (rc == 0)
			rc = stream_file(job, i, h->io, zpath, size);
		free(zpath);
	} else {
		/* a resumed one: compressed on the fly from the offset */
		rc = stream_blob(job, i, h->io, path, offset, size);
	}
	if (rc < 0)
		goto out; /* the stream is broken: no reply can be trusted */
	rc2 = ml_op_blob_put_end(h, id, &res);
	if (rc2 < 0) {
		rc = rc2;
		goto out;
	}
	job->res[i].blobs_sent++;
out:
	json_decref(res);
	free(path);
	return rc;
}

static int64_t blob_size(const struct ml_image *img, const char *digest)
{
	size_t k;

	if (!strcmp(digest, img->config_digest))
		return img->config_size;
	for (k = 0; k < img->nlayers; k++)
		if (!strcmp(digest, img->layers[k]))
			return img->layer_sizes[k];
	return -1;
}

/* Host i's missing blobs, streamed from the controller over h (its
 * session, or a second one to it) (no load). */
static int send_missing(struct deliver_job *job, struct ml_host_session *h,
			size_t i)
{
	const struct ml_image *img = job->img;
	json_t *res = NULL, *missing, *partial, *d;
	size_t k;
	int rc;

	rc = ml_op_blobs_have(h, img, &res);
	if (rc < 0)
		goto out;
	missing = json_object_get(res, "missing");
	partial = json_object_get(res, "partial");
	json_array_foreach(missing, k, d)
	{
		const char *dg = json_string_value(d);
		int64_t size = dg ? blob_size(img, dg) : -1;
		json_t *p = json_object_get(partial, dg ? dg : "");
		int64_t off = json_is_integer(p) ? json_integer_value(p) : 0;

		if (size < 0) {
			rc = ml_err_set(ML_EPROTO,
					"%s asked for a blob that is not part "
					"of the image",
					h->target->name);
			goto out;
		}
		if (off < 0 || off > size)
			off = 0;
		if (off)
			ml_debug("%s: resuming %.19s at %lld of %lld bytes",
				 h->target->name, dg, (long long)off,
				 (long long)size);
		rc = put_blob(job, h, i, dg, size, off);
		if (rc < 0)
			goto out;
	}
out:
	json_decref(res);
	return rc;
}

/* The relay's way to have the controller send to host i (apply/relay.h),
 * over h or, when h is NULL, host i's session; a failure is recorded on
 * that session, as deliver_one would. */
static int relay_direct(struct ml_host_session *h, size_t i, void *arg)
{
	struct deliver_job *job = arg;
	int rc;

	if (!h)
		h = &job->hosts[i];
	rc = send_missing(job, h, i);
	if (rc < 0)
		ml_host_fail(h, rc);
	return rc;
}

static int deliver_one(size_t i, void *arg)
{
	struct deliver_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	struct ml_deliver_result *r = &job->res[i];
	const struct ml_image *img = job->img;
	json_t *res = NULL;
	const char **tags = NULL;
	int64_t t0 = ml_mono_ms(), load_ms;
	size_t k, ntags = 0;
	int rc;

	if (h->rc < 0 && h->target->is_app) {
		/* not connected: a failure of this host's delivery */
		r->rc = h->rc;
		r->error = ml_xasprintf("%s: %s", h->target->name,
					h->error ? h->error : "unreachable");
	}
	if (h->rc < 0 || !h->target->is_app) {
		atomic_fetch_add(&job->done, 1);
		return h->rc < 0 ? h->rc : 0;
	}
	rc = send_missing(job, h, i);
	if (rc < 0)
		goto out;
	for (k = 0; job->o->tags && job->o->tags[k]; k++)
		;
	tags = ml_xcalloc(k + 1, sizeof(*tags));
	for (k = 0; job->o->tags && job->o->tags[k]; k++)
		if (strncmp(job->o->tags[k], "sha256:", 7)) /* not a name */
			tags[ntags++] = job->o->tags[k];
	/*
	 * docker load reads the whole image from the VM's disk: give it a
	 * minute plus a second per 8 MiB (a multi-GB model takes minutes)
	 */
	load_ms = 60000;
	for (k = 0; k < img->nlayers; k++)
		load_ms += img->layer_sizes[k] / (8 << 20) * 1000;
	ml_ssh_chan_set_timeout(h->chan,
				(int)(load_ms < 3600000 ? load_ms : 3600000));
	rc = ml_op_image_load(h, img, tags, &res);
	ml_ssh_chan_set_timeout(h->chan, 60000);
	if (rc < 0)
		goto out;
	r->loaded = json_is_true(json_object_get(res, "loaded"));
out:
	json_decref(res);
	free(tags);
	r->ms = ml_mono_ms() - t0;
	if (rc < 0) {
		r->rc = rc;
		r->error =
			ml_xasprintf("%s: %s", h->target->name, ml_err_msg());
		ml_host_fail(h, rc);
	}
	atomic_fetch_add(&job->done, 1);
	return rc;
}

/*
 * Draw "delivering: 2/4 hosts done, 120MiB sent, 40MiB/s | vm1 60MiB vm2
 * 60MiB ..." every 250 ms on one line of the terminal (the first 8 hosts).
 */
static void *progress_thread(void *arg)
{
	struct deliver_job *job = arg;
	int64_t t0 = ml_mono_ms();
	struct timespec ts;

	pthread_mutex_lock(&job->lock);
	while (!job->stop) {
		char a[ML_FMT_MAX], b[ML_FMT_MAX];
		struct ml_buf line = ML_BUF_INIT(4096);
		int64_t sent = 0, ms = ml_mono_ms() - t0;
		size_t i;

		for (i = 0; i < job->n; i++)
			sent += atomic_load(&job->host_raw[i]);
		ml_buf_addf(&line,
			    "\r\033[Kdelivering: %d/%zu hosts done, %s "
			    "sent, %s/s |",
			    atomic_load(&job->done), job->n,
			    ml_fmt_bytes(a, sent),
			    ml_fmt_bytes(b, ms > 0 ? sent * 1000 / ms : 0));
		for (i = 0; i < job->n && i < 8; i++)
			ml_buf_addf(&line, " %s %s", job->hosts[i].target->name,
				    ml_fmt_bytes(
					    a, atomic_load(&job->host_raw[i])));
		if (job->n > 8)
			ml_buf_addstr(&line, " ...");
		fputs(ml_buf_str(&line), stderr);
		ml_buf_release(&line);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&job->cond, &job->lock, &ts);
	}
	pthread_mutex_unlock(&job->lock);
	fprintf(stderr, "\r\033[K");
	return NULL;
}

int ml_deliver(struct ml_host_session *hosts, size_t n,
	       const struct ml_image *img, const struct ml_cache *cache,
	       const struct ml_deliver_opts *o, struct ml_deliver_result *res)
{
	struct deliver_job job = {0};
	pthread_t prog;
	bool drawing = false;
	size_t i, failed = 0, first = n;

	job.hosts = hosts;
	job.img = img;
	job.cache = cache;
	job.o = o;
	job.res = res;
	job.n = n;
	job.host_raw = ml_xcalloc(n ? n : 1, sizeof(*job.host_raw));
	job.kill_after = getenv("MLCTL_TEST_KILL_AFTER_BYTES")
				 ? atoll(getenv("MLCTL_TEST_KILL_AFTER_BYTES"))
				 : -1;
	pthread_mutex_init(&job.lock, NULL);
	pthread_mutex_init(&job.zlock, NULL);
	pthread_cond_init(&job.cond, NULL);
	if (o->progress &&
	    pthread_create(&prog, NULL, progress_thread, &job) == 0)
		drawing = true;
	/* hosts pass blobs on to each other first; then each host gets from
	 * the controller what it still lacks, and loads the image */
	ml_relay_run(hosts, n, img, o->parallel, res, relay_direct, &job);
	ml_parallel_run(n, o->parallel, deliver_one, &job);
	if (drawing) {
		pthread_mutex_lock(&job.lock);
		job.stop = true;
		pthread_cond_signal(&job.cond);
		pthread_mutex_unlock(&job.lock);
		pthread_join(prog, NULL);
	}
	pthread_mutex_destroy(&job.lock);
	pthread_mutex_destroy(&job.zlock);
	pthread_cond_destroy(&job.cond);
	free(job.host_raw);
	for (i = 0; i < n; i++) {
		if (res[i].rc < 0) {
			failed++;
			if (first == n)
				first = i;
		}
	}
	if (!failed)
		return 0;
	return ml_err_set(res[first].rc,
			  "delivery failed on %zu of %zu "
			  "host%s: %s",
			  failed, n, n == 1 ? "" : "s", res[first].error);
}
