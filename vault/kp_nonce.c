/*
 * kp_nonce: a nonce is signed at most once.
 *
 * The nonces signed since the last flush are kept in memory, as an
 * open-addressing set of their SHA-256 hashes; the state database holds the
 * older ones.  The set is written to the database in one transaction every
 * second (on_tick), when it passes KP_NONCE_FLUSH entries after a batch, and
 * at shutdown, instead of one database commit per batch of requests.
 *
 * Nothing is lost by keeping them in memory: the audit log, fsynced before
 * any answer leaves, records the hash of every nonce signed.  The
 * database's nonce_seq stays at the audit seq reached before the oldest
 * unflushed nonce (kp_nonce_floor), so after a crash recover_nonces() puts
 * back every nonce the database missed.  A nonce whose answer failed (the
 * audit write failed) stays spent: that refuses more, never less.
 *
 * A Bloom filter (nbloom.h) holds every nonce in the database and every one
 * signed since: a nonce it has certainly never seen - nearly every request -
 * needs no database lookup.  It is filled from the database at start, after
 * recover_nonces() has put back what the database had lost.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyproc.h"
#include "log.h"
#include "nbloom.h"
#include "sv_err.h"

#define NONCE_SLOTS 8192  /* a power of two */
#define NONCE_MAX   6144  /* refuse (503) past this many unflushed: load <= 0.75 */
#define FILTER_MIN  65536 /* the filter's first generation holds at least this many */

struct kp_nonces {
	uint8_t hash[NONCE_SLOTS][32];
	uint8_t used[NONCE_SLOTS];
	size_t n;
	uint64_t floor;	     /* audit seq before the oldest unflushed nonce */
	struct nbloom *seen; /* every nonce in the database or in hash[] */
};

static const char SEEN_SQL[] = "SELECT 1 FROM nonces WHERE hash = ?1";
static const char ADD_SQL[] = "INSERT OR IGNORE INTO nonces (hash, seen) VALUES (?1, ?2)";

static const char COUNT_SQL[] = "SELECT count(*) FROM nonces";
static const char ALL_SQL[] = "SELECT hash FROM nonces";

/* Put every nonce of the database into the filter. */
static int
filter_load(struct kp *kp, struct kp_nonces *s)
{
	sqlite3_stmt *q = NULL;
	int64_t rows = 0;
	int r, rc;

	if ((r = state_prep(kp->st, &q, COUNT_SQL, "")) != 0)
		return r;
	if (sqlite3_step(q) == SQLITE_ROW)
		rows = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if ((r = nbloom_new(rows < FILTER_MIN / 2 ? FILTER_MIN : (size_t)rows * 2, &s->seen)) !=
		0 ||
	    (r = state_prep(kp->st, &q, ALL_SQL, "")) != 0)
		return r;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		if (sqlite3_column_bytes(q, 0) == 32)
			nbloom_add(s->seen, sqlite3_column_blob(q, 0));
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return state_err(kp->st, "reading the signed nonces");
	sv_debug("nonce filter: %zu nonces, %zu KiB", nbloom_count(s->seen),
	    nbloom_bytes(s->seen) / 1024);
	return 0;
}

int
kp_nonces_init(struct kp *kp)
{
	int r;

	if ((kp->nonces = calloc(1, sizeof(*kp->nonces))) == NULL)
		return sv_seterr(SV_ENOMEM, "nonce set: out of memory");
	kp->nonces->floor = audit_seq(kp->audit);
	if ((r = filter_load(kp, kp->nonces)) != 0) {
		kp_nonces_free(kp);
		return r;
	}
	return 0;
}

void
kp_nonces_free(struct kp *kp)
{
	if (kp->nonces != NULL)
		nbloom_free(kp->nonces->seen);
	free(kp->nonces);
	kp->nonces = NULL;
}

/* The slot holding h, or the empty slot where it would go. */
static size_t
slot_of(const struct kp_nonces *s, const uint8_t h[32])
{
	size_t i;

	memcpy(&i, h, sizeof(i)); /* a SHA-256 output: already uniform */
	for (i &= NONCE_SLOTS - 1; s->used[i]; i = (i + 1) & (NONCE_SLOTS - 1))
		if (memcmp(s->hash[i], h, 32) == 0)
			break;
	return i;
}

int
kp_nonce_fresh(struct kp *kp, const uint8_t h[32], int *err)
{
	struct kp_nonces *s = kp->nonces;
	size_t i = slot_of(s, h);
	sqlite3_stmt *q;
	int rc;

	*err = 0;
	if (s->used[i])
		return 0;
	if (nbloom_maybe(s->seen, h)) {
		if ((*err = state_hot(kp->st, &q, SEEN_SQL, "b", h)) != 0)
			return 0;
		rc = sqlite3_step(q);
		sqlite3_reset(q); /* end the read at once */
		if (rc == SQLITE_ROW)
			return 0;
		if (rc != SQLITE_DONE) {
			*err = state_err(kp->st, "looking up a nonce");
			return 0;
		}
	}
	if (s->n >= NONCE_MAX) {
		*err = sv_seterr(SV_EBUSY, "too many nonces not yet written to the database");
		return 0;
	}
	memcpy(s->hash[i], h, 32);
	s->used[i] = 1;
	s->n++;
	nbloom_add(s->seen, h);
	return 1;
}

uint64_t
kp_nonce_floor(const struct kp *kp)
{
	if (kp->nonces == NULL || kp->nonces->n == 0)
		return audit_seq(kp->audit);
	return kp->nonces->floor;
}

size_t
kp_nonce_pending(const struct kp *kp)
{
	return kp->nonces ? kp->nonces->n : 0;
}

/*
 * Write the set to the database with the audit seq it reaches.  Only
 * between batches: every nonce in the set then has its audit record
 * committed (or its answer failed).
 */
int
kp_nonce_flush(struct kp *kp)
{
	struct kp_nonces *s = kp->nonces;
	int64_t now = (int64_t)time(NULL);
	sqlite3_stmt *q;
	size_t i;
	int r;

	if (s == NULL || s->n == 0 || kp->in_txn)
		return 0;
	if ((r = state_begin(kp->st)) != 0)
		return r;
	for (i = 0; i < NONCE_SLOTS && r == 0; i++) {
		if (!s->used[i])
			continue;
		if ((r = state_hot(kp->st, &q, ADD_SQL, "bi", s->hash[i], now)) == 0 &&
		    sqlite3_step(q) != SQLITE_DONE)
			r = state_err(kp->st, "recording nonces");
	}
	/* With them all in, the database is current with the log. */
	if (r == 0 && (r = kp_mark_seq(kp, audit_seq(kp->audit))) == 0)
		r = state_commit(kp->st);
	if (r != 0) {
		state_rollback(kp->st); /* kept in memory; the next flush tries again */
		sv_err("writing %zu nonces to the database: %s", s->n, sv_errmsg(r));
		return r;
	}
	memset(s->used, 0, sizeof(s->used));
	s->n = 0;
	s->floor = audit_seq(kp->audit);
	return 0;
}
