/*
 * Internals shared by the files of `shadow`, the program on each shadow
 * server: configuration, its state directory, and the mutual-TLS client
 * that talks to the vault.
 *
 * State directory layout (mode 0700):
 *   identity/key.pem       the shadow's TLS client key (0600, made here, never sent)
 *   identity/cert.pem      its certificate from the vault's shadow CA
 *   identity/vault-ca.pem  the shadow CA (trusted for the vault's TLS server too)
 *   identity/box.key       X25519 secret key for sealed bundles (0600)
 *   identity/vault.json    {name, serial, enroll_url, api_url}
 */
#ifndef SV_SHADOW_H
#define SV_SHADOW_H

#include <limits.h>

#include <jansson.h>

#define SHADOW_STATE_DEFAULT  "/var/lib/shadowvault-shadow"
#define SHADOW_CONFIG_DEFAULT "/etc/shadowvault/shadow.conf"
#define SHADOW_RESP_MAX	      (1024 * 1024) /* any answer from the vault */

struct shadow {
	char config[PATH_MAX];
	char state_dir[PATH_MAX];
	char api_url[512];	/* from vault.json or the configuration */
	char ca_file[PATH_MAX]; /* the CA to trust for the vault (identity/vault-ca.pem) */
	int quiet, json;
};

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
int vault_call(const struct shadow *s, const char *method, const char *url, const json_t *body,
    int mtls, const char *ca_file, struct vault_resp *out);

int shadow_cmd_enroll(struct shadow *s, int argc, char **argv);

#endif
