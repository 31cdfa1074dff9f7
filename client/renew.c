/*
 * shadow renew / status: the lineages recorded in OUT/renewal/NAME.json.
 * A certificate is due when --force is given, when fewer than --days (or the
 * configured renew_days) remain, when the CA's ACME Renewal Information (RFC
 * 9773) window has opened, or otherwise at two thirds of its lifetime.
 * Renewal reuses the recorded settings and orders with "replaces" when the
 * CA offers ARI.  A timer or cron line: `shadow -q renew` twice a day.
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

static int
lineage_load(const char *out, const char *file, struct lineage *l)
{
	char path[PATH_MAX];
	uint8_t *d = NULL;
	size_t len;
	FILE *f;
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
	snprintf(path, sizeof(path), "%s/live/%s/cert.pem", out, l->name);
	if ((f = fopen(path, "r")) == NULL ||
	    (l->cert = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		if (f)
			fclose(f);
		return sv_seterr(SV_ENOTFOUND, "%s: no certificate", path);
	}
	fclose(f);
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
	o->key_type = rec_str(l, "key_type");
	o->deploy_hook = rec_str(l, "deploy_hook");
	o->acme_ca_file = rec_str(l, "acme_ca_file");
	o->preferred_chain = rec_str(l, "preferred_chain");
	o->out_dir = out;
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

static int
for_each(const char *out, int (*fn)(void *, const char *), void *arg)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0, r1;

	snprintf(dir, sizeof(dir), "%s/renewal", out);
	if ((d = opendir(dir)) == NULL)
		return 0; /* nothing issued yet */
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
	char live[PATH_MAX], *certid = NULL;
	int r;

	if ((r = lineage_load(c->out, file, &l)) != 0) {
		fprintf(stderr, "shadow: %s\n", sv_errmsg(r));
		c->failed++;
		return r;
	}
	lineage_opts(&l, c->out, &o);
	if (!is_due(c->s, &l, &o, c->force, c->days, &certid)) {
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
	r = for_each(c.out, renew_one, &c);
	if (!s->quiet && !s->json)
		printf("renew: %d renewed, %d failed\n", c.renewed, c.failed);
	if (s->json)
		printf("{\"renewed\":%d,\"failed\":%d}\n", c.renewed, c.failed);
	return sv_exit_code(r);
}

struct status_ctx {
	const char *out;
	json_t *all;
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

static const char *const STATUS_USAGE =
    "usage: shadow status [--out DIR]\n"
    "The vault identity certificate's expiry, then each installed certificate\n"
    "(OUT/live/NAME; default OUT: the state directory): expiry, days left, last\n"
    "issuance and account.  A warning on stderr when the vault identity is due for\n"
    "renewal or expired.\n";

int
shadow_cmd_status(struct shadow *s, int argc, char **argv)
{
	struct status_ctx c = { s->def.out_dir[0] ? s->def.out_dir : s->state_dir, json_array() };
	char when[32], last[32];
	json_t *e;
	size_t i;

	if (argc == 3 && strcmp(argv[1], "--out") == 0)
		c.out = argv[2];
	else if (argc != 1) {
		int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;

		fputs(STATUS_USAGE, help ? stdout : stderr);
		json_decref(c.all);
		return help ? SV_EXIT_OK : SV_EXIT_USAGE;
	}
	for_each(c.out, status_one, &c);
	identity_check(s, 0);
	if (s->json) {
		char *t = json_dumps(c.all, JSON_COMPACT);

		puts(t ? t : "[]");
		free(t);
	} else {
		time_t id_na = identity_expiry(s);
		struct tm id_tm;

		if (id_na != 0) {
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", gmtime_r(&id_na, &id_tm));
			printf("vault identity: expires %s (%lld days left)\n", when,
			    (long long)((id_na - time(NULL)) / 86400));
		}
		printf("%-30s %-20s %-9s %-20s %s\n", "NAME", "EXPIRES", "DAYS LEFT", "LAST ISSUED",
		    "ACCOUNT");
		json_array_foreach(c.all, i, e)
		{
			time_t na = (time_t)json_integer_value(json_object_get(e, "not_after"));
			time_t is = (time_t)json_integer_value(json_object_get(e, "issued"));
			struct tm tm;

			strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", gmtime_r(&na, &tm));
			strftime(last, sizeof(last), "%Y-%m-%dT%H:%MZ", gmtime_r(&is, &tm));
			if (json_object_get(e, "error"))
				printf("%-30s error: %s\n",
				    json_string_value(json_object_get(e, "file")),
				    json_string_value(json_object_get(e, "error")));
			else
				printf("%-30s %-20s %-9lld %-20s %s\n",
				    json_string_value(json_object_get(e, "name")), when,
				    (long long)json_integer_value(json_object_get(e, "days_left")),
				    last, json_string_value(json_object_get(e, "account")));
		}
	}
	json_decref(c.all);
	return SV_EXIT_OK;
}
