/*
 * Throw-away SoftHSM2 tokens for tests: a private token directory under
 * /tmp, its softhsm2.conf, PIN files, and a token initialised through
 * hsm_init_token().  Removed again by testtok_free().
 */
#ifndef SV_TESTTOK_H
#define SV_TESTTOK_H

#include <limits.h>

#include "hsm.h"

struct testtok {
	char dir[PATH_MAX];
	char conf[PATH_MAX];
	char pin[PATH_MAX];
	char sopin[PATH_MAX];
	char label[33];
	struct hsm_config cfg;
};

/* Make a token labelled label with user PIN "1234"; 0 or a negative SV code. */
int testtok_make(struct testtok *t, const char *label);

/* Remove the token directory and everything under it. */
void testtok_free(struct testtok *t);

/* Write text to dir/name with mode; returns 0 or -1. Path goes to out (PATH_MAX). */
int testtok_write(const char *dir, const char *name, const char *text, int mode, char *out);

/* rm -rf path (tests only). */
void testtok_rmrf(const char *path);

#endif
