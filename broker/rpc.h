/*  rpc - the broker's upstream RPC socket (gateway DEALER -> broker ROUTER)
 *
 *  A request is [identity][msgpack map] (an empty delimiter frame between
 *  them, as a REQ socket sends, is accepted and echoed). The map has "op"
 *  (str) and "id" (int, echoed in the reply). See proto/PROTOCOL.md,
 *  "Upstream RPC (gateway -> broker)". Ops so far:
 *    ping -> {"id":N,"ok":true,"seq":<last published seq>,"leader":bool,
 *             "epoch":str}
 *  Anything else with an id -> {"id":N,"error":"unknown op"} or
 *  {"id":N,"error":"bad request"}; a message that is not a map with an
 *  integer "id" gets no reply; both are logged and counted.
 */
#ifndef BELFRY_RPC_H
#define BELFRY_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define RPC_MSG_MAX (64 * 1024)   /* larger request bodies are refused */

struct event_base;
typedef struct rpc rpc_t;

/* What a ping reports. */
typedef struct {
    uint64_t seq;           /* last published seq (or the cursor position) */
    int leader;             /* 1 while this broker leads and reads */
    const char *epoch;      /* changes with every start of leadership; "" if never led */
} rpc_status_t;

/* Fills *st for a reply. */
typedef void (*rpc_status_fn)(void *ctx, rpc_status_t *st);

/* Creates a ROUTER socket in zctx bound to endpoint and watches it on base.
 * Returns NULL with a reason in err on failure. */
rpc_t *rpc_new(struct event_base *base, void *zctx, const char *endpoint,
               rpc_status_fn status_fn, void *status_ctx, char *err, size_t errcap);
/* Stops watching, closes the socket (LINGER 0), frees; NULL-safe. */
void rpc_destroy(rpc_t **self_p);
/* Requests answered, and messages refused as malformed. */
uint64_t rpc_request_count(const rpc_t *self);
uint64_t rpc_malformed_count(const rpc_t *self);

/* Pure request handler: decodes the body req[0..len) and appends the reply
 * map to out. Returns 0 if a reply was written (which may be an error reply:
 * *is_error is then 1), or -1 if the body is not a msgpack map with an
 * integer "id" (nothing written). */
int rpc_handle(const void *req, size_t len, const rpc_status_t *st,
               msgpack_sbuffer *out, int *is_error);

#endif
