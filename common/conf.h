/*
 * libconfig files with a schema: every setting must be known, of the right
 * type, and required settings must be present.  Every error names the file
 * and line ("vaultd.conf:12: hsm.modul: unknown setting").
 */
#ifndef SV_CONF_H
#define SV_CONF_H

#include <libconfig.h>

enum conf_type {
	CONF_STRING,
	CONF_INT, /* int or int64 */
	CONF_BOOL,
	CONF_GROUP,    /* fixed members: sub */
	CONF_MAP,      /* members named by the user, each a group checked by sub */
	CONF_STRLIST,  /* array or list of strings */
	CONF_GROUPLIST /* list of groups, each checked by sub */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	int required;
	const struct conf_key *sub; /* for GROUP, MAP, GROUPLIST: ends with a NULL name */
};

/* Largest configuration or policy file read (each @included file is read by libconfig). */
#define CONF_FILE_MAX (1024 * 1024)

/* Read path into cfg (config_init'd here; caller config_destroy()s even on error). */
int conf_read(config_t *cfg, const char *path);

/* Same, from a string (embedded defaults, tests); name is used in messages. */
int conf_read_string(config_t *cfg, const char *text, const char *name);

/* Check grp's members against schema. */
int conf_check(const config_setting_t *grp, const struct conf_key *schema);

/* "file:line" of a setting, into buf. */
const char *conf_where(const config_setting_t *s, char *buf, size_t n);

/* Error with the setting's file:line and path: returns code. */
int conf_err(int code, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
