/*
 * install: certificates laid out the way certbot users expect, switched
 * atomically.
 *
 *   OUT/archive/NAME/NNNN/{cert,chain,fullchain,privkey}.pem   one version
 *   OUT/live/NAME -> ../archive/NAME/NNNN                      the current one
 *   OUT/renewal/NAME.json                                      how to renew it
 *
 * A new version is written into NNNN.tmp (each file written and fsynced,
 * then the directory fsynced), the directory renamed to NNNN, then the live symlink replaced in
 * one rename(2).  Whatever the moment of a crash, live/NAME/ shows one whole
 * version: the old one or the new one.  The last ARCHIVE_KEEP versions stay.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "log.h"
#include "shadow.h"
#include "sv_err.h"

#define ARCHIVE_KEEP 5

/* Lineage name: the first name, a wildcard's "*" written as "_". */
void
lineage_name(const char *first, char *out, size_t n)
{
	snprintf(out, n, "%s", first);
	if (out[0] == '*')
		out[0] = '_';
}

/*
 * Split a PEM chain into leaf and the rest, re-encoded; check the leaf
 * matches key.  acme_pem_chain_check() has already parsed every block as a
 * certificate, so only the leaf is parsed again (its key and expiry are
 * needed); the others are re-encoded as PEM blocks without a second parse.
 */
static int
split_chain(const char *chain_pem, EVP_PKEY *key, char **leaf, char **rest, X509 **leafx)
{
	BIO *in = BIO_new_mem_buf(chain_pem, -1), *l = BIO_new(BIO_s_mem()),
	    *r = BIO_new(BIO_s_mem());
	char *name = NULL, *hdr = NULL, *d;
	unsigned char *data = NULL;
	long len;
	int rc = 0;

	*leaf = *rest = NULL;
	*leafx = NULL;
	if (in == NULL || l == NULL || r == NULL)
		rc = SV_ENOMEM;
	else if ((*leafx = PEM_read_bio_X509(in, NULL, NULL, NULL)) == NULL ||
	    X509_check_private_key(*leafx, key) != 1 || PEM_write_bio_X509(l, *leafx) != 1)
		rc = sv_seterr(
		    SV_EPROTO, "the CA's chain does not start with a certificate for our key");
	while (rc == 0 && PEM_read_bio(in, &name, &hdr, &data, &len) == 1) {
		if (strcmp(name, "CERTIFICATE") != 0 || PEM_write_bio(r, name, hdr, data, len) <= 0)
			rc = sv_seterr(SV_EPROTO, "the CA's chain holds a %s block", name);
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_free(data);
	}
	ERR_clear_error(); /* the end of the chain */
	if (rc == 0) {
		len = BIO_get_mem_data(l, &d);
		*leaf = strndup(d, (size_t)len);
		len = BIO_get_mem_data(r, &d);
		*rest = strndup(d, (size_t)len);
		if (*leaf == NULL || *rest == NULL)
			rc = SV_ENOMEM;
	}
	BIO_free(in);
	BIO_free(l);
	BIO_free(r);
	return rc;
}

/* Highest NNNN under dir (0 if none). */
static int
last_version(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int v = 0, x;
	char *end;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		x = (int)strtol(e->d_name, &end, 10);
		if (end != e->d_name && *end == '\0' && x > v)
			v = x;
	}
	closedir(d);
	return v;
}

static int
write_version(const char *dir, const char *leaf, const char *rest, const char *key_pem)
{
	const struct {
		const char *name;
		const char *a, *b;
		mode_t mode;
	} files[] = {
		{ "privkey.pem", key_pem, "", 0600 },
		{ "cert.pem", leaf, "", 0644 },
		{ "chain.pem", rest, "", 0644 },
		{ "fullchain.pem", leaf, rest, 0644 },
	};
	char path[PATH_MAX], *both;
	size_t i, la, lb;
	int r = 0;

	for (i = 0; i < sizeof(files) / sizeof(files[0]) && r == 0; i++) {
		la = strlen(files[i].a);
		lb = strlen(files[i].b);
		if ((both = malloc(la + lb + 1)) == NULL)
			return SV_ENOMEM;
		memcpy(both, files[i].a, la);
		memcpy(both + la, files[i].b, lb + 1);
		if ((r = sv_pathf(path, sizeof(path), "%s/%s", dir, files[i].name)) == 0) {
			unlink(path); /* left by a crash in an earlier run */
			r = sv_write_file_new(path, both, la + lb, files[i].mode);
		}
		if (files[i].mode == 0600)
			memset(both, 0, la);
		free(both);
	}
	/* Their names, before the directory is renamed into place. */
	return r == 0 ? sv_fsync_parent(path) : r;
}

/* live/NAME -> target, replaced in one rename. */
static int
switch_live(const char *livedir, const char *name, const char *target)
{
	char link[PATH_MAX], tmp[PATH_MAX];
	struct stat st;

	if (sv_pathf(link, sizeof(link), "%s/%s", livedir, name) != 0 ||
	    sv_pathf(tmp, sizeof(tmp), "%s/.%s.new", livedir, name) != 0)
		return SV_EINVAL;
	if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode))
		return sv_seterr(SV_ESTATE, "%s exists and is not a symlink: move it away", link);
	unlink(tmp);
	if (symlink(target, tmp) != 0 || rename(tmp, link) != 0)
		return sv_seterr(SV_EIO, "%s: %s", link, strerror(errno));
	return sv_fsync_parent(link);
}

static void
prune(const char *archive, int current)
{
	char path[PATH_MAX], f[PATH_MAX + 20];
	const char *names[] = { "privkey.pem", "cert.pem", "chain.pem", "fullchain.pem" };
	int v;
	size_t i;

	for (v = current - ARCHIVE_KEEP; v > 0; v--) {
		if (sv_pathf(path, sizeof(path), "%s/%04d", archive, v) != 0 ||
		    access(path, F_OK) != 0)
			break;
		for (i = 0; i < 4; i++)
			if (sv_pathf(f, sizeof(f), "%s/%s", path, names[i]) == 0)
				unlink(f);
		rmdir(path);
	}
}

static int
write_renewal(const struct issue_opts *o, const char *out, const char *name, X509 *leaf, int v)
{
	char path[PATH_MAX];
	json_t *j, *names = json_array();
	struct tm tm;
	char *s;
	size_t i;
	int r;

	for (i = 0; i < o->nnames; i++)
		json_array_append_new(names, json_string(o->names[i]));
	ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm);
	j = json_pack(
	    "{s:i, s:s, s:o, s:s, s:s, s:i, s:s?, s:s?, s:s?, s:s, s:s?, s:s?, s:I, s:I, s:i}",
	    "format", 1, "name", name, "names", names, "account", o->account, "challenge",
	    o->challenge, "http_port", o->http_port, "http_address", o->http_address, "webroot",
	    o->webroot, "dns_hook", o->dns_hook, "key_type", o->key_type, "deploy_hook",
	    o->deploy_hook, "acme_ca_file", o->acme_ca_file, "not_after", (json_int_t)timegm(&tm),
	    "issued", (json_int_t)time(NULL), "version", v);
	if (j == NULL || (s = json_dumps(j, JSON_INDENT(2))) == NULL) {
		json_decref(j);
		return SV_ENOMEM;
	}
	if ((r = sv_pathf(path, sizeof(path), "%s/renewal", out)) == 0 &&
	    (r = sv_mkdir_p(path, 0700)) == 0 &&
	    (r = sv_pathf(path, sizeof(path), "%s/renewal/%s.json", out, name)) == 0)
		r = sv_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	json_decref(j);
	return r;
}

int
install_lineage(const struct issue_opts *o, const char *chain_pem, EVP_PKEY *key,
    const char *key_pem, char *live, size_t n)
{
	char name[256], archive[PATH_MAX], vdir[PATH_MAX], tmp[PATH_MAX + 8], target[PATH_MAX + 32];
	char livedir[PATH_MAX], *leaf = NULL, *rest = NULL;
	X509 *leafx = NULL;
	int v, r;

	lineage_name(o->names[0], name, sizeof(name));
	if ((r = sv_pathf(archive, sizeof(archive), "%s/archive/%s", o->out_dir, name)) != 0 ||
	    (r = sv_pathf(livedir, sizeof(livedir), "%s/live", o->out_dir)) != 0 ||
	    (r = split_chain(chain_pem, key, &leaf, &rest, &leafx)) != 0 ||
	    (r = sv_mkdir_p(archive, 0700)) != 0 || (r = sv_mkdir_p(livedir, 0755)) != 0)
		goto out;
	v = last_version(archive) + 1;
	if ((r = sv_pathf(vdir, sizeof(vdir), "%s/%04d", archive, v)) != 0 ||
	    (r = sv_pathf(tmp, sizeof(tmp), "%s.tmp", vdir)) != 0)
		goto out;
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
		r = sv_seterr(SV_EIO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if ((r = write_version(tmp, leaf, rest, key_pem)) != 0)
		goto out;
	if (rename(tmp, vdir) != 0) {
		r = sv_seterr(SV_EIO, "%s: %s", vdir, strerror(errno));
		goto out;
	}
	if ((r = sv_pathf(target, sizeof(target), "../archive/%s/%04d", name, v)) != 0 ||
	    (r = sv_fsync_parent(vdir)) != 0 || (r = switch_live(livedir, name, target)) != 0 ||
	    (r = write_renewal(o, o->out_dir, name, leafx, v)) != 0)
		goto out;
	prune(archive, v);
	r = sv_pathf(live, n, "%s/%s", livedir, name);
out:
	free(leaf);
	free(rest);
	X509_free(leafx);
	return r;
}

int
run_deploy_hook(const char *hook, const char *live, const struct issue_opts *o)
{
	char e1[PATH_MAX + 32], e2[4096], e3[PATH_MAX + 32], e4[4096];
	const char *env[5];
	size_t i, used = 0;

	snprintf(e1, sizeof(e1), "RENEWED_LINEAGE=%s", live);
	snprintf(e3, sizeof(e3), "SHADOW_LINEAGE=%s", live);
	used = (size_t)snprintf(e2, sizeof(e2), "RENEWED_DOMAINS=");
	for (i = 0; i < o->nnames && used < sizeof(e2); i++)
		used += (size_t)snprintf(
		    e2 + used, sizeof(e2) - used, "%s%s", i ? " " : "", o->names[i]);
	snprintf(e4, sizeof(e4), "SHADOW_DOMAINS=%s", e2 + strlen("RENEWED_DOMAINS="));
	env[0] = e1;
	env[1] = e2;
	env[2] = e3;
	env[3] = e4;
	env[4] = NULL;
	return shadow_run_hook(hook, env);
}
