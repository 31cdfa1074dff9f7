/*
 * ACME (RFC 8555) client over libcurl, shared by `shadow` (every JWS signed
 * remotely by the vault) and `vaultctl` (account registration and keyChange,
 * JWS signed with an HSM key through the daemon).
 *
 * The library never signs: every POST goes through an acme_sign_fn callback
 * that turns (url, nonce, payload, use_jwk) into a complete flattened JWS.
 * The library passes the exact request URL, takes Replay-Nonce from every
 * response, uses each nonce once, and on badNonce calls the signer again with
 * the nonce the error carried (at most ACME_BADNONCE_RETRIES times), so a
 * remote signer signs each attempt afresh.
 *
 * Transport: HTTPS only (http:// and every other scheme are refused), peer
 * verified against the system store or opts.ca_file, a timeout per request,
 * no redirects, User-Agent "shadowvault/SV_VERSION", one libcurl handle per
 * struct acme (keep-alive).  Every response is capped (ACME_HDR_MAX for all
 * headers, ACME_JSON_MAX for JSON, ACME_PEM_MAX for a certificate chain):
 * over a cap is SV_ETOOBIG, never truncation.
 *
 * Errors (return values, detail through sv_errmsg()):
 *   SV_ECA     the CA sent a problem document: the detail is
 *              "CA said: <type>: <detail> (<subproblems>)" (type without the
 *              urn:ietf:params:acme:error: prefix), and acme_last_problem()
 *              gives it as a struct (with Retry-After for rateLimited); or a
 *              non-2xx answer without a problem document ("HTTP <status>").
 *   SV_ENET    transport failure: curl's error text and the URL.
 *   SV_EPROTO  malformed CA answer (bad JSON, missing members, bad URLs...).
 *   SV_ETOOBIG a response over its cap.
 *   SV_EINVAL  bad arguments (including a non-https URL).
 *   SV_EUNSUPP the directory lacks the endpoint (keyChange, renewalInfo).
 *   SV_ETIMEOUT a poll passed its deadline.
 *   SV_EEXIST  keyChange: the new key already belongs to another account (409).
 *   SV_ENOTFOUND newAccount onlyReturnExisting: no account for that key.
 *
 * Threads and signals: a struct acme is used by one thread at a time;
 * different handles may run in parallel once acme_global_init() has run.
 * libcurl runs with CURLOPT_NOSIGNAL (no SIGALRM tricks in threads), so it
 * does not ignore SIGPIPE for us: programs linking this set SIGPIPE to
 * SIG_IGN in main() (a peer closing a TLS connection must not kill them).  Pure functions (the
 * "parsing" section) touch no global state and are what the offline tests
 * and the fuzzer drive.
 */
#ifndef SV_ACME_H
#define SV_ACME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

struct svbuf;
struct jws_signer;

/* Size caps on what the CA sends us (checked before anything is kept). */
#define ACME_JSON_MAX	     (1024 * 1024) /* one JSON or problem+json body */
#define ACME_HDR_MAX	     (64 * 1024)   /* all header lines of one response */
#define ACME_PEM_MAX	     (256 * 1024)  /* one PEM certificate chain */
#define ACME_URL_MAX	     2048	   /* any URL we store or request */
#define ACME_NONCE_MAX	     256	   /* a Replay-Nonce value */
#define ACME_TOKEN_MAX	     256	   /* a challenge token */
#define ACME_IDENT_MAX	     255	   /* an identifier value (DNS name, IP) */
#define ACME_CTYPE_MAX	     128	   /* a Content-Type media type */
#define ACME_TEXT_MAX	     1024	   /* problem type/detail kept (escaped) */
#define ACME_IDENTS_MAX	     100	   /* identifiers / authorizations per order */
#define ACME_CHALL_MAX	     16		   /* challenges per authorization */
#define ACME_SUBPROB_MAX     8		   /* subproblems kept per problem */
#define ACME_ALT_MAX	     8		   /* Link rel="alternate" chains kept */
#define ACME_RETRY_AFTER_MAX (30L * 86400) /* Retry-After is clamped to this */

/*
 * badNonce retries per request.  A real CA rarely rejects a fresh nonce;
 * Pebble's PEBBLE_WFE_NONCEREJECT rejects a set percentage of good ones, and
 * with 30 % a request fails all of 1 + ACME_BADNONCE_RETRIES attempts with
 * probability 0.3^11 (about 2e-6).
 */
#define ACME_BADNONCE_RETRIES 10

#define ACME_TIMEOUT_DEFAULT 30 /* seconds per HTTP request */
#define ACME_ERROR_PREFIX    "urn:ietf:params:acme:error:"

/*
 * The signer: return in *jws_out a new flattened JWS (caller of the callback
 * = the library json_decref()s it) over payload[0..plen) whose protected
 * header has "url" = url, "nonce" = nonce and either "jwk" (use_jwk != 0:
 * newAccount, revokeCert with the certificate key, the inner keyChange JWS)
 * or "kid" (the account URL, which the signer knows).  nonce is NULL only
 * for the inner keyChange JWS, whose header must then have no nonce.  plen 0
 * is POST-as-GET.  Return 0 or a negative SV_E* code with a detail; the
 * library passes that code on unchanged.  Called again for every badNonce
 * retry, with the new nonce.
 */
typedef int (*acme_sign_fn)(void *ctx, const char *url, const char *nonce, const uint8_t *payload,
    size_t plen, int use_jwk, json_t **jws_out);

/* ---------------------------------------------------------------- objects */

enum acme_status {
	ACME_S_UNKNOWN = 0, /* absent or not one of the names below */
	ACME_S_PENDING,
	ACME_S_READY,
	ACME_S_PROCESSING,
	ACME_S_VALID,
	ACME_S_INVALID,
	ACME_S_EXPIRED,
	ACME_S_DEACTIVATED,
	ACME_S_REVOKED
};
#define ACME_WANT(s) (1u << (s)) /* status sets for the poll functions */

/* Name of a status ("ready"); "unknown" for ACME_S_UNKNOWN or out of range. */
const char *acme_status_name(enum acme_status s);

/* Status from its name; ACME_S_UNKNOWN for NULL or an unknown name. */
enum acme_status acme_status_parse(const char *name);

/* An identifier: type "dns" or "ip" and its value.  Strings are malloc'd. */
struct acme_ident {
	char *type;
	char *value;
};

struct acme_subproblem {
	char *type;	      /* escaped, may be NULL */
	char *detail;	      /* escaped, may be NULL */
	struct acme_ident id; /* escaped; both NULL when absent */
};

/*
 * A problem document (RFC 7807 / RFC 8555 6.7).  Text members are copies of
 * what the CA sent, escaped with sv_escape() and capped at ACME_TEXT_MAX, so
 * they are safe to log and print.  Free with acme_problem_free().
 */
struct acme_problem {
	char *type;	  /* "urn:ietf:params:acme:error:badNonce"; NULL if absent */
	char *detail;	  /* NULL if absent */
	long status;	  /* HTTP status in the document, 0 if absent */
	long retry_after; /* seconds from the response's Retry-After, -1 if absent */
	struct acme_subproblem *sub;
	size_t nsub;	   /* kept (at most ACME_SUBPROB_MAX) */
	size_t nsub_total; /* in the document */
};

/* The directory (RFC 8555 7.1.1).  URL members are https URLs or NULL. */
struct acme_dir {
	char *new_nonce, *new_account, *new_order;		   /* required */
	char *revoke_cert, *key_change, *new_authz, *renewal_info; /* optional */
	char *terms_of_service, *website;			   /* meta, optional */
	int external_account_required; /* meta.externalAccountRequired */
	json_t *meta;		       /* a copy of "meta", or NULL */
};

struct acme_account {
	char *url; /* the account URL ("kid"), from Location */
	enum acme_status status;
	char *orders; /* may be NULL */
	int created;  /* 1: 201 Created, 0: 200 (existing account) */
};

/* What to send to newAccount (RFC 8555 7.3). */
struct acme_account_req {
	const char *const *contact; /* "mailto:..." URLs; may be NULL */
	size_t ncontact;
	int tos_agreed;	   /* termsOfServiceAgreed */
	int only_existing; /* onlyReturnExisting: look up, never create */
	const json_t *eab; /* externalAccountBinding JWS, or NULL */
};

struct acme_order {
	char *url; /* the order URL (Location of newOrder); kept across refreshes */
	enum acme_status status;
	struct acme_ident *ids;
	size_t nids;
	char **authzs; /* authorization URLs */
	size_t nauthzs;
	char *finalize;
	char *certificate;	    /* NULL until the order is valid */
	char *expires;		    /* may be NULL (RFC 3339 text) */
	struct acme_problem *error; /* the order's "error", or NULL */
	long retry_after;	    /* from the last response, -1 if absent */
};

struct acme_challenge {
	char *type; /* "http-01", "dns-01", "tls-alpn-01", ... */
	char *url;
	char *token; /* checked with acme_token_check(); NULL if absent */
	enum acme_status status;
	struct acme_problem *error; /* NULL if absent */
};

struct acme_authz {
	char *url; /* kept across refreshes */
	enum acme_status status;
	struct acme_ident id;
	int wildcard;
	struct acme_challenge *chals;
	size_t nchals;
	char *expires;
	long retry_after;
};

/* A downloaded certificate chain.  Free with acme_chain_free(). */
struct acme_chain {
	char *pem; /* NUL-terminated PEM, leaf first; checked to hold only certificates */
	size_t len;
	size_t ncerts;
	char *alternates[ACME_ALT_MAX]; /* Link rel="alternate" URLs */
	size_t nalt;
};

/* ARI (RFC 9773) suggested renewal window. */
struct acme_renewal {
	time_t start, end;
	char *explanation; /* explanationURL or NULL */
	long retry_after;  /* seconds, -1 if absent */
};

/* Polling: 0 in any member takes the default in brackets. */
struct acme_poll {
	long first_ms;	  /* first wait without Retry-After [250], doubled each time */
	long max_wait_ms; /* cap on any one wait, Retry-After included [10000] */
	long deadline_ms; /* overall [120000] */
};

void acme_ident_free(struct acme_ident *id);
void acme_problem_free(struct acme_problem *p);
void acme_dir_free(struct acme_dir *d);
void acme_account_free(struct acme_account *acct);
void acme_order_free(struct acme_order *o);
void acme_challenge_free(struct acme_challenge *c);
void acme_authz_free(struct acme_authz *z);
void acme_chain_free(struct acme_chain *c);
void acme_renewal_free(struct acme_renewal *r);
/* (All of these free the members and zero the struct; NULL is fine.) */

/* ---------------------------------------------------------- pure parsing */

/* What the body of a response should be. */
enum acme_body {
	ACME_BODY_NONE, /* no body used on success (HEAD, revokeCert); cap ACME_JSON_MAX */
	ACME_BODY_JSON, /* application/json, cap ACME_JSON_MAX */
	ACME_BODY_PEM	/* application/pem-certificate-chain, cap ACME_PEM_MAX */
};

/*
 * One HTTP response as it is collected: header lines and body chunks are fed
 * in by the transport (or by a test/fuzzer), then acme_resp_finish() checks
 * it.  Initialise with acme_resp_init(), always release with acme_resp_free().
 */
struct acme_resp {
	enum acme_body kind;
	long status;	  /* HTTP status (from the status line, or set by the transport) */
	char *location;	  /* Location (an https URL) or NULL */
	char *nonce;	  /* the last valid Replay-Nonce or NULL */
	char *ctype;	  /* media type, lower case, no parameters, or NULL */
	long retry_after; /* seconds, -1 if absent or unparsable */
	char *alternates[ACME_ALT_MAX]; /* Link rel="alternate" */
	size_t nalt;
	char *up;		     /* Link rel="up" or NULL */
	size_t hdr_bytes;	     /* all header bytes seen, capped at ACME_HDR_MAX */
	struct svbuf *body;	     /* capped by kind */
	json_t *json;		     /* after finish: the JSON body of a 2xx JSON answer */
	size_t ncerts;		     /* after finish: certificates in a 2xx PEM answer */
	struct acme_problem problem; /* after finish: the problem, if has_problem */
	int has_problem;
};

/* Empty response expecting kind of body.  SV_ENOMEM. */
int acme_resp_init(struct acme_resp *r, enum acme_body kind);

/* Release everything and zero *r (fine on a zeroed struct). */
void acme_resp_free(struct acme_resp *r);

/*
 * Feed one header line as libcurl delivers it (with or without CRLF).  A
 * status line ("HTTP/2 200") starts a new header block (interim 1xx blocks
 * are forgotten).  now is the current time, for Retry-After HTTP-dates.
 * SV_ETOOBIG past ACME_HDR_MAX in total; SV_EPROTO for a bad status line or a
 * Location that is not an acceptable https URL.  Invalid Replay-Nonce values
 * are ignored (RFC 8555 6.5.1), as are unparsable Retry-After values.
 */
int acme_resp_header(struct acme_resp *r, const char *line, size_t len, time_t now);

/* Feed body bytes.  SV_ETOOBIG (detail names the cap) past the kind's cap. */
int acme_resp_body(struct acme_resp *r, const void *data, size_t len);

/*
 * Check the complete response from url (for the detail only).  2xx: a JSON
 * kind must be a JSON object (r->json set), a PEM kind only PEM certificates.
 * Non-2xx: parse an application/problem+json body into r->problem and return
 * SV_ECA ("CA said: ..."), or SV_ECA "HTTP <status> from <url>" without one.
 */
int acme_resp_finish(struct acme_resp *r, const char *url);

/*
 * Parse a Link header value (RFC 8288): every link whose rel contains
 * "alternate" is appended to alt (up to ACME_ALT_MAX, *nalt updated), a rel
 * "up" goes to *up (replacing an older one).  Only absolute https URLs are
 * kept; others are skipped.  Strings malloc'd, owned by the caller's arrays.
 * SV_EPROTO for syntax errors.
 */
int acme_link_parse(const char *value, char **alt, size_t *nalt, char **up);

/* Retry-After: delta-seconds or an HTTP-date, as seconds from now (clamped
 * to [0, ACME_RETRY_AFTER_MAX]).  SV_EINVAL if unparsable. */
int acme_retry_after_parse(const char *value, time_t now, long *secs);

/* A problem document (already parsed JSON).  Escapes and caps the text. SV_EPROTO. */
int acme_problem_parse(const json_t *j, struct acme_problem *p);

/* Does p have type ACME_ERROR_PREFIX name (e.g. "badNonce")? */
int acme_problem_is(const struct acme_problem *p, const char *name);

/*
 * "badNonce: detail (dns:a.example: detail; ... and N more)" into out
 * (always NUL-terminated, truncated to outsz).  Returns out.
 */
char *acme_problem_text(const struct acme_problem *p, char *out, size_t outsz);

/* Deep copy of src into *dst (dst's old content is not freed). SV_ENOMEM. */
int acme_problem_copy(struct acme_problem *dst, const struct acme_problem *src);

/*
 * Parse bodies into objects (new, zeroed *out on entry is not needed: it is
 * overwritten).  SV_EPROTO names the member that is wrong.  On error *out is
 * left zeroed.  Caller frees with the matching _free().
 */
int acme_dir_parse(const json_t *j, struct acme_dir *out);
int acme_account_parse(const json_t *j, struct acme_account *out);
int acme_order_parse(const json_t *j, struct acme_order *out);
int acme_authz_parse(const json_t *j, struct acme_authz *out);
int acme_challenge_parse(const json_t *j, struct acme_challenge *out);
int acme_renewal_parse(const json_t *j, struct acme_renewal *out);

/* JSON object from len bytes (at most max).  Caller json_decref()s. SV_EPROTO/SV_ETOOBIG. */
int acme_json_parse(const uint8_t *data, size_t len, size_t max, json_t **out);

/* Is url an https URL of at most ACME_URL_MAX bytes, without spaces or controls? SV_EINVAL. */
int acme_url_check(const char *url);

/* Replay-Nonce syntax: 1..ACME_NONCE_MAX base64url characters.  SV_EPROTO. */
int acme_nonce_check(const char *nonce, size_t len);

/* Challenge token: 1..ACME_TOKEN_MAX base64url characters (safe in file
 * names and URLs).  SV_EPROTO. */
int acme_token_check(const char *token);

/* PEM text holding only certificates (at least one): *ncerts.  SV_EPROTO. */
int acme_pem_chain_check(const char *pem, size_t len, size_t *ncerts);

/* RFC 3339 date-time ("2025-01-02T03:04:05.6Z", "...+01:00") to time_t. SV_EINVAL. */
int acme_rfc3339_parse(const char *s, time_t *out);

/*
 * Next poll wait in milliseconds: Retry-After (seconds, -1 = none) if given,
 * else first_ms doubled per attempt (0-based); never more than max_wait_ms
 * or remaining_ms, never less than 0.
 */
long acme_poll_delay_ms(
    long retry_after, unsigned attempt, const struct acme_poll *p, long remaining_ms);

/* ------------------------------------------------ challenge and ARI helpers */

/* http-01 key authorization token "." thumbprint(account_jwk).  *out malloc'd: caller frees. */
int acme_keyauth(const char *token, const json_t *account_jwk, char **out);

/* dns-01 TXT value: base64url(SHA-256(keyauth)).  *out malloc'd: caller frees. */
int acme_dns01_txt(const char *keyauth, char **out);

/*
 * ARI CertID (RFC 9773 4.1): base64url(AKI keyIdentifier) "." base64url(the
 * serial's DER content octets).  *out malloc'd: caller frees.  SV_EINVAL if
 * the certificate has no AKI keyIdentifier.
 */
int acme_ari_certid(X509 *cert, char **out);

/* The same from raw parts (serial = DER INTEGER content octets). */
int acme_ari_certid_raw(
    const uint8_t *aki, size_t akilen, const uint8_t *serial, size_t seriallen, char **out);

/* ------------------------------------------------------------- transport */

struct acme;

struct acme_opts {
	const char *directory_url; /* https://...; required */
	const char *ca_file;	   /* PEM bundle to verify the CA's TLS; NULL = system store */
	long timeout_s;		   /* per HTTP request; 0 = ACME_TIMEOUT_DEFAULT */
	const char *user_agent;	   /* appended: "shadowvault/VERSION <this>"; may be NULL */
};

/* Counters for one struct acme (tests and diagnostics). */
struct acme_stats {
	unsigned long posts;	   /* acme_post() calls */
	unsigned long attempts;	   /* POSTs sent = signer calls that got sent */
	unsigned long bad_nonces;  /* badNonce answers retried */
	unsigned long nonce_heads; /* HEAD newNonce requests */
};

/*
 * Initialise libcurl once for the process (curl_global_init).  The program's
 * main() should call it before starting threads; acme_open() also calls it
 * (through pthread_once), so forgetting it is safe in single-threaded code.
 */
int acme_global_init(void);

/* curl_global_cleanup(): only at process exit, after every acme_close(). */
void acme_global_cleanup(void);

/*
 * Open a client and fetch the directory (GET opts->directory_url).  Refuses a
 * non-https directory URL before any network traffic (SV_EINVAL).  *out: close
 * with acme_close().  The strings in opts are copied.
 */
int acme_open(const struct acme_opts *opts, struct acme **out);

/* Close the handle and its connections; NULL is fine. */
void acme_close(struct acme *a);

/* The directory (borrowed, valid until acme_close()): callers may classify URLs by it. */
const struct acme_dir *acme_directory(const struct acme *a);

/* Fetch a nonce now (HEAD newNonce) unless one is cached for the next POST. */
int acme_nonce_prefetch(struct acme *a);

/*
 * Take a nonce for a request signed ahead (acme_sign_ahead()), fetching one
 * first if none is cached.  It is the caller's now: the next POST gets
 * another.
 */
int acme_nonce_take(struct acme *a, char *out, size_t outsz);

/* The problem document of the last request, or NULL (borrowed, valid until the next request). */
const struct acme_problem *acme_last_problem(const struct acme *a);

/* Copy the counters. */
void acme_stats_get(const struct acme *a, struct acme_stats *st);

/*
 * Signed POST of payload (compact JSON; NULL = POST-as-GET, empty payload) to
 * url, with nonce handling and badNonce retries.  kind says what body to
 * expect (ACME_BODY_PEM also sends Accept: application/pem-certificate-chain).
 * r is initialised here; the caller always calls acme_resp_free(r), also on
 * error (r then holds the status and problem seen, if any).
 */
int acme_post(struct acme *a, const char *url, const json_t *payload, int use_jwk,
    acme_sign_fn sign, void *ctx, enum acme_body kind, struct acme_resp *r);

/*
 * Signing ahead: the wire body of a signed POST of payload (NULL = POST-as-
 * GET) to url with nonce (from acme_nonce_take()), made while the CA works
 * on something else.  Touches no struct acme, so it may run on another
 * thread than the one using the handle.  Caller frees *body.
 */
int acme_sign_ahead(acme_sign_fn sign, void *ctx, const char *url, const char *nonce,
    const json_t *payload, char **body);

/* ------------------------------------------------------------ operations */

/*
 * newAccount (use_jwk).  out->url is the account URL (kid) for the signer.
 * only_existing with no account for the key: SV_ENOTFOUND.  Caller frees out
 * with acme_account_free().
 */
int acme_account_new(struct acme *a, const struct acme_account_req *req, acme_sign_fn sign,
    void *ctx, struct acme_account *out);

/* Fetch the account object at kid (POST-as-GET).  Caller frees out with acme_account_free(). */
int acme_account_get(
    struct acme *a, const char *kid, acme_sign_fn sign, void *ctx, struct acme_account *out);

/*
 * keyChange (RFC 8555 7.3.5): the inner JWS over {"account": kid, "oldKey":
 * old_jwk} is made by new_sign (use_jwk, url = keyChange URL, nonce NULL),
 * and sent as the payload of an outer JWS made by old_sign (kid, nonce, url).
 * SV_EEXIST when the new key already has an account (409); SV_EUNSUPP when
 * the directory has no keyChange.  The account URL does not change.
 */
int acme_key_change(struct acme *a, const char *kid, const json_t *old_jwk, acme_sign_fn old_sign,
    void *old_ctx, acme_sign_fn new_sign, void *new_ctx);

/*
 * newOrder for ids[0..n).  replaces: an ARI CertID for "replaces", or NULL.
 * out->status may already be ready (authorizations reused): callers go
 * straight to finalize then.  Caller frees out with acme_order_free().
 */
int acme_order_new(struct acme *a, const struct acme_ident *ids, size_t n, const char *replaces,
    acme_sign_fn sign, void *ctx, struct acme_order *out);

/* Refresh o from o->url (POST-as-GET); o->url is kept. */
int acme_order_get(struct acme *a, struct acme_order *o, acme_sign_fn sign, void *ctx);

/*
 * acme_order_get() with body, a POST-as-GET of o->url signed ahead.  If the
 * CA refuses its nonce (badNonce), the request is signed again with sign
 * and retried as acme_order_get() does.
 */
int acme_order_get_signed(
    struct acme *a, struct acme_order *o, const char *body, acme_sign_fn sign, void *ctx);

/* Fetch the authorization at url.  Caller frees out with acme_authz_free(). */
int acme_authz_get(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_authz *out);

/* Refresh z from z->url. */
int acme_authz_refresh(struct acme *a, struct acme_authz *z, acme_sign_fn sign, void *ctx);

/* The challenge of type in z, or NULL (borrowed from z). */
const struct acme_challenge *acme_authz_challenge(const struct acme_authz *z, const char *type);

/* Tell the CA to validate: POST "{}" to url.  *out (may be NULL) gets the
 * challenge as answered; caller frees with acme_challenge_free(). */
int acme_challenge_answer(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_challenge *out);

/*
 * Poll o (or z) until its status is in want (a set of ACME_WANT()), honouring
 * Retry-After with p's caps (p may be NULL for defaults).  Returns 0 at once
 * if the status is already wanted.  Reaching invalid: SV_ECA with the CA's
 * error; another final status that is not wanted: SV_ESTATE; deadline:
 * SV_ETIMEOUT.
 */
int acme_order_poll(struct acme *a, struct acme_order *o, unsigned want, const struct acme_poll *p,
    acme_sign_fn sign, void *ctx);
int acme_authz_poll(struct acme *a, struct acme_authz *z, unsigned want, const struct acme_poll *p,
    acme_sign_fn sign, void *ctx);

/*
 * finalize with a DER CSR built by the caller (its names must equal the
 * order's identifiers).  o must be ready (else SV_ESTATE, nothing sent); o
 * is updated from the answer (usually processing or valid).
 */
int acme_order_finalize(struct acme *a, struct acme_order *o, const uint8_t *csr_der,
    size_t csr_len, acme_sign_fn sign, void *ctx);

/* Download the chain at url as PEM, with its alternate links.  Caller frees
 * out with acme_chain_free(). */
int acme_cert_download(
    struct acme *a, const char *url, acme_sign_fn sign, void *ctx, struct acme_chain *out);

/*
 * revokeCert for a DER certificate; reason < 0 leaves "reason" out.  use_jwk:
 * the signer signs with the certificate's key (jwk) instead of the account.
 */
int acme_revoke(struct acme *a, const uint8_t *cert_der, size_t len, int reason, int use_jwk,
    acme_sign_fn sign, void *ctx);

/*
 * ARI: GET renewalInfo/<CertID> for cert (unauthenticated).  SV_EUNSUPP (no
 * traffic) when the directory has no renewalInfo.  Caller frees out with
 * acme_renewal_free().
 */
int acme_renewal_info(struct acme *a, X509 *cert, struct acme_renewal *out);

/* ------------------------------------------------- a local signer helper */

/*
 * The protected header {"url", "nonce" (unless NULL), and "jwk" (if jwk) or
 * "kid"} without "alg" (jws_sign() adds it).  Exactly one of jwk and kid.
 * *out: caller json_decref()s.
 */
int acme_protected_header(
    const char *url, const char *nonce, const json_t *jwk, const char *kid, json_t **out);

/*
 * An acme_sign_fn over a local jws_signer (tests; tools holding the key
 * in-process).  ctx is a struct acme_local_key; kid may be NULL until the
 * account exists (then only use_jwk requests work).
 */
struct acme_local_key {
	const struct jws_signer *signer;
	const json_t *jwk; /* public JWK of the signer's key */
	const char *kid;
};
int acme_sign_local(void *ctx, const char *url, const char *nonce, const uint8_t *payload,
    size_t plen, int use_jwk, json_t **jws_out);

#endif
