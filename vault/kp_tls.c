/*
 * kp_tls: the key process signs TLS handshakes for the network process when
 * the vault's TLS key lives in the token (tls.key is a pkcs11: URI).  The
 * network process holds no PKCS#11 session by design, so its OpenSSL key
 * is a proxy (common/ecsign.c) whose every signature is one framed request
 * on a channel of its own: {digest} in, {sig} (raw r||s) out.  This is
 * OpenSSH's monitor signing with the host key for the unprivileged child.
 * The channel can only ask for signatures with that one key, over digests
 * of the sizes TLS uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "b64.h"
#include "ipc.h"
#include "keyproc.h"
#include "log.h"
#include "sv_err.h"
#include "vaultd.h"

static json_t *
sign_one(struct kp *kp, const json_t *req)
{
	const char *d = json_string_value(json_object_get(req, "digest"));
	uint8_t *dg = NULL, sig[HSM_SIG_MAX];
	size_t dl, sl = sizeof(sig);
	char *b = NULL;
	json_t *resp;
	int r;

	if (d == NULL || b64u_decode(d, strlen(d), 64, &dg, &dl) != 0 ||
	    (dl != 32 && dl != 48 && dl != 64)) {
		free(dg);
		return json_pack("{s:s}", "error", "digest must be 32, 48 or 64 bytes");
	}
	r = hsm_sign_digest(kp->h, &kp->tls_key, dg, dl, sig, &sl);
	free(dg);
	if (r != 0 || b64u_encode(sig, sl, &b) != 0) {
		sv_err("TLS handshake signature: %s", sv_errmsg(r));
		return json_pack("{s:s}", "error", "the token did not sign");
	}
	resp = json_pack("{s:s}", "sig", b);
	free(b);
	return resp;
}

static void
on_tls_read(struct bufferevent *bev, void *arg)
{
	struct kp *kp = arg;
	struct ipc_msg m;
	json_t *req, *resp;
	int r;

	while ((r = ipc_next(bufferevent_get_input(bev), IPC_FROM_NET, &m)) == 1) {
		if (m.type != IPC_TLS_SIGN || ipc_json(&m, &req) != 0) {
			ipc_msg_free(&m);
			r = sv_seterr(SV_EPROTO, "ipc: unexpected message on the TLS channel");
			break;
		}
		resp = sign_one(kp, req);
		if (resp == NULL ||
		    ipc_put_json(bufferevent_get_output(bev), IPC_TLS_SIG, m.id, resp) != 0)
			sv_err("TLS channel: cannot answer");
		json_decref(resp);
		json_decref(req);
		ipc_msg_free(&m);
	}
	if (r < 0) {
		sv_err("netproc: %s: ending the pair", sv_errmsg(r));
		exit(VAULTD_EXIT_PEER);
	}
}

int
kp_tls_setup(struct kp *kp, int fd)
{
	struct ks_key k;
	char name[SV_NAME_MAX + 1];
	int r;

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
	kp->tls_key = k.hk;
	if ((kp->tls = bufferevent_socket_new(kp->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		return SV_ENOMEM;
	bufferevent_setcb(kp->tls, on_tls_read, NULL, NULL, kp);
	bufferevent_enable(kp->tls, EV_READ | EV_WRITE);
	return 0;
}
