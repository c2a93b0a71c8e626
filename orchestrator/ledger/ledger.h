#ifndef ML_LEDGER_H
#define ML_LEDGER_H

/*
 * The rollout ledger: every revision and every per-host step, in SQLite
 * (WAL journal, synchronous=FULL, foreign keys on). The only place that
 * includes sqlite3.h. Schema changes are numbered migrations applied in
 * order inside one transaction each; a ledger whose schema is newer than
 * this binary knows is refused.
 */

struct ml_ledger;

enum ml_rev_kind {
	ML_REV_DEPLOY = 1,
	ML_REV_ROLLBACK, /* rollback_of names the revision restored */
};

enum ml_outcome {
	ML_OUTCOME_RUNNING = 1, /* begun, not finished (or the run crashed) */
	ML_OUTCOME_SUCCEEDED,
	ML_OUTCOME_FAILED,      /* failed, fleet left on the previous revision */
	ML_OUTCOME_ROLLED_BACK, /* failed and automatically rolled back */
	ML_OUTCOME_INTERRUPTED, /* stopped at a safe point or recovered */
};

struct ml_revision {
	int64_t number;       /* 1, 2, ... assigned by the ledger */
	char *commit;         /* full sha */
	char *playbook;       /* playbook bytes as deployed */
	char *playbook_hash;  /* sha256 hex of playbook */
	char *desired_json;   /* resolved desired state (ml_config_to_json) */
	char *image_id;       /* "sha256:..." or NULL until known */
	char *layers_json;    /* JSON array of layer digests, or NULL */
	char *who;            /* user@host of the operator */
	int64_t started_at;   /* unix seconds */
	int64_t finished_at;  /* 0 while running */
	enum ml_rev_kind kind;
	int64_t rollback_of;  /* 0 unless kind == ML_REV_ROLLBACK */
	enum ml_outcome outcome;
	char *message;        /* outcome detail, or NULL */
};

struct ml_event {
	int64_t id;
	int64_t revision;
	char *host;
	char *step;   /* "deliver", "start", "healthy", "lb-enable", ... */
	char *status; /* "ok", "failed", "started" */
	char *detail; /* may be NULL */
	int64_t at_ms; /* unix milliseconds */
};

/*
 * Default ledger path: $MLCTL_LEDGER, else $XDG_STATE_HOME/mlctl/ledger.db,
 * else ~/.local/state/mlctl/ledger.db (outside any git work tree). Empty
 * and (for the XDG and HOME variables) relative values are ignored. Caller
 * frees. NULL, with the message set, only when there is no home directory
 * at all.
 */
char *ml_ledger_default_path(void);

enum ml_ledger_mode {
	ML_LEDGER_RW = 0, /* create, migrate, read and write */
	ML_LEDGER_RO,     /* read only: never creates or migrates the file */
};

/*
 * Open or create the ledger at path, creating parent directories, and
 * migrate it to the current schema. ML_ELEDGER with a clear message when the
 * file is not a ledger, its schema is newer than ours ("written by a newer
 * mlctl (schema N; this mlctl knows up to M): upgrade mlctl"), it is locked
 * by another process for longer than the busy timeout, or it is read-only
 * and needs a write. Parent directories are created mode 0700 and a new
 * ledger file mode 0600.
 */
int ml_ledger_open(struct ml_ledger **out, const char *path);

/*
 * ml_ledger_open with a mode. ML_LEDGER_RO is for verbs that only read
 * (history, status): ML_ENOTFOUND when the file does not exist, and an
 * ML_ELEDGER "is read-only" error from any write or from a ledger that
 * needs a migration. ML_LEDGER_RW on a file we may not write also opens it
 * read-only (see ml_ledger_readonly); writes then fail the same way.
 * The busy timeout is 5000 ms, or $MLCTL_LEDGER_BUSY_MS.
 */
int ml_ledger_open_mode(struct ml_ledger **out, const char *path,
			enum ml_ledger_mode mode);
void ml_ledger_free(struct ml_ledger *l);

/* Whether writes will be refused (opened RO, or the file is not writable). */
bool ml_ledger_readonly(const struct ml_ledger *l);

/* Schema version of the open ledger and the one this binary writes. */
int ml_ledger_schema_version(const struct ml_ledger *l);
int ml_ledger_schema_current(void);

/*
 * Record a new revision. Reads every field of rev except number,
 * finished_at and outcome (set to RUNNING); writes the assigned number to
 * rev->number. started_at 0 means now (written back). A rollback must name
 * an existing revision (ML_ENOTFOUND otherwise). Committed durably before
 * returning.
 */
int ml_ledger_begin(struct ml_ledger *l, struct ml_revision *rev);

/*
 * Set a revision's final outcome (not RUNNING), message (may be NULL) and
 * finish time (now). Only a running revision can finish: ML_ENOTFOUND when
 * it is absent, ML_EFAIL when it has already finished.
 */
int ml_ledger_finish(struct ml_ledger *l, int64_t number,
		     enum ml_outcome outcome, const char *message);

/* Record the image of a revision once it is known. */
int ml_ledger_set_image(struct ml_ledger *l, int64_t number,
			const char *image_id, const char *layers_json);

/* Append one per-host step event, committed before returning. host, step
 * and status are required, detail may be NULL; at_ms is now. ML_ENOTFOUND
 * when the revision is absent. */
int ml_ledger_event(struct ml_ledger *l, int64_t number, const char *host,
		    const char *step, const char *status, const char *detail);

/* Revision number; ML_ENOTFOUND if absent. *out freed with
 * ml_revision_free. */
int ml_ledger_get(struct ml_ledger *l, int64_t number,
		  struct ml_revision **out);

/* Newest first, at most limit (0: all). Free with ml_revisions_free. */
int ml_ledger_list(struct ml_ledger *l, size_t limit,
		   struct ml_revision **out, size_t *n);

/* The newest revision with outcome SUCCEEDED before `before` (0: any), or
 * ML_ENOTFOUND. */
int ml_ledger_last_good(struct ml_ledger *l, int64_t before,
			struct ml_revision **out);

/* Events of a revision in order. Free with ml_events_free. */
int ml_ledger_events(struct ml_ledger *l, int64_t number,
		     struct ml_event **out, size_t *n);

/*
 * Pin (pin true) or unpin revision number: a pinned revision's image is
 * kept on every host and in the controller's cache by prune. Idempotent;
 * *changed says whether the pin was added or removed by this call. who is
 * the operator (required to pin). ML_ENOTFOUND when the revision is absent.
 */
int ml_ledger_pin(struct ml_ledger *l, int64_t number, const char *who,
		  bool pin, bool *changed);

/* The pinned revision numbers, ascending; *out freed with free(). */
int ml_ledger_pins(struct ml_ledger *l, int64_t **out, size_t *n);

/*
 * Record that prune removed image_id from host (pruned true), or that the
 * host holds it again (false: the record is dropped). Committed before
 * returning.
 */
int ml_ledger_set_pruned(struct ml_ledger *l, const char *image_id,
			 const char *host, bool pruned);

/* Hosts from which image_id was pruned and not delivered again, sorted;
 * *out (each string and the array) freed with free(). */
int ml_ledger_pruned_hosts(struct ml_ledger *l, const char *image_id,
			   char ***out, size_t *n);

void ml_revision_release(struct ml_revision *rev);
void ml_revision_free(struct ml_revision *rev);
void ml_revisions_free(struct ml_revision *v, size_t n);
void ml_events_free(struct ml_event *v, size_t n);

const char *ml_outcome_name(enum ml_outcome o);
const char *ml_rev_kind_name(enum ml_rev_kind k);

#endif
