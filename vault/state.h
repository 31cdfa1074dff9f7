/*
 * The vault's state database: SQLite in WAL mode under the state directory
 * (mode 0600).  Only the key process (and vaultctl init, offline) opens it.
 * The schema is versioned with PRAGMA user_version and migrated forward in
 * one transaction at open.
 */
#ifndef SV_STATE_H
#define SV_STATE_H

#include <sqlite3.h>

struct state;

/* Open (create when create != 0) and migrate.  Caller state_close()s. */
int state_open(const char *path, int create, struct state **out);
void state_close(struct state *st);

/* The handle, for the modules that own their tables (keystore, shadows...). */
sqlite3 *state_db(struct state *st);

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
int state_begin(struct state *st);
int state_commit(struct state *st);
void state_rollback(struct state *st);

/*
 * Prepare sql and bind its parameters ?1, ?2, ... from the variadic
 * arguments as fmt says, one letter each: 't' text (const char *), 'i'
 * int64_t, 'b' a 32-byte blob (const void *).  Caller sqlite3_finalize()s.
 */
int state_prep(struct state *st, sqlite3_stmt **s, const char *sql, const char *fmt, ...);

/* Same, run it to completion (no rows); *changes (may be NULL) gets sqlite3_changes(). */
int state_exec(
    struct state *st, const char *what, int *changes, const char *sql, const char *fmt, ...);

/*
 * Like state_prep() for statements run on every request: prepared once and
 * kept (sql must be a string constant: it is recognised by its address).
 * Do not finalize the statement; it is reset at the next use.
 */
int state_hot(struct state *st, sqlite3_stmt **s, const char *sql, const char *fmt, ...);

/*
 * full != 0: every commit is fsynced (the default).  0: commits reach the
 * WAL without an fsync (they survive a crash of the process, not of the
 * machine); for callers that keep a durable record elsewhere.
 */
int state_durable(struct state *st, int full);

/* SV_EDB with sqlite's message and what; returns the code. */
int state_err(struct state *st, const char *what);

/* Schema version after migration (tests, status). */
int state_schema_version(struct state *st);

#endif
