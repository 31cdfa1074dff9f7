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

#include "b64.h"
#include "classify.h"
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

/* Serialise j (stolen) compactly; caller frees. */
static char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	assert_non_null(s);
	json_decref(j);
	return s;
}

static char *
b64(const uint8_t *d, size_t n)
{
	char *s;

	assert_ok(b64u_encode(d, n, &s));
	return s;
}

/* {"key": base64url(d[0..n))} */
static char *
b64_payload(const char *key, const uint8_t *d, size_t n)
{
	char *s = b64(d, n), *p = dump(json_pack("{s:s}", key, s));

	free(s);
	return p;
}

static STACK_OF(X509_EXTENSION) * san_exts(const char *san)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);

	assert_non_null(ext);
	assert_true(sk_X509_EXTENSION_push(exts, ext) > 0);
	return exts;
}

static void
set_cn(X509_NAME *n, const char *cn)
{
	if (cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_txt(
				     n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
		    1);
}

/* How csr_der_x() carries the SAN extension. */
enum csr_mode {
	CSR_NORMAL,	/* one extensionRequest attribute */
	CSR_MS,		/* a Microsoft extension request instead */
	CSR_TWO_ATTRS,	/* a second extensionRequest attribute with extra */
	CSR_TWO_VALUES, /* one extensionRequest attribute with two values */
};

static uint8_t *
req_der(X509_REQ *req, EVP_PKEY *key, size_t *len)
{
	uint8_t *der = NULL;
	int n;

	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	assert_true((n = i2d_X509_REQ(req, &der)) > 0);
	*len = (size_t)n;
	return der;
}

/* DER of the SEQUENCE OF Extension holding the SAN san. */
static int
exts_der(const char *san, uint8_t **der)
{
	STACK_OF(X509_EXTENSION) *exts = san_exts(san);
	int n;

	*der = NULL;
	n = ASN1_item_i2d((ASN1_VALUE *)exts, der, ASN1_ITEM_rptr(X509_EXTENSIONS));
	assert_true(n > 0);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return n;
}

/*
 * OpenSSL 3 refuses to add a second attribute of a type, so add it as
 * smimeCapabilities (an OID of the same length), then rename it in the DER.
 */
static uint8_t *
csr_two_attrs(X509_REQ *req, EVP_PKEY *key, const char *extra, size_t *len)
{
	static const uint8_t smime[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0f };
	STACK_OF(X509_EXTENSION) *exts = san_exts(extra);
	const unsigned char *p;
	uint8_t *der, *hit;
	X509_REQ *again;

	assert_int_equal(X509_REQ_add_extensions_nid(req, exts, NID_SMIMECapabilities), 1);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	der = req_der(req, key, len);
	assert_non_null(hit = memmem(der, *len, smime, sizeof(smime)));
	hit[sizeof(smime) - 1] = 0x0e; /* 1.2.840.113549.1.9.14: extensionRequest */
	p = der;
	assert_non_null(again = d2i_X509_REQ(NULL, &p, (long)*len));
	OPENSSL_free(der);
	der = req_der(again, key, len); /* re-signed over both attributes */
	X509_REQ_free(again);
	return der;
}

static void
csr_two_values(X509_REQ *req, const char *san, const char *extra)
{
	X509_ATTRIBUTE *attr;
	uint8_t *d1, *d2;
	int n1 = exts_der(san, &d1), n2 = exts_der(extra, &d2);

	attr = X509_ATTRIBUTE_create_by_NID(NULL, NID_ext_req, V_ASN1_SEQUENCE, d1, n1);
	assert_non_null(attr);
	assert_int_equal(X509_ATTRIBUTE_set1_data(attr, V_ASN1_SEQUENCE, d2, n2), 1);
	assert_int_equal(X509_ATTRIBUTE_count(attr), 2);
	assert_int_equal(X509_REQ_add1_attr(req, attr), 1);
	X509_ATTRIBUTE_free(attr);
	OPENSSL_free(d1);
	OPENSSL_free(d2);
}

/*
 * DER of a CSR for key with subject CN cn (may be NULL) and the SAN
 * extension san ("DNS:a.test,IP:10.0.0.1"; NULL for none), carried as mode
 * says (extra: the second SAN for the CSR_TWO_* modes).
 */
static uint8_t *
csr_der_x(EVP_PKEY *key, const char *cn, const char *san, enum csr_mode mode, const char *extra,
    size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) * exts;
	uint8_t *der;

	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	set_cn(X509_REQ_get_subject_name(req), cn);
	if (mode == CSR_TWO_VALUES) {
		csr_two_values(req, san, extra);
	} else if (san != NULL) {
		exts = san_exts(san);
		assert_int_equal(X509_REQ_add_extensions_nid(
				     req, exts, mode == CSR_MS ? NID_ms_ext_req : NID_ext_req),
		    1);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	if (mode == CSR_TWO_ATTRS)
		der = csr_two_attrs(req, key, extra, len);
	else
		der = req_der(req, key, len);
	X509_REQ_free(req);
	return der;
}

static uint8_t *
csr_der(EVP_PKEY *key, const char *cn, const char *san, size_t *len)
{
	return csr_der_x(key, cn, san, CSR_NORMAL, NULL, len);
}

/* {"csr": ...} for a CSR for key, no subject, with the extensions exts (freed). */
static char *
csr_exts_payload(EVP_PKEY *key, STACK_OF(X509_EXTENSION) * exts)
{
	X509_REQ *req = X509_REQ_new();
	uint8_t *der;
	size_t n;
	char *p;

	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
	der = req_der(req, key, &n);
	p = b64_payload("csr", der, n);
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return p;
}

/* {"csr": ...} for a CSR whose extensionRequest holds one value of type, bytes d[0..n). */
static char *
csr_attr_payload(EVP_PKEY *key, int type, const uint8_t *d, size_t n)
{
	X509_REQ *req = X509_REQ_new();
	uint8_t *der;
	size_t len;
	char *p;

	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_int_equal(X509_REQ_add1_attr_by_NID(req, NID_ext_req, type, d, (int)n), 1);
	der = req_der(req, key, &len);
	p = b64_payload("csr", der, len);
	OPENSSL_free(der);
	X509_REQ_free(req);
	return p;
}

/* An extension nid whose value is d[0..n) as is (possibly not valid for nid). */
static X509_EXTENSION *
raw_ext(int nid, const uint8_t *d, size_t n)
{
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e;

	assert_int_equal(ASN1_OCTET_STRING_set(os, d, (int)n), 1);
	assert_non_null(e = X509_EXTENSION_create_by_NID(NULL, nid, 0, os));
	ASN1_OCTET_STRING_free(os);
	return e;
}

/* {"csr": ...} for a CSR whose one dNSName is name[0..len) (may hold a NUL). */
static char *
csr_raw_san_payload(EVP_PKEY *key, const char *name, size_t len)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();

	assert_int_equal(ASN1_STRING_set(ia5, name, (int)len), 1);
	GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
	assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
	assert_true(
	    sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) > 0);
	GENERAL_NAMES_free(gens);
	return csr_exts_payload(key, exts);
}

/* {"csr": ...} for a CSR as above. */
static char *
csr_payload(EVP_PKEY *key, const char *cn, const char *san)
{
	size_t n;
	uint8_t *der = csr_der(key, cn, san, &n);
	char *p = b64_payload("csr", der, n);

	OPENSSL_free(der);
	return p;
}

/* DER of a self-signed certificate for cert_key with nsan copies of the SAN san. */
static uint8_t *
cert_der_n(const char *cn, const char *san, int nsan, size_t *len)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	uint8_t *der = NULL;
	int n;

	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, cert_key), 1);
	set_cn(X509_get_subject_name(x), cn);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	if (san != NULL) {
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san));
		while (nsan-- > 0)
			assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, cert_key, EVP_sha256()) > 0);
	assert_true((n = i2d_X509(x, &der)) > 0);
	X509_free(x);
	*len = (size_t)n;
	return der;
}

static uint8_t *
cert_der(const char *cn, const char *san, size_t *len)
{
	return cert_der_n(cn, san, 1, len);
}

static char *
revoke_payload(const uint8_t *der, size_t n, json_t *reason)
{
	char *s = b64(der, n);
	json_t *o = json_pack("{s:s}", "certificate", s);

	free(s);
	if (reason != NULL)
		json_object_set_new(o, "reason", reason);
	return dump(o);
}

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

	der = cert_der("r.test", "DNS:R.test,DNS:*.r.test", &n);
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
	der = cert_der("Example Inc server", "DNS:x.test", &n);
	p = revoke_payload(der, n, NULL);
	expect_op(URL_REV, p, POL_REVOKE, "x.test");
	free(p);
	OPENSSL_free(der);
	der = cert_der("cn-only.test", NULL, &n);
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

	der = cert_der("r.test", "DNS:r.test,IP:192.0.2.1", &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EDENIED, "revokeCert: the certificate", "not a DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der("r.test", "URI:https://r.test/", &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EDENIED, "not a DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der_n("r.test", "DNS:r.test", 2, &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "certificate has more than one subjectAltName");
	free(p);
	OPENSSL_free(der);
	der = cert_der("no dns here", NULL, &n);
	p = revoke_payload(der, n, NULL);
	expect_err(URL_REV, p, SV_EINVAL, "names no DNS name");
	free(p);
	OPENSSL_free(der);
	der = cert_der("r.test", "DNS:r.test", &n);
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
