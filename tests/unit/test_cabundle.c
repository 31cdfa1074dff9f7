/*
 * client/cabundle.c and identity.c: the vault's shadow CA bundle
 * (identity/vault-ca.pem) as the shadow follows the vault's CA rotation.
 * Real CA certificates made here: self-signed P-256 CAs (ca1, the one the
 * shadow enrolled under; ca2, the one the vault rotated to; ca3 the next),
 * the links between them (link12: ca2's name and key issued by ca1; link23)
 * and identity certificates from ca1 and ca2.
 * The vault is faked at vault_call(): its renewal answer issues for the
 * CSR's key from a chosen CA and carries a chosen bundle, so identity_renew()
 * is tested as it runs, up to the files it leaves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "shadow.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

static char dir[64];
static struct shadow sh;
static EVP_PKEY *cakey1, *cakey2, *cakey3, *leafkey, *otherkey;
static X509 *ca1, *ca2, *ca3, *leaf1, *leaf2, *link12, *link23;
static char *links; /* link12's PEM: the vault's "ca_links" after one rotation */
static int progress_lines;

/* ---- What identity.c calls outside itself (shadow.c, issue.c, vaultcli.c) ---- */

int
shadow_path(const struct shadow *s, const char *rel, char *dst, size_t n)
{
	if (snprintf(dst, n, "%s/%s", s->state_dir, rel) >= (int)n)
		return sv_seterr(SV_ECONFIG, "state directory path too long");
	return 0;
}

void
shadow_progress(const struct shadow *s, const char *fmt, ...)
{
	(void)s;
	(void)fmt;
	progress_lines++;
}

/* The fake vault: what its next renewal and GET /v1/identity answers hold. */
static struct {
	X509 *issuer;	      /* issues the renewed certificate */
	EVP_PKEY *issuer_key; /* with this key */
	const char *renew_ca; /* the renewal answer's "ca" (NULL: none) */
	const char *get_ca;   /* the GET /v1/identity answer's "ca" (NULL: none) */
	const char *links;    /* both answers' "ca_links" with a "ca" (NULL: none) */
	int renews, gets;     /* requests seen */
	int too_early;	      /* refuse renewals as too early (HTTP 403) */
} vault;

static X509 *make_cert(
    const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, int ca, long serial);
static char *pem_of(X509 *const *xs, size_t n);

int
vault_call(struct shadow *s, const char *method, const char *url, const json_t *body, int mtls,
    const char *ca_file, struct vault_resp *out)
{
	const char *csr = json_string_value(json_object_get(body, "csr"));
	char *cert;
	X509_REQ *req;
	X509 *x;
	BIO *b;

	(void)s;
	(void)mtls;
	(void)ca_file;
	memset(out, 0, sizeof(*out));
	if (strcmp(method, "GET") == 0) {
		vault.gets++;
		out->status = 200;
		out->body = json_pack("{s:s}", "serial", "0b");
		if (vault.get_ca != NULL)
			json_object_set_new(out->body, "ca", json_string(vault.get_ca));
		if (vault.get_ca != NULL && vault.links != NULL)
			json_object_set_new(out->body, "ca_links", json_string(vault.links));
		return 0;
	}
	assert_non_null(strstr(url, "/v1/identity/renew"));
	assert_non_null(csr);
	vault.renews++;
	if (vault.too_early) {
		out->status = 403;
		out->body = json_pack("{s:s, s:I}", "type", "urn:shadowvault:too-early",
		    "renew_from", (json_int_t)time(NULL) + 86400);
		snprintf(out->detail, sizeof(out->detail), "too early");
		return 0;
	}
	b = BIO_new_mem_buf(csr, -1);
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	assert_non_null(req);
	x = make_cert("shadow", X509_REQ_get0_pubkey(req), vault.issuer, vault.issuer_key, 0, 11);
	cert = pem_of(&x, 1);
	out->status = 201;
	out->body = json_pack("{s:s, s:s}", "certificate", cert, "serial", "0b");
	if (vault.renew_ca != NULL)
		json_object_set_new(out->body, "ca", json_string(vault.renew_ca));
	if (vault.renew_ca != NULL && vault.links != NULL)
		json_object_set_new(out->body, "ca_links", json_string(vault.links));
	free(cert);
	X509_free(x);
	X509_REQ_free(req);
	BIO_free(b);
	return 0;
}

void
vault_close(struct shadow *s)
{
	(void)s;
}

void
vault_resp_free(struct vault_resp *r)
{
	json_decref(r->body);
	r->body = NULL;
}

/* ---- Certificates ---- */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for pub named cn, from issuer (NULL: itself) signed by signer; a CA if ca. */
static X509 *
make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, int ca, long serial)
{
	X509 *x = X509_new();

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(
	    X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400);
	X509_set_pubkey(x, pub);
	if (ca) {
		add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE");
	}
	assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
	return x;
}

/* The PEM of n certificates, concatenated (malloc'd). */
static char *
pem_of(X509 *const *xs, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *d, *out;
	size_t i;
	long len;

	assert_non_null(b);
	for (i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(b, xs[i]), 1);
	len = BIO_get_mem_data(b, &d);
	out = strndup(len > 0 ? d : "", (size_t)(len > 0 ? len : 0));
	assert_non_null(out);
	BIO_free(b);
	return out;
}

static char *
pem1(X509 *a)
{
	return pem_of(&a, 1);
}

static char *
pem2(X509 *a, X509 *b)
{
	X509 *xs[2] = { a, b };

	return pem_of(xs, 2);
}

/* a + b + c, malloc'd. */
static char *
cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *out = malloc(la + lb + lc + 1);

	assert_non_null(out);
	memcpy(out, a, la);
	memcpy(out + la, b, lb);
	memcpy(out + la + lb, c, lc + 1);
	return out;
}

/* ---- Files under the state directory ---- */

static void
put(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void
put_cert(const char *rel, X509 *x)
{
	char *p = pem1(x);

	put(rel, p);
	free(p);
}

static void
put_key(const char *rel, EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *d, *t;
	long n;

	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &d);
	t = strndup(d, (size_t)n);
	put(rel, t);
	free(t);
	BIO_free(b);
}

/* dir/rel's contents (malloc'd), or NULL if it cannot be read. */
static char *
get(const char *rel)
{
	char path[PATH_MAX], *buf;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
assert_file_is(const char *rel, const char *want)
{
	char *got = get(rel);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static struct stat
stat_of(const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(stat(path, &st), 0);
	return st;
}

/* The same file, not rewritten: sv_write_file_atomic() renames a new inode over it. */
static void
assert_untouched(const char *rel, const struct stat *before, const char *want)
{
	struct stat now = stat_of(rel);

	assert_int_equal(now.st_ino, before->st_ino);
	assert_int_equal(now.st_mtim.tv_sec, before->st_mtim.tv_sec);
	assert_int_equal(now.st_mtim.tv_nsec, before->st_mtim.tv_nsec);
	assert_file_is(rel, want);
}

/* The identity/cert.pem in the state directory, parsed. */
static X509 *
cert_in_dir(void)
{
	char *p = get("identity/cert.pem");
	BIO *b;
	X509 *x;

	assert_non_null(p);
	b = BIO_new_mem_buf(p, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(x);
	BIO_free(b);
	free(p);
	return x;
}

/* What identity_check(&sh, renew) writes on stderr (malloc'd). */
static char *
check_output(int renew)
{
	char path[PATH_MAX], *out;
	int saved, fd;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/stderr.txt", dir);
	fflush(stderr);
	saved = dup(2);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	dup2(fd, 2);
	close(fd);
	identity_check(&sh, renew);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_non_null(f = fopen(path, "r"));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	out = calloc(1, (size_t)n + 1);
	assert_non_null(out);
	assert_int_equal(fread(out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return out;
}

/* An answer {"ca": pem, "ca_links": link12}. */
static json_t *
answer(const char *pem)
{
	json_t *j = json_pack("{s:s, s:s}", "ca", pem, "ca_links", links);

	assert_non_null(j);
	return j;
}

/* An answer {"ca": pem, "ca_links": lpem} (lpem NULL: no links). */
static json_t *
answer_links(const char *pem, const char *lpem)
{
	json_t *j = json_pack("{s:s, s:s*}", "ca", pem, "ca_links", lpem);

	assert_non_null(j);
	return j;
}

static int
setup(void **state)
{
	char id[96];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/svcabundle.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(id, sizeof(id), "%s/identity", dir);
	assert_int_equal(mkdir(id, 0700), 0);
	memset(&sh, 0, sizeof(sh));
	snprintf(sh.state_dir, sizeof(sh.state_dir), "%s", dir);
	snprintf(sh.ca_file, sizeof(sh.ca_file), "%s/identity/vault-ca.pem", dir);
	snprintf(sh.api_url, sizeof(sh.api_url), "https://vault.test:8443");
	sh.quiet = 1;
	memset(&vault, 0, sizeof(vault));
	vault.links = links;
	progress_lines = 0;
	/* Enrolled under ca1. */
	put_cert("identity/vault-ca.pem", ca1);
	put_cert("identity/cert.pem", leaf1);
	put_key("identity/key.pem", leafkey);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testtok_rmrf(dir);
	return 0;
}

/* ---- Tests ---- */

/* The vault rotated to ca2: its bundle (ca2, ca1) still vouches for leaf1: written, said. */
static void
test_update_writes(void **state)
{
	char *bundle = pem2(ca2, ca1);
	json_t *ans = answer(bundle);
	STACK_OF(X509) *st = NULL;

	(void)state;
	assert_ok(identity_ca_bundle_parse(bundle, strlen(bundle), &st));
	assert_int_equal(sk_X509_num(st), 2);
	assert_int_equal(X509_cmp(sk_X509_value(st, 0), ca2), 0); /* the order kept */
	assert_int_equal(X509_cmp(sk_X509_value(st, 1), ca1), 0);
	sk_X509_pop_free(st, X509_free);

	assert_ok(identity_update_ca(&sh, ans, NULL));
	assert_file_is("identity/vault-ca.pem", bundle);
	assert_int_equal(stat_of("identity/vault-ca.pem").st_mode & 07777, 0644);
	assert_int_equal(progress_lines, 1);
	/* The new identity from ca2, given as leaf: vouched for too. */
	assert_ok(identity_update_ca(&sh, ans, leaf2));
	json_decref(ans);
	free(bundle);
}

/* The same bundle again, or none: nothing written, nothing said. */
static void
test_update_unchanged(void **state)
{
	char *bundle = pem2(ca2, ca1);
	json_t *ans = answer(bundle), *none = json_object();
	struct stat before;

	(void)state;
	put("identity/vault-ca.pem", bundle);
	before = stat_of("identity/vault-ca.pem");
	assert_ok(identity_update_ca(&sh, ans, NULL));
	assert_untouched("identity/vault-ca.pem", &before, bundle);
	assert_ok(identity_update_ca(&sh, none, NULL)); /* a vault from before rotation */
	assert_untouched("identity/vault-ca.pem", &before, bundle);
	assert_int_equal(progress_lines, 0);
	json_decref(ans);
	json_decref(none);
	free(bundle);
}

/* bundle as the answer's "ca": refused with SV_EPROTO naming want; vault-ca.pem untouched. */
static void
refused(const char *bundle, size_t len, const char *want)
{
	json_t *ans = json_object();
	struct stat before = stat_of("identity/vault-ca.pem");
	char *was = get("identity/vault-ca.pem");
	STACK_OF(X509) *st = NULL;

	json_object_set_new(ans, "ca", json_stringn(bundle, len));
	assert_sverr(identity_update_ca(&sh, ans, NULL), SV_EPROTO);
	assert_msg_has(SV_EPROTO, want);
	assert_untouched("identity/vault-ca.pem", &before, was);
	assert_int_equal(progress_lines, 0);
	/* The parser alone says the same unless the complaint is about the leaf. */
	if (strstr(want, "vouch") == NULL) {
		assert_sverr(identity_ca_bundle_parse(bundle, len, &st), SV_EPROTO);
		assert_msg_has(SV_EPROTO, want);
		assert_null(st);
	}
	json_decref(ans);
	free(was);
}

static void
test_malformed(void **state)
{
	X509 *nine[9] = { ca1, ca1, ca1, ca1, ca1, ca1, ca1, ca1, ca1 };
	X509 *plain = make_cert("not a CA", otherkey, NULL, otherkey, 0, 21);
	X509 *sub = make_cert("intermediate", otherkey, ca1, cakey1, 1, 22);
	char *p1 = pem1(ca1), *p2 = pem1(ca2), *t, *big;
	json_t *ans;
	STACK_OF(X509) *st = NULL;

	(void)state;
	/* Garbage between blocks, before the first, after the last. */
	t = cat3(p2, "garbage\n", p1);
	refused(t, strlen(t), "after certificate 1: something other than a PEM CERTIFICATE block");
	free(t);
	t = cat3("# the vault's CA\n", p2, p1);
	refused(t, strlen(t), "before certificate 1: something other");
	free(t);
	t = cat3(p2, p1, "x");
	refused(t, strlen(t), "after certificate 2: something other");
	free(t);
	/* A BEGIN line with more on it (PEM_read_bio() would skip that line and read on). */
	{
		char *q = cat3("-----BEGIN CERTIFICATE----- extra\n", "", p1);

		refused(q, strlen(q), "before certificate 1: something other");
		free(q);
	}
	/* A NUL inside; control and 8-bit bytes at the end of a line (OpenSSL's PEM reader
	   drops them there, so only the byte check sees them). */
	t = cat3(p2, "\n", p1);
	t[strlen(p2)] = '\0';
	refused(t, strlen(p2) + 1 + strlen(p1), "not printable ASCII");
	free(t);
	{
		size_t l2 = strlen(p2);
		char *q = cat3(p2, "", "");

		assert_true(l2 > 2 && q[l2 - 1] == '\n');
		q[l2 - 1] =
		    '\0'; /* "é" (UTF-8, as JSON carries it) after -----END CERTIFICATE----- */
		t = cat3(q, "\xc3\xa9\n", p1);
		refused(t, strlen(t), "is 0xc3, not printable ASCII");
		free(t);
		q[l2 - 1] = '\n';
		q[64] = (char)0x01; /* the end of the first base64 line */
		refused(q, strlen(q), "byte 64 is 0x01, not printable ASCII");
		free(q);
	}
	/* Nine certificates; eight are fine. */
	t = pem_of(nine, 9);
	refused(t, strlen(t), "more than 8 certificates");
	free(t);
	t = pem_of(nine, 8);
	assert_ok(identity_ca_bundle_parse(t, strlen(t), &st));
	assert_int_equal(sk_X509_num(st), 8);
	sk_X509_pop_free(st, X509_free);
	free(t);
	/* Not a CA certificate; a CA certificate not self-signed (ca1 issued it). */
	t = pem2(ca1, plain);
	refused(t, strlen(t), "certificate 2: not a CA certificate");
	free(t);
	t = pem2(ca1, sub);
	refused(t, strlen(t), "certificate 2: not self-signed");
	free(t);
	/* Empty, white space only. */
	refused("", 0, "the vault's CA bundle: no certificate");
	refused(" \n\t\r\n", 5, "the vault's CA bundle: no certificate");
	/* Over 64 KiB, even if only by white space after a good bundle. */
	big = malloc(64 * 1024 + 2);
	assert_non_null(big);
	memset(big, '\n', 64 * 1024 + 1);
	memcpy(big, p1, strlen(p1));
	big[64 * 1024 + 1] = '\0';
	refused(big, 64 * 1024 + 1, "larger than 64 KiB");
	big[64 * 1024] = '\0'; /* exactly 64 KiB: fine */
	assert_ok(identity_ca_bundle_parse(big, 64 * 1024, &st));
	sk_X509_pop_free(st, X509_free);
	free(big);
	/* Another PEM type, PEM headers, a broken body. */
	t = cat3(
	    "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENC-ONLY\n\n", strchr(p1, '\n') + 1, "");
	refused(t, strlen(t), "certificate 1: not a plain PEM CERTIFICATE block");
	free(t);
	t = cat3(p1, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "");
	refused(t, strlen(t), "certificate 2: unreadable PEM");
	free(t);
	/* A CERTIFICATE block holding a certificate and a byte more. */
	{
		unsigned char *der = NULL, *more;
		int n = i2d_X509(ca1, &der);
		BIO *b = BIO_new(BIO_s_mem());
		char *d;
		long len;

		assert_true(n > 0);
		assert_non_null(more = malloc((size_t)n + 1));
		memcpy(more, der, (size_t)n);
		more[n] = 0;
		assert_true(PEM_write_bio(b, "CERTIFICATE", "", more, n + 1) > 0);
		len = BIO_get_mem_data(b, &d);
		t = strndup(d, (size_t)len);
		refused(t, strlen(t), "certificate 1: not one DER certificate");
		free(t);
		BIO_free(b);
		free(more);
		OPENSSL_free(der);
	}
	/* Not a string at all. */
	ans = json_pack("{s:i}", "ca", 1);
	assert_sverr(identity_update_ca(&sh, ans, NULL), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "is not a string");
	json_decref(ans);
	X509_free(plain);
	X509_free(sub);
	free(p1);
	free(p2);
}

/* Well-formed, but none of its certificates issued the identity: refused, untouched. */
static void
test_not_vouching(void **state)
{
	char *only2 = pem1(ca2), *only1 = pem1(ca1);
	json_t *ans = answer(only2), *ans1 = answer(only1);
	struct stat before = stat_of("identity/vault-ca.pem");
	char *was = get("identity/vault-ca.pem");

	(void)state;
	refused(only2, strlen(only2), "does not vouch for this server's identity certificate");
	/* A renewed certificate (leaf2, from ca2) under a bundle of ca1 only. */
	assert_sverr(identity_update_ca(&sh, ans1, leaf2), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "does not vouch for the renewed certificate");
	assert_untouched("identity/vault-ca.pem", &before, was);
	json_decref(ans);
	json_decref(ans1);
	free(only1);
	free(only2);
	free(was);
}

/* shadow enroll --ca FILE: each CA of the answer's bundle is FILE's or linked from it. */
static void
test_enrol(void **state)
{
	char file[PATH_MAX], *p1 = pem1(ca1), *p21 = pem2(ca2, ca1), *p2 = pem1(ca2);
	/* Same name, same key as ca1, another serial: not the same certificate. */
	X509 *ca1b = make_cert("shadowvault shadow CA test v1", cakey1, NULL, cakey1, 1, 99);
	char *p1b = pem1(ca1b);
	json_t *j;

	(void)state;
	snprintf(file, sizeof(file), "%s/given-ca.pem", dir);
	put("given-ca.pem", p1);
	/* Rotated since FILE was copied: (ca2, ca1) with the link to ca2; leaf2 from ca2. */
	j = answer(p21);
	assert_ok(identity_ca_enrol_check(j, file, leaf2));
	assert_ok(identity_ca_enrol_check(j, file, leaf1));
	json_decref(j);
	/* The same without the link: ca2 is new and nothing vouches for it. */
	j = answer_links(p21, NULL);
	assert_sverr(identity_ca_enrol_check(j, file, leaf2), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "certificate 1 (/CN=shadowvault shadow CA test v2) is new");
	json_decref(j);
	/* ca1 dropped since (the vault destroyed it): ca2 alone, linked from FILE's ca1. */
	j = answer(p2);
	assert_ok(identity_ca_enrol_check(j, file, leaf2));
	json_decref(j);
	/* As before rotation: byte-equal to FILE. */
	j = answer_links(p1, NULL);
	assert_ok(identity_ca_enrol_check(j, file, leaf1));
	/* It holds FILE's CA but does not vouch for the issued certificate. */
	assert_sverr(identity_ca_enrol_check(j, file, leaf2), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "does not vouch for the issued certificate");
	json_decref(j);
	/* FILE's CA by name and key but not by DER: not FILE's, and no link leads to it. */
	put("given-ca.pem", p1b);
	j = answer(p1);
	assert_sverr(identity_ca_enrol_check(j, file, leaf1), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "is new, and no link from a CA this server trusts");
	json_decref(j);
	/* FILE a bundle itself (ca2, ca1); the answer (ca1) is its second certificate. */
	put("given-ca.pem", p21);
	j = answer_links(p1, NULL);
	assert_ok(identity_ca_enrol_check(j, file, leaf1));
	json_decref(j);
	/* Malformed answers; none at all. */
	j = answer("garbage");
	assert_sverr(identity_ca_enrol_check(j, file, leaf1), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "the vault's CA bundle: before certificate 1");
	json_decref(j);
	j = json_object();
	assert_sverr(identity_ca_enrol_check(j, file, leaf1), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "has no CA bundle");
	json_decref(j);
	/* FILE without a certificate. */
	put("given-ca.pem", "nothing\n");
	j = answer(p1);
	assert_sverr(identity_ca_enrol_check(j, file, leaf1), SV_ECONFIG);
	assert_msg_has(SV_ECONFIG, "no PEM certificate");
	json_decref(j);
	X509_free(ca1b);
	free(p1);
	free(p1b);
	free(p2);
	free(p21);
}

/* bundle with link (its PEM) as "ca_links": refused (saying want, unless NULL). */
static void
link_refused(const char *bundle, X509 *link, const char *want)
{
	char *l = pem1(link);
	json_t *j = answer_links(bundle, l);

	assert_sverr(identity_update_ca(&sh, j, NULL), SV_EPROTO);
	if (want != NULL)
		assert_msg_has(SV_EPROTO, want);
	json_decref(j);
	free(l);
}

/*
 * Links: a new CA is taken only with a link from a trusted CA, for exactly
 * its name and key; links are followed in steps (ca1 -> ca2 -> ca3); a
 * malformed "ca_links" is refused.  Each refusal leaves the file untouched.
 */
static void
test_links(void **state)
{
	char *p21 = pem2(ca2, ca1), *p32 = pem2(ca3, ca2), *p1 = pem1(ca1), *both, *was;
	/* Forged: ca2's name and key, ca1 as issuer, signed by another key. */
	X509 *forged = make_cert("shadowvault shadow CA test v2", cakey2, ca1, otherkey, 1, 40);
	/* A real link from ca1, but for another key under ca2's name. */
	X509 *otherkey_link =
	    make_cert("shadowvault shadow CA test v2", otherkey, ca1, cakey1, 1, 41);
	/* A real link from ca1 for ca2's key, under another name. */
	X509 *renamed = make_cert("another CA", cakey2, ca1, cakey1, 1, 42);
	X509 *lk[2] = { link12, link23 };
	struct stat before = stat_of("identity/vault-ca.pem");
	json_t *j;

	(void)state;
	was = get("identity/vault-ca.pem");
	assert_string_equal(was, p1);
	link_refused(p21, forged, "is new, and no link from a CA this server trusts");
	link_refused(p21, otherkey_link, NULL);
	link_refused(p21, renamed, NULL);
	/* A link that is not a CA certificate, and garbage. */
	link_refused(p21, leaf2, "the vault's CA links: certificate 1: not a CA certificate");
	j = answer_links(p21, "garbage");
	assert_sverr(identity_update_ca(&sh, j, NULL), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "the vault's CA links");
	json_decref(j);
	j = json_pack("{s:s, s:i}", "ca", p21, "ca_links", 7);
	assert_sverr(identity_update_ca(&sh, j, NULL), SV_EPROTO);
	assert_msg_has(SV_EPROTO, "are not a string");
	json_decref(j);
	assert_untouched("identity/vault-ca.pem", &before, was);
	/* Two rotations missed: (ca3, ca2) reached from ca1 through ca2.  leaf1 is not from
	   either, so it does not vouch: the same with leaf2 as the identity. */
	put_cert("identity/cert.pem", leaf2);
	both = pem_of(lk, 2);
	j = answer_links(p32, both);
	assert_ok(identity_update_ca(&sh, j, NULL));
	assert_file_is("identity/vault-ca.pem", p32);
	json_decref(j);
	/* Only link23, from ca1's side: ca2 is not reached, nor ca3. */
	put_cert("identity/vault-ca.pem", ca1);
	link_refused(p32, link23, NULL);
	X509_free(forged);
	X509_free(otherkey_link);
	X509_free(renamed);
	free(both);
	free(was);
	free(p1);
	free(p21);
	free(p32);
}

/* identity_check: a fresh identity is due at once when not from the bundle's first CA. */
static void
test_check_due(void **state)
{
	char *p21 = pem2(ca2, ca1), *p12 = pem2(ca1, ca2), *out;

	(void)state;
	/* Enrolled under ca1, ca1 alone: not due (90 days left of 90). */
	out = check_output(0);
	assert_string_equal(out, "");
	free(out);
	/* ca1 still first: not due. */
	put("identity/vault-ca.pem", p12);
	out = check_output(0);
	assert_string_equal(out, "");
	free(out);
	/* The vault rotated to ca2: due, and said even with -q. */
	put("identity/vault-ca.pem", p21);
	out = check_output(0);
	assert_non_null(strstr(out, "is not from the vault's current shadow CA"));
	free(out);
	/* An identity from ca2 under that bundle: not due. */
	put_cert("identity/cert.pem", leaf2);
	out = check_output(0);
	assert_string_equal(out, "");
	free(out);
	/* No CA file to tell: not due (the connection to the vault says why). */
	put_cert("identity/cert.pem", leaf1);
	unlink(sh.ca_file);
	out = check_output(0);
	assert_string_equal(out, "");
	free(out);
	free(p21);
	free(p12);
}

/* shadow renew after the vault rotated: renewed at once, from ca2, bundle written. */
static void
test_renew_rotated(void **state)
{
	char *p21 = pem2(ca2, ca1), *out;
	X509 *now;

	(void)state;
	put("identity/vault-ca.pem", p21); /* as a GET /v1/identity answer left it */
	vault.issuer = ca2;
	vault.issuer_key = cakey2;
	vault.renew_ca = p21;
	vault.get_ca = p21;
	out = check_output(1);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(vault.renews, 1);
	assert_int_equal(vault.gets, 2); /* asking for the bundle first, then the confirmation */
	now = cert_in_dir();
	assert_int_equal(X509_verify(now, X509_get0_pubkey(ca2)), 1);
	X509_free(now);
	assert_file_is("identity/vault-ca.pem", p21);
	/* Not due any more. */
	out = check_output(1);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(vault.renews, 1);
	free(p21);
}

/* After a rotation the vault renews at once: a too-early refusal then is not kept quiet (as it
   is for an identity merely in its window), the warning stands. */
static void
test_check_rotated_too_early(void **state)
{
	char *p21 = pem2(ca2, ca1), *out;

	(void)state;
	vault.too_early = 1;
	put("identity/vault-ca.pem", p21);
	out = check_output(1);
	assert_int_equal(vault.renews, 1);
	assert_non_null(strstr(out, "renewing the vault identity: the vault renews this identity"));
	assert_non_null(strstr(out, "is not from the vault's current shadow CA"));
	free(out);
	free(p21);
}

/* The renewal answer's bundle is written before the new pair is installed. */
static void
test_renew_writes_bundle_first(void **state)
{
	char *p21 = pem2(ca2, ca1), *p2 = pem1(ca2), *cert = get("identity/cert.pem");
	char next[PATH_MAX];

	(void)state;
	vault.issuer = ca2;
	vault.issuer_key = cakey2;
	vault.renew_ca = p21;
	vault.get_ca = p2; /* the confirmation's answer: the vault has dropped ca1 since */
	assert_ok(identity_renew(&sh));
	assert_file_is("identity/vault-ca.pem", p2);
	/* Again, with the install made to fail (a directory where cert.pem.next goes). */
	put_cert("identity/vault-ca.pem", ca1);
	put("identity/cert.pem", cert);
	put_key("identity/key.pem", leafkey);
	snprintf(next, sizeof(next), "%s/identity/cert.pem.next", dir);
	assert_int_equal(mkdir(next, 0700), 0);
	vault.get_ca = NULL;
	assert_true(identity_renew(&sh) != 0);
	assert_file_is("identity/vault-ca.pem", p21);
	assert_file_is("identity/cert.pem", cert);
	rmdir(next);
	free(p21);
	free(p2);
	free(cert);
}

/* A renewal answer whose bundle is refused: nothing changes, neither bundle nor identity. */
static void
renew_refused(X509 *issuer, EVP_PKEY *issuer_key, const char *ca, const char *want)
{
	char *vca = get("identity/vault-ca.pem"), *cert = get("identity/cert.pem");
	char *key = get("identity/key.pem");
	struct stat before = stat_of("identity/vault-ca.pem");

	vault.gets = 0;
	vault.issuer = issuer;
	vault.issuer_key = issuer_key;
	vault.renew_ca = ca;
	assert_sverr(identity_renew(&sh), SV_EPROTO);
	assert_msg_has(SV_EPROTO, want);
	assert_untouched("identity/vault-ca.pem", &before, vca);
	assert_file_is("identity/cert.pem", cert);
	assert_file_is("identity/key.pem", key);
	assert_int_equal(vault.gets, 0); /* not confirmed: not installed */
	free(vca);
	free(cert);
	free(key);
}

static void
test_renew_refused(void **state)
{
	X509 *plain = make_cert("not a CA", otherkey, NULL, otherkey, 0, 31);
	char *bad = pem2(ca2, plain), *p1 = pem1(ca1);

	(void)state;
	renew_refused(ca2, cakey2, bad, "certificate 2: not a CA certificate");
	/* Issued by ca2, the bundle ca1 alone. */
	renew_refused(ca2, cakey2, p1, "does not vouch for the renewed certificate");
	/* No bundle (a vault from before rotation): identity/vault-ca.pem decides, as before. */
	renew_refused(ca2, cakey2, NULL, "the renewed certificate is not from the vault's CA");
	vault.renew_ca = NULL;
	vault.issuer = ca1;
	vault.issuer_key = cakey1;
	{
		struct stat before = stat_of("identity/vault-ca.pem");

		assert_ok(identity_renew(&sh));
		assert_untouched("identity/vault-ca.pem", &before, p1);
	}
	X509_free(plain);
	free(bad);
	free(p1);
}

/* The answer's bundle cannot be written: the new identity is not installed either. */
static void
test_renew_bundle_unwritable(void **state)
{
	char *p21 = pem2(ca2, ca1), *cert = get("identity/cert.pem"),
	     *key = get("identity/key.pem");

	(void)state;
	/* A directory where identity/vault-ca.pem goes: the rename over it fails. */
	assert_int_equal(unlink(sh.ca_file), 0);
	assert_int_equal(mkdir(sh.ca_file, 0700), 0);
	vault.issuer = ca2;
	vault.issuer_key = cakey2;
	vault.renew_ca = p21;
	assert_sverr(identity_renew(&sh), SV_EIO);
	assert_file_is("identity/cert.pem", cert);
	assert_file_is("identity/key.pem", key);
	assert_int_equal(vault.gets, 0);
	assert_int_equal(rmdir(sh.ca_file), 0);
	free(p21);
	free(cert);
	free(key);
}

static double
now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/*
 * identity_lock: a second run waits for the first (here a child holding the
 * flock for 0.4 s) before it reads and rewrites identity/; nested locking in
 * one run does not wait for itself.
 */
static void
test_lock(void **state)
{
	char *p21 = pem2(ca2, ca1), idir[PATH_MAX], c;
	int pfd[2], status;
	json_t *ans = answer(p21);
	double t0;
	pid_t pid;

	(void)state;
	snprintf(idir, sizeof(idir), "%s/identity", dir);
	assert_int_equal(pipe(pfd), 0);
	if ((pid = fork()) == 0) {
		int fd = open(idir, O_RDONLY | O_DIRECTORY);

		if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(pfd[1], "L", 1) != 1)
			_exit(1);
		usleep(400000);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	t0 = now_s();
	assert_ok(identity_update_ca(&sh, ans, NULL));
	assert_true(now_s() - t0 >= 0.3);
	assert_file_is("identity/vault-ca.pem", p21);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Held by this run already: no wait, and released only by the outer unlock. */
	put_cert("identity/vault-ca.pem", ca1);
	assert_ok(identity_lock(&sh));
	assert_ok(identity_update_ca(&sh, ans, NULL)); /* would never return if it waited */
	assert_file_is("identity/vault-ca.pem", p21);
	assert_int_equal(sh.id_lock_depth, 1);
	identity_unlock(&sh);
	assert_int_equal(sh.id_lock_depth, 0);
	close(pfd[0]);
	close(pfd[1]);
	json_decref(ans);
	free(p21);
}

/* A state directory never enrolled (no identity/): shadow renew checks nothing, says nothing. */
static void
test_check_not_enrolled(void **state)
{
	char *out;

	(void)state;
	testtok_rmrf(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	out = check_output(1);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(vault.gets + vault.renews, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_update_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_vouching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enrol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_not_enrolled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_rotated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_rotated_too_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_writes_bundle_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_bundle_unwritable, setup, teardown),
	};
	int r;

	cakey1 = EVP_EC_gen("P-256");
	cakey2 = EVP_EC_gen("P-256");
	cakey3 = EVP_EC_gen("P-256");
	leafkey = EVP_EC_gen("P-256");
	otherkey = EVP_EC_gen("P-256");
	if (cakey1 == NULL || cakey2 == NULL || cakey3 == NULL || leafkey == NULL ||
	    otherkey == NULL)
		return 1;
	ca1 = make_cert("shadowvault shadow CA test v1", cakey1, NULL, cakey1, 1, 1);
	ca2 = make_cert("shadowvault shadow CA test v2", cakey2, NULL, cakey2, 1, 2);
	ca3 = make_cert("shadowvault shadow CA test v3", cakey3, NULL, cakey3, 1, 5);
	link12 = make_cert("shadowvault shadow CA test v2", cakey2, ca1, cakey1, 1, 6);
	link23 = make_cert("shadowvault shadow CA test v3", cakey3, ca2, cakey2, 1, 7);
	links = pem1(link12);
	leaf1 = make_cert("shadow", leafkey, ca1, cakey1, 0, 3);
	leaf2 = make_cert("shadow", leafkey, ca2, cakey2, 0, 4);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	X509_free(ca1);
	X509_free(ca2);
	X509_free(ca3);
	X509_free(link12);
	X509_free(link23);
	free(links);
	X509_free(leaf1);
	X509_free(leaf2);
	EVP_PKEY_free(cakey1);
	EVP_PKEY_free(cakey2);
	EVP_PKEY_free(cakey3);
	EVP_PKEY_free(leafkey);
	EVP_PKEY_free(otherkey);
	return r;
}
