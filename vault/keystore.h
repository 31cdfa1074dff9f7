/*
 * keystore: named, versioned keys.  Key material lives in the HSM (hsm/);
 * the state database holds what the HSM does not: name, version, state
 * (current / retired / destroyed), creation time, the CKA_ID that links the
 * two.  Exactly one version of a name is current.
 *
 * Crash safety: the HSM key is created before its row is written, so a crash
 * leaves at most an unreferenced token key (its label "NAME@vN" says whose);
 * destroy removes the token objects before marking the row, and destroying a
 * version whose token objects are already gone just marks the row.
 */
#ifndef SV_KEYSTORE_H
#define SV_KEYSTORE_H

#include <stdint.h>

#include <jansson.h>

#include "hsm.h"
#include "names.h"
#include "state.h"

/* Names under this prefix belong to the vault itself (audit, shadow CA, bundles). */
#define KS_INTERNAL_PREFIX "vault."
#define KS_AUDIT_KEY	   "vault.audit"     /* Ed25519: signs audit checkpoints */
#define KS_CA_KEY	   "vault.shadow-ca" /* EC P-256: the shadow CA */
#define KS_BUNDLE_KEY	   "vault.bundle"    /* Ed25519: signs sealed key bundles */
#define KS_TLS_KEY	   "vault.tls" /* EC: the TLS server key, when tls.key is in the token */

struct ks_key {
	char name[SV_NAME_MAX + 1];
	int version;
	char state[12]; /* "current", "retired", "destroyed", "pending" */
	int exportable;
	int64_t created; /* unix seconds */
	struct hsm_key hk;
};

/* Create version 1 of a new key; SV_EEXIST if the name is taken. */
int ks_create(struct state *st, struct hsm *h, const char *name, enum hsm_keytype type,
    int exportable, struct ks_key *out);

/* Look up a version (0: the current one); SV_ENOTFOUND if absent. */
int ks_get(struct state *st, const char *name, int version, struct ks_key *out);

/* Every version of every key, ordered by name and version.  Caller free()s *out. */
int ks_list(struct state *st, struct ks_key **out, size_t *n);

/* Make a new version (same type and exportability) current; the old one is retired. */
int ks_rotate(struct state *st, struct hsm *h, const char *name, struct ks_key *out);

/*
 * Account key rollover, in two steps around the CA's keyChange:
 * ks_stage() makes (or finds, after an interrupted rollover) a "pending"
 * version of the same type that nothing signs with yet; ks_promote() makes
 * it current and retires the old one, in one transaction.
 */
int ks_stage(struct state *st, struct hsm *h, const char *name, struct ks_key *out);
int ks_promote(struct state *st, const char *name, int version);

/* The pending version, if any (SV_ENOTFOUND otherwise). */
int ks_pending(struct state *st, const char *name, struct ks_key *out);

/*
 * The key a pkcs11: URI names in the vault's token: its object attribute is
 * a label "NAME@vN", or "NAME" for the current version of NAME (an id
 * attribute, if present, must match).  SV_ENOTFOUND if there is none; *name
 * gets NAME (SV_NAME_MAX + 1) even then, when the URI is well formed.
 */
int ks_from_uri(struct state *st, const char *uri, struct ks_key *out, char *name);

/* What such a URI names, without looking it up: version 0 when it names the key alone. */
struct ks_uri {
	char name[SV_NAME_MAX + 1];
	int version;
	int have_id;
	uint8_t id[HSM_ID_LEN];
};
int ks_uri_parse(const char *uri, struct ks_uri *out);

/* Destroy a retired version's token objects and mark it destroyed (never the current one). */
int ks_destroy(struct state *st, struct hsm *h, const char *name, int version);

/*
 * Describe a key as JSON {name, version, type, alg, state, exportable,
 * created, uri} plus {jwk, thumbprint} when with_public (needs the HSM).
 * Caller json_decref()s.
 */
int ks_json(struct hsm *h, struct ks_key *k, int with_public, json_t **out);

#endif
