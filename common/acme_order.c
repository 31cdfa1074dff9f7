/*
 * ACME order life cycle: newOrder, order and authorization fetches,
 * challenge answers, polling with Retry-After and back-off, finalize with
 * the caller's CSR, and certificate chain download (see acme.h).  Every
 * request goes through acme_post(), so signing stays with the caller.
 * An order may come back already "ready" (authorizations reused): nothing
 * here forces a challenge; the caller looks at the status.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme_int.h"
#include "b64.h"
#include "buf.h"
#include "clock.h"
#include "sv_err.h"

/* Largest DER CSR we send. */
#define CSR_MAX (64 * 1024)
/* Overall poll deadline when struct acme_poll leaves it 0. */
#define POLL_DEADLINE_MS 120000L

static int
order_payload(const struct acme_ident *ids, size_t n, const char *replaces, json_t **out)
{
	json_t *p = NULL, *arr = NULL;
	size_t i;

	*out = NULL;
	if (ids == NULL || n == 0 || n > ACME_IDENTS_MAX)
		return sv_seterr(SV_EINVAL, "newOrder: 1..%d identifiers needed", ACME_IDENTS_MAX);
	for (i = 0; i < n; i++)
		if (ids[i].type == NULL || ids[i].value == NULL ||
		    strlen(ids[i].value) > ACME_IDENT_MAX)
			return sv_seterr(
			    SV_EINVAL, "newOrder: identifier %zu is incomplete or too long", i);
	if ((arr = json_array()) == NULL || (p = json_pack("{s:O}", "identifiers", arr)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr,
			json_pack("{s:s, s:s}", "type", ids[i].type, "value", ids[i].value)) != 0)
			goto nomem;
	if (replaces != NULL && json_object_set_new(p, "replaces", json_string(replaces)) != 0)
		goto nomem;
	json_decref(arr);
	*out = p;
	return 0;
nomem:
	json_decref(arr);
	json_decref(p);
	return sv_seterr(SV_ENOMEM, "newOrder: building the payload");
}

/* Parse the order in r into o, keeping url (taken over by o). */
static int
order_from(const struct acme_resp *r, char *url, struct acme_order *o)
{
	int rc;

	if ((rc = acme_order_parse(r->json, o)) != 0) {
		free(url);
		return rc;
	}
	o->url = url;
	o->retry_after = r->retry_after;
	return 0;
}

int
acme_order_new(struct acme *a, const struct acme_ident *ids, size_t n, const char *replaces,
    acme_sign_fn sign, void *ctx, struct acme_order *out)
{
	struct acme_resp r = { 0 };
	json_t *p = NULL;
	char *url;
	int rc;

	memset(out, 0, sizeof(*out));
	out->retry_after = -1;
	if ((rc = order_payload(ids, n, replaces, &p)) != 0)
		return rc;
	if ((rc = acme_post(a, a->dir.new_order, p, 0, sign, ctx, ACME_BODY_JSON, &r)) != 0)
		goto out;
	rc = sv_seterr(SV_EPROTO, "newOrder answered without a Location (order URL)");
	if (r.location == NULL)
		goto out;
	rc = sv_seterr(SV_ENOMEM, "acme: no memory");
	if ((url = strdup(r.location)) == NULL)
		goto out;
	rc = order_from(&r, url, out);
out:
	json_decref(p);
	acme_resp_free(&r);
	return rc;
}

/* Replace *o with the order in r, keeping o->url.  On error *o is unchanged. */
static int
order_from_resp(struct acme_order *o, const struct acme_resp *r)
{
	struct acme_order n;
	char *keep;
	int rc;

	if ((keep = strdup(o->url)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory");
	if ((rc = order_from(r, keep, &n)) != 0)
		return rc;
	acme_order_free(o);
	*o = n;
	return 0;
}

/*
 * POST payload (NULL: POST-as-GET) to url and replace *o with the order in
 * the answer, keeping o->url.  On error *o is unchanged.
 */
static int
order_post(struct acme *a, struct acme_order *o, const char *url, const json_t *payload,
    acme_sign_fn sign, void *ctx)
{
	struct acme_resp r = { 0 };
	int rc;

	if ((rc = acme_post(a, url, payload, 0, sign, ctx, ACME_BODY_JSON, &r)) == 0)
		rc = order_from_resp(o, &r);
	acme_resp_free(&r);
	return rc;
}

int
acme_order_get(struct acme *a, struct acme_order *o, acme_sign_fn sign, void *ctx)
{
	if (o->url == NULL)
		return sv_seterr(SV_EINVAL, "acme: order has no URL");
	return order_post(a, o, o->url, NULL, sign, ctx);
}

int
acme_order_get_signed(
    struct acme *a, struct acme_order *o, const char *body, acme_sign_fn sign, void *ctx)
{
	struct acme_resp r = { 0 };
	int rc;

	if (o->url == NULL)
		return sv_seterr(SV_EINVAL, "acme: order has no URL");
	if (body == NULL)
		return acme_order_get(a, o, sign, ctx);
	if ((rc = acme_post_ahead(a, o->url, body, sign, ctx, ACME_BODY_JSON, &r)) == 0)
		rc = order_from_resp(o, &r);
	acme_resp_free(&r);
	return rc;
}

int
acme_authz_get(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_authz *out)
{
	struct acme_resp r = { 0 };
	int rc;

	memset(out, 0, sizeof(*out));
	out->retry_after = -1;
	if ((rc = acme_post(a, url, NULL, 0, sign, ctx, ACME_BODY_JSON, &r)) == 0 &&
	    (rc = acme_authz_parse(r.json, out)) == 0) {
		out->retry_after = r.retry_after;
		if ((out->url = strdup(url)) == NULL) {
			acme_authz_free(out);
			rc = sv_seterr(SV_ENOMEM, "acme: no memory");
		}
	}
	acme_resp_free(&r);
	return rc;
}

int
acme_authz_refresh(struct acme *a, struct acme_authz *z, acme_sign_fn sign, void *ctx)
{
	struct acme_authz n;
	int rc;

	if (z->url == NULL)
		return sv_seterr(SV_EINVAL, "acme: authorization has no URL");
	if ((rc = acme_authz_get(a, z->url, sign, ctx, &n)) != 0)
		return rc;
	acme_authz_free(z);
	*z = n;
	return 0;
}

int
acme_challenge_answer(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_challenge *out)
{
	struct acme_resp r = { 0 };
	json_t *empty;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	/* The answer is the empty object "{}" (not POST-as-GET's empty payload). */
	if ((empty = json_object()) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory");
	rc = acme_post(a, url, empty, 0, sign, ctx, ACME_BODY_JSON, &r);
	if (rc == 0 && out != NULL)
		rc = acme_challenge_parse(r.json, out);
	json_decref(empty);
	acme_resp_free(&r);
	return rc;
}

/* ---------------------------------------------------------------- polling */

static long
now_ms(void)
{
	return (long)(sv_mono_now() * 1000);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
is_final(enum acme_status s)
{
	return s == ACME_S_VALID || s == ACME_S_INVALID || s == ACME_S_EXPIRED ||
	    s == ACME_S_DEACTIVATED || s == ACME_S_REVOKED;
}

/* What the poll loop needs from an order or an authorization. */
struct pollee {
	const char *what;
	enum acme_status (*status)(const void *obj);
	long (*retry_after)(const void *obj);
	const char *(*url)(const void *obj);
	int (*refresh)(struct acme *a, void *obj, acme_sign_fn sign, void *ctx);
	int (*failed)(const void *obj); /* sets the SV_ECA detail of an invalid object */
};

static int
poll_loop(struct acme *a, const struct pollee *pe, void *obj, unsigned want,
    const struct acme_poll *p, acme_sign_fn sign, void *ctx)
{
	long deadline = p != NULL && p->deadline_ms > 0 ? p->deadline_ms : POLL_DEADLINE_MS;
	long start = now_ms(), left;
	enum acme_status st;
	unsigned attempt;
	int rc;

	for (attempt = 0;; attempt++) {
		st = pe->status(obj);
		if ((want & ACME_WANT(st)) != 0)
			return 0;
		if (st == ACME_S_INVALID)
			return pe->failed(obj);
		if (is_final(st))
			return sv_seterr(SV_ESTATE, "%s %.200s is %s, not what was waited for",
			    pe->what, pe->url(obj), acme_status_name(st));
		if ((left = deadline - (now_ms() - start)) <= 0)
			return sv_seterr(SV_ETIMEOUT, "%s %.200s still %s after %ld ms", pe->what,
			    pe->url(obj), acme_status_name(st), deadline);
		sleep_ms(acme_poll_delay_ms(pe->retry_after(obj), attempt, p, left));
		if ((rc = pe->refresh(a, obj, sign, ctx)) != 0)
			return rc;
	}
}

static enum acme_status
order_status(const void *o)
{
	return ((const struct acme_order *)o)->status;
}

static long
order_retry(const void *o)
{
	return ((const struct acme_order *)o)->retry_after;
}

static const char *
order_url(const void *o)
{
	return ((const struct acme_order *)o)->url;
}

static int
order_refresh(struct acme *a, void *o, acme_sign_fn sign, void *ctx)
{
	return acme_order_get(a, o, sign, ctx);
}

static int
problem_fail(const char *what, const char *url, const struct acme_problem *pr)
{
	char text[SV_ERRMSG_MAX];

	if (pr == NULL)
		return sv_seterr(
		    SV_ECA, "%s %.200s became invalid (the CA gave no error)", what, url);
	return sv_seterr(SV_ECA, "CA said: %s [%s %.200s is invalid]",
	    acme_problem_text(pr, text, sizeof(text)), what, url);
}

static int
order_failed(const void *o)
{
	const struct acme_order *ord = o;

	return problem_fail("order", ord->url, ord->error);
}

static enum acme_status
authz_status(const void *z)
{
	return ((const struct acme_authz *)z)->status;
}

static long
authz_retry(const void *z)
{
	return ((const struct acme_authz *)z)->retry_after;
}

static const char *
authz_url(const void *z)
{
	return ((const struct acme_authz *)z)->url;
}

static int
authz_refresh(struct acme *a, void *z, acme_sign_fn sign, void *ctx)
{
	return acme_authz_refresh(a, z, sign, ctx);
}

static int
authz_failed(const void *obj)
{
	const struct acme_authz *z = obj;
	size_t i;

	/* The reason is on the challenge that failed. */
	for (i = 0; i < z->nchals; i++)
		if (z->chals[i].error != NULL)
			return problem_fail("authorization", z->url, z->chals[i].error);
	return problem_fail("authorization", z->url, NULL);
}

int
acme_order_poll(struct acme *a, struct acme_order *o, unsigned want, const struct acme_poll *p,
    acme_sign_fn sign, void *ctx)
{
	static const struct pollee pe = { "order", order_status, order_retry, order_url,
		order_refresh, order_failed };

	if (o->url == NULL)
		return sv_seterr(SV_EINVAL, "acme: order has no URL");
	return poll_loop(a, &pe, o, want, p, sign, ctx);
}

int
acme_authz_poll(struct acme *a, struct acme_authz *z, unsigned want, const struct acme_poll *p,
    acme_sign_fn sign, void *ctx)
{
	static const struct pollee pe = { "authorization", authz_status, authz_retry, authz_url,
		authz_refresh, authz_failed };

	if (z->url == NULL)
		return sv_seterr(SV_EINVAL, "acme: authorization has no URL");
	return poll_loop(a, &pe, z, want, p, sign, ctx);
}

/* ------------------------------------------------ finalize and download */

int
acme_order_finalize(struct acme *a, struct acme_order *o, const uint8_t *csr_der, size_t csr_len,
    acme_sign_fn sign, void *ctx)
{
	json_t *p = NULL;
	char *b = NULL;
	int rc;

	if (o->status != ACME_S_READY)
		return sv_seterr(SV_ESTATE, "order %.200s is %s, not ready: cannot finalize",
		    o->url != NULL ? o->url : "(no URL)", acme_status_name(o->status));
	if (csr_der == NULL || csr_len == 0 || csr_len > CSR_MAX)
		return sv_seterr(
		    SV_EINVAL, "finalize: CSR missing or larger than %d bytes", CSR_MAX);
	if (o->url == NULL || o->finalize == NULL)
		return sv_seterr(SV_EINVAL, "finalize: order has no URL or finalize URL");
	if ((rc = b64u_encode(csr_der, csr_len, &b)) != 0)
		return rc;
	rc = sv_seterr(SV_ENOMEM, "finalize: building the payload");
	if ((p = json_pack("{s:s}", "csr", b)) == NULL)
		goto out;
	/* The answer is the order again (usually processing or valid). */
	rc = order_post(a, o, o->finalize, p, sign, ctx);
out:
	free(b);
	json_decref(p);
	return rc;
}

int
acme_cert_download(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_chain *out)
{
	struct acme_resp r = { 0 };
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = acme_post(a, url, NULL, 0, sign, ctx, ACME_BODY_PEM, &r)) != 0)
		goto out;
	rc = sv_seterr(SV_ENOMEM, "acme: no memory");
	if ((out->pem = strndup(svbuf_str(r.body), svbuf_len(r.body))) == NULL)
		goto out;
	out->len = svbuf_len(r.body);
	out->ncerts = r.ncerts; /* checked by acme_resp_finish() */
	/* Alternate chains: the URLs move from the response to out. */
	for (i = 0; i < r.nalt; i++) {
		out->alternates[out->nalt++] = r.alternates[i];
		r.alternates[i] = NULL;
	}
	r.nalt = 0;
	rc = 0;
out:
	if (rc != 0)
		acme_chain_free(out);
	acme_resp_free(&r);
	return rc;
}
