/*
 * ACME helpers that need no network: http-01/dns-01 key authorizations, the
 * ARI CertID, the PEM chain check, RFC 3339 dates, the poll back-off, and a
 * local acme_sign_fn over a jws_signer (see acme.h).  Pure computation over
 * OpenSSL and jansson; no I/O, no globals.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "b64.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"

/* Most certificates we accept in one chain. */
#define CHAIN_CERTS_MAX 16
/* Longest AKI keyIdentifier / serial we put in a CertID (RFC 5280: serial <= 20). */
#define CERTID_PART_MAX 64
/* Poll defaults (struct acme_poll members left 0). */
#define POLL_FIRST_MS	 250
#define POLL_MAX_WAIT_MS 10000

int
acme_keyauth(const char *token, const json_t *account_jwk, char **out)
{
	char thumb[JWK_THUMB_LEN + 1];
	size_t tl;
	int rc;

	*out = NULL;
	if ((rc = acme_token_check(token)) != 0)
		return sv_recode(SV_EINVAL);
	if ((rc = jwk_thumbprint(account_jwk, thumb)) != 0)
		return sv_preferr(rc, "key authorization");
	tl = strlen(token);
	if ((*out = malloc(tl + 1 + JWK_THUMB_LEN + 1)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a key authorization");
	memcpy(*out, token, tl);
	(*out)[tl] = '.';
	memcpy(*out + tl + 1, thumb, JWK_THUMB_LEN + 1);
	return 0;
}

int
acme_dns01_txt(const char *keyauth, char **out)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	*out = NULL;
	if (keyauth == NULL || strchr(keyauth, '.') == NULL)
		return sv_seterr(SV_EINVAL, "dns-01: not a key authorization");
	if (EVP_Digest(keyauth, strlen(keyauth), md, &mdlen, EVP_sha256(), NULL) != 1)
		return sv_seterr_ssl(SV_ECRYPTO, "dns-01: SHA-256");
	return b64u_encode(md, mdlen, out);
}

int
acme_ari_certid_raw(
    const uint8_t *aki, size_t akilen, const uint8_t *serial, size_t seriallen, char **out)
{
	char *a = NULL, *s = NULL;
	size_t al, sl;
	int rc;

	*out = NULL;
	if (akilen == 0 || akilen > CERTID_PART_MAX || seriallen == 0 ||
	    seriallen > CERTID_PART_MAX)
		return sv_seterr(SV_EINVAL, "ARI: key identifier or serial of a bad length");
	if ((rc = b64u_encode(aki, akilen, &a)) != 0 ||
	    (rc = b64u_encode(serial, seriallen, &s)) != 0)
		goto out;
	al = strlen(a);
	sl = strlen(s);
	rc = sv_seterr(SV_ENOMEM, "acme: no memory for a CertID");
	if ((*out = malloc(al + 1 + sl + 1)) == NULL)
		goto out;
	memcpy(*out, a, al);
	(*out)[al] = '.';
	memcpy(*out + al + 1, s, sl + 1);
	rc = 0;
out:
	free(a);
	free(s);
	return rc;
}

int
acme_ari_certid(X509 *cert, char **out)
{
	const ASN1_OCTET_STRING *kid;
	const unsigned char *p;
	unsigned char *der = NULL;
	long clen;
	int dlen, tag, xclass, rc;

	*out = NULL;
	if ((kid = X509_get0_authority_key_id(cert)) == NULL) {
		ERR_clear_error();
		return sv_seterr(SV_EINVAL, "ARI: certificate has no authority key identifier");
	}
	/* The serial's DER content octets: i2d, then step over tag and length. */
	if ((dlen = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &der)) <= 0)
		return sv_seterr_ssl(SV_ECRYPTO, "ARI: encoding the serial");
	p = der;
	if ((ASN1_get_object(&p, &clen, &tag, &xclass, dlen) & 0x80) != 0 ||
	    tag != V_ASN1_INTEGER || clen <= 0 || p + clen != der + dlen) {
		OPENSSL_free(der);
		return sv_seterr_ssl(SV_ECRYPTO, "ARI: decoding the serial");
	}
	rc = acme_ari_certid_raw(
	    ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid), p, (size_t)clen, out);
	OPENSSL_free(der);
	return rc;
}

/* One PEM block from bio: must be a CERTIFICATE whose DER is one X.509. */
static int
pem_one(BIO *bio, int *done)
{
	char *name = NULL, *hdr = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long len = 0;
	X509 *x = NULL;
	int rc = 0;

	*done = 0;
	if (PEM_read_bio(bio, &name, &hdr, &data, &len) != 1) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
			ERR_clear_error();
			*done = 1;
			return 0;
		}
		return sv_seterr_ssl(SV_EPROTO, "certificate chain: bad PEM");
	}
	p = data;
	if (strcmp(name, "CERTIFICATE") != 0)
		rc = sv_seterr(
		    SV_EPROTO, "certificate chain holds a PEM block that is not a certificate");
	else if ((x = d2i_X509(NULL, &p, len)) == NULL || p != data + len)
		rc = sv_seterr_ssl(SV_EPROTO, "certificate chain: bad certificate");
	X509_free(x);
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(data);
	return rc;
}

int
acme_pem_chain_check(const char *pem, size_t len, size_t *ncerts)
{
	BIO *bio;
	int done = 0, rc = 0;

	*ncerts = 0;
	if (len > ACME_PEM_MAX)
		return sv_seterr(
		    SV_ETOOBIG, "certificate chain larger than %d bytes", ACME_PEM_MAX);
	if (memchr(pem, '\0', len) != NULL)
		return sv_seterr(SV_EPROTO, "certificate chain has a NUL byte");
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return sv_seterr_ssl(SV_ENOMEM, "certificate chain: BIO");
	while (rc == 0) {
		if ((rc = pem_one(bio, &done)) != 0 || done)
			break;
		if (++*ncerts > CHAIN_CERTS_MAX)
			rc = sv_seterr(SV_EPROTO, "certificate chain of more than %d certificates",
			    CHAIN_CERTS_MAX);
	}
	BIO_free(bio);
	if (rc == 0 && *ncerts == 0)
		rc = sv_seterr(SV_EPROTO, "certificate chain holds no certificate");
	if (rc != 0)
		*ncerts = 0;
	return rc;
}

/* n decimal digits at s into *v. */
static int
digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* "Z" or "+HH:MM"/"-HH:MM" at s: offset east of UTC in seconds. */
static int
tz_offset(const char *s, long *off)
{
	int h, m;

	*off = 0;
	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0')
		return 0;
	if ((s[0] != '+' && s[0] != '-') || digits(s + 1, 2, &h) != 0 || s[3] != ':' ||
	    digits(s + 4, 2, &m) != 0 || s[6] != '\0' || h > 23 || m > 59)
		return -1;
	*off = (s[0] == '-' ? -1 : 1) * (h * 3600L + m * 60L);
	return 0;
}

int
acme_rfc3339_parse(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, se;
	long off;
	time_t t;

	*out = 0;
	memset(&tm, 0, sizeof(tm));
	if (s == NULL || strnlen(s, 64) < 20 || digits(s, 4, &y) != 0 || s[4] != '-' ||
	    digits(s + 5, 2, &mo) != 0 || s[7] != '-' || digits(s + 8, 2, &d) != 0 ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) != 0 ||
	    s[13] != ':' || digits(s + 14, 2, &mi) != 0 || s[16] != ':' ||
	    digits(s + 17, 2, &se) != 0)
		return sv_seterr(SV_EINVAL, "not an RFC 3339 date-time");
	s += 19;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if (tz_offset(s, &off) != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60 || y < 1970)
		return sv_seterr(SV_EINVAL, "not an RFC 3339 date-time");
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	if ((t = timegm(&tm)) == (time_t)-1)
		return sv_seterr(SV_EINVAL, "RFC 3339 date-time out of range");
	*out = t - off;
	return 0;
}

long
acme_poll_delay_ms(long retry_after, unsigned attempt, const struct acme_poll *p, long remaining_ms)
{
	long first = p != NULL && p->first_ms > 0 ? p->first_ms : POLL_FIRST_MS;
	long cap = p != NULL && p->max_wait_ms > 0 ? p->max_wait_ms : POLL_MAX_WAIT_MS;
	long d = first;
	unsigned i;

	if (retry_after >= 0) {
		/* Honour the CA, but never spin: first_ms is the floor. */
		if (retry_after > ACME_RETRY_AFTER_MAX)
			retry_after = ACME_RETRY_AFTER_MAX;
		d = retry_after * 1000 > first ? retry_after * 1000 : first;
	} else {
		for (i = 0; i < attempt && d < cap; i++)
			d *= 2;
	}
	if (d > cap)
		d = cap;
	if (d > remaining_ms)
		d = remaining_ms;
	return d < 0 ? 0 : d;
}

int
acme_protected_header(
    const char *url, const char *nonce, const json_t *jwk, const char *kid, json_t **out)
{
	json_t *h;

	*out = NULL;
	if (url == NULL || (jwk == NULL) == (kid == NULL))
		return sv_seterr(SV_EINVAL, "acme: protected header needs a url and jwk or kid");
	if ((h = json_pack("{s:s}", "url", url)) == NULL ||
	    (nonce != NULL && json_object_set_new(h, "nonce", json_string(nonce)) != 0) ||
	    (jwk != NULL && json_object_set_new(h, "jwk", json_deep_copy(jwk)) != 0) ||
	    (kid != NULL && json_object_set_new(h, "kid", json_string(kid)) != 0)) {
		json_decref(h);
		return sv_seterr(SV_ENOMEM, "acme: building a protected header");
	}
	*out = h;
	return 0;
}

int
acme_sign_local(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **jws_out)
{
	const struct acme_local_key *k = ctx;
	json_t *hdr = NULL;
	int rc;

	*jws_out = NULL;
	if (k == NULL || k->signer == NULL || (use_jwk && k->jwk == NULL))
		return sv_seterr(SV_EINVAL, "acme: local signer without a key");
	if (!use_jwk && k->kid == NULL)
		return sv_seterr(SV_EINVAL, "acme: local signer has no account URL (kid) yet");
	if ((rc = acme_protected_header(
		 url, nonce, use_jwk ? k->jwk : NULL, use_jwk ? NULL : k->kid, &hdr)) != 0)
		return rc;
	rc = jws_sign(k->signer, hdr, payload, plen, jws_out);
	json_decref(hdr);
	return rc;
}
