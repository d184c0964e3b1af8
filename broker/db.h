/*  db - the broker's PostgreSQL side: connection, leadership, cursor, bell
 *
 *  One asynchronous libpq connection on the libevent loop, one query in
 *  flight at a time. States:
 *
 *    DOWN        waiting for the reconnect timer (100 ms doubling to 5 s)
 *    CONNECTING  PQconnectPoll driven by socket readiness (10 s timeout)
 *    LOCK        SELECT pg_try_advisory_lock(DB_LEADER_KEY)
 *    STANDBY     lock held elsewhere: retry LOCK every poll interval
 *    LISTEN      LISTEN <channel>
 *    SEED        seed the cursor on the very first start; read the position
 *    RUN         the doorbell state machine (bell.h) drives batch reads
 *
 *  Any query error or connection loss logs event=db_down and goes to DOWN;
 *  the next connection re-takes the lock, re-LISTENs and reads whatever was
 *  committed meanwhile (the cursor is in the database). See docs/broker.md.
 */
#ifndef BELFRY_DB_H
#define BELFRY_DB_H

#include <stdint.h>

#include "envelope.h"

/* pg_try_advisory_lock key of the leader ("belfry" in ASCII). */
#define DB_LEADER_KEY "108170128454265"

struct event_base;
typedef struct db db_t;

typedef struct {
    const char *conninfo;   /* libpq conninfo or URL ("" = libpq defaults) */
    const char *channel;    /* NOTIFY channel */
    long poll_ms;           /* safety read / standby retry interval */
} db_config_t;

typedef struct {
    /* One committed row, in seq order. m->prev is 0 (the publisher fills
     * it); the strings point into a result freed after the call returns. */
    void (*on_row)(void *ctx, env_msg_t *m);
    /* At each start of leadership (LISTENing, cursor loaded): the last seq
     * recorded in the database. */
    void (*on_position)(void *ctx, uint64_t last_seq);
    /* Leadership changes: 1 right after on_position, 0 when the connection
     * that held the lock is closed. */
    void (*on_leader)(void *ctx, int leading);
    void *ctx;
    /* Optional (may be NULL): after the rows of a non-empty batch were given
     * to on_row, the number of rows in it (for metrics). */
    void (*on_batch)(void *ctx, uint64_t rows);
} db_callbacks_t;

/* What the machine has done so far (for metrics). */
typedef struct {
    int connected;          /* 1 from a completed connect until the connection closes */
    int standby;            /* 1 while another broker holds the lock */
    uint64_t reads;         /* batch reads committed, empty ones included */
    uint64_t batches;       /* non-empty batch reads */
    uint64_t rows;          /* rows read (= published, in order) */
    uint64_t connects;      /* connections completed */
    uint64_t downs;         /* connection losses and failed attempts (event=db_down) */
} db_stats_t;

/* Creates the machine (no I/O yet); the strings in cfg must outlive it.
 * NULL on allocation failure. */
db_t *db_new(struct event_base *base, const db_config_t *cfg, const db_callbacks_t *cb);
/* Starts connecting. Returns 0, or -1 if already started. */
int db_start(db_t *self);
/* Stops: lets a query in flight finish (a committed batch is still
 * published), closes the connection, then calls done(arg) from the loop.
 * Called again, it does nothing. */
void db_stop(db_t *self, void (*done)(void *arg), void *arg);
/* Fills *out; safe to call at any time from the loop. */
void db_get_stats(const db_t *self, db_stats_t *out);
/* Closes and frees immediately (aborting a query in flight); NULL-safe. */
void db_destroy(db_t **self_p);

#endif
