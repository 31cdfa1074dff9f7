/*
 * vaultctl account ...: register an ACME account at a CA with a key held in
 * the vault's token, show and list accounts.  Registration speaks ACME to
 * the CA from this process (libcurl, svacme); every JWS is signed by vaultd
 * through the admin socket, so the key never leaves the token.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "b64.h"
#include "sv_err.h"
#include "vaultctl.h"

static const char *const USAGE =
    "usage: vaultctl account register NAME --directory URL --key KEY --agree-tos\n"
    "                [--email ADDRESS] [--ca-file PEM]\n"
    "       vaultctl account rollover NAME [--ca-file PEM]\n"
    "       vaultctl account show NAME\n"
    "       vaultctl account list\n"
    "\n"
    "register creates the account at the CA's ACME directory with the vault key KEY\n"
    "(made first with `vaultctl key create KEY --type ec-p256`) and pins the account to\n"
    "that directory.  show prints the account URL, the key's JWK thumbprint and the\n"
    "RFC 8657 CAA record that limits issuance for your names to this account.\n"
    "rollover replaces the account key: a new version is made in the token, the CA\n"
    "is told with keyChange (RFC 8555 7.3.5; the account URL stays), and only then\n"
    "does the vault sign with it.  An interrupted rollover is finished by running it\n"
    "again.\n";

struct reg {
	struct ctl *c;
	const char *name, *directory, *key, *email, *ca_file;
	int tos;
};

static int
usage(int st)
{
	return ctl_usage(USAGE, st);
}

/* Who signs for the ACME library: a vault key (a version of it), with its kid or its jwk. */
struct signer {
	struct ctl *c;
	const char *key;
	int version;	 /* 0: the current one */
	const char *kid; /* NULL: the header carries the key (jwk) */
};

/* The signer the ACME library calls: vaultd signs in the token. */
static int
admin_sign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **jws_out)
{
	struct signer *g = ctx;
	json_t *req;
	char *pb;
	int r;

	*jws_out = NULL;
	if (use_jwk != (g->kid == NULL))
		return sv_seterr(SV_EINTERNAL, "this signer signs with %s", g->kid ? "kid" : "jwk");
	if ((r = b64u_encode(payload, plen, &pb)) != 0)
		return r;
	req = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "op", "account.sign", "key", g->key,
	    "url", url, "payload", pb, "nonce", nonce, "kid", g->kid);
	if (req != NULL && g->version > 0)
		json_object_set_new(req, "version", json_integer(g->version));
	free(pb);
	r = ctl_request(g->c, req, jws_out);
	json_decref(req);
	return r;
}

/* The directory as JSON, to pin in the vault. */
static json_t *
dir_json(const struct acme_dir *d)
{
	json_t *j = json_object();

	json_object_set_new(j, "newNonce", json_string(d->new_nonce));
	json_object_set_new(j, "newAccount", json_string(d->new_account));
	json_object_set_new(j, "newOrder", json_string(d->new_order));
	if (d->revoke_cert)
		json_object_set_new(j, "revokeCert", json_string(d->revoke_cert));
	if (d->key_change)
		json_object_set_new(j, "keyChange", json_string(d->key_change));
	if (d->renewal_info)
		json_object_set_new(j, "renewalInfo", json_string(d->renewal_info));
	if (d->meta)
		json_object_set(j, "meta", d->meta);
	return j;
}

static int
do_register(struct reg *g, json_t **added)
{
	struct acme_opts o = { g->directory, g->ca_file, 0, "vaultctl" };
	struct acme_account_req ar;
	struct acme_account acct;
	struct acme *a = NULL;
	char mail[320];
	const char *contact[1];
	json_t *prep = NULL, *req;
	int r;

	memset(&acct, 0, sizeof(acct));
	memset(&ar, 0, sizeof(ar));
	req = json_pack("{s:s, s:s}", "op", "account.prepare", "key", g->key);
	r = ctl_request(g->c, req, &prep);
	json_decref(req);
	if (r != 0 || (r = acme_global_init()) != 0 || (r = acme_open(&o, &a)) != 0)
		goto out;
	if (acme_directory(a)->terms_of_service && !g->tos) {
		r = sv_seterr(SV_EDENIED,
		    "the CA requires agreeing to its terms of service (%s): "
		    "read them, then add --agree-tos",
		    acme_directory(a)->terms_of_service);
		goto out;
	}
	if (g->email != NULL) {
		snprintf(mail, sizeof(mail), "mailto:%s", g->email);
		contact[0] = mail;
		ar.contact = contact;
		ar.ncontact = 1;
	}
	ar.tos_agreed = g->tos;
	{
		struct signer sg = { g->c, g->key, 0, NULL };

		if ((r = acme_account_new(a, &ar, admin_sign, &sg, &acct)) != 0)
			goto out;
	}
	req = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s?}", "op", "account.add", "name",
	    g->name, "directory_url", g->directory, "directory", dir_json(acme_directory(a)), "kid",
	    acct.url, "key", g->key, "email", g->email);
	r = ctl_request(g->c, req, added);
	json_decref(req);
out:
	acme_account_free(&acct);
	acme_close(a);
	json_decref(prep);
	return r;
}

static int
cmd_register(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "directory", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "email", required_argument, NULL, 'e' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "agree-tos", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct reg g;
	json_t *added = NULL;
	int ch, r;

	memset(&g, 0, sizeof(g));
	g.c = c;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:k:e:c:t", opts, NULL)) != -1) {
		if (ch == 'd')
			g.directory = optarg;
		else if (ch == 'k')
			g.key = optarg;
		else if (ch == 'e')
			g.email = optarg;
		else if (ch == 'c')
			g.ca_file = optarg;
		else if (ch == 't')
			g.tos = 1;
		else
			return usage(1);
	}
	if (optind != argc - 1 || g.directory == NULL || g.key == NULL)
		return usage(1);
	g.name = argv[optind];
	if (g.email != NULL &&
	    (strchr(g.email, '@') == NULL || strlen(g.email) > 254 ||
		strpbrk(g.email, " \t\r\n<>,;") != NULL)) {
		fprintf(stderr, "vaultctl: --email \"%.64s\" is not an e-mail address\n", g.email);
		return SV_EXIT_USAGE;
	}
	if ((r = do_register(&g, &added)) != 0)
		return ctl_fail(r);
	if (!c->quiet)
		printf("registered account %s: %s\n", g.name,
		    json_string_value(json_object_get(added, "kid")));
	json_decref(added);
	return SV_EXIT_OK;
}

static void
print_account(struct ctl *c, const json_t *res)
{
	const char *caa = json_string_value(json_object_get(res, "caa_identity"));
	const char *email = json_string_value(json_object_get(res, "email"));

	printf("account:    %s\n", json_string_value(json_object_get(res, "name")));
	printf("directory:  %s\n", json_string_value(json_object_get(res, "directory")));
	printf("kid:        %s\n", json_string_value(json_object_get(res, "kid")));
	printf("key:        %s (%s)\n", json_string_value(json_object_get(res, "key")),
	    json_string_value(json_object_get(res, "alg")));
	printf("thumbprint: %s\n", json_string_value(json_object_get(res, "thumbprint")));
	printf("email:      %s\n", email ? email : "(none given at registration)");
	printf("CAA record (RFC 8657), for each name this account may issue:\n");
	printf("  NAME. IN CAA 0 issue \"%s; accounturi=%s\"\n", caa ? caa : "<CA domain>",
	    json_string_value(json_object_get(res, "kid")));
	if (caa == NULL)
		printf("  (the CA's directory names no caaIdentities: use the domain the CA "
		       "documents for CAA)\n");
}

static void
print_list(struct ctl *c, const json_t *res)
{
	const json_t *a;
	size_t i;

	printf("%-20s %-20s %s\n", "NAME", "KEY", "ACCOUNT URL");
	json_array_foreach(res, i, a)
	{
		printf("%-20s %-20s %s\n", json_string_value(json_object_get(a, "name")),
		    json_string_value(json_object_get(a, "key_name")),
		    json_string_value(json_object_get(a, "kid")));
	}
}

/*
 * Has the CA already taken the new key (a rollover interrupted after
 * keyChange)?  Ask with onlyReturnExisting, signed by the new key.
 */
static int
ca_knows(struct acme *a, struct signer *neu, const char *kid)
{
	struct acme_account_req ar;
	struct acme_account acct;
	int r, known;

	memset(&ar, 0, sizeof(ar));
	memset(&acct, 0, sizeof(acct));
	ar.only_existing = 1;
	r = acme_account_new(a, &ar, admin_sign, neu, &acct);
	known = r == 0 && acct.url != NULL && strcmp(acct.url, kid) == 0;
	acme_account_free(&acct);
	if (r != 0 && r != SV_ENOTFOUND)
		return r;
	return known;
}

static int
rollover(struct ctl *c, const char *name, const char *ca_file, json_t **done)
{
	struct acme_opts ao = { NULL, ca_file, 0, "vaultctl" };
	struct signer old = { c, NULL, 0, NULL }, neu = { c, NULL, 0, NULL };
	json_t *b = NULL, *req;
	struct acme *a = NULL;
	int r;

	req = json_pack("{s:s, s:s}", "op", "account.rollover.begin", "name", name);
	r = ctl_request(c, req, &b);
	json_decref(req);
	if (r != 0 || (r = acme_global_init()) != 0)
		goto out;
	ao.directory_url = json_string_value(json_object_get(b, "directory_url"));
	old.key = neu.key = json_string_value(json_object_get(b, "key"));
	old.kid = json_string_value(json_object_get(b, "kid"));
	neu.version = (int)json_integer_value(json_object_get(b, "version"));
	if ((r = acme_open(&ao, &a)) != 0 || (r = ca_knows(a, &neu, old.kid)) < 0)
		goto out;
	if (r == 0 &&
	    (r = acme_key_change(a, old.kid, json_object_get(b, "old_jwk"), admin_sign, &old,
		 admin_sign, &neu)) != 0)
		goto out;
	if (sv_fault("rollover-before-commit"))
		exit(SV_EXIT_FAIL); /* fault injection for the tests: a crash at the worst moment */
	req = json_pack("{s:s, s:s, s:i}", "op", "account.rollover.commit", "name", name, "version",
	    neu.version);
	r = ctl_request(c, req, done);
	json_decref(req);
out:
	acme_close(a);
	json_decref(b);
	return r;
}

static void
print_rolled(struct ctl *c, const json_t *res)
{
	printf("account %s now signs with key %s version %lld; the account URL is unchanged\n",
	    json_string_value(json_object_get(res, "account")),
	    json_string_value(json_object_get(res, "key")),
	    (long long)json_integer_value(json_object_get(res, "version")));
}

static int
cmd_rollover(struct ctl *c, int argc, char **argv)
{
	const char *ca_file = NULL;
	json_t *done = NULL;
	int r;

	if (argc == 4 && strcmp(argv[2], "--ca-file") == 0)
		ca_file = argv[3];
	else if (argc != 2)
		return usage(1);
	if ((r = rollover(c, argv[1], ca_file, &done)) != 0)
		return ctl_fail(r);
	if (c->json)
		ctl_print_json(done);
	else if (!c->quiet)
		print_rolled(c, done);
	json_decref(done);
	return SV_EXIT_OK;
}

int
ctl_cmd_account(struct ctl *c, int argc, char **argv)
{
	if (argc < 2 || ctl_wants_help(argc, argv))
		return usage(argc < 2);
	if (strcmp(argv[1], "register") == 0)
		return cmd_register(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "rollover") == 0)
		return cmd_rollover(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0 && argc == 3)
		return ctl_run(c, json_pack("{s:s, s:s}", "op", "account.show", "name", argv[2]),
		    print_account);
	if (strcmp(argv[1], "list") == 0 && argc == 2)
		return ctl_run(c, json_pack("{s:s}", "op", "account.list"), print_list);
	return usage(1);
}
