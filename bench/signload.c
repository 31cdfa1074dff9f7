/*
 * bench/signload: load generator for vaultd's signing endpoint (used by
 * bench/vaultd_sign.sh).  N clients, each one keep-alive mutual-TLS
 * connection with one request in flight, POST {"url", "nonce", "payload"} to
 * the sign URL as fast as the answers come back: after --warmup W seconds it
 * records the latency of every request that starts and ends inside the next
 * --seconds S, then prints the requests per second, p50 and p99 latency, its
 * own CPU time, and a "RESULT key=value ..." line for scripts.  Every answer
 * must be HTTP 200 with a JWS in it; any other answer or transport error is
 * counted, the first few are shown, and the exit status is 1 if there was any.
 *
 * Two engines: libevent (default; sl_event.c: libevent's HTTP client over
 * OpenSSL bufferevents, every connection on --threads event loops) and curl
 * (here: a thread and a libcurl easy handle per client).  The load generator
 * shares the machine with the vault it measures; the libevent engine takes
 * less CPU per request.
 *
 * Nonces are PREFIX-THREAD-COUNTER (base64url characters only), unique per
 * run as long as PREFIX is: the vault signs each nonce at most once.  Client
 * i uses the i-th --cert/--key pair (modulo their number), so several
 * shadows can share the load (each has its own rate limit).
 *
 * It touches only the files named on the command line (read by OpenSSL or
 * libcurl) and the network; nothing is written.
 *
 * usage: signload --url SIGN_URL --cacert F --cert F --key F [--cert F --key F ...]
 *                 --acme-url URL --payload JSON [--clients N] [--seconds S]
 *                 [--warmup W] [--nonce-prefix P] [--engine libevent|curl]
 *                 [--threads T]
 */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "b64.h"
#include "log.h"
#include "lat.h"
#include "signload.h"
#include "sv_err.h"

struct client {
	const struct opts *o;
	int idx;
	CURL *c;
	double t_start, t_end; /* measurement window (absolute) */
	char body[SL_BODY_MAX];
	size_t blen;
	int truncated;
	struct tally *t;
	char cerr[CURL_ERROR_SIZE];
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct client *cl = arg;
	size_t len = size * n, room = sizeof(cl->body) - 1 - cl->blen;

	if (len > room) {
		cl->truncated = 1;
		len = room;
	}
	memcpy(cl->body + cl->blen, p, len);
	cl->blen += len;
	cl->body[cl->blen] = '\0';
	return size * n;
}

/* One easy handle per client: mutual TLS, JSON, HTTP/1.1 keep-alive. */
static int
client_setup(struct client *cl, struct curl_slist *hdrs)
{
	const struct opts *o = cl->o;
	int id = cl->idx % o->ncert;

	if ((cl->c = curl_easy_init()) == NULL)
		return -1;
	if (curl_easy_setopt(cl->c, CURLOPT_URL, o->url) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_CAINFO, o->cacert) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_SSLCERT, o->cert[id]) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_SSLKEY, o->key[id]) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) !=
		CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_TIMEOUT, 30L) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_ERRORBUFFER, cl->cerr) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(cl->c, CURLOPT_WRITEDATA, cl) != CURLE_OK)
		return -1;
	return 0;
}

char *
sl_make_body(const struct opts *o, int idx, unsigned long seq)
{
	char nonce[SL_PREFIX_MAX + 48];
	json_t *j;
	char *s;

	snprintf(nonce, sizeof(nonce), "%s-%d-%lu", o->prefix, idx, seq);
	j = json_pack(
	    "{s:s, s:s, s:s}", "url", o->acme_url, "nonce", nonce, "payload", o->payload_b64);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

void
sl_bad(struct tally *t, int idx, const char *what, const char *body, size_t blen)
{
	char esc[512];

	t->errors++;
	if (t->shown++ >= SL_SHOW_ERRS)
		return;
	fprintf(stderr, "signload: client %d: %s%s%s\n", idx, what, blen ? ": " : "",
	    blen ? sv_escape(body, blen, esc, sizeof(esc)) : "");
}

int
sl_good(long status, const char *body, size_t blen)
{
	static const char sig[] = "\"signature\"";

	return status == 200 && memmem(body, blen, sig, sizeof(sig) - 1) != NULL;
}

/* Count and (the first few times) show a failed request. */
static void
bad_answer(struct client *cl, CURLcode cc, long status)
{
	char what[CURL_ERROR_SIZE + 128];

	if (cc != CURLE_OK)
		snprintf(what, sizeof(what), "%s: %s", curl_easy_strerror(cc), cl->cerr);
	else
		snprintf(what, sizeof(what), "HTTP %ld%s", status,
		    cl->truncated ? " (answer too long)" : "");
	sl_bad(cl->t, cl->idx, what, cl->body, cc == CURLE_OK ? cl->blen : 0);
}

/* One request; 0 if it was a 200 carrying a JWS, else -1 (counted). */
static int
one_request(struct client *cl, unsigned long seq)
{
	char *body = sl_make_body(cl->o, cl->idx, seq);
	long status = 0;
	CURLcode cc;

	if (body == NULL) {
		bad_answer(cl, CURLE_OUT_OF_MEMORY, 0);
		return -1;
	}
	cl->blen = 0;
	cl->truncated = 0;
	cl->body[0] = '\0';
	curl_easy_setopt(cl->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(cl->c, CURLOPT_POSTFIELDS, body);
	cc = curl_easy_perform(cl->c);
	free(body);
	if (cc == CURLE_OK)
		curl_easy_getinfo(cl->c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK || cl->truncated || !sl_good(status, cl->body, cl->blen)) {
		bad_answer(cl, cc, status);
		return -1;
	}
	return 0;
}

static void *
client_run(void *arg)
{
	struct client *cl = arg;
	unsigned long seq = 0;
	double t0, t1;
	long nc;

	while ((t0 = lat_now()) < cl->t_end && cl->t->errors < SL_GIVE_UP) {
		if (one_request(cl, seq++) != 0)
			continue;
		t1 = lat_now();
		if (curl_easy_getinfo(cl->c, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK)
			cl->t->connects += nc;
		if (t0 >= cl->t_start && t1 <= cl->t_end) {
			cl->t->ok++;
			if (lat_add(&cl->t->lat, (t1 - t0) * 1e6) != 0)
				bad_answer(cl, CURLE_OUT_OF_MEMORY, 0);
		}
	}
	return NULL;
}

/* Sum up the clients, print the summary; 0 if every answer was good. */
static int
report(const struct opts *o, const struct tally *t)
{
	unsigned long ok = 0, errors = 0;
	long connects = 0;
	struct lat all = { NULL, 0, 0 };
	double p50 = 0, p99 = 0, rate, cpu = 0;
	struct rusage ru;
	int k, oom = 0;

	for (k = 0; k < o->clients; k++) {
		ok += t[k].ok;
		errors += t[k].errors;
		connects += t[k].connects;
		oom |= lat_merge(&all, &t[k].lat);
	}
	if (oom) {
		lat_free(&all);
		fprintf(stderr, "signload: out of memory\n");
		return 1;
	}
	p50 = lat_pct(&all, 0.50);
	p99 = lat_pct(&all, 0.99);
	lat_free(&all);
	rate = (double)ok / o->seconds;
	printf("# signload: %d client%s, %.1f s after %.1f s warm-up, %s, %s engine\n", o->clients,
	    o->clients > 1 ? "s" : "", o->seconds, o->warmup, o->url,
	    o->engine == SL_CURL ? "libcurl" : "libevent");
	printf("%d client%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms (%lu ok in the window, %lu "
	       "errors, %ld TLS connections)\n",
	    o->clients, o->clients > 1 ? "s" : "", rate, p50 / 1e3, p99 / 1e3, ok, errors,
	    connects);
	/* This process's own CPU (warm-up included): it shares the machine with the vault. */
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("RESULT clients=%d n=%lu seconds=%.3f rate=%.1f p50_us=%.1f p99_us=%.1f errors=%lu "
	       "connects=%ld cpu_s=%.3f\n",
	    o->clients, ok, o->seconds, rate, p50, p99, errors, connects, cpu);
	if (errors > 0 || ok == 0)
		fprintf(stderr, "signload: FAILED: %lu bad answers, %lu good in the window\n",
		    errors, ok);
	return errors > 0 || ok == 0;
}

/* The libcurl engine: a thread and an easy handle per client. */
static int
run_curl(const struct opts *o, double start, struct tally *t)
{
	struct curl_slist *hdrs = NULL, *h2;
	struct client *cl = calloc((size_t)o->clients, sizeof(*cl));
	pthread_t th[SL_CLIENTS];
	int k, started = 0, r = -1;

	hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip for the (small) bodies. */
	h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (cl == NULL || h2 == NULL) {
		fprintf(stderr, "signload: out of memory\n");
		goto out;
	}
	hdrs = h2;
	for (k = 0; k < o->clients; k++) {
		cl[k].o = o;
		cl[k].idx = k;
		cl[k].t = &t[k];
		if (client_setup(&cl[k], hdrs) != 0) {
			fprintf(stderr, "signload: cannot set up a libcurl handle\n");
			goto out;
		}
	}
	for (k = 0; k < o->clients; k++) {
		cl[k].t_start = start;
		cl[k].t_end = start + o->seconds;
		if (pthread_create(&th[k], NULL, client_run, &cl[k]) != 0)
			break;
		started++;
	}
	for (k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	r = started == o->clients ? 0 : -1;
out:
	for (k = 0; cl != NULL && k < o->clients; k++)
		if (cl[k].c != NULL)
			curl_easy_cleanup(cl[k].c);
	free(cl);
	curl_slist_free_all(hdrs);
	return r;
}

static int
run_clients(const struct opts *o)
{
	struct tally *t = calloc((size_t)o->clients, sizeof(*t));
	double start = lat_now() + o->warmup;
	int k, r = 1;

	if (t == NULL) {
		fprintf(stderr, "signload: out of memory\n");
		return 1;
	}
	if ((o->engine == SL_CURL ? run_curl(o, start, t)
				  : sl_event_run(o, start, start + o->seconds, t)) == 0)
		r = report(o, t);
	for (k = 0; k < o->clients; k++)
		lat_free(&t[k].lat);
	free(t);
	return r;
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: signload --url SIGN_URL --cacert F --cert F --key F [--cert F --key F ...]\n"
	    "                --acme-url URL --payload JSON [--clients N] [--seconds S]\n"
	    "                [--warmup W] [--nonce-prefix P] [--engine libevent|curl]\n"
	    "                [--threads T]\n");
	return 2;
}

static int
valid_prefix(const char *p)
{
	size_t n = strlen(p);

	return n > 0 && n <= SL_PREFIX_MAX &&
	    strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

static int
parse_opt(int ch, struct opts *o)
{
	switch (ch) {
	case 'u':
		o->url = optarg;
		break;
	case 'a':
		o->cacert = optarg;
		break;
	case 'c':
		if (o->ncert == SL_IDS)
			return usage();
		o->cert[o->ncert++] = optarg;
		break;
	case 'k':
		if (o->nkey == SL_IDS)
			return usage();
		o->key[o->nkey++] = optarg;
		break;
	case 'U':
		o->acme_url = optarg;
		break;
	case 'p':
		o->payload_json = optarg;
		break;
	case 'n':
		o->clients = atoi(optarg);
		break;
	case 's':
		o->seconds = atof(optarg);
		break;
	case 'w':
		o->warmup = atof(optarg);
		break;
	case 'x':
		o->prefix = optarg;
		break;
	case 'e':
		if (strcmp(optarg, "libevent") == 0)
			o->engine = SL_LIBEVENT;
		else if (strcmp(optarg, "curl") == 0)
			o->engine = SL_CURL;
		else
			return usage();
		break;
	case 't':
		o->threads = atoi(optarg);
		break;
	default:
		return usage();
	}
	return 0;
}

static int
parse_args(int argc, char **argv, struct opts *o, char *defprefix, size_t dn)
{
	static const struct option lopts[] = { { "url", required_argument, NULL, 'u' },
		{ "cacert", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
		{ "acme-url", required_argument, NULL, 'U' },
		{ "payload", required_argument, NULL, 'p' },
		{ "clients", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "nonce-prefix", required_argument, NULL, 'x' },
		{ "engine", required_argument, NULL, 'e' },
		{ "threads", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 } };
	int ch;

	memset(o, 0, sizeof(*o));
	o->clients = 1;
	o->seconds = 5;
	o->warmup = 0.5;
	o->threads = 1;
	o->engine = SL_LIBEVENT;
	snprintf(defprefix, dn, "sl%lx%lx", (unsigned long)getpid(), (unsigned long)time(NULL));
	o->prefix = defprefix;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1)
		if (parse_opt(ch, o) != 0)
			return 2;
	if (optind != argc || o->url == NULL || o->cacert == NULL || o->ncert == 0 ||
	    o->ncert != o->nkey || o->acme_url == NULL || o->payload_json == NULL)
		return usage();
	if (o->clients < 1 || o->clients > SL_CLIENTS || o->threads < 1 ||
	    o->threads > SL_THREADS || !(o->seconds > 0) || !(o->warmup >= 0) ||
	    !valid_prefix(o->prefix)) {
		fprintf(stderr,
		    "signload: --clients 1..%d, --threads 1..%d, --seconds > 0, --warmup >= 0, "
		    "--nonce-prefix 1..%d base64url characters\n",
		    SL_CLIENTS, SL_THREADS, SL_PREFIX_MAX);
		return 2;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	char defprefix[SL_PREFIX_MAX + 1];
	struct opts o;
	int r;

	if ((r = parse_args(argc, argv, &o, defprefix, sizeof(defprefix))) != 0)
		return r;
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    b64u_encode((const uint8_t *)o.payload_json, strlen(o.payload_json), &o.payload_b64) !=
		0) {
		fprintf(stderr, "signload: cannot initialise libsodium or libcurl\n");
		return 1;
	}
	r = run_clients(&o);
	free(o.payload_b64);
	curl_global_cleanup();
	return r;
}
