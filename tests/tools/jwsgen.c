/*
 * jwsgen: for the cross-check with an independent JOSE implementation.
 * Creates a throw-away SoftHSM2 token, one key of every type through hsm/,
 * and prints one JSON line per key: {"type", "jwk", "jws"} where jws is a
 * flattened JWS signed in the token.  tests/integration/test_jwcrypto.sh
 * verifies each line with python3-jwcrypto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hsm.h"
#include "jwk.h"
#include "jws.h"
#include "sv_err.h"
#include "testtok.h"

static int
one(struct hsm *h, enum hsm_keytype t)
{
	struct hsm_key k;
	struct hsm_jws_ctx ctx = { h, &k };
	struct jws_signer s;
	EVP_PKEY *pub = NULL;
	json_t *jwk = NULL, *jws = NULL, *hdr = NULL, *line = NULL;
	const char *payload = "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"master.test\"}]}";
	char *out;
	int r;

	if ((r = hsm_key_create(h, t, hsm_keytype_name(t), 0, &k)) != 0 ||
	    (r = hsm_key_public(h, &k, &pub)) != 0 || (r = jwk_from_pkey(pub, &jwk)) != 0)
		goto done;
	hsm_jws_signer(&ctx, &s);
	hdr = json_pack("{s:s, s:s, s:s}", "nonce", "n0nce", "url",
	    "https://ca.test/acme/new-order", "kid", "https://ca.test/acme/acct/1");
	if ((r = jws_sign(&s, hdr, (const uint8_t *)payload, strlen(payload), &jws)) != 0)
		goto done;
	line = json_pack("{s:s, s:O, s:O}", "type", hsm_keytype_name(t), "jwk", jwk, "jws", jws);
	if ((out = json_dumps(line, JSON_COMPACT)) != NULL) {
		puts(out);
		free(out);
	}
done:
	json_decref(line);
	json_decref(hdr);
	json_decref(jws);
	json_decref(jwk);
	EVP_PKEY_free(pub);
	if (r != 0)
		fprintf(stderr, "jwsgen: %s: %s\n", hsm_keytype_name(t), sv_errmsg(r));
	return r;
}

int
main(void)
{
	struct testtok tok;
	struct hsm *h;
	int t, r = 0;

	if (sodium_init() < 0 || testtok_make(&tok, "jwsgen") != 0) {
		fprintf(stderr, "jwsgen: cannot make a token\n");
		return 1;
	}
	if (hsm_open(&tok.cfg, &h) != 0) {
		fprintf(stderr, "jwsgen: %s\n", sv_errmsg(SV_EHSM));
		testtok_free(&tok);
		return 1;
	}
	for (t = 0; t < HSM_KEYTYPE_COUNT && r == 0; t++)
		r = one(h, (enum hsm_keytype)t);
	hsm_close(h);
	testtok_free(&tok);
	return r == 0 ? 0 : 1;
}
