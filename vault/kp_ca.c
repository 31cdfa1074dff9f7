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
 * The TLS server certificate is renewed in kp_tlscert.c, which this file
 * asks to reissue it when a CA version is destroyed.
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

#include "fileio.h"
#include "keyproc.h"
#include "keystore.h"
#include "log.h"
#include "shadowca.h"
#include "shadows.h"
#include "sv_err.h"
#include "vconf.h"

/* The bundle in ca.pem (keyproc.h). */
int
kp_ca_bundle_read(struct kp *kp, STACK_OF(X509) * *out)
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

	if ((r = kp_ca_bundle_read(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0 ||
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

	if ((r = kp_ca_bundle_read(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0 ||
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

/* The token key (hsm_pkey()) of the version of vault.shadow-ca whose certificate ca is. */
int
kp_ca_priv_of(struct kp *kp, X509 *ca, EVP_PKEY **priv)
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

void
kp_ca_status(struct kp *kp, json_t *out)
{
	char id[SV_NAME_MAX + 16];

	snprintf(id, sizeof(id), "%s@v%d", KS_CA_KEY, kp->ca_version);
	json_object_set_new(out, "shadow_ca", json_string(id));
	json_object_set_new(out, "shadow_cas_trusted", json_integer(kp->ca_count));
	kp_tlscert_status(kp, out);
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
	if ((r = kp_ca_bundle_read(kp, &sk)) != 0 || (r = read_links(kp, &links)) != 0)
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
	if ((r = kp_tlscert_reissue(kp, old, 1, 0, NULL, &chain, &skip)) != 0)
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
