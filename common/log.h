/*
 * Logging to stderr (interactive and foreground) or syslog (daemon), and
 * escaping of untrusted text before it reaches a log line or a terminal.
 */
#ifndef SV_LOG_H
#define SV_LOG_H

#include <stddef.h>
#include <syslog.h>

/* prog: name in every line; use_syslog: 1 for the daemon; verbosity: LOG_INFO default. */
void sv_log_init(const char *prog, int use_syslog, int max_level);

/* Change the name shown (children of vaultd say "vaultd[keyproc]"). */
void sv_log_setprog(const char *prog);

void sv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sv_err(...)   sv_log(LOG_ERR, __VA_ARGS__)
#define sv_warn(...)  sv_log(LOG_WARNING, __VA_ARGS__)
#define sv_info(...)  sv_log(LOG_INFO, __VA_ARGS__)
#define sv_debug(...) sv_log(LOG_DEBUG, __VA_ARGS__)

/*
 * Copy at most len bytes of untrusted in into out (outsz > 0), replacing
 * control characters, backslash, quote and non-ASCII bytes with \xHH, and
 * truncating with "..." to fit.  Returns out.
 */
char *sv_escape(const char *in, size_t len, char *out, size_t outsz);

/* Same for text shown to a person: quotes and backslashes are kept as they are. */
char *sv_escape_display(const char *in, size_t len, char *out, size_t outsz);

#endif
