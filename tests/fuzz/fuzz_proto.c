/*
 * libFuzzer target for the protocol: the input is a byte stream, as the
 * agent would read it on stdin. It goes through the frame reader, JSON
 * decoding and the agent's real dispatch (ml_agent_serve), with a Docker
 * socket path that does not exist, no GPU directory and a private scratch
 * directory as the state
 * dir, so nothing real is touched. The same bytes are then read as the
 * replies of an agent by the client side (ml_proto_call), which must turn
 * anything into either a result or an error.
 *
 * Invariants checked: no crash, no leak, no sanitizer report; serve ends
 * with 0 or an error code; every reply the agent writes decodes as a JSON
 * object frame.
 */
#include "common/ml.h"
#include "common/log.h"
#include "common/proto.h"
#include "agent/agent.h"
#include "tests/unit/common/mem_io.h"

/* A private state dir for this fuzzing process, so blob_put and lb ops a
 * fuzzer stumbles on write nowhere shared. */
static const char *scratch_dir(void)
{
	static char dir[] = "/tmp/mlctl-fuzz-proto-XXXXXX";
	static bool made;

	if (!made && mkdtemp(dir))
		made = true;
	return made ? dir : "/nonexistent/mlctl-fuzz";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_replies(const struct ml_buf *out)
{
	struct ml_buf payload = ML_BUF_INIT(ML_PROTO_MAX_PAYLOAD);
	struct mem_io m;
	struct ml_io io;
	json_t *msg;
	char type;
	int rc;

	mem_io_init(&io, &m, out->data, out->len);
	while ((rc = ml_frame_read(&io, &type, &payload)) == 1) {
		if (type != ML_FRAME_JSON ||
		    ml_proto_decode(&msg, payload.data, payload.len) < 0)
			abort();
		if (!json_is_integer(json_object_get(msg, "id")) ||
		    !json_is_boolean(json_object_get(msg, "ok")))
			abort();
		json_decref(msg);
	}
	if (rc != 0)
		abort();
	ml_buf_release(&payload);
	mem_io_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_agent a;
	struct mem_io m;
	struct ml_io io;
	json_t *res = NULL;
	uint64_t id = 1;
	int rc;

	ml_log_init("fuzz", ML_LOG_QUIET);

	/* agent side */
	mem_io_init(&io, &m, data, size);
	ml_agent_init(&a);
	a.docker_sock = "/nonexistent/mlctl-fuzz/docker.sock";
	a.state_dir = scratch_dir();
	a.gpu_dir = "/nonexistent/mlctl-fuzz/gpus";
	rc = ml_agent_serve(&a, &io);
	if (rc > 0)
		abort();
	ml_agent_release(&a);
	check_replies(&m.out);
	mem_io_release(&m);

	/* client side: the same bytes as an agent's replies */
	mem_io_init(&io, &m, data, size);
	m.discard = true;
	while (m.in_off < m.in_len) {
		rc = ml_proto_call(&io, &id, "inspect", NULL, &res);
		if (rc == 0)
			json_decref(res);
		else if (ml_err_code() != rc)
			abort();
		if (rc == 0 || rc == ML_EPROTO || rc == ML_ENOTFOUND ||
		    rc == ML_EFAIL || rc == ML_ETOOBIG || rc == ML_EHOST ||
		    rc == ML_EINVALID || rc == ML_ELOCKED || rc == ML_EINTR ||
		    rc == ML_ENOSPACE)
			continue;
		abort();
	}
	mem_io_release(&m);
	return 0;
}
