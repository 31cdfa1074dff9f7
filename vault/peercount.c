/*
 * peercount: open connections per client address (see peercount.h).  A
 * chained hash table; an entry lives while its address has a connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peercount.h"
#include "sv_err.h"

struct entry {
	struct peer_key k;
	size_t n;
	struct entry *next;
};

struct peercount {
	struct entry **b;
	size_t nb; /* a power of two */
	size_t size;
	uint8_t key[crypto_shorthash_KEYBYTES];
};

int
peercount_new(size_t max_entries, struct peercount **out)
{
	struct peercount *pc = calloc(1, sizeof(*pc));

	*out = NULL;
	if (pc == NULL || sodium_init() < 0)
		goto fail;
	for (pc->nb = 64; pc->nb < max_entries && pc->nb < ((size_t)1 << 20); pc->nb <<= 1)
		;
	if ((pc->b = calloc(pc->nb, sizeof(*pc->b))) == NULL)
		goto fail;
	crypto_shorthash_keygen(pc->key);
	*out = pc;
	return 0;
fail:
	free(pc);
	return sv_seterr(SV_ENOMEM, "connection table: out of memory");
}

void
peercount_free(struct peercount *pc)
{
	struct entry *e, *next;
	size_t i;

	if (pc == NULL)
		return;
	for (i = 0; i < pc->nb; i++)
		for (e = pc->b[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(pc->b);
	free(pc);
}

int
peercount_key(const struct sockaddr *sa, socklen_t len, struct peer_key *k)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(*s4)) {
		k->b[0] = 4;
		memcpy(k->b + 1, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(*s6)) {
		if (memcmp(s6->sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0) {
			k->b[0] = 4;
			memcpy(k->b + 1, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			k->b[0] = 6;
			memcpy(k->b + 1, s6->sin6_addr.s6_addr, 8); /* the /64 */
		}
		return 0;
	}
	return -1;
}

static struct entry **
slot(const struct peercount *pc, const struct peer_key *k)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;
	struct entry **p;

	crypto_shorthash(h, k->b, sizeof(k->b), pc->key);
	memcpy(&v, h, sizeof(v));
	for (p = &pc->b[v & (pc->nb - 1)]; *p != NULL; p = &(*p)->next)
		if (memcmp((*p)->k.b, k->b, sizeof(k->b)) == 0)
			break;
	return p;
}

size_t
peercount_inc(struct peercount *pc, const struct peer_key *k)
{
	struct entry **p = slot(pc, k);

	if (*p == NULL) {
		if ((*p = calloc(1, sizeof(**p))) == NULL)
			return 0;
		(*p)->k = *k;
		pc->size++;
	}
	return ++(*p)->n;
}

void
peercount_dec(struct peercount *pc, const struct peer_key *k)
{
	struct entry **p = slot(pc, k), *e = *p;

	if (e == NULL)
		return;
	if (--e->n == 0) {
		*p = e->next;
		free(e);
		pc->size--;
	}
}

size_t
peercount_get(const struct peercount *pc, const struct peer_key *k)
{
	struct entry **p = slot(pc, k);

	return *p ? (*p)->n : 0;
}

size_t
peercount_size(const struct peercount *pc)
{
	return pc->size;
}

void
peercount_fmt(const struct peer_key *k, char *buf, size_t n)
{
	uint8_t a6[16] = { 0 };
	char t[INET6_ADDRSTRLEN];

	if (k->b[0] == 4 && inet_ntop(AF_INET, k->b + 1, t, sizeof(t)) != NULL) {
		snprintf(buf, n, "%s", t);
		return;
	}
	memcpy(a6, k->b + 1, 8);
	if (k->b[0] == 6 && inet_ntop(AF_INET6, a6, t, sizeof(t)) != NULL) {
		snprintf(buf, n, "%s/64", t);
		return;
	}
	snprintf(buf, n, "?");
}
