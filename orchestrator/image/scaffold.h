#ifndef ML_IMAGE_SCAFFOLD_H
#define ML_IMAGE_SCAFFOLD_H

/*
 * What `mlctl init` writes, as pure functions of a few answers: the
 * Dockerfile, the .dockerignore, the playbook and an inventory skeleton.
 * No I/O here (orchestrator/cmd/init.c reads the repository and writes the files), so
 * the unit tests check the text and the playbook is checked by the same
 * parser `mlctl validate` uses.
 */

#include <stdbool.h>
#include <stddef.h>

struct ml_buf;

#define ML_SCAFFOLD_UID 10001 /* the app user, never 0 */

/* Where an image made by `mlctl init` keeps the requirements it was built
 * from (requirements.txt, empty when there were none). */
#define ML_SCAFFOLD_RECORD_DIR "/usr/local/share/mlctl"

struct ml_scaffold {
	const char *app;	  /* [a-z0-9][a-z0-9-]* */
	const char *base;	  /* FROM, pinned (a content tag or digest) */
	bool base_is_mlctl;	  /* the base has tini and the ML stack */
	const char *python;	  /* "3.11" */
	int port;		  /* 1..65535 */
	const char *requirements; /* path in the repo, NULL: none */
	const char *wheelhouse;	  /* folder of wheels, NULL: an index */
	const char *model_dir;	  /* weights folder, NULL: none */
	const char *module;	  /* "app:app", the ASGI app for uvicorn */
	const char *const *system_packages; /* NULL-terminated, may be NULL */
	bool gpu;
	const char *group;	  /* inventory group of app hosts */
};

/* One requirement line that is not pinned with "==" (for a warning). */
struct ml_req_issue {
	size_t line;
	char *name;
};

/*
 * Parse a requirements file (text, n bytes): the name of every
 * requirement (comments, blank lines and "-r"/"--" options skipped) goes
 * in names (a NULL-terminated array the caller frees with ml_scaffold_names_free),
 * and each line without an exact pin "==" in *issues (*nissues of them,
 * the caller frees with ml_req_issues_free). A pure function.
 */
int ml_scaffold_requirements(char ***names, struct ml_req_issue **issues,
			     size_t *nissues, const char *text, size_t n);
void ml_req_issues_free(struct ml_req_issue *v, size_t n);
void ml_scaffold_names_free(char **v);

/* True for an app name: [a-z0-9][a-z0-9-]*, at most 63 bytes. */
bool ml_scaffold_valid_app(const char *s);

/*
 * The texts. Each appends to out; ML_EINVALID for answers that cannot be
 * written safely (a name or path with quotes, spaces or control
 * characters, a port out of range).
 */
int ml_scaffold_dockerfile(struct ml_buf *out, const struct ml_scaffold *s);
int ml_scaffold_dockerignore(struct ml_buf *out, const struct ml_scaffold *s);
int ml_scaffold_playbook(struct ml_buf *out, const struct ml_scaffold *s);
int ml_scaffold_inventory(struct ml_buf *out, const struct ml_scaffold *s);

#endif
