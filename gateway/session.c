/*  session - Engine.IO v4 sessions over long-polling and WebSocket
 *
 *  States of a session, by transport:
 *
 *    polling    GETs are parked until something is queued (or a ping is due);
 *               POSTs carry packets from the client. At most one GET at a
 *               time: a second one closes the session (the first gets "1").
 *    probing    a WebSocket with the sid said 2probe and got 3probe; the
 *               parked GET was answered with noop "6"; packets keep queueing.
 *    websocket  after 5 on the probe (or a direct WebSocket handshake): the
 *               queue is flushed to the WebSocket in order and every later
 *               packet goes straight to it. Polling requests then get 400.
 *
 *  Heartbeat: the server sends ping every pingInterval and expects pong within
 *  pingTimeout; the next ping is scheduled pingInterval after the pong. The
 *  deadline is also checked lazily on every request, so an expired sid is
 *  refused even if the timer has not fired yet.
 *
 *  Closing never frees: a closed session is unlinked from the sid table and
 *  its transports, then freed by session_reap at the next loop turn.
 */
#include "session.h"
#include "conn.h"
#include "sock.h"
#include "eio.h"
#include "b64.h"
#include "map.h"
#include "log.h"
#include "ws.h"

#include <event2/buffer.h>
#include "rid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_tv(struct timeval *tv, long ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* 20 characters of base64url from 15 random bytes. */
static int s_new_sid(char out[SESSION_SID_LEN + 1])
{
    return rid_b64url(out, 15);
}

/* ---- output -------------------------------------------------------------- */

/* Answers the parked GET with everything queued. */
static void s_flush_poll(session_t *s)
{
    if (!s->poll || !s->queue || evbuffer_get_length(s->queue) == 0 || s->upgraded)
        return;
    conn_t *c = s->poll;
    s->poll = NULL;
    conn_set_session(c, NULL);
    size_t n = evbuffer_get_length(s->queue);
    const char *body = (const char *)evbuffer_pullup(s->queue, -1);
    conn_http_reply(c, 200, "text/plain; charset=UTF-8", "Cache-Control: no-store\r\n", body, n);
    evbuffer_drain(s->queue, n);
}

static void s_queue_record(session_t *s, const char *rec, size_t len)
{
    if (!s->queue && !(s->queue = evbuffer_new())) {
        session_close(s, "out of memory");
        return;
    }
    if (evbuffer_get_length(s->queue) > 0)
        evbuffer_add(s->queue, "\x1e", 1);
    evbuffer_add(s->queue, rec, len);
    /* handed over (and judged) at the end of the turn, as WebSocket output
     * is: a burst goes to a parked GET in one response */
    if (!s->pq_on) {
        gw_t *gw = s->gw;
        s->pq_on = 1;
        s->pq_prev = NULL;
        s->pq_next = gw->poll_dirty;
        if (gw->poll_dirty)
            gw->poll_dirty->pq_prev = s;
        gw->poll_dirty = s;
        event_active(gw->flush_ev, EV_TIMEOUT, 0);
    }
}

static void s_pq_unlink(session_t *s)
{
    if (!s->pq_on)
        return;
    if (s->pq_prev)
        s->pq_prev->pq_next = s->pq_next;
    else
        s->gw->poll_dirty = s->pq_next;
    if (s->pq_next)
        s->pq_next->pq_prev = s->pq_prev;
    s->pq_prev = s->pq_next = NULL;
    s->pq_on = 0;
}

void session_flush_polls(gw_t *gw)
{
    while (gw->poll_dirty) {
        session_t *s = gw->poll_dirty;
        s_pq_unlink(s);
        if (s->closed || s->upgraded)
            continue;
        /* only what no request is waiting for counts against the limit */
        s_flush_poll(s);
        size_t queued = s->queue ? evbuffer_get_length(s->queue) : 0;
        if ((long)queued > gw->cfg.max_output) {
            gw->stats.slow_consumer_drops++;
            log_warn("event=slow_consumer transport=polling queued=%zu limit=%ld", queued,
                     gw->cfg.max_output);
            session_close(s, "slow consumer");
        }
    }
}

void session_send(session_t *s, const char *text, size_t len)
{
    if (s->closed)
        return;
    s->gw->stats.messages_out++;
    if (s->upgraded) {
        conn_ws_send(s->ws, WS_OP_TEXT, text, len);
        return;
    }
    s_queue_record(s, text, len);
}

void session_send_pkt(session_t *s, pkt_t *p)
{
    if (s->closed)
        return;
    s->gw->stats.messages_out++;
    if (s->upgraded) {
        conn_ws_send_pkt(s->ws, p);
        return;
    }
    s_queue_record(s, pkt_text(p), pkt_text_len(p));
}

void session_send_binary(session_t *s, const void *data, size_t len)
{
    if (s->closed)
        return;
    s->gw->stats.messages_out++;
    if (s->upgraded) {
        conn_ws_send(s->ws, WS_OP_BINARY, data, len);
        return;
    }
    char *rec = malloc(2 + b64_encoded_len(len) + 1);
    if (!rec) {
        session_close(s, "out of memory");
        return;
    }
    size_t n = eio_encode_binary_record(data, len, rec);
    s_queue_record(s, rec, n);
    free(rec);
}

/* Moves what polling had queued onto the WebSocket, in order. */
static void s_flush_queue_to_ws(session_t *s)
{
    size_t n = s->queue ? evbuffer_get_length(s->queue) : 0;
    if (n == 0)
        goto done;
    char *payload = (char *)evbuffer_pullup(s->queue, -1);
    char *scratch = malloc(n + 1);
    size_t pos = 0;
    const char *rec;
    size_t rl;
    while (scratch && eio_payload_next(payload, n, &pos, &rec, &rl)) {
        eio_packet_t p;
        if (rl > 0 && rec[0] == 'b') {
            if (eio_decode_record(rec, rl, scratch, &p) == 0)
                conn_ws_send(s->ws, WS_OP_BINARY, p.data, p.len);
        } else {
            conn_ws_send(s->ws, WS_OP_TEXT, rec, rl);
        }
    }
    free(scratch);
done:
    /* a WebSocket session never queues again: give the buffer back */
    if (s->queue)
        evbuffer_free(s->queue);
    s->queue = NULL;
}

/* ---- heartbeat ----------------------------------------------------------- */

static void s_hb_cb(evutil_socket_t fd, short what, void *arg)
{
    session_t *s = arg;
    (void)fd;
    (void)what;
    if (s->closed)
        return;
    if (s->pong_deadline) {
        session_close(s, "ping timeout");
        return;
    }
    s->pong_deadline = s_now_ms() + s->gw->cfg.ping_timeout_ms;
    s->pong_refreshed = 0;
    struct timeval tv;
    s_tv(&tv, s->gw->cfg.ping_timeout_ms);
    event_add(s->hb, &tv);
    session_send(s, "2", 1);
}

static void s_on_pong(session_t *s)
{
    if (!s->pong_deadline)
        return;
    s->pong_deadline = 0;
    struct timeval tv;
    s_tv(&tv, s->gw->cfg.ping_interval_ms);
    event_add(s->hb, &tv);
}

/* A packet other than pong arrived while a pong is due: the client is alive
 * and busy (its pong may be behind events in the same POST or be delayed by
 * the poll cycle), so the deadline is extended once per ping, as Node does. */
static void s_on_activity(session_t *s)
{
    if (!s->pong_deadline || s->pong_refreshed)
        return;
    s->pong_refreshed = 1;
    s->pong_deadline = s_now_ms() + s->gw->cfg.ping_timeout_ms;
    struct timeval tv;
    s_tv(&tv, s->gw->cfg.ping_timeout_ms);
    event_add(s->hb, &tv);
}

/* 1 if the session is past its pong deadline (closing it). */
static int s_expired(session_t *s)
{
    if (s->pong_deadline && s_now_ms() >= s->pong_deadline) {
        session_close(s, "ping timeout");
        return 1;
    }
    return 0;
}

void session_connected(session_t *s)
{
    if (s->connect_timer) {
        event_free(s->connect_timer);
        s->connect_timer = NULL;
    }
}

static void s_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    session_t *s = arg;
    (void)fd;
    (void)what;
    if (!s->closed && s->nsocks == 0)
        session_close(s, "connect timeout");
}

/* ---- lifecycle ----------------------------------------------------------- */

static session_t *s_new(gw_t *gw, int raw, const http_request_t *req)
{
    session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->gw = gw;
    s->raw = raw;
    s->hb = event_new(gw->base, -1, 0, s_hb_cb, s);
    if (!raw)
        s->connect_timer = event_new(gw->base, -1, 0, s_connect_timeout_cb, s);
    if (!s->hb || (!raw && !s->connect_timer) || s_new_sid(s->sid) < 0)
        goto fail;
    char buf[AUTH_QUERY_MAX];
    if (http_query_param(req->query, req->query_len, "token", buf, sizeof buf) >= 0)
        s->query_token = strdup(buf);
    if (gw->cfg.insecure_user_param &&
        http_query_param(req->query, req->query_len, "user", buf, sizeof buf) >= 0)
        s->query_user = strdup(buf);
    if (map_put(gw->sessions, s->sid, SESSION_SID_LEN, s) < 0)
        goto fail;
    struct timeval tv;
    s_tv(&tv, gw->cfg.ping_interval_ms);
    event_add(s->hb, &tv);
    if (s->connect_timer) {
        s_tv(&tv, gw->cfg.connect_timeout_ms);
        event_add(s->connect_timer, &tv);
    }
    gw->stats.sessions_open++;
    return s;
fail:
    if (s->queue)
        evbuffer_free(s->queue);
    if (s->hb)
        event_free(s->hb);
    if (s->connect_timer)
        event_free(s->connect_timer);
    free(s->query_token);
    free(s->query_user);
    free(s);
    return NULL;
}

/* Closes the session; the parked GET (if any) is answered with poll_reply. */
static void s_close(session_t *s, const char *reason, const char *poll_reply)
{
    if (s->closed)
        return;
    s->closed = 1;
    gw_t *gw = s->gw;
    s_pq_unlink(s);
    log_debug("event=session_close sid=%s reason=\"%s\"", s->sid, reason);
    map_remove(gw->sessions, s->sid, SESSION_SID_LEN);
    gw->stats.sessions_open--;
    event_del(s->hb);
    if (s->connect_timer)
        event_del(s->connect_timer);
    if (s->poll) {
        conn_t *c = s->poll;
        s->poll = NULL;
        conn_set_session(c, NULL);
        conn_http_reply(c, 200, "text/plain; charset=UTF-8", "Cache-Control: no-store\r\n",
                        poll_reply, strlen(poll_reply));
    }
    if (s->ws) {
        conn_t *c = s->ws;
        s->ws = NULL;
        conn_set_session(c, NULL);
        conn_ws_close(c, WS_CLOSE_NORMAL, "");
    }
    if (s->probe) {
        conn_t *c = s->probe;
        s->probe = NULL;
        conn_set_session(c, NULL);
        conn_ws_close(c, WS_CLOSE_NORMAL, "");
    }
    s->reap_next = gw->reap_sessions;
    gw->reap_sessions = s;
    event_active(gw->reap_ev, EV_TIMEOUT, 0);
}

void session_close(session_t *s, const char *reason)
{
    s_close(s, reason, "6");
}

void session_reap(gw_t *gw)
{
    while (gw->reap_sessions) {
        session_t *s = gw->reap_sessions;
        gw->reap_sessions = s->reap_next;
        sock_destroy_all(s);
        if (s->queue)
            evbuffer_free(s->queue);
        event_free(s->hb);
        if (s->connect_timer)
            event_free(s->connect_timer);
        free(s->query_token);
        free(s->query_user);
        free(s);
    }
}

void session_close_all(gw_t *gw, const char *reason)
{
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    /* closing removes from the map: restart the iteration each time */
    while (map_next(gw->sessions, &pos, &k, &kl, &v)) {
        session_close(v, reason);
        pos = 0;
    }
}

void session_on_conn_closed(session_t *s, conn_t *c)
{
    if (c == s->probe) {
        s->probe = NULL;            /* the upgrade failed: stay on polling */
        return;
    }
    if (c == s->poll) {
        s->poll = NULL;             /* the client gave up its long-poll */
        session_close(s, "poll aborted");
        return;
    }
    if (c == s->ws) {
        s->ws = NULL;
        session_close(s, "transport close");
    }
}

/* ---- incoming packets ---------------------------------------------------- */

/* Handles one decoded Engine.IO packet from transport c (NULL for polling).
 * Returns 0, or -1 on a protocol error (the caller closes the session). */
static int s_packet(session_t *s, conn_t *c, const eio_packet_t *p)
{
    if (p->binary || p->type != EIO_PONG)
        s_on_activity(s);
    if (p->binary) {
        if (s->raw) {
            session_send_binary(s, p->data, p->len);
            return 0;
        }
        return sock_on_binary(s, p->data, p->len);
    }
    switch (p->type) {
    case EIO_PONG:
        s_on_pong(s);
        return 0;
    case EIO_PING:
        /* only the probe pings (2probe) in v4 */
        if (c && c == s->probe && p->len == 5 && memcmp(p->data, "probe", 5) == 0) {
            conn_ws_send(c, WS_OP_TEXT, "3probe", 6);
            if (s->poll) {
                conn_t *pc = s->poll;
                s->poll = NULL;
                conn_set_session(pc, NULL);
                conn_http_reply(pc, 200, "text/plain; charset=UTF-8",
                                "Cache-Control: no-store\r\n", "6", 1);
            }
            return 0;
        }
        return -1;
    case EIO_UPGRADE:
        if (!c || c != s->probe)
            return -1;
        s->probe = NULL;
        s->ws = c;
        s->upgraded = 1;
        if (s->poll) {
            conn_t *pc = s->poll;
            s->poll = NULL;
            conn_set_session(pc, NULL);
            conn_http_reply(pc, 200, "text/plain; charset=UTF-8", "Cache-Control: no-store\r\n",
                            "6", 1);
        }
        s_flush_queue_to_ws(s);
        return 0;
    case EIO_MESSAGE:
        if (c && c == s->probe)
            return -1;
        if (s->raw) {
            char *echo = malloc(p->len + 1);
            if (!echo)
                return -1;
            echo[0] = '4';
            memcpy(echo + 1, p->data, p->len);
            session_send(s, echo, p->len + 1);
            free(echo);
            return 0;
        }
        if (sock_on_message(s, p->data, p->len) < 0)
            return -1;
        if (s->nsocks > 0 && s->connect_timer)
            event_del(s->connect_timer);
        return 0;
    case EIO_CLOSE:
        s_close(s, "client close", "6");
        return 0;
    case EIO_NOOP:
        return 0;
    default:
        return -1;          /* open is never sent by a client */
    }
}

void session_on_ws_message(session_t *s, conn_t *c, int binary, const uint8_t *data, size_t len)
{
    if (s->closed)
        return;
    eio_packet_t p;
    if (binary) {
        p.type = EIO_MESSAGE;
        p.binary = 1;
        p.data = (const char *)data;
        p.len = len;
    } else if (eio_decode((const char *)data, len, &p) < 0) {
        s->gw->stats.protocol_errors++;
        log_info("event=eio_bad_packet sid=%s peer=%s", s->sid, conn_peer(c));
        session_close(s, "bad packet");
        return;
    }
    if (s_packet(s, c, &p) < 0) {
        s->gw->stats.protocol_errors++;
        log_info("event=protocol_error sid=%s peer=%s", s->sid, conn_peer(c));
        session_close(s, "protocol error");
    }
}

/* ---- HTTP ---------------------------------------------------------------- */

int session_origin_allowed(gw_t *gw, const char *origin, size_t len)
{
    const char *list = gw->cfg.cors_origin;
    if (!list || !*list)
        return 1;           /* no allowlist configured */
    if (strcmp(list, "*") == 0)
        return 1;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && memcmp(p, origin, len) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void s_send_open(session_t *s, conn_t *c, int websocket)
{
    char json[256];
    json[0] = '0';
    int n = eio_open_json(json + 1, sizeof json - 1, s->sid, !websocket,
                          s->gw->cfg.ping_interval_ms, s->gw->cfg.ping_timeout_ms,
                          s->gw->cfg.max_payload);
    if (websocket)
        conn_ws_send(c, WS_OP_TEXT, json, (size_t)n + 1);
    else
        conn_http_reply(c, 200, "text/plain; charset=UTF-8", "Cache-Control: no-store\r\n",
                        json, (size_t)n + 1);
}

static void s_options(gw_t *gw, conn_t *c, const http_request_t *req)
{
    if (!gw->cfg.cors_origin) {
        conn_http_reply(c, 404, "text/plain", NULL, "not found\n", 10);
        return;
    }
    char extra[1024];
    const http_header_t *h = http_find_header(req, "Access-Control-Request-Headers");
    int n = snprintf(extra, sizeof extra,
                     "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n");
    if (h && h->value_len < 512)
        n += snprintf(extra + n, sizeof extra - (size_t)n,
                      "Access-Control-Allow-Headers: %.*s\r\nVary: Access-Control-Request-Headers\r\n",
                      (int)h->value_len, h->value);
    conn_http_reply(c, 204, NULL, extra, NULL, 0);
}

static int s_method_is(const http_request_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

void session_http_too_large(gw_t *gw, conn_t *c, const http_request_t *req)
{
    char sid[64];
    if (http_query_param(req->query, req->query_len, "sid", sid, sizeof sid) == SESSION_SID_LEN) {
        session_t *s = map_get(gw->sessions, sid, SESSION_SID_LEN);
        if (s)
            session_close(s, "payload too large");
    }
    conn_http_eio_error(c, 413, 3, "Payload too large");
}

void session_http(gw_t *gw, conn_t *c, const http_request_t *req, const char *body,
                  size_t blen, int raw)
{
    gw->stats.polling_requests++;
    if (s_method_is(req, "OPTIONS")) {
        s_options(gw, c, req);
        return;
    }
    char eio[8], transport[16], sid[64];
    long n = http_query_param(req->query, req->query_len, "EIO", eio, sizeof eio);
    if (n < 0 || strcmp(eio, "4") != 0) {
        conn_http_eio_error(c, 400, 5, "Unsupported protocol version");
        return;
    }
    n = http_query_param(req->query, req->query_len, "transport", transport, sizeof transport);
    int websocket = n >= 0 && strcmp(transport, "websocket") == 0;
    if (n < 0 || (!websocket && strcmp(transport, "polling") != 0)) {
        conn_http_eio_error(c, 400, 0, "Transport unknown");
        return;
    }
    const http_header_t *up = http_find_header(req, "Upgrade");
    int is_upgrade = up && http_header_has_token(up, "websocket");
    if (websocket && !is_upgrade) {
        conn_http_eio_error(c, 400, 3, "Bad request");
        return;
    }
    const http_header_t *origin = http_find_header(req, "Origin");
    if (origin && gw->cfg.cors_origin && strcmp(gw->cfg.cors_origin, "*") != 0 &&
        !session_origin_allowed(gw, origin->value, origin->value_len)) {
        gw->stats.auth_failures++;
        conn_http_eio_error(c, 403, 4, "Forbidden");
        return;
    }
    n = http_query_param(req->query, req->query_len, "sid", sid, sizeof sid);
    if (n < 0) {
        /* handshake */
        if (!s_method_is(req, "GET")) {
            conn_http_eio_error(c, 400, 2, "Bad handshake method");
            return;
        }
        if (gw->draining) {
            conn_http_eio_error(c, 503, 4, "Server is shutting down");
            return;
        }
        session_t *s = s_new(gw, raw, req);
        if (!s) {
            conn_http_eio_error(c, 500, 3, "Out of memory");
            return;
        }
        if (websocket) {
            if (conn_ws_accept(c, req) < 0) {
                session_close(s, "bad websocket handshake");
                return;
            }
            s->ws = c;
            s->upgraded = 1;
            conn_set_session(c, s);
        }
        s_send_open(s, c, websocket);
        return;
    }
    session_t *s = n == SESSION_SID_LEN ? map_get(gw->sessions, sid, SESSION_SID_LEN) : NULL;
    if (!s || s->closed || s->raw != raw || s_expired(s)) {
        conn_http_eio_error(c, 400, 1, "Session ID unknown");
        return;
    }
    if (websocket) {
        if (s->upgraded || s->probe) {
            conn_http_eio_error(c, 400, 3, "Bad request");
            return;
        }
        if (conn_ws_accept(c, req) < 0)
            return;
        s->probe = c;
        conn_set_session(c, s);
        return;
    }
    if (s->upgraded) {
        conn_http_eio_error(c, 400, 3, "Bad request");
        return;
    }
    if (s_method_is(req, "GET")) {
        if (s->poll) {
            /* two GETs at once: the first gets a close packet, this one an
             * error, and the session is over */
            s_close(s, "duplicate poll", "1");
            conn_http_eio_error(c, 400, 3, "Bad request");
            return;
        }
        if (s->probe) {
            /* an upgrade is being probed: the client must stop polling, and
             * what is queued will move to the WebSocket after 5 */
            conn_http_reply(c, 200, "text/plain; charset=UTF-8", "Cache-Control: no-store\r\n",
                            "6", 1);
            return;
        }
        s->poll = c;
        conn_set_session(c, s);
        conn_park(c);
        s_flush_poll(s);
        return;
    }
    if (!s_method_is(req, "POST")) {
        conn_http_eio_error(c, 400, 2, "Bad handshake method");
        return;
    }
    /* POST: a payload of packets */
    char *scratch = malloc(blen + 1);
    if (!scratch) {
        conn_http_eio_error(c, 500, 3, "Out of memory");
        return;
    }
    size_t pos = 0;
    const char *rec;
    size_t rl;
    int bad = blen == 0;
    while (!bad && !s->closed && eio_payload_next(body, blen, &pos, &rec, &rl)) {
        eio_packet_t p;
        if (eio_decode_record(rec, rl, scratch, &p) < 0 || s_packet(s, NULL, &p) < 0)
            bad = 1;
    }
    free(scratch);
    if (bad) {
        gw->stats.protocol_errors++;
        log_info("event=eio_bad_payload sid=%s peer=%s", s->sid, conn_peer(c));
        session_close(s, "bad payload");
        conn_http_eio_error(c, 400, 3, "Bad request");
        return;
    }
    conn_http_reply(c, 200, "text/html", NULL, "ok", 2);
}
