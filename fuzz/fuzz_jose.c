/*
 * libFuzzer target: JSON from a peer through the JOSE parsers — a JWK to
 * an OpenSSL key and thumbprint, and a flattened JWS to verification.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jwk.h"
#include "jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tp[JWK_THUMB_LEN + 1];
	EVP_PKEY *pk = NULL;
	json_t *j, *jwk, *hdr = NULL;
	uint8_t *payload = NULL;
	size_t plen;

	if ((j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	jwk = json_object_get(j, "jwk");
	if (jwk_to_pkey(jwk ? jwk : j, &pk) == 0) {
		jwk_thumbprint(jwk ? jwk : j, tp);
		if (jws_verify(j, pk, 4096, &hdr, &payload, &plen) == 0) {
			json_decref(hdr);
			free(payload);
		}
		EVP_PKEY_free(pk);
	}
	json_decref(j);
	return 0;
}
