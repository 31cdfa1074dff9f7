/*
 * ACME transport over libcurl: one easy handle per struct acme (so
 * connections are kept alive), HTTPS only, capped headers and bodies fed to
 * the pure parsers of acme_parse.c, Replay-Nonce bookkeeping, and signed POST
 * with badNonce retries (see acme.h).  Talks only to the CA named by the
 * directory URL (and whatever https URLs the CA hands out); never signs
 * anything itself: every JWS comes from the caller's acme_sign_fn.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acme_int.h"
#include "buf.h"
#include "log.h"
#include "sv_err.h"

#ifndef SV_VERSION
#define SV_VERSION "unknown"
#endif

/* Longest caller-supplied User-Agent suffix. */
#define UA_SUFFIX_MAX 128
/* Connect timeout ceiling, seconds (the whole request has timeout_s). */
#define CONNECT_TIMEOUT_MAX 10L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void
global_init_once(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
acme_global_init(void)
{
	if (pthread_once(&global_once, global_init_once) != 0 || global_rc != CURLE_OK)
		return sv_seterr(SV_EINTERNAL, "acme: curl_global_init failed: %s",
		    curl_easy_strerror(global_rc));
	return 0;
}

void
acme_global_cleanup(void)
{
	if (global_rc == CURLE_OK)
		curl_global_cleanup();
}

/* Data handed to the libcurl callbacks of one request. */
struct xfer {
	struct acme_resp *r;
	time_t now;
	int err; /* first error from a callback (its detail is set) */
};

static size_t
header_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;

	if (x->err == 0)
		x->err = acme_resp_header(x->r, buf, size * n, x->now);
	return x->err == 0 ? size * n : 0;
}

static size_t
body_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;

	if (x->err == 0)
		x->err = acme_resp_body(x->r, buf, size * n);
	return x->err == 0 ? size * n : 0;
}

/* The options every request has: HTTPS only, verified, timed out, capped. */
static int
setup_common(struct acme *a, const char *url, struct xfer *x, struct curl_slist *hdrs)
{
	CURL *c = a->curl;
	long ct = a->timeout_s < CONNECT_TIMEOUT_MAX ? a->timeout_s : CONNECT_TIMEOUT_MAX;

	curl_easy_reset(c); /* keeps live connections and TLS sessions */
	a->curlerr[0] = '\0';
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT, a->timeout_s) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, ct) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
	    (a->ca_file != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file) != CURLE_OK) ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, a->ua) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->curlerr) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HEADERDATA, x) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)svbuf_max(x->r->body)) !=
		CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK)
		return sv_seterr(SV_EINTERNAL, "acme: curl_easy_setopt failed (libcurl too old?)");
	return 0;
}

static int
setup_method(CURL *c, const char *method, const char *body, size_t blen)
{
	CURLcode cc;

	if (strcmp(method, "HEAD") == 0)
		cc = curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") == 0)
		cc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else if ((cc = curl_easy_setopt(c, CURLOPT_POST, 1L)) == CURLE_OK &&
	    (cc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen)) == CURLE_OK)
		cc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (cc != CURLE_OK)
		return sv_seterr(SV_EINTERNAL, "acme: curl_easy_setopt(%s) failed", method);
	return 0;
}

static struct curl_slist *
request_headers(const char *method, enum acme_body kind)
{
	struct curl_slist *h = NULL, *t;
	const char *lines[3];
	size_t n = 0, i;

	/* "Expect:" turns off 100-continue; the rest says what we send and want. */
	lines[n++] = "Expect:";
	if (strcmp(method, "POST") == 0)
		lines[n++] = "Content-Type: application/jose+json";
	if (kind == ACME_BODY_PEM)
		lines[n++] = "Accept: application/pem-certificate-chain";
	else if (kind == ACME_BODY_JSON)
		lines[n++] = "Accept: application/json";
	for (i = 0; i < n; i++) {
		if ((t = curl_slist_append(h, lines[i])) == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = t;
	}
	return h;
}

/* Remember what every response tells us: its nonce and its problem. */
static void
note_response(struct acme *a, const struct acme_resp *r)
{
	if (r->nonce != NULL)
		snprintf(a->nonce, sizeof(a->nonce), "%s", r->nonce);
	if (r->has_problem && acme_problem_copy(&a->last, &r->problem) == 0)
		a->has_last = 1;
}

/* One HTTP exchange into r (initialised by the caller). */
static int
http_do(struct acme *a, const char *method, const char *url, const char *body, size_t blen,
    struct acme_resp *r)
{
	struct xfer x = { r, time(NULL), 0 };
	struct curl_slist *hdrs;
	CURLcode cc;
	long status = 0;
	int rc;

	acme_problem_free(&a->last);
	a->has_last = 0;
	if ((hdrs = request_headers(method, r->kind)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for request headers");
	if ((rc = setup_common(a, url, &x, hdrs)) != 0 ||
	    (rc = setup_method(a->curl, method, body, blen)) != 0)
		goto out;
	cc = curl_easy_perform(a->curl);
	if (x.err != 0) {
		rc = sv_preferr(x.err, "%s %.200s", method, url);
		goto out;
	}
	if (cc == CURLE_FILESIZE_EXCEEDED) {
		rc = sv_seterr(SV_ETOOBIG,
		    "%s %.200s: response body larger than %zu bytes (by its "
		    "Content-Length)",
		    method, url, svbuf_max(r->body));
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = sv_seterr(SV_ENET, "%s %.200s: %s", method, url,
		    a->curlerr[0] != '\0' ? a->curlerr : curl_easy_strerror(cc));
		goto out;
	}
	if (curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status > 0)
		r->status = status;
	if ((rc = acme_resp_finish(r, url)) != 0 && rc != SV_ECA)
		sv_preferr(rc, "%s", method);
out:
	/* Even a failed exchange may carry a usable nonce. */
	note_response(a, r);
	/* The handle must not keep pointers to this request's memory. */
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return rc;
}

int
acme_get(struct acme *a, const char *url, enum acme_body kind, struct acme_resp *r)
{
	int rc;

	if ((rc = acme_resp_init(r, kind)) != 0)
		return rc;
	if ((rc = acme_url_check(url)) != 0)
		return rc;
	return http_do(a, "GET", url, NULL, 0, r);
}

/* Make sure a nonce is cached: HEAD newNonce unless one is (http_do keeps it). */
int
acme_nonce_prefetch(struct acme *a)
{
	struct acme_resp r;
	int rc;

	if (a->nonce[0] != '\0')
		return 0;
	a->st.nonce_heads++;
	if ((rc = acme_resp_init(&r, ACME_BODY_NONE)) != 0)
		return rc;
	rc = http_do(a, "HEAD", a->dir.new_nonce, NULL, 0, &r);
	if (rc == 0 && r.nonce == NULL)
		rc = sv_seterr(
		    SV_EPROTO, "newNonce %.200s answered without a Replay-Nonce", a->dir.new_nonce);
	acme_resp_free(&r);
	return rc;
}

/* Take the cached nonce (it is used once), fetching one first if none is. */
int
acme_nonce_take(struct acme *a, char *out, size_t outsz)
{
	int rc;

	if ((rc = acme_nonce_prefetch(a)) != 0)
		return rc;
	snprintf(out, outsz, "%s", a->nonce);
	a->nonce[0] = '\0';
	return 0;
}

/* Sign (url, nonce, payload) and serialise the JWS for the wire. */
static int
sign_body(acme_sign_fn sign, void *ctx, const char *url, const char *nonce, const char *pl,
    int use_jwk, char **body)
{
	json_t *jws = NULL;
	int rc;

	*body = NULL;
	if ((rc = sign(ctx, url, nonce, (const uint8_t *)pl, strlen(pl), use_jwk, &jws)) != 0)
		return rc;
	if (jws == NULL)
		return sv_seterr(SV_EINTERNAL, "acme: signer returned no JWS");
	*body = json_dumps(jws, JSON_COMPACT);
	json_decref(jws);
	return *body == NULL ? sv_seterr(SV_ENOMEM, "acme: serialising a JWS") : 0;
}

/* The compact JSON text of payload; NULL (POST-as-GET) is "".  Caller frees. */
static char *
payload_text(const json_t *payload)
{
	return payload != NULL ? json_dumps(payload, JSON_COMPACT) : strdup("");
}

int
acme_sign_ahead(acme_sign_fn sign, void *ctx, const char *url, const char *nonce,
    const json_t *payload, char **body)
{
	char *pl;
	int rc;

	*body = NULL;
	if (sign == NULL || url == NULL || nonce == NULL)
		return sv_seterr(
		    SV_EINVAL, "acme: signing ahead needs a signer, a URL and a nonce");
	if ((rc = acme_url_check(url)) != 0)
		return rc;
	if ((pl = payload_text(payload)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: serialising a payload");
	rc = sign_body(sign, ctx, url, nonce, pl, 0, body);
	free(pl);
	return rc;
}

/* acme_post(), whose first attempt sends ahead (signed already) if it is not NULL. */
static int
post(struct acme *a, const char *url, const json_t *payload, int use_jwk, acme_sign_fn sign,
    void *ctx, enum acme_body kind, struct acme_resp *r, const char *ahead)
{
	char nonce[ACME_NONCE_MAX + 1], *pl = NULL, *body = NULL;
	const char *send;
	unsigned attempt;
	int rc;

	if ((rc = acme_resp_init(r, kind)) != 0)
		return rc;
	if ((rc = acme_url_check(url)) != 0)
		return rc;
	if (sign == NULL)
		return sv_seterr(SV_EINVAL, "acme: no signer");
	if ((pl = payload_text(payload)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: serialising a payload");
	a->st.posts++;
	for (attempt = 0;; attempt++) {
		if (attempt == 0 && ahead != NULL)
			send = ahead;
		else if ((rc = acme_nonce_take(a, nonce, sizeof(nonce))) != 0 ||
		    (rc = sign_body(sign, ctx, url, nonce, pl, use_jwk, &body)) != 0)
			break;
		else
			send = body;
		acme_resp_free(r);
		if ((rc = acme_resp_init(r, kind)) != 0)
			break;
		a->st.attempts++;
		rc = http_do(a, "POST", url, send, strlen(send), r);
		free(body);
		body = NULL;
		if (rc != SV_ECA || !acme_problem_is(&r->problem, "badNonce") ||
		    attempt >= ACME_BADNONCE_RETRIES)
			break;
		/* Retry with the nonce the error carried (http_do kept it). */
		a->st.bad_nonces++;
	}
	free(pl);
	return rc;
}

int
acme_post(struct acme *a, const char *url, const json_t *payload, int use_jwk, acme_sign_fn sign,
    void *ctx, enum acme_body kind, struct acme_resp *r)
{
	return post(a, url, payload, use_jwk, sign, ctx, kind, r, NULL);
}

int
acme_post_ahead(struct acme *a, const char *url, const char *ahead, acme_sign_fn sign, void *ctx,
    enum acme_body kind, struct acme_resp *r)
{
	return post(a, url, NULL, 0, sign, ctx, kind, r, ahead);
}

static int
open_strings(struct acme *a, const struct acme_opts *o)
{
	size_t ul = o->user_agent != NULL ? strlen(o->user_agent) : 0, i;

	for (i = 0; i < ul; i++)
		if ((unsigned char)o->user_agent[i] < 0x20 ||
		    (unsigned char)o->user_agent[i] >= 0x7f)
			return sv_seterr(SV_EINVAL, "acme: User-Agent has a control character");
	if (ul > UA_SUFFIX_MAX)
		return sv_seterr(SV_EINVAL, "acme: User-Agent longer than %d bytes", UA_SUFFIX_MAX);
	/* Say which file, rather than libcurl's "error setting certificate file". */
	if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0)
		return sv_seterr(SV_ECONFIG, "acme: CA file %s: %s", o->ca_file, strerror(errno));
	if ((a->ua = malloc(sizeof("shadowvault/" SV_VERSION " ") + ul)) == NULL ||
	    (a->dir_url = strdup(o->directory_url)) == NULL ||
	    (o->ca_file != NULL && (a->ca_file = strdup(o->ca_file)) == NULL))
		return sv_seterr(SV_ENOMEM, "acme: no memory");
	snprintf(a->ua, sizeof("shadowvault/" SV_VERSION " ") + ul, "shadowvault/%s%s%s",
	    SV_VERSION, ul > 0 ? " " : "", ul > 0 ? o->user_agent : "");
	return 0;
}

int
acme_open(const struct acme_opts *o, struct acme **out)
{
	struct acme_resp r = { 0 };
	struct acme *a;
	int rc;

	*out = NULL;
	if (o == NULL || o->directory_url == NULL)
		return sv_seterr(SV_EINVAL, "acme: no directory URL");
	if ((rc = acme_url_check(o->directory_url)) != 0)
		return sv_preferr(rc, "acme: directory");
	if (o->timeout_s < 0)
		return sv_seterr(SV_EINVAL, "acme: negative timeout");
	if ((rc = acme_global_init()) != 0)
		return rc;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory");
	a->timeout_s = o->timeout_s > 0 ? o->timeout_s : ACME_TIMEOUT_DEFAULT;
	if ((rc = open_strings(a, o)) != 0)
		goto out;
	rc = sv_seterr(SV_EINTERNAL, "acme: curl_easy_init failed");
	if ((a->curl = curl_easy_init()) == NULL)
		goto out;
	if ((rc = acme_get(a, a->dir_url, ACME_BODY_JSON, &r)) != 0 ||
	    (rc = acme_dir_parse(r.json, &a->dir)) != 0) {
		if (rc != SV_ECA)
			sv_preferr(rc, "acme: directory %.200s", a->dir_url);
		goto out;
	}
	*out = a;
	a = NULL;
out:
	acme_resp_free(&r);
	acme_close(a);
	return rc;
}

void
acme_close(struct acme *a)
{
	if (a == NULL)
		return;
	if (a->curl != NULL)
		curl_easy_cleanup(a->curl);
	acme_dir_free(&a->dir);
	acme_problem_free(&a->last);
	free(a->dir_url);
	free(a->ca_file);
	free(a->ua);
	free(a);
}

const struct acme_dir *
acme_directory(const struct acme *a)
{
	return &a->dir;
}

const struct acme_problem *
acme_last_problem(const struct acme *a)
{
	return a->has_last ? &a->last : NULL;
}

void
acme_stats_get(const struct acme *a, struct acme_stats *st)
{
	*st = a->st;
}
