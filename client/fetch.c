/*
 * shadow fetch NAME: the certificate NAME and its private key from the
 * vault, as a sealed bundle (common/bundle.h, DESIGN §4).  GET
 * /v1/bundles/NAME over mutual TLS; the bundle must open with this server's
 * box key (identity/box.key), be signed by the vault's bundle key pinned at
 * enrolment (identity/vault.json) or by the key the answer's key_chain leads
 * to from it (the vault rotated its key; each version vouches for the next,
 * common/bundle.h), be for this shadow and NAME, unexpired, and newer than
 * the one installed (bundles/NAME.json): no rollback, no replay.  Then the
 * key must belong to the chain's first certificate, and it is installed as
 * OUT/live/NAME/... by install.c exactly as shadow issue installs (without
 * renewal/NAME.json: the vault renews it, not this server), bundles/NAME.json
 * is written (atomically), and the deploy hook runs.
 *
 * The private key only exists here in guarded memory (the PKCS#8 DER and its
 * PEM form) and OpenSSL's key object, and is wiped after use; install.c
 * wipes its copy.  Nothing is written before every check has passed; then a
 * key the chain led to replaces the pinned one (identity_repin_bundle_key()).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "acme.h"
#include "b64.h"
#include "bundle.h"
#include "fileio.h"
#include "names.h"
#include "shadow.h"
#include "sv_err.h"

#define FETCH_BOXKEY_MAX 256 /* identity/box.key: base64url of 32 bytes */

static const char *const FETCH_USAGE =
    "usage: shadow fetch NAME [--out DIR] [--deploy-hook CMD]\n"
    "Fetch certificate NAME and its private key from the vault as a sealed bundle\n"
    "(the vault's policy for this server must list NAME in its bundles), check it\n"
    "(sealed to this server's box key, signed by the vault's bundle key pinned at\n"
    "enrolment or by its successor, vouched for by it when the vault rotated it, for\n"
    "this server and NAME, not expired, newer than the one installed)\n"
    "and install it as OUT/live/NAME/{cert,chain,fullchain,privkey}.pem like shadow\n"
    "issue (default OUT: the state directory).  The sequence installed is kept in\n"
    "OUT/bundles/NAME.json: the same sequence again is up to date (nothing is\n"
    "touched), an older one is refused as a rollback.  --deploy-hook CMD (default:\n"
    "the configuration's deploy_hook; \"\" for none) runs after an installation with\n"
    "RENEWED_LINEAGE and RENEWED_DOMAINS (as certbot's).\n";

struct fetch {
	struct shadow *s;
	const char *name;    /* certificate name */
	const char *out_dir; /* live/, archive/ go here */
	const char *hook;
	char me[SV_NAME_MAX + 1];	  /* this shadow's name at the vault */
	uint8_t pinned_pk[BUNDLE_PK_LEN]; /* the bundle key in identity/vault.json */
	uint8_t sign_pk[BUNDLE_PK_LEN];	  /* the key bundles are checked against */
	int rotated;			  /* sign_pk is the pinned key's successor */
	int repinned;			  /* and it is pinned now */
	uint8_t box_pk[BUNDLE_PK_LEN];
	uint8_t *box_sk; /* sodium_malloc */
	struct bundle_meta m;
	uint8_t *key; /* PKCS#8 DER, sodium_malloc */
	size_t klen;
	int64_t installed; /* sequence in bundles/NAME.json; 0: none */
	int current;	   /* the vault's bundle is the one installed */
	char live[PATH_MAX];
};

static int
load_box_key(struct fetch *f)
{
	char path[PATH_MAX], *txt = NULL;
	const char *end = NULL;
	size_t len, n = 0;
	int r;

	if ((r = shadow_path(f->s, "identity/box.key", path, sizeof(path))) != 0)
		return r;
	if ((r = sv_read_secret_file(path, FETCH_BOXKEY_MAX, &txt, &len)) != 0)
		return r == SV_ENOMEM ? r : sv_recode(SV_ECONFIG);
	if ((f->box_sk = sodium_malloc(crypto_box_SECRETKEYBYTES)) == NULL)
		r = sv_seterr(SV_ENOMEM, "out of guarded memory");
	else if (sodium_base642bin(f->box_sk, crypto_box_SECRETKEYBYTES, txt, len, NULL, &n, &end,
		     sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != crypto_box_SECRETKEYBYTES || end != txt + len)
		r = sv_seterr(SV_ECONFIG, "%s: not a base64url X25519 secret key", path);
	else if (crypto_scalarmult_base(f->box_pk, f->box_sk) != 0)
		r = sv_seterr(SV_ECONFIG, "%s: not a usable X25519 secret key", path);
	sodium_free(txt);
	return r;
}

/*
 * An enrolment older than bundles has no pinned bundle key: ask the vault
 * for it (GET /v1/identity, over the same mutual TLS with the vault's CA as
 * an identity renewal, whose answer would pin it too) and pin it: from then
 * on only the vault's rotations of it, vouched for by it, replace it.
 */
static int
pin_from_vault(struct fetch *f)
{
	struct vault_resp resp;
	int r;

	if ((r = identity_get(f->s, &resp)) != 0)
		r = sv_preferr(r, "asking the vault for its bundle key");
	else if (resp.status != 200 || json_object_get(resp.body, "bundle_key") == NULL)
		r = sv_seterr(SV_ECONFIG,
		    "no vault bundle key is pinned in identity/vault.json, and the vault does not "
		    "name one (HTTP %ld%s%s): it does not serve bundles",
		    resp.status, resp.detail[0] ? ": " : "", resp.detail);
	/* The same answer carries the vault's CA bundle: a malformed one fails the fetch
	   (SV_EPROTO) before anything is pinned. */
	else if ((r = identity_update_ca(f->s, resp.body, NULL)) != 0)
		r = sv_preferr(r, "asking the vault for its bundle key");
	else if ((r = identity_pin_bundle_key(f->s, resp.body)) != 0)
		r = sv_recode(SV_ECONFIG);
	vault_resp_free(&resp);
	return r;
}

/* This shadow's name, the pinned bundle key and the box key pair. */
static int
load_identity(struct fetch *f)
{
	json_t *v = NULL;
	const char *me;
	int r;

	if ((r = identity_vault_load(f->s, &v)) != 0)
		return r;
	if (json_object_get(v, "bundle_key") == NULL && f->s->api_url[0] != '\0') {
		json_decref(v);
		v = NULL;
		if ((r = pin_from_vault(f)) != 0 || (r = identity_vault_load(f->s, &v)) != 0)
			return r;
	}
	me = json_string_value(json_object_get(v, "name"));
	if (f->s->api_url[0] == '\0')
		r = sv_seterr(SV_ECONFIG, "no vault address (api_url) in identity/vault.json");
	else if (me == NULL || sv_name_check(me, "name") != 0)
		r = sv_preferr(sv_recode(SV_ECONFIG), "identity/vault.json");
	else if (json_object_get(v, "bundle_key") == NULL)
		r = sv_seterr(SV_ECONFIG, "no vault bundle key is pinned in identity/vault.json");
	else if ((r = identity_bundle_key_decode(json_object_get(v, "bundle_key"), f->pinned_pk)) !=
	    0)
		r = sv_preferr(sv_recode(SV_ECONFIG), "identity/vault.json");
	else {
		memcpy(f->sign_pk, f->pinned_pk, BUNDLE_PK_LEN);
		snprintf(f->me, sizeof(f->me), "%s", me);
		r = load_box_key(f);
	}
	json_decref(v);
	return r;
}

/* A refusal from the vault, with its problem's detail. */
static int
refusal(const struct fetch *f, const struct vault_resp *resp)
{
	switch (resp->status) {
	case 403:
		return sv_seterr(SV_EDENIED,
		    "the vault denies this server the bundle for %s (HTTP 403): %s", f->name,
		    resp->detail);
	case 404:
		return sv_seterr(SV_ENOTFOUND, "the vault has no certificate for %s (HTTP 404): %s",
		    f->name, resp->detail);
	case 409:
		return sv_seterr(SV_ESTATE, "the vault cannot export the key of %s (HTTP 409): %s",
		    f->name, resp->detail);
	case 429:
	case 503:
		return sv_seterr(SV_ENET,
		    "the vault is busy or unavailable (HTTP %ld): %s; try again in %ld seconds",
		    resp->status, resp->detail, resp->retry_after > 0 ? resp->retry_after : 60L);
	default:
		return sv_seterr(SV_EPROTO, "the vault refused the bundle for %s (HTTP %ld): %s",
		    f->name, resp->status, resp->detail);
	}
}

/* GET the bundle: the decoded sealed bytes (malloc'd) and the answer (json_decref()). */
static int
get_sealed(struct fetch *f, uint8_t **sealed, size_t *slen, json_t **ans)
{
	struct vault_resp resp;
	const char *b64;
	char url[1024];
	int r;

	*sealed = NULL;
	*slen = 0;
	*ans = NULL;
	if (snprintf(url, sizeof(url), "%s/v1/bundles/%s", f->s->api_url, f->name) >=
	    (int)sizeof(url))
		return sv_seterr(SV_ECONFIG, "the vault's address is too long");
	if ((r = vault_call(f->s, "GET", url, NULL, 1, f->s->ca_file, &resp)) != 0)
		return sv_preferr(r == SV_ETOOBIG ? sv_recode(SV_EPROTO) : r, "vault");
	if (resp.status != 200)
		r = refusal(f, &resp);
	else if ((b64 = json_string_value(json_object_get(resp.body, "sealed"))) == NULL)
		r = sv_seterr(SV_EPROTO, "the vault's answer for %s has no sealed bundle", f->name);
	else if ((r = b64u_decode(b64, strlen(b64), BUNDLE_SEALED_MAX, sealed, slen)) != 0)
		r = sv_preferr(sv_recode(SV_EPROTO), "the vault's sealed bundle for %s", f->name);
	else
		*ans = json_incref(resp.body);
	vault_resp_free(&resp);
	return r;
}

/*
 * The key to check the bundle against: the pinned one, or the one the
 * answer's key_chain leads to from it (the vault rotated its bundle key).
 * Only links from a key already trusted count, each verified by that key; a
 * chain that is malformed or does not verify refuses the bundle, as a bad
 * signature would.
 */
static int
follow_keys(struct fetch *f, const json_t *ans)
{
	if (bundle_key_follow(f->pinned_pk, json_object_get(ans, "key_chain"), f->sign_pk) != 0)
		return sv_preferr(
		    sv_recode(SV_EPROTO), "refusing the vault's bundle for %s", f->name);
	f->rotated = memcmp(f->sign_pk, f->pinned_pk, BUNDLE_PK_LEN) != 0;
	return 0;
}

/* Open and check the bundle; the answer's unsigned fields must agree with it. */
static int
open_bundle(struct fetch *f, const uint8_t *sealed, size_t slen, const json_t *ans)
{
	const json_t *seq = json_object_get(ans, "sequence");
	const char *id = json_string_value(json_object_get(ans, "id"));
	const char *name = json_string_value(json_object_get(ans, "name"));
	int r;

	r = bundle_open(sealed, slen, f->box_pk, f->box_sk, f->sign_pk, f->me, f->name,
	    (int64_t)time(NULL), &f->m, &f->key, &f->klen);
	if (r == SV_ENOMEM)
		return r;
	if (r != 0)
		return sv_preferr(sv_recode(SV_EPROTO), "refusing the vault's bundle for %s%s",
		    f->name, f->rotated ? " (checked with the pinned key's successor)" : "");
	if (!json_is_integer(seq) || json_integer_value(seq) != f->m.sequence || id == NULL ||
	    strcmp(id, f->m.id) != 0 || name == NULL || strcmp(name, f->m.name) != 0)
		return sv_seterr(SV_EPROTO,
		    "the vault's answer for %s disagrees with its signed bundle (name, sequence "
		    "or id)",
		    f->name);
	return 0;
}

static int
record_path(const struct fetch *f, char *path, size_t n)
{
	if ((size_t)snprintf(path, n, "%s/bundles/%s.json", f->out_dir, f->name) >= n)
		return sv_seterr(SV_ETOOBIG, "--out %s: path too long", f->out_dir);
	return 0;
}

/* f->installed from bundles/NAME.json (0 if there is none). */
static int
record_read(struct fetch *f)
{
	char path[PATH_MAX];
	const json_t *seq;
	uint8_t *d = NULL;
	json_t *j;
	size_t len;
	int r;

	f->installed = 0;
	if ((r = record_path(f, path, sizeof(path))) != 0)
		return r;
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((r = sv_read_file(path, BUNDLE_RECORD_MAX, &d, &len)) != 0)
		return r;
	j = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL);
	free(d);
	seq = json_object_get(j, "sequence");
	if (!json_is_object(j) || !json_is_integer(seq) || json_integer_value(seq) < 1)
		r = sv_seterr(
		    SV_EINVAL, "%s: not a bundle record (no sequence): repair or remove it", path);
	else
		f->installed = json_integer_value(seq);
	json_decref(j);
	return r;
}

static int
record_write(const struct fetch *f)
{
	char path[PATH_MAX], *txt = NULL;
	json_t *j;
	int r;

	j = json_pack("{s:I, s:s, s:I}", "sequence", (json_int_t)f->m.sequence, "id", f->m.id,
	    "installed_at", (json_int_t)time(NULL));
	if (j == NULL || (txt = json_dumps(j, JSON_INDENT(2))) == NULL)
		r = SV_ENOMEM;
	else if ((size_t)snprintf(path, sizeof(path), "%s/bundles", f->out_dir) >= sizeof(path))
		r = sv_seterr(SV_ETOOBIG, "--out %s: path too long", f->out_dir);
	else if ((r = sv_mkdir_p(path, 0700)) == 0 && (r = record_path(f, path, sizeof(path))) == 0)
		r = sv_write_file_atomic(path, txt, strlen(txt), 0644);
	free(txt);
	json_decref(j);
	return r;
}

/* Newer than the installed one: 0; the same: 0 and f->current; older: SV_ESTATE. */
static int
judge(struct fetch *f)
{
	f->current = f->m.sequence == f->installed;
	if (f->m.sequence >= f->installed)
		return 0;
	return sv_seterr(SV_ESTATE,
	    "refusing a rollback: the vault's bundle for %s has sequence %lld, older than the "
	    "installed %lld (%s/bundles/%s.json); nothing installed",
	    f->name, (long long)f->m.sequence, (long long)f->installed, f->out_dir, f->name);
}

/*
 * The PKCS#8 DER key as an OpenSSL key (*pkey) and as PEM in guarded memory
 * (*pem, sodium_free()): the same PRIVATE KEY form shadow issue writes.
 */
static int
key_forms(const struct fetch *f, EVP_PKEY **pkey, char **pem)
{
	static const char head[] = "-----BEGIN PRIVATE KEY-----\n";
	static const char tail[] = "-----END PRIVATE KEY-----\n";
	const unsigned char *q = f->key;
	PKCS8_PRIV_KEY_INFO *p8;
	size_t n, off, i, c;

	*pkey = NULL;
	*pem = NULL;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)f->klen);
	if (p8 == NULL || q != f->key + f->klen || (*pkey = EVP_PKCS82PKEY(p8)) == NULL) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		return sv_seterr_ssl(SV_EPROTO, "the bundle's key is not a PKCS#8 private key");
	}
	PKCS8_PRIV_KEY_INFO_free(p8); /* wipes its copy of the key */
	/* 48 bytes a line: 64 characters and a newline (EVP_EncodeBlock's NUL in its place). */
	n = sizeof(head) + (f->klen + 47) / 48 * 65 + sizeof(tail);
	if ((*pem = sodium_malloc(n)) == NULL)
		return sv_seterr(SV_ENOMEM, "out of guarded memory");
	memcpy(*pem, head, sizeof(head) - 1);
	off = sizeof(head) - 1;
	for (i = 0; i < f->klen; i += c) {
		c = f->klen - i < 48 ? f->klen - i : 48;
		off += (size_t)EVP_EncodeBlock((unsigned char *)*pem + off, f->key + i, (int)c);
		(*pem)[off++] = '\n';
	}
	memcpy(*pem + off, tail, sizeof(tail));
	return 0;
}

/* The chain holds certificates only, the first for key; its DNS names into domains. */
static int
check_chain(const struct fetch *f, EVP_PKEY *key, json_t *domains)
{
	GENERAL_NAMES *gens = NULL;
	const GENERAL_NAME *g;
	X509 *leaf = NULL;
	BIO *b = NULL;
	size_t n;
	int i, r;

	if ((r = acme_pem_chain_check(f->m.chain, strlen(f->m.chain), &n)) != 0)
		return sv_preferr(sv_recode(SV_EPROTO), "the bundle's certificate chain");
	if ((b = BIO_new_mem_buf(f->m.chain, -1)) == NULL ||
	    (leaf = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL ||
	    X509_check_private_key(leaf, key) != 1)
		r = sv_seterr(SV_EPROTO,
		    "the bundle's key does not belong to its certificate (the chain's first)");
	else
		gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (i = 0; r == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS && json_array_size(domains) < ISSUE_NAMES_MAX)
			json_array_append_new(domains,
			    json_stringn((const char *)ASN1_STRING_get0_data(g->d.dNSName),
				(size_t)ASN1_STRING_length(g->d.dNSName)));
	}
	ERR_clear_error();
	GENERAL_NAMES_free(gens);
	X509_free(leaf);
	BIO_free(b);
	return r;
}

/* Stage, check the sequence again under the lineage's lock, switch, record. */
static int
install(struct fetch *f, const char *pem, EVP_PKEY *key)
{
	struct install_stage st;
	struct issue_opts o;
	int r;

	memset(&o, 0, sizeof(o));
	o.names[0] = f->name;
	o.nnames = 1;
	o.out_dir = f->out_dir;
	o.no_renewal = 1;
	if ((r = install_stage(&o, pem, &st)) != 0)
		return r;
	/* Another run may have installed a bundle of NAME since the first look. */
	if ((r = record_read(f)) == 0 && (r = judge(f)) == 0 && !f->current &&
	    (r = install_finish(&st, &o, f->m.chain, key, f->live, sizeof(f->live))) == 0)
		r = record_write(f);
	install_abandon(&st);
	return r;
}

/*
 * The bundle checked out against the key the vault rotated to: pin that key.
 * Not fatal: the bundle is good, and the next fetch follows the chain again.
 */
static void
repin(struct fetch *f)
{
	int r;

	if (!f->rotated)
		return;
	if ((r = identity_repin_bundle_key(f->s, f->pinned_pk, f->sign_pk)) != 0)
		fprintf(stderr,
		    "shadow: warning: the vault rotated its bundle key, but its new key is not "
		    "pinned: %s\n",
		    sv_errmsg(r));
	else
		f->repinned = 1;
}

/* The deploy hook with the certificate's DNS names (else NAME). */
static int
deploy(const struct fetch *f, const json_t *domains)
{
	struct issue_opts o;
	size_t i;

	memset(&o, 0, sizeof(o));
	for (i = 0; i < json_array_size(domains) && i < ISSUE_NAMES_MAX; i++)
		if (json_string_value(json_array_get(domains, i)) != NULL)
			o.names[o.nnames++] = json_string_value(json_array_get(domains, i));
	if (o.nnames == 0)
		o.names[o.nnames++] = f->name;
	return run_deploy_hook(f->hook, f->live, &o);
}

static int
fetch_run(struct fetch *f, int *hook_r)
{
	json_t *ans = NULL, *domains = json_array();
	uint8_t *sealed = NULL;
	EVP_PKEY *key = NULL;
	char *pem = NULL;
	size_t slen = 0;
	int r;

	*hook_r = 0;
	if (domains == NULL)
		return SV_ENOMEM;
	if ((r = load_identity(f)) != 0 || (r = get_sealed(f, &sealed, &slen, &ans)) != 0 ||
	    (r = follow_keys(f, ans)) != 0 || (r = open_bundle(f, sealed, slen, ans)) != 0 ||
	    (r = record_read(f)) != 0 || (r = judge(f)) != 0)
		goto out;
	if (!f->current &&
	    ((r = key_forms(f, &key, &pem)) != 0 || (r = check_chain(f, key, domains)) != 0 ||
		(r = install(f, pem, key)) != 0))
		goto out;
	/* Up to date, or installed: only now may the key that signed it be pinned. */
	repin(f);
	if (f->current || f->hook == NULL)
		goto out;
	if ((*hook_r = deploy(f, domains)) != 0)
		fprintf(stderr, "shadow: warning: the bundle is installed, but %s\n",
		    sv_errmsg(*hook_r));
out:
	if (pem != NULL)
		sodium_free(pem);
	EVP_PKEY_free(key);
	free(sealed);
	json_decref(ans);
	json_decref(domains);
	return r;
}

static void
report(const struct fetch *f, int r, int hook_r)
{
	const char *result = r != 0 ? "failed" : f->current ? "up-to-date" : "installed";
	json_t *j;
	char *t;

	if (f->s->json) {
		j = json_pack("{s:s, s:s}", "result", result, "name", f->name);
		if (j != NULL && f->m.sequence > 0) {
			json_object_set_new(j, "sequence", json_integer(f->m.sequence));
			json_object_set_new(j, "id", json_string(f->m.id));
		}
		if (j != NULL && r == 0 && f->live[0] != '\0')
			json_object_set_new(j, "lineage", json_string(f->live));
		if (j != NULL && f->repinned && b64u_encode(f->sign_pk, BUNDLE_PK_LEN, &t) == 0) {
			json_object_set_new(j, "bundle_key_pinned", json_string(t));
			free(t);
		}
		if (j != NULL && r != 0)
			json_object_set_new(j, "error", json_string(sv_errmsg(r)));
		if (j != NULL && hook_r != 0)
			json_object_set_new(j, "deploy_hook_error", json_string(sv_errmsg(hook_r)));
		if (j != NULL && (t = json_dumps(j, JSON_COMPACT)) != NULL) {
			puts(t);
			free(t);
		}
		json_decref(j);
	} else if (r == 0 && !f->s->quiet) {
		if (f->current)
			printf("%s is up to date (sequence %lld)\n", f->name,
			    (long long)f->m.sequence);
		else
			printf("installed %s (sequence %lld): %s/\n", f->name,
			    (long long)f->m.sequence, f->live);
	}
	if (r != 0 && !f->s->json)
		fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
}

static const char *
pick(const char *cli, const char *conf, const char *builtin)
{
	if (cli != NULL)
		return cli;
	return conf != NULL && conf[0] != '\0' ? conf : builtin;
}

int
shadow_cmd_fetch(struct shadow *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "deploy-hook", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fetch f;
	int ch, r, hook_r;

	memset(&f, 0, sizeof(f));
	f.s = s;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "o:H:h", opts, NULL)) != -1) {
		if (ch == 'o')
			f.out_dir = optarg;
		else if (ch == 'H')
			f.hook = optarg;
		else {
			fputs(FETCH_USAGE, ch == 'h' ? stdout : stderr);
			return ch == 'h' ? SV_EXIT_OK : SV_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "shadow: %s\n%s",
		    optind == argc ? "name the certificate to fetch" : "fetch takes one name",
		    FETCH_USAGE);
		return SV_EXIT_USAGE;
	}
	f.name = argv[optind];
	if (sv_name_check(f.name, "certificate name") != 0 ||
	    (f.out_dir != NULL && f.out_dir[0] == '\0' &&
		sv_seterr(SV_EINVAL, "--out is empty") != 0)) {
		fprintf(stderr, "shadow: %s\n%s", sv_errmsg(SV_EINVAL), FETCH_USAGE);
		return SV_EXIT_USAGE;
	}
	f.out_dir = pick(f.out_dir, s->def.out_dir, s->state_dir);
	if ((f.hook = pick(f.hook, s->def.deploy_hook, NULL)) != NULL && f.hook[0] == '\0')
		f.hook = NULL; /* --deploy-hook "": none, whatever the configuration says */
	r = fetch_run(&f, &hook_r);
	report(&f, r, hook_r);
	if (f.box_sk != NULL)
		sodium_free(f.box_sk);
	if (f.key != NULL)
		sodium_free(f.key);
	bundle_meta_free(&f.m);
	return sv_exit_code(r ? r : hook_r ? SV_EIO : 0);
}
