/*  obs - the broker's HTTP endpoint: GET /metrics, /healthz, /readyz
 *
 *  An evhttp server (libevent's HTTP server) on the broker's loop, bound to
 *  --http (BELFRY_HTTP). It never blocks the loop: requests are parsed and
 *  answered by evhttp's bufferevents, and every answer is built from memory
 *  (a snapshot of counters the caller fills through obs_snapshot_fn, plus
 *  the two histograms this module keeps). Routes:
 *
 *    GET|HEAD /metrics  200, Prometheus text format 0.0.4 (belfry_broker_*)
 *    GET|HEAD /healthz  200 "ok" while the process runs
 *    GET|HEAD /readyz   200 while the cursor connection to PostgreSQL is up
 *                       (leader or standby alike), else 503
 *    other method on one of these: 405 with Allow; any other path: 404
 *
 *  The module knows nothing of the rest of the broker: it renders what the
 *  snapshot says, so it can be unit-tested alone (obs_render).
 */
#ifndef BELFRY_OBS_H
#define BELFRY_OBS_H

#include <stddef.h>
#include <stdint.h>

#define OBS_DEFAULT_ADDR  "127.0.0.1:9100"
#define OBS_OPS_MAX       16          /* RPC ops with labelled counters */
#define OBS_HOST_MAX      256         /* bytes of the host part of --http */
#define OBS_TIMEOUT_S     10          /* an idle or slow HTTP connection is closed */
#define OBS_HEADERS_MAX   8192        /* request head bytes */
#define OBS_BODY_MAX      1024        /* request body bytes (none is expected) */

/* Row counts per batch: upper bounds of the histogram buckets (+Inf added). */
#define OBS_BATCH_BOUNDS  { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000 }
#define OBS_BATCH_NB      13
/* Lag (created_at to publish), seconds: upper bounds (+Inf added). */
#define OBS_LAG_BOUNDS    { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, \
                            5, 10, 30, 60 }
#define OBS_LAG_NB        15

struct event_base;
struct evbuffer;
typedef struct obs obs_t;

/* Requests and error replies of one RPC op. */
typedef struct {
    const char *name;           /* label value op="..." (static string) */
    uint64_t requests, errors;
} obs_op_t;

/* What the rest of the broker reports at each scrape. Zero is a fine
 * default for anything a caller does not know. */
typedef struct {
    int leader;                 /* 1 while leading and reading */
    int standby;                /* 1 while connected and another broker leads */
    int db_connected;           /* the cursor connection is up */
    int fanout_ready;           /* the fan-out transport can carry messages */
    int rpc_db_connected;       /* RPC pool connections up */
    int rpc_db_conns;           /* RPC pool size (--rpc-db-conns) */
    uint64_t published, published_bytes, publish_errors;
    uint64_t reads, batches, rows;          /* batch reads, non-empty ones, rows */
    uint64_t db_connects, db_reconnects;    /* completed connects, db_down events */
    uint64_t last_seq;          /* last published seq (or the cursor position) */
    uint64_t ring_msgs, ring_bytes, ring_first, oldest;
    obs_op_t ops[OBS_OPS_MAX];  /* per-op RPC counters, nops used */
    size_t nops;
    uint64_t rpc_malformed;     /* RPC messages without an id (no reply) */
    uint64_t rpc_queue;         /* RPC queries waiting for a connection */
    uint64_t prunes, prune_failures, pruned_batches, pruned_sessions;
    uint64_t held_rows;         /* rows held at a start of leadership */
    uint64_t leader_terms;      /* leadership terms started */
} obs_snapshot_t;

/* Fills *out (already zeroed) from the caller's state. */
typedef void (*obs_snapshot_fn)(void *ctx, obs_snapshot_t *out);

/* Parses "host:port" or "[v6]:port" (port 0..65535; host non-empty, at most
 * OBS_HOST_MAX - 1 bytes) into host (NUL-terminated) and *port. 0 or -1. */
int obs_parse_addr(const char *addr, char *host, size_t hostcap, uint16_t *port);

/* Creates the metrics state (no listener yet). fn(ctx) is called at every
 * scrape and readiness check. NULL on allocation failure. */
obs_t *obs_new(struct event_base *base, obs_snapshot_fn fn, void *ctx);
/* Starts serving on addr (obs_parse_addr syntax). "" or NULL: no listener,
 * returns 0. Returns -1 with a reason in err on a bad address or when the
 * address cannot be bound (in use, not local). Call at most once. */
int obs_listen(obs_t *self, const char *addr, char *err, size_t errcap);
/* The port actually bound (useful with port 0), or 0 without a listener. */
uint16_t obs_port(const obs_t *self);
/* Closes the listener and every HTTP connection; frees; NULL-safe. */
void obs_destroy(obs_t **self_p);

/* Observations, from the loop: a non-empty batch of `rows` rows was read;
 * a row was published lag_us microseconds after its created_at (negative,
 * from clock skew between hosts, counts as 0). */
void obs_on_batch(obs_t *self, uint64_t rows);
void obs_on_published(obs_t *self, int64_t lag_us);

/* Appends the /metrics text to out. 0, or -1 on allocation failure. */
int obs_render(obs_t *self, struct evbuffer *out);
/* 1 if the snapshot means ready (connected to the database), else 0. */
int obs_is_ready(const obs_snapshot_t *st);

#endif
