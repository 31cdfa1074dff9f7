/*
 * Internals shared by the files of vaultctl (the administrator's CLI).
 */
#ifndef SV_VAULTCTL_H
#define SV_VAULTCTL_H

#include <jansson.h>

#include "vconf.h"

struct ctl {
	const char *config_path; /* NULL: default lookup */
	struct vconf cfg;
	int json; /* --json output */
	int quiet;
};

/* A command: argc/argv start at the command's own name. Returns an exit status. */
typedef int (*ctl_cmd_fn)(struct ctl *c, int argc, char **argv);

/*
 * Send an admin request to whoever owns the token and return the answer's
 * "result" (caller json_decref()s) or a negative SV code with the detail set.
 */
int ctl_request(struct ctl *c, json_t *req, json_t **result);

/*
 * Send req (consumed) and print the result: as JSON with --json, else with
 * human (nothing if NULL or --quiet).  Returns the exit status.
 */
typedef void (*ctl_show_fn)(struct ctl *c, const json_t *result);
int ctl_run(struct ctl *c, json_t *req, ctl_show_fn human);

/* Print usage text to stdout (status 0) or stderr; return the exit status. */
int ctl_usage(const char *text, int failed);

/* Print an error detail "vaultctl: error: ..." and return the exit status for code. */
int ctl_fail(int code);

/* Print JSON (pretty) to stdout. */
void ctl_print_json(const json_t *j);

int ctl_cmd_key(struct ctl *c, int argc, char **argv);
int ctl_cmd_shadow(struct ctl *c, int argc, char **argv);
int ctl_cmd_account(struct ctl *c, int argc, char **argv);
int ctl_cmd_policy(struct ctl *c, int argc, char **argv);
int ctl_cmd_audit(struct ctl *c, int argc, char **argv);
int ctl_cmd_cert(struct ctl *c, int argc, char **argv);
int ctl_cmd_tls(struct ctl *c, int argc, char **argv);

/* "3600", "90s", "30m", "24h", "7d" -> seconds; -1 if malformed. */
long long ctl_duration(const char *s);

/* True if argv[1] asks for help. */
int ctl_wants_help(int argc, char **argv);
int ctl_cmd_init(struct ctl *c, int argc, char **argv);

#endif
