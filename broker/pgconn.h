/*  pgconn - one asynchronous libpq connection on the libevent loop, with
 *  reconnects
 *
 *  The connection life both of the broker's database users share: the
 *  cursor connection (db.h) and each connection of the RPC pool (rdb.h).
 *
 *    DOWN        waiting for the reconnect timer (backoff 100 ms doubling to
 *                5 s by default; the owner resets it when the database works)
 *    CONNECTING  PQconnectStart + PQconnectPoll on socket readiness, with a
 *                connect timeout (10 s by default)
 *    UP          non-blocking; one query in flight at a time, its results
 *                collected until PQgetResult returns NULL; NOTIFYs drained
 *    CLOSED      new, or closed by the owner: no reconnect until pgconn_start
 *
 *  Every failure (connect, send, connection loss, or one the owner reports
 *  with pgconn_fail) is logged as
 *      event=<name>_down [conn=<id>] reason="<what>: <message>" retry_ms=<ms>
 *  (warn; with quiet_retries only the first failure of an outage), closes
 *  the connection, schedules the reconnect and calls on_down. Once the owner
 *  said it is stopping (pgconn_stopping), a failure is logged as
 *      event=<name>_closed [conn=<id>] reason="..."
 *  (info) and nothing reconnects. Server notices are logged at debug level
 *  (event=pg_notice).
 *
 *  Callbacks run from the loop, never from inside a pgconn_* call other
 *  than pgconn_send, pgconn_send_params and pgconn_fail (which call on_down
 *  on failure). Every callback may send the next query, fail, close or
 *  restart the connection; none may destroy it.
 */
#ifndef BELFRY_PGCONN_H
#define BELFRY_PGCONN_H

#include <libpq-fe.h>

#define PGCONN_BACKOFF_MIN_MS     100
#define PGCONN_BACKOFF_MAX_MS     5000
#define PGCONN_CONNECT_TIMEOUT_MS 10000
#define PGCONN_RES_MAX            8      /* results kept per query (more: overflow) */
#define PGCONN_REASON_MAX         512    /* bytes of a logged reason */

struct event_base;
typedef struct pgconn pgconn_t;

typedef struct {
    const char *conninfo;       /* libpq conninfo or URL ("" = defaults); must outlive */
    const char *name;           /* log event prefix ("db": event=db_down); static */
    int id;                     /* >= 0: lines carry conn=<id>; < 0: no conn key */
    int quiet_retries;          /* 1: log only the first failure of an outage */
    long connect_timeout_ms;    /* 0: PGCONN_CONNECT_TIMEOUT_MS */
    long backoff_min_ms;        /* 0: PGCONN_BACKOFF_MIN_MS */
    long backoff_max_ms;        /* 0: PGCONN_BACKOFF_MAX_MS */
} pgconn_config_t;

typedef struct {
    /* Connected (non-blocking, socket watched): the owner may send. */
    void (*on_up)(void *ctx);
    /* The query in flight delivered all its results: res[0..nres-1] in
     * order (at most PGCONN_RES_MAX; overflow is 1 when more came and were
     * dropped). The results are freed after the call returns. */
    void (*on_done)(void *ctx, PGresult *const *res, int nres, int overflow);
    /* One or more NOTIFYs arrived (their payloads are dropped). May be NULL. */
    void (*on_notify)(void *ctx);
    /* The connection failed and was closed (after the log line). A query
     * in flight is lost. A reconnect is scheduled unless stopping. */
    void (*on_down)(void *ctx);
    void *ctx;
} pgconn_callbacks_t;

/* Creates a closed connection (no I/O yet). NULL on allocation failure. */
pgconn_t *pgconn_new(struct event_base *base, const pgconn_config_t *cfg,
                     const pgconn_callbacks_t *cb);
/* Starts connecting now (a failure already goes the DOWN way). Returns 0,
 * or -1 if not CLOSED. Clears a previous pgconn_stopping. */
int pgconn_start(pgconn_t *self);
/* Sends sql (PQsendQuery: several statements allowed) or one statement
 * with nparams text parameters (NULL = SQL NULL), and flushes, waiting for
 * the socket when it is full. Only while UP and no query is in flight.
 * Returns 0, or -1 after the failure was handled (logged, closed, on_down
 * called) or when not UP / busy (then nothing happens). */
int pgconn_send(pgconn_t *self, const char *sql);
int pgconn_send_params(pgconn_t *self, const char *sql, int nparams,
                       const char *const *params);
/* The owner's own failure (a result it cannot use): logs "what: msg" (msg
 * may be NULL or empty), closes, schedules the reconnect, calls on_down.
 * Does nothing while CLOSED. */
void pgconn_fail(pgconn_t *self, const char *what, const char *msg);
/* The database works: the next reconnect waits the minimum again. Returns 1
 * if this ends an outage whose failure was logged, else 0. */
int pgconn_recovered(pgconn_t *self);
/* From now on a failure logs <name>_closed and does not reconnect. */
void pgconn_stopping(pgconn_t *self);
/* Closes now (no log line, no callback) and stays CLOSED. */
void pgconn_close(pgconn_t *self);

/* 1 while UP. */
int pgconn_is_up(const pgconn_t *self);
/* 1 while a query is in flight. */
int pgconn_busy(const pgconn_t *self);
/* The libpq connection while UP (for PQescape*), else NULL. */
PGconn *pgconn_pg(pgconn_t *self);
/* The delay of the next reconnect, in ms. */
long pgconn_backoff_ms(const pgconn_t *self);

/* Closes and frees (no callback); NULL-safe. Never from a callback. */
void pgconn_destroy(pgconn_t **self_p);

#endif
