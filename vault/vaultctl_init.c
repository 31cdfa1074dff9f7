/*
 * vaultctl init: create the state directory and database and, when the
 * configuration keeps a SoftHSM2 token under the state directory (the
 * embedded development defaults do), create that token with random PINs.
 * Works offline: the daemon must not be running.  Touches only state_dir
 * and the token.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "b64.h"
#include "fileio.h"
#include "state.h"
#include "sv_err.h"
#include "vaultctl.h"

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* A random PIN file (mode 0600) unless one is there already. */
static int
make_pin(const char *path)
{
	uint8_t rnd[18];
	char *pin;
	int r;

	if (exists(path))
		return 0;
	randombytes_buf(rnd, sizeof(rnd));
	if ((r = b64u_encode(rnd, sizeof(rnd), &pin)) != 0)
		return r;
	sodium_memzero(rnd, sizeof(rnd));
	r = sv_write_file_atomic(path, pin, strlen(pin), 0600);
	sodium_memzero(pin, strlen(pin));
	free(pin);
	return r;
}

static int
dir_of(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL || (size_t)(slash - path) >= n)
		return sv_seterr(SV_ECONFIG, "%s: needs a directory part", path);
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
	return 0;
}

/* The development token: softhsm2.conf, a token directory and random PINs. */
static int
dev_token(const struct vconf *cfg, int quiet)
{
	char dir[PATH_MAX], tokdir[PATH_MAX + 8], conf[PATH_MAX + 160];
	int r;

	if ((r = dir_of(cfg->softhsm2_conf, dir, sizeof(dir))) != 0)
		return r;
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", dir);
	if ((r = sv_mkdir_p(tokdir, 0700)) != 0)
		return r;
	if (!exists(cfg->softhsm2_conf)) {
		if (snprintf(conf, sizeof(conf),
			"# SoftHSM2 token of a shadowvault development vault (vaultctl init)\n"
			"directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
			"slots.removable = false\nlibrary.reset_on_fork = true\n",
			tokdir) >= (int)sizeof(conf))
			return sv_seterr(SV_ECONFIG, "%s: path too long", tokdir);
		if ((r = sv_write_file_atomic(cfg->softhsm2_conf, conf, strlen(conf), 0600)) != 0)
			return r;
	}
	if ((r = make_pin(cfg->pin_file)) != 0 || (r = make_pin(cfg->so_pin_file)) != 0)
		return r;
	r = hsm_init_token(&cfg->hsm, cfg->so_pin_file);
	if (r == SV_EEXIST)
		return 0;
	if (r == 0 && !quiet)
		printf("created SoftHSM2 token \"%s\" in %s (PIN in %s)\n", cfg->token, tokdir,
		    cfg->pin_file);
	return r;
}

int
ctl_cmd_init(struct ctl *c, int argc, char **argv)
{
	struct state *st = NULL;
	struct hsm *h = NULL;
	int r;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			puts(
			    "usage: vaultctl init\n\nCreate the state directory and database. With "
			    "hsm.softhsm2_conf set (the\nembedded defaults), also create a "
			    "SoftHSM2 "
			    "token with random PINs under it.\nRun it once, with vaultd stopped.");
			return SV_EXIT_OK;
		}
		fprintf(stderr, "usage: vaultctl init\n");
		return SV_EXIT_USAGE;
	}
	if (exists(c->cfg.db_path))
		return ctl_fail(sv_seterr(SV_EEXIST, "%s is already initialised (%s exists)",
		    c->cfg.state_dir, c->cfg.db_path));
	if ((r = sv_mkdir_p(c->cfg.state_dir, 0700)) != 0)
		return ctl_fail(r);
	if (c->cfg.hsm.softhsm2_conf != NULL && (r = dev_token(&c->cfg, c->quiet)) != 0)
		return ctl_fail(r);
	/* Prove the token and PIN work before recording anything. */
	if ((r = hsm_open(&c->cfg.hsm, &h)) != 0)
		return ctl_fail(r);
	hsm_close(h);
	if ((r = state_open(c->cfg.db_path, 1, &st)) != 0)
		return ctl_fail(r);
	state_close(st);
	if (!c->quiet)
		printf("initialised %s (state database %s, token \"%s\")\n", c->cfg.state_dir,
		    c->cfg.db_path, c->cfg.token);
	return SV_EXIT_OK;
}
