/*
 * The monotonic clock in seconds, for durations (metrics, audit commits,
 * polling deadlines); never for wall-clock time.
 */
#ifndef SV_CLOCK_H
#define SV_CLOCK_H

#include <time.h>

static inline double
sv_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * For "at most once every so often" (a warning, an audit record): 1, and
 * *last set to now, if every seconds have passed since *last or *last is
 * negative (never); else 0.
 */
static inline int
sv_due(double *last, double now, double every)
{
	if (*last >= 0 && now - *last < every)
		return 0;
	*last = now;
	return 1;
}

#endif
