/*  rdb - the broker's pool of PostgreSQL connections for RPC work
 *
 *  Design: each connection is a small state machine (DOWN -> CONNECTING ->
 *  SETUP -> IDLE <-> BUSY), driven like db.c: PQconnectPoll on one-shot
 *  events, then a persistent EV_READ on PQsocket that consumes input and
 *  collects results until PQgetResult returns NULL. Queued queries are
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

#define RDB_BACKOFF_MIN_MS 100
#define RDB_BACKOFF_MAX_MS 5000
#define RDB_CONNECT_TIMEOUT_MS 10000
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

typedef enum { C_DOWN = 0, C_CONNECTING, C_SETUP, C_IDLE, C_BUSY } cstate_t;

typedef struct {
    rdb_t *pool;
    int idx;
    PGconn *conn;
    cstate_t state;
    job_t *job;                 /* the query in flight (BUSY) */
    PGresult *res;              /* its first result */
    char errmsg[512];           /* its error, if any */
    struct event *ev_conn;      /* connect polling */
    struct event *ev_sock;      /* persistent EV_READ */
    struct event *ev_write;     /* PQflush pending */
    struct event *timer;        /* reconnect / connect timeout */
    long backoff_ms;
    int down_logged;            /* logged this outage */
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

static void s_timer_in(rconn_t *c, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_del(c->timer);
    evtimer_add(c->timer, &tv);
}

/* Reports the running job (if any) with err and frees it. */
static void s_finish_job(rconn_t *c, const char *err)
{
    job_t *j = c->job;
    PGresult *r = c->res;
    c->job = NULL;
    c->res = NULL;
    if (j) {
        j->done(j->arg, err ? NULL : r, err);
        s_job_free(j);
    }
    if (r)
        PQclear(r);
}

static void s_close(rconn_t *c)
{
    s_free_event(&c->ev_conn);
    s_free_event(&c->ev_sock);
    s_free_event(&c->ev_write);
    evtimer_del(c->timer);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
}

static void s_one_line(char *out, size_t cap, const char *msg)
{
    snprintf(out, cap, "%s", msg && *msg ? msg : "unknown error");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p == '"')
            *p = '\'';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

/* The connection failed: report a running job, close, retry later. */
static void s_fail(rconn_t *c, const char *what)
{
    char reason[512];
    s_one_line(reason, sizeof reason, what);
    if (!c->down_logged)
        log_warn("event=rpc_db_down conn=%d reason=\"%s\" retry_ms=%ld", c->idx, reason,
                 c->backoff_ms);
    c->down_logged = 1;
    s_close(c);
    c->state = C_DOWN;
    s_finish_job(c, "database unavailable");
    if (c->pool->destroying)
        return;
    s_timer_in(c, c->backoff_ms);
    c->backoff_ms *= 2;
    if (c->backoff_ms > RDB_BACKOFF_MAX_MS)
        c->backoff_ms = RDB_BACKOFF_MAX_MS;
}

static void s_on_write(evutil_socket_t fd, short what, void *arg)
{
    rconn_t *c = arg;
    (void)fd;
    (void)what;
    if (!c->conn)
        return;
    int r = PQflush(c->conn);
    if (r < 0)
        s_fail(c, PQerrorMessage(c->conn));
    else if (r > 0 && c->ev_write)
        event_add(c->ev_write, NULL);
}

/* Flushes after a send; 0 or -1 (after s_fail). */
static int s_flush(rconn_t *c)
{
    int r = PQflush(c->conn);
    if (r < 0) {
        s_fail(c, PQerrorMessage(c->conn));
        return -1;
    }
    if (r > 0) {
        if (!c->ev_write)
            c->ev_write = event_new(c->pool->base, PQsocket(c->conn), EV_WRITE, s_on_write, c);
        if (!c->ev_write || event_add(c->ev_write, NULL) != 0) {
            s_fail(c, "cannot watch the socket");
            return -1;
        }
    }
    return 0;
}

static void s_start_job(rconn_t *c, job_t *j)
{
    c->job = j;
    c->errmsg[0] = '\0';
    c->state = C_BUSY;
    if (!PQsendQueryParams(c->conn, j->sql, j->nparams, NULL,
                           (const char *const *)j->params, NULL, NULL, 0)) {
        s_fail(c, PQerrorMessage(c->conn));
        return;
    }
    s_flush(c);
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

/* The query in flight finished (all results collected). */
static void s_query_done(rconn_t *c)
{
    if (c->state == C_SETUP) {
        if (c->errmsg[0]) {
            s_fail(c, c->errmsg);
            return;
        }
        if (c->res)
            PQclear(c->res);
        c->res = NULL;
        if (c->down_logged)
            log_info("event=rpc_db_up conn=%d", c->idx);
        c->down_logged = 0;
        c->backoff_ms = RDB_BACKOFF_MIN_MS;
        c->state = C_IDLE;
        s_kick(c->pool);
        return;
    }
    c->state = C_IDLE;
    s_finish_job(c, c->errmsg[0] ? c->errmsg : NULL);
    s_kick(c->pool);
}

static void s_on_read(evutil_socket_t fd, short what, void *arg)
{
    rconn_t *c = arg;
    (void)fd;
    (void)what;
    if (!c->conn)
        return;
    if (!PQconsumeInput(c->conn)) {
        s_fail(c, PQerrorMessage(c->conn));
        return;
    }
    while (c->conn && (c->state == C_BUSY || c->state == C_SETUP) && !PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (!r) {
            s_query_done(c);
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !c->errmsg[0]) {
            const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            snprintf(c->errmsg, sizeof c->errmsg, "%s",
                     m ? m : (PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : "query failed"));
        }
        if (!c->res)
            c->res = r;
        else
            PQclear(r);
    }
    if (c->conn && PQstatus(c->conn) == CONNECTION_BAD)
        s_fail(c, PQerrorMessage(c->conn));
    /* notifications are not expected here (no LISTEN); drop any */
    PGnotify *n;
    while (c->conn && (n = PQnotifies(c->conn)) != NULL)
        PQfreemem(n);
}

static void s_quiet(void *arg, const char *msg)
{
    (void)arg;
    log_debug("event=pg_notice msg=\"%.200s\"", msg);
}

static void s_connected(rconn_t *c)
{
    evtimer_del(c->timer);
    s_free_event(&c->ev_conn);
    PQsetnonblocking(c->conn, 1);
    PQsetNoticeProcessor(c->conn, s_quiet, NULL);
    c->ev_sock = event_new(c->pool->base, PQsocket(c->conn), EV_READ | EV_PERSIST, s_on_read, c);
    if (!c->ev_sock || event_add(c->ev_sock, NULL) != 0) {
        s_fail(c, "cannot watch the socket");
        return;
    }
    c->state = C_SETUP;
    c->errmsg[0] = '\0';
    char sql[96];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", RDB_STATEMENT_TIMEOUT_MS);
    if (!PQsendQuery(c->conn, sql)) {
        s_fail(c, PQerrorMessage(c->conn));
        return;
    }
    s_flush(c);
}

static void s_on_conn(evutil_socket_t fd, short what, void *arg);

static void s_conn_wait(rconn_t *c, PostgresPollingStatusType p)
{
    int fd = PQsocket(c->conn);
    if (fd < 0) {
        s_fail(c, PQerrorMessage(c->conn));
        return;
    }
    s_free_event(&c->ev_conn);
    c->ev_conn = event_new(c->pool->base, fd, p == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
                           s_on_conn, c);
    if (!c->ev_conn || event_add(c->ev_conn, NULL) != 0)
        s_fail(c, "cannot watch the socket");
}

static void s_on_conn(evutil_socket_t fd, short what, void *arg)
{
    rconn_t *c = arg;
    (void)fd;
    (void)what;
    PostgresPollingStatusType p = PQconnectPoll(c->conn);
    if (p == PGRES_POLLING_READING || p == PGRES_POLLING_WRITING)
        s_conn_wait(c, p);
    else if (p == PGRES_POLLING_OK)
        s_connected(c);
    else
        s_fail(c, PQerrorMessage(c->conn));
}

static void s_connect(rconn_t *c)
{
    c->state = C_CONNECTING;
    c->conn = PQconnectStart(c->pool->conninfo);
    if (!c->conn) {
        s_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        s_fail(c, PQerrorMessage(c->conn));
        return;
    }
    s_timer_in(c, RDB_CONNECT_TIMEOUT_MS);
    s_conn_wait(c, PGRES_POLLING_WRITING);
}

static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    rconn_t *c = arg;
    (void)fd;
    (void)what;
    if (c->state == C_DOWN)
        s_connect(c);
    else if (c->state == C_CONNECTING)
        s_fail(c, "connect timed out");
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
        c->backoff_ms = RDB_BACKOFF_MIN_MS;
        c->timer = evtimer_new(base, s_on_timer, c);
        if (!c->timer)
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
        if (self->conns[i].state == C_DOWN && !self->conns[i].conn)
            s_connect(&self->conns[i]);
}

void rdb_destroy(rdb_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rdb_t *self = *self_p;
    self->destroying = 1;
    for (int i = 0; self->conns && i < self->nconns; i++) {
        rconn_t *c = &self->conns[i];
        s_close(c);
        s_finish_job(c, "shutting down");
        s_free_event(&c->timer);
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
