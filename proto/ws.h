/*  ws - WebSocket framing (RFC 6455), no I/O
 *
 *  The parser is a resumable state machine in the manner of wslay: the caller
 *  hands it whatever bytes arrived (one byte, or half a header, or many frames)
 *  and it reports whole messages and control frames as events. It enforces the
 *  server side of the RFC: client frames must be masked, RSV bits must be zero
 *  (no extensions are negotiated), opcodes must be known, control frames must
 *  be final and at most 125 bytes, continuation frames must continue a
 *  message, text must be valid UTF-8 (checked incrementally, so invalid bytes
 *  are caught even when split across fragments), close codes must be valid,
 *  and a message may not exceed max_message bytes. Violations yield an error
 *  with the close code the server should send (1002, 1007 or 1009).
 *
 *  The encoder writes unmasked server frames; ws_build_frame_masked is for
 *  clients (tests, benchmarks).
 */
#ifndef BELFRY_WS_H
#define BELFRY_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA,
};

enum {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008, WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_INTERNAL = 1011,
};

/* Error results of ws_parser_feed (negative). */
enum {
    WS_ERR_PROTO   = -200,  /* close with 1002 */
    WS_ERR_UTF8    = -201,  /* close with 1007 */
    WS_ERR_TOO_BIG = -202,  /* close with 1009 */
    WS_ERR_NOMEM   = -500,  /* close with 1011 */
};

typedef struct {
    int opcode;             /* WS_OP_TEXT, WS_OP_BINARY (whole, reassembled message),
                               WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE */
    const uint8_t *data;    /* payload, unmasked; valid until the next feed/reset */
    size_t len;
    int close_code;         /* WS_OP_CLOSE: the code, or WS_CLOSE_NO_STATUS if none;
                               data/len then hold the reason (valid UTF-8) */
} ws_event_t;

/* Parser state; embed it in a connection, zero it with ws_parser_init. */
typedef struct {
    size_t max_message;     /* maximum reassembled message size */
    int require_mask;       /* 1 for a server (default), 0 for a client */
    /* private */
    int state;
    uint8_t hdr[14];
    size_t hdr_have, hdr_need;
    int fin, opcode;
    uint64_t frame_len, frame_done;
    uint8_t mask[4];
    int masked;
    int msg_opcode;         /* opcode of the message being reassembled, 0 if none */
    uint32_t utf8_state;
    uint8_t *buf;           /* message being reassembled (data frames) */
    size_t buf_len, buf_cap;
    uint8_t ctl[125];       /* current control frame payload */
    size_t ctl_len;
} ws_parser_t;

void ws_parser_init(ws_parser_t *p, size_t max_message, int require_mask);
void ws_parser_free(ws_parser_t *p);  /* frees the reassembly buffer; p can be reused after init */
/* Frees the reassembly buffer if no message is in progress (the last event's
 * data is dead after this), so an idle connection holds none; the parser
 * goes on as before. */
void ws_parser_trim(ws_parser_t *p);

/* Consumes bytes from data[0..len). Returns the number of bytes consumed
 * (0..len) and sets ev->opcode to 0 if no event is ready yet, or to the
 * opcode of the one event it stopped at (the caller handles it, then calls
 * again with the remaining bytes — which may be zero bytes, so loop while the
 * return value or ev->opcode is non-zero). Returns a WS_ERR_* code on a
 * protocol violation; the parser is then dead and the caller closes with
 * ws_err_close_code(). */
ssize_t ws_parser_feed(ws_parser_t *p, const uint8_t *data, size_t len, ws_event_t *ev);

int ws_err_close_code(int err);

/* Maximum frame header size. */
#define WS_MAX_HEADER 14

/* Writes a server (unmasked) frame header for a payload of len bytes into out
 * (capacity WS_MAX_HEADER). fin 0/1. Returns the header length (2, 4 or 10). */
size_t ws_build_header(uint8_t *out, int fin, int opcode, uint64_t len);
/* Writes a masked client frame: header + masked copy of payload into out
 * (capacity WS_MAX_HEADER + len). Returns the total length. */
size_t ws_build_frame_masked(uint8_t *out, int fin, int opcode, const uint8_t mask[4],
                             const void *payload, size_t len);
/* Builds a close frame payload: 2-byte code + reason (truncated to 123). Returns length. */
size_t ws_build_close_payload(uint8_t *out, int code, const char *reason);

/* Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key +
 * GUID)) into out (capacity 29, NUL-terminated). Returns 0, or -1 if the key
 * is not 24 characters of base64 encoding 16 bytes. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
