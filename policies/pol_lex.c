/*
 * Checks on the raw text of a policy file before libconfig 1.5 parses it,
 * for two things libconfig cannot be told to refuse:
 *  - "@include" lines: an included file would escape the size cap and the
 *    single-file reload, so a policy is always one file;
 *  - integer literals beyond 32 bits without an L suffix: libconfig 1.5
 *    silently truncates them (4294967297 reads as 1), which would turn a
 *    typo into a valid-looking rate.
 * A small scanner skips strings and comments the way libconfig does; it
 * reads only the text it is given.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "pol_int.h"
#include "sv_err.h"

#define INT32_LIMIT 0x7fffffffu

/* libconfig recognises "@include" only at the start of a line after blanks. */
static int
include_check(const char *t, size_t len, const char *name)
{
	const char *nl;
	size_t i = 0, j;
	unsigned line = 1;

	for (;;) {
		for (j = i; j < len && (t[j] == ' ' || t[j] == '\t'); j++)
			;
		if (len - j >= 8 && strncasecmp(t + j, "@include", 8) == 0)
			return sv_seterr(SV_ECONFIG,
			    "%s:%u: @include is not allowed in a policy file (keep it in one file)",
			    name, line);
		if ((nl = memchr(t + i, '\n', len - i)) == NULL)
			return 0;
		i = (size_t)(nl - t) + 1;
		line++;
	}
}

/* Scan the number at t[*ip]; 1 if it is an int libconfig would truncate. */
static int
number_scan(const char *t, size_t len, size_t *ip)
{
	size_t i = *ip;
	uint64_t v = 0;
	int base = 10, d, big = 0;

	if (t[i] == '0' && i + 1 < len && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
		base = 16;
		i += 2;
	}
	for (; i < len && (d = OPENSSL_hexchar2int((unsigned char)t[i])) >= 0 && d < base; i++) {
		if (!big && (v = v * (unsigned)base + (unsigned)d) > INT32_LIMIT)
			big = 1;
	}
	if (base == 10 && i < len && (t[i] == '.' || t[i] == 'e' || t[i] == 'E')) {
		/* A float: not an integer setting, the schema rejects it. */
		while (i < len && strchr("0123456789.eE+-", t[i]) != NULL)
			i++;
		big = 0;
	} else if (i < len && t[i] == 'L') {
		big = 0; /* 64-bit literal: libconfig keeps it whole */
	}
	*ip = i;
	return big;
}

/* Skip a string or comment starting at t[i]; returns the index after it. */
static size_t
skip_text(const char *t, size_t len, size_t i, unsigned *line)
{
	const char *end;

	if (t[i] == '"') {
		for (i++; i < len && t[i] != '"'; i++) {
			if (t[i] == '\\' && i + 1 < len)
				i++;
			if (t[i] == '\n')
				(*line)++;
		}
		return i < len ? i + 1 : len;
	}
	if (t[i] == '/' && i + 1 < len && t[i + 1] == '*') {
		for (i += 2; i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/'); i++)
			if (t[i] == '\n')
				(*line)++;
		return i < len ? i + 2 : len; /* just past the closing star-slash */
	}
	/* '#' or "//" comment: up to the newline, which the caller counts. */
	end = memchr(t + i, '\n', len - i);
	return end ? (size_t)(end - t) : len;
}

/* libconfig names: [A-Za-z*][-A-Za-z0-9_*]*; a '-' before digits is a sign. */
static int
ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*' || c == '_';
}

static int
ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static int
integer_check(const char *t, size_t len, const char *name)
{
	size_t i = 0;
	unsigned line = 1;

	while (i < len) {
		char c = t[i];

		if (c == '"' || c == '#' ||
		    (c == '/' && i + 1 < len && (t[i + 1] == '*' || t[i + 1] == '/'))) {
			i = skip_text(t, len, i, &line);
		} else if (c >= '0' && c <= '9') {
			if (number_scan(t, len, &i))
				return sv_seterr(SV_ECONFIG,
				    "%s:%u: integer out of range (more than 32 bits; libconfig "
				    "would truncate it)",
				    name, line);
		} else if (ident_start(c)) {
			while (i < len && ident_char(t[i]))
				i++;
		} else {
			if (c == '\n')
				line++;
			i++;
		}
	}
	return 0;
}

int
pol_text_check(const char *text, size_t len, const char *name)
{
	int r;

	if ((r = include_check(text, len, name)) != 0)
		return r;
	return integer_check(text, len, name);
}
