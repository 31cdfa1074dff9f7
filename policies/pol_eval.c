/*
 * Evaluating requests against a compiled policy (see pol_eval in pol.h).
 * Lookups are binary searches: shadows sorted by name, and per shadow one
 * sorted array of patterns in which a name "a.example.com" is found either
 * as itself or as "*.example.com".  Reads the policy only; no allocation,
 * no global state, so any number of threads may evaluate at once.  Called by
 * vaultd's keyproc for every signing and bundle request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "pol.h"
#include "pol_int.h"
#include "sv_err.h"

/* Room for an escaped name quoted in a reason. */
#define ESC_MAX 128

static int
key_cmp(const void *key, const void *elem)
{
	return strcmp((const char *)key, *(char *const *)elem);
}

int
pol_strs_has(const struct pol_strs *s, const char *key)
{
	if (s->n == 0)
		return 0;
	return bsearch(key, s->v, s->n, sizeof(*s->v), key_cmp) != NULL;
}

static int
shadow_key_cmp(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct pol_shadow *)elem)->name);
}

static const struct pol_shadow *
shadow_find(const struct pol *p, const char *name)
{
	if (p->n == 0)
		return NULL;
	return bsearch(name, p->shadows, p->n, sizeof(*p->shadows), shadow_key_cmp);
}

size_t
pol_count(const struct pol *p)
{
	return p ? p->n : 0;
}

int
pol_has_shadow(const struct pol *p, const char *shadow)
{
	return p != NULL && shadow != NULL && shadow_find(p, shadow) != NULL;
}

int
pol_rate(const struct pol *p, const char *shadow, unsigned *per_minute, unsigned *burst)
{
	const struct pol_shadow *sh;
	char esc[ESC_MAX];

	*per_minute = 0;
	*burst = 0;
	if (p == NULL || shadow == NULL)
		return sv_seterr(SV_EINVAL, "pol_rate: NULL argument");
	if ((sh = shadow_find(p, shadow)) == NULL)
		return sv_seterr(SV_ENOTFOUND, "shadow \"%s\" has no policy",
		    sv_escape(shadow, strlen(shadow), esc, sizeof(esc)));
	*per_minute = sh->per_minute;
	*burst = sh->burst;
	return 0;
}

static void decide(struct pol_decision *d, int allow, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
decide(struct pol_decision *d, int allow, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->allow = allow;
	snprintf(d->code, sizeof(d->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

static const char *
esc(const char *s, char *buf)
{
	return sv_escape(s, strnlen(s, POL_FILE_MAX), buf, ESC_MAX);
}

/* 1 if the normalised name is covered by a pattern of sh. */
static int
name_covered(const struct pol_shadow *sh, const char *name)
{
	char key[POL_NAME_BUF + 1];

	if (pol_strs_has(&sh->patterns, name))
		return 1;
	/* A wildcard identifier needs the identical pattern, found above. */
	if (name[0] == '*')
		return 0;
	/* "a.example.com" -> "*.example.com"; valid names have a dot. */
	snprintf(key, sizeof(key), "*%s", strchr(name, '.'));
	return pol_strs_has(&sh->patterns, key);
}

/* The name rules of pol_eval: 0 with d filled, or SV_EINVAL. */
static int
names_eval(const struct pol_shadow *sh, const struct pol_request *req, struct pol_decision *d)
{
	char norm[POL_NAME_BUF], why[POL_WHY_MAX], e[ESC_MAX];
	size_t i;

	if (req->nnames == 0 &&
	    (req->op == POL_NEW_ORDER || req->op == POL_FINALIZE || req->op == POL_REVOKE)) {
		decide(d, 0, POL_CODE_NO_NAMES, "operation %s names no DNS identifier",
		    pol_op_name(req->op));
		return 0;
	}
	for (i = 0; i < req->nnames; i++) {
		if (req->names[i] == NULL)
			return sv_seterr(SV_EINVAL, "pol_eval: name %zu is NULL", i + 1);
		if (pol_name_check(req->names[i], norm, sizeof(norm), why, sizeof(why)) != 0) {
			decide(d, 0, POL_CODE_BAD_NAME, "name \"%s\" is not a valid DNS name: %s",
			    esc(req->names[i], e), why);
			return 0;
		}
		if (!name_covered(sh, norm)) {
			decide(d, 0, POL_CODE_NAME, "name \"%s\" is not in the policy of shadow %s",
			    norm, sh->name);
			return 0;
		}
	}
	decide(d, 1, POL_CODE_OK, "%s allowed by the policy of shadow %s", pol_op_name(req->op),
	    sh->name);
	return 0;
}

static void
decision_init(struct pol_decision *d)
{
	decide(d, 0, POL_CODE_INTERNAL, "internal error: request not evaluated");
}

int
pol_eval(const struct pol *p, const struct pol_request *req, struct pol_decision *d)
{
	const struct pol_shadow *sh;
	char e[ESC_MAX];
	int r;

	if (d == NULL)
		return sv_seterr(SV_EINVAL, "pol_eval: NULL decision");
	decision_init(d);
	if (p == NULL || req == NULL || req->shadow == NULL || req->account == NULL ||
	    (req->nnames > 0 && req->names == NULL) || (unsigned)req->op >= POL_OP_COUNT)
		return sv_seterr(SV_EINVAL, "pol_eval: malformed request");
	if ((sh = shadow_find(p, req->shadow)) == NULL) {
		decide(d, 0, POL_CODE_UNKNOWN_SHADOW, "shadow \"%s\" has no policy",
		    esc(req->shadow, e));
	} else if (!pol_strs_has(&sh->accounts, req->account)) {
		decide(d, 0, POL_CODE_ACCOUNT, "account \"%s\" is not allowed for shadow %s",
		    esc(req->account, e), sh->name);
	} else if (pol_op_admin_only(req->op)) {
		decide(d, 0, POL_CODE_ADMIN_ONLY,
		    "operation %s is admin-only: an administrator does it with vaultctl",
		    pol_op_name(req->op));
	} else if ((sh->ops & (1u << req->op)) == 0) {
		decide(d, 0, POL_CODE_OPERATION, "operation %s is not granted to shadow %s",
		    pol_op_name(req->op), sh->name);
	} else if ((r = names_eval(sh, req, d)) != 0) {
		decision_init(d);
		return r;
	}
	return 0;
}

int
pol_eval_bundle(const struct pol *p, const char *shadow, const char *name, struct pol_decision *d)
{
	const struct pol_shadow *sh;
	char e[ESC_MAX];

	if (d == NULL)
		return sv_seterr(SV_EINVAL, "pol_eval_bundle: NULL decision");
	decision_init(d);
	if (p == NULL || shadow == NULL || name == NULL)
		return sv_seterr(SV_EINVAL, "pol_eval_bundle: NULL argument");
	if ((sh = shadow_find(p, shadow)) == NULL)
		decide(
		    d, 0, POL_CODE_UNKNOWN_SHADOW, "shadow \"%s\" has no policy", esc(shadow, e));
	else if (sv_name_check(name, "bundle name") != 0)
		decide(d, 0, POL_CODE_BAD_NAME, "bundle name \"%s\" is not valid", esc(name, e));
	else if (!pol_strs_has(&sh->bundles, name))
		decide(d, 0, POL_CODE_BUNDLE, "shadow %s may not fetch the key bundle of %s",
		    sh->name, name);
	else
		decide(d, 1, POL_CODE_OK, "bundle %s allowed by the policy of shadow %s", name,
		    sh->name);
	return 0;
}

int
pol_eval_account(
    const struct pol *p, const char *shadow, const char *account, struct pol_decision *d)
{
	const struct pol_shadow *sh;
	char e[ESC_MAX];

	if (d == NULL)
		return sv_seterr(SV_EINVAL, "pol_eval_account: NULL decision");
	decision_init(d);
	if (p == NULL || shadow == NULL || account == NULL)
		return sv_seterr(SV_EINVAL, "pol_eval_account: NULL argument");
	if ((sh = shadow_find(p, shadow)) == NULL)
		decide(
		    d, 0, POL_CODE_UNKNOWN_SHADOW, "shadow \"%s\" has no policy", esc(shadow, e));
	else if (!pol_strs_has(&sh->accounts, account))
		decide(d, 0, POL_CODE_ACCOUNT, "account \"%s\" is not allowed for shadow %s",
		    esc(account, e), sh->name);
	else
		decide(d, 1, POL_CODE_OK, "account %s allowed for shadow %s", account, sh->name);
	return 0;
}
