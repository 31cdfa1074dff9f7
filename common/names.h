/*
 * Validation of the names users give to keys, shadows, accounts and policies.
 * A name is 1 to SV_NAME_MAX characters from [A-Za-z0-9._-], starting with a
 * letter or digit: safe in file names, PKCS#11 labels, URLs and log lines.
 */
#ifndef SV_NAMES_H
#define SV_NAMES_H

#define SV_NAME_MAX 64

/* 0 if valid; SV_EINVAL with a detail naming what ("key name") otherwise. */
int sv_name_check(const char *name, const char *what);

#endif
