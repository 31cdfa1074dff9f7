/*
 * Internals shared by the files of hsm/ (not for users of the layer).
 */
#ifndef SV_HSM_INT_H
#define SV_HSM_INT_H

#include <pthread.h>

#include <p11-kit/pkcs11.h>

#include "hsm.h"

struct hsm_mod {
	pthread_mutex_t mu;    /* refs */
	pthread_rwlock_t lock; /* operations: read; re-initialisation: write */
	void *dl;
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot;
	unsigned gen; /* bumped at every re-initialisation */
	unsigned recoveries;
	int owns_init; /* we called C_Initialize successfully */
	int refs;
	char *module, *token, *pin_file;
};

struct hsm {
	struct hsm_mod *m;
	CK_SESSION_HANDLE s;
	unsigned sgen;	 /* module generation the session belongs to */
	unsigned serial; /* unique per session opened in the process (next_gen) */
	int login_err;	 /* SV code of the last failed login, 0 if none */
};

/* Take the read lock and make sure h has a live session of this generation. */
CK_RV hsm_enter(struct hsm *h);
void hsm_leave(struct hsm *h);

/*
 * After an operation failed with rv on its attempt-th try: if rv is one we
 * recover from and tries remain, recover and return 0 (try again); otherwise
 * return a negative SV code with a readable detail naming what.
 */
int hsm_retry(struct hsm *h, CK_RV rv, int attempt, const char *what);

/* SV code and detail for a failed PKCS#11 call. */
int hsm_ckr_err(CK_RV rv, const char *what);

/*
 * hsm_retry() for operations on a key: a stale cached handle is looked up
 * again; a key that is really gone gives SV_ENOTFOUND naming it.
 */
int hsm_key_retry(struct hsm *h, struct hsm_key *key, CK_RV rv, int attempt, const char *what);

/* Destroy key's session copy if it lives in h's current session (inside hsm_enter). */
void hsm_key_drop_copy(struct hsm *h, struct hsm_key *key);

/* Make key->priv (and key->pub if want_pub) valid for the current generation. */
CK_RV hsm_key_handles(struct hsm *h, struct hsm_key *key, int want_pub);

#endif
