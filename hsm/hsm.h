/*
 * hsm: the only code in shadowvault that speaks PKCS#11.
 *
 * The core uses the raw PKCS#11 API of the module named in the configuration
 * (loaded with dlopen), because libp11 0.4.12 cannot generate EC or Ed25519
 * keys, wrap keys or sign EdDSA.  hsm_engine.c adds the libp11 OpenSSL engine
 * for the places where OpenSSL itself must use a token key by pkcs11: URI.
 *
 * A struct hsm is one PKCS#11 session on a shared, logged-in module.  Use one
 * per thread (hsm_clone() makes another).  Every operation recovers from a
 * lost session, a lost login and device errors by re-initialising the module,
 * reopening the session and logging in again, a bounded number of times.
 *
 * Keys are named by a struct hsm_key (type, CKA_ID, CKA_LABEL).  Private keys
 * are always CKA_SENSITIVE and CKA_EXTRACTABLE only when created exportable.
 */
#ifndef SV_HSM_H
#define SV_HSM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "jws.h"

#define HSM_ID_LEN    16  /* CKA_ID: random bytes */
#define HSM_LABEL_MAX 96  /* CKA_LABEL, without NUL */
#define HSM_PIN_MAX   256 /* PIN file size cap */
#define HSM_URI_MAX   512 /* RFC 7512 URI */
#define HSM_SIG_MAX   512 /* largest signature (RSA 4096) */

struct hsm_config {
	const char *module;	   /* path of the PKCS#11 module */
	const char *token;	   /* token label */
	const char *pin_file;	   /* user PIN, mode 0600 or stricter */
	const char *softhsm2_conf; /* optional: SOFTHSM2_CONF for a SoftHSM2 module */
};

enum hsm_keytype {
	HSM_EC_P256,
	HSM_EC_P384,
	HSM_RSA_2048,
	HSM_RSA_3072,
	HSM_RSA_4096,
	HSM_ED25519,
	HSM_KEYTYPE_COUNT
};

struct hsm_key {
	enum hsm_keytype type;
	uint8_t id[HSM_ID_LEN];
	char label[HSM_LABEL_MAX + 1];
	/* Cached object handles, valid while gen matches the module's. */
	unsigned long priv, pub;
	unsigned gen;
	int fresh; /* the handles were looked up during the current call */
	/* Session copy for signing (hsm_key_pin): 1 wanted, -1 refused, 0 off. */
	int pin;
	unsigned long copy, copy_of, copy_sess;
};

struct hsm_keyattrs {
	int sensitive, extractable, always_sensitive, never_extractable, token, private_;
};

struct hsm;

/* "ec-p256" etc. <-> enum; 0 / SV_EINVAL with the list of valid names. */
int hsm_keytype_parse(const char *s, enum hsm_keytype *out);
const char *hsm_keytype_name(enum hsm_keytype t);
/* JWS alg of the type: "ES256", "ES384", "RS256", "EdDSA". */
const char *hsm_keytype_alg(enum hsm_keytype t);

/* Readable name and explanation of a CKR_ code ("CKR_PIN_INCORRECT", "the PIN is wrong"). */
const char *hsm_ckr_name(unsigned long rv);
const char *hsm_ckr_text(unsigned long rv);

/*
 * Load the module, find the token by label, open a session and log in with
 * the PIN from cfg->pin_file (read into guarded memory, wiped after use).
 * The strings in cfg are copied.  Caller hsm_close()s.
 */
int hsm_open(const struct hsm_config *cfg, struct hsm **out);

/* Another session on the same module and login (for another thread). */
int hsm_clone(struct hsm *h, struct hsm **out);

/* Close the session; the last one finalises and unloads the module. */
void hsm_close(struct hsm *h);

/*
 * Initialise a free slot's token with label, SO PIN and user PIN read from
 * files (development and tests; production tokens are set up by their admin).
 */
int hsm_init_token(const struct hsm_config *cfg, const char *so_pin_file);

/* Create a key pair with a fresh random CKA_ID.  Ed25519 cannot be exportable. */
int hsm_key_create(
    struct hsm *h, enum hsm_keytype type, const char *label, int exportable, struct hsm_key *out);

/* Find a private key by CKA_ID (key->id and key->type set by the caller). */
int hsm_key_find(struct hsm *h, struct hsm_key *key);

/* Find a private key by label; fills id and type. SV_ENOTFOUND / SV_EEXIST if 0 or >1. */
int hsm_key_find_label(struct hsm *h, const char *label, struct hsm_key *out);

/* Destroy both halves of a key pair (and its session copy). */
int hsm_key_destroy(struct hsm *h, struct hsm_key *key);

/*
 * Sign with a session copy of the private key (C_CopyObject with CKA_TOKEN
 * false, every other attribute kept: still sensitive, never extractable).
 * Some modules re-read a token object at every C_SignInit (SoftHSM2 opens,
 * locks and decodes its object file each time); a session object lives in
 * the module's memory.  The copy is made at the first signature, made again
 * whenever the session or the key's handle changed, and dies with the
 * session.  A module that refuses the copy signs with the token object.  Use
 * a pinned key with one struct hsm only, and hsm_key_unpin() it before
 * forgetting it or when its token object may have changed.
 */
void hsm_key_pin(struct hsm_key *key);
/* Destroy the session copy, if any, and stop pinning. */
void hsm_key_unpin(struct hsm *h, struct hsm_key *key);
/*
 * Make a pinned key's session copy in h now, if it has none that is current:
 * 1 when the key then signs in h from a copy, without touching its token
 * object; 0 otherwise (not pinned, the module refused the copy, an error).
 * SoftHSM2 2.6.1 is not safe when two threads read one token object at once
 * (a lookup can then miss it), so a process signing from two threads makes
 * both copies from one thread first and lets the other sign only if this
 * says 1.
 */
int hsm_key_ready(struct hsm *h, struct hsm_key *key);

/* Public key as an OpenSSL key (caller EVP_PKEY_free()s). */
int hsm_key_public(struct hsm *h, struct hsm_key *key, EVP_PKEY **out);

/* An Ed25519 key's 32-byte public key (SV_EINVAL for another type). */
int hsm_key_ed25519_raw(struct hsm *h, struct hsm_key *key, uint8_t out[32]);

/* Read the private key's protection attributes back from the token. */
int hsm_key_attrs(struct hsm *h, struct hsm_key *key, struct hsm_keyattrs *out);

/*
 * Sign msg for JWS with the key's algorithm: ES256/ES384 hash in software and
 * return raw r||s; RS256 is CKM_SHA256_RSA_PKCS; EdDSA is CKM_EDDSA.
 * *siglen: room in sig on entry, signature length on return.
 */
int hsm_sign(struct hsm *h, struct hsm_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
    size_t *siglen);

/*
 * Sign a digest the caller computed (EC keys: CKM_ECDSA, raw r||s).  For
 * OpenSSL-driven signing (hsm_pkey); JWS signing uses hsm_sign().
 */
int hsm_sign_digest(struct hsm *h, struct hsm_key *key, const uint8_t *dgst, size_t dlen,
    uint8_t *sig, size_t *siglen);

/*
 * An OpenSSL key whose signing happens in the token through h (EC keys):
 * OpenSSL can then sign certificates and CSRs with it (X509_sign).  It
 * borrows h: keep the session open while the key is used; one thread at a
 * time.  Caller EVP_PKEY_free()s.
 */
int hsm_pkey(struct hsm *h, struct hsm_key *key, EVP_PKEY **out);

/* A JWS signer over an HSM key (borrows h and key; one thread at a time). */
struct hsm_jws_ctx {
	struct hsm *h;
	struct hsm_key *key;
};
void hsm_jws_signer(struct hsm_jws_ctx *ctx, struct jws_signer *out);

/*
 * Wrap an exportable private key out of the token (AES key wrap with padding
 * under a one-time session key) and return its PKCS#8 DER in sodium_malloc()
 * memory: caller frees with sodium_free().  A non-extractable key gives
 * SV_EUNEXTRACT.
 */
int hsm_key_wrap_pkcs8(struct hsm *h, struct hsm_key *key, uint8_t **pkcs8, size_t *len);

/* RFC 7512 URI of the private key: "pkcs11:token=...;object=...;id=...;type=private". */
int hsm_key_uri(const struct hsm *h, const struct hsm_key *key, char *buf, size_t n);

/*
 * Parse an RFC 7512 URI's token, object and id attributes (percent-decoded;
 * other attributes and the query are ignored).  Missing ones are left empty
 * (*have_id 0).  object has HSM_LABEL_MAX + 1 bytes, token 33.
 */
int hsm_uri_parse(const char *uri, char *token, char *object, uint8_t id[HSM_ID_LEN], int *have_id);

/* Token label the session is on. */
const char *hsm_token_label(const struct hsm *h);

/* Number of times the module was re-initialised or a session reopened (metrics, tests). */
unsigned hsm_recoveries(const struct hsm *h);

#endif
