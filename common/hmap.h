/*
 * hmap: a hash map from byte-string keys to non-NULL pointers, for lookups
 * that must not grow with the number of entries (per-shadow state in the key
 * process, per-address counts in the network process).
 *
 * Keys are copied; values are the caller's.  Buckets are chosen with SipHash
 * (libsodium's crypto_shorthash) under a key drawn at hmap_new(), so clients
 * that choose keys (names, addresses) cannot pile them into one bucket.  The
 * table doubles when it holds more entries than buckets.  Not thread-safe.
 */
#ifndef SV_HMAP_H
#define SV_HMAP_H

#include <stddef.h>

struct hmap;

/* A map sized for about hint entries (it grows past that). 0 or SV_ENOMEM. */
int hmap_new(size_t hint, struct hmap **out);

/* Free the map, and each value with free_val unless it is NULL. */
void hmap_free(struct hmap *m, void (*free_val)(void *));

/* The value for key, or NULL. */
void *hmap_get(const struct hmap *m, const void *key, size_t klen);

/* Set key's value (val not NULL), replacing any: 0, or SV_ENOMEM (map unchanged). */
int hmap_put(struct hmap *m, const void *key, size_t klen, void *val);

/* Remove key: its value, or NULL if it was not there. */
void *hmap_del(struct hmap *m, const void *key, size_t klen);

/* Call fn with each value, in no particular order; fn must not change the map. */
void hmap_each(const struct hmap *m, void (*fn)(void *val, void *arg), void *arg);

/* Remove the entries whose value pred() says 1 to (freeing each with free_val
 * unless it is NULL): how many went. */
size_t hmap_remove_if(
    struct hmap *m, int (*pred)(void *val, void *arg), void *arg, void (*free_val)(void *));

/* Remove every entry, freeing each value with free_val unless it is NULL. */
void hmap_clear(struct hmap *m, void (*free_val)(void *));

size_t hmap_size(const struct hmap *m);

#endif
