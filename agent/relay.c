/*
 * Checks and file edits shared by the relay ops (see relay.h). The checks
 * are whitelists: what passes them cannot carry a quote, a comma, a space
 * or a newline into an authorized_keys line, nor an option into an argv.
 * The authorized_keys file is edited under a flock of a file of ours (the
 * agent of another session may edit it at the same time), appended to
 * with O_APPEND and rewritten only by rename(2), so sshd never reads half
 * a file. Sizes: one line is under 1 KiB; the file is read whole when
 * lines are removed, up to 4 MiB.
 */
#include "common/ml.h"
#include "agent/agent.h"
#include "agent/relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUTHKEYS_MAX ((size_t)4 << 20)
#define FROM_MAX_ADDRS 8

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool is_b64(char c)
{
	return is_alnum(c) || c == '+' || c == '/' || c == '=';
}

bool ml_relay_deploy_valid(const char *s)
{
	size_t i;

	if (!s || !is_alnum(s[0]))
		return false;
	for (i = 0; s[i]; i++)
		if (i >= ML_RELAY_DEPLOY_MAX ||
		    !(is_alnum(s[i]) || strchr("_.-", s[i])))
			return false;
	return true;
}

/* base64 of the key blob's fixed start: string "ssh-ed25519", then the
 * length 32 of the key bytes */
#define ED25519_B64_PREFIX "AAAAC3NzaC1lZDI1NTE5AAAAI"
#define ED25519_B64_LEN 68

bool ml_relay_pubkey_valid(const char *s)
{
	size_t i;

	if (!s || strncmp(s, "ssh-ed25519 ", 12))
		return false;
	s += 12;
	if (strlen(s) != ED25519_B64_LEN ||
	    strncmp(s, ED25519_B64_PREFIX, strlen(ED25519_B64_PREFIX)))
		return false;
	/* 51 bytes: 68 characters, no padding */
	for (i = 0; i < ED25519_B64_LEN; i++)
		if (!is_b64(s[i]) || s[i] == '=')
			return false;
	return true;
}

bool ml_relay_hostkey_valid(const char *s)
{
	static const char *const types[] = {
		"ssh-ed25519 ",
		"ecdsa-sha2-nistp256 ",
		"ecdsa-sha2-nistp384 ",
		"ecdsa-sha2-nistp521 ",
		"ssh-rsa ",
	};
	const char *b = NULL;
	size_t i, n;

	if (!s)
		return false;
	for (i = 0; i < ML_ARRAY_SIZE(types); i++)
		if (!strncmp(s, types[i], strlen(types[i])))
			b = s + strlen(types[i]);
	if (!b)
		return false;
	n = strlen(b);
	if (n < 16 || n > 2800 || n % 4)
		return false;
	for (i = 0; i < n; i++)
		if (!is_b64(b[i]) || (b[i] == '=' && i < n - 2))
			return false;
	return true;
}

bool ml_relay_address_valid(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t i;

	if (!s || !*s)
		return false;
	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return true;
	if (s[0] == '-' || s[0] == '.' || strlen(s) > 253)
		return false;
	for (i = 0; s[i]; i++)
		if (!(is_alnum(s[i]) || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

bool ml_relay_user_valid(const char *s)
{
	size_t i;

	if (!s || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (i = 0; s[i]; i++)
		if (i >= 32 ||
		    !((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("_.-", s[i])))
			return false;
	return true;
}

int ml_relay_authkeys_path(struct ml_buf *out)
{
	const char *env = getenv("MLCTL_AUTHORIZED_KEYS");
	struct passwd *pw;

	if (env && *env) {
		ml_buf_addstr(out, env);
		return 0;
	}
	pw = getpwuid(getuid());
	if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
		return ml_err_set(ML_EFAIL,
				  "cannot find the home directory of "
				  "uid %ld for its authorized_keys",
				  (long)getuid());
	ml_buf_addf(out, "%s/.ssh/authorized_keys", pw->pw_dir);
	return 0;
}

int ml_relay_dir(struct ml_buf *out, const struct ml_agent *a, bool create)
{
	ml_buf_addf(out, "%s/relay", a->state_dir);
	if (!create)
		return 0;
	if (mkdir(a->state_dir, 0700) < 0 && errno != EEXIST)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				    a->state_dir);
	if (mkdir(ml_buf_str(out), 0700) < 0 && errno != EEXIST)
		return ml_err_errno(ML_EFAIL, errno, "cannot create '%s'",
				    ml_buf_str(out));
	return 0;
}

bool ml_relay_keys_remove(const char *dir, const char *deploy)
{
	static const char *const files[] = {".key", ".key.pub", ".known_hosts"};
	bool removed = false;
	size_t i;

	for (i = 0; i < ML_ARRAY_SIZE(files); i++) {
		char *f = ml_xasprintf("%s/%s%s", dir, deploy, files[i]);

		if (unlink(f) == 0 && i == 0)
			removed = true;
		free(f);
	}
	return removed;
}

/* A path that may go inside command="..." unquoted. */
static bool path_plain(const char *s)
{
	size_t i;

	if (!s || s[0] != '/')
		return false;
	for (i = 0; s[i]; i++)
		if (!(is_alnum(s[i]) || strchr("/._+-", s[i])))
			return false;
	return true;
}

/* from's addresses, comma-separated, into out. */
static int resolve_from(struct ml_buf *out, const char *from)
{
	unsigned char buf[sizeof(struct in6_addr)];
	struct addrinfo hints = {0}, *ai = NULL, *p;
	char txt[INET6_ADDRSTRLEN];
	int n = 0, e;

	if (inet_pton(AF_INET, from, buf) == 1 ||
	    inet_pton(AF_INET6, from, buf) == 1) {
		ml_buf_addstr(out, from);
		return 0;
	}
	hints.ai_socktype = SOCK_STREAM;
	e = getaddrinfo(from, NULL, &hints, &ai);
	if (e)
		return ml_err_set(ML_EINVALID, "cannot resolve '%s': %s", from,
				  gai_strerror(e));
	for (p = ai; p && n < FROM_MAX_ADDRS; p = p->ai_next) {
		const void *addr =
			p->ai_family == AF_INET
				? (const void *)&(
					  (struct sockaddr_in *)p->ai_addr)
					  ->sin_addr
				: (const void *)&(
					  (struct sockaddr_in6 *)p->ai_addr)
					  ->sin6_addr;

		if (!inet_ntop(p->ai_family, addr, txt, sizeof(txt)) ||
		    strstr(ml_buf_str(out), txt))
			continue;
		ml_buf_addf(out, "%s%s", n ? "," : "", txt);
		n++;
	}
	freeaddrinfo(ai);
	if (!n)
		return ml_err_set(ML_EINVALID, "'%s' has no address", from);
	return 0;
}

int ml_relay_authkeys_line(struct ml_buf *out, const struct ml_agent *a,
			   const char *deploy, const char *pubkey,
			   const char *from, int64_t ttl_s)
{
	struct ml_buf ips = ML_BUF_INIT(1024);
	const char *self = getenv("MLCTL_AGENT_SELF");
	char exe[4096], when[32];
	time_t t = time(NULL) + (time_t)ttl_s;
	struct tm tm;
	ssize_t len;
	int rc;

	if (!ml_relay_deploy_valid(deploy) || !ml_relay_pubkey_valid(pubkey) ||
	    !ml_relay_address_valid(from) || ttl_s < 1 ||
	    ttl_s > ML_RELAY_TTL_MAX)
		BUG("relay: unchecked authorized_keys input");
	if (self && *self) {
		snprintf(exe, sizeof(exe), "%s", self);
	} else {
		len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (len < 0)
			return ml_err_errno(ML_EFAIL, errno,
					    "cannot read /proc/self/exe");
		exe[len] = '\0';
	}
	if (!path_plain(exe))
		return ml_err_set(ML_EINVALID,
				  "the agent's path '%s' cannot go in a forced "
				  "command (letters, digits and /._+- only)",
				  exe);
	if (strcmp(a->state_dir, ML_AGENT_STATE_DIR) &&
	    !path_plain(a->state_dir))
		return ml_err_set(ML_EINVALID,
				  "the state dir '%s' cannot go in a forced "
				  "command (letters, digits and /._+- only)",
				  a->state_dir);
	rc = resolve_from(&ips, from);
	if (rc < 0)
		goto out;
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y%m%d%H%M%S", &tm);
	ml_buf_addf(out, "restrict,from=\"%s\",expiry-time=\"%s\",command=\"",
		    ml_buf_str(&ips), when);
	if (strcmp(a->state_dir, ML_AGENT_STATE_DIR))
		ml_buf_addf(out, "env MLCTL_STATE_DIR=%s ", a->state_dir);
	ml_buf_addf(out, "%s receive\" %s %s%s", exe, pubkey, ML_RELAY_MARK,
		    deploy);
out:
	ml_buf_release(&ips);
	return rc;
}

/* Whether line (without its newline) is one of ours: of deploy, or with
 * deploy NULL, any deploy's whose expiry-time is before `now` (same
 * format, so the strings compare as the times do). */
static bool our_line(const char *line, size_t n, const char *deploy,
		     const char *now)
{
	char mark[ML_RELAY_DEPLOY_MAX + 32];
	const char *m, *e;
	size_t k;

	if (n < 9 || strncmp(line, "restrict,", 9))
		return false;
	if (deploy) {
		snprintf(mark, sizeof(mark), " %s%s", ML_RELAY_MARK, deploy);
		k = strlen(mark);
		return n > k && !memcmp(line + n - k, mark, k);
	}
	/* " mlctl-relay:<id>" at the end, the id without spaces */
	for (m = line + n; m > line && m[-1] != ' '; m--)
		;
	k = strlen(ML_RELAY_MARK);
	if ((size_t)(line + n - m) <= k || strncmp(m, ML_RELAY_MARK, k))
		return false;
	e = memmem(line, n, ",expiry-time=\"", 14);
	if (!e || e + 14 + 14 > line + n)
		return false;
	return memcmp(e + 14, now, 14) < 0 && e[28] == '"';
}

static int authkeys_filter(const char *path, const char *deploy,
			   const char *now, int *removed);

int ml_relay_authkeys_remove(const char *path, const char *deploy, int *removed)
{
	return authkeys_filter(path, deploy, NULL, removed);
}

int ml_relay_authkeys_sweep(const char *path, int *removed)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y%m%d%H%M%S", &tm);
	return authkeys_filter(path, NULL, now, removed);
}

static int authkeys_filter(const char *path, const char *deploy,
			   const char *now, int *removed)
{
	struct ml_buf in = ML_BUF_INIT(AUTHKEYS_MAX),
		      kept = ML_BUF_INIT(AUTHKEYS_MAX);
	char *tmp = NULL;
	struct stat st;
	char chunk[8192];
	ssize_t r;
	size_t off = 0;
	int fd, ofd = -1, rc = 0;

	*removed = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot stat '%s'", path);
		goto out;
	}
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || ml_buf_add(&in, chunk, (size_t)r) < 0) {
			rc = ml_err_set(ML_EFAIL,
					"cannot read '%s' (at most "
					"4 MiB)",
					path);
			goto out;
		}
	}
	while (off < in.len) {
		const char *line = in.data + off;
		const char *nl = memchr(line, '\n', in.len - off);
		size_t n = nl ? (size_t)(nl - line) : in.len - off;

		if (our_line(line, n, deploy, now))
			(*removed)++;
		else
			ml_buf_add(&kept, line, n + (nl ? 1 : 0));
		off += n + (nl ? 1 : 0);
	}
	if (!*removed)
		goto out;
	tmp = ml_xasprintf("%s.mlctl-tmp-%ld", path, (long)getpid());
	ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		   st.st_mode & 07777);
	if (ofd < 0 || fchown(ofd, st.st_uid, st.st_gid) < 0 ||
	    fchmod(ofd, st.st_mode & 07777) < 0 ||
	    (kept.len &&
	     write(ofd, kept.data, kept.len) != (ssize_t)kept.len) ||
	    fsync(ofd) < 0 || rename(tmp, path) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot rewrite '%s'", path);
		unlink(tmp);
	}
out:
	if (ofd >= 0)
		close(ofd);
	close(fd);
	free(tmp);
	ml_buf_release(&in);
	ml_buf_release(&kept);
	return rc;
}

int ml_relay_lock(int *fd, const struct ml_agent *a)
{
	struct ml_buf p = ML_BUF_INIT(4096);
	int rc;

	rc = ml_relay_dir(&p, a, true);
	if (rc < 0)
		goto out;
	ml_buf_addstr(&p, "/authorized_keys.flock");
	*fd = open(ml_buf_str(&p), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0 || flock(*fd, LOCK_EX) < 0) {
		rc = ml_err_errno(ML_EFAIL, errno, "cannot lock '%s'",
				  ml_buf_str(&p));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
out:
	ml_buf_release(&p);
	return rc;
}
