/*
 * nbloom: a Bloom filter over SHA-256 hashes (the key process's signed
 * nonces), so that the usual case - a nonce never seen - is answered from
 * memory and only a possible match is looked up in the database.
 *
 * No false negatives: a hash added is always "maybe".  The probes are taken
 * from the hash itself (SHA-256 output is already uniform; nobody can aim a
 * nonce at a probe without inverting it).  The filter grows in generations:
 * when the newest one holds its capacity (16 bits per hash, 7 probes: about
 * 0.07% false positives), a new one twice its size takes the next hashes and
 * lookups ask every generation.  Nothing is ever rebuilt or removed, so a
 * hash dropped from the database stays "maybe" until the process restarts.
 */
#ifndef SV_NBLOOM_H
#define SV_NBLOOM_H

#include <stddef.h>
#include <stdint.h>

#define NBLOOM_GENS_MAX 40

struct nbloom;

/* A filter whose first generation holds at least cap hashes.  0 or SV_ENOMEM. */
int nbloom_new(size_t cap, struct nbloom **out);
void nbloom_free(struct nbloom *b);

/* Add h.  Never fails: with no memory for a new generation the newest one
 * takes more than its capacity (more false positives, never a false negative). */
void nbloom_add(struct nbloom *b, const uint8_t h[32]);

/* 0 if h was certainly never added; 1 if it may have been. */
int nbloom_maybe(const struct nbloom *b, const uint8_t h[32]);

/* Hashes added, and bytes of memory used (for the log and the tests). */
size_t nbloom_count(const struct nbloom *b);
size_t nbloom_bytes(const struct nbloom *b);

#endif
