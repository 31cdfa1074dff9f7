/*
 * bench/hsm_sign: signatures per second through hsm/ next to raw PKCS#11
 * C_SignInit + C_Sign on the same SoftHSM2 token, in the same run, with 1
 * and 2 threads, for ES256 and RS256.  Prints the ratio hsm/raw (target:
 * at least 0.9).  Both paths do the same work per signature: ES256 hashes
 * the message with SHA-256 in software, then CKM_ECDSA; RS256 is
 * CKM_SHA256_RSA_PKCS over the message.  The machine is shared and noisy, so
 * runs are interleaved and the median of several rounds is reported; only
 * the ratio means anything.  Without options it makes (and removes) its own
 * throw-away token.
 *
 * With --token, --pin-file and --key-label it instead measures ONE
 * configuration against an EXISTING token and key (a vault's account key,
 * or the same token served by `p11-kit server` through p11-kit-client.so):
 * --threads N threads, each with its own session, sign for --seconds S after
 * a --warmup W; it prints sig/s and the p50/p99 latency of one signature,
 * and a "RESULT key=value ..." line for scripts (bench/vaultd_sign.sh).  It
 * only signs: it never creates, changes or deletes objects on that token
 * (--path pinned signs, as vaultd does, from session copies of the key,
 * which die with its sessions).
 *
 * usage: hsm_sign [-t SECONDS_PER_RUN] [-r ROUNDS]
 *        hsm_sign --token LABEL --pin-file F --key-label L [--module PATH]
 *                 [--threads N] [--seconds S] [--warmup W] [--path raw|hsm|pinned]
 */
#include <dlfcn.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "hsm_int.h"
#include "lat.h"
#include "sv_err.h"
#include "testtok.h"

#define MAX_THREADS 2
#define MAX_ROUNDS  15
#define EXT_THREADS 16 /* --threads limit */

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

/* One signature of MSG, raw or through hsm/ as the job says; 0 or -1. */
static int
sign_one(struct job *j)
{
	uint8_t sig[HSM_SIG_MAX];
	CK_ULONG sl = sizeof(sig);
	size_t hl = sizeof(sig);

	if (j->raw)
		return raw_sign(j, sig, &sl);
	return hsm_sign(j->h, &j->key, MSG, sizeof(MSG) - 1, sig, &hl);
}

static void *
worker(void *arg)
{
	struct job *j = arg;
	double end = lat_now() + j->seconds;

	j->count = 0;
	while (lat_now() < end) {
		int k;

		for (k = 0; k < 16; k++) {
			j->err |= sign_one(j);
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
	double start = lat_now(), el;
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
	el = lat_now() - start;
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

/* ------------------------------------------------------------------ */
/* One configuration against an existing token and key (--token ...). */

/* --path: raw C_Sign, hsm_sign(), hsm_sign() with hsm_key_pin() (as vaultd signs). */
enum ext_path { PATH_RAW, PATH_HSM, PATH_PINNED, PATH_COUNT };
static const char *const PATH_NAME[PATH_COUNT] = { "raw", "hsm", "pinned" };

struct ext_opts {
	struct hsm_config cfg;
	const char *key_label;
	int threads;
	enum ext_path path;
	double seconds, warmup;
};

struct ext_job {
	struct job j;
	double t_start, t_end; /* measurement window (absolute) */
	struct lat lat;	       /* microseconds, one per request in the window */
};

static void *
ext_worker(void *arg)
{
	struct ext_job *e = arg;
	struct job *j = &e->j;
	double t0, t1;

	while ((t0 = lat_now()) < e->t_end) {
		j->err |= sign_one(j);
		t1 = lat_now();
		if (j->err)
			break;
		if (t0 >= e->t_start && t1 <= e->t_end) {
			j->count++;
			j->err |= lat_add(&e->lat, (t1 - t0) * 1e6);
		}
	}
	return NULL;
}

/* Sessions (raw) or hsm/ clones for every job; 0 or -1 with a message. */
static int
ext_prepare(struct hsm *h, const struct hsm_key *key, const struct ext_opts *o, struct ext_job *e)
{
	int i;

	for (i = 0; i < o->threads; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].j.key = *key;
		if (o->path == PATH_PINNED)
			hsm_key_pin(&e[i].j.key);
		e[i].j.raw = o->path == PATH_RAW;
		e[i].j.f = h->m->f;
		if (!e[i].j.raw ? hsm_clone(h, &e[i].j.h) != 0
				: h->m->f->C_OpenSession(h->m->slot, CKF_SERIAL_SESSION, NULL, NULL,
				      &e[i].j.s) != CKR_OK) {
			fprintf(stderr, "hsm_sign: cannot open session %d: %s\n", i + 1,
			    !e[i].j.raw ? sv_errmsg(SV_EHSM) : "C_OpenSession failed");
			return -1;
		}
	}
	return 0;
}

/* Run the jobs, print the human line and the RESULT line; 0 or 1. */
static int
ext_run(struct ext_job *e, const struct ext_opts *o, const struct hsm_key *key)
{
	pthread_t t[EXT_THREADS];
	unsigned long total = 0;
	struct lat all = { NULL, 0, 0 };
	static const char *const what[PATH_COUNT] = { "raw C_Sign", "hsm_sign()",
		"hsm_sign(), pinned key" };
	double p50, p99, start = lat_now() + o->warmup;
	int k, err = 0;

	for (k = 0; k < o->threads; k++) {
		e[k].t_start = start;
		e[k].t_end = start + o->seconds;
		pthread_create(&t[k], NULL, ext_worker, &e[k]);
	}
	for (k = 0; k < o->threads; k++) {
		pthread_join(t[k], NULL);
		total += e[k].j.count;
		err |= e[k].j.err | lat_merge(&all, &e[k].lat);
	}
	if (err || total == 0) {
		lat_free(&all);
		fprintf(stderr, "hsm_sign: signing with \"%s\" failed%s\n", o->key_label,
		    total == 0 && !err ? " (no signature in the window)" : "");
		return 1;
	}
	p50 = lat_pct(&all, 0.50);
	p99 = lat_pct(&all, 0.99);
	lat_free(&all);
	printf("# hsm_sign: %s %s, key \"%s\", token \"%s\", module %s\n", what[o->path],
	    hsm_keytype_alg(key->type), o->key_label, o->cfg.token, o->cfg.module);
	printf("%d thread%s (one session each): %.0f sig/s, p50 %.1f us, p99 %.1f us "
	       "(%lu signatures in %.1f s after %.1f s warm-up)\n",
	    o->threads, o->threads > 1 ? "s" : "", (double)total / o->seconds, p50, p99, total,
	    o->seconds, o->warmup);
	printf("RESULT path=%s alg=%s threads=%d n=%lu seconds=%.3f rate=%.1f p50_us=%.1f "
	       "p99_us=%.1f\n",
	    PATH_NAME[o->path], hsm_keytype_alg(key->type), o->threads, total, o->seconds,
	    (double)total / o->seconds, p50, p99);
	return 0;
}

static int
ext_main(const struct ext_opts *o)
{
	struct ext_job e[EXT_THREADS];
	struct hsm_key key;
	struct hsm *h = NULL;
	int r = 1, err, i;

	memset(e, 0, sizeof(e));
	/* A remote module (p11-kit client) must not kill us on a lost connection. */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		fprintf(stderr, "hsm_sign: cannot initialise libsodium\n");
		goto out;
	}
	if ((err = hsm_open(&o->cfg, &h)) != 0 ||
	    (err = hsm_key_find_label(h, o->key_label, &key)) != 0) {
		fprintf(stderr, "hsm_sign: %s\n", sv_errmsg(err));
		goto out;
	}
	if (o->path == PATH_RAW && key.type != HSM_EC_P256 && key.type != HSM_RSA_2048 &&
	    key.type != HSM_RSA_3072 && key.type != HSM_RSA_4096) {
		fprintf(stderr,
		    "hsm_sign: raw path signs ec-p256 and rsa keys only; \"%s\" is %s "
		    "(use --path hsm)\n",
		    o->key_label, hsm_keytype_name(key.type));
		goto out;
	}
	if (ext_prepare(h, &key, o, e) == 0)
		r = ext_run(e, o, &key);
out:
	for (i = 0; i < EXT_THREADS; i++) {
		if (e[i].j.h != NULL)
			hsm_close(e[i].j.h);
		else if (e[i].j.s != 0 && h != NULL)
			h->m->f->C_CloseSession(e[i].j.s);
		lat_free(&e[i].lat);
	}
	hsm_close(h);
	return r;
}

/* ------------------------------------------------------------------ */

static int
usage(void)
{
	fprintf(stderr,
	    "usage: hsm_sign [-t SECONDS_PER_RUN] [-r ROUNDS]\n"
	    "       hsm_sign --token LABEL --pin-file F --key-label L [--module PATH]\n"
	    "                [--threads N] [--seconds S] [--warmup W] [--path raw|hsm|pinned]\n");
	return 2;
}

/* Long options (existing-token mode); 0, or 2 after a usage message. */
static int
ext_option(int ch, struct ext_opts *o)
{
	switch (ch) {
	case 'M':
		o->cfg.module = optarg;
		break;
	case 'T':
		o->cfg.token = optarg;
		break;
	case 'P':
		o->cfg.pin_file = optarg;
		break;
	case 'K':
		o->key_label = optarg;
		break;
	case 'N':
		o->threads = atoi(optarg);
		break;
	case 'S':
		o->seconds = atof(optarg);
		break;
	case 'W':
		o->warmup = atof(optarg);
		break;
	case 'A':
		for (o->path = 0; o->path < PATH_COUNT; o->path++)
			if (strcmp(optarg, PATH_NAME[o->path]) == 0)
				break;
		if (o->path == PATH_COUNT)
			return usage();
		break;
	default:
		return usage();
	}
	return 0;
}

static int
default_main(double secs, int rounds)
{
	struct testtok tok;
	struct hsm *h;

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

int
main(int argc, char **argv)
{
	static const struct option lopts[] = { { "module", required_argument, NULL, 'M' },
		{ "token", required_argument, NULL, 'T' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "key-label", required_argument, NULL, 'K' },
		{ "threads", required_argument, NULL, 'N' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "path", required_argument, NULL, 'A' }, { NULL, 0, NULL, 0 } };
	struct ext_opts o;
	double secs = 1.0;
	int rounds = 5, ch, ext = 0;

	memset(&o, 0, sizeof(o));
	o.cfg.module = SV_SOFTHSM_MODULE;
	o.threads = 1;
	o.seconds = 3;
	o.warmup = 0.5;
	while ((ch = getopt_long(argc, argv, "t:r:", lopts, NULL)) != -1) {
		if (ch == 't')
			secs = atof(optarg);
		else if (ch == 'r')
			rounds = atoi(optarg);
		else if (ext_option(ch, &o) != 0)
			return 2;
		else
			ext = 1;
	}
	if (optind != argc)
		return usage();
	if (!ext)
		return default_main(secs, rounds);
	if (o.cfg.token == NULL || o.cfg.pin_file == NULL || o.key_label == NULL || o.threads < 1 ||
	    o.threads > EXT_THREADS || !(o.seconds > 0) || !(o.warmup >= 0)) {
		fprintf(stderr,
		    "hsm_sign: --token, --pin-file and --key-label are all needed; --threads "
		    "1..%d, "
		    "--seconds > 0, --warmup >= 0\n",
		    EXT_THREADS);
		return 2;
	}
	return ext_main(&o);
}
