/*
 * shadow enroll: make this server's TLS client key and X25519 box key here
 * (they never leave it), send a CSR and the box public key with the one-time
 * token the administrator got from `vaultctl shadow add`, and keep the
 * certificate the vault's shadow CA issued; pin the vault's bundle key
 * (bundle_key in vault.json), which shadow fetch checks bundles against.
 * Writes only under the state directory, each file atomically; vault.json is
 * written last, so a half-finished enrolment is never mistaken for a
 * finished one.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "b64.h"
#include "fileio.h"
#include "shadow.h"
#include "sv_err.h"

static const char *const USAGE =
    "usage: shadow enroll --vault URL --token TOKEN --ca FILE [--force]\n"
    "  --vault URL   the vault's enrolment address, e.g. https://vault.example:8444\n"
    "  --token TOKEN the one-time token from `vaultctl shadow add NAME`\n"
    "  --ca FILE     the vault's shadow CA certificate (the only trust anchor)\n"
    "  --force       enrol again even if this server is already enrolled\n";

struct keys {
	EVP_PKEY *tls;
	uint8_t box_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t *box_sk; /* sodium_malloc */
	char *csr;	 /* PEM */
};

static void
keys_free(struct keys *k)
{
	EVP_PKEY_free(k->tls);
	if (k->box_sk)
		sodium_free(k->box_sk);
	free(k->csr);
}

static int
make_keys(struct keys *k)
{
	memset(k, 0, sizeof(*k));
	if ((k->box_sk = sodium_malloc(crypto_box_SECRETKEYBYTES)) == NULL)
		return SV_ENOMEM;
	crypto_box_keypair(k->box_pk, k->box_sk);
	return identity_csr(&k->tls, &k->csr);
}

/*
 * The issued certificate must be for our key, and the answer's CA bundle
 * must be linked from ca_file (the CA we trusted) and vouch for it
 * (identity_ca_enrol_check): the vault may have rotated its CA since
 * ca_file was copied, so the bundle need not equal it.
 */
static int
check_answer(const struct keys *k, const json_t *ans, const char *ca_file, X509 **cert)
{
	const char *cert_pem = json_string_value(json_object_get(ans, "certificate"));
	BIO *b = cert_pem ? BIO_new_mem_buf(cert_pem, -1) : NULL;

	*cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*cert == NULL || X509_check_private_key(*cert, k->tls) != 1)
		return sv_seterr(SV_EPROTO, "the vault returned a certificate for another key");
	return identity_ca_enrol_check(ans, ca_file, *cert);
}

/* "https://host:8444/..." -> "https://host:PORT" */
static int
api_url(const char *enroll_url, long port, char *out, size_t n)
{
	CURLU *u = curl_url();
	char *host = NULL;
	int r = 0;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, enroll_url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || port <= 0 || port > 65535)
		r = sv_seterr(
		    SV_EINVAL, "cannot derive the vault's API address from %s", enroll_url);
	else
		snprintf(out, n, "https://%s:%ld", host, port);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

/*
 * The vault's bundle key from the answer, pinned in vault.json v: shadow
 * fetch trusts bundles signed by it only.  A vault older than bundles sends
 * none (then nothing is pinned); a malformed one fails the enrolment, which
 * then cannot be mistaken for a finished one.
 */
static int
pin_bundle_key(json_t *v, const json_t *ans)
{
	const json_t *bk = json_object_get(ans, "bundle_key");
	int r;

	if (bk == NULL)
		return 0;
	if ((r = identity_bundle_key_decode(bk, NULL)) != 0)
		return sv_preferr(r, "the vault's enrolment answer");
	return json_object_set(v, "bundle_key", (json_t *)bk) == 0 ? 0 : SV_ENOMEM;
}

static int
save(struct shadow *s, const struct keys *k, X509 *cert, const json_t *ans, const char *enroll_url)
{
	char path[PATH_MAX], api[512], *key = NULL, *box = NULL, *vj = NULL;
	const char *ca = json_string_value(json_object_get(ans, "ca"));
	const char *cp = json_string_value(json_object_get(ans, "certificate"));
	json_t *v = NULL;
	int r;

	if ((r = api_url(enroll_url, (long)json_integer_value(json_object_get(ans, "api_port")),
		 api, sizeof(api))) != 0 ||
	    (r = identity_key_pem(k->tls, &key)) != 0 ||
	    (r = b64u_encode(k->box_sk, crypto_box_SECRETKEYBYTES, &box)) != 0)
		goto out;
	v = json_pack("{s:O, s:O, s:s, s:s}", "name", json_object_get(ans, "name"), "serial",
	    json_object_get(ans, "serial"), "enroll_url", enroll_url, "api_url", api);
	if (v != NULL && (r = pin_bundle_key(v, ans)) != 0)
		goto out;
	if (v == NULL || (vj = json_dumps(v, JSON_INDENT(2))) == NULL) {
		r = SV_ENOMEM;
		goto out;
	}
	{
		const struct {
			const char *rel, *data;
			mode_t mode;
		} files[] = {
			{ "identity/key.pem", key, 0600 }, { "identity/box.key", box, 0600 },
			{ "identity/cert.pem", cp, 0644 }, { "identity/vault-ca.pem", ca, 0644 },
			{ "identity/vault.json", vj, 0644 }, /* last: marks the enrolment done */
		};
		size_t i;

		for (i = 0; i < sizeof(files) / sizeof(files[0]) && r == 0; i++)
			if ((r = shadow_path(s, files[i].rel, path, sizeof(path))) == 0)
				r = sv_write_file_atomic(
				    path, files[i].data, strlen(files[i].data), files[i].mode);
	}
	if (r == 0)
		identity_note_renewal(s, cert, ans);
out:
	if (key) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	if (box) {
		sodium_memzero(box, strlen(box));
		free(box);
	}
	free(vj);
	json_decref(v);
	return r;
}

static int
enroll(struct shadow *s, const char *url, const char *token, const char *ca_file)
{
	char endpoint[600], idir[PATH_MAX];
	struct vault_resp resp;
	struct keys k;
	X509 *cert = NULL;
	json_t *body = NULL;
	char *pk = NULL;
	int r;

	if ((r = shadow_path(s, "identity", idir, sizeof(idir))) != 0 ||
	    (r = sv_mkdir_p(idir, 0700)) != 0 || (r = make_keys(&k)) != 0 ||
	    (r = b64u_encode(k.box_pk, sizeof(k.box_pk), &pk)) != 0)
		goto out;
	snprintf(endpoint, sizeof(endpoint), "%s/v1/enroll", url);
	body = json_pack("{s:s, s:s, s:s}", "token", token, "csr", k.csr, "box_public_key", pk);
	if ((r = vault_call(s, "POST", endpoint, body, 0, ca_file, &resp)) != 0)
		goto out;
	if (resp.status != 201) {
		r = sv_seterr(resp.status == 403 ? SV_EDENIED : SV_EPROTO,
		    "the vault refused the enrolment (HTTP %ld): %s", resp.status, resp.detail);
	} else if ((r = check_answer(&k, resp.body, ca_file, &cert)) == 0 &&
	    (r = save(s, &k, cert, resp.body, url)) == 0 && !s->quiet) {
		printf("enrolled as %s (certificate %s)\n",
		    json_string_value(json_object_get(resp.body, "name")),
		    json_string_value(json_object_get(resp.body, "serial")));
	}
	vault_resp_free(&resp);
out:
	X509_free(cert);
	json_decref(body);
	free(pk);
	keys_free(&k);
	return r;
}

int
shadow_cmd_enroll(struct shadow *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vault", required_argument, NULL, 'v' },
		{ "token", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *token = NULL, *ca = NULL;
	char done[PATH_MAX];
	int ch, force = 0, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "v:t:c:fh", opts, NULL)) != -1) {
		if (ch == 'v')
			url = optarg;
		else if (ch == 't')
			token = optarg;
		else if (ch == 'c')
			ca = optarg;
		else if (ch == 'f')
			force = 1;
		else {
			fputs(USAGE, ch == 'h' ? stdout : stderr);
			return ch == 'h' ? SV_EXIT_OK : SV_EXIT_USAGE;
		}
	}
	if (optind != argc || url == NULL || token == NULL || ca == NULL ||
	    strncmp(url, "https://", 8) != 0) {
		fputs(USAGE, stderr);
		return SV_EXIT_USAGE;
	}
	if ((r = shadow_path(s, "identity/vault.json", done, sizeof(done))) != 0)
		return sv_exit_code(r);
	if (!force && access(done, F_OK) == 0) {
		fprintf(stderr,
		    "shadow: error: already enrolled (%s exists); --force enrols again\n", done);
		return SV_EXIT_CONFLICT;
	}
	if ((r = enroll(s, url, token, ca)) != 0) {
		fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
		return sv_exit_code(r);
	}
	return SV_EXIT_OK;
}
