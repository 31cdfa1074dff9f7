/*
 * netproc: vaultd's network process.  Terminates TLS (OpenSSL through
 * libevent bufferevents) and HTTP (libevent's evhttp) on two listeners the
 * supervisor bound:
 *
 *   api     mutual TLS: a client certificate from the shadow CA is required
 *           and checked against the revoked serials during the handshake,
 *           before any HTTP is read.  Account information, signing, health,
 *           metrics (peer address allow-list).
 *   enroll  server TLS only: enrolment with a one-time token, and health.
 *
 * Each request is checked for shape and size and becomes one IPC message;
 * the key process decides.  netproc holds no PIN, no PKCS#11 session and no
 * database handle; after start-up it drops privileges and installs a
 * seccomp filter.  Revocations pushed by the key process also cut open
 * connections of the revoked certificates.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "bucket.h"
#include "ipc.h"
#include "lguard.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "np_tlskey.h"
#include "sandbox.h"
#include "sv_err.h"
#include "vaultd.h"

#define NP_BODY_MAX	  (128 * 1024) /* request bodies */
#define NP_HEADERS_MAX	  (16 * 1024)
#define NP_URL_MAX	  2048
#define NP_NONCE_MAX	  256
#define NP_PAYLOAD_B64MAX (88 * 1024) /* base64url of a 64 KiB payload */
#define NP_TOKEN_MAX	  128
#define NP_REVOKED_MAX	  100000
#define NP_FD_RESERVE	  64 /* descriptors besides connections (listeners, IPC, epoll) */
#define PROBLEM_BASE	  "tag:shadowvault.org,2026:problem:"

struct np_conn {
	struct np *np;
	SSL *ssl;
	struct bufferevent *bev;
	struct event *deadline; /* for a complete request: see deadline_arm() */
	struct np_conn *prev, *next;
};

struct np_pending {
	uint32_t id; /* 0: free slot */
	struct evhttp_request *req;
	const char *endpoint;
	double t0;
};

struct np {
	struct event_base *base;
	const struct vconf *cfg;
	SSL_CTX *mtls, *tls;
	struct evhttp *api, *enroll;
	struct bufferevent *key;
	struct metrics *m;
	struct event *ev_term;
	struct np_tlskey tlskey; /* the TLS key: a file, or signatures by the key process */
	char **revoked;		 /* sorted serials */
	size_t nrevoked;
	struct np_conn *conns;
	struct lguard *guard;	      /* limits.max_connections; no spinning when accept() fails */
	struct sv_bucket enroll_rate; /* limits.enroll_per_minute, for all clients together */
	struct np_pending *pend;
	size_t npend_max, npending;
	uint32_t next_id;
	int draining;
};

static int conn_idx = -1;

/* The connection a request came on (NULL if it is gone). */
static struct np_conn *
conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	return ssl ? SSL_get_ex_data(ssl, conn_idx) : NULL;
}

/*
 * From its accept (TLS handshake included) and again from each answer, a
 * client has limits.request_timeout seconds to deliver a complete request.
 * evhttp's own timeout starts again with every byte read: a client sending
 * a byte now and then would keep its connection, and a place among
 * limits.max_connections, for ever.
 */
static void
deadline_arm(struct np_conn *c, int on)
{
	struct timeval t;

	if (c == NULL)
		return;
	t.tv_sec = c->np->cfg->request_timeout;
	t.tv_usec = 0;
	if (on)
		evtimer_add(c->deadline, &t);
	else
		evtimer_del(c->deadline);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct np_conn *c = arg;
	evutil_socket_t s = c->bev ? bufferevent_getfd(c->bev) : -1;

	metrics_add(c->np->m, "shadowvault_request_deadline_total", 1, NULL);
	if (s >= 0)
		shutdown(s, SHUT_RDWR); /* evhttp sees the end and frees the connection */
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
is_revoked(struct np *np, const char *serial)
{
	const char *k = serial;

	return np->nrevoked > 0 &&
	    bsearch(&k, np->revoked, np->nrevoked, sizeof(char *), cmp_str) != NULL;
}

/* Serial of a certificate as lower-case hex (the key process uses the same form). */
static void
serial_hex(X509 *x, char *buf, size_t n)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	size_t i;

	snprintf(buf, n, "%s", hex ? hex : "");
	for (i = 0; buf[i]; i++)
		if (buf[i] >= 'A' && buf[i] <= 'F')
			buf[i] = (char)(buf[i] - 'A' + 'a');
	OPENSSL_free(hex);
	BN_free(bn);
}

/* ------------------------------------------------------------------ */
/* Answers */

static void
count(struct np *np, const char *endpoint, int status, double t0)
{
	char st[8];

	snprintf(st, sizeof(st), "%d", status);
	metrics_add(
	    np->m, "shadowvault_http_requests_total", 1, "endpoint", endpoint, "status", st, NULL);
	if (t0 > 0)
		metrics_observe(np->m, "shadowvault_http_request_seconds", metrics_now() - t0);
}

/*
 * evhttp puts the headers and the body into the connection's output as two
 * pieces, which the TLS layer would send as two records in two write()s:
 * make them one.  (The output is written later, from the event loop.)
 */
static void
send_reply(struct evhttp_request *req, int status, struct evbuffer *body)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec) : NULL;

	deadline_arm(conn_of(req), 1); /* for the next request on this connection */
	evhttp_send_reply(req, status, NULL, body);
	if (bev != NULL)
		evbuffer_pullup(bufferevent_get_output(bev), -1);
}

static void
reply(struct evhttp_request *req, int status, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (b != NULL)
		evbuffer_add(b, body, len);
	send_reply(req, status, b);
	if (b != NULL)
		evbuffer_free(b);
}

static void
reply_json(struct evhttp_request *req, int status, const char *ctype, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	reply(req, s ? status : 500, ctype, s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

static void
problem(struct np *np, struct evhttp_request *req, const char *endpoint, int status,
    const char *type, const char *title, const char *detail, int retry_after)
{
	char t[128], ra[16];
	json_t *p;

	snprintf(t, sizeof(t), PROBLEM_BASE "%s", type);
	p = json_pack(
	    "{s:s, s:s, s:i, s:s}", "type", t, "title", title, "status", status, "detail", detail);
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
	}
	reply_json(req, status, "application/problem+json", p);
	json_decref(p);
	count(np, endpoint, status, 0);
}

/* ------------------------------------------------------------------ */
/* Requests to the key process */

/* Send msg for req; the answer comes back in on_key_read().  msg is consumed. */
static void
forward(struct np *np, struct evhttp_request *req, const char *endpoint, uint32_t type, json_t *msg)
{
	struct np_pending *p = NULL;
	size_t i;

	if (np->key == NULL || np->npending >= np->npend_max) {
		json_decref(msg);
		problem(np, req, endpoint, 503, "overloaded", "Service unavailable",
		    "too many requests in flight; retry shortly", 1);
		return;
	}
	/* Slot = id modulo the table size; ids skip those whose slot is busy. */
	for (i = 0; i < np->npend_max && p == NULL; i++) {
		if (++np->next_id == 0)
			np->next_id = 1;
		if (np->pend[np->next_id % np->npend_max].id == 0)
			p = &np->pend[np->next_id % np->npend_max];
	}
	if (p == NULL || msg == NULL ||
	    ipc_put_json(bufferevent_get_output(np->key), type, np->next_id, msg) != 0) {
		json_decref(msg);
		problem(np, req, endpoint, 500, "internal", "Internal error", "cannot forward", 0);
		return;
	}
	json_decref(msg);
	p->id = np->next_id;
	p->req = req;
	p->endpoint = endpoint;
	p->t0 = metrics_now();
	np->npending++;
}

static void
answer_metrics(struct np *np, struct evhttp_request *req, const json_t *body)
{
	char *mine = NULL;
	struct evbuffer *b = evbuffer_new();
	const char *theirs = json_string_value(json_object_get(body, "text"));

	metrics_render(np->m, &mine);
	if (b != NULL) {
		evbuffer_add_printf(b, "%s%s", mine ? mine : "", theirs ? theirs : "");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		    "text/plain; version=0.0.4");
		send_reply(req, 200, b);
		evbuffer_free(b);
	}
	free(mine);
}

/* Content-Type of a successful answer's body: a signature is a JWS. */
static const char *
body_type(const struct np_pending *p, int status)
{
	if (strcmp(p->endpoint, "sign") == 0 && status == 200)
		return "application/jose+json";
	return "application/json";
}

/* Render the key process's answer {status, body | problem, retry_after}. */
static void
answer(struct np *np, struct np_pending *p, const json_t *resp)
{
	int status = (int)json_integer_value(json_object_get(resp, "status"));
	const json_t *prob = json_object_get(resp, "problem");
	int ra = (int)json_integer_value(json_object_get(resp, "retry_after"));
	char buf[16];

	if (status < 200 || status > 599)
		status = 500;
	if (ra > 0) {
		snprintf(buf, sizeof(buf), "%d", ra);
		evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", buf);
	}
	if (prob != NULL)
		reply_json(p->req, status, "application/problem+json", prob);
	else if (strcmp(p->endpoint, "metrics") == 0)
		answer_metrics(np, p->req, json_object_get(resp, "body"));
	else
		reply_json(p->req, status, body_type(p, status), json_object_get(resp, "body"));
	count(np, p->endpoint, status, p->t0);
}

/* A successful answer whose body the key process serialised (IPC_RESP_BODY). */
static void
answer_body(struct np *np, struct np_pending *p, int status, const char *body, size_t len)
{
	reply(p->req, status, body_type(p, status), body, len);
	count(np, p->endpoint, status, p->t0);
}

/* Request p has its answer: free its slot. */
static void
pending_done(struct np *np, struct np_pending *p)
{
	p->id = 0;
	p->req = NULL;
	np->npending--;
}

static void np_peers(struct np *np, const json_t *msg);

static void
on_key_read(struct bufferevent *bev, void *arg)
{
	struct np *np = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct ipc_msg m;
	json_t *j;
	int r;

	while ((r = ipc_next(in, IPC_FROM_KEY, &m)) == 1) {
		struct np_pending *p = &np->pend[m.id % np->npend_max];

		if (m.type == IPC_RESP_BODY) {
			const char *body;
			uint32_t status;
			size_t len;

			if ((r = ipc_body(&m, &status, &body, &len)) != 0) {
				ipc_msg_free(&m);
				break;
			}
			if (p->id == m.id && m.id != 0) {
				answer_body(np, p, (int)status, body, len);
				pending_done(np, p);
			}
			ipc_msg_free(&m);
			continue;
		}
		if (ipc_json(&m, &j) != 0) {
			ipc_msg_free(&m);
			r = SV_EPROTO;
			break;
		}
		if (m.type == IPC_PEERS) {
			np_peers(np, j);
		} else if (p->id == m.id && m.id != 0) {
			answer(np, p, j);
			pending_done(np, p);
		}
		json_decref(j);
		ipc_msg_free(&m);
	}
	if (r < 0) {
		sv_err("keyproc: %s", sv_errmsg(r));
		exit(VAULTD_EXIT_PEER);
	}
	if (np->draining && np->npending == 0)
		event_base_loopexit(np->base, NULL);
}

static void
on_key_event(struct bufferevent *bev, short what, void *arg)
{
	struct np *np = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		sv_info("keyproc closed the channel");
		event_base_loopexit(np->base, NULL);
	}
}

/* ------------------------------------------------------------------ */
/* Revocation */

static void
cut_revoked(struct np *np)
{
	char serial[80];
	struct np_conn *c;
	X509 *peer;

	for (c = np->conns; c != NULL; c = c->next) {
		if ((peer = SSL_get0_peer_certificate(c->ssl)) == NULL)
			continue;
		serial_hex(peer, serial, sizeof(serial));
		if (is_revoked(np, serial)) {
			sv_info("closing a connection of revoked certificate %s", serial);
			shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		}
	}
}

/* {ca: PEM, revoked: [serials]} from the key process. */
static void
np_peers(struct np *np, const json_t *msg)
{
	const char *pem = json_string_value(json_object_get(msg, "ca"));
	const json_t *rev = json_object_get(msg, "revoked"), *v;
	X509_STORE *store;
	BIO *bio;
	X509 *ca;
	size_t i, n = json_array_size(rev);

	bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (ca == NULL || n > NP_REVOKED_MAX || (store = X509_STORE_new()) == NULL) {
		sv_err("keyproc sent an unusable peer list");
		X509_free(ca);
		return;
	}
	X509_STORE_add_cert(store, ca);
	X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
	X509_free(ca);
	SSL_CTX_set_cert_store(np->mtls, store);
	for (i = 0; i < np->nrevoked; i++)
		free(np->revoked[i]);
	free(np->revoked);
	np->revoked = calloc(n + 1, sizeof(char *));
	np->nrevoked = 0;
	json_array_foreach(rev, i, v)
	{
		char *d;

		if (np->revoked && json_is_string(v) && (d = strdup(json_string_value(v))) != NULL)
			np->revoked[np->nrevoked++] = d;
	}
	qsort(np->revoked, np->nrevoked, sizeof(char *), cmp_str);
	cut_revoked(np);
}

/* ------------------------------------------------------------------ */
/* Request handling */

/* The body as a JSON object (POST, application/json); NULL after answering. */
static json_t *
body_json(struct np *np, struct evhttp_request *req, const char *endpoint)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t len = evbuffer_get_length(in);
	json_t *j;

	if (ct != NULL && strncmp(ct, "application/json", 16) != 0) {
		problem(np, req, endpoint, 415, "media-type", "Unsupported media type",
		    "send application/json", 0);
		return NULL;
	}
	if (len == 0 || len > NP_BODY_MAX) {
		problem(np, req, endpoint, len ? 413 : 400, "malformed", "Bad request",
		    len ? "body too large" : "empty body", 0);
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		problem(np, req, endpoint, 400, "malformed", "Bad request",
		    "body is not a JSON object", 0);
		return NULL;
	}
	return j;
}

/* j must have exactly the string members named, each at most its cap. */
static int
exact_strings(
    const json_t *j, const char *const *keys, const size_t *caps, size_t n, char *why, size_t whyn)
{
	size_t i;

	if (json_object_size(j) != n) {
		snprintf(why, whyn, "expected exactly %zu members", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const json_t *v = json_object_get(j, keys[i]);

		if (!json_is_string(v) || json_string_length(v) > caps[i] ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(why, whyn, "member \"%s\" missing, not a string or over %zu bytes",
			    keys[i], caps[i]);
			return -1;
		}
	}
	return 0;
}

/* The verified client certificate's serial and CN; 0 or -1. */
static int
peer_identity(struct evhttp_request *req, char *serial, size_t sn, char *cn, size_t cnn)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	serial_hex(peer, serial, sn);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cnn) <
	    0)
		cn[0] = '\0';
	return serial[0] ? 0 : -1;
}

static void
do_sign(struct np *np, struct evhttp_request *req, const char *account, const char *serial,
    const char *cn)
{
	static const char *const keys[] = { "url", "nonce", "payload" };
	static const size_t caps[] = { NP_URL_MAX, NP_NONCE_MAX, NP_PAYLOAD_B64MAX };
	char why[96];
	json_t *b, *msg;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		problem(np, req, "sign", 405, "method", "Method not allowed", "use POST", 0);
		return;
	}
	if ((b = body_json(np, req, "sign")) == NULL)
		return;
	if (exact_strings(b, keys, caps, 3, why, sizeof(why)) != 0) {
		json_decref(b);
		problem(np, req, "sign", 400, "malformed", "Bad request", why, 0);
		return;
	}
	msg = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O}", "serial", serial, "shadow", cn, "account",
	    account, "url", json_object_get(b, "url"), "nonce", json_object_get(b, "nonce"),
	    "payload", json_object_get(b, "payload"));
	json_decref(b);
	forward(np, req, "sign", IPC_SIGN, msg);
}

/* 1 if the peer address is in metrics_allow. */
static int
metrics_allowed(struct np *np, struct evhttp_request *req)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port;
	int i;

	if (ec == NULL)
		return 0;
	evhttp_connection_get_peer(ec, &addr, &port);
	for (i = 0; addr != NULL && i < np->cfg->nmetrics_allow; i++)
		if (strcmp(addr, np->cfg->metrics_allow[i]) == 0)
			return 1;
	return 0;
}

/* /v1/acme/accounts/{name}[/sign] */
static void
route_account(
    struct np *np, struct evhttp_request *req, const char *rest, const char *serial, const char *cn)
{
	char name[SV_NAME_MAX + 2];
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

	if (len == 0 || len > SV_NAME_MAX) {
		problem(np, req, "account", 404, "not-found", "Not found", "no such account", 0);
		return;
	}
	memcpy(name, rest, len);
	name[len] = '\0';
	if (sv_name_check(name, "account name") != 0) {
		problem(
		    np, req, "account", 400, "malformed", "Bad request", sv_errmsg(SV_EINVAL), 0);
		return;
	}
	if (slash != NULL && strcmp(slash, "/sign") == 0) {
		do_sign(np, req, name, serial, cn);
	} else if (slash == NULL && evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		forward(np, req, "account", IPC_ACCOUNT,
		    json_pack("{s:s, s:s}", "serial", serial, "account", name));
	} else {
		problem(np, req, "account", 404, "not-found", "Not found", "no such resource", 0);
	}
}

static void
route_api(struct evhttp_request *req, void *arg)
{
	struct np *np = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char serial[80], cn[SV_NAME_MAX + 1];

	deadline_arm(conn_of(req), 0); /* the request is complete */
	if (path == NULL)
		path = "";
	if (np->draining) {
		problem(np, req, "other", 503, "unavailable", "Shutting down",
		    "the vault is stopping", 5);
		return;
	}
	if (peer_identity(req, serial, sizeof(serial), cn, sizeof(cn)) != 0) {
		problem(np, req, "other", 401, "unauthenticated", "Unauthenticated",
		    "a client certificate from the vault's shadow CA is required", 0);
		return;
	}
	if (strcmp(path, "/v1/health") == 0)
		forward(np, req, "health", IPC_HEALTH, json_object());
	else if (strcmp(path, "/metrics") == 0 && metrics_allowed(np, req))
		forward(np, req, "metrics", IPC_METRICS, json_object());
	else if (strncmp(path, "/v1/acme/accounts/", 18) == 0)
		route_account(np, req, path + 18, serial, cn);
	else if (strncmp(path, "/v1/bundles/", 12) == 0)
		problem(np, req, "bundles", 501, "not-implemented", "Not implemented",
		    "key bundles are not served by this version", 0);
	else
		problem(np, req, "other", 404, "not-found", "Not found", "no such resource", 0);
}

static void
do_enroll(struct np *np, struct evhttp_request *req)
{
	static const char *const keys[] = { "token", "csr", "box_public_key" };
	static const size_t caps[] = { NP_TOKEN_MAX, 64 * 1024, 64 };
	char why[96];
	json_t *b;
	int wait;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		problem(np, req, "enroll", 405, "method", "Method not allowed", "use POST", 0);
		return;
	}
	/* Each attempt costs an audit record: unauthenticated ones must not fill the disk. */
	if (!sv_bucket_take(&np->enroll_rate, np->cfg->enroll_per_minute / 60.0,
		np->cfg->enroll_per_minute, metrics_now(), &wait)) {
		problem(np, req, "enroll", 429, "rate-limited", "Too many requests",
		    "too many enrolment attempts (limits.enroll_per_minute); retry later", wait);
		return;
	}
	if ((b = body_json(np, req, "enroll")) == NULL)
		return;
	if (exact_strings(b, keys, caps, 3, why, sizeof(why)) != 0) {
		json_decref(b);
		problem(np, req, "enroll", 400, "malformed", "Bad request", why, 0);
		return;
	}
	forward(np, req, "enroll", IPC_ENROLL, b);
}

static void
route_enroll(struct evhttp_request *req, void *arg)
{
	struct np *np = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	deadline_arm(conn_of(req), 0); /* the request is complete */
	if (path == NULL)
		path = "";
	if (np->draining)
		problem(np, req, "other", 503, "unavailable", "Shutting down",
		    "the vault is stopping", 5);
	else if (strcmp(path, "/v1/enroll") == 0)
		do_enroll(np, req);
	else if (strcmp(path, "/v1/health") == 0)
		forward(np, req, "health", IPC_HEALTH, json_object());
	else
		problem(np, req, "other", 404, "not-found", "Not found",
		    "this port serves only /v1/enroll and /v1/health", 0);
}

/* ------------------------------------------------------------------ */
/* TLS */

/* Called by OpenSSL when an SSL is freed: forget its connection. */
static void
conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct np_conn *c = ptr;

	if (c == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->np->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->np->guard != NULL) /* NULL in teardown */
		lguard_closed(c->np->guard);
	if (c->deadline != NULL)
		event_free(c->deadline);
	free(c);
}

static struct bufferevent *
new_bev(struct event_base *base, struct np *np, SSL_CTX *ctx)
{
	struct np_conn *c;
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	c->np = np;
	c->ssl = ssl;
	c->next = np->conns;
	if (np->conns)
		np->conns->prev = c;
	np->conns = c;
	SSL_set_ex_data(ssl, conn_idx, c); /* freed with the SSL by conn_free() */
	lguard_opened(np->guard);
	if ((c->deadline = evtimer_new(base, on_deadline, c)) != NULL)
		c->bev = bufferevent_openssl_socket_new(
		    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl); /* and c, by conn_free() */
		return NULL;
	}
	deadline_arm(c, 1);
	return c->bev;
}

static struct bufferevent *
bev_api(struct event_base *base, void *arg)
{
	struct np *np = arg;

	return new_bev(base, np, np->mtls);
}

static struct bufferevent *
bev_enroll(struct event_base *base, void *arg)
{
	struct np *np = arg;

	return new_bev(base, np, np->tls);
}

/* Client certificates: refuse revoked ones during the handshake. */
static int
verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct np *np = ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
	char serial[80];

	if (!ok || np == NULL || X509_STORE_CTX_get_error_depth(x) != 0)
		return ok;
	serial_hex(X509_STORE_CTX_get_current_cert(x), serial, sizeof(serial));
	if (is_revoked(np, serial)) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
		return 0;
	}
	return 1;
}

static SSL_CTX *
make_ctx(struct np *np, int mutual)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
		SSL_OP_NO_TICKET);
	/*
	 * No resumption: every connection is a full handshake, so every client
	 * certificate goes through verify_cb() (revocation) again.  It is also
	 * cheaper: OpenSSL 3.0 decodes the whole session, peer certificate
	 * included, to make each TLS 1.3 ticket, and no client here resumes.
	 */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_app_data(ctx, np);
	if (SSL_CTX_use_certificate_chain_file(ctx, np->cfg->tls_cert) != 1 ||
	    np_tlskey_use(ctx, np->cfg->tls_key, &np->tlskey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		sv_seterr_ssl(SV_ECONFIG, "TLS certificate or key");
		sv_preferr(SV_ECONFIG, "%s / %s", np->cfg->tls_cert, np->cfg->tls_key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (mutual) {
		/* No CA yet: the key process sends it; until then nobody gets in. */
		SSL_CTX_set_verify(
		    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
		SSL_CTX_set_verify_depth(ctx, 1);
	}
	return ctx;
}

static struct evhttp *
make_http(struct np *np, int fd, struct bufferevent *(*bevcb)(struct event_base *, void *),
    void (*route)(struct evhttp_request *, void *))
{
	struct evhttp *h = evhttp_new(np->base);
	struct evhttp_bound_socket *b;

	if (h == NULL)
		return NULL;
	evhttp_set_bevcb(h, bevcb, np);
	evhttp_set_gencb(h, route, np);
	evhttp_set_max_body_size(h, NP_BODY_MAX);
	evhttp_set_max_headers_size(h, NP_HEADERS_MAX);
	evhttp_set_timeout(h, np->cfg->request_timeout);
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	if ((b = evhttp_accept_socket_with_handle(h, fd)) == NULL ||
	    lguard_add(np->guard, evhttp_bound_socket_get_listener(b)) != 0) {
		evhttp_free(h);
		return NULL;
	}
	return h;
}

static void
define_metrics(struct metrics *m)
{
	metrics_define(m, "shadowvault_http_requests_total", "counter",
	    "HTTP requests answered, by endpoint and status");
	metrics_define(m, "shadowvault_http_request_seconds", "histogram",
	    "Time from a request reaching netproc to its answer (key process round trip)");
	metrics_define(m, "shadowvault_request_deadline_total", "counter",
	    "Connections closed for not delivering a complete request within "
	    "limits.request_timeout");
	metrics_define(m, "shadowvault_accept_paused_total", "counter",
	    "Times netproc stopped accepting connections, by reason (max_connections, "
	    "accept_error)");
}

static void
on_pause(void *arg, const char *reason)
{
	struct np *np = arg;

	metrics_add(np->m, "shadowvault_accept_paused_total", 1, "reason", reason, NULL);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct np *np = arg;

	/* Stop taking new requests; finish the ones in flight. */
	np->draining = 1;
	if (np->npending == 0)
		event_base_loopexit(np->base, NULL);
}

static int
setup(struct np *np, const struct vaultd_fds *fds)
{
	size_t max = (size_t)np->cfg->max_connections;
	int r;

	/* Every connection is a descriptor: make room for them (before the sandbox). */
	if ((r = lguard_fit_nofile(&max, NP_FD_RESERVE)) < 0)
		return r;
	if (r > 0)
		sv_info("limits.max_connections lowered from %d to %zu: the open-file limit "
			"allows no more",
		    np->cfg->max_connections, max);
	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
	np->npend_max = (size_t)np->cfg->max_pending;
	np->tlskey.fd = vconf_tls_in_token(np->cfg) ? fds->tls : -1;
	np->tlskey.per_second = np->cfg->tls_signs_per_second;
	if (np->tlskey.fd < 0)
		close(fds->tls);
	if ((np->pend = calloc(np->npend_max, sizeof(*np->pend))) == NULL ||
	    (np->m = metrics_new()) == NULL || (np->base = event_base_new()) == NULL)
		return SV_ENOMEM;
	define_metrics(np->m);
	sv_bucket_init(&np->enroll_rate, np->cfg->enroll_per_minute, metrics_now());
	if ((r = lguard_new(np->base, max, "limits.max_connections", on_pause, np, &np->guard)) !=
	    0)
		return r;
	if ((np->mtls = make_ctx(np, 1)) == NULL || (np->tls = make_ctx(np, 0)) == NULL)
		return SV_ECONFIG;
	if ((np->api = make_http(np, fds->listen, bev_api, route_api)) == NULL ||
	    (np->enroll = make_http(np, fds->enroll, bev_enroll, route_enroll)) == NULL)
		return sv_seterr(SV_EIO, "cannot serve the listening sockets");
	if ((np->key = bufferevent_socket_new(np->base, fds->ipc, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		return SV_ENOMEM;
	bufferevent_setcb(np->key, on_key_read, NULL, on_key_event, np);
	/* Move whole batches: keyproc commits once per read (see keyproc.c). */
	bufferevent_set_max_single_read(np->key, 256 * 1024);
	bufferevent_set_max_single_write(np->key, 256 * 1024);
	bufferevent_enable(np->key, EV_READ | EV_WRITE);
	np->ev_term = evsignal_new(np->base, SIGTERM, on_term, np);
	if (np->ev_term == NULL || event_add(np->ev_term, NULL) != 0)
		return SV_ENOMEM;
	signal(SIGHUP, SIG_IGN);
	return 0;
}

static void
teardown(struct np *np)
{
	size_t i;

	lguard_free(np->guard);
	np->guard = NULL; /* the connections evhttp_free() closes below */
	if (np->api)
		evhttp_free(np->api);
	if (np->enroll)
		evhttp_free(np->enroll);
	if (np->key)
		bufferevent_free(np->key);
	if (np->ev_term)
		event_free(np->ev_term);
	if (np->base)
		event_base_free(np->base);
	SSL_CTX_free(np->mtls);
	SSL_CTX_free(np->tls);
	for (i = 0; i < np->nrevoked; i++)
		free(np->revoked[i]);
	free(np->revoked);
	free(np->pend);
	metrics_free(np->m);
}

int
netproc_main(const struct vconf *cfg, const struct vaultd_fds *fds)
{
	struct np np;
	int r;

	memset(&np, 0, sizeof(np));
	np.cfg = cfg;
	/* Everything that reads files happens before the sandbox closes in: OpenSSL's
	 * configuration, and jansson's hash seed (it would read /dev/urandom later). */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	json_object_seed(0);
	tzset(); /* evhttp's Date header would open /etc/localtime later */
	if ((r = setup(&np, fds)) != 0 || (r = sandbox_drop(cfg->user)) != 0 ||
	    (cfg->sandbox && (r = sandbox_seccomp()) != 0)) {
		sv_err("%s", sv_errmsg(r));
		teardown(&np);
		return sv_exit_code(r);
	}
	event_base_dispatch(np.base);
	teardown(&np);
#if defined(__SANITIZE_ADDRESS__)
	/*
	 * LeakSanitizer's exit-time check needs /proc and ptrace, which the
	 * chroot and the seccomp filter take away: it would hang or be killed.
	 * The network process's leaks are covered by the sanitizer runs of the
	 * code it shares; the key process is checked at exit.
	 */
	_exit(0);
#endif
	return 0;
}
