/*
 * shadow issue / renew / status: command lines over issue.c and install.c.
 * Settings come from the command line, then the configuration file, then
 * built-in defaults; renew reuses what issue recorded in renewal/NAME.json.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme.h"
#include "fileio.h"
#include "shadow.h"
#include "sv_err.h"

static const char *const ISSUE_USAGE =
    "usage: shadow issue NAME... [--account A] [--challenge http-01|dns-01]\n"
    "                    [--http-port P] [--http-address ADDR] | [--webroot DIR]\n"
    "                    [--dns-hook CMD] [--key-type ec-p256|ec-p384|rsa-2048|rsa-3072]\n"
    "                    [--out DIR] [--deploy-hook CMD] [--acme-ca-file F] [--timeout S]\n"
    "                    [--preferred-chain ISSUER-CN]\n"
    "       shadow issue [NAME...] --csr FILE [the options above but --key-type]\n"
    "Certificates are installed as OUT/live/NAME/{cert,chain,fullchain,privkey}.pem\n"
    "(default OUT: the state directory).  The key is made here and never leaves.\n"
    "--csr FILE (PEM or DER, made elsewhere, e.g. by vaultctl cert csr): the order is\n"
    "for the CSR's names (NAMEs given must be the same ones) and finalized with it;\n"
    "no key is made and no privkey.pem is written (renew uses FILE again).\n"
    "--dns-hook CMD runs with SHADOW_ACTION=present|cleanup, SHADOW_DOMAIN,\n"
    "SHADOW_TXT_NAME and SHADOW_TXT_VALUE; --deploy-hook CMD runs after a change with\n"
    "RENEWED_LINEAGE and RENEWED_DOMAINS (as certbot's).  --preferred-chain picks, among\n"
    "the chains the CA offers, the one whose top certificate was issued by that common\n"
    "name (else the CA's default chain).\n";

static const char *
pick(const char *cli, const char *conf, const char *builtin)
{
	if (cli != NULL)
		return cli;
	return conf != NULL && conf[0] != '\0' ? conf : builtin;
}

/* *p made absolute in buf (it need not exist yet): renewals run from anywhere. */
static int
absolute(const char *what, const char **p, char *buf)
{
	char cwd[PATH_MAX];

	if (*p == NULL || (*p)[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return sv_seterr(
		    SV_EIO, "%s %s: the current directory: %s", what, *p, strerror(errno));
	if (sv_pathf(buf, PATH_MAX, "%s/%s", cwd, *p) != 0)
		return sv_seterr(SV_ETOOBIG, "%s %s: path too long", what, *p);
	*p = buf;
	return 0;
}

/* Fill the parts of o the command line left unset. */
static int
complete(struct shadow *s, struct issue_opts *o)
{
	int r;

	if (o->csr != NULL && o->key_type != NULL)
		return sv_seterr(SV_EINVAL,
		    "--key-type cannot be used with --csr: the certificate's key is the CSR's");
	if (o->csr != NULL && o->csr[0] == '\0')
		return sv_seterr(SV_EINVAL, "--csr is empty");
	o->account = pick(o->account, s->def.account, NULL);
	o->challenge = pick(o->challenge, s->def.challenge, "http-01");
	o->http_address = pick(o->http_address, s->def.http_address, NULL);
	o->webroot = pick(o->webroot, s->def.webroot, NULL);
	o->dns_hook = pick(o->dns_hook, s->def.dns_hook, NULL);
	o->key_type = o->csr != NULL ? NULL : pick(o->key_type, s->def.key_type, "ec-p256");
	o->out_dir = pick(o->out_dir, s->def.out_dir, s->state_dir);
	o->deploy_hook = pick(o->deploy_hook, s->def.deploy_hook, NULL);
	o->acme_ca_file = pick(o->acme_ca_file, s->def.acme_ca_file, NULL);
	o->preferred_chain = pick(o->preferred_chain, s->def.preferred_chain, NULL);
	if (o->http_port == 0)
		o->http_port = s->def.http_port ? s->def.http_port : 80;
	if (o->account == NULL)
		return sv_seterr(SV_EINVAL,
		    "which ACME account? give --account or set account in the "
		    "configuration");
	if ((r = absolute("--webroot", &o->webroot, o->webroot_abs)) != 0 ||
	    (r = absolute("--acme-ca-file", &o->acme_ca_file, o->ca_file_abs)) != 0 ||
	    (r = absolute("--csr", &o->csr, o->csr_abs)) != 0)
		return r;
	if (strcmp(o->challenge, "http-01") != 0 && strcmp(o->challenge, "dns-01") != 0)
		return sv_seterr(SV_EINVAL, "--challenge must be http-01 or dns-01");
	if (o->key_type != NULL && strcmp(o->key_type, "ec-p256") != 0 &&
	    strcmp(o->key_type, "ec-p384") != 0 && strcmp(o->key_type, "rsa-2048") != 0 &&
	    strcmp(o->key_type, "rsa-3072") != 0)
		return sv_seterr(
		    SV_EINVAL, "--key-type must be ec-p256, ec-p384, rsa-2048 or rsa-3072");
	if (o->preferred_chain != NULL &&
	    (o->preferred_chain[0] == '\0' || strlen(o->preferred_chain) > SHADOW_CHAIN_CN_MAX))
		return sv_seterr(
		    SV_EINVAL, "--preferred-chain must be 1 to %d bytes", SHADOW_CHAIN_CN_MAX);
	if (o->http_port < 1 || o->http_port > 65535)
		return sv_seterr(SV_EINVAL, "--http-port must be 1 to 65535");
	if (o->nnames == 0 && o->csr == NULL)
		return sv_seterr(SV_EINVAL, "name at least one DNS name (or give --csr)");
	return 0;
}

/*
 * --csr: read and check the CSR into ext, and order its names: in the
 * order given on the command line if any were (they must be the same set),
 * else in the CSR's.  *usage is set when the names given are the fault.
 */
static int
csr_setup(struct issue_opts *o, struct extcsr *ext, int *usage)
{
	const char *names[EXTCSR_NAMES_MAX];
	size_t i, n;
	int r;

	*usage = 0;
	if ((r = extcsr_load(o->csr, ext)) != 0)
		return r;
	if ((r = extcsr_names(ext, o->names, o->nnames, names, &n)) != 0) {
		*usage = 1;
		return r;
	}
	for (i = 0; i < n; i++)
		o->names[i] = names[i];
	o->nnames = n;
	o->ext = ext;
	return 0;
}

static void
summary(struct shadow *s, const struct issue_opts *o, const char *live, int r, int hook_r)
{
	json_t *j;
	char *t;

	if (s->json) {
		j = json_pack("{s:s, s:s, s:s, s:s?, s:I}", "result", r ? "failed" : "issued",
		    "name", o->names[0], "account", o->account ? o->account : "", "lineage",
		    r ? NULL : live, "vault_signatures", (json_int_t)s->signatures);
		if (r != 0)
			json_object_set_new(j, "error", json_string(sv_errmsg(r)));
		if (hook_r != 0)
			json_object_set_new(j, "deploy_hook_error", json_string(sv_errmsg(hook_r)));
		if ((t = json_dumps(j, JSON_COMPACT)) != NULL)
			puts(t);
		free(t);
		json_decref(j);
	} else if (r == 0 && !s->quiet) {
		printf("issued %s: %s/\n", o->names[0], live);
	}
	if (r != 0 && !s->json)
		fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
}

/* Issue (or renew) one lineage and run its deploy hook; returns the SV code. */
static int
issue_one(struct shadow *s, const struct issue_opts *o)
{
	char live[PATH_MAX] = "";
	int r, hr = 0;

	r = shadow_issue(s, o, live, sizeof(live));
	if (r == 0 && o->deploy_hook != NULL &&
	    (hr = run_deploy_hook(o->deploy_hook, live, o)) != 0)
		fprintf(stderr, "shadow: warning: the certificate is installed, but %s\n",
		    sv_errmsg(hr));
	summary(s, o, live, r, hr);
	return r ? r : hr ? SV_EIO : 0;
}

int
shadow_cmd_issue(struct shadow *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "challenge", required_argument, NULL, 'C' },
		{ "http-port", required_argument, NULL, 'p' },
		{ "http-address", required_argument, NULL, 'A' },
		{ "webroot", required_argument, NULL, 'w' },
		{ "dns-hook", required_argument, NULL, 'D' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'o' },
		{ "deploy-hook", required_argument, NULL, 'H' },
		{ "acme-ca-file", required_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "preferred-chain", required_argument, NULL, 'P' },
		{ "csr", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct issue_opts o;
	struct extcsr ext;
	int ch, r = 0, usage;

	memset(&o, 0, sizeof(o));
	memset(&ext, 0, sizeof(ext));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "a:C:p:A:w:D:k:o:H:f:t:P:r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			o.account = optarg;
			break;
		case 'C':
			o.challenge = optarg;
			break;
		case 'p':
			o.http_port = atoi(optarg);
			if (o.http_port == 0)
				o.http_port = -1;
			break;
		case 'A':
			o.http_address = optarg;
			break;
		case 'w':
			o.webroot = optarg;
			break;
		case 'D':
			o.dns_hook = optarg;
			break;
		case 'k':
			o.key_type = optarg;
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case 'H':
			o.deploy_hook = optarg;
			break;
		case 'f':
			o.acme_ca_file = optarg;
			break;
		case 't':
			o.timeout = atoi(optarg);
			break;
		case 'P':
			o.preferred_chain = optarg;
			break;
		case 'r':
			o.csr = optarg;
			break;
		default:
			fputs(ISSUE_USAGE, ch == 'h' ? stdout : stderr);
			return ch == 'h' ? SV_EXIT_OK : SV_EXIT_USAGE;
		}
	}
	for (; optind < argc && o.nnames < ISSUE_NAMES_MAX; optind++)
		o.names[o.nnames++] = argv[optind];
	if (optind < argc || (r = complete(s, &o)) != 0) {
		if (optind >= argc && r != SV_EINVAL && r != SV_ETOOBIG) { /* e.g. getcwd() */
			fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
			return sv_exit_code(r);
		}
		fprintf(stderr, "shadow: %s\n%s", optind < argc ? "too many names" : sv_errmsg(r),
		    ISSUE_USAGE);
		return SV_EXIT_USAGE;
	}
	if (o.csr != NULL && (r = csr_setup(&o, &ext, &usage)) != 0) {
		if (usage)
			fprintf(stderr, "shadow: %s\n%s", sv_errmsg(r), ISSUE_USAGE);
		else
			fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
		extcsr_free(&ext);
		return usage ? SV_EXIT_USAGE : sv_exit_code(r);
	}
	r = issue_one(s, &o);
	extcsr_free(&ext);
	return sv_exit_code(r);
}
