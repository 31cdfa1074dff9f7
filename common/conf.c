/*
 * Schema checks over libconfig (see conf.h).  Reads only the files named by
 * the caller and the files they @include (relative to the including file).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "fileio.h"
#include "sv_err.h"

static const char *
setting_path(const config_setting_t *s, char *buf, size_t n)
{
	const char *parts[16];
	const config_setting_t *p;
	size_t k = 0, used = 0;

	buf[0] = '\0';
	for (p = s; p != NULL && k < 16; p = config_setting_parent(p)) {
		if (config_setting_name(p) != NULL)
			parts[k++] = config_setting_name(p);
	}
	while (k-- > 0 && used < n) {
		used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "." : "", parts[k]);
	}
	return buf;
}

const char *
conf_where(const config_setting_t *s, char *buf, size_t n)
{
	const char *f = config_setting_source_file(s);

	snprintf(buf, n, "%s:%u", f ? f : "(config)", (unsigned)config_setting_source_line(s));
	return buf;
}

int
conf_err(int code, const config_setting_t *s, const char *fmt, ...)
{
	char where[PATH_MAX + 16], path[256], msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sv_seterr(code, "%s: %s: %s", conf_where(s, where, sizeof(where)),
	    setting_path(s, path, sizeof(path)), msg);
}

static int
read_common(config_t *cfg, int rc, const char *name)
{
	const char *f;
	int dup;

	if (rc == CONFIG_TRUE)
		return 0;
	f = config_error_file(cfg);
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		return sv_seterr(SV_ECONFIG, "%s: cannot read file", f ? f : name);
	/* libconfig names neither setting: say where to look. */
	dup = config_error_text(cfg) != NULL &&
	    strcmp(config_error_text(cfg), "duplicate setting name") == 0;
	return sv_seterr(SV_ECONFIG, "%s:%d: %s%s", f ? f : name, config_error_line(cfg),
	    config_error_text(cfg),
	    dup ? " (a setting here repeats the name of an earlier one in its group)" : "");
}

/*
 * Size cap and text check before libconfig sees the file: configuration is
 * text, and a NUL byte sends libconfig 1.5 down a path that leaks memory.
 */
static int
precheck(const char *path)
{
	uint8_t *d;
	size_t len;
	int r;

	if (access(path, R_OK) != 0)
		return sv_seterr(SV_ECONFIG, "%s: %s", path, strerror(errno));
	if ((r = sv_read_file(path, CONF_FILE_MAX, &d, &len)) != 0)
		return sv_recode(SV_ECONFIG);
	r = memchr(d, '\0', len) != NULL
	    ? sv_seterr(SV_ECONFIG, "%s:%zu: NUL byte: not a text file", path,
		  (size_t)((uint8_t *)memchr(d, '\0', len) - d) + 1)
	    : 0;
	free(d);
	return r;
}

int
conf_read(config_t *cfg, const char *path)
{
	char dir[PATH_MAX];
	int r;

	config_init(cfg);
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return sv_seterr(SV_ECONFIG, "%s: path too long", path);
	if ((r = precheck(path)) != 0)
		return r;
	config_set_include_dir(cfg, dirname(dir));
	return read_common(cfg, config_read_file(cfg, path), path);
}

int
conf_read_string(config_t *cfg, const char *text, const char *name)
{
	config_init(cfg);
	return read_common(cfg, config_read_string(cfg, text), name);
}

static const char *
type_name(enum conf_type t)
{
	static const char *const n[] = { "a string", "an integer", "true or false", "a group",
		"a group", "a list of strings", "a list of groups" };
	return n[t];
}

static int check_value(const config_setting_t *s, const struct conf_key *k);

static int
check_list(const config_setting_t *s, const struct conf_key *k)
{
	int i, n = config_setting_length(s), r;

	if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
		return conf_err(SV_ECONFIG, s, "must be %s", type_name(k->type));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (k->type == CONF_STRLIST && config_setting_type(e) != CONFIG_TYPE_STRING)
			return conf_err(SV_ECONFIG, e, "element %d must be a string", i + 1);
		if (k->type == CONF_GROUPLIST) {
			if (!config_setting_is_group(e))
				return conf_err(SV_ECONFIG, e, "element %d must be a group", i + 1);
			if ((r = conf_check(e, k->sub)) != 0)
				return r;
		}
	}
	return 0;
}

static int
check_value(const config_setting_t *s, const struct conf_key *k)
{
	int t = config_setting_type(s), i, r;

	switch (k->type) {
	case CONF_STRING:
		return t == CONFIG_TYPE_STRING ? 0 : conf_err(SV_ECONFIG, s, "must be a string");
	case CONF_INT:
		return (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
		    ? 0
		    : conf_err(SV_ECONFIG, s, "must be an integer");
	case CONF_BOOL:
		return t == CONFIG_TYPE_BOOL ? 0 : conf_err(SV_ECONFIG, s, "must be true or false");
	case CONF_GROUP:
		if (t != CONFIG_TYPE_GROUP)
			return conf_err(SV_ECONFIG, s, "must be a group { ... }");
		return conf_check(s, k->sub);
	case CONF_MAP:
		if (t != CONFIG_TYPE_GROUP)
			return conf_err(SV_ECONFIG, s, "must be a group { ... }");
		for (i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

			if (!config_setting_is_group(e))
				return conf_err(SV_ECONFIG, e, "must be a group { ... }");
			if ((r = conf_check(e, k->sub)) != 0)
				return r;
		}
		return 0;
	case CONF_STRLIST:
	case CONF_GROUPLIST:
		return check_list(s, k);
	}
	return SV_EINTERNAL;
}

int
conf_check(const config_setting_t *grp, const struct conf_key *schema)
{
	const struct conf_key *k;
	int i, r;

	for (i = 0; i < config_setting_length(grp); i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);

		for (k = schema; k->name != NULL; k++)
			if (name != NULL && strcmp(k->name, name) == 0)
				break;
		if (k->name == NULL)
			return conf_err(SV_ECONFIG, s, "unknown setting");
		if ((r = check_value(s, k)) != 0)
			return r;
	}
	for (k = schema; k->name != NULL; k++) {
		if (k->required && config_setting_get_member(grp, k->name) == NULL) {
			char path[256];

			if (config_setting_is_root(grp))
				return sv_seterr(SV_ECONFIG,
				    "%s: required setting \"%s\" is missing",
				    config_setting_source_file(grp)
					? config_setting_source_file(grp)
					: "(config)",
				    k->name);
			return conf_err(SV_ECONFIG, grp,
			    "required setting \"%s\" is missing (in %s)", k->name,
			    setting_path(grp, path, sizeof(path)));
		}
	}
	return 0;
}
