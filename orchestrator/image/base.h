#ifndef ML_IMAGE_BASE_H
#define ML_IMAGE_BASE_H

/*
 * The standard Python runtime base image, built without any registry: a
 * minimal Debian root made by mmdebstrap from the machine's own apt
 * sources, with Python and the named Debian packages, imported into the
 * local Docker Engine through its API and tagged by a hash of what went
 * in, so a second build of the same packages is a no-op.
 */

#include <stdbool.h>

struct ml_docker;
struct ml_buf;

#define ML_BASE_REPO "mlctl/base"
#define ML_BASE_SUITE "bookworm"
#define ML_BASE_MAX_PACKAGES 64
#define ML_BASE_LABEL_KEY "mlctl.base.key"
#define ML_BASE_LABEL_PACKAGES "mlctl.base.packages"

/* The packages of the standard base, NULL-terminated. */
extern const char *const ml_base_default_packages[];

struct ml_base_spec {
	const char *suite;   /* NULL: ML_BASE_SUITE */
	const char *sources; /* apt sources file; NULL: the host's */
	/* extra Debian packages beside the defaults (NULL-terminated; may
	 * be NULL) */
	const char *const *extra;
	const char *log_dir; /* where mmdebstrap's log goes; NULL: cache */
};

/* One resolved package: name and candidate version. */
struct ml_base_pkg {
	char *name, *version;
};

struct ml_base_key {
	struct ml_base_pkg *pkgs; /* sorted by name, no duplicates */
	size_t npkgs;
	char *sources;	  /* the sources file used (path) */
	char *python;	  /* "3.11", from python3's version */
	char *tag;	  /* "mlctl/base:py3.11-<12 hex>" */
	char hex[65];	  /* sha256 of everything that went in */
};

void ml_base_key_release(struct ml_base_key *k);

/*
 * True for a Debian package name: [a-z0-9][a-z0-9+.-]+, at most 100
 * bytes (so it can never start with '-' and be read as an option).
 */
bool ml_base_valid_package(const char *name);

/*
 * Parse the answer of `apt-cache show --no-all-versions P...` (Package:
 * and Version: lines of each stanza) into k->pkgs, which must then hold
 * every name in names (n of them). A pure function, for tests. ML_EINVALID
 * "Debian package 'x' is not known to apt (run apt-get update?)" for a
 * missing one.
 */
int ml_base_parse_versions(struct ml_base_key *k, const char *text,
			   const char *const *names, size_t n);

/*
 * Resolve spec: validate the package names, look up each candidate
 * version with apt-cache (the host's lists, which come from the same
 * sources mmdebstrap reads), and hash suite, sources content, the
 * builder's options and name=version of every package into k. Caller
 * releases k. ML_EINVALID for a bad package name or one apt does not
 * know; ML_EFAIL when apt-cache cannot be run.
 */
int ml_base_resolve(struct ml_base_key *k, const struct ml_base_spec *spec);

/*
 * Make sure the base of spec is in Docker: when an image tagged k->tag
 * with the same key label exists (and !force) nothing is done and *built
 * is false; otherwise mmdebstrap writes the root file system as a tar
 * stream to a pipe that is fed straight into POST /images/create
 * (fromSrc=-), and the new image is tagged only once mmdebstrap exited 0
 * and Docker took the whole stream. *ref_out (caller frees) is the tag.
 * ML_EFAIL with the tail of mmdebstrap's log when the build fails.
 */
int ml_base_ensure(char **ref_out, bool *built, struct ml_docker *d,
		   const struct ml_base_spec *spec, bool force);

#endif
