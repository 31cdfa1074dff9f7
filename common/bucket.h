/*
 * A token bucket: rate tokens a second, at most burst saved up.  Used for
 * the per-shadow signature rate limits and the enrolment limit.
 */
#ifndef SV_BUCKET_H
#define SV_BUCKET_H

struct sv_bucket {
	double tokens;
	double last; /* monotonic seconds of the last update */
};

/* A full bucket at time now. */
static inline void
sv_bucket_init(struct sv_bucket *b, double burst, double now)
{
	b->tokens = burst;
	b->last = now;
}

/* 1 if the bucket has refilled by now: it then holds nothing a new one would not. */
static inline int
sv_bucket_full(const struct sv_bucket *b, double rate, double burst, double now)
{
	return b->tokens + (now - b->last) * rate >= burst;
}

/* Take one token: 1, or 0 and *wait, the whole seconds (>= 1) until one is there. */
static inline int
sv_bucket_take(struct sv_bucket *b, double rate, double burst, double now, int *wait)
{
	*wait = 0;
	b->tokens += (now - b->last) * rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 1;
	}
	*wait = (int)((1 - b->tokens) / rate) + 1;
	return 0;
}

#endif
