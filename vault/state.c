/*
 * SQLite state (see state.h).  Touches only the database file and its WAL
 * and shared-memory siblings.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "sv_err.h"

struct state {
	sqlite3 *db;
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
	if (st == NULL)
		return;
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
