/*
 * base64url without padding (RFC 7515 section 2), through libsodium.
 */
#ifndef SV_B64_H
#define SV_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encode len bytes.  *out is a malloc'd NUL-terminated string: caller frees. */
int b64u_encode(const uint8_t *in, size_t len, char **out);

/*
 * Decode a base64url string of inlen characters (no padding, no white space,
 * nothing after it).  At most max decoded bytes.  *out is malloc'd (caller
 * frees; it has a spare NUL after *outlen bytes).
 */
int b64u_decode(const char *in, size_t inlen, size_t max, uint8_t **out, size_t *outlen);

#endif
