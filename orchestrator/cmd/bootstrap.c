/*
 * mlctl bootstrap: install or upgrade the agent on every host and check
 * what each host needs: Docker on app hosts, HAProxy on load-balancer
 * hosts. The agent binary is copied over SFTP next to its final path,
 * verified by SHA-256 on the host, then renamed over the old one (atomic:
 * a running agent keeps its inode). A host whose agent already has the
 * same checksum gets nothing. Exit status 6 when any host is unreachable or
 * lacks something, after a table that says what on which host.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/sha256.h"
#include "common/table.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/transport/transport.h"

#include <libgen.h>
#include <unistd.h>

static const struct ml_option opt_agent = {
	OPT_AGENT_BINARY, "agent-binary", 0, "FILE",
	"the agent to install (default: mlctl-agent next to mlctl)"
};

static const struct ml_option *const options[] = {
	&ml_opt_commit, &ml_opt_timeout, &ml_opt_tofu, &ml_opt_parallel,
	&opt_agent, NULL,
};

struct boot_host {
	const char *agent;   /* "installed", "upgraded", "up to date" */
	char *docker;        /* version, or NULL */
	char *haproxy;       /* version, or NULL */
	char *problems;      /* what is missing, or NULL */
};

struct boot_job {
	struct ml_host_session *hosts;
	struct boot_host *res;
	const char *local_agent;
	char local_sha[ML_SHA256_HEX];
	int timeout_ms;
};

static void add_problem(struct boot_host *r, const char *fmt, ...)
	ML_PRINTF(2, 3);

static void add_problem(struct boot_host *r, const char *fmt, ...)
{
	struct ml_buf b = ML_BUF_INIT(8192);
	va_list ap;

	if (r->problems)
		ml_buf_addf(&b, "%s; ", r->problems);
	va_start(ap, fmt);
	ml_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	free(r->problems);
	r->problems = ml_buf_detach(&b, NULL);
}

/* sha256sum PATH on the host; *hex is "" when the file is absent. */
static int remote_sha(struct ml_ssh *s, const char *path,
		      char hex[ML_SHA256_HEX])
{
	const char *argv[] = { "sha256sum", path, NULL };
	struct ml_buf out = ML_BUF_INIT(4096);
	int status = -1, rc;

	hex[0] = '\0';
	rc = ml_ssh_run(s, argv, NULL, 0, &out, NULL, &status);
	if (rc < 0)
		goto out;
	if (status == 0 && out.len >= 64) {
		memcpy(hex, out.data, 64);
		hex[64] = '\0';
	}
out:
	ml_buf_release(&out);
	return rc;
}

static int install_agent(struct boot_job *job, struct ml_host_session *h,
			 struct boot_host *r)
{
	static const char *const newp = ML_AGENT_REMOTE_PATH ".new";
	const char *mv[] = { "mv", "-f", newp, ML_AGENT_REMOTE_PATH, NULL };
	char have[ML_SHA256_HEX];
	int status = -1, rc;
	bool upgrade;

	rc = remote_sha(h->ssh, ML_AGENT_REMOTE_PATH, have);
	if (rc < 0)
		return rc;
	if (!strcmp(have, job->local_sha)) {
		r->agent = "up to date";
		return 0;
	}
	upgrade = have[0] != '\0';
	rc = ml_ssh_upload(h->ssh, job->local_agent, newp, 0755);
	if (rc < 0)
		return rc;
	rc = remote_sha(h->ssh, newp, have);
	if (rc < 0)
		return rc;
	if (strcmp(have, job->local_sha))
		return ml_err_set(ML_EHOST,
				  "the agent copied to %s has checksum %.12s, "
				  "expected %.12s: the copy was damaged; run "
				  "bootstrap again",
				  ml_ssh_name(h->ssh), have[0] ? have : "-",
				  job->local_sha);
	rc = ml_ssh_run(h->ssh, mv, NULL, 0, NULL, NULL, &status);
	if (rc < 0)
		return rc;
	if (status != 0)
		return ml_err_set(ML_EHOST, "cannot move the agent into place "
					    "on %s (mv exited with %d)",
				  ml_ssh_name(h->ssh), status);
	r->agent = upgrade ? "upgraded" : "installed";
	return 0;
}

static void check_haproxy(struct ml_host_session *h, struct boot_host *r)
{
	static const char *const argv[] = { "haproxy", "-v", NULL };
	struct ml_buf out = ML_BUF_INIT(8192), esc = ML_BUF_INIT(256);
	int status = -1;
	char *nl, *ver;

	if (ml_ssh_run(h->ssh, argv, NULL, 0, &out, NULL, &status) < 0 ||
	    status != 0) {
		add_problem(r, "haproxy is missing (install the haproxy "
			       "package, 2.4 or newer)");
		goto out;
	}
	/* "HAProxy version 2.6.12-1+deb12u1 2023/12/16 - https://..." */
	ver = strstr(ml_buf_str(&out), "version ");
	ver = ver ? ver + 8 : (char *)ml_buf_str(&out);
	nl = strpbrk(ver, " \n");
	ml_escape(&esc, ver, nl ? (size_t)(nl - ver) : strlen(ver));
	r->haproxy = ml_buf_detach(&esc, NULL);
out:
	ml_buf_release(&out);
	ml_buf_release(&esc);
}

static int boot_one(size_t i, void *arg)
{
	static const char *const serve[] = { ML_AGENT_REMOTE_PATH, "serve",
					     NULL };
	struct boot_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	struct boot_host *r = &job->res[i];
	json_t *docker;
	const char *ver;
	int rc;

	if (h->rc < 0)
		return h->rc;
	rc = install_agent(job, h, r);
	if (rc < 0)
		goto fail;
	rc = ml_ssh_exec(&h->chan, h->ssh, serve);
	if (rc < 0)
		goto fail;
	h->io = ml_ssh_chan_io(h->chan);
	h->next_id = 1;
	rc = ml_proto_hello(h->io, &h->next_id, &h->hello);
	if (rc < 0)
		goto fail;
	docker = json_object_get(h->hello, "docker");
	ver = json_string_value(json_object_get(docker, "version"));
	if (ver)
		r->docker = ml_xstrdup(ver);
	else if (h->target->is_app)
		add_problem(r, "docker is not reachable (%s): install "
			       "docker.io and start dockerd",
			    json_string_value(json_object_get(docker,
							      "error"))
				    ?: "no answer");
	if (h->target->is_lb)
		check_haproxy(h, r);
	return 0;
fail:
	ml_host_fail(h, rc);
	return rc;
}

/* mlctl-agent next to the running mlctl. Caller frees. */
static char *default_agent_path(void)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return ml_xstrdup("mlctl-agent");
	self[n] = '\0';
	return ml_xasprintf("%s/mlctl-agent", dirname(self));
}

static int bootstrap_run(struct ml_ctx *ctx)
{
	static const char *const hdr[] = { "HOST", "ADDRESS", "ROLES",
					   "AGENT", "DOCKER", "HAPROXY",
					   "PROBLEMS" };
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct boot_job job = { 0 };
	struct ml_table *t;
	char *agent_path = NULL;
	size_t n = 0, i, bad = 0;
	int rc;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "bootstrap takes no arguments");
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	fo.start_agent = false;
	agent_path = ctx->opt[OPT_AGENT_BINARY]
			     ? ml_xstrdup(ctx->opt[OPT_AGENT_BINARY])
			     : default_agent_path();
	rc = ml_sha256_file(agent_path, job.local_sha);
	if (rc < 0) {
		ml_err_prefix(rc, "cannot read the agent to install");
		rc = ml_err_hint(rc, " (build it with 'make', or give "
				     "--agent-binary)");
		goto out;
	}
	job.local_agent = agent_path;
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, NULL);
	if (rc < 0)
		goto out;
	job.hosts = hosts;
	job.res = ml_xcalloc(n ? n : 1, sizeof(*job.res));
	ml_parallel_run(n, fo.parallel, boot_one, &job);

	t = ml_table_new(ML_ARRAY_SIZE(hdr), hdr);
	for (i = 0; i < n; i++) {
		const struct ml_target *tg = hosts[i].target;
		struct boot_host *r = &job.res[i];
		const char *cells[7];

		cells[0] = tg->name;
		cells[1] = tg->address;
		cells[2] = tg->is_app && tg->is_lb ? "app,lb"
			   : tg->is_lb		   ? "lb"
						   : "app";
		cells[3] = hosts[i].rc < 0 ? "unreachable" : r->agent;
		cells[4] = r->docker;
		cells[5] = r->haproxy;
		cells[6] = hosts[i].rc < 0 ? hosts[i].error : r->problems;
		ml_table_add(t, cells);
		if (hosts[i].rc < 0 || r->problems)
			bad++;
	}
	ml_table_print(t, stdout);
	ml_table_free(t);
	printf("agent %.12s from %s\n", job.local_sha, agent_path);
	rc = bad ? ml_err_set(ML_EHOST, "%zu of %zu host%s not ready", bad, n,
			      n == 1 ? " is" : "s are")
		 : 0;
out:
	for (i = 0; job.res && i < n; i++) {
		free(job.res[i].docker);
		free(job.res[i].haproxy);
		free(job.res[i].problems);
	}
	free(job.res);
	ml_fleet_close(hosts, n);
	free(agent_path);
	return rc;
}

const struct ml_cmd ml_cmd_bootstrap = {
	.name = "bootstrap",
	.summary = "install or upgrade the agent on every host and check what "
		   "each needs",
	.usage = "[--agent-binary FILE] [--timeout DURATION] "
		 "[--trust-new-hosts]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = bootstrap_run,
};
