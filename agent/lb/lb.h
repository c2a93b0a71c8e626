#ifndef ML_AGENT_LB_H
#define ML_AGENT_LB_H

/*
 * HAProxy on a load-balancer host, as the agent drives it: the API the
 * lb_* ops use (agent/lb/README.md says which file of the folder holds
 * what; the files share internal.h). One HAProxy master-worker instance
 * per app, its files in <state_dir>/haproxy/<app>/:
 *
 *	haproxy.cfg	the running configuration (rendered here, never edited)
 *	haproxy.cfg.new	a candidate while it is checked (haproxy -c)
 *	haproxy.pid	the master's pid (pidfile in the config)
 *	admin.sock	runtime API, level admin, expose-fd listeners
 *	master.sock	master CLI (reload)
 *	server-state	`show servers state`, saved before each reload
 *	apply.flock	flock(2) held while an op changes this instance
 *	haproxy.log	HAProxy's stderr from the last start
 *
 * Everything placed in a configuration comes from a struct ml_lb_config that
 * ml_lb_config_from_json() validated: names, addresses, paths and numbers
 * only, never a space, a newline, a '#' or a quote, so input cannot add a
 * directive. HAProxy is run with argv vectors (fork/execv), never a shell.
 */

#include "common/ml.h"

#include <jansson.h>

#define ML_LB_NAME_MAX 64  /* app and server names */
#define ML_LB_HOST_MAX 253 /* a DNS name */
#define ML_LB_PATH_MAX 200 /* health check path */
#define ML_LB_MAX_SERVERS 1000
#define ML_LB_WEIGHT_MAX 256
#define ML_HAPROXY_REPLY_MAX ((size_t)4 << 20) /* runtime API answers */
#define ML_HAPROXY_TIMEOUT_MS 5000	       /* one runtime API command */
#define ML_HAPROXY_START_MS 10000 /* start or reload until a worker answers */

/*
 * The per-request log: a ring buffer in the worker, one line per request
 * in ML_HAPROXY_LOG_FORMAT: accept time (unix seconds with milliseconds),
 * server, HTTP status, total active time Ta and server response time Tr
 * (ms, -1 when there was no response), termination state. 4 MiB keeps
 * about a minute at 1000 requests/s.
 */
#define ML_HAPROXY_RING "mlctl_requests"
#define ML_HAPROXY_RING_LINE 256
#define ML_HAPROXY_RING_SIZE ((size_t)2 << 20)
#define ML_HAPROXY_LOG_FORMAT "%Ts.%ms %s %ST %Ta %Tr %tsc"

enum ml_lb_state {
	ML_LB_READY = 0,
	ML_LB_DRAIN,
	ML_LB_MAINT,
};

/* A health check of its own for one server (see ml_lb_config). */
struct ml_lb_check {
	char *path;
	long interval_ms, timeout_ms;
	int rise, fall;
	char *expect; /* http-check expect lines, NULL: 200-399 */
};

struct ml_lb_server {
	char *name;    /* [A-Za-z0-9][A-Za-z0-9._-]*, unique in the backend */
	char *address; /* IPv4, IPv6 or a DNS name */
	int port;
	enum ml_lb_state state;
	int weight; /* 0..ML_LB_WEIGHT_MAX */
	/* NULL: the backend's check. Else the check this server took
	 * traffic with (an older revision's, while a new revision with
	 * another check rolls out): rendered as a check-only backend
	 * "chk_<app>_<hash of the check>" that the server tracks, so a
	 * change of the health check never applies to servers already
	 * serving. */
	struct ml_lb_check *check;
};

struct ml_lb_config {
	char *app;  /* backend name, also the instance directory */
	char *bind; /* address the frontends bind, default 0.0.0.0 */
	int listen_port;
	int stats_port;	       /* Prometheus exporter at /metrics, 0: none */
	char *metrics_bind;    /* its address, default 127.0.0.1, never any */
	char *balance;	       /* roundrobin, leastconn or random */
	char *health_path;     /* GET this, 2xx or 3xx is healthy */
	char *health_expect;   /* http-check expect lines, NULL: 200-399 */
	long interval_ms;      /* between checks */
	long timeout_ms;       /* of one check */
	int rise, fall;	       /* checks in a row to change state */
	long drain_timeout_ms; /* how long an old worker may finish requests */
	/* tls.c: secrets from the controller, wiped on release */
	char *tls_pem;	   /* certificate chain + key, or NULL: no TLS */
	char tls_id[17];   /* its stored file's name (tls.h) */
	int redirect_port; /* plain HTTP answering 301 to https, 0: none */
	char *stats_user;  /* basic auth on the exporter, NULL: none */
	char *stats_password;
	struct ml_lb_server *servers;
	size_t nr_servers;
};

/* Names: 1..ML_LB_NAME_MAX of [A-Za-z0-9._-], starting with a letter or
 * digit. */
bool ml_lb_valid_name(const char *s);

/* "ready", "drain", "maint" -> enum; ML_EPROTO on others. */
int ml_lb_state_parse(enum ml_lb_state *out, const char *s);

/*
 * Read and validate lb_apply's args (see op_lb_apply.c) into *out, with
 * defaults for what is absent. Every error is ML_EPROTO naming the field
 * ("lb_apply: servers[2].address '...' is not ..."), the value escaped.
 * Release *out with ml_lb_config_release() whatever the result.
 */
int ml_lb_config_from_json(struct ml_lb_config *out, json_t *args);
void ml_lb_config_release(struct ml_lb_config *c);

/* The files of one instance; all strings owned. */
struct ml_haproxy {
	char *app;
	char *dir;
	char *cfg, *cfg_new, *cfg_old;
	char *pidfile, *admin_sock, *master_sock;
	char *state_file, *state_tmp, *lock_file, *log_file;
	char *bin;   /* $MLCTL_HAPROXY_BIN, /usr/sbin/haproxy or "haproxy" */
	int lock_fd; /* -1 when not locked */
	long timeout_ms; /* per runtime API command */
	long start_ms;	 /* start/reload until a new worker answers */
};

/*
 * Compute the paths of app's instance under state_dir; nothing touches the
 * disk. ML_EPROTO for an invalid app name, ML_ETOOBIG when a socket path
 * would not fit a sockaddr_un. Release with ml_haproxy_release().
 */
int ml_haproxy_init(struct ml_haproxy *h, const char *state_dir,
		    const char *app);
void ml_haproxy_release(struct ml_haproxy *h);

/* Create the instance directory (0700) and its parents. */
int ml_haproxy_mkdir(struct ml_haproxy *h);

/* Write len bytes to path (created 0600, truncated) and fsync it. */
int ml_haproxy_write_file(const char *path, const void *p, size_t len);

/* Take the instance's flock (blocking up to h->start_ms); released by
 * ml_haproxy_release(). */
int ml_haproxy_lock(struct ml_haproxy *h);

/*
 * Render the configuration for c into out (appended), deterministic: the
 * same config gives the same bytes. The second line is a comment with the
 * SHA-256 of the configuration rendered without server states and weights
 * (see ml_haproxy_structure()), which decides whether a reload is needed.
 * Fails only with ML_ETOOBIG.
 */
int ml_haproxy_render(struct ml_buf *out, const struct ml_lb_config *c,
		      const struct ml_haproxy *h);

/* The structure digest of a rendered configuration (its second line) in
 * hex; false when text has none. */
bool ml_haproxy_structure(char hex[65], const char *text);

/*
 * Run `haproxy -c -f path`. 0 when HAProxy accepts it; ML_EINVALID with
 * HAProxy's [ALERT] lines (escaped) when it does not; ML_EFAIL when it
 * cannot be run or takes longer than h->start_ms.
 */
int ml_haproxy_check(const struct ml_haproxy *h, const char *path);

/*
 * The pid of this instance's master in *out, 0 when none runs: the pidfile
 * names a live process whose executable is haproxy and whose command line
 * has "-f <h->cfg>", so a recycled pid is never taken for ours.
 */
int ml_haproxy_master_pid(pid_t *out, const struct ml_haproxy *h);

/*
 * Start the master in the background (haproxy -W -D -f cfg -S master.sock)
 * in its own session, stdio on /dev/null and haproxy.log, no descriptor of
 * ours inherited; wait until a worker answers on the admin socket and the
 * master CLI lists it (before that, a signal to the master is lost).
 * *master gets its pid. ML_EFAIL with HAProxy's alerts when it does not start.
 */
int ml_haproxy_start(pid_t *master, const struct ml_haproxy *h);

/*
 * Seamless reload of a running master: `reload` on the master CLI (SIGUSR2
 * when the CLI does not answer), then wait until the admin socket is
 * answered by a worker other than old_worker and the master CLI lists it
 * (the master has re-executed itself and takes signals again). ML_EFAIL on
 * timeout, the old worker then still serving with the previous
 * configuration.
 */
int ml_haproxy_reload(const struct ml_haproxy *h, pid_t master,
		      pid_t old_worker);

/* The pid of the worker answering on the admin socket (`show info`). */
int ml_haproxy_worker_pid(pid_t *out, const struct ml_haproxy *h);

/*
 * Runtime API: connect to the unix socket at path, send cmd and "\n", shut
 * the write side down (the master CLI waits for it), read the answer until
 * EOF into out (appended; bounded by ML_HAPROXY_REPLY_MAX and out->max),
 * each wait bounded by timeout_ms. cmd must be one line.
 */
int ml_haproxy_cmd(struct ml_buf *out, const char *path, const char *cmd,
		   long timeout_ms);

/* Set a server's weight (weight >= 0) and then its admin state. */
int ml_haproxy_set_server(const struct ml_haproxy *h, const char *server,
			  enum ml_lb_state state, int weight);

/* `show servers state` into the server-state file (tmp + rename), with
 * the check health carried to where next checks each server
 * (ml_haproxy_carry_checks), so the next worker starts with the running
 * state. */
int ml_haproxy_save_state(const struct ml_haproxy *h,
			  const struct ml_lb_config *next);

/* The rows of `show stat` / `show servers state <app>`, parsed. */
int ml_haproxy_show_stat(json_t **out, const struct ml_haproxy *h);
int ml_haproxy_show_servers(json_t **out, const struct ml_haproxy *h);

/*
 * Admin state word of a `show servers state` srv_admin_state value:
 * "maint" for forced, inherited or DNS maintenance, "drain", else "ready".
 */
const char *ml_haproxy_admin_word(long admin_bits);

/* op state word of srv_op_state: "down", "starting", "up", "stopping". */
const char *ml_haproxy_op_word(long op_state);

/* Integer value of a parsed field ("" and absent: def). */
long long ml_haproxy_field_int(json_t *row, const char *key, long long def);

#endif
