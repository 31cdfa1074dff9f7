/*
 * libFuzzer target over the ACME client's parsers of CA answers: header
 * lines (status, Replay-Nonce, Location, Content-Type, Retry-After, Link),
 * capped bodies, the final response check (JSON, PEM, problem documents),
 * problem text formatting, and the directory/order/authz/challenge/account/
 * renewalInfo object parsers.  No network.
 *
 * Input: byte 0 picks the expected body kind; the rest is an HTTP response,
 * header lines up to the first empty line, then the body.  The body (as
 * JSON) also goes through every object parser, and the header block as one
 * Link value.
 *
 * Build (fuzz/CMakeLists.txt, with -DSV_FUZZ=ON), from the repository root:
 *   cmake -S . -B build-fuzz -DSV_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DSV_TESTS=OFF
 *   cmake --build build-fuzz -j
 *   LSAN_OPTIONS=suppressions=tests/lsan.supp ./build-fuzz/fuzz/fuzz_acme_problem \
 *     /tmp/corpus fuzz/corpus/fuzz_acme_problem -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "acme.h"
#include "sv_err.h"

static void
objects(const json_t *j)
{
	struct acme_dir d;
	struct acme_order o;
	struct acme_authz z;
	struct acme_challenge c;
	struct acme_account a;
	struct acme_renewal r;
	struct acme_problem p, cp;
	char text[SV_ERRMSG_MAX];

	if (acme_dir_parse(j, &d) == 0)
		acme_dir_free(&d);
	if (acme_order_parse(j, &o) == 0)
		acme_order_free(&o);
	if (acme_authz_parse(j, &z) == 0) {
		acme_authz_challenge(&z, "http-01");
		acme_authz_free(&z);
	}
	if (acme_challenge_parse(j, &c) == 0)
		acme_challenge_free(&c);
	if (acme_account_parse(j, &a) == 0)
		acme_account_free(&a);
	if (acme_renewal_parse(j, &r) == 0)
		acme_renewal_free(&r);
	if (acme_problem_parse(j, &p) == 0) {
		acme_problem_text(&p, text, sizeof(text));
		acme_problem_text(&p, text, 7);
		if (acme_problem_copy(&cp, &p) == 0)
			acme_problem_free(&cp);
		acme_problem_free(&p);
	}
}

static void
response(enum acme_body kind, const uint8_t *data, size_t len)
{
	struct acme_resp r;
	size_t i = 0, start;
	json_t *j;

	if (acme_resp_init(&r, kind) != 0)
		return;
	while (i < len) {
		start = i;
		while (i < len && data[i] != '\n')
			i++;
		if (i < len)
			i++;
		if (acme_resp_header(&r, (const char *)data + start, i - start, 1700000000) != 0)
			goto out;
		if (i - start <= 2 && (data[start] == '\n' || data[start] == '\r'))
			break; /* empty line: the body follows */
	}
	if (acme_resp_body(&r, data + i, len - i) != 0)
		goto out;
	if (acme_resp_finish(&r, "https://fuzz.example/x") == 0 && r.json != NULL)
		objects(r.json);
	if (acme_json_parse(data + i, len - i, ACME_JSON_MAX, &j) == 0) {
		objects(j);
		json_decref(j);
	}
out:
	acme_resp_free(&r);
}

static void
strings(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1), *alt[ACME_ALT_MAX] = { 0 }, *up = NULL;
	size_t nalt = 0, i, n;
	long secs;
	time_t t;

	if (s == NULL)
		return;
	memcpy(s, data, len);
	s[len] = '\0';
	acme_link_parse(s, alt, &nalt, &up);
	for (i = 0; i < nalt; i++)
		free(alt[i]);
	free(up);
	acme_retry_after_parse(s, 1700000000, &secs);
	acme_rfc3339_parse(s, &t);
	acme_url_check(s);
	acme_token_check(s);
	acme_pem_chain_check(s, strlen(s), &n);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int init;

	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = 1;
	}
	if (len < 1)
		return 0;
	response((enum acme_body)(data[0] % 3), data + 1, len - 1);
	strings(data + 1, len - 1);
	sv_clearerr();
	return 0;
}
