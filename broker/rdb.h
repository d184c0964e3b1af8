/*  rdb - the broker's pool of PostgreSQL connections for RPC work
 *
 *  A few asynchronous libpq connections on the libevent loop, separate from
 *  the cursor connection (db.h), so that a slow replay or a client event
 *  never delays the stream. One query per connection at a time; queries
 *  wait in a bounded FIFO while every connection is busy or down. Each
 *  connection reconnects on its own with backoff (100 ms doubling to 5 s)
 *  and runs with statement_timeout RDB_STATEMENT_TIMEOUT_MS.
 *
 *  A query is one SQL statement with text parameters (PQsendQueryParams).
 *  Its callback runs exactly once, always from the loop (never inside
 *  rdb_query): with the result, or with an error.
 */
#ifndef BELFRY_RDB_H
#define BELFRY_RDB_H

#include <stddef.h>

#include <libpq-fe.h>

#define RDB_QUEUE_MAX            10000
#define RDB_QUEUE_WAIT_MS        10000   /* a query queued longer fails with "timeout" */
#define RDB_STATEMENT_TIMEOUT_MS 30000
#define RDB_PARAMS_MAX           8

struct event_base;
typedef struct rdb rdb_t;

/* res: the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) when err is NULL;
 * otherwise err names the failure (the SQL error's primary message, or
 * "database unavailable", "timeout", "shutting down") and res is NULL.
 * res is freed by rdb after the callback returns. */
typedef void (*rdb_done_fn)(void *arg, const PGresult *res, const char *err);

/* A pool of nconns (1..64) connections to conninfo (must outlive it).
 * Nothing connects before rdb_start. NULL on allocation failure. */
rdb_t *rdb_new(struct event_base *base, const char *conninfo, int nconns);
/* Starts connecting every connection. */
void rdb_start(rdb_t *self);
/* Closes every connection; queued and running queries are called back
 * with "shutting down" (from inside this call). NULL-safe. */
void rdb_destroy(rdb_t **self_p);

/* Queues sql with nparams (<= RDB_PARAMS_MAX) NUL-terminated text
 * parameters (copied; NULL means SQL NULL). Returns 0 (done will be called
 * later), or -1 if the queue is full (RDB_QUEUE_MAX) or memory ran out:
 * done is then never called. */
int rdb_query(rdb_t *self, const char *sql, int nparams, const char *const *params,
              rdb_done_fn done, void *arg);

/* Connections up, and queries waiting. */
int rdb_connected(const rdb_t *self);
size_t rdb_queued(const rdb_t *self);

#endif
