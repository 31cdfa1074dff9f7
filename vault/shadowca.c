/*
 * shadowca.c: the vault's shadow CA (see shadowca.h).  Builds certificates
 * with OpenSSL's X509 and X509V3 APIs and has them signed by an EVP_PKEY that
 * is normally a libp11 engine key, so the signature is made in the token.
 * Every certificate is checked against the CA's public key before it leaves,
 * which also catches a token key that does not match the CA certificate.
 * Parses CSRs and certificates from shadows (untrusted, size-capped).
 * May touch: nothing but memory and OpenSSL's random generator.  Called by
 * vaultd's key process (enrollment, its own TLS certificate) and vaultctl.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "log.h"
#include "shadowca.h"
#include "sv_err.h"

#define SCA_SERIAL_BITS 128

/* PEM input never carries encrypted blocks here: refuse instead of prompting on a terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int
is_pem(const uint8_t *data, size_t len)
{
	static const char begin[] = "-----BEGIN";
	size_t i = 0;

	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	return len - i >= sizeof(begin) - 1 && memcmp(data + i, begin, sizeof(begin) - 1) == 0;
}

/* Whatever the PEM reader left in the memory BIO must be white space. */
static int
rest_is_blank(BIO *b)
{
	char *p;
	long n, i;

	n = BIO_get_mem_data(b, &p);
	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

/* The PEM reader skips whatever precedes a block it wants: the next thing must be a certificate. */
static int
next_is_cert(BIO *b)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	char *p;
	long n, i = 0;

	n = BIO_get_mem_data(b, &p);
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return n - i >= (long)sizeof(begin) - 1 && memcmp(p + i, begin, sizeof(begin) - 1) == 0;
}

static int
size_check(size_t len, const char *what)
{
	if (len == 0)
		return sv_seterr(SV_EINVAL, "%s: empty input", what);
	if (len > SCA_PEM_MAX)
		return sv_seterr(
		    SV_ETOOBIG, "%s: %zu bytes: at most %d accepted", what, len, SCA_PEM_MAX);
	return 0;
}

/* Key types a certificate may carry: EC P-256/P-384, RSA in range, Ed25519. */
static int
key_check(EVP_PKEY *k, const char *what)
{
	char group[64];
	int bits, nid;

	if (k == NULL)
		return sv_seterr(SV_EINVAL, "%s: no public key", what);
	if (EVP_PKEY_is_a(k, "ED25519"))
		return 0;
	if (EVP_PKEY_is_a(k, "EC")) {
		if (EVP_PKEY_get_group_name(k, group, sizeof(group), NULL) != 1) {
			ERR_clear_error();
			return sv_seterr(SV_EDENIED, "%s: EC key without a named curve", what);
		}
		nid = OBJ_sn2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1)
			return 0;
		return sv_seterr(SV_EDENIED,
		    "%s: EC key on curve %s: only P-256 and P-384 accepted", what, group);
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		bits = EVP_PKEY_get_bits(k);
		if (bits < SCA_RSA_MIN_BITS)
			return sv_seterr(SV_EDENIED, "%s: RSA key of %d bits: at least %d required",
			    what, bits, SCA_RSA_MIN_BITS);
		if (bits > SCA_RSA_MAX_BITS)
			return sv_seterr(SV_EDENIED, "%s: RSA key of %d bits: at most %d accepted",
			    what, bits, SCA_RSA_MAX_BITS);
		return 0;
	}
	return sv_seterr(SV_EDENIED,
	    "%s: %s key: only EC P-256/P-384, RSA and Ed25519 keys accepted", what,
	    OBJ_nid2sn(EVP_PKEY_get_base_id(k)));
}

/* Digest the CA signs with: SHA-384 for P-384, SHA-256 for P-256 and RSA. */
static int
ca_digest(EVP_PKEY *pub, const EVP_MD **md)
{
	char group[64];

	*md = NULL;
	if (EVP_PKEY_is_a(pub, "RSA")) {
		*md = EVP_sha256();
		return 0;
	}
	if (EVP_PKEY_is_a(pub, "EC") &&
	    EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL) == 1) {
		if (OBJ_sn2nid(group) == NID_X9_62_prime256v1)
			*md = EVP_sha256();
		else if (OBJ_sn2nid(group) == NID_secp384r1)
			*md = EVP_sha384();
	}
	ERR_clear_error();
	if (*md == NULL)
		return sv_seterr(SV_EUNSUPP,
		    "shadow CA: the CA key must be EC P-256, EC P-384 or RSA (the token signs "
		    "certificates through the pkcs11 engine, which cannot sign EdDSA)");
	return 0;
}

static int
days_check(int days)
{
	if (days < 1 || days > SCA_DAYS_MAX)
		return sv_seterr(SV_EINVAL, "shadow CA: validity of %d days: 1 to %d allowed", days,
		    SCA_DAYS_MAX);
	return 0;
}

static int
cn_check(const char *cn)
{
	char esc[2 * SCA_CN_MAX];
	size_t i, len;

	if (cn == NULL || (len = strlen(cn)) == 0)
		return sv_seterr(SV_EINVAL, "shadow CA: empty subject CN");
	for (i = 0; i < len; i++)
		if (cn[i] < 0x20 || cn[i] > 0x7e)
			break;
	if (len > SCA_CN_MAX || i < len)
		return sv_seterr(SV_EINVAL,
		    "shadow CA: subject CN \"%s\": 1 to %d printable ASCII characters allowed",
		    sv_escape(cn, len, esc, sizeof(esc)), SCA_CN_MAX);
	return 0;
}

/* A host name: dot-separated labels of [A-Za-z0-9-], 1..63 long, no '-' at either end. */
static int
dns_check(const char *name)
{
	char esc[2 * SCA_CN_MAX];
	size_t i, len, lab = 0;

	len = name == NULL ? 0 : strlen(name);
	for (i = 0; i < len && len <= SCA_DNS_MAX; i++) {
		char c = name[i];

		if (c == '.') {
			if (lab == 0 || name[i - 1] == '-')
				break;
			lab = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c == '-' && lab > 0)) {
			if (++lab > 63)
				break;
		} else
			break;
	}
	if (len == 0 || len > SCA_DNS_MAX || i < len || lab == 0 || name[len - 1] == '-')
		return sv_seterr(SV_EINVAL, "shadow CA: dNSName \"%s\": not a host name",
		    name == NULL ? "" : sv_escape(name, len, esc, sizeof(esc)));
	return 0;
}

static int
profile_check(const struct sca_profile *p)
{
	size_t i;
	int r;

	if (p == NULL)
		return sv_seterr(SV_EINVAL, "shadow CA: no profile");
	if ((r = cn_check(p->cn)) != 0 || (r = days_check(p->days)) != 0)
		return r;
	if ((p->ndns > 0 && p->dns == NULL) || (p->nips > 0 && p->ips == NULL))
		return sv_seterr(SV_EINVAL, "shadow CA: subjectAltName count without a list");
	if (p->ndns > SCA_SAN_MAX || p->nips > SCA_SAN_MAX - p->ndns)
		return sv_seterr(SV_EINVAL, "shadow CA: %zu subjectAltName entries: at most %d",
		    p->ndns + p->nips, SCA_SAN_MAX);
	for (i = 0; i < p->ndns; i++)
		if ((r = dns_check(p->dns[i])) != 0)
			return r;
	return 0;
}

/* Random positive serial of up to SCA_SERIAL_BITS bits (never zero). */
static int
set_serial(X509 *x)
{
	BIGNUM *bn;
	int r = 0;

	if ((bn = BN_new()) == NULL)
		return SV_ENOMEM;
	do {
		if (BN_rand(bn, SCA_SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
			r = sv_seterr_ssl(SV_ECRYPTO, "shadow CA: random serial");
			goto out;
		}
	} while (BN_is_zero(bn));
	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		r = sv_seterr_ssl(SV_ECRYPTO, "shadow CA: serial");
out:
	BN_free(bn);
	return r;
}

/* Version 3, serial, subject CN=cn, issuer (issuer's subject, or the subject), validity, key. */
static int
cert_new(EVP_PKEY *pub, const char *cn, int days, X509 *issuer, X509 **out)
{
	X509 *x;
	X509_NAME *name;
	int r;

	*out = NULL;
	if ((x = X509_new()) == NULL)
		return SV_ENOMEM;
	if ((r = set_serial(x)) != 0)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_NID(
		name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -SCA_SKEW_SECONDS) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL ||
	    X509_set_pubkey(x, pub) != 1) {
		r = sv_seterr_ssl(SV_ECRYPTO, "shadow CA: building the certificate");
		goto out;
	}
	*out = x;
	x = NULL;
out:
	X509_free(x);
	return r;
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value)) == NULL)
		return sv_seterr_ssl(SV_ECRYPTO, "shadow CA: extension");
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return sv_seterr_ssl(SV_ECRYPTO, "shadow CA: adding an extension");
	return 0;
}

/* One GENERAL_NAME: an IA5 dNSName or the 4/16 bytes of an iPAddress. */
static int
push_name(GENERAL_NAMES *gens, int type, const char *text)
{
	char esc[64];
	uint8_t ip[16];
	size_t iplen = 0;
	ASN1_STRING *s = NULL;
	GENERAL_NAME *g = NULL;

	if (type == GEN_IPADD) {
		if (text != NULL && inet_pton(AF_INET, text, ip) == 1)
			iplen = 4;
		else if (text != NULL && inet_pton(AF_INET6, text, ip) == 1)
			iplen = 16;
		else
			return sv_seterr(SV_EINVAL,
			    "shadow CA: iPAddress \"%s\": not an IP address",
			    text == NULL ? "" : sv_escape(text, strlen(text), esc, sizeof(esc)));
	}
	s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
	if (s == NULL || (g = GENERAL_NAME_new()) == NULL ||
	    (type == GEN_IPADD ? ASN1_OCTET_STRING_set(s, ip, (int)iplen)
			       : ASN1_STRING_set(s, text, -1)) != 1) {
		ASN1_STRING_free(s);
		GENERAL_NAME_free(g);
		return SV_ENOMEM;
	}
	GENERAL_NAME_set0_value(g, type, s);
	if (sk_GENERAL_NAME_push(gens, g) <= 0) {
		GENERAL_NAME_free(g);
		return SV_ENOMEM;
	}
	return 0;
}

/* subjectAltName from the profile (non-critical: the subject is not empty); none if empty. */
static int
add_san(X509 *x, const struct sca_profile *p)
{
	GENERAL_NAMES *gens;
	size_t i;
	int r = 0;

	if (p->ndns == 0 && p->nips == 0)
		return 0;
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return SV_ENOMEM;
	for (i = 0; i < p->ndns && r == 0; i++)
		r = push_name(gens, GEN_DNS, p->dns[i]);
	for (i = 0; i < p->nips && r == 0; i++)
		r = push_name(gens, GEN_IPADD, p->ips[i]);
	if (r == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "shadow CA: subjectAltName");
	GENERAL_NAMES_free(gens);
	return r;
}

/* Sign (in the token, for an engine key) and check the result with the CA's public key. */
static int
cert_sign(X509 *x, EVP_PKEY *priv, EVP_PKEY *pub, const EVP_MD *md)
{
	if (X509_sign(x, priv, md) <= 0)
		return sv_seterr_ssl(SV_ECRYPTO, "shadow CA: signing the certificate");
	if (X509_verify(x, pub) != 1)
		return sv_seterr_ssl(SV_ECRYPTO,
		    "shadow CA: the new certificate's signature does not verify with the CA's "
		    "public key (the signing key does not match the CA certificate)");
	return 0;
}

/*
 * A CA's extensions: basicConstraints critical CA:TRUE pathlen:0, keyUsage
 * critical keyCertSign and cRLSign, a subject key identifier, and for a link
 * (issuer not NULL: another CA certifies this one) its authority key identifier.
 */
static int
ca_exts(X509 *x, X509 *issuer)
{
	X509V3_CTX ctx;
	int r;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) != 0 ||
	    (r = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) != 0 ||
	    (r = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0)
		return r;
	return issuer ? add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") : 0;
}

int
sca_make_ca(EVP_PKEY *ca_priv, EVP_PKEY *ca_pub, const char *cn, int days, X509 **out)
{
	const EVP_MD *md;
	X509 *x = NULL;
	int r;

	*out = NULL;
	if (ca_priv == NULL || ca_pub == NULL)
		return sv_seterr(SV_EINVAL, "shadow CA: no CA key");
	if ((r = cn_check(cn)) != 0 || (r = days_check(days)) != 0 ||
	    (r = ca_digest(ca_pub, &md)) != 0 || (r = cert_new(ca_pub, cn, days, NULL, &x)) != 0)
		goto out;
	if ((r = ca_exts(x, NULL)) != 0 || (r = cert_sign(x, ca_priv, ca_pub, md)) != 0)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	return r;
}

int
sca_cross(EVP_PKEY *old_priv, X509 *old_ca, X509 *new_ca, X509 **out)
{
	char cn[SCA_CN_MAX + 1];
	const EVP_MD *md;
	EVP_PKEY *oldpub;
	X509 *x = NULL;
	int r;

	*out = NULL;
	if (old_priv == NULL || old_ca == NULL || new_ca == NULL)
		return sv_seterr(SV_EINVAL, "shadow CA: a link needs the old CA and the new one");
	oldpub = X509_get0_pubkey(old_ca);
	if (X509_NAME_get_text_by_NID(
		X509_get_subject_name(new_ca), NID_commonName, cn, (int)sizeof(cn)) <= 0)
		return sv_seterr(SV_EINVAL, "shadow CA: the new CA has no common name");
	if ((r = ca_digest(oldpub, &md)) != 0 ||
	    (r = cert_new(X509_get0_pubkey(new_ca), cn, SCA_CA_DAYS, old_ca, &x)) != 0)
		goto out;
	if ((r = ca_exts(x, old_ca)) != 0 || (r = cert_sign(x, old_priv, oldpub, md)) != 0)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	return r;
}

/* Key policy and self-signature of a CSR. */
static int
csr_check(X509_REQ *req)
{
	EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
	int r;

	if ((r = key_check(pk, "CSR")) != 0)
		return r;
	if (X509_REQ_verify(req, pk) != 1)
		return sv_seterr_ssl(SV_EINVAL, "CSR: the self-signature does not verify");
	return 0;
}

int
sca_csr_parse(const uint8_t *data, size_t len, X509_REQ **out)
{
	const unsigned char *p = data;
	X509_REQ *req = NULL;
	BIO *b = NULL;
	int r;

	*out = NULL;
	if ((r = size_check(data == NULL ? 0 : len, "CSR")) != 0)
		return r;
	if (is_pem(data, len)) {
		if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
			return SV_ENOMEM;
		if ((req = PEM_read_bio_X509_REQ(b, NULL, no_passphrase, NULL)) == NULL)
			r = sv_seterr_ssl(SV_EINVAL, "CSR: not a PEM certificate request");
		else if (!rest_is_blank(b))
			r = sv_seterr(SV_EINVAL, "CSR: data after the PEM certificate request");
	} else if ((req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL)
		r = sv_seterr_ssl(SV_EINVAL, "CSR: neither PEM nor a DER certificate request");
	else if (p != data + len)
		r = sv_seterr(SV_EINVAL, "CSR: %zu bytes after the DER certificate request",
		    len - (size_t)(p - data));
	if (r == 0)
		r = csr_check(req);
	BIO_free(b);
	if (r != 0) {
		X509_REQ_free(req);
		return r;
	}
	*out = req;
	return 0;
}

/* Extensions of a leaf for key pub (the subject's), issued by ca. */
static int
leaf_exts(X509 *x, X509 *ca, EVP_PKEY *pub, const struct sca_profile *p)
{
	X509V3_CTX ctx;
	int r;

	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
	    (r = add_ext(x, &ctx, NID_key_usage,
		 EVP_PKEY_is_a(pub, "RSA") ? "critical,digitalSignature,keyEncipherment"
					   : "critical,digitalSignature")) != 0 ||
	    (r = add_ext(x, &ctx, NID_ext_key_usage, p->server ? "serverAuth" : "clientAuth")) !=
		0 ||
	    (r = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) != 0)
		return r;
	return add_san(x, p);
}

int
sca_issue(EVP_PKEY *ca_priv, X509 *ca, X509_REQ *csr, const struct sca_profile *p, X509 **out)
{
	int r;

	*out = NULL;
	if (csr == NULL)
		return sv_seterr(SV_EINVAL, "shadow CA: issue needs a CA key, certificate and CSR");
	if ((r = csr_check(csr)) != 0)
		return r;
	return sca_issue_key(ca_priv, ca, X509_REQ_get0_pubkey(csr), p, out);
}

int
sca_issue_key(EVP_PKEY *ca_priv, X509 *ca, EVP_PKEY *pub, const struct sca_profile *p, X509 **out)
{
	EVP_PKEY *capub;
	const EVP_MD *md;
	X509 *x = NULL;
	int r;

	*out = NULL;
	if (ca_priv == NULL || ca == NULL || pub == NULL)
		return sv_seterr(SV_EINVAL, "shadow CA: issue needs a CA key, certificate and key");
	if (X509_check_ca(ca) == 0)
		return sv_seterr(SV_EINVAL, "shadow CA: the issuer certificate is not a CA");
	capub = X509_get0_pubkey(ca);
	if ((r = profile_check(p)) != 0 || (r = key_check(pub, "certificate key")) != 0 ||
	    (r = ca_digest(capub, &md)) != 0 || (r = cert_new(pub, p->cn, p->days, ca, &x)) != 0 ||
	    (r = leaf_exts(x, ca, pub, p)) != 0 || (r = cert_sign(x, ca_priv, capub, md)) != 0)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	return r;
}

int
sca_cert_pem(X509 *x, char **out)
{
	BIO *b;
	char *p;
	long n;
	int r = 0;

	*out = NULL;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return SV_ENOMEM;
	if (PEM_write_bio_X509(b, x) != 1 || (n = BIO_get_mem_data(b, &p)) <= 0) {
		r = sv_seterr_ssl(SV_ECRYPTO, "shadow CA: writing PEM");
		goto out;
	}
	if ((*out = malloc((size_t)n + 1)) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
out:
	BIO_free(b);
	return r;
}

int
sca_cert_parse_pem(const char *pem, size_t len, X509 **out)
{
	X509 *x = NULL;
	BIO *b;
	int r;

	*out = NULL;
	if ((r = size_check(pem == NULL ? 0 : len, "certificate")) != 0)
		return r;
	if (!is_pem((const uint8_t *)pem, len))
		return sv_seterr(SV_EINVAL, "certificate: not PEM (no \"-----BEGIN\" line)");
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return SV_ENOMEM;
	if ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) == NULL)
		r = sv_seterr_ssl(SV_EINVAL, "certificate: not a PEM certificate");
	else if (!rest_is_blank(b))
		r = sv_seterr(SV_EINVAL, "certificate: data after the PEM certificate");
	BIO_free(b);
	if (r != 0) {
		X509_free(x);
		return r;
	}
	*out = x;
	return 0;
}

int
sca_serial_hex(const X509 *x, char *buf, size_t n)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if (n > 0)
		buf[0] = '\0';
	if (ASN1_STRING_type(s) == V_ASN1_NEG_INTEGER)
		return sv_seterr(SV_EINVAL, "certificate: negative serial number");
	while (len > 0 && d[0] == 0) {
		d++;
		len--;
	}
	if (n < 3 || (size_t)len > (n - 1) / 2)
		return sv_seterr(SV_EINVAL, "certificate: serial number of %d bytes: no room", len);
	if (len == 0) {
		memcpy(buf, "00", 3);
		return 0;
	}
	sodium_bin2hex(buf, n, d, (size_t)len);
	return 0;
}

int
sca_fingerprint(const X509 *x, char *buf, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (n > 0)
		buf[0] = '\0';
	if (n < SCA_HEX_MAX)
		return sv_seterr(SV_EINVAL, "certificate fingerprint: buffer of %zu bytes", n);
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		return sv_seterr_ssl(SV_ECRYPTO, "certificate fingerprint");
	sodium_bin2hex(buf, n, md, mdlen);
	return 0;
}

int
sca_verify(X509 *ca, X509 *leaf, int server)
{
	X509_STORE *st = NULL;
	X509_STORE_CTX *ctx = NULL;
	int err, r = 0;

	if (ca == NULL || leaf == NULL)
		return sv_seterr(SV_EINVAL, "certificate verify: no CA or no certificate");
	if ((st = X509_STORE_new()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	if (X509_STORE_add_cert(st, ca) != 1 || X509_STORE_CTX_init(ctx, st, leaf, NULL) != 1 ||
	    X509_STORE_CTX_set_purpose(
		ctx, server ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT) != 1 ||
	    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT) !=
		1) {
		r = sv_seterr_ssl(SV_ECRYPTO, "certificate verify: setting up");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		ERR_clear_error();
		if (err == X509_V_OK)
			r = sv_seterr(SV_ECRYPTO, "certificate verify: failed without a reason");
		else
			r = sv_seterr(SV_EDENIED, "certificate verify (as %s): %s",
			    server ? "server" : "client", X509_verify_cert_error_string(err));
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return r;
}

/* 1..SCA_BUNDLE_MAX PEM certificates; each a CA if cas (what names the input). */
static int
certs_parse(const char *pem, size_t len, int cas, const char *what, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	int r = 0;

	*out = NULL;
	if ((r = size_check(pem == NULL ? 0 : len, what)) != 0)
		return r;
	if (!is_pem((const uint8_t *)pem, len))
		return sv_seterr(SV_EINVAL, "%s: not PEM (no \"-----BEGIN\" line)", what);
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL || (sk = sk_X509_new_null()) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	while (!rest_is_blank(b)) {
		int n = sk_X509_num(sk) + 1;

		if (n > SCA_BUNDLE_MAX) {
			r = sv_seterr(
			    SV_ETOOBIG, "%s: more than %d certificates", what, SCA_BUNDLE_MAX);
			goto out;
		}
		if (!next_is_cert(b) ||
		    (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) == NULL) {
			r = sv_seterr(
			    SV_EINVAL, "%s: certificate %d: not a PEM certificate", what, n);
			goto out;
		}
		if (cas && X509_check_ca(x) == 0) {
			r = sv_seterr(
			    SV_EINVAL, "%s: certificate %d: not a CA certificate", what, n);
			goto out;
		}
		if (sk_X509_push(sk, x) <= 0) {
			r = SV_ENOMEM;
			goto out;
		}
		x = NULL;
	}
	*out = sk;
	sk = NULL;
out:
	ERR_clear_error();
	X509_free(x);
	sk_X509_pop_free(sk, X509_free);
	BIO_free(b);
	return r;
}

int
sca_bundle_parse(const char *pem, size_t len, STACK_OF(X509) * *out)
{
	return certs_parse(pem, len, 1, "CA bundle", out);
}

int
sca_chain_parse(const char *pem, size_t len, STACK_OF(X509) * *out)
{
	return certs_parse(pem, len, 0, "certificate chain", out);
}

int
sca_bundle_pem(STACK_OF(X509) * sk, char **out)
{
	size_t len = 0, n;
	char *all = NULL, *one, *grown;
	int i, r = 0;

	*out = NULL;
	for (i = 0; i < sk_X509_num(sk); i++) {
		if ((r = sca_cert_pem(sk_X509_value(sk, i), &one)) != 0)
			break;
		n = strlen(one);
		if ((grown = realloc(all, len + n + 1)) == NULL) {
			free(one);
			r = SV_ENOMEM;
			break;
		}
		all = grown;
		memcpy(all + len, one, n + 1);
		len += n;
		free(one);
	}
	if (r == 0 && all == NULL)
		r = sv_seterr(SV_EINVAL, "CA bundle: no certificate");
	if (r != 0) {
		free(all);
		return r;
	}
	*out = all;
	return 0;
}

void
sca_profile_server(
    struct sca_profile *p, char *const *names, size_t n, const char **dns, const char **ips)
{
	unsigned char ipbuf[16];
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < n; i++) {
		if (inet_pton(AF_INET, names[i], ipbuf) == 1 ||
		    inet_pton(AF_INET6, names[i], ipbuf) == 1)
			ips[p->nips++] = names[i];
		else
			dns[p->ndns++] = names[i];
	}
	p->cn = n > 0 ? names[0] : NULL;
	p->dns = dns;
	p->ips = ips;
	p->days = SCA_TLS_DAYS;
	p->server = 1;
}
