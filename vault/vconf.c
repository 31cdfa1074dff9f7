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

static const struct conf_key root_keys[] = {
	{ "state_dir", CONF_STRING, 1, NULL },
	{ "hsm", CONF_GROUP, 0, hsm_keys },
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

static int
derive(struct vconf *c)
{
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
}

static int
load_file(const char *path, struct vconf *c)
{
	config_t cfg;
	const config_setting_t *root, *hsm;
	const char *tok;
	char dirbuf[PATH_MAX], *base;
	int r;

	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
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
	if ((r = load_file(path, c)) != 0)
		return r;
	return derive(c);
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
