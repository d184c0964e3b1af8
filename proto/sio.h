/*  sio - Socket.IO v5 packets, no I/O
 *
 *  <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]
 *  type: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR,
 *        5 BINARY_EVENT, 6 BINARY_ACK.
 *  The namespace is present only when it is not "/"; it starts with '/' and
 *  ends at ',' — or at the end of the packet ("40/custom" without a comma is
 *  valid). JSON is kept as the raw bytes the client sent, so that echoes are
 *  byte-exact.
 */
#ifndef BELFRY_SIO_H
#define BELFRY_SIO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum {
    SIO_CONNECT = 0, SIO_DISCONNECT = 1, SIO_EVENT = 2, SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4, SIO_BINARY_EVENT = 5, SIO_BINARY_ACK = 6,
};

#define SIO_MAX_ATTACHMENTS 64

/* How Socket.IO JSON is parsed (jansson flags): as JSON.parse does, any value,
 * NUL in strings, and integers of any size (as reals). Whoever parses what a
 * client sent uses these, so that what the codec accepted is never refused
 * later. */
#define SIO_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

typedef struct {
    int type;
    unsigned attachments;   /* BINARY_*: number of binary attachments that follow */
    const char *nsp;        /* namespace, "/" when absent; points into the packet or a literal */
    size_t nsp_len;
    int64_t ack_id;         /* -1 when absent; 0..2^53 otherwise */
    const char *data;       /* raw JSON, or NULL/0 when absent */
    size_t data_len;
} sio_packet_t;

/* Decodes and validates one packet (the data of an Engine.IO message).
 * Validation: known type; attachments only for BINARY_* (required there, and
 * <= SIO_MAX_ATTACHMENTS); ack ids only digits; JSON, when present, must parse
 * (jansson) and must be: CONNECT an object; EVENT/BINARY_EVENT a non-empty
 * array whose first element is a string; ACK/BINARY_ACK an array;
 * CONNECT_ERROR an object; DISCONNECT no data. EVENT/ACK types require data.
 * Also: an ack id only on EVENT/ACK types, and required on ACK/BINARY_ACK;
 * no control character (< 0x20) in the namespace. It does not compare the
 * attachment count with the placeholders (see sio_count_placeholders).
 * Returns 0, or -1 if malformed. */
int sio_decode(const char *s, size_t len, sio_packet_t *out);

/* sio_decode that also hands over what it parsed: on success *json_out is
 * the data's JSON (parsed with SIO_JSON_FLAGS; the caller json_decrefs it),
 * or NULL when the packet has no data; on failure NULL. For a caller that
 * would otherwise parse the same bytes again (the CONNECT auth payload). */
int sio_decode_json(const char *s, size_t len, sio_packet_t *out, json_t **json_out);

/* For an EVENT's JSON array: returns the event name (the first element) and
 * the rest of the array after it: for `["msg",1,{"a":2}]` name = "msg" (the
 * decoded string, in a malloc'd buffer *name_out the caller frees; may
 * contain no NUL) and rest = `,1,{"a":2}]` (points into data, byte-exact).
 * For `["msg"]` rest is `]`. Returns 0, or -1 (caller must not free). */
int sio_event_split(const char *data, size_t len, char **name_out,
                    const char **rest, size_t *rest_len);

/* Writes the packet header "<type>[<att>-][<nsp>,][<ackid>]" into out
 * (capacity cap): the namespace only when it is not "/", attachments only when
 * type is BINARY_*, ack id only when >= 0. The header is NUL-terminated (cap
 * counts the NUL). Returns the length without the NUL, or -1 if it does not
 * fit, the type is unknown, or nsp does not start with '/' or holds a ','. */
int sio_encode_header(char *out, size_t cap, int type, const char *nsp, size_t nsp_len,
                      unsigned attachments, int64_t ack_id);

/* Appends s[0..n) to out as a JSON string literal with quotes, escaped like
 * JSON.stringify (", \, control characters as \uXXXX or \n etc.; UTF-8
 * passed through). NUL-terminated (cap counts the NUL). Returns the number
 * of bytes written without the NUL, or -1 if cap is too small. */
int sio_json_string(char *out, size_t cap, const char *s, size_t n);

/* Counts {"_placeholder":true,"num":N} objects in parsed JSON, checking that
 * their nums are exactly 0..count-1. Returns the count or -1. An object is a
 * placeholder when its "_placeholder" is true (as in the reference parser,
 * extra keys do not matter); its "num" must be an integer 0..63. */
int sio_count_placeholders(const char *data, size_t len);

#endif
