/*
 * A scripted HTTPS fake ACME CA for tests (fakeca.c): OpenSSL, a thread per
 * connection, 127.0.0.1 on an ephemeral port, a self-signed certificate for
 * IP 127.0.0.1.  It serves the directory (/dir, and /dir-min with only the
 * required endpoints) and newNonce itself; every other request goes to the
 * script the test sets in srv.script.  Each answer carries a fresh
 * Replay-Nonce "nonceN" unless the reply or srv.nonce_off says not to.
 */
#ifndef SV_TEST_FAKECA_H
#define SV_TEST_FAKECA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#define REQ_MAX (256 * 1024)

/* One request as the server saw it (the JWS decoded, not verified). */
struct req {
	char method[8], path[512], ctype[128], ua[256], accept[128];
	char *body;
	size_t blen;
	json_t *jws, *hdr; /* parsed body and protected header (POST) */
	char *payload;	   /* decoded payload, NUL-terminated */
};

struct reply {
	int status;
	const char *ctype; /* NULL: none */
	char *headers;	   /* extra header lines (each ending "\r\n"), malloc'd, or NULL */
	char *body;	   /* malloc'd or NULL */
	size_t blen;
	int no_length; /* no Content-Length: body until the connection closes */
	int no_nonce;
};

typedef void (*script_fn)(const struct req *q, struct reply *r);

/* What the tests see of the server; hold mu to read conns, last_nonce, last. */
struct fakeca {
	pthread_mutex_t mu;
	script_fn script;
	unsigned long conns;
	atomic_int nonce_off; /* send no Replay-Nonce at all */
	char last_nonce[32];  /* the Replay-Nonce of the last answer */
	struct req last;      /* the last POST (owned here) */
	char cafile[64];      /* PEM of the server's certificate, for acme_opts */
};

extern struct fakeca srv;
extern char base[64]; /* "https://127.0.0.1:PORT" */

/* Start the server (base and srv.cafile set): 0, or -1. */
int fakeca_start(void);
/* Stop it once the client has closed its connections, and free what it holds. */
void fakeca_stop(void);
/* Answer with status, Content-Type ctype (NULL: none) and a copy of body. */
void json_reply(struct reply *r, int status, const char *ctype, const char *body);

#endif
