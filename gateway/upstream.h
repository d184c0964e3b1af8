/*  upstream - the gateway's RPC client to the brokers (ZeroMQ DEALER)
 *
 *  One DEALER socket per broker endpoint, so that requests go to the broker
 *  that leads: every broker is pinged each second and the last one that said
 *  "leader": true receives data requests. A request is a msgpack map built by
 *  the caller between up_begin and up_send; the reply (or a timeout, or "no
 *  leader") comes back through the callback exactly once, unless the request
 *  was cancelled first. See proto/PROTOCOL.md.
 */
#ifndef BELFRY_UPSTREAM_H
#define BELFRY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "gw.h"

typedef struct upstream upstream_t;

/* reply is the reply map, or NULL when the request failed; error then (or
 * when the broker answered {"error":...}) names the reason. The reply is
 * valid only during the call. When error == up_cancelled the owner is going
 * away: the callback must only free its argument. */
typedef void (up_reply_fn)(void *arg, const msgpack_object *reply, const char *error);

/* Called when a leader answers with an epoch other than the last one seen
 * (a new leader, or a restarted broker), and on the first leader. */
typedef void (up_epoch_fn)(void *arg, const char *epoch, size_t len);

/* Connects one DEALER per comma-separated endpoint. NULL with a logged
 * reason on failure. */
upstream_t *up_new(gw_t *gw, void *zctx, const char *endpoints, up_epoch_fn *on_epoch, void *arg);
void up_destroy(upstream_t **self_p);

/* Starts a request: returns the packer positioned inside a map of
 * nfields + 2 entries, "op" and "id" already written; the caller packs
 * exactly nfields key/value pairs, then calls up_send. */
msgpack_packer *up_begin(upstream_t *self, const char *op, uint32_t nfields);
/* Sends the request begun by up_begin. cb(arg, ...) is called exactly once:
 * with the reply, or with NULL after timeout_ms, when no broker leads, or
 * with up_cancelled. owner (may be NULL) groups requests for
 * up_cancel_owner. Returns the request id (> 0). */
uint64_t up_send(upstream_t *self, up_reply_fn *cb, void *arg, void *owner, long timeout_ms);
/* Calls back every pending request of owner with up_cancelled, now. */
void up_cancel_owner(upstream_t *self, void *owner);
extern const char up_cancelled[];

/* 1 when a leading broker answered a ping in the last 3 seconds. */
int up_ready(const upstream_t *self);

/* Packs a msgpack string (request building). */
void up_pack_str(msgpack_packer *pk, const char *s, size_t n);

/* Reply helpers: the value of key in a msgpack map, or NULL. */
const msgpack_object *up_get(const msgpack_object *map, const char *key);
/* The string at key as (ptr, len); 0, or -1 if absent or not a string. */
int up_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len);
/* The unsigned integer at key; 0, or -1 if absent or not a non-negative int. */
int up_get_u64(const msgpack_object *map, const char *key, uint64_t *v);

#endif
