/*
 * Internals of the policy module shared by its files (not for other parts):
 * the compiled representation and the helpers the loader and the evaluator
 * both use.  Everything here is built once by pol_parse.c and then only read.
 */
#ifndef SV_POL_INT_H
#define SV_POL_INT_H

#include <stddef.h>

#include "pol.h"

/* A sorted array of unique, malloc'd strings, searched with pol_strs_has(). */
struct pol_strs {
	char **v;
	size_t n;
};

struct pol_shadow {
	char *name;		  /* sv_name_check'ed */
	struct pol_strs accounts; /* sv_name_check'ed, exact match */
	struct pol_strs patterns; /* normalised: "a.example.com" and "*.example.com" */
	struct pol_strs bundles;  /* sv_name_check'ed, exact match */
	unsigned ops;		  /* bit (1u << op) per granted (grantable) op */
	unsigned per_minute;
	unsigned burst;
};

struct pol {
	struct pol_shadow *shadows; /* sorted by name (strcmp), unique */
	size_t n;
};

/* Room for a why-text from pol_name_check(). */
#define POL_WHY_MAX 96

/*
 * Normalise in (see pol_name_normalize) into out (n >= POL_NAME_BUF)
 * without touching the thread's error detail: 0, or SV_EINVAL with a short
 * reason in why (never quoting the input).
 */
int pol_name_check(const char *in, char *out, size_t n, char *why, size_t whysz);

/* 1 if key is in s. */
int pol_strs_has(const struct pol_strs *s, const char *key);

/*
 * Checks on the raw text that libconfig 1.5 cannot make (text holds len
 * bytes): no @include line (it would escape the size cap and read other
 * files) and no integer literal that libconfig would silently truncate to
 * 32 bits.  0 or SV_ECONFIG with "name:line: ...".
 */
int pol_text_check(const char *text, size_t len, const char *name);

#endif
