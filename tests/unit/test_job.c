/*
 * common/job: the one-job thread behind the audit log's sync and the key
 * process's nonce writer.  A job runs on the other thread; taking its result
 * without waiting says "still running" until it is done; its result and the
 * memory it wrote come back once; nothing in flight is -1; stop waits for a
 * job in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "job.h"

struct ctx {
	pthread_t caller;
	int ran_elsewhere, runs;
	int go; /* the job runs on once the test sets it (atomic) */
};

static int
gated_job(void *arg)
{
	struct ctx *c = arg;
	struct timespec ms = { 0, 1000 * 1000 };

	while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE))
		nanosleep(&ms, NULL);
	c->ran_elsewhere = !pthread_equal(c->caller, pthread_self());
	c->runs++;
	return 40 + c->runs;
}

static void
test_ask_take(void **state)
{
	struct ctx c = { pthread_self(), 0, 0, 0 };
	struct sv_job *j;
	int r = 0;

	assert_int_equal(sv_job_start(gated_job, &c, &j), 0);
	assert_int_equal(sv_job_take(j, 0, &r), -1); /* nothing asked */
	sv_job_ask(j);
	assert_int_equal(sv_job_take(j, 0, &r), 1); /* held at the gate */
	__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
	assert_int_equal(sv_job_take(j, 1, &r), 0);
	assert_int_equal(r, 41);
	assert_int_equal(c.ran_elsewhere, 1);
	assert_int_equal(sv_job_take(j, 1, &r), -1); /* taken once */
	sv_job_ask(j);
	assert_int_equal(sv_job_take(j, 1, &r), 0);
	assert_int_equal(r, 42);
	assert_int_equal(c.runs, 2);
	sv_job_stop(j);
}

/* stop waits for a job in flight: the gate opens from another thread later. */
static void *
open_later(void *arg)
{
	struct timespec t = { 0, 50 * 1000 * 1000 };

	nanosleep(&t, NULL);
	__atomic_store_n(&((struct ctx *)arg)->go, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
test_stop_waits(void **state)
{
	struct ctx c = { pthread_self(), 0, 0, 0 };
	struct sv_job *j;
	pthread_t t;

	assert_int_equal(sv_job_start(gated_job, &c, &j), 0);
	sv_job_ask(j);
	assert_int_equal(pthread_create(&t, NULL, open_later, &c), 0);
	sv_job_stop(j); /* returns only once the job has run */
	assert_int_equal(c.runs, 1);
	pthread_join(t, NULL);
	sv_job_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ask_take),
		cmocka_unit_test(test_stop_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
