#ifndef ML_TEST_FAKE_DOCKER_H
#define ML_TEST_FAKE_DOCKER_H

/*
 * A tiny fake Docker daemon for unit tests: an HTTP/1.1 server on a unix
 * socket in a temporary directory, run by one thread, one connection at a
 * time, one request per connection ("Connection: close"). Answers come
 * from a table of routes matched on "METHOD /path" prefixes (first match
 * wins; no match gives 404 {"message":"page not found"}). It records the
 * last request line and body and counts requests. Not a mock of Docker's
 * behaviour: the real daemon is tested by check_real_docker.sh.
 * Header-only; everything static inline.
 */
#include "common/ml.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct fake_route {
	const char *prefix; /* "GET /v1.41/containers/json" */
	int status;
	const char *body; /* sent as is, may be NULL */
	int delay_ms;	  /* wait before answering */
};

struct fake_docker {
	char dir[64];
	char sock[96];
	int lfd;
	int stop_pipe[2];
	pthread_t th;
	pthread_mutex_t mu;
	const struct fake_route *routes;
	size_t nroutes;
	/* recorded, under mu */
	int requests;
	char last_line[4096];
	char last_body[4096];
	char last_headers[4096];
};

static inline void fake_read_request(struct fake_docker *f, int fd,
				     struct ml_buf *req, size_t *body_off)
{
	char buf[4096], *end;
	ssize_t r;
	size_t clen = 0, hdr_len;
	const char *cl;

	*body_off = 0;
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			return;
		if (ml_buf_add(req, buf, (size_t)r) < 0)
			return;
		end = strstr(req->data, "\r\n\r\n");
		if (!end)
			continue;
		hdr_len = (size_t)(end - req->data) + 4;
		cl = strcasestr(req->data, "\r\nContent-Length:");
		if (cl && cl < end)
			clen = strtoul(cl + 17, NULL, 10);
		if (req->len >= hdr_len + clen) {
			*body_off = hdr_len;
			return;
		}
	}
}

static inline const struct fake_route *fake_match(struct fake_docker *f,
						  const char *line)
{
	size_t i;

	for (i = 0; i < f->nroutes; i++)
		if (!strncmp(line, f->routes[i].prefix,
			     strlen(f->routes[i].prefix)))
			return &f->routes[i];
	return NULL;
}

static inline void fake_answer(int fd, int status, const char *body)
{
	struct ml_buf out = ML_BUF_INIT(0);
	size_t n = body ? strlen(body) : 0, off = 0;
	ssize_t w;

	ml_buf_addf(&out,
		    "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		    status, n);
	if (n)
		ml_buf_add(&out, body, n);
	while (off < out.len) {
		w = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	ml_buf_release(&out);
}

static inline void *fake_main(void *p)
{
	struct fake_docker *f = p;
	struct pollfd pf[2];
	const struct fake_route *rt;
	struct ml_buf req = ML_BUF_INIT(0);
	size_t body_off, line_len;
	char *eol;
	int fd;

	for (;;) {
		pf[0].fd = f->lfd;
		pf[0].events = POLLIN;
		pf[1].fd = f->stop_pipe[0];
		pf[1].events = POLLIN;
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents)
			break;
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ml_buf_reset(&req);
		fake_read_request(f, fd, &req, &body_off);
		if (!req.len) {
			close(fd);
			continue;
		}
		eol = strstr(req.data, "\r\n");
		line_len = eol ? (size_t)(eol - req.data) : req.len;
		pthread_mutex_lock(&f->mu);
		f->requests++;
		snprintf(f->last_line, sizeof(f->last_line), "%.*s",
			 (int)line_len, req.data);
		snprintf(f->last_headers, sizeof(f->last_headers), "%.*s",
			 (int)(body_off ? body_off : req.len), req.data);
		snprintf(f->last_body, sizeof(f->last_body), "%s",
			 body_off ? req.data + body_off : "");
		rt = fake_match(f, f->last_line);
		pthread_mutex_unlock(&f->mu);
		if (rt && rt->delay_ms)
			poll(NULL, 0, rt->delay_ms);
		if (rt)
			fake_answer(fd, rt->status, rt->body);
		else
			fake_answer(fd, 404,
				    "{\"message\":\"page not found\"}");
		close(fd);
	}
	ml_buf_release(&req);
	return NULL;
}

/* Start serving routes (borrowed, must outlive the server). */
static inline void fake_docker_start(struct fake_docker *f,
				     const struct fake_route *routes,
				     size_t nroutes)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mlctl-fake-docker-XXXXXX");
	if (!mkdtemp(f->dir))
		abort();
	snprintf(f->sock, sizeof(f->sock), "%s/docker.sock", f->dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
	f->routes = routes;
	f->nroutes = nroutes;
	pthread_mutex_init(&f->mu, NULL);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 ||
	    bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(f->lfd, 16) < 0 || pipe(f->stop_pipe) < 0 ||
	    pthread_create(&f->th, NULL, fake_main, f))
		abort();
}

/* Swap the routes between tests (no request may be in flight). */
static inline void fake_docker_routes(struct fake_docker *f,
				      const struct fake_route *routes,
				      size_t nroutes)
{
	pthread_mutex_lock(&f->mu);
	f->routes = routes;
	f->nroutes = nroutes;
	pthread_mutex_unlock(&f->mu);
}

static inline int fake_docker_requests(struct fake_docker *f)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->requests;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static inline void fake_docker_stop(struct fake_docker *f)
{
	if (write(f->stop_pipe[1], "x", 1) != 1)
		abort();
	pthread_join(f->th, NULL);
	close(f->lfd);
	close(f->stop_pipe[0]);
	close(f->stop_pipe[1]);
	unlink(f->sock);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->mu);
}

#endif
