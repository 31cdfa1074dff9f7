/*
 * acmevault: ACME through the vault.  The account's directory, URL (kid) and
 * public JWK come from GET /v1/acme/accounts/{name}; every JWS comes from
 * POST /v1/acme/accounts/{name}/sign, so the account key never leaves the
 * vault's HSM.  This is the acme_sign_fn the ACME library calls, once per
 * attempt (badNonce retries are signed again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64.h"
#include "names.h"
#include "shadow.h"
#include "sv_err.h"

#define VA_RATE_RETRIES 3  /* waits for the vault's rate limit per signature */
#define VA_WAIT_MAX	10 /* longest Retry-After we wait for, in seconds */

int
va_account(struct shadow *s, const char *name, struct vacct *out)
{
	char url[1024];
	struct vault_resp r;
	const char *dir, *kid, *alg;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = sv_name_check(name, "account name")) != 0)
		return rc;
	if (s->api_url[0] == '\0')
		return sv_seterr(SV_ESTATE, "not enrolled: run `shadow enroll` first");
	snprintf(url, sizeof(url), "%s/v1/acme/accounts/%s", s->api_url, name);
	if ((rc = vault_call(s, "GET", url, NULL, 1, s->ca_file, &r)) != 0)
		return sv_preferr(rc, "vault");
	if (r.status != 200) {
		rc = sv_seterr(r.status == 403 ? SV_EDENIED
			: r.status == 404      ? SV_ENOTFOUND
					       : SV_EPROTO,
		    "the vault refused account %s (HTTP %ld): %s", name, r.status, r.detail);
		vault_resp_free(&r);
		return rc;
	}
	dir = json_string_value(json_object_get(r.body, "directory"));
	kid = json_string_value(json_object_get(r.body, "kid"));
	alg = json_string_value(json_object_get(r.body, "alg"));
	if (dir == NULL || kid == NULL || alg == NULL ||
	    !json_is_object(json_object_get(r.body, "jwk"))) {
		vault_resp_free(&r);
		return sv_seterr(
		    SV_EPROTO, "the vault's account answer lacks directory, kid, jwk or alg");
	}
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->alg, sizeof(out->alg), "%s", alg);
	out->directory = strdup(dir);
	out->kid = strdup(kid);
	out->jwk = json_incref(json_object_get(r.body, "jwk"));
	out->s = s;
	vault_resp_free(&r);
	if (out->directory == NULL || out->kid == NULL) {
		va_account_free(out);
		return SV_ENOMEM;
	}
	return 0;
}

void
va_account_free(struct vacct *a)
{
	free(a->directory);
	free(a->kid);
	json_decref(a->jwk);
	memset(a, 0, sizeof(*a));
}

/*
 * POST a signing request; when the vault's rate limit says "later" (429 with
 * a short Retry-After), wait and ask again, a bounded number of times.
 */
static int
sign_call(struct vacct *a, const char *endpoint, const json_t *body, struct vault_resp *r)
{
	int rc, tries = 0;

	for (;;) {
		if ((rc = vault_call(a->s, "POST", endpoint, body, 1, a->s->ca_file, r)) != 0)
			return rc;
		if (r->status != 429 || r->retry_after <= 0 || r->retry_after > VA_WAIT_MAX ||
		    ++tries > VA_RATE_RETRIES)
			return 0;
		shadow_progress(a->s, "the vault's rate limit: waiting %ld s", r->retry_after);
		vault_resp_free(r);
		sleep((unsigned)r->retry_after);
	}
}

int
va_sign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **jws_out)
{
	struct vacct *a = ctx;
	char endpoint[1024], *pb = NULL;
	struct vault_resp r;
	json_t *body;
	int rc;

	*jws_out = NULL;
	if (use_jwk || nonce == NULL)
		return sv_seterr(SV_EDENIED,
		    "a shadow never signs with the key itself (jwk): "
		    "account administration is done with vaultctl");
	if ((rc = b64u_encode(payload, plen, &pb)) != 0)
		return rc;
	body = json_pack("{s:s, s:s, s:s}", "url", url, "nonce", nonce, "payload", pb);
	free(pb);
	snprintf(endpoint, sizeof(endpoint), "%s/v1/acme/accounts/%s/sign", a->s->api_url, a->name);
	rc = body ? sign_call(a, endpoint, body, &r) : SV_ENOMEM;
	json_decref(body);
	if (rc != 0)
		return sv_preferr(rc, "vault");
	if (r.status != 200) {
		rc = sv_seterr(r.status == 403		     ? SV_EDENIED
			: r.status == 429 || r.status == 503 ? SV_EBUSY
							     : SV_EPROTO,
		    "the vault refused to sign (HTTP %ld): %s", r.status, r.detail);
		vault_resp_free(&r);
		return rc;
	}
	*jws_out = json_incref(r.body);
	a->signatures++;
	vault_resp_free(&r);
	return 0;
}
