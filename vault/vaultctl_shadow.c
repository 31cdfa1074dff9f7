/*
 * vaultctl shadow ...: add a shadow (prints its one-time enrolment token),
 * list shadows, revoke one.  Requests to vaultd's admin socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "sv_err.h"
#include "vaultctl.h"

static const char *const USAGE =
    "usage: vaultctl shadow add NAME [--ttl DURATION]\n"
    "       vaultctl shadow list\n"
    "       vaultctl shadow revoke NAME\n"
    "\n"
    "add prints a one-time enrolment token (valid for DURATION, default 24h; forms: 3600,\n"
    "90s, 30m, 24h, 7d; at most 30d) for `shadow enroll --token`.  Only its hash is kept.\n"
    "revoke refuses the shadow's certificates at once, on new and open connections.\n";

static int
usage(int st)
{
	return ctl_usage(USAGE, st);
}

static int
cmd_add(struct ctl *c, int argc, char **argv)
{
	json_t *req, *res;
	long long ttl = 24 * 3600;
	const char *token;
	int r;

	if (argc == 4 && strcmp(argv[2], "--ttl") == 0) {
		if ((ttl = ctl_duration(argv[3])) < 0) {
			fprintf(stderr, "vaultctl: --ttl: \"%.32s\" is not a duration\n", argv[3]);
			return SV_EXIT_USAGE;
		}
	} else if (argc != 2) {
		return usage(1);
	}
	req = json_pack(
	    "{s:s, s:s, s:I}", "op", "shadow.add", "name", argv[1], "ttl", (json_int_t)ttl);
	r = ctl_request(c, req, &res);
	json_decref(req);
	if (r != 0)
		return ctl_fail(r);
	token = json_string_value(json_object_get(res, "token"));
	if (c->json) {
		ctl_print_json(res);
	} else {
		printf("shadow:  %s\ntoken:   %s\nexpires: in %lld seconds, single use\n", argv[1],
		    token, ttl);
		printf("enrol on the shadow with:\n  shadow enroll --vault https://VAULT:8444 "
		       "--token %s --ca ca.pem\n",
		    token);
		if (!json_is_true(json_object_get(res, "in_policy")))
			printf(
			    "note: %s has no policy yet: add it to the policy file and reload, or "
			    "every request it makes is refused\n",
			    argv[1]);
	}
	json_decref(res);
	return SV_EXIT_OK;
}

static void
print_list(struct ctl *c, const json_t *res)
{
	const json_t *s;
	char when[32];
	size_t i;

	printf("%-24s %-8s %-5s %-4s %s\n", "NAME", "STATE", "CERTS", "CA", "CERT EXPIRES");
	json_array_foreach(res, i, s)
	{
		time_t t = (time_t)json_integer_value(json_object_get(s, "cert_not_after"));
		json_int_t ca = json_integer_value(json_object_get(s, "ca_version"));
		char cav[24] = "-";
		struct tm tm;

		if (t == 0 || gmtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(when, sizeof(when), "-");
		if (ca > 0)
			snprintf(cav, sizeof(cav), "v%lld", (long long)ca);
		printf("%-24s %-8s %-5lld %-4s %s\n", json_string_value(json_object_get(s, "name")),
		    json_string_value(json_object_get(s, "state")),
		    (long long)json_integer_value(json_object_get(s, "certificates")), cav, when);
	}
}

static void
print_revoked(struct ctl *c, const json_t *res)
{
	printf("revoked %s: its certificates are refused from now on\n",
	    json_string_value(json_object_get(res, "name")));
}

int
ctl_cmd_shadow(struct ctl *c, int argc, char **argv)
{
	if (argc < 2 || ctl_wants_help(argc, argv))
		return usage(argc < 2);
	if (strcmp(argv[1], "add") == 0)
		return cmd_add(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0 && argc == 2)
		return ctl_run(c, json_pack("{s:s}", "op", "shadow.list"), print_list);
	if (strcmp(argv[1], "revoke") == 0 && argc == 3)
		return ctl_run(c, json_pack("{s:s, s:s}", "op", "shadow.revoke", "name", argv[2]),
		    print_revoked);
	return usage(1);
}
