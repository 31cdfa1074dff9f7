/*
 * accounts: the ACME accounts the vault signs for (table in the state
 * database).  Each is pinned to the CA directory it was registered at, with
 * that directory's JSON (URLs of newOrder, revokeCert, keyChange...), the
 * account URL (kid) and the name of its key in the keystore.
 */
#ifndef SV_ACCOUNTS_H
#define SV_ACCOUNTS_H

#include <jansson.h>

#include "names.h"
#include "state.h"

#define ACCOUNT_URL_MAX 2048
#define ACCOUNT_DIR_MAX (64 * 1024) /* directory JSON */

struct account {
	char name[SV_NAME_MAX + 1];
	char key_name[SV_NAME_MAX + 1];
	char *directory_url; /* malloc'd */
	char *kid;	     /* malloc'd */
	char *email;	     /* malloc'd, may be NULL */
	json_t *directory;   /* the CA directory object */
};

/* Record a registered account.  SV_EEXIST if the name is taken. */
int accounts_add(struct state *st, const char *name, const char *directory_url,
    const json_t *directory, const char *kid, const char *key_name, const char *email);

/* Load one account; SV_ENOTFOUND if absent.  Free with account_free(). */
int accounts_get(struct state *st, const char *name, struct account *out);
void account_free(struct account *a);

/* The account whose key is key_name: 0 with account filled, or SV_ENOTFOUND. */
int accounts_by_key(struct state *st, const char *key_name, char *account);

/* [{name, directory_url, kid, key_name, email, created}] */
int accounts_list(struct state *st, json_t **out);

/* Directory URL field ("newOrder"...) or NULL. */
const char *account_dir_url(const struct account *a, const char *field);

#endif
