/*
 * bench/signload's libevent engine: each of --threads event loops drives its
 * share of the --clients connections with libevent's HTTP client over
 * OpenSSL bufferevents (mutual TLS, HTTP/1.1 keep-alive, TCP_NODELAY).  A
 * client sends its next request from the previous answer's callback, so each
 * connection has exactly one request in flight, as with the libcurl engine,
 * but without a thread per client: the load generator shares the machine's
 * cores with the vault it measures, and this engine takes less of them.
 *
 * An HTTP answer other than the expected one is counted and the client goes
 * on; a transport error (no answer at all) is counted and ends that client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "evbase.h"
#include "signload.h"

struct loop;

struct ev_client {
	struct loop *lp;
	struct tally *t;
	int idx;
	SSL_CTX *ctx; /* the client's identity (shared between clients) */
	struct evhttp_connection *con;
	unsigned long seq;
	double t0;
	int nodelay, done;
};

struct loop {
	const struct opts *o;
	struct event_base *base;
	const char *host, *path;
	int port, active, failed;
	double t_start, t_end;
	struct ev_client *cl[SL_CLIENTS];
	int n;
};

static void send_next(struct ev_client *c);

static void
client_done(struct ev_client *c)
{
	if (c->done)
		return;
	c->done = 1;
	if (--c->lp->active == 0)
		event_base_loopbreak(c->lp->base);
}

/* The answer to c's request (req NULL: no answer, the connection failed). */
static void
on_answer(struct evhttp_request *req, void *arg)
{
	struct ev_client *c = arg;
	struct loop *lp = c->lp;
	double t1 = lat_now();
	struct evbuffer *in;
	char what[64], *body = NULL;
	size_t blen = 0;
	long status;

	if (req == NULL || (status = evhttp_request_get_response_code(req)) == 0) {
		sl_bad(c->t, c->idx, "no answer (connection failed)", NULL, 0);
		client_done(c);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	blen = evbuffer_get_length(in);
	if (blen < SL_BODY_MAX)
		body = (char *)evbuffer_pullup(in, -1);
	if (body == NULL || !sl_good(status, body, blen)) {
		snprintf(what, sizeof(what), "HTTP %ld%s", status,
		    blen >= SL_BODY_MAX ? " (answer too long)" : "");
		sl_bad(c->t, c->idx, what, body, body ? blen : 0);
	} else if (c->t0 >= lp->t_start && t1 <= lp->t_end) {
		c->t->ok++;
		if (lat_add(&c->t->lat, (t1 - c->t0) * 1e6) != 0)
			sl_bad(c->t, c->idx, "out of memory", NULL, 0);
	}
	send_next(c);
}

/* Nagle off on the client's socket, which exists once the first request has
 * started connecting. */
static void
set_nodelay(struct ev_client *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->con);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
		c->nodelay = 1;
}

static void
send_next(struct ev_client *c)
{
	struct loop *lp = c->lp;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char *body;

	if (lat_now() >= lp->t_end || c->t->errors >= SL_GIVE_UP) {
		client_done(c);
		return;
	}
	body = sl_make_body(lp->o, c->idx, c->seq++);
	req = body ? evhttp_request_new(on_answer, c) : NULL;
	if (req == NULL) {
		free(body);
		sl_bad(c->t, c->idx, "out of memory", NULL, 0);
		client_done(c);
		return;
	}
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", lp->host);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	free(body);
	c->t0 = lat_now();
	if (evhttp_make_request(c->con, req, EVHTTP_REQ_POST, lp->path) != 0) {
		/* evhttp_make_request() freed req */
		sl_bad(c->t, c->idx, "cannot send a request", NULL, 0);
		client_done(c);
		return;
	}
	/* evhttp queues the head and the body as two chains, which would leave
	 * as two TLS records and two TCP segments; make them one, as libcurl
	 * sends a small POST (it puts the body in the head's buffer). */
	evbuffer_pullup(bufferevent_get_output(evhttp_connection_get_bufferevent(c->con)), -1);
	if (!c->nodelay)
		set_nodelay(c);
}

/* One connection: a TLS bufferevent that checks the vault's certificate
 * against the CA file and the URL's host, under libevent's HTTP client. */
static int
client_start(struct ev_client *c)
{
	struct loop *lp = c->lp;
	unsigned char ip[16];
	struct bufferevent *bev;
	SSL *ssl = SSL_new(c->ctx);
	int isip = inet_pton(AF_INET, lp->host, ip) == 1 || inet_pton(AF_INET6, lp->host, ip) == 1;

	if (ssl == NULL ||
	    (isip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), lp->host)
		  : SSL_set1_host(ssl, lp->host)) != 1 ||
	    (!isip && SSL_set_tlsext_host_name(ssl, lp->host) != 1)) {
		SSL_free(ssl);
		return -1;
	}
	bev = bufferevent_openssl_socket_new(
	    lp->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	c->con = evhttp_connection_base_bufferevent_new(
	    lp->base, NULL, bev, lp->host, (ev_uint16_t)lp->port);
	if (c->con == NULL) {
		bufferevent_free(bev);
		return -1;
	}
	evhttp_connection_set_timeout(c->con, 30);
	evhttp_connection_set_max_body_size(c->con, SL_BODY_MAX);
	c->t->connects = 1;
	lp->active++;
	send_next(c);
	return 0;
}

static void *
loop_run(void *arg)
{
	struct loop *lp = arg;
	int k;

	for (k = 0; k < lp->n; k++)
		if (client_start(lp->cl[k]) != 0) {
			fprintf(stderr, "signload: cannot set up client %d's connection\n",
			    lp->cl[k]->idx);
			lp->failed = 1;
			break;
		}
	if (!lp->failed && lp->active > 0)
		event_base_dispatch(lp->base);
	for (k = 0; k < lp->n; k++)
		if (lp->cl[k]->con != NULL)
			evhttp_connection_free(lp->cl[k]->con);
	return NULL;
}

static SSL_CTX *
make_ctx(const struct opts *o, int id)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, o->cacert, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, o->cert[id]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->key[id], SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		unsigned long e = ERR_get_error();

		fprintf(stderr, "signload: TLS set-up with %s / %s: %s\n", o->cert[id], o->key[id],
		    e ? ERR_reason_error_string(e) : "out of memory");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

int
sl_event_run(const struct opts *o, double t_start, double t_end, struct tally *t)
{
	struct evhttp_uri *uri = evhttp_uri_parse(o->url);
	SSL_CTX *ctx[SL_IDS] = { NULL };
	struct loop lps[SL_THREADS];
	struct ev_client *cl = calloc((size_t)o->clients, sizeof(*cl));
	pthread_t th[SL_THREADS];
	int k, nth = o->threads < o->clients ? o->threads : o->clients, started = 0, r = -1;
	const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;

	memset(lps, 0, sizeof(lps));
	if (cl == NULL || uri == NULL || scheme == NULL || strcmp(scheme, "https") != 0 ||
	    evhttp_uri_get_host(uri) == NULL) {
		fprintf(stderr, "signload: --url must be an https:// URL (%s)\n", o->url);
		goto out;
	}
	for (k = 0; k < o->ncert; k++)
		if ((ctx[k] = make_ctx(o, k)) == NULL)
			goto out;
	for (k = 0; k < nth; k++) {
		lps[k].o = o;
		lps[k].host = evhttp_uri_get_host(uri);
		lps[k].port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 443;
		lps[k].path = evhttp_uri_get_path(uri) && *evhttp_uri_get_path(uri)
		    ? evhttp_uri_get_path(uri)
		    : "/";
		lps[k].t_start = t_start;
		lps[k].t_end = t_end;
		if ((lps[k].base = sv_event_base_new()) == NULL) {
			fprintf(stderr, "signload: cannot create an event loop\n");
			goto out;
		}
	}
	for (k = 0; k < o->clients; k++) {
		struct loop *lp = &lps[k % nth];

		cl[k].lp = lp;
		cl[k].t = &t[k];
		cl[k].idx = k;
		cl[k].ctx = ctx[k % o->ncert];
		lp->cl[lp->n++] = &cl[k];
	}
	for (k = 0; k < nth; k++) {
		if (pthread_create(&th[k], NULL, loop_run, &lps[k]) != 0)
			break;
		started++;
	}
	for (k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	r = started == nth ? 0 : -1;
	for (k = 0; k < nth; k++)
		if (lps[k].failed)
			r = -1;
out:
	for (k = 0; k < nth; k++)
		if (lps[k].base != NULL)
			event_base_free(lps[k].base);
	for (k = 0; k < SL_IDS; k++)
		SSL_CTX_free(ctx[k]);
	if (uri != NULL)
		evhttp_uri_free(uri);
	free(cl);
	return r;
}
