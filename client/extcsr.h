/*
 * extcsr: a certificate signing request made elsewhere (shadow issue --csr),
 * for a key this server does not hold (a key in the vault: `vaultctl cert
 * csr`).  Parsed and checked here before anything is ordered; the order is
 * then placed for its names and finalized with it unchanged.  Pure code
 * over memory, but for extcsr_load(), which reads the file.
 */
#ifndef SV_EXTCSR_H
#define SV_EXTCSR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define EXTCSR_FILE_MAX	 (64 * 1024) /* a CSR file, PEM or DER */
#define EXTCSR_NAMES_MAX 100	     /* names in one CSR (as many as one order takes) */

struct extcsr {
	char *what;   /* what errors call it (the file's path) */
	uint8_t *der; /* the CSR as DER, byte for byte what was read (malloc) */
	size_t dlen;
	EVP_PKEY *key;		       /* its public key */
	char *names[EXTCSR_NAMES_MAX]; /* as the CSR spells them, each once */
	char *norm[EXTCSR_NAMES_MAX];  /* the same, normalised (pol_name_normalize) */
	size_t nnames;
};

/*
 * Parse the CSR in data[0..len) (one PEM "CERTIFICATE REQUEST" block, or
 * DER with nothing after it; at most EXTCSR_FILE_MAX bytes) into out; what
 * names it in errors.  Its signature must verify with its own public key.
 * Its names are its subjectAltName DNS names in their order, then its
 * subject CN if that is not among them (a CA and the vault read both): each
 * a DNS name as the policy language takes it, each once (compared
 * normalised), 1 to EXTCSR_NAMES_MAX of them; any other kind of
 * subjectAltName is refused.  Returns 0, SV_ETOOBIG, SV_ENOMEM, or SV_EINVAL
 * with a detail that starts with what.  out is always set: the caller frees
 * it with extcsr_free(), also after a failure.
 */
int extcsr_parse(const uint8_t *data, size_t len, const char *what, struct extcsr *out);

/* extcsr_parse() of the file at path (errors of sv_read_file(): SV_ENOTFOUND, SV_EIO...). */
int extcsr_load(const char *path, struct extcsr *out);

/* Free what extcsr_parse() or extcsr_load() set (a zeroed struct is fine). */
void extcsr_free(struct extcsr *c);

/*
 * The names to order for c.  None given (ngiven 0): c's, in its order.
 * Otherwise the given names must be the same set as c's (compared
 * normalised; repeating one is allowed): then in the given order, spelled
 * as in c.  out has room for EXTCSR_NAMES_MAX pointers, which point into c.
 * SV_EINVAL naming both sets if they differ, or a given name that is not a
 * DNS name.
 */
int extcsr_names(const struct extcsr *c, const char *const *given, size_t ngiven, const char **out,
    size_t *nout);

/* 1 if c's key is key's public key (key may be a private key), else 0. */
int extcsr_key_is(const struct extcsr *c, const EVP_PKEY *key);

#endif
