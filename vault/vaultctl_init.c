/*
 * vaultctl init: create the state directory and database and, when the
 * configuration keeps a SoftHSM2 token under the state directory (the
 * embedded development defaults do), create that token with random PINs.
 * Works offline: the daemon must not be running.  Touches only state_dir
 * and the token.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <sodium.h>

#include "b64.h"
#include "fileio.h"
#include "keystore.h"
#include "shadowca.h"
#include "state.h"
#include "sv_err.h"
#include "vaultctl.h"

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* A random PIN file (mode 0600) unless one is there already. */
static int
make_pin(const char *path)
{
	uint8_t rnd[18];
	char *pin;
	int r;

	if (exists(path))
		return 0;
	randombytes_buf(rnd, sizeof(rnd));
	if ((r = b64u_encode(rnd, sizeof(rnd), &pin)) != 0)
		return r;
	sodium_memzero(rnd, sizeof(rnd));
	r = sv_write_file_atomic(path, pin, strlen(pin), 0600);
	sodium_memzero(pin, strlen(pin));
	free(pin);
	return r;
}

static int
dir_of(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL || (size_t)(slash - path) >= n)
		return sv_seterr(SV_ECONFIG, "%s: needs a directory part", path);
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
	return 0;
}

/* The development token: softhsm2.conf, a token directory and random PINs. */
static int
dev_token(const struct vconf *cfg, int quiet)
{
	char dir[PATH_MAX], tokdir[PATH_MAX + 8], conf[PATH_MAX + 160];
	int r;

	if ((r = dir_of(cfg->softhsm2_conf, dir, sizeof(dir))) != 0)
		return r;
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", dir);
	if ((r = sv_mkdir_p(tokdir, 0700)) != 0)
		return r;
	if (!exists(cfg->softhsm2_conf)) {
		if (snprintf(conf, sizeof(conf),
			"# SoftHSM2 token of a shadowvault development vault (vaultctl init)\n"
			"directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
			"slots.removable = false\nlibrary.reset_on_fork = true\n",
			tokdir) >= (int)sizeof(conf))
			return sv_seterr(SV_ECONFIG, "%s: path too long", tokdir);
		if ((r = sv_write_file_atomic(cfg->softhsm2_conf, conf, strlen(conf), 0600)) != 0)
			return r;
	}
	if ((r = make_pin(cfg->pin_file)) != 0 || (r = make_pin(cfg->so_pin_file)) != 0)
		return r;
	r = hsm_init_token(&cfg->hsm, cfg->so_pin_file);
	if (r == SV_EEXIST)
		return 0;
	if (r == 0 && !quiet)
		printf("created SoftHSM2 token \"%s\" in %s (PIN in %s)\n", cfg->token, tokdir,
		    cfg->pin_file);
	return r;
}

static const char DEFAULT_POLICY[] =
    "# shadowvault policies (see policies/examples/README.md in the sources).\n"
    "# Deny by default: every shadow needs a group here naming its accounts and\n"
    "# DNS names.  Reload with SIGHUP or `vaultctl policy reload`.\n"
    "shadows = {\n"
    "  # web1 = {\n"
    "  #   accounts = [ \"le\" ];\n"
    "  #   names = [ \"example.com\", \"*.example.com\" ];\n"
    "  # };\n"
    "};\n";

static int
write_pem_pub(const char *path, EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int r;

	if (b == NULL || PEM_write_bio_PUBKEY(b, pk) != 1) {
		BIO_free(b);
		return sv_seterr_ssl(SV_ECRYPTO, "encoding a public key");
	}
	len = BIO_get_mem_data(b, &data);
	r = sv_write_file_atomic(path, data, (size_t)len, 0644);
	BIO_free(b);
	return r;
}

/* The Ed25519 key that signs audit checkpoints, and its public half on disk. */
static int
make_audit_key(struct ctl *c, struct state *st, struct hsm *h)
{
	struct ks_key k;
	EVP_PKEY *pk = NULL;
	int r;

	if ((r = ks_create(st, h, KS_AUDIT_KEY, HSM_ED25519, 0, &k)) != 0 ||
	    (r = hsm_key_public(h, &k.hk, &pk)) != 0)
		return r;
	r = write_pem_pub(c->cfg.audit_pub, pk);
	EVP_PKEY_free(pk);
	return r;
}

/* The Ed25519 key that signs sealed key bundles (its public key reaches shadows at enrolment). */
static int
make_bundle_key(struct state *st, struct hsm *h)
{
	struct ks_key k;

	return ks_create(st, h, KS_BUNDLE_KEY, HSM_ED25519, 0, &k);
}

static int
write_cert(const char *path, X509 *x, X509 *chain)
{
	char *a = NULL, *b = NULL, *both;
	size_t la, lb;
	int r;

	if ((r = sca_cert_pem(x, &a)) != 0 || (chain && (r = sca_cert_pem(chain, &b)) != 0))
		goto out;
	la = strlen(a);
	lb = b ? strlen(b) : 0;
	if ((both = malloc(la + lb + 1)) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	memcpy(both, a, la);
	if (b)
		memcpy(both + la, b, lb);
	r = sv_write_file_atomic(path, both, la + lb, 0644);
	free(both);
out:
	free(a);
	free(b);
	return r;
}

/* A TLS key in a file netproc loads (0600). */
static int
tls_file_key(struct ctl *c, EVP_PKEY **key)
{
	char dir[PATH_MAX], *data;
	BIO *b = NULL;
	long len;
	int r;

	if ((*key = EVP_EC_gen("P-256")) == NULL || (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(b, *key, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(b);
		return sv_seterr_ssl(SV_ECRYPTO, "making the TLS key");
	}
	len = BIO_get_mem_data(b, &data);
	if ((r = dir_of(c->cfg.tls_key, dir, sizeof(dir))) == 0 && (r = sv_mkdir_p(dir, 0700)) == 0)
		r = sv_write_file_atomic(c->cfg.tls_key, data, (size_t)len, 0600);
	BIO_free(b);
	return r;
}

/*
 * A TLS key in the token, named by tls.key's URI: made now if it names a key
 * that does not exist yet, by its name alone or as version 1.
 */
static int
tls_token_key(struct ctl *c, struct state *st, struct hsm *h, EVP_PKEY **key)
{
	char name[SV_NAME_MAX + 1];
	struct ks_key k;
	struct ks_uri u;
	int r;

	r = ks_from_uri(st, c->cfg.tls_key, &k, name);
	if (r == SV_ENOTFOUND && ks_uri_parse(c->cfg.tls_key, &u) == 0 && u.version <= 1)
		r = ks_create(st, h, u.name, HSM_EC_P256, 0, &k);
	if (r != 0)
		return sv_preferr(r, "tls.key");
	if (!c->quiet)
		printf("TLS key in the token: %s\n", k.hk.label);
	return hsm_pkey(h, &k.hk, key);
}

/* The vault's TLS key (a file, or a key in the token) and its certificate from the shadow CA. */
static int
make_tls(struct ctl *c, struct state *st, struct hsm *h, EVP_PKEY *ca_priv, X509 *ca)
{
	const char *dns[VCONF_MAX_TLS_NAMES], *ips[VCONF_MAX_TLS_NAMES];
	char dir[PATH_MAX];
	struct sca_profile p;
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	int r;

	sca_profile_server(&p, c->cfg.tls_names, (size_t)c->cfg.ntls_names, dns, ips);
	r = vconf_tls_in_token(&c->cfg) ? tls_token_key(c, st, h, &key) : tls_file_key(c, &key);
	if (r != 0)
		goto out;
	if ((req = X509_REQ_new()) == NULL || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		r = sv_seterr_ssl(SV_ECRYPTO, "the TLS key's CSR");
		goto out;
	}
	if ((r = sca_issue(ca_priv, ca, req, &p, &cert)) == 0 &&
	    (r = dir_of(c->cfg.tls_cert, dir, sizeof(dir))) == 0 &&
	    (r = sv_mkdir_p(dir, 0700)) == 0)
		r = write_cert(c->cfg.tls_cert, cert, ca);
out:
	X509_free(cert);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return r;
}

/* The shadow CA: its key in the token, its certificate signed there (hsm_pkey). */
static int
make_ca(struct ctl *c, struct state *st, struct hsm *h)
{
	char host[64] = "localhost", cn[128];
	EVP_PKEY *pub = NULL, *priv = NULL;
	struct ks_key k;
	X509 *ca = NULL;
	int r;

	gethostname(host, sizeof(host) - 1);
	snprintf(cn, sizeof(cn), "shadowvault shadow CA %.40s", host);
	if ((r = ks_create(st, h, KS_CA_KEY, HSM_EC_P256, 0, &k)) != 0 ||
	    (r = hsm_key_public(h, &k.hk, &pub)) != 0 || (r = hsm_pkey(h, &k.hk, &priv)) != 0 ||
	    (r = sca_make_ca(priv, pub, cn, SCA_CA_DAYS, &ca)) != 0 ||
	    (r = write_cert(c->cfg.ca_cert, ca, NULL)) != 0 ||
	    (r = make_tls(c, st, h, priv, ca)) != 0)
		goto out;
out:
	X509_free(ca);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	return r;
}

static int
make_vault(struct ctl *c)
{
	struct state *st = NULL;
	struct hsm *h = NULL;
	int r;

	if ((r = hsm_open(&c->cfg.hsm, &h)) != 0 || (r = state_open(c->cfg.db_path, 1, &st)) != 0 ||
	    (r = make_audit_key(c, st, h)) != 0 || (r = make_bundle_key(st, h)) != 0 ||
	    (r = make_ca(c, st, h)) != 0)
		goto out;
	if (!exists(c->cfg.policy_file))
		r = sv_write_file_atomic(
		    c->cfg.policy_file, DEFAULT_POLICY, strlen(DEFAULT_POLICY), 0644);
out:
	state_close(st);
	hsm_close(h);
	return r;
}

int
ctl_cmd_init(struct ctl *c, int argc, char **argv)
{
	int r;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			puts(
			    "usage: vaultctl init\n\nCreate the state directory and database. With "
			    "hsm.softhsm2_conf set (the\nembedded defaults), also create a "
			    "SoftHSM2 "
			    "token with random PINs under it.\nRun it once, with vaultd stopped.");
			return SV_EXIT_OK;
		}
		fprintf(stderr, "usage: vaultctl init\n");
		return SV_EXIT_USAGE;
	}
	if (exists(c->cfg.db_path))
		return ctl_fail(sv_seterr(SV_EEXIST, "%s is already initialised (%s exists)",
		    c->cfg.state_dir, c->cfg.db_path));
	if ((r = sv_mkdir_p(c->cfg.state_dir, 0700)) != 0)
		return ctl_fail(r);
	if (c->cfg.hsm.softhsm2_conf != NULL && (r = dev_token(&c->cfg, c->quiet)) != 0)
		return ctl_fail(r);
	if ((r = make_vault(c)) != 0) {
		/* No half-made vault: the next init starts again from scratch. */
		unlink(c->cfg.db_path);
		return ctl_fail(r);
	}
	if (!c->quiet) {
		printf("initialised %s (state database %s, token \"%s\")\n", c->cfg.state_dir,
		    c->cfg.db_path, c->cfg.token);
		printf("shadow CA certificate: %s (give it to shadows: shadow enroll --ca)\n",
		    c->cfg.ca_cert);
		printf(
		    "policies: %s (deny everything until you add shadows)\n", c->cfg.policy_file);
	}
	return SV_EXIT_OK;
}
