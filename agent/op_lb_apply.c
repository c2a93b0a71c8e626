/*
 * lb_apply: make this host's HAProxy for one app serve the given servers.
 *
 *	args:   {"app", "listen_port", "stats_port" (8404, 0: none),
 *		 "bind" ("0.0.0.0"), "metrics_bind" ("127.0.0.1"),
 *		 "balance" (roundrobin|leastconn|random),
 *		 "health": {"path", "interval_ms", "timeout_ms",
 *			    "healthy_threshold", "unhealthy_threshold"},
 *		 "drain_timeout_ms",
 *		 "tls_cert", "tls_key" (PEM texts from the controller's
 *		 secrets, both or neither: agent/lb/tls.h), "redirect_port"
 *		 (plain HTTP answering 301 to https, needs TLS),
 *		 "stats_auth": {"user", "password"} (basic auth on the
 *		 metrics listener),
 *		 "servers": [{"name", "address", "port",
 *			      "state": ready|drain|maint, "weight": 0..256}]}
 *	result: {"started", "reloaded", "config_changed", "config_sha256",
 *		 "master_pid", "worker_pid", "reload_ms", "servers"}
 *
 * Parse and validate everything, render (pure), then: write
 * haproxy.cfg.new, `haproxy -c` it (a rejected config is the error
 * "invalid" with HAProxy's alerts and leaves the running one alone),
 * and then one of
 *  - no master runs for this app: move it into place and start one;
 *  - the structure changed (frontends, backend, server list, addresses,
 *    health check; not states or weights): save `show servers state`,
 *    move it into place and reload seamlessly (the master hands its
 *    listening sockets to the new worker; the old one finishes its
 *    requests); a reload that fails puts the previous file back;
 *  - only states or weights changed, or nothing: move it into place, no
 *    reload.
 * In every case each server's weight and state are then set at runtime to
 * what args say: lb_apply is declarative, and lb_set is for changes
 * between applies. The server-state file carries health and admin state
 * across the reload itself, so the new worker never sends a request to a
 * server the old one knew to be down or in maintenance.
 *
 * Concurrent lb_apply and lb_set for one app are serialized by a flock.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"
#include "agent/lb/tls.h"
#include "common/sha256.h"

#include <time.h>
#include <unistd.h>

static int move(const char *from, const char *to)
{
	if (rename(from, to) < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot rename '%s' to '%s'", from, to);
	return 0;
}

static int op_lb_apply(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_buf cfg = ML_BUF_INIT((size_t)2 << 20);
	struct ml_buf old = ML_BUF_INIT((size_t)2 << 20);
	char new_struct[65], old_struct[65], sha[ML_SHA256_HEX];
	bool started = false, reloaded = false, changed, have_old;
	bool tls_created = false;
	struct ml_lb_config c;
	struct ml_haproxy h = {.lock_fd = -1};
	pid_t master = 0, worker = 0;
	int64_t reload_ms = 0, t0;
	size_t i;
	int rc;

	rc = ml_lb_config_from_json(&c, args);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_init(&h, a->state_dir, c.app);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_render(&cfg, &c, &h);
	if (rc < 0)
		goto out;
	if (!ml_haproxy_structure(new_struct, cfg.data))
		BUG("rendered config without a structure line");
	ml_sha256_hex(cfg.data, cfg.len, sha);

	/* apply */
	rc = ml_haproxy_mkdir(&h);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_lock(&h);
	if (rc < 0)
		goto out;
	/* a new certificate is a new file: the running config's stays */
	rc = ml_lb_tls_store(&c, &h, &tls_created);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_write_file(h.cfg_new, cfg.data, cfg.len);
	if (rc < 0)
		goto out;
	rc = ml_haproxy_check(&h, h.cfg_new);
	if (rc < 0) {
		unlink(h.cfg_new);
		ml_lb_tls_unstore(&c, &h, tls_created);
		goto out;
	}
	rc = ml_buf_read_file(&old, h.cfg);
	if (rc < 0 && rc != ML_ENOTFOUND)
		goto out;
	have_old = rc == 0 && ml_haproxy_structure(old_struct, old.data);
	changed = !have_old || strcmp(old_struct, new_struct);
	rc = ml_haproxy_master_pid(&master, &h);
	if (rc < 0)
		goto out;

	if (!master) {
		/* the state of a process that is gone is nobody's truth */
		unlink(h.state_file);
		rc = move(h.cfg_new, h.cfg);
		if (rc < 0)
			goto out;
		rc = ml_haproxy_start(&master, &h);
		if (rc < 0)
			goto out;
		started = true;
		ml_lb_tls_prune(&c, &h);
	} else if (changed) {
		t0 = ml_mono_ms();
		rc = ml_haproxy_worker_pid(&worker, &h);
		if (rc < 0)
			goto out;
		rc = ml_haproxy_save_state(&h, &c);
		if (rc < 0)
			goto out;
		unlink(h.cfg_old);
		if (link(h.cfg, h.cfg_old) < 0 && errno != ENOENT) {
			rc = ml_err_errno(ML_EFAIL, errno, "cannot keep '%s'",
					  h.cfg);
			goto out;
		}
		rc = move(h.cfg_new, h.cfg);
		if (rc < 0)
			goto out;
		rc = ml_haproxy_reload(&h, master, worker);
		if (rc < 0) {
			/* what is on disk stays what runs */
			if (rename(h.cfg_old, h.cfg) < 0)
				unlink(h.cfg_old);
			goto out;
		}
		reload_ms = ml_mono_ms() - t0;
		reloaded = true;
		ml_lb_tls_prune(&c, &h);
	} else {
		rc = move(h.cfg_new, h.cfg);
		if (rc < 0)
			goto out;
		ml_lb_tls_prune(&c, &h);
	}

	for (i = 0; i < c.nr_servers; i++) {
		rc = ml_haproxy_set_server(&h, c.servers[i].name,
					   c.servers[i].state,
					   c.servers[i].weight);
		if (rc < 0)
			goto out;
	}
	rc = ml_haproxy_worker_pid(&worker, &h);
	if (rc < 0)
		goto out;

	*result = json_pack(
		"{s:b,s:b,s:b,s:s,s:I,s:I,s:I,s:I}", "started", started,
		"reloaded", reloaded, "config_changed", started || changed,
		"config_sha256", sha, "master_pid", (json_int_t)master,
		"worker_pid", (json_int_t)worker, "reload_ms",
		(json_int_t)reload_ms, "servers", (json_int_t)c.nr_servers);
	if (!*result)
		BUG("out of memory");
	rc = 0;
out:
	ml_haproxy_release(&h);
	ml_lb_config_release(&c);
	/* the texts may hold the metrics password */
	if (cfg.data)
		explicit_bzero(cfg.data, cfg.len);
	if (old.data)
		explicit_bzero(old.data, old.len);
	ml_buf_release(&cfg);
	ml_buf_release(&old);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_apply = {
	.name = "lb_apply",
	.summary = "render, check and run this host's haproxy for an app; "
		   "reload seamlessly when it changed",
	.run = op_lb_apply,
};
