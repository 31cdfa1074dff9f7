/*
 * certs: the certificates an administrator imported for the vault's keys
 * (`vaultctl cert import`), kept in the state database so that a shadow
 * allowed to can fetch a certificate's key as a sealed bundle (DESIGN
 * section 4).  A certificate is named by its key: certificate NAME belongs
 * to key NAME.  Each import adds one with the next sequence number of NAME
 * (the first is 1); the newest is the one bundles carry.
 *
 * Also the checks on a chain: PEM, certificates only, leaf first, at most
 * CERTS_CHAIN_MAX bytes and CERTS_CHAIN_CERTS certificates, each issued by
 * the next.  vaultctl uses them to refuse a bad file early; the key process
 * applies them again, and the leaf's key and expiry, before storing.
 */
#ifndef SV_CERTS_H
#define SV_CERTS_H

#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "names.h"
#include "state.h"

#define CERTS_CHAIN_MAX	  (64 * 1024) /* bytes of a PEM chain, as read and as stored */
#define CERTS_CHAIN_CERTS 10	      /* certificates in one chain */
#define CERTS_DNS_MAX	  100	      /* --dns names in one CSR */
#define CERTS_CN_MAX	  64	      /* RFC 5280 ub-common-name: the first name is the CN */

struct cert_rec {
	char name[SV_NAME_MAX + 1];
	int64_t sequence; /* >= 1 */
	int key_version;
	int64_t not_after; /* the leaf's, unix seconds */
	int64_t imported;  /* unix seconds */
	char *chain;	   /* PEM, leaf first; malloc'd: cert_rec_free() */
};

/*
 * Parse a PEM chain of len bytes (no NUL inside): every PEM block must be a
 * CERTIFICATE (a key or anything else is refused), at least one, at most
 * CERTS_CHAIN_CERTS, each one issued by the next.  *out (caller
 * sk_X509_pop_free(.., X509_free)s) holds them leaf first.  SV_EINVAL or
 * SV_ETOOBIG with a detail saying which certificate and what.
 */
int certs_parse_chain(const char *pem, size_t len, STACK_OF(X509) * *out);

/* The chain as PEM (certificates only, leaf first); *out malloc'd, caller frees. */
int certs_chain_pem(STACK_OF(X509) * chain, char **out);

/*
 * Store a certificate of name (whose key version is key_version) with the
 * next sequence of name, in one statement; *sequence gets it.
 */
int certs_add(struct state *st, const char *name, int key_version, const char *chain,
    int64_t not_after, int64_t *sequence);

/* The newest certificate of name; SV_ENOTFOUND when it has none. */
int certs_newest(struct state *st, const char *name, struct cert_rec *out);

/*
 * The newest certificate of every name, ordered by name, as a JSON array of
 * {name, sequence, key_version, not_after, imported}.  Caller json_decref()s.
 */
int certs_list(struct state *st, json_t **out);

void cert_rec_free(struct cert_rec *c);

#endif
