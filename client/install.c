/*
 * install: certificates laid out the way certbot users expect, switched
 * atomically.
 *
 *   OUT/archive/NAME/NNNN/{cert,chain,fullchain,privkey}.pem   one version
 *   OUT/live/NAME -> ../archive/NAME/NNNN                      the current one
 *   OUT/renewal/NAME.json                                      how to renew it
 *
 * shadow issue and renew install what the CA issued (without privkey.pem
 * for a CSR made elsewhere: its key is not here); shadow fetch installs a
 * vault's bundle the same way, without renewal/NAME.json (o->no_renewal).
 *
 * A new version is written into NNNN.tmp (each file written and fsynced,
 * then the directory fsynced), the directory renamed to NNNN, then the live
 * symlink replaced in one rename(2).  Whatever the moment of a crash,
 * live/NAME/ shows one whole version: the old one or the new one.
 *
 * It happens in two steps so that the first overlaps the talk with the CA:
 * install_stage() (as soon as the key exists) locks the lineage, writes
 * privkey.pem into NNNN.tmp and prunes old versions; install_finish() (with
 * the certificate) writes the rest and switches; install_abandon() undoes a
 * stage that was not finished.  The live version and the ARCHIVE_KEEP
 * versions before it stay.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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
 * holds key's public key (key may be a private key or a CSR's public key).
 * acme_pem_chain_check() has already parsed every block as a certificate,
 * so only the leaf is parsed again (its key is checked); the others are
 * re-encoded as PEM blocks without a second parse.
 */
static int
split_chain(const char *chain_pem, EVP_PKEY *key, char **leaf, char **rest)
{
	BIO *in = BIO_new_mem_buf(chain_pem, -1), *l = BIO_new(BIO_s_mem()),
	    *r = BIO_new(BIO_s_mem());
	char *name = NULL, *hdr = NULL, *d;
	unsigned char *data = NULL;
	X509 *leafx = NULL;
	long len;
	int rc = 0;

	*leaf = *rest = NULL;
	if (in == NULL || l == NULL || r == NULL)
		rc = SV_ENOMEM;
	else if ((leafx = PEM_read_bio_X509(in, NULL, NULL, NULL)) == NULL ||
	    EVP_PKEY_eq(X509_get0_pubkey(leafx), key) != 1 || PEM_write_bio_X509(l, leafx) != 1)
		rc = sv_seterr(SV_EPROTO,
		    "the CA's chain does not start with a certificate for the key asked for");
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
	X509_free(leafx);
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

static const char *const version_files[] = { "privkey.pem", "cert.pem", "chain.pem",
	"fullchain.pem" };

/* dir/name with data a then b, created new (debris of a crash removed first) and fsynced. */
static int
write_part(const char *dir, const char *name, const char *a, const char *b, mode_t mode)
{
	char path[PATH_MAX], *both;
	size_t la = strlen(a), lb = strlen(b);
	int r;

	if ((both = malloc(la + lb + 1)) == NULL)
		return SV_ENOMEM;
	memcpy(both, a, la);
	memcpy(both + la, b, lb + 1);
	if ((r = sv_pathf(path, sizeof(path), "%s/%s", dir, name)) == 0) {
		unlink(path); /* left by a crash in an earlier run */
		r = sv_write_file_new(path, both, la + lb, mode);
	}
	if (mode == 0600)
		memset(both, 0, la + lb);
	free(both);
	return r;
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

/* Remove the versions ARCHIVE_KEEP or more before current. */
static void
prune(const char *archive, int current)
{
	char path[PATH_MAX], f[PATH_MAX + 20];
	int v;
	size_t i;

	for (v = current - ARCHIVE_KEEP; v > 0; v--) {
		if (sv_pathf(path, sizeof(path), "%s/%04d", archive, v) != 0 ||
		    access(path, F_OK) != 0)
			break;
		for (i = 0; i < 4; i++)
			if (sv_pathf(f, sizeof(f), "%s/%s", path, version_files[i]) == 0)
				unlink(f);
		rmdir(path);
	}
}

/*
 * renewal/NAME.json: how to renew the lineage (names, account, challenge,
 * hooks, the key type or the CSR file), nothing about the certificate
 * itself (renew and status read live/NAME/cert.pem, and the live symlink's
 * time is the last issuance).  So a renewal with the same settings leaves
 * the file as it is.
 */
static int
write_renewal(const struct issue_opts *o, const char *out, const char *name)
{
	char path[PATH_MAX];
	json_t *j, *names = json_array();
	uint8_t *old = NULL;
	size_t i, olen = 0;
	char *s;
	int r;

	for (i = 0; i < o->nnames; i++)
		json_array_append_new(names, json_string(o->names[i]));
	/* key_type and csr: one or the other; the absent one is left out (records as before). */
	j = json_pack("{s:i, s:s, s:o, s:s, s:s, s:i, s:s?, s:s?, s:s?, s:s*, s:s*, s:s?, s:s?, "
		      "s:s?}",
	    "format", 1, "name", name, "names", names, "account", o->account, "challenge",
	    o->challenge, "http_port", o->http_port, "http_address", o->http_address, "webroot",
	    o->webroot, "dns_hook", o->dns_hook, "key_type", o->csr ? NULL : o->key_type, "csr",
	    o->csr, "deploy_hook", o->deploy_hook, "acme_ca_file", o->acme_ca_file,
	    "preferred_chain", o->preferred_chain);
	if (j == NULL || (s = json_dumps(j, JSON_INDENT(2))) == NULL) {
		json_decref(j);
		return SV_ENOMEM;
	}
	if ((r = sv_pathf(path, sizeof(path), "%s/renewal", out)) == 0 &&
	    (r = sv_mkdir_p(path, 0700)) == 0 &&
	    (r = sv_pathf(path, sizeof(path), "%s/renewal/%s.json", out, name)) == 0 &&
	    (sv_read_file(path, RENEWAL_MAX, &old, &olen) != 0 || olen != strlen(s) ||
		memcmp(old, s, olen) != 0))
		r = sv_write_file_atomic(path, s, strlen(s), 0600);
	free(old);
	free(s);
	json_decref(j);
	return r;
}

int
install_stage(const struct issue_opts *o, const char *key_pem, struct install_stage *st)
{
	int r;

	memset(st, 0, sizeof(*st));
	st->lockfd = -1;
	lineage_name(o->names[0], st->name, sizeof(st->name));
	if ((r = sv_pathf(
		 st->archive, sizeof(st->archive), "%s/archive/%s", o->out_dir, st->name)) != 0 ||
	    (r = sv_pathf(st->livedir, sizeof(st->livedir), "%s/live", o->out_dir)) != 0 ||
	    (r = sv_mkdir_p(st->archive, 0700)) != 0)
		return r;
	/* One run at a time per lineage (cron renew next to a manual issue, say). */
	if ((st->lockfd = open(st->archive, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sv_seterr(SV_EIO, "%s: %s", st->archive, strerror(errno));
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0) {
		r = errno == EWOULDBLOCK
		    ? sv_seterr(SV_ESTATE, "another shadow run is installing %s (%s is locked)",
			  st->name, st->archive)
		    : sv_seterr(SV_EIO, "%s: lock: %s", st->archive, strerror(errno));
		goto fail;
	}
	st->v = last_version(st->archive) + 1;
	if ((r = sv_pathf(st->tmp, sizeof(st->tmp), "%s/%04d.tmp", st->archive, st->v)) != 0)
		goto fail;
	if (mkdir(st->tmp, 0700) != 0 && errno != EEXIST) {
		r = sv_seterr(SV_EIO, "%s: %s", st->tmp, strerror(errno));
		st->tmp[0] = '\0';
		goto fail;
	}
	/* No key here (shadow issue --csr): the version has no privkey.pem. */
	if (key_pem != NULL && (r = write_part(st->tmp, "privkey.pem", key_pem, "", 0600)) != 0)
		goto fail;
	prune(st->archive, st->v - 1);
	return 0;
fail:
	install_abandon(st);
	return r;
}

void
install_abandon(struct install_stage *st)
{
	char f[PATH_MAX + 20];
	size_t i;

	if (st->tmp[0] != '\0') {
		for (i = 0; i < 4; i++)
			if (sv_pathf(f, sizeof(f), "%s/%s", st->tmp, version_files[i]) == 0)
				unlink(f);
		rmdir(st->tmp);
		st->tmp[0] = '\0';
		rmdir(st->archive); /* if empty: a failed first issuance leaves nothing */
	}
	if (st->lockfd >= 0)
		close(st->lockfd); /* and the lock with it */
	st->lockfd = -1;
}

int
install_finish(struct install_stage *st, const struct issue_opts *o, const char *chain_pem,
    EVP_PKEY *key, char *live, size_t n)
{
	char vdir[PATH_MAX], target[PATH_MAX + 32], *leaf = NULL, *rest = NULL;
	int r;

	if ((r = split_chain(chain_pem, key, &leaf, &rest)) != 0 ||
	    (r = write_part(st->tmp, "cert.pem", leaf, "", 0644)) != 0 ||
	    (r = write_part(st->tmp, "chain.pem", rest, "", 0644)) != 0 ||
	    (r = write_part(st->tmp, "fullchain.pem", leaf, rest, 0644)) != 0 ||
	    /* Their names, before the directory is renamed into place. */
	    (r = sv_pathf(vdir, sizeof(vdir), "%s/cert.pem", st->tmp)) != 0 ||
	    (r = sv_fsync_parent(vdir)) != 0 ||
	    (r = sv_pathf(vdir, sizeof(vdir), "%s/%04d", st->archive, st->v)) != 0)
		goto out;
	if (rename(st->tmp, vdir) != 0) {
		r = sv_seterr(SV_EIO, "%s: %s", vdir, strerror(errno));
		goto out;
	}
	st->tmp[0] = '\0';
	if ((r = sv_pathf(target, sizeof(target), "../archive/%s/%04d", st->name, st->v)) != 0 ||
	    (r = sv_fsync_parent(vdir)) != 0 || (r = sv_mkdir_p(st->livedir, 0755)) != 0 ||
	    (r = switch_live(st->livedir, st->name, target)) != 0 ||
	    (!o->no_renewal && (r = write_renewal(o, o->out_dir, st->name)) != 0))
		goto out;
	r = sv_pathf(live, n, "%s/%s", st->livedir, st->name);
out:
	free(leaf);
	free(rest);
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
