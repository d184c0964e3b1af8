/*  conn - one client TCP connection: HTTP/1.1 requests, then maybe WebSocket
 *
 *  No bufferevent: one libevent event on the socket (EV_READ|EV_PERSIST,
 *  plus EV_WRITE only while output waits for the socket), plain recv() (no
 *  FIONREAD probe before it), and an evbuffer for output.
 *
 *  Reads: every read goes into one scratch buffer shared by all connections
 *  (the loop is single-threaded, and a read is handled before the callback
 *  returns). The request loop parses heads and bodies in place there; only
 *  what is left unconsumed at the end of a read (part of a head or a body, a
 *  pipelined request behind a parked GET) is copied into the connection's
 *  own input buffer, which the next read is appended to and which is freed
 *  once consumed. So an idle connection holds no input buffer at all. In
 *  WebSocket mode every byte read is fed to the frame parser, which keeps its
 *  own state between reads: nothing is kept here.
 *
 *  A read timeout guards the HTTP phase (slowloris): the event's timeout,
 *  restarted by every read (a peer that goes quiet), plus deadline_ms,
 *  checked on every read (a peer that trickles a byte at a time). It is off
 *  while a long-poll is parked and in WebSocket mode, where Engine.IO's
 *  heartbeat watches the peer. A parked poll stays readable (bytes behind it
 *  are kept, EOF ends it).
 *
 *  Writes: output is only queued while the loop runs callbacks; a
 *  connection with fresh output goes on the gateway's dirty list, and one
 *  event (conn_flush), activated by the turn's first output and so queued
 *  behind the turn's I/O callbacks (gateway/main.c), writes every dirty
 *  connection directly once per loop turn. So every
 *  packet of a turn leaves in one writev, and EV_WRITE (an epoll_ctl to arm
 *  and another to disarm) is used only by a connection whose socket buffer
 *  is full (backlog), until it drains.
 */
#include "conn.h"
#include "session.h"
#include "fanout.h"
#include "upstream.h"
#include "metrics.h"
#include "ws.h"
#include "log.h"
#include "map.h"

#include <event2/event.h>
#include <event2/buffer.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct conn {
    gw_t *gw;                   //  Gateway context
    evutil_socket_t fd;         //  The socket (closed when the connection is freed)
    int state;                  //  CONN_*
    struct event *ev;           //  The socket's event: EV_READ, EV_WRITE while backlogged
    short ev_want;              //  Events ev is assigned and added with (0: not added)
    long ev_ms;                 //  Its timeout in ms (0: none)
    struct evbuffer *out;       //  Output not yet written
    char *in;                   //  Input read but not consumed yet (NULL when none)
    size_t in_len, in_cap;
    unsigned keep_alive : 1;    //  Current request allows another after it
    unsigned echo : 1;          //  WebSocket /echo endpoint (conformance mode)
    unsigned reaping : 1;       //  On the reap list: no more I/O
    unsigned backlog : 1;       //  Output waits for the socket: EV_WRITE is armed
    unsigned dirty : 1;         //  On the dirty list
    unsigned lingering : 1;     //  Closed: write side shut, reading and dropping
    unsigned reading : 1;       //  Inside its own request loop
    unsigned retrigger : 1;     //  Input is left after a reply: handle it next turn
    conn_t *dirty_prev, *dirty_next;    //  Dirty list: output to write at the end of the turn
    int64_t deadline_ms;        //  Monotonic: the request head (or the linger) must end by then
    session_t *sess;            //  Session carried (WS) or parked for (poll)
    ws_parser_t *ws;            //  Frame parser, in WebSocket mode
    conn_t *reap_next;          //  Reap list link
    conn_t *all_prev, *all_next;    //  Every connection (freed at shutdown)
    char *origin;               //  Origin of the current request, for CORS (NULL if none)
    char peer[64];              //  Peer address, for logs
    char ip[48];                //  Peer address without the port (per-IP limit)
};

/* Lingering close, the last step of a graceful one: our side is shut for
 * writing, and whatever the peer still sends is read and dropped until it
 * closes too (or CONN_LINGER_MS pass). Closing with unread input would make
 * the kernel answer with a reset, which can destroy the response (a 413, a
 * close frame with 1009) before the peer has read it. */
#define CONN_LINGER_MS 2000
#define CONN_FLUSH_MS 5000          /* a closing connection's output must move by then */
#define CONN_ORIGIN_MAX 256         /* longest Origin kept for CORS */
#define CONN_ECHO_MAX (32 << 20)    /* largest message on /echo (conformance) */
#define CONN_READ_MAX 65536         /* one read, into the shared scratch buffer */

/* Every read lands here first (one process is one single-threaded loop, and
 * nothing in it reads a socket while a read is being handled). */
static char s_scratch[CONN_READ_MAX];

static void s_io_cb(evutil_socket_t fd, short what, void *arg);

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Makes the socket's event match the connection's state: what it waits for
 * and its timeout. Changing the events costs epoll_ctl calls; changing only
 * the timeout costs none. restart: start the timeout again from now. */
static void s_arm(conn_t *c, int restart)
{
    short want;
    long ms;
    if (c->reaping) {
        want = 0;
        ms = 0;
    } else if (c->lingering) {
        want = EV_READ;
        ms = CONN_LINGER_MS;
    } else if (c->state == CONN_CLOSING) {
        /* flushing before the linger: nothing is read (a socket left readable
         * and unread would make every loop turn busy); only a backlog waits
         * for EV_WRITE, the others
         * are written by conn_flush at the end of this very turn. With the
         * epoll changelist, deleting here and adding again for the linger in
         * the same turn costs one epoll_ctl (MOD). */
        want = c->backlog ? EV_WRITE : 0;
        ms = c->backlog ? CONN_FLUSH_MS : 0;
    } else {
        want = EV_READ | (c->backlog ? EV_WRITE : 0);
        ms = c->state == CONN_HTTP ? c->gw->cfg.handshake_timeout_ms : 0;
    }
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    if (want != c->ev_want) {
        if (c->ev_want)
            event_del(c->ev);
        c->ev_want = want;
        c->ev_ms = ms;
        if (!want)
            return;
        event_assign(c->ev, c->gw->base, c->fd, want | EV_PERSIST, s_io_cb, c);
        event_add(c->ev, ms > 0 ? &tv : NULL);
        if (c->retrigger && (want & EV_READ))
            event_active(c->ev, EV_READ, 1);    /* the re-assignment dropped it */
        return;
    }
    if (!want)
        return;
    if (ms > 0 && (restart || ms != c->ev_ms))
        event_add(c->ev, &tv);  /* already added: only the timer moves */
    else if (ms == 0 && c->ev_ms > 0)
        event_remove_timer(c->ev);
    c->ev_ms = ms;
}

/* The HTTP phase has two clocks: the event's timeout catches a peer that
 * goes quiet, and deadline_ms (checked on every read) one that trickles a
 * byte at a time, which restarts the timeout each time (slowloris). */
static void s_set_http_timeout(conn_t *c, int on)
{
    c->deadline_ms = on ? s_now_ms() + c->gw->cfg.handshake_timeout_ms : 0;
    s_arm(c, on);
}

/* Fills c->peer ("ip:port") and c->ip. */
static void s_peer_names(conn_t *c, const struct sockaddr *sa, int salen)
{
    if (sa && sa->sa_family == AF_INET && salen >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, c->ip, sizeof c->ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", c->ip, ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->ip, sizeof c->ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", c->ip, ntohs(in6->sin6_port));
    } else {
        snprintf(c->ip, sizeof c->ip, "?");
        snprintf(c->peer, sizeof c->peer, "?");
    }
}

/* Adds delta (+1 / -1) to the connections counted for ip. Returns -1 (and
 * counts nothing) when +1 would pass --max-conn-per-ip. */
static int s_ip_count(gw_t *gw, const char *ip, int delta)
{
    if (gw->cfg.max_conn_per_ip <= 0)
        return 0;
    size_t len = strlen(ip);
    uintptr_t n = (uintptr_t)map_get(gw->per_ip, ip, len);
    if (delta > 0 && n >= (uintptr_t)gw->cfg.max_conn_per_ip)
        return -1;
    n = delta > 0 ? n + 1 : (n ? n - 1 : 0);
    if (n == 0)
        map_remove(gw->per_ip, ip, len);
    else if (map_put(gw->per_ip, ip, len, (void *)n) < 0)
        return delta > 0 ? -1 : 0;
    return 0;
}

conn_t *conn_new(gw_t *gw, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return NULL;
    }
    c->gw = gw;
    c->fd = fd;
    s_peer_names(c, sa, salen);
    if (s_ip_count(gw, c->ip, 1) < 0) {
        gw->stats.limit_conn_ip++;
        log_info("event=conn_refused reason=per_ip_limit ip=%s limit=%ld", c->ip, gw->cfg.max_conn_per_ip);
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    c->ev = event_new(gw->base, fd, EV_READ | EV_PERSIST, s_io_cb, c);
    c->out = evbuffer_new();
    if (!c->ev || !c->out) {
        if (c->ev)
            event_free(c->ev);
        if (c->out)
            evbuffer_free(c->out);
        s_ip_count(gw, c->ip, -1);
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    /* TCP_NODELAY comes from the listening socket (Linux copies it to
     * every accepted socket; gateway/main.c sets it): one call per
     * connection fewer. */
    s_set_http_timeout(c, 1);   /* adds the event (ev_want 0: not added yet) */
    gw->stats.connections_total++;
    gw->stats.connections_open++;
    c->all_next = gw->conns;
    if (gw->conns)
        gw->conns->all_prev = c;
    gw->conns = c;
    return c;
}

int conn_state(const conn_t *c) { return c->state; }
const char *conn_peer(const conn_t *c) { return c->peer; }
session_t *conn_session(const conn_t *c) { return c->sess; }
void conn_set_session(conn_t *c, session_t *s) { c->sess = s; }

/* Leaves the connection in CLOSING state, detached from its session. The
 * caller re-arms the event (s_arm: no more reading until the linger). */
static int s_begin_close(conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return 0;
    c->state = CONN_CLOSING;
    c->deadline_ms = 0;
    c->retrigger = 0;
    session_t *s = c->sess;
    c->sess = NULL;
    if (s)
        session_on_conn_closed(s, c);
    return 1;
}

/* ---- input buffer ------------------------------------------------------------ */

/* Drops the connection's input buffer: an idle connection holds none. */
static void s_in_free(conn_t *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

/* Makes room for `more` bytes after the input kept. -1 when out of memory. */
static int s_in_reserve(conn_t *c, size_t more)
{
    size_t need = c->in_len + more;
    if (need <= c->in_cap)
        return 0;
    size_t cap = c->in_cap * 2 > need ? c->in_cap * 2 : need;
    char *p = realloc(c->in, cap);
    if (!p)
        return -1;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Keeps data[0..len) as the unconsumed input; data may point into c->in. */
static int s_in_keep(conn_t *c, const char *data, size_t len)
{
    if (len == 0) {
        s_in_free(c);
        return 0;
    }
    if (c->in && data >= c->in && data < c->in + c->in_cap) {
        memmove(c->in, data, len);
        c->in_len = len;
        if (c->in_cap > 2 * CONN_READ_MAX && len < c->in_cap / 4) {
            char *p = realloc(c->in, len);  /* a large body was consumed */
            if (p) {
                c->in = p;
                c->in_cap = len;
            }
        }
        return 0;
    }
    c->in_len = 0;
    if (s_in_reserve(c, len) < 0)
        return -1;
    memcpy(c->in, data, len);
    c->in_len = len;
    return 0;
}

/* ---- dirty list ------------------------------------------------------------ */

static void s_dirty_unlink(conn_t *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->gw->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty_prev = c->dirty_next = NULL;
    c->dirty = 0;
}

/* New output was queued: write it at the end of this loop turn. */
static void s_mark_dirty(conn_t *c)
{
    c->gw->turn_out++;
    if (c->dirty || c->reaping || c->backlog)
        return;                 /* a backlogged connection's EV_WRITE is armed */
    c->dirty = 1;
    c->dirty_prev = NULL;
    c->dirty_next = c->gw->dirty;
    if (c->gw->dirty)
        c->gw->dirty->dirty_prev = c;
    c->gw->dirty = c;
    event_active(c->gw->flush_ev, EV_TIMEOUT, 0);
}

static void s_linger(conn_t *c);
static int s_over_limit(conn_t *c);

/* Arms EV_WRITE until the output drains (s_write_ready). */
static void s_enter_backlog(conn_t *c)
{
    c->backlog = 1;
    s_arm(c, 0);
}

/* Writes what is queued (one writev). 0, or -1 after aborting on an error. */
static int s_write(conn_t *c)
{
    errno = 0;
    int n = evbuffer_write(c->out, c->fd);
    int err = errno;
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        log_debug("event=conn_write_error peer=%s", c->peer);
        conn_abort(c);
        return -1;
    }
    return 0;
}

void conn_flush(gw_t *gw)
{
    gw->turn_out = 0;
    while (gw->dirty) {
        conn_t *c = gw->dirty;
        s_dirty_unlink(c);
        if (c->reaping || c->backlog)
            continue;
        if (evbuffer_get_length(c->out) > 0 && s_write(c) < 0)
            continue;
        if (evbuffer_get_length(c->out) > 0) {
            if (c->state != CONN_CLOSING && s_over_limit(c) < 0)
                continue;
            s_enter_backlog(c);
        } else if (c->state == CONN_CLOSING) {
            s_linger(c);
        }
    }
}

/* Stops all I/O and queues the connection for freeing. */
static void s_reap_now(conn_t *c)
{
    if (c->reaping)
        return;
    c->reaping = 1;
    s_dirty_unlink(c);
    s_arm(c, 0);                /* deletes the event: no more callbacks */
    c->reap_next = c->gw->reap;
    c->gw->reap = c;
    event_active(c->gw->reap_ev, EV_TIMEOUT, 0);
}

void conn_abort(conn_t *c)
{
    s_begin_close(c);
    s_reap_now(c);
}

static void s_linger(conn_t *c)
{
    if (c->lingering || c->reaping)
        return;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        s_reap_now(c);
        return;
    }
    c->lingering = 1;
    c->backlog = 0;
    c->deadline_ms = s_now_ms() + CONN_LINGER_MS;
    s_arm(c, 1);
}

/* Reads and drops what a lingering peer still sends; EOF, an error, the
 * timeout or the deadline end it. */
static void s_linger_io(conn_t *c, short what)
{
    if (what & EV_READ) {
        ssize_t n = recv(c->fd, s_scratch, sizeof s_scratch, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0 && s_now_ms() < c->deadline_ms)
            return;             /* a peer trickling bytes does not keep it */
    }
    s_reap_now(c);
}

void conn_close(conn_t *c)
{
    if (!s_begin_close(c) || c->reaping)
        return;
    if (evbuffer_get_length(c->out) == 0) {
        s_linger(c);
        return;
    }
    /* conn_flush writes it at the end of this turn, then lingers, or arms
     * EV_WRITE with CONN_FLUSH_MS to give up after */
    s_arm(c, 1);
    s_mark_dirty(c);
}

void conn_close_idle(gw_t *gw)
{
    for (conn_t *c = gw->conns; c; c = c->all_next)
        if (c->state == CONN_HTTP && !c->reaping && c->in_len == 0)
            conn_close(c);
}

void conn_free_all(gw_t *gw)
{
    for (conn_t *c = gw->conns; c; c = c->all_next) {
        if (c->state != CONN_CLOSING)
            s_begin_close(c);
        s_reap_now(c);
    }
    conn_reap(gw);
}

void conn_reap(gw_t *gw)
{
    while (gw->reap) {
        conn_t *c = gw->reap;
        gw->reap = c->reap_next;
        event_free(c->ev);
        evutil_closesocket(c->fd);
        evbuffer_free(c->out);      /* releases the shared packets it references */
        free(c->in);
        free(c->origin);
        if (c->ws) {
            ws_parser_free(c->ws);
            free(c->ws);
        }
        gw->stats.connections_open--;
        s_ip_count(gw, c->ip, -1);
        if (c->all_prev)
            c->all_prev->all_next = c->all_next;
        else
            gw->conns = c->all_next;
        if (c->all_next)
            c->all_next->all_prev = c->all_prev;
        free(c);
    }
}

/* The socket took output again (it was backlogged): linger if closing and
 * drained, else go back to direct writes at the end of each turn. */
static void s_write_ready(conn_t *c)
{
    if (evbuffer_get_length(c->out) > 0 && s_write(c) < 0)
        return;
    if (evbuffer_get_length(c->out) > 0)
        return;
    if (c->state == CONN_CLOSING) {
        s_linger(c);
        return;
    }
    c->backlog = 0;
    s_arm(c, 0);
}

static void s_read(conn_t *c);

static void s_io_cb(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    (void)fd;
    if (c->reaping)
        return;
    if (c->lingering) {
        s_linger_io(c, what);
        return;
    }
    if (what & EV_TIMEOUT) {
        log_debug("event=conn_timeout peer=%s", c->peer);
        conn_abort(c);          /* nothing more can be delivered */
        return;
    }
    if (what & EV_WRITE) {
        s_write_ready(c);
        if (c->reaping || c->lingering)
            return;
    }
    if ((what & EV_READ) && c->state != CONN_CLOSING)
        s_read(c);
}

/* ---- output -------------------------------------------------------------- */

/* Drops the connection when its queued output passes the limit. Only a
 * backlogged connection (its socket buffer was full at the last write) is
 * judged while output is queued; the others are judged by conn_flush after
 * the turn's write, so a burst to a client that reads is not mistaken for a
 * slow consumer. */
static int s_check_output(conn_t *c)
{
    if (!c->backlog)
        return 0;
    return s_over_limit(c);
}

static int s_over_limit(conn_t *c)
{
    size_t queued = evbuffer_get_length(c->out);
    size_t limit = (size_t)c->gw->cfg.max_output;
    if (c->echo && limit < 2 * (size_t)CONN_ECHO_MAX)
        limit = 2 * (size_t)CONN_ECHO_MAX;     /* room for echoing one message */
    if (queued > limit) {
        c->gw->stats.slow_consumer_drops++;
        log_warn("event=slow_consumer peer=%s queued=%zu limit=%ld", c->peer, queued,
                 c->gw->cfg.max_output);
        conn_abort(c);
        return -1;
    }
    return 0;
}

static const char *s_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The CORS headers for the current request, if configured. */
static void s_cors(conn_t *c, struct evbuffer *out)
{
    const char *allow = c->gw->cfg.cors_origin;
    if (!allow || !*allow)
        return;
    if (strcmp(allow, "*") == 0 && !c->origin) {
        evbuffer_add_printf(out, "Access-Control-Allow-Origin: *\r\n");
        return;
    }
    if (!c->origin)
        return;
    if (session_origin_allowed(c->gw, c->origin, strlen(c->origin)))
        evbuffer_add_printf(out, "Access-Control-Allow-Origin: %s\r\n"
                                 "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
                            c->origin);
}

void conn_http_reply(conn_t *c, int status, const char *ctype, const char *extra,
                     const void *body, size_t len)
{
    if (c->state == CONN_CLOSING)
        return;
    struct evbuffer *out = c->out;
    if (c->gw->draining)
        c->keep_alive = 0;      /* the last answer on this connection */
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, s_status_text(status));
    if (ctype)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    s_cors(c, out);
    if (extra)
        evbuffer_add(out, extra, strlen(extra));
    if (!c->keep_alive)
        evbuffer_add_printf(out, "Connection: close\r\n");
    evbuffer_add(out, "\r\n", 2);
    if (len)
        evbuffer_add(out, body, len);
    c->gw->stats.bytes_out += len;
    s_mark_dirty(c);
    if (c->state == CONN_POLL) {
        c->state = CONN_HTTP;
        s_set_http_timeout(c, 1);
    }
    if (!c->keep_alive) {
        conn_close(c);
        return;
    }
    /* a pipelined request may already be waiting (read while a poll was
     * parked): handle it next turn, not inside this reply. Inside its own
     * request loop the connection goes on with it anyway. */
    if (c->in_len > 0 && !c->reading && !c->retrigger) {
        c->retrigger = 1;
        event_active(c->ev, EV_READ, 1);
    }
}

void conn_http_eio_error(conn_t *c, int status, int code, const char *message)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", code, message);
    conn_http_reply(c, status, "application/json", NULL, body, (size_t)n);
}

void conn_park(conn_t *c)
{
    c->state = CONN_POLL;
    s_set_http_timeout(c, 0);
}

int conn_ws_send(conn_t *c, int opcode, const void *data, size_t len)
{
    if (c->state != CONN_WS)
        return -1;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, 1, opcode, len);
    struct evbuffer *out = c->out;
    evbuffer_add(out, hdr, hl);
    evbuffer_add(out, data, len);
    c->gw->stats.bytes_out += hl + len;
    s_mark_dirty(c);
    return s_check_output(c);
}

/* Shared packets up to this size are copied into the connection's output
 * rather than referenced: a reference costs an evbuffer chain (a malloc and
 * an iovec in the writev) per packet, a copy lands in the free space of the
 * last chain. */
#define CONN_COPY_MAX 512

int conn_ws_send_pkt(conn_t *c, pkt_t *p)
{
    if (c->state != CONN_WS)
        return -1;
    if (p->len <= CONN_COPY_MAX) {
        if (evbuffer_add(c->out, p->data, p->len) < 0)
            return -1;
    } else {
        pkt_ref(p);
        if (evbuffer_add_reference(c->out, p->data, p->len, pkt_release_cb, p) < 0) {
            pkt_release(p);
            return -1;
        }
    }
    c->gw->stats.bytes_out += p->len;
    s_mark_dirty(c);
    return s_check_output(c);
}

void conn_ws_close(conn_t *c, int code, const char *reason)
{
    if (c->state == CONN_WS) {
        uint8_t payload[125];
        size_t n = ws_build_close_payload(payload, code, reason);
        conn_ws_send(c, WS_OP_CLOSE, payload, n);
    }
    conn_close(c);
}

/* ---- WebSocket ----------------------------------------------------------- */

int conn_ws_accept(conn_t *c, const http_request_t *req)
{
    const http_header_t *key = http_find_header(req, "Sec-WebSocket-Key");
    const http_header_t *ver = http_find_header(req, "Sec-WebSocket-Version");
    char accept[29];
    if (!key || !ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0 ||
        ws_accept_key(key->value, key->value_len, accept) < 0) {
        c->keep_alive = 0;
        conn_http_eio_error(c, 400, 3, "Bad request");
        return -1;
    }
    struct evbuffer *out = c->out;
    evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    s_mark_dirty(c);
    c->ws = malloc(sizeof *c->ws);
    if (!c->ws) {
        conn_abort(c);
        return -1;
    }
    size_t max = c->gw->cfg.max_payload > 0 ? (size_t)c->gw->cfg.max_payload : 1000000;
    ws_parser_init(c->ws, max, 1);
    c->state = CONN_WS;
    free(c->origin);            /* no HTTP answer follows on this connection */
    c->origin = NULL;
    s_set_http_timeout(c, 0);
    c->gw->stats.ws_upgrades++;
    return 0;
}

static void s_ws_event(conn_t *c, const ws_event_t *ev)
{
    switch (ev->opcode) {
    case WS_OP_PING:
        conn_ws_send(c, WS_OP_PONG, ev->data, ev->len);
        break;
    case WS_OP_PONG:
        break;
    case WS_OP_CLOSE: {
        int code = ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code;
        conn_ws_close(c, code, "");
        break;
    }
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->echo)
            conn_ws_send(c, ev->opcode, ev->data, ev->len);
        else if (c->sess)
            session_on_ws_message(c->sess, c, ev->opcode == WS_OP_BINARY, ev->data, ev->len);
        break;
    }
}


/* Feeds data[0..len) to the frame parser, handling each event as it comes,
 * until it is all consumed or the connection leaves WebSocket mode. */
static void s_ws_input(conn_t *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (c->state == CONN_WS) {
        ws_event_t ev;
        ssize_t r = ws_parser_feed(c->ws, data + off, len - off, &ev);
        if (r < 0) {
            int code = ws_err_close_code((int)r);
            c->gw->stats.protocol_errors++;
            if (code == WS_CLOSE_TOO_BIG)
                c->gw->stats.limit_payload++;
            log_info("event=ws_protocol_error peer=%s close_code=%d", c->peer, code);
            conn_ws_close(c, code, code == WS_CLOSE_TOO_BIG ? "message too big"
                                 : code == WS_CLOSE_INVALID_DATA ? "invalid UTF-8"
                                 : "protocol error");
            return;             /* the rest is dropped (the linger reads on) */
        }
        off += (size_t)r;
        if (ev.opcode)
            s_ws_event(c, &ev);
        else if (r == 0 || off == len)
            break;
    }
    /* everything read is handled: an idle connection keeps no message buffer */
    if (c->ws)
        ws_parser_trim(c->ws);
}
/* ---- HTTP ---------------------------------------------------------------- */

static int s_method(const http_request_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

static const char *s_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" }, { ".json", "application/json" },
        { ".svg", "image/svg+xml" }, { ".png", "image/png" }, { ".ico", "image/x-icon" },
        { ".map", "application/json" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Serves a file of --static-dir: "/" is index.html; only [A-Za-z0-9._-/]
 * paths without "..", at most 1 MiB. */
static void s_static(conn_t *c, const http_request_t *req)
{
    char rel[256];
    if (req->path_len == 0 || req->path_len >= sizeof rel - 16 || req->path[0] != '/') {
        conn_http_reply(c, 404, "text/plain", NULL, "not found\n", 10);
        return;
    }
    memcpy(rel, req->path, req->path_len);
    rel[req->path_len] = 0;
    if (strcmp(rel, "/") == 0)
        strcpy(rel, "/index.html");
    for (const char *p = rel; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-' || ch == '/';
        if (!ok || (ch == '.' && p[1] == '.')) {
            conn_http_reply(c, 404, "text/plain", NULL, "not found\n", 10);
            return;
        }
    }
    char full[1024];
    snprintf(full, sizeof full, "%s%s", c->gw->cfg.static_dir, rel);
    struct stat st;
    FILE *f = stat(full, &st) == 0 && S_ISREG(st.st_mode) ? fopen(full, "rb") : NULL;
    char *buf = f ? malloc(1 << 20) : NULL;
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int too_big = buf && n == (1 << 20) && fgetc(f) != EOF;
    if (f)
        fclose(f);
    if (!buf || too_big) {
        free(buf);
        conn_http_reply(c, 404, "text/plain", NULL, "not found\n", 10);
        return;
    }
    conn_http_reply(c, 200, s_content_type(rel), "Cache-Control: no-cache\r\n", buf,
                    s_method(req, "HEAD") ? 0 : n);
    free(buf);
}

static void s_dispatch(conn_t *c, const http_request_t *req, const char *body, size_t blen)
{
    const http_header_t *origin = http_find_header(req, "Origin");
    free(c->origin);
    c->origin = NULL;
    /* kept only while the request is answered (a parked poll answers later);
     * an origin this long is allowed by no list, so it counts as none */
    if (origin && origin->value_len < CONN_ORIGIN_MAX)
        c->origin = strndup(origin->value, origin->value_len);
    const char *p = req->path;
    size_t n = req->path_len;
#define PATH_IS(lit) (n == sizeof(lit) - 1 && memcmp(p, lit, n) == 0)
    if (PATH_IS("/socket.io/") || PATH_IS("/socket.io") ||
        (c->gw->cfg.conformance && (PATH_IS("/engine.io/") || PATH_IS("/engine.io")))) {
        session_http(c->gw, c, req, body, blen, p[1] == 'e');
        return;
    }
    if (PATH_IS("/healthz")) {
        conn_http_reply(c, 200, "text/plain", NULL, "ok\n", 3);
        return;
    }
    if (PATH_IS("/readyz")) {
        int ready = fanout_ready(c->gw->fanout) && up_ready(c->gw->upstream);
        conn_http_reply(c, ready ? 200 : 503, "text/plain", NULL, ready ? "ready\n" : "not ready\n",
                        ready ? 6 : 10);
        return;
    }
    if (PATH_IS("/metrics")) {
        metrics_serve(c->gw, c);
        return;
    }
    if (c->gw->cfg.conformance && PATH_IS("/echo")) {
        const http_header_t *up = http_find_header(req, "Upgrade");
        if (!up || !http_header_has_token(up, "websocket")) {
            conn_http_reply(c, 400, "text/plain", NULL, "websocket only\n", 15);
            return;
        }
        if (conn_ws_accept(c, req) == 0) {
            /* a test endpoint: RFC 6455 suites send messages of up to 16 MiB
             * (Autobahn 9.1.6), above the Engine.IO maxPayload */
            c->echo = 1;
            ws_parser_init(c->ws, CONN_ECHO_MAX, 1);
        }
        return;
    }
#undef PATH_IS
    if (c->gw->cfg.static_dir && (s_method(req, "GET") || s_method(req, "HEAD"))) {
        s_static(c, req);
        return;
    }
    conn_http_reply(c, 404, "text/plain", NULL, "not found\n", 10);
}

/* A request that is still incomplete at its deadline: 408 and close.
 * Returns 1 if so (the input is dropped). */
static int s_check_deadline(conn_t *c)
{
    if (!c->deadline_ms || s_now_ms() < c->deadline_ms)
        return 0;
    c->gw->stats.limit_handshake_timeout++;
    log_info("event=request_timeout peer=%s limit_ms=%ld", c->peer, c->gw->cfg.handshake_timeout_ms);
    c->keep_alive = 0;
    conn_http_reply(c, 408, "text/plain", NULL, "request timeout\n", 16);
    return 1;
}

/* The request loop over data[0..len): parses heads (the whole head again
 * from its start when more bytes came: heads are small), waits for
 * Content-Length body bytes, dispatches. Returns how many bytes it consumed;
 * the rest is an incomplete request, or follows a request that left HTTP
 * mode (WebSocket, parked poll, closing). */
static size_t s_http_input(conn_t *c, const char *data, size_t len)
{
    size_t max_head = (size_t)c->gw->cfg.max_head;
    size_t off = 0;
    while (c->state == CONN_HTTP && off < len) {
        const char *buf = data + off;
        size_t avail = len - off;
        size_t look = avail < max_head + 1 ? avail : max_head + 1;
        http_request_t req;
        int hl = http_parse_request(buf, look, max_head, &req);
        if (hl == HTTP_INCOMPLETE && look <= max_head)
            return s_check_deadline(c) ? len : off;
        if (hl < 0) {
            c->gw->stats.protocol_errors++;
            int too_large = hl == HTTP_TOO_LARGE || hl == HTTP_INCOMPLETE;
            log_info("event=http_bad_request peer=%s reason=%s", c->peer,
                     too_large ? "head_too_large" : "malformed");
            c->keep_alive = 0;
            if (too_large)
                c->gw->stats.limit_head++;
            if (too_large)
                conn_http_reply(c, 431, "text/plain", NULL, "request head too large\n", 23);
            else
                conn_http_reply(c, 400, "text/plain", NULL, "bad request\n", 12);
            return len;
        }
        size_t blen = 0;
        int cl = http_content_length(&req, &blen);
        if (cl == -2 || http_find_header(&req, "Transfer-Encoding")) {
            c->keep_alive = 0;
            conn_http_reply(c, cl == -2 ? 400 : 411, "text/plain", NULL, "bad body length\n", 16);
            return len;
        }
        if (blen > (size_t)c->gw->cfg.max_payload) {
            c->gw->stats.protocol_errors++;
            c->gw->stats.limit_payload++;
            c->keep_alive = 0;
            /* the Engine.IO session the request was for is closed as well */
            session_http_too_large(c->gw, c, &req);
            return len;
        }
        if (avail < (size_t)hl + blen)
            return s_check_deadline(c) ? len : off;
        const http_header_t *conn_h = http_find_header(&req, "Connection");
        c->keep_alive = req.minor_version >= 1
            ? !(conn_h && http_header_has_token(conn_h, "close"))
            : (conn_h && http_header_has_token(conn_h, "keep-alive"));
        s_dispatch(c, &req, buf + hl, blen);
        off += (size_t)hl + blen;
        if (c->state == CONN_HTTP)
            c->deadline_ms = s_now_ms() + c->gw->cfg.handshake_timeout_ms;
    }
    return off;
}

/* Handles fresh[0..n) (just read; may be empty) after the input kept from
 * earlier reads, and keeps what is left unconsumed. */
static void s_input(conn_t *c, const char *fresh, size_t n)
{
    const char *data = fresh;
    size_t len = n;
    if (c->in_len > 0) {
        if (n > 0) {
            if (s_in_reserve(c, n) < 0) {
                log_warn("event=conn_no_memory peer=%s", c->peer);
                conn_abort(c);
                return;
            }
            memcpy(c->in + c->in_len, fresh, n);
            c->in_len += n;
        }
        data = c->in;
        len = c->in_len;
    }
    size_t used = 0;
    c->reading = 1;
    if (c->state == CONN_HTTP)
        used = s_http_input(c, data, len);
    if (c->state == CONN_WS && used < len) {
        s_ws_input(c, (const uint8_t *)data + used, len - used);
        used = len;
    }
    c->reading = 0;
    if (c->reaping || c->state == CONN_CLOSING)
        used = len;             /* nobody will read it: dropped */
    /* CONN_POLL: a client does not pipeline behind a parked GET; what it
     * sends waits, up to a whole request */
    if (c->state == CONN_POLL &&
        len - used > (size_t)c->gw->cfg.max_head + (size_t)c->gw->cfg.max_payload) {
        c->gw->stats.protocol_errors++;
        log_info("event=http_bad_request peer=%s reason=input_behind_parked_poll", c->peer);
        s_in_free(c);
        conn_abort(c);
        return;
    }
    if (s_in_keep(c, data + used, len - used) < 0) {
        log_warn("event=conn_no_memory peer=%s", c->peer);
        s_in_free(c);
        conn_abort(c);
    }
}

/* The socket is readable: one recv into the scratch buffer (level-triggered:
 * more waiting is reported again next turn). */
static void s_read(conn_t *c)
{
    if (c->retrigger) {
        c->retrigger = 0;       /* our own event_active: the kept input first */
        if (c->in_len > 0) {
            s_input(c, NULL, 0);
            return;
        }
    }
    ssize_t n = recv(c->fd, s_scratch, sizeof s_scratch, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        log_debug("event=conn_error peer=%s", c->peer);
        conn_abort(c);
        return;
    }
    if (n == 0) {
        conn_abort(c);          /* EOF: nothing more can be delivered */
        return;
    }
    s_input(c, s_scratch, (size_t)n);
}
