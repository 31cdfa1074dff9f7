/*
 * lguard: keeps a server's listening sockets from taking more connections
 * than it can hold, and from spinning when accept() fails.
 *
 * libevent's listener retries a failed accept() at once: out of file
 * descriptors (EMFILE), the listening socket stays readable and the process
 * loops at full CPU, logging every failure, until a connection closes.  A
 * guard disables its listeners for a second after such a failure (one
 * warning a minute), and whenever max connections are open; pending
 * connections then wait in the kernel's listen queue, as with nginx's
 * worker_connections.
 */
#ifndef SV_LGUARD_H
#define SV_LGUARD_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/listener.h>

#define LGUARD_LISTENERS_MAX 4
#define LGUARD_BACKOFF_MS    1000

struct lguard;

/*
 * what names the cap in the log ("limits.max_connections").  on_pause(arg,
 * reason) is called each time the guard stops accepting: reason
 * "max_connections" or "accept_error".  May be NULL.
 */
int lguard_new(struct event_base *base, size_t max_conns, const char *what,
    void (*on_pause)(void *arg, const char *reason), void *arg, struct lguard **out);
/* Free the guard (its listeners are left as they are).  NULL is fine. */
void lguard_free(struct lguard *g);

/* Watch l (at most LGUARD_LISTENERS_MAX): sets l's error callback. */
int lguard_add(struct lguard *g, struct evconnlistener *l);

/* A connection was accepted / has closed. */
void lguard_opened(struct lguard *g);
void lguard_closed(struct lguard *g);

/* Connections open now; whether the listeners are accepting (1) or paused (0). */
size_t lguard_open(const struct lguard *g);
int lguard_accepting(const struct lguard *g);

/*
 * Make room for max connections plus reserve other descriptors: raise the
 * soft RLIMIT_NOFILE up to the hard limit if needed, else lower *max to
 * what fits (at least 1).  1 if *max was lowered, 0 if not, <0 on error.
 */
int lguard_fit_nofile(size_t *max, size_t reserve);

#endif
