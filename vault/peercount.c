/*
 * peercount: open connections per client address (see peercount.h), in an
 * hmap; an entry lives while its address has a connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "peercount.h"
#include "sv_err.h"

/* A count is kept as the map's value itself (never 0: an entry goes at 0). */
struct peercount {
	struct hmap *m;
};

int
peercount_new(size_t max_entries, struct peercount **out)
{
	struct peercount *pc = calloc(1, sizeof(*pc));

	*out = NULL;
	if (pc == NULL || hmap_new(max_entries, &pc->m) != 0) {
		free(pc);
		return sv_seterr(SV_ENOMEM, "connection table: out of memory");
	}
	*out = pc;
	return 0;
}

void
peercount_free(struct peercount *pc)
{
	if (pc == NULL)
		return;
	hmap_free(pc->m, NULL);
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

size_t
peercount_get(const struct peercount *pc, const struct peer_key *k)
{
	return (size_t)(uintptr_t)hmap_get(pc->m, k->b, sizeof(k->b));
}

size_t
peercount_inc(struct peercount *pc, const struct peer_key *k)
{
	size_t n = peercount_get(pc, k) + 1;

	return hmap_put(pc->m, k->b, sizeof(k->b), (void *)(uintptr_t)n) == 0 ? n : 0;
}

void
peercount_dec(struct peercount *pc, const struct peer_key *k)
{
	size_t n = peercount_get(pc, k);

	if (n == 1)
		hmap_del(pc->m, k->b, sizeof(k->b));
	else if (n > 1)
		hmap_put(pc->m, k->b, sizeof(k->b), (void *)(uintptr_t)(n - 1)); /* no allocation */
}

size_t
peercount_size(const struct peercount *pc)
{
	return hmap_size(pc->m);
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
