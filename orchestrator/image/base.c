/*
 * The standard Python runtime base image (see base.h), built with
 * mmdebstrap from the host's apt sources and imported into the local
 * Docker Engine without a registry and without a shell.
 *
 * What makes it small: the minbase variant (essential and required
 * packages and apt, no recommends), and dpkg path excludes for manual
 * pages, locales, documentation (copyright files stay), C headers,
 * compilers and static libraries (pulled in by pythran, a dependency of
 * scipy, never used at run time); and the test suites that numpy, scipy
 * and scikit-learn ship inside their packages, removed after install.
 * What makes it reproducible: SOURCE_DATE_EPOCH is fixed, the host's
 * resolv.conf and hostname are removed from the root, and apt's lists
 * and caches are emptied, so the same package versions give the same
 * layer tar and so the same diffID: a VM that has the layer from an
 * earlier build is never sent it again.
 *
 * The tag is "mlctl/base:py<X.Y>-<12 hex>", the hex being the start of a
 * sha256 over the suite, the sources file, the builder's options and
 * name=version of every named package (their candidate versions, read
 * from the host's apt lists before anything is built). Dependencies of the
 * named packages are not in the key: within a Debian stable release they
 * change only with the named packages or through security updates, which
 * `mlctl image base --force` picks up.
 *
 * The rootfs never touches the disk as a tar: mmdebstrap writes it to a
 * pipe and curl's read callback passes the pipe on to POST /images/create.
 * The image is imported untagged and tagged only once mmdebstrap exited 0,
 * so a failed build leaves no tag that looks complete.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/docker.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/image/base.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/run.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#define SOURCE_DATE_EPOCH "1700000000" /* any constant will do */
#define APT_ANSWER_MAX ((size_t)4 << 20)
#define LOG_TAIL 6
#define LINE_MAX_ ((size_t)64 << 10)

const char *const ml_base_default_packages[] = {
	"python3",	      "python3-numpy",	  "python3-sklearn",
	"python3-joblib",     "python3-fastapi",  "python3-uvicorn",
	"python3-prometheus-client", "python3-pip", "tini",
	NULL,
};

/* Options that shape the content: part of the key. */
static const char *const builder_opts[] = {
	"--variant=minbase",
	"--format=tar",
	"--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/info/*",
	"--dpkgopt=path-exclude=/usr/share/locale/*",
	"--dpkgopt=path-include=/usr/share/locale/locale.alias",
	"--dpkgopt=path-exclude=/usr/share/doc/*",
	"--dpkgopt=path-include=/usr/share/doc/*/copyright",
	"--dpkgopt=path-exclude=/usr/share/lintian/*",
	/*
	 * python3-scipy depends on pythran, which pulls in a C++ compiler,
	 * Boost and static libraries; none of them is used at run time
	 */
	"--dpkgopt=path-exclude=/usr/include/*",
	"--dpkgopt=path-exclude=/usr/lib/gcc/*",
	"--dpkgopt=path-exclude=/usr/libexec/gcc/*",
	"--dpkgopt=path-exclude=/usr/bin/x86_64-linux-gnu-lto-dump-*",
	"--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/*.a",
	"--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/*/*.a",
	"--dpkgopt=path-exclude=/usr/lib/python3.11/config-*/*.a",
	"--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/lib*san.so*",
	/* constant hook scripts, run by mmdebstrap with the root as $1 */
	"--customize-hook=rm -f \"$1\"/etc/resolv.conf \"$1\"/etc/hostname",
	/*
	 * the test suites numpy, scipy and scikit-learn ship (tens of MB):
	 * removed after installation, since py3compile in the packages'
	 * postinst scripts expects every file it was given
	 */
	"--customize-hook=find \"$1\"/usr/lib/python3/dist-packages -depth "
	"-type d -name tests -exec rm -rf {} +",
	"--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* "
	"\"$1\"/var/cache/apt/* \"$1\"/var/log/* "
	"\"$1\"/var/cache/ldconfig/aux-cache",
	NULL,
};

/* What the image runs with: Docker import "changes". */
static const char *const image_changes[] = {
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV LANG=C.UTF-8",
	"ENV PYTHONUNBUFFERED=1",
	"ENV PYTHONDONTWRITEBYTECODE=1",
	"ENTRYPOINT [\"/usr/bin/tini\", \"--\"]",
	"CMD [\"python3\"]",
	NULL,
};

void ml_base_key_release(struct ml_base_key *k)
{
	size_t i;

	for (i = 0; i < k->npkgs; i++) {
		free(k->pkgs[i].name);
		free(k->pkgs[i].version);
	}
	free(k->pkgs);
	free(k->sources);
	free(k->python);
	free(k->tag);
	memset(k, 0, sizeof(*k));
}

bool ml_base_valid_package(const char *s)
{
	size_t i;

	if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (i = 1; s[i]; i++)
		if (i >= 100 || !((s[i] >= 'a' && s[i] <= 'z') ||
				  (s[i] >= '0' && s[i] <= '9') ||
				  strchr("+.-", s[i])))
			return false;
	return i >= 2;
}

/* Debian versions: what apt prints, checked before it goes in a label. */
static bool valid_version(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (i >= 100 || !((s[i] >= 'a' && s[i] <= 'z') ||
				  (s[i] >= 'A' && s[i] <= 'Z') ||
				  (s[i] >= '0' && s[i] <= '9') ||
				  strchr("+.-~:", s[i])))
			return false;
	return i > 0;
}

static int pkg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ml_base_pkg *)a)->name,
		      ((const struct ml_base_pkg *)b)->name);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The value after "Key: " on a line starting at p, up to the line end. */
static char *field(const char *p, const char *key)
{
	size_t n = strlen(key), len;

	if (strncmp(p, key, n) || p[n] != ':')
		return NULL;
	p += n + 1;
	while (*p == ' ')
		p++;
	len = strcspn(p, "\n");
	return ml_xstrndup(p, len);
}

int ml_base_parse_versions(struct ml_base_key *k, const char *text,
			   const char *const *names, size_t n)
{
	char *pkg = NULL, *v;
	const char *p = text;
	size_t i, j;
	int rc = 0;

	k->pkgs = ml_xcalloc(n ? n : 1, sizeof(*k->pkgs));
	k->npkgs = 0;
	for (i = 0; i < n; i++) {
		k->pkgs[i].name = ml_xstrdup(names[i]);
		k->npkgs++;
	}
	while (p && *p) {
		if ((v = field(p, "Package"))) {
			free(pkg);
			pkg = v;
		} else if (pkg && (v = field(p, "Version"))) {
			for (j = 0; j < k->npkgs; j++)
				if (!strcmp(k->pkgs[j].name, pkg) &&
				    !k->pkgs[j].version && valid_version(v)) {
					k->pkgs[j].version = v;
					v = NULL;
				}
			free(v);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	for (i = 0; i < k->npkgs; i++)
		if (!k->pkgs[i].version) {
			rc = ml_err_set(ML_EINVALID,
					"Debian package '%s' is not known to "
					"apt (a typo, or run apt-get update)",
					k->pkgs[i].name);
			break;
		}
	free(pkg);
	qsort(k->pkgs, k->npkgs, sizeof(*k->pkgs), pkg_cmp);
	return rc;
}

static const char *default_sources(void)
{
	static const char *const candidates[] = {
		"/etc/apt/sources.list.d/debian.sources",
		"/etc/apt/sources.list",
	};
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(candidates); i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return candidates[1];
}

/* The sorted, unique package names of spec; *n_out of them, borrowed. */
static int package_names(const char ***out, size_t *n_out,
			 const struct ml_base_spec *spec)
{
	const char **names = ml_xcalloc(ML_BASE_MAX_PACKAGES + 1,
					sizeof(*names));
	size_t n = 0, i, k = 0;

	for (i = 0; ml_base_default_packages[i]; i++)
		names[n++] = ml_base_default_packages[i];
	for (i = 0; spec->extra && spec->extra[i]; i++) {
		if (!ml_base_valid_package(spec->extra[i])) {
			free(names);
			return ml_err_set(ML_EINVALID,
					  "'%.100s' is not a Debian package "
					  "name",
					  spec->extra[i]);
		}
		if (n >= ML_BASE_MAX_PACKAGES) {
			free(names);
			return ml_err_set(ML_ETOOBIG,
					  "a base holds at most %d named "
					  "packages",
					  ML_BASE_MAX_PACKAGES);
		}
		names[n++] = spec->extra[i];
	}
	qsort(names, n, sizeof(*names), str_cmp);
	for (i = 0; i < n; i++)
		if (!k || strcmp(names[k - 1], names[i]))
			names[k++] = names[i];
	names[k] = NULL;
	*out = names;
	*n_out = k;
	return 0;
}

int ml_base_resolve(struct ml_base_key *k, const struct ml_base_spec *spec)
{
	struct ml_buf ans = ML_BUF_INIT(APT_ANSWER_MAX),
		      src = ML_BUF_INIT((size_t)1 << 20);
	const char *suite = spec->suite ? spec->suite : ML_BASE_SUITE;
	const char **names = NULL, **argv = NULL;
	struct ml_sha256 *h = NULL;
	const char *py;
	size_t n = 0, i;
	int rc;

	memset(k, 0, sizeof(*k));
	if (!ml_base_valid_package(suite))
		return ml_err_set(ML_EINVALID, "'%.100s' is not a Debian suite",
				  suite);
	rc = package_names(&names, &n, spec);
	if (rc < 0)
		goto out;
	k->sources = ml_xstrdup(spec->sources ? spec->sources
					      : default_sources());
	rc = ml_buf_read_file(&src, k->sources);
	if (rc < 0)
		goto out;

	argv = ml_xcalloc(n + 4, sizeof(*argv));
	argv[0] = "apt-cache";
	argv[1] = "show";
	argv[2] = "--no-all-versions";
	for (i = 0; i < n; i++)
		argv[3 + i] = names[i];
	/* a missing package makes apt-cache exit 100 after printing the
	 * others: the parse below names it */
	rc = ml_child_run(&ans, argv, NULL, "/dev/null");
	if (rc < 0 && !ans.len)
		goto out;
	rc = ml_base_parse_versions(k, ml_buf_str(&ans), names, n);
	if (rc < 0)
		goto out;

	h = ml_sha256_new();
	ml_sha256_update(h, "mlctl-base 1\n", 13);
	ml_sha256_update(h, suite, strlen(suite) + 1);
	ml_sha256_update(h, src.data ? src.data : "", src.len);
	for (i = 0; builder_opts[i]; i++)
		ml_sha256_update(h, builder_opts[i], strlen(builder_opts[i]) + 1);
	for (i = 0; image_changes[i]; i++)
		ml_sha256_update(h, image_changes[i],
				 strlen(image_changes[i]) + 1);
	for (i = 0; i < k->npkgs; i++) {
		ml_sha256_update(h, k->pkgs[i].name,
				 strlen(k->pkgs[i].name) + 1);
		ml_sha256_update(h, k->pkgs[i].version,
				 strlen(k->pkgs[i].version) + 1);
	}
	ml_sha256_final_hex(h, k->hex);

	/* "3.11.2-1+b1" -> "3.11" */
	py = NULL;
	for (i = 0; i < k->npkgs; i++)
		if (!strcmp(k->pkgs[i].name, "python3"))
			py = k->pkgs[i].version;
	if (py) {
		const char *dot = strchr(py, '.');
		size_t len = dot ? (size_t)(dot - py) + 1 +
					   strspn(dot + 1, "0123456789")
				 : strlen(py);

		k->python = ml_xstrndup(py, len);
	} else {
		k->python = ml_xstrdup("3");
	}
	k->tag = ml_xasprintf("%s:py%s-%.12s", ML_BASE_REPO, k->python,
			      k->hex);
out:
	if (h)
		ml_sha256_free(h);
	if (rc < 0)
		ml_base_key_release(k);
	free(names);
	free(argv);
	ml_buf_release(&ans);
	ml_buf_release(&src);
	return rc;
}

/* ---- the import -------------------------------------------------------- */

struct import_ctx {
	int fd; /* mmdebstrap's stdout */
	struct ml_lines lines;
	char *id;    /* the imported image, from Docker's last status */
	char *error; /* Docker's first error */
};

static ssize_t import_read(void *ctx, void *buf, size_t n)
{
	struct import_ctx *im = ctx;
	ssize_t r;

	do
		r = read(im->fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return ml_err_errno(ML_EFAIL, errno,
				    "cannot read mmdebstrap's output");
	return r;
}

static void import_line(struct import_ctx *im, const char *s, size_t n)
{
	json_t *j = json_loadb(s, n, 0, NULL);
	const char *v;

	if (!json_is_object(j))
		goto out;
	v = json_string_value(json_object_get(j, "status"));
	if (v && ml_digest_valid(v)) {
		free(im->id);
		im->id = ml_xstrdup(v);
	}
	v = json_string_value(json_object_get(j, "error"));
	if (v && !im->error)
		im->error = ml_xstrdup(*v ? v : "unknown error");
out:
	json_decref(j);
}

static void import_line_cb(void *ctx, const char *s, size_t n)
{
	import_line(ctx, s, n);
}

static int import_write(void *ctx, const void *buf, size_t n)
{
	struct import_ctx *im = ctx;

	ml_lines_feed(&im->lines, buf, n);
	return 0;
}

/* The last LOG_TAIL lines of the log file, escaped, for a message. */
static void log_tail(struct ml_buf *out, const char *path)
{
	struct ml_buf b = ML_BUF_INIT((size_t)8 << 20);
	const char *p, *start;
	size_t lines = 0;

	if (ml_buf_read_file(&b, path) < 0 || !b.len)
		goto out;
	p = b.data + b.len;
	while (p > b.data && p[-1] == '\n')
		p--;
	start = p;
	while (start > b.data && lines < LOG_TAIL) {
		start--;
		if (*start == '\n')
			lines++;
	}
	if (*start == '\n')
		start++;
	(void)ml_buf_addstr(out, "\nlast lines of ");
	(void)ml_buf_addstr(out, path);
	(void)ml_buf_addstr(out, ":\n  ");
	while (start < p) {
		size_t len = strcspn(start, "\n");

		if ((size_t)(p - start) < len)
			len = (size_t)(p - start);
		(void)ml_escape(out, start, len);
		start += len;
		if (start < p) {
			(void)ml_buf_addstr(out, "\n  ");
			start++;
		}
	}
out:
	ml_buf_release(&b);
}

/* The import path: every change and the labels, URL-encoded. */
static int import_path(struct ml_buf *path, const struct ml_base_key *k)
{
	struct ml_buf v = ML_BUF_INIT(16384);
	size_t i;
	int rc;

	rc = ml_buf_addstr(path, "/images/create?fromSrc=-&message=");
	if (rc == 0)
		rc = ml_docker_url_escape(path, "mlctl image base");
	for (i = 0; rc == 0 && image_changes[i]; i++) {
		rc = ml_buf_addstr(path, "&changes=");
		if (rc == 0)
			rc = ml_docker_url_escape(path, image_changes[i]);
	}
	if (rc == 0)
		rc = ml_buf_addf(&v, "LABEL %s=%s", ML_BASE_LABEL_KEY, k->hex);
	if (rc == 0)
		rc = ml_buf_addstr(path, "&changes=");
	if (rc == 0)
		rc = ml_docker_url_escape(path, v.data);
	ml_buf_reset(&v);
	/* names and versions were checked: no quote or space in them */
	if (rc == 0)
		rc = ml_buf_addf(&v, "LABEL %s=\"", ML_BASE_LABEL_PACKAGES);
	for (i = 0; rc == 0 && i < k->npkgs; i++)
		rc = ml_buf_addf(&v, "%s%s=%s", i ? " " : "", k->pkgs[i].name,
				 k->pkgs[i].version);
	if (rc == 0)
		rc = ml_buf_addstr(&v, "\"");
	if (rc == 0)
		rc = ml_buf_addstr(path, "&changes=");
	if (rc == 0)
		rc = ml_docker_url_escape(path, v.data);
	ml_buf_release(&v);
	return rc;
}

/* True when Docker has k->tag with k's key label. */
static int have_base(bool *have, struct ml_docker *d,
		     const struct ml_base_key *k)
{
	struct ml_buf path = ML_BUF_INIT(1024);
	const char *label;
	json_t *j = NULL;
	int rc;

	*have = false;
	rc = ml_buf_addstr(&path, "/images/");
	if (rc == 0)
		rc = ml_docker_url_escape(&path, k->tag);
	if (rc == 0)
		rc = ml_buf_addstr(&path, "/json");
	if (rc == 0)
		rc = ml_docker_get(d, path.data, &j);
	if (rc == ML_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	label = json_string_value(json_object_get(
		json_object_get(json_object_get(j, "Config"), "Labels"),
		ML_BASE_LABEL_KEY));
	*have = label && !strcmp(label, k->hex);
out:
	json_decref(j);
	ml_buf_release(&path);
	return rc;
}

static int tag_image(struct ml_docker *d, const char *id,
		     const struct ml_base_key *k)
{
	struct ml_buf path = ML_BUF_INIT(1024);
	const char *tag = strchr(k->tag, ':') + 1;
	int rc;

	rc = ml_buf_addf(&path, "/images/%s/tag?repo=", id);
	if (rc == 0)
		rc = ml_docker_url_escape(&path, ML_BASE_REPO);
	if (rc == 0)
		rc = ml_buf_addstr(&path, "&tag=");
	if (rc == 0)
		rc = ml_docker_url_escape(&path, tag);
	if (rc == 0)
		rc = ml_docker_request_raw(d, NULL, "POST", path.data, NULL,
					   NULL);
	ml_buf_release(&path);
	return rc;
}

/* Remove the untagged image a failed build left (best effort). */
static void drop_image(struct ml_docker *d, const char *id)
{
	char path[128];

	snprintf(path, sizeof(path), "/images/%s?noprune=0", id);
	if (ml_docker_request_raw(d, NULL, "DELETE", path, NULL, NULL) < 0)
		ml_debug("cannot remove the partial base image %.19s", id);
}

static int build(struct ml_docker *d, const struct ml_base_spec *spec,
		 const struct ml_base_key *k, const char *log_path)
{
	const char *suite = spec->suite ? spec->suite : ML_BASE_SUITE;
	const char *env[] = { "SOURCE_DATE_EPOCH=" SOURCE_DATE_EPOCH, NULL };
	struct ml_buf include = ML_BUF_INIT(8192), path = ML_BUF_INIT(65536),
		      msg = ML_BUF_INIT(8192);
	struct import_ctx im = { .fd = -1 };
	struct ml_child child = { .pid = -1, .out_fd = -1 };
	const char *argv[32];
	struct ml_io io;
	size_t n = 0, i;
	struct ml_err_saved saved;
	int rc, rc2;

	ml_buf_init(&im.lines.line, LINE_MAX_);
	im.lines.on_line = import_line_cb;
	im.lines.ctx = &im;
	rc = ml_buf_addstr(&include, "--include=");
	for (i = 0; rc == 0 && i < k->npkgs; i++)
		rc = ml_buf_addf(&include, "%s%s", i ? "," : "",
				 k->pkgs[i].name);
	if (rc == 0)
		rc = import_path(&path, k);
	if (rc < 0)
		goto out;
	argv[n++] = "mmdebstrap";
	for (i = 0; builder_opts[i]; i++)
		argv[n++] = builder_opts[i];
	argv[n++] = include.data;
	argv[n++] = suite;
	argv[n++] = "-"; /* the tar on stdout */
	argv[n++] = k->sources;
	argv[n] = NULL;
	if (n >= ML_ARRAY_SIZE(argv))
		BUG("mmdebstrap argv overflow");

	ml_info("building the base image '%s' with mmdebstrap (log: %s)",
		k->tag, log_path);
	rc = ml_child_start(&child, argv, env, log_path);
	if (rc < 0)
		goto out;
	im.fd = child.out_fd;
	io.read = import_read;
	io.write = import_write;
	io.ctx = &im;
	rc = ml_docker_stream(d, "POST", path.data, "application/x-tar", &io,
			      0);
	ml_err_save(&saved);
	if (rc < 0)
		kill(child.pid, SIGTERM);
	rc2 = ml_child_finish(&child, "mmdebstrap");
	ml_lines_flush(&im.lines);
	if (rc2 < 0) {
		(void)ml_buf_addf(&msg, "cannot build the base image: %s",
				  ml_err_msg());
		log_tail(&msg, log_path);
		rc = ml_err_set(ML_EFAIL, "%s", ml_buf_str(&msg));
		goto out;
	}
	if (rc < 0) {
		ml_err_restore(&saved);
		rc = ml_err_prefix(rc, "docker could not import the base "
				       "image");
		goto out;
	}
	if (im.error || !im.id) {
		ml_buf_reset(&msg);
		(void)ml_escape(&msg, im.error ? im.error : "no image id",
				strlen(im.error ? im.error : "no image id"));
		rc = ml_err_set(ML_EFAIL,
				"docker could not import the base image: %s",
				ml_buf_str(&msg));
		goto out;
	}
	rc = tag_image(d, im.id, k);
out:
	if (rc < 0 && im.id)
		drop_image(d, im.id);
	if (child.pid > 0) {
		kill(child.pid, SIGTERM);
		(void)ml_child_finish(&child, "mmdebstrap");
	}
	free(im.id);
	free(im.error);
	ml_buf_release(&im.lines.line);
	ml_buf_release(&include);
	ml_buf_release(&path);
	ml_buf_release(&msg);
	return rc;
}

int ml_base_ensure(char **ref_out, bool *built, struct ml_docker *d,
		   const struct ml_base_spec *spec, bool force)
{
	struct ml_base_key k;
	struct ml_cache *cache = NULL;
	char *log_path = NULL;
	bool have;
	int rc;

	*ref_out = NULL;
	*built = false;
	rc = ml_base_resolve(&k, spec);
	if (rc < 0)
		return rc;
	rc = have_base(&have, d, &k);
	if (rc < 0)
		goto out;
	if (have && !force) {
		ml_debug("base image '%s' is there already", k.tag);
		goto done;
	}
	if (spec->log_dir) {
		log_path = ml_xasprintf("%s/base-%.12s.log", spec->log_dir,
					k.hex);
	} else {
		rc = ml_cache_open(&cache, NULL);
		if (rc < 0)
			goto out;
		log_path = ml_xasprintf("%s/base-%.12s.log",
					ml_cache_dir(cache), k.hex);
	}
	rc = build(d, spec, &k, log_path);
	if (rc < 0)
		goto out;
	*built = true;
done:
	*ref_out = ml_xstrdup(k.tag);
out:
	ml_cache_free(cache);
	free(log_path);
	ml_base_key_release(&k);
	return rc;
}
