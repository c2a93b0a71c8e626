/*
 * The rollout ledger over SQLite (see ledger.h); the only file of mlctl that
 * includes sqlite3.h.
 *
 * Invariants:
 * - A file is an mlctl ledger when PRAGMA application_id is ML_LEDGER_APP_ID
 *   ("mlct"). Anything else that SQLite can read is refused untouched, so a
 *   mistyped --ledger path never alters another program's database.
 * - PRAGMA user_version is the schema version and the authority; the one
 *   row of table meta repeats it and must agree. Migration N runs in its own
 *   BEGIN IMMEDIATE transaction that also sets user_version to N, so a crash
 *   leaves the ledger at N - 1 or N, never in between. A schema newer than
 *   ML_LEDGER_SCHEMA is refused.
 * - Every write is one BEGIN IMMEDIATE ... COMMIT, done before the function
 *   returns, with journal_mode=WAL and synchronous=FULL: what a caller was
 *   told is recorded survives kill -9 and power loss.
 * - Revision numbers are max + 1, taken inside the inserting transaction;
 *   rows are never deleted, so numbers are never reused.
 * - All SQL is constant text; data only ever travels in bound parameters.
 * - Calls on one struct ml_ledger are serialized by its mutex, so the apply
 *   engine may record events from several threads.
 *
 * Sizes: a ledger holds one row per rollout (thousands over years) and a
 * few events per host and revision. The playbook and desired state are
 * stored whole, typically a few KiB each; list reads them all, which is
 * fine at that scale.
 */
#include "common/ml.h"
#include "orchestrator/ledger/ledger.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ML_LEDGER_SCHEMA 2
#define ML_LEDGER_APP_ID 0x6d6c6374 /* "mlct" */
#define ML_LEDGER_BUSY_MS_DEFAULT 5000
#define ML_LEDGER_BUSY_MS_MAX 3600000

#define STR_(x) #x
#define STR(x) STR_(x)

struct ml_ledger {
	sqlite3 *db;
	char *path;
	int schema;
	bool readonly;       /* writes are refused */
	bool readonly_asked; /* ... because the caller opened it that way */
	pthread_mutex_t mutex;
};

/*
 * Migration i + 1 is migrations[i]. Each text ends by setting user_version
 * to its own number (checked after it runs) and keeps table meta in step.
 * Append only: a released migration is never edited.
 */
static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE meta (\n"
	"	id INTEGER PRIMARY KEY CHECK (id = 1),\n"
	"	application TEXT NOT NULL CHECK (application = 'mlctl'),\n"
	"	schema_version INTEGER NOT NULL,\n"
	"	created_at INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE TABLE revisions (\n"
	"	number INTEGER PRIMARY KEY CHECK (number > 0),\n"
	"	commit_sha TEXT NOT NULL CHECK (commit_sha <> ''),\n"
	"	playbook TEXT NOT NULL,\n"
	"	playbook_hash TEXT NOT NULL CHECK (playbook_hash <> ''),\n"
	"	desired_json TEXT NOT NULL,\n"
	"	image_id TEXT,\n"
	"	layers_json TEXT,\n"
	"	who TEXT NOT NULL CHECK (who <> ''),\n"
	"	started_at INTEGER NOT NULL CHECK (started_at >= 0),\n"
	"	finished_at INTEGER,\n"
	"	kind TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),\n"
	"	rollback_of INTEGER REFERENCES revisions (number),\n"
	"	outcome TEXT NOT NULL CHECK (outcome IN ('running',\n"
	"	    'succeeded', 'failed', 'rolled-back', 'interrupted')),\n"
	"	message TEXT,\n"
	"	CHECK ((kind = 'rollback') = (rollback_of IS NOT NULL)),\n"
	"	CHECK (rollback_of IS NULL OR rollback_of < number),\n"
	"	CHECK ((outcome = 'running') = (finished_at IS NULL))\n"
	") STRICT;\n"
	"CREATE TABLE events (\n"
	"	id INTEGER PRIMARY KEY,\n"
	"	revision INTEGER NOT NULL REFERENCES revisions (number),\n"
	"	host TEXT NOT NULL,\n"
	"	step TEXT NOT NULL,\n"
	"	status TEXT NOT NULL,\n"
	"	detail TEXT,\n"
	"	at_ms INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE INDEX events_revision ON events (revision, id);\n"
	"INSERT INTO meta VALUES (1, 'mlctl', 1,\n"
	"	CAST(strftime('%s', 'now') AS INTEGER));\n"
	"PRAGMA application_id = " STR(ML_LEDGER_APP_ID) ";\n"
	"PRAGMA user_version = 1;\n",
	/* 2: pinned revisions, and where prune removed an image */
	"CREATE TABLE pins (\n"
	"	revision INTEGER PRIMARY KEY REFERENCES revisions (number),\n"
	"	who TEXT NOT NULL CHECK (who <> ''),\n"
	"	pinned_at INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE TABLE pruned (\n"
	"	image_id TEXT NOT NULL CHECK (image_id <> ''),\n"
	"	host TEXT NOT NULL CHECK (host <> ''),\n"
	"	at INTEGER NOT NULL,\n"
	"	PRIMARY KEY (image_id, host)\n"
	") STRICT;\n"
	"UPDATE meta SET schema_version = 2;\n"
	"PRAGMA user_version = 2;\n",
};

_Static_assert(ML_ARRAY_SIZE(migrations) == ML_LEDGER_SCHEMA,
	       "one migration per schema version");

static const char *const outcome_names[] = {
	[ML_OUTCOME_RUNNING] = "running",
	[ML_OUTCOME_SUCCEEDED] = "succeeded",
	[ML_OUTCOME_FAILED] = "failed",
	[ML_OUTCOME_ROLLED_BACK] = "rolled-back",
	[ML_OUTCOME_INTERRUPTED] = "interrupted",
};

static const char *const kind_names[] = {
	[ML_REV_DEPLOY] = "deploy",
	[ML_REV_ROLLBACK] = "rollback",
};

const char *ml_outcome_name(enum ml_outcome o)
{
	if ((size_t)o >= ML_ARRAY_SIZE(outcome_names) || !outcome_names[o])
		return "unknown";
	return outcome_names[o];
}

const char *ml_rev_kind_name(enum ml_rev_kind k)
{
	if ((size_t)k >= ML_ARRAY_SIZE(kind_names) || !kind_names[k])
		return "unknown";
	return kind_names[k];
}

static int outcome_parse(const char *s)
{
	size_t i;

	for (i = 1; s && i < ML_ARRAY_SIZE(outcome_names); i++)
		if (!strcmp(s, outcome_names[i]))
			return (int)i;
	return -1;
}

static int kind_parse(const char *s)
{
	size_t i;

	for (i = 1; s && i < ML_ARRAY_SIZE(kind_names); i++)
		if (!strcmp(s, kind_names[i]))
			return (int)i;
	return -1;
}

int ml_ledger_schema_current(void)
{
	return ML_LEDGER_SCHEMA;
}

int ml_ledger_schema_version(const struct ml_ledger *l)
{
	return l->schema;
}

bool ml_ledger_readonly(const struct ml_ledger *l)
{
	return l->readonly;
}

/* ---- errors ---- */

static int ledger_readonly_err(struct ml_ledger *l, const char *what)
{
	return ml_err_set(ML_ELEDGER, "ledger '%s' is read-only: cannot %s; %s",
			  l->path, what,
			  l->readonly_asked ?
				  "it was opened for reading only" :
				  "check the permissions of the file and its "
				  "directory");
}

/*
 * Turn a failed SQLite call into our code and message. Must run before any
 * other call on the connection, which would replace sqlite3_errmsg().
 */
static int ledger_fail(struct ml_ledger *l, int rc, const char *what)
{
	int sys = sqlite3_system_errno(l->db);

	if (rc == SQLITE_READONLY_DIRECTORY || rc == SQLITE_READONLY_CANTINIT)
		return ml_err_set(ML_ELEDGER,
				  "cannot read ledger '%s': SQLite must create "
				  "'%s-shm' beside it and the directory is not "
				  "writable",
				  l->path, l->path);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return ml_err_set(ML_ELEDGER,
				  "ledger '%s' is locked by another mlctl "
				  "process; try again",
				  l->path);
	case SQLITE_READONLY:
		return ledger_readonly_err(l, what);
	case SQLITE_NOTADB:
		return ml_err_set(ML_ELEDGER,
				  "'%s' is not an mlctl ledger: file is not a "
				  "database",
				  l->path);
	case SQLITE_FULL:
		return ml_err_set(ML_ENOSPACE,
				  "ledger '%s': cannot %s: disk is full",
				  l->path, what);
	case SQLITE_CORRUPT:
		return ml_err_set(ML_ELEDGER,
				  "ledger '%s' is damaged: cannot %s: %s; "
				  "restore it from a backup",
				  l->path, what, sqlite3_errmsg(l->db));
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		if (sys)
			return ml_err_errno(ML_ELEDGER, sys,
					    "ledger '%s': cannot %s: %s",
					    l->path, what,
					    sqlite3_errmsg(l->db));
		break;
	}
	return ml_err_set(ML_ELEDGER, "ledger '%s': cannot %s: %s", l->path,
			  what, sqlite3_errmsg(l->db));
}

/* ---- statements ---- */

static int prepare(struct ml_ledger *l, sqlite3_stmt **out, const char *sql,
		   const char *what)
{
	int rc = sqlite3_prepare_v2(l->db, sql, -1, out, NULL);

	if (rc != SQLITE_OK) {
		*out = NULL;
		return ledger_fail(l, rc, what);
	}
	return 0;
}

/* Bind a string or, for NULL, SQL NULL. The string must outlive the step. */
static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (!s)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Step a statement that returns nothing. */
static int step_done(struct ml_ledger *l, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return ledger_fail(l, rc, what);
	return 0;
}

/* Run a constant query returning one integer (PRAGMA x, count(*)). */
static int query_int(struct ml_ledger *l, int64_t *out, const char *sql,
		     const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret, rc;

	ret = prepare(l, &st, sql, what);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	*out = sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	return ret;
}

static char *column_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	s = sqlite3_column_text(st, i);
	if (!s) {
		fprintf(stderr, "fatal: out of memory reading the ledger\n");
		abort();
	}
	return ml_xstrdup((const char *)s);
}

/* ---- transactions ---- */

static int tx_begin(struct ml_ledger *l, const char *what)
{
	int rc;

	if (l->readonly)
		return ledger_readonly_err(l, what);
	rc = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return ledger_fail(l, rc, what);
	return 0;
}

/* Commit when ret is 0, else (or when the commit fails) roll back. */
static int tx_end(struct ml_ledger *l, int ret, const char *what)
{
	int rc;

	if (ret == 0) {
		rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		ret = ledger_fail(l, rc, what);
	}
	if (!sqlite3_get_autocommit(l->db))
		sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* ---- paths ---- */

/* Absolute and non-empty, as the XDG spec asks of its variables. */
static const char *env_dir(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] == '/' ? v : NULL;
}

/*
 * The ledger is per-user state that outlives any checkout, so it goes in
 * $XDG_STATE_HOME ("history" is the spec's own example) and never in the
 * user's repository: there it would make the work tree dirty on every
 * deploy and could be lost to `git clean`.
 */
char *ml_ledger_default_path(void)
{
	const char *v = getenv("MLCTL_LEDGER");
	struct passwd pw, *res = NULL;
	char pwbuf[4096];

	if (v && *v)
		return ml_xstrdup(v);
	v = env_dir("XDG_STATE_HOME");
	if (v)
		return ml_xasprintf("%s/mlctl/ledger.db", v);
	v = env_dir("HOME");
	if (!v && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 &&
	    res && res->pw_dir && res->pw_dir[0] == '/')
		v = res->pw_dir;
	if (v)
		return ml_xasprintf("%s/.local/state/mlctl/ledger.db", v);
	ml_err_set(ML_ELEDGER, "cannot choose a ledger path: no home "
			       "directory; set MLCTL_LEDGER");
	return NULL;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p of the directories above path, each new one mode 0700. */
static int make_parents(const char *path)
{
	char *p = ml_xstrdup(path);
	char *slash = strrchr(p, '/');
	char *s;
	int ret = 0;

	if (!slash || slash == p)
		goto out;
	*slash = '\0';
	for (s = p + 1;; s++) {
		bool last = *s == '\0';

		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST && !is_dir(p)) {
			ret = ml_err_errno(ML_ELEDGER, errno,
					   "cannot create directory '%s' for "
					   "ledger '%s'",
					   p, path);
			goto out;
		}
		if (last)
			break;
		*s = '/';
	}
out:
	free(p);
	return ret;
}

/*
 * Check the file before SQLite sees it: it must be a regular file, and when
 * we create it we do so with mode 0600 (SQLite would use 0644 & ~umask; its
 * -wal and -shm files copy the mode of the database).
 */
static int prepare_file(const char *path, bool create)
{
	struct stat st;
	int fd;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return ml_err_set(ML_ELEDGER,
					  "ledger '%s' is not a regular file",
					  path);
		return 0;
	}
	if (errno != ENOENT)
		return ml_err_errno(ML_ELEDGER, errno,
				    "cannot open ledger '%s'", path);
	if (!create)
		return ml_err_set(ML_ENOTFOUND, "ledger '%s' does not exist",
				  path);
	if (make_parents(path) < 0)
		return ML_ELEDGER;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST) /* created meanwhile by another mlctl */
			return 0;
		return ml_err_errno(ML_ELEDGER, errno,
				    "cannot create ledger '%s'", path);
	}
	if (fchmod(fd, 0600) < 0) {
		int e = errno;

		close(fd);
		return ml_err_errno(ML_ELEDGER, e, "cannot create ledger '%s'",
				    path);
	}
	close(fd);
	return 0;
}

/* MLCTL_LEDGER_BUSY_MS: how long to wait for another writer (tests). */
static int busy_ms(int *out)
{
	const char *v = getenv("MLCTL_LEDGER_BUSY_MS");
	char *end;
	long n;

	*out = ML_LEDGER_BUSY_MS_DEFAULT;
	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 0 || n > ML_LEDGER_BUSY_MS_MAX)
		return ml_err_set(ML_EUSAGE,
				  "MLCTL_LEDGER_BUSY_MS='%s' is not a number "
				  "of milliseconds from 0 to %d",
				  v, ML_LEDGER_BUSY_MS_MAX);
	*out = (int)n;
	return 0;
}

/* ---- schema ---- */

/*
 * Read and judge the identity and version of the open file: *version is 0
 * for an empty file (to be initialized), else its schema. Refuses another
 * program's database, a newer schema, and a ledger whose meta row disagrees
 * with its header. Writes nothing.
 */
static int check_identity(struct ml_ledger *l, int *version)
{
	const char *what = "read its schema";
	bool own_tx = sqlite3_get_autocommit(l->db);
	sqlite3_stmt *st = NULL;
	int64_t app, ver, nobj, mver;
	const char *app_name;
	int ret, rc;

	/* One snapshot for all reads: a migration may commit meanwhile. */
	if (own_tx) {
		rc = sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return ledger_fail(l, rc, what);
	}
	ret = prepare(l, &st,
		      "SELECT (SELECT application_id FROM "
		      "pragma_application_id), (SELECT user_version FROM "
		      "pragma_user_version), (SELECT count(*) FROM "
		      "sqlite_schema)",
		      what);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	app = sqlite3_column_int64(st, 0);
	ver = sqlite3_column_int64(st, 1);
	nobj = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	st = NULL;
	if (app == 0 && ver == 0 && nobj == 0) {
		*version = 0;
		goto out;
	}
	if (app != ML_LEDGER_APP_ID) {
		if (app == 0)
			ret = ml_err_set(ML_ELEDGER,
					 "'%s' is not an mlctl ledger: it is "
					 "another program's SQLite database",
					 l->path);
		else
			ret = ml_err_set(ML_ELEDGER,
					 "'%s' is not an mlctl ledger: it is "
					 "another program's SQLite database "
					 "(application id 0x%08" PRIx64 ")",
					 l->path, (uint64_t)(uint32_t)app);
		goto out;
	}
	if (ver > ML_LEDGER_SCHEMA || ver < 0) {
		ret = ml_err_set(ML_ELEDGER,
				 "ledger '%s' was written by a newer mlctl "
				 "(schema %" PRId64 "; this mlctl knows up to "
				 "%d): upgrade mlctl",
				 l->path, ver, ML_LEDGER_SCHEMA);
		goto out;
	}
	if (ver == 0) {
		ret = ml_err_set(ML_ELEDGER,
				 "ledger '%s' is damaged: it has an mlctl "
				 "application id but no schema",
				 l->path);
		goto out;
	}
	ret = prepare(l, &st,
		      "SELECT application, schema_version FROM meta "
		      "WHERE id = 1",
		      what);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ?
			      ml_err_set(ML_ELEDGER,
					 "ledger '%s' is damaged: its meta "
					 "table is empty",
					 l->path) :
			      ledger_fail(l, rc, what);
		goto out;
	}
	app_name = (const char *)sqlite3_column_text(st, 0);
	mver = sqlite3_column_int64(st, 1);
	if (!app_name || strcmp(app_name, "mlctl") || mver != ver) {
		ret = ml_err_set(ML_ELEDGER,
				 "ledger '%s' is damaged: its header says "
				 "schema %" PRId64 " but its meta table says "
				 "%" PRId64,
				 l->path, ver, mver);
		goto out;
	}
	*version = (int)ver;
out:
	sqlite3_finalize(st);
	if (own_tx && !sqlite3_get_autocommit(l->db))
		sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
	return ret;
}

/*
 * Bring the schema to ML_LEDGER_SCHEMA, one transaction per migration.
 * The version is read again under the write lock, as another mlctl may
 * have migrated the file since we looked.
 */
static int migrate_one(struct ml_ledger *l, int target)
{
	const char *what = "upgrade its schema";
	int64_t after;
	int ret, rc, v;

	ret = tx_begin(l, what);
	if (ret < 0)
		return ret;
	ret = check_identity(l, &v);
	if (ret < 0)
		goto out;
	if (v >= target) { /* another mlctl got there first */
		l->schema = v;
		goto out;
	}
	rc = sqlite3_exec(l->db, migrations[target - 1], NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = query_int(l, &after, "PRAGMA user_version", what);
	if (ret < 0)
		goto out;
	if (after != target)
		BUG("ledger migration %d left user_version %" PRId64, target,
		    after);
	l->schema = target;
out:
	return tx_end(l, ret, what);
}

static int migrate(struct ml_ledger *l)
{
	int ret;

	while (l->schema < ML_LEDGER_SCHEMA) {
		if (l->readonly)
			return ml_err_set(ML_ELEDGER,
					  "ledger '%s' is read-only: it has "
					  "schema %d and needs %d; open it "
					  "once with write access",
					  l->path, l->schema,
					  ML_LEDGER_SCHEMA);
		ret = migrate_one(l, l->schema + 1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Connection settings; the journal mode is stored in the file. */
static int configure(struct ml_ledger *l)
{
	const char *what = "set it up";
	sqlite3_stmt *st = NULL;
	const char *mode;
	int64_t fk;
	int ret, rc;

	if (!l->readonly) {
		ret = prepare(l, &st, "PRAGMA journal_mode = WAL", what);
		if (ret < 0)
			goto out;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			ret = ledger_fail(l, rc, what);
			goto out;
		}
		mode = (const char *)sqlite3_column_text(st, 0);
		if (!mode || strcmp(mode, "wal")) {
			ret = ml_err_set(ML_ELEDGER,
					 "ledger '%s' cannot use a write-ahead "
					 "log (journal mode is '%s'): keep it "
					 "on a local file system",
					 l->path, mode ? mode : "?");
			goto out;
		}
	}
	rc = sqlite3_exec(l->db,
			  "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = query_int(l, &fk, "PRAGMA foreign_keys", what);
	if (ret < 0)
		goto out;
	if (fk != 1)
		BUG("this SQLite cannot enforce foreign keys");
out:
	sqlite3_finalize(st);
	return ret;
}

int ml_ledger_open_mode(struct ml_ledger **out, const char *path,
			enum ml_ledger_mode mode)
{
	struct ml_ledger *l = NULL;
	int flags, ret, rc, ms, v;

	*out = NULL;
	if (!path || !*path)
		return ml_err_set(ML_EUSAGE, "the ledger path is empty");
	ret = busy_ms(&ms);
	if (ret < 0)
		return ret;
	ret = prepare_file(path, mode == ML_LEDGER_RW);
	if (ret < 0)
		return ret;

	l = ml_xcalloc(1, sizeof(*l));
	l->path = ml_xstrdup(path);
	if (pthread_mutex_init(&l->mutex, NULL))
		BUG("pthread_mutex_init failed");
	l->readonly_asked = mode == ML_LEDGER_RO;
	flags = l->readonly_asked ? SQLITE_OPEN_READONLY :
				    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	flags |= SQLITE_OPEN_FULLMUTEX;
	rc = sqlite3_open_v2(path, &l->db, flags, NULL);
	if (!l->db) {
		fprintf(stderr, "fatal: out of memory opening the ledger\n");
		abort();
	}
	sqlite3_extended_result_codes(l->db, 1);
	if (rc != SQLITE_OK) {
		ret = ledger_fail(l, rc, "open it");
		goto out;
	}
	/* A ledger file from elsewhere must not run code or bypass checks. */
	sqlite3_db_config(l->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(l->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_busy_timeout(l->db, ms);
	/* SQLite opens a file it may not write read-only, as we want. */
	l->readonly = sqlite3_db_readonly(l->db, "main") == 1;

	ret = check_identity(l, &v);
	if (ret < 0)
		goto out;
	l->schema = v;
	ret = configure(l);
	if (ret < 0)
		goto out;
	ret = migrate(l);
	if (ret < 0)
		goto out;
	*out = l;
	l = NULL;
out:
	ml_ledger_free(l);
	return ret;
}

int ml_ledger_open(struct ml_ledger **out, const char *path)
{
	return ml_ledger_open_mode(out, path, ML_LEDGER_RW);
}

void ml_ledger_free(struct ml_ledger *l)
{
	if (!l)
		return;
	sqlite3_close_v2(l->db);
	pthread_mutex_destroy(&l->mutex);
	free(l->path);
	free(l);
}

/* ---- writes ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does revision number exist? 1 yes, 0 no, negative on error. */
static int revision_exists(struct ml_ledger *l, int64_t number,
			   const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret, rc;

	ret = prepare(l, &st, "SELECT 1 FROM revisions WHERE number = ?1",
		      what);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc != SQLITE_DONE)
		ret = ledger_fail(l, rc, what);
out:
	sqlite3_finalize(st);
	return ret;
}

static int no_revision(struct ml_ledger *l, int64_t number)
{
	return ml_err_set(ML_ENOTFOUND,
			  "revision %" PRId64 " is not in ledger '%s'", number,
			  l->path);
}

static int check_revision_arg(const struct ml_revision *rev)
{
	static const char *const missing = "ledger: a new revision needs %s";

	if (!rev->commit || !*rev->commit)
		return ml_err_set(ML_EFAIL, missing, "a commit");
	if (!rev->playbook || !rev->playbook_hash || !*rev->playbook_hash)
		return ml_err_set(ML_EFAIL, missing, "a playbook and its hash");
	if (!rev->desired_json)
		return ml_err_set(ML_EFAIL, missing, "its desired state");
	if (!rev->who || !*rev->who)
		return ml_err_set(ML_EFAIL, missing, "an operator (who)");
	if (rev->started_at < 0)
		return ml_err_set(ML_EFAIL, missing, "a start time >= 0");
	if (rev->kind == ML_REV_DEPLOY && rev->rollback_of != 0)
		return ml_err_set(ML_EFAIL, "ledger: a deploy cannot be a "
					    "rollback of another revision");
	if (rev->kind == ML_REV_ROLLBACK && rev->rollback_of <= 0)
		return ml_err_set(ML_EFAIL, missing,
				  "the revision it rolls back to");
	if (rev->kind != ML_REV_DEPLOY && rev->kind != ML_REV_ROLLBACK)
		return ml_err_set(ML_EFAIL, "ledger: unknown revision kind %d",
				  (int)rev->kind);
	return 0;
}

int ml_ledger_begin(struct ml_ledger *l, struct ml_revision *rev)
{
	static const char *const what = "record a new revision";
	sqlite3_stmt *st = NULL;
	int64_t number = 0, started;
	int ret, rc;

	ret = check_revision_arg(rev);
	if (ret < 0)
		return ret;
	started = rev->started_at ? rev->started_at : (int64_t)time(NULL);

	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	if (rev->kind == ML_REV_ROLLBACK) {
		ret = revision_exists(l, rev->rollback_of, what);
		if (ret == 0)
			ret = ml_err_set(ML_ENOTFOUND,
					 "cannot roll back to revision %" PRId64
					 ": it is not in ledger '%s'",
					 rev->rollback_of, l->path);
		if (ret < 0)
			goto out;
	}
	ret = query_int(l, &number,
			"SELECT coalesce(max(number), 0) + 1 FROM revisions",
			what);
	if (ret < 0)
		goto out;
	ret = prepare(l, &st,
		      "INSERT INTO revisions (number, commit_sha, playbook, "
		      "playbook_hash, desired_json, image_id, layers_json, "
		      "who, started_at, finished_at, kind, rollback_of, "
		      "outcome, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
		      "?8, ?9, NULL, ?10, ?11, 'running', ?12)",
		      what);
	if (ret < 0)
		goto out;
	if ((rc = sqlite3_bind_int64(st, 1, number)) ||
	    (rc = bind_text(st, 2, rev->commit)) ||
	    (rc = bind_text(st, 3, rev->playbook)) ||
	    (rc = bind_text(st, 4, rev->playbook_hash)) ||
	    (rc = bind_text(st, 5, rev->desired_json)) ||
	    (rc = bind_text(st, 6, rev->image_id)) ||
	    (rc = bind_text(st, 7, rev->layers_json)) ||
	    (rc = bind_text(st, 8, rev->who)) ||
	    (rc = sqlite3_bind_int64(st, 9, started)) ||
	    (rc = bind_text(st, 10, ml_rev_kind_name(rev->kind))) ||
	    (rc = rev->kind == ML_REV_ROLLBACK ?
			  sqlite3_bind_int64(st, 11, rev->rollback_of) :
			  sqlite3_bind_null(st, 11)) ||
	    (rc = bind_text(st, 12, rev->message))) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = step_done(l, st, what);
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
	if (ret == 0) {
		rev->number = number;
		rev->started_at = started;
		rev->finished_at = 0;
		rev->outcome = ML_OUTCOME_RUNNING;
	}
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_finish(struct ml_ledger *l, int64_t number,
		     enum ml_outcome outcome, const char *message)
{
	static const char *const what = "record the outcome of a revision";
	sqlite3_stmt *st = NULL;
	int ret, rc;
	int o;

	if (outcome <= ML_OUTCOME_RUNNING || outcome > ML_OUTCOME_INTERRUPTED)
		return ml_err_set(ML_EFAIL,
				  "ledger: %d is not a final outcome",
				  (int)outcome);

	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	ret = prepare(l, &st,
		      "SELECT outcome FROM revisions WHERE number = ?1", what);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = no_revision(l, number);
		goto out;
	} else if (rc != SQLITE_ROW) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	o = outcome_parse((const char *)sqlite3_column_text(st, 0));
	if (o != ML_OUTCOME_RUNNING) {
		ret = ml_err_set(ML_EFAIL,
				 "revision %" PRId64 " in ledger '%s' has "
				 "already finished (%s)",
				 number, l->path,
				 ml_outcome_name((enum ml_outcome)o));
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;

	ret = prepare(l, &st,
		      "UPDATE revisions SET outcome = ?2, message = ?3, "
		      "finished_at = ?4 WHERE number = ?1",
		      what);
	if (ret < 0)
		goto out;
	if ((rc = sqlite3_bind_int64(st, 1, number)) ||
	    (rc = bind_text(st, 2, ml_outcome_name(outcome))) ||
	    (rc = bind_text(st, 3, message)) ||
	    (rc = sqlite3_bind_int64(st, 4, (int64_t)time(NULL)))) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = step_done(l, st, what);
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_set_image(struct ml_ledger *l, int64_t number,
			const char *image_id, const char *layers_json)
{
	static const char *const what = "record the image of a revision";
	sqlite3_stmt *st = NULL;
	int ret, rc;

	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	ret = prepare(l, &st,
		      "UPDATE revisions SET image_id = ?2, layers_json = ?3 "
		      "WHERE number = ?1",
		      what);
	if (ret < 0)
		goto out;
	if ((rc = sqlite3_bind_int64(st, 1, number)) ||
	    (rc = bind_text(st, 2, image_id)) ||
	    (rc = bind_text(st, 3, layers_json))) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = step_done(l, st, what);
	if (ret == 0 && sqlite3_changes(l->db) == 0)
		ret = no_revision(l, number);
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_event(struct ml_ledger *l, int64_t number, const char *host,
		    const char *step, const char *status, const char *detail)
{
	static const char *const what = "record an event";
	sqlite3_stmt *st = NULL;
	int ret, rc;

	if (!host || !step || !status)
		return ml_err_set(ML_EFAIL, "ledger: an event needs a host, "
					    "a step and a status");

	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	ret = revision_exists(l, number, what);
	if (ret == 0)
		ret = no_revision(l, number);
	if (ret < 0)
		goto out;
	ret = prepare(l, &st,
		      "INSERT INTO events (revision, host, step, status, "
		      "detail, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		      what);
	if (ret < 0)
		goto out;
	if ((rc = sqlite3_bind_int64(st, 1, number)) ||
	    (rc = bind_text(st, 2, host)) || (rc = bind_text(st, 3, step)) ||
	    (rc = bind_text(st, 4, status)) ||
	    (rc = bind_text(st, 5, detail)) ||
	    (rc = sqlite3_bind_int64(st, 6, now_ms()))) {
		ret = ledger_fail(l, rc, what);
		goto out;
	}
	ret = step_done(l, st, what);
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

/* ---- reads ---- */

#define REV_COLUMNS                                                        \
	"number, commit_sha, playbook, playbook_hash, desired_json, "      \
	"image_id, layers_json, who, started_at, finished_at, kind, "      \
	"rollback_of, outcome, message"

/* Fill rev from a row of REV_COLUMNS. */
static int read_revision(struct ml_ledger *l, sqlite3_stmt *st,
			 struct ml_revision *rev)
{
	const char *s;
	int kind, outcome;

	memset(rev, 0, sizeof(*rev));
	rev->number = sqlite3_column_int64(st, 0);
	s = (const char *)sqlite3_column_text(st, 10);
	kind = kind_parse(s);
	s = (const char *)sqlite3_column_text(st, 12);
	outcome = outcome_parse(s);
	if (kind < 0 || outcome < 0)
		return ml_err_set(ML_ELEDGER,
				  "ledger '%s' is damaged: revision %" PRId64
				  " has an unknown kind or outcome",
				  l->path, rev->number);
	rev->commit = column_dup(st, 1);
	rev->playbook = column_dup(st, 2);
	rev->playbook_hash = column_dup(st, 3);
	rev->desired_json = column_dup(st, 4);
	rev->image_id = column_dup(st, 5);
	rev->layers_json = column_dup(st, 6);
	rev->who = column_dup(st, 7);
	rev->started_at = sqlite3_column_int64(st, 8);
	rev->finished_at = sqlite3_column_int64(st, 9); /* NULL reads 0 */
	rev->kind = (enum ml_rev_kind)kind;
	rev->rollback_of = sqlite3_column_int64(st, 11);
	rev->outcome = (enum ml_outcome)outcome;
	rev->message = column_dup(st, 13);
	return 0;
}

/*
 * Run a revision query (parameters bound by the caller) and collect the
 * rows into a new array.
 */
static int collect_revisions(struct ml_ledger *l, sqlite3_stmt *st,
			     struct ml_revision **out, size_t *n)
{
	struct ml_revision *v = NULL;
	size_t len = 0, cap = 0;
	int ret = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ML_GROW(v, len + 1, cap);
		ret = read_revision(l, st, &v[len]);
		if (ret < 0)
			goto out;
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = ledger_fail(l, rc, "read revisions");
out:
	if (ret < 0) {
		ml_revisions_free(v, len);
		v = NULL;
		len = 0;
	}
	*out = v;
	*n = len;
	return ret;
}

/* Collect at most one revision; *out stays NULL when there is none. */
static int collect_one(struct ml_ledger *l, sqlite3_stmt *st,
		       struct ml_revision **out)
{
	struct ml_revision *v;
	size_t n;
	int ret;

	ret = collect_revisions(l, st, &v, &n);
	if (ret < 0)
		return ret;
	if (n == 0)
		free(v);
	else
		*out = v; /* an array of one is a single revision */
	return 0;
}

int ml_ledger_get(struct ml_ledger *l, int64_t number,
		  struct ml_revision **out)
{
	sqlite3_stmt *st = NULL;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st,
		      "SELECT " REV_COLUMNS " FROM revisions WHERE number = ?1",
		      "read revisions");
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, number);
	ret = collect_one(l, st, out);
	if (ret == 0 && !*out)
		ret = no_revision(l, number);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_list(struct ml_ledger *l, size_t limit,
		   struct ml_revision **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int ret;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st,
		      "SELECT " REV_COLUMNS " FROM revisions "
		      "ORDER BY number DESC LIMIT ?1",
		      "read revisions");
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1,
			   limit == 0 || limit > INT64_MAX ? -1 :
							    (int64_t)limit);
	ret = collect_revisions(l, st, out, n);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_last_good(struct ml_ledger *l, int64_t before,
			struct ml_revision **out)
{
	sqlite3_stmt *st = NULL;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st,
		      "SELECT " REV_COLUMNS " FROM revisions "
		      "WHERE outcome = 'succeeded' "
		      "AND (?1 <= 0 OR number < ?1) "
		      "ORDER BY number DESC LIMIT 1",
		      "read revisions");
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, before);
	ret = collect_one(l, st, out);
	if (ret < 0 || *out)
		goto out;
	if (before > 0)
		ret = ml_err_set(ML_ENOTFOUND,
				 "no revision before %" PRId64 " succeeded "
				 "in ledger '%s'",
				 before, l->path);
	else
		ret = ml_err_set(ML_ENOTFOUND,
				 "no revision succeeded in ledger '%s'",
				 l->path);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_events(struct ml_ledger *l, int64_t number,
		     struct ml_event **out, size_t *n)
{
	static const char *const what = "read events";
	struct ml_event *v = NULL;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int ret, rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st,
		      "SELECT id, revision, host, step, status, detail, at_ms "
		      "FROM events WHERE revision = ?1 ORDER BY id",
		      what);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, number);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ml_event *e;

		ML_GROW(v, len + 1, cap);
		e = &v[len++];
		e->id = sqlite3_column_int64(st, 0);
		e->revision = sqlite3_column_int64(st, 1);
		e->host = column_dup(st, 2);
		e->step = column_dup(st, 3);
		e->status = column_dup(st, 4);
		e->detail = column_dup(st, 5);
		e->at_ms = sqlite3_column_int64(st, 6);
	}
	if (rc != SQLITE_DONE) {
		ret = ledger_fail(l, rc, what);
		ml_events_free(v, len);
		goto out;
	}
	*out = v;
	*n = len;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

/* ---- freeing ---- */

void ml_revision_release(struct ml_revision *rev)
{
	if (!rev)
		return;
	free(rev->commit);
	free(rev->playbook);
	free(rev->playbook_hash);
	free(rev->desired_json);
	free(rev->image_id);
	free(rev->layers_json);
	free(rev->who);
	free(rev->message);
	memset(rev, 0, sizeof(*rev));
}

void ml_revision_free(struct ml_revision *rev)
{
	ml_revision_release(rev);
	free(rev);
}

void ml_revisions_free(struct ml_revision *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ml_revision_release(&v[i]);
	free(v);
}

void ml_events_free(struct ml_event *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].host);
		free(v[i].step);
		free(v[i].status);
		free(v[i].detail);
	}
	free(v);
}

/* ---- pins and prunes ---- */

int ml_ledger_pin(struct ml_ledger *l, int64_t number, const char *who,
		  bool pin, bool *changed)
{
	const char *what = pin ? "pin a revision" : "unpin a revision";
	sqlite3_stmt *st = NULL;
	int ret;

	*changed = false;
	if (pin && (!who || !*who))
		return ml_err_set(ML_EFAIL, "ledger: a pin needs an operator");
	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	ret = revision_exists(l, number, what);
	if (ret == 0)
		ret = no_revision(l, number);
	if (ret < 0)
		goto out;
	ret = prepare(l, &st,
		      pin ? "INSERT OR IGNORE INTO pins VALUES (?1, ?2, "
			    "CAST(strftime('%s', 'now') AS INTEGER))"
			  : "DELETE FROM pins WHERE revision = ?1",
		      what);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(st, 1, number);
	if (pin)
		bind_text(st, 2, who);
	ret = step_done(l, st, what);
	if (ret == 0)
		*changed = sqlite3_changes(l->db) > 0;
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_pins(struct ml_ledger *l, int64_t **out, size_t *n)
{
	static const char *const what = "read pins";
	sqlite3_stmt *st = NULL;
	int64_t *v = NULL;
	size_t len = 0, cap = 0;
	int ret, rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st, "SELECT revision FROM pins ORDER BY revision",
		      what);
	if (ret < 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ML_GROW(v, len + 1, cap);
		v[len++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		ret = ledger_fail(l, rc, what);
		free(v);
		goto out;
	}
	*out = v;
	*n = len;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_set_pruned(struct ml_ledger *l, const char *image_id,
			 const char *host, bool pruned)
{
	static const char *const what = "record a prune";
	sqlite3_stmt *st = NULL;
	int ret;

	if (!image_id || !*image_id || !host || !*host)
		return ml_err_set(ML_EFAIL, "ledger: a prune record needs an "
					    "image and a host");
	pthread_mutex_lock(&l->mutex);
	ret = tx_begin(l, what);
	if (ret < 0)
		goto unlock;
	ret = prepare(l, &st,
		      pruned ? "INSERT OR REPLACE INTO pruned VALUES (?1, ?2, "
			       "CAST(strftime('%s', 'now') AS INTEGER))"
			     : "DELETE FROM pruned WHERE image_id = ?1 AND "
			       "host = ?2",
		      what);
	if (ret < 0)
		goto out;
	bind_text(st, 1, image_id);
	bind_text(st, 2, host);
	ret = step_done(l, st, what);
out:
	sqlite3_finalize(st);
	ret = tx_end(l, ret, what);
unlock:
	pthread_mutex_unlock(&l->mutex);
	return ret;
}

int ml_ledger_pruned_hosts(struct ml_ledger *l, const char *image_id,
			   char ***out, size_t *n)
{
	static const char *const what = "read prune records";
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t len = 0, cap = 0;
	int ret, rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&l->mutex);
	ret = prepare(l, &st,
		      "SELECT host FROM pruned WHERE image_id = ?1 "
		      "ORDER BY host",
		      what);
	if (ret < 0)
		goto out;
	bind_text(st, 1, image_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ML_GROW(v, len + 1, cap);
		v[len++] = column_dup(st, 0);
	}
	if (rc != SQLITE_DONE) {
		ret = ledger_fail(l, rc, what);
		while (len)
			free(v[--len]);
		free(v);
		goto out;
	}
	*out = v;
	*n = len;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->mutex);
	return ret;
}
