/*
 * The ACME client end to end against a real Pebble on loopback, started by
 * tests/integration/pebble.sh as a ctest fixture (--nonce-reject 30
 * --authz-reuse 100 --alternate-roots 1).  The fixture's env file is named
 * by $PEBBLE_ENV_FILE.  Signing uses an in-memory EC P-256 key through a
 * counting acme_sign_fn; http-01 is answered by a tiny responder thread in
 * this file (test code only) on 127.0.0.1:$PEBBLE_HTTP01_PORT.
 *
 * Covers: full issuance (two names, chain verified with OpenSSL against
 * PEBBLE_ROOT, alternate chain from Link), a reused authz (order "ready", no
 * challenge), a failed validation (authz invalid with the CA's reason), a
 * poll deadline, badNonce retries (more signatures than requests, every
 * nonce used once), problem documents (bad identifier, CSR not matching),
 * finalize refused before "ready", onlyReturnExisting, keyChange (old key
 * refused afterwards; a key that already has an account is refused),
 * revokeCert,
 * ARI absent (SV_EUNSUPP), and an http:// directory refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "acme.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "svtest.h"

#define RESP_SLOTS 8
#define NONCES_MAX 4096
/* Fast polling: Pebble validates at once with PEBBLE_VA_NOSLEEP. */
static const struct acme_poll FAST = { 50, 1000, 20000 };

static struct {
	char url[512], ca[512], root[512];
	int http01_port;
} env;

/* ------------------------------------------------------- http-01 responder */

static struct {
	int fd;
	pthread_t th;
	atomic_int stop;
	pthread_mutex_t mu;
	char token[RESP_SLOTS][ACME_TOKEN_MAX + 1];
	char keyauth[RESP_SLOTS][ACME_TOKEN_MAX + JWK_THUMB_LEN + 2];
	atomic_ulong hits, misses;
} rsp = { .fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

static void
rsp_answer(int c)
{
	static const char prefix[] = "GET /.well-known/acme-challenge/";
	char req[4096], out[1024], body[sizeof(rsp.keyauth[0])] = "";
	size_t n = 0, tl, i;
	ssize_t got;

	while (n < sizeof(req) - 1 && (got = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
		n += (size_t)got;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	req[n] = '\0';
	if (strncmp(req, prefix, sizeof(prefix) - 1) == 0) {
		tl = strcspn(req + sizeof(prefix) - 1, " ");
		pthread_mutex_lock(&rsp.mu);
		for (i = 0; i < RESP_SLOTS; i++)
			if (rsp.token[i][0] != '\0' && strlen(rsp.token[i]) == tl &&
			    memcmp(rsp.token[i], req + sizeof(prefix) - 1, tl) == 0)
				snprintf(body, sizeof(body), "%s", rsp.keyauth[i]);
		pthread_mutex_unlock(&rsp.mu);
	}
	if (body[0] != '\0') {
		atomic_fetch_add(&rsp.hits, 1);
		snprintf(out, sizeof(out),
		    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s",
		    strlen(body), body);
	} else {
		atomic_fetch_add(&rsp.misses, 1);
		snprintf(out, sizeof(out),
		    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	}
	if (write(c, out, strlen(out)) < 0)
		perror("responder write");
}

static void *
rsp_main(void *arg)
{
	struct pollfd p = { rsp.fd, POLLIN, 0 };
	struct timeval tv = { 2, 0 };
	int c;

	while (!atomic_load(&rsp.stop)) {
		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((c = accept(rsp.fd, NULL, NULL)) < 0)
			continue;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rsp_answer(c);
		close(c);
	}
	return NULL;
}

static int
rsp_start(int port)
{
	struct sockaddr_in sin = { 0 };
	int one = 1;

	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((rsp.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(rsp.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(rsp.fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(rsp.fd, 16) != 0) {
		perror("http-01 responder");
		return -1;
	}
	return pthread_create(&rsp.th, NULL, rsp_main, NULL) == 0 ? 0 : -1;
}

static void
rsp_set(const char *token, const char *keyauth)
{
	size_t i;

	pthread_mutex_lock(&rsp.mu);
	for (i = 0; i < RESP_SLOTS; i++)
		if (rsp.token[i][0] == '\0') {
			snprintf(rsp.token[i], sizeof(rsp.token[i]), "%s", token);
			snprintf(rsp.keyauth[i], sizeof(rsp.keyauth[i]), "%s", keyauth);
			break;
		}
	pthread_mutex_unlock(&rsp.mu);
	assert_true(i < RESP_SLOTS);
}

static void
rsp_clear(void)
{
	pthread_mutex_lock(&rsp.mu);
	memset(rsp.token, 0, sizeof(rsp.token));
	pthread_mutex_unlock(&rsp.mu);
}

/* ------------------------------------------------------------- signers */

/* An in-memory key behind a counting acme_sign_fn. */
struct tkey {
	EVP_PKEY *pk;
	struct jws_signer s;
	json_t *jwk;
	struct acme_local_key lk;
	char *kid;
};

static unsigned long sign_calls;
static char *nonces[NONCES_MAX];
static size_t nnonces;
static int nonce_reused;

static int
tsign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **out)
{
	struct tkey *k = ctx;
	size_t i;

	sign_calls++;
	if (nonce != NULL) {
		for (i = 0; i < nnonces; i++)
			if (strcmp(nonces[i], nonce) == 0)
				nonce_reused = 1;
		if (nnonces < NONCES_MAX)
			nonces[nnonces++] = strdup(nonce);
	}
	return acme_sign_local(&k->lk, url, nonce, payload, plen, use_jwk, out);
}

static void
tkey_make(struct tkey *k)
{
	memset(k, 0, sizeof(*k));
	assert_non_null(k->pk = EVP_EC_gen("P-256"));
	assert_ok(jws_pkey_signer(k->pk, &k->s));
	assert_ok(jwk_from_pkey(k->pk, &k->jwk));
	k->lk.signer = &k->s;
	k->lk.jwk = k->jwk;
}

/* After a struct copy: point the local signer at this struct's members. */
static void
tkey_fix(struct tkey *k)
{
	k->lk.signer = &k->s;
	k->lk.jwk = k->jwk;
	k->lk.kid = k->kid;
}

static void
tkey_set_kid(struct tkey *k, const char *kid)
{
	free(k->kid);
	k->kid = kid != NULL ? strdup(kid) : NULL;
	k->lk.kid = k->kid;
}

static void
tkey_free(struct tkey *k)
{
	EVP_PKEY_free(k->pk);
	json_decref(k->jwk);
	free(k->kid);
	memset(k, 0, sizeof(*k));
}

static struct acme *ac;
static struct tkey akey; /* the main account's key (changes at keyChange) */
static char *acct_url;
static X509 *issued; /* a certificate from the issuance test, for revoke */

static void
register_key(struct tkey *k, struct acme_account *out)
{
	static const char *const contact[] = { "mailto:admin@example.com" };
	struct acme_account_req req = { contact, 1, 1, 0, NULL };

	assert_ok(acme_account_new(ac, &req, tsign, k, out));
	assert_non_null(out->url);
	assert_int_equal(out->status, ACME_S_VALID);
	tkey_set_kid(k, out->url);
}

/* ----------------------------------------------------------- set-up */

static int
env_load(void)
{
	const char *path = getenv("PEBBLE_ENV_FILE");
	char line[1024], *eq;
	FILE *f;

	if (path == NULL || (f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "cannot read the Pebble env file $PEBBLE_ENV_FILE (%s)\n",
		    path ? path : "unset");
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(line, "PEBBLE_URL") == 0)
			snprintf(env.url, sizeof(env.url), "%s", eq);
		else if (strcmp(line, "PEBBLE_CA") == 0)
			snprintf(env.ca, sizeof(env.ca), "%s", eq);
		else if (strcmp(line, "PEBBLE_ROOT") == 0)
			snprintf(env.root, sizeof(env.root), "%s", eq);
		else if (strcmp(line, "PEBBLE_HTTP01_PORT") == 0)
			env.http01_port = atoi(eq);
	}
	fclose(f);
	if (env.url[0] == '\0' || env.ca[0] == '\0' || env.root[0] == '\0' ||
	    env.http01_port <= 0) {
		fprintf(
		    stderr, "%s lacks PEBBLE_URL/PEBBLE_CA/PEBBLE_ROOT/PEBBLE_HTTP01_PORT\n", path);
		return -1;
	}
	return 0;
}

static int
group_setup(void **state)
{
	struct acme_opts o = { env.url, env.ca, 10, "test_acme_pebble" };
	struct acme_account a;

	if (env_load() != 0 || rsp_start(env.http01_port) != 0)
		return -1;
	if (acme_open(&o, &ac) != 0) {
		fprintf(stderr, "acme_open(%s): %s\n", env.url, sv_errmsg(SV_ENET));
		return -1;
	}
	tkey_make(&akey);
	register_key(&akey, &a);
	assert_true(a.created);
	acct_url = strdup(a.url);
	acme_account_free(&a);
	return 0;
}

static int
group_teardown(void **state)
{
	size_t i;

	atomic_store(&rsp.stop, 1);
	if (rsp.fd >= 0) {
		pthread_join(rsp.th, NULL);
		close(rsp.fd);
	}
	acme_close(ac);
	tkey_free(&akey);
	free(acct_url);
	X509_free(issued);
	for (i = 0; i < nnonces; i++)
		free(nonces[i]);
	return 0;
}

/* ------------------------------------------------------------ helpers */

/* DER CSR for names with a fresh P-256 key. */
static void
make_csr(const char *const *names, size_t n, uint8_t **der, size_t *len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext;
	char san[1024] = "";
	unsigned char *p = NULL;
	size_t i, o = 0;
	int l;

	for (i = 0; i < n; i++)
		o += (size_t)snprintf(san + o, sizeof(san) - o, "%sDNS:%s", i ? "," : "", names[i]);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	    (const unsigned char *)names[0], -1, -1, 0);
	assert_non_null(ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san));
	sk_X509_EXTENSION_push(exts, ext);
	assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
	assert_true((l = i2d_X509_REQ(req, &p)) > 0);
	*der = p;
	*len = (size_t)l;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
}

/* Verify a PEM chain against the root file; returns the leaf (caller frees). */
static X509 *
verify_chain(
    const char *pem, size_t len, const char *root, const char *const *names, size_t n, int *ok)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	STACK_OF(X509) *rest = sk_X509_new_null();
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf, *x;
	size_t i;

	assert_non_null(leaf = PEM_read_bio_X509(b, NULL, NULL, NULL));
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(rest, x);
	ERR_clear_error();
	assert_true(sk_X509_num(rest) >= 1);
	assert_int_equal(X509_STORE_load_file(st, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, rest), 1);
	*ok = X509_verify_cert(ctx) == 1;
	ERR_clear_error();
	for (i = 0; i < n; i++)
		assert_int_equal(X509_check_host(leaf, names[i], 0, 0, NULL), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_pop_free(rest, X509_free);
	BIO_free(b);
	return leaf;
}

/* Answer the http-01 challenge of a pending authz and wait until it is valid. */
static void
solve_http01(struct acme_authz *z)
{
	const struct acme_challenge *c = acme_authz_challenge(z, "http-01");
	struct acme_challenge answered;
	char *ka;

	assert_non_null(c);
	assert_ok(acme_token_check(c->token));
	assert_ok(acme_keyauth(c->token, akey.jwk, &ka));
	rsp_set(c->token, ka);
	assert_ok(acme_challenge_answer(ac, c->url, tsign, &akey, &answered));
	assert_string_equal(answered.type, "http-01");
	acme_challenge_free(&answered);
	assert_ok(acme_authz_poll(ac, z, ACME_WANT(ACME_S_VALID), &FAST, tsign, &akey));
	assert_int_equal(z->status, ACME_S_VALID);
	rsp_clear();
	free(ka);
}

static void
idents(const char *const *names, size_t n, struct acme_ident *ids)
{
	size_t i;

	for (i = 0; i < n; i++) {
		ids[i].type = (char *)"dns";
		ids[i].value = (char *)names[i];
	}
}

/*
 * Order names, solving challenges unless reuse is expected, finalize,
 * download and verify.  Returns the leaf (caller frees).
 */
static X509 *
issue(const char *const *names, size_t n, int expect_reuse)
{
	struct acme_ident ids[4];
	struct acme_order o;
	struct acme_authz z;
	struct acme_chain ch, alt;
	unsigned long hits = atomic_load(&rsp.hits);
	uint8_t *csr;
	size_t csrlen, i;
	X509 *leaf;
	int ok;

	idents(names, n, ids);
	assert_ok(acme_order_new(ac, ids, n, NULL, tsign, &akey, &o));
	assert_non_null(o.url);
	assert_int_equal(o.nauthzs, n);
	assert_int_equal(o.status, expect_reuse ? ACME_S_READY : ACME_S_PENDING);
	for (i = 0; i < o.nauthzs; i++) {
		assert_ok(acme_authz_get(ac, o.authzs[i], tsign, &akey, &z));
		if (expect_reuse)
			assert_int_equal(z.status, ACME_S_VALID);
		else if (z.status == ACME_S_PENDING)
			solve_http01(&z);
		acme_authz_free(&z);
	}
	if (expect_reuse)
		assert_int_equal(atomic_load(&rsp.hits), hits); /* no challenge at all */
	else
		assert_true(atomic_load(&rsp.hits) >= hits + n);
	assert_ok(acme_order_poll(ac, &o, ACME_WANT(ACME_S_READY), &FAST, tsign, &akey));
	make_csr(names, n, &csr, &csrlen);
	assert_ok(acme_order_finalize(ac, &o, csr, csrlen, tsign, &akey));
	OPENSSL_free(csr);
	assert_ok(acme_order_poll(ac, &o, ACME_WANT(ACME_S_VALID), &FAST, tsign, &akey));
	assert_non_null(o.certificate);
	assert_ok(acme_cert_download(ac, o.certificate, tsign, &akey, &ch));
	assert_true(ch.ncerts >= 2);
	leaf = verify_chain(ch.pem, ch.len, env.root, names, n, &ok);
	assert_true(ok);
	/* --alternate-roots 1: one alternate chain, to another root. */
	assert_int_equal(ch.nalt, 1);
	assert_ok(acme_cert_download(ac, ch.alternates[0], tsign, &akey, &alt));
	assert_true(alt.len != ch.len || memcmp(alt.pem, ch.pem, ch.len) != 0);
	X509_free(verify_chain(alt.pem, alt.len, env.root, names, n, &ok));
	assert_false(ok);
	acme_chain_free(&alt);
	acme_chain_free(&ch);
	acme_order_free(&o);
	return leaf;
}

/* -------------------------------------------------------------- tests */

static void
test_http_refused(void **state)
{
	char url[600];
	struct acme_opts o = { url, env.ca, 5, NULL };
	struct acme *a = NULL;

	snprintf(url, sizeof(url), "http://%.500s", env.url + strlen("https://"));
	assert_sverr(acme_open(&o, &a), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "is not https");
	assert_null(a);
}

static void
test_directory_and_ari(void **state)
{
	const struct acme_dir *d = acme_directory(ac);
	struct acme_renewal rn;

	assert_non_null(d->new_nonce);
	assert_non_null(d->new_order);
	assert_non_null(d->key_change);
	assert_non_null(d->revoke_cert);
	assert_int_equal(strncmp(d->new_account, env.url, strlen(env.url) - strlen("dir")), 0);
	assert_non_null(issued);
	if (d->renewal_info == NULL) {
		/* Pebble 2.4 has no ARI: refused cleanly, before any traffic. */
		assert_sverr(acme_renewal_info(ac, issued, &rn), SV_EUNSUPP);
		assert_msg_has(SV_EUNSUPP, "no renewalInfo");
	} else {
		assert_ok(acme_renewal_info(ac, issued, &rn));
		assert_true(rn.end >= rn.start);
		acme_renewal_free(&rn);
	}
}

static void
test_full_issuance(void **state)
{
	static const char *const names[] = { "issue.example.com", "www.issue.example.com" };

	issued = issue(names, 2, 0);
}

static void
test_authz_reuse(void **state)
{
	static const char *const names[] = { "issue.example.com" };

	X509_free(issue(names, 1, 1));
}

static void
test_validation_fails(void **state)
{
	struct acme_ident id = { (char *)"dns", (char *)"fails.example.com" };
	const struct acme_challenge *c;
	struct acme_order o;
	struct acme_authz z;

	/* Answer without serving the token: the responder says 404. */
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &akey, &o));
	assert_int_equal(o.status, ACME_S_PENDING);
	assert_ok(acme_authz_get(ac, o.authzs[0], tsign, &akey, &z));
	assert_non_null(c = acme_authz_challenge(&z, "http-01"));
	assert_ok(acme_challenge_answer(ac, c->url, tsign, &akey, NULL));
	assert_sverr(acme_authz_poll(ac, &z, ACME_WANT(ACME_S_VALID), &FAST, tsign, &akey), SV_ECA);
	assert_msg_has(SV_ECA, "CA said: ");
	assert_msg_has(SV_ECA, "is invalid]");
	assert_int_equal(z.status, ACME_S_INVALID);
	acme_authz_free(&z);
	assert_sverr(acme_order_poll(ac, &o, ACME_WANT(ACME_S_READY), &FAST, tsign, &akey), SV_ECA);
	acme_order_free(&o);
}

static void
test_poll_deadline_and_state(void **state)
{
	struct acme_ident id = { (char *)"dns", (char *)"slow.example.com" };
	struct acme_poll p = { 50, 100, 300 };
	struct acme_order o;
	uint8_t csr[8] = { 0 };

	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &akey, &o));
	assert_int_equal(o.status, ACME_S_PENDING);
	/* Nobody answers the challenge: the deadline ends the wait. */
	assert_sverr(
	    acme_order_poll(ac, &o, ACME_WANT(ACME_S_READY), &p, tsign, &akey), SV_ETIMEOUT);
	assert_msg_has(SV_ETIMEOUT, "still pending after 300 ms");
	/* finalize before ready is refused without traffic. */
	assert_sverr(acme_order_finalize(ac, &o, csr, sizeof(csr), tsign, &akey), SV_ESTATE);
	assert_msg_has(SV_ESTATE, "is pending, not ready");
	acme_order_free(&o);
}

static void
test_problem_documents(void **state)
{
	static const char *const names[] = { "issue.example.com" };
	static const char *const other[] = { "other.example.com" };
	struct acme_ident id = { (char *)"dns", (char *)"127.0.0.1" };
	const struct acme_problem *pr;
	struct acme_order o;
	uint8_t *csr;
	size_t len;

	assert_sverr(acme_order_new(ac, &id, 1, NULL, tsign, &akey, &o), SV_ECA);
	assert_msg_has(SV_ECA, "CA said: ");
	assert_non_null(pr = acme_last_problem(ac));
	assert_non_null(pr->type);
	assert_int_equal(strncmp(pr->type, ACME_ERROR_PREFIX, strlen(ACME_ERROR_PREFIX)), 0);
	assert_non_null(pr->detail);
	assert_int_equal(pr->status, 400);
	assert_null(o.url);

	/* A CSR whose names are not the order's. */
	idents(names, 1, &id);
	assert_ok(acme_order_new(ac, &id, 1, NULL, tsign, &akey, &o));
	assert_int_equal(o.status, ACME_S_READY);
	make_csr(other, 1, &csr, &len);
	assert_sverr(acme_order_finalize(ac, &o, csr, len, tsign, &akey), SV_ECA);
	assert_non_null(pr = acme_last_problem(ac));
	assert_true(acme_problem_is(pr, "badCSR") || acme_problem_is(pr, "unauthorized"));
	assert_msg_has(SV_ECA, "CA said: ");
	assert_non_null(o.url); /* the order is kept on error */
	OPENSSL_free(csr);
	acme_order_free(&o);
}

static void
test_bad_nonce_retries(void **state)
{
	struct acme_stats st;
	struct acme_account a;
	int i;

	/* Enough requests that a 30 % rejection rate surely shows. */
	for (i = 0; i < 30; i++) {
		assert_ok(acme_account_get(ac, akey.kid, tsign, &akey, &a));
		assert_string_equal(a.url, acct_url);
		acme_account_free(&a);
	}
	acme_stats_get(ac, &st);
	assert_true(st.bad_nonces > 0);
	assert_true(st.attempts > st.posts);
	assert_int_equal(st.attempts, st.posts + st.bad_nonces);
	/* Every attempt was signed afresh, each with a nonce never used before. */
	assert_true(sign_calls >= st.attempts);
	assert_false(nonce_reused);
	assert_true(st.nonce_heads >= 1);
	assert_true(st.nonce_heads < st.attempts);
}

static void
test_only_existing(void **state)
{
	struct acme_account_req req = { NULL, 0, 0, 1, NULL };
	struct acme_account a;
	struct tkey fresh;

	assert_ok(acme_account_new(ac, &req, tsign, &akey, &a));
	assert_string_equal(a.url, acct_url);
	assert_false(a.created);
	acme_account_free(&a);
	tkey_make(&fresh);
	assert_sverr(acme_account_new(ac, &req, tsign, &fresh, &a), SV_ENOTFOUND);
	assert_true(acme_problem_is(acme_last_problem(ac), "accountDoesNotExist"));
	assert_null(a.url);
	tkey_free(&fresh);
}

static void
test_key_change(void **state)
{
	struct tkey newk, other, old;
	struct acme_account a, b;
	int rc;

	tkey_make(&newk);
	tkey_make(&other);
	register_key(&other, &b);
	assert_string_not_equal(b.url, acct_url);
	assert_ok(acme_key_change(ac, acct_url, akey.jwk, tsign, &akey, tsign, &newk));
	old = akey;
	tkey_fix(&old);
	akey = newk;
	tkey_fix(&akey);
	tkey_set_kid(&akey, acct_url);
	/* The account URL stays; the new key works, the old one does not. */
	assert_ok(acme_account_get(ac, acct_url, tsign, &akey, &a));
	assert_string_equal(a.url, acct_url);
	assert_int_equal(a.status, ACME_S_VALID);
	acme_account_free(&a);
	assert_sverr(acme_account_get(ac, acct_url, tsign, &old, &a), SV_ECA);
	assert_non_null(acme_last_problem(ac));
	/*
	 * A key that already has an account.  RFC 8555 says 409 (SV_EEXIST:
	 * test_acme_fakeca checks that mapping); Pebble 2.4 answers 500
	 * serverInternal "New public key is already in use by account ...".
	 * Either way the change fails and the account keeps its key.
	 */
	rc = acme_key_change(ac, acct_url, akey.jwk, tsign, &akey, tsign, &other);
	if (rc == SV_EEXIST) {
		assert_msg_has(SV_EEXIST, "the new key already belongs to account");
	} else {
		assert_int_equal(rc, SV_ECA);
		assert_true(acme_problem_is(acme_last_problem(ac), "serverInternal"));
		assert_msg_has(SV_ECA, "already in use");
	}
	assert_ok(acme_account_get(ac, acct_url, tsign, &akey, &a));
	acme_account_free(&a);
	acme_account_free(&b);
	tkey_free(&old);
	tkey_free(&other);
}

static void
test_revoke(void **state)
{
	unsigned char *der = NULL;
	int len;

	assert_non_null(issued);
	assert_true((len = i2d_X509(issued, &der)) > 0);
	assert_ok(acme_revoke(ac, der, (size_t)len, 4, 0, tsign, &akey));
	assert_sverr(acme_revoke(ac, der, (size_t)len, -1, 0, tsign, &akey), SV_ECA);
	assert_true(acme_problem_is(acme_last_problem(ac), "alreadyRevoked"));
	OPENSSL_free(der);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_full_issuance),
		cmocka_unit_test(test_directory_and_ari),
		cmocka_unit_test(test_authz_reuse),
		cmocka_unit_test(test_validation_fails),
		cmocka_unit_test(test_poll_deadline_and_state),
		cmocka_unit_test(test_problem_documents),
		cmocka_unit_test(test_only_existing),
		cmocka_unit_test(test_key_change),
		cmocka_unit_test(test_revoke),
		cmocka_unit_test(test_bad_nonce_retries),
	};
	int rc;

	/* libcurl runs with CURLOPT_NOSIGNAL, so SIGPIPE is the program's job (acme.h). */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || acme_global_init() != 0)
		return 1;
	rc = cmocka_run_group_tests_name("acme_pebble", tests, group_setup, group_teardown);
	acme_global_cleanup();
	return rc;
}
