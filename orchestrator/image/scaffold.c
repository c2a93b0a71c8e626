/*
 * The files `mlctl init` writes (see scaffold.h).
 *
 * The Dockerfile's layers, oldest first, are ordered by how often they
 * change, so that a commit ships only what it changed:
 *
 *   base (pinned)  the OS and Python; the ML stack when it is mlctl's
 *   system         the app user (and apt packages when asked for)
 *   deps           Python packages the base lacks, installed in a stage
 *                  of their own and copied in, so neither pip's cache nor
 *                  the wheelhouse lands in the image. pip installs the
 *                  pinned list and nothing else (--no-deps): a complete
 *                  pinned list is what makes two builds agree, and it
 *                  keeps pip from re-resolving what Debian installed
 *                  (Debian 12's fastapi asks for an older starlette than
 *                  the one Debian ships)
 *   weights        model/ copied --chown to the app user
 *   code           everything else, copied from a stage that dropped the
 *                  weights and the wheelhouse, so a weights change leaves
 *                  the code layer alone (Docker's build cache compares
 *                  file contents, not times)
 *
 * No ARG and no ENV carries anything from the builder's machine; secrets
 * are given at run time. tini is PID 1 and passes SIGTERM to uvicorn,
 * which stops taking connections and lets requests in flight finish.
 * Nothing names the commit in the image: the container carries it
 * (mlctl.commit), so a commit that changes no file the image copies
 * leaves the image id, and the running containers, as they were.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "orchestrator/image/scaffold.h"

#include <ctype.h>

bool ml_scaffold_valid_app(const char *s)
{
	size_t i;

	if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (i = 1; s[i]; i++)
		if (i >= 63 || !((s[i] >= 'a' && s[i] <= 'z') ||
				 (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* Text safe in a Dockerfile, YAML and a shell-free argv: no quotes,
 * spaces, backslashes, '$' or control bytes. */
static bool plain(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++)
		if (i >= 256 || (unsigned char)s[i] <= ' ' ||
		    (unsigned char)s[i] >= 0x7f || strchr("\"'\\$`#", s[i]))
			return false;
	return true;
}

/* A relative path inside the repository, without "..". */
static bool rel_path(const char *s)
{
	return plain(s) && s[0] != '/' && s[0] != '-' && !strstr(s, "..");
}

void ml_scaffold_names_free(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void ml_req_issues_free(struct ml_req_issue *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

int ml_scaffold_requirements(char ***names, struct ml_req_issue **issues,
			     size_t *nissues, const char *text, size_t n)
{
	size_t cap = 16, nn = 0, ni = 0, line = 0, len, k;
	char **v = ml_xcalloc(cap + 1, sizeof(*v));
	struct ml_req_issue *is = NULL;
	const char *p = text, *end = text + n, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		line++;
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		if (len && *p != '#' && *p != '-') {
			k = 0;
			while (k < len && (isalnum((unsigned char)p[k]) ||
					   strchr("-_.", p[k])))
				k++;
			if (k) {
				if (nn == cap) {
					cap *= 2;
					v = ml_xrealloc(v, (cap + 1) *
								   sizeof(*v));
				}
				v[nn++] = ml_xstrndup(p, k);
				v[nn] = NULL;
				if (!memmem(p, len, "==", 2)) {
					is = ml_xrealloc(is, (ni + 1) *
								     sizeof(*is));
					is[ni].line = line;
					is[ni].name = ml_xstrndup(p, k);
					ni++;
				}
			}
		}
		p = nl ? nl + 1 : end;
	}
	*names = v;
	*issues = is;
	*nissues = ni;
	return 0;
}

static int check(const struct ml_scaffold *s)
{
	size_t i;

	if (!ml_scaffold_valid_app(s->app))
		return ml_err_set(ML_EINVALID,
				  "'%.64s' cannot be an app name: use "
				  "[a-z0-9][a-z0-9-]*, at most 63 bytes",
				  s->app ? s->app : "");
	if (s->port < 1 || s->port > 65535)
		return ml_err_set(ML_EINVALID, "port %d is not in 1..65535",
				  s->port);
	if (!plain(s->base) || !plain(s->python) || !plain(s->module) ||
	    !plain(s->group))
		return ml_err_set(ML_EINVALID,
				  "the base image, Python version, module "
				  "and group must be plain text (no spaces "
				  "or quotes)");
	if ((s->requirements && !rel_path(s->requirements)) ||
	    (s->wheelhouse && !rel_path(s->wheelhouse)) ||
	    (s->model_dir && !rel_path(s->model_dir)))
		return ml_err_set(ML_EINVALID,
				  "the requirements file, wheelhouse and "
				  "model folder must be relative paths "
				  "inside the repository, without spaces");
	for (i = 0; s->system_packages && s->system_packages[i]; i++)
		if (!plain(s->system_packages[i]) ||
		    s->system_packages[i][0] == '-')
			return ml_err_set(ML_EINVALID,
					  "'%.64s' is not a package name",
					  s->system_packages[i]);
	return 0;
}

/* "model/" -> "model": folder names without a trailing slash. */
static void add_dir(struct ml_buf *b, const char *d)
{
	size_t n = strlen(d);

	while (n > 1 && d[n - 1] == '/')
		n--;
	(void)ml_buf_add(b, d, n);
}

int ml_scaffold_dockerfile(struct ml_buf *b, const struct ml_scaffold *s)
{
	size_t i;
	bool apt = s->system_packages && s->system_packages[0];
	int rc = check(s);

	if (rc < 0)
		return rc;
	ml_buf_addf(b,
		    "# Written by `mlctl init` for %s. Layers go from what "
		    "changes least to\n"
		    "# what changes most, so a code-only commit ships only "
		    "the code layer and\n"
		    "# a retrained model only the weights layer (check with "
		    "`mlctl image check`).\n\n",
		    s->app);
	if (s->base_is_mlctl)
		ml_buf_addf(b,
			    "# Debian 12 with Python %s and the ML stack from "
			    "Debian packages, built by\n"
			    "# `mlctl image base` without a registry; the tag "
			    "is a hash of its packages.\n",
			    s->python);
	else
		ml_buf_addf(b, "# Python %s; pin the base by digest "
			       "(name@sha256:...) for builds that repeat.\n",
			    s->python);

	/* Python dependencies: their own stage */
	ml_buf_addf(b, "FROM %s AS deps\n", s->base);
	if (s->requirements) {
		ml_buf_addf(b, "COPY %s /tmp/deps/requirements.txt\n",
			    s->requirements);
		if (s->wheelhouse) {
			ml_buf_addstr(b, "COPY ");
			add_dir(b, s->wheelhouse);
			ml_buf_addstr(b, "/ /tmp/deps/wheels/\n");
		}
		ml_buf_addstr(b,
			      "# exactly the pinned list (--no-deps: list every "
			      "dependency, as pip freeze\n"
			      "# does); a requirement the base satisfies is not "
			      "fetched again\n"
			      "RUN mkdir -p /deps && PIP_BREAK_SYSTEM_PACKAGES=1 "
			      "python3 -m pip install \\\n"
			      "\t--no-cache-dir --disable-pip-version-check "
			      "--no-warn-script-location --no-deps \\\n");
		if (s->wheelhouse)
			ml_buf_addstr(b, "\t--no-index --find-links "
					 "/tmp/deps/wheels \\\n");
		ml_buf_addstr(b, "\t--root /deps -r "
				 "/tmp/deps/requirements.txt \\\n"
				 "\t&& mkdir -p /deps" ML_SCAFFOLD_RECORD_DIR
				 " && cp /tmp/deps/requirements.txt /deps"
				 ML_SCAFFOLD_RECORD_DIR "/\n\n");
	} else {
		ml_buf_addstr(b, "RUN mkdir -p /deps" ML_SCAFFOLD_RECORD_DIR
				 " && : > /deps" ML_SCAFFOLD_RECORD_DIR
				 "/requirements.txt \\\n"
				 "\t&& find /deps -exec touch -h -d @1700000000 "
				 "{} +\n\n");
	}

	/* the code, without the weights and the wheelhouse */
	ml_buf_addf(b,
		    "FROM %s AS code\nCOPY . /src/app/\nRUN rm -rf "
		    "/src/app/Dockerfile",
		    s->base);
	if (s->model_dir) {
		ml_buf_addstr(b, " /src/app/");
		add_dir(b, s->model_dir);
	}
	if (s->wheelhouse) {
		ml_buf_addstr(b, " /src/app/");
		add_dir(b, s->wheelhouse);
	}
	if (s->model_dir) {
		/* the weights live in /opt/model; the app finds them where
		 * they were in the repository */
		ml_buf_addstr(b, " \\\n\t&& ln -s /opt/model /src/app/");
		add_dir(b, s->model_dir);
	}
	/*
	 * Docker rebuilds every layer above a changed one, so a weights
	 * change rebuilds the code layer: with the times fixed its tar is
	 * the same bytes, the same digest, and is not sent again
	 */
	ml_buf_addstr(b, " \\\n\t&& find /src -exec touch -h -d @1700000000 "
			 "{} +\n\n");

	ml_buf_addf(b, "FROM %s\n", s->base);
	ml_buf_addstr(b, "# system packages and the app user: one layer\n"
			 "RUN ");
	if (apt || !s->base_is_mlctl) {
		ml_buf_addstr(b, "apt-get update && apt-get install -y "
				 "--no-install-recommends");
		if (!s->base_is_mlctl)
			ml_buf_addstr(b, " tini");
		for (i = 0; apt && s->system_packages[i]; i++)
			ml_buf_addf(b, " %s", s->system_packages[i]);
		ml_buf_addstr(b, " \\\n\t&& rm -rf /var/lib/apt/lists/* "
				 "\\\n\t&& ");
	}
	ml_buf_addf(b,
		    "useradd --system --uid %d --user-group --home-dir /app "
		    "--no-create-home app\n",
		    ML_SCAFFOLD_UID);
	/*
	 * The deps layer is never empty: it holds the requirements it was
	 * built from. Docker's classic builder cannot commit a COPY that
	 * follows an empty one ("failed to get layer ...: layer does not
	 * exist", moby#40591), and a base that already has every
	 * requirement makes pip install nothing.
	 */
	ml_buf_addstr(b, "COPY --from=deps /deps/ /\n");
	if (s->model_dir) {
		ml_buf_addf(b, "# the weights, before the code\nCOPY "
			       "--chown=%d:%d ",
			    ML_SCAFFOLD_UID, ML_SCAFFOLD_UID);
		add_dir(b, s->model_dir);
		ml_buf_addstr(b, "/ /opt/model/\n");
	}
	/*
	 * /app is made by this COPY, from /src with its times fixed: no
	 * directory of an earlier layer is touched, so the layer's bytes
	 * depend on the code alone
	 */
	ml_buf_addf(b, "# the code, last\nCOPY --from=code --chown=%d:%d /src/ "
		       "/\nWORKDIR /app\n",
		    ML_SCAFFOLD_UID, ML_SCAFFOLD_UID);
	ml_buf_addf(b, "USER %d:%d\n", ML_SCAFFOLD_UID, ML_SCAFFOLD_UID);
	ml_buf_addf(b, "EXPOSE %d\n", s->port);
	ml_buf_addf(b, "LABEL org.opencontainers.image.title=%s\n", s->app);
	ml_buf_addstr(b, "# tini is PID 1: SIGTERM reaches uvicorn, which "
			 "finishes requests in flight\n"
			 "ENTRYPOINT [\"/usr/bin/tini\", \"--\"]\n");
	ml_buf_addf(b,
		    "CMD [\"python3\", \"-m\", \"uvicorn\", \"%s\", "
		    "\"--host\", \"0.0.0.0\", \"--port\", \"%d\", "
		    "\"--no-access-log\"]\n",
		    s->module, s->port);
	return b->len >= b->max ? ml_err_set(ML_ETOOBIG, "Dockerfile too long")
				: 0;
}

int ml_scaffold_dockerignore(struct ml_buf *b, const struct ml_scaffold *s)
{
	int rc = check(s);

	if (rc < 0)
		return rc;
	ml_buf_addstr(b, "# Written by `mlctl init`: what never goes into "
			 "the image.\n"
			 ".git\n.mlctl\n.env\n*.env\n**/__pycache__\n**/*.pyc\n"
			 ".venv\nvenv\n.pytest_cache\n"
			 "# the desired state is read from git, not from the "
			 "image: a change to it\n"
			 "# must not change the code layer\n"
			 "mlctl.yaml\ninventory.yaml\n.dockerignore\n");
	return 0;
}

int ml_scaffold_playbook(struct ml_buf *b, const struct ml_scaffold *s)
{
	int rc = check(s);

	if (rc < 0)
		return rc;
	ml_buf_addf(b,
		    "# The desired state of %s, written by `mlctl init`. "
		    "mlctl reads it from git\n"
		    "# at the commit it deploys; `mlctl validate` checks it. "
		    "Every key is\n"
		    "# explained in mlctl's playbooks/ folder.\n"
		    "app: %s\n"
		    "image:\n"
		    "  build:\n"
		    "    context: .\n"
		    "    dockerfile: Dockerfile\n"
		    "port: %d\n"
		    "health:\n"
		    "  path: /healthz\n"
		    "  interval: 2s\n"
		    "  timeout: 1s\n"
		    "  start_period: 60s   # time allowed to load the model\n"
		    "  expect_status: [200]\n"
		    "replicas: 1\n",
		    s->app, s->app, s->port);
	if (s->gpu)
		ml_buf_addstr(b, "resources:\n  gpus: all\n");
	ml_buf_addf(b,
		    "targets: [%s]\n"
		    "rollout:\n"
		    "  batch: 1\n"
		    "  failure_budget: 0\n"
		    "  auto_rollback: true\n"
		    "  drain_timeout: 30s\n"
		    "load_balancer:\n"
		    "  hosts: lb\n"
		    "  listen: 80\n",
		    s->group);
	return 0;
}

int ml_scaffold_inventory(struct ml_buf *b, const struct ml_scaffold *s)
{
	int rc = check(s);

	if (rc < 0)
		return rc;
	ml_buf_addf(b,
		    "# Written by `mlctl init`: replace the addresses with "
		    "your VMs'. See\n"
		    "# mlctl's inventory/ folder for SSH settings, groups and "
		    "labels.\n"
		    "ssh:\n"
		    "  user: root\n"
		    "hosts:\n"
		    "  app1:\n"
		    "    address: 192.0.2.11\n"
		    "%s"
		    "  lb1:\n"
		    "    address: 192.0.2.10\n"
		    "groups:\n"
		    "  %s:\n"
		    "    hosts: [app1]\n"
		    "  lb:\n"
		    "    hosts: [lb1]\n",
		    s->gpu ? "    labels:\n      gpu: true\n" : "", s->group);
	return 0;
}
