#ifndef ML_AGENT_HARDEN_H
#define ML_AGENT_HARDEN_H

/*
 * The hardening of an app container (container_run's "security" argument)
 * and the secrets it is given as files on a tmpfs. Defaults are the safe
 * ones; the controller sends what the playbook relaxed, by name:
 *
 *	"security": {"secrets_as": "files"|"env", "no_new_privileges": bool,
 *		     "cap_add": ["NET_BIND_SERVICE", ...], "pids_limit": N,
 *		     "read_only_root": bool, "init": "auto"|"yes"|"no",
 *		     "restart": "no"|"on-failure"|"always"|"unless-stopped",
 *		     "open_slots": bool, "allow_from": ["10.0.0.2", ...]}
 *
 * Defaults: files, no-new-privileges, every capability dropped, 4096
 * processes, writable root, an init process unless the image's entrypoint
 * is one, restart unless-stopped, slots bound to the VM's fleet address
 * and reachable from allow_from only (agent/firewall.h).
 */

#include <jansson.h>
#include <sys/types.h>

struct ml_docker;

#define ML_AGENT_PIDS_DEFAULT 4096
#define ML_AGENT_SECRETS_TARGET "/run/secrets"

struct ml_agent_harden {
	bool secrets_env;	/* secrets as env vars, not files */
	bool no_new_privileges;
	json_t *cap_add;	/* borrowed array of names, or NULL */
	json_int_t pids_limit;	/* 0: no limit */
	bool read_only_root;
	int init;		/* -1: auto, 0: no, 1: yes */
	const char *restart;
	bool open_slots;	/* no binding to the fleet address, no rules */
	json_t *allow_from;	/* borrowed array: LB addresses, or NULL */
};

/*
 * Read sec (borrowed, may be NULL for all defaults) into *out. ML_EPROTO
 * naming the key for a wrong type, an unknown key or capability, or a
 * restart policy Docker does not know. *out borrows from sec.
 */
int ml_agent_harden_parse(struct ml_agent_harden *out, json_t *sec,
			  const char *op);

/*
 * Put h into a container create body: HostConfig hc gets SecurityOpt,
 * CapDrop/CapAdd, PidsLimit, RestartPolicy, ReadonlyRootfs with a tmpfs
 * /tmp, and Init. img_config is the image's "Config" (borrowed, may be
 * NULL): its Entrypoint decides "init": "auto", and a root User adds a
 * line to warnings (an array, borrowed).
 */
void ml_agent_harden_apply(json_t *hc, const struct ml_agent_harden *h,
			   json_t *img_config, json_t *warnings);

/*
 * The secret files of container name: <run>/secrets/<name>/<KEY>, mode
 * 0400, in a directory mode 0500, both owned by uid:gid, on a tmpfs
 * (<run> is $MLCTL_RUN_DIR, else /run/mlctl; when <run>/secrets is not
 * on a tmpfs the agent mounts one there). Values are never written
 * anywhere else. ml_agent_secret_dir creates the empty directory (root,
 * 0700) so that a bind mount of it can be asked for before the owner is
 * known; *out is the caller's.
 */
int ml_agent_secret_dir(char **out, const char *name);
int ml_agent_secret_files_write(const char *name, json_t *secrets, uid_t uid,
				gid_t gid);
/* Remove them; nothing there is not an error. */
int ml_agent_secret_files_remove(const char *name);

/*
 * The uid and gid container id (created, maybe not started) runs as,
 * from user, its Config.User: "" (root), a number, "uid:gid", or a name
 * looked up in the container's /etc/passwd through the archive API.
 * ML_EFAIL naming the user when a name is not in /etc/passwd.
 */
int ml_agent_container_user(uid_t *uid, gid_t *gid, struct ml_docker *d,
			    const char *user, const char *id);

#endif
