/*
 * kp_tls: the key process signs TLS handshakes for the network process when
 * the vault's TLS key lives in the token (tls.key is a pkcs11: URI).  The
 * network process holds no PKCS#11 session by design, so its OpenSSL key
 * is a proxy (common/ecsign.c) whose every signature is one framed request
 * on a channel of its own: {digest} in, {sig} (raw r||s) out.  This is
 * OpenSSH's monitor signing with the host key for the unprivileged child.
 * The channel can only ask for signatures with that one key, over digests
 * of the sizes TLS uses.
 *
 * The network process waits for each answer (np_tlskey.c), so they come
 * from a thread of their own with a PKCS#11 session of its own, signing
 * from a session copy of the key made on the key process's thread at start
 * (hsm_key_ready(): the thread then reads no token object).  A handshake
 * thus waits for one signature, never for the batch of account signatures
 * the event loop may be judging and signing; when the event loop answered
 * them, 100 handshakes a second took about 40% of the signing rate.  The
 * thread touches only the channel, its session and its key: no state, no
 * audit, no metrics.  If the network process breaks the protocol, the
 * thread stops and the event loop ends the pair at its next tick.
 *
 * A rotation of the key (kp_tlscert.c) adds its new version to the thread's keys
 * before the network process gets the certificate for it, and keeps the one
 * before: each request names its key by JWK thumbprint, so a handshake begun
 * before the hand-over ends with the key it began with.  The table is the
 * one thing the event loop touches beside the thread, under its mutex.
 *
 * The network process holds handshakes to limits.tls_signs_per_second; the
 * thread holds it too, with bursts twice as large so that it never refuses
 * what a well-behaved network process asked for: a compromised one cannot
 * make it sign faster than that (the answer is an error, the handshake
 * fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "b64.h"
#include "bucket.h"
#include "clock.h"
#include "ipc.h"
#include "jwk.h"
#include "keyproc.h"
#include "log.h"
#include "sv_err.h"
#include "vaultd.h"

#define KP_TLS_KEYS 2 /* the current version, and the one before it during a rotation */

struct tls_key {
	int version;	    /* 0: a free slot */
	struct hsm_key key; /* pinned: a session copy in the thread's session */
	char tp[JWK_THUMB_LEN + 1];
};

struct kp_tls {
	pthread_t th;
	int fd;		    /* the TLS channel (blocking) */
	struct hsm *h;	    /* the thread's session */
	pthread_mutex_t mu; /* keys[], and h while a key is added or dropped */
	struct tls_key keys[KP_TLS_KEYS];
	int broken; /* set by the thread (atomic): the peer broke the protocol */
	char why[SV_ERRMSG_MAX];
	struct sv_bucket rate; /* limits.tls_signs_per_second, bursts of twice that */
	double per_second;
	double warned;	   /* when refusals were last logged, or < 0 */
	double warned_key; /* when a request for a key it does not hold was last logged, or < 0 */
	const char *uri;   /* tls.key */
};

static json_t *
sign_one(struct kp_tls *t, const json_t *req)
{
	const char *d = json_string_value(json_object_get(req, "digest"));
	const char *tp = json_string_value(json_object_get(req, "key"));
	uint8_t *dg = NULL, sig[HSM_SIG_MAX];
	size_t dl, sl = sizeof(sig);
	char *b = NULL;
	json_t *resp;
	double now = sv_mono_now();
	int r, wait, i;

	if (!sv_bucket_take(&t->rate, t->per_second, 2 * t->per_second, now, &wait)) {
		if (sv_due(&t->warned, now, 60))
			sv_warn("TLS handshake signatures asked for faster than "
				"limits.tls_signs_per_second (%g): refusing them for now",
			    t->per_second);
		return json_pack("{s:s}", "error", "past limits.tls_signs_per_second");
	}
	if (d == NULL || b64u_decode(d, strlen(d), 64, &dg, &dl) != 0 ||
	    (dl != 32 && dl != 48 && dl != 64)) {
		free(dg);
		return json_pack("{s:s}", "error", "digest must be 32, 48 or 64 bytes");
	}
	pthread_mutex_lock(&t->mu);
	for (i = 0; i < KP_TLS_KEYS; i++)
		if (t->keys[i].version != 0 && tp != NULL && strcmp(tp, t->keys[i].tp) == 0)
			break;
	r = i < KP_TLS_KEYS ? hsm_sign_digest(t->h, &t->keys[i].key, dg, dl, sig, &sl) : 1;
	pthread_mutex_unlock(&t->mu);
	free(dg);
	if (r == 1) {
		/* tls.cert is for another key (put there by hand?): every handshake fails. */
		if (sv_due(&t->warned_key, now, 60))
			sv_err(
			    "TLS handshakes fail: the certificate netproc serves is not for the "
			    "TLS key in the token (tls.key %s; vaultctl status names the version)",
			    t->uri);
		return json_pack("{s:s}", "error", "not a TLS key of this vault");
	}
	if (r != 0 || b64u_encode(sig, sl, &b) != 0) {
		sv_err("TLS handshake signature: %s", sv_errmsg(r));
		return json_pack("{s:s}", "error", "the token did not sign");
	}
	resp = json_pack("{s:s}", "sig", b);
	free(b);
	return resp;
}

/* Answer every whole request in `in` into `out`; < 0 if the peer broke the protocol. */
static int
answer_all(struct kp_tls *t, struct evbuffer *in, struct evbuffer *out)
{
	struct ipc_msg m;
	json_t *req, *resp;
	int r;

	while ((r = ipc_next(in, IPC_FROM_NET, &m)) == 1) {
		if (m.type != IPC_TLS_SIGN || ipc_json(&m, &req) != 0) {
			ipc_msg_free(&m);
			return sv_seterr(SV_EPROTO, "ipc: unexpected message on the TLS channel");
		}
		resp = sign_one(t, req);
		if (resp == NULL || ipc_put_json(out, IPC_TLS_SIG, m.id, resp) != 0)
			sv_err("TLS channel: cannot answer");
		json_decref(resp);
		json_decref(req);
		ipc_msg_free(&m);
	}
	return r;
}

static void *
tls_main(void *arg)
{
	struct kp_tls *t = arg;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	sigset_t all;
	int n, r = 0;

	/* Signals are the event loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (in == NULL || out == NULL)
		r = sv_seterr(SV_ENOMEM, "TLS channel: out of memory");
	while (r == 0) {
		if ((n = evbuffer_read(in, t->fd, 4096)) < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* closed: the network process is gone, or kp_tls_stop() */
		if ((r = answer_all(t, in, out)) < 0)
			break;
		r = 0;
		while (evbuffer_get_length(out) > 0)
			if (evbuffer_write(out, t->fd) < 0 && errno != EINTR)
				break;
		if (evbuffer_get_length(out) > 0)
			break; /* cannot write: the peer is gone */
	}
	if (r < 0) {
		snprintf(t->why, sizeof(t->why), "%s", sv_errmsg(r));
		__atomic_store_n(&t->broken, 1, __ATOMIC_RELEASE);
		shutdown(t->fd, SHUT_RDWR); /* its handshakes fail now, not at NP_TLS_WAIT_MS */
	}
	if (in)
		evbuffer_free(in);
	if (out)
		evbuffer_free(out);
	return NULL;
}

void
kp_tls_check(struct kp *kp)
{
	if (kp->tls != NULL && __atomic_load_n(&kp->tls->broken, __ATOMIC_ACQUIRE)) {
		sv_err("netproc: %s: ending the pair", kp->tls->why);
		pthread_join(kp->tls->th, NULL); /* it has stopped: reap it before exit */
		exit(VAULTD_EXIT_PEER);
	}
}

static void
tls_free(struct kp_tls *t)
{
	hsm_close(t->h); /* its session copies of the keys go with it */
	if (t->fd >= 0)
		close(t->fd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* Put version k of the TLS key into slot (the event loop's thread, the mutex held). */
static int
key_set(struct kp *kp, struct kp_tls *t, struct tls_key *slot, const struct ks_key *k)
{
	EVP_PKEY *pub = NULL;
	int r;

	if (slot->version != 0)
		hsm_key_unpin(t->h, &slot->key);
	memset(slot, 0, sizeof(*slot));
	slot->key = k->hk;
	if ((r = hsm_key_public(kp->h, &slot->key, &pub)) != 0 ||
	    (r = jwk_thumbprint_pkey(pub, slot->tp)) != 0) {
		EVP_PKEY_free(pub);
		return sv_preferr(r, "%s", k->hk.label);
	}
	EVP_PKEY_free(pub);
	slot->version = k->version;
	hsm_key_pin(&slot->key);
	if (!hsm_key_ready(t->h, &slot->key))
		sv_warn("%s: no session copy of the key: handshakes sign from the token object",
		    k->hk.label);
	return 0;
}

int
kp_tls_add(struct kp *kp, const struct ks_key *k)
{
	struct kp_tls *t = kp->tls;
	int i, r, slot = -1;

	if (t == NULL)
		return 0;
	pthread_mutex_lock(&t->mu);
	/* The same version again (an interrupted rotation), else a free slot, else the oldest. */
	for (i = 0; i < KP_TLS_KEYS && slot < 0; i++)
		if (t->keys[i].version == k->version)
			slot = i;
	for (i = 0; i < KP_TLS_KEYS && slot < 0; i++)
		if (t->keys[i].version == 0)
			slot = i;
	if (slot < 0)
		for (slot = 0, i = 1; i < KP_TLS_KEYS; i++)
			if (t->keys[i].version < t->keys[slot].version)
				slot = i;
	r = key_set(kp, t, &t->keys[slot], k);
	pthread_mutex_unlock(&t->mu);
	return r;
}

void
kp_tls_drop(struct kp *kp, const char *name, int version)
{
	struct kp_tls *t = kp->tls;
	char label[HSM_LABEL_MAX + 1];
	int i;

	if (t == NULL)
		return;
	snprintf(label, sizeof(label), "%s@v%d", name, version);
	pthread_mutex_lock(&t->mu);
	for (i = 0; i < KP_TLS_KEYS; i++)
		if (t->keys[i].version != 0 && strcmp(t->keys[i].key.label, label) == 0) {
			hsm_key_unpin(t->h, &t->keys[i].key);
			memset(&t->keys[i], 0, sizeof(t->keys[i]));
		}
	pthread_mutex_unlock(&t->mu);
}

void
kp_tls_stop(struct kp *kp)
{
	if (kp->tls == NULL)
		return;
	shutdown(kp->tls->fd, SHUT_RDWR); /* the thread's read returns 0 */
	pthread_join(kp->tls->th, NULL);
	tls_free(kp->tls);
	kp->tls = NULL;
}

int
kp_tls_setup(struct kp *kp, int fd)
{
	struct kp_tls *t;
	struct ks_key k;
	char name[SV_NAME_MAX + 1];
	int r, fl;

	if (!vconf_tls_in_token(kp->cfg)) {
		close(fd);
		return 0;
	}
	if ((r = ks_from_uri(kp->st, kp->cfg->tls_key, &k, name)) != 0)
		return sv_preferr(r, "tls.key");
	if (k.hk.type != HSM_EC_P256 && k.hk.type != HSM_EC_P384)
		return sv_seterr(SV_EUNSUPP,
		    "tls.key: the TLS key in the token must be EC P-256 or "
		    "P-384");
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return SV_ENOMEM;
	t->fd = fd;
	pthread_mutex_init(&t->mu, NULL);
	t->per_second = kp->cfg->tls_signs_per_second;
	sv_bucket_init(&t->rate, 2 * t->per_second, sv_mono_now());
	t->warned = t->warned_key = -1;
	t->uri = kp->cfg->tls_key;
	if ((r = hsm_clone(kp->h, &t->h)) != 0) {
		tls_free(t);
		return sv_preferr(r, "tls.key: a session for handshake signatures");
	}
	if ((r = key_set(kp, t, &t->keys[0], &k)) != 0) {
		tls_free(t);
		return sv_preferr(r, "tls.key");
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    pthread_create(&t->th, NULL, tls_main, t) != 0) {
		tls_free(t);
		return sv_seterr(
		    SV_EIO, "tls.key: cannot start the handshake signer: %s", strerror(errno));
	}
	pthread_setname_np(t->th, "vaultd-kp-tls"); /* ps -L, /proc/PID/task/TID/comm */
	kp->tls = t;
	return 0;
}
