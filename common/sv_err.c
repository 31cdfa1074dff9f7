/*
 * Error codes and the per-thread error detail (see sv_err.h).  Touches only
 * thread-local memory and the OpenSSL error queue.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "sv_err.h"

static _Thread_local char errbuf[SV_ERRMSG_MAX];
static _Thread_local int errcode;

static const char *const errtext[] = {
	"success",
	"internal error",
	"out of memory",
	"invalid input",
	"input too large",
	"I/O error",
	"configuration error",
	"not found",
	"already exists",
	"PKCS#11 failure",
	"PIN error",
	"PKCS#11 module error",
	"token error",
	"cryptographic failure",
	"state database error",
	"denied",
	"not supported",
	"protocol error",
	"network error",
	"key not extractable",
	"busy",
	"wrong state",
	"ACME CA error",
	"timed out",
};

const char *
sv_strerror(int code)
{
	if (code > 0 || code < SV_ERR_MIN)
		return "unknown error";
	return errtext[-code];
}

static void vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void
vset(const char *fmt, va_list ap)
{
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
}

int
sv_seterr(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	errcode = code;
	return code;
}

int
sv_preferr(int code, const char *fmt, ...)
{
	char prefix[SV_ERRMSG_MAX], old[SV_ERRMSG_MAX];
	va_list ap;

	if (errcode != code || errbuf[0] == '\0')
		snprintf(old, sizeof(old), "%s", sv_strerror(code));
	else
		snprintf(old, sizeof(old), "%s", errbuf);
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* Truncation is fine here: the detail is capped by design. */
	if (snprintf(errbuf, sizeof(errbuf), "%s: %s", prefix, old) < 0)
		errbuf[0] = '\0';
	errcode = code;
	return code;
}

int
sv_recode(int code)
{
	errcode = code;
	return code;
}

const char *
sv_errmsg(int code)
{
	if (errbuf[0] != '\0' && errcode == code)
		return errbuf;
	return sv_strerror(code);
}

void
sv_clearerr(void)
{
	errbuf[0] = '\0';
	errcode = 0;
}

int
sv_seterr_ssl(int code, const char *what)
{
	char ssl[256] = "";
	unsigned long e;

	/* Keep the first (root-cause) error, drop the rest of the queue. */
	if ((e = ERR_get_error()) != 0)
		ERR_error_string_n(e, ssl, sizeof(ssl));
	ERR_clear_error();
	if (ssl[0] != '\0')
		return sv_seterr(code, "%s: %s", what, ssl);
	return sv_seterr(code, "%s failed", what);
}

int
sv_exit_code(int code)
{
	switch (code) {
	case SV_OK:
		return SV_EXIT_OK;
	case SV_EINVAL:
	case SV_ETOOBIG:
	case SV_EUNSUPP:
		return SV_EXIT_USAGE;
	case SV_ECONFIG:
		return SV_EXIT_CONFIG;
	case SV_EHSM:
	case SV_EPIN:
	case SV_EMODULE:
	case SV_ETOKEN:
	case SV_EUNEXTRACT:
		return SV_EXIT_HSM;
	case SV_ENOTFOUND:
		return SV_EXIT_NOTFOUND;
	case SV_EEXIST:
	case SV_ESTATE:
		return SV_EXIT_CONFLICT;
	case SV_EDENIED:
		return SV_EXIT_DENIED;
	case SV_ENET:
	case SV_ECA:
	case SV_ETIMEOUT:
		return SV_EXIT_NET;
	default:
		return SV_EXIT_FAIL;
	}
}

int
sv_fault(const char *what)
{
	const char *f = getenv("SV_FAULT");

	return f != NULL && strcmp(f, what) == 0;
}
