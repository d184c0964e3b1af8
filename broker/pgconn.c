/*  pgconn - one asynchronous libpq connection on the libevent loop, with
 *  reconnects
 *
 *  Design: the connect phase polls PQconnectPoll on one-shot events created
 *  afresh for every poll, because libpq may switch sockets between polls
 *  (another host or address of the conninfo); one timer serves both the
 *  connect timeout and the reconnect delay. Once connected, a persistent
 *  EV_READ event on PQsocket calls PQconsumeInput, collects the results of
 *  the one query in flight until PQgetResult returns NULL (only then is a
 *  transaction's COMMIT known to have succeeded) and hands them to the
 *  owner in one call, then drains PQnotifies. Queries are flushed with
 *  PQflush, waiting for EV_WRITE on a one-shot event while libpq's output
 *  is not all sent. PQexec is never used. The callbacks may close or fail
 *  the connection, so every loop re-checks the state after calling one.
 */
#include "pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"

typedef enum { PGC_CLOSED = 0, PGC_DOWN, PGC_CONNECTING, PGC_UP } s_state_t;

struct pgconn {
    struct event_base *base;    /* the loop */
    pgconn_config_t cfg;        /* settings (defaults filled in) */
    pgconn_callbacks_t cb;      /* the owner */
    char label[24];             /* " conn=<id>" or "" */
    PGconn *conn;               /* NULL unless CONNECTING or UP */
    s_state_t state;            /* see pgconn.h */
    int busy;                   /* a query is in flight */
    PGresult *res[PGCONN_RES_MAX];  /* its results so far */
    int nres;                   /* how many */
    int overflow;               /* more results than PGCONN_RES_MAX came */
    struct event *ev_conn;      /* one-shot, connect polling */
    struct event *ev_sock;      /* persistent EV_READ on PQsocket (UP) */
    struct event *ev_write;     /* one-shot EV_WRITE while PQflush is pending */
    struct event *timer;        /* reconnect delay / connect timeout */
    long backoff_ms;            /* next reconnect delay */
    int down_logged;            /* a failure of this outage was logged */
    int stopping;               /* pgconn_stopping() was called */
};

static void s_on_conn(evutil_socket_t fd, short what, void *arg);

/* --- small helpers -------------------------------------------------- */

/* "what: msg" as one line without double quotes (so it fits reason="..."). */
static void s_one_line(char *out, size_t cap, const char *what, const char *msg)
{
    snprintf(out, cap, "%s%s%s", what, msg && *msg ? ": " : "", msg ? msg : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p == '"')
            *p = '\'';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

static void s_free_event(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

static void s_timer_in(pgconn_t *self, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_del(self->timer);
    evtimer_add(self->timer, &tv);
}

static void s_clear_results(pgconn_t *self)
{
    for (int i = 0; i < self->nres; i++)
        PQclear(self->res[i]);
    self->nres = 0;
    self->overflow = 0;
}

/* Closes the libpq connection and forgets everything tied to it; the
 * caller sets the state. */
static void s_close(pgconn_t *self)
{
    s_free_event(&self->ev_conn);
    s_free_event(&self->ev_sock);
    s_free_event(&self->ev_write);
    evtimer_del(self->timer);
    s_clear_results(self);
    self->busy = 0;
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
}

static void s_quiet(void *arg, const char *msg)
{
    (void)arg;
    log_debug("event=pg_notice msg=\"%.200s\"", msg);
}

/* --- failing -------------------------------------------------------- */

void pgconn_fail(pgconn_t *self, const char *what, const char *msg)
{
    if (self->state != PGC_CONNECTING && self->state != PGC_UP)
        return;
    /* msg may belong to the connection (PQerrorMessage): copy it first. */
    char reason[PGCONN_REASON_MAX];
    s_one_line(reason, sizeof reason, what ? what : "error", msg);
    s_close(self);
    if (self->stopping) {
        log_info("event=%s_closed%s reason=\"%s\"", self->cfg.name, self->label, reason);
        self->state = PGC_CLOSED;
    } else {
        if (!self->cfg.quiet_retries || !self->down_logged)
            log_warn("event=%s_down%s reason=\"%s\" retry_ms=%ld", self->cfg.name, self->label,
                     reason, self->backoff_ms);
        else
            log_debug("event=%s_down%s reason=\"%s\" retry_ms=%ld", self->cfg.name, self->label,
                      reason, self->backoff_ms);
        self->down_logged = 1;
        self->state = PGC_DOWN;
        s_timer_in(self, self->backoff_ms);
        self->backoff_ms *= 2;
        if (self->backoff_ms > self->cfg.backoff_max_ms)
            self->backoff_ms = self->cfg.backoff_max_ms;
    }
    if (self->cb.on_down)
        self->cb.on_down(self->cb.ctx);
}

/* --- sending -------------------------------------------------------- */

static void s_on_write(evutil_socket_t fd, short what, void *arg)
{
    pgconn_t *self = arg;
    (void)fd;
    (void)what;
    if (self->state != PGC_UP)
        return;
    int r = PQflush(self->conn);
    if (r < 0)
        pgconn_fail(self, "send failed", PQerrorMessage(self->conn));
    else if (r > 0 && event_add(self->ev_write, NULL) != 0)
        pgconn_fail(self, "send failed", "cannot watch the socket");
}

/* Flushes what libpq holds; 0, or -1 after pgconn_fail. */
static int s_flush(pgconn_t *self)
{
    int r = PQflush(self->conn);
    if (r < 0) {
        pgconn_fail(self, "send failed", PQerrorMessage(self->conn));
        return -1;
    }
    if (r > 0) {
        if (!self->ev_write)
            self->ev_write = event_new(self->base, PQsocket(self->conn), EV_WRITE, s_on_write,
                                       self);
        if (!self->ev_write || event_add(self->ev_write, NULL) != 0) {
            pgconn_fail(self, "send failed", "cannot watch the socket");
            return -1;
        }
    }
    return 0;
}

/* After PQsendQuery*: ok is its return value. 0, or -1 after pgconn_fail. */
static int s_sent(pgconn_t *self, int ok)
{
    if (!ok) {
        pgconn_fail(self, "send failed", PQerrorMessage(self->conn));
        return -1;
    }
    self->busy = 1;
    return s_flush(self);
}

int pgconn_send(pgconn_t *self, const char *sql)
{
    if (self->state != PGC_UP || self->busy)
        return -1;
    return s_sent(self, PQsendQuery(self->conn, sql));
}

int pgconn_send_params(pgconn_t *self, const char *sql, int nparams, const char *const *params)
{
    if (self->state != PGC_UP || self->busy)
        return -1;
    return s_sent(self, PQsendQueryParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0));
}

/* --- receiving ------------------------------------------------------ */

/* The query in flight delivered all its results: hand them over. */
static void s_query_done(pgconn_t *self)
{
    PGresult *res[PGCONN_RES_MAX];
    int n = self->nres, overflow = self->overflow;
    memcpy(res, self->res, (size_t)n * sizeof *res);
    self->nres = 0;
    self->overflow = 0;
    self->busy = 0;
    if (self->cb.on_done)
        self->cb.on_done(self->cb.ctx, res, n, overflow);   /* may send, fail, close */
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
}

static void s_on_read(evutil_socket_t fd, short what, void *arg)
{
    pgconn_t *self = arg;
    (void)fd;
    (void)what;
    if (self->state != PGC_UP)
        return;
    if (!PQconsumeInput(self->conn)) {
        pgconn_fail(self, "connection lost", PQerrorMessage(self->conn));
        return;
    }
    while (self->state == PGC_UP && self->busy && !PQisBusy(self->conn)) {
        PGresult *r = PQgetResult(self->conn);
        if (!r) {
            s_query_done(self);
            continue;
        }
        if (self->nres < PGCONN_RES_MAX) {
            self->res[self->nres++] = r;
        } else {
            PQclear(r);
            self->overflow = 1;
        }
    }
    if (self->state != PGC_UP)
        return;
    if (PQstatus(self->conn) == CONNECTION_BAD) {
        pgconn_fail(self, "connection lost", PQerrorMessage(self->conn));
        return;
    }
    int rang = 0;
    PGnotify *n;
    while ((n = PQnotifies(self->conn)) != NULL) {
        rang = 1;
        PQfreemem(n);
    }
    if (rang && self->cb.on_notify)
        self->cb.on_notify(self->cb.ctx);
}

/* --- connecting ----------------------------------------------------- */

static void s_connected(pgconn_t *self)
{
    evtimer_del(self->timer);
    s_free_event(&self->ev_conn);
    PQsetnonblocking(self->conn, 1);
    PQsetNoticeProcessor(self->conn, s_quiet, NULL);
    self->ev_sock = event_new(self->base, PQsocket(self->conn), EV_READ | EV_PERSIST, s_on_read,
                              self);
    if (!self->ev_sock || event_add(self->ev_sock, NULL) != 0) {
        pgconn_fail(self, "setup", "cannot watch the socket");
        return;
    }
    self->state = PGC_UP;
    self->busy = 0;
    if (self->cb.on_up)
        self->cb.on_up(self->cb.ctx);
}

/* Waits for the socket as PQconnectPoll asked, on a fresh one-shot event. */
static void s_conn_wait(pgconn_t *self, PostgresPollingStatusType p)
{
    int fd = PQsocket(self->conn);
    if (fd < 0) {
        pgconn_fail(self, "connect", PQerrorMessage(self->conn));
        return;
    }
    s_free_event(&self->ev_conn);
    self->ev_conn = event_new(self->base, fd, p == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
                              s_on_conn, self);
    if (!self->ev_conn || event_add(self->ev_conn, NULL) != 0)
        pgconn_fail(self, "connect", "cannot watch the socket");
}

static void s_on_conn(evutil_socket_t fd, short what, void *arg)
{
    pgconn_t *self = arg;
    (void)fd;
    (void)what;
    if (self->state != PGC_CONNECTING)
        return;
    PostgresPollingStatusType p = PQconnectPoll(self->conn);
    switch (p) {
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        s_conn_wait(self, p);
        break;
    case PGRES_POLLING_OK:
        s_connected(self);
        break;
    default:
        pgconn_fail(self, "connect", PQerrorMessage(self->conn));
        break;
    }
}

static void s_connect(pgconn_t *self)
{
    self->state = PGC_CONNECTING;
    self->conn = PQconnectStart(self->cfg.conninfo);
    if (!self->conn) {
        pgconn_fail(self, "connect", "out of memory");
        return;
    }
    if (PQstatus(self->conn) == CONNECTION_BAD) {
        pgconn_fail(self, "connect", PQerrorMessage(self->conn));
        return;
    }
    s_timer_in(self, self->cfg.connect_timeout_ms);
    s_conn_wait(self, PGRES_POLLING_WRITING);
}

static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    pgconn_t *self = arg;
    (void)fd;
    (void)what;
    if (self->state == PGC_DOWN)
        s_connect(self);
    else if (self->state == PGC_CONNECTING)
        pgconn_fail(self, "connect", "timed out");
}

/* --- public --------------------------------------------------------- */

pgconn_t *pgconn_new(struct event_base *base, const pgconn_config_t *cfg,
                     const pgconn_callbacks_t *cb)
{
    pgconn_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->cfg = *cfg;
    if (!self->cfg.conninfo)
        self->cfg.conninfo = "";
    if (!self->cfg.name)
        self->cfg.name = "db";
    if (self->cfg.connect_timeout_ms <= 0)
        self->cfg.connect_timeout_ms = PGCONN_CONNECT_TIMEOUT_MS;
    if (self->cfg.backoff_min_ms <= 0)
        self->cfg.backoff_min_ms = PGCONN_BACKOFF_MIN_MS;
    if (self->cfg.backoff_max_ms <= 0)
        self->cfg.backoff_max_ms = PGCONN_BACKOFF_MAX_MS;
    if (self->cfg.backoff_max_ms < self->cfg.backoff_min_ms)
        self->cfg.backoff_max_ms = self->cfg.backoff_min_ms;
    if (self->cfg.id >= 0)
        snprintf(self->label, sizeof self->label, " conn=%d", self->cfg.id);
    self->cb = *cb;
    self->backoff_ms = self->cfg.backoff_min_ms;
    self->timer = evtimer_new(base, s_on_timer, self);
    if (!self->timer) {
        free(self);
        return NULL;
    }
    return self;
}

int pgconn_start(pgconn_t *self)
{
    if (self->state != PGC_CLOSED)
        return -1;
    self->stopping = 0;
    s_connect(self);
    return 0;
}

int pgconn_recovered(pgconn_t *self)
{
    int was = self->down_logged;
    self->backoff_ms = self->cfg.backoff_min_ms;
    self->down_logged = 0;
    return was;
}

void pgconn_stopping(pgconn_t *self)
{
    self->stopping = 1;
}

void pgconn_close(pgconn_t *self)
{
    s_close(self);
    self->state = PGC_CLOSED;
}

int pgconn_is_up(const pgconn_t *self)
{
    return self->state == PGC_UP;
}

int pgconn_busy(const pgconn_t *self)
{
    return self->state == PGC_UP && self->busy;
}

PGconn *pgconn_pg(pgconn_t *self)
{
    return self->state == PGC_UP ? self->conn : NULL;
}

long pgconn_backoff_ms(const pgconn_t *self)
{
    return self->backoff_ms;
}

void pgconn_destroy(pgconn_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pgconn_t *self = *self_p;
    s_close(self);
    s_free_event(&self->timer);
    free(self);
    *self_p = NULL;
}
