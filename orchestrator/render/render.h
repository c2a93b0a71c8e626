#ifndef ML_RENDER_H
#define ML_RENDER_H

/*
 * The desired state rendered for other platforms. Today one target:
 * Kubernetes. ml_render_k8s is a pure function of the resolved config and
 * a few options (no I/O, no clock, no environment), so its output is a
 * value that tests pin byte for byte. The manifests are built as jansson
 * trees (objects keep their insertion order, which is the order written),
 * checked by ml_render_check for what a schema validator cannot see, and
 * written as YAML by ml_render_yaml, our own emitter: every string is
 * double-quoted and escaped, so no value can be read back as a number, a
 * boolean or null by a YAML 1.1 or 1.2 reader.
 *
 * Whatever the playbook says that Kubernetes objects cannot express is a
 * warning naming the playbook key, never dropped in silence.
 */

#include <jansson.h>

struct ml_config;

struct ml_render_opts {
	const char *namespace;	    /* metadata.namespace, NULL: none */
	const char *image_registry; /* "registry.example.com/team", NULL:
				     * image names as the playbook has them */
	const char *image_digest;   /* "sha256:<64 hex>": the manifest
				     * digest in that registry, NULL: by tag */
	bool rollouts;		    /* canary as an Argo Rollouts Rollout */
	bool read_only_root;	    /* readOnlyRootFilesystem, with /tmp */
};

struct ml_render_warn {
	char *key; /* the playbook or inventory key, e.g. "rollout.canary" */
	char *msg; /* lowercase, no period */
};

struct ml_render_warns {
	struct ml_render_warn *v;
	size_t n, cap;
};

void ml_render_warns_release(struct ml_render_warns *w);
/* Print each as "mlctl: warning: 'key': msg" on stream. */
void ml_render_warns_print(const struct ml_render_warns *w, FILE *stream);

/* Names of the objects for app: "<app>-env" and "<app>-secrets". */
#define ML_RENDER_ENV_SUFFIX "-env"
#define ML_RENDER_SECRET_SUFFIX "-secrets"

/*
 * The Kubernetes objects for cfg, in apply order, as a new JSON array in
 * *out: a ConfigMap of the env (when there is any), a Deployment (or an
 * argoproj.io Rollout with o->rollouts and canary steps), a Service and a
 * PodDisruptionBudget. Secrets are referenced by name only: the Secret
 * itself is ml_render_k8s_secret's. Warnings are appended to w.
 * ML_EINVALID when an option is malformed (a digest that is not
 * "sha256:<64 hex>", a namespace or registry with characters a name
 * cannot hold); *out is then NULL.
 */
int ml_render_k8s(json_t **out, struct ml_render_warns *w,
		  const struct ml_config *cfg, const struct ml_render_opts *o);

/*
 * The image of cfg as two names: *local, its name in the local Docker
 * ("mlctl/<app>:<commit>" for a built image), and *repo, the repository
 * the manifests name under o->image_registry, without tag or digest. Both
 * the caller's. For finding the digest Docker recorded when the image was
 * pushed (its RepoDigests). ML_EINVALID for malformed options.
 */
int ml_render_k8s_image(char **local, char **repo, const struct ml_config *cfg,
			const struct ml_render_opts *o);

/*
 * The Secret "<app>-secrets" holding values ({"NAME": "value"} for every
 * secret the playbook names) as stringData. New reference. Only for the
 * 0600 file `render k8s --secrets-file` writes.
 */
json_t *ml_render_k8s_secret(const struct ml_config *cfg,
			     const struct ml_render_opts *o,
			     const json_t *values);

/*
 * mlctl's own checks of rendered objects, for what the API schemas do not
 * say: names are DNS-1123 subdomains (Services: DNS-1035 labels) and
 * namespaces DNS-1123 labels; label keys and values are valid; a
 * workload's selector is not empty and each of its labels is on the pod
 * template with the same value, and so are the labels of every Service
 * and PodDisruptionBudget selector; every container has an image and a
 * DNS-1123 label as name; nvidia.com/gpu appears in limits only; a
 * Service's named targetPort is a port of the workload's containers. Each
 * problem found is appended to problems (a JSON array) as one message;
 * returns how many were found.
 */
size_t ml_render_check(json_t *problems, const json_t *docs);

/*
 * Append doc (an object) to out as one YAML document: "---", then block
 * style, two spaces of indent, keys in insertion order, strings always in
 * double quotes with escapes for control and non-printable characters,
 * integers and booleans plain, empty containers as {} and []. The bytes
 * depend on doc only. ML_EINVALID for a string that is not valid UTF-8 or
 * a number that is not an integer; ML_ETOOBIG when out's limit is passed.
 */
int ml_render_yaml(struct ml_buf *out, const json_t *doc);

/*
 * Read yaml (len bytes: one document as ml_render_yaml wrote it) back with
 * libyaml and check that it is doc exactly: every string a quoted scalar
 * with the same bytes, integers and booleans plain, keys in order and
 * plain only where the emitter allows. 0, or ML_EFAIL with a message
 * starting "BUG:" (the emitter is wrong; nothing should be written).
 */
int ml_render_yaml_verify(const char *yaml, size_t len, const json_t *doc);

/* A YAML comment line "# text" for out; control bytes and non-ASCII in text
 * are replaced by '?' so the comment never ends early. */
int ml_render_yaml_comment(struct ml_buf *out, const char *text);

/* ---- Kubernetes name rules, shared by the files of render/ -------------- */

/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
bool ml_k8s_is_dns_label(const char *s);
/* DNS-1035 label: a DNS-1123 label starting with a letter. */
bool ml_k8s_is_dns1035_label(const char *s);
/* DNS-1123 subdomain: dot-separated labels, at most 253. */
bool ml_k8s_is_dns_subdomain(const char *s);
/* Label key: [prefix/]name, prefix a DNS-1123 subdomain, name at most 63
 * of [A-Za-z0-9._-] starting and ending with a letter or digit. */
bool ml_k8s_is_label_key(const char *s);
/* Label value: empty, or a name as in a key. */
bool ml_k8s_is_label_value(const char *s);

#endif
