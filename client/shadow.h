/*
 * Internals shared by the files of `shadow`, the program on each shadow
 * server: configuration, its state directory, and the mutual-TLS client
 * that talks to the vault.
 *
 * State directory layout (mode 0700):
 *   identity/key.pem       the shadow's TLS client key (0600, made here, never sent)
 *   identity/cert.pem      its certificate from the vault's shadow CA
 *   identity/vault-ca.pem  the shadow CA bundle: the issuing CA first, then older ones the
 *                          vault still trusts (trusted for the vault's TLS server too)
 *   identity/box.key       X25519 secret key for sealed bundles (0600)
 *   identity/vault.json    {name, serial, enroll_url, api_url, bundle_key}
 *   bundles/NAME.json      {sequence, id, installed_at} of the bundle fetch installed for
 *                          NAME (in the output directory, which is this one by default)
 */
#ifndef SV_SHADOW_H
#define SV_SHADOW_H

#include <limits.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bundle.h"
#include "extcsr.h"

#define SHADOW_VAULT_CA "identity/vault-ca.pem" /* the vault's shadow CA bundle */

#define SHADOW_STATE_DEFAULT  "/var/lib/shadowvault-shadow"
#define SHADOW_CONFIG_DEFAULT "/etc/shadowvault/shadow.conf"
#define SHADOW_RESP_MAX	      (1024 * 1024) /* any answer from the vault */

/* --preferred-chain / preferred_chain: an issuer's common name, at most this many bytes. */
#define SHADOW_CHAIN_CN_MAX 255

/* Defaults for issue and renew from the configuration file (each may be empty). */
struct shadow_defaults {
	char account[65];
	char out_dir[PATH_MAX];
	char acme_ca_file[PATH_MAX];
	char challenge[16];
	char http_address[64];
	char webroot[PATH_MAX];
	char dns_hook[1024];
	char key_type[16];
	char deploy_hook[1024];
	char preferred_chain[SHADOW_CHAIN_CN_MAX + 1];
	int http_port;
	int renew_days; /* renew when fewer days remain; 0: at 2/3 of the lifetime */
};

struct shadow {
	char config[PATH_MAX];
	char state_dir[PATH_MAX];
	char api_url[512];	/* from vault.json or the configuration */
	char ca_file[PATH_MAX]; /* the CA to trust for the vault (identity/vault-ca.pem) */
	struct shadow_defaults def;
	int quiet, json;
	unsigned long signatures; /* made by the vault for this run */
	void *curl;		  /* one libcurl handle: its connection to the vault stays open */
	int id_lock_fd;		  /* identity_lock(): the locked identity/ directory */
	int id_lock_depth;	  /* how many identity_lock() calls hold it (0: unlocked) */
};

/* Close the connection to the vault (at exit). */
void vault_close(struct shadow *s);

/* dst = state_dir/rel. */
int shadow_path(const struct shadow *s, const char *rel, char *dst, size_t n);

/* Load the configuration (path NULL: defaults) and the enrolment record if any. */
int shadow_setup(struct shadow *s, const char *config, const char *state_dir);

/* The vault's answer to one request. */
struct vault_resp {
	long status;
	json_t *body;	  /* parsed JSON (object), or NULL */
	char detail[512]; /* problem "detail" (escaped) when status >= 400 */
	long retry_after;
};
void vault_resp_free(struct vault_resp *r);

/*
 * One HTTPS request to the vault: method "GET"/"POST", url absolute, body
 * (may be NULL).  Client certificate from identity/ when mtls != 0; the
 * server must chain to ca_file and match the URL's host.  Errors: SV_ENET
 * (transport, with curl's words), SV_EPROTO (not JSON), SV_ETOOBIG.
 */
int vault_call(struct shadow *s, const char *method, const char *url, const json_t *body, int mtls,
    const char *ca_file, struct vault_resp *out);

/*
 * This server's identity at the vault (identity.c).  identity_csr: a new
 * P-256 key and a CSR for it; identity_key_pem: the key in PEM (caller wipes
 * and frees); identity_expiry: identity/cert.pem's notAfter (0: none);
 * identity_recover: finish or drop a swap a crash interrupted (at start);
 * identity_renew: a new certificate and key from the vault over the old ones
 * (the answer's CA bundle taken first, as identity_update_ca does, and its
 * bundle key pinned in vault.json as identity_pin_bundle_key does);
 * identity_note_renewal: keep the vault's answer's renew_from for cert
 * (identity/renewal.json; best effort, a warning if it cannot);
 * identity_check: from the time the vault gave for this certificate (else
 * common/renewal.h's rule), or at once if it does not verify under the first
 * certificate of identity/vault-ca.pem (the vault rotated its CA), renew (if
 * renew) or warn on stderr, even with -q.
 */
/*
 * identity_lock: serialise reading and rewriting identity/ across shadow
 * runs (an exclusive flock on the directory, waited for); nested calls in
 * one run only count.  identity_unlock: the matching release.  Taken by
 * identity_check (when it may renew), by the pinning of the bundle key and
 * by identity_update_ca, each of which reads a file, compares and writes it.
 */
int identity_lock(struct shadow *s);
/* The first certificate of state_dir/rel (PEM), or NULL if there is none. */
X509 *identity_load_cert(struct shadow *s, const char *rel);
void identity_unlock(struct shadow *s);
int identity_csr(EVP_PKEY **key, char **csr);
int identity_key_pem(EVP_PKEY *key, char **out);
time_t identity_expiry(struct shadow *s);
int identity_recover(struct shadow *s);
int identity_renew(struct shadow *s);
void identity_note_renewal(struct shadow *s, X509 *cert, const json_t *ans);
void identity_check(struct shadow *s, int renew);

/*
 * identity_bundle_key_decode: the vault's bundle key v (base64url of an
 * Ed25519 public key, as in the enrolment and renewal answers) into pk (may
 * be NULL: only checked); SV_EPROTO if malformed.  identity_vault_load:
 * identity/vault.json as a JSON object (caller json_decref()s); SV_ECONFIG
 * when not enrolled or unreadable.
 */
int identity_bundle_key_decode(const json_t *v, uint8_t pk[BUNDLE_PK_LEN]);
int identity_vault_load(struct shadow *s, json_t **out);
/* GET /v1/identity over mutual TLS with the current identity; *resp as vault_call() fills it. */
int identity_get(struct shadow *s, struct vault_resp *resp);
/*
 * The vault's shadow CA bundle (its "ca" in the enrolment, renewal and GET
 * /v1/identity answers; identity/vault-ca.pem): PEM, the issuing CA first.
 *
 * identity_ca_bundle_parse: pem (len bytes) as a well-formed bundle: at
 * most 64 KiB, 1..8 PEM CERTIFICATE blocks and nothing else but white
 * space, each a CA certificate (basicConstraints CA:TRUE) that verifies
 * under its own key.  *out: the certificates in order (caller frees with
 * sk_X509_pop_free(*out, X509_free)).  SV_EPROTO naming what is wrong and
 * which certificate ("the vault's CA bundle: certificate 2: not a CA
 * certificate ..."); SV_ENOMEM.
 *
 * identity_ca_vouches: 1 if leaf verifies under one of cas' certificates.
 *
 * identity_ca_linked: every certificate of bundle is one of anchors (DER
 * byte for byte) or reached from them by links_pem (the answer's
 * "ca_links", NULL if none: PEM cross-certificates, each a new CA's subject
 * and key issued by a CA already trusted, the vault's key process being the
 * only maker).  SV_EPROTO naming the first certificate no link reaches.
 *
 * identity_update_ca: take ans's "ca" into identity/vault-ca.pem.  0 when
 * ans has none, when it equals the file byte for byte (nothing written), or
 * when written (atomically, 0644, with a progress line).  It must be
 * well-formed, linked from the file's certificates (identity_ca_linked with
 * ans's "ca_links") and vouch for leaf (the renewed certificate in a
 * renewal; NULL: identity/cert.pem); else SV_EPROTO (SV_ECONFIG: no
 * identity/cert.pem or vault-ca.pem to check against) and the file is untouched.
 *
 * identity_ca_answer: the same checks of ans's "ca" for leaf, nothing written
 * (0 if ans has none).
 *
 * identity_ca_enrol_check: the enrolment answer ans's "ca" against the --ca
 * file ca_file (read as PEM, any number of certificates): well-formed,
 * linked from ca_file's certificates, and vouching for the issued cert.
 * SV_EPROTO, or ca_file's read error.
 */
int identity_ca_bundle_parse(const char *pem, size_t len, STACK_OF(X509) * *out);
int identity_ca_vouches(STACK_OF(X509) * cas, X509 *leaf);
int identity_ca_linked(STACK_OF(X509) * anchors, STACK_OF(X509) * bundle, const json_t *links_pem);
int identity_update_ca(struct shadow *s, const json_t *ans, X509 *leaf);
int identity_ca_answer(struct shadow *s, const json_t *ans, X509 *leaf);
int identity_ca_enrol_check(const json_t *ans, const char *ca_file, X509 *cert);

/*
 * identity_pin_bundle_key: pin ans's bundle_key in identity/vault.json if
 * none is pinned yet (an enrolment older than bundles).  A pinned key is
 * only replaced by the key ans names when ans's key_chain leads there from
 * it (bundle_key_follow(): the vault rotated its bundle key, each version
 * vouched for by the one before); else it is kept, with a warning.  Warns on
 * failure too (SV_EPROTO: a key_chain refused), and returns it; 0 if ans has none.
 *
 * identity_repin_bundle_key: replace the pinned key old by pk, which the
 * caller checked is vouched for by old, and say so (a progress line).  The
 * file is read again and only changed if it still pins old (SV_ESTATE if it
 * pins another; 0 if it pins pk already); atomically.  No warning: the
 * caller's.
 */
int identity_pin_bundle_key(struct shadow *s, const json_t *ans);
int identity_repin_bundle_key(
    struct shadow *s, const uint8_t old[BUNDLE_PK_LEN], const uint8_t pk[BUNDLE_PK_LEN]);

int shadow_cmd_enroll(struct shadow *s, int argc, char **argv);
int shadow_cmd_issue(struct shadow *s, int argc, char **argv);
int shadow_cmd_renew(struct shadow *s, int argc, char **argv);
int shadow_cmd_status(struct shadow *s, int argc, char **argv);
int shadow_cmd_fetch(struct shadow *s, int argc, char **argv);

/* ---- ACME through the vault (acmevault.c) ---- */

struct vacct {
	struct shadow *s;
	char name[65];
	char alg[8];
	char *directory; /* the CA directory the account is pinned to */
	char *kid;	 /* account URL */
	json_t *jwk;	 /* account public key (for key authorizations) */
	unsigned long signatures;
};

/* Account information from the vault.  Free with va_account_free(). */
int va_account(struct shadow *s, const char *name, struct vacct *out);
void va_account_free(struct vacct *a);

/* acme_sign_fn: the vault signs (ctx is a struct vacct). */
int va_sign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **jws_out);

/* ---- Issuance (issue.c) ---- */

#define ISSUE_NAMES_MAX 100
_Static_assert(EXTCSR_NAMES_MAX <= ISSUE_NAMES_MAX, "a CSR's names fit in one order");

struct issue_opts {
	const char *names[ISSUE_NAMES_MAX];
	size_t nnames;
	const char *account;
	const char *challenge;	  /* "http-01" or "dns-01" */
	int http_port;		  /* standalone responder */
	const char *http_address; /* its bind address */
	const char *webroot;	  /* instead of the responder */
	const char *dns_hook;	  /* dns-01 */
	const char *key_type;	  /* ec-p256, ec-p384, rsa-2048, rsa-3072; NULL with csr */
	const char *csr;	  /* --csr: absolute path of a CSR made elsewhere, or NULL */
	const struct extcsr *ext; /* that CSR, loaded and checked by the caller: the order is
				     finalized with it, no key is made, no privkey.pem written */
	const char *out_dir;	  /* live/, archive/, renewal/ go here */
	const char *deploy_hook;
	const char *acme_ca_file;    /* trust for the CA's HTTPS (NULL: system store) */
	const char *preferred_chain; /* issuer CN of the top of the chain wanted, if offered */
	const char *replaces;	     /* ARI CertID of the certificate being renewed */
	int timeout;		     /* seconds for validation and issuance */
	int no_renewal;		     /* a fetched bundle: no renewal/NAME.json (not ordered) */
	/* Storage for the absolute forms of webroot and acme_ca_file: the
	 * renewal record must work from any directory (cron, a timer). */
	char webroot_abs[PATH_MAX];
	char ca_file_abs[PATH_MAX];
	char csr_abs[PATH_MAX];
};

/* Progress line for a person (not in quiet or JSON mode). */
void shadow_progress(const struct shadow *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Order, validate, finalize, download and install a certificate for o->names.
 * *installed gets the lineage directory (out_dir/live/NAME) on success.
 */
int shadow_issue(struct shadow *s, const struct issue_opts *o, char *installed, size_t n);

/* ---- Challenges (solve.c) ---- */

struct solver;
/* Start what o asks for (standalone responder, webroot, DNS hook). */
int solver_open(const struct issue_opts *o, struct solver **out);
/* Make token's key authorization available for name; undone by solver_close(). */
int solver_present(struct solver *sv, const char *name, const char *token, const char *keyauth);
void solver_close(struct solver *sv);

/* Run cmd with /bin/sh -c, env ("K=V", NULL-terminated) added; 0 or SV_EIO naming the exit status.
 */
int shadow_run_hook(const char *cmd, const char *const *env);

/* ---- Files (install.c) ---- */

/*
 * A new version of the lineage for o->names[0] under o->out_dir:
 * archive/NAME/NNNN/{cert,chain,fullchain,privkey}.pem (key 0600), then the
 * symlink live/NAME -> ../archive/NAME/NNNN replaced atomically, then
 * renewal/NAME.json (not for o->no_renewal).  A crash at any point leaves
 * the previous version live.
 *
 * install_stage() locks the lineage (SV_ESTATE if another run holds it),
 * writes the key (key_pem; NULL: the key is elsewhere, no privkey.pem) into
 * NNNN.tmp and prunes old versions, while the CA is still busy;
 * install_finish() checks that the chain's first certificate holds key's
 * public key (key: the private key, or only the public key of a CSR made
 * elsewhere), writes the certificate files and switches; install_abandon()
 * removes an unfinished stage and unlocks (always call it, finished or not).
 */
/* Largest renewal/NAME.json read back. */
#define RENEWAL_MAX (64 * 1024)
/* Largest bundles/NAME.json read back (written by shadow fetch). */
#define BUNDLE_RECORD_MAX 4096

struct install_stage {
	char name[256];
	char archive[PATH_MAX];
	char livedir[PATH_MAX];
	char tmp[PATH_MAX + 16]; /* NNNN.tmp while unfinished, else "" */
	int v;
	int lockfd;
};
int install_stage(const struct issue_opts *o, const char *key_pem, struct install_stage *st);
int install_finish(struct install_stage *st, const struct issue_opts *o, const char *chain_pem,
    EVP_PKEY *key, char *live, size_t n);
void install_abandon(struct install_stage *st);

/* Lineage name of a first name: "*.x" becomes "_.x". */
void lineage_name(const char *first, char *out, size_t n);

/* Run the deploy hook for a lineage (only call when something changed). */
int run_deploy_hook(const char *hook, const char *live, const struct issue_opts *o);

#endif
