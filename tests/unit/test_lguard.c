/*
 * vault/lguard: a real libevent listener on 127.0.0.1 with real client
 * sockets.  The cap: at max connections the listener stops accepting (the
 * rest wait in the listen queue) and starts again when one closes.  Out of
 * descriptors (EMFILE, made by filling every free descriptor under a lowered
 * RLIMIT_NOFILE): one failed accept pauses the listener for the back-off
 * instead of libevent retrying it in a loop, and the waiting clients are
 * accepted once descriptors are free again.  The open-file limit is raised
 * or the cap lowered to fit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lguard.h"
#include "svtest.h"

#define CLIENTS 5

struct fx {
	struct event_base *base;
	struct evconnlistener *l;
	struct lguard *g;
	struct sockaddr_in addr;
	int accepted[CLIENTS + 1];
	int naccepted;
	int clients[CLIENTS];
	int pauses_cap, pauses_err;
};

static void
on_pause(void *arg, const char *reason)
{
	struct fx *f = arg;

	if (strcmp(reason, "max_connections") == 0)
		f->pauses_cap++;
	else if (strcmp(reason, "accept_error") == 0)
		f->pauses_err++;
	else
		fail_msg("unknown pause reason %s", reason);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct fx *f = arg;

	assert_true(f->naccepted < CLIENTS);
	f->accepted[f->naccepted++] = fd;
	lguard_opened(f->g);
}

/* Count the callbacks of the listener's default error path: a guard must replace it. */
static int spins;

static void
count_error(struct evconnlistener *l, void *arg)
{
	spins++;
}

static void
run_for(struct fx *f, int ms)
{
	struct timeval t = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(f->base, &t);
	event_base_dispatch(f->base);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	socklen_t n = sizeof(f->addr);

	assert_non_null(f);
	assert_non_null(f->base = event_base_new());
	f->addr.sin_family = AF_INET;
	f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->l = evconnlistener_new_bind(f->base, on_accept, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&f->addr,
	    sizeof(f->addr));
	assert_non_null(f->l);
	evconnlistener_set_error_cb(f->l, count_error);
	assert_int_equal(
	    getsockname(evconnlistener_get_fd(f->l), (struct sockaddr *)&f->addr, &n), 0);
	spins = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int i;

	for (i = 0; i < f->naccepted; i++)
		close(f->accepted[i]);
	for (i = 0; i < CLIENTS; i++)
		if (f->clients[i] > 0)
			close(f->clients[i]);
	lguard_free(f->g);
	evconnlistener_free(f->l);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* CLIENTS connections, completed by the kernel (the listen queue) before any accept. */
static void
connect_all(struct fx *f)
{
	int i;

	for (i = 0; i < CLIENTS; i++) {
		assert_true((f->clients[i] = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(
		    connect(f->clients[i], (struct sockaddr *)&f->addr, sizeof(f->addr)), 0);
	}
}

static void
test_cap(void **state)
{
	struct fx *f = *state;

	assert_ok(lguard_new(f->base, 3, "test cap", on_pause, f, &f->g));
	assert_ok(lguard_add(f->g, f->l));
	connect_all(f);
	run_for(f, 200);
	assert_int_equal(f->naccepted, 3);
	assert_int_equal(lguard_open(f->g), 3);
	assert_int_equal(lguard_accepting(f->g), 0);
	assert_int_equal(f->pauses_cap, 1);
	/* One closes: one more comes in, and the cap holds again. */
	close(f->accepted[0]);
	lguard_closed(f->g);
	assert_int_equal(lguard_accepting(f->g), 1);
	run_for(f, 200);
	assert_int_equal(f->naccepted, 4);
	assert_int_equal(lguard_accepting(f->g), 0);
	assert_int_equal(f->pauses_cap, 2);
	assert_int_equal(f->pauses_err, 0);
	assert_int_equal(spins, 0);
}

/* Take every free descriptor under a soft limit of (highest in use + 1); returns how many. */
static int
fill_fds(int *held, int max, struct rlimit *saved)
{
	struct rlimit rl;
	int top = -1, fd, n = 0;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
	for (fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			top = fd;
	rl = *saved;
	rl.rlim_cur = (rlim_t)top + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < max && (fd = open("/dev/null", O_RDONLY)) >= 0)
		held[n++] = fd;
	assert_true(n < max);
	return n;
}

static void
test_accept_error(void **state)
{
	struct fx *f = *state;
	struct rlimit saved;
	int held[4096], n, i;

	assert_ok(lguard_new(f->base, 100, "test cap", on_pause, f, &f->g));
	assert_ok(lguard_add(f->g, f->l));
	connect_all(f);
	n = fill_fds(held, 4096, &saved);
	/* accept() fails with EMFILE: one pause for the back-off, no loop. */
	run_for(f, 300);
	assert_int_equal(f->naccepted, 0);
	assert_int_equal(f->pauses_err, 1);
	assert_int_equal(lguard_accepting(f->g), 0);
	assert_int_equal(spins, 0);
	/* Descriptors free again: after the back-off the waiting clients are accepted. */
	for (i = 0; i < n; i++)
		close(held[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	run_for(f, LGUARD_BACKOFF_MS + 800); /* slack for a busy machine */
	assert_int_equal(f->naccepted, CLIENTS);
	assert_int_equal(lguard_accepting(f->g), 1);
	assert_int_equal(f->pauses_err, 1);
	assert_int_equal(f->pauses_cap, 0);
}

/* The control: without a guard the same EMFILE makes libevent call back again and again. */
static void
test_unguarded_spins(void **state)
{
	struct fx *f = *state;
	struct rlimit saved;
	int held[4096], n, i;

	connect_all(f);
	n = fill_fds(held, 4096, &saved);
	run_for(f, 100);
	for (i = 0; i < n; i++)
		close(held[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_true(spins > 100);
}

static void
test_fit_nofile(void **state)
{
	struct rlimit rl;
	size_t max;

	(void)state;
	/* A known hard limit (lowering it is always allowed; this test runs last). */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1000)
		rl.rlim_max = 1000;
	assert_true(rl.rlim_max > 200);
	rl.rlim_cur = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	/* Room under the hard limit: the soft limit goes up, the cap stays. */
	max = 150;
	assert_int_equal(lguard_fit_nofile(&max, 50), 0);
	assert_int_equal(max, 150);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(rl.rlim_cur, 200);
	/* Beyond the hard limit: the cap comes down to what fits. */
	max = (size_t)rl.rlim_max;
	assert_int_equal(lguard_fit_nofile(&max, 50), 1);
	assert_int_equal(max, (size_t)rl.rlim_max - 50);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(rl.rlim_cur, rl.rlim_max);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unguarded_spins, setup, teardown),
		cmocka_unit_test(test_fit_nofile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
