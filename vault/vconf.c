/*
 * Configuration loading for vaultd and vaultctl (see vconf.h).  Reads the
 * configuration file and whatever it @includes; nothing else.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "sv_err.h"
#include "vconf.h"

static const struct conf_key hsm_keys[] = {
	{ "module", CONF_STRING, 0, NULL },
	{ "token", CONF_STRING, 0, NULL },
	{ "pin_file", CONF_STRING, 0, NULL },
	{ "softhsm2_conf", CONF_STRING, 0, NULL },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key tls_keys[] = {
	{ "cert", CONF_STRING, 0, NULL },
	{ "key", CONF_STRING, 0, NULL },
	{ "names", CONF_STRLIST, 0, NULL },
	{ "renew_days", CONF_INT, 0, NULL },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key audit_keys[] = {
	{ "file", CONF_STRING, 0, NULL },
	{ "checkpoint_records", CONF_INT, 0, NULL },
	{ "checkpoint_seconds", CONF_INT, 0, NULL },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key limit_keys[] = {
	{ "max_pending", CONF_INT, 0, NULL },
	{ "max_connections", CONF_INT, 0, NULL },
	{ "max_connections_per_address", CONF_INT, 0, NULL },
	{ "enroll_per_minute", CONF_INT, 0, NULL },
	{ "enroll_per_minute_per_address", CONF_INT, 0, NULL },
	{ "tls_signs_per_second", CONF_INT, 0, NULL },
	{ "request_timeout", CONF_INT, 0, NULL },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key root_keys[] = {
	{ "state_dir", CONF_STRING, 1, NULL },
	{ "hsm", CONF_GROUP, 0, hsm_keys },
	{ "listen", CONF_STRING, 0, NULL },
	{ "enroll_listen", CONF_STRING, 0, NULL },
	{ "tls", CONF_GROUP, 0, tls_keys },
	{ "policy_file", CONF_STRING, 0, NULL },
	{ "admin_socket", CONF_STRING, 0, NULL },
	{ "pid_file", CONF_STRING, 0, NULL },
	{ "user", CONF_STRING, 0, NULL },
	{ "audit", CONF_GROUP, 0, audit_keys },
	{ "limits", CONF_GROUP, 0, limit_keys },
	{ "shadow_cert_days", CONF_INT, 0, NULL },
	{ "shadow_renew_days", CONF_INT, 0, NULL },
	{ "sandbox", CONF_BOOL, 0, NULL },
	{ "metrics_allow", CONF_STRLIST, 0, NULL },
	{ NULL, 0, 0, NULL },
};

/* dst = base/rel unless rel is absolute; error if it does not fit. */
static int
resolve(char *dst, size_t n, const char *base, const char *rel, const config_setting_t *s)
{
	int w;

	if (rel[0] == '/' || base == NULL)
		w = snprintf(dst, n, "%s", rel);
	else
		w = snprintf(dst, n, "%s/%s", base, rel);
	if (w < 0 || (size_t)w >= n)
		return s ? conf_err(SV_ECONFIG, s, "path too long")
			 : sv_seterr(SV_ECONFIG, "path too long: %s", rel);
	return 0;
}

/* Optional string setting into dst (resolved as a path when base is given). */
static int
get_path(const config_setting_t *grp, const char *name, const char *base, char *dst, size_t n)
{
	const config_setting_t *s;

	if (grp == NULL || (s = config_setting_get_member(grp, name)) == NULL)
		return 0;
	if (config_setting_get_string(s)[0] == '\0')
		return conf_err(SV_ECONFIG, s, "must not be empty");
	return resolve(dst, n, base, config_setting_get_string(s), s);
}

/* dst = state_dir/name unless already set. */
static int
under_state(struct vconf *c, char *dst, size_t n, const char *name)
{
	if (dst[0] != '\0')
		return 0;
	if (snprintf(dst, n, "%s/%s", c->state_dir, name) >= (int)n)
		return sv_seterr(SV_ECONFIG, "state_dir too long");
	return 0;
}

static int
derive_vaultd(struct vconf *c)
{
	int r;

	if ((r = under_state(c, c->tls_cert, sizeof(c->tls_cert), "tls/server.pem")) != 0 ||
	    (r = under_state(c, c->tls_key, sizeof(c->tls_key), "tls/server.key")) != 0 ||
	    (r = under_state(c, c->ca_cert, sizeof(c->ca_cert), "ca.pem")) != 0 ||
	    (r = under_state(c, c->ca_links, sizeof(c->ca_links), "ca-links.pem")) != 0 ||
	    (r = under_state(c, c->policy_file, sizeof(c->policy_file), "policies.conf")) != 0 ||
	    (r = under_state(c, c->admin_socket, sizeof(c->admin_socket), "admin.sock")) != 0 ||
	    (r = under_state(c, c->audit_file, sizeof(c->audit_file), "audit.log")) != 0 ||
	    (r = under_state(c, c->audit_pub, sizeof(c->audit_pub), "audit-key.pem")) != 0 ||
	    (r = under_state(c, c->pid_file, sizeof(c->pid_file), "vaultd.pid")) != 0)
		return r;
	if (c->ntls_names == 0) {
		if ((c->tls_names[0] = strdup("localhost")) == NULL ||
		    (c->tls_names[1] = strdup("127.0.0.1")) == NULL)
			return SV_ENOMEM;
		c->ntls_names = 2;
	}
	if (c->nmetrics_allow == 0) {
		if ((c->metrics_allow[0] = strdup("127.0.0.1")) == NULL)
			return SV_ENOMEM;
		c->nmetrics_allow = 1;
	}
	return 0;
}

static int
derive(struct vconf *c)
{
	int r;

	if ((r = derive_vaultd(c)) != 0)
		return r;
	if (snprintf(c->db_path, sizeof(c->db_path), "%s/state.db", c->state_dir) >=
	    (int)sizeof(c->db_path))
		return sv_seterr(SV_ECONFIG, "state_dir too long");
	if (c->pin_file[0] == '\0' &&
	    snprintf(c->pin_file, sizeof(c->pin_file), "%s/hsm/pin", c->state_dir) >=
		(int)sizeof(c->pin_file))
		return sv_seterr(SV_ECONFIG, "state_dir too long");
	if (snprintf(c->so_pin_file, sizeof(c->so_pin_file), "%s/hsm/so-pin", c->state_dir) >=
	    (int)sizeof(c->so_pin_file))
		return sv_seterr(SV_ECONFIG, "state_dir too long");
	c->hsm.module = c->module;
	c->hsm.token = c->token;
	c->hsm.pin_file = c->pin_file;
	c->hsm.softhsm2_conf = c->softhsm2_conf[0] ? c->softhsm2_conf : NULL;
	return 0;
}

static void
defaults(struct vconf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->module, sizeof(c->module), "%s", SV_SOFTHSM_MODULE);
	snprintf(c->token, sizeof(c->token), "%s", VCONF_DEFAULT_TOKEN);
	snprintf(c->listen, sizeof(c->listen), "%s", VCONF_LISTEN_DEFAULT);
	snprintf(c->enroll_listen, sizeof(c->enroll_listen), "%s", VCONF_ENROLL_DEFAULT);
	snprintf(c->user, sizeof(c->user), "nobody");
	c->audit_checkpoint_records = 1000;
	c->audit_checkpoint_seconds = 300;
	c->shadow_cert_days = 365;
	c->max_pending = 1024;
	c->max_connections = 4096;
	c->max_connections_per_address = 256;
	c->enroll_per_minute = 60;
	c->enroll_per_minute_per_address = 20;
	c->tls_signs_per_second = 200;
	c->request_timeout = 30;
	c->sandbox = 1;
}

void
vconf_free(struct vconf *c)
{
	int i;

	for (i = 0; i < c->ntls_names; i++)
		free(c->tls_names[i]);
	for (i = 0; i < c->nmetrics_allow; i++)
		free(c->metrics_allow[i]);
	c->ntls_names = c->nmetrics_allow = 0;
}

/* Optional int setting within [lo, hi]. */
static int
get_int(const config_setting_t *grp, const char *name, int lo, int hi, int *dst)
{
	const config_setting_t *s;
	long long v;

	if (grp == NULL || (s = config_setting_get_member(grp, name)) == NULL)
		return 0;
	v = config_setting_get_int64(s);
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	if (v < lo || v > hi)
		return conf_err(SV_ECONFIG, s, "must be between %d and %d", lo, hi);
	*dst = (int)v;
	return 0;
}

/* Optional plain string setting (not a path) of at most n - 1 bytes. */
static int
get_str(const config_setting_t *grp, const char *name, char *dst, size_t n)
{
	const config_setting_t *s;
	const char *v;

	if (grp == NULL || (s = config_setting_get_member(grp, name)) == NULL)
		return 0;
	v = config_setting_get_string(s);
	if (v[0] == '\0' || strlen(v) >= n)
		return conf_err(SV_ECONFIG, s, "must be 1 to %zu bytes", n - 1);
	snprintf(dst, n, "%s", v);
	return 0;
}

/* Optional list of strings into list (strdup'd), at most VCONF_MAX_TLS_NAMES. */
static int
get_list(const config_setting_t *grp, const char *name, char **list, int *n)
{
	const config_setting_t *s;
	int i, len;

	if (grp == NULL || (s = config_setting_get_member(grp, name)) == NULL)
		return 0;
	if ((len = config_setting_length(s)) > VCONF_MAX_TLS_NAMES || len == 0)
		return conf_err(SV_ECONFIG, s, "must hold 1 to %d entries", VCONF_MAX_TLS_NAMES);
	for (i = 0; i < len; i++) {
		const char *v = config_setting_get_string_elem(s, i);

		if (v == NULL || v[0] == '\0' || strlen(v) > 253)
			return conf_err(SV_ECONFIG, s, "entry %d must be 1 to 253 bytes", i + 1);
		if ((list[i] = strdup(v)) == NULL)
			return SV_ENOMEM;
		(*n)++;
	}
	return 0;
}

/* tls.key: a file, or the pkcs11: URI of a key in the vault's own token (kept as is). */
static int
get_tls_key(const config_setting_t *tls, const char *base, struct vconf *c)
{
	const char *v;

	if (tls == NULL || config_setting_lookup_string(tls, "key", &v) != CONFIG_TRUE ||
	    strncmp(v, "pkcs11:", 7) != 0)
		return get_path(tls, "key", base, c->tls_key, sizeof(c->tls_key));
	if (strlen(v) >= sizeof(c->tls_key))
		return conf_err(SV_ECONFIG, config_setting_get_member(tls, "key"), "URI too long");
	snprintf(c->tls_key, sizeof(c->tls_key), "%s", v);
	return 0;
}

int
vconf_tls_in_token(const struct vconf *c)
{
	return strncmp(c->tls_key, "pkcs11:", 7) == 0;
}

static int
load_vaultd(const config_setting_t *root, const char *base, struct vconf *c)
{
	const config_setting_t *tls = config_setting_get_member(root, "tls");
	const config_setting_t *aud = config_setting_get_member(root, "audit");
	const config_setting_t *lim = config_setting_get_member(root, "limits");
	const config_setting_t *s;
	int r;

	if ((r = get_str(root, "listen", c->listen, sizeof(c->listen))) != 0 ||
	    (r = get_str(root, "enroll_listen", c->enroll_listen, sizeof(c->enroll_listen))) != 0 ||
	    (r = get_str(root, "user", c->user, sizeof(c->user))) != 0 ||
	    (r = get_path(tls, "cert", base, c->tls_cert, sizeof(c->tls_cert))) != 0 ||
	    (r = get_tls_key(tls, base, c)) != 0 ||
	    (r = get_list(tls, "names", c->tls_names, &c->ntls_names)) != 0 ||
	    (r = get_int(tls, "renew_days", 0, 3650, &c->tls_renew_days)) != 0 ||
	    (r = get_path(root, "policy_file", base, c->policy_file, sizeof(c->policy_file))) !=
		0 ||
	    (r = get_path(root, "admin_socket", base, c->admin_socket, sizeof(c->admin_socket))) !=
		0 ||
	    (r = get_path(root, "pid_file", base, c->pid_file, sizeof(c->pid_file))) != 0 ||
	    (r = get_path(aud, "file", base, c->audit_file, sizeof(c->audit_file))) != 0 ||
	    (r = get_int(aud, "checkpoint_records", 1, 10000000, &c->audit_checkpoint_records)) !=
		0 ||
	    (r = get_int(aud, "checkpoint_seconds", 1, 86400, &c->audit_checkpoint_seconds)) != 0 ||
	    (r = get_int(lim, "max_pending", 1, 1000000, &c->max_pending)) != 0 ||
	    (r = get_int(lim, "max_connections", 1, 1000000, &c->max_connections)) != 0 ||
	    (r = get_int(lim, "max_connections_per_address", 1, 1000000,
		 &c->max_connections_per_address)) != 0 ||
	    (r = get_int(lim, "enroll_per_minute", 1, 100000, &c->enroll_per_minute)) != 0 ||
	    (r = get_int(lim, "enroll_per_minute_per_address", 1, 100000,
		 &c->enroll_per_minute_per_address)) != 0 ||
	    (r = get_int(lim, "tls_signs_per_second", 1, 100000, &c->tls_signs_per_second)) != 0 ||
	    (r = get_int(lim, "request_timeout", 1, 3600, &c->request_timeout)) != 0 ||
	    (r = get_int(root, "shadow_cert_days", 1, 3650, &c->shadow_cert_days)) != 0 ||
	    (r = get_int(root, "shadow_renew_days", 0, 3650, &c->shadow_renew_days)) != 0 ||
	    (r = get_list(root, "metrics_allow", c->metrics_allow, &c->nmetrics_allow)) != 0)
		return r;
	if ((s = config_setting_get_member(root, "sandbox")) != NULL)
		c->sandbox = config_setting_get_bool(s);
	return 0;
}

static int
load_file(const char *path, struct vconf *c)
{
	config_t cfg;
	const config_setting_t *root, *hsm;
	const char *tok;
	char dirbuf[PATH_MAX], *base;
	int r;

	/* Absolute, so relative settings stay right after vaultd leaves the directory. */
	if (realpath(path, c->path) == NULL)
		snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(dirbuf, sizeof(dirbuf), "%s", c->path);
	base = dirname(dirbuf);
	if ((r = conf_read(&cfg, path)) != 0)
		goto out;
	root = config_root_setting(&cfg);
	if ((r = conf_check(root, root_keys)) != 0)
		goto out;
	hsm = config_setting_get_member(root, "hsm");
	if ((r = get_path(root, "state_dir", base, c->state_dir, sizeof(c->state_dir))) != 0 ||
	    (r = get_path(hsm, "module", base, c->module, sizeof(c->module))) != 0 ||
	    (r = get_path(hsm, "pin_file", base, c->pin_file, sizeof(c->pin_file))) != 0 ||
	    (r = get_path(
		 hsm, "softhsm2_conf", base, c->softhsm2_conf, sizeof(c->softhsm2_conf))) != 0)
		goto out;
	if ((r = load_vaultd(root, base, c)) != 0)
		goto out;
	if (hsm != NULL && config_setting_lookup_string(hsm, "token", &tok) == CONFIG_TRUE) {
		if (tok[0] == '\0' || strlen(tok) > 32) {
			r = conf_err(SV_ECONFIG, config_setting_get_member(hsm, "token"),
			    "token label must be 1 to 32 bytes");
			goto out;
		}
		snprintf(c->token, sizeof(c->token), "%s", tok);
	}
out:
	config_destroy(&cfg);
	return r;
}

int
vconf_load(const char *path, struct vconf *c)
{
	int r;

	char cwd[PATH_MAX];

	defaults(c);
	if (path == NULL) {
		/* Absolute paths: vaultd may change directory after start-up. */
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return sv_seterr(SV_ECONFIG, "cannot read the working directory");
		c->embedded = 1;
		snprintf(c->path, sizeof(c->path), "(embedded defaults)");
		if ((r = resolve(
			 c->state_dir, sizeof(c->state_dir), cwd, VCONF_DEFAULT_STATE, NULL)) != 0)
			return r;
		if (snprintf(c->softhsm2_conf, sizeof(c->softhsm2_conf), "%s/hsm/softhsm2.conf",
			c->state_dir) >= (int)sizeof(c->softhsm2_conf))
			return sv_seterr(SV_ECONFIG, "working directory path too long");
		return derive(c);
	}
	if ((r = load_file(path, c)) != 0 || (r = derive(c)) != 0)
		vconf_free(c);
	return r;
}

const char *
vconf_default_path(void)
{
	const char *e = getenv("SHADOWVAULT_CONFIG");

	if (e != NULL && *e != '\0')
		return e;
	if (access(SV_DEFAULT_CONFIG, F_OK) == 0)
		return SV_DEFAULT_CONFIG;
	return NULL;
}
