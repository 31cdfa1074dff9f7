/*
 * Internals shared by audit.c (the writer) and audit_verify.c (the
 * verifier): the hash size, the head file's contents, and the parsers both
 * must apply identically.  Not for users of the log (see audit.h).
 */
#ifndef SV_AUDIT_INT_H
#define SV_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"

#define HASH_LEN     crypto_hash_sha256_BYTES
#define HASH_B64_LEN 43 /* base64url of HASH_LEN bytes, no padding */
#define NKEYS(k)     (sizeof(k) / sizeof((k)[0]))

/* What the head file vouches for: the last checkpoint's seq and line hash, and the key in force. */
struct audit_head {
	uint64_t seq;
	uint8_t hash[HASH_LEN];
	char key[AUDIT_KEYID_MAX + 1];
};

/* base64url of a hash into out (NUL-terminated). */
void audit_hash_encode(const uint8_t h[HASH_LEN], char out[HASH_B64_LEN + 1]);

/* Do o's members start with (exact: are exactly) keys, in order?  1 or 0. */
int audit_keys_match(json_t *o, const char *const *keys, size_t n, int exact);

/*
 * Parse a record line as the verifier does: a JSON object whose first members
 * are seq (positive integer), time and prev.  0 with *out (caller
 * json_decref()s) and *seq, or SV_EINVAL saying what is wrong.
 */
int audit_rec_parse(const uint8_t *line, size_t len, json_t **out, uint64_t *seq);

/*
 * Check that line (len bytes, no newline) ends in `,"sig":"<sig>"}` with sig
 * the parsed value of its sig member; if pub, verify the Ed25519 signature
 * over context followed by the line with that tail replaced by "}".  0 or
 * SV_EINVAL.
 */
int audit_sig_check(
    const uint8_t *pub, const char *context, const uint8_t *line, size_t len, const char *sig);

/* Parse a head file's bytes (and check its signature if pub); 0 or an SV code. */
int audit_head_parse(const uint8_t *buf, size_t len, const uint8_t *pub, struct audit_head *h);

/* Load and check the head file at hpath (*found = 0 if there is none); 0 or an SV code. */
int audit_head_load(const char *hpath, const uint8_t *pub, struct audit_head *h, int *found);

#endif
