/*
 * accounts: ACME account records in SQLite (see accounts.h).  Touches the
 * accounts table only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accounts.h"
#include "sv_err.h"

static int
url_ok(const char *what, const char *url)
{
	if (url == NULL || strncmp(url, "https://", 8) != 0 || strlen(url) > ACCOUNT_URL_MAX)
		return sv_seterr(SV_EINVAL, "%s must be an https:// URL of at most %d bytes", what,
		    ACCOUNT_URL_MAX);
	return 0;
}

int
accounts_add(struct state *st, const char *name, const char *directory_url, const json_t *directory,
    const char *kid, const char *key_name, const char *email)
{
	char *dir;
	int r;

	if ((r = sv_name_check(name, "account name")) != 0 ||
	    (r = sv_name_check(key_name, "key name")) != 0 ||
	    (r = url_ok("directory", directory_url)) != 0 || (r = url_ok("account URL", kid)) != 0)
		return r;
	if (!json_is_object(directory) ||
	    (dir = json_dumps(directory, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return sv_seterr(SV_EINVAL, "directory must be a JSON object");
	if (strlen(dir) > ACCOUNT_DIR_MAX) {
		free(dir);
		return sv_seterr(SV_ETOOBIG, "directory JSON over %d bytes", ACCOUNT_DIR_MAX);
	}
	r = state_exec(st, "adding account", NULL,
	    "INSERT INTO accounts (name, directory_url, directory, kid, key_name, email, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    "tttttti", name, directory_url, dir, kid, key_name, email ? email : "",
	    (int64_t)time(NULL));
	free(dir);
	if (r != 0 && sqlite3_extended_errcode(state_db(st)) == SQLITE_CONSTRAINT_PRIMARYKEY)
		return sv_seterr(SV_EEXIST, "an account named \"%s\" already exists", name);
	return r;
}

static char *
dupcol(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t ? (const char *)t : "");
}

int
accounts_get(struct state *st, const char *name, struct account *a)
{
	sqlite3_stmt *s;
	json_error_t e;
	int r, rc;

	memset(a, 0, sizeof(*a));
	if ((r = state_prep(st, &s,
		 "SELECT name, key_name, directory_url, kid, email, directory FROM accounts "
		 "WHERE name = ?1",
		 "t", name)) != 0)
		return r;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? sv_seterr(SV_ENOTFOUND, "no account named \"%s\"", name)
					 : state_err(st, "reading account");
	}
	snprintf(a->name, sizeof(a->name), "%s", (const char *)sqlite3_column_text(s, 0));
	snprintf(a->key_name, sizeof(a->key_name), "%s", (const char *)sqlite3_column_text(s, 1));
	a->directory_url = dupcol(s, 2);
	a->kid = dupcol(s, 3);
	a->email = dupcol(s, 4);
	a->directory = json_loads((const char *)sqlite3_column_text(s, 5), 0, &e);
	sqlite3_finalize(s);
	if (a->directory_url == NULL || a->kid == NULL || a->email == NULL ||
	    a->directory == NULL) {
		account_free(a);
		return sv_seterr(SV_EDB, "account \"%s\": cannot load its record", name);
	}
	return 0;
}

void
account_free(struct account *a)
{
	free(a->directory_url);
	free(a->kid);
	free(a->email);
	json_decref(a->directory);
	memset(a, 0, sizeof(*a));
}

const char *
account_dir_url(const struct account *a, const char *field)
{
	return json_string_value(json_object_get(a->directory, field));
}

int
accounts_list(struct state *st, json_t **out)
{
	sqlite3_stmt *s;
	json_t *arr;
	int r;

	*out = NULL;
	if ((r = state_prep(st, &s,
		 "SELECT name, directory_url, kid, key_name, email, created FROM accounts "
		 "ORDER BY name",
		 "")) != 0)
		return r;
	if ((arr = json_array()) == NULL) {
		sqlite3_finalize(s);
		return SV_ENOMEM;
	}
	while (sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(arr,
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "name", sqlite3_column_text(s, 0),
			"directory_url", sqlite3_column_text(s, 1), "kid",
			sqlite3_column_text(s, 2), "key_name", sqlite3_column_text(s, 3), "email",
			sqlite3_column_text(s, 4), "created",
			(json_int_t)sqlite3_column_int64(s, 5)));
	sqlite3_finalize(s);
	*out = arr;
	return 0;
}

int
accounts_by_key(struct state *st, const char *key_name, char *account)
{
	sqlite3_stmt *s;
	int r;

	account[0] = '\0';
	if ((r = state_prep(
		 st, &s, "SELECT name FROM accounts WHERE key_name = ?1", "t", key_name)) != 0)
		return r;
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(account, SV_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(s, 0));
	else
		r = SV_ENOTFOUND;
	sqlite3_finalize(s);
	return r;
}
