/*
 * vault/audit_verify: the verifier behind `vaultctl audit verify`, on logs
 * written by vault/audit in a temporary directory (audit_fixture.h).  The
 * documented format checked independently (hashes and Ed25519 signatures
 * recomputed here); verify failing on a flipped byte, a deleted, swapped or
 * renumbered line, a truncation past the head file's checkpoint, forged
 * checkpoint and head signatures and a re-chained deletion; checkpoints and
 * head files that are signed but not in the one allowed shape; key handover
 * (several trusted keys, the keys in the report, the old key refused after
 * a handover, forged and malformed handovers, the head file by the new key,
 * and the key check between rotated logs).
 */
#include <unistd.h>

#include "audit_fixture.h"

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
lines_delete(struct lines *ls, size_t idx)
{
	free(ls->l[idx]);
	memmove(ls->l + idx, ls->l + idx + 1, (ls->n - idx - 1) * sizeof(char *));
	ls->n--;
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

/* ---- tests ---- */

/* Check a signed line the way audit.h documents it, without audit.c (doc_sig_verifies). */
static void
check_doc_sig(const uint8_t *pk, const char *context, const char *line)
{
	char *changed = strdup(line);

	assert_non_null(changed);
	assert_true(doc_sig_verifies(pk, context, line));
	changed[2] ^= 1; /* and it can fail */
	assert_false(doc_sig_verifies(pk, context, changed));
	free(changed);
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

	crypto_sign_keypair(pk2, sk2); /* another key verifies neither checkpoints nor head */
	expect_bad(f->log, pk2, SV_ECRYPTO, 11, "signature does not verify");
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
	/* The checkpoint fails first (the head file, signed by sk2 too, is checked last). */
	expect_bad(f->log, f->pk, SV_ECRYPTO, 2, "signature does not verify");
	expect_ok(f->log, pk2, 3, 1);
	unlink(f->head);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 2, "signature does not verify");
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
	uint8_t pk2[32], sk2[64];
	struct lines ls;
	char *h;

	make_log(f, 20, 10);
	lines_load(f->log, &ls);
	h = hash_b64(ls.l[10]);
	write_head(f, f->sk, 11, h); /* our own head, pointing at checkpoint 11 */
	expect_ok(f->log, f->pk, 22, 2);
	crypto_sign_keypair(pk2, sk2); /* the same head signed by another key */
	write_head(f, sk2, 11, h);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 0, "head file");
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

/* ---- rotation ---- */

/* The live log rotated once: archive seq 1..16 (checkpoint 16), live 17..22 (checkpoint 22). */
static void
rotated_pair(struct fx *f, char *archive, size_t n)
{
	struct audit *a;
	json_t *o;
	int i;

	make_log(f, 10, 5); /* 12 lines, checkpoints at 6 and 12 */
	assert_ok(audit_open(f->log, &a));
	for (i = 0; i < 3; i++)
		add_rec(a, i);
	assert_sverr(audit_rotate(a, "audit-key-1", test_sign, f->sk, archive, n), SV_ESTATE);
	assert_ok(audit_commit(a));
	o = json_pack("{s:s}", "type", AUDIT_ROTATED);
	assert_sverr(audit_add(a, o), SV_EINVAL); /* only audit_rotate() writes one */
	json_decref(o);
	assert_ok(audit_rotate(a, "audit-key-1", test_sign, f->sk, archive, n));
	assert_int_equal(audit_seq(a), 17);
	for (i = 0; i < 4; i++)
		add_rec(a, i);
	assert_ok(audit_commit(a));
	assert_ok(audit_checkpoint(a, "audit-key-1", test_sign, f->sk));
	audit_close(a);
}

static void
expect_chain(struct audit_report *rep, size_t n, int code, const char *want)
{
	size_t order[4];
	char why[256];
	int r = audit_verify_chain(rep, n, order, why, sizeof(why));

	if (r != code || strstr(why, want) == NULL)
		fail_msg("chain = %d (want %d): \"%s\" (want \"%s\")", r, code, why, want);
}

static void
test_rotation(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX], ahead[PATH_MAX + 8], want[PATH_MAX + 16];
	struct audit_report rep[3];
	struct audit *a;
	struct lines ls;
	size_t order[3];
	char why[256];

	rotated_pair(f, archive, sizeof(archive));
	snprintf(want, sizeof(want), "%s.000000000016", f->log);
	assert_string_equal(archive, want);
	snprintf(ahead, sizeof(ahead), "%s.head", archive);
	expect_ok(archive, f->pk, 16, 3);
	expect_ok(f->log, f->pk, 6, 1);
	assert_ok(audit_verify(archive, f->pk, &rep[1]));
	assert_ok(audit_verify(f->log, f->pk, &rep[0]));
	assert_int_equal(rep[1].first_seq, 1);
	assert_int_equal(rep[0].first_seq, 17);
	assert_int_equal(rep[0].head_checked, 1);
	assert_string_equal(rep[0].from, "audit.log.000000000016");
	assert_non_null(strstr(rep[0].reason, "seq 17 on, continuing audit.log.000000000016"));
	assert_string_equal(rep[0].link, rep[1].last);
	/* Given in any order, the two chain. */
	assert_ok(audit_verify_chain(rep, 2, order, why, sizeof(why)));
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 0);
	assert_non_null(strstr(why, "seq 1 to 22"));
	/* The live log, opened again, goes on from 22. */
	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_seq(a), 22);
	add_rec(a, 1);
	assert_ok(audit_commit(a));
	audit_close(a);
	expect_ok(f->log, f->pk, 7, 1);

	/* A log given twice, or with its predecessor missing, does not chain. */
	assert_ok(audit_verify(f->log, f->pk, &rep[1]));
	expect_chain(rep, 2, SV_ECRYPTO, "given twice");
	/* The archive cut by its last line: with its head file, it fails alone ... */
	lines_load(archive, &ls);
	ls.n = 15;
	lines_save(archive, &ls);
	expect_bad(archive, f->pk, SV_ECRYPTO, 16, "truncated: checkpoint 16");
	/* ... without it, it verifies alone but no longer chains to the live log. */
	assert_int_equal(unlink(ahead), 0);
	assert_ok(audit_verify(archive, f->pk, &rep[1]));
	assert_ok(audit_verify(f->log, f->pk, &rep[0]));
	expect_chain(rep, 2, SV_ECRYPTO, "does not follow");
	/* Its last line changed (a digit of its time): the hash link catches it. */
	ls.n = 16;
	ls.l[15][strstr(ls.l[15], "Z\",\"prev\"") - ls.l[15] - 1] ^= 1;
	lines_save(archive, &ls);
	assert_sverr(audit_verify(archive, f->pk, &rep[1]), SV_ECRYPTO); /* signature */
	assert_ok(audit_verify(archive, NULL, &rep[1]));		 /* chain only */
	expect_chain(rep, 2, SV_ECRYPTO, "does not continue");
	lines_free(&ls);

	/* Line 1 of the live log (the rotation record) deleted: caught alone. */
	lines_load(f->log, &ls);
	lines_delete(&ls, 0);
	lines_save(f->log, &ls);
	unlink(f->head);
	expect_bad(f->log, NULL, SV_ECRYPTO, 1, "without a rotation record");
	lines_free(&ls);
}

/* Line 1 of a continued log must hold the hash the head file vouches for. */
static void
test_rotation_head(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX];
	struct audit *a;
	struct lines ls;
	json_t *o;

	make_log(f, 4, 0);
	assert_ok(audit_open(f->log, &a));
	assert_ok(audit_rotate(a, "audit-key-1", test_sign, f->sk, archive, sizeof(archive)));
	audit_close(a);
	expect_ok(f->log, f->pk, 1, 0); /* just the rotation record; head file: checkpoint 5 */
	lines_load(f->log, &ls);
	o = json_loads(ls.l[0], 0, NULL);
	assert_non_null(o);
	json_object_set_new(o, "prev", json_string(AUDIT_GENESIS));
	free(ls.l[0]);
	ls.l[0] = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	lines_save(f->log, &ls);
	expect_bad(f->log, f->pk, SV_ECRYPTO, 1, "does not continue from the checkpoint");
	lines_free(&ls);
}

/* A rotation cut short before its rename is undone by the next open. */
static void
test_rotation_undone(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX + 16], next[PATH_MAX + 8];
	struct audit *a;

	make_log(f, 3, 3); /* 4 lines, the last a checkpoint */
	snprintf(archive, sizeof(archive), "%s.000000000004", f->log);
	snprintf(next, sizeof(next), "%s%s", f->log, AUDIT_NEXT_SUFFIX);
	assert_int_equal(link(f->log, archive), 0);
	append_raw(next, "{\"seq\":5", 8);
	assert_ok(audit_open(f->log, &a));
	assert_int_equal(audit_seq(a), 4);
	assert_int_equal(access(next, F_OK), -1);
	assert_int_equal(access(archive, F_OK), -1);
	audit_close(a);
	expect_ok(f->log, f->pk, 4, 1);
	/* An archive that is another file is not touched. */
	append_raw(archive, "x", 1);
	append_raw(next, "{", 1);
	assert_ok(audit_open(f->log, &a));
	assert_int_equal(access(archive, F_OK), 0);
	audit_close(a);
}

/* ---- key handover ---- */

/*
 * Checkpoints by the fixture's key (A), a handover to b, checkpoints by b:
 * records 1-3, checkpoint A 4, records 5-6, handover A->b 7, records 8-9,
 * checkpoint b 10, record 11, checkpoint b 12, record 13.  The head file
 * names 12, signed by b.
 */
static void
handover_log(struct fx *f, struct tkey *b)
{
	struct audit *a;

	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 3);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	add_recs(a, 5, 2);
	assert_ok(handover(a, "key-a", f->sk, "key-b", b));
	add_recs(a, 8, 2);
	assert_ok(audit_checkpoint(a, "key-b", test_sign, b->sk));
	add_recs(a, 11, 1);
	assert_ok(audit_checkpoint(a, "key-b", test_sign, b->sk));
	add_recs(a, 13, 1);
	audit_close(a);
}

static void
assert_keys(const struct audit_report *rep, const uint8_t *start, const uint8_t *end)
{
	assert_int_equal(rep->have_keys, 1);
	assert_memory_equal(rep->start_key, start, 32);
	assert_memory_equal(rep->end_key, end, 32);
}

/* Logs without a handover: the keys in the report; several trusted keys. */
static void
test_keys_plain(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct lines ls;
	struct tkey c, d;
	char *h;

	tkey_new(&c);
	tkey_new(&d);
	make_log(f, 20, 10); /* checkpoints at 11 and 22 */
	assert_ok(audit_verify(f->log, f->pk, &rep));
	assert_int_equal(rep.handovers, 0);
	assert_keys(&rep, f->pk, f->pk);
	assert_null(strstr(rep.reason, "handed over"));
	expect_ok_keys(f->log, TRUST(c.pk, f->pk), 22, 2, 0, &rep); /* any trusted key may start */
	assert_keys(&rep, f->pk, f->pk);
	expect_bad_keys(f->log, TRUST(c.pk), SV_ECRYPTO, 11, "signature does not verify");
	expect_bad_keys(f->log, TRUST(c.pk, d.pk), SV_ECRYPTO, 11,
	    "checkpoint (key \"audit-key-1\"): signed by none of the 2 trusted keys");
	expect_ok_keys(f->log, NULL, 0, 22, 2, 0, &rep); /* no keys: the chain only */
	assert_non_null(strstr(rep.reason, "NOT checked"));
	assert_ok(audit_verify_keys(f->log, NULL, 2, &rep));
	assert_int_equal(rep.sigs_checked, 0);
	assert_int_equal(rep.have_keys, 0);
	/* The head file must be by the key in force, not just any trusted key. */
	lines_load(f->log, &ls);
	h = hash_b64(ls.l[21]);
	write_head(f, c.sk, 22, h);
	expect_bad_keys(f->log, TRUST(f->pk, c.pk), SV_ECRYPTO, 0,
	    "(checkpoint 22): signature does not verify");
	write_head(f, f->sk, 22, h);
	expect_ok_keys(f->log, TRUST(c.pk, f->pk), 22, 2, 0, &rep);
	free(h);
	lines_free(&ls);
	/* No checkpoint: no keys to report. */
	unlink(f->log);
	unlink(f->head);
	make_log(f, 3, 0);
	expect_ok_keys(f->log, TRUST(f->pk), 3, 0, 0, &rep);
	assert_int_equal(rep.have_keys, 0);
}

/* A -> B: the first key alone verifies, the second alone does not. */
static void
test_handover_verify(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct tkey b, c;

	tkey_new(&b);
	tkey_new(&c);
	handover_log(f, &b);
	expect_ok_keys(f->log, TRUST(f->pk), 13, 4, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);
	assert_int_equal(rep.last_checkpoint, 12);
	assert_int_equal(rep.head_checked, 1);
	assert_non_null(strstr(rep.reason, "signatures verified (key handed over 1 time); head"));
	expect_ok_keys(f->log, TRUST(f->pk, b.pk), 13, 4, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);
	expect_ok_keys(f->log, TRUST(c.pk, b.pk, f->pk), 13, 4, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);
	expect_ok(f->log, f->pk, 13, 4); /* audit_verify() follows handovers too */
	expect_ok(f->log, NULL, 13, 4);
	/* The new key cannot vouch for what the old one signed. */
	expect_bad_keys(f->log, TRUST(b.pk), SV_ECRYPTO, 4,
	    "line 4: checkpoint (key \"key-a\"): signature does not verify");
	expect_bad(f->log, b.pk, SV_ECRYPTO, 4, "signature does not verify");
	expect_bad_keys(f->log, TRUST(b.pk, c.pk), SV_ECRYPTO, 4, "signed by none of the 2");
	/* Without the head file the same. */
	assert_int_equal(unlink(f->head), 0);
	expect_ok_keys(f->log, TRUST(f->pk), 13, 4, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);
	expect_bad_keys(f->log, TRUST(b.pk), SV_ECRYPTO, 4, "signature does not verify");
}

/* After a handover the old key signs nothing, even when trusted. */
static void
test_handover_old_key(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct audit *a;
	struct lines ls;
	struct tkey b, c;

	tkey_new(&b);
	tkey_new(&c);
	handover_log(f, &b);
	lines_load(f->log, &ls);
	assert_ok(audit_open(f->log, &a));
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk)); /* line 14 */
	audit_close(a);
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 14,
	    "line 14: checkpoint (key \"key-a\"): signature does not verify");
	expect_bad_keys(f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 14, "signature does not verify");
	expect_bad_keys(f->log, TRUST(b.pk, f->pk), SV_ECRYPTO, 14, "signature does not verify");
	unlink(f->head);
	expect_bad_keys(f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 14, "signature does not verify");

	/* Nor another handover (A -> c) after it. */
	lines_save(f->log, &ls);
	assert_ok(audit_open(f->log, &a));
	assert_ok(handover(a, "key-a", f->sk, "key-c", &c));
	add_recs(a, 15, 1);
	assert_ok(audit_checkpoint(a, "key-c", test_sign, c.sk));
	audit_close(a);
	expect_bad_keys(
	    f->log, TRUST(f->pk, b.pk, c.pk), SV_ECRYPTO, 14, "signature does not verify");
	/* By b, the key in force, it is fine. */
	lines_save(f->log, &ls);
	unlink(f->head);
	assert_ok(audit_open(f->log, &a));
	assert_ok(handover(a, "key-b", b.sk, "key-c", &c));
	add_recs(a, 15, 1);
	assert_ok(audit_checkpoint(a, "key-c", test_sign, c.sk));
	audit_close(a);
	expect_ok_keys(f->log, TRUST(f->pk), 16, 6, 2, &rep);
	assert_keys(&rep, f->pk, c.pk);
	lines_free(&ls);
}

/* A -> B -> C, the first checkpoint being the first handover. */
static void
test_two_handovers(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct audit *a;
	struct tkey b, c;

	tkey_new(&b);
	tkey_new(&c);
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 2);
	assert_ok(handover(a, "key-a", f->sk, "key-b", &b)); /* 3 */
	add_recs(a, 4, 1);
	assert_ok(audit_checkpoint(a, "key-b", test_sign, b.sk)); /* 5 */
	add_recs(a, 6, 1);
	assert_ok(handover(a, "key-b", b.sk, "key-c", &c)); /* 7 */
	add_recs(a, 8, 1);
	assert_ok(audit_checkpoint(a, "key-c", test_sign, c.sk)); /* 9 */
	assert_string_equal(audit_key_in_force(a), "key-c");
	audit_close(a);

	expect_ok_keys(f->log, TRUST(f->pk), 9, 4, 2, &rep);
	assert_keys(&rep, f->pk, c.pk);
	assert_non_null(strstr(rep.reason, "(key handed over 2 times)"));
	expect_ok_keys(f->log, TRUST(c.pk, b.pk, f->pk), 9, 4, 2, &rep);
	assert_keys(&rep, f->pk, c.pk);
	expect_ok(f->log, f->pk, 9, 4);
	expect_bad_keys(f->log, TRUST(b.pk), SV_ECRYPTO, 3, "signature does not verify");
	expect_bad_keys(f->log, TRUST(c.pk), SV_ECRYPTO, 3, "signature does not verify");
	expect_bad_keys(f->log, TRUST(b.pk, c.pk), SV_ECRYPTO, 3, "signed by none of the 2");
	/* b signs nothing after handing over to c. */
	assert_ok(audit_open(f->log, &a));
	assert_ok(audit_checkpoint(a, "key-b", test_sign, b.sk)); /* 10 */
	audit_close(a);
	expect_bad_keys(f->log, TRUST(f->pk, b.pk, c.pk), SV_ECRYPTO, 10,
	    "checkpoint (key \"key-b\"): signature does not verify");
}

/* A handover signed by a key not in force. */
static void
test_handover_forged(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct audit *a;
	struct lines ls;
	struct tkey b, x;
	char *pb, *px, *p;

	tkey_new(&b);
	tkey_new(&x);
	/* After checkpoints by A, one by x handing the log to x. */
	make_log(f, 4, 2); /* checkpoints at 3 and 6 */
	assert_ok(audit_open(f->log, &a));
	assert_ok(handover(a, "audit-key-1", x.sk, "key-x", &x)); /* 7 */
	add_recs(a, 8, 1);
	assert_ok(audit_checkpoint(a, "key-x", test_sign, x.sk)); /* 9 */
	audit_close(a);
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 7, "signature does not verify");
	expect_bad_keys(f->log, TRUST(f->pk, x.pk), SV_ECRYPTO, 7, "signature does not verify");
	expect_bad_keys(f->log, TRUST(x.pk), SV_ECRYPTO, 3, "signature does not verify");
	expect_bad(f->log, f->pk, SV_ECRYPTO, 7, "signature does not verify");

	/* As the log's first checkpoint. */
	unlink(f->log);
	unlink(f->head);
	make_log(f, 2, 0);
	assert_ok(audit_open(f->log, &a));
	assert_ok(handover(a, "audit-key-1", x.sk, "key-x", &x)); /* 3 */
	audit_close(a);
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 3, "signature does not verify");
	expect_bad_keys(f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 3, "signed by none of the 2");

	/* A genuine handover to b with x's public key put in its place (same length). */
	unlink(f->log);
	unlink(f->head);
	make_log(f, 2, 0);
	assert_ok(audit_open(f->log, &a));
	assert_ok(handover(a, "audit-key-1", f->sk, "key-b", &b)); /* 3 */
	audit_close(a);
	expect_ok_keys(f->log, TRUST(f->pk), 3, 1, 1, &rep);
	unlink(f->head);
	lines_load(f->log, &ls);
	assert_ok(b64u_encode(b.pk, 32, &pb));
	assert_ok(b64u_encode(x.pk, 32, &px));
	p = strstr(ls.l[2], pb);
	assert_non_null(p);
	memcpy(p, px, 43);
	lines_save(f->log, &ls);
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 3, "signature does not verify");
	expect_bad_keys(f->log, TRUST(f->pk, x.pk), SV_ECRYPTO, 3, "signed by none of the 2");
	free(pb);
	free(px);
	lines_free(&ls);
}

/* A handover line made here from audit.h, signed by A: n, then next and pub (stolen). */
static char *
doc_handover(struct fx *f, const char *prev_line, int seq, json_t *next, json_t *pub)
{
	char *h = hash_b64(prev_line), *line;

	line = sign_json(f->sk, AUDIT_CKPT_CONTEXT,
	    json_pack("{s:i,s:s,s:s,s:s,s:s,s:o,s:o}", "seq", seq, "time",
		"2026-11-29T21:30:05.123Z", "prev", h, "type", "checkpoint", "key", "key-a", "next",
		next, "pub", pub));
	free(h);
	return line;
}

/* Line 4 of the 3-record log ls replaced by line: it must fail with want. */
static void
expect_bad_line4(struct fx *f, const struct lines *ls, char *line, int code, const char *want)
{
	lines_save(f->log, ls);
	append_line(f->log, line);
	free(line);
	expect_bad_keys(f->log, TRUST(f->pk), code, 4, want);
	expect_bad(f->log, NULL, code, 4, want); /* the shape is checked without keys too */
}

/* Handovers with a valid signature but malformed. */
static void
test_handover_shape(void **state)
{
	static const char members[] = "checkpoint must be {seq,time,prev,type,key,sig} or "
				      "{seq,time,prev,type,key,next,pub,sig}";
	static const char badpub[] = "checkpoint (key \"key-a\"): handover: pub is not base64url "
				     "of 32 bytes";
	static const char badnext[] = "checkpoint (key \"key-a\"): handover: next must be a key id "
				      "of 1 to 128 bytes";
	struct fx *f = *state;
	char *pub, *line, *h, s[200];
	struct audit_report rep;
	struct lines ls;
	struct tkey b;

	tkey_new(&b);
	assert_ok(b64u_encode(b.pk, 32, &pub));
	make_log(f, 3, 0);
	lines_load(f->log, &ls);

	/* The right shape, from audit.h alone, hands over to b ... */
	line = doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(pub));
	append_line(f->log, line);
	expect_ok_keys(f->log, TRUST(f->pk), 4, 1, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);
	/* ... and b's checkpoint after it verifies. */
	h = hash_b64(line);
	free(line);
	line = sign_json(b.sk, AUDIT_CKPT_CONTEXT,
	    json_pack("{s:i,s:s,s:s,s:s,s:s}", "seq", 5, "time", "2026-11-29T21:30:06.123Z", "prev",
		h, "type", "checkpoint", "key", "key-b"));
	append_line(f->log, line);
	free(line);
	free(h);
	expect_ok_keys(f->log, TRUST(f->pk), 5, 2, 1, &rep);
	assert_keys(&rep, f->pk, b.pk);

	/* pub: one character short or long, not base64url, not canonical, not a string. */
	snprintf(s, sizeof(s), "%.42s", pub);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(s)),
	    SV_EINVAL, badpub);
	snprintf(s, sizeof(s), "%sA", pub);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(s)),
	    SV_EINVAL, badpub);
	snprintf(s, sizeof(s), "+%s", pub + 1);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(s)),
	    SV_EINVAL, badpub);
	snprintf(s, sizeof(s), "%.42s=", pub);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(s)),
	    SV_EINVAL, badpub);
	expect_bad_line4(f, &ls,
	    doc_handover(f, ls.l[2], 4, json_string("key-b"),
		json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")),
	    SV_EINVAL, badpub);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_integer(1)),
	    SV_EINVAL, badpub);
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string("key-b"), json_null()),
	    SV_EINVAL, badpub);
	/* next: empty, too long, not a string. */
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string(""), json_string(pub)),
	    SV_EINVAL, badnext);
	memset(s, 'k', 129);
	s[129] = '\0';
	expect_bad_line4(f, &ls, doc_handover(f, ls.l[2], 4, json_string(s), json_string(pub)),
	    SV_EINVAL, badnext);
	expect_bad_line4(
	    f, &ls, doc_handover(f, ls.l[2], 4, json_true(), json_string(pub)), SV_EINVAL, badnext);

	/* Members missing, extra or out of order. */
	h = hash_b64(ls.l[2]);
	expect_bad_line4(f, &ls,
	    sign_json(f->sk, AUDIT_CKPT_CONTEXT,
		json_pack("{s:i,s:s,s:s,s:s,s:s,s:s}", "seq", 4, "time", "2026-11-29T21:30:05.123Z",
		    "prev", h, "type", "checkpoint", "key", "key-a", "next", "key-b")),
	    SV_EINVAL, members);
	expect_bad_line4(f, &ls,
	    sign_json(f->sk, AUDIT_CKPT_CONTEXT,
		json_pack("{s:i,s:s,s:s,s:s,s:s,s:s}", "seq", 4, "time", "2026-11-29T21:30:05.123Z",
		    "prev", h, "type", "checkpoint", "key", "key-a", "pub", pub)),
	    SV_EINVAL, members);
	expect_bad_line4(f, &ls,
	    sign_json(f->sk, AUDIT_CKPT_CONTEXT,
		json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "seq", 4, "time",
		    "2026-11-29T21:30:05.123Z", "prev", h, "type", "checkpoint", "key", "key-a",
		    "next", "key-b", "pub", pub, "extra", 1)),
	    SV_EINVAL, members);
	expect_bad_line4(f, &ls,
	    sign_json(f->sk, AUDIT_CKPT_CONTEXT,
		json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", 4, "time",
		    "2026-11-29T21:30:05.123Z", "prev", h, "type", "checkpoint", "key", "key-a",
		    "pub", pub, "next", "key-b")),
	    SV_EINVAL, members);
	/* An extra member even after sig: not a handover (nor is sig last). */
	line = doc_handover(f, ls.l[2], 4, json_string("key-b"), json_string(pub));
	line = realloc(line, strlen(line) + 16);
	assert_non_null(line);
	strcpy(line + strlen(line) - 1, ",\"extra\":1}");
	expect_bad_line4(f, &ls, line, SV_EINVAL, members);
	free(h);
	free(pub);
	lines_free(&ls);
}

/* The head file after a handover must be signed by the new key. */
static void
test_handover_head(void **state)
{
	struct fx *f = *state;
	struct audit_report rep;
	struct lines ls;
	struct tkey b;
	char *h;

	tkey_new(&b);
	handover_log(f, &b);
	lines_load(f->log, &ls);
	/* Newest checkpoint 12 (by b): its head file by A fails, by b passes. */
	h = hash_b64(ls.l[11]);
	write_head(f, f->sk, 12, h);
	expect_bad_keys(
	    f->log, TRUST(f->pk), SV_ECRYPTO, 0, "(checkpoint 12): signature does not verify");
	expect_bad_keys(f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 0, "head file");
	expect_bad(f->log, f->pk, SV_ECRYPTO, 0, "head file");
	write_head(f, b.sk, 12, h);
	expect_ok_keys(f->log, TRUST(f->pk), 13, 4, 1, &rep);
	free(h);
	/* The handover itself (7): the head file is the new key's. */
	h = hash_b64(ls.l[6]);
	write_head(f, f->sk, 7, h);
	expect_bad_keys(
	    f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 0, "(checkpoint 7): signature does not verify");
	write_head(f, b.sk, 7, h);
	expect_ok_keys(f->log, TRUST(f->pk), 13, 4, 1, &rep);
	assert_int_equal(rep.head_checked, 1);
	free(h);
	/* Before the handover (4, as a head file not rewritten since): the old key's. */
	h = hash_b64(ls.l[3]);
	write_head(f, b.sk, 4, h);
	expect_bad_keys(
	    f->log, TRUST(f->pk, b.pk), SV_ECRYPTO, 0, "(checkpoint 4): signature does not verify");
	write_head(f, f->sk, 4, h);
	expect_ok_keys(f->log, TRUST(f->pk), 13, 4, 1, &rep);
	free(h);
	lines_free(&ls);
}

/*
 * An archive in which A hands over to b, rotated by b (archive seq 1..10:
 * checkpoint A 4, handover 7, rotation checkpoint b 10), and the live log
 * (seq 11..15: rotation record 11, checkpoint 14 by live_sk, record 15).
 */
static void
rotated_handover(
    struct fx *f, struct tkey *b, const char *live_id, uint8_t *live_sk, char *archive, size_t n)
{
	struct audit *a;

	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 3);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	add_recs(a, 5, 2);
	assert_ok(handover(a, "key-a", f->sk, "key-b", b));
	add_recs(a, 8, 2);
	assert_ok(audit_rotate(a, audit_key_in_force(a), test_sign, b->sk, archive, n));
	assert_int_equal(audit_seq(a), 11);
	assert_string_equal(audit_key_in_force(a), "key-b");
	add_recs(a, 12, 2);
	assert_ok(audit_checkpoint(a, live_id, test_sign, live_sk));
	add_recs(a, 15, 1);
	audit_close(a);
}

static void
test_handover_rotation(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX], want[PATH_MAX + 16];
	struct audit_report rep[2];
	struct audit *a;
	struct tkey b;

	tkey_new(&b);
	rotated_handover(f, &b, "key-b", b.sk, archive, sizeof(archive));
	snprintf(want, sizeof(want), "%s.000000000010", f->log);
	assert_string_equal(archive, want);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b"); /* from the head file */
	audit_close(a);

	expect_ok_keys(archive, TRUST(f->pk), 10, 3, 1, &rep[1]);
	assert_keys(&rep[1], f->pk, b.pk);
	expect_ok_keys(f->log, TRUST(b.pk), 5, 1, 0, &rep[0]);
	assert_keys(&rep[0], b.pk, b.pk);
	expect_chain(rep, 2, 0, "2 logs chained, seq 1 to 15");
	expect_ok_keys(f->log, TRUST(f->pk, b.pk), 5, 1, 0, &rep[0]);
	assert_keys(&rep[0], b.pk, b.pk);
	expect_chain(rep, 2, 0, "2 logs chained, seq 1 to 15");
	/* Each log alone needs the key it starts with. */
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 4, "signature does not verify");
	expect_bad_keys(archive, TRUST(b.pk), SV_ECRYPTO, 4, "signature does not verify");
}

/* The live log's first checkpoint by another key than the archive's last: no chain. */
static void
test_handover_rotation_wrong_key(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX], ahead[PATH_MAX + 8], want[3 * PATH_MAX];
	struct audit_report rep[2];
	struct tkey b, c;

	tkey_new(&b);
	tkey_new(&c);
	/* The old key, which handed over in the archive, goes on in the live log. */
	rotated_handover(f, &b, "key-a", f->sk, archive, sizeof(archive));
	expect_ok_keys(archive, TRUST(f->pk), 10, 3, 1, &rep[1]);
	assert_keys(&rep[1], f->pk, b.pk);
	expect_ok_keys(f->log, TRUST(f->pk, b.pk), 5, 1, 0, &rep[0]);
	assert_keys(&rep[0], f->pk, f->pk);
	snprintf(want, sizeof(want),
	    "%s: its first checkpoint is signed by another key than the one in force at the end "
	    "of %s",
	    f->log, archive);
	expect_chain(rep, 2, SV_ECRYPTO, want);
	expect_bad_keys(f->log, TRUST(b.pk), SV_ECRYPTO, 4, "signature does not verify");

	/* A key never handed over to. */
	snprintf(ahead, sizeof(ahead), "%s.head", archive);
	unlink(f->log);
	unlink(f->head);
	unlink(archive);
	unlink(ahead);
	rotated_handover(f, &b, "key-c", c.sk, archive, sizeof(archive));
	expect_ok_keys(archive, TRUST(f->pk), 10, 3, 1, &rep[1]);
	expect_ok_keys(f->log, TRUST(c.pk), 5, 1, 0, &rep[0]);
	assert_keys(&rep[0], c.pk, c.pk);
	expect_chain(rep, 2, SV_ECRYPTO, want);
}

/*
 * A live log with no checkpoint yet: its head file (the archive's last
 * checkpoint) is signed by the key in force, which counts as the log's start
 * key, so a head file re-signed by the key that handed over breaks the chain.
 */
static void
test_handover_rotation_no_checkpoint(void **state)
{
	struct fx *f = *state;
	char archive[PATH_MAX], want[3 * PATH_MAX];
	struct audit_report rep[2];
	struct audit *a;
	struct tkey b;
	json_t *h;

	tkey_new(&b);
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 3);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	assert_ok(handover(a, "key-a", f->sk, "key-b", &b));
	assert_ok(audit_rotate(a, "key-b", test_sign, b.sk, archive, sizeof(archive)));
	add_recs(a, 8, 2);
	audit_close(a);
	expect_ok_keys(archive, TRUST(f->pk), 6, 3, 1, &rep[1]);
	expect_ok_keys(f->log, TRUST(f->pk, b.pk), 3, 0, 0, &rep[0]);
	assert_keys(&rep[0], b.pk, b.pk);
	expect_chain(rep, 2, 0, "2 logs chained, seq 1 to 9");
	expect_bad_keys(f->log, TRUST(f->pk), SV_ECRYPTO, 0, "head file");

	h = json_load_file(f->head, 0, NULL);
	assert_non_null(h);
	write_head(f, f->sk, json_integer_value(json_object_get(h, "seq")),
	    json_string_value(json_object_get(h, "hash")));
	json_decref(h);
	expect_ok_keys(f->log, TRUST(f->pk, b.pk), 3, 0, 0, &rep[0]);
	assert_keys(&rep[0], f->pk, f->pk);
	snprintf(want, sizeof(want),
	    "%s: its first checkpoint is signed by another key than the one in force at the end "
	    "of %s",
	    f->log, archive);
	expect_chain(rep, 2, SV_ECRYPTO, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verify_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_handover_rotation_no_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_and_swapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_undone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_old_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_rotation_wrong_key, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
