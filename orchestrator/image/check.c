/*
 * The checks of `mlctl image check` (see check.h).
 *
 * Docker's history lists every instruction, newest first; only some made
 * a layer. With the classic builder (Docker 20.10) RUN, COPY and ADD make
 * one each (COPY and ADD are written "#(nop) COPY ..."), other
 * instructions are "#(nop) ENV ..." and make none; an imported base is an
 * entry with an empty CreatedBy. When the entries that made layers do not
 * add up to RootFS.Layers (another builder), layers are shown without
 * their instruction rather than with a wrong one.
 *
 * Build args that a RUN saw are recorded by the classic builder as a
 * prefix "|N NAME=value ... /bin/sh -c ...": only the names are read, and
 * the values never leave this file.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/fmt.h"
#include "common/log.h"
#include "orchestrator/image/check.h"

#include <strings.h>

#define CREATED_BY_MAX 72 /* bytes of an instruction shown */

static const char *const secret_words[] = {
	"SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY",
	"PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL", "AUTH",
};

bool ml_image_secret_name(const char *name, size_t len)
{
	size_t i, j, w;

	for (i = 0; i < ML_ARRAY_SIZE(secret_words); i++) {
		w = strlen(secret_words[i]);
		for (j = 0; j + w <= len; j++)
			if (!strncasecmp(name + j, secret_words[i], w))
				return true;
	}
	return false;
}

static json_t *escaped(const char *s, size_t max)
{
	struct ml_buf b = ML_BUF_INIT(4 * max + 8);
	size_t n = strlen(s);
	json_t *j;

	(void)ml_escape(&b, s, n > max ? max : n);
	if (n > max)
		(void)ml_buf_addstr(&b, "...");
	j = json_string(ml_buf_str(&b));
	ml_buf_release(&b);
	return j;
}

static void warn(json_t *w, const char *fmt, ...) ML_PRINTF(2, 3);

static void warn(json_t *w, const char *fmt, ...)
{
	struct ml_buf b = ML_BUF_INIT(4096);
	va_list ap;

	va_start(ap, fmt);
	(void)ml_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	json_array_append_new(w, json_string(ml_buf_str(&b)));
	ml_buf_release(&b);
}

/* Did this history entry make a layer? */
static bool makes_layer(const char *by)
{
	const char *nop = strstr(by, "#(nop)");

	if (!nop)
		return true;
	nop += 6;
	while (*nop == ' ')
		nop++;
	return !strncmp(nop, "COPY", 4) || !strncmp(nop, "ADD", 3);
}

/* The instruction, without the "/bin/sh -c #(nop) " noise. */
static const char *short_by(const char *by)
{
	const char *p = strstr(by, "#(nop)");

	if (p) {
		p += 6;
		while (*p == ' ')
			p++;
		return p;
	}
	p = strstr(by, "/bin/sh -c ");
	if (p)
		return p; /* keep "/bin/sh -c": it was a RUN */
	return by;
}

/* Warn about secret-looking names among "|N A=x B=y /bin/sh -c ...". */
static void check_run_args(json_t *w, const char *by)
{
	const char *p = by, *eq, *end;
	char *end_n;
	long n;

	if (*p != '|')
		return;
	n = strtol(p + 1, &end_n, 10);
	p = end_n;
	while (n-- > 0 && *p == ' ') {
		p++;
		eq = strchr(p, '=');
		end = strchr(p, ' ');
		if (!eq || (end && end < eq))
			return;
		if (ml_image_secret_name(p, (size_t)(eq - p)))
			warn(w,
			     "build arg '%.*s' looks like a secret and is "
			     "recorded in the image's history: give secrets "
			     "at run time ('secrets:' in the playbook)",
			     (int)((eq - p) > 64 ? 64 : (eq - p)), p);
		/* skip the value, which may hold spaces only if the
		 * builder quoted it: it does not, so a space ends it */
		p = end ? end : p + strlen(p);
	}
}

static void check_nop_arg(json_t *w, const char *by)
{
	const char *p = short_by(by);
	size_t len;

	if (strncmp(p, "ARG ", 4))
		return;
	p += 4;
	len = strcspn(p, "= ");
	if (ml_image_secret_name(p, len))
		warn(w,
		     "build arg '%.*s' looks like a secret: build args are "
		     "visible in the image's history",
		     (int)(len > 64 ? 64 : len), p);
}

static bool in_array(const json_t *a, const char *s)
{
	const json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return true;
	return false;
}

static const char *init_name(const json_t *cfg)
{
	const json_t *ep = json_object_get(cfg, "Entrypoint");
	const char *first, *base;

	first = json_string_value(json_array_get(ep, 0));
	if (!first)
		first = json_string_value(
			json_array_get(json_object_get(cfg, "Cmd"), 0));
	if (!first)
		return "";
	base = strrchr(first, '/');
	return base ? base + 1 : first;
}

int ml_image_check_run(json_t **out, const struct ml_image_check_in *in)
{
	const json_t *cfg = json_object_get(in->inspect, "Config");
	const json_t *layers = json_object_get(
		json_object_get(in->inspect, "RootFS"), "Layers");
	const json_t *v, *env, *exposed;
	json_t *rep, *w, *ls, *ex;
	const char **by = NULL;
	int64_t *sizes = NULL, total = 0;
	size_t nl, nh, i, k, changed_n = 0, empty_skip;
	const char *user, *init, *key;
	char port_key[32], sz[ML_FMT_MAX];

	*out = NULL;
	if (!json_is_array(layers) || !json_array_size(layers))
		return ml_err_set(ML_EINVALID,
				  "'%s' is not an image with layers", in->ref);
	nl = json_array_size(layers);
	rep = json_object();
	w = json_array();
	ls = json_array();

	/* match history entries that made layers with RootFS.Layers */
	by = ml_xcalloc(nl, sizeof(*by));
	sizes = ml_xcalloc(nl, sizeof(*sizes));
	nh = json_array_size(in->history);
	/*
	 * A COPY that copied nothing (an empty folder) made no layer, and
	 * the history does not say so: when there are more candidates than
	 * layers, the empty ones (Size 0) are the ones to skip
	 */
	k = 0;
	for (i = 0; i < nh; i++) {
		const json_t *h = json_array_get(in->history, i);
		const char *c = json_string_value(json_object_get(h, "CreatedBy"));

		k += makes_layer(c ? c : "");
	}
	empty_skip = k > nl ? k - nl : 0;
	k = 0;
	for (i = nh; i-- > 0;) {
		const json_t *h = json_array_get(in->history, i);
		const char *c = json_string_value(json_object_get(h, "CreatedBy"));

		if (!c)
			c = "";
		if (*c == '|')
			check_run_args(w, c);
		check_nop_arg(w, c);
		if (!makes_layer(c))
			continue;
		if (empty_skip && *c &&
		    json_integer_value(json_object_get(h, "Size")) == 0) {
			empty_skip--;
			continue;
		}
		if (k < nl) {
			by[k] = *c ? short_by(c)
				   : json_string_value(
					     json_object_get(h, "Comment"));
			sizes[k] = json_integer_value(json_object_get(h, "Size"));
		}
		k++;
	}
	if (k != nl) {
		memset(by, 0, nl * sizeof(*by));
		memset(sizes, 0, nl * sizeof(*sizes));
	}

	json_object_set_new(rep, "image", escaped(in->ref, 200));
	json_object_set_new(rep, "id", json_object_get(in->inspect, "Id")
					       ? json_deep_copy(json_object_get(
							 in->inspect, "Id"))
					       : json_null());
	json_object_set_new(rep, "size",
			    json_integer(json_integer_value(
				    json_object_get(in->inspect, "Size"))));
	json_object_set_new(
		rep, "size_human",
		json_string(ml_fmt_bytes(sz, json_integer_value(json_object_get(
						     in->inspect, "Size")))));

	user = json_string_value(json_object_get(cfg, "User"));
	if (!user)
		user = "";
	json_object_set_new(rep, "user", escaped(*user ? user : "root", 64));
	if (!*user || !strcmp(user, "root") || !strcmp(user, "0") ||
	    !strncmp(user, "0:", 2) || !strncmp(user, "root:", 5))
		warn(w, "the image runs as root: add a user and 'USER' "
			"(mlctl init writes one)");

	init = init_name(cfg);
	json_object_set_new(rep, "init", escaped(*init ? init : "none", 64));
	if (strcmp(init, "tini") && strcmp(init, "tini-static") &&
	    strcmp(init, "dumb-init") && strcmp(init, "docker-init"))
		warn(w,
		     "PID 1 is '%s', not an init: it may not pass SIGTERM on "
		     "to the server, so a drain kills requests in flight "
		     "(use tini as the entrypoint)",
		     *init ? init : "none");

	ex = json_array();
	exposed = json_object_get(cfg, "ExposedPorts");
	json_object_foreach((json_t *)exposed, key, v)
		json_array_append_new(ex, escaped(key, 32));
	json_object_set_new(rep, "exposed", ex);
	if (in->port > 0) {
		snprintf(port_key, sizeof(port_key), "%d/tcp", in->port);
		if (!json_object_get(exposed, port_key))
			warn(w,
			     "the playbook's port %d is not exposed by the "
			     "image (EXPOSE %d)",
			     in->port, in->port);
	}

	env = json_object_get(cfg, "Env");
	json_array_foreach(env, i, v)
	{
		const char *e = json_string_value(v);
		size_t len = e ? strcspn(e, "=") : 0;

		if (e && ml_image_secret_name(e, len))
			warn(w,
			     "ENV '%.*s' looks like a secret and is stored in "
			     "the image: pass it at run time ('secrets:' in "
			     "the playbook)",
			     (int)(len > 64 ? 64 : len), e);
	}

	for (i = 0; i < nl; i++) {
		const char *dig = json_string_value(json_array_get(layers, i));
		json_t *l = json_object();
		bool changed;

		total += sizes[i];
		json_object_set_new(l, "digest", json_string(dig ? dig : ""));
		json_object_set_new(l, "size", json_integer(sizes[i]));
		json_object_set_new(l, "created_by",
				    escaped(by[i] ? by[i] : "?",
					    CREATED_BY_MAX));
		if (in->deployed_layers && dig) {
			changed = !in_array(in->deployed_layers, dig);
			json_object_set_new(l, "changed",
					    json_boolean(changed));
			changed_n += changed;
		} else {
			json_object_set_new(l, "changed", json_null());
		}
		json_array_append_new(ls, l);
	}
	/* a large changed layer below the last one: the code is copied
	 * before what it should follow, or the weights changed */
	for (i = 0; in->deployed_layers && i + 1 < nl; i++) {
		json_t *l = json_array_get(ls, i);

		if (json_is_true(json_object_get(l, "changed")) &&
		    sizes[i] >= ML_CHECK_BIG_LAYER)
			warn(w,
			     "layer %zu (%s, '%s') changed since revision "
			     "%lld: every host receives it again. If this "
			     "commit changed only code, copy the code after "
			     "the dependencies and the weights",
			     i + 1, ml_fmt_bytes(sz, sizes[i]),
			     json_string_value(json_object_get(l, "created_by")),
			     (long long)in->deployed_revision);
	}
	for (i = 0; in->state_in_context && in->state_in_context[i]; i++)
		warn(w,
		     "'%s' is in the build context and .dockerignore does "
		     "not leave it out: a COPY of the context puts it in the "
		     "image, so each change to it makes a new image and its "
		     "deploy restarts every container. Add it to "
		     ".dockerignore",
		     in->state_in_context[i]);
	json_object_set_new(rep, "layers", ls);
	json_object_set_new(rep, "layers_changed",
			    in->deployed_layers ? json_integer((json_int_t)changed_n)
						: json_null());
	json_object_set_new(rep, "deployed_revision",
			    in->deployed_revision
				    ? json_integer(in->deployed_revision)
				    : json_null());
	json_object_set_new(rep, "warnings", w);
	(void)total;
	free(by);
	free(sizes);
	*out = rep;
	return 0;
}
