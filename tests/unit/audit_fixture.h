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

/* Verify must fail with code at line, with want in the reason. */
static inline void
expect_bad(const char *path, const uint8_t *pub, int code, uint64_t line, const char *want)
{
	struct audit_report rep;
	int r = audit_verify(path, pub, &rep);

	if (r != code || rep.bad_line != line || strstr(rep.reason, want) == NULL)
		fail_msg("verify = %d (want %d), bad line %llu (want %llu), reason \"%s\" "
			 "(want \"%s\")",
		    r, code, (unsigned long long)rep.bad_line, (unsigned long long)line, rep.reason,
		    want);
	assert_non_null(strstr(sv_errmsg(r), want));
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

#endif
