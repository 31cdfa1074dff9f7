/*
 * restarts: how often the supervisor restarts its children.
 *
 * It keeps the times of the last RESTART_MAX + 1 failures in a ring and
 * gives up when all of them fall within RESTART_WINDOW seconds: at most
 * RESTART_MAX restarts in any window of that length.  The window slides,
 * so failures spread out over a long time never add up to a stop, and
 * failures close together are caught wherever they fall.  Times are
 * seconds of the monotonic clock (common/clock.h).
 */
#ifndef SV_RESTARTS_H
#define SV_RESTARTS_H

#define RESTART_WINDOW 60 /* seconds */
#define RESTART_MAX    5  /* restarts allowed in any RESTART_WINDOW seconds */

struct restarts {
	double at[RESTART_MAX + 1];
	unsigned long n; /* failures so far */
};

/* Record a failure at now: 1 if the children may be restarted, 0 if this
 * is the (RESTART_MAX + 1)th failure within RESTART_WINDOW seconds. */
static inline int
restarts_allow(struct restarts *r, double now)
{
	r->at[r->n++ % (RESTART_MAX + 1)] = now;
	/* The ring's oldest is the failure RESTART_MAX before this one. */
	return r->n <= RESTART_MAX || now - r->at[r->n % (RESTART_MAX + 1)] > RESTART_WINDOW;
}

#endif
