/*
 * ecsign: an OpenSSL EC key whose private-key operation is a callback, so
 * that OpenSSL (X509_sign, TLS handshakes) can use a key it never holds:
 * a token key through hsm/ (hsm_pkey), or the vault's TLS key signed by the
 * key process for the network process.  OpenSSL hashes and encodes; the
 * callback signs the digest and returns raw r||s.  EC P-256 and P-384.
 */
#ifndef SV_ECSIGN_H
#define SV_ECSIGN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/*
 * Sign dgst (dlen bytes) with the key behind ctx; *siglen: room in sig on
 * entry, raw r||s length on return.  0 or a negative SV code.
 */
typedef int (*ecsign_fn)(void *ctx, const uint8_t *dgst, size_t dlen, uint8_t *sig, size_t *siglen);

/*
 * A key with pub's public half whose signing calls sign(ctx, ...).  ctx is
 * freed with ctx_free (may be NULL) when the key is freed, or at once if
 * this fails.  Caller EVP_PKEY_free()s *out.
 */
int ecsign_pkey(EVP_PKEY *pub, ecsign_fn sign, void *ctx, void (*ctx_free)(void *), EVP_PKEY **out);

#endif
