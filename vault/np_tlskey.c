/*
 * np_tlskey: netproc's TLS private key, from a file or signed by the key
 * process (see np_tlskey.h).
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "b64.h"
#include "clock.h"
#include "ecsign.h"
#include "ipc.h"
#include "jwk.h"
#include "log.h"
#include "np_tlskey.h"
#include "sv_err.h"

/* Blocking read of exactly len bytes from the TLS channel, within NP_TLS_WAIT_MS. */
static int
tls_read(int fd, void *buf, size_t len)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		if (poll(&pfd, 1, NP_TLS_WAIT_MS) != 1)
			return -1;
		if ((n = read(fd, p, len)) <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * One proxy key: the channel, and which of the token's TLS keys it is, by
 * its JWK thumbprint.  The key process holds the old key beside the new one
 * while a rotation hands netproc the new certificate, and a handshake begun
 * before the hand-over finishes with the key it began with.
 */
struct proxy {
	struct np_tlskey *k;
	char key[JWK_THUMB_LEN + 1];
};

/* Send {digest, key} on the TLS channel; read back one whole frame into m. */
static int
tls_exchange(struct proxy *px, const uint8_t *dgst, size_t dlen, struct ipc_msg *m)
{
	struct np_tlskey *k = px->k;
	struct evbuffer *b = evbuffer_new();
	uint32_t hdr[3];
	uint8_t body[512];
	json_t *j = NULL;
	char *dig = NULL;
	int r = -1;

	++k->id;
	if (b == NULL || b64u_encode(dgst, dlen, &dig) != 0 ||
	    (j = json_pack("{s:s, s:s}", "digest", dig, "key", px->key)) == NULL ||
	    /* The tests' way to see the key process end the pair for a frame out of place. */
	    ipc_put_json(b, k->fault && k->id == 2 ? IPC_SIGN : IPC_TLS_SIGN, k->id, j) != 0 ||
	    evbuffer_write(b, k->fd) < 0 || evbuffer_get_length(b) != 0)
		goto out;
	/* The answer is judged by the same rules as any frame before it is used. */
	if (tls_read(k->fd, hdr, IPC_HDR_LEN) != 0 || hdr[2] > sizeof(body) ||
	    tls_read(k->fd, body, hdr[2]) != 0)
		goto out;
	evbuffer_add(b, hdr, IPC_HDR_LEN);
	evbuffer_add(b, body, hdr[2]);
	if (ipc_next(b, IPC_FROM_KEY, m) == 1 && m->type == IPC_TLS_SIG && m->id == k->id)
		r = 0;
out:
	free(dig);
	json_decref(j);
	if (b)
		evbuffer_free(b);
	return r;
}

/* The TLS key's private operation: one request to the key process, answer awaited. */
static int
tls_sign(void *ctx, const uint8_t *dgst, size_t dlen, uint8_t *sig, size_t *siglen)
{
	struct proxy *px = ctx;
	struct np_tlskey *k = px->k;
	struct ipc_msg m = { 0 };
	uint8_t *raw = NULL;
	const char *sb;
	json_t *j = NULL;
	size_t rl;
	int r = SV_EIO, wait;
	double now = sv_mono_now();

	if (!k->nolimit && !sv_bucket_take(&k->rate, k->per_second, k->per_second, now, &wait)) {
		if (sv_due(&k->warned, now, 60))
			sv_warn(
			    "more TLS handshakes than limits.tls_signs_per_second (%g): refusing "
			    "handshakes for now",
			    k->per_second);
		return SV_EBUSY;
	}
	if (tls_exchange(px, dgst, dlen, &m) == 0 && ipc_json(&m, &j) == 0 &&
	    (sb = json_string_value(json_object_get(j, "sig"))) != NULL &&
	    b64u_decode(sb, strlen(sb), *siglen, &raw, &rl) == 0) {
		memcpy(sig, raw, rl);
		*siglen = rl;
		r = 0;
	}
	if (r != 0)
		sv_err("TLS handshake signature from the key process failed");
	ipc_msg_free(&m);
	free(raw);
	json_decref(j);
	return r;
}

int
np_tlskey_use(SSL_CTX *ctx, const char *key_file, struct np_tlskey *k)
{
	EVP_PKEY *key = NULL;
	struct proxy *px;
	X509 *cert;
	int ok;

	if (k->fd < 0)
		return SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM);
	if ((cert = SSL_CTX_get0_certificate(ctx)) == NULL || (px = calloc(1, sizeof(*px))) == NULL)
		return 0;
	px->k = k;
	if (jwk_thumbprint_pkey(X509_get0_pubkey(cert), px->key) != 0) {
		free(px);
		return 0;
	}
	if (ecsign_pkey(X509_get0_pubkey(cert), tls_sign, px, free, &key) != 0)
		return 0; /* px freed */
	sv_bucket_init(&k->rate, k->per_second, sv_mono_now());
	k->warned = -1;
	/* Fault injection for the tests, as the key process's SV_FAULT. */
	k->fault = sv_fault("tls-garbage");
	k->nolimit = sv_fault("tls-nolimit");
	ok = SSL_CTX_use_PrivateKey(ctx, key);
	EVP_PKEY_free(key);
	return ok;
}
