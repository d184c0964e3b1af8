/*  map - a hash map from byte-string keys to pointers
 *
 *  Open addressing with linear probing; the map copies keys and never owns
 *  values. Keys are (ptr, len) and may hold any byte, NUL included.
 */
#ifndef BELFRY_MAP_H
#define BELFRY_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map map_t;

map_t *map_new(void);                       /* NULL on allocation failure */
void map_destroy(map_t **self_p);           /* frees keys, not values; NULL-safe */
size_t map_size(const map_t *self);
void *map_get(const map_t *self, const void *key, size_t klen);   /* NULL if absent */
/* Inserts or replaces. Returns 0, or -1 on allocation failure (map unchanged). */
int map_put(map_t *self, const void *key, size_t klen, void *value);
/* Removes the key; returns its value, or NULL if absent. */
void *map_remove(map_t *self, const void *key, size_t klen);
/* Iteration: start with *pos = 0; returns 1 and fills the outputs for each
 * entry, then 0. The map must not be modified during an iteration. */
int map_next(const map_t *self, size_t *pos, const void **key, size_t *klen, void **value);
/* The hash used (FNV-1a 64), exported for other tables. */
uint64_t map_hash(const void *key, size_t klen);

#endif
