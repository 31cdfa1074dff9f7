/*
 * Project-wide error codes and the per-thread error detail.
 *
 * Every function in shadowvault returns 0 on success or one of the negative
 * SV_E* codes below.  The code says what kind of failure it was (programs map
 * it to an exit status); the detail string says what and where ("hsm: C_Login:
 * CKR_PIN_INCORRECT: the PIN is wrong").  The detail is per thread and holds
 * the most recent error set with sv_seterr(); it never holds a secret.
 */
#ifndef SV_ERR_H
#define SV_ERR_H

#include <stddef.h>

enum {
	SV_OK = 0,
	SV_EINTERNAL = -1,   /* a bug or an impossible state */
	SV_ENOMEM = -2,	     /* allocation failed */
	SV_EINVAL = -3,	     /* bad argument or malformed input */
	SV_ETOOBIG = -4,     /* input over its size cap */
	SV_EIO = -5,	     /* file or socket I/O failed */
	SV_ECONFIG = -6,     /* configuration or policy file error */
	SV_ENOTFOUND = -7,   /* named object does not exist */
	SV_EEXIST = -8,	     /* named object already exists */
	SV_EHSM = -9,	     /* PKCS#11 failure */
	SV_EPIN = -10,	     /* PIN wrong, locked or unreadable */
	SV_EMODULE = -11,    /* PKCS#11 module cannot be loaded */
	SV_ETOKEN = -12,     /* token not present / not found */
	SV_ECRYPTO = -13,    /* OpenSSL / libsodium failure */
	SV_EDB = -14,	     /* state database failure */
	SV_EDENIED = -15,    /* refused by policy or permissions */
	SV_EUNSUPP = -16,    /* operation or type not supported */
	SV_EPROTO = -17,     /* peer broke the protocol */
	SV_ENET = -18,	     /* network failure */
	SV_EUNEXTRACT = -19, /* key is not extractable */
	SV_EBUSY = -20,	     /* resource temporarily unavailable */
	SV_ESTATE = -21,     /* object in the wrong state for this */
	SV_ECA = -22,	     /* ACME CA returned an error */
	SV_ETIMEOUT = -23,   /* deadline passed */
	SV_ERR_MIN = -23
};

/* Short fixed text for a code ("PKCS#11 failure"); never NULL. */
const char *sv_strerror(int code);

/*
 * Record the detail for the current thread and return code, so callers can
 * write "return sv_seterr(SV_EINVAL, "name %s: too long", n);".  The detail
 * is truncated to SV_ERRMSG_MAX bytes.
 */
#define SV_ERRMSG_MAX 512
int sv_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current detail with "prefix: " (keeps the code). Returns code. */
int sv_preferr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the current detail but file it under another code.  Returns code. */
int sv_recode(int code);

/* Detail of the last error on this thread, or the code's fixed text. */
const char *sv_errmsg(int code);

/* Forget the detail (call before an operation whose detail you will print). */
void sv_clearerr(void);

/*
 * Append OpenSSL's queued error text to a detail: returns code.  Drains the
 * OpenSSL error queue so old errors never leak into later messages.
 */
int sv_seterr_ssl(int code, const char *what);

/*
 * Exit status for a program that failed with code (documented in every man
 * page): 1 other, 2 usage, invalid or unsupported input, 3 configuration, 4 HSM,
 * 5 not found, 6 exists or wrong state, 7 denied, 8 network/CA/daemon.
 */
enum {
	SV_EXIT_OK = 0,
	SV_EXIT_FAIL = 1,
	SV_EXIT_USAGE = 2,
	SV_EXIT_CONFIG = 3,
	SV_EXIT_HSM = 4,
	SV_EXIT_NOTFOUND = 5,
	SV_EXIT_CONFLICT = 6,
	SV_EXIT_DENIED = 7,
	SV_EXIT_NET = 8
};
int sv_exit_code(int code);

/*
 * Fault injection for the tests: 1 if the environment's SV_FAULT is exactly
 * what.  Each use only makes one thing fail (SECURITY.md lists them).
 */
int sv_fault(const char *what);

#endif
