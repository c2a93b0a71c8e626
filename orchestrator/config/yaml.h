#ifndef ML_YAML_H
#define ML_YAML_H

/*
 * Our libyaml wrapper: load one YAML document into a tree of plain nodes
 * that remember where they came from, under limits libyaml 0.2.5 does not
 * have. The only place that includes yaml.h. Aliases are expanded by copy,
 * and every copied node counts against max_nodes, so an alias bomb ("billion
 * laughs") stops at the limit instead of eating memory.
 *
 * Errors are diagnostics (struct ml_diags, config.h) with file:line:column:
 * syntax errors, limits passed, duplicate keys in a mapping, non-scalar
 * keys, more than one document, invalid UTF-8, tabs used as indentation,
 * tags other than YAML 1.2's core ones (!!str makes a scalar non-plain),
 * NUL characters in strings, a "<<" merge key whose value is not a mapping
 * or a sequence of mappings. Merge keys are applied: explicit keys win,
 * then the first merged mapping to name a key. Besides the limits below,
 * alias copies may not make the text of all scalars larger than 16 times
 * max_bytes.
 */

#include "orchestrator/config/config.h"

enum ml_ynode_type {
	ML_YSCALAR = 1,
	ML_YSEQ,
	ML_YMAP,
};

struct ml_ypair;

struct ml_ynode {
	enum ml_ynode_type type;
	int line, col;        /* 1-based position of the node's start */
	/* ML_YSCALAR */
	char *scalar;         /* NUL-terminated */
	size_t len;           /* bytes, excluding the NUL */
	bool plain;           /* unquoted: may be null, bool or number */
	/* ML_YSEQ */
	struct ml_ynode **items;
	size_t nitems;
	/* ML_YMAP, in document order; keys are scalars, unique */
	struct ml_ypair *pairs;
	size_t npairs;
};

struct ml_ypair {
	struct ml_ynode *key;
	struct ml_ynode *value;
};

struct ml_ylimits {
	size_t max_bytes;   /* input size, default 1 MiB */
	int max_depth;      /* nesting of sequences and mappings, default 32 */
	size_t max_aliases; /* alias references, default 100 */
	size_t max_nodes;   /* nodes after alias expansion, default 100000 */
	size_t max_scalar;  /* one scalar's length, default 64 KiB */
};

extern const struct ml_ylimits ml_ylimits_default;

/*
 * Parse data (len bytes; need not be NUL-terminated) named name in
 * diagnostics. lim may be NULL for the defaults. An empty document (no
 * content, only comments, or a lone null such as "---" or "~") gives a
 * NULL *out and returns 0. On any problem, adds diagnostics and returns
 * ML_EINVALID with *out NULL. A copy of an alias is placed where the alias
 * is; the nodes inside it keep the positions of the anchored original.
 */
int ml_yaml_load(struct ml_ynode **out, const char *name, const char *data,
		 size_t len, const struct ml_ylimits *lim,
		 struct ml_diags *diags);

void ml_ynode_free(struct ml_ynode *n);

/* The value for key in a mapping, or NULL. Borrowed. */
const struct ml_ynode *ml_ymap_get(const struct ml_ynode *map,
				   const char *key);

/* "a mapping", "a sequence", "a string" ... for messages. */
const char *ml_ynode_type_name(const struct ml_ynode *n);

/* A plain scalar that YAML 1.2's core schema reads as null ("", "~",
 * "null"). */
bool ml_yscalar_is_null(const struct ml_ynode *n);

#endif
