/*  rooms - the gateway's room index
 *
 *  A room is a growable array of member pointers plus, for each member, the
 *  address of the member's room_slot_t so that a removal can swap the last
 *  member into the hole and fix that member's recorded index. Rooms live in a
 *  map keyed by the topic bytes and are freed when they empty.
 */
#include "rooms.h"
#include "map.h"

#include <stdlib.h>
#include <string.h>

struct room {
    void **members;             //  Member pointers
    room_slot_t **slots;        //  Each member's slot, to fix indexes on removal
    uint32_t size, cap;         //  Members in use, allocated
    void *data;                 //  The subscriber's per-room state
    size_t klen;                //  Key length
    char key[];                 //  Key bytes (topic), not NUL-terminated
};

struct rooms {
    map_t *map;                 //  key -> room_t*
    rooms_sub_fn *sub_fn;       //  Subscription callback
    void *arg;                  //  Its argument
};

rooms_t *rooms_new(rooms_sub_fn *sub_fn, void *arg)
{
    rooms_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->map = map_new();
    if (!self->map) {
        free(self);
        return NULL;
    }
    self->sub_fn = sub_fn;
    self->arg = arg;
    return self;
}

static void s_room_free(room_t *room)
{
    free(room->members);
    free(room->slots);
    free(room);
}

void rooms_destroy(rooms_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rooms_t *self = *self_p;
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    while (map_next(self->map, &pos, &k, &kl, &v))
        s_room_free(v);
    map_destroy(&self->map);
    free(self);
    *self_p = NULL;
}

int rooms_join(rooms_t *self, const char *key, size_t klen, void *member, room_slot_t *slot)
{
    room_t *room = map_get(self->map, key, klen);
    int created = 0;
    if (!room) {
        room = calloc(1, sizeof *room + klen);
        if (!room)
            return -1;
        memcpy(room->key, key, klen);
        room->klen = klen;
        if (map_put(self->map, key, klen, room) < 0) {
            free(room);
            return -1;
        }
        created = 1;
    }
    if (room->size == room->cap) {
        uint32_t ncap = room->cap ? room->cap * 2 : 4;
        void **m = realloc(room->members, ncap * sizeof *m);
        if (m)
            room->members = m;
        room_slot_t **s = m ? realloc(room->slots, ncap * sizeof *s) : NULL;
        if (s)
            room->slots = s;
        if (!m || !s) {
            if (created) {
                map_remove(self->map, key, klen);
                s_room_free(room);
            }
            return -1;
        }
        room->cap = ncap;
    }
    slot->room = room;
    slot->index = room->size;
    room->members[room->size] = member;
    room->slots[room->size] = slot;
    room->size++;
    if (created && self->sub_fn)
        self->sub_fn(self->arg, room, 1);
    return 0;
}

void rooms_leave(rooms_t *self, room_slot_t *slot)
{
    room_t *room = slot->room;
    if (!room)
        return;
    uint32_t i = slot->index, last = room->size - 1;
    if (i != last) {
        room->members[i] = room->members[last];
        room->slots[i] = room->slots[last];
        room->slots[i]->index = i;
    }
    room->size--;
    slot->room = NULL;
    slot->index = 0;
    if (room->size == 0) {
        if (self->sub_fn)
            self->sub_fn(self->arg, room, 0);
        map_remove(self->map, room->key, room->klen);
        s_room_free(room);
    }
}

void rooms_slot_moved(room_slot_t *slot)
{
    if (slot->room)
        slot->room->slots[slot->index] = slot;
}

room_t *rooms_find(rooms_t *self, const char *key, size_t klen)
{
    return map_get(self->map, key, klen);
}

size_t rooms_count(const rooms_t *self)
{
    return map_size(self->map);
}

size_t room_size(const room_t *room)
{
    return room->size;
}

void *const *room_members(const room_t *room)
{
    return room->members;
}

const char *room_key(const room_t *room, size_t *klen)
{
    *klen = room->klen;
    return room->key;
}

void *room_data(const room_t *room)
{
    return room->data;
}

void room_set_data(room_t *room, void *data)
{
    room->data = data;
}

room_t *rooms_next(const rooms_t *self, size_t *pos)
{
    const void *k;
    size_t kl;
    void *v;
    return map_next(self->map, pos, &k, &kl, &v) ? v : NULL;
}
