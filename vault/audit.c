/*
 * The tamper-evident audit log (format and guarantees: see audit.h).
 *
 * Writer: vaultd's key process opens the log once (audit_open), queues the
 * records of one event-loop turn (audit_add), writes them with one write()
 * and fdatasync() (audit_commit) before answering, and now and then appends a
 * checkpoint signed through a callback into the HSM (audit_checkpoint).
 * Reader: `vaultctl audit verify` streams a log through audit_verify()
 * (audit_verify.c, with the parsers shared through audit_int.h).
 *
 * Touches only the log file it is given, its head file (path ".head",
 * replaced atomically through common/fileio) and that file's temporary
 * sibling.  Every line read is capped at AUDIT_RECORD_MAX bytes before it is
 * parsed; text from a log reaches error messages only escaped.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "audit_int.h"
#include "b64.h"
#include "buf.h"
#include "clock.h"
#include "fileio.h"
#include "job.h"
#include "log.h"
#include "sv_err.h"

#define SIG_LEN	    crypto_sign_BYTES
#define SIG_B64_LEN 86 /* base64url of SIG_LEN bytes, no padding */
#define SIG_OPEN    ",\"sig\":\""
#define SIG_CLOSE   "\"}"
/* `,"sig":"<S>"}`: the tail a signed line has over its unsigned form `...}`. */
#define SIG_TAIL_LEN (sizeof(SIG_OPEN) - 1 + SIG_B64_LEN + sizeof(SIG_CLOSE) - 1)
#define TIME_LEN     24 /* YYYY-MM-DDTHH:MM:SS.mmmZ */
/* A partial last line and the complete line before it, with both newlines. */
#define TAIL_MAX (2 * (size_t)AUDIT_RECORD_MAX + 2)

struct audit {
	int fd;
	char *path;
	char *head_path;
	off_t size;		/* committed length of the file */
	uint64_t seq;		/* last committed seq */
	uint8_t prev[HASH_LEN]; /* hash of the last committed line */
	uint64_t qseq;		/* last queued seq */
	uint8_t qprev[HASH_LEN];
	size_t nqueued;
	struct svbuf *queue; /* queued lines, newlines included */
	char *scratch;	     /* AUDIT_RECORD_MAX + 1 bytes to serialise into */
	size_t repaired;
	int dirty;			    /* the file may hold bytes past size: cut them first */
	off_t reserve_at;		    /* allocate ahead once the log would pass this length */
	int no_reserve;			    /* the file system cannot allocate ahead */
	char in_force[AUDIT_KEYID_MAX + 1]; /* key id the next checkpoint must use ("" unknown) */
	unsigned fail;			    /* test fault injection (AUDIT_FAIL_*) */
	int fail_errno;
	/* audit_commit_start() .. audit_commit_wait() */
	int started;  /* a commit is between its two halves */
	int start_r;  /* the first half's result */
	int threaded; /* the sync runs on the sync job's thread */
	/* One sync thread for the log's life, made at the first commit_start. */
	struct sv_job *sync;
	double t_start, t_end; /* the last commit: write to end of sync (seconds) */
};

static const char *const REC_KEYS[] = { "seq", "time", "prev" };
static const char *const HEAD_KEYS[] = { "seq", "hash", "key", "sig" };

/* ---- small helpers ---- */

/* base64url of a hash into a fixed buffer (libsodium's codec, as b64.h uses). */
void
audit_hash_encode(const uint8_t h[HASH_LEN], char out[HASH_B64_LEN + 1])
{
	sodium_bin2base64(
	    out, HASH_B64_LEN + 1, h, HASH_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int
time_now(char out[TIME_LEN + 1])
{
	struct timespec ts;
	struct tm tm;
	unsigned ms;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
		return sv_seterr(SV_EINTERNAL, "audit: cannot read the clock: %s", strerror(errno));
	/* Seconds part, then ".mmmZ" by hand: 5 more characters. */
	if (strftime(out, TIME_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm) != TIME_LEN - 5)
		return sv_seterr(SV_EINTERNAL, "audit: clock out of range");
	ms = (unsigned)(ts.tv_nsec / 1000000) % 1000;
	snprintf(out + TIME_LEN - 5, 6, ".%03uZ", ms);
	return 0;
}

static int
time_valid(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	if (strlen(s) != TIME_LEN)
		return 0;
	for (i = 0; i < TIME_LEN; i++) {
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
			return 0;
	}
	return 1;
}

/* Do the object's members start with (exact: are exactly) keys, in order? */
int
audit_keys_match(json_t *o, const char *const *keys, size_t n, int exact)
{
	void *it = json_object_iter(o);
	size_t i;

	if (exact && json_object_size(o) != n)
		return 0;
	for (i = 0; i < n; i++, it = json_object_iter_next(o, it)) {
		if (it == NULL || strcmp(json_object_iter_key(it), keys[i]) != 0)
			return 0;
	}
	return 1;
}

/* Parse a JSON object line the way the verifier does. */
static int
json_parse(const uint8_t *line, size_t len, json_t **out)
{
	json_error_t err;
	char esc[128];

	*out = json_loadb((const char *)line, len, JSON_REJECT_DUPLICATES, &err);
	if (*out == NULL)
		return sv_seterr(SV_EINVAL, "not valid JSON: %s",
		    sv_escape(err.text, strlen(err.text), esc, sizeof(esc)));
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sv_seterr(SV_EINVAL, "not a JSON object");
	}
	return 0;
}

/* Parse a record line: seq (positive integer), time and prev come first. */
int
audit_rec_parse(const uint8_t *line, size_t len, json_t **out, uint64_t *seq)
{
	const char *t, *p;
	json_int_t s;
	json_t *o;
	int r;

	*out = NULL;
	*seq = 0;
	if ((r = json_parse(line, len, &o)) != 0)
		return r;
	if (!audit_keys_match(o, REC_KEYS, NKEYS(REC_KEYS), 0) ||
	    json_unpack(o, "{s:I,s:s,s:s}", "seq", &s, "time", &t, "prev", &p) != 0 || s < 1)
		r = sv_seterr(SV_EINVAL, "not a record: seq, time, prev must come first");
	else if (!time_valid(t))
		r = sv_seterr(SV_EINVAL, "time is not YYYY-MM-DDTHH:MM:SS.mmmZ");
	if (r != 0) {
		json_decref(o);
		return r;
	}
	*seq = (uint64_t)s;
	*out = o;
	return 0;
}

/* Serialise o compactly into buf after its first off bytes, off + *len <= cap. */
static int
json_dump_capped(const json_t *o, char *buf, size_t off, size_t cap, size_t *len)
{
	size_t n;

	*len = 0;
	if ((n = json_dumpb(o, buf + off, cap - off, JSON_COMPACT)) == 0)
		return sv_seterr(SV_EINVAL, "audit: record cannot be serialised (bad UTF-8?)");
	if (n > cap - off)
		return sv_seterr(
		    SV_ETOOBIG, "audit: record of %zu bytes is over %zu", off + n, cap);
	*len = n;
	return 0;
}

/* ---- signatures over "line without its sig member" ---- */

/*
 * Check that line (len bytes, no newline) ends in `,"sig":"<sig>"}` with sig
 * the parsed value of its sig member; if pub, verify the signature over
 * context followed by the line with that tail replaced by "}".
 */
int
audit_sig_check(
    const uint8_t *pub, const char *context, const uint8_t *line, size_t len, const char *sig)
{
	size_t clen = strlen(context), ulen, slen;
	uint8_t *raw = NULL, *msg = NULL;
	int r = 0;

	if (strlen(sig) != SIG_B64_LEN || len < SIG_TAIL_LEN ||
	    memcmp(line + len - SIG_TAIL_LEN, SIG_OPEN, sizeof(SIG_OPEN) - 1) != 0 ||
	    memcmp(line + len - 2 - SIG_B64_LEN, sig, SIG_B64_LEN) != 0 ||
	    memcmp(line + len - 2, SIG_CLOSE, 2) != 0)
		return sv_seterr(SV_EINVAL, "sig is not the last member in canonical form");
	if (pub == NULL)
		return 0;
	if ((r = b64u_decode(sig, SIG_B64_LEN, SIG_LEN, &raw, &slen)) != 0 || slen != SIG_LEN) {
		r = sv_seterr(SV_EINVAL, "sig is not base64url of %d bytes", SIG_LEN);
		goto out;
	}
	ulen = len - SIG_TAIL_LEN + 1;
	if ((msg = malloc(clen + ulen)) == NULL) {
		r = sv_seterr(SV_ENOMEM, "audit: out of memory");
		goto out;
	}
	memcpy(msg, context, clen);
	memcpy(msg + clen, line, ulen - 1);
	msg[clen + ulen - 1] = '}';
	if (crypto_sign_verify_detached(raw, msg, clen + ulen, pub) != 0)
		r = sv_seterr(SV_ECRYPTO, "signature does not verify");
out:
	free(raw);
	free(msg);
	return r;
}

/*
 * Sign context || u (an unsigned line "{...}") and return the signed line
 * u[0..ulen-1] `,"sig":"<S>"}` in *out (malloc'd, caller frees; room for one
 * more byte after *len).
 */
static int
sig_make(const char *context, const char *u, size_t ulen, audit_sign_fn sign, void *ctx, char **out,
    size_t *len)
{
	size_t clen = strlen(context), n = 0;
	uint8_t sig[SIG_LEN], *msg = NULL;
	char *s = NULL, *line = NULL;
	int r;

	*out = NULL;
	*len = 0;
	if ((msg = malloc(clen + ulen)) == NULL || (line = malloc(ulen + SIG_TAIL_LEN)) == NULL) {
		r = sv_seterr(SV_ENOMEM, "audit: out of memory");
		goto out;
	}
	memcpy(msg, context, clen);
	memcpy(msg + clen, u, ulen);
	if ((r = sign(ctx, msg, clen + ulen, sig)) != 0) {
		r = sv_preferr(r < 0 ? r : SV_ECRYPTO, "audit: signing");
		goto out;
	}
	if ((r = b64u_encode(sig, SIG_LEN, &s)) != 0)
		goto out;
	n = ulen - 1 + sizeof(SIG_OPEN) - 1; /* u without "}", then `,"sig":"` */
	memcpy(line, u, ulen - 1);
	memcpy(line + ulen - 1, SIG_OPEN, sizeof(SIG_OPEN) - 1);
	memcpy(line + n, s, SIG_B64_LEN);
	memcpy(line + n + SIG_B64_LEN, SIG_CLOSE, 2);
	*out = line;
	*len = n + SIG_B64_LEN + 2;
	line = NULL;
out:
	free(msg);
	free(line);
	free(s);
	return r;
}

/* ---- head file ---- */

int
audit_head_parse(const uint8_t *buf, size_t len, const uint8_t *pub, struct audit_head *h)
{
	const char *hs, *k, *sg;
	uint8_t *hash = NULL;
	size_t hlen = 0;
	json_int_t seq;
	json_t *o;
	int r;

	if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1) != NULL)
		return sv_seterr(SV_EINVAL, "not one line");
	if ((r = json_parse(buf, --len, &o)) != 0)
		return r;
	if (!audit_keys_match(o, HEAD_KEYS, NKEYS(HEAD_KEYS), 1) ||
	    json_unpack(o, "{s:I,s:s,s:s,s:s}", "seq", &seq, "hash", &hs, "key", &k, "sig", &sg) !=
		0 ||
	    seq < 1) {
		r = sv_seterr(SV_EINVAL, "must be {seq,hash,key,sig} in that order");
		goto out;
	}
	if (b64u_decode(hs, strlen(hs), HASH_LEN, &hash, &hlen) != 0 || hlen != HASH_LEN) {
		r = sv_seterr(SV_EINVAL, "hash is not base64url of %d bytes", HASH_LEN);
		goto out;
	}
	if (k[0] == '\0' || strlen(k) > AUDIT_KEYID_MAX) {
		r = sv_seterr(SV_EINVAL, "key is empty or over %d bytes", AUDIT_KEYID_MAX);
		goto out;
	}
	if ((r = audit_sig_check(pub, AUDIT_HEAD_CONTEXT, buf, len, sg)) != 0)
		goto out;
	h->seq = (uint64_t)seq;
	memcpy(h->hash, hash, HASH_LEN);
	snprintf(h->key, sizeof(h->key), "%s", k);
out:
	free(hash);
	json_decref(o);
	return r;
}

/* Load the head file if there is one (*found = 0 if not). */
int
audit_head_load(const char *hpath, const uint8_t *pub, struct audit_head *h, int *found)
{
	uint8_t *buf = NULL;
	size_t len;
	int r;

	*found = 0;
	memset(h, 0, sizeof(*h));
	if ((r = sv_read_file(hpath, AUDIT_HEAD_MAX, &buf, &len)) == SV_ENOTFOUND)
		return 0;
	if (r != 0)
		return sv_preferr(r, "head file");
	if ((r = audit_head_parse(buf, len, pub, h)) != 0)
		sv_preferr(r, "head file %s", hpath);
	else
		*found = 1;
	free(buf);
	return r;
}

/* The head line (with its newline) for checkpoint seq, signed by sign; *out malloc'd. */
static int
head_make(uint64_t seq, const char *key_id, const uint8_t hash[HASH_LEN], audit_sign_fn sign,
    void *ctx, char **out, size_t *len)
{
	char h[HASH_B64_LEN + 1], u[AUDIT_HEAD_MAX];
	size_t ulen;
	json_t *o;
	int r;

	audit_hash_encode(hash, h);
	o = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "hash", h, "key", key_id);
	if (o == NULL)
		return sv_seterr(SV_ENOMEM, "audit: out of memory");
	r = json_dump_capped(o, u, 0, sizeof(u) - SIG_TAIL_LEN - 1, &ulen);
	json_decref(o);
	if (r != 0)
		return r;
	if ((r = sig_make(AUDIT_HEAD_CONTEXT, u, ulen, sign, ctx, out, len)) != 0)
		return r;
	(*out)[(*len)++] = '\n';
	return 0;
}

/* ---- opening: continue the chain from the tail ---- */

static int
audit_alloc(const char *path, struct audit **out)
{
	struct audit *a;
	size_t n = strlen(path) + sizeof(AUDIT_HEAD_SUFFIX);

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return sv_seterr(SV_ENOMEM, "audit: out of memory");
	a->fd = -1;
	a->path = strdup(path);
	a->head_path = malloc(n);
	a->queue = svbuf_new(AUDIT_BATCH_MAX);
	a->scratch = malloc(AUDIT_RECORD_MAX + 1);
	if (a->path == NULL || a->head_path == NULL || a->queue == NULL || a->scratch == NULL) {
		audit_close(a);
		return sv_seterr(SV_ENOMEM, "audit: out of memory");
	}
	snprintf(a->head_path, n, "%s%s", path, AUDIT_HEAD_SUFFIX);
	*out = a;
	return 0;
}

static int
log_open_fd(struct audit *a)
{
	struct stat st;

	a->fd =
	    open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (a->fd < 0)
		return sv_seterr(SV_EIO, "%s: open: %s", a->path, strerror(errno));
	if (fstat(a->fd, &st) != 0)
		return sv_seterr(SV_EIO, "%s: stat: %s", a->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return sv_seterr(SV_EINVAL, "%s: not a regular file", a->path);
	if (flock(a->fd, LOCK_EX | LOCK_NB) != 0)
		return sv_seterr(
		    SV_EBUSY, "%s: lock: %s: another process writes it?", a->path, strerror(errno));
	a->size = st.st_size;
	return st.st_size == 0 ? sv_fsync_parent(a->path) : 0;
}

/* The last complete line is the newest record: take its seq and hash. */
static int
tail_parse(struct audit *a, const uint8_t *line, size_t len)
{
	const char *t;
	json_t *o;
	uint64_t seq;
	int r;

	if (len == 0 || len > AUDIT_RECORD_MAX)
		return sv_seterr(SV_EINVAL, "last line empty or over %d bytes", AUDIT_RECORD_MAX);
	if ((r = audit_rec_parse(line, len, &o, &seq)) != 0)
		return sv_preferr(r, "last line");
	/* A checkpoint last: its head file may not have been written. */
	t = json_string_value(json_object_get(o, "type"));
	if (t != NULL && strcmp(t, "checkpoint") == 0) {
		json_t *k = json_object_get(o, json_object_get(o, "next") ? "next" : "key");

		if (!json_is_string(k) || json_string_length(k) == 0 ||
		    json_string_length(k) > AUDIT_KEYID_MAX) {
			json_decref(o);
			return sv_seterr(SV_EINVAL, "last line: a checkpoint without a key id");
		}
		snprintf(a->in_force, sizeof(a->in_force), "%s", json_string_value(k));
	}
	json_decref(o);
	a->seq = seq;
	crypto_hash_sha256(a->prev, line, len);
	return 0;
}

/*
 * Take seq and hash of the last complete line.  A partial line after it (a
 * crash mid-write) is noted in a->repaired, to be cut; other tails are refused.
 */
static int
log_read_tail(struct audit *a)
{
	size_t win = (size_t)a->size < TAIL_MAX ? (size_t)a->size : TAIL_MAX, start, part;
	const uint8_t *nl, *pl;
	uint8_t *buf;
	int r = 0;

	if (a->size == 0)
		return 0;
	if ((buf = malloc(win)) == NULL)
		return sv_seterr(SV_ENOMEM, "audit: out of memory");
	/* A regular file we hold the lock on: one pread() reads it all. */
	if (pread(a->fd, buf, win, a->size - (off_t)win) != (ssize_t)win) {
		r = sv_seterr(SV_EIO, "%s: read: %s", a->path, strerror(errno));
		goto out;
	}
	nl = memrchr(buf, '\n', win);
	part = nl ? win - (size_t)(nl - buf) - 1 : win;
	if (part > AUDIT_RECORD_MAX)
		r = sv_seterr(SV_EINVAL, "last %zu bytes have no newline: damaged", part);
	else if (part > 0 && buf[win - part] != '{' && buf[win - part] != '\0')
		r = sv_seterr(SV_EINVAL, "partial last line does not look like a record");
	a->repaired = r == 0 ? part : 0;
	if (r != 0 || nl == NULL)
		goto out; /* no complete line: the whole (short) file is a partial line */
	pl = memrchr(buf, '\n', (size_t)(nl - buf));
	start = pl ? (size_t)(pl - buf) + 1 : 0;
	if (pl == NULL && win < (size_t)a->size)
		r = sv_seterr(SV_EINVAL, "last line over %d bytes", AUDIT_RECORD_MAX);
	else
		r = tail_parse(a, buf + start, (size_t)(nl - buf) - start);
out:
	free(buf);
	return r;
}

/*
 * The key in force after the last checkpoint among the lines after seq
 * `after` (the head file's checkpoint, 0 without one): found reading the
 * committed log backwards from its end (lines are at most AUDIT_RECORD_MAX
 * bytes), so the cost is the lines written since the head file was last
 * written.  A handover whose head file could not be written is found this way.
 * a->in_force is left alone if there is none.
 */
static int
key_after_head(struct audit *a, uint64_t after)
{
	const size_t bufsz = 2 * (size_t)AUDIT_RECORD_MAX + 65536;
	off_t pos = a->size - (off_t)a->repaired; /* just after a newline */
	uint8_t *buf = malloc(bufsz), *s;
	size_t n, e;
	int r = 0, done = 0;

	if (buf == NULL)
		return sv_seterr(SV_ENOMEM, "audit: out of memory");
	while (pos > 0 && !done && r == 0) {
		n = (size_t)pos < bufsz ? (size_t)pos : bufsz;
		if (pread(a->fd, buf, n, pos - (off_t)n) != (ssize_t)n) {
			r = sv_seterr(SV_EIO, "%s: read: %s", a->path, strerror(errno));
			break;
		}
		e = n - 1; /* buf[e] ends the line being looked at */
		for (;;) {
			json_t *o, *k;
			const char *t;
			uint64_t seq;

			s = e > 0 ? memrchr(buf, '\n', e) : NULL;
			if (s == NULL && (size_t)pos > n) {
				if (e + 1 == n) /* not one whole line in bufsz bytes */
					r = sv_seterr(
					    SV_EINVAL, "a line over %d bytes", AUDIT_RECORD_MAX);
				pos -= (off_t)(n - e - 1);
				break;
			}
			s = s ? s + 1 : buf;
			if ((r = audit_rec_parse(s, (size_t)(buf + e - s), &o, &seq)) != 0) {
				sv_preferr(r, "audit: a line after checkpoint %" PRIu64, after);
				break;
			}
			t = json_string_value(json_object_get(o, "type"));
			k = json_object_get(o, json_object_get(o, "next") ? "next" : "key");
			if (seq <= after) {
				done = 1;
			} else if (t != NULL && strcmp(t, "checkpoint") == 0) {
				done = 1;
				if (json_is_string(k) && json_string_length(k) > 0 &&
				    json_string_length(k) <= AUDIT_KEYID_MAX)
					memcpy(a->in_force, json_string_value(k),
					    json_string_length(k) + 1);
				else
					r = sv_seterr(SV_EINVAL,
					    "audit: checkpoint %" PRIu64 " without a key id", seq);
			}
			json_decref(o);
			if (done || s == buf) {
				pos -= (off_t)n;
				done = done || pos == 0;
				break;
			}
			e = (size_t)(s - buf) - 1;
		}
	}
	free(buf);
	return r;
}

/* Refuse to append to a log cut back past the checkpoint in its head file. */
static int
head_check_open(struct audit *a)
{
	struct audit_head h;
	int found, r;

	if ((r = audit_head_load(a->head_path, NULL, &h, &found)) != 0)
		return r;
	/* The last line is not a checkpoint: the head file's, or one it missed, is the last. */
	if (a->in_force[0] == '\0' && a->seq > (found ? h.seq : 0) &&
	    (r = key_after_head(a, found ? h.seq : 0)) != 0)
		return r;
	if (!found)
		return 0;
	if (a->in_force[0] == '\0')
		memcpy(a->in_force, h.key, sizeof(a->in_force));
	if (h.seq > a->seq)
		return sv_seterr(SV_ESTATE,
		    "truncated: checkpoint %" PRIu64 " recorded in the "
		    "head file is missing (log ends at %" PRIu64 ")",
		    h.seq, a->seq);
	if (h.seq == a->seq && memcmp(h.hash, a->prev, HASH_LEN) != 0)
		return sv_seterr(SV_ESTATE, "last line is not the head file's checkpoint");
	return 0;
}

static int rotation_undo(struct audit *a);

int
audit_open(const char *path, struct audit **out)
{
	struct audit *a = NULL;
	int r;

	*out = NULL;
	if (sodium_init() < 0)
		return sv_seterr(SV_ECRYPTO, "audit: libsodium initialisation failed");
	if ((r = audit_alloc(path, &a)) != 0)
		return r;
	if ((r = log_open_fd(a)) != 0)
		goto out;
	if ((r = log_read_tail(a)) != 0 || (r = head_check_open(a)) != 0 ||
	    (r = rotation_undo(a)) != 0) {
		sv_preferr(r, "%s: refusing to append to a log it cannot chain to", path);
		goto out;
	}
	a->size -= (off_t)a->repaired;
	if (a->repaired > 0 && (ftruncate(a->fd, a->size) != 0 || fdatasync(a->fd) != 0)) {
		r = sv_seterr(SV_EIO, "%s: cut partial line: %s", path, strerror(errno));
		goto out;
	}
	a->qseq = a->seq;
	memcpy(a->qprev, a->prev, HASH_LEN);
	*out = a;
	a = NULL;
out:
	audit_close(a);
	return r;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->started)
		audit_commit_wait(a);
	sv_job_stop(a->sync);
	if (a->fd >= 0)
		close(a->fd);
	svbuf_free(a->queue);
	free(a->scratch);
	free(a->head_path);
	free(a->path);
	free(a);
}

size_t
audit_repaired(const struct audit *a)
{
	return a->repaired;
}

uint64_t
audit_seq(const struct audit *a)
{
	return a->seq;
}

size_t
audit_pending(const struct audit *a)
{
	return a->nqueued;
}

void
audit_test_fail_next_commit(struct audit *a, unsigned what, int errno_value)
{
	a->fail = what;
	a->fail_errno = errno_value;
}

/* ---- queueing ---- */

/*
 * Serialise seq, time, prev (and type, when given) and then fields into
 * a->scratch: those members written here, then jansson's compact dump of
 * fields with its opening brace turned into the comma that joins them (no
 * merged copy of the object is built).
 */
static int
rec_build(struct audit *a, const char *type, json_t *fields, size_t *len)
{
	char t[TIME_LEN + 1], p[HASH_B64_LEN + 1];
	size_t head, n;
	int r;

	*len = 0;
	if ((r = time_now(t)) != 0)
		return r;
	audit_hash_encode(a->qprev, p);
	/* type: checked by audit_add_typed() to need no escaping. */
	head = (size_t)snprintf(a->scratch, AUDIT_RECORD_MAX + 1,
	    "{\"seq\":%llu,\"time\":\"%s\",\"prev\":\"%s\"%s%s%s",
	    (unsigned long long)(a->qseq + 1), t, p, type ? ",\"type\":\"" : "", type ? type : "",
	    type ? "\"" : "");
	if (json_object_size(fields) == 0) {
		a->scratch[head] = '}';
		*len = head + 1;
		return 0;
	}
	if ((r = json_dump_capped(fields, a->scratch, head, AUDIT_RECORD_MAX, &n)) != 0)
		return r;
	a->scratch[head] = ',';
	*len = head + n;
	return 0;
}

/* Append one line (no newline in it) to the batch and advance the chain. */
static int
queue_line(struct audit *a, const void *line, size_t len)
{
	int r;

	if (svbuf_len(a->queue) + len + 1 > AUDIT_BATCH_MAX)
		return sv_seterr(SV_EBUSY, "audit: batch full: commit first");
	if ((r = svbuf_put(a->queue, line, len)) != 0 || (r = svbuf_put(a->queue, "\n", 1)) != 0)
		return r; /* not reached: the cap was checked above */
	crypto_hash_sha256(a->qprev, line, len);
	a->qseq++;
	a->nqueued++;
	return 0;
}

static void
queue_drop(struct audit *a)
{
	svbuf_reset(a->queue);
	a->nqueued = 0;
	a->qseq = a->seq;
	memcpy(a->qprev, a->prev, HASH_LEN);
}

/* Most objects and arrays a record's fields nest (the verifier's parser allows 2048). */
#define FIELDS_DEPTH_MAX 16

/*
 * Would the verifier accept the record that v goes into?  jansson's compact
 * dump of an object is valid JSON with unique names; what the verifier's
 * parser (json_loadb without JSON_ALLOW_NUL) can still reject is a NUL byte
 * in a string or a name, and nesting past its limit.  Checking the fields
 * for those is what re-parsing every line did, at a fraction of its cost.
 */
static int
fields_verifiable(json_t *v, int depth)
{
	const char *k;
	size_t klen, i;
	json_t *m;
	int r;

	if ((json_is_object(v) || json_is_array(v)) && depth > FIELDS_DEPTH_MAX)
		return sv_seterr(SV_EINVAL, "fields nested deeper than %d", FIELDS_DEPTH_MAX);
	if (json_is_string(v))
		return memchr(json_string_value(v), '\0', json_string_length(v)) == NULL
		    ? 0
		    : sv_seterr(SV_EINVAL, "a string holds a NUL byte");
	if (json_is_object(v)) {
		json_object_keylen_foreach(v, k, klen, m)
		{
			if (memchr(k, '\0', klen) != NULL)
				return sv_seterr(SV_EINVAL, "a field name holds a NUL byte");
			if ((r = fields_verifiable(m, depth + 1)) != 0)
				return r;
		}
	}
	for (i = 0; json_is_array(v) && i < json_array_size(v); i++)
		if ((r = fields_verifiable(json_array_get(v, i), depth + 1)) != 0)
			return r;
	return 0;
}

/* A record type that is no reserved one: for audit_add(), or audit_add_typed() (unescaped). */
static int
type_check(const char *type, int bare)
{
	size_t i, n = strlen(type);

	if (strcmp(type, "checkpoint") == 0 || strcmp(type, AUDIT_ROTATED) == 0)
		return sv_seterr(SV_EINVAL, "audit: type \"%s\" is reserved", type);
	for (i = 0; bare && i < n; i++)
		if (!((type[i] >= 'a' && type[i] <= 'z') || (type[i] >= '0' && type[i] <= '9') ||
			strchr("._-", type[i]) != NULL))
			break;
	if (bare && (n == 0 || n > 32 || i < n))
		return sv_seterr(SV_EINVAL, "audit: type must be 1 to 32 of [a-z0-9._-]");
	return 0;
}

static int
add(struct audit *a, const char *type, const json_t *fields)
{
	const json_t *t = json_object_get(fields, "type");
	size_t len, i;
	int r;

	if (!json_is_object(fields))
		return sv_seterr(SV_EINVAL, "audit: fields must be a JSON object");
	if (a->started)
		return sv_seterr(SV_ESTATE, "audit: a commit is under way: add after it");
	for (i = 0; i < NKEYS(REC_KEYS); i++)
		if (json_object_get(fields, REC_KEYS[i]) != NULL)
			return sv_seterr(SV_EINVAL, "audit: field \"%s\" is reserved", REC_KEYS[i]);
	if (type != NULL && t != NULL)
		return sv_seterr(SV_EINVAL, "audit: field \"type\" given twice");
	if (type != NULL && (r = type_check(type, 1)) != 0)
		return r;
	if (json_is_string(t) && (r = type_check(json_string_value(t), 0)) != 0)
		return r;
	/* Never write a line the verifier would reject.  jansson's iterators
	   take non-const objects; fields is only read. */
	if ((r = fields_verifiable((json_t *)fields, 1)) != 0)
		return sv_preferr(r, "audit: record would not verify");
	if ((r = rec_build(a, type, (json_t *)fields, &len)) != 0)
		return r;
	return queue_line(a, a->scratch, len);
}

int
audit_add(struct audit *a, const json_t *fields)
{
	return add(a, NULL, fields);
}

int
audit_add_typed(struct audit *a, const char *type, const json_t *fields)
{
	return add(a, type, fields);
}

/* ---- committing ---- */

/* The result of a sync that ended with errno e (0: it worked). */
static int
sync_result(const struct audit *a, int e)
{
	return e == 0 ? 0 : sv_seterr(SV_EIO, "%s: fdatasync: %s", a->path, strerror(e));
}

static int
log_sync(struct audit *a)
{
	if (a->fail & AUDIT_FAIL_SYNC)
		return sync_result(a, a->fail_errno);
	return sync_result(a, fdatasync(a->fd) == 0 ? 0 : errno);
}

/* Write the batch; a short write is retried so its error shows. */
static int
log_put(struct audit *a)
{
	const uint8_t *p = svbuf_ptr(a->queue);
	size_t len = svbuf_len(a->queue);
	ssize_t n;

	if (a->fail & AUDIT_FAIL_WRITE) {
		n = write(a->fd, p, len / 2);
		errno = a->fail_errno;
		return sv_seterr(SV_EIO, "%s: write: %s", a->path, strerror(errno));
	}
	for (; len > 0; p += n, len -= (size_t)n) {
		if ((n = write(a->fd, p, len)) < 0 && errno == EINTR)
			n = 0;
		else if (n < 0)
			return sv_seterr(SV_EIO, "%s: write: %s", a->path, strerror(errno));
	}
	return 0;
}

/* Cut the file back to its committed length (dirty stays set on failure). */
static int
log_cut(struct audit *a)
{
	a->dirty = 1;
	if (a->fail & AUDIT_FAIL_TRUNCATE) {
		a->fail &= ~(unsigned)AUDIT_FAIL_TRUNCATE;
		errno = a->fail_errno;
	} else if (ftruncate(a->fd, a->size) == 0 && fdatasync(a->fd) == 0) {
		a->dirty = 0;
		a->reserve_at = 0; /* the cut freed the blocks allocated ahead */
		return 0;
	}
	return sv_seterr(SV_EIO, "%s: cutting back to %lld bytes: %s", a->path, (long long)a->size,
	    strerror(errno));
}

/* After a failed write or sync: cut back, keeping the first error's detail. */
static int
log_rollback(struct audit *a, int r)
{
	char first[SV_ERRMSG_MAX];

	snprintf(first, sizeof(first), "%s", sv_errmsg(r));
	if (log_cut(a) != 0)
		return sv_seterr(r, "%s; then %s (retried next commit)", first, sv_errmsg(SV_EIO));
	return sv_seterr(r, "%s", first);
}

double
audit_last_commit_seconds(const struct audit *a)
{
	return a->t_end > a->t_start ? a->t_end - a->t_start : 0;
}

/*
 * Allocate disk for the log's next AUDIT_RESERVE bytes ahead of the writes,
 * leaving its length alone (FALLOC_FL_KEEP_SIZE: readers see only records).
 * A commit appending into blocks already allocated syncs faster: its
 * fdatasync has no block allocation (bitmap, extents) to write as well (on
 * ext4 under load, ~0.5 ms -> ~0.3 ms per fdatasync).  Best effort: where
 * it fails (no room for a whole reserve, or no support), writes allocate as
 * before, and the next try waits for a quarter of a reserve more of log.
 */
static void
log_reserve(struct audit *a, size_t len)
{
	off_t end = a->size + (off_t)len;

	if (a->no_reserve || end <= a->reserve_at)
		return;
	if (fallocate(a->fd, FALLOC_FL_KEEP_SIZE, a->size, (off_t)len + AUDIT_RESERVE) == 0) {
		a->reserve_at = end + AUDIT_RESERVE;
		return;
	}
	if (errno == EOPNOTSUPP || errno == ENOSYS)
		a->no_reserve = 1;
	a->reserve_at = end + AUDIT_RESERVE / 4;
}

/* The first half of a commit: cut, check, write.  1: something to sync. */
static int
commit_write(struct audit *a, int *r)
{
	struct stat st;

	*r = 0;
	a->t_start = a->t_end = sv_mono_now();
	if (a->dirty && (*r = log_cut(a)) != 0)
		return 0;
	if (a->nqueued == 0)
		return 0;
	/* Refuse to write if someone else changed the file's length. */
	if (fstat(a->fd, &st) != 0 || st.st_size != a->size) {
		*r = sv_seterr(
		    SV_ESTATE, "%s: changed by someone else: cannot chain to it", a->path);
		return 0;
	}
	log_reserve(a, svbuf_len(a->queue));
	if ((*r = log_put(a)) != 0) {
		*r = log_rollback(a, *r);
		return 0;
	}
	return 1;
}

/* The second half, once the sync's result r is known. */
static int
commit_end(struct audit *a, int written, int r)
{
	if (!a->threaded)
		a->t_end = sv_mono_now();
	a->threaded = 0;
	if (written && r != 0)
		r = log_rollback(a, r);
	if (written && r == 0) {
		a->size += (off_t)svbuf_len(a->queue);
		a->seq = a->qseq;
		memcpy(a->prev, a->qprev, HASH_LEN);
	}
	queue_drop(a);
	a->fail = 0;
	return r;
}

int
audit_commit(struct audit *a)
{
	int r, w;

	if (a->started)
		return sv_seterr(SV_ESTATE, "audit: a commit is already under way");
	w = commit_write(a, &r);
	return commit_end(a, w, w ? log_sync(a) : r);
}

/* The sync thread's job: the fdatasync; its errno. */
static int
sync_job(void *arg)
{
	struct audit *a = arg;
	int e = fdatasync(a->fd) == 0 ? 0 : errno;

	a->t_end = sv_mono_now();
	return e;
}

/* Hand the sync to the sync thread (made the first time); 0 if there is none. */
static int
sync_ask(struct audit *a)
{
	if (a->sync == NULL && sv_job_start(sync_job, a, &a->sync) != 0)
		return 0;
	sv_job_ask(a->sync);
	return 1;
}

/* Wait for the sync asked by sync_ask(); its errno. */
static int
sync_wait(struct audit *a)
{
	int e = 0;

	sv_job_take(a->sync, 1, &e);
	return e;
}

int
audit_commit_start(struct audit *a)
{
	if (a->started)
		return sv_seterr(SV_ESTATE, "audit: a commit is already under way");
	a->started = commit_write(a, &a->start_r) ? 1 : -1;
	a->threaded = 0;
	if (a->started == 1 && !(a->fail & AUDIT_FAIL_SYNC))
		a->threaded = sync_ask(a);
	return a->start_r;
}

int
audit_commit_wait(struct audit *a)
{
	int written = a->started == 1, r = a->start_r;

	if (a->started == 0)
		return sv_seterr(SV_ESTATE, "audit: no commit under way");
	a->started = 0;
	if (written && a->threaded)
		r = sync_result(a, sync_wait(a));
	else if (written)
		r = log_sync(a); /* no thread could be made, or a test fault */
	return commit_end(a, written, r);
}

static int
key_id_ok(const char *id)
{
	return id != NULL && id[0] != '\0' && strlen(id) <= AUDIT_KEYID_MAX;
}

/*
 * Append and commit a checkpoint signed by sign, then write the head file
 * signed by the key in force after it: the same signer, or for a handover
 * (next set) next->sign, whose signature is checked against next->pub
 * before anything is written.
 */
static int
ckpt_write(struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx,
    const struct audit_next *next)
{
	const char *force = next ? next->key_id : key_id;
	uint8_t hash[HASH_LEN];
	char *line = NULL, *hline = NULL, *pub = NULL;
	size_t ulen, len, hlen;
	json_t *f;
	int r;

	if (a->nqueued != 0 || a->started)
		return sv_seterr(SV_ESTATE, "audit: records queued: commit before a checkpoint");
	if (sign == NULL || !key_id_ok(key_id) ||
	    (next && (next->sign == NULL || !key_id_ok(next->key_id))))
		return sv_seterr(SV_EINVAL,
		    "audit: checkpoint needs a signer and a key id of 1 to "
		    "%d bytes",
		    AUDIT_KEYID_MAX);
	if (next && (r = b64u_encode(next->pub, 32, &pub)) != 0)
		return r;
	f = next ? json_pack("{s:s,s:s,s:s,s:s}", "type", "checkpoint", "key", key_id, "next",
		       next->key_id, "pub", pub)
		 : json_pack("{s:s,s:s}", "type", "checkpoint", "key", key_id);
	free(pub);
	if (f == NULL)
		return sv_seterr(SV_EINVAL, "audit: checkpoint key id is not UTF-8");
	r = rec_build(a, NULL, f, &ulen);
	json_decref(f);
	if (r != 0)
		return r;
	if ((r = sig_make(AUDIT_CKPT_CONTEXT, a->scratch, ulen, sign, ctx, &line, &len)) != 0)
		return r;
	crypto_hash_sha256(hash, (const uint8_t *)line, len);
	if (len > AUDIT_RECORD_MAX)
		r = sv_seterr(SV_ETOOBIG, "audit: checkpoint over %d bytes", AUDIT_RECORD_MAX);
	else if (next)
		r = head_make(a->qseq + 1, force, hash, next->sign, next->ctx, &hline, &hlen);
	else
		r = head_make(a->qseq + 1, force, hash, sign, ctx, &hline, &hlen);
	/* The new key must be the one announced: else the log would name a key nobody holds. */
	if (r == 0 && next) {
		char sig[SIG_B64_LEN + 1];

		memcpy(sig, hline + hlen - 1 - 2 - SIG_B64_LEN, SIG_B64_LEN);
		sig[SIG_B64_LEN] = '\0';
		if ((r = audit_sig_check(next->pub, AUDIT_HEAD_CONTEXT, (const uint8_t *)hline,
			 hlen - 1, sig)) != 0)
			r = sv_preferr(
			    r, "audit: the next key does not sign as its public key says");
	}
	if (r == 0 && (r = queue_line(a, line, len)) == 0 && (r = audit_commit(a)) == 0) {
		/* memmove: key_id may be audit_key_in_force()'s own buffer. */
		memmove(a->in_force, force, strlen(force) + 1);
		if ((r = sv_write_file_atomic(a->head_path, hline, hlen, 0600)) != 0)
			sv_preferr(r,
			    "audit: checkpoint %" PRIu64 " committed but head file not written",
			    a->seq);
	}
	queue_drop(a);
	free(line);
	free(hline);
	return r;
}

int
audit_checkpoint(struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx)
{
	return ckpt_write(a, key_id, sign, ctx, NULL);
}

int
audit_handover(struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx,
    const struct audit_next *next)
{
	if (next == NULL)
		return sv_seterr(SV_EINVAL, "audit: a handover needs the next key");
	return ckpt_write(a, key_id, sign, ctx, next);
}

const char *
audit_key_in_force(const struct audit *a)
{
	return a->in_force;
}

/* ---- rotation ---- */

/* The archive's name: the log's path and the seq of its last line (its checkpoint). */
static void
archive_name(const struct audit *a, char *out, size_t n)
{
	snprintf(out, n, "%s.%012" PRIu64, a->path, a->seq);
}

/* The new log's path until it replaces the old one. */
static void
next_name(const struct audit *a, char *out, size_t n)
{
	snprintf(out, n, "%s%s", a->path, AUDIT_NEXT_SUFFIX);
}

/* Are paths x and y one file? */
static int
same_file(const char *x, const char *y)
{
	struct stat sx, sy;

	return stat(x, &sx) == 0 && stat(y, &sy) == 0 && sx.st_dev == sy.st_dev &&
	    sx.st_ino == sy.st_ino;
}

/*
 * The first line of the next log, written and synced to AUDIT_NEXT_SUFFIX
 * and locked: {"seq":N+1,...,"prev":<hash of checkpoint N>,"type":"rotated",
 * "from":<archive's file name>}.  *fd, *len and hash describe it.
 */
static int
next_write(struct audit *a, const char *next, const char *archive, int *fd, size_t *len,
    uint8_t hash[HASH_LEN])
{
	const char *base = strrchr(archive, '/');
	json_t *f;
	int r;

	base = base ? base + 1 : archive;
	if ((f = json_pack("{s:s,s:s}", "type", AUDIT_ROTATED, "from", base)) == NULL)
		return sv_seterr(SV_EINVAL, "audit: archive name is not UTF-8");
	r = rec_build(a, NULL, f, len);
	json_decref(f);
	if (r != 0)
		return r;
	crypto_hash_sha256(hash, (const uint8_t *)a->scratch, *len);
	a->scratch[(*len)++] = '\n';
	*fd = open(
	    next, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (*fd < 0)
		return sv_seterr(SV_EIO, "%s: open: %s", next, strerror(errno));
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0 || write(*fd, a->scratch, *len) != (ssize_t)*len ||
	    fdatasync(*fd) != 0)
		return sv_seterr(SV_EIO, "%s: write: %s", next, strerror(errno));
	return 0;
}

/*
 * An archive link and next file left by a rotation that stopped before its
 * rename: the log is still the old one, so take both away (the archive only
 * if it is the log itself, under its archive name).
 */
static int
rotation_undo(struct audit *a)
{
	char next[PATH_MAX], archive[PATH_MAX], ahead[PATH_MAX + sizeof(AUDIT_HEAD_SUFFIX)];

	next_name(a, next, sizeof(next));
	if (access(next, F_OK) != 0)
		return 0;
	archive_name(a, archive, sizeof(archive));
	snprintf(ahead, sizeof(ahead), "%s%s", archive, AUDIT_HEAD_SUFFIX);
	if (same_file(archive, a->path) &&
	    (unlink(archive) != 0 || (unlink(ahead) != 0 && errno != ENOENT)))
		return sv_seterr(SV_EIO, "%s: cannot remove: %s", archive, strerror(errno));
	if (unlink(next) != 0)
		return sv_seterr(SV_EIO, "%s: cannot remove: %s", next, strerror(errno));
	sv_warn("audit: undid a rotation that did not finish (%s removed)", next);
	return sv_fsync_parent(a->path);
}

int
audit_rotate(
    struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx, char *archive, size_t n)
{
	char next[PATH_MAX], ahead[PATH_MAX];
	uint8_t *head = NULL, hash[HASH_LEN];
	size_t hlen, len;
	int fd = -1, r;

	if (a->started || a->nqueued != 0)
		return sv_seterr(
		    SV_ESTATE, "audit: records queued or a commit under way: commit first");
	if (strlen(a->path) + 32 > n || strlen(a->path) + 32 > sizeof(next))
		return sv_seterr(SV_EINVAL, "audit: log path too long to rotate");
	if ((r = audit_checkpoint(a, key_id, sign, ctx)) != 0)
		return sv_preferr(r, "audit: rotation needs a checkpoint first");
	archive_name(a, archive, n);
	next_name(a, next, sizeof(next));
	snprintf(ahead, sizeof(ahead), "%s%s", archive, AUDIT_HEAD_SUFFIX);
	if ((r = next_write(a, next, archive, &fd, &len, hash)) != 0)
		goto undo;
	/* The archive: the log under a second name, with a copy of its head file. */
	if (link(a->path, archive) != 0 && !(errno == EEXIST && same_file(a->path, archive))) {
		r = sv_seterr(SV_EIO, "%s: link: %s", archive, strerror(errno));
		goto undo;
	}
	if ((r = sv_read_file(a->head_path, AUDIT_HEAD_MAX, &head, &hlen)) != 0 ||
	    (r = sv_write_file_atomic(ahead, head, hlen, 0600)) != 0 ||
	    (r = sv_fsync_parent(archive)) != 0)
		goto undo;
	/* The one step that switches logs. */
	if (rename(next, a->path) != 0) {
		r = sv_seterr(SV_EIO, "%s: rename: %s", next, strerror(errno));
		goto undo;
	}
	if (ftruncate(a->fd, a->size) != 0) /* give back the disk allocated ahead */
		sv_debug("%s: %s", archive, strerror(errno));
	close(a->fd);
	a->fd = fd;
	fd = -1;
	a->size = (off_t)len;
	a->reserve_at = 0;
	a->seq++;
	memcpy(a->prev, hash, HASH_LEN);
	a->qseq = a->seq;
	memcpy(a->qprev, hash, HASH_LEN);
	if ((r = sv_fsync_parent(a->path)) != 0)
		sv_preferr(r, "audit: rotated, but the directory sync failed");
	free(head);
	return r;
undo:
	if (fd >= 0)
		close(fd);
	free(head);
	if (same_file(archive, a->path)) {
		unlink(archive);
		unlink(ahead);
	}
	unlink(next);
	return sv_preferr(r, "audit: rotation failed, the log goes on (ending in its checkpoint)");
}
