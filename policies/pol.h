/*
 * The policy language: which ACME operations, accounts, DNS names and key
 * bundles each shadow may use.  vaultd loads a policy file (libconfig, see
 * policies/examples/README.md for the language), keeps the compiled,
 * immutable `struct pol` and asks pol_eval() about every signing request a
 * shadow sends; anything the policy does not grant is denied.
 *
 * Loading is all-or-nothing: a file with any error yields an error naming
 * file:line and no policy object, so a SIGHUP reload keeps the old policy.
 * A compiled policy is never modified and holds no global state: any number
 * of threads may evaluate against it at once.  The module does no I/O
 * besides reading the file given to pol_load_file().
 */
#ifndef SV_POL_H
#define SV_POL_H

#include <stddef.h>

/* Limits on policy files. */
#define POL_FILE_MAX	    (1024 * 1024) /* bytes in a policy file */
#define POL_MAX_SHADOWS	    1000	  /* shadows per file */
#define POL_MAX_PATTERNS    256		  /* name patterns per shadow */
#define POL_MAX_ACCOUNTS    64		  /* accounts per shadow */
#define POL_MAX_BUNDLES	    256		  /* bundle names per shadow */
#define POL_RATE_MAX	    100000	  /* upper bound of per_minute and burst */
#define POL_RATE_PER_MINUTE 120		  /* default per_minute */
#define POL_RATE_BURST	    60		  /* default burst: several issuances with retries */
#define POL_NAME_MAX	    253		  /* characters in a normalised DNS name */
#define POL_NAME_BUF	    (POL_NAME_MAX + 1)

/*
 * ACME operations as vaultd classifies them.  The first POL_GRANTABLE
 * ones may be granted by a policy; the rest are admin-only and always
 * denied to shadows (admins perform them with vaultctl).
 */
enum pol_op {
	POL_NEW_ORDER,	      /* "new-order": newOrder */
	POL_FINALIZE,	      /* "finalize": finalize an order (CSR names) */
	POL_CHALLENGE,	      /* "challenge": respond to a challenge */
	POL_FETCH,	      /* "fetch": POST-as-GET of orders, authzs, certificates */
	POL_REVOKE,	      /* "revoke": revokeCert */
	POL_NEW_ACCOUNT,      /* "new-account": admin-only */
	POL_KEY_CHANGE,	      /* "key-change": admin-only */
	POL_ACCOUNT_UPDATE,   /* "account-update": admin-only */
	POL_AUTHZ_DEACTIVATE, /* "authz-deactivate": admin-only */
	POL_OP_COUNT
};
#define POL_GRANTABLE POL_NEW_ACCOUNT

/* The operation's name in policy files ("new-order"); "unknown" when out of range. */
const char *pol_op_name(enum pol_op op);

/* Parse an operation name (exact, lower case): 0, or SV_EINVAL with a detail. */
int pol_op_parse(const char *s, enum pol_op *out);

/* 1 if op can never be granted by a policy (also 1 for out-of-range values). */
int pol_op_admin_only(enum pol_op op);

/* A compiled policy set: immutable, safe to share between threads. */
struct pol;

/*
 * Load and compile the policy file at path (at most POL_FILE_MAX bytes, no
 * NUL bytes, no @include).  On success *out is a new policy the caller frees
 * with pol_free(); on any error *out is NULL and the detail names path:line.
 * Returns 0, SV_ECONFIG (bad policy), SV_ETOOBIG, SV_ENOTFOUND, SV_EIO or
 * SV_ENOMEM.
 */
int pol_load_file(const char *path, struct pol **out);

/*
 * Same from a NUL-terminated string; name (may be NULL) stands for the file
 * in messages ("name:line: ...").  The text is not referenced afterwards.
 */
int pol_load_string(const char *text, const char *name, struct pol **out);

/* Free a policy from pol_load_*(); NULL is fine. */
void pol_free(struct pol *p);

/* Number of shadows in p (0 for NULL). */
size_t pol_count(const struct pol *p);

/* 1 if p has a policy for shadow (exact, case-sensitive name), else 0. */
int pol_has_shadow(const struct pol *p, const char *shadow);

/*
 * Normalise a DNS name into out (n >= POL_NAME_BUF): lower-case ASCII, one
 * trailing dot removed; then labels of 1..63 characters from [a-z0-9-], not
 * starting or ending with '-'; at least two labels, the last not all digits;
 * at most POL_NAME_MAX characters; IDNs in A-label ("xn--") form only.  A
 * wildcard name "*.rest" is accepted when rest is a valid name ("*" only as
 * the whole first label).  Returns 0, or SV_EINVAL with a detail quoting the
 * (escaped) name; out is then the empty string.
 */
int pol_name_normalize(const char *in, char *out, size_t n);

/* One request to judge, filled by vaultd after it classified the ACME call. */
struct pol_request {
	const char *shadow;  /* authenticated shadow name */
	const char *account; /* ACME account the request would be signed for */
	enum pol_op op;
	const char *const *names; /* DNS identifiers involved (newOrder identifiers,
				     CSR names, certificate names); not normalised */
	size_t nnames;
};

/* Reason codes (pol_decision.code) */
#define POL_CODE_OK		"ok"
#define POL_CODE_INTERNAL	"internal"	 /* pol_eval returned an error */
#define POL_CODE_UNKNOWN_SHADOW "unknown-shadow" /* no policy for this shadow */
#define POL_CODE_ACCOUNT	"account"	 /* account not listed */
#define POL_CODE_ADMIN_ONLY	"admin-only"	 /* operation reserved to vaultctl */
#define POL_CODE_OPERATION	"operation"	 /* operation not granted */
#define POL_CODE_NO_NAMES	"no-names"	 /* operation needs names, got none */
#define POL_CODE_BAD_NAME	"bad-name"	 /* a name is not a valid DNS/bundle name */
#define POL_CODE_NAME		"name"		 /* a name is not covered by the patterns */
#define POL_CODE_BUNDLE		"bundle"	 /* bundle not listed */

struct pol_decision {
	int allow;	  /* 1 allow, 0 deny */
	char reason[256]; /* readable, stable; untrusted parts escaped */
	char code[48];	  /* one of POL_CODE_*: stable, for metrics and audit */
};

/*
 * Judge req against p and fill d.  Rules, first match wins: unknown shadow;
 * account not listed; admin-only operation; operation not granted; for
 * new-order, finalize and revoke no names at all; any name that is not a
 * valid DNS name; any name not covered by the shadow's patterns (names given
 * with challenge or fetch are checked too).  A name "a.example.com" is
 * covered by the pattern "a.example.com" or "*.example.com"; a wildcard name
 * "*.example.com" only by the identical pattern.
 * Returns 0 when d holds the decision, SV_EINVAL for a malformed call (NULL
 * pointers, op out of range); d (when not NULL) is then a deny with code
 * POL_CODE_INTERNAL.  Caller owns everything; nothing is kept.
 */
int pol_eval(const struct pol *p, const struct pol_request *req, struct pol_decision *d);

/*
 * May shadow fetch the key bundle of the certificate named name (exact
 * match against its `bundles` list)?  Codes: unknown-shadow, bad-name,
 * bundle.  Returns like pol_eval().
 */
int pol_eval_bundle(
    const struct pol *p, const char *shadow, const char *name, struct pol_decision *d);

/*
 * May shadow use account at all (read its public information)?  Codes:
 * unknown-shadow, account.  Returns like pol_eval().
 */
int pol_eval_account(
    const struct pol *p, const char *shadow, const char *account, struct pol_decision *d);

/*
 * Rate limit for shadow (POL_RATE_PER_MINUTE / POL_RATE_BURST when the file
 * sets none): 0, or SV_ENOTFOUND when there is no policy for shadow (both
 * outputs 0).
 */
int pol_rate(const struct pol *p, const char *shadow, unsigned *per_minute, unsigned *burst);

#endif
