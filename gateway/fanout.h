/*  fanout - the gateway's side of the broker -> gateway fan-out
 *
 *  One ZeroMQ SUB socket connected to every broker's PUB endpoint. The room
 *  index drives the subscriptions (first local member subscribes the room's
 *  topic, last one unsubscribes). Each message is encoded once into a shared
 *  packet and queued to every local member of its room.
 *
 *  No loss, no duplicates (see docs/delivery.md): every durable message
 *  carries its global seq and the seq of the previous message of its room
 *  (prev). Per room the gateway keeps the last seq it delivered: a message at
 *  or below it is a duplicate and dropped; a prev above it reveals a gap, and
 *  the room is replayed from the broker (upstream `replay`) before later
 *  messages, which wait in a bounded queue meanwhile. A newly subscribed room
 *  asks for its position (clone pattern); every resync interval, and when a
 *  new broker epoch appears, all rooms are checked with `positions`, which
 *  also catches a lost tail that no later message would reveal.
 */
#ifndef BELFRY_FANOUT_H
#define BELFRY_FANOUT_H

#include <stddef.h>
#include <stdint.h>
#include "gw.h"
#include "rooms.h"
#include "envelope.h"
#include "pkt.h"
#include "bus.h"
#include "prom.h"

/* Connects to the comma-separated endpoints using gw->zctx. NULL with a
 * logged reason on failure (bad endpoint, ZeroMQ error). */
fanout_t *fanout_new(gw_t *gw, const char *pub_endpoints);
void fanout_destroy(fanout_t **self_p);
/* rooms_sub_fn: subscribes / unsubscribes a room topic. arg is the fanout_t. */
void fanout_room_sub(void *arg, room_t *room, int subscribe);
/* upstream epoch callback: a new leader; check every room. */
void fanout_on_epoch(void *arg, const char *epoch, size_t len);
/* 1 while a freshly subscribed room waits for its position (clone pattern):
 * a socket's CONNECT completes only after its rooms are positioned. */
int fanout_room_positioning(const room_t *room);
/* 1 when a broker is connected to the fan-out socket. */
int fanout_ready(const fanout_t *self);
/* Encodes message m as the Engine.IO packet clients receive:
 * 42[nsp,]["event",payload(,"offset")] — the offset (the seq as a string)
 * is appended when recovery is on and the message is durable. */
pkt_t *fanout_encode(const gw_t *gw, const env_msg_t *m);

/* Counters. */
typedef struct {
    uint64_t gaps;              //  Broken prev links detected
    uint64_t replayed;          //  Messages delivered from replays
    uint64_t resyncs;           //  Rooms found behind by a positions check
    uint64_t duplicates;        //  Messages dropped as already delivered
    uint64_t replay_failures;   //  Replays that could not be completed
    prom_hist_t latency;        //  created_at -> queued to clients, live messages (seconds)
} fanout_stats_t;

const fanout_stats_t *fanout_stats(const fanout_t *self);
/* The transport's own counters (common/bus.h). */
void fanout_bus_stats(const fanout_t *self, bus_stats_t *out);

#endif
