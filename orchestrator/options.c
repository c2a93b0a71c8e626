/*
 * Option values (see options.h). One table says which options have a
 * rule; main.c runs it right after parsing the command line, so a typo in
 * --parallel or --wait is reported at once, not after minutes of image
 * building.
 */
#include "common/ml.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/options.h"

int ml_parse_count(int64_t *out, const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return ml_err_set(ML_EUSAGE, "%s must be a number, not '%s'",
				  what, s);
	*out = v;
	return 0;
}

int ml_optval_timeout(int64_t *out, const char *s)
{
	int64_t ms;

	if (ml_parse_duration(&ms, s) < 0 || ms <= 0 || ms > 3600000)
		return ml_err_set(ML_EUSAGE,
				  "--timeout must be a duration between 1ms "
				  "and 1h, like 5s, not '%s'",
				  s);
	*out = ms;
	return 0;
}

int ml_optval_parallel(int *out, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 256)
		return ml_err_set(ML_EUSAGE,
				  "--parallel must be a number from 1 to 256, "
				  "not '%s'",
				  s);
	*out = (int)v;
	return 0;
}

int ml_optval_wait(int64_t *out, const char *s)
{
	int64_t ms;

	if (ml_parse_duration(&ms, s) < 0 || ms < 0)
		return ml_err_set(ML_EUSAGE,
				  "--wait must be a duration like 30s or 5m, "
				  "not '%s'",
				  s);
	*out = ms;
	return 0;
}

static int check_timeout(const char *s)
{
	int64_t v;

	return ml_optval_timeout(&v, s);
}

static int check_parallel(const char *s)
{
	int v;

	return ml_optval_parallel(&v, s);
}

static int check_wait(const char *s)
{
	int64_t v;

	return ml_optval_wait(&v, s);
}

static int check_limit(const char *s)
{
	int64_t v;

	return ml_parse_count(&v, s, "--limit");
}

static int check_tail(const char *s)
{
	int64_t v;

	return ml_parse_count(&v, s, "--tail");
}

static const struct {
	enum ml_opt_id id;
	int (*check)(const char *value);
} rules[] = {
	{ OPT_TIMEOUT, check_timeout },
	{ OPT_PARALLEL, check_parallel },
	{ OPT_WAIT, check_wait },
	{ OPT_LIMIT, check_limit },
	{ OPT_TAIL, check_tail },
};

int ml_options_check(const struct ml_ctx *ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < ML_ARRAY_SIZE(rules); i++) {
		if (!ctx->opt[rules[i].id])
			continue;
		rc = rules[i].check(ctx->opt[rules[i].id]);
		if (rc < 0)
			return rc;
	}
	return 0;
}
