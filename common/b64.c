/*
 * base64url helpers over libsodium's constant-time codec (see b64.h).
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "b64.h"
#include "sv_err.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

int
b64u_encode(const uint8_t *in, size_t len, char **out)
{
	size_t n;

	*out = NULL;
	if (len > (SIZE_MAX / 4) * 3 - 4)
		return sv_seterr(SV_ETOOBIG, "base64url: input too large");
	n = sodium_base64_encoded_len(len, B64_VARIANT);
	if ((*out = malloc(n)) == NULL)
		return sv_seterr(SV_ENOMEM, "base64url: out of memory");
	sodium_bin2base64(*out, n, in, len, B64_VARIANT);
	return 0;
}

int
b64u_decode(const char *in, size_t inlen, size_t max, uint8_t **out, size_t *outlen)
{
	size_t cap, n = 0;
	const char *end = NULL;
	uint8_t *d;

	*out = NULL;
	*outlen = 0;
	cap = inlen / 4 * 3 + 3;
	if (cap > max + 3)
		return sv_seterr(SV_ETOOBIG, "base64url: decoded data over %zu bytes", max);
	if ((d = malloc(cap + 1)) == NULL)
		return sv_seterr(SV_ENOMEM, "base64url: out of memory");
	if (sodium_base642bin(d, cap, in, inlen, NULL, &n, &end, B64_VARIANT) != 0 ||
	    end != in + inlen) {
		free(d);
		return sv_seterr(SV_EINVAL, "base64url: malformed input");
	}
	if (n > max) {
		sodium_memzero(d, cap);
		free(d);
		return sv_seterr(SV_ETOOBIG, "base64url: decoded data over %zu bytes", max);
	}
	d[n] = '\0';
	*out = d;
	*outlen = n;
	return 0;
}
