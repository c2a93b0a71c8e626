#ifndef ML_TEST_APP_H
#define ML_TEST_APP_H

/*
 * The example model API (examples/sentiment) in a scratch git repository,
 * set up to be deployed to the test fleet of $MLCTL_FLEET_DIR: what the
 * end-to-end suites that deploy share. The playbook and the first commit
 * are the suite's.
 */

struct ml_test_out;

struct ml_test_app {
	const char *fleet_dir; /* $MLCTL_FLEET_DIR */
	char *repo;	       /* the repository, a scratch dir */
	char *known_hosts;     /* the fleet's known_hosts */
	char *ledger_env;      /* "MLCTL_LEDGER=<repo>.ledger" */
	char *lb_addr;	       /* lb1's address */
};

/*
 * Fill a: a repository (tag names its scratch dir) holding the example
 * app's Dockerfile and www/, the fleet's inventory and a .gitignore for
 * the ledger, nothing committed. -1, with a message printed, when there
 * is no fleet or its inventory has no lb1.
 */
int ml_test_app_init(struct ml_test_app *a, const char *tag);

/* mlctl in the repository with the fleet's known hosts and the app's
 * ledger; extra (may be NULL) adds environment entries. */
int ml_test_app_mlctl(struct ml_test_out *o, const struct ml_test_app *a,
		      const char *const *extra, const char *const *args);

/* `mlctl remove` (the fleet is shared by the suites after this one; a
 * failure is printed), then the repository goes and a is freed. */
void ml_test_app_release(struct ml_test_app *a);

#endif
