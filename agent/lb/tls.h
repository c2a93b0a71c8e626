#ifndef ML_LB_TLS_H
#define ML_LB_TLS_H

/*
 * What a load balancer keeps secret: the certificate and private key its
 * HAProxy terminates TLS with, and the credentials of its metrics
 * listener. Both come in lb_apply's args from the controller's secrets
 * (never from git, never from a path the playbook names) and are checked
 * here before anything is rendered; no message ever quotes their bytes.
 *
 * The certificate and key are stored as one PEM file (certificate chain,
 * then key), mode 0600 in a 0700 directory of the agent's state dir,
 * owned by the agent's user (root on a real host):
 *
 *	<state_dir>/haproxy/<app>/tls/<id>.pem
 *
 * where <id> is the first 16 hex digits of the SHA-256 of the file. A new
 * certificate is a new path, so the rendered configuration changes and
 * lb_apply reloads HAProxy seamlessly (the listeners pass to the new
 * worker; the old one finishes its requests with the old certificate):
 * nothing is ever overwritten in place, and a candidate HAProxy rejects
 * leaves the running one and its file alone.
 */

#include "common/ml.h"

struct ml_lb_config;
struct ml_haproxy;

#define ML_LB_PEM_MAX ((size_t)64 << 10) /* certificate chain or key */
#define ML_LB_PASSWORD_MAX 128

/*
 * Read "tls_cert", "tls_key" (PEM texts, both or neither), "redirect_port"
 * and "stats_auth" ({"user", "password"}) from args into c (the PEM into
 * c->tls_pem, its id into c->tls_id). ML_EPROTO naming the field, never
 * its value. The strings are wiped by ml_lb_tls_release().
 */
int ml_lb_tls_from_json(struct ml_lb_config *c, json_t *args);
void ml_lb_tls_release(struct ml_lb_config *c);

/* The stored PEM's path for c (NULL without TLS); the caller frees it. */
char *ml_lb_tls_path(const struct ml_lb_config *c, const struct ml_haproxy *h);

/*
 * Put c's PEM in place (no-op without TLS or when it is there already):
 * written to a temporary name, fsync'd, renamed. *created tells whether
 * this call made it, for ml_lb_tls_unstore() after a rejected config.
 */
int ml_lb_tls_store(const struct ml_lb_config *c, const struct ml_haproxy *h,
		    bool *created);

/* Remove the PEM of c that ml_lb_tls_store just created. */
void ml_lb_tls_unstore(const struct ml_lb_config *c,
		       const struct ml_haproxy *h, bool created);

/*
 * Once c's configuration runs: remove every other stored PEM of the app
 * (the older certificates, which no running worker reads again), and the
 * directory when c has no TLS. Best effort: failures are ignored.
 */
void ml_lb_tls_prune(const struct ml_lb_config *c, const struct ml_haproxy *h);

/* Rendering, called by ml_haproxy_render() (agent/lb/render.c). */
void ml_lb_tls_render_global(struct ml_buf *b, const struct ml_lb_config *c);
void ml_lb_tls_render_bind(struct ml_buf *b, const struct ml_lb_config *c,
			   const struct ml_haproxy *h);
void ml_lb_tls_render_frontend(struct ml_buf *b,
			       const struct ml_lb_config *c);
void ml_lb_tls_render_redirect(struct ml_buf *b,
			       const struct ml_lb_config *c);
void ml_lb_tls_render_userlist(struct ml_buf *b,
			       const struct ml_lb_config *c);
void ml_lb_tls_render_stats_auth(struct ml_buf *b,
				 const struct ml_lb_config *c);

#endif
