/*
 * shadows: enrolment tokens, shadow states and certificates in SQLite (see
 * shadows.h).  Touches the shadows, enroll_tokens and shadow_certs tables.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "b64.h"
#include "shadows.h"
#include "sv_err.h"

static void
token_hash(const char *token, uint8_t h[32])
{
	crypto_hash_sha256(h, (const uint8_t *)token, strlen(token));
}

static int
shadow_state(struct state *st, const char *name, char *state, size_t n)
{
	sqlite3_stmt *s;
	int r, rc;

	if ((r = state_prep(st, &s, "SELECT state FROM shadows WHERE name = ?1", "t", name)) != 0)
		return r;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(state, n, "%s", (const char *)sqlite3_column_text(s, 0));
	r = rc == SQLITE_ROW	? 0
	    : rc == SQLITE_DONE ? SV_ENOTFOUND
				: state_err(st, "reading shadow");
	sqlite3_finalize(s);
	return r;
}

static int
add_tx(struct state *st, const char *name, int64_t ttl, const uint8_t h[32])
{
	char cur[16];
	int64_t now = (int64_t)time(NULL);
	int r;

	r = shadow_state(st, name, cur, sizeof(cur));
	if (r == 0 && strcmp(cur, "active") == 0)
		return sv_seterr(SV_EEXIST,
		    "shadow \"%s\" is enrolled and active: revoke it first "
		    "to enrol it again",
		    name);
	if (r == SV_ENOTFOUND)
		r = state_exec(st, "adding shadow", NULL,
		    "INSERT INTO shadows (name, state, created) VALUES (?1, 'pending', ?2)", "ti",
		    name, now);
	else if (r == 0)
		r = state_exec(st, "resetting shadow", NULL,
		    "UPDATE shadows SET state = 'pending', revoked_at = NULL WHERE name = ?1", "t",
		    name);
	if (r != 0)
		return r;
	/* A new token replaces any unused one: one live token per shadow. */
	if ((r = state_exec(st, "dropping old tokens", NULL,
		 "DELETE FROM enroll_tokens WHERE shadow = ?1 AND used IS NULL", "t", name)) != 0)
		return r;
	return state_exec(st, "adding token", NULL,
	    "INSERT INTO enroll_tokens (hash, shadow, expires) VALUES (?1, ?2, ?3)", "bti", h, name,
	    now + ttl);
}

int
shadows_add(struct state *st, const char *name, int64_t ttl, char **token)
{
	uint8_t rnd[SHADOW_TOKEN_BYTES], h[32];
	int r;

	*token = NULL;
	if ((r = sv_name_check(name, "shadow name")) != 0)
		return r;
	if (ttl < 60 || ttl > SHADOW_TTL_MAX)
		return sv_seterr(SV_EINVAL, "token lifetime must be between 1 minute and 30 days");
	randombytes_buf(rnd, sizeof(rnd));
	r = b64u_encode(rnd, sizeof(rnd), token);
	sodium_memzero(rnd, sizeof(rnd));
	if (r != 0)
		return r;
	token_hash(*token, h);
	if ((r = state_begin(st)) != 0)
		goto fail;
	if ((r = add_tx(st, name, ttl, h)) != 0) {
		state_rollback(st);
		goto fail;
	}
	if ((r = state_commit(st)) == 0)
		return 0;
fail:
	sodium_memzero(*token, strlen(*token));
	free(*token);
	*token = NULL;
	return r;
}

int
shadows_token_check(struct state *st, const char *token, char *name, char *why, size_t whyn)
{
	sqlite3_stmt *s;
	uint8_t h[32];
	int r;

	name[0] = '\0';
	snprintf(why, whyn, "unknown token");
	if (strlen(token) != SHADOW_TOKEN_LEN)
		return sv_seterr(SV_EDENIED, "enrolment token invalid, used or expired");
	token_hash(token, h);
	if ((r = state_prep(st, &s,
		 "SELECT t.shadow, t.used IS NOT NULL, t.expires <= ?2, s.state "
		 "FROM enroll_tokens t JOIN shadows s ON s.name = t.shadow WHERE t.hash = ?1",
		 "bi", h, (int64_t)time(NULL))) != 0)
		return r;
	r = SV_EDENIED;
	if (sqlite3_step(s) == SQLITE_ROW) {
		/* A token of this shadow: which check failed goes to the audit log only. */
		snprintf(name, SV_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(s, 0));
		if (sqlite3_column_int(s, 1))
			snprintf(why, whyn, "token already used");
		else if (sqlite3_column_int(s, 2))
			snprintf(why, whyn, "token expired");
		else if (strcmp((const char *)sqlite3_column_text(s, 3), "pending") != 0)
			snprintf(why, whyn, "shadow is %s, not pending",
			    (const char *)sqlite3_column_text(s, 3));
		else
			r = 0;
	}
	sqlite3_finalize(s);
	return r == 0 ? 0 : sv_seterr(SV_EDENIED, "enrolment token invalid, used or expired");
}

int
shadows_enrolled(struct state *st, const char *token, const char *name, const uint8_t *box_pk,
    const char *serial, const char *fingerprint, int64_t not_after, int ca_version)
{
	uint8_t h[32];
	int r, n;

	token_hash(token, h);
	if ((r = state_exec(st, "using token", &n,
		 "UPDATE enroll_tokens SET used = ?2 WHERE hash = ?1 AND used IS NULL", "bi", h,
		 (int64_t)time(NULL))) != 0)
		return r;
	if (n != 1)
		return sv_seterr(SV_EDENIED, "enrolment token invalid, used or expired");
	if ((r = state_exec(st, "activating shadow", NULL,
		 "UPDATE shadows SET state = 'active', box_pk = ?2 WHERE name = ?1", "tb", name,
		 box_pk)) != 0)
		return r;
	return state_exec(st, "recording certificate", NULL,
	    "INSERT INTO shadow_certs (serial, shadow, fingerprint, not_after, ca_version) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
	    "tttii", serial, name, fingerprint, not_after, (int64_t)ca_version);
}

int
shadows_cert_info(struct state *st, const char *serial, int64_t *not_after, char *fpr, size_t fprn,
    int *ca_version)
{
	sqlite3_stmt *s;
	int r;

	*not_after = 0;
	fpr[0] = '\0';
	if (ca_version != NULL)
		*ca_version = 0;
	if ((r = state_prep(st, &s,
		 "SELECT not_after, fingerprint, ca_version FROM shadow_certs WHERE serial = ?1",
		 "t", serial)) != 0)
		return r;
	if ((r = sqlite3_step(s)) == SQLITE_ROW) {
		*not_after = sqlite3_column_int64(s, 0);
		if (sqlite3_column_text(s, 1) != NULL)
			snprintf(fpr, fprn, "%s", (const char *)sqlite3_column_text(s, 1));
		if (ca_version != NULL)
			*ca_version = sqlite3_column_int(s, 2);
		r = 0;
	} else {
		r = r == SQLITE_DONE ? sv_seterr(SV_ENOTFOUND, "no certificate with that serial")
				     : state_err(st, "reading a certificate");
	}
	sqlite3_finalize(s);
	return r;
}

int
shadows_on_ca(struct state *st, int ca_version, int64_t now, json_t **out)
{
	sqlite3_stmt *s;
	json_t *a;
	int r;

	*out = NULL;
	if ((r = state_prep(st, &s,
		 "SELECT DISTINCT c.shadow FROM shadow_certs c JOIN shadows s ON s.name = "
		 "c.shadow WHERE s.state = 'active' AND c.revoked = 0 AND c.not_after > ?2 AND "
		 "c.ca_version = ?1 ORDER BY c.shadow",
		 "ii", (int64_t)ca_version, now)) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		sqlite3_finalize(s);
		return SV_ENOMEM;
	}
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(a, json_string((const char *)sqlite3_column_text(s, 0)));
	sqlite3_finalize(s);
	if (r != SQLITE_DONE) {
		json_decref(a);
		return state_err(st, "listing the certificates of a CA version");
	}
	*out = a;
	return 0;
}

int
shadows_renewed(struct state *st, const char *name, const char *replaces, const char *serial,
    const char *fingerprint, int64_t not_after, int ca_version, int *revoked)
{
	int r;

	if ((r = state_exec(st, "revoking earlier renewals", revoked,
		 "UPDATE shadow_certs SET revoked = 1 WHERE replaces = ?1 AND revoked = 0", "t",
		 replaces)) != 0)
		return r;
	return state_exec(st, "recording certificate", NULL,
	    "INSERT INTO shadow_certs (serial, shadow, fingerprint, not_after, replaces, "
	    "ca_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	    "tttiti", serial, name, fingerprint, not_after, replaces, (int64_t)ca_version);
}

int
shadows_retire_replaced(struct state *st, const char *serial, char *old, size_t oldn)
{
	sqlite3_stmt *s;
	int r, n = 0;

	old[0] = '\0';
	if ((r = state_prep(
		 st, &s, "SELECT replaces FROM shadow_certs WHERE serial = ?1", "t", serial)) != 0)
		return r;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		snprintf(old, oldn, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (old[0] != '\0' &&
	    (r = state_exec(st, "retiring a replaced certificate", &n,
		 "UPDATE shadow_certs SET revoked = 1 WHERE serial = ?1 AND revoked = 0", "t",
		 old)) != 0)
		return r;
	if (n == 0)
		old[0] = '\0';
	return 0;
}

int
shadows_revoke(struct state *st, const char *name)
{
	int r, n;

	if ((r = state_begin(st)) != 0)
		return r;
	if ((r = state_exec(st, "revoking shadow", &n,
		 "UPDATE shadows SET state = 'revoked', revoked_at = ?2 WHERE name = ?1", "ti",
		 name, (int64_t)time(NULL))) != 0 ||
	    (n == 0 && (r = sv_seterr(SV_ENOTFOUND, "no shadow named \"%s\"", name)) != 0) ||
	    (r = state_exec(st, "revoking certificates", NULL,
		 "UPDATE shadow_certs SET revoked = 1 WHERE shadow = ?1", "t", name)) != 0 ||
	    (r = state_exec(st, "dropping tokens", NULL,
		 "DELETE FROM enroll_tokens WHERE shadow = ?1 AND used IS NULL", "t", name)) != 0) {
		state_rollback(st);
		return r;
	}
	return state_commit(st);
}

int
shadows_by_serial(
    struct state *st, const char *serial, char *name, int64_t *not_after, char *fpr, size_t fprn)
{
	sqlite3_stmt *s;
	int r, ok = 0;

	name[0] = '\0';
	fpr[0] = '\0';
	*not_after = 0;
	if ((r = state_prep(st, &s,
		 "SELECT c.shadow, c.not_after, c.fingerprint FROM shadow_certs c JOIN shadows s "
		 "ON s.name = c.shadow WHERE c.serial = ?1 AND c.revoked = 0 AND s.state = "
		 "'active'",
		 "t", serial)) != 0)
		return r;
	if (sqlite3_step(s) == SQLITE_ROW) {
		snprintf(name, SV_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(s, 0));
		*not_after = sqlite3_column_int64(s, 1);
		snprintf(fpr, fprn, "%s", (const char *)sqlite3_column_text(s, 2));
		ok = 1;
	}
	sqlite3_finalize(s);
	return ok ? 0 : sv_seterr(SV_EDENIED, "client certificate revoked or unknown");
}

int
shadows_revoked(struct state *st, json_t **out)
{
	sqlite3_stmt *s;
	json_t *a;
	int r;

	*out = NULL;
	/* Expired ones need no listing: the handshake refuses them anyway (and the key process). */
	if ((r = state_prep(st, &s,
		 "SELECT serial FROM shadow_certs WHERE revoked = 1 AND not_after > ?1", "i",
		 (int64_t)time(NULL))) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		sqlite3_finalize(s);
		return SV_ENOMEM;
	}
	while (sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(a, json_string((const char *)sqlite3_column_text(s, 0)));
	sqlite3_finalize(s);
	*out = a;
	return 0;
}

int
shadows_list(struct state *st, json_t **out)
{
	sqlite3_stmt *s;
	json_t *a;
	int r;

	*out = NULL;
	if ((r = state_prep(st, &s,
		 "SELECT s.name, s.state, s.created, s.revoked_at, "
		 "(SELECT COUNT(*) FROM shadow_certs c WHERE c.shadow = s.name), "
		 "(SELECT MAX(not_after) FROM shadow_certs c WHERE c.shadow = s.name AND c.revoked "
		 "= 0), "
		 "(SELECT ca_version FROM shadow_certs c WHERE c.shadow = s.name AND c.revoked = 0 "
		 "ORDER BY not_after DESC LIMIT 1) "
		 "FROM shadows s ORDER BY s.name",
		 "")) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		sqlite3_finalize(s);
		return SV_ENOMEM;
	}
	while (sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(a,
		    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "name",
			sqlite3_column_text(s, 0), "state", sqlite3_column_text(s, 1), "created",
			(json_int_t)sqlite3_column_int64(s, 2), "revoked_at",
			(json_int_t)sqlite3_column_int64(s, 3), "certificates",
			(json_int_t)sqlite3_column_int64(s, 4), "cert_not_after",
			(json_int_t)sqlite3_column_int64(s, 5), "ca_version",
			(json_int_t)sqlite3_column_int64(s, 6)));
	sqlite3_finalize(s);
	*out = a;
	return 0;
}

int
shadows_box_key(struct state *st, const char *name, uint8_t pk[32])
{
	sqlite3_stmt *s;
	int r, ok = 0;

	if ((r = state_prep(st, &s,
		 "SELECT box_pk FROM shadows WHERE name = ?1 AND state = 'active'", "t", name)) !=
	    0)
		return r;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
		memcpy(pk, sqlite3_column_blob(s, 0), 32);
		ok = 1;
	}
	sqlite3_finalize(s);
	return ok ? 0 : sv_seterr(SV_ENOTFOUND, "no active shadow named \"%s\"", name);
}
