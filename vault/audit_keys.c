/*
 * audit_keys: the audit keys file (see audit_keys.h), parsed and written
 * with OpenSSL's PEM code.  Touches only the file it is given and its
 * temporary sibling (common/fileio).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit_keys.h"
#include "fileio.h"
#include "sv_err.h"

/* One PEM block's key into pub: SV_EINVAL unless an Ed25519 public key. */
static int
pub_decode(
    const char *path, size_t i, const char *name, const uint8_t *der, long dlen, uint8_t pub[32])
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;
	size_t rl = 32;
	int r = 0;

	if (strcmp(name, PEM_STRING_PUBLIC) != 0 || (pk = d2i_PUBKEY(NULL, &p, dlen)) == NULL ||
	    p != der + dlen)
		r = sv_seterr(SV_EINVAL, "%s: key %zu is not a public key in PEM", path, i);
	else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(pk, pub, &rl) != 1 || rl != 32)
		r = sv_seterr(SV_EINVAL, "%s: key %zu is not an Ed25519 public key", path, i);
	EVP_PKEY_free(pk);
	return r;
}

/* The keys in buf (len bytes): PEM blocks, text between them ignored (as OpenSSL does). */
static int
pubs_parse(const char *path, const uint8_t *buf, size_t len, uint8_t (*pubs)[32], size_t *n)
{
	BIO *b = BIO_new_mem_buf(buf, (int)len);
	char *name = NULL, *hdr = NULL;
	unsigned char *der = NULL;
	long dlen;
	int r = 0;

	*n = 0;
	if (b == NULL)
		return sv_seterr(SV_ENOMEM, "out of memory");
	ERR_clear_error();
	while (r == 0 && PEM_read_bio(b, &name, &hdr, &der, &dlen) == 1) {
		if (*n == AUDIT_PUBS_MAX)
			r = sv_seterr(SV_EINVAL, "%s: more than %d keys", path, AUDIT_PUBS_MAX);
		else if ((r = pub_decode(path, *n + 1, name, der, dlen, pubs[*n])) == 0)
			(*n)++;
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_free(der);
		name = hdr = NULL;
		der = NULL;
	}
	/* PEM_read_bio() ends at the end of the text ("no start line") or at a broken block. */
	if (r == 0 && ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
		r = sv_seterr(SV_EINVAL, "%s: key %zu is not a public key in PEM", path, *n + 1);
	else if (r == 0 && *n == 0)
		r = sv_seterr(SV_EINVAL, "%s: no Ed25519 public key in PEM", path);
	ERR_clear_error();
	BIO_free(b);
	return r;
}

int
audit_pubs_load(const char *path, uint8_t (*pubs)[32], size_t *n)
{
	uint8_t *buf = NULL;
	size_t len;
	int r;

	*n = 0;
	if ((r = sv_read_file(path, AUDIT_PUBS_FILE_MAX, &buf, &len)) != 0)
		return r;
	r = pubs_parse(path, buf, len, pubs, n);
	free(buf);
	return r;
}

int
audit_pubs_add(const char *path, const uint8_t pub[32])
{
	uint8_t(*pubs)[32] = calloc(AUDIT_PUBS_MAX, 32), *old = NULL, *all = NULL;
	size_t n = 0, i, olen = 0, plen;
	EVP_PKEY *pk = NULL;
	BIO *b = NULL;
	char *pem;
	int r;

	if (pubs == NULL)
		return sv_seterr(SV_ENOMEM, "out of memory");
	r = sv_read_file(path, AUDIT_PUBS_FILE_MAX, &old, &olen);
	if (r == SV_ENOTFOUND)
		r = 0;
	else if (r == 0)
		r = pubs_parse(path, old, olen, pubs, &n);
	for (i = 0; r == 0 && i < n; i++)
		if (memcmp(pubs[i], pub, 32) == 0)
			goto out; /* there already */
	if (r == 0 && n == AUDIT_PUBS_MAX)
		r = sv_seterr(SV_EINVAL, "%s: already holds %d keys", path, AUDIT_PUBS_MAX);
	if (r != 0)
		goto out;
	if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32)) == NULL ||
	    (b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_PUBKEY(b, pk) != 1) {
		r = sv_seterr_ssl(SV_ECRYPTO, "encoding a public key");
		goto out;
	}
	plen = (size_t)BIO_get_mem_data(b, &pem);
	if ((all = malloc(olen + 1 + plen)) == NULL) {
		r = sv_seterr(SV_ENOMEM, "out of memory");
		goto out;
	}
	if (olen > 0)
		memcpy(all, old, olen);
	if (olen > 0 && old[olen - 1] != '\n')
		all[olen++] = '\n';
	memcpy(all + olen, pem, plen);
	r = sv_write_file_atomic(path, all, olen + plen, 0644);
out:
	BIO_free(b);
	EVP_PKEY_free(pk);
	free(all);
	free(old);
	free(pubs);
	return r;
}
