/*
 * hsm_pkey: an OpenSSL EVP_PKEY whose private-key operation is done in the
 * token through hsm/, so that OpenSSL itself can sign certificates and CSRs
 * with a token key (the vault's shadow CA).
 *
 * Why not the libp11 engine: libp11 0.4.12 cannot enumerate the keys of a
 * token that holds an Ed25519 key ("Unable to enumerate private keys"), and
 * the vault's token always does (its audit key), so the engine finds no key
 * at all there.  OpenSSL hashes and encodes; the token signs the digest with
 * CKM_ECDSA (common/ecsign.c).  EC keys only.
 */
#include <stdlib.h>

#include "ecsign.h"
#include "hsm_int.h"
#include "sv_err.h"

struct pkey_ctx {
	struct hsm *h;
	struct hsm_key key;
};

static int
sign_cb(void *ctx, const uint8_t *dgst, size_t dlen, uint8_t *sig, size_t *siglen)
{
	struct pkey_ctx *c = ctx;

	return hsm_sign_digest(c->h, &c->key, dgst, dlen, sig, siglen);
}

int
hsm_pkey(struct hsm *h, struct hsm_key *key, EVP_PKEY **out)
{
	struct pkey_ctx *c;
	EVP_PKEY *pub = NULL;
	int r;

	*out = NULL;
	if (key->type != HSM_EC_P256 && key->type != HSM_EC_P384)
		return sv_seterr(SV_EUNSUPP, "hsm: only EC keys can sign through OpenSSL here");
	if ((r = hsm_key_public(h, key, &pub)) != 0)
		return r;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		EVP_PKEY_free(pub);
		return SV_ENOMEM;
	}
	c->h = h;
	c->key = *key;
	r = ecsign_pkey(pub, sign_cb, c, free, out);
	EVP_PKEY_free(pub);
	return r;
}
