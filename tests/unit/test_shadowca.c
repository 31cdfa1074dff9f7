/*
 * vault/shadowca.c with its CA key in a throw-away SoftHSM2 token, used
 * through the libp11 engine: the CA certificate, shadow and server leaves
 * (CSR content ignored), purpose, foreign, expired and tampered certificates,
 * CSR parsing and refused keys, profile checks, serials, fingerprints, PEM,
 * leaves for a key without a CSR (sca_issue_key), CA bundles and chains
 * (sca_bundle_parse, sca_chain_parse, sca_bundle_pem), the server profile
 * (sca_profile_server), and the engine beside the raw hsm layer (test_coexist).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "hsm_engine.h"
#include "jws.h"
#include "shadowca.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

#define CA_CN	"shadowvault shadow CA"
#define CA_DAYS 3650

struct fx {
	struct testtok tok;
	struct hsm *h;
	struct hsm_engine *e;
	struct hsm_key cakey;
	char uri[HSM_URI_MAX];
	EVP_PKEY *ca_pub;  /* exported from the token by the raw layer */
	EVP_PKEY *ca_priv; /* engine handle: signs in the token */
	X509 *ca;
	EVP_PKEY *shadow;	   /* an in-memory P-256 key of a shadow */
	X509_REQ *csr;		   /* its hostile CSR, through sca_csr_parse() */
	struct sca_profile client; /* CN=shadow-1, 30 days, clientAuth */
};

/* key_ec("P-256"), key_rsa((size_t)2048), key_ed25519(): in-memory keys. */
#define key_ec(curve) key_ok(EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve))
#define key_rsa(bits) key_ok(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)(bits)))
#define key_ed25519() key_ok(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"))

static EVP_PKEY *
key_ok(EVP_PKEY *k)
{
	assert_non_null(k);
	return k;
}

/*
 * A CSR for key with a hostile subject and extension request (CN=evil, O=x,
 * SAN evil.test, CA:TRUE, serverAuth), signed by signer.
 */
static X509_REQ *
make_csr(EVP_PKEY *key, EVP_PKEY *signer)
{
	static const struct {
		int nid;
		const char *value;
	} ext[] = { { NID_subject_alt_name, "DNS:evil.test" },
		{ NID_basic_constraints, "critical,CA:TRUE" },
		{ NID_ext_key_usage, "serverAuth" } };
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_REQ_get_subject_name(req);
	size_t i;

	assert_non_null(exts);
	assert_int_equal(X509_NAME_add_entry_by_txt(
			     n, "CN", MBSTRING_ASC, (const unsigned char *)"evil", -1, -1, 0),
	    1);
	assert_int_equal(
	    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"x", -1, -1, 0),
	    1);
	for (i = 0; i < 3; i++)
		assert_true(sk_X509_EXTENSION_push(exts,
				X509V3_EXT_conf_nid(NULL, NULL, ext[i].nid, ext[i].value)) > 0);
	assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(
	    X509_REQ_sign(req, signer, EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256()) > 0);
	return req;
}

static uint8_t *
req_der(X509_REQ *req, size_t *len)
{
	uint8_t *der = NULL;
	int n = i2d_X509_REQ(req, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static char *
req_pem(X509_REQ *req)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s;
	long n;

	assert_non_null(b);
	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	n = BIO_get_mem_data(b, &p);
	assert_true(n > 0);
	assert_non_null(s = calloc(1, (size_t)n + 1));
	memcpy(s, p, (size_t)n);
	BIO_free(b);
	return s;
}

/* A CSR for key through sca_csr_parse() (DER). */
static X509_REQ *
parsed_csr(EVP_PKEY *key)
{
	X509_REQ *req = make_csr(key, key), *out = NULL;
	size_t len;
	uint8_t *der = req_der(req, &len);

	assert_ok(sca_csr_parse(der, len, &out));
	OPENSSL_free(der);
	X509_REQ_free(req);
	return out;
}

static X509 *
issue_for(struct fx *f, EVP_PKEY *key, const struct sca_profile *p)
{
	X509_REQ *req = parsed_csr(key);
	X509 *x = NULL;

	assert_ok(sca_issue(f->ca_priv, f->ca, req, p, &x));
	X509_REQ_free(req);
	return x;
}

static int
ext_crit(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void
assert_cn(X509 *x, const char *want)
{
	char cn[128];

	assert_true(X509_NAME_get_text_by_NID(
			X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, want);
}

/* basicConstraints critical with cA as given and pathlen (-1: absent). */
static void
assert_bc(X509 *x, int ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	assert_non_null(bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL));
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca != 0, ca);
	assert_int_equal(bc->pathlen == NULL ? -1 : ASN1_INTEGER_get(bc->pathlen), pathlen);
	BASIC_CONSTRAINTS_free(bc);
}

/* notBefore now - SCA_SKEW_SECONDS, notAfter now + days (within a minute). */
static void
assert_validity(X509 *x, long days)
{
	int d1, s1, d2, s2;

	assert_int_equal(ASN1_TIME_diff(&d1, &s1, NULL, X509_get0_notBefore(x)), 1);
	assert_int_equal(ASN1_TIME_diff(&d2, &s2, NULL, X509_get0_notAfter(x)), 1);
	assert_true(labs(d1 * 86400L + s1 + SCA_SKEW_SECONDS) < 60);
	assert_true(labs(d2 * 86400L + s2 - days * 86400) < 60);
}

static void
assert_err_contains(int code, const char *want)
{
	const char *msg = sv_errmsg(code);

	if (strstr(msg, want) == NULL)
		fail_msg("error detail \"%s\" lacks \"%s\"", msg, want);
}

/* e fails with code c and a detail containing want. */
#define assert_fails(e, c, want)                                                                   \
	do {                                                                                       \
		assert_sverr(e, c);                                                                \
		assert_err_contains(c, want);                                                      \
	} while (0)

/* Sign and verify a JWS with a token key through the raw PKCS#11 layer. */
static void
raw_sign_ok(struct hsm *h, struct hsm_key *k, EVP_PKEY *pub)
{
	struct hsm_jws_ctx ctx = { h, k };
	struct jws_signer s;
	json_t *hdr, *jws = NULL;

	hsm_jws_signer(&ctx, &s);
	hdr = json_pack("{s:s, s:s}", "nonce", "n", "url", "https://ca.test/x");
	assert_ok(jws_sign(&s, hdr, (const uint8_t *)"{}", 2, &jws));
	assert_ok(jws_verify(jws, pub, 64, NULL, NULL, NULL));
	json_decref(jws);
	json_decref(hdr);
}

static void
engine_up(struct fx *f)
{
	assert_ok(hsm_engine_open(&f->tok.cfg, &f->e));
	assert_ok(hsm_engine_key(f->e, f->uri, &f->ca_priv));
}

static void
engine_down(struct fx *f)
{
	EVP_PKEY_free(f->ca_priv);
	f->ca_priv = NULL;
	hsm_engine_close(f->e);
	f->e = NULL;
}

/* A client certificate for the fixture's shadow key. */
static X509 *
issue_client(struct fx *f)
{
	X509 *x = NULL;

	assert_ok(sca_issue(f->ca_priv, f->ca, f->csr, &f->client, &x));
	return x;
}

/*
 * One fixture for the whole suite: a token, the raw layer first, then the
 * engine; the CA key made in the token and the CA certificate made once.
 */
static int
group_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_ok(testtok_make(&f->tok, "scatest"));
	assert_ok(hsm_open(&f->tok.cfg, &f->h));
	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "shadow-ca", 0, &f->cakey));
	assert_ok(hsm_key_uri(f->h, &f->cakey, f->uri, sizeof(f->uri)));
	assert_ok(hsm_key_public(f->h, &f->cakey, &f->ca_pub));
	engine_up(f);
	assert_ok(sca_make_ca(f->ca_priv, f->ca_pub, CA_CN, CA_DAYS, &f->ca));
	f->shadow = key_ec("P-256");
	f->csr = parsed_csr(f->shadow);
	f->client = (struct sca_profile){ .cn = "shadow-1", .days = 30 };
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fx *f = *state;

	X509_REQ_free(f->csr);
	EVP_PKEY_free(f->shadow);
	X509_free(f->ca);
	EVP_PKEY_free(f->ca_pub);
	engine_down(f);
	hsm_close(f->h);
	testtok_free(&f->tok);
	free(f);
	return 0;
}

static void
test_ca_cert(void **state)
{
	struct fx *f = *state;
	struct hsm_keyattrs a;

	/* The key never left the token, yet its public key verifies the self-signature. */
	assert_ok(hsm_key_attrs(f->h, &f->cakey, &a));
	assert_true(a.sensitive);
	assert_false(a.extractable);
	assert_int_equal(X509_verify(f->ca, f->ca_pub), 1);
	assert_int_equal(X509_verify(f->ca, f->shadow), 0);
	assert_int_equal(X509_self_signed(f->ca, 1), 1);
	assert_int_equal(X509_get_signature_nid(f->ca), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_get_version(f->ca), X509_VERSION_3);
	assert_int_equal(
	    X509_NAME_cmp(X509_get_subject_name(f->ca), X509_get_issuer_name(f->ca)), 0);
	assert_cn(f->ca, CA_CN);
	assert_bc(f->ca, 1, 0);
	assert_int_equal(ext_crit(f->ca, NID_key_usage), 1);
	assert_int_equal(X509_get_key_usage(f->ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(ext_crit(f->ca, NID_ext_key_usage), -1);
	assert_non_null(X509_get0_subject_key_id(f->ca));
	assert_int_equal(X509_check_ca(f->ca), 1);
	assert_validity(f->ca, CA_DAYS);
}

/*
 * CA keys: P-384 in the token signs with SHA-384, RSA in the token; Ed25519
 * refused; a private key that is not the CA's; bad arguments.
 */
static void
test_ca_key_types(void **state)
{
	struct fx *f = *state;
	static const enum hsm_keytype types[] = { HSM_EC_P384, HSM_RSA_2048 };
	static const int sig[] = { NID_ecdsa_with_SHA384, NID_sha256WithRSAEncryption };
	EVP_PKEY *ed = key_ed25519(), *other = f->shadow; /* not the CA key */
	size_t i;
	X509 *x = (X509 *)1;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct hsm_key k;
		char uri[HSM_URI_MAX];
		EVP_PKEY *pub = NULL, *priv = NULL;
		X509 *ca = NULL, *leaf = NULL;

		assert_ok(hsm_key_create(f->h, types[i], "ca2", 0, &k));
		assert_ok(hsm_key_uri(f->h, &k, uri, sizeof(uri)));
		assert_ok(hsm_key_public(f->h, &k, &pub));
		assert_ok(hsm_engine_key(f->e, uri, &priv));
		assert_ok(sca_make_ca(priv, pub, "ca2", 10, &ca));
		assert_int_equal(X509_get_signature_nid(ca), sig[i]);
		assert_int_equal(X509_verify(ca, pub), 1);
		assert_ok(sca_issue(priv, ca, f->csr, &f->client, &leaf));
		assert_int_equal(X509_get_signature_nid(leaf), sig[i]);
		assert_ok(sca_verify(ca, leaf, 0));
		/* The P-256 CA of the fixture did not issue it. */
		assert_sverr(sca_verify(f->ca, leaf, 0), SV_EDENIED);
		X509_free(leaf);
		X509_free(ca);
		EVP_PKEY_free(priv);
		EVP_PKEY_free(pub);
	}
	assert_fails(sca_make_ca(ed, ed, "ed", 10, &x), SV_EUNSUPP, "cannot sign EdDSA");
	assert_null(x);
	/* A private key that does not match the CA is caught before anything leaves. */
	assert_fails(sca_make_ca(other, f->ca_pub, "x", 10, &x), SV_ECRYPTO, "does not match");
	assert_null(x);
	assert_fails(sca_issue(other, f->ca, f->csr, &f->client, &x), SV_ECRYPTO, "does not match");
	assert_null(x);
	assert_sverr(sca_make_ca(NULL, f->ca_pub, "x", 10, &x), SV_EINVAL);
	assert_sverr(sca_make_ca(f->ca_priv, f->ca_pub, "", 10, &x), SV_EINVAL);
	assert_fails(
	    sca_make_ca(f->ca_priv, f->ca_pub, "x", 0, &x), SV_EINVAL, "validity of 0 days");
	EVP_PKEY_free(ed);
}

static void
test_shadow_leaf(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *shadow = key_ec("P-256");
	struct sca_profile p = { .cn = "shadow-1", .days = 90, .server = 0 };
	X509 *leaf = issue_for(f, shadow, &p);
	unsigned char *der = NULL;
	int crit = 0, len;

	assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), shadow), 1);
	/* Subject from the profile only: no O=x, no CN=evil, no SAN, no CA:TRUE, no serverAuth. */
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 1);
	assert_cn(leaf, "shadow-1");
	assert_int_equal(
	    X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(f->ca)), 0);
	assert_null(X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL));
	assert_int_equal(crit, -1);
	assert_true((len = i2d_X509(leaf, &der)) > 0);
	assert_null(memmem(der, (size_t)len, "evil", 4));
	OPENSSL_free(der);
	assert_bc(leaf, 0, -1);
	assert_int_equal(ext_crit(leaf, NID_key_usage), 1);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(ext_crit(leaf, NID_ext_key_usage), 0);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_CLIENT);
	assert_non_null(X509_get0_subject_key_id(leaf));
	assert_non_null(X509_get0_authority_key_id(leaf));
	assert_int_equal(ASN1_OCTET_STRING_cmp(
			     X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(f->ca)),
	    0);
	assert_validity(leaf, 90);
	/* Signed by the token key; valid as a TLS client, not as a server. */
	assert_int_equal(X509_verify(leaf, f->ca_pub), 1);
	assert_ok(sca_verify(f->ca, leaf, 0));
	assert_fails(sca_verify(f->ca, leaf, 1), SV_EDENIED, "unsuitable certificate purpose");
	X509_free(leaf);
	EVP_PKEY_free(shadow);
}

/* Entry i of a subjectAltName is of type with the given bytes (IA5 text or IP octets). */
static void
assert_gen(GENERAL_NAMES *san, int i, int type, const void *data, int len)
{
	GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
	const ASN1_STRING *v = type == GEN_DNS ? g->d.dNSName : g->d.iPAddress;

	assert_int_equal(g->type, type);
	assert_int_equal(ASN1_STRING_length(v), len);
	assert_memory_equal(ASN1_STRING_get0_data(v), data, (size_t)len);
}

static void
test_server_leaf(void **state)
{
	struct fx *f = *state;
	const char *dns[] = { "localhost", "vault.example.test" };
	const char *ips[] = { "127.0.0.1", "::1" };
	static const uint8_t v4[4] = { 127, 0, 0, 1 };
	static const uint8_t v6[16] = { [15] = 1 };
	/* cn, dns, ndns, ips, nips, days, server */
	struct sca_profile p = { "vault.example.test", dns, 2, ips, 2, 365, 1 };
	EVP_PKEY *key = key_ec("P-384");
	X509 *leaf = issue_for(f, key, &p);
	GENERAL_NAMES *san;
	int crit = -1;

	assert_non_null(san = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL));
	assert_int_equal(crit, 0);
	assert_int_equal(sk_GENERAL_NAME_num(san), 4);
	assert_gen(san, 0, GEN_DNS, "localhost", 9);
	assert_gen(san, 1, GEN_DNS, "vault.example.test", 18);
	assert_gen(san, 2, GEN_IPADD, v4, 4);
	assert_gen(san, 3, GEN_IPADD, v6, 16);
	GENERAL_NAMES_free(san);
	/* What a TLS client checks. */
	assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "evil.test", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
	assert_ok(sca_verify(f->ca, leaf, 1));
	assert_fails(sca_verify(f->ca, leaf, 0), SV_EDENIED, "unsuitable certificate purpose");
	X509_free(leaf);
	EVP_PKEY_free(key);
}

/* RSA leaves get keyEncipherment; Ed25519 and P-384 shadows are accepted too. */
static void
test_leaf_key_types(void **state)
{
	struct fx *f = *state;
	struct sca_profile p = { .cn = "shadow-2", .days = 1 };
	EVP_PKEY *keys[3] = { key_rsa(2048), key_ed25519(), key_ec("P-384") };
	size_t i;

	for (i = 0; i < 3; i++) {
		X509 *leaf = issue_for(f, keys[i], &p);

		assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), keys[i]), 1);
		assert_int_equal(X509_get_key_usage(leaf),
		    i == 0 ? (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT) : KU_DIGITAL_SIGNATURE);
		assert_ok(sca_verify(f->ca, leaf, 0));
		X509_free(leaf);
		EVP_PKEY_free(keys[i]);
	}
}

/* Re-sign a copy of leaf with the token CA key after changing its validity. */
static X509 *
resigned(struct fx *f, X509 *leaf, long nb, long na)
{
	X509 *x = X509_dup(leaf);

	assert_non_null(x);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
	assert_true(X509_sign(x, f->ca_priv, EVP_sha256()) > 0);
	return x;
}

static void
test_expired_and_future(void **state)
{
	struct fx *f = *state;
	X509 *leaf = issue_client(f), *x;

	/* Control: the same re-signing with a current validity verifies. */
	x = resigned(f, leaf, -60, 86400);
	assert_ok(sca_verify(f->ca, x, 0));
	X509_free(x);
	x = resigned(f, leaf, -10 * 86400, -86400);
	assert_int_equal(X509_verify(x, f->ca_pub), 1);
	assert_fails(sca_verify(f->ca, x, 0), SV_EDENIED, "certificate has expired");
	X509_free(x);
	x = resigned(f, leaf, 86400, 2 * 86400);
	assert_fails(sca_verify(f->ca, x, 0), SV_EDENIED, "certificate is not yet valid");
	X509_free(x);
	X509_free(leaf);
}

/* A CA made in memory with the same name, and one with another name: neither is ours. */
static void
test_foreign_ca(void **state)
{
	struct fx *f = *state;
	const char *names[] = { CA_CN, "some other CA" };
	size_t i;

	for (i = 0; i < 2; i++) {
		EVP_PKEY *k = key_ec("P-256");
		X509 *ca2 = NULL, *leaf = NULL;

		assert_ok(sca_make_ca(k, k, names[i], 10, &ca2));
		assert_ok(sca_issue(k, ca2, f->csr, &f->client, &leaf));
		assert_ok(sca_verify(ca2, leaf, 0)); /* a valid chain of its own */
		assert_fails(sca_verify(f->ca, leaf, 0), SV_EDENIED, "verify (as client)");
		/* Nor is a foreign CA's certificate signed by ours. */
		assert_sverr(sca_verify(f->ca, ca2, 0), SV_EDENIED);
		X509_free(leaf);
		X509_free(ca2);
		EVP_PKEY_free(k);
	}
}

/* A certificate changed after signing (CN shadow-1 -> shadow-2) fails. */
static void
test_tampered_leaf(void **state)
{
	struct fx *f = *state;
	X509 *leaf = issue_client(f), *x;
	unsigned char *der = NULL, *hit;
	const unsigned char *q;
	int len;

	assert_true((len = i2d_X509(leaf, &der)) > 0);
	assert_non_null(hit = memmem(der, (size_t)len, "shadow-1", 8));
	hit[7] = '2';
	q = der;
	assert_non_null(x = d2i_X509(NULL, &q, len));
	assert_fails(sca_verify(f->ca, x, 0), SV_EDENIED, "signature failure");
	X509_free(x);
	OPENSSL_free(der);
	X509_free(leaf);
}

#define LIT(s) s, sizeof(s) - 1 /* a string literal and its length */

/* sca_csr_parse() refuses data with code and a detail containing want. */
static void
csr_refused(const void *data, size_t len, int code, const char *want)
{
	X509_REQ *a = (X509_REQ *)1;

	assert_sverr(sca_csr_parse(data, len, &a), code);
	assert_err_contains(code, want);
	assert_null(a);
}

static void
test_csr_parse(void **state)
{
	struct fx *f = *state;
	X509_REQ *req = make_csr(f->shadow, f->shadow), *a = NULL, *b = NULL;
	size_t len, plen;
	uint8_t *der = req_der(req, &len), *der2, *buf = calloc(1, SCA_PEM_MAX + 1);
	char *pem = req_pem(req), *s = (char *)buf;

	assert_non_null(buf);
	assert_ok(sca_csr_parse(der, len, &a));
	assert_ok(sca_csr_parse((const uint8_t *)pem, strlen(pem), &b));
	der2 = req_der(b, &plen);
	assert_int_equal(plen, len);
	assert_memory_equal(der2, der, len);
	X509_REQ_free(a);
	X509_REQ_free(b);
	OPENSSL_free(der2);
	/* White space around PEM is fine; anything else after it is not. */
	snprintf(s, SCA_PEM_MAX, "\r\n\n%s\r\n\n", pem);
	assert_ok(sca_csr_parse(buf, strlen(s), &a));
	X509_REQ_free(a);
	snprintf(s, SCA_PEM_MAX, "%sjunk\n", pem);
	csr_refused(buf, strlen(s), SV_EINVAL, "data after the PEM certificate request");
	snprintf(s, SCA_PEM_MAX, "%s%s", pem, pem);
	csr_refused(buf, strlen(s), SV_EINVAL, "data after the PEM certificate request");
	csr_refused(pem, strlen(pem) / 2, SV_EINVAL, "not a PEM certificate request");
	memcpy(buf, der, len);
	buf[len] = 0;
	csr_refused(buf, len + 1, SV_EINVAL, "1 bytes after the DER certificate request");
	csr_refused(der, len - 1, SV_EINVAL, "neither PEM nor a DER certificate request");
	/* Caps: one byte over is refused for its size, at the cap as garbage. */
	memset(buf, 'A', SCA_PEM_MAX + 1);
	csr_refused(buf, SCA_PEM_MAX + 1, SV_ETOOBIG, "CSR: 65537 bytes: at most 65536 accepted");
	csr_refused(buf, SCA_PEM_MAX, SV_EINVAL, "neither PEM nor a DER");
	csr_refused("", 0, SV_EINVAL, "CSR: empty input");
	csr_refused(NULL, 10, SV_EINVAL, "CSR: empty input");
	csr_refused(LIT("hello"), SV_EINVAL, "neither PEM nor a DER");
	csr_refused(LIT("-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n"
			"-----END CERTIFICATE REQUEST-----\n"),
	    SV_EINVAL, "not a PEM certificate request");
	/* An encrypted PEM block is refused, never a prompt for a passphrase. */
	csr_refused(LIT("-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n"
			"DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n"
			"aGVsbG8=\n-----END CERTIFICATE REQUEST-----\n"),
	    SV_EINVAL, "not a PEM certificate request");
	free(buf);
	free(pem);
	OPENSSL_free(der);
	X509_REQ_free(req);
}

static void
test_csr_bad_signature(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k = key_ec("P-256");
	X509_REQ *req = make_csr(k, k);
	size_t len;
	uint8_t *der = req_der(req, &len);

	/* The last byte of the DER is the last byte of the ECDSA signature's s. */
	der[len - 1] ^= 0x01;
	csr_refused(der, len, SV_EINVAL, "CSR: the self-signature does not verify");
	OPENSSL_free(der);
	X509_REQ_free(req);
	/* Key k in the CSR, signed by another key. */
	req = make_csr(k, f->shadow);
	der = req_der(req, &len);
	csr_refused(der, len, SV_EINVAL, "CSR: the self-signature does not verify");
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
}

/* An RSA public key with a bits-bit modulus, too big to generate in a test. */
static EVP_PKEY *
rsa_pub(int bits)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *n = BN_new(), *e = BN_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM *params;
	EVP_PKEY *pk = NULL;

	assert_true(BN_set_bit(n, bits - 1) && BN_set_bit(n, 0) && BN_set_word(e, 65537));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
	assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return pk;
}

static void
test_csr_refused_keys(void **state)
{
	struct fx *f = *state;
	const char *want[] = { "CSR: RSA key of 1024 bits: at least 2048 required",
		"CSR: EC key on curve secp256k1: only P-256 and P-384 accepted",
		"CSR: EC key on curve secp521r1: only P-256 and P-384 accepted",
		"CSR: RSA key of 8200 bits: at most 8192 accepted" };
	EVP_PKEY *keys[] = { key_rsa(1024), key_ec("secp256k1"), key_ec("P-521"), rsa_pub(8200) };
	size_t i, len;

	for (i = 0; i < 4; i++) {
		/* The big key has no private half: f->shadow signs (the size is checked first). */
		X509_REQ *req = make_csr(keys[i], i == 3 ? f->shadow : keys[i]), *a = (X509_REQ *)1;
		X509 *x = (X509 *)1;
		uint8_t *der = req_der(req, &len);

		assert_sverr(sca_csr_parse(der, len, &a), SV_EDENIED);
		assert_string_equal(sv_errmsg(SV_EDENIED), want[i]);
		assert_null(a);
		/* sca_issue() checks a CSR that did not come through sca_csr_parse() too. */
		assert_sverr(sca_issue(f->ca_priv, f->ca, req, &f->client, &x), SV_EDENIED);
		assert_string_equal(sv_errmsg(SV_EDENIED), want[i]);
		assert_null(x);
		OPENSSL_free(der);
		X509_REQ_free(req);
		EVP_PKEY_free(keys[i]);
	}
}

/* sca_issue also re-checks the CSR's signature, and refuses a leaf as issuer. */
static void
test_issue_args(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *other = key_ec("P-256");
	const struct sca_profile *p = &f->client;
	X509_REQ *bad = make_csr(f->shadow, other), *good = f->csr;
	X509 *leaf = NULL, *x = (X509 *)1;

	assert_fails(sca_issue(f->ca_priv, f->ca, bad, p, &x), SV_EINVAL, "self-signature");
	assert_null(x);
	assert_ok(sca_issue(f->ca_priv, f->ca, good, p, &leaf));
	assert_fails(sca_issue(f->ca_priv, leaf, good, p, &x), SV_EINVAL, "not a CA");
	assert_sverr(sca_issue(f->ca_priv, f->ca, good, NULL, &x), SV_EINVAL);
	assert_sverr(sca_issue(f->ca_priv, f->ca, NULL, p, &x), SV_EINVAL);
	X509_free(leaf);
	X509_REQ_free(bad);
	EVP_PKEY_free(other);
}

/* n characters into s: "aaa..." or, with dots, "a.a.a..."; returns s. */
static char *
fill(char *s, size_t n, int dots)
{
	size_t i;

	for (i = 0; i < n; i++)
		s[i] = dots && i % 2 ? '.' : 'a';
	s[n] = '\0';
	return s;
}

/* sca_issue() refuses p as it is and accepts it once s is cut to cut characters. */
static void
refused_until_cut(struct fx *f, X509_REQ *req, const struct sca_profile *p, char *s, size_t cut)
{
	X509 *x = NULL;

	assert_sverr(sca_issue(f->ca_priv, f->ca, req, p, &x), SV_EINVAL);
	s[cut] = '\0';
	assert_ok(sca_issue(f->ca_priv, f->ca, req, p, &x));
	X509_free(x);
}

/* Every way a profile can be wrong, each with its message. */
static void
test_profile_errors(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *cn, *dns, *ip;
		int days;
		const char *want;
	} bad[] = {
		{ NULL, NULL, NULL, 30, "empty subject CN" },
		{ "", NULL, NULL, 30, "empty subject CN" },
		{ "a\nb", NULL, NULL, 30, "subject CN \"a\\x0ab\"" },
		{ "x", NULL, NULL, 0, "validity of 0 days" },
		{ "x", NULL, NULL, SCA_DAYS_MAX + 1, "validity of 7301 days" },
		{ "x", "bad name", NULL, 30, "dNSName \"bad name\": not a host name" },
		{ "x", "-a.test", NULL, 30, "not a host name" },
		{ "x", "a-.test", NULL, 30, "not a host name" },
		{ "x", "a..test", NULL, 30, "not a host name" },
		{ "x", "a.test.", NULL, 30, "not a host name" },
		{ "x", "*.a.test", NULL, 30, "not a host name" },
		{ "x", "", NULL, 30, "not a host name" },
		{ "x", NULL, "1.2.3", 30, "iPAddress \"1.2.3\": not an IP address" },
		{ "x", NULL, "300.1.1.1", 30, "not an IP address" },
		{ "x", NULL, "127.0.0.1 ", 30, "not an IP address" },
		{ "x", NULL, "fe80::1%eth0", 30, "not an IP address" },
	};
	char longcn[SCA_CN_MAX + 2], label[70], longdns[SCA_DNS_MAX + 3];
	const char *many[SCA_SAN_MAX + 1];
	X509_REQ *req = f->csr;
	struct sca_profile p;
	X509 *x = (X509 *)1;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.cn = bad[i].cn;
		p.days = bad[i].days;
		p.dns = &bad[i].dns;
		p.ndns = bad[i].dns != NULL;
		p.ips = &bad[i].ip;
		p.nips = bad[i].ip != NULL;
		assert_fails(sca_issue(f->ca_priv, f->ca, req, &p, &x), SV_EINVAL, bad[i].want);
		assert_null(x);
	}
	/* Lengths: one over the limit refused, at the limit accepted. */
	memset(&p, 0, sizeof(p));
	p.days = 30;
	p.cn = fill(longcn, SCA_CN_MAX + 1, 0);
	refused_until_cut(f, req, &p, longcn, SCA_CN_MAX);
	p.cn = "x";
	p.dns = many;
	p.ndns = 1;
	many[0] = fill(label, 64, 0);
	refused_until_cut(f, req, &p, label, 63);    /* longest label */
	many[0] = fill(longdns, SCA_DNS_MAX + 2, 1); /* odd length: ends in a letter */
	refused_until_cut(f, req, &p, longdns, SCA_DNS_MAX);
	for (i = 0; i <= SCA_SAN_MAX; i++)
		many[i] = "a.test";
	p.ndns = SCA_SAN_MAX + 1;
	assert_fails(
	    sca_issue(f->ca_priv, f->ca, req, &p, &x), SV_EINVAL, "33 subjectAltName entries");
	p.ndns = SCA_SAN_MAX;
	assert_ok(sca_issue(f->ca_priv, f->ca, req, &p, &x));
	X509_free(x);
	p.dns = NULL;
	p.ndns = 1;
	assert_fails(sca_issue(f->ca_priv, f->ca, req, &p, &x), SV_EINVAL, "count without a list");
}

static void
expect_serial_hex(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char buf[SCA_HEX_MAX], *want;
	size_t i;

	assert_non_null(bn);
	assert_non_null(want = BN_bn2hex(bn));
	for (i = 0; want[i] != '\0'; i++)
		want[i] = (char)(want[i] >= 'A' && want[i] <= 'F' ? want[i] + 32 : want[i]);
	assert_ok(sca_serial_hex(x, buf, sizeof(buf)));
	assert_string_equal(buf, want);
	OPENSSL_free(want);
	BN_free(bn);
}

static void
test_serials(void **state)
{
	struct fx *f = *state;
	X509 *a = issue_client(f), *b = issue_client(f), *h = X509_new();
	char sa[SCA_HEX_MAX], sb[SCA_HEX_MAX], small[8];
	const ASN1_INTEGER *ia = X509_get0_serialNumber(a), *ib = X509_get0_serialNumber(b);
	static const struct {
		long v;
		const char *hex;
	} set[] = { { 0x0a1b, "0a1b" }, { 0xff, "ff" }, { 0x100, "0100" }, { 0, "00" } };
	size_t i;

	assert_int_equal(ASN1_STRING_type(ia), V_ASN1_INTEGER); /* positive */
	assert_int_equal(ASN1_STRING_type(ib), V_ASN1_INTEGER);
	assert_int_not_equal(ASN1_INTEGER_cmp(ia, ib), 0);
	assert_true(ASN1_STRING_length(ia) <= 16 && ASN1_STRING_length(ia) >= 8);
	assert_ok(sca_serial_hex(a, sa, sizeof(sa)));
	assert_ok(sca_serial_hex(b, sb, sizeof(sb)));
	assert_string_not_equal(sa, sb);
	/* Same as OpenSSL's own hex (whole bytes, no leading zero byte), lower-cased. */
	expect_serial_hex(a);
	expect_serial_hex(b);
	expect_serial_hex(f->ca);
	assert_non_null(h); /* serials set by hand */
	for (i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		ASN1_INTEGER_set(X509_get_serialNumber(h), set[i].v);
		assert_ok(sca_serial_hex(h, sa, sizeof(sa)));
		assert_string_equal(sa, set[i].hex);
	}
	/* A non-minimal encoding set through the API: the leading zero byte is dropped. */
	assert_int_equal(ASN1_STRING_set(X509_get_serialNumber(h), "\0\x0a", 2), 1);
	assert_ok(sca_serial_hex(h, sa, sizeof(sa)));
	assert_string_equal(sa, "0a");
	ASN1_INTEGER_set(X509_get_serialNumber(h), -5);
	assert_fails(sca_serial_hex(h, sa, sizeof(sa)), SV_EINVAL, "negative serial");
	assert_fails(sca_serial_hex(a, small, sizeof(small)), SV_EINVAL, "no room");
	X509_free(h);
	X509_free(a);
	X509_free(b);
}

static void
test_fingerprint(void **state)
{
	struct fx *f = *state;
	X509 *leaf = issue_client(f);
	unsigned char *der = NULL, md[32];
	char fp[SCA_HEX_MAX], fpca[SCA_HEX_MAX], want[SCA_HEX_MAX];
	int len;
	size_t i;

	assert_true((len = i2d_X509(leaf, &der)) > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
	assert_ok(sca_fingerprint(leaf, fp, sizeof(fp)));
	assert_string_equal(fp, want); /* 64 lower-case hex digits */
	assert_ok(sca_fingerprint(f->ca, fpca, sizeof(fpca)));
	assert_string_not_equal(fp, fpca);
	assert_sverr(sca_fingerprint(leaf, fp, 64), SV_EINVAL);
	X509_free(leaf);
}

static void
test_cert_pem(void **state)
{
	struct fx *f = *state;
	X509 *leaf = issue_client(f), *back = (X509 *)1;
	char *pem = NULL, *buf, *rp = req_pem(f->csr);
	size_t plen;

	assert_ok(sca_cert_pem(leaf, &pem));
	assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	assert_ok(sca_cert_parse_pem(pem, strlen(pem), &back));
	assert_int_equal(X509_cmp(back, leaf), 0);
	assert_ok(sca_verify(f->ca, back, 0));
	X509_free(back);
	plen = strlen(pem);
	assert_non_null(buf = calloc(1, SCA_PEM_MAX + 1));
	snprintf(buf, SCA_PEM_MAX, "%s%s", pem, pem);
	assert_fails(sca_cert_parse_pem(buf, strlen(buf), &back), SV_EINVAL,
	    "data after the PEM certificate");
	assert_null(back);
	assert_sverr(sca_cert_parse_pem(pem, plen / 2, &back), SV_EINVAL);
	assert_fails(sca_cert_parse_pem("garbage", 7, &back), SV_EINVAL, "not PEM");
	assert_sverr(sca_cert_parse_pem("", 0, &back), SV_EINVAL);
	assert_sverr(sca_cert_parse_pem(rp, strlen(rp), &back), SV_EINVAL); /* a CSR */
	assert_err_contains(SV_EINVAL, "not a PEM certificate");
	memset(buf, '\n', SCA_PEM_MAX + 1);
	assert_sverr(sca_cert_parse_pem(buf, SCA_PEM_MAX + 1, &back), SV_ETOOBIG);
	free(buf);
	free(rp);
	free(pem);
	X509_free(leaf);
}

/* sca_issue_key() refuses its arguments with code and exactly the message want. */
static void
issue_key_refused(EVP_PKEY *priv, X509 *ca, EVP_PKEY *key, const struct sca_profile *p, int code,
    const char *want)
{
	X509 *x = (X509 *)1;

	sv_clearerr();
	assert_sverr(sca_issue_key(priv, ca, key, p, &x), code);
	assert_string_equal(sv_errmsg(code), want);
	assert_null(x);
}

/*
 * A leaf for a public key the vault holds, without a CSR: signed in the
 * token, for that very key, checked as a CSR's key would be (each refused
 * key type with its message); a second CA's leaf is not ours.
 */
/*
 * A link from the token CA to a second CA: the second CA's name and key,
 * issued by the token CA (its name, an authority key identifier matching its
 * subject key identifier), CA:TRUE pathlen:0, signed in the token; refused
 * arguments.
 */
static void
test_cross(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k2 = key_ec("P-256");
	X509 *ca2 = NULL, *link = (X509 *)1;
	const ASN1_OCTET_STRING *akid;

	assert_ok(sca_make_ca(k2, k2, "second CA", 10, &ca2));
	assert_ok(sca_cross(f->ca_priv, f->ca, ca2, &link));
	assert_cn(link, "second CA");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(link), X509_get_subject_name(ca2)), 0);
	assert_int_equal(
	    X509_NAME_cmp(X509_get_issuer_name(link), X509_get_subject_name(f->ca)), 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(link), k2), 1);
	assert_int_equal(X509_verify(link, f->ca_pub), 1);
	assert_int_equal(X509_verify(link, k2), 0);
	assert_bc(link, 1, 0);
	assert_int_equal(X509_get_key_usage(link), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_non_null(akid = X509_get0_authority_key_id(link));
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(f->ca)), 0);
	assert_int_equal(X509_check_issued(f->ca, link), X509_V_OK);
	assert_validity(link, SCA_CA_DAYS);
	/* A self-signed CA has no authority key identifier. */
	assert_null(X509_get0_authority_key_id(f->ca));
	X509_free(link);
	link = (X509 *)1;
	assert_sverr(sca_cross(NULL, f->ca, ca2, &link), SV_EINVAL);
	assert_null(link);
	assert_sverr(sca_cross(f->ca_priv, NULL, ca2, &link), SV_EINVAL);
	assert_sverr(sca_cross(f->ca_priv, f->ca, NULL, &link), SV_EINVAL);
	/* The token key with another CA's certificate: the check against it fails. */
	assert_fails(sca_cross(f->ca_priv, ca2, ca2, &link), SV_ECRYPTO, "does not match");
	X509_free(ca2);
	EVP_PKEY_free(k2);
}

static void
test_issue_key(void **state)
{
	struct fx *f = *state;
	const char *want[] = { "certificate key: RSA key of 1024 bits: at least 2048 required",
		"certificate key: EC key on curve secp256k1: only P-256 and P-384 accepted",
		"certificate key: EC key on curve secp521r1: only P-256 and P-384 accepted",
		"certificate key: RSA key of 8200 bits: at most 8192 accepted",
		"certificate key: ED448 key: only EC P-256/P-384, RSA and Ed25519 keys accepted" };
	EVP_PKEY *bad[] = { key_rsa(1024), key_ec("secp256k1"), key_ec("P-521"), rsa_pub(8200),
		key_ok(EVP_PKEY_Q_keygen(NULL, NULL, "ED448")) };
	EVP_PKEY *key = key_ec("P-256"), *k2 = key_ec("P-256");
	const struct sca_profile *p = &f->client;
	X509 *leaf = NULL, *ca2 = NULL, *leaf2 = NULL;
	const char *noarg = "shadow CA: issue needs a CA key, certificate and key";
	size_t i;

	assert_ok(sca_issue_key(f->ca_priv, f->ca, key, p, &leaf));
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
	assert_int_equal(X509_verify(leaf, f->ca_pub), 1);
	assert_cn(leaf, "shadow-1");
	assert_bc(leaf, 0, -1);
	assert_validity(leaf, 30);
	assert_ok(sca_verify(f->ca, leaf, 0));
	/* A second CA (in-memory key) issues for the same key: not ours, nor ours its. */
	assert_ok(sca_make_ca(k2, k2, "second CA", 10, &ca2));
	assert_ok(sca_issue_key(k2, ca2, key, p, &leaf2));
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf2), key), 1);
	assert_ok(sca_verify(ca2, leaf2, 0));
	assert_fails(sca_verify(f->ca, leaf2, 0), SV_EDENIED, "verify (as client)");
	assert_sverr(sca_verify(ca2, leaf, 0), SV_EDENIED);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		issue_key_refused(f->ca_priv, f->ca, bad[i], p, SV_EDENIED, want[i]);
		EVP_PKEY_free(bad[i]);
	}
	/* Missing arguments, no profile, a leaf as the issuer. */
	issue_key_refused(f->ca_priv, f->ca, NULL, p, SV_EINVAL, noarg);
	issue_key_refused(f->ca_priv, NULL, key, p, SV_EINVAL, noarg);
	issue_key_refused(NULL, f->ca, key, p, SV_EINVAL, noarg);
	issue_key_refused(f->ca_priv, f->ca, key, NULL, SV_EINVAL, "shadow CA: no profile");
	issue_key_refused(
	    f->ca_priv, leaf, key, p, SV_EINVAL, "shadow CA: the issuer certificate is not a CA");
	X509_free(leaf2);
	X509_free(ca2);
	X509_free(leaf);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(key);
}

/* PEM text of x (malloc'd). */
static char *
cert_pem(X509 *x)
{
	char *pem = NULL;

	assert_ok(sca_cert_pem(x, &pem));
	return pem;
}

/* A stack of the n certificates of v, each up-referenced. */
static STACK_OF(X509) * certs_of(X509 **v, size_t n)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	size_t i;

	assert_non_null(sk);
	for (i = 0; i < n; i++) {
		assert_int_equal(X509_up_ref(v[i]), 1);
		assert_true(sk_X509_push(sk, v[i]) > 0);
	}
	return sk;
}

/* sk holds the n certificates of v in that order. */
static void
assert_certs(STACK_OF(X509) * sk, X509 **v, size_t n)
{
	size_t i;

	assert_int_equal(sk_X509_num(sk), (int)n);
	for (i = 0; i < n; i++)
		assert_int_equal(X509_cmp(sk_X509_value(sk, (int)i), v[i]), 0);
}

/* sca_bundle_parse() (or, chain, sca_chain_parse()) refuses pem with code and exactly want. */
static void
certs_refused(int chain, const char *pem, size_t len, int code, const char *want)
{
	STACK_OF(X509) *sk = (STACK_OF(X509) *)1;

	sv_clearerr();
	assert_sverr(
	    chain ? sca_chain_parse(pem, len, &sk) : sca_bundle_parse(pem, len, &sk), code);
	assert_string_equal(sv_errmsg(code), want);
	assert_null(sk);
}

#define NCA (SCA_BUNDLE_MAX + 1)

/*
 * CA bundles: sca_bundle_pem() and back for 1, 2 and SCA_BUNDLE_MAX CAs in
 * their order, white space around them, the byte cap; every refusal, each
 * naming the certificate by its position; sca_chain_parse() takes the leaf
 * that a bundle refuses.
 */
static void
test_bundle_parse(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k = key_ec("P-256");
	X509 *cas[NCA], *leaf = issue_client(f), *two[2];
	STACK_OF(X509) * sk, *back = NULL;
	char *pem = NULL, *capem = cert_pem(f->ca), *leafpem = cert_pem(leaf), *ca2pem, *buf;
	static const size_t counts[] = { 1, 2, SCA_BUNDLE_MAX };
	size_t i, n, len;

	assert_non_null(buf = calloc(1, SCA_PEM_MAX + 2));
	cas[0] = f->ca;
	assert_int_equal(X509_up_ref(f->ca), 1);
	for (i = 1; i < NCA; i++) {
		char cn[16];

		snprintf(cn, sizeof(cn), "old CA %zu", i);
		assert_ok(sca_make_ca(k, k, cn, 10, &cas[i]));
	}
	ca2pem = cert_pem(cas[1]);
	/* 1, 2 and SCA_BUNDLE_MAX CAs: the PEM is each certificate's in turn, and parses back. */
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		n = counts[i];
		sk = certs_of(cas, n);
		assert_ok(sca_bundle_pem(sk, &pem));
		if (n == 1)
			assert_string_equal(pem, capem);
		if (n == 2) {
			snprintf(buf, SCA_PEM_MAX, "%s%s", capem, ca2pem);
			assert_string_equal(pem, buf);
		}
		assert_ok(sca_bundle_parse(pem, strlen(pem), &back));
		assert_certs(back, cas, n);
		sk_X509_pop_free(back, X509_free);
		sk_X509_pop_free(sk, X509_free);
		free(pem);
	}
	/* The other order is kept too; blank lines around and between are fine. */
	two[0] = cas[1];
	two[1] = f->ca;
	snprintf(buf, SCA_PEM_MAX, "\r\n\n%s \t\r\n\n%s \t\r\n\n", ca2pem, capem);
	assert_ok(sca_bundle_parse(buf, strlen(buf), &back));
	assert_certs(back, two, 2);
	sk_X509_pop_free(back, X509_free);
	/* Up to SCA_PEM_MAX bytes (white space padding), not one more. */
	len = strlen(capem);
	memcpy(buf, capem, len);
	memset(buf + len, '\n', SCA_PEM_MAX + 1 - len);
	assert_ok(sca_bundle_parse(buf, SCA_PEM_MAX, &back));
	assert_certs(back, cas, 1);
	sk_X509_pop_free(back, X509_free);
	certs_refused(
	    0, buf, SCA_PEM_MAX + 1, SV_ETOOBIG, "CA bundle: 65537 bytes: at most 65536 accepted");
	/* Nothing, not PEM, garbage after the certificates, half a certificate. */
	certs_refused(0, "", 0, SV_EINVAL, "CA bundle: empty input");
	certs_refused(0, NULL, 10, SV_EINVAL, "CA bundle: empty input");
	certs_refused(0, LIT("garbage"), SV_EINVAL, "CA bundle: not PEM (no \"-----BEGIN\" line)");
	certs_refused(0, LIT(" \n\r\t"), SV_EINVAL, "CA bundle: not PEM (no \"-----BEGIN\" line)");
	snprintf(buf, SCA_PEM_MAX, "%s%sgarbage\n", capem, ca2pem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 3: not a PEM certificate");
	snprintf(buf, SCA_PEM_MAX, "%s%.*s", capem, (int)strlen(ca2pem) / 2, ca2pem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 2: not a PEM certificate");
	/* Anything between two certificates (the PEM reader would skip it): garbage, a CRL block.
	 */
	snprintf(buf, SCA_PEM_MAX, "%sgarbage\n%s", capem, ca2pem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 2: not a PEM certificate");
	snprintf(buf, SCA_PEM_MAX, "%s-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n%s",
	    capem, ca2pem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 2: not a PEM certificate");
	/* A leaf is no CA, first or second; a chain takes it. */
	snprintf(buf, SCA_PEM_MAX, "%s%s", capem, leafpem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 2: not a CA certificate");
	snprintf(buf, SCA_PEM_MAX, "%s%s", leafpem, capem);
	certs_refused(
	    0, buf, strlen(buf), SV_EINVAL, "CA bundle: certificate 1: not a CA certificate");
	assert_ok(sca_chain_parse(buf, strlen(buf), &back));
	two[0] = leaf;
	two[1] = f->ca;
	assert_certs(back, two, 2);
	sk_X509_pop_free(back, X509_free);
	snprintf(buf, SCA_PEM_MAX, "%s%.*s", leafpem, (int)strlen(capem) / 2, capem);
	certs_refused(1, buf, strlen(buf), SV_EINVAL,
	    "certificate chain: certificate 2: not a PEM certificate");
	certs_refused(1, "", 0, SV_EINVAL, "certificate chain: empty input");
	/* One CA too many. */
	sk = certs_of(cas, NCA);
	assert_ok(sca_bundle_pem(sk, &pem));
	certs_refused(0, pem, strlen(pem), SV_ETOOBIG, "CA bundle: more than 8 certificates");
	certs_refused(
	    1, pem, strlen(pem), SV_ETOOBIG, "certificate chain: more than 8 certificates");
	sk_X509_pop_free(sk, X509_free);
	free(pem);
	for (i = 0; i < NCA; i++)
		X509_free(cas[i]);
	X509_free(leaf);
	EVP_PKEY_free(k);
	free(buf);
	free(ca2pem);
	free(leafpem);
	free(capem);
}

/* sca_bundle_pem() of no certificate is an error, not an empty bundle. */
static void
test_bundle_pem_empty(void **state)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	char *pem = (char *)1;

	(void)state;
	assert_non_null(sk);
	sv_clearerr();
	assert_sverr(sca_bundle_pem(sk, &pem), SV_EINVAL);
	assert_string_equal(sv_errmsg(SV_EINVAL), "CA bundle: no certificate");
	assert_null(pem);
	pem = (char *)1;
	assert_sverr(sca_bundle_pem(NULL, &pem), SV_EINVAL);
	assert_null(pem);
	sk_X509_free(sk);
}

/*
 * The server profile: the first name is the CN, IP literals go to iPAddress
 * and the rest to dNSName in their order; a certificate issued with it is
 * what a TLS client accepts for each name.
 */
static void
test_profile_server(void **state)
{
	struct fx *f = *state;
	char *names[] = { "vault.test", "127.0.0.1", "::1", "other.test" };
	const char *dns[4], *ips[4];
	struct sca_profile p;
	EVP_PKEY *key = key_ec("P-256");
	X509 *leaf = NULL;

	memset(&p, 0x55, sizeof(p)); /* whatever was there is overwritten */
	sca_profile_server(&p, names, 4, dns, ips);
	assert_string_equal(p.cn, "vault.test");
	assert_ptr_equal(p.dns, dns);
	assert_int_equal(p.ndns, 2);
	assert_string_equal(dns[0], "vault.test");
	assert_string_equal(dns[1], "other.test");
	assert_ptr_equal(p.ips, ips);
	assert_int_equal(p.nips, 2);
	assert_string_equal(ips[0], "127.0.0.1");
	assert_string_equal(ips[1], "::1");
	assert_int_equal(p.days, SCA_TLS_DAYS);
	assert_int_equal(p.server, 1);
	assert_ok(sca_issue_key(f->ca_priv, f->ca, key, &p, &leaf));
	assert_cn(leaf, "vault.test");
	assert_validity(leaf, SCA_TLS_DAYS);
	assert_ok(sca_verify(f->ca, leaf, 1));
	assert_int_equal(X509_check_host(leaf, "vault.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "other.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "evil.test", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
	X509_free(leaf);
	/* An IP address first is the CN too (and still an iPAddress); no name, no CN. */
	sca_profile_server(&p, names + 1, 2, dns, ips);
	assert_string_equal(p.cn, "127.0.0.1");
	assert_int_equal(p.ndns, 0);
	assert_int_equal(p.nips, 2);
	sca_profile_server(&p, names, 0, dns, ips);
	assert_null(p.cn);
	assert_int_equal(p.ndns + p.nips, 0);
	leaf = (X509 *)1;
	assert_fails(
	    sca_issue_key(f->ca_priv, f->ca, key, &p, &leaf), SV_EINVAL, "empty subject CN");
	assert_null(leaf);
	EVP_PKEY_free(key);
}

static void
issue_ok(struct fx *f)
{
	X509 *leaf = issue_client(f);

	assert_ok(sca_verify(f->ca, leaf, 0));
	X509_free(leaf);
}

/*
 * What works with libp11 0.4.12 (measured): the raw layer opened first and
 * closed last, the engine closed and reopened in between, raw sessions
 * cloned and closed while the engine works.  What does not: closing the last
 * raw session (C_Finalize) while the engine is in use, or re-initialising the
 * module under it; the engine's next key load then fails (and libp11 falls
 * back to asking for the PIN on the terminal), so this suite keeps one raw
 * session open from the first test to the last.
 */
static void
test_coexist(void **state)
{
	struct fx *f = *state;
	struct hsm *h2 = NULL;
	unsigned rec = hsm_recoveries(f->h);

	raw_sign_ok(f->h, &f->cakey, f->ca_pub);
	issue_ok(f);
	raw_sign_ok(f->h, &f->cakey, f->ca_pub);
	/* Engine closed and reopened while the raw session stays open. */
	engine_down(f);
	raw_sign_ok(f->h, &f->cakey, f->ca_pub);
	engine_up(f);
	issue_ok(f);
	raw_sign_ok(f->h, &f->cakey, f->ca_pub);
	/* A second raw session opened, used and closed while the engine works. */
	assert_ok(hsm_clone(f->h, &h2));
	raw_sign_ok(h2, &f->cakey, f->ca_pub);
	issue_ok(f);
	hsm_close(h2);
	issue_ok(f);
	raw_sign_ok(f->h, &f->cakey, f->ca_pub);
	/* None of this made the raw layer re-initialise the module. */
	assert_int_equal(hsm_recoveries(f->h), rec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_cert),
		cmocka_unit_test(test_ca_key_types),
		cmocka_unit_test(test_shadow_leaf),
		cmocka_unit_test(test_server_leaf),
		cmocka_unit_test(test_leaf_key_types),
		cmocka_unit_test(test_expired_and_future),
		cmocka_unit_test(test_foreign_ca),
		cmocka_unit_test(test_tampered_leaf),
		cmocka_unit_test(test_csr_parse),
		cmocka_unit_test(test_csr_bad_signature),
		cmocka_unit_test(test_csr_refused_keys),
		cmocka_unit_test(test_issue_args),
		cmocka_unit_test(test_profile_errors),
		cmocka_unit_test(test_serials),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_cert_pem),
		cmocka_unit_test(test_issue_key),
		cmocka_unit_test(test_cross),
		cmocka_unit_test(test_bundle_parse),
		cmocka_unit_test(test_bundle_pem_empty),
		cmocka_unit_test(test_profile_server),
		cmocka_unit_test(test_coexist),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("shadowca", tests, group_setup, group_teardown);
}
