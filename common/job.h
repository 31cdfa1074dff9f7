/*
 * job: a thread that runs one job at a time for the thread that owns it, so
 * the owner can work on while it runs (the audit log's fdatasync, the key
 * process's nonce writes).  The owner asks, then takes the result, waiting
 * or not; one job is in flight at most.  The job function gets its argument
 * and nothing else: the owner must not touch what the job uses until it has
 * taken the result (taking it orders the job's writes before the owner's
 * reads).
 */
#ifndef SV_JOB_H
#define SV_JOB_H

struct sv_job;

/* A thread that runs fn(arg) once per sv_job_ask().  0, or SV_ENOMEM (no thread). */
int sv_job_start(int (*fn)(void *arg), void *arg, struct sv_job **out);

/* Run the job on the thread.  Only when no job is in flight (taken, or never asked). */
void sv_job_ask(struct sv_job *j);

/*
 * The result of the job in flight, into *result: waiting for it if wait.
 * Returns 0 when it was taken, 1 while the job still runs (only if !wait),
 * -1 if no job was in flight.
 */
int sv_job_take(struct sv_job *j, int wait, int *result);

/* Wait for a job in flight (its result is dropped), end the thread.  NULL ok. */
void sv_job_stop(struct sv_job *j);

#endif
