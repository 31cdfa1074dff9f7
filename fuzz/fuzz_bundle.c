/*
 * libFuzzer target: the sealed bundle opener (common/bundle.c) past its
 * cryptography.  Random bytes would never open a seal, so the input is taken
 * as the signed part of a bundle: it is signed with a fixed Ed25519 key and
 * sealed to a fixed X25519 key here, and bundle_open() must then either
 * refuse it or return a header and key within the format's rules.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t box_pk[crypto_box_PUBLICKEYBYTES], box_sk[crypto_box_SECRETKEYBYTES];

static void
keys(void)
{
	static int done;
	uint8_t seed[32];

	if (done)
		return;
	if (sodium_init() < 0)
		abort();
	memset(seed, 1, sizeof(seed));
	crypto_sign_seed_keypair(sign_pk, sign_sk, seed);
	memset(seed, 2, sizeof(seed));
	crypto_box_seed_keypair(box_pk, box_sk, seed);
	done = 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen = size + crypto_sign_BYTES, klen = 0;
	uint8_t *p, *sealed, *key = NULL;
	struct bundle_meta m;

	keys();
	if (size > BUNDLE_SEALED_MAX)
		return 0;
	p = malloc(plen);
	sealed = malloc(plen + crypto_box_SEALBYTES);
	if (p == NULL || sealed == NULL)
		abort();
	if (size > 0)
		memcpy(p, data, size);
	crypto_sign_detached(p + size, NULL, p, size, sign_sk);
	crypto_box_seal(sealed, p, plen, box_pk);
	memset(&m, 0, sizeof(m));
	if (bundle_open(sealed, plen + crypto_box_SEALBYTES, box_pk, box_sk, sign_pk, "sa", "web",
		1000, &m, &key, &klen) == 0) {
		if (m.sequence < 1 || klen < 1 || klen > BUNDLE_KEY_MAX || m.chain == NULL ||
		    strcmp(m.recipient, "sa") != 0 || strcmp(m.name, "web") != 0 ||
		    m.expires_at <= 1000 || m.issued_at > 1000 + BUNDLE_SKEW)
			abort();
		sodium_free(key);
		bundle_meta_free(&m);
	}
	free(p);
	free(sealed);
	return 0;
}
