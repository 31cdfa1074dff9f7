/*
 * vault/nbloom: the filter in front of the signed-nonce table.  Never a
 * false negative, over several generations; a false positive rate near the
 * design's; an empty filter says no; a filter made for one hash grows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/sha.h>

#include "nbloom.h"

/* The SHA-256 of "<tag>:<i>", as the key process hashes nonces. */
static void
hash_of(const char *tag, unsigned i, uint8_t h[32])
{
	char s[64];

	snprintf(s, sizeof(s), "%s:%u", tag, i);
	SHA256((const unsigned char *)s, strlen(s), h);
}

static void
test_no_false_negatives(void **state)
{
	enum { N = 200000 };
	struct nbloom *b;
	uint8_t h[32];
	unsigned i, fp = 0;
	size_t first;

	assert_int_equal(nbloom_new(65536, &b), 0);
	first = nbloom_bytes(b);
	for (i = 0; i < N; i++) {
		hash_of("signed", i, h);
		nbloom_add(b, h);
	}
	assert_int_equal(nbloom_count(b), N);
	/* 65536 + 131072 < N: a third generation was made. */
	assert_true(nbloom_bytes(b) > 6 * first);
	for (i = 0; i < N; i++) {
		hash_of("signed", i, h);
		assert_int_equal(nbloom_maybe(b, h), 1);
	}
	for (i = 0; i < N; i++) {
		hash_of("fresh", i, h);
		fp += (unsigned)nbloom_maybe(b, h);
	}
	/* About 0.07% per generation by design; 1% would mean it is broken. */
	assert_true(fp < N / 100);
	nbloom_free(b);
}

static void
test_small(void **state)
{
	struct nbloom *b;
	uint8_t h[32];
	unsigned i;

	assert_int_equal(nbloom_new(1, &b), 0);
	hash_of("x", 0, h);
	assert_int_equal(nbloom_maybe(b, h), 0);
	for (i = 0; i < 1000; i++) {
		hash_of("x", i, h);
		nbloom_add(b, h);
	}
	for (i = 0; i < 1000; i++) {
		hash_of("x", i, h);
		assert_int_equal(nbloom_maybe(b, h), 1);
	}
	nbloom_free(b);
	nbloom_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_false_negatives),
		cmocka_unit_test(test_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
