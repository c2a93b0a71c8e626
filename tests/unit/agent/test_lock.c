/*
 * Unit tests of the fleet lock ops (agent/op_lock.c) on a private state
 * dir: acquire, status, renew, release, expiry and takeover, forced
 * release, a damaged lease file, and several processes acquiring at the
 * same instant (fork), of which exactly one may win.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "tests/support/proc.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#define RACERS 8
#define ROUNDS 5

static struct ml_agent ag;
static char *tmp;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static const struct ml_agent_op *op_named(const char *name)
{
	const struct ml_agent_op *const *ops;
	size_t n, i;

	ops = ml_agent_ops(&n);
	for (i = 0; i < n; i++)
		if (!strcmp(ops[i]->name, name))
			return ops[i];
	fail_msg("op %s is not in the dispatch table", name);
	return NULL;
}

/* Run op with args (stolen, NULL: {}); *res set on success. */
static int call(json_t **res, const char *op, json_t *args)
{
	json_t *r = NULL;
	int rc;

	if (!args)
		args = json_object();
	ml_err_clear();
	rc = op_named(op)->run(&ag, args, &r);
	json_decref(args);
	if (res)
		*res = r;
	else
		json_decref(r);
	return rc;
}

static char *acquire(const char *owner, int ttl_ms)
{
	json_t *res = NULL;
	char *token;

	assert_int_equal(
		call(&res, "lock_acquire",
		     json_pack("{s:s,s:s,s:i}", "owner", owner, "reason",
			       "deploy demo", "ttl_ms", ttl_ms)),
		0);
	assert_true(json_is_true(json_object_get(res, "acquired")));
	token = ml_xstrdup(json_string_value(json_object_get(res, "token")));
	assert_int_equal(strlen(token), 32);
	json_decref(res);
	return token;
}

static int setup(void **state)
{
	ml_agent_init(&ag);
	tmp = ml_test_tmpdir("lock");
	ag.state_dir = ml_xasprintf("%s/state/dir", tmp); /* made on demand */
	return 0;
}

static int teardown(void **state)
{
	free((char *)ag.state_dir);
	ml_test_rmtree(tmp);
	free(tmp);
	return 0;
}

static void test_lock__acquire_renew_release(void **state)
{
	json_t *res = NULL;
	struct stat st;
	char *path, *tok, *tok2;
	int64_t exp;

	/* free at first, even without a state dir */
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_false(json_is_true(json_object_get(res, "held")));
	assert_true(json_is_null(json_object_get(res, "owner")));
	json_decref(res);

	tok = acquire("ann@laptop pid 11", 60000);
	path = ml_xasprintf("%s/lock.json", ag.state_dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);

	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_true(json_is_true(json_object_get(res, "held")));
	assert_string_equal(json_string_value(json_object_get(res, "owner")),
			    "ann@laptop pid 11");
	assert_string_equal(json_string_value(json_object_get(res, "reason")),
			    "deploy demo");
	assert_null(json_object_get(res, "token"));
	exp = json_integer_value(json_object_get(res, "expires_at_ms"));
	assert_true(exp > json_integer_value(json_object_get(res, "now_ms")));
	json_decref(res);

	/* somebody else is refused, and told by whom and why */
	assert_int_equal(
		call(NULL, "lock_acquire",
		     json_pack("{s:s,s:s,s:i}", "owner", "bob@ci pid 7",
			       "reason", "hotfix", "ttl_ms", 60000)),
		ML_ELOCKED);
	assert_non_null(strstr(ml_err_msg(), "the fleet is locked by "
					     "ann@laptop pid 11 since "));
	assert_non_null(strstr(ml_err_msg(), "(reason: deploy demo), "
					     "expires in 60 s"));
	assert_string_equal(ml_proto_code_from_ml(ML_ELOCKED), "locked");
	assert_int_equal(ml_proto_code_to_ml("locked"), ML_ELOCKED);

	/* renew with the token extends, with another token fails */
	sleep_ms(5);
	assert_int_equal(
		call(&res, "lock_renew",
		     json_pack("{s:s,s:i}", "token", tok, "ttl_ms", 120000)),
		0);
	assert_true(json_integer_value(json_object_get(res, "expires_at_ms")) >
		    exp);
	json_decref(res);
	assert_int_equal(
		call(NULL, "lock_renew",
		     json_pack("{s:s,s:i}", "token", "0000", "ttl_ms", 1000)),
		ML_ELOCKED);
	assert_non_null(strstr(ml_err_msg(), "lock is not held by you"));
	assert_non_null(strstr(ml_err_msg(), "ann@laptop"));
	assert_int_equal(
		call(NULL, "lock_release", json_pack("{s:s}", "token", "0000")),
		ML_ELOCKED);

	/* release with the token; then it is free and can be taken */
	assert_int_equal(
		call(&res, "lock_release", json_pack("{s:s}", "token", tok)),
		0);
	assert_true(json_is_true(json_object_get(res, "released")));
	json_decref(res);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_false(json_is_true(json_object_get(res, "held")));
	json_decref(res);
	/* releasing again is harmless */
	assert_int_equal(
		call(&res, "lock_release", json_pack("{s:s}", "token", tok)),
		0);
	assert_false(json_is_true(json_object_get(res, "released")));
	json_decref(res);
	assert_int_equal(
		call(NULL, "lock_renew",
		     json_pack("{s:s,s:i}", "token", tok, "ttl_ms", 1000)),
		ML_ELOCKED);
	assert_non_null(strstr(ml_err_msg(), "it is free"));

	tok2 = acquire("bob@ci pid 7", 60000);
	assert_string_not_equal(tok, tok2);
	assert_int_equal(
		call(NULL, "lock_release", json_pack("{s:s}", "token", tok2)),
		0);
	free(tok);
	free(tok2);

	/* bad input */
	assert_int_equal(call(NULL, "lock_acquire",
			      json_pack("{s:s,s:i}", "owner", "", "ttl_ms", 5)),
			 ML_EPROTO);
	assert_int_equal(
		call(NULL, "lock_acquire", json_pack("{s:s}", "owner", "x")),
		ML_EPROTO);
	assert_int_equal(call(NULL, "lock_acquire",
			      json_pack("{s:s,s:i,s:i}", "owner", "x", "ttl_ms",
					5, "reason", 3)),
			 ML_EPROTO);
	assert_int_equal(call(NULL, "lock_acquire",
			      json_pack("{s:s,s:I}", "owner", "x", "ttl_ms",
					(json_int_t)1 << 40)),
			 ML_EPROTO);
	assert_int_equal(call(NULL, "lock_release", NULL), ML_EPROTO);
	assert_int_equal(
		call(NULL, "lock_renew", json_pack("{s:s}", "token", "x")),
		ML_EPROTO);
}

static void test_lock__expiry_and_takeover(void **state)
{
	json_t *res = NULL;
	char *old, *tok;

	old = acquire("crashed@host pid 99", 100);
	sleep_ms(150);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_false(json_is_true(json_object_get(res, "held")));
	assert_true(json_is_true(json_object_get(res, "expired")));
	assert_string_equal(json_string_value(json_object_get(res, "owner")),
			    "crashed@host pid 99");
	json_decref(res);

	/* an expired lease nobody took is still renewable by its holder */
	assert_int_equal(
		call(NULL, "lock_renew",
		     json_pack("{s:s,s:i}", "token", old, "ttl_ms", 100)),
		0);
	sleep_ms(150);

	/* a stale lease is taken over */
	assert_int_equal(call(&res, "lock_acquire",
			      json_pack("{s:s,s:s,s:i}", "owner", "new@host",
					"reason", "r", "ttl_ms", 60000)),
			 0);
	assert_string_equal(
		json_string_value(json_object_get(res, "took_over_from")),
		"crashed@host pid 99");
	tok = ml_xstrdup(json_string_value(json_object_get(res, "token")));
	json_decref(res);
	/* and the old holder has lost it */
	assert_int_equal(
		call(NULL, "lock_renew",
		     json_pack("{s:s,s:i}", "token", old, "ttl_ms", 1000)),
		ML_ELOCKED);
	assert_non_null(strstr(ml_err_msg(), "new@host"));
	assert_int_equal(
		call(NULL, "lock_release", json_pack("{s:s}", "token", old)),
		ML_ELOCKED);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_true(json_is_true(json_object_get(res, "held")));
	json_decref(res);

	/* forced release, as `mlctl lock release --force` does */
	assert_int_equal(
		call(&res, "lock_release", json_pack("{s:b}", "force", 1)), 0);
	assert_true(json_is_true(json_object_get(res, "released")));
	assert_string_equal(json_string_value(json_object_get(res, "owner")),
			    "new@host");
	json_decref(res);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	assert_false(json_is_true(json_object_get(res, "held")));
	assert_false(json_is_true(json_object_get(res, "expired")));
	json_decref(res);
	assert_int_equal(
		call(NULL, "lock_renew",
		     json_pack("{s:s,s:i}", "token", tok, "ttl_ms", 1000)),
		ML_ELOCKED);
	free(old);
	free(tok);
}

static void test_lock__damaged_file(void **state)
{
	char *path = ml_xasprintf("%s/lock.json", ag.state_dir);
	FILE *f;
	json_t *res = NULL;

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"owner\": 3", f);
	fclose(f);
	assert_int_equal(call(NULL, "lock_status", NULL), ML_EFAIL);
	assert_non_null(strstr(ml_err_msg(), "--force"));
	assert_int_equal(
		call(NULL, "lock_acquire",
		     json_pack("{s:s,s:i}", "owner", "x", "ttl_ms", 1000)),
		ML_EFAIL);
	assert_int_equal(
		call(NULL, "lock_release", json_pack("{s:s}", "token", "x")),
		ML_EFAIL);
	assert_int_equal(
		call(&res, "lock_release", json_pack("{s:b}", "force", 1)), 0);
	assert_true(json_is_true(json_object_get(res, "released")));
	json_decref(res);
	assert_int_equal(access(path, F_OK), -1);
	free(path);
	free(acquire("x", 1000));
	assert_int_equal(
		call(NULL, "lock_release", json_pack("{s:b}", "force", 1)), 0);
}

/* RACERS processes wait on a pipe, then all acquire at once. */
static void test_lock__concurrent_acquirers(void **state)
{
	int round, i, p[2], status, won, lost;
	pid_t pids[RACERS];
	char owner[32];

	for (round = 0; round < ROUNDS; round++) {
		assert_int_equal(pipe(p), 0);
		for (i = 0; i < RACERS; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				char c;
				int rc;

				close(p[1]);
				/* released by the parent closing the pipe */
				if (read(p[0], &c, 1) != 0)
					_exit(3);
				snprintf(owner, sizeof(owner), "racer %d", i);
				rc = call(NULL, "lock_acquire",
					  json_pack("{s:s,s:i}", "owner", owner,
						    "ttl_ms", 60000));
				_exit(rc == 0 ? 0 : rc == ML_ELOCKED ? 1 : 2);
			}
		}
		close(p[0]);
		close(p[1]);
		won = lost = 0;
		for (i = 0; i < RACERS; i++) {
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status));
			if (WEXITSTATUS(status) == 0)
				won++;
			else if (WEXITSTATUS(status) == 1)
				lost++;
		}
		assert_int_equal(won, 1);
		assert_int_equal(lost, RACERS - 1);
		assert_int_equal(call(NULL, "lock_release",
				      json_pack("{s:b}", "force", 1)),
				 0);
	}
}

/*
 * A lease whose holder is dead is taken over by compare-and-swap on its
 * generation: TAKERS processes that all read the same status at once
 * leave exactly one holder, TAKE_ROUNDS times in a row.
 */
#define TAKERS 3
#define TAKE_ROUNDS 100

static void test_lock__take_over_is_one_compare_and_swap(void **state)
{
	int round, i, p[2], status, won, lost;
	pid_t pids[TAKERS];
	int64_t gen, prev_gen = 0;
	json_t *res = NULL;
	char owner[32];

	(void)state;
	free(acquire("dead controller", 600000));
	for (round = 0; round < TAKE_ROUNDS; round++) {
		assert_int_equal(call(&res, "lock_status", NULL), 0);
		assert_true(json_is_true(json_object_get(res, "held")));
		gen = json_integer_value(json_object_get(res, "generation"));
		assert_true(gen > prev_gen);
		json_decref(res);
		assert_int_equal(pipe(p), 0);
		for (i = 0; i < TAKERS; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				char c;
				int rc;

				close(p[1]);
				if (read(p[0], &c, 1) != 0)
					_exit(3);
				snprintf(owner, sizeof(owner), "taker %d", i);
				rc = call(NULL, "lock_acquire",
					  json_pack("{s:s,s:i,s:I}", "owner",
						    owner, "ttl_ms", 600000,
						    "take_over",
						    (json_int_t)gen));
				_exit(rc == 0 ? 0 : rc == ML_ELOCKED ? 1 : 2);
			}
		}
		close(p[0]);
		close(p[1]);
		won = lost = 0;
		for (i = 0; i < TAKERS; i++) {
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status));
			if (WEXITSTATUS(status) == 0)
				won++;
			else if (WEXITSTATUS(status) == 1)
				lost++;
		}
		assert_int_equal(won, 1);
		assert_int_equal(lost, TAKERS - 1);
		prev_gen = gen;
	}
	/* a stale generation takes nothing */
	assert_int_equal(call(NULL, "lock_acquire",
			      json_pack("{s:s,s:i,s:I}", "owner", "late",
					"ttl_ms", 1000, "take_over",
					(json_int_t)prev_gen)),
			 ML_ELOCKED);
	assert_int_equal(call(NULL, "lock_release",
			      json_pack("{s:b}", "force", 1)),
			 0);
}

/* Generations only grow, even across a release; a request fenced with an
 * older generation than the newest seen is refused. */
static void test_lock__fence(void **state)
{
	json_t *res = NULL;
	int64_t g1, g2;
	char *t;

	(void)state;
	t = acquire("first", 60000);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	g1 = json_integer_value(json_object_get(res, "generation"));
	json_decref(res);
	assert_int_equal(call(NULL, "lock_release",
			      json_pack("{s:s}", "token", t)),
			 0);
	free(t);
	t = acquire("second", 60000);
	assert_int_equal(call(&res, "lock_status", NULL), 0);
	g2 = json_integer_value(json_object_get(res, "generation"));
	json_decref(res);
	assert_true(g2 > g1);
	free(t);

	res = json_pack("{s:I,s:s}", "generation", (json_int_t)g1, "owner",
			"first");
	assert_int_equal(ml_agent_fence_check(&ag, res), 0);
	json_decref(res);
	res = json_pack("{s:I,s:s}", "generation", (json_int_t)g2, "owner",
			"second");
	assert_int_equal(ml_agent_fence_check(&ag, res), 0);
	assert_int_equal(ml_agent_fence_check(&ag, res), 0);
	json_decref(res);
	res = json_pack("{s:I,s:s}", "generation", (json_int_t)g1, "owner",
			"first");
	assert_int_equal(ml_agent_fence_check(&ag, res), ML_ELOCKED);
	assert_non_null(strstr(ml_err_msg(), "lost the fleet lock"));
	assert_non_null(strstr(ml_err_msg(), "second"));
	json_decref(res);
	res = json_pack("{s:s}", "generation", "x");
	assert_int_equal(ml_agent_fence_check(&ag, res), ML_EPROTO);
	json_decref(res);
	assert_int_equal(call(NULL, "lock_release",
			      json_pack("{s:b}", "force", 1)),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lock__acquire_renew_release),
		cmocka_unit_test(test_lock__expiry_and_takeover),
		cmocka_unit_test(test_lock__damaged_file),
		cmocka_unit_test(test_lock__concurrent_acquirers),
		cmocka_unit_test(test_lock__take_over_is_one_compare_and_swap),
		cmocka_unit_test(test_lock__fence),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
