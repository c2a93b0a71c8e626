/*
 * agent_call: speak the agent protocol from a shell script.
 *
 *	agent_call CMD [ARG]... -- OP ARGS_JSON [OP ARGS_JSON]...
 *
 * Starts CMD (for instance `bin/mlctl-agent serve`, or `ssh HOST
 * /path/mlctl-agent serve`, the way mlctl reaches a VM), opens the session
 * with hello, then sends each OP with its args in order over one session
 * and prints one JSON line per reply on stdout:
 *
 *	{"op":"container_run","ok":true,"result":{...}}
 *	{"op":"container_wait","ok":false,"code":"failed","error":"..."}
 *
 * An error reply does not stop the session. The exit status is 0 when
 * every call succeeded, 1 when one failed, 2 for a bad command line or a
 * session that could not start; CMD's stderr is passed through. Built on
 * demand (`make build/tests/unit/agent/agent_call`) by
 * check_container_ops.sh; not a test suite itself, so tests/run skips it.
 */
#include "common/ml.h"
#include "common/io.h"
#include "common/proto.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS (20 * 60 * 1000)

static void print_line(json_t *line)
{
	char *text = json_dumps(line, JSON_COMPACT);

	if (text) {
		printf("%s\n", text);
		fflush(stdout);
	}
	free(text);
}

int main(int argc, char **argv)
{
	struct ml_io io;
	struct ml_io_fd fdctx;
	uint64_t next_id = 1;
	int pin[2], pout[2], sep, i, rc, failed = 0, status;
	json_t *args, *result, *line;
	pid_t pid;

	for (sep = 1; sep < argc && strcmp(argv[sep], "--"); sep++)
		;
	if (sep == 1 || sep >= argc || (argc - sep - 1) % 2) {
		fprintf(stderr, "usage: agent_call CMD [ARG]... -- OP "
				"ARGS_JSON [OP ARGS_JSON]...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe(pin) < 0 || pipe(pout) < 0) {
		perror("agent_call: pipe");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("agent_call: fork");
		return 2;
	}
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		close(pin[0]);
		close(pin[1]);
		close(pout[0]);
		close(pout[1]);
		argv[sep] = NULL;
		execvp(argv[1], argv + 1);
		perror("agent_call: exec");
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	ml_io_fd_init(&io, &fdctx, pout[0], pin[1], CALL_TIMEOUT_MS);

	rc = ml_proto_hello(&io, &next_id, NULL);
	if (rc < 0) {
		fprintf(stderr, "agent_call: hello: %s\n", ml_err_msg());
		failed = 2;
		goto out;
	}
	for (i = sep + 1; i + 1 < argc; i += 2) {
		args = json_loads(argv[i + 1], 0, NULL);
		if (!json_is_object(args)) {
			fprintf(stderr,
				"agent_call: %s: args are not a JSON "
				"object\n",
				argv[i]);
			json_decref(args);
			failed = 2;
			goto out;
		}
		result = NULL;
		rc = ml_proto_call(&io, &next_id, argv[i], args, &result);
		if (rc < 0)
			line = json_pack("{s:s,s:b,s:s,s:s}", "op", argv[i],
					 "ok", 0, "code",
					 ml_proto_code_from_ml(rc), "error",
					 ml_err_msg());
		else
			line = json_pack("{s:s,s:b,s:o}", "op", argv[i], "ok",
					 1, "result", result);
		print_line(line);
		json_decref(line);
		if (rc < 0 && !failed)
			failed = 1;
		if (rc == ML_EPROTO && strstr(ml_err_msg(), "closed"))
			break; /* the agent is gone */
	}
out:
	close(pin[1]);
	close(pout[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return failed;
}
