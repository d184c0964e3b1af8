/*  rdb - the broker's pool of PostgreSQL connections for RPC work
 *
 *  Design: each connection is a pgconn.h connection (connect, backoff,
 *  results collected until PQgetResult returns NULL, event=rpc_db_down
 *  logged once per outage) with a small state machine on top: DOWN ->
 *  SETUP (SET statement_timeout) -> IDLE <-> BUSY; the first SETUP that
 *  succeeds after a logged outage logs event=rpc_db_up. Queued queries are
 *  handed to idle connections from a zero-delay "kick" event, so callbacks
 *  never run inside rdb_query and a callback may queue the next query.
 *  A query whose connection fails is reported failed, never re-run: it may
 *  have been an INSERT that committed.
 */
#include "rdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "pgconn.h"

#define RDB_CONNS_MAX 64

typedef struct job {
    struct job *next;
    const char *sql;            /* static text */
    int nparams;
    char *params[RDB_PARAMS_MAX];   /* copies (NULL = SQL NULL) */
    rdb_done_fn done;
    void *arg;
    long long queued_ms;        /* monotonic ms when queued */
} job_t;

/* DOWN: not connected (pgconn connects or waits to); SETUP: the session
 * settings are in flight; IDLE: ready; BUSY: a job's query is in flight. */
typedef enum { C_DOWN = 0, C_SETUP, C_IDLE, C_BUSY } cstate_t;

typedef struct {
    rdb_t *pool;
    int idx;                    /* logged as conn=<idx> */
    pgconn_t *pc;               /* the connection */
    cstate_t state;
    job_t *job;                 /* the query in flight (BUSY) */
} rconn_t;

struct rdb {
    struct event_base *base;
    const char *conninfo;
    rconn_t *conns;
    int nconns;
    job_t *qhead, *qtail;       /* waiting queries */
    size_t qlen;
    struct event *kick;         /* dispatch from the loop */
    int destroying;
};

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_job_free(job_t *j)
{
    for (int i = 0; i < j->nparams; i++)
        free(j->params[i]);
    free(j);
}

static void s_kick(rdb_t *self)
{
    if (self->kick && !self->destroying)
        event_active(self->kick, EV_TIMEOUT, 0);
}

static void s_free_event(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

/* Reports the running job (if any) with res or err and frees it. */
static void s_finish_job(rconn_t *c, const PGresult *res, const char *err)
{
    job_t *j = c->job;
    c->job = NULL;
    if (j) {
        j->done(j->arg, err ? NULL : res, err);
        s_job_free(j);
    }
}

/* pgconn closed the connection after a failure (logged once per outage). */
static void s_on_down(void *arg)
{
    rconn_t *c = arg;
    c->state = C_DOWN;
    s_finish_job(c, NULL, "database unavailable");
}

static void s_start_job(rconn_t *c, job_t *j)
{
    c->job = j;
    c->state = C_BUSY;
    /* a failure ends in s_on_down, which reports the job */
    pgconn_send_params(c->pc, j->sql, j->nparams, (const char *const *)j->params);
}

/* Hands queued jobs to idle connections. */
static void s_dispatch(rdb_t *self)
{
    long long now = s_now_ms();
    for (int i = 0; i < self->nconns && self->qhead; i++) {
        rconn_t *c = &self->conns[i];
        while (c->state == C_IDLE && self->qhead) {
            job_t *j = self->qhead;
            self->qhead = j->next;
            if (!self->qhead)
                self->qtail = NULL;
            self->qlen--;
            if (now - j->queued_ms > RDB_QUEUE_WAIT_MS) {
                j->done(j->arg, NULL, "timeout");
                s_job_free(j);
                continue;
            }
            s_start_job(c, j);
        }
    }
    /* Nothing can run (every connection down): expire what waited too long. */
    while (self->qhead && now - self->qhead->queued_ms > RDB_QUEUE_WAIT_MS) {
        job_t *j = self->qhead;
        self->qhead = j->next;
        if (!self->qhead)
            self->qtail = NULL;
        self->qlen--;
        j->done(j->arg, NULL, "timeout");
        s_job_free(j);
    }
}

static void s_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_dispatch(arg);
}

/* The first error among res (its primary message) into buf, or NULL. */
static const char *s_first_error(PGresult *const *res, int n, char *buf, size_t cap)
{
    for (int i = 0; i < n; i++) {
        ExecStatusType st = PQresultStatus(res[i]);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            continue;
        const char *m = PQresultErrorField(res[i], PG_DIAG_MESSAGE_PRIMARY);
        snprintf(buf, cap, "%s",
                 m ? m : (PQresultErrorMessage(res[i])[0] ? PQresultErrorMessage(res[i])
                                                          : "query failed"));
        return buf;
    }
    return NULL;
}

/* The query in flight finished (all results collected; pgconn frees them
 * after this returns). */
static void s_on_results(void *arg, PGresult *const *res, int nres, int overflow)
{
    rconn_t *c = arg;
    char buf[512];
    const char *err = s_first_error(res, nres, buf, sizeof buf);
    (void)overflow;             /* one statement: one result */
    if (c->state == C_SETUP) {
        if (err) {
            pgconn_fail(c->pc, "setup", err);
            return;
        }
        if (pgconn_recovered(c->pc))
            log_info("event=rpc_db_up conn=%d", c->idx);
        c->state = C_IDLE;
        s_kick(c->pool);
        return;
    }
    c->state = C_IDLE;
    s_finish_job(c, nres > 0 ? res[0] : NULL, err);
    s_kick(c->pool);
}

/* Connected: set the session up before taking jobs. */
static void s_on_up(void *arg)
{
    rconn_t *c = arg;
    c->state = C_SETUP;
    char sql[96];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", RDB_STATEMENT_TIMEOUT_MS);
    pgconn_send(c->pc, sql);
}

rdb_t *rdb_new(struct event_base *base, const char *conninfo, int nconns)
{
    if (nconns < 1)
        nconns = 1;
    if (nconns > RDB_CONNS_MAX)
        nconns = RDB_CONNS_MAX;
    rdb_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->conninfo = conninfo;
    self->nconns = nconns;
    self->conns = calloc((size_t)nconns, sizeof *self->conns);
    self->kick = event_new(base, -1, 0, s_on_kick, self);
    if (!self->conns || !self->kick)
        goto fail;
    for (int i = 0; i < nconns; i++) {
        rconn_t *c = &self->conns[i];
        c->pool = self;
        c->idx = i;
        pgconn_config_t pcfg = { .conninfo = conninfo, .name = "rpc_db", .id = i,
                                 .quiet_retries = 1 };
        pgconn_callbacks_t pcb = { s_on_up, s_on_results, NULL, s_on_down, c };
        c->pc = pgconn_new(base, &pcfg, &pcb);
        if (!c->pc)
            goto fail;
    }
    return self;
fail:
    rdb_destroy(&self);
    return NULL;
}

void rdb_start(rdb_t *self)
{
    for (int i = 0; i < self->nconns; i++)
        pgconn_start(self->conns[i].pc);     /* -1 (ignored): already started */
}

void rdb_destroy(rdb_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rdb_t *self = *self_p;
    self->destroying = 1;
    for (int i = 0; self->conns && i < self->nconns; i++) {
        rconn_t *c = &self->conns[i];
        pgconn_destroy(&c->pc);
        s_finish_job(c, NULL, "shutting down");
    }
    while (self->qhead) {
        job_t *j = self->qhead;
        self->qhead = j->next;
        j->done(j->arg, NULL, "shutting down");
        s_job_free(j);
    }
    s_free_event(&self->kick);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

int rdb_query(rdb_t *self, const char *sql, int nparams, const char *const *params,
              rdb_done_fn done, void *arg)
{
    if (self->destroying || self->qlen >= RDB_QUEUE_MAX || nparams < 0 || nparams > RDB_PARAMS_MAX)
        return -1;
    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->sql = sql;
    j->done = done;
    j->arg = arg;
    j->queued_ms = s_now_ms();
    for (int i = 0; i < nparams; i++) {
        if (params[i] && !(j->params[i] = strdup(params[i]))) {
            j->nparams = i;
            s_job_free(j);
            return -1;
        }
        j->nparams = i + 1;
    }
    if (self->qtail)
        self->qtail->next = j;
    else
        self->qhead = j;
    self->qtail = j;
    self->qlen++;
    s_kick(self);
    return 0;
}

int rdb_connected(const rdb_t *self)
{
    int n = 0;
    for (int i = 0; i < self->nconns; i++)
        n += self->conns[i].state == C_IDLE || self->conns[i].state == C_BUSY;
    return n;
}

size_t rdb_queued(const rdb_t *self)
{
    return self->qlen;
}
