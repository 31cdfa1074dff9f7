/*
 * extcsr: a CSR made elsewhere, for shadow issue --csr and the renewals of
 * its lineage (see extcsr.h).  It is checked here as the vault's classifier
 * and a CA will check it (signature by its own key, DNS names only, the
 * subject CN counted as a name), so that a bad file is refused with its name
 * before any order is placed.  The bytes sent to the CA are the ones read:
 * nothing is re-encoded.  Touches no file but the one extcsr_load() reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "extcsr.h"
#include "fileio.h"
#include "log.h"
#include "pol.h"
#include "sv_err.h"

/* Room for a list of names in an error (the detail is capped at SV_ERRMSG_MAX anyway). */
#define EXTCSR_LIST_MAX 200

/* Add one name (len bytes, not NUL-terminated) unless already there; what for errors. */
static int
add_name(struct extcsr *c, const char *name, size_t len)
{
	char norm[POL_NAME_BUF], esc[128], *copy;
	size_t i;

	if (memchr(name, '\0', len) != NULL || len > POL_NAME_MAX)
		return sv_seterr(SV_EINVAL, "%s: the CSR names \"%s\": not a DNS name", c->what,
		    sv_escape(name, len, esc, sizeof(esc)));
	if ((copy = strndup(name, len)) == NULL)
		return SV_ENOMEM;
	if (pol_name_normalize(copy, norm, sizeof(norm)) != 0) {
		free(copy);
		return sv_preferr(SV_EINVAL, "%s: the CSR", c->what);
	}
	for (i = 0; i < c->nnames; i++)
		if (strcmp(c->norm[i], norm) == 0) {
			free(copy);
			return 0;
		}
	if (c->nnames == EXTCSR_NAMES_MAX) {
		free(copy);
		return sv_seterr(
		    SV_EINVAL, "%s: the CSR has more than %d names", c->what, EXTCSR_NAMES_MAX);
	}
	if ((c->norm[c->nnames] = strdup(norm)) == NULL) {
		free(copy);
		return SV_ENOMEM;
	}
	c->names[c->nnames++] = copy;
	return 0;
}

/* The subjectAltName DNS names; any other kind of name is refused. */
static int
san_names(struct extcsr *c, X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	int i, crit = -1, r = 0;

	gens = exts != NULL ? X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL) : NULL;
	if (gens == NULL && crit != -1)
		r = sv_seterr(
		    SV_EINVAL, "%s: the CSR's subjectAltName is malformed or repeated", c->what);
	for (i = 0; r == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			r = sv_seterr(SV_EINVAL,
			    "%s: the CSR has a subjectAltName that is not a DNS name (type %d)",
			    c->what, g->type);
		else
			r = add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
			    (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return r;
}

/* Every subject CN, after the subjectAltName names (a repeat of one of them adds nothing). */
static int
cn_names(struct extcsr *c, X509_REQ *req)
{
	const X509_NAME *subj = X509_REQ_get_subject_name(req);
	unsigned char *utf8;
	int i = -1, len, r;

	while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
		len = ASN1_STRING_to_UTF8(
		    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
		if (len < 0)
			return sv_preferr(
			    sv_seterr_ssl(SV_EINVAL, "the CSR's subject CN"), "%s", c->what);
		r = add_name(c, (const char *)utf8, (size_t)len);
		OPENSSL_free(utf8);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The DER bytes of data: the first PEM block decoded, or data itself. */
static int
der_of(const uint8_t *data, size_t len, struct extcsr *c)
{
	BIO *b;
	char *name = NULL, *hdr = NULL;
	unsigned char *d = NULL;
	long dl = 0;
	int r = 0;

	/* DER starts with a SEQUENCE; anything else is read as PEM (text before the block is fine).
	 */
	if (len > 0 && data[0] == 0x30) {
		if ((c->der = malloc(len)) == NULL)
			return SV_ENOMEM;
		memcpy(c->der, data, len);
		c->dlen = len;
		return 0;
	}
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
		return SV_ENOMEM;
	if (PEM_read_bio(b, &name, &hdr, &d, &dl) != 1 || dl <= 0)
		r = sv_seterr(SV_EINVAL, "%s: not a PEM certificate signing request", c->what);
	else if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0)
		r = sv_seterr(
		    SV_EINVAL, "%s: a PEM %s block, not a CERTIFICATE REQUEST", c->what, name);
	else if ((c->der = malloc((size_t)dl)) == NULL)
		r = SV_ENOMEM;
	else {
		memcpy(c->der, d, (size_t)dl);
		c->dlen = (size_t)dl;
	}
	ERR_clear_error();
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(d);
	BIO_free(b);
	return r;
}

int
extcsr_parse(const uint8_t *data, size_t len, const char *what, struct extcsr *out)
{
	const unsigned char *p;
	X509_REQ *req = NULL;
	EVP_PKEY *pk;
	int r;

	memset(out, 0, sizeof(*out));
	if ((out->what = strdup(what)) == NULL)
		return SV_ENOMEM;
	if (len > EXTCSR_FILE_MAX)
		return sv_seterr(SV_ETOOBIG, "%s: larger than %d bytes", what, EXTCSR_FILE_MAX);
	if ((r = der_of(data, len, out)) != 0)
		return r;
	p = out->der;
	/* OpenSSL's queued words say nothing more than these: they are dropped. */
	if ((req = d2i_X509_REQ(NULL, &p, (long)out->dlen)) == NULL || p != out->der + out->dlen)
		r = sv_seterr(
		    SV_EINVAL, "%s: not a certificate signing request (PEM or DER)", what);
	else if ((pk = X509_REQ_get0_pubkey(req)) == NULL)
		r = sv_seterr(SV_EINVAL, "%s: the CSR's public key does not parse", what);
	else if (X509_REQ_verify(req, pk) != 1)
		r = sv_seterr(
		    SV_EINVAL, "%s: the CSR's signature does not verify with its own key", what);
	else if ((r = san_names(out, req)) == 0 && (r = cn_names(out, req)) == 0) {
		if (out->nnames == 0)
			r = sv_seterr(SV_EINVAL, "%s: the CSR names no DNS name", what);
		else if (EVP_PKEY_up_ref(pk) != 1)
			r = SV_ENOMEM;
		else
			out->key = pk;
	}
	ERR_clear_error();
	X509_REQ_free(req);
	return r;
}

int
extcsr_load(const char *path, struct extcsr *out)
{
	uint8_t *d = NULL;
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = sv_read_file(path, EXTCSR_FILE_MAX, &d, &len)) != 0)
		return r;
	r = extcsr_parse(d, len, path, out);
	free(d);
	return r;
}

void
extcsr_free(struct extcsr *c)
{
	size_t i;

	for (i = 0; i < c->nnames; i++) {
		free(c->names[i]);
		free(c->norm[i]);
	}
	free(c->what);
	free(c->der);
	EVP_PKEY_free(c->key);
	memset(c, 0, sizeof(*c));
}

/* names, space-separated, cut short with "..." to fit buf. */
static const char *
join(const char *const *names, size_t n, char *buf, size_t size)
{
	size_t i, used = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		w = snprintf(buf + used, size - used, "%s%s", i ? " " : "", names[i]);
		if (w < 0 || (size_t)w >= size - used) {
			snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
			break;
		}
		used += (size_t)w;
	}
	return buf;
}

static int
mismatch(const struct extcsr *c, const char *const *given, size_t ngiven)
{
	char a[EXTCSR_LIST_MAX], b[EXTCSR_LIST_MAX];

	return sv_seterr(SV_EINVAL, "the names given (%s) are not those of the CSR %s (%s)",
	    join(given, ngiven, a, sizeof(a)), c->what != NULL ? c->what : "",
	    join((const char *const *)c->names, c->nnames, b, sizeof(b)));
}

int
extcsr_names(
    const struct extcsr *c, const char *const *given, size_t ngiven, const char **out, size_t *nout)
{
	char norm[POL_NAME_BUF], seen[EXTCSR_NAMES_MAX] = { 0 };
	size_t i, j;

	*nout = 0;
	for (i = 0; ngiven == 0 && i < c->nnames; i++)
		out[(*nout)++] = c->names[i];
	for (i = 0; i < ngiven; i++) {
		if (pol_name_normalize(given[i], norm, sizeof(norm)) != 0)
			return SV_EINVAL;
		for (j = 0; j < c->nnames && strcmp(c->norm[j], norm) != 0; j++)
			;
		if (j == c->nnames)
			return mismatch(c, given, ngiven);
		if (!seen[j]) {
			seen[j] = 1;
			out[(*nout)++] = c->names[j];
		}
	}
	if (*nout != c->nnames) {
		*nout = 0;
		return mismatch(c, given, ngiven);
	}
	return 0;
}

int
extcsr_key_is(const struct extcsr *c, const EVP_PKEY *key)
{
	int eq = c->key != NULL && key != NULL && EVP_PKEY_eq(c->key, key) == 1;

	ERR_clear_error();
	return eq;
}
