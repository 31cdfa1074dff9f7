/*
 * Internals of vaultd's network process shared by netproc.c (set-up, the key
 * process channel, HTTP routes) and np_tls.c (TLS contexts, client
 * certificates and revocation, connections and their request deadline).
 */
#ifndef SV_NP_INT_H
#define SV_NP_INT_H

#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "bucket.h"
#include "hmap.h"
#include "lguard.h"
#include "metrics.h"
#include "np_tlskey.h"
#include "peercount.h"
#include "shadowca.h"
#include "vconf.h"

#define NP_BODY_MAX	  (128 * 1024) /* request bodies */
#define NP_HEADERS_MAX	  (16 * 1024)
#define NP_URL_MAX	  2048
#define NP_NONCE_MAX	  256
#define NP_PAYLOAD_B64MAX (88 * 1024) /* base64url of a 64 KiB payload */
#define NP_TOKEN_MAX	  128
#define NP_REVOKED_MAX	  100000
#define NP_FD_RESERVE	  64   /* descriptors besides connections (listeners, IPC, epoll) */
#define NP_HEALTH_TTL	  0.25 /* seconds a /v1/health answer is served again */
#define NP_ENROLL_ADDRS	  4096 /* addresses with a recent enrolment attempt, tracked */
#define PROBLEM_BASE	  "tag:shadowvault.org,2026:problem:"

struct np_conn {
	struct np *np;
	SSL *ssl;
	struct bufferevent *bev;
	struct event *deadline; /* for a complete request: see np_deadline_arm() */
	struct event *admit;	/* counts the peer address once the socket is set */
	struct peer_key peer;
	int counted;	       /* peer is counted in np->peers */
	char serial[80];       /* the verified client certificate's serial, once looked up */
	char fpr[SCA_HEX_MAX]; /* and its SHA-256 fingerprint (hex), with the serial */
	int linger_fd;	       /* > 0: a second descriptor of the socket, see np_linger() */
	struct np_conn *prev, *next;
};

/*
 * Lingering close (RFC 9112 section 9.6): after an answer that closes the
 * connection while the client may still be sending (a body over the limit),
 * the socket is shut for writing and what arrives is read and dropped for at
 * most NP_LINGER_SECONDS or NP_LINGER_BYTES, then closed.  Closed at once,
 * a socket with unread data sends a reset, and the client, still sending,
 * may never read the answer.  At most NP_LINGER_MAX sockets linger at once.
 */
#define NP_LINGER_MAX	  64
#define NP_LINGER_SECONDS 2
#define NP_LINGER_BYTES	  (1024 * 1024)
struct np_linger {
	struct event *ev; /* NULL: free slot */
	int fd;
	size_t dropped;
	double until; /* sv_mono_now() deadline, however the client dribbles */
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
	struct peercount *peers;      /* open connections per address */
	double warned_peer;	      /* when the per-address limit was last logged */
	struct sv_bucket enroll_rate; /* limits.enroll_per_minute, for all clients together */
	struct hmap *enroll_addrs;    /* struct peer_key -> struct sv_bucket *: ..._per_address */
	struct {
		int status;
		char *body; /* NULL: none yet */
		double at;
	} health; /* the key process's last /v1/health answer */
	struct np_pending *pend;
	size_t npend_max, npending;
	uint32_t next_id;
	int req_fault; /* SV_FAULT=req-garbage: the 2nd request goes out as IPC_TLS_SIGN */
	unsigned nforwarded;
	int draining;
	struct np_linger linger[NP_LINGER_MAX];
};

/* np_tls.c */
int np_tls_init(void); /* once, before the first connection: 0 or SV_ENOMEM */
SSL_CTX *np_make_ctx(struct np *np, int mutual);
struct bufferevent *np_bev_api(struct event_base *base, void *np);
struct bufferevent *np_bev_enroll(struct event_base *base, void *np);
/* The connection a request came on (NULL if it is gone). */
struct np_conn *np_conn_of(struct evhttp_request *req);
/* Linger when the connection closes (its answer is queued); c may be NULL. */
void np_linger(struct np_conn *c);
/* Close every lingering socket (teardown). */
void np_linger_end(struct np *np);
/* Start (on 1) or stop the connection's request deadline; c may be NULL. */
void np_deadline_arm(struct np_conn *c, int on);
/*
 * Who a request comes from: its verified client certificate's serial and
 * SHA-256 fingerprint (lower-case hex, as the key process records them).
 * The key process checks both (a certificate made with a reused serial is
 * not the one it issued).
 */
struct np_peer {
	char serial[80];
	char fpr[SCA_HEX_MAX];
};

/* The verified client certificate's identity: 0, or -1 if none. */
int np_peer_identity(struct evhttp_request *req, struct np_peer *id);
/* {ca: PEM, revoked: [serials]} from the key process: trust it, cut revoked connections. */
void np_peers(struct np *np, const json_t *msg);

#endif
