/*
 * netproc: vaultd's network process.  Terminates TLS (OpenSSL through
 * libevent bufferevents) and HTTP (libevent's evhttp) on two listeners the
 * supervisor bound:
 *
 *   api     mutual TLS: a client certificate from the shadow CA is required
 *           and checked against the revoked serials during the handshake,
 *           before any HTTP is read.  Account information, signing, identity
 *           renewal, sealed key bundles, health, metrics (peer address
 *           allow-list).
 *   enroll  server TLS only: enrolment with a one-time token, and health.
 *
 * Each request is checked for shape and size and becomes one IPC message;
 * the key process decides.  netproc holds no PIN, no PKCS#11 session and no
 * database handle; after start-up it drops privileges and installs a
 * seccomp filter.  Revocations pushed by the key process also cut open
 * connections of the revoked certificates.  TLS contexts, certificates and
 * connections are in np_tls.c, the TLS key in np_tlskey.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "evbase.h"
#include "ipc.h"
#include "log.h"
#include "names.h"
#include "np_int.h"
#include "sandbox.h"
#include "sv_err.h"
#include "vaultd.h"

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

	np_deadline_arm(np_conn_of(req), 1); /* for the next request on this connection */
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
	if (np != NULL)
		count(np, endpoint, status, 0);
}

/*
 * evhttp answers three kinds of request itself, before route_api() or
 * route_enroll() sees them: one whose request line or headers it cannot
 * parse or are over NP_HEADERS_MAX (400), one whose body is over NP_BODY_MAX
 * (413), and one whose method make_http() does not allow (501).
 * It renders them through evhttp_send_error() as HTML, and libevent 2.1 has
 * no hook to change that (2.2 adds evhttp_set_errorcb()).  libevent calls
 * evhttp_send_error() through its PLT, so this definition in vaultd is the
 * one its own calls reach: those answers are problem documents like every
 * other.  As in libevent's, the connection is closed after the answer: the
 * rest of what the client sent cannot be trusted to frame a next request.
 * tests/integration/test_vaultd_sign.sh checks each of the three.
 */
void
evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	struct np_conn *c = np_conn_of(req);
	const char *type = "malformed", *title = "Bad request";
	const char *detail = "the request line or headers cannot be parsed, or are over 16 KiB";

	(void)reason;
	if (error == HTTP_ENTITYTOOLARGE) {
		title = "Request too large";
		detail = "the body is over 128 KiB";
	} else if (error == HTTP_NOTIMPLEMENTED) {
		type = "method";
		title = "Not implemented";
		detail = "the method is not implemented; use GET or POST";
	}
	/* An unparsable request line leaves the version at 0.0: answer as HTTP/1.1 (with a
	   Content-Length), not "HTTP/0.0".  No accessor sets it: http_struct.h's fields. */
	if (req->major != 1) {
		req->major = 1;
		req->minor = 1;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	problem(c ? c->np : NULL, req, "other", error, type, title, detail, 0);
	np_linger(c); /* the client may still be sending */
}

/* ------------------------------------------------------------------ */
/* Requests to the key process */

/* Send msg for req; the answer comes back in on_key_read().  msg is consumed. */
static void
forward_any(struct np *np, struct evhttp_request *req, const char *endpoint, uint32_t type,
    json_t *msg, const char *const *strs, size_t nstrs)
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
	/* Fault injection for the tests: a frame of the TLS channel on this one. */
	if (np->req_fault && ++np->nforwarded == 2)
		type = IPC_TLS_SIGN;
	if (p == NULL || (msg == NULL && strs == NULL) ||
	    (msg != NULL ? ipc_put_json(bufferevent_get_output(np->key), type, np->next_id, msg)
			 : ipc_put_strs(bufferevent_get_output(np->key), type, np->next_id, strs,
			       nstrs)) != 0) {
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

/* Forward msg (consumed) as a JSON message of type. */
static void
forward(struct np *np, struct evhttp_request *req, const char *endpoint, uint32_t type, json_t *msg)
{
	forward_any(np, req, endpoint, type, msg, NULL, 0);
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

/*
 * /v1/health is open to anyone on the enrolment port: there it is answered
 * again from the key process's last answer for NP_HEALTH_TTL seconds, so
 * that a flood of them does not reach the key process.  Keep that answer,
 * serialised once for both uses: 0, or -1 (nothing kept) without memory.
 */
static int
health_keep(struct np *np, int status, const json_t *body)
{
	free(np->health.body);
	np->health.body = json_dumps(body, JSON_COMPACT);
	np->health.status = status;
	np->health.at = metrics_now();
	return np->health.body != NULL ? 0 : -1;
}

static void
health(struct np *np, struct evhttp_request *req)
{
	double now = metrics_now();

	if (np->health.body == NULL || now - np->health.at >= NP_HEALTH_TTL) {
		forward(np, req, "health", IPC_HEALTH, json_object());
		return;
	}
	reply(req, np->health.status, "application/json", np->health.body, strlen(np->health.body));
	count(np, "health", np->health.status, 0); /* no key process round trip */
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
	else if (strcmp(p->endpoint, "health") == 0 &&
	    health_keep(np, status, json_object_get(resp, "body")) == 0)
		reply(p->req, status, "application/json", np->health.body, strlen(np->health.body));
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

/*
 * The body of a POST that must hold exactly the string members keys[0..n),
 * each within its cap; NULL once the request has been answered (405, 400 or
 * 413).
 */
static json_t *
post_body(struct np *np, struct evhttp_request *req, const char *endpoint, const char *const *keys,
    const size_t *caps, size_t n)
{
	char why[96];
	json_t *b;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		problem(np, req, endpoint, 405, "method", "Method not allowed", "use POST", 0);
		return NULL;
	}
	if ((b = body_json(np, req, endpoint)) == NULL)
		return NULL;
	if (exact_strings(b, keys, caps, n, why, sizeof(why)) != 0) {
		json_decref(b);
		problem(np, req, endpoint, 400, "malformed", "Bad request", why, 0);
		return NULL;
	}
	return b;
}

static void
do_sign(struct np *np, struct evhttp_request *req, const char *account, const struct np_peer *id)
{
	static const char *const keys[] = { "url", "nonce", "payload" };
	static const size_t caps[] = { NP_URL_MAX, NP_NONCE_MAX, NP_PAYLOAD_B64MAX };
	const char *strs[IPC_SIGN_NSTRS];
	json_t *b;

	if ((b = post_body(np, req, "sign", keys, caps, 3)) == NULL)
		return;
	/* post_body() checked them: strings within their caps, without a NUL. */
	strs[IPC_SIGN_SERIAL] = id->serial;
	strs[IPC_SIGN_FINGERPRINT] = id->fpr;
	strs[IPC_SIGN_ACCOUNT] = account;
	strs[IPC_SIGN_URL] = json_string_value(json_object_get(b, "url"));
	strs[IPC_SIGN_NONCE] = json_string_value(json_object_get(b, "nonce"));
	strs[IPC_SIGN_PAYLOAD] = json_string_value(json_object_get(b, "payload"));
	forward_any(np, req, "sign", IPC_SIGN, NULL, strs, IPC_SIGN_NSTRS);
	json_decref(b);
}

/* POST /v1/identity/renew {csr, certificate, proof}: a new client certificate for this shadow. */
static void
do_renew(struct np *np, struct evhttp_request *req, const struct np_peer *id)
{
	static const char *const keys[] = { "csr", "certificate", "proof" };
	static const size_t caps[] = { 64 * 1024, 64 * 1024, 512 };
	json_t *b, *msg;

	if ((b = post_body(np, req, "renew", keys, caps, 3)) == NULL)
		return;
	msg = json_pack("{s:s, s:s, s:O, s:O, s:O}", "serial", id->serial, "fingerprint", id->fpr,
	    "csr", json_object_get(b, "csr"), "certificate", json_object_get(b, "certificate"),
	    "proof", json_object_get(b, "proof"));
	json_decref(b);
	forward(np, req, "renew", IPC_RENEW, msg);
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
route_account(struct np *np, struct evhttp_request *req, const char *rest, const struct np_peer *id)
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
		do_sign(np, req, name, id);
	} else if (slash == NULL && evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		forward(np, req, "account", IPC_ACCOUNT,
		    json_pack("{s:s, s:s, s:s}", "serial", id->serial, "fingerprint", id->fpr,
			"account", name));
	} else {
		problem(np, req, "account", 404, "not-found", "Not found", "no such resource", 0);
	}
}

/*
 * GET /v1/bundles/{name}: the sealed key bundle of certificate name.  Only
 * the shape is checked here (printable ASCII, at most SV_NAME_MAX, one path
 * segment); the key process judges the name against the policy and audits
 * the decision.
 */
static void
do_bundle(struct np *np, struct evhttp_request *req, const char *name, const struct np_peer *id)
{
	size_t i, len = strlen(name);

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		problem(np, req, "bundles", 405, "method", "Method not allowed", "use GET", 0);
		return;
	}
	if (len == 0 || len > SV_NAME_MAX || strchr(name, '/') != NULL) {
		problem(np, req, "bundles", 404, "not-found", "Not found", "no such bundle", 0);
		return;
	}
	for (i = 0; i < len; i++)
		if (name[i] < 0x21 || name[i] > 0x7e) {
			problem(np, req, "bundles", 400, "malformed", "Bad request",
			    "a bundle name is printable ASCII", 0);
			return;
		}
	forward(np, req, "bundles", IPC_BUNDLE,
	    json_pack(
		"{s:s, s:s, s:s}", "serial", id->serial, "fingerprint", id->fpr, "name", name));
}

static void
route_api(struct evhttp_request *req, void *arg)
{
	struct np *np = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct np_peer id;

	np_deadline_arm(np_conn_of(req), 0); /* the request is complete */
	if (path == NULL)
		path = "";
	if (np->draining) {
		problem(np, req, "other", 503, "unavailable", "Shutting down",
		    "the vault is stopping", 5);
		return;
	}
	if (np_peer_identity(req, &id) != 0) {
		problem(np, req, "other", 401, "unauthenticated", "Unauthenticated",
		    "a client certificate from the vault's shadow CA is required", 0);
		return;
	}
	/*
	 * Through the key process, not from the cache: its answer comes after
	 * any revocation it pushed, so a revoked shadow's open connection is cut
	 * before it is answered.
	 */
	if (strcmp(path, "/v1/health") == 0)
		forward(np, req, "health", IPC_HEALTH, json_object());
	else if (strcmp(path, "/metrics") == 0 && metrics_allowed(np, req))
		forward(np, req, "metrics", IPC_METRICS, json_object());
	else if (strncmp(path, "/v1/acme/accounts/", 18) == 0)
		route_account(np, req, path + 18, &id);
	else if (strcmp(path, "/v1/identity/renew") == 0)
		do_renew(np, req, &id);
	else if (strcmp(path, "/v1/identity") == 0 &&
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET)
		forward(np, req, "identity", IPC_WHOAMI,
		    json_pack("{s:s, s:s}", "serial", id.serial, "fingerprint", id.fpr));
	else if (strncmp(path, "/v1/bundles/", 12) == 0)
		do_bundle(np, req, path + 12, &id);
	else
		problem(np, req, "other", 404, "not-found", "Not found", "no such resource", 0);
}

/* For hmap_remove_if: an address's enrolment bucket that has refilled. */
static int
bucket_full(void *val, void *arg)
{
	const struct np *np = arg;
	double per_minute = np->cfg->enroll_per_minute_per_address;

	return sv_bucket_full(val, per_minute / 60.0, per_minute, metrics_now());
}

/*
 * limits.enroll_per_minute_per_address: 1 if the request's address may make
 * an enrolment attempt now, else 0 and *wait.  At most NP_ENROLL_ADDRS
 * addresses are tracked: past that, the refilled ones are dropped, and if
 * none has refilled a new address is not limited by address (the limit for
 * all clients together still is).
 */
static int
enroll_addr_ok(struct np *np, struct evhttp_request *req, int *wait)
{
	const struct np_conn *c = np_conn_of(req);
	unsigned per_minute = (unsigned)np->cfg->enroll_per_minute_per_address;
	struct sv_bucket *b;

	*wait = 0;
	if (c == NULL || !c->counted || np->enroll_addrs == NULL)
		return 1;
	if ((b = hmap_get(np->enroll_addrs, c->peer.b, sizeof(c->peer.b))) == NULL) {
		if (hmap_size(np->enroll_addrs) >= NP_ENROLL_ADDRS &&
		    hmap_remove_if(np->enroll_addrs, bucket_full, np, free) == 0)
			return 1;
		if ((b = malloc(sizeof(*b))) == NULL)
			return 1;
		sv_bucket_init(b, per_minute, metrics_now());
		if (hmap_put(np->enroll_addrs, c->peer.b, sizeof(c->peer.b), b) != 0) {
			free(b);
			return 1;
		}
	}
	return sv_bucket_take(b, per_minute / 60.0, per_minute, metrics_now(), wait);
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
	/*
	 * Each attempt costs an audit record: unauthenticated ones must not fill
	 * the disk.  The address's own limit comes first, so that one client's
	 * flood does not spend the limit for all.
	 */
	if (!enroll_addr_ok(np, req, &wait)) {
		problem(np, req, "enroll", 429, "rate-limited", "Too many requests",
		    "too many enrolment attempts from this address "
		    "(limits.enroll_per_minute_per_address); retry later",
		    wait);
		return;
	}
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

	np_deadline_arm(np_conn_of(req), 0); /* the request is complete */
	if (path == NULL)
		path = "";
	if (np->draining)
		problem(np, req, "other", 503, "unavailable", "Shutting down",
		    "the vault is stopping", 5);
	else if (strcmp(path, "/v1/enroll") == 0)
		do_enroll(np, req);
	else if (strcmp(path, "/v1/health") == 0)
		health(np, req);
	else
		problem(np, req, "other", 404, "not-found", "Not found",
		    "this port serves only /v1/enroll and /v1/health", 0);
}

/* ------------------------------------------------------------------ */
/* Set-up */

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
	metrics_define(m, "shadowvault_address_limit_total", "counter",
	    "Connections closed at once because their address already held "
	    "limits.max_connections_per_address");
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
	if ((r = np_tls_init()) != 0)
		return r;
	np->npend_max = (size_t)np->cfg->max_pending;
	np->tlskey.fd = vconf_tls_in_token(np->cfg) ? fds->tls : -1;
	np->tlskey.per_second = np->cfg->tls_signs_per_second;
	if (np->tlskey.fd < 0)
		close(fds->tls);
	if ((np->pend = calloc(np->npend_max, sizeof(*np->pend))) == NULL ||
	    (np->m = metrics_new()) == NULL || (np->base = sv_event_base_new()) == NULL)
		return SV_ENOMEM;
	define_metrics(np->m);
	sv_bucket_init(&np->enroll_rate, np->cfg->enroll_per_minute, metrics_now());
	if ((r = lguard_new(np->base, max, "limits.max_connections", on_pause, np, &np->guard)) !=
		0 ||
	    (r = peercount_new(max, &np->peers)) != 0 ||
	    (r = hmap_new(NP_ENROLL_ADDRS, &np->enroll_addrs)) != 0)
		return r;
	np->warned_peer = -1;
	if ((np->mtls = np_make_ctx(np, 1)) == NULL || (np->tls = np_make_ctx(np, 0)) == NULL)
		return SV_ECONFIG;
	if ((np->api = make_http(np, fds->listen, np_bev_api, route_api)) == NULL ||
	    (np->enroll = make_http(np, fds->enroll, np_bev_enroll, route_enroll)) == NULL)
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
	np_linger_end(np); /* after the connections: their last ones start lingering */
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
	free(np->health.body);
	peercount_free(np->peers); /* after evhttp_free(): closing connections count down */
	hmap_free(np->enroll_addrs, free);
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
	np.req_fault = sv_fault("req-garbage");
	if (!cfg->sandbox)
		sv_warn("sandbox = false: the network process runs without its seccomp filter");
	if ((r = setup(&np, fds)) != 0 || (r = sandbox_drop(cfg->user, SANDBOX_ROOT)) != 0 ||
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
