/*
 * shadow issue: one ACME order from start to installed certificate, with
 * every JWS signed by the vault.  The certificate key is made here and never
 * leaves this server; or, with --csr, the order is finalized with a CSR made
 * elsewhere (o->ext, checked by the caller) and no key exists here.  Orders
 * that come back ready (the CA reused valid authorizations of the account)
 * skip straight to finalize; pending ones are validated with http-01 or
 * dns-01.  Nothing on disk changes unless the whole issuance succeeded.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "clock.h"
#include "fileio.h"
#include "log.h"
#include "names.h"
#include "shadow.h"
#include "sv_err.h"

#define ISSUE_POLL_FIRST_MS 50 /* first wait when polling an order or authorization */
#define ISSUE_CERT_FIRST_MS 2  /* first wait for a certificate after finalize */
/*
 * A nonce set aside at opening is used for signing ahead only this soon:
 * after a long validation a CA may have forgotten it, and a refused nonce
 * costs a signature and a request.
 */
#define ISSUE_AHEAD_NONCE_MAX_S 30

void
shadow_progress(const struct shadow *s, const char *fmt, ...)
{
	va_list ap;

	if (s->quiet || s->json)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static EVP_PKEY *
make_key(const char *type)
{
	if (type == NULL) /* no key type: a CSR made elsewhere was meant (o->ext) */
		return NULL;
	if (strcmp(type, "ec-p256") == 0)
		return EVP_EC_gen("P-256");
	if (strcmp(type, "ec-p384") == 0)
		return EVP_EC_gen("P-384");
	if (strcmp(type, "rsa-2048") == 0)
		return EVP_RSA_gen(2048);
	if (strcmp(type, "rsa-3072") == 0)
		return EVP_RSA_gen(3072);
	return NULL;
}

/* CSR (DER) for all names, CN the first; *key_pem is the new key (caller wipes and frees). */
static int
make_csr(const struct issue_opts *o, uint8_t **der, size_t *dlen, EVP_PKEY **keyout, char **key_pem)
{
	EVP_PKEY *key = make_key(o->key_type);
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *p = NULL;
	char *data;
	long len;
	size_t i;
	int n, r = SV_ECRYPTO;

	*der = NULL;
	*keyout = NULL;
	*key_pem = NULL;
	if (key == NULL || req == NULL || exts == NULL || gens == NULL || b == NULL)
		goto out;
	for (i = 0; i < o->nnames; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();

		ASN1_STRING_set(s, o->names[i], (int)strlen(o->names[i]));
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	if (strlen(o->names[0]) <= 64)
		X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
		    (const unsigned char *)o->names[0], -1, -1, 0);
	sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, gens));
	if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 || (n = i2d_X509_REQ(req, &p)) <= 0 ||
	    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	len = BIO_get_mem_data(b, &data);
	if ((*key_pem = strndup(data, (size_t)len)) == NULL)
		goto out;
	*der = p;
	*dlen = (size_t)n;
	*keyout = key;
	key = NULL;
	p = NULL;
	r = 0;
out:
	if (r != 0)
		sv_seterr_ssl(r, "making the certificate key and CSR");
	OPENSSL_free(p);
	BIO_free(b);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return r;
}

/* A function run on a thread of its own; its error (sv_err is per thread) is carried back. */
struct bg {
	int (*fn)(void *);
	void *arg;
	pthread_t thread;
	int started, r;
	char err[512];
};

/*
 * The certificate key and CSR need only the names and the key type, so
 * they are made on a thread from the moment the CA is open (the vault's
 * mutual TLS takes longer) while the order is placed, and collected before
 * finalize.  The
 * same thread stages the new version (lock, privkey.pem, pruning): a lineage
 * another run holds stops this one before anything is finalized.
 */
struct csr {
	struct bg bg;
	const struct issue_opts *o;
	uint8_t *der;
	size_t dlen;
	EVP_PKEY *key;
	char *pem; /* the key, PEM (wiped when freed) */
	struct install_stage stage;
};

/*
 * The first look at the order after finalize is signed ahead: once the
 * vault has signed finalize, a thread has it sign that POST-as-GET (with a
 * nonce set aside while opening the CA) while the CA works on finalize, so
 * the look goes out as soon as the CA answers.  The vault connection is the
 * thread's until it is joined; a badNonce answer falls back to signing again.
 */
struct ahead {
	struct bg bg;
	struct vacct *va;
	char url[ACME_URL_MAX + 1];
	char nonce[ACME_NONCE_MAX + 1]; /* "" = none set aside */
	double got;			/* when it was (sv_mono_now()) */
	char *body;			/* the signed request, once joined */
};

struct run {
	struct shadow *s;
	const struct issue_opts *o;
	struct acme *a;
	struct vacct va;
	struct acme_poll poll;
	struct acme_poll cert_poll;
	struct solver *sv;
	struct csr csr;
	struct ahead ahead;
};

/* Present one pending authorization's challenge and tell the CA to check it. */
static int
start_authz(struct run *x, struct acme_authz *z)
{
	const struct acme_challenge *c = acme_authz_challenge(z, x->o->challenge);
	char *ka = NULL;
	int r;

	if (c == NULL || c->token == NULL)
		return sv_seterr(
		    SV_ECA, "the CA offers no %s challenge for %s", x->o->challenge, z->id.value);
	if (x->sv == NULL && (r = solver_open(x->o, &x->sv)) != 0)
		return r;
	shadow_progress(x->s, "validating %s (%s)", z->id.value, x->o->challenge);
	if ((r = acme_keyauth(c->token, x->va.jwk, &ka)) != 0 ||
	    (r = solver_present(x->sv, z->id.value, c->token, ka)) != 0 ||
	    (r = acme_challenge_answer(x->a, c->url, va_sign, &x->va, NULL)) != 0)
		r = sv_preferr(r, "%s", z->id.value);
	free(ka);
	return r;
}

static int
authorize(struct run *x, struct acme_order *ord)
{
	struct acme_authz *z;
	size_t i;
	int r = 0;

	if ((z = calloc(ord->nauthzs + 1, sizeof(*z))) == NULL)
		return SV_ENOMEM;
	for (i = 0; i < ord->nauthzs && r == 0; i++) {
		if ((r = acme_authz_get(x->a, ord->authzs[i], va_sign, &x->va, &z[i])) != 0)
			break;
		if (z[i].status == ACME_S_VALID)
			shadow_progress(
			    x->s, "%s: already authorized for this account", z[i].id.value);
		else if (z[i].status == ACME_S_PENDING)
			r = start_authz(x, &z[i]);
		else
			r = sv_seterr(SV_ECA, "authorization for %s is %s", z[i].id.value,
			    acme_status_name(z[i].status));
	}
	for (i = 0; i < ord->nauthzs && r == 0; i++)
		if ((r = acme_authz_poll(
			 x->a, &z[i], ACME_WANT(ACME_S_VALID), &x->poll, va_sign, &x->va)) != 0)
			r = sv_preferr(r, "validating %s", z[i].id.value);
	for (i = 0; i < ord->nauthzs; i++)
		acme_authz_free(&z[i]);
	free(z);
	return r;
}

static void *
bg_main(void *p)
{
	struct bg *b = p;

	if ((b->r = b->fn(b->arg)) != 0)
		snprintf(b->err, sizeof(b->err), "%s", sv_errmsg(b->r));
	return NULL;
}

/* Start fn(arg) on a thread, or run it now if no thread can be made. */
static void
bg_start(struct bg *b, int (*fn)(void *), void *arg)
{
	b->fn = fn;
	b->arg = arg;
	b->r = 0;
	b->err[0] = '\0';
	if (!(b->started = pthread_create(&b->thread, NULL, bg_main, b) == 0))
		bg_main(b);
}

/* Wait for it: 0, or its error with its message. */
static int
bg_wait(struct bg *b)
{
	if (b->started) {
		pthread_join(b->thread, NULL);
		b->started = 0;
	}
	return b->r != 0 ? sv_seterr(b->r, "%s", b->err) : 0;
}

/* A CSR made elsewhere: its DER and public key, as make_csr() gives its own (no key PEM). */
static int
csr_given(const struct extcsr *e, uint8_t **der, size_t *dlen, EVP_PKEY **key)
{
	if ((*der = OPENSSL_memdup(e->der, e->dlen)) == NULL || EVP_PKEY_up_ref(e->key) != 1)
		return SV_ENOMEM;
	*dlen = e->dlen;
	*key = e->key;
	return 0;
}

static int
csr_make(void *arg)
{
	struct csr *c = arg;
	int r = c->o->ext != NULL ? csr_given(c->o->ext, &c->der, &c->dlen, &c->key)
				  : make_csr(c->o, &c->der, &c->dlen, &c->key, &c->pem);

	return r != 0 ? r : install_stage(c->o, c->pem, &c->stage);
}

static void
csr_free(struct csr *c)
{
	if (c->o != NULL) {
		bg_wait(&c->bg);
		install_abandon(&c->stage);
	}
	if (c->pem != NULL) {
		memset(c->pem, 0, strlen(c->pem));
		free(c->pem);
	}
	EVP_PKEY_free(c->key);
	OPENSSL_free(c->der);
	memset(c, 0, sizeof(*c));
}

/* Is the top certificate of this PEM chain issued by a name whose CN is cn? */
static int
chain_top_issued_by(const char *pem, const char *cn)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x, *top = NULL;
	char got[SHADOW_CHAIN_CN_MAX + 2]; /* a longer CN, cut short, still differs from cn */
	int yes = 0;

	while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_free(top);
		top = x;
	}
	ERR_clear_error(); /* the end of the chain */
	if (top != NULL &&
	    X509_NAME_get_text_by_NID(
		X509_get_issuer_name(top), NID_commonName, got, (int)sizeof(got)) >= 0)
		yes = strcmp(got, cn) == 0;
	X509_free(top);
	BIO_free(b);
	return yes;
}

/*
 * The chain to install: the CA's default, or with --preferred-chain the
 * first one offered (default, then each Link rel="alternate") whose top
 * certificate that issuer signed.  None matching: the default, and a word.
 */
static int
pick_chain(struct run *x, const char *url, struct acme_chain *out)
{
	struct acme_chain alt;
	size_t i;
	int r;

	if ((r = acme_cert_download(x->a, url, va_sign, &x->va, out)) != 0 ||
	    x->o->preferred_chain == NULL || chain_top_issued_by(out->pem, x->o->preferred_chain))
		return r;
	for (i = 0; i < out->nalt; i++) {
		/* A chain that cannot be had is one fewer choice, not a failed issuance. */
		if ((r = acme_cert_download(x->a, out->alternates[i], va_sign, &x->va, &alt)) !=
		    0) {
			shadow_progress(x->s, "alternate chain %zu: %s", i + 1, sv_errmsg(r));
			continue;
		}
		if (chain_top_issued_by(alt.pem, x->o->preferred_chain)) {
			acme_chain_free(out);
			*out = alt;
			shadow_progress(
			    x->s, "using the alternate chain issued by %s", x->o->preferred_chain);
			return 0;
		}
		acme_chain_free(&alt);
	}
	shadow_progress(x->s, "no chain offered by the CA is issued by %s: using the default",
	    x->o->preferred_chain);
	return 0;
}

static int
ahead_run(void *arg)
{
	struct ahead *h = arg;

	return acme_sign_ahead(va_sign, h->va, h->url, h->nonce, NULL, &h->body);
}

/* Join the thread: the vault connection is ours again.  A failure only loses the head start. */
static void
ahead_join(struct ahead *h)
{
	int r;

	if (h->bg.fn == NULL)
		return;
	if ((r = bg_wait(&h->bg)) != 0)
		sv_debug("signing ahead: %s", sv_errmsg(r));
	h->bg.fn = NULL;
	h->nonce[0] = '\0'; /* used (or lost) either way */
}

/* finalize's signer: the vault signs it, then a thread signs the first look ahead. */
static int
finalize_sign(void *ctx, const char *url, const char *nonce, const uint8_t *payload, size_t plen,
    int use_jwk, json_t **jws_out)
{
	struct run *x = ctx;
	int r;

	ahead_join(&x->ahead); /* a badNonce retry: the connection must be free */
	if ((r = va_sign(&x->va, url, nonce, payload, plen, use_jwk, jws_out)) == 0 &&
	    x->ahead.body == NULL && x->ahead.nonce[0] != '\0' && x->ahead.url[0] != '\0')
		bg_start(&x->ahead.bg, ahead_run, &x->ahead);
	return r;
}

static int
finalize_and_install(struct run *x, struct acme_order *ord, char *installed, size_t n)
{
	struct acme_chain chain;
	int r;

	memset(&chain, 0, sizeof(chain));
	shadow_progress(x->s, "finalizing");
	if ((r = bg_wait(&x->csr.bg)) != 0)
		goto out;
	x->ahead.va = &x->va;
	if (sv_mono_now() - x->ahead.got > ISSUE_AHEAD_NONCE_MAX_S)
		x->ahead.nonce[0] = '\0';
	if (ord->url != NULL && strlen(ord->url) < sizeof(x->ahead.url))
		memcpy(x->ahead.url, ord->url, strlen(ord->url) + 1);
	if (ord->status == ACME_S_READY)
		r = acme_order_finalize(x->a, ord, x->csr.der, x->csr.dlen, finalize_sign, x);
	ahead_join(&x->ahead);
	if (r != 0)
		goto out;
	/* Issuance usually takes the CA milliseconds: look once before waiting. */
	if (ord->status == ACME_S_PROCESSING &&
	    (r = acme_order_get_signed(x->a, ord, x->ahead.body, va_sign, &x->va)) != 0)
		goto out;
	if ((r = acme_order_poll(
		 x->a, ord, ACME_WANT(ACME_S_VALID), &x->cert_poll, va_sign, &x->va)) != 0 ||
	    (r = pick_chain(x, ord->certificate, &chain)) != 0)
		goto out;
	r = install_finish(&x->csr.stage, x->o, chain.pem, x->csr.key, installed, n);
	if (r == 0)
		shadow_progress(x->s, "installed %s", installed);
out:
	acme_chain_free(&chain);
	return r;
}

/*
 * Opening the CA overlaps with asking the vault for the account.  The vault
 * names the account's directory, so the CA side starts with the directory
 * the last run was told (state/accounts/NAME.directory) while a thread asks
 * the vault; if the vault now names another directory, the CA is opened
 * again with that one.  Only the directory URL is guessed: the account URL
 * and key always come from this run's answer, and nothing is signed before
 * both sides are done.
 */
struct lookup {
	struct shadow *s;
	const char *account;
	struct vacct va;
};

static int
lookup_run(void *arg)
{
	struct lookup *l = arg;

	return va_account(l->s, l->account, &l->va);
}

/* state/accounts/NAME.directory; the name is checked before it becomes a path. */
static int
dir_path(struct shadow *s, const char *account, char *path, size_t n)
{
	char rel[SV_NAME_MAX + 32];

	if (sv_name_check(account, "account name") != 0)
		return SV_EINVAL;
	snprintf(rel, sizeof(rel), "accounts/%s.directory", account);
	return shadow_path(s, rel, path, n);
}

static char *
dir_cached(struct shadow *s, const char *account)
{
	char path[PATH_MAX];
	uint8_t *d = NULL;
	size_t len;

	if (dir_path(s, account, path, sizeof(path)) != 0 ||
	    sv_read_file(path, ACME_URL_MAX, &d, &len) != 0)
		return NULL;
	if (acme_url_check((char *)d) != 0) {
		free(d);
		return NULL;
	}
	return (char *)d;
}

/* Only a cache: a failure costs the next run its head start, nothing else. */
static void
dir_remember(struct shadow *s, const char *account, const char *dir)
{
	char path[PATH_MAX], *slash;

	if (dir_path(s, account, path, sizeof(path)) != 0 || (slash = strrchr(path, '/')) == NULL)
		return;
	*slash = '\0';
	if (sv_mkdir_p(path, 0700) == 0) {
		*slash = '/';
		if (sv_write_file_atomic(path, dir, strlen(dir), 0600) == 0)
			return;
	}
	sv_debug("could not remember the directory of account %s", account);
}

static int
open_ca(struct run *x, const char *account, struct acme_opts *ao)
{
	struct lookup l = { x->s, account, { 0 } };
	char *guess = dir_cached(x->s, account);
	struct bg b;
	int r = 0, rl, rn;

	if (guess == NULL) {
		bg_start(&x->csr.bg, csr_make, &x->csr);
		rl = lookup_run(&l);
	} else {
		bg_start(&b, lookup_run, &l);
		ao->directory_url = guess;
		if ((r = acme_open(ao, &x->a)) == 0)
			r = acme_nonce_prefetch(x->a);
		/* The vault side takes longer (mutual TLS): the key and CSR meanwhile, */
		bg_start(&x->csr.bg, csr_make, &x->csr);
		/* and a second nonce, for the look after finalize signed ahead. */
		x->ahead.got = sv_mono_now();
		if (r == 0 && acme_nonce_take(x->a, x->ahead.nonce, sizeof(x->ahead.nonce)) == 0 &&
		    (rn = acme_nonce_prefetch(x->a)) != 0)
			sv_debug("newNonce: %s", sv_errmsg(rn)); /* the next POST asks again */
		rl = bg_wait(&b);
	}
	x->va = l.va;
	if (rl == 0 && (guess == NULL || strcmp(guess, x->va.directory) != 0)) {
		x->ahead.nonce[0] = '\0'; /* that CA's */
		acme_close(x->a);
		x->a = NULL;
		ao->directory_url = x->va.directory;
		if ((r = acme_open(ao, &x->a)) == 0)
			dir_remember(x->s, account, x->va.directory);
	}
	ao->directory_url = x->va.directory;
	free(guess);
	return rl != 0 ? rl : r;
}

int
shadow_issue(struct shadow *s, const struct issue_opts *o, char *installed, size_t n)
{
	struct acme_opts ao = { NULL, o->acme_ca_file, 0, "shadow" };
	struct acme_ident ids[ISSUE_NAMES_MAX];
	struct acme_order ord;
	struct run x;
	size_t i;
	int r;

	memset(&x, 0, sizeof(x));
	memset(&ord, 0, sizeof(ord));
	x.s = s;
	x.o = o;
	x.poll.deadline_ms = (long)(o->timeout ? o->timeout : 120) * 1000;
	/* CAs that send Retry-After are obeyed; without it, start short and double. */
	x.poll.first_ms = ISSUE_POLL_FIRST_MS;
	/*
	 * Signing a certificate takes a CA milliseconds (Pebble issues in the
	 * background and answers "processing"): look again soon, then back off.
	 */
	x.cert_poll = x.poll;
	x.cert_poll.first_ms = ISSUE_CERT_FIRST_MS;
	x.csr.o = o;
	x.csr.stage.lockfd = -1;
	if ((r = open_ca(&x, o->account, &ao)) != 0)
		goto out;
	for (i = 0; i < o->nnames; i++) {
		ids[i].type = "dns";
		ids[i].value = (char *)o->names[i];
	}
	shadow_progress(s, "ordering %s%s (account %s)", o->names[0],
	    o->nnames > 1 ? " and more" : "", o->account);
	if ((r = acme_order_new(x.a, ids, o->nnames, o->replaces, va_sign, &x.va, &ord)) != 0)
		goto out;
	/* After validation the order from newOrder is stale: ask again before waiting. */
	if (ord.status == ACME_S_PENDING &&
	    ((r = authorize(&x, &ord)) != 0 ||
		(r = acme_order_get(x.a, &ord, va_sign, &x.va)) != 0))
		goto out;
	if ((r = acme_order_poll(x.a, &ord, ACME_WANT(ACME_S_READY) | ACME_WANT(ACME_S_VALID),
		 &x.poll, va_sign, &x.va)) != 0)
		goto out;
	r = finalize_and_install(&x, &ord, installed, n);
out:
	csr_free(&x.csr);
	free(x.ahead.body);
	solver_close(x.sv);
	acme_order_free(&ord);
	acme_close(x.a);
	s->signatures += x.va.signatures;
	va_account_free(&x.va);
	return r;
}
