/*
 * The vault's shadow CA: a small X.509 certificate authority whose private
 * key stays in the HSM.  It issues the TLS client certificates by which
 * shadows authenticate to vaultd (at enrollment, from the shadow's CSR) and
 * the vault's own TLS server certificate, so a shadow trusts one CA file.
 *
 * The CA's private key is an EVP_PKEY from the libp11 engine
 * (hsm_engine_key()): OpenSSL calls back into the token for every signature.
 * Nothing here touches files, the network or the token directly.
 *
 * A CSR is used only as proof that the requester holds a private key: its
 * subject and requested extensions are ignored, and everything in an issued
 * certificate comes from a struct sca_profile that the vault fills in.
 *
 * All functions return 0 or a negative SV_E* code with a detail: SV_EINVAL for
 * malformed input or arguments, SV_ETOOBIG for input over SCA_PEM_MAX,
 * SV_EDENIED for refused keys and failed verification, SV_EUNSUPP for a CA key
 * type the token cannot sign certificates with, SV_ECRYPTO for OpenSSL failures.
 */
#ifndef SV_SHADOWCA_H
#define SV_SHADOWCA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define SCA_PEM_MAX	 (64 * 1024) /* cap on CSR and certificate input, PEM or DER */
#define SCA_CN_MAX	 64	     /* RFC 5280 ub-common-name */
#define SCA_DNS_MAX	 253	     /* one dNSName */
#define SCA_SAN_MAX	 32	     /* dNSName + iPAddress entries in one certificate */
#define SCA_DAYS_MAX	 7300	     /* longest validity, CA or leaf */
#define SCA_RSA_MIN_BITS 2048	     /* smallest RSA key accepted in a CSR */
#define SCA_RSA_MAX_BITS 8192	     /* largest (bounds the cost of verifying a CSR) */
#define SCA_SKEW_SECONDS 300	     /* notBefore is this far in the past (clock skew) */
#define SCA_HEX_MAX	 65	     /* buffer for sca_serial_hex() / sca_fingerprint() */
#define SCA_BUNDLE_MAX	 8	     /* CA certificates in one bundle (ca.pem) */
#define SCA_CA_DAYS	 3650	     /* validity of a shadow CA certificate */
#define SCA_TLS_DAYS	 825	     /* validity of the vault's TLS server certificate */

struct sca_profile {
	const char *cn; /* subject CN: a shadow name or the vault's host name; printable ASCII */
	const char *const *dns; /* subjectAltName dNSName entries (ndns may be 0) */
	size_t ndns;
	const char *const
	    *ips; /* subjectAltName iPAddress entries, textual IPv4/IPv6 (nips may be 0) */
	size_t nips;
	int days;   /* validity: notBefore now - SCA_SKEW_SECONDS, notAfter now + days
		       (1..SCA_DAYS_MAX) */
	int server; /* 1: EKU serverAuth (the vault's TLS cert); 0: EKU clientAuth (a shadow) */
};

/*
 * The profile of the vault's TLS server certificate for names (the first is
 * the CN; IPv4/IPv6 literals go to iPAddress, the rest to dNSName), valid
 * SCA_TLS_DAYS.  dns and ips must have room for n entries; p points into
 * them and into names.
 */
void sca_profile_server(
    struct sca_profile *p, char *const *names, size_t n, const char **dns, const char **ips);

/*
 * Self-signed CA certificate for a token key: subject and issuer CN=cn,
 * basicConstraints critical CA:TRUE pathlen:0, keyUsage critical keyCertSign
 * and cRLSign, subjectKeyIdentifier, random positive 128-bit serial, validity
 * as in struct sca_profile.  ca_pub is the key's public half (hsm_key_public());
 * ca_priv signs (an engine key: the signature is made in the token).  The key
 * must be EC P-256 (signed with SHA-256), EC P-384 (SHA-384) or RSA (SHA-256);
 * the result is checked against ca_pub before it is returned.  Both keys are
 * borrowed.  Caller X509_free()s *out.
 */
int sca_make_ca(EVP_PKEY *ca_priv, EVP_PKEY *ca_pub, const char *cn, int days, X509 **out);

/*
 * A link from one CA to the next (a cross-certificate): new_ca's subject CN
 * and public key, issued by old_ca (its subject, an authority key identifier)
 * and signed by old_priv, CA:TRUE pathlen:0 like the CA itself, valid
 * SCA_CA_DAYS.  A shadow that trusts old_ca takes new_ca only with such a
 * link (a network process cannot make one: it never holds a CA key).  Checked
 * against old_ca's public key before it is returned.  Caller X509_free()s *out.
 */
int sca_cross(EVP_PKEY *old_priv, X509 *old_ca, X509 *new_ca, X509 **out);

/*
 * Parse a CSR given as PEM or DER (detected by a leading "-----BEGIN"),
 * at most SCA_PEM_MAX bytes, nothing but white space after it.  Accepts only
 * EC P-256/P-384, RSA of SCA_RSA_MIN_BITS..SCA_RSA_MAX_BITS and Ed25519 public
 * keys (SV_EDENIED naming the key otherwise), then verifies the CSR's
 * self-signature (SV_EINVAL if it does not verify).  Caller X509_REQ_free()s *out.
 */
int sca_csr_parse(const uint8_t *data, size_t len, X509_REQ **out);

/*
 * Issue a leaf certificate for the CSR's public key (checked again as in
 * sca_csr_parse()); the CSR's subject and extensions are ignored.  Subject
 * CN=p->cn, issuer = ca's subject, subjectAltName from p (omitted when empty),
 * basicConstraints critical CA:FALSE, keyUsage critical digitalSignature
 * (+keyEncipherment for RSA), extendedKeyUsage serverAuth or clientAuth per
 * p->server, subject and authority key identifiers, random positive 128-bit
 * serial.  Signed by ca_priv (in the token) with ca's digest and checked
 * against ca's public key before it is returned.  ca_priv, ca, csr and p are
 * borrowed.  Caller X509_free()s *out.
 */
int sca_issue(EVP_PKEY *ca_priv, X509 *ca, X509_REQ *csr, const struct sca_profile *p, X509 **out);

/*
 * The same for a public key the vault already holds (its own TLS key, when
 * a new CA reissues the server certificate): no CSR, the key checked as a
 * CSR's would be.  pub is borrowed.
 */
int sca_issue_key(
    EVP_PKEY *ca_priv, X509 *ca, EVP_PKEY *pub, const struct sca_profile *p, X509 **out);

/* PEM text of a certificate: malloc'd, NUL-terminated; caller free()s *out. */
int sca_cert_pem(X509 *x, char **out);

/*
 * Parse exactly one PEM certificate (at most SCA_PEM_MAX bytes, nothing but
 * white space after it).  pem need not be NUL-terminated.  Caller X509_free()s.
 */
int sca_cert_parse_pem(const char *pem, size_t len, X509 **out);

/*
 * Serial number as lower-case hex of its big-endian bytes, without leading
 * zero bytes but always whole bytes ("0a1b..."; "00" for zero), into buf of n
 * bytes (SCA_HEX_MAX is enough for any serial RFC 5280 allows).  SV_EINVAL
 * for a negative serial or one that does not fit.
 */
int sca_serial_hex(const X509 *x, char *buf, size_t n);

/* SHA-256 of the DER certificate as 64 lower-case hex digits into buf (n >= SCA_HEX_MAX). */
int sca_fingerprint(const X509 *x, char *buf, size_t n);

/*
 * Verify leaf against ca alone as the only trust anchor, at the current time,
 * with X509_V_FLAG_X509_STRICT and purpose sslserver (server = 1) or
 * sslclient (server = 0).  0, or SV_EDENIED with OpenSSL's verify error text
 * ("certificate has expired").  Both borrowed.
 */
int sca_verify(X509 *ca, X509 *leaf, int server);

/*
 * A CA bundle (the vault's ca.pem after a rotation of the shadow CA): 1 to
 * SCA_BUNDLE_MAX PEM certificates, the issuing CA first, then the older CAs
 * still trusted; at most SCA_PEM_MAX bytes, nothing but white space between
 * and after them, each a CA certificate (basicConstraints CA:TRUE).  The
 * error names the certificate by its position.  Caller
 * sk_X509_pop_free(*out, X509_free)s.
 */
int sca_bundle_parse(const char *pem, size_t len, STACK_OF(X509) * *out);

/* The same for a certificate chain (a TLS certificate file): the leaf first, no CA check. */
int sca_chain_parse(const char *pem, size_t len, STACK_OF(X509) * *out);

/* The PEM text of every certificate of sk, in order: malloc'd; caller free()s *out. */
int sca_bundle_pem(STACK_OF(X509) * sk, char **out);

#endif
