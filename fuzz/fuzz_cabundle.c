/*
 * libFuzzer target: the shadow's parsers of the vault's CA bundle and CA
 * links (client/cabundle.c), which come in the vault's answers.  Byte 0
 * says what the answer's "ca_links" is (taken mod 3: 0 none, 1 a JSON
 * string, 2 a JSON integer); the rest is the bundle ("ca") up to the first
 * NUL byte and the links after it (empty without a NUL; not checked as
 * UTF-8, which the parser does not look at).  A bundle that parses must
 * hold 1..8 CA certificates; it is then checked against a fixed anchor, the
 * CA "fuzz shadow CA v1" below, and without links only that anchor may be
 * taken.  The anchor was made once with the openssl CLI (P-256,
 * basicConstraints critical CA:TRUE, keyUsage critical keyCertSign, cRLSign)
 * from a throw-away key that was not kept; the seeds in
 * fuzz/corpus/fuzz_cabundle/ hold it, CAs v2 and v3 made the same way, and
 * links v1 -> v2 -> v3 (cross-certificates made with openssl x509 -req),
 * and bundles and links broken one way each, so that the fuzzer starts past
 * the PEM framing and the signature checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CA_BUNDLE_MAX	(64 * 1024) /* client/cabundle.c's caps */
#define CA_BUNDLE_CERTS 8

static const char anchor_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB1DCCAXugAwIBAgIUTxOKeJasf6nV+GXzv1sC0JjH7bcwCgYIKoZIzj0EAwIw\n"
    "NzEZMBcGA1UECgwQc2hhZG93dmF1bHQgZnV6ejEaMBgGA1UEAwwRZnV6eiBzaGFk\n"
    "b3cgQ0EgdjEwIBcNMjYxMjAxMDQ0MzA1WhgPMjEyNjExMDcwNDQzMDVaMDcxGTAX\n"
    "BgNVBAoMEHNoYWRvd3ZhdWx0IGZ1enoxGjAYBgNVBAMMEWZ1enogc2hhZG93IENB\n"
    "IHYxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErlPaFFOR49RRA6txnm9LwlbU\n"
    "jwuIBOoavZHpy52Qml8JdFukoLpmsHeHcOlLlAVgeGlOe5rYhUpoHeGyCyEZYKNj\n"
    "MGEwHQYDVR0OBBYEFPmH+sce25AxTmEui9+Gmx58WFuuMB8GA1UdIwQYMBaAFPmH\n"
    "+sce25AxTmEui9+Gmx58WFuuMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD\n"
    "AgEGMAoGCCqGSM49BAMCA0cAMEQCIBlF0sv3r9lnGDu0ipEaWVSVJxS/mMwCDXVz\n"
    "34ZktWnWAiAReEVD7lrLQSsdg1o4Ktvy+rZzsEH8t04+qpCBXRJHTQ==\n"
    "-----END CERTIFICATE-----\n";

/* Defined in client/shadow.c, issue.c and identity.c, which are not linked here; the two functions
   fuzzed never call them. */
int
shadow_path(const struct shadow *s, const char *rel, char *dst, size_t n)
{
	abort();
}

void
shadow_progress(const struct shadow *s, const char *fmt, ...)
{
	abort();
}

int
identity_lock(struct shadow *s)
{
	abort();
}

void
identity_unlock(struct shadow *s)
{
	abort();
}

X509 *
identity_load_cert(struct shadow *s, const char *rel)
{
	abort();
}

static STACK_OF(X509) * anchors;

static void
load_anchors(void)
{
	if (anchors != NULL)
		return;
	if (identity_ca_bundle_parse(anchor_pem, strlen(anchor_pem), &anchors) != 0 ||
	    sk_X509_num(anchors) != 1)
		abort();
}

/* Is x the anchor, DER byte for byte? */
static int
is_anchor(X509 *x)
{
	unsigned char *a = NULL, *b = NULL;
	int na = i2d_X509(x, &a), nb = i2d_X509(sk_X509_value(anchors, 0), &b);
	int same = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;

	OPENSSL_free(a);
	OPENSSL_free(b);
	return same;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *bundle = NULL;
	const char *text, *nul;
	size_t tlen, blen;
	json_t *links = NULL;
	int kind, i, r;

	load_anchors();
	if (size < 1)
		return 0;
	kind = data[0] % 3;
	text = (const char *)data + 1;
	tlen = size - 1;
	nul = memchr(text, '\0', tlen);
	blen = nul != NULL ? (size_t)(nul - text) : tlen;
	if (identity_ca_bundle_parse(text, blen, &bundle) != 0)
		return 0;
	if (blen > CA_BUNDLE_MAX || sk_X509_num(bundle) < 1 ||
	    sk_X509_num(bundle) > CA_BUNDLE_CERTS)
		abort();
	for (i = 0; i < sk_X509_num(bundle); i++)
		if (X509_check_ca(sk_X509_value(bundle, i)) != 1)
			abort();
	if (kind == 1)
		links = json_stringn_nocheck(
		    nul != NULL ? nul + 1 : "", nul != NULL ? tlen - blen - 1 : 0);
	else if (kind == 2)
		links = json_integer(1);
	if (kind != 0 && links == NULL)
		abort();
	r = identity_ca_linked(anchors, bundle, links);
	/* Not a string is refused; with no links only the anchor itself is trusted. */
	if (r == 0 && kind == 2)
		abort();
	for (i = 0; r == 0 && kind == 0 && i < sk_X509_num(bundle); i++)
		if (!is_anchor(sk_X509_value(bundle, i)))
			abort();
	json_decref(links);
	sk_X509_pop_free(bundle, X509_free);
	return 0;
}
