/*
 * np_tls: the network process's TLS side (see np_int.h).  Server contexts
 * (TLS 1.2 or later, no resumption), the client certificate check against
 * the shadow CA and the revoked serials the key process pushes (open
 * connections of a revoked certificate are cut), one record per connection
 * (for revocation, the connection cap and the request deadline).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "log.h"
#include "np_int.h"
#include "shadowca.h"
#include "sv_err.h"

static int conn_idx = -1;

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

/* The connection a request came on (NULL if it is gone). */
struct np_conn *
np_conn_of(struct evhttp_request *req)
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
void
np_deadline_arm(struct np_conn *c, int on)
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

/*
 * A new server certificate chain for both listeners (the key process had
 * the shadow CA reissue it: a renewal, or a CA version destroyed): used only
 * if it is for the key they already hold, or with the new key file's PEM
 * sent beside it, or, with the key in the token, for a new version of it
 * (whose handshakes the key process signs); open connections keep theirs.
 */
static void
use_server_chain(struct np *np, const char *pem, const char *key_pem)
{
	SSL_CTX *ctxs[2] = { np->mtls, np->tls };
	STACK_OF(X509) *sk = NULL;
	EVP_PKEY *newkey = NULL;
	BIO *b;
	size_t i;
	int j;

	if (sca_chain_parse(pem, strlen(pem), &sk) != 0) {
		sv_err("keyproc sent an unusable TLS certificate: %s", sv_errmsg(SV_EINVAL));
		return;
	}
	if (key_pem != NULL &&
	    ((b = BIO_new_mem_buf(key_pem, -1)) == NULL ||
		(newkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL ||
		X509_check_private_key(sk_X509_value(sk, 0), newkey) != 1)) {
		sv_err("keyproc sent a TLS key that is not the certificate's: kept the old ones");
		BIO_free(b);
		goto out;
	}
	if (key_pem != NULL)
		BIO_free(b);
	for (i = 0; i < 2; i++) {
		SSL_CTX *ctx = ctxs[i];
		EVP_PKEY *key = ctx ? SSL_CTX_get0_privatekey(ctx) : NULL;

		if (ctx == NULL)
			continue;
		/* A new key: the certificate first (OpenSSL drops the old key it does not fit). */
		if ((newkey == NULL && np->tlskey.fd < 0 &&
			(key == NULL || X509_check_private_key(sk_X509_value(sk, 0), key) != 1)) ||
		    SSL_CTX_use_certificate(ctx, sk_X509_value(sk, 0)) != 1 ||
		    (newkey != NULL && SSL_CTX_use_PrivateKey(ctx, newkey) != 1) ||
		    (newkey == NULL && np->tlskey.fd >= 0 &&
			np_tlskey_use(ctx, NULL, &np->tlskey) != 1) ||
		    SSL_CTX_clear_chain_certs(ctx) != 1) {
			sv_err("keyproc sent a TLS certificate for another key: kept the old one");
			ERR_clear_error();
			break;
		}
		for (j = 1; j < sk_X509_num(sk); j++)
			SSL_CTX_add1_chain_cert(ctx, sk_X509_value(sk, j));
	}
	if (i == 2)
		sv_info("TLS server certificate replaced (reissued by the shadow CA%s)",
		    newkey ? ", for a new key" : "");
out:
	ERR_clear_error();
	EVP_PKEY_free(newkey);
	sk_X509_pop_free(sk, X509_free);
}

/* {ca: PEM bundle, revoked: [serials], server_chain?: PEM} from the key process. */
void
np_peers(struct np *np, const json_t *msg)
{
	const char *pem = json_string_value(json_object_get(msg, "ca"));
	const char *chain = json_string_value(json_object_get(msg, "server_chain"));
	const char *key = json_string_value(json_object_get(msg, "server_key"));
	const json_t *rev = json_object_get(msg, "revoked"), *v;
	STACK_OF(X509) *cas = NULL;
	X509_STORE *store = NULL;
	size_t i, n = json_array_size(rev);
	int j;

	if (pem == NULL || sca_bundle_parse(pem, strlen(pem), &cas) != 0 || n > NP_REVOKED_MAX ||
	    (store = X509_STORE_new()) == NULL) {
		sv_err("keyproc sent an unusable peer list");
		sk_X509_pop_free(cas, X509_free);
		return;
	}
	/* Every CA of the bundle: during a rotation, certificates of the old and the new. */
	for (j = 0; j < sk_X509_num(cas); j++)
		X509_STORE_add_cert(store, sk_X509_value(cas, j));
	sk_X509_pop_free(cas, X509_free);
	X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_cert_store(np->mtls, store);
	if (chain != NULL)
		use_server_chain(np, chain, key);
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

int
np_peer_identity(struct evhttp_request *req, struct np_peer *id)
{
	struct np_conn *c = np_conn_of(req);
	X509 *peer = c ? SSL_get0_peer_certificate(c->ssl) : NULL;

	if (peer == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
		return -1;
	/* Renegotiation is off: a connection's client certificate never changes. */
	if (c->serial[0] == '\0' && sca_fingerprint(peer, c->fpr, sizeof(c->fpr)) == 0)
		serial_hex(peer, c->serial, sizeof(c->serial));
	snprintf(id->serial, sizeof(id->serial), "%s", c->serial);
	snprintf(id->fpr, sizeof(id->fpr), "%s", c->fpr);
	return id->serial[0] && id->fpr[0] ? 0 : -1;
}

/*
 * limits.max_connections_per_address: count the connection's peer address
 * (its socket is set once evhttp's accept path returns, before this runs) and
 * cut the connection at once if that address already holds the limit.
 */
static void
on_admit(evutil_socket_t unused, short what, void *arg)
{
	struct np_conn *c = arg;
	struct np *np = c->np;
	evutil_socket_t s = c->bev ? bufferevent_getfd(c->bev) : -1;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char a[PEERCOUNT_TEXT_MAX];
	size_t n;

	if (s < 0 || getpeername(s, (struct sockaddr *)&ss, &len) != 0 ||
	    peercount_key((struct sockaddr *)&ss, len, &c->peer) != 0)
		return; /* gone already, or not an IP socket: nothing to count */
	if ((n = peercount_inc(np->peers, &c->peer)) == 0) {
		sv_err("connection table: out of memory: closing a new connection");
		shutdown(s, SHUT_RDWR);
		return;
	}
	c->counted = 1;
	if (n <= (size_t)np->cfg->max_connections_per_address)
		return;
	metrics_add(np->m, "shadowvault_address_limit_total", 1, NULL);
	if (sv_due(&np->warned_peer, sv_mono_now(), 60.0)) {
		peercount_fmt(&c->peer, a, sizeof(a));
		sv_warn("%s holds %zu connections: closing new ones past "
			"limits.max_connections_per_address (%d; logged once a minute)",
		    a, n - 1, np->cfg->max_connections_per_address);
	}
	shutdown(s, SHUT_RDWR); /* evhttp sees the end and frees the connection */
}

static void
linger_close(struct np_linger *l)
{
	event_free(l->ev);
	l->ev = NULL;
	close(l->fd);
}

static void
on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct np_linger *l = arg;
	char buf[16384];
	ssize_t n = 0;

	if ((what & EV_READ) && sv_mono_now() < l->until) {
		while ((n = read(fd, buf, sizeof(buf))) > 0 && l->dropped < NP_LINGER_BYTES)
			l->dropped += (size_t)n;
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && l->dropped < NP_LINGER_BYTES)
			return; /* more may come */
	}
	linger_close(l); /* the end, an error, the time or the bytes are up */
}

void
np_linger(struct np_conn *c)
{
	evutil_socket_t fd;

	if (c == NULL || c->linger_fd > 0 || (fd = bufferevent_getfd(c->bev)) < 0)
		return;
	/* fcntl, not dup: the sandbox allows fcntl.  Only the socket stays open. */
	if ((c->linger_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
		c->linger_fd = 0;
}

/* The connection is gone (libevent closed its descriptor): linger on ours. */
static void
linger_start(struct np *np, int fd)
{
	struct timeval tv = { NP_LINGER_SECONDS, 0 };
	struct np_linger *l = NULL;
	size_t i;

	for (i = 0; i < NP_LINGER_MAX && l == NULL; i++)
		if (np->linger[i].ev == NULL)
			l = &np->linger[i];
	shutdown(fd, SHUT_WR); /* the answer, then the end */
	if (l == NULL || np->base == NULL ||
	    (l->ev = event_new(np->base, fd, EV_READ | EV_PERSIST, on_linger, l)) == NULL ||
	    event_add(l->ev, &tv) != 0) {
		if (l != NULL && l->ev != NULL) {
			event_free(l->ev);
			l->ev = NULL;
		}
		close(fd);
		return;
	}
	l->fd = fd;
	l->dropped = 0;
	l->until = sv_mono_now() + NP_LINGER_SECONDS;
}

void
np_linger_end(struct np *np)
{
	size_t i;

	for (i = 0; i < NP_LINGER_MAX; i++)
		if (np->linger[i].ev != NULL)
			linger_close(&np->linger[i]);
}

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
	if (c->counted)
		peercount_dec(c->np->peers, &c->peer);
	if (c->deadline != NULL)
		event_free(c->deadline);
	if (c->admit != NULL)
		event_free(c->admit);
	if (c->linger_fd > 0)
		linger_start(c->np, c->linger_fd);
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
	if ((c->deadline = evtimer_new(base, on_deadline, c)) != NULL &&
	    (c->admit = evtimer_new(base, on_admit, c)) != NULL)
		c->bev = bufferevent_openssl_socket_new(
		    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl); /* and c, by conn_free() */
		return NULL;
	}
	np_deadline_arm(c, 1);
	event_active(c->admit, EV_TIMEOUT, 0); /* after evhttp has set the socket */
	return c->bev;
}

struct bufferevent *
np_bev_api(struct event_base *base, void *arg)
{
	struct np *np = arg;

	return new_bev(base, np, np->mtls);
}

struct bufferevent *
np_bev_enroll(struct event_base *base, void *arg)
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

/*
 * The certificate does not fit tls.key: a key swap of `vaultctl tls renew
 * --new-key` cut short (kp_tlscert.c), whose new key waits in tls.key.next, or
 * which the key process is finishing right now (tls.key, once more).
 */
static int
key_next(struct np *np, SSL_CTX *ctx)
{
	char next[PATH_MAX + 8];

	ERR_clear_error();
	if (vconf_tls_in_token(np->cfg))
		return 0;
	snprintf(next, sizeof(next), "%s.next", np->cfg->tls_key);
	if ((SSL_CTX_use_PrivateKey_file(ctx, next, SSL_FILETYPE_PEM) == 1 ||
		SSL_CTX_use_PrivateKey_file(ctx, np->cfg->tls_key, SSL_FILETYPE_PEM) == 1) &&
	    SSL_CTX_check_private_key(ctx) == 1) {
		ERR_clear_error();
		sv_warn("TLS key: %s did not fit the certificate, the new key did (a key swap cut "
			"short, finished by the key process)",
		    np->cfg->tls_key);
		return 1;
	}
	return 0;
}

SSL_CTX *
np_make_ctx(struct np *np, int mutual)
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
	    ((np_tlskey_use(ctx, np->cfg->tls_key, &np->tlskey) != 1 ||
		 SSL_CTX_check_private_key(ctx) != 1) &&
		!key_next(np, ctx))) {
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

int
np_tls_init(void)
{
	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
	return conn_idx < 0 ? SV_ENOMEM : 0;
}
