/*
 * JWK encode/decode and RFC 7638 thumbprints (see jwk.h).  Pure computation
 * over OpenSSL and jansson; no I/O.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "b64.h"
#include "jwk.h"
#include "sv_err.h"

struct ec_curve {
	const char *jwk;  /* "P-256" */
	const char *ossl; /* OpenSSL group name */
	size_t len;	  /* coordinate length in bytes */
	const char *alg;
};

static const struct ec_curve curves[] = {
	{ "P-256", "prime256v1", 32, "ES256" },
	{ "P-384", "secp384r1", 48, "ES384" },
};

static const struct ec_curve *
curve_by_ossl(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].ossl, name) == 0 || strcmp(curves[i].jwk, name) == 0)
			return &curves[i];
	return NULL;
}

static const struct ec_curve *
curve_by_jwk(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].jwk, name) == 0)
			return &curves[i];
	return NULL;
}

static const struct ec_curve *
pkey_curve(EVP_PKEY *pk)
{
	char name[64];

	if (EVP_PKEY_get_utf8_string_param(
		pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), NULL) != 1)
		return NULL;
	return curve_by_ossl(name);
}

const char *
jwk_alg(EVP_PKEY *pk)
{
	const struct ec_curve *c;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		return (c = pkey_curve(pk)) != NULL ? c->alg : NULL;
	case EVP_PKEY_RSA:
		return "RS256";
	case EVP_PKEY_ED25519:
		return "EdDSA";
	default:
		return NULL;
	}
}

/* Set obj[key] = base64url(bin). */
static int
set_b64(json_t *obj, const char *key, const uint8_t *bin, size_t len)
{
	char *s;
	int r;

	if ((r = b64u_encode(bin, len, &s)) != 0)
		return r;
	r = json_object_set_new(obj, key, json_string(s)) == 0 ? 0 : SV_ENOMEM;
	free(s);
	return r;
}

/* obj[key] = base64url of a BIGNUM parameter, left-padded to pad bytes (0: minimal). */
static int
set_bn(json_t *obj, const char *key, EVP_PKEY *pk, const char *param, size_t pad)
{
	BIGNUM *bn = NULL;
	uint8_t buf[JWK_RSA_MAX_BYTES];
	int n, r;

	if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1)
		return sv_seterr_ssl(SV_ECRYPTO, "jwk: reading key parameter");
	n = pad ? (int)pad : BN_num_bytes(bn);
	if (n <= 0 || (size_t)n > sizeof(buf) || BN_bn2binpad(bn, buf, n) != n) {
		BN_free(bn);
		return sv_seterr(SV_EUNSUPP, "jwk: key parameter %s too large", param);
	}
	BN_free(bn);
	r = set_b64(obj, key, buf, (size_t)n);
	return r;
}

static int
jwk_ec(EVP_PKEY *pk, json_t *j)
{
	const struct ec_curve *c;
	int r;

	if ((c = pkey_curve(pk)) == NULL)
		return sv_seterr(SV_EUNSUPP, "jwk: unsupported EC curve");
	if (json_object_set_new(j, "crv", json_string(c->jwk)) != 0 ||
	    json_object_set_new(j, "kty", json_string("EC")) != 0)
		return SV_ENOMEM;
	if ((r = set_bn(j, "x", pk, OSSL_PKEY_PARAM_EC_PUB_X, c->len)) != 0)
		return r;
	return set_bn(j, "y", pk, OSSL_PKEY_PARAM_EC_PUB_Y, c->len);
}

static int
jwk_rsa(EVP_PKEY *pk, json_t *j)
{
	int r;

	if ((r = set_bn(j, "e", pk, OSSL_PKEY_PARAM_RSA_E, 0)) != 0)
		return r;
	if (json_object_set_new(j, "kty", json_string("RSA")) != 0)
		return SV_ENOMEM;
	return set_bn(j, "n", pk, OSSL_PKEY_PARAM_RSA_N, 0);
}

static int
jwk_okp(EVP_PKEY *pk, json_t *j)
{
	uint8_t raw[32];
	size_t len = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(pk, raw, &len) != 1 || len != sizeof(raw))
		return sv_seterr_ssl(SV_ECRYPTO, "jwk: reading Ed25519 key");
	if (json_object_set_new(j, "crv", json_string("Ed25519")) != 0 ||
	    json_object_set_new(j, "kty", json_string("OKP")) != 0)
		return SV_ENOMEM;
	return set_b64(j, "x", raw, len);
}

int
jwk_from_pkey(EVP_PKEY *pk, json_t **out)
{
	json_t *j;
	int r;

	*out = NULL;
	if ((j = json_object()) == NULL)
		return SV_ENOMEM;
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		r = jwk_ec(pk, j);
		break;
	case EVP_PKEY_RSA:
		r = jwk_rsa(pk, j);
		break;
	case EVP_PKEY_ED25519:
		r = jwk_okp(pk, j);
		break;
	default:
		r = sv_seterr(SV_EUNSUPP, "jwk: unsupported key type");
	}
	if (r != 0) {
		json_decref(j);
		return r;
	}
	*out = j;
	return 0;
}

/* Decode jwk[key] (base64url) into a new buffer of exactly want bytes (0: 1..max). */
static int
get_b64(const json_t *jwk, const char *key, size_t want, size_t max, uint8_t **out, size_t *len)
{
	const json_t *v = json_object_get(jwk, key);
	int r;

	*out = NULL;
	if (!json_is_string(v))
		return sv_seterr(SV_EINVAL, "jwk: member \"%s\" missing or not a string", key);
	r = b64u_decode(json_string_value(v), json_string_length(v), want ? want : max, out, len);
	if (r != 0)
		return sv_preferr(r, "jwk: member \"%s\"", key);
	if ((want && *len != want) || *len == 0) {
		free(*out);
		*out = NULL;
		return sv_seterr(SV_EINVAL, "jwk: member \"%s\" has the wrong length", key);
	}
	return 0;
}

static int
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int r = SV_ECRYPTO;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		r = sv_seterr_ssl(SV_EINVAL, "jwk: invalid public key");
		goto out;
	}
	r = 0;
out:
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

static int
pkey_ec(const json_t *jwk, EVP_PKEY **out)
{
	const struct ec_curve *c;
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	uint8_t *x = NULL, *y = NULL, pt[1 + 2 * 48];
	size_t xl, yl;
	OSSL_PARAM_BLD *bld = NULL;
	int r;

	if (crv == NULL || (c = curve_by_jwk(crv)) == NULL)
		return sv_seterr(SV_EUNSUPP, "jwk: unsupported EC curve");
	if ((r = get_b64(jwk, "x", c->len, c->len, &x, &xl)) != 0 ||
	    (r = get_b64(jwk, "y", c->len, c->len, &y, &yl)) != 0)
		goto out;
	pt[0] = 0x04;
	memcpy(pt + 1, x, c->len);
	memcpy(pt + 1 + c->len, y, c->len);
	r = SV_ENOMEM;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->ossl, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * c->len) != 1)
		goto out;
	r = pkey_fromdata("EC", bld, out);
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return r;
}

static int
pkey_rsa(const json_t *jwk, EVP_PKEY **out)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nl, el;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	int r;

	if ((r = get_b64(jwk, "n", 0, JWK_RSA_MAX_BYTES, &n, &nl)) != 0 ||
	    (r = get_b64(jwk, "e", 0, 8, &e, &el)) != 0)
		goto out;
	r = SV_ENOMEM;
	if ((bn = BN_bin2bn(n, (int)nl, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)el, NULL)) == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
		goto out;
	r = pkey_fromdata("RSA", bld, out);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return r;
}

static int
pkey_okp(const json_t *jwk, EVP_PKEY **out)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	uint8_t *x = NULL;
	size_t xl;
	int r;

	if (crv == NULL || strcmp(crv, "Ed25519") != 0)
		return sv_seterr(SV_EUNSUPP, "jwk: unsupported OKP curve");
	if ((r = get_b64(jwk, "x", 32, 32, &x, &xl)) != 0)
		return r;
	*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl);
	free(x);
	if (*out == NULL)
		return sv_seterr_ssl(SV_EINVAL, "jwk: invalid Ed25519 key");
	return 0;
}

int
jwk_to_pkey(const json_t *jwk, EVP_PKEY **out)
{
	const char *kty;

	*out = NULL;
	if (!json_is_object(jwk) || (kty = json_string_value(json_object_get(jwk, "kty"))) == NULL)
		return sv_seterr(SV_EINVAL, "jwk: not an object with a \"kty\"");
	if (strcmp(kty, "EC") == 0)
		return pkey_ec(jwk, out);
	if (strcmp(kty, "RSA") == 0)
		return pkey_rsa(jwk, out);
	if (strcmp(kty, "OKP") == 0)
		return pkey_okp(jwk, out);
	return sv_seterr(SV_EUNSUPP, "jwk: unsupported key type \"%.16s\"", kty);
}

/* Copy the RFC 7638 required members of jwk into a fresh object. */
static int
required_members(const json_t *jwk, json_t **out)
{
	static const char *const ec[] = { "crv", "kty", "x", "y", NULL };
	static const char *const rsa[] = { "e", "kty", "n", NULL };
	static const char *const okp[] = { "crv", "kty", "x", NULL };
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *const *m;
	json_t *o, *v;

	*out = NULL;
	if (kty == NULL)
		return sv_seterr(SV_EINVAL, "jwk: missing \"kty\"");
	if (strcmp(kty, "EC") == 0)
		m = ec;
	else if (strcmp(kty, "RSA") == 0)
		m = rsa;
	else if (strcmp(kty, "OKP") == 0)
		m = okp;
	else
		return sv_seterr(SV_EUNSUPP, "jwk: unsupported key type");
	if ((o = json_object()) == NULL)
		return SV_ENOMEM;
	for (; *m != NULL; m++) {
		if (!json_is_string(v = json_object_get(jwk, *m))) {
			json_decref(o);
			return sv_seterr(SV_EINVAL, "jwk: member \"%s\" missing", *m);
		}
		json_object_set(o, *m, v);
	}
	*out = o;
	return 0;
}

int
jwk_thumbprint(const json_t *jwk, char *out)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	json_t *req;
	char *s, *b;
	int r;

	out[0] = '\0';
	if ((r = required_members(jwk, &req)) != 0)
		return r;
	/* Compact, sorted keys: exactly RFC 7638's canonical form. */
	s = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(req);
	if (s == NULL)
		return SV_ENOMEM;
	crypto_hash_sha256(h, (const uint8_t *)s, strlen(s));
	free(s);
	if ((r = b64u_encode(h, sizeof(h), &b)) != 0)
		return r;
	memcpy(out, b, JWK_THUMB_LEN + 1);
	free(b);
	return 0;
}

int
jwk_thumbprint_pkey(EVP_PKEY *pk, char *out)
{
	json_t *j;
	int r;

	if ((r = jwk_from_pkey(pk, &j)) != 0)
		return r;
	r = jwk_thumbprint(j, out);
	json_decref(j);
	return r;
}
