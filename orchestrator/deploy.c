/*
 * One deploy from start to end (see deploy.h), with one revision record:
 * under the fleet lock's lease (fleet/lease.c), deliver the image and
 * observe (roll), record the revision before anything changes (or finish
 * the one a stopped run left running), roll out, roll back automatically
 * when the playbook says so, and record the outcome, whatever happened,
 * before the lease is given up. The image is prepared by the caller
 * (image/prepare.c).
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orchestrator/apply/deliver.h"
#include "orchestrator/apply/rollout.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/deploy.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/lease.h"
#include "orchestrator/image/image.h"
#include "orchestrator/image/prepare.h"
#include "orchestrator/load.h"
#include "orchestrator/metrics/metrics.h"
#include "orchestrator/prune/run.h"
#include "orchestrator/secrets.h"
#include "orchestrator/transport/transport.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	ML_UNUSED(sig);
	interrupted = 1;
}

static char *layers_json(const struct ml_image *img)
{
	json_t *a = json_array();
	char *s;
	size_t i;

	for (i = 0; i < img->nlayers; i++)
		json_array_append_new(a, json_string(img->layers[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/*
 * A revision a crashed run left "running" with the same playbook and image
 * as this deploy: this deploy finishes it instead of recording another.
 */
static int64_t find_resumable(struct ml_ledger *l, const char *hash,
			      const char *image_id)
{
	struct ml_revision *revs = NULL;
	size_t n = 0, i;
	int64_t found = 0;

	if (ml_ledger_list(l, 20, &revs, &n) < 0)
		return 0;
	for (i = 0; i < n && !found; i++)
		if (revs[i].outcome == ML_OUTCOME_RUNNING &&
		    revs[i].playbook_hash && revs[i].image_id &&
		    !strcmp(revs[i].playbook_hash, hash) &&
		    !strcmp(revs[i].image_id, image_id))
			found = revs[i].number;
	ml_revisions_free(revs, n);
	return found;
}

/* Mark revisions a crashed run left "running" as interrupted. */
static void close_stale(struct ml_ledger *l, int64_t keep)
{
	struct ml_revision *revs = NULL;
	size_t n = 0, i;

	if (ml_ledger_list(l, 20, &revs, &n) < 0)
		return;
	for (i = 0; i < n; i++)
		if (revs[i].outcome == ML_OUTCOME_RUNNING &&
		    revs[i].number != keep)
			ml_ledger_finish(l, revs[i].number,
					 ML_OUTCOME_INTERRUPTED,
					 "the controller stopped before the "
					 "end; a later run converged the "
					 "fleet");
	ml_revisions_free(revs, n);
}

/* The event that opens or closes an automatic rollback's steps in the
 * failed revision's record. */
static void rollback_mark(struct ml_ledger *l, int64_t failed,
			  const char *status, int64_t to)
{
	char detail[64];

	snprintf(detail, sizeof(detail), "to revision %lld", (long long)to);
	if (ml_ledger_event(l, failed, "-", "rollback", status, detail) < 0)
		ml_warn("cannot record the rollback of revision %lld: %s",
			(long long)failed, ml_err_msg());
}

/*
 * Deliver img and roll the fleet to cfg; fills *ro (released by caller).
 * With sent, *sent becomes {"host": {"blobs", "bytes", "wire"}} for each
 * app host that was sent blobs (bytes uncompressed, as `mlctl plan`
 * counts them), the caller's; each is printed as it is known.
 */
/*
 * The fleet's sessions, connected in a thread while the fleet lock is
 * taken: a handshake costs a quarter to half a second of CPU per host,
 * and the lock's own host answers in a few ms once connected. Nothing but
 * hello goes over these sessions before the lock is held (the requests
 * carry its fence from then on), so a lock that is refused closes them
 * unused.
 */
struct connect_job {
	const struct ml_config *cfg;
	const struct ml_fleet_opts *fo;
	struct ml_host_session *hosts;
	size_t n;
	int rc;
	struct ml_err_saved err;
};

static void *connect_main(void *arg)
{
	struct connect_job *j = arg;

	j->rc = ml_fleet_connect(&j->hosts, &j->n, j->cfg, j->fo, NULL);
	if (j->rc < 0)
		ml_err_save(&j->err);
	return NULL;
}

static int roll(struct ml_rollout *ro, struct ml_ctx *ctx,
		const struct ml_config *cfg, struct ml_image *img,
		struct ml_cache *cache, struct ml_host_session *hosts,
		size_t n, json_t *secrets, char spec[65], bool *nothing,
		json_t **sent)
{
	struct ml_deliver_result *res = ml_xcalloc(n + 1, sizeof(*res));
	struct ml_deliver_opts dopt = { 0 };
	const char *tags[2] = { img->ref, NULL };
	size_t i;
	int rc;

	/* the balancers' certificate and password, before anything moves */
	json_decref(ro->lb_secrets);
	rc = ml_secrets_load_lb(&ro->lb_secrets, cfg->playbook,
				ctx->opt[OPT_SECRETS]);
	if (rc < 0) {
		free(res);
		return rc;
	}
	dopt.parallel = ro->parallel;
	dopt.progress = isatty(STDERR_FILENO);
	dopt.tags = tags;
	rc = ml_deliver(hosts, n, img, cache, &dopt, res);
	for (i = 0; i < n; i++) {
		if (sent && res[i].rc == 0 && res[i].blobs_sent > 0) {
			if (!*sent)
				*sent = json_object();
			json_object_set_new(
				*sent, hosts[i].target->name,
				json_pack("{s:i,s:I,s:I}", "blobs",
					  res[i].blobs_sent, "bytes",
					  (json_int_t)res[i].raw_bytes, "wire",
					  (json_int_t)res[i].wire_bytes));
			fprintf(ro->out ? ro->out : stdout,
				"  %-10s %-12s %-8s %d blob%s, %lld bytes "
				"(%lld on the wire)\n",
				hosts[i].target->name, "deliver", "ok",
				res[i].blobs_sent,
				res[i].blobs_sent == 1 ? "" : "s",
				(long long)res[i].raw_bytes,
				(long long)res[i].wire_bytes);
		}
		free(res[i].error);
	}
	free(res);
	if (rc < 0)
		return rc;
	ml_test_crash_point("after-delivery");
	ml_rollout_spec(spec, cfg, img->id);
	rc = ml_secrets_spec(spec, cfg, secrets, ctx->ledger_path);
	if (rc < 0)
		return rc;
	ro->cfg = cfg;
	ro->image_id = img->id;
	ro->spec = spec;
	ro->secrets = secrets;
	ro->hosts = hosts;
	ro->nhosts = n;
	ro->interrupted = &interrupted;
	return ml_rollout_observe(ro, nothing);
}

/* The blobs delivered before the revision existed, into its record. */
static void record_sent(struct ml_ledger *l, int64_t revision, json_t *sent)
{
	const char *host;
	json_t *v;

	json_object_foreach(sent, host, v) {
		char detail[128];

		snprintf(detail, sizeof(detail),
			 "%lld blobs, %lld bytes (%lld on the wire)",
			 (long long)json_integer_value(json_object_get(v,
								       "blobs")),
			 (long long)json_integer_value(json_object_get(v,
								       "bytes")),
			 (long long)json_integer_value(json_object_get(v,
								       "wire")));
		if (ml_ledger_event(l, revision, host, "deliver", "ok",
				    detail) < 0)
			ml_warn("cannot record the delivery to '%s': %s", host,
				ml_err_msg());
	}
}

/* The final table (or, with --json, the document) of a deploy. */
static void report(bool json, struct ml_rollout *ro, int64_t revision,
		   const char *outcome, const char *message,
		   const struct ml_deploy_req *req, int64_t ms)
{
	const struct ml_rollout_host *v;
	size_t n = 0, i;

	v = ml_rollout_hosts(ro, &n);
	if (json) {
		json_t *doc = json_object(), *arr = json_array();

		json_object_set_new(doc, "revision", revision
						       ? json_integer(revision)
						       : json_null());
		json_object_set_new(doc, "outcome", json_string(outcome));
		json_object_set_new(doc, "message", message
						      ? json_string(message)
						      : json_null());
		json_object_set_new(doc, "commit",
				    json_string(req->cfg->commit));
		json_object_set_new(doc, "image", json_string(req->img->id));
		json_object_set_new(doc, "ms", json_integer(ms));
		for (i = 0; i < n; i++)
			json_array_append_new(
				arr,
				json_pack("{s:s,s:b,s:b,s:o}", "host",
					  v[i].host, "changed", v[i].changed,
					  "updated", v[i].done, "error",
					  v[i].error ? json_string(v[i].error)
						     : json_null()));
		json_object_set_new(doc, "hosts", arr);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("\n");
		json_decref(doc);
		return;
	}
	if (!n)
		return;
	printf("\n%-12s %s\n", "HOST", "RESULT");
	for (i = 0; i < n; i++)
		printf("%-12s %s\n", v[i].host,
		       v[i].error     ? "failed, still on the previous state"
		       : v[i].done    ? "updated"
		       : v[i].changed ? "not reached"
				      : "unchanged");
}

int ml_deploy(struct ml_ctx *ctx, const struct ml_deploy_req *req)
{
	const struct ml_config *cfg = req->cfg;
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct ml_rollout ro = { 0 }, back = { 0 };
	struct ml_fleet_lock *lk = NULL;
	struct ml_revision rev = { 0 }, *prev = NULL;
	struct ml_config *pcfg = NULL;
	struct ml_image *pimg = NULL;
	struct ml_cache *pcache = NULL;
	struct sigaction sa = { 0 }, old_int, old_term;
	json_t *secrets = NULL, *sent = NULL;
	char spec[65], pspec[65], hash[ML_SHA256_HEX];
	char *who = ml_operator_name();
	char *layers = NULL, *desired = NULL, *reason = NULL;
	int64_t t0 = ml_mono_ms(), resume = 0;
	size_t n = 0, i;
	bool nothing = false, began = false;
	int rc, outcome = ML_OUTCOME_SUCCEEDED;
	bool json = ml_ctx_flag(ctx, OPT_JSON);
	FILE *hum = json ? stderr : stdout;
	const char *message = NULL;
	char msgbuf[1024];

	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		goto out;
	if (req->secrets)
		secrets = json_incref(req->secrets);
	else
		rc = ml_secrets_load(&secrets, cfg->playbook,
				     ctx->opt[OPT_SECRETS]);
	if (rc < 0)
		goto out;

	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	interrupted = 0;

	reason = req->kind == ML_REV_ROLLBACK
			 ? ml_xasprintf("rollback to revision %lld",
					(long long)req->rollback_of)
			 : ml_xasprintf("deploy of %.12s",
					cfg->commit ? cfg->commit : "?");
	{
		struct connect_job cj = { .cfg = cfg, .fo = &fo };
		pthread_t th;
		bool bg = pthread_create(&th, NULL, connect_main, &cj) == 0;

		rc = ml_fleet_lock_take(&lk, ctx, cfg, reason);
		if (bg) {
			pthread_join(th, NULL);
		} else if (rc == 0) {
			connect_main(&cj);
		}
		hosts = cj.hosts;
		n = cj.n;
		if (rc < 0)
			goto out;
		if (cj.rc < 0) {
			ml_err_restore(&cj.err);
			rc = cj.rc;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		if (hosts[i].rc < 0) {
			rc = ml_err_set(ML_EHOST, "%s is unreachable, nothing "
						  "was changed: %s",
					hosts[i].target->name, hosts[i].error);
			goto out;
		}
		/* from here every request carries the lease's fence */
		hosts[i].fence = ml_fleet_lock_fence(lk);
	}
	ml_sha256_hex(cfg->playbook_text, cfg->playbook_len, hash);
	resume = req->resume ? req->resume
			     : find_resumable(ctx->ledger, hash, req->img->id);
	if (resume && !req->resume)
		fprintf(hum, "finishing revision %lld, which a stopped run left "
		       "unfinished\n",
		       (long long)resume);
	close_stale(ctx->ledger, resume);

	ro.parallel = fo.parallel;
	ro.ledger = ctx->ledger;
	ro.out = hum;
	rc = roll(&ro, ctx, cfg, req->img, req->cache, hosts, n, secrets, spec,
		  &nothing, &sent);
	if (rc < 0)
		goto out;
	if (nothing && !resume) {
		fprintf(hum, "nothing to do: every host already runs this state "
		       "(image %.19s)\n", req->img->id);
		/* still make sure the balancers have their configuration */
		ro.quiet = true;
		rc = ml_rollout_run(&ro);
		if (rc == 0 && json)
			report(json, &ro, 0, "unchanged", NULL, req,
			       ml_mono_ms() - t0);
		goto out;
	}

	/* record the revision before anything changes */
	if (resume) {
		rev.number = resume;
	} else {
		layers = layers_json(req->img);
		{
			json_t *d = ml_config_to_json(cfg);

			desired = json_dumps(d, JSON_COMPACT |
							JSON_PRESERVE_ORDER);
			json_decref(d);
		}
		rev.commit = cfg->commit;
		rev.playbook = cfg->playbook_text;
		rev.playbook_hash = hash;
		rev.desired_json = desired;
		rev.image_id = req->img->id;
		rev.layers_json = layers;
		rev.who = who;
		rev.kind = req->kind;
		rev.rollback_of = req->rollback_of;
		rc = ml_ledger_begin(ctx->ledger, &rev);
		if (rc < 0)
			goto out;
	}
	began = true;
	ro.revision = rev.number;
	record_sent(ctx->ledger, rev.number, sent);
	fprintf(hum, "revision %lld: %s, %zu app host%s to change\n",
	       (long long)rev.number, reason, ro.changed,
	       ro.changed == 1 ? "" : "s");
	rc = ml_rollout_run(&ro);
	if (rc < 0 && ml_fleet_lock_lost(lk)) {
		/* someone else holds the fleet now: no rollback, no cleanup,
		 * nothing more sent to any host */
		rc = ML_ELOCKED;
		outcome = ML_OUTCOME_INTERRUPTED;
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
	} else if (rc == ML_EINTR) {
		outcome = ML_OUTCOME_INTERRUPTED;
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
	} else if (rc < 0) {
		snprintf(msgbuf, sizeof(msgbuf), "%s", ml_err_msg());
		message = msgbuf;
		outcome = ML_OUTCOME_FAILED;
		if (cfg->playbook->rollout.auto_rollback &&
		    ml_ledger_last_good(ctx->ledger, rev.number, &prev) == 0) {
			int rc2;
			bool none;

			fprintf(hum, "rolling back to revision %lld\n",
			       (long long)prev->number);
			fflush(hum); /* seen now, also in a file or a pipe */
			rc2 = ml_deploy_load_revision(&pcfg, &pimg, &pcache,
						      ctx, prev);
			if (rc2 == 0 && ml_fleet_lock_lost(lk))
				rc2 = ML_ELOCKED;
			if (rc2 == 0) {
				back.parallel = fo.parallel;
				back.ledger = ctx->ledger;
				back.out = hum;
				rc2 = roll(&back, ctx, pcfg, pimg, pcache,
					   hosts, n, secrets, pspec, &none,
					   NULL);
			}
			if (rc2 == 0) {
				back.revision = prev->number;
				/* the rollback's steps are part of this
				 * revision's record, between two marks */
				back.record_as = rev.number;
				rollback_mark(ctx->ledger, rev.number,
					      "started", prev->number);
				rc2 = ml_rollout_run(&back);
				if (rc2 < 0 && ml_fleet_lock_lost(lk))
					rc2 = ML_ELOCKED;
				rollback_mark(ctx->ledger, rev.number,
					      rc2 == 0 ? "ok" : "failed",
					      prev->number);
			}
			if (rc2 == 0) {
				outcome = ML_OUTCOME_ROLLED_BACK;
				ml_err_set(ML_EDEPLOY,
					   "%.700s; rolled back to revision "
					   "%lld",
					   message, (long long)prev->number);
				snprintf(msgbuf, sizeof(msgbuf), "%s",
					 ml_err_msg());
			} else {
				ml_err_prefix(ML_EDEPLOY,
					      "%.600s; the automatic rollback "
					      "to revision %lld failed too",
					      message, (long long)prev->number);
				snprintf(msgbuf, sizeof(msgbuf), "%s",
					 ml_err_msg());
			}
			rc = ML_EDEPLOY;
		} else {
			rc = ml_err_set(rc == ML_EDEPLOY ? rc : ML_EDEPLOY,
					"%s", msgbuf);
		}
	}
out:
	if (began) {
		struct ml_err_saved keep;

		ml_err_save(&keep);
		ml_test_crash_point("before-final-record");
		/* a lost lease: the new holder may have closed it already */
		if (ml_ledger_finish(ctx->ledger, rev.number, outcome,
				     message) < 0 &&
		    !ml_fleet_lock_known_lost(lk))
			ml_warn("cannot record the outcome of revision %lld: "
				"%s",
				(long long)rev.number, ml_err_msg());
		ml_err_restore(&keep);
		report(json, &ro, rev.number, ml_outcome_name(outcome),
		       message, req, ml_mono_ms() - t0);
		if (rc == 0)
			fprintf(hum, "revision %lld deployed to %zu host%s in %.1fs\n",
			       (long long)rev.number, ro.updated,
			       ro.updated == 1 ? "" : "s",
			       (double)(ml_mono_ms() - t0) / 1000);
		if (rc == 0) /* still under the lock, with the sessions */
			ml_prune_after_deploy(ctx, cfg, hosts, n, hum);
	}
	if (hosts && (began || nothing)) {
		/* Prometheus's targets and the balancers' revision map,
		 * still under the lock (the requests carry its fence) */
		char *tp = ml_metrics_targets_path(ctx->ledger_path,
						   cfg->playbook->app);
		struct ml_err_saved keep;

		ml_err_save(&keep);
		ml_metrics_refresh(cfg, hosts, n, tp, ctx->ledger,
				   began ? rev.number : 0, ml_mono_ms() - t0);
		ml_err_restore(&keep);
		free(tp);
	}
	ml_fleet_lock_drop(lk);
	ml_rollout_release(&ro);
	ml_rollout_release(&back);
	ml_fleet_close(hosts, n);
	if (reason) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	ml_revision_free(prev);
	ml_config_free(pcfg);
	ml_image_free(pimg);
	ml_cache_free(pcache);
	json_decref(secrets);
	json_decref(sent);
	free(layers);
	free(desired);
	free(reason);
	free(who);
	return rc;
}

int ml_deploy_load_revision(struct ml_config **cfg, struct ml_image **img,
			    struct ml_cache **cache, struct ml_ctx *ctx,
			    const struct ml_revision *rev)
{
	struct ml_config *c = NULL;
	int rc;

	*cfg = NULL;
	*img = NULL;
	*cache = NULL;
	if (!rev->image_id || !rev->playbook)
		return ml_err_set(ML_ENOTFOUND,
				  "revision %lld has no recorded image",
				  (long long)rev->number);
	rc = ml_load_config_with_playbook(&c, ctx, rev->playbook,
					  strlen(rev->playbook), rev->commit);
	if (rc == 0)
		rc = ml_image_prepare_recorded(img, cache, c, rev->number,
					       rev->image_id,
					       ctx->opt[OPT_LOCAL_DOCKER]);
	if (rc < 0) {
		ml_config_free(c);
		return rc;
	}
	*cfg = c;
	return 0;
}
