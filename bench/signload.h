/*
 * bench/signload: what the load generator's two engines share (the options,
 * each client's tally, the request body, counting a bad answer).
 */
#ifndef SV_BENCH_SIGNLOAD_H
#define SV_BENCH_SIGNLOAD_H

#include <stddef.h>

#include "lat.h"

#define SL_CLIENTS    256	  /* --clients limit */
#define SL_THREADS    16	  /* --threads limit (libevent engine) */
#define SL_IDS	      64	  /* --cert/--key pairs */
#define SL_BODY_MAX   (64 * 1024) /* answer bytes kept per request */
#define SL_PREFIX_MAX 64
#define SL_SHOW_ERRS  3	  /* errors shown per client */
#define SL_GIVE_UP    100 /* errors after which a client stops */

enum sl_engine { SL_LIBEVENT, SL_CURL };

struct opts {
	const char *url, *cacert, *acme_url, *payload_json, *prefix;
	const char *cert[SL_IDS], *key[SL_IDS];
	int ncert, nkey, clients, threads;
	enum sl_engine engine;
	double seconds, warmup;
	char *payload_b64;
};

/* One client's results. */
struct tally {
	struct lat lat; /* microseconds, one per request in the window */
	unsigned long ok, errors, shown;
	long connects;
};

/* The request body of client idx's request seq, with a fresh nonce; caller
 * frees.  NULL if out of memory. */
char *sl_make_body(const struct opts *o, int idx, unsigned long seq);

/* Count a failed request and (the first few times) show why: what, plus the
 * answer's body when there is one. */
void sl_bad(struct tally *t, int idx, const char *what, const char *body, size_t blen);

/* Whether an answer is the success the bench expects: HTTP 200 carrying a JWS. */
int sl_good(long status, const char *body, size_t blen);

/* Run the libevent engine: o->clients connections over o->threads event loops;
 * t has o->clients entries.  0, or -1 if it could not be set up (said why). */
int sl_event_run(const struct opts *o, double t_start, double t_end, struct tally *t);

#endif
