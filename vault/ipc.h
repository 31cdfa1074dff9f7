/*
 * ipc: framed, typed, capped messages between vaultd's network process
 * (netproc) and key process (keyproc) over a socketpair, in the manner of
 * OpenSSH's monitor.  A frame is a 12-byte header {type, id, length} in host
 * byte order (both ends are the same binary on the same machine) followed by
 * length bytes of body: JSON for most types; IPC_RESP_BODY is a 4-byte status
 * then JSON; IPC_SIGN, the one on every signing request, is IPC_SIGN_NSTRS
 * strings (ipc_put_strs), so that neither side builds or parses JSON for it.
 * Each type has a maximum body
 * size and a direction: who may send it.  A frame of unknown type, from the
 * wrong side, or longer than its type allows is a protocol violation: the
 * receiver stops reading from that peer and the peer is ended.
 */
#ifndef SV_IPC_H
#define SV_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#define IPC_HDR_LEN 12

enum ipc_side { IPC_FROM_NET = 1, IPC_FROM_KEY = 2 };

enum ipc_type {
	IPC_SIGN = 1,	  /* net->key: sign: strings serial, account, url, nonce, payload */
	IPC_ACCOUNT = 2,  /* net->key: account info for an authorised shadow */
	IPC_ENROLL = 3,	  /* net->key: {token, csr, box_public_key} */
	IPC_METRICS = 4,  /* net->key: the key process's Prometheus text */
	IPC_HEALTH = 5,	  /* net->key: liveness of the key process, HSM and audit */
	IPC_TLS_SIGN = 6, /* net->key (TLS channel): {digest, key} of a handshake to sign */
	IPC_RENEW = 7,	/* net->key: {serial, csr, certificate, proof} a shadow's new certificate */
	IPC_WHOAMI = 8, /* net->key: {serial} the shadow and certificate a request comes with */
	IPC_BUNDLE = 9, /* net->key: {serial, name} the sealed key bundle of certificate name */
	IPC_RESP = 64,	/* key->net: {status, body | problem, retry_after} for request id */
	IPC_PEERS = 65, /* key->net: {ca: PEM, revoked: [serial hex...]} (full set) */
	IPC_TLS_SIG = 66, /* key->net (TLS channel): {sig} raw r||s, or {error} */
	/* key->net: a successful answer whose body netproc sends as it is: status
	   (uint32, host order) then the body's JSON text (a JWS for a signature, the
	   answer carrying a sealed bundle). */
	IPC_RESP_BODY = 67,
};

struct ipc_msg {
	uint32_t type;
	uint32_t id;
	uint32_t len;
	uint8_t *body; /* malloc'd, NUL-terminated after len bytes; caller frees */
};

/* Largest body allowed for type, or 0 if type is unknown. */
uint32_t ipc_max(uint32_t type);

/*
 * Take one complete frame from in if there is one, checking it came from the
 * side allowed to send it.  Returns 1 (got *m), 0 (need more bytes), or
 * SV_EPROTO with a detail for a violation (unknown type, wrong sender,
 * oversized): the caller must drop the peer.
 */
int ipc_next(struct evbuffer *in, enum ipc_side from, struct ipc_msg *m);

/* Frame and append a JSON body (serialised compact) to out; SV_ETOOBIG past the type's cap. */
int ipc_put_json(struct evbuffer *out, uint32_t type, uint32_t id, const json_t *body);

/* Frame an IPC_RESP_BODY for request id: status, then the body's JSON text (len bytes). */
int ipc_put_body(struct evbuffer *out, uint32_t id, uint32_t status, const char *body, size_t len);

/* Status (200-299) and body text of an IPC_RESP_BODY; SV_EPROTO otherwise. */
int ipc_body(const struct ipc_msg *m, uint32_t *status, const char **body, size_t *len);

/* The strings of an IPC_SIGN, in this order. */
enum {
	IPC_SIGN_SERIAL,
	IPC_SIGN_FINGERPRINT,
	IPC_SIGN_ACCOUNT,
	IPC_SIGN_URL,
	IPC_SIGN_NONCE,
	IPC_SIGN_PAYLOAD,
	IPC_SIGN_NSTRS
};

/*
 * Frame n strings (NUL-terminated, none may be NULL) as one message of type:
 * each as its length (uint32, host order), its bytes and a NUL.  SV_ETOOBIG
 * past the type's cap.
 */
int ipc_put_strs(
    struct evbuffer *out, uint32_t type, uint32_t id, const char *const *strs, size_t n);

/*
 * Exactly n strings from m's body into strs[], pointing into the body (each
 * NUL-terminated, with no NUL inside): SV_EPROTO if the body is anything else.
 */
int ipc_strs(const struct ipc_msg *m, const char **strs, size_t n);

/* Parse a message body as a JSON object (duplicates rejected). Caller json_decref()s. */
int ipc_json(const struct ipc_msg *m, json_t **out);

void ipc_msg_free(struct ipc_msg *m);

#endif
