/*
 * ACME response parsing without a network: header lines (status line,
 * Replay-Nonce, Location, Content-Type, Retry-After, Link), capped body
 * collection, the final check of a response, and problem documents (see
 * acme.h).  Pure functions over the caller's struct acme_resp: no I/O, no
 * globals.  Called by the transport (acme_http.c) from libcurl callbacks, by
 * tests/unit/test_acme_parse.c and by fuzz/fuzz_acme_problem.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "acme.h"
#include "buf.h"
#include "log.h"
#include "sv_err.h"

/* How much of an error body without a problem document goes into the detail. */
#define SNIPPET_MAX 160
/* Longest Link parameter value we look at (rel="..."). */
#define LINK_PARAM_MAX 256

static size_t
kind_cap(enum acme_body kind)
{
	return kind == ACME_BODY_PEM ? ACME_PEM_MAX : ACME_JSON_MAX;
}

int
acme_resp_init(struct acme_resp *r, enum acme_body kind)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->retry_after = -1;
	if ((r->body = svbuf_new(kind_cap(kind))) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a response buffer");
	return 0;
}

/* Forget what the headers told us (a new header block starts). */
static void
resp_reset_headers(struct acme_resp *r)
{
	size_t i;

	free(r->location);
	free(r->nonce);
	free(r->ctype);
	free(r->up);
	for (i = 0; i < r->nalt; i++)
		free(r->alternates[i]);
	r->location = r->nonce = r->ctype = r->up = NULL;
	r->nalt = 0;
	r->retry_after = -1;
}

void
acme_resp_free(struct acme_resp *r)
{
	if (r == NULL)
		return;
	resp_reset_headers(r);
	svbuf_free(r->body);
	json_decref(r->json);
	acme_problem_free(&r->problem);
	memset(r, 0, sizeof(*r));
}

/* "HTTP/1.1 200 OK" or "HTTP/2 200". */
static int
status_line(struct acme_resp *r, const char *s, size_t len)
{
	const char *sp = memchr(s, ' ', len);
	size_t i;
	long st = 0;

	if (sp == NULL || (size_t)(sp - s) + 4 > len)
		return sv_seterr(SV_EPROTO, "malformed HTTP status line");
	for (i = 1; i <= 3; i++) {
		if (!isdigit((unsigned char)sp[i]))
			return sv_seterr(SV_EPROTO, "malformed HTTP status line");
		st = st * 10 + (sp[i] - '0');
	}
	if ((size_t)(sp - s) + 4 < len && sp[4] != ' ')
		return sv_seterr(SV_EPROTO, "malformed HTTP status line");
	if (st < 100 || st > 599)
		return sv_seterr(SV_EPROTO, "HTTP status %ld out of range", st);
	resp_reset_headers(r);
	r->status = st;
	return 0;
}

/* Media type of a Content-Type value: lower case, without parameters. */
static int
set_ctype(struct acme_resp *r, const char *v)
{
	size_t n = strcspn(v, ";"), i;
	char *t;

	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n > ACME_CTYPE_MAX)
		return sv_seterr(SV_EPROTO, "Content-Type longer than %d bytes", ACME_CTYPE_MAX);
	if ((t = strndup(v, n)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a header");
	for (i = 0; i < n; i++)
		t[i] = (char)tolower((unsigned char)t[i]);
	free(r->ctype);
	r->ctype = t;
	return 0;
}

static int
replace_str(char **slot, const char *v)
{
	char *t;

	if ((t = strdup(v)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a header");
	free(*slot);
	*slot = t;
	return 0;
}

/* One "Name: value" header with name and value already split and trimmed. */
static int
header_field(struct acme_resp *r, const char *name, const char *v, time_t now)
{
	long secs;

	if (strcasecmp(name, "replay-nonce") == 0) {
		/* RFC 8555 6.5.1: clients MUST ignore invalid Replay-Nonce values. */
		if (acme_nonce_check(v, strlen(v)) != 0)
			return 0;
		return replace_str(&r->nonce, v);
	}
	if (strcasecmp(name, "location") == 0) {
		if (acme_url_check(v) != 0)
			return sv_recode(SV_EPROTO);
		return replace_str(&r->location, v);
	}
	if (strcasecmp(name, "content-type") == 0)
		return set_ctype(r, v);
	if (strcasecmp(name, "retry-after") == 0) {
		if (acme_retry_after_parse(v, now, &secs) == 0)
			r->retry_after = secs;
		return 0;
	}
	if (strcasecmp(name, "link") == 0) {
		/*
		 * Links are optional extras (alternate chains, the issuer): a
		 * malformed one is dropped, and must not fail the request.
		 */
		if (acme_link_parse(v, r->alternates, &r->nalt, &r->up) != 0)
			sv_clearerr();
		return 0;
	}
	return 0;
}

static int
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
acme_resp_header(struct acme_resp *r, const char *line, size_t len, time_t now)
{
	char name[64], *v = NULL;
	size_t n, vs, ve;
	int rc;

	if (len > ACME_HDR_MAX || r->hdr_bytes > ACME_HDR_MAX - len)
		return sv_seterr(SV_ETOOBIG, "response headers larger than %d bytes", ACME_HDR_MAX);
	r->hdr_bytes += len;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len == 0 || line[0] == ' ' || line[0] == '\t')
		return 0; /* end of the block, or an obsolete folded line we ignore */
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
		return status_line(r, line, len);
	for (n = 0; n < len && is_tchar((unsigned char)line[n]); n++)
		;
	if (n == 0 || n >= len || line[n] != ':')
		return sv_seterr(SV_EPROTO, "malformed response header line");
	if (n >= sizeof(name))
		return 0; /* longer than any header we care about */
	memcpy(name, line, n);
	name[n] = '\0';
	for (vs = n + 1; vs < len && (line[vs] == ' ' || line[vs] == '\t'); vs++)
		;
	for (ve = len; ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'); ve--)
		;
	if (memchr(line + vs, '\0', ve - vs) != NULL)
		return sv_seterr(SV_EPROTO, "NUL byte in response header %s", name);
	if ((v = strndup(line + vs, ve - vs)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a header");
	rc = header_field(r, name, v, now);
	free(v);
	return rc;
}

int
acme_resp_body(struct acme_resp *r, const void *data, size_t len)
{
	if (svbuf_put(r->body, data, len) != 0)
		return sv_seterr(
		    SV_ETOOBIG, "response body larger than %zu bytes", svbuf_max(r->body));
	return 0;
}

/* ---------------------------------------------------------- Link header */

static const char *
skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* token or quoted-string at *pp into out (NUL-terminated); advances *pp. */
static int
link_param_value(const char **pp, char *out, size_t outsz)
{
	const char *p = *pp;
	size_t o = 0;

	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\0')
				return sv_seterr(SV_EPROTO, "unterminated quoted string");
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (o + 1 >= outsz)
				return sv_seterr(SV_EPROTO, "link parameter too long");
			out[o++] = *p;
		}
		p++;
	} else {
		for (; is_tchar((unsigned char)*p); p++) {
			if (o + 1 >= outsz)
				return sv_seterr(SV_EPROTO, "link parameter too long");
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	*pp = p;
	return 0;
}

/* Does the space-separated relation list rels contain want? */
static int
rel_has(const char *rels, const char *want)
{
	size_t wl = strlen(want), n;

	while (*rels != '\0') {
		rels += strspn(rels, " \t");
		n = strcspn(rels, " \t");
		if (n == wl && strncasecmp(rels, want, n) == 0)
			return 1;
		rels += n;
	}
	return 0;
}

/* Parameters after "<uri>" up to the next ',' or the end: *rel gets rel's value. */
static int
link_params(const char **pp, char *rel, size_t relsz)
{
	char name[32], val[LINK_PARAM_MAX];
	const char *p = *pp;
	size_t n;
	int rc;

	rel[0] = '\0';
	for (p = skip_ows(p); *p == ';'; p = skip_ows(p)) {
		p = skip_ows(p + 1);
		for (n = 0; is_tchar((unsigned char)p[n]); n++)
			;
		if (n == 0 || n >= sizeof(name))
			return sv_seterr(SV_EPROTO, "bad link parameter name");
		memcpy(name, p, n);
		name[n] = '\0';
		p = skip_ows(p + n);
		val[0] = '\0';
		if (*p == '=') {
			p = skip_ows(p + 1);
			if ((rc = link_param_value(&p, val, sizeof(val))) != 0)
				return rc;
		}
		/* RFC 8288 3.3: only the first rel parameter counts. */
		if (strcasecmp(name, "rel") == 0 && rel[0] == '\0')
			snprintf(rel, relsz, "%s", val);
	}
	if (*p != '\0' && *p != ',')
		return sv_seterr(SV_EPROTO, "junk after a link");
	*pp = p;
	return 0;
}

static int
link_keep(const char *uri, size_t ulen, const char *rel, char **alt, size_t *nalt, char **up)
{
	int is_up = rel_has(rel, "up"), is_alt = rel_has(rel, "alternate");
	char *u, *c;

	if (!is_up && !is_alt)
		return 0;
	if ((u = strndup(uri, ulen)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a link");
	/* Only absolute https URLs: we never resolve relative references. */
	if (strlen(u) != ulen || acme_url_check(u) != 0) {
		free(u);
		sv_clearerr();
		return 0;
	}
	if (is_up) {
		if ((c = strdup(u)) == NULL) {
			free(u);
			return sv_seterr(SV_ENOMEM, "acme: no memory for a link");
		}
		free(*up);
		*up = c;
	}
	if (is_alt && *nalt < ACME_ALT_MAX)
		alt[(*nalt)++] = u;
	else
		free(u);
	return 0;
}

int
acme_link_parse(const char *value, char **alt, size_t *nalt, char **up)
{
	char rel[LINK_PARAM_MAX];
	const char *p = value, *uri, *end;
	int rc;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return 0;
		if (*p != '<' || (end = strchr(p + 1, '>')) == NULL)
			return sv_seterr(SV_EPROTO, "link without <URI>");
		uri = p + 1;
		p = end + 1;
		if ((rc = link_params(&p, rel, sizeof(rel))) != 0)
			return rc;
		if ((rc = link_keep(uri, (size_t)(end - uri), rel, alt, nalt, up)) != 0)
			return rc;
	}
}

int
acme_retry_after_parse(const char *value, time_t now, long *secs)
{
	size_t n = strspn(value, "0123456789");
	long v;
	time_t t;

	*secs = -1;
	if (n > 0 && value[n] == '\0') {
		/* delta-seconds; anything over the clamp needs no exact value */
		v = n > 9 ? ACME_RETRY_AFTER_MAX : strtol(value, NULL, 10);
	} else {
		if ((t = curl_getdate(value, NULL)) == -1)
			return sv_seterr(
			    SV_EINVAL, "Retry-After is neither seconds nor an HTTP-date");
		v = t <= now
		    ? 0
		    : (t - now > ACME_RETRY_AFTER_MAX ? ACME_RETRY_AFTER_MAX : (long)(t - now));
	}
	*secs = v > ACME_RETRY_AFTER_MAX ? ACME_RETRY_AFTER_MAX : v;
	return 0;
}

/* ------------------------------------------------------ problem documents */

/* Escaped, capped copy of a JSON string member; NULL when absent or not a string. */
static int
esc_member(const json_t *o, const char *key, char **out)
{
	const json_t *v = json_object_get(o, key);
	char buf[ACME_TEXT_MAX + 1];

	*out = NULL;
	if (!json_is_string(v))
		return 0;
	sv_escape(json_string_value(v), json_string_length(v), buf, sizeof(buf));
	if ((*out = strdup(buf)) == NULL)
		return sv_seterr(SV_ENOMEM, "acme: no memory for a problem document");
	return 0;
}

static int
subproblem_parse(const json_t *j, struct acme_subproblem *s)
{
	const json_t *id = json_object_get(j, "identifier");
	int rc;

	if ((rc = esc_member(j, "type", &s->type)) != 0 ||
	    (rc = esc_member(j, "detail", &s->detail)) != 0)
		return rc;
	if (json_is_object(id) &&
	    ((rc = esc_member(id, "type", &s->id.type)) != 0 ||
		(rc = esc_member(id, "value", &s->id.value)) != 0))
		return rc;
	return 0;
}

/*
 * Members of the wrong type are ignored rather than refused: a problem
 * document is already an error, and the user should see what it does say.
 */
int
acme_problem_parse(const json_t *j, struct acme_problem *p)
{
	const json_t *subs, *st;
	size_t i, n;
	int rc;

	memset(p, 0, sizeof(*p));
	p->retry_after = -1;
	if (!json_is_object(j))
		return sv_seterr(SV_EPROTO, "problem document is not a JSON object");
	if ((rc = esc_member(j, "type", &p->type)) != 0 ||
	    (rc = esc_member(j, "detail", &p->detail)) != 0)
		goto out;
	st = json_object_get(j, "status");
	if (json_is_integer(st) && json_integer_value(st) >= 100 && json_integer_value(st) <= 599)
		p->status = (long)json_integer_value(st);
	subs = json_object_get(j, "subproblems");
	if (json_is_array(subs) && (n = json_array_size(subs)) > 0) {
		p->nsub_total = n;
		rc = SV_ENOMEM;
		if ((p->sub = calloc(
			 n < ACME_SUBPROB_MAX ? n : ACME_SUBPROB_MAX, sizeof(*p->sub))) == NULL)
			goto out;
		for (i = 0; i < n && p->nsub < ACME_SUBPROB_MAX; i++) {
			if (!json_is_object(json_array_get(subs, i)))
				continue;
			if ((rc = subproblem_parse(json_array_get(subs, i), &p->sub[p->nsub++])) !=
			    0)
				goto out;
		}
	}
	rc = 0;
out:
	if (rc != 0)
		acme_problem_free(p);
	return rc;
}

int
acme_problem_is(const struct acme_problem *p, const char *name)
{
	size_t pl = strlen(ACME_ERROR_PREFIX);

	return p != NULL && p->type != NULL && strncmp(p->type, ACME_ERROR_PREFIX, pl) == 0 &&
	    strcmp(p->type + pl, name) == 0;
}

static const char *
short_type(const char *type)
{
	size_t pl = strlen(ACME_ERROR_PREFIX);

	if (type == NULL)
		return "(no type)";
	return strncmp(type, ACME_ERROR_PREFIX, pl) == 0 ? type + pl : type;
}

/* Append to out at *pos, truncating; keeps out NUL-terminated. */
static void
app(char *out, size_t outsz, size_t *pos, const char *s)
{
	int n;

	if (*pos + 1 >= outsz)
		return;
	n = snprintf(out + *pos, outsz - *pos, "%s", s);
	*pos += n < 0 ? 0 : ((size_t)n >= outsz - *pos ? outsz - *pos - 1 : (size_t)n);
}

char *
acme_problem_text(const struct acme_problem *p, char *out, size_t outsz)
{
	char more[48];
	size_t pos = 0, i;

	if (outsz == 0)
		return out;
	out[0] = '\0';
	app(out, outsz, &pos, short_type(p->type));
	app(out, outsz, &pos, ": ");
	app(out, outsz, &pos, p->detail != NULL ? p->detail : "(no detail)");
	for (i = 0; i < p->nsub; i++) {
		const struct acme_subproblem *s = &p->sub[i];

		app(out, outsz, &pos, i == 0 ? " (" : "; ");
		if (s->id.value != NULL) {
			app(out, outsz, &pos, s->id.type != NULL ? s->id.type : "?");
			app(out, outsz, &pos, ":");
			app(out, outsz, &pos, s->id.value);
			app(out, outsz, &pos, ": ");
		}
		if (s->type != NULL) {
			app(out, outsz, &pos, short_type(s->type));
			app(out, outsz, &pos, ": ");
		}
		app(out, outsz, &pos, s->detail != NULL ? s->detail : "(no detail)");
	}
	if (p->nsub_total > p->nsub) {
		snprintf(more, sizeof(more), "%sand %zu more", p->nsub > 0 ? "; " : " (",
		    p->nsub_total - p->nsub);
		app(out, outsz, &pos, more);
	}
	if (p->nsub_total > 0)
		app(out, outsz, &pos, ")");
	return out;
}

static int
dup_or_null(const char *s, char **out)
{
	*out = NULL;
	if (s != NULL && (*out = strdup(s)) == NULL)
		return SV_ENOMEM;
	return 0;
}

int
acme_problem_copy(struct acme_problem *dst, const struct acme_problem *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->status = src->status;
	dst->retry_after = src->retry_after;
	dst->nsub_total = src->nsub_total;
	if (dup_or_null(src->type, &dst->type) != 0 || dup_or_null(src->detail, &dst->detail) != 0)
		goto nomem;
	if (src->nsub > 0 && (dst->sub = calloc(src->nsub, sizeof(*dst->sub))) == NULL)
		goto nomem;
	for (i = 0; i < src->nsub; i++) {
		dst->nsub++;
		if (dup_or_null(src->sub[i].type, &dst->sub[i].type) != 0 ||
		    dup_or_null(src->sub[i].detail, &dst->sub[i].detail) != 0 ||
		    dup_or_null(src->sub[i].id.type, &dst->sub[i].id.type) != 0 ||
		    dup_or_null(src->sub[i].id.value, &dst->sub[i].id.value) != 0)
			goto nomem;
	}
	return 0;
nomem:
	acme_problem_free(dst);
	return sv_seterr(SV_ENOMEM, "acme: no memory to copy a problem document");
}

void
acme_problem_free(struct acme_problem *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->type);
	free(p->detail);
	for (i = 0; i < p->nsub; i++) {
		free(p->sub[i].type);
		free(p->sub[i].detail);
		acme_ident_free(&p->sub[i].id);
	}
	free(p->sub);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------ finishing a response */

int
acme_json_parse(const uint8_t *data, size_t len, size_t max, json_t **out)
{
	json_error_t je;
	char esc[96];

	*out = NULL;
	if (len > max)
		return sv_seterr(SV_ETOOBIG, "JSON body larger than %zu bytes", max);
	if ((*out = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return sv_seterr(SV_EPROTO, "malformed JSON (line %d): %s", je.line,
		    sv_escape(je.text, sizeof(je.text), esc, sizeof(esc)));
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sv_seterr(SV_EPROTO, "JSON body is not an object");
	}
	return 0;
}

/* A non-2xx answer: a problem document if there is one. */
static int
finish_error(struct acme_resp *r, const char *url)
{
	char text[SV_ERRMSG_MAX], snip[SNIPPET_MAX];
	json_t *j = NULL;
	int rc;

	if (r->ctype == NULL || strcmp(r->ctype, "application/problem+json") != 0) {
		sv_escape(svbuf_str(r->body), svbuf_len(r->body), snip, sizeof(snip));
		return sv_seterr(SV_ECA,
		    "CA answered HTTP %ld without a problem document (%.200s)%s%s", r->status, url,
		    snip[0] != '\0' ? ": " : "", snip);
	}
	if ((rc = acme_json_parse(svbuf_ptr(r->body), svbuf_len(r->body), ACME_JSON_MAX, &j)) !=
		0 ||
	    (rc = acme_problem_parse(j, &r->problem)) != 0) {
		json_decref(j);
		return sv_preferr(rc, "HTTP %ld problem document from %.200s", r->status, url);
	}
	json_decref(j);
	r->problem.retry_after = r->retry_after;
	r->has_problem = 1;
	return sv_seterr(SV_ECA, "CA said: %s", acme_problem_text(&r->problem, text, sizeof(text)));
}

static int
check_ctype(const struct acme_resp *r, const char *want, const char *url)
{
	char esc[64];

	if (r->ctype != NULL && strcmp(r->ctype, want) != 0)
		return sv_seterr(SV_EPROTO, "%.200s: Content-Type %s, expected %s", url,
		    sv_escape(r->ctype, strlen(r->ctype), esc, sizeof(esc)), want);
	return 0;
}

int
acme_resp_finish(struct acme_resp *r, const char *url)
{
	int rc;

	if (r->status < 100 || r->status > 599)
		return sv_seterr(SV_EPROTO, "no HTTP status from %.200s", url);
	if (r->status < 200 || r->status > 299)
		return finish_error(r, url);
	switch (r->kind) {
	case ACME_BODY_JSON:
		if ((rc = check_ctype(r, "application/json", url)) != 0)
			return rc;
		if ((rc = acme_json_parse(
			 svbuf_ptr(r->body), svbuf_len(r->body), ACME_JSON_MAX, &r->json)) != 0)
			return sv_preferr(rc, "%.200s", url);
		return 0;
	case ACME_BODY_PEM:
		if ((rc = check_ctype(r, "application/pem-certificate-chain", url)) != 0)
			return rc;
		if ((rc = acme_pem_chain_check(
			 svbuf_str(r->body), svbuf_len(r->body), &r->ncerts)) != 0)
			return sv_preferr(rc, "%.200s", url);
		return 0;
	case ACME_BODY_NONE:
	default:
		return 0;
	}
}
