/*
 * common/bundle.c: a round trip with a libsodium Ed25519 signer, and every
 * refusal of bundle_open and bundle_seal.  Malformed plaintexts that
 * bundle_seal would never produce are built here by raw_seal(), correctly
 * signed by the vault key and sealed to the shadow, so each test reaches
 * exactly the check it is about; each asserts the code and the detail, so it
 * fails if that check is taken away.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>

#include "bundle.h"
#include "sv_err.h"
#include "svtest.h"

#define T_NOW	 1700000000
#define T_SHADOW "web-1"
#define T_NAME	 "example.org"
#define T_ID	 "0123456789abcdef0123456789abcdef"
#define T_CHAIN	 "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

/* The vault's bundle key, a stranger's signing key, the shadow's and another box key. */
static uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t other_sign_pk[crypto_sign_PUBLICKEYBYTES], other_sign_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t box_pk[crypto_box_PUBLICKEYBYTES], box_sk[crypto_box_SECRETKEYBYTES];
static uint8_t other_box_pk[crypto_box_PUBLICKEYBYTES], other_box_sk[crypto_box_SECRETKEYBYTES];
static const uint8_t t_key[] = { 0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65,
	0x70, 0x04, 0x22, 0x04, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
	19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static int
ed_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig)
{
	return crypto_sign_detached(sig, NULL, msg, len, ctx) == 0 ? 0 : SV_ECRYPTO;
}

static int
failing_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig)
{
	return sv_seterr(SV_EHSM, "test signer: token gone");
}

static void
meta_init(struct bundle_meta *m)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->id, T_ID, 33);
	snprintf(m->recipient, sizeof(m->recipient), "%s", T_SHADOW);
	snprintf(m->name, sizeof(m->name), "%s", T_NAME);
	m->sequence = 7;
	m->issued_at = T_NOW;
	m->expires_at = T_NOW + BUNDLE_TTL;
	m->chain = (char *)T_CHAIN;
}

/* Open with the expected keys and names at time now. */
static int
open_at(const uint8_t *s, size_t slen, int64_t now, struct bundle_meta *out, uint8_t **key,
    size_t *klen)
{
	return bundle_open(s, slen, box_pk, box_sk, sign_pk, T_SHADOW, T_NAME, now, out, key, klen);
}

/* Open expecting failure with code; outputs must stay empty. */
static void
refused(const uint8_t *s, size_t slen, int64_t now, int code, const char *detail)
{
	struct bundle_meta out;
	uint8_t *key = (uint8_t *)&out;
	size_t klen = 99;

	assert_sverr(open_at(s, slen, now, &out, &key, &klen), code);
	assert_msg_has(code, detail);
	assert_null(key);
	assert_int_equal(klen, 0);
	assert_null(out.chain);
}

static uint8_t *
good_seal(const struct bundle_meta *m, size_t *slen)
{
	uint8_t *s;

	assert_ok(bundle_seal(m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, slen));
	return s;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Any plaintext, signed by sk and sealed to the shadow: magic, hlen field,
 * hdr (hdrlen bytes), klen field, klen_real bytes of key, trailing zeros.
 */
static uint8_t *
raw_seal(const char *hdr, size_t hdrlen, uint32_t hlen, size_t klen_real, uint32_t klen,
    size_t trailing, const uint8_t *sk, size_t *slen)
{
	size_t plen = 4 + 4 + hdrlen + 4 + klen_real + trailing + 64, off = 0;
	uint8_t *p = calloc(1, plen), *s = malloc(plen + crypto_box_SEALBYTES);

	assert_non_null(p);
	assert_non_null(s);
	memcpy(p, BUNDLE_MAGIC, 4);
	put32(p + 4, hlen);
	memcpy(p + 8, hdr, hdrlen);
	off = 8 + hdrlen;
	put32(p + off, klen);
	off += 4;
	memset(p + off, 0x42, klen_real);
	off += klen_real + trailing;
	assert_int_equal(crypto_sign_detached(p + off, NULL, p, off, sk), 0);
	assert_int_equal(crypto_box_seal(s, p, plen, box_pk), 0);
	free(p);
	*slen = plen + crypto_box_SEALBYTES;
	return s;
}

/* A valid header as a jansson object, for the tests to spoil. */
static json_t *
hdr_obj(void)
{
	json_t *h = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "v", 1, "id", T_ID,
	    "recipient", T_SHADOW, "name", T_NAME, "sequence", (json_int_t)7, "issued_at",
	    (json_int_t)T_NOW, "expires_at", (json_int_t)(T_NOW + BUNDLE_TTL), "chain", T_CHAIN);

	assert_non_null(h);
	return h;
}

/* Seal header h (consumed) with a small key, properly framed. */
static uint8_t *
seal_hdr(json_t *h, size_t *slen)
{
	char *t = json_dumps(h, JSON_COMPACT);
	uint8_t *s;

	assert_non_null(t);
	json_decref(h);
	s = raw_seal(t, strlen(t), (uint32_t)strlen(t), 16, 16, 0, sign_sk, slen);
	free(t);
	return s;
}

/* Seal raw header text, properly framed. */
static uint8_t *
seal_text(const char *t, size_t *slen)
{
	return raw_seal(t, strlen(t), (uint32_t)strlen(t), 16, 16, 0, sign_sk, slen);
}

static void
test_round_trip(void **state)
{
	struct bundle_meta m, out;
	uint8_t *s, *key;
	size_t slen, klen;
	char id1[33], id2[33];

	meta_init(&m);
	s = good_seal(&m, &slen);
	assert_ok(open_at(s, slen, T_NOW, &out, &key, &klen));
	assert_string_equal(out.id, T_ID);
	assert_string_equal(out.recipient, T_SHADOW);
	assert_string_equal(out.name, T_NAME);
	assert_int_equal(out.sequence, 7);
	assert_int_equal(out.issued_at, T_NOW);
	assert_int_equal(out.expires_at, T_NOW + BUNDLE_TTL);
	assert_string_equal(out.chain, T_CHAIN);
	assert_int_equal(klen, sizeof(t_key));
	assert_memory_equal(key, t_key, sizeof(t_key));
	sodium_free(key);
	bundle_meta_free(&out);
	assert_null(out.chain);
	/* The time window's edges: issued BUNDLE_SKEW ahead, and the last second. */
	assert_ok(open_at(s, slen, T_NOW - BUNDLE_SKEW, &out, &key, &klen));
	sodium_free(key);
	bundle_meta_free(&out);
	assert_ok(open_at(s, slen, T_NOW + BUNDLE_TTL - 1, &out, &key, &klen));
	sodium_free(key);
	bundle_meta_free(&out);
	free(s);

	bundle_new_id(id1);
	bundle_new_id(id2);
	assert_int_equal(strlen(id1), 32);
	assert_int_equal(strspn(id1, "0123456789abcdef"), 32);
	assert_string_not_equal(id1, id2);
}

/* The biggest bundle the caps allow opens; one byte more is refused before opening. */
static void
test_caps_exact(void **state)
{
	struct bundle_meta out;
	uint8_t *s, *key;
	size_t slen, klen, n;
	json_t *h = hdr_obj();
	char *t = json_dumps(h, JSON_COMPACT), *pad;

	json_decref(h);
	n = strlen(t);
	pad = malloc(BUNDLE_HEADER_MAX);
	assert_non_null(pad);
	memcpy(pad, t, n);
	memset(pad + n, ' ', BUNDLE_HEADER_MAX - n); /* JSON allows trailing white space */
	free(t);
	s = raw_seal(pad, BUNDLE_HEADER_MAX, BUNDLE_HEADER_MAX, BUNDLE_KEY_MAX, BUNDLE_KEY_MAX, 0,
	    sign_sk, &slen);
	assert_int_equal(slen, BUNDLE_SEALED_MAX);
	assert_ok(open_at(s, slen, T_NOW, &out, &key, &klen));
	assert_int_equal(klen, BUNDLE_KEY_MAX);
	sodium_free(key);
	bundle_meta_free(&out);
	free(s);
	/* Same, one trailing byte: a validly signed bundle one byte over the cap. */
	s = raw_seal(pad, BUNDLE_HEADER_MAX, BUNDLE_HEADER_MAX, BUNDLE_KEY_MAX, BUNDLE_KEY_MAX, 1,
	    sign_sk, &slen);
	assert_int_equal(slen, BUNDLE_SEALED_MAX + 1);
	refused(s, slen, T_NOW, SV_ETOOBIG, "over the cap");
	free(s);
	free(pad);
}

static void
test_wrong_keys(void **state)
{
	struct bundle_meta m, out;
	uint8_t *s, *key = NULL;
	size_t slen, klen;

	meta_init(&m);
	s = good_seal(&m, &slen);
	/* Another shadow's box key. */
	assert_sverr(bundle_open(s, slen, other_box_pk, other_box_sk, sign_pk, T_SHADOW, T_NAME,
			 T_NOW, &out, &key, &klen),
	    SV_ECRYPTO);
	assert_msg_has(SV_ECRYPTO, "box key");
	assert_null(key);
	/* Our public key with another secret key. */
	assert_sverr(bundle_open(s, slen, box_pk, other_box_sk, sign_pk, T_SHADOW, T_NAME, T_NOW,
			 &out, &key, &klen),
	    SV_ECRYPTO);
	/* Pinned key is not the one that signed. */
	assert_sverr(bundle_open(s, slen, box_pk, box_sk, other_sign_pk, T_SHADOW, T_NAME, T_NOW,
			 &out, &key, &klen),
	    SV_EDENIED);
	assert_msg_has(SV_EDENIED, "pinned vault bundle key");
	assert_null(key);
	free(s);
	/* Signed by a stranger, sealed to us. */
	assert_ok(bundle_seal(&m, t_key, sizeof(t_key), ed_sign, other_sign_sk, box_pk, &s, &slen));
	refused(s, slen, T_NOW, SV_EDENIED, "signature");
	free(s);
}

static void
test_flipped_bytes(void **state)
{
	struct bundle_meta m;
	uint8_t *s;
	size_t slen, i;

	meta_init(&m);
	s = good_seal(&m, &slen);
	for (i = 0; i < slen; i++) {
		s[i] ^= 0x01;
		refused(s, slen, T_NOW, SV_ECRYPTO, "cannot be opened");
		s[i] ^= 0x01;
	}
	for (i = 0; i < slen; i++) {
		s[i] ^= 0x80;
		refused(s, slen, T_NOW, SV_ECRYPTO, "cannot be opened");
		s[i] ^= 0x80;
	}
	free(s);
}

static void
test_truncated(void **state)
{
	struct bundle_meta m;
	uint8_t *s;
	size_t slen, n;

	meta_init(&m);
	s = good_seal(&m, &slen);
	refused(s, slen - 1, T_NOW, SV_ECRYPTO, "cannot be opened");
	refused(s, slen - 64, T_NOW, SV_ECRYPTO, "cannot be opened");
	refused(s, BUNDLE_SEAL_OVERHEAD + 79, T_NOW, SV_ECRYPTO, "cannot be opened");
	/* Too short to hold even the smallest bundle: refused before opening. */
	for (n = 0; n < BUNDLE_SEAL_OVERHEAD + 79; n++)
		refused(s, n, T_NOW, SV_EPROTO, "shorter than the smallest");
	free(s);
}

static void
test_expectations(void **state)
{
	struct bundle_meta m, out;
	uint8_t *s, *key = NULL;
	size_t slen, klen;

	meta_init(&m);
	s = good_seal(&m, &slen);
	assert_sverr(bundle_open(s, slen, box_pk, box_sk, sign_pk, "web-2", T_NAME, T_NOW, &out,
			 &key, &klen),
	    SV_ESTATE);
	assert_msg_has(SV_ESTATE, "sealed for shadow \"web-1\", not \"web-2\"");
	assert_null(key);
	assert_sverr(bundle_open(s, slen, box_pk, box_sk, sign_pk, T_SHADOW, "example.com", T_NOW,
			 &out, &key, &klen),
	    SV_ESTATE);
	assert_msg_has(SV_ESTATE, "holds certificate \"example.org\", not \"example.com\"");
	/* The name is compared exactly: no prefix, no case folding. */
	assert_sverr(bundle_open(s, slen, box_pk, box_sk, sign_pk, T_SHADOW, "Example.org", T_NOW,
			 &out, &key, &klen),
	    SV_ESTATE);
	assert_sverr(
	    bundle_open(s, slen, box_pk, box_sk, sign_pk, "web-", T_NAME, T_NOW, &out, &key, &klen),
	    SV_ESTATE);
	refused(s, slen, T_NOW + BUNDLE_TTL, SV_ESTATE, "expired");
	refused(s, slen, T_NOW + 10 * BUNDLE_TTL, SV_ESTATE, "expired");
	refused(s, slen, T_NOW - BUNDLE_SKEW - 1, SV_ESTATE, "in the future");
	refused(s, slen, 0, SV_ESTATE, "in the future");
	assert_sverr(open_at(s, slen, -1, &out, &key, &klen), SV_EINVAL);
	free(s);
}

static void
test_header_values(void **state)
{
	uint8_t *s;
	size_t slen;
	json_t *h;

	h = hdr_obj();
	json_object_set_new(h, "sequence", json_integer(0));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "sequence 0 is below 1");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "sequence", json_integer(-3));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "below 1");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "v", json_integer(2));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "version 2 is not 1");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "id", json_string("0123456789ABCDEF0123456789abcdef"));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "id is not");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "id", json_string("0123456789abcdef"));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "id is not");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "recipient", json_string("../web-1"));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "recipient");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "issued_at", json_integer(T_NOW + BUNDLE_TTL));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "not before expires_at");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "chain", json_string(""));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "chain is empty");
	free(s);
}

static void
test_header_shape(void **state)
{
	static const char *members[] = { "v", "id", "recipient", "name", "sequence", "issued_at",
		"expires_at", "chain" };
	uint8_t *s;
	size_t slen, i;
	json_t *h;
	char want[64], two[512], *t;

	h = hdr_obj();
	json_object_set_new(h, "extra", json_true());
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "unknown member \"extra\"");
	free(s);
	for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		h = hdr_obj();
		json_object_del(h, members[i]);
		s = seal_hdr(h, &slen);
		snprintf(want, sizeof(want), "lacks \"%s\"", members[i]);
		refused(s, slen, T_NOW, SV_EPROTO, want);
		free(s);
		/* Each member with the other type (a string for an integer and back). */
		h = hdr_obj();
		if (json_is_integer(json_object_get(h, members[i])))
			json_object_set_new(h, members[i], json_string("1"));
		else
			json_object_set_new(h, members[i], json_integer(1));
		s = seal_hdr(h, &slen);
		snprintf(want, sizeof(want), "\"%s\" is not", members[i]);
		refused(s, slen, T_NOW, SV_EPROTO, want);
		free(s);
	}
	/* A real number where an integer belongs; null; an array. */
	h = hdr_obj();
	json_object_set_new(h, "sequence", json_real(7.0));
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "\"sequence\" is not an integer");
	free(s);
	h = hdr_obj();
	json_object_set_new(h, "name", json_null());
	s = seal_hdr(h, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "\"name\" is not a string");
	free(s);
	/* Duplicate member, not JSON, not an object, JSON then garbage. */
	s = seal_text("{\"v\":1,\"v\":1}", &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "not JSON");
	free(s);
	s = seal_text("{\"v\":", &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "not JSON");
	free(s);
	s = seal_text("[1,2]", &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "not a JSON object");
	free(s);
	h = hdr_obj();
	t = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	assert_non_null(t);
	assert_true(snprintf(two, sizeof(two), "%s{}", t) < (int)sizeof(two));
	free(t);
	s = seal_text(two, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "not JSON");
	free(s);
}

static void
test_framing(void **state)
{
	json_t *h = hdr_obj();
	char *t = json_dumps(h, JSON_COMPACT), *big;
	size_t n = strlen(t), slen;
	uint8_t *s;

	json_decref(h);
	/* Header over its cap (valid JSON: padded with white space). */
	big = malloc(BUNDLE_HEADER_MAX + 1);
	assert_non_null(big);
	memcpy(big, t, n);
	memset(big + n, ' ', BUNDLE_HEADER_MAX + 1 - n);
	s = raw_seal(big, BUNDLE_HEADER_MAX + 1, BUNDLE_HEADER_MAX + 1, 16, 16, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_ETOOBIG, "header length 65537 is over the cap");
	free(s);
	free(big);
	/* Header length beyond the data, and absurd. */
	s = raw_seal(t, n, (uint32_t)n + 100, 16, 16, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "does not fit");
	free(s);
	s = raw_seal(t, n, 0xffffffffu, 16, 16, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_ETOOBIG, "over the cap");
	free(s);
	/* Header length leaving less than the key length field. */
	s = raw_seal(t, n, (uint32_t)n + 4 + 16 - 2, 16, 16, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "does not fit the");
	free(s);
	s = raw_seal(t, n, 1, 16, 16, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "header length 1 does not fit");
	free(s);
	/* Key over its cap, beyond the data, empty. */
	s = raw_seal(t, n, (uint32_t)n, BUNDLE_KEY_MAX + 1, BUNDLE_KEY_MAX + 1, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_ETOOBIG, "key length 8193 is over the cap");
	free(s);
	s = raw_seal(t, n, (uint32_t)n, 16, 17, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "key length 17 does not fit");
	free(s);
	s = raw_seal(t, n, (uint32_t)n, 0, 0, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "key length 0 does not fit");
	free(s);
	/* Trailing bytes between the key and the signature. */
	s = raw_seal(t, n, (uint32_t)n, 16, 16, 1, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "1 trailing bytes");
	free(s);
	s = raw_seal(t, n, (uint32_t)n, 16, 15, 0, sign_sk, &slen);
	refused(s, slen, T_NOW, SV_EPROTO, "1 trailing bytes");
	free(s);
	free(t);
}

static void
test_bad_magic(void **state)
{
	uint8_t p[200], s[200 + crypto_box_SEALBYTES];

	memset(p, 0, sizeof(p));
	memcpy(p, "SVB2", 4);
	crypto_sign_detached(p + sizeof(p) - 64, NULL, p, sizeof(p) - 64, sign_sk);
	assert_int_equal(crypto_box_seal(s, p, sizeof(p), box_pk), 0);
	refused(s, sizeof(s), T_NOW, SV_EPROTO, "bad magic");
}

static void
test_sealed_cap(void **state)
{
	uint8_t *s = calloc(1, BUNDLE_SEALED_MAX + 1);

	assert_non_null(s);
	refused(s, BUNDLE_SEALED_MAX + 1, T_NOW, SV_ETOOBIG, "over the cap");
	refused(s, SIZE_MAX, T_NOW, SV_ETOOBIG, "over the cap");
	free(s);
}

static void
test_seal_refusals(void **state)
{
	struct bundle_meta m;
	uint8_t *s = (uint8_t *)&m, *bigkey;
	size_t slen = 5;
	char *chain;

	meta_init(&m);
	memcpy(m.id, "0123456789abcdef0123456789abcdeF", 33);
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "id");
	assert_null(s);
	assert_int_equal(slen, 0);
	meta_init(&m);
	m.id[31] = '\0';
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	meta_init(&m);
	snprintf(m.recipient, sizeof(m.recipient), "web/1");
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "recipient");
	meta_init(&m);
	m.name[0] = '\0';
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "certificate name");
	meta_init(&m);
	m.sequence = 0;
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "sequence 0");
	meta_init(&m);
	m.expires_at = m.issued_at;
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "before expires_at");
	meta_init(&m);
	m.chain = NULL;
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "no certificate chain");
	m.chain = (char *)"";
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "no certificate chain");
	meta_init(&m);
	assert_sverr(bundle_seal(&m, t_key, 0, ed_sign, sign_sk, box_pk, &s, &slen), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "key is 0 bytes");
	bigkey = calloc(1, BUNDLE_KEY_MAX + 1);
	assert_non_null(bigkey);
	assert_ok(bundle_seal(&m, bigkey, BUNDLE_KEY_MAX, ed_sign, sign_sk, box_pk, &s, &slen));
	free(s);
	assert_sverr(
	    bundle_seal(&m, bigkey, BUNDLE_KEY_MAX + 1, ed_sign, sign_sk, box_pk, &s, &slen),
	    SV_ETOOBIG);
	free(bigkey);
	/* A chain that makes the header too big. */
	chain = malloc(BUNDLE_HEADER_MAX + 1);
	assert_non_null(chain);
	memset(chain, 'A', BUNDLE_HEADER_MAX);
	chain[BUNDLE_HEADER_MAX] = '\0';
	m.chain = chain;
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), ed_sign, sign_sk, box_pk, &s, &slen), SV_ETOOBIG);
	assert_msg_has(SV_ETOOBIG, "header is");
	free(chain);
	/* The signer's error comes back as it is. */
	meta_init(&m);
	assert_sverr(
	    bundle_seal(&m, t_key, sizeof(t_key), failing_sign, NULL, box_pk, &s, &slen), SV_EHSM);
	assert_msg_has(SV_EHSM, "token gone");
	assert_null(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_caps_exact),
		cmocka_unit_test(test_wrong_keys),
		cmocka_unit_test(test_flipped_bytes),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_expectations),
		cmocka_unit_test(test_header_values),
		cmocka_unit_test(test_header_shape),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_sealed_cap),
		cmocka_unit_test(test_seal_refusals),
	};

	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(sign_pk, sign_sk);
	crypto_sign_keypair(other_sign_pk, other_sign_sk);
	crypto_box_keypair(box_pk, box_sk);
	crypto_box_keypair(other_box_pk, other_box_sk);
	return cmocka_run_group_tests_name("bundle", tests, NULL, NULL);
}
