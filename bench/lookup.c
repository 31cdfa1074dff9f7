/*
 * bench/lookup: what the key process's two per-request lookups (certificate
 * serial -> shadow, shadow -> rate bucket) cost as the number of shadows
 * grows: common/hmap against the linear scans it replaced (rebuilt here as
 * the baseline: a strcmp over every cached serial, up to 4,096, and over
 * every shadow's bucket), in the same run.  Each request looks up one cached
 * serial and one shadow's bucket.  Prints ns per request (both lookups) and
 * the ratio hmap / linear for each number of shadows.
 *
 * usage: bench/lookup [-r ROUNDS]      (default 5; the median is printed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hmap.h"
#include "lat.h"

#define SERIALS_MAX 4096 /* the key process's serial cache */
#define LOOKUPS	    200000

struct ent {
	char serial[66];
	char shadow[64];
};

static volatile size_t sink;

/* The old way: first match in an array, by strcmp. */
static const struct ent *
scan(const struct ent *v, size_t n, int by_serial, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(by_serial ? v[i].serial : v[i].shadow, key) == 0)
			return &v[i];
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ns per request for n shadows: linear (*lin) and hmap (*hm). */
static void
measure(size_t n, double *lin, double *hm)
{
	struct ent *v = calloc(n, sizeof(*v));
	struct hmap *ms, *mr;
	size_t i, j, k, ns = n < SERIALS_MAX ? n : SERIALS_MAX;
	const struct ent *e;
	double t0;

	if (v == NULL || hmap_new(SERIALS_MAX, &ms) != 0 || hmap_new(0, &mr) != 0) {
		fprintf(stderr, "lookup: out of memory\n");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		snprintf(
		    v[i].serial, sizeof(v[i].serial), "7f3a9c2e41d08b6e5a1c%08zx", i * 2654435761u);
		snprintf(v[i].shadow, sizeof(v[i].shadow), "web-%zu", i);
		if ((i < ns && hmap_put(ms, v[i].serial, strlen(v[i].serial), &v[i]) != 0) ||
		    hmap_put(mr, v[i].shadow, strlen(v[i].shadow), &v[i]) != 0) {
			fprintf(stderr, "lookup: out of memory\n");
			exit(1);
		}
	}
	/* Request k: a cached serial (i), and the bucket of any shadow (j). */
	t0 = lat_now();
	for (k = 0; k < LOOKUPS; k++) {
		i = (k * 7919) % ns;
		j = (k * 104729) % n;
		sink += (size_t)scan(v, ns, 1, v[i].serial) + (size_t)scan(v, n, 0, v[j].shadow);
	}
	*lin = (lat_now() - t0) / LOOKUPS * 1e9;
	t0 = lat_now();
	for (k = 0; k < LOOKUPS; k++) {
		i = (k * 7919) % ns;
		j = (k * 104729) % n;
		e = hmap_get(ms, v[i].serial, strlen(v[i].serial));
		sink += (size_t)e + (size_t)hmap_get(mr, v[j].shadow, strlen(v[j].shadow));
	}
	*hm = (lat_now() - t0) / LOOKUPS * 1e9;
	hmap_free(ms, NULL);
	hmap_free(mr, NULL);
	free(v);
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 16, 256, 1024, 4096, 16384 };
	double lin[16], hm[16];
	int rounds = 5, ch, r;
	size_t s;

	while ((ch = getopt(argc, argv, "r:")) != -1) {
		if (ch != 'r' || (rounds = atoi(optarg)) < 1 || rounds > 16) {
			fprintf(stderr, "usage: lookup [-r ROUNDS (1..16)]\n");
			return 2;
		}
	}
	printf("# per request: serial -> shadow, then shadow -> rate bucket; median of %d "
	       "round(s) of %d\n",
	    rounds, LOOKUPS);
	printf("%8s %12s %12s %10s\n", "shadows", "linear ns", "hmap ns", "hmap/lin");
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (r = 0; r < rounds; r++)
			measure(sizes[s], &lin[r], &hm[r]);
		qsort(lin, (size_t)rounds, sizeof(double), cmp_d);
		qsort(hm, (size_t)rounds, sizeof(double), cmp_d);
		printf("%8zu %12.1f %12.1f %10.3f\n", sizes[s], lin[rounds / 2], hm[rounds / 2],
		    hm[rounds / 2] / lin[rounds / 2]);
	}
	return 0;
}
