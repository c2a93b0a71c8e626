#ifndef ML_TEST_PROC_H
#define ML_TEST_PROC_H

/*
 * Test helpers for running real programs (the mlctl binaries, git) and for
 * scratch directories. Everything here takes argv vectors; nothing goes
 * through a shell.
 */

struct ml_test_out {
	int status;  /* exit status, or 128 + signal, or -1 on timeout */
	char *out;   /* stdout, NUL-terminated */
	char *err;   /* stderr, NUL-terminated */
	size_t out_len, err_len;
};

/*
 * Run argv (argv[0] looked up in PATH) in dir (NULL: current), with extra
 * environment entries "K=V" (NULL-terminated list, may be NULL), feeding
 * stdin_data (may be NULL), killing it after timeout_s. Returns 0 when it
 * ran; fills *o (free with ml_test_out_release).
 */
int ml_test_run(struct ml_test_out *o, const char *dir,
		const char *const *env, const char *stdin_data, int timeout_s,
		const char *const *argv);
void ml_test_out_release(struct ml_test_out *o);

/* Run mlctl (from $MLCTL_BIN, else bin/mlctl) with the given arguments in
 * dir; the ledger defaults to one in the scratch dir's parent when
 * MLCTL_LEDGER is not in env. */
int ml_test_mlctl(struct ml_test_out *o, const char *dir,
		  const char *const *env, const char *const *args);

/* mlctl with "--known-hosts known_hosts" before args (a fleet's file). */
int ml_test_mlctl_kh(struct ml_test_out *o, const char *dir,
		     const char *known_hosts, const char *const *env,
		     const char *const *args);

/*
 * The fleet harness: tests/fleet/fleet ARGS[0] --dir DIR ARGS[1...]. Returns
 * its exit status (printing its stderr when not 0); when keep is not NULL
 * the outputs are left there for the caller to release.
 */
int ml_test_fleet(struct ml_test_out *keep, const char *dir,
		  const char *const *args);

/* A whole file as a string; aborts the test run when it cannot be read. */
char *ml_test_slurp(const char *path);

/* A fresh scratch directory under $TMPDIR or /tmp; caller frees the path
 * and removes it with ml_test_rmtree. */
char *ml_test_tmpdir(const char *tag);
void ml_test_rmtree(const char *path);

/* Remove the ledger a suite kept beside its repository (MLCTL_LEDGER=
 * <repo>.ledger) and its companions: -wal, -shm, .key. */
void ml_test_ledger_remove(const char *repo);

/* Write a file (creating parent directories), mode 0644. */
void ml_test_write(const char *dir, const char *name, const char *text);

/* Write a file of bytes random bytes (weights that do not compress). */
void ml_test_write_random(const char *dir, const char *name, size_t bytes);

/* Run git with argv in dir, with a fixed identity and dates; fails the test
 * (abort) when git fails. Returns the trimmed stdout (caller frees). */
char *ml_test_git(const char *dir, const char *const *args);

/* Commit everything in dir with message; returns the new full sha. */
char *ml_test_commit(const char *dir, const char *message);

/* The repository root ($MLCTL_SRC or "."). */
const char *ml_test_src(void);

/* Read a file from the source tree into a new string. */
char *ml_test_read_src(const char *relpath);

/* The address of host in a fleet's inventory text (new string), or NULL. */
char *ml_test_fleet_address(const char *inventory, const char *host);

/* Write the example model API (examples/sentiment) into repo, with model
 * as its model.txt. */
void ml_test_example_app(const char *repo, const char *model);

/*
 * Skip the running cmocka case, naming the open issue it waits on, unless
 * ML_TEST_OPEN_ISSUES=1 asks for it: a case that states a promise mlctl
 * does not keep yet (a measured defect, tracked in the named issue) stays
 * in the suite and runs on request, without turning every run red.
 */
#define ML_TEST_OPEN_ISSUE(why)                                               \
	do {                                                                  \
		if (!getenv("ML_TEST_OPEN_ISSUES")) {                         \
			fprintf(stderr, "skipped, open issue: %s "            \
					"(ML_TEST_OPEN_ISSUES=1 runs it)\n", \
				why);                                         \
			skip();                                               \
		}                                                             \
	} while (0)

/*
 * Skip the running cmocka case because it is slow (minutes, or a random
 * fault that needs many runs to mean anything), unless ML_TEST_SLOW=1
 * (or ML_TEST_OPEN_ISSUES=1) asks for it; a benchmark under bench/ runs
 * it. why says how long it takes and what runs it.
 */
#define ML_TEST_SLOW(why)                                                      \
	do {                                                                  \
		if (!getenv("ML_TEST_SLOW") &&                                \
		    !getenv("ML_TEST_OPEN_ISSUES")) {                         \
			fprintf(stderr, "skipped, slow: %s "                  \
					"(ML_TEST_SLOW=1 runs it)\n",         \
				why);                                         \
			skip();                                               \
		}                                                             \
	} while (0)

/*
 * Fail the running cmocka case unless the program in o exited with want,
 * printing its stdout and stderr first. A macro, so that cmocka names the
 * caller's file and line.
 */
#define ml_test_must(o, want)                                                 \
	do {                                                                  \
		const struct ml_test_out *must_o_ = (o);                      \
		int must_want_ = (want);                                      \
		if (must_o_->status != must_want_)                            \
			print_error("mlctl exited %d, expected %d\n"          \
				    "--- stdout\n%s--- stderr\n%s\n",        \
				    must_o_->status, must_want_,              \
				    must_o_->out, must_o_->err);              \
		assert_int_equal(must_o_->status, must_want_);                \
	} while (0)

#endif
