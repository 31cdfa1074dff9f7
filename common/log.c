/*
 * Logging and log escaping (see log.h).  Writes only to stderr or syslog.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static char progname[64] = "shadowvault";
static int to_syslog;
static int maxlevel = LOG_INFO;

void
sv_log_init(const char *prog, int use_syslog, int max_level)
{
	sv_log_setprog(prog);
	to_syslog = use_syslog;
	maxlevel = max_level;
	if (use_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
sv_log_setprog(const char *prog)
{
	snprintf(progname, sizeof(progname), "%s", prog);
}

void
sv_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "emerg", "alert", "crit", "error", "warning", "notice",
		"info", "debug" };
	char msg[1024];
	va_list ap;

	if (level > maxlevel)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (to_syslog)
		syslog(level, "%s", msg);
	else
		fprintf(stderr, "%s: %s%s%s\n", progname, level <= LOG_WARNING ? names[level] : "",
		    level <= LOG_WARNING ? ": " : "", msg);
}

static char *
escape(const char *in, size_t len, char *out, size_t outsz, int quotes)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len && in[i] != '\0'; i++) {
		c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && (!quotes || (c != '\\' && c != '"'))) {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)c;
			continue;
		}
		if (o + 4 >= outsz)
			break;
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	if (i < len && in[i] != '\0' && outsz >= 4) {
		if (o > outsz - 4)
			o = outsz - 4;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < outsz ? o : outsz - 1] = '\0';
	return out;
}

char *
sv_escape(const char *in, size_t len, char *out, size_t outsz)
{
	return escape(in, len, out, outsz, 1);
}

char *
sv_escape_display(const char *in, size_t len, char *out, size_t outsz)
{
	return escape(in, len, out, outsz, 0);
}
