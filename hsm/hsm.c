/*
 * hsm.c: module loading, token lookup, sessions, login, error text and
 * recovery for the hsm/ layer (see hsm.h).
 *
 * May touch: the PKCS#11 module file it is told to load, the PIN file (read
 * into sodium_malloc memory for each login and wiped straight after), and the
 * SOFTHSM2_CONF environment variable when the configuration names one.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "fileio.h"
#include "hsm_int.h"
#include "sv_err.h"

/*
 * Object handles are cached in struct hsm_key with the generation they
 * belong to.  Generations are unique in the process (not per module load),
 * so a key kept across hsm_close() and hsm_open() can never reuse a handle
 * that now names another object.  Session serials come from the same
 * counter, so a session copy is never used in another session.
 */
static unsigned global_gen;

static unsigned
next_gen(void)
{
	return __atomic_add_fetch(&global_gen, 1, __ATOMIC_SEQ_CST);
}

/* Attempts per operation, and the first back-off before re-initialising. */
#define HSM_TRIES      6
#define HSM_BACKOFF_MS 50

struct ckr_info {
	CK_RV rv;
	const char *name;
	const char *text;
};

static const struct ckr_info ckr_table[] = {
	{ CKR_OK, "CKR_OK", "success" },
	{ CKR_CANCEL, "CKR_CANCEL", "cancelled" },
	{ CKR_HOST_MEMORY, "CKR_HOST_MEMORY", "the module ran out of memory" },
	{ CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", "the slot does not exist" },
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", "the module failed" },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", "the function failed" },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", "bad arguments" },
	{ CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY", "an attribute is read-only" },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE", "the attribute is sensitive" },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID",
	    "the module does not know an attribute" },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID",
	    "an attribute value is invalid" },
	{ CKR_DATA_INVALID, "CKR_DATA_INVALID", "the data is invalid" },
	{ CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE", "the data has a bad length" },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", "the device failed" },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY", "the device is out of memory" },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", "the device was removed" },
	{ CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED",
	    "the module does not support this function" },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID", "the key handle is invalid" },
	{ CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE", "key size not supported" },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT",
	    "the key type does not fit the mechanism" },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED",
	    "the key may not be used this way" },
	{ CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE", "this key type cannot be wrapped" },
	{ CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE",
	    "the key is not extractable (it was not created exportable)" },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID",
	    "the token does not support the mechanism" },
	{ CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID", "bad mechanism parameters" },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", "the object no longer exists" },
	{ CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", "another operation is active" },
	{ CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED",
	    "the operation was not initialised" },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", "the PIN is wrong" },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID", "the PIN has invalid characters" },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", "the PIN is too long or too short" },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", "the PIN has expired" },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED", "the PIN is locked (too many wrong tries)" },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", "the session was closed" },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT", "too many sessions" },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", "the session is gone" },
	{ CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY", "the session is read-only" },
	{ CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID", "the signature is invalid" },
	{ CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE", "bad signature length" },
	{ CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE", "the key template is incomplete" },
	{ CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT",
	    "the key template is inconsistent" },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT", "the token is not present" },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED", "the token is not recognised" },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", "the token is write-protected" },
	{ CKR_UNWRAPPING_KEY_HANDLE_INVALID, "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
	    "the unwrapping key is invalid" },
	{ CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN", "already logged in" },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", "not logged in" },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED",
	    "the token has no user PIN yet" },
	{ CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID", "bad user type" },
	{ CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID", "the wrapped key is invalid" },
	{ CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID",
	    "the wrapping key is invalid" },
	{ CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
	    "the wrapping key type does not fit" },
	{ CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG", "the token has no random generator" },
	{ CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID",
	    "the token does not support these key parameters" },
	{ CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED", "the curve is not supported" },
	{ CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", "output buffer too small" },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED",
	    "the module is not initialised" },
	{ CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED",
	    "the module is already initialised" },
	{ CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED", "the token refused the function" },
};

static const struct ckr_info *
ckr_find(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++)
		if (ckr_table[i].rv == rv)
			return &ckr_table[i];
	return NULL;
}

const char *
hsm_ckr_name(unsigned long rv)
{
	const struct ckr_info *c = ckr_find(rv);

	return c ? c->name : "CKR_(unknown)";
}

const char *
hsm_ckr_text(unsigned long rv)
{
	const struct ckr_info *c = ckr_find(rv);

	return c ? c->text : "unknown PKCS#11 error";
}

int
hsm_ckr_err(CK_RV rv, const char *what)
{
	int code = SV_EHSM;

	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_EXPIRED:
	case CKR_PIN_LOCKED:
		code = SV_EPIN;
		break;
	case CKR_KEY_UNEXTRACTABLE:
	case CKR_KEY_NOT_WRAPPABLE:
		code = SV_EUNEXTRACT;
		break;
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_DEVICE_REMOVED:
		code = SV_ETOKEN;
		break;
	case CKR_HOST_MEMORY:
		code = SV_ENOMEM;
		break;
	}
	return sv_seterr(code, "hsm: %s: %s (0x%lx): %s", what, hsm_ckr_name(rv), (unsigned long)rv,
	    hsm_ckr_text(rv));
}

/* Label from a CK_TOKEN_INFO: 32 bytes padded with spaces. */
static void
token_label(const CK_TOKEN_INFO *ti, char out[33])
{
	size_t n = sizeof(ti->label);

	memcpy(out, ti->label, n);
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Find the slot whose token has label; SV_ETOKEN naming the tokens seen otherwise. */
static int
find_slot(struct hsm_mod *m, const char *label, int want_free, CK_SLOT_ID *slot)
{
	CK_SLOT_ID ids[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	char seen[256] = "", lab[33];
	size_t used = 0;
	CK_RV rv;

	if ((rv = m->f->C_GetSlotList(CK_TRUE, ids, &n)) != CKR_OK)
		return hsm_ckr_err(rv, "C_GetSlotList");
	for (i = 0; i < n; i++) {
		if (m->f->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
			continue;
		token_label(&ti, lab);
		if (want_free ? !(ti.flags & CKF_TOKEN_INITIALIZED)
			      : (ti.flags & CKF_TOKEN_INITIALIZED) && strcmp(lab, label) == 0) {
			*slot = ids[i];
			return 0;
		}
		if (ti.flags & CKF_TOKEN_INITIALIZED && used < sizeof(seen))
			used += (size_t)snprintf(
			    seen + used, sizeof(seen) - used, "%s\"%s\"", used ? ", " : "", lab);
	}
	if (want_free)
		return sv_seterr(
		    SV_ETOKEN, "hsm: module %s has no free slot for a new token", m->module);
	return sv_seterr(SV_ETOKEN, "hsm: no token labelled \"%s\" in module %s (tokens: %s)",
	    label, m->module, used ? seen : "none");
}

static CK_RV
initialize(struct hsm_mod *m)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	if (rv == CKR_OK)
		m->owns_init = 1;
	/* Another user in this process (the libp11 engine) may have been first. */
	return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

/*
 * The module stays mapped after C_Finalize: a later hsm_open() of the same
 * path gets the same mapping back from dlopen anyway, other users in the
 * process (the libp11 engine) may still hold its function pointers, and
 * sanitizer reports inside it stay attributable to it.
 */
static void
mod_free(struct hsm_mod *m)
{
	if (m == NULL)
		return;
	if (m->f != NULL && m->owns_init)
		m->f->C_Finalize(NULL);
	pthread_rwlock_destroy(&m->lock);
	pthread_mutex_destroy(&m->mu);
	free(m->module);
	free(m->token);
	free(m->pin_file);
	free(m);
}

static int
mod_load(const struct hsm_config *cfg, struct hsm_mod **out)
{
	CK_RV (*getlist)(CK_FUNCTION_LIST_PTR_PTR);
	struct hsm_mod *m;
	CK_RV rv;
	int r;

	*out = NULL;
	if (cfg->module == NULL || cfg->token == NULL || cfg->pin_file == NULL)
		return sv_seterr(SV_ECONFIG, "hsm: module, token and pin_file must all be set");
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return SV_ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	pthread_rwlock_init(&m->lock, NULL);
	m->refs = 1;
	m->gen = next_gen();
	if ((m->module = strdup(cfg->module)) == NULL || (m->token = strdup(cfg->token)) == NULL ||
	    (m->pin_file = strdup(cfg->pin_file)) == NULL) {
		r = SV_ENOMEM;
		goto fail;
	}
	if (cfg->softhsm2_conf != NULL && setenv("SOFTHSM2_CONF", cfg->softhsm2_conf, 1) != 0) {
		r = sv_seterr(SV_ENOMEM, "hsm: cannot set SOFTHSM2_CONF");
		goto fail;
	}
	if ((m->dl = dlopen(cfg->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		r = sv_seterr(
		    SV_EMODULE, "hsm: cannot load PKCS#11 module %s: %s", cfg->module, dlerror());
		goto fail;
	}
	*(void **)(&getlist) = dlsym(m->dl, "C_GetFunctionList");
	if (getlist == NULL || getlist(&m->f) != CKR_OK || m->f == NULL) {
		r = sv_seterr(SV_EMODULE, "hsm: %s is not a PKCS#11 module", cfg->module);
		goto fail;
	}
	if ((rv = initialize(m)) != CKR_OK) {
		r = hsm_ckr_err(rv, "C_Initialize");
		goto fail;
	}
	*out = m;
	return 0;
fail:
	mod_free(m);
	return r;
}

/*
 * Log in as the user with the PIN file; the PIN lives only in guarded memory
 * and is wiped straight after C_Login.  On failure h->login_err holds the SV
 * code, with a detail that names the PIN file.
 */
static CK_RV
login(struct hsm *h)
{
	char *pin = NULL;
	size_t len;
	CK_RV rv;
	int r;

	h->login_err = 0;
	if ((r = sv_read_secret_file(h->m->pin_file, HSM_PIN_MAX, &pin, &len)) != 0) {
		h->login_err = sv_preferr(sv_recode(SV_EPIN), "hsm: PIN file");
		return CKR_PIN_INCORRECT;
	}
	rv = h->m->f->C_Login(h->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)len);
	sodium_free(pin);
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		return CKR_OK;
	if (rv != CKR_OK) {
		h->login_err = hsm_ckr_err(rv, "C_Login");
		h->login_err = sv_preferr(
		    h->login_err, "token \"%s\", PIN from %s", h->m->token, h->m->pin_file);
	}
	return rv;
}

static CK_RV
session_open(struct hsm *h)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	h->login_err = 0;
	if (h->s != CK_INVALID_HANDLE)
		h->m->f->C_CloseSession(h->s);
	h->s = CK_INVALID_HANDLE;
	rv = h->m->f->C_OpenSession(
	    h->m->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h->s);
	if (rv != CKR_OK)
		return rv;
	h->serial = next_gen();
	h->sgen = h->m->gen;
	/* Logging in is per token: skip it if another session already did. */
	if (h->m->f->C_GetSessionInfo(h->s, &si) == CKR_OK && si.state == CKS_RW_USER_FUNCTIONS)
		return CKR_OK;
	return login(h);
}

CK_RV
hsm_enter(struct hsm *h)
{
	CK_RV rv;

	pthread_rwlock_rdlock(&h->m->lock);
	if (h->s != CK_INVALID_HANDLE && h->sgen == h->m->gen)
		return CKR_OK;
	h->s = CK_INVALID_HANDLE; /* the old handle died with its generation */
	if ((rv = session_open(h)) != CKR_OK)
		pthread_rwlock_unlock(&h->m->lock);
	return rv;
}

void
hsm_leave(struct hsm *h)
{
	pthread_rwlock_unlock(&h->m->lock);
}

/* Finalize, initialize, find the token again: new generation. */
static int
reinit(struct hsm *h, unsigned seen_gen)
{
	struct hsm_mod *m = h->m;
	CK_RV rv;
	int r = 0;

	pthread_rwlock_wrlock(&m->lock);
	if (m->gen == seen_gen) { /* nobody else recovered in the meantime */
		m->f->C_Finalize(NULL);
		if ((rv = initialize(m)) != CKR_OK)
			r = hsm_ckr_err(rv, "C_Initialize (recovery)");
		else
			r = find_slot(m, m->token, 0, &m->slot);
		m->gen = next_gen();
		m->recoveries++;
	}
	pthread_rwlock_unlock(&m->lock);
	return r;
}

static int
recoverable(CK_RV rv, int *module_level)
{
	*module_level = 0;
	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_NOT_LOGGED_IN:
		return 1;
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_DEVICE_MEMORY:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SLOT_ID_INVALID:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_GENERAL_ERROR:
		*module_level = 1;
		return 1;
	}
	return 0;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
hsm_retry(struct hsm *h, CK_RV rv, int attempt, const char *what)
{
	int module_level, r;

	if (h->login_err != 0) /* a PIN problem: never retried, it could lock the token */
		return h->login_err;
	if (!recoverable(rv, &module_level) || attempt + 1 >= HSM_TRIES)
		return hsm_ckr_err(rv, what);
	if (!module_level) {
		/* Force a new session (and login) at the next hsm_enter(). */
		pthread_mutex_lock(&h->m->mu);
		h->m->recoveries++;
		pthread_mutex_unlock(&h->m->mu);
		h->sgen = 0; /* generations start at 1: 0 is never current */
		return 0;
	}
	if (attempt > 0)
		sleep_ms(HSM_BACKOFF_MS << (attempt - 1));
	if ((r = reinit(h, h->sgen)) != 0 && attempt + 2 >= HSM_TRIES)
		return sv_preferr(
		    r, "hsm: %s failed with %s and recovery failed", what, hsm_ckr_name(rv));
	return 0;
}

int
hsm_key_retry(struct hsm *h, struct hsm_key *key, CK_RV rv, int attempt, const char *what)
{
	if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
		/*
		 * A cached handle can die without the key dying (SoftHSM drops
		 * token object handles when the last session closes): look it
		 * up again once before saying the key is gone.
		 */
		if (!key->fresh) {
			key->gen = 0;
			return 0;
		}
		return sv_seterr(SV_ENOTFOUND, "hsm: key \"%s\" is not on token \"%s\"", key->label,
		    h->m->token);
	}
	return hsm_retry(h, rv, attempt, what);
}

int
hsm_open(const struct hsm_config *cfg, struct hsm **out)
{
	struct hsm_mod *m;
	struct hsm *h;
	int r;
	CK_RV rv;

	*out = NULL;
	if (sodium_init() < 0)
		return sv_seterr(SV_ECRYPTO, "libsodium cannot initialise");
	if ((r = mod_load(cfg, &m)) != 0)
		return r;
	if ((r = find_slot(m, cfg->token, 0, &m->slot)) != 0) {
		mod_free(m);
		return r;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		mod_free(m);
		return SV_ENOMEM;
	}
	h->m = m;
	h->s = CK_INVALID_HANDLE;
	if ((rv = session_open(h)) != CKR_OK) {
		r = h->login_err ? h->login_err : hsm_ckr_err(rv, "C_OpenSession");
		hsm_close(h);
		return r;
	}
	*out = h;
	return 0;
}

int
hsm_clone(struct hsm *h, struct hsm **out)
{
	struct hsm *c;
	CK_RV rv;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SV_ENOMEM;
	pthread_mutex_lock(&h->m->mu);
	h->m->refs++;
	pthread_mutex_unlock(&h->m->mu);
	c->m = h->m;
	c->s = CK_INVALID_HANDLE;
	if ((rv = hsm_enter(c)) != CKR_OK) {
		int r = c->login_err ? c->login_err : hsm_ckr_err(rv, "C_OpenSession");

		hsm_close(c);
		return r;
	}
	hsm_leave(c);
	*out = c;
	return 0;
}

void
hsm_close(struct hsm *h)
{
	int last;

	if (h == NULL)
		return;
	if (h->s != CK_INVALID_HANDLE && h->sgen == h->m->gen)
		h->m->f->C_CloseSession(h->s);
	pthread_mutex_lock(&h->m->mu);
	last = --h->m->refs == 0;
	pthread_mutex_unlock(&h->m->mu);
	if (last)
		mod_free(h->m);
	free(h);
}

const char *
hsm_token_label(const struct hsm *h)
{
	return h->m->token;
}

unsigned
hsm_recoveries(const struct hsm *h)
{
	return h->m->recoveries;
}

/* Space-padded 32-byte token label. */
static int
pad_label(const char *label, CK_UTF8CHAR out[32])
{
	size_t n = strlen(label);

	if (n == 0 || n > 32)
		return sv_seterr(SV_EINVAL, "hsm: token label must be 1 to 32 bytes");
	memset(out, ' ', 32);
	memcpy(out, label, n);
	return 0;
}

int
hsm_init_token(const struct hsm_config *cfg, const char *so_pin_file)
{
	struct hsm_mod *m = NULL;
	char *so = NULL, *pin = NULL;
	size_t sol, pinl;
	CK_UTF8CHAR lab[32];
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_SLOT_ID slot;
	CK_RV rv = CKR_OK;
	const char *what = "";
	int r;

	if ((r = pad_label(cfg->token, lab)) != 0 || (r = mod_load(cfg, &m)) != 0)
		return r;
	if (find_slot(m, cfg->token, 0, &slot) == 0) {
		r = sv_seterr(SV_EEXIST, "hsm: a token labelled \"%s\" already exists", cfg->token);
		goto out;
	}
	if ((r = find_slot(m, NULL, 1, &slot)) != 0 ||
	    (r = sv_read_secret_file(so_pin_file, HSM_PIN_MAX, &so, &sol)) != 0 ||
	    (r = sv_read_secret_file(cfg->pin_file, HSM_PIN_MAX, &pin, &pinl)) != 0)
		goto out;
	if ((rv = m->f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so, sol, lab)) != CKR_OK) {
		what = "C_InitToken";
		goto ckr;
	}
	/* Some modules move the new token to another slot: look it up again. */
	if ((r = find_slot(m, cfg->token, 0, &slot)) != 0)
		goto out;
	if ((rv = m->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)) !=
	    CKR_OK) {
		what = "C_OpenSession";
		goto ckr;
	}
	if ((rv = m->f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so, sol)) != CKR_OK) {
		what = "C_Login (SO)";
		goto ckr;
	}
	if ((rv = m->f->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, pinl)) != CKR_OK)
		what = "C_InitPIN";
	m->f->C_Logout(s);
ckr:
	if (rv != CKR_OK)
		r = hsm_ckr_err(rv, what);
out:
	if (s != CK_INVALID_HANDLE)
		m->f->C_CloseSession(s);
	if (so)
		sodium_free(so);
	if (pin)
		sodium_free(pin);
	mod_free(m);
	return r;
}
