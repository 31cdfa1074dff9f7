/*
 * The libp11 OpenSSL engine, for the places where OpenSSL itself must use a
 * token key by its pkcs11: URI: certificates and CSRs signed inside the
 * token (the vault's shadow CA), a TLS key kept on the token.
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
