/*
 * np_tlskey: the private key behind netproc's TLS certificate.  A PEM file,
 * or, when the key is in the token (tls.key is a pkcs11: URI), a proxy key
 * whose handshake signatures the key process makes: netproc sends the digest
 * on the TLS channel and waits (at most NP_TLS_WAIT_MS) for one framed
 * answer, judged by the same IPC rules as every other frame.
 */
#ifndef SV_NP_TLSKEY_H
#define SV_NP_TLSKEY_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "bucket.h"

#define NP_TLS_WAIT_MS 5000 /* the key process's answer to a TLS signature */

/*
 * Every handshake, even one that will fail for want of a client certificate,
 * costs a signature in the key process and holds netproc's loop until it
 * comes back: at most per_second of them (limits.tls_signs_per_second, with
 * bursts of as many); past that, handshakes fail until the bucket refills.
 */
struct np_tlskey {
	int fd;		   /* the TLS channel to the key process, or -1: key_file */
	uint32_t id;	   /* of the last request */
	double per_second; /* set by the caller before np_tlskey_use() */
	struct sv_bucket rate;
	double warned; /* when the limit was last logged, or < 0 */
	int fault;     /* tests: SV_FAULT=tls-garbage, the 2nd request is of the wrong type */
	int nolimit;   /* tests: SV_FAULT=tls-nolimit, no limit here (the key process's holds) */
};

/* SSL_CTX_use_PrivateKey* for ctx's certificate: 1 on success, as OpenSSL. */
int np_tlskey_use(SSL_CTX *ctx, const char *key_file, struct np_tlskey *k);

#endif
