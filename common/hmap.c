/*
 * hmap: chained hash map with SipHash-keyed buckets (see hmap.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hmap.h"
#include "sv_err.h"

#define HMAP_MIN_BUCKETS 16
#define HMAP_MAX_BUCKETS ((size_t)1 << 24)

struct hent {
	struct hent *next;
	uint64_t hash;
	void *val;
	size_t klen;
	unsigned char key[]; /* klen bytes */
};

struct hmap {
	struct hent **b;
	size_t nb; /* a power of two */
	size_t size;
	unsigned char sk[crypto_shorthash_KEYBYTES];
};

static uint64_t
hash_of(const struct hmap *m, const void *key, size_t klen)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, key, klen, m->sk);
	memcpy(&v, h, sizeof(v));
	return v;
}

int
hmap_new(size_t hint, struct hmap **out)
{
	struct hmap *m;

	*out = NULL;
	if (sodium_init() < 0 || (m = calloc(1, sizeof(*m))) == NULL)
		return sv_seterr(SV_ENOMEM, "hash map: out of memory");
	for (m->nb = HMAP_MIN_BUCKETS; m->nb < hint && m->nb < HMAP_MAX_BUCKETS; m->nb <<= 1)
		;
	if ((m->b = calloc(m->nb, sizeof(*m->b))) == NULL) {
		free(m);
		return sv_seterr(SV_ENOMEM, "hash map: out of memory");
	}
	crypto_shorthash_keygen(m->sk);
	*out = m;
	return 0;
}

void
hmap_clear(struct hmap *m, void (*free_val)(void *))
{
	struct hent *e, *next;
	size_t i;

	for (i = 0; i < m->nb; i++) {
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			if (free_val != NULL)
				free_val(e->val);
			free(e);
		}
		m->b[i] = NULL;
	}
	m->size = 0;
}

void
hmap_each(const struct hmap *m, void (*fn)(void *val, void *arg), void *arg)
{
	const struct hent *e;
	size_t i;

	for (i = 0; i < m->nb; i++)
		for (e = m->b[i]; e != NULL; e = e->next)
			fn(e->val, arg);
}

size_t
hmap_remove_if(
    struct hmap *m, int (*pred)(void *val, void *arg), void *arg, void (*free_val)(void *))
{
	struct hent **p, *e;
	size_t i, n = 0;

	for (i = 0; i < m->nb; i++) {
		for (p = &m->b[i]; (e = *p) != NULL;) {
			if (!pred(e->val, arg)) {
				p = &e->next;
				continue;
			}
			*p = e->next;
			if (free_val != NULL)
				free_val(e->val);
			free(e);
			n++;
		}
	}
	m->size -= n;
	return n;
}

void
hmap_free(struct hmap *m, void (*free_val)(void *))
{
	if (m == NULL)
		return;
	hmap_clear(m, free_val);
	free(m->b);
	free(m);
}

/* The link that points at key's entry, or the NULL link at its chain's end. */
static struct hent **
find(const struct hmap *m, const void *key, size_t klen, uint64_t h)
{
	struct hent **p;

	for (p = &m->b[h & (m->nb - 1)]; *p != NULL; p = &(*p)->next)
		if ((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0)
			break;
	return p;
}

void *
hmap_get(const struct hmap *m, const void *key, size_t klen)
{
	struct hent *e = *find(m, key, klen, hash_of(m, key, klen));

	return e ? e->val : NULL;
}

/* Double the buckets; on no memory keep the old ones (longer chains, still right). */
static void
grow(struct hmap *m)
{
	size_t nb = m->nb * 2, i;
	struct hent **b, *e, *next;

	if (nb > HMAP_MAX_BUCKETS || (b = calloc(nb, sizeof(*b))) == NULL)
		return;
	for (i = 0; i < m->nb; i++)
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int
hmap_put(struct hmap *m, const void *key, size_t klen, void *val)
{
	uint64_t h = hash_of(m, key, klen);
	struct hent **p = find(m, key, klen, h), *e;

	if (val == NULL)
		return sv_seterr(SV_EINVAL, "hash map: a value may not be NULL");
	if (*p != NULL) {
		(*p)->val = val;
		return 0;
	}
	if ((e = malloc(sizeof(*e) + klen)) == NULL)
		return sv_seterr(SV_ENOMEM, "hash map: out of memory");
	e->next = NULL;
	e->hash = h;
	e->val = val;
	e->klen = klen;
	memcpy(e->key, key, klen);
	*p = e;
	if (++m->size > m->nb)
		grow(m);
	return 0;
}

void *
hmap_del(struct hmap *m, const void *key, size_t klen)
{
	struct hent **p = find(m, key, klen, hash_of(m, key, klen)), *e = *p;
	void *val;

	if (e == NULL)
		return NULL;
	*p = e->next;
	val = e->val;
	free(e);
	m->size--;
	return val;
}

size_t
hmap_size(const struct hmap *m)
{
	return m->size;
}
