/*
 * hello: protocol version negotiation and a description of the host.
 *
 *	args:   {"versions": [1, ...]}  the versions the controller speaks
 *	result: {"agent_version", "protocol", "hostname", "docker",
 *		 "disk_free_bytes", "cpus", "memory_bytes", "gpus",
 *		 "state_dir"}
 *
 * "docker" is {"version", "api_version", "api_negotiated"} or {"error"}
 * when the daemon cannot be reached: hello still succeeds, so the
 * controller can say what is wrong with the host. Probing Docker is bounded
 * by HELLO_DOCKER_TIMEOUT_MS. "gpus" lists NVIDIA GPUs from the driver's
 * /proc files (at most MAX_GPUS, each file read up to 16 KiB), [] without
 * the driver. Numbers the host cannot tell are null.
 */
#include "common/ml.h"
#include "common/log.h"
#include "agent/agent.h"
#include "common/docker.h"

#include <dirent.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define HELLO_DOCKER_TIMEOUT_MS 5000L
#define MAX_GPUS 64
#define MAX_SHOWN_VERSIONS 8

/* "1" or "1 to 3", the versions this agent speaks. */
static void agent_versions(struct ml_buf *b)
{
	if (ML_PROTO_VERSION == 1)
		ml_buf_addf(b, "1");
	else
		ml_buf_addf(b, "1 to %d", ML_PROTO_VERSION);
}

static int negotiate(struct ml_agent *a, json_t *args, int *chosen)
{
	struct ml_buf ours = ML_BUF_INIT(64), theirs = ML_BUF_INIT(256);
	json_t *vers = json_object_get(args, "versions"), *v;
	json_int_t n, best = 0;
	size_t i;
	int rc;

	if (!json_is_array(vers) || !json_array_size(vers)) {
		rc = ml_err_set(ML_EPROTO, "hello needs 'versions', a list of "
					   "protocol versions");
		goto out;
	}
	json_array_foreach(vers, i, v)
	{
		if (!json_is_integer(v)) {
			rc = ml_err_set(ML_EPROTO, "hello: 'versions' must "
						   "hold integers");
			goto out;
		}
		n = json_integer_value(v);
		if (i < MAX_SHOWN_VERSIONS)
			ml_buf_addf(&theirs, "%s%lld", i ? ", " : "",
				    (long long)n);
		else if (i == MAX_SHOWN_VERSIONS)
			ml_buf_addstr(&theirs, ", ...");
		if (n >= 1 && n <= ML_PROTO_VERSION && n > best)
			best = n;
	}
	if (!best) {
		agent_versions(&ours);
		a->err_word = ML_PROTO_ERR_VERSION;
		rc = ml_err_set(ML_EPROTO,
				"no common protocol version (agent speaks %s, "
				"controller speaks %s)",
				ml_buf_str(&ours), ml_buf_str(&theirs));
		goto out;
	}
	*chosen = (int)best;
	rc = 0;
out:
	ml_buf_release(&ours);
	ml_buf_release(&theirs);
	return rc;
}

static json_t *docker_info(struct ml_agent *a)
{
	struct ml_docker *d;
	json_t *o = json_object(), *ver;
	const char *api;
	long saved;
	int rc;

	rc = ml_agent_docker(a, &d);
	if (rc == 0) {
		saved = ml_docker_timeout(d);
		if (saved > HELLO_DOCKER_TIMEOUT_MS)
			ml_docker_set_timeout(d, HELLO_DOCKER_TIMEOUT_MS);
		rc = ml_docker_version(d, &ver, &api);
		ml_docker_set_timeout(d, saved);
	}
	if (rc < 0) {
		ml_agent_set_str(o, "error", ml_err_msg());
		return o;
	}
	ml_agent_set_str(o, "version",
			 json_string_value(json_object_get(ver, "Version")));
	ml_agent_set_str(o, "api_version",
			 json_string_value(json_object_get(ver, "ApiVersion")));
	ml_agent_set_str(o, "api_negotiated", api);
	return o;
}

/*
 * Free bytes for the state dir, or for its nearest existing ancestor
 * before the first deploy has created it; null when none can be read.
 */
static json_t *disk_free(const char *dir)
{
	struct statvfs st;
	char *p = ml_xstrdup(dir), *slash;
	json_t *v = NULL;

	for (;;) {
		if (*p && statvfs(p, &st) == 0) {
			v = json_integer((json_int_t)st.f_bavail *
					 (json_int_t)st.f_frsize);
			break;
		}
		slash = strrchr(p, '/');
		if (!slash)
			break;
		if (slash == p) {
			if (!p[1])
				break;
			p[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
	free(p);
	return v ? v : json_null();
}

/* MemTotal from /proc/meminfo in bytes, 0 if unknown. */
static long long meminfo_total(void)
{
	struct ml_buf b = ML_BUF_INIT(64 << 10);
	const char *p;
	long long kb = 0;

	if (ml_buf_read_file(&b, "/proc/meminfo") == 0) {
		p = strstr(ml_buf_str(&b), "MemTotal:");
		if (p && sscanf(p, "MemTotal: %lld kB", &kb) != 1)
			kb = 0;
	}
	ml_err_clear();
	ml_buf_release(&b);
	return kb > 0 ? kb * 1024 : 0;
}

static json_t *memory_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	long long m;

	if (pages > 0 && size > 0)
		return json_integer((json_int_t)pages * size);
	m = meminfo_total();
	return m ? json_integer(m) : json_null();
}

static json_t *cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? json_integer(n) : json_null();
}

static json_t *hostname(void)
{
	char name[256];

	if (gethostname(name, sizeof(name)) < 0)
		return json_null();
	name[sizeof(name) - 1] = '\0';
	return ml_proto_string(name);
}

/* The value after "key:" on its line of text, trimmed, into out. */
static void info_field(struct ml_buf *out, const char *text, const char *key)
{
	const char *p = text, *end;
	size_t klen = strlen(key);

	ml_buf_reset(out);
	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			end = strchr(p, '\n');
			if (!end)
				end = p + strlen(p);
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			ml_buf_add(out, p, (size_t)(end - p));
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* One entry per directory of the NVIDIA driver, sorted by bus id. */
static json_t *gpus(const char *dir)
{
	struct ml_buf path = ML_BUF_INIT(4096), text = ML_BUF_INIT(16 << 10);
	struct ml_buf field = ML_BUF_INIT(1024);
	json_t *list = json_array(), *g;
	char *names[MAX_GPUS];
	size_t n = 0, i;
	struct dirent *de;
	DIR *dh;

	dh = opendir(dir);
	if (!dh)
		goto out;
	while (n < MAX_GPUS && (de = readdir(dh)))
		if (de->d_name[0] != '.')
			names[n++] = ml_xstrdup(de->d_name);
	closedir(dh);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (i = 0; i < n; i++) {
		g = json_object();
		ml_agent_set_str(g, "bus_id", names[i]);
		ml_buf_reset(&path);
		ml_buf_reset(&text);
		if (ml_buf_addf(&path, "%s/%s/information", dir, names[i]) ==
			    0 &&
		    ml_buf_read_file(&text, path.data) == 0) {
			info_field(&field, text.data, "Model");
			ml_agent_set_str(g, "model",
					 field.len ? field.data : NULL);
			info_field(&field, text.data, "GPU UUID");
			ml_agent_set_str(g, "uuid",
					 field.len ? field.data : NULL);
		} else {
			ml_agent_set_str(g, "model", NULL);
			ml_agent_set_str(g, "uuid", NULL);
		}
		json_array_append_new(list, g);
		free(names[i]);
	}
out:
	ml_err_clear();
	ml_buf_release(&path);
	ml_buf_release(&text);
	ml_buf_release(&field);
	return list;
}

static int op_hello(struct ml_agent *a, json_t *args, json_t **result)
{
	json_t *r;
	int rc, chosen = 0;

	rc = negotiate(a, args, &chosen);
	if (rc < 0)
		return rc;
	a->protocol = chosen;

	r = json_object();
	ml_agent_set_str(r, "agent_version", ML_VERSION);
	json_object_set_new(r, "protocol", json_integer(chosen));
	json_object_set_new(r, "hostname", hostname());
	json_object_set_new(r, "docker", docker_info(a));
	json_object_set_new(r, "disk_free_bytes", disk_free(a->state_dir));
	json_object_set_new(r, "cpus", cpus());
	json_object_set_new(r, "memory_bytes", memory_bytes());
	json_object_set_new(r, "gpus", gpus(a->gpu_dir));
	ml_agent_set_str(r, "state_dir", a->state_dir);
	*result = r;
	return 0;
}

const struct ml_agent_op ml_agent_op_hello = {
	.name = "hello",
	.summary = "agree on a protocol version; describe the host",
	.flags = ML_AGENT_OP_BEFORE_HELLO,
	.run = op_hello,
};
