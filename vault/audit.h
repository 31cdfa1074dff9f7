/*
 * The tamper-evident audit log of vaultd's key process.
 *
 * The key process writes one record for every decision (allowed and denied
 * signatures, enrollments, admin actions) and commits it before it answers;
 * if the record cannot be committed the request fails (fail closed).  Records
 * of all requests ready in one event-loop turn are queued with audit_add()
 * and written with a single write() and fdatasync() by audit_commit() (group
 * commit).  `vaultctl audit verify` checks a log with audit_verify().
 *
 * FORMAT (stable; version 1)
 *
 * The log is a file of lines, each one JSON object in jansson's compact form
 * followed by "\n".  Line n (counting from 1) is the record with seq n, or
 * seq S + n - 1 in a log that continues a rotated one from seq S (below).  A
 * line holds at most AUDIT_RECORD_MAX bytes, not counting its newline.
 * Members come in this order:
 *
 *   {"seq":N,"time":"2026-11-29T21:30:05.123Z","prev":"<P>", <caller fields>}
 *
 *   seq   JSON integer, 1 for the first line, +1 for each line.
 *   time  UTC, ISO 8601 with milliseconds, always 24 characters
 *         (YYYY-MM-DDTHH:MM:SS.mmmZ), from CLOCK_REALTIME; informational only
 *         (the clock may step back, so the verifier does not order by it).
 *   prev  base64url without padding (43 characters) of the SHA-256 of the
 *         previous line's bytes, without its newline.  Line 1 carries
 *         AUDIT_GENESIS: 43 'A's, which is the encoding of 32 zero bytes.
 *
 * The caller's fields follow, in the caller's order; they may not use the
 * names seq, time or prev, nor "type":"checkpoint" or "type":"rotated".
 *
 * A checkpoint is a line with exactly these members, in this order:
 *
 *   {"seq":N,"time":"...","prev":"...","type":"checkpoint","key":"<K>","sig":"<S>"}
 *
 * K names the signing key (at most AUDIT_KEYID_MAX bytes).  S is base64url (86
 * characters) of a 64-byte Ed25519 signature over AUDIT_CKPT_CONTEXT followed
 * by the line's bytes with its sig member removed, i.e. with the 96-byte tail
 * `,"sig":"<S>"}` replaced by `}`:
 *
 *   {"seq":N,"time":"...","prev":"...","type":"checkpoint","key":"<K>"}
 *
 * The verifier works on those raw bytes (it never re-serialises JSON), so the
 * check does not depend on the JSON library.  Because prev chains every line,
 * a valid checkpoint authenticates every line before it.
 *
 * KEY HANDOVER.  A checkpoint may hand the log over to a new key:
 *
 *   {"seq":N,...,"type":"checkpoint","key":"<K>","next":"<K2>","pub":"<P>","sig":"<S>"}
 *
 * signed by K as above, P being base64url (43 characters) of K2's 32-byte
 * Ed25519 public key.  Every later checkpoint (and the head file, below) must
 * be signed by P: the old key signs nothing after it.  The verifier starts
 * from the keys it trusts (the first checkpoint of a log may be signed by any
 * of them) and follows handovers, so the first key alone verifies a log that
 * changed keys since.
 *
 * The head file, "<log path>" AUDIT_HEAD_SUFFIX, is rewritten atomically after
 * each checkpoint.  It holds one line:
 *
 *   {"seq":N,"hash":"<H>","key":"<K>","sig":"<S>"}
 *
 * N is the seq of the newest checkpoint, H the base64url SHA-256 of that line
 * (without newline), K the key in force after it (K2 after a handover), S an
 * Ed25519 signature by that key over
 * AUDIT_HEAD_CONTEXT followed by the head line without its sig member (same
 * rule as above).  If the head file exists, the verifier requires line N of the
 * log to be that checkpoint; a log cut back past it fails with "truncated:
 * checkpoint N recorded in the head file is missing".
 *
 * ROTATION (audit_rotate()) ends a log with a checkpoint N, keeps it as
 * "<path>.<N, 12 digits>" with a copy of its head file, and starts a new log
 * at path whose line 1 is exactly
 *
 *   {"seq":N+1,"time":"...","prev":"<hash of line N>","type":"rotated","from":"<F>"}
 *
 * F being the archive's file name.  A log whose line 1 has a seq above 1
 * must start with such a line, and its head file (which after the rotation
 * still names checkpoint N) must hold the hash in its prev.  Logs given
 * together are checked to form one chain (audit_verify_chain()): each starts
 * at the seq after the previous one's last and its line 1 holds that line's
 * hash.
 *
 * WHAT IS AND IS NOT DETECTED
 *
 * With the public key, audit_verify() detects any edit, insertion, deletion
 * or reordering of lines up to and including the last checkpoint, and (with
 * the head file) a truncation of the log back past the checkpoint recorded in
 * the head file.  Lines after the last checkpoint are only hash-chained: the
 * chain hash is not keyed, so someone who can write the file can rewrite,
 * drop or cut those lines and recompute the chain without detection; in
 * particular truncating only records after the last checkpoint is NOT
 * detectable offline.  An archive verified alone with its head file is
 * covered like any log; one whose head file is gone is checked at its end
 * only by the next log's link, so verify archives together with the logs
 * that follow them.  Deleting whole archives (older records) is not
 * detected: the report says at which seq the given logs start.  Deleting the head file together
 * with a truncation, or putting back an older head file, is not detectable either.  Checkpoint
 * often to keep that window small.  Without the public key only the chain
 * and the format are checked (the report says so).
 *
 * After a crash the log may end in a partial line (cut away by audit_open())
 * and may hold complete records of a batch whose requests were never answered.
 */
#ifndef SV_AUDIT_H
#define SV_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest line in bytes, newline not counted. */
#define AUDIT_RECORD_MAX 16384
/* Largest batch of queued, uncommitted records in bytes. */
#define AUDIT_BATCH_MAX (4u << 20)
/* Disk the writer allocates ahead of the log's end, the file's length left
 * alone (fallocate FALLOC_FL_KEEP_SIZE): `du` shows up to this much more than
 * `ls`, and a disk filled by others stops the log only once it is used up. */
#define AUDIT_RESERVE (256 * 1024)
/* Longest checkpoint key id in bytes. */
#define AUDIT_KEYID_MAX 128
/* Largest head file in bytes. */
#define AUDIT_HEAD_MAX 4096
/* prev of line 1: base64url of 32 zero bytes. */
#define AUDIT_GENESIS "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
/* Domain-separation prefixes of the signed messages. */
#define AUDIT_CKPT_CONTEXT "shadowvault audit checkpoint v1\n"
#define AUDIT_HEAD_CONTEXT "shadowvault audit head v1\n"
/* The head file's name is the log path with this appended. */
#define AUDIT_HEAD_SUFFIX ".head"
/* The type of the first line of a log that continues a rotated one. */
#define AUDIT_ROTATED "rotated"
/* The next log's name while audit_rotate() writes it. */
#define AUDIT_NEXT_SUFFIX ".next"

/*
 * Checkpoint signer: write the 64-byte Ed25519 signature of len bytes at msg
 * into sig.  Return 0 or a negative SV_E* code (with sv_seterr detail).  The
 * private key stays with the signer (the HSM).
 */
typedef int (*audit_sign_fn)(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64]);

struct audit;

/*
 * Open or create (mode 0600) the log at path for appending and take an
 * exclusive lock on it (SV_EBUSY if another process holds it).  Reads the
 * last complete line to continue the chain.  A partial last line (no final
 * newline: a crash mid-write) of at most AUDIT_RECORD_MAX bytes is cut away;
 * audit_repaired() tells how many bytes were cut so the caller can log it.
 * Refuses (nothing changed) a log whose last complete line is not a record,
 * a longer partial tail, something that is not a regular file, a malformed
 * head file, and a log that ends before the checkpoint recorded in its head
 * file (the head file's signature is not checked here: audit_verify does).
 * *out is set on success; the caller frees it with audit_close().
 */
int audit_open(const char *path, struct audit **out);

/* Close the log and release the lock; queued records are dropped.  NULL ok. */
void audit_close(struct audit *a);

/* Bytes of a partial last line cut away by audit_open() (0: none). */
size_t audit_repaired(const struct audit *a);

/*
 * Queue a record made of fields (a JSON object, not modified, still owned by
 * the caller) after seq, time and prev; no I/O.  SV_EINVAL if fields is not
 * an object, uses seq/time/prev or "type":"checkpoint", holds a key with a
 * NUL byte or a value the verifier would reject; SV_ETOOBIG if the line
 * would exceed AUDIT_RECORD_MAX; SV_EBUSY if the batch would exceed
 * AUDIT_BATCH_MAX (commit first).  On error nothing is queued.
 */
int audit_add(struct audit *a, const json_t *fields);

/*
 * audit_add() of {"type": type} followed by fields' members, without
 * building that object: type is 1 to 32 of [a-z0-9._-], not "checkpoint"
 * nor "rotated", and fields may not hold "type" (SV_EINVAL).  The line is
 * byte for byte the one audit_add() writes for the merged object.
 */
int audit_add_typed(struct audit *a, const char *type, const json_t *fields);

/* Number of queued, uncommitted records. */
size_t audit_pending(const struct audit *a);

/*
 * Write all queued records with one write() and fdatasync().  On failure
 * the file is cut back to its last committed length, the queued records are
 * dropped, seq and prev roll back and SV_EIO is returned with the errno
 * text; the next audit_add()/audit_commit() works normally once the disk
 * accepts writes again (if even the cut failed, the next commit repeats it
 * first).  SV_ESTATE if the file's length changed behind our back (someone
 * else wrote to it): the log cannot be chained to any more.
 */
int audit_commit(struct audit *a);

/*
 * audit_commit() in two halves, so that the caller can work while the disk
 * syncs: audit_commit_start() writes the queued records and starts their
 * fdatasync() on the log's sync thread (made at the first start, ended by
 * audit_close(); do not fork while it exists); audit_commit_wait() waits for
 * it and returns what audit_commit() would have (the records count as
 * committed only then).
 * Between the two, nothing else may be queued, committed or checkpointed.
 * A start that fails (its result is returned by both calls) must still be
 * followed by audit_commit_wait().
 */
int audit_commit_start(struct audit *a);
int audit_commit_wait(struct audit *a);
/* Seconds the last commit took from its write to the end of its sync. */
double audit_last_commit_seconds(const struct audit *a);

/*
 * Append and commit a checkpoint signed through sign(ctx, ...) with the key
 * named key_id, then rewrite the head file.  The queue must be empty
 * (SV_ESTATE otherwise: commit first) so that a failed checkpoint never
 * affects request records.  A signer error is returned as is and nothing is
 * written.  If the checkpoint is committed but the head file cannot be
 * written, SV_EIO says so; the log stays valid and the next checkpoint
 * rewrites the head file.
 */
int audit_checkpoint(struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx);

/* The key a handover passes the log to: its id, public key and signer. */
struct audit_next {
	const char *key_id;
	uint8_t pub[32];
	audit_sign_fn sign;
	void *ctx;
};

/*
 * A checkpoint signed by key_id that hands the log over to next (see KEY
 * HANDOVER); the head file is signed by next.  next->sign is tried on the
 * head file before anything is written: if its signature does not verify
 * with next->pub, SV_ECRYPTO and the log is unchanged.  Otherwise as
 * audit_checkpoint().
 */
int audit_handover(struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx,
    const struct audit_next *next);

/*
 * The id of the key the next checkpoint must be signed with: the key of the
 * log's newest checkpoint (its next key after a handover), as found by
 * audit_open() in the last line or the head file and kept up to date by
 * checkpoints.  "" if the log (and its head file) has none yet.
 */
const char *audit_key_in_force(const struct audit *a);

/*
 * Rotate the log: commit a checkpoint (as audit_checkpoint()), keep the log
 * under the name "<path>.<seq of that checkpoint, 12 digits>" with a copy of
 * its head file, and continue in a new file at path whose first line is
 * {"seq":N+1,"time":..,"prev":<hash of checkpoint N>,"type":"rotated",
 * "from":<the archive's file name>}.  The switch is one rename(): after a
 * crash the log at path is the old one (audit_open() removes what the
 * rotation had made) or the new one.  The queue must be empty and no commit
 * under way (SV_ESTATE).  On success the archive's path is in archive (n
 * bytes); on failure the log goes on, ending in that checkpoint.
 */
int audit_rotate(
    struct audit *a, const char *key_id, audit_sign_fn sign, void *ctx, char *archive, size_t n);

/* seq of the last committed record (0 for an empty log). */
uint64_t audit_seq(const struct audit *a);

struct audit_report {
	uint64_t records;	  /* lines read and accepted */
	uint64_t checkpoints;	  /* checkpoint lines accepted */
	uint64_t last_checkpoint; /* seq of the last one, 0 if none */
	uint64_t bad_line;	  /* first bad line (1-based), 0 if none or not a line */
	int sigs_checked;	  /* 1 if checkpoint and head signatures were verified */
	int head_checked;	  /* 1 if a head file was found and matched */
	char reason[400];	  /* what failed, or a summary when intact */
	const char *path;	  /* the log audit_verify() was given (its pointer) */
	/* Where the log sits in the chain (set when intact): */
	uint64_t first_seq; /* 1, or where a rotated log continues */
	char link[44];	    /* prev of line 1, base64url */
	char last[44];	    /* hash of the last line, base64url ("" if none) */
	char from[96];	    /* a continuation's "from" (escaped) */
	/* Keys (when signatures were checked): */
	uint64_t handovers;    /* key handovers accepted */
	int have_keys;	       /* a checkpoint was verified: start_key and end_key are set */
	uint8_t start_key[32]; /* the key of the first checkpoint */
	uint8_t end_key[32];   /* the key in force after the last one */
};

/*
 * Verify the log at path and its head file (path AUDIT_HEAD_SUFFIX, if it
 * exists).  pub: the 32-byte Ed25519 public key of the checkpoints, or NULL
 * to check only the chain and the format (rep->sigs_checked is then 0).
 * The log is streamed line by line (memory does not grow with its size).
 * rep is always filled.  Returns 0 if intact; SV_ECRYPTO for a broken chain,
 * wrong seq, bad signature, head mismatch or truncation; SV_EINVAL for a
 * malformed line or head file; SV_EIO / SV_ENOTFOUND if a file cannot be read.
 */
int audit_verify(const char *path, const uint8_t *pub, struct audit_report *rep);

/*
 * audit_verify() trusting npubs keys (pubs may be NULL with npubs 0: no
 * signature checks): a log's first checkpoint may be signed by any of them,
 * every later one only by the key in force (the first one's, then the next
 * key of each handover).  The head file must be signed by the key in force
 * after its checkpoint.
 */
int audit_verify_keys(
    const char *path, const uint8_t (*pubs)[32], size_t npubs, struct audit_report *rep);

/*
 * Check that n logs, each verified intact by audit_verify() (reports in rep),
 * form one chain: ordered by first_seq, each continues the one before it (its
 * first seq follows that one's last and its line 1 holds the hash of that
 * one's last line).  order receives the indexes in chain order.  0, or
 * SV_ECRYPTO with why saying which log does not continue which.  The oldest
 * log need not start at seq 1 (older archives may have been deleted).
 */
int audit_verify_chain(
    const struct audit_report *rep, size_t n, size_t *order, char *why, size_t whyn);

/*
 * ---- For tests only: fault injection. ----
 * Make the next audit_commit() (that writes) fail with errno_value:
 * AUDIT_FAIL_WRITE writes half the batch, then fails; AUDIT_FAIL_SYNC writes
 * it all, then the sync fails; AUDIT_FAIL_TRUNCATE (with one of them) also
 * makes the roll-back cut fail once.  One shot.
 */
enum { AUDIT_FAIL_WRITE = 1, AUDIT_FAIL_SYNC = 2, AUDIT_FAIL_TRUNCATE = 4 };
void audit_test_fail_next_commit(struct audit *a, unsigned what, int errno_value);

#endif
