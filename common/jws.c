/*
 * Flattened JWS build and verify, ECDSA signature form conversion, and an
 * in-memory signer (see jws.h).  No I/O.
 */
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/err.h>

#include "b64.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"

/* Largest protected header we will decode when verifying. */
#define JWS_HDR_MAX 8192

int
ecdsa_der_to_raw(const uint8_t *der, size_t derlen, size_t n, uint8_t *raw)
{
	const uint8_t *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int rc = 0;

	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL || p != der + derlen) {
		ECDSA_SIG_free(sig);
		return sv_seterr_ssl(SV_EINVAL, "ecdsa: malformed DER signature");
	}
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, (int)n) != (int)n || BN_bn2binpad(s, raw + n, (int)n) != (int)n)
		rc = sv_seterr(SV_EINVAL, "ecdsa: signature integer longer than %zu bytes", n);
	ECDSA_SIG_free(sig);
	return rc;
}

int
ecdsa_raw_to_der(const uint8_t *raw, size_t rawlen, uint8_t **der, size_t *derlen)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *p = NULL;
	int len, rc = SV_ECRYPTO;

	*der = NULL;
	*derlen = 0;
	if (rawlen == 0 || rawlen % 2 != 0 || rawlen > 2 * 66)
		return sv_seterr(SV_EINVAL, "ecdsa: raw signature has a bad length");
	if ((sig = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, (int)rawlen / 2, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + rawlen / 2, (int)rawlen / 2, NULL)) == NULL ||
	    ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;
	if ((len = i2d_ECDSA_SIG(sig, &p)) <= 0)
		goto out;
	*der = p;
	*derlen = (size_t)len;
	rc = 0;
out:
	if (rc != 0)
		sv_seterr_ssl(rc, "ecdsa: encoding signature");
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return rc;
}

/* "b64(header).b64(payload)" as a malloc'd string. */
static int
signing_input(const char *hdr_b64, const char *pay_b64, char **out)
{
	size_t hl = strlen(hdr_b64), pl = strlen(pay_b64);

	if ((*out = malloc(hl + 1 + pl + 1)) == NULL)
		return SV_ENOMEM;
	memcpy(*out, hdr_b64, hl);
	(*out)[hl] = '.';
	memcpy(*out + hl + 1, pay_b64, pl + 1);
	return 0;
}

/* The three base64url parts of a JWS (caller frees each). */
struct jws_parts {
	char *hb, *pb, *sb;
};

static void
parts_free(struct jws_parts *p)
{
	free(p->hb);
	free(p->pb);
	free(p->sb);
}

static int
sign_parts(const struct jws_signer *s, const json_t *protected_hdr, const uint8_t *payload,
    size_t plen, struct jws_parts *p)
{
	json_t *hdr = NULL, *alg;
	char *hjson = NULL, *in = NULL;
	uint8_t sig[JWS_SIG_MAX];
	size_t siglen = sizeof(sig);
	int r = SV_ENOMEM;

	memset(p, 0, sizeof(*p));
	if (!json_is_object(protected_hdr))
		return sv_seterr(SV_EINVAL, "jws: protected header is not an object");
	alg = json_object_get(protected_hdr, "alg");
	if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), s->alg) != 0))
		return sv_seterr(SV_EINVAL, "jws: header alg does not match the key (%s)", s->alg);
	/* A header that names its alg already is serialised as it is, uncopied. */
	if (alg != NULL)
		hjson = json_dumps(protected_hdr, JSON_COMPACT);
	else if ((hdr = json_deep_copy(protected_hdr)) != NULL &&
	    json_object_set_new(hdr, "alg", json_string(s->alg)) == 0)
		hjson = json_dumps(hdr, JSON_COMPACT);
	if (hjson == NULL)
		goto out;
	if ((r = b64u_encode((const uint8_t *)hjson, strlen(hjson), &p->hb)) != 0 ||
	    (r = b64u_encode(payload, plen, &p->pb)) != 0 ||
	    (r = signing_input(p->hb, p->pb, &in)) != 0)
		goto out;
	if ((r = s->sign(s->ctx, (const uint8_t *)in, strlen(in), sig, &siglen)) != 0)
		goto out;
	r = b64u_encode(sig, siglen, &p->sb);
out:
	if (r != 0)
		parts_free(p);
	json_decref(hdr);
	free(hjson);
	free(in);
	return r;
}

int
jws_sign(const struct jws_signer *s, const json_t *protected_hdr, const uint8_t *payload,
    size_t plen, json_t **out)
{
	struct jws_parts p;
	int r;

	*out = NULL;
	if ((r = sign_parts(s, protected_hdr, payload, plen, &p)) != 0)
		return r;
	*out = json_pack("{s:s, s:s, s:s}", "protected", p.hb, "payload", p.pb, "signature", p.sb);
	parts_free(&p);
	return *out != NULL ? 0 : SV_ENOMEM;
}

int
jws_sign_text(const struct jws_signer *s, const json_t *protected_hdr, const uint8_t *payload,
    size_t plen, char **out, size_t *outlen)
{
	static const char fmt[] = "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}";
	struct jws_parts p;
	size_t n;
	int r;

	*out = NULL;
	if ((r = sign_parts(s, protected_hdr, payload, plen, &p)) != 0)
		return r;
	/* base64url needs no JSON escaping: the three parts go in as they are. */
	n = sizeof(fmt) - 6 + strlen(p.hb) + strlen(p.pb) + strlen(p.sb);
	if ((*out = malloc(n)) != NULL)
		*outlen = (size_t)snprintf(*out, n, fmt, p.hb, p.pb, p.sb);
	parts_free(&p);
	return *out != NULL ? 0 : SV_ENOMEM;
}

/* Verify a JWS-form signature over in with pk. */
static int
verify_sig(EVP_PKEY *pk, const char *alg, const uint8_t *in, size_t inlen, const uint8_t *sig,
    size_t siglen)
{
	const char *want = jwk_alg(pk);
	const EVP_MD *md = NULL;
	EVP_MD_CTX *mctx = NULL;
	uint8_t *der = NULL;
	size_t derlen;
	int r;

	if (want == NULL || strcmp(want, alg) != 0)
		return sv_seterr(SV_EINVAL, "jws: alg \"%.16s\" does not fit the key", alg);
	if (strcmp(alg, "ES256") == 0 || strcmp(alg, "RS256") == 0)
		md = EVP_sha256();
	else if (strcmp(alg, "ES384") == 0)
		md = EVP_sha384();
	if (alg[0] == 'E' && alg[1] == 'S') {
		if (siglen != (strcmp(alg, "ES256") == 0 ? 64u : 96u))
			return sv_seterr(SV_EINVAL, "jws: ECDSA signature has the wrong length");
		if ((r = ecdsa_raw_to_der(sig, siglen, &der, &derlen)) != 0)
			return r;
		sig = der;
		siglen = derlen;
	}
	r = SV_ENOMEM;
	if ((mctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (EVP_DigestVerifyInit(mctx, NULL, md, NULL, pk) != 1 ||
	    EVP_DigestVerify(mctx, sig, siglen, in, inlen) != 1) {
		ERR_clear_error();
		r = sv_seterr(SV_ECRYPTO, "jws: signature does not verify");
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	return r;
}

static const char *
member(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int
jws_verify(const json_t *jws, EVP_PKEY *pk, size_t max_payload, json_t **hdr, uint8_t **payload,
    size_t *plen)
{
	const char *hb, *pb, *sb, *alg;
	uint8_t *h = NULL, *p = NULL, *sig = NULL;
	size_t hl, pl, sl;
	char *in = NULL;
	json_t *hj = NULL;
	json_error_t je;
	int r;

	if (hdr)
		*hdr = NULL;
	if (payload) {
		*payload = NULL;
		*plen = 0;
	}
	if ((hb = member(jws, "protected")) == NULL || (pb = member(jws, "payload")) == NULL ||
	    (sb = member(jws, "signature")) == NULL)
		return sv_seterr(SV_EINVAL, "jws: not a flattened JWS");
	if ((r = b64u_decode(hb, strlen(hb), JWS_HDR_MAX, &h, &hl)) != 0 ||
	    (r = b64u_decode(pb, strlen(pb), max_payload, &p, &pl)) != 0 ||
	    (r = b64u_decode(sb, strlen(sb), JWS_SIG_MAX, &sig, &sl)) != 0)
		goto out;
	if ((hj = json_loadb((const char *)h, hl, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    (alg = member(hj, "alg")) == NULL) {
		r = sv_seterr(SV_EINVAL, "jws: protected header is not JSON with an alg");
		goto out;
	}
	if ((r = signing_input(hb, pb, &in)) != 0 ||
	    (r = verify_sig(pk, alg, (const uint8_t *)in, strlen(in), sig, sl)) != 0)
		goto out;
	if (hdr) {
		*hdr = hj;
		hj = NULL;
	}
	if (payload) {
		*payload = p;
		*plen = pl;
		p = NULL;
	}
out:
	json_decref(hj);
	free(h);
	free(p);
	free(sig);
	free(in);
	return r;
}

static int
pkey_sign(void *ctx, const uint8_t *in, size_t inlen, uint8_t *sig, size_t *siglen)
{
	EVP_PKEY *pk = ctx;
	const char *alg = jwk_alg(pk);
	const EVP_MD *md = NULL;
	EVP_MD_CTX *mctx;
	uint8_t der[JWS_SIG_MAX];
	size_t dl = sizeof(der);
	int r = 0;

	if (alg == NULL)
		return sv_seterr(SV_EUNSUPP, "jws: unsupported key");
	if (strcmp(alg, "ES384") == 0)
		md = EVP_sha384();
	else if (strcmp(alg, "EdDSA") != 0)
		md = EVP_sha256();
	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return SV_ENOMEM;
	if (EVP_DigestSignInit(mctx, NULL, md, NULL, pk) != 1 ||
	    EVP_DigestSign(mctx, der, &dl, in, inlen) != 1) {
		EVP_MD_CTX_free(mctx);
		return sv_seterr_ssl(SV_ECRYPTO, "jws: signing");
	}
	EVP_MD_CTX_free(mctx);
	if (alg[0] == 'E' && alg[1] == 'S') {
		size_t n = strcmp(alg, "ES256") == 0 ? 32 : 48;

		if (*siglen < 2 * n)
			return sv_seterr(SV_EINTERNAL, "jws: signature buffer too small");
		r = ecdsa_der_to_raw(der, dl, n, sig);
		*siglen = 2 * n;
	} else {
		if (*siglen < dl)
			return sv_seterr(SV_EINTERNAL, "jws: signature buffer too small");
		memcpy(sig, der, dl);
		*siglen = dl;
	}
	return r;
}

int
jws_pkey_signer(EVP_PKEY *pk, struct jws_signer *out)
{
	if ((out->alg = jwk_alg(pk)) == NULL)
		return sv_seterr(SV_EUNSUPP, "jws: unsupported key type");
	out->sign = pkey_sign;
	out->ctx = pk;
	return 0;
}
