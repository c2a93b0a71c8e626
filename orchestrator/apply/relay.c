/*
 * Relay of blobs between hosts (see relay.h). One deploy id per run names
 * the keys and authorized_keys lines on the hosts; every host that got
 * one is sent relay_end at the end, also after failures. Each round is
 * planned from what the hosts hold (apply/relay_plan.c), then run in two
 * phases so that no session is used by two threads at once: first keys
 * (per source) and relay_allow (per receiver, which has one sender per
 * round), then the transfers: one thread per source, sending to its
 * receivers one after another, and one per host the controller sends to.
 * The first round is the pipelined one when the hosts lack blobs no host
 * holds (a cold deploy): a chain whose hops all run at once, each host
 * passing on what it is still receiving ("follow"); a hop that fails
 * because its upstream did ("following blob ...") blames no pair, and the
 * rounds after it finish the job from what the hosts then hold.
 * Memory: the hosts-by-blobs matrix and one round.
 */
#include "common/ml.h"
#include "common/clock.h"
#include "common/fmt.h"
#include "common/log.h"
#include "orchestrator/apply/deliver.h"
#include "orchestrator/apply/relay.h"
#include "orchestrator/apply/relay_plan.h"
#include "orchestrator/config/config.h"
#include "orchestrator/fleet/fleet.h"
#include "orchestrator/fleet/ops.h"
#include "orchestrator/fleet/ops_relay.h"
#include "orchestrator/image/image.h"
#include "orchestrator/transport/transport.h"

#include <time.h>
#include <unistd.h>

#define RELAY_TTL_S 7200
#define RELAY_CONNECT_TIMEOUT_S 5
#define RELAY_UPSTREAM "following blob "

struct relay {
	struct ml_host_session *hosts;
	size_t n, m;
	const struct ml_image *img;
	struct ml_deliver_result *res;
	int (*send_direct)(struct ml_host_session *h, size_t i, void *arg);
	void *arg;
	const char **digests; /* m, borrowed from img */
	int64_t *sizes;
	unsigned char *have;   /* n * m */
	unsigned char *direct; /* n */
	unsigned char *used;   /* n: got a key or a line: relay_end */
	unsigned char *bad;    /* n * n: bad[to * n + from], a failed relay */
	int *src_fail, *dst_fail, *src_ok; /* n each */
	char **pub;			   /* n: public keys of sources */
	char deploy[64];
	struct ml_relay_round round;
	bool follow; /* the pipelined round: sources pass on what they lack */
	unsigned char *have0; /* n * m: what the hosts held when it began */
	struct ml_host_session *twin; /* n: second sessions to its heads */
	/* this round's work */
	size_t *tasks; /* transfer index of a controller send, or the first
			* transfer of a source's group */
	size_t ntasks;
	unsigned char *ok; /* per transfer of the round */
};

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		ml_warn("ignoring %s='%s': not a number from %ld to %ld", name,
			s, lo, hi);
		return def;
	}
	return v;
}

/* An on/off setting, on when unset. */
static bool env_on(const char *name)
{
	const char *s = getenv(name);

	if (!s || !*s || !strcmp(s, "on") || !strcmp(s, "1"))
		return true;
	if (strcmp(s, "off") && strcmp(s, "0"))
		ml_warn("ignoring %s='%s': say on or off", name, s);
	return strcmp(s, "off") && strcmp(s, "0");
}

static const char *name_of(const struct relay *r, size_t i)
{
	return r->hosts[i].target->name;
}

static const char *addr_of(const struct relay *r, size_t i)
{
	const struct ml_target *t = r->hosts[i].target;

	return t->address ? t->address : t->name;
}

static void have_all(struct relay *r, size_t i)
{
	memset(r->have + i * r->m, 1, r->m);
}

static int probe_one(size_t i, void *arg)
{
	struct relay *r = arg;
	struct ml_host_session *h = &r->hosts[i];
	json_t *res = NULL, *d;
	size_t k, b;

	if (h->rc < 0 || !h->target->is_app ||
	    ml_op_blobs_have(h, r->img, &res) < 0) {
		/* not ours to relay to: the delivery deals with it */
		have_all(r, i);
		r->direct[i] = 1;
		json_decref(res);
		return 0;
	}
	have_all(r, i);
	json_array_foreach(
		json_object_get(res, "missing"), k,
		d) for (b = 0; b < r->m;
			b++) if (json_is_string(d) &&
				 !strcmp(json_string_value(d), r->digests[b]))
		r->have[i * r->m + b] = 0;
	json_decref(res);
	return 0;
}

/* Phase 1 of a round, per task: a source's key, or a receiver's line. */
static int key_one(size_t t, void *arg)
{
	struct relay *r = arg;
	size_t s = r->tasks[t];
	json_t *res = NULL;

	r->used[s] = 1;
	if (ml_op_relay_key(&r->hosts[s], r->deploy, &res) < 0) {
		fprintf(stderr,
			"mlctl: %s cannot relay (%s); the controller sends to "
			"its receivers directly\n",
			name_of(r, s), ml_err_msg());
		r->direct[s] = 2; /* cannot send; may still receive later */
	} else {
		r->pub[s] = ml_xstrdup(
			json_string_value(json_object_get(res, "public_key"))
				?: "");
	}
	json_decref(res);
	return 0;
}

static int allow_one(size_t t, void *arg)
{
	struct relay *r = arg;
	struct ml_relay_xfer *x = &r->round.x[r->tasks[t]];
	size_t to = (size_t)x->to, from = (size_t)x->from;

	if (r->direct[from] || !r->pub[from])
		return 0; /* its source has no key: next round */
	r->used[to] = 1;
	if (ml_op_relay_allow(&r->hosts[to], r->deploy, r->pub[from],
			      addr_of(r, from), RELAY_TTL_S, NULL) < 0) {
		fprintf(stderr,
			"mlctl: %s: cannot accept a relay from %s (%s); the "
			"controller sends to %s directly\n",
			name_of(r, to), name_of(r, from), ml_err_msg(),
			name_of(r, to));
		r->direct[to] = 1;
		return 0;
	}
	r->ok[r->tasks[t]] = 1; /* allowed: may be sent */
	return 0;
}

/* Transfer xi of the round; with probe only its connection is tried. */
static void relay_xfer(struct relay *r, size_t xi, bool probe)
{
	struct ml_relay_xfer *x = &r->round.x[xi];
	size_t from = (size_t)x->from, to = (size_t)x->to, k;
	struct ml_host_session *hs = &r->hosts[from];
	const struct ml_target *t = r->hosts[to].target;
	json_t *digests = probe ? NULL : json_array(), *follow = NULL;
	json_t *res = NULL;
	char *hkey = NULL;
	int64_t ms;
	int rc;

	r->ok[xi] = 0;
	for (k = 0; !probe && k < x->nblobs; k++) {
		size_t b = x->blobs[k];

		json_array_append_new(digests, json_string(r->digests[b]));
		if (!r->follow || r->have0[from * r->m + b])
			continue;
		if (!follow)
			follow = json_object();
		json_object_set_new(follow, r->digests[b],
				    json_integer(r->sizes[b]));
	}
	rc = ml_ssh_host_key(&hkey, r->hosts[to].ssh);
	if (rc < 0) {
		json_decref(digests);
		json_decref(follow);
		goto out;
	}
	/* two minutes, and a second per MiB: the op streams without
	 * replying, and a busy host may be slow */
	ms = probe ? 30000 : 120000 + x->bytes / (1 << 20) * 1000;
	ml_ssh_chan_set_timeout(hs->chan, (int)(ms < 21600000 ? ms : 21600000));
	rc = ml_op_relay_send(hs, r->deploy, addr_of(r, to),
			      t->port ? t->port : 22,
			      t->user ? t->user : "root", hkey, digests, follow,
			      RELAY_CONNECT_TIMEOUT_S, &res);
	ml_ssh_chan_set_timeout(hs->chan, 60000);
out:
	if (rc < 0) {
		/* whose fault: a host that fails twice, and never succeeded,
		 * is given up on; the pair is never tried again */
		bool agent_said =
			!strncmp(ml_err_msg(), "relay_send failed: ", 19);

		fprintf(stderr, "mlctl: relay from %s to %s failed (%s)\n",
			name_of(r, from), name_of(r, to), ml_err_msg());
		if (agent_said && strstr(ml_err_msg(), RELAY_UPSTREAM)) {
			/* what it was passing on stopped coming: not this
			 * pair's fault; the next rounds resume from it */
			goto done;
		}
		if (!agent_said) {
			/* the controller's own channel broke: that session
			 * cannot be trusted to be at a reply boundary */
			ml_host_fail(hs, rc);
			r->direct[from] = 2;
		}
		r->bad[to * r->n + from] = 1;
		if (++r->src_fail[from] >= 2 && !r->src_ok[from] &&
		    !r->direct[from]) {
			fprintf(stderr,
				"mlctl: %s cannot reach the other hosts; it "
				"relays no more\n",
				name_of(r, from));
			r->direct[from] = 2;
		}
		if (++r->dst_fail[to] >= 2) {
			fprintf(stderr,
				"mlctl: %s cannot be reached from the other "
				"hosts; the controller sends to %s directly\n",
				name_of(r, to), name_of(r, to));
			r->direct[to] = 1;
		}
	} else if (probe) {
		r->ok[xi] = 1;
	} else {
		for (k = 0; k < x->nblobs; k++)
			r->have[to * r->m + x->blobs[k]] = 1;
		r->src_ok[from] = 1;
		r->res[to].relayed_from = name_of(r, from);
		json_t *bl;
		int64_t got =
			json_integer_value(json_object_get(res, "bytes_sent"));

		/* what the host received counts as delivered to it, as if
		 * the controller had sent it (plan and ledger agree) */
		r->res[to].relayed_bytes += got;
		r->res[to].raw_bytes += got;
		json_array_foreach(json_object_get(res, "blobs"), k, bl)
			r->res[to]
				.blobs_sent +=
			!json_is_true(json_object_get(bl, "existed"));
		r->ok[xi] = 1;
	}
done:
	json_decref(res);
	free(hkey);
}

/* Phase 2 of a round, per task: a controller send, or a source's group. */
static int send_one(size_t t, void *arg)
{
	struct relay *r = arg;
	size_t xi = r->tasks[t], j;
	struct ml_relay_xfer *x = &r->round.x[xi];

	if (x->from == ML_RELAY_FROM_CONTROLLER) {
		struct ml_host_session *tw = &r->twin[x->to];

		if (r->send_direct(tw->io ? tw : NULL, (size_t)x->to, r->arg) ==
		    0)
			have_all(r, (size_t)x->to);
		else
			r->direct[x->to] = 1; /* the delivery reports it */
		r->ok[xi] = 1;
		return 0;
	}
	for (j = xi; j < r->round.n; j++)
		if (r->round.x[j].from == x->from && r->ok[j])
			relay_xfer(r, j, false);
	return 0;
}

/* Before the pipelined round, per hop: can its source reach its receiver?
 * (A hop that fails later leaves everyone after it waiting.) */
static int probe_hop(size_t t, void *arg)
{
	struct relay *r = arg;

	relay_xfer(r, r->tasks[t], true);
	return 0;
}

/* The index of the pipelined round's hop from host h, or rd->n. */
static size_t hop_from(const struct ml_relay_round *rd, int h)
{
	size_t i;

	for (i = 0; i < rd->n && rd->x[i].from != h; i++)
		;
	return i;
}

/* A chain's head: a second session, for the controller to send over
 * while the head's own session passes the blobs on. */
static int twin_one(size_t t, void *arg)
{
	struct relay *r = arg;
	size_t to = (size_t)r->round.x[r->tasks[t]].to;
	size_t hop = hop_from(&r->round, (int)to);

	if (ml_host_connect_twin(&r->twin[to], &r->hosts[to]) < 0) {
		fprintf(stderr,
			"mlctl: %s: cannot open a second session (%s); it "
			"passes nothing on\n",
			name_of(r, to), r->twin[to].error ?: ml_err_msg());
		ml_host_close(&r->twin[to]);
		if (hop < r->round.n)
			r->ok[hop] = 0;
	}
	return 0;
}

static void run_round(struct relay *r, int parallel)
{
	struct ml_relay_round *rd = &r->round;
	size_t i, j;

	r->ok = ml_xcalloc(rd->n ? rd->n : 1, 1);
	r->tasks = ml_xcalloc(rd->n ? rd->n : 1, sizeof(*r->tasks));
	/* keys of the sources that have none yet */
	r->ntasks = 0;
	for (i = 0; i < rd->n; i++) {
		int f = rd->x[i].from;
		bool seen = false;

		if (f == ML_RELAY_FROM_CONTROLLER || r->pub[f])
			continue;
		for (j = 0; j < r->ntasks; j++)
			seen = seen || r->tasks[j] == (size_t)f;
		if (!seen)
			r->tasks[r->ntasks++] = (size_t)f;
	}
	ml_parallel_run(r->ntasks, parallel, key_one, r);
	/* authorized_keys lines on the receivers of relays */
	r->ntasks = 0;
	for (i = 0; i < rd->n; i++)
		if (rd->x[i].from != ML_RELAY_FROM_CONTROLLER)
			r->tasks[r->ntasks++] = i;
	ml_parallel_run(r->ntasks, parallel, allow_one, r);
	if (r->follow) {
		r->ntasks = 0;
		for (i = 0; i < rd->n; i++)
			if (rd->x[i].from != ML_RELAY_FROM_CONTROLLER &&
			    r->ok[i])
				r->tasks[r->ntasks++] = i;
		ml_parallel_run(r->ntasks, parallel, probe_hop, r);
		r->ntasks = 0;
		for (i = 0; i < rd->n; i++)
			if (rd->x[i].from == ML_RELAY_FROM_CONTROLLER &&
			    hop_from(rd, rd->x[i].to) < rd->n &&
			    r->ok[hop_from(rd, rd->x[i].to)])
				r->tasks[r->ntasks++] = i;
		ml_parallel_run(r->ntasks, parallel, twin_one, r);
		/* a hop whose source will get nothing to pass on is dropped
		 * (the hops are in chain order: one pass carries it down) */
		for (i = 0; i < rd->n; i++) {
			int f = rd->x[i].from;

			if (f == ML_RELAY_FROM_CONTROLLER || !r->ok[i])
				continue;
			for (j = 0; j < i; j++)
				if (rd->x[j].to == f &&
				    rd->x[j].from != ML_RELAY_FROM_CONTROLLER &&
				    !r->ok[j])
					r->ok[i] = 0;
		}
	}
	/* the transfers: controller sends, and one task per source */
	r->ntasks = 0;
	for (i = 0; i < rd->n; i++) {
		bool first = true;

		if (rd->x[i].from != ML_RELAY_FROM_CONTROLLER) {
			if (!r->ok[i])
				continue;
			for (j = 0; j < i; j++)
				if (rd->x[j].from == rd->x[i].from && r->ok[j])
					first = false;
		}
		if (first)
			r->tasks[r->ntasks++] = i;
	}
	if (r->follow)
		memcpy(r->have0, r->have, r->n * r->m);
	ml_parallel_run(r->ntasks, parallel, send_one, r);
	for (i = 0; i < r->n; i++)
		if (r->twin[i].target)
			ml_host_close(&r->twin[i]);
	free(r->ok);
	free(r->tasks);
	r->ok = NULL;
	r->tasks = NULL;
}

static int end_one(size_t i, void *arg)
{
	struct relay *r = arg;

	/* a host that failed (a full disk, say) still gets its keys
	 * removed while its session stands */
	if (!r->used[i] || !r->hosts[i].io)
		return 0;
	if (ml_op_relay_end(&r->hosts[i], r->deploy, NULL) < 0)
		ml_warn("%s: cannot remove the relay keys of deploy %s: %s",
			name_of(r, i), r->deploy, ml_err_msg());
	return 0;
}

int ml_relay_run(struct ml_host_session *hosts, size_t n,
		 const struct ml_image *img, int parallel,
		 struct ml_deliver_result *res,
		 int (*send_direct)(struct ml_host_session *h, size_t i,
				    void *arg),
		 void *arg)
{
	struct relay r = {0};
	struct ml_relay_in in = {0};
	long seeds = env_long("MLCTL_RELAY_SEEDS", 1, 1, 64);
	long fanout = env_long("MLCTL_RELAY_FANOUT", 1, 1, 64);
	long min_bytes =
		env_long("MLCTL_RELAY_MIN_BYTES", 8L << 20, 0, 1L << 62);
	bool chain = env_on("MLCTL_RELAY_PIPELINE"), piped = false;
	size_t i, b, k, lacking = 0, rounds = 0, relayed = 0;
	int64_t most = 0, ctl0 = 0, ctl1 = 0, t0 = ml_mono_ms();
	unsigned char *rnd;
	char a[ML_FMT_MAX], c[ML_FMT_MAX];

	if (!env_on("MLCTL_RELAY") || n < 2)
		return 0;
	r.hosts = hosts;
	r.n = n;
	r.img = img;
	r.res = res;
	r.send_direct = send_direct;
	r.arg = arg;
	r.digests = ml_xcalloc(img->nlayers + 1, sizeof(*r.digests));
	r.sizes = ml_xcalloc(img->nlayers + 1, sizeof(*r.sizes));
	r.digests[r.m] = img->config_digest;
	r.sizes[r.m++] = img->config_size;
	for (k = 0; k < img->nlayers; k++) {
		for (b = 0; b < r.m; b++)
			if (!strcmp(r.digests[b], img->layers[k]))
				break;
		if (b < r.m)
			continue; /* a layer listed twice is one blob */
		r.digests[r.m] = img->layers[k];
		r.sizes[r.m++] = img->layer_sizes[k];
	}
	r.have = ml_xcalloc(n * r.m, 1);
	r.have0 = ml_xcalloc(n * r.m, 1);
	r.twin = ml_xcalloc(n, sizeof(*r.twin));
	r.direct = ml_xcalloc(n, 1);
	r.used = ml_xcalloc(n, 1);
	r.pub = ml_xcalloc(n, sizeof(*r.pub));
	r.bad = ml_xcalloc(n * n, 1);
	r.src_fail = ml_xcalloc(n, sizeof(int));
	r.dst_fail = ml_xcalloc(n, sizeof(int));
	r.src_ok = ml_xcalloc(n, sizeof(int));
	ml_parallel_run(n, parallel, probe_one, &r);
	for (i = 0; i < n; i++) {
		int64_t need = 0;

		for (b = 0; b < r.m; b++)
			if (!r.have[i * r.m + b])
				need += r.sizes[b];
		lacking += need > 0;
		most = need > most ? need : most;
	}
	if (lacking < 2 || most < min_bytes) {
		ml_debug("relay: not worth it (%zu hosts lack blobs, at most "
			 "%lld bytes)",
			 lacking, (long long)most);
		goto out;
	}
	rnd = (unsigned char[4]){0};
	if (getentropy(rnd, 4) < 0)
		memset(rnd, 0, 4);
	snprintf(r.deploy, sizeof(r.deploy), "d%lld-%ld-%02x%02x%02x%02x",
		 (long long)time(NULL), (long)getpid(), rnd[0], rnd[1], rnd[2],
		 rnd[3]);
	for (i = 0; i < n; i++)
		ctl0 += res[i].raw_bytes - res[i].relayed_bytes;
	in.nhosts = n;
	in.nblobs = r.m;
	in.sizes = r.sizes;
	in.have = r.have;
	in.direct = r.direct;
	in.bad = r.bad;
	in.seeds = (int)seeds;
	in.fanout = (int)fanout;
	/* every hop of the chain at once: one thread each */
	in.chain = chain && parallel > 1 ? (size_t)parallel : 0;
	for (rounds = 0; rounds <= n * r.m + 1; rounds++) {
		r.follow = rounds == 0 && in.chain;
		if (r.follow)
			ml_relay_plan_chain(&r.round, &in);
		if (!r.follow || !r.round.n) {
			r.follow = false;
			ml_relay_plan_round(&r.round, &in);
		}
		if (!r.round.n)
			break;
		ml_debug("relay: round %zu, %zu transfers%s", rounds + 1,
			 r.round.n, r.follow ? ", pipelined" : "");
		piped = piped || r.follow;
		run_round(&r, parallel);
		ml_relay_round_release(&r.round);
	}
	ml_relay_round_release(&r.round);
	ml_parallel_run(n, parallel, end_one, &r);
	for (i = 0; i < n; i++) {
		for (b = 0; b < r.m && !r.direct[i]; b++)
			if (!r.have[i * r.m + b]) {
				fprintf(stderr,
					"mlctl: %s: no host could relay to "
					"it; the controller sends to %s "
					"directly\n",
					name_of(&r, i), name_of(&r, i));
				break;
			}
	}
	for (i = 0; i < n; i++) {
		ctl1 += res[i].raw_bytes - res[i].relayed_bytes;
		relayed += res[i].relayed_from != NULL;
	}
	ml_info("relay: %zu host%s got the image from other hosts, the "
		"controller sent %s in %zu round%s%s (%s)",
		relayed, relayed == 1 ? "" : "s", ml_fmt_bytes(a, ctl1 - ctl0),
		rounds, rounds == 1 ? "" : "s",
		piped ? ", the first pipelined" : "",
		ml_fmt_duration(c, ml_mono_ms() - t0));
out:
	for (i = 0; i < n; i++)
		free(r.pub[i]);
	free(r.pub);
	free(r.bad);
	free(r.src_fail);
	free(r.dst_fail);
	free(r.src_ok);
	free(r.used);
	free(r.direct);
	free(r.have);
	free(r.have0);
	free(r.twin);
	free(r.sizes);
	free(r.digests);
	return 0;
}
