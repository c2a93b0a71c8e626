/*
 * Sessions with every host of a fleet (see fleet.h). Each host gets one
 * SSH connection and at most one agent process for the whole command;
 * hosts are worked on by ml_parallel_run's bounded threads, each thread
 * touching only its own session, so no locking is needed here.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/proto.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/options.h"
#include "orchestrator/transport/transport.h"

#include <time.h>

int ml_fleet_opts_from_ctx(struct ml_fleet_opts *o, const struct ml_ctx *ctx)
{
	int64_t ms;
	int rc;

	memset(o, 0, sizeof(*o));
	o->known_hosts = ctx->known_hosts;
	o->identity = ctx->identity;
	o->ssh_config = ctx->ssh_config;
	o->trust_on_first_use = ml_ctx_flag(ctx, OPT_TOFU);
	o->connect_timeout_ms = 10000;
	o->command_timeout_ms = 60000;
	o->parallel = 16;
	o->start_agent = true;
	if (ctx->opt[OPT_TIMEOUT]) {
		rc = ml_optval_timeout(&ms, ctx->opt[OPT_TIMEOUT]);
		if (rc < 0)
			return rc;
		o->connect_timeout_ms = (int)ms;
	}
	if (ctx->opt[OPT_PARALLEL])
		return ml_optval_parallel(&o->parallel, ctx->opt[OPT_PARALLEL]);
	return 0;
}

void ml_host_fail(struct ml_host_session *h, int rc)
{
	free(h->error);
	h->error = ml_xstrdup(ml_err_msg()[0] ? ml_err_msg() : "failed");
	h->rc = rc < 0 ? rc : ML_EFAIL;
}

struct connect_job {
	struct ml_host_session *hosts;
	const struct ml_config *cfg;
	const struct ml_fleet_opts *o;
};

static const struct ml_target *find_jump(const struct ml_config *cfg,
					 const char *name)
{
	size_t i;

	for (i = 0; i < cfg->njumps; i++)
		if (!strcmp(cfg->jumps[i].name, name))
			return &cfg->jumps[i];
	return NULL;
}

/* After the agent's stream ended early: say why, from its exit status. */
static int agent_start_failed(struct ml_host_session *h, int rc)
{
	int status = -1;
	size_t elen = 0;
	const char *err = ml_ssh_chan_stderr(h->chan, &elen);
	struct ml_buf esc = ML_BUF_INIT(1024);
	char *first = ml_xstrdup(ml_err_msg());

	if (ml_ssh_chan_wait(h->chan, &status) == 0 && status == 127) {
		rc = ml_err_set(ML_EHOST,
				"%s has no mlctl agent at '%s': run 'mlctl "
				"bootstrap' first",
				ml_ssh_name(h->ssh), ML_AGENT_REMOTE_PATH);
	} else {
		ml_escape(&esc, err, elen > 200 ? 200 : elen);
		rc = ml_err_set(rc, "cannot start the agent on %s: %s%s%s",
				ml_ssh_name(h->ssh), first, esc.len ? ": " : "",
				ml_buf_str(&esc));
	}
	free(first);
	ml_buf_release(&esc);
	return rc;
}

/* Connect h (its target set) with cfg and o, which it keeps (borrowed). */
static int host_connect(struct ml_host_session *h, const struct ml_config *cfg,
			const struct ml_fleet_opts *o)
{
	const struct ml_target *t = h->target;
	const struct ml_target *jump = NULL;
	struct ml_ssh_opts so = {0};
	static const char *const agent_argv[] = {ML_AGENT_REMOTE_PATH, "serve",
						 NULL};
	int64_t t0 = ml_mono_ms();
	int rc;

	h->cfg = cfg;
	h->opts = o;
	if (t->jump) {
		jump = find_jump(cfg, t->jump);
		if (!jump) {
			rc = ml_err_set(ML_EINVALID,
					"jump host '%s' of '%s' is unknown",
					t->jump, t->name);
			goto out;
		}
	}
	so.host = t->name;
	so.address = t->address;
	so.port = t->port;
	so.user = t->user;
	so.identity_file = o->identity ? o->identity : t->identity_file;
	if (jump) {
		so.jump_address = jump->address;
		so.jump_port = jump->port;
		so.jump_user = jump->user;
	}
	so.known_hosts = o->known_hosts;
	so.trust_on_first_use = o->trust_on_first_use;
	so.connect_timeout_ms = o->connect_timeout_ms;
	so.command_timeout_ms = o->command_timeout_ms;
	so.ssh_config = o->ssh_config;
	rc = ml_ssh_connect(&h->ssh, &so);
	if (rc < 0)
		goto out;
	if (!o->start_agent)
		goto out;
	rc = ml_ssh_exec(&h->chan, h->ssh, agent_argv);
	if (rc < 0)
		goto out;
	h->io = ml_ssh_chan_io(h->chan);
	h->next_id = 1;
	rc = ml_proto_hello(h->io, &h->next_id, &h->hello);
	if (rc < 0)
		rc = agent_start_failed(h, rc);
out:
	h->connect_ms = ml_mono_ms() - t0;
	if (rc < 0)
		ml_host_fail(h, rc);
	ml_debug("%s: connected in %lld ms%s", t->name,
		 (long long)h->connect_ms, rc < 0 ? " (failed)" : "");
	return rc;
}

static int connect_one(size_t i, void *arg)
{
	struct connect_job *job = arg;

	return host_connect(&job->hosts[i], job->cfg, job->o);
}

int ml_host_connect_twin(struct ml_host_session *twin,
			 const struct ml_host_session *h)
{
	memset(twin, 0, sizeof(*twin));
	twin->target = h->target;
	twin->fence = h->fence;
	if (!h->cfg || !h->opts)
		BUG("a twin of a session that was not connected");
	return host_connect(twin, h->cfg, h->opts);
}

/*
 * Closing is cleanup: the caller's error (why a deploy failed) stays the
 * current one, and an agent that ends badly here is only a warning.
 */
void ml_host_close(struct ml_host_session *h)
{
	struct ml_err_saved keep;
	int status = 0;

	ml_err_save(&keep);
	if (h->chan && h->rc < 0) {
		ml_ssh_chan_close(h->chan, &status); /* already said why */
	} else if (h->chan) {
		if (ml_ssh_chan_close(h->chan, &status) < 0)
			ml_warn("closing the agent session on %s: %s",
				h->target ? h->target->name : "a host",
				ml_err_msg());
		else if (status != 0)
			ml_warn("the agent on %s exited with status %d",
				h->target ? h->target->name : "a host",
				status);
	}
	ml_ssh_free(h->ssh);
	json_decref(h->hello);
	free(h->error);
	memset(h, 0, sizeof(*h));
	ml_err_restore(&keep);
}

/* Connect to the k hosts whose targets are already set in hosts. */
static void connect_sessions(struct ml_host_session *hosts, size_t k,
			     const struct ml_config *cfg,
			     const struct ml_fleet_opts *o)
{
	struct connect_job job;

	job.hosts = hosts;
	job.cfg = cfg;
	job.o = o;
	ml_parallel_run(k, o->parallel, connect_one, &job);
}

int ml_fleet_connect(struct ml_host_session **out, size_t *n,
		     const struct ml_config *cfg, const struct ml_fleet_opts *o,
		     bool (*want)(const struct ml_target *))
{
	struct ml_host_session *hosts;
	size_t i, k = 0;

	hosts = ml_xcalloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*hosts));
	for (i = 0; i < cfg->ntargets; i++)
		if (!want || want(&cfg->targets[i]))
			hosts[k++].target = &cfg->targets[i];
	connect_sessions(hosts, k, cfg, o);
	*out = hosts;
	*n = k;
	return 0;
}

static int host_call(struct ml_host_session *h, const char *op, json_t *args,
		     json_t **result)
{
	int rc;

	if (!h->io) {
		json_decref(args);
		return ml_err_set(ML_EHOST, "'%s' has no agent session",
				  h->target->name);
	}
	if (h->fence) {
		rc = h->fence->check(h->fence->arg);
		if (rc < 0) {
			json_decref(args);
			return rc;
		}
		if (!args)
			args = json_object();
		json_object_set_new(
			args, "fence",
			json_pack("{s:I,s:s}", "generation",
				  (json_int_t)h->fence->generation, "owner",
				  h->fence->owner ? h->fence->owner : ""));
	}
	if (ml_log_level() >= ML_LOG_TRACE) {
		int64_t t0 = ml_mono_ms();

		rc = ml_proto_call(h->io, &h->next_id, op, args, result);
		ml_debug("%s: %s: %s in %lld ms", h->target->name, op,
			 rc < 0 ? "failed" : "ok",
			 (long long)(ml_mono_ms() - t0));
		return rc;
	}
	return ml_proto_call(h->io, &h->next_id, op, args, result);
}

int ml_host_call(struct ml_host_session *h, const char *op, json_t *args,
		 json_t **result)
{
	json_t *drop = NULL;
	int rc;

	rc = host_call(h, op, args, result ? result : &drop);
	json_decref(drop);
	return rc;
}

int ml_fleet_connect_lock_host(struct ml_host_session **out, size_t *n,
			       const struct ml_config *cfg,
			       const struct ml_fleet_opts *o)
{
	const struct ml_target *t = NULL;
	size_t i;

	*out = NULL;
	*n = 0;
	for (i = 0; i < cfg->ntargets && !t; i++)
		if (cfg->targets[i].is_lb)
			t = &cfg->targets[i];
	for (i = 0; i < cfg->ntargets && !t; i++)
		if (cfg->targets[i].is_app)
			t = &cfg->targets[i];
	if (!t)
		return ml_err_set(ML_EHOST, "no host to keep the fleet lock "
					    "on");
	*out = ml_xcalloc(1, sizeof(**out));
	(*out)[0].target = t;
	*n = 1;
	connect_sessions(*out, 1, cfg, o);
	if ((*out)[0].rc < 0)
		return ml_err_set(ML_EHOST,
				  "the fleet lock is kept on '%s' (the first "
				  "%s listed), which cannot be reached: %s; "
				  "nothing was changed",
				  t->name,
				  t->is_lb ? "load balancer" : "app host",
				  (*out)[0].error);
	return 0;
}

void ml_fleet_close(struct ml_host_session *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		ml_host_close(&v[i]);
	free(v);
}
