/*  obs - the broker's HTTP endpoint: GET /metrics, /healthz, /readyz
 *
 *  Design: libevent's evhttp does the HTTP/1.1 work (parsing with capped
 *  heads and bodies, keep-alive, timeouts, HEAD without a body) on the
 *  broker's own loop; one generic callback routes by path. Every answer is
 *  built from memory in one pass into an evbuffer and handed to evhttp,
 *  which writes it as the socket allows, so a slow scraper costs a buffer,
 *  never a blocked loop. Counters live where the work happens (db, pub,
 *  rpc, ops); the caller copies them into an obs_snapshot_t at scrape time.
 *  The two distributions that need per-event work (rows per batch, lag per
 *  published row) are histograms kept here: a bucket increment each.
 */
#include "obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "prom.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

static const double s_batch_bounds[OBS_BATCH_NB] = OBS_BATCH_BOUNDS;
static const double s_lag_bounds[OBS_LAG_NB] = OBS_LAG_BOUNDS;

struct obs {
    struct event_base *base;    /* the loop */
    obs_snapshot_fn fn;         /* fills a snapshot */
    void *ctx;                  /* its argument */
    struct evhttp *http;        /* NULL without a listener */
    struct evhttp_bound_socket *bound;  /* the listening socket */
    uint16_t port;              /* bound port */
    time_t started;             /* process start, for start_time_seconds */
    prom_hist_t batch;             /* rows per non-empty batch */
    prom_hist_t lag;               /* created_at to publish, seconds */
    double last_lag;            /* lag of the newest row published, seconds */
    uint64_t http_requests;     /* HTTP requests answered */
};

/* ---- rendering ------------------------------------------------------------ */

/* The label value of an op name: only [a-z_] is expected; anything else
 * becomes '_' so the output always parses. */
static void s_label(char *out, size_t cap, const char *name)
{
    size_t i = 0;
    for (; name && name[i] && i + 1 < cap; i++) {
        char c = name[i];
        out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_') ? c : '_';
    }
    out[i] = '\0';
}

static void s_snapshot(obs_t *self, obs_snapshot_t *st)
{
    memset(st, 0, sizeof *st);
    if (self->fn)
        self->fn(self->ctx, st);
    if (st->nops > OBS_OPS_MAX)
        st->nops = OBS_OPS_MAX;
}

int obs_render(obs_t *self, struct evbuffer *b)
{
    obs_snapshot_t st;
    s_snapshot(self, &st);
    size_t before = evbuffer_get_length(b);

    const prom_metric_t state[] = {
        { "belfry_broker_leader", "gauge",
          "1 while this broker holds the leader lock and streams rows.", (uint64_t)st.leader },
        { "belfry_broker_standby", "gauge",
          "1 while connected to PostgreSQL and another broker leads.", (uint64_t)st.standby },
        { "belfry_broker_db_connected", "gauge",
          "1 while the cursor connection to PostgreSQL is up.", (uint64_t)st.db_connected },
        { "belfry_broker_rpc_db_connections", "gauge",
          "RPC pool connections to PostgreSQL that are up.", (uint64_t)st.rpc_db_connected },
        { "belfry_broker_rpc_db_connections_max", "gauge",
          "RPC pool size (--rpc-db-conns).", (uint64_t)st.rpc_db_conns },
        { "belfry_broker_fanout_ready", "gauge",
          "1 while the fan-out transport can carry messages.", (uint64_t)st.fanout_ready },
        { "belfry_broker_published_messages_total", "counter",
          "Rows published on the fan-out.", st.published },
        { "belfry_broker_published_bytes_total", "counter",
          "Envelope bytes published on the fan-out.", st.published_bytes },
        { "belfry_broker_publish_errors_total", "counter",
          "Rows and heartbeats the fan-out refused or could not encode.", st.publish_errors },
        { "belfry_broker_batch_reads_total", "counter",
          "Batch reads committed, empty ones included.", st.reads },
        { "belfry_broker_batches_total", "counter", "Non-empty batches read.", st.batches },
        { "belfry_broker_rows_read_total", "counter", "Rows read from PostgreSQL.", st.rows },
    };
    prom_u64s(b, state, sizeof state / sizeof state[0]);
    prom_hist(b, "belfry_broker_batch_rows", "Rows per non-empty batch.", &self->batch);
    prom_f64(b, "belfry_broker_lag_seconds", "gauge",
             "Seconds from created_at of the newest published row to its publication.",
             self->last_lag);
    prom_hist(b, "belfry_broker_publish_lag_seconds",
              "Seconds from a row's created_at to its publication.", &self->lag);
    const prom_metric_t ring[] = {
        { "belfry_broker_last_seq", "gauge",
          "Last published seq (the cursor position before the first row).", st.last_seq },
        { "belfry_broker_ring_messages", "gauge",
          "Published messages kept in memory for replays.", st.ring_msgs },
        { "belfry_broker_ring_bytes", "gauge", "Bytes of the ring (topics + envelopes).",
          st.ring_bytes },
        { "belfry_broker_ring_first_seq", "gauge", "Lowest seq in the ring (0: empty).",
          st.ring_first },
        { "belfry_broker_oldest_seq", "gauge",
          "Lowest `after` a replay or recovery accepts (0: not known yet).", st.oldest },
    };
    prom_u64s(b, ring, sizeof ring / sizeof ring[0]);

    char lab[OBS_OPS_MAX][64];
    prom_sample_t req[OBS_OPS_MAX], err[OBS_OPS_MAX];
    for (size_t i = 0; i < st.nops; i++) {
        s_label(lab[i], sizeof lab[i], st.ops[i].name);
        req[i] = (prom_sample_t){ lab[i], st.ops[i].requests };
        err[i] = (prom_sample_t){ lab[i], st.ops[i].errors };
    }
    prom_u64_by(b, "belfry_broker_rpc_requests_total", "counter", "RPC requests received, by op.",
                "op", req, st.nops);
    prom_u64_by(b, "belfry_broker_rpc_errors_total", "counter", "RPC error replies sent, by op.",
                "op", err, st.nops);

    const prom_metric_t rest[] = {
        { "belfry_broker_rpc_malformed_total", "counter",
          "RPC messages dropped unanswered (not a map with an integer id).", st.rpc_malformed },
        { "belfry_broker_rpc_queue_length", "gauge",
          "RPC queries waiting for a database connection.", st.rpc_queue },
        { "belfry_broker_db_connects_total", "counter",
          "Cursor connections to PostgreSQL completed.", st.db_connects },
        { "belfry_broker_db_reconnects_total", "counter",
          "Cursor connection losses and failed attempts (each followed by a reconnect).",
          st.db_reconnects },
        { "belfry_broker_retention_prunes_total", "counter", "Retention prunes completed.",
          st.prunes },
        { "belfry_broker_retention_prune_failures_total", "counter",
          "Retention prunes that failed.", st.prune_failures },
        { "belfry_broker_pruned_batches_total", "counter",
          "belfry_batches rows deleted by retention.", st.pruned_batches },
        { "belfry_broker_pruned_sessions_total", "counter",
          "belfry_sessions rows deleted by retention.", st.pruned_sessions },
        { "belfry_broker_held_rows", "gauge",
          "Rows held at a start of leadership until the ring preload is done.", st.held_rows },
        { "belfry_broker_leadership_terms_total", "counter",
          "Leadership terms this process started.", st.leader_terms },
        { "belfry_broker_http_requests_total", "counter",
          "Requests answered on the HTTP endpoint.", self->http_requests },
        { "belfry_broker_start_time_seconds", "gauge", "Process start, Unix time.",
          (uint64_t)self->started },
    };
    prom_u64s(b, rest, sizeof rest / sizeof rest[0]);
    /* evbuffer_add_printf fails only on allocation failure; a short output
     * is detected by its missing last line. */
    return evbuffer_get_length(b) > before ? 0 : -1;
}

int obs_is_ready(const obs_snapshot_t *st)
{
    return st->db_connected ? 1 : 0;
}

/* ---- HTTP ----------------------------------------------------------------- */

static void s_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                    struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void s_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, text, strlen(text));
    s_reply(req, code, reason, "text/plain; charset=utf-8", b);
    if (b)
        evbuffer_free(b);
}

static void s_on_request(struct evhttp_request *req, void *arg)
{
    obs_t *self = arg;
    self->http_requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum { R_NONE, R_METRICS, R_HEALTHZ, R_READYZ } route = R_NONE;
    if (path && strcmp(path, "/metrics") == 0)
        route = R_METRICS;
    else if (path && strcmp(path, "/healthz") == 0)
        route = R_HEALTHZ;
    else if (path && strcmp(path, "/readyz") == 0)
        route = R_READYZ;
    if (route == R_NONE) {
        s_text(req, 404, "Not Found", "not found\n");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        s_text(req, 405, "Method Not Allowed", "method not allowed\n");
        return;
    }
    if (route == R_HEALTHZ) {
        s_text(req, 200, "OK", "ok\n");
    } else if (route == R_READYZ) {
        obs_snapshot_t st;
        s_snapshot(self, &st);
        if (obs_is_ready(&st))
            s_text(req, 200, "OK", st.leader ? "ready: leader\n" : "ready: standby\n");
        else
            s_text(req, 503, "Service Unavailable", "not ready: no database connection\n");
    } else {
        struct evbuffer *b = evbuffer_new();
        if (!b || obs_render(self, b) < 0) {
            if (b)
                evbuffer_free(b);
            s_text(req, 500, "Internal Server Error", "out of memory\n");
            return;
        }
        s_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
        evbuffer_free(b);
    }
}

int obs_parse_addr(const char *addr, char *host, size_t hostcap, uint16_t *port)
{
    if (!addr || !host || hostcap == 0)
        return -1;
    const char *colon, *h;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return -1;
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
            return -1;          /* no port, or an unbracketed IPv6 address */
        h = addr;
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= hostcap || hlen >= OBS_HOST_MAX)
        return -1;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return -1;
    unsigned long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return 0;
}

obs_t *obs_new(struct event_base *base, obs_snapshot_fn fn, void *ctx)
{
    obs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->fn = fn;
    self->ctx = ctx;
    self->started = time(NULL);
    prom_hist_init(&self->batch, s_batch_bounds, OBS_BATCH_NB);
    prom_hist_init(&self->lag, s_lag_bounds, OBS_LAG_NB);
    return self;
}

int obs_listen(obs_t *self, const char *addr, char *err, size_t errcap)
{
    char host[OBS_HOST_MAX];
    uint16_t port = 0;
    if (!addr || !*addr)
        return 0;
    if (self->http) {
        snprintf(err, errcap, "already listening");
        return -1;
    }
    if (obs_parse_addr(addr, host, sizeof host, &port) < 0) {
        snprintf(err, errcap, "\"%s\" is not host:port or [ipv6]:port", addr);
        return -1;
    }
    self->http = evhttp_new(self->base);
    if (!self->http) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    /* Every method reaches s_on_request, which answers 405 itself (evhttp
     * would say 501 for a method outside this set). */
    evhttp_set_allowed_methods(self->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(self->http, OBS_HEADERS_MAX);
    evhttp_set_max_body_size(self->http, OBS_BODY_MAX);
    evhttp_set_timeout(self->http, OBS_TIMEOUT_S);
    evhttp_set_gencb(self->http, s_on_request, self);
    self->bound = evhttp_bind_socket_with_handle(self->http, host, port);
    if (!self->bound) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(err, errcap, "cannot listen on %s: %s", addr, evutil_socket_error_to_string(e));
        evhttp_free(self->http);
        self->http = NULL;
        return -1;
    }
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(self->bound);
    self->port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            self->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            self->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

uint16_t obs_port(const obs_t *self)
{
    return self && self->http ? self->port : 0;
}

void obs_destroy(obs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    obs_t *self = *self_p;
    if (self->http)
        evhttp_free(self->http);
    free(self);
    *self_p = NULL;
}

void obs_on_batch(obs_t *self, uint64_t rows)
{
    prom_hist_observe(&self->batch, (double)rows);
}

void obs_on_published(obs_t *self, int64_t lag_us)
{
    double s = lag_us > 0 ? (double)lag_us / 1e6 : 0.0;
    self->last_lag = s;
    prom_hist_observe(&self->lag, s);
}
