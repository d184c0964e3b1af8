/*  map - a hash map from byte-string keys to pointers
 *
 *  Design: one array of slots, a power of two long, open addressing with
 *  linear probing on FNV-1a 64. Each slot keeps the full hash so growing and
 *  probing rarely touch the keys. Deletion uses backward shift (no
 *  tombstones): after a removal, the following entries of the cluster move
 *  back when that brings them closer to their home slot, so a lookup can stop
 *  at the first empty slot and the table never fills with dead entries. The
 *  table doubles before an insert would pass 70% load, so there is always an
 *  empty slot and every probe loop terminates. Keys are copied (malloc) and
 *  freed by the map; values are borrowed.
 */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#define MAP_MIN_CAP 16

typedef struct {
    char *key;          /* copied key, or NULL: empty slot */
    size_t klen;        /* key length */
    uint64_t hash;      /* map_hash(key) */
    void *value;        /* borrowed */
} s_slot_t;

struct map {
    s_slot_t *slots;    /* cap slots */
    size_t cap;         /* power of two */
    size_t size;        /* occupied slots */
};

uint64_t map_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

map_t *map_new(void)
{
    map_t *self = malloc(sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc(MAP_MIN_CAP, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->cap = MAP_MIN_CAP;
    self->size = 0;
    return self;
}

void map_destroy(map_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    map_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].key);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

size_t map_size(const map_t *self)
{
    return self->size;
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t s_find(const map_t *self, const void *key, size_t klen, uint64_t h)
{
    size_t mask = self->cap - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        const s_slot_t *s = &self->slots[i];
        if (!s->key)
            return i;
        if (s->hash == h && s->klen == klen && (klen == 0 || memcmp(s->key, key, klen) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

void *map_get(const map_t *self, const void *key, size_t klen)
{
    size_t i = s_find(self, key, klen, map_hash(key, klen));
    return self->slots[i].key ? self->slots[i].value : NULL;
}

/* Doubles the table. 0, or -1 (table unchanged) on allocation failure. */
static int s_grow(map_t *self)
{
    if (self->cap > SIZE_MAX / 2 / sizeof(s_slot_t))
        return -1;
    size_t ncap = self->cap * 2;
    s_slot_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    size_t mask = ncap - 1;
    for (size_t i = 0; i < self->cap; i++) {
        s_slot_t *s = &self->slots[i];
        if (!s->key)
            continue;
        size_t j = (size_t)s->hash & mask;
        while (ns[j].key)
            j = (j + 1) & mask;
        ns[j] = *s;
    }
    free(self->slots);
    self->slots = ns;
    self->cap = ncap;
    return 0;
}

int map_put(map_t *self, const void *key, size_t klen, void *value)
{
    uint64_t h = map_hash(key, klen);
    size_t i = s_find(self, key, klen, h);
    if (self->slots[i].key) {
        self->slots[i].value = value;
        return 0;
    }
    /* keep load <= 70% after this insert */
    if ((self->size + 1) * 10 > self->cap * 7) {
        if (s_grow(self) < 0)
            return -1;
        i = s_find(self, key, klen, h);
    }
    char *copy = malloc(klen ? klen : 1);
    if (!copy)
        return -1;
    if (klen)
        memcpy(copy, key, klen);
    self->slots[i] = (s_slot_t){ copy, klen, h, value };
    self->size++;
    return 0;
}

void *map_remove(map_t *self, const void *key, size_t klen)
{
    size_t i = s_find(self, key, klen, map_hash(key, klen));
    s_slot_t *slots = self->slots;
    if (!slots[i].key)
        return NULL;
    void *value = slots[i].value;
    free(slots[i].key);
    slots[i].key = NULL;
    self->size--;

    /* Backward shift: pull later members of the cluster into the hole when
     * the hole lies on their probe path (between their home and them). */
    size_t mask = self->cap - 1;
    size_t hole = i;
    size_t j = (i + 1) & mask;
    while (slots[j].key) {
        size_t home = (size_t)slots[j].hash & mask;
        /* distance from home to j, and from home to the hole, cyclically */
        if (((hole - home) & mask) < ((j - home) & mask)) {
            slots[hole] = slots[j];
            slots[j].key = NULL;
            hole = j;
        }
        j = (j + 1) & mask;
    }
    return value;
}

int map_next(const map_t *self, size_t *pos, const void **key, size_t *klen, void **value)
{
    for (size_t i = *pos; i < self->cap; i++) {
        const s_slot_t *s = &self->slots[i];
        if (!s->key)
            continue;
        if (key)
            *key = s->key;
        if (klen)
            *klen = s->klen;
        if (value)
            *value = s->value;
        *pos = i + 1;
        return 1;
    }
    *pos = self->cap;
    return 0;
}
