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
#include "log.h"
#include "sv_err.h"

#define READ_SIZE 65536 /* read() size */

static const char *const CKPT_KEYS[] = { "seq", "time", "prev", "type", "key", "sig" };

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
	const uint8_t *pub;
	struct audit_head head;
	int have_head;
	uint8_t prev[HASH_LEN];
	struct audit_report *rep;
};

static int
verify_checkpoint(struct vstate *vs, json_t *o, const uint8_t *line, size_t len, uint64_t n)
{
	json_t *k = json_object_get(o, "key"), *s = json_object_get(o, "sig");
	char esc[64];
	int r;

	if (!audit_keys_match(o, CKPT_KEYS, NKEYS(CKPT_KEYS), 1) || !json_is_string(k) ||
	    !json_is_string(s) || json_string_length(k) == 0 ||
	    json_string_length(k) > AUDIT_KEYID_MAX)
		return sv_seterr(SV_EINVAL, "checkpoint must be {seq,time,prev,type,key,sig}");
	r = audit_sig_check(vs->pub, AUDIT_CKPT_CONTEXT, line, len, json_string_value(s));
	if (r != 0)
		return sv_preferr(r, "checkpoint (key \"%s\")",
		    sv_escape(json_string_value(k), json_string_length(k), esc, sizeof(esc)));
	vs->rep->checkpoints++;
	vs->rep->last_checkpoint = n;
	return 0;
}

static int
verify_line(struct vstate *vs, const uint8_t *line, size_t len)
{
	uint64_t seq, n = vs->rep->records + 1;
	char want[HASH_B64_LEN + 1];
	json_t *o = NULL, *t;
	int r;

	if ((r = audit_rec_parse(line, len, &o, &seq)) != 0)
		goto out;
	if (seq != n) {
		r = sv_seterr(SV_ECRYPTO,
		    "seq is %" PRIu64 ", expected %" PRIu64 ": records "
		    "deleted, inserted or moved",
		    seq, n);
		goto out;
	}
	audit_hash_encode(vs->prev, want);
	if (strcmp(json_string_value(json_object_get(o, "prev")), want) != 0) {
		if (n == 1)
			r = sv_seterr(SV_ECRYPTO, "prev is not the genesis value");
		else
			r = sv_seterr(SV_ECRYPTO,
			    "prev does not match the hash of line %" PRIu64
			    ": it was changed, or lines deleted or moved",
			    n - 1);
		goto out;
	}
	t = json_object_get(o, "type");
	if (json_is_string(t) && strcmp(json_string_value(t), "checkpoint") == 0) {
		if ((r = verify_checkpoint(vs, o, line, len, n)) != 0)
			goto out;
	} else {
		t = NULL;
	}
	crypto_hash_sha256(vs->prev, line, len);
	if (vs->have_head && n == vs->head.seq &&
	    (t == NULL || memcmp(vs->prev, vs->head.hash, HASH_LEN) != 0)) {
		r = sv_seterr(SV_ECRYPTO, "not the checkpoint recorded in the head file");
		goto out;
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
	if (vs->have_head && vs->head.seq > rep->records)
		return vfail(rep, rep->records + 1, SV_ECRYPTO,
		    "truncated: checkpoint %" PRIu64 " recorded in the head file is missing",
		    vs->head.seq);
	return 0;
}

static void
verify_summary(const struct vstate *vs)
{
	struct audit_report *rep = vs->rep;

	rep->sigs_checked = vs->pub != NULL;
	rep->head_checked = vs->have_head;
	snprintf(rep->reason, sizeof(rep->reason),
	    "intact: %" PRIu64 " records, %" PRIu64 " checkpoints; signatures %s; %s", rep->records,
	    rep->checkpoints, vs->pub ? "verified" : "NOT checked (no key)",
	    vs->have_head ? "head file matches" : "no head file (truncation not checked)");
}

int
audit_verify(const char *path, const uint8_t *pub, struct audit_report *rep)
{
	struct vstate vs = { .pub = pub, .rep = rep };
	struct lreader lr = { .fd = -1, .path = path, .cap = AUDIT_RECORD_MAX + 1 + READ_SIZE };
	char *hpath = NULL;
	struct stat st;
	int r;

	memset(rep, 0, sizeof(*rep));
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
	if ((r = audit_head_load(hpath, pub, &vs.head, &vs.have_head)) != 0)
		goto out;
	if ((lr.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		r = sv_seterr(
		    errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "%s: %s", path, strerror(errno));
	else if (fstat(lr.fd, &st) != 0 || !S_ISREG(st.st_mode))
		r = sv_seterr(SV_EIO, "%s: not a regular file", path);
	else if ((r = verify_stream(&vs, &lr)) != 0)
		sv_seterr(r, "%s: %s", path, rep->reason);
	else
		verify_summary(&vs);
out:
	if (r != 0 && rep->reason[0] == '\0')
		vfail(rep, 0, r, "%s", sv_errmsg(r));
	if (lr.fd >= 0)
		close(lr.fd);
	free(lr.buf);
	free(hpath);
	return r;
}
