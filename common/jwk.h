/*
 * JSON Web Keys (RFC 7517/7518) for the public keys shadowvault handles, and
 * RFC 7638 thumbprints.  Supported: EC P-256 and P-384, RSA, Ed25519 (OKP).
 */
#ifndef SV_JWK_H
#define SV_JWK_H

#include <jansson.h>
#include <openssl/evp.h>

/* base64url of a SHA-256 digest: 43 characters. */
#define JWK_THUMB_LEN 43

/* Largest RSA modulus accepted from a JWK, in bytes (8192 bits). */
#define JWK_RSA_MAX_BYTES 1024

/* Public JWK of pk.  *out is a new reference: caller json_decref()s. */
int jwk_from_pkey(EVP_PKEY *pk, json_t **out);

/* Public key from a JWK; rejects unknown kty/crv and wrong sizes.  Caller EVP_PKEY_free()s. */
int jwk_to_pkey(const json_t *jwk, EVP_PKEY **out);

/* RFC 7638 thumbprint (SHA-256, base64url) into out[JWK_THUMB_LEN + 1]. */
int jwk_thumbprint(const json_t *jwk, char *out);

/* Same, straight from a key. */
int jwk_thumbprint_pkey(EVP_PKEY *pk, char *out);

/* JWS "alg" for signing with pk: "ES256", "ES384", "RS256", "EdDSA"; NULL if unsupported. */
const char *jwk_alg(EVP_PKEY *pk);

#endif
