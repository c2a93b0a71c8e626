/*
 * The desired state as Kubernetes objects (render.h: ml_render_k8s). A pure
 * function: the config and the options in, a JSON array of objects and a
 * list of warnings out. How each playbook key maps:
 *
 *   app                 names every object; label app.kubernetes.io/name,
 *                       the only selector label (selectors are immutable,
 *                       so nothing that changes per revision is in them)
 *   image               the container image, moved to --image-registry and
 *                       pinned by --image-digest when given; its tag is
 *                       app.kubernetes.io/version, the commit mlctl.dev/commit
 *   port                a container port named "http"; the Service targets
 *                       the name
 *   health              readiness (path, interval, timeout, thresholds),
 *                       a startupProbe whose budget is start_period plus
 *                       unhealthy_threshold intervals (Docker's meaning of
 *                       a start period: failures inside it do not count),
 *                       and liveness; Kubernetes counts whole seconds
 *   replicas × targets  Deployment replicas; spread over nodes
 *   env                 a ConfigMap "<app>-env" (envFrom), hashed into a
 *                       pod annotation so that an env change rolls the pods
 *   secrets             the Secret "<app>-secrets" by name only: files in
 *                       /run/secrets, or env (security.secrets_as)
 *   resources           cpu and memory requests = limits (Guaranteed QoS,
 *                       as docker's limits are hard), GPUs as
 *                       nvidia.com/gpu in limits, with a toleration
 *   targets             nodeSelector: the labels every target host has with
 *                       the same value (gpu: "true")
 *   rollout.batch       RollingUpdate maxSurge (maxUnavailable 0) and the
 *                       PodDisruptionBudget's maxUnavailable
 *   rollout.drain_timeout terminationGracePeriodSeconds
 *   security            securityContext (escalation, cap_add, read-only
 *                       root), secrets as files or env, init as a shared
 *                       process namespace
 *   prune.retain        revisionHistoryLimit
 *   metrics.path        pod annotations prometheus.io/scrape, port, path
 *   rollout.canary      a warning, or with --rollouts an Argo Rollout whose
 *                       canary steps are the playbook's
 *   load_balancer       a ClusterIP Service on the listen port (the app port
 *                       when TLS is asked: TLS needs an Ingress)
 *
 * Everything else that cannot be said is a warning naming the key. Sizes:
 * a handful of objects; nothing here is large.
 */
#include "common/ml.h"
#include "common/fmt.h"
#include "common/sha256.h"
#include "orchestrator/config/config.h"
#include "orchestrator/render/render.h"

/* Old ReplicaSets kept for `kubectl rollout undo` when prune.retain does
 * not say (it always does today): Kubernetes' default, and
 * about as many revisions as a VM keeps images of. */
#define REVISION_HISTORY 10
#define LABEL_NAME "app.kubernetes.io/name"
#define LABEL_MANAGED "app.kubernetes.io/managed-by"
#define LABEL_VERSION "app.kubernetes.io/version"
#define LABEL_COMMIT "mlctl.dev/commit"
#define ANNOT_ENV "mlctl.dev/env-sha256"
#define GPU_RESOURCE "nvidia.com/gpu"

struct rctx {
	const struct ml_config *cfg;
	const struct ml_playbook *pb;
	const struct ml_render_opts *o;
	struct ml_render_warns *w;
	size_t app_hosts;
	char *image;   /* the reference the cluster pulls */
	char *version; /* app.kubernetes.io/version, or NULL */
	int64_t period_s, timeout_s, startup_failures;
	bool read_only; /* --read-only-root or security.read_only_root */
};

static void warn(struct ml_render_warns *w, const char *key, const char *fmt,
		 ...) ML_PRINTF(3, 4);

static void warn(struct ml_render_warns *w, const char *key, const char *fmt,
		 ...)
{
	struct ml_buf b = ML_BUF_INIT(0);
	va_list ap;

	va_start(ap, fmt);
	if (ml_buf_vaddf(&b, fmt, ap) < 0)
		BUG("warning too long");
	va_end(ap);
	ML_GROW(w->v, w->n + 1, w->cap);
	w->v[w->n].key = ml_xstrdup(key);
	w->v[w->n].msg = ml_buf_detach(&b, NULL);
	w->n++;
}

void ml_render_warns_release(struct ml_render_warns *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		free(w->v[i].key);
		free(w->v[i].msg);
	}
	free(w->v);
	memset(w, 0, sizeof(*w));
}

void ml_render_warns_print(const struct ml_render_warns *w, FILE *stream)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		fprintf(stream, "mlctl: warning: '%s': %s\n", w->v[i].key,
			w->v[i].msg);
}

/* ---- options ----------------------------------------------------------- */

static bool digest_ok(const char *d)
{
	size_t i;

	if (strncmp(d, "sha256:", 7) || strlen(d) != 71)
		return false;
	for (i = 7; d[i]; i++)
		if (!strchr("0123456789abcdef", d[i]))
			return false;
	return true;
}

/* host[:port][/path...], lowercase path components as a registry takes. */
static bool registry_ok(const char *r)
{
	size_t i, n = strlen(r);

	if (!n || n > 200 || r[0] == '/' || r[n - 1] == '/' || strstr(r, "//"))
		return false;
	for (i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
			    "YZ"
			    "0123456789._-:/",
			    r[i]))
			return false;
	return true;
}

static int check_opts(const struct ml_render_opts *o)
{
	if (o->namespace && !ml_k8s_is_dns_label(o->namespace))
		return ml_err_set(ML_EINVALID,
				  "namespace '%.80s' is not a DNS-1123 label "
				  "(lowercase letters, digits and '-', at "
				  "most 63)",
				  o->namespace);
	if (o->image_registry && !registry_ok(o->image_registry))
		return ml_err_set(ML_EINVALID,
				  "image registry '%.80s' is not a registry "
				  "name such as 'registry.example.com/team'",
				  o->image_registry);
	if (o->image_digest && !digest_ok(o->image_digest))
		return ml_err_set(ML_EINVALID,
				  "image digest '%.80s' is not 'sha256:' and "
				  "64 lowercase hex digits",
				  o->image_digest);
	return 0;
}

/* ---- the image --------------------------------------------------------- */

/* True when the first path component of a reference names a registry. */
static bool has_registry(const char *repo)
{
	const char *slash = strchr(repo, '/');
	size_t n = slash ? (size_t)(slash - repo) : 0;

	return slash && (memchr(repo, '.', n) || memchr(repo, ':', n) ||
			 (n == 9 && !strncmp(repo, "localhost", 9)));
}

/*
 * The playbook's image, in parts: its name in the local Docker (a built
 * image is mlctl/<app>:<commit>), and the repository, tag and digest the
 * cluster pulls, moved under --image-registry. Warnings go to w (NULL:
 * none). Free with parts_release.
 */
struct image_parts {
	char *local;  /* the name in the local Docker */
	char *repo;   /* registry/path the cluster pulls, without tag */
	char *tag;    /* may be NULL */
	char *digest; /* "sha256:...", may be NULL */
};

static void parts_release(struct image_parts *p)
{
	free(p->local);
	free(p->repo);
	free(p->tag);
	free(p->digest);
}

static void image_parts(struct image_parts *p, const struct ml_config *cfg,
			const struct ml_render_opts *o,
			struct ml_render_warns *w)
{
	const struct ml_image_spec *is = &cfg->playbook->image;
	const char *key =
		is->kind == ML_IMAGE_BUILD ? "image.build" : "image.ref";
	char *repo = NULL, *at, *colon, *slash;
	const char *path;

	memset(p, 0, sizeof(*p));
	if (is->kind == ML_IMAGE_BUILD) {
		repo = ml_xasprintf("mlctl/%s", cfg->playbook->app);
		p->tag = ml_xstrdup(cfg->commit ? cfg->commit : "latest");
		p->local = ml_xasprintf("%s:%s", repo, p->tag);
		if (!cfg->commit && w)
			warn(w, key,
			     "rendered from the working tree, so the image "
			     "has no commit to be tagged with: tagged "
			     "'latest'");
	} else if (!strncmp(is->ref, "sha256:", 7)) {
		/* an image id names a local image, not a pullable one */
		repo = ml_xstrdup(cfg->playbook->app);
		p->tag = ml_xstrndup(is->ref + 7, strnlen(is->ref + 7, 12));
		p->local = ml_xstrdup(is->ref);
		if (w)
			warn(w, key,
			     "'%.80s' is a local image id, which no registry "
			     "knows: tag it '%s:%s' and push it",
			     is->ref, repo, p->tag);
	} else {
		p->local = ml_xstrdup(is->ref);
		repo = ml_xstrdup(is->ref);
		at = strchr(repo, '@');
		if (at) {
			p->digest = ml_xstrdup(at + 1);
			*at = '\0';
		}
		colon = strrchr(repo, ':');
		slash = strrchr(repo, '/');
		if (colon && (!slash || colon > slash)) {
			p->tag = ml_xstrdup(colon + 1);
			*colon = '\0';
		}
	}
	if (o->image_digest) {
		free(p->digest);
		p->digest = ml_xstrdup(o->image_digest);
	}
	path = repo;
	if (o->image_registry) {
		if (has_registry(repo))
			path = strchr(repo, '/') + 1;
		p->repo = ml_xasprintf("%s/%s", o->image_registry, path);
	} else {
		p->repo = ml_xstrdup(repo);
		if (!has_registry(repo) && w)
			warn(w, key,
			     "'%s' is an image of the local Docker; a cluster "
			     "pulls from a registry: push it there and pass "
			     "--image-registry (see the README)",
			     repo);
	}
	if (!p->digest && w)
		warn(w, key,
		     "the image is named by its tag, which can be moved: push "
		     "it with docker (mlctl then finds the digest) or pass "
		     "--image-digest to pin it");
	free(repo);
}

int ml_render_k8s_image(char **local, char **repo, const struct ml_config *cfg,
			const struct ml_render_opts *o)
{
	struct image_parts p;

	*local = *repo = NULL;
	if (check_opts(o) < 0)
		return ML_EINVALID;
	image_parts(&p, cfg, o, NULL);
	*local = p.local;
	*repo = p.repo;
	p.local = p.repo = NULL;
	parts_release(&p);
	return 0;
}

/* The reference the cluster pulls, repo[:tag][@digest]; sets r->image and
 * r->version (the tag when it can be a label value, else the commit). */
static void image_ref(struct rctx *r)
{
	struct image_parts p;

	image_parts(&p, r->cfg, r->o, r->w);
	r->image = ml_xasprintf("%s%s%s%s%s", p.repo, p.tag ? ":" : "",
				p.tag ? p.tag : "", p.digest ? "@" : "",
				p.digest ? p.digest : "");
	if (p.tag && ml_k8s_is_label_value(p.tag))
		r->version = ml_xstrdup(p.tag); /* at most 63: a label value */
	else if (r->cfg->commit)
		r->version = ml_xstrndup(r->cfg->commit,
					 strnlen(r->cfg->commit, 12));
	parts_release(&p);
}

/* ---- pieces ------------------------------------------------------------ */

static json_t *selector_labels(const struct rctx *r)
{
	return json_pack("{s:s}", LABEL_NAME, r->pb->app);
}

/* Labels of every object; with_revision adds version and commit (objects
 * and pods, never selectors). */
static json_t *labels(const struct rctx *r)
{
	json_t *l = json_pack("{s:s,s:s}", LABEL_NAME, r->pb->app,
			      LABEL_MANAGED, "mlctl");

	if (r->version)
		json_object_set_new(l, LABEL_VERSION, json_string(r->version));
	if (r->cfg->commit)
		json_object_set_new(l, LABEL_COMMIT,
				    json_string(r->cfg->commit));
	return l;
}

static json_t *metadata(const struct rctx *r, const char *name)
{
	json_t *m = json_pack("{s:s}", "name", name);

	if (r->o->namespace)
		json_object_set_new(m, "namespace",
				    json_string(r->o->namespace));
	json_object_set_new(m, "labels", labels(r));
	return m;
}

static json_t *object(const struct rctx *r, const char *api, const char *kind,
		      const char *name)
{
	return json_pack("{s:s,s:s,s:o}", "apiVersion", api, "kind", kind,
			 "metadata", metadata(r, name));
}

/* Whole seconds, rounded up, at least 1; a warning names key when the value
 * was not a whole number of seconds. */
static int64_t seconds(struct rctx *r, const char *key, int64_t ms)
{
	char d[ML_FMT_MAX];
	int64_t s = (ms + 999) / 1000;

	if (s < 1)
		s = 1;
	if (ms != s * 1000)
		warn(r->w, key,
		     "%s rounded up to %" PRId64 "s: Kubernetes probes count "
		     "whole seconds",
		     ml_fmt_duration(d, ms), s);
	return s;
}

static json_t *probe(const struct rctx *r, int64_t success, int64_t failure)
{
	return json_pack("{s:{s:s,s:s,s:s},s:I,s:I,s:I,s:I}", "httpGet", "path",
			 r->pb->health.path, "port", "http", "scheme", "HTTP",
			 "periodSeconds", (json_int_t)r->period_s,
			 "timeoutSeconds", (json_int_t)r->timeout_s,
			 "successThreshold", (json_int_t)success,
			 "failureThreshold", (json_int_t)failure);
}

/* Docker's "16" or "0.5" CPUs as a quantity: "16", "500m". */
static json_t *cpu_quantity(struct rctx *r)
{
	double m = r->pb->resources.cpus * 1000.0;
	long long mi = (long long)(m + 0.5); /* cpus > 0 */
	double diff = m - (double)mi;

	if (diff > 1e-6 || diff < -1e-6)
		warn(r->w, "resources.cpus",
		     "Kubernetes counts CPUs in thousandths: rounded to %lldm",
		     mi);
	if (mi % 1000 == 0)
		return json_sprintf("%lld", mi / 1000);
	return json_sprintf("%lldm", mi);
}

/* Bytes as a quantity, in the largest binary unit that divides them. */
static json_t *memory_quantity(int64_t b)
{
	static const char *const units[] = {"Ti", "Gi", "Mi", "Ki"};
	int i;

	for (i = 0; i < 4; i++) {
		int64_t u = (int64_t)1 << (10 * (4 - i));

		if (b % u == 0)
			return json_sprintf("%" PRId64 "%s", b / u, units[i]);
	}
	return json_sprintf("%" PRId64, b);
}

static json_t *resources(struct rctx *r)
{
	const struct ml_resources_spec *rs = &r->pb->resources;
	json_t *req = json_object(), *lim = json_object();
	json_t *res = json_object();

	if (rs->cpus > 0) {
		json_object_set_new(req, "cpu", cpu_quantity(r));
		json_object_set(lim, "cpu", json_object_get(req, "cpu"));
	}
	if (rs->memory_bytes > 0) {
		json_object_set_new(req, "memory",
				    memory_quantity(rs->memory_bytes));
		json_object_set(lim, "memory", json_object_get(req, "memory"));
	}
	if (rs->gpus) {
		/* extended resources: limits only, requests follow */
		json_object_set_new(
			lim, GPU_RESOURCE,
			json_sprintf("%d", rs->gpus < 0 ? 1 : rs->gpus));
		if (rs->gpus < 0)
			warn(r->w, "resources.gpus",
			     "'all' has no Kubernetes form (a pod asks for a "
			     "number of GPUs): rendered as 1; write the "
			     "number the model needs");
	}
	if (json_object_size(req))
		json_object_set(res, "requests", req);
	if (json_object_size(lim))
		json_object_set(res, "limits", lim);
	json_decref(req);
	json_decref(lim);
	return res;
}

/* The sha-256 of the env as "K=V\0" pairs: in a pod annotation, so that a
 * changed ConfigMap rolls the pods as a changed env rolls the containers. */
static json_t *env_hash(const struct ml_playbook *pb)
{
	struct ml_sha256 *h = ml_sha256_new();
	char hex[ML_SHA256_HEX];
	size_t i;

	for (i = 0; i < pb->env.n; i++) {
		ml_sha256_update(h, pb->env.v[i].key, strlen(pb->env.v[i].key));
		ml_sha256_update(h, "=", 1);
		ml_sha256_update(h, pb->env.v[i].value,
				 strlen(pb->env.v[i].value) + 1);
	}
	ml_sha256_final_hex(h, hex);
	ml_sha256_free(h);
	return json_string(hex);
}

static json_t *container(struct rctx *r)
{
	const struct ml_playbook *pb = r->pb;
	json_t *c, *env, *sc, *mounts;
	size_t i;

	c = json_pack("{s:s,s:s,s:s,s:[{s:s,s:i,s:s}]}", "name", pb->app,
		      "image", r->image, "imagePullPolicy", "IfNotPresent",
		      "ports", "name", "http", "containerPort", pb->port,
		      "protocol", "TCP");
	if (pb->env.n) {
		char *cm = ml_xasprintf("%s" ML_RENDER_ENV_SUFFIX, pb->app);

		json_object_set_new(
			c, "envFrom",
			json_pack("[{s:{s:s}}]", "configMapRef", "name", cm));
		free(cm);
	}
	/* secrets as the VM gives them: env, or files in /run/secrets */
	if (pb->secrets.n && pb->security.secrets_env) {
		char *sn = ml_xasprintf("%s" ML_RENDER_SECRET_SUFFIX, pb->app);

		env = json_array();
		for (i = 0; i < pb->secrets.n; i++)
			json_array_append_new(
				env, json_pack("{s:s,s:{s:{s:s,s:s}}}", "name",
					       pb->secrets.v[i], "valueFrom",
					       "secretKeyRef", "name", sn,
					       "key", pb->secrets.v[i]));
		json_object_set_new(c, "env", env);
		free(sn);
	}
	json_object_set_new(c, "resources", resources(r));
	json_object_set_new(c, "startupProbe",
			    probe(r, 1, r->startup_failures));
	json_object_set_new(c, "readinessProbe",
			    probe(r, pb->health.healthy_threshold,
				  pb->health.unhealthy_threshold));
	json_object_set_new(c, "livenessProbe",
			    probe(r, 1, pb->health.unhealthy_threshold));
	sc = json_pack("{s:b,s:b,s:b,s:{s:[s]}}", "runAsNonRoot", 1,
		       "allowPrivilegeEscalation",
		       !pb->security.no_new_privileges,
		       "readOnlyRootFilesystem", r->read_only, "capabilities",
		       "drop", "ALL");
	if (pb->security.cap_add.n) {
		json_t *add = json_array();

		for (i = 0; i < pb->security.cap_add.n; i++)
			json_array_append_new(
				add, json_string(pb->security.cap_add.v[i]));
		json_object_set_new(json_object_get(sc, "capabilities"), "add",
				    add);
	}
	json_object_set_new(c, "securityContext", sc);
	mounts = json_array();
	if (r->read_only)
		json_array_append_new(mounts,
				      json_pack("{s:s,s:s}", "name", "tmp",
						"mountPath", "/tmp"));
	if (pb->secrets.n && !pb->security.secrets_env)
		json_array_append_new(mounts,
				      json_pack("{s:s,s:s,s:b}", "name",
						"secrets", "mountPath",
						"/run/secrets", "readOnly", 1));
	if (json_array_size(mounts))
		json_object_set(c, "volumeMounts", mounts);
	json_decref(mounts);
	return c;
}

/*
 * The labels every app host has with the same value: where the playbook
 * runs, said as a node selector. Labels that Kubernetes cannot hold are
 * warnings.
 */
static json_t *node_selector(struct rctx *r)
{
	const struct ml_target *first = NULL;
	json_t *sel = json_object();
	size_t i, j, k;

	for (i = 0; i < r->cfg->ntargets && !first; i++)
		if (r->cfg->targets[i].is_app)
			first = &r->cfg->targets[i];
	for (j = 0; first && j < first->labels.n; j++) {
		const struct ml_kv *kv = &first->labels.v[j];
		bool everywhere = true;

		for (i = 0; i < r->cfg->ntargets && everywhere; i++) {
			const struct ml_target *t = &r->cfg->targets[i];
			bool same = false;

			if (!t->is_app)
				continue;
			for (k = 0; k < t->labels.n && !same; k++)
				same = !strcmp(t->labels.v[k].key, kv->key) &&
				       !strcmp(t->labels.v[k].value, kv->value);
			everywhere = same;
		}
		if (!everywhere)
			continue;
		if (!ml_k8s_is_label_key(kv->key) ||
		    !ml_k8s_is_label_value(kv->value)) {
			char *key = ml_xasprintf("labels.%s", kv->key);

			warn(r->w, key,
			     "every target host has it, but it is not a valid "
			     "Kubernetes label: not in the nodeSelector");
			free(key);
			continue;
		}
		json_object_set_new(sel, kv->key, json_string(kv->value));
	}
	if (!json_object_size(sel))
		warn(r->w, "targets",
		     "the target hosts have no label in common, so no "
		     "nodeSelector says where pods run: label the hosts and "
		     "the nodes alike (e.g. pool: api)");
	return sel;
}

/* The Secret as files, one per name, where the agent puts them on a VM:
 * /run/secrets/<NAME>. */
static json_t *secret_volume(const struct rctx *r)
{
	const struct ml_playbook *pb = r->pb;
	char *sn = ml_xasprintf("%s" ML_RENDER_SECRET_SUFFIX, pb->app);
	json_t *items = json_array(), *v;
	size_t i;

	for (i = 0; i < pb->secrets.n; i++)
		json_array_append_new(items, json_pack("{s:s,s:s}", "key",
						       pb->secrets.v[i], "path",
						       pb->secrets.v[i]));
	v = json_pack("{s:s,s:{s:s,s:o}}", "name", "secrets", "secret",
		      "secretName", sn, "items", items);
	free(sn);
	return v;
}

static json_t *pod_template(struct rctx *r)
{
	const struct ml_playbook *pb = r->pb;
	json_t *meta, *spec, *sel, *vols, *annot;

	meta = json_pack("{s:o}", "labels", labels(r));
	annot = json_object();
	if (pb->env.n)
		json_object_set_new(annot, ANNOT_ENV, env_hash(pb));
	if (pb->metrics.path) {
		/* the convention most Prometheus set-ups scrape pods by */
		json_object_set_new(annot, "prometheus.io/scrape",
				    json_string("true"));
		json_object_set_new(annot, "prometheus.io/port",
				    json_sprintf("%d", pb->port));
		json_object_set_new(annot, "prometheus.io/path",
				    json_string(pb->metrics.path));
	}
	if (json_object_size(annot))
		json_object_set(meta, "annotations", annot);
	json_decref(annot);
	spec = json_pack(
		"{s:b,s:b,s:I,s:{s:b,s:{s:s}}}", "automountServiceAccountToken",
		0, "enableServiceLinks", 0, "terminationGracePeriodSeconds",
		(json_int_t)((pb->rollout.drain_timeout_ms + 999) / 1000),
		"securityContext", "runAsNonRoot", 1, "seccompProfile", "type",
		"RuntimeDefault");
	/* an init that reaps zombies: the pause container, as PID 1 */
	if (pb->security.init == 1)
		json_object_set_new(spec, "shareProcessNamespace", json_true());
	sel = node_selector(r);
	if (json_object_size(sel))
		json_object_set(spec, "nodeSelector", sel);
	json_decref(sel);
	if (pb->resources.gpus)
		json_object_set_new(spec, "tolerations",
				    json_pack("[{s:s,s:s,s:s}]", "key",
					      GPU_RESOURCE, "operator",
					      "Exists", "effect",
					      "NoSchedule"));
	/* the VMs spread replicas over hosts; so do nodes, when they can */
	json_object_set_new(spec, "topologySpreadConstraints",
			    json_pack("[{s:i,s:s,s:s,s:{s:o}}]", "maxSkew", 1,
				      "topologyKey", "kubernetes.io/hostname",
				      "whenUnsatisfiable", "ScheduleAnyway",
				      "labelSelector", "matchLabels",
				      selector_labels(r)));
	json_object_set_new(spec, "containers", json_pack("[o]", container(r)));
	vols = json_array();
	if (r->read_only)
		json_array_append_new(vols, json_pack("{s:s,s:{}}", "name",
						      "tmp", "emptyDir"));
	if (pb->secrets.n && !pb->security.secrets_env)
		json_array_append_new(vols, secret_volume(r));
	if (json_array_size(vols))
		json_object_set(spec, "volumes", vols);
	json_decref(vols);
	return json_pack("{s:o,s:o}", "metadata", meta, "spec", spec);
}

/* rollout.batch as a number of pods or a share: "25%", or hosts × replicas
 * per host. */
static json_t *batch(const struct rctx *r)
{
	const struct ml_rollout_spec *ro = &r->pb->rollout;

	if (ro->batch_percent)
		return json_sprintf("%d%%", ro->batch_percent);
	return json_integer((json_int_t)ro->batch_count * r->pb->replicas);
}

static json_t *workload(struct rctx *r)
{
	const struct ml_playbook *pb = r->pb;
	bool rollout = r->o->rollouts &&
		       (pb->rollout.canary_n || pb->rollout.nsteps);
	int64_t startup_s = r->period_s * r->startup_failures;
	json_t *obj, *spec, *strategy, *steps, *annot;
	char *cause;
	size_t i;

	obj = object(r, rollout ? "argoproj.io/v1alpha1" : "apps/v1",
		     rollout ? "Rollout" : "Deployment", pb->app);
	cause = r->cfg->commit
			? ml_xasprintf("mlctl render k8s at commit %.12s",
				       r->cfg->commit)
			: ml_xstrdup("mlctl render k8s of the working tree");
	annot = json_pack("{s:s}", "kubernetes.io/change-cause", cause);
	free(cause);
	json_object_set_new(json_object_get(obj, "metadata"), "annotations",
			    annot);
	spec = json_pack(
		"{s:I,s:i,s:I,s:{s:o}}", "replicas",
		(json_int_t)(r->app_hosts * (size_t)pb->replicas),
		"revisionHistoryLimit",
		pb->prune.retain > 0 ? pb->prune.retain : REVISION_HISTORY,
		"progressDeadlineSeconds",
		(json_int_t)(startup_s + 300 > 600 ? startup_s + 300 : 600),
		"selector", "matchLabels", selector_labels(r));
	if (rollout) {
		steps = json_array();
		for (i = 0; i < pb->rollout.canary_n; i++) {
			json_array_append_new(
				steps,
				json_pack("{s:i}", "setWeight",
					  pb->rollout.canary_percent[i]));
			json_array_append_new(steps,
					      json_pack("{s:{}}", "pause"));
		}
		/* weighted steps: their weight, then their time (manual:
		 * until promoted) */
		for (i = 0; i < pb->rollout.nsteps; i++) {
			const struct ml_canary_step *st = &pb->rollout.steps[i];
			char dur[32];

			snprintf(dur, sizeof(dur), "%llds",
				 (long long)(st->for_ms / 1000));
			json_array_append_new(steps,
					      json_pack("{s:i}", "setWeight",
							st->weight_pct));
			json_array_append_new(
				steps, st->manual
					       ? json_pack("{s:{}}", "pause")
					       : json_pack("{s:{s:s}}", "pause",
							   "duration", dur));
		}
		strategy = json_pack("{s:{s:o,s:i,s:o}}", "canary", "maxSurge",
				     batch(r), "maxUnavailable", 0, "steps",
				     steps);
	} else {
		strategy = json_pack("{s:s,s:{s:o,s:i}}", "type",
				     "RollingUpdate", "rollingUpdate",
				     "maxSurge", batch(r), "maxUnavailable", 0);
	}
	json_object_set_new(spec, "strategy", strategy);
	json_object_set_new(spec, "template", pod_template(r));
	json_object_set_new(obj, "spec", spec);
	return obj;
}

static json_t *service(struct rctx *r)
{
	const struct ml_lb_spec *lb = &r->pb->lb;
	int port = lb->hosts.n && !lb->tls_cert ? lb->listen_port : r->pb->port;
	json_t *obj = object(r, "v1", "Service", r->pb->app);

	json_object_set_new(obj, "spec",
			    json_pack("{s:s,s:o,s:[{s:s,s:i,s:s,s:s}]}", "type",
				      "ClusterIP", "selector",
				      selector_labels(r), "ports", "name",
				      "http", "port", port, "targetPort",
				      "http", "protocol", "TCP"));
	return obj;
}

static json_t *pdb(struct rctx *r)
{
	json_t *obj = object(r, "policy/v1", "PodDisruptionBudget", r->pb->app);

	/* a drain may take what a rollout batch may: the playbook's word on
	 * how much of the app can be away at once */
	json_object_set_new(obj, "spec",
			    json_pack("{s:o,s:{s:o}}", "maxUnavailable",
				      batch(r), "selector", "matchLabels",
				      selector_labels(r)));
	return obj;
}

static json_t *configmap(struct rctx *r)
{
	char *name = ml_xasprintf("%s" ML_RENDER_ENV_SUFFIX, r->pb->app);
	json_t *obj = object(r, "v1", "ConfigMap", name);
	json_t *data = json_object();
	size_t i;

	for (i = 0; i < r->pb->env.n; i++)
		json_object_set_new(data, r->pb->env.v[i].key,
				    json_string(r->pb->env.v[i].value));
	json_object_set_new(obj, "data", data);
	free(name);
	return obj;
}

/* Warnings for what the objects above cannot say. */
static void warn_unexpressed(struct rctx *r)
{
	const struct ml_playbook *pb = r->pb;

	if ((pb->rollout.canary_n || pb->rollout.nsteps) && !r->o->rollouts)
		warn(r->w, "rollout.canary",
		     "a Deployment has no canary steps: rendered as a plain "
		     "rolling update; pass --rollouts for an Argo Rollouts "
		     "canary");
	else if (pb->rollout.canary_n)
		warn(r->w, "rollout.canary",
		     "each step waits for a manual promotion (kubectl argo "
		     "rollouts promote): mlctl's judgement by error rate and "
		     "latency is not rendered");
	else if (pb->rollout.nsteps)
		warn(r->w, "rollout.analysis",
		     "weighted steps are rendered with their pauses; "
		     "rollout.analysis and rollout.verify need an Argo "
		     "AnalysisTemplate and are not rendered");
	if (pb->rollout.failure_budget)
		warn(r->w, "rollout.failure_budget",
		     "no Kubernetes equivalent: a rollout stops at the first "
		     "pod that does not become ready");
	if (pb->rollout.auto_rollback)
		warn(r->w, "rollout.auto_rollback",
		     "Kubernetes does not roll back by itself: a stuck "
		     "rollout is marked failed after progressDeadlineSeconds; "
		     "`kubectl rollout undo` restores the previous revision");
	if (pb->rollout.standby)
		warn(r->w, "rollout.standby",
		     "Kubernetes keeps no paused pod of the previous "
		     "revision: `kubectl rollout undo` starts its pods anew "
		     "(Argo Rollouts' scaleDownDelaySeconds keeps them "
		     "running for a while)");
	if (pb->lb.hosts.n)
		warn(r->w, "load_balancer",
		     "HAProxy is replaced by a ClusterIP Service: expose it "
		     "with an Ingress, a Gateway or a LoadBalancer Service");
	if (pb->lb.balance != ML_BALANCE_ROUNDROBIN)
		warn(r->w, "load_balancer.balance",
		     "a Service cannot choose its balancing: kube-proxy "
		     "picks endpoints itself");
	if (pb->lb.tls_cert)
		warn(r->w, "load_balancer.tls",
		     "TLS ends at HAProxy on the VMs; in Kubernetes end it at "
		     "an Ingress or Gateway (the Service serves plain HTTP "
		     "on port %d)",
		     pb->port);
	if (pb->security.pids_limit)
		warn(r->w, "security.pids_limit",
		     "a pod's PID limit is the kubelet's (podPidsLimit), not "
		     "the manifest's: not rendered");
	if (strcmp(pb->security.restart, "unless-stopped") &&
	    strcmp(pb->security.restart, "always"))
		warn(r->w, "security.restart",
		     "'%s' has no Deployment form: its pods are always "
		     "restarted",
		     pb->security.restart);
	if (!pb->security.open_slots)
		warn(r->w, "security.open_slots",
		     "on the VMs only the balancer reaches the containers; "
		     "in a cluster every pod can, unless a NetworkPolicy "
		     "admits only your ingress (not rendered)");
	if (pb->prune.disk_budget)
		warn(r->w, "prune.disk_budget",
		     "the kubelet's image garbage collection decides what "
		     "images a node keeps: not rendered");
	if (pb->logs.max_size_bytes != (int64_t)10 << 20 ||
	    pb->logs.max_files != 3)
		warn(r->w, "logs",
		     "log rotation is the kubelet's (containerLogMaxSize, "
		     "containerLogMaxFiles): not rendered");
	if (pb->replicas > 1)
		warn(r->w, "replicas",
		     "%d per host cannot be pinned to nodes: %zu pods in "
		     "all, spread over nodes where possible",
		     pb->replicas, r->app_hosts * (size_t)pb->replicas);
}

int ml_render_k8s(json_t **out, struct ml_render_warns *w,
		  const struct ml_config *cfg, const struct ml_render_opts *o)
{
	struct rctx r = {cfg, cfg->playbook, o, w, 0, NULL, NULL, 0, 0, 0};
	const struct ml_health_spec *h = &cfg->playbook->health;
	json_t *docs;
	size_t i;
	int rc;

	*out = NULL;
	rc = check_opts(o);
	if (rc < 0)
		return rc;
	for (i = 0; i < cfg->ntargets; i++)
		r.app_hosts += cfg->targets[i].is_app;
	r.read_only =
		o->read_only_root || cfg->playbook->security.read_only_root;
	r.period_s = seconds(&r, "health.interval", h->interval_ms);
	r.timeout_s = seconds(&r, "health.timeout", h->timeout_ms);
	/* whole periods covering the start period, then the failures a
	 * started container is allowed */
	r.startup_failures = (h->start_period_ms + r.period_s * 1000 - 1) /
				     (r.period_s * 1000) +
			     h->unhealthy_threshold;
	image_ref(&r);

	docs = json_array();
	if (cfg->playbook->env.n)
		json_array_append_new(docs, configmap(&r));
	json_array_append_new(docs, workload(&r));
	json_array_append_new(docs, service(&r));
	json_array_append_new(docs, pdb(&r));
	warn_unexpressed(&r);
	*out = docs;
	free(r.image);
	free(r.version);
	return 0;
}

json_t *ml_render_k8s_secret(const struct ml_config *cfg,
			     const struct ml_render_opts *o,
			     const json_t *values)
{
	struct rctx r = {cfg, cfg->playbook, o, NULL, 0, NULL, NULL, 0, 0, 0};
	char *name =
		ml_xasprintf("%s" ML_RENDER_SECRET_SUFFIX, cfg->playbook->app);
	json_t *obj, *data = json_object(), *v;
	size_t i;

	/* labels carry the version only when the image was worked out */
	obj = object(&r, "v1", "Secret", name);
	for (i = 0; i < cfg->playbook->secrets.n; i++) {
		v = json_object_get(values, cfg->playbook->secrets.v[i]);
		if (json_is_string(v))
			json_object_set(data, cfg->playbook->secrets.v[i], v);
	}
	json_object_set_new(obj, "type", json_string("Opaque"));
	json_object_set_new(obj, "stringData", data);
	free(name);
	return obj;
}
