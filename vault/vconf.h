/*
 * vaultd / vaultctl configuration: a libconfig file, or the embedded
 * development defaults (a SoftHSM2 token and SQLite under ./state).
 *
 * Relative paths in a file are relative to the file's directory; in the
 * embedded defaults they are relative to the working directory.
 */
#ifndef SV_VCONF_H
#define SV_VCONF_H

#include <limits.h>

#include "hsm.h"

#define VCONF_DEFAULT_STATE "state"
#define VCONF_DEFAULT_TOKEN "shadowvault"

struct vconf {
	char path[PATH_MAX]; /* config file, or "(embedded defaults)" */
	int embedded;	     /* 1 when no file was read */
	char state_dir[PATH_MAX];
	char db_path[PATH_MAX]; /* state_dir/state.db */
	char module[PATH_MAX];
	char token[33];
	char pin_file[PATH_MAX];
	char so_pin_file[PATH_MAX];   /* only for a token vaultctl init creates */
	char softhsm2_conf[PATH_MAX]; /* empty when unset */
	struct hsm_config hsm;	      /* points into the fields above */
};

/*
 * Load path, or the embedded defaults when path is NULL.  Unknown settings,
 * wrong types and missing files are SV_ECONFIG errors naming file and line.
 */
int vconf_load(const char *path, struct vconf *out);

/*
 * Which file to use when the user gave none: $SHADOWVAULT_CONFIG, then
 * SV_DEFAULT_CONFIG if it exists, else NULL (embedded defaults).
 */
const char *vconf_default_path(void);

#endif
