/*
 * admin: the administrator's operations (keys, and later shadows, accounts,
 * policies, audit) as JSON requests and answers.  vaultctl builds a request;
 * the process that owns the token executes it.  Keeping one entry point with
 * typed, validated arguments is what lets these operations run in the
 * daemon's key process behind the admin socket.
 *
 * Request: {"op": "key.create", ...arguments}.  Answer: {"ok": true,
 * "result": ...} or {"ok": false, "code": <SV code>, "error": "<detail>"}.
 */
#ifndef SV_ADMIN_H
#define SV_ADMIN_H

#include <jansson.h>

#include "hsm.h"
#include "state.h"
#include "vconf.h"

/*
 * Largest admin request accepted (bytes of JSON): room for a certificate
 * chain of CERTS_CHAIN_MAX bytes of PEM (vaultctl cert import), whose line
 * ends JSON escapes to two bytes each.
 */
#define ADMIN_REQ_MAX (96 * 1024)

struct admin_ctx {
	const struct vconf *cfg;
	struct state *st;
	struct hsm *h;
};

/* Execute req; *resp is always set (caller json_decref()s).  Returns the SV code. */
int admin_exec(struct admin_ctx *c, const json_t *req, json_t **resp);

#endif
