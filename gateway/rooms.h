/*  rooms - the gateway's room index
 *
 *  Maps a room key (the fan-out topic: namespace \0 room \0, see
 *  proto/envelope.h) to the Socket.IO sockets of this gateway that are in it.
 *  The first member of a room subscribes the room at the fan-out and the last
 *  one to leave unsubscribes it, through the callbacks given to rooms_new.
 *  Join and leave are O(1) (a member stores its index in the room's array).
 */
#ifndef BELFRY_ROOMS_H
#define BELFRY_ROOMS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rooms rooms_t;
typedef struct room room_t;

/* Called when a room gets its first member (subscribe 1, after it joined)
 * and when it loses its last one (subscribe 0, just before the room is
 * freed: the callback frees what it attached with room_set_data). */
typedef void (rooms_sub_fn)(void *arg, room_t *room, int subscribe);

/* One membership, kept by the member: which room and where in its array. */
typedef struct { room_t *room; uint32_t index; } room_slot_t;

rooms_t *rooms_new(rooms_sub_fn *sub_fn, void *arg);   /* NULL on allocation failure */
void rooms_destroy(rooms_t **self_p);  /* frees every room; members keep dangling slots */

/* Adds member to the room `key` and fills *slot. The caller keeps the slot
 * (its address is recorded: it must not move until rooms_leave) and
 * guarantees the member is not already in that room. 0, or -1 on allocation
 * failure. */
int rooms_join(rooms_t *self, const char *key, size_t klen, void *member, room_slot_t *slot);
/* Removes the member recorded in *slot; clears the slot. Safe on a cleared slot. */
void rooms_leave(rooms_t *self, room_slot_t *slot);
/* Tells the index that a slot was moved to a new address (the member's array
 * of slots was reallocated or compacted). Safe on a cleared slot. */
void rooms_slot_moved(room_slot_t *slot);

/* The room for key, or NULL if it has no member here. */
room_t *rooms_find(rooms_t *self, const char *key, size_t klen);
size_t rooms_count(const rooms_t *self);
/* Members of a room: room_members()[0..room_size()). The array is valid until
 * the next join or leave on any room. */
size_t room_size(const room_t *room);
void *const *room_members(const room_t *room);
const char *room_key(const room_t *room, size_t *klen);
/* One pointer of the subscriber's own per room (the fan-out keeps its
 * sequence tracking there). NULL until set. */
void *room_data(const room_t *room);
void room_set_data(room_t *room, void *data);
/* Iterates the rooms: start with *pos = 0; returns the next room or NULL.
 * No join or leave may happen during an iteration. */
room_t *rooms_next(const rooms_t *self, size_t *pos);

#endif
