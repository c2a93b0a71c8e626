/*
 * libFuzzer target for the parser of HAProxy's tables (agent/lb/
 * runtime.c) and the server-state carry that uses it (agent/lb/state.c):
 * any bytes, cut at the first NUL as the runtime API client's answer is,
 * go to ml_haproxy_parse_rows() with both separators, to
 * ml_haproxy_parse_table(), and as a `show servers state` dump to
 * ml_haproxy_carry_checks() for a fixed configuration with a server check
 * of its own. Everything returned is freed; the invariants callers rely
 * on are checked: every row is an array of strings, the carry's output is
 * bounded and, when the dump is not format 1, the input unchanged.
 * Seeds: tests/fuzz/seeds/lb_tables/.
 */
#include "common/ml.h"

#include "agent/lb/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rows(json_t *names, json_t *rows)
{
	size_t i, j;
	json_t *r, *v;

	json_array_foreach(names, i, v)
		if (!json_is_string(v))
			abort();
	json_array_foreach(rows, i, r) {
		if (!json_is_array(r) || !json_array_size(r))
			abort();
		json_array_foreach(r, j, v)
			if (!json_is_string(v))
				abort();
	}
}

static struct ml_lb_config *config(void)
{
	static struct ml_lb_config c;
	static bool done;
	json_t *args;

	if (done)
		return &c;
	args = json_pack("{s:s,s:i,s:[{s:s,s:s,s:i,s:{s:s}},{s:s,s:s,s:i}]}",
			 "app", "demo", "listen_port", 8080, "servers", "name",
			 "old", "address", "10.0.0.11", "port", 9000, "health",
			 "path", "/old", "name", "new", "address", "10.0.0.12",
			 "port", 9001);
	if (ml_lb_config_from_json(&c, args) < 0)
		abort();
	json_decref(args);
	done = true;
	return &c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = ml_xstrndup((const char *)data, size);
	struct ml_buf out = ML_BUF_INIT(ML_HAPROXY_REPLY_MAX);
	json_t *names, *rows, *objs;
	const char seps[] = {',', ' '};

	for (size_t i = 0; i < sizeof(seps); i++) {
		if (ml_haproxy_parse_rows(&names, &rows, text, seps[i]) == 0) {
			check_rows(names, rows);
			json_decref(names);
			json_decref(rows);
		}
		if (ml_haproxy_parse_table(&objs, text, seps[i]) == 0) {
			if (!json_is_array(objs))
				abort();
			json_decref(objs);
		}
	}
	if (ml_haproxy_carry_checks(&out, text, config()) == 0 &&
	    strncmp(text, "1\n", 2) && strcmp(ml_buf_str(&out), text))
		abort();
	ml_buf_release(&out);
	free(text);
	return 0;
}
