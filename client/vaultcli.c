/*
 * vaultcli: the shadow's HTTPS client for the vault (libcurl): mutual TLS
 * with the key and certificate from its enrolment, the shadow CA as the only
 * trust anchor, answers capped at SHADOW_RESP_MAX and parsed as JSON, RFC
 * 9457 problem documents turned into a readable detail.  See shadow.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "log.h"
#include "shadow.h"
#include "sv_err.h"

struct sink {
	struct svbuf *b;
	int over;
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *k = arg;

	if (svbuf_put(k->b, p, size * n) != 0) {
		k->over = 1;
		return 0; /* abort the transfer */
	}
	return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	long *ra = arg;

	if (size * n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		*ra = strtol(p + 12, NULL, 10);
	return size * n;
}

void
vault_resp_free(struct vault_resp *r)
{
	json_decref(r->body);
	r->body = NULL;
}

static int
setup_tls(CURL *h, struct shadow *s, int mtls, const char *ca_file)
{
	char key[PATH_MAX], cert[PATH_MAX];

	curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (!mtls)
		return 0;
	if (shadow_path(s, "identity/key.pem", key, sizeof(key)) != 0 ||
	    shadow_path(s, "identity/cert.pem", cert, sizeof(cert)) != 0)
		return SV_ECONFIG;
	curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, key);
	return 0;
}

/* Parse the answer body; keep a problem's detail readable and escaped. */
static int
finish(struct vault_resp *out, struct svbuf *b)
{
	const char *d;

	if (svbuf_len(b) > 0)
		out->body = json_loadb(svbuf_str(b), svbuf_len(b), JSON_REJECT_DUPLICATES, NULL);
	if (out->status >= 400) {
		d = json_string_value(json_object_get(out->body, "detail"));
		sv_escape_display(
		    d ? d : "(no detail)", d ? strlen(d) : 11, out->detail, sizeof(out->detail));
		return 0;
	}
	if (!json_is_object(out->body))
		return sv_seterr(SV_EPROTO, "the vault's answer is not a JSON object");
	return 0;
}

void
vault_close(struct shadow *s)
{
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl);
	s->curl = NULL;
}

/*
 * The handle kept in s: curl_easy_reset() clears the options of the last
 * request but keeps its connection cache, so consecutive calls to the vault
 * share one mutual-TLS connection instead of a handshake each.
 */
static CURL *
handle(struct shadow *s)
{
	if (s->curl == NULL)
		s->curl = curl_easy_init();
	else
		curl_easy_reset(s->curl);
	return s->curl;
}

int
vault_call(struct shadow *s, const char *method, const char *url, const json_t *body, int mtls,
    const char *ca_file, struct vault_resp *out)
{
	struct sink k = { svbuf_new(SHADOW_RESP_MAX), 0 };
	struct curl_slist *hdr = NULL;
	char err[CURL_ERROR_SIZE] = "", *js = NULL;
	CURLcode cc;
	CURL *h;
	int r;

	memset(out, 0, sizeof(*out));
	if (k.b == NULL || (h = handle(s)) == NULL) {
		svbuf_free(k.b);
		return SV_ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "shadowvault-shadow/" SV_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &k);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &out->retry_after);
	if ((r = setup_tls(h, s, mtls, ca_file)) != 0)
		goto out;
	if (strcmp(method, "POST") == 0) {
		if ((js = json_dumps(body, JSON_COMPACT)) == NULL) {
			r = SV_ENOMEM;
			goto out;
		}
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, js);
	}
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		r = k.over
		    ? sv_seterr(SV_ETOOBIG, "%s: answer larger than %d bytes", url, SHADOW_RESP_MAX)
		    : sv_seterr(SV_ENET, "%s: %s", url, err[0] ? err : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	r = finish(out, k.b);
out:
	curl_slist_free_all(hdr);
	svbuf_free(k.b);
	free(js);
	if (r != 0)
		vault_resp_free(out);
	return r;
}
