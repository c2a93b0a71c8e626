/*
 * lb_revisions: tell the load balancer which revision runs behind each of
 * its servers, and since when, so that lb_requests can count requests per
 * revision even after the containers that served them are gone.
 *
 *	args:   {"app", "servers": [{"name", "revision", "since_ms"}]}
 *	result: {"servers": N (servers known), "changed": bool}
 *
 * Server names are slots ("vm1-0a"), which revisions take in turn; the
 * map keeps, per server, the last MAP_KEEP (since_ms, revision) pairs in
 * <state>/haproxy/<app>/revisions.json (0600, replaced by tmp + rename),
 * oldest first. A pair whose revision is the server's latest is not added
 * again. The controller sends what runs after every rollout, with each
 * container's creation time: a container serves only after it was created,
 * so a request accepted at time T went to the revision with the latest
 * since_ms <= T. The app's HAProxy directory must exist (lb_apply made it).
 * ml_agent_lb_revision() is the lookup lb_requests uses.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/lb/lb.h"
#include "common/buf.h"

#include <sys/stat.h>
#include <unistd.h>

#define OP "lb_revisions"
#define MAP_KEEP 16
#define MAP_FILE "revisions.json"
#define MAP_MAX ((size_t)1 << 20)

static char *map_path(const struct ml_haproxy *h)
{
	return ml_xasprintf("%s/" MAP_FILE, h->dir);
}

int ml_agent_lb_map_load(json_t **out, const struct ml_haproxy *h)
{
	struct ml_buf b = ML_BUF_INIT(MAP_MAX);
	char *path = map_path(h);
	json_t *m = NULL;

	/* absent or damaged: an empty map, the numbers fall back to slots */
	if (ml_buf_read_file(&b, path) == 0 && b.len)
		m = json_loadb(b.data, b.len, 0, NULL);
	if (!json_is_object(m)) {
		json_decref(m);
		m = json_object();
	}
	ml_buf_release(&b);
	free(path);
	*out = m;
	return 0;
}

int64_t ml_agent_lb_revision(json_t *map, const char *server, int64_t at_ms)
{
	json_t *pairs = json_object_get(map, server), *p;
	int64_t rev = -1;
	size_t i;

	json_array_foreach(pairs, i, p) {
		if (json_integer_value(json_array_get(p, 0)) > at_ms)
			break;
		rev = json_integer_value(json_array_get(p, 1));
	}
	return rev;
}

static int map_save(const struct ml_haproxy *h, json_t *map)
{
	char *path = map_path(h), *tmp = ml_xasprintf("%s.tmp", path);
	char *text = json_dumps(map, JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	rc = ml_haproxy_write_file(tmp, text, strlen(text));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'", tmp);
	if (rc < 0)
		unlink(tmp);
	free(text);
	free(tmp);
	free(path);
	return rc;
}

static int op_lb_revisions(struct ml_agent *a, json_t *args, json_t **result)
{
	struct ml_haproxy h = { .lock_fd = -1 };
	json_t *map = NULL, *servers, *s, *pairs;
	const char *app, *name;
	json_int_t rev, since;
	bool changed = false;
	struct stat st;
	size_t i;
	int rc;

	rc = ml_agent_arg_name(&app, args, OP, "app", false);
	if (rc == 0)
		rc = ml_haproxy_init(&h, a->state_dir, app);
	if (rc < 0)
		goto out;
	servers = json_object_get(args, "servers");
	if (!json_is_array(servers) ||
	    json_array_size(servers) > ML_LB_MAX_SERVERS) {
		rc = ml_err_set(ML_EPROTO,
				"%s: 'servers' must be an array of at most %d",
				OP, ML_LB_MAX_SERVERS);
		goto out;
	}
	if (stat(h.dir, &st) < 0) {
		rc = ml_err_set(ML_ENOTFOUND,
				"%s: app '%s' has no load balancer here", OP,
				app);
		goto out;
	}
	rc = ml_haproxy_lock(&h);
	if (rc < 0)
		goto out;
	ml_agent_lb_map_load(&map, &h);
	json_array_foreach(servers, i, s) {
		json_t *last;

		rc = ml_agent_arg_name(&name, s, OP, "name", false);
		if (rc == 0 && !ml_lb_valid_name(name))
			rc = ml_err_set(ML_EPROTO, "%s: bad server name", OP);
		if (rc == 0)
			rc = ml_agent_arg_int(&rev, s, OP, "revision", 0,
					      INT64_MAX, true);
		if (rc == 0)
			rc = ml_agent_arg_int(&since, s, OP, "since_ms", 0,
					      INT64_MAX, true);
		if (rc < 0)
			goto out;
		pairs = json_object_get(map, name);
		if (!json_is_array(pairs)) {
			pairs = json_array();
			json_object_set_new(map, name, pairs);
		}
		last = json_array_get(pairs, json_array_size(pairs) - 1);
		if (last && json_integer_value(json_array_get(last, 1)) == rev)
			continue;
		json_array_append_new(pairs, json_pack("[I,I]", since, rev));
		while (json_array_size(pairs) > MAP_KEEP)
			json_array_remove(pairs, 0);
		changed = true;
	}
	if (changed)
		rc = map_save(&h, map);
	if (rc < 0)
		goto out;
	*result = json_pack("{s:I,s:b}", "servers",
			    (json_int_t)json_object_size(map), "changed",
			    changed);
out:
	json_decref(map);
	ml_haproxy_release(&h);
	return rc;
}

const struct ml_agent_op ml_agent_op_lb_revisions = {
	.name = OP,
	.summary = "record which revision runs behind each server, for "
		   "lb_requests",
	.run = op_lb_revisions,
};
