/*
 * vaultctl key ...: create, list, show, rotate and destroy named keys.  Each
 * command turns its arguments into one admin request (see admin.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv_err.h"
#include "vaultctl.h"

static const char *const KEY_USAGE =
    "usage: vaultctl key create NAME --type TYPE [--exportable]\n"
    "       vaultctl key list\n"
    "       vaultctl key show NAME [--version V]\n"
    "       vaultctl key rotate NAME\n"
    "       vaultctl key destroy NAME --version V --yes\n"
    "\n"
    "TYPE is ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.  Keys are created\n"
    "in the HSM, sensitive and never extractable unless --exportable (not for ed25519).\n"
    "rotate makes a new version current and keeps the old one as retired; destroy removes\n"
    "a retired version from the HSM.  Of the vault's own keys (vault.*), vault.audit,\n"
    "vault.bundle and vault.shadow-ca rotate: the old version vouches for the new one\n"
    "(see vaultctl(8)); vault.tls rotates with its certificate (vaultctl tls renew\n"
    "--new-key).  Add --json (before the command) for JSON output.\n";

static int
usage(int status)
{
	return ctl_usage(KEY_USAGE, status);
}

static void
print_key(struct ctl *c, const json_t *k)
{
	const json_t *jwk = json_object_get(k, "jwk");
	char *s;

	printf("name:       %s\n", json_string_value(json_object_get(k, "name")));
	printf("version:    %d\n", (int)json_integer_value(json_object_get(k, "version")));
	printf("type:       %s (%s)\n", json_string_value(json_object_get(k, "type")),
	    json_string_value(json_object_get(k, "alg")));
	printf("state:      %s\n", json_string_value(json_object_get(k, "state")));
	printf("exportable: %s\n", json_is_true(json_object_get(k, "exportable")) ? "yes" : "no");
	printf("created:    %s\n", json_string_value(json_object_get(k, "created")));
	printf("uri:        %s\n", json_string_value(json_object_get(k, "uri")));
	if (jwk != NULL && (s = json_dumps(jwk, JSON_COMPACT)) != NULL) {
		printf("thumbprint: %s\n", json_string_value(json_object_get(k, "thumbprint")));
		printf("jwk:        %s\n", s);
		free(s);
	}
}

/* Parse NAME plus --type/--exportable/--version/--yes into req. */
static int
parse(int argc, char **argv, json_t *req, int need_name)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "exportable", no_argument, NULL, 'e' },
		{ "version", required_argument, NULL, 'v' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int ch;

	optind = 0; /* 0, not 1: glibc then resets its internal state */
	while ((ch = getopt_long(argc, argv, "t:ev:yh", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			json_object_set_new(req, "type", json_string(optarg));
			break;
		case 'e':
			json_object_set_new(req, "exportable", json_true());
			break;
		case 'v':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 || v > 1000000) {
				fprintf(stderr, "vaultctl: --version must be a positive number\n");
				return -1;
			}
			json_object_set_new(req, "version", json_integer(v));
			break;
		case 'y':
			json_object_set_new(req, "confirm", json_true());
			break;
		case 'h':
			return 1;
		default:
			return -1;
		}
	}
	if (need_name) {
		if (optind != argc - 1)
			return -1;
		json_object_set_new(req, "name", json_string(argv[optind]));
	} else if (optind != argc) {
		return -1;
	}
	return 0;
}

static void
print_list(struct ctl *c, const json_t *res)
{
	const json_t *k;
	size_t i;

	printf("%-24s %-4s %-9s %-9s %-10s %-20s %s\n", "NAME", "VER", "TYPE", "STATE",
	    "EXPORTABLE", "CREATED", "URI");
	json_array_foreach(res, i, k)
	{
		const char *state = json_string_value(json_object_get(k, "state"));

		printf("%-24s %-4d %-9s %-9s %-10s %-20s %s\n",
		    json_string_value(json_object_get(k, "name")),
		    (int)json_integer_value(json_object_get(k, "version")),
		    json_string_value(json_object_get(k, "type")), state,
		    json_is_true(json_object_get(k, "exportable")) ? "yes" : "no",
		    json_string_value(json_object_get(k, "created")),
		    /* A destroyed version has no object left in the token to point at. */
		    state != NULL && strcmp(state, "destroyed") == 0
			? "-"
			: json_string_value(json_object_get(k, "uri")));
	}
}

static void
print_destroyed(struct ctl *c, const json_t *res)
{
	printf("destroyed %s version %d\n", json_string_value(json_object_get(res, "name")),
	    (int)json_integer_value(json_object_get(res, "version")));
	/* An old shadow CA version: what changed for the shadows and the vault's TLS. */
	if (json_is_integer(json_object_get(res, "trusted")))
		printf("shadow CA certificates trusted: %d%s\n",
		    (int)json_integer_value(json_object_get(res, "trusted")),
		    json_is_true(json_object_get(res, "server_certificate_reissued"))
			? "; the vault's TLS certificate was reissued by the current CA and is "
			  "served "
			  "now"
			: "");
}

static int
cmd_destroy(struct ctl *c, json_t *req)
{
	if (!json_is_true(json_object_get(req, "confirm")) || !json_object_get(req, "version")) {
		json_decref(req);
		fprintf(stderr,
		    "vaultctl: key destroy needs --version V and --yes: the key "
		    "material is erased from the HSM for good\n");
		return SV_EXIT_USAGE;
	}
	return ctl_run(c, req, print_destroyed);
}

int
ctl_cmd_key(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int need_name;
	} subs[] = { { "create", 1 }, { "list", 0 }, { "show", 1 }, { "rotate", 1 },
		{ "destroy", 1 } };
	char op[32];
	json_t *req;
	size_t i;
	int p;

	if (argc < 2)
		return usage(1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return usage(0);
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			break;
	if (i == sizeof(subs) / sizeof(subs[0])) {
		fprintf(stderr, "vaultctl: unknown key command \"%.32s\"\n", argv[1]);
		return usage(1);
	}
	snprintf(op, sizeof(op), "key.%s", subs[i].name);
	req = json_pack("{s:s}", "op", op);
	if ((p = parse(argc - 1, argv + 1, req, subs[i].need_name)) != 0) {
		json_decref(req);
		return usage(p < 0);
	}
	if (strcmp(subs[i].name, "create") == 0 && json_object_get(req, "type") == NULL) {
		json_decref(req);
		fprintf(stderr, "vaultctl: key create needs --type\n");
		return usage(1);
	}
	if (strcmp(subs[i].name, "list") == 0)
		return ctl_run(c, req, print_list);
	if (strcmp(subs[i].name, "destroy") == 0)
		return cmd_destroy(c, req);
	return ctl_run(c, req, print_key);
}
