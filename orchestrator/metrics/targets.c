/*
 * What a monitoring system needs to find the service, kept current after
 * every rollout:
 *
 * - each load balancer's map of which revision runs behind which HAProxy
 *   server since when (the agent's lb_revisions), so that requests are
 *   counted per revision even after a rollout replaced the containers;
 * - a Prometheus file_sd file: one group per LB exporter (HAProxy's own,
 *   /metrics on metrics.port at metrics.bind or the LB host's address) and,
 *   when the playbook names metrics.path, one per running app container
 *   (its published port on its host), labelled app, host, role, revision,
 *   commit (and container). Prometheus rereads the file when it changes;
 *   it is replaced atomically (tmp + rename), so it never sees half.
 */
#include "common/ml.h"
#include "common/log.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/ledger/ledger.h"
#include "orchestrator/transport/transport.h"

#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

struct refresh_job {
	struct ml_host_session *hosts;
	json_t **lists; /* per host: its running containers, or NULL */
	const char *app;
};

static int list_one(size_t i, void *arg)
{
	struct refresh_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	json_t *res = NULL;
	int rc;

	if (h->rc < 0 || !h->target->is_app)
		return 0;
	rc = ml_op_list(h, job->app, &res);
	if (rc == 0)
		job->lists[i] = json_incref(json_object_get(res, "containers"));
	json_decref(res);
	return rc;
}

/* c is a running container of ours with a revision, replica and slot. */
static bool placed(json_t *c, int64_t *rev, int *replica, char *slot)
{
	const char *st = json_string_value(json_object_get(c, "state"));
	const char *s = json_string_value(json_object_get(c, "slot"));
	const char *r = json_string_value(json_object_get(
		json_object_get(c, "labels"), "mlctl.replica"));
	json_t *rv = json_object_get(c, "revision");
	char *end;
	long v;

	if (!st || strcmp(st, "running") || !s || (s[0] != 'a' && s[0] != 'b') ||
	    s[1] || !r || !json_is_integer(rv))
		return false;
	v = strtol(r, &end, 10);
	if (*end || end == r || v < 0 || v > 999)
		return false;
	*rev = json_integer_value(rv);
	*replica = (int)v;
	*slot = s[0];
	return true;
}

static json_t *group(const char *addr, int port, json_t *labels)
{
	char t[300];

	snprintf(t, sizeof(t), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr,
		 port);
	return json_pack("{s:[s],s:o}", "targets", t, "labels", labels);
}

static int write_atomic(const char *path, const char *text)
{
	char *tmp = ml_xasprintf("%s.tmp", path), *dup = ml_xstrdup(path);
	char *dir = dirname(dup), *p;
	size_t len = strlen(text);
	int fd = -1, rc = 0;

	for (p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0755);
			*p = '/';
		}
	mkdir(dir, 0755);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'", tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		fd = -1;
		rc = ml_err_errno(ML_EFAIL, errno, "cannot replace '%s'", path);
		goto out;
	}
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	free(dup);
	return rc;
}

/* What clients got from each revision during the rollout, as events. */
static void record(struct ml_ledger *ledger, int64_t revision,
		   struct ml_host_session *hosts, size_t n, json_t **lists,
		   const char *app, int64_t window_ms)
{
	const char *where = NULL;
	json_t *m = NULL, *r;
	size_t i;
	char d[256];

	for (i = 0; i < n && !where; i++)
		if (hosts[i].target->is_lb && hosts[i].rc == 0)
			where = hosts[i].target->name;
	if (!where || window_ms < 1000)
		return;
	ml_metrics_collect(&m, hosts, n, lists, app, window_ms);
	json_array_foreach(json_object_get(m, "revisions"), i, r) {
		json_t *p50 = json_object_get(r, "p50_ms");
		json_t *p99 = json_object_get(r, "p99_ms");

		snprintf(d, sizeof(d),
			 "revision %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT
			 " requests in %lld s, error rate %.2f%%, p50 %.0f ms, "
			 "p99 %.0f ms",
			 json_integer_value(json_object_get(r, "revision")),
			 json_integer_value(json_object_get(r, "requests")),
			 (long long)(window_ms / 1000),
			 100 * json_number_value(
				       json_object_get(r, "error_rate")),
			 json_is_number(p50) ? json_number_value(p50) : -1,
			 json_is_number(p99) ? json_number_value(p99) : -1);
		if (ml_ledger_event(ledger, revision, where, "requests", "ok",
				    d) < 0)
			ml_warn("cannot record requests: %s", ml_err_msg());
	}
	json_decref(m);
}

int ml_metrics_refresh(const struct ml_config *cfg,
		       struct ml_host_session *hosts, size_t n,
		       const char *path, struct ml_ledger *ledger,
		       int64_t revision, int64_t window_ms)
{
	const struct ml_playbook *pb = cfg->playbook;
	struct refresh_job job = { hosts, NULL, pb->app };
	json_t *servers = json_array(), *groups = json_array(), *c;
	int64_t newest = -1, rev;
	const char *newest_commit = NULL;
	char *text = NULL, name[200], revs[24];
	int replica, rc = 0, rc2;
	size_t i, k;
	char slot;

	job.lists = ml_xcalloc(n ? n : 1, sizeof(*job.lists));
	ml_parallel_run(n, 16, list_one, &job);
	for (i = 0; i < n; i++)
		json_array_foreach(job.lists[i], k, c) {
			if (!placed(c, &rev, &replica, &slot))
				continue;
			if (rev > newest) {
				newest = rev;
				newest_commit = json_string_value(
					json_object_get(c, "commit"));
			}
			snprintf(name, sizeof(name), "%s-%d%c",
				 hosts[i].target->name, replica, slot);
			json_array_append_new(
				servers,
				json_pack("{s:s,s:I,s:I}", "name", name,
					  "revision", (json_int_t)rev,
					  "since_ms",
					  (json_int_t)json_integer_value(
						  json_object_get(c, "created")) *
						  1000));
			if (!pb->metrics.path)
				continue;
			snprintf(revs, sizeof(revs), "%lld", (long long)rev);
			json_array_append_new(
				groups,
				group(hosts[i].target->address,
				      ml_rollout_host_port(cfg, replica, slot),
				      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
						"app", pb->app, "host",
						hosts[i].target->name, "role",
						"app", "revision", revs,
						"commit",
						json_string_value(json_object_get(
							c, "commit")) ?: "",
						"container",
						json_string_value(json_object_get(
							c, "name")) ?: "",
						"__metrics_path__",
						pb->metrics.path)));
		}
	snprintf(revs, sizeof(revs), "%lld", (long long)newest);
	for (i = 0; i < n; i++) {
		if (!hosts[i].target->is_lb)
			continue;
		json_array_append_new(
			groups,
			group(pb->metrics.bind ?: hosts[i].target->address,
			      pb->metrics.port,
			      json_pack("{s:s,s:s,s:s,s:s,s:s}", "app", pb->app,
					"host", hosts[i].target->name, "role",
					"lb", "revision",
					newest >= 0 ? revs : "", "commit",
					newest_commit ?: "")));
		if (hosts[i].rc < 0 || !json_array_size(servers))
			continue;
		rc2 = ml_op_lb_revisions(&hosts[i], pb->app, servers, NULL);
		if (rc2 < 0 && rc2 != ML_ENOTFOUND) {
			ml_warn("cannot give '%s' the revision of each "
				"server: %s",
				hosts[i].target->name, ml_err_msg());
			rc = rc ? rc : rc2;
		}
	}
	if (ledger && revision > 0)
		record(ledger, revision, hosts, n, job.lists, pb->app,
		       window_ms);
	if (path) {
		text = json_dumps(groups, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		rc2 = write_atomic(path, text ? text : "[]");
		if (rc2 < 0) {
			ml_warn("%s", ml_err_msg());
			rc = rc ? rc : rc2;
		}
	}
	for (i = 0; i < n; i++)
		json_decref(job.lists[i]);
	free(job.lists);
	free(text);
	json_decref(servers);
	json_decref(groups);
	return rc;
}

char *ml_metrics_targets_path(const char *ledger_path, const char *app)
{
	char *dup = ml_xstrdup(ledger_path), *p;

	p = ml_xasprintf("%s/prometheus/%s.json", dirname(dup), app);
	free(dup);
	return p;
}
