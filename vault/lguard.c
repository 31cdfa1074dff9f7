/*
 * lguard: connection cap and accept-error back-off for libevent listeners
 * (see lguard.h).  Single-threaded: one event loop owns a guard.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "lguard.h"
#include "log.h"
#include "sv_err.h"

#define WARN_EVERY 60.0 /* seconds between warnings of one kind */

struct lguard {
	struct event_base *base;
	struct evconnlistener *ls[LGUARD_LISTENERS_MAX];
	size_t nls;
	size_t open, max;
	const char *what; /* the cap's name in the log */
	int backoff;	  /* an accept() failed: paused until the timer */
	int enabled;	  /* the listeners are accepting */
	struct event *timer;
	unsigned long errors;	       /* accept failures since the last warning */
	double warned_err, warned_cap; /* when (monotonic), or a negative number */
	void (*on_pause)(void *, const char *);
	void *arg;
	struct lguard *next; /* every guard, for the listeners' error callback */
};

static struct lguard *guards;

/* Enable or disable the listeners to match the guard's state. */
static void
update(struct lguard *g, const char *why)
{
	int want = !g->backoff && g->open < g->max;
	size_t i;

	if (want == g->enabled)
		return;
	for (i = 0; i < g->nls; i++)
		if (want)
			evconnlistener_enable(g->ls[i]);
		else
			evconnlistener_disable(g->ls[i]);
	g->enabled = want;
	if (!want && g->on_pause != NULL)
		g->on_pause(g->arg, why);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct lguard *g = arg;

	g->backoff = 0;
	update(g, "max_connections");
}

/* libevent calls this instead of retrying at once (errno: accept's error). */
static void
on_accept_error(struct evconnlistener *l, void *unused)
{
	struct timeval t = { 0, LGUARD_BACKOFF_MS * 1000 };
	int err = errno;
	struct lguard *g;
	size_t i;
	double now = sv_mono_now();

	for (g = guards; g != NULL; g = g->next)
		for (i = 0; i < g->nls; i++)
			if (g->ls[i] == l)
				goto found;
	return;
found:
	g->errors++;
	if (sv_due(&g->warned_err, now, WARN_EVERY)) {
		sv_warn("accept: %s: not accepting connections for %d ms (%lu failure%s since the "
			"last report; %zu connections open, %s %zu)",
		    strerror(err), LGUARD_BACKOFF_MS, g->errors, g->errors == 1 ? "" : "s", g->open,
		    g->what, g->max);
		g->errors = 0;
	}
	g->backoff = 1;
	event_add(g->timer, &t);
	update(g, "accept_error");
}

int
lguard_new(struct event_base *base, size_t max_conns, const char *what,
    void (*on_pause)(void *arg, const char *reason), void *arg, struct lguard **out)
{
	struct lguard *g;

	*out = NULL;
	if (max_conns == 0)
		return sv_seterr(SV_EINVAL, "lguard: max_conns is 0");
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return SV_ENOMEM;
	if ((g->timer = evtimer_new(base, on_timer, g)) == NULL) {
		free(g);
		return SV_ENOMEM;
	}
	g->base = base;
	g->max = max_conns;
	g->what = what;
	g->enabled = 1;
	g->warned_err = g->warned_cap = -1;
	g->on_pause = on_pause;
	g->arg = arg;
	g->next = guards;
	guards = g;
	*out = g;
	return 0;
}

void
lguard_free(struct lguard *g)
{
	struct lguard **p;

	if (g == NULL)
		return;
	for (p = &guards; *p != NULL; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	event_free(g->timer);
	free(g);
}

int
lguard_add(struct lguard *g, struct evconnlistener *l)
{
	if (g->nls == LGUARD_LISTENERS_MAX)
		return sv_seterr(SV_EINVAL, "lguard: more than %d listeners", LGUARD_LISTENERS_MAX);
	g->ls[g->nls++] = l;
	evconnlistener_set_error_cb(l, on_accept_error);
	if (!g->enabled)
		evconnlistener_disable(l);
	return 0;
}

void
lguard_opened(struct lguard *g)
{
	g->open++;
	if (g->open < g->max)
		return;
	if (sv_due(&g->warned_cap, sv_mono_now(), WARN_EVERY))
		sv_warn("%zu connections open (%s): new ones wait in the listen queue", g->open,
		    g->what);
	update(g, "max_connections");
}

void
lguard_closed(struct lguard *g)
{
	if (g->open > 0)
		g->open--;
	update(g, "max_connections");
}

size_t
lguard_open(const struct lguard *g)
{
	return g->open;
}

int
lguard_accepting(const struct lguard *g)
{
	return g->enabled;
}

int
lguard_fit_nofile(size_t *max, size_t reserve)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)*max + (rlim_t)reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return sv_seterr(SV_EIO, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return sv_seterr(SV_EIO, "setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		*max = rl.rlim_cur > reserve ? (size_t)(rl.rlim_cur - reserve) : 1;
		return 1;
	}
	return 0;
}
