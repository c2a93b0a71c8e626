/*
 * mlctl init: the first step for a model API's repository. Writes a
 * Dockerfile, a .dockerignore and a playbook (mlctl.yaml), and an
 * inventory skeleton when there is none, from a few flags (or, on a
 * terminal, a question for the app name), using what it finds: the
 * requirements file, a model/ folder, a wheelhouse/ folder, app.py or
 * main.py. The texts come from orchestrator/image/scaffold.c.
 *
 * The base is mlctl's own (orchestrator/image/base.c, built here when it
 * is not in the local Docker yet) unless --base names another image. An
 * existing file is never replaced without --force; every file written or
 * kept is named. The playbook is parsed with the same code `mlctl
 * validate` runs before it is written.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/docker.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/image/base.h"
#include "orchestrator/image/scaffold.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQ_MAX ((size_t)1 << 20)

static const struct ml_option opt_name = {
	OPT_NAME, "name", 'n', "APP", "the app name (default: the folder's)"
};
static const struct ml_option opt_port = {
	OPT_PORT, "port", 0, "N", "the port the API listens on (default 8000)"
};
static const struct ml_option opt_python = {
	OPT_PYTHON, "python", 0, "X.Y",
	"the Python version (mlctl's base has Debian 12's, 3.11)"
};
static const struct ml_option opt_req = {
	OPT_REQUIREMENTS, "requirements", 'r', "FILE",
	"the requirements file (default: requirements.txt when present)"
};
static const struct ml_option opt_wheels = {
	OPT_WHEELHOUSE, "wheelhouse", 0, "DIR",
	"install Python packages from this folder of wheels, not an index "
	"(default: wheelhouse/ when present)"
};
static const struct ml_option opt_model = {
	OPT_MODEL_DIR, "model", 'm', "DIR",
	"the weights folder, a layer of its own (default: model/ when "
	"present)"
};
static const struct ml_option opt_gpu = {
	OPT_GPU, "gpu", 0, NULL, "the API needs GPUs (resources.gpus: all)"
};
static const struct ml_option opt_base = {
	OPT_BASE, "base", 0, "IMAGE",
	"build FROM this image (a registry's python:3.11-slim@sha256:...) "
	"instead of mlctl's own base"
};
static const struct ml_option opt_module = {
	OPT_APP_MODULE, "module", 0, "MOD:APP",
	"the ASGI app uvicorn serves (default app:app or main:app)"
};
static const struct ml_option opt_packages = {
	OPT_PACKAGES, "system-packages", 0, "A,B",
	"Debian packages to install in the system layer (needs a mirror "
	"at build time)"
};
static const struct ml_option opt_force = {
	OPT_FORCE, "force", 0, NULL, "replace files that exist"
};

static const struct ml_option *const options[] = {
	&opt_name,   &opt_port,	  &opt_python,	 &opt_req,
	&opt_wheels, &opt_model,  &opt_gpu,	 &opt_base,
	&opt_module, &opt_packages, &opt_force, &ml_opt_local_docker,
	NULL,
};

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Write b to path atomically (temp file, rename), mode 0644. */
static int write_file(const char *path, const struct ml_buf *b)
{
	char *tmp = ml_xasprintf("%s.mlctl-init.tmp", path);
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot create '%s'", tmp);
		goto out;
	}
	if (write(fd, b->data, b->len) != (ssize_t)b->len || fsync(fd) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot write '%s'", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rename '%s'", tmp);
		unlink(tmp);
	}
out:
	free(tmp);
	return rc;
}

/* The app name: --name, else asked on a terminal, else the folder's. */
static char *app_name(const struct ml_ctx *ctx)
{
	char cwd[4096], *base, *name, line[128];
	size_t i, k = 0;

	if (ctx->opt[OPT_NAME])
		return ml_xstrdup(ctx->opt[OPT_NAME]);
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "app");
	base = strrchr(cwd, '/');
	base = base && base[1] ? base + 1 : cwd;
	/* lowercase, other characters become '-' */
	name = ml_xcalloc(strlen(base) + 2, 1);
	for (i = 0; base[i] && k < 63; i++) {
		char c = (char)tolower((unsigned char)base[i]);

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			name[k++] = c;
		else if (k && name[k - 1] != '-')
			name[k++] = '-';
	}
	while (k && name[k - 1] == '-')
		name[--k] = '\0';
	if (!k)
		snprintf(name, strlen(base) + 2, "%s", "app");
	if (isatty(STDIN_FILENO) && isatty(STDERR_FILENO)) {
		fprintf(stderr, "app name [%s]: ", name);
		if (fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0]) {
				free(name);
				name = ml_xstrdup(line);
			}
		}
	}
	return name;
}

/* Comma-separated list into a NULL-terminated vector (strings in *buf). */
static const char **split_list(char **buf, const char *s)
{
	const char **v;
	size_t n = 1, k = 0, i;
	char *p;

	*buf = ml_xstrdup(s ? s : "");
	for (i = 0; (*buf)[i]; i++)
		n += (*buf)[i] == ',';
	v = ml_xcalloc(n + 1, sizeof(*v));
	for (p = *buf; p && *p;) {
		char *c = strchr(p, ',');

		if (c)
			*c = '\0';
		if (*p)
			v[k++] = p;
		p = c ? c + 1 : NULL;
	}
	return v;
}

/* Warn about unpinned requirements; say which the base satisfies. */
static int look_at_requirements(const char *path, const char *base_pkgs)
{
	struct ml_buf text = ML_BUF_INIT(REQ_MAX);
	struct ml_req_issue *issues = NULL;
	char **names = NULL;
	size_t n = 0, i;
	int rc;

	rc = ml_buf_read_file(&text, path);
	if (rc < 0)
		goto out;
	rc = ml_scaffold_requirements(&names, &issues, &n, ml_buf_str(&text),
				      text.len);
	if (rc < 0)
		goto out;
	for (i = 0; i < n; i++)
		ml_warn("%s:%zu: '%s' is not pinned (write %s==VERSION): "
			"two builds may install different versions",
			path, issues[i].line, issues[i].name, issues[i].name);
	if (base_pkgs) {
		struct ml_buf sat = ML_BUF_INIT(4096);

		for (i = 0; names[i]; i++) {
			/* Debian names python modules python3-<name>, with
			 * scikit-learn as python3-sklearn */
			const char *deb = !strcmp(names[i], "scikit-learn")
						  ? "sklearn"
						  : names[i];
			char *needle = ml_xasprintf("python3-%s=", deb);
			size_t j;

			for (j = 0; needle[j]; j++)
				needle[j] = (char)tolower(
					(unsigned char)(needle[j] == '_'
								? '-'
								: needle[j]));
			if (strstr(base_pkgs, needle))
				ml_buf_addf(&sat, "%s%s", sat.len ? ", " : "",
					    names[i]);
			free(needle);
		}
		if (sat.len)
			ml_info("satisfied by the base image, not fetched "
				"again when the versions match: %s",
				ml_buf_str(&sat));
		ml_buf_release(&sat);
	}
out:
	ml_scaffold_names_free(names);
	ml_req_issues_free(issues, n);
	ml_buf_release(&text);
	return rc;
}

/* Parse the playbook text the way `mlctl validate` does. */
static int check_playbook(const struct ml_buf *pb)
{
	struct ml_playbook *p = NULL;
	struct ml_diags dg = { 0 };
	int rc;

	rc = ml_playbook_parse(&p, "mlctl.yaml", pb->data, pb->len, &dg);
	if (rc < 0 || dg.n) {
		ml_diags_print(&dg, stderr);
		rc = ml_err_set(ML_EFAIL,
				"mlctl init wrote a playbook that does not "
				"validate (a bug)");
	}
	ml_playbook_free(p);
	ml_diags_release(&dg);
	return rc;
}

static int init_run(struct ml_ctx *ctx)
{
	struct ml_scaffold s = { 0 };
	struct ml_buf df = ML_BUF_INIT(65536), di = ML_BUF_INIT(8192),
		      pb = ML_BUF_INIT(65536), inv = ML_BUF_INIT(8192);
	struct ml_docker *d = NULL;
	struct ml_base_key key = { 0 };
	char *app = NULL, *base = NULL, *pkgbuf = NULL, *module = NULL;
	const char **pkgs = NULL;
	const char *base_pkgs = NULL;
	bool force = ml_ctx_flag(ctx, OPT_FORCE), built;
	long port = 8000;
	char *end;
	struct {
		const char *name;
		struct ml_buf *text;
		bool only_if_absent;
	} files[] = {
		{ "Dockerfile", &df, false },
		{ ".dockerignore", &di, false },
		{ "mlctl.yaml", &pb, false },
		{ "inventory.yaml", &inv, true },
	};
	size_t i;
	int rc = 0;

	if (ctx->argc)
		return ml_err_set(ML_EUSAGE, "init takes no arguments");
	if (ctx->opt[OPT_PORT]) {
		errno = 0;
		port = strtol(ctx->opt[OPT_PORT], &end, 10);
		if (errno || *end || port < 1 || port > 65535)
			return ml_err_set(ML_EUSAGE,
					  "--port '%.32s' is not a port number",
					  ctx->opt[OPT_PORT]);
	}
	app = app_name(ctx);
	s.app = app;
	s.port = (int)port;
	s.group = "web";
	s.gpu = ml_ctx_flag(ctx, OPT_GPU);

	s.requirements = ctx->opt[OPT_REQUIREMENTS];
	if (!s.requirements && exists("requirements.txt"))
		s.requirements = "requirements.txt";
	if (s.requirements && !exists(s.requirements)) {
		rc = ml_err_set(ML_ENOTFOUND, "no requirements file '%s'",
				s.requirements);
		goto out;
	}
	s.wheelhouse = ctx->opt[OPT_WHEELHOUSE];
	if (!s.wheelhouse && is_dir("wheelhouse"))
		s.wheelhouse = "wheelhouse";
	s.model_dir = ctx->opt[OPT_MODEL_DIR];
	if (!s.model_dir && is_dir("model"))
		s.model_dir = "model";
	if (s.model_dir && !is_dir(s.model_dir)) {
		rc = ml_err_set(ML_ENOTFOUND, "no model folder '%s'",
				s.model_dir);
		goto out;
	}
	if (ctx->opt[OPT_APP_MODULE])
		module = ml_xstrdup(ctx->opt[OPT_APP_MODULE]);
	else
		module = ml_xstrdup(exists("main.py") && !exists("app.py")
					    ? "main:app"
					    : "app:app");
	s.module = module;
	if (ctx->opt[OPT_PACKAGES]) {
		pkgs = split_list(&pkgbuf, ctx->opt[OPT_PACKAGES]);
		s.system_packages = pkgs;
	}

	if (ctx->opt[OPT_BASE]) {
		s.base = ctx->opt[OPT_BASE];
		s.python = ctx->opt[OPT_PYTHON] ? ctx->opt[OPT_PYTHON] : "3";
		if (!strchr(s.base, '@'))
			ml_warn("base '%s' is not pinned by digest "
				"(name@sha256:...): a rebuild may get "
				"another image",
				s.base);
	} else {
		struct ml_base_spec spec = { 0 };

		rc = ml_docker_new(&d, ctx->opt[OPT_LOCAL_DOCKER]);
		if (rc == 0)
			rc = ml_base_ensure(&base, &built, d, &spec, false);
		if (rc == 0)
			rc = ml_base_resolve(&key, &spec);
		if (rc < 0)
			goto out;
		if (ctx->opt[OPT_PYTHON] &&
		    strcmp(ctx->opt[OPT_PYTHON], key.python)) {
			rc = ml_err_set(ML_EUSAGE,
					"mlctl's base has Python %s, not "
					"'%.16s': give --base IMAGE for "
					"another version",
					key.python, ctx->opt[OPT_PYTHON]);
			goto out;
		}
		s.base = base;
		s.base_is_mlctl = true;
		s.python = key.python;
		{
			/* what the base holds, for the requirements
			 * report */
			struct ml_buf l = ML_BUF_INIT(65536);

			for (i = 0; i < key.npkgs; i++)
				ml_buf_addf(&l, "%s=%s ", key.pkgs[i].name,
					    key.pkgs[i].version);
			base_pkgs = ml_buf_detach(&l, NULL);
		}
	}
	if (s.requirements) {
		rc = look_at_requirements(s.requirements, base_pkgs);
		if (rc < 0)
			goto out;
	}

	rc = ml_scaffold_dockerfile(&df, &s);
	if (rc == 0)
		rc = ml_scaffold_dockerignore(&di, &s);
	if (rc == 0)
		rc = ml_scaffold_playbook(&pb, &s);
	if (rc == 0)
		rc = ml_scaffold_inventory(&inv, &s);
	if (rc == 0)
		rc = check_playbook(&pb);
	if (rc < 0)
		goto out;

	for (i = 0; i < ML_ARRAY_SIZE(files); i++) {
		if (exists(files[i].name) &&
		    (files[i].only_if_absent || !force)) {
			printf("kept     %s (exists%s)\n", files[i].name,
			       files[i].only_if_absent ? ""
						       : "; --force replaces it");
			continue;
		}
		rc = write_file(files[i].name, files[i].text);
		if (rc < 0)
			goto out;
		printf("wrote    %s\n", files[i].name);
	}
	printf("next: git add -A && git commit, then mlctl validate and "
	       "mlctl deploy\n");
out:
	ml_base_key_release(&key);
	ml_docker_free(d);
	free((char *)base_pkgs);
	free(app);
	free(base);
	free(module);
	free(pkgbuf);
	free(pkgs);
	ml_buf_release(&df);
	ml_buf_release(&di);
	ml_buf_release(&pb);
	ml_buf_release(&inv);
	return rc;
}

const struct ml_cmd ml_cmd_init = {
	.name = "init",
	.summary = "write a Dockerfile, .dockerignore and playbook for a "
		   "Python model API",
	.usage = "[--name APP] [--port N] [--requirements FILE] [--model DIR] "
		 "[--wheelhouse DIR] [--base IMAGE] [--gpu] [--force]",
	.options = options,
	.flags = 0,
	.run = init_run,
};
