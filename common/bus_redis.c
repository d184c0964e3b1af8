/*  bus_redis - the Redis pub/sub backend of the fan-out bus
 *
 *  Design: one hiredis asynchronous connection, driven by hiredis's libevent
 *  adapter on the caller's loop. A publisher sends PUBLISH, a subscriber
 *  SUBSCRIBE / UNSUBSCRIBE, on channel "belfry:" + topic bytes (argv form,
 *  so binary-safe). Redis pub/sub is fire-and-forget: a message published
 *  while a gateway is disconnected is lost for it, and the gateway repairs
 *  the gap from the envelope's prev link or its periodic positions check.
 *
 *  Connection states: connecting -> connected -> (lost) -> retry timer
 *  (100 ms doubling to 2 s) -> connecting ... A server that is down is never
 *  fatal. On every (re)connect the subscriber sends SUBSCRIBE for each topic
 *  of the bus's set. While not connected, publishes are dropped (counted) and
 *  subscription changes only update the set. Unsent bytes are capped at
 *  BUS_BUFFER_MAX: a publisher that outruns the server drops and counts
 *  rather than growing memory. (The server has its own cap for a slow
 *  subscriber, client-output-buffer-limit pubsub, and disconnects it; the
 *  reconnect and the gap repair then take over.)
 *
 *  hiredis 0.14 keeps one callback per channel and removes it when the
 *  UNSUBSCRIBE confirmation arrives. A SUBSCRIBE sent between an UNSUBSCRIBE
 *  and its confirmation would lose its callback (and every later message of
 *  that channel), so a subscription to a channel whose unsubscription is in
 *  flight is deferred until the confirmation (unsub_pending).
 *
 *  Limits: plain (global) pub/sub only, on one server. Redis Cluster
 *  forwards PUBLISH to every node, so this backend works against any single
 *  node of a cluster, but then every message crosses every node. Sharded
 *  pub/sub (SPUBLISH/SSUBSCRIBE, Redis >= 7) is the cluster mode of
 *  common/bus_rcluster.c, chosen by a redis-cluster:// URL (bus_redis_open
 *  hands over to it): hiredis 0.14's asynchronous API cannot carry it (the
 *  "smessage" pushes hit its subscribe bookkeeping unannounced and abort the
 *  process on an assertion, and it knows no slot routing), so that file runs
 *  its own RESP connections with hiredis's redisReader, CLUSTER SHARDS, slot
 *  routing and MOVED handling.
 */
#include "bus_internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>
#include <hiredis/adapters/libevent.h>

#define RB_BACKOFF_MIN_MS 100
#define RB_BACKOFF_MAX_MS 2000
#define RB_HOST_MAX 256
#define RB_PASS_MAX 256

typedef struct {
    char host[RB_HOST_MAX];     /* Server address */
    int port;
    char password[RB_PASS_MAX]; /* AUTH password, "" for none */
    redisAsyncContext *ac;      /* Current connection, NULL between attempts */
    int connected;              /* onConnect said OK and no disconnect since */
    struct event *retry;        /* Reconnect timer */
    long backoff_ms;            /* Next retry delay */
    unsigned long failures;     /* Connect attempts failed in a row (log throttling) */
    map_t *unsub_pending;       /* channel -> UNSUBSCRIBE confirmations awaited (uintptr_t) */
    char chan[7 + BUS_TOPIC_MAX];   /* Scratch channel name */
    int closing;                /* bus_destroy in progress: no retry */
} rb_t;

static void s_connect(bus_t *bus);

static void s_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_connect(arg);
}

static void s_schedule_retry(bus_t *bus)
{
    rb_t *r = bus->impl;
    if (r->closing)
        return;
    struct timeval tv = { r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000 };
    event_add(r->retry, &tv);
    r->backoff_ms = r->backoff_ms * 2 > RB_BACKOFF_MAX_MS ? RB_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void s_connect_failed(bus_t *bus, const char *why)
{
    rb_t *r = bus->impl;
    bus->stats.errors++;
    r->failures++;
    /* the first failure and then one in 30 at warn level, the others at debug */
    if (r->failures == 1 || r->failures % 30 == 0)
        log_warn("event=fanout_connect_failed fanout=redis server=%s:%d attempts=%lu reason=\"%s\"",
                 r->host, r->port, r->failures, why);
    else
        log_debug("event=fanout_connect_failed fanout=redis server=%s:%d reason=\"%s\"", r->host,
                  r->port, why);
    s_schedule_retry(bus);
}

/* ---- replies -------------------------------------------------------------- */

static void s_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    bus_t *bus = privdata;
    redisReply *rep = reply;
    (void)ac;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        bus->stats.errors++;
        log_warn("event=fanout_server_error fanout=redis reason=\"%.*s\"", (int)rep->len, rep->str);
    }
}

static void s_send_subscribe(bus_t *bus, const char *chan, size_t clen, int on);

/* One callback for every subscribed channel: messages and the server's
 * subscribe/unsubscribe confirmations. reply is NULL when the connection
 * goes away. */
static void s_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    bus_t *bus = privdata;
    rb_t *r = bus->impl;
    redisReply *rep = reply;
    (void)ac;
    if (!rep || r->closing)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        bus->stats.errors++;
        log_warn("event=fanout_server_error fanout=redis reason=\"%.*s\"", (int)rep->len, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    const redisReply *chan = rep->element[1];
    if (strcmp(kind, "message") == 0) {
        const redisReply *body = rep->element[2];
        long tl = bus_redis_topic(chan->str, chan->len);
        if (tl < 0 || body->type != REDIS_REPLY_STRING) {
            bus->stats.malformed++;
            return;
        }
        bus_deliver(bus, chan->str + 7, (size_t)tl, body->str, body->len);
    } else if (strcmp(kind, "unsubscribe") == 0) {
        uintptr_t n = (uintptr_t)map_get(r->unsub_pending, chan->str, chan->len);
        if (n > 1) {
            map_put(r->unsub_pending, chan->str, chan->len, (void *)(n - 1));
            return;
        }
        map_remove(r->unsub_pending, chan->str, chan->len);
        long tl = bus_redis_topic(chan->str, chan->len);
        /* wanted again meanwhile: subscribe now that hiredis forgot it */
        if (tl > 0 && map_get(bus->subs, chan->str + 7, (size_t)tl) && r->connected)
            s_send_subscribe(bus, chan->str, chan->len, 1);
    }
}

static void s_send_subscribe(bus_t *bus, const char *chan, size_t clen, int on)
{
    rb_t *r = bus->impl;
    const char *argv[2] = { on ? "SUBSCRIBE" : "UNSUBSCRIBE", chan };
    size_t argvlen[2] = { on ? 9 : 11, clen };
    if (redisAsyncCommandArgv(r->ac, s_sub_reply, bus, 2, argv, argvlen) != REDIS_OK) {
        bus->stats.errors++;
        log_warn("event=fanout_error fanout=redis op=%s", on ? "subscribe" : "unsubscribe");
        return;
    }
    if (!on) {
        uintptr_t n = (uintptr_t)map_get(r->unsub_pending, chan, clen);
        if (map_put(r->unsub_pending, chan, clen, (void *)(n + 1)) < 0)
            log_warn("event=fanout_error fanout=redis op=unsubscribe reason=\"out of memory\"");
    }
}

/* ---- connection ----------------------------------------------------------- */

static void s_on_connect(const redisAsyncContext *cac, int status)
{
    bus_t *bus = cac->data;
    rb_t *r = bus->impl;
    if (status != REDIS_OK) {
        r->ac = NULL;                   /* hiredis frees it after this callback */
        s_connect_failed(bus, cac->errstr);
        return;
    }
    r->connected = 1;
    r->backoff_ms = RB_BACKOFF_MIN_MS;
    bus->stats.connects++;
    log_info("event=fanout_connected fanout=redis server=%s:%d role=%s subscriptions=%zu", r->host,
             r->port, bus->role == BUS_PUB ? "pub" : "sub", map_size(bus->subs));
    r->failures = 0;
    if (r->password[0]) {
        const char *argv[2] = { "AUTH", r->password };
        size_t argvlen[2] = { 4, strlen(r->password) };
        redisAsyncCommandArgv(r->ac, s_cmd_reply, bus, 2, argv, argvlen);
    }
    if (bus->role == BUS_SUB) {
        size_t pos = 0, klen;
        const void *key;
        void *val;
        while (map_next(bus->subs, &pos, &key, &klen, &val)) {
            long cl = bus_redis_channel(key, klen, r->chan, sizeof r->chan);
            if (cl > 0)
                s_send_subscribe(bus, r->chan, (size_t)cl, 1);
        }
    }
}

static void s_clear_pending(rb_t *r)
{
    map_t *fresh = map_new();
    if (fresh) {
        map_destroy(&r->unsub_pending);
        r->unsub_pending = fresh;
    }
}

static void s_on_disconnect(const redisAsyncContext *cac, int status)
{
    bus_t *bus = cac->data;
    rb_t *r = bus->impl;
    r->ac = NULL;                       /* freed by hiredis after this callback */
    int was = r->connected;
    r->connected = 0;
    s_clear_pending(r);
    if (r->closing)
        return;
    if (was) {
        bus->stats.disconnects++;
        log_warn("event=fanout_disconnected fanout=redis server=%s:%d reason=\"%s\"", r->host,
                 r->port, status == REDIS_OK ? "closed" : cac->errstr);
    }
    r->backoff_ms = RB_BACKOFF_MIN_MS;
    s_schedule_retry(bus);
}

static void s_connect(bus_t *bus)
{
    rb_t *r = bus->impl;
    if (r->ac || r->closing)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        s_connect_failed(bus, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        s_connect_failed(bus, why);
        return;
    }
    ac->data = bus;
    if (redisLibeventAttach(ac, bus->base) != REDIS_OK) {
        redisAsyncFree(ac);
        s_connect_failed(bus, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, s_on_connect);
    redisAsyncSetDisconnectCallback(ac, s_on_disconnect);
    r->ac = ac;
}

/* ---- operations ----------------------------------------------------------- */

static int s_publish(bus_t *bus, const void *topic, size_t tlen, const void *body, size_t blen)
{
    rb_t *r = bus->impl;
    if (!r->connected || !r->ac)
        return -1;
    if (sdslen(r->ac->c.obuf) > BUS_BUFFER_MAX)
        return -1;                      /* the server does not keep up: drop */
    long cl = bus_redis_channel(topic, tlen, r->chan, sizeof r->chan);
    if (cl < 0)
        return -1;
    const char *argv[3] = { "PUBLISH", r->chan, body };
    size_t argvlen[3] = { 7, (size_t)cl, blen };
    return redisAsyncCommandArgv(r->ac, s_cmd_reply, bus, 3, argv, argvlen) == REDIS_OK ? 0 : -1;
}

static void s_subscribe(bus_t *bus, const void *topic, size_t tlen, int on)
{
    rb_t *r = bus->impl;
    if (!r->connected || !r->ac)
        return;                         /* sent on (re)connect */
    long cl = bus_redis_channel(topic, tlen, r->chan, sizeof r->chan);
    if (cl < 0)
        return;
    if (on && map_get(r->unsub_pending, r->chan, (size_t)cl))
        return;                         /* sent when the UNSUBSCRIBE is confirmed */
    s_send_subscribe(bus, r->chan, (size_t)cl, on);
}

static int s_ready(const bus_t *bus)
{
    const rb_t *r = bus->impl;
    return r->connected;
}

static void s_close(bus_t *bus)
{
    rb_t *r = bus->impl;
    if (!r)
        return;
    r->closing = 1;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);             /* runs the callbacks with NULL replies */
    }
    if (r->retry)
        event_free(r->retry);
    map_destroy(&r->unsub_pending);
    free(r);
    bus->impl = NULL;
}

static const bus_ops_t s_ops = { s_publish, s_subscribe, s_ready, NULL, s_close };

int bus_redis_open(bus_t *bus, const bus_config_t *cfg, char *err, size_t errcap)
{
    if (bus_rcluster_is_url(cfg->redis_url))
        return bus_rcluster_open(bus, cfg, err, errcap);   /* sharded pub/sub */
    bus->ops = &s_ops;
    rb_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    bus->impl = r;
    r->backoff_ms = RB_BACKOFF_MIN_MS;
    if (!cfg->redis_url || bus_redis_parse_url(cfg->redis_url, r->host, sizeof r->host, &r->port,
                                               r->password, sizeof r->password) < 0) {
        char shown[512];
        snprintf(err, errcap, "--redis-url: \"%s\" is not redis://[:password@]host[:port][/db]",
                 log_redact_url(cfg->redis_url ? cfg->redis_url : "", shown, sizeof shown));
        return -1;
    }
    r->unsub_pending = map_new();
    r->retry = event_new(bus->base, -1, 0, s_retry_cb, bus);
    if (!r->unsub_pending || !r->retry) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    s_connect(bus);
    return 0;
}
