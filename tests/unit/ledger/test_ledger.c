/*
 * Unit tests of orchestrator/ledger: real SQLite files in a fresh temporary
 * directory per test. The test talks to the files directly through the
 * SQLite API only to build the damaged, foreign, newer and locked ledgers
 * that the module must refuse, and to look at what it wrote.
 */
#include "common/ml.h"
#include "orchestrator/ledger/ledger.h"

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define APP_ID 0x6d6c6374

struct fix {
	char dir[256];
	char path[512]; /* dir/state/mlctl/ledger.db, not yet created */
};

static const char *const env_vars[] = {
	"MLCTL_LEDGER", "XDG_STATE_HOME", "HOME", "MLCTL_LEDGER_BUSY_MS",
};
static char *saved_env[ML_ARRAY_SIZE(env_vars)];

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct fix *f = ml_xcalloc(1, sizeof(*f));
	size_t i;

	snprintf(f->dir, sizeof(f->dir), "%s/mlctl-ledger-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/state/mlctl/ledger.db", f->dir);
	for (i = 0; i < ML_ARRAY_SIZE(env_vars); i++) {
		const char *v = getenv(env_vars[i]);

		saved_env[i] = v ? ml_xstrdup(v) : NULL;
	}
	ml_err_clear();
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(p);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(env_vars); i++) {
		if (saved_env[i])
			setenv(env_vars[i], saved_env[i], 1);
		else
			unsetenv(env_vars[i]);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- raw SQLite helpers (the test's own view of the file) ---- */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
						SQLITE_OPEN_CREATE, NULL),
			 SQLITE_OK);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
}

static void raw_exec_file(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);

	raw_exec(db, sql);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static char *raw_text(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	char *v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = ml_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static struct ml_ledger *open_ok(const char *path)
{
	struct ml_ledger *l = NULL;
	int rc = ml_ledger_open(&l, path);

	if (rc != 0)
		fail_msg("open: %d %s", rc, ml_err_msg());
	return l;
}

static void sample(struct ml_revision *r, const char *commit)
{
	memset(r, 0, sizeof(*r));
	r->commit = (char *)commit;
	r->playbook = (char *)"app: demo\nport: 8080\n";
	r->playbook_hash = (char *)"0d1f00e1c1c1aa3b7f1e0c64c1d0d7a1"
				   "9e2c4b7f0b8f5a1e2d3c4b5a69788776";
	r->desired_json = (char *)"{\"app\":\"demo\"}";
	r->who = (char *)"ana@laptop";
	r->started_at = 1700000000;
	r->kind = ML_REV_DEPLOY;
}

static int64_t begin_ok(struct ml_ledger *l, struct ml_revision *r)
{
	int rc = ml_ledger_begin(l, r);

	if (rc != 0)
		fail_msg("begin: %d %s", rc, ml_err_msg());
	return r->number;
}

/* ---- tests ---- */

static void test_ledger__create_migrate_reopen(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	char dir[512];
	char *s;

	assert_int_equal(ml_ledger_schema_version(l),
			 ml_ledger_schema_current());
	assert_true(ml_ledger_schema_current() >= 1);
	assert_false(ml_ledger_readonly(l));
	ml_ledger_free(l);

	/* new directories 0700, new file 0600 */
	snprintf(dir, sizeof(dir), "%s/state", f->dir);
	assert_int_equal(file_mode(dir), 0700);
	snprintf(dir, sizeof(dir), "%s/state/mlctl", f->dir);
	assert_int_equal(file_mode(dir), 0700);
	assert_int_equal(file_mode(f->path), 0600);

	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), APP_ID);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
			 ml_ledger_schema_current());
	assert_int_equal(raw_int(f->path, "SELECT schema_version FROM meta"),
			 ml_ledger_schema_current());
	s = raw_text(f->path, "SELECT application FROM meta");
	assert_string_equal(s, "mlctl");
	free(s);

	/* reopening changes nothing and keeps what was there */
	l = open_ok(f->path);
	assert_int_equal(ml_ledger_schema_version(l),
			 ml_ledger_schema_current());
	ml_ledger_free(l);
	l = open_ok(f->path);
	ml_ledger_free(l);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 1);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"),
			 ml_ledger_schema_current());
}

static void test_ledger__existing_dir_mode_kept(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l;
	char path[512];

	assert_int_equal(chmod(f->dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/ledger.db", f->dir);
	l = open_ok(path);
	ml_ledger_free(l);
	assert_int_equal(file_mode(f->dir), 0755);
	assert_int_equal(file_mode(path), 0600);
}

static void test_ledger__wal_active(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r;
	char wal[1024];
	char *mode;

	sample(&r, "aaaa");
	begin_ok(l, &r);
	/* while open, the write-ahead log exists beside the file, 0600 too */
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(access(wal, F_OK), 0);
	assert_int_equal(file_mode(wal), 0600);
	mode = raw_text(f->path, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	free(mode);
	ml_ledger_free(l);
	/* the mode is stored in the file */
	mode = raw_text(f->path, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	free(mode);
}

static void test_ledger__round_trip(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r, *g = NULL;
	time_t t0 = time(NULL);
	int64_t n;

	sample(&r, "0123456789abcdef0123456789abcdef01234567");
	r.image_id = (char *)"sha256:1111";
	r.layers_json = (char *)"[\"sha256:a\",\"sha256:b\"]";
	n = begin_ok(l, &r);
	assert_int_equal(n, 1);
	assert_int_equal(r.outcome, ML_OUTCOME_RUNNING);

	assert_int_equal(ml_ledger_get(l, n, &g), 0);
	assert_int_equal(g->number, 1);
	assert_string_equal(g->commit, r.commit);
	assert_string_equal(g->playbook, r.playbook);
	assert_string_equal(g->playbook_hash, r.playbook_hash);
	assert_string_equal(g->desired_json, r.desired_json);
	assert_string_equal(g->image_id, "sha256:1111");
	assert_string_equal(g->layers_json, r.layers_json);
	assert_string_equal(g->who, "ana@laptop");
	assert_int_equal(g->started_at, 1700000000);
	assert_int_equal(g->finished_at, 0);
	assert_int_equal(g->kind, ML_REV_DEPLOY);
	assert_int_equal(g->rollback_of, 0);
	assert_int_equal(g->outcome, ML_OUTCOME_RUNNING);
	assert_null(g->message);
	ml_revision_free(g);

	assert_int_equal(ml_ledger_set_image(l, n, "sha256:2222", NULL), 0);
	assert_int_equal(ml_ledger_finish(l, n, ML_OUTCOME_SUCCEEDED,
					  "3 hosts updated"),
			 0);
	ml_ledger_free(l);

	/* what was committed is there after reopening */
	l = open_ok(f->path);
	assert_int_equal(ml_ledger_get(l, n, &g), 0);
	assert_string_equal(g->image_id, "sha256:2222");
	assert_null(g->layers_json);
	assert_int_equal(g->outcome, ML_OUTCOME_SUCCEEDED);
	assert_string_equal(g->message, "3 hosts updated");
	assert_true(g->finished_at >= t0 && g->finished_at <= time(NULL));
	ml_revision_free(g);
	ml_ledger_free(l);
}

static void test_ledger__nulls_and_defaults(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r, *g = NULL;
	time_t t0 = time(NULL);
	int64_t n;

	sample(&r, "bbbb");
	r.started_at = 0; /* now */
	r.playbook = (char *)"";
	n = begin_ok(l, &r);
	assert_true(r.started_at >= t0 && r.started_at <= time(NULL));
	assert_int_equal(ml_ledger_finish(l, n, ML_OUTCOME_FAILED, NULL), 0);
	assert_int_equal(ml_ledger_get(l, n, &g), 0);
	assert_string_equal(g->playbook, "");
	assert_null(g->image_id);
	assert_null(g->layers_json);
	assert_null(g->message);
	assert_int_equal(g->started_at, r.started_at);
	assert_int_equal(g->outcome, ML_OUTCOME_FAILED);
	ml_revision_free(g);

	/* missing required fields are argument errors, nothing recorded */
	sample(&r, "cccc");
	r.who = NULL;
	assert_int_equal(ml_ledger_begin(l, &r), ML_EFAIL);
	sample(&r, "");
	assert_int_equal(ml_ledger_begin(l, &r), ML_EFAIL);
	sample(&r, "cccc");
	r.rollback_of = 1; /* a deploy is not a rollback */
	assert_int_equal(ml_ledger_begin(l, &r), ML_EFAIL);
	assert_int_equal(ml_ledger_get(l, 2, &g), ML_ENOTFOUND);
	assert_null(g);
	ml_ledger_free(l);
}

static void test_ledger__numbering_and_list(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r, *v = NULL;
	size_t n = 99;
	int i;

	assert_int_equal(ml_ledger_list(l, 0, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);

	for (i = 1; i <= 3; i++) {
		sample(&r, i == 2 ? "c2" : "cx");
		assert_int_equal(begin_ok(l, &r), i);
	}
	ml_ledger_free(l);
	l = open_ok(f->path);
	sample(&r, "c4");
	assert_int_equal(begin_ok(l, &r), 4);

	assert_int_equal(ml_ledger_list(l, 0, &v, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(v[i].number, 4 - i);
	assert_string_equal(v[2].commit, "c2");
	ml_revisions_free(v, n);

	assert_int_equal(ml_ledger_list(l, 2, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].number, 4);
	assert_int_equal(v[1].number, 3);
	ml_revisions_free(v, n);
	ml_ledger_free(l);
}

static void test_ledger__rollback_of(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r, *g = NULL;
	size_t n;

	sample(&r, "c1");
	begin_ok(l, &r);
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_SUCCEEDED, NULL), 0);
	sample(&r, "c2");
	begin_ok(l, &r);
	assert_int_equal(ml_ledger_finish(l, 2, ML_OUTCOME_SUCCEEDED, NULL), 0);

	sample(&r, "c1");
	r.kind = ML_REV_ROLLBACK;
	r.rollback_of = 1;
	assert_int_equal(begin_ok(l, &r), 3);
	assert_int_equal(ml_ledger_get(l, 3, &g), 0);
	assert_int_equal(g->kind, ML_REV_ROLLBACK);
	assert_int_equal(g->rollback_of, 1);
	ml_revision_free(g);

	/* to a revision that does not exist: refused, nothing recorded */
	sample(&r, "c9");
	r.kind = ML_REV_ROLLBACK;
	r.rollback_of = 42;
	assert_int_equal(ml_ledger_begin(l, &r), ML_ENOTFOUND);
	assert_non_null(strstr(ml_err_msg(), "revision 42"));
	/* a rollback with no target is an argument error */
	r.rollback_of = 0;
	assert_int_equal(ml_ledger_begin(l, &r), ML_EFAIL);
	assert_int_equal(ml_ledger_list(l, 0, &g, &n), 0);
	assert_int_equal(n, 3);
	ml_revisions_free(g, n);
	ml_ledger_free(l);

	/* the schema itself enforces the reference */
	{
		sqlite3 *db = raw_open(f->path);

		raw_exec(db, "PRAGMA foreign_keys = ON");
		assert_int_not_equal(
			sqlite3_exec(db,
				     "INSERT INTO revisions VALUES (9, 'c', "
				     "'', 'h', '{}', NULL, NULL, 'w', 1, "
				     "NULL, 'rollback', 8, 'running', NULL)",
				     NULL, NULL, NULL),
			SQLITE_OK);
		assert_int_equal(sqlite3_extended_errcode(db),
				 SQLITE_CONSTRAINT_FOREIGNKEY);
		/* and the CHECK constraints the names */
		assert_int_not_equal(
			sqlite3_exec(db,
				     "INSERT INTO revisions VALUES (9, 'c', "
				     "'', 'h', '{}', NULL, NULL, 'w', 1, "
				     "NULL, 'deploy', NULL, 'done', NULL)",
				     NULL, NULL, NULL),
			SQLITE_OK);
		assert_int_equal(sqlite3_extended_errcode(db),
				 SQLITE_CONSTRAINT_CHECK);
		sqlite3_close(db);
	}
}

static void test_ledger__finish_rules(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r;

	sample(&r, "c1");
	begin_ok(l, &r);
	assert_int_equal(ml_ledger_finish(l, 7, ML_OUTCOME_FAILED, NULL),
			 ML_ENOTFOUND);
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_RUNNING, NULL),
			 ML_EFAIL);
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_INTERRUPTED,
					  "recovered"),
			 0);
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_SUCCEEDED, NULL),
			 ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "already finished (interrupted)"));
	assert_int_equal(ml_ledger_set_image(l, 7, "sha256:x", NULL),
			 ML_ENOTFOUND);
	ml_ledger_free(l);
}

static void test_ledger__last_good(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	static const enum ml_outcome outcomes[] = {
		ML_OUTCOME_SUCCEEDED,   ML_OUTCOME_FAILED,
		ML_OUTCOME_SUCCEEDED,   ML_OUTCOME_ROLLED_BACK,
		ML_OUTCOME_INTERRUPTED, ML_OUTCOME_RUNNING,
	};
	struct ml_revision r, *g = NULL;
	size_t i;

	assert_int_equal(ml_ledger_last_good(l, 0, &g), ML_ENOTFOUND);
	assert_null(g);
	for (i = 0; i < ML_ARRAY_SIZE(outcomes); i++) {
		sample(&r, "c");
		begin_ok(l, &r);
		if (outcomes[i] != ML_OUTCOME_RUNNING)
			assert_int_equal(ml_ledger_finish(l, r.number,
							  outcomes[i], NULL),
					 0);
	}
	assert_int_equal(ml_ledger_last_good(l, 0, &g), 0);
	assert_int_equal(g->number, 3);
	ml_revision_free(g);
	assert_int_equal(ml_ledger_last_good(l, 3, &g), 0);
	assert_int_equal(g->number, 1);
	ml_revision_free(g);
	g = NULL;
	assert_int_equal(ml_ledger_last_good(l, 1, &g), ML_ENOTFOUND);
	assert_null(g);
	ml_ledger_free(l);
}

static void test_ledger__events(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r;
	struct ml_event *e = NULL;
	int64_t t0 = (int64_t)time(NULL) * 1000;
	size_t n = 99;

	sample(&r, "c1");
	begin_ok(l, &r);
	sample(&r, "c2");
	begin_ok(l, &r);
	assert_int_equal(ml_ledger_events(l, 1, &e, &n), 0);
	assert_int_equal(n, 0);
	free(e);

	assert_int_equal(ml_ledger_event(l, 1, "vm1", "deliver", "started",
					 NULL),
			 0);
	assert_int_equal(ml_ledger_event(l, 2, "vm9", "start", "ok", NULL), 0);
	assert_int_equal(ml_ledger_event(l, 1, "vm1", "deliver", "ok",
					 "2 layers, 31 MiB"),
			 0);
	assert_int_equal(ml_ledger_event(l, 1, "vm2", "healthy", "failed",
					 "GET /health: 503"),
			 0);
	assert_int_equal(ml_ledger_event(l, 5, "vm1", "start", "ok", NULL),
			 ML_ENOTFOUND);
	assert_int_equal(ml_ledger_event(l, 1, NULL, "start", "ok", NULL),
			 ML_EFAIL);
	ml_ledger_free(l);

	l = open_ok(f->path);
	assert_int_equal(ml_ledger_events(l, 1, &e, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].revision, 1);
	assert_string_equal(e[0].host, "vm1");
	assert_string_equal(e[0].step, "deliver");
	assert_string_equal(e[0].status, "started");
	assert_null(e[0].detail);
	assert_string_equal(e[1].status, "ok");
	assert_string_equal(e[1].detail, "2 layers, 31 MiB");
	assert_string_equal(e[2].host, "vm2");
	assert_string_equal(e[2].detail, "GET /health: 503");
	assert_true(e[0].id < e[1].id && e[1].id < e[2].id);
	assert_true(e[0].at_ms >= t0 && e[0].at_ms <= e[2].at_ms);
	ml_events_free(e, n);
	assert_int_equal(ml_ledger_events(l, 2, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].host, "vm9");
	ml_events_free(e, n);
	ml_ledger_free(l);
}

static void test_ledger__schema_newer(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	char want[1024];

	ml_ledger_free(l);
	raw_exec_file(f->path, "PRAGMA user_version = 99");
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_null(l);
	snprintf(want, sizeof(want),
		 "ledger '%s' was written by a newer mlctl (schema 99; this "
		 "mlctl knows up to %d): upgrade mlctl",
		 f->path, ml_ledger_schema_current());
	assert_string_equal(ml_err_msg(), want);
	/* untouched */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 99);
}

static void test_ledger__meta_mismatch(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);

	ml_ledger_free(l);
	raw_exec_file(f->path, "UPDATE meta SET schema_version = 7");
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_non_null(strstr(ml_err_msg(), "is damaged"));
}

static void test_ledger__foreign_database(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = NULL;
	char want[1024];
	char *mode;

	/* an SQLite file of some other program, no application id */
	snprintf(f->path, sizeof(f->path), "%s/other.db", f->dir);
	raw_exec_file(f->path, "CREATE TABLE notes (x TEXT)");
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_null(l);
	snprintf(want, sizeof(want),
		 "'%s' is not an mlctl ledger: it is another program's SQLite "
		 "database",
		 f->path);
	assert_string_equal(ml_err_msg(), want);
	/* refused untouched: still a rollback journal, no ledger tables */
	mode = raw_text(f->path, "PRAGMA journal_mode");
	assert_string_equal(mode, "delete");
	free(mode);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_schema"),
			 1);

	/* one with its own application id */
	raw_exec_file(f->path, "PRAGMA application_id = 1234");
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_non_null(strstr(ml_err_msg(), "is not an mlctl ledger"));
	assert_non_null(strstr(ml_err_msg(), "0x000004d2"));
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), 1234);
}

static void test_ledger__not_a_database(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = NULL;
	char junk[4096], want[1024];

	memset(junk, 'x', sizeof(junk));
	snprintf(f->path, sizeof(f->path), "%s/junk.db", f->dir);
	write_file(f->path, junk, sizeof(junk));
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_null(l);
	snprintf(want, sizeof(want),
		 "'%s' is not an mlctl ledger: file is not a database",
		 f->path);
	assert_string_equal(ml_err_msg(), want);

	/* a directory where the file should be */
	snprintf(f->path, sizeof(f->path), "%s/dir.db", f->dir);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_non_null(strstr(ml_err_msg(), "is not a regular file"));

	/* an empty file is an empty database: it becomes a ledger */
	snprintf(f->path, sizeof(f->path), "%s/empty.db", f->dir);
	write_file(f->path, "", 0);
	l = open_ok(f->path);
	ml_ledger_free(l);
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), APP_ID);
}

static void test_ledger__readonly_mode(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = NULL;
	struct ml_revision r, *v = NULL;
	char want[1024];
	size_t n;

	/* a read-only open never creates anything */
	assert_int_equal(ml_ledger_open_mode(&l, f->path, ML_LEDGER_RO),
			 ML_ENOTFOUND);
	assert_null(l);
	assert_int_not_equal(access(f->path, F_OK), 0);

	l = open_ok(f->path);
	sample(&r, "c1");
	begin_ok(l, &r);
	ml_ledger_free(l);

	assert_int_equal(ml_ledger_open_mode(&l, f->path, ML_LEDGER_RO), 0);
	assert_true(ml_ledger_readonly(l));
	assert_int_equal(ml_ledger_list(l, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	ml_revisions_free(v, n);
	sample(&r, "c2");
	assert_int_equal(ml_ledger_begin(l, &r), ML_ELEDGER);
	snprintf(want, sizeof(want),
		 "ledger '%s' is read-only: cannot record a new revision; it "
		 "was opened for reading only",
		 f->path);
	assert_string_equal(ml_err_msg(), want);
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_FAILED, NULL),
			 ML_ELEDGER);
	assert_int_equal(ml_ledger_event(l, 1, "h", "s", "ok", NULL),
			 ML_ELEDGER);
	assert_int_equal(ml_ledger_set_image(l, 1, "i", NULL), ML_ELEDGER);
	assert_non_null(strstr(ml_err_msg(), "is read-only: "));
	ml_ledger_free(l);

	/* a read-only ledger that would need migrating */
	snprintf(f->path, sizeof(f->path), "%s/empty.db", f->dir);
	write_file(f->path, "", 0);
	assert_int_equal(ml_ledger_open_mode(&l, f->path, ML_LEDGER_RO),
			 ML_ELEDGER);
	assert_null(l);
	assert_non_null(strstr(ml_err_msg(), "is read-only: it has schema 0"));
}

/*
 * Open path in a child that cannot write it, try a read and a write, and
 * put "open-rc readonly get-rc begin-rc message" in buf. Root writes
 * anything, so as root the child first becomes nobody. false: skip.
 */
static bool try_unwritable(const char *path, char *buf, size_t size)
{
	int fds[2], status;
	ssize_t got;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ml_revision r, *g = NULL;
		struct ml_ledger *l = NULL;
		int rc_open, rc_get = 99, rc_begin = 99, ro = -1;

		close(fds[0]);
		if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(77);
		rc_open = ml_ledger_open(&l, path);
		if (rc_open == 0) {
			ro = ml_ledger_readonly(l);
			rc_get = ml_ledger_get(l, 1, &g);
			ml_revision_free(g);
			sample(&r, "c2");
			rc_begin = ml_ledger_begin(l, &r);
			ml_ledger_free(l);
		}
		snprintf(buf, size, "%d %d %d %d %s", rc_open, ro, rc_get,
			 rc_begin, ml_err_msg());
		if (write(fds[1], buf, strlen(buf)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	got = read(fds[0], buf, size - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		return false;
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(got > 0);
	buf[got] = '\0';
	return true;
}

/* A file the process may not write: the real case behind the fallback. */
static void test_ledger__readonly_file(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r;
	char buf[2048], want[2048], sub[512];

	sample(&r, "c1");
	begin_ok(l, &r);
	ml_ledger_free(l);
	assert_int_equal(chmod(f->path, 0444), 0);
	snprintf(sub, sizeof(sub), "%s/state", f->dir);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(sub, 0755), 0);
	snprintf(sub, sizeof(sub), "%s/state/mlctl", f->dir);
	assert_int_equal(chmod(sub, 0755), 0);

	/* WAL readers need the -shm file: not even reading works */
	if (!try_unwritable(f->path, buf, sizeof(buf)))
		skip();
	snprintf(want, sizeof(want),
		 "%d -1 99 99 cannot read ledger '%s': SQLite must create "
		 "'%s-shm' beside it and the directory is not writable",
		 ML_ELEDGER, f->path, f->path);
	assert_string_equal(buf, want);

	/* the directory lets us create it: read-only, writes refused */
	assert_int_equal(chmod(sub, 0777), 0);
	assert_true(try_unwritable(f->path, buf, sizeof(buf)));
	snprintf(want, sizeof(want),
		 "0 1 0 %d ledger '%s' is read-only: cannot record a new "
		 "revision; check the permissions of the file and its "
		 "directory",
		 ML_ELEDGER, f->path);
	assert_string_equal(buf, want);
}

static void test_ledger__locked(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r, *v = NULL;
	struct timespec a, b;
	char want[1024];
	sqlite3 *other;
	size_t n;
	long ms;

	ml_ledger_free(l);
	setenv("MLCTL_LEDGER_BUSY_MS", "100", 1);
	l = open_ok(f->path);
	other = raw_open(f->path);
	raw_exec(other, "BEGIN IMMEDIATE");

	snprintf(want, sizeof(want),
		 "ledger '%s' is locked by another mlctl process; try again",
		 f->path);
	sample(&r, "c1");
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(ml_ledger_begin(l, &r), ML_ELEDGER);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_string_equal(ml_err_msg(), want);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 50 && ms < 3000);

	/* readers are not blocked by a writer (WAL) */
	assert_int_equal(ml_ledger_list(l, 0, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	/* opening an existing, current ledger needs no write lock */
	ml_ledger_free(l);
	l = open_ok(f->path);

	raw_exec(other, "ROLLBACK");
	assert_int_equal(begin_ok(l, &r), 1);
	ml_ledger_free(l);
	sqlite3_close(other);
}

static void test_ledger__locked_during_create(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = NULL;
	char want[1024];
	sqlite3 *other;

	setenv("MLCTL_LEDGER_BUSY_MS", "50", 1);
	snprintf(f->path, sizeof(f->path), "%s/new.db", f->dir);
	other = raw_open(f->path);
	raw_exec(other, "BEGIN EXCLUSIVE");
	assert_int_equal(ml_ledger_open(&l, f->path), ML_ELEDGER);
	assert_null(l);
	snprintf(want, sizeof(want),
		 "ledger '%s' is locked by another mlctl process; try again",
		 f->path);
	assert_string_equal(ml_err_msg(), want);
	raw_exec(other, "COMMIT");
	sqlite3_close(other);
	l = open_ok(f->path);
	ml_ledger_free(l);
}

static void test_ledger__busy_env(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = NULL;

	setenv("MLCTL_LEDGER_BUSY_MS", "soon", 1);
	assert_int_equal(ml_ledger_open(&l, f->path), ML_EUSAGE);
	assert_non_null(strstr(ml_err_msg(), "MLCTL_LEDGER_BUSY_MS='soon'"));
	setenv("MLCTL_LEDGER_BUSY_MS", "", 1);
	l = open_ok(f->path);
	ml_ledger_free(l);
}

/* Several mlctl processes creating and writing one new ledger at once. */
static void test_ledger__concurrent_writers(void **state)
{
	struct fix *f = *state;
	struct ml_revision *v = NULL;
	struct ml_ledger *l;
	pid_t pids[4];
	size_t i, n;
	int status;

	for (i = 0; i < ML_ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ml_revision r;
			int k;

			/* what is tested is that no write is lost, not how
			 * long a writer waits: under sanitizers on a busy
			 * machine the default 5 s wait ran out once */
			setenv("MLCTL_LEDGER_BUSY_MS", "60000", 1);
			if (ml_ledger_open(&l, f->path)) {
				fprintf(stderr, "child: %s\n", ml_err_msg());
				_exit(1);
			}
			for (k = 0; k < 5; k++) {
				sample(&r, "c");
				if (ml_ledger_begin(l, &r) ||
				    ml_ledger_event(l, r.number, "vm", "start",
						    "ok", NULL) ||
				    ml_ledger_finish(l, r.number,
						     ML_OUTCOME_SUCCEEDED,
						     NULL)) {
					fprintf(stderr, "child: %s\n",
						ml_err_msg());
					_exit(1);
				}
			}
			ml_ledger_free(l);
			_exit(0);
		}
	}
	for (i = 0; i < ML_ARRAY_SIZE(pids); i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	l = open_ok(f->path);
	assert_int_equal(ml_ledger_list(l, 0, &v, &n), 0);
	assert_int_equal(n, 20);
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].number, 20 - (int64_t)i);
		assert_int_equal(v[i].outcome, ML_OUTCOME_SUCCEEDED);
	}
	ml_revisions_free(v, n);
	ml_ledger_free(l);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 20);
}

/* kill -9 in the middle of a rollout leaves what was committed */
static void test_ledger__survives_kill(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l;
	struct ml_revision r, *g = NULL;
	struct ml_event *e = NULL;
	int status;
	size_t n;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (ml_ledger_open(&l, f->path) || (sample(&r, "c1"), 0) ||
		    ml_ledger_begin(l, &r) ||
		    ml_ledger_event(l, r.number, "vm1", "deliver", "ok", NULL))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	l = open_ok(f->path);
	assert_int_equal(ml_ledger_get(l, 1, &g), 0);
	assert_int_equal(g->outcome, ML_OUTCOME_RUNNING);
	ml_revision_free(g);
	assert_int_equal(ml_ledger_events(l, 1, &e, &n), 0);
	assert_int_equal(n, 1);
	ml_events_free(e, n);
	/* the next run marks it interrupted */
	assert_int_equal(ml_ledger_finish(l, 1, ML_OUTCOME_INTERRUPTED,
					  "mlctl was killed"),
			 0);
	ml_ledger_free(l);
}

static void expect_path(const char *want)
{
	char *p = ml_ledger_default_path();

	assert_non_null(p);
	assert_string_equal(p, want);
	free(p);
}

static void test_ledger__default_path(void **state)
{
	setenv("MLCTL_LEDGER", "/srv/mlctl/l.db", 1);
	setenv("XDG_STATE_HOME", "/x/state", 1);
	setenv("HOME", "/home/ana", 1);
	expect_path("/srv/mlctl/l.db");
	setenv("MLCTL_LEDGER", "", 1);
	expect_path("/x/state/mlctl/ledger.db");
	unsetenv("MLCTL_LEDGER");
	expect_path("/x/state/mlctl/ledger.db");
	setenv("XDG_STATE_HOME", "", 1);
	expect_path("/home/ana/.local/state/mlctl/ledger.db");
	setenv("XDG_STATE_HOME", "relative/state", 1); /* ignored, per XDG */
	expect_path("/home/ana/.local/state/mlctl/ledger.db");
	unsetenv("XDG_STATE_HOME");
	expect_path("/home/ana/.local/state/mlctl/ledger.db");
	/* no HOME: the password database */
	unsetenv("HOME");
	{
		char *p = ml_ledger_default_path();

		assert_non_null(p);
		assert_true(p[0] == '/');
		assert_non_null(strstr(p, "/.local/state/mlctl/ledger.db"));
		free(p);
	}
}

static void test_ledger__names(void **state)
{
	assert_string_equal(ml_outcome_name(ML_OUTCOME_RUNNING), "running");
	assert_string_equal(ml_outcome_name(ML_OUTCOME_SUCCEEDED),
			    "succeeded");
	assert_string_equal(ml_outcome_name(ML_OUTCOME_FAILED), "failed");
	assert_string_equal(ml_outcome_name(ML_OUTCOME_ROLLED_BACK),
			    "rolled-back");
	assert_string_equal(ml_outcome_name(ML_OUTCOME_INTERRUPTED),
			    "interrupted");
	assert_string_equal(ml_outcome_name((enum ml_outcome)77), "unknown");
	assert_string_equal(ml_rev_kind_name(ML_REV_DEPLOY), "deploy");
	assert_string_equal(ml_rev_kind_name(ML_REV_ROLLBACK), "rollback");
	assert_string_equal(ml_rev_kind_name((enum ml_rev_kind)0), "unknown");
}

/* Pins and prune records; a schema 1 ledger migrates with its data. */
static void test_ledger__pins_and_prunes(void **state)
{
	struct fix *f = *state;
	struct ml_ledger *l = open_ok(f->path);
	struct ml_revision r;
	int64_t *pins = NULL;
	char **hosts = NULL;
	size_t n = 0;
	bool changed;

	sample(&r, "c1");
	begin_ok(l, &r);
	sample(&r, "c2");
	begin_ok(l, &r);
	assert_int_equal(ml_ledger_pin(l, 2, "me@here", true, &changed), 0);
	assert_true(changed);
	assert_int_equal(ml_ledger_pin(l, 2, "me@here", true, &changed), 0);
	assert_false(changed);
	assert_int_equal(ml_ledger_pin(l, 9, "me@here", true, &changed),
			 ML_ENOTFOUND);
	assert_int_equal(ml_ledger_pins(l, &pins, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pins[0], 2);
	free(pins);
	assert_int_equal(ml_ledger_pin(l, 2, NULL, false, &changed), 0);
	assert_true(changed);
	assert_int_equal(ml_ledger_pin(l, 2, NULL, false, &changed), 0);
	assert_false(changed);
	assert_int_equal(ml_ledger_pins(l, &pins, &n), 0);
	assert_int_equal(n, 0);
	free(pins);

	assert_int_equal(ml_ledger_set_pruned(l, "sha256:a", "vm2", true), 0);
	assert_int_equal(ml_ledger_set_pruned(l, "sha256:a", "vm1", true), 0);
	assert_int_equal(ml_ledger_set_pruned(l, "sha256:a", "vm1", true), 0);
	assert_int_equal(ml_ledger_pruned_hosts(l, "sha256:a", &hosts, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(hosts[0], "vm1");
	assert_string_equal(hosts[1], "vm2");
	free(hosts[0]);
	free(hosts[1]);
	free(hosts);
	assert_int_equal(ml_ledger_set_pruned(l, "sha256:a", "vm1", false), 0);
	assert_int_equal(ml_ledger_pruned_hosts(l, "sha256:a", &hosts, &n), 0);
	assert_int_equal(n, 1);
	free(hosts[0]);
	free(hosts);
	assert_int_equal(ml_ledger_pin(l, 1, "me@here", true, &changed), 0);
	ml_ledger_free(l);

	/* make it a schema 1 ledger again, then let it migrate */
	raw_exec_file(f->path, "DROP TABLE pins; DROP TABLE pruned; "
			       "UPDATE meta SET schema_version = 1; "
			       "PRAGMA user_version = 1");
	l = open_ok(f->path);
	assert_int_equal(ml_ledger_schema_version(l), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM revisions"), 2);
	assert_int_equal(ml_ledger_pins(l, &pins, &n), 0);
	assert_int_equal(n, 0);
	free(pins);
	assert_int_equal(ml_ledger_pin(l, 1, "me@here", true, &changed), 0);
	assert_true(changed);
	ml_ledger_free(l);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ledger__create_migrate_reopen),
		T(test_ledger__existing_dir_mode_kept),
		T(test_ledger__wal_active),
		T(test_ledger__round_trip),
		T(test_ledger__nulls_and_defaults),
		T(test_ledger__numbering_and_list),
		T(test_ledger__rollback_of),
		T(test_ledger__finish_rules),
		T(test_ledger__last_good),
		T(test_ledger__events),
		T(test_ledger__schema_newer),
		T(test_ledger__meta_mismatch),
		T(test_ledger__foreign_database),
		T(test_ledger__not_a_database),
		T(test_ledger__readonly_mode),
		T(test_ledger__readonly_file),
		T(test_ledger__locked),
		T(test_ledger__locked_during_create),
		T(test_ledger__busy_env),
		T(test_ledger__concurrent_writers),
		T(test_ledger__survives_kill),
		T(test_ledger__default_path),
		T(test_ledger__names),
		T(test_ledger__pins_and_prunes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
