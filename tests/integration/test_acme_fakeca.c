/*
 * The ACME client against a scripted CA: a small HTTPS server (fakeca.c:
 * OpenSSL, a thread per connection, 127.0.0.1 on an ephemeral port) whose
 * answers each test chooses.  It checks what Pebble cannot show: the bytes
 * on the wire (Content-Type, User-Agent, Accept, the exact url and nonce in
 * every protected header, "" for POST-as-GET, "{}" for a challenge, the two
 * keyChange JWSs), keep-alive on one connection, and the error paths: 409 on
 * keyChange (SV_EEXIST), badNonce retries running out, over-cap bodies and
 * headers through libcurl (with and without Content-Length), non-2xx without
 * a problem document, a redirect not followed, malformed JSON, rateLimited
 * with Retry-After, polling that honours Retry-After within its cap, a
 * request signed ahead (sent as signed; signed again after badNonce), ARI
 * when the directory offers renewalInfo, and a CA certificate the client
 * does not trust.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "acme.h"
#include "fakeca.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "svtest.h"

/* ------------------------------------------------------------ client side */

static struct acme *ac;
static EVP_PKEY *key;
static struct jws_signer signer;
static json_t *key_jwk;
static struct acme_local_key lkey;
static unsigned long sign_calls;
static char signed_nonces[64][32];

static int
tsign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **out)
{
	if (sign_calls < 64 && nonce != NULL)
		snprintf(signed_nonces[sign_calls], sizeof(signed_nonces[0]), "%s", nonce);
	sign_calls++;
	return acme_sign_local(ctx, url, nonce, payload, plen, use_jwk, out);
}

static int
group_setup(void **state)
{
	char url[128];
	struct acme_opts o = { url, NULL, 10, "test" };

	if (fakeca_start() != 0)
		return -1;
	snprintf(url, sizeof(url), "%s/dir", base);
	o.ca_file = srv.cafile;
	key = EVP_EC_gen("P-256");
	if (key == NULL || jws_pkey_signer(key, &signer) != 0 || jwk_from_pkey(key, &key_jwk) != 0)
		return -1;
	lkey.signer = &signer;
	lkey.jwk = key_jwk;
	lkey.kid = "https://127.0.0.1/acct/1";
	if (acme_open(&o, &ac) != 0) {
		fprintf(stderr, "acme_open: %s\n", sv_errmsg(SV_ENET));
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	acme_close(ac); /* first: the server's connection threads then see EOF */
	fakeca_stop();
	json_decref(key_jwk);
	EVP_PKEY_free(key);
	return 0;
}

static const char *
hdr_str(const json_t *h, const char *k)
{
	return json_string_value(json_object_get(h, k));
}

/* ----------------------------------------------------------------- tests */

static void
s_account(const struct req *q, struct reply *r)
{
	char loc[128];

	snprintf(loc, sizeof(loc), "Location: %s/acct/1\r\n", base);
	r->headers = strdup(loc);
	if (strcmp(q->path, "/new-acct") == 0)
		json_reply(r, 201, "application/json", "{\"status\":\"valid\"}");
	else if (strcmp(q->path, "/chall/1") == 0)
		json_reply(r, 200, "application/json",
		    "{\"type\":\"http-01\",\"url\":\"https://127.0.0.1/chall/"
		    "1\",\"status\":\"processing\","
		    "\"token\":\"tok\"}");
	else
		json_reply(r, 200, "application/json", "{\"status\":\"valid\"}");
}

static void
test_wire_format(void **state)
{
	static const char *const contact[] = { "mailto:a@example.com" };
	struct acme_account_req req = { contact, 1, 1, 0, NULL };
	struct acme_account a;
	struct acme_challenge c;
	char url[128], ua[64];
	unsigned long conns;

	srv.script = s_account;
	assert_ok(acme_account_new(ac, &req, tsign, &lkey, &a));
	assert_true(a.created);
	snprintf(url, sizeof(url), "%s/acct/1", base);
	assert_string_equal(a.url, url);
	acme_account_free(&a);
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(srv.last.ctype, "application/jose+json");
	snprintf(ua, sizeof(ua), "shadowvault/%s test", SV_VERSION);
	assert_string_equal(srv.last.ua, ua);
	snprintf(url, sizeof(url), "%s/new-acct", base);
	assert_string_equal(hdr_str(srv.last.hdr, "url"), url);
	assert_non_null(json_object_get(srv.last.hdr, "jwk"));
	assert_null(json_object_get(srv.last.hdr, "kid"));
	assert_string_equal(hdr_str(srv.last.hdr, "nonce"), signed_nonces[0]);
	assert_string_equal(srv.last.payload,
	    "{\"termsOfServiceAgreed\":true,\"contact\":[\"mailto:a@example.com\"]}");
	pthread_mutex_unlock(&srv.mu);

	/* POST-as-GET sends the empty payload, a challenge answer "{}". */
	snprintf(url, sizeof(url), "%s/acct/1", base);
	assert_ok(acme_account_get(ac, url, tsign, &lkey, &a));
	acme_account_free(&a);
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(srv.last.payload, "");
	assert_string_equal(hdr_str(srv.last.hdr, "kid"), lkey.kid);
	assert_string_equal(srv.last.accept, "application/json");
	pthread_mutex_unlock(&srv.mu);
	snprintf(url, sizeof(url), "%s/chall/1", base);
	assert_ok(acme_challenge_answer(ac, url, tsign, &lkey, &c));
	assert_int_equal(c.status, ACME_S_PROCESSING);
	acme_challenge_free(&c);
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(srv.last.payload, "{}");
	assert_string_equal(hdr_str(srv.last.hdr, "url"), url);
	/* Each answer's nonce was used by the next request: no HEAD needed. */
	assert_string_equal(hdr_str(srv.last.hdr, "nonce"), signed_nonces[sign_calls - 1]);
	conns = srv.conns;
	pthread_mutex_unlock(&srv.mu);
	assert_int_equal(conns, 1); /* keep-alive: everything on one connection */
}

static void
s_bad_nonce(const struct req *q, struct reply *r)
{
	json_reply(r, 400, "application/problem+json",
	    "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"stale\"}");
}

static void
test_bad_nonce_runs_out(void **state)
{
	struct acme_stats before, after;
	struct acme_account a;
	char url[128], prev[32];
	unsigned long i, calls0 = sign_calls;

	acme_stats_get(ac, &before);
	srv.script = s_bad_nonce;
	snprintf(url, sizeof(url), "%s/acct/1", base);
	assert_sverr(acme_account_get(ac, url, tsign, &lkey, &a), SV_ECA);
	assert_msg_has(SV_ECA, "CA said: badNonce: stale");
	acme_stats_get(ac, &after);
	assert_int_equal(after.posts - before.posts, 1);
	assert_int_equal(after.attempts - before.attempts, 1 + ACME_BADNONCE_RETRIES);
	assert_int_equal(after.bad_nonces - before.bad_nonces, ACME_BADNONCE_RETRIES);
	assert_int_equal(sign_calls - calls0, 1 + ACME_BADNONCE_RETRIES);
	/* Every retry was re-signed with the nonce the previous error carried. */
	assert_true(sign_calls <= 64);
	for (i = calls0 + 1; i < sign_calls; i++) {
		snprintf(prev, sizeof(prev), "nonce%lu",
		    strtoul(signed_nonces[i - 1] + 5, NULL, 10) + 1);
		assert_string_equal(signed_nonces[i], prev);
	}
}

static char *
filled(size_t n, char c)
{
	char *p = malloc(n + 1);

	memset(p, c, n);
	p[n] = '\0';
	return p;
}

static int cap_mode;

static void
s_caps(const struct req *q, struct reply *r)
{
	size_t i;

	r->status = 200;
	r->ctype = "application/json";
	if (cap_mode == 0 || cap_mode == 1) {
		/* A JSON body one byte over the cap, with or without Content-Length. */
		r->body = filled(ACME_JSON_MAX + 1, ' ');
		r->blen = ACME_JSON_MAX + 1;
		r->no_length = cap_mode == 1;
	} else {
		/* Headers over the cap: many 1 KiB lines. */
		size_t o = 0, sz = 80 * 1100;

		r->headers = malloc(sz);
		for (i = 0; i < 80; i++)
			o += (size_t)snprintf(
			    r->headers + o, sz - o, "X-Pad-%zu: %01000d\r\n", i, 0);
		r->body = strdup("{}");
		r->blen = 2;
	}
}

static void
test_caps_on_the_wire(void **state)
{
	struct acme_authz z;
	char url[128];
	static const char *const msg[] = {
		"response body larger than 1048576 bytes (by its Content-Length)",
		"response body larger than 1048576 bytes",
		"response headers larger than 65536 bytes",
	};

	srv.script = s_caps;
	snprintf(url, sizeof(url), "%s/authz/1", base);
	for (cap_mode = 0; cap_mode < 3; cap_mode++) {
		assert_sverr(acme_authz_get(ac, url, tsign, &lkey, &z), SV_ETOOBIG);
		assert_msg_has(SV_ETOOBIG, msg[cap_mode]);
		assert_msg_has(SV_ETOOBIG, "POST https://127.0.0.1:");
		assert_null(z.url);
	}
}

static int err_mode;

static void
s_errors(const struct req *q, struct reply *r)
{
	char h[256];

	switch (err_mode) {
	case 0:
		json_reply(r, 503, "text/html", "<html>down</html>");
		break;
	case 1:
		json_reply(r, 302, NULL, "");
		snprintf(h, sizeof(h), "Location: %s/elsewhere\r\n", base);
		r->headers = strdup(h);
		break;
	case 2:
		json_reply(r, 200, "application/json", "{\"status\": ");
		break;
	case 3:
		json_reply(r, 429, "application/problem+json",
		    "{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":\"too many\","
		    "\"status\":429}");
		r->headers = strdup("Retry-After: 120\r\n");
		break;
	default:
		json_reply(r, 201, "application/json", "{\"status\":\"valid\",\"identifiers\":[]}");
		snprintf(h, sizeof(h), "Location: %s/order/1\r\n", base);
		r->headers = strdup(h);
	}
}

static void
test_error_answers(void **state)
{
	struct acme_ident id = { (char *)"dns", (char *)"a.example" };
	const struct acme_problem *p;
	struct acme_order o;

	srv.script = s_errors;
	err_mode = 0;
	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o), SV_ECA);
	assert_msg_has(SV_ECA, "CA answered HTTP 503 without a problem document");
	assert_msg_has(SV_ECA, "<html>down</html>");
	assert_null(acme_last_problem(ac));
	err_mode = 1;
	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o), SV_ECA);
	assert_msg_has(SV_ECA, "HTTP 302");
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(srv.last.path, "/new-order"); /* the redirect was not followed */
	pthread_mutex_unlock(&srv.mu);
	err_mode = 2;
	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "malformed JSON");
	err_mode = 3;
	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o), SV_ECA);
	assert_non_null(p = acme_last_problem(ac));
	assert_true(acme_problem_is(p, "rateLimited"));
	assert_int_equal(p->retry_after, 120);
	assert_int_equal(p->status, 429);
	err_mode = 4;
	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "order: \"identifiers\" has 0 elements");
	assert_null(o.url);
}

static int kc_conflict;

static void
s_key_change(const struct req *q, struct reply *r)
{
	char h[128];

	if (!kc_conflict) {
		r->status = 200;
		return;
	}
	json_reply(r, 409, "application/problem+json",
	    "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"key in use\"}");
	snprintf(h, sizeof(h), "Location: %s/acct/99\r\n", base);
	r->headers = strdup(h);
}

static void
test_key_change_wire(void **state)
{
	EVP_PKEY *nk = EVP_EC_gen("P-256");
	struct jws_signer ns;
	struct acme_local_key nlk = { &ns, NULL, NULL };
	json_t *inner = NULL, *ihdr = NULL, *ohdr = NULL, *ip, *njwk;
	uint8_t *ipl = NULL, *opl = NULL;
	size_t il, ol;
	char url[128], acct[128];

	assert_ok(jws_pkey_signer(nk, &ns));
	assert_ok(jwk_from_pkey(nk, &njwk));
	nlk.jwk = njwk;
	srv.script = s_key_change;
	snprintf(url, sizeof(url), "%s/key-change", base);
	snprintf(acct, sizeof(acct), "%s/acct/1", base);
	kc_conflict = 0;
	assert_ok(acme_key_change(ac, acct, key_jwk, tsign, &lkey, tsign, &nlk));
	pthread_mutex_lock(&srv.mu);
	/* Outer: signed by the old key, kid + nonce + url. */
	assert_ok(jws_verify(srv.last.jws, key, REQ_MAX, &ohdr, &opl, &ol));
	assert_string_equal(hdr_str(ohdr, "kid"), lkey.kid);
	assert_non_null(hdr_str(ohdr, "nonce"));
	assert_string_equal(hdr_str(ohdr, "url"), url);
	/* Inner: signed by the new key, jwk + the same url, no nonce, {account, oldKey}. */
	assert_non_null(inner = json_loadb((const char *)opl, ol, 0, NULL));
	assert_ok(jws_verify(inner, nk, REQ_MAX, &ihdr, &ipl, &il));
	assert_true(json_equal(json_object_get(ihdr, "jwk"), nlk.jwk));
	assert_string_equal(hdr_str(ihdr, "url"), url);
	assert_null(json_object_get(ihdr, "nonce"));
	assert_null(json_object_get(ihdr, "kid"));
	assert_non_null(ip = json_loadb((const char *)ipl, il, 0, NULL));
	assert_string_equal(hdr_str(ip, "account"), acct);
	assert_true(json_equal(json_object_get(ip, "oldKey"), key_jwk));
	assert_int_equal(json_object_size(ip), 2);
	pthread_mutex_unlock(&srv.mu);
	json_decref(ip);

	kc_conflict = 1;
	assert_sverr(acme_key_change(ac, acct, key_jwk, tsign, &lkey, tsign, &nlk), SV_EEXIST);
	assert_msg_has(SV_EEXIST, "the new key already belongs to account");
	assert_msg_has(SV_EEXIST, "/acct/99; CA said: malformed: key in use");
	json_decref(inner);
	json_decref(ihdr);
	json_decref(ohdr);
	free(ipl);
	free(opl);
	json_decref(njwk);
	EVP_PKEY_free(nk);
}

static int poll_n;
static const char *poll_retry = "1";

static void
s_poll(const struct req *q, struct reply *r)
{
	char body[512], h[256];
	int valid = poll_n++ >= 1;

	snprintf(body, sizeof(body),
	    "{\"status\":\"%s\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}],"
	    "\"authorizations\":[],\"finalize\":\"%s/fin\"%s%s%s}",
	    valid ? "valid" : "processing", base, valid ? ",\"certificate\":\"" : "",
	    valid ? base : "", valid ? "/cert\"" : "");
	json_reply(r, strcmp(q->path, "/new-order") == 0 ? 201 : 200, "application/json", body);
	snprintf(h, sizeof(h), "Location: %s/order/1\r\nRetry-After: %s\r\n", base, poll_retry);
	r->headers = strdup(h);
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
test_poll_retry_after(void **state)
{
	struct acme_ident id = { (char *)"dns", (char *)"a.example" };
	struct acme_poll p = { 10, 5000, 10000 };
	struct acme_order o;
	struct timespec t0;
	long ms;

	srv.script = s_poll;
	poll_n = 0;
	poll_retry = "1";
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o));
	assert_int_equal(o.status, ACME_S_PROCESSING);
	assert_int_equal(o.retry_after, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_ok(acme_order_poll(ac, &o, ACME_WANT(ACME_S_VALID), &p, tsign, &lkey));
	ms = ms_since(&t0);
	assert_true(ms >= 1000 && ms < 3000); /* waited as told, once */
	assert_non_null(o.certificate);
	acme_order_free(&o);

	/* A Retry-After far beyond max_wait_ms is capped. */
	poll_n = 0;
	poll_retry = "3600";
	p.max_wait_ms = 100;
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_ok(acme_order_poll(ac, &o, ACME_WANT(ACME_S_VALID), &p, tsign, &lkey));
	assert_true(ms_since(&t0) < 1000);
	acme_order_free(&o);
}

static int ahead_bad; /* answer the next POST to /order/1 with badNonce */

static void
s_ahead(const struct req *q, struct reply *r)
{
	if (ahead_bad && strcmp(q->path, "/order/1") == 0) {
		ahead_bad = 0;
		s_bad_nonce(q, r);
		return;
	}
	s_poll(q, r);
}

static void
test_sign_ahead(void **state)
{
	struct acme_ident id = { (char *)"dns", (char *)"a.example" };
	struct acme_stats before, after;
	struct acme_order o;
	char nonce[ACME_NONCE_MAX + 1], url[128], *body = NULL;
	unsigned long calls;

	srv.script = s_ahead;
	poll_n = 0;
	poll_retry = "1";
	ahead_bad = 0;
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o));
	assert_int_equal(o.status, ACME_S_PROCESSING);
	snprintf(url, sizeof(url), "%s/order/1", base);
	assert_string_equal(o.url, url);

	/* The nonce of newOrder's answer is set aside and signed with ahead. */
	acme_stats_get(ac, &before);
	assert_ok(acme_nonce_take(ac, nonce, sizeof(nonce)));
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(nonce, srv.last_nonce);
	pthread_mutex_unlock(&srv.mu);
	calls = sign_calls;
	assert_ok(acme_sign_ahead(tsign, &lkey, o.url, nonce, NULL, &body));
	assert_int_equal(sign_calls, calls + 1);
	acme_stats_get(ac, &after);
	assert_memory_equal(&after, &before, sizeof(after)); /* no traffic yet */
	assert_ok(acme_order_get_signed(ac, &o, body, tsign, &lkey));
	free(body);
	assert_int_equal(o.status, ACME_S_VALID);
	assert_string_equal(o.url, url);
	assert_int_equal(sign_calls, calls + 1); /* sent as signed, not signed again */
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(srv.last.path, "/order/1");
	assert_string_equal(srv.last.payload, "");
	assert_string_equal(hdr_str(srv.last.hdr, "nonce"), nonce);
	assert_string_equal(hdr_str(srv.last.hdr, "url"), url);
	pthread_mutex_unlock(&srv.mu);
	acme_stats_get(ac, &after);
	assert_int_equal(after.attempts - before.attempts, 1);
	assert_int_equal(after.bad_nonces, before.bad_nonces);
	acme_order_free(&o);

	/* A nonce taken leaves none cached: the next POST asks for one. */
	poll_n = 0;
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o));
	assert_ok(acme_nonce_take(ac, nonce, sizeof(nonce)));
	acme_stats_get(ac, &before);
	assert_ok(acme_order_get(ac, &o, tsign, &lkey));
	acme_stats_get(ac, &after);
	assert_int_equal(after.nonce_heads - before.nonce_heads, 1);
	pthread_mutex_lock(&srv.mu);
	assert_string_not_equal(hdr_str(srv.last.hdr, "nonce"), nonce);
	pthread_mutex_unlock(&srv.mu);
	acme_order_free(&o);

	/* A nonce the CA refuses: signed again with the one its error carried. */
	poll_n = 0;
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &lkey, &o));
	assert_ok(acme_nonce_take(ac, nonce, sizeof(nonce)));
	assert_ok(acme_sign_ahead(tsign, &lkey, o.url, nonce, NULL, &body));
	acme_stats_get(ac, &before);
	calls = sign_calls;
	ahead_bad = 1;
	assert_ok(acme_order_get_signed(ac, &o, body, tsign, &lkey));
	free(body);
	assert_int_equal(o.status, ACME_S_VALID);
	assert_int_equal(sign_calls, calls + 1);
	acme_stats_get(ac, &after);
	assert_int_equal(after.bad_nonces - before.bad_nonces, 1);
	assert_int_equal(after.attempts - before.attempts, 2);
	pthread_mutex_lock(&srv.mu);
	assert_string_equal(hdr_str(srv.last.hdr, "nonce"), signed_nonces[sign_calls - 1]);
	assert_string_not_equal(hdr_str(srv.last.hdr, "nonce"), nonce);
	pthread_mutex_unlock(&srv.mu);
	acme_order_free(&o);

	/* Misuse: nothing is signed. */
	calls = sign_calls;
	assert_sverr(acme_sign_ahead(tsign, &lkey, url, NULL, NULL, &body), SV_EINVAL);
	assert_null(body);
	assert_sverr(acme_sign_ahead(tsign, &lkey, "http://127.0.0.1/order/1", nonce, NULL, &body),
	    SV_EINVAL);
	assert_int_equal(sign_calls, calls);
}

static void
s_ari(const struct req *q, struct reply *r)
{
	if (strcmp(q->path, "/renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE") != 0) {
		json_reply(r, 404, "application/problem+json", "{\"type\":\"about:blank\"}");
		return;
	}
	json_reply(r, 200, "application/json",
	    "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":\"2025-01-03T04:00:"
	    "00Z\"}}");
	r->headers = strdup("Retry-After: 21600\r\n");
}

static void
test_ari(void **state)
{
	static const uint8_t aki[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
		0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	struct acme_renewal rn;

	X509_set_version(x, 2); /* extensions need v3 */
	ASN1_INTEGER_set(X509_get_serialNumber(x), 0x87654321L);
	akid->keyid = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(akid->keyid, aki, sizeof(aki));
	X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0);
	AUTHORITY_KEYID_free(akid);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	srv.script = s_ari;
	assert_ok(acme_renewal_info(ac, x, &rn));
	assert_int_equal(rn.start, 1735790400);
	assert_int_equal(rn.end, 1735790400 + 86400);
	assert_int_equal(rn.retry_after, 21600);
	acme_renewal_free(&rn);
	X509_free(x);
}

static int
sign_fails(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **out)
{
	*out = NULL;
	return sv_seterr(SV_EDENIED, "vault: policy denies this");
}

static int
sign_nothing(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **out)
{
	*out = NULL;
	return 0;
}

static int misuse_mode;

static void
s_misuse(const struct req *q, struct reply *r)
{
	if (misuse_mode == 0) /* newAccount without Location */
		json_reply(r, 201, "application/json", "{\"status\":\"valid\"}");
	else if (misuse_mode == 1) /* a valid order */
		json_reply(r, 200, "application/json",
		    "{\"status\":\"valid\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a\"}],"
		    "\"authorizations\":[],\"finalize\":\"https://127.0.0.1/f\"}");
	else /* an invalid authorization that says nothing */
		json_reply(r, 200, "application/json",
		    "{\"status\":\"invalid\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
		    "\"challenges\":[]}");
}

/* Arguments and answers the client must refuse, each with its code. */
static void
test_misuse(void **state)
{
	struct acme_ident ids[2] = { { (char *)"dns", (char *)"a.example" },
		{ (char *)"dns", NULL } };
	struct acme_account_req req = { NULL, 1, 1, 0, NULL };
	struct acme_order o = { 0 };
	struct acme_authz z = { 0 };
	struct acme_account a;
	struct acme_resp r;
	char url[128];
	uint8_t der[4] = { 0 };

	srv.script = s_misuse;
	assert_sverr(acme_post(ac, "http://127.0.0.1/x", NULL, 0, tsign, &lkey, ACME_BODY_JSON, &r),
	    SV_EINVAL);
	acme_resp_free(&r);
	snprintf(url, sizeof(url), "%s/x", base);
	assert_sverr(acme_post(ac, url, NULL, 0, NULL, NULL, ACME_BODY_JSON, &r), SV_EINVAL);
	acme_resp_free(&r);
	/* The signer's own refusal comes back unchanged; so does an empty answer. */
	assert_sverr(acme_post(ac, url, NULL, 0, sign_fails, NULL, ACME_BODY_JSON, &r), SV_EDENIED);
	assert_msg_has(SV_EDENIED, "vault: policy denies this");
	acme_resp_free(&r);
	assert_sverr(
	    acme_post(ac, url, NULL, 0, sign_nothing, NULL, ACME_BODY_JSON, &r), SV_EINTERNAL);
	acme_resp_free(&r);

	misuse_mode = 0;
	assert_sverr(acme_account_new(ac, &req, tsign, &lkey, &a), SV_EINVAL); /* contact NULL */
	req.ncontact = 0;
	assert_sverr(acme_account_new(ac, &req, tsign, &lkey, &a), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "without a Location");
	assert_null(a.url);

	assert_sverr(acme_order_new(ac, ids, 0, NULL, tsign, &lkey, &o), SV_EINVAL);
	assert_sverr(acme_order_new(ac, ids, 2, NULL, tsign, &lkey, &o), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "identifier 1 is incomplete");
	assert_sverr(
	    acme_order_new(ac, ids, ACME_IDENTS_MAX + 1, NULL, tsign, &lkey, &o), SV_EINVAL);

	/* Polls that end in a final status other than the one wanted. */
	misuse_mode = 1;
	o.url = strdup(url);
	o.status = ACME_S_PENDING;
	assert_sverr(
	    acme_order_poll(ac, &o, ACME_WANT(ACME_S_READY), NULL, tsign, &lkey), SV_ESTATE);
	assert_msg_has(SV_ESTATE, "is valid, not what was waited for");
	assert_sverr(acme_order_finalize(ac, &o, der, sizeof(der), tsign, &lkey), SV_ESTATE);
	o.status = ACME_S_READY;
	assert_sverr(acme_order_finalize(ac, &o, NULL, 0, tsign, &lkey), SV_EINVAL);
	acme_order_free(&o);
	misuse_mode = 2;
	assert_ok(acme_authz_get(ac, url, tsign, &lkey, &z));
	z.status = ACME_S_PENDING;
	assert_sverr(acme_authz_poll(ac, &z, ACME_WANT(ACME_S_VALID), NULL, tsign, &lkey), SV_ECA);
	assert_msg_has(SV_ECA, "became invalid (the CA gave no error)");
	acme_authz_free(&z);

	assert_sverr(
	    acme_key_change(ac, "http://127.0.0.1/acct", key_jwk, tsign, &lkey, tsign, &lkey),
	    SV_EINVAL);
	assert_sverr(acme_key_change(ac, url, NULL, tsign, &lkey, tsign, &lkey), SV_EINVAL);
	assert_sverr(acme_revoke(ac, NULL, 0, -1, 0, tsign, &lkey), SV_EINVAL);
	assert_sverr(acme_revoke(ac, der, sizeof(der), 11, 0, tsign, &lkey), SV_EINVAL);
}

/* A CA that sends no Replay-Nonce: the client cannot sign and says why. */
static void
test_no_nonce(void **state)
{
	struct acme_account a;
	char url[128];

	atomic_store(&srv.nonce_off, 1);
	srv.script = s_account;
	snprintf(url, sizeof(url), "%s/acct/1", base);
	/* The first request may still use a nonce cached before; the second cannot. */
	if (acme_account_get(ac, url, tsign, &lkey, &a) == 0)
		acme_account_free(&a);
	assert_sverr(acme_account_get(ac, url, tsign, &lkey, &a), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "newNonce https://127.0.0.1:");
	assert_msg_has(SV_EPROTO, "answered without a Replay-Nonce");
	atomic_store(&srv.nonce_off, 0);
}

/* A directory with only the required endpoints: the others are SV_EUNSUPP. */
static void
test_minimal_directory(void **state)
{
	char url[128];
	struct acme_opts o = { url, srv.cafile, 5, NULL };
	struct acme *a = NULL;
	struct acme_renewal rn;
	uint8_t der[4] = { 0 };

	snprintf(url, sizeof(url), "%s/dir-min", base);
	assert_ok(acme_open(&o, &a));
	assert_null(acme_directory(a)->key_change);
	assert_sverr(acme_key_change(a, url, key_jwk, tsign, &lkey, tsign, &lkey), SV_EUNSUPP);
	assert_msg_has(SV_EUNSUPP, "no keyChange");
	assert_sverr(acme_revoke(a, der, sizeof(der), -1, 0, tsign, &lkey), SV_EUNSUPP);
	assert_sverr(acme_renewal_info(a, NULL, &rn), SV_EUNSUPP);
	acme_close(a);
}

static void
test_untrusted_ca(void **state)
{
	char url[128];
	struct acme_opts o = { url, "/etc/ssl/certs/ca-certificates.crt", 5, NULL };
	struct acme *a = NULL;

	/* The fake CA's certificate is not in the system store. */
	snprintf(url, sizeof(url), "%s/dir", base);
	assert_sverr(acme_open(&o, &a), SV_ENET);
	assert_msg_has(SV_ENET, "GET https://127.0.0.1:");
	assert_msg_has(SV_ENET, "certificate");
	assert_null(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_bad_nonce_runs_out),
		cmocka_unit_test(test_caps_on_the_wire),
		cmocka_unit_test(test_error_answers),
		cmocka_unit_test(test_key_change_wire),
		cmocka_unit_test(test_poll_retry_after),
		cmocka_unit_test(test_sign_ahead),
		cmocka_unit_test(test_ari),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_no_nonce),
		cmocka_unit_test(test_minimal_directory),
		cmocka_unit_test(test_untrusted_ca),
	};
	int rc;

	/* libcurl runs with CURLOPT_NOSIGNAL, so SIGPIPE is the program's job (acme.h). */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || acme_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("acme_fakeca", tests, group_setup, group_teardown);
	acme_global_cleanup();
	return rc;
}
