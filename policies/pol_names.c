/*
 * DNS name rules of the policy language (see pol_name_normalize in pol.h):
 * the same normalisation is applied to patterns when a policy is loaded and
 * to the names a shadow asks for, so both sides compare as plain strings.
 * Pure string code: no allocation, no I/O, no global state.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pol.h"
#include "pol_int.h"
#include "sv_err.h"

#define LABEL_MAX 63

static int
fail(char *why, size_t whysz, const char *text)
{
	snprintf(why, whysz, "%s", text);
	return SV_EINVAL;
}

static int
ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Check one label s[0..len) (already lower case); label is its 1-based number. */
static int
label_check(const char *s, size_t len, unsigned label, char *why, size_t whysz)
{
	size_t i;

	if (len == 0)
		return fail(why, whysz, "empty label (two dots in a row, or a leading dot)");
	if (len > LABEL_MAX) {
		snprintf(why, whysz, "label %u is longer than %d characters", label, LABEL_MAX);
		return SV_EINVAL;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '*')
			return fail(why, whysz,
			    "'*' is allowed only as the whole first label (\"*.example.com\")");
		if (!ldh(s[i])) {
			snprintf(why, whysz, "label %u has a character other than a-z, 0-9 and '-'",
			    label);
			return SV_EINVAL;
		}
	}
	if (s[0] == '-' || s[len - 1] == '-') {
		snprintf(why, whysz, "label %u starts or ends with '-'", label);
		return SV_EINVAL;
	}
	return 0;
}

/* Check the labels of s (lower case, no trailing dot); wild: s followed "*.". */
static int
labels_check(const char *s, int wild, char *why, size_t whysz)
{
	const char *p = s, *dot, *last = s;
	unsigned n = wild ? 1 : 0; /* label numbers count the "*" */
	int r;

	for (;;) {
		dot = strchr(p, '.');
		n++;
		if ((r = label_check(p, dot ? (size_t)(dot - p) : strlen(p), n, why, whysz)) != 0)
			return r;
		if (dot == NULL)
			break;
		p = last = dot + 1;
	}
	if (n - (wild ? 1 : 0) < 2)
		return fail(why, whysz,
		    wild ? "a wildcard needs at least two labels after \"*.\" (\"*.example.com\")"
			 : "a name needs at least two labels (\"example.com\")");
	if (strspn(last, "0123456789") == strlen(last))
		return fail(
		    why, whysz, "the last label is all digits (IP addresses are not names)");
	return 0;
}

int
pol_name_check(const char *in, char *out, size_t n, char *why, size_t whysz)
{
	size_t len, i;
	int wild;

	why[0] = '\0';
	if (n < POL_NAME_BUF)
		return fail(why, whysz, "output buffer too small");
	out[0] = '\0';
	/* One byte more than the longest name with its optional trailing dot. */
	len = strnlen(in, POL_NAME_MAX + 2);
	if (len == 0)
		return fail(why, whysz, "empty name");
	for (i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			return fail(why, whysz, "not ASCII: use the A-label (xn--) form");
	if (len > POL_NAME_MAX + 1 || (len == POL_NAME_MAX + 1 && in[len - 1] != '.')) {
		snprintf(why, whysz, "longer than %d characters", POL_NAME_MAX);
		return SV_EINVAL;
	}
	for (i = 0; i < len; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	if (out[len - 1] == '.')
		len--;
	out[len] = '\0';
	wild = len >= 2 && out[0] == '*' && out[1] == '.';
	if (len == 0 || (out[0] == '*' && !wild)) {
		out[0] = '\0';
		return fail(why, whysz,
		    len == 0 ? "empty name"
			     : "'*' is allowed only as the whole first label (\"*.example.com\")");
	}
	if (labels_check(out + (wild ? 2 : 0), wild, why, whysz) != 0) {
		out[0] = '\0';
		return SV_EINVAL;
	}
	return 0;
}

int
pol_name_normalize(const char *in, char *out, size_t n)
{
	char why[POL_WHY_MAX], esc[128];

	if (in == NULL || out == NULL)
		return sv_seterr(SV_EINVAL, "pol_name_normalize: NULL argument");
	if (pol_name_check(in, out, n, why, sizeof(why)) != 0)
		return sv_seterr(SV_EINVAL, "name \"%s\": %s",
		    sv_escape(in, strnlen(in, POL_NAME_MAX + 2), esc, sizeof(esc)), why);
	return 0;
}
