/* job: see job.h. */
#include <pthread.h>
#include <stdlib.h>

#include "job.h"
#include "sv_err.h"

enum { IDLE, ASKED, DONE, QUIT };

struct sv_job {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int (*fn)(void *arg);
	void *arg;
	int state; /* IDLE, ASKED, DONE, QUIT */
	int result;
};

static void *
job_main(void *p)
{
	struct sv_job *j = p;
	int r;

	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (j->state != ASKED && j->state != QUIT)
			pthread_cond_wait(&j->cv, &j->mu);
		if (j->state == QUIT)
			break;
		pthread_mutex_unlock(&j->mu);
		r = j->fn(j->arg);
		pthread_mutex_lock(&j->mu);
		j->result = r;
		j->state = DONE;
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int
sv_job_start(int (*fn)(void *arg), void *arg, struct sv_job **out)
{
	struct sv_job *j = calloc(1, sizeof(*j));

	*out = NULL;
	if (j == NULL)
		return sv_seterr(SV_ENOMEM, "job thread: out of memory");
	j->fn = fn;
	j->arg = arg;
	if (pthread_mutex_init(&j->mu, NULL) != 0) {
		free(j);
		return sv_seterr(SV_ENOMEM, "job thread: cannot make a mutex");
	}
	if (pthread_cond_init(&j->cv, NULL) != 0) {
		pthread_mutex_destroy(&j->mu);
		free(j);
		return sv_seterr(SV_ENOMEM, "job thread: cannot make a condition variable");
	}
	if (pthread_create(&j->th, NULL, job_main, j) != 0) {
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		free(j);
		return sv_seterr(SV_ENOMEM, "job thread: cannot start it");
	}
	*out = j;
	return 0;
}

void
sv_job_ask(struct sv_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->state = ASKED;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

int
sv_job_take(struct sv_job *j, int wait, int *result)
{
	int r = -1;

	pthread_mutex_lock(&j->mu);
	while (wait && j->state == ASKED)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->state == ASKED) {
		r = 1;
	} else if (j->state == DONE) {
		*result = j->result;
		j->state = IDLE;
		r = 0;
	}
	pthread_mutex_unlock(&j->mu);
	return r;
}

void
sv_job_stop(struct sv_job *j)
{
	int ignored;

	if (j == NULL)
		return;
	sv_job_take(j, 1, &ignored);
	pthread_mutex_lock(&j->mu);
	j->state = QUIT;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	pthread_join(j->th, NULL);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}
