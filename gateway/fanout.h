/*  fanout - the gateway's side of the broker -> gateway fan-out (ZeroMQ SUB)
 *
 *  One SUB socket connected to every broker's PUB endpoint. The room index
 *  drives the subscriptions (first local member subscribes the room's topic,
 *  last one unsubscribes). Each message is encoded once into a shared packet
 *  and queued to every local member of its room.
 */
#ifndef BELFRY_FANOUT_H
#define BELFRY_FANOUT_H

#include <stddef.h>
#include "gw.h"

/* Connects to the comma-separated endpoints. NULL with a logged reason on
 * failure (bad endpoint, ZeroMQ error). */
fanout_t *fanout_new(gw_t *gw, const char *pub_endpoints);
void fanout_destroy(fanout_t **self_p);
/* rooms_sub_fn: subscribes / unsubscribes a room topic. arg is the fanout_t. */
void fanout_room_sub(void *arg, const char *key, size_t klen, int subscribe);
/* 1 when the fan-out is set up and has seen a connected broker. */
int fanout_ready(const fanout_t *self);

#endif
