/*
 * peercount: open connections per client address, for netproc's
 * limits.max_connections_per_address.
 *
 * An address is an IPv4 address, or the /64 prefix of an IPv6 address (one
 * host usually holds a whole /64); an IPv4-mapped IPv6 address counts as its
 * IPv4 address.  The table is an hmap (common/hmap.h: SipHash under a random
 * key, so a client choosing its addresses cannot make lookups slow).
 * Single-threaded: one event loop owns a table.
 */
#ifndef SV_PEERCOUNT_H
#define SV_PEERCOUNT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text of peercount_fmt(), NUL included. */
#define PEERCOUNT_TEXT_MAX 64

struct peer_key {
	uint8_t b[17]; /* family (4 or 6), then the address or prefix */
};

struct peercount;

/* A table for at most max_entries different addresses at once (its memory is
 * sized for that; more still work, slower).  0 or SV_ENOMEM. */
int peercount_new(size_t max_entries, struct peercount **out);
void peercount_free(struct peercount *pc);

/* The key of a peer address: 0, or -1 for a family other than IPv4/IPv6. */
int peercount_key(const struct sockaddr *sa, socklen_t len, struct peer_key *k);

/* One more connection from k: the count after it, or 0 if out of memory. */
size_t peercount_inc(struct peercount *pc, const struct peer_key *k);

/* One connection from k fewer (the entry goes at zero). */
void peercount_dec(struct peercount *pc, const struct peer_key *k);

/* Open connections from k now. */
size_t peercount_get(const struct peercount *pc, const struct peer_key *k);

/* Different addresses with open connections. */
size_t peercount_size(const struct peercount *pc);

/* k as text: "192.0.2.7" or "2001:db8:1:2::/64". */
void peercount_fmt(const struct peer_key *k, char *buf, size_t n);

#endif
