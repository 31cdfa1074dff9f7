/*
 * CSRs, certificates and ACME payloads for the classifier's tests (see
 * cls_der.c).  Returned strings are malloc()ed, DER is OPENSSL_malloc()ed.
 */
#ifndef SV_CLS_DER_H
#define SV_CLS_DER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* How csr_der_x() carries the SAN extension. */
enum csr_mode {
	CSR_NORMAL,	/* one extensionRequest attribute */
	CSR_MS,		/* a Microsoft extension request instead */
	CSR_TWO_ATTRS,	/* a second extensionRequest attribute with extra */
	CSR_TWO_VALUES, /* one extensionRequest attribute with two values */
};

/* Serialise j (stolen) compactly. */
char *dump(json_t *j);
/* base64url of d[0..n). */
char *b64(const uint8_t *d, size_t n);
/* {"key": base64url(d[0..n))} */
char *b64_payload(const char *key, const uint8_t *d, size_t n);
/* A stack holding one SAN extension, san as in "DNS:a.test,IP:10.0.0.1". */
STACK_OF(X509_EXTENSION) * san_exts(const char *san);

/*
 * DER of a CSR for key with subject CN cn (may be NULL) and the SAN
 * extension san (NULL for none), carried as mode says (extra: the second SAN
 * for the CSR_TWO_* modes).  csr_der: mode CSR_NORMAL.
 */
uint8_t *csr_der_x(EVP_PKEY *key, const char *cn, const char *san, enum csr_mode mode,
    const char *extra, size_t *len);
uint8_t *csr_der(EVP_PKEY *key, const char *cn, const char *san, size_t *len);

/* {"csr": ...} payloads: as csr_der(); with the extensions exts (freed); */
char *csr_payload(EVP_PKEY *key, const char *cn, const char *san);
char *csr_exts_payload(EVP_PKEY *key, STACK_OF(X509_EXTENSION) * exts);
/* an extensionRequest holding one value of type, bytes d[0..n); */
char *csr_attr_payload(EVP_PKEY *key, int type, const uint8_t *d, size_t n);
/* one dNSName name[0..len) (may hold a NUL). */
char *csr_raw_san_payload(EVP_PKEY *key, const char *name, size_t len);

/* An extension nid whose value is d[0..n) as is (possibly not valid for nid). */
X509_EXTENSION *raw_ext(int nid, const uint8_t *d, size_t n);

/* DER of a self-signed certificate for key with nsan copies of the SAN san (cert_der: 1). */
uint8_t *cert_der_n(EVP_PKEY *key, const char *cn, const char *san, int nsan, size_t *len);
uint8_t *cert_der(EVP_PKEY *key, const char *cn, const char *san, size_t *len);

/* {"certificate": base64url(der)[, "reason": reason (stolen)]} */
char *revoke_payload(const uint8_t *der, size_t n, json_t *reason);

#endif
