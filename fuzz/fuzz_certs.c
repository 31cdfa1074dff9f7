/*
 * libFuzzer target: the certificate chain parser of `vaultctl cert import`
 * and the key process (vault/certs.c), fed arbitrary bytes.  A chain it
 * takes is written back as PEM, and that must parse again to as many
 * certificates (unless the PEM grew past the cap: lines longer than 64
 * characters are written back as 64).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *chain = NULL, *again = NULL;
	char *pem = NULL;

	if (certs_parse_chain((const char *)data, size, &chain) != 0)
		return 0;
	if (certs_chain_pem(chain, &pem) == 0 && strlen(pem) <= CERTS_CHAIN_MAX &&
	    (certs_parse_chain(pem, strlen(pem), &again) != 0 ||
		sk_X509_num(again) != sk_X509_num(chain)))
		abort();
	free(pem);
	sk_X509_pop_free(again, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return 0;
}
