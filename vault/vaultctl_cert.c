/*
 * vaultctl cert ...: certificates for the vault's keys, whose keys shadows
 * may fetch as sealed bundles.  csr has vaultd sign a CSR with the current
 * version of a key; import stores the chain the CA issued for it, with the
 * next sequence; list shows the newest certificate of each name.  The
 * arguments and the chain file are checked here first (certs.h) for a clear
 * error naming them; vaultd checks everything again.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "certs.h"
#include "fileio.h"
#include "pol.h"
#include "sv_err.h"
#include "vaultctl.h"

static const char *const USAGE =
    "usage: vaultctl cert csr NAME --dns DNSNAME [--dns DNSNAME ...]\n"
    "       vaultctl cert import NAME FILE\n"
    "       vaultctl cert list\n"
    "\n"
    "csr prints a CSR (PEM) signed in the HSM by the current version of key NAME: subject\n"
    "CN the first DNSNAME, subjectAltName every DNSNAME (at most 100).  import stores the\n"
    "chain the CA issued for it (FILE: PEM certificates, leaf first, at most 64 KiB); the\n"
    "leaf must hold that key and be unexpired.  Each import of NAME gets the next sequence\n"
    "number; shadows whose policy lists NAME in `bundles` fetch the newest as a sealed\n"
    "bundle, if key NAME was created --exportable.  list shows the newest of each name.\n";

static int
usage(int st)
{
	return ctl_usage(USAGE, st);
}

static void
iso(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "-");
}

/* --dns NAME ...: each a DNS name (the policy language's check), normalised, into dns. */
static int
csr_args(int argc, char **argv, json_t *dns)
{
	static const struct option opts[] = {
		{ "dns", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char norm[POL_NAME_BUF];
	int ch;

	optind = 0; /* 0, not 1: glibc then resets its internal state */
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (ch == 'h')
			return 1;
		if (ch != 'd')
			return -1;
		if (json_array_size(dns) >= CERTS_DNS_MAX) {
			fprintf(
			    stderr, "vaultctl: cert csr: at most %d --dns names\n", CERTS_DNS_MAX);
			return -2;
		}
		if (pol_name_normalize(optarg, norm, sizeof(norm)) != 0) {
			fprintf(stderr, "vaultctl: cert csr: --dns: %s\n", sv_errmsg(SV_EINVAL));
			return -2;
		}
		json_array_append_new(dns, json_string(norm));
	}
	return optind == argc - 1 ? 0 : -1;
}

static int
cmd_csr(struct ctl *c, int argc, char **argv)
{
	json_t *dns = json_array(), *req, *res;
	int p, r;

	if (dns == NULL)
		return ctl_fail(SV_ENOMEM);
	if ((p = csr_args(argc, argv, dns)) != 0 || json_array_size(dns) == 0) {
		json_decref(dns);
		if (p == -2)
			return SV_EXIT_USAGE;
		if (p == 0)
			fprintf(stderr, "vaultctl: cert csr needs at least one --dns name\n");
		return usage(p != 1);
	}
	req = json_pack("{s:s, s:s, s:o}", "op", "cert.csr", "name", argv[optind], "dns", dns);
	if (req == NULL)
		return ctl_fail(SV_ENOMEM);
	r = ctl_request(c, req, &res);
	json_decref(req);
	if (r != 0)
		return ctl_fail(sv_preferr(r, "cert csr %s", argv[optind]));
	/* The CSR is the command's output, with -q too. */
	if (c->json)
		ctl_print_json(res);
	else
		fputs(json_string_value(json_object_get(res, "csr")), stdout);
	json_decref(res);
	return SV_EXIT_OK;
}

/* FILE as the chain vaultd gets: read within its cap, checked, certificates only. */
static int
read_chain(const char *file, char **pem)
{
	STACK_OF(X509) *chain = NULL;
	uint8_t *data = NULL;
	size_t len;
	int r;

	*pem = NULL;
	if ((r = sv_read_file(file, CERTS_CHAIN_MAX, &data, &len)) != 0)
		return r;
	if ((r = certs_parse_chain((const char *)data, len, &chain)) != 0)
		r = sv_preferr(r, "%s", file);
	else
		r = certs_chain_pem(chain, pem);
	sk_X509_pop_free(chain, X509_free);
	free(data);
	return r;
}

static void
print_imported(struct ctl *c, const json_t *res)
{
	char when[32];

	iso(json_integer_value(json_object_get(res, "not_after")), when, sizeof(when));
	printf("imported %s sequence %lld (key version %d, expires %s)\n",
	    json_string_value(json_object_get(res, "name")),
	    (long long)json_integer_value(json_object_get(res, "sequence")),
	    (int)json_integer_value(json_object_get(res, "key_version")), when);
	if (!json_is_true(json_object_get(res, "exportable")))
		printf("note: key %s is not exportable: shadows cannot fetch it as a bundle\n",
		    json_string_value(json_object_get(res, "name")));
}

static int
cmd_import(struct ctl *c, int argc, char **argv)
{
	json_t *req, *res;
	char *pem = NULL;
	int r;

	if (argc != 3)
		return usage(1);
	if ((r = sv_name_check(argv[1], "key name")) != 0 || (r = read_chain(argv[2], &pem)) != 0)
		return ctl_fail(r);
	req = json_pack("{s:s, s:s, s:s}", "op", "cert.import", "name", argv[1], "chain", pem);
	free(pem);
	if (req == NULL)
		return ctl_fail(SV_ENOMEM);
	r = ctl_request(c, req, &res);
	json_decref(req);
	if (r != 0)
		return ctl_fail(sv_preferr(r, "importing %s as %s", argv[2], argv[1]));
	if (c->json)
		ctl_print_json(res);
	else if (!c->quiet)
		print_imported(c, res);
	json_decref(res);
	return SV_EXIT_OK;
}

static void
print_list(struct ctl *c, const json_t *res)
{
	const json_t *e;
	char when[32];
	size_t i;

	printf("%-24s %-5s %-7s %-20s %s\n", "NAME", "SEQ", "KEY VER", "NOT AFTER", "EXPORTABLE");
	json_array_foreach(res, i, e)
	{
		iso(json_integer_value(json_object_get(e, "not_after")), when, sizeof(when));
		printf("%-24s %-5lld %-7d %-20s %s\n",
		    json_string_value(json_object_get(e, "name")),
		    (long long)json_integer_value(json_object_get(e, "sequence")),
		    (int)json_integer_value(json_object_get(e, "key_version")), when,
		    json_is_true(json_object_get(e, "exportable")) ? "yes" : "no");
	}
}

int
ctl_cmd_cert(struct ctl *c, int argc, char **argv)
{
	if (argc < 2 || ctl_wants_help(argc, argv))
		return usage(argc < 2);
	if (strcmp(argv[1], "csr") == 0)
		return cmd_csr(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0 && argc == 2)
		return ctl_run(c, json_pack("{s:s}", "op", "cert.list"), print_list);
	if (strcmp(argv[1], "list") != 0)
		fprintf(stderr, "vaultctl: unknown cert command \"%.32s\"\n", argv[1]);
	return usage(1);
}
