/*
 * vault/restarts.h: the supervisor restarts its children at most RESTART_MAX
 * times in any RESTART_WINDOW seconds.  The window slides: a burst is caught
 * wherever it falls, even just after an older failure would have started a
 * fixed window, and failures spread out never add up to a stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "restarts.h"

/* RESTART_MAX failures a second apart are restarted; the next one is not. */
static void
test_burst(void **state)
{
	struct restarts r = { 0 };

	(void)state;
	for (int i = 0; i < RESTART_MAX; i++)
		assert_true(restarts_allow(&r, 1000.0 + i));
	assert_false(restarts_allow(&r, 1000.0 + RESTART_MAX));
}

/* The window is RESTART_WINDOW seconds long: a (RESTART_MAX + 1)th failure
 * just past it is restarted, one just inside it is not. */
static void
test_edges(void **state)
{
	struct restarts in = { 0 }, out = { 0 };

	(void)state;
	for (int i = 0; i < RESTART_MAX; i++) {
		assert_true(restarts_allow(&in, 5.0 + i * 0.5));
		assert_true(restarts_allow(&out, 5.0 + i * 0.5));
	}
	assert_false(restarts_allow(&in, 5.0 + RESTART_WINDOW));
	assert_true(restarts_allow(&out, 5.0 + RESTART_WINDOW + 0.001));
}

/* A burst that straddles where a fixed window would have restarted its
 * count: one failure at t=0, another at 50, then a burst from 61.  A window
 * fixed at the first failure resets at 61 and allows the burst RESTART_MAX
 * restarts; the sliding one sees RESTART_MAX + 1 failures from 50 on. */
static void
test_slides(void **state)
{
	struct restarts r = { 0 };
	double t = 61;

	(void)state;
	assert_true(restarts_allow(&r, 0));
	assert_true(restarts_allow(&r, 50));
	for (int i = 0; i < RESTART_MAX - 1; i++)
		assert_true(restarts_allow(&r, t++)); /* 0 .. 64: wider than the window */
	assert_false(restarts_allow(&r, t));	      /* 50 .. 65 */
}

/* Failures spread out, RESTART_MAX + 1 of them always wider than the
 * window, are restarted for ever (well past the ring's wrap-around). */
static void
test_spread(void **state)
{
	struct restarts r = { 0 };
	double every = (double)RESTART_WINDOW / RESTART_MAX + 0.5;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_true(restarts_allow(&r, 7.0 + i * every));
	/* And after a quiet minute, a burst is still caught at its own
	 * (RESTART_MAX + 1)th failure. */
	double t = 7.0 + 999 * every + RESTART_WINDOW + 1;
	for (int i = 0; i < RESTART_MAX; i++)
		assert_true(restarts_allow(&r, t + i));
	assert_false(restarts_allow(&r, t + RESTART_MAX));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_slides),
		cmocka_unit_test(test_spread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
