/*
 * metrics: a small Prometheus text-format registry (see metrics.h).  Memory
 * only; no I/O.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "metrics.h"
#include "sv_err.h"

#define FAMILIES_MAX 32
#define LABELS_MAX   256
#define RENDER_MAX   (4 * 1024 * 1024)

/* Histogram buckets in seconds: 50 us to 2.5 s. */
static const double buckets[] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
	int family;
	char labels[LABELS_MAX]; /* rendered: key="value",... */
	double value;
};

struct family {
	char name[64];
	char type[16];
	char help[160];
	/* histograms */
	unsigned long long counts[NBUCKETS];
	unsigned long long count;
	double sum;
};

struct metrics {
	struct family fam[FAMILIES_MAX];
	int nfam;
	struct series *s;
	size_t ns;
	unsigned long long dropped;
};

struct metrics *
metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m != NULL && (m->s = calloc(METRICS_SERIES_MAX, sizeof(*m->s))) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	free(m->s);
	free(m);
}

int
metrics_define(struct metrics *m, const char *name, const char *type, const char *help)
{
	struct family *f;

	if (m->nfam == FAMILIES_MAX)
		return sv_seterr(SV_EINTERNAL, "metrics: too many families");
	f = &m->fam[m->nfam++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->type, sizeof(f->type), "%s", type);
	snprintf(f->help, sizeof(f->help), "%s", help);
	return 0;
}

static int
family(struct metrics *m, const char *name)
{
	int i;

	for (i = 0; i < m->nfam; i++)
		if (strcmp(m->fam[i].name, name) == 0)
			return i;
	return -1;
}

/* Append key="escaped value" to buf. */
static void
label(char *buf, size_t n, const char *k, const char *v)
{
	size_t used = strlen(buf);

	used +=
	    (size_t)snprintf(buf + used, used < n ? n - used : 0, "%s%s=\"", used ? "," : "", k);
	for (; *v != '\0' && used + 3 < n; v++) {
		if (*v == '"' || *v == '\\' || *v == '\n') {
			buf[used++] = '\\';
			buf[used++] = *v == '\n' ? 'n' : *v;
		} else if ((unsigned char)*v >= 0x20 && (unsigned char)*v < 0x7f) {
			buf[used++] = *v;
		}
	}
	if (used + 1 < n)
		buf[used++] = '"';
	buf[used < n ? used : n - 1] = '\0';
}

void
metrics_add(struct metrics *m, const char *name, double v, ...)
{
	char labels[LABELS_MAX] = "";
	const char *k, *val;
	va_list ap;
	size_t i;
	int f;

	if ((f = family(m, name)) < 0)
		return;
	va_start(ap, v);
	while ((k = va_arg(ap, const char *)) != NULL && (val = va_arg(ap, const char *)) != NULL)
		label(labels, sizeof(labels), k, val);
	va_end(ap);
	for (i = 0; i < m->ns; i++) {
		if (m->s[i].family == f && strcmp(m->s[i].labels, labels) == 0) {
			m->s[i].value += v;
			return;
		}
	}
	if (m->ns == METRICS_SERIES_MAX) {
		m->dropped++;
		return;
	}
	m->s[m->ns].family = f;
	memcpy(m->s[m->ns].labels, labels, sizeof(labels));
	m->s[m->ns].value = v;
	m->ns++;
}

void
metrics_observe(struct metrics *m, const char *name, double seconds)
{
	struct family *f;
	size_t i;
	int k;

	if ((k = family(m, name)) < 0)
		return;
	f = &m->fam[k];
	for (i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			f->counts[i]++;
	f->count++;
	f->sum += seconds;
}

static int putf(struct svbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
putf(struct svbuf *b, const char *fmt, ...)
{
	char line[640];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return SV_EINTERNAL;
	return svbuf_put(b, line, (size_t)n);
}

static int
render_family(struct metrics *m, int k, struct svbuf *b)
{
	struct family *f = &m->fam[k];
	size_t i;
	int r;

	if ((r = putf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type)) != 0)
		return r;
	if (strcmp(f->type, "histogram") == 0) {
		for (i = 0; i < NBUCKETS && r == 0; i++)
			r = putf(
			    b, "%s_bucket{le=\"%g\"} %llu\n", f->name, buckets[i], f->counts[i]);
		if (r == 0)
			r = putf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
			    f->name, f->count, f->name, f->sum, f->name, f->count);
		return r;
	}
	for (i = 0; i < m->ns && r == 0; i++)
		if (m->s[i].family == k)
			r = m->s[i].labels[0]
			    ? putf(b, "%s{%s} %.0f\n", f->name, m->s[i].labels, m->s[i].value)
			    : putf(b, "%s %.0f\n", f->name, m->s[i].value);
	return r;
}

int
metrics_render(struct metrics *m, char **out)
{
	struct svbuf *b = svbuf_new(RENDER_MAX);
	int k, r = 0;

	*out = NULL;
	if (b == NULL)
		return SV_ENOMEM;
	for (k = 0; k < m->nfam && r == 0; k++)
		r = render_family(m, k, b);
	if (r == 0 && m->dropped)
		r = putf(b, "shadowvault_metrics_dropped_total %llu\n", m->dropped);
	if (r == 0 && (*out = strdup(svbuf_str(b))) == NULL)
		r = SV_ENOMEM;
	svbuf_free(b);
	return r;
}

double
metrics_now(void)
{
	return sv_mono_now();
}
