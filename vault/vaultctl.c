/*
 * vaultctl: the administrator's command line.  Parses global options and
 * dispatches to the command table; key and policy operations become admin
 * requests (admin.h) executed by the process that owns the token.
 *
 * Until vaultd's admin socket exists, requests run in this process: it
 * opens the token and the state database itself (one owner at a time).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "admin.h"
#include "log.h"
#include "sv_err.h"
#include "vaultctl.h"

static const char *const USAGE =
    "usage: vaultctl [-c FILE] [--json] [-q] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  init                       create the state directory, database (and dev token)\n"
    "  key create NAME --type T [--exportable]\n"
    "  key list | key show NAME [--version V] | key rotate NAME\n"
    "  key destroy NAME --version V --yes\n"
    "  status                     what the vault is and where its state lives\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration (default: $SHADOWVAULT_CONFIG, then\n"
    "                      " SV_DEFAULT_CONFIG ", else the embedded\n"
    "                      development defaults: state under ./state)\n"
    "  --json              print results as JSON\n"
    "  -q, --quiet         print nothing on success\n"
    "  -h, --help          this help;  -V, --version  the version\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage or invalid input, 3 configuration,\n"
    "4 HSM, 5 not found, 6 exists or wrong state, 7 denied, 8 network or daemon.\n"
    "See vaultctl(8).\n";

int
ctl_fail(int code)
{
	fprintf(stderr, "vaultctl: error: %s\n", sv_errmsg(code));
	return sv_exit_code(code);
}

void
ctl_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s != NULL) {
		puts(s);
		free(s);
	}
}

int
ctl_request(struct ctl *c, json_t *req, json_t **result)
{
	struct admin_ctx ac = { &c->cfg, NULL, NULL };
	json_t *resp = NULL;
	int r;

	*result = NULL;
	if ((r = state_open(c->cfg.db_path, 0, &ac.st)) != 0)
		return r;
	if ((r = hsm_open(&c->cfg.hsm, &ac.h)) != 0) {
		state_close(ac.st);
		return r;
	}
	r = admin_exec(&ac, req, &resp);
	if (r == 0) {
		*result = json_incref(json_object_get(resp, "result"));
	} else {
		/* Keep the daemon's words: the detail travels in the answer. */
		sv_seterr(r, "%s", json_string_value(json_object_get(resp, "error")));
	}
	json_decref(resp);
	hsm_close(ac.h);
	state_close(ac.st);
	return r;
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "op", "status"), *res;
	const char *k;
	json_t *v;
	int r;

	if (argc > 1) {
		fprintf(stderr, "usage: vaultctl status\n");
		json_decref(req);
		return strcmp(argv[1], "--help") == 0 ? SV_EXIT_OK : SV_EXIT_USAGE;
	}
	r = ctl_request(c, req, &res);
	json_decref(req);
	if (r != 0)
		return ctl_fail(r);
	if (c->json) {
		ctl_print_json(res);
	} else {
		json_object_foreach(res, k, v)
		{
			if (json_is_string(v))
				printf("%-15s %s\n", k, json_string_value(v));
			else
				printf("%-15s %lld\n", k, (long long)json_integer_value(v));
		}
	}
	json_decref(res);
	return SV_EXIT_OK;
}

static const struct {
	const char *name;
	ctl_cmd_fn fn;
} commands[] = {
	{ "init", ctl_cmd_init },
	{ "key", ctl_cmd_key },
	{ "status", cmd_status },
};

static int
global_opts(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "+c:jqhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c->config_path = optarg;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'q':
			c->quiet = 1;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(SV_EXIT_OK);
		case 'V':
			printf("vaultctl %s\n", SV_VERSION);
			exit(SV_EXIT_OK);
		default:
			fputs(USAGE, stderr);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ctl c;
	size_t i;
	int r;

	memset(&c, 0, sizeof(c));
	sv_log_init("vaultctl", 0, LOG_INFO);
	if (sodium_init() < 0) {
		fprintf(stderr, "vaultctl: libsodium cannot initialise\n");
		return SV_EXIT_FAIL;
	}
	if (global_opts(&c, argc, argv) != 0)
		return SV_EXIT_USAGE;
	if (optind >= argc) {
		fputs(USAGE, stderr);
		return SV_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		fputs(USAGE, stdout);
		return SV_EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "vaultctl: unknown command \"%.32s\"\n\n%s", argv[optind], USAGE);
		return SV_EXIT_USAGE;
	}
	if (c.config_path == NULL)
		c.config_path = vconf_default_path();
	if ((r = vconf_load(c.config_path, &c.cfg)) != 0)
		return ctl_fail(r);
	r = commands[i].fn(&c, argc - optind, argv + optind);
	OPENSSL_cleanup();
	return r;
}
