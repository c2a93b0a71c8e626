#ifndef ML_DEPLOY_H
#define ML_DEPLOY_H

/*
 * One deploy from start to end, shared by deploy, rollback and recover:
 * take the fleet lock (fleet/lease.h), connect, deliver the image, observe
 * and plan, record a revision, roll out (rolling back automatically on
 * failure when the playbook says so), record the outcome, release the lock.
 */

#include "orchestrator/ledger/ledger.h"

struct ml_ctx;
struct ml_config;
struct ml_image;
struct ml_cache;

struct ml_deploy_req {
	const struct ml_config *cfg; /* desired state */
	struct ml_image *img;        /* its image, blobs in cache */
	struct ml_cache *cache;
	enum ml_rev_kind kind;
	int64_t rollback_of;         /* for ML_REV_ROLLBACK */
	int64_t resume;              /* recover: the running revision to
				      * finish (0: record a new one) */
	json_t *secrets;             /* borrowed: the values already read
				      * (NULL: ml_deploy reads them) */
};

/* Run the deploy described by req with ctx's options. Returns 0, or
 * ML_EDEPLOY (rolled back or failed), ML_ELOCKED, ML_EINTR, ... */
int ml_deploy(struct ml_ctx *ctx, const struct ml_deploy_req *req);

/*
 * The desired state of a recorded revision: its playbook as recorded, with
 * the inventory as it is now at ctx's --commit (default HEAD), and its
 * image from the local Docker Engine (its blobs then filled into the
 * cache). *cfg, *img and *cache are the caller's.
 */
int ml_deploy_load_revision(struct ml_config **cfg, struct ml_image **img,
			    struct ml_cache **cache, struct ml_ctx *ctx,
			    const struct ml_revision *rev);

#endif
