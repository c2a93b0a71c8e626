/*
 * mlctl's own checks of rendered Kubernetes objects (render.h:
 * ml_render_check): the rules an API server enforces beyond the OpenAPI
 * schemas (names, label syntax, a selector the template satisfies), and
 * our own (an image on every container, GPUs in limits only). A schema
 * validator passes a Deployment whose selector matches none of its pods;
 * the API server refuses it, and a Service whose selector matches nothing
 * routes nowhere without any error at all. These catch both before a
 * cluster sees them.
 *
 * Every problem is reported, each as one message naming the object and
 * the field, so a test can say which rule fired.
 */
#include "common/ml.h"
#include "orchestrator/render/render.h"

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool alnum(char c)
{
	return lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool dns_label_n(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (i = 0; i < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool ml_k8s_is_dns_label(const char *s)
{
	return dns_label_n(s, strlen(s));
}

bool ml_k8s_is_dns1035_label(const char *s)
{
	return ml_k8s_is_dns_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

bool ml_k8s_is_dns_subdomain(const char *s)
{
	size_t n = strlen(s);
	const char *p = s, *dot;

	if (n == 0 || n > 253)
		return false;
	for (;;) {
		dot = strchr(p, '.');
		if (!dns_label_n(p, dot ? (size_t)(dot - p) : strlen(p)))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, 1 to 63 characters. */
static bool label_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
		return false;
	for (i = 0; i < n; i++)
		if (!alnum(s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

bool ml_k8s_is_label_key(const char *s)
{
	const char *slash = strchr(s, '/');
	char *prefix;
	bool ok;

	if (!slash)
		return label_name(s, strlen(s));
	prefix = ml_xstrndup(s, (size_t)(slash - s));
	ok = ml_k8s_is_dns_subdomain(prefix) &&
	     label_name(slash + 1, strlen(slash + 1));
	free(prefix);
	return ok;
}

bool ml_k8s_is_label_value(const char *s)
{
	return !*s || label_name(s, strlen(s));
}

/* ---- the checks -------------------------------------------------------- */

struct chk {
	json_t *problems;
	size_t n;
	const char *kind, *name; /* the object being checked */
};

static void problem(struct chk *c, const char *fmt, ...) ML_PRINTF(2, 3);

static void problem(struct chk *c, const char *fmt, ...)
{
	struct ml_buf b = ML_BUF_INIT(0);
	va_list ap;

	ml_buf_addf(&b, "%s '%.80s': ", c->kind, c->name);
	va_start(ap, fmt);
	ml_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	json_array_append_new(c->problems, json_string(ml_buf_str(&b)));
	ml_buf_release(&b);
	c->n++;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void check_labels(struct chk *c, const json_t *labels, const char *where)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)labels, k, v) {
		if (!ml_k8s_is_label_key(k))
			problem(c, "%s: '%.80s' is not a valid label key",
				where, k);
		if (!json_is_string(v) ||
		    !ml_k8s_is_label_value(json_string_value(v)))
			problem(c,
				"%s: the value of '%.80s' is not a valid "
				"label value",
				where, k);
	}
}

/* Each label of sel is on labels with the same value; sel not empty. */
static void check_selects(struct chk *c, const json_t *sel,
			  const json_t *labels, const char *where)
{
	const char *k;
	json_t *v;

	if (!json_object_size(sel)) {
		problem(c, "%s is empty: it would select every pod", where);
		return;
	}
	json_object_foreach((json_t *)sel, k, v) {
		if (!json_equal(v, json_object_get(labels, k)))
			problem(c,
				"%s '%.80s' is not a label of the pod "
				"template with the same value",
				where, k);
	}
}

static void check_metadata(struct chk *c, const json_t *doc)
{
	const json_t *meta = json_object_get(doc, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));

	if (!strcmp(c->kind, "Service") ? !ml_k8s_is_dns1035_label(c->name)
					: !ml_k8s_is_dns_subdomain(c->name))
		problem(c, "metadata.name is not a %s",
			!strcmp(c->kind, "Service") ? "DNS-1035 label"
						    : "DNS-1123 subdomain");
	if (ns && !ml_k8s_is_dns_label(ns))
		problem(c, "metadata.namespace is not a DNS-1123 label");
	check_labels(c, json_object_get(meta, "labels"), "metadata.labels");
}

static void check_resources(struct chk *c, const json_t *res)
{
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(res, "requests"), k, v) {
		if (!strcmp(k, "nvidia.com/gpu"))
			problem(c, "nvidia.com/gpu is in resources.requests: "
				   "GPUs go in limits only");
	}
	json_object_foreach(json_object_get(res, "limits"), k, v) {
		if (!strcmp(k, "nvidia.com/gpu") &&
		    (!json_is_string(v) || !*json_string_value(v)))
			problem(c, "nvidia.com/gpu in resources.limits is "
				   "not a quantity");
	}
}

static void check_workload(struct chk *c, const json_t *doc)
{
	const json_t *spec = json_object_get(doc, "spec");
	const json_t *tmpl = json_object_get(spec, "template");
	const json_t *tlabels =
		json_object_get(json_object_get(tmpl, "metadata"), "labels");
	const json_t *ctrs =
		json_object_get(json_object_get(tmpl, "spec"), "containers");
	const json_t *ct;
	size_t i;

	check_labels(c, tlabels, "spec.template.metadata.labels");
	check_selects(c,
		      json_object_get(json_object_get(spec, "selector"),
				      "matchLabels"),
		      tlabels, "spec.selector.matchLabels");
	if (!json_array_size(ctrs))
		problem(c, "the pod template has no container");
	json_array_foreach(ctrs, i, ct) {
		const char *image = str(ct, "image");

		if (!ml_k8s_is_dns_label(str(ct, "name")))
			problem(c,
				"container %zu: the name is not a DNS-1123 "
				"label",
				i);
		if (!*image || strpbrk(image, " \t\r\n") ||
		    !strncmp(image, "sha256:", 7))
			problem(c,
				"container %zu: no image a registry can "
				"serve",
				i);
		check_resources(c, json_object_get(ct, "resources"));
	}
}

/* The pod template labels of the workload in docs, or NULL. */
static const json_t *template_labels(const json_t *docs, const json_t **ctrs)
{
	const json_t *d, *tmpl;
	size_t i;

	json_array_foreach(docs, i, d) {
		const char *kind = str(d, "kind");

		if (strcmp(kind, "Deployment") && strcmp(kind, "Rollout"))
			continue;
		tmpl = json_object_get(json_object_get(d, "spec"), "template");
		*ctrs = json_object_get(json_object_get(tmpl, "spec"),
					"containers");
		return json_object_get(json_object_get(tmpl, "metadata"),
				       "labels");
	}
	return NULL;
}

static bool has_port_name(const json_t *ctrs, const char *name)
{
	const json_t *ct, *p;
	size_t i, j;

	json_array_foreach(ctrs, i, ct) {
		json_array_foreach(json_object_get(ct, "ports"), j, p) {
			if (!strcmp(str(p, "name"), name))
				return true;
		}
	}
	return false;
}

static void check_service(struct chk *c, const json_t *doc,
			  const json_t *tlabels, const json_t *ctrs)
{
	const json_t *spec = json_object_get(doc, "spec"), *p;
	size_t i;

	if (!tlabels) {
		problem(c, "there is no workload for it to select");
		return;
	}
	check_selects(c, json_object_get(spec, "selector"), tlabels,
		      "spec.selector");
	json_array_foreach(json_object_get(spec, "ports"), i, p) {
		const json_t *tp = json_object_get(p, "targetPort");

		if (json_is_string(tp) &&
		    !has_port_name(ctrs, json_string_value(tp)))
			problem(c,
				"port %zu: targetPort '%.80s' is no "
				"container's port",
				i, json_string_value(tp));
	}
}

size_t ml_render_check(json_t *problems, const json_t *docs)
{
	struct chk c = {problems, 0, NULL, NULL};
	const json_t *ctrs = NULL;
	const json_t *tlabels = template_labels(docs, &ctrs);
	const json_t *d;
	size_t i;

	json_array_foreach(docs, i, d) {
		c.kind = str(d, "kind");
		c.name = str(json_object_get(d, "metadata"), "name");
		check_metadata(&c, d);
		if (!strcmp(c.kind, "Deployment") || !strcmp(c.kind, "Rollout"))
			check_workload(&c, d);
		else if (!strcmp(c.kind, "Service"))
			check_service(&c, d, tlabels, ctrs);
		else if (!strcmp(c.kind, "PodDisruptionBudget"))
			check_selects(
				&c,
				json_object_get(
					json_object_get(
						json_object_get(d, "spec"),
						"selector"),
					"matchLabels"),
				tlabels ? tlabels : json_null(),
				"spec.selector.matchLabels");
	}
	return c.n;
}
