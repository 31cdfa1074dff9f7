/*
 * shadow renew / status: the lineages recorded in OUT/renewal/NAME.json.
 * A certificate is due when --force is given, when fewer than --days (or the
 * configured renew_days) remain, when the CA's ACME Renewal Information (RFC
 * 9773) window has opened, or otherwise at two thirds of its lifetime.
 * Renewal reuses the recorded settings and orders with "replaces" when the
 * CA offers ARI; a lineage issued with --csr is renewed with that CSR file,
 * read and checked again.  A timer or cron line: `shadow -q renew` twice a
 * day.  status also lists the bundles shadow fetch installed
 * (OUT/bundles/NAME.json).
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme.h"
#include "renewal.h"
#include "fileio.h"
#include "names.h"
#include "shadow.h"
#include "sv_err.h"

struct lineage {
	json_t *rec;
	char name[256];
	X509 *cert;
	time_t not_before, not_after;
};

static void
lineage_free(struct lineage *l)
{
	json_decref(l->rec);
	X509_free(l->cert);
	memset(l, 0, sizeof(*l));
}

/* OUT/live/NAME/cert.pem: *cert (caller frees), or SV_ENOTFOUND naming the file. */
static int
live_cert(const char *out, const char *name, X509 **cert)
{
	char path[PATH_MAX];
	FILE *f;

	*cert = NULL;
	snprintf(path, sizeof(path), "%s/live/%s/cert.pem", out, name);
	if ((f = fopen(path, "r")) == NULL ||
	    (*cert = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		if (f)
			fclose(f);
		return sv_seterr(SV_ENOTFOUND, "%s: no certificate", path);
	}
	fclose(f);
	return 0;
}

static int
lineage_load(const char *out, const char *file, struct lineage *l)
{
	char path[PATH_MAX];
	uint8_t *d = NULL;
	size_t len;
	int r;

	memset(l, 0, sizeof(*l));
	snprintf(path, sizeof(path), "%s/renewal/%s", out, file);
	if ((r = sv_read_file(path, RENEWAL_MAX, &d, &len)) != 0)
		return r;
	l->rec = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL);
	free(d);
	if (!json_is_object(l->rec) || !json_is_string(json_object_get(l->rec, "name")) ||
	    !json_is_array(json_object_get(l->rec, "names")))
		return sv_seterr(SV_EINVAL, "%s: not a renewal record", path);
	snprintf(
	    l->name, sizeof(l->name), "%s", json_string_value(json_object_get(l->rec, "name")));
	if ((r = live_cert(out, l->name, &l->cert)) != 0)
		return r;
	l->not_before = sv_asn1_time(X509_get0_notBefore(l->cert));
	l->not_after = sv_asn1_time(X509_get0_notAfter(l->cert));
	return 0;
}

static const char *
rec_str(const struct lineage *l, const char *k)
{
	return json_string_value(json_object_get(l->rec, k));
}

/* The recorded settings as issue options (strings borrowed from l). */
static void
lineage_opts(const struct lineage *l, const char *out, struct issue_opts *o)
{
	const json_t *v;
	size_t i;

	memset(o, 0, sizeof(*o));
	json_array_foreach(json_object_get(l->rec, "names"), i,
	    v) if (o->nnames < ISSUE_NAMES_MAX && json_is_string(v)) o->names[o->nnames++] =
	    json_string_value(v);
	o->account = rec_str(l, "account");
	o->challenge = rec_str(l, "challenge");
	o->http_port = (int)json_integer_value(json_object_get(l->rec, "http_port"));
	o->http_address = rec_str(l, "http_address");
	o->webroot = rec_str(l, "webroot");
	o->dns_hook = rec_str(l, "dns_hook");
	o->csr = rec_str(l, "csr"); /* a record from before --csr has none */
	o->key_type = o->csr != NULL ? NULL : rec_str(l, "key_type");
	o->deploy_hook = rec_str(l, "deploy_hook");
	o->acme_ca_file = rec_str(l, "acme_ca_file");
	o->preferred_chain = rec_str(l, "preferred_chain");
	o->out_dir = out;
}

/*
 * A lineage issued with --csr: its CSR read again (it may have been replaced
 * since) into ext.  It must verify, name the recorded names and hold the
 * installed certificate's key: a renewal keeps the key; a new key is a new
 * shadow issue --csr.
 */
static int
renew_csr(const struct lineage *l, struct issue_opts *o, struct extcsr *ext)
{
	const char *names[EXTCSR_NAMES_MAX];
	size_t i, n;
	int r;

	if (o->csr[0] != '/')
		return sv_seterr(
		    SV_EINVAL, "renewal/%s.json: csr is not an absolute path", l->name);
	if ((r = extcsr_load(o->csr, ext)) != 0)
		return sv_preferr(r, "its CSR");
	if ((r = extcsr_names(ext, o->names, o->nnames, names, &n)) != 0)
		return sv_preferr(r,
		    "renewal/%s.json records other names than its CSR (to change them, issue "
		    "again with --csr)",
		    l->name);
	if (!extcsr_key_is(ext, X509_get0_pubkey(l->cert)))
		return sv_seterr(SV_ESTATE,
		    "its CSR %s now holds another key than live/%s/cert.pem (to change the key, "
		    "issue again with shadow issue --csr)",
		    o->csr, l->name);
	for (i = 0; i < n; i++)
		o->names[i] = names[i];
	o->nnames = n;
	o->ext = ext;
	return 0;
}

/* ARI: 1 due, 0 not due, -1 no answer (fall back).  *certid for "replaces". */
static int
ari_due(struct shadow *s, const struct issue_opts *o, X509 *cert, char **certid)
{
	struct acme_opts ao = { NULL, o->acme_ca_file, 0, "shadow" };
	struct acme_renewal ren;
	struct vacct va;
	struct acme *a = NULL;
	int due = -1;

	*certid = NULL;
	memset(&ren, 0, sizeof(ren));
	if (va_account(s, o->account, &va) != 0)
		return -1;
	ao.directory_url = va.directory;
	if (acme_open(&ao, &a) == 0 && acme_renewal_info(a, cert, &ren) == 0) {
		due = time(NULL) >= ren.start;
		acme_ari_certid(cert, certid);
	}
	acme_renewal_free(&ren);
	acme_close(a);
	va_account_free(&va);
	return due;
}

static int
is_due(struct shadow *s, const struct lineage *l, const struct issue_opts *o, int force, int days,
    char **certid)
{
	time_t now = time(NULL);
	int d;

	*certid = NULL;
	if (force)
		return 1;
	if (days > 0)
		return l->not_after - now < (time_t)days * 86400;
	if ((d = ari_due(s, o, l->cert, certid)) >= 0)
		return d;
	return now >= l->not_before + (l->not_after - l->not_before) * 2 / 3;
}

/* fn(arg, FILE) for each OUT/sub/FILE ending in .json. */
static int
for_each(const char *out, const char *sub, int (*fn)(void *, const char *), void *arg)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0, r1;

	snprintf(dir, sizeof(dir), "%s/%s", out, sub);
	if ((d = opendir(dir)) == NULL)
		return 0; /* nothing issued (or fetched) yet */
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0 &&
		    (r1 = fn(arg, e->d_name)) != 0 && r == 0)
			r = r1;
	}
	closedir(d);
	return r;
}

struct renew_ctx {
	struct shadow *s;
	const char *out;
	int force, days, renewed, failed;
};

static int
renew_one(void *arg, const char *file)
{
	struct renew_ctx *c = arg;
	struct lineage l;
	struct issue_opts o;
	struct extcsr ext;
	char live[PATH_MAX], *certid = NULL;
	int r;

	memset(&ext, 0, sizeof(ext));
	if ((r = lineage_load(c->out, file, &l)) != 0) {
		fprintf(stderr, "shadow: %s\n", sv_errmsg(r));
		c->failed++;
		return r;
	}
	lineage_opts(&l, c->out, &o);
	/* Checked at every run, due or not: a CSR gone astray is said before it is needed. */
	if (o.csr != NULL && (r = renew_csr(&l, &o, &ext)) != 0) {
		fprintf(stderr, "shadow: %s: cannot be renewed: %s\n", l.name, sv_errmsg(r));
		c->failed++;
	} else if (!is_due(c->s, &l, &o, c->force, c->days, &certid)) {
		shadow_progress(c->s, "%s: not due (expires in %ld days)", l.name,
		    (long)((l.not_after - time(NULL)) / 86400));
	} else {
		shadow_progress(c->s, "%s: renewing", l.name);
		o.replaces = certid;
		r = shadow_issue(c->s, &o, live, sizeof(live));
		if (r == 0 && o.deploy_hook != NULL &&
		    (r = run_deploy_hook(o.deploy_hook, live, &o)) != 0)
			fprintf(stderr, "shadow: %s: renewed, but %s\n", l.name, sv_errmsg(r));
		else if (r != 0)
			fprintf(stderr,
			    "shadow: %s: renewal failed, the installed certificate is kept: "
			    "%s\n",
			    l.name, sv_errmsg(r));
		r == 0 ? c->renewed++ : c->failed++;
	}
	free(certid);
	extcsr_free(&ext);
	lineage_free(&l);
	return r;
}

int
shadow_cmd_renew(struct shadow *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "days", required_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct renew_ctx c;
	int ch, r;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.out = s->def.out_dir[0] ? s->def.out_dir : s->state_dir;
	c.days = s->def.renew_days;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "fd:o:h", opts, NULL)) != -1) {
		if (ch == 'f')
			c.force = 1;
		else if (ch == 'd' && (c.days = atoi(optarg)) > 0)
			continue;
		else if (ch == 'o')
			c.out = optarg;
		else {
			fputs("usage: shadow renew [--force] [--days N] [--out DIR]\n",
			    ch == 'h' ? stdout : stderr);
			return ch == 'h' ? SV_EXIT_OK : SV_EXIT_USAGE;
		}
	}
	identity_check(s, 1);
	r = for_each(c.out, "renewal", renew_one, &c);
	if (!s->quiet && !s->json)
		printf("renew: %d renewed, %d failed\n", c.renewed, c.failed);
	if (s->json)
		printf("{\"renewed\":%d,\"failed\":%d}\n", c.renewed, c.failed);
	return sv_exit_code(r);
}

struct status_ctx {
	const char *out;
	json_t *all;	 /* the lineages */
	json_t *bundles; /* the bundles fetch installed */
};

static int
status_one(void *arg, const char *file)
{
	struct status_ctx *c = arg;
	char live[PATH_MAX];
	struct lineage l;
	struct stat st;
	int r;

	if ((r = lineage_load(c->out, file, &l)) != 0) {
		json_array_append_new(
		    c->all, json_pack("{s:s, s:s}", "file", file, "error", sv_errmsg(r)));
		return 0;
	}
	/* The live symlink is replaced at every installation: its time is the last one. */
	if (snprintf(live, sizeof(live), "%s/live/%s", c->out, l.name) >= (int)sizeof(live) ||
	    lstat(live, &st) != 0)
		st.st_mtime = 0;
	json_array_append_new(c->all,
	    json_pack("{s:s, s:O, s:s?, s:I, s:I, s:I}", "name", l.name, "names",
		json_object_get(l.rec, "names"), "account", rec_str(&l, "account"), "not_after",
		(json_int_t)l.not_after, "days_left",
		(json_int_t)((l.not_after - time(NULL)) / 86400), "issued",
		(json_int_t)st.st_mtime));
	lineage_free(&l);
	return 0;
}

/* OUT/bundles/NAME.json (written by fetch): its sequence and installation time into e. */
static int
bundle_record(const char *out, const char *name, json_t *e)
{
	char path[PATH_MAX];
	json_t *rec, *seq, *at;
	uint8_t *d = NULL;
	size_t len;
	int r;

	if ((r = sv_pathf(path, sizeof(path), "%s/bundles/%s.json", out, name)) != 0 ||
	    (r = sv_read_file(path, BUNDLE_RECORD_MAX, &d, &len)) != 0)
		return r;
	rec = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL);
	free(d);
	seq = json_object_get(rec, "sequence");
	at = json_object_get(rec, "installed_at");
	if (!json_is_object(rec) || !json_is_integer(seq) || json_integer_value(seq) < 1 ||
	    !json_is_integer(at))
		r = sv_seterr(SV_EINVAL, "%s: not a bundle record", path);
	else if (json_object_set(e, "sequence", seq) != 0 ||
	    json_object_set(e, "installed_at", at) != 0)
		r = SV_ENOMEM;
	json_decref(rec);
	return r;
}

/* One bundle: its record, and the expiry of the certificate installed with it. */
static int
bundle_one(void *arg, const char *file)
{
	struct status_ctx *c = arg;
	char name[256];
	X509 *cert = NULL;
	time_t na;
	json_t *e;
	int r;

	snprintf(name, sizeof(name), "%.*s", (int)(strlen(file) - strlen(".json")), file);
	/* fetch writes records only for valid names: anything else there is not one of them. */
	if (sv_name_check(name, "bundle name") != 0) {
		sv_clearerr();
		return 0;
	}
	if ((e = json_pack("{s:s, s:s}", "type", "bundle", "name", name)) == NULL)
		return SV_ENOMEM;
	if ((r = bundle_record(c->out, name, e)) == 0 &&
	    (r = live_cert(c->out, name, &cert)) == 0) {
		na = sv_asn1_time(X509_get0_notAfter(cert));
		json_object_set_new(e, "not_after", json_integer((json_int_t)na));
		json_object_set_new(
		    e, "days_left", json_integer((json_int_t)((na - time(NULL)) / 86400)));
	}
	if (r != 0)
		json_object_set_new(e, "error", json_string(sv_errmsg(r)));
	X509_free(cert);
	json_array_append_new(c->bundles, e);
	return 0;
}

static const char *const STATUS_USAGE =
    "usage: shadow status [--out DIR]\n"
    "The vault identity certificate's expiry, then each installed certificate\n"
    "(OUT/live/NAME; default OUT: the state directory): expiry, days left, last\n"
    "issuance and account; then the bundles shadow fetch installed\n"
    "(OUT/bundles/NAME.json): sequence, expiry, days left, installation.  A warning\n"
    "on stderr when the vault identity is due for renewal or expired.\n";

/* "%Y-%m-%dT%H:%MZ" of e's member k (a time in seconds) into buf. */
static const char *
when(const json_t *e, const char *k, char *buf, size_t n)
{
	time_t t = (time_t)json_integer_value(json_object_get(e, k));
	struct tm tm;

	strftime(buf, n, "%Y-%m-%dT%H:%MZ", gmtime_r(&t, &tm));
	return buf;
}

static void
print_lineages(const json_t *all)
{
	char na[32], last[32];
	const json_t *e;
	size_t i;

	printf("%-30s %-20s %-9s %-20s %s\n", "NAME", "EXPIRES", "DAYS LEFT", "LAST ISSUED",
	    "ACCOUNT");
	json_array_foreach(all, i, e)
	{
		if (json_object_get(e, "error"))
			printf("%-30s error: %s\n", json_string_value(json_object_get(e, "file")),
			    json_string_value(json_object_get(e, "error")));
		else
			printf("%-30s %-20s %-9lld %-20s %s\n",
			    json_string_value(json_object_get(e, "name")),
			    when(e, "not_after", na, sizeof(na)),
			    (long long)json_integer_value(json_object_get(e, "days_left")),
			    when(e, "issued", last, sizeof(last)),
			    json_string_value(json_object_get(e, "account")));
	}
}

/* After the lineages, and only if there are any bundles: the output without them is as before. */
static void
print_bundles(const json_t *bundles)
{
	char na[32], at[32];
	const json_t *e;
	size_t i;

	if (json_array_size(bundles) == 0)
		return;
	printf("%-30s %-8s %-20s %-9s %s\n", "BUNDLE", "SEQUENCE", "EXPIRES", "DAYS LEFT",
	    "INSTALLED");
	json_array_foreach(bundles, i, e)
	{
		if (json_object_get(e, "error"))
			printf("%-30s error: %s\n", json_string_value(json_object_get(e, "name")),
			    json_string_value(json_object_get(e, "error")));
		else
			printf("%-30s %-8lld %-20s %-9lld %s\n",
			    json_string_value(json_object_get(e, "name")),
			    (long long)json_integer_value(json_object_get(e, "sequence")),
			    when(e, "not_after", na, sizeof(na)),
			    (long long)json_integer_value(json_object_get(e, "days_left")),
			    when(e, "installed_at", at, sizeof(at)));
	}
}

int
shadow_cmd_status(struct shadow *s, int argc, char **argv)
{
	struct status_ctx c = { s->def.out_dir[0] ? s->def.out_dir : s->state_dir, json_array(),
		json_array() };
	char until[32], *t;

	if (argc == 3 && strcmp(argv[1], "--out") == 0)
		c.out = argv[2];
	else if (argc != 1) {
		int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;

		fputs(STATUS_USAGE, help ? stdout : stderr);
		json_decref(c.all);
		json_decref(c.bundles);
		return help ? SV_EXIT_OK : SV_EXIT_USAGE;
	}
	for_each(c.out, "renewal", status_one, &c);
	for_each(c.out, "bundles", bundle_one, &c);
	identity_check(s, 0);
	if (s->json) {
		/* One array: the lineages as before, then the bundles ("type": "bundle"). */
		t = json_array_extend(c.all, c.bundles) == 0 ? json_dumps(c.all, JSON_COMPACT)
							     : NULL;
		puts(t ? t : "[]");
		free(t);
	} else {
		time_t id_na = identity_expiry(s);
		struct tm id_tm;

		if (id_na != 0) {
			strftime(until, sizeof(until), "%Y-%m-%dT%H:%MZ", gmtime_r(&id_na, &id_tm));
			printf("vault identity: expires %s (%lld days left)\n", until,
			    (long long)((id_na - time(NULL)) / 86400));
		}
		print_lineages(c.all);
		print_bundles(c.bundles);
	}
	json_decref(c.all);
	json_decref(c.bundles);
	return SV_EXIT_OK;
}
