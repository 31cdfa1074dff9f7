/*
 * The ACME client's pure parsing, offline: response headers (status line,
 * Replay-Nonce, Location, Content-Type, Retry-After, Link), the body caps,
 * the final check of a response (JSON, PEM, problem documents, non-2xx
 * without one), directory/order/authz/challenge/account/renewalInfo objects,
 * URL/nonce/token syntax, key authorizations, the ARI CertID (RFC 9773's
 * example), RFC 3339 dates, the poll back-off, the local signer, and
 * acme_open() refusing http:// before any traffic.  No network.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "acme.h"
#include "buf.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "svtest.h"

#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */

/* Feed "\n"-separated header lines, then the body; returns the first error. */
static int
feed(struct acme_resp *r, const char *hdrs, const char *body, size_t blen)
{
	const char *p = hdrs, *nl;
	int rc;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if ((rc = acme_resp_header(r, p, (size_t)(nl - p) + (*nl == '\n'), NOW)) != 0)
			return rc;
		p = *nl == '\n' ? nl + 1 : nl;
	}
	return body != NULL ? acme_resp_body(r, body, blen) : 0;
}

static void
test_headers(void **state)
{
	struct acme_resp r;

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	/* An interim 100 block is forgotten; the real block counts. */
	assert_ok(feed(&r,
	    "HTTP/1.1 100 Continue\r\nReplay-Nonce: interim\r\n\r\n"
	    "HTTP/2 201\r\nreplay-nonce: bad nonce!\r\nReplay-Nonce:  abc_DEF-123 \r\n"
	    "Location: https://ca.example/acme/order/1\r\n"
	    "Content-Type: Application/JSON; charset=utf-8\r\nRetry-After: 120\r\n"
	    "Link: <https://ca.example/dir>;rel=\"index\"\r\n"
	    "Link: <https://ca.example/cert/1/1>;rel=\"alternate\", "
	    "<https://ca.example/cert/1/2> ; rel=alternate,<relative/3>;rel=\"alternate\"\r\n"
	    "Link: <https://ca.example/issuer>;title=\"a, b; c\";rel=\"up\"\r\n"
	    "X-Long-Header-Name-That-Is-Longer-Than-Sixty-Four-Characters-Really-Yes: 1\r\n\r\n",
	    NULL, 0));
	assert_int_equal(r.status, 201);
	assert_string_equal(r.nonce, "abc_DEF-123");
	assert_string_equal(r.location, "https://ca.example/acme/order/1");
	assert_string_equal(r.ctype, "application/json");
	assert_int_equal(r.retry_after, 120);
	assert_int_equal(r.nalt, 2);
	assert_string_equal(r.alternates[0], "https://ca.example/cert/1/1");
	assert_string_equal(r.alternates[1], "https://ca.example/cert/1/2");
	assert_string_equal(r.up, "https://ca.example/issuer");
	acme_resp_free(&r);

	/* Retry-After as an HTTP-date, in the future and in the past. */
	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r,
	    "HTTP/1.1 429 Too Many\r\nRetry-After: Tue, 14 Nov 2023 22:15:00 GMT\r\n", NULL, 0));
	assert_int_equal(r.retry_after, 100);
	assert_ok(feed(&r, "Retry-After: Tue, 14 Nov 2023 22:00:00 GMT\r\n", NULL, 0));
	assert_int_equal(r.retry_after, 0);
	assert_ok(feed(&r, "Retry-After: soon\r\n", NULL, 0));
	assert_int_equal(r.retry_after, 0); /* unparsable: ignored, old value kept */
	acme_resp_free(&r);
}

static void
test_header_errors(void **state)
{
	struct acme_resp r;
	char line[1024];
	size_t i;
	int rc = 0;

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_sverr(feed(&r, "HTTP/1.1 2x0 OK\r\n", NULL, 0), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "status line");
	assert_sverr(feed(&r, "HTTP/1.1 999 What\r\n", NULL, 0), SV_EPROTO);
	assert_sverr(feed(&r, "no colon here\r\n", NULL, 0), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "malformed response header");
	assert_sverr(feed(&r, "Location: http://ca.example/order/1\r\n", NULL, 0), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "is not https");
	/* A malformed Link is dropped without failing the response. */
	assert_ok(feed(&r, "Link: https://no-brackets;rel=alternate\r\n", NULL, 0));
	assert_ok(feed(&r, "Link: <https://a.example/x>;rel=\"alternate\r\n", NULL, 0));
	assert_int_equal(r.nalt, 0);
	memset(line, 'x', 200);
	memcpy(line, "Content-Type: ", 14);
	assert_sverr(acme_resp_header(&r, line, 200, NOW), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "Content-Type longer than 128");
	assert_sverr(acme_resp_header(&r, "Replay-Nonce: a\0b\r\n", 19, NOW), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "NUL byte");
	acme_resp_free(&r);

	/* All header lines together are capped at ACME_HDR_MAX. */
	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Pad: ", 7);
	for (i = 0; i < ACME_HDR_MAX / sizeof(line) + 1 && rc == 0; i++)
		rc = acme_resp_header(&r, line, sizeof(line), NOW);
	assert_int_equal(rc, SV_ETOOBIG);
	assert_msg_has(SV_ETOOBIG, "response headers larger than");
	assert_true(r.hdr_bytes <= ACME_HDR_MAX);
	acme_resp_free(&r);
}

static void
test_body_caps(void **state)
{
	struct acme_resp r;
	size_t chunk = 64 * 1024, i;
	char *big = malloc(chunk);
	int rc = 0;

	assert_non_null(big);
	memset(big, ' ', chunk);
	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	for (i = 0; i < ACME_JSON_MAX / chunk; i++)
		assert_ok(acme_resp_body(&r, big, chunk));
	/* One byte over the cap is an error, not a truncation. */
	assert_sverr(acme_resp_body(&r, "x", 1), SV_ETOOBIG);
	assert_msg_has(SV_ETOOBIG, "response body larger than 1048576 bytes");
	assert_int_equal(svbuf_len(r.body), ACME_JSON_MAX);
	acme_resp_free(&r);

	assert_ok(acme_resp_init(&r, ACME_BODY_PEM));
	for (i = 0; i < 8 && rc == 0; i++)
		rc = acme_resp_body(&r, big, chunk);
	assert_int_equal(rc, SV_ETOOBIG);
	assert_int_equal(svbuf_len(r.body), ACME_PEM_MAX);
	acme_resp_free(&r);

	/* The JSON parser refuses over its own cap before parsing. */
	json_t *j;
	assert_sverr(acme_json_parse((const uint8_t *)"{}", 2, 1, &j), SV_ETOOBIG);
	assert_null(j);
	free(big);
}

static void
test_finish(void **state)
{
	const char *url = "https://ca.example/acme/x";
	struct acme_resp r;

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r, "HTTP/2 200\r\nContent-Type: application/json\r\n\r\n", "{\"a\":1}", 7));
	assert_ok(acme_resp_finish(&r, url));
	assert_int_equal(json_integer_value(json_object_get(r.json, "a")), 1);
	acme_resp_free(&r);

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r, "HTTP/2 200\r\nContent-Type: text/html\r\n\r\n", "{}", 2));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "Content-Type text/html, expected application/json");
	acme_resp_free(&r);

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r, "HTTP/2 200\r\nContent-Type: text/\x1b[2J\r\n\r\n", "{}", 2));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "Content-Type text/\\x1b[2j, expected"); /* escaped */
	acme_resp_free(&r);

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r, "HTTP/2 200\r\n\r\n", "{\"a\":1,\"a\":2}", 13));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "malformed JSON");
	acme_resp_free(&r);

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r, "HTTP/2 200\r\n\r\n", "[1]", 3));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "not an object");
	acme_resp_free(&r);

	/* No status line at all. */
	assert_ok(acme_resp_init(&r, ACME_BODY_NONE));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "no HTTP status");
	acme_resp_free(&r);

	/* Non-2xx without a problem document: readable, with the status. */
	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(
	    &r, "HTTP/1.1 503 Busy\r\nContent-Type: text/html\r\n\r\n", "<h1>down\x01</h1>", 14));
	assert_sverr(acme_resp_finish(&r, url), SV_ECA);
	assert_msg_has(SV_ECA, "CA answered HTTP 503 without a problem document");
	assert_msg_has(SV_ECA, "<h1>down\\x01</h1>");
	assert_false(r.has_problem);
	acme_resp_free(&r);

	/* A problem+json body that is not JSON. */
	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(
	    &r, "HTTP/1.1 400 Bad\r\nContent-Type: application/problem+json\r\n\r\n", "{oops", 5));
	assert_sverr(acme_resp_finish(&r, url), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "HTTP 400 problem document");
	acme_resp_free(&r);
}

static const char *PROBLEM =
    "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
    "\"detail\":\"Error creating new order\\n\\u001b[31mred\","
    "\"status\":400,\"subproblems\":["
    "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"bad name\","
    "\"identifier\":{\"type\":\"dns\",\"value\":\"a..example\"}},"
    "{\"type\":\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA forbids\","
    "\"identifier\":{\"type\":\"dns\",\"value\":\"b.example\"}},"
    "7,{},{},{},{},{},{},{},{}]}";

static void
test_problem(void **state)
{
	struct acme_resp r;
	struct acme_problem cp;
	char text[512], text2[512];

	assert_ok(acme_resp_init(&r, ACME_BODY_JSON));
	assert_ok(feed(&r,
	    "HTTP/1.1 400 Bad\r\nContent-Type: application/problem+json\r\nRetry-After: 30\r\n"
	    "Replay-Nonce: n1\r\n\r\n",
	    PROBLEM, strlen(PROBLEM)));
	assert_sverr(acme_resp_finish(&r, "https://ca.example/new-order"), SV_ECA);
	assert_true(r.has_problem);
	assert_true(acme_problem_is(&r.problem, "rejectedIdentifier"));
	assert_false(acme_problem_is(&r.problem, "badNonce"));
	assert_int_equal(r.problem.status, 400);
	assert_int_equal(r.problem.retry_after, 30);
	/* Control characters arrive escaped. */
	assert_string_equal(r.problem.detail, "Error creating new order\\x0a\\x1b[31mred");
	assert_int_equal(r.problem.nsub, ACME_SUBPROB_MAX);
	assert_int_equal(r.problem.nsub_total, 11);
	assert_string_equal(r.problem.sub[0].id.value, "a..example");
	assert_msg_has(SV_ECA, "CA said: rejectedIdentifier: Error creating new order\\x0a");
	assert_msg_has(
	    SV_ECA, "(dns:a..example: malformed: bad name; dns:b.example: caa: CAA forbids");
	assert_msg_has(SV_ECA, "(no detail); and 3 more)"); /* 11 less 8 kept */
	assert_string_equal(r.nonce, "n1");

	assert_ok(acme_problem_copy(&cp, &r.problem));
	acme_problem_text(&r.problem, text, sizeof(text));
	assert_string_equal(acme_problem_text(&cp, text2, sizeof(text2)), text);
	assert_int_equal(cp.retry_after, 30);
	acme_problem_free(&cp);
	/* Truncation keeps the text terminated. */
	acme_problem_text(&r.problem, text, 12);
	assert_string_equal(text, "rejectedIde");
	acme_resp_free(&r);
}

static void
test_problem_odd(void **state)
{
	struct acme_problem p;
	json_t *j;
	char text[256];
	char longd[3 * ACME_TEXT_MAX];

	/* Wrong member types are ignored; a non-object is refused. */
	j = json_pack(
	    "{s:i, s:[s], s:s, s:i}", "type", 5, "detail", "x", "subproblems", "no", "status", 42);
	assert_ok(acme_problem_parse(j, &p));
	assert_null(p.type);
	assert_null(p.detail);
	assert_int_equal(p.status, 0);
	assert_string_equal(acme_problem_text(&p, text, sizeof(text)), "(no type): (no detail)");
	acme_problem_free(&p);
	json_decref(j);
	j = json_string("x");
	assert_sverr(acme_problem_parse(j, &p), SV_EPROTO);
	json_decref(j);

	/* Long details are capped. */
	memset(longd, 'd', sizeof(longd) - 1);
	longd[sizeof(longd) - 1] = '\0';
	j = json_pack("{s:s, s:s}", "type", "about:blank", "detail", longd);
	assert_ok(acme_problem_parse(j, &p));
	assert_true(strlen(p.detail) <= ACME_TEXT_MAX);
	assert_string_equal(p.detail + strlen(p.detail) - 3, "...");
	assert_string_equal(p.type, "about:blank");
	acme_problem_free(&p);
	json_decref(j);
}

static void
test_links_and_retry(void **state)
{
	char *alt[ACME_ALT_MAX] = { 0 }, *up = NULL, buf[2048];
	size_t nalt = 0, i;
	long s;
	int n = 0;

	/* More alternates than ACME_ALT_MAX: the rest are dropped. */
	for (i = 0; i < ACME_ALT_MAX + 3; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
		    "%s<https://c.example/%zu>;rel=alternate", i ? ", " : "", i);
	assert_ok(acme_link_parse(buf, alt, &nalt, &up));
	assert_int_equal(nalt, ACME_ALT_MAX);
	assert_string_equal(alt[ACME_ALT_MAX - 1], "https://c.example/7");
	/* rel lists, and both relations at once. */
	assert_ok(acme_link_parse("<https://c.example/u>; rel=\"up alternate\"", alt, &nalt, &up));
	assert_string_equal(up, "https://c.example/u");
	assert_sverr(acme_link_parse("<https://c.example/u> junk", alt, &nalt, &up), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "junk after a link");
	assert_sverr(acme_link_parse("<https://c.example/u>; =x", alt, &nalt, &up), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "bad link parameter name");
	assert_sverr(acme_link_parse("https://no-brackets;rel=up", alt, &nalt, &up), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "link without <URI>");
	assert_sverr(acme_link_parse("<https://c.example/u>;rel=\"up", alt, &nalt, &up), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "unterminated");
	assert_int_equal(nalt, ACME_ALT_MAX);
	for (i = 0; i < nalt; i++)
		free(alt[i]);
	free(up);

	assert_ok(acme_retry_after_parse("0", NOW, &s));
	assert_int_equal(s, 0);
	assert_ok(acme_retry_after_parse("99999999999999999999", NOW, &s));
	assert_int_equal(s, ACME_RETRY_AFTER_MAX);
	assert_ok(acme_retry_after_parse("Tue, 14 Nov 2023 22:13:30 GMT", NOW, &s));
	assert_int_equal(s, 10);
	assert_sverr(acme_retry_after_parse("-5", NOW, &s), SV_EINVAL);
	assert_int_equal(s, -1);
	assert_sverr(acme_retry_after_parse("", NOW, &s), SV_EINVAL);
}

static void
test_syntax(void **state)
{
	char url[ACME_URL_MAX + 10];

	assert_ok(acme_url_check("https://ca.example/dir"));
	assert_ok(acme_url_check("HTTPS://ca.example:14000/dir?x=1"));
	assert_sverr(acme_url_check("http://ca.example/dir"), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "\"http://ca.example/dir\" is not https://HOST");
	assert_sverr(acme_url_check("https:///path"), SV_EINVAL);
	assert_sverr(acme_url_check("https://a.example/ b"), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "space or control");
	assert_sverr(acme_url_check("https://a.example/\x7f"), SV_EINVAL);
	assert_sverr(acme_url_check(NULL), SV_EINVAL);
	memcpy(url, "https://a.example/", 18);
	memset(url + 18, 'a', sizeof(url) - 19);
	url[sizeof(url) - 1] = '\0';
	assert_sverr(acme_url_check(url), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "longer than 2048");

	assert_ok(acme_nonce_check("a-b_C9", 6));
	assert_sverr(acme_nonce_check("", 0), SV_EPROTO);
	assert_sverr(acme_nonce_check("a=b", 3), SV_EPROTO);
	assert_ok(acme_token_check("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
	assert_sverr(acme_token_check("../../etc/passwd"), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "token is not");
	assert_sverr(acme_token_check("a/b"), SV_EPROTO);
	assert_sverr(acme_token_check(""), SV_EPROTO);
	assert_sverr(acme_token_check(NULL), SV_EPROTO);
	memset(url, 'a', ACME_TOKEN_MAX + 1);
	url[ACME_TOKEN_MAX + 1] = '\0';
	assert_sverr(acme_token_check(url), SV_EPROTO);
	url[ACME_TOKEN_MAX] = '\0';
	assert_ok(acme_token_check(url));

	assert_int_equal(acme_status_parse("ready"), ACME_S_READY);
	assert_int_equal(acme_status_parse("Ready"), ACME_S_UNKNOWN);
	assert_int_equal(acme_status_parse(NULL), ACME_S_UNKNOWN);
	assert_string_equal(acme_status_name(ACME_S_DEACTIVATED), "deactivated");
	assert_string_equal(acme_status_name((enum acme_status)99), "unknown");
}

static json_t *
load(const char *s)
{
	json_t *j = NULL;

	assert_ok(acme_json_parse((const uint8_t *)s, strlen(s), ACME_JSON_MAX, &j));
	return j;
}

static void
test_directory(void **state)
{
	struct acme_dir d;
	json_t *j;

	j = load("{\"keyChange\":\"https://p.example/rollover-account-key\","
		 "\"meta\":{\"externalAccountRequired\":false,"
		 "\"termsOfService\":\"data:text/plain,Do%20what%20thou%20wilt\"},"
		 "\"newAccount\":\"https://p.example/sign-me-up\",\"newNonce\":\"https://p.example/"
		 "nonce-plz\","
		 "\"newOrder\":\"https://p.example/order-plz\",\"revokeCert\":\"https://p.example/"
		 "revoke-cert\"}");
	assert_ok(acme_dir_parse(j, &d));
	assert_string_equal(d.new_nonce, "https://p.example/nonce-plz");
	assert_string_equal(d.key_change, "https://p.example/rollover-account-key");
	assert_null(d.renewal_info);
	assert_string_equal(d.terms_of_service, "data:text/plain,Do%20what%20thou%20wilt");
	assert_false(d.external_account_required);
	assert_non_null(d.meta);
	acme_dir_free(&d);
	json_object_del(j, "newNonce");
	assert_sverr(acme_dir_parse(j, &d), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "directory: \"newNonce\" missing");
	assert_null(d.new_account);
	json_object_set_new(j, "newNonce", json_string("http://p.example/nonce"));
	assert_sverr(acme_dir_parse(j, &d), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"newNonce\": URL");
	json_object_set_new(j, "newNonce", json_string("https://p.example/nonce"));
	json_object_set_new(j, "meta", json_integer(1));
	assert_sverr(acme_dir_parse(j, &d), SV_EPROTO);
	json_decref(j);
}

static const char *ORDER =
    "{\"status\":\"ready\",\"expires\":\"2030-01-01T00:00:00Z\","
    "\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"},{\"type\":\"dns\",\"value\":\"b."
    "example\"}],"
    "\"authorizations\":[\"https://p.example/authZ/1\",\"https://p.example/authZ/2\"],"
    "\"finalize\":\"https://p.example/finalize-order/x\"}";

static void
test_order(void **state)
{
	struct acme_order o;
	json_t *j = load(ORDER), *ids;
	char longv[ACME_IDENT_MAX + 2];
	size_t i;

	assert_ok(acme_order_parse(j, &o));
	assert_int_equal(o.status, ACME_S_READY);
	assert_int_equal(o.nids, 2);
	assert_string_equal(o.ids[1].value, "b.example");
	assert_int_equal(o.nauthzs, 2);
	assert_string_equal(o.authzs[0], "https://p.example/authZ/1");
	assert_null(o.certificate);
	assert_null(o.error);
	assert_int_equal(o.retry_after, -1);
	acme_order_free(&o);

	json_object_set_new(j, "status", json_string("invalid"));
	json_object_set_new(j, "error",
	    json_pack(
		"{s:s,s:s}", "type", "urn:ietf:params:acme:error:unauthorized", "detail", "no"));
	assert_ok(acme_order_parse(j, &o));
	assert_true(acme_problem_is(o.error, "unauthorized"));
	acme_order_free(&o);

	json_object_set_new(j, "status", json_string("done"));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "order: unknown status \"done\"");
	json_object_set_new(j, "status", json_string("valid"));
	json_object_set_new(j, "certificate", json_string("http://p.example/cert"));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"certificate\"");
	json_object_del(j, "certificate");
	json_array_set_new(json_object_get(j, "authorizations"), 1, json_integer(3));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "authorization 1 is not an https URL");
	json_array_set_new(
	    json_object_get(j, "authorizations"), 1, json_string("https://p.example/a"));
	ids = json_object_get(j, "identifiers");
	for (i = 0; i < ACME_IDENTS_MAX; i++)
		json_array_append_new(
		    ids, json_pack("{s:s,s:s}", "type", "dns", "value", "x.example"));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"identifiers\" has 102 elements");
	json_array_clear(ids);
	json_array_append_new(ids, json_pack("{s:s}", "type", "dns"));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "identifier: \"value\" missing");
	json_array_clear(ids);
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	json_array_append_new(ids, json_pack("{s:s,s:s}", "type", "dns", "value", longv));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"value\" longer than 255 bytes");
	json_array_set_new(
	    ids, 0, json_pack("{s:s,s:s#}", "type", "dns", "value", "a\0b", (size_t)3));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "or has NUL");
	json_object_set_new(j, "authorizations", json_string("x"));
	assert_sverr(acme_order_parse(j, &o), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"authorizations\" missing or not an array");
	json_object_del(j, "finalize");
	json_decref(j);
}

static const char *AUTHZ =
    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},"
    "\"wildcard\":true,\"challenges\":["
    "{\"type\":\"dns-01\",\"url\":\"https://p.example/chalZ/"
    "1\",\"token\":\"tok_1-A\",\"status\":\"pending\"},"
    "{\"type\":\"http-01\",\"url\":\"https://p.example/chalZ/"
    "2\",\"token\":\"tok2\",\"status\":\"invalid\","
    "\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\",\"detail\":\"refused\"}},"
    "{\"type\":\"future-01\",\"url\":\"https://p.example/chalZ/3\",\"status\":\"pending\"}]}";

static void
test_authz(void **state)
{
	struct acme_authz z;
	const struct acme_challenge *c;
	json_t *j = load(AUTHZ), *ch;

	assert_ok(acme_authz_parse(j, &z));
	assert_int_equal(z.status, ACME_S_PENDING);
	assert_string_equal(z.id.value, "example.org");
	assert_true(z.wildcard);
	assert_int_equal(z.nchals, 3);
	assert_non_null(c = acme_authz_challenge(&z, "http-01"));
	assert_string_equal(c->token, "tok2");
	assert_int_equal(c->status, ACME_S_INVALID);
	assert_true(acme_problem_is(c->error, "connection"));
	assert_null(acme_authz_challenge(&z, "tls-alpn-01"));
	assert_null(z.chals[2].token);
	acme_authz_free(&z);

	/* A token that could walk out of a webroot is refused. */
	ch = json_array_get(json_object_get(j, "challenges"), 0);
	json_object_set_new(ch, "token", json_string("../../../etc/passwd"));
	assert_sverr(acme_authz_parse(j, &z), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "token is not");
	json_object_set_new(ch, "token", json_string("ok"));
	json_object_set_new(j, "wildcard", json_string("yes"));
	assert_sverr(acme_authz_parse(j, &z), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"wildcard\" is not a boolean");
	json_object_del(j, "wildcard");
	json_object_set_new(ch, "url", json_string("ftp://p.example/x"));
	assert_sverr(acme_authz_parse(j, &z), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "challenge: \"url\"");
	json_object_set_new(ch, "url", json_string("https://p.example/x"));
	json_object_del(ch, "type");
	assert_sverr(acme_authz_parse(j, &z), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "challenge: \"type\" missing");
	json_object_del(j, "challenges");
	assert_sverr(acme_authz_parse(j, &z), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "authorization: \"challenges\" missing");
	assert_null(z.chals);
	json_decref(j);
}

static void
test_account_renewal(void **state)
{
	struct acme_account a;
	struct acme_renewal rn;
	json_t *j;

	j = load(
	    "{\"status\":\"valid\",\"orders\":\"https://p.example/list-orderz/1\",\"key\":{}}");
	assert_ok(acme_account_parse(j, &a));
	assert_int_equal(a.status, ACME_S_VALID);
	assert_string_equal(a.orders, "https://p.example/list-orderz/1");
	acme_account_free(&a);
	json_object_del(j, "status");
	assert_sverr(acme_account_parse(j, &a), SV_EPROTO);
	json_decref(j);

	j = load("{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\","
		 "\"end\":\"2025-01-03T04:00:00.123+01:00\"},\"explanationURL\":\"https://"
		 "e.example/why\"}");
	assert_ok(acme_renewal_parse(j, &rn));
	assert_int_equal(rn.start, 1735790400);
	assert_int_equal(rn.end, 1735790400 + 86400 - 3600);
	assert_string_equal(rn.explanation, "https://e.example/why");
	acme_renewal_free(&rn);
	json_object_set_new(
	    json_object_get(j, "suggestedWindow"), "end", json_string("2025-01-01T00:00:00Z"));
	assert_sverr(acme_renewal_parse(j, &rn), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "ends before it starts");
	json_object_set_new(json_object_get(j, "suggestedWindow"), "end", json_string("tomorrow"));
	assert_sverr(acme_renewal_parse(j, &rn), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "RFC 3339");
	json_object_del(j, "suggestedWindow");
	assert_sverr(acme_renewal_parse(j, &rn), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "\"suggestedWindow\" missing");
	json_decref(j);
}

static void
test_rfc3339(void **state)
{
	time_t t;

	assert_ok(acme_rfc3339_parse("1970-01-01T00:00:00Z", &t));
	assert_int_equal(t, 0);
	assert_ok(acme_rfc3339_parse("2023-11-14t22:13:20.999999z", &t));
	assert_int_equal(t, NOW);
	assert_ok(acme_rfc3339_parse("2023-11-14T23:43:20+01:30", &t));
	assert_int_equal(t, NOW);
	assert_ok(acme_rfc3339_parse("2023-11-14T17:13:20-05:00", &t));
	assert_int_equal(t, NOW);
	assert_sverr(acme_rfc3339_parse("2023-11-14T22:13:20", &t), SV_EINVAL);
	assert_sverr(acme_rfc3339_parse("2023-13-14T22:13:20Z", &t), SV_EINVAL);
	assert_sverr(acme_rfc3339_parse("2023-11-14T22:13:20+0100", &t), SV_EINVAL);
	assert_sverr(acme_rfc3339_parse("2023-11-14T22:13:20Zjunk", &t), SV_EINVAL);
	assert_sverr(acme_rfc3339_parse(NULL, &t), SV_EINVAL);
}

static void
test_poll_delay(void **state)
{
	struct acme_poll p = { 100, 1000, 0 };

	assert_int_equal(acme_poll_delay_ms(-1, 0, &p, 100000), 100);
	assert_int_equal(acme_poll_delay_ms(-1, 1, &p, 100000), 200);
	assert_int_equal(acme_poll_delay_ms(-1, 3, &p, 100000), 800);
	assert_int_equal(acme_poll_delay_ms(-1, 4, &p, 100000), 1000); /* capped */
	assert_int_equal(acme_poll_delay_ms(-1, 60, &p, 100000), 1000);
	assert_int_equal(acme_poll_delay_ms(-1, 2, &p, 150), 150);   /* deadline */
	assert_int_equal(acme_poll_delay_ms(0, 5, &p, 100000), 100); /* floor */
	assert_int_equal(acme_poll_delay_ms(3600, 0, &p, 100000), 1000);
	p.max_wait_ms = 60000;
	assert_int_equal(acme_poll_delay_ms(3, 0, &p, 100000), 3000);	/* Retry-After honoured */
	assert_int_equal(acme_poll_delay_ms(-1, 0, NULL, 100000), 250); /* defaults */
	assert_int_equal(acme_poll_delay_ms(-1, 10, NULL, 100000), 10000);
	assert_int_equal(acme_poll_delay_ms(-1, 0, NULL, -5), 0);
}

/* RFC 7638 section 3.1 example key. */
static json_t *
rfc7638_jwk(void)
{
	return json_pack("{s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "n",
	    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
	    "_BJECPe"
	    "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
	    "FDW2QvzqY"
	    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
	    "bFTWhAI4vMQFh6WeZu0"
	    "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
}

static void
test_keyauth(void **state)
{
	json_t *jwk = rfc7638_jwk();
	char *ka, *txt;

	assert_ok(acme_keyauth("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", jwk, &ka));
	assert_string_equal(ka,
	    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_"
	    "7noWXFZAfHkxZsRGC9Xs");
	/* Expected value computed independently (Python hashlib + base64). */
	assert_ok(acme_dns01_txt(ka, &txt));
	assert_string_equal(txt, "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8");
	free(ka);
	free(txt);
	assert_sverr(acme_keyauth("bad/token", jwk, &ka), SV_EINVAL);
	assert_null(ka);
	assert_sverr(acme_dns01_txt("no-dot", &txt), SV_EINVAL);
	json_decref(jwk);
	jwk = json_pack("{s:s}", "kty", "XYZ");
	assert_true(acme_keyauth("tok", jwk, &ka) < 0);
	assert_null(ka);
	assert_non_null(strstr(sv_errmsg(acme_keyauth("tok", jwk, &ka)), "key authorization: "));
	json_decref(jwk);
}

/* A certificate with the given serial and AKI keyIdentifier (NULL: none). */
static X509 *
make_cert(long serial, const uint8_t *aki, size_t akilen, EVP_PKEY **keyout)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid;

	assert_non_null(k);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"t.example", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	if (aki != NULL) {
		akid = AUTHORITY_KEYID_new();
		akid->keyid = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(akid->keyid, aki, (int)akilen);
		assert_int_equal(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0), 1);
		AUTHORITY_KEYID_free(akid);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*keyout = k;
	return x;
}

static void
test_ari_certid(void **state)
{
	/* RFC 9773 section 4.1 example. */
	static const uint8_t aki[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
		0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	static const uint8_t serial[] = { 0x00, 0x87, 0x65, 0x43, 0x21 };
	EVP_PKEY *k;
	X509 *x;
	char *id;

	assert_ok(acme_ari_certid_raw(aki, sizeof(aki), serial, sizeof(serial), &id));
	assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	free(id);
	x = make_cert(0x87654321L, aki, sizeof(aki), &k);
	assert_ok(acme_ari_certid(x, &id));
	assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	free(id);
	X509_free(x);
	EVP_PKEY_free(k);
	x = make_cert(5, NULL, 0, &k);
	assert_sverr(acme_ari_certid(x, &id), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "no authority key identifier");
	assert_null(id);
	X509_free(x);
	EVP_PKEY_free(k);
	assert_sverr(acme_ari_certid_raw(aki, 0, serial, 1, &id), SV_EINVAL);
}

static void
test_pem_chain(void **state)
{
	EVP_PKEY *k;
	X509 *x = make_cert(7, NULL, 0, &k);
	BIO *b = BIO_new(BIO_s_mem());
	struct acme_resp r;
	char *pem, *bad;
	long len;
	size_t n, i;

	PEM_write_bio_X509(b, x);
	PEM_write_bio_X509(b, x);
	len = BIO_get_mem_data(b, &pem);
	assert_ok(acme_pem_chain_check(pem, (size_t)len, &n));
	assert_int_equal(n, 2);

	assert_ok(acme_resp_init(&r, ACME_BODY_PEM));
	assert_ok(feed(&r, "HTTP/2 200\r\nContent-Type: application/pem-certificate-chain\r\n\r\n",
	    pem, (size_t)len));
	assert_ok(acme_resp_finish(&r, "https://p.example/cert"));
	assert_int_equal(r.ncerts, 2); /* acme_cert_download() takes the count from here */
	acme_resp_free(&r);
	assert_ok(acme_resp_init(&r, ACME_BODY_PEM));
	assert_ok(
	    feed(&r, "HTTP/2 200\r\nContent-Type: application/json\r\n\r\n", pem, (size_t)len));
	assert_sverr(acme_resp_finish(&r, "https://p.example/cert"), SV_EPROTO);
	acme_resp_free(&r);

	/* A private key block in a "chain", garbage, a corrupted body. */
	bad = malloc((size_t)len + 1);
	memcpy(bad, pem, (size_t)len);
	bad[len] = '\0';
	memcpy(strstr(bad, "CERTIFICATE"), "PRIVATE KEY", 11);
	memcpy(strstr(bad, "END CERTIFICATE") + 4, "PRIVATE KEY", 11);
	assert_sverr(acme_pem_chain_check(bad, (size_t)len, &n), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "not a certificate");
	assert_int_equal(n, 0);
	/* The download's only check is the answer's: it refuses the same. */
	assert_ok(acme_resp_init(&r, ACME_BODY_PEM));
	assert_ok(feed(&r, "HTTP/2 200\r\nContent-Type: application/pem-certificate-chain\r\n\r\n",
	    bad, (size_t)len));
	assert_sverr(acme_resp_finish(&r, "https://p.example/cert"), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "not a certificate");
	assert_int_equal(r.ncerts, 0);
	acme_resp_free(&r);
	assert_sverr(acme_pem_chain_check("hello", 5, &n), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "holds no certificate");
	memcpy(bad, pem, (size_t)len);
	bad[70] = '*';
	assert_sverr(acme_pem_chain_check(bad, (size_t)len, &n), SV_EPROTO);
	bad[70] = '\0';
	assert_sverr(acme_pem_chain_check(bad, (size_t)len, &n), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "NUL byte");
	free(bad);
	/* 18 certificates: over the chain length cap. */
	for (i = 0; i < 16; i++)
		PEM_write_bio_X509(b, x);
	len = BIO_get_mem_data(b, &pem);
	assert_sverr(acme_pem_chain_check(pem, (size_t)len, &n), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "more than 16 certificates");
	assert_sverr(acme_pem_chain_check(pem, ACME_PEM_MAX + 1, &n), SV_ETOOBIG);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
test_local_signer(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct jws_signer s;
	struct acme_local_key lk = { &s, NULL, NULL };
	json_t *jwk = NULL, *jws = NULL, *hdr = NULL;
	uint8_t *pl;
	size_t plen;

	assert_ok(jws_pkey_signer(k, &s));
	assert_ok(jwk_from_pkey(k, &jwk));
	lk.jwk = jwk;
	assert_ok(acme_sign_local(
	    &lk, "https://p.example/new-acct", "n0", (const uint8_t *)"{}", 2, 1, &jws));
	assert_ok(jws_verify(jws, k, 64, &hdr, &pl, &plen));
	assert_string_equal(
	    json_string_value(json_object_get(hdr, "url")), "https://p.example/new-acct");
	assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), "n0");
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "ES256");
	assert_true(json_equal(json_object_get(hdr, "jwk"), jwk));
	assert_null(json_object_get(hdr, "kid"));
	assert_memory_equal(pl, "{}", 2);
	free(pl);
	json_decref(hdr);
	json_decref(jws);
	/* kid requests need the account URL; NULL nonce leaves "nonce" out. */
	assert_sverr(
	    acme_sign_local(&lk, "https://p.example/x", "n1", NULL, 0, 0, &jws), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "no account URL");
	lk.kid = "https://p.example/acct/1";
	assert_ok(acme_sign_local(&lk, "https://p.example/x", NULL, NULL, 0, 0, &jws));
	assert_ok(jws_verify(jws, k, 64, &hdr, &pl, &plen));
	assert_string_equal(json_string_value(json_object_get(hdr, "kid")), lk.kid);
	assert_null(json_object_get(hdr, "nonce"));
	assert_null(json_object_get(hdr, "jwk"));
	assert_int_equal(plen, 0);
	free(pl);
	json_decref(hdr);
	json_decref(jws);
	assert_sverr(
	    acme_protected_header("https://p.example/x", "n", jwk, "kid", &hdr), SV_EINVAL);
	assert_sverr(
	    acme_sign_local(NULL, "https://p.example/x", "n", NULL, 0, 0, &jws), SV_EINVAL);
	lk.jwk = NULL;
	assert_sverr(acme_sign_local(&lk, "https://p.example/x", "n", NULL, 0, 1, &jws), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "without a key");
	json_decref(jwk);
	EVP_PKEY_free(k);
}

static void
test_open_refuses(void **state)
{
	struct acme_opts o = { "http://127.0.0.1:1/dir", NULL, 5, NULL };
	struct acme *a = (struct acme *)&o;

	/* Refused before any connection: port 1 would fail with SV_ENET otherwise. */
	assert_sverr(acme_open(&o, &a), SV_EINVAL);
	assert_null(a);
	assert_msg_has(SV_EINVAL, "acme: directory: URL \"http://127.0.0.1:1/dir\" is not https");
	o.directory_url = "file:///etc/passwd";
	assert_sverr(acme_open(&o, &a), SV_EINVAL);
	o.directory_url = NULL;
	assert_sverr(acme_open(&o, &a), SV_EINVAL);
	o.directory_url = "https://127.0.0.1:1/dir";
	o.user_agent = "bad\nagent";
	assert_sverr(acme_open(&o, &a), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "control character");
	/* An https URL with nothing listening is a network error naming the URL. */
	o.user_agent = "test";
	assert_sverr(acme_open(&o, &a), SV_ENET);
	assert_msg_has(SV_ENET, "GET https://127.0.0.1:1/dir");
	assert_null(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_body_caps),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_problem),
		cmocka_unit_test(test_problem_odd),
		cmocka_unit_test(test_links_and_retry),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_authz),
		cmocka_unit_test(test_account_renewal),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_poll_delay),
		cmocka_unit_test(test_keyauth),
		cmocka_unit_test(test_ari_certid),
		cmocka_unit_test(test_pem_chain),
		cmocka_unit_test(test_local_signer),
		cmocka_unit_test(test_open_refuses),
	};
	int rc;

	if (sodium_init() < 0 || acme_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("acme_parse", tests, NULL, NULL);
	acme_global_cleanup();
	return rc;
}
