/*
 * hsm_pkey: an OpenSSL EVP_PKEY whose private-key operation is done in the
 * token through hsm/, so that OpenSSL itself can sign certificates and CSRs
 * with a token key (the vault's shadow CA).
 *
 * Why not the libp11 engine: libp11 0.4.12 cannot enumerate the keys of a
 * token that holds an Ed25519 key ("Unable to enumerate private keys"), and
 * the vault's token always does (its audit key), so the engine finds no key
 * at all there.  This uses OpenSSL's EC_KEY_METHOD hook (deprecated in 3.0,
 * still supported, and what the engine itself uses): OpenSSL hashes and
 * encodes, the token signs the digest with CKM_ECDSA.  EC keys only.
 */
#define OPENSSL_API_COMPAT 10101

#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "hsm_int.h"
#include "sv_err.h"

struct pkey_ctx {
	struct hsm *h;
	struct hsm_key key;
};

static int ex_idx = -1;
static EC_KEY_METHOD *method;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static ECDSA_SIG *
sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *rp,
    EC_KEY *ec)
{
	struct pkey_ctx *c = EC_KEY_get_ex_data(ec, ex_idx);
	uint8_t sig[HSM_SIG_MAX];
	size_t sl = sizeof(sig);
	ECDSA_SIG *s;
	BIGNUM *r, *ss;

	if (c == NULL || dlen <= 0 || hsm_sign_digest(c->h, &c->key, dgst, (size_t)dlen, sig, &sl) != 0)
		return NULL;
	if ((s = ECDSA_SIG_new()) == NULL)
		return NULL;
	r = BN_bin2bn(sig, (int)sl / 2, NULL);
	ss = BN_bin2bn(sig + sl / 2, (int)sl / 2, NULL);
	if (r == NULL || ss == NULL || ECDSA_SIG_set0(s, r, ss) != 1) {
		BN_free(r);
		BN_free(ss);
		ECDSA_SIG_free(s);
		return NULL;
	}
	return s;
}

/* The DER-returning entry point OpenSSL calls for ECDSA_sign(). */
static int
sign_der(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen,
    const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	ECDSA_SIG *s = sign_sig(dgst, dlen, kinv, r, ec);
	int len;

	if (s == NULL)
		return 0;
	len = i2d_ECDSA_SIG(s, &sig);
	ECDSA_SIG_free(s);
	if (len <= 0)
		return 0;
	*siglen = (unsigned int)len;
	return 1;
}

static void
init_method(void)
{
	ex_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, ctx_free);
	if ((method = EC_KEY_METHOD_new(EC_KEY_get_default_method())) != NULL)
		EC_KEY_METHOD_set_sign(method, sign_der, NULL, sign_sig);
}

int
hsm_pkey(struct hsm *h, struct hsm_key *key, EVP_PKEY **out)
{
	EVP_PKEY *pub = NULL, *pk = NULL;
	EC_KEY *ec = NULL;
	struct pkey_ctx *c = NULL;
	int r;

	*out = NULL;
	if (key->type != HSM_EC_P256 && key->type != HSM_EC_P384)
		return sv_seterr(SV_EUNSUPP, "hsm: only EC keys can sign through OpenSSL here");
	pthread_once(&once, init_method);
	if (method == NULL || ex_idx < 0)
		return sv_seterr(SV_ECRYPTO, "hsm: cannot set up the EC key method");
	if ((r = hsm_key_public(h, key, &pub)) != 0)
		return r;
	r = SV_ECRYPTO;
	if ((ec = EVP_PKEY_get1_EC_KEY(pub)) == NULL || (c = calloc(1, sizeof(*c))) == NULL ||
	    EC_KEY_set_method(ec, method) != 1)
		goto out;
	c->h = h;
	c->key = *key;
	if (EC_KEY_set_ex_data(ec, ex_idx, c) != 1)
		goto out;
	c = NULL; /* freed with the EC_KEY */
	if ((pk = EVP_PKEY_new()) == NULL || EVP_PKEY_assign_EC_KEY(pk, ec) != 1)
		goto out;
	ec = NULL;
	*out = pk;
	pk = NULL;
	r = 0;
out:
	if (r != 0)
		sv_seterr_ssl(r, "hsm: wrapping a token key for OpenSSL");
	free(c);
	EC_KEY_free(ec);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(pub);
	return r;
}
