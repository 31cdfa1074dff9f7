/*
 * CSRs, certificates and ACME payloads built for the classifier's tests
 * (test_classify.c), including the malformed shapes a hostile shadow could
 * send.  Every step asserts: a helper that fails ends the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "b64.h"
#include "cls_der.h"
#include "svtest.h"

/* Serialise j (stolen) compactly; caller frees. */
char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	assert_non_null(s);
	json_decref(j);
	return s;
}

char *
b64(const uint8_t *d, size_t n)
{
	char *s;

	assert_ok(b64u_encode(d, n, &s));
	return s;
}

/* {"key": base64url(d[0..n))} */
char *
b64_payload(const char *key, const uint8_t *d, size_t n)
{
	char *s = b64(d, n), *p = dump(json_pack("{s:s}", key, s));

	free(s);
	return p;
}

STACK_OF(X509_EXTENSION) * san_exts(const char *san)
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
uint8_t *
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

uint8_t *
csr_der(EVP_PKEY *key, const char *cn, const char *san, size_t *len)
{
	return csr_der_x(key, cn, san, CSR_NORMAL, NULL, len);
}

/* {"csr": ...} for a CSR for key, no subject, with the extensions exts (freed). */
char *
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
char *
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
X509_EXTENSION *
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
char *
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
char *
csr_payload(EVP_PKEY *key, const char *cn, const char *san)
{
	size_t n;
	uint8_t *der = csr_der(key, cn, san, &n);
	char *p = b64_payload("csr", der, n);

	OPENSSL_free(der);
	return p;
}

/* DER of a self-signed certificate for key with nsan copies of the SAN san. */
uint8_t *
cert_der_n(EVP_PKEY *key, const char *cn, const char *san, int nsan, size_t *len)
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
	assert_int_equal(X509_set_pubkey(x, key), 1);
	set_cn(X509_get_subject_name(x), cn);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	if (san != NULL) {
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san));
		while (nsan-- > 0)
			assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_true((n = i2d_X509(x, &der)) > 0);
	X509_free(x);
	*len = (size_t)n;
	return der;
}

uint8_t *
cert_der(EVP_PKEY *key, const char *cn, const char *san, size_t *len)
{
	return cert_der_n(key, cn, san, 1, len);
}

char *
revoke_payload(const uint8_t *der, size_t n, json_t *reason)
{
	char *s = b64(der, n);
	json_t *o = json_pack("{s:s}", "certificate", s);

	free(s);
	if (reason != NULL)
		json_object_set_new(o, "reason", reason);
	return dump(o);
}
