/*  pub - the fan-out side of the broker: a ZeroMQ PUB socket
 *
 *  Each message goes out as two frames [env_topic(nsp, room)][envelope]
 *  (proto/envelope.h). The publisher fills `prev` from its own memory of the
 *  last seq it published per (nsp, room): a map from topic to a malloc'd
 *  uint64_t, capped at PUB_ROOMS_MAX rooms (when full it is cleared: prev
 *  becomes 0, "unknown", which gateways handle as a possible gap).
 */
#ifndef BELFRY_PUB_H
#define BELFRY_PUB_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

#define PUB_ROOMS_MAX 1000000
#define PUB_SNDHWM    1000000

typedef struct pub pub_t;

/* Creates a PUB socket in zctx bound to endpoint (SNDHWM PUB_SNDHWM).
 * Returns NULL with a reason in err (capacity errcap) on failure. */
pub_t *pub_new(void *zctx, const char *endpoint, char *err, size_t errcap);
/* Closes the socket (LINGER 0: unsent messages are dropped) and frees
 * everything; NULL-safe; sets *self_p to NULL. */
void pub_destroy(pub_t **self_p);

/* Publishes m (m->prev is overwritten with this room's previous seq, 0 if
 * unknown). Messages must be given in seq order. Returns 0, or -1 if the
 * message could not be encoded or sent (logged and counted; the room's prev
 * is still advanced, so a gateway sees the gap). */
int pub_send(pub_t *self, env_msg_t *m);

/* The seq of the last message published, or the value given to
 * pub_set_last_seq() if that is higher (the cursor position at start). */
uint64_t pub_last_seq(const pub_t *self);
void pub_set_last_seq(pub_t *self, uint64_t seq);
/* Counters: messages sent, and messages that failed. */
uint64_t pub_sent_count(const pub_t *self);
uint64_t pub_error_count(const pub_t *self);

#endif
