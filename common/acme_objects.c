/*
 * ACME objects from the CA's JSON: directory, account, order,
 * authorization, challenge, ARI renewal window; the syntax checks for URLs,
 * nonces and tokens; and the matching _free() functions (see acme.h).  Pure
 * functions: no I/O, no globals.  Everything the CA says is checked against
 * a cap and a syntax before it is kept; a wrong member is SV_EPROTO naming
 * the member.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme.h"
#include "log.h"
#include "sv_err.h"

/* Longest plain string member we keep (challenge type, expires, ToS text...). */
#define STR_MAX 4096

static const char *const status_names[] = {
	"unknown",
	"pending",
	"ready",
	"processing",
	"valid",
	"invalid",
	"expired",
	"deactivated",
	"revoked",
};

const char *
acme_status_name(enum acme_status s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown";
	return status_names[s];
}

enum acme_status
acme_status_parse(const char *name)
{
	size_t i;

	for (i = 1; name != NULL && i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(name, status_names[i]) == 0)
			return (enum acme_status)i;
	return ACME_S_UNKNOWN;
}

/* ------------------------------------------------------------- syntax */

int
acme_url_check(const char *url)
{
	char esc[64];
	size_t len, i;

	if (url == NULL)
		return sv_seterr(SV_EINVAL, "no URL");
	if ((len = strnlen(url, ACME_URL_MAX + 1)) > ACME_URL_MAX)
		return sv_seterr(SV_EINVAL, "URL longer than %d bytes", ACME_URL_MAX);
	if (len < 9 || strncasecmp(url, "https://", 8) != 0 || url[8] == '/')
		return sv_seterr(SV_EINVAL, "URL \"%s\" is not https://HOST...",
		    sv_escape(url, len, esc, sizeof(esc)));
	for (i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return sv_seterr(SV_EINVAL, "URL \"%s\" has a space or control character",
			    sv_escape(url, len, esc, sizeof(esc)));
	return 0;
}

static int
b64u_chars(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

int
acme_nonce_check(const char *nonce, size_t len)
{
	if (len == 0 || len > ACME_NONCE_MAX || !b64u_chars(nonce, len))
		return sv_seterr(
		    SV_EPROTO, "Replay-Nonce is not 1..%d base64url characters", ACME_NONCE_MAX);
	return 0;
}

int
acme_token_check(const char *token)
{
	size_t len;

	if (token == NULL)
		return sv_seterr(SV_EPROTO, "challenge has no token");
	len = strnlen(token, ACME_TOKEN_MAX + 1);
	if (len == 0 || len > ACME_TOKEN_MAX || !b64u_chars(token, len))
		return sv_seterr(
		    SV_EPROTO, "challenge token is not 1..%d base64url characters", ACME_TOKEN_MAX);
	return 0;
}

/* ---------------------------------------------------------- members */

/* String member (at most max bytes, no NUL); absent: NULL unless required. */
static int
get_str(const json_t *o, const char *key, int required, size_t max, char **out)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL && !required)
		return 0;
	if (!json_is_string(v))
		return sv_seterr(
		    SV_EPROTO, "\"%s\" %s", key, v == NULL ? "missing" : "not a string");
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return sv_seterr(SV_EPROTO, "\"%s\" longer than %zu bytes or has NUL", key, max);
	if ((*out = strdup(json_string_value(v))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for \"%s\"", key);
	return 0;
}

/* https URL member. */
static int
get_url(const json_t *o, const char *key, int required, char **out)
{
	int rc;

	if ((rc = get_str(o, key, required, ACME_URL_MAX, out)) != 0 || *out == NULL)
		return rc;
	if (acme_url_check(*out) != 0) {
		free(*out);
		*out = NULL;
		sv_recode(SV_EPROTO);
		return sv_preferr(SV_EPROTO, "\"%s\"", key);
	}
	return 0;
}

static int
get_status(const json_t *o, enum acme_status *st)
{
	const json_t *v = json_object_get(o, "status");
	char esc[40];

	if (!json_is_string(v))
		return sv_seterr(SV_EPROTO, "\"status\" missing or not a string");
	if ((*st = acme_status_parse(json_string_value(v))) == ACME_S_UNKNOWN)
		return sv_seterr(SV_EPROTO, "unknown status \"%s\"",
		    sv_escape(json_string_value(v), json_string_length(v), esc, sizeof(esc)));
	return 0;
}

static int
get_ident(const json_t *j, struct acme_ident *id)
{
	int rc;

	memset(id, 0, sizeof(*id));
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "identifier is not an object");
	if ((rc = get_str(j, "type", 1, 32, &id->type)) != 0 ||
	    (rc = get_str(j, "value", 1, ACME_IDENT_MAX, &id->value)) != 0) {
		acme_ident_free(id);
		return sv_preferr(rc, "identifier");
	}
	return 0;
}

/* Optional "error" member: a problem document. */
static int
get_problem(const json_t *o, struct acme_problem **out)
{
	const json_t *v = json_object_get(o, "error");
	int rc;

	*out = NULL;
	if (v == NULL)
		return 0;
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for an error");
	if ((rc = acme_problem_parse(v, *out)) != 0) {
		free(*out);
		*out = NULL;
		return sv_preferr(rc, "\"error\"");
	}
	return 0;
}

/* Array member of 1..max (min 0 if allow_empty) elements. */
static int
get_array(const json_t *o, const char *key, size_t max, int allow_empty, const json_t **out)
{
	const json_t *v = json_object_get(o, key);

	*out = v;
	if (!json_is_array(v))
		return sv_seterr(SV_EPROTO, "\"%s\" missing or not an array", key);
	if ((json_array_size(v) == 0 && !allow_empty) || json_array_size(v) > max)
		return sv_seterr(SV_EPROTO, "\"%s\" has %zu elements (1..%zu allowed)", key,
		    json_array_size(v), max);
	return 0;
}

/* ---------------------------------------------------------- objects */

int
acme_dir_parse(const json_t *j, struct acme_dir *d)
{
	const json_t *meta;
	int rc;

	memset(d, 0, sizeof(*d));
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "directory is not an object");
	if ((rc = get_url(j, "newNonce", 1, &d->new_nonce)) != 0 ||
	    (rc = get_url(j, "newAccount", 1, &d->new_account)) != 0 ||
	    (rc = get_url(j, "newOrder", 1, &d->new_order)) != 0 ||
	    (rc = get_url(j, "revokeCert", 0, &d->revoke_cert)) != 0 ||
	    (rc = get_url(j, "keyChange", 0, &d->key_change)) != 0 ||
	    (rc = get_url(j, "newAuthz", 0, &d->new_authz)) != 0 ||
	    (rc = get_url(j, "renewalInfo", 0, &d->renewal_info)) != 0)
		goto out;
	if ((meta = json_object_get(j, "meta")) != NULL) {
		rc = SV_EPROTO;
		if (!json_is_object(meta)) {
			sv_seterr(rc, "\"meta\" is not an object");
			goto out;
		}
		/* termsOfService is often a data: URL (Pebble): text, not https. */
		if ((rc = get_str(meta, "termsOfService", 0, STR_MAX, &d->terms_of_service)) != 0 ||
		    (rc = get_str(meta, "website", 0, ACME_URL_MAX, &d->website)) != 0)
			goto out;
		d->external_account_required =
		    json_is_true(json_object_get(meta, "externalAccountRequired"));
		rc = SV_ENOMEM;
		if ((d->meta = json_deep_copy(meta)) == NULL)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		acme_dir_free(d);
		sv_preferr(rc, "directory");
	}
	return rc;
}

int
acme_account_parse(const json_t *j, struct acme_account *a)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "account is not an object");
	if ((rc = get_status(j, &a->status)) != 0 ||
	    (rc = get_url(j, "orders", 0, &a->orders)) != 0) {
		acme_account_free(a);
		return sv_preferr(rc, "account");
	}
	return 0;
}

static int
order_lists(const json_t *j, struct acme_order *o)
{
	const json_t *ids, *az;
	size_t i;
	int rc;

	if ((rc = get_array(j, "identifiers", ACME_IDENTS_MAX, 0, &ids)) != 0 ||
	    (rc = get_array(j, "authorizations", ACME_IDENTS_MAX, 1, &az)) != 0)
		return rc;
	if ((o->ids = calloc(json_array_size(ids), sizeof(*o->ids))) == NULL ||
	    (o->authzs = calloc(json_array_size(az) + 1, sizeof(*o->authzs))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for an order");
	for (i = 0; i < json_array_size(ids); i++, o->nids++)
		if ((rc = get_ident(json_array_get(ids, i), &o->ids[i])) != 0)
			return rc;
	for (i = 0; i < json_array_size(az); i++, o->nauthzs++) {
		const json_t *u = json_array_get(az, i);

		if (!json_is_string(u) || strlen(json_string_value(u)) != json_string_length(u) ||
		    acme_url_check(json_string_value(u)) != 0)
			return sv_seterr(SV_EPROTO, "authorization %zu is not an https URL", i);
		if ((o->authzs[i] = strdup(json_string_value(u))) == NULL)
			return sv_seterr(SV_ENOMEM, "acme: no memory for an order");
	}
	return 0;
}

int
acme_order_parse(const json_t *j, struct acme_order *o)
{
	int rc;

	memset(o, 0, sizeof(*o));
	o->retry_after = -1;
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "order is not an object");
	if ((rc = get_status(j, &o->status)) != 0 || (rc = order_lists(j, o)) != 0 ||
	    (rc = get_url(j, "finalize", 1, &o->finalize)) != 0 ||
	    (rc = get_url(j, "certificate", 0, &o->certificate)) != 0 ||
	    (rc = get_str(j, "expires", 0, 64, &o->expires)) != 0 ||
	    (rc = get_problem(j, &o->error)) != 0) {
		acme_order_free(o);
		return sv_preferr(rc, "order");
	}
	return 0;
}

int
acme_challenge_parse(const json_t *j, struct acme_challenge *c)
{
	int rc;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "challenge is not an object");
	if ((rc = get_str(j, "type", 1, 64, &c->type)) != 0 ||
	    (rc = get_url(j, "url", 1, &c->url)) != 0 || (rc = get_status(j, &c->status)) != 0 ||
	    (rc = get_str(j, "token", 0, ACME_TOKEN_MAX, &c->token)) != 0 ||
	    (c->token != NULL && (rc = acme_token_check(c->token)) != 0) ||
	    (rc = get_problem(j, &c->error)) != 0) {
		acme_challenge_free(c);
		return sv_preferr(rc, "challenge");
	}
	return 0;
}

static int
authz_body(const json_t *j, struct acme_authz *z)
{
	const json_t *chals, *w;
	size_t i;
	int rc;

	if ((rc = get_status(j, &z->status)) != 0 ||
	    (rc = get_ident(json_object_get(j, "identifier"), &z->id)) != 0 ||
	    (rc = get_str(j, "expires", 0, 64, &z->expires)) != 0 ||
	    (rc = get_array(j, "challenges", ACME_CHALL_MAX, 1, &chals)) != 0)
		return rc;
	if ((w = json_object_get(j, "wildcard")) != NULL && !json_is_boolean(w))
		return sv_seterr(SV_EPROTO, "\"wildcard\" is not a boolean");
	z->wildcard = json_is_true(w);
	if ((z->chals = calloc(json_array_size(chals) + 1, sizeof(*z->chals))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for challenges");
	for (i = 0; i < json_array_size(chals); i++, z->nchals++)
		if ((rc = acme_challenge_parse(json_array_get(chals, i), &z->chals[i])) != 0)
			return rc;
	return 0;
}

int
acme_authz_parse(const json_t *j, struct acme_authz *z)
{
	int rc;

	memset(z, 0, sizeof(*z));
	z->retry_after = -1;
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "authorization is not an object");
	if ((rc = authz_body(j, z)) != 0) {
		acme_authz_free(z);
		return sv_preferr(rc, "authorization");
	}
	return 0;
}

int
acme_renewal_parse(const json_t *j, struct acme_renewal *r)
{
	const json_t *w = json_object_get(j, "suggestedWindow");
	char *start = NULL, *end = NULL;
	int rc = SV_EPROTO;

	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	if (!json_is_object(w)) {
		sv_seterr(rc, "\"suggestedWindow\" missing or not an object");
		goto out;
	}
	if ((rc = get_str(w, "start", 1, 64, &start)) != 0 ||
	    (rc = get_str(w, "end", 1, 64, &end)) != 0)
		goto out;
	if ((rc = acme_rfc3339_parse(start, &r->start)) != 0 ||
	    (rc = acme_rfc3339_parse(end, &r->end)) != 0) {
		rc = sv_recode(SV_EPROTO);
		goto out;
	}
	if (r->end < r->start) {
		rc = sv_seterr(SV_EPROTO, "suggestedWindow ends before it starts");
		goto out;
	}
	/* explanationURL is for people: keep it only if it is a plain https URL. */
	if (get_url(j, "explanationURL", 0, &r->explanation) != 0)
		sv_clearerr();
	rc = 0;
out:
	free(start);
	free(end);
	if (rc != 0) {
		acme_renewal_free(r);
		sv_preferr(rc, "renewalInfo");
	}
	return rc;
}

const struct acme_challenge *
acme_authz_challenge(const struct acme_authz *z, const char *type)
{
	size_t i;

	for (i = 0; i < z->nchals; i++)
		if (strcmp(z->chals[i].type, type) == 0)
			return &z->chals[i];
	return NULL;
}

/* ------------------------------------------------------------- free */

void
acme_ident_free(struct acme_ident *id)
{
	if (id == NULL)
		return;
	free(id->type);
	free(id->value);
	id->type = id->value = NULL;
}

void
acme_dir_free(struct acme_dir *d)
{
	if (d == NULL)
		return;
	free(d->new_nonce);
	free(d->new_account);
	free(d->new_order);
	free(d->revoke_cert);
	free(d->key_change);
	free(d->new_authz);
	free(d->renewal_info);
	free(d->terms_of_service);
	free(d->website);
	json_decref(d->meta);
	memset(d, 0, sizeof(*d));
}

void
acme_account_free(struct acme_account *a)
{
	if (a == NULL)
		return;
	free(a->url);
	free(a->orders);
	memset(a, 0, sizeof(*a));
}

void
acme_order_free(struct acme_order *o)
{
	size_t i;

	if (o == NULL)
		return;
	free(o->url);
	for (i = 0; i < o->nids; i++)
		acme_ident_free(&o->ids[i]);
	free(o->ids);
	for (i = 0; i < o->nauthzs; i++)
		free(o->authzs[i]);
	free(o->authzs);
	free(o->finalize);
	free(o->certificate);
	free(o->expires);
	acme_problem_free(o->error);
	free(o->error);
	memset(o, 0, sizeof(*o));
	o->retry_after = -1;
}

void
acme_challenge_free(struct acme_challenge *c)
{
	if (c == NULL)
		return;
	free(c->type);
	free(c->url);
	free(c->token);
	acme_problem_free(c->error);
	free(c->error);
	memset(c, 0, sizeof(*c));
}

void
acme_authz_free(struct acme_authz *z)
{
	size_t i;

	if (z == NULL)
		return;
	free(z->url);
	acme_ident_free(&z->id);
	for (i = 0; i < z->nchals; i++)
		acme_challenge_free(&z->chals[i]);
	free(z->chals);
	free(z->expires);
	memset(z, 0, sizeof(*z));
	z->retry_after = -1;
}

void
acme_chain_free(struct acme_chain *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->pem);
	for (i = 0; i < c->nalt; i++)
		free(c->alternates[i]);
	memset(c, 0, sizeof(*c));
}

void
acme_renewal_free(struct acme_renewal *r)
{
	if (r == NULL)
		return;
	free(r->explanation);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
}
