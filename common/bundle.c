/*
 * Sealed key bundles (see bundle.h): pack, sign and seal for vaultd's key
 * process; open, verify and check for shadow.  Pure code: no I/O, no globals.
 * The plaintext (which holds the private key) only ever lives in sodium_malloc
 * memory and is wiped and freed on every path; the header and chain are not
 * secret and use ordinary memory.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "bundle.h"
#include "log.h"
#include "names.h"
#include "sv_err.h"

_Static_assert(BUNDLE_SEAL_OVERHEAD == crypto_box_SEALBYTES, "seal overhead");
_Static_assert(BUNDLE_SIG_LEN == crypto_sign_BYTES, "signature length");
_Static_assert(BUNDLE_PK_LEN == crypto_sign_PUBLICKEYBYTES, "sign key length");
_Static_assert(BUNDLE_PK_LEN == crypto_box_PUBLICKEYBYTES, "box key length");

#define BUNDLE_MAGIC_LEN 4
#define BUNDLE_HLEN_MIN	 2 /* "{}" */
/* Smallest plaintext: magic, hlen, the smallest header, klen, one key byte, signature. */
#define BUNDLE_PLAIN_MIN (BUNDLE_MAGIC_LEN + 4 + BUNDLE_HLEN_MIN + 4 + 1 + BUNDLE_SIG_LEN)

/* Header members, the only ones allowed, all required. */
static const struct {
	const char *name;
	json_type type;
} hdr_members[] = {
	{ "v", JSON_INTEGER },
	{ "id", JSON_STRING },
	{ "recipient", JSON_STRING },
	{ "name", JSON_STRING },
	{ "sequence", JSON_INTEGER },
	{ "issued_at", JSON_INTEGER },
	{ "expires_at", JSON_INTEGER },
	{ "chain", JSON_STRING },
};
#define HDR_NMEMBERS (sizeof(hdr_members) / sizeof(hdr_members[0]))

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
bundle_new_id(char id[33])
{
	uint8_t r[16];

	if (sodium_init() < 0)
		abort(); /* randombytes without a working libsodium: no safe fallback */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(id, 33, r, sizeof(r)); /* lowercase */
	sodium_memzero(r, sizeof(r));
}

static int
id_check(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return -1;
	return i == 32 ? 0 : -1;
}

/* Validate meta for sealing (the same rules bundle_open applies, except time). */
static int
meta_check(const struct bundle_meta *m)
{
	if (memchr(m->id, '\0', sizeof(m->id)) == NULL || id_check(m->id) != 0)
		return sv_seterr(SV_EINVAL, "bundle: id is not 32 lowercase hex digits");
	if (memchr(m->recipient, '\0', sizeof(m->recipient)) == NULL ||
	    sv_name_check(m->recipient, "bundle recipient") != 0)
		return SV_EINVAL;
	if (memchr(m->name, '\0', sizeof(m->name)) == NULL ||
	    sv_name_check(m->name, "bundle certificate name") != 0)
		return SV_EINVAL;
	if (m->sequence < 1)
		return sv_seterr(
		    SV_EINVAL, "bundle: sequence %lld is below 1", (long long)m->sequence);
	if (m->issued_at < 0 || m->issued_at >= m->expires_at)
		return sv_seterr(SV_EINVAL,
		    "bundle: issued_at %lld must be >= 0 and before expires_at %lld",
		    (long long)m->issued_at, (long long)m->expires_at);
	if (m->chain == NULL || m->chain[0] == '\0')
		return sv_seterr(SV_EINVAL, "bundle: no certificate chain");
	return 0;
}

/* The header JSON of m, compact, malloc'd in *out (caller frees). */
static int
header_dump(const struct bundle_meta *m, char **out, size_t *len)
{
	json_t *h;

	*out = NULL;
	*len = 0;
	h = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "v", 1, "id", m->id, "recipient",
	    m->recipient, "name", m->name, "sequence", (json_int_t)m->sequence, "issued_at",
	    (json_int_t)m->issued_at, "expires_at", (json_int_t)m->expires_at, "chain", m->chain);
	if (h == NULL)
		return sv_seterr(SV_EINVAL, "bundle: cannot build the header (chain not UTF-8?)");
	*out = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	if (*out == NULL)
		return sv_seterr(SV_ENOMEM, "bundle: cannot encode the header");
	*len = strlen(*out);
	if (*len > BUNDLE_HEADER_MAX) {
		free(*out);
		*out = NULL;
		return sv_seterr(SV_ETOOBIG, "bundle: header is %zu bytes, over the cap of %d",
		    *len, BUNDLE_HEADER_MAX);
	}
	return 0;
}

/* Lay out the magic, the header and the key at p; returns the length (the signature goes there). */
static size_t
pack(uint8_t *p, const char *hdr, size_t hlen, const uint8_t *key, size_t klen)
{
	size_t off = BUNDLE_MAGIC_LEN;

	memcpy(p, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
	put_u32(p + off, (uint32_t)hlen);
	memcpy(p + off + 4, hdr, hlen);
	off += 4 + hlen;
	put_u32(p + off, (uint32_t)klen);
	memcpy(p + off + 4, key, klen);
	return off + 4 + klen;
}

int
bundle_seal(const struct bundle_meta *m, const uint8_t *key, size_t klen, bundle_sign_fn sign,
    void *ctx, const uint8_t box_pk[BUNDLE_PK_LEN], uint8_t **sealed, size_t *slen)
{
	uint8_t *p = NULL, *s = NULL;
	char *hdr = NULL;
	size_t hlen, plen = 0, off;
	int rc;

	*sealed = NULL;
	*slen = 0;
	if (m == NULL || key == NULL || sign == NULL || box_pk == NULL)
		return sv_seterr(SV_EINVAL, "bundle_seal: missing argument");
	if (sodium_init() < 0)
		return sv_seterr(SV_ECRYPTO, "bundle: libsodium cannot be initialised");
	if (klen == 0 || klen > BUNDLE_KEY_MAX)
		return sv_seterr(klen == 0 ? SV_EINVAL : SV_ETOOBIG,
		    "bundle: key is %zu bytes (1 to %d allowed)", klen, BUNDLE_KEY_MAX);
	if ((rc = meta_check(m)) != 0 || (rc = header_dump(m, &hdr, &hlen)) != 0)
		return rc;
	plen = BUNDLE_MAGIC_LEN + 4 + hlen + 4 + klen + BUNDLE_SIG_LEN;
	if ((p = sodium_malloc(plen)) == NULL ||
	    (s = malloc(plen + crypto_box_SEALBYTES)) == NULL) {
		rc = sv_seterr(SV_ENOMEM, "bundle: out of memory for %zu bytes", plen);
		goto out;
	}
	off = pack(p, hdr, hlen, key, klen);
	if ((rc = sign(ctx, p, off, p + off)) != 0) {
		rc = sv_preferr(rc < 0 ? rc : SV_EINTERNAL, "bundle: signing");
		goto out;
	}
	if (crypto_box_seal(s, p, plen, box_pk) != 0) {
		rc = sv_seterr(SV_ECRYPTO, "bundle: crypto_box_seal failed");
		goto out;
	}
	*sealed = s;
	*slen = plen + crypto_box_SEALBYTES;
	s = NULL;
	rc = 0;
out:
	if (p != NULL) {
		sodium_memzero(p, plen);
		sodium_free(p);
	}
	free(s);
	free(hdr);
	return rc;
}

/* Every member known, present and of its type; nothing else. */
static int
header_shape(json_t *h)
{
	const char *k;
	json_t *v;
	size_t i;
	char esc[80];

	json_object_foreach(h, k, v)
	{
		for (i = 0; i < HDR_NMEMBERS; i++)
			if (strcmp(k, hdr_members[i].name) == 0)
				break;
		if (i == HDR_NMEMBERS)
			return sv_seterr(SV_EPROTO, "bundle: header has an unknown member \"%s\"",
			    sv_escape(k, strlen(k), esc, sizeof(esc)));
	}
	for (i = 0; i < HDR_NMEMBERS; i++) {
		if ((v = json_object_get(h, hdr_members[i].name)) == NULL)
			return sv_seterr(
			    SV_EPROTO, "bundle: header lacks \"%s\"", hdr_members[i].name);
		if (json_typeof(v) != hdr_members[i].type)
			return sv_seterr(SV_EPROTO, "bundle: header member \"%s\" is not %s",
			    hdr_members[i].name,
			    hdr_members[i].type == JSON_INTEGER ? "an integer" : "a string");
	}
	return 0;
}

static int
copy_name(char *dst, size_t n, json_t *v, const char *what)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	/* No embedded NUL (jansson refuses \u0000 without JSON_ALLOW_NUL; be sure). */
	if (strlen(s) != len)
		return sv_seterr(SV_EPROTO, "bundle: header %s holds a NUL", what);
	if (sv_name_check(s, what) != 0 || len >= n) {
		sv_recode(SV_EPROTO); /* keep sv_name_check's detail */
		return sv_preferr(SV_EPROTO, "bundle: header");
	}
	memcpy(dst, s, len + 1);
	return 0;
}

/* The values of a well-shaped header h into m (chain malloc'd). */
static int
header_values(json_t *h, struct bundle_meta *m)
{
	const char *id = json_string_value(json_object_get(h, "id"));
	const char *chain = json_string_value(json_object_get(h, "chain"));
	json_int_t v = json_integer_value(json_object_get(h, "v"));
	int rc;

	if (v != 1)
		return sv_seterr(SV_EPROTO, "bundle: header version %lld is not 1", (long long)v);
	if (strlen(id) != json_string_length(json_object_get(h, "id")) || id_check(id) != 0)
		return sv_seterr(SV_EPROTO, "bundle: header id is not 32 lowercase hex digits");
	memcpy(m->id, id, 33);
	if ((rc = copy_name(m->recipient, sizeof(m->recipient), json_object_get(h, "recipient"),
		 "recipient")) != 0 ||
	    (rc = copy_name(
		 m->name, sizeof(m->name), json_object_get(h, "name"), "certificate name")) != 0)
		return rc;
	m->sequence = json_integer_value(json_object_get(h, "sequence"));
	m->issued_at = json_integer_value(json_object_get(h, "issued_at"));
	m->expires_at = json_integer_value(json_object_get(h, "expires_at"));
	if (m->sequence < 1)
		return sv_seterr(
		    SV_EPROTO, "bundle: header sequence %lld is below 1", (long long)m->sequence);
	if (m->issued_at < 0 || m->issued_at >= m->expires_at)
		return sv_seterr(SV_EPROTO,
		    "bundle: header issued_at %lld is negative or not before expires_at",
		    (long long)m->issued_at);
	if (chain[0] == '\0' || strlen(chain) != json_string_length(json_object_get(h, "chain")))
		return sv_seterr(SV_EPROTO, "bundle: header chain is empty or holds a NUL");
	if ((m->chain = strdup(chain)) == NULL)
		return sv_seterr(SV_ENOMEM, "bundle: out of memory for the chain");
	return 0;
}

/* Header JSON into m (chain malloc'd); syntax and values, not the expectations. */
static int
header_parse(const uint8_t *hdr, size_t hlen, struct bundle_meta *m)
{
	json_error_t je;
	json_t *h;
	int rc;

	if ((h = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return sv_seterr(
		    SV_EPROTO, "bundle: header is not JSON: %s (byte %d)", je.text, je.position);
	if (!json_is_object(h))
		rc = sv_seterr(SV_EPROTO, "bundle: header is not a JSON object");
	else if ((rc = header_shape(h)) == 0)
		rc = header_values(h, m);
	json_decref(h);
	return rc;
}

/* The header against what the opener expects, at time now. */
static int
header_expect(const struct bundle_meta *m, const char *recipient, const char *name, int64_t now)
{
	if (strcmp(m->recipient, recipient) != 0)
		return sv_seterr(SV_ESTATE, "bundle: sealed for shadow \"%s\", not \"%s\"",
		    m->recipient, recipient);
	if (strcmp(m->name, name) != 0)
		return sv_seterr(
		    SV_ESTATE, "bundle: holds certificate \"%s\", not \"%s\"", m->name, name);
	/* Both are >= 0 here, so the differences cannot overflow. */
	if (m->issued_at > now && m->issued_at - now > BUNDLE_SKEW)
		return sv_seterr(SV_ESTATE,
		    "bundle: issued %lld seconds in the future (more than %d: check the clocks)",
		    (long long)(m->issued_at - now), BUNDLE_SKEW);
	if (now >= m->expires_at)
		return sv_seterr(SV_ESTATE, "bundle: expired %lld seconds ago",
		    (long long)(now - m->expires_at));
	return 0;
}

/*
 * Split the verified plaintext p (plen bytes, signature excluded) into the
 * header and the key: offsets and lengths into hoff, hlen, koff, klen.  Every length against its
 * cap and against what is left.
 */
static int
layout_split(const uint8_t *p, size_t plen, size_t *hoff, size_t *hlen, size_t *koff, size_t *klen)
{
	size_t off = BUNDLE_MAGIC_LEN;
	uint32_t n;

	if (memcmp(p, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) != 0)
		return sv_seterr(SV_EPROTO, "bundle: not a version 1 bundle (bad magic)");
	n = get_u32(p + off);
	off += 4;
	if (n > BUNDLE_HEADER_MAX)
		return sv_seterr(SV_ETOOBIG, "bundle: header length %u is over the cap of %d", n,
		    BUNDLE_HEADER_MAX);
	if (n < BUNDLE_HLEN_MIN || n > plen - off || plen - off - n < 4)
		return sv_seterr(SV_EPROTO,
		    "bundle: header length %u does not fit the %zu bytes left", n, plen - off);
	*hoff = off;
	*hlen = n;
	off += n;
	n = get_u32(p + off);
	off += 4;
	if (n > BUNDLE_KEY_MAX)
		return sv_seterr(
		    SV_ETOOBIG, "bundle: key length %u is over the cap of %d", n, BUNDLE_KEY_MAX);
	if (n < 1 || n > plen - off)
		return sv_seterr(SV_EPROTO, "bundle: key length %u does not fit the %zu bytes left",
		    n, plen - off);
	if (plen - off != n)
		return sv_seterr(
		    SV_EPROTO, "bundle: %zu trailing bytes after the key", plen - off - n);
	*koff = off;
	*klen = n;
	return 0;
}

/*
 * The plaintext of a sealed bundle in guarded memory (*p, plen bytes; the
 * caller wipes and sodium_free()s it), once its signature checks against
 * sign_pk.  The sizes are checked before anything is allocated.
 */
static int
unseal(const uint8_t *sealed, size_t slen, const uint8_t *box_pk, const uint8_t *box_sk,
    const uint8_t *sign_pk, uint8_t **p, size_t *plen)
{
	size_t body;

	*p = NULL;
	*plen = 0;
	if (slen > BUNDLE_SEALED_MAX)
		return sv_seterr(SV_ETOOBIG,
		    "bundle: sealed bundle is %zu bytes, over the cap of %d", slen,
		    BUNDLE_SEALED_MAX);
	if (slen < crypto_box_SEALBYTES + BUNDLE_PLAIN_MIN)
		return sv_seterr(SV_EPROTO,
		    "bundle: sealed bundle is %zu bytes, shorter than the smallest bundle (%d)",
		    slen, crypto_box_SEALBYTES + BUNDLE_PLAIN_MIN);
	if ((*p = sodium_malloc(slen - crypto_box_SEALBYTES)) == NULL)
		return sv_seterr(SV_ENOMEM, "bundle: out of memory for %zu bytes", slen);
	*plen = slen - crypto_box_SEALBYTES;
	if (crypto_box_seal_open(*p, sealed, slen, box_pk, box_sk) != 0)
		return sv_seterr(SV_ECRYPTO,
		    "bundle: cannot be opened with this shadow's box key "
		    "(sealed to another key, or altered on the way)");
	body = *plen - BUNDLE_SIG_LEN;
	if (crypto_sign_verify_detached(*p + body, *p, body, sign_pk) != 0)
		return sv_seterr(
		    SV_EDENIED, "bundle: signature is not by the pinned vault bundle key");
	return 0;
}

int
bundle_open(const uint8_t *sealed, size_t slen, const uint8_t box_pk[BUNDLE_PK_LEN],
    const uint8_t *box_sk, const uint8_t sign_pk[BUNDLE_PK_LEN], const char *expect_recipient,
    const char *expect_name, int64_t now, struct bundle_meta *out, uint8_t **key, size_t *klen)
{
	struct bundle_meta m;
	uint8_t *p = NULL, *k = NULL;
	size_t plen = 0, hoff = 0, hlen = 0, koff = 0, kl = 0;
	int rc;

	memset(&m, 0, sizeof(m));
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (key != NULL)
		*key = NULL;
	if (klen != NULL)
		*klen = 0;
	if (sealed == NULL || box_pk == NULL || box_sk == NULL || sign_pk == NULL ||
	    expect_recipient == NULL || expect_name == NULL || out == NULL || key == NULL ||
	    klen == NULL || now < 0)
		return sv_seterr(SV_EINVAL, "bundle_open: missing or bad argument");
	if (sodium_init() < 0)
		return sv_seterr(SV_ECRYPTO, "bundle: libsodium cannot be initialised");
	if ((rc = unseal(sealed, slen, box_pk, box_sk, sign_pk, &p, &plen)) != 0 ||
	    (rc = layout_split(p, plen - BUNDLE_SIG_LEN, &hoff, &hlen, &koff, &kl)) != 0 ||
	    (rc = header_parse(p + hoff, hlen, &m)) != 0 ||
	    (rc = header_expect(&m, expect_recipient, expect_name, now)) != 0)
		goto out;
	if ((k = sodium_malloc(kl)) == NULL) {
		rc = sv_seterr(SV_ENOMEM, "bundle: out of memory for the key");
		goto out;
	}
	memcpy(k, p + koff, kl);
	*out = m;
	memset(&m, 0, sizeof(m));
	*key = k;
	*klen = kl;
out:
	bundle_meta_free(&m);
	if (p != NULL) {
		sodium_memzero(p, plen);
		sodium_free(p);
	}
	return rc;
}

void
bundle_meta_free(struct bundle_meta *m)
{
	if (m == NULL)
		return;
	free(m->chain);
	m->chain = NULL;
}

/* ---- bundle key rotation: links ---- */

static void
link_msg(const uint8_t from[BUNDLE_PK_LEN], const uint8_t to[BUNDLE_PK_LEN],
    uint8_t msg[sizeof(BUNDLE_LINK_CONTEXT) - 1 + 2 * BUNDLE_PK_LEN])
{
	size_t c = sizeof(BUNDLE_LINK_CONTEXT) - 1;

	memcpy(msg, BUNDLE_LINK_CONTEXT, c);
	memcpy(msg + c, from, BUNDLE_PK_LEN);
	memcpy(msg + c + BUNDLE_PK_LEN, to, BUNDLE_PK_LEN);
}

static char *
b64u(const uint8_t *b, size_t n)
{
	size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(len);

	if (s != NULL)
		sodium_bin2base64(s, len, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

int
bundle_link_make(const uint8_t from[BUNDLE_PK_LEN], const uint8_t to[BUNDLE_PK_LEN],
    bundle_sign_fn sign, void *ctx, json_t **out)
{
	uint8_t msg[sizeof(BUNDLE_LINK_CONTEXT) - 1 + 2 * BUNDLE_PK_LEN], sig[BUNDLE_SIG_LEN];
	char *f = NULL, *t = NULL, *g = NULL;
	int r;

	*out = NULL;
	link_msg(from, to, msg);
	if ((r = sign(ctx, msg, sizeof(msg), sig)) != 0)
		return r;
	if ((f = b64u(from, BUNDLE_PK_LEN)) == NULL || (t = b64u(to, BUNDLE_PK_LEN)) == NULL ||
	    (g = b64u(sig, BUNDLE_SIG_LEN)) == NULL ||
	    (*out = json_pack("{s:s, s:s, s:s}", "from", f, "to", t, "sig", g)) == NULL)
		r = sv_seterr(SV_ENOMEM, "bundle key link: out of memory");
	free(f);
	free(t);
	free(g);
	return r;
}

/* A member of a link: base64url (no padding) of exactly n bytes. */
static int
link_field(const json_t *l, const char *k, uint8_t *out, size_t n)
{
	const json_t *v = json_object_get(l, k);
	size_t len;

	if (!json_is_string(v) ||
	    json_string_length(v) !=
		sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1 ||
	    sodium_base642bin(out, n, json_string_value(v), json_string_length(v), NULL, &len, NULL,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    len != n)
		return sv_seterr(SV_EPROTO, "\"%s\" is not base64url of %zu bytes", k, n);
	return 0;
}

int
bundle_key_follow(
    const uint8_t pinned[BUNDLE_PK_LEN], const json_t *chain, uint8_t out[BUNDLE_PK_LEN])
{
	uint8_t from[BUNDLE_PK_LEN], to[BUNDLE_PK_LEN], sig[BUNDLE_SIG_LEN];
	uint8_t msg[sizeof(BUNDLE_LINK_CONTEXT) - 1 + 2 * BUNDLE_PK_LEN];
	const json_t *l;
	size_t i;
	int r;

	memcpy(out, pinned, BUNDLE_PK_LEN);
	if (chain == NULL)
		return 0;
	if (sodium_init() < 0)
		return sv_seterr(SV_ECRYPTO, "libsodium initialisation failed");
	if (!json_is_array(chain) || json_array_size(chain) > BUNDLE_CHAIN_MAX)
		return sv_seterr(
		    SV_EPROTO, "key_chain is not an array of at most %d links", BUNDLE_CHAIN_MAX);
	json_array_foreach(chain, i, l)
	{
		if (!json_is_object(l) || json_object_size(l) != 3) {
			memcpy(out, pinned, BUNDLE_PK_LEN);
			return sv_seterr(
			    SV_EPROTO, "key_chain link %zu is not {from, to, sig}", i + 1);
		}
		if ((r = link_field(l, "from", from, BUNDLE_PK_LEN)) != 0 ||
		    (r = link_field(l, "to", to, BUNDLE_PK_LEN)) != 0 ||
		    (r = link_field(l, "sig", sig, BUNDLE_SIG_LEN)) != 0) {
			memcpy(out, pinned, BUNDLE_PK_LEN);
			return sv_preferr(r, "key_chain link %zu", i + 1);
		}
		if (sodium_memcmp(from, out, BUNDLE_PK_LEN) != 0)
			continue; /* before the key reached so far */
		link_msg(from, to, msg);
		if (crypto_sign_verify_detached(sig, msg, sizeof(msg), from) != 0) {
			memcpy(out, pinned, BUNDLE_PK_LEN);
			return sv_seterr(SV_EPROTO,
			    "key_chain link %zu: not signed by the key it starts from", i + 1);
		}
		memcpy(out, to, BUNDLE_PK_LEN);
	}
	return 0;
}
