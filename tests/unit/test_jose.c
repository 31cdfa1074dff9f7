/*
 * common/ JOSE code against the RFCs' own examples: RFC 7638 thumbprint,
 * RFC 7515 A.2 (RS256, deterministic: byte-exact) and A.3 (ES256, verify),
 * RFC 8037 A.4 (Ed25519, byte-exact) and its thumbprint; base64url edge
 * cases; ECDSA DER <-> raw; malformed JWKs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "b64.h"
#include "ecsign.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "svtest.h"

/* RFC 7515 A.2 RSA key (public n, e and private d). */
static const char *A2_N = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-"
			  "4qPCJrcS2mJPMEzP1Pt0Bm4d4Q"
			  "lL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"
			  "bSf63kpaSHSXndS5z5rexMdbBY"
			  "UsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"
			  "I5IhlJH7aGhyxXFvUK-DWNmo"
			  "udF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char *A2_D =
    "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-"
    "7YwVol2NXOoAJ"
    "e46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_"
    "V51gfpRLI9"
    "JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_"
    "jTj3ccPDVZFD9pIu"
    "hLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
static const char *A2_SIG = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__"
			    "dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujG"
			    "bds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_"
			    "nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
			    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
			    "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6"
			    "LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char *PAYLOAD =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
static const char *PAYLOAD_B64 = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtc"
				 "GxlLmNvbS9pc19yb290Ijp0cnVlfQ";

static BIGNUM *
bn_b64(const char *s)
{
	uint8_t *b;
	size_t l;
	BIGNUM *bn;

	assert_ok(b64u_decode(s, strlen(s), 1024, &b, &l));
	bn = BN_bin2bn(b, (int)l, NULL);
	free(b);
	return bn;
}

static EVP_PKEY *
a2_private(void)
{
	BIGNUM *n = bn_b64(A2_N), *e = bn_b64("AQAB"), *d = bn_b64(A2_D);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *p;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pk = NULL;

	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d);
	p = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, p), 1);
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	BN_free(d);
	return pk;
}

static void
test_rfc7638_thumbprint(void **state)
{
	json_t *jwk =
	    json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "alg", "RS256", "n",
		"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
		"tSoc_BJECPebWKR"
		"XjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
		"FDW2QvzqY368QQMicA"
		"taSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
		"bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3X"
		"PksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
	char tp[JWK_THUMB_LEN + 1];

	assert_ok(jwk_thumbprint(jwk, tp));
	assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	json_decref(jwk);
}

static void
test_rfc7515_a2_rs256(void **state)
{
	EVP_PKEY *pk = a2_private();
	struct jws_signer s;
	json_t *hdr = json_object(), *jws;
	json_t *pubjwk;
	EVP_PKEY *pub;

	assert_ok(jws_pkey_signer(pk, &s));
	assert_string_equal(s.alg, "RS256");
	assert_ok(jws_sign(&s, hdr, (const uint8_t *)PAYLOAD, strlen(PAYLOAD), &jws));
	assert_string_equal(
	    json_string_value(json_object_get(jws, "protected")), "eyJhbGciOiJSUzI1NiJ9");
	assert_string_equal(json_string_value(json_object_get(jws, "payload")), PAYLOAD_B64);
	assert_string_equal(json_string_value(json_object_get(jws, "signature")), A2_SIG);
	/* And it verifies from the public JWK alone. */
	assert_ok(jwk_from_pkey(pk, &pubjwk));
	assert_string_equal(json_string_value(json_object_get(pubjwk, "n")), A2_N);
	assert_ok(jwk_to_pkey(pubjwk, &pub));
	assert_ok(jws_verify(jws, pub, 4096, NULL, NULL, NULL));
	EVP_PKEY_free(pub);
	json_decref(pubjwk);
	json_decref(jws);
	json_decref(hdr);
	EVP_PKEY_free(pk);
}

/* The text form is the same JWS, byte for byte what a compact dump gives. */
static void
test_sign_text(void **state)
{
	EVP_PKEY *pk = a2_private();
	struct jws_signer s;
	json_t *hdr = json_object(), *jws, *parsed, *pubjwk, *named;
	EVP_PKEY *pub;
	char *text, *text2, *want;
	size_t len;

	assert_ok(jws_pkey_signer(pk, &s));
	assert_ok(jws_sign_text(&s, hdr, (const uint8_t *)PAYLOAD, strlen(PAYLOAD), &text, &len));
	assert_int_equal(len, strlen(text));
	assert_ok(jws_sign(&s, hdr, (const uint8_t *)PAYLOAD, strlen(PAYLOAD), &jws));
	assert_non_null(want = json_dumps(jws, JSON_COMPACT | JSON_PRESERVE_ORDER));
	assert_string_equal(text, want);
	assert_non_null(strstr(text, A2_SIG));
	/* A header that names its alg already gives the same JWS; a wrong alg none. */
	named = json_pack("{s:s}", "alg", "RS256");
	assert_ok(
	    jws_sign_text(&s, named, (const uint8_t *)PAYLOAD, strlen(PAYLOAD), &text2, &len));
	assert_string_equal(text2, text);
	free(text2);
	json_object_set_new(named, "alg", json_string("ES256"));
	assert_sverr(
	    jws_sign_text(&s, named, (const uint8_t *)PAYLOAD, strlen(PAYLOAD), &text2, &len),
	    SV_EINVAL);
	json_decref(named);
	/* It parses back to a JWS that verifies. */
	assert_non_null(parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL));
	assert_ok(jwk_from_pkey(pk, &pubjwk));
	assert_ok(jwk_to_pkey(pubjwk, &pub));
	assert_ok(jws_verify(parsed, pub, 4096, NULL, NULL, NULL));
	/* The empty payload of a POST-as-GET. */
	free(text);
	assert_ok(jws_sign_text(&s, hdr, NULL, 0, &text, &len));
	assert_non_null(strstr(text, "\"payload\":\"\","));
	EVP_PKEY_free(pub);
	json_decref(pubjwk);
	json_decref(parsed);
	free(want);
	free(text);
	json_decref(jws);
	json_decref(hdr);
	EVP_PKEY_free(pk);
}

static void
test_rfc7515_a3_es256(void **state)
{
	json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
	    "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y",
	    "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
	json_t *jws = json_pack("{s:s, s:s, s:s}", "protected", "eyJhbGciOiJFUzI1NiJ9", "payload",
	    PAYLOAD_B64, "signature",
	    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-"
	    "Kg6NU1Q");
	EVP_PKEY *pub;
	uint8_t *p;
	size_t pl;

	assert_ok(jwk_to_pkey(jwk, &pub));
	assert_string_equal(jwk_alg(pub), "ES256");
	assert_ok(jws_verify(jws, pub, 4096, NULL, &p, &pl));
	assert_int_equal(pl, strlen(PAYLOAD));
	assert_memory_equal(p, PAYLOAD, pl);
	free(p);
	/* One changed signature byte fails. */
	json_object_set_new(jws, "signature",
	    json_string("EtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-"
			"F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"));
	assert_sverr(jws_verify(jws, pub, 4096, NULL, NULL, NULL), SV_ECRYPTO);
	EVP_PKEY_free(pub);
	json_decref(jwk);
	json_decref(jws);
}

static void
test_rfc8037_ed25519(void **state)
{
	uint8_t *d;
	size_t dl;
	EVP_PKEY *pk;
	struct jws_signer s;
	json_t *hdr = json_object(), *jws, *jwk;
	const char *msg = "Example of Ed25519 signing";
	char tp[JWK_THUMB_LEN + 1];

	assert_ok(b64u_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", 43, 32, &d, &dl));
	assert_non_null(pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dl));
	free(d);
	assert_ok(jwk_from_pkey(pk, &jwk));
	assert_string_equal(json_string_value(json_object_get(jwk, "x")),
	    "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
	assert_ok(jwk_thumbprint(jwk, tp));
	assert_string_equal(tp, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	assert_ok(jws_pkey_signer(pk, &s));
	assert_ok(jws_sign(&s, hdr, (const uint8_t *)msg, strlen(msg), &jws));
	assert_string_equal(
	    json_string_value(json_object_get(jws, "protected")), "eyJhbGciOiJFZERTQSJ9");
	assert_string_equal(json_string_value(json_object_get(jws, "signature")),
	    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_"
	    "MuM0KAg");
	json_decref(jws);
	json_decref(jwk);
	json_decref(hdr);
	EVP_PKEY_free(pk);
}

static void
test_b64u(void **state)
{
	char *e;
	uint8_t *d;
	size_t l;

	assert_ok(b64u_encode((const uint8_t *)"\xfb\xff", 2, &e));
	assert_string_equal(e, "-_8");
	free(e);
	assert_ok(b64u_decode("-_8", 3, 16, &d, &l));
	assert_int_equal(l, 2);
	assert_memory_equal(d, "\xfb\xff", 2);
	free(d);
	assert_ok(b64u_encode((const uint8_t *)"", 0, &e));
	assert_string_equal(e, "");
	free(e);
	assert_sverr(b64u_decode("-_8=", 4, 16, &d, &l), SV_EINVAL);   /* padding */
	assert_sverr(b64u_decode("+/8", 3, 16, &d, &l), SV_EINVAL);    /* standard alphabet */
	assert_sverr(b64u_decode("-_ 8", 4, 16, &d, &l), SV_EINVAL);   /* white space */
	assert_sverr(b64u_decode("QUJDRA", 6, 3, &d, &l), SV_ETOOBIG); /* "ABCD" > 3 */
	assert_null(d);
}

static void
test_ecdsa_conversion(void **state)
{
	uint8_t raw[64], back[64], *der;
	size_t dl;
	int i;

	for (i = 0; i < 64; i++)
		raw[i] = (uint8_t)(i == 0 || i == 32 ? 0 : i); /* leading zeros exercise padding */
	assert_ok(ecdsa_raw_to_der(raw, 64, &der, &dl));
	assert_true(dl < 72);
	assert_ok(ecdsa_der_to_raw(der, dl, 32, back));
	assert_memory_equal(raw, back, 64);
	assert_int_not_equal(ecdsa_der_to_raw(der, dl - 1, 32, back), 0);
	OPENSSL_free(der);
	assert_sverr(ecdsa_raw_to_der(raw, 63, &der, &dl), SV_EINVAL);
}

static void
test_bad_jwk(void **state)
{
	EVP_PKEY *pk;
	json_t *j;

	j = json_pack(
	    "{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", "AAAA", "y", "AAAA");
	assert_sverr(jwk_to_pkey(j, &pk), SV_EINVAL); /* short coordinates */
	json_decref(j);
	j = json_pack("{s:s, s:s}", "kty", "oct", "k", "AAAA");
	assert_sverr(jwk_to_pkey(j, &pk), SV_EUNSUPP);
	json_decref(j);
	j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-521", "x", "AA", "y", "AA");
	assert_sverr(jwk_to_pkey(j, &pk), SV_EUNSUPP);
	json_decref(j);
	j = json_pack("{s:s}", "kty", "RSA");
	assert_sverr(jwk_to_pkey(j, &pk), SV_EINVAL);
	json_decref(j);
	/* A point not on the curve. */
	j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
	    "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y",
	    "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1");
	assert_int_not_equal(jwk_to_pkey(j, &pk), 0);
	json_decref(j);
}

static int ctx_frees;

static void
count_free(void *ctx)
{
	ctx_frees++;
	free(ctx);
}

/* Signs with the real key behind ctx, as hsm_pkey()'s callback signs in the token. */
static int
real_sign(void *ctx, const uint8_t *dgst, size_t dlen, uint8_t *sig, size_t *siglen)
{
	EVP_PKEY *pk = *(EVP_PKEY **)ctx;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
	uint8_t der[80];
	size_t dl = sizeof(der);
	int ok = c != NULL && EVP_PKEY_sign_init(c) == 1 &&
	    EVP_PKEY_sign(c, der, &dl, dgst, dlen) == 1 && *siglen >= 64 &&
	    ecdsa_der_to_raw(der, dl, 32, sig) == 0;

	EVP_PKEY_CTX_free(c);
	*siglen = 64;
	return ok ? 0 : SV_ECRYPTO;
}

/*
 * ecsign: OpenSSL signs through the callback, and the callback's context is
 * freed exactly once: with the key, or at once when the key cannot be made
 * (the network process hands over a context per proxy key).
 */
static void
test_ecsign(void **state)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *proxy = NULL, **ctx;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t sig[80];
	size_t sl = sizeof(sig);

	assert_non_null(ec);
	assert_non_null(ed);
	assert_non_null(md);
	ctx_frees = 0;
	assert_non_null(ctx = malloc(sizeof(*ctx)));
	*ctx = ec;
	assert_sverr(ecsign_pkey(ed, real_sign, ctx, count_free, &proxy), SV_EUNSUPP);
	assert_null(proxy);
	assert_int_equal(ctx_frees, 1);

	assert_non_null(ctx = malloc(sizeof(*ctx)));
	*ctx = ec;
	assert_ok(ecsign_pkey(ec, real_sign, ctx, count_free, &proxy));
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, proxy), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sl, (const uint8_t *)"abc", 3), 1);
	EVP_MD_CTX_free(md);
	assert_non_null(md = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, ec), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sl, (const uint8_t *)"abc", 3), 1);
	assert_int_equal(ctx_frees, 1);
	EVP_PKEY_free(proxy);
	assert_int_equal(ctx_frees, 2);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7638_thumbprint),
		cmocka_unit_test(test_rfc7515_a2_rs256),
		cmocka_unit_test(test_sign_text),
		cmocka_unit_test(test_rfc7515_a3_es256),
		cmocka_unit_test(test_rfc8037_ed25519),
		cmocka_unit_test(test_b64u),
		cmocka_unit_test(test_ecdsa_conversion),
		cmocka_unit_test(test_bad_jwk),
		cmocka_unit_test(test_ecsign),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("jose", tests, NULL, NULL);
}
