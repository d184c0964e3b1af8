/*  bus - the broker -> gateway fan-out transport, pluggable
 *
 *  Design: bus.c is the generic front: it checks arguments, keeps the
 *  subscription set (a map of topics, so that Redis can re-subscribe after
 *  a reconnect and a repeated subscribe costs nothing) and the counters, and
 *  calls the backend through a small table of operations (bus_internal.h).
 *  The name mappings of the Redis and NATS backends live here too, as pure
 *  functions, so the unit tests reach them without a server.
 */
#include "bus_internal.h"
#include "b64.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NATS_PREFIX[] = "belfry.";    /* 7 bytes */
static const char REDIS_PREFIX[] = "belfry:";   /* 7 bytes */
#define PREFIX_LEN 7

/* ---- names ---------------------------------------------------------------- */

int bus_kind_parse(const char *name, bus_kind_t *out)
{
    if (!name)
        return -1;
    if (strcmp(name, "zmq") == 0 || strcmp(name, "zeromq") == 0)
        *out = BUS_ZMQ;
    else if (strcmp(name, "redis") == 0)
        *out = BUS_REDIS;
    else if (strcmp(name, "nats") == 0)
        *out = BUS_NATS;
    else
        return -1;
    return 0;
}

const char *bus_kind_name(bus_kind_t kind)
{
    switch (kind) {
    case BUS_ZMQ: return "zmq";
    case BUS_REDIS: return "redis";
    case BUS_NATS: return "nats";
    }
    return "?";
}

long bus_nats_subject(const void *topic, size_t tlen, char *out, size_t cap)
{
    if (tlen == 0 || tlen > BUS_TOPIC_MAX || cap < PREFIX_LEN + b64url_encoded_len(tlen) + 1)
        return -1;
    memcpy(out, NATS_PREFIX, PREFIX_LEN);
    size_t n = b64url_encode(topic, tlen, out + PREFIX_LEN);
    return (long)(PREFIX_LEN + n);
}

long bus_nats_topic(const char *subj, size_t slen, void *out, size_t cap)
{
    if (slen <= PREFIX_LEN || memcmp(subj, NATS_PREFIX, PREFIX_LEN) != 0)
        return -1;
    size_t enc = slen - PREFIX_LEN;
    if (enc > b64url_encoded_len(BUS_TOPIC_MAX) || cap < enc * 3 / 4 + 3)
        return -1;
    /* b64url_decode also takes padding; our subjects never carry any, and a
     * '=' would make two spellings of one topic */
    if (memchr(subj + PREFIX_LEN, '=', enc))
        return -1;
    long n = b64url_decode(subj + PREFIX_LEN, enc, out);
    return n > 0 ? n : -1;
}

long bus_redis_channel(const void *topic, size_t tlen, char *out, size_t cap)
{
    if (tlen == 0 || tlen > BUS_TOPIC_MAX || cap < PREFIX_LEN + tlen)
        return -1;
    memcpy(out, REDIS_PREFIX, PREFIX_LEN);
    memcpy(out + PREFIX_LEN, topic, tlen);
    return (long)(PREFIX_LEN + tlen);
}

long bus_redis_topic(const char *chan, size_t clen)
{
    if (clen <= PREFIX_LEN || clen - PREFIX_LEN > BUS_TOPIC_MAX ||
        memcmp(chan, REDIS_PREFIX, PREFIX_LEN) != 0)
        return -1;
    return (long)(clen - PREFIX_LEN);
}

int bus_redis_parse_url(const char *url, char *host, size_t hostcap, int *port,
                        char *password, size_t passcap)
{
    if (!url || hostcap == 0 || passcap == 0)
        return -1;
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return -1;                              /* rediss:// (TLS), unix:// ... */
    password[0] = 0;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash)) {
        const char *user_end = memchr(p, ':', (size_t)(at - p));
        const char *pw = user_end ? user_end + 1 : p;   /* [user]:password@ or password@ */
        size_t pl = (size_t)(at - pw);
        if (pl >= passcap)
            return -1;
        memcpy(password, pw, pl);
        password[pl] = 0;
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= hostcap)
        return -1;
    memcpy(host, p, hl);
    host[hl] = 0;
    p += hl;
    *port = 6379;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/'))
            return -1;
        *port = (int)v;
        p = end;
    }
    if (*p == '/') {
        p++;
        p += strspn(p, "0123456789");
    }
    return *p ? -1 : 0;
}

/* ---- the front ------------------------------------------------------------ */

bus_t *bus_new(struct event_base *base, const bus_config_t *cfg, bus_role_t role,
               char *err, size_t errcap)
{
    if (!cfg || (!base && !(cfg->kind == BUS_ZMQ && role == BUS_PUB)) ||
        (role == BUS_SUB && !cfg->on_message)) {
        snprintf(err, errcap, "bus_new: missing loop, settings or message callback");
        return NULL;
    }
    bus_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    self->kind = cfg->kind;
    self->role = role;
    self->base = base;
    self->on_message = cfg->on_message;
    self->arg = cfg->arg;
    self->hwm = cfg->hwm > 0 ? cfg->hwm : 1000000;
    self->subs = map_new();
    if (!self->subs) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    int rc;
    switch (cfg->kind) {
    case BUS_ZMQ: rc = bus_zmq_open(self, cfg, err, errcap); break;
    case BUS_REDIS: rc = bus_redis_open(self, cfg, err, errcap); break;
    case BUS_NATS: rc = bus_nats_open(self, cfg, err, errcap); break;
    default:
        snprintf(err, errcap, "unknown fan-out kind %d", (int)cfg->kind);
        rc = -1;
    }
    if (rc < 0)
        goto fail;
    return self;
fail:
    bus_destroy(&self);
    return NULL;
}

void bus_destroy(bus_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_t *self = *self_p;
    if (self->ops && self->ops->close)
        self->ops->close(self);
    map_destroy(&self->subs);
    free(self);
    *self_p = NULL;
}

int bus_publish(bus_t *self, const void *topic, size_t tlen, const void *body, size_t blen)
{
    if (tlen == 0 || tlen > BUS_TOPIC_MAX || self->role != BUS_PUB ||
        self->ops->publish(self, topic, tlen, body, blen) < 0) {
        self->stats.publish_errors++;
        return -1;
    }
    self->stats.published++;
    return 0;
}

int bus_subscribe(bus_t *self, const void *topic, size_t tlen)
{
    if (tlen == 0 || tlen > BUS_TOPIC_MAX || self->role != BUS_SUB)
        return -1;
    if (map_get(self->subs, topic, tlen))
        return 0;
    if (map_put(self->subs, topic, tlen, (void *)1) < 0)
        return -1;
    self->ops->subscribe(self, topic, tlen, 1);
    return 0;
}

int bus_unsubscribe(bus_t *self, const void *topic, size_t tlen)
{
    if (tlen == 0 || tlen > BUS_TOPIC_MAX || self->role != BUS_SUB)
        return -1;
    if (!map_remove(self->subs, topic, tlen))
        return 0;
    self->ops->subscribe(self, topic, tlen, 0);
    return 0;
}

int bus_ready(const bus_t *self)
{
    return self && self->ops->ready(self);
}

bus_kind_t bus_kind(const bus_t *self)
{
    return self->kind;
}

void bus_stats(const bus_t *self, bus_stats_t *out)
{
    *out = self->stats;
    if (self->ops->stats)
        self->ops->stats(self, out);
}

void bus_set_yield(bus_t *self, int (*yield)(void *arg), void *arg)
{
    self->yield = yield;
    self->yield_arg = arg;
}

void bus_deliver(bus_t *self, const void *topic, size_t tlen, const void *body, size_t blen)
{
    self->stats.received++;
    self->on_message(self->arg, topic, tlen, body, blen);
}
