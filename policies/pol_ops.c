/*
 * The ACME operations a policy talks about: names as written in policy
 * files and which of them are admin-only (see enum pol_op in pol.h).
 * A constant table; no state.
 */
#include <string.h>

#include "log.h"
#include "pol.h"
#include "sv_err.h"

static const char *const OP_NAMES[POL_OP_COUNT] = {
	[POL_NEW_ORDER] = "new-order",
	[POL_FINALIZE] = "finalize",
	[POL_CHALLENGE] = "challenge",
	[POL_FETCH] = "fetch",
	[POL_REVOKE] = "revoke",
	[POL_NEW_ACCOUNT] = "new-account",
	[POL_KEY_CHANGE] = "key-change",
	[POL_ACCOUNT_UPDATE] = "account-update",
	[POL_AUTHZ_DEACTIVATE] = "authz-deactivate",
};

const char *
pol_op_name(enum pol_op op)
{
	if ((unsigned)op >= POL_OP_COUNT)
		return "unknown";
	return OP_NAMES[op];
}

int
pol_op_parse(const char *s, enum pol_op *out)
{
	char esc[96];
	unsigned i;

	*out = POL_OP_COUNT;
	if (s == NULL)
		return sv_seterr(SV_EINVAL, "operation name is missing");
	for (i = 0; i < POL_OP_COUNT; i++) {
		if (strcmp(s, OP_NAMES[i]) == 0) {
			*out = (enum pol_op)i;
			return 0;
		}
	}
	return sv_seterr(SV_EINVAL,
	    "\"%s\" is not an operation (policies may grant new-order, finalize, challenge, "
	    "fetch, revoke)",
	    sv_escape(s, strlen(s), esc, sizeof(esc)));
}

int
pol_op_admin_only(enum pol_op op)
{
	/* Out-of-range values count as admin-only so a confused caller denies. */
	return (unsigned)op >= POL_GRANTABLE;
}
