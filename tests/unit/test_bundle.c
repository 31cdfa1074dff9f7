/*
 * common/bundle.c: a round trip with a libsodium Ed25519 signer, and every
 * refusal of bundle_open and bundle_seal; the bundle key's rotation links
 * (bundle_link_make, bundle_key_follow).  Malformed plaintexts that
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

/* ---- bundle key rotation: bundle_link_make(), bundle_key_follow() ---- */

#define T_CTX_LEN (sizeof(BUNDLE_LINK_CONTEXT) - 1)
#define T_NKEYS	  (BUNDLE_CHAIN_MAX + 2) /* a chain of BUNDLE_CHAIN_MAX links, and one more */

/* Versions of the vault's bundle key: v[0] is v1, v[1] v2, ... */
static uint8_t v_pk[T_NKEYS][crypto_sign_PUBLICKEYBYTES], v_sk[T_NKEYS][crypto_sign_SECRETKEYBYTES];

static char *
t_b64u(const uint8_t *b, size_t n)
{
	size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(len);

	assert_non_null(s);
	sodium_bin2base64(s, len, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* The link from v[i] to v[j], signed by v[i] through bundle_link_make(). */
static json_t *
link_v(size_t i, size_t j)
{
	json_t *l = NULL;

	assert_ok(bundle_link_make(v_pk[i], v_pk[j], ed_sign, v_sk[i], &l));
	assert_non_null(l);
	return l;
}

/* A link from -> to whose signature is made here by sk over msg (mlen bytes). */
static json_t *
link_raw(const uint8_t *from, const uint8_t *to, const uint8_t *sk, const uint8_t *msg, size_t mlen)
{
	uint8_t sig[crypto_sign_BYTES];
	char *f = t_b64u(from, BUNDLE_PK_LEN), *t = t_b64u(to, BUNDLE_PK_LEN), *g;
	json_t *l;

	assert_int_equal(crypto_sign_detached(sig, NULL, msg, mlen, sk), 0);
	g = t_b64u(sig, sizeof(sig));
	l = json_pack("{s:s, s:s, s:s}", "from", f, "to", t, "sig", g);
	assert_non_null(l);
	free(f);
	free(t);
	free(g);
	return l;
}

/* The documented message, built here and not with bundle.c's code. */
static size_t
link_message(const uint8_t *from, const uint8_t *to, uint8_t *msg)
{
	memcpy(msg, BUNDLE_LINK_CONTEXT, T_CTX_LEN);
	memcpy(msg + T_CTX_LEN, from, BUNDLE_PK_LEN);
	memcpy(msg + T_CTX_LEN + BUNDLE_PK_LEN, to, BUNDLE_PK_LEN);
	return T_CTX_LEN + 2 * BUNDLE_PK_LEN;
}

/* The chain v[first] -> v[first + 1] -> ... -> v[last]. */
static json_t *
chain_v(size_t first, size_t last)
{
	json_t *c = json_array();
	size_t i;

	assert_non_null(c);
	for (i = first; i < last; i++)
		assert_int_equal(json_array_append_new(c, link_v(i, i + 1)), 0);
	return c;
}

/* Follow c from pk and expect to end at want; out is spoiled first. */
static void
follows_to(const uint8_t *pk, const json_t *c, const uint8_t *want)
{
	uint8_t out[BUNDLE_PK_LEN];

	memset(out, 0xa5, sizeof(out));
	assert_ok(bundle_key_follow(pk, c, out));
	assert_memory_equal(out, want, BUNDLE_PK_LEN);
}

/* Follow c from pk and expect SV_EPROTO with detail. */
static void
refused_from(const uint8_t *pk, const json_t *c, const char *detail)
{
	uint8_t out[BUNDLE_PK_LEN];

	sv_clearerr();
	assert_sverr(bundle_key_follow(pk, c, out), SV_EPROTO);
	assert_msg_has(SV_EPROTO, detail);
}

static void
chain_refused(const json_t *c, const char *detail)
{
	refused_from(v_pk[0], c, detail);
}

static void
test_link_make(void **state)
{
	uint8_t msg[T_CTX_LEN + 2 * BUNDLE_PK_LEN], b[crypto_sign_BYTES];
	json_t *l = link_v(0, 1), *bad = (json_t *)&b;
	const char *k;
	json_t *v;
	size_t n, mlen;

	/* Exactly {from, to, sig}, base64url without padding of the keys and the signature. */
	assert_true(json_is_object(l));
	assert_int_equal(json_object_size(l), 3);
	json_object_foreach(l, k, v)
	{
		assert_true(json_is_string(v));
		assert_int_equal(
		    strspn(json_string_value(v),
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
		    json_string_length(v));
	}
	assert_int_equal(json_string_length(json_object_get(l, "from")), 43);
	assert_int_equal(json_string_length(json_object_get(l, "to")), 43);
	assert_int_equal(json_string_length(json_object_get(l, "sig")), 86);
	assert_int_equal(
	    sodium_base642bin(b, sizeof(b), json_string_value(json_object_get(l, "from")), 43, NULL,
		&n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	assert_int_equal(n, BUNDLE_PK_LEN);
	assert_memory_equal(b, v_pk[0], BUNDLE_PK_LEN);
	assert_int_equal(
	    sodium_base642bin(b, sizeof(b), json_string_value(json_object_get(l, "to")), 43, NULL,
		&n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	assert_memory_equal(b, v_pk[1], BUNDLE_PK_LEN);
	/* The signature is v1's over the documented message: context, old key, new key. */
	assert_int_equal(
	    sodium_base642bin(b, sizeof(b), json_string_value(json_object_get(l, "sig")), 86, NULL,
		&n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	assert_int_equal(n, crypto_sign_BYTES);
	mlen = link_message(v_pk[0], v_pk[1], msg);
	assert_int_equal(crypto_sign_verify_detached(b, msg, mlen, v_pk[0]), 0);
	mlen = link_message(v_pk[1], v_pk[0], msg);
	assert_int_not_equal(crypto_sign_verify_detached(b, msg, mlen, v_pk[0]), 0);
	json_decref(l);
	/* The signer's error comes back as it is, and no link. */
	assert_sverr(bundle_link_make(v_pk[0], v_pk[1], failing_sign, NULL, &bad), SV_EHSM);
	assert_msg_has(SV_EHSM, "token gone");
	assert_null(bad);
}

static void
test_follow_chain(void **state)
{
	json_t *c = chain_v(0, 2), *e = json_array();

	/* v1 -> v2 -> v3, from each version; a key the chain does not start from stays. */
	follows_to(v_pk[0], c, v_pk[2]);
	follows_to(v_pk[1], c, v_pk[2]);
	follows_to(v_pk[2], c, v_pk[2]);
	follows_to(other_sign_pk, c, other_sign_pk);
	follows_to(sign_pk, c, sign_pk);
	/* No chain (a vault whose bundle key never rotated), or an empty one. */
	follows_to(v_pk[0], NULL, v_pk[0]);
	follows_to(v_pk[1], NULL, v_pk[1]);
	assert_non_null(e);
	follows_to(v_pk[0], e, v_pk[0]);
	/* One link only: v1 -> v2; v2 stays. */
	json_array_remove(c, 1);
	follows_to(v_pk[0], c, v_pk[1]);
	follows_to(v_pk[1], c, v_pk[1]);
	json_decref(c);
	json_decref(e);
}

/* A link from the key reached so far must verify, whether that is the pinned one or not. */
static void
test_follow_bad_signature(void **state)
{
	uint8_t msg[T_CTX_LEN + 2 * BUNDLE_PK_LEN];
	json_t *c = chain_v(0, 2), *l;
	char *g;
	size_t mlen;

	/* v2 -> v3's signature spoiled (one bit of the signature's first byte). */
	g = strdup(json_string_value(json_object_get(json_array_get(c, 1), "sig")));
	assert_non_null(g);
	g[0] = g[0] == 'A' ? 'B' : 'A';
	json_object_set_new(json_array_get(c, 1), "sig", json_string(g));
	free(g);
	chain_refused(c, "key_chain link 2: not signed by the key it starts from");
	/* From v2 the same link is the first that counts. */
	refused_from(v_pk[1], c, "key_chain link 2: not signed");
	json_decref(c);

	/* v1's signature over v1 -> v2 with "to" changed to v3 afterwards. */
	c = chain_v(0, 1);
	g = t_b64u(v_pk[2], BUNDLE_PK_LEN);
	json_object_set_new(json_array_get(c, 0), "to", json_string(g));
	free(g);
	chain_refused(c, "key_chain link 1: not signed by the key it starts from");
	json_decref(c);

	/* Forged: from the pinned v1 to a stranger's key, signed by the stranger. */
	c = json_array();
	mlen = link_message(v_pk[0], other_sign_pk, msg);
	json_array_append_new(c, link_raw(v_pk[0], other_sign_pk, other_sign_sk, msg, mlen));
	chain_refused(c, "key_chain link 1: not signed by the key it starts from");
	json_decref(c);

	/* Signed by v1, but over the keys without the context: not a handover. */
	c = json_array();
	mlen = link_message(v_pk[0], v_pk[1], msg);
	json_array_append_new(
	    c, link_raw(v_pk[0], v_pk[1], v_sk[0], msg + T_CTX_LEN, mlen - T_CTX_LEN));
	chain_refused(c, "link 1: not signed");
	json_decref(c);

	/* Signed by v1 over the message of the link v1 -> v3, presented as v1 -> v2. */
	c = json_array();
	mlen = link_message(v_pk[0], v_pk[2], msg);
	l = link_raw(v_pk[0], v_pk[1], v_sk[0], msg, mlen);
	json_array_append_new(c, l);
	chain_refused(c, "link 1: not signed");
	json_decref(c);
}

/*
 * Links that do not start from the key reached so far are skipped without
 * checking their signatures.  That is safe: only a link starting from a key
 * already trusted (the pinned one, or one a trusted key vouched for) changes
 * the key reached, and only after its signature by that key verifies.  A
 * skipped link changes nothing, whatever it says or whoever signed it; the
 * vault sends every link from its first version, which a shadow pinned later
 * cannot check and does not need.
 */
static void
test_follow_skips(void **state)
{
	uint8_t msg[T_CTX_LEN + 2 * BUNDLE_PK_LEN];
	json_t *c = json_array(), *c2;
	size_t mlen;

	/* A forged link from a stranger's key, then v1 -> v2 -> v3. */
	mlen = link_message(other_sign_pk, v_pk[1], msg);
	json_array_append_new(c, link_raw(other_sign_pk, v_pk[1], v_sk[0], msg, mlen));
	c2 = chain_v(0, 2);
	json_array_extend(c, c2);
	json_decref(c2);
	follows_to(v_pk[0], c, v_pk[2]);
	follows_to(v_pk[1], c, v_pk[2]);
	/* From the stranger's key, the forgery is the first that counts: refused. */
	refused_from(other_sign_pk, c, "key_chain link 1: not signed");
	json_decref(c);

	/* v1 -> v2 good, v1 -> stranger forged after it: from v1, v2 is reached first. */
	c = chain_v(0, 1);
	mlen = link_message(v_pk[0], other_sign_pk, msg);
	json_array_append_new(c, link_raw(v_pk[0], other_sign_pk, other_sign_sk, msg, mlen));
	follows_to(v_pk[0], c, v_pk[1]);
	/* v1 -> v2 with a spoiled signature, skipped from v2, which stays. */
	json_decref(c);
	c = json_array();
	mlen = link_message(v_pk[0], v_pk[1], msg);
	json_array_append_new(c, link_raw(v_pk[0], v_pk[1], other_sign_sk, msg, mlen));
	json_array_append_new(c, link_v(1, 2));
	follows_to(v_pk[1], c, v_pk[2]);
	follows_to(v_pk[2], c, v_pk[2]);
	chain_refused(c, "key_chain link 1: not signed");
	json_decref(c);
}

/* A chain of BUNDLE_CHAIN_MAX links is followed to its end; one more is refused. */
static void
test_follow_cap(void **state)
{
	json_t *c = chain_v(0, BUNDLE_CHAIN_MAX);

	assert_int_equal(json_array_size(c), BUNDLE_CHAIN_MAX);
	follows_to(v_pk[0], c, v_pk[BUNDLE_CHAIN_MAX]);
	follows_to(v_pk[BUNDLE_CHAIN_MAX - 1], c, v_pk[BUNDLE_CHAIN_MAX]);
	json_array_append_new(c, link_v(BUNDLE_CHAIN_MAX, BUNDLE_CHAIN_MAX + 1));
	chain_refused(c, "not an array of at most 64 links");
	json_decref(c);
}

/* c (consumed) with link 1's member k set to s (n bytes), refused as not base64url. */
static void
member_refused(const char *k, const char *s, size_t n)
{
	json_t *c = chain_v(0, 2);
	char want[64];

	json_object_set_new(json_array_get(c, 0), k, json_stringn(s, n));
	snprintf(want, sizeof(want), "key_chain link 1: \"%s\" is not base64url of %d bytes", k,
	    strcmp(k, "sig") == 0 ? BUNDLE_SIG_LEN : BUNDLE_PK_LEN);
	chain_refused(c, want);
	json_decref(c);
}

static void
test_follow_malformed(void **state)
{
	static const char *members[] = { "from", "to", "sig" };
	uint8_t b[BUNDLE_SIG_LEN + 1];
	json_t *c, *l;
	char *s, std[128];
	size_t i, n;

	/* Not an array. */
	c = json_object();
	chain_refused(c, "key_chain is not an array");
	json_object_set_new(c, "0", link_v(0, 1));
	chain_refused(c, "key_chain is not an array");
	json_decref(c);
	c = json_string("");
	chain_refused(c, "key_chain is not an array");
	json_decref(c);
	c = json_null();
	chain_refused(c, "key_chain is not an array");
	json_decref(c);

	/* Links that are not objects of exactly {from, to, sig}. */
	c = json_array();
	json_array_append_new(c, json_string("link"));
	chain_refused(c, "key_chain link 1 is not {from, to, sig}");
	json_decref(c);
	c = json_array();
	json_array_append_new(c, chain_v(0, 1));
	chain_refused(c, "key_chain link 1 is not {from, to, sig}");
	json_decref(c);
	c = chain_v(0, 2);
	json_object_set_new(json_array_get(c, 1), "note", json_true());
	chain_refused(c, "key_chain link 2 is not {from, to, sig}");
	json_decref(c);
	for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		char want[64];

		c = chain_v(0, 2);
		json_object_del(json_array_get(c, 0), members[i]);
		chain_refused(c, "key_chain link 1 is not {from, to, sig}");
		/* Three members, but one under another name. */
		s = t_b64u(v_pk[0], BUNDLE_PK_LEN);
		json_object_set_new(json_array_get(c, 0), "From", json_string(s));
		free(s);
		snprintf(want, sizeof(want), "key_chain link 1: \"%s\" is not", members[i]);
		chain_refused(c, want);
		json_decref(c);
		/* Not a string. */
		c = chain_v(0, 2);
		json_object_set_new(json_array_get(c, 0), members[i], json_integer(1));
		chain_refused(c, want);
		json_decref(c);
	}
	/* A malformed link is refused even where it would be skipped (after the pinned key). */
	c = chain_v(0, 2);
	json_object_set_new(json_array_get(c, 0), "from", json_string("AAAA"));
	refused_from(v_pk[2], c, "key_chain link 1: \"from\" is not base64url of 32 bytes");
	json_decref(c);

	/* Wrong lengths: 31 and 33 bytes of key, 63 and 65 of signature, and a character off. */
	memset(b, 0x5a, sizeof(b));
	for (i = 0; i < 3; i++) {
		n = strcmp(members[i], "sig") == 0 ? BUNDLE_SIG_LEN : BUNDLE_PK_LEN;
		s = t_b64u(b, n - 1);
		member_refused(members[i], s, strlen(s));
		free(s);
		s = t_b64u(b, n + 1);
		member_refused(members[i], s, strlen(s));
		free(s);
		s = t_b64u(b, n);
		member_refused(members[i], s, strlen(s) - 1);
		member_refused(members[i], "", 0);
		free(s);
	}
	s = t_b64u(v_pk[0], BUNDLE_PK_LEN);
	n = strlen(s);
	assert_int_equal(n, 43);
	/* Padded ("=" after 43 characters, or in place of the last one). */
	snprintf(std, sizeof(std), "%s=", s);
	member_refused("from", std, n + 1);
	snprintf(std, sizeof(std), "%.42s=", s);
	member_refused("from", std, n);
	/* Standard base64's characters where base64url has '-' and '_'. */
	snprintf(std, sizeof(std), "+%s", s + 1);
	member_refused("from", std, n);
	snprintf(std, sizeof(std), "%.20s/%s", s, s + 21);
	member_refused("from", std, n);
	/* A NUL, white space, and bits set past the last byte (a second spelling of a key). */
	snprintf(std, sizeof(std), "%s", s);
	std[10] = '\0';
	member_refused("from", std, n);
	snprintf(std, sizeof(std), "%s", s);
	std[10] = ' ';
	member_refused("from", std, n);
	snprintf(std, sizeof(std), "%.42sB", s);
	member_refused("from", std, n);
	free(s);
	/* The same for a signature: padded, standard alphabet. */
	l = link_v(0, 1);
	s = strdup(json_string_value(json_object_get(l, "sig")));
	assert_non_null(s);
	assert_int_equal(strlen(s), 86);
	snprintf(std, sizeof(std), "%.84s==", s);
	member_refused("sig", std, 86);
	snprintf(std, sizeof(std), "%.85s+", s);
	member_refused("sig", std, 86);
	snprintf(std, sizeof(std), "/%s", s + 1);
	member_refused("sig", std, 86);
	free(s);
	json_decref(l);
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
		cmocka_unit_test(test_link_make),
		cmocka_unit_test(test_follow_chain),
		cmocka_unit_test(test_follow_bad_signature),
		cmocka_unit_test(test_follow_skips),
		cmocka_unit_test(test_follow_cap),
		cmocka_unit_test(test_follow_malformed),
	};
	size_t i;

	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(sign_pk, sign_sk);
	crypto_sign_keypair(other_sign_pk, other_sign_sk);
	crypto_box_keypair(box_pk, box_sk);
	crypto_box_keypair(other_box_pk, other_box_sk);
	for (i = 0; i < T_NKEYS; i++)
		crypto_sign_keypair(v_pk[i], v_sk[i]);
	return cmocka_run_group_tests_name("bundle", tests, NULL, NULL);
}
