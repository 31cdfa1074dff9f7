/*
 * vault/audit, the writer: the tamper-evident audit log on real files in a
 * temporary directory (audit_fixture.h).  Chain continuation across reopen,
 * with the documented prev hashes recomputed here; repair of a partial last
 * line and refusal of damaged tails; open errors and the lock; typed records
 * (audit_add_typed(), as the merged object); reserved and
 * oversized fields and the batch cap; the fields check against the
 * verifier's parser; commit failure roll-back through the test hook; disk
 * allocated ahead of the log; the commit in two halves and its one sync
 * thread; checkpoint errors; key handover (the line and head file written,
 * the key in force found again on open, refusals); 10,000 records.  The
 * verifier has its own suite, test_audit_verify.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_fixture.h"

static int
failing_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return sv_seterr(SV_EHSM, "test signer: token removed");
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

/* A small deterministic generator (xorshift64) for the property test below. */
static uint64_t
rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A short valid UTF-8 string that sometimes holds a NUL byte. */
static void
rnd_text(uint64_t *x, char *buf, size_t *len)
{
	static const char *const bits[] = { "a", "Z", "0", "\"", "\\", "\n", "\x01", "\xc3\xa9",
		"\xe2\x82\xac", " ", "/", "\0" };
	size_t n = rnd(x) % 6, i, l;

	*len = 0;
	for (i = 0; i < n; i++) {
		/* NUL in about one string in ten. */
		const char *b = bits[rnd(x) % 30 == 0 ? 11 : rnd(x) % 11];

		l = b[0] == '\0' ? 1 : strlen(b);
		memcpy(buf + *len, b, l);
		*len += l;
	}
}

static json_t *
rnd_value(uint64_t *x, int depth)
{
	char t[32];
	size_t len, i, n;
	json_t *v;

	switch (depth >= 5 ? rnd(x) % 5 : rnd(x) % 7) {
	case 0:
		rnd_text(x, t, &len);
		return json_stringn(t, len);
	case 1:
		return json_integer((json_int_t)(rnd(x) % 100000) - 50000);
	case 2:
		return json_real((double)(rnd(x) % 1000) / 7.0);
	case 3:
		return json_boolean(rnd(x) % 2);
	case 4:
		return json_null();
	case 5:
		v = json_array();
		for (i = 0, n = rnd(x) % 4; i < n; i++)
			json_array_append_new(v, rnd_value(x, depth + 1));
		return v;
	default:
		v = json_object();
		for (i = 0, n = rnd(x) % 4; i < n; i++) {
			rnd_text(x, t, &len);
			json_object_setn_new(v, t, len, rnd_value(x, depth + 1));
		}
		return v;
	}
}

/*
 * audit_add() takes exactly the fields the verifier's parser accepts: a few
 * thousand random records, with NUL bytes in strings and names at any
 * depth; the accepted ones are then committed and the log must verify.
 */
static void
test_fields_checked(void **state)
{
	struct fx *f = *state;
	uint64_t x = 0x9e3779b97f4a7c15u, accepted = 0;
	struct audit *a;
	json_t *o, *deep, *back;
	char *text;
	int i, r;

	assert_ok(audit_open(f->log, &a));
	for (i = 0; i < 3000; i++) {
		o = json_object();
		json_object_set_new(o, "type", json_string("prop"));
		json_object_set_new(o, "v", rnd_value(&x, 1));
		assert_non_null(text = json_dumps(o, JSON_COMPACT));
		back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		r = audit_add(a, o);
		if (back != NULL) {
			assert_ok(r);
			accepted++;
		} else {
			assert_sverr(r, SV_EINVAL);
			assert_non_null(strstr(sv_errmsg(SV_EINVAL), "would not verify"));
		}
		json_decref(back);
		free(text);
		json_decref(o);
	}
	assert_true(accepted > 1000 && accepted < 3000); /* both kinds were tried */
	assert_ok(audit_commit(a));
	/* Nesting: 16 levels of fields are fine, 17 are not. */
	for (deep = json_string("x"), i = 1; i < 16; i++)
		deep = json_pack("[o]", deep);
	o = json_pack("{s:o}", "v", deep);
	assert_ok(audit_add(a, o));
	json_object_set_new(o, "v", json_pack("[O]", deep));
	assert_sverr(audit_add(a, o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "nested deeper than 16"));
	json_decref(o);
	assert_ok(audit_commit(a));
	audit_close(a);
	expect_ok(f->log, NULL, accepted + 1, 0);
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
/*
 * audit_add_typed() writes, byte for byte after prev, the line audit_add()
 * writes for {"type": type} merged with the fields (what the key process
 * built before it), and refuses what audit_add() refuses plus a type that
 * would need escaping or a second "type".
 */
static void
test_typed(void **state)
{
	struct fx *f = *state;
	static const char *const bad_types[] = { "checkpoint", "rotated", "", "Sign", "a\"b", "a b",
		"x123456789012345678901234567890123" };
	struct lines ls;
	struct audit *a;
	json_t *o, *merged;
	size_t i;
	int k;

	assert_ok(audit_open(f->log, &a));
	for (k = 0; k < 3; k++) {
		o = k == 0 ? json_object() : rec_fields(k);
		json_object_del(o, "type");
		if (k == 2)
			json_object_set_new(
			    o, "nested", json_pack("{s:{s:[i,s]}}", "a", "b", 1, "é"));
		merged = json_pack("{s:s}", "type", "policy-reload.x_1");
		json_object_update(merged, o);
		assert_ok(audit_add_typed(a, "policy-reload.x_1", o));
		assert_ok(audit_add(a, merged));
		json_decref(o);
		json_decref(merged);
	}
	for (i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		o = rec_fields(1);
		json_object_del(o, "type");
		assert_sverr(audit_add_typed(a, bad_types[i], o), SV_EINVAL);
		json_decref(o);
	}
	o = rec_fields(1); /* it holds "type" */
	assert_sverr(audit_add_typed(a, "sign", o), SV_EINVAL);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "\"type\" given twice"));
	json_object_del(o, "type");
	json_object_set_new(o, "seq", json_integer(1));
	assert_sverr(audit_add_typed(a, "sign", o), SV_EINVAL);
	json_decref(o);
	assert_sverr(audit_add_typed(a, "sign", json_null()), SV_EINVAL);
	assert_int_equal(audit_pending(a), 6);
	assert_ok(audit_commit(a));
	audit_close(a);

	lines_load(f->log, &ls);
	assert_int_equal(ls.n, 6);
	assert_non_null(strstr(ls.l[0], "\",\"type\":\"policy-reload.x_1\"}"));
	for (i = 0; i < ls.n; i += 2) {
		const char *x = strstr(ls.l[i], ",\"type\":"),
			   *y = strstr(ls.l[i + 1], ",\"type\":");

		assert_non_null(x);
		assert_non_null(y);
		assert_string_equal(x, y);
	}
	lines_free(&ls);
	expect_ok(f->log, f->pk, 6, 0);
}

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

/* Bytes of disk allocated to path. */
static off_t
disk_bytes(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (off_t)st.st_blocks * 512;
}

/*
 * The writer allocates AUDIT_RESERVE bytes of disk ahead of the log's end,
 * again after a cut back, and the file's length stays that of its records.
 */
static void
test_reserve(void **state)
{
	struct fx *f = *state;
	struct audit *a;
	char probe[80];
	int fd, i;

	/* Only where the file system can allocate ahead (ext4, xfs, tmpfs can). */
	snprintf(probe, sizeof(probe), "%s/probe", f->dir);
	fd = open(probe, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	i = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, AUDIT_RESERVE);
	close(fd);
	if (i != 0) {
		print_message(
		    "no fallocate(KEEP_SIZE) here (%s): nothing to check\n", strerror(errno));
		skip();
	}
	assert_ok(audit_open(f->log, &a));
	for (i = 1; i <= 3; i++)
		add_rec(a, i);
	assert_ok(audit_commit(a));
	assert_true(disk_bytes(f->log) >= file_size(f->log) + AUDIT_RESERVE);
	expect_ok(f->log, f->pk, 3, 0); /* the length is the records' */

	/* A failed write is cut back, which frees the reserve; the next commit makes it again. */
	fail_commit(f, a, AUDIT_FAIL_WRITE, ENOSPC, "No space left");
	assert_true(disk_bytes(f->log) < file_size(f->log) + AUDIT_RESERVE);
	add_rec(a, 4);
	assert_ok(audit_commit(a));
	assert_true(disk_bytes(f->log) >= file_size(f->log) + AUDIT_RESERVE);
	audit_close(a);

	assert_ok(audit_open(f->log, &a)); /* reopening reads the length, not the disk */
	assert_int_equal(audit_seq(a), 4);
	add_rec(a, 5);
	assert_ok(audit_commit(a));
	audit_close(a);
	expect_ok(f->log, f->pk, 5, 0);
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

/* ---- key handover ---- */

/* The members of o, in order, are exactly the n names. */
static void
assert_members(json_t *o, const char *const *names, size_t n)
{
	void *it;
	size_t i;

	assert_non_null(o);
	for (i = 0, it = json_object_iter(o); it != NULL; i++, it = json_object_iter_next(o, it)) {
		assert_true(i < n);
		assert_string_equal(json_object_iter_key(it), names[i]);
	}
	assert_int_equal(i, n);
}

/* A handover line and its head file, checked against audit.h without audit.c. */
static void
test_handover_write(void **state)
{
	static const char *const ckpt[] = { "seq", "time", "prev", "type", "key", "next", "pub",
		"sig" };
	static const char *const head[] = { "seq", "hash", "key", "sig" };
	struct fx *f = *state;
	struct lines ls, hd;
	struct audit *a;
	struct tkey b;
	char *pub, *h, want[256];
	json_t *o;

	tkey_new(&b);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "");
	add_recs(a, 1, 1);
	assert_string_equal(audit_key_in_force(a), ""); /* records name no key */
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	assert_string_equal(audit_key_in_force(a), "key-a");
	add_recs(a, 3, 1);
	assert_ok(handover(a, "key-a", f->sk, "key-b", &b));
	assert_string_equal(audit_key_in_force(a), "key-b");
	assert_int_equal(audit_seq(a), 4);
	assert_int_equal(audit_pending(a), 0);
	audit_close(a);

	lines_load(f->log, &ls);
	assert_int_equal(ls.n, 4);
	o = json_loads(ls.l[3], 0, NULL);
	assert_members(o, ckpt, 8);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 4);
	h = hash_b64(ls.l[2]);
	assert_string_equal(json_string_value(json_object_get(o, "prev")), h);
	free(h);
	json_decref(o);
	/* The exact bytes: key, next, then pub = base64url of b's 32-byte public key. */
	assert_ok(b64u_encode(b.pk, 32, &pub));
	assert_int_equal(strlen(pub), 43);
	snprintf(want, sizeof(want),
	    "\",\"type\":\"checkpoint\",\"key\":\"key-a\",\"next\":\"key-b\",\"pub\":\"%s\","
	    "\"sig\":\"",
	    pub);
	assert_non_null(strstr(ls.l[3], want));
	assert_int_equal(strncmp(ls.l[3], "{\"seq\":4,\"time\":\"", 17), 0);
	free(pub);
	/* Signed by the old key, not the new one. */
	assert_true(doc_sig_verifies(f->pk, AUDIT_CKPT_CONTEXT, ls.l[3]));
	assert_false(doc_sig_verifies(b.pk, AUDIT_CKPT_CONTEXT, ls.l[3]));

	/* The head file: this checkpoint, the next key's id, signed by the next key. */
	lines_load(f->head, &hd);
	assert_int_equal(hd.n, 1);
	o = json_loads(hd.l[0], 0, NULL);
	assert_members(o, head, 4);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 4);
	h = hash_b64(ls.l[3]);
	assert_string_equal(json_string_value(json_object_get(o, "hash")), h);
	free(h);
	assert_string_equal(json_string_value(json_object_get(o, "key")), "key-b");
	json_decref(o);
	assert_true(doc_sig_verifies(b.pk, AUDIT_HEAD_CONTEXT, hd.l[0]));
	assert_false(doc_sig_verifies(f->pk, AUDIT_HEAD_CONTEXT, hd.l[0]));
	lines_free(&hd);
	lines_free(&ls);

	/* The log goes on with the new key and verifies from the first one alone. */
	assert_ok(audit_open(f->log, &a));
	assert_ok(audit_checkpoint(a, "key-b", test_sign, b.sk));
	audit_close(a);
	expect_ok(f->log, f->pk, 5, 3);
}

/* audit_open() finds the key in force in the last line or else in the head file. */
static void
test_handover_reopen(void **state)
{
	struct fx *f = *state;
	struct audit *a;
	struct tkey b;
	uint8_t *old, *hb;
	size_t oldlen, hlen;
	char *k;

	tkey_new(&b);
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 1);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	audit_close(a);
	old = file_read(f->head, &oldlen); /* checkpoint 2, key-a */

	/* Last line a plain checkpoint: its key, even if the head file says otherwise. */
	hb = file_read(f->head, &hlen);
	k = strstr((char *)hb, "\"key\":\"key-a\"");
	assert_non_null(k);
	k[11] = 'z'; /* key-z: audit_open() does not check the head file's signature */
	file_put(f->head, hb, hlen);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-a");
	audit_close(a);
	file_put(f->head, old, oldlen);

	/* Last line a handover: its next key. */
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 3, 1);
	assert_ok(handover(a, "key-a", f->sk, "key-b", &b));
	audit_close(a);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);

	/* The handover's head file never written: the old one (key-a) is still there. */
	file_put(f->head, old, oldlen);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	assert_int_equal(audit_seq(a), 4);
	/* The id as returned is a valid argument (it is the buffer the checkpoint updates). */
	assert_ok(audit_checkpoint(a, audit_key_in_force(a), test_sign, b.sk));
	assert_string_equal(audit_key_in_force(a), "key-b");
	add_recs(a, 6, 1);
	audit_close(a);
	expect_ok(f->log, f->pk, 6, 3);

	/* Records after the last checkpoint: the head file's key. */
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);
	free(hb);
	hb = file_read(f->head, &hlen);
	k = strstr((char *)hb, "\"key\":\"key-b\"");
	assert_non_null(k);
	k[11] = 'z';
	file_put(f->head, hb, hlen);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-z");
	audit_close(a);
	/* No head file: the last checkpoint, read back from the end. */
	assert_int_equal(unlink(f->head), 0);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);
	/* No checkpoint at all: unknown. */
	assert_int_equal(unlink(f->log), 0);
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 3);
	audit_close(a);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "");
	audit_close(a);
	free(hb);
	free(old);
}

/* A handover committed whose head file cannot be written: in force all the same. */
static void
test_handover_head_unwritten(void **state)
{
	struct fx *f = *state;
	char aside[PATH_MAX + 8];
	struct audit *a;
	struct tkey b;

	tkey_new(&b);
	snprintf(aside, sizeof(aside), "%s.aside", f->head);
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 2);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	add_recs(a, 4, 1);
	/* A directory where the head file goes: its rename fails. */
	assert_int_equal(rename(f->head, aside), 0);
	assert_int_equal(mkdir(f->head, 0700), 0);
	assert_sverr(handover(a, "key-a", f->sk, "key-b", &b), SV_EIO);
	assert_msg_has(SV_EIO, "checkpoint 5 committed but head file not written");
	assert_int_equal(audit_seq(a), 5);
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);
	assert_int_equal(rmdir(f->head), 0);
	assert_int_equal(rename(aside, f->head), 0); /* as after a crash: the old head file */
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	/* Records after the handover, then a crash: the old head file and no checkpoint
	 * last.  Found reading back past the records (3000: more than one read's worth). */
	add_recs(a, 6, 3000);
	audit_close(a);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);
	assert_int_equal(rename(f->head, aside), 0); /* no head file at all: the same */
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	assert_ok(audit_checkpoint(a, audit_key_in_force(a), test_sign, b.sk));
	audit_close(a);
	expect_ok(f->log, f->pk, 3006, 3);
	/* The head file's own checkpoint is the last one when none follows it. */
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 9000, 2);
	audit_close(a);
	assert_int_equal(unlink(f->head), 0);
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "key-b");
	audit_close(a);
}

static void
test_handover_errors(void **state)
{
	struct fx *f = *state;
	char longkey[AUDIT_KEYID_MAX + 2];
	struct audit_next nx;
	struct tkey b, c;
	struct audit *a;
	uint8_t *log0, *head0;
	size_t loglen, headlen;

	tkey_new(&b);
	tkey_new(&c);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_ok(audit_open(f->log, &a));
	add_recs(a, 1, 1);
	assert_ok(audit_checkpoint(a, "key-a", test_sign, f->sk));
	log0 = file_read(f->log, &loglen);
	head0 = file_read(f->head, &headlen);

	/* b's public key announced, c's signer: refused before anything is written. */
	nx = (struct audit_next){ .key_id = "key-b", .sign = test_sign, .ctx = c.sk };
	memcpy(nx.pub, b.pk, 32);
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_ECRYPTO);
	assert_msg_has(SV_ECRYPTO, "the next key does not sign as its public key says");
	assert_int_equal(audit_seq(a), 2);
	assert_int_equal(audit_pending(a), 0);
	assert_string_equal(audit_key_in_force(a), "key-a");
	assert_file_is(f->log, log0, loglen);
	assert_file_is(f->head, head0, headlen);

	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, NULL), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "a handover needs the next key");
	nx.ctx = b.sk;
	nx.key_id = "";
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "key id of 1 to 128 bytes");
	nx.key_id = longkey;
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "key id of 1 to 128 bytes");
	nx.key_id = NULL;
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EINVAL);
	nx.key_id = "\xff";
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "not UTF-8");
	nx.key_id = "key-b";
	nx.sign = NULL;
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "needs a signer");
	nx.sign = test_sign;
	assert_sverr(audit_handover(a, "", test_sign, f->sk, &nx), SV_EINVAL);
	assert_sverr(audit_handover(a, "key-a", NULL, f->sk, &nx), SV_EINVAL);
	/* A signer error, old key or new, is returned as is. */
	assert_sverr(audit_handover(a, "key-a", failing_sign, NULL, &nx), SV_EHSM);
	nx.sign = failing_sign;
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_EHSM);
	assert_msg_has(SV_EHSM, "token removed");
	nx.sign = test_sign;
	assert_int_equal(audit_seq(a), 2);
	assert_int_equal(audit_pending(a), 0);
	assert_string_equal(audit_key_in_force(a), "key-a");
	assert_file_is(f->log, log0, loglen);
	assert_file_is(f->head, head0, headlen);

	/* Records queued: commit first, as for a checkpoint. */
	add_rec(a, 3);
	assert_sverr(audit_handover(a, "key-a", test_sign, f->sk, &nx), SV_ESTATE);
	assert_msg_has(SV_ESTATE, "commit before a checkpoint");
	assert_int_equal(audit_pending(a), 1);
	assert_ok(audit_commit(a));

	/* The longest next key id is fine. */
	longkey[AUDIT_KEYID_MAX] = '\0';
	nx.key_id = longkey;
	assert_ok(audit_handover(a, "key-a", test_sign, f->sk, &nx));
	assert_string_equal(audit_key_in_force(a), longkey);
	assert_int_equal(audit_seq(a), 4);
	audit_close(a);
	expect_ok(f->log, f->pk, 4, 2);
	free(log0);
	free(head0);
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

/* Set byte 0 of line n (1-based) of path to c. */
static void
poke_line(const char *path, size_t n, char c)
{
	FILE *fp = fopen(path, "r+");
	size_t line = 1;
	long off = 0;
	int ch;

	assert_non_null(fp);
	while (line < n && (ch = fgetc(fp)) != EOF) {
		off++;
		if (ch == '\n')
			line++;
	}
	assert_int_equal(line, n);
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	assert_int_equal(fputc(c, fp), c);
	assert_int_equal(fclose(fp), 0);
}

/*
 * After a crash the lines since the head file's checkpoint are read back for
 * the key in force: a malformed one there stops audit_open(); one before
 * that checkpoint is not read (the verifier finds it).
 */
static void
test_open_reads_back(void **state)
{
	struct fx *f = *state;
	struct audit *a;

	make_log(f, 7, 5); /* records 1-5, checkpoint 6, records 7-8: a crash after 8 */
	poke_line(f->log, 3, '[');
	assert_ok(audit_open(f->log, &a));
	assert_string_equal(audit_key_in_force(a), "audit-key-1");
	audit_close(a);
	poke_line(f->log, 7, '[');
	assert_sverr(audit_open(f->log, &a), SV_EINVAL);
	assert_msg_has(SV_EINVAL, "a line after checkpoint 6");
	poke_line(f->log, 7, '{');
	assert_ok(audit_open(f->log, &a));
	audit_close(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_typed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fields_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_head_unwritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
