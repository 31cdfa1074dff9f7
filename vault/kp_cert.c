/*
 * kp_cert: certificates for the vault's keys, as admin operations of the key
 * process (kp_admin.c's table; vaultctl cert ...).  A CSR is built here and
 * signed in the token by the current version of the named key (no OpenSSL
 * private key: the CertificationRequestInfo is signed with hsm_sign() and
 * the request checked against the public key before it leaves); an
 * imported chain is checked (certs.h), its leaf must hold that key and be
 * unexpired, and it is stored with the next sequence of the name.  Touches
 * the token (signing, public keys), the keys and certs tables and the audit
 * queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "bundle.h"
#include "certs.h"
#include "keyproc.h"
#include "log.h"
#include "renewal.h"
#include "sv_err.h"

/* Room the bundle header needs besides the chain (its other members, the JSON around them). */
#define HEADER_ROOM 512

/* Argument "name": a key name that is not one of the vault's own. */
static int
key_name(const json_t *req, const char **out)
{
	const json_t *v = json_object_get(req, "name");
	int r;

	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return sv_seterr(SV_EINVAL, "argument \"name\" missing or not a string");
	*out = json_string_value(v);
	if ((r = sv_name_check(*out, "key name")) != 0)
		return r;
	if (strncmp(*out, KS_INTERNAL_PREFIX, strlen(KS_INTERNAL_PREFIX)) == 0)
		return sv_seterr(SV_EDENIED,
		    "the vault's own keys (\"%s...\") have no certificates", KS_INTERNAL_PREFIX);
	return 0;
}

/* Argument "dns": 1 to CERTS_DNS_MAX DNS names, normalised into names[], no repeats. */
static int
dns_names(const json_t *req, char (*names)[POL_NAME_BUF], size_t *n)
{
	const json_t *a = json_object_get(req, "dns"), *v;
	size_t i, j;

	*n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		return sv_seterr(SV_EINVAL, "a CSR needs at least one DNS name (--dns)");
	if (json_array_size(a) > CERTS_DNS_MAX)
		return sv_seterr(SV_ETOOBIG, "%zu DNS names: at most %d in one CSR",
		    json_array_size(a), CERTS_DNS_MAX);
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) > POL_NAME_MAX + 1)
			return sv_seterr(SV_EINVAL,
			    "DNS name %zu is not a string of at most %d characters", i + 1,
			    POL_NAME_MAX);
		if (pol_name_normalize(json_string_value(v), names[i], POL_NAME_BUF) != 0)
			return sv_preferr(SV_EINVAL, "DNS name %zu", i + 1);
		for (j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return sv_seterr(SV_EINVAL, "DNS name %s is given twice", names[i]);
	}
	*n = json_array_size(a);
	if (strlen(names[0]) > CERTS_CN_MAX)
		return sv_seterr(SV_EINVAL,
		    "the first DNS name becomes the subject CN, which holds at most %d "
		    "characters: give a shorter name first",
		    CERTS_CN_MAX);
	return 0;
}

/* Subject CN = names[0], subjectAltName = every name, the public key. */
static int
csr_body(X509_REQ *req, char (*names)[POL_NAME_BUF], size_t n, EVP_PKEY *pub)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	X509_EXTENSION *ext = NULL;
	GENERAL_NAME *g;
	ASN1_IA5STRING *s;
	size_t i;
	int ok = exts != NULL && gens != NULL;

	for (i = 0; ok && i < n; i++) {
		g = GENERAL_NAME_new();
		s = ASN1_IA5STRING_new();
		if (g == NULL || s == NULL || ASN1_STRING_set(s, names[i], -1) != 1) {
			GENERAL_NAME_free(g);
			ASN1_IA5STRING_free(s);
			ok = 0;
			break;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s); /* g owns s */
		if (sk_GENERAL_NAME_push(gens, g) <= 0) {
			GENERAL_NAME_free(g);
			ok = 0;
		}
	}
	ok = ok && X509_REQ_set_version(req, X509_REQ_VERSION_1) == 1 &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
		(const unsigned char *)names[0], -1, -1, 0) == 1 &&
	    (ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) != NULL &&
	    sk_X509_EXTENSION_push(exts, ext) > 0 && X509_REQ_add_extensions(req, exts) == 1 &&
	    X509_REQ_set_pubkey(req, pub) == 1;
	if (ext != NULL && sk_X509_EXTENSION_num(exts) == 0)
		X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : sv_seterr_ssl(SV_ECRYPTO, "building the CSR");
}

/* The signature algorithm of a key type as hsm_sign() signs (JWS algs: SHA-256, SHA-384). */
static X509_ALGOR *
sig_algor(enum hsm_keytype t)
{
	X509_ALGOR *a = X509_ALGOR_new();
	int nid = NID_sha256WithRSAEncryption, ptype = V_ASN1_NULL;

	if (t == HSM_EC_P256 || t == HSM_EC_P384 || t == HSM_ED25519) {
		nid = t == HSM_EC_P256 ? NID_ecdsa_with_SHA256
		    : t == HSM_EC_P384 ? NID_ecdsa_with_SHA384
				       : NID_ED25519;
		ptype = V_ASN1_UNDEF; /* no parameters (RFC 5758, RFC 8410) */
	}
	if (a != NULL && X509_ALGOR_set0(a, OBJ_nid2obj(nid), ptype, NULL) != 1) {
		X509_ALGOR_free(a);
		a = NULL;
	}
	return a;
}

/* hsm_sign()'s raw r||s as the DER ECDSA-Sig-Value X.509 wants; *der OPENSSL_free()d. */
static int
ecdsa_der(const uint8_t *sig, size_t len, uint8_t **der, int *dlen)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)len / 2, NULL);
	BIGNUM *s = BN_bin2bn(sig + len / 2, (int)len / 2, NULL);

	*der = NULL;
	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return sv_seterr_ssl(SV_ECRYPTO, "encoding an ECDSA signature");
	}
	*dlen = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	return *dlen > 0 ? 0 : sv_seterr_ssl(SV_ECRYPTO, "encoding an ECDSA signature");
}

/* Put sig (raw, as hsm_sign() made it) into req as its signature. */
static int
set_signature(X509_REQ *req, enum hsm_keytype t, const uint8_t *sig, size_t len)
{
	ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
	uint8_t *der = NULL;
	int dlen = (int)len, r = 0;

	if (bs == NULL)
		return SV_ENOMEM;
	if ((t == HSM_EC_P256 || t == HSM_EC_P384) && (r = ecdsa_der(sig, len, &der, &dlen)) != 0)
		goto out;
	if (ASN1_BIT_STRING_set(bs, der != NULL ? der : (uint8_t *)sig, dlen) != 1) {
		r = SV_ENOMEM;
		goto out;
	}
	/* Whole bytes: no unused bits (else they would be counted from the last byte). */
	bs->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bs->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bs);
	bs = NULL;
out:
	OPENSSL_free(der);
	ASN1_BIT_STRING_free(bs);
	return r;
}

/* Sign req in the token with key k, then check it with the public key. */
static int
sign_req(struct kp *kp, struct ks_key *k, X509_REQ *req, EVP_PKEY *pub)
{
	X509_ALGOR *alg = sig_algor(k->hk.type);
	uint8_t *tbs = NULL, sig[HSM_SIG_MAX];
	size_t sl = sizeof(sig);
	int len, r;

	if (alg == NULL || X509_REQ_set1_signature_algo(req, alg) != 1 ||
	    (len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
		r = sv_seterr_ssl(SV_ECRYPTO, "encoding the CSR");
		goto out;
	}
	if ((r = hsm_sign(kp->h, &k->hk, tbs, (size_t)len, sig, &sl)) != 0 ||
	    (r = set_signature(req, k->hk.type, sig, sl)) != 0)
		goto out;
	if (X509_REQ_verify(req, pub) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "the CSR's signature does not verify");
out:
	OPENSSL_free(tbs);
	X509_ALGOR_free(alg);
	ERR_clear_error();
	return r;
}

static int
req_pem(X509_REQ *req, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;

	*out = NULL;
	if (b == NULL || PEM_write_bio_X509_REQ(b, req) != 1) {
		BIO_free(b);
		return sv_seterr_ssl(SV_ECRYPTO, "encoding the CSR");
	}
	len = BIO_get_mem_data(b, &data);
	if ((*out = strndup(data, (size_t)len)) == NULL) {
		BIO_free(b);
		return SV_ENOMEM;
	}
	BIO_free(b);
	return 0;
}

int
kp_cert_csr(struct kp *kp, const json_t *req, json_t **result)
{
	char(*names)[POL_NAME_BUF] = calloc(CERTS_DNS_MAX, POL_NAME_BUF);
	const char *name;
	EVP_PKEY *pub = NULL;
	X509_REQ *x = NULL;
	char *pem = NULL;
	struct ks_key k;
	json_t *dns;
	size_t n, i;
	int r;

	if (names == NULL)
		return SV_ENOMEM;
	if ((r = key_name(req, &name)) != 0 || (r = dns_names(req, names, &n)) != 0 ||
	    (r = ks_get(kp->st, name, 0, &k)) != 0 || (r = hsm_key_public(kp->h, &k.hk, &pub)) != 0)
		goto out;
	if ((x = X509_REQ_new()) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	if ((r = csr_body(x, names, n, pub)) != 0 || (r = sign_req(kp, &k, x, pub)) != 0 ||
	    (r = req_pem(x, &pem)) != 0)
		goto out;
	dns = json_array();
	for (i = 0; dns != NULL && i < n; i++)
		json_array_append_new(dns, json_string(names[i]));
	*result = json_pack("{s:s, s:i, s:o?, s:s}", "name", name, "key_version", k.version, "dns",
	    dns, "csr", pem);
	r = *result ? 0 : SV_ENOMEM;
	if (r == 0)
		sv_info("CSR for %s (key version %d, %zu name%s) signed for vaultctl", name,
		    k.version, n, n == 1 ? "" : "s");
out:
	free(pem);
	X509_REQ_free(x);
	EVP_PKEY_free(pub);
	free(names);
	return r;
}

/* The chain's bundle header must fit BUNDLE_HEADER_MAX: its JSON-escaped length. */
static int
fits_bundle(const char *pem)
{
	json_t *s = json_string(pem);
	char *esc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	size_t len = esc ? strlen(esc) : 0;

	free(esc);
	json_decref(s);
	if (len == 0)
		return SV_ENOMEM;
	if (len + HEADER_ROOM > BUNDLE_HEADER_MAX)
		return sv_seterr(SV_ETOOBIG,
		    "the chain takes %zu bytes in a bundle header, which holds %d: import "
		    "fewer certificates",
		    len, BUNDLE_HEADER_MAX - HEADER_ROOM);
	return 0;
}

/* The leaf must hold the current version of key name and not have expired. */
static int
leaf_check(struct kp *kp, X509 *leaf, const char *name, struct ks_key *k, int64_t *not_after)
{
	EVP_PKEY *pub = NULL;
	int r;

	*not_after = (int64_t)sv_asn1_time(X509_get0_notAfter(leaf));
	if ((r = ks_get(kp->st, name, 0, k)) != 0 || (r = hsm_key_public(kp->h, &k->hk, &pub)) != 0)
		return r;
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pub) != 1)
		r = sv_seterr(SV_EINVAL,
		    "the leaf certificate's public key is not that of key %s (version %d, the "
		    "current one): import the certificate issued for `vaultctl cert csr %s`",
		    name, k->version, name);
	else if (*not_after <= (int64_t)time(NULL))
		r = sv_seterr(SV_EINVAL, "the leaf certificate has expired (notAfter %lld)",
		    (long long)*not_after);
	ERR_clear_error();
	EVP_PKEY_free(pub);
	return r;
}

int
kp_cert_import(struct kp *kp, const json_t *req, json_t **result)
{
	const json_t *c = json_object_get(req, "chain");
	STACK_OF(X509) *chain = NULL;
	const char *name;
	char *pem = NULL;
	int64_t not_after, seq;
	struct ks_key k;
	int r;

	if ((r = key_name(req, &name)) != 0)
		return r;
	if (!json_is_string(c))
		return sv_seterr(SV_EINVAL, "argument \"chain\" missing or not a string");
	if ((r = certs_parse_chain(json_string_value(c), json_string_length(c), &chain)) != 0)
		return sv_preferr(r, "certificate chain");
	if ((r = leaf_check(kp, sk_X509_value(chain, 0), name, &k, &not_after)) != 0 ||
	    (r = certs_chain_pem(chain, &pem)) != 0 || (r = fits_bundle(pem)) != 0 ||
	    (r = certs_add(kp->st, name, k.version, pem, not_after, &seq)) != 0)
		goto out;
	kp_audit(kp, "cert",
	    json_pack("{s:s, s:s, s:I, s:i, s:I, s:i}", "op", "import", "name", name, "sequence",
		(json_int_t)seq, "key_version", k.version, "not_after", (json_int_t)not_after,
		"certificates", sk_X509_num(chain)));
	sv_info("certificate %s sequence %lld imported (key version %d)", name, (long long)seq,
	    k.version);
	*result = json_pack("{s:s, s:I, s:i, s:I, s:b}", "name", name, "sequence", (json_int_t)seq,
	    "key_version", k.version, "not_after", (json_int_t)not_after, "exportable",
	    k.exportable && k.hk.type != HSM_ED25519);
	r = *result ? 0 : SV_ENOMEM;
out:
	free(pem);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

int
kp_cert_list(struct kp *kp, const json_t *req, json_t **result)
{
	struct ks_key k;
	json_t *a, *e;
	size_t i;
	int r;

	if ((r = certs_list(kp->st, &a)) != 0)
		return r;
	json_array_foreach(a, i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		int v = (int)json_integer_value(json_object_get(e, "key_version"));
		int ok = ks_get(kp->st, name, v, &k) == 0;

		json_object_set_new(e, "key_state", json_string(ok ? k.state : "missing"));
		json_object_set_new(e, "exportable",
		    json_boolean(ok && k.exportable && k.hk.type != HSM_ED25519 &&
			strcmp(k.state, "destroyed") != 0));
	}
	*result = a;
	return 0;
}
