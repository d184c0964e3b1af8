/*  ring - the broker's memory of recently published envelopes, by seq
 *
 *  A circular buffer of consecutive seqs [first, last]: each slot holds one
 *  envelope exactly as published (env_encode bytes, `prev` included) and its
 *  topic (nsp 0x00 room 0x00), in one malloc'd block. Capped by a message
 *  count and a byte total; the oldest entries are evicted first. Live
 *  messages are appended at the back (ring_push); a preload from the
 *  database, which arrives after live messages may already have been pushed,
 *  is added at the front (ring_push_front). The ring never has holes: a push
 *  that does not continue it clears it first.
 *
 *  Pure data structure: no I/O, not thread-safe, unit-tested.
 */
#ifndef BELFRY_RING_H
#define BELFRY_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct ring ring_t;

/* One stored message; pointers valid until the ring changes. */
typedef struct {
    uint64_t seq;
    const char *topic;  size_t topic_len;   /* nsp 0x00 room 0x00 */
    const char *env;    size_t env_len;     /* the envelope as published */
} ring_entry_t;

/* A ring of at most max_msgs messages (>= 1) and max_bytes bytes of topics
 * plus envelopes. NULL on allocation failure. */
ring_t *ring_new(size_t max_msgs, size_t max_bytes);
/* Frees everything; NULL-safe; sets *self_p to NULL. */
void ring_destroy(ring_t **self_p);
/* Forgets every message. */
void ring_clear(ring_t *self);

/* Appends seq. If the ring is not empty and seq != last + 1, the ring is
 * cleared first (it never has holes). Evicts from the front to stay within
 * the caps. Returns 0, or -1 on allocation failure (the ring is then
 * cleared, since it would otherwise have a hole) or if the message alone is
 * over the byte cap (ring cleared, same reason). */
int ring_push(ring_t *self, uint64_t seq, const void *topic, size_t topic_len,
              const void *env, size_t env_len);
/* Prepends seq, which must be first - 1 (or anything if the ring is empty).
 * Returns 0; 1 if the ring is full (count or bytes) and nothing was added;
 * -1 if seq does not fit there or on allocation failure (nothing changes). */
int ring_push_front(ring_t *self, uint64_t seq, const void *topic, size_t topic_len,
                    const void *env, size_t env_len);

/* Number of messages, first and last seq held (0 and 0 when empty). */
size_t ring_count(const ring_t *self);
uint64_t ring_first(const ring_t *self);
uint64_t ring_last(const ring_t *self);
size_t ring_bytes(const ring_t *self);
/* 1 if every seq > after up to ring_last is in the ring (the ring can
 * answer a replay from after), else 0. An empty ring holds nothing. */
int ring_covers(const ring_t *self, uint64_t after);

/* The entry with this seq: 0, or -1 if not held. */
int ring_get(const ring_t *self, uint64_t seq, ring_entry_t *out);

/* Predicate on a topic for ring_scan: 1 to take the message. */
typedef int (*ring_match_fn)(void *arg, const char *topic, size_t topic_len);

/* Walks seqs after+1 .. last in order, calling take(arg, entry) for each one
 * match() accepts, until `limit` were taken. Returns how many were taken;
 * *more is set to 1 if another matching message follows the last one taken
 * (there was one more match after the limit), else 0. */
size_t ring_scan(const ring_t *self, uint64_t after, size_t limit, ring_match_fn match,
                 void *match_arg, void (*take)(void *arg, const ring_entry_t *e),
                 void *take_arg, int *more);

#endif
