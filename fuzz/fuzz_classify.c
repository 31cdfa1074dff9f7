/*
 * libFuzzer target for the ACME request classifier (vault/classify.c), with
 * a fixed fake account on https://ca.test:14000.  Each input is used three
 * ways: (1) as the payload sent to each of the account's known URLs and to
 * an unknown one; (2) split at the first newline, the first part as the URL
 * and the rest as the payload; (3) as DER, wrapped in base64url as a
 * finalize {"csr"} and a revokeCert {"certificate"} payload, so the CSR and
 * certificate parsers get raw bytes.  Every result is checked against the
 * contract in classify.h (abort on a violation), and must be the same with
 * the account's URLs parsed beforehand (cls_urls_parse, as vaultd does);
 * ASan catches crashes, leaks and out-of-bounds reads.  No libconfig code is
 * reached.
 *
 * Build (fuzz/CMakeLists.txt, with -DSV_FUZZ=ON), from the repository root:
 *   cmake -S . -B build-fuzz -DSV_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DSV_TESTS=OFF
 *   cmake --build build-fuzz -j
 *   LSAN_OPTIONS=suppressions=tests/lsan.supp ./build-fuzz/fuzz/fuzz_classify \
 *     /tmp/corpus fuzz/corpus/fuzz_classify -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b64.h"
#include "classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CA "https://ca.test:14000"

static const char *const thumbs[] = { "y6Sm3lG2BZ6QAhdQXh4Q0Wj8zZ2j5bTqP0r3Yt3nZ1E" };

static const struct cls_account acct = {
	.name = "fuzz",
	.directory_url = CA "/dir",
	.kid = CA "/my-account/1",
	.new_order = CA "/order-plz",
	.new_account = CA "/sign-me-up",
	.revoke_cert = CA "/revoke-cert",
	.key_change = CA "/rollover-account-key",
	.new_nonce = CA "/nonce-plz",
	.key_thumbprints = thumbs,
	.nthumbprints = 1,
};

static const char *const urls[] = { CA "/my-account/1", CA "/order-plz", CA "/sign-me-up",
	CA "/revoke-cert", CA "/rollover-account-key", CA "/nonce-plz", CA "/finalize/1" };

/* The same classification with the account's URLs parsed once; abort if it differs. */
static void
check_same(const char *url, const uint8_t *payload, size_t plen, int e, const struct cls_result *r)
{
	static struct cls_urls *parsed;
	struct cls_account a = acct;
	struct cls_result r2;
	size_t i;

	if (parsed == NULL && cls_urls_parse(&acct, &parsed) != 0)
		abort();
	a.urls = parsed;
	if (cls_classify(&a, url, payload, plen, &r2) != e)
		abort();
	if (e != 0)
		return;
	if (r2.op != r->op || r2.use_jwk != r->use_jwk || r2.nnames != r->nnames ||
	    strcmp(r2.csr_key_thumbprint, r->csr_key_thumbprint) != 0)
		abort();
	for (i = 0; i < r->nnames; i++)
		if (strcmp(r2.names[i], r->names[i]) != 0)
			abort();
	cls_result_free(&r2);
}

/* Classify and check the result against the header's contract. */
static void
check(const char *url, const uint8_t *payload, size_t plen)
{
	struct cls_result r;
	size_t i;
	int e = cls_classify(&acct, url, payload, plen, &r);

	check_same(url, payload, plen, e, &r);
	if (e != 0) {
		if (e > 0 || r.names != NULL || r.nnames != 0 || r.csr_key_thumbprint[0] != '\0')
			abort();
		return;
	}
	if ((unsigned)r.op >= POL_OP_COUNT || r.nnames > CLS_NAMES_MAX ||
	    (r.use_jwk != 0) != (r.op == POL_NEW_ACCOUNT) ||
	    (r.csr_key_thumbprint[0] != '\0') != (r.op == POL_FINALIZE))
		abort();
	if ((r.op == POL_NEW_ORDER || r.op == POL_FINALIZE || r.op == POL_REVOKE) ? r.nnames == 0
										  : r.nnames != 0)
		abort();
	for (i = 0; i < r.nnames; i++)
		if (r.names[i] == NULL || r.names[i][0] == '\0' ||
		    strlen(r.names[i]) > POL_NAME_MAX)
			abort();
	if (r.op == POL_FINALIZE && strcmp(r.csr_key_thumbprint, thumbs[0]) == 0)
		abort(); /* an account key must never pass */
	cls_result_free(&r);
}

/* data as URL up to the first newline, the rest as payload. */
static void
check_split(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *url;
	size_t ul;

	if (nl == NULL)
		return;
	ul = (size_t)(nl - data);
	if ((url = malloc(ul + 1)) == NULL)
		return;
	memcpy(url, data, ul);
	url[ul] = '\0';
	check(url, nl + 1, size - ul - 1);
	free(url);
}

/* data as DER under key, sent to url. */
static void
check_der(const char *url, const char *key, const uint8_t *data, size_t size)
{
	char *b = NULL, *payload = NULL;
	json_t *o = NULL;

	if (b64u_encode(data, size, &b) != 0)
		return;
	if ((o = json_pack("{s:s}", key, b)) != NULL &&
	    (payload = json_dumps(o, JSON_COMPACT)) != NULL)
		check(url, (const uint8_t *)payload, strlen(payload));
	free(payload);
	json_decref(o);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i;

	if (size > CLS_PAYLOAD_MAX + 1)
		return 0;
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		check(urls[i], data, size);
	check_split(data, size);
	if (size <= CLS_DER_MAX + 1) {
		check_der(CA "/finalize/1", "csr", data, size);
		check_der(CA "/revoke-cert", "certificate", data, size);
	}
	return 0;
}
