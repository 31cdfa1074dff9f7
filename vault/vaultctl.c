/*
 * vaultctl: the administrator's command line.  Parses global options and
 * dispatches to the command table; key and policy operations become admin
 * requests (admin.h) executed by the process that owns the token.
 *
 * Everything but init goes through vaultd's admin socket: one process owns
 * the token.  init and the offline checks (policy check, audit verify) run
 * here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "admin.h"
#include "log.h"
#include "sv_err.h"
#include "vaultctl.h"

#define CTL_ANSWER_MAX (16 * 1024 * 1024)

static const char *const USAGE =
    "usage: vaultctl [-c FILE] [--json] [-q] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  init                       create the state directory, database (and dev token)\n"
    "  key create NAME --type T [--exportable]\n"
    "  key list | key show NAME [--version V] | key rotate NAME\n"
    "  key destroy NAME --version V --yes\n"
    "  shadow add NAME [--ttl DURATION] | shadow list | shadow revoke NAME\n"
    "  account register NAME --directory URL --key KEY --agree-tos [--email E]\n"
    "                  [--ca-file F]\n"
    "  account rollover NAME [--ca-file F]\n"
    "  account show NAME | account list\n"
    "  cert csr NAME --dns D [--dns D...] | cert import NAME FILE | cert list\n"
    "  policy check FILE | policy reload\n"
    "  audit verify [FILE...] [--key PEM] | audit rotate\n"
    "  tls renew [--new-key]      reissue the vault's TLS certificate from the shadow CA\n"
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

/* Connect to vaultd's admin socket. */
static int
admin_connect(const struct ctl *c, int *fd)
{
	struct sockaddr_un sun;
	int s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->cfg.admin_socket) >= sizeof(sun.sun_path))
		return sv_seterr(SV_ECONFIG, "admin socket path too long");
	memcpy(sun.sun_path, c->cfg.admin_socket, strlen(c->cfg.admin_socket));
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return sv_seterr(SV_EIO, "socket: %s", strerror(errno));
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;

		close(s);
		return sv_seterr(SV_ENET,
		    "cannot reach vaultd at %s: %s (is vaultd running? only "
		    "\"vaultctl init\" works without it)",
		    c->cfg.admin_socket, strerror(e));
	}
	*fd = s;
	return 0;
}

static int
io_all(int fd, void *buf, size_t len, int wr)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = wr ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return sv_seterr(SV_ENET, "admin socket: %s",
			    n == 0 ? "vaultd closed the "
				     "connection"
				   : strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One framed request and its framed answer. */
static int
exchange(int fd, const json_t *req, json_t **resp)
{
	char *s = json_dumps(req, JSON_COMPACT), *body = NULL;
	uint32_t len;
	int r;

	*resp = NULL;
	if (s == NULL)
		return SV_ENOMEM;
	if (strlen(s) > ADMIN_REQ_MAX) { /* vaultd would drop the connection: say why here */
		r = sv_seterr(SV_ETOOBIG, "admin request of %zu bytes: vaultd takes at most %d",
		    strlen(s), ADMIN_REQ_MAX);
		free(s);
		return r;
	}
	len = htonl((uint32_t)strlen(s));
	r = io_all(fd, &len, 4, 1);
	if (r == 0)
		r = io_all(fd, s, strlen(s), 1);
	free(s);
	if (r != 0 || (r = io_all(fd, &len, 4, 0)) != 0)
		return r;
	len = ntohl(len);
	if (len == 0 || len > CTL_ANSWER_MAX)
		return sv_seterr(SV_EPROTO, "admin socket: answer of %u bytes", len);
	if ((body = malloc(len)) == NULL)
		return SV_ENOMEM;
	if ((r = io_all(fd, body, len, 0)) == 0 &&
	    (*resp = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		r = sv_seterr(SV_EPROTO, "admin socket: the answer is not JSON");
	free(body);
	return r;
}

int
ctl_request(struct ctl *c, json_t *req, json_t **result)
{
	json_t *resp = NULL;
	int fd = -1, r;

	*result = NULL;
	if ((r = admin_connect(c, &fd)) != 0)
		return r;
	r = exchange(fd, req, &resp);
	close(fd);
	if (r != 0)
		return r;
	if (json_is_true(json_object_get(resp, "ok"))) {
		*result = json_incref(json_object_get(resp, "result"));
	} else {
		r = (int)json_integer_value(json_object_get(resp, "code"));
		if (r >= 0 || r < SV_ERR_MIN)
			r = SV_EPROTO;
		/* Keep vaultd's words: the detail travels in the answer. */
		sv_seterr(r, "%s",
		    json_string_value(json_object_get(resp, "error"))
			? json_string_value(json_object_get(resp, "error"))
			: "vaultd refused");
	}
	json_decref(resp);
	return r;
}

int
ctl_run(struct ctl *c, json_t *req, ctl_show_fn human)
{
	json_t *res;
	int r;

	if (req == NULL)
		return ctl_fail(SV_ENOMEM);
	r = ctl_request(c, req, &res);
	json_decref(req);
	if (r != 0)
		return ctl_fail(r);
	if (c->json)
		ctl_print_json(res);
	else if (!c->quiet && human != NULL)
		human(c, res);
	json_decref(res);
	return SV_EXIT_OK;
}

int
ctl_usage(const char *text, int failed)
{
	fputs(text, failed ? stderr : stdout);
	return failed ? SV_EXIT_USAGE : SV_EXIT_OK;
}

static void
show_status(struct ctl *c, const json_t *res)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)res, k, v)
	{
		if (json_is_string(v))
			printf("%-19s %s\n", k, json_string_value(v));
		else
			printf("%-19s %lld\n", k, (long long)json_integer_value(v));
	}
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	if (argc > 1)
		return ctl_usage("usage: vaultctl status\n", !ctl_wants_help(argc, argv));
	return ctl_run(c, json_pack("{s:s}", "op", "status"), show_status);
}

static const struct {
	const char *name;
	ctl_cmd_fn fn;
} commands[] = {
	{ "init", ctl_cmd_init },
	{ "key", ctl_cmd_key },
	{ "shadow", ctl_cmd_shadow },
	{ "account", ctl_cmd_account },
	{ "cert", ctl_cmd_cert },
	{ "policy", ctl_cmd_policy },
	{ "audit", ctl_cmd_audit },
	{ "tls", ctl_cmd_tls },
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
	/* libcurl runs with CURLOPT_NOSIGNAL: a closed peer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
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
	vconf_free(&c.cfg);
	return r;
}
