/*
 * vault/audit_keys: the audit keys file.  Keys are appended oldest first,
 * once each (a rotation retried after a crash adds nothing), the file stays
 * readable by OpenSSL, and a file holding anything but Ed25519 public keys
 * in PEM is refused with its name and the number of the bad key, before
 * anything is written.
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

#include <sodium.h>

#include "audit_keys.h"
#include "fileio.h"
#include "sv_err.h"
#include "svtest.h"

static char dir[64], path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/svakeys.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit-key.pem", dir);
	return 0;
}

static int
teardown(void **state)
{
	char tmp[160];

	(void)state;
	snprintf(tmp, sizeof(tmp), "%s/audit-key.pem.tmp", dir);
	unlink(tmp);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void
put(const char *text)
{
	assert_int_equal(sv_write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void
test_add_and_load(void **state)
{
	uint8_t pubs[AUDIT_PUBS_MAX][32], k[3][32], sk[64];
	size_t n, i;

	(void)state;
	for (i = 0; i < 3; i++)
		crypto_sign_keypair(k[i], sk);
	assert_sverr(audit_pubs_load(path, pubs, &n), SV_ENOTFOUND);
	assert_ok(audit_pubs_add(path, k[0])); /* creates the file */
	assert_ok(audit_pubs_add(path, k[1]));
	assert_ok(audit_pubs_add(path, k[0])); /* there already: nothing added */
	assert_ok(audit_pubs_add(path, k[1]));
	assert_ok(audit_pubs_add(path, k[2]));
	assert_ok(audit_pubs_load(path, pubs, &n));
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++)
		assert_memory_equal(pubs[i], k[i], 32); /* oldest first */
}

static void
test_refused(void **state)
{
	uint8_t pubs[AUDIT_PUBS_MAX][32], k[32], sk[64];
	size_t n, i;

	(void)state;
	put("not a key\n");
	assert_sverr(audit_pubs_load(path, pubs, &n), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "audit-key.pem: no Ed25519 public key");
	/* A broken second block: named, and audit_pubs_add() leaves the file alone. */
	crypto_sign_keypair(k, sk);
	unlink(path);
	assert_ok(audit_pubs_add(path, k));
	{
		uint8_t *buf;
		size_t len;
		char *text;

		assert_ok(sv_read_file(path, AUDIT_PUBS_FILE_MAX, &buf, &len));
		text = malloc(2 * len + 1);
		memcpy(text, buf, len);
		memcpy(text + len, buf, len - 20); /* the second copy cut short */
		text[2 * len - 20] = '\0';
		put(text);
		free(text);
		free(buf);
	}
	assert_sverr(audit_pubs_load(path, pubs, &n), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "key 2 is not a public key in PEM");
	crypto_sign_keypair(k, sk);
	assert_sverr(audit_pubs_add(path, k), SV_EINVAL);
	/* A certificate where a key should be. */
	put("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n");
	assert_sverr(audit_pubs_load(path, pubs, &n), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "key 1 is not a public key in PEM");
	/* At most AUDIT_PUBS_MAX keys. */
	unlink(path);
	for (i = 0; i < AUDIT_PUBS_MAX; i++) {
		crypto_sign_keypair(k, sk);
		assert_ok(audit_pubs_add(path, k));
	}
	crypto_sign_keypair(k, sk);
	assert_sverr(audit_pubs_add(path, k), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "already holds 64 keys");
	assert_ok(audit_pubs_load(path, pubs, &n));
	assert_int_equal(n, AUDIT_PUBS_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
