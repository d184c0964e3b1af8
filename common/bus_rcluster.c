/*  bus_rcluster - the Redis Cluster backend of the fan-out bus (sharded pub/sub)
 *
 *  Design: `--fanout redis` with a redis-cluster://[:password@]host:port[,...]
 *  URL (seed nodes). A message goes out as SPUBLISH on the shard channel
 *  "belfry:" + topic bytes (the name of the plain backend), to the primary
 *  that owns the channel's hash slot (CRC16-XMODEM mod 16384, {hash tag}
 *  rule); a subscriber sends SSUBSCRIBE / SUNSUBSCRIBE to the same primary
 *  and receives "smessage" pushes from it. So a room's messages cross one
 *  shard instead of every node of the cluster, as plain PUBLISH does.
 *
 *  hiredis 0.14's asynchronous API aborts on the sharded pushes, so this file
 *  runs its own RESP connections on the caller's libevent loop: a bufferevent
 *  per connection, commands formatted by redisFormatCommandArgv (binary-safe
 *  argv) and replies parsed by hiredis's redisReader. Every connection keeps
 *  a FIFO of the replies it awaits (command kind + channel hash), which tells
 *  a reply from a push ("smessage", a "sunsubscribe" the server sends when a
 *  slot migrates away) and an error from the command that caused it.
 *
 *  Connections: one control connection asks CLUSTER SHARDS (CLUSTER SLOTS on
 *  a server that does not know it) of a seed or of any primary already
 *  known, at start and whenever something says the map is stale; one
 *  connection per primary carries SPUBLISH (a publisher, opened on the first
 *  publish to that primary) or the subscriptions (a subscriber, opened when
 *  a subscribed channel maps to it; one SSUBSCRIBE per channel, so a command
 *  never spans slots). Commands are written as soon as a connection exists,
 *  before it is established (AUTH first): libevent sends them on connect.
 *
 *  Failures: -MOVED, -ASK, -TRYAGAIN, -CLUSTERDOWN replies, a server-sent
 *  "sunsubscribe" and a lost node connection ask for a topology refresh
 *  (debounced, 100 ms doubling to 2 s while the errors go on). Applying a
 *  new map moves every subscription whose slot changed owner (SUNSUBSCRIBE on
 *  the old primary, SSUBSCRIBE on the new) and re-sends the unconfirmed ones.
 *  A lost connection reconnects with backoff (100 ms doubling to 2 s); the
 *  control connection moves on to the next known address. A request or a
 *  connect unanswered for 5 s counts as a dead peer. Nothing blocks the
 *  loop (host names resolve through evdns), nothing aborts: every failure is
 *  a key=value log line (throttled when it repeats) and a counter.
 *  Publishes with no known owner, on a connection in backoff, or past the
 *  caps (BUS_BUFFER_MAX unsent bytes, RC_PENDING_MAX unanswered commands)
 *  are dropped and counted; the gateway repairs those gaps by replay.
 *  Subscriptions never duplicate a message: a channel is subscribed on one
 *  primary at a time, and SPUBLISH reaches only the owning shard.
 *
 *  Memory ownership: the rc_t owns its connections, the subscription map
 *  (channel -> rc_sub_t) and the slot map; a connection is freed only from
 *  the control connection's reply handler (a primary that left the map) or
 *  from s_close, never inside its own callbacks.
 */
#include "bus_internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/util.h>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#define RC_SLOTS 16384
#define RC_BACKOFF_MIN_MS 100
#define RC_BACKOFF_MAX_MS 2000
#define RC_TIMEOUT_S 5                  /* connect, write or topology reply */
#define RC_PENDING_MAX (1u << 20)       /* unanswered commands per connection */
#define RC_READ_MAX (BUS_BUFFER_MAX + 65536u)  /* one reply being received */
#define RC_NODES_MAX 1024
#define RC_PASS_MAX 256
#define RC_CHAN_MAX (7 + BUS_TOPIC_MAX)

enum { RC_AUTH = 1, RC_SHARDS, RC_SLOTSCMD, RC_SSUB, RC_SUNSUB, RC_PUB };

typedef struct {
    uint32_t hash;                      /* channel hash (RC_SSUB, RC_SUNSUB), else 0 */
    uint8_t kind;                       /* RC_* */
} rc_pending_t;

typedef struct rc_conn rc_conn_t;
typedef struct rc rc_t;

struct rc_conn {
    rc_t *rc;                           /* Owner */
    char host[BUS_RCLUSTER_HOST_MAX];   /* Peer address */
    int port;
    int is_ctl;                         /* The topology connection */
    int open;                           /* Wanted: connected, connecting or in backoff */
    int up;                             /* Established */
    int primary;                        /* Owns slots in the current map */
    struct bufferevent *bev;            /* NULL between attempts */
    redisReader *reader;                /* Replies being parsed, with bev */
    struct event *retry;                /* Reconnect timer */
    long backoff_ms;                    /* Next retry delay */
    unsigned long failures;             /* Failed attempts in a row (log throttling) */
    unsigned long server_errors;        /* Error replies (log throttling) */
    rc_pending_t *pend;                 /* Ring of awaited replies */
    size_t pcap, phead, plen;
    size_t nsubs;                       /* Subscriptions assigned to this primary */
    unsigned gen;                       /* Bumped when bev is dropped (stale read loops stop) */
};

typedef struct {
    rc_conn_t *node;                    /* Primary it is subscribed on, NULL if none */
    unsigned slot;                      /* Hash slot of the channel */
    uint32_t hash;                      /* map_hash of the channel, truncated */
    int confirmed;                      /* The server confirmed SSUBSCRIBE */
} rc_sub_t;

struct rc {
    bus_t *bus;
    bus_rcluster_seed_t seeds[BUS_RCLUSTER_SEEDS_MAX];
    size_t nseeds;
    char password[RC_PASS_MAX];         /* AUTH password, "" for none */
    struct evdns_base *dns;             /* For host names, created on first need */
    rc_conn_t ctl;                      /* Topology connection */
    size_t ctl_next;                    /* Next address the control connection tries */
    int ctl_busy;                       /* A topology request is in flight */
    int refresh_again;                  /* Another refresh asked while one was in flight */
    struct event *refresh;              /* Debounce timer of topology refreshes */
    long refresh_ms;                    /* Its next delay */
    unsigned long topo_failures;        /* Failed or incomplete maps in a row */
    rc_conn_t **nodes;                  /* Primaries known (and their connections) */
    size_t nnodes;
    rc_conn_t *slot_node[RC_SLOTS];     /* Slot -> primary, NULL if uncovered */
    size_t covered;                     /* Slots with an owner */
    int have_map;                       /* A map was applied */
    map_t *subs;                        /* channel -> rc_sub_t * */
    char chan[RC_CHAN_MAX];             /* Scratch channel name */
    int closing;                        /* s_close in progress */
};

/* ---- pure functions ------------------------------------------------------- */

int bus_rcluster_is_url(const char *url)
{
    return url && strncmp(url, "redis-cluster://", 16) == 0;
}

uint16_t bus_rcluster_crc16(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned bus_rcluster_keyslot(const void *key, size_t len)
{
    const char *k = key;
    const char *lb = memchr(k, '{', len);
    if (lb) {
        size_t rest = len - (size_t)(lb - k) - 1;
        const char *rb = memchr(lb + 1, '}', rest);
        if (rb && rb > lb + 1)
            return bus_rcluster_crc16(lb + 1, (size_t)(rb - lb - 1)) & (RC_SLOTS - 1);
    }
    return bus_rcluster_crc16(k, len) & (RC_SLOTS - 1);
}

/* One "host[:port]" or "[v6]:port" of n bytes into seed; 0 or -1. */
static int s_parse_seed(const char *p, size_t n, bus_rcluster_seed_t *seed)
{
    const char *host = p, *rest;
    size_t hl;
    if (n > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb)
            return -1;
        host = p + 1;
        hl = (size_t)(rb - host);
        rest = rb + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        hl = colon ? (size_t)(colon - p) : n;
        rest = p + hl;
    }
    if (hl == 0 || hl >= sizeof seed->host || memchr(host, '@', hl) || memchr(host, '/', hl))
        return -1;
    memcpy(seed->host, host, hl);
    seed->host[hl] = 0;
    seed->port = 6379;
    size_t left = n - (size_t)(rest - p);
    if (left == 0)
        return 0;
    if (rest[0] != ':' || left < 2 || left > 6)
        return -1;
    long v = 0;
    for (size_t i = 1; i < left; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return -1;
        v = v * 10 + (rest[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    seed->port = (int)v;
    return 0;
}

int bus_rcluster_parse_url(const char *url, bus_rcluster_seed_t *seeds, size_t cap,
                           char *password, size_t passcap)
{
    if (!bus_rcluster_is_url(url) || !seeds || cap == 0 || !password || passcap == 0)
        return -1;
    const char *p = url + 16;
    password[0] = 0;
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;                                  /* a trailing slash only */
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '@')
            at = p + i;                         /* the last one: a password may hold '@' */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* [user]:password@ or password@ */
        size_t pl = (size_t)(at - pw);
        if (pl >= passcap)
            return -1;
        memcpy(password, pw, pl);
        password[pl] = 0;
        len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    size_t n = 0;
    while (1) {
        const char *comma = memchr(p, ',', len);
        size_t sl = comma ? (size_t)(comma - p) : len;
        if (n == cap || s_parse_seed(p, sl, &seeds[n]) < 0) {
            password[0] = 0;
            return -1;
        }
        n++;
        if (!comma)
            break;
        len -= sl + 1;
        p = comma + 1;
    }
    return (int)n;
}

/* ---- small helpers -------------------------------------------------------- */

static uint32_t s_hash(const void *chan, size_t clen)
{
    return (uint32_t)map_hash(chan, clen);
}

static const char *s_role(const rc_t *rc)
{
    return rc->bus->role == BUS_PUB ? "pub" : "sub";
}

/* Error replies that mean "the slot map changed or is changing". */
static int s_is_redirect(const char *s, size_t n)
{
    return (n >= 6 && memcmp(s, "MOVED ", 6) == 0) || (n >= 4 && memcmp(s, "ASK ", 4) == 0) ||
           (n >= 8 && memcmp(s, "TRYAGAIN", 8) == 0) ||
           (n >= 11 && memcmp(s, "CLUSTERDOWN", 11) == 0);
}

static int s_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == n &&
           strncasecmp(r->str, s, n) == 0;
}

static long s_backoff_next(long ms)
{
    return ms * 2 > RC_BACKOFF_MAX_MS ? RC_BACKOFF_MAX_MS : ms * 2;
}

static void s_refresh_soon(rc_t *rc, const char *why);
static void s_conn_start(rc_conn_t *c);
static void s_send_topology(rc_t *rc, int kind);

/* ---- awaited replies ------------------------------------------------------ */

static int s_pend_push(rc_conn_t *c, int kind, uint32_t hash)
{
    if (c->plen == c->pcap) {
        if (c->pcap >= RC_PENDING_MAX)
            return -1;
        size_t ncap = c->pcap ? c->pcap * 2 : 64;
        rc_pending_t *n = malloc(ncap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = 0; i < c->plen; i++)
            n[i] = c->pend[(c->phead + i) % c->pcap];
        free(c->pend);
        c->pend = n;
        c->pcap = ncap;
        c->phead = 0;
    }
    c->pend[(c->phead + c->plen) % c->pcap] = (rc_pending_t){ hash, (uint8_t)kind };
    c->plen++;
    return 0;
}

static const rc_pending_t *s_pend_head(const rc_conn_t *c)
{
    return c->plen ? &c->pend[c->phead] : NULL;
}

static void s_pend_pop(rc_conn_t *c)
{
    if (c->plen) {
        c->phead = (c->phead + 1) % c->pcap;
        c->plen--;
    }
}

/* Formats argv as one command, queues it and awaits its reply. 0, or -1
 * (no connection, allocation failure or a cap reached: nothing sent). */
static int s_send(rc_conn_t *c, int kind, uint32_t hash, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (!c->bev)
        return -1;
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0)
        return -1;
    int rc = -1;
    if (s_pend_push(c, kind, hash) < 0)
        goto done;
    if (bufferevent_write(c->bev, cmd, (size_t)n) < 0) {
        c->plen--;                      /* the entry just pushed */
        goto done;
    }
    rc = 0;
done:
    redisFreeCommand(cmd);
    return rc;
}

static void s_send_sub(rc_conn_t *c, const char *chan, size_t clen, int on)
{
    rc_t *rc = c->rc;
    const char *argv[2] = { on ? "SSUBSCRIBE" : "SUNSUBSCRIBE", chan };
    size_t argvlen[2] = { on ? 10 : 12, clen };
    if (s_send(c, on ? RC_SSUB : RC_SUNSUB, s_hash(chan, clen), 2, argv, argvlen) < 0) {
        rc->bus->stats.errors++;
        log_warn("event=fanout_error fanout=redis-cluster server=%s:%d op=%s reason=\"cannot queue\"",
                 c->host, c->port, on ? "ssubscribe" : "sunsubscribe");
    }
}

/* ---- connections ---------------------------------------------------------- */

static void s_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_conn_start(arg);
}

static rc_conn_t *s_conn_init(rc_conn_t *c, rc_t *rc, const char *host, int port)
{
    c->rc = rc;
    size_t hl = strnlen(host, sizeof c->host - 1);
    memcpy(c->host, host, hl);
    c->host[hl] = 0;
    c->port = port;
    c->backoff_ms = RC_BACKOFF_MIN_MS;
    c->retry = event_new(rc->bus->base, -1, 0, s_retry_cb, c);
    return c->retry ? c : NULL;
}

/* Drops the socket and everything queued on it (not the struct). */
static void s_conn_drop(rc_conn_t *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->reader)
        redisReaderFree(c->reader);
    c->reader = NULL;
    c->up = 0;
    c->plen = 0;
    c->phead = 0;
    c->gen++;
}

static void s_conn_free(rc_conn_t *c)
{
    if (!c)
        return;
    s_conn_drop(c);
    if (c->retry)
        event_free(c->retry);
    free(c->pend);
    if (!c->is_ctl)
        free(c);
}

static void s_schedule_retry(rc_conn_t *c)
{
    if (c->rc->closing)
        return;
    struct timeval tv = { c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000 };
    event_add(c->retry, &tv);
    c->backoff_ms = s_backoff_next(c->backoff_ms);
}

/* The connection is gone or could not be made: log, count, back off, and
 * let the map be checked (a dead node may have lost its slots). */
static void s_conn_lost(rc_conn_t *c, const char *why)
{
    rc_t *rc = c->rc;
    bus_t *bus = rc->bus;
    int was_up = c->up;
    s_conn_drop(c);
    if (rc->closing)
        return;
    if (c->is_ctl)
        rc->ctl_busy = 0;
    else if (bus->role == BUS_SUB) {
        size_t pos = 0, klen;
        const void *key;
        void *val;
        while (map_next(rc->subs, &pos, &key, &klen, &val)) {
            rc_sub_t *s = val;
            if (s->node == c)
                s->confirmed = 0;       /* sent again on reconnect */
        }
    }
    if (was_up) {
        bus->stats.disconnects++;
        c->failures = 0;
        c->backoff_ms = RC_BACKOFF_MIN_MS;
        log_warn("event=fanout_disconnected fanout=redis-cluster server=%s:%d role=%s%s reason=\"%s\"",
                 c->host, c->port, s_role(rc), c->is_ctl ? " link=topology" : "", why);
    } else {
        bus->stats.errors++;
        c->failures++;
        if (c->failures == 1 || c->failures % 30 == 0)
            log_warn("event=fanout_connect_failed fanout=redis-cluster server=%s:%d role=%s%s "
                     "attempts=%lu reason=\"%s\"", c->host, c->port, s_role(rc),
                     c->is_ctl ? " link=topology" : "", c->failures, why);
        else
            log_debug("event=fanout_connect_failed fanout=redis-cluster server=%s:%d reason=\"%s\"",
                      c->host, c->port, why);
    }
    if (c->is_ctl)
        rc->ctl_next++;                 /* try another address next time */
    else
        s_refresh_soon(rc, "node connection lost");
    s_schedule_retry(c);
}

static void s_handle_reply(rc_conn_t *c, redisReply *rep);

static void s_read_cb(struct bufferevent *bev, void *arg)
{
    rc_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned gen = c->gen;
    while (evbuffer_get_length(in) > 0) {
        size_t chunk = evbuffer_get_contiguous_space(in);
        unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)chunk);
        if (!p || redisReaderFeed(c->reader, (const char *)p, chunk) != REDIS_OK) {
            s_conn_lost(c, "out of memory");
            return;
        }
        evbuffer_drain(in, chunk);
        while (1) {
            void *reply = NULL;
            if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
                char why[160];
                snprintf(why, sizeof why, "protocol error: %s", c->reader->errstr);
                c->rc->bus->stats.errors++;
                s_conn_lost(c, why);
                return;
            }
            if (!reply)
                break;
            s_handle_reply(c, reply);
            freeReplyObject(reply);
            if (c->gen != gen)
                return;                 /* the handler dropped this connection */
        }
        if (c->reader->len - c->reader->pos > RC_READ_MAX) {
            c->rc->bus->stats.errors++;
            s_conn_lost(c, "reply over the size cap");
            return;
        }
    }
}

static void s_event_cb(struct bufferevent *bev, short what, void *arg)
{
    rc_conn_t *c = arg;
    rc_t *rc = c->rc;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        c->up = 1;
        c->backoff_ms = RC_BACKOFF_MIN_MS;
        rc->bus->stats.connects++;
        log_info("event=fanout_connected fanout=redis-cluster server=%s:%d role=%s%s subscriptions=%zu",
                 c->host, c->port, s_role(rc), c->is_ctl ? " link=topology" : "",
                 c->is_ctl ? (size_t)0 : c->nsubs);
        return;
    }
    char why[160];
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "no answer in %d s", RC_TIMEOUT_S);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "closed by the server");
    else {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "%s", e ? evutil_socket_error_to_string(e) : "connection error");
        if (bufferevent_socket_get_dns_error(c->bev))
            snprintf(why, sizeof why, "cannot resolve: %s",
                     evutil_gai_strerror(bufferevent_socket_get_dns_error(c->bev)));
    }
    s_conn_lost(c, why);
}

/* Opens the connection (no-op when it exists) and queues what a new
 * connection sends first: AUTH, then the topology request (control) or
 * every subscription assigned to this primary (subscriber). */
static void s_conn_start(rc_conn_t *c)
{
    rc_t *rc = c->rc;
    if (c->bev || rc->closing)
        return;
    c->open = 1;
    if (c->is_ctl) {
        /* the seeds first, then the primaries of the last map */
        size_t total = rc->nseeds + rc->nnodes;
        size_t i = rc->ctl_next % total;
        const char *h = i < rc->nseeds ? rc->seeds[i].host : rc->nodes[i - rc->nseeds]->host;
        c->port = i < rc->nseeds ? rc->seeds[i].port : rc->nodes[i - rc->nseeds]->port;
        snprintf(c->host, sizeof c->host, "%s", h);
    }
    struct sockaddr_storage ss;
    int sslen = (int)sizeof ss;
    char addr[BUS_RCLUSTER_HOST_MAX + 16];
    snprintf(addr, sizeof addr, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host, c->port);
    int numeric = evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == 0;
    if (!numeric && !rc->dns)
        rc->dns = evdns_base_new(rc->bus->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    c->bev = bufferevent_socket_new(rc->bus->base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->reader = redisReaderCreate();
    if (!c->bev || !c->reader || (!numeric && !rc->dns)) {
        s_conn_lost(c, !numeric && !rc->dns ? "no DNS resolver" : "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, s_read_cb, NULL, s_event_cb, c);
    struct timeval tmo = { RC_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(c->bev, NULL, &tmo);    /* connect and stalled writes */
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (rc->password[0]) {
        const char *argv[2] = { "AUTH", rc->password };
        size_t argvlen[2] = { 4, strlen(rc->password) };
        s_send(c, RC_AUTH, 0, 2, argv, argvlen);
    }
    if (c->is_ctl) {
        rc->ctl_busy = 0;
        s_send_topology(rc, RC_SHARDS);
    } else if (rc->bus->role == BUS_SUB) {
        size_t pos = 0, klen;
        const void *key;
        void *val;
        while (map_next(rc->subs, &pos, &key, &klen, &val))
            if (((rc_sub_t *)val)->node == c)
                s_send_sub(c, key, klen, 1);
    }
    unsigned gen = c->gen;
    int r = numeric ? bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, sslen)
                    : bufferevent_socket_connect_hostname(c->bev, rc->dns, AF_UNSPEC, c->host, c->port);
    /* a failure may already have run s_event_cb (and dropped bev) */
    if (r < 0 && c->gen == gen)
        s_conn_lost(c, "cannot connect");
}

/* ---- subscriptions -------------------------------------------------------- */

static void s_sub_detach(rc_t *rc, rc_sub_t *s, const char *chan, size_t clen)
{
    (void)rc;
    rc_conn_t *old = s->node;
    if (!old)
        return;
    if (old->bev)
        s_send_sub(old, chan, clen, 0);
    old->nsubs--;
    s->node = NULL;
    s->confirmed = 0;
}

static void s_sub_attach(rc_t *rc, rc_sub_t *s, rc_conn_t *node, const char *chan, size_t clen)
{
    (void)rc;
    s->node = node;
    s->confirmed = 0;
    node->nsubs++;
    if (node->bev)
        s_send_sub(node, chan, clen, 1);
    else if (!event_pending(node->retry, EV_TIMEOUT, NULL))
        s_conn_start(node);             /* queues every sub of the node, this one included */
}

/* ---- topology ------------------------------------------------------------- */

static void s_send_topology(rc_t *rc, int kind)
{
    rc_conn_t *c = &rc->ctl;
    const char *argv[2] = { "CLUSTER", kind == RC_SHARDS ? "SHARDS" : "SLOTS" };
    size_t argvlen[2] = { 7, kind == RC_SHARDS ? 6u : 5u };
    if (s_send(c, kind, 0, 2, argv, argvlen) < 0)
        return;
    rc->ctl_busy = 1;
    struct timeval tmo = { RC_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(c->bev, &tmo, &tmo);
}

static void s_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    rc_t *rc = arg;
    (void)fd;
    (void)what;
    if (rc->ctl_busy) {
        rc->refresh_again = 1;
        return;
    }
    if (!rc->ctl.bev) {
        if (!event_pending(rc->ctl.retry, EV_TIMEOUT, NULL))
            s_conn_start(&rc->ctl);     /* asks for the map on connect */
        return;
    }
    s_send_topology(rc, RC_SHARDS);
}

/* Asks for a fresh map soon; repeated calls while errors go on space the
 * requests out (100 ms doubling to 2 s; reset by a healthy reply). */
static void s_refresh_soon(rc_t *rc, const char *why)
{
    if (rc->closing || event_pending(rc->refresh, EV_TIMEOUT, NULL))
        return;
    log_debug("event=fanout_topology_refresh fanout=redis-cluster role=%s reason=\"%s\"", s_role(rc), why);
    struct timeval tv = { rc->refresh_ms / 1000, (rc->refresh_ms % 1000) * 1000 };
    event_add(rc->refresh, &tv);
    rc->refresh_ms = s_backoff_next(rc->refresh_ms);
}

static void s_healthy(rc_t *rc)
{
    rc->refresh_ms = RC_BACKOFF_MIN_MS;
}

static rc_conn_t *s_node_get(rc_t *rc, const char *host, size_t hlen, int port)
{
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->port == port && strlen(rc->nodes[i]->host) == hlen &&
            memcmp(rc->nodes[i]->host, host, hlen) == 0)
            return rc->nodes[i];
    if (rc->nnodes == RC_NODES_MAX || hlen == 0 || hlen >= BUS_RCLUSTER_HOST_MAX)
        return NULL;
    rc_conn_t **nn = realloc(rc->nodes, (rc->nnodes + 1) * sizeof *nn);
    if (!nn)
        return NULL;
    rc->nodes = nn;
    rc_conn_t *c = calloc(1, sizeof *c);
    char h[BUS_RCLUSTER_HOST_MAX];
    memcpy(h, host, hlen);
    h[hlen] = 0;
    if (!c || !s_conn_init(c, rc, h, port)) {
        s_conn_free(c);
        return NULL;
    }
    rc->nodes[rc->nnodes++] = c;
    return c;
}

/* A field of a flat RESP2 map ([k1, v1, k2, v2 ...]), or NULL. */
static const redisReply *s_field(const redisReply *m, const char *name)
{
    if (!m || m->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < m->elements; i += 2)
        if (s_is(m->element[i], name))
            return m->element[i + 1];
    return NULL;
}

/* Assigns slots lo..hi to the primary at host:port in owner[]; 0 or -1. */
static int s_assign(rc_t *rc, rc_conn_t **owner, long long lo, long long hi, const char *host,
                    size_t hlen, long long port)
{
    if (lo < 0 || hi >= RC_SLOTS || lo > hi || port < 1 || port > 65535)
        return -1;
    if (hlen == 0 || (hlen == 1 && host[0] == '?')) {
        host = rc->ctl.host;            /* "unknown endpoint": the node we asked */
        hlen = strlen(host);
    }
    rc_conn_t *n = s_node_get(rc, host, hlen, (int)port);
    if (!n)
        return -1;
    n->primary = 1;
    for (long long s = lo; s <= hi; s++)
        owner[s] = n;
    return 0;
}

/* CLUSTER SHARDS: [[ "slots", [lo, hi, ...], "nodes", [[k, v, ...], ...] ], ...] */
static int s_parse_shards(rc_t *rc, const redisReply *rep, rc_conn_t **owner)
{
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *sh = rep->element[i];
        const redisReply *slots = s_field(sh, "slots"), *nodes = s_field(sh, "nodes");
        if (!slots || !nodes || slots->type != REDIS_REPLY_ARRAY || nodes->type != REDIS_REPLY_ARRAY)
            return -1;
        if (slots->elements == 0)
            continue;                   /* a shard without slots */
        const redisReply *primary = NULL;
        for (size_t j = 0; j < nodes->elements && !primary; j++)
            if (s_is(s_field(nodes->element[j], "role"), "master"))
                primary = nodes->element[j];
        if (!primary)
            continue;                   /* no primary now (failover in progress): uncovered */
        const redisReply *ep = s_field(primary, "endpoint"), *ip = s_field(primary, "ip");
        const redisReply *port = s_field(primary, "port");
        const redisReply *h = ep && ep->type == REDIS_REPLY_STRING && ep->len > 0 &&
                              !(ep->len == 1 && ep->str[0] == '?') ? ep : ip;
        if (!h || h->type != REDIS_REPLY_STRING || !port || port->type != REDIS_REPLY_INTEGER)
            return -1;
        for (size_t k = 0; k + 1 < slots->elements; k += 2) {
            const redisReply *lo = slots->element[k], *hi = slots->element[k + 1];
            if (lo->type != REDIS_REPLY_INTEGER || hi->type != REDIS_REPLY_INTEGER ||
                s_assign(rc, owner, lo->integer, hi->integer, h->str, h->len, port->integer) < 0)
                return -1;
        }
    }
    return 0;
}

/* CLUSTER SLOTS: [[lo, hi, [host, port, id, ...], replicas ...], ...] */
static int s_parse_slots(rc_t *rc, const redisReply *rep, rc_conn_t **owner)
{
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *r = rep->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
            return -1;
        const redisReply *lo = r->element[0], *hi = r->element[1], *m = r->element[2];
        if (lo->type != REDIS_REPLY_INTEGER || hi->type != REDIS_REPLY_INTEGER ||
            m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        if (s_assign(rc, owner, lo->integer, hi->integer, m->element[0]->str, m->element[0]->len,
                     m->element[1]->integer) < 0)
            return -1;
    }
    return 0;
}

/* Makes owner[] the slot map: moves the subscriptions whose primary
 * changed, re-sends the unconfirmed ones, frees the nodes that are no
 * longer primaries. Called from the control connection's reply handler. */
static void s_apply(rc_t *rc, rc_conn_t **owner)
{
    size_t covered = 0, moved = 0;
    for (size_t s = 0; s < RC_SLOTS; s++)
        covered += owner[s] != NULL;
    memcpy(rc->slot_node, owner, sizeof rc->slot_node);
    rc->covered = covered;
    int first = !rc->have_map;
    rc->have_map = 1;
    size_t pos = 0, klen;
    const void *key;
    void *val;
    while (map_next(rc->subs, &pos, &key, &klen, &val)) {
        rc_sub_t *s = val;
        rc_conn_t *target = rc->slot_node[s->slot];
        if (s->node != target) {
            moved += s->node != NULL;
            s_sub_detach(rc, s, key, klen);
            if (target)
                s_sub_attach(rc, s, target, key, klen);
        } else if (target && !s->confirmed && target->up) {
            s_send_sub(target, key, klen, 1);   /* refused before (MOVED, CLUSTERDOWN ...) */
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < rc->nnodes; i++) {
        rc_conn_t *n = rc->nodes[i];
        if (n->primary || n->nsubs) {
            rc->nodes[kept++] = n;
            continue;
        }
        log_info("event=fanout_node_removed fanout=redis-cluster server=%s:%d role=%s", n->host,
                 n->port, s_role(rc));
        s_conn_free(n);
    }
    rc->nnodes = kept;
    if (first || moved || covered < RC_SLOTS)
        log_info("event=fanout_topology fanout=redis-cluster role=%s primaries=%zu slots_covered=%zu "
                 "subscriptions_moved=%zu", s_role(rc), kept, covered, moved);
}

static void s_topology_reply(rc_t *rc, int kind, const redisReply *rep)
{
    bus_t *bus = rc->bus;
    rc->ctl_busy = 0;
    if (rc->ctl.bev)
        bufferevent_set_timeouts(rc->ctl.bev, NULL, NULL);
    const char *why = NULL;
    char buf[200];
    if (rep->type == REDIS_REPLY_ERROR) {
        if (kind == RC_SHARDS && (strcasestr(rep->str, "unknown subcommand") ||
                                  strcasestr(rep->str, "unknown command"))) {
            s_send_topology(rc, RC_SLOTSCMD);   /* Redis < 7 */
            return;
        }
        snprintf(buf, sizeof buf, "%.*s", (int)(rep->len > 150 ? 150 : rep->len), rep->str);
        why = buf;
    } else if (rep->type != REDIS_REPLY_ARRAY) {
        why = "unexpected reply";
    } else {
        rc_conn_t **owner = calloc(RC_SLOTS, sizeof *owner);
        if (!owner) {
            why = "out of memory";
        } else {
            for (size_t i = 0; i < rc->nnodes; i++)
                rc->nodes[i]->primary = 0;
            int bad = (kind == RC_SHARDS ? s_parse_shards(rc, rep, owner)
                                         : s_parse_slots(rc, rep, owner)) < 0;
            if (bad) {
                /* keep the current map; the nodes it names stay primaries */
                for (size_t i = 0; i < rc->nnodes; i++)
                    rc->nodes[i]->primary = 0;
                for (size_t s = 0; s < RC_SLOTS; s++)
                    if (rc->slot_node[s])
                        rc->slot_node[s]->primary = 1;
                why = "malformed cluster map";
            } else {
                s_apply(rc, owner);
                if (rc->covered < RC_SLOTS)
                    why = "not every slot has a primary";
            }
            free(owner);
        }
    }
    if (why) {
        bus->stats.errors++;
        rc->topo_failures++;
        if (rc->topo_failures == 1 || rc->topo_failures % 30 == 0)
            log_warn("event=fanout_topology_failed fanout=redis-cluster server=%s:%d role=%s "
                     "attempts=%lu reason=\"%s\"", rc->ctl.host, rc->ctl.port, s_role(rc),
                     rc->topo_failures, why);
        rc->refresh_again = 0;
        s_refresh_soon(rc, why);
        return;
    }
    rc->topo_failures = 0;
    if (rc->refresh_again) {
        rc->refresh_again = 0;
        s_refresh_soon(rc, "asked again meanwhile");
    }
}

/* ---- replies -------------------------------------------------------------- */

static void s_server_error(rc_conn_t *c, int kind, const redisReply *rep)
{
    rc_t *rc = c->rc;
    if (kind == RC_SUNSUB && s_is_redirect(rep->str, rep->len)) {
        /* the slot left that primary, and the subscription with it */
        log_debug("event=fanout_unsubscribe_moot fanout=redis-cluster server=%s:%d reason=\"%.*s\"",
                  c->host, c->port, (int)(rep->len > 150 ? 150 : rep->len), rep->str);
        return;
    }
    rc->bus->stats.errors++;
    c->server_errors++;
    static const char *const names[] = { "?", "auth", "cluster shards", "cluster slots",
                                         "ssubscribe", "sunsubscribe", "spublish" };
    if (c->server_errors == 1 || c->server_errors % 100 == 0)
        log_warn("event=fanout_server_error fanout=redis-cluster server=%s:%d role=%s op=\"%s\" "
                 "count=%lu reason=\"%.*s\"", c->host, c->port, s_role(rc), names[kind],
                 c->server_errors, (int)(rep->len > 150 ? 150 : rep->len), rep->str);
    if (s_is_redirect(rep->str, rep->len))
        s_refresh_soon(rc, "redirected");
}

static void s_sub_push(rc_conn_t *c, const redisReply *rep)
{
    rc_t *rc = c->rc;
    bus_t *bus = rc->bus;
    const redisReply *kind = rep->element[0], *chan = rep->element[1];
    if (s_is(kind, "smessage") && rep->elements == 3) {
        const redisReply *body = rep->element[2];
        long tl = bus_redis_topic(chan->str, chan->len);
        if (tl < 0 || body->type != REDIS_REPLY_STRING) {
            bus->stats.malformed++;
            return;
        }
        bus_deliver(bus, chan->str + 7, (size_t)tl, body->str, body->len);
        return;
    }
    const rc_pending_t *h = s_pend_head(c);
    uint32_t hash = s_hash(chan->str, chan->len);
    rc_sub_t *s = map_get(rc->subs, chan->str, chan->len);
    if (s_is(kind, "ssubscribe")) {
        if (h && h->kind == RC_SSUB && h->hash == hash)
            s_pend_pop(c);
        if (s && s->node == c) {
            s->confirmed = 1;
            s_healthy(rc);
        }
    } else if (s_is(kind, "sunsubscribe")) {
        if (h && h->kind == RC_SUNSUB && h->hash == hash) {
            s_pend_pop(c);              /* ours */
        } else if (s && s->node == c) {
            /* the server's: the slot left this primary */
            s->confirmed = 0;
            log_info("event=fanout_slot_moved fanout=redis-cluster server=%s:%d slot=%u", c->host,
                     c->port, s->slot);
            s_refresh_soon(rc, "sunsubscribe from the server");
        }
    } else {
        bus->stats.malformed++;
    }
}

static void s_handle_reply(rc_conn_t *c, redisReply *rep)
{
    rc_t *rc = c->rc;
    /* a subscriber's pushes and confirmations: [kind, channel, ...] */
    if (!c->is_ctl && rc->bus->role == BUS_SUB && rep->type == REDIS_REPLY_ARRAY &&
        rep->elements >= 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        s_sub_push(c, rep);
        return;
    }
    const rc_pending_t *h = s_pend_head(c);
    if (!h) {
        rc->bus->stats.malformed++;     /* nothing was asked */
        return;
    }
    int kind = h->kind;
    s_pend_pop(c);
    if (kind == RC_AUTH) {
        if (rep->type == REDIS_REPLY_ERROR) {
            char why[200];
            snprintf(why, sizeof why, "AUTH refused: %.*s", (int)(rep->len > 150 ? 150 : rep->len), rep->str);
            c->up = 0;                  /* counts as a failed attempt, not a disconnect */
            s_conn_lost(c, why);
        }
        return;
    }
    if (kind == RC_SHARDS || kind == RC_SLOTSCMD) {
        s_topology_reply(rc, kind, rep);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        s_server_error(c, kind, rep);
        return;
    }
    if (kind == RC_PUB)
        s_healthy(rc);
}

/* ---- operations ----------------------------------------------------------- */

static int s_publish(bus_t *bus, const void *topic, size_t tlen, const void *body, size_t blen)
{
    rc_t *rc = bus->impl;
    long cl = bus_redis_channel(topic, tlen, rc->chan, sizeof rc->chan);
    if (cl < 0 || !rc->have_map)
        return -1;
    rc_conn_t *n = rc->slot_node[bus_rcluster_keyslot(rc->chan, (size_t)cl)];
    if (!n)
        return -1;                      /* no primary for the slot now */
    if (!n->bev && !n->open)
        s_conn_start(n);                /* first publish to this primary */
    if (!n->bev || evbuffer_get_length(bufferevent_get_output(n->bev)) > BUS_BUFFER_MAX)
        return -1;                      /* in backoff, or the server does not keep up */
    const char *argv[3] = { "SPUBLISH", rc->chan, body };
    size_t argvlen[3] = { 8, (size_t)cl, blen };
    return s_send(n, RC_PUB, 0, 3, argv, argvlen);
}

static void s_subscribe(bus_t *bus, const void *topic, size_t tlen, int on)
{
    rc_t *rc = bus->impl;
    long cl = bus_redis_channel(topic, tlen, rc->chan, sizeof rc->chan);
    if (cl < 0)
        return;
    size_t clen = (size_t)cl;
    rc_sub_t *s = map_get(rc->subs, rc->chan, clen);
    if (!on) {
        if (!s)
            return;
        map_remove(rc->subs, rc->chan, clen);
        s_sub_detach(rc, s, rc->chan, clen);
        free(s);
        return;
    }
    if (s)
        return;
    s = calloc(1, sizeof *s);
    if (!s || map_put(rc->subs, rc->chan, clen, s) < 0) {
        free(s);
        bus->stats.errors++;
        log_warn("event=fanout_error fanout=redis-cluster op=ssubscribe reason=\"out of memory\"");
        return;
    }
    s->slot = bus_rcluster_keyslot(rc->chan, clen);
    s->hash = s_hash(rc->chan, clen);
    if (rc->slot_node[s->slot])
        s_sub_attach(rc, s, rc->slot_node[s->slot], rc->chan, clen);
    /* else: placed when a map covers the slot */
}

static int s_ready(const bus_t *bus)
{
    const rc_t *rc = bus->impl;
    if (!rc->have_map || rc->covered < RC_SLOTS)
        return 0;
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i]->open && !rc->nodes[i]->up)
            return 0;
    return 1;
}

static void s_close(bus_t *bus)
{
    rc_t *rc = bus->impl;
    if (!rc)
        return;
    rc->closing = 1;
    for (size_t i = 0; i < rc->nnodes; i++)
        s_conn_free(rc->nodes[i]);
    free(rc->nodes);
    s_conn_free(&rc->ctl);
    if (rc->subs) {
        size_t pos = 0, klen;
        const void *key;
        void *val;
        while (map_next(rc->subs, &pos, &key, &klen, &val))
            free(val);
        map_destroy(&rc->subs);
    }
    if (rc->refresh)
        event_free(rc->refresh);
    if (rc->dns)
        evdns_base_free(rc->dns, 1);
    free(rc);
    bus->impl = NULL;
}

static const bus_ops_t s_ops = { s_publish, s_subscribe, s_ready, NULL, s_close };

int bus_rcluster_open(bus_t *bus, const bus_config_t *cfg, char *err, size_t errcap)
{
    bus->ops = &s_ops;
    rc_t *rc = calloc(1, sizeof *rc);
    if (!rc) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    bus->impl = rc;
    rc->bus = bus;
    rc->ctl.is_ctl = 1;                 /* embedded: s_conn_free must not free it */
    int n = bus_rcluster_parse_url(cfg->redis_url, rc->seeds, BUS_RCLUSTER_SEEDS_MAX, rc->password,
                                   sizeof rc->password);
    if (n < 1) {
        snprintf(err, errcap, "--redis-url: not redis-cluster://[:password@]host:port[,host:port...] "
                 "(at most %d seeds)", BUS_RCLUSTER_SEEDS_MAX);
        return -1;
    }
    rc->nseeds = (size_t)n;
    rc->refresh_ms = RC_BACKOFF_MIN_MS;
    rc->subs = map_new();
    rc->refresh = event_new(bus->base, -1, 0, s_refresh_cb, rc);
    if (!rc->subs || !rc->refresh || !s_conn_init(&rc->ctl, rc, rc->seeds[0].host, rc->seeds[0].port)) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    log_info("event=fanout_cluster fanout=redis-cluster role=%s seeds=%zu first_seed=%s:%d",
             s_role(rc), rc->nseeds, rc->seeds[0].host, rc->seeds[0].port);
    s_conn_start(&rc->ctl);
    return 0;
}
