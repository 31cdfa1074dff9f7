/*
 * vault/classify.c: every classification and every refusal, against real
 * CSRs and certificates made here with OpenSSL (EC P-256 keys in memory).
 * Each refusal checks the code and that the detail names the right thing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "classify.h"
#include "cls_der.h"
#include "jwk.h"
#include "sv_err.h"
#include "svtest.h"

#define CA	 "https://ca.test:14000"
#define URL_KID	 CA "/my-account/1"
#define URL_ORD	 CA "/order-plz"
#define URL_ACC	 CA "/sign-me-up"
#define URL_REV	 CA "/revoke-cert"
#define URL_KEY	 CA "/rollover-account-key"
#define URL_NON	 CA "/nonce-plz"
#define URL_AUTH CA "/authZ/abc"

/* Keys made once: the "account key" and a certificate key. */
static EVP_PKEY *acct_key, *cert_key;
static char acct_thumb[JWK_THUMB_LEN + 1];
static const char *thumbs[2] = { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", acct_thumb };

static struct cls_account acct = {
	.name = "le",
	.directory_url = CA "/dir",
	.kid = URL_KID,
	.new_order = URL_ORD,
	.new_account = URL_ACC,
	.revoke_cert = URL_REV,
	.key_change = URL_KEY,
	.new_nonce = URL_NON,
	.key_thumbprints = thumbs,
	.nthumbprints = 2,
};

static int
setup(void **state)
{
	acct_key = EVP_EC_gen("P-256");
	cert_key = EVP_EC_gen("P-256");
	if (acct_key == NULL || cert_key == NULL)
		return -1;
	return jwk_thumbprint_pkey(acct_key, acct_thumb) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	EVP_PKEY_free(acct_key);
	EVP_PKEY_free(cert_key);
	return 0;
}

/* ---- helpers --------------------------------------------------------- */

/*
 * Classify twice: with the account's URLs parsed beforehand (cls_urls_parse,
 * as vaultd does) and parsed by the call itself.  Both must give the same
 * code, detail and result; the second one's is returned.
 */
static int
run_a(const struct cls_account *a, const char *url, const char *payload, struct cls_result *r)
{
	struct cls_account pa = *a;
	struct cls_urls *u = NULL;
	struct cls_result r2;
	char msg[SV_ERRMSG_MAX] = "";
	int e, e2;
	size_t i;

	assert_ok(cls_urls_parse(a, &u));
	pa.urls = u;
	sv_clearerr();
	e2 = cls_classify(&pa, url, (const uint8_t *)payload, strlen(payload), &r2);
	if (e2 != 0)
		snprintf(msg, sizeof(msg), "%s", sv_errmsg(e2));
	cls_urls_free(u);
	sv_clearerr();
	e = cls_classify(a, url, (const uint8_t *)payload, strlen(payload), r);
	assert_int_equal(e, e2);
	if (e != 0) {
		assert_string_equal(sv_errmsg(e), msg);
		return e;
	}
	assert_int_equal(r->op, r2.op);
	assert_int_equal(r->use_jwk, r2.use_jwk);
	assert_string_equal(r->csr_key_thumbprint, r2.csr_key_thumbprint);
	assert_int_equal(r->nnames, r2.nnames);
	for (i = 0; i < r->nnames; i++)
		assert_string_equal(r->names[i], r2.names[i]);
	cls_result_free(&r2);
	return e;
}

static int
run(const char *url, const char *payload, struct cls_result *r)
{
	return run_a(&acct, url, payload, r);
}

/* Expect code c and a detail containing each of the NULL-terminated words. */
static void
expect_err_a(const struct cls_account *a, const char *url, const char *payload, int c, ...)
{
	struct cls_result r;
	const char *w, *msg;
	va_list ap;
	int e = run_a(a, url, payload, &r);

	msg = sv_errmsg(e);
	if (e != c)
		fail_msg("%s <- %.200s: got %d (%s), expected %d", url, payload, e, msg, c);
	assert_null(r.names);
	assert_int_equal(r.nnames, 0);
	assert_string_equal(r.csr_key_thumbprint, "");
	va_start(ap, c);
	while ((w = va_arg(ap, const char *)) != NULL)
		if (strstr(msg, w) == NULL)
			fail_msg("detail \"%s\" does not mention \"%s\"", msg, w);
	va_end(ap);
}
#define expect_err(url, payload, c, ...) expect_err_a(&acct, url, payload, c, __VA_ARGS__, NULL)

/* Expect success with op and exactly the names given (NULL-terminated, in order). */
static void
expect_op_a(const struct cls_account *a, const char *url, const char *payload, enum pol_op op, ...)
{
	struct cls_result r;
	const char *n;
	size_t i = 0;
	va_list ap;

	assert_ok(run_a(a, url, payload, &r));
	assert_int_equal(r.op, op);
	assert_int_equal(r.use_jwk, op == POL_NEW_ACCOUNT);
	if (op != POL_FINALIZE)
		assert_string_equal(r.csr_key_thumbprint, "");
	va_start(ap, op);
	while ((n = va_arg(ap, const char *)) != NULL) {
		if (i >= r.nnames)
			fail_msg("missing name %s", n);
		assert_string_equal(r.names[i], n);
		i++;
	}
	va_end(ap);
	assert_int_equal(r.nnames, i);
	cls_result_free(&r);
	assert_null(r.names);
}
#define expect_op(url, payload, ...) expect_op_a(&acct, url, payload, __VA_ARGS__, NULL)

/* ---- URL checks ------------------------------------------------------ */

static void
test_url_on_host(void **state)
{
	struct cls_account a443 = acct;

	/* Case-insensitive host, explicit default port, dot segments: same URL. */
	expect_op("https://CA.Test:14000/order-plz",
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"x.test\"}]}", POL_NEW_ORDER, "x.test");
	expect_op("HTTPS://ca.test:14000/a/../order-plz",
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"x.test\"}]}", POL_NEW_ORDER, "x.test");
	a443.directory_url = "https://ca.test/dir";
	a443.new_order = "https://ca.test/new-order";
	a443.kid = "https://CA.test:443/acct/7";
	expect_op_a(&a443, "https://CA.test:443/new-order",
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"y.test\"}]}", POL_NEW_ORDER, "y.test",
	    NULL);
	expect_op_a(&a443, "https://ca.test/acct/7", "{\"contact\":[]}", POL_ACCOUNT_UPDATE, NULL);
	expect_op_a(&a443, "https://ca.test:443/order/1", "", POL_FETCH, NULL);
	/* Port 443 is not the directory's 14000 and vice versa. */
	expect_err_a(&a443, CA "/x", "", SV_EDENIED, "not on the account's CA host ca.test:443",
	    "other port", NULL);
	expect_err("https://ca.test/x", "", SV_EDENIED, "ca.test:14000", "other port");
}

static void
test_url_refused(void **state)
{
	char *big = malloc(CLS_URL_MAX + 2);
	struct cls_account bad = acct;

	expect_err("https://evil.test:14000/order-plz", "", SV_EDENIED,
	    "url \"https://evil.test:14000/order-plz\" is not on the account's CA host "
	    "ca.test:14000",
	    "other host");
	expect_err("https://sub.ca.test:14000/x", "", SV_EDENIED, "other host");
	expect_err("https://ca.test.:14000/x", "", SV_EDENIED, "other host");
	expect_err("http://ca.test:14000/x", "", SV_EDENIED, "ca.test:14000", "not https");
	expect_err("ftp://ca.test:14000/x", "", SV_EDENIED, "not https");
	expect_err("https://ca.test:14001/x", "", SV_EDENIED, "ca.test:14000", "other port");
	expect_err(
	    "https://u:p@ca.test:14000/x", "", SV_EDENIED, "ca.test:14000", "user information");
	expect_err("https://@ca.test:14000/x", "", SV_EDENIED, "user information");
	expect_err("https://ca.test:14000/x#frag", "", SV_EDENIED, "ca.test:14000", "fragment");
	expect_err("https://ca.test:14000/x#", "", SV_EDENIED, "fragment");
	expect_err("https:///ca.test:14000/x", "", SV_EDENIED, "no host");
	expect_err("https://ca.test:14000/a b", "", SV_EDENIED, "character 0x20");
	expect_err("https://ca.test:14000\\@evil.test/", "", SV_EDENIED, "character 0x5c");
	expect_err(
	    "https://ca.test:14000/\xc3\xa9", "", SV_EDENIED, "character 0xc3", "\\xc3\\xa9");
	expect_err("https://ca.test:99999/x", "", SV_EINVAL, "malformed", "Port number");
	expect_err("https://ca.test:14000/\n", "", SV_EDENIED, "character 0x0a", "\\x0a");
	expect_err("", "", SV_EDENIED, "not https");
	/* Overlong. */
	memset(big, 'a', CLS_URL_MAX + 1);
	memcpy(big, CA "/", strlen(CA "/"));
	big[CLS_URL_MAX + 1] = '\0';
	expect_err(big, "", SV_ETOOBIG, "longer than 2048");
	big[CLS_URL_MAX] = '\0'; /* exactly the cap: fine */
	expect_op(big, "", POL_FETCH);
	free(big);
	/* An unusable directory URL. */
	bad.directory_url = "http://ca.test/dir";
	expect_err_a(&bad, URL_ORD, "", SV_EINVAL, "account le: directory URL", NULL);
	bad.directory_url = "not a url";
	expect_err_a(&bad, URL_ORD, "", SV_EINVAL, "directory URL", NULL);
}

static void
test_nonce_and_admin(void **state)
{
	expect_err(URL_NON, "", SV_EDENIED, "newNonce", "HEAD");
	expect_err("https://CA.TEST:14000/nonce-plz", "{}", SV_EDENIED, "newNonce");
	expect_op(URL_ACC, "{\"termsOfServiceAgreed\":true}", POL_NEW_ACCOUNT);
	expect_err(URL_ACC, "", SV_EINVAL, "newAccount: empty payload");
	expect_op(
	    URL_KEY, "{\"protected\":\"x\",\"payload\":\"y\",\"signature\":\"z\"}", POL_KEY_CHANGE);
	expect_err(URL_KEY, "", SV_EINVAL, "keyChange: empty payload");
	expect_err(URL_KEY, "[]", SV_EINVAL, "not a JSON object");
	/* The account URL: empty = fetch, anything else = account update. */
	expect_op(URL_KID, "", POL_FETCH);
	expect_op(URL_KID, "{\"contact\":[\"mailto:a@b.test\"]}", POL_ACCOUNT_UPDATE);
	expect_op(URL_KID, "{\"status\":\"deactivated\"}", POL_ACCOUNT_UPDATE);
	expect_op(URL_KID, "{}", POL_ACCOUNT_UPDATE);
	expect_err(URL_KID, "{", SV_EINVAL, "not valid JSON");
}

/* ---- newOrder -------------------------------------------------------- */

static char *
order_n(size_t n)
{
	json_t *ids = json_array();
	char name[32];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "h%zu.test", i);
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", name));
	}
	return dump(json_pack("{s:o}", "identifiers", ids));
}

static void
test_new_order(void **state)
{
	char *p;
	struct cls_result r;

	expect_op(URL_ORD,
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"WWW.Example.TEST.\"},"
	    "{\"value\":\"*.a.test\",\"type\":\"dns\"},"
	    "{\"type\":\"dns\",\"value\":\"www.example.test\"}],"
	    "\"notBefore\":\"2030-01-01T00:00:00Z\",\"notAfter\":\"2030-02-01T00:00:00Z\","
	    "\"replaces\":\"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\"}",
	    POL_NEW_ORDER, "www.example.test", "*.a.test");
	p = order_n(CLS_NAMES_MAX);
	assert_ok(run(URL_ORD, p, &r));
	assert_int_equal(r.nnames, CLS_NAMES_MAX);
	assert_string_equal(r.names[CLS_NAMES_MAX - 1], "h99.test");
	cls_result_free(&r);
	free(p);
}

static void
test_new_order_refused(void **state)
{
	char *p;

	expect_err(URL_ORD,
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}],\"profile\":\"x\"}",
	    SV_EDENIED, "newOrder: member \"profile\" is not allowed");
	expect_err(URL_ORD, "{\"identifiers\":[{\"type\":\"ip\",\"value\":\"10.0.0.1\"}]}",
	    SV_EDENIED, "only dns identifiers", "\"ip\"");
	expect_err(URL_ORD,
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\",\"extra\":1}]}", SV_EDENIED,
	    "identifier: member \"extra\"");
	/* Names already added are freed when a later one fails (ASan checks). */
	expect_err(URL_ORD,
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"},"
	    "{\"type\":\"dns\",\"value\":\"bad..name.test\"}]}",
	    SV_EINVAL, "identifier 1", "bad..name.test");
	expect_err(URL_ORD, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a\\u0007.test\"}]}",
	    SV_EINVAL, "identifier 0", "a\\x07.test");
	expect_err(URL_ORD, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.*.test\"}]}",
	    SV_EINVAL, "a.*.test");
	expect_err(URL_ORD, "{\"identifiers\":[{\"type\":\"dns\",\"value\":7}]}", SV_EINVAL,
	    "identifier 0 is not an object");
	expect_err(URL_ORD, "{\"identifiers\":[\"a.test\"]}", SV_EINVAL, "identifier 0");
	expect_err(URL_ORD, "{\"identifiers\":[]}", SV_EINVAL, "0 identifiers");
	expect_err(URL_ORD, "{\"identifiers\":{}}", SV_EINVAL, "not an array");
	expect_err(URL_ORD, "{}", SV_EINVAL, "identifiers missing");
	expect_err(URL_ORD,
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}],\"notAfter\":5}", SV_EINVAL,
	    "notAfter is not a string");
	expect_err(URL_ORD, "", SV_EINVAL, "newOrder: empty payload");
	p = order_n(CLS_NAMES_MAX + 1);
	expect_err(URL_ORD, p, SV_EINVAL, "101 identifiers");
	free(p);
}

/* ---- finalize -------------------------------------------------------- */

static void
test_finalize(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char thumb[JWK_THUMB_LEN + 1], *p;
	struct cls_result r;

	assert_ok(jwk_thumbprint_pkey(k, thumb));
	p = csr_payload(k, "a.test", "DNS:A.test,DNS:b.test");
	assert_ok(run(URL_AUTH, p, &r));
	assert_int_equal(r.op, POL_FINALIZE);
	assert_int_equal(r.use_jwk, 0);
	assert_int_equal(r.nnames, 2);
	assert_string_equal(r.names[0], "a.test");
	assert_string_equal(r.names[1], "b.test");
	assert_string_equal(r.csr_key_thumbprint, thumb);
	cls_result_free(&r);
	free(p);
	/* CN only; SAN only with a wildcard. */
	p = csr_payload(k, "Only.CN.test", NULL);
	expect_op(CA "/finalize/1", p, POL_FINALIZE, "only.cn.test");
	free(p);
	p = csr_payload(k, NULL, "DNS:*.w.test,DNS:w.test");
	expect_op(CA "/finalize/1", p, POL_FINALIZE, "*.w.test", "w.test");
	free(p);
	EVP_PKEY_free(k);
}

/* A SAN with CLS_NAMES_MAX + 1 distinct names, then the same with duplicates only. */
static void
too_many_sans(EVP_PKEY *k)
{
	char *san = malloc(32 * (CLS_NAMES_MAX + 1)), *p;
	size_t o = 0;
	int i;

	for (i = 0; i <= CLS_NAMES_MAX; i++)
		o += (size_t)snprintf(san + o, 32, "%sDNS:n%d.test", i ? "," : "", i);
	p = csr_payload(k, NULL, san);
	expect_err(CA "/fin", p, SV_EINVAL, "more than 100 names");
	free(p);
	for (i = 0, o = 0; i <= CLS_NAMES_MAX; i++)
		o += (size_t)snprintf(san + o, 32, "%sDNS:n.test", i ? "," : "");
	p = csr_payload(k, "N.test", san);
	expect_op(CA "/fin", p, POL_FINALIZE, "n.test");
	free(p);
	free(san);
}

/* Extension requests and SANs that are not what they should be. */
static void
bad_extensions(EVP_PKEY *k)
{
	static const uint8_t seq_int[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };
	STACK_OF(X509_EXTENSION) *exts = san_exts("DNS:a.test");
	char *p;

	assert_true(
	    sk_X509_EXTENSION_push(
		exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:evil.test")) > 0);
	p = csr_exts_payload(k, exts);
	expect_err(CA "/fin", p, SV_EINVAL, "more than one subjectAltName extension");
	free(p);
	exts = sk_X509_EXTENSION_new_null();
	sk_X509_EXTENSION_push(exts, raw_ext(NID_subject_alt_name, seq_int, sizeof(seq_int)));
	p = csr_exts_payload(k, exts);
	expect_err(CA "/fin", p, SV_EINVAL, "finalize: the CSR: malformed subjectAltName");
	free(p);
	p = csr_attr_payload(k, V_ASN1_SEQUENCE, seq_int, sizeof(seq_int));
	expect_err(CA "/fin", p, SV_EINVAL, "extension request is malformed");
	free(p);
	p = csr_attr_payload(k, V_ASN1_INTEGER, seq_int + 4, 1);
	expect_err(CA "/fin", p, SV_EINVAL, "extension request is malformed");
	free(p);
}

/* A CSR whose key algorithm is unknown (id-ecPublicKey's OID changed). */
static void
bad_public_key(EVP_PKEY *k)
{
	static const uint8_t ec_oid[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	uint8_t *der, *hit;
	size_t n;
	char *p;

	der = csr_der(k, "a.test", NULL, &n);
	assert_non_null(hit = memmem(der, n, ec_oid, sizeof(ec_oid)));
	hit[sizeof(ec_oid) - 1] = 0x63;
	p = b64_payload("csr", der, n);
	expect_err(CA "/fin", p, SV_EINVAL, "public key does not parse");
	free(p);
	OPENSSL_free(der);
}

static void
test_finalize_refused(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k521 = EVP_EC_gen("P-521");
	uint8_t *der, *big;
	size_t n;
	char *p;

	p = csr_payload(acct_key, "a.test", "DNS:a.test");
	expect_err(CA "/fin", p, SV_EDENIED, "the CSR's key is an ACME account key", acct_thumb);
	free(p);
	p = csr_payload(k, "a.test", "DNS:a.test,IP:10.0.0.1");
	expect_err(CA "/fin", p, SV_EDENIED, "not a DNS name");
	free(p);
	p = csr_payload(k, "a.test", "email:x@a.test");
	expect_err(CA "/fin", p, SV_EDENIED, "not a DNS name");
	free(p);
	p = csr_payload(k, "not a dns name", "DNS:a.test");
	expect_err(CA "/fin", p, SV_EINVAL, "subject CN", "not a dns name");
	free(p);
	p = csr_payload(k, NULL, "DNS:a..test");
	expect_err(CA "/fin", p, SV_EINVAL, "subjectAltName", "a..test");
	free(p);
	p = csr_raw_san_payload(k, "a.test\0.evil.test", 17);
	expect_err(CA "/fin", p, SV_EINVAL, "subjectAltName", "NUL byte");
	free(p);
	p = csr_raw_san_payload(k, "a.test", 6); /* the helper itself works */
	expect_op(CA "/fin", p, POL_FINALIZE, "a.test");
	free(p);
	p = csr_payload(k, NULL, NULL);
	expect_err(CA "/fin", p, SV_EINVAL, "names no DNS name");
	free(p);
	too_many_sans(k);
	bad_extensions(k);
	bad_public_key(k);
	p = csr_payload(k521, "a.test", NULL);
	expect_err(CA "/fin", p, SV_EUNSUPP, "finalize: CSR key");
	free(p);

	/* Two extension requests or values (the second could hide names); a Microsoft one. */
	der = csr_der_x(k, NULL, "DNS:a.test", CSR_TWO_ATTRS, "DNS:evil.test", &n);
	p = b64_payload("csr", der, n);
	expect_err(CA "/fin", p, SV_EINVAL, "the CSR has 2 extension requests");
	OPENSSL_free(der);
	free(p);
	der = csr_der_x(k, NULL, "DNS:a.test", CSR_TWO_VALUES, "DNS:evil.test", &n);
	p = b64_payload("csr", der, n);
	expect_err(CA "/fin", p, SV_EINVAL, "extension request has 2 values");
	OPENSSL_free(der);
	free(p);
	der = csr_der_x(k, "a.test", "DNS:a.test", CSR_MS, NULL, &n);
	p = b64_payload("csr", der, n);
	expect_err(CA "/fin", p, SV_EINVAL, "a Microsoft extension request");
	free(p);

	/* DER damage: flipped signature byte, truncation, trailing garbage. */
	OPENSSL_free(der);
	der = csr_der(k, "a.test", "DNS:a.test", &n);
	big = malloc(n + 1);
	memcpy(big, der, n);
	big[n - 1] ^= 0x01;
	p = b64_payload("csr", big, n);
	expect_err(CA "/fin", p, SV_EINVAL, "signature does not verify");
	free(p);
	p = b64_payload("csr", der, n - 1);
	expect_err(CA "/fin", p, SV_EINVAL, "CSR does not parse");
	free(p);
	memcpy(big, der, n);
	big[n] = 0;
	p = b64_payload("csr", big, n + 1);
	expect_err(CA "/fin", p, SV_EINVAL, "1 bytes of trailing data after the CSR");
	free(p);
	free(big);
	OPENSSL_free(der);

	/* Encoding and shape. */
	expect_err(CA "/fin", "{\"csr\":\"MIIB+/==\"}", SV_EINVAL, "finalize: csr", "base64url");
	expect_err(CA "/fin", "{\"csr\":\"\"}", SV_EINVAL, "CSR does not parse");
	expect_err(CA "/fin", "{\"csr\":5}", SV_EINVAL, "csr is missing or not a string");
	big = calloc(1, CLS_DER_MAX + 1);
	p = b64_payload("csr", big, CLS_DER_MAX + 1);
	expect_err(CA "/fin", p, SV_ETOOBIG, "finalize: csr", "16384");
	free(p);
	free(big);
	expect_err(
	    CA "/fin", "{\"csr\":\"AAAA\",\"x\":1}", SV_EDENIED, "unrecognised ACME request");
	EVP_PKEY_free(k);
	EVP_PKEY_free(k521);
}

/* ---- revokeCert ------------------------------------------------------ */

static void
test_revoke(void **state)
{
	uint8_t *der;
	size_t n;
	char *p;

	der = cert_der(cert_key, "r.test", "DNS:R.test,DNS:*.r.test", &n);
	p = revoke_payload(der, n, json_integer(1));
	expect_op(URL_REV, p, POL_REVOKE, "r.test", "*.r.test");
	free(p);
	p = revoke_payload(der, n, NULL);
	expect_op(URL_REV, p, POL_REVOKE, "r.test", "*.r.test");
	free(p);
	p = revoke_payload(der, n, json_integer(11));
	expect_err(URL_REV, p, SV_EINVAL, "reason is not an integer from 0 to 10");
	free(p);
	p = revoke_payload(der, n, json_string("1"));
	expect_err(URL_REV, p, SV_EINVAL, "reason");
	free(p);
	/* Sent elsewhere it is no recognised request. */
	p = revoke_payload(der, n, NULL);
	expect_err(CA "/other", p, SV_EDENIED, "unrecognised ACME request");
	free(p);
	OPENSSL_free(der);
	/* A CN that is not a DNS name is skipped, not an error. */
	der = cert_der(cert_key, "Example Inc server", "DNS:x.test", &n);
	p = revoke_payload(der, n, NULL);
	expect_op(URL_REV, p, POL_REVOKE, "x.test");
	free(p);
	OPENSSL_free(der);
	der = cert_der(cert_key, "cn-only.test", NULL, &n);
	p = revoke_payload(der, n, json_integer(0));
	expect_op(URL_REV, p, POL_REVOKE, "cn-only.test");
	free(p);
	OPENSSL_free(der);
}

static void
test_revoke_refused(void **state)
{
	uint8_t *der, *big;
	size_t n;
	char *p;

	der = cert_der(cert_key, "r.test", "DNS:r.test,IP:192.0.2.1", &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EDENIED, "revokeCert: the certificate", "not a DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der(cert_key, "r.test", "URI:https://r.test/", &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EDENIED, "not a DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der_n(cert_key, "r.test", "DNS:r.test", 2, &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "certificate has more than one subjectAltName");
	free(p);
	OPENSSL_free(der);
	der = cert_der(cert_key, "no dns here", NULL, &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "names no DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der(cert_key, "r.test", "DNS:r.test", &n);
	big = malloc(n + 2);
	memcpy(big, der, n);
	big[n] = big[n + 1] = 0;
	p = revoke_payload(big, n + 2, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "2 bytes of trailing data after the certificate");
	free(p);
	p = revoke_payload(der, n - 3, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "the certificate does not parse");
	free(p);
	free(big);
	OPENSSL_free(der);
	/* A CSR is not a certificate. */
	der = csr_der(cert_key, "r.test", NULL, &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "the certificate does not parse");
	free(p);
	OPENSSL_free(der);
	expect_err(URL_REV, "{\"certificate\":\"AAAA\",\"why\":1}", SV_EDENIED,
	    "revokeCert: member \"why\" is not allowed");
	expect_err(URL_REV, "{\"reason\":1}", SV_EINVAL, "certificate is missing");
	expect_err(URL_REV, "{\"certificate\":\"!!\"}", SV_EINVAL, "base64url");
	expect_err(URL_REV, "", SV_EINVAL, "revokeCert: empty payload");
}

/* ---- other URLs: by payload shape ------------------------------------ */

static void
test_shapes(void **state)
{
	expect_op(URL_AUTH, "", POL_FETCH);
	expect_op(CA "/certZ/1", "", POL_FETCH);
	expect_op(CA "/chalZ/1", "{}", POL_CHALLENGE);
	expect_op(CA "/chalZ/1", " \t{ \n}\r\n", POL_CHALLENGE);
	expect_op(URL_AUTH, "{\"status\":\"deactivated\"}", POL_AUTHZ_DEACTIVATE);
	expect_err(URL_AUTH, "{\"status\":\"valid\"}", SV_EDENIED, "unrecognised ACME request",
	    "authZ/abc");
	expect_err(URL_AUTH, "{\"status\":\"deactivated\",\"x\":1}", SV_EDENIED, "unrecognised");
	expect_err(URL_AUTH, "{\"status\":1}", SV_EDENIED, "unrecognised");
	expect_err(URL_AUTH, "{\"foo\":\"bar\"}", SV_EDENIED, "unrecognised");
	/* Near misses of known URLs fall here and are refused. */
	expect_err(URL_ORD "/", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}",
	    SV_EDENIED, "unrecognised");
	expect_err(URL_ORD "?x=1", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}",
	    SV_EDENIED, "unrecognised");
	expect_err(CA "/order%2Dplz", "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}",
	    SV_EDENIED, "unrecognised");
	expect_err(URL_KID "/", "{\"contact\":[]}", SV_EDENIED, "unrecognised");
}

static void
test_payload_refused(void **state)
{
	struct cls_result r;
	uint8_t *big = malloc(CLS_PAYLOAD_MAX + 1);

	expect_err(URL_AUTH, "{\"a\":1,\"a\":2}", SV_EINVAL, "not valid JSON", "duplicate");
	expect_err(URL_AUTH, "[]", SV_EINVAL, "not a JSON object");
	expect_err(URL_AUTH, "null", SV_EINVAL, "not valid JSON");
	expect_err(URL_AUTH, "\"x\"", SV_EINVAL, "not valid JSON");
	expect_err(URL_AUTH, "{} {}", SV_EINVAL, "not valid JSON");
	expect_err(URL_AUTH, "{\"status\":\"\xff\"}", SV_EINVAL, "not valid JSON");
	expect_err(URL_AUTH, "{\"status\":\"deactivated\\u0000\"}", SV_EINVAL, "not valid JSON");
	/* An embedded NUL byte. */
	assert_sverr(cls_classify(&acct, URL_AUTH, (const uint8_t *)"{}\0", 3, &r), SV_EINVAL);
	/* Size cap: exactly the cap parses, one more byte does not. */
	memset(big, ' ', CLS_PAYLOAD_MAX + 1);
	big[0] = '{';
	big[1] = '}';
	assert_ok(cls_classify(&acct, URL_AUTH, big, CLS_PAYLOAD_MAX, &r));
	assert_int_equal(r.op, POL_CHALLENGE);
	cls_result_free(&r);
	assert_sverr(cls_classify(&acct, URL_AUTH, big, CLS_PAYLOAD_MAX + 1, &r), SV_ETOOBIG);
	assert_non_null(strstr(sv_errmsg(SV_ETOOBIG), "65537 bytes"));
	assert_null(r.names);
	free(big);
}

static void
test_known_urls_missing(void **state)
{
	struct cls_account a = acct;

	/* Unknown (NULL) or unparsable known URLs match nothing. */
	a.new_order = NULL;
	a.kid = "not a url";
	a.new_nonce = NULL;
	expect_err_a(&a, URL_ORD, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}",
	    SV_EDENIED, "unrecognised", NULL);
	expect_op_a(&a, URL_NON, "", POL_FETCH, NULL);
	a.kid = NULL;
	expect_op_a(&a, URL_KID, "{}", POL_CHALLENGE, NULL);
}

/* One cls_urls serves many calls, for every kind of request, and is only read. */
static void
test_urls_parsed_once(void **state)
{
	struct cls_account a = acct, bad = acct;
	struct cls_urls *u = NULL;
	struct cls_result r;
	int round;

	assert_ok(cls_urls_parse(&acct, &u));
	a.urls = u;
	for (round = 0; round < 2; round++) {
		assert_ok(run_a(&a, URL_ORD,
		    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}", &r));
		assert_int_equal(r.op, POL_NEW_ORDER);
		cls_result_free(&r);
		assert_ok(run_a(&a, URL_KID, "", &r));
		assert_int_equal(r.op, POL_FETCH);
		cls_result_free(&r);
		assert_ok(run_a(&a, "https://CA.test:14000/order-plz/../my-account/1", "{}", &r));
		assert_int_equal(r.op, POL_ACCOUNT_UPDATE);
		cls_result_free(&r);
		assert_ok(run_a(&a, URL_AUTH, "{}", &r));
		assert_int_equal(r.op, POL_CHALLENGE);
		cls_result_free(&r);
		assert_sverr(run_a(&a, URL_NON, "", &r), SV_EDENIED);
		assert_sverr(run_a(&a, "https://other.test:14000/x", "", &r), SV_EDENIED);
	}
	cls_urls_free(u);
	cls_urls_free(NULL);
	/* A directory URL that does not parse is kept as such and refuses every request. */
	bad.directory_url = "https://ca.test:notaport/dir";
	assert_ok(cls_urls_parse(&bad, &u));
	bad.urls = u;
	assert_sverr(cls_classify(&bad, URL_AUTH, NULL, 0, &r), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "directory URL is unusable"));
	cls_urls_free(u);
	bad.directory_url = NULL;
	assert_sverr(cls_urls_parse(&bad, &u), SV_EINVAL);
	assert_null(u);
}

static void
test_bad_arguments(void **state)
{
	struct cls_result r;
	struct cls_account a = acct;

	assert_sverr(cls_classify(NULL, URL_AUTH, NULL, 0, &r), SV_EINVAL);
	assert_sverr(cls_classify(&acct, NULL, NULL, 0, &r), SV_EINVAL);
	assert_sverr(cls_classify(&acct, URL_AUTH, NULL, 0, NULL), SV_EINVAL);
	assert_sverr(cls_classify(&acct, URL_AUTH, NULL, 1, &r), SV_EINVAL);
	a.directory_url = NULL;
	assert_sverr(cls_classify(&a, URL_AUTH, NULL, 0, &r), SV_EINVAL);
	assert_ok(cls_classify(&acct, URL_AUTH, NULL, 0, &r));
	assert_int_equal(r.op, POL_FETCH);
	cls_result_free(&r);
	cls_result_free(&r);
	cls_result_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_on_host),
		cmocka_unit_test(test_url_refused),
		cmocka_unit_test(test_nonce_and_admin),
		cmocka_unit_test(test_new_order),
		cmocka_unit_test(test_new_order_refused),
		cmocka_unit_test(test_finalize),
		cmocka_unit_test(test_finalize_refused),
		cmocka_unit_test(test_revoke),
		cmocka_unit_test(test_revoke_refused),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_payload_refused),
		cmocka_unit_test(test_known_urls_missing),
		cmocka_unit_test(test_urls_parsed_once),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests_name("classify", tests, setup, teardown);
}
