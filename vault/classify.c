/*
 * Classifier of the ACME requests vaultd's key process is asked to sign (see
 * classify.h for the rules).  The key process calls cls_classify() with the
 * shadow's {url, payload} and the account's known URLs before policy and
 * signing; the result feeds pol_eval() and the audit record.
 *
 * Pure code over libcurl's URL parser (no transfers), jansson and OpenSSL's
 * DER decoders: no I/O, no global state.  Everything here is untrusted input
 * from an authenticated but possibly compromised shadow, so every size is
 * capped before allocation, unknown JSON members are refused rather than
 * ignored, and untrusted text reaches error details only through sv_escape().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "classify.h"
#include "jwk.h"
#include "log.h"
#include "sv_err.h"

#define ESC_MAX 160 /* bytes of escaped untrusted text in a detail */
#define WHY_MAX 96

/* A URL as curl parsed it: host lower-cased, port resolved to a number. */
struct url_parts {
	char *host, *path, *query; /* from curl (curl_free); query NULL when absent */
	unsigned long port;
};

static void
url_free(struct url_parts *u)
{
	curl_free(u->host);
	curl_free(u->path);
	curl_free(u->query);
	memset(u, 0, sizeof(*u));
}

/* RFC 3986 characters: unreserved, reserved and '%', minus '#'. */
static int
url_char_ok(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("-._~:/?[]@!$&'()*+,;=%", c) != NULL;
}

/*
 * Checks on the raw string before curl sees it: curl accepts forms (no
 * authority "https:///x", backslashes, spaces) that other parsers read
 * differently, and the vault signs the raw string, not curl's reading of it.
 */
static int
url_raw_check(const char *s, char *why, size_t whysz)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '#') {
			snprintf(why, whysz, "it has a fragment");
			return SV_EDENIED;
		}
		if (!url_char_ok((unsigned char)s[i])) {
			snprintf(why, whysz, "character 0x%02x is not allowed",
			    (unsigned)(unsigned char)s[i]);
			return SV_EDENIED;
		}
	}
	if (strncasecmp(s, "https://", 8) != 0) {
		snprintf(why, whysz, "scheme is not https");
		return SV_EDENIED;
	}
	if (s[8] == '\0' || s[8] == '/' || s[8] == '?') {
		snprintf(why, whysz, "no host");
		return SV_EDENIED;
	}
	return 0;
}

/* 1 if curl has part p of h (any value, even empty). */
static int
url_has(CURLU *h, CURLUPart p)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(h, p, &v, 0);

	curl_free(v);
	return rc == CURLUE_OK;
}

/* Fetch the parts of h into u; why says what is wrong. */
static int
url_parts_get(CURLU *h, struct url_parts *u, char *why, size_t whysz)
{
	char *port = NULL, *end, *p;
	CURLUcode rc;

	if (url_has(h, CURLUPART_USER) || url_has(h, CURLUPART_PASSWORD) ||
	    url_has(h, CURLUPART_OPTIONS)) {
		snprintf(why, whysz, "it has user information");
		return SV_EDENIED;
	}
	if (url_has(h, CURLUPART_FRAGMENT)) {
		snprintf(why, whysz, "it has a fragment");
		return SV_EDENIED;
	}
	if (curl_url_get(h, CURLUPART_HOST, &u->host, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PATH, &u->path, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		return sv_seterr(SV_ENOMEM, "url: curl_url_get failed");
	rc = curl_url_get(h, CURLUPART_QUERY, &u->query, 0);
	if (rc != CURLUE_OK && rc != CURLUE_NO_QUERY) {
		curl_free(port);
		return sv_seterr(SV_ENOMEM, "url: curl_url_get failed");
	}
	u->port = strtoul(port, &end, 10);
	curl_free(port);
	for (p = u->host; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

/*
 * Parse s into u (zeroed first; url_free() it even on error).  Returns 0,
 * SV_EDENIED or SV_EINVAL with the reason in why (no detail set), SV_ETOOBIG,
 * or SV_ENOMEM (detail set).
 */
static int
url_parse(const char *s, struct url_parts *u, char *why, size_t whysz)
{
	CURLU *h;
	CURLUcode rc;
	int r;

	memset(u, 0, sizeof(*u));
	if (strnlen(s, CLS_URL_MAX + 1) > CLS_URL_MAX) {
		snprintf(why, whysz, "longer than %d bytes", CLS_URL_MAX);
		return SV_ETOOBIG;
	}
	if ((r = url_raw_check(s, why, whysz)) != 0)
		return r;
	if ((h = curl_url()) == NULL)
		return sv_seterr(SV_ENOMEM, "url: curl_url failed");
	/* No CURLU_NON_SUPPORT_SCHEME, no default scheme: only what curl knows. */
	if ((rc = curl_url_set(h, CURLUPART_URL, s, 0)) != CURLUE_OK) {
		snprintf(why, whysz, "%s", curl_url_strerror(rc));
		r = rc == CURLUE_OUT_OF_MEMORY ? sv_seterr(SV_ENOMEM, "url: out of memory")
					       : SV_EINVAL;
		goto out;
	}
	r = url_parts_get(h, u, why, whysz);
out:
	curl_url_cleanup(h);
	return r;
}

/* Same host, port, path and query. */
static int
url_same(const struct url_parts *x, const struct url_parts *y)
{
	if (strcmp(x->host, y->host) != 0 || x->port != y->port || strcmp(x->path, y->path) != 0)
		return 0;
	if (x->query == NULL || y->query == NULL)
		return x->query == y->query;
	return strcmp(x->query, y->query) == 0;
}

/* One URL as parsed once: r is url_parse()'s result (or SV_ENOTFOUND for no URL). */
struct parsed_url {
	int r;
	char why[WHY_MAX];
	struct url_parts p;
};

enum { K_NONCE, K_ACCOUNT, K_KEYCHANGE, K_KID, K_ORDER, K_REVOKE, K_COUNT };

struct cls_urls {
	struct parsed_url dir;		  /* the directory URL */
	struct parsed_url known[K_COUNT]; /* the URLs a request is compared with */
};

/* Parse s (may be NULL) into u; SV_ENOMEM is the only error, a bad URL is kept as such. */
static int
parse_one(const char *s, struct parsed_url *u)
{
	memset(u, 0, sizeof(*u));
	if (s == NULL) {
		u->r = SV_ENOTFOUND;
		return 0;
	}
	u->r = url_parse(s, &u->p, u->why, sizeof(u->why));
	return u->r == SV_ENOMEM ? SV_ENOMEM : 0;
}

static void
urls_clear(struct cls_urls *u)
{
	size_t i;

	url_free(&u->dir.p);
	for (i = 0; i < K_COUNT; i++)
		url_free(&u->known[i].p);
}

static int
urls_fill(const struct cls_account *a, struct cls_urls *u)
{
	const char *known[K_COUNT];
	size_t i;
	int r;

	memset(u, 0, sizeof(*u));
	if (a->directory_url == NULL)
		return sv_seterr(SV_EINVAL, "cls_urls_parse: no directory URL");
	known[K_NONCE] = a->new_nonce;
	known[K_ACCOUNT] = a->new_account;
	known[K_KEYCHANGE] = a->key_change;
	known[K_KID] = a->kid;
	known[K_ORDER] = a->new_order;
	known[K_REVOKE] = a->revoke_cert;
	r = parse_one(a->directory_url, &u->dir);
	for (i = 0; i < K_COUNT && r == 0; i++)
		r = parse_one(known[i], &u->known[i]);
	if (r != 0)
		urls_clear(u);
	return r;
}

int
cls_urls_parse(const struct cls_account *a, struct cls_urls **out)
{
	struct cls_urls *u;
	int r;

	*out = NULL;
	if ((u = malloc(sizeof(*u))) == NULL)
		return SV_ENOMEM;
	if ((r = urls_fill(a, u)) != 0) {
		free(u);
		return r;
	}
	*out = u;
	return 0;
}

void
cls_urls_free(struct cls_urls *u)
{
	if (u == NULL)
		return;
	urls_clear(u);
	free(u);
}

/*
 * Parse url into req and check it is on the host of the directory URL.  A
 * known URL that breaks the rules matches nothing: requests to it are then
 * judged by payload shape, which fails safe (see classify.h).
 */
static int
url_check(const struct cls_account *a, const struct parsed_url *dir, const char *url,
    struct url_parts *req)
{
	char why[WHY_MAX] = "", esc[ESC_MAX];
	int r;

	sv_escape(url, CLS_URL_MAX, esc, sizeof(esc));
	if (dir->r != 0)
		return sv_seterr(SV_EINVAL, "account %s: directory URL is unusable: %s",
		    a->name != NULL ? a->name : "?", dir->why);
	r = url_parse(url, req, why, sizeof(why));
	if (r == SV_ENOMEM)
		return r;
	if (r == SV_EINVAL || r == SV_ETOOBIG)
		return sv_seterr(r, "url \"%s\" is malformed: %s", esc, why);
	if (r == 0) {
		if (strcmp(req->host, dir->p.host) != 0)
			snprintf(why, sizeof(why), "other host");
		else if (req->port != dir->p.port)
			snprintf(why, sizeof(why), "other port");
		else
			return 0;
		r = SV_EDENIED;
	}
	return sv_seterr(r, "url \"%s\" is not on the account's CA host %s:%lu (%s)", esc,
	    dir->p.host, dir->p.port, why);
}

/* Add name[0..len) (untrusted, maybe not NUL-free) to r->names, normalised, once. */
static int
names_add(struct cls_result *r, const char *name, size_t len)
{
	char norm[POL_NAME_BUF], *raw;
	size_t i;
	int e;

	if (memchr(name, '\0', len) != NULL)
		return sv_seterr(SV_EINVAL, "a name contains a NUL byte");
	if ((raw = malloc(len + 1)) == NULL)
		return sv_seterr(SV_ENOMEM, "classify: out of memory");
	memcpy(raw, name, len);
	raw[len] = '\0';
	e = pol_name_normalize(raw, norm, sizeof(norm));
	free(raw);
	if (e != 0)
		return e;
	for (i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i], norm) == 0)
			return 0;
	if (r->nnames == CLS_NAMES_MAX)
		return sv_seterr(SV_EINVAL, "more than %d names", CLS_NAMES_MAX);
	if (r->names == NULL && (r->names = calloc(CLS_NAMES_MAX, sizeof(char *))) == NULL)
		return sv_seterr(SV_ENOMEM, "classify: out of memory");
	if ((r->names[r->nnames] = strdup(norm)) == NULL)
		return sv_seterr(SV_ENOMEM, "classify: out of memory");
	r->nnames++;
	return 0;
}

/* Refuse a member of o that is not in allowed (NULL-terminated). */
static int
members_check(const json_t *o, const char *const *allowed, const char *what)
{
	const char *key;
	json_t *v;
	char esc[ESC_MAX];
	size_t i;

	json_object_foreach((json_t *)o, key, v)
	{
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++)
			;
		if (allowed[i] == NULL)
			return sv_seterr(SV_EDENIED, "%s: member \"%s\" is not allowed", what,
			    sv_escape(key, strlen(key), esc, sizeof(esc)));
	}
	return 0;
}

/* One newOrder identifier: {"type":"dns","value":name}. */
static int
order_identifier(const json_t *id, size_t i, struct cls_result *out)
{
	static const char *const allowed[] = { "type", "value", NULL };
	const json_t *type = json_object_get(id, "type"), *value = json_object_get(id, "value");
	char esc[ESC_MAX];
	int r;

	if (!json_is_object(id) || !json_is_string(type) || !json_is_string(value))
		return sv_seterr(SV_EINVAL,
		    "newOrder: identifier %zu is not an object with string type and value", i);
	if ((r = members_check(id, allowed, "newOrder: identifier")) != 0)
		return r;
	if (strcmp(json_string_value(type), "dns") != 0)
		return sv_seterr(SV_EDENIED,
		    "newOrder: only dns identifiers are allowed (identifier %zu has type \"%s\")",
		    i,
		    sv_escape(json_string_value(type), json_string_length(type), esc, sizeof(esc)));
	r = names_add(out, json_string_value(value), json_string_length(value));
	return r != 0 ? sv_preferr(r, "newOrder: identifier %zu", i) : 0;
}

static int
classify_new_order(const json_t *o, struct cls_result *out)
{
	static const char *const allowed[] = { "identifiers", "notBefore", "notAfter", "replaces",
		NULL };
	static const char *const strings[] = { "notBefore", "notAfter", "replaces" };
	const json_t *ids = json_object_get(o, "identifiers"), *v;
	size_t i, n;
	int r;

	if ((r = members_check(o, allowed, "newOrder")) != 0)
		return r;
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		v = json_object_get(o, strings[i]);
		if (v != NULL && !json_is_string(v))
			return sv_seterr(SV_EINVAL, "newOrder: %s is not a string", strings[i]);
	}
	if (!json_is_array(ids))
		return sv_seterr(SV_EINVAL, "newOrder: identifiers missing or not an array");
	n = json_array_size(ids);
	if (n == 0 || n > CLS_NAMES_MAX)
		return sv_seterr(
		    SV_EINVAL, "newOrder: %zu identifiers (allowed: 1 to %d)", n, CLS_NAMES_MAX);
	for (i = 0; i < n; i++)
		if ((r = order_identifier(json_array_get(ids, i), i, out)) != 0)
			return r;
	out->op = POL_NEW_ORDER;
	return 0;
}

/* Decode a base64url DER member: *der (caller frees), capped at CLS_DER_MAX. */
static int
der_decode(const json_t *v, const char *what, uint8_t **der, size_t *len)
{
	int r;

	if (!json_is_string(v))
		return sv_seterr(SV_EINVAL, "%s is missing or not a string", what);
	r = b64u_decode(json_string_value(v), json_string_length(v), CLS_DER_MAX, der, len);
	return r != 0 ? sv_preferr(r, "%s", what) : 0;
}

/* Names of gens: dNSName entries only; any other type is refused. */
static int
names_from_san(const GENERAL_NAMES *gens, const char *what, struct cls_result *out)
{
	const GENERAL_NAME *g;
	int i, r;

	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			return sv_seterr(SV_EDENIED,
			    "%s has a subjectAltName that is not a DNS name (type %d): only DNS "
			    "names are allowed",
			    what, g->type);
		r = names_add(out, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
		    (size_t)ASN1_STRING_length(g->d.dNSName));
		if (r != 0)
			return sv_preferr(r, "%s: subjectAltName", what);
	}
	return 0;
}

/* Every subject CN: an error when strict, else CNs that are not DNS names are skipped. */
static int
names_from_cn(const X509_NAME *subj, int strict, const char *what, struct cls_result *out)
{
	const X509_NAME_ENTRY *e;
	unsigned char *utf8;
	int i = -1, len, r;

	while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
		e = X509_NAME_get_entry(subj, i);
		if ((len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e))) < 0)
			return sv_preferr(sv_seterr_ssl(SV_EINVAL, "subject CN"), "%s", what);
		r = names_add(out, (const char *)utf8, (size_t)len);
		OPENSSL_free(utf8);
		if (r == SV_ENOMEM || (r != 0 && strict))
			return sv_preferr(r, "%s: subject CN", what);
		if (r != 0)
			sv_clearerr();
	}
	return 0;
}

/* The SAN extension in exts (absent is fine); refuses duplicates. */
static int
san_from_exts(const STACK_OF(X509_EXTENSION) * exts, const char *what, struct cls_result *out)
{
	GENERAL_NAMES *gens;
	int crit = -1, r;

	gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL && crit == -1)
		return 0;
	if (gens == NULL && crit == -2)
		return sv_seterr(SV_EINVAL, "%s has more than one subjectAltName extension", what);
	if (gens == NULL)
		return sv_preferr(sv_seterr_ssl(SV_EINVAL, "malformed subjectAltName"), "%s", what);
	r = names_from_san(gens, what, out);
	GENERAL_NAMES_free(gens);
	return r;
}

/*
 * The CSR's extensions.  OpenSSL reads only the first extensionRequest (or a
 * Microsoft one) while other parsers (Go's, the CA's) read every value of
 * every one: a second one could hide names from us, so refuse it.
 */
static int
csr_extensions(X509_REQ *req, STACK_OF(X509_EXTENSION) * *exts)
{
	int idx = -1, n = 0, i = -1;

	*exts = NULL;
	while ((i = X509_REQ_get_attr_by_NID(req, NID_ext_req, i)) >= 0) {
		idx = i;
		n++;
	}
	if (n > 1)
		return sv_seterr(SV_EINVAL, "finalize: the CSR has %d extension requests", n);
	if (X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0)
		return sv_seterr(SV_EINVAL, "finalize: the CSR has a Microsoft extension request");
	if (n == 0)
		return 0;
	if (X509_ATTRIBUTE_count(X509_REQ_get_attr(req, idx)) != 1)
		return sv_seterr(SV_EINVAL, "finalize: the CSR's extension request has %d values",
		    X509_ATTRIBUTE_count(X509_REQ_get_attr(req, idx)));
	if ((*exts = X509_REQ_get_extensions(req)) == NULL)
		return sv_seterr_ssl(
		    SV_EINVAL, "finalize: the CSR's extension request is malformed");
	return 0;
}

/* Refuse a CSR key that is an account key; keep its thumbprint for the audit. */
static int
csr_key_check(EVP_PKEY *pk, const struct cls_account *a, struct cls_result *out)
{
	size_t i;
	int r;

	if ((r = jwk_thumbprint_pkey(pk, out->csr_key_thumbprint)) != 0)
		return sv_preferr(r, "finalize: CSR key");
	/* Thumbprints are hashes of public keys: no secret, plain strcmp is fine. */
	for (i = 0; i < a->nthumbprints; i++)
		if (a->key_thumbprints[i] != NULL &&
		    strcmp(a->key_thumbprints[i], out->csr_key_thumbprint) == 0)
			return sv_seterr(SV_EDENIED,
			    "finalize: the CSR's key is an ACME account key (thumbprint %s)",
			    out->csr_key_thumbprint);
	return 0;
}

static int
csr_check(X509_REQ *req, const struct cls_account *a, struct cls_result *out)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	EVP_PKEY *pk;
	int r;

	if ((pk = X509_REQ_get0_pubkey(req)) == NULL)
		return sv_seterr_ssl(SV_EINVAL, "finalize: the CSR's public key does not parse");
	if (X509_REQ_verify(req, pk) != 1)
		return sv_seterr_ssl(SV_EINVAL, "finalize: the CSR's signature does not verify");
	if ((r = csr_extensions(req, &exts)) != 0)
		return r;
	if (exts != NULL && (r = san_from_exts(exts, "finalize: the CSR", out)) != 0)
		goto out;
	if ((r = names_from_cn(X509_REQ_get_subject_name(req), 1, "finalize: the CSR", out)) != 0)
		goto out;
	if (out->nnames == 0) {
		r = sv_seterr(SV_EINVAL, "finalize: the CSR names no DNS name");
		goto out;
	}
	r = csr_key_check(pk, a, out);
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

static int
classify_finalize(const json_t *csr, const struct cls_account *a, struct cls_result *out)
{
	X509_REQ *req = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t len;
	int r;

	if ((r = der_decode(csr, "finalize: csr", &der, &len)) != 0)
		return r;
	p = der;
	if ((req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL) {
		r = sv_seterr_ssl(SV_EINVAL, "finalize: the CSR does not parse");
		goto out;
	}
	if (p != der + len) {
		r = sv_seterr(SV_EINVAL, "finalize: %zu bytes of trailing data after the CSR",
		    (size_t)(der + len - p));
		goto out;
	}
	if ((r = csr_check(req, a, out)) == 0)
		out->op = POL_FINALIZE;
out:
	X509_REQ_free(req);
	free(der);
	return r;
}

/* revokeCert: {"certificate": b64url DER, "reason": 0..10}. */
static int
classify_revoke(const json_t *o, struct cls_result *out)
{
	static const char *const allowed[] = { "certificate", "reason", NULL };
	const json_t *reason = json_object_get(o, "reason");
	const unsigned char *p;
	X509 *cert = NULL;
	uint8_t *der = NULL;
	size_t len;
	int r;

	if ((r = members_check(o, allowed, "revokeCert")) != 0)
		return r;
	if (reason != NULL &&
	    (!json_is_integer(reason) || json_integer_value(reason) < 0 ||
		json_integer_value(reason) > 10))
		return sv_seterr(SV_EINVAL, "revokeCert: reason is not an integer from 0 to 10");
	if ((r = der_decode(
		 json_object_get(o, "certificate"), "revokeCert: certificate", &der, &len)) != 0)
		return r;
	p = der;
	if ((cert = d2i_X509(NULL, &p, (long)len)) == NULL) {
		r = sv_seterr_ssl(SV_EINVAL, "revokeCert: the certificate does not parse");
		goto out;
	}
	if (p != der + len) {
		r = sv_seterr(SV_EINVAL,
		    "revokeCert: %zu bytes of trailing data after the certificate",
		    (size_t)(der + len - p));
		goto out;
	}
	if ((r = san_from_exts(X509_get0_extensions(cert), "revokeCert: the certificate", out)) !=
	    0)
		goto out;
	if ((r = names_from_cn(
		 X509_get_subject_name(cert), 0, "revokeCert: the certificate", out)) != 0)
		goto out;
	if (out->nnames == 0) {
		r = sv_seterr(SV_EINVAL, "revokeCert: the certificate names no DNS name");
		goto out;
	}
	out->op = POL_REVOKE;
out:
	X509_free(cert);
	free(der);
	return r;
}

/* A URL that is none of the account's: judged by the payload's shape alone. */
static int
classify_other(
    const json_t *o, const struct cls_account *a, const char *esc, struct cls_result *out)
{
	const json_t *v;

	if (o == NULL) {
		out->op = POL_FETCH;
		return 0;
	}
	if (json_object_size(o) == 0) {
		out->op = POL_CHALLENGE;
		return 0;
	}
	if (json_object_size(o) == 1 && (v = json_object_get(o, "csr")) != NULL)
		return classify_finalize(v, a, out);
	v = json_object_get(o, "status");
	if (json_object_size(o) == 1 && json_is_string(v) &&
	    strcmp(json_string_value(v), "deactivated") == 0) {
		out->op = POL_AUTHZ_DEACTIVATE;
		return 0;
	}
	return sv_seterr(SV_EDENIED, "unrecognised ACME request to url \"%s\"", esc);
}

/* Parse a non-empty payload: a JSON object, or SV_EINVAL.  *o NULL when plen is 0. */
static int
payload_load(const uint8_t *payload, size_t plen, json_t **o)
{
	json_error_t err;
	char esc[ESC_MAX];

	*o = NULL;
	if (plen == 0)
		return 0;
	if ((*o = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return sv_seterr(SV_EINVAL, "payload is not valid JSON: %s (line %d, column %d)",
		    sv_escape(err.text, sizeof(err.text), esc, sizeof(esc)), err.line, err.column);
	if (!json_is_object(*o)) {
		json_decref(*o);
		*o = NULL;
		return sv_seterr(SV_EINVAL, "payload is not a JSON object");
	}
	return 0;
}

/* Which of the known URLs req is: index into the table, or -1. */
static int
known_find(const struct cls_urls *u, const struct url_parts *req)
{
	int i;

	for (i = 0; i < K_COUNT; i++)
		if (u->known[i].r == 0 && url_same(&u->known[i].p, req))
			return i;
	return -1;
}

/* Dispatch on the known URL k (-1: none) with the parsed payload o (NULL: empty). */
static int
classify_known(
    int k, const json_t *o, const struct cls_account *a, const char *esc, struct cls_result *out)
{
	static const char *const names[K_COUNT] = { "newNonce", "newAccount", "keyChange",
		"account", "newOrder", "revokeCert" };

	if (k < 0)
		return classify_other(o, a, esc, out);
	if (k == K_NONCE)
		return sv_seterr(SV_EDENIED,
		    "url \"%s\" is the newNonce URL: nonces are fetched with HEAD, never signed",
		    esc);
	if (k == K_KID) {
		out->op = o == NULL ? POL_FETCH : POL_ACCOUNT_UPDATE;
		return 0;
	}
	if (o == NULL)
		return sv_seterr(SV_EINVAL, "%s: empty payload", names[k]);
	switch (k) {
	case K_ACCOUNT:
		out->op = POL_NEW_ACCOUNT;
		out->use_jwk = 1;
		return 0;
	case K_KEYCHANGE:
		out->op = POL_KEY_CHANGE;
		return 0;
	case K_ORDER:
		return classify_new_order(o, out);
	default:
		return classify_revoke(o, out);
	}
}

int
cls_classify(const struct cls_account *a, const char *url, const uint8_t *payload, size_t plen,
    struct cls_result *out)
{
	struct url_parts req = { 0 };
	struct cls_urls local;
	const struct cls_urls *u = a != NULL ? a->urls : NULL;
	json_t *o = NULL;
	char esc[ESC_MAX];
	int r, k;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (a == NULL || a->directory_url == NULL || url == NULL || out == NULL ||
	    (payload == NULL && plen > 0) || (a->key_thumbprints == NULL && a->nthumbprints > 0))
		return sv_seterr(SV_EINVAL, "cls_classify: NULL argument");
	if (plen > CLS_PAYLOAD_MAX)
		return sv_seterr(SV_ETOOBIG, "payload of %zu bytes is over the %d-byte cap", plen,
		    CLS_PAYLOAD_MAX);
	memset(&local, 0, sizeof(local));
	if (u == NULL) {
		if ((r = urls_fill(a, &local)) != 0)
			goto out;
		u = &local;
	}
	if ((r = url_check(a, &u->dir, url, &req)) != 0)
		goto out;
	sv_escape(url, CLS_URL_MAX, esc, sizeof(esc));
	k = known_find(u, &req);
	if ((r = payload_load(payload, plen, &o)) != 0)
		goto out;
	r = classify_known(k, o, a, esc, out);
out:
	json_decref(o);
	url_free(&req);
	urls_clear(&local);
	if (r != 0)
		cls_result_free(out);
	return r;
}

void
cls_result_free(struct cls_result *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	memset(r, 0, sizeof(*r));
}
