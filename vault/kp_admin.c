/*
 * kp_admin: the admin socket of the key process.  vaultctl connects to a
 * unix socket (mode 0600 in the state directory); the peer's credentials
 * must be root's or this process's own user.  Frames are a 4-byte
 * big-endian length and a JSON request of at most ADMIN_REQ_MAX bytes; the
 * answer is framed the same way.  Key operations run through admin.c;
 * shadow, account and policy operations are here because they touch the key
 * process's caches; certificate operations are in kp_cert.c.  Every
 * operation that changes something is audited before it runs (refused if
 * that record cannot be written) and after.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "admin.h"
#include "b64.h"
#include "jwk.h"
#include "jws.h"
#include "keyproc.h"
#include "log.h"
#include "shadows.h"
#include "sv_err.h"

typedef int (*kp_admin_fn)(struct kp *kp, const json_t *req, json_t **result);

static const char *
str(const json_t *req, const char *k)
{
	const json_t *v = json_object_get(req, k);

	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
	    ? json_string_value(v)
	    : NULL;
}

static int
need_name(const json_t *req, const char *k, const char *what, const char **out)
{
	if ((*out = str(req, k)) == NULL)
		return sv_seterr(SV_EINVAL, "argument \"%s\" missing or not a string", k);
	return sv_name_check(*out, what);
}

static int
op_shadow_add(struct kp *kp, const json_t *req, json_t **result)
{
	const json_t *ttl = json_object_get(req, "ttl");
	int64_t t = ttl ? json_integer_value(ttl) : SHADOW_TTL_DEFAULT;
	const char *name;
	char *token = NULL;
	int r;

	if ((r = need_name(req, "name", "shadow name", &name)) != 0)
		return r;
	if (ttl != NULL && !json_is_integer(ttl))
		return sv_seterr(SV_EINVAL, "ttl must be a number of seconds");
	if ((r = shadows_add(kp->st, name, t, &token)) != 0)
		return r;
	*result = json_pack("{s:s, s:s, s:I, s:b}", "name", name, "token", token, "ttl",
	    (json_int_t)t, "in_policy", pol_has_shadow(kp->pol, name));
	sodium_memzero(token, strlen(token));
	free(token);
	return *result ? 0 : SV_ENOMEM;
}

static int
op_shadow_list(struct kp *kp, const json_t *req, json_t **result)
{
	return shadows_list(kp->st, result);
}

static int
op_shadow_revoke(struct kp *kp, const json_t *req, json_t **result)
{
	const char *name;
	int r;

	if ((r = need_name(req, "name", "shadow name", &name)) != 0 ||
	    (r = shadows_revoke(kp->st, name)) != 0)
		return r;
	/* netproc refuses the certificates at once, and drops open connections */
	kp_push_peers(kp, NULL);
	*result = json_pack("{s:s, s:s}", "name", name, "state", "revoked");
	return *result ? 0 : SV_ENOMEM;
}

/* The account whose key is key_name, if any. */
static const char *
key_owner(struct kp *kp, const char *key_name)
{
	size_t i;

	if (kp_accounts_ready(kp) != 0)
		return NULL;
	for (i = 0; i < kp->naccts; i++)
		if (strcmp(kp->accts[i].a.key_name, key_name) == 0)
			return kp->accts[i].a.name;
	return NULL;
}

/*
 * A user key usable as an account key, and its public JWK: the current
 * version (version 0), or a given one that is current or pending (the new
 * key of a rollover signs the inner keyChange JWS).
 */
static int
account_key(struct kp *kp, const char *name, int version, struct ks_key *k, json_t **jwk, char *tp)
{
	EVP_PKEY *pk = NULL;
	int r;

	*jwk = NULL;
	if (strncmp(name, KS_INTERNAL_PREFIX, strlen(KS_INTERNAL_PREFIX)) == 0)
		return sv_seterr(SV_EDENIED, "the vault's own keys cannot be account keys");
	if ((r = ks_get(kp->st, name, version, k)) != 0)
		return r;
	if (strcmp(k->state, "current") != 0 && strcmp(k->state, "pending") != 0)
		return sv_seterr(SV_ESTATE, "version %d of key \"%s\" is %s: it signs nothing",
		    version, name, k->state);
	if (k->hk.type == HSM_ED25519)
		return sv_seterr(SV_EUNSUPP,
		    "ACME CAs do not accept Ed25519 account keys: use "
		    "ec-p256, ec-p384 or rsa-*");
	if ((r = hsm_key_public(kp->h, &k->hk, &pk)) == 0 && (r = jwk_from_pkey(pk, jwk)) == 0)
		r = jwk_thumbprint(*jwk, tp);
	EVP_PKEY_free(pk);
	return r;
}

static int
op_account_prepare(struct kp *kp, const json_t *req, json_t **result)
{
	char tp[JWK_THUMB_LEN + 1];
	const char *key, *owner;
	struct ks_key k;
	json_t *jwk;
	int r;

	if ((r = need_name(req, "key", "key name", &key)) != 0)
		return r;
	if ((owner = key_owner(kp, key)) != NULL)
		return sv_seterr(
		    SV_EEXIST, "key \"%s\" already belongs to account \"%s\"", key, owner);
	if ((r = account_key(kp, key, 0, &k, &jwk, tp)) != 0)
		return r;
	*result = json_pack("{s:s, s:o, s:s, s:s}", "key", key, "jwk", jwk, "thumbprint", tp, "alg",
	    hsm_keytype_alg(k.hk.type));
	return *result ? 0 : SV_ENOMEM;
}

/* Administrator signing for account registration and key rollover (never for shadows). */
static int
op_account_sign(struct kp *kp, const json_t *req, json_t **result)
{
	char tp[JWK_THUMB_LEN + 1];
	const char *key, *url = str(req, "url"), *nonce = str(req, "nonce"), *kid = str(req, "kid");
	const char *pb = str(req, "payload");
	const json_t *ver = json_object_get(req, "version");
	struct hsm_jws_ctx ctx;
	struct jws_signer s;
	struct ks_key k;
	json_t *jwk = NULL, *hdr;
	uint8_t *payload = NULL;
	size_t plen;
	int r;

	if ((r = need_name(req, "key", "key name", &key)) != 0)
		return r;
	if (url == NULL || strncmp(url, "https://", 8) != 0 || strlen(url) > 2048 || pb == NULL)
		return sv_seterr(SV_EINVAL, "account.sign needs an https url and a payload");
	if (ver != NULL && (!json_is_integer(ver) || json_integer_value(ver) < 1))
		return sv_seterr(SV_EINVAL, "version must be a positive integer");
	if ((r = account_key(kp, key, ver ? (int)json_integer_value(ver) : 0, &k, &jwk, tp)) != 0 ||
	    (r = b64u_decode(pb, strlen(pb), 64 * 1024, &payload, &plen)) != 0)
		goto out;
	hdr = json_pack("{s:s}", "url", url);
	if (nonce != NULL)
		json_object_set_new(hdr, "nonce", json_string(nonce));
	if (kid != NULL)
		json_object_set_new(hdr, "kid", json_string(kid));
	else
		json_object_set(hdr, "jwk", jwk);
	ctx.h = kp->h;
	ctx.key = &k.hk;
	hsm_jws_signer(&ctx, &s);
	r = jws_sign(&s, hdr, payload, plen, result);
	json_decref(hdr);
out:
	json_decref(jwk);
	free(payload);
	return r;
}

/* Rollover, step 1: a pending version of the account's key (made or found). */
static int
op_rollover_begin(struct kp *kp, const json_t *req, json_t **result)
{
	char tp[JWK_THUMB_LEN + 1];
	struct kp_account *a;
	struct ks_key pend;
	const char *name;
	json_t *jwk;
	int r;

	if ((r = need_name(req, "name", "account name", &name)) != 0)
		return r;
	if ((a = kp_account(kp, name)) == NULL)
		return SV_ENOTFOUND;
	if ((r = ks_stage(kp->st, kp->h, a->a.key_name, &pend)) != 0 ||
	    (r = account_key(kp, a->a.key_name, pend.version, &pend, &jwk, tp)) != 0)
		return r;
	*result = json_pack("{s:s, s:s, s:i, s:o, s:s, s:O, s:s, s:s}", "account", name, "key",
	    a->a.key_name, "version", pend.version, "jwk", jwk, "thumbprint", tp, "old_jwk", a->jwk,
	    "kid", a->a.kid, "directory_url", a->a.directory_url);
	return *result ? 0 : SV_ENOMEM;
}

/* Rollover, step 2 (after the CA accepted keyChange): the pending key becomes current. */
static int
op_rollover_commit(struct kp *kp, const json_t *req, json_t **result)
{
	const json_t *ver = json_object_get(req, "version");
	struct kp_account *a;
	const char *name;
	int r;

	if ((r = need_name(req, "name", "account name", &name)) != 0)
		return r;
	if (!json_is_integer(ver))
		return sv_seterr(SV_EINVAL, "version missing");
	if ((a = kp_account(kp, name)) == NULL)
		return SV_ENOTFOUND;
	if ((r = ks_promote(kp->st, a->a.key_name, (int)json_integer_value(ver))) != 0)
		return r;
	*result = json_pack("{s:s, s:s, s:I}", "account", name, "key", a->a.key_name, "version",
	    json_integer_value(ver));
	return *result ? 0 : SV_ENOMEM;
}

static int
op_account_add(struct kp *kp, const json_t *req, json_t **result)
{
	const char *name, *key, *dir = str(req, "directory_url"), *kid = str(req, "kid");
	const json_t *d = json_object_get(req, "directory");
	int r;

	if ((r = need_name(req, "name", "account name", &name)) != 0 ||
	    (r = need_name(req, "key", "key name", &key)) != 0)
		return r;
	if (key_owner(kp, key) != NULL)
		return sv_seterr(SV_EEXIST, "key \"%s\" already belongs to an account", key);
	if ((r = accounts_add(kp->st, name, dir, d, kid, key, str(req, "email"))) != 0)
		return r;
	kp_accounts_reset(kp);
	*result = json_pack("{s:s, s:s}", "name", name, "kid", kid);
	return *result ? 0 : SV_ENOMEM;
}

static int
op_account_show(struct kp *kp, const json_t *req, json_t **result)
{
	const char *name, *caa;
	struct kp_account *a;
	int r;

	if ((r = need_name(req, "name", "account name", &name)) != 0)
		return r;
	if ((a = kp_account(kp, name)) == NULL)
		return SV_ENOTFOUND;
	caa = json_string_value(json_array_get(
	    json_object_get(json_object_get(a->a.directory, "meta"), "caaIdentities"), 0));
	*result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:s?, s:s?}", "name", a->a.name,
	    "directory", a->a.directory_url, "kid", a->a.kid, "key", a->a.key_name, "alg", a->alg,
	    "jwk", a->jwk, "thumbprint", a->thumbprint, "caa_identity", caa, "email",
	    a->a.email[0] ? a->a.email : NULL);
	return *result ? 0 : SV_ENOMEM;
}

static int
op_account_list(struct kp *kp, const json_t *req, json_t **result)
{
	return accounts_list(kp->st, result);
}

static int
op_policy_reload(struct kp *kp, const json_t *req, json_t **result)
{
	int r;

	if ((r = kp_policy_reload(kp, "vaultctl policy reload")) != 0)
		return r;
	*result = json_pack("{s:s, s:I}", "policy_file", kp->cfg->policy_file, "shadows",
	    (json_int_t)pol_count(kp->pol));
	return *result ? 0 : SV_ENOMEM;
}

static int
op_status(struct kp *kp, const json_t *req, json_t **result)
{
	*result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s, s:I, s:i, s:s, s:s}",
	    "version", SV_VERSION, "config", kp->cfg->path, "state_dir", kp->cfg->state_dir,
	    "token", kp->cfg->token, "policy_file", kp->cfg->policy_file, "policy_shadows",
	    (json_int_t)pol_count(kp->pol), "schema", state_schema_version(kp->st), "audit_file",
	    kp->cfg->audit_file, "audit_seq", (json_int_t)audit_seq(kp->audit), "hsm_recoveries",
	    (int)hsm_recoveries(kp->h), "audit", kp->audit_down ? "failing" : "ok", "listen",
	    kp->cfg->listen);
	if (*result == NULL)
		return SV_ENOMEM;
	kp_ca_status(kp, *result);
	return 0;
}

static int
op_audit_rotate(struct kp *kp, const json_t *req, json_t **result)
{
	char archive[PATH_MAX];
	int r;

	if ((r = kp_audit_rotate(kp, archive, sizeof(archive))) != 0)
		return r;
	*result = json_pack("{s:s, s:s, s:I}", "file", kp->cfg->audit_file, "archive", archive,
	    "archive_seq", (json_int_t)audit_seq(kp->audit) - 1);
	return *result ? 0 : SV_ENOMEM;
}

/* `vaultctl key rotate vault.audit`: the key process signs the handover (kp_auditkey.c). */
static int
op_audit_key_rotate(struct kp *kp, const json_t *req, json_t **result)
{
	return kp_audit_key_rotate(kp, result);
}

/* `vaultctl tls renew`: the vault's TLS certificate from the shadow CA, at once (kp_tlscert.c). */
static int
op_tls_renew(struct kp *kp, const json_t *req, json_t **result)
{
	return kp_tlscert_renew(kp, 0, json_is_true(json_object_get(req, "new_key")), result);
}

/* `vaultctl key rotate vault.tls`: the key rotates with its certificate. */
static int
op_tls_key_rotate(struct kp *kp, const json_t *req, json_t **result)
{
	return sv_seterr(SV_EINVAL,
	    "%s rotates with the TLS certificate: vaultctl tls renew --new-key", KS_TLS_KEY);
}

/* `vaultctl key rotate vault.shadow-ca`: a new CA beside the old one (kp_ca.c). */
static int
op_ca_key_rotate(struct kp *kp, const json_t *req, json_t **result)
{
	return kp_ca_key_rotate(kp, result);
}

/* `vaultctl key rotate vault.bundle`: the key process makes the links (kp_bundle.c). */
static int
op_bundle_key_rotate(struct kp *kp, const json_t *req, json_t **result)
{
	return kp_bundle_key_rotate(kp, result);
}

static const struct {
	const char *op;
	kp_admin_fn fn;
	int mutates;
} ops[] = {
	{ "shadow.add", op_shadow_add, 1 },
	{ "shadow.list", op_shadow_list, 0 },
	{ "shadow.revoke", op_shadow_revoke, 1 },
	{ "account.prepare", op_account_prepare, 0 },
	{ "account.sign", op_account_sign, 1 },
	{ "account.add", op_account_add, 1 },
	{ "account.rollover.begin", op_rollover_begin, 1 },
	{ "account.rollover.commit", op_rollover_commit, 1 },
	{ "account.show", op_account_show, 0 },
	{ "account.list", op_account_list, 0 },
	{ "cert.csr", kp_cert_csr, 1 }, /* signs with a key: recorded like account.sign */
	{ "cert.import", kp_cert_import, 1 },
	{ "cert.list", kp_cert_list, 0 },
	{ "policy.reload", op_policy_reload, 1 },
	{ "audit.rotate", op_audit_rotate, 1 },
	{ "audit.key.rotate", op_audit_key_rotate, 1 },
	{ "bundle.key.rotate", op_bundle_key_rotate, 1 },
	{ "ca.key.rotate", op_ca_key_rotate, 1 },
	{ "ca.key.destroy", kp_ca_key_destroy, 1 },
	{ "tls.renew", op_tls_renew, 1 },
	{ "tls.key.rotate", op_tls_key_rotate, 0 },
	{ "tls.key.destroy", kp_tlscert_key_destroy, 1 },
	{ "status", op_status, 0 },
};

/* Copy into dst src's scalar members named in keep[0..n), in that order (dst may be NULL). */
static void
pick(json_t *dst, const json_t *src, const char *const *keep, size_t n)
{
	size_t i;

	for (i = 0; dst != NULL && json_is_object(src) && i < n; i++) {
		json_t *v = json_object_get(src, keep[i]);

		/* A key's type as key_type: "type" is the record's own (admin). */
		if (json_is_string(v) || json_is_integer(v) || json_is_boolean(v))
			json_object_set(
			    dst, strcmp(keep[i], "type") == 0 ? "key_type" : keep[i], v);
	}
}

/* What an audit record may say about a request: never tokens or payloads. */
static json_t *
summary(const char *op, const json_t *req)
{
	static const char *const keep[] = { "name", "key", "type", "version", "url", "kid",
		"directory_url", "new_key" };
	json_t *o = json_pack("{s:s}", "op", op);

	pick(o, req, keep, sizeof(keep) / sizeof(keep[0]));
	return o;
}

static int
find_op(const char *op, const json_t *req)
{
	/* The vault's own keys rotate and are destroyed here, not in admin.c (it refuses them). */
	static const struct {
		const char *op, *name, *as;
	} own[] = {
		{ "key.rotate", KS_AUDIT_KEY, "audit.key.rotate" },
		{ "key.rotate", KS_BUNDLE_KEY, "bundle.key.rotate" },
		{ "key.rotate", KS_CA_KEY, "ca.key.rotate" },
		{ "key.destroy", KS_CA_KEY, "ca.key.destroy" },
		{ "key.rotate", KS_TLS_KEY, "tls.key.rotate" },
		{ "key.destroy", KS_TLS_KEY, "tls.key.destroy" },
	};
	const char *name = str(req, "name");
	size_t i;

	for (i = 0; op != NULL && name != NULL && i < sizeof(own) / sizeof(own[0]); i++)
		if (strcmp(op, own[i].op) == 0 && strcmp(name, own[i].name) == 0) {
			op = own[i].as;
			break;
		}
	for (i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].op, op) == 0)
			return (int)i;
	return -1;
}

static int
mutating(const char *op, int i)
{
	if (i >= 0)
		return ops[i].mutates;
	return op != NULL &&
	    (strcmp(op, "key.create") == 0 || strcmp(op, "key.rotate") == 0 ||
		strcmp(op, "key.destroy") == 0);
}

/*
 * What a done action made, for its record: the version, key, serial and
 * thumbprint its answer names (never anything else of the answer: a new
 * shadow's enrollment token is in one).
 */
static json_t *
made(const json_t *resp)
{
	static const char *const keep[] = { "key", "version", "serial", "not_after", "thumbprint",
		"handover_seq" };
	json_t *o = json_object();

	pick(o, json_object_get(resp, "result"), keep, sizeof(keep) / sizeof(keep[0]));
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* resp: the done action's answer (made()), or NULL. */
static void
audit_admin(struct kp *kp, const char *op, const json_t *req, const char *decision, int r,
    uid_t uid, const json_t *resp)
{
	json_t *f = summary(op, req), *m = resp != NULL ? made(resp) : NULL;

	json_object_set_new(f, "uid", json_integer((json_int_t)uid));
	json_object_set_new(f, "decision", json_string(decision));
	if (r != 0)
		json_object_set_new(f, "reason", json_string(sv_errmsg(r)));
	if (m != NULL)
		json_object_set_new(f, "result", m);
	kp_audit(kp, "admin", f);
}

/* Run one admin request; always returns an answer object. */
static json_t *
execute(struct kp *kp, const json_t *req, uid_t uid)
{
	const char *op = str(req, "op");
	struct admin_ctx ac = { kp->cfg, kp->st, kp->h };
	json_t *result = NULL, *resp = NULL;
	int i = find_op(op, req), mutates = mutating(op, i), r;

	sv_clearerr();
	if (mutates) {
		/* Recorded before it runs: no unrecorded administration. */
		audit_admin(kp, op, req, "requested", 0, uid, NULL);
		if (kp_commit(kp) != 0)
			return json_pack("{s:b, s:i, s:s}", "ok", 0, "code", SV_EIO, "error",
			    "audit log unavailable: the vault refuses unrecorded administration");
	}
	/* Administration changes keys and records: those commits are fsynced. */
	state_durable(kp->st, 1);
	if (i >= 0) {
		r = ops[i].fn(kp, req, &result);
		resp = r == 0
		    ? json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null())
		    : json_pack("{s:b, s:i, s:s}", "ok", 0, "code", r, "error", sv_errmsg(r));
	} else {
		r = admin_exec(&ac, req, &resp);
		/* A user key may be the TLS key in the token: the handshake thread lets go of it.
		 */
		if (r == 0 && strcmp(op, "key.destroy") == 0)
			kp_tls_drop(kp, str(req, "name"),
			    (int)json_integer_value(json_object_get(req, "version")));
	}
	state_durable(kp->st, 0);
	if (mutates) {
		audit_admin(kp, op, req, r == 0 ? "done" : "failed", r, uid, r == 0 ? resp : NULL);
		kp_commit(kp);
		kp_accounts_reset(kp); /* keys or accounts may have changed */
		kp_shadows_reset(kp);  /* and shadows (revoked, re-added) */
	}
	return resp;
}

/* One admin connection: whose it is is fixed when it is accepted. */
struct admin_conn {
	struct kp *kp;
	uid_t uid;
};

#define ADMIN_IDLE_SECONDS 60
#define ADMIN_CONNS_MAX	   64 /* then they wait in the listen queue (lguard.h) */

static void
conn_close(struct bufferevent *bev, struct admin_conn *ac)
{
	if (ac->kp->admin_guard != NULL) /* NULL at shutdown */
		lguard_closed(ac->kp->admin_guard);
	bufferevent_free(bev);
	free(ac);
}

/* Frames on one admin connection: 4-byte big-endian length, then JSON. */
static void
on_admin_read(struct bufferevent *bev, void *arg)
{
	struct admin_conn *ac = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint32_t len;
	json_t *req, *resp;
	char *body, *out;

	while (evbuffer_get_length(in) >= 4) {
		evbuffer_copyout(in, &len, 4);
		len = ntohl(len);
		if (len == 0 || len > ADMIN_REQ_MAX) {
			sv_warn("admin: request of %u bytes refused", len);
			conn_close(bev, ac);
			return;
		}
		if (evbuffer_get_length(in) < 4 + (size_t)len)
			return;
		evbuffer_drain(in, 4);
		if ((body = malloc(len)) == NULL) {
			conn_close(bev, ac);
			return;
		}
		evbuffer_remove(in, body, len);
		req = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
		free(body);
		resp = json_is_object(req)
		    ? execute(ac->kp, req, ac->uid)
		    : json_pack("{s:b, s:i, s:s}", "ok", 0, "code", SV_EINVAL, "error",
			  "admin request is not a JSON object");
		json_decref(req);
		out = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
		json_decref(resp);
		if (out == NULL) {
			conn_close(bev, ac);
			return;
		}
		len = htonl((uint32_t)strlen(out));
		bufferevent_write(bev, &len, 4);
		bufferevent_write(bev, out, strlen(out));
		free(out);
	}
}

static void
on_admin_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_close(bev, arg);
}

static void
on_admin_accept(
    struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct kp *kp = arg;
	struct timeval idle = { ADMIN_IDLE_SECONDS, 0 };
	struct admin_conn *ac;
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	struct bufferevent *bev;

	/* Only root and the vault's own user administer it. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) != 0 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		sv_warn("admin: connection from uid %ld refused", crl ? (long)cr.uid : -1L);
		evutil_closesocket(fd);
		return;
	}
	if ((ac = calloc(1, sizeof(*ac))) == NULL ||
	    (bev = bufferevent_socket_new(kp->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(ac);
		evutil_closesocket(fd);
		return;
	}
	ac->kp = kp;
	ac->uid = cr.uid;
	lguard_opened(kp->admin_guard);
	bufferevent_setwatermark(bev, EV_READ, 0, ADMIN_REQ_MAX + 4);
	bufferevent_set_timeouts(bev, &idle, NULL);
	bufferevent_setcb(bev, on_admin_read, NULL, on_admin_event, ac);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int
kp_admin_listen(struct kp *kp)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(kp->cfg->admin_socket) >= sizeof(sun.sun_path))
		return sv_seterr(
		    SV_ECONFIG, "admin socket path too long: %s", kp->cfg->admin_socket);
	memcpy(sun.sun_path, kp->cfg->admin_socket, strlen(kp->cfg->admin_socket));
	if (lstat(kp->cfg->admin_socket, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return sv_seterr(
			    SV_ECONFIG, "%s exists and is not a socket", kp->cfg->admin_socket);
		unlink(kp->cfg->admin_socket);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return sv_seterr(SV_EIO, "admin socket: %s", strerror(errno));
	old = umask(077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 16) != 0) {
		umask(old);
		close(fd);
		return sv_seterr(
		    SV_EIO, "admin socket %s: %s", kp->cfg->admin_socket, strerror(errno));
	}
	umask(old);
	chmod(kp->cfg->admin_socket, 0600); /* owner-only; peers are checked anyway */
	kp->admin = evconnlistener_new(
	    kp->base, on_admin_accept, kp, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (kp->admin == NULL)
		return SV_ENOMEM;
	/* A failing accept() must not spin the key process (see lguard.h). */
	if ((r = lguard_new(kp->base, ADMIN_CONNS_MAX, "admin socket limit", NULL, NULL,
		 &kp->admin_guard)) != 0)
		return r;
	return lguard_add(kp->admin_guard, kp->admin);
}
