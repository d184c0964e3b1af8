/*  envelope - the broker -> gateway message (msgpack), and the fan-out topic
 *
 *  See proto/PROTOCOL.md. A message travels as two ZeroMQ frames:
 *  [topic][envelope]. The topic is  namespace 0x00 room 0x00  so that a
 *  prefix subscription to "/\0user_1\0" never matches "/\0user_12\0"
 *  (PostgreSQL text never contains NUL, so neither part can).
 *  The envelope is a msgpack map with short string keys:
 *    "v"   1                       format version
 *    "seq" uint   global sequence number (gapless per deployment)
 *    "prev" uint  seq of the previous message in the same room, 0 if unknown
 *    "id"  int    notifications.id
 *    "ts"  int    created_at, microseconds since the Unix epoch
 *    "ns"  str    namespace          "room" str   room
 *    "ev"  str    event name         "data" str   payload as JSON text
 *  Unknown keys are ignored by the decoder (forward compatibility).
 */
#ifndef BELFRY_ENVELOPE_H
#define BELFRY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#define ENV_VERSION 1

typedef struct {
    uint64_t seq, prev;
    int64_t id, ts_us;
    const char *nsp;   size_t nsp_len;
    const char *room;  size_t room_len;
    const char *event; size_t event_len;
    const char *data;  size_t data_len;
} env_msg_t;

/* Appends the msgpack encoding of m to sb. Returns 0, or -1 (a string longer
 * than 2^32-1, a NULL string with a length, out of memory); on -1 sb is left
 * as it was on entry. */
int env_encode(msgpack_sbuffer *sb, const env_msg_t *m);

/* Decodes buf[0..len). The string fields of *m point into buf (zero copy) and
 * stay valid while buf does. Returns 0, or -1 if malformed (not a map, a
 * missing, repeated or mistyped required key, wrong version, truncated, or
 * bytes after the map); *m is untouched on -1. Allocates nothing and never
 * reads outside buf[0..len). */
int env_decode(const void *buf, size_t len, env_msg_t *m);

/* Checks that buf[0..len) is exactly one well-formed msgpack value, nested at
 * most ENV_MAX_SKIP_DEPTH deep, whose every declared container count is
 * backed by input bytes. Call it before handing peer input to msgpack-c's
 * unpacker, which allocates room for a container's declared count before
 * reading it (11 bytes can ask for 8 GiB). 0, or -1. */
int env_msgpack_check(const void *buf, size_t len);

/* Writes the topic for (nsp, room) into out: nsp \0 room \0. Returns its
 * length, or -1 if it does not fit in cap or either part contains a NUL. */
int env_topic(char *out, size_t cap, const char *nsp, size_t nsp_len,
              const char *room, size_t room_len);

#endif
