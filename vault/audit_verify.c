/*
 * audit_verify.c: `vaultctl audit verify` (audit_verify(), see audit.h):
 * streams a log line by line, each capped at AUDIT_RECORD_MAX bytes, and
 * checks the chain, every checkpoint's signature and the head file.
 *
 * Touches only the log and head files it is given (read-only); text from a
 * log reaches the report only escaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "audit_int.h"
#include "b64.h"
#include "fileio.h"
#include "log.h"
#include "sv_err.h"

#define READ_SIZE 65536 /* read() size */

static const char *const CKPT_KEYS[] = { "seq", "time", "prev", "type", "key", "sig" };
static const char *const HANDOVER_KEYS[] = { "seq", "time", "prev", "type", "key", "next", "pub",
	"sig" };
static const char *const ROT_KEYS[] = { "seq", "time", "prev", "type", "from" };

/* Line reader with a per-line cap; memory stays at one buffer. */
struct lreader {
	int fd;
	const char *path;
	uint8_t *buf;
	size_t cap, start, end;
	int eof;
};

enum { LR_EOF, LR_LINE, LR_PARTIAL, LR_TOOLONG };

static int
lr_fill(struct lreader *lr)
{
	ssize_t n;

	if (lr->start > 0) {
		memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
		lr->end -= lr->start;
		lr->start = 0;
	}
	do
		n = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return sv_seterr(SV_EIO, "%s: read: %s", lr->path, strerror(errno));
	if (n == 0)
		lr->eof = 1;
	lr->end += (size_t)n;
	return 0;
}

/* Next line (without newline) in *line, *len.  Returns LR_* or an SV code. */
static int
lr_next(struct lreader *lr, const uint8_t **line, size_t *len)
{
	uint8_t *p, *nl;
	int r;

	for (;;) {
		p = lr->buf + lr->start;
		*line = p;
		*len = lr->end - lr->start;
		if ((nl = memchr(p, '\n', *len)) != NULL)
			*len = (size_t)(nl - p);
		if (*len > AUDIT_RECORD_MAX)
			return LR_TOOLONG;
		if (nl != NULL) {
			lr->start += *len + 1;
			return LR_LINE;
		}
		if (lr->eof) {
			lr->start = lr->end;
			return *len == 0 ? LR_EOF : LR_PARTIAL;
		}
		if ((r = lr_fill(lr)) != 0)
			return r;
	}
}

struct vstate {
	const uint8_t (*pubs)[32]; /* the keys trusted to sign a log's first checkpoint */
	size_t npubs;		   /* 0: signatures not checked */
	uint8_t cur[32];	   /* the key in force (once rep->have_keys) */
	struct audit_head head;
	int have_head;
	uint8_t head_pub[32]; /* the key in force after checkpoint head.seq */
	int have_head_pub;
	uint8_t prev[HASH_LEN];
	struct audit_report *rep;
};

/* The checkpoint's signature by the key in force, or by the first trusted key that verifies it. */
static int
checkpoint_sig(struct vstate *vs, const uint8_t *line, size_t len, const char *sig)
{
	struct audit_report *rep = vs->rep;
	size_t i;
	int r;

	if (vs->npubs == 0 || rep->have_keys)
		return audit_sig_check(
		    vs->npubs ? vs->cur : NULL, AUDIT_CKPT_CONTEXT, line, len, sig);
	for (i = 0; i < vs->npubs; i++) {
		if ((r = audit_sig_check(vs->pubs[i], AUDIT_CKPT_CONTEXT, line, len, sig)) == 0) {
			memcpy(vs->cur, vs->pubs[i], 32);
			memcpy(rep->start_key, vs->cur, 32);
			rep->have_keys = 1;
			return 0;
		}
		if (r != SV_ECRYPTO || vs->npubs == 1)
			return r;
	}
	return sv_seterr(SV_ECRYPTO, "signed by none of the %zu trusted keys", vs->npubs);
}

/* A handover's next key: its id and public key, now in force. */
static int
checkpoint_next(struct vstate *vs, json_t *o)
{
	json_t *k = json_object_get(o, "next"), *p = json_object_get(o, "pub");
	uint8_t *raw = NULL;
	size_t rl = 0;

	if (!json_is_string(k) || json_string_length(k) == 0 ||
	    json_string_length(k) > AUDIT_KEYID_MAX)
		return sv_seterr(
		    SV_EINVAL, "handover: next must be a key id of 1 to %d bytes", AUDIT_KEYID_MAX);
	if (!json_is_string(p) || json_string_length(p) != 43 ||
	    b64u_decode(json_string_value(p), 43, 32, &raw, &rl) != 0 || rl != 32) {
		free(raw);
		return sv_seterr(SV_EINVAL, "handover: pub is not base64url of 32 bytes");
	}
	if (vs->npubs > 0)
		memcpy(vs->cur, raw, 32);
	free(raw);
	vs->rep->handovers++;
	return 0;
}

static int
verify_checkpoint(struct vstate *vs, json_t *o, const uint8_t *line, size_t len, uint64_t n)
{
	json_t *k = json_object_get(o, "key"), *s = json_object_get(o, "sig");
	char esc[64];
	int r;

	int handover = audit_keys_match(o, HANDOVER_KEYS, NKEYS(HANDOVER_KEYS), 1);

	if ((!handover && !audit_keys_match(o, CKPT_KEYS, NKEYS(CKPT_KEYS), 1)) ||
	    !json_is_string(k) || !json_is_string(s) || json_string_length(k) == 0 ||
	    json_string_length(k) > AUDIT_KEYID_MAX)
		return sv_seterr(SV_EINVAL,
		    "checkpoint must be {seq,time,prev,type,key,sig} or "
		    "{seq,time,prev,type,key,next,pub,sig}");
	r = checkpoint_sig(vs, line, len, json_string_value(s));
	if (r == 0 && handover)
		r = checkpoint_next(vs, o);
	if (r != 0)
		return sv_preferr(r, "checkpoint (key \"%s\")",
		    sv_escape(json_string_value(k), json_string_length(k), esc, sizeof(esc)));
	vs->rep->checkpoints++;
	vs->rep->last_checkpoint = n;
	return 0;
}

/*
 * Line 1 of a log that does not start at seq 1 must be the record of the
 * rotation that began it: without that rule, cutting the first lines of a
 * continued log would leave a log that still verifies.
 */
static int
verify_start(struct vstate *vs, json_t *o, uint64_t seq)
{
	struct audit_report *rep = vs->rep;
	const char *prev = json_string_value(json_object_get(o, "prev"));
	json_t *t = json_object_get(o, "type"), *from = json_object_get(o, "from");

	rep->first_seq = seq;
	snprintf(rep->link, sizeof(rep->link), "%s", prev);
	if (seq == 1)
		return strcmp(prev, AUDIT_GENESIS) == 0
		    ? 0
		    : sv_seterr(SV_ECRYPTO, "prev is not the genesis value");
	if (!json_is_string(t) || strcmp(json_string_value(t), AUDIT_ROTATED) != 0 ||
	    !audit_keys_match(o, ROT_KEYS, NKEYS(ROT_KEYS), 1) || !json_is_string(from))
		return sv_seterr(SV_ECRYPTO,
		    "starts at seq %" PRIu64 " without a rotation record: records deleted", seq);
	sv_escape(json_string_value(from), json_string_length(from), rep->from, sizeof(rep->from));
	/* After a rotation the head file names the archive's last checkpoint. */
	if (vs->have_head && vs->head.seq + 1 < seq)
		return sv_seterr(SV_ECRYPTO,
		    "the head file's checkpoint %" PRIu64 " is older than the log (seq %" PRIu64
		    ")",
		    vs->head.seq, seq);
	if (vs->have_head && vs->head.seq + 1 == seq) {
		char want[HASH_B64_LEN + 1];

		audit_hash_encode(vs->head.hash, want);
		if (strcmp(prev, want) != 0)
			return sv_seterr(SV_ECRYPTO,
			    "does not continue from the checkpoint recorded in the head file");
	}
	return 0;
}

static int
verify_line(struct vstate *vs, const uint8_t *line, size_t len)
{
	uint64_t seq, n = vs->rep->records + 1, want_seq = vs->rep->first_seq + n - 1;
	char want[HASH_B64_LEN + 1];
	json_t *o = NULL, *t;
	const char *ts;
	int r;

	if ((r = audit_rec_parse(line, len, &o, &seq)) != 0)
		goto out;
	if (n == 1) {
		if ((r = verify_start(vs, o, seq)) != 0)
			goto out;
	} else if (seq != want_seq) {
		r = sv_seterr(SV_ECRYPTO,
		    "seq is %" PRIu64 ", expected %" PRIu64 ": records "
		    "deleted, inserted or moved",
		    seq, want_seq);
		goto out;
	} else {
		audit_hash_encode(vs->prev, want);
		if (strcmp(json_string_value(json_object_get(o, "prev")), want) != 0) {
			r = sv_seterr(SV_ECRYPTO,
			    "prev does not match the hash of line %" PRIu64
			    ": it was changed, or lines deleted or moved",
			    n - 1);
			goto out;
		}
	}
	t = json_object_get(o, "type");
	ts = json_is_string(t) ? json_string_value(t) : "";
	if (strcmp(ts, "checkpoint") == 0) {
		if ((r = verify_checkpoint(vs, o, line, len, seq)) != 0)
			goto out;
	} else if (strcmp(ts, AUDIT_ROTATED) == 0 && n > 1) {
		r = sv_seterr(SV_ECRYPTO, "a rotation record after line 1");
		goto out;
	} else {
		t = NULL;
	}
	crypto_hash_sha256(vs->prev, line, len);
	if (vs->have_head && seq == vs->head.seq &&
	    (t == NULL || memcmp(vs->prev, vs->head.hash, HASH_LEN) != 0)) {
		r = sv_seterr(SV_ECRYPTO, "not the checkpoint recorded in the head file");
		goto out;
	}
	if (vs->have_head && seq == vs->head.seq && vs->rep->have_keys) {
		memcpy(vs->head_pub, vs->cur, 32);
		vs->have_head_pub = 1;
	}
	vs->rep->records = n;
out:
	json_decref(o);
	return r;
}

__attribute__((format(printf, 4, 5))) static int
vfail(struct audit_report *rep, uint64_t line, int r, const char *fmt, ...)
{
	va_list ap;

	rep->bad_line = line;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
	return r;
}

/* Read the log line by line; on failure rep says where and why. */
static int
verify_stream(struct vstate *vs, struct lreader *lr)
{
	struct audit_report *rep = vs->rep;
	const uint8_t *line;
	size_t len;
	int r;

	while ((r = lr_next(lr, &line, &len)) == LR_LINE) {
		if ((r = verify_line(vs, line, len)) != 0)
			return vfail(rep, rep->records + 1, r, "line %" PRIu64 ": %s",
			    rep->records + 1, sv_errmsg(r));
	}
	if (r == LR_PARTIAL)
		return vfail(rep, rep->records + 1, SV_EINVAL, "line %" PRIu64 ": no final newline",
		    rep->records + 1);
	if (r == LR_TOOLONG)
		return vfail(rep, rep->records + 1, SV_EINVAL, "line %" PRIu64 ": over %d bytes",
		    rep->records + 1, AUDIT_RECORD_MAX);
	if (r < 0)
		return vfail(rep, 0, r, "%s", sv_errmsg(r));
	if (rep->records == 0)
		rep->first_seq = 1;
	if (vs->have_head && vs->head.seq > rep->first_seq + rep->records - 1)
		return vfail(rep, rep->records + 1, SV_ECRYPTO,
		    "truncated: checkpoint %" PRIu64 " recorded in the head file is missing",
		    vs->head.seq);
	if (rep->records > 0)
		audit_hash_encode(vs->prev, rep->last);
	return 0;
}

static void
verify_summary(const struct vstate *vs)
{
	struct audit_report *rep = vs->rep;
	char cont[160] = "", keys[64] = "";

	rep->sigs_checked = vs->npubs > 0;
	rep->head_checked = vs->have_head;
	if (rep->first_seq > 1)
		snprintf(cont, sizeof(cont), " (seq %" PRIu64 " on, continuing %s)", rep->first_seq,
		    rep->from);
	if (rep->handovers > 0)
		snprintf(keys, sizeof(keys), " (key handed over %" PRIu64 " time%s)",
		    rep->handovers, rep->handovers == 1 ? "" : "s");
	snprintf(rep->reason, sizeof(rep->reason),
	    "intact: %" PRIu64 " records%s, %" PRIu64 " checkpoints; signatures %s%s; %s",
	    rep->records, cont, rep->checkpoints, vs->npubs ? "verified" : "NOT checked (no key)",
	    keys, vs->have_head ? "head file matches" : "no head file (truncation not checked)");
}

/*
 * The head file's signature, by the key in force after its checkpoint: known
 * if that checkpoint is in this log; else (a log continuing an archive) the
 * key of this log's first checkpoint, or without one any trusted key, which
 * then counts as the key in force at the log's start (for the chain check).
 */
static int
head_sig(struct vstate *vs, const uint8_t *buf, size_t len)
{
	struct audit_head h;
	size_t i;
	int r = SV_ECRYPTO;

	if (vs->npubs == 0)
		return 0;
	if (vs->have_head_pub)
		return audit_head_parse(buf, len, vs->head_pub, &h);
	if (vs->rep->have_keys)
		return audit_head_parse(buf, len, vs->rep->start_key, &h);
	/* No checkpoint in this log: the head file's key is the one in force at its start. */
	for (i = 0; i < vs->npubs && r == SV_ECRYPTO; i++) {
		if ((r = audit_head_parse(buf, len, vs->pubs[i], &h)) == 0) {
			memcpy(vs->cur, vs->pubs[i], 32);
			memcpy(vs->rep->start_key, vs->cur, 32);
			vs->rep->have_keys = 1;
		}
	}
	return r;
}

int
audit_verify_keys(
    const char *path, const uint8_t (*pubs)[32], size_t npubs, struct audit_report *rep)
{
	struct vstate vs = { .pubs = pubs, .npubs = pubs ? npubs : 0, .rep = rep };
	struct lreader lr = { .fd = -1, .path = path, .cap = AUDIT_RECORD_MAX + 1 + READ_SIZE };
	uint8_t *hbuf = NULL;
	size_t hlen = 0;
	char *hpath = NULL;
	struct stat st;
	int r;

	memset(rep, 0, sizeof(*rep));
	rep->path = path;
	if (sodium_init() < 0) {
		r = sv_seterr(SV_ECRYPTO, "audit: libsodium initialisation failed");
		goto out;
	}
	if ((hpath = malloc(strlen(path) + sizeof(AUDIT_HEAD_SUFFIX))) == NULL ||
	    (lr.buf = malloc(lr.cap)) == NULL) {
		r = sv_seterr(SV_ENOMEM, "audit: out of memory");
		goto out;
	}
	snprintf(hpath, strlen(path) + sizeof(AUDIT_HEAD_SUFFIX), "%s%s", path, AUDIT_HEAD_SUFFIX);
	/* The head file is read once, here; its signature is checked after the log. */
	if ((r = sv_read_file(hpath, AUDIT_HEAD_MAX, &hbuf, &hlen)) == SV_ENOTFOUND)
		r = 0;
	else if (r != 0)
		r = sv_preferr(r, "head file");
	else if ((r = audit_head_parse(hbuf, hlen, NULL, &vs.head)) != 0)
		sv_preferr(r, "head file %s", hpath);
	else
		vs.have_head = 1;
	if (r != 0)
		goto out;
	if ((lr.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		r = sv_seterr(
		    errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "%s: %s", path, strerror(errno));
	else if (fstat(lr.fd, &st) != 0 || !S_ISREG(st.st_mode))
		r = sv_seterr(SV_EIO, "%s: not a regular file", path);
	else if ((r = verify_stream(&vs, &lr)) != 0)
		sv_seterr(r, "%s: %s", path, rep->reason);
	else if (vs.have_head && (r = head_sig(&vs, hbuf, hlen)) != 0)
		sv_preferr(r, "head file %s (checkpoint %" PRIu64 ")", hpath, vs.head.seq);
	else
		verify_summary(&vs);
	if (vs.npubs > 0 && rep->have_keys)
		memcpy(rep->end_key, vs.cur, 32);
out:
	if (r != 0 && rep->reason[0] == '\0')
		vfail(rep, 0, r, "%s", sv_errmsg(r));
	if (lr.fd >= 0)
		close(lr.fd);
	free(lr.buf);
	free(hbuf);
	free(hpath);
	return r;
}

int
audit_verify(const char *path, const uint8_t *pub, struct audit_report *rep)
{
	return audit_verify_keys(path, (const uint8_t(*)[32])pub, pub ? 1 : 0, rep);
}

__attribute__((format(printf, 3, 4))) static int
chain_fail(char *why, size_t whyn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whyn, fmt, ap);
	va_end(ap);
	return SV_ECRYPTO;
}

int
audit_verify_chain(const struct audit_report *rep, size_t n, size_t *order, char *why, size_t whyn)
{
	size_t i, j, k;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = 1; i < n; i++) /* insertion sort by first seq: a handful of files */
		for (j = i; j > 0 && rep[order[j - 1]].first_seq > rep[order[j]].first_seq; j--) {
			k = order[j];
			order[j] = order[j - 1];
			order[j - 1] = k;
		}
	for (i = 1; i < n; i++) {
		const struct audit_report *a = &rep[order[i - 1]], *b = &rep[order[i]];
		uint64_t a_end = a->first_seq + a->records - 1;

		if (b->first_seq != a_end + 1 || a->records == 0)
			return chain_fail(why, whyn,
			    "%s (seq %" PRIu64 " on) does not follow %s (seq %" PRIu64
			    " to %" PRIu64 "): a log is missing or given twice",
			    b->path, b->first_seq, a->path, a->first_seq, a_end);
		if (strcmp(b->link, a->last) != 0)
			return chain_fail(why, whyn,
			    "%s does not continue %s: its line 1 holds another hash than that "
			    "log's last line (cut or changed)",
			    b->path, a->path);
		if (a->have_keys && b->have_keys && memcmp(a->end_key, b->start_key, 32) != 0)
			return chain_fail(why, whyn,
			    "%s: its first checkpoint is signed by another key than the one in "
			    "force at the end of %s",
			    b->path, a->path);
	}
	snprintf(why, whyn, "%zu logs chained, seq %" PRIu64 " to %" PRIu64, n,
	    n ? rep[order[0]].first_seq : 0,
	    n ? rep[order[n - 1]].first_seq + rep[order[n - 1]].records - 1 : 0);
	return 0;
}
