/*  eio - Engine.IO v4 packets and polling payloads, no I/O
 *
 *  A packet is one type character and its data: '0' open, '1' close, '2' ping,
 *  '3' pong, '4' message, '5' upgrade, '6' noop. Over WebSocket one frame is one
 *  packet (a binary frame is a binary message, with no type byte). Over HTTP
 *  long-polling a payload is packets joined by the record separator 0x1e, and a
 *  binary message travels as 'b' followed by its base64.
 */
#ifndef BELFRY_EIO_H
#define BELFRY_EIO_H

#include <stddef.h>
#include <stdint.h>

enum {
    EIO_OPEN = 0, EIO_CLOSE = 1, EIO_PING = 2, EIO_PONG = 3,
    EIO_MESSAGE = 4, EIO_UPGRADE = 5, EIO_NOOP = 6,
};

#define EIO_SEPARATOR 0x1e

typedef struct {
    int type;               /* EIO_* */
    int binary;             /* 1 for a binary message (data is raw bytes) */
    const char *data;       /* text data after the type char, or the binary bytes */
    size_t len;
} eio_packet_t;

/* Decodes one text packet (a WebSocket text frame, or one polling record that
 * does not start with 'b'). data points into s. Returns 0, or -1 if s is
 * empty or the type is not '0'..'6'. */
int eio_decode(const char *s, size_t len, eio_packet_t *out);

/* Iterates the records of a polling payload. Start with *pos = 0. Returns 1
 * and sets rec/rec_len for each record (without the separator), 0 at the end.
 * An empty record (leading, trailing or doubled separator) is returned as a
 * record of length 0, which eio_decode refuses. */
int eio_payload_next(const char *payload, size_t len, size_t *pos,
                     const char **rec, size_t *rec_len);

/* Decodes one polling record: text packets as eio_decode; a 'b' record is
 * base64-decoded into scratch (capacity >= len) and returned as a binary
 * message pointing into scratch. Returns 0 or -1. */
int eio_decode_record(const char *rec, size_t len, char *scratch, eio_packet_t *out);

/* Writes the polling record for a binary message ('b' + base64) into out
 * (capacity >= 1 + b64_encoded_len(len) + 1). Returns its length. */
size_t eio_encode_binary_record(const void *data, size_t len, char *out);

/* Writes the open packet's JSON into out: {"sid":"…","upgrades":[…],
 * "pingInterval":N,"pingTimeout":N,"maxPayload":N} with exactly these keys in
 * this order; upgrades is ["websocket"] when can_upgrade, else []. Returns
 * the length written (without NUL), or -1 if cap is too small. */
int eio_open_json(char *out, size_t cap, const char *sid, int can_upgrade,
                  long ping_interval_ms, long ping_timeout_ms, long max_payload);

#endif
