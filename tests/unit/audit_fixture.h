/*
 * The fixture shared by the audit log suites (test_audit.c, the writer;
 * test_audit_verify.c, the verifier): a temporary directory holding
 * audit.log and its head file, an Ed25519 key pair with a signer callback,
 * records and logs made through vault/audit, the log read back as lines,
 * and verify expected to pass or to fail at a given line.  Test code only.
 */
#ifndef SV_AUDIT_FIXTURE_H
#define SV_AUDIT_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "b64.h"
#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"

struct fx {
	char dir[64];
	char log[PATH_MAX];
	char head[PATH_MAX];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static inline int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/svaudit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
	snprintf(f->head, sizeof(f->head), "%s/audit.log.head", f->dir);
	crypto_sign_keypair(f->pk, f->sk);
	*state = f;
	return 0;
}

static inline int
teardown(void **state)
{
	struct fx *f = *state;

	testtok_rmrf(f->dir);
	free(f);
	return 0;
}

/* The signer callback: ctx is the 64-byte libsodium secret key. */
static inline int
test_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return crypto_sign_detached(sig, NULL, msg, len, ctx) == 0 ? 0 : SV_ECRYPTO;
}

static inline json_t *
rec_fields(int i)
{
	char shadow[32];
	json_t *o;

	snprintf(shadow, sizeof(shadow), "web%d", i);
	o = json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:s,s:n}", "type", "sign", "shadow", shadow,
	    "account", "le", "op", "new-order", "names", "a.example", "b.example", "decision",
	    "allow", "reason");
	assert_non_null(o);
	return o;
}

static inline void
add_rec(struct audit *a, int i)
{
	json_t *o = rec_fields(i);

	assert_ok(audit_add(a, o));
	json_decref(o);
}

/* n lines: records, with a checkpoint after every ckpt-th record (0: none). */
static inline void
make_log(struct fx *f, int nrec, int ckpt)
{
	struct audit *a;
	int i;

	assert_ok(audit_open(f->log, &a));
	for (i = 1; i <= nrec; i++) {
		add_rec(a, i);
		assert_ok(audit_commit(a));
		if (ckpt > 0 && i % ckpt == 0)
			assert_ok(audit_checkpoint(a, "audit-key-1", test_sign, f->sk));
	}
	audit_close(a);
}

struct lines {
	char **l;
	size_t n;
};

static inline void
lines_load(const char *path, struct lines *ls)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(fp);
	ls->l = NULL;
	ls->n = 0;
	while ((n = getline(&line, &cap, fp)) > 0) {
		assert_int_equal(line[n - 1], '\n');
		line[n - 1] = '\0';
		ls->l = realloc(ls->l, (ls->n + 1) * sizeof(char *));
		assert_non_null(ls->l);
		ls->l[ls->n++] = strdup(line);
	}
	free(line);
	fclose(fp);
}

static inline void
append_raw(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static inline void
lines_free(struct lines *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++)
		free(ls->l[i]);
	free(ls->l);
}

static inline char *
hash_b64(const char *line)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char *s;

	crypto_hash_sha256(h, (const uint8_t *)line, strlen(line));
	assert_ok(b64u_encode(h, sizeof(h), &s));
	return s;
}

static inline off_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* A verify result r must be code at line, with want in the reason and the error detail. */
static inline void
expect_refusal(int r, const struct audit_report *rep, int code, uint64_t line, const char *want)
{
	if (r != code || rep->bad_line != line || strstr(rep->reason, want) == NULL)
		fail_msg("verify = %d (want %d), bad line %llu (want %llu), reason \"%s\" "
			 "(want \"%s\")",
		    r, code, (unsigned long long)rep->bad_line, (unsigned long long)line,
		    rep->reason, want);
	assert_non_null(strstr(sv_errmsg(r), want));
}

/* Verify must fail with code at line, with want in the reason. */
static inline void
expect_bad(const char *path, const uint8_t *pub, int code, uint64_t line, const char *want)
{
	struct audit_report rep;

	expect_refusal(audit_verify(path, pub, &rep), &rep, code, line, want);
}

static inline void
expect_ok(const char *path, const uint8_t *pub, uint64_t records, uint64_t checkpoints)
{
	struct audit_report rep;

	assert_ok(audit_verify(path, pub, &rep));
	assert_int_equal(rep.records, records);
	assert_int_equal(rep.checkpoints, checkpoints);
	assert_int_equal(rep.bad_line, 0);
	assert_int_equal(rep.sigs_checked, pub != NULL);
	assert_non_null(strstr(rep.reason, "intact"));
}

/* ---- key handover ---- */

/* Another signing key (the fixture's own is f->pk, f->sk). */
struct tkey {
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static inline void
tkey_new(struct tkey *k)
{
	crypto_sign_keypair(k->pk, k->sk);
}

/* Hand the log over from key_id (secret key sk) to next_id, whose keys are nk. */
static inline int
handover(struct audit *a, const char *key_id, uint8_t *sk, const char *next_id, struct tkey *nk)
{
	struct audit_next nx = { .key_id = next_id, .sign = test_sign, .ctx = nk->sk };

	memcpy(nx.pub, nk->pk, sizeof(nx.pub));
	return audit_handover(a, key_id, test_sign, sk, &nx);
}

/* Add and commit n records numbered from i. */
static inline void
add_recs(struct audit *a, int i, int n)
{
	for (; n > 0; n--)
		add_rec(a, i++);
	assert_ok(audit_commit(a));
}

/* The keys to trust as the two arguments keys, n: TRUST(f->pk, b.pk). */
#define TRUST(...)                                                                                 \
	(const uint8_t *const[]){ __VA_ARGS__ },                                                   \
	    sizeof((const uint8_t *const[]){ __VA_ARGS__ }) / sizeof(const uint8_t *)

/* audit_verify_keys() trusting the n keys (copied into the array it takes). */
static inline int
verify_keys(const char *path, const uint8_t *const *keys, size_t n, struct audit_report *rep)
{
	uint8_t pubs[4][32];
	size_t i;

	assert_true(n <= 4);
	for (i = 0; i < n; i++)
		memcpy(pubs[i], keys[i], 32);
	return audit_verify_keys(path, n ? (const uint8_t(*)[32])pubs : NULL, n, rep);
}

/* As expect_bad(), trusting keys. */
static inline void
expect_bad_keys(const char *path, const uint8_t *const *keys, size_t n, int code, uint64_t line,
    const char *want)
{
	struct audit_report rep;

	expect_refusal(verify_keys(path, keys, n, &rep), &rep, code, line, want);
}

/* As expect_ok(), trusting keys, with the handovers counted; the report in *rep. */
static inline void
expect_ok_keys(const char *path, const uint8_t *const *keys, size_t n, uint64_t records,
    uint64_t checkpoints, uint64_t handovers, struct audit_report *rep)
{
	int r = verify_keys(path, keys, n, rep);

	if (r != 0)
		fail_msg("verify = %d: %s", r, rep->reason);
	assert_int_equal(rep->records, records);
	assert_int_equal(rep->checkpoints, checkpoints);
	assert_int_equal(rep->handovers, handovers);
	assert_int_equal(rep->bad_line, 0);
	assert_int_equal(rep->sigs_checked, n > 0);
	assert_int_equal(rep->have_keys, n > 0 && (checkpoints > 0 || rep->head_checked));
	assert_non_null(strstr(rep->reason, "intact"));
}

/* The whole file at path (malloc'd, *len bytes). */
static inline uint8_t *
file_read(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* Replace the file at path with len bytes of data. */
static inline void
file_put(const char *path, const void *data, size_t len)
{
	unlink(path);
	append_raw(path, data, len);
}

/* The file at path holds exactly len bytes of data. */
static inline void
assert_file_is(const char *path, const uint8_t *data, size_t len)
{
	size_t n;
	uint8_t *now = file_read(path, &n);

	assert_int_equal(n, len);
	assert_memory_equal(now, data, len);
	free(now);
}

/* Does the signature of line verify with pk, checked the way audit.h documents it? */
static inline int
doc_sig_verifies(const uint8_t *pk, const char *context, const char *line)
{
	size_t len = strlen(line), clen = strlen(context), ulen, slen;
	uint8_t *sig, *msg;
	int ok;

	assert_true(len > 96);
	assert_memory_equal(line + len - 96, ",\"sig\":\"", 8);
	assert_memory_equal(line + len - 2, "\"}", 2);
	assert_ok(b64u_decode(line + len - 88, 86, 64, &sig, &slen));
	assert_int_equal(slen, 64);
	ulen = len - 96 + 1;
	msg = malloc(clen + ulen);
	assert_non_null(msg);
	memcpy(msg, context, clen);
	memcpy(msg + clen, line, ulen - 1);
	msg[clen + ulen - 1] = '}';
	ok = crypto_sign_verify_detached(sig, msg, clen + ulen, pk) == 0;
	free(msg);
	free(sig);
	return ok;
}

/* Sign o the documented way (context || compact o), add "sig", return the line. */
static inline char *
sign_json(const uint8_t *sk, const char *context, json_t *o)
{
	char *u, *line, *s;
	size_t clen = strlen(context), ulen;
	uint8_t sig[64], *msg;

	assert_non_null(o);
	u = json_dumps(o, JSON_COMPACT);
	ulen = strlen(u);
	msg = malloc(clen + ulen);
	assert_non_null(msg);
	memcpy(msg, context, clen);
	memcpy(msg + clen, u, ulen);
	crypto_sign_detached(sig, NULL, msg, clen + ulen, sk);
	assert_ok(b64u_encode(sig, 64, &s));
	json_object_set_new(o, "sig", json_string(s));
	line = json_dumps(o, JSON_COMPACT);
	free(s);
	free(msg);
	free(u);
	json_decref(o);
	return line;
}

#endif
