/* nbloom: see nbloom.h. */
#include <stdlib.h>
#include <string.h>

#include "nbloom.h"
#include "sv_err.h"

#define PROBES	     7
#define BITS_PER_KEY 16

struct gen {
	uint64_t *w;
	size_t mask; /* bits - 1 (bits a power of two) */
	size_t cap, n;
};

struct nbloom {
	struct gen g[NBLOOM_GENS_MAX];
	size_t ngens, total;
};

static int
gen_init(struct gen *g, size_t cap)
{
	size_t bits = 64;

	while (bits / BITS_PER_KEY < cap && bits < ((size_t)1 << 32))
		bits <<= 1;
	if ((g->w = calloc(bits / 64, sizeof(*g->w))) == NULL)
		return SV_ENOMEM;
	g->mask = bits - 1;
	g->cap = bits / BITS_PER_KEY;
	g->n = 0;
	return 0;
}

/* Probe i of h: 32 bits of the hash at byte 4i. */
static size_t
probe(const uint8_t h[32], int i)
{
	uint32_t v;

	memcpy(&v, h + 4 * i, sizeof(v));
	return v;
}

int
nbloom_new(size_t cap, struct nbloom **out)
{
	struct nbloom *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (b == NULL || gen_init(&b->g[0], cap ? cap : 1) != 0) {
		free(b);
		return sv_seterr(SV_ENOMEM, "nonce filter: out of memory");
	}
	b->ngens = 1;
	*out = b;
	return 0;
}

void
nbloom_free(struct nbloom *b)
{
	size_t i;

	if (b == NULL)
		return;
	for (i = 0; i < b->ngens; i++)
		free(b->g[i].w);
	free(b);
}

void
nbloom_add(struct nbloom *b, const uint8_t h[32])
{
	struct gen *g = &b->g[b->ngens - 1];
	size_t bit;
	int i;

	if (g->n >= g->cap && b->ngens < NBLOOM_GENS_MAX &&
	    gen_init(&b->g[b->ngens], 2 * g->cap) == 0)
		g = &b->g[b->ngens++];
	for (i = 0; i < PROBES; i++) {
		bit = probe(h, i) & g->mask;
		g->w[bit / 64] |= (uint64_t)1 << (bit % 64);
	}
	g->n++;
	b->total++;
}

int
nbloom_maybe(const struct nbloom *b, const uint8_t h[32])
{
	const struct gen *g;
	size_t k, bit;
	int i;

	for (k = 0; k < b->ngens; k++) {
		g = &b->g[k];
		for (i = 0; i < PROBES; i++) {
			bit = probe(h, i) & g->mask;
			if (!(g->w[bit / 64] & ((uint64_t)1 << (bit % 64))))
				break;
		}
		if (i == PROBES)
			return 1;
	}
	return 0;
}

size_t
nbloom_count(const struct nbloom *b)
{
	return b->total;
}

size_t
nbloom_bytes(const struct nbloom *b)
{
	size_t k, n = sizeof(*b);

	for (k = 0; k < b->ngens; k++)
		n += (b->g[k].mask + 1) / 8;
	return n;
}
