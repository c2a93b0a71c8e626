/*
 * The slot ports' filter rules (see firewall.h). Each change is a few
 * iptables runs, each bounded to IPT_TIMEOUT_MS; -w waits for the
 * xtables lock that Docker takes too. The chain is rewritten only when
 * its rules differ from the wanted ones, since a rewrite (flush, then
 * append) leaves it briefly without its final REJECT; this happens when
 * the LB list changes, never on an ordinary deploy. Addresses are
 * checked (IP literals or host names, no leading '-') before they become
 * arguments. --ctdir ORIGINAL matters: the container's replies belong
 * to the same connection and would otherwise meet the REJECT.
 */
#include "common/ml.h"
#include "agent/firewall.h"
#include "common/sha256.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IPT_TIMEOUT_MS 20000
#define IPT_OUT_MAX ((size_t)256 << 10)
#define ARGS_MAX 24


static const char *ipt(void)
{
	const char *e = getenv("MLCTL_IPTABLES");

	return e && *e ? e : "iptables";
}

void ml_agent_fleet_address(char *buf, size_t size)
{
	const char *c = getenv("SSH_CONNECTION");
	char tmp[INET6_ADDRSTRLEN + 1];
	struct in_addr a4;
	const char *p;
	size_t n;

	snprintf(buf, size, "0.0.0.0");
	/* "client_ip client_port server_ip server_port" */
	if (!c || !(p = strchr(c, ' ')) || !(p = strchr(p + 1, ' ')))
		return;
	p++;
	n = strcspn(p, " ");
	if (n >= sizeof(tmp))
		return;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	/* IPv4 only: Docker's IPv6 publishing and ip6tables are not
	 * handled, so an IPv6 fleet keeps the 0.0.0.0 binding */
	if (inet_pton(AF_INET, tmp, &a4) == 1 && strncmp(tmp, "127.", 4))
		snprintf(buf, size, "%s", tmp);
}

bool ml_agent_reached_over_ipv6(void)
{
	const char *c = getenv("SSH_CONNECTION");
	char tmp[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	const char *p;
	size_t n;

	if (!c || !(p = strchr(c, ' ')) || !(p = strchr(p + 1, ' ')))
		return false;
	p++;
	n = strcspn(p, " ");
	if (n >= sizeof(tmp))
		return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	/* an IPv4-mapped address (::ffff:a.b.c.d) is IPv4 to the firewall
	 * but not to this parser: refused too, which is safe */
	return inet_pton(AF_INET6, tmp, &a6) == 1;
}

const char *ml_agent_slot_host(void)
{
	static char buf[64];

	ml_agent_fleet_address(buf, sizeof(buf));
	if (!strcmp(buf, "0.0.0.0"))
		snprintf(buf, sizeof(buf), "127.0.0.1");
	return buf;
}

static bool addr_ok(const char *s)
{
	size_t i;

	if (!*s || *s == '-' || strlen(s) > 253)
		return false;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(".-:", s[i])))
			return false;
	return true;
}

/*
 * Run iptables with args (NULL-terminated, without argv[0]); *status its
 * exit status, out (may be NULL) its stdout and stderr. 0 when it ran.
 */
static int run(int *status, struct ml_buf *out, const char *const *args)
{
	const char *argv[ARGS_MAX + 2];
	posix_spawn_file_actions_t fa;
	int pfd[2], st = 0, rc = 0, fl;
	struct timespec t0, t;
	char chunk[4096];
	ssize_t r;
	size_t i;
	pid_t pid;

	argv[0] = ipt();
	for (i = 0; args[i]; i++) {
		if (i >= ARGS_MAX)
			BUG("too many iptables arguments");
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot make a pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
			  environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return ml_err_errno(ML_EFAIL, rc, "cannot run '%s'", argv[0]);
	}
	fl = fcntl(pfd[0], F_GETFL);
	fcntl(pfd[0], F_SETFL, fl | O_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = read(pfd[0], chunk, sizeof(chunk));
		if (r > 0) {
			if (out && out->len + (size_t)r < IPT_OUT_MAX)
				ml_buf_add(out, chunk, (size_t)r);
			continue;
		}
		if (r == 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			    (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    IPT_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			rc = ml_err_set(ML_EFAIL, "'%s' did not finish in %d ms",
					argv[0], IPT_TIMEOUT_MS);
			break;
		}
		usleep(5000);
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (rc < 0)
		return rc;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

/* Run args and require exit 0; the message quotes iptables' output. */
static int must(const char *const *args)
{
	struct ml_buf out = ML_BUF_INIT(IPT_OUT_MAX);
	int st = 0, rc;

	rc = run(&st, &out, args);
	if (rc == 0 && st != 0)
		rc = ml_err_set(ML_EFAIL,
				"'%s %s %s' failed (exit %d): %.200s: the "
				"slot ports cannot be limited to the load "
				"balancers (set security.open_slots: true to "
				"publish them without filter rules)",
				ipt(), args[0], args[1] ? args[1] : "", st,
				out.data ? out.data : "");
	ml_buf_release(&out);
	return rc;
}

static void chain_name(char buf[32], const char *app)
{
	char hex[ML_SHA256_HEX];

	ml_sha256_hex(app, strlen(app), hex);
	snprintf(buf, 32, "MLCTL-%.12s", hex);
}

/* The DOCKER-USER rule of host_port after the -C/-I/-D word. */
#define PORT_RULE(op, port, comment, chain)                                 \
	{ "-w", op, "DOCKER-USER", "-p", "tcp", "-m", "conntrack",          \
	  "--ctorigdstport", port, "--ctdir", "ORIGINAL", "-m", "comment",  \
	  "--comment", comment,                                              \
	  "-j", chain, NULL }

/* The chain's wanted `iptables -S CHAIN` text. */
static char *want_rules(const char *chain, json_t *allow, const char *self)
{
	struct ml_buf b = ML_BUF_INIT(0);
	json_t *v;
	size_t i;

	ml_buf_addf(&b, "-N %s\n", chain);
	json_array_foreach(allow, i, v)
		ml_buf_addf(&b, "-A %s -s %s/32 -j RETURN\n", chain,
			    json_string_value(v));
	if (strcmp(self, "0.0.0.0"))
		ml_buf_addf(&b, "-A %s -s %s/32 -j RETURN\n", chain, self);
	ml_buf_addf(&b,
		    "-A %s -p tcp -j REJECT --reject-with tcp-reset\n", chain);
	return ml_buf_detach(&b, NULL);
}

int ml_agent_firewall_open(const char *app, int host_port, json_t *allow_from,
			   const char *self)
{
	char chain[32], port[8], comment[96], *want = NULL;
	struct ml_buf have = ML_BUF_INIT(IPT_OUT_MAX);
	int st = 0, rc;
	json_t *v;
	size_t i;

	json_array_foreach(allow_from, i, v)
	{
		if (!json_is_string(v) || !addr_ok(json_string_value(v)))
			return ml_err_set(ML_EPROTO,
					  "container_run: "
					  "'security.allow_from' item %zu is "
					  "not an address",
					  i);
	}
	chain_name(chain, app);
	snprintf(port, sizeof(port), "%d", host_port);
	snprintf(comment, sizeof(comment), "mlctl:%s", app);

	rc = run(&st, NULL, (const char *const[]){ "-w", "-N", chain, NULL });
	if (rc < 0)
		goto out;
	rc = run(&st, &have,
		 (const char *const[]){ "-w", "-S", chain, NULL });
	if (rc == 0 && st != 0)
		rc = must((const char *const[]){ "-w", "-S", chain, NULL });
	if (rc < 0)
		goto out;
	want = want_rules(chain, allow_from, self);
	if (!have.data || strcmp(have.data, want)) {
		rc = must((const char *const[]){ "-w", "-F", chain, NULL });
		json_array_foreach(allow_from, i, v)
		{
			if (rc == 0)
				rc = must((const char *const[]){
					"-w", "-A", chain, "-s",
					json_string_value(v), "-j", "RETURN",
					NULL });
		}
		if (rc == 0 && strcmp(self, "0.0.0.0"))
			rc = must((const char *const[]){ "-w", "-A", chain,
							 "-s", self, "-j",
							 "RETURN", NULL });
		if (rc == 0)
			rc = must((const char *const[]){
				"-w", "-A", chain, "-p", "tcp", "-j",
				"REJECT", "--reject-with", "tcp-reset",
				NULL });
		if (rc < 0)
			goto out;
	}
	rc = run(&st, NULL,
		 (const char *const[])PORT_RULE("-C", port, comment, chain));
	if (rc == 0 && st != 0)
		rc = must((const char *const[])PORT_RULE("-I", port, comment,
							 chain));
out:
	free(want);
	ml_buf_release(&have);
	return rc;
}

int ml_agent_firewall_close(const char *app, int host_port)
{
	char chain[32], port[8], comment[96], ref[48];
	struct ml_buf rules = ML_BUF_INIT(IPT_OUT_MAX);
	int st = 0, rc, n;

	chain_name(chain, app);
	snprintf(port, sizeof(port), "%d", host_port);
	snprintf(comment, sizeof(comment), "mlctl:%s", app);
	/* -D removes one copy; a copy left by a racing agent goes too */
	for (n = 0; n < 8; n++) {
		rc = run(&st, NULL, (const char *const[])PORT_RULE(
					    "-D", port, comment, chain));
		if (rc < 0 || st != 0)
			break;
	}
	if (rc < 0)
		return rc;
	rc = run(&st, &rules,
		 (const char *const[]){ "-w", "-S", "DOCKER-USER", NULL });
	snprintf(ref, sizeof(ref), "-j %s", chain);
	if (rc == 0 && st == 0 && rules.data && !strstr(rules.data, ref)) {
		run(&st, NULL, (const char *const[]){ "-w", "-F", chain, NULL });
		run(&st, NULL, (const char *const[]){ "-w", "-X", chain, NULL });
	}
	ml_buf_release(&rules);
	return rc;
}
