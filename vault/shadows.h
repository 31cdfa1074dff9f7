/*
 * shadows: the servers the vault serves, their one-time enrolment tokens
 * and the client certificates issued to them (tables in the state database).
 *
 * A shadow is "pending" from `vaultctl shadow add` until it enrols with its
 * token, "active" afterwards, "revoked" after `vaultctl shadow revoke`.
 * Tokens are random, single use, expire, and only their SHA-256 is stored.
 */
#ifndef SV_SHADOWS_H
#define SV_SHADOWS_H

#include <stdint.h>

#include <jansson.h>

#include "names.h"
#include "state.h"

#define SHADOW_TOKEN_BYTES 32
#define SHADOW_TOKEN_LEN   43 /* base64url of SHADOW_TOKEN_BYTES */
#define SHADOW_TTL_DEFAULT (24 * 3600)
#define SHADOW_TTL_MAX	   (30 * 24 * 3600)

/*
 * Create shadow name (or give a pending or revoked one a fresh start) and a
 * token valid for ttl seconds; *token is malloc'd (caller wipes and frees).
 * An active shadow gives SV_EEXIST: revoke it first.
 */
int shadows_add(struct state *st, const char *name, int64_t ttl, char **token);

/*
 * Check an enrolment token inside the caller's transaction: unused, not
 * expired, shadow pending.  Fills name (SV_NAME_MAX + 1).  Every refusal is
 * SV_EDENIED with the same detail (no oracle for the client); why says which
 * check failed, and name the token's shadow when the token is known, for the
 * audit log only.
 */
int shadows_token_check(struct state *st, const char *token, char *name, char *why, size_t whyn);

/*
 * Record a completed enrolment (same transaction as the check): token used,
 * shadow active with its X25519 box key, certificate recorded with the
 * version of the CA key that issued it.
 */
int shadows_enrolled(struct state *st, const char *token, const char *name, const uint8_t *box_pk,
    const char *serial, const char *fingerprint, int64_t not_after, int ca_version);

/* The expiry (seconds since the epoch), fingerprint (64 hex digits and a
 * NUL, so fprn >= 65) and, unless ca_version is NULL, the version of the
 * shadow CA key that issued the certificate with this serial. */
int shadows_cert_info(struct state *st, const char *serial, int64_t *not_after, char *fpr,
    size_t fprn, int *ca_version);

/*
 * Names of the active shadows holding a certificate that version ca_version
 * of the shadow CA key issued, not revoked and not expired at now: a JSON
 * array of strings (empty if none).  Caller json_decref()s *out.
 */
int shadows_on_ca(struct state *st, int ca_version, int64_t now, json_t **out);

/*
 * Record a certificate shadow name renewed itself with certificate replaces
 * (in the caller's transaction).  Certificates issued earlier to replace the
 * same one are revoked (*revoked: how many), so each certificate has at most
 * one valid successor.
 */
int shadows_renewed(struct state *st, const char *name, const char *replaces, const char *serial,
    const char *fingerprint, int64_t not_after, int ca_version, int *revoked);

/*
 * The certificate serial replaced, if it is still valid: revoke it (in the
 * caller's transaction) and copy its serial to old; old is "" if there was
 * none to revoke.
 */
int shadows_retire_replaced(struct state *st, const char *serial, char *old, size_t oldn);

/* Revoke a shadow and all its certificates.  SV_ENOTFOUND if unknown. */
int shadows_revoke(struct state *st, const char *name);

/*
 * Who holds the certificate with this serial: 0 with name, the
 * certificate's notAfter and its recorded fingerprint (fprn >= 65 bytes)
 * filled when the certificate and its shadow are active (expiry is the
 * caller's to judge); SV_EDENIED when revoked or unknown.
 */
int shadows_by_serial(
    struct state *st, const char *serial, char *name, int64_t *not_after, char *fpr, size_t fprn);

/* Serials of the revoked certificates not yet expired, as a JSON array of strings. */
int shadows_revoked(struct state *st, json_t **out);

/* [{name, state, created, certificates, revoked_at, cert_not_after, ca_version}]: the last
   two of its newest certificate not revoked (0 if none), ca_version the shadow CA key's
   version that issued it. */
int shadows_list(struct state *st, json_t **out);

/* The X25519 box key of an active shadow (32 bytes). */
int shadows_box_key(struct state *st, const char *name, uint8_t pk[32]);

#endif
