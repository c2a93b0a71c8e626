#ifndef ML_PROTO_H
#define ML_PROTO_H

/*
 * The mlctl wire protocol, spoken between the controller (mlctl) and
 * `mlctl-agent serve` over the agent's stdin/stdout, tunnelled through SSH.
 *
 * Frames. Every message is one frame:
 *
 *	+----------------+------+---------------------+
 *	| L: 4 bytes, BE | type | payload: L - 1 bytes |
 *	+----------------+------+---------------------+
 *
 * L counts the type byte and the payload, 1 <= L <= ML_PROTO_MAX_FRAME
 * (1 MiB + 1, so a payload is at most 1 MiB). type is 'J' (a JSON message,
 * UTF-8, one object) or 'D' (a chunk of binary data, reserved for image
 * streaming). A zero or too large L is a protocol error after which the
 * stream cannot be resynchronized; an unknown type is an error too, but its
 * payload is consumed, so the stream stays at a frame boundary. Readers
 * never allocate more than they have received plus one read chunk, so a
 * lying length costs nothing.
 *
 * Messages. A JSON frame holds one object; it is parsed with duplicate keys
 * rejected, invalid UTF-8 and "\u0000" rejected (jansson), at most
 * ML_PROTO_MAX_DEPTH levels of nesting and ML_PROTO_MAX_NODES arrays,
 * objects and elements (checked before parsing, so a hostile 1 MiB frame
 * cannot make the parser build a huge tree). A request and its replies:
 *
 *	{"v":1,"id":7,"op":"inspect","args":{"id":"web-1"}}
 *	{"v":1,"id":7,"ok":true,"result":{...}}
 *	{"v":1,"id":7,"ok":false,"error":{"code":"not-found","message":"..."}}
 *
 * "v" is the protocol version, "id" an integer from 1 to 2^53 chosen by the
 * controller and copied into the reply; id 0 is used by the agent for the
 * reply to a frame it could not read an id from. "args" may be absent
 * (treated as {}). Unknown keys are ignored, so later versions can add
 * fields. Error codes are short lowercase words (ML_PROTO_ERR_* and the
 * table in proto.c); the controller maps them back to ML_E* codes.
 *
 * Versions. The first request must be "hello" with args {"versions":[...]},
 * the protocol versions the controller speaks; its envelope always has
 * "v":1 so that any agent can read it. The agent answers with
 * {"protocol":N,...}, the highest version both speak, or the error
 * "version-mismatch" ("no common protocol version (agent speaks 1,
 * controller speaks 2)"). Every later message uses "v":N. Before a
 * successful hello any other request gets the error "hello-first".
 *
 * Ownership: json_t values follow jansson's reference counting; a parameter
 * documented as "stolen" takes the caller's reference.
 */

#include "common/io.h"

#include <jansson.h>

#define ML_PROTO_VERSION 1 /* the highest version this build speaks */
#define ML_PROTO_MAX_PAYLOAD ((size_t)1 << 20)
#define ML_PROTO_MAX_FRAME (ML_PROTO_MAX_PAYLOAD + 1)
#define ML_PROTO_MAX_DEPTH 32
#define ML_PROTO_MAX_NODES 100000
#define ML_PROTO_MAX_ID ((uint64_t)1 << 53) /* exact in a double */

#define ML_FRAME_JSON 'J'
#define ML_FRAME_DATA 'D'

/* Error codes on the wire (error.code); see ml_proto_code_to_ml(). */
#define ML_PROTO_ERR_BAD_FRAME "bad-frame"     /* frame length or type */
#define ML_PROTO_ERR_BAD_REQUEST "bad-request" /* JSON, envelope or args */
#define ML_PROTO_ERR_UNKNOWN_OP "unknown-op"
#define ML_PROTO_ERR_HELLO_FIRST "hello-first"
#define ML_PROTO_ERR_VERSION "version-mismatch"
#define ML_PROTO_ERR_TOO_BIG "too-big" /* reply larger than a frame */

/*
 * Write one frame of type (ML_FRAME_JSON or ML_FRAME_DATA) with n payload
 * bytes. ML_ETOOBIG when n > ML_PROTO_MAX_PAYLOAD (nothing is written),
 * BUG() on another type, else whatever io->write returns.
 */
int ml_frame_write(struct ml_io *io, char type, const void *p, size_t n);

/*
 * Read one frame: its type into *type and its payload into payload (reset
 * first; payload->max must allow ML_PROTO_MAX_PAYLOAD, or a large frame
 * fails with ML_ETOOBIG). Returns 1 for a frame, 0 at a clean end of
 * stream (before the first byte of a frame), ML_EPROTO on a bad length, an
 * unknown type or a stream that ends inside a frame, or the error of
 * io->read.
 */
int ml_frame_read(struct ml_io *io, char *type, struct ml_buf *payload);

/*
 * ml_frame_read, also telling on failure whether the stream is still at a
 * frame boundary: *in_sync is true only after an unknown type, whose
 * payload was read and dropped, and false for every other failure.
 */
int ml_frame_read_ex(struct ml_io *io, char *type, struct ml_buf *payload,
		     bool *in_sync);

/*
 * Encode msg (borrowed) compactly and write it as one JSON frame.
 * ML_ETOOBIG when the encoding is larger than a frame, nothing written.
 */
int ml_proto_send(struct ml_io *io, json_t *msg);

/*
 * Read one frame and decode it as a JSON message (ml_proto_decode). A data
 * frame is ML_EPROTO; end of stream is ML_EPROTO ("connection closed").
 * *msg is set only on success and is the caller's reference.
 */
int ml_proto_recv(struct ml_io *io, json_t **msg);

/*
 * Decode n bytes as one JSON object within the limits above. ML_EPROTO with
 * the reason (parser text escaped) on failure. *out is the caller's.
 */
int ml_proto_decode(json_t **out, const void *p, size_t n);

/*
 * Client side of one request: send {"v":1,"id":N,"op":op,"args":args}
 * with N = *next_id (then incremented; 0 is skipped), read the reply and
 * return its result object in *result (the caller's reference). args is
 * stolen and may be NULL ({}). An error reply returns the code mapped by
 * ml_proto_code_to_ml() with the message "OP failed: REMOTE MESSAGE", the
 * remote text escaped. A reply with another id, a wrong version or a
 * malformed envelope is ML_EPROTO. Replies to unreadable frames (id 0,
 * "bad-frame") are reported as the error they carry.
 */
int ml_proto_call(struct ml_io *io, uint64_t *next_id, const char *op,
		  json_t *args, json_t **result);

/*
 * The two halves of ml_proto_call, for requests followed by data frames
 * (blob_put): send the request and learn its id, later read its reply.
 */
int ml_proto_request(struct ml_io *io, uint64_t *next_id, const char *op,
		     json_t *args, uint64_t *id);
int ml_proto_reply(struct ml_io *io, uint64_t id, const char *op,
		   json_t **result);

/*
 * Open a session: ml_proto_call "hello" offering versions 1 to
 * ML_PROTO_VERSION, check that the agent chose one of them, and return the
 * hello result in *result (may be NULL when not wanted).
 */
int ml_proto_hello(struct ml_io *io, uint64_t *next_id, json_t **result);

/* Build messages (agent side). Never NULL; result is stolen (NULL: {}). */
json_t *ml_proto_ok_reply(uint64_t id, json_t *result);
json_t *ml_proto_error_reply(uint64_t id, const char *code,
			     const char *message);

/*
 * Error codes: the wire word for an ML_E* code ("failed" for codes without
 * their own word), and back (unknown words give ML_EPROTO).
 */
const char *ml_proto_code_from_ml(int code);
int ml_proto_code_to_ml(const char *word);

/*
 * A JSON string for s that is never NULL for bad input: text that is not
 * valid UTF-8 is escaped (ml_escape) first. NULL s gives JSON null.
 */
json_t *ml_proto_string(const char *s);

#endif
