/*
 * hsm_sign.c: JWS signing with token keys and wrap-for-export of exportable
 * keys (see hsm.h).  The one-time wrapping key and the unwrapped PKCS#8 live
 * only in sodium_malloc() memory and are wiped on every path.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "hsm_int.h"
#include "sv_err.h"

/* Largest wrapped private key we accept from the token (RSA 4096 PKCS#8 ~2.4 KB). */
#define HSM_WRAPPED_MAX 8192

/* Mechanism and software pre-hash for each key type. */
static void
sign_mech(enum hsm_keytype t, CK_MECHANISM_TYPE *mech, const EVP_MD **md, size_t *rawlen)
{
	*md = NULL;
	*rawlen = 0;
	switch (t) {
	case HSM_EC_P256:
		*mech = CKM_ECDSA;
		*md = EVP_sha256();
		*rawlen = 64;
		break;
	case HSM_EC_P384:
		*mech = CKM_ECDSA;
		*md = EVP_sha384();
		*rawlen = 96;
		break;
	case HSM_ED25519:
		*mech = CKM_EDDSA;
		break;
	default:
		*mech = CKM_SHA256_RSA_PKCS;
	}
}

void
hsm_key_pin(struct hsm_key *key)
{
	if (key->pin == 0)
		key->pin = 1;
}

void
hsm_key_drop_copy(struct hsm *h, struct hsm_key *key)
{
	/* A copy made in another session died with it (or is not ours to touch). */
	if (key->copy != 0 && key->copy_sess == h->serial)
		h->m->f->C_DestroyObject(h->s, key->copy);
	key->copy = 0;
}

void
hsm_key_unpin(struct hsm *h, struct hsm_key *key)
{
	if (key->copy != 0 && hsm_enter(h) == CKR_OK) {
		hsm_key_drop_copy(h, key);
		hsm_leave(h);
	}
	key->copy = 0;
	key->pin = 0;
}

/* Errors that say the module will never copy this key (as opposed to a lost session). */
static int
copy_refused(CK_RV rv)
{
	switch (rv) {
	case CKR_FUNCTION_NOT_SUPPORTED:
	case CKR_ACTION_PROHIBITED:
	case CKR_ATTRIBUTE_READ_ONLY:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_TEMPLATE_INCOMPLETE:
		return 1;
	default:
		return 0;
	}
}

/*
 * The handle to sign with (inside hsm_enter, after hsm_key_handles): a pinned
 * key's session copy, made again when the session changed or the token
 * object was looked up afresh (its old handle may have died); otherwise, or
 * when the copy fails, the token object itself.
 */
static CK_OBJECT_HANDLE
sign_handle(struct hsm *h, struct hsm_key *key)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t = { CKA_TOKEN, &no, sizeof(no) };
	CK_OBJECT_HANDLE o;
	CK_RV rv;

	if (key->pin <= 0)
		return key->priv;
	if (key->copy != 0 && key->copy_sess == h->serial && key->copy_of == key->priv &&
	    !key->fresh)
		return key->copy;
	hsm_key_drop_copy(h, key);
	if ((rv = h->m->f->C_CopyObject(h->s, key->priv, &t, 1, &o)) != CKR_OK) {
		if (copy_refused(rv))
			key->pin = -1;
		return key->priv;
	}
	key->copy = o;
	key->copy_of = key->priv;
	key->copy_sess = h->serial;
	return o;
}

int
hsm_key_ready(struct hsm *h, struct hsm_key *key)
{
	int ready = 0;

	if (key->pin <= 0 || hsm_enter(h) != CKR_OK)
		return 0;
	if (hsm_key_handles(h, key, 0) == CKR_OK)
		ready = sign_handle(h, key) == key->copy && key->copy != 0;
	hsm_leave(h);
	return ready;
}

static CK_RV
sign_once(struct hsm *h, struct hsm_key *key, CK_MECHANISM_TYPE mt, const uint8_t *in, size_t inlen,
    uint8_t *sig, CK_ULONG *siglen)
{
	CK_MECHANISM mech = { mt, NULL, 0 };
	CK_RV rv;

	if ((rv = hsm_key_handles(h, key, 0)) != CKR_OK)
		return rv;
	if ((rv = h->m->f->C_SignInit(h->s, &mech, sign_handle(h, key))) != CKR_OK)
		return rv;
	return h->m->f->C_Sign(h->s, (CK_BYTE_PTR)in, (CK_ULONG)inlen, sig, siglen);
}

/* C_Sign with recovery; *siglen: room in, length out. */
static int
sign_loop(struct hsm *h, struct hsm_key *key, CK_MECHANISM_TYPE mech, const uint8_t *in,
    size_t inlen, uint8_t *sig, size_t *siglen)
{
	CK_ULONG sl;
	CK_RV rv;
	int attempt, r;

	for (attempt = 0;; attempt++) {
		sl = (CK_ULONG)*siglen;
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = sign_once(h, key, mech, in, inlen, sig, &sl);
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			break;
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_Sign")) != 0)
			return sv_preferr(r, "signing with key \"%s\"", key->label);
	}
	*siglen = sl;
	return 0;
}

int
hsm_sign_digest(struct hsm *h, struct hsm_key *key, const uint8_t *dgst, size_t dlen, uint8_t *sig,
    size_t *siglen)
{
	if (key->type != HSM_EC_P256 && key->type != HSM_EC_P384)
		return sv_seterr(SV_EUNSUPP, "hsm: digest signing is for EC keys");
	return sign_loop(h, key, CKM_ECDSA, dgst, dlen, sig, siglen);
}

int
hsm_sign(struct hsm *h, struct hsm_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
    size_t *siglen)
{
	CK_MECHANISM_TYPE mech;
	const EVP_MD *md;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	size_t rawlen, sl;
	int r;

	sign_mech(key->type, &mech, &md, &rawlen);
	if (md != NULL) {
		/* CKM_ECDSA signs a digest: hash in software (cheap, and no secret). */
		if (EVP_Digest(msg, len, digest, &dlen, md, NULL) != 1)
			return sv_seterr_ssl(SV_ECRYPTO, "hsm: hashing");
		msg = digest;
		len = dlen;
	}
	sl = *siglen;
	if ((r = sign_loop(h, key, mech, msg, len, sig, &sl)) != 0)
		return r;
	/* The raw r||s form of CKM_ECDSA is already the JWS form. */
	if (rawlen != 0 && sl != rawlen)
		return sv_seterr(
		    SV_EHSM, "hsm: ECDSA signature of %zu bytes, expected %zu", sl, rawlen);
	*siglen = sl;
	return 0;
}

static int
jws_cb(void *ctx, const uint8_t *in, size_t inlen, uint8_t *sig, size_t *siglen)
{
	struct hsm_jws_ctx *c = ctx;

	return hsm_sign(c->h, c->key, in, inlen, sig, siglen);
}

void
hsm_jws_signer(struct hsm_jws_ctx *ctx, struct jws_signer *out)
{
	out->alg = hsm_keytype_alg(ctx->key->type);
	out->sign = jws_cb;
	out->ctx = ctx;
}

/* Wrap key->priv under a fresh AES-256 session key whose value is kek. */
static CK_RV
wrap_once(struct hsm *h, struct hsm_key *key, uint8_t *kek, uint8_t *out, CK_ULONG *outlen)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, 1 },
		{ CKA_WRAP, &yes, 1 },
		{ CKA_ENCRYPT, &no, 1 },
		{ CKA_DECRYPT, &no, 1 },
		{ CKA_VALUE, kek, 32 },
	};
	CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_OBJECT_HANDLE wk;
	CK_RV rv;

	if ((rv = hsm_key_handles(h, key, 0)) != CKR_OK)
		return rv;
	if ((rv = h->m->f->C_CreateObject(h->s, t, sizeof(t) / sizeof(t[0]), &wk)) != CKR_OK)
		return rv;
	rv = h->m->f->C_WrapKey(h->s, &mech, wk, key->priv, out, outlen);
	h->m->f->C_DestroyObject(h->s, wk);
	return rv;
}

/* AES-256 key unwrap with padding (RFC 5649) in software into guarded memory. */
static int
unwrap_sw(const uint8_t *kek, const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	EVP_CIPHER_CTX *ctx = NULL;
	EVP_CIPHER *c = NULL;
	uint8_t *buf;
	int l1 = 0, l2 = 0, r = SV_ECRYPTO;

	if ((buf = sodium_malloc(inlen + 16)) == NULL)
		return SV_ENOMEM;
	if ((c = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL)) == NULL ||
	    (ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_DecryptInit_ex(ctx, c, NULL, kek, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, buf, &l1, in, (int)inlen) != 1 ||
	    EVP_DecryptFinal_ex(ctx, buf + l1, &l2) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	if (r != 0) {
		sodium_free(buf);
		return sv_seterr_ssl(r, "hsm: unwrapping the exported key");
	}
	*out = buf;
	*outlen = (size_t)(l1 + l2);
	return 0;
}

/*
 * The unwrapped bytes must be one well-formed PKCS#8 structure.  SoftHSM2
 * 2.6 pads the key to a multiple of 8 bytes before wrapping and records the
 * padded length, so up to 7 trailing bytes after the DER are cut off here
 * (and wiped); *len becomes the DER length.
 */
static int
check_pkcs8(uint8_t *p, size_t *len)
{
	const uint8_t *q = p;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)*len);
	size_t der = (size_t)(q - p);

	PKCS8_PRIV_KEY_INFO_free(p8);
	if (p8 == NULL || *len - der >= 8)
		return sv_seterr(SV_EHSM, "hsm: the token's exported key is not PKCS#8");
	sodium_memzero(p + der, *len - der);
	*len = der;
	return 0;
}

int
hsm_key_wrap_pkcs8(struct hsm *h, struct hsm_key *key, uint8_t **pkcs8, size_t *len)
{
	uint8_t *kek = NULL, *wrapped = NULL;
	CK_ULONG wl;
	CK_RV rv;
	int attempt, r;

	*pkcs8 = NULL;
	*len = 0;
	if ((kek = sodium_malloc(32)) == NULL ||
	    (wrapped = sodium_malloc(HSM_WRAPPED_MAX)) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	randombytes_buf(kek, 32);
	for (attempt = 0;; attempt++) {
		wl = HSM_WRAPPED_MAX;
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = wrap_once(h, key, kek, wrapped, &wl);
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			break;
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_WrapKey")) != 0) {
			r = sv_preferr(r, "exporting key \"%s\"", key->label);
			goto out;
		}
	}
	if ((r = unwrap_sw(kek, wrapped, wl, pkcs8, len)) != 0)
		goto out;
	if ((r = check_pkcs8(*pkcs8, len)) != 0) {
		sodium_free(*pkcs8);
		*pkcs8 = NULL;
		*len = 0;
	}
out:
	if (kek)
		sodium_free(kek);
	if (wrapped)
		sodium_free(wrapped);
	return r;
}
