/*
 * cabundle: the vault's shadow CA bundle as this server keeps it
 * (identity/vault-ca.pem) and takes it from the vault's answers.
 *
 * The bundle is the issuing CA certificate first, then the older ones the
 * vault still trusts (it keeps at most CA_BUNDLE_CERTS).  An answer came
 * over TLS verified against the bundle this server holds, but that TLS ends
 * in the vault's network process, which holds no CA key: a new CA is taken
 * only with a link to it (a cross-certificate: its subject and key, signed
 * by a CA already trusted), which only the key process can make
 * (vault/kp_ca.c).  So a compromised network process cannot plant a CA of
 * its own here; it can only withhold the new bundle, which leaves this
 * server on the old CA (and the vault refuses to destroy that one while this
 * server needs it).  The bundle must also still vouch for this server's
 * identity, so the server never locks itself out.
 *
 * Touches identity/vault-ca.pem (written atomically) and reads
 * identity/cert.pem.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fileio.h"
#include "shadow.h"
#include "sv_err.h"

#define CA_BUNDLE_MAX	(64 * 1024)
#define CA_BUNDLE_CERTS 8
#define CA_FILE		SHADOW_VAULT_CA
#define PEM_BEGIN_CERT	"-----BEGIN CERTIFICATE-----"

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Does p (n bytes) start with a BEGIN CERTIFICATE line?  PEM_read_bio() would skip anything
   else, a BEGIN line with trailing text included, so the bundle could carry garbage. */
static int
at_begin_cert(const char *p, size_t n)
{
	size_t k = strlen(PEM_BEGIN_CERT);

	if (n < k || memcmp(p, PEM_BEGIN_CERT, k) != 0)
		return 0;
	if (k < n && p[k] == '\r')
		k++;
	return k == n || p[k] == '\n';
}

/* Certificate number i (from 1) of what: the PEM block at *pos, which is moved past it. */
static int
read_block(const char *what, const char *pem, size_t len, size_t *pos, int i, X509 **out)
{
	BIO *b = BIO_new_mem_buf(pem + *pos, (int)(len - *pos));
	char *name = NULL, *hdr = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long dlen = 0;
	int r = 0;

	*out = NULL;
	if (b == NULL)
		return SV_ENOMEM;
	if (PEM_read_bio(b, &name, &hdr, &data, &dlen) != 1)
		r = sv_seterr(SV_EPROTO, "%s: certificate %d: unreadable PEM", what, i);
	else if (strcmp(name, "CERTIFICATE") != 0 || hdr[0] != '\0')
		r = sv_seterr(
		    SV_EPROTO, "%s: certificate %d: not a plain PEM CERTIFICATE block", what, i);
	else if ((p = data, *out = d2i_X509(NULL, &p, dlen)) == NULL || p != data + dlen)
		r = sv_seterr(SV_EPROTO, "%s: certificate %d: not one DER certificate", what, i);
	else
		*pos = len - (size_t)BIO_pending(b);
	if (r != 0) {
		X509_free(*out);
		*out = NULL;
	}
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(data);
	BIO_free(b);
	ERR_clear_error();
	return r;
}

/* Certificate i must be a CA certificate that verifies under its own key (unless a link). */
static int
check_ca_cert(const char *what, X509 *x, int i, int link)
{
	int r = 0;

	/* 1: basicConstraints CA:TRUE (and keyCertSign if it has a keyUsage); not the
	   weaker answers (a v1 self-signed certificate, a keyUsage alone). */
	if (X509_check_ca(x) != 1)
		r = sv_seterr(SV_EPROTO,
		    "%s: certificate %d: not a CA certificate (it needs basicConstraints CA:TRUE, "
		    "and keyCertSign if it has a keyUsage)",
		    what, i);
	else if (!link && X509_verify(x, X509_get0_pubkey(x)) != 1)
		r = sv_seterr(SV_EPROTO,
		    "%s: certificate %d: not self-signed (does not verify under its own key)", what,
		    i);
	ERR_clear_error();
	return r;
}

/* what: PEM CA certificates, self-signed unless links (see identity_ca_bundle_parse()). */
static int
parse_certs(const char *what, int links, const char *pem, size_t len, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *st = sk_X509_new_null();
	size_t pos = 0;
	X509 *x = NULL;
	int i, r = 0;

	*out = NULL;
	if (st == NULL)
		return SV_ENOMEM;
	if (len > CA_BUNDLE_MAX)
		r = sv_seterr(SV_EPROTO, "%s: larger than %d KiB (%zu bytes)", what,
		    CA_BUNDLE_MAX / 1024, len);
	/* PEM is printable ASCII in lines.  OpenSSL's reader drops control and 8-bit bytes
	   at the end of a line, which would then reach the file this bundle is written to. */
	for (pos = 0; r == 0 && pos < len; pos++)
		if ((pem[pos] < ' ' || pem[pos] > '~') && !is_space(pem[pos]))
			r = sv_seterr(SV_EPROTO, "%s: byte %zu is 0x%02x, not printable ASCII",
			    what, pos, (unsigned)(unsigned char)pem[pos]);
	pos = 0;
	for (i = 1; r == 0; i++) {
		while (pos < len && is_space(pem[pos]))
			pos++;
		if (pos == len)
			break;
		if (i > CA_BUNDLE_CERTS)
			r = sv_seterr(
			    SV_EPROTO, "%s: more than %d certificates", what, CA_BUNDLE_CERTS);
		else if (!at_begin_cert(pem + pos, len - pos))
			r = sv_seterr(SV_EPROTO,
			    "%s: %s certificate %d: something other than a PEM CERTIFICATE block "
			    "or "
			    "white space",
			    what, i == 1 ? "before" : "after", i == 1 ? 1 : i - 1);
		else if ((r = read_block(what, pem, len, &pos, i, &x)) == 0 &&
		    (r = check_ca_cert(what, x, i, links)) == 0 && sk_X509_push(st, x) > 0)
			x = NULL;
		else if (r == 0)
			r = SV_ENOMEM;
		X509_free(x);
		x = NULL;
	}
	if (r == 0 && sk_X509_num(st) == 0)
		r = sv_seterr(SV_EPROTO, "%s: no certificate", what);
	if (r != 0)
		sk_X509_pop_free(st, X509_free);
	else
		*out = st;
	return r;
}

int
identity_ca_bundle_parse(const char *pem, size_t len, STACK_OF(X509) * *out)
{
	return parse_certs("the vault's CA bundle", 0, pem, len, out);
}

int
identity_ca_vouches(STACK_OF(X509) * cas, X509 *leaf)
{
	int i, ok = 0;

	for (i = 0; i < sk_X509_num(cas) && !ok; i++)
		ok = X509_verify(leaf, X509_get0_pubkey(sk_X509_value(cas, i))) == 1;
	ERR_clear_error(); /* the refusals of the certificates that did not issue it */
	return ok;
}

/* The certificates of ca_file, read leniently: the administrator's trust anchor, not an answer. */
static int
load_ca_file(const char *ca_file, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *st = sk_X509_new_null();
	uint8_t *d = NULL;
	size_t len = 0;
	BIO *b = NULL;
	X509 *x;
	int r;

	*out = NULL;
	if (st == NULL)
		return SV_ENOMEM;
	if ((r = sv_read_file(ca_file, CA_BUNDLE_MAX, &d, &len)) == 0 &&
	    (b = BIO_new_mem_buf(d, (int)len)) == NULL)
		r = SV_ENOMEM;
	while (r == 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(st, x) <= 0) {
			X509_free(x);
			r = SV_ENOMEM;
		}
	ERR_clear_error(); /* the end of the file */
	if (r == 0 && sk_X509_num(st) == 0)
		r = sv_seterr(SV_ECONFIG, "%s: no PEM certificate", ca_file);
	BIO_free(b);
	free(d);
	if (r != 0)
		sk_X509_pop_free(st, X509_free);
	else
		*out = st;
	return r;
}

static int
same_der(X509 *a, X509 *b)
{
	unsigned char *da = NULL, *db = NULL;
	int na = i2d_X509(a, &da), nb = i2d_X509(b, &db);
	int same = na > 0 && na == nb && memcmp(da, db, (size_t)na) == 0;

	OPENSSL_free(da);
	OPENSSL_free(db);
	return same;
}

/* X509_NAME_oneline of x's subject into buf, for errors. */
static const char *
subject(X509 *x, char *buf, int n)
{
	if (X509_NAME_oneline(X509_get_subject_name(x), buf, n) == NULL)
		snprintf(buf, (size_t)n, "?");
	return buf;
}

/* Index in sk of a certificate with x's DER bytes, or -1. */
static int
find_der(STACK_OF(X509) * sk, X509 *x)
{
	int i;

	for (i = 0; i < sk_X509_num(sk); i++)
		if (same_der(sk_X509_value(sk, i), x))
			return i;
	return -1;
}

/* Does one of links make x trusted, given trusted?  x's subject and key, signed by one of them. */
static int
linked(STACK_OF(X509) * links, STACK_OF(X509) * trusted, X509 *x)
{
	int i, j, ok = 0;

	for (i = 0; i < sk_X509_num(links) && !ok; i++) {
		X509 *l = sk_X509_value(links, i);

		if (X509_NAME_cmp(X509_get_subject_name(l), X509_get_subject_name(x)) != 0 ||
		    EVP_PKEY_eq(X509_get0_pubkey(l), X509_get0_pubkey(x)) != 1)
			continue;
		for (j = 0; j < sk_X509_num(trusted) && !ok; j++)
			ok = X509_check_issued(sk_X509_value(trusted, j), l) == X509_V_OK &&
			    X509_verify(l, X509_get0_pubkey(sk_X509_value(trusted, j))) == 1;
	}
	ERR_clear_error();
	return ok;
}

int
identity_ca_linked(STACK_OF(X509) * anchors, STACK_OF(X509) * bundle, const json_t *links_pem)
{
	STACK_OF(X509) *links = NULL, *trusted = NULL;
	char name[256];
	int i, more = 1, r = 0;

	if (links_pem != NULL && !json_is_string(links_pem))
		return sv_seterr(SV_EPROTO, "the vault's CA links (\"ca_links\") are not a string");
	if (links_pem != NULL &&
	    (r = parse_certs("the vault's CA links", 1, json_string_value(links_pem),
		 json_string_length(links_pem), &links)) != 0)
		return r;
	if ((trusted = sk_X509_dup(anchors)) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	/* Each pass trusts what a link from the trusted ones reaches: a server that missed a
	   rotation follows v1 -> v2 -> v3. */
	while (more) {
		more = 0;
		for (i = 0; i < sk_X509_num(bundle); i++) {
			X509 *x = sk_X509_value(bundle, i);

			if (find_der(trusted, x) >= 0 || !linked(links, trusted, x))
				continue;
			if (sk_X509_push(trusted, x) <= 0) {
				r = SV_ENOMEM;
				goto out;
			}
			more = 1;
		}
	}
	for (i = 0; i < sk_X509_num(bundle) && r == 0; i++)
		if (find_der(trusted, sk_X509_value(bundle, i)) < 0)
			r = sv_seterr(SV_EPROTO,
			    "the vault's CA bundle: certificate %d (%s) is new, and no link "
			    "from a CA this server trusts vouches for it",
			    i + 1, subject(sk_X509_value(bundle, i), name, sizeof(name)));
out:
	sk_X509_free(trusted); /* borrowed certificates */
	sk_X509_pop_free(links, X509_free);
	return r;
}

/*
 * ans's "ca" as a bundle: well-formed, each new CA linked from anchors by
 * ans's "ca_links", and vouching for leaf ("which": what leaf is, for the error).
 */
static int
answer_bundle(const json_t *ans, STACK_OF(X509) * anchors, X509 *leaf, const char *which,
    STACK_OF(X509) * *out)
{
	const json_t *ca = json_object_get(ans, "ca");
	int r;

	*out = NULL;
	if (!json_is_string(ca))
		return sv_seterr(SV_EPROTO, "the vault's CA bundle (\"ca\") is not a string");
	if ((r = identity_ca_bundle_parse(json_string_value(ca), json_string_length(ca), out)) != 0)
		return r;
	if (!identity_ca_vouches(*out, leaf))
		r = sv_seterr(SV_EPROTO,
		    "the vault's CA bundle does not vouch for %s: it verifies under none of its %d "
		    "certificates",
		    which, sk_X509_num(*out));
	else
		r = identity_ca_linked(anchors, *out, json_object_get(ans, "ca_links"));
	if (r != 0) {
		sk_X509_pop_free(*out, X509_free);
		*out = NULL;
	}
	return r;
}

int
identity_ca_answer(struct shadow *s, const json_t *ans, X509 *leaf)
{
	STACK_OF(X509) *anchors = NULL, *cas = NULL;
	char path[PATH_MAX];
	int r;

	if (json_object_get(ans, "ca") == NULL)
		return 0; /* a vault from before CA rotation */
	if ((r = shadow_path(s, CA_FILE, path, sizeof(path))) == 0 &&
	    (r = load_ca_file(path, &anchors)) == 0)
		r = answer_bundle(ans, anchors, leaf, "the renewed certificate", &cas);
	sk_X509_pop_free(anchors, X509_free);
	sk_X509_pop_free(cas, X509_free);
	return r;
}

static int
update_locked(struct shadow *s, const json_t *ans, X509 *leaf)
{
	const json_t *ca = json_object_get(ans, "ca");
	STACK_OF(X509) *anchors = NULL, *cas = NULL;
	X509 *own = NULL;
	char path[PATH_MAX];
	uint8_t *cur = NULL;
	size_t clen = 0, len = json_string_length(ca);
	int r;

	if (ca == NULL)
		return 0; /* a vault from before CA rotation */
	if (leaf == NULL && (own = identity_load_cert(s, "identity/cert.pem")) == NULL)
		return sv_seterr(SV_ECONFIG, "cannot read this server's identity certificate");
	if ((r = shadow_path(s, CA_FILE, path, sizeof(path))) != 0 ||
	    (r = load_ca_file(path, &anchors)) != 0 ||
	    (r = answer_bundle(ans, anchors, own ? own : leaf,
		 own ? "this server's identity certificate" : "the renewed certificate", &cas)) !=
		0)
		goto out;
	if (sv_read_file(path, CA_BUNDLE_MAX, &cur, &clen) == 0 && clen == len &&
	    memcmp(cur, json_string_value(ca), len) == 0)
		goto out;
	if ((r = sv_write_file_atomic(path, json_string_value(ca), len, 0644)) != 0)
		goto out;
	shadow_progress(s,
	    "the vault's CA bundle changed (it rotated its shadow CA): wrote its %d "
	    "certificate%s to %s",
	    sk_X509_num(cas), sk_X509_num(cas) == 1 ? "" : "s", CA_FILE);
out:
	sk_X509_pop_free(anchors, X509_free);
	sk_X509_pop_free(cas, X509_free);
	X509_free(own);
	free(cur);
	return r;
}

int
identity_update_ca(struct shadow *s, const json_t *ans, X509 *leaf)
{
	int r;

	if (json_object_get(ans, "ca") == NULL)
		return 0; /* a vault from before CA rotation */
	if ((r = identity_lock(s)) != 0)
		return r;
	r = update_locked(s, ans, leaf);
	identity_unlock(s);
	return r;
}

int
identity_ca_enrol_check(const json_t *ans, const char *ca_file, X509 *cert)
{
	STACK_OF(X509) *cas = NULL, *anchors = NULL;
	int r;

	if (json_object_get(ans, "ca") == NULL)
		return sv_seterr(
		    SV_EPROTO, "the vault's enrolment answer has no CA bundle (\"ca\")");
	if ((r = load_ca_file(ca_file, &anchors)) == 0)
		r = answer_bundle(ans, anchors, cert, "the issued certificate", &cas);
	if (r != 0)
		r = sv_preferr(r, "trusting %s", ca_file);
	sk_X509_pop_free(cas, X509_free);
	sk_X509_pop_free(anchors, X509_free);
	return r;
}
