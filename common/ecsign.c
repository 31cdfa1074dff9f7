/*
 * ecsign: EC keys signing through a callback (see ecsign.h).  Uses OpenSSL's
 * EC_KEY_METHOD hook (deprecated in 3.0 and still supported: the libp11
 * engine works the same way), hence the 1.1.1 API level here.
 */
#define OPENSSL_API_COMPAT 10101

#include <pthread.h>
#include <stdlib.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>

#include "ecsign.h"
#include "sv_err.h"

struct ecsign_ctx {
	ecsign_fn sign;
	void *ctx;
	void (*ctx_free)(void *);
};

static int ex_idx = -1;
static EC_KEY_METHOD *method;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct ecsign_ctx *c = ptr;

	if (c == NULL)
		return;
	if (c->ctx_free != NULL)
		c->ctx_free(c->ctx);
	free(c);
}

static ECDSA_SIG *
sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *rp, EC_KEY *ec)
{
	struct ecsign_ctx *c = EC_KEY_get_ex_data(ec, ex_idx);
	uint8_t sig[2 * 66];
	size_t sl = sizeof(sig);
	ECDSA_SIG *s;
	BIGNUM *r, *ss;

	if (c == NULL || dlen <= 0 || c->sign(c->ctx, dgst, (size_t)dlen, sig, &sl) != 0 ||
	    sl == 0 || sl % 2 != 0 || (s = ECDSA_SIG_new()) == NULL)
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
ecsign_pkey(EVP_PKEY *pub, ecsign_fn sign, void *ctx, void (*free_ctx)(void *), EVP_PKEY **out)
{
	struct ecsign_ctx *c = NULL;
	EVP_PKEY *pk = NULL;
	EC_KEY *ec = NULL;
	int r = SV_ECRYPTO;

	*out = NULL;
	pthread_once(&once, init_method);
	if (method == NULL || ex_idx < 0 || EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC) {
		if (free_ctx != NULL)
			free_ctx(ctx); /* as on every failure: the caller gave it away */
		return method == NULL || ex_idx < 0
		    ? sv_seterr(SV_ECRYPTO, "cannot set up the EC key method")
		    : sv_seterr(SV_EUNSUPP, "only EC keys can sign through a callback");
	}
	/* A copy of its own: pub's EC_KEY may be shared (OpenSSL 3 caches one in a provider key,
	   such as a certificate's), and the method and ctx must go with this key alone. */
	if ((ec = EC_KEY_dup(EVP_PKEY_get0_EC_KEY(pub))) == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL || EC_KEY_set_method(ec, method) != 1)
		goto out;
	c->sign = sign;
	c->ctx = ctx;
	c->ctx_free = free_ctx;
	if (EC_KEY_set_ex_data(ec, ex_idx, c) != 1)
		goto out;
	c = NULL; /* freed with the EC_KEY, ctx with it */
	ctx = NULL;
	if ((pk = EVP_PKEY_new()) == NULL || EVP_PKEY_assign_EC_KEY(pk, ec) != 1)
		goto out;
	ec = NULL;
	*out = pk;
	pk = NULL;
	r = 0;
out:
	if (r != 0) {
		sv_seterr_ssl(r, "wrapping a key for OpenSSL");
		if (ctx != NULL && free_ctx != NULL)
			free_ctx(ctx);
	}
	free(c);
	EC_KEY_free(ec);
	EVP_PKEY_free(pk);
	return r;
}
