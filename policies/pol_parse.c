/*
 * Loading a policy file: size cap, raw-text checks (pol_lex.c), libconfig
 * parse, schema check (common/conf.h), then compilation of every shadow into
 * sorted arrays that pol_eval.c searches.  All-or-nothing: any error frees
 * what was built and returns no object.  Reads only the file it is given;
 * called by vaultd at start and on SIGHUP, and by vaultctl to check a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "conf.h"
#include "fileio.h"
#include "log.h"
#include "names.h"
#include "pol.h"
#include "pol_int.h"
#include "sv_err.h"

/* Settings nested deeper than the schema are never named in messages. */
#define STAMP_DEPTH 8

static const struct conf_key RATE_KEYS[] = {
	{ "per_minute", CONF_INT, 0, NULL },
	{ "burst", CONF_INT, 0, NULL },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key SHADOW_KEYS[] = {
	{ "accounts", CONF_STRLIST, 1, NULL },
	{ "names", CONF_STRLIST, 1, NULL },
	{ "operations", CONF_STRLIST, 0, NULL },
	{ "bundles", CONF_STRLIST, 0, NULL },
	{ "rate", CONF_GROUP, 0, RATE_KEYS },
	{ NULL, 0, 0, NULL },
};

static const struct conf_key ROOT_KEYS[] = {
	{ "shadows", CONF_MAP, 1, SHADOW_KEYS },
	{ NULL, 0, 0, NULL },
};

enum entry_kind { ENTRY_ACCOUNT, ENTRY_PATTERN, ENTRY_BUNDLE };

static void
strs_free(struct pol_strs *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int
strs_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates, so lookups can bsearch. */
static void
strs_sort_unique(struct pol_strs *s)
{
	size_t i, o = 0;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), strs_cmp);
	for (i = 1; i < s->n; i++) {
		if (strcmp(s->v[i], s->v[o]) == 0)
			free(s->v[i]);
		else
			s->v[++o] = s->v[i];
	}
	s->n = o + 1;
}

/* Validate one list element and put its compiled form in buf. */
static int
entry_convert(const config_setting_t *e, enum entry_kind kind, char *buf, size_t n)
{
	const char *s = config_setting_get_string(e);
	char why[POL_WHY_MAX], esc[128];

	if (kind == ENTRY_PATTERN) {
		if (pol_name_check(s, buf, n, why, sizeof(why)) == 0)
			return 0;
		return conf_err(SV_ECONFIG, e, "\"%s\": %s",
		    sv_escape(s, strnlen(s, POL_NAME_BUF + 1), esc, sizeof(esc)), why);
	}
	if (sv_name_check(s, kind == ENTRY_ACCOUNT ? "account name" : "bundle name") != 0)
		return conf_err(SV_ECONFIG, e, "%s", sv_errmsg(SV_EINVAL));
	snprintf(buf, n, "%s", s); /* at most SV_NAME_MAX, fits */
	return 0;
}

/* Compile the string list `list` into out (caller frees out even on error). */
static int
list_build(const config_setting_t *list, enum entry_kind kind, size_t max, struct pol_strs *out)
{
	char buf[POL_NAME_BUF];
	size_t n = (size_t)config_setting_length(list), i;
	int r;

	if (n > max)
		return conf_err(
		    SV_ECONFIG, list, "has %zu entries; at most %zu are allowed", n, max);
	if (n == 0)
		return 0;
	if ((out->v = calloc(n, sizeof(*out->v))) == NULL)
		return sv_seterr(SV_ENOMEM, "policy: out of memory");
	for (i = 0; i < n; i++) {
		if ((r = entry_convert(
			 config_setting_get_elem(list, (unsigned)i), kind, buf, sizeof(buf))) != 0)
			return r;
		if ((out->v[i] = strdup(buf)) == NULL)
			return sv_seterr(SV_ENOMEM, "policy: out of memory");
		out->n++;
	}
	strs_sort_unique(out);
	return 0;
}

static int
ops_compile(const config_setting_t *list, unsigned *ops)
{
	const config_setting_t *e;
	enum pol_op op;
	int i;

	*ops = 0;
	if (list == NULL) {
		*ops = (1u << POL_GRANTABLE) - 1; /* every grantable operation */
		return 0;
	}
	for (i = 0; i < config_setting_length(list); i++) {
		e = config_setting_get_elem(list, (unsigned)i);
		if (pol_op_parse(config_setting_get_string(e), &op) != 0)
			return conf_err(SV_ECONFIG, e, "%s", sv_errmsg(SV_EINVAL));
		if (pol_op_admin_only(op))
			return conf_err(SV_ECONFIG, e,
			    "\"%s\" is admin-only: a policy can never grant it (use vaultctl)",
			    pol_op_name(op));
		*ops |= 1u << op;
	}
	return 0;
}

static int
rate_value(const config_setting_t *rate, const char *key, unsigned *v)
{
	const config_setting_t *s;
	long long x;

	if (rate == NULL || (s = config_setting_get_member(rate, key)) == NULL)
		return 0;
	x = config_setting_get_int64(s);
	if (x < 1 || x > POL_RATE_MAX)
		return conf_err(SV_ECONFIG, s, "%lld is out of range (1 to %d)", x, POL_RATE_MAX);
	*v = (unsigned)x;
	return 0;
}

static int
shadow_compile(const config_setting_t *s, struct pol_shadow *sh)
{
	const config_setting_t *names = config_setting_get_member(s, "names");
	const config_setting_t *bundles = config_setting_get_member(s, "bundles");
	const config_setting_t *rate = config_setting_get_member(s, "rate");
	int r;

	if (sv_name_check(config_setting_name(s), "shadow name") != 0)
		return conf_err(SV_ECONFIG, s, "%s", sv_errmsg(SV_EINVAL));
	if ((sh->name = strdup(config_setting_name(s))) == NULL)
		return sv_seterr(SV_ENOMEM, "policy: out of memory");
	if (config_setting_length(names) == 0)
		return conf_err(SV_ECONFIG, names, "must list at least one name pattern");
	if ((r = list_build(config_setting_get_member(s, "accounts"), ENTRY_ACCOUNT,
		 POL_MAX_ACCOUNTS, &sh->accounts)) != 0 ||
	    (r = list_build(names, ENTRY_PATTERN, POL_MAX_PATTERNS, &sh->patterns)) != 0)
		return r;
	if (bundles != NULL &&
	    (r = list_build(bundles, ENTRY_BUNDLE, POL_MAX_BUNDLES, &sh->bundles)) != 0)
		return r;
	if ((r = ops_compile(config_setting_get_member(s, "operations"), &sh->ops)) != 0)
		return r;
	sh->per_minute = POL_RATE_PER_MINUTE;
	sh->burst = POL_RATE_BURST;
	if ((r = rate_value(rate, "per_minute", &sh->per_minute)) != 0 ||
	    (r = rate_value(rate, "burst", &sh->burst)) != 0)
		return r;
	return 0;
}

static int
shadow_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pol_shadow *)a)->name, ((const struct pol_shadow *)b)->name);
}

/* Build the policy from a schema-checked configuration. */
static int
pol_compile(const config_t *cfg, struct pol **out)
{
	const config_setting_t *shadows = config_lookup(cfg, "shadows");
	size_t n = (size_t)config_setting_length(shadows), i;
	struct pol *p;
	int r;

	if (n > POL_MAX_SHADOWS)
		return conf_err(SV_ECONFIG, shadows, "has %zu shadows; at most %d are allowed", n,
		    POL_MAX_SHADOWS);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->shadows = calloc(n ? n : 1, sizeof(*p->shadows))) == NULL) {
		free(p);
		return sv_seterr(SV_ENOMEM, "policy: out of memory");
	}
	for (i = 0; i < n; i++) {
		p->n = i + 1; /* so pol_free() sees the half-built one too */
		if ((r = shadow_compile(
			 config_setting_get_elem(shadows, (unsigned)i), &p->shadows[i])) != 0) {
			pol_free(p);
			return r;
		}
	}
	/* libconfig refuses duplicate setting names, so names are unique. */
	qsort(p->shadows, p->n, sizeof(*p->shadows), shadow_cmp);
	*out = p;
	return 0;
}

/*
 * libconfig 1.5 records no file name for config_read_string(), so stamp
 * ours on every setting the schema can reach: conf_err() then says
 * "name:line".  The file pointer is a public field that libconfig never
 * frees; name outlives the config_t.
 */
static void
stamp_file(config_setting_t *s, const char *name, int depth)
{
	int i, n;

	if (s->file == NULL)
		s->file = name;
	if (depth >= STAMP_DEPTH || !config_setting_is_aggregate(s))
		return;
	n = config_setting_length(s);
	for (i = 0; i < n; i++)
		stamp_file(config_setting_get_elem(s, (unsigned)i), name, depth + 1);
}

/* text holds len bytes and a NUL after them. */
static int
load_text(const char *text, size_t len, const char *name, struct pol **out)
{
	config_t cfg;
	int r;

	if ((r = pol_text_check(text, len, name)) != 0)
		return r;
	if ((r = conf_read_string(&cfg, text, name)) != 0)
		goto out;
	stamp_file(config_root_setting(&cfg), name, 0);
	if ((r = conf_check(config_root_setting(&cfg), ROOT_KEYS)) != 0)
		goto out;
	r = pol_compile(&cfg, out);
out:
	config_destroy(&cfg);
	return r;
}

int
pol_load_string(const char *text, const char *name, struct pol **out)
{
	size_t len;

	if (out == NULL)
		return sv_seterr(SV_EINVAL, "pol_load_string: NULL argument");
	*out = NULL;
	if (name == NULL)
		name = "(policy)";
	if (text == NULL)
		return sv_seterr(SV_EINVAL, "%s: no policy text", name);
	if ((len = strnlen(text, POL_FILE_MAX + 1)) > POL_FILE_MAX)
		return sv_seterr(SV_ETOOBIG, "%s: policy larger than %d bytes", name, POL_FILE_MAX);
	return load_text(text, len, name, out);
}

int
pol_load_file(const char *path, struct pol **out)
{
	uint8_t *buf;
	size_t len;
	int r;

	if (out == NULL)
		return sv_seterr(SV_EINVAL, "pol_load_file: NULL argument");
	*out = NULL;
	if (path == NULL)
		return sv_seterr(SV_EINVAL, "pol_load_file: no path");
	if ((r = sv_read_file(path, POL_FILE_MAX, &buf, &len)) != 0)
		return r;
	if (memchr(buf, '\0', len) != NULL)
		r = sv_seterr(SV_ECONFIG, "%s: contains a NUL byte (not a text file)", path);
	else
		r = load_text((const char *)buf, len, path, out);
	free(buf);
	return r;
}

static void
shadow_free(struct pol_shadow *sh)
{
	free(sh->name);
	strs_free(&sh->accounts);
	strs_free(&sh->patterns);
	strs_free(&sh->bundles);
}

void
pol_free(struct pol *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		shadow_free(&p->shadows[i]);
	free(p->shadows);
	free(p);
}
