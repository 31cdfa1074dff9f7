/*
 * kp_ca: the shadow CA in the key process, and its rotation with overlap.
 *
 * The CA file (vconf ca_cert, state_dir/ca.pem) is a bundle: the issuing CA
 * certificate first, then the older ones still trusted (shadowca.h's
 * sca_bundle_parse()).  The issuing certificate is the one for the current
 * version of vault.shadow-ca; netproc trusts every certificate of the bundle
 * for client certificates, and shadows receive the bundle in enrolment,
 * identity and renewal answers.
 *
 * `vaultctl key rotate vault.shadow-ca` stages a new version, makes its CA
 * certificate and a link to it (a cross-certificate signed by the version in
 * use, in ca-links.pem: shadows take a new CA only with a link from one they
 * trust), writes the links, then the bundle with the new CA first, then
 * promotes it: a crash before the promotion leaves the old version issuing
 * and a certificate nobody signs with in the bundle (a second rotation
 * replaces it and its link).  The vault's TLS server certificate is left
 * alone: shadows learn the new CA from their next answer, and a certificate
 * from the old CA renews at once.
 *
 * `vaultctl key destroy vault.shadow-ca --version N` ends the overlap for an
 * older version: refused while an active shadow still holds a valid
 * certificate of it; otherwise the server certificate is reissued by the
 * current CA if version N issued it (same key, tls.names), version N leaves
 * the bundle and the links, then the token.  Each step is redone or skipped
 * by a retry.
 *
 * The TLS server certificate is also renewed here (kp_ca_tls_renew()), in
 * its window or when an administrator asks.
 *
 * Touches the token (the CA keys), ca.pem, ca-links.pem, the TLS
 * certificate file, the keys and shadow_certs tables, and netproc
 * (kp_push_peers()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "fileio.h"
#include "keyproc.h"
#include "keystore.h"
#include "log.h"
#include "renewal.h"
#include "shadowca.h"
#include "shadows.h"
#include "sv_err.h"
#include "vconf.h"

/* The bundle in ca.pem. */
static int
read_bundle(struct kp *kp, STACK_OF(X509) * *out)
{
	uint8_t *pem = NULL;
	size_t len;
	int r;

	if ((r = sv_read_file(kp->cfg->ca_cert, SCA_PEM_MAX, &pem, &len)) == 0)
		r = sca_bundle_parse((const char *)pem, len, out);
	free(pem);
	return r ? sv_preferr(r, "%s", kp->cfg->ca_cert) : 0;
}

/* The links in ca-links.pem (an empty stack when there is no such file). */
static int
read_links(struct kp *kp, STACK_OF(X509) * *out)
{
	uint8_t *pem = NULL;
	size_t len;
	int r;

	r = sv_read_file(kp->cfg->ca_links, SCA_PEM_MAX, &pem, &len);
	if (r == SV_ENOTFOUND) {
		sv_clearerr();
		*out = sk_X509_new_null();
		return *out ? 0 : SV_ENOMEM;
	}
	if (r == 0)
		r = sca_bundle_parse((const char *)pem, len, out);
	free(pem);
	return r ? sv_preferr(r, "%s", kp->cfg->ca_links) : 0;
}

/* sk into path, atomically; no certificate at all removes the file. */
static int
write_certs(const char *path, STACK_OF(X509) * sk)
{
	char *pem = NULL;
	int r;

	if (sk_X509_num(sk) == 0)
		r = unlink(path) == 0 || errno == ENOENT ? 0
							 : sv_seterr(SV_EIO, "%s", strerror(errno));
	else if ((r = sca_bundle_pem(sk, &pem)) == 0)
		r = sv_write_file_atomic(path, pem, strlen(pem), 0644);
	free(pem);
	return r ? sv_preferr(r, "%s", path) : 0;
}

/* ca.pem: never empty (write_certs() would remove it). */
static int
write_bundle(struct kp *kp, STACK_OF(X509) * sk)
{
	if (sk_X509_num(sk) == 0)
		return sv_seterr(SV_EINTERNAL, "%s would trust no CA", kp->cfg->ca_cert);
	return write_certs(kp->cfg->ca_cert, sk);
}

/* Index of the certificate of sk holding pub, or -1. */
static int
find_key(STACK_OF(X509) * sk, EVP_PKEY *pub)
{
	int i;

	for (i = 0; i < sk_X509_num(sk); i++)
		if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(sk, i)), pub) == 1)
			return i;
	return -1;
}

/* Remove (and free) every certificate of sk holding pub. */
static void
drop_key(STACK_OF(X509) * sk, EVP_PKEY *pub)
{
	int i;

	while ((i = find_key(sk, pub)) >= 0)
		X509_free(sk_X509_delete(sk, i));
}

/*
 * Keep the links that still mean something for bundle: to a CA of it, made
 * by another CA of it (a link from a destroyed version vouches for nothing).
 */
static void
keep_links(STACK_OF(X509) * links, STACK_OF(X509) * bundle)
{
	int i, j, from;

	for (i = sk_X509_num(links) - 1; i >= 0; i--) {
		X509 *l = sk_X509_value(links, i);

		for (from = -1, j = 0; j < sk_X509_num(bundle) && from < 0; j++)
			if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(bundle, j)),
				X509_get0_pubkey(l)) != 1 &&
			    X509_verify(l, X509_get0_pubkey(sk_X509_value(bundle, j))) == 1)
				from = j;
		ERR_clear_error();
		if (from < 0 || find_key(bundle, X509_get0_pubkey(l)) < 0)
			X509_free(sk_X509_delete(links, i));
	}
}

static int
version_public(struct kp *kp, int version, struct ks_key *k, EVP_PKEY **pub)
{
	int r;

	*pub = NULL;
	if ((r = ks_get(kp->st, KS_CA_KEY, version, k)) != 0)
		return r;
	return hsm_key_public(kp->h, &k->hk, pub);
}

static void
ca_free(struct kp *kp)
{
	EVP_PKEY_free(kp->ca_priv);
	X509_free(kp->ca);
	free(kp->ca_pem);
	free(kp->ca_links_pem);
	kp->ca_priv = NULL;
	kp->ca = NULL;
	kp->ca_pem = NULL;
	kp->ca_links_pem = NULL;
}

int
kp_ca_load(struct kp *kp)
{
	STACK_OF(X509) *sk = NULL, *links = NULL;
	EVP_PKEY *pub = NULL, *priv = NULL;
	struct ks_key k;
	char *pem = NULL, *lpem = NULL;
	int i, r;

	if ((r = read_bundle(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0 ||
	    (r = version_public(kp, 0, &k, &pub)) != 0)
		goto out;
	if ((i = find_key(sk, pub)) < 0) {
		r = sv_seterr(SV_ESTATE, "%s holds no certificate for %s@v%d, the current version",
		    kp->cfg->ca_cert, KS_CA_KEY, k.version);
		goto out;
	}
	/* The issuing CA first, as shadows expect (a rotation cut short may have put another). */
	if (i != 0) {
		X509 *x = sk_X509_delete(sk, i);

		if (sk_X509_unshift(sk, x) <= 0) {
			X509_free(x);
			r = SV_ENOMEM;
			goto out;
		}
	}
	keep_links(links, sk);
	if ((r = sca_bundle_pem(sk, &pem)) != 0 ||
	    (sk_X509_num(links) > 0 && (r = sca_bundle_pem(links, &lpem)) != 0) ||
	    (r = hsm_pkey(kp->h, &k.hk, &priv)) != 0)
		goto out;
	ca_free(kp);
	kp->ca = X509_dup(sk_X509_value(sk, 0));
	kp->ca_key = k.hk;
	kp->ca_version = k.version;
	kp->ca_priv = priv;
	kp->ca_pem = pem;
	kp->ca_links_pem = lpem;
	kp->ca_count = sk_X509_num(sk);
	priv = NULL;
	pem = NULL;
	lpem = NULL;
	if (kp->ca == NULL)
		r = SV_ENOMEM;
out:
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	free(pem);
	free(lpem);
	sk_X509_pop_free(sk, X509_free);
	sk_X509_pop_free(links, X509_free);
	return r ? sv_preferr(r, "shadow CA") : 0;
}

void
kp_ca_free(struct kp *kp)
{
	ca_free(kp);
}

/* "shadowvault shadow CA host" (version 1, from init) -> "shadowvault shadow CA host vN". */
static void
next_cn(X509 *ca, int version, char *cn, size_t n)
{
	char base[SCA_CN_MAX + 1] = "shadowvault shadow CA";
	char *v;
	int len;

	len = X509_NAME_get_text_by_NID(
	    X509_get_subject_name(ca), NID_commonName, base, (int)sizeof(base));
	if (len <= 0)
		snprintf(base, sizeof(base), "shadowvault shadow CA");
	if ((v = strrchr(base, ' ')) != NULL && v[1] == 'v' && strspn(v + 2, "0123456789") > 0 &&
	    v[2 + strspn(v + 2, "0123456789")] == '\0')
		*v = '\0';
	/* Room for " v" and up to 7 digits within the CN's 64 characters. */
	snprintf(cn, n, "%.54s v%d", base, version);
}

int
kp_ca_key_rotate(struct kp *kp, json_t **result)
{
	STACK_OF(X509) *sk = NULL, *links = NULL;
	EVP_PKEY *pub = NULL, *priv = NULL;
	struct ks_key pend;
	char cn[SCA_CN_MAX + 1];
	X509 *ca = NULL, *link = NULL;
	int r;

	if ((r = read_bundle(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0 ||
	    (r = ks_stage(kp->st, kp->h, KS_CA_KEY, &pend)) != 0 ||
	    (r = hsm_key_public(kp->h, &pend.hk, &pub)) != 0 ||
	    (r = hsm_pkey(kp->h, &pend.hk, &priv)) != 0)
		goto out;
	next_cn(kp->ca, pend.version, cn, sizeof(cn));
	if ((r = sca_make_ca(priv, pub, cn, SCA_CA_DAYS, &ca)) != 0 ||
	    (r = sca_cross(kp->ca_priv, kp->ca, ca, &link)) != 0)
		goto out;
	drop_key(sk, pub); /* a certificate and a link from a rotation cut short */
	drop_key(links, pub);
	if (sk_X509_num(sk) >= SCA_BUNDLE_MAX) {
		r = sv_seterr(SV_ESTATE,
		    "%s already trusts %d CA certificates: destroy an older version of %s first",
		    kp->cfg->ca_cert, sk_X509_num(sk), KS_CA_KEY);
		goto out;
	}
	if (sk_X509_unshift(sk, ca) <= 0) {
		r = SV_ENOMEM;
		goto out;
	}
	ca = NULL;
	if (sk_X509_push(links, link) <= 0) {
		r = SV_ENOMEM;
		goto out;
	}
	link = NULL;
	keep_links(links, sk);
	/* Linked and trusted before it issues anything: netproc and shadows never meet a CA
	   they lack, and shadows get the link with the CA. */
	if ((r = write_certs(kp->cfg->ca_links, links)) != 0 || (r = write_bundle(kp, sk)) != 0)
		goto out;
	/* Fault injection for the tests (as SV_FAULT elsewhere): stop before the promotion. */
	if (sv_fault("ca-key-promote")) {
		r = sv_seterr(SV_EIO, "fault injected (SV_FAULT=ca-key-promote)");
		goto out;
	}
	if ((r = ks_promote(kp->st, KS_CA_KEY, pend.version)) != 0)
		goto out;
	if ((r = kp_ca_load(kp)) != 0) {
		r = sv_preferr(r, "%s version %d is current, but vaultd must restart to use it",
		    KS_CA_KEY, pend.version);
		goto out;
	}
	kp_push_peers(kp, NULL);
	sv_info("shadow CA rotated to %s@v%d (%s): %d CA certificates trusted", KS_CA_KEY,
	    pend.version, cn, kp->ca_count);
	if ((r = ks_get(kp->st, KS_CA_KEY, 0, &pend)) != 0 ||
	    (r = ks_json(kp->h, &pend, 1, result)) != 0)
		goto out;
	json_object_set_new(*result, "ca_file", json_string(kp->cfg->ca_cert));
	json_object_set_new(*result, "subject", json_string(cn));
	json_object_set_new(*result, "trusted", json_integer(kp->ca_count));
out:
	X509_free(ca);
	X509_free(link);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	sk_X509_pop_free(sk, X509_free);
	sk_X509_pop_free(links, X509_free);
	return r;
}

/*
 * The first certificate of the TLS certificate file: the server's.  The file
 * may be the administrator's own (a certificate from elsewhere, a chain with
 * comments): read leniently.
 */
static int
tls_leaf(struct kp *kp, X509 **out)
{
	uint8_t *pem = NULL;
	size_t len;
	BIO *b = NULL;
	int r;

	*out = NULL;
	if ((r = sv_read_file(kp->cfg->tls_cert, SCA_PEM_MAX, &pem, &len)) == 0 &&
	    ((b = BIO_new_mem_buf(pem, (int)len)) == NULL ||
		(*out = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL))
		r = sv_seterr(SV_EINVAL, "%s: no PEM certificate", kp->cfg->tls_cert);
	ERR_clear_error();
	BIO_free(b);
	free(pem);
	return r;
}

/*
 * A new TLS key file (tls renew --new-key) replaces tls.key in three steps:
 * the key to tls.key.next (0600), the certificate for it to tls.cert, then
 * tls.key.next renamed over tls.key.  After a crash, kp_ca_tls_recover()
 * finishes or drops the swap by which key the certificate holds, and
 * netproc, which may load the files before that, takes tls.key.next when
 * tls.key does not fit the certificate (np_make_ctx()).
 */
static void
key_next_path(const struct kp *kp, char *path, size_t n)
{
	snprintf(path, n, "%s.next", kp->cfg->tls_key);
}

static int
key_pem(EVP_PKEY *key, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int r = 0;

	*out = NULL;
	if (b == NULL || PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(b, &p)) <= 0)
		r = sv_seterr_ssl(SV_ECRYPTO, "writing the new TLS key");
	else if ((*out = sodium_malloc((size_t)n + 1)) == NULL)
		r = SV_ENOMEM;
	else {
		memcpy(*out, p, (size_t)n);
		(*out)[n] = '\0';
		OPENSSL_cleanse(p, (size_t)n);
	}
	BIO_free(b);
	return r;
}

static int
key_next_write(struct kp *kp, EVP_PKEY *key)
{
	char path[PATH_MAX + 8], *pem = NULL;
	int r;

	key_next_path(kp, path, sizeof(path));
	if ((r = key_pem(key, &pem)) == 0)
		r = sv_write_file_atomic(path, pem, strlen(pem), 0600);
	if (pem != NULL)
		sodium_free(pem);
	return r ? sv_preferr(r, "%s", path) : 0;
}

static int
key_next_swap(struct kp *kp)
{
	char path[PATH_MAX + 8];

	key_next_path(kp, path, sizeof(path));
	if (sv_fault("tls-key-swap"))
		return sv_seterr(SV_EIO, "fault injected (SV_FAULT=tls-key-swap)");
	if (rename(path, kp->cfg->tls_key) != 0)
		return sv_seterr(
		    SV_EIO, "renaming %s to %s: %s", path, kp->cfg->tls_key, strerror(errno));
	return 0;
}

/*
 * A TLS key in the token (tls.key a pkcs11: URI) rotates as a new version
 * of its key, staged (keystore.h), then added to the handshake thread's keys
 * (kp_tls_add()), then certified and written to tls.cert, then promoted;
 * netproc gets the certificate last.  After a crash between the certificate
 * and the promotion, token_recover() promotes the staged version the
 * certificate holds; before the certificate, the staged version is left for
 * the next rotation to use (ks_stage()).  Only a URI that names the key
 * alone (object=NAME, no version, no id) follows the current version; one
 * that names a version or an id stays on it, and cannot rotate.
 */
static int
token_key_name(const struct kp *kp, char *name)
{
	char tok[33], obj[HSM_LABEL_MAX + 1];
	uint8_t id[HSM_ID_LEN];
	int have_id, r;

	if ((r = hsm_uri_parse(kp->cfg->tls_key, tok, obj, id, &have_id)) != 0)
		return sv_preferr(r, "tls.key");
	if (strchr(obj, '@') != NULL || have_id)
		return sv_seterr(SV_ESTATE,
		    "tls.key (%s) names one version of its key: a new version would not be served. "
		    "Name the key alone (object=%.*s, no id) and restart vaultd to let it rotate",
		    kp->cfg->tls_key, (int)strcspn(obj, "@"), obj);
	if ((r = sv_name_check(obj, "tls.key's object")) != 0)
		return r;
	memcpy(name, obj, strlen(obj) + 1); /* sv_name_check: at most SV_NAME_MAX */
	return 0;
}

/* Whether k's public key is the one x certifies (< 0 on error). */
static int
token_key_certified(struct kp *kp, struct ks_key *k, X509 *x)
{
	EVP_PKEY *pub = NULL;
	int r;

	if ((r = hsm_key_public(kp->h, &k->hk, &pub)) != 0)
		return r;
	r = EVP_PKEY_eq(pub, X509_get0_pubkey(x)) == 1;
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return r;
}

static void
token_recover(struct kp *kp)
{
	char name[SV_NAME_MAX + 1];
	struct ks_key pend;
	X509 *leaf = NULL;
	int r;

	if (token_key_name(kp, name) != 0 || ks_pending(kp->st, name, &pend) != 0) {
		sv_clearerr(); /* a pinned version, or no rotation under way */
		return;
	}
	if (tls_leaf(kp, &leaf) == 0 && token_key_certified(kp, &pend, leaf) == 1) {
		if ((r = ks_promote(kp->st, name, pend.version)) != 0)
			sv_err("finishing the TLS key rotation: %s", sv_errmsg(r));
		else {
			sv_warn("finished the TLS key rotation a crash cut short: %s is current",
			    pend.hk.label);
			kp_audit(kp, "admin",
			    json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "op", "key.promote", "name",
				name, "version", pend.version, "by", "vaultd", "reason",
				"a TLS key rotation cut short after its certificate", "decision",
				"done"));
			if ((r = kp_commit(kp)) != 0)
				sv_err("audit: the promotion of %s is not recorded: %s",
				    pend.hk.label, sv_errmsg(r));
		}
	} else
		sv_info("%s is staged from a TLS key rotation cut short before its certificate: "
			"the next rotation uses it",
		    pend.hk.label);
	sv_clearerr();
	X509_free(leaf);
}

/* Stage the token's new TLS key and let the handshake thread sign with it (see above). */
static int
token_stage(struct kp *kp, char *name, struct ks_key *pend, EVP_PKEY **pub)
{
	int r;

	*pub = NULL;
	if ((r = token_key_name(kp, name)) != 0 || (r = ks_stage(kp->st, kp->h, name, pend)) != 0 ||
	    (r = hsm_key_public(kp->h, &pend->hk, pub)) != 0)
		return r;
	return kp_tls_add(kp, pend);
}

/* After the certificate: the staged version becomes current (SV_FAULT=tls-token-promote). */
static int
token_promote(struct kp *kp, const char *name, const struct ks_key *pend)
{
	if (sv_fault("tls-token-promote"))
		return sv_seterr(SV_EIO, "fault injected (SV_FAULT=tls-token-promote)");
	return ks_promote(kp->st, name, pend->version);
}

int
kp_ca_tls_key_destroy(struct kp *kp, const json_t *req, json_t **result)
{
	const json_t *v = json_object_get(req, "version");
	struct ks_key k;
	int version, r;

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
		return sv_seterr(SV_EINVAL, "key destroy needs the version to destroy");
	if (!json_is_true(json_object_get(req, "confirm")))
		return sv_seterr(SV_EINVAL, "key destroy must be confirmed (--yes)");
	version = (int)json_integer_value(v);
	if ((r = ks_get(kp->st, KS_TLS_KEY, version, &k)) != 0)
		return r;
	if (strcmp(k.state, "current") == 0)
		return sv_seterr(SV_EDENIED,
		    "%s is the vault's TLS key: rotate it first (vaultctl tls renew --new-key)",
		    k.hk.label);
	if ((r = ks_destroy(kp->st, kp->h, KS_TLS_KEY, version)) != 0)
		return r;
	kp_tls_drop(kp, KS_TLS_KEY, version);
	*result = json_pack(
	    "{s:s, s:i, s:s}", "name", KS_TLS_KEY, "version", version, "state", "destroyed");
	return *result ? 0 : SV_ENOMEM;
}

void
kp_ca_tls_recover(struct kp *kp)
{
	char path[PATH_MAX + 8];
	EVP_PKEY *next = NULL;
	X509 *leaf = NULL;
	FILE *f;

	if (vconf_tls_in_token(kp->cfg)) {
		token_recover(kp);
		return;
	}
	key_next_path(kp, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return; /* no swap under way */
	next = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (tls_leaf(kp, &leaf) != 0)
		sv_clearerr(); /* no certificate: nothing the new key is for */
	if (next != NULL && leaf != NULL && X509_check_private_key(leaf, next) == 1) {
		if (rename(path, kp->cfg->tls_key) == 0)
			sv_warn("finished the TLS key swap a crash cut short: %s is the new key",
			    kp->cfg->tls_key);
		else
			sv_err("finishing the TLS key swap: %s: %s", path, strerror(errno));
	} else if (unlink(path) == 0)
		sv_warn("dropped %s: a TLS key swap cut short before its certificate", path);
	ERR_clear_error();
	EVP_PKEY_free(next);
	X509_free(leaf);
}

/* The certificate of cas that signed x, or NULL. */
static X509 *
signer_of(X509 *x, STACK_OF(X509) * cas)
{
	X509 *found = NULL;
	int i;

	for (i = 0; i < sk_X509_num(cas) && found == NULL; i++)
		if (X509_verify(x, X509_get0_pubkey(sk_X509_value(cas, i))) == 1)
			found = sk_X509_value(cas, i);
	ERR_clear_error();
	return found;
}

/* The token key (hsm_pkey()) of the version of vault.shadow-ca whose certificate ca is. */
static int
ca_priv_of(struct kp *kp, X509 *ca, EVP_PKEY **priv)
{
	EVP_PKEY *pub = NULL;
	struct ks_key k;
	int v, r;

	*priv = NULL;
	if (EVP_PKEY_eq(X509_get0_pubkey(ca), X509_get0_pubkey(kp->ca)) == 1) {
		*priv = kp->ca_priv;
		return EVP_PKEY_up_ref(kp->ca_priv) == 1 ? 0 : SV_ENOMEM;
	}
	for (v = kp->ca_version - 1; v >= 1; v--) {
		if (ks_get(kp->st, KS_CA_KEY, v, &k) != 0 || strcmp(k.state, "destroyed") == 0)
			continue;
		if ((r = hsm_key_public(kp->h, &k.hk, &pub)) != 0)
			return r;
		r = EVP_PKEY_eq(pub, X509_get0_pubkey(ca)) == 1;
		EVP_PKEY_free(pub);
		if (r)
			return hsm_pkey(kp->h, &k.hk, priv);
	}
	sv_clearerr();
	return sv_seterr(SV_ESTATE, "no version of %s in the token holds the key of %s", KS_CA_KEY,
	    "the CA that issued the TLS certificate");
}

/*
 * The vault's TLS server certificate, reissued for the same key and the
 * names of tls.names if one of the CA certificates `from` issued it and,
 * when due_only, its renewal window (tls.renew_days, common/renewal.h) has
 * begun.  By the current CA if to_current (a CA version being destroyed),
 * else by the same CA as before: during a CA rotation, shadows that have not
 * taken the new CA yet must still trust the server.  *chain is the new
 * chain's PEM, written to the certificate file (NULL: nothing done, and
 * *skip says why).  The file may be the administrator's own (a certificate
 * from elsewhere, a chain with comments): read leniently, and judged only by
 * who signed its first certificate.
 */
static int
reissue_server(struct kp *kp, STACK_OF(X509) * from, int to_current, int due_only, EVP_PKEY *newkey,
    char **chain, const char **skip)
{
	const char *dns[VCONF_MAX_TLS_NAMES], *ips[VCONF_MAX_TLS_NAMES];
	STACK_OF(X509) *two = NULL;
	struct sca_profile p;
	X509 *leaf = NULL, *cert = NULL, *issuer;
	EVP_PKEY *priv = NULL;
	int in_token = vconf_tls_in_token(kp->cfg), r;

	*chain = NULL;
	*skip = NULL;
	if ((r = tls_leaf(kp, &leaf)) != 0)
		return sv_preferr(r, "the TLS certificate");
	if ((issuer = signer_of(leaf, from)) == NULL) {
		*skip = "not issued by the shadow CA";
		goto out;
	}
	if (due_only && time(NULL) < sv_cert_renew_from(leaf, kp->cfg->tls_renew_days)) {
		*skip = "not due";
		goto out;
	}
	if (to_current)
		issuer = kp->ca;
	if ((r = ca_priv_of(kp, issuer, &priv)) != 0)
		goto out;
	sca_profile_server(&p, kp->cfg->tls_names, (size_t)kp->cfg->ntls_names, dns, ips);
	if ((r = sca_issue_key(
		 priv, issuer, newkey ? newkey : X509_get0_pubkey(leaf), &p, &cert)) != 0)
		goto out;
	if ((two = sk_X509_new_null()) == NULL || sk_X509_push(two, cert) <= 0) {
		r = SV_ENOMEM;
		goto out;
	}
	cert = NULL;
	if (sk_X509_push(two, issuer) <= 0) {
		r = SV_ENOMEM;
		goto out;
	}
	X509_up_ref(issuer);
	/* A new key file goes to tls.key.next first; a new token key is already in the token. */
	if ((r = sca_bundle_pem(two, chain)) == 0 && newkey != NULL && !in_token)
		r = key_next_write(kp, newkey);
	if (r == 0)
		r = sv_write_file_atomic(kp->cfg->tls_cert, *chain, strlen(*chain), 0644);
	/* The certificate is for the key in tls.key.next now: it takes tls.key's place. */
	if (r == 0 && newkey != NULL && !in_token)
		r = key_next_swap(kp);
	if (r != 0) {
		free(*chain);
		*chain = NULL;
	}
out:
	sk_X509_pop_free(two, X509_free);
	EVP_PKEY_free(priv);
	X509_free(leaf);
	X509_free(cert);
	ERR_clear_error();
	return r ? sv_preferr(r, "reissuing %s", kp->cfg->tls_cert) : 0;
}

/* Serial and notAfter of the first certificate of a chain we made, into res. */
static void
describe(const char *chain, json_t *res)
{
	STACK_OF(X509) *sk = NULL;
	char serial[SCA_HEX_MAX];

	if (sca_chain_parse(chain, strlen(chain), &sk) == 0 &&
	    sca_serial_hex(sk_X509_value(sk, 0), serial, sizeof(serial)) == 0) {
		json_object_set_new(res, "serial", json_string(serial));
		json_object_set_new(res, "not_after",
		    json_integer(
			(json_int_t)sv_asn1_time(X509_get0_notAfter(sk_X509_value(sk, 0)))));
	}
	sk_X509_pop_free(sk, X509_free);
}

int
kp_ca_tls_renew(struct kp *kp, int due_only, int new_key, json_t **result)
{
	STACK_OF(X509) *sk = NULL;
	const char *skip = NULL;
	EVP_PKEY *key = NULL;
	char *chain = NULL, *kpem = NULL, name[SV_NAME_MAX + 1];
	struct ks_key pend = { .version = 0 };
	int in_token = vconf_tls_in_token(kp->cfg), r;

	*result = NULL;
	if (new_key && in_token)
		r = token_stage(kp, name, &pend, &key);
	else if (new_key && ((key = EVP_EC_gen("P-256")) == NULL || key_pem(key, &kpem) != 0))
		r = key ? SV_ENOMEM : sv_seterr_ssl(SV_ECRYPTO, "making the new TLS key");
	else
		r = 0;
	if (r == 0 && (r = read_bundle(kp, &sk)) == 0)
		r = reissue_server(kp, sk, 0, due_only, key, &chain, &skip);
	if (r == 0 && chain == NULL && !due_only)
		r = sv_seterr(SV_ESTATE,
		    "%s is %s: renew it where it came from (vaultd only renews what its CA issued)",
		    kp->cfg->tls_cert, skip);
	/* A staged token key with no certificate for it: nothing will use it. */
	if (r != 0 && chain == NULL && pend.version != 0 &&
	    ks_destroy(kp->st, kp->h, name, pend.version) == 0)
		kp_tls_drop(kp, name, pend.version);
	/* The certificate is written: the staged key is the TLS key (token_recover() otherwise). */
	if (r == 0 && pend.version != 0 && (r = token_promote(kp, name, &pend)) != 0)
		r = sv_preferr(r, "%s holds %s, made current at the next start", kp->cfg->tls_cert,
		    pend.hk.label);
	if (r == 0 &&
	    (*result = json_pack(
		 "{s:b, s:b}", "renewed", chain != NULL, "new_key", new_key != 0)) == NULL)
		r = SV_ENOMEM;
	if (r == 0 && chain != NULL) {
		describe(chain, *result);
		if (pend.version != 0)
			json_object_set_new(*result, "key", json_string(pend.hk.label));
		kp_push_peers_key(kp, chain, kpem);
		sv_info("TLS certificate %s renewed by the shadow CA%s%s", kp->cfg->tls_cert,
		    new_key ? ", for a new key in " : "",
		    new_key ? (in_token ? pend.hk.label : kp->cfg->tls_key) : "");
	}
	free(chain);
	if (kpem != NULL)
		sodium_free(kpem);
	EVP_PKEY_free(key);
	sk_X509_pop_free(sk, X509_free);
	return r;
}

void
kp_ca_status(struct kp *kp, json_t *out)
{
	char id[SV_NAME_MAX + 16], when[32] = "unreadable", name[SV_NAME_MAX + 1];
	struct ks_key k;
	X509 *leaf = NULL;
	time_t t;
	struct tm tm;

	snprintf(id, sizeof(id), "%s@v%d", KS_CA_KEY, kp->ca_version);
	json_object_set_new(out, "shadow_ca", json_string(id));
	json_object_set_new(out, "shadow_cas_trusted", json_integer(kp->ca_count));
	if (tls_leaf(kp, &leaf) == 0 && (t = sv_asn1_time(X509_get0_notAfter(leaf))) > 0 &&
	    gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	sv_clearerr(); /* an unreadable file is said as "unreadable" */
	json_object_set_new(out, "tls_cert_expires", json_string(when));
	X509_free(leaf);
	/* The key: its file, or the version of the token key the URI names now. */
	if (vconf_tls_in_token(kp->cfg) && ks_from_uri(kp->st, kp->cfg->tls_key, &k, name) == 0)
		json_object_set_new(out, "tls_key", json_string(k.hk.label));
	else
		json_object_set_new(out, "tls_key", json_string(kp->cfg->tls_key));
	sv_clearerr();
}

void
kp_ca_tls_check(struct kp *kp)
{
	json_t *res = NULL;
	int r;

	if ((r = kp_ca_tls_renew(kp, 1, 0, &res)) != 0) {
		sv_err("renewing the TLS certificate: %s (tried again in an hour)", sv_errmsg(r));
		return;
	}
	if (json_is_true(json_object_get(res, "renewed"))) {
		json_object_set_new(res, "op", json_string("tls.renew"));
		json_object_set_new(res, "by", json_string("vaultd"));
		json_object_set_new(res, "decision", json_string("done"));
		json_object_del(res, "renewed");
		json_object_del(res, "new_key");
		kp_audit(kp, "admin", res);
		res = NULL;
		/* Not fatal: the certificate is in place, and failing would not record it either.
		 */
		if ((r = kp_commit(kp)) != 0)
			sv_err("audit: the renewal of the TLS certificate is not recorded: %s",
			    sv_errmsg(r));
	}
	json_decref(res);
}

int
kp_ca_key_destroy(struct kp *kp, const json_t *req, json_t **result)
{
	const json_t *v = json_object_get(req, "version");
	STACK_OF(X509) *sk = NULL, *links = NULL, *old = NULL;
	EVP_PKEY *pub = NULL;
	json_t *holders = NULL;
	const char *skip;
	struct ks_key k;
	char *chain = NULL, *list = NULL;
	int version, i, r;

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
		return sv_seterr(SV_EINVAL, "key destroy needs the version to destroy");
	if (!json_is_true(json_object_get(req, "confirm")))
		return sv_seterr(SV_EINVAL, "key destroy must be confirmed (--yes)");
	version = (int)json_integer_value(v);
	if (version == kp->ca_version)
		return sv_seterr(SV_EDENIED,
		    "%s@v%d issues the shadows' certificates: rotate it first (vaultctl key rotate "
		    "%s)",
		    KS_CA_KEY, version, KS_CA_KEY);
	if ((r = ks_get(kp->st, KS_CA_KEY, version, &k)) == 0 && strcmp(k.state, "destroyed") == 0)
		return sv_seterr(SV_ESTATE, "%s@v%d is destroyed already", KS_CA_KEY, version);
	if (r != 0 || (r = version_public(kp, version, &k, &pub)) != 0)
		goto out;
	if ((r = shadows_on_ca(kp->st, version, (int64_t)time(NULL), &holders)) != 0)
		goto out;
	if (json_array_size(holders) > 0) {
		list = json_dumps(holders, JSON_COMPACT);
		r = sv_seterr(SV_ESTATE,
		    "%s@v%d issued certificates still valid for %zu shadow%s, which would be "
		    "locked "
		    "out: %.200s (each renews its identity at its next `shadow renew`; or revoke "
		    "it)",
		    KS_CA_KEY, version, json_array_size(holders),
		    json_array_size(holders) == 1 ? "" : "s", list ? list : "?");
		goto out;
	}
	if ((r = read_bundle(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0)
		goto out;
	/* Version N's certificate alone as `from` (none left: a retry past that step). */
	if ((old = sk_X509_new_null()) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	if ((i = find_key(sk, pub)) >= 0 && sk_X509_push(old, sk_X509_value(sk, i)) <= 0) {
		r = SV_ENOMEM;
		goto out;
	}
	if ((r = reissue_server(kp, old, 1, 0, NULL, &chain, &skip)) != 0)
		goto out;
	drop_key(sk, pub);
	keep_links(links, sk);
	if (sk_X509_num(sk) == 0)
		r = sv_seterr(SV_ESTATE, "%s would trust no CA", kp->cfg->ca_cert);
	else if ((r = write_bundle(kp, sk)) == 0 &&
	    (r = write_certs(kp->cfg->ca_links, links)) == 0 &&
	    (r = ks_destroy(kp->st, kp->h, KS_CA_KEY, version)) == 0)
		r = kp_ca_load(kp);
	/* netproc follows what is on disk, even when a later step failed. */
	kp_push_peers(kp, chain);
	if (r != 0)
		goto out;
	sv_info("shadow CA %s@v%d destroyed%s: %d CA certificates trusted", KS_CA_KEY, version,
	    chain ? ", TLS server certificate reissued" : "", kp->ca_count);
	*result =
	    json_pack("{s:s, s:i, s:s, s:b, s:i}", "name", KS_CA_KEY, "version", version, "state",
		"destroyed", "server_certificate_reissued", chain != NULL, "trusted", kp->ca_count);
out:
	free(list);
	free(chain);
	json_decref(holders);
	EVP_PKEY_free(pub);
	sk_X509_pop_free(sk, X509_free);
	sk_X509_free(old); /* borrowed from sk */
	sk_X509_pop_free(links, X509_free);
	return r;
}
