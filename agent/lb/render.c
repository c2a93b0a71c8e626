/*
 * The haproxy.cfg text for a validated struct ml_lb_config (see lb.h):
 * global settings, the request-log ring, defaults, the frontend, the
 * app's backend, one check-only backend per distinct server check, and
 * the TLS and metrics parts (tls.c).
 *
 * Invariants: deterministic, the same config gives the same bytes (the
 * golden files in tests/data/lb/render/ pin them); the second line holds
 * the digest of the text rendered without server states and weights,
 * whose change alone makes lb_apply reload. Only validated values are
 * printed.
 *
 * Sizes: about 100 bytes per server, capped at 1 MiB (ML_ETOOBIG).
 */
#include "common/ml.h"
#include "common/sha256.h"
#include "agent/lb/internal.h"
#include "agent/lb/tls.h"

#define CONFIG_MAX ((size_t)1 << 20)
#define STRUCTURE_TAG "# mlctl-structure sha256:"

int ml_lb_add_hostport(struct ml_buf *b, const char *addr, int port)
{
	if (strchr(addr, ':'))
		return ml_buf_addf(b, "[%s]:%d", addr, port);
	return ml_buf_addf(b, "%s:%d", addr, port);
}

/* The hash covers the check's whole text, expect lines included, so a
 * reload finds the same backend for the same check and the server-state
 * file carries its servers' health over. */
void ml_haproxy_check_backend(char out[ML_LB_CHECK_NAME_MAX],
			      const struct ml_lb_config *c,
			      const struct ml_lb_check *k)
{
	struct ml_buf text = ML_BUF_INIT(ML_LB_PATH_MAX + 8192);
	char hex[ML_SHA256_HEX];

	ml_buf_addf(&text, "%s %ld %ld %d %d\n%s", k->path, k->interval_ms,
		    k->timeout_ms, k->rise, k->fall,
		    k->expect ? k->expect : "");
	ml_sha256_hex(text.data, text.len, hex);
	ml_buf_release(&text);
	snprintf(out, ML_LB_CHECK_NAME_MAX, "chk_%.*s_%.16s", ML_LB_NAME_MAX, c->app,
		 hex);
}

/*
 * One backend per distinct server check, holding only the servers that
 * use it: HAProxy checks them there, and the servers of the app's backend
 * that track them follow. No frontend uses these backends, so they carry
 * no traffic.
 */
static void render_checks(struct ml_buf *b, const struct ml_lb_config *c)
{
	const struct ml_lb_server *s;
	char name[ML_LB_CHECK_NAME_MAX];
	size_t i, j;

	for (i = 0; i < c->nr_servers; i++) {
		const struct ml_lb_check *k = c->servers[i].check;
		bool seen = false;

		if (!k)
			continue;
		for (j = 0; j < i && !seen; j++)
			seen = c->servers[j].check &&
			       ml_lb_check_same(c->servers[j].check, k);
		if (seen)
			continue;
		ml_haproxy_check_backend(name, c, k);
		ml_buf_addf(b, "\nbackend %s\n", name);
		ml_buf_addf(b, "\ttimeout check %ldms\n", k->timeout_ms);
		ml_buf_addf(b, "\toption httpchk GET %s\n", k->path);
		ml_buf_addstr(b, k->expect ? k->expect
				   : "\thttp-check expect status 200-399\n");
		ml_buf_addf(b,
			    "\tdefault-server inter %ldms fall %d rise %d "
			    "init-addr last,libc,none\n",
			    k->interval_ms, k->fall, k->rise);
		for (j = i; j < c->nr_servers; j++) {
			s = &c->servers[j];
			if (!s->check || !ml_lb_check_same(s->check, k))
				continue;
			ml_buf_addf(b, "\tserver %s ", s->name);
			ml_lb_add_hostport(b, s->address, s->port);
			ml_buf_addstr(b, " check\n");
		}
	}
}

/*
 * The configuration proper. With states false, server lines carry neither
 * weight nor state: that text is the "structure", whose change needs a
 * reload, while states and weights are applied at runtime.
 */
static int render_body(struct ml_buf *b, const struct ml_lb_config *c,
		       const struct ml_haproxy *h, bool states)
{
	const struct ml_lb_server *s;
	size_t i;

	ml_buf_addstr(b, "global\n"
			 "\tmaster-worker\n");
	ml_buf_addf(b, "\tpidfile %s\n", h->pidfile);
	ml_buf_addf(b,
		    "\tstats socket %s mode 600 level admin expose-fd "
		    "listeners\n",
		    h->admin_sock);
	ml_buf_addstr(b, "\tstats timeout 30s\n");
	ml_buf_addf(b, "\tserver-state-file %s\n", h->state_file);
	/* requests in flight in an old worker get this long after a reload */
	ml_buf_addf(b, "\thard-stop-after %ldms\n", c->drain_timeout_ms);
	ml_lb_tls_render_global(b, c);
	/*
	 * One line per request into a ring in the worker's memory, read back
	 * with `show events` (lb_requests): the per-server timers that give
	 * real latency percentiles, with no log file on the LB's disk.
	 */
	ml_buf_addf(b, "\nring " ML_HAPROXY_RING "\n"
		       "\tformat raw\n"
		       "\tmaxlen %d\n"
		       "\tsize %zu\n",
		    ML_HAPROXY_RING_LINE, ML_HAPROXY_RING_SIZE);
	/*
	 * Servers are on the fleet's own network: a connection that takes a
	 * second is a SYN lost (a slot going away, a host too busy to
	 * answer), and the retry below goes to another server at once
	 * instead of after three, which a client with a 5 s timeout would
	 * not wait for.
	 */
	ml_buf_addstr(b, "\n"
			 "defaults\n"
			 "\tmode http\n"
			 "\ttimeout connect 1s\n"
			 "\ttimeout client 60s\n"
			 "\ttimeout server 300s\n"
			 "\ttimeout http-request 10s\n"
			 "\ttimeout http-keep-alive 10s\n"
			 "\ttimeout queue 30s\n");
	ml_buf_addf(b, "\ttimeout check %ldms\n", c->timeout_ms);
	/*
	 * A request whose connection fails (a server that just stopped, an
	 * idle keep-alive connection the server closed) is retried on
	 * another server, so neither a drain nor a stop fails a request.
	 */
	ml_buf_addstr(b, "\tload-server-state-from-file global\n"
			 "\toption redispatch 1\n"
			 "\tretries 3\n"
			 "\tretry-on conn-failure empty-response\n"
			 "\n");
	ml_buf_addf(b, "frontend fe_%s\n", c->app);
	ml_buf_addstr(b, "\tbind ");
	ml_lb_add_hostport(b, c->bind, c->listen_port);
	ml_lb_tls_render_bind(b, c, h);
	ml_buf_addstr(b, "\n\toption forwardfor\n");
	ml_lb_tls_render_frontend(b, c);
	ml_buf_addstr(b, "\tlog ring@" ML_HAPROXY_RING " local0 info\n"
			 "\tlog-format \"" ML_HAPROXY_LOG_FORMAT "\"\n");
	ml_buf_addf(b, "\tdefault_backend %s\n\n", c->app);

	ml_buf_addf(b, "backend %s\n", c->app);
	ml_buf_addf(b, "\tbalance %s\n", c->balance);
	ml_buf_addf(b, "\toption httpchk GET %s\n", c->health_path);
	if (c->health_expect)
		ml_buf_addstr(b, c->health_expect);
	else
		ml_buf_addstr(b, "\thttp-check expect status 200-399\n");
	ml_buf_addf(b,
		    "\tdefault-server inter %ldms fall %d rise %d "
		    "init-addr last,libc,none\n",
		    c->interval_ms, c->fall, c->rise);
	for (i = 0; i < c->nr_servers; i++) {
		s = &c->servers[i];
		ml_buf_addf(b, "\tserver %s ", s->name);
		ml_lb_add_hostport(b, s->address, s->port);
		if (s->check) {
			char chk[ML_LB_CHECK_NAME_MAX];

			ml_haproxy_check_backend(chk, c, s->check);
			ml_buf_addf(b, " track %s/%s", chk, s->name);
		} else {
			ml_buf_addstr(b, " check");
		}
		if (states) {
			/* drain has no keyword; weight 0 until runtime sets it
			 */
			ml_buf_addf(b, " weight %d",
				    s->state == ML_LB_DRAIN ? 0 : s->weight);
			if (s->state == ML_LB_MAINT)
				ml_buf_addstr(b, " disabled");
		}
		ml_buf_addch(b, '\n');
	}
	render_checks(b, c);
	ml_lb_tls_render_redirect(b, c);
	ml_lb_tls_render_userlist(b, c);
	if (c->stats_port) {
		ml_buf_addstr(b, "\nfrontend mlctl_stats\n\tbind ");
		ml_lb_add_hostport(b, c->metrics_bind, c->stats_port);
		ml_buf_addch(b, '\n');
		ml_lb_tls_render_stats_auth(b, c);
		ml_buf_addstr(b, "\thttp-request use-service "
				 "prometheus-exporter if { path /metrics }\n"
				 "\thttp-request return status 404\n");
	}
	/* every add above is checked once here: a full buffer stays full */
	return ml_buf_addstr(b, "");
}

int ml_haproxy_render(struct ml_buf *out, const struct ml_lb_config *c,
		      const struct ml_haproxy *h)
{
	struct ml_buf body = ML_BUF_INIT(CONFIG_MAX);
	char hex[ML_SHA256_HEX];
	int rc;

	rc = render_body(&body, c, h, false);
	if (rc < 0 || body.len + 1 >= body.max)
		goto too_big;
	ml_sha256_hex(body.data, body.len, hex);
	ml_buf_reset(&body);
	rc = render_body(&body, c, h, true);
	if (rc < 0 || body.len + 1 >= body.max)
		goto too_big;
	ml_buf_addf(out,
		    "# HAProxy for app '%s', rendered by mlctl-agent; do not "
		    "edit\n",
		    c->app);
	ml_buf_addf(out, STRUCTURE_TAG "%s\n", hex);
	rc = ml_buf_add(out, body.data, body.len);
	goto out;
too_big:
	rc = ml_err_set(ML_ETOOBIG,
			"the HAProxy configuration for app '%s' "
			"is larger than %zu bytes",
			c->app, CONFIG_MAX);
out:
	if (body.data) /* it may hold the metrics password */
		explicit_bzero(body.data, body.len);
	ml_buf_release(&body);
	return rc;
}

bool ml_haproxy_structure(char hex[65], const char *text)
{
	const char *nl = strchr(text, '\n'), *p;
	size_t i;

	if (!nl)
		return false;
	p = nl + 1;
	if (strncmp(p, STRUCTURE_TAG, strlen(STRUCTURE_TAG)))
		return false;
	p += strlen(STRUCTURE_TAG);
	for (i = 0; i < 64; i++)
		if (!p[i] || !strchr("0123456789abcdef", p[i]))
			return false;
	if (p[64] != '\n')
		return false;
	memcpy(hex, p, 64);
	hex[64] = '\0';
	return true;
}

