/*
 * admin: dispatch of administrator operations (see admin.h).  Each handler
 * validates its own arguments; the table says which exist.  Touches the
 * state database and the token through keystore.
 */
#include <string.h>

#include "accounts.h"
#include "admin.h"
#include "keystore.h"
#include "sv_err.h"

typedef int (*admin_fn)(struct admin_ctx *c, const json_t *req, json_t **result);

/* Required string argument, at most max bytes. */
static int
arg_str(const json_t *req, const char *k, size_t max, const char **out)
{
	const json_t *v = json_object_get(req, k);

	if (!json_is_string(v))
		return sv_seterr(SV_EINVAL, "argument \"%s\" missing or not a string", k);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return sv_seterr(SV_EINVAL, "argument \"%s\" too long or holds a NUL", k);
	*out = json_string_value(v);
	return 0;
}

static int
arg_name(const json_t *req, const char **out)
{
	int r;

	/* A generous transport cap; sv_name_check says precisely what is wrong. */
	if ((r = arg_str(req, "name", 1024, out)) != 0)
		return r;
	return sv_name_check(*out, "key name");
}

/* Optional positive int argument (0 when absent). */
static int
arg_version(const json_t *req, int *out)
{
	const json_t *v = json_object_get(req, "version");

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
		return sv_seterr(SV_EINVAL, "argument \"version\" must be a positive integer");
	*out = (int)json_integer_value(v);
	return 0;
}

static int
user_key_name(const char *name)
{
	if (strncmp(name, KS_INTERNAL_PREFIX, strlen(KS_INTERNAL_PREFIX)) == 0)
		return sv_seterr(SV_EDENIED,
		    "key names starting with \"%s\" are reserved for the "
		    "vault's own keys",
		    KS_INTERNAL_PREFIX);
	return 0;
}

static int
op_key_create(struct admin_ctx *c, const json_t *req, json_t **result)
{
	const char *name, *type;
	enum hsm_keytype t;
	struct ks_key k;
	int r;

	if ((r = arg_name(req, &name)) != 0 || (r = user_key_name(name)) != 0 ||
	    (r = arg_str(req, "type", 16, &type)) != 0 || (r = hsm_keytype_parse(type, &t)) != 0)
		return r;
	if ((r = ks_create(
		 c->st, c->h, name, t, json_is_true(json_object_get(req, "exportable")), &k)) != 0)
		return r;
	return ks_json(c->h, &k, 1, result);
}

static int
op_key_list(struct admin_ctx *c, const json_t *req, json_t **result)
{
	struct ks_key *v;
	size_t n, i;
	json_t *a, *o;
	int r;

	if ((r = ks_list(c->st, &v, &n)) != 0)
		return r;
	if ((a = json_array()) == NULL) {
		free(v);
		return SV_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if ((r = ks_json(c->h, &v[i], 0, &o)) != 0 || json_array_append_new(a, o) != 0) {
			json_decref(a);
			free(v);
			return r ? r : SV_ENOMEM;
		}
	}
	free(v);
	*result = a;
	return 0;
}

static int
op_key_show(struct admin_ctx *c, const json_t *req, json_t **result)
{
	const char *name;
	struct ks_key k;
	int r, v;

	if ((r = arg_name(req, &name)) != 0 || (r = arg_version(req, &v)) != 0 ||
	    (r = ks_get(c->st, name, v, &k)) != 0)
		return r;
	return ks_json(c->h, &k, 1, result);
}

static int
op_key_rotate(struct admin_ctx *c, const json_t *req, json_t **result)
{
	char acct[SV_NAME_MAX + 1];
	const char *name;
	struct ks_key k;
	int r;

	if ((r = arg_name(req, &name)) != 0 || (r = user_key_name(name)) != 0)
		return r;
	/* The CA knows an account key: it changes only through keyChange. */
	if (accounts_by_key(c->st, name, acct) == 0)
		return sv_seterr(SV_ESTATE,
		    "key \"%s\" is the key of ACME account \"%s\": use "
		    "vaultctl account rollover %s, which tells the CA",
		    name, acct, acct);
	if ((r = ks_rotate(c->st, c->h, name, &k)) != 0)
		return r;
	return ks_json(c->h, &k, 1, result);
}

static int
op_key_destroy(struct admin_ctx *c, const json_t *req, json_t **result)
{
	const char *name;
	int r, v;

	if ((r = arg_name(req, &name)) != 0 || (r = user_key_name(name)) != 0 ||
	    (r = arg_version(req, &v)) != 0)
		return r;
	if (v == 0)
		return sv_seterr(SV_EINVAL, "key destroy needs the version to destroy");
	if (!json_is_true(json_object_get(req, "confirm")))
		return sv_seterr(SV_EINVAL, "key destroy must be confirmed (--yes)");
	if ((r = ks_destroy(c->st, c->h, name, v)) != 0)
		return r;
	*result = json_pack("{s:s, s:i, s:s}", "name", name, "version", v, "state", "destroyed");
	return *result ? 0 : SV_ENOMEM;
}

static int
op_status(struct admin_ctx *c, const json_t *req, json_t **result)
{
	*result = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "version", SV_VERSION, "config",
	    c->cfg->path, "state_dir", c->cfg->state_dir, "token", hsm_token_label(c->h), "schema",
	    state_schema_version(c->st), "hsm_recoveries", (int)hsm_recoveries(c->h));
	return *result ? 0 : SV_ENOMEM;
}

static const struct {
	const char *op;
	admin_fn fn;
} ops[] = {
	{ "key.create", op_key_create },
	{ "key.list", op_key_list },
	{ "key.show", op_key_show },
	{ "key.rotate", op_key_rotate },
	{ "key.destroy", op_key_destroy },
	{ "status", op_status },
};

int
admin_exec(struct admin_ctx *c, const json_t *req, json_t **resp)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *result = NULL;
	size_t i;
	int r = SV_EINVAL;

	sv_clearerr();
	for (i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].op, op) == 0)
			break;
	if (op == NULL || i == sizeof(ops) / sizeof(ops[0]))
		r = sv_seterr(SV_EINVAL, "unknown admin operation");
	else
		r = ops[i].fn(c, req, &result);
	if (r == 0)
		*resp = json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
	else
		*resp = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", r, "error", sv_errmsg(r));
	return r;
}
