/*
 * client/extcsr.c: a CSR made elsewhere, for shadow issue --csr.  CSRs are
 * made here with OpenSSL (P-256 keys): PEM and DER read alike and the DER
 * kept byte for byte; names from the subjectAltName in order, the CN added
 * when it is not among them, the CN alone without one, repeats dropped;
 * refused with the file's name: a bad signature, garbage, trailing bytes,
 * another PEM block, an IP address, a name that is not a DNS name, no name,
 * too many names, too many bytes.  Then the names to order: the CSR's, or
 * the same set given in another order and case, and refusals naming both
 * sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "extcsr.h"
#include "sv_err.h"

static EVP_PKEY *key1, *key2;

/* A CSR signed by k: subject CN cn (NULL: none), subjectAltName san (NULL: none). */
static X509_REQ *
make_req(EVP_PKEY *k, const char *cn, const char *san)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *e;

	assert_non_null(req);
	if (cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
				     MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
		    1);
	if (san != NULL) {
		e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
		assert_non_null(e);
		sk_X509_EXTENSION_push(exts, e);
		assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
	return req;
}

/* req as DER (*len bytes, caller frees with free()). */
static uint8_t *
der(X509_REQ *req, size_t *len)
{
	unsigned char *p = NULL;
	uint8_t *d;
	int n = i2d_X509_REQ(req, &p);

	assert_true(n > 0);
	d = malloc((size_t)n);
	assert_non_null(d);
	memcpy(d, p, (size_t)n);
	OPENSSL_free(p);
	*len = (size_t)n;
	return d;
}

/* req as PEM, NUL-terminated (caller frees with free()). */
static char *
pem(X509_REQ *req)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	assert_non_null(s);
	BIO_free(b);
	return s;
}

/* Parse text (PEM) as "f.csr"; 0 or the error. */
static int
parse_pem(const char *cn, const char *san, struct extcsr *c)
{
	X509_REQ *req = make_req(key1, cn, san);
	char *p = pem(req);
	int r = extcsr_parse((const uint8_t *)p, strlen(p), "f.csr", c);

	free(p);
	X509_REQ_free(req);
	return r;
}

static void
assert_err(int r, int code, const char *text)
{
	assert_int_equal(r, code);
	if (strstr(sv_errmsg(r), text) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", sv_errmsg(r), text);
}

static void
test_pem_and_der(void **state)
{
	X509_REQ *req = make_req(key1, "a.test", "DNS:a.test, DNS:www.a.test");
	struct extcsr c;
	char *p = pem(req);
	size_t dlen;
	uint8_t *d = der(req, &dlen);

	(void)state;
	assert_int_equal(extcsr_parse((const uint8_t *)p, strlen(p), "f.csr", &c), 0);
	assert_int_equal(c.nnames, 2);
	assert_string_equal(c.names[0], "a.test");
	assert_string_equal(c.names[1], "www.a.test");
	assert_int_equal(c.dlen, dlen);
	assert_memory_equal(c.der, d, dlen);
	assert_true(extcsr_key_is(&c, key1));
	assert_false(extcsr_key_is(&c, key2));
	extcsr_free(&c);
	/* The same as DER: the bytes sent to the CA are the ones read. */
	assert_int_equal(extcsr_parse(d, dlen, "f.der", &c), 0);
	assert_int_equal(c.nnames, 2);
	assert_memory_equal(c.der, d, dlen);
	extcsr_free(&c);
	/* Text before the PEM block (openssl req -text) is fine. */
	{
		size_t n = strlen(p) + 64;
		char *q = malloc(n);

		assert_non_null(q);
		snprintf(q, n, "Certificate Request:\n    Data:\n%s", p);
		assert_int_equal(extcsr_parse((const uint8_t *)q, strlen(q), "f.csr", &c), 0);
		extcsr_free(&c);
		free(q);
	}
	free(p);
	free(d);
	X509_REQ_free(req);
}

static void
test_names(void **state)
{
	struct extcsr c;

	(void)state;
	/* No subjectAltName: the CN. */
	assert_int_equal(parse_pem("only.test", NULL, &c), 0);
	assert_int_equal(c.nnames, 1);
	assert_string_equal(c.names[0], "only.test");
	extcsr_free(&c);
	/* A CN that is not in the subjectAltName is a name too (a CA reads it). */
	assert_int_equal(parse_pem("cn.test", "DNS:b.test", &c), 0);
	assert_int_equal(c.nnames, 2);
	assert_string_equal(c.names[0], "b.test");
	assert_string_equal(c.names[1], "cn.test");
	extcsr_free(&c);
	/* Repeats (in any case) count once; the CSR's spelling is kept, normalised beside. */
	assert_int_equal(parse_pem("B.Test", "DNS:B.Test, DNS:b.test, DNS:*.b.test", &c), 0);
	assert_int_equal(c.nnames, 2);
	assert_string_equal(c.names[0], "B.Test");
	assert_string_equal(c.norm[0], "b.test");
	assert_string_equal(c.names[1], "*.b.test");
	extcsr_free(&c);
}

static void
test_refused(void **state)
{
	X509_REQ *req = make_req(key1, "a.test", "DNS:a.test");
	struct extcsr c;
	char big[200 * 12 + 16], *p;
	size_t dlen, i, n = 0;
	uint8_t *d = der(req, &dlen), *d2;

	(void)state;
	/* A flipped bit in the signature (the DER's last byte). */
	d[dlen - 1] ^= 1;
	assert_err(extcsr_parse(d, dlen, "bad.csr", &c), SV_EINVAL,
	    "bad.csr: the CSR's signature does not verify with its own key");
	extcsr_free(&c);
	d[dlen - 1] ^= 1;
	/* Bytes after the DER. */
	d2 = malloc(dlen + 1);
	assert_non_null(d2);
	memcpy(d2, d, dlen);
	d2[dlen] = 0;
	assert_err(extcsr_parse(d2, dlen + 1, "tail.der", &c), SV_EINVAL, "tail.der: ");
	extcsr_free(&c);
	free(d2);
	/* Garbage, and nothing. */
	assert_err(extcsr_parse((const uint8_t *)"hello", 5, "junk", &c), SV_EINVAL, "junk: ");
	extcsr_free(&c);
	assert_err(extcsr_parse((const uint8_t *)"", 0, "empty", &c), SV_EINVAL, "empty: ");
	extcsr_free(&c);
	/* Another PEM block. */
	p = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	assert_err(extcsr_parse((const uint8_t *)p, strlen(p), "c.pem", &c), SV_EINVAL,
	    "c.pem: a PEM CERTIFICATE block");
	extcsr_free(&c);
	/* Not DNS names; no name; too many. */
	assert_err(parse_pem("a.test", "DNS:a.test, IP:127.0.0.1", &c), SV_EINVAL,
	    "f.csr: the CSR has a subjectAltName that is not a DNS name");
	extcsr_free(&c);
	assert_err(parse_pem(NULL, "DNS:bad_name!.test", &c), SV_EINVAL, "f.csr: the CSR");
	extcsr_free(&c);
	assert_err(parse_pem("My Certificate", NULL, &c), SV_EINVAL, "f.csr: ");
	extcsr_free(&c);
	assert_err(parse_pem(NULL, NULL, &c), SV_EINVAL, "f.csr: the CSR names no DNS name");
	extcsr_free(&c);
	for (i = 0; i <= EXTCSR_NAMES_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%sDNS:n%zu.test", i ? "," : "", i);
	assert_err(parse_pem(NULL, big, &c), SV_EINVAL, "more than 100 names");
	extcsr_free(&c);
	/* Over the cap, before anything is parsed. */
	d2 = calloc(1, EXTCSR_FILE_MAX + 1);
	assert_non_null(d2);
	assert_err(extcsr_parse(d2, EXTCSR_FILE_MAX + 1, "huge", &c), SV_ETOOBIG, "huge: ");
	extcsr_free(&c);
	free(d2);
	free(d);
	X509_REQ_free(req);
}

static void
test_order_names(void **state)
{
	const char *out[EXTCSR_NAMES_MAX];
	const char *same[] = { "WWW.A.test", "a.test", "www.a.test" };
	const char *fewer[] = { "a.test" };
	const char *more[] = { "a.test", "www.a.test", "b.test" };
	const char *bad[] = { "a.test", "no_way" };
	struct extcsr c;
	size_t n;

	(void)state;
	assert_int_equal(parse_pem("a.test", "DNS:a.test, DNS:www.a.test", &c), 0);
	/* None given: the CSR's, in its order. */
	assert_int_equal(extcsr_names(&c, NULL, 0, out, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "a.test");
	assert_string_equal(out[1], "www.a.test");
	/* The same set, in another order and case, one twice: the given order, the CSR's spelling.
	 */
	assert_int_equal(extcsr_names(&c, same, 3, out, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "www.a.test");
	assert_string_equal(out[1], "a.test");
	/* Fewer, more, or not a DNS name. */
	assert_err(extcsr_names(&c, fewer, 1, out, &n), SV_EINVAL,
	    "the names given (a.test) are not those of the CSR f.csr (a.test www.a.test)");
	assert_int_equal(n, 0);
	assert_err(extcsr_names(&c, more, 3, out, &n), SV_EINVAL,
	    "the names given (a.test www.a.test b.test) are not those of the CSR f.csr");
	assert_err(extcsr_names(&c, bad, 2, out, &n), SV_EINVAL, "no_way");
	extcsr_free(&c);
	/* A zeroed struct frees. */
	memset(&c, 0, sizeof(c));
	extcsr_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pem_and_der),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_order_names),
	};
	int r;

	key1 = EVP_EC_gen("P-256");
	key2 = EVP_EC_gen("P-256");
	if (key1 == NULL || key2 == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	EVP_PKEY_free(key1);
	EVP_PKEY_free(key2);
	return r;
}
