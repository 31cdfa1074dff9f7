/*
 * shadow: the program on each shadow server.  Enrols with the vault, runs
 * ACME against the CA with every JWS signed by the vault, and fetches sealed
 * key bundles from the vault, installing certificates the way certbot does.
 * This file: options, configuration and the command table.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "conf.h"
#include "fileio.h"
#include "log.h"
#include "shadow.h"
#include "sv_err.h"

static const char *const USAGE =
    "usage: shadow [-c FILE] [--state-dir DIR] [-q] [--json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  enroll --vault URL --token TOKEN --ca FILE   join a vault (once)\n"
    "  issue NAME... [--account A] [--challenge http-01|dns-01]\n"
    "        [--http-port P] [--http-address ADDR] | [--webroot DIR]\n"
    "        [--dns-hook CMD] [--key-type T] [--out DIR] [--deploy-hook CMD]\n"
    "        [--acme-ca-file F] [--timeout S] [--preferred-chain CN]\n"
    "        [--csr FILE (a CSR made elsewhere: its names, no key here)]\n"
    "                                               get a certificate\n"
    "  fetch NAME [--out DIR] [--deploy-hook CMD]   install a certificate and its key\n"
    "                                               sealed by the vault (a bundle)\n"
    "  renew [--force] [--days N] [--out DIR]       renew what is due\n"
    "  status [--out DIR]                           what is installed\n"
    "\n"
    "options:\n"
    "  -c, --config FILE    configuration (default " SHADOW_CONFIG_DEFAULT " if present)\n"
    "  --state-dir DIR      state directory (default " SHADOW_STATE_DEFAULT ")\n"
    "  -q, --quiet  --json  -h, --help  -V, --version\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage or invalid input, 3 configuration,\n"
    "5 not found, 6 exists or wrong state, 7 denied by the vault, 8 network, CA or vault.\n"
    "`shadow COMMAND --help` describes a command.  See shadow(8).\n";

static const struct conf_key root_keys[] = {
	{ "state_dir", CONF_STRING, 0, NULL },
	{ "api_url", CONF_STRING, 0, NULL },
	{ "account", CONF_STRING, 0, NULL },
	{ "out_dir", CONF_STRING, 0, NULL },
	{ "acme_ca_file", CONF_STRING, 0, NULL },
	{ "challenge", CONF_STRING, 0, NULL },
	{ "http_port", CONF_INT, 0, NULL },
	{ "http_address", CONF_STRING, 0, NULL },
	{ "webroot", CONF_STRING, 0, NULL },
	{ "dns_hook", CONF_STRING, 0, NULL },
	{ "key_type", CONF_STRING, 0, NULL },
	{ "deploy_hook", CONF_STRING, 0, NULL },
	{ "preferred_chain", CONF_STRING, 0, NULL },
	{ "renew_days", CONF_INT, 0, NULL },
	{ NULL, 0, 0, NULL },
};

/* Optional string setting into dst (n bytes); longer is an error with file and line. */
static int
opt_str(config_t *cfg, const char *name, char *dst, size_t n)
{
	config_setting_t *st = config_lookup(cfg, name);
	const char *v;

	if (st == NULL || (v = config_setting_get_string(st)) == NULL)
		return 0;
	if (strlen(v) >= n)
		return conf_err(SV_ECONFIG, st, "%s is longer than %zu bytes", name, n - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int
shadow_path(const struct shadow *s, const char *rel, char *dst, size_t n)
{
	if (snprintf(dst, n, "%s/%s", s->state_dir, rel) >= (int)n)
		return sv_seterr(SV_ECONFIG, "state directory path too long");
	return 0;
}

static int
load_config(struct shadow *s, const char *path)
{
	const struct {
		const char *name;
		char *dst;
		size_t n;
	} strs[] = {
		{ "state_dir", s->state_dir, sizeof(s->state_dir) },
		{ "api_url", s->api_url, sizeof(s->api_url) },
		{ "account", s->def.account, sizeof(s->def.account) },
		{ "out_dir", s->def.out_dir, sizeof(s->def.out_dir) },
		{ "acme_ca_file", s->def.acme_ca_file, sizeof(s->def.acme_ca_file) },
		{ "challenge", s->def.challenge, sizeof(s->def.challenge) },
		{ "http_address", s->def.http_address, sizeof(s->def.http_address) },
		{ "webroot", s->def.webroot, sizeof(s->def.webroot) },
		{ "dns_hook", s->def.dns_hook, sizeof(s->def.dns_hook) },
		{ "key_type", s->def.key_type, sizeof(s->def.key_type) },
		{ "deploy_hook", s->def.deploy_hook, sizeof(s->def.deploy_hook) },
		{ "preferred_chain", s->def.preferred_chain, sizeof(s->def.preferred_chain) },
	};
	config_t cfg;
	size_t i;
	int r;

	snprintf(s->config, sizeof(s->config), "%s", path);
	if ((r = conf_read(&cfg, path)) == 0)
		r = conf_check(config_root_setting(&cfg), root_keys);
	for (i = 0; r == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
		r = opt_str(&cfg, strs[i].name, strs[i].dst, strs[i].n);
	if (r == 0) {
		config_lookup_int(&cfg, "http_port", &s->def.http_port);
		config_lookup_int(&cfg, "renew_days", &s->def.renew_days);
	}
	config_destroy(&cfg);
	return r;
}

/* api_url from the enrolment record unless the configuration set one. */
static int
load_enrolment(struct shadow *s)
{
	char path[PATH_MAX];
	json_t *v;
	const char *u;

	if (shadow_path(s, "identity/vault.json", path, sizeof(path)) != 0 ||
	    access(path, F_OK) != 0)
		return 0;
	if ((v = json_load_file(path, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return sv_seterr(SV_ECONFIG, "%s: not JSON", path);
	if (s->api_url[0] == '\0' && (u = json_string_value(json_object_get(v, "api_url"))) != NULL)
		snprintf(s->api_url, sizeof(s->api_url), "%s", u);
	json_decref(v);
	return shadow_path(s, "identity/vault-ca.pem", s->ca_file, sizeof(s->ca_file));
}

int
shadow_setup(struct shadow *s, const char *config, const char *state_dir)
{
	int r;

	snprintf(s->state_dir, sizeof(s->state_dir), "%s", SHADOW_STATE_DEFAULT);
	if (config == NULL && access(SHADOW_CONFIG_DEFAULT, F_OK) == 0)
		config = SHADOW_CONFIG_DEFAULT;
	if (config != NULL && (r = load_config(s, config)) != 0)
		return r;
	if (state_dir != NULL)
		snprintf(s->state_dir, sizeof(s->state_dir), "%s", state_dir);
	if ((r = load_enrolment(s)) != 0)
		return r;
	return identity_recover(s);
}

static const struct {
	const char *name;
	int (*fn)(struct shadow *, int, char **);
} commands[] = {
	{ "enroll", shadow_cmd_enroll },
	{ "issue", shadow_cmd_issue },
	{ "fetch", shadow_cmd_fetch },
	{ "renew", shadow_cmd_renew },
	{ "status", shadow_cmd_status },
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *state = NULL;
	struct shadow s;
	size_t i;
	int ch, r;

	memset(&s, 0, sizeof(s));
	sv_log_init("shadow", 0, LOG_INFO);
	/* libcurl runs with CURLOPT_NOSIGNAL: a closed peer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt_long(argc, argv, "+c:s:qjhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'q':
			s.quiet = 1;
			break;
		case 'j':
			s.json = 1;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return SV_EXIT_OK;
		case 'V':
			printf("shadow %s\n", SV_VERSION);
			return SV_EXIT_OK;
		default:
			fputs(USAGE, stderr);
			return SV_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(USAGE, stderr);
		return SV_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "shadow: unknown command \"%.32s\"\n\n%s", argv[optind], USAGE);
		return SV_EXIT_USAGE;
	}
	/*
	 * A short-lived command: OpenSSL's atexit clean-up only frees memory the
	 * kernel reclaims anyway, and lengthens every run (bench/issuance.md).
	 */
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) != 1 || sodium_init() < 0 ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "shadow: cannot initialise OpenSSL, libsodium or libcurl\n");
		return SV_EXIT_FAIL;
	}
	if ((r = shadow_setup(&s, config, state)) != 0) {
		fprintf(stderr, "shadow: error: %s\n", sv_errmsg(r));
		r = sv_exit_code(r);
	} else {
		r = commands[i].fn(&s, argc - optind, argv + optind);
	}
	vault_close(&s);
	curl_global_cleanup();
	return r;
}
