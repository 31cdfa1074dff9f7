/*
 * Latency samples for the bench programs: microseconds as floats, capped,
 * merged across threads, nearest-rank percentiles; and the clock they read.
 */
#ifndef SV_BENCH_LAT_H
#define SV_BENCH_LAT_H

#include <stddef.h>

#define LAT_MAX (16u << 20) /* samples kept per set */

struct lat {
	float *v;
	size_t n, cap;
};

/* Add one sample; -1 when the cap is reached or memory runs out. */
int lat_add(struct lat *l, double us);

/* Append every sample of src to dst; -1 on failure. */
int lat_merge(struct lat *dst, const struct lat *src);

/* Sort, then nearest-rank percentile p (0..1) of the samples (0 when empty). */
double lat_pct(struct lat *l, double p);

void lat_free(struct lat *l);

/* Seconds on the monotonic clock. */
double lat_now(void);

#endif
