/*
 * kp_sign: the signing boundary (DESIGN section 3) and account information.
 * For every request the key process itself: authenticates the shadow by its
 * certificate serial against the database, finds the account, applies the
 * shadow's rate limit, classifies the ACME request (classify.c: pinned CA
 * host, operation, names, CSR key), asks the policy, refuses a nonce it has
 * already signed, builds the protected header itself ({alg, kid, nonce,
 * url}), signs in the token and queues the audit record.  Denials are
 * audited too.  Touches the token, the nonce set and the audit queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "b64.h"
#include "classify.h"
#include "ipc.h"
#include "jwk.h"
#include "job.h"
#include "jws.h"
#include "keyproc.h"
#include "log.h"
#include "shadowca.h"
#include "shadows.h"
#include "sv_err.h"

#define NONCE_MAX 256

/* Every field a sign request needs, borrowed from the request JSON. */
struct sreq {
	const char *serial, *fpr, *account, *url, *nonce, *payload_b64;
	char shadow[SV_NAME_MAX + 1];
	uint8_t *payload;
	size_t plen;
	char nonce_hash[48];
};

void
kp_accounts_reset(struct kp *kp)
{
	size_t i;

	for (i = 0; i < kp->naccts; i++) {
		/* The key's session copy goes with it: a rotated or destroyed key signs no more. */
		hsm_key_unpin(kp->h, &kp->accts[i].key);
		if (kp->h2 != NULL) /* the signer thread is idle: it runs inside kp_sign_batch() */
			hsm_key_unpin(kp->h2, &kp->accts[i].key2);
		cls_urls_free(kp->accts[i].urls);
		account_free(&kp->accts[i].a);
		json_decref(kp->accts[i].jwk);
	}
	free(kp->accts);
	for (i = 0; i < kp->nthumbs; i++)
		free(kp->thumbs[i]);
	free(kp->thumbs);
	kp->accts = NULL;
	kp->thumbs = NULL;
	kp->naccts = kp->nthumbs = 0;
	kp->accts_stale = 1;
}

/* Thumbprint of a token key into out[JWK_THUMB_LEN + 1] (and its JWK if jwk != NULL). */
static int
key_thumb(struct kp *kp, struct hsm_key *k, char *out, json_t **jwk)
{
	EVP_PKEY *pk = NULL;
	json_t *j = NULL;
	int r;

	if ((r = hsm_key_public(kp->h, k, &pk)) == 0 && (r = jwk_from_pkey(pk, &j)) == 0)
		r = jwk_thumbprint(j, out);
	EVP_PKEY_free(pk);
	if (r == 0 && jwk != NULL)
		*jwk = j;
	else
		json_decref(j);
	return r;
}

/* Thumbprints of every live version of key name, appended to kp->thumbs. */
static int
add_thumbs(struct kp *kp, const char *name, const struct ks_key *all, size_t n)
{
	char tp[JWK_THUMB_LEN + 1];
	struct hsm_key k;
	char **nt;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		if (strcmp(all[i].name, name) != 0 || strcmp(all[i].state, "destroyed") == 0)
			continue;
		k = all[i].hk;
		if ((r = key_thumb(kp, &k, tp, NULL)) != 0)
			return r;
		if ((nt = realloc(kp->thumbs, (kp->nthumbs + 1) * sizeof(*nt))) == NULL)
			return SV_ENOMEM;
		kp->thumbs = nt;
		if ((kp->thumbs[kp->nthumbs] = strdup(tp)) == NULL)
			return SV_ENOMEM;
		kp->nthumbs++;
	}
	return 0;
}

/* What the classifier knows of account a (borrowed from a and kp). */
static void
cls_fill(struct kp *kp, const struct kp_account *a, struct cls_account *ca)
{
	memset(ca, 0, sizeof(*ca));
	ca->name = a->a.name;
	ca->directory_url = a->a.directory_url;
	ca->kid = a->a.kid;
	ca->new_order = account_dir_url(&a->a, "newOrder");
	ca->new_account = account_dir_url(&a->a, "newAccount");
	ca->revoke_cert = account_dir_url(&a->a, "revokeCert");
	ca->key_change = account_dir_url(&a->a, "keyChange");
	ca->new_nonce = account_dir_url(&a->a, "newNonce");
	ca->key_thumbprints = (const char *const *)kp->thumbs;
	ca->nthumbprints = kp->nthumbs;
	ca->urls = a->urls;
}

static int
load_one(struct kp *kp, const char *name, const struct ks_key *all, size_t n)
{
	struct kp_account *a = &kp->accts[kp->naccts];
	struct cls_account ca;
	struct ks_key k;
	int r;

	memset(a, 0, sizeof(*a));
	if ((r = accounts_get(kp->st, name, &a->a)) != 0)
		return r;
	kp->naccts++;
	if ((r = ks_get(kp->st, a->a.key_name, 0, &k)) != 0)
		return sv_preferr(r, "account %s", name);
	a->key = k.hk;
	hsm_key_pin(&a->key); /* sign from a session copy: see hsm_key_pin() */
	a->key2 = a->key;     /* the signer thread's session makes its own copy */
	snprintf(a->alg, sizeof(a->alg), "%s", hsm_keytype_alg(k.hk.type));
	if ((r = key_thumb(kp, &a->key, a->thumbprint, &a->jwk)) != 0)
		return r;
	/* Parsed once per load, not per request; on failure each request parses them. */
	cls_fill(kp, a, &ca);
	if (cls_urls_parse(&ca, &a->urls) != 0)
		a->urls = NULL;
	a->loaded = 1;
	return add_thumbs(kp, a->a.key_name, all, n);
}

/* (Re)load every account, its current key and all its key thumbprints. */
static int
load_accounts(struct kp *kp)
{
	json_t *list = NULL, *e;
	struct ks_key *all = NULL;
	size_t n = 0, i;
	int r;

	kp_accounts_reset(kp);
	if ((r = accounts_list(kp->st, &list)) != 0 || (r = ks_list(kp->st, &all, &n)) != 0)
		goto out;
	if ((kp->accts = calloc(json_array_size(list) + 1, sizeof(*kp->accts))) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	json_array_foreach(list, i, e)
	{
		if ((r = load_one(kp, json_string_value(json_object_get(e, "name")), all, n)) != 0)
			goto out;
	}
	kp->accts_stale = 0;
out:
	if (r != 0)
		sv_err("loading accounts: %s", sv_errmsg(r));
	free(all);
	json_decref(list);
	return r;
}

int
kp_accounts_ready(struct kp *kp)
{
	return kp->accts_stale ? load_accounts(kp) : 0;
}

struct kp_account *
kp_account(struct kp *kp, const char *name)
{
	size_t i;

	if (kp_accounts_ready(kp) != 0)
		return NULL;
	for (i = 0; i < kp->naccts; i++)
		if (kp->accts[i].loaded && strcmp(kp->accts[i].a.name, name) == 0)
			return &kp->accts[i];
	sv_seterr(SV_ENOTFOUND, "no account named \"%s\"", name);
	return NULL;
}

void
kp_shadows_reset(struct kp *kp)
{
	if (kp->serials != NULL)
		hmap_clear(kp->serials, free);
}

/*
 * The first request made with a renewed certificate (a miss in the serial
 * cache) retires the certificate it replaced: revoked, audited, and netproc
 * told, so a renewal leaves one valid certificate once the shadow uses it.
 * On a database error it is tried again at the next miss.
 */
static void
retire_replaced(struct kp *kp, const char *serial, const char *name)
{
	char old[KP_SERIAL_MAX + 1];

	if (kp_txn(kp) != 0 || shadows_retire_replaced(kp->st, serial, old, sizeof(old)) != 0 ||
	    old[0] == '\0')
		return;
	kp_audit(kp, "retire",
	    json_pack("{s:s, s:s, s:s, s:s}", "shadow", name, "serial", old, "by", serial, "reason",
		"its renewal is in use"));
	sv_info("shadow %s uses its renewed certificate %s: %s revoked", name, serial, old);
	kp_shadows_reset(kp);
	kp_push_peers(kp, NULL);
}

/* Why kp_shadow() refuses a certificate that reuses a serial (kp_shadow_why()). */
static const char NOT_ISSUED[] =
    "client certificate is not the one the vault issued with its serial";

/* What the serial cache keeps for a certificate. */
struct kp_holder {
	int64_t not_after;
	char name[SV_NAME_MAX + 1];
	char fpr[SCA_HEX_MAX]; /* as recorded when the vault issued it */
};

/*
 * Cached or from the database.  netproc is not trusted: expired
 * certificates are refused here too, and so is a certificate that carries
 * the serial of one the vault issued but is not that one (only someone able
 * to sign with a shadow CA key could make it: a serial is no secret).
 */
int
kp_shadow(struct kp *kp, const char *serial, const char *fpr, char *name)
{
	const struct kp_holder *cached =
	    kp->serials ? hmap_get(kp->serials, serial, strlen(serial)) : NULL;
	struct kp_holder got, *h;
	int r;

	name[0] = '\0';
	if (cached != NULL)
		got = *cached;
	else if ((r = shadows_by_serial(
		      kp->st, serial, got.name, &got.not_after, got.fpr, sizeof(got.fpr))) != 0)
		return r;
	if (fpr == NULL || strcmp(fpr, got.fpr) != 0) {
		sv_err("a client certificate with serial %s (shadow %s) is not the one the vault "
		       "issued: fingerprint %s, issued %s; refused",
		    serial, got.name, fpr ? fpr : "none", got.fpr);
		return sv_seterr(SV_EDENIED, "%s", NOT_ISSUED);
	}
	snprintf(name, SV_NAME_MAX + 1, "%s", got.name);
	if (cached == NULL) {
		retire_replaced(kp, serial, name);
		/* Without a cache (out of memory) it works uncached. */
		if (kp->serials != NULL || hmap_new(KP_SERIALS_MAX, &kp->serials) == 0) {
			if (hmap_size(kp->serials) >= KP_SERIALS_MAX)
				hmap_clear(kp->serials, free);
			if ((h = malloc(sizeof(*h))) != NULL) {
				*h = got;
				if (hmap_put(kp->serials, serial, strlen(serial), h) != 0)
					free(h);
			}
		}
	}
	if (got.not_after <= (int64_t)time(NULL))
		return sv_seterr(SV_ESTATE, "client certificate expired");
	return 0;
}

const char *
kp_shadow_why(int r)
{
	if (r == SV_ESTATE)
		return "client certificate expired";
	/* A fixed text (not sv_errmsg()): the caller audits before it answers. */
	if (r == SV_EDENIED && strcmp(sv_errmsg(r), NOT_ISSUED) == 0)
		return NOT_ISSUED;
	return "client certificate revoked or unknown";
}

/* 1 if the nonce was never signed (and remember it), 0 if it was (or *err). */
static int
nonce_fresh(struct kp *kp, const char *nonce, int *err)
{
	uint8_t h[32];

	crypto_hash_sha256(h, (const uint8_t *)nonce, strlen(nonce));
	return kp_nonce_fresh(kp, h, err);
}

static int
b64_charset(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static int
parse_sreq(const struct ipc_msg *m, struct sreq *q)
{
	const char *f[IPC_SIGN_NSTRS];
	uint8_t h[32];
	char *hb;

	memset(q, 0, sizeof(*q));
	if (ipc_strs(m, f, IPC_SIGN_NSTRS) != 0)
		return sv_seterr(SV_EINVAL, "request needs serial, account, url, nonce, payload");
	q->serial = f[IPC_SIGN_SERIAL];
	q->fpr = f[IPC_SIGN_FINGERPRINT];
	q->account = f[IPC_SIGN_ACCOUNT];
	q->url = f[IPC_SIGN_URL];
	q->nonce = f[IPC_SIGN_NONCE];
	q->payload_b64 = f[IPC_SIGN_PAYLOAD];
	if (strlen(q->serial) > KP_SERIAL_MAX)
		return sv_seterr(SV_EINVAL, "serial longer than %d characters", KP_SERIAL_MAX);
	if (sv_name_check(q->account, "account name") != 0)
		return SV_EINVAL;
	if (q->nonce[0] == '\0' || strlen(q->nonce) > NONCE_MAX || !b64_charset(q->nonce))
		return sv_seterr(
		    SV_EINVAL, "nonce must be 1 to %d base64url characters", NONCE_MAX);
	crypto_hash_sha256(h, (const uint8_t *)q->nonce, strlen(q->nonce));
	if (b64u_encode(h, sizeof(h), &hb) != 0)
		return SV_ENOMEM;
	snprintf(q->nonce_hash, sizeof(q->nonce_hash), "%s", hb);
	free(hb);
	return b64u_decode(
	    q->payload_b64, strlen(q->payload_b64), CLS_PAYLOAD_MAX, &q->payload, &q->plen);
}

static json_t *
names_json(const struct cls_result *c)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; c != NULL && i < c->nnames; i++)
		json_array_append_new(a, json_string(c->names[i]));
	return a;
}

/*
 * Audit and count a refusal; c is NULL when the request was not classified.
 * audit 0: count it only (see limited()).
 */
static json_t *
deny_x(struct kp *kp, const struct sreq *q, const struct cls_result *c, int status,
    const char *code, const char *detail, int retry_after, int audit, json_t *extra)
{
	static const char *const titles[] = { "Bad request", "Forbidden", "Not found",
		"Too many requests" };
	const char *title = status == 400 ? titles[0]
	    : status == 403		  ? titles[1]
	    : status == 404		  ? titles[2]
					  : titles[3];
	json_t *rec;

	if (audit) {
		rec = json_pack("{s:s, s:s?, s:s?, s:s, s:o, s:s, s:s?, s:s, s:s, s:s}", "shadow",
		    q->shadow[0] ? q->shadow : "?", "serial", q->serial, "account", q->account,
		    "op", c != NULL ? pol_op_name(c->op) : "unclassified", "names", names_json(c),
		    "nonce_hash", q->nonce_hash, "url", q->url, "decision", "deny", "code", code,
		    "reason", detail);
		if (rec != NULL && extra != NULL)
			json_object_update(rec, extra);
		kp_audit(kp, "sign", rec);
	}
	json_decref(extra);
	metrics_add(kp->m, "shadowvault_denials_total", 1, "reason", code, NULL);
	return kp_problem(status, code, title, detail, retry_after);
}

static json_t *
deny(struct kp *kp, const struct sreq *q, const struct cls_result *c, int status, const char *code,
    const char *detail, int retry_after)
{
	return deny_x(kp, q, c, status, code, detail, retry_after, 1, NULL);
}

/* A refusal for the rate limit, audited as kp_rate_record() says. */
static json_t *
limited(struct kp *kp, struct kp_rate *r, const struct sreq *q, int wait)
{
	static const char detail[] = "signature rate limit of this shadow reached";
	json_t *extra;
	int rec = kp_rate_record(r, &extra);

	return deny_x(kp, q, NULL, 429, "rate-limited", detail, wait, rec, extra);
}

/* The protected header the vault builds itself: alg, kid, nonce, url. */
static json_t *
header(const struct kp_account *a, const struct sreq *q)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "alg", a->alg, "kid", a->a.kid, "nonce", q->nonce,
	    "url", q->url);
}

/* A signature decided and audited, made once the batch's records are syncing. */
struct kp_pending {
	char account[SV_NAME_MAX + 1];
	char shadow[SV_NAME_MAX + 1];
	json_t *hdr;
	uint8_t *payload;
	size_t plen;
};

void
kp_pending_free(struct kp_pending *p)
{
	if (p == NULL)
		return;
	json_decref(p->hdr);
	free(p->payload);
	free(p);
}

/* Make w's signature with key in session h (either thread: touches only w, h and key). */
static void
sign_one(struct hsm *h, struct hsm_key *key, struct kp_sigwork *w)
{
	struct hsm_jws_ctx ctx = { h, key };
	struct jws_signer s;
	double t0 = metrics_now();

	hsm_jws_signer(&ctx, &s);
	w->r = jws_sign_text(&s, w->p->hdr, w->p->payload, w->p->plen, &w->jws, &w->len);
	w->secs = metrics_now() - t0;
	if (w->r != 0)
		snprintf(w->why, sizeof(w->why), "%s", sv_errmsg(w->r));
}

/* The batch's next signature to make, for either thread; NULL when all are taken. */
static struct kp_sigwork *
next_work(struct kp *kp)
{
	size_t i;

	while ((i = __atomic_fetch_add(&kp->sw_next, 1, __ATOMIC_RELAXED)) < kp->nsw)
		if (kp->sw[i].a != NULL)
			return &kp->sw[i];
	return NULL;
}

static int
signer_job(void *arg)
{
	struct kp *kp = arg;
	struct kp_sigwork *w;

	while ((w = next_work(kp)) != NULL) {
		if (kp->signer_fault) { /* the tests' way to reach the fallback below */
			w->r = SV_EHSM;
			snprintf(w->why, sizeof(w->why), "fault injected (SV_FAULT=signer-fails)");
		} else
			sign_one(kp->h2, &w->a->key2, w);
		w->second = 1;
	}
	return 0;
}

/* The answer for a made (or failed) signature; metrics and logs on the key process's thread. */
static json_t *
sig_result(struct kp *kp, struct kp_sigwork *w)
{
	json_t *resp;

	if (w->a == NULL)
		return kp_problem(
		    503, "unavailable", "State unavailable", sv_errmsg(SV_ENOTFOUND), 5);
	metrics_observe(kp->m, "shadowvault_hsm_sign_seconds", w->secs);
	kp->sign_avg += (w->secs - kp->sign_avg) / 16;
	if (w->r != 0) {
		/* The allow record is written; the signature is not given out. */
		sv_err("signing for %s with account %s: %s", w->p->shadow, w->a->a.name, w->why);
		return kp_problem(503, "hsm-unavailable", "HSM unavailable", w->why, 5);
	}
	metrics_add(kp->m, "shadowvault_signatures_total", 1, "account", w->a->a.name, "shadow",
	    w->p->shadow, NULL);
	if (w->second)
		metrics_add(kp->m, "shadowvault_signer_thread_signatures_total", 1, NULL);
	/* The JWS goes to netproc as its text: nobody parses or re-serialises it. */
	resp = json_pack("{s:i, s:s%}", "status", 200, "jws", w->jws, w->len);
	return resp;
}

void
kp_sign_batch(struct kp *kp, struct kp_sigwork *w, size_t n)
{
	struct kp_sigwork *x;
	size_t i;
	int two = kp->signer != NULL && n > 1 && kp->sign_avg >= KP_SPLIT_SECONDS, unused;

	for (i = 0; i < n; i++) {
		/* kp_account() (re)loads the accounts here, never while the signer runs. */
		w[i].a = kp_account(kp, w[i].p->account);
		w[i].jws = NULL;
		w[i].r = w[i].second = 0;
		/* Both session copies made here, so that neither thread reads a token object
		   while the other runs (hsm_key_ready()); else this thread signs alone.  Once
		   per run of items of one account (a batch is mostly one). */
		if (two && w[i].a != NULL && (i == 0 || w[i].a != w[i - 1].a))
			two = hsm_key_ready(kp->h, &w[i].a->key) &&
			    hsm_key_ready(kp->h2, &w[i].a->key2);
	}
	kp->sw = w;
	kp->nsw = n;
	kp->sw_next = 0;
	if (two)
		sv_job_ask(kp->signer);
	while ((x = next_work(kp)) != NULL)
		sign_one(kp->h, &x->a->key, x);
	if (two)
		sv_job_take(kp->signer, 1, &unused);
	kp->sw = NULL;
	kp->nsw = 0;
	for (i = 0; two && i < n; i++) {
		if (!w[i].second || w[i].r == 0)
			continue;
		/* Whatever failed on the second session gets one try on the first. */
		sv_warn("signing for %s on the second session: %s; signing on the first",
		    w[i].p->shadow, w[i].why);
		w[i].second = 0;
		sign_one(kp->h, &w[i].a->key, &w[i]);
	}
	for (i = 0; i < n; i++) {
		w[i].resp = sig_result(kp, &w[i]);
		free(w[i].jws);
		w[i].jws = NULL;
	}
}

int
kp_signer_start(struct kp *kp)
{
	int r;

	if ((r = hsm_clone(kp->h, &kp->h2)) != 0)
		return sv_preferr(r, "signer session");
	/* Fault injection for the tests, as vaultctl's SV_FAULT: the first session's retry. */
	kp->signer_fault = sv_fault("signer-fails");
	if ((r = sv_job_start(signer_job, kp, &kp->signer)) != 0) {
		hsm_close(kp->h2);
		kp->h2 = NULL;
	}
	return r;
}

void
kp_signer_stop(struct kp *kp)
{
	sv_job_stop(kp->signer);
	kp->signer = NULL;
}

/* Sign hdr.payload now (outside a network batch, or out of memory); consumes hdr. */
static json_t *
sign_now(struct kp *kp, struct kp_account *a, const struct sreq *q, json_t *hdr)
{
	struct kp_pending p = { .hdr = hdr, .payload = (uint8_t *)q->payload, .plen = q->plen };
	struct kp_sigwork w = { .p = &p };

	snprintf(p.account, sizeof(p.account), "%s", a->a.name);
	snprintf(p.shadow, sizeof(p.shadow), "%s", q->shadow);
	kp_sign_batch(kp, &w, 1);
	json_decref(hdr);
	return w.resp;
}

/*
 * Audit the decision, then sign: now, or (kp->defer, a network batch) in
 * kp_sign_batch() while the batch's audit records are being synced.
 * Either way the answer waits for the commit.
 */
static json_t *
sign_allowed(struct kp *kp, struct kp_account *a, const struct sreq *q, const struct cls_result *c)
{
	struct kp_pending *p;
	json_t *hdr;

	if ((hdr = header(a, q)) == NULL)
		return kp_problem(500, "internal", "Internal error", "out of memory", 0);
	kp_audit(kp, "sign",
	    json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s}", "shadow", q->shadow,
		"serial", q->serial, "account", q->account, "op", pol_op_name(c->op), "names",
		names_json(c), "csr_key", c->csr_key_thumbprint, "nonce_hash", q->nonce_hash, "url",
		q->url, "decision", "allow"));
	if (kp->defer && (p = calloc(1, sizeof(*p))) != NULL) {
		snprintf(p->account, sizeof(p->account), "%s", a->a.name);
		snprintf(p->shadow, sizeof(p->shadow), "%s", q->shadow);
		if (q->plen == 0 || (p->payload = malloc(q->plen)) != NULL) {
			if (q->plen > 0)
				memcpy(p->payload, q->payload, q->plen);
			p->plen = q->plen;
			p->hdr = hdr;
			kp->pending = p;
			return NULL;
		}
		free(p);
	}
	return sign_now(kp, a, q, hdr);
}

/* Policy, nonce and signature for a classified request. */
static json_t *
judge(struct kp *kp, struct kp_account *a, const struct sreq *q, const struct cls_result *c)
{
	struct pol_request pr = { q->shadow, q->account, c->op, (const char *const *)c->names,
		c->nnames };
	struct pol_decision d;
	int err;

	if (pol_eval(kp->pol, &pr, &d) != 0 || !d.allow)
		return deny(kp, q, c, 403, d.code, d.reason, 0);
	if (!nonce_fresh(kp, q->nonce, &err)) {
		if (err != 0)
			return kp_problem(
			    503, "unavailable", "State unavailable", sv_errmsg(err), 5);
		return deny(kp, q, c, 403, "nonce-replay",
		    "this nonce was already signed: the vault "
		    "signs each nonce at most once",
		    0);
	}
	return sign_allowed(kp, a, q, c);
}

json_t *
kp_sign(struct kp *kp, const struct ipc_msg *m)
{
	struct cls_account ca;
	struct cls_result c;
	struct kp_account *a;
	struct kp_rate *rt;
	struct sreq q;
	char bad[SV_ERRMSG_MAX] = "";
	json_t *resp;
	int r, r2, wait;

	memset(&c, 0, sizeof(c));
	if ((r = parse_sreq(m, &q)) != 0)
		snprintf(bad, sizeof(bad), "%s", sv_errmsg(r));
	/* Who it is first (netproc took the serial from the verified certificate). */
	if (q.serial == NULL || strlen(q.serial) > KP_SERIAL_MAX) {
		resp = deny(kp, &q, NULL, 400, "malformed", bad, 0);
		goto out;
	}
	if ((r2 = kp_shadow(kp, q.serial, q.fpr, q.shadow)) != 0) {
		resp = deny(kp, &q, NULL, 403, r2 == SV_ESTATE ? "expired" : "revoked",
		    kp_shadow_why(r2), 0);
		goto out;
	}
	/* Then its rate limit, before anything else that would be audited. */
	if (!kp_rate_take(kp, q.shadow, &wait, &rt)) {
		resp = limited(kp, rt, &q, wait);
		goto out;
	}
	if (r != 0) {
		resp = deny(kp, &q, NULL, 400, "malformed", bad, 0);
		goto out;
	}
	if ((a = kp_account(kp, q.account)) == NULL) {
		resp = deny(kp, &q, NULL, 404, "unknown-account", sv_errmsg(SV_ENOTFOUND), 0);
		goto out;
	}
	cls_fill(kp, a, &ca);
	if ((r = cls_classify(&ca, q.url, q.payload, q.plen, &c)) != 0) {
		resp = deny(kp, &q, NULL, r == SV_EDENIED ? 403 : 400,
		    r == SV_EDENIED ? "classify" : "malformed", sv_errmsg(r), 0);
		goto out;
	}
	resp = judge(kp, a, &q, &c);
out:
	cls_result_free(&c);
	free(q.payload);
	return resp;
}

json_t *
kp_account_info(struct kp *kp, const json_t *req)
{
	const char *serial = json_string_value(json_object_get(req, "serial"));
	const char *fpr = json_string_value(json_object_get(req, "fingerprint"));
	const char *name = json_string_value(json_object_get(req, "account"));
	char shadow[SV_NAME_MAX + 1];
	struct pol_decision d;
	struct kp_account *a;
	json_t *refused;

	if (serial == NULL || name == NULL || strlen(serial) > KP_SERIAL_MAX)
		return kp_problem(400, "malformed", "Bad request", "serial and account needed", 0);
	/* The same bucket as its signing requests (this answer is not audited). */
	if ((refused = kp_shadow_admit(kp, serial, fpr, shadow)) != NULL)
		return refused;
	if (pol_eval_account(kp->pol, shadow, name, &d) != 0 || !d.allow)
		return kp_problem(403, d.code, "Forbidden", d.reason, 0);
	if ((a = kp_account(kp, name)) == NULL)
		return kp_problem(404, "unknown-account", "Not found", sv_errmsg(SV_ENOTFOUND), 0);
	return kp_ok(200,
	    json_pack("{s:s, s:s, s:s, s:O, s:s, s:s}", "account", a->a.name, "directory",
		a->a.directory_url, "kid", a->a.kid, "jwk", a->jwk, "thumbprint", a->thumbprint,
		"alg", a->alg));
}
