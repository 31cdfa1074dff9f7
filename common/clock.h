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

#endif
