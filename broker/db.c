/*  db - the broker's PostgreSQL side: connection, leadership, cursor, bell
 *
 *  Design: a single non-blocking libpq connection driven by libevent,
 *  through pgconn.h: it connects and reconnects with backoff (logging
 *  event=db_down / db_closed), hands over the results of the one query in
 *  flight once PQgetResult returned NULL (only then is a transaction's
 *  COMMIT known to have succeeded), and says when NOTIFYs rang. This file
 *  is the state machine on top: leadership, LISTEN, the cursor and the
 *  bell. Queries are sent with PQsendQuery (several statements in one round
 *  trip: each batch read is BEGIN .. COMMIT in one message). Every new
 *  connection starts again at LOCK, so the lock is re-taken and the LISTEN
 *  re-issued after a reconnect. PQexec is never used here.
 *
 *  The batch read (the PgQ snapshot cursor): with S0 the snapshot of the
 *  newest belfry_batches row and S1 the read transaction's own snapshot
 *  (REPEATABLE READ, so every statement of the transaction uses S1), the
 *  batch is the rows whose writing transaction is visible in S1 and not in
 *  S0, by id. The txid range [xmin(S0), xmax(S1)) lets the txid index do
 *  the work. A non-empty batch is recorded (S1, first_seq, row_count) in the
 *  same transaction, so seq = first_seq + position is decided by the database
 *  and rows are published only after COMMIT. A transaction that took a lower
 *  id but committed later is not in S0's visible set, so it is picked up by
 *  the batch whose snapshot first sees it: nothing is skipped.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "bell.h"
#include "log.h"
#include "pgconn.h"

/* The batch: prev = the cursor (newest batch), cur = this transaction's
 * snapshot. Columns: first_seq, id, namespace, room, event, payload, ts_us. */
#define SQL_BATCH \
    "WITH prev AS MATERIALIZED (" \
    "  SELECT snap, first_seq + row_count AS next_seq FROM belfry_batches" \
    "   ORDER BY batch_id DESC LIMIT 1)," \
    " cur AS MATERIALIZED (SELECT pg_current_snapshot() AS snap)," \
    " r AS MATERIALIZED (" \
    "  SELECT n.id, n.namespace, n.room, n.event, n.payload::text AS payload," \
    "         (extract(epoch FROM n.created_at) * 1000000)::bigint AS ts_us" \
    "    FROM prev, cur, notifications n" \
    "   WHERE n.txid >= pg_snapshot_xmin(prev.snap)" \
    "     AND n.txid < pg_snapshot_xmax(cur.snap)" \
    "     AND NOT pg_visible_in_snapshot(n.txid, prev.snap)" \
    "     AND pg_visible_in_snapshot(n.txid, cur.snap))," \
    " ins AS (" \
    "  INSERT INTO belfry_batches (snap, first_seq, row_count)" \
    "  SELECT cur.snap, prev.next_seq, (SELECT count(*) FROM r) FROM prev, cur" \
    "   WHERE EXISTS (SELECT 1 FROM r)" \
    "  RETURNING first_seq)" \
    " SELECT ins.first_seq, r.* FROM ins, r ORDER BY r.id"

#define SQL_XMIN "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

/* The batch statement is prepared once per connection (with the LISTEN,
 * which is also per connection): parsing and planning it took most of a
 * read's cost in PostgreSQL when it was sent as text each time (see
 * docs/performance.md, 2026-12-02). It has no parameters, so its one plan
 * is cached at once. */
#define SQL_PREPARE "PREPARE belfry_batch_read AS " SQL_BATCH
static const char SQL_READ_DISARM[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ;"
    " UPDATE belfry_bell SET armed = false WHERE armed; "
    SQL_XMIN "; EXECUTE belfry_batch_read; COMMIT";
static const char SQL_READ[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ; " SQL_XMIN "; EXECUTE belfry_batch_read; COMMIT";
static const char SQL_LOCK[] = "SELECT pg_try_advisory_lock(" DB_LEADER_KEY ")";
/* First start ever: the cursor starts at the current snapshot, so rows
 * committed before it are not streamed. Then report the position. */
static const char SQL_SEED[] =
    "INSERT INTO belfry_batches (snap, first_seq, row_count)"
    " SELECT pg_current_snapshot(), 1, 0"
    "  WHERE NOT EXISTS (SELECT 1 FROM belfry_batches);"
    " SELECT (first_seq + row_count - 1)::text FROM belfry_batches"
    "  ORDER BY batch_id DESC LIMIT 1";

typedef enum {
    ST_NEW = 0, ST_DOWN, ST_CONNECTING, ST_LOCK, ST_STANDBY, ST_LISTEN, ST_SEED,
    ST_RUN, ST_STOPPED
} s_state_t;

typedef enum { Q_NONE = 0, Q_LOCK, Q_LISTEN, Q_SEED, Q_READ, Q_ARM } s_query_t;

struct db {
    struct event_base *base;    /* the loop */
    db_config_t cfg;            /* settings (strings owned by the caller) */
    db_callbacks_t cb;          /* row / position sinks */
    pgconn_t *pc;               /* the connection (reconnects by itself) */
    s_state_t state;            /* see db.h; DOWN/CONNECTING: pc is not up */
    s_query_t q;                /* the query in flight */
    struct event *timer;        /* standby retry / bell */
    int standby;                /* logged event=standby for this stretch */
    int leading;                /* told the caller on_leader(1) */
    int bell_missing_logged;    /* warned that belfry_bell has no row */
    bell_t bell;                /* the doorbell machine (RUN) */
    char *sql_listen;           /* LISTEN "<channel>"; PREPARE the batch read */
    char *sql_arm;              /* arm + take an xid, channel as a literal */
    int stopping;               /* db_stop() was called */
    void (*done)(void *);       /* its callback */
    void *done_arg;
    struct event *ev_done;      /* defers done() to the loop */
    uint64_t batches, rows;     /* counters */
    uint64_t reads;             /* batch reads committed */
    uint64_t connects, downs;   /* connections completed, db_down events */
};

/* The results of the query that just completed (owned by pgconn). */
typedef struct {
    PGresult *const *r;
    int n;
    int overflow;
} s_results_t;

/* --- small helpers -------------------------------------------------- */

static void s_timer_in(db_t *self, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_del(self->timer);
    evtimer_add(self->timer, &tv);
}

static void s_free_event(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

/* Forgets everything tied to the connection that is gone (pgconn has
 * closed it, or the caller closes it). */
static void s_reset(db_t *self)
{
    evtimer_del(self->timer);
    free(self->sql_listen);
    free(self->sql_arm);
    self->sql_listen = self->sql_arm = NULL;
    self->q = Q_NONE;
    bell_init(&self->bell, self->cfg.poll_ms);
    if (self->leading) {
        self->leading = 0;
        if (self->cb.on_leader)
            self->cb.on_leader(self->cb.ctx, 0);
    }
}

static void s_on_done(evutil_socket_t fd, short what, void *arg)
{
    db_t *self = arg;
    (void)fd;
    (void)what;
    if (self->done)
        self->done(self->done_arg);
}

/* Ends a stop: close and tell the caller from the loop. */
static void s_finish_stop(db_t *self)
{
    pgconn_close(self->pc);
    s_reset(self);
    self->state = ST_STOPPED;
    if (!self->ev_done)
        self->ev_done = evtimer_new(self->base, s_on_done, self);
    if (self->ev_done) {
        struct timeval tv = { 0, 0 };
        evtimer_add(self->ev_done, &tv);
    } else if (self->done) {
        self->done(self->done_arg);
    }
}

/* Logs the failure, drops the connection and schedules a reconnect (all
 * in pgconn, which then calls s_on_down). */
static void s_fail(db_t *self, const char *what, const char *msg)
{
    pgconn_fail(self->pc, what, msg);
}

/* pgconn closed the connection after a failure (and logged it). */
static void s_on_down(void *arg)
{
    db_t *self = arg;
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    self->downs++;
    s_reset(self);
    self->state = ST_DOWN;
}

/* --- sending -------------------------------------------------------- */

static void s_send(db_t *self, s_query_t q, const char *sql)
{
    self->q = q;
    pgconn_send(self->pc, sql);   /* a failure ends in s_on_down: q = Q_NONE */
}

/* Performs what the doorbell machine asked for. */
static void s_act(db_t *self, bell_action_t a, long delay_ms)
{
    switch (a) {
    case BELL_NONE:
        break;
    case BELL_WAIT:
        s_timer_in(self, delay_ms);
        break;
    case BELL_READ_DISARM:
        evtimer_del(self->timer);
        s_send(self, Q_READ, SQL_READ_DISARM);
        break;
    case BELL_READ:
        evtimer_del(self->timer);
        s_send(self, Q_READ, SQL_READ);
        break;
    case BELL_ARM:
        evtimer_del(self->timer);
        s_send(self, Q_ARM, self->sql_arm);
        break;
    }
}

/* --- results -------------------------------------------------------- */

/* Returns 1 if every result of the query succeeded, else 0 after s_fail(). */
static int s_results_ok(db_t *self, const s_results_t *rs, const char *what)
{
    if (rs->overflow || rs->n == 0) {
        s_fail(self, what, "unexpected results");
        return 0;
    }
    for (int i = 0; i < rs->n; i++) {
        ExecStatusType st = PQresultStatus(rs->r[i]);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            s_fail(self, what, PQresultErrorMessage(rs->r[i]));
            return 0;
        }
    }
    return 1;
}

static uint64_t s_u64(const PGresult *r, int row, int col)
{
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static void s_done_read(db_t *self, const s_results_t *rs)
{
    if (!s_results_ok(self, rs, "batch read"))
        return;
    const PGresult *rx = NULL, *rows = NULL;
    for (int i = 0; i < rs->n; i++) {
        if (PQresultStatus(rs->r[i]) != PGRES_TUPLES_OK)
            continue;
        if (!rx)
            rx = rs->r[i];
        else
            rows = rs->r[i];
    }
    const PGresult *last = rs->r[rs->n - 1];
    if (!rx || !rows || PQntuples(rx) != 1 || PQnfields(rows) != 7 ||
        strcmp(PQcmdStatus((PGresult *)last), "COMMIT") != 0) {
        s_fail(self, "batch read", "unexpected result shape or not committed");
        return;
    }
    uint64_t xmin = s_u64(rx, 0, 0);
    int n = PQntuples(rows);
    pgconn_recovered(self->pc);   /* the database works: the next reconnect is quick */
    self->reads++;
    if (n > 0) {
        uint64_t first = s_u64(rows, 0, 0);
        self->batches++;
        self->rows += (uint64_t)n;
        log_debug("event=batch first_seq=%llu rows=%d", (unsigned long long)first, n);
        for (int i = 0; i < n; i++) {
            env_msg_t m;
            memset(&m, 0, sizeof m);
            m.seq = first + (uint64_t)i;
            m.id = strtoll(PQgetvalue(rows, i, 1), NULL, 10);
            m.nsp = PQgetvalue(rows, i, 2);
            m.nsp_len = (size_t)PQgetlength(rows, i, 2);
            m.room = PQgetvalue(rows, i, 3);
            m.room_len = (size_t)PQgetlength(rows, i, 3);
            m.event = PQgetvalue(rows, i, 4);
            m.event_len = (size_t)PQgetlength(rows, i, 4);
            m.data = PQgetvalue(rows, i, 5);
            m.data_len = (size_t)PQgetlength(rows, i, 5);
            m.ts_us = strtoll(PQgetvalue(rows, i, 6), NULL, 10);
            if (self->cb.on_row)
                self->cb.on_row(self->cb.ctx, &m);
        }
        if (self->cb.on_batch)
            self->cb.on_batch(self->cb.ctx, (uint64_t)n);
    }
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    long d = 0;
    bell_action_t a = bell_on_read(&self->bell, (uint64_t)n, xmin, &d);
    s_act(self, a, d);
}

static void s_done_arm(db_t *self, const s_results_t *rs)
{
    if (!s_results_ok(self, rs, "arm"))
        return;
    const PGresult *last = rs->r[rs->n - 1];
    if (PQresultStatus(last) != PGRES_TUPLES_OK || PQntuples(last) != 1) {
        s_fail(self, "arm", "unexpected result shape");
        return;
    }
    uint64_t xid = s_u64(last, 0, 0);
    for (int i = 0; i < rs->n; i++) {
        const char *tag = PQcmdStatus(rs->r[i]);
        if (strncmp(tag, "UPDATE", 6) == 0 && strcmp(PQcmdTuples(rs->r[i]), "0") == 0 &&
            !self->bell_missing_logged) {
            log_warn("event=bell_missing detail=\"belfry_bell has no row; only the poll timer reads\"");
            self->bell_missing_logged = 1;
        }
    }
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    long d = 0;
    bell_action_t a = bell_on_armed(&self->bell, xid, &d);
    s_act(self, a, d);
}

static void s_done_lock(db_t *self, const s_results_t *rs)
{
    if (!s_results_ok(self, rs, "advisory lock"))
        return;
    const PGresult *r = rs->r[0];
    int got = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    if (!got) {
        if (!self->standby)
            log_info("event=standby retry_ms=%ld", self->cfg.poll_ms);
        self->standby = 1;
        self->state = ST_STANDBY;
        s_timer_in(self, self->cfg.poll_ms);
        return;
    }
    self->standby = 0;
    log_info("event=leader");
    self->state = ST_LISTEN;
    s_send(self, Q_LISTEN, self->sql_listen);
}

static void s_done_listen(db_t *self, const s_results_t *rs)
{
    if (!s_results_ok(self, rs, "listen"))
        return;
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    self->state = ST_SEED;
    s_send(self, Q_SEED, SQL_SEED);
}

static void s_done_seed(db_t *self, const s_results_t *rs)
{
    if (!s_results_ok(self, rs, "cursor"))
        return;
    const PGresult *last = rs->r[rs->n - 1];
    if (rs->n != 2 || PQntuples(last) != 1) {
        s_fail(self, "cursor", "unexpected result shape");
        return;
    }
    if (strcmp(PQcmdTuples(rs->r[0]), "1") == 0)
        log_info("event=cursor_seeded detail=\"first start: rows committed before now are not streamed\"");
    uint64_t last_seq = s_u64(last, 0, 0);
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    if (self->cb.on_position)
        self->cb.on_position(self->cb.ctx, last_seq);
    self->leading = 1;
    if (self->cb.on_leader)
        self->cb.on_leader(self->cb.ctx, 1);
    self->state = ST_RUN;
    log_info("event=ready channel=%s last_seq=%llu", self->cfg.channel,
             (unsigned long long)last_seq);
    bell_init(&self->bell, self->cfg.poll_ms);
    long d = 0;
    bell_action_t a = bell_start(&self->bell, &d);
    s_act(self, a, d);
}

/* The query in flight has delivered all its results (freed by pgconn
 * after this returns). */
static void s_on_results(void *arg, PGresult *const *res, int nres, int overflow)
{
    db_t *self = arg;
    s_results_t rs = { res, nres, overflow };
    s_query_t q = self->q;
    self->q = Q_NONE;
    switch (q) {
    case Q_LOCK:   s_done_lock(self, &rs); break;
    case Q_LISTEN: s_done_listen(self, &rs); break;
    case Q_SEED:   s_done_seed(self, &rs); break;
    case Q_READ:   s_done_read(self, &rs); break;
    case Q_ARM:    s_done_arm(self, &rs); break;
    case Q_NONE:   break;
    }
}

/* --- events --------------------------------------------------------- */

/* The channel rang (once or more since the last look). */
static void s_on_notify(void *arg)
{
    db_t *self = arg;
    if (self->state == ST_RUN && !self->stopping) {
        long d = 0;
        bell_action_t a = bell_on_ring(&self->bell, &d);
        s_act(self, a, d);
    }
}

/* Builds the per-connection SQL that embeds the channel. 0 or -1. */
static int s_build_sql(db_t *self)
{
    size_t clen = strlen(self->cfg.channel);
    PGconn *conn = pgconn_pg(self->pc);
    char *ident = conn ? PQescapeIdentifier(conn, self->cfg.channel, clen) : NULL;
    char *lit = conn ? PQescapeLiteral(conn, self->cfg.channel, clen) : NULL;
    int rc = -1;
    if (!ident || !lit)
        goto done;
    size_t n1 = strlen(ident) + sizeof SQL_PREPARE + 16, n2 = strlen(lit) + 160;
    self->sql_listen = malloc(n1);
    self->sql_arm = malloc(n2);
    if (!self->sql_listen || !self->sql_arm)
        goto done;
    snprintf(self->sql_listen, n1, "LISTEN %s; " SQL_PREPARE, ident);
    /* The arm commits first; the xid is taken in a second transaction, so
     * it is newer than the xid of every writer that read the bell before
     * the arm became visible. */
    snprintf(self->sql_arm, n2,
             "BEGIN; UPDATE belfry_bell SET armed = true, channel = %s; COMMIT;"
             " SELECT pg_current_xact_id()::text", lit);
    rc = 0;
done:
    if (ident)
        PQfreemem(ident);
    if (lit)
        PQfreemem(lit);
    return rc;
}

/* A new connection: take the lock, then LISTEN (again, after a reconnect). */
static void s_on_up(void *arg)
{
    db_t *self = arg;
    free(self->sql_listen);
    free(self->sql_arm);
    self->sql_listen = self->sql_arm = NULL;
    if (s_build_sql(self) < 0) {
        s_fail(self, "setup", "out of memory");
        return;
    }
    log_info("event=db_connected");
    self->connects++;
    if (self->stopping) {
        s_finish_stop(self);
        return;
    }
    self->state = ST_LOCK;
    s_send(self, Q_LOCK, SQL_LOCK);
}

static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    db_t *self = arg;
    (void)fd;
    (void)what;
    switch (self->state) {
    case ST_STANDBY:
        self->state = ST_LOCK;
        s_send(self, Q_LOCK, SQL_LOCK);
        break;
    case ST_RUN: {
        long d = 0;
        bell_action_t a = bell_on_timer(&self->bell, &d);
        s_act(self, a, d);
        break;
    }
    default:
        break;
    }
}

/* --- public --------------------------------------------------------- */

db_t *db_new(struct event_base *base, const db_config_t *cfg, const db_callbacks_t *cb)
{
    db_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->cfg = *cfg;
    if (self->cfg.poll_ms < 1)
        self->cfg.poll_ms = 1;
    self->cb = *cb;
    pgconn_config_t pcfg = { .conninfo = cfg->conninfo, .name = "db", .id = -1 };
    pgconn_callbacks_t pcb = { s_on_up, s_on_results, s_on_notify, s_on_down, self };
    self->pc = pgconn_new(base, &pcfg, &pcb);
    self->timer = evtimer_new(base, s_on_timer, self);
    if (!self->pc || !self->timer) {
        pgconn_destroy(&self->pc);
        s_free_event(&self->timer);
        free(self);
        return NULL;
    }
    bell_init(&self->bell, self->cfg.poll_ms);
    return self;
}

int db_start(db_t *self)
{
    if (self->state != ST_NEW)
        return -1;
    self->state = ST_CONNECTING;
    pgconn_start(self->pc);
    return 0;
}

void db_stop(db_t *self, void (*done)(void *arg), void *arg)
{
    if (self->stopping)
        return;
    self->stopping = 1;
    self->done = done;
    self->done_arg = arg;
    pgconn_stopping(self->pc);     /* a failure now logs db_closed, no reconnect */
    if (self->q == Q_NONE)
        s_finish_stop(self);
    /* else: the query's completion (or failure) finishes the stop. */
}

void db_get_stats(const db_t *self, db_stats_t *out)
{
    memset(out, 0, sizeof *out);
    /* past CONNECTING means connected; s_on_down/s_finish_stop leave those states */
    out->connected = pgconn_is_up(self->pc) && self->state > ST_CONNECTING &&
                     self->state < ST_STOPPED;
    out->standby = out->connected && self->standby;   /* across LOCK retries */
    out->reads = self->reads;
    out->batches = self->batches;
    out->rows = self->rows;
    out->connects = self->connects;
    out->downs = self->downs;
}

void db_destroy(db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    db_t *self = *self_p;
    pgconn_close(self->pc);
    s_reset(self);
    pgconn_destroy(&self->pc);
    s_free_event(&self->timer);
    s_free_event(&self->ev_done);
    free(self);
    *self_p = NULL;
}
