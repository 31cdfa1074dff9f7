/*
 * kp_auditkey: the audit key over time.  One version of vault.audit is
 * current and signs checkpoints; `vaultctl key rotate vault.audit` makes a
 * new one.  The log itself carries the change: a handover checkpoint signed
 * by the old version names the new one and its public key (audit.h, KEY
 * HANDOVER), so whoever trusts the first key can follow every later one.
 *
 * Crash safety comes from one rule, applied before every checkpoint
 * (kp_audit_settle()): if the log's key in force (audit_key_in_force()) is an
 * older version than the current one, hand the log over first, signing with
 * that older version (retired keys stay in the token: the vault's own keys
 * cannot be destroyed).  A rotation is new key, public key file, promotion,
 * then that rule; stopped anywhere, the next checkpoint finishes it.
 *
 * Also kp_ed25519_sign(), the signer the audit and bundle keys share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_keys.h"
#include "keyproc.h"
#include "log.h"

int
kp_ed25519_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig)
{
	struct kp_ed_signer *s = ctx;
	size_t sl = 64;
	double t0 = metrics_now();
	int r = hsm_sign(s->kp->h, s->key, msg, len, sig, &sl);

	if (s->kp->m != NULL) /* the bundle key's links are made before the metrics */
		metrics_observe(s->kp->m, "shadowvault_hsm_sign_seconds", metrics_now() - t0);
	if (r == 0 && sl != 64)
		r = sv_seterr(SV_EHSM, "the token gave an Ed25519 signature of %zu bytes", sl);
	return r;
}

int
kp_audit_key_load(struct kp *kp)
{
	struct ks_key k;
	int r;

	if ((r = ks_get(kp->st, KS_AUDIT_KEY, 0, &k)) != 0)
		return sv_preferr(r, "audit key");
	kp->audit_key = k.hk;
	kp->audit_key_version = k.version;
	snprintf(kp->audit_key_id, sizeof(kp->audit_key_id), "%s@v%d", KS_AUDIT_KEY, k.version);
	return 0;
}

/* The version a checkpoint key id names: "vault.audit@vN", or "vault.audit" (logs before rotation:
 * 1). */
static int
id_version(const char *id, int *v)
{
	size_t n = strlen(KS_AUDIT_KEY);
	char *end;
	long l;

	*v = 0;
	if (strcmp(id, KS_AUDIT_KEY) == 0) {
		*v = 1;
		return 0;
	}
	if (strncmp(id, KS_AUDIT_KEY "@v", n + 2) != 0 || id[n + 2] < '1' || id[n + 2] > '9')
		return SV_EINVAL;
	l = strtol(id + n + 2, &end, 10);
	if (*end != '\0' || l < 1 || l > 1000000)
		return SV_EINVAL;
	*v = (int)l;
	return 0;
}

int
kp_audit_settle(struct kp *kp)
{
	char force[AUDIT_KEYID_MAX + 1]; /* a copy: the handover changes the log's */
	struct kp_ed_signer olds = { kp, NULL }, news = { kp, &kp->audit_key };
	struct audit_next next = { kp->audit_key_id, { 0 }, kp_ed25519_sign, &news };
	struct ks_key old;
	int r, v;

	snprintf(force, sizeof(force), "%s", audit_key_in_force(kp->audit));
	if (force[0] == '\0' || strcmp(force, kp->audit_key_id) == 0)
		return 0;
	if (id_version(force, &v) != 0)
		return sv_seterr(SV_ESTATE,
		    "audit: the log's checkpoints are signed by \"%s\", not a version of %s", force,
		    KS_AUDIT_KEY);
	if (v == kp->audit_key_version) /* "vault.audit": version 1 under its old name */
		return 0;
	if (v > kp->audit_key_version)
		return sv_seterr(SV_ESTATE,
		    "audit: the log is signed by %s version %d, newer than the current %d "
		    "(a state database older than the log?)",
		    KS_AUDIT_KEY, v, kp->audit_key_version);
	if ((r = ks_get(kp->st, KS_AUDIT_KEY, v, &old)) != 0)
		return sv_preferr(r, "audit: the key in force in the log");
	if (strcmp(old.state, "destroyed") == 0)
		return sv_seterr(SV_ESTATE,
		    "audit: %s version %d, in force in the log, is destroyed: the log cannot be "
		    "handed over",
		    KS_AUDIT_KEY, v);
	olds.key = &old.hk;
	if ((r = hsm_key_ed25519_raw(kp->h, &kp->audit_key, next.pub)) != 0 ||
	    (r = audit_handover(kp->audit, force, kp_ed25519_sign, &olds, &next)) != 0)
		return sv_preferr(r, "audit: handing the log over to %s", kp->audit_key_id);
	sv_info("audit: checkpoint %llu hands the log over from %s to %s",
	    (unsigned long long)audit_seq(kp->audit), force, kp->audit_key_id);
	kp->seq_at_checkpoint = audit_seq(kp->audit);
	kp->last_checkpoint = metrics_now();
	return 0;
}

int
kp_audit_checkpoint(struct kp *kp)
{
	struct kp_ed_signer s = { kp, &kp->audit_key };
	int r;

	if ((r = kp_audit_settle(kp)) != 0 ||
	    (r = audit_checkpoint(kp->audit, kp->audit_key_id, kp_ed25519_sign, &s)) != 0)
		return r;
	kp->seq_at_checkpoint = audit_seq(kp->audit);
	kp->last_checkpoint = metrics_now();
	return 0;
}

int
kp_audit_rotate_log(struct kp *kp, char *archive, size_t n)
{
	struct kp_ed_signer s = { kp, &kp->audit_key };
	int r;

	if ((r = kp_audit_settle(kp)) != 0 ||
	    (r = audit_rotate(kp->audit, kp->audit_key_id, kp_ed25519_sign, &s, archive, n)) != 0)
		return r;
	/* The rotation's checkpoint is the line before the new log's first. */
	kp->seq_at_checkpoint = audit_seq(kp->audit) - 1;
	kp->last_checkpoint = metrics_now();
	return 0;
}

int
kp_audit_key_rotate(struct kp *kp, json_t **result)
{
	struct ks_key pend;
	uint8_t pub[32];
	int r;

	if ((r = kp_commit(kp)) != 0) /* nothing queued: a handover is a checkpoint */
		return r;
	/* A log no checkpoint has signed yet: one by the old key, for the handover to follow. */
	if (audit_key_in_force(kp->audit)[0] == '\0' && (r = kp_audit_checkpoint(kp)) != 0)
		return r;
	if ((r = ks_stage(kp->st, kp->h, KS_AUDIT_KEY, &pend)) != 0 ||
	    (r = hsm_key_ed25519_raw(kp->h, &pend.hk, pub)) != 0)
		return r;
	/* On disk before anything signs with it: verify never meets a key it lacks. */
	if ((r = audit_pubs_add(kp->cfg->audit_pub, pub)) != 0)
		return sv_preferr(r, "audit key file");
	if ((r = ks_promote(kp->st, KS_AUDIT_KEY, pend.version)) != 0 ||
	    (r = kp_audit_key_load(kp)) != 0)
		return r;
	/* Fault injection for the tests (as SV_FAULT elsewhere): stop before the handover. */
	if (sv_fault("audit-key-handover"))
		r = sv_seterr(SV_EIO, "fault injected (SV_FAULT=audit-key-handover)");
	else
		r = kp_audit_settle(kp);
	if (r != 0)
		return sv_preferr(r,
		    "%s is now current, and the next checkpoint tries the handover again",
		    kp->audit_key_id);
	if ((r = ks_get(kp->st, KS_AUDIT_KEY, 0, &pend)) != 0 ||
	    (r = ks_json(kp->h, &pend, 1, result)) != 0)
		return r;
	json_object_set_new(
	    *result, "handover_seq", json_integer((json_int_t)audit_seq(kp->audit)));
	json_object_set_new(*result, "audit_keys", json_string(kp->cfg->audit_pub));
	return 0;
}
