/*
 * Latency samples for the bench programs (see lat.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lat.h"

static int
grow(struct lat *l, size_t need)
{
	float *n;
	size_t cap = l->cap ? l->cap : 4096;

	if (need <= l->cap)
		return 0;
	if (need > LAT_MAX)
		return -1;
	while (cap < need)
		cap *= 2;
	if ((n = realloc(l->v, cap * sizeof(*n))) == NULL)
		return -1;
	l->v = n;
	l->cap = cap;
	return 0;
}

int
lat_add(struct lat *l, double us)
{
	if (grow(l, l->n + 1) != 0)
		return -1;
	l->v[l->n++] = (float)us;
	return 0;
}

int
lat_merge(struct lat *dst, const struct lat *src)
{
	if (src->n == 0)
		return 0;
	if (grow(dst, dst->n + src->n) != 0)
		return -1;
	memcpy(dst->v + dst->n, src->v, src->n * sizeof(*src->v));
	dst->n += src->n;
	return 0;
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

double
lat_pct(struct lat *l, double p)
{
	size_t k;

	if (l->n == 0)
		return 0;
	qsort(l->v, l->n, sizeof(*l->v), cmp_float);
	k = (size_t)ceil(p * (double)l->n);
	return l->v[k > 0 ? k - 1 : 0];
}

void
lat_free(struct lat *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

double
lat_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
