/*
 * vault/certs: imported certificates in the state database and the chain
 * checks.  A new database migrates to the schema with the certs table;
 * sequences start at 1 and grow per name, the newest is the one returned,
 * and the list shows the newest of each name.  A chain is PEM certificates
 * only, leaf first, each issued by the next, within its caps; anything else
 * is refused with a detail saying which certificate and what.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs.h"
#include "state.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

static char dir[PATH_MAX];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/svcerts.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	testtok_rmrf(dir);
	return 0;
}

/* A certificate for cn with key, signed by issuer_key as issuer (itself if NULL). */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(
	    X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

/* PEM of the certificates given, in that order (malloc'd). */
static char *
pem_of(X509 **certs, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;
	size_t i;

	for (i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(b, certs[i]), 1);
	len = BIO_get_mem_data(b, &data);
	assert_non_null(out = strndup(data, (size_t)len));
	BIO_free(b);
	return out;
}

static void
test_chain_checks(void **state)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *leaf_key = EVP_EC_gen("P-256");
	X509 *ca = make_cert("test CA", ca_key, NULL, NULL);
	X509 *leaf = make_cert("www.example.com", leaf_key, ca, ca_key);
	X509 *good[] = { leaf, ca }, *wrong[] = { ca, leaf }, *many[CERTS_CHAIN_CERTS + 1];
	STACK_OF(X509) *sk = NULL;
	char *pem, *again, *big;
	size_t i;

	pem = pem_of(good, 2);
	assert_ok(certs_parse_chain(pem, strlen(pem), &sk));
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), leaf), 0);
	/* Written back: the same PEM. */
	assert_ok(certs_chain_pem(sk, &again));
	assert_string_equal(again, pem);
	free(again);
	sk_X509_pop_free(sk, X509_free);
	free(pem);
	/* The leaf alone is a chain too. */
	pem = pem_of(good, 1);
	assert_ok(certs_parse_chain(pem, strlen(pem), &sk));
	sk_X509_pop_free(sk, X509_free);
	free(pem);
	/* Issuer first. */
	pem = pem_of(wrong, 2);
	assert_sverr(certs_parse_chain(pem, strlen(pem), &sk), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "certificate 2 did not issue certificate 1");
	assert_null(sk);
	free(pem);
	/* Garbage, an empty file, a NUL byte. */
	assert_sverr(certs_parse_chain("hello\n", 6, &sk), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "no PEM certificate");
	assert_sverr(certs_parse_chain("", 0, &sk), SV_EINVAL);
	assert_sverr(certs_parse_chain("a\0b", 3, &sk), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "NUL");
	/* A private key beside the certificate is refused, not skipped. */
	{
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long len;

		PEM_write_bio_X509(b, leaf);
		PEM_write_bio_PrivateKey(b, leaf_key, NULL, NULL, 0, NULL, NULL);
		len = BIO_get_mem_data(b, &data);
		assert_sverr(certs_parse_chain(data, (size_t)len, &sk), SV_EINVAL);
		assert_msg_has(SV_EINVAL, "PEM block 2 is \"PRIVATE KEY\"");
		BIO_free(b);
	}
	/* A block that is not DER of a certificate. */
	pem = strdup("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	assert_sverr(certs_parse_chain(pem, strlen(pem), &sk), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "certificate 1 is not a valid X.509 certificate");
	free(pem);
	/* Caps: certificates, bytes. */
	for (i = 0; i < CERTS_CHAIN_CERTS + 1; i++)
		many[i] = ca; /* self-issued: each issues the one before */
	pem = pem_of(many, CERTS_CHAIN_CERTS);
	assert_ok(certs_parse_chain(pem, strlen(pem), &sk));
	sk_X509_pop_free(sk, X509_free);
	free(pem);
	pem = pem_of(many, CERTS_CHAIN_CERTS + 1);
	assert_sverr(certs_parse_chain(pem, strlen(pem), &sk), SV_ETOOBIG);
	free(pem);
	assert_non_null(big = calloc(1, CERTS_CHAIN_MAX + 2));
	memset(big, '\n', CERTS_CHAIN_MAX + 1);
	assert_sverr(certs_parse_chain(big, CERTS_CHAIN_MAX + 1, &sk), SV_ETOOBIG);
	free(big);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(ca_key);
}

static void
test_storage(void **state)
{
	char path[PATH_MAX + 16];
	struct state *st;
	struct cert_rec c;
	int64_t seq;
	json_t *list;

	snprintf(path, sizeof(path), "%s/state.db", dir);
	assert_ok(state_open(path, 1, &st));
	assert_true(state_schema_version(st) >= 6);
	assert_sverr(certs_newest(st, "web", &c), SV_ENOTFOUND);
	assert_msg_has(SV_ENOTFOUND, "no certificate imported for \"web\"");
	assert_ok(certs_add(st, "web", 1, "PEM1", 1000, &seq));
	assert_int_equal(seq, 1);
	assert_ok(certs_add(st, "web", 2, "PEM2", 2000, &seq));
	assert_int_equal(seq, 2);
	assert_ok(certs_add(st, "api", 1, "PEMA", 3000, &seq));
	assert_int_equal(seq, 1); /* per name */
	assert_ok(certs_newest(st, "web", &c));
	assert_int_equal(c.sequence, 2);
	assert_int_equal(c.key_version, 2);
	assert_int_equal(c.not_after, 2000);
	assert_string_equal(c.chain, "PEM2");
	assert_true(c.imported > 0);
	cert_rec_free(&c);
	assert_ok(certs_list(st, &list));
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")), "api");
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(list, 1), "sequence")), 2);
	json_decref(list);
	state_close(st);
	/* Reopened: kept, and the sequence goes on. */
	assert_ok(state_open(path, 0, &st));
	assert_ok(certs_add(st, "web", 2, "PEM3", 4000, &seq));
	assert_int_equal(seq, 3);
	state_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_checks),
		cmocka_unit_test_setup_teardown(test_storage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
