/*
 * Classification of the ACME requests a shadow asks vaultd to sign.
 *
 * Before anything is signed with an ACME account key, vaultd's key process
 * hands the request {url, payload} and what it knows about the account to
 * cls_classify().  The classifier checks that the URL is on the account's
 * pinned CA host, decides which ACME operation (enum pol_op) the request is,
 * and extracts what the policy must judge: the DNS names involved and, for a
 * finalize, the CSR key's thumbprint.  It never decides by policy (pol_eval
 * does that with the result); it refuses only what is malformed or
 * structurally forbidden.  Pure code: no I/O, no global state, thread-safe.
 *
 * URL RULES
 *
 * A URL is at most CLS_URL_MAX bytes of RFC 3986 characters (letters, digits
 * and -._~:/?[]@!$&'()*+,;=%; anything else, including '#', control, space,
 * backslash and non-ASCII bytes, is refused), starts with "https://" (any
 * case) and a non-empty authority, and parses with libcurl's URL API with no
 * user, password or fragment.  Its host (compared case-insensitively as curl
 * parsed it) and effective port (443 when absent) must equal the directory
 * URL's.  Two URLs are the same when their host, port, path and query (as
 * curl parsed them: dot segments removed, percent-encoding kept as written)
 * are equal, so "https://CA.test:443/x" is "https://ca.test/x".
 *
 * CLASSIFICATION (first match wins)
 *
 *   url is                payload                    op
 *   new_nonce             any                        refused (nonces come from HEAD)
 *   new_account           JSON object                POL_NEW_ACCOUNT (use_jwk = 1)
 *   key_change            JSON object                POL_KEY_CHANGE
 *   kid (account URL)     empty                      POL_FETCH
 *   kid                   JSON object                POL_ACCOUNT_UPDATE
 *   new_order             {"identifiers":[{"type":"dns","value":name}...],
 *                          optional "notBefore","notAfter","replaces": strings}
 *                                                    POL_NEW_ORDER (names)
 *   revoke_cert           {"certificate": b64url DER, optional "reason": 0..10}
 *                                                    POL_REVOKE (certificate names)
 *   any other URL         empty                      POL_FETCH
 *                         {}                         POL_CHALLENGE
 *                         {"csr": b64url DER}        POL_FINALIZE (CSR names, key)
 *                         {"status":"deactivated"}   POL_AUTHZ_DEACTIVATE
 *                         anything else              refused (deny by default)
 *
 * A request to a URL that only looks like a known one ("/new-order/",
 * "/new%2Dorder") is judged by the last group's shapes, none of which can
 * order, revoke, roll keys or update the account, so near-misses fail safe.
 * A known URL that is NULL or does not parse matches nothing.
 *
 * Names: every name goes through pol_name_normalize() (wildcards "*.x" kept),
 * duplicates are dropped, order of first appearance kept, at most
 * CLS_NAMES_MAX.  CSR names are its SAN dNSNames plus every subject CN (a CN
 * that is not a DNS name is an error); certificate names are its SAN dNSNames
 * plus every subject CN that is a valid DNS name.  A SAN of any other type
 * (IP, email, URI...) is refused.  A CSR must verify under its own key, carry
 * at most one extensionRequest attribute (with one value) and no Microsoft
 * extension request, and its key's RFC 7638 thumbprint must differ from every
 * account key's.
 */
#ifndef SV_CLASSIFY_H
#define SV_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "pol.h"

#define CLS_PAYLOAD_MAX (64 * 1024) /* payload bytes; more: SV_ETOOBIG */
#define CLS_URL_MAX	2048	    /* URL bytes; more: SV_ETOOBIG */
#define CLS_DER_MAX	(16 * 1024) /* decoded CSR or certificate bytes; more: SV_ETOOBIG */
#define CLS_NAMES_MAX	100	    /* identifiers in a newOrder; names in a CSR or certificate */
#define CLS_THUMB_BUF	44	    /* JWK_THUMB_LEN + 1 */

struct cls_urls; /* an account's URLs, parsed (cls_urls_parse) */

/* What the vault knows about one ACME account (from its state database). */
struct cls_account {
	const char *name;	   /* account name in the vault (for messages) */
	const char *directory_url; /* pinned: https://host[:port]/path; required */
	const char *kid;	   /* account URL at the CA; NULL before registration */
	/* From the directory; each may be NULL (then nothing matches it). */
	const char *new_order, *new_account, *revoke_cert, *key_change, *new_nonce;
	/* RFC 7638 thumbprints of every account key the vault holds (all accounts,
	   all versions): a CSR whose key has one of them is refused.  These are
	   public values, so they are compared with strcmp. */
	const char *const *key_thumbprints;
	size_t nthumbprints;
	/* Optional: cls_urls_parse() of these same URLs, so that a call parses
	   only the request's URL; NULL: every call parses them again. */
	const struct cls_urls *urls;
};

/*
 * The directory URL and the known URLs of a, parsed once for any number of
 * cls_classify() calls (a URL that is NULL or breaks the rules is kept as
 * matching nothing, exactly as a call without it would judge it).  Returns 0,
 * SV_EINVAL (no directory URL) or SV_ENOMEM.  The result keeps nothing of a;
 * free it with cls_urls_free() (NULL is fine).
 */
int cls_urls_parse(const struct cls_account *a, struct cls_urls **out);
void cls_urls_free(struct cls_urls *u);

struct cls_result {
	enum pol_op op;
	char **names;				/* normalised DNS names involved; owned */
	size_t nnames;				/* 0 for ops without names */
	char csr_key_thumbprint[CLS_THUMB_BUF]; /* finalize: CSR key's thumbprint; else "" */
	int use_jwk; /* 1 only for newAccount (the header carries jwk, not kid) */
};

/*
 * Classify the request to sign payload[0..plen) for url (NUL-terminated) with
 * account a.  Returns 0 and fills *out (free with cls_result_free()), or:
 *   SV_EDENIED  structurally forbidden: URL not on the CA host (not https,
 *               other host or port, userinfo, fragment, odd characters),
 *               newNonce, unknown member in newOrder or revokeCert, non-dns
 *               identifier, SAN of another type, CSR with an account key,
 *               unrecognised request;
 *   SV_EINVAL   malformed: URL curl cannot parse, bad directory URL, payload
 *               not a JSON object (invalid JSON, duplicate keys), wrong member
 *               types, 0 or more than CLS_NAMES_MAX identifiers or names, bad
 *               DNS name, bad base64url, DER that does not parse or has
 *               trailing bytes, CSR signature that does not verify, CSR or
 *               certificate without names;
 *   SV_ETOOBIG  URL, payload or DER over its cap;
 *   SV_EUNSUPP  CSR key of a type without a JWK thumbprint;
 *   SV_ENOMEM.
 * On error the detail (sv_errmsg) says what and where, with untrusted text
 * escaped, and *out is zeroed with nothing to free.  Nothing is kept from a
 * or payload after the call; a->urls is only read.
 */
int cls_classify(const struct cls_account *a, const char *url, const uint8_t *payload, size_t plen,
    struct cls_result *out);

/* Free the names of r and zero it (r may be NULL or already freed). */
void cls_result_free(struct cls_result *r);

#endif
