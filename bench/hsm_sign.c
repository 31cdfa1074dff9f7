/*
 * bench/hsm_sign: signatures per second through hsm/ next to raw PKCS#11
 * C_SignInit + C_Sign on the same SoftHSM2 token, in the same run, with 1
 * and 2 threads, for ES256 and RS256.  Prints the ratio hsm/raw (target:
 * at least 0.9).  Both paths do the same work per signature: ES256 hashes
 * the message with SHA-256 in software, then CKM_ECDSA; RS256 is
 * CKM_SHA256_RSA_PKCS over the message.  The machine is shared and noisy, so
 * runs are interleaved and the median of several rounds is reported; only
 * the ratio means anything.
 *
 * usage: hsm_sign [-t SECONDS_PER_RUN] [-r ROUNDS]
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "hsm_int.h"
#include "sv_err.h"
#include "testtok.h"

#define MAX_THREADS 2
#define MAX_ROUNDS  15

static const uint8_t MSG[] =
    "eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoiYWJjIiwidXJsIjoiaHR0cHM6Ly9jYS9uZXctb3JkZXIifQ."
    "eyJpZGVudGlmaWVycyI6W3sidHlwZSI6ImRucyIsInZhbHVlIjoibWFzdGVyLnRlc3QifV19";

struct job {
	int raw;	     /* 1: raw PKCS#11, 0: hsm/ */
	struct hsm *h;	     /* hsm/ session (per thread) */
	struct hsm_key key;  /* per-thread copy (handle cache) */
	CK_FUNCTION_LIST *f; /* raw */
	CK_SESSION_HANDLE s; /* raw session (per thread) */
	double seconds;
	unsigned long count;
	int err;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
raw_sign(struct job *j, uint8_t *sig, CK_ULONG *sl)
{
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	const uint8_t *in = MSG;
	uint8_t dg[32];
	CK_ULONG inl = sizeof(MSG) - 1;

	if (j->key.type == HSM_EC_P256) {
		m.mechanism = CKM_ECDSA;
		crypto_hash_sha256(dg, MSG, sizeof(MSG) - 1);
		in = dg;
		inl = sizeof(dg);
	}
	if (j->f->C_SignInit(j->s, &m, j->key.priv) != CKR_OK)
		return -1;
	return j->f->C_Sign(j->s, (CK_BYTE_PTR)in, inl, sig, sl) == CKR_OK ? 0 : -1;
}

static void *
worker(void *arg)
{
	struct job *j = arg;
	uint8_t sig[HSM_SIG_MAX];
	double end = now() + j->seconds;
	CK_ULONG sl;
	size_t hl;

	j->count = 0;
	while (now() < end) {
		int k;

		for (k = 0; k < 16; k++) {
			if (j->raw) {
				sl = sizeof(sig);
				j->err |= raw_sign(j, sig, &sl);
			} else {
				hl = sizeof(sig);
				j->err |= hsm_sign(j->h, &j->key, MSG, sizeof(MSG) - 1, sig, &hl);
			}
			j->count++;
		}
	}
	return NULL;
}

/* One timed run: nthreads jobs of one kind; returns signatures per second. */
static double
run(struct job *jobs, int nthreads)
{
	pthread_t t[MAX_THREADS];
	unsigned long total = 0;
	double start = now(), el;
	int i;

	for (i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, &jobs[i]);
	for (i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		total += jobs[i].count;
		if (jobs[i].err) {
			fprintf(stderr, "hsm_sign: signing failed\n");
			exit(1);
		}
	}
	el = now() - start;
	return (double)total / el;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Raw sessions on the module hsm/ already loaded (dlopen gives the same copy). */
static CK_FUNCTION_LIST *
raw_module(void)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST *f = NULL;
	void *dl = dlopen(SV_SOFTHSM_MODULE, RTLD_NOW | RTLD_NOLOAD);

	if (dl == NULL)
		return NULL;
	*(void **)(&gfl) = dlsym(dl, "C_GetFunctionList");
	if (gfl == NULL || gfl(&f) != CKR_OK)
		return NULL;
	return f;
}

static void
bench_type(struct hsm *h, enum hsm_keytype type, double secs, int rounds)
{
	struct job hj[MAX_THREADS], rj[MAX_THREADS];
	double hv[MAX_ROUNDS], rv[MAX_ROUNDS];
	struct hsm_key key;
	CK_FUNCTION_LIST *f = raw_module();
	int n, i, r;

	if (f == NULL || hsm_key_create(h, type, "bench", 0, &key) != 0) {
		fprintf(stderr, "hsm_sign: setup failed: %s\n", sv_errmsg(SV_EHSM));
		exit(1);
	}
	for (n = 1; n <= MAX_THREADS; n++) {
		for (i = 0; i < n; i++) {
			memset(&hj[i], 0, sizeof(hj[i]));
			memset(&rj[i], 0, sizeof(rj[i]));
			hj[i].key = rj[i].key = key;
			hj[i].seconds = rj[i].seconds = secs;
			rj[i].raw = 1;
			rj[i].f = f;
			if (hsm_clone(h, &hj[i].h) != 0 ||
			    f->C_OpenSession(
				h->m->slot, CKF_SERIAL_SESSION, NULL, NULL, &rj[i].s) != CKR_OK) {
				fprintf(stderr, "hsm_sign: cannot open sessions\n");
				exit(1);
			}
		}
		for (r = 0; r < rounds; r++) { /* interleave: both see the same machine load */
			hv[r] = run(hj, n);
			rv[r] = run(rj, n);
		}
		double hm = median(hv, rounds), rm = median(rv, rounds);
		printf("%-6s %d thread%s  hsm/ %9.0f/s   raw C_Sign %9.0f/s   ratio %.3f  %s\n",
		    hsm_keytype_alg(type), n, n > 1 ? "s" : " ", hm, rm, hm / rm,
		    hm / rm >= 0.9 ? "(target >= 0.9 met)" : "(BELOW target 0.9)");
		for (i = 0; i < n; i++) {
			hsm_close(hj[i].h);
			f->C_CloseSession(rj[i].s);
		}
	}
}

int
main(int argc, char **argv)
{
	struct testtok tok;
	struct hsm *h;
	double secs = 1.0;
	int rounds = 5, ch;

	while ((ch = getopt(argc, argv, "t:r:")) != -1) {
		if (ch == 't')
			secs = atof(optarg);
		else if (ch == 'r')
			rounds = atoi(optarg);
		else {
			fprintf(stderr, "usage: hsm_sign [-t SECONDS_PER_RUN] [-r ROUNDS]\n");
			return 2;
		}
	}
	if (secs <= 0 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "hsm_sign: -t must be > 0 and -r 1..%d\n", MAX_ROUNDS);
		return 2;
	}
	if (sodium_init() < 0 || testtok_make(&tok, "bench") != 0 || hsm_open(&tok.cfg, &h) != 0) {
		fprintf(
		    stderr, "hsm_sign: cannot set up a SoftHSM2 token: %s\n", sv_errmsg(SV_EHSM));
		return 1;
	}
	printf("# hsm_sign: SoftHSM2 token keys, median of %d interleaved %.1f s runs\n", rounds,
	    secs);
	bench_type(h, HSM_EC_P256, secs, rounds);
	bench_type(h, HSM_RSA_2048, secs, rounds);
	hsm_close(h);
	testtok_free(&tok);
	return 0;
}
