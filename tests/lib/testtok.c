/*
 * Throw-away SoftHSM2 tokens for tests (see testtok.h).  Touches only its
 * own directory under TMPDIR (default /tmp).
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testtok.h"

int
testtok_write(const char *dir, const char *name, const char *text, int mode, char *out)
{
	FILE *f;
	int fd;

	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, mode)) < 0)
		return -1;
	fchmod(fd, (mode_t)mode);
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

int
testtok_make(struct testtok *t, const char *label)
{
	const char *tmp = getenv("TMPDIR");
	char tokdir[PATH_MAX + 8], conf[PATH_MAX * 2];

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/svtest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", t->dir);
	if (mkdir(tokdir, 0700) != 0)
		return -1;
	snprintf(conf, sizeof(conf),
	    "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
	    "slots.removable = false\nlibrary.reset_on_fork = true\n",
	    tokdir);
	if (testtok_write(t->dir, "softhsm2.conf", conf, 0600, t->conf) != 0 ||
	    testtok_write(t->dir, "pin", "1234\n", 0600, t->pin) != 0 ||
	    testtok_write(t->dir, "so-pin", "so-secret-5678\n", 0600, t->sopin) != 0)
		return -1;
	snprintf(t->label, sizeof(t->label), "%s", label);
	t->cfg.module = SV_SOFTHSM_MODULE;
	t->cfg.token = t->label;
	t->cfg.pin_file = t->pin;
	t->cfg.softhsm2_conf = t->conf;
	return hsm_init_token(&t->cfg, t->sopin);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void
testtok_rmrf(const char *path)
{
	if (path[0] != '\0')
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
testtok_free(struct testtok *t)
{
	testtok_rmrf(t->dir);
	t->dir[0] = '\0';
}
