/*
 * kp_rate: the per-shadow token buckets of the key process, and their
 * persistence.
 *
 * Every request a shadow sends takes a token first (kp_rate_take).  The
 * buckets live in memory, in an hmap by shadow name; the ones that changed
 * are written to the state database once a second (kp_rates_flush, with the
 * signed nonces) and at shutdown, and read back at start (kp_rates_load), so
 * a restart of the key process does not hand every shadow a full bucket.  A
 * crash loses at most the last second's tokens.  A bucket that has refilled
 * is the same as a new one: its row is deleted instead of written, so the
 * table holds only shadows that used their limit recently.
 *
 * Rows: tokens in thousandths, and the wall-clock time (milliseconds since
 * the epoch) they were counted at.  Loading turns that into the monotonic
 * clock; a time in the future (the clock stepped back) counts as now.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "keyproc.h"
#include "log.h"
#include "metrics.h"
#include "sv_err.h"

static const char PUT_SQL[] =
    "INSERT OR REPLACE INTO rate_buckets (shadow, millitokens, updated_ms) VALUES (?1, ?2, ?3)";
static const char DEL_SQL[] = "DELETE FROM rate_buckets WHERE shadow = ?1";

/* The shadow's limit: its policy's, or the language's default. */
static void
limit_of(struct kp *kp, const char *shadow, double *rate, double *burst)
{
	unsigned per_minute, b;

	if (pol_rate(kp->pol, shadow, &per_minute, &b) != 0) {
		per_minute = POL_RATE_PER_MINUTE;
		b = POL_RATE_BURST;
	}
	*rate = per_minute / 60.0;
	*burst = b;
}

/* The shadow's entry, made (with a full bucket) if it has none; NULL: no memory. */
static struct kp_rate *
entry(struct kp *kp, const char *shadow, double burst, double now)
{
	struct kp_rate *r;

	if (kp->rates == NULL && hmap_new(0, &kp->rates) != 0)
		return NULL;
	if ((r = hmap_get(kp->rates, shadow, strlen(shadow))) != NULL)
		return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	snprintf(r->shadow, sizeof(r->shadow), "%s", shadow);
	sv_bucket_init(&r->b, burst, now);
	r->recorded = -1; /* never */
	if (hmap_put(kp->rates, shadow, strlen(shadow), r) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

int
kp_rate_take(struct kp *kp, const char *shadow, int *wait, struct kp_rate **rp)
{
	double now = metrics_now(), rate, burst;
	struct kp_rate *r;

	*wait = 0;
	limit_of(kp, shadow, &rate, &burst);
	if ((*rp = r = entry(kp, shadow, burst, now)) == NULL)
		return 0;
	r->dirty = 1;
	return sv_bucket_take(&r->b, rate, burst, now, wait);
}

int
kp_rate_record(struct kp_rate *r, json_t **extra)
{
	*extra = NULL;
	if (r != NULL && !sv_due(&r->recorded, metrics_now(), KP_LIMITED_EVERY)) {
		r->unrecorded++;
		return 0;
	}
	*extra = json_pack("{s:I}", "unrecorded", (json_int_t)(r ? r->unrecorded : 0));
	if (r != NULL)
		r->unrecorded = 0;
	return 1;
}

json_t *
kp_shadow_admit(struct kp *kp, const char *serial, const char *fpr, char *shadow)
{
	struct kp_rate *rt;
	int wait, r;

	if ((r = kp_shadow(kp, serial, fpr, shadow)) != 0)
		return kp_problem(
		    403, r == SV_ESTATE ? "expired" : "revoked", "Forbidden", kp_shadow_why(r), 0);
	if (!kp_rate_take(kp, shadow, &wait, &rt))
		return kp_problem(429, "rate-limited", "Too many requests",
		    "request rate limit of this shadow reached", wait);
	return NULL;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
kp_rates_load(struct kp *kp)
{
	double now = metrics_now(), rate, burst, age, tokens;
	int64_t wall = wall_ms();
	const char *shadow;
	struct kp_rate *r;
	sqlite3_stmt *s;
	int rc, n = 0;

	if ((rc = state_prep(
		 kp->st, &s, "SELECT shadow, millitokens, updated_ms FROM rate_buckets", "")) != 0)
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		shadow = (const char *)sqlite3_column_text(s, 0);
		if (shadow == NULL || strlen(shadow) > SV_NAME_MAX)
			continue;
		limit_of(kp, shadow, &rate, &burst);
		if ((r = entry(kp, shadow, burst, now)) == NULL) {
			sqlite3_finalize(s);
			return sv_seterr(SV_ENOMEM, "rate limits: out of memory");
		}
		/* The next take refills for the time since; a row out of range is clamped. */
		age = (double)(wall - sqlite3_column_int64(s, 2)) / 1000;
		tokens = (double)sqlite3_column_int64(s, 1) / 1000;
		r->b.tokens = tokens < 0 ? 0 : tokens > burst ? burst : tokens;
		r->b.last = now - (age > 0 ? age : 0);
		r->dirty = 1; /* the next flush drops the row once it has refilled */
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return state_err(kp->st, "reading rate limits");
	if (n > 0)
		sv_info("rate limits of %d shadow%s carried over", n, n == 1 ? "" : "s");
	return 0;
}

/* Writing the changed buckets: one transaction, then the marks are cleared. */
struct flush {
	struct kp *kp;
	double now;
	int64_t wall;
	int r;
};

static void
flush_one(void *val, void *arg)
{
	struct kp_rate *e = val;
	struct flush *f = arg;
	double rate, burst;
	sqlite3_stmt *q;

	if (!e->dirty || f->r != 0)
		return;
	limit_of(f->kp, e->shadow, &rate, &burst);
	if (sv_bucket_full(&e->b, rate, burst, f->now)) /* the same as a new bucket: no row */
		f->r = state_hot(f->kp->st, &q, DEL_SQL, "t", e->shadow);
	else
		f->r = state_hot(f->kp->st, &q, PUT_SQL, "tii", e->shadow,
		    (int64_t)(e->b.tokens * 1000),
		    f->wall - (int64_t)((f->now - e->b.last) * 1000));
	if (f->r == 0 && sqlite3_step(q) != SQLITE_DONE)
		f->r = state_err(f->kp->st, "recording rate limits");
}

static void
clean(void *val, void *arg)
{
	((struct kp_rate *)val)->dirty = 0;
}

static void
count_dirty(void *val, void *arg)
{
	*(size_t *)arg += ((struct kp_rate *)val)->dirty != 0;
}

int
kp_rates_flush(struct kp *kp)
{
	struct flush f = { kp, metrics_now(), wall_ms(), 0 };
	size_t dirty = 0;

	if (kp->rates == NULL || kp->in_txn)
		return 0;
	hmap_each(kp->rates, count_dirty, &dirty);
	if (dirty == 0)
		return 0; /* no transaction for nothing */
	if ((f.r = state_begin(kp->st)) != 0)
		return f.r;
	hmap_each(kp->rates, flush_one, &f);
	if (f.r == 0 && (f.r = state_commit(kp->st)) == 0) {
		hmap_each(kp->rates, clean, NULL);
		return 0;
	}
	state_rollback(kp->st); /* still marked: the next flush tries again */
	sv_err("writing rate limits to the database: %s", sv_errmsg(f.r));
	return f.r;
}
