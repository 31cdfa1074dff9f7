/*
 * Internals shared by the ACME transport (acme_http.c) and the operations
 * (acme.c, acme_order.c).  Not for use outside common/acme*.c.
 */
#ifndef SV_ACME_INT_H
#define SV_ACME_INT_H

#include <curl/curl.h>

#include "acme.h"

struct acme {
	CURL *curl;
	char *dir_url;
	char *ca_file;
	char *ua;
	long timeout_s;
	struct acme_dir dir;
	char nonce[ACME_NONCE_MAX + 1]; /* "" = none cached; each one used once */
	struct acme_problem last;	/* problem of the last request */
	int has_last;
	struct acme_stats st;
	char curlerr[CURL_ERROR_SIZE];
};

/*
 * Unsigned GET of url (directory, ARI).  r is initialised here for kind; the
 * caller always acme_resp_free()s it.
 */
int acme_get(struct acme *a, const char *url, enum acme_body kind, struct acme_resp *r);

/*
 * acme_post() of a POST-as-GET whose first attempt sends ahead, the body
 * acme_sign_ahead() made; a badNonce answer is retried as acme_post() does,
 * signed again through sign.
 */
int acme_post_ahead(struct acme *a, const char *url, const char *ahead, acme_sign_fn sign,
    void *ctx, enum acme_body kind, struct acme_resp *r);

#endif
