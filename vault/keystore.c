/*
 * keystore: versioned key metadata in SQLite over HSM key pairs (see
 * keystore.h).  Touches the "keys" table and, through hsm/, the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwk.h"
#include "keystore.h"
#include "sv_err.h"

static const char *const COLS = "name, version, type, state, exportable, created, label, id";

static int
row_to_key(sqlite3_stmt *s, struct ks_key *k)
{
	const void *id = sqlite3_column_blob(s, 7);

	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", (const char *)sqlite3_column_text(s, 0));
	k->version = sqlite3_column_int(s, 1);
	if (hsm_keytype_parse((const char *)sqlite3_column_text(s, 2), &k->hk.type) != 0)
		return sv_seterr(SV_EDB, "state database: key %s has an unknown type", k->name);
	snprintf(k->state, sizeof(k->state), "%s", (const char *)sqlite3_column_text(s, 3));
	k->exportable = sqlite3_column_int(s, 4);
	k->created = sqlite3_column_int64(s, 5);
	snprintf(k->hk.label, sizeof(k->hk.label), "%s", (const char *)sqlite3_column_text(s, 6));
	if (id == NULL || sqlite3_column_bytes(s, 7) != HSM_ID_LEN)
		return sv_seterr(SV_EDB, "state database: key %s has a bad id", k->name);
	memcpy(k->hk.id, id, HSM_ID_LEN);
	return 0;
}

int
ks_get(struct state *st, const char *name, int version, struct ks_key *out)
{
	char sql[160];
	sqlite3_stmt *s = NULL;
	int r;

	snprintf(sql, sizeof(sql), "SELECT %s FROM keys WHERE name = ?1 AND %s", COLS,
	    version == 0 ? "state = 'current'" : "version = ?2");
	if (sqlite3_prepare_v2(state_db(st), sql, -1, &s, NULL) != SQLITE_OK)
		return state_err(st, "reading key");
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (version != 0)
		sqlite3_bind_int(s, 2, version);
	if ((r = sqlite3_step(s)) == SQLITE_ROW)
		r = row_to_key(s, out);
	else if (r == SQLITE_DONE)
		r = version == 0
		    ? sv_seterr(SV_ENOTFOUND, "no key named \"%s\"", name)
		    : sv_seterr(SV_ENOTFOUND, "key \"%s\" has no version %d", name, version);
	else
		r = state_err(st, "reading key");
	sqlite3_finalize(s);
	return r;
}

int
ks_list(struct state *st, struct ks_key **out, size_t *n)
{
	char sql[128];
	sqlite3_stmt *s = NULL;
	struct ks_key *v = NULL, *nv;
	size_t cap = 0;
	int r = 0, rc;

	*out = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql), "SELECT %s FROM keys ORDER BY name, version", COLS);
	if (sqlite3_prepare_v2(state_db(st), sql, -1, &s, NULL) != SQLITE_OK)
		return state_err(st, "listing keys");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				r = SV_ENOMEM;
				break;
			}
			v = nv;
		}
		if ((r = row_to_key(s, &v[*n])) != 0)
			break;
		(*n)++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = state_err(st, "listing keys");
	sqlite3_finalize(s);
	if (r != 0) {
		free(v);
		*n = 0;
		return r;
	}
	*out = v;
	return 0;
}

static int
insert_row(struct state *st, const struct ks_key *k)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	if (sqlite3_prepare_v2(state_db(st),
		"INSERT INTO keys (name, version, type, state, exportable, created, label, id) "
		"VALUES (?1, ?2, ?3, ?8, ?4, ?5, ?6, ?7)",
		-1, &s, NULL) != SQLITE_OK)
		return state_err(st, "adding key");
	sqlite3_bind_text(s, 8, k->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 1, k->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, k->version);
	sqlite3_bind_text(s, 3, hsm_keytype_name(k->hk.type), -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, k->exportable);
	sqlite3_bind_int64(s, 5, k->created);
	sqlite3_bind_text(s, 6, k->hk.label, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, k->hk.id, HSM_ID_LEN, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		r = state_err(st, "adding key");
	sqlite3_finalize(s);
	return r;
}

/* Make the token key NAME@vVERSION and describe it in *k (no row yet). */
static int
make_version(struct hsm *h, const char *name, int version, enum hsm_keytype type, int exportable,
    struct ks_key *k)
{
	char label[HSM_LABEL_MAX + 1];
	int r;

	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(label, sizeof(label), "%s@v%d", name, version);
	k->version = version;
	k->exportable = exportable;
	k->created = (int64_t)time(NULL);
	snprintf(k->state, sizeof(k->state), "current");
	if ((r = hsm_key_create(h, type, label, exportable, &k->hk)) != 0)
		return r;
	return 0;
}

static int
max_version(struct state *st, const char *name, int *v)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	*v = 0;
	if (sqlite3_prepare_v2(state_db(st), "SELECT MAX(version) FROM keys WHERE name = ?1", -1,
		&s, NULL) != SQLITE_OK)
		return state_err(st, "reading key versions");
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		*v = sqlite3_column_int(s, 0);
	else
		r = state_err(st, "reading key versions");
	sqlite3_finalize(s);
	return r;
}

int
ks_create(struct state *st, struct hsm *h, const char *name, enum hsm_keytype type, int exportable,
    struct ks_key *out)
{
	int r, v;

	if ((r = sv_name_check(name, "key name")) != 0)
		return r;
	if ((r = max_version(st, name, &v)) != 0)
		return r;
	if (v != 0)
		return sv_seterr(
		    SV_EEXIST, "a key named \"%s\" already exists (use key rotate)", name);
	if ((r = make_version(h, name, 1, type, exportable, out)) != 0)
		return r;
	if ((r = insert_row(st, out)) != 0)
		hsm_key_destroy(h, &out->hk); /* keep the token free of orphans */
	return r;
}

static int
set_state(struct state *st, const char *name, int version, const char *state)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	if (sqlite3_prepare_v2(state_db(st),
		"UPDATE keys SET state = ?3 WHERE name = ?1 AND version = ?2", -1, &s,
		NULL) != SQLITE_OK)
		return state_err(st, "updating key");
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, version);
	sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE || sqlite3_changes(state_db(st)) != 1)
		r = state_err(st, "updating key");
	sqlite3_finalize(s);
	return r;
}

int
ks_rotate(struct state *st, struct hsm *h, const char *name, struct ks_key *out)
{
	struct ks_key cur, pend;
	int r, v;

	if (ks_pending(st, name, &pend) == 0)
		return sv_seterr(SV_ESTATE,
		    "key \"%s\" has a pending version %d from an unfinished "
		    "account rollover: run vaultctl account rollover again to finish it",
		    name, pend.version);
	if ((r = ks_get(st, name, 0, &cur)) != 0 || (r = max_version(st, name, &v)) != 0)
		return r;
	if ((r = make_version(h, name, v + 1, cur.hk.type, cur.exportable, out)) != 0)
		return r;
	/* Retire the old and insert the new in one transaction: never zero or two current. */
	if ((r = state_begin(st)) != 0)
		goto fail;
	if ((r = set_state(st, name, cur.version, "retired")) != 0 ||
	    (r = insert_row(st, out)) != 0) {
		state_rollback(st);
		goto fail;
	}
	if ((r = state_commit(st)) != 0)
		goto fail;
	return 0;
fail:
	hsm_key_destroy(h, &out->hk);
	return r;
}

int
ks_destroy(struct state *st, struct hsm *h, const char *name, int version)
{
	struct ks_key k;
	int r;

	if ((r = ks_get(st, name, version, &k)) != 0)
		return r;
	if (strcmp(k.state, "current") == 0)
		return sv_seterr(SV_ESTATE,
		    "version %d of key \"%s\" is current: rotate the key "
		    "first, then destroy the retired version",
		    version, name);
	if (strcmp(k.state, "destroyed") == 0)
		return sv_seterr(
		    SV_ESTATE, "version %d of key \"%s\" is already destroyed", version, name);
	r = hsm_key_destroy(h, &k.hk);
	if (r != 0 && r != SV_ENOTFOUND) /* already gone from the token: just record it */
		return r;
	return set_state(st, name, version, "destroyed");
}

static int
iso_time(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return sv_seterr(SV_EINTERNAL, "bad timestamp");
	return 0;
}

static int
add_public(struct hsm *h, struct ks_key *k, json_t *o)
{
	EVP_PKEY *pk = NULL;
	json_t *jwk = NULL;
	char tp[JWK_THUMB_LEN + 1];
	int r;

	if ((r = hsm_key_public(h, &k->hk, &pk)) != 0 || (r = jwk_from_pkey(pk, &jwk)) != 0 ||
	    (r = jwk_thumbprint(jwk, tp)) != 0)
		goto out;
	if (json_object_set(o, "jwk", jwk) != 0 ||
	    json_object_set_new(o, "thumbprint", json_string(tp)) != 0)
		r = SV_ENOMEM;
out:
	json_decref(jwk);
	EVP_PKEY_free(pk);
	return r;
}

int
ks_json(struct hsm *h, struct ks_key *k, int with_public, json_t **out)
{
	char created[32], uri[HSM_URI_MAX] = "";
	json_t *o;
	int r;

	*out = NULL;
	if ((r = iso_time(k->created, created, sizeof(created))) != 0)
		return r;
	if (h != NULL && (r = hsm_key_uri(h, &k->hk, uri, sizeof(uri))) != 0)
		return r;
	o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:s, s:s}", "name", k->name, "version",
	    k->version, "type", hsm_keytype_name(k->hk.type), "alg", hsm_keytype_alg(k->hk.type),
	    "state", k->state, "exportable", k->exportable, "created", created, "uri", uri);
	if (o == NULL)
		return SV_ENOMEM;
	if (with_public && strcmp(k->state, "destroyed") != 0 && (r = add_public(h, k, o)) != 0) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

int
ks_pending(struct state *st, const char *name, struct ks_key *out)
{
	sqlite3_stmt *s;
	char sql[128];
	int r;

	snprintf(
	    sql, sizeof(sql), "SELECT %s FROM keys WHERE name = ?1 AND state = 'pending'", COLS);
	if ((r = state_prep(st, &s, sql, "t", name)) != 0)
		return r;
	r = sqlite3_step(s) == SQLITE_ROW
	    ? row_to_key(s, out)
	    : sv_seterr(SV_ENOTFOUND, "key \"%s\" has no pending version", name);
	sqlite3_finalize(s);
	return r;
}

int
ks_stage(struct state *st, struct hsm *h, const char *name, struct ks_key *out)
{
	struct ks_key cur;
	int r, v;

	if ((r = ks_pending(st, name, out)) != SV_ENOTFOUND)
		return r; /* an interrupted rollover left one: reuse it */
	if ((r = ks_get(st, name, 0, &cur)) != 0 || (r = max_version(st, name, &v)) != 0)
		return r;
	if ((r = make_version(h, name, v + 1, cur.hk.type, cur.exportable, out)) != 0)
		return r;
	snprintf(out->state, sizeof(out->state), "pending");
	if ((r = insert_row(st, out)) != 0)
		hsm_key_destroy(h, &out->hk);
	return r;
}

int
ks_promote(struct state *st, const char *name, int version)
{
	struct ks_key cur, pend;
	int r;

	if ((r = ks_pending(st, name, &pend)) != 0)
		return r;
	if (pend.version != version)
		return sv_seterr(SV_ESTATE, "key \"%s\": version %d is not the pending one (%d is)",
		    name, version, pend.version);
	if ((r = ks_get(st, name, 0, &cur)) != 0 || (r = state_begin(st)) != 0)
		return r;
	if ((r = set_state(st, name, cur.version, "retired")) != 0 ||
	    (r = set_state(st, name, version, "current")) != 0) {
		state_rollback(st);
		return r;
	}
	return state_commit(st);
}

int
ks_uri_parse(const char *uri, struct ks_uri *out)
{
	char tok[33], obj[HSM_LABEL_MAX + 1], *at, *end;
	long v = 0; /* NAME: its current version */
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = hsm_uri_parse(uri, tok, obj, out->id, &out->have_id)) != 0)
		return r;
	if ((at = strrchr(obj, '@')) != NULL) {
		if (at[1] != 'v' || (v = strtol(at + 2, &end, 10)) < 1 || *end != '\0' ||
		    v > 1000000)
			return sv_seterr(SV_EINVAL,
			    "%s: the object attribute must be a vault key name, NAME (its current "
			    "version) or NAME@vN",
			    uri);
		*at = '\0';
	}
	if ((r = sv_name_check(obj, "key name")) != 0)
		return r;
	memcpy(out->name, obj, strlen(obj) + 1); /* sv_name_check: at most SV_NAME_MAX */
	out->version = (int)v;
	return 0;
}

int
ks_from_uri(struct state *st, const char *uri, struct ks_key *out, char *name)
{
	struct ks_uri u;
	int r;

	name[0] = '\0';
	if ((r = ks_uri_parse(uri, &u)) != 0)
		return r;
	memcpy(name, u.name, sizeof(u.name));
	if ((r = ks_get(st, u.name, u.version, out)) != 0)
		return r;
	if (u.have_id && memcmp(u.id, out->hk.id, HSM_ID_LEN) != 0)
		return sv_seterr(SV_EINVAL, "%s: the id does not match key %s version %d", uri,
		    u.name, out->version);
	return 0;
}
