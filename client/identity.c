/*
 * This server's identity at the vault: the TLS client key made here and the
 * certificate the vault's shadow CA issued for it (identity/key.pem,
 * identity/cert.pem).  Enrolment makes the first pair (enroll.c).  From the
 * time the vault said when it issued the certificate (renew_from, kept in
 * identity/renewal.json; without it, common/renewal.h's rule: the last 30
 * days or the last third of the lifetime, whichever is shorter), `shadow
 * renew` asks the vault for a new one over the old one (POST
 * /v1/identity/renew with a CSR for a new key) and swaps the pair in.  A
 * too-early refusal carries the vault's time, which replaces the kept one
 * (the vault's window changed since the issuance).
 *
 * The swap never leaves a key and a certificate that do not belong together:
 * the new certificate, then the new key, are written beside the old ones
 * (cert.pem.next, key.pem.next, each atomically), then key.pem.next is
 * renamed over key.pem and cert.pem.next over cert.pem.  identity_recover()
 * (at every start) finishes a swap a crash interrupted, or drops its debris.
 *
 * The vault's bundle key is pinned in identity/vault.json at enrolment; a
 * renewal answer that carries one adds it there if the enrolment was older
 * than bundles.  A pinned key is only replaced by the key the vault rotated
 * it to, when the answer's key_chain leads there from it, each key vouched
 * for by the one before (common/bundle.h); never on the vault's word alone.
 *
 * The vault's shadow CA (identity/vault-ca.pem) is a bundle: the issuing CA,
 * then the older ones it still trusts.  When the vault rotates it, its
 * answers (renewal, GET /v1/identity) carry the new bundle, which replaces
 * the file if well-formed and still vouching for this identity; an identity
 * not from the first certificate is then due for renewal at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "b64.h"
#include "bundle.h"
#include "fileio.h"
#include "renewal.h"
#include "shadow.h"
#include "sv_err.h"

#define ID_PEM_MAX     (64 * 1024)
#define VAULT_JSON     "identity/vault.json"
#define VAULT_JSON_MAX (64 * 1024)

static int
pem_of(int (*wr)(BIO *, void *), void *obj, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;

	*out = NULL;
	if (b == NULL || wr(b, obj) != 1) {
		BIO_free(b);
		return sv_seterr_ssl(SV_ECRYPTO, "PEM encoding");
	}
	len = BIO_get_mem_data(b, &data);
	if ((*out = malloc((size_t)len + 1)) != NULL) {
		memcpy(*out, data, (size_t)len);
		(*out)[len] = '\0';
	}
	BIO_free(b);
	return *out ? 0 : SV_ENOMEM;
}

static int
wr_req(BIO *b, void *x)
{
	return PEM_write_bio_X509_REQ(b, x);
}

static int
wr_key(BIO *b, void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

int
identity_key_pem(EVP_PKEY *key, char **out)
{
	return pem_of(wr_key, key, out);
}

int
identity_csr(EVP_PKEY **key, char **csr)
{
	X509_REQ *req;
	int r;

	*csr = NULL;
	if ((*key = EVP_EC_gen("P-256")) == NULL || (req = X509_REQ_new()) == NULL)
		return sv_seterr_ssl(SV_ECRYPTO, "making the TLS key");
	/* The vault names the certificate itself; the CSR only carries the key. */
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	    (const unsigned char *)"shadow", -1, -1, 0);
	if (X509_REQ_set_pubkey(req, *key) != 1 || X509_REQ_sign(req, *key, EVP_sha256()) <= 0)
		r = sv_seterr_ssl(SV_ECRYPTO, "signing the CSR");
	else
		r = pem_of(wr_req, req, csr);
	X509_REQ_free(req);
	return r;
}

static void *
rd_cert(BIO *b)
{
	return PEM_read_bio_X509(b, NULL, NULL, NULL);
}

static void *
rd_key(BIO *b)
{
	return PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
}

/* The PEM object rd reads from file rel under the state directory, or NULL. */
static void *
load_pem(struct shadow *s, const char *rel, void *(*rd)(BIO *))
{
	char path[PATH_MAX];
	uint8_t *d = NULL;
	size_t len = 0;
	BIO *b = NULL;
	void *x = NULL;

	if (shadow_path(s, rel, path, sizeof(path)) == 0 &&
	    sv_read_file(path, ID_PEM_MAX, &d, &len) == 0 &&
	    (b = BIO_new_mem_buf(d, (int)len)) != NULL)
		x = rd(b);
	BIO_free(b);
	if (d != NULL) {
		sodium_memzero(d, len); /* a key, perhaps */
		free(d);
	}
	return x;
}

X509 *
identity_load_cert(struct shadow *s, const char *rel)
{
	return load_pem(s, rel, rd_cert);
}

int
identity_lock(struct shadow *s)
{
	char path[PATH_MAX];
	int fd, r;

	if (s->id_lock_depth > 0) {
		s->id_lock_depth++;
		return 0;
	}
	if ((r = shadow_path(s, "identity", path, sizeof(path))) != 0)
		return r;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sv_seterr(SV_EIO, "%s: %s", path, strerror(errno));
	/* Another run holds it for the few requests of a renewal at most: wait. */
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			r = sv_seterr(SV_EIO, "locking %s: %s", path, strerror(errno));
			close(fd);
			return r;
		}
	s->id_lock_fd = fd;
	s->id_lock_depth = 1;
	return 0;
}

void
identity_unlock(struct shadow *s)
{
	if (s->id_lock_depth > 0 && --s->id_lock_depth == 0)
		close(s->id_lock_fd); /* and the lock with it */
}

#define RENEWAL_JSON	 "identity/renewal.json"
#define RENEWAL_JSON_MAX 4096

void
identity_note_renewal(struct shadow *s, X509 *cert, const json_t *ans)
{
	const json_t *rf = json_object_get(ans, "renew_from");
	char path[PATH_MAX], *txt = NULL;
	json_t *j = NULL;
	int r = SV_ENOMEM;

	if (!json_is_integer(rf))
		return; /* a vault from before renew_from: the rule applies */
	j = json_pack("{s:I, s:I}", "not_after", (json_int_t)sv_asn1_time(X509_get0_notAfter(cert)),
	    "renew_from", json_integer_value(rf));
	if (j != NULL && (txt = json_dumps(j, JSON_INDENT(2))) != NULL &&
	    (r = shadow_path(s, RENEWAL_JSON, path, sizeof(path))) == 0)
		r = sv_write_file_atomic(path, txt, strlen(txt), 0644);
	if (r != 0)
		fprintf(stderr,
		    "shadow: warning: keeping the vault's renewal time in %s: %s (the default "
		    "rule applies)\n",
		    RENEWAL_JSON, sv_errmsg(r));
	free(txt);
	json_decref(j);
}

/* From when x may be renewed: the vault's word if kept for x (same notAfter), else the rule;
   never later than its expiry. */
static time_t
renew_from(struct shadow *s, X509 *x)
{
	time_t na = sv_asn1_time(X509_get0_notAfter(x));
	time_t from = sv_cert_renew_from(x, 0);
	char path[PATH_MAX];
	uint8_t *d = NULL;
	json_t *j = NULL;
	size_t len;

	if (shadow_path(s, RENEWAL_JSON, path, sizeof(path)) == 0 &&
	    sv_read_file(path, RENEWAL_JSON_MAX, &d, &len) == 0 &&
	    (j = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL)) != NULL &&
	    json_is_integer(json_object_get(j, "renew_from")) &&
	    json_integer_value(json_object_get(j, "not_after")) == (json_int_t)na)
		from = (time_t)json_integer_value(json_object_get(j, "renew_from"));
	json_decref(j);
	free(d);
	/* Whatever the file says, an identity is due (and warned about) by its expiry. */
	return from < na ? from : na;
}

time_t
identity_expiry(struct shadow *s)
{
	X509 *x = identity_load_cert(s, "identity/cert.pem");
	time_t na = x ? sv_asn1_time(X509_get0_notAfter(x)) : 0;

	X509_free(x);
	return na;
}

/* rename(from, to) under the state directory, then sync the directory. */
static int
rename_in(struct shadow *s, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];
	int r;

	if ((r = shadow_path(s, from, a, sizeof(a))) != 0 ||
	    (r = shadow_path(s, to, b, sizeof(b))) != 0)
		return r;
	if (rename(a, b) != 0)
		return sv_seterr(SV_EIO, "renaming %s to %s: %s", a, b, strerror(errno));
	return sv_fsync_parent(b);
}

static int
exists_in(struct shadow *s, const char *rel)
{
	char p[PATH_MAX];

	return shadow_path(s, rel, p, sizeof(p)) == 0 && access(p, F_OK) == 0;
}

static void
unlink_in(struct shadow *s, const char *rel)
{
	char p[PATH_MAX];

	if (shadow_path(s, rel, p, sizeof(p)) == 0)
		unlink(p);
}

int
identity_recover(struct shadow *s)
{
	X509 *c;
	EVP_PKEY *k;
	int r = 0, match;

	if (!exists_in(s, "identity/cert.pem.next")) {
		unlink_in(s, "identity/key.pem.next"); /* cannot happen in order: debris */
		return 0;
	}
	if (exists_in(s, "identity/key.pem.next") &&
	    (r = rename_in(s, "identity/key.pem.next", "identity/key.pem")) != 0)
		return r;
	c = identity_load_cert(s, "identity/cert.pem.next");
	k = load_pem(s, "identity/key.pem", rd_key);
	match = c != NULL && k != NULL && X509_check_private_key(c, k) == 1;
	X509_free(c);
	EVP_PKEY_free(k);
	if (match)
		return rename_in(s, "identity/cert.pem.next", "identity/cert.pem");
	unlink_in(s, "identity/cert.pem.next"); /* its key was never written */
	return 0;
}

int
identity_bundle_key_decode(const json_t *v, uint8_t pk[BUNDLE_PK_LEN])
{
	const char *t = json_string_value(v);
	uint8_t *d = NULL;
	size_t n = 0;
	int r;

	if (t == NULL)
		return sv_seterr(SV_EPROTO, "bundle_key is not a string");
	if ((r = b64u_decode(t, strlen(t), BUNDLE_PK_LEN, &d, &n)) != 0 || n != BUNDLE_PK_LEN) {
		free(d);
		return sv_seterr(
		    SV_EPROTO, "bundle_key is not %d bytes of base64url", BUNDLE_PK_LEN);
	}
	if (pk != NULL)
		memcpy(pk, d, BUNDLE_PK_LEN);
	free(d);
	return 0;
}

int
identity_vault_load(struct shadow *s, json_t **out)
{
	char path[PATH_MAX];
	uint8_t *d = NULL;
	size_t len;
	int r;

	*out = NULL;
	if ((r = shadow_path(s, VAULT_JSON, path, sizeof(path))) != 0)
		return r;
	if (access(path, F_OK) != 0)
		return sv_seterr(
		    SV_ECONFIG, "not enrolled (%s does not exist): run shadow enroll", path);
	if ((r = sv_read_file(path, VAULT_JSON_MAX, &d, &len)) != 0)
		return r == SV_ENOMEM ? r : sv_recode(SV_ECONFIG);
	*out = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL);
	free(d);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sv_seterr(SV_ECONFIG, "%s: not a JSON object", path);
	}
	return 0;
}

/* v with its bundle_key set to bk (a string), written to identity/vault.json atomically. */
static int
vault_json_pin(struct shadow *s, json_t *v, json_t *bk)
{
	char path[PATH_MAX], *txt = NULL;
	int r;

	if (json_object_set(v, "bundle_key", bk) != 0 ||
	    (txt = json_dumps(v, JSON_INDENT(2))) == NULL)
		return SV_ENOMEM;
	if ((r = shadow_path(s, VAULT_JSON, path, sizeof(path))) == 0)
		r = sv_write_file_atomic(path, txt, strlen(txt), 0644);
	free(txt);
	return r;
}

static int
repin_locked(struct shadow *s, const uint8_t old[BUNDLE_PK_LEN], const uint8_t pk[BUNDLE_PK_LEN])
{
	uint8_t cur[BUNDLE_PK_LEN];
	json_t *v = NULL, *bk = NULL;
	char *b64 = NULL;
	int r;

	/* Read again: another run may have re-pinned (or someone changed the file) since. */
	if ((r = identity_vault_load(s, &v)) != 0)
		goto out;
	if ((r = identity_bundle_key_decode(json_object_get(v, "bundle_key"), cur)) != 0) {
		r = sv_preferr(r, "%s", VAULT_JSON);
		goto out;
	}
	if (memcmp(cur, pk, BUNDLE_PK_LEN) == 0)
		goto out; /* pinned already */
	if (memcmp(cur, old, BUNDLE_PK_LEN) != 0) {
		r = sv_seterr(SV_ESTATE,
		    "%s no longer pins the key the vault's key_chain was followed from (changed "
		    "meanwhile): left as it is",
		    VAULT_JSON);
		goto out;
	}
	if ((r = b64u_encode(pk, BUNDLE_PK_LEN, &b64)) != 0)
		goto out;
	if ((bk = json_string(b64)) == NULL)
		r = SV_ENOMEM;
	else if ((r = vault_json_pin(s, v, bk)) == 0)
		shadow_progress(s,
		    "the vault's bundle key was rotated: pinned its new key %s in %s, vouched for "
		    "by the key pinned before",
		    b64, VAULT_JSON);
out:
	json_decref(bk);
	free(b64);
	json_decref(v);
	return r;
}

int
identity_repin_bundle_key(
    struct shadow *s, const uint8_t old[BUNDLE_PK_LEN], const uint8_t pk[BUNDLE_PK_LEN])
{
	int r;

	if ((r = identity_lock(s)) != 0)
		return r;
	r = repin_locked(s, old, pk);
	identity_unlock(s);
	return r;
}

/*
 * ans names a bundle key other than the pinned old: pin it if ans's
 * key_chain leads there from old; else keep old, with a warning (and
 * SV_EPROTO if the chain is refused).  The vault's word alone never
 * replaces a pinned key: the pin guards bundles against whoever holds the
 * vault's TLS server key, so only the pinned key can vouch for another.
 */
static int
follow_rotation(struct shadow *s, const json_t *ans, const uint8_t old[BUNDLE_PK_LEN],
    const uint8_t named[BUNDLE_PK_LEN])
{
	uint8_t reached[BUNDLE_PK_LEN];
	int r;

	if ((r = bundle_key_follow(old, json_object_get(ans, "key_chain"), reached)) != 0)
		return sv_preferr(r,
		    "the vault now names another bundle key than the one pinned in %s, but its "
		    "key_chain is refused; keeping the pinned one",
		    VAULT_JSON);
	if (memcmp(reached, named, BUNDLE_PK_LEN) != 0) {
		fprintf(stderr,
		    "shadow: warning: the vault now names another bundle key than the one pinned "
		    "in %s, and no key_chain from the pinned one leads to it; keeping the pinned "
		    "one\n",
		    VAULT_JSON);
		return 0;
	}
	return identity_repin_bundle_key(s, old, named);
}

static int
pin_locked(struct shadow *s, const json_t *ans)
{
	const json_t *bk = json_object_get(ans, "bundle_key"), *old;
	uint8_t named[BUNDLE_PK_LEN], pinned[BUNDLE_PK_LEN];
	json_t *v = NULL;
	int r;

	if (bk == NULL)
		return 0; /* a vault that does not serve bundles */
	if ((r = identity_bundle_key_decode(bk, named)) != 0 ||
	    (r = identity_vault_load(s, &v)) != 0)
		goto out;
	if ((old = json_object_get(v, "bundle_key")) != NULL) {
		if ((r = identity_bundle_key_decode(old, pinned)) != 0)
			r = sv_preferr(r, "%s", VAULT_JSON);
		else if (memcmp(pinned, named, BUNDLE_PK_LEN) != 0)
			r = follow_rotation(s, ans, pinned, named);
		goto out;
	}
	if ((r = vault_json_pin(s, v, (json_t *)bk)) == 0)
		shadow_progress(s,
		    "pinned the vault's bundle key in %s: shadow fetch can be used now",
		    VAULT_JSON);
out:
	if (r != 0)
		fprintf(
		    stderr, "shadow: warning: pinning the vault's bundle key: %s\n", sv_errmsg(r));
	json_decref(v);
	return r;
}

int
identity_pin_bundle_key(struct shadow *s, const json_t *ans)
{
	int r;

	if (json_object_get(ans, "bundle_key") == NULL)
		return 0; /* a vault that does not serve bundles: nothing to lock for */
	if ((r = identity_lock(s)) != 0) {
		fprintf(
		    stderr, "shadow: warning: pinning the vault's bundle key: %s\n", sv_errmsg(r));
		return r;
	}
	r = pin_locked(s, ans);
	identity_unlock(s);
	return r;
}

/*
 * Proof for the vault that the holder of the current identity asks: its key's
 * signature over the renewal context and the CSR (base64url, caller frees).
 * The key process checks it against the certificate, which the body carries.
 */
#define RENEW_CONTEXT "shadowvault identity renewal v1\n"

static int
make_proof(struct shadow *s, const char *csr, char **proof)
{
	EVP_PKEY *key = load_pem(s, "identity/key.pem", rd_key);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t sig[256];
	size_t slen = sizeof(sig);
	int r;

	*proof = NULL;
	if (key == NULL)
		r = sv_seterr(SV_ECONFIG, "cannot read this server's identity key");
	else if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSignUpdate(md, RENEW_CONTEXT, strlen(RENEW_CONTEXT)) != 1 ||
	    EVP_DigestSignUpdate(md, csr, strlen(csr)) != 1 ||
	    EVP_DigestSignFinal(md, sig, &slen) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "signing the renewal with the current key");
	else
		r = b64u_encode(sig, slen, proof);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return r;
}

/*
 * The answer must be a certificate for key, issued by the vault's CA: a
 * certificate of the answer's bundle if it has one (the vault may have
 * rotated its CA: the first of the bundle issues), else of identity/vault-ca.pem.
 */
static int
check_renewal(struct shadow *s, const json_t *ans, EVP_PKEY *key, X509 **out)
{
	const char *pem = json_string_value(json_object_get(ans, "certificate"));
	const json_t *bundle = json_object_get(ans, "ca");
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *ca = NULL;
	int r = 0;

	*out = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*out == NULL || X509_check_private_key(*out, key) != 1)
		r = sv_seterr(SV_EPROTO, "the vault returned no certificate for the new key");
	else if (bundle != NULL)
		r = identity_ca_answer(s, ans, *out);
	else if ((ca = identity_load_cert(s, SHADOW_VAULT_CA)) == NULL ||
	    X509_verify(*out, X509_get0_pubkey(ca)) != 1)
		r = sv_seterr(SV_EPROTO, "the renewed certificate is not from the vault's CA");
	X509_free(ca);
	ERR_clear_error();
	return r;
}

/* Write the new pair beside the old one, then swap it in (see the top). */
static int
install(struct shadow *s, const char *cert_pem, const char *key_pem)
{
	char path[PATH_MAX];
	int r;

	if ((r = shadow_path(s, "identity/cert.pem.next", path, sizeof(path))) != 0 ||
	    (r = sv_write_file_atomic(path, cert_pem, strlen(cert_pem), 0644)) != 0 ||
	    (r = shadow_path(s, "identity/key.pem.next", path, sizeof(path))) != 0 ||
	    (r = sv_write_file_atomic(path, key_pem, strlen(key_pem), 0600)) != 0)
		return r;
	if ((r = rename_in(s, "identity/key.pem.next", "identity/key.pem")) != 0)
		return r;
	return rename_in(s, "identity/cert.pem.next", "identity/cert.pem");
}

int
identity_get(struct shadow *s, struct vault_resp *resp)
{
	char url[1024];

	memset(resp, 0, sizeof(*resp));
	if (snprintf(url, sizeof(url), "%s/v1/identity", s->api_url) >= (int)sizeof(url))
		return sv_seterr(SV_ECONFIG, "the vault's address is too long");
	return vault_call(s, "GET", url, NULL, 1, s->ca_file, resp);
}

/*
 * Use the new identity once (GET /v1/identity): the vault then retires the
 * certificate it replaced.  Not fatal: the next request does the same.  The
 * answer's CA bundle is taken too (it vouches for the new identity).
 */
static void
confirm(struct shadow *s, const char *serial)
{
	struct vault_resp resp;
	const char *got;
	int r;

	r = identity_get(s, &resp);
	got = json_string_value(json_object_get(resp.body, "serial"));
	if (r != 0 || resp.status != 200 || got == NULL || serial == NULL ||
	    strcmp(got, serial) != 0)
		fprintf(stderr,
		    "shadow: warning: the vault did not confirm the renewed identity (%s); the old "
		    "certificate stays valid until the next request\n",
		    r != 0		 ? sv_errmsg(r)
			: resp.detail[0] ? resp.detail
					 : "another certificate");
	else if ((r = identity_update_ca(s, resp.body, NULL)) != 0)
		fprintf(stderr, "shadow: warning: %s; %s left as it was\n", sv_errmsg(r),
		    SHADOW_VAULT_CA);
	vault_resp_free(&resp);
}

/*
 * A too-early refusal with the vault's time for the certificate in use:
 * kept (the window changed since its issuance), and SV_ESTATE.  0: another refusal.
 */
static int
too_early(struct shadow *s, const json_t *prob)
{
	const char *type = json_string_value(json_object_get(prob, "type"));
	const json_t *rf = json_object_get(prob, "renew_from");
	const char *tail = ":too-early";
	time_t from;
	X509 *x;

	if (type == NULL || strlen(type) < strlen(tail) ||
	    strcmp(type + strlen(type) - strlen(tail), tail) != 0 || !json_is_integer(rf) ||
	    json_integer_value(rf) <= (json_int_t)time(NULL) ||
	    (x = identity_load_cert(s, "identity/cert.pem")) == NULL)
		return 0;
	identity_note_renewal(s, x, prob);
	from = renew_from(s, x);
	X509_free(x);
	return sv_seterr(
	    SV_ESTATE, "the vault renews this identity from %lld, not yet", (long long)from);
}

int
identity_renew(struct shadow *s)
{
	char url[1024], path[PATH_MAX], *csr = NULL, *key_pem = NULL, *proof = NULL;
	uint8_t *old = NULL;
	size_t olen;
	struct vault_resp resp;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	json_t *body = NULL;
	int r;

	memset(&resp, 0, sizeof(resp));
	if (s->api_url[0] == '\0')
		return sv_seterr(SV_ECONFIG, "not enrolled (no vault address)");
	snprintf(url, sizeof(url), "%s/v1/identity/renew", s->api_url);
	if ((r = identity_csr(&key, &csr)) != 0 || (r = identity_key_pem(key, &key_pem)) != 0 ||
	    (r = make_proof(s, csr, &proof)) != 0 ||
	    (r = shadow_path(s, "identity/cert.pem", path, sizeof(path))) != 0 ||
	    (r = sv_read_file(path, ID_PEM_MAX, &old, &olen)) != 0)
		goto out;
	if ((body = json_pack("{s:s, s:s%, s:s}", "csr", csr, "certificate", (const char *)old,
		 olen, "proof", proof)) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	if ((r = vault_call(s, "POST", url, body, 1, s->ca_file, &resp)) != 0)
		goto out;
	if (resp.status == 403 && (r = too_early(s, resp.body)) != 0)
		goto out;
	if (resp.status != 201) {
		r = sv_seterr(resp.status == 403 ? SV_EDENIED : SV_EPROTO,
		    "the vault refused to renew (HTTP %ld): %s", resp.status, resp.detail);
		goto out;
	}
	/* The bundle before the pair: a crash between them leaves the old identity, whose CA the
	   new bundle still holds while the vault trusts both. */
	if ((r = check_renewal(s, resp.body, key, &cert)) != 0 ||
	    (r = identity_update_ca(s, resp.body, cert)) != 0 ||
	    (r = install(
		 s, json_string_value(json_object_get(resp.body, "certificate")), key_pem)) != 0)
		goto out;
	identity_note_renewal(s, cert, resp.body);
	identity_pin_bundle_key(s, resp.body);
	if (!s->quiet && !s->json)
		printf("vault identity renewed: certificate %s\n",
		    json_string_value(json_object_get(resp.body, "serial")));
	/* The kept connection was made with the old identity: the next one uses the new. */
	vault_close(s);
	confirm(s, json_string_value(json_object_get(resp.body, "serial")));
out:
	vault_resp_free(&resp);
	json_decref(body);
	X509_free(cert);
	EVP_PKEY_free(key);
	free(csr);
	free(proof);
	free(old);
	if (key_pem != NULL) {
		sodium_memzero(key_pem, strlen(key_pem));
		free(key_pem);
	}
	return r;
}

/*
 * Is x not from the vault's issuing CA (the first certificate of
 * identity/vault-ca.pem)?  Then the vault rotated its CA and x holds on
 * only while the vault still trusts the old one.  0 when there is no CA to
 * tell: the TLS connection to the vault then fails anyway, and says why.
 */
static int
ca_rotated(struct shadow *s, X509 *x)
{
	X509 *ca = identity_load_cert(s, SHADOW_VAULT_CA);
	int old = ca != NULL && X509_verify(x, X509_get0_pubkey(ca)) != 1;

	ERR_clear_error();
	X509_free(ca);
	return old;
}

/*
 * Ask the vault for its CA bundle (GET /v1/identity) and take it: how this
 * server learns of a rotation of the vault's CA before it renews.  Only a
 * warning if that fails: renewing goes on with what is here.
 */
static void
refresh_ca(struct shadow *s)
{
	struct vault_resp resp;
	int r;

	if (s->api_url[0] == '\0')
		return;
	if ((r = identity_get(s, &resp)) == 0 && resp.status != 200)
		r = sv_seterr(SV_EPROTO, "HTTP %ld: %s", resp.status, resp.detail);
	if (r == 0)
		r = identity_update_ca(s, resp.body, NULL);
	if (r != 0)
		fprintf(stderr,
		    "shadow: warning: asking the vault for its CA bundle: %s; %s left as it was\n",
		    sv_errmsg(r), SHADOW_VAULT_CA);
	vault_resp_free(&resp);
}

static void
check_locked(struct shadow *s, int renew)
{
	X509 *x = identity_load_cert(s, "identity/cert.pem");
	time_t na = 0, from = 0, now = time(NULL);
	char when[32];
	struct tm tm;
	int r, rotated = 0;

	if (x != NULL && renew && sv_asn1_time(X509_get0_notAfter(x)) > now)
		refresh_ca(s);
	if (x != NULL) {
		na = sv_asn1_time(X509_get0_notAfter(x));
		from = renew_from(s, x);
		rotated = ca_rotated(s, x);
		X509_free(x);
	}
	if (na == 0 || (now < from && !rotated))
		return;
	if (renew && na > now) {
		/* SV_ESTATE: the vault's window opens later than the one kept; it is kept now.
		   Not so after a rotation, which the vault renews at once: then it is said. */
		if ((r = identity_renew(s)) == 0 || (r == SV_ESTATE && !rotated))
			return;
		fprintf(stderr, "shadow: warning: renewing the vault identity: %s\n", sv_errmsg(r));
	}
	if (rotated && na > now) {
		/* Even with -q: the vault stops trusting it when it destroys its old CA. */
		fprintf(stderr,
		    "shadow: warning: this server's vault identity certificate is not from the "
		    "vault's current shadow CA (the first certificate of %s): the vault rotated "
		    "its CA; shadow renew renews it\n",
		    SHADOW_VAULT_CA);
		return;
	}
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", gmtime_r(&na, &tm));
	/* Even with -q: it needs attention, and cron mails stderr. */
	fprintf(stderr,
	    "shadow: warning: this server's vault identity certificate %s %s (%s%lld days)%s\n",
	    na <= now ? "expired on" : "expires on", when, na <= now ? "" : "in ",
	    (long long)((na > now ? na - now : now - na) / 86400),
	    na <= now ? ": have it enrolled again (vaultctl shadow revoke, vaultctl shadow add, "
			"shadow enroll --force)"
		      : ": shadow renew renews it");
}

void
identity_check(struct shadow *s, int renew)
{
	int r;

	/* Two runs at once would both renew, and the second renewal revokes the first. */
	if (renew && (r = identity_lock(s)) != 0) {
		if (identity_expiry(s) != 0) /* else: not enrolled, nothing to check */
			fprintf(stderr, "shadow: warning: %s: the vault identity is not checked\n",
			    sv_errmsg(r));
		return;
	}
	check_locked(s, renew);
	if (renew)
		identity_unlock(s);
}
