/*
 * kp_enroll: shadow enrolment and renewal in the key process.  A shadow presents its
 * one-time token, a CSR for the TLS key it made itself and its X25519 box
 * public key; the key process checks the token (unused, unexpired, shadow
 * pending), issues a client certificate from the shadow CA (signed in the
 * token; subject and names come from the vault, never from the CSR),
 * records everything in the batch's transaction and audits it.  Enrolment
 * and renewal answers carry the vault's bundle key ("bundle_key", the
 * Ed25519 public key that signs sealed bundles), for the shadow to pin.
 * Also pushes the CA and the revoked serials to netproc.  Touches the token
 * (through the engine), the shadows tables and the audit queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "b64.h"
#include "ipc.h"
#include "keyproc.h"
#include "log.h"
#include "renewal.h"
#include "shadowca.h"
#include "shadows.h"
#include "sv_err.h"

struct ereq {
	const char *token;
	const char *csr;
	uint8_t *box_pk;
	size_t box_len;
};

/* Refuse an enrolment: detail to the client; reason (detail if NULL) to the audit log. */
static json_t *
refuse_why(struct kp *kp, int status, const char *code, const char *detail, const char *reason,
    const char *shadow)
{
	kp_audit(kp, "enroll",
	    json_pack("{s:s, s:s, s:s, s:s}", "shadow", shadow && *shadow ? shadow : "?",
		"decision", "deny", "code", code, "reason", reason ? reason : detail));
	metrics_add(kp->m, "shadowvault_enrollments_total", 1, "result", code, NULL);
	return kp_problem(status, code, status == 400 ? "Bad request" : "Forbidden", detail, 0);
}

static json_t *
refuse(struct kp *kp, int status, const char *code, const char *detail, const char *shadow)
{
	return refuse_why(kp, status, code, detail, NULL, shadow);
}

static int
parse(const json_t *req, struct ereq *e)
{
	const char *pk;

	memset(e, 0, sizeof(*e));
	e->token = json_string_value(json_object_get(req, "token"));
	e->csr = json_string_value(json_object_get(req, "csr"));
	pk = json_string_value(json_object_get(req, "box_public_key"));
	if (e->token == NULL || e->csr == NULL || pk == NULL)
		return sv_seterr(SV_EINVAL, "enrolment needs token, csr and box_public_key");
	if (strlen(e->csr) > SCA_PEM_MAX)
		return sv_seterr(SV_ETOOBIG, "csr larger than %d bytes", SCA_PEM_MAX);
	if (b64u_decode(pk, strlen(pk), 32, &e->box_pk, &e->box_len) != 0 || e->box_len != 32)
		return sv_seterr(SV_EINVAL, "box_public_key must be 32 bytes, base64url");
	return 0;
}

static int64_t
not_after(const X509 *x)
{
	return (int64_t)sv_asn1_time(X509_get0_notAfter(x));
}

/* From when x may be renewed: common/renewal.h, with vaultd.conf's shadow_renew_days. */
static int64_t
renew_from(const struct kp *kp, const X509 *x)
{
	return (int64_t)sv_cert_renew_from(x, kp->cfg->shadow_renew_days);
}

/* A client certificate for shadow name from the CSR's key (nothing else of it). */
static int
make_cert(
    struct kp *kp, const char *csr_pem, const char *name, X509 **cert, char *serial, char *fpr)
{
	struct sca_profile p;
	X509_REQ *csr = NULL;
	int r;

	*cert = NULL;
	memset(&p, 0, sizeof(p));
	p.cn = name;
	p.days = kp->cfg->shadow_cert_days;
	p.server = 0;
	if ((r = sca_csr_parse((const uint8_t *)csr_pem, strlen(csr_pem), &csr)) != 0)
		return r;
	r = sca_issue(kp->ca_priv, kp->ca, csr, &p, cert);
	X509_REQ_free(csr);
	if (r == 0 &&
	    ((r = sca_serial_hex(*cert, serial, SCA_HEX_MAX)) != 0 ||
		(r = sca_fingerprint(*cert, fpr, SCA_HEX_MAX)) != 0)) {
		X509_free(*cert);
		*cert = NULL;
	}
	return r;
}

/* Issue and record; on success *cert is the new certificate. */
static int
issue(struct kp *kp, const struct ereq *e, const char *name, X509 **cert, char *serial, char *fpr)
{
	int r;

	if ((r = make_cert(kp, e->csr, name, cert, serial, fpr)) != 0)
		return r;
	if ((r = shadows_enrolled(kp->st, e->token, name, e->box_pk, serial, fpr, not_after(*cert),
		 kp->ca_version)) != 0) {
		X509_free(*cert);
		*cert = NULL;
	}
	return r;
}

/* The API listener's port, so a shadow knows where to go after enrolling. */
static int
api_port(const char *listen)
{
	const char *c = strrchr(listen, ':');

	return c ? atoi(c + 1) : 0;
}

json_t *
kp_enroll(struct kp *kp, const json_t *req)
{
	char name[SV_NAME_MAX + 1], serial[SCA_HEX_MAX], fpr[SCA_HEX_MAX], why[64];
	char reason[SV_ERRMSG_MAX + 64];
	char *pem = NULL;
	X509 *cert = NULL;
	struct ereq e;
	json_t *resp;
	int r;

	if ((r = parse(req, &e)) != 0) {
		resp = refuse(kp, 400, "malformed", sv_errmsg(r), NULL);
		goto out;
	}
	if ((r = kp_txn(kp)) != 0) {
		resp = kp_problem(503, "unavailable", "State unavailable", sv_errmsg(r), 5);
		goto out;
	}
	if ((r = shadows_token_check(kp->st, e.token, name, why, sizeof(why))) != 0) {
		/* The client learns nothing of which check failed; the audit log does. */
		if (r == SV_EDENIED)
			snprintf(reason, sizeof(reason), "%s: %s", sv_errmsg(r), why);
		resp = refuse_why(
		    kp, 403, "bad-token", sv_errmsg(r), r == SV_EDENIED ? reason : NULL, name);
		goto out;
	}
	if ((r = issue(kp, &e, name, &cert, serial, fpr)) != 0) {
		resp = refuse(kp, r == SV_EINVAL || r == SV_EDENIED || r == SV_ETOOBIG ? 400 : 500,
		    "bad-csr", sv_errmsg(r), name);
		goto out;
	}
	if ((r = sca_cert_pem(cert, &pem)) != 0) {
		resp = kp_problem(500, "internal", "Internal error", sv_errmsg(r), 0);
		goto out;
	}
	kp_shadows_reset(kp);
	kp_audit(kp, "enroll",
	    json_pack("{s:s, s:s, s:s, s:s}", "shadow", name, "serial", serial, "fingerprint", fpr,
		"decision", "allow"));
	metrics_add(kp->m, "shadowvault_enrollments_total", 1, "result", "ok", NULL);
	sv_info("shadow %s enrolled (certificate %s)", name, serial);
	resp = kp_ok(201,
	    json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s}", "name", name, "certificate", pem, "ca",
		kp->ca_pem, "serial", serial, "api_port", api_port(kp->cfg->listen), "renew_from",
		(json_int_t)renew_from(kp, cert), "bundle_key", kp->bundle_pk));
	if (kp->ca_links_pem != NULL)
		json_object_set_new(
		    json_object_get(resp, "body"), "ca_links", json_string(kp->ca_links_pem));
out:
	free(pem);
	X509_free(cert);
	free(e.box_pk);
	return resp;
}

/* A renewal refused (audited: it passed the shadow's rate limit). */
static json_t *
refuse_renew(struct kp *kp, int status, const char *code, const char *detail, const char *shadow,
    const char *serial)
{
	kp_audit(kp, "renew",
	    json_pack("{s:s, s:s, s:s, s:s, s:s}", "shadow", shadow, "replaces", serial, "decision",
		"deny", "code", code, "reason", detail));
	metrics_add(kp->m, "shadowvault_renewals_total", 1, "result", code, NULL);
	return kp_problem(status, code, status == 400 ? "Bad request" : "Forbidden", detail, 0);
}

/*
 * Proof that the holder of the certificate being replaced asks: old_pem is
 * that certificate (its serial and fingerprint as recorded), and proof a
 * signature by its key over KP_RENEW_CONTEXT followed by the CSR.  The key
 * process never sees the TLS handshake; without this, a compromised network
 * process could mint certificates for any shadow.  0 (and, in *from, from
 * when that certificate may be renewed) or a reason in why.
 */
static int
check_proof(const struct kp *kp, const char *serial, const char *want_fpr, const char *old_pem,
    const char *proof, const char *csr, int64_t *from, char *why, size_t whyn)
{
	char got[SCA_HEX_MAX], fpr[SCA_HEX_MAX];
	uint8_t *sig = NULL;
	size_t slen;
	X509 *old = NULL;
	EVP_MD_CTX *md = NULL;
	int ok = 0;

	if (sca_cert_parse_pem(old_pem, strlen(old_pem), &old) != 0 ||
	    sca_serial_hex(old, got, sizeof(got)) != 0 || strcmp(got, serial) != 0 ||
	    sca_fingerprint(old, fpr, sizeof(fpr)) != 0 || strcmp(fpr, want_fpr) != 0)
		snprintf(why, whyn, "certificate is not the one this request came with");
	else if (b64u_decode(proof, strlen(proof), 256, &sig, &slen) != 0)
		snprintf(why, whyn, "proof is not base64url of at most 256 bytes");
	else if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(old)) != 1 ||
	    EVP_DigestVerifyUpdate(md, KP_RENEW_CONTEXT, strlen(KP_RENEW_CONTEXT)) != 1 ||
	    EVP_DigestVerifyUpdate(md, csr, strlen(csr)) != 1 ||
	    EVP_DigestVerifyFinal(md, sig, slen) != 1)
		snprintf(why, whyn, "proof is not a signature by the certificate's key");
	else {
		*from = renew_from(kp, old);
		ok = 1;
	}
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	free(sig);
	X509_free(old);
	return ok ? 0 : -1;
}

json_t *
kp_renew(struct kp *kp, const json_t *req)
{
	const char *serial = json_string_value(json_object_get(req, "serial"));
	const char *csr = json_string_value(json_object_get(req, "csr"));
	const char *old_pem = json_string_value(json_object_get(req, "certificate"));
	const char *proof = json_string_value(json_object_get(req, "proof"));
	const char *fpr_req = json_string_value(json_object_get(req, "fingerprint"));
	char name[SV_NAME_MAX + 1], nserial[SCA_HEX_MAX], fpr[SCA_HEX_MAX], detail[128];
	char old_fpr[SCA_HEX_MAX];
	int64_t old_na, from = 0, now = (int64_t)time(NULL);
	int old_ca = 0;
	X509 *cert = NULL;
	char *pem = NULL;
	json_t *resp;
	int r, nrev = 0;

	if (serial == NULL || csr == NULL || old_pem == NULL || proof == NULL ||
	    strlen(serial) > KP_SERIAL_MAX || strlen(csr) > SCA_PEM_MAX ||
	    strlen(old_pem) > SCA_PEM_MAX)
		return kp_problem(400, "malformed", "Bad request",
		    "renewal needs serial, csr, certificate and proof", 0);
	/* The shadow's bucket bounds what it can make the vault write: past it, no record. */
	if ((resp = kp_shadow_admit(kp, serial, fpr_req, name)) != NULL)
		return resp;
	if ((r = kp_txn(kp)) != 0 ||
	    (r = shadows_cert_info(kp->st, serial, &old_na, old_fpr, sizeof(old_fpr), &old_ca)) !=
		0)
		return kp_problem(503, "unavailable", "State unavailable", sv_errmsg(r), 5);
	if (check_proof(kp, serial, old_fpr, old_pem, proof, csr, &from, detail, sizeof(detail)) !=
	    0)
		return refuse_renew(kp, 403, "bad-proof", detail, name, serial);
	/* A certificate from an older CA renews at once: its CA is on its way out (kp_ca.c). */
	if (now < from && old_ca == kp->ca_version) {
		snprintf(detail, sizeof(detail), "this certificate can be renewed from %lld",
		    (long long)from);
		/* The time also as a member (RFC 9457 extension): a shadow that kept an older
		   window (shadow_renew_days changed since its issuance) takes the vault's. */
		resp = refuse_renew(kp, 403, "too-early", detail, name, serial);
		json_object_set_new(
		    json_object_get(resp, "problem"), "renew_from", json_integer((json_int_t)from));
		return resp;
	}
	if ((r = make_cert(kp, csr, name, &cert, nserial, fpr)) != 0)
		return refuse_renew(kp,
		    r == SV_EINVAL || r == SV_EDENIED || r == SV_ETOOBIG ? 400 : 500, "bad-csr",
		    sv_errmsg(r), name, serial);
	if ((r = shadows_renewed(kp->st, name, serial, nserial, fpr, not_after(cert),
		 kp->ca_version, &nrev)) != 0 ||
	    (r = sca_cert_pem(cert, &pem)) != 0) {
		resp = kp_problem(500, "internal", "Internal error", sv_errmsg(r), 0);
		goto out;
	}
	kp_shadows_reset(kp);
	if (nrev > 0)
		kp_push_peers(kp, NULL); /* an earlier renewal of the same certificate is revoked */
	kp_audit(kp, "renew",
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "shadow", name, "serial", nserial,
		"replaces", serial, "fingerprint", fpr, "decision", "allow", "revoked", nrev));
	metrics_add(kp->m, "shadowvault_renewals_total", 1, "result", "ok", NULL);
	sv_info("shadow %s renewed its certificate %s as %s", name, serial, nserial);
	resp = kp_ok(201,
	    json_pack("{s:s, s:s, s:I, s:I, s:s, s:O*, s:s, s:s*}", "certificate", pem, "serial",
		nserial, "not_after", (json_int_t)not_after(cert), "renew_from",
		(json_int_t)renew_from(kp, cert), "bundle_key", kp->bundle_pk, "key_chain",
		kp->bundle_chain, "ca", kp->ca_pem, "ca_links", kp->ca_links_pem));
out:
	free(pem);
	X509_free(cert);
	return resp;
}

json_t *
kp_whoami(struct kp *kp, const json_t *req)
{
	const char *serial = json_string_value(json_object_get(req, "serial"));
	const char *fpr_req = json_string_value(json_object_get(req, "fingerprint"));
	char name[SV_NAME_MAX + 1], fpr[SCA_HEX_MAX];
	int64_t na;
	json_t *resp;
	int r;

	if (serial == NULL || strlen(serial) > KP_SERIAL_MAX)
		return kp_problem(400, "malformed", "Bad request", "serial needed", 0);
	if ((resp = kp_shadow_admit(kp, serial, fpr_req, name)) != NULL)
		return resp;
	if ((r = shadows_cert_info(kp->st, serial, &na, fpr, sizeof(fpr), NULL)) != 0)
		return kp_problem(503, "unavailable", "State unavailable", sv_errmsg(r), 5);
	return kp_ok(200,
	    json_pack("{s:s, s:s, s:I, s:s, s:O*, s:s, s:s*}", "shadow", name, "serial", serial,
		"not_after", (json_int_t)na, "bundle_key", kp->bundle_pk, "key_chain",
		kp->bundle_chain, "ca", kp->ca_pem, "ca_links", kp->ca_links_pem));
}

void
kp_push_peers(struct kp *kp, const char *server_chain)
{
	kp_push_peers_key(kp, server_chain, NULL);
}

void
kp_push_peers_key(struct kp *kp, const char *server_chain, const char *server_key)
{
	json_t *revoked = NULL, *msg;

	if (kp->net == NULL)
		return;
	if (shadows_revoked(kp->st, &revoked) != 0) {
		sv_err("cannot tell netproc the revoked certificates: %s", sv_errmsg(SV_EDB));
		return;
	}
	msg = json_pack("{s:s, s:o, s:s*, s:s*}", "ca", kp->ca_pem, "revoked", revoked,
	    "server_chain", server_chain, "server_key", server_key);
	if (msg == NULL || ipc_put_json(bufferevent_get_output(kp->net), IPC_PEERS, 0, msg) != 0)
		sv_err("cannot queue the peer list for netproc");
	json_decref(msg);
}
