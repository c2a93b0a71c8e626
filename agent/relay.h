#ifndef ML_AGENT_RELAY_H
#define ML_AGENT_RELAY_H

/*
 * Host-to-host relay of blobs (agent/op_relay_*.c): what the four relay
 * ops share. For one deploy, a sender host holds a private ed25519 key in
 * <state>/relay/<deploy>.key (0600, made by relay_key, never sent); a
 * receiver host lets that key in through one line of its SSH user's
 * authorized_keys, restricted to the sender's address, an expiry time and
 * the forced command `mlctl-agent receive` (relay_allow); relay_send runs
 * the OpenSSH client with the key and streams blobs into that command;
 * relay_end removes both. No port is opened: sshd is the only door, and
 * the key can only store blobs (receive mode allows hello, blobs_have and
 * blob_put).
 *
 *	<state>/relay/			0700
 *	<state>/relay/<deploy>.key	private key (0600), .key.pub beside it
 *	<state>/relay/<deploy>.known_hosts  the receiver's host key, as the
 *					controller knows it (0600)
 *	<state>/relay/authorized_keys.flock  serializes edits of the file
 *
 * Every input that reaches a file or an argv is checked here first.
 */

#include "common/ml.h"

#define ML_RELAY_DEPLOY_MAX 64
#define ML_RELAY_MARK "mlctl-relay:"	       /* comment of our lines */
#define ML_RELAY_HOST_ALIAS "mlctl-relay-peer" /* name in known_hosts */
#define ML_RELAY_TTL_MAX (7 * 86400)

struct ml_agent;

/* True when s is a deploy id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64. */
bool ml_relay_deploy_valid(const char *s);

/*
 * True when s is exactly "ssh-ed25519 " and the 68 base64 characters of
 * an ed25519 public key blob (type string and 32 bytes), nothing else: no
 * options, no comment, no whitespace or newline.
 */
bool ml_relay_pubkey_valid(const char *s);

/*
 * True when s is "<type> <base64>" for an SSH host key type (ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521, ssh-rsa), base64 of at most 2048 bytes,
 * one space, no comment, no control character.
 */
bool ml_relay_hostkey_valid(const char *s);

/*
 * True when s is an address to connect to or accept from: an IPv4 or
 * IPv6 literal, or a DNS name ([A-Za-z0-9.-], at most 253, not starting
 * with '-' or '.').
 */
bool ml_relay_address_valid(const char *s);

/* True when s is a login name: [a-z_][a-z0-9_.-]*, at most 32. */
bool ml_relay_user_valid(const char *s);

/*
 * The path of the authorized_keys file relay_allow edits:
 * $MLCTL_AUTHORIZED_KEYS when set, else ~/.ssh/authorized_keys of the
 * agent's user (from the password database). Appended to out.
 */
int ml_relay_authkeys_path(struct ml_buf *out);

/*
 * "<state>/relay" created 0700 (and its parent), appended to out; with
 * create false only the path.
 */
int ml_relay_dir(struct ml_buf *out, const struct ml_agent *a, bool create);

/*
 * Remove a deploy's key pair and known_hosts file from dir (the relay
 * directory); true when its private key was there to remove.
 */
bool ml_relay_keys_remove(const char *dir, const char *deploy);

/*
 * The authorized_keys line for deploy (no newline) into out: options
 * restrict, from="IPS" (from resolved to its addresses when a name),
 * expiry-time (local time, ttl_s from now), command="CMD receive" where
 * CMD is this agent's executable (with MLCTL_STATE_DIR when the state dir
 * is not the default), then the key and the comment ML_RELAY_MARK deploy.
 * Inputs must be valid (see above); ML_EINVALID when the executable's path
 * or the state dir holds characters that cannot go in the command, or
 * from does not resolve.
 */
int ml_relay_authkeys_line(struct ml_buf *out, const struct ml_agent *a,
			   const char *deploy, const char *pubkey,
			   const char *from, int64_t ttl_s);

/*
 * Remove from the authorized_keys file at path every line of deploy (ours:
 * it starts with "restrict," and ends with " mlctl-relay:DEPLOY"); the
 * file is rewritten through a temporary file and rename(2), keeping its
 * mode. *removed the number of lines taken out. An absent file is fine.
 */
int ml_relay_authkeys_remove(const char *path, const char *deploy,
			     int *removed);

/*
 * Remove every line of ours whatever its deploy whose expiry-time has
 * passed (a controller that died before relay_end); sshd already refuses
 * them, this keeps the file tidy. As ml_relay_authkeys_remove otherwise.
 */
int ml_relay_authkeys_sweep(const char *path, int *removed);

/*
 * Take the flock (<state>/relay/authorized_keys.flock) that serializes the
 * relay ops' edits of authorized_keys; *fd is to close() to release it.
 */
int ml_relay_lock(int *fd, const struct ml_agent *a);

#endif
