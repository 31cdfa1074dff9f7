/*
 * ACME account operations: newAccount (and onlyReturnExisting look-up),
 * account fetch, keyChange rollover, revokeCert, and the ARI renewal window
 * (see acme.h).  Each builds its payload with jansson, sends it through
 * acme_post() (so signing stays with the caller's acme_sign_fn) and turns the
 * CA's answer into structs.  Orders and authorizations are in acme_order.c.
 */
#include <stdlib.h>
#include <string.h>

#include "acme_int.h"
#include "b64.h"
#include "log.h"
#include "sv_err.h"

/* Largest DER certificate we send in revokeCert. */
#define REVOKE_CERT_MAX (64 * 1024)

static int
account_payload(const struct acme_account_req *req, json_t **out)
{
	json_t *p, *c = NULL;
	size_t i;

	*out = NULL;
	if (req->ncontact > 0 && req->contact == NULL)
		return sv_seterr(SV_EINVAL, "newAccount: %zu contacts but no list", req->ncontact);
	if ((p = json_object()) == NULL)
		goto nomem;
	if (req->tos_agreed && json_object_set_new(p, "termsOfServiceAgreed", json_true()) != 0)
		goto nomem;
	if (req->only_existing && json_object_set_new(p, "onlyReturnExisting", json_true()) != 0)
		goto nomem;
	if (req->ncontact > 0) {
		if ((c = json_array()) == NULL || json_object_set(p, "contact", c) != 0)
			goto nomem;
		for (i = 0; i < req->ncontact; i++)
			if (req->contact[i] == NULL ||
			    json_array_append_new(c, json_string(req->contact[i])) != 0) {
				json_decref(c);
				json_decref(p);
				return sv_seterr(
				    SV_EINVAL, "newAccount: contact %zu is not a string", i);
			}
	}
	if (req->eab != NULL &&
	    json_object_set_new(p, "externalAccountBinding", json_deep_copy(req->eab)) != 0)
		goto nomem;
	json_decref(c);
	*out = p;
	return 0;
nomem:
	json_decref(c);
	json_decref(p);
	return sv_seterr(SV_ENOMEM, "newAccount: building the payload");
}

/* The account object in r, with its URL from Location (or known_url). */
static int
account_from(const struct acme_resp *r, const char *known_url, struct acme_account *out)
{
	const char *url = r->location != NULL ? r->location : known_url;
	int rc;

	if (url == NULL)
		return sv_seterr(SV_EPROTO, "newAccount answered without a Location (account URL)");
	if ((rc = acme_account_parse(r->json, out)) != 0)
		return rc;
	if ((out->url = strdup(url)) == NULL) {
		acme_account_free(out);
		return sv_seterr(SV_ENOMEM, "acme: no memory");
	}
	out->created = r->status == 201;
	return 0;
}

int
acme_account_new(struct acme *a, const struct acme_account_req *req, acme_sign_fn sign, void *ctx,
    struct acme_account *out)
{
	struct acme_resp r = { 0 };
	json_t *p = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (req == NULL)
		return sv_seterr(SV_EINVAL, "newAccount: no request");
	if ((rc = account_payload(req, &p)) != 0)
		return rc;
	rc = acme_post(a, a->dir.new_account, p, 1, sign, ctx, ACME_BODY_JSON, &r);
	if (rc == SV_ECA && acme_problem_is(&r.problem, "accountDoesNotExist"))
		rc = sv_recode(SV_ENOTFOUND);
	if (rc == 0)
		rc = account_from(&r, NULL, out);
	json_decref(p);
	acme_resp_free(&r);
	return rc;
}

int
acme_account_get(
    struct acme *a, const char *kid, acme_sign_fn sign, void *ctx, struct acme_account *out)
{
	struct acme_resp r = { 0 };
	int rc;

	memset(out, 0, sizeof(*out));
	/*
	 * POST-as-GET.  RFC 8555 7.3.3 also mentions an empty update "{}", but
	 * Pebble refuses that ("Use POST-as-GET"), and Boulder takes both.
	 */
	if ((rc = acme_post(a, kid, NULL, 0, sign, ctx, ACME_BODY_JSON, &r)) == 0)
		rc = account_from(&r, kid, out);
	acme_resp_free(&r);
	return rc;
}

/* The inner keyChange JWS, signed by the new key (jwk, url, no nonce). */
static int
key_change_inner(const char *url, const char *kid, const json_t *old_jwk, acme_sign_fn new_sign,
    void *new_ctx, json_t **inner)
{
	json_t *p;
	char *s = NULL;
	int rc;

	*inner = NULL;
	if ((p = json_pack("{s:s, s:O}", "account", kid, "oldKey", old_jwk)) == NULL ||
	    (s = json_dumps(p, JSON_COMPACT)) == NULL) {
		json_decref(p);
		return sv_seterr(SV_ENOMEM, "keyChange: building the inner payload");
	}
	if ((rc = new_sign(new_ctx, url, NULL, (const uint8_t *)s, strlen(s), 1, inner)) == 0 &&
	    *inner == NULL)
		rc = sv_seterr(SV_EINTERNAL, "keyChange: new-key signer returned no JWS");
	if (rc != 0)
		sv_preferr(rc, "keyChange: signing with the new key");
	free(s);
	json_decref(p);
	return rc;
}

int
acme_key_change(struct acme *a, const char *kid, const json_t *old_jwk, acme_sign_fn old_sign,
    void *old_ctx, acme_sign_fn new_sign, void *new_ctx)
{
	struct acme_resp r = { 0 };
	char msg[SV_ERRMSG_MAX];
	json_t *inner = NULL;
	int rc;

	if (a->dir.key_change == NULL)
		return sv_seterr(SV_EUNSUPP, "the CA's directory has no keyChange");
	if (kid == NULL || !json_is_object(old_jwk) || old_sign == NULL || new_sign == NULL)
		return sv_seterr(
		    SV_EINVAL, "keyChange: need the account URL, old JWK and two signers");
	if ((rc = acme_url_check(kid)) != 0)
		return sv_preferr(rc, "keyChange: account URL");
	if ((rc = key_change_inner(a->dir.key_change, kid, old_jwk, new_sign, new_ctx, &inner)) !=
	    0)
		return rc;
	/* The answer body is not specified (Boulder: the account; Pebble: empty). */
	rc = acme_post(a, a->dir.key_change, inner, 0, old_sign, old_ctx, ACME_BODY_NONE, &r);
	if (rc == SV_ECA && r.status == 409) {
		/* RFC 8555 7.3.5: Location names the account that has the new key. */
		snprintf(msg, sizeof(msg), "%s", sv_errmsg(rc));
		rc = sv_seterr(SV_EEXIST,
		    "keyChange: the new key already belongs to account %.200s; %s",
		    r.location != NULL ? r.location : "(not named)", msg);
	}
	json_decref(inner);
	acme_resp_free(&r);
	return rc;
}

int
acme_revoke(struct acme *a, const uint8_t *cert_der, size_t len, int reason, int use_jwk,
    acme_sign_fn sign, void *ctx)
{
	struct acme_resp r = { 0 };
	json_t *p = NULL;
	char *b = NULL;
	int rc;

	if (a->dir.revoke_cert == NULL)
		return sv_seterr(SV_EUNSUPP, "the CA's directory has no revokeCert");
	if (cert_der == NULL || len == 0 || len > REVOKE_CERT_MAX || reason > 10)
		return sv_seterr(SV_EINVAL, "revokeCert: bad certificate or reason");
	if ((rc = b64u_encode(cert_der, len, &b)) != 0)
		return rc;
	rc = sv_seterr(SV_ENOMEM, "revokeCert: building the payload");
	if ((p = json_pack("{s:s}", "certificate", b)) == NULL ||
	    (reason >= 0 && json_object_set_new(p, "reason", json_integer(reason)) != 0))
		goto out;
	rc = acme_post(a, a->dir.revoke_cert, p, use_jwk, sign, ctx, ACME_BODY_NONE, &r);
out:
	free(b);
	json_decref(p);
	acme_resp_free(&r);
	return rc;
}

int
acme_renewal_info(struct acme *a, X509 *cert, struct acme_renewal *out)
{
	struct acme_resp r = { 0 };
	char *id = NULL, *url = NULL;
	size_t bl;
	int rc;

	memset(out, 0, sizeof(*out));
	out->retry_after = -1;
	if (a->dir.renewal_info == NULL)
		return sv_seterr(SV_EUNSUPP, "the CA's directory has no renewalInfo (ARI)");
	if ((rc = acme_ari_certid(cert, &id)) != 0)
		return rc;
	bl = strlen(a->dir.renewal_info);
	rc = sv_seterr(SV_ENOMEM, "acme: no memory");
	if ((url = malloc(bl + 1 + strlen(id) + 1)) == NULL)
		goto out;
	memcpy(url, a->dir.renewal_info, bl);
	/* renewalInfo "/" CertID, without doubling a trailing slash. */
	snprintf(url + bl, strlen(id) + 2, "%s%s", bl > 0 && url[bl - 1] == '/' ? "" : "/", id);
	if ((rc = acme_get(a, url, ACME_BODY_JSON, &r)) != 0 ||
	    (rc = acme_renewal_parse(r.json, out)) != 0)
		goto out;
	out->retry_after = r.retry_after;
out:
	free(id);
	free(url);
	acme_resp_free(&r);
	return rc;
}
