/*
 * hsm_keys.c: key pair creation, lookup, destruction, public key export,
 * attribute read-back and RFC 7512 URIs (see hsm.h).  Talks only to the
 * PKCS#11 module through an open struct hsm.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "hsm_int.h"
#include "sv_err.h"

struct keytype_info {
	const char *name;
	const char *alg;
	CK_KEY_TYPE ckk;
	const uint8_t *params; /* DER of the curve OID, or NULL for RSA */
	size_t params_len;
	CK_ULONG bits;
};

static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

static const struct keytype_info keytypes[HSM_KEYTYPE_COUNT] = {
	[HSM_EC_P256] = { "ec-p256", "ES256", CKK_EC, oid_p256, sizeof(oid_p256), 256 },
	[HSM_EC_P384] = { "ec-p384", "ES384", CKK_EC, oid_p384, sizeof(oid_p384), 384 },
	[HSM_RSA_2048] = { "rsa-2048", "RS256", CKK_RSA, NULL, 0, 2048 },
	[HSM_RSA_3072] = { "rsa-3072", "RS256", CKK_RSA, NULL, 0, 3072 },
	[HSM_RSA_4096] = { "rsa-4096", "RS256", CKK_RSA, NULL, 0, 4096 },
	[HSM_ED25519] = { "ed25519", "EdDSA", CKK_EC_EDWARDS, oid_ed25519, sizeof(oid_ed25519),
	    255 },
};

int
hsm_keytype_parse(const char *s, enum hsm_keytype *out)
{
	int i;

	for (i = 0; i < HSM_KEYTYPE_COUNT; i++) {
		if (s != NULL && strcmp(s, keytypes[i].name) == 0) {
			*out = (enum hsm_keytype)i;
			return 0;
		}
	}
	return sv_seterr(SV_EINVAL,
	    "unknown key type \"%.32s\" (use ec-p256, ec-p384, rsa-2048, "
	    "rsa-3072, rsa-4096 or ed25519)",
	    s ? s : "");
}

const char *
hsm_keytype_name(enum hsm_keytype t)
{
	return (unsigned)t < HSM_KEYTYPE_COUNT ? keytypes[t].name : "unknown";
}

const char *
hsm_keytype_alg(enum hsm_keytype t)
{
	return (unsigned)t < HSM_KEYTYPE_COUNT ? keytypes[t].alg : NULL;
}

#define ATTR(t, v, l)                                                                              \
	{                                                                                          \
		(t), (void *)(v), (CK_ULONG)(l)                                                    \
	}

static CK_RV
generate(struct hsm *h, const struct keytype_info *kt, const char *label, const uint8_t *id,
    int exportable, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE, ext = exportable ? CK_TRUE : CK_FALSE;
	CK_BYTE e65537[] = { 0x01, 0x00, 0x01 };
	CK_ULONG bits = kt->bits;
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	size_t ll = strlen(label);
	CK_ATTRIBUTE pubt[] = {
		ATTR(CKA_TOKEN, &yes, 1),
		ATTR(CKA_VERIFY, &yes, 1),
		ATTR(CKA_ENCRYPT, &no, 1),
		ATTR(CKA_WRAP, &no, 1),
		ATTR(CKA_LABEL, label, ll),
		ATTR(CKA_ID, id, HSM_ID_LEN),
		ATTR(CKA_EC_PARAMS, kt->params, kt->params_len),
	};
	CK_ATTRIBUTE pubt_rsa[] = {
		ATTR(CKA_TOKEN, &yes, 1),
		ATTR(CKA_VERIFY, &yes, 1),
		ATTR(CKA_ENCRYPT, &no, 1),
		ATTR(CKA_WRAP, &no, 1),
		ATTR(CKA_LABEL, label, ll),
		ATTR(CKA_ID, id, HSM_ID_LEN),
		ATTR(CKA_MODULUS_BITS, &bits, sizeof(bits)),
		ATTR(CKA_PUBLIC_EXPONENT, e65537, sizeof(e65537)),
	};
	CK_ATTRIBUTE privt[] = {
		ATTR(CKA_TOKEN, &yes, 1),
		ATTR(CKA_PRIVATE, &yes, 1),
		ATTR(CKA_SENSITIVE, &yes, 1),
		ATTR(CKA_EXTRACTABLE, &ext, 1),
		ATTR(CKA_SIGN, &yes, 1),
		ATTR(CKA_DECRYPT, &no, 1),
		ATTR(CKA_UNWRAP, &no, 1),
		ATTR(CKA_DERIVE, &no, 1),
		ATTR(CKA_LABEL, label, ll),
		ATTR(CKA_ID, id, HSM_ID_LEN),
	};

	if (kt->ckk == CKK_RSA) {
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		return h->m->f->C_GenerateKeyPair(h->s, &mech, pubt_rsa,
		    sizeof(pubt_rsa) / sizeof(pubt_rsa[0]), privt, sizeof(privt) / sizeof(privt[0]),
		    pub, priv);
	}
	if (kt->ckk == CKK_EC_EDWARDS)
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
	return h->m->f->C_GenerateKeyPair(h->s, &mech, pubt, sizeof(pubt) / sizeof(pubt[0]), privt,
	    sizeof(privt) / sizeof(privt[0]), pub, priv);
}

int
hsm_key_create(
    struct hsm *h, enum hsm_keytype type, const char *label, int exportable, struct hsm_key *out)
{
	CK_OBJECT_HANDLE pub, priv;
	CK_RV rv;
	int attempt, r;

	memset(out, 0, sizeof(*out));
	if ((unsigned)type >= HSM_KEYTYPE_COUNT)
		return sv_seterr(SV_EINVAL, "hsm: bad key type");
	if (type == HSM_ED25519 && exportable)
		return sv_seterr(SV_EUNSUPP,
		    "hsm: ed25519 keys cannot be exportable: PKCS#11 "
		    "tokens cannot wrap them");
	if (strlen(label) == 0 || strlen(label) > HSM_LABEL_MAX)
		return sv_seterr(SV_EINVAL, "hsm: key label must be 1 to %d bytes", HSM_LABEL_MAX);
	out->type = type;
	snprintf(out->label, sizeof(out->label), "%s", label);
	randombytes_buf(out->id, HSM_ID_LEN);
	for (attempt = 0;; attempt++) {
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = generate(h, &keytypes[type], label, out->id, exportable, &pub, &priv);
			if (rv == CKR_OK) {
				out->pub = pub;
				out->priv = priv;
				out->gen = h->m->gen;
			}
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			return 0;
		if ((r = hsm_retry(h, rv, attempt, "C_GenerateKeyPair")) != 0)
			return sv_preferr(r, "creating %s key \"%s\"", keytypes[type].name, label);
	}
}

/*
 * Up to max token objects of class cls matching attribute a.  Session objects
 * (pinned copies, which share the key's CKA_ID and CKA_LABEL) never count.
 */
static CK_RV
find_objects(struct hsm *h, CK_OBJECT_CLASS cls, CK_ATTRIBUTE *a, CK_OBJECT_HANDLE *objs,
    CK_ULONG max, CK_ULONG *n)
{
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &cls, sizeof(cls)), ATTR(CKA_TOKEN, &yes, 1), *a };
	CK_RV rv;

	*n = 0;
	if ((rv = h->m->f->C_FindObjectsInit(h->s, t, 3)) != CKR_OK)
		return rv;
	rv = h->m->f->C_FindObjects(h->s, objs, max, n);
	h->m->f->C_FindObjectsFinal(h->s);
	return rv;
}

static CK_RV
find_by_id(struct hsm *h, CK_OBJECT_CLASS cls, const uint8_t *id, CK_OBJECT_HANDLE *obj, int *found)
{
	CK_ATTRIBUTE a = ATTR(CKA_ID, id, HSM_ID_LEN);
	CK_OBJECT_HANDLE o[2];
	CK_ULONG n;
	CK_RV rv;

	*found = 0;
	if ((rv = find_objects(h, cls, &a, o, 2, &n)) != CKR_OK)
		return rv;
	if (n == 1) {
		*obj = o[0];
		*found = 1;
	}
	return CKR_OK;
}

/* Private objects are invisible without a login: tell "gone" from "logged out". */
static int
logged_in(struct hsm *h)
{
	CK_SESSION_INFO si;

	return h->m->f->C_GetSessionInfo(h->s, &si) == CKR_OK &&
	    (si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS);
}

CK_RV
hsm_key_handles(struct hsm *h, struct hsm_key *key, int want_pub)
{
	CK_OBJECT_HANDLE priv, pub;
	int found;
	CK_RV rv;

	if (key->gen == h->m->gen && key->priv != 0 && (!want_pub || key->pub != 0)) {
		key->fresh = 0;
		return CKR_OK;
	}
	key->fresh = 1;
	if ((rv = find_by_id(h, CKO_PRIVATE_KEY, key->id, &priv, &found)) != CKR_OK)
		return rv;
	if (!found)
		return logged_in(h) ? CKR_KEY_HANDLE_INVALID : CKR_USER_NOT_LOGGED_IN;
	if ((rv = find_by_id(h, CKO_PUBLIC_KEY, key->id, &pub, &found)) != CKR_OK)
		return rv;
	key->priv = priv;
	key->pub = found ? pub : 0;
	key->gen = h->m->gen;
	return (want_pub && !found) ? CKR_KEY_HANDLE_INVALID : CKR_OK;
}

int
hsm_key_find(struct hsm *h, struct hsm_key *key)
{
	CK_RV rv;
	int attempt, r;

	key->gen = 0; /* generations start at 1: force a lookup */
	for (attempt = 0;; attempt++) {
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = hsm_key_handles(h, key, 0);
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			return 0;
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_FindObjects")) != 0)
			return r;
	}
}

static CK_RV
read_attr(struct hsm *h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, void *buf, CK_ULONG *len)
{
	CK_ATTRIBUTE a = ATTR(t, buf, *len);
	CK_RV rv = h->m->f->C_GetAttributeValue(h->s, o, &a, 1);

	*len = a.ulValueLen;
	return rv;
}

/* Key type from CKA_KEY_TYPE and CKA_EC_PARAMS / CKA_MODULUS_BITS. */
static CK_RV
detect_type(struct hsm *h, CK_OBJECT_HANDLE pub, enum hsm_keytype *type)
{
	CK_KEY_TYPE ckk;
	CK_ULONG len = sizeof(ckk), bits;
	uint8_t params[32];
	CK_RV rv;
	int i;

	if ((rv = read_attr(h, pub, CKA_KEY_TYPE, &ckk, &len)) != CKR_OK)
		return rv;
	if (ckk == CKK_RSA) {
		len = sizeof(bits);
		if ((rv = read_attr(h, pub, CKA_MODULUS_BITS, &bits, &len)) != CKR_OK)
			return rv;
	} else {
		len = sizeof(params);
		if ((rv = read_attr(h, pub, CKA_EC_PARAMS, params, &len)) != CKR_OK)
			return rv;
	}
	for (i = 0; i < HSM_KEYTYPE_COUNT; i++) {
		if (keytypes[i].ckk != ckk)
			continue;
		if (ckk == CKK_RSA ? keytypes[i].bits == bits
				   : (keytypes[i].params_len == len &&
					 memcmp(keytypes[i].params, params, len) == 0)) {
			*type = (enum hsm_keytype)i;
			return CKR_OK;
		}
	}
	return CKR_KEY_TYPE_INCONSISTENT;
}

static CK_RV
find_label(struct hsm *h, const char *label, struct hsm_key *out, CK_ULONG *n)
{
	CK_ATTRIBUTE a = ATTR(CKA_LABEL, label, strlen(label));
	CK_OBJECT_HANDLE o[2];
	CK_ULONG len = HSM_ID_LEN;
	CK_RV rv;
	int found;

	if ((rv = find_objects(h, CKO_PRIVATE_KEY, &a, o, 2, n)) != CKR_OK || *n != 1)
		return rv;
	if ((rv = read_attr(h, o[0], CKA_ID, out->id, &len)) != CKR_OK)
		return rv;
	if (len != HSM_ID_LEN)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	out->priv = o[0];
	if ((rv = find_by_id(h, CKO_PUBLIC_KEY, out->id, &out->pub, &found)) != CKR_OK)
		return rv;
	if (!found)
		return CKR_KEY_HANDLE_INVALID;
	out->gen = h->m->gen;
	return detect_type(h, out->pub, &out->type);
}

int
hsm_key_find_label(struct hsm *h, const char *label, struct hsm_key *out)
{
	CK_ULONG n = 0;
	CK_RV rv;
	int attempt, r;

	memset(out, 0, sizeof(*out));
	if (strlen(label) == 0 || strlen(label) > HSM_LABEL_MAX)
		return sv_seterr(SV_EINVAL, "hsm: key label must be 1 to %d bytes", HSM_LABEL_MAX);
	snprintf(out->label, sizeof(out->label), "%s", label);
	for (attempt = 0;; attempt++) {
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = find_label(h, label, out, &n);
			hsm_leave(h);
		}
		if (rv != CKR_OK) {
			if ((r = hsm_key_retry(h, out, rv, attempt, "C_FindObjects")) != 0)
				return r;
			continue;
		}
		if (n == 0)
			return sv_seterr(SV_ENOTFOUND, "hsm: no key labelled \"%s\"", label);
		if (n > 1)
			return sv_seterr(SV_EEXIST, "hsm: several keys are labelled \"%s\"", label);
		return 0;
	}
}

int
hsm_key_destroy(struct hsm *h, struct hsm_key *key)
{
	CK_RV rv;
	int attempt, r;

	for (attempt = 0;; attempt++) {
		if ((rv = hsm_enter(h)) == CKR_OK) {
			hsm_key_drop_copy(h, key);
			if ((rv = hsm_key_handles(h, key, 0)) == CKR_OK &&
			    (rv = h->m->f->C_DestroyObject(h->s, key->priv)) == CKR_OK && key->pub)
				rv = h->m->f->C_DestroyObject(h->s, key->pub);
			hsm_leave(h);
		}
		if (rv == CKR_OK) {
			key->priv = key->pub = 0;
			return 0;
		}
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_DestroyObject")) != 0)
			return r;
	}
}

/* CKA_EC_POINT is a DER OCTET STRING around the point; some modules give it raw. */
static int
unwrap_point(const uint8_t *p, size_t len, size_t want, const uint8_t **pt)
{
	if (len == want) {
		*pt = p;
		return 0;
	}
	if (want < 128 && len == want + 2 && p[0] == 0x04 && p[1] == want) {
		*pt = p + 2;
		return 0;
	}
	if (len == want + 3 && p[0] == 0x04 && p[1] == 0x81 && p[2] == want) {
		*pt = p + 3;
		return 0;
	}
	return sv_seterr(SV_EHSM, "hsm: CKA_EC_POINT has an unexpected form");
}

static int
pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int r = 0;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
		r = sv_seterr_ssl(SV_ECRYPTO, "hsm: building public key");
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

static int
public_ec(const struct hsm_key *key, const uint8_t *p, size_t len, EVP_PKEY **out)
{
	size_t n = key->type == HSM_EC_P256 ? 65 : 97;
	const char *group = key->type == HSM_EC_P256 ? "prime256v1" : "secp384r1";
	OSSL_PARAM_BLD *bld;
	const uint8_t *pt;
	int r;

	if ((r = unwrap_point(p, len, n, &pt)) != 0)
		return r;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, n) != 1) {
		OSSL_PARAM_BLD_free(bld);
		return SV_ENOMEM;
	}
	r = pkey_from_params("EC", bld, out);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

static int
public_rsa(const uint8_t *mod, size_t ml, const uint8_t *exp, size_t el, EVP_PKEY **out)
{
	BIGNUM *n = BN_bin2bn(mod, (int)ml, NULL), *e = BN_bin2bn(exp, (int)el, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	int r = SV_ENOMEM;

	if (n != NULL && e != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
		r = pkey_from_params("RSA", bld, out);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return r;
}

static CK_RV
read_public(struct hsm *h, struct hsm_key *key, uint8_t *a, CK_ULONG *al, uint8_t *b, CK_ULONG *bl)
{
	CK_RV rv;

	if ((rv = hsm_key_handles(h, key, 1)) != CKR_OK)
		return rv;
	if (keytypes[key->type].ckk != CKK_RSA)
		return read_attr(h, key->pub, CKA_EC_POINT, a, al);
	if ((rv = read_attr(h, key->pub, CKA_MODULUS, a, al)) != CKR_OK)
		return rv;
	return read_attr(h, key->pub, CKA_PUBLIC_EXPONENT, b, bl);
}

int
hsm_key_public(struct hsm *h, struct hsm_key *key, EVP_PKEY **out)
{
	uint8_t a[600], b[16];
	CK_ULONG al, bl;
	const uint8_t *pt;
	CK_RV rv;
	int attempt, r;

	*out = NULL;
	for (attempt = 0;; attempt++) {
		al = sizeof(a);
		bl = sizeof(b);
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = read_public(h, key, a, &al, b, &bl);
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			break;
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_GetAttributeValue")) != 0)
			return r;
	}
	switch (key->type) {
	case HSM_EC_P256:
	case HSM_EC_P384:
		return public_ec(key, a, al, out);
	case HSM_ED25519:
		if ((r = unwrap_point(a, al, 32, &pt)) != 0)
			return r;
		if ((*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt, 32)) == NULL)
			return sv_seterr_ssl(SV_ECRYPTO, "hsm: Ed25519 public key");
		return 0;
	default:
		return public_rsa(a, al, b, bl, out);
	}
}

static CK_RV
read_flags(struct hsm *h, struct hsm_key *key, struct hsm_keyattrs *o)
{
	CK_BBOOL v[6] = { 0 };
	CK_ATTRIBUTE t[] = {
		ATTR(CKA_SENSITIVE, &v[0], 1),
		ATTR(CKA_EXTRACTABLE, &v[1], 1),
		ATTR(CKA_ALWAYS_SENSITIVE, &v[2], 1),
		ATTR(CKA_NEVER_EXTRACTABLE, &v[3], 1),
		ATTR(CKA_TOKEN, &v[4], 1),
		ATTR(CKA_PRIVATE, &v[5], 1),
	};
	CK_RV rv;

	if ((rv = hsm_key_handles(h, key, 0)) != CKR_OK)
		return rv;
	if ((rv = h->m->f->C_GetAttributeValue(h->s, key->priv, t, 6)) != CKR_OK)
		return rv;
	o->sensitive = v[0];
	o->extractable = v[1];
	o->always_sensitive = v[2];
	o->never_extractable = v[3];
	o->token = v[4];
	o->private_ = v[5];
	return CKR_OK;
}

int
hsm_key_attrs(struct hsm *h, struct hsm_key *key, struct hsm_keyattrs *out)
{
	CK_RV rv;
	int attempt, r;

	memset(out, 0, sizeof(*out));
	for (attempt = 0;; attempt++) {
		if ((rv = hsm_enter(h)) == CKR_OK) {
			rv = read_flags(h, key, out);
			hsm_leave(h);
		}
		if (rv == CKR_OK)
			return 0;
		if ((r = hsm_key_retry(h, key, rv, attempt, "C_GetAttributeValue")) != 0)
			return r;
	}
}

/* Percent-encode for an RFC 7512 path attribute value. */
static int
pct(char *buf, size_t n, size_t *used, const uint8_t *v, size_t len, int all)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t c = v[i];
		int plain = !all &&
		    ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '@');

		if (*used + (plain ? 1 : 3) >= n)
			return sv_seterr(SV_ETOOBIG, "hsm: URI too long");
		if (plain) {
			buf[(*used)++] = (char)c;
		} else {
			buf[(*used)++] = '%';
			buf[(*used)++] = hex[c >> 4];
			buf[(*used)++] = hex[c & 15];
		}
	}
	buf[*used] = '\0';
	return 0;
}

/* Append a literal that needs no encoding. */
static int
lit(char *buf, size_t n, size_t *used, const char *s)
{
	size_t l = strlen(s);

	if (*used + l >= n)
		return sv_seterr(SV_ETOOBIG, "hsm: URI too long");
	memcpy(buf + *used, s, l + 1);
	*used += l;
	return 0;
}

int
hsm_key_uri(const struct hsm *h, const struct hsm_key *key, char *buf, size_t n)
{
	size_t used = 0;
	int r;

	if ((r = lit(buf, n, &used, "pkcs11:token=")) != 0 ||
	    (r = pct(buf, n, &used, (const uint8_t *)h->m->token, strlen(h->m->token), 0)) != 0 ||
	    (r = lit(buf, n, &used, ";object=")) != 0 ||
	    (r = pct(buf, n, &used, (const uint8_t *)key->label, strlen(key->label), 0)) != 0 ||
	    (r = lit(buf, n, &used, ";id=")) != 0 ||
	    (r = pct(buf, n, &used, key->id, HSM_ID_LEN, 1)) != 0)
		return r;
	return lit(buf, n, &used, ";type=private");
}

/* Percent-decode v[0..len) into out (at most max bytes); returns the length or -1. */
static int
pct_decode(const char *v, size_t len, uint8_t *out, size_t max)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)v[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len ||
			    (hi = OPENSSL_hexchar2int((unsigned char)v[i + 1])) < 0 ||
			    (lo = OPENSSL_hexchar2int((unsigned char)v[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o == max)
			return -1;
		out[o++] = (uint8_t)c;
	}
	return (int)o;
}

int
hsm_uri_parse(const char *uri, char *token, char *object, uint8_t id[HSM_ID_LEN], int *have_id)
{
	const char *p, *end, *eq, *semi;
	uint8_t buf[HSM_LABEL_MAX + 1];
	int n;

	token[0] = object[0] = '\0';
	*have_id = 0;
	if (strncmp(uri, "pkcs11:", 7) != 0 || strlen(uri) > HSM_URI_MAX)
		return sv_seterr(SV_EINVAL, "not a pkcs11: URI");
	p = uri + 7;
	end = strchr(p, '?') ? strchr(p, '?') : p + strlen(p);
	while (p < end) {
		semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			semi = end;
		if ((eq = memchr(p, '=', (size_t)(semi - p))) == NULL)
			return sv_seterr(SV_EINVAL, "pkcs11: URI attribute without a value");
		n = pct_decode(eq + 1, (size_t)(semi - eq - 1), buf, sizeof(buf) - 1);
		if (n < 0)
			return sv_seterr(SV_EINVAL, "pkcs11: URI has a bad or overlong value");
		buf[n] = '\0';
		if ((size_t)(eq - p) == 5 && strncmp(p, "token", 5) == 0) {
			/* A PKCS#11 token label has 32 bytes: a longer one names no token. */
			if (n > 32)
				return sv_seterr(
				    SV_EINVAL, "pkcs11: URI token label longer than 32 bytes");
			memcpy(token, buf, (size_t)n + 1);
		} else if ((size_t)(eq - p) == 6 && strncmp(p, "object", 6) == 0)
			memcpy(object, buf, (size_t)n + 1);
		else if ((size_t)(eq - p) == 2 && strncmp(p, "id", 2) == 0) {
			if (n != HSM_ID_LEN)
				return sv_seterr(
				    SV_EINVAL, "pkcs11: URI id is not %d bytes", HSM_ID_LEN);
			memcpy(id, buf, HSM_ID_LEN);
			*have_id = 1;
		}
		p = semi + (semi < end);
	}
	return 0;
}

int
hsm_key_ed25519_raw(struct hsm *h, struct hsm_key *key, uint8_t out[32])
{
	EVP_PKEY *pk = NULL;
	size_t n = 32;
	int r;

	if (key->type != HSM_ED25519)
		return sv_seterr(SV_EINVAL, "hsm: not an Ed25519 key");
	if ((r = hsm_key_public(h, key, &pk)) != 0)
		return r;
	if (EVP_PKEY_get_raw_public_key(pk, out, &n) != 1 || n != 32)
		r = sv_seterr_ssl(SV_ECRYPTO, "hsm: Ed25519 public key");
	EVP_PKEY_free(pk);
	return r;
}
