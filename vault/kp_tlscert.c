/*
 * kp_tlscert: the vault's TLS server certificate and key in the key process.
 *
 * The certificate comes from the shadow CA (vaultctl init) and is reissued
 * here: in its last tls.renew_days days (kp_tlscert_check(), at start and
 * every hour), when `vaultctl tls renew` asks, and when the CA version that
 * issued it is destroyed (kp_ca.c).  `vaultctl tls renew --new-key` also
 * replaces the key: a new key file, or a new version of the key in the
 * token, each crash-safe (below).  A certificate the shadow CA did not issue
 * is never replaced.
 *
 * Touches the TLS certificate and key files, the token (the CA keys through
 * kp_ca_priv_of(), the TLS key's versions), the keys table, the handshake
 * thread's keys (kp_tls.c) and netproc (kp_push_peers_key()).
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
#include "sv_err.h"
#include "vconf.h"

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
 * tls.key.next renamed over tls.key.  After a crash, kp_tlscert_recover()
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
	struct ks_uri u;
	int r;

	if ((r = ks_uri_parse(kp->cfg->tls_key, &u)) != 0)
		return sv_preferr(r, "tls.key");
	if (u.version != 0 || u.have_id)
		return sv_seterr(SV_ESTATE,
		    "tls.key (%s) names one version of its key: a new version would not be served. "
		    "Name the key alone (object=%s, no id) and restart vaultd to let it rotate",
		    kp->cfg->tls_key, u.name);
	memcpy(name, u.name, sizeof(u.name));
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
kp_tlscert_key_destroy(struct kp *kp, const json_t *req, json_t **result)
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
kp_tlscert_recover(struct kp *kp)
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
int
kp_tlscert_reissue(struct kp *kp, STACK_OF(X509) * from, int to_current, int due_only,
    EVP_PKEY *newkey, char **chain, const char **skip)
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
	if ((r = kp_ca_priv_of(kp, issuer, &priv)) != 0)
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
kp_tlscert_renew(struct kp *kp, int due_only, int new_key, json_t **result)
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
	if (r == 0 && (r = kp_ca_bundle_read(kp, &sk)) == 0)
		r = kp_tlscert_reissue(kp, sk, 0, due_only, key, &chain, &skip);
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
kp_tlscert_status(struct kp *kp, json_t *out)
{
	char when[32] = "unreadable", name[SV_NAME_MAX + 1];
	struct ks_key k;
	X509 *leaf = NULL;
	time_t t;
	struct tm tm;

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
kp_tlscert_check(struct kp *kp)
{
	json_t *res = NULL;
	int r;

	if ((r = kp_tlscert_renew(kp, 1, 0, &res)) != 0) {
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
