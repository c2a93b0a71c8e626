#ifndef ML_PRUNE_H
#define ML_PRUNE_H

/*
 * Prune: what each host (and the controller's blob cache) keeps of earlier
 * revisions, and what it may remove. ml_prune_host is a pure function of
 * the ledger's revisions, the pins and what one host holds (its containers,
 * its Docker images, its blob store); no I/O. prune_run.c carries the
 * result out through the agent's prune op.
 *
 * The keep-set of the app being pruned is, by revision:
 *   current     the newest revision that succeeded
 *   previous    the newest one that succeeded before it (where `mlctl
 *               rollback` without N goes, and what an automatic rollback
 *               of the next deploy returns to once it becomes current)
 *   retained    the newest `retain` revisions that succeeded (current
 *               included)
 *   pinned      every pinned revision (mlctl pin N)
 *   unfinished  a revision still running (in flight, or left by a crash),
 *               and an interrupted one newer than current: hosts may run
 *               either
 * and, by image, whatever a running container on the host uses (any app).
 * A disk budget drops retained-only revisions, oldest first, until the
 * kept images' blobs fit; never the others.
 *
 * Garbage, of that app only: its revisions' images not kept (and not used
 * by a container that stays), its stopped containers running such an
 * image, and the blobs of those images that no image staying on the host
 * and no kept revision (of any app in the ledger) references. Images, tags
 * and blobs the ledger does not name for this app are never touched: they
 * belong to another app, another ledger, or to no mlctl app.
 */

#include <jansson.h>

#include "orchestrator/ledger/ledger.h"

#define ML_PRUNE_RETAIN_DEFAULT 3
#define ML_PRUNE_MAX_ITEMS 1000 /* of each kind in one agent request */

/* A revision as prune sees it (from the ledger). */
struct ml_prune_rev {
	int64_t number;
	char *app;
	char *image_id; /* also its config blob; NULL when never recorded */
	char **layers;  /* diffIDs */
	size_t nlayers;
	char *ref;      /* the tag hosts give it ("mlctl/app:sha", "x:v1") */
	enum ml_outcome outcome;
};

/* What a host holds (the agent's prune_scan reply). */
struct ml_prune_container {
	char *id;
	char *name;
	char *app;      /* mlctl.app label, NULL for containers not mlctl's */
	char *image_id;
	int64_t revision;
	bool running;   /* running, restarting or paused: never removed */
};

struct ml_prune_image {
	char *id;
	char **tags;
	size_t ntags;
	char **layers;
	size_t nlayers;
};

struct ml_prune_blob {
	char *digest;
	uint64_t size;
	bool partial; /* a .part being received: never removed */
};

struct ml_prune_host {
	struct ml_prune_container *containers;
	size_t ncontainers;
	struct ml_prune_image *images;
	size_t nimages;
	struct ml_prune_blob *blobs;
	size_t nblobs;
};

struct ml_prune_input {
	const char *app;
	int retain;                     /* >= 1 */
	int64_t budget;                 /* bytes per host, 0: none */
	const struct ml_prune_rev *revs; /* any order, any apps */
	size_t nrevs;
	const int64_t *pins;
	size_t npins;
	const struct ml_prune_host *host;
};

/* Why a revision is kept (bits of struct ml_prune_keep.why). */
enum {
	ML_KEEP_CURRENT = 1 << 0,
	ML_KEEP_PREVIOUS = 1 << 1,
	ML_KEEP_RETAINED = 1 << 2,
	ML_KEEP_PINNED = 1 << 3,
	ML_KEEP_UNFINISHED = 1 << 4,
	ML_KEEP_RUNNING = 1 << 5, /* a running container uses its image */
	ML_KEEP_IN_USE = 1 << 6,  /* a container that stays uses its image */
};

struct ml_prune_keep {
	int64_t revision;
	const char *image_id; /* borrowed from the input */
	unsigned why;
};

struct ml_prune_rm_image {
	const struct ml_prune_image *img; /* borrowed */
	const char **tags; /* its tags that are this app's (borrowed) */
	size_t ntags;
	int64_t revision;  /* the newest revision that used it */
	bool untag_only;   /* it has tags of others: remove ours, keep it */
};

/*
 * The result. Pointers borrow from the input, which must outlive it.
 * Release with ml_prune_plan_release.
 */
struct ml_prune_plan {
	struct ml_prune_keep *keep; /* revisions of the app, newest first */
	size_t nkeep;
	const struct ml_prune_container **containers;
	size_t ncontainers;
	struct ml_prune_rm_image *images;
	size_t nimages;
	const struct ml_prune_blob **blobs;
	size_t nblobs;
	uint64_t blob_bytes;  /* sum of the removed blobs' sizes */
	uint64_t kept_bytes;  /* the kept images' blobs held on the host */
	bool over_budget;     /* kept_bytes > budget even after dropping */
	int dropped;          /* retained revisions dropped for the budget */
};

/* Plan one host (or, with an empty host but its blobs, the cache). */
void ml_prune_host(struct ml_prune_plan *out, const struct ml_prune_input *in);
void ml_prune_plan_release(struct ml_prune_plan *p);

/*
 * One line per decision, for people and the data tests:
 *   keep r12 sha256:.. (current, retained)
 *   remove container NAME (r5)
 *   remove image sha256:.. (r5; tags mlctl/demo:abc)
 *   untag image sha256:.. (r4; tags x:v4)	(it has others' tags too)
 *   remove blob sha256:.. (1048576 bytes)
 *   frees 1048576 bytes of blobs; keeps 3145728
 */
int ml_prune_render(struct ml_buf *out, const struct ml_prune_plan *p);

/* The reasons of why as "current, retained" into buf. */
const char *ml_prune_why(char *buf, size_t n, unsigned why);

/*
 * A host from the agent's prune_scan result ({"containers","images",
 * "blobs"}); ML_EPROTO when a member is not what it should be. Release
 * with ml_prune_host_release.
 */
int ml_prune_host_from_json(struct ml_prune_host *out, json_t *scan);
void ml_prune_host_release(struct ml_prune_host *h);

/*
 * Revisions from JSON ([{"n","app","image","layers","ref","outcome"}]),
 * for the data tests, or from the ledger (app, image reference from the
 * recorded desired state). Free with ml_prune_revs_free.
 */
int ml_prune_revs_from_json(struct ml_prune_rev **out, size_t *n,
			    json_t *arr);
void ml_prune_revs_from_ledger(struct ml_prune_rev **out, size_t *n,
			       const struct ml_revision *revs, size_t nrevs);
void ml_prune_revs_free(struct ml_prune_rev *v, size_t n);

#endif
