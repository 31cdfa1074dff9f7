/*
 * The scripted HTTPS fake ACME CA of test_acme_fakeca (fakeca.h): a listener
 * thread accepts on 127.0.0.1 and hands each connection to a thread of its
 * own, which reads requests (keep-alive), decodes a POST's JWS, answers from
 * route() or the test's script and keeps the last POST in srv.last.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "fakeca.h"

struct fakeca srv = { .mu = PTHREAD_MUTEX_INITIALIZER };
char base[64];

/* The server's own state; nonce_n and requests are under srv.mu. */
static struct {
	int fd, port;
	SSL_CTX *ctx;
	pthread_t th;
	atomic_int stop;
	unsigned long nonce_n, requests;
	atomic_int active; /* connection threads running */
} ca = { .fd = -1 };

static void
req_clear(struct req *q)
{
	free(q->body);
	json_decref(q->jws);
	json_decref(q->hdr);
	free(q->payload);
	memset(q, 0, sizeof(*q));
}

static void
req_decode_jws(struct req *q)
{
	const char *h, *p;
	uint8_t *hb = NULL, *pb = NULL;
	size_t hl, pl;

	if ((q->jws = json_loadb(q->body, q->blen, 0, NULL)) == NULL ||
	    (h = json_string_value(json_object_get(q->jws, "protected"))) == NULL ||
	    (p = json_string_value(json_object_get(q->jws, "payload"))) == NULL)
		return;
	if (b64u_decode(h, strlen(h), REQ_MAX, &hb, &hl) == 0)
		q->hdr = json_loadb((const char *)hb, hl, 0, NULL);
	if (b64u_decode(p, strlen(p), REQ_MAX, &pb, &pl) == 0)
		q->payload = (char *)pb;
	free(hb);
}

static void
hdr_value(const char *hdrs, const char *name, char *out, size_t outsz)
{
	const char *p = hdrs;
	size_t nl = strlen(name);

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			p += strspn(p, " ");
			snprintf(out, outsz, "%.*s", (int)strcspn(p, "\r"), p);
			return;
		}
	}
}

/* Read one request from s into q; 0, or -1 at EOF/error. */
static int
read_req(SSL *s, char *buf, size_t *have, struct req *q)
{
	char *end, cl[32];
	size_t hlen, need;
	int n;

	while ((end = memmem(buf, *have, "\r\n\r\n", 4)) == NULL) {
		if (*have >= REQ_MAX || (n = SSL_read(s, buf + *have, (int)(REQ_MAX - *have))) <= 0)
			return -1;
		*have += (size_t)n;
	}
	hlen = (size_t)(end - buf) + 4;
	buf[hlen - 2] = '\0';
	sscanf(buf, "%7s %511s", q->method, q->path);
	hdr_value(buf, "Content-Type", q->ctype, sizeof(q->ctype));
	hdr_value(buf, "User-Agent", q->ua, sizeof(q->ua));
	hdr_value(buf, "Accept", q->accept, sizeof(q->accept));
	hdr_value(buf, "Content-Length", cl, sizeof(cl));
	need = hlen + (size_t)strtoul(cl, NULL, 10);
	while (*have < need) {
		if (need > REQ_MAX || (n = SSL_read(s, buf + *have, (int)(REQ_MAX - *have))) <= 0)
			return -1;
		*have += (size_t)n;
	}
	q->blen = need - hlen;
	q->body = malloc(q->blen + 1);
	memcpy(q->body, buf + hlen, q->blen);
	q->body[q->blen] = '\0';
	memmove(buf, buf + need, *have - need);
	*have -= need;
	if (strcmp(q->method, "POST") == 0)
		req_decode_jws(q);
	return 0;
}

void
json_reply(struct reply *r, int status, const char *ctype, const char *body)
{
	r->status = status;
	r->ctype = ctype;
	r->body = strdup(body);
	r->blen = strlen(body);
}

/* The directory and newNonce are always there; the rest is the script's. */
static void
route(const struct req *q, struct reply *r)
{
	char dir[1024];

	if (strcmp(q->path, "/dir") == 0) {
		snprintf(dir, sizeof(dir),
		    "{\"newNonce\":\"%s/nonce\",\"newAccount\":\"%s/new-acct\",\"newOrder\":\"%s/"
		    "new-order\","
		    "\"revokeCert\":\"%s/revoke\",\"keyChange\":\"%s/key-change\","
		    "\"renewalInfo\":\"%s/renewal-info/\",\"meta\":{\"termsOfService\":\"%s/"
		    "tos\"}}",
		    base, base, base, base, base, base, base);
		json_reply(r, 200, "application/json", dir);
	} else if (strcmp(q->path, "/dir-min") == 0) {
		/* Only the required endpoints: no keyChange, revokeCert, renewalInfo. */
		snprintf(dir, sizeof(dir),
		    "{\"newNonce\":\"%s/nonce\",\"newAccount\":\"%s/new-acct\","
		    "\"newOrder\":\"%s/new-order\"}",
		    base, base, base);
		json_reply(r, 200, "application/json", dir);
	} else if (strcmp(q->path, "/nonce") == 0) {
		r->status = 200;
	} else if (srv.script != NULL) {
		srv.script(q, r);
	} else {
		json_reply(r, 404, "application/problem+json", "{\"type\":\"about:blank\"}");
	}
}

static int
write_all(SSL *s, const char *p, size_t n)
{
	int w;

	while (n > 0) {
		if ((w = SSL_write(s, p, n > INT32_MAX ? INT32_MAX : (int)n)) <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
send_reply(SSL *s, const struct req *q, struct reply *r)
{
	char head[512];
	int n;

	pthread_mutex_lock(&srv.mu);
	snprintf(srv.last_nonce, sizeof(srv.last_nonce), "nonce%lu", ++ca.nonce_n);
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\n%s%s%s", r->status,
	    r->no_nonce ? "" : "Replay-Nonce: ", r->no_nonce ? "" : srv.last_nonce,
	    r->no_nonce ? "" : "\r\n");
	pthread_mutex_unlock(&srv.mu);
	if (r->ctype != NULL)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", r->ctype);
	if (r->no_length)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
	else
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n",
		    strcmp(q->method, "HEAD") == 0 ? 0 : r->blen);
	if (write_all(s, head, (size_t)n) != 0 ||
	    (r->headers != NULL && write_all(s, r->headers, strlen(r->headers)) != 0) ||
	    write_all(s, "\r\n", 2) != 0)
		return -1;
	if (strcmp(q->method, "HEAD") != 0 && r->blen > 0 && write_all(s, r->body, r->blen) != 0)
		return -1;
	return r->no_length ? -1 : 0;
}

static void *
conn_main(void *arg)
{
	SSL *s = arg;
	char *buf = malloc(REQ_MAX + 1);
	size_t have = 0;
	struct req q;
	struct reply r;
	int done = 0;

	if (SSL_accept(s) != 1)
		done = 1;
	while (!done) {
		memset(&q, 0, sizeof(q));
		memset(&r, 0, sizeof(r));
		if (read_req(s, buf, &have, &q) != 0) {
			req_clear(&q);
			break;
		}
		pthread_mutex_lock(&srv.mu);
		ca.requests++;
		pthread_mutex_unlock(&srv.mu);
		route(&q, &r);
		r.no_nonce |= atomic_load(&srv.nonce_off);
		done = send_reply(s, &q, &r) != 0;
		free(r.headers);
		free(r.body);
		pthread_mutex_lock(&srv.mu);
		if (strcmp(q.method, "POST") == 0) {
			req_clear(&srv.last);
			srv.last = q;
		} else {
			req_clear(&q);
		}
		pthread_mutex_unlock(&srv.mu);
	}
	SSL_shutdown(s);
	close(SSL_get_fd(s));
	SSL_free(s);
	free(buf);
	ERR_clear_error();
	atomic_fetch_sub(&ca.active, 1);
	return NULL;
}

static void *
srv_main(void *arg)
{
	struct pollfd p = { ca.fd, POLLIN, 0 };
	struct timeval tv = { 5, 0 };
	pthread_t t;
	SSL *s;
	int c;

	while (!atomic_load(&ca.stop)) {
		if (poll(&p, 1, 50) <= 0 || (c = accept(ca.fd, NULL, NULL)) < 0)
			continue;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		s = SSL_new(ca.ctx);
		SSL_set_fd(s, c);
		pthread_mutex_lock(&srv.mu);
		srv.conns++;
		pthread_mutex_unlock(&srv.mu);
		atomic_fetch_add(&ca.active, 1);
		if (pthread_create(&t, NULL, conn_main, s) == 0) {
			pthread_detach(t);
		} else {
			atomic_fetch_sub(&ca.active, 1);
			SSL_free(s);
			close(c);
		}
	}
	return NULL;
}

/* Self-signed certificate for IP 127.0.0.1; its PEM goes to srv.cafile. */
static void
srv_cert(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *e;
	FILE *f;
	int fd;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"fake ACME CA", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "IP:127.0.0.1");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ca.ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ca.ctx, k), 1);
	snprintf(srv.cafile, sizeof(srv.cafile), "/tmp/sv-fakeca-XXXXXX");
	assert_true((fd = mkstemp(srv.cafile)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	PEM_write_X509(f, x);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

int
fakeca_start(void)
{
	struct sockaddr_in sin = { 0 };
	socklen_t sl = sizeof(sin);

	ca.ctx = SSL_CTX_new(TLS_server_method());
	srv_cert();
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ca.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(ca.fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(ca.fd, 16) != 0 ||
	    getsockname(ca.fd, (struct sockaddr *)&sin, &sl) != 0)
		return -1;
	ca.port = ntohs(sin.sin_port);
	snprintf(base, sizeof(base), "https://127.0.0.1:%d", ca.port);
	return pthread_create(&ca.th, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

void
fakeca_stop(void)
{
	atomic_store(&ca.stop, 1);
	pthread_join(ca.th, NULL);
	close(ca.fd);
	/* The client closed its side: connection threads see EOF. */
	for (int i = 0; i < 100 && atomic_load(&ca.active) > 0; i++)
		usleep(50000);
	pthread_mutex_lock(&srv.mu);
	req_clear(&srv.last);
	pthread_mutex_unlock(&srv.mu);
	SSL_CTX_free(ca.ctx);
	unlink(srv.cafile);
}
