/*
 * Name validation (see names.h).
 */
#include <string.h>

#include "log.h"
#include "names.h"
#include "sv_err.h"

static int
name_char(char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return !first && (c == '.' || c == '_' || c == '-');
}

int
sv_name_check(const char *name, const char *what)
{
	char esc[96];
	size_t i, n;

	if (name == NULL || (n = strlen(name)) == 0)
		return sv_seterr(SV_EINVAL, "%s is empty", what);
	if (n > SV_NAME_MAX)
		return sv_seterr(SV_EINVAL, "%s is longer than %d characters", what, SV_NAME_MAX);
	for (i = 0; i < n; i++)
		if (!name_char(name[i], i == 0))
			return sv_seterr(SV_EINVAL,
			    "%s \"%s\": character %zu is not allowed (use letters, digits, '.', "
			    "'_', "
			    "'-'; start with a letter or digit)",
			    what, sv_escape(name, n, esc, sizeof(esc)), i + 1);
	return 0;
}
