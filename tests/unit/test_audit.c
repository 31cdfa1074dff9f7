/*
 * vault/audit: the tamper-evident audit log, on real files in a temporary
 * directory.  Chain continuation across reopen; the documented format checked
 * independently (hashes and Ed25519 signatures recomputed here); verify
 * failing on a flipped byte, a deleted, swapped or renumbered line, a
 * truncation past the head file's checkpoint, forged checkpoint and head
 * signatures and a re-chained deletion; repair of a partial last line and
 * refusal of damaged tails; reserved and oversized fields; commit failure
 * roll-back through the test hook; checkpoint errors; 10,000 records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
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

static int
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

static int
teardown(void **state)
{
	struct fx *f = *state;

	testtok_rmrf(f->dir);
	free(f);
	return 0;
}

/* The signer callback: ctx is the 64-byte libsodium secret key. */
static int
test_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return crypto_sign_detached(sig, NULL, msg, len, ctx) == 0 ? 0 : SV_ECRYPTO;
}

static int
failing_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return sv_seterr(SV_EHSM, "test signer: token removed");
}

static json_t *
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

static void
add_rec(struct audit *a, int i)
{
	json_t *o = rec_fields(i);

	assert_ok(audit_add(a, o));
	json_decref(o);
}

/* n lines: records, with a checkpoint after every ckpt-th record (0: none). */
static void
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

static void
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

static void
append_raw(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
append_line(const char *path, const char *line)
{
	append_raw(path, line, strlen(line));
	append_raw(path, "\n", 1);
}

static void
lines_save(const char *path, const struct lines *ls)
{
	size_t i;

	assert_int_equal(truncate(path, 0), 0);
	for (i = 0; i < ls->n; i++)
		append_line(path, ls->l[i]);
}

static void
lines_free(struct lines *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++)
		free(ls->l[i]);
	free(ls->l);
}

static void
lines_delete(struct lines *ls, size_t idx)
{
	free(ls->l[idx]);
	memmove(ls->l + idx, ls->l + idx + 1, (ls->n - idx - 1) * sizeof(char *));
	ls->n--;
}

static char *
hash_b64(const char *line)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char *s;

	crypto_hash_sha256(h, (const uint8_t *)line, strlen(line));
	assert_ok(b64u_encode(h, sizeof(h), &s));
	return s;
}

/*
 * What an attacker without the key can do: from line index from on, set seq
 * to the index + 1 (renumber) if renumber, and recompute every prev.
 */
static void
rechain(struct lines *ls, size_t from, int renumber)
{
	json_t *o;
	char *h;
	size_t i;

	for (i = from; i < ls->n; i++) {
		o = json_loads(ls->l[i], 0, NULL);
		assert_non_null(o);
		if (renumber)
			json_object_set_new(o, "seq", json_integer((json_int_t)i + 1));
		h = i == 0 ? strdup(AUDIT_GENESIS) : hash_b64(ls->l[i - 1]);
		json_object_set_new(o, "prev", json_string(h));
		free(h);
		free(ls->l[i]);
		ls->l[i] = json_dumps(o, JSON_COMPACT);
		json_decref(o);
	}
}

static off_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* Verify must fail with code at line, with want in the reason. */
static void
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

static void
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

/* ---- tests ---- */

static void
test_chain_reopen(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	struct audit *a;
	json_t *o;
	char *h;
	size_t i;

	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_seq(a), 0);
	assert_int_equal(audit_repaired(a), 0);
	for (i = 1; i <= 3; i++)
		add_rec(a, (int)i);
	assert_int_equal(audit_pending(a), 3);
	assert_int_equal(audit_seq(a), 0); /* queued is not committed */
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), 3);
	assert_int_equal(audit_pending(a), 0);
	audit_close(a);
	assert_int_equal(file_size(f->log) > 0, 1);

	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_seq(a), 3);
	add_rec(a, 4);
	add_rec(a, 5);
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), 5);
	audit_close(a);

	lines_load(f->log, &ls);
	assert_int_equal(ls.n, 5);
	assert_int_equal(strncmp(ls.l[0], "{\"seq\":1,\"time\":\"", 17), 0);
	assert_non_null(strstr(ls.l[0],
	    "\"prev\":\"" AUDIT_GENESIS "\",\"type\":\"sign\","
	    "\"shadow\":\"web1\""));
	for (i = 1; i < ls.n; i++) {
		o = json_loads(ls.l[i], 0, NULL);
		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), i + 1);
		assert_int_equal(strlen(json_string_value(json_object_get(o, "time"))), 24);
		assert_int_equal(json_string_value(json_object_get(o, "time"))[23], 'Z');
		h = hash_b64(ls.l[i - 1]);
		assert_string_equal(json_string_value(json_object_get(o, "prev")), h);
		free(h);
		json_decref(o);
	}
	lines_free(&ls);
	expect_ok(f->log, f->pk, 5, 0);
	expect_ok(f->log, NULL, 5, 0);
}

/* Check a signed line the way audit.h documents it, without audit.c. */
static void
check_doc_sig(const uint8_t *pk, const char *context, const char *line)
{
	size_t len = strlen(line), clen = strlen(context), ulen;
	uint8_t *sig, *msg;
	size_t slen;

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
	assert_int_equal(crypto_sign_verify_detached(sig, msg, clen + ulen, pk), 0);
	msg[clen + 2] ^= 1; /* and it can fail */
	assert_int_not_equal(crypto_sign_verify_detached(sig, msg, clen + ulen, pk), 0);
	free(msg);
	free(sig);
}

static void
test_verify_intact(void **state)
{
	struct fx *f = *state;
	uint8_t pk2[32], sk2[64];
	struct audit_report rep;
	struct lines ls, hd;
	json_t *o;
	char *h;

	make_log(f, 50, 10); /* 55 lines; checkpoints at 11, 22, 33, 44, 55 */
	expect_ok(f->log, f->pk, 55, 5);
	assert_ok(audit_verify(f->log, f->pk, &rep));
	assert_int_equal(rep.head_checked, 1);
	assert_int_equal(rep.last_checkpoint, 55);
	assert_ok(audit_verify(f->log, NULL, &rep));
	assert_int_equal(rep.sigs_checked, 0);
	assert_non_null(strstr(rep.reason, "NOT checked"));

	lines_load(f->log, &ls);
	assert_int_equal(ls.n, 55);
	assert_int_equal(strncmp(ls.l[21], "{\"seq\":22,", 10), 0);
	assert_non_null(strstr(ls.l[21],
	    "\",\"type\":\"checkpoint\",\"key\":\"audit-key-1\","
	    "\"sig\":\""));
	check_doc_sig(f->pk, AUDIT_CKPT_CONTEXT, ls.l[21]);
	lines_load(f->head, &hd);
	assert_int_equal(hd.n, 1);
	check_doc_sig(f->pk, AUDIT_HEAD_CONTEXT, hd.l[0]);
	o = json_loads(hd.l[0], 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 55);
	h = hash_b64(ls.l[54]);
	assert_string_equal(json_string_value(json_object_get(o, "hash")), h);
	free(h);
	json_decref(o);
	lines_free(&hd);
	lines_free(&ls);

	crypto_sign_keypair(pk2, sk2); /* another key verifies neither head nor checkpoints */
	expect_bad(f->log, pk2, SV_ECRYPTO, 0, "head file");
	unlink(f->head);
	expect_bad(f->log, pk2, SV_ECRYPTO, 11, "signature does not verify");
}

static void
test_flipped_byte(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	char *p;

	make_log(f, 20, 10);
	lines_load(f->log, &ls);
	p = strstr(ls.l[4], "\"web5\"");
	assert_non_null(p);
	p[1] = 'x'; /* still valid JSON: only the chain can tell */
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 6, "prev does not match the hash of line 5");
	expect_bad(f->log, NULL, SV_ECRYPTO, 6, "prev does not match the hash of line 5");
	p[1] = 'w';
	lines_save(f->log, &ls);
	expect_ok(f->log, f->pk, 22, 2);
	p = strchr(ls.l[6], ':');
	*p = ';'; /* no longer JSON */
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_EINVAL, 7, "not valid JSON");
	p = strstr(ls.l[0], AUDIT_GENESIS);
	assert_non_null(p);
	p[0] = 'B';
	lines_save(f->log, &ls);
	expect_bad(f->log, NULL, SV_ECRYPTO, 1, "prev is not the genesis value");
	lines_free(&ls);
}

static void
test_deleted_and_swapped(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	json_t *o;
	char *t;

	make_log(f, 20, 10);
	lines_load(f->log, &ls);
	t = ls.l[3];
	ls.l[3] = ls.l[4];
	ls.l[4] = t;
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 4, "seq is 5, expected 4");
	ls.l[4] = ls.l[3];
	ls.l[3] = t;
	lines_delete(&ls, 7);
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 8, "seq is 9, expected 8");
	/* A seq that skips, with the chain after it made consistent again. */
	o = json_loads(ls.l[4], 0, NULL);
	assert_non_null(o);
	json_object_set_new(o, "seq", json_integer(6));
	free(ls.l[4]);
	ls.l[4] = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	rechain(&ls, 5, 0);
	lines_save(f->log, &ls);
	expect_bad(f->log, NULL, SV_ECRYPTO, 5, "seq is 6, expected 5");
	lines_free(&ls);
}

static void
test_truncation(void **state)
{
	struct fx *f = *state;
	struct audit *a;
	struct lines ls;

	make_log(f, 25, 10); /* checkpoints at 11 and 22; 27 lines */
	lines_load(f->log, &ls);
	assert_int_equal(ls.n, 27);
	ls.n = 24; /* records after the last checkpoint: not detectable (audit.h) */
	lines_save(f->log, &ls);
	expect_ok(f->log, f->pk, 24, 2);
	ls.n = 21; /* past checkpoint 22 */
	lines_save(f->log, &ls);
	ls.n = 27;
	expect_bad(f->log, f->pk, SV_ECRYPTO, 22,
	    "truncated: checkpoint 22 recorded in the head file is missing");
	expect_bad(f->log, NULL, SV_ECRYPTO, 22, "truncated: checkpoint 22");
	assert_sverr(audit_open(f->log, &a), SV_ESTATE);
	assert_non_null(strstr(sv_errmsg(SV_ESTATE), "truncated: checkpoint 22"));
	assert_int_equal(file_size(f->log) > 0, 1);
	lines_free(&ls);
}

static void
test_forged_checkpoint(void **state)
{
	struct fx *f = *state;
	uint8_t pk2[32], sk2[64];
	struct audit *a;
	struct lines ls;
	char *p;

	/* Deleted, renumbered, re-chained: only the signatures catch it. */
	make_log(f, 20, 10);
	unlink(f->head);
	lines_load(f->log, &ls);
	lines_delete(&ls, 2);
	rechain(&ls, 2, 1);
	lines_save(f->log, &ls);
	expect_ok(f->log, NULL, 21, 2); /* without the key nothing is wrong */
	expect_bad(f->log, f->pk, SV_ECRYPTO, 10, "signature does not verify");
	lines_free(&ls);

	/* A byte of the signature of the last line (nothing chains to it). */
	unlink(f->log);
	make_log(f, 10, 10);
	unlink(f->head);
	lines_load(f->log, &ls);
	p = ls.l[10] + strlen(ls.l[10]) - 10;
	*p = *p == 'A' ? 'B' : 'A';
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 11, "checkpoint (key \"audit-key-1\"): signature");
	lines_free(&ls);

	/* A checkpoint by someone else's key. */
	unlink(f->log);
	crypto_sign_keypair(pk2, sk2);
	assert_ok(audit_open(f->log, &a));
	add_rec(a, 1);
	assert_ok(audit_commit(a));
	assert_ok(audit_checkpoint(a, "audit-key-1", test_sign, sk2));
	add_rec(a, 3);
	assert_ok(audit_commit(a));
	audit_close(a);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 0, "head file"); /* head signed by sk2 too */
	expect_ok(f->log, pk2, 3, 1);
	unlink(f->head);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 2, "signature does not verify");
}

/* Sign o the documented way (context || compact o), add "sig", return the line. */
static char *
sign_json(const uint8_t *sk, const char *context, json_t *o)
{
	char *u = json_dumps(o, JSON_COMPACT), *line, *s;
	size_t clen = strlen(context), ulen = strlen(u);
	uint8_t sig[64], *msg = malloc(clen + ulen);

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

static void
write_head(struct fx *f, const uint8_t *sk, long long seq, const char *hash)
{
	char *line = sign_json(sk, AUDIT_HEAD_CONTEXT,
	    json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "hash", hash, "key", "k"));

	unlink(f->head);
	append_line(f->head, line);
	free(line);
}

/* Checkpoints with a valid signature but not in the one allowed shape. */
static void
test_checkpoint_shape(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	char *h, *line, *sp;

	make_log(f, 3, 0);
	lines_load(f->log, &ls);
	h = hash_b64(ls.l[2]);
	line = sign_json(f->sk, AUDIT_CKPT_CONTEXT,
	    json_pack("{s:i,s:s,s:s,s:s,s:s,s:i}", "seq", 4, "time", "2026-11-29T21:30:05.123Z",
		"prev", h, "type", "checkpoint", "key", "k", "extra", 1));
	append_line(f->log, line);
	expect_bad(f->log, f->pk, SV_EINVAL, 4, "checkpoint must be {seq,time,prev,type,key,sig}");
	free(line);
	/* The right shape, made here from audit.h alone, verifies... */
	line = sign_json(f->sk, AUDIT_CKPT_CONTEXT,
	    json_pack("{s:i,s:s,s:s,s:s,s:s}", "seq", 4, "time", "2026-11-29T21:30:05.123Z", "prev",
		h, "type", "checkpoint", "key", "k"));
	lines_save(f->log, &ls);
	append_line(f->log, line);
	expect_ok(f->log, f->pk, 4, 1);
	/* ... but not with a space before the signature (same JSON, other bytes). */
	lines_save(f->log, &ls);
	sp = strstr(line, "\"sig\":") + 6;
	append_raw(f->log, line, (size_t)(sp - line));
	append_raw(f->log, " ", 1);
	append_line(f->log, sp);
	expect_bad(f->log, f->pk, SV_EINVAL, 4, "sig is not the last member in canonical form");
	free(line);
	lines_free(&ls);
	free(h);
}

static void
test_head_file(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	char *h;

	make_log(f, 20, 10);
	lines_load(f->log, &ls);
	h = hash_b64(ls.l[10]);
	write_head(f, f->sk, 11, h); /* our own head, pointing at checkpoint 11 */
	expect_ok(f->log, f->pk, 22, 2);
	write_head(f, f->sk, 12, h); /* the hash of line 11 claimed for line 12 */
	expect_bad(f->log, f->pk, SV_ECRYPTO, 12, "not the checkpoint recorded in the head file");
	free(h);
	h = hash_b64(ls.l[9]); /* a record, not a checkpoint */
	write_head(f, f->sk, 10, h);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 10, "not the checkpoint recorded in the head file");
	free(h);
	h = hash_b64(ls.l[10]);
	write_head(f, f->sk, 40, h);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 23, "truncated: checkpoint 40");
	free(h);
	lines_free(&ls);

	unlink(f->head);
	append_raw(f->head, "{\"seq\":1}\n", 10);
	expect_bad(f->log, NULL, SV_EINVAL, 0, "must be {seq,hash,key,sig}");
	unlink(f->head);
	append_raw(f->head, "{\"seq\":1,\"seq\":2}\n", 18);
	expect_bad(f->log, NULL, SV_EINVAL, 0, "duplicate");
	unlink(f->head);
	append_raw(f->head, "{}", 2);
	expect_bad(f->log, NULL, SV_EINVAL, 0, "head file");
}

static void
test_partial_repair(void **state)
{
	struct fx *f = *state;
	const char *partial = "{\"seq\":6,\"time\":\"2026-11";
	struct audit *a;
	off_t size;

	make_log(f, 5, 0);
	size = file_size(f->log);
	append_raw(f->log, partial, strlen(partial));
	expect_bad(f->log, NULL, SV_EINVAL, 6, "no final newline");
	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_repaired(a), strlen(partial));
	assert_int_equal(audit_seq(a), 5);
	assert_int_equal(file_size(f->log), size);
	add_rec(a, 6);
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), 6);
	audit_close(a);
	expect_ok(f->log, NULL, 6, 0);

	/* A file that is one partial line only (crash during the first write). */
	unlink(f->log);
	append_raw(f->log, partial, strlen(partial));
	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_repaired(a), strlen(partial));
	assert_int_equal(audit_seq(a), 0);
	add_rec(a, 1);
	assert_ok(audit_commit(a));
	audit_close(a);
	expect_ok(f->log, NULL, 1, 0);
}

static void
test_damaged_tail(void **state)
{
	static const char badtime[] =
	    "{\"seq\":1,\"time\":\"yesterday\",\"prev\":\"" AUDIT_GENESIS "\"}\n";
	struct fx *f = *state;
	struct audit *a;
	char *big;
	off_t size;

	make_log(f, 3, 0);
	append_raw(f->log, "garbage", 7);
	size = file_size(f->log);
	assert_sverr(audit_open(f->log, &a), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "does not look like a record"));
	assert_int_equal(file_size(f->log), size); /* nothing cut */

	unlink(f->log);
	make_log(f, 3, 0);
	big = malloc(AUDIT_RECORD_MAX + 10);
	memset(big, '{', AUDIT_RECORD_MAX + 10);
	append_raw(f->log, big, AUDIT_RECORD_MAX + 10);
	size = file_size(f->log);
	assert_sverr(audit_open(f->log, &a), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "have no newline"));
	assert_int_equal(file_size(f->log), size);
	/* The verifier caps a line too. */
	append_raw(f->log, "\n", 1);
	expect_bad(f->log, NULL, SV_EINVAL, 4, "over 16384 bytes");
	free(big);

	unlink(f->log);
	make_log(f, 3, 0);
	append_raw(f->log, "{\"seq\":\"4\"}\n", 12);
	size = file_size(f->log);
	assert_sverr(audit_open(f->log, &a), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "cannot chain to"));
	assert_int_equal(file_size(f->log), size);
	expect_bad(f->log, NULL, SV_EINVAL, 4, "not a record");

	unlink(f->log);
	append_raw(f->log, badtime, strlen(badtime));
	assert_sverr(audit_open(f->log, &a), SV_EINVAL);
	expect_bad(f->log, NULL, SV_EINVAL, 1, "time is not");
}

static void
test_open_errors(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct audit *a, *b;
	struct stat st;

	assert_sverr(audit_verify(f->log, f->pk, &rep), SV_ENOTFOUND);
	assert_non_null(strstr(rep.reason, "audit.log"));
	assert_sverr(audit_verify(f->dir, f->pk, &rep), SV_EIO);
	assert_non_null(strstr(rep.reason, "not a regular file"));
	assert_sverr(audit_open("/dev/full", &a), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "not a regular file"));
	assert_null(a);
	assert_ok(audit_open(f->log, &a));
	assert_sverr(audit_open(f->log, &b), SV_EBUSY);
	assert_non_null(strstr(sv_errmsg(SV_EBUSY), "another process"));
	audit_close(a);
	assert_ok(audit_open(f->log, &b));
	audit_close(b);
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	expect_ok(f->log, f->pk, 0, 0); /* an empty log is intact */
}

static void
test_reserved_fields(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "seq", "time", "prev" };
	struct audit *a;
	json_t *o;
	size_t i;
	char want[64];

	assert_ok(audit_open(f->log, &a));
	for (i = 0; i < 3; i++) {
		o = rec_fields(1);
		json_object_set_new(o, bad[i], json_integer(7));
		assert_sverr(audit_add(a, o), SV_EINVAL);
		snprintf(want, sizeof(want), "field \"%s\" is reserved", bad[i]);
		assert_non_null(strstr(sv_errmsg(SV_EINVAL), want));
		json_decref(o);
	}
	o = json_pack("{s:s,s:s}", "type", "checkpoint", "key", "x");
	assert_sverr(audit_add(a, o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "reserved"));
	json_decref(o);
	o = json_array();
	assert_sverr(audit_add(a, o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "must be a JSON object"));
	json_decref(o);
	o = json_object();
	json_object_setn_new(o, "ty\0pe", 5, json_true());
	assert_sverr(audit_add(a, o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "NUL byte"));
	json_decref(o);
	o = json_pack("{s:o}", "name", json_stringn("a\0b", 3));
	assert_sverr(audit_add(a, o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "would not verify"));
	json_decref(o);
	assert_int_equal(audit_pending(a), 0);
	assert_ok(audit_commit(a));
	assert_int_equal(file_size(f->log), 0);
	audit_close(a);
}

static void
test_size_cap(void **state)
{
	struct fx *f = *state;
	/* A line is this template plus 24 (time), 43 (prev) and the pad. */
	const size_t over =
	    strlen("{\"seq\":1,\"time\":\"\",\"prev\":\"\",\"pad\":\"\"}") + 24 + 43;
	size_t pad = AUDIT_RECORD_MAX - over;
	struct audit *a;
	char *s;
	json_t *o;

	s = malloc(pad + 2);
	memset(s, 'x', pad + 1);
	s[pad + 1] = '\0';
	assert_ok(audit_open(f->log, &a));
	o = json_pack("{s:s}", "pad", s);
	assert_sverr(audit_add(a, o), SV_ETOOBIG);
	assert_non_null(strstr(sv_errmsg(SV_ETOOBIG), "over 16384"));
	assert_int_equal(audit_pending(a), 0);
	json_decref(o);
	s[pad] = '\0'; /* exactly AUDIT_RECORD_MAX bytes: allowed */
	o = json_pack("{s:s}", "pad", s);
	assert_ok(audit_add(a, o));
	json_decref(o);
	assert_ok(audit_commit(a));
	audit_close(a);
	assert_int_equal(file_size(f->log), AUDIT_RECORD_MAX + 1);
	expect_ok(f->log, NULL, 1, 0);
	assert_ok(audit_open(f->log, &a)); /* and the tail reader takes it */
	assert_int_equal(audit_seq(a), 1);
	audit_close(a);
	free(s);
}

static void
test_batch_cap(void **state)
{
	struct fx *f = *state;
	size_t pad = AUDIT_RECORD_MAX - 200, i, n = 0;
	struct audit *a;
	json_t *o;
	char *s;
	int r;

	s = malloc(pad + 1);
	memset(s, 'y', pad);
	s[pad] = '\0';
	o = json_pack("{s:s}", "pad", s);
	assert_ok(audit_open(f->log, &a));
	for (i = 0; i < AUDIT_BATCH_MAX / pad + 2; i++) {
		if ((r = audit_add(a, o)) != 0)
			break;
		n++;
	}
	assert_int_equal(r, SV_EBUSY);
	assert_non_null(strstr(sv_errmsg(SV_EBUSY), "commit first"));
	assert_int_equal(audit_pending(a), n);
	assert_true(n * pad <= AUDIT_BATCH_MAX);
	assert_ok(audit_commit(a));
	assert_ok(audit_add(a, o));
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), n + 1);
	audit_close(a);
	expect_ok(f->log, NULL, n + 1, 0);
	json_decref(o);
	free(s);
}

/* The commit of 4 records fails as told; the log must stay as it was. */
static void
fail_commit(struct fx *f, struct audit *a, unsigned what, int err, const char *want)
{
	uint64_t seq = audit_seq(a);
	off_t size = file_size(f->log);
	int i;

	for (i = 0; i < 4; i++)
		add_rec(a, 100 + i);
	audit_test_fail_next_commit(a, what, err);
	assert_sverr(audit_commit(a), SV_EIO);
	assert_non_null(strstr(sv_errmsg(SV_EIO), want));
	assert_int_equal(audit_seq(a), seq);
	assert_int_equal(audit_pending(a), 0);
	if (what & AUDIT_FAIL_TRUNCATE) {
		assert_true(file_size(f->log) > size); /* half a batch left behind */
		assert_non_null(strstr(sv_errmsg(SV_EIO), "retried next commit"));
	} else {
		assert_int_equal(file_size(f->log), size);
		expect_ok(f->log, f->pk, seq, 0);
	}
}

static void
test_commit_failure(void **state)
{
	struct fx *f = *state;
	struct audit *a;

	assert_ok(audit_open(f->log, &a));
	add_rec(a, 1);
	add_rec(a, 2);
	add_rec(a, 3);
	assert_ok(audit_commit(a));

	fail_commit(f, a, AUDIT_FAIL_WRITE, ENOSPC, "write: No space left on device");
	add_rec(a, 4);
	assert_ok(audit_commit(a)); /* the disk is fine again */
	assert_int_equal(audit_seq(a), 4);
	expect_ok(f->log, f->pk, 4, 0);

	fail_commit(f, a, AUDIT_FAIL_SYNC, EIO, "fdatasync: Input/output error");
	add_rec(a, 5);
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), 5);
	expect_ok(f->log, f->pk, 5, 0);

	/* Even the cut back fails: the next commit repeats it before writing. */
	fail_commit(f, a, AUDIT_FAIL_WRITE | AUDIT_FAIL_TRUNCATE, ENOSPC, "No space left");
	add_rec(a, 6);
	assert_ok(audit_commit(a));
	assert_int_equal(audit_seq(a), 6);
	assert_ok(audit_checkpoint(a, "audit-key-1", test_sign, f->sk));
	expect_ok(f->log, f->pk, 7, 1);

	append_raw(f->log, "{}\n", 3); /* someone else, ignoring the lock */
	add_rec(a, 8);
	assert_sverr(audit_commit(a), SV_ESTATE);
	assert_non_null(strstr(sv_errmsg(SV_ESTATE), "changed by someone else"));
	assert_int_equal(audit_seq(a), 7);
	audit_close(a);
}

/* Threads of this process (/proc/self/status). */
static int
thread_count(void)
{
	char line[128];
	int n = -1;
	FILE *fp = fopen("/proc/self/status", "r");

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(fp);
	assert_true(n > 0);
	return n;
}

/* The commit in two halves (the key process signs between them). */
static void
test_commit_split(void **state)
{
	struct fx *f = *state;
	struct audit *a;
	json_t *o;
	off_t size;
	int i, threads;

	assert_ok(audit_open(f->log, &a));
	assert_sverr(audit_commit_wait(a), SV_ESTATE); /* nothing started */
	for (i = 1; i <= 3; i++)
		add_rec(a, i);
	assert_ok(audit_commit_start(a));
	assert_int_equal(audit_seq(a), 0); /* written, not yet synced: not committed */
	o = rec_fields(9);
	assert_sverr(audit_add(a, o), SV_ESTATE);
	json_decref(o);
	assert_sverr(audit_commit(a), SV_ESTATE);
	assert_sverr(audit_commit_start(a), SV_ESTATE);
	assert_ok(audit_commit_wait(a));
	assert_int_equal(audit_seq(a), 3);
	assert_int_equal(audit_pending(a), 0);
	assert_true(audit_last_commit_seconds(a) > 0);
	expect_ok(f->log, f->pk, 3, 0);

	/* A failed sync: cut back, nothing committed, both halves fine afterwards. */
	size = file_size(f->log);
	add_rec(a, 4);
	audit_test_fail_next_commit(a, AUDIT_FAIL_SYNC, EIO);
	assert_ok(audit_commit_start(a)); /* the write itself worked */
	assert_sverr(audit_commit_wait(a), SV_EIO);
	assert_non_null(strstr(sv_errmsg(SV_EIO), "fdatasync: Input/output error"));
	assert_int_equal(audit_seq(a), 3);
	assert_int_equal(file_size(f->log), size);
	/* A failed write: the start says so, and so does the wait. */
	add_rec(a, 4);
	audit_test_fail_next_commit(a, AUDIT_FAIL_WRITE, ENOSPC);
	assert_sverr(audit_commit_start(a), SV_EIO);
	assert_sverr(audit_commit_wait(a), SV_EIO);
	assert_int_equal(audit_seq(a), 3);
	assert_int_equal(file_size(f->log), size);
	add_rec(a, 4);
	assert_ok(audit_commit_start(a));
	assert_ok(audit_commit_wait(a));
	assert_int_equal(audit_seq(a), 4);
	/* One sync thread serves every commit: no thread is made per commit. */
	threads = thread_count();
	for (i = 5; i <= 40; i++) {
		add_rec(a, i);
		assert_ok(audit_commit_start(a));
		assert_int_equal(thread_count(), threads); /* syncing now, on the same thread */
		assert_ok(audit_commit_wait(a));
	}
	assert_int_equal(audit_seq(a), 40);

	/* Closing in between finishes the commit, and ends the sync thread. */
	add_rec(a, 41);
	assert_ok(audit_commit_start(a));
	audit_close(a);
	/* Joined; the kernel may take a moment more to drop the thread from the count. */
	for (i = 0; i < 2000 && thread_count() != threads - 1; i++)
		usleep(1000);
	assert_int_equal(thread_count(), threads - 1);
	expect_ok(f->log, f->pk, 41, 0);
}

static void
test_checkpoint_errors(void **state)
{
	struct fx *f = *state;
	char longkey[AUDIT_KEYID_MAX + 2];
	struct audit *a;
	off_t size;

	assert_ok(audit_open(f->log, &a));
	add_rec(a, 1);
	assert_sverr(audit_checkpoint(a, "k", test_sign, f->sk), SV_ESTATE);
	assert_non_null(strstr(sv_errmsg(SV_ESTATE), "commit before a checkpoint"));
	assert_int_equal(audit_pending(a), 1); /* the record is still queued */
	assert_ok(audit_commit(a));
	size = file_size(f->log);

	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_sverr(audit_checkpoint(a, longkey, test_sign, f->sk), SV_EINVAL);
	assert_sverr(audit_checkpoint(a, "", test_sign, f->sk), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "key id of 1 to 128 bytes"));
	assert_sverr(audit_checkpoint(a, "k", NULL, f->sk), SV_EINVAL);
	assert_sverr(audit_checkpoint(a, "k", failing_sign, NULL), SV_EHSM);
	assert_non_null(strstr(sv_errmsg(SV_EHSM), "token removed"));
	assert_int_equal(audit_seq(a), 1);
	assert_int_equal(audit_pending(a), 0);
	assert_int_equal(file_size(f->log), size);
	assert_int_equal(access(f->head, F_OK), -1);

	longkey[AUDIT_KEYID_MAX] = '\0'; /* the longest allowed */
	assert_ok(audit_checkpoint(a, longkey, test_sign, f->sk));
	assert_int_equal(audit_seq(a), 2);
	audit_close(a);
	expect_ok(f->log, f->pk, 2, 1);
}

static void
test_many_records(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct audit *a;
	int i, j;

	assert_ok(audit_open(f->log, &a));
	for (i = 0; i < 100; i++) {
		for (j = 0; j < 100; j++)
			add_rec(a, i * 100 + j);
		assert_int_equal(audit_pending(a), 100);
		assert_ok(audit_commit(a));
		if (i % 10 == 9)
			assert_ok(audit_checkpoint(a, "audit-key-1", test_sign, f->sk));
	}
	assert_int_equal(audit_seq(a), 10010);
	audit_close(a);
	expect_ok(f->log, f->pk, 10010, 10);
	assert_ok(audit_verify(f->log, f->pk, &rep));
	assert_int_equal(rep.last_checkpoint, 10010);
	assert_int_equal(rep.head_checked, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_and_swapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
