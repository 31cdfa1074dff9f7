/*
 * kp_bundle: sealed key bundles in the key process (DESIGN section 4).  A
 * shadow asks GET /v1/bundles/{name}; netproc forwards the serial of its
 * verified client certificate and the name (IPC_BUNDLE), and this process
 * decides everything again itself: the shadow holding that serial, a token
 * from its rate limit (the bucket its signatures use), the policy
 * (pol_eval_bundle), the newest certificate of the name, and that
 * certificate's key version, which must be exportable and not destroyed.
 * Then it wraps the key out of the token (PKCS#8 in guarded memory), packs
 * it with the chain, signs the bundle with the vault's Ed25519 bundle key
 * and seals it to the shadow's X25519 box key (common/bundle.c), and wipes
 * the key.  Every decision is an audit record (type and op "bundle"; names,
 * sequence, id, key version, never key material), committed before the
 * answer leaves (keyproc.c).  Also makes sure the bundle key exists at
 * start.  Touches the token, the certs, keys and shadows tables (reading)
 * and the audit queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "b64.h"
#include "bundle.h"
#include "certs.h"
#include "keyproc.h"
#include "log.h"
#include "shadows.h"
#include "sv_err.h"

/* A bundle request and what was found for it (borrowed strings from the request). */
struct breq {
	const char *serial, *fpr, *name;
	char shadow[SV_NAME_MAX + 1];
	struct cert_rec c; /* sequence 0: none found yet */
	char id[33];	   /* "": no bundle made */
};

/*
 * The links from each version of the bundle key to the next, up to the
 * current one (at most BUNDLE_CHAIN_MAX: the newest), each signed in the
 * token by the older version (retired versions stay: the vault's own keys
 * cannot be destroyed).  Ed25519 signatures are deterministic, so the links
 * are the same at every start; nothing about them is stored.
 */
static int
make_chain(struct kp *kp, const struct ks_key *cur, json_t **out)
{
	uint8_t from[BUNDLE_PK_LEN], to[BUNDLE_PK_LEN];
	struct ks_key a, b;
	struct kp_ed_signer ls = { kp, &a.hk };
	json_t *chain, *l;
	int v, r = 0;

	*out = NULL;
	if (cur->version < 2)
		return 0;
	if ((chain = json_array()) == NULL)
		return SV_ENOMEM;
	v = cur->version - BUNDLE_CHAIN_MAX > 1 ? cur->version - BUNDLE_CHAIN_MAX : 1;
	if ((r = ks_get(kp->st, KS_BUNDLE_KEY, v, &a)) != 0 ||
	    (r = hsm_key_ed25519_raw(kp->h, &a.hk, from)) != 0)
		goto out;
	for (v++; v <= cur->version; v++) {
		if ((r = ks_get(kp->st, KS_BUNDLE_KEY, v, &b)) != 0 ||
		    (r = hsm_key_ed25519_raw(kp->h, &b.hk, to)) != 0 ||
		    (r = bundle_link_make(from, to, kp_ed25519_sign, &ls, &l)) != 0)
			goto out;
		if (json_array_append_new(chain, l) != 0) {
			r = SV_ENOMEM;
			goto out;
		}
		a = b;
		memcpy(from, to, BUNDLE_PK_LEN);
	}
out:
	if (r != 0) {
		json_decref(chain);
		return sv_preferr(r, "bundle key %s: the link to version %d", KS_BUNDLE_KEY, v);
	}
	*out = chain;
	return 0;
}

int
kp_bundle_init(struct kp *kp)
{
	uint8_t raw[BUNDLE_PK_LEN];
	json_t *chain = NULL;
	struct ks_key k;
	char *b = NULL;
	int r;

	if ((r = ks_get(kp->st, KS_BUNDLE_KEY, 0, &k)) == SV_ENOTFOUND) {
		/* `vaultctl init` of a version before bundles did not make it: make it now. */
		state_durable(kp->st, 1);
		r = ks_create(kp->st, kp->h, KS_BUNDLE_KEY, HSM_ED25519, 0, &k);
		state_durable(kp->st, 0);
		if (r == 0) {
			sv_info("created the bundle key %s (Ed25519, in the token): this state "
				"directory was initialised before sealed bundles",
			    KS_BUNDLE_KEY);
			kp->bundle_created = 1;
		}
	}
	if (r != 0)
		return sv_preferr(r, "bundle key %s", KS_BUNDLE_KEY);
	if ((r = hsm_key_ed25519_raw(kp->h, &k.hk, raw)) != 0 ||
	    (r = b64u_encode(raw, BUNDLE_PK_LEN, &b)) != 0 || (r = make_chain(kp, &k, &chain)) != 0)
		goto out;
	snprintf(kp->bundle_pk, sizeof(kp->bundle_pk), "%s", b);
	kp->bundle_key = k.hk;
	json_decref(kp->bundle_chain);
	kp->bundle_chain = chain;
out:
	free(b);
	return r;
}

int
kp_bundle_key_rotate(struct kp *kp, json_t **result)
{
	struct ks_key k;
	int r;

	if ((r = ks_rotate(kp->st, kp->h, KS_BUNDLE_KEY, &k)) != 0)
		return r;
	/* Current in the database from here: a failure below is repeated at the next start. */
	if ((r = kp_bundle_init(kp)) != 0)
		return sv_preferr(r,
		    "%s version %d is current, but not in use until vaultd restarts", KS_BUNDLE_KEY,
		    k.version);
	sv_info("bundle key %s rotated to version %d: bundles carry the link from each older "
		"version",
	    KS_BUNDLE_KEY, k.version);
	if ((r = ks_json(kp->h, &k, 1, result)) != 0)
		return r;
	json_object_set_new(
	    *result, "links", json_integer((json_int_t)json_array_size(kp->bundle_chain)));
	return 0;
}

/* The audit record of a decision; extra (consumed, may be NULL) adds members. */
static void
record(struct kp *kp, const struct breq *q, const char *decision, const char *code,
    const char *reason, json_t *extra)
{
	json_t *f = json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "op", "bundle", "shadow",
	    q->shadow[0] ? q->shadow : "?", "serial", q->serial, "name", q->name, "decision",
	    decision);

	if (f != NULL && q->c.sequence > 0) {
		json_object_set_new(f, "sequence", json_integer((json_int_t)q->c.sequence));
		json_object_set_new(f, "key_version", json_integer(q->c.key_version));
	}
	if (f != NULL && q->id[0] != '\0')
		json_object_set_new(f, "id", json_string(q->id));
	if (f != NULL && code != NULL)
		json_object_set_new(f, "code", json_string(code));
	if (f != NULL && reason != NULL)
		json_object_set_new(f, "reason", json_string(reason));
	if (f != NULL && extra != NULL)
		json_object_update(f, extra);
	json_decref(extra);
	kp_audit(kp, "bundle", f);
}

static void
count(struct kp *kp, const struct breq *q, const char *result)
{
	metrics_add(kp->m, "shadowvault_bundles_total", 1, "shadow", q->shadow[0] ? q->shadow : "?",
	    "result", result, NULL);
}

static const char *
title(int status)
{
	switch (status) {
	case 400:
		return "Bad request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not found";
	case 409:
		return "Conflict";
	case 429:
		return "Too many requests";
	case 503:
		return "Service unavailable";
	default:
		return "Internal error";
	}
}

/* A refusal, audited (audit != 0) and counted. */
static json_t *
deny(struct kp *kp, const struct breq *q, int status, const char *code, const char *detail,
    int retry_after, int audit)
{
	if (audit)
		record(kp, q, "deny", code, detail, NULL);
	count(kp, q, code);
	return kp_problem(status, code, title(status), detail, retry_after);
}

/* Past the shadow's rate limit: audited as kp_rate_record() says (as signing is). */
static json_t *
limited(struct kp *kp, struct kp_rate *rt, const struct breq *q, int wait)
{
	static const char detail[] = "request rate limit of this shadow reached";
	json_t *extra;

	if (kp_rate_record(rt, &extra))
		record(kp, q, "deny", "rate-limited", detail, extra);
	return deny(kp, q, 429, "rate-limited", detail, wait, 0);
}

/* 1 if the key version k may leave the token in a bundle; else 0 and why. */
static int
exportable(const struct ks_key *k, char *why, size_t n)
{
	if (strcmp(k->state, "destroyed") == 0)
		snprintf(why, n, "version %d of key %s, the key of this certificate, is destroyed",
		    k->version, k->name);
	else if (k->hk.type == HSM_ED25519)
		snprintf(why, n, "key %s is Ed25519: tokens cannot wrap such keys", k->name);
	else if (!k->exportable)
		snprintf(why, n,
		    "version %d of key %s, the key of this certificate, is not exportable "
		    "(create the key with --exportable)",
		    k->version, k->name);
	else
		return 1;
	return 0;
}

/* The 200 answer: its body as JSON text, which netproc sends as it is. */
static json_t *
answer(struct kp *kp, const struct breq *q, int64_t expires, const uint8_t *sealed, size_t slen)
{
	json_t *body = NULL, *resp = NULL;
	char *b = NULL, *text = NULL;

	if (b64u_encode(sealed, slen, &b) != 0 ||
	    (body = json_pack("{s:s, s:I, s:s, s:I, s:s, s:O*}", "name", q->name, "sequence",
		 (json_int_t)q->c.sequence, "id", q->id, "expires_at", (json_int_t)expires,
		 "sealed", b, "key_chain", kp->bundle_chain)) == NULL ||
	    (text = json_dumps(body, JSON_COMPACT)) == NULL)
		goto out;
	resp = json_pack("{s:i, s:s}", "status", 200, "raw", text);
out:
	free(text);
	json_decref(body);
	free(b);
	return resp;
}

/* Wrap, pack, sign and seal the key of q->c for q->shadow; the answer. */
static json_t *
seal(struct kp *kp, struct breq *q, struct ks_key *k)
{
	struct kp_ed_signer signer = { kp, &kp->bundle_key };
	struct bundle_meta m;
	uint8_t box[BUNDLE_PK_LEN], *der = NULL, *sealed = NULL;
	size_t dlen = 0, slen = 0;
	int64_t now = (int64_t)time(NULL);
	json_t *resp;
	int r;

	if ((r = shadows_box_key(kp->st, q->shadow, box)) != 0)
		return deny(kp, q, 503, "unavailable", sv_errmsg(r), 5, 1);
	if ((r = hsm_key_wrap_pkcs8(kp->h, &k->hk, &der, &dlen)) != 0)
		return r == SV_EUNEXTRACT ? deny(kp, q, 409, "not-exportable", sv_errmsg(r), 0, 1)
					  : deny(kp, q, 503, "hsm-unavailable", sv_errmsg(r), 5, 1);
	memset(&m, 0, sizeof(m));
	bundle_new_id(q->id);
	memcpy(m.id, q->id, sizeof(m.id));
	snprintf(m.recipient, sizeof(m.recipient), "%s", q->shadow);
	snprintf(m.name, sizeof(m.name), "%s", q->name);
	m.sequence = q->c.sequence;
	m.issued_at = now;
	m.expires_at = now + BUNDLE_TTL;
	m.chain = q->c.chain;
	r = bundle_seal(&m, der, dlen, kp_ed25519_sign, &signer, box, &sealed, &slen);
	sodium_free(der); /* the key in the clear: gone from here on, whatever happened */
	if (r != 0)
		return deny(kp, q, r == SV_EHSM ? 503 : 500,
		    r == SV_EHSM ? "hsm-unavailable" : "internal", sv_errmsg(r),
		    r == SV_EHSM ? 5 : 0, 1);
	if ((resp = answer(kp, q, m.expires_at, sealed, slen)) == NULL) {
		free(sealed);
		return deny(kp, q, 500, "internal", "out of memory", 0, 1);
	}
	free(sealed);
	record(kp, q, "allow", NULL, NULL,
	    json_pack("{s:I, s:I}", "issued_at", (json_int_t)now, "expires_at",
		(json_int_t)m.expires_at));
	count(kp, q, "ok");
	sv_info("bundle %s sequence %lld (id %s) sealed for shadow %s", q->name,
	    (long long)q->c.sequence, q->id, q->shadow);
	return resp;
}

/* Allowed by the policy: the newest certificate of the name and its key. */
static json_t *
judge(struct kp *kp, struct breq *q)
{
	char why[SV_ERRMSG_MAX];
	struct ks_key k;
	int r;

	if ((r = certs_newest(kp->st, q->name, &q->c)) == SV_ENOTFOUND)
		return deny(kp, q, 404, "no-certificate", sv_errmsg(r), 0, 1);
	if (r != 0)
		return deny(kp, q, 503, "unavailable", sv_errmsg(r), 5, 1);
	if ((r = ks_get(kp->st, q->name, q->c.key_version, &k)) == SV_ENOTFOUND)
		return deny(kp, q, 409, "not-exportable", sv_errmsg(r), 0, 1);
	if (r != 0)
		return deny(kp, q, 503, "unavailable", sv_errmsg(r), 5, 1);
	if (!exportable(&k, why, sizeof(why)))
		return deny(kp, q, 409, "not-exportable", why, 0, 1);
	return seal(kp, q, &k);
}

/* netproc sends only printable ASCII names it cut from the path; check it anyway. */
static int
name_shape(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > SV_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

json_t *
kp_bundle(struct kp *kp, const json_t *req)
{
	struct pol_decision d;
	struct kp_rate *rt;
	struct breq q;
	json_t *resp;
	int r, wait;

	memset(&q, 0, sizeof(q));
	q.serial = json_string_value(json_object_get(req, "serial"));
	q.fpr = json_string_value(json_object_get(req, "fingerprint"));
	q.name = json_string_value(json_object_get(req, "name"));
	if (q.serial == NULL || strlen(q.serial) > KP_SERIAL_MAX) {
		q.serial = NULL;
		q.name = NULL;
		return deny(kp, &q, 400, "malformed", "bundle request needs serial and name", 0, 1);
	}
	/* Who it is first (netproc took the serial from the verified certificate). */
	if ((r = kp_shadow(kp, q.serial, q.fpr, q.shadow)) != 0)
		return deny(
		    kp, &q, 403, r == SV_ESTATE ? "expired" : "revoked", kp_shadow_why(r), 0, 1);
	/* Then its rate limit, before anything else that would be audited. */
	if (!kp_rate_take(kp, q.shadow, &wait, &rt))
		return limited(kp, rt, &q, wait);
	if (q.name == NULL || !name_shape(q.name)) {
		q.name = NULL;
		return deny(kp, &q, 400, "malformed", "bundle name missing or malformed", 0, 1);
	}
	if (pol_eval_bundle(kp->pol, q.shadow, q.name, &d) != 0 || !d.allow)
		return deny(kp, &q, 403, d.code, d.reason, 0, 1);
	resp = judge(kp, &q);
	cert_rec_free(&q.c);
	return resp;
}
