/*  ring - the broker's memory of recently published envelopes, by seq
 *
 *  Design: a fixed array of max_msgs slot pointers used as a circular
 *  buffer; `head` is the index of the slot holding `first`, and slot i holds
 *  seq first + ((i - head) mod cap). A slot is one malloc'd block: header,
 *  topic bytes, envelope bytes. Since seqs are consecutive, a lookup by seq
 *  is an index computation and a replay is a forward walk.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    size_t topic_len, env_len;
    char data[];                /* topic bytes, then envelope bytes */
} slot_t;

struct ring {
    slot_t **slots;             /* cap slot pointers */
    size_t cap;                 /* max messages */
    size_t max_bytes;           /* max bytes of topics + envelopes */
    size_t head;                /* index of the oldest slot */
    size_t count;               /* slots in use */
    size_t bytes;               /* their topic + envelope bytes */
};

ring_t *ring_new(size_t max_msgs, size_t max_bytes)
{
    if (max_msgs < 1)
        max_msgs = 1;
    ring_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc(max_msgs, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->cap = max_msgs;
    self->max_bytes = max_bytes;
    return self;
}

void ring_clear(ring_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        size_t k = (self->head + i) % self->cap;
        free(self->slots[k]);
        self->slots[k] = NULL;
    }
    self->head = self->count = self->bytes = 0;
}

void ring_destroy(ring_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ring_t *self = *self_p;
    ring_clear(self);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static slot_t *s_slot_new(uint64_t seq, const void *topic, size_t tl, const void *env, size_t el)
{
    slot_t *s = malloc(sizeof *s + tl + el);
    if (!s)
        return NULL;
    s->seq = seq;
    s->topic_len = tl;
    s->env_len = el;
    memcpy(s->data, topic, tl);
    memcpy(s->data + tl, env, el);
    return s;
}

static void s_pop_front(ring_t *self)
{
    slot_t *s = self->slots[self->head];
    self->bytes -= s->topic_len + s->env_len;
    free(s);
    self->slots[self->head] = NULL;
    self->head = (self->head + 1) % self->cap;
    self->count--;
}

int ring_push(ring_t *self, uint64_t seq, const void *topic, size_t topic_len,
              const void *env, size_t env_len)
{
    size_t need = topic_len + env_len;
    if (self->count && seq != ring_last(self) + 1)
        ring_clear(self);
    if (need > self->max_bytes) {
        ring_clear(self);
        return -1;
    }
    slot_t *s = s_slot_new(seq, topic, topic_len, env, env_len);
    if (!s) {
        ring_clear(self);
        return -1;
    }
    while (self->count && (self->count == self->cap || self->bytes + need > self->max_bytes))
        s_pop_front(self);
    self->slots[(self->head + self->count) % self->cap] = s;
    self->count++;
    self->bytes += need;
    return 0;
}

int ring_push_front(ring_t *self, uint64_t seq, const void *topic, size_t topic_len,
                    const void *env, size_t env_len)
{
    size_t need = topic_len + env_len;
    if (self->count && (ring_first(self) == 0 || seq != ring_first(self) - 1))
        return -1;
    if (self->count == self->cap || self->bytes + need > self->max_bytes)
        return 1;
    slot_t *s = s_slot_new(seq, topic, topic_len, env, env_len);
    if (!s)
        return -1;
    self->head = (self->head + self->cap - 1) % self->cap;
    self->slots[self->head] = s;
    self->count++;
    self->bytes += need;
    return 0;
}

size_t ring_count(const ring_t *self)
{
    return self->count;
}

uint64_t ring_first(const ring_t *self)
{
    return self->count ? self->slots[self->head]->seq : 0;
}

uint64_t ring_last(const ring_t *self)
{
    return self->count ? self->slots[(self->head + self->count - 1) % self->cap]->seq : 0;
}

size_t ring_bytes(const ring_t *self)
{
    return self->bytes;
}

int ring_covers(const ring_t *self, uint64_t after)
{
    return self->count > 0 && after + 1 >= ring_first(self);
}

static void s_entry(const slot_t *s, ring_entry_t *out)
{
    out->seq = s->seq;
    out->topic = s->data;
    out->topic_len = s->topic_len;
    out->env = s->data + s->topic_len;
    out->env_len = s->env_len;
}

int ring_get(const ring_t *self, uint64_t seq, ring_entry_t *out)
{
    if (!self->count || seq < ring_first(self) || seq > ring_last(self))
        return -1;
    size_t k = (self->head + (size_t)(seq - ring_first(self))) % self->cap;
    s_entry(self->slots[k], out);
    return 0;
}

size_t ring_scan(const ring_t *self, uint64_t after, size_t limit, ring_match_fn match,
                 void *match_arg, void (*take)(void *arg, const ring_entry_t *e),
                 void *take_arg, int *more)
{
    size_t taken = 0;
    *more = 0;
    if (!self->count || after >= ring_last(self))
        return 0;
    uint64_t first = ring_first(self);
    size_t i = after + 1 > first ? (size_t)(after + 1 - first) : 0;
    for (; i < self->count; i++) {
        const slot_t *s = self->slots[(self->head + i) % self->cap];
        if (!match(match_arg, s->data, s->topic_len))
            continue;
        if (taken == limit) {
            *more = 1;
            break;
        }
        ring_entry_t e;
        s_entry(s, &e);
        take(take_arg, &e);
        taken++;
    }
    return taken;
}
