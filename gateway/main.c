/*  belfry-gateway - holds the clients' Socket.IO connections
 *
 *  Reads its settings (flags and BELFRY_* variables), builds the gateway
 *  context, listens, connects the fan-out to the brokers and runs one libevent
 *  loop until SIGTERM or SIGINT, which drain it: stop accepting, close every
 *  session (clients reconnect elsewhere), exit when the connections are gone
 *  or at --drain-timeout-ms. Exit codes: 0 clean stop, 1 runtime failure,
 *  2 bad settings.
 */
#include "gw.h"
#include "conn.h"
#include "session.h"
#include "rooms.h"
#include "fanout.h"
#include "upstream.h"
#include "cfg.h"
#include "log.h"
#include "jwt.h"
#include "map.h"
#include "bus.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <zmq.h>

static void s_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_t *gw = arg;
    (void)fd;
    (void)what;
    session_reap(gw);
    conn_reap(gw);
}

static void s_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_flush_polls(arg);
    conn_flush(arg);
}

static void s_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
    gw_t *gw = arg;
    (void)l;
    if (gw->draining ||
        (gw->cfg.max_connections > 0 && gw->stats.connections_open >= (uint64_t)gw->cfg.max_connections)) {
        if (!gw->draining)
            gw->stats.limit_conn_total++;
        evutil_closesocket(fd);
        return;
    }
    conn_new(gw, fd, sa, salen);     /* accept4 made it non-blocking */
}

static void s_accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: keep running, the listener retries on the next event */
    log_warn("event=accept_error reason=\"%s\"", evutil_socket_error_to_string(err));
}

static void s_drain_check(evutil_socket_t fd, short what, void *arg)
{
    gw_t *gw = arg;
    (void)fd;
    (void)what;
    if (gw->stats.connections_open == 0)
        event_base_loopexit(gw->base, NULL);
}

static struct event *s_drain_tick;

/* Memory a burst of handshakes (or closes) freed is kept by malloc (see the
 * M_TRIM_THRESHOLD below, which spares the brk churn while connections come
 * and go); once the connection count has been still for a whole tick after
 * it moved, it is handed back with malloc_trim, so RSS follows the
 * connections held rather than the burst's peak. */
static struct {
    struct event *ev;
    uint64_t total, open;       /* connections_total/open at the last tick */
    int moved;                  /* they changed since the last trim */
} s_trim;

static void s_trim_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_t *gw = arg;
    (void)fd;
    (void)what;
    if (gw->stats.connections_total != s_trim.total || gw->stats.connections_open != s_trim.open) {
        s_trim.total = gw->stats.connections_total;
        s_trim.open = gw->stats.connections_open;
        s_trim.moved = 1;
        return;
    }
    if (s_trim.moved) {
        s_trim.moved = 0;
        malloc_trim(0);
    }
}

/* SIGHUP: reopen the log file (after a rotation). */
static void s_hup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_rotate();
}

static void s_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    gw_t *gw = arg;
    (void)what;
    if (gw->draining) {
        log_info("event=stop_now signal=%d", (int)sig);
        event_base_loopexit(gw->base, NULL);
        return;
    }
    gw->draining = 1;
    log_info("event=draining signal=%d timeout_ms=%ld", (int)sig, gw->cfg.drain_timeout_ms);
    if (gw->listener)
        evconnlistener_disable(gw->listener);
    session_close_all(gw, "server shutting down");
    conn_close_idle(gw);
    struct timeval deadline = { gw->cfg.drain_timeout_ms / 1000, (gw->cfg.drain_timeout_ms % 1000) * 1000 };
    event_base_loopexit(gw->base, &deadline);
    struct timeval tick = { 0, 50000 };
    s_drain_tick = event_new(gw->base, -1, EV_PERSIST, s_drain_check, gw);
    if (s_drain_tick)
        event_add(s_drain_tick, &tick);
}

static char *s_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    static gw_t gw;
    char *log_level = NULL;
    char *log_file = NULL;
    int log_json = 0;
    gw_config_t *c = &gw.cfg;
    const cfg_opt_t opts[] = {
        { "listen", "BELFRY_LISTEN", CFG_STR, &c->listen, "127.0.0.1:8080",
          "address:port to accept clients on", 0, 0 },
        { "broker-pub", "BELFRY_BROKER_PUB", CFG_STR, &c->broker_pub, "tcp://127.0.0.1:5555",
          "brokers' fan-out endpoints, comma-separated, one per broker", 0, 0 },
        { "fanout", "BELFRY_FANOUT", CFG_STR, &c->fanout, "zmq",
          "fan-out transport from the brokers: zmq (their --broker-pub endpoints), redis or nats", 0, 0 },
        { "redis-url", "BELFRY_REDIS_URL", CFG_STR, &c->redis_url, "redis://127.0.0.1:6379",
          "with --fanout redis: the Redis server, redis://[:password@]host[:port]", 0, 0 },
        { "nats-url", "BELFRY_NATS_URL", CFG_STR, &c->nats_url, "nats://127.0.0.1:4222",
          "with --fanout nats: the NATS server(s), nats://host:port, comma-separated", 0, 0 },
        { "broker-rpc", "BELFRY_BROKER_RPC", CFG_STR, &c->broker_rpc, "tcp://127.0.0.1:5556",
          "brokers' RPC endpoints, comma-separated, one per broker", 0, 0 },
        { "jwt-secret", "BELFRY_JWT_SECRET", CFG_STR, &c->jwt_secret, NULL,
          "HS256 secret for client tokens", 0, 0 },
        { "jwt-public-key", "BELFRY_JWT_PUBLIC_KEY", CFG_STR, &c->jwt_public_key_file, NULL,
          "file with an RSA public key (PEM) for RS256 client tokens", 0, 0 },
        { "jwt-audience", "BELFRY_JWT_AUDIENCE", CFG_STR, &c->jwt_audience, NULL,
          "required token audience (aud)", 0, 0 },
        { "jwt-issuer", "BELFRY_JWT_ISSUER", CFG_STR, &c->jwt_issuer, NULL,
          "required token issuer (iss)", 0, 0 },
        { "insecure-user-param", "BELFRY_INSECURE_USER_PARAM", CFG_BOOL, &c->insecure_user_param,
          "0", "DEVELOPMENT ONLY: accept an unauthenticated ?user= parameter", 0, 0 },
        { "conformance", "BELFRY_CONFORMANCE", CFG_BOOL, &c->conformance, "0",
          "behave like the Engine.IO/Socket.IO test-suite server (/engine.io/, /socket.io/, /echo)", 0, 0 },
        { "ping-interval-ms", "BELFRY_PING_INTERVAL_MS", CFG_INT, &c->ping_interval_ms, "25000",
          "Engine.IO pingInterval", 10, 3600000 },
        { "ping-timeout-ms", "BELFRY_PING_TIMEOUT_MS", CFG_INT, &c->ping_timeout_ms, "20000",
          "Engine.IO pingTimeout", 10, 3600000 },
        { "max-payload", "BELFRY_MAX_PAYLOAD", CFG_INT, &c->max_payload, "1000000",
          "Engine.IO maxPayload: largest message or POST body in bytes", 1024, 100000000 },
        { "connect-timeout-ms", "BELFRY_CONNECT_TIMEOUT_MS", CFG_INT, &c->connect_timeout_ms,
          "45000", "close a session that connects no namespace within this time", 100, 3600000 },
        { "max-connections", "BELFRY_MAX_CONNECTIONS", CFG_INT, &c->max_connections, "100000",
          "connections held at most (0: no limit)", 0, 10000000 },
        { "max-output", "BELFRY_MAX_OUTPUT", CFG_INT, &c->max_output, "4194304",
          "bytes queued to one client before it is disconnected as too slow", 4096, 1L << 34 },
        { "max-head", "BELFRY_MAX_HEAD", CFG_INT, &c->max_head, "16384",
          "largest HTTP request head in bytes", 512, 1048576 },
        { "handshake-timeout-ms", "BELFRY_HANDSHAKE_TIMEOUT_MS", CFG_INT, &c->handshake_timeout_ms,
          "10000", "time allowed for an HTTP request to arrive", 100, 3600000 },
        { "namespaces", "BELFRY_NAMESPACES", CFG_STR, &c->namespaces, "*",
          "Socket.IO namespaces accepted, comma-separated, or * for any", 0, 0 },
        { "cors-origin", "BELFRY_CORS_ORIGIN", CFG_STR, &c->cors_origin, NULL,
          "allowed Origins for CORS and WebSocket, comma-separated, or *; unset: no CORS headers", 0, 0 },
        { "drain-timeout-ms", "BELFRY_DRAIN_TIMEOUT_MS", CFG_INT, &c->drain_timeout_ms, "10000",
          "on SIGTERM, exit at the latest after this long", 0, 3600000 },
        { "recovery", "BELFRY_RECOVERY", CFG_BOOL, &c->recovery, "1",
          "connection-state recovery: offsets on events, pid on connect", 0, 0 },
        { "resync-interval-ms", "BELFRY_RESYNC_INTERVAL_MS", CFG_INT, &c->resync_interval_ms, "5000",
          "how often every room's position is checked with the broker", 100, 3600000 },
        { "rpc-timeout-ms", "BELFRY_RPC_TIMEOUT_MS", CFG_INT, &c->rpc_timeout_ms, "5000",
          "time allowed for a broker to answer a request", 100, 600000 },
        { "sub-hwm", "BELFRY_SUB_HWM", CFG_INT, &c->sub_hwm, "1000000",
          "fan-out receive high-water mark in messages (drops beyond it are repaired by replay)",
          1, 100000000 },
        { "max-conn-per-ip", "BELFRY_MAX_CONN_PER_IP", CFG_INT, &c->max_conn_per_ip, "0",
          "connections accepted from one address (0: no limit)", 0, 10000000 },
        { "max-rooms", "BELFRY_MAX_ROOMS", CFG_INT, &c->max_rooms, "1024",
          "rooms one socket may be in, counting its own user_<id> and all", 2, 1000000 },
        { "events-per-sec", "BELFRY_EVENTS_PER_SEC", CFG_INT, &c->events_per_sec, "100",
          "client events per second per socket (bursts of twice that); beyond: error ack", 1, 1000000 },
        { "max-inflight", "BELFRY_MAX_INFLIGHT", CFG_INT, &c->max_inflight, "32",
          "broker requests in flight per socket; beyond: error ack", 1, 100000 },
        { "static-dir", "BELFRY_STATIC_DIR", CFG_STR, &c->static_dir, NULL,
          "serve the files of this folder at / (e.g. the demo page); unset: none", 0, 0 },
        { "log-level", "BELFRY_LOG_LEVEL", CFG_STR, &log_level, "info",
          "debug, info, warn or error", 0, 0 },
        { "log-json", "BELFRY_LOG_JSON", CFG_BOOL, &log_json, "0", "log one JSON object per line", 0, 0 },
        { "log-file", "BELFRY_LOG_FILE", CFG_STR, &log_file, NULL,
          "append the log to this file (reopened on SIGHUP, for log rotation); unset: stderr", 0, 0 },
    };
    int rc = cfg_parse(opts, sizeof opts / sizeof opts[0], argc, argv, "belfry-gateway",
                       "Belfry gateway: Socket.IO (Engine.IO v4, Socket.IO v5) for the clients.");
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_init("gateway");
    log_set_json(log_json);
    log_level_t lvl;
    if (log_parse_level(log_level, &lvl) < 0) {
        fprintf(stderr, "belfry-gateway: --log-level: \"%s\" is not debug, info, warn or error\n",
                log_level);
        return 2;
    }
    log_set_level(lvl);
    if (log_file && log_set_file(log_file) < 0) {
        fprintf(stderr, "belfry-gateway: --log-file: cannot open %s: %s\n", log_file, strerror(errno));
        return 2;
    }
    if (c->conformance) {
        c->ping_interval_ms = 300;
        c->ping_timeout_ms = 200;
        c->max_payload = 1000000;
        c->connect_timeout_ms = 1000;
        c->cors_origin = "*";
        c->recovery = 0;
        log_warn("event=conformance_mode note=\"test-suite behaviour, no authentication\"");
    }
    if (c->insecure_user_param)
        log_warn("event=INSECURE note=\"--insecure-user-param is on: anyone can claim any user id; "
                 "never use this in production\"");
    signal(SIGPIPE, SIG_IGN);
    /* Keep freed memory instead of returning it to the kernel at every free
     * (brk churn under connection turnover); RSS is what the peak needed. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 1 << 20);

    gw.jwt = jwt_verifier_new();
    if (!gw.jwt)
        return 1;
    int have_key = 0;
    if (c->jwt_secret && *c->jwt_secret) {
        jwt_verifier_set_hs256(gw.jwt, c->jwt_secret, strlen(c->jwt_secret));
        have_key = 1;
    }
    if (c->jwt_public_key_file) {
        size_t len;
        char *pem = s_read_file(c->jwt_public_key_file, &len);
        if (!pem || jwt_verifier_set_rs256_pem(gw.jwt, pem, len) < 0) {
            fprintf(stderr, "belfry-gateway: --jwt-public-key: cannot read an RSA public key from %s\n",
                    c->jwt_public_key_file);
            free(pem);
            return 2;
        }
        free(pem);
        have_key = 1;
    }
    if (c->jwt_audience)
        jwt_verifier_set_audience(gw.jwt, c->jwt_audience);
    if (c->jwt_issuer)
        jwt_verifier_set_issuer(gw.jwt, c->jwt_issuer);
    if (!have_key && !c->insecure_user_param && !c->conformance) {
        fprintf(stderr, "belfry-gateway: no way to authenticate clients: set --jwt-secret "
                        "(BELFRY_JWT_SECRET) or --jwt-public-key (BELFRY_JWT_PUBLIC_KEY)\n");
        return 2;
    }

    bus_kind_t fanout_kind;
    if (bus_kind_parse(c->fanout, &fanout_kind) < 0) {
        fprintf(stderr, "belfry-gateway: --fanout: \"%s\" is not zmq, redis or nats\n", c->fanout);
        return 2;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (evutil_parse_sockaddr_port(c->listen, (struct sockaddr *)&ss, &sslen) < 0) {
        fprintf(stderr, "belfry-gateway: --listen: \"%s\" is not address:port\n", c->listen);
        return 2;
    }
    /* The epoll changelist folds the interest changes of one loop turn (a
     * write armed and disarmed again) into at most one epoll_ctl per fd. */
    struct event_config *ecfg = event_config_new();
    if (ecfg) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        gw.base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    /* One priority for everything. The write flush is activated by the
     * first output of a turn, so it is queued behind every I/O callback
     * that epoll reported for that turn and runs once they are done. (It
     * used to run at a lower priority, but libevent runs a lower-priority
     * queue only in a turn in which no higher-priority callback ran: under
     * a steady stream of input the flush waited for a quiet turn.) */
    gw.sessions = map_new();
    gw.per_ip = map_new();
    gw.reap_ev = gw.base ? event_new(gw.base, -1, 0, s_reap_cb, &gw) : NULL;
    gw.flush_ev = gw.base ? event_new(gw.base, -1, 0, s_flush_cb, &gw) : NULL;
    if (!gw.base || !gw.sessions || !gw.per_ip || !gw.reap_ev || !gw.flush_ev)
        return 1;
    gw.zctx = zmq_ctx_new();
    if (!gw.zctx)
        return 1;
    gw.fanout = fanout_new(&gw, c->broker_pub);
    if (!gw.fanout)
        return 2;
    gw.upstream = up_new(&gw, gw.zctx, c->broker_rpc, fanout_on_epoch, gw.fanout);
    if (!gw.upstream)
        return 2;
    gw.rooms = rooms_new(fanout_room_sub, gw.fanout);
    if (!gw.rooms)
        return 1;
    gw.listener = evconnlistener_new_bind(gw.base, s_accept_cb, &gw,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096,
                                          (struct sockaddr *)&ss, sslen);
    if (!gw.listener) {
        log_error("event=listen_failed addr=%s reason=\"%s\"", c->listen, strerror(errno));
        return 1;
    }
    /* Every reply is written whole at the end of a loop turn: no Nagle
     * delay. Set once here; accepted sockets inherit it on Linux. */
    int one = 1;
    if (setsockopt(evconnlistener_get_fd(gw.listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        log_warn("event=nodelay_failed reason=\"%s\"", strerror(errno));
    evconnlistener_set_error_cb(gw.listener, s_accept_error_cb);
    struct event *sigterm = evsignal_new(gw.base, SIGTERM, s_signal_cb, &gw);
    struct event *sigint = evsignal_new(gw.base, SIGINT, s_signal_cb, &gw);
    struct event *sighup = evsignal_new(gw.base, SIGHUP, s_hup_cb, &gw);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    s_trim.ev = event_new(gw.base, -1, EV_PERSIST, s_trim_cb, &gw);
    if (s_trim.ev) {
        struct timeval sec = { 1, 0 };
        event_add(s_trim.ev, &sec);
    }
    char fan_redacted[1024];
    log_redact_url(fanout_kind == BUS_ZMQ ? c->broker_pub
                   : fanout_kind == BUS_REDIS ? c->redis_url : c->nats_url,
                   fan_redacted, sizeof fan_redacted);
    log_info("event=ready listen=%s fanout=%s broker_pub=%s", c->listen, c->fanout, fan_redacted);

    event_base_dispatch(gw.base);

    log_info("event=stopped connections=%llu", (unsigned long long)gw.stats.connections_open);
    session_close_all(&gw, "server stopped");
    session_reap(&gw);
    conn_free_all(&gw);
    evconnlistener_free(gw.listener);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    if (s_drain_tick)
        event_free(s_drain_tick);
    if (s_trim.ev)
        event_free(s_trim.ev);
    rooms_destroy(&gw.rooms);
    up_destroy(&gw.upstream);
    fanout_destroy(&gw.fanout);
    zmq_ctx_term(gw.zctx);
    map_destroy(&gw.sessions);
    map_destroy(&gw.per_ip);
    jwt_verifier_destroy(&gw.jwt);
    event_free(gw.reap_ev);
    event_free(gw.flush_ev);
    event_base_free(gw.base);
    return 0;
}
