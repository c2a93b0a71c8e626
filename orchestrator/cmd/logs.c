/*
 * mlctl logs [HOST...]: the app's containers' output on every app host (or
 * the hosts named), each line prefixed with host and container, merged in
 * time order; with -f, followed until Ctrl-C, across rollouts.
 *
 * How: each round asks every host's agent, in parallel, for the app's
 * containers (list) and for each container's lines newer than the last one
 * printed (container_logs with after_ns and Docker's timestamps). Rounds
 * run once (without -f) or every POLL_MS. A container seen for the first
 * time "joins" (its lines since the follow began are fetched, so a new
 * revision's first lines are not lost); one that stops or goes "leaves"
 * after its last lines. Both are said on stderr, so stdout holds only log
 * lines.
 *
 * Order: a round gathers lines from all hosts; they are printed sorted by
 * their Docker timestamp up to the round's start time (the watermark):
 * every host has answered for the time before it, so no later round can
 * bring an older line. Newer lines wait for the next round. Clocks of the
 * hosts are assumed to agree within a poll (NTP); lines of hosts whose
 * clocks do not are still printed, only less well ordered.
 *
 * Memory: what one round fetches (at most TAIL_FOLLOW lines of at most 4 KiB
 * per container, and the agent's 768 KiB reply budget) plus what waits past
 * the watermark, whatever the volume: a container printing faster than
 * that loses lines between polls, and a "lines skipped" notice says so.
 *
 * Text from the hosts is escaped twice over: the agent escapes control
 * bytes, and the controller escapes again (C1 controls included) in case an
 * agent did not, before anything reaches the terminal.
 */
#include "common/ml.h"
#include "common/buf.h"
#include "common/log.h"
#include "orchestrator/cmd/cmd.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/options.h"
#include "orchestrator/transport/transport.h"

#include <signal.h>
#include <time.h>

#define POLL_MS 1000
#define TAIL_DEFAULT 100  /* lines per container without -f */
#define TAIL_FOLLOW 10	  /* lines per container before following */
#define TAIL_ROUND 1000	  /* lines per container and round while following */
#define TAIL_MAX 10000

static const struct ml_option opt_follow = {
	OPT_FOLLOW, "follow", 'f', NULL,
	"keep printing new lines, across rollouts, until Ctrl-C"
};
static const struct ml_option opt_since = {
	OPT_SINCE, "since", 0, "DURATION|TIME",
	"only lines newer than this long ago (10m) or than a time "
	"(2026-12-01T20:00:00Z, or unix seconds)"
};
static const struct ml_option opt_tail = {
	OPT_TAIL, "tail", 'n', "N",
	"the last N lines of each container (default 100, 10 with -f)"
};
static const struct ml_option opt_timestamps = {
	OPT_TIMESTAMPS, "timestamps", 0, NULL,
	"print each line's time (UTC, as Docker recorded it)"
};
static const struct ml_option opt_revision = {
	OPT_REVISION, "revision", 'r', "N",
	"only the containers of revision N"
};

static const struct ml_option *const options[] = {
	&opt_follow, &opt_since,   &opt_tail,	   &opt_timestamps,
	&opt_revision, &ml_opt_json, &ml_opt_timeout, &ml_opt_tofu,
	&ml_opt_parallel, &ml_opt_commit, NULL,
};

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

struct entry {
	int64_t t; /* unix ns, 0 when Docker gave none */
	uint64_t seq; /* arrival order, for a stable sort */
	size_t host;
	char *container;
	int64_t revision;
	char *line;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

/* A container being followed on one host. */
struct followed {
	char *id, *name;
	int64_t revision;
	int64_t last_t; /* newest line printed or fetched, unix ns */
	bool seen;	/* listed and running in this round */
};

struct host_logs {
	struct followed *c;
	size_t nc;
	struct entries got; /* this round's lines */
	struct ml_buf notes; /* this round's joined/left notices */
	bool reported;	     /* its failure was said once */
};

struct logs_job {
	struct ml_host_session *hosts;
	struct host_logs *hl;
	const char *app;
	int64_t revision; /* -1: all */
	int64_t since_ns; /* 0: none */
	int64_t start_ns; /* when following began */
	int tail;
	bool follow;
	unsigned round;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void entries_add(struct entries *e, int64_t t, size_t host,
			const char *container, int64_t revision,
			const char *line)
{
	static uint64_t seq;

	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 64;
		e->v = ml_xrealloc(e->v, e->cap * sizeof(*e->v));
	}
	e->v[e->n++] = (struct entry){
		.t = t, .seq = seq++, .host = host,
		.container = ml_xstrdup(container), .revision = revision,
		.line = ml_xstrdup(line),
	};
}

static void entry_release(struct entry *e)
{
	free(e->container);
	free(e->line);
}

/* ---- one host, one round ------------------------------------------------ */

static struct followed *find_followed(struct host_logs *hl, const char *id)
{
	size_t i;

	for (i = 0; i < hl->nc; i++)
		if (!strcmp(hl->c[i].id, id))
			return &hl->c[i];
	return NULL;
}

/* Fetch c's new lines into hl->got. */
static int fetch(struct logs_job *job, size_t i, struct followed *c,
		 bool first)
{
	struct ml_host_session *h = &job->hosts[i];
	struct host_logs *hl = &job->hl[i];
	json_t *res = NULL, *e;
	int64_t after = c->last_t;
	int tail;
	size_t k;
	int rc;

	if (first && job->round == 0) {
		/* what was there before: the tail, maybe cut by --since */
		tail = job->tail;
		after = job->since_ns;
	} else {
		tail = TAIL_ROUND;
		if (first)
			after = job->since_ns > job->start_ns ? job->since_ns
							      : job->start_ns;
	}
	rc = ml_op_container_logs(h, c->id, true, tail, after, &res);
	if (rc < 0) {
		/*
		 * One container's trouble (gone between list and logs, being
		 * removed: Docker's 409) is not the host's: the next round's
		 * list tells whether the host itself still answers.
		 */
		if (rc != ML_ENOTFOUND && !first)
			ml_debug("%s: logs of %s: %s", h->target->name,
				 c->name, ml_err_msg());
		rc = 0;
		goto out;
	}
	if (json_is_true(json_object_get(res, "skipped")) && !first)
		ml_buf_addf(&hl->notes,
			    "%s: %s printed faster than it is read: lines "
			    "were skipped\n",
			    h->target->name, c->name);
	json_array_foreach(json_object_get(res, "entries"), k, e) {
		json_int_t t = json_integer_value(json_object_get(e, "t"));
		const char *line =
			json_string_value(json_object_get(e, "line"));

		if (!line)
			continue;
		entries_add(&hl->got, t, i, c->name, c->revision, line);
		if (t > c->last_t)
			c->last_t = t;
	}
out:
	if (!c->last_t)
		c->last_t = after > 0 ? after : job->start_ns;
	json_decref(res);
	return rc;
}

static int logs_one(size_t i, void *arg)
{
	struct logs_job *job = arg;
	struct ml_host_session *h = &job->hosts[i];
	struct host_logs *hl = &job->hl[i];
	json_t *res = NULL, *c;
	struct followed *f;
	size_t k, w;
	int rc;

	if (h->rc < 0)
		return h->rc;
	rc = ml_op_list(h, job->app, &res);
	if (rc < 0)
		goto fail;
	for (k = 0; k < hl->nc; k++)
		hl->c[k].seen = false;
	json_array_foreach(json_object_get(res, "containers"), k, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *name =
			json_string_value(json_object_get(c, "name"));
		const char *state =
			json_string_value(json_object_get(c, "state"));
		json_t *rev = json_object_get(c, "revision");
		bool first = false;

		if (!id || !name || !state || strcmp(state, "running"))
			continue;
		if (job->revision >= 0 &&
		    (!json_is_integer(rev) ||
		     json_integer_value(rev) != job->revision))
			continue;
		f = find_followed(hl, id);
		if (!f) {
			hl->c = ml_xrealloc(hl->c,
					    (hl->nc + 1) * sizeof(*hl->c));
			f = &hl->c[hl->nc++];
			*f = (struct followed){
				.id = ml_xstrdup(id), .name = ml_xstrdup(name),
				.revision = json_is_integer(rev)
						    ? json_integer_value(rev)
						    : -1,
			};
			first = true;
			if (job->follow && job->round > 0)
				ml_buf_addf(&hl->notes,
					    "%s: %s joined (revision %lld)\n",
					    h->target->name, name,
					    (long long)f->revision);
		}
		f->seen = true;
		rc = fetch(job, i, f, first);
		if (rc < 0)
			goto fail;
	}
	/* the ones that stopped or went: their last lines, then they leave */
	for (k = w = 0; k < hl->nc; k++) {
		f = &hl->c[k];
		if (f->seen) {
			hl->c[w++] = *f;
			continue;
		}
		rc = fetch(job, i, f, false);
		if (rc < 0)
			goto fail;
		ml_buf_addf(&hl->notes, "%s: %s left\n", h->target->name,
			    f->name);
		free(f->id);
		free(f->name);
	}
	hl->nc = w;
	json_decref(res);
	return 0;
fail:
	json_decref(res);
	ml_host_fail(h, rc);
	return rc;
}

/* ---- printing ----------------------------------------------------------- */

/*
 * s escaped for a terminal: ml_escape (C0 controls, DEL, invalid UTF-8),
 * and the C1 controls U+0080..U+009F as well, which some terminals obey.
 */
static const char *term_safe(struct ml_buf *b, const char *s)
{
	struct ml_buf tmp = ML_BUF_INIT(0);
	size_t i;

	ml_buf_reset(b);
	ml_escape(&tmp, s, strlen(s));
	for (i = 0; i < tmp.len; i++) {
		unsigned char c = (unsigned char)tmp.data[i];

		if (c == 0xc2 && i + 1 < tmp.len &&
		    (unsigned char)tmp.data[i + 1] >= 0x80 &&
		    (unsigned char)tmp.data[i + 1] <= 0x9f) {
			ml_buf_addf(b, "\\u%04x",
				    (unsigned char)tmp.data[i + 1]);
			i++;
		} else {
			ml_buf_addch(b, (char)c);
		}
	}
	ml_buf_release(&tmp);
	return b->data ? b->data : "";
}

static void fmt_ts(char out[48], int64_t t)
{
	time_t s = (time_t)(t / 1000000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(t % 1000000000 / 1000));
}

static void print_entry(const struct logs_job *job, const struct entry *e,
			bool json, bool stamps)
{
	const char *host = job->hosts[e->host].target->name;
	struct ml_buf a = ML_BUF_INIT(0), b = ML_BUF_INIT(0);
	char ts[48];

	fmt_ts(ts, e->t);
	if (json) {
		json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:I,s:s}", "time", ts,
				      "t_ns", (json_int_t)e->t, "host", host,
				      "container", e->container, "revision",
				      (json_int_t)e->revision, "line",
				      e->line);

		json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		if (stamps)
			printf("%s ", ts);
		printf("%s ", term_safe(&a, host));
		printf("%s | %s\n", term_safe(&a, e->container),
		       term_safe(&b, e->line));
	}
	ml_buf_release(&a);
	ml_buf_release(&b);
}

static int by_time(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;

	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Print the waiting lines up to watermark (INT64_MAX: all), in order. */
static void flush(const struct logs_job *job, struct entries *wait,
		  int64_t watermark, bool json, bool stamps)
{
	size_t i, w = 0;

	qsort(wait->v, wait->n, sizeof(*wait->v), by_time);
	for (i = 0; i < wait->n; i++) {
		if (wait->v[i].t > watermark) {
			wait->v[w++] = wait->v[i];
			continue;
		}
		print_entry(job, &wait->v[i], json, stamps);
		entry_release(&wait->v[i]);
	}
	wait->n = w;
	fflush(stdout);
}

/* ---- the verb ----------------------------------------------------------- */

static char *const *want_hosts;
static int nwant;

static bool want(const struct ml_target *t)
{
	int i;

	if (!t->is_app)
		return false;
	for (i = 0; i < nwant; i++)
		if (!strcmp(want_hosts[i], t->name))
			return true;
	return nwant == 0;
}

static int parse_since(int64_t *out_ns, const char *s)
{
	struct tm tm = { 0 };
	int64_t ms;
	const char *end;
	char *e;
	long long v;

	if (ml_parse_duration(&ms, s) == 0) {
		*out_ns = now_ns() - ms * 1000000;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end && (!strcmp(end, "Z") || !*end)) {
		*out_ns = (int64_t)timegm(&tm) * 1000000000;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &e, 10);
	if (!errno && e != s && !*e && v > 0) {
		*out_ns = (int64_t)v * 1000000000;
		return 0;
	}
	return ml_err_set(ML_EUSAGE,
			  "--since '%s' is neither a duration (10m) nor a "
			  "time (2026-12-01T20:00:00Z or unix seconds)",
			  s);
}

static int check_hosts(const struct ml_ctx *ctx)
{
	const struct ml_config *cfg = ctx->config;
	size_t k;
	int i;

	for (i = 0; i < ctx->argc; i++) {
		for (k = 0; k < cfg->ntargets; k++)
			if (cfg->targets[k].is_app &&
			    !strcmp(cfg->targets[k].name, ctx->argv[i]))
				break;
		if (k == cfg->ntargets)
			return ml_err_set(ML_ENOTFOUND,
					  "'%s' is not an app host of the "
					  "desired state",
					  ctx->argv[i]);
	}
	return 0;
}

static void sleep_until_next(int64_t round_start_ns)
{
	while (!stop && now_ns() - round_start_ns < (int64_t)POLL_MS * 1000000) {
		struct timespec ts = { 0, 50 * 1000000 };

		nanosleep(&ts, NULL);
	}
}

static int logs_run(struct ml_ctx *ctx)
{
	struct logs_job job = { 0 };
	struct ml_fleet_opts fo;
	struct ml_host_session *hosts = NULL;
	struct entries wait = { 0 };
	struct sigaction sa = { 0 }, old;
	bool json = ml_ctx_flag(ctx, OPT_JSON);
	bool stamps = ml_ctx_flag(ctx, OPT_TIMESTAMPS);
	size_t n = 0, i, k, down = 0;
	int64_t v;
	int rc;

	job.follow = ml_ctx_flag(ctx, OPT_FOLLOW);
	job.tail = job.follow ? TAIL_FOLLOW : TAIL_DEFAULT;
	job.revision = -1;
	if (ctx->opt[OPT_TAIL]) {
		rc = ml_parse_count(&v, ctx->opt[OPT_TAIL], "--tail");
		if (rc < 0)
			return rc;
		if (v < 1 || v > TAIL_MAX)
			return ml_err_set(ML_EUSAGE,
					  "--tail must be from 1 to %d", TAIL_MAX);
		job.tail = (int)v;
	} else if (ctx->opt[OPT_SINCE]) {
		job.tail = TAIL_MAX;
	}
	if (ctx->opt[OPT_REVISION]) {
		rc = ml_parse_count(&job.revision, ctx->opt[OPT_REVISION],
				    "--revision");
		if (rc < 0)
			return rc;
	}
	if (ctx->opt[OPT_SINCE]) {
		rc = parse_since(&job.since_ns, ctx->opt[OPT_SINCE]);
		if (rc < 0)
			return rc;
	}
	rc = check_hosts(ctx);
	if (rc < 0)
		return rc;
	rc = ml_fleet_opts_from_ctx(&fo, ctx);
	if (rc < 0)
		return rc;
	want_hosts = ctx->argv;
	nwant = ctx->argc;
	rc = ml_fleet_connect(&hosts, &n, ctx->config, &fo, want);
	if (rc < 0)
		return rc;
	job.hosts = hosts;
	job.hl = ml_xcalloc(n ? n : 1, sizeof(*job.hl));
	job.app = ctx->config->playbook->app;
	for (i = 0; i < n; i++)
		ml_buf_init(&job.hl[i].notes, 64 << 10);

	stop = 0;
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	job.start_ns = now_ns();
	for (;;) {
		int64_t round_start = now_ns();

		ml_parallel_run(n, fo.parallel, logs_one, &job);
		for (i = 0; i < n; i++) {
			struct host_logs *hl = &job.hl[i];

			for (k = 0; k < hl->got.n; k++) {
				if (wait.n == wait.cap) {
					wait.cap = wait.cap ? 2 * wait.cap : 256;
					wait.v = ml_xrealloc(
						wait.v,
						wait.cap * sizeof(*wait.v));
				}
				wait.v[wait.n++] = hl->got.v[k];
			}
			hl->got.n = 0;
			if (hosts[i].rc < 0 && !hl->reported && !stop) {
				/* said once; the other hosts go on */
				fprintf(stderr, "mlctl: %s: %s\n",
					hosts[i].target->name,
					hosts[i].error ? hosts[i].error : "");
				hl->reported = true;
			}
		}
		flush(&job, &wait, job.follow && !stop ? round_start : INT64_MAX,
		      json, stamps);
		for (i = 0; i < n; i++) {
			/* host and container names only: inventory names
			 * and Docker names, both of a checked alphabet */
			if (job.hl[i].notes.len)
				fwrite(job.hl[i].notes.data, 1,
				       job.hl[i].notes.len, stderr);
			ml_buf_reset(&job.hl[i].notes);
		}
		if (!job.follow || stop)
			break;
		job.round++;
		sleep_until_next(round_start);
		if (stop) {
			flush(&job, &wait, INT64_MAX, json, stamps);
			break;
		}
	}
	sigaction(SIGINT, &old, NULL);

	for (i = 0; i < n; i++) {
		if (hosts[i].rc < 0)
			down++;
		for (k = 0; k < job.hl[i].nc; k++) {
			free(job.hl[i].c[k].id);
			free(job.hl[i].c[k].name);
		}
		free(job.hl[i].c);
		free(job.hl[i].got.v);
		ml_buf_release(&job.hl[i].notes);
	}
	free(job.hl);
	free(wait.v);
	ml_fleet_close(hosts, n);
	if (down && !stop)
		return ml_err_set(ML_EHOST, "%zu of %zu host%s unreachable",
				  down, n, n == 1 ? " is" : "s are");
	return 0;
}

const struct ml_cmd ml_cmd_logs = {
	.name = "logs",
	.summary = "print the app's container logs across hosts, merged in "
		   "time order",
	.usage = "[--revision N] [-f] [--since DURATION|TIME] "
		 "[--tail N] [--timestamps] [--json] [HOST...]",
	.options = options,
	.flags = ML_CMD_NEEDS_CONFIG,
	.run = logs_run,
};
