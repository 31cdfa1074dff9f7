/*
 * Internals of vaultd's key process, shared by keyproc.c (set-up, event
 * loop, group commit), kp_sign.c (signing and account information),
 * kp_enroll.c (enrolment), kp_admin.c (the admin socket), kp_bundle.c
 * (sealed key bundles) and kp_cert.c (certificates for the admin socket).
 */
#ifndef SV_KEYPROC_H
#define SV_KEYPROC_H

#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "accounts.h"
#include "audit.h"
#include "bucket.h"
#include "hmap.h"
#include "hsm.h"
#include "keystore.h"
#include "lguard.h"
#include "metrics.h"
#include "pol.h"
#include "state.h"
#include "sv_err.h"
#include "vconf.h"

/* A cached account: its record, current key and every key thumbprint it ever had. */
struct kp_account {
	struct account a;
	struct hsm_key key;  /* current version (handle cache) */
	struct hsm_key key2; /* the same, for the signer thread's session (its own copy) */
	char alg[8];
	json_t *jwk; /* current public JWK */
	char thumbprint[48];
	struct cls_urls *urls; /* its URLs parsed once for the classifier; NULL: per request */
	int loaded;
};

#define KP_SERIAL_MAX 64 /* hex digits of a certificate serial from netproc */
/* Certificate serials cached (-> active shadow); past this the cache starts afresh. */
#define KP_SERIALS_MAX 4096

struct kp_rate {
	char shadow[SV_NAME_MAX + 1];
	struct sv_bucket b;
	int dirty;		  /* changed since kp_rates_flush() */
	double recorded;	  /* when a rate-limit refusal was last audited (< 0: never) */
	unsigned long unrecorded; /* refusals since then, not audited */
};
#define KP_LIMITED_EVERY 1.0 /* seconds between audited rate-limit refusals of one shadow */

struct kp_tls; /* kp_tls.c */

struct kp {
	struct event_base *base;
	const struct vconf *cfg;
	struct state *st;
	struct hsm *h;
	struct audit *audit;
	struct pol *pol;
	struct metrics *m;
	struct bufferevent *net;
	struct kp_tls *tls; /* TLS handshake signatures, on a thread (TLS key in the token) */
	struct evconnlistener *admin;
	struct lguard *admin_guard; /* at most 64 admin connections; no accept() loop */
	struct event *ev_hup, *ev_term, *ev_tick;

	X509 *ca; /* the issuing shadow CA: vault.shadow-ca's current version */
	struct hsm_key ca_key;
	EVP_PKEY *ca_priv;	  /* hsm_pkey(): signs in the token */
	int ca_version;		  /* its version */
	char *ca_pem;		  /* ca.pem's bundle, the issuing CA first (kp_ca.c) */
	char *ca_links_pem;	  /* links between its CAs (ca-links.pem), NULL if none */
	int ca_count;		  /* certificates in it */
	struct hsm_key audit_key; /* vault.audit's current version: signs checkpoints */
	int audit_key_version;
	char audit_key_id[SV_NAME_MAX + 16]; /* "vault.audit@vN", as checkpoints name it */
	struct hsm_key bundle_key; /* vault.bundle's current version: signs sealed bundles */
	char bundle_pk[48];	   /* its Ed25519 public key, base64url, for enrolment answers */
	json_t *bundle_chain;	   /* links from version 1 to it (common/bundle.h), NULL if none */
	int bundle_created; /* kp_bundle_init() made vault.bundle: audited once the log is open */
	uint64_t seq_at_checkpoint;
	double last_checkpoint;
	double last_prune;     /* nonces */
	double last_tls_renew; /* kp_tlscert_check() */

	/* Accounts and every account key thumbprint (for the CSR check). */
	struct kp_account *accts;
	size_t naccts;
	char **thumbs;
	size_t nthumbs;
	int accts_stale; /* reload before the next use */

	/* Looked up for every request: hash maps, so the cost does not grow with the shadows. */
	struct hmap *rates; /* shadow name -> struct kp_rate * */
	struct hmap
	    *serials; /* certificate serial -> active shadow's name (char *), from the database */

	struct kp_nonces *nonces; /* signed since the last flush (kp_nonce.c) */

	/* The current batch (group commit). */
	int in_txn;		    /* a state transaction is open */
	int audited;		    /* records were added in this batch */
	int audit_down;		    /* the last commit failed */
	int committing;		    /* kp_commit_start() began the audit commit */
	int defer;		    /* a network batch: signatures wait for kp_commit_start() */
	struct kp_pending *pending; /* the signature the current request left for later */
	int draining;

	/* The signer thread (common/job.h): a second session signing a batch beside this thread
	 * (kp_sign.c). */
	struct hsm *h2;
	struct sv_job *signer;
	int signer_fault;      /* tests: SV_FAULT=signer-fails, every signature there fails */
	struct kp_sigwork *sw; /* the batch being signed, nsw items; sw_next: the next to take */
	size_t nsw, sw_next;
	struct kp_sigwork *work; /* on_net_read()'s, for nwork signatures */
	size_t nwork;
	double sign_avg; /* seconds per signature, moving average */
};

/*
 * A batch is split with the signer thread only while signatures take at
 * least this long on average (an RSA key in SoftHSM2: ~1.3 ms).  Waking the
 * thread and waiting for it costs the batch more than a signature of an EC
 * key (~0.1 ms) takes, and on a machine whose cores are busy (netproc, TLS)
 * a second signing core adds nothing: bench/README.md, eighth session.
 */
#define KP_SPLIT_SECONDS 0.0004

/* A response to netproc: {status, body} or a problem document. */
json_t *kp_ok(int status, json_t *body);
json_t *kp_problem(
    int status, const char *type, const char *title, const char *detail, int retry_after);

/*
 * Queue an audit record for the current batch ({"type": type, ...fields};
 * audit_add_typed()); fields is consumed, and NULL (a json_pack() that
 * failed) fails the batch closed like a write error.  The batch is
 * committed (fsync) before any answer.
 */
void kp_audit(struct kp *kp, const char *type, json_t *fields);

/* Open the batch's state transaction if it is not open yet. */
int kp_txn(struct kp *kp);

/*
 * End the batch: the audit records are committed (fsync) and then the state
 * transaction.  kp_commit_start() may come first: it writes the records and
 * starts their sync, and kp_commit() then waits for it.  Non-zero: the
 * records are not durable, so no answer that depends on them may go out.
 */
void kp_commit_start(struct kp *kp);
int kp_commit(struct kp *kp);
/* Load the policy file and, if it is good, put it in place of the current
 * policies and log it (by: who asked); else keep them and return why. */
int kp_policy_reload(struct kp *kp, const char *by);
/* Rotate the audit log (audit_rotate(), signed by the audit key); the archive's path in archive. */
int kp_audit_rotate(struct kp *kp, char *archive, size_t n);

/*
 * One of the vault's Ed25519 keys in the token signing for audit.c
 * (audit_sign_fn) or bundle.c (bundle_sign_fn): kp_ed25519_sign(ctx, ...)
 * with ctx a struct kp_ed_signer; timed in shadowvault_hsm_sign_seconds
 * once the metrics exist.
 */
struct kp_ed_signer {
	struct kp *kp;
	struct hsm_key *key;
};
int kp_ed25519_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig);

/* The audit key (kp_auditkey.c): load the current version of vault.audit. */
int kp_audit_key_load(struct kp *kp);
/* Hand the log over to the current version if an older one is in force in it (a handover
 * checkpoint signed by that one); 0 if nothing was to do. */
int kp_audit_settle(struct kp *kp);
/* A checkpoint by the current version (after kp_audit_settle()). */
int kp_audit_checkpoint(struct kp *kp);
/* audit_rotate() by the current version (after kp_audit_settle()). */
int kp_audit_rotate_log(struct kp *kp, char *archive, size_t n);
/* `vaultctl key rotate vault.audit`: a new version, its public key appended to the audit keys
 * file, made current, and the log handed over to it; *result describes the new version. */
int kp_audit_key_rotate(struct kp *kp, json_t **result);
/* `vaultctl key rotate vault.bundle`: a new version signs bundles; the links to it are made
 * (kp_bundle.c); *result describes the new version. */
int kp_bundle_key_rotate(struct kp *kp, json_t **result);

/*
 * Handlers: each returns the response for netproc, never NULL, except that
 * kp_sign() with kp->defer set returns NULL when it left its signature in
 * kp->pending: kp_sign_batch() makes it (after kp_commit_start()) and
 * kp_pending_free() frees it.
 */
struct kp_pending;
struct ipc_msg;
json_t *kp_sign(struct kp *kp, const struct ipc_msg *m); /* an IPC_SIGN: ipc_strs() */
void kp_pending_free(struct kp_pending *p);

/*
 * A batch's signatures, made after kp_commit_start(): p set by the caller
 * (idx is the caller's own; it frees p after), resp set by kp_sign_batch()
 * (NULL only when out of memory).  The key process's thread and, for two or
 * more, the signer thread (its own PKCS#11 session) take them in turn.
 */
struct kp_sigwork {
	struct kp_pending *p;
	size_t idx;
	json_t *resp;
	/* Inside kp_sign_batch(): */
	struct kp_account *a;
	char *jws;
	size_t len;
	int r;
	int second; /* made by the signer thread */
	double secs;
	char why[SV_ERRMSG_MAX];
};
void kp_sign_batch(struct kp *kp, struct kp_sigwork *w, size_t n);
/* Start the signer thread (a session cloned from kp->h); without it kp_sign_batch() signs alone. */
int kp_signer_start(struct kp *kp);
void kp_signer_stop(struct kp *kp);
json_t *kp_account_info(struct kp *kp, const json_t *req);
json_t *kp_enroll(struct kp *kp, const json_t *req);
/*
 * A new client certificate for the shadow holding certificate serial, from
 * sv_renew_from() of that one (common/renewal.h; the old one stays valid
 * until it expires; an earlier renewal of the same certificate is revoked).
 */
/* The proof of possession is a signature over this, then the CSR (PEM). */
#define KP_RENEW_CONTEXT "shadowvault identity renewal v1\n"
json_t *kp_renew(struct kp *kp, const json_t *req);
/* {shadow, serial, not_after} of the certificate a request came with (the
 * first request with a renewed one retires the one it replaced). */
json_t *kp_whoami(struct kp *kp, const json_t *req);

/* Accounts cache: find by name (loading it if needed); NULL with a detail if absent. */
struct kp_account *kp_account(struct kp *kp, const char *name);
void kp_accounts_reset(struct kp *kp);
/*
 * The active shadow holding the certificate with this serial and SHA-256
 * fingerprint fpr (hex, as netproc read them off the verified certificate;
 * name has room for SV_NAME_MAX + 1).  SV_EDENIED if revoked or unknown, or
 * if fpr is not the fingerprint of the certificate the vault issued with that
 * serial (the message says which); SV_ESTATE (name filled) if the
 * certificate has expired.  Cached: call kp_shadows_reset() whenever shadows
 * or certificates change.
 */
int kp_shadow(struct kp *kp, const char *serial, const char *fpr, char *name);
/* Its refusal's detail for the client and the audit: what kp_shadow() said, or r's class. */
const char *kp_shadow_why(int r);
void kp_shadows_reset(struct kp *kp);

/* Make sure the accounts cache is loaded: 0 or the error. */
int kp_accounts_ready(struct kp *kp);

/* The TLS signing channel, answered on a thread of its own (closes fd when the TLS key is a file).
 */
int kp_tls_setup(struct kp *kp, int fd);
/* End the pair if the TLS channel's peer broke the protocol (on_tick). */
void kp_tls_check(struct kp *kp);
/* Stop the handshake signer and close its session (before the token's last session). */
void kp_tls_stop(struct kp *kp);
/*
 * Version k of the TLS key in the token signs handshakes too, from now on
 * (a rotation, before netproc gets the certificate for it); the older of
 * the two it keeps makes room.  kp_tls_drop(): version of key name was
 * destroyed (nothing if the thread does not hold it).
 */
int kp_tls_add(struct kp *kp, const struct ks_key *k);
void kp_tls_drop(struct kp *kp, const char *name, int version);

/* Admin socket. */
int kp_admin_listen(struct kp *kp);

/*
 * Sealed key bundles (kp_bundle.c).  kp_bundle_init: find the bundle key,
 * creating it (and logging so) in a state directory from before bundles,
 * and fill kp->bundle_key and kp->bundle_pk.  kp_bundle: an IPC_BUNDLE
 * {serial, name}; the 200 answer is {status, raw: its body's JSON text}.
 */
int kp_bundle_init(struct kp *kp);
json_t *kp_bundle(struct kp *kp, const json_t *req);

/*
 * Admin operations on certificates (kp_cert.c): "cert.csr" {name, dns: [..]}
 * a CSR signed by the current version of key name; "cert.import" {name,
 * chain} stores a chain whose leaf holds that key; "cert.list".
 */
int kp_cert_csr(struct kp *kp, const json_t *req, json_t **result);
int kp_cert_import(struct kp *kp, const json_t *req, json_t **result);
int kp_cert_list(struct kp *kp, const json_t *req, json_t **result);

/*
 * Push the CA bundle and revoked serials to netproc, and the TLS server
 * certificate chain's PEM when server_chain is not NULL (a CA rotation reissued it).
 */
void kp_push_peers(struct kp *kp, const char *server_chain);
/* The same with a new TLS private key (PEM) for that chain: tls renew --new-key, a key file. */
void kp_push_peers_key(struct kp *kp, const char *server_chain, const char *server_key);

/*
 * The shadow CA (kp_ca.c).  kp_ca_load: read ca.pem's bundle and find the
 * certificate of vault.shadow-ca's current version (kp->ca, ca_priv,
 * ca_version, ca_pem, ca_count); refused if none holds it.
 * kp_ca_key_rotate: `vaultctl key rotate vault.shadow-ca`.
 * kp_ca_key_destroy: {version, yes} `vaultctl key destroy vault.shadow-ca`,
 * refused for the current version or while a shadow needs that one.
 */
int kp_ca_load(struct kp *kp);
void kp_ca_free(struct kp *kp);
int kp_ca_key_rotate(struct kp *kp, json_t **result);
int kp_ca_key_destroy(struct kp *kp, const json_t *req, json_t **result);

/* For vaultctl status: shadow_ca (NAME@vN issuing), shadow_cas_trusted, and kp_tlscert_status(). */
void kp_ca_status(struct kp *kp, json_t *out);
/* The bundle in ca.pem; the token key of the CA version whose certificate ca is (hsm_pkey()). */
int kp_ca_bundle_read(struct kp *kp, STACK_OF(X509) * *out);
int kp_ca_priv_of(struct kp *kp, X509 *ca, EVP_PKEY **priv);

/*
 * The vault's TLS server certificate and key (kp_tlscert.c), when a CA of
 * the bundle issued the certificate.  kp_tlscert_renew reissues it by the
 * CA that issued it (same key, tls.names), writes it and hands it to
 * netproc; due_only: only in its renewal window (tls.renew_days), else at
 * once, and a certificate from elsewhere is then an error; new_key: for a
 * new key, which replaces the tls.key file, or becomes the current version
 * of the key in the token.  *result {renewed, serial, not_after, new_key,
 * key?}.  kp_tlscert_check: the due_only renewal at start and every hour,
 * audited when it renews.
 */
int kp_tlscert_renew(struct kp *kp, int due_only, int new_key, json_t **result);
void kp_tlscert_check(struct kp *kp);
/*
 * The certificate reissued if one of the CA certificates `from` issued it
 * (and, when due_only, it is in its renewal window): by the current CA if
 * to_current (a CA version being destroyed), else by the one that issued
 * it; for newkey if not NULL.  *chain: the new chain's PEM, written to
 * tls.cert (NULL: nothing done, and *skip says why).
 */
int kp_tlscert_reissue(struct kp *kp, STACK_OF(X509) * from, int to_current, int due_only,
    EVP_PKEY *newkey, char **chain, const char **skip);
/*
 * At start, before the handshake thread loads the key: finish or drop a key
 * swap of tls renew --new-key that a crash cut short.
 */
void kp_tlscert_recover(struct kp *kp);
/* {version, confirm} `vaultctl key destroy vault.tls`: a version not current. */
int kp_tlscert_key_destroy(struct kp *kp, const json_t *req, json_t **result);
/* For vaultctl status: tls_cert_expires, tls_key (the file, or NAME@vN in the token). */
void kp_tlscert_status(struct kp *kp, json_t *out);

/*
 * Signed nonces (kp_nonce.c).  kp_nonce_fresh: 1 if the nonce hash was never
 * signed (and remember it), 0 if it was or on error (*err set).  Flush
 * between batches only: every second and past KP_NONCE_FLUSH, handing the
 * nonces to the writer thread (kp_nonce_flush); at shutdown, writing them
 * all before it returns (kp_nonce_flush_all).
 */
#define KP_NONCE_FLUSH 2048
int kp_nonces_init(struct kp *kp);
void kp_nonces_free(struct kp *kp);
int kp_nonce_fresh(struct kp *kp, const uint8_t hash[32], int *err);
int kp_nonce_flush(struct kp *kp);
int kp_nonce_flush_all(struct kp *kp);
size_t kp_nonce_pending(const struct kp *kp);
/* The audit seq up to which the database holds every signed nonce. */
uint64_t kp_nonce_floor(const struct kp *kp);
/* Record seq as that point ('nonce_seq') in st's open transaction. */
int kp_mark_seq(struct state *st, uint64_t seq);

/*
 * Per-shadow rate limits (kp_rate.c).  kp_rate_take: a token for the
 * shadow's request, 1 if it may go now, else 0 and *wait seconds; *rp is its
 * entry (NULL: no memory).  A shadow without a policy gets the policy
 * language's default, so that its refusals, each an audit record, are bounded
 * too.  The buckets are kept in the state database: kp_rates_load at start,
 * kp_rates_flush (the changed ones) every second and at shutdown.
 */
int kp_rate_take(struct kp *kp, const char *shadow, int *wait, struct kp_rate **rp);
/*
 * A refusal past the rate limit of r (kp_rate_take's entry, may be NULL):
 * is it audited?  A shadow hammering the vault must not fill the audit disk
 * (a full one fails every signature closed), so at most once every
 * KP_LIMITED_EVERY seconds per shadow.  0: counted as unrecorded, *extra
 * NULL.  1: *extra = {unrecorded: how many since the last record} for the
 * record (the caller passes it on), and the count starts again.
 */
int kp_rate_record(struct kp_rate *r, json_t **extra);
/*
 * For requests whose refusals are not audited: the active shadow holding
 * the certificate with serial and fingerprint fpr (kp_shadow()), past its
 * rate limit (NULL, shadow filled), or the refusal to answer (403 revoked or
 * unknown, 429).
 */
json_t *kp_shadow_admit(struct kp *kp, const char *serial, const char *fpr, char *shadow);
int kp_rates_load(struct kp *kp);
int kp_rates_flush(struct kp *kp);

#endif
