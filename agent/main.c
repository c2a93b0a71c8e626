/*
 * mlctl-agent: started by mlctl on a VM over SSH, one process per
 * connection. `mlctl-agent serve` answers protocol requests on stdin and
 * stdout (common/proto.h) until stdin ends; `version` prints the version;
 * --help lists the commands and the operations.
 *
 * stdout carries frames only: serve moves the real stdout to a private
 * descriptor and points fd 1 at stderr, so a stray print from any library
 * cannot corrupt the stream. Diagnostics go to stderr. main() is the only
 * place that turns an error into an exit status (the table in
 * common/ml.h): 0 at a clean end of input, 10 (ML_EPROTO) after a frame
 * that could not be read, 6 (ML_EHOST) when the controller stayed silent
 * past the idle or stall timeout, 2 (ML_EUSAGE) for a bad command line.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/log.h"
#include "common/secure.h"
#include "agent/agent.h"
#include "common/docker.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

struct agent_cmd {
	const char *name;
	const char *summary;
	int (*run)(void);
};

static int cmd_serve(void);
static int cmd_receive(void);
static int cmd_version(void);
static int cmd_help(void);

static const struct agent_cmd cmds[] = {
	{"serve", "answer requests on stdin/stdout until end of input",
	 cmd_serve},
	{"receive", "serve hello, blobs_have and blob_put only (relay key)",
	 cmd_receive},
	{"version", "print the agent and protocol versions", cmd_version},
	{"help", "show this help", cmd_help},
};

static int cmd_help(void)
{
	const struct ml_agent_op *const *ops;
	size_t i, n;

	printf("usage: mlctl-agent [-v | -q] <command>\n\n"
	       "The per-host agent of mlctl, started by mlctl over SSH.\n\n"
	       "commands:\n");
	for (i = 0; i < ML_ARRAY_SIZE(cmds); i++)
		printf("  %-9s %s\n", cmds[i].name, cmds[i].summary);
	printf("\noptions:\n"
	       "  -v, --verbose  log each failed request to stderr\n"
	       "  -q, --quiet    log errors only\n"
	       "  -h, --help     show this help\n"
	       "\nprotocol %d operations:\n",
	       ML_PROTO_VERSION);
	ops = ml_agent_ops(&n);
	for (i = 0; i < n; i++)
		printf("  %-9s %s\n", ops[i]->name, ops[i]->summary);
	printf("\nenvironment:\n"
	       "  MLCTL_DOCKER_SOCK        Docker socket (default %s)\n"
	       "  MLCTL_DOCKER_TIMEOUT_MS  per Docker request (default %ld)\n"
	       "  MLCTL_STATE_DIR          state directory (default %s)\n"
	       "  MLCTL_AGENT_IDLE_TIMEOUT_MS   silence between requests "
	       "before the\n"
	       "                           session is cut (default %ld)\n"
	       "  MLCTL_AGENT_STALL_TIMEOUT_MS  silence inside a request "
	       "(default %ld)\n",
	       ML_DOCKER_SOCK, ML_DOCKER_TIMEOUT_MS, ML_AGENT_STATE_DIR,
	       ML_AGENT_IDLE_TIMEOUT_MS, ML_AGENT_STALL_TIMEOUT_MS);
	return 0;
}

static int cmd_version(void)
{
	printf("mlctl-agent %s (protocol %d)\n", ML_VERSION, ML_PROTO_VERSION);
	return 0;
}

/*
 * Keep the protocol stream on a descriptor of its own and send fd 1 to
 * stderr. Returns the stream's descriptor.
 */
static int take_stdout(int *out_fd)
{
	int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return ml_err_errno(ML_EFAIL, errno, "cannot duplicate stdout");
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
		close(fd);
		return ml_err_errno(ML_EFAIL, errno, "cannot redirect stdout");
	}
	*out_fd = fd;
	return 0;
}

static int serve(bool receive_only)
{
	struct ml_agent a;
	struct ml_io io;
	struct ml_io_fd fdctx;
	int out_fd = -1, rc;

	/* a vanished controller must be a write error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	rc = take_stdout(&out_fd);
	if (rc < 0)
		return rc;
	ml_agent_init(&a);
	a.receive_only = receive_only;
	ml_io_fd_init(&io, &fdctx, STDIN_FILENO, out_fd,
		      (int)a.idle_timeout_ms);
	a.io_fd = &fdctx;
	ml_debug("serving protocol %d, state dir '%s'", ML_PROTO_VERSION,
		 a.state_dir);
	rc = ml_agent_serve(&a, &io);
	ml_agent_release(&a);
	close(out_fd);
	return rc;
}

static int cmd_serve(void)
{
	return serve(false);
}

/* The forced command of a relay key (agent/relay.h): another host of the
 * fleet stores blobs here, and can do nothing else. */
static int cmd_receive(void)
{
	return serve(true);
}

int main(int argc, char **argv)
{
	enum ml_log_level level = ML_LOG_INFO;
	const char *verb = NULL;
	int i, rc;
	size_t c;

	ml_log_init("mlctl-agent", level);
	ml_secure_process(); /* secrets arrive in requests */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			if (level < ML_LOG_TRACE)
				level++;
		} else if (!strcmp(argv[i], "-q") ||
			   !strcmp(argv[i], "--quiet")) {
			level = ML_LOG_QUIET;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			verb = "help";
		} else if (!strcmp(argv[i], "--version")) {
			verb = "version";
		} else if (argv[i][0] == '-' || verb) {
			ml_error("unexpected argument '%s'; see "
				 "'mlctl-agent --help'",
				 argv[i]);
			return ml_exit_code(ML_EUSAGE);
		} else {
			verb = argv[i];
		}
	}
	ml_log_init("mlctl-agent", level);
	if (!verb) {
		ml_error("no command given; see 'mlctl-agent --help'");
		return ml_exit_code(ML_EUSAGE);
	}
	for (c = 0; c < ML_ARRAY_SIZE(cmds); c++) {
		if (strcmp(cmds[c].name, verb))
			continue;
		rc = cmds[c].run();
		if (rc < 0)
			ml_error("%s", ml_err_msg());
		return ml_exit_code(rc);
	}
	ml_error("unknown command '%s'; see 'mlctl-agent --help'", verb);
	return ml_exit_code(ML_EUSAGE);
}
