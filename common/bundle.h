/*
 * bundle: the sealed key bundle (DESIGN §4), shared by vaultd, which packs,
 * signs and seals one for a shadow, and shadow, which opens and checks it.
 *
 * Plaintext, signed by the vault's Ed25519 bundle key (integers big-endian):
 *
 *   "SVB1"           4 bytes, format version 1
 *   u32 hlen         then the header: a JSON object, 2 <= hlen <= BUNDLE_HEADER_MAX
 *   u32 klen         then the key: PKCS#8 DER, 1 <= klen <= BUNDLE_KEY_MAX
 *   signature        64 bytes, Ed25519 over every byte before it
 *
 * Header: {"v": 1, "id": 32 lowercase hex, "recipient": shadow name,
 * "name": certificate name, "sequence": n >= 1, "issued_at": unix seconds,
 * "expires_at": unix seconds, "chain": PEM, leaf first}.  Nothing else.
 *
 * Sealed: crypto_box_seal(plaintext) to the recipient's X25519 public key,
 * registered at enrolment.  The plaintext, and so the private key, exists
 * only in libsodium guarded memory and is wiped when done with.
 */
#ifndef SV_BUNDLE_H
#define SV_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "names.h"
#define BUNDLE_MAGIC	     "SVB1"
#define BUNDLE_HEADER_MAX    (64 * 1024) /* header JSON, certificate chain included */
#define BUNDLE_KEY_MAX	     8192	 /* PKCS#8 DER (RSA 4096 is about 2.4 KiB) */
#define BUNDLE_SIG_LEN	     64
#define BUNDLE_PK_LEN	     32 /* Ed25519 and X25519 public keys */
#define BUNDLE_SEAL_OVERHEAD 48 /* crypto_box_SEALBYTES */
/* Largest sealed bundle: the caps above, the framing, the signature, the seal. */
#define BUNDLE_SEALED_MAX                                                                          \
	(4 + 4 + BUNDLE_HEADER_MAX + 4 + BUNDLE_KEY_MAX + BUNDLE_SIG_LEN + BUNDLE_SEAL_OVERHEAD)
#define BUNDLE_TTL  3600 /* seconds a bundle may be opened after it is issued */
#define BUNDLE_SKEW 300	 /* seconds a bundle's issued_at may lie in the opener's future */

struct bundle_meta {
	char id[33];			 /* 32 hex digits */
	char recipient[SV_NAME_MAX + 1]; /* shadow name */
	char name[SV_NAME_MAX + 1];	 /* certificate name */
	int64_t sequence;		 /* >= 1; grows with every certificate of name */
	int64_t issued_at, expires_at;	 /* unix seconds */
	char *chain;			 /* PEM, leaf first; malloc'd, bundle_meta_free() */
};

/* Sign msg with the vault's bundle key: 64 bytes of Ed25519 into sig.  0 or SV_E*. */
typedef int (*bundle_sign_fn)(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig);

/* A fresh random id (32 hex digits and NUL) for struct bundle_meta. */
void bundle_new_id(char id[33]);

/*
 * Pack m and the PKCS#8 DER key, sign with sign(ctx, ...), and seal to box_pk.
 * m->chain must be set; id, recipient and name must be valid (names as
 * sv_name_check), sequence >= 1, issued_at < expires_at.  The plaintext lives
 * in guarded memory and is wiped.  *sealed is malloc'd (free()).
 * SV_EINVAL (bad meta), SV_ETOOBIG (over a cap), the signer's error, SV_ECRYPTO.
 */
int bundle_seal(const struct bundle_meta *m, const uint8_t *key, size_t klen, bundle_sign_fn sign,
    void *ctx, const uint8_t box_pk[BUNDLE_PK_LEN], uint8_t **sealed, size_t *slen);

/*
 * Open a sealed bundle with this shadow's box key pair, check the signature
 * against the pinned bundle key sign_pk, and check the header: the layout
 * and caps above, v 1, recipient == expect_recipient, name == expect_name
 * (exact), sequence >= 1, issued_at <= now + BUNDLE_SKEW, now < expires_at.
 * It does not judge the sequence against what is installed: the caller does.
 * On success *out is filled (bundle_meta_free()) and *key (klen bytes) is
 * sodium_malloc'd: the caller sodium_free()s it.  On failure nothing is
 * returned and the error says what was wrong: SV_ETOOBIG, SV_ECRYPTO (cannot
 * be opened with this box key), SV_EDENIED (signature not by sign_pk),
 * SV_EPROTO (malformed after a good signature), SV_ESTATE (expired, or for
 * another recipient or name).
 */
int bundle_open(const uint8_t *sealed, size_t slen, const uint8_t box_pk[BUNDLE_PK_LEN],
    const uint8_t *box_sk, const uint8_t sign_pk[BUNDLE_PK_LEN], const char *expect_recipient,
    const char *expect_name, int64_t now, struct bundle_meta *out, uint8_t **key, size_t *klen);

void bundle_meta_free(struct bundle_meta *m);

/*
 * BUNDLE KEY ROTATION.  When the vault's bundle key changes, each old version
 * vouches for the next with a link, sent beside the sealed bundle (the
 * answer's "key_chain": the links from the first version to the current one,
 * in order):
 *
 *   {"from": base64url(old public key), "to": base64url(new public key),
 *    "sig": base64url(Ed25519 signature by old over BUNDLE_LINK_CONTEXT || old || new)}
 *
 * A shadow that pinned an old key follows the links from it and pins the key
 * it ends at; links that do not start from the key reached so far are
 * skipped (they come before the pinned one).
 */
#define BUNDLE_LINK_CONTEXT "shadowvault bundle key handover v1\n"
#define BUNDLE_CHAIN_MAX    64 /* links in a key_chain */

/* The link from -> to, signed by sign(ctx) with the key from; *out json_decref()s. */
int bundle_link_make(const uint8_t from[BUNDLE_PK_LEN], const uint8_t to[BUNDLE_PK_LEN],
    bundle_sign_fn sign, void *ctx, json_t **out);

/*
 * Follow chain (NULL: none) from the pinned key; the key reached in out (the
 * pinned one if no link starts from it, and on any error).  SV_EPROTO if chain is not an array
 * of at most BUNDLE_CHAIN_MAX links of exactly {from, to, sig} in base64url
 * of the right sizes, or a link from the key reached so far does not verify.
 */
int bundle_key_follow(
    const uint8_t pinned[BUNDLE_PK_LEN], const json_t *chain, uint8_t out[BUNDLE_PK_LEN]);

#endif
