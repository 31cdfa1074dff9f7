/*
 * keyproc: vaultd's key process.  The only owner of the PKCS#11 session,
 * the state database, the audit log and the policies.  It answers framed
 * requests from netproc and administrator requests on the admin socket,
 * re-checking everything itself: netproc is not trusted.
 *
 * Group commit: every request read in one callback is handled, its audit
 * records queued; then the records are written and fsynced once, the state
 * transaction committed, and only then the answers are sent.  If the audit
 * log cannot be written, every answer of that batch that carried a record
 * becomes 503 and nothing it produced (a signature, a certificate) leaves.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/pem.h>

#include "b64.h"
#include "clock.h"
#include "evbase.h"
#include "fileio.h"
#include "ipc.h"
#include "keyproc.h"
#include "log.h"
#include "sandbox.h"
#include "shadows.h"
#include "shadowca.h"
#include "sv_err.h"
#include "vaultd.h"

#define KP_INPUT_MAX   (8 * 1024 * 1024) /* bytes buffered from netproc */
#define KP_IPC_CHUNK   (256 * 1024)	 /* bytes moved per read or write callback */
#define KP_NONCE_KEEP  (7 * 86400)	 /* seconds a signed nonce is remembered */
#define KP_PRUNE_EVERY 3600		 /* seconds between prunes */
#define PROBLEM_BASE   "tag:shadowvault.org,2026:problem:"

struct item {
	uint32_t id;
	uint32_t type; /* of the request */
	json_t *resp;
	struct kp_pending *pend; /* its signature, made while the audit syncs */
	int audited;
};

json_t *
kp_ok(int status, json_t *body)
{
	return json_pack("{s:i, s:o}", "status", status, "body", body ? body : json_object());
}

json_t *
kp_problem(int status, const char *type, const char *title, const char *detail, int retry_after)
{
	char t[128];

	snprintf(t, sizeof(t), PROBLEM_BASE "%s", type);
	return json_pack("{s:i, s:{s:s, s:s, s:i, s:s}, s:i}", "status", status, "problem", "type",
	    t, "title", title, "status", status, "detail", detail ? detail : "", "retry_after",
	    retry_after);
}

void
kp_audit(struct kp *kp, const char *type, json_t *fields)
{
	/* A record that cannot even be made or queued fails the batch like a write error. */
	if (fields == NULL || audit_add_typed(kp->audit, type, fields) != 0)
		kp->audit_down = 2;
	json_decref(fields);
	kp->audited = 1;
}

int
kp_txn(struct kp *kp)
{
	int r;

	if (kp->in_txn)
		return 0;
	if ((r = state_begin(kp->st)) == 0)
		kp->in_txn = 1;
	return r;
}

/*
 * The state database is written without an fsync of its own (synchronous =
 * NORMAL): the audit log, fsynced first, is the durable record.  Each batch
 * records the audit seq it reached; after a power loss, recover_nonces()
 * puts back the nonces of the audited signatures the database lost.
 */
static const char SEQ_SQL[] = "INSERT OR REPLACE INTO meta (key, value) VALUES ('nonce_seq', ?1)";

int
kp_mark_seq(struct state *st, uint64_t seq)
{
	char v[24];
	sqlite3_stmt *s;
	int r;

	snprintf(v, sizeof(v), "%llu", (unsigned long long)seq);
	if ((r = state_hot(st, &s, SEQ_SQL, "t", v)) != 0)
		return r;
	return sqlite3_step(s) == SQLITE_DONE ? 0 : state_err(st, "recording the audit seq");
}

void
kp_commit_start(struct kp *kp)
{
	if (!kp->audited || kp->audit_down == 2 || kp->committing)
		return;
	audit_commit_start(kp->audit); /* its result comes again from audit_commit_wait() */
	kp->committing = 1;
}

int
kp_commit(struct kp *kp)
{
	double t0 = metrics_now();
	int r = 0;

	if (kp->committing) {
		r = audit_commit_wait(kp->audit);
		kp->committing = 0;
		/* From the write to the sync's end (signing overlapped it). */
		metrics_observe(kp->m, "shadowvault_audit_commit_seconds",
		    audit_last_commit_seconds(kp->audit));
	} else if (kp->audited) {
		if (kp->audit_down == 2)
			r = sv_seterr(SV_EIO, "audit: a record could not be queued");
		else
			r = audit_commit(kp->audit);
		metrics_observe(kp->m, "shadowvault_audit_commit_seconds", metrics_now() - t0);
	}
	if (r != 0) {
		if (!kp->audit_down)
			sv_err("audit log write failed, failing requests closed: %s", sv_errmsg(r));
		kp->audit_down = 1;
		if (kp->in_txn)
			state_rollback(kp->st);
	} else {
		if (kp->audit_down && kp->audited)
			sv_info("audit log writable again: service resumed");
		if (kp->audited)
			kp->audit_down = 0;
		if (kp->in_txn &&
		    ((r = kp_mark_seq(kp->st, kp_nonce_floor(kp))) != 0 ||
			(r = state_commit(kp->st)) != 0))
			sv_err("state commit failed: %s", sv_errmsg(r));
	}
	kp->in_txn = 0;
	kp->audited = 0;
	return r;
}

static json_t *
health(struct kp *kp)
{
	return kp_ok(kp->audit_down ? 503 : 200,
	    json_pack("{s:s, s:s, s:I, s:i, s:I}", "status", kp->audit_down ? "degraded" : "ok",
		"audit", kp->audit_down ? "failing" : "ok", "audit_seq",
		(json_int_t)audit_seq(kp->audit), "hsm_recoveries", (int)hsm_recoveries(kp->h),
		"shadows", (json_int_t)pol_count(kp->pol)));
}

static json_t *
metrics_text(struct kp *kp)
{
	char *text = NULL;
	json_t *r;

	if (metrics_render(kp->m, &text) != 0)
		return kp_problem(500, "internal", "Internal error", "metrics", 0);
	r = kp_ok(200, json_pack("{s:s}", "text", text));
	free(text);
	return r;
}

static json_t *
dispatch(struct kp *kp, const struct ipc_msg *m)
{
	json_t *req = NULL, *resp;

	if (m->type == IPC_METRICS)
		return metrics_text(kp);
	if (m->type == IPC_HEALTH)
		return health(kp);
	if (kp->draining)
		return kp_problem(503, "unavailable", "Shutting down", "the vault is stopping", 5);
	if (m->type == IPC_SIGN)
		return kp_sign(kp, m);
	if (ipc_json(m, &req) != 0)
		return kp_problem(400, "malformed", "Malformed request", sv_errmsg(SV_EPROTO), 0);
	if (m->type == IPC_ACCOUNT)
		resp = kp_account_info(kp, req);
	else if (m->type == IPC_RENEW)
		resp = kp_renew(kp, req);
	else if (m->type == IPC_WHOAMI)
		resp = kp_whoami(kp, req);
	else if (m->type == IPC_ENROLL)
		resp = kp_enroll(kp, req);
	else if (m->type == IPC_BUNDLE)
		resp = kp_bundle(kp, req);
	else /* on_net_read() lets no other type through */
		resp = kp_problem(400, "malformed", "Malformed request", sv_errmsg(SV_EPROTO), 0);
	json_decref(req);
	return resp;
}

/* Replace the answers that depended on an audit record that was not written. */
static void
fail_audited(struct item *it, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!it[i].audited)
			continue;
		json_decref(it[i].resp);
		it[i].resp = kp_problem(503, "audit-unavailable", "Audit log unavailable",
		    "the vault cannot record this decision, so it refuses it; retry later", 5);
	}
}

/*
 * Queue the answer to netproc.  A signature goes as its JWS text, and a
 * bundle's answer as the JSON text kp_bundle() made ("raw"), ready to send
 * (netproc neither parses nor re-serialises them); everything else as JSON.
 */
static int
put_answer(struct evbuffer *out, const struct item *it)
{
	json_int_t status = json_integer_value(json_object_get(it->resp, "status"));
	const json_t *text = json_object_get(it->resp, it->type == IPC_SIGN ? "jws" : "raw");

	if ((it->type == IPC_SIGN || it->type == IPC_BUNDLE) && status == 200 &&
	    json_is_string(text))
		return ipc_put_body(out, it->id, (uint32_t)status, json_string_value(text),
		    json_string_length(text));
	return ipc_put_json(out, IPC_RESP, it->id, it->resp);
}

/* Make the signatures the batch's decisions allowed (kp_sign_batch()). */
static void
sign_batch(struct kp *kp, struct item *it, size_t n)
{
	struct kp_sigwork *w;
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += it[i].pend != NULL;
	if (k == 0)
		return;
	if (k > kp->nwork) {
		free(kp->work);
		kp->nwork = 0;
		if ((kp->work = calloc(k, sizeof(*kp->work))) == NULL) {
			for (i = 0; i < n; i++) { /* each answer becomes a 500: see on_net_read() */
				kp_pending_free(it[i].pend);
				it[i].pend = NULL;
			}
			return;
		}
		kp->nwork = k;
	}
	w = kp->work;
	for (i = 0, k = 0; i < n; i++)
		if (it[i].pend != NULL) {
			w[k].p = it[i].pend;
			w[k++].idx = i;
		}
	kp_sign_batch(kp, w, k);
	for (i = 0; i < k; i++) {
		it[w[i].idx].resp = w[i].resp;
		kp_pending_free(w[i].p);
		it[w[i].idx].pend = NULL;
	}
}

static void
on_net_read(struct bufferevent *bev, void *arg)
{
	struct kp *kp = arg;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	struct item *it = NULL, *nit;
	size_t n = 0, cap = 0, i;
	struct ipc_msg m;
	int r;

	while ((r = ipc_next(in, IPC_FROM_NET, &m)) == 1) {
		/* A frame netproc may send, but only on the TLS channel (kp_tls.c). */
		if (m.type == IPC_TLS_SIGN) {
			ipc_msg_free(&m);
			r = sv_seterr(SV_EPROTO, "ipc: tls-sign message on the request channel");
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nit = realloc(it, cap * sizeof(*it))) == NULL) {
				ipc_msg_free(&m);
				r = SV_ENOMEM;
				break;
			}
			it = nit;
		}
		/* Which answers depend on this batch's audit commit (fail_audited). */
		kp->audited = 0;
		kp->defer = 1;
		it[n].id = m.id;
		it[n].type = m.type;
		it[n].resp = dispatch(kp, &m);
		it[n].pend = kp->pending;
		kp->pending = NULL;
		kp->defer = 0;
		it[n].audited = kp->audited;
		n++;
		ipc_msg_free(&m);
	}
	for (i = 0; i < n; i++)
		kp->audited |= it[i].audited;
	/*
	 * The decisions are recorded: write them and, while the disk syncs,
	 * make the signatures they allowed.  None goes out before the commit.
	 */
	kp_commit_start(kp);
	sign_batch(kp, it, n);
	if (kp_commit(kp) != 0)
		fail_audited(it, n);
	if (kp_nonce_pending(kp) >= KP_NONCE_FLUSH)
		kp_nonce_flush(kp);
	for (i = 0; i < n; i++) {
		if (it[i].resp == NULL)
			it[i].resp =
			    kp_problem(500, "internal", "Internal error", "out of memory", 0);
		if (put_answer(out, &it[i]) != 0)
			sv_err("answer %u: %s", it[i].id, sv_errmsg(SV_ETOOBIG));
		json_decref(it[i].resp);
	}
	free(it);
	if (r == SV_ENOMEM) {
		/* The message read last is lost: start over rather than leave it unanswered. */
		sv_err("out of memory queueing answers: ending the pair");
		exit(VAULTD_EXIT_PEER);
	}
	if (r < 0) {
		/* netproc broke the protocol: it is not trustworthy any more. */
		sv_err("netproc: %s: ending the pair", sv_errmsg(r));
		exit(VAULTD_EXIT_PEER);
	}
}

static void
on_net_event(struct bufferevent *bev, short what, void *arg)
{
	struct kp *kp = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		sv_info("netproc closed the channel");
		event_base_loopexit(kp->base, NULL);
	}
}

static void
checkpoint(struct kp *kp)
{
	int r;

	if (audit_seq(kp->audit) == kp->seq_at_checkpoint)
		return;
	if ((r = kp_audit_checkpoint(kp)) != 0)
		sv_err("audit checkpoint: %s", sv_errmsg(r));
}

/*
 * Every signed nonce into the database, and nonce_seq as far as that got
 * (kp_nonce_floor(): still right if the flush failed).
 */
static int
nonces_settle(struct kp *kp)
{
	int r = kp_nonce_flush_all(kp), m;

	if ((m = state_begin(kp->st)) == 0 &&
	    ((m = kp_mark_seq(kp->st, kp_nonce_floor(kp))) != 0 || (m = state_commit(kp->st)) != 0))
		state_rollback(kp->st);
	return r != 0 ? r : m;
}

/*
 * recover_nonces() reads only the current log, so before the records move
 * to an archive every nonce they hold must be in the database, and
 * nonce_seq past them.  Runs as an admin operation (the database synced).
 */
int
kp_audit_rotate(struct kp *kp, char *archive, size_t n)
{
	int r = kp_commit(kp); /* nothing queued, no commit under way */

	if (r == 0)
		r = nonces_settle(kp);
	if (r == 0 && kp_nonce_floor(kp) < audit_seq(kp->audit))
		r = sv_seterr(
		    SV_ESTATE, "audit: signed nonces are not all in the state database yet");
	if (r == 0)
		r = kp_audit_rotate_log(kp, archive, n);
	return r;
}

/*
 * Signed nonces are kept KP_NONCE_KEEP seconds: CAs expire their nonces in
 * minutes, so an older one would be refused by the CA anyway.
 */
static void
prune_nonces(struct kp *kp)
{
	int n = 0;

	if (!sv_due(&kp->last_prune, metrics_now(), KP_PRUNE_EVERY))
		return;
	if (state_exec(kp->st, "pruning nonces", &n, "DELETE FROM nonces WHERE seen < ?1", "i",
		(int64_t)time(NULL) - KP_NONCE_KEEP) != 0)
		sv_warn("%s", sv_errmsg(SV_EDB));
	else if (n > 0)
		sv_debug("pruned %d old nonces", n);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct kp *kp = arg;
	uint64_t since = audit_seq(kp->audit) - kp->seq_at_checkpoint;

	kp_tls_check(kp);
	if (metrics_now() - kp->last_tls_renew >= 3600) {
		kp->last_tls_renew = metrics_now();
		kp_tlscert_check(kp);
	}
	kp_nonce_flush(kp);
	kp_rates_flush(kp);
	prune_nonces(kp);
	if (since >= (uint64_t)kp->cfg->audit_checkpoint_records ||
	    (since > 0 && metrics_now() - kp->last_checkpoint >= kp->cfg->audit_checkpoint_seconds))
		checkpoint(kp);
}

int
kp_policy_reload(struct kp *kp, const char *by)
{
	struct pol *p = NULL;
	int r;

	if ((r = pol_load_file(kp->cfg->policy_file, &p)) != 0)
		return r;
	pol_free(kp->pol);
	kp->pol = p;
	sv_info(
	    "policies reloaded (%s): %zu shadow%s", by, pol_count(p), pol_count(p) == 1 ? "" : "s");
	return 0;
}

static void
reload(struct kp *kp)
{
	int r;

	if ((r = kp_policy_reload(kp, "SIGHUP")) != 0) {
		sv_err("policy reload failed, keeping the old policies: %s", sv_errmsg(r));
		kp_audit(kp, "policy-reload",
		    json_pack("{s:s, s:s}", "decision", "error", "reason", sv_errmsg(r)));
	} else
		kp_audit(kp, "policy-reload",
		    json_pack(
			"{s:s, s:I}", "decision", "ok", "shadows", (json_int_t)pol_count(kp->pol)));
	kp_commit(kp);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct kp *kp = arg;

	if (sig == SIGHUP) {
		reload(kp);
		return;
	}
	/* Drain: netproc is stopped first; answer what it still sends with 503. */
	kp->draining = 1;
	event_base_loopexit(kp->base, NULL);
}

/* Run as the owner of the state directory when started as root. */
static int
drop_to_state_owner(const struct vconf *cfg)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(cfg->state_dir, &st) != 0)
		return sv_seterr(SV_EIO, "%s: %s", cfg->state_dir, strerror(errno));
	if (st.st_uid == 0)
		return 0;
	if (setgroups(0, NULL) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0)
		return sv_seterr(
		    SV_EIO, "cannot switch to the state directory's owner: %s", strerror(errno));
	return 0;
}

static void
define_metrics(struct metrics *m)
{
	metrics_define(m, "shadowvault_signatures_total", "counter",
	    "JWS signatures made, by account and shadow");
	metrics_define(m, "shadowvault_denials_total", "counter", "Requests refused, by reason");
	metrics_define(
	    m, "shadowvault_enrollments_total", "counter", "Shadow enrolments, by result");
	metrics_define(m, "shadowvault_renewals_total", "counter",
	    "Shadow client certificates renewed by the shadows, by result");
	metrics_define(m, "shadowvault_hsm_sign_seconds", "histogram", "Latency of HSM signing");
	metrics_define(m, "shadowvault_signer_thread_signatures_total", "counter",
	    "JWS signatures made by the key process's second session (batches are split "
	    "only while signatures take 0.4 ms or more on average)");
	metrics_define(m, "shadowvault_audit_commit_seconds", "histogram",
	    "Latency of writing and syncing a batch of audit records");
	metrics_define(m, "shadowvault_bundles_total", "counter",
	    "Sealed key bundle requests, by shadow and result (ok, or the refusal's code)");
}

static uint64_t
meta_seq(struct kp *kp)
{
	sqlite3_stmt *s;
	uint64_t v = 0;

	if (state_prep(kp->st, &s, "SELECT value FROM meta WHERE key = 'nonce_seq'", "") != 0)
		return 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = strtoull((const char *)sqlite3_column_text(s, 0), NULL, 10);
	sqlite3_finalize(s);
	return v;
}

/* Insert the nonce hash of one audited signature line past seq `after`. */
static int
recover_line(struct kp *kp, const char *line, uint64_t after, int *n)
{
	json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
	const char *h = json_string_value(json_object_get(j, "nonce_hash"));
	uint8_t *bin = NULL;
	size_t len;
	int r = 0;

	if (j != NULL && (uint64_t)json_integer_value(json_object_get(j, "seq")) > after && h &&
	    json_string_value(json_object_get(j, "decision")) &&
	    strcmp(json_string_value(json_object_get(j, "decision")), "allow") == 0 &&
	    b64u_decode(h, strlen(h), 32, &bin, &len) == 0 && len == 32) {
		r = state_exec(kp->st, "recovering nonces", NULL,
		    "INSERT OR IGNORE INTO nonces (hash, seen) VALUES (?1, ?2)", "bi", bin,
		    (int64_t)time(NULL));
		(*n)++;
	}
	free(bin);
	json_decref(j);
	return r;
}

/* After a crash the database may miss the last batches' nonces: take them from the audit log. */
static int
recover_nonces(struct kp *kp)
{
	uint64_t have = meta_seq(kp);
	char *line = NULL;
	size_t cap = 0;
	int n = 0, r = 0;
	FILE *f;

	if (audit_seq(kp->audit) <= have)
		return 0;
	if ((f = fopen(kp->cfg->audit_file, "r")) == NULL)
		return sv_seterr(SV_EIO, "%s: %s", kp->cfg->audit_file, strerror(errno));
	while (r == 0 && getline(&line, &cap, f) > 0)
		if (strlen(line) <= AUDIT_RECORD_MAX + 1 && strstr(line, "\"nonce_hash\""))
			r = recover_line(kp, line, have, &n);
	free(line);
	fclose(f);
	if (r == 0 && (r = kp_mark_seq(kp->st, audit_seq(kp->audit))) == 0 && n > 0)
		sv_warn("recovered %d signed nonces from the audit log (after a crash)", n);
	return r;
}

/* CPUs this process may run on (its affinity, as nproc(1) counts them). */
static int
cpus_usable(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return (int)sysconf(_SC_NPROCESSORS_ONLN);
	return CPU_COUNT(&set);
}

static int
open_all(struct kp *kp)
{
	int r;

	if ((r = state_open(kp->cfg->db_path, 0, &kp->st)) != 0 ||
	    (r = state_durable(kp->st, 0)) != 0 || (r = hsm_open(&kp->cfg->hsm, &kp->h)) != 0 ||
	    (r = kp_ca_load(kp)) != 0)
		return r;
	if ((r = kp_audit_key_load(kp)) != 0 || (r = kp_bundle_init(kp)) != 0)
		return r;
	if ((r = audit_open(kp->cfg->audit_file, &kp->audit)) != 0 ||
	    (r = recover_nonces(kp)) != 0 || (r = kp_nonces_init(kp)) != 0 ||
	    (r = pol_load_file(kp->cfg->policy_file, &kp->pol)) != 0 ||
	    (r = kp_rates_load(kp)) != 0)
		return r;
	if ((kp->m = metrics_new()) == NULL)
		return SV_ENOMEM;
	define_metrics(kp->m);
	kp->seq_at_checkpoint = audit_seq(kp->audit);
	kp->last_checkpoint = metrics_now();
	/* A key rotation stopped before its handover: finish it now. */
	if ((r = kp_audit_settle(kp)) != 0)
		sv_err("%s (retried at each checkpoint)", sv_errmsg(r));
	/* The bundle key made above, before the log was open: recorded now. */
	if (kp->bundle_created) {
		kp_audit(kp, "admin",
		    json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "op", "key.create", "name",
			KS_BUNDLE_KEY, "key_type", "ed25519", "version", 1, "by", "vaultd",
			"reason", "state initialised before sealed bundles", "decision", "done"));
		/* Not fatal: the key exists now, and failing here would not record it either. */
		if ((r = kp_commit(kp)) != 0)
			sv_err("audit: the bundle key made at start is not recorded: %s",
			    sv_errmsg(r));
	}
	/* Before the handshake thread loads the TLS key and the renewal check reads the files. */
	kp_tlscert_recover(kp);
	kp->last_prune = -1; /* never: prune at start */
	prune_nonces(kp);    /* at start, then every KP_PRUNE_EVERY seconds */
	kp->accts_stale = 1;
	/* A second session signs beside this thread, if there is a second CPU to run it on. */
	if (cpus_usable() > 1 && (r = kp_signer_start(kp)) != 0)
		sv_warn("no signer thread, signing on one session: %s", sv_errmsg(r));
	return 0;
}

static int
start_loop(struct kp *kp, int fd, int tlsfd)
{
	struct timeval one = { 1, 0 };
	int r;

	if ((kp->base = sv_event_base_new()) == NULL)
		return SV_ENOMEM;
	kp->net = bufferevent_socket_new(kp->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (kp->net == NULL)
		return SV_ENOMEM;
	bufferevent_setcb(kp->net, on_net_read, NULL, on_net_event, kp);
	bufferevent_setwatermark(kp->net, EV_READ, 0, KP_INPUT_MAX);
	/*
	 * libevent reads at most 4 KiB per callback by default: two or three
	 * signing requests.  Reading everything that is queued makes one audit
	 * commit (one fdatasync) cover every request waiting.
	 */
	bufferevent_set_max_single_read(kp->net, KP_IPC_CHUNK);
	bufferevent_set_max_single_write(kp->net, KP_IPC_CHUNK);
	bufferevent_enable(kp->net, EV_READ | EV_WRITE);
	kp->ev_hup = evsignal_new(kp->base, SIGHUP, on_signal, kp);
	kp->ev_term = evsignal_new(kp->base, SIGTERM, on_signal, kp);
	kp->ev_tick = event_new(kp->base, -1, EV_PERSIST, on_tick, kp);
	if (kp->ev_hup == NULL || kp->ev_term == NULL || kp->ev_tick == NULL)
		return SV_ENOMEM;
	event_add(kp->ev_hup, NULL);
	event_add(kp->ev_term, NULL);
	event_add(kp->ev_tick, &one);
	if ((r = kp_tls_setup(kp, tlsfd)) != 0)
		return r;
	return kp_admin_listen(kp);
}

static void
close_all(struct kp *kp)
{
	if (kp->audit != NULL) {
		checkpoint(kp);
		if (kp->st != NULL && state_durable(kp->st, 1) == 0) {
			/* Nonces written, database current: no recovery scan next start. */
			nonces_settle(kp);
			kp_rates_flush(kp);
		}
	}
	kp_nonces_free(kp);
	kp_signer_stop(kp);
	kp_tls_stop(kp);
	kp_accounts_reset(kp);
	hsm_close(kp->h2);
	free(kp->work);
	hmap_free(kp->rates, free);
	hmap_free(kp->serials, free);
	if (kp->ev_hup)
		event_free(kp->ev_hup);
	if (kp->ev_term)
		event_free(kp->ev_term);
	if (kp->ev_tick)
		event_free(kp->ev_tick);
	lguard_free(kp->admin_guard);
	kp->admin_guard = NULL; /* admin connections freed below */
	if (kp->admin)
		evconnlistener_free(kp->admin);
	if (kp->net)
		bufferevent_free(kp->net);
	if (kp->base)
		event_base_free(kp->base);
	unlink(kp->cfg->admin_socket);
	audit_close(kp->audit);
	pol_free(kp->pol);
	metrics_free(kp->m);
	kp_ca_free(kp);
	json_decref(kp->bundle_chain);
	hsm_close(kp->h);
	state_close(kp->st);
}

int
keyproc_main(const struct vconf *cfg, const struct vaultd_fds *fds)
{
	struct rlimit zero = { 0, 0 };
	struct kp kp;
	int r;

	memset(&kp, 0, sizeof(kp));
	kp.cfg = cfg;
	close(fds->listen);
	close(fds->enroll);
	/* It holds the PIN's effects and key handles: no core dumps, no ptrace by peers
	   (not dumpable once it runs as the state owner: a change of uid resets the flag). */
	setrlimit(RLIMIT_CORE, &zero);
	if ((r = drop_to_state_owner(cfg)) != 0 || (r = sandbox_not_dumpable("key process")) != 0 ||
	    (r = open_all(&kp)) != 0 || (r = start_loop(&kp, fds->ipc, fds->tls)) != 0) {
		sv_err("%s", sv_errmsg(r));
		close_all(&kp);
		return sv_exit_code(r);
	}
	kp_push_peers(&kp, NULL);
	kp.last_tls_renew = metrics_now();
	kp_tlscert_check(&kp); /* the certificate netproc just loaded, if it is due */
	sv_info("ready: token \"%s\", %zu shadow policies, audit at seq %llu", cfg->token,
	    pol_count(kp.pol), (unsigned long long)audit_seq(kp.audit));
	event_base_dispatch(kp.base);
	close_all(&kp);
	return 0;
}
