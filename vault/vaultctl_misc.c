/*
 * vaultctl policy ... and audit ...: offline checks that read files only
 * (policy check, audit verify) and the policy reload request.  Plus small
 * argument helpers shared by the commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "audit.h"
#include "fileio.h"
#include "pol.h"
#include "sv_err.h"
#include "vaultctl.h"

long long
ctl_duration(const char *s)
{
	char *end;
	long long v, mul = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	v = strtoll(s, &end, 10);
	if (*end != '\0') {
		switch (*end) {
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = 86400;
			break;
		default:
			return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	if (v < 0 || v > 10LL * 365 * 86400 / mul)
		return -1;
	return v * mul;
}

int
ctl_wants_help(int argc, char **argv)
{
	return argc > 1 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
		strcmp(argv[1], "help") == 0);
}

static const char *const POLICY_USAGE =
    "usage: vaultctl policy check FILE   parse and validate a policy file (offline)\n"
    "       vaultctl policy reload       make vaultd load its policy file again\n"
    "                                    (a bad file keeps the old policies)\n";

static void
print_reload(struct ctl *c, const json_t *res)
{
	printf("reloaded %s: %lld shadows\n",
	    json_string_value(json_object_get(res, "policy_file")),
	    (long long)json_integer_value(json_object_get(res, "shadows")));
}

int
ctl_cmd_policy(struct ctl *c, int argc, char **argv)
{
	struct pol *p = NULL;
	int r;

	if (argc == 3 && strcmp(argv[1], "check") == 0) {
		if ((r = pol_load_file(argv[2], &p)) != 0)
			return ctl_fail(r);
		if (!c->quiet)
			printf("%s: ok, %zu shadow%s\n", argv[2], pol_count(p),
			    pol_count(p) == 1 ? "" : "s");
		pol_free(p);
		return SV_EXIT_OK;
	}
	if (argc == 2 && strcmp(argv[1], "reload") == 0)
		return ctl_run(c, json_pack("{s:s}", "op", "policy.reload"), print_reload);
	return ctl_usage(POLICY_USAGE, !ctl_wants_help(argc, argv));
}

/* The raw Ed25519 public key from a PEM file. */
static int
load_pub(const char *path, uint8_t pub[32])
{
	uint8_t *pem = NULL;
	size_t len, rl = 32;
	EVP_PKEY *pk = NULL;
	BIO *b;
	int r;

	if ((r = sv_read_file(path, 16384, &pem, &len)) != 0)
		return r;
	b = BIO_new_mem_buf(pem, (int)len);
	pk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	free(pem);
	r = pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519 &&
		EVP_PKEY_get_raw_public_key(pk, pub, &rl) == 1 && rl == 32
	    ? 0
	    : sv_seterr(SV_EINVAL, "%s: not an Ed25519 public key in PEM", path);
	EVP_PKEY_free(pk);
	return r;
}

static const char *const AUDIT_USAGE =
    "usage: vaultctl audit verify [FILE] [--key PEM]\n"
    "Check the audit log's hash chain, signed checkpoints and head file (offline).\n"
    "Defaults: the configured audit file and the vault's audit key (audit-key.pem).\n";

int
ctl_cmd_audit(struct ctl *c, int argc, char **argv)
{
	const char *file = c->cfg.audit_file, *key = c->cfg.audit_pub;
	struct audit_report rep;
	uint8_t pub[32];
	int i, r;

	if (argc < 2 || strcmp(argv[1], "verify") != 0) {
		return ctl_usage(AUDIT_USAGE, !ctl_wants_help(argc, argv));
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (argv[i][0] != '-' && file == c->cfg.audit_file)
			file = argv[i];
		else {
			fputs(AUDIT_USAGE, stderr);
			return SV_EXIT_USAGE;
		}
	}
	if ((r = load_pub(key, pub)) != 0)
		return ctl_fail(r);
	r = audit_verify(file, pub, &rep);
	if (c->json) {
		json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:b, s:s}", "file", file, "intact",
		    r == 0, "records", (json_int_t)rep.records, "checkpoints",
		    (json_int_t)rep.checkpoints, "bad_line", (json_int_t)rep.bad_line,
		    "head_checked", rep.head_checked, "reason", rep.reason);

		ctl_print_json(j);
		json_decref(j);
	} else if (r == 0) {
		printf("%s: %s\n", file, rep.reason);
	}
	if (r != 0) {
		if (!c->json)
			fprintf(stderr, "vaultctl: %s: NOT intact: line %llu: %s\n", file,
			    (unsigned long long)rep.bad_line, rep.reason);
		return r == SV_ECRYPTO ? SV_EXIT_FAIL : sv_exit_code(r);
	}
	return SV_EXIT_OK;
}
