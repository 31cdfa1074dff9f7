/*
 * hsm/ against a real, throw-away SoftHSM2 token: key creation for every
 * type, JWS signatures that verify from the exported JWK alone, attribute
 * read-back, wrap-for-export, clear errors for a wrong PIN, a missing module
 * and a missing token, recovery from lost sessions and a re-initialised
 * module, and the libp11 engine signing a CSR with a token key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/x509.h>
#include <sodium.h>

#include "hsm_engine.h"
#include "hsm_int.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

struct fx {
	struct testtok tok;
	struct hsm *h;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_ok(testtok_make(&f->tok, "svtest"));
	assert_ok(hsm_open(&f->tok.cfg, &f->h));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	hsm_close(f->h);
	testtok_free(&f->tok);
	free(f);
	return 0;
}

/* Sign a JWS with an HSM key and verify it with a key rebuilt from its JWK. */
static void
sign_and_verify(struct hsm *h, struct hsm_key *k)
{
	struct hsm_jws_ctx ctx = { h, k };
	struct jws_signer s;
	EVP_PKEY *pub = NULL, *fromjwk = NULL;
	json_t *jwk = NULL, *hdr, *jws = NULL, *vh = NULL;
	const char *payload = "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}";
	uint8_t *vp = NULL;
	size_t vl;

	assert_ok(hsm_key_public(h, k, &pub));
	assert_ok(jwk_from_pkey(pub, &jwk));
	assert_ok(jwk_to_pkey(jwk, &fromjwk));
	hsm_jws_signer(&ctx, &s);
	assert_string_equal(s.alg, hsm_keytype_alg(k->type));
	hdr = json_pack("{s:s, s:s}", "nonce", "abc", "url", "https://ca.test/new-order");
	assert_ok(jws_sign(&s, hdr, (const uint8_t *)payload, strlen(payload), &jws));
	assert_ok(jws_verify(jws, fromjwk, 4096, &vh, &vp, &vl));
	assert_string_equal(json_string_value(json_object_get(vh, "alg")), s.alg);
	assert_memory_equal(vp, payload, strlen(payload));
	/* A flipped payload must not verify. */
	json_object_set_new(jws, "payload", json_string("e30"));
	assert_int_not_equal(jws_verify(jws, fromjwk, 4096, NULL, NULL, NULL), 0);
	free(vp);
	json_decref(vh);
	json_decref(jws);
	json_decref(hdr);
	json_decref(jwk);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(fromjwk);
}

static void
test_every_type_signs(void **state)
{
	struct fx *f = *state;
	struct hsm_key k;
	int t;

	for (t = 0; t < HSM_KEYTYPE_COUNT; t++) {
		char label[32];

		snprintf(label, sizeof(label), "k%d", t);
		assert_ok(hsm_key_create(f->h, (enum hsm_keytype)t, label, 0, &k));
		sign_and_verify(f->h, &k);
	}
}

/* The private key's usage flags, read from the token. */
static void
assert_usage_sign_only(struct hsm *h, const struct hsm_key *k)
{
	CK_BBOOL sign = 0, dec = 1, unwrap = 1, derive = 1;
	CK_ATTRIBUTE t[] = { { CKA_SIGN, &sign, 1 }, { CKA_DECRYPT, &dec, 1 },
		{ CKA_UNWRAP, &unwrap, 1 }, { CKA_DERIVE, &derive, 1 } };

	assert_int_equal(h->m->f->C_GetAttributeValue(h->s, k->priv, t, 4), CKR_OK);
	assert_true(sign);
	assert_false(dec);
	assert_false(unwrap);
	assert_false(derive);
}

static void
test_attributes(void **state)
{
	struct fx *f = *state;
	struct hsm_key k, x;
	struct hsm_keyattrs a;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "plain", 0, &k));
	assert_ok(hsm_key_attrs(f->h, &k, &a));
	assert_true(a.sensitive);
	assert_false(a.extractable);
	assert_true(a.always_sensitive);
	assert_true(a.never_extractable);
	assert_true(a.token);
	assert_true(a.private_);
	assert_ok(hsm_key_create(f->h, HSM_RSA_2048, "exp", 1, &x));
	assert_ok(hsm_key_attrs(f->h, &x, &a));
	assert_true(a.sensitive);
	assert_true(a.extractable);
	assert_false(a.never_extractable);
	/* Signing only: a private key that cannot decrypt, unwrap or derive (hsm_key_attrs()
	   filled the handles). */
	assert_usage_sign_only(f->h, &k);
	assert_usage_sign_only(f->h, &x);
}

static void
test_wrap(void **state)
{
	struct fx *f = *state;
	enum hsm_keytype types[] = { HSM_EC_P256, HSM_EC_P384, HSM_RSA_2048 };
	struct hsm_key k;
	uint8_t *p8;
	size_t len;
	size_t i;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "locked", 0, &k));
	assert_sverr(hsm_key_wrap_pkcs8(f->h, &k, &p8, &len), SV_EUNEXTRACT);
	assert_null(p8);
	assert_sverr(hsm_key_create(f->h, HSM_ED25519, "ed", 1, &k), SV_EUNSUPP);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		EVP_PKEY *priv, *pub;
		const uint8_t *q;

		assert_ok(hsm_key_create(f->h, types[i], "exportable", 1, &k));
		assert_ok(hsm_key_wrap_pkcs8(f->h, &k, &p8, &len));
		q = p8;
		assert_non_null(priv = d2i_AutoPrivateKey(NULL, &q, (long)len));
		assert_ok(hsm_key_public(f->h, &k, &pub));
		assert_int_equal(EVP_PKEY_eq(priv, pub), 1);
		EVP_PKEY_free(priv);
		EVP_PKEY_free(pub);
		sodium_free(p8);
		assert_ok(hsm_key_destroy(f->h, &k));
	}
}

static void
test_find_destroy(void **state)
{
	struct fx *f = *state;
	struct hsm_key k, found;
	char uri[HSM_URI_MAX];

	assert_ok(hsm_key_create(f->h, HSM_EC_P384, "acct@v1", 0, &k));
	assert_ok(hsm_key_find_label(f->h, "acct@v1", &found));
	assert_int_equal(found.type, HSM_EC_P384);
	assert_memory_equal(found.id, k.id, HSM_ID_LEN);
	assert_ok(hsm_key_uri(f->h, &k, uri, sizeof(uri)));
	assert_true(strncmp(uri, "pkcs11:token=svtest;object=acct@v1;id=%", 39) == 0);
	assert_non_null(strstr(uri, ";type=private"));
	/* The URI parses back to the same key; percent escapes take either case. */
	{
		char tok[33], obj[HSM_LABEL_MAX + 1];
		uint8_t id[HSM_ID_LEN];
		int have_id;

		assert_ok(hsm_uri_parse(uri, tok, obj, id, &have_id));
		assert_string_equal(tok, "svtest");
		assert_string_equal(obj, "acct@v1");
		assert_int_equal(have_id, 1);
		assert_memory_equal(id, k.id, HSM_ID_LEN);
		assert_ok(
		    hsm_uri_parse("pkcs11:token=a%2fb;object=x%2Fy%40v2", tok, obj, id, &have_id));
		assert_string_equal(tok, "a/b");
		assert_string_equal(obj, "x/y@v2");
		assert_int_equal(have_id, 0);
		assert_sverr(hsm_uri_parse("pkcs11:object=x%4", tok, obj, id, &have_id), SV_EINVAL);
		assert_sverr(
		    hsm_uri_parse("pkcs11:object=x%g1", tok, obj, id, &have_id), SV_EINVAL);
		assert_sverr(hsm_uri_parse("pkcs11:id=%01%02", tok, obj, id, &have_id), SV_EINVAL);
		/* 32 bytes is the most a token label holds; 33 is refused, not ignored. */
		assert_ok(hsm_uri_parse("pkcs11:token=abcdefghijklmnopqrstuvwxyz012345;object=x",
		    tok, obj, id, &have_id));
		assert_int_equal(strlen(tok), 32);
		assert_sverr(
		    hsm_uri_parse("pkcs11:token=abcdefghijklmnopqrstuvwxyz0123456;object=x", tok,
			obj, id, &have_id),
		    SV_EINVAL);
		assert_non_null(strstr(sv_errmsg(SV_EINVAL), "longer than 32 bytes"));
	}
	assert_ok(hsm_key_destroy(f->h, &k));
	assert_sverr(hsm_key_find_label(f->h, "acct@v1", &found), SV_ENOTFOUND);
	assert_sverr(hsm_key_find(f->h, &k), SV_ENOTFOUND);
	assert_non_null(strstr(sv_errmsg(SV_ENOTFOUND), "acct@v1"));
}

static void
test_bad_setup(void **state)
{
	struct fx *f = *state;
	struct hsm_config c = f->tok.cfg;
	struct hsm *h = NULL;
	char path[PATH_MAX];

	c.module = "/nonexistent/libpkcs11.so";
	assert_sverr(hsm_open(&c, &h), SV_EMODULE);
	assert_non_null(strstr(sv_errmsg(SV_EMODULE), "/nonexistent/libpkcs11.so"));
	assert_null(h);

	c = f->tok.cfg;
	c.token = "no-such-token";
	assert_sverr(hsm_open(&c, &h), SV_ETOKEN);
	assert_non_null(strstr(sv_errmsg(SV_ETOKEN), "no-such-token"));
	assert_non_null(strstr(sv_errmsg(SV_ETOKEN), "svtest")); /* lists what exists */

	c = f->tok.cfg;
	assert_ok(testtok_write(f->tok.dir, "badpin", "9999\n", 0600, path));
	c.pin_file = path;
	hsm_close(f->h); /* a fresh login: the open session would skip it */
	f->h = NULL;
	assert_sverr(hsm_open(&c, &h), SV_EPIN);
	assert_non_null(strstr(sv_errmsg(SV_EPIN), "CKR_PIN_INCORRECT"));
	assert_non_null(strstr(sv_errmsg(SV_EPIN), "badpin"));

	assert_ok(testtok_write(f->tok.dir, "openpin", "1234\n", 0644, path));
	c.pin_file = path;
	assert_sverr(hsm_open(&c, &h), SV_EPIN);
	assert_non_null(strstr(sv_errmsg(SV_EPIN), "readable by others"));
	/* Owner-only: the group may not read it either. */
	assert_ok(testtok_write(f->tok.dir, "grouppin", "1234\n", 0640, path));
	c.pin_file = path;
	assert_sverr(hsm_open(&c, &h), SV_EPIN);
	assert_non_null(strstr(sv_errmsg(SV_EPIN), "mode 640"));
	/* Owned by another user (as root: a file root could read, whose content another user sets).
	 */
	if (geteuid() == 0) {
		assert_ok(testtok_write(f->tok.dir, "otherpin", "1234\n", 0600, path));
		assert_int_equal(chown(path, 1, 1), 0);
		c.pin_file = path;
		assert_sverr(hsm_open(&c, &h), SV_EPIN);
		assert_non_null(strstr(sv_errmsg(SV_EPIN), "owned by uid 1"));
	}

	c.pin_file = "/nonexistent/pin";
	assert_sverr(hsm_open(&c, &h), SV_EPIN);
	assert_non_null(strstr(sv_errmsg(SV_EPIN), "/nonexistent/pin"));
	assert_ok(hsm_open(&f->tok.cfg, &f->h));
}

static void
test_recovery(void **state)
{
	struct fx *f = *state;
	struct hsm_key k;
	uint8_t sig[HSM_SIG_MAX];
	size_t sl;
	unsigned before;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "r", 0, &k));
	/* The session disappears behind our back. */
	before = hsm_recoveries(f->h);
	f->h->m->f->C_CloseSession(f->h->s);
	sl = sizeof(sig);
	assert_ok(hsm_sign(f->h, &k, (const uint8_t *)"x", 1, sig, &sl));
	assert_int_equal(sl, 64);
	assert_true(hsm_recoveries(f->h) > before);
	/* The login disappears. */
	before = hsm_recoveries(f->h);
	f->h->m->f->C_Logout(f->h->s);
	sl = sizeof(sig);
	assert_ok(hsm_sign(f->h, &k, (const uint8_t *)"x", 1, sig, &sl));
	assert_true(hsm_recoveries(f->h) > before);
	/* The whole module is finalised (as after a device error). */
	before = hsm_recoveries(f->h);
	f->h->m->f->C_Finalize(NULL);
	sl = sizeof(sig);
	assert_ok(hsm_sign(f->h, &k, (const uint8_t *)"x", 1, sig, &sl));
	assert_true(hsm_recoveries(f->h) > before);
}

/* A key kept across close and open must not reuse a handle of the old session. */
static void
test_stale_handle(void **state)
{
	struct fx *f = *state;
	struct hsm_key a, b;
	EVP_PKEY *pa = NULL, *pub = NULL;
	uint8_t sig[HSM_SIG_MAX];
	size_t sl = sizeof(sig);

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "a", 0, &a));
	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "b", 0, &b));
	assert_ok(hsm_key_public(f->h, &a, &pa));
	hsm_close(f->h);
	assert_ok(hsm_open(&f->tok.cfg, &f->h));
	/* Touch b first so that handles are handed out in another order. */
	assert_ok(hsm_key_public(f->h, &b, &pub));
	EVP_PKEY_free(pub);
	assert_ok(hsm_sign(f->h, &a, (const uint8_t *)"m", 1, sig, &sl));
	{
		uint8_t *der;
		size_t dl;
		EVP_MD_CTX *m = EVP_MD_CTX_new();

		assert_ok(ecdsa_raw_to_der(sig, sl, &der, &dl));
		assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pa), 1);
		assert_int_equal(EVP_DigestVerify(m, der, dl, (const uint8_t *)"m", 1), 1);
		EVP_MD_CTX_free(m);
		OPENSSL_free(der);
	}
	EVP_PKEY_free(pa);
}

/* Private keys that are session objects (pinned copies) visible to h. */
static int
session_keys(struct hsm *h)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_TOKEN, &no, sizeof(no) } };
	CK_OBJECT_HANDLE o[8];
	CK_ULONG n = 0;

	assert_int_equal(h->m->f->C_FindObjectsInit(h->s, t, 2), CKR_OK);
	assert_int_equal(h->m->f->C_FindObjects(h->s, o, 8, &n), CKR_OK);
	h->m->f->C_FindObjectsFinal(h->s);
	return (int)n;
}

static int
sign_x(struct hsm *h, struct hsm_key *k)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t sl = sizeof(sig);

	return hsm_sign(h, k, (const uint8_t *)"x", 1, sig, &sl);
}

/*
 * A pinned key signs with one session copy that keeps the key's protection
 * (made ahead by hsm_key_ready() or at the first signature), is made again
 * (never leaked) after a lost session or a fresh lookup, and
 * is gone after unpin and destroy; a key destroyed on the token no longer
 * signs once unpinned.
 */
static void
test_pinned_copy(void **state)
{
	struct fx *f = *state;
	struct hsm_key k, other;
	CK_BBOOL tok = 1, sens = 0, extr = 1;
	CK_ATTRIBUTE a[] = { { CKA_TOKEN, &tok, 1 }, { CKA_SENSITIVE, &sens, 1 },
		{ CKA_EXTRACTABLE, &extr, 1 } };
	unsigned long first;
	int i;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "p", 0, &k));
	other = k;
	assert_int_equal(hsm_key_ready(f->h, &k), 0); /* not pinned: signs from the token */
	assert_int_equal(session_keys(f->h), 0);
	hsm_key_pin(&k);
	/* Made ahead (hsm_key_ready), the copy is the one signing uses. */
	assert_int_equal(hsm_key_ready(f->h, &k), 1);
	assert_int_equal(session_keys(f->h), 1);
	first = k.copy;
	sign_and_verify(f->h, &k);
	assert_int_equal(k.copy, first);
	assert_int_equal(hsm_key_ready(f->h, &k), 1);
	assert_int_equal(k.copy, first);
	assert_int_not_equal(k.copy, 0);
	assert_int_not_equal(k.copy, k.priv);
	assert_int_equal(session_keys(f->h), 1);
	assert_int_equal(f->h->m->f->C_GetAttributeValue(f->h->s, k.copy, a, 3), CKR_OK);
	assert_false(tok);
	assert_true(sens);
	assert_false(extr);
	first = k.copy;
	for (i = 0; i < 3; i++)
		assert_ok(sign_x(f->h, &k));
	assert_int_equal(k.copy, first);
	assert_int_equal(session_keys(f->h), 1);

	/* The session disappears: its copy with it; a new one is made. */
	f->h->m->f->C_CloseSession(f->h->s);
	sign_and_verify(f->h, &k);
	assert_int_not_equal(k.copy, 0);
	assert_int_equal(session_keys(f->h), 1);
	/* A lookup afresh (as after a stale handle) replaces the copy, adds none. */
	k.gen = 0;
	assert_ok(sign_x(f->h, &k));
	assert_int_equal(session_keys(f->h), 1);
	/* A copy that died behind our back is made again. */
	assert_int_equal(f->h->m->f->C_DestroyObject(f->h->s, k.copy), CKR_OK);
	assert_int_equal(session_keys(f->h), 0);
	assert_ok(sign_x(f->h, &k));
	assert_int_equal(session_keys(f->h), 1);

	hsm_key_unpin(f->h, &k);
	assert_int_equal(k.copy, 0);
	assert_int_equal(session_keys(f->h), 0);
	sign_and_verify(f->h, &k); /* the token object */
	assert_int_equal(session_keys(f->h), 0);

	/* Destroyed through another struct: signs no more once unpinned. */
	hsm_key_pin(&k);
	assert_ok(sign_x(f->h, &k));
	assert_ok(hsm_key_destroy(f->h, &other));
	hsm_key_unpin(f->h, &k);
	assert_int_equal(session_keys(f->h), 0);
	assert_sverr(sign_x(f->h, &k), SV_ENOTFOUND);

	/* A key the module will not copy (CKA_COPYABLE false) signs from the token object. */
	memset(&k, 0, sizeof(k));
	k.type = HSM_EC_P256;
	randombytes_buf(k.id, HSM_ID_LEN);
	snprintf(k.label, sizeof(k.label), "nocopy");
	{
		static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
			0x01, 0x07 };
		CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
		CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
		CK_OBJECT_HANDLE pub, priv;
		CK_ATTRIBUTE pt[] = { { CKA_TOKEN, &yes, 1 }, { CKA_VERIFY, &yes, 1 },
			{ CKA_ID, k.id, HSM_ID_LEN },
			{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) } };
		CK_ATTRIBUTE st[] = { { CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &yes, 1 },
			{ CKA_SENSITIVE, &yes, 1 }, { CKA_SIGN, &yes, 1 },
			{ CKA_ID, k.id, HSM_ID_LEN }, { CKA_COPYABLE, &no, 1 } };

		assert_int_equal(
		    f->h->m->f->C_GenerateKeyPair(f->h->s, &m, pt, 4, st, 6, &pub, &priv), CKR_OK);
	}
	hsm_key_pin(&k);
	assert_int_equal(hsm_key_ready(f->h, &k), 0); /* refused: signs from the token object */
	sign_and_verify(f->h, &k);
	assert_int_equal(k.pin, -1);
	assert_int_equal(k.copy, 0);
	assert_int_equal(session_keys(f->h), 0);
	hsm_key_unpin(f->h, &k);

	/* Destroying a pinned key destroys its copy too. */
	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "q", 0, &k));
	hsm_key_pin(&k);
	assert_ok(sign_x(f->h, &k));
	assert_int_equal(session_keys(f->h), 1);
	assert_ok(hsm_key_destroy(f->h, &k));
	assert_int_equal(session_keys(f->h), 0);
	assert_sverr(sign_x(f->h, &k), SV_ENOTFOUND);
}

struct thr {
	struct hsm *h;
	struct hsm_key k;
	int ok;
};

static void *
signer_thread(void *arg)
{
	struct thr *t = arg;
	uint8_t sig[HSM_SIG_MAX];
	size_t sl;
	int i;

	t->ok = 0;
	for (i = 0; i < 200; i++) {
		sl = sizeof(sig);
		if (hsm_sign(t->h, &t->k, (const uint8_t *)"abc", 3, sig, &sl) == 0 && sl == 64)
			t->ok++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct fx *f = *state;
	struct thr t[2];
	pthread_t tid[2];
	int i;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "t", 0, &t[0].k));
	for (i = 0; i < 2; i++) {
		t[i].k = t[0].k;
		assert_ok(hsm_clone(f->h, &t[i].h));
		assert_ok(pthread_create(&tid[i], NULL, signer_thread, &t[i]));
	}
	for (i = 0; i < 2; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].ok, 200);
		hsm_close(t[i].h);
	}
}

static void
test_engine_csr(void **state)
{
	struct fx *f = *state;
	struct hsm_engine *e = NULL;
	struct hsm_key k;
	char uri[HSM_URI_MAX];
	EVP_PKEY *priv = NULL, *pub = NULL;
	X509_REQ *req;
	X509_NAME *n;

	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "csr-key", 0, &k));
	assert_ok(hsm_key_uri(f->h, &k, uri, sizeof(uri)));
	assert_ok(hsm_key_public(f->h, &k, &pub));
	assert_ok(hsm_engine_open(&f->tok.cfg, &e));
	assert_ok(hsm_engine_key(e, uri, &priv));
	assert_non_null(req = X509_REQ_new());
	n = X509_REQ_get_subject_name(req);
	X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)"a.test", -1, -1, 0);
	assert_int_equal(X509_REQ_set_pubkey(req, pub), 1);
	assert_true(X509_REQ_sign(req, priv, EVP_sha256()) > 0);
	assert_int_equal(X509_REQ_verify(req, pub), 1);
	/* The raw layer still works beside the engine in one process. */
	sign_and_verify(f->h, &k);
	X509_REQ_free(req);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	hsm_engine_close(e);
}

/*
 * OpenSSL signs a certificate with a token key through hsm_pkey(), in a
 * token that also holds an Ed25519 key (where the libp11 engine finds no key).
 */
static void
test_pkey_cert(void **state)
{
	struct fx *f = *state;
	struct hsm_key k, ed;
	EVP_PKEY *priv = NULL, *pub = NULL;
	X509 *x;
	int t;

	assert_ok(hsm_key_create(f->h, HSM_ED25519, "ed", 0, &ed));
	for (t = HSM_EC_P256; t <= HSM_EC_P384; t++) {
		assert_ok(hsm_key_create(f->h, (enum hsm_keytype)t, "ca", 0, &k));
		assert_ok(hsm_key_public(f->h, &k, &pub));
		assert_ok(hsm_pkey(f->h, &k, &priv));
		assert_non_null(x = X509_new());
		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
		    (const unsigned char *)"ca", -1, -1, 0);
		X509_set_issuer_name(x, X509_get_subject_name(x));
		X509_gmtime_adj(X509_getm_notBefore(x), 0);
		X509_gmtime_adj(X509_getm_notAfter(x), 3600);
		X509_set_pubkey(x, pub);
		assert_true(X509_sign(x, priv, t == HSM_EC_P256 ? EVP_sha256() : EVP_sha384()) > 0);
		assert_int_equal(X509_verify(x, pub), 1);
		/* A changed certificate no longer verifies: the signature is real. */
		ASN1_INTEGER_set(X509_get_serialNumber(x), 8);
		X509_set_subject_name(x, X509_get_issuer_name(x));
		assert_int_equal(i2d_re_X509_tbs(x, NULL) > 0, 1);
		assert_int_not_equal(X509_verify(x, pub), 1);
		X509_free(x);
		EVP_PKEY_free(priv);
		EVP_PKEY_free(pub);
		assert_ok(hsm_key_destroy(f->h, &k));
	}
	assert_sverr(hsm_pkey(f->h, &ed, &priv), SV_EUNSUPP);
}

/* An Ed25519 key's raw public key is the one its token signatures verify under (libsodium). */
static void
test_ed25519_raw(void **state)
{
	struct fx *f = *state;
	static const uint8_t msg[] = "shadowvault";
	uint8_t pub[32], sig[64];
	struct hsm_key ed, ec;
	size_t sl = sizeof(sig);

	assert_ok(hsm_key_create(f->h, HSM_ED25519, "ed", 0, &ed));
	assert_ok(hsm_key_create(f->h, HSM_EC_P256, "ec", 0, &ec));
	assert_ok(hsm_key_ed25519_raw(f->h, &ed, pub));
	assert_ok(hsm_sign(f->h, &ed, msg, sizeof(msg), sig, &sl));
	assert_int_equal(sl, 64);
	assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg), pub), 0);
	sig[0] ^= 1;
	assert_int_not_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg), pub), 0);
	assert_sverr(hsm_key_ed25519_raw(f->h, &ec, pub), SV_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_type_signs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attributes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_csr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pkey_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ed25519_raw, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("hsm", tests, NULL, NULL);
}
