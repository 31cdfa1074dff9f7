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

/* SV_EDB with sqlite's message and what; returns the code. */
int state_err(struct state *st, const char *what);

/* Schema version after migration (tests, status). */
int state_schema_version(struct state *st);

#endif
