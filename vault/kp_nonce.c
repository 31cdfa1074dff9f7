/*
 * kp_nonce: a nonce is signed at most once.
 *
 * The nonces signed since the last hand-over are kept in memory, as an
 * open-addressing set of their SHA-256 hashes (cur); the state database holds
 * the older ones.  Every second (on_tick), when cur passes KP_NONCE_FLUSH
 * entries after a batch, and at shutdown, cur becomes out and a new cur
 * starts empty: the writer thread puts out into the database in one
 * transaction, on its own connection, while the event loop goes on
 * answering.  Lookups ask cur, then out, then the database.  out is emptied
 * only once its transaction has committed; a failed write keeps it and is
 * tried again at the next hand-over.  While the writer works, the loop only
 * reads out; the writer only reads it too.
 *
 * Nothing is lost by keeping them in memory: the audit log, fsynced before
 * any answer leaves, records the hash of every nonce signed.  The
 * database's nonce_seq stays at the audit seq reached before the oldest
 * nonce not yet in it (kp_nonce_floor), so after a crash recover_nonces()
 * puts back every nonce the database missed.  A nonce whose answer failed
 * (the audit write failed) stays spent: that refuses more, never less.
 *
 * A Bloom filter (nbloom.h) holds every nonce in the database and every one
 * signed since: a nonce it has certainly never seen - nearly every request -
 * needs no database lookup.  It is filled from the database at start, after
 * recover_nonces() has put back what the database had lost.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "keyproc.h"
#include "log.h"
#include "nbloom.h"
#include "sv_err.h"

#define NONCE_SLOTS 8192  /* a power of two */
#define NONCE_MAX   6144  /* refuse (503) past this many in cur: load <= 0.75 */
#define FILTER_MIN  65536 /* the filter's first generation holds at least this many */

struct nset {
	uint8_t hash[NONCE_SLOTS][32];
	uint8_t used[NONCE_SLOTS];
	size_t n;
	uint64_t floor; /* audit seq before the oldest nonce in the set */
};

/* What the writer thread (a job, job.h) is asked to write. */
struct nwriter {
	struct sv_job *job;
	struct state *st; /* its own connection to the state database */
	const struct nset *set;
	uint64_t seq; /* nonce_seq to record with the set */
	char err[SV_ERRMSG_MAX];
};

struct kp_nonces {
	struct nset sets[2];
	struct nset *cur, *out; /* out->n == 0: nothing handed over */
	struct nbloom *seen;	/* every nonce in the database, cur or out */
	struct nwriter *w;	/* NULL: written on the loop's thread */
};

static const char SEEN_SQL[] = "SELECT 1 FROM nonces WHERE hash = ?1";
static const char ADD_SQL[] = "INSERT OR IGNORE INTO nonces (hash, seen) VALUES (?1, ?2)";
static const char COUNT_SQL[] = "SELECT count(*) FROM nonces";
static const char ALL_SQL[] = "SELECT hash FROM nonces";

/* Empty a set whose nonces are in the database now. */
static void
set_clear(struct nset *set)
{
	memset(set->used, 0, sizeof(set->used));
	set->n = 0;
}

/* Write set and nonce_seq = seq in one transaction of st. */
static int
write_set(struct state *st, const struct nset *set, uint64_t seq)
{
	int64_t now = (int64_t)time(NULL);
	sqlite3_stmt *q;
	size_t i;
	int r;

	if ((r = state_begin(st)) != 0)
		return r;
	for (i = 0; i < NONCE_SLOTS && r == 0; i++) {
		if (!set->used[i])
			continue;
		if ((r = state_hot(st, &q, ADD_SQL, "bi", set->hash[i], now)) == 0 &&
		    sqlite3_step(q) != SQLITE_DONE)
			r = state_err(st, "recording nonces");
	}
	/* With them all in, the database is current with the log up to seq. */
	if (r == 0)
		r = kp_mark_seq(st, seq);
	if (r == 0)
		return state_commit(st);
	state_rollback(st);
	return r;
}

static int
writer_job(void *arg)
{
	struct nwriter *w = arg;
	int r = write_set(w->st, w->set, w->seq);

	/* The error detail is per thread: keep it for the loop to log. */
	snprintf(w->err, sizeof(w->err), "%s", r != 0 ? sv_errmsg(r) : "");
	return r;
}

/* Start the writer on a connection of its own; non-zero: write on the loop's thread. */
static int
writer_start(struct kp *kp, struct kp_nonces *s)
{
	struct nwriter *w = calloc(1, sizeof(*w));
	int r;

	if (w == NULL)
		return SV_ENOMEM;
	if ((r = state_open(kp->cfg->db_path, 0, &w->st)) != 0 ||
	    (r = state_durable(w->st, 0)) != 0 || (r = sv_job_start(writer_job, w, &w->job)) != 0) {
		state_close(w->st);
		free(w);
		return r;
	}
	s->w = w;
	return 0;
}

/*
 * Take the writer's result if it has one (waiting for it if wait): out is
 * emptied once written, kept if the write failed.  1 if it is still writing.
 */
static int
writer_reap(struct kp_nonces *s, int wait)
{
	int r = 0, t;

	if (s->w == NULL)
		return 0;
	if ((t = sv_job_take(s->w->job, wait, &r)) != 0)
		return t == 1; /* still writing, or nothing was asked */
	if (r != 0) {
		/* Kept: the next hand-over writes it again. */
		sv_err("writing %zu nonces to the database: %s", s->out->n, s->w->err);
		return 0;
	}
	set_clear(s->out);
	return 0;
}

static void
writer_stop(struct kp_nonces *s)
{
	if (s->w == NULL)
		return;
	writer_reap(s, 1);
	sv_job_stop(s->w->job);
	state_close(s->w->st);
	free(s->w);
	s->w = NULL;
}

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
	struct kp_nonces *s;
	int r;

	if ((s = kp->nonces = calloc(1, sizeof(*kp->nonces))) == NULL)
		return sv_seterr(SV_ENOMEM, "nonce set: out of memory");
	s->cur = &s->sets[0];
	s->out = &s->sets[1];
	s->cur->floor = audit_seq(kp->audit);
	if ((r = filter_load(kp, s)) != 0) {
		kp_nonces_free(kp);
		return r;
	}
	if ((r = writer_start(kp, s)) != 0)
		sv_warn(
		    "nonce writer: %s: writing nonces on the event loop's thread", sv_errmsg(r));
	return 0;
}

void
kp_nonces_free(struct kp *kp)
{
	if (kp->nonces == NULL)
		return;
	writer_stop(kp->nonces);
	nbloom_free(kp->nonces->seen);
	free(kp->nonces);
	kp->nonces = NULL;
}

/* The slot of set holding h, or the empty slot where it would go. */
static size_t
slot_of(const struct nset *set, const uint8_t h[32])
{
	size_t i;

	memcpy(&i, h, sizeof(i)); /* a SHA-256 output: already uniform */
	for (i &= NONCE_SLOTS - 1; set->used[i]; i = (i + 1) & (NONCE_SLOTS - 1))
		if (memcmp(set->hash[i], h, 32) == 0)
			break;
	return i;
}

int
kp_nonce_fresh(struct kp *kp, const uint8_t h[32], int *err)
{
	struct kp_nonces *s = kp->nonces;
	struct nset *cur = s->cur;
	size_t i = slot_of(cur, h);
	sqlite3_stmt *q;
	int rc;

	*err = 0;
	if (cur->used[i] || (s->out->n > 0 && s->out->used[slot_of(s->out, h)]))
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
	if (cur->n >= NONCE_MAX) {
		*err = sv_seterr(SV_EBUSY, "too many nonces not yet written to the database");
		return 0;
	}
	memcpy(cur->hash[i], h, 32);
	cur->used[i] = 1;
	cur->n++;
	nbloom_add(s->seen, h);
	return 1;
}

uint64_t
kp_nonce_floor(const struct kp *kp)
{
	const struct kp_nonces *s = kp->nonces;

	if (s == NULL || (s->out->n == 0 && s->cur->n == 0))
		return audit_seq(kp->audit);
	return s->out->n > 0 ? s->out->floor : s->cur->floor;
}

size_t
kp_nonce_pending(const struct kp *kp)
{
	return kp->nonces ? kp->nonces->cur->n : 0;
}

/*
 * Hand cur over to be written with the audit seq it reaches (or, with no
 * writer or at shutdown, write it here).  Only between batches: every nonce
 * in cur then has its audit record committed (or its answer failed).
 */
static int
hand_over(struct kp *kp, int here)
{
	struct kp_nonces *s = kp->nonces;
	struct nset *t;
	int r;

	if (s == NULL || kp->in_txn)
		return 0;
	/* Still writing the last set: cur waits for the next turn.  Past half
	   full, the loop waits for the writer rather than refuse nonces (503)
	   when cur reaches NONCE_MAX behind a slow disk. */
	if (writer_reap(s, here || s->cur->n >= NONCE_MAX / 2))
		return 0;
	if (s->out->n == 0) {
		if (s->cur->n == 0)
			return 0;
		t = s->out;
		s->out = s->cur;
		s->cur = t;
		s->cur->floor = audit_seq(kp->audit);
	}
	if (s->w != NULL && !here) {
		s->w->set = s->out;
		s->w->seq = s->cur->floor;
		sv_job_ask(s->w->job);
		return 0;
	}
	if ((r = write_set(kp->st, s->out, s->cur->floor)) != 0) {
		sv_err("writing %zu nonces to the database: %s", s->out->n, sv_errmsg(r));
		return r;
	}
	set_clear(s->out);
	return 0;
}

int
kp_nonce_flush(struct kp *kp)
{
	return hand_over(kp, 0);
}

int
kp_nonce_flush_all(struct kp *kp)
{
	int r;

	/* out first (waiting for the writer), then what cur holds, both here. */
	if ((r = hand_over(kp, 1)) != 0)
		return r;
	return hand_over(kp, 1);
}
