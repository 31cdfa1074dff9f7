/*
 * The libp11 OpenSSL engine: OpenSSL loads a token key by its pkcs11: URI.
 *
 * Limit measured here: libp11 0.4.12 cannot enumerate the keys of a token
 * that holds any Ed25519 key, and then finds no key at all.  The vault's
 * own token always holds one (its audit key), so vaultd signs certificates
 * with hsm_pkey() instead; this module serves tokens without EdDSA keys.
 */
#ifndef SV_HSM_ENGINE_H
#define SV_HSM_ENGINE_H

#include <openssl/evp.h>

#include "hsm.h"

struct hsm_engine;

/*
 * Load the "pkcs11" engine for cfg->module and give it the PIN from
 * cfg->pin_file (read into guarded memory and wiped after).  Caller
 * hsm_engine_close()s.
 */
int hsm_engine_open(const struct hsm_config *cfg, struct hsm_engine **out);
void hsm_engine_close(struct hsm_engine *e);

/* Private key handle for an RFC 7512 URI; signing runs in the token.  Caller EVP_PKEY_free()s. */
int hsm_engine_key(struct hsm_engine *e, const char *uri, EVP_PKEY **out);

#endif
