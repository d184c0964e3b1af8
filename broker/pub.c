/*  pub - the fan-out side of the broker: publishes envelopes on the bus
 *
 *  Design: one scratch topic buffer and one msgpack sbuffer are reused for
 *  every message, so publishing allocates only when a room is first seen.
 *  The bus never blocks (a ZeroMQ PUB socket drops at the high-water mark,
 *  Redis and NATS drop while disconnected or over their buffer cap), so an
 *  error is counted, not retried: the gateways repair the gap from prev.
 */
#include "pub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "log.h"
#include "map.h"

struct pub {
    bus_t *bus;             /* the fan-out transport (publisher) */
    map_t *rooms;           /* topic -> uint64_t * (last seq published there) */
    char *topic;            /* scratch topic buffer */
    size_t topic_cap;       /* its capacity */
    msgpack_sbuffer sb;     /* scratch envelope buffer */
    size_t last_tlen;       /* topic bytes of the last message (in topic) */
    int last_ok;            /* the last message was encoded (sb holds it) */
    uint64_t last_seq;      /* last seq published (or the start position) */
    uint64_t sent, errors;  /* counters */
    uint64_t bytes;         /* envelope bytes sent */
};

pub_t *pub_new(void *zctx, const char *endpoint, int hwm, char *err, size_t errcap)
{
    bus_config_t cfg = { .kind = BUS_ZMQ, .zmq_ctx = zctx, .zmq_endpoints = endpoint, .hwm = hwm };
    return pub_new_bus(NULL, &cfg, err, errcap);
}

pub_t *pub_new_bus(struct event_base *base, const bus_config_t *cfg, char *err, size_t errcap)
{
    pub_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    msgpack_sbuffer_init(&self->sb);
    self->rooms = map_new();
    if (!self->rooms) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    bus_config_t c = *cfg;
    if (c.hwm <= 0)
        c.hwm = PUB_SNDHWM;
    c.on_message = NULL;
    self->bus = bus_new(base, &c, BUS_PUB, err, errcap);
    if (!self->bus)
        goto fail;
    return self;
fail:
    pub_destroy(&self);
    return NULL;
}

int pub_ready(const pub_t *self)
{
    return self && bus_ready(self->bus);
}

static void s_clear_rooms(map_t *rooms)
{
    size_t pos = 0;
    const void *k;
    size_t klen;
    void *v;
    while (map_next(rooms, &pos, &k, &klen, &v))
        free(v);
}

void pub_destroy(pub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pub_t *self = *self_p;
    bus_destroy(&self->bus);
    if (self->rooms) {
        s_clear_rooms(self->rooms);
        map_destroy(&self->rooms);
    }
    free(self->topic);
    msgpack_sbuffer_destroy(&self->sb);
    free(self);
    *self_p = NULL;
}

/* Returns the room's prev slot (creating it), or NULL on allocation failure. */
static uint64_t *s_room_slot(pub_t *self, const char *topic, size_t len)
{
    uint64_t *slot = map_get(self->rooms, topic, len);
    if (slot)
        return slot;
    if (map_size(self->rooms) >= PUB_ROOMS_MAX) {
        log_warn("event=rooms_reset rooms=%zu reason=cap", map_size(self->rooms));
        s_clear_rooms(self->rooms);
        map_destroy(&self->rooms);
        self->rooms = map_new();
        if (!self->rooms)
            return NULL;
    }
    slot = calloc(1, sizeof *slot);
    if (!slot)
        return NULL;
    if (map_put(self->rooms, topic, len, slot) < 0) {
        free(slot);
        return NULL;
    }
    return slot;
}

int pub_send(pub_t *self, env_msg_t *m)
{
    self->last_ok = 0;
    size_t need = m->nsp_len + m->room_len + 2;
    if (need > self->topic_cap) {
        size_t cap = need < 256 ? 256 : need * 2;
        char *t = realloc(self->topic, cap);
        if (!t)
            goto fail;
        self->topic = t;
        self->topic_cap = cap;
    }
    int tlen = env_topic(self->topic, self->topic_cap, m->nsp, m->nsp_len, m->room, m->room_len);
    if (tlen < 0)
        goto fail;
    if (m->seq == 0) {
        m->prev = 0;                    /* ephemeral: no place in the room's chain */
    } else {
        uint64_t *slot = self->rooms ? s_room_slot(self, self->topic, (size_t)tlen) : NULL;
        m->prev = slot ? *slot : 0;
        if (slot)
            *slot = m->seq;
        if (m->seq > self->last_seq)
            self->last_seq = m->seq;
    }

    self->sb.size = 0;
    if (env_encode(&self->sb, m) < 0)
        goto fail;
    self->last_tlen = (size_t)tlen;
    self->last_ok = 1;
    if (bus_publish(self->bus, self->topic, (size_t)tlen, self->sb.data, self->sb.size) < 0)
        goto fail;
    self->sent++;
    self->bytes += self->sb.size;
    return 0;
fail:
    self->errors++;
    log_warn("event=publish_error seq=%llu id=%lld errno=%d",
             (unsigned long long)m->seq, (long long)m->id, errno);
    return -1;
}

uint64_t pub_last_seq(const pub_t *self)
{
    return self->last_seq;
}

void pub_set_last_seq(pub_t *self, uint64_t seq)
{
    if (seq > self->last_seq)
        self->last_seq = seq;
}

uint64_t pub_sent_count(const pub_t *self)
{
    return self->sent;
}

uint64_t pub_error_count(const pub_t *self)
{
    return self->errors;
}

uint64_t pub_sent_bytes(const pub_t *self)
{
    return self->bytes;
}

int pub_last_envelope(const pub_t *self, const char **topic, size_t *topic_len,
                      const char **env, size_t *env_len)
{
    if (!self->last_ok)
        return -1;
    *topic = self->topic;
    *topic_len = self->last_tlen;
    *env = self->sb.data;
    *env_len = self->sb.size;
    return 0;
}

int pub_heartbeat(pub_t *self, const char *epoch)
{
    msgpack_packer pk;
    size_t el = strlen(epoch);
    self->last_ok = 0;
    self->sb.size = 0;
    msgpack_packer_init(&pk, &self->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "seq", 3);
    msgpack_pack_uint64(&pk, self->last_seq);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "epoch", 5);
    msgpack_pack_str(&pk, el);
    msgpack_pack_str_body(&pk, epoch, el);
    if (bus_publish(self->bus, PUB_HB_TOPIC, PUB_HB_TOPIC_LEN, self->sb.data, self->sb.size) < 0) {
        self->errors++;
        return -1;
    }
    return 0;
}

uint64_t pub_room_last(const pub_t *self, const char *topic, size_t len)
{
    const uint64_t *slot = self->rooms ? map_get(self->rooms, topic, len) : NULL;
    return slot ? *slot : 0;
}

int pub_seed_room(pub_t *self, const char *topic, size_t len, uint64_t seq)
{
    if (!self->rooms || map_get(self->rooms, topic, len))
        return 0;
    uint64_t *slot = s_room_slot(self, topic, len);
    if (!slot)
        return -1;
    *slot = seq;
    return 0;
}

void pub_reset_rooms(pub_t *self)
{
    if (self->rooms) {
        s_clear_rooms(self->rooms);
        map_destroy(&self->rooms);
    }
    self->rooms = map_new();
    if (!self->rooms)
        log_error("event=rooms_reset_failed reason=\"out of memory\"");
}
