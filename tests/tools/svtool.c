/*
 * svtool: test-only helper that needs the vault's token while vaultd is
 * stopped (one process owns a SoftHSM token at a time).  It makes inputs
 * the product refuses to make:
 *
 *   svtool CONFIG csr KEYNAME DNSNAME   a CSR for DNSNAME signed by the token key
 *                                       KEYNAME (an account key), base64url DER
 *   svtool CONFIG expired CN KEYPEM     a client certificate for the key in KEYPEM
 *                                       from the shadow CA, expired yesterday (PEM)
 *   svtool CONFIG reissue CERTPEM KEYPEM
 *                                       the certificate in CERTPEM (its subject,
 *                                       serial, dates and extensions) for the key in
 *                                       KEYPEM, signed by the shadow CA (PEM): a
 *                                       second certificate with an issued serial
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "b64.h"
#include "fileio.h"
#include "hsm.h"
#include "keystore.h"
#include "shadowca.h"
#include "state.h"
#include "sv_err.h"
#include "vconf.h"

static int
csr(struct hsm *h, struct state *st, const char *key, const char *dns)
{
	struct ks_key k;
	EVP_PKEY *priv = NULL, *pub = NULL;
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	char san[300], *b = NULL;
	unsigned char *der = NULL;
	int len, r;

	snprintf(san, sizeof(san), "DNS:%s", dns);
	if ((r = ks_get(st, key, 0, &k)) != 0 || (r = hsm_key_public(h, &k.hk, &pub)) != 0 ||
	    (r = hsm_pkey(h, &k.hk, &priv)) != 0)
		goto out;
	sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san));
	X509_REQ_add_extensions(req, exts);
	X509_REQ_set_pubkey(req, pub);
	if (X509_REQ_sign(req, priv, EVP_sha256()) <= 0 || (len = i2d_X509_REQ(req, &der)) <= 0) {
		r = sv_seterr_ssl(SV_ECRYPTO, "csr");
		goto out;
	}
	if ((r = b64u_encode(der, (size_t)len, &b)) == 0)
		puts(b);
out:
	free(b);
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	return r;
}

/* The shadow CA's certificate and its current key (in the token). */
static int
ca_load(const struct vconf *cfg, struct hsm *h, struct state *st, X509 **ca, EVP_PKEY **ca_priv)
{
	struct ks_key k;
	uint8_t *pem = NULL;
	size_t len;
	int r;

	if ((r = ks_get(st, KS_CA_KEY, 0, &k)) == 0 && (r = hsm_pkey(h, &k.hk, ca_priv)) == 0 &&
	    (r = sv_read_file(cfg->ca_cert, 65536, &pem, &len)) == 0)
		r = sca_cert_parse_pem((const char *)pem, len, ca);
	free(pem);
	return r;
}

static int
key_load(const char *keyfile, EVP_PKEY **key)
{
	FILE *f = fopen(keyfile, "r");

	*key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return *key ? 0 : sv_seterr(SV_EINVAL, "%s: no key", keyfile);
}

static int
expired(
    const struct vconf *cfg, struct hsm *h, struct state *st, const char *cn, const char *keyfile)
{
	EVP_PKEY *ca_priv = NULL, *leaf = NULL;
	X509 *ca = NULL, *x = X509_new();
	int r;

	if ((r = ca_load(cfg, h, st, &ca, &ca_priv)) != 0 || (r = key_load(keyfile, &leaf)) != 0)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_NAME_add_entry_by_txt(
	    X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(x), -2 * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), -86400);
	X509_set_pubkey(x, leaf);
	if (X509_sign(x, ca_priv, EVP_sha256()) <= 0 || PEM_write_X509(stdout, x) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "expired certificate");
out:
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(leaf);
	EVP_PKEY_free(ca_priv);
	return r;
}

static int
reissue(const struct vconf *cfg, struct hsm *h, struct state *st, const char *certfile,
    const char *keyfile)
{
	EVP_PKEY *ca_priv = NULL, *leaf = NULL;
	X509 *ca = NULL, *x = NULL;
	FILE *f;
	int r;

	if ((r = ca_load(cfg, h, st, &ca, &ca_priv)) != 0 || (r = key_load(keyfile, &leaf)) != 0)
		goto out;
	if ((f = fopen(certfile, "r")) != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x == NULL) {
		r = sv_seterr(SV_EINVAL, "%s: no certificate", certfile);
		goto out;
	}
	if (X509_set_pubkey(x, leaf) != 1 || X509_sign(x, ca_priv, EVP_sha256()) <= 0 ||
	    PEM_write_X509(stdout, x) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "reissued certificate");
out:
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(leaf);
	EVP_PKEY_free(ca_priv);
	return r;
}

int
main(int argc, char **argv)
{
	struct vconf cfg;
	struct hsm *h = NULL;
	struct state *st = NULL;
	int r;

	if (argc != 5 || sodium_init() < 0) {
		fprintf(stderr,
		    "usage: svtool CONFIG csr KEYNAME DNSNAME | expired CN KEYPEM | "
		    "reissue CERTPEM KEYPEM\n");
		return 2;
	}
	if ((r = vconf_load(argv[1], &cfg)) == 0 && (r = hsm_open(&cfg.hsm, &h)) == 0 &&
	    (r = state_open(cfg.db_path, 0, &st)) == 0) {
		if (strcmp(argv[2], "csr") == 0)
			r = csr(h, st, argv[3], argv[4]);
		else if (strcmp(argv[2], "expired") == 0)
			r = expired(&cfg, h, st, argv[3], argv[4]);
		else if (strcmp(argv[2], "reissue") == 0)
			r = reissue(&cfg, h, st, argv[3], argv[4]);
		else
			r = sv_seterr(SV_EINVAL, "unknown command");
	}
	if (r != 0)
		fprintf(stderr, "svtool: %s\n", sv_errmsg(r));
	state_close(st);
	hsm_close(h);
	vconf_free(&cfg);
	return r ? 1 : 0;
}
