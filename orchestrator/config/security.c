/*
 * The playbook's "security" mapping: how hardened the app's containers
 * are and how they get their secrets. Every key relaxes one default by
 * name, so a playbook that says nothing gets the safe set (see
 * agent/harden.h for what each one does on the VM):
 *
 *	security:
 *	  secrets_as: files        # or env: values in the container's env
 *	  no_new_privileges: true
 *	  cap_add: [NET_BIND_SERVICE]
 *	  pids_limit: 4096         # 0: no limit
 *	  read_only_root: false    # true: read-only / with a tmpfs /tmp
 *	  init: auto               # true, false; auto: unless the image has one
 *	  restart: unless-stopped  # no, on-failure, always
 *	  open_slots: false        # true: slots reachable from any address
 *
 * Errors are collected with file:line:column like the rest of the
 * playbook.
 */
#include "common/ml.h"
#include "common/secure.h"
#include "orchestrator/config/config.h"
#include "orchestrator/config/yaml.h"

#include <ctype.h>
#include <strings.h>

static const char *const keys[] = {
	"secrets_as", "no_new_privileges", "cap_add",	 "pids_limit",
	"read_only_root", "init",	       "restart", "open_slots",
	NULL};
static const char *const restarts[] = {"no", "on-failure", "always",
				       "unless-stopped"};

void ml_security_defaults(struct ml_security_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->no_new_privileges = true;
	s->pids_limit = 4096;
	s->init = -1;
	s->restart = ml_xstrdup("unless-stopped");
}

/* One of words, else a located error with a suggestion. */
static int word(struct ml_cfgctx *c, const struct ml_ynode *n,
		const char *path, const char *const *words, size_t nw,
		const char *list)
{
	const char *sg;
	size_t i;

	if (n->type != ML_YSCALAR) {
		ml_cfg_err(c, n, "'%s' must be %s, got %s", path, list,
			   ml_cfg_kind(n));
		return -1;
	}
	for (i = 0; i < nw; i++)
		if (!strcmp(n->scalar, words[i]))
			return (int)i;
	sg = ml_cfg_suggest(n->scalar, words, nw);
	ml_cfg_err(c, n, "'%s' must be %s, got '%s'%s%s%s", path, list,
		   ml_cfg_q(c, n->scalar), sg ? " (did you mean '" : "",
		   sg ? sg : "", sg ? "'?)" : "");
	return -1;
}

static void parse_caps(struct ml_cfgctx *c, struct ml_security_spec *s,
		       const struct ml_ynode *n)
{
	size_t i;
	char *p;

	ml_cfg_strlist(c, n, "security.cap_add", true, &s->cap_add);
	for (i = 0; i < s->cap_add.n; i++) {
		p = s->cap_add.v[i];
		if (!strncasecmp(p, "CAP_", 4))
			memmove(p, p + 4, strlen(p + 4) + 1);
		for (; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (!ml_cap_valid(s->cap_add.v[i]))
			ml_cfg_err_pos(c, s->cap_add.pos[i],
				       "'security.cap_add': unknown "
				       "capability '%s' (names as in "
				       "capabilities(7), such as "
				       "NET_BIND_SERVICE)",
				       ml_cfg_q(c, s->cap_add.v[i]));
	}
}

void ml_security_parse(struct ml_cfgctx *c, struct ml_security_spec *s,
		       const struct ml_ynode *n)
{
	static const char *const as[] = {"files", "env"};
	const struct ml_ynode *v;
	int64_t pids;
	int i;

	if (ml_cfg_want_map(c, n, "security") < 0)
		return;
	ml_cfg_check_keys(c, n, keys);
	if ((v = ml_ymap_get(n, "secrets_as")) &&
	    (i = word(c, v, "security.secrets_as", as, 2,
		      "files or env")) >= 0)
		s->secrets_env = i == 1;
	if ((v = ml_ymap_get(n, "no_new_privileges")))
		ml_cfg_bool(c, v, "security.no_new_privileges",
			    &s->no_new_privileges);
	if ((v = ml_ymap_get(n, "cap_add")))
		parse_caps(c, s, v);
	if ((v = ml_ymap_get(n, "pids_limit")) &&
	    ml_cfg_int(c, v, "security.pids_limit", 0, 1 << 22, &pids) == 0)
		s->pids_limit = (int)pids;
	if ((v = ml_ymap_get(n, "read_only_root")))
		ml_cfg_bool(c, v, "security.read_only_root",
			    &s->read_only_root);
	if ((v = ml_ymap_get(n, "init"))) {
		bool b;

		if (v->type == ML_YSCALAR && !strcmp(v->scalar, "auto"))
			s->init = -1;
		else if (v->type == ML_YSCALAR &&
			 strcmp(ml_cfg_kind(v), "a boolean"))
			ml_cfg_err(c, v,
				   "'security.init' must be auto, true or "
				   "false, got '%s'",
				   ml_cfg_q(c, v->scalar));
		else if (ml_cfg_bool(c, v, "security.init", &b) == 0)
			s->init = b;
	}
	if ((v = ml_ymap_get(n, "restart")) &&
	    (i = word(c, v, "security.restart", restarts,
		      ML_ARRAY_SIZE(restarts),
		      "no, on-failure, always or unless-stopped")) >= 0) {
		free(s->restart);
		s->restart = ml_xstrdup(restarts[i]);
	}
	if ((v = ml_ymap_get(n, "open_slots")))
		ml_cfg_bool(c, v, "security.open_slots", &s->open_slots);
}

void ml_security_release(struct ml_security_spec *s)
{
	ml_strlist_release(&s->cap_add);
	free(s->restart);
	s->restart = NULL;
}

json_t *ml_security_json(const struct ml_security_spec *s,
			 const struct ml_config *cfg)
{
	json_t *caps = json_array(), *lbs = json_array();
	size_t i;

	for (i = 0; i < s->cap_add.n; i++)
		json_array_append_new(caps, json_string(s->cap_add.v[i]));
	for (i = 0; cfg && i < cfg->ntargets; i++)
		if (cfg->targets[i].is_lb)
			json_array_append_new(
				lbs, json_string(cfg->targets[i].address));
	return json_pack("{s:s,s:b,s:o,s:i,s:b,s:s,s:s,s:b,s:o}", "secrets_as",
			 s->secrets_env ? "env" : "files",
			 "no_new_privileges", s->no_new_privileges, "cap_add",
			 caps, "pids_limit", s->pids_limit, "read_only_root",
			 s->read_only_root, "init",
			 s->init < 0 ? "auto" : s->init ? "yes" : "no",
			 "restart", s->restart ? s->restart : "unless-stopped",
			 "open_slots", s->open_slots, "allow_from", lbs);
}
