/*  ops - the broker's answers to gateway requests (upstream RPC data ops)
 *
 *  Implements positions, replay, session_put, recover, unread, mark_read,
 *  event and publish (proto/PROTOCOL.md, "Upstream RPC") on top of the ring
 *  of recent envelopes (ring.h), the publisher's per-room map (pub.h) and
 *  the RPC connection pool (rdb.h). It also owns what a leader keeps about
 *  the past: the ring (filled as rows are published, preloaded from the
 *  database at each start of leadership), `oldest` and the retention timer
 *  that prunes belfry_batches and belfry_sessions.
 *
 *  Concurrent `unread` requests (and `session_put`s) that arrive within
 *  OPS_BATCH_MS become one query each. Everything runs on the loop.
 */
#ifndef BELFRY_OPS_H
#define BELFRY_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "pub.h"
#include "rdb.h"
#include "rpc.h"

#define OPS_BATCH_MS      2        /* unread / session_put batching window */
#define OPS_BATCH_MAX     1000     /* requests per batched query */
#define OPS_DB_WINDOW     20000    /* seqs per database replay query */
#define OPS_REPLY_BYTES_MAX (16 * 1024 * 1024)   /* replay reply: more beyond */
#define OPS_FN_NAME_MAX   127

struct event_base;
typedef struct ops ops_t;

typedef struct {
    size_t ring_msgs;           /* ring cap, messages */
    size_t ring_bytes;          /* ring cap, bytes */
    long retention_s;           /* batches and sessions older than this are pruned */
    const char *event_fn;       /* SQL function for `event` (ops_valid_function_name) */
    void (*on_ready)(void *ctx); /* the preload of a leadership start is done (or failed) */
    void *ctx;
} ops_config_t;

/* Creates the request handler. pub and rdb must outlive it. NULL on
 * allocation failure or an invalid cfg->event_fn. */
ops_t *ops_new(struct event_base *base, pub_t *pub, rdb_t *rdb, const ops_config_t *cfg);
/* Answers pending requests with "shutting down" and frees; NULL-safe. */
void ops_destroy(ops_t **self_p);

/* The rpc_request_fn: ctx is the ops_t. Takes ownership of req. */
void ops_handle(void *ctx, rpc_req_t *req);

/* Call right after each pub_send of a row: records the envelope as
 * published in the ring. */
void ops_on_published(ops_t *self, const env_msg_t *m);
/* Leadership: start (the database cursor is at last_seq; preloads the ring
 * and the publisher's room map, reads `oldest`, starts retention) and end
 * (forgets the ring). ops_leader_start returns 1 if a preload is under way:
 * cfg.on_ready is called from the loop when it is done or failed (until
 * then, rows published get prev 0 for rooms the preload would have known,
 * so the caller should hold them); 0 if there is nothing to preload. */
int ops_leader_start(ops_t *self, uint64_t last_seq);
void ops_leader_stop(ops_t *self);
/* The lowest `after` a replay or recovery accepts (0 before it is known). */
uint64_t ops_oldest(const ops_t *self);

/* The ring and retention, for metrics. */
typedef struct {
    size_t ring_msgs;           /* messages in the ring */
    size_t ring_bytes;          /* their bytes (topics + envelopes) */
    uint64_t ring_first;        /* lowest seq held (0: empty) */
    uint64_t oldest;            /* ops_oldest */
    uint64_t prunes;            /* retention prunes completed */
    uint64_t prune_failures;    /* retention prunes that failed */
    uint64_t pruned_batches;    /* belfry_batches rows deleted by them */
    uint64_t pruned_sessions;   /* belfry_sessions rows deleted by them */
} ops_stats_t;

/* Fills *out. */
void ops_get_stats(const ops_t *self, ops_stats_t *out);

/* 1 if name is a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), optionally
 * schema-qualified (one dot), at most OPS_FN_NAME_MAX bytes; else 0. */
int ops_valid_function_name(const char *name);

/* Writes items[0..n) to out as a PostgreSQL text[] literal ({"a","b\"c"},
 * every element quoted, \ and " escaped), NUL-terminated (the NUL is the
 * last byte of out). 0, or -1 on allocation failure. Exposed for tests. */
int ops_pg_array(msgpack_sbuffer *out, const rpc_str_t *items, size_t n);
/* Writes items[0..n) to out as a JSON array of strings, NUL-terminated.
 * Items must be valid UTF-8 without NUL (rpc_parse guarantees it). */
int ops_json_array(msgpack_sbuffer *out, const rpc_str_t *items, size_t n);

#endif
