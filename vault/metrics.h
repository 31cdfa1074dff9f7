/*
 * metrics: counters and latency histograms rendered in the Prometheus text
 * exposition format.  Each process keeps its own set; netproc serves its own
 * text followed by the key process's at GET /metrics.  Label values come
 * from validated names (shadows, accounts) or fixed strings and are escaped
 * anyway.  Series are capped (METRICS_SERIES_MAX) so that label values from
 * requests cannot grow memory without bound: extra series are dropped and
 * counted in shadowvault_metrics_dropped_total.
 */
#ifndef SV_METRICS_H
#define SV_METRICS_H

#include <stddef.h>

#define METRICS_SERIES_MAX 4096

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declare a metric family ("counter" or "histogram") with its help text. */
int metrics_define(struct metrics *m, const char *name, const char *type, const char *help);

/*
 * Add v to counter name with labels given as NULL-terminated key, value
 * pairs: metrics_add(m, "x_total", 1, "shadow", "web1", NULL).
 */
void metrics_add(struct metrics *m, const char *name, double v, ...);

/* Record one observation (seconds) in histogram name (no labels). */
void metrics_observe(struct metrics *m, const char *name, double seconds);

/* Render everything; *out is malloc'd text (caller frees). */
int metrics_render(struct metrics *m, char **out);

/* Monotonic seconds, for latency measurements. */
double metrics_now(void);

#endif
