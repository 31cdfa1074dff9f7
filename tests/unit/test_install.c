/*
 * client/install.c: a version is staged, then finished only if the chain's
 * first certificate holds the key asked for.  For shadow issue --csr the
 * key is only the CSR's public key and no privkey.pem is written; a CA
 * answering with a certificate for another key is refused and nothing goes
 * live (the stage is abandoned, the lineage left as it was).  Pebble always
 * issues for the CSR's key, so this is where that refusal is tested.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "shadow.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

/* install.c's deploy hook runner calls this; the tests here run no hook. */
int
shadow_run_hook(const char *cmd, const char *const *env)
{
	(void)cmd;
	(void)env;
	fail_msg("no hook expected");
	return SV_EINTERNAL;
}

static char dir[64];
static EVP_PKEY *key1, *key2, *cakey;

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/svinstall.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testtok_rmrf(dir);
	return 0;
}

/* PEM of a certificate for key, signed by cakey (a two-certificate chain: leaf, CA). */
static char *
chain_for(EVP_PKEY *key)
{
	X509 *ca = X509_new(), *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *d, *out;
	long n;

	assert_non_null(ca);
	assert_non_null(x);
	X509_set_version(ca, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(ca), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(ca), "CN", MBSTRING_ASC,
	    (const unsigned char *)"test CA", -1, -1, 0);
	X509_set_issuer_name(ca, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(ca), -60);
	X509_gmtime_adj(X509_getm_notAfter(ca), 86400);
	X509_set_pubkey(ca, cakey);
	assert_true(X509_sign(ca, cakey, EVP_sha256()) > 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 2);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"www.example.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, cakey, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	assert_int_equal(PEM_write_bio_X509(b, ca), 1);
	n = BIO_get_mem_data(b, &d);
	out = strndup(d, (size_t)n);
	assert_non_null(out);
	BIO_free(b);
	X509_free(x);
	X509_free(ca);
	return out;
}

/* key's public half only, as a CSR made elsewhere gives it. */
static EVP_PKEY *
public_only(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub;
	int n = i2d_PUBKEY(key, &der);

	assert_true(n > 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, n);
	assert_non_null(pub);
	OPENSSL_free(der);
	return pub;
}

/* Does dir/rel exist (a symbolic link counts as itself)? */
static int
exists(const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

static void
test_csr_key(void **state)
{
	struct issue_opts o = { .names = { "www.example.test" },
		.nnames = 1,
		.out_dir = dir,
		.csr = "/nonexistent/www.csr",
		.challenge = "http-01",
		.account = "le" };
	struct install_stage st;
	EVP_PKEY *pub = public_only(key1);
	char *good = chain_for(key1), *other = chain_for(key2), live[PATH_MAX];

	(void)state;
	/* The CA answers with a certificate for another key: refused, nothing live. */
	assert_ok(install_stage(&o, NULL, &st));
	assert_sverr(install_finish(&st, &o, other, pub, live, sizeof(live)), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "does not start with a certificate for the key asked for");
	install_abandon(&st);
	assert_false(exists("live/www.example.test"));
	assert_false(exists("archive/www.example.test"));
	assert_false(exists("renewal/www.example.test.json"));

	/* The right key: live, with no privkey.pem, and the renewal record names the CSR. */
	assert_ok(install_stage(&o, NULL, &st));
	assert_ok(install_finish(&st, &o, good, pub, live, sizeof(live)));
	install_abandon(&st);
	assert_true(exists("live/www.example.test/cert.pem"));
	assert_true(exists("live/www.example.test/fullchain.pem"));
	assert_false(exists("live/www.example.test/privkey.pem"));
	assert_true(exists("renewal/www.example.test.json"));

	/* Again with another key's certificate: refused, version 1 stays live. */
	assert_ok(install_stage(&o, NULL, &st));
	assert_sverr(install_finish(&st, &o, other, pub, live, sizeof(live)), SV_EPROTO);
	install_abandon(&st);
	assert_true(exists("archive/www.example.test/0001/cert.pem"));
	assert_false(exists("archive/www.example.test/0002"));
	{
		char link[PATH_MAX], path[PATH_MAX];
		ssize_t n;

		snprintf(path, sizeof(path), "%s/live/www.example.test", dir);
		n = readlink(path, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		assert_string_equal(link, "../archive/www.example.test/0001");
	}
	EVP_PKEY_free(pub);
	free(good);
	free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_csr_key, setup, teardown),
	};
	int r;

	key1 = EVP_EC_gen("P-256");
	key2 = EVP_EC_gen("P-256");
	cakey = EVP_EC_gen("P-256");
	if (key1 == NULL || key2 == NULL || cakey == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	EVP_PKEY_free(key1);
	EVP_PKEY_free(key2);
	EVP_PKEY_free(cakey);
	return r;
}
