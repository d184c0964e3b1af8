/*  pub - the fan-out side of the broker: publishes envelopes on the bus
 *
 *  The transport is common/bus (--fanout zmq|redis|nats); with ZeroMQ (the
 *  default) each message goes out as two frames [env_topic(nsp, room)]
 *  [envelope] (proto/envelope.h) on a PUB socket with ZMQ_SNDHWM. The publisher fills `prev` from its own memory of the
 *  last seq it published per (nsp, room): a map from topic to a malloc'd
 *  uint64_t, capped at PUB_ROOMS_MAX rooms (when full it is cleared: prev
 *  becomes 0, "unknown", which gateways handle as a possible gap).
 */
#ifndef BELFRY_PUB_H
#define BELFRY_PUB_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "bus.h"

#define PUB_ROOMS_MAX 1000000
#define PUB_SNDHWM    1000000

typedef struct pub pub_t;

/* The heartbeat topic: 0x01 "hb" 0x00 (4 bytes; no room topic can equal it,
 * since namespaces start with '/'). */
#define PUB_HB_TOPIC     "\x01hb"
#define PUB_HB_TOPIC_LEN 4

/* Creates a PUB socket in zctx bound to endpoint with ZMQ_SNDHWM hwm
 * (<= 0: PUB_SNDHWM). Returns NULL with a reason in err (capacity errcap)
 * on failure. */
pub_t *pub_new(void *zctx, const char *endpoint, int hwm, char *err, size_t errcap);
/* Creates a publisher on the fan-out transport cfg describes (role
 * BUS_PUB; cfg->hwm <= 0: PUB_SNDHWM). base may be NULL for ZeroMQ only;
 * Redis and NATS connect in the background on base. Returns NULL with a
 * reason in err on a bad setting. */
pub_t *pub_new_bus(struct event_base *base, const bus_config_t *cfg, char *err, size_t errcap);
/* 1 when the transport can carry messages (ZeroMQ: bound; Redis, NATS:
 * connected to the server). */
int pub_ready(const pub_t *self);
/* Closes the socket (LINGER 0: unsent messages are dropped) and frees
 * everything; NULL-safe; sets *self_p to NULL. */
void pub_destroy(pub_t **self_p);

/* Publishes m (m->prev is overwritten with this room's previous seq, 0 if
 * unknown). Messages must be given in seq order. Returns 0, or -1 if the
 * message could not be encoded or sent (logged and counted; the room's prev
 * is still advanced, so a gateway sees the gap). A message with seq 0 is
 * ephemeral: prev is set to 0 and neither the room map nor the head move. */
int pub_send(pub_t *self, env_msg_t *m);
/* The topic and envelope bytes of the last pub_send that got as far as
 * encoding (whether or not ZeroMQ took it). Valid until the next call of
 * any pub_ function. 0, or -1 if the last message could not be encoded. */
int pub_last_envelope(const pub_t *self, const char **topic, size_t *topic_len,
                      const char **env, size_t *env_len);
/* Publishes the heartbeat {"seq": pub_last_seq, "epoch": epoch} on
 * PUB_HB_TOPIC. 0 or -1 (counted as a publish error). */
int pub_heartbeat(pub_t *self, const char *epoch);

/* Per-room positions, keyed by the topic (env_topic bytes): the last seq
 * published to that room, or 0 if this publisher does not know it. */
uint64_t pub_room_last(const pub_t *self, const char *topic, size_t len);
/* Records seq as the room's last seq if the room is not known yet (a
 * preload from the database). 0, or -1 on allocation failure. */
int pub_seed_room(pub_t *self, const char *topic, size_t len, uint64_t seq);
/* Forgets every room (a new leadership term: prev links restart). */
void pub_reset_rooms(pub_t *self);

/* The seq of the last message published, or the value given to
 * pub_set_last_seq() if that is higher (the cursor position at start). */
uint64_t pub_last_seq(const pub_t *self);
void pub_set_last_seq(pub_t *self, uint64_t seq);
/* Counters: messages sent, and messages that failed. */
uint64_t pub_sent_count(const pub_t *self);
uint64_t pub_error_count(const pub_t *self);
/* Envelope bytes of the messages sent (the topic frame not included). */
uint64_t pub_sent_bytes(const pub_t *self);

#endif
