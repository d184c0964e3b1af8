/*  rpc - the broker's upstream RPC socket (gateway DEALER -> broker ROUTER)
 *
 *  A request is [identity][msgpack map] (an empty delimiter frame between
 *  them, as a REQ socket sends, is accepted and echoed). The map has "op"
 *  (str) and "id" (int, echoed in the reply). See proto/PROTOCOL.md,
 *  "Upstream RPC (gateway -> broker)".
 *
 *  `ping` is answered here at once from rpc_status_t. Every other known op
 *  is parsed and validated into an rpc_req_t (rpc_parse) and handed to the
 *  request callback, which answers later, exactly once, with
 *  rpc_reply_begin/rpc_reply_send or rpc_reply_error (that frees the
 *  request). Unknown ops get {"id":N,"error":"unknown op"}; a known op with
 *  a missing or mistyped field gets "bad request: <field>"; a data op on a
 *  broker that does not lead gets "not leader". A message that is not a map
 *  with an integer "id" gets no reply; it is logged and counted.
 */
#ifndef BELFRY_RPC_H
#define BELFRY_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define RPC_MSG_MAX   (64 * 1024)   /* larger request bodies are refused */
#define RPC_ROOMS_MAX 1000          /* rooms per positions/replay/session_put */
#define RPC_IDS_MAX   1000          /* ids per mark_read */
#define RPC_LIMIT_MAX 10000         /* replay/recover limit (larger is clamped) */
#define RPC_REPLAY_LIMIT_DEFAULT 1000
#define RPC_UNREAD_LIMIT_MAX 1000   /* unread limit (larger is clamped) */
#define RPC_NAME_MAX  1024          /* bytes of ns, user, pid, room, event, name */

struct event_base;
typedef struct rpc rpc_t;

typedef enum {
    RPC_OP_PING = 0, RPC_OP_POSITIONS, RPC_OP_REPLAY, RPC_OP_SESSION_PUT, RPC_OP_RECOVER,
    RPC_OP_UNREAD, RPC_OP_MARK_READ, RPC_OP_EVENT, RPC_OP_PUBLISH, RPC_OP_COUNT
} rpc_op_t;

/* The op's name ("ping", ...); "?" for an out-of-range value. */
const char *rpc_op_name(rpc_op_t op);

/* A string field: NUL-terminated copy (no NUL inside), len bytes. */
typedef struct {
    const char *ptr;
    size_t len;
} rpc_str_t;

/* A parsed request. Fields an op does not use are zero/empty. */
typedef struct rpc_req {
    rpc_op_t op;
    rpc_str_t ns, user, pid, room, event, name;
    rpc_str_t json;             /* args_json (event) or payload_json (publish) */
    rpc_str_t *rooms;           /* positions, replay, session_put */
    size_t nrooms;
    int64_t *ids;               /* mark_read */
    size_t nids;
    int all;                    /* mark_read: all: true */
    uint64_t after;             /* replay, recover */
    uint64_t limit;             /* replay, recover, unread (defaulted, clamped) */
    /* private to rpc.c */
    struct rpc_req_priv *priv;
} rpc_req_t;

/* What a ping reports. */
typedef struct {
    uint64_t seq;           /* last published seq (or the cursor position) */
    int leader;             /* 1 while this broker leads and reads */
    const char *epoch;      /* changes with every start of leadership; "" if never led */
    uint64_t oldest;        /* lowest `after` a replay/recover still accepts */
} rpc_status_t;

/* Fills *st for a reply. */
typedef void (*rpc_status_fn)(void *ctx, rpc_status_t *st);
/* A data request from a gateway (only called while st.leader). The callee
 * owns req and must answer it exactly once (possibly later, from the loop). */
typedef void (*rpc_request_fn)(void *ctx, rpc_req_t *req);

/* Creates a ROUTER socket in zctx bound to endpoint and watches it on base.
 * Returns NULL with a reason in err on failure. */
rpc_t *rpc_new(struct event_base *base, void *zctx, const char *endpoint,
               rpc_status_fn status_fn, void *status_ctx,
               rpc_request_fn request_fn, void *request_ctx, char *err, size_t errcap);
/* Stops watching, closes the socket (LINGER 0), frees. Requests still held
 * by the callee stay valid; answering them later only frees them. NULL-safe. */
void rpc_destroy(rpc_t **self_p);
/* Requests answered, and messages refused as malformed. */
uint64_t rpc_request_count(const rpc_t *self);
uint64_t rpc_malformed_count(const rpc_t *self);
/* Requests received and error replies sent, per op (op < RPC_OP_COUNT). */
uint64_t rpc_op_count(const rpc_t *self, rpc_op_t op);
uint64_t rpc_op_error_count(const rpc_t *self, rpc_op_t op);

/* Starts the success reply of req: returns a packer inside a map of
 * nfields + 2 entries, "id" and "ok" written; pack exactly nfields pairs,
 * then call rpc_reply_send. */
msgpack_packer *rpc_reply_begin(rpc_req_t *req, uint32_t nfields);
/* Sends the reply begun with rpc_reply_begin and frees req. */
void rpc_reply_send(rpc_req_t *req);
/* Sends {"id":N,"error":msg} and frees req (msg: any bytes, copied). */
void rpc_reply_error(rpc_req_t *req, const char *msg);
/* Frees req without answering (only for requests not from a socket, e.g.
 * made by rpc_parse in tests). NULL-safe. */
void rpc_req_free(rpc_req_t *req);

/* Pure request handler for what needs no database: decodes the body
 * req[0..len). Returns 0 if a reply was written to out (a ping, or an error
 * reply: *is_error is then 1), 1 if it is a well-formed data op that the
 * caller must parse with rpc_parse and handle (nothing written; on a broker
 * that does not lead the "not leader" error is written instead and 0
 * returned), or -1 if the body is not a msgpack map with an integer "id"
 * (nothing written). */
int rpc_handle(const void *req, size_t len, const rpc_status_t *st,
               msgpack_sbuffer *out, int *is_error);

/* Parses and validates a data request. Returns a new request (free with
 * rpc_req_free or answer it), or NULL with *err set to a static reason:
 * "bad request: <field>", "unknown op", or "out of memory". Every string
 * field is copied and NUL-terminated; a string with a NUL inside is
 * refused. */
rpc_req_t *rpc_parse(const void *body, size_t len, const char **err);

#endif
