/*
 * hsm_engine.c: the libp11 "pkcs11" OpenSSL engine (see hsm_engine.h).
 * Debian 12 has no OpenSSL 3 pkcs11 provider, so the (deprecated) ENGINE API
 * is the way OpenSSL reaches token keys; we ask for the 1.1.1 API level to
 * use it without deprecation warnings.  May touch: the module, the PIN file.
 */
#define OPENSSL_API_COMPAT 10101

#include <stdlib.h>

#include <openssl/engine.h>
#include <openssl/ui.h>
#include <sodium.h>

#include "fileio.h"
#include "hsm_engine.h"
#include "sv_err.h"

struct hsm_engine {
	ENGINE *e;
};

int
hsm_engine_open(const struct hsm_config *cfg, struct hsm_engine **out)
{
	struct hsm_engine *he;
	char *pin = NULL;
	size_t len;
	int r;

	*out = NULL;
	if (cfg->softhsm2_conf != NULL)
		setenv("SOFTHSM2_CONF", cfg->softhsm2_conf, 1);
	if ((he = calloc(1, sizeof(*he))) == NULL)
		return SV_ENOMEM;
	ENGINE_load_builtin_engines();
	if ((he->e = ENGINE_by_id("pkcs11")) == NULL) {
		free(he);
		return sv_seterr_ssl(SV_EMODULE,
		    "hsm: the OpenSSL pkcs11 engine (package "
		    "libengine-pkcs11-openssl) cannot be loaded");
	}
	if ((r = sv_read_secret_file(cfg->pin_file, HSM_PIN_MAX, &pin, &len)) != 0) {
		hsm_engine_close(he);
		return sv_preferr(r, "hsm engine: PIN file");
	}
	if (ENGINE_ctrl_cmd_string(he->e, "MODULE_PATH", cfg->module, 0) != 1 ||
	    ENGINE_ctrl_cmd_string(he->e, "PIN", pin, 0) != 1 || ENGINE_init(he->e) != 1) {
		sodium_free(pin);
		ENGINE_free(he->e);
		free(he);
		return sv_seterr_ssl(SV_EMODULE, "hsm: initialising the pkcs11 engine");
	}
	sodium_free(pin);
	*out = he;
	return 0;
}

void
hsm_engine_close(struct hsm_engine *he)
{
	if (he == NULL)
		return;
	if (he->e != NULL) {
		ENGINE_finish(he->e);
		ENGINE_free(he->e);
	}
	free(he);
}

int
hsm_engine_key(struct hsm_engine *he, const char *uri, EVP_PKEY **out)
{
	/* UI_null(): never ask for a PIN on a terminal (libp11 falls back to that). */
	if ((*out = ENGINE_load_private_key(he->e, uri, (UI_METHOD *)UI_null(), NULL)) == NULL)
		return sv_seterr_ssl(SV_ENOTFOUND, "hsm: the pkcs11 engine cannot load the key");
	return 0;
}
