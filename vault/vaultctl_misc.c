/*
 * vaultctl policy ..., audit ... and tls ...: offline checks that read files
 * only (policy check, audit verify), and the policy reload, audit rotate and
 * TLS certificate renewal requests.  Plus small argument helpers shared by
 * the commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "audit_keys.h"
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
	/* vaultctl's options that take a value: "--ca-file -h" names a file. */
	static const char *const valued[] = { "--directory", "--key", "--email", "--ca-file",
		"--type", "--version", "--ttl", "--dns", "-d", "-k", "-e", "-c", "-t", "-v" };
	int i;
	size_t j;

	if (argc > 1 && strcmp(argv[1], "help") == 0)
		return 1;
	/* Anywhere: "account rollover NAME --help" (no name starts with '-'). */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		for (j = 0; j < sizeof(valued) / sizeof(valued[0]); j++)
			if (strcmp(argv[i], valued[j]) == 0) {
				i++; /* its value */
				break;
			}
	}
	return 0;
}

static const char *const POLICY_USAGE =
    "usage: vaultctl policy check FILE   parse and validate a policy file (offline)\n"
    "       vaultctl policy reload       make vaultd load its policy file again\n"
    "                                    (a bad file keeps the old policies)\n";

static void
print_reload(struct ctl *c, const json_t *res)
{
	long long n = json_integer_value(json_object_get(res, "shadows"));

	printf("reloaded %s: %lld shadow%s\n",
	    json_string_value(json_object_get(res, "policy_file")), n, n == 1 ? "" : "s");
}

int
ctl_cmd_policy(struct ctl *c, int argc, char **argv)
{
	struct pol *p = NULL;
	int r;

	if (ctl_wants_help(argc, argv))
		return ctl_usage(POLICY_USAGE, 0);
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
	return ctl_usage(POLICY_USAGE, 1);
}

static const char *const AUDIT_USAGE =
    "usage: vaultctl audit verify [FILE...] [--key PEM]\n"
    "       vaultctl audit rotate\n"
    "verify: check the audit log's hash chain, signed checkpoints and head file\n"
    "  (offline); given several logs (rotated ones and the current one, in any\n"
    "  order), also that each continues the one before it.  Defaults: the\n"
    "  configured audit file and the vault's audit keys (audit-key.pem, every\n"
    "  version; a copy of an older one still verifies the logs: each key\n"
    "  rotation is recorded in the log, signed by the key before).\n"
    "rotate: make vaultd sign a checkpoint, keep the log as FILE.SEQ (SEQ: that\n"
    "  checkpoint's, 12 digits) with its head file, and go on in a new log that\n"
    "  continues the chain.\n";

#define AUDIT_FILES_MAX 1024

static void
print_rotate(struct ctl *c, const json_t *res)
{
	printf("rotated: the log up to seq %lld is now %s\n",
	    (long long)json_integer_value(json_object_get(res, "archive_seq")),
	    json_string_value(json_object_get(res, "archive")));
}

static void
report_json(json_t *arr, const char *file, int r, const struct audit_report *rep)
{
	json_array_append_new(arr,
	    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:s}", "file", file, "intact",
		r == 0, "first_seq", (json_int_t)rep->first_seq, "records",
		(json_int_t)rep->records, "checkpoints", (json_int_t)rep->checkpoints, "handovers",
		(json_int_t)rep->handovers, "bad_line", (json_int_t)rep->bad_line, "head_checked",
		rep->head_checked, "reason", rep->reason));
}

/*
 * Verify each log against the trusted keys.  A log that continues another
 * may begin under a key that only an older log's handover names: the key in
 * force at the end of each intact log is trusted for the others too (it was
 * reached from a trusted key through signed handovers), and logs that failed
 * are tried again while that helps.  audit_verify_chain() then holds each
 * log to the key the one before it ended with.  rs[i]: each log's result.
 */
static int
verify_all(const char *const *files, size_t n, const uint8_t (*pubs)[32], size_t npubs,
    struct audit_report *rep, int *rs)
{
	uint8_t(*trust)[32] = calloc(npubs + n, 32);
	size_t nt = npubs, i, j;
	int progress = 1;

	if (trust == NULL)
		return SV_ENOMEM;
	memcpy(trust, pubs, npubs * 32);
	for (i = 0; i < n; i++)
		rs[i] = -1; /* not tried */
	while (progress) {
		progress = 0;
		for (i = 0; i < n; i++) {
			if (rs[i] == 0 || (rs[i] != -1 && rs[i] != SV_ECRYPTO))
				continue;
			rs[i] =
			    audit_verify_keys(files[i], (const uint8_t(*)[32])trust, nt, &rep[i]);
			if (rs[i] != 0 || !rep[i].have_keys)
				continue;
			for (j = 0; j < nt && memcmp(trust[j], rep[i].end_key, 32) != 0; j++)
				;
			if (j == nt && npubs > 0) {
				memcpy(trust[nt++], rep[i].end_key, 32);
				progress = 1;
			}
		}
	}
	free(trust);
	return 0;
}

/* Verify each log, then (several logs) that they chain; the worst result is returned. */
static int
verify_logs(
    struct ctl *c, const char *const *files, size_t n, const uint8_t (*pubs)[32], size_t npubs)
{
	struct audit_report *rep = calloc(n, sizeof(*rep));
	size_t *order = calloc(n, sizeof(*order)), i;
	int *rs = calloc(n, sizeof(*rs));
	json_t *arr = json_array();
	char why[256] = "";
	int r, bad = 0, broken = 0;

	if (rep == NULL || order == NULL || rs == NULL || arr == NULL ||
	    verify_all(files, n, pubs, npubs, rep, rs) != 0) {
		free(rep);
		free(order);
		free(rs);
		json_decref(arr);
		return ctl_fail(SV_ENOMEM);
	}
	for (i = 0; i < n; i++) {
		r = rs[i];
		if (c->json)
			report_json(arr, files[i], r, &rep[i]);
		else if (r == 0)
			printf("%s: %s\n", files[i], rep[i].reason);
		else
			fprintf(stderr, "vaultctl: %s: NOT intact: line %llu: %s\n", files[i],
			    (unsigned long long)rep[i].bad_line, rep[i].reason);
		if (r != 0 && !bad)
			bad = r;
	}
	if (!bad && n > 1) {
		broken = audit_verify_chain(rep, n, order, why, sizeof(why)) != 0;
		if (!c->json && !broken)
			printf("chain: %s\n", why);
		else if (!c->json)
			fprintf(stderr, "vaultctl: chain NOT intact: %s\n", why);
	}
	if (c->json && n == 1) {
		ctl_print_json(json_array_get(arr, 0)); /* one log: its report, as before */
		json_decref(arr);
	} else if (c->json) {
		json_t *j = json_pack("{s:o, s:b, s:s?}", "logs", arr, "intact", !bad && !broken,
		    "chain", n > 1 && !bad ? why : NULL);

		ctl_print_json(j);
		json_decref(j);
	} else {
		json_decref(arr);
	}
	free(rep);
	free(order);
	free(rs);
	if (bad)
		return bad == SV_ECRYPTO ? SV_EXIT_FAIL : sv_exit_code(bad);
	return broken ? SV_EXIT_FAIL : SV_EXIT_OK;
}

int
ctl_cmd_audit(struct ctl *c, int argc, char **argv)
{
	const char *files[AUDIT_FILES_MAX], *key = c->cfg.audit_pub;
	uint8_t pubs[AUDIT_PUBS_MAX][32];
	size_t n = 0, npubs;
	int i, r;

	if (ctl_wants_help(argc, argv))
		return ctl_usage(AUDIT_USAGE, 0);
	if (argc == 2 && strcmp(argv[1], "rotate") == 0)
		return ctl_run(c, json_pack("{s:s}", "op", "audit.rotate"), print_rotate);
	if (argc < 2 || strcmp(argv[1], "verify") != 0)
		return ctl_usage(AUDIT_USAGE, 1);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (argv[i][0] != '-' && n == AUDIT_FILES_MAX)
			return ctl_fail(
			    sv_seterr(SV_EINVAL, "at most %d logs at once", AUDIT_FILES_MAX));
		else if (argv[i][0] != '-')
			files[n++] = argv[i];
		else {
			fputs(AUDIT_USAGE, stderr);
			return SV_EXIT_USAGE;
		}
	}
	if (n == 0)
		files[n++] = c->cfg.audit_file;
	if ((r = audit_pubs_load(key, pubs, &npubs)) != 0)
		return ctl_fail(r);
	return verify_logs(c, files, n, (const uint8_t(*)[32])pubs, npubs);
}

static const char *const TLS_USAGE =
    "usage: vaultctl tls renew [--new-key]\n"
    "renew: have vaultd reissue its TLS certificate now, from the shadow CA\n"
    "  version that issued it, for the same key and the names of tls.names, and\n"
    "  serve it at once (vaultd does so by itself in the certificate's last\n"
    "  tls.renew_days days; a certificate the shadow CA did not issue is\n"
    "  refused: renew it where it came from).\n"
    "  --new-key: for a new key (P-256) that replaces the tls.key file, or a new\n"
    "  version of the key in the token (tls.key must name it without a version:\n"
    "  pkcs11:token=...;object=vault.tls), which becomes current.\n";

static void
print_tls_renew(struct ctl *c, const json_t *res)
{
	time_t t = (time_t)json_integer_value(json_object_get(res, "not_after"));
	const char *key = json_string_value(json_object_get(res, "key"));
	char when[32] = "?";
	struct tm tm;

	if (t > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("TLS certificate renewed%s%s%s: serial %s, valid until %s; new connections get it\n",
	    json_is_true(json_object_get(res, "new_key")) ? " for a new key" : "", key ? ", " : "",
	    key ? key : "",
	    json_string_value(json_object_get(res, "serial"))
		? json_string_value(json_object_get(res, "serial"))
		: "?",
	    when);
}

int
ctl_cmd_tls(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_usage(TLS_USAGE, 0);
	if ((argc == 2 || (argc == 3 && strcmp(argv[2], "--new-key") == 0)) &&
	    strcmp(argv[1], "renew") == 0)
		return ctl_run(c,
		    json_pack("{s:s, s:O*}", "op", "tls.renew", "new_key",
			argc == 3 ? json_true() : NULL),
		    print_tls_renew);
	return ctl_usage(TLS_USAGE, 1);
}
