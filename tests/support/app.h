#ifndef ML_TEST_APP_H
#define ML_TEST_APP_H

/*
 * An example model API in a scratch git repository, set up to be deployed
 * to the test fleet of $MLCTL_FLEET_DIR: what the end-to-end suites that
 * deploy share. Two examples: examples/sentiment (a shell script behind
 * busybox httpd, for suites that need any container) and the Python one,
 * examples/iris (scikit-learn behind FastAPI on mlctl's base image), for
 * the suites that measure what a model API's users see. The playbook and
 * the first commit are the suite's.
 */

struct ml_test_out;

struct ml_test_app {
	const char *fleet_dir; /* $MLCTL_FLEET_DIR */
	char *repo;	       /* the repository, a scratch dir */
	char *known_hosts;     /* the fleet's known_hosts */
	char *ledger_env;      /* "MLCTL_LEDGER=<repo>.ledger" */
	char *lb_addr;	       /* lb1's address */
	char *cache;	       /* the Python example's controller cache */
	char *cache_env;       /* "MLCTL_CACHE_DIR=<cache>" (or NULL) */
	int timeout_s;	       /* each mlctl run's limit */
};

/*
 * Fill a: a repository (tag names its scratch dir) holding the example
 * app's Dockerfile and www/, the fleet's inventory and a .gitignore for
 * the ledger, nothing committed. -1, with a message printed, when there
 * is no fleet or its inventory has no lb1.
 */
int ml_test_app_init(struct ml_test_app *a, const char *tag);

/*
 * The same with the Python example: mlctl's base image built first (a
 * no-op once it is in the controller's Docker: minutes the first time),
 * app.py, requirements.txt and model/ copied, then `mlctl init --name app`
 * run, so the repository holds a Dockerfile and a playbook (the suite may
 * write its own), nothing committed. mlctl runs get 10 minutes (a first
 * deploy sends the base to every VM) and a cache of their own.
 */
int ml_test_app_init_python(struct ml_test_app *a, const char *tag,
			    const char *app);

/* Set the Python example's model version in repo/model/meta.json, whatever it
 * was: a weights-only change, not committed. The app names it as
 * "model_version" in /healthz and /predict. -1 (printed) when the file
 * has no version. */
int ml_test_model_version(const char *repo, const char *version);

/* mlctl in the repository with the fleet's known hosts and the app's
 * ledger; extra (may be NULL) adds environment entries. */
int ml_test_app_mlctl(struct ml_test_out *o, const struct ml_test_app *a,
		      const char *const *extra, const char *const *args);

/* `mlctl remove` (the fleet is shared by the suites after this one; a
 * failure is printed), then the repository goes and a is freed. */
void ml_test_app_release(struct ml_test_app *a);

/* The ids of the containers in state ("running", "paused") in the answer
 * of `mlctl status --json`, space-separated in host order, the caller's;
 * NULL when the text is not such an answer. */
char *ml_test_status_ids(const char *status_json, const char *state);

#endif
