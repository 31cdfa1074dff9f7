/*
 * SQLite state (see state.h).  Touches only the database file and its WAL
 * and shared-memory siblings.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "sv_err.h"

#define HOT_MAX 8 /* statements kept prepared (state_hot) */

struct state {
	sqlite3 *db;
	struct {
		const char *sql; /* the caller's string constant: compared by address */
		sqlite3_stmt *s;
	} hot[HOT_MAX];
};

/* Migration N takes the schema from version N to N+1.  Append only. */
static const char *const migrations[] = {
	/* 0 -> 1: key metadata. */
	"CREATE TABLE keys ("
	" name TEXT NOT NULL,"
	" version INTEGER NOT NULL CHECK (version > 0),"
	" type TEXT NOT NULL,"
	" state TEXT NOT NULL CHECK (state IN ('current', 'retired', 'destroyed')),"
	" exportable INTEGER NOT NULL CHECK (exportable IN (0, 1)),"
	" created INTEGER NOT NULL,"
	" label TEXT NOT NULL,"
	" id BLOB NOT NULL,"
	" PRIMARY KEY (name, version));"
	"CREATE UNIQUE INDEX keys_current ON keys (name) WHERE state = 'current';"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
	/* 1 -> 2: shadows, enrolment tokens, their certificates, ACME accounts, nonces. */
	"CREATE TABLE shadows ("
	" name TEXT PRIMARY KEY,"
	" state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),"
	" created INTEGER NOT NULL,"
	" box_pk BLOB,"
	" revoked_at INTEGER);"
	"CREATE TABLE enroll_tokens ("
	" hash BLOB PRIMARY KEY,"
	" shadow TEXT NOT NULL REFERENCES shadows (name),"
	" expires INTEGER NOT NULL,"
	" used INTEGER);"
	"CREATE TABLE shadow_certs ("
	" serial TEXT PRIMARY KEY,"
	" shadow TEXT NOT NULL REFERENCES shadows (name),"
	" fingerprint TEXT NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE accounts ("
	" name TEXT PRIMARY KEY,"
	" directory_url TEXT NOT NULL,"
	" directory TEXT NOT NULL,"
	" kid TEXT NOT NULL,"
	" key_name TEXT NOT NULL,"
	" email TEXT,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE nonces (hash BLOB PRIMARY KEY, seen INTEGER NOT NULL);"
	"CREATE INDEX nonces_seen ON nonces (seen);",
	/* 2 -> 3: a key version can be "pending": made, not yet in use (account rollover). */
	"CREATE TABLE keys_v3 ("
	" name TEXT NOT NULL,"
	" version INTEGER NOT NULL CHECK (version > 0),"
	" type TEXT NOT NULL,"
	" state TEXT NOT NULL CHECK (state IN ('current', 'retired', 'destroyed', 'pending')),"
	" exportable INTEGER NOT NULL CHECK (exportable IN (0, 1)),"
	" created INTEGER NOT NULL,"
	" label TEXT NOT NULL,"
	" id BLOB NOT NULL,"
	" PRIMARY KEY (name, version));"
	"INSERT INTO keys_v3 SELECT name, version, type, state, exportable, created, label, id "
	" FROM keys;"
	"DROP TABLE keys;"
	"ALTER TABLE keys_v3 RENAME TO keys;"
	"CREATE UNIQUE INDEX keys_current ON keys (name) WHERE state = 'current';"
	"CREATE UNIQUE INDEX keys_pending ON keys (name) WHERE state = 'pending';",
	/* 3 -> 4: per-shadow rate-limit buckets that have not refilled (vault/kp_rate.c). */
	"CREATE TABLE rate_buckets ("
	" shadow TEXT PRIMARY KEY,"
	" millitokens INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL);",
	/* 4 -> 5: a certificate a shadow renewed itself names the one it replaces. */
	("ALTER TABLE shadow_certs ADD COLUMN replaces TEXT;"
	 "CREATE INDEX shadow_certs_replaces ON shadow_certs (replaces);"),
	/* 5 -> 6: certificates imported for the vault's keys, served as sealed bundles
	   (vault/certs.c); the newest sequence of a name is the one a bundle carries. */
	"CREATE TABLE certs ("
	" name TEXT NOT NULL,"
	" sequence INTEGER NOT NULL CHECK (sequence > 0),"
	" key_version INTEGER NOT NULL CHECK (key_version > 0),"
	" chain TEXT NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" imported INTEGER NOT NULL,"
	" PRIMARY KEY (name, sequence));",
	/* 6 -> 7: which version of the shadow CA key issued each certificate (before: 1, the
	   only one), so that an old version is destroyed only when nobody needs it. */
	"ALTER TABLE shadow_certs ADD COLUMN ca_version INTEGER NOT NULL DEFAULT 1;",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int
state_err(struct state *st, const char *what)
{
	return sv_seterr(SV_EDB, "state database: %s: %s", what,
	    st && st->db ? sqlite3_errmsg(st->db) : "cannot open");
}

int
state_schema_version(struct state *st)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int
migrate(struct state *st)
{
	char pragma[64];
	int v, r;

	if ((v = state_schema_version(st)) < 0)
		return state_err(st, "reading schema version");
	if (v > NMIGRATIONS)
		return sv_seterr(SV_EDB,
		    "state database: schema version %d is newer than this "
		    "program (%d): upgrade shadowvault",
		    v, NMIGRATIONS);
	if (v == NMIGRATIONS)
		return 0;
	if ((r = state_begin(st)) != 0)
		return r;
	for (; v < NMIGRATIONS; v++) {
		if (sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
			r = state_err(st, "migrating the schema");
			state_rollback(st);
			return r;
		}
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", NMIGRATIONS);
	if (sqlite3_exec(st->db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
		r = state_err(st, "setting the schema version");
		state_rollback(st);
		return r;
	}
	return state_commit(st);
}

int
state_open(const char *path, int create, struct state **out)
{
	struct state *st;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, r, fd;

	*out = NULL;
	if (create) {
		/* Create it 0600 ourselves: sqlite would honour the umask. */
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
			return sv_seterr(SV_EDB, "state database %s: cannot create", path);
		close(fd);
	} else if (access(path, F_OK) != 0) {
		return sv_seterr(
		    SV_ENOTFOUND, "state database %s does not exist: run vaultctl init", path);
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return SV_ENOMEM;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		r = sv_seterr(SV_EDB, "state database %s: %s", path, sqlite3_errmsg(st->db));
		state_close(st);
		return r;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (sqlite3_exec(st->db,
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
		"PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
		NULL, NULL, NULL) != SQLITE_OK) {
		r = state_err(st, "configuring");
		state_close(st);
		return r;
	}
	if ((r = migrate(st)) != 0) {
		state_close(st);
		return r;
	}
	*out = st;
	return 0;
}

void
state_close(struct state *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < HOT_MAX; i++)
		sqlite3_finalize(st->hot[i].s);
	sqlite3_close(st->db);
	free(st);
}

sqlite3 *
state_db(struct state *st)
{
	return st->db;
}

int
state_begin(struct state *st)
{
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return state_err(st, "BEGIN");
	return 0;
}

int
state_commit(struct state *st)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int r = state_err(st, "COMMIT");

		state_rollback(st);
		return r;
	}
	return 0;
}

void
state_rollback(struct state *st)
{
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Bind arguments by a tiny format: 't' text, 'i' int64, 'b' 32-byte blob. */
static int
bindv(sqlite3_stmt *s, const char *fmt, va_list ap)
{
	int i;

	for (i = 0; fmt[i] != '\0'; i++) {
		int rc;

		switch (fmt[i]) {
		case 't':
			rc = sqlite3_bind_text(
			    s, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
			break;
		case 'i':
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			rc = sqlite3_bind_blob(
			    s, i + 1, va_arg(ap, const void *), 32, SQLITE_STATIC);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
		if (rc != SQLITE_OK)
			return -1;
	}
	return 0;
}

int
state_prep(struct state *st, sqlite3_stmt **s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (sqlite3_prepare_v2(state_db(st), sql, -1, s, NULL) != SQLITE_OK)
		return state_err(st, "preparing a query");
	va_start(ap, fmt);
	r = bindv(*s, fmt, ap);
	va_end(ap);
	if (r != 0) {
		sqlite3_finalize(*s);
		*s = NULL;
		return state_err(st, "binding a query");
	}
	return 0;
}

/* Run a statement that returns no rows; the number of changed rows in *changes. */
int
state_exec(struct state *st, const char *what, int *changes, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s = NULL;
	va_list ap;
	int r = 0;

	if (sqlite3_prepare_v2(state_db(st), sql, -1, &s, NULL) != SQLITE_OK)
		return state_err(st, what);
	va_start(ap, fmt);
	if (bindv(s, fmt, ap) != 0 || sqlite3_step(s) != SQLITE_DONE)
		r = state_err(st, what);
	va_end(ap);
	if (changes)
		*changes = sqlite3_changes(state_db(st));
	sqlite3_finalize(s);
	return r;
}

int
state_hot(struct state *st, sqlite3_stmt **s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	size_t i;
	int r;

	*s = NULL;
	for (i = 0; i < HOT_MAX && st->hot[i].sql != NULL; i++)
		if (st->hot[i].sql == sql)
			break;
	if (i == HOT_MAX)
		return sv_seterr(SV_EINTERNAL, "state: too many hot statements");
	if (st->hot[i].sql == NULL) {
		if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->hot[i].s,
			NULL) != SQLITE_OK)
			return state_err(st, "preparing a query");
		st->hot[i].sql = sql;
	}
	*s = st->hot[i].s;
	sqlite3_reset(*s);
	sqlite3_clear_bindings(*s);
	va_start(ap, fmt);
	r = bindv(*s, fmt, ap);
	va_end(ap);
	return r == 0 ? 0 : state_err(st, "binding a query");
}

int
state_durable(struct state *st, int full)
{
	if (sqlite3_exec(st->db, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
		NULL, NULL, NULL) != SQLITE_OK)
		return state_err(st, "setting synchronous");
	return 0;
}
