/*
 * JWS in flattened JSON serialization (RFC 7515 section 7.2.2), as ACME uses
 * it, with the signature made by a pluggable signer (an HSM key, or an
 * in-memory key in tests and in the shadow client).
 *
 * Signatures are in JWS form: ES256/ES384 are raw r||s (RFC 7518 3.4),
 * never DER; RS256 is PKCS#1 v1.5; EdDSA is the 64-byte Ed25519 signature.
 */
#ifndef SV_JWS_H
#define SV_JWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* Largest JWS signature we produce or accept (RSA 4096 is 512 bytes). */
#define JWS_SIG_MAX 1024

/*
 * Sign the JWS signing input in[0..inlen) (ASCII "protected.payload").
 * On entry *siglen is the room in sig; on success it is the signature length.
 */
typedef int (*jws_sign_fn)(
    void *ctx, const uint8_t *in, size_t inlen, uint8_t *sig, size_t *siglen);

struct jws_signer {
	const char *alg; /* "ES256", "ES384", "RS256", "EdDSA" */
	jws_sign_fn sign;
	void *ctx;
};

/*
 * Build a flattened JWS over payload (plen bytes; plen 0 gives the empty
 * payload of ACME POST-as-GET).  The protected header is serialized as given,
 * after "alg" is set from the signer (a caller-supplied "alg" must match).
 * *out is a new object {protected, payload, signature}: caller json_decref()s.
 */
int jws_sign(const struct jws_signer *s, const json_t *protected_hdr, const uint8_t *payload,
    size_t plen, json_t **out);

/*
 * The same JWS as its compact JSON text {"protected":..,"payload":..,
 * "signature":..} (*out malloc'd, NUL-terminated, *outlen bytes), for a
 * caller that only passes it on.
 */
int jws_sign_text(const struct jws_signer *s, const json_t *protected_hdr, const uint8_t *payload,
    size_t plen, char **out, size_t *outlen);

/*
 * Verify a flattened JWS with pk.  On success, optionally return the decoded
 * protected header (*hdr, caller json_decref()s) and payload (*payload,
 * caller free()s, NUL-terminated, at most max_payload bytes).
 */
int jws_verify(const json_t *jws, EVP_PKEY *pk, size_t max_payload, json_t **hdr, uint8_t **payload,
    size_t *plen);

/*
 * A signer over an in-memory private key (EC P-256/P-384, RSA, Ed25519).  The
 * signer borrows pk: keep it alive while the signer is used.
 */
int jws_pkey_signer(EVP_PKEY *pk, struct jws_signer *out);

/* ECDSA signature conversion: DER <-> raw r||s with n bytes per integer. */
int ecdsa_der_to_raw(const uint8_t *der, size_t derlen, size_t n, uint8_t *raw);
int ecdsa_raw_to_der(const uint8_t *raw, size_t rawlen, uint8_t **der, size_t *derlen);

#endif
