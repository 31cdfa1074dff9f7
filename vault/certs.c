/*
 * certs: imported certificates in the state database, and the checks on a
 * PEM chain (see certs.h).  Touches the "certs" table only; no HSM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "log.h"
#include "sv_err.h"

/* One PEM block's DER as a certificate (n counts from 1, for messages). */
static int
block_cert(const char *name, const uint8_t *der, long dlen, int n, X509 **x)
{
	const uint8_t *p = der;
	char esc[64];

	*x = NULL;
	if (strcmp(name, PEM_STRING_X509) != 0 && strcmp(name, PEM_STRING_X509_OLD) != 0)
		return sv_seterr(SV_EINVAL,
		    "PEM block %d is \"%s\", not a CERTIFICATE: a chain holds certificates only", n,
		    sv_escape(name, strlen(name), esc, sizeof(esc)));
	if ((*x = d2i_X509(NULL, &p, dlen)) == NULL || p != der + dlen) {
		X509_free(*x);
		*x = NULL;
		return sv_seterr(SV_EINVAL, "certificate %d is not a valid X.509 certificate", n);
	}
	return 0;
}

/* Read the PEM blocks of b into sk: certificates only, at most CERTS_CHAIN_CERTS. */
static int
read_blocks(BIO *b, STACK_OF(X509) * sk)
{
	char *name = NULL, *hdr = NULL;
	uint8_t *der = NULL;
	long dlen;
	X509 *x;
	int n = 0, r = 0;

	while (r == 0 && PEM_read_bio(b, &name, &hdr, &der, &dlen) == 1) {
		if (++n > CERTS_CHAIN_CERTS)
			r = sv_seterr(SV_ETOOBIG, "more than %d certificates in the chain",
			    CERTS_CHAIN_CERTS);
		else if ((r = block_cert(name, der, dlen, n, &x)) == 0 &&
		    sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			r = SV_ENOMEM;
		}
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_free(der);
		name = hdr = NULL;
		der = NULL;
	}
	ERR_clear_error(); /* the end of the input is an error to PEM_read_bio() */
	if (r == 0 && n == 0)
		r = sv_seterr(SV_EINVAL, "no PEM certificate in it");
	return r;
}

int
certs_parse_chain(const char *pem, size_t len, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *sk = NULL;
	BIO *b = NULL;
	int i, r;

	*out = NULL;
	if (len > CERTS_CHAIN_MAX)
		return sv_seterr(SV_ETOOBIG, "certificate chain of %zu bytes: at most %d accepted",
		    len, CERTS_CHAIN_MAX);
	if (memchr(pem, '\0', len) != NULL)
		return sv_seterr(SV_EINVAL, "holds a NUL byte: not a PEM certificate chain");
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL || (sk = sk_X509_new_null()) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	if ((r = read_blocks(b, sk)) != 0)
		goto out;
	for (i = 0; i + 1 < sk_X509_num(sk); i++)
		if (X509_check_issued(sk_X509_value(sk, i + 1), sk_X509_value(sk, i)) !=
		    X509_V_OK) {
			r = sv_seterr(SV_EINVAL,
			    "certificate %d did not issue certificate %d: the chain must be the "
			    "leaf first, each certificate followed by its issuer",
			    i + 2, i + 1);
			goto out;
		}
out:
	ERR_clear_error();
	BIO_free(b);
	if (r != 0) {
		sk_X509_pop_free(sk, X509_free);
		return r;
	}
	*out = sk;
	return 0;
}

int
certs_chain_pem(STACK_OF(X509) * chain, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int i;

	*out = NULL;
	if (b == NULL)
		return SV_ENOMEM;
	for (i = 0; i < sk_X509_num(chain); i++)
		if (PEM_write_bio_X509(b, sk_X509_value(chain, i)) != 1) {
			BIO_free(b);
			return sv_seterr_ssl(SV_ECRYPTO, "encoding the certificate chain");
		}
	len = BIO_get_mem_data(b, &data);
	if (len > 0 && (*out = malloc((size_t)len + 1)) != NULL) {
		memcpy(*out, data, (size_t)len);
		(*out)[len] = '\0';
	}
	BIO_free(b);
	return *out != NULL ? 0 : SV_ENOMEM;
}

int
certs_add(struct state *st, const char *name, int key_version, const char *chain, int64_t not_after,
    int64_t *sequence)
{
	sqlite3_stmt *s;
	int r;

	*sequence = 0;
	/* The next sequence and the row in one statement: no second writer between them. */
	if ((r = state_prep(st, &s,
		 "INSERT INTO certs (name, sequence, key_version, chain, not_after, imported) "
		 "SELECT ?1, COALESCE(MAX(sequence), 0) + 1, ?2, ?3, ?4, ?5 FROM certs "
		 "WHERE name = ?1 RETURNING sequence",
		 "titii", name, (int64_t)key_version, chain, not_after, (int64_t)time(NULL))) != 0)
		return r;
	if (sqlite3_step(s) == SQLITE_ROW)
		*sequence = sqlite3_column_int64(s, 0);
	if (*sequence < 1 || sqlite3_step(s) != SQLITE_DONE)
		r = state_err(st, "adding a certificate");
	sqlite3_finalize(s);
	return r;
}

static const char COLS[] = "name, sequence, key_version, not_after, imported";

static void
row(sqlite3_stmt *s, struct cert_rec *c)
{
	snprintf(c->name, sizeof(c->name), "%s", (const char *)sqlite3_column_text(s, 0));
	c->sequence = sqlite3_column_int64(s, 1);
	c->key_version = sqlite3_column_int(s, 2);
	c->not_after = sqlite3_column_int64(s, 3);
	c->imported = sqlite3_column_int64(s, 4);
}

int
certs_newest(struct state *st, const char *name, struct cert_rec *out)
{
	char sql[192];
	sqlite3_stmt *s;
	const char *chain;
	int r, rc;

	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql),
	    "SELECT %s, chain FROM certs WHERE name = ?1 ORDER BY sequence DESC LIMIT 1", COLS);
	if ((r = state_prep(st, &s, sql, "t", name)) != 0)
		return r;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row(s, out);
		chain = (const char *)sqlite3_column_text(s, 5);
		if (chain == NULL || (out->chain = strdup(chain)) == NULL)
			r = chain == NULL ? state_err(st, "reading a certificate") : SV_ENOMEM;
	} else if (rc == SQLITE_DONE) {
		r = sv_seterr(SV_ENOTFOUND, "no certificate imported for \"%s\"", name);
	} else {
		r = state_err(st, "reading a certificate");
	}
	sqlite3_finalize(s);
	if (r != 0)
		cert_rec_free(out);
	return r;
}

int
certs_list(struct state *st, json_t **out)
{
	char sql[256];
	struct cert_rec c;
	sqlite3_stmt *s;
	json_t *a;
	int r, rc;

	*out = NULL;
	snprintf(sql, sizeof(sql),
	    "SELECT %s FROM certs c WHERE sequence = "
	    "(SELECT MAX(sequence) FROM certs WHERE name = c.name) ORDER BY name",
	    COLS);
	if ((r = state_prep(st, &s, sql, "")) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		sqlite3_finalize(s);
		return SV_ENOMEM;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&c, 0, sizeof(c));
		row(s, &c);
		if (json_array_append_new(a,
			json_pack("{s:s, s:I, s:i, s:I, s:I}", "name", c.name, "sequence",
			    (json_int_t)c.sequence, "key_version", c.key_version, "not_after",
			    (json_int_t)c.not_after, "imported", (json_int_t)c.imported)) != 0) {
			r = SV_ENOMEM;
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = state_err(st, "listing certificates");
	sqlite3_finalize(s);
	if (r != 0) {
		json_decref(a);
		return r;
	}
	*out = a;
	return 0;
}

void
cert_rec_free(struct cert_rec *c)
{
	free(c->chain);
	c->chain = NULL;
}
